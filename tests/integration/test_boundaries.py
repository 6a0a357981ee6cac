"""Issue 14 with real processes: a pool 1 rewrite killed at every write
point (issue 19's empty pool), and a process that waits on a pool lock
ended by SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from agent import kvp
from tests.conftest import REPO

OLD = [(f"moby-agent.share./{c}", f"mounted {c} " + "x" * 300) for c in "cdefgh"] + [("other.tool", "kept")]

# A child that applies `changes` to pool 1 with update_pool and SIGKILLs
# itself just before its KILL_AT-th write system call (ftruncate or pwrite).
CHILD = r"""
import json, os, signal, sys
from agent import kvp

kill_at = int(sys.argv[2])
calls = [0]

def hook(real):
    def wrapped(*args):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args)
    return wrapped

os.pwrite = hook(os.pwrite)
os.ftruncate = hook(os.ftruncate)
os.write = hook(os.write)
kvp.update_pool(sys.argv[1], json.loads(sys.argv[3]))
print("done", calls[0])
"""


@pytest.mark.parametrize("changes", [
    {"moby-agent.share./c": None, "moby-agent.share./d": None, "moby-agent.share./e": "failed", "other.tool": None},
    {"moby-agent.share./x": "mounted", "moby-agent.share./y": "mounted", "moby-agent.state": "running"},
    {"moby-agent.share./c": "waiting: no route to 10.0.75.1"},
], ids=["shrinks", "grows", "same-size"])
def test_a_kill_at_any_write_point_never_leaves_pool_1_empty(tmp_path, changes):
    path = tmp_path / ".kvp_pool_1"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    new = dict(OLD)
    for key, value in changes.items():
        if value is None:
            new.pop(key, None)
        else:
            new[key] = value
    old = dict(OLD)
    kill_at = 1
    while True:
        path.write_bytes(kvp.encode(OLD))
        r = subprocess.run([sys.executable, "-c", CHILD, str(path), str(kill_at), json.dumps(changes)],
                           env=env, capture_output=True, text=True, timeout=30)
        pool = kvp.read_pool(str(path))
        seen = pool.as_dict()
        assert seen, f"pool 1 is empty after a kill at write call {kill_at}"
        for key, value in seen.items():
            assert value in (old.get(key), new.get(key)), f"{key}={value!r}: neither old nor new (kill at {kill_at})"
        for key in set(old) & set(new):  # kept by both: always there
            assert key in seen, f"{key} lost after a kill at write call {kill_at}"
        if r.returncode == 0:
            assert seen == new and not pool.warnings
            break
        assert r.returncode == -signal.SIGKILL, r.stderr
        kill_at += 1
    assert kill_at > 2  # the rewrite really was cut at several points


def test_sigterm_ends_a_wait_for_the_pool_lock(tmp_path):
    """The agent's should_stop is its SIGTERM flag; the same here."""
    path = tmp_path / ".kvp_pool_0"
    path.write_bytes(kvp.encode([("a", "1")]))
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, time\n"
         f"fd = os.open({str(path)!r}, os.O_RDWR)\n"
         "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
         "print('locked', flush=True)\n"
         "time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True)
    waiter = None
    try:
        assert holder.stdout.readline().strip() == "locked"
        waiter = subprocess.Popen(
            [sys.executable, "-c",
             "import signal, sys\n"
             "from agent import kvp\n"
             "stop = []\n"
             "signal.signal(signal.SIGTERM, lambda n, f: stop.append(n))\n"
             "print('waiting', flush=True)\n"
             "try:\n"
             f"    kvp.read_pool({str(path)!r}, should_stop=lambda: bool(stop))\n"
             "except kvp.KvpLockWait as exc:\n"
             "    print('stopped:', exc, flush=True)\n"
             "    sys.exit(0)\n"
             "sys.exit(3)\n"],
            stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
        assert waiter.stdout.readline().strip() == "waiting"
        time.sleep(0.3)
        assert waiter.poll() is None  # really waiting on the lock
        t0 = time.monotonic()
        waiter.send_signal(signal.SIGTERM)
        assert waiter.wait(timeout=5) == 0
        assert time.monotonic() - t0 < 1.0
        assert "stopped:" in waiter.stdout.read()
    finally:
        holder.kill()
        holder.wait()
        if waiter and waiter.poll() is None:
            waiter.kill()
            waiter.wait()
