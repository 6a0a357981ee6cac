"""Issue 16 item 3: one bad key is a problem for that key only; the rest of
the database still applies. Read from a real tree, planned as a pass does."""

import json
import os
import socket

from agent.agentconfig import AgentConfig
from agent.settings import database
from agent.settings.apply import observe_host
from agent.settings.plan import plan_host
from agent.shares.mountinfo import MountEntry

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _tree(root):
    top = root / "Database/branch/master/ro/n"
    (top / "etc/docker/certs.d/reg.example:5000").mkdir(parents=True)
    (top / "net").mkdir()
    (top / "proxy").mkdir()
    (root / "proc").mkdir()
    (root / "proc/cmdline").write_text('com.docker.database="n"\n')
    (top / "etc/docker/daemon.json").write_text('{"debug": true}')
    (top / "etc/hosts").write_text("10.0.0.1 a\n")
    (top / "etc/docker/certs.d/reg.example:5000/ca.crt").write_text(CA)
    (top / "etc/resolv.conf").write_bytes(b"x" * (database.MAX_FILE + 1))  # oversized
    (top / "etc/odd name").write_text("x")  # odd name
    (top / "etc/docker/certs.d/a:b").mkdir()  # not host:port
    (top / "proxy/http").write_bytes(b"\xff\xfehttp://p:1")  # binary where text is expected
    (top / "net/config").write_bytes(b"st\xffatic")
    os.mkfifo(top / "etc/sysctl.conf")  # a FIFO
    (top / "etc/docker/linked.json").symlink_to("/etc/passwd")  # a symlink
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(top / "etc/sock"))
    return sock


def test_each_bad_key_is_a_problem_of_its_own_and_the_rest_applies(tmp_path):
    sock = _tree(tmp_path)
    try:
        mounts = (MountEntry(1, 0, "0:1", "/", "/Database", "9p", "db", "rw"),)
        inputs = observe_host(AgentConfig(), str(tmp_path), mounts, live=False)
    finally:
        sock.close()
    conf = AgentConfig()
    part = plan_host(inputs, mount_point="/Database", tag="db", options="x", daemon_json=conf.docker.daemon_json)
    subjects = sorted(p.subject for p in part.problems)
    assert subjects == sorted(["etc/resolv.conf", "etc/odd name", "etc/docker/certs.d/a:b", "proxy/http",
                               "net/config", "etc/sysctl.conf", "etc/docker/linked.json", "etc/sock"]), subjects
    writes = {a.path: a for a in part.actions if a.name() == "write-file"}
    assert set(writes) == {"/etc/docker/daemon.json", "/etc/hosts", "/etc/docker/certs.d/reg.example:5000/ca.crt",
                           "/etc/docker/certs.d/.moby-agent-installed.json"}
    assert writes["/etc/docker/certs.d/reg.example:5000/ca.crt"].content == CA.encode()
    assert inputs.database is not None and len(inputs.database) == 5  # the good keys and the binary two


def test_host_port_names_are_keys_and_other_colons_are_not():
    assert database.check_key("etc/docker/certs.d/reg:5000/ca.crt") == "etc/docker/certs.d/reg:5000/ca.crt"
    for bad in ("a:b", "reg:123456", "reg:5000:1", ":5000", "reg:"):
        try:
            database.check_key(f"etc/docker/certs.d/{bad}")
        except database.DatabaseError:
            continue
        raise AssertionError(bad)


def test_an_unreadable_drop_in_is_its_own_problem_and_the_others_apply(tmp_path):
    """A FIFO among the drop-ins: reported, left out; the readable drop-in
    still renders (read as "" it failed the whole daemon.json as bad JSON)."""
    dropins = tmp_path / "etc/moby-agent/daemon.json.d"
    dropins.mkdir(parents=True)
    (dropins / "10-debug.json").write_text('{"debug": true}')
    os.mkfifo(dropins / "20-fifo.json")
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cmdline").write_text("quiet\n")
    inputs = observe_host(AgentConfig(), str(tmp_path), (), live=False)
    conf = AgentConfig()
    part = plan_host(inputs, mount_point="/Database", tag="db", options="x", daemon_json=conf.docker.daemon_json)
    assert [p.subject for p in part.problems if p.capability == "docker_config"] == \
        ["/etc/moby-agent/daemon.json.d/20-fifo.json"], part.problems
    writes = {a.path: a for a in part.actions if a.name() == "write-file"}
    assert json.loads(writes["/etc/docker/daemon.json"].content) == {"debug": True}
