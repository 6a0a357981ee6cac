"""The loop survives any one pass: an exception in a capability's observe or
plan is caught, logged once with its traceback, reported against that
capability, and the others go on."""

import logging

from agent import hub, kvp
from agent.agentconfig import AgentConfig
from agent.loop import Agent

C = "/c;/C;username=me,password=s3cret,noperm"


def fixture(tmp_path):
    pool_dir = tmp_path / "var" / "lib" / "hyperv"
    pool_dir.mkdir(parents=True)
    (pool_dir / ".kvp_pool_0").write_bytes(kvp.encode([("cifsmount", C), ("a", "1")]))
    (pool_dir / ".kvp_pool_1").write_bytes(b"")
    return tmp_path


def test_a_plan_that_raises_is_its_capabilitys_error_only(tmp_path, monkeypatch, caplog):
    root = fixture(tmp_path)

    def broken(*args, **kw):
        raise KeyError("injected")

    monkeypatch.setattr(hub, "plan_shares", broken)
    obs = hub.observe(AgentConfig(), str(root), None)
    with caplog.at_level(logging.ERROR, logger="moby-agent"):
        plan = hub.plan(obs)
        hub.plan(obs)  # a second pass: no second traceback
    assert [(p.capability, p.subject) for p in plan.problems] == [("shares", "plan")]
    assert "KeyError" in plan.problems[0].text and "s3cret" not in plan.problems[0].text
    assert [a.name() for a in plan.actions] == ["note-host-items"]  # the pool went on
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "injected" in str(tracebacks[0].exc_info[1])


def test_an_observation_that_raises_leaves_its_capabilities_unplanned(tmp_path, monkeypatch):
    root = fixture(tmp_path)

    def broken(*args, **kw):
        raise RecursionError("injected")

    monkeypatch.setattr(hub.settings_apply, "observe_host", broken)
    plan = hub.plan(hub.observe(AgentConfig(), str(root), None))
    assert [p.capability for p in plan.problems] == ["docker_config"]
    # Never planned from a blank it did not see: no database mount, no write.
    assert not [a for a in plan.actions if a.capability() in ("database", "docker_config", "network")]
    assert "mount" in [a.name() for a in plan.actions]  # shares went on


def test_a_pass_that_raises_does_not_end_the_agent(tmp_path, monkeypatch, caplog):
    root = fixture(tmp_path)
    agent = Agent(AgentConfig(), str(root), AgentConfig)
    calls = []

    def flaky(*args, **kw):
        calls.append(1)
        if len(calls) <= 2:
            raise MemoryError("injected")
        return real(*args, **kw)

    real = hub.observe
    monkeypatch.setattr(hub, "observe", flaky)
    with caplog.at_level(logging.ERROR, logger="moby-agent"):
        assert agent._safe_pass() is False
        assert agent._safe_pass() is False
    assert len([r for r in caplog.records if r.exc_info]) == 1  # once per distinct failure
    agent._safe_pass()
    assert agent.passes == 1 and agent.capabilities["pool"]["state"] == "ok"
