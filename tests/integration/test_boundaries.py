"""Issue 14 with real processes: a pool 1 rewrite killed at every write
point (issue 19's empty pool), and a process that waits on a pool lock
ended by SIGTERM."""

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from agent import kvp
from tests.conftest import REPO
from tests.unit.test_hostile import items as cifsmount_items

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


# ---- the hostile root: generated pools and database trees under --root -------------

DB = "com.docker.driver.amd64-linux"
HAZARDS = ("symlink-out", "symlink-in", "fifo", "socket", "binary", "deep-json", "huge", "mode-000", "setuid",
           "bad-name", "dir-loop")


def _cli(root, *args, timeout=30):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "agent", "--root", str(root), *args], env=env,
                       capture_output=True, timeout=timeout)
    return r, time.monotonic() - t0


def _hostile_root(root, pool0_items, hazards, pool1):
    """A fixture root as a hostile host, a broken image or a careless admin
    leaves it."""
    (root / "proc" / "self").mkdir(parents=True)
    (root / "proc" / "cmdline").write_text(f'com.docker.database="{DB}"\n')
    (root / "proc" / "self" / "mountinfo").write_text("40 1 0:40 / /Database rw - 9p db rw,trans=virtio\n")
    pools = root / "var" / "lib" / "hyperv"
    pools.mkdir(parents=True)
    (pools / ".kvp_pool_0").write_bytes(kvp.encode(pool0_items))
    outside = root.parent / (root.name + "-outside")
    outside.mkdir(exist_ok=True)
    (outside / "shadow").write_text("root:QXQXQXQX:0:0\n")
    if pool1 == "fifo":
        os.mkfifo(pools / ".kvp_pool_1")
    elif pool1 == "symlink":
        (pools / ".kvp_pool_1").symlink_to(outside / "shadow")
    elif pool1 == "directory":
        (pools / ".kvp_pool_1").mkdir()
    else:
        (pools / ".kvp_pool_1").write_bytes(b"")
    db = root / "Database" / "branch" / "master" / "ro" / DB
    (db / "etc" / "docker").mkdir(parents=True)
    (db / "etc" / "hosts").write_text("10.0.75.2 guest\n")
    for hazard in hazards:
        if hazard == "symlink-out":
            (db / "etc" / "resolv.conf").symlink_to(outside / "shadow")
        elif hazard == "symlink-in":
            (db / "etc" / "docker" / "linked.json").symlink_to(db / "etc" / "hosts")
        elif hazard == "fifo":
            os.mkfifo(db / "etc" / "sysctl.conf")
        elif hazard == "socket":  # a socket inode (bind() would refuse such a long path)
            os.mknod(db / "etc" / "docker" / "sock", stat.S_IFSOCK | 0o600)
        elif hazard == "binary":
            (db / "etc" / "docker" / "client.key").write_bytes(b"\x30\x82\xff\xfe\x00\x01binary")
        elif hazard == "deep-json":
            (db / "etc" / "docker" / "daemon.json").write_text("[" * 50_000 + "]" * 50_000)
        elif hazard == "huge":
            (db / "etc" / "docker" / "huge.json").write_bytes(b" " * (2 << 20))
        elif hazard == "mode-000":
            (db / "etc" / "docker" / "locked").write_text("x")
            (db / "etc" / "docker" / "locked").chmod(0)
        elif hazard == "setuid":
            (db / "etc" / "docker" / "suid").write_text("x")
            (db / "etc" / "docker" / "suid").chmod(0o4777)
        elif hazard == "bad-name":
            (db / "etc" / "docker" / "bad\x1b]0;owned\x07name").write_text("x")
        elif hazard == "dir-loop":
            (db / "etc" / "docker" / "loop").symlink_to(db / "etc")


def _no_secret(text: bytes, where: str) -> None:
    leaked = [c for c in "QX" if c.encode() in text]
    assert not leaked, f"password letters {leaked} in {where}: {text[-2000:]!r}"


def _no_terminal_control(text: bytes, where: str) -> None:
    assert b"\x1b" not in text and b"\x07" not in text, f"terminal control in {where}: {text[-2000:]!r}"


odd_items = st.lists(st.tuples(st.text(alphabet="ab.\x1b[2K\n\r\u202e\x07 ", min_size=1, max_size=12),
                               st.text(alphabet="xy\x1b]0;\n\r\u202e ", max_size=20)), max_size=4)
hostile_cases = st.tuples(cifsmount_items(), odd_items, st.sets(st.sampled_from(HAZARDS)),
                          st.sampled_from(["file", "fifo", "symlink", "directory"]))
few = settings(max_examples=int(os.environ.get("MOBY_HOSTILE_EXAMPLES", "6")), deadline=None,
               phases=[Phase.explicit, Phase.reuse, Phase.generate],
               suppress_health_check=list(HealthCheck))


@few
@given(hostile_cases)
def test_reading_commands_survive_a_hostile_root(tmp_path_factory, case):
    """kvp dump/get, status, health, mobyconfig under --root: no traceback,
    no hang, no password, no terminal control, whatever the root holds."""
    (value, _password), odd, hazards, pool1 = case
    root = tmp_path_factory.mktemp("root")
    _hostile_root(root, [("cifsmount", value)] + [(k, v) for k, v in odd if "\0" not in k], hazards, pool1)
    status = root / "run" / "moby-agent" / "status.json"
    status.parent.mkdir(parents=True)
    status.write_text(json.dumps({"pid": -1, "state": "running\x1b[2J", "heartbeat": 1,
                                  "capabilities": {"pool": "not a dict"}}))
    for args in (["kvp", "dump"], ["kvp", "dump", "--json"], ["kvp", "get", "cifsmount"],
                 ["kvp", "dump", "--pool", "1"], ["status"], ["status", "--json"],
                 ["health", "--timeout", "0.2"], ["config", "find", ""], ["config", "dir", "etc/docker"],
                 ["config", "get", "etc/resolv.conf"], ["config", "get", "etc/sysctl.conf"],
                 ["config", "exists", "etc/docker/loop"]):
        r, took = _cli(root, *args)
        out = r.stdout + r.stderr
        assert b"Traceback" not in out, (args, out.decode(errors="replace"))
        assert took < 10, (args, took)
        _no_secret(out, " ".join(args))
        _no_terminal_control(out, " ".join(args))


@few
@given(hostile_cases)
def test_a_pass_survives_a_hostile_root(tmp_path_factory, case):
    """plan --json and run --once under --root: no traceback, no hang, no
    password in stdout, stderr, status.json or pool 1."""
    (value, _password), odd, hazards, pool1 = case
    root = tmp_path_factory.mktemp("root")
    _hostile_root(root, [("cifsmount", value)] + [(k, v) for k, v in odd if "\0" not in k], hazards, pool1)
    for args in (["plan", "--json"], ["plan"], ["run", "--once"], ["daemon-json"]):
        r, took = _cli(root, *args)
        out = r.stdout + r.stderr
        assert b"Traceback" not in out, (args, out.decode(errors="replace"))
        assert took < 20, (args, took)
        _no_secret(out, " ".join(args))
        _no_terminal_control(out, " ".join(args))
    status = root / "run" / "moby-agent" / "status.json"
    if status.exists():
        _no_secret(status.read_bytes(), "status.json")
    pool1_path = root / "var" / "lib" / "hyperv" / ".kvp_pool_1"
    if pool1_path.is_file() and not pool1_path.is_symlink():
        _no_secret(pool1_path.read_bytes(), "pool 1")
    assert (root.parent / (root.name + "-outside") / "shadow").read_text() == "root:QXQXQXQX:0:0\n"


# ---- processes: signals in a private PID namespace, with a canary ------------------

DRIVER = r"""
import json, os, signal, subprocess, sys, time
root, log = sys.argv[1], sys.argv[2]
canary = subprocess.Popen([sys.executable, "-c",
    "import signal, sys, time\n"
    f"log = open({log!r}, 'a', buffering=1)\n"
    "for s in (signal.SIGHUP, signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):\n"
    "    signal.signal(s, lambda n, f: log.write(f'{n}\\n'))\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"], stdout=subprocess.PIPE, text=True)
assert canary.stdout.readline().strip() == "ready"
status = os.path.join(root, "run", "moby-agent", "status.json")
os.makedirs(os.path.dirname(status), exist_ok=True)
results = []
for pid in (-1, 0, 1, canary.pid, str(canary.pid), 2**40):
    with open(status, "w") as f:
        json.dump({"pid": pid, "state": "running", "heartbeat": 1, "capabilities": {}}, f)
    for args in (["health", "--timeout", "0.3"], ["watch", "add", "/C/src"], ["status"]):
        r = subprocess.run([sys.executable, "-m", "agent", "--root", root, *args], capture_output=True, text=True)
        results.append([repr(pid), args[0], r.returncode, "Traceback" in r.stderr])
time.sleep(0.3)
canary.kill()
print(json.dumps(results))
"""


def test_no_cli_command_signals_a_pid_it_has_not_confirmed(tmp_path):
    """status.json saying pid -1 (everyone), 0 (my group), 1 (init), or the
    pid of an unrelated process: health, watch and status signal none of
    them. In a private PID namespace, so that the old code's kill(-1)
    reaches only the canary."""
    from tests.conftest import require_root

    require_root()
    log = tmp_path / "signals"
    root = tmp_path / "root"
    root.mkdir()
    r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", DRIVER, str(root),
                        str(log)], env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
                       timeout=120, start_new_session=True)  # kill(0) (the old code) must not reach pytest
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout.strip().splitlines()[-1])
    assert not [x for x in results if x[3]], results  # no traceback
    assert not [x for x in results if x[1] == "health" and x[2] == 0], results  # no heartbeat from a stranger
    got = log.read_text() if log.exists() else ""
    assert got == "", f"the canary got signals {got.split()}"


def test_a_watched_root_under_root_never_leads_out_of_it(tmp_path):
    """Live reload under --root (the trust boundary): a watched path that
    is a symlink climbing out of the root is reported, never opened; one
    pointing inside is followed there."""
    from tests.integration.agentproc import AgentProcess

    root = tmp_path / "root"
    (root / "C" / "inside").mkdir(parents=True)
    os.symlink("../../..", root / "C" / "up")
    os.symlink("/C/inside", root / "C" / "link")
    (root / "etc" / "moby-agent").mkdir(parents=True)
    (root / "etc" / "moby-agent" / "agent.toml").write_text(
        '[watch]\nshares = ["/C/up"]\nfollow_containers = false\n')
    agent = AgentProcess(root)
    try:
        doc = agent.wait_status(lambda d: "leads out of" in ((d.get("watch") or {}).get("why") or ""))
        assert doc["watch"]["roots"] == [] and doc["watch"]["directories"] == 0
    finally:
        assert agent.stop() == 0
    assert "Traceback" not in "\n".join(agent.seen)
