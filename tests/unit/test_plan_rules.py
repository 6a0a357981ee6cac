"""Share planning: rules the session property (test_plan_grammar) does not
reach, each from the README's "Drive sharing" and the mountinfo format;
written against plan_shares and the actions' as_dict(), since plan.py is
being reworked."""

from agent.shares.items import Limits, parse_mount
from agent.shares.mountinfo import parse_mountinfo
from agent.shares.plan import (
    Retry,
    SharesState,
    digest,
    plan_shares,
)

HOST = "10.0.75.1"
ROOT = "22 1 0:21 / / rw,relatime - tmpfs rootfs rw\n"
C = "/c;/C;username=me,password=s3cret,noperm"
D = "/d;/D;username=me,password=s3cret,noperm"


def plan(items, state=SharesState(), mountinfo=ROOT, network_ok=True, now=0.0, retries=None, limits=Limits()):
    return plan_shares(tuple(items), state, parse_mountinfo(mountinfo), HOST, limits, network_ok, now, retries or {})


def dicts(p):
    return [a.as_dict() for a in p.actions if a.as_dict()["action"] != "save-shares"]


def test_mountinfo_fields():
    (e,) = parse_mountinfo("36 35 98:0 /r /mnt\\040two rw,noatime master:1 - cifs //h/c rw,vers=3.1.1\n")
    assert (e.mount_id, e.parent, e.dev, e.root, e.target, e.fstype, e.source, e.options) == (
        36, 35, "98:0", "/r", "/mnt two", "cifs", "//h/c", "rw,vers=3.1.1")
    (e,) = parse_mountinfo("36 35 98:0 / /x rw - tmpfs none\n")  # no super options
    assert (e.target, e.source, e.options) == ("/x", "none", "")
    # Only \ooo (three octal digits) is an escape; other backslashes stay.
    (e,) = parse_mountinfo("36 35 98:0 / /a\\12b\\x rw - tmpfs none rw\n")
    assert e.target == "/a\\12b\\x"
    assert parse_mountinfo("36 35 98:0 / /x rw - tmpfs\n") == ()  # no source: malformed


def test_other_items_before_cifsmount_do_not_stop_it():
    p = plan([("com.docker.database.generation", "7"), ("other", "x"), ("cifsmount", C)])
    assert [d["action"] for d in dicts(p)] == ["mount", "bind"]
    assert p.drive_states == {"/c": "mounting"}


def test_the_configured_pattern_is_used_for_mount_and_umount():
    limits = Limits(pattern=r"^/(c|data)$")
    p = plan([("cifsmount", "/data;;username=u,password=p")], limits=limits)
    assert dicts(p)[0]["target"] == "/data"
    refused = plan([("cifsmount", "/d;;username=u,password=p")], limits=limits)
    assert dicts(refused) == [] and "not allowed" in str(refused.problems[0])
    state = SharesState(drives=(parse_mount("/data;;username=u,password=p", limits),),
                        mounted=(("/data", "x"),))
    p = plan([("cifsumount", "/data;")], state, ROOT + f"30 22 0:50 / /data rw - cifs //{HOST}/data rw\n",
             limits=limits)
    assert {"action": "unmount", "target": "/data"} in dicts(p)


def test_a_foreign_mount_at_the_mount_point_is_not_unmounted():
    """Only the share's own stale mounts are unmounted before mounting."""
    foreign = ROOT + "30 22 0:60 / /c rw - tmpfs tmpfs rw\n"
    p = plan([("cifsmount", C)], mountinfo=foreign)
    assert [d["action"] for d in dicts(p)] == ["mount", "bind"]
    # cifsumount of a drive: the share is unmounted, the foreign mount left.
    state = SharesState(drives=(parse_mount(C),), mounted=(("/c", parse_mount(C).fingerprint()),),
                        seen=(("cifsmount", digest(C)),))
    both = foreign + f"31 30 0:50 / /c rw - cifs //{HOST}/c rw\n"
    p = plan([("cifsmount", C), ("cifsumount", "/c;/C")], state, both)
    assert [d for d in dicts(p) if d["action"] == "unmount"] == [{"action": "unmount", "target": "/c"}]


def test_a_drive_mounted_but_no_longer_known_is_unmounted_and_its_directory_removed():
    state = SharesState(drives=(), mounted=(("/c", "fp-of-an-older-agent"),))
    p = plan([], state, ROOT + f"30 22 0:50 / /c rw - cifs //{HOST}/c rw\n")
    assert dicts(p) == [{"action": "unmount", "target": "/c"}, {"action": "remove-dir", "path": "/c"}]


def test_every_drive_gets_its_state_when_one_waits():
    items = [("cifsmount", C)]
    state = SharesState(drives=(parse_mount(C), parse_mount(D)))
    p = plan(items, state, network_ok=False)
    assert p.drive_states == dict.fromkeys(("/c", "/d"), "waiting: no route to 10.0.75.1: a VPN may have taken the "
                                                                   "10.0.75.0/24 network")
    assert p.waiting_for_network
    spec = parse_mount(C)
    refused = SharesState(drives=(spec, parse_mount(D)), auth_failed=(("/c", spec.fingerprint()),))
    p = plan(items, refused)
    assert p.drive_states["/c"].startswith("failed: the server refused the credentials: re-share")
    assert p.drive_states["/d"] == "mounting"
    retries = {"/c": Retry(1, 5.0, "mount error(112)")}
    p = plan(items, state, retries=retries, now=1.0)
    assert p.drive_states["/c"] == "waiting: mount error(112)"  # no countdown
    assert p.drive_states["/d"] == "mounting"


def test_a_retry_due_now_is_tried():
    retries = {"/c": Retry(1, 5.0, "mount error(112)")}
    assert "mount" in [d["action"] for d in dicts(plan([("cifsmount", C)], now=5.0, retries=retries))]


def test_every_action_belongs_to_its_drive():
    state = SharesState(drives=(parse_mount(C),), mounted=(("/c", parse_mount(C).fingerprint()),))
    stale = ROOT + f"29 22 0:49 / /C rw - cifs //{HOST}/c rw\n30 22 0:50 / /c rw - cifs //{HOST}/c rw\n"
    for p in (plan([("cifsmount", C)], state, stale),
              plan([("cifsmount", C.replace("s3cret", "new"))], state, stale),
              plan([("cifsmount", C), ("cifsumount", "/c;/C")], state, stale)):
        drives = {getattr(a, "drive", "/c") for a in p.actions if a.as_dict()["action"] != "save-shares"}
        assert drives == {"/c"}, [(a.as_dict(), getattr(a, "drive", None)) for a in p.actions]


def test_the_state_keeps_the_domain_and_refuses_what_it_did_not_write():
    spec = parse_mount("/c;/C;username=u,password=p,domain=CORP,noperm")
    state = SharesState(drives=(spec,), mounted=(("/c", "f"),), seen=(("cifsmount", "d"),))
    again = SharesState.from_json(state.to_json())
    assert again == state and again.drives[0].domain == "CORP"
    for bad in (b"[]", b"1", b"null"):
        try:
            SharesState.from_json(bad)
        except ValueError as exc:
            assert str(exc)
        else:
            raise AssertionError(f"{bad!r} accepted")


def test_a_drive_unmounted_then_written_again_with_new_credentials_is_mounted():
    """Each value acts when it changes: the later cifsmount wins over the
    earlier cifsumount still in the pool."""
    state = SharesState(drives=(parse_mount(C),), mounted=(("/c", parse_mount(C).fingerprint()),))
    mounted = ROOT + f"30 22 0:50 / /c rw - cifs //{HOST}/c rw\n31 22 0:50 / /C rw - cifs //{HOST}/c rw\n"
    p = plan([("cifsmount", C), ("cifsumount", "/c;/C")], state, mounted)
    gone = SharesState(drives=(), seen=p.actions[0].seen)
    p = plan([("cifsmount", C.replace("s3cret", "new")), ("cifsumount", "/c;/C")], gone)
    assert [d["action"] for d in dicts(p)] == ["mount", "bind"]
    assert [a.name() for a in p.actions] == ["save-shares", "mount", "bind"]
    assert p.actions[0].as_dict() == {"action": "save-shares", "drives": ["/c"]}
    assert not p.waiting_for_network


def test_a_cifs_mount_of_another_server_at_the_mount_point_is_left_alone():
    other = ROOT + "30 22 0:60 / /c rw - cifs //192.168.1.5/c rw\n"
    p = plan([("cifsmount", C)], mountinfo=other)
    assert [d["action"] for d in dicts(p)] == ["mount", "bind"]


def test_a_forgotten_drive_named_like_the_slash_is_unmounted_by_its_share():
    state = SharesState(drives=(), mounted=(("/X", "fp"),))
    p = plan([], state, ROOT + f"30 22 0:50 / /X rw - cifs //{HOST}/X rw\n")
    assert dicts(p) == [{"action": "unmount", "target": "/X"}, {"action": "remove-dir", "path": "/X"}]
    assert [a.name() for a in p.actions] == ["unmount", "remove-dir"]


def test_a_malformed_mountinfo_line_skips_only_itself():
    text = ROOT + "garbage\n" + f"30 22 0:50 / /c rw - cifs //{HOST}/c rw\n"
    assert [e.target for e in parse_mountinfo(text)] == ["/", "/c"]


def test_a_state_file_with_missing_parts_reads_as_empty_parts():
    assert SharesState.from_json(b"{}") == SharesState()
    spec = parse_mount(C)
    state = SharesState(drives=(spec,), auth_failed=(("/c", spec.fingerprint()),))
    assert SharesState.from_json(state.to_json()) == state
    try:
        SharesState.from_json(b"[]")
    except ValueError as exc:
        assert "not an object" in str(exc)
