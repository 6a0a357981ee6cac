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
