"""The loop survives any one pass: an exception in a capability's observe or
plan is caught, logged once with its traceback, reported against that
capability, and the others go on."""

import logging

import pytest

from agent import hub, kvp
from agent.agentconfig import AgentConfig
from agent.loop import Agent

C = "/c;/C;username=me,password=s3cret,noperm"


@pytest.fixture(autouse=True)
def fresh_tracebacks(monkeypatch):
    """hub logs each failure's traceback once per process: a test that
    counts them starts from none (whatever ran before in this process, such
    as mutmut's earlier passes over the same tests)."""
    monkeypatch.setattr(hub, "_LOGGED", set())


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


def test_a_reload_that_raises_anything_keeps_the_previous_config(tmp_path, caplog):
    """SIGHUP with a config whose reading raises something other than
    ConfigError (an OverflowError from a huge integer, once) is logged once
    and the old config stays: the agent does not exit."""
    from agent import agentconfig

    old = agentconfig.parse('[docker]\ndaemon_json = "/etc/docker/old.json"\n')

    def broken():
        raise OverflowError("int too large to convert to float")

    agent = Agent(old, str(fixture(tmp_path)), broken)
    with caplog.at_level(logging.ERROR, logger="moby-agent"):
        agent._reload()
    assert agent.conf is old
    kept = [r for r in caplog.records if "keeping the previous configuration" in r.getMessage()]
    assert len(kept) == 1 and "OverflowError" in kept[0].getMessage()


def test_a_reload_of_a_huge_integer_keeps_the_previous_config(tmp_path, caplog):
    from agent import agentconfig

    cfg = tmp_path / "agent.toml"
    cfg.write_text("[shares]\nmax_id = 1" + "0" * 400 + "\n")
    old = AgentConfig()
    agent = Agent(old, str(fixture(tmp_path)), lambda: agentconfig.load(str(cfg), required=True))
    with caplog.at_level(logging.ERROR, logger="moby-agent"):
        agent._reload()
    assert agent.conf is old
    assert any("shares.max_id: expected 0 to 4294967294" in r.getMessage() for r in caplog.records)
