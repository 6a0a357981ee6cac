"""Start-up: what a command does not import (docs/benchmarks.md has the
timings; this guards the lazy imports without timing anything).

Each command runs in a fresh interpreter against an empty fixture root, as
the installed wrapper runs it, and reports the modules it loaded."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]

# Loaded only when their capability has work: the Docker API and netlink
# libraries, OpenSSL (hashlib), inotify with ctypes.util (about 10 ms:
# subprocess, tempfile), the socket module's enums (about 4 ms), urllib;
# shutil (bz2, lzma: argparse asks it the terminal's width, agent/cli.py
# only when it prints help).
NEVER = ("requests", "pyroute2", "hashlib", "_hashlib", "inotify_simple", "ctypes", "tempfile")
NOT_WITHOUT_WORK = ("socket", "subprocess", "urllib.parse", "agent.kvp.poolwatch", "agent.livereload.watcher",
                    "agent.settings.dockerapi", "shutil")

PROBE = """
import json, sys
from agent.cli import main
try:
    code = main(sys.argv[1:])
finally:
    sys.stdout.flush()
    print("\\nMODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr)
    from agent import record
    print("\\nPENDING " + json.dumps(sorted(record.pending())), file=sys.stderr)
"""

# Records (agent/record.py) a pass with nothing to do never creates: their
# dataclass is not made (about 4 M instructions each). Either still pending
# or in a module not loaded.
UNMADE = ("agent.outcome.Action", "agent.outcome.Outcome", "agent.shares.plan.DriveStep",
          "agent.shares.plan.MountShare", "agent.shares.plan.BindAlias", "agent.shares.plan.Unmount",
          "agent.shares.plan.RemoveDir", "agent.shares.plan.SaveShares", "agent.shares.plan.Retry",
          "agent.shares.items.ShareSpec", "agent.shares.mountinfo.MountEntry", "agent.shares.failures.Cause",
          "agent.shares.failures.Reach", "agent.settings.plan.WriteFile", "agent.settings.plan.RemoveFile",
          "agent.settings.plan.ApplySysctl", "agent.settings.plan.ApplyDocker", "agent.settings.plan.MountDatabase",
          "agent.network.plan.NetState", "agent.network.plan.SetAddress", "agent.network.plan.SetRoute",
          "agent.kvp.hostitems.NoteHostItems", "agent.livereload.containers.Container", "agent.doctor.Check")


def probe(tmp_path, *argv):
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, "-c", PROBE, "--root", str(tmp_path), *argv], env=env,
                          capture_output=True, text=True, cwd=str(tmp_path), timeout=60)
    found = {}
    for what in ("MODULES", "PENDING"):
        line = [x for x in proc.stderr.splitlines() if x.startswith(what + " ")]
        assert line, proc.stderr
        found[what] = set(json.loads(line[-1][len(what) + 1:]))
    return found


def loaded(tmp_path, *argv):
    return probe(tmp_path, *argv)["MODULES"]


@pytest.mark.parametrize("argv", [("run", "--once"), ("status",), ("plan",), ("kvp", "dump"), ("daemon-json",),
                                  ("config", "get", "network"), ("watch", "list")])
def test_a_command_with_nothing_to_do_leaves_the_heavy_modules_unloaded(tmp_path, argv):
    mods = loaded(tmp_path, *argv)
    heavy = sorted(m for m in (*NEVER, *NOT_WITHOUT_WORK) if m in mods)
    assert not heavy, f"moby-agent {' '.join(argv)} imported {heavy} (start-up: docs/benchmarks.md)"


@pytest.mark.parametrize("argv", [("run", "--once"), ("status",), ("plan",)])
def test_a_pass_with_nothing_to_do_makes_only_the_records_it_creates(tmp_path, argv):
    etc = tmp_path / "etc" / "moby-agent"
    etc.mkdir(parents=True)
    shutil.copy(REPO / "packaging" / "agent.toml", etc / "agent.toml")
    found = probe(tmp_path, *argv)
    made = sorted(c for c in UNMADE if c.rsplit(".", 1)[0] in found["MODULES"] and c not in found["PENDING"])
    assert not made, f"moby-agent {' '.join(argv)} made the dataclasses of {made} (start-up: docs/benchmarks.md)"
    assert "agent.outcome.Action" in found["PENDING"]  # the probe sees what it should


def test_the_installed_agent_toml_is_read_without_the_toml_parser(tmp_path):
    """packaging/agent.toml (comments only: every key at its default) is an
    empty table; tomllib (about 6 ms: datetime and its regular expressions)
    is imported only for a file that sets something."""
    etc = tmp_path / "etc" / "moby-agent"
    etc.mkdir(parents=True)
    shutil.copy(REPO / "packaging" / "agent.toml", etc / "agent.toml")
    mods = loaded(tmp_path, "run", "--once")
    assert not {"tomllib", "tomli"} & mods
    (etc / "agent.toml").write_text("log_level = 'debug'\n")
    assert {"tomllib", "tomli"} & loaded(tmp_path, "status")


@pytest.mark.parametrize("text", ["", "\n", "# c\n", "  # c\r\n\t#x\n", "#\x01\n", "# a\rb\n", "#\x7f", "a = 1 # c\n",
                                  "  \n#é\n", "\r\n", "\r", "# c\n[x]\n", "#\n\x00"])
def test_the_comments_only_shortcut_agrees_with_tomllib(text):
    from agent import agentconfig

    try:
        want = tomllib.loads(text) == {}
    except tomllib.TOMLDecodeError:
        want = False
    assert agentconfig.only_comments(text) == want, repr(text)
