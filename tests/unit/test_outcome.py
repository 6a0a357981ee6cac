"""One model of outcomes: each capability's state comes from its own actions
and problems; a drive shows its first real error; doctor and the agent read
the same inputs the same way."""

import socket

import pytest

from agent import hub, kvp
from agent.agentconfig import AgentConfig
from agent.doctor import OK, Doctor
from agent.kvp.hostitems import NoteHostItems
from agent.outcome import CAPABILITIES, Note, Outcome, Problem, capability_state
from agent.settings.plan import ApplyDocker, WriteFile
from agent.shares.items import parse_mount
from agent.shares.plan import REFUSED, BindAlias, MountShare, drive_states_after

C = "/c;/C;username=me,password=s3cret,noperm"
D = "/d;/D;username=me,password=s3cret,noperm"
MOUNT_ERROR = "mount error(13): Permission denied\nRefer to the mount.cifs(8) manual page (e.g. man mount.cifs)"


def states(plan, outcomes):
    return {name: capability_state(name, plan.notes.get(name, Note("", False)), plan.problems, outcomes)["state"]
            for name in CAPABILITIES if name != "live_reload"}


def obs(items):
    return hub.Observation(pool_dir_exists=True, pools={0: kvp.Pool(tuple(items)), 1: kvp.Pool(())},
                           seen_host_items=tuple(items))


def test_a_failed_mount_is_a_shares_error_and_the_pool_stays_ok():
    plan = hub.plan(obs([("cifsmount", C)]))
    mount = next(a for a in plan.actions if isinstance(a, MountShare))
    bind = next(a for a in plan.actions if isinstance(a, BindAlias))
    outcomes = [Outcome(mount, False, MOUNT_ERROR, cause=REFUSED),
                Outcome(bind, False, "skipped: an earlier step for this drive failed", skipped=True)]
    got = states(plan, outcomes)
    assert got["shares"] == "error" and got["pool"] == "ok"
    planned = plan.parts["shares"].drive_states
    # The drive shows the mount's own error (first line), never the skip.
    assert drive_states_after(planned, outcomes, set())["/c"].startswith(
        "failed: the server refused the credentials: re-share the drive with the current Windows password")
    # The state follows the typed cause, not the text.
    assert drive_states_after(planned, [Outcome(mount, False, MOUNT_ERROR)], set())["/c"] == (
        "failed: mount error(13): Permission denied")
    down = [Outcome(mount, False, "mount error(112): Host is down\nRefer to the manual"),
            Outcome(bind, False, "skipped", skipped=True)]
    assert drive_states_after(planned, down, {"/c"}) == {"/c": "waiting: mount error(112): Host is down"}
    assert drive_states_after(planned, down, set()) == {"/c": "failed: mount error(112): Host is down"}


def test_a_broken_daemon_json_is_a_docker_config_error_only():
    plan = hub.Plan((), (Problem("docker_config", "/etc/docker/daemon.json", "daemon.json not changed: bad"),),
                    notes={"docker_config": Note("previous daemon.json kept"), "pool": Note("read pool 0")})
    got = states(plan, [])
    assert got["docker_config"] == "error"
    assert [n for n, s in got.items() if s == "error"] == ["docker_config"]


def test_a_failed_write_of_daemon_json_is_docker_configs_and_a_copied_file_the_databases():
    daemon = WriteFile("/etc/docker/daemon.json", "{}", "layers", "docker_config")
    hosts = WriteFile("/etc/hosts", "x", "database key etc/hosts")
    plan = hub.Plan((daemon, hosts), ())
    got = states(plan, [Outcome(daemon, False, "disk full"), Outcome(hosts, True)])
    assert got["docker_config"] == "error" and got["database"] == "ok" and got["pool"] == "inactive"
    assert ApplyDocker("reload", ("debug",)).capability() == "docker_config"


def test_a_rejected_cifsumount_is_a_shares_problem_and_other_drives_are_untouched():
    mounted = hub.plan(obs([("cifsmount", C)]))
    first = next(a for a in mounted.actions if a.name() == "save-shares")
    from agent.shares.plan import SharesState

    state = SharesState(drives=first.drives, seen=first.seen, mounted=(("/c", parse_mount(C).fingerprint()),))
    entries = (
        "22 1 0:21 / / rw - tmpfs rootfs rw\n"
        "30 22 0:30 / /c rw - cifs //10.0.75.1/c rw\n"
        "31 22 0:30 / /C rw - cifs //10.0.75.1/c rw\n"
    )
    from agent.shares.mountinfo import parse_mountinfo

    o = hub.Observation(pool_dir_exists=True,
                        pools={0: kvp.Pool((("cifsmount", C), ("cifsumount", "/etc;/x"))), 1: kvp.Pool(())},
                        seen_host_items=None, shares=state, mounts=parse_mountinfo(entries))
    plan = hub.plan(o)
    assert [(p.capability, p.subject) for p in plan.problems] == [("shares", "cifsumount")]
    assert not [a for a in plan.actions if a.name() in ("mount", "unmount", "bind", "remove-dir")]
    assert plan.parts["shares"].drive_states == {"/c": "mounted"}
    got = states(plan, [Outcome(a, True) for a in plan.actions])
    assert got["shares"] == "error" and got["pool"] == "ok"


def test_a_host_item_note_belongs_to_the_pool():
    action = NoteHostItems(("a",), (), (), (("a", "1"),))
    assert action.capability() == "pool"
    plan = hub.Plan((action,), ())
    assert states(plan, [Outcome(action, False, "boom")])["pool"] == "error"


def test_problem_levels_order_the_state():
    note = Note("x")
    assert capability_state("pool", note, [Problem("pool", "p", "w", "warning")], [])["state"] == "warning"
    assert capability_state("pool", note, [Problem("pool", "p", "w", "warning"),
                                           Problem("pool", "p", "e")], [])["state"] == "error"
    assert capability_state("pool", note, [Problem("shares", "p", "e")], [])["state"] == "ok"
    assert capability_state("pool", Note("x", active=False), [], [])["state"] == "inactive"


CMDLINES = [
    ('com.docker.database="com.docker.driver.amd64-linux" quiet', "com.docker.driver.amd64-linux"),
    ("com.docker.database=plain", "plain"),
    ('com.docker.database=""', None),
    ("com.docker.database=", None),
    ('com.docker.database="unbalanced', "unbalanced"),
    ("xcom.docker.database=x", None),
    ("com.docker.databasex=x", None),
    ('com.docker.database="../etc"', None),
    ("", None),
]


@pytest.mark.parametrize("cmdline,name", CMDLINES)
def test_doctor_and_the_agent_read_the_kernel_command_line_alike(tmp_path, cmdline, name):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cmdline").write_text(cmdline + "\n")
    conf = AgentConfig()
    agent_name = hub.observe(conf, str(tmp_path), None).host_inputs.database_name
    verdict = Doctor(conf, str(tmp_path)).database()[0]
    assert agent_name == name
    assert (verdict.level == OK) == (agent_name is not None), verdict.text


MOUNTINFOS = [
    ("40 1 0:40 / /Database rw - 9p db rw,trans=virtio\n", True),
    ("40 1 0:40 / /Database\\040x rw - 9p db rw\n", False),   # /Database x, escaped
    ("40 1 0:40 / /Database rw shared:1 - 9p db rw\n", True),  # optional fields
    ("garbage /Database\n", False),
    ("40 1 0:40 / /Databases rw - 9p db rw\n", False),
]


@pytest.mark.parametrize("mountinfo,mounted", MOUNTINFOS)
def test_doctor_and_the_agent_read_the_mount_table_alike(tmp_path, mountinfo, mounted):
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "cmdline").write_text("com.docker.database=x\n")
    (tmp_path / "proc" / "self" / "mountinfo").write_text(mountinfo)
    conf = AgentConfig()
    agent_view = hub.observe(conf, str(tmp_path), None).host_inputs.database_mounted
    verdict = Doctor(conf, str(tmp_path)).database()[1]
    assert agent_view == mounted
    assert (verdict.level == OK) == mounted, verdict.text


def test_doctor_and_status_agree_on_whether_the_agent_runs(tmp_path):
    """One answer to "is the agent running" (status.running_pid), whatever
    the status file says: doctor's agent check and `moby-agent status`."""
    import json
    import os

    from agent import status

    (tmp_path / "run" / "moby-agent").mkdir(parents=True)
    path = tmp_path / "run" / "moby-agent" / "status.json"
    conf = AgentConfig()
    for pid in (-1, 0, 1, os.getpid(), 2**40, "12", None):
        path.write_text(json.dumps({"pid": pid, "state": "running", "capabilities": {}}))
        doc = status.load(str(path))
        running = status.running_pid(doc, str(tmp_path)) is not None
        verdict = Doctor(conf, str(tmp_path)).agent()[0]
        assert not running  # none of them is an agent running against this root
        assert verdict.level != OK and "not running" in verdict.text, (pid, verdict)


def test_doctor_and_the_agent_read_a_fifo_command_line_alike(tmp_path):
    """A FIFO where the command line should be: both say it is not a plain
    file (a database problem), neither hangs nor calls it a failed check."""
    import os

    from agent.doctor import FAIL

    (tmp_path / "proc").mkdir()
    os.mkfifo(tmp_path / "proc" / "cmdline")
    conf = AgentConfig()
    inputs = hub.observe(conf, str(tmp_path), None).host_inputs
    (problem,) = [p for p in inputs.problems if p.capability == "database"]
    checks = {c.text: c for c in Doctor(conf, str(tmp_path)).run()}
    verdict = Doctor(conf, str(tmp_path)).database()[0]
    assert verdict.level == FAIL and verdict.text == problem.text
    assert not [t for t in checks if "the check itself failed" in t]


class _Route:
    def __init__(self, attrs):
        self.attrs = attrs

    def get_attr(self, name):
        return self.attrs.get(name)


def _fake_iproute(routes):
    class FakeIPRoute:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def route(self, cmd, dst):
            if isinstance(routes, Exception):
                raise routes
            return routes

    return FakeIPRoute


@pytest.mark.parametrize("routes,has_route", [
    ([], False),                                                            # no route
    ([_Route({"RTA_GATEWAY": "192.168.1.1"})], False),                      # no source address
    ([_Route({"RTA_PREFSRC": "10.0.75.2", "RTA_GATEWAY": "192.168.1.1"})], True),  # through a gateway
    ([_Route({"RTA_PREFSRC": "10.0.75.2"})], True),                         # on-link
    (OSError(101, "Network is unreachable"), False),
])
def test_doctor_and_the_agent_read_the_route_alike(monkeypatch, routes, has_route):
    """The same netlink answer gives the agent's network verdict and
    doctor's host check (one route lookup, network.apply.route_via)."""
    import pyroute2

    from agent.doctor import FAIL
    from agent.shares.plan import Retry

    monkeypatch.setattr(pyroute2, "IPRoute", _fake_iproute(routes))

    def no_smb(*args, **kw):
        raise OSError(111, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", no_smb)
    conf = AgentConfig()
    network_ok = hub.observe(conf, "/", None, retries={"/c": Retry(1, 0.0, "x")}).network_ok
    host = Doctor(conf, "/").host()[0]
    assert network_ok is has_route
    assert (host.level == FAIL and host.text.startswith("no route")) is (not has_route), host
    if has_route:
        assert ("gateway" in host.text) is ("RTA_GATEWAY" in routes[0].attrs), host


def test_a_mount_that_went_through_is_mounted_and_an_empty_error_still_fails():
    plan = hub.plan(obs([("cifsmount", C)]))
    mount = next(a for a in plan.actions if isinstance(a, MountShare))
    bind = next(a for a in plan.actions if isinstance(a, BindAlias))
    planned = plan.parts["shares"].drive_states
    assert planned["/c"] == "mounting"
    # Both steps ok: the drive is mounted (an ok step records no error).
    assert drive_states_after(planned, [Outcome(mount, True), Outcome(bind, True)], set()) == {"/c": "mounted"}
    # A failure with no words at all still says the drive failed.
    assert drive_states_after(planned, [Outcome(mount, False, "")], set()) == {"/c": "failed: failed"}


def test_a_mount_s_deadline_outlasts_its_own_timeout():
    """The healthcheck answers "alive" while an action is within its
    deadline: a mount that waits its whole mount_timeout on a host that
    drops packets is not a stuck loop."""
    from agent.agentconfig import AgentConfig

    plan = hub.plan(obs([("cifsmount", C)]))
    mount = next(a for a in plan.actions if isinstance(a, MountShare))
    conf = AgentConfig()
    assert mount.deadline(conf) > conf.shares.mount_timeout
