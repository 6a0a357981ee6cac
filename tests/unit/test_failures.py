"""Mount failures in words the user can act on: one pure mapping from
mount.cifs's output (and a probe of port 445) to a typed cause, shared by
the drive states, status, pool 1 and doctor.

The outputs are mount.cifs's own (cifs-utils mount.cifs.c): `mount
error(%d): %s` with strerror for most errors, `mount error(%d): could not
connect to %s` (no newline, then `Unable to find suitable address.`) for
ECONNREFUSED/EHOSTUNREACH (and EINPROGRESS in newer versions), and for
EHOSTDOWN either `mount error(112): Host is down` (older) or
`mount error: Server abruptly closed the connection.` (newer)."""

import socket

import pytest

from agent.agentconfig import AgentConfig
from agent.doctor import FAIL, OK, Doctor, host_checks
from agent.shares import failures
from agent.shares.failures import (
    CONNECT_REFUSED,
    HOST_DOWN,
    NO_ROUTE,
    NO_SHARE,
    OPEN,
    OTHER,
    PORT_BLOCKED,
    REFUSED,
    SHARING_OFF,
    TIMEOUT,
    UNREACHABLE,
    Reach,
    explain,
)

HOST = "10.0.75.1"
MANUAL = "Refer to the mount.cifs(8) manual page (e.g. man mount.cifs) and kernel log messages (dmesg)\n"
WORDS = {
    REFUSED: "the server refused the credentials: re-share the drive with the current Windows password",
    PORT_BLOCKED: "10.0.75.1 does not answer on TCP port 445: a firewall (Windows Defender Firewall, a 'Public' "
                  "network profile on DockerNAT) blocks file sharing",
    SHARING_OFF: "nothing listens on TCP port 445 at 10.0.75.1: file sharing is off on the host (enable 'File and "
                 "Printer Sharing for Microsoft Networks' on the DockerNAT adapter; the Server service must be "
                 "running)",
    NO_ROUTE: "no route to 10.0.75.1: a VPN may have taken the 10.0.75.0/24 network",
    NO_SHARE: "the host does not share drive C (share C unknown)",
    HOST_DOWN: "10.0.75.1 did not answer in time: the host is down, asleep or restarting",
}


@pytest.mark.parametrize("output, kind, code", [
    ("mount error(13): Permission denied\n" + MANUAL, REFUSED, "mount error(13)"),
    ("mount.cifs: warning: no domain given\nmount error(13): Permission denied\n" + MANUAL, REFUSED,
     "mount error(13)"),
    ("mount error(2): No such file or directory\n" + MANUAL, NO_SHARE, "mount error(2)"),
    # A reset: nothing listens (a firewall drops instead, and is told by the probe's timeout).
    ("mount error(111): could not connect to 10.0.75.1Unable to find suitable address.\n", SHARING_OFF,
     "mount error(111)"),
    ("mount error(111): Connection refused\n" + MANUAL, SHARING_OFF, "mount error(111)"),
    ("mount error(113): could not connect to 10.0.75.1Unable to find suitable address.\n", NO_ROUTE,
     "mount error(113)"),
    ("mount error(113): No route to host\n" + MANUAL, NO_ROUTE, "mount error(113)"),
    ("mount error(112): Host is down\n" + MANUAL, HOST_DOWN, "mount error(112)"),
    ("mount error: Server abruptly closed the connection.\nThis can happen if the server does not support the SMB "
     "version you are trying to use.\n" + MANUAL, HOST_DOWN, "mount error(112)"),
    ("mount error(115): Operation now in progress\n" + MANUAL, HOST_DOWN, "mount error(115)"),
    ("mount error(110): Connection timed out\n" + MANUAL, HOST_DOWN, "mount error(110)"),
])
def test_mount_cifs_outputs_without_a_probe(output, kind, code):
    cause = explain(output, HOST, "c")
    assert (cause.kind, cause.text, cause.code) == (kind, WORDS[kind], code)
    assert cause.line() == f"{WORDS[kind]} ({code})"


def test_the_kernel_log_name_of_an_unknown_share():
    cause = explain("CIFS: VFS: \\\\10.0.75.1\\C: BAD_NETWORK_NAME: STATUS_BAD_NETWORK_NAME\n", HOST, "c")
    assert (cause.kind, cause.text, cause.code) == (NO_SHARE, WORDS[NO_SHARE], "")  # no mount error number


@pytest.mark.parametrize("number", [111, 115, 110, 112])
@pytest.mark.parametrize("reach, kind", [
    (Reach(None), NO_ROUTE),
    (Reach("", UNREACHABLE), NO_ROUTE),
    (Reach("", TIMEOUT), PORT_BLOCKED),
    (Reach("", CONNECT_REFUSED), SHARING_OFF),
])
def test_a_probe_after_a_network_error_names_the_cause(number, reach, kind):
    cause = explain(f"mount error({number}): x\n", HOST, "c", reach)
    assert (cause.kind, cause.text, cause.code) == (kind, WORDS[kind], f"mount error({number})")
    other = explain(f"mount error({number}): x\n", "192.168.5.1", "c", reach)  # the words name the host probed
    assert "192.168.5.1" in other.text and HOST not in other.text


def test_port_445_open_after_a_timeout_is_a_host_that_was_down():
    cause = explain("mount error(115): Operation now in progress\n", HOST, "c", Reach("", OPEN))
    assert (cause.kind, cause.text, cause.code) == (HOST_DOWN, WORDS[HOST_DOWN], "mount error(115)")
    closed = explain("mount error: Server abruptly closed the connection.\n", HOST, "c", Reach("", OPEN))
    assert (closed.kind, closed.text, closed.code) == (
        HOST_DOWN, "10.0.75.1 closed the connection: the server is restarting, or does not speak the SMB version "
        "asked for (vers=)", "mount error(112)")


def test_a_probe_never_overrides_the_servers_own_answer():
    for output, kind in (("mount error(13): Permission denied", REFUSED), ("mount error(2): x", NO_SHARE)):
        assert explain(output, HOST, "c", Reach(None)).kind == kind


def test_anything_else_is_its_first_line():
    cause = explain("\nmount error(22): Invalid argument\n" + MANUAL, HOST, "c")
    assert (cause.kind, cause.text, cause.code) == (OTHER, "mount error(22): Invalid argument", "")
    empty = explain("", HOST, "c")
    assert (empty.kind, empty.text, empty.code) == (OTHER, "mount.cifs failed", "")
    assert (cause.line(), empty.line()) == ("mount error(22): Invalid argument", "mount.cifs failed")  # no " ()"


@pytest.mark.parametrize("reach", [Reach(None), Reach("", UNREACHABLE), Reach("", TIMEOUT), Reach("", CONNECT_REFUSED),
                                   Reach("", OPEN)])
def test_doctor_and_the_agent_give_the_same_verdict_on_the_same_probe(reach):
    """The shared-check rule: both take failures.reach_cause's words."""
    agent = explain("mount error(115): Operation now in progress\n", HOST, "c", reach)
    checks = Doctor(AgentConfig(), "/", probe=lambda host: reach).host()
    assert checks == host_checks(HOST, reach)
    worst = checks[-1]
    if agent.kind in (NO_ROUTE, PORT_BLOCKED, SHARING_OFF):
        assert (worst.level, worst.text) == (FAIL, WORDS[agent.kind])
    else:
        assert [c.level for c in checks] == [OK, OK]


def test_doctor_does_not_probe_under_a_fixture_root(tmp_path):
    def boom(host):
        raise AssertionError("probed")

    (check,) = Doctor(AgentConfig(), str(tmp_path), probe=boom).host()
    assert check.text.startswith("not probed under --root")


def test_a_routed_host_is_never_probed_on_445(monkeypatch):
    import agent.network.apply as net

    monkeypatch.setattr(net, "route_via", lambda host: "192.168.1.1")

    def no_connect(*a, **k):
        raise AssertionError("connected")

    monkeypatch.setattr(socket, "create_connection", no_connect)
    assert failures.probe_smb(HOST) == Reach("192.168.1.1")
    assert "gateway 192.168.1.1" in host_checks(HOST, Reach("192.168.1.1"))[0].text


def test_the_words_reach_the_drive_state_status_and_pool_1(tmp_path, monkeypatch):
    from agent import kvp
    from agent.loop import Agent
    from agent.shares import apply as shares_apply
    from agent.shares.plan import BindAlias, MountShare
    from agent.system import CommandResult
    from tests.unit.test_truth import fixture, status_doc

    root = fixture(tmp_path)
    for cls in (MountShare, BindAlias):
        monkeypatch.setattr(cls, "SYSTEM", False)  # mount.cifs is faked below
    monkeypatch.setattr(shares_apply, "run_command", lambda argv, timeout, should_stop=None, detach=False:
                        CommandResult(32, "mount error(111): could not connect to 10.0.75.1Unable to find suitable "
                                          "address.\n"))
    agent = Agent(AgentConfig(), str(root), AgentConfig)
    agent.run_pass()
    want = f"waiting: {WORDS[SHARING_OFF]} (mount error(111))"
    assert agent.drives == {"/c": want}
    assert "/c" in agent.memory.retries  # a port nothing listens on is retried with backoff
    assert status_doc(root)["shares"] == {"/c": want}
    pool1 = dict(kvp.read_pool(str(root / "var/lib/hyperv/.kvp_pool_1")).items)
    assert pool1["moby-agent.share./c"] == want
