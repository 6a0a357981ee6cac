import json
import re

from hypothesis import given
from hypothesis import strategies as st

from agent.shares.items import Limits, parse_mount
from agent.shares.mountinfo import parse_mountinfo
from agent.shares.plan import (
    BindAlias,
    MountShare,
    RemoveDir,
    Retry,
    SaveShares,
    SharesState,
    Unmount,
    digest,
    plan_shares,
)
from tests.unit.share_rules import allowed_option

HOST = "10.0.75.1"
C = "/c;/C;username=me,password=s3cret,noperm"
D = "/d;/D;username=me,password=s3cret,noperm"

ROOT = "22 1 0:21 / / rw,relatime - tmpfs rootfs rw\n"


def cifs_line(mid, target, dev="0:50", share="c"):
    return f"{mid} 22 {dev} / {target} rw,relatime - cifs //{HOST}/{share} rw,vers=3.1.1,username=me,noperm\n"


def bind_line(mid, target, dev="0:50"):
    return f"{mid} 22 {dev} / {target} rw,relatime - cifs //{HOST}/c rw,vers=3.1.1,username=me\n"


def plan(items, state=SharesState(), mountinfo=ROOT, network_ok=True, now=0.0, retries=None):
    return plan_shares(tuple(items), state, parse_mountinfo(mountinfo), HOST, Limits(), network_ok, now, retries or {})


def applied(state, p):
    """The state the executor leaves after every action succeeded."""
    mounted = dict(state.mounted)
    for a in p.actions:
        if isinstance(a, SaveShares):
            state = SharesState(a.drives, state.mounted, a.seen, state.auth_failed)
        elif isinstance(a, MountShare):
            mounted[a.drive] = a.spec.fingerprint()
        elif isinstance(a, Unmount) and a.target == a.drive:
            mounted.pop(a.drive)
        elif isinstance(a, RemoveDir) and a.path == a.drive:
            mounted.pop(a.drive, None)
    return SharesState(state.drives, tuple(sorted(mounted.items())), state.seen, state.auth_failed)


def test_parse_mountinfo_with_escapes_and_optional_fields():
    text = "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n"
    (entry,) = parse_mountinfo(text + "garbage line\n")
    assert (entry.target, entry.fstype, entry.source, entry.dev) == ("/mnt two", "ext3", "/dev/root", "98:0")


@given(st.text(max_size=500))
def test_parse_mountinfo_never_raises(text):
    parse_mountinfo(text)


def test_new_item_mounts_and_binds_then_nothing_to_do():
    p = plan([("cifsmount", C)])
    names = [a.name() for a in p.actions]
    assert names == ["save-shares", "mount", "bind"]
    mount = p.actions[1].as_dict()
    assert mount == {"action": "mount", "source": "//10.0.75.1/c", "target": "/c", "fstype": "cifs",
                     "options": ["noperm", "username=me", "password=***"]}
    assert p.actions[2].as_dict() == {"action": "bind", "source": "/c", "target": "/C"}
    assert "s3cret" not in json.dumps([a.as_dict() for a in p.actions])
    state = applied(SharesState(), p)
    again = plan([("cifsmount", C)], state, ROOT + cifs_line(30, "/c") + bind_line(31, "/C"))
    assert again.actions == () and again.drive_states == {"/c": "mounted"}


def test_missing_alias_bind_is_restored_alone():
    state = applied(SharesState(), plan([("cifsmount", C)]))
    p = plan([("cifsmount", C)], state, ROOT + cifs_line(30, "/c"))
    assert p.actions == (BindAlias("/c", "/c", "/C"),)


def test_new_password_remounts():
    state = applied(SharesState(), plan([("cifsmount", C)]))
    mounted = ROOT + cifs_line(30, "/c") + bind_line(31, "/C")
    p = plan([("cifsmount", C.replace("s3cret", "n3w"))], state, mounted)
    assert [a.as_dict() for a in p.actions[1:]] == [
        {"action": "unmount", "target": "/C"},
        {"action": "unmount", "target": "/c"},
        {"action": "mount", "source": "//10.0.75.1/c", "target": "/c", "fstype": "cifs",
         "options": ["noperm", "username=me", "password=***"]},
        {"action": "bind", "source": "/c", "target": "/C"},
    ]


def test_umount_item_unmounts_both_and_removes_directories():
    state = applied(SharesState(), plan([("cifsmount", C)]))
    mounted = ROOT + cifs_line(30, "/c") + bind_line(31, "/C")
    p = plan([("cifsmount", C), ("cifsumount", "/c;/C")], state, mounted)
    assert [a.as_dict() for a in p.actions[1:]] == [
        {"action": "unmount", "target": "/C"},
        {"action": "unmount", "target": "/c"},
        {"action": "remove-dir", "path": "/C"},
        {"action": "remove-dir", "path": "/c"},
    ]
    after = applied(state, p)
    assert after.drives == () and after.mounted == ()
    assert plan([("cifsmount", C), ("cifsumount", "/c;/C")], after, ROOT).actions == ()


def test_second_drive_keeps_the_first():
    state = applied(SharesState(), plan([("cifsmount", C)]))
    mounted = ROOT + cifs_line(30, "/c") + bind_line(31, "/C")
    p = plan([("cifsmount", D)], state, mounted)  # the host overwrote the one cifsmount record
    assert [a.name() for a in p.actions] == ["save-shares", "mount", "bind"]
    assert p.actions[1].drive == "/d"
    after = applied(state, p)
    assert [d.mountpoint for d in after.drives] == ["/c", "/d"]


def test_hostile_item_changes_nothing_already_mounted():
    state = applied(SharesState(), plan([("cifsmount", C)]))
    mounted = ROOT + cifs_line(30, "/c") + bind_line(31, "/C")
    p = plan([("cifsmount", "/etc;/C;username=x,password=y")], state, mounted)
    assert all(a.name() == "save-shares" for a in p.actions)
    assert [(x.capability, x.subject, x.text) for x in p.problems] == [
        ("shares", "cifsmount", "cifsmount rejected: mount point '/etc' is a system directory; nothing was mounted or "
         "unmounted")]
    assert p.drive_states == {"/c": "mounted"}


def test_drive_aliases_must_not_collide():
    state = applied(SharesState(), plan([("cifsmount", C)]))
    p = plan([("cifsmount", "/d;/C;username=u,password=p")], state, ROOT + cifs_line(30, "/c") + bind_line(31, "/C"))
    assert "is used by drive /c" in str(p.problems[0])
    assert not [a for a in p.actions if a.name() == "mount"]


def test_no_network_waits_without_mounting():
    p = plan([("cifsmount", C)], network_ok=False)
    assert [a.name() for a in p.actions] == ["save-shares"]
    assert p.waiting_for_network
    assert p.drive_states["/c"] == "waiting: no route to 10.0.75.1: a VPN may have taken the 10.0.75.0/24 network"


def test_retry_not_due_waits_and_due_mounts():
    retries = {"/c": Retry(2, 10.0, "mount error(112): Host is down")}
    waiting = plan([("cifsmount", C)], now=5.0, retries=retries)
    assert [a.name() for a in waiting.actions] == ["save-shares"]
    # No countdown: the same words at any time before the retry, so pool 1
    # is not rewritten while the drive waits.
    assert waiting.drive_states["/c"] == "waiting: mount error(112): Host is down"
    assert plan([("cifsmount", C)], now=9.9, retries=retries).drive_states == waiting.drive_states
    assert "mount" in [a.name() for a in plan([("cifsmount", C)], now=11.0, retries=retries).actions]


def test_refused_credentials_wait_for_a_new_item():
    spec = parse_mount(C)
    state = SharesState(drives=(spec,), seen=(("cifsmount", digest(C)),), auth_failed=(("/c", spec.fingerprint()),))
    p = plan([("cifsmount", C)], state)
    assert p.actions == () and p.drive_states["/c"].startswith("failed: the server refused the credentials: re-share")
    assert "mount" in [a.name() for a in plan([("cifsmount", C.replace("s3cret", "new"))], state).actions]


def test_same_item_seen_twice_is_not_replayed_after_umount():
    state = applied(SharesState(), plan([("cifsmount", C)]))
    gone = applied(state, plan([("cifsmount", C), ("cifsumount", "/c;/C")], state, ROOT))
    assert plan([("cifsmount", C), ("cifsumount", "/c;/C")], gone, ROOT).actions == ()


def test_state_round_trips(tmp_path):
    state = applied(SharesState(), plan([("cifsmount", C)]))
    assert SharesState.from_json(state.to_json()) == state


def test_deleted_item_is_forgotten_so_the_same_value_acts_again():
    state = applied(SharesState(), plan([("cifsmount", C)]))
    mounted = ROOT + cifs_line(30, "/c") + bind_line(31, "/C")
    gone = applied(state, plan([("cifsmount", C), ("cifsumount", "/c;/C")], state, mounted))
    forgotten = applied(gone, plan([], gone, ROOT))  # the host deleted both items
    again = plan([("cifsmount", C)], forgotten, ROOT)
    assert "mount" in [a.name() for a in again.actions]




def allowed_shown(option):
    return allowed_option(option) or option == "password=***" or option.startswith(("username=", "domain="))


item_text = st.one_of(
    st.text(max_size=120),
    st.builds(lambda mp, al, opts: f"{mp};{al};{opts}", st.sampled_from(["/c", "/C", "/etc", "/", "/c/../x", "/zz"]),
              st.sampled_from(["/C", "/proc", "", "/d"]),
              st.lists(st.sampled_from(["username=u", "password=p", "noperm", "setuids", "credentials=/x",
                                        "uid=5", "exec", "vers=1.0", "sec=none", "file_mode=4777"]),
                       max_size=6).map(",".join)),
)


# Hostile text: nothing outside the rules is ever mounted. Plans that do
# mount, and what they mount: test_plan_grammar.py.
@given(st.lists(st.tuples(st.sampled_from(["cifsmount", "cifsumount", "other"]), item_text), max_size=4))
def test_no_plan_mounts_outside_the_allowed_points_and_options(items):
    p = plan(items)
    for action in p.actions:
        d = action.as_dict()
        if d["action"] == "mount":
            assert re.fullmatch(r"/[A-Za-z]", d["target"]) and d["source"].startswith("//10.0.75.1/")
            assert all(allowed_shown(o) for o in d["options"]), d["options"]
        if d["action"] in ("bind", "unmount"):
            assert re.fullmatch(r"/[A-Za-z]", d["target"])


def test_stale_alias_binds_are_unmounted_before_binding_again():
    state = applied(SharesState(), plan([("cifsmount", C)]))
    # /C still holds a bind of an earlier superblock (0:49); /c is the current mount (0:50).
    stale = ROOT + bind_line(29, "/C", dev="0:49") + cifs_line(30, "/c", dev="0:50")
    p = plan([("cifsmount", C)], state, stale)
    assert [a.as_dict() for a in p.actions] == [{"action": "unmount", "target": "/C"},
                                                {"action": "bind", "source": "/c", "target": "/C"}]
    # Nothing mounted at /c, two stale binds at /C: both go before the mount.
    gone = plan([("cifsmount", C)], state, ROOT + bind_line(28, "/C", "0:48") + bind_line(29, "/C", "0:49"))
    assert [a.name() for a in gone.actions] == ["unmount", "unmount", "mount", "bind"]
    # cifsumount unmounts every stacked mount.
    p = plan([("cifsmount", C), ("cifsumount", "/c;/C")], state,
             ROOT + cifs_line(30, "/c") + bind_line(31, "/C", dev="0:49") + bind_line(32, "/C"))
    assert [a.as_dict() for a in p.actions[1:]][:3] == [{"action": "unmount", "target": "/C"}] * 2 + [
        {"action": "unmount", "target": "/c"}]


def test_a_bind_of_the_bare_directory_at_the_alias_is_cleaned_too():
    state = applied(SharesState(), plan([("cifsmount", C)]))
    bare = "29 22 0:2 /c /C rw - rootfs rootfs rw\n"  # the share was gone when the bind ran
    p = plan([("cifsmount", C)], state, ROOT + bare + cifs_line(30, "/c"))
    assert [a.as_dict() for a in p.actions] == [{"action": "unmount", "target": "/C"},
                                                {"action": "bind", "source": "/c", "target": "/C"}]
