"""First tests in the stand-in MobyLinuxVM: boot, OpenRC, the real KVP path."""

import time


def rc_states(guest):
    return guest.rc_states()


def test_default_runlevel_with_the_agent_started(guest):
    assert guest.read("/run/openrc/softlevel").strip() == "default"
    assert rc_states(guest)["moby-agent"] == "started"
    status = guest.run(["moby-agent", "status"])
    assert status.returncode == 0, status.stdout + status.stderr


def test_no_service_is_crashed(guest):
    states = rc_states(guest)
    assert "crashed" not in states.values(), states


def test_hv_kvp_daemon_runs_under_supervision(guest):
    assert rc_states(guest)["hv_kvp_daemon"] == "started"
    ps = guest.run(["ps", "-eo", "pid=,ppid=,args="]).stdout.splitlines()
    rows = [line.split(None, 2) for line in ps]
    daemon = [r for r in rows if r[2] == "/usr/sbin/hv_kvp_daemon -n"]
    assert len(daemon) == 1, ps
    parent = [r for r in rows if r[0] == daemon[0][1]]
    assert parent and parent[0][2].startswith("supervise-daemon hv_kvp_daemon"), parent


def test_host_set_reaches_kvp_dump_within_2s(guest):
    value = f"pushed at {time.time()}"
    guest.kvp.set(0, "test-item", value)
    t0 = time.monotonic()
    guest.wait(lambda: value in guest.run(["moby-agent", "kvp", "dump"]).stdout, timeout=2, what="kvp dump")
    print(f"host SET to kvp dump: {time.monotonic() - t0:.2f} s")
    guest.kvp.delete(0, "test-item")
    guest.wait(lambda: "test-item" not in guest.run(["moby-agent", "kvp", "dump"]).stdout, timeout=2,
               what="the item to go")


def test_agent_pool1_items_reach_the_host(guest):
    items = dict(guest.kvp.enumerate(1))
    assert items["moby-agent.state"] == "running"
    assert items["moby-agent.version"]
    guest.run(["moby-agent", "kvp", "set", "from-guest", "hello host"], timeout=10)
    assert ("from-guest", "hello host") in guest.kvp.enumerate(1)
    guest.run(["moby-agent", "kvp", "delete", "from-guest"])
    assert "from-guest" not in dict(guest.kvp.enumerate(1))
