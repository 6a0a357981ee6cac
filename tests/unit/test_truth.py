"""Status that tells the truth: each fact a state is built from is typed
and kept (a refused mount, a failed pool 1 write, the pool directory in
use), never re-derived from message text or from a config that is not in
use."""

import json
import os

from agent import kvp
from agent.agentconfig import AgentConfig
from agent.loop import Agent
from agent.shares import apply as shares_apply
from agent.shares.plan import AUTH_STATE, BindAlias, MountShare
from agent.system import CommandResult

C = "/c;/C;username=me,password=s3cret,noperm"
POOLS = ("var", "lib", "hyperv")


def fixture(tmp_path, items=(("cifsmount", C),)):
    pool_dir = tmp_path.joinpath(*POOLS)
    pool_dir.mkdir(parents=True)
    (pool_dir / ".kvp_pool_0").write_bytes(kvp.encode(list(items)))
    (pool_dir / ".kvp_pool_1").write_bytes(b"")
    return tmp_path


def status_doc(root):
    with open(os.path.join(root, "run", "moby-agent", "status.json")) as f:
        return json.load(f)


def test_refused_credentials_after_a_warning_line_are_refused_at_once_and_later(tmp_path, monkeypatch):
    """mount.cifs may warn before its error(13) line: the drive shows the
    refused-credentials state right after the mount and at the next pass
    alike (one typed fact, not the first line's prefix)."""
    root = fixture(tmp_path)
    for cls in (MountShare, BindAlias):
        monkeypatch.setattr(cls, "SYSTEM", False)  # run under --root: mount.cifs is faked below
    calls = []

    def fake(argv, timeout, should_stop=lambda: False, detach=False):
        calls.append(argv[0])
        return CommandResult(32, "mount.cifs: warning: no domain given\nmount error(13): Permission denied\n"
                                 "Refer to the mount.cifs(8) manual page (e.g. man mount.cifs)")

    monkeypatch.setattr(shares_apply, "run_command", fake)
    agent = Agent(AgentConfig(), str(root), AgentConfig)
    agent.run_pass()
    assert calls == ["mount.cifs"]
    assert agent.drives == {"/c": AUTH_STATE}
    assert "/c" not in agent.memory.retries  # refused: only a new item is tried
    agent.run_pass()
    assert calls == ["mount.cifs"]  # not tried again
    assert agent.drives == {"/c": AUTH_STATE}
    assert status_doc(root)["shares"] == {"/c": AUTH_STATE}


def _pool1_error_then_fixed(root, monkeypatch, break_it, fix_it):
    agent = Agent(AgentConfig(), str(root), AgentConfig)
    break_it()
    agent.run_pass()
    agent.run_pass()
    pool = status_doc(root)["capabilities"]["pool"]
    assert pool["state"] == "error", pool
    assert "pool 1" in pool["last_error"]
    fix_it()
    agent.run_pass()
    agent.run_pass()
    assert status_doc(root)["capabilities"]["pool"]["state"] == "ok"


def test_a_pool_1_write_that_fails_is_a_pool_error_until_a_write_works(tmp_path, monkeypatch):
    """Read works, the write does not (the file locked, the disk full): the
    pool capability says so, and stops saying so once a write works."""
    root = fixture(tmp_path, items=(("a", "1"),))

    def refuse(*args, **kw):
        raise kvp.KvpError("pool 1 is locked")

    def fixed():
        monkeypatch.undo()

    _pool1_error_then_fixed(root, monkeypatch,
                            lambda: monkeypatch.setattr(kvp, "write_guest_items", refuse), fixed)


def test_pool_1_a_fifo_or_a_directory_is_a_pool_error(tmp_path):
    root = fixture(tmp_path, items=(("a", "1"),))
    pool1 = tmp_path.joinpath(*POOLS, ".kvp_pool_1")
    for make in (lambda: os.mkfifo(pool1), lambda: os.mkdir(pool1)):
        os.unlink(pool1)
        make()
        agent = Agent(AgentConfig(), str(root), AgentConfig)
        agent.run_pass()
        agent.run_pass()
        pool = status_doc(root)["capabilities"]["pool"]
        assert pool["state"] == "error", pool
        (os.rmdir if os.path.isdir(pool1) else os.unlink)(pool1)
        pool1.write_bytes(b"")


def test_live_reload_state_comes_from_the_same_model(tmp_path, monkeypatch):
    """live_reload's state is capability_state over its own note and
    problems, like every other capability's (never a dict built by hand)."""
    from agent.outcome import capability_state

    root = fixture(tmp_path, items=(("a", "1"),))
    agent = Agent(AgentConfig(), str(root), AgentConfig)
    agent.run_pass()
    assert status_doc(root)["capabilities"]["live_reload"] == {
        "state": "inactive", "last_action": "no shared path to watch", "last_error": None}

    def broken():
        raise RuntimeError("injected")

    monkeypatch.setattr(agent, "_update_watch", broken)
    agent.run_pass()
    live = status_doc(root)["capabilities"]["live_reload"]
    note, problems = agent._live_reload()
    assert live == capability_state("live_reload", note, problems, [])
    assert live["state"] == "error" and "injected" in live["last_error"] and live["last_action"]
    assert status_doc(root)["state"] == "degraded: live_reload"


def test_a_reload_that_changes_pool_dir_keeps_the_directory_in_use(tmp_path):
    """kvp.pool_dir applies only at restart: after a reload the agent reads
    and writes the directory it started with, and the status names that one."""
    from agent.agentconfig import load

    root = fixture(tmp_path, items=(("a", "1"),))
    other = tmp_path / "etc" / "moby-agent.toml"
    other.parent.mkdir()
    other.write_text("[kvp]\npool_dir = \"/var/lib/elsewhere\"\n")
    agent = Agent(AgentConfig(), str(root), lambda: load(str(other)))
    agent._reload()
    assert agent.conf.kvp.pool_dir == "/var/lib/elsewhere"
    agent.run_pass()
    pool = status_doc(root)["capabilities"]["pool"]
    assert pool["state"] == "ok" and pool["last_action"].startswith("read pool 0: 1 items")
    assert b"moby-agent.state" in tmp_path.joinpath(*POOLS, ".kvp_pool_1").read_bytes()
    for name in os.listdir(tmp_path.joinpath(*POOLS)):
        os.unlink(tmp_path.joinpath(*POOLS, name))
    os.rmdir(tmp_path.joinpath(*POOLS))
    agent.run_pass()
    pool = status_doc(root)["capabilities"]["pool"]
    assert pool["state"] == "waiting" and "/var/lib/hyperv" in pool["last_error"], pool
    assert "elsewhere" not in json.dumps(status_doc(root))


def test_the_hub_only_sequences_capabilities(tmp_path):
    """A capability's dependent steps form a chain (Action.chain): after one
    fails the later ones of that chain are skipped, whatever the capability;
    what follows an apply is each capability's own after_apply."""
    import inspect
    from dataclasses import dataclass

    from agent import hub
    from agent.hub import Context, Memory
    from agent.outcome import Action
    from agent.shares.plan import SharesState

    @dataclass(frozen=True)
    class Step(Action):
        CAPABILITY = "network"
        n: int

        def name(self):
            return f"step{self.n}"

        def chain(self):
            return "eth0"

    ran = []

    def run(action, ctx):
        ran.append(action.n)
        if action.n == 1:
            raise RuntimeError("first step failed")

    hub.EXECUTORS[Step] = run
    try:
        c = Context(AgentConfig(), str(tmp_path), Memory(), SharesState())
        outcomes = hub.apply((Step(1), Step(2)), c)
    finally:
        del hub.EXECUTORS[Step]
    assert ran == [1] and [o.skipped for o in outcomes] == [False, True]
    source = inspect.getsource(hub)
    for share_logic in ("shares_apply.failed", "shares_apply.succeeded", "SharePlan", "state_file", '"drive"'):
        assert share_logic not in source, share_logic


def test_a_health_answer_takes_no_lock_the_interrupted_thread_may_hold(tmp_path):
    """SIGUSR1's handler runs in the main thread between two bytecodes, maybe
    while it holds the container follower's lock (listing containers,
    describing them for a report): the answer must not need that lock, or
    the agent hangs for good and OpenRC restarts a healthy agent."""
    import signal
    import threading
    import time

    from agent.livereload.containers import ContainerFollower

    root = fixture(tmp_path)
    agent = Agent(AgentConfig(), str(root), AgentConfig)
    agent.run_pass()
    before = status_doc(root)["heartbeat"]
    agent.follower = ContainerFollower(str(root / "docker.sock"), lambda: None)
    agent._pass_deadline = time.monotonic() + 60  # a pass is running
    with agent.follower._lock:  # held by the thread the handler interrupts
        handler = threading.Thread(target=agent._on_signal, args=(signal.SIGUSR1, None), daemon=True)
        handler.start()
        handler.join(timeout=5)
        hung = handler.is_alive()
    handler.join(timeout=5)
    assert not hung, "the health answer waited for the follower's lock"
    assert status_doc(root)["heartbeat"] != before
