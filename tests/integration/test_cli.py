"""The command line against a fixture root, as a newcomer would run it."""

import json
import os
import subprocess
import sys

from agent import kvp
from tests.conftest import REPO

DB = "com.docker.driver.amd64-linux"


def cli(root, *args):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "agent", "--root", str(root), *args], env=env,
                          capture_output=True, text=True)


def test_plan_json_for_a_cifsmount_item(tmp_path):
    pool_dir = tmp_path / "var" / "lib" / "hyperv"
    pool_dir.mkdir(parents=True)
    (pool_dir / ".kvp_pool_0").write_bytes(kvp.encode([
        ("cifsmount", "/c;/C;username=me,password=s3cret,noperm,vers=3.02"),
        ("cifsumount", "/etc;/X"),
    ]))
    r = cli(tmp_path, "plan", "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    mounts = [a for a in plan["actions"] if a["action"] in ("mount", "bind")]
    assert mounts == [
        {"action": "mount", "source": "//10.0.75.1/c", "target": "/c", "fstype": "cifs",
         "options": ["noperm", "vers=3.02", "username=me", "password=***"]},
        {"action": "bind", "source": "/c", "target": "/C"},
    ]
    assert plan["problems"] == ["cifsumount rejected: mount point '/etc' is a system directory; nothing was "
                                "mounted or unmounted"]
    assert "s3cret" not in r.stdout + r.stderr


def test_config_and_daemon_json(tmp_path):
    r = cli(tmp_path, "config", "get", "network")
    assert r.returncode == 1 and "Could not find database configuration information" in r.stderr
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cmdline").write_text(f'quiet com.docker.database="{DB}"\n')
    db = tmp_path / "Database" / "branch" / "master" / "ro" / DB
    db.mkdir(parents=True)
    (db / "network").write_text("hybrid")
    assert cli(tmp_path, "config", "get", "network").stdout == "hybrid"
    r = cli(tmp_path, "config", "set", "network", "x")
    assert r.returncode == 1 and "Configuration is immutable" in r.stderr
    dropins = tmp_path / "etc" / "moby-agent" / "daemon.json.d"
    dropins.mkdir(parents=True)
    (dropins / "10-mirrors.json").write_text('{"registry-mirrors": ["https://m"]}')
    r = cli(tmp_path, "daemon-json")
    assert r.returncode == 0 and json.loads(r.stdout) == {"registry-mirrors": ["https://m"]}
    (dropins / "20-bad.json").write_text('{"registry-mirrors": "https://m"}')
    r = cli(tmp_path, "daemon-json")
    assert r.returncode == 1 and "drop-in 20-bad.json: 'registry-mirrors' must be a list of strings" in r.stderr


def test_bad_config_file_names_file_key_and_expectation(tmp_path):
    cfg = tmp_path / "etc" / "moby-agent" / "agent.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("[host]\naddress = 5\n")
    r = cli(tmp_path, "run", "--once")
    assert r.returncode == 2
    assert f"{cfg}: host.address: expected a string, got 5" in r.stderr


def test_a_huge_integer_in_the_config_is_a_config_error_not_a_traceback(tmp_path):
    cfg = tmp_path / "etc" / "moby-agent" / "agent.toml"
    cfg.parent.mkdir(parents=True)
    for key in ("[shares]\nmax_id", "[watch]\nmax_dirs", "[watch]\nsettle_ms"):
        cfg.write_text(f"{key} = 1{'0' * 400}\n")
        r = cli(tmp_path, "run", "--once")
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1
        assert f"{cfg}: {key.split(chr(10))[0][1:-1]}." in r.stderr and "integer of about 401 digits" in r.stderr


def test_run_once_fails_when_an_action_fails_and_never_mounts_under_root(tmp_path):
    pool_dir = tmp_path / "var" / "lib" / "hyperv"
    pool_dir.mkdir(parents=True)
    (pool_dir / ".kvp_pool_0").write_bytes(kvp.encode([("cifsmount", "/c;/C;username=me,password=pw,noperm")]))
    r = cli(tmp_path, "run", "--once")
    assert r.returncode == 1
    assert "not done under --root" in r.stderr and "mount /c failed" in r.stderr
    assert not (tmp_path / "c").exists()
    assert cli(tmp_path, "run", "--once").returncode == 1  # still failing: not silently dropped


def test_kvp_dump_of_a_sparse_terabyte_pool_is_one_line_not_a_traceback(tmp_path):
    pool_dir = tmp_path / "var" / "lib" / "hyperv"
    pool_dir.mkdir(parents=True)
    with open(pool_dir / ".kvp_pool_0", "wb") as f:
        f.truncate(1 << 40)
    for args in (("kvp", "dump"), ("kvp", "get", "cifsmount"), ("kvp", "set", "k", "v", "--pool", "1")):
        if args[1] == "set":
            with open(pool_dir / ".kvp_pool_1", "wb") as f:
                f.truncate(1 << 40)
        r = cli(tmp_path, *args)
        assert r.returncode == 1, r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
        assert "1099511627776 bytes, larger than any pool" in r.stderr
    r = cli(tmp_path, "plan")
    assert r.returncode == 0
    assert f"problem: {pool_dir}/.kvp_pool_0: 1099511627776 bytes, larger than any pool" in r.stdout


def test_the_cli_never_prints_a_traceback_for_memory_or_os_errors(tmp_path, monkeypatch, capsys):
    from agent import cli as agent_cli

    for exc in (MemoryError(), OSError(5, "Input/output error"), kvp.KvpError("pool: broken")):
        def broken(*args, _exc=exc, **kw):
            raise _exc

        monkeypatch.setattr(kvp, "read_pool", broken)
        code = agent_cli.main(["--root", str(tmp_path), "kvp", "dump"])
        err = capsys.readouterr().err
        assert code == 1 and len(err.splitlines()) == 1 and err.startswith("moby-agent: "), err


def test_the_running_agent_is_confirmed_by_its_start_time(tmp_path):
    """The real agent (python -m agent with this checkout on PYTHONPATH) is
    confirmed; the same pid with another start time (a reused pid) is not,
    and health then signals nothing."""
    import json

    from agent import status
    from agent.system import process_start_time
    from tests.integration.agentproc import AgentProcess

    (tmp_path / "var" / "lib" / "hyperv").mkdir(parents=True)
    agent = AgentProcess(tmp_path, log_level="info")
    try:
        doc = agent.wait_status(lambda d: d["passes"] >= 1)
        assert doc["start_time"] == process_start_time(agent.proc.pid)
        assert status.running_pid(doc, str(tmp_path)) == agent.proc.pid
        assert cli(tmp_path, "health").returncode == 0
        assert status.running_pid(dict(doc, start_time=doc["start_time"] + 1), str(tmp_path)) is None
        assert status.running_pid({k: v for k, v in doc.items() if k != "start_time"}, str(tmp_path)) is None
        path = tmp_path / "run" / "moby-agent" / "status.json"
        os.kill(agent.proc.pid, 19)  # SIGSTOP: it cannot rewrite status.json meanwhile
        try:
            path.write_text(json.dumps(dict(doc, start_time=doc["start_time"] + 1)))
            r = cli(tmp_path, "health", "--timeout", "0.2")
            assert r.returncode == 1 and "is not a running moby-agent" in r.stderr
        finally:
            os.kill(agent.proc.pid, 18)  # SIGCONT
    finally:
        assert agent.stop() == 0


def test_run_once_removes_a_credentials_file_left_by_a_killed_mount(tmp_path):
    """Only `run` (the loop) removed it: `run --once` left the 0600 file
    with a password behind for good."""
    state_dir = tmp_path / "run" / "moby-agent"
    state_dir.mkdir(parents=True)
    (tmp_path / "var" / "lib" / "hyperv").mkdir(parents=True)
    stale = state_dir / ".credentials-0a1b2c3d4e5f"
    stale.write_text("username=me\npassword=s3cret\n")
    r = cli(tmp_path, "run", "--once")
    assert r.returncode == 0, r.stderr
    assert not stale.exists()
    assert "removed a credentials file left by an interrupted mount: .credentials-0a1b2c3d4e5f" in r.stderr


def test_run_once_leaves_the_credentials_of_a_running_agent_alone(tmp_path):
    """A running agent's mount may be using its credentials file right now."""
    from tests.integration.agentproc import AgentProcess

    (tmp_path / "var" / "lib" / "hyperv").mkdir(parents=True)
    agent = AgentProcess(tmp_path, log_level="info")
    try:
        agent.wait_status(lambda d: d["passes"] >= 1)
        live = tmp_path / "run" / "moby-agent" / ".credentials-in-use"
        live.write_text("password=s3cret\n")
        r = cli(tmp_path, "run", "--once")
        assert live.exists(), r.stderr
        assert f"pid {agent.proc.pid}" in r.stderr
    finally:
        assert agent.stop() == 0


def _shared_c(root):
    """A fixture root whose mount table shares /c (and its alias /C)."""
    (root / "proc" / "self").mkdir(parents=True)
    (root / "proc" / "self" / "mountinfo").write_text("40 1 0:40 / /c rw - cifs //10.0.75.1/c rw\n"
                                                      "41 1 0:40 / /C rw - cifs //10.0.75.1/c rw\n")
    (root / "C" / "src").mkdir(parents=True)
    (root / "C" / "file.js").write_text("x")


def test_watch_add_takes_one_spelling_of_a_shared_directory_only(tmp_path):
    _shared_c(tmp_path)
    for spelling in ("/C/src", "/C/src/", "//C//src", "/C/./src"):
        r = cli(tmp_path, "watch", "add", spelling)
        assert r.returncode == 0, r.stderr
    assert cli(tmp_path, "watch", "list").stdout == "/C/src\n"
    assert "already added" in cli(tmp_path, "watch", "add", "//C//src/").stderr
    for path, words in (("/etc", "/etc is not on a shared drive (shared drives: /C, /c)"),
                        ("/Cx", "/Cx is not on a shared drive"),
                        ("/C/nothing", "/C/nothing does not exist"),
                        ("/C/file.js", "/C/file.js is not a directory")):
        r = cli(tmp_path, "watch", "add", path)
        assert r.returncode == 1 and f"not watched: {words}" in r.stderr, (path, r.stderr)
    r = cli(tmp_path, "watch", "add", "/C/../etc")
    assert r.returncode == 2 and "no '..'" in r.stderr
    assert cli(tmp_path, "watch", "list").stdout == "/C/src\n"


def test_watch_remove_of_what_is_not_watched_says_so(tmp_path):
    _shared_c(tmp_path)
    assert cli(tmp_path, "watch", "add", "/C/src").returncode == 0
    r = cli(tmp_path, "watch", "remove", "/C/other")
    assert r.returncode == 1 and "/C/other is not watched: it was never added with watch add" in r.stderr
    assert cli(tmp_path, "watch", "remove", "/C/src/").returncode == 0
    assert cli(tmp_path, "watch", "list").stdout == ""
    r = cli(tmp_path, "watch", "remove", "/C/src")
    assert r.returncode == 1 and "is not watched" in r.stderr


def test_watch_add_under_root_never_leaves_the_root(tmp_path):
    _shared_c(tmp_path)
    outside = tmp_path.parent / (tmp_path.name + "-outside")
    outside.mkdir()
    os.symlink("../../..", tmp_path / "C" / "up")  # climbs out of the root
    os.symlink(str(outside), tmp_path / "C" / "abs")  # absolute: taken inside the root, where it does not exist
    r = cli(tmp_path, "watch", "add", "/C/up")
    assert r.returncode == 1 and "leads out of" in r.stderr, r.stderr
    r = cli(tmp_path, "watch", "add", "/C/abs")
    assert r.returncode == 1 and "does not exist" in r.stderr, r.stderr
    assert cli(tmp_path, "watch", "list").stdout == ""
