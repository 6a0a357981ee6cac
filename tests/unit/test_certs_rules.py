"""Issue 16 item 2: registry certificates under etc/docker/certs.d/."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.settings import certs
from agent.settings.plan import HostInputs, plan_host

PLAN_ARGS = dict(mount_point="/Database", tag="db", options="x", daemon_json="/etc/docker/daemon.json")
CERT = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIA==\n-----END EC PRIVATE KEY-----\n"
D = "etc/docker/certs.d/"


def plan(db, **kw):
    return plan_host(HostInputs(database_name="n", database_mounted=True, database=db, **kw), **PLAN_ARGS)


def by(part, name):
    return {a.path: a for a in part.actions if a.name() == name}


def test_certificates_are_installed_byte_exact_with_their_modes_and_recorded():
    db = {D + "reg.example:5000/ca.crt": CERT, D + "reg.example:5000/client.cert": CERT,
          D + "reg.example:5000/client.key": KEY, D + "10.0.75.1:443/ca.crt": CERT.replace("\n", "\r\n")}
    p = plan(db)
    writes = by(p, "write-file")
    assert p.problems == ()
    assert writes["/" + D + "reg.example:5000/client.key"].mode == 0o600
    assert writes["/" + D + "reg.example:5000/ca.crt"].mode == 0o644
    assert writes["/" + D + "10.0.75.1:443/ca.crt"].content == CERT.replace("\n", "\r\n").encode()
    record = writes[certs.RECORD].content
    assert certs.parse_record(record) == (tuple(sorted("/" + k for k in db)), None)
    files = {"/" + k: v.encode() for k, v in db.items()}
    assert plan(db, files=files, certs_record=record).actions == ()  # nothing more to do


@pytest.mark.parametrize("key, value, why", [
    (D + "reg/ca.crt", "not a cert", "not a PEM certificate"),
    (D + "reg/client.key", CERT, "not a PEM private key"),
    (D + "reg/notes.txt", "x", "only *.crt, *.cert and *.key"),
    (D + "reg:0/ca.crt", CERT, "port must be from 1 to 65535"),
    (D + "reg:70000/ca.crt", CERT, "port must be from 1 to 65535"),
    (D + "-reg/ca.crt", CERT, "not a host name"),
    (D + "reg/sub/ca.crt", CERT, "<registry>/<file> only"),
    (D + "ca.crt", CERT, "<registry>/<file> only"),
])
def test_a_bad_file_is_a_problem_for_that_file_only(key, value, why):
    p = plan({key: value, D + "good/ca.crt": CERT})
    assert [x.subject for x in p.problems] == [key] and why in str(p.problems[0])
    assert set(by(p, "write-file")) == {"/" + D + "good/ca.crt", certs.RECORD}


def test_what_the_host_removes_is_removed_only_if_the_agent_installed_it():
    record = certs.encode_record(["/" + D + "a/ca.crt", "/" + D + "b/ca.crt", "/" + D + "c/ca.crt"])
    # a/ is still wanted, b/ was removed by the host, c/ is now bad (kept as it is); the user's own d/ is not ours
    p = plan({D + "a/ca.crt": CERT, D + "c/ca.crt": "broken"}, certs_record=record,
             files={"/" + D + "a/ca.crt": CERT.encode()})
    assert [a.path for a in p.actions if a.name() == "remove-file"] == ["/" + D + "b/ca.crt"]
    new = certs.parse_record(by(p, "write-file")[certs.RECORD].content)[0]
    assert new == ("/" + D + "a/ca.crt", "/" + D + "c/ca.crt")


def test_an_unread_database_removes_nothing_and_a_bad_record_removes_nothing():
    record = certs.encode_record(["/" + D + "a/ca.crt"])
    p = plan_host(HostInputs(database_name="n", database_mounted=True, database=None, certs_record=record),
                  **PLAN_ARGS)
    assert [a for a in p.actions if a.name() == "remove-file"] == []
    for bad in (b"not json", b'["/etc/passwd"]', b'["/etc/docker/certs.d/../../shadow"]'):
        p = plan({}, certs_record=bad)
        assert [a for a in p.actions if a.name() == "remove-file"] == []
        assert any(x.subject == certs.RECORD for x in p.problems)


@given(st.from_regex(r"\A[a-z0-9.-]{1,20}(:[0-9]{1,6})?\Z"))
def test_registry_names_property(name):
    host, _, port = name.partition(":")
    labels = host.split(".")
    ok = all(lab and len(lab) <= 63 and lab[0] != "-" and lab[-1] != "-" for lab in labels) and (
        not port or 1 <= int(port) <= 65535)
    assert (certs.registry_problem(name) is None) == ok
