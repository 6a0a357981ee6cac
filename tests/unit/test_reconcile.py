from agent import hub, kvp, status
from agent.agentconfig import AgentConfig
from agent.hub import Context, Memory, NoteHostItems, Observation
from agent.shares.plan import SharesState


def ctx(tmp_path, memory=None):
    return Context(AgentConfig(), str(tmp_path), memory or Memory(), SharesState())


def obs(items, seen=None, warnings=(), guest=()):
    return Observation(
        pool_dir_exists=True,
        pools={0: kvp.Pool(tuple(items), tuple(warnings)), 1: kvp.Pool(tuple(guest))},
        seen_host_items=seen,
    )


def test_plan_is_pure_and_repeatable():
    o = obs([("a", "1")])
    assert hub.plan(o) == hub.plan(o)


def test_plan_names_what_changed():
    p = hub.plan(obs([("a", "1"), ("b", "3"), ("c", "4")], seen=(("a", "1"), ("b", "2"), ("d", "5"))))
    (action,) = p.actions
    assert isinstance(action, NoteHostItems)
    assert (action.added, action.changed, action.removed) == (("c",), ("b",), ("d",))


def test_nothing_to_do_after_apply(tmp_path):
    o = obs([("note", "x")])
    c = ctx(tmp_path)
    outcomes = hub.apply(hub.plan(o).actions, c)
    assert all(x.ok for x in outcomes)
    assert hub.plan(obs(o.pools[0].items, seen=c.memory.seen_host_items)).actions == ()


def test_empty_pool_and_no_memory_is_nothing_to_do():
    assert hub.plan(obs([])).actions == ()


def test_pool_warnings_are_problems():
    p = hub.plan(obs([], warnings=["trailing partial record of 3 bytes ignored"]))
    assert [(x.capability, x.level, x.text) for x in p.problems] == [
        ("pool", "warning", "pool 0: trailing partial record of 3 bytes ignored")]


def test_plan_json_carries_no_secret():
    p = hub.plan(obs([("cifsmount", "/c;/C;username=u,password=hunter2,noperm")]))
    assert "hunter2" not in str(p.as_dict())


def test_one_failure_does_not_stop_the_others(tmp_path):
    class Broken(hub.Action):
        def name(self):
            return "broken"

    good = NoteHostItems(added=("a",), changed=(), removed=(), items=(("a", "1"),))
    c = ctx(tmp_path)
    outcomes = hub.apply((Broken(), good), c)
    assert [o.ok for o in outcomes] == [False, True]
    assert "no executor" in outcomes[0].error
    assert c.memory.seen_host_items == (("a", "1"),)


def test_guest_items_are_rewritten_only_on_change():
    doc = {"state": "running", "version": "1.0"}
    wanted = status.guest_items(doc)
    current = kvp.Pool((("moby-agent.state", "running"), ("moby-agent.version", "1.0"), ("other", "x")))
    assert status.guest_changes(current, wanted) == {}
    stale = kvp.Pool((("moby-agent.state", "stopped"), ("moby-agent.share./z", "mounted")))
    assert status.guest_changes(stale, wanted) == {
        "moby-agent.state": "running",
        "moby-agent.version": "1.0",
        "moby-agent.share./z": None,
    }


def test_status_exit_code_follows_capabilities():
    caps = {"pool": status.capability("ok"), "shares": status.capability("error", None, "boom")}
    doc = status.document(pid=1, started=0, passes=1, last_pass=None, capabilities=caps, heartbeat=0)
    assert doc["state"] == "degraded: shares"
    text, code = status.describe(doc, alive=True)
    assert code == 1 and "error: boom" in text
    caps["shares"] = status.capability("inactive")
    doc = status.document(pid=1, started=0, passes=1, last_pass=None, capabilities=caps, heartbeat=0)
    assert status.describe(doc, alive=True)[1] == 0
    assert status.describe(doc, alive=False)[1] == 1
