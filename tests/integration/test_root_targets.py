"""--root is a boundary for every file the agent writes in /etc (daemon.json,
the proxy environment file, registry certificates and their record, the
/etc files copied from the database), and the doctor reads nothing outside
it. Each target is attacked in a fixture root: its last component or its
directory a symlink out of the root (absolute and relative), a FIFO, a
directory, a huge file, a symlink loop. Whatever the attack: nothing outside
the root changes or is read, no traceback, no hang, the other targets are
still written, and the output says which file and what was wrong."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DB = "db"
TARGETS = ("etc/docker/daemon.json", "etc/docker/moby-agent-proxy.env", "etc/resolv.conf",
           "etc/docker/certs.d/reg.example:5000/ca.crt", "etc/docker/certs.d/.moby-agent-installed.json")
HAZARDS = ("link-abs-out", "link-rel-out", "parent-abs-out", "parent-rel-out", "fifo", "directory", "huge", "loop",
           "parent-loop")
CERT = "-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n"


def _fixture(root: Path) -> None:
    d = root / "Database" / "branch" / "master" / "ro" / DB
    (root / "proc" / "self").mkdir(parents=True)
    (d / "etc" / "docker" / "certs.d" / "reg.example:5000").mkdir(parents=True)
    (d / "proxy").mkdir()
    (root / "proc" / "cmdline").write_text(f'com.docker.database="{DB}"\n')
    (root / "proc" / "self" / "mountinfo").write_text("40 1 0:40 / /Database rw - 9p db rw,trans=virtio\n")
    (d / "etc" / "docker" / "daemon.json").write_text('{"debug": true}')
    (d / "etc" / "resolv.conf").write_text("nameserver 10.0.75.1\n")
    (d / "etc" / "hosts").write_text("10.0.75.2 guest\n")
    (d / "proxy" / "http").write_text("http://proxy.example:3128\n")
    (d / "etc" / "docker" / "certs.d" / "reg.example:5000" / "ca.crt").write_text(CERT)


def _attack(target: Path, hazard: str, outside: Path, depth: int) -> None:
    if hazard == "link-abs-out":
        target.symlink_to(outside / "victim")
    elif hazard == "link-rel-out":
        target.symlink_to("../" * (depth + 1) + "outside/victim")
    elif hazard == "parent-abs-out":
        shutil.rmtree(target.parent)
        target.parent.symlink_to(outside / "dir")
    elif hazard == "parent-rel-out":
        shutil.rmtree(target.parent)
        target.parent.symlink_to("../" * depth + "outside/dir")
    elif hazard == "fifo":
        os.mkfifo(target)
    elif hazard == "directory":
        target.mkdir()
        (target / "kept").write_text("kept")
    elif hazard == "huge":
        target.write_bytes(b"x" * (17 << 20))
    elif hazard == "loop":
        target.symlink_to(target.name)
    elif hazard == "parent-loop":
        shutil.rmtree(target.parent)
        target.parent.symlink_to(target.parent.name)


def _snapshot(top: Path) -> dict:
    out = {}
    for p in sorted(top.rglob("*")):
        st = os.lstat(p)
        body = os.readlink(p) if p.is_symlink() else (p.read_bytes() if p.is_file() else None)
        out[str(p.relative_to(top))] = (st.st_mode, st.st_size, st.st_mtime_ns, body)
    return out


def _run_attacked(tmp_path: Path, target: str, hazard: str):
    """`run --once` in a fixture root whose `target` is attacked: nothing
    outside the root changes, no traceback, no crash of an observation
    ("failed unexpectedly": one bad file must be a problem for that file)."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "victim").write_text("VICTIM\n")
    (outside / "dir" / "victim").write_text("VICTIM\n")
    _fixture(root)
    path = root / target
    path.parent.mkdir(parents=True, exist_ok=True)
    _attack(path, hazard, outside, len(Path(target).parts) - 1)
    before = _snapshot(outside)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "agent", "--root", str(root), "run", "--once"], env=env,
                       capture_output=True, timeout=60, cwd=str(tmp_path))
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert _snapshot(outside) == before, f"{target} {hazard} changed the outside:\n{out}"
    assert "Traceback" not in out, out
    assert "unexpectedly" not in out, out
    return r, out


@pytest.mark.parametrize("hazard", HAZARDS)
@pytest.mark.parametrize("target", TARGETS)
def test_a_hostile_write_target_never_reaches_outside_the_root(tmp_path, target, hazard):
    root, path = tmp_path / "root", tmp_path / "root" / target
    r, out = _run_attacked(tmp_path, target, hazard)
    if Path(target).parent == Path("etc") and hazard in ("parent-rel-out", "parent-loop"):
        # /etc itself leads out: agent.toml is under it, so nothing runs.
        assert r.returncode == 2 and "configuration error" in out, out
        return
    # The other targets are written all the same (one bad file stops only
    # itself; a bad directory, what is below it).
    parent = Path(target).parent
    for other in TARGETS:
        if other == target or (hazard.startswith("parent") and parent in Path(other).parents):
            continue
        assert (root / other).is_file() and not (root / other).is_symlink(), f"{other} not written:\n{out}"
    if hazard in ("directory", "parent-rel-out", "parent-loop"):
        assert r.returncode == 1, out
        assert "/" + target in out, out  # names the file
        if hazard == "directory":
            assert (path / "kept").read_text() == "kept"
            assert "is a directory" in out and "kept" in out, out
            assert ".tmp-" not in out, out  # the agent's temporary name is no news to the reader
        else:
            assert ("leads out of" in out) or ("levels of symbolic links" in out), out
    elif hazard == "parent-abs-out":  # an absolute link is read as the root's own path (a chroot's view)
        inside = root / str(tmp_path / "outside" / "dir").lstrip("/") / path.name
        assert inside.is_file() and not inside.is_symlink(), out
    else:
        assert path.is_file() and not path.is_symlink(), f"{target} {hazard}: not replaced by a plain file:\n{out}"


@pytest.mark.parametrize("hazard", ["parent-rel-out", "parent-loop"])
@pytest.mark.parametrize("target", ["run/moby-agent/status.json", "proc/self/mountinfo",
                                    "var/lib/hyperv/.kvp_pool_0"])
def test_an_input_or_state_directory_leading_out_is_said_without_a_traceback(tmp_path, target, hazard):
    """The agent's state directory, /proc/self or the pool directory leading
    out of the root or looping: it crashed that capability's observation
    ("observe failed unexpectedly", with a traceback); now the pass says
    which path and that nothing of it was changed, and goes on."""
    root = tmp_path / "root"
    _r, out = _run_attacked(tmp_path, target, hazard)
    assert "/" + str(Path(target).parent) in out, out
    if not target.startswith("proc"):  # the mount table: shares and the database are not planned without it
        assert (root / "etc" / "docker" / "daemon.json").is_file(), out  # the other capabilities went on
