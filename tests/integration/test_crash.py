"""Crash safety: the agent killed with SIGKILL at random points while it
rewrites daemon.json and pool 1. Every daemon.json on disk is valid JSON,
either the old or the new one; pool 1 always parses.

MOBY_CRASH_ROUNDS sets the number of kills (CI: 40; `make soak`: 200).
The agent runs with a slowed writer (tests/integration/slowio: its writes
go out in 4 KiB pieces with pauses, fsync and rename pause first), and the
kill times are spread around the moment it finishes writing daemon.json,
measured first on this machine; the kills are counted by where they landed
and the counts asserted, so that a run whose kills all miss the window
fails instead of passing.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

from agent import kvp
from agent.settings import daemonjson
from tests.conftest import REPO
from tests.integration.agentproc import AgentProcess

DB = "com.docker.driver.amd64-linux"
SLOWIO = REPO / "tests" / "integration" / "slowio"


def doc(tag):
    return {"debug": tag == "a", "labels": [f"{tag}-label={i:05d}" for i in range(3000)]}


def crash_root(root):
    (root / "proc" / "self").mkdir(parents=True)
    (root / "proc" / "cmdline").write_text(f'com.docker.database="{DB}"\n')
    (root / "proc" / "self" / "mountinfo").write_text("40 1 0:40 / /Database rw - 9p db rw,trans=virtio\n")
    db = root / "Database" / "branch" / "master" / "ro" / DB / "etc" / "docker"
    db.mkdir(parents=True)
    pool_dir = root / "var" / "lib" / "hyperv"
    pool_dir.mkdir(parents=True)
    return db, pool_dir


def start_agent(root, slow, mark):
    env = dict(os.environ, PYTHONPATH=f"{SLOWIO}{os.pathsep}{REPO}", MOBY_SLOW_IO=slow, MOBY_SLOW_IO_MARK=str(mark))
    return subprocess.Popen([sys.executable, "-m", "agent", "--root", str(root), "run"], env=env,
                            stderr=subprocess.DEVNULL)


def wait_for_mark(mark, proc):
    deadline = time.monotonic() + 30
    while not mark.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the agent never began writing daemon.json"
        time.sleep(0.001)


def test_kill_9_never_leaves_a_torn_file(tmp_path):
    rounds = int(os.environ.get("MOBY_CRASH_ROUNDS", "40"))
    rng = random.Random(1234)
    root = tmp_path
    db, pool_dir = crash_root(root)
    daemon_json = root / "etc" / "docker" / "daemon.json"
    rendered = {tag: daemonjson.encode(doc(tag)) for tag in "ab"}
    slow = "write,fsync,rename"
    mark = tmp_path / "writing"
    before_rename = after_rename = mid_write = 0
    for i in range(rounds):
        # Always the other document than the one on disk.
        tag = "a" if daemon_json.exists() and daemon_json.read_text() == rendered["b"] else "b"
        (db / "daemon.json").write_text(json.dumps(doc(tag)))
        kvp.update_pool(str(pool_dir / ".kvp_pool_1"), {"moby-agent.state": f"stopped {i}"})
        mark.unlink(missing_ok=True)
        proc = start_agent(root, slow, mark)
        # The slowed write of daemon.json's ~100 KB takes 25 pieces of at
        # least 3 ms: a kill up to 0.2 s after it began lands in it, in the
        # fsync or rename after it, or after them.
        wait_for_mark(mark, proc)
        time.sleep(rng.uniform(0, 0.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        leftovers = list((root / "etc" / "docker").glob(".daemon.json.tmp-*"))
        assert len(leftovers) <= 1, leftovers  # a killed write's temporary file is removed by the next write
        if daemon_json.exists():
            text = daemon_json.read_text()
            json.loads(text)  # valid JSON, whatever the moment of the kill
            assert text in rendered.values(), f"round {i}: daemon.json is neither the old nor the new one"
        else:
            assert i == 0, f"round {i}: daemon.json is gone"
            text = None
        if text == rendered[tag]:
            after_rename += 1
        else:
            before_rename += 1
            mid_write += bool(leftovers) and leftovers[0].stat().st_size < len(rendered[tag])
        pool = kvp.read_pool(str(pool_dir / ".kvp_pool_1"))
        # A kill mid-write of pool 1 may leave a trailing partial record: it
        # is reported, never misread, and the next start rewrites the pool
        # whole (test_a_torn_pool_1_is_rewritten_whole_at_the_next_start).
        assert all(w.startswith("trailing partial record") for w in pool.warnings), f"round {i}: {pool.warnings}"
        state = pool.get("moby-agent.state")
        assert state in (f"stopped {i}", "running") or (pool.warnings and state is None), f"round {i}: {state}"
    print(f"{rounds} kills; {before_rename} before daemon.json's rename ({mid_write} in the middle of writing "
          f"its temporary file), {after_rename} after")
    # The middle of the write and the far side of the rename both reached.
    assert mid_write >= rounds // 8 and after_rename >= rounds // 8, (mid_write, before_rename, after_rename)


def test_a_torn_pool_1_is_rewritten_whole_at_the_next_start(tmp_path):
    pool_dir = tmp_path / "var" / "lib" / "hyperv"
    pool_dir.mkdir(parents=True)
    pool1 = pool_dir / ".kvp_pool_1"
    kvp.update_pool(str(pool1), {"moby-agent.state": "stopped", "other.tool": "kept"})
    with open(pool1, "r+b") as f:
        f.truncate(4096)  # what a SIGKILL between two pages of the rewrite leaves
    assert kvp.read_pool(str(pool1)).warnings
    agent = AgentProcess(tmp_path)
    try:
        deadline = time.monotonic() + 10
        while True:
            pool = kvp.read_pool(str(pool1))
            if pool.get("moby-agent.state") == "running":
                break
            assert time.monotonic() < deadline, pool
            time.sleep(0.05)
        assert pool.warnings == ()
        assert pool.get("moby-agent.state") == "running"
    finally:
        assert agent.stop() == 0
