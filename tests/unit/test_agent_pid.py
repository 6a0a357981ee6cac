"""Which process is the agent that wrote status.json: its recorded start
time must match /proc/PID/stat's, and it must run one of the agent's entry
points. A program merely named `agent` (a copy of sleep), or a reused pid,
is never signalled by `health` or `watch add`."""

import os
import shutil
import subprocess
import sys
import time

import pytest

from agent import status
from agent.system import AGENT_PROGRAM, agent_home, is_agent_command, parse_start_time, process_start_time

HOME = "/usr/lib/moby-agent"


def stat_line(comm: bytes, start: int) -> bytes:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime
    # cstime priority nice threads itrealvalue starttime vsize ...
    rest = [b"S"] + [b"%d" % i for i in range(4, 22)] + [b"%d" % start] + [b"0"] * 30
    return b"4242 (" + comm + b") " + b" ".join(rest) + b"\n"


@pytest.mark.parametrize("comm", [b"agent", b"a b", b"x) S 1 2 3 (y", b"))", b"(", b""])
def test_the_start_time_is_field_22_counted_after_the_last_paren(comm):
    assert parse_start_time(stat_line(comm, 987654)) == 987654


@pytest.mark.parametrize("text", [b"", b"4242 agent S 1", b"4242 (agent) S 1 2 3", b"4242 (a) " + b"x " * 30])
def test_a_line_that_is_not_a_stat_line_has_no_start_time(text):
    assert parse_start_time(text) is None


def test_this_process_has_a_start_time():
    with open(f"/proc/{os.getpid()}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    assert process_start_time(os.getpid()) == int(fields[19])
    assert process_start_time(2**40) is None and process_start_time(-1) is None


@pytest.mark.parametrize("argv, cwd, pythonpath, ok", [
    ([AGENT_PROGRAM, "run"], "/", "", True),
    (["/usr/bin/python3", AGENT_PROGRAM, "run"], "/", "", True),
    (["python3", "-u", "-X", "dev", AGENT_PROGRAM, "run"], "/", "", True),
    (["python3", "-m", "agent", "run"], HOME, "", True),
    (["python3", "-B", "-m", "agent", "run"], "/tmp", f"/x:{HOME}/", True),
    (["python3", f"{HOME}/agent/__main__.py", "run"], "/", "", True),
    (["python3", "agent/__main__.py", "run"], HOME, "", True),
    (["agent", "30"], HOME, HOME, False),  # a copy of sleep named agent
    (["moby-agent", "run"], HOME, HOME, False),
    (["/tmp/moby-agent", "run"], "/", "", False),
    (["python3", "-m", "agent", "run"], "/tmp/evil", "", False),  # some other package named agent
    (["python3", "-m", "agent", "run"], "/tmp/evil", HOME, False),  # the working directory's comes first
    (["python3", "-m", "agent", "run"], "/tmp/plain", "/tmp/evil", False),
    (["python3", "/tmp/evil/agent/__main__.py"], "/", HOME, False),
    (["python3", "/tmp/moby-agent"], "/", "", False),
    (["python3", "-c", "import agent", "-m", "agent"], HOME, "", False),
    (["python3", "-X", "-m", "agent"], HOME, "", False),  # -X's value is '-m'
    (["sleep", "-m", "agent"], HOME, "", False),
    ([], HOME, "", False),
])
def test_only_the_agents_entry_points_are_the_agent(argv, cwd, pythonpath, ok):
    packages = {HOME, "/tmp/evil"}  # the directories holding a package named agent
    assert is_agent_command(argv, cwd, pythonpath, HOME, lambda d: d.rstrip("/") in packages) is ok


def test_python_m_agent_imports_the_first_package_found():
    argv = ["python3", "-m", "agent", "run"]
    assert not is_agent_command(argv, "/tmp/evil", HOME, HOME, lambda d: d in (HOME, "/tmp/evil"))
    assert is_agent_command(argv, "/tmp/plain", HOME, HOME, lambda d: d in (HOME, "/tmp/evil"))
    assert not is_agent_command(argv, "/tmp/plain", f"/tmp/evil:{HOME}", HOME, lambda d: d in (HOME, "/tmp/evil"))


def test_a_copy_of_sleep_named_agent_is_not_the_agent(tmp_path):
    """It was accepted by its comm ('agent'): health would have sent it
    SIGUSR1, watch add SIGHUP, after the agent's pid was reused."""
    for name in ("agent", "moby-agent"):
        fake = tmp_path / name
        shutil.copy("/bin/sleep", fake)
        proc = subprocess.Popen([str(fake), "30"], cwd=agent_home(),
                                env=dict(os.environ, PYTHONPATH=agent_home()))
        try:
            time.sleep(0.05)
            start = process_start_time(proc.pid)
            assert start is not None
            for doc in ({"pid": proc.pid}, {"pid": proc.pid, "start_time": start}):
                assert status.running_pid(dict(doc, state="running"), "/") is None
        finally:
            proc.kill()
            proc.wait()


def test_python_m_agent_of_another_package_is_not_the_agent(tmp_path):
    pkg = tmp_path / "agent"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text("import time\nprint('up', flush=True)\ntime.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-u", "-m", "agent", "run"], cwd=tmp_path, stdout=subprocess.PIPE,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    try:
        assert proc.stdout.readline().strip() == b"up"
        doc = {"pid": proc.pid, "start_time": process_start_time(proc.pid), "state": "running"}
        assert status.running_pid(doc, "/") is None
    finally:
        proc.kill()
        proc.wait()


def test_the_status_document_records_the_start_time():
    doc = status.document(pid=os.getpid(), started=0, passes=0, last_pass=None, capabilities={}, heartbeat=0)
    assert doc["start_time"] == process_start_time(os.getpid())
    doc = status.document(pid=os.getpid(), started=0, passes=0, last_pass=None, capabilities={}, heartbeat=0,
                          start_time=5)
    assert doc["start_time"] == 5


@pytest.mark.parametrize("value", [True, -1, "123", 1.5, [1]])
def test_a_start_time_that_is_not_a_count_is_dropped_on_load(tmp_path, value):
    import json

    path = tmp_path / "status.json"
    path.write_text(json.dumps({"pid": os.getpid(), "start_time": value, "state": "running"}))
    doc = status.load(str(path))
    assert doc is not None and doc["start_time"] is None
    assert status.running_pid(doc) is None
