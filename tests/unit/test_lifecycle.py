"""Share lifecycle: an alias change, unshare and re-share, as the planner
sees them through hv_kvp_daemon's pool (a SET of an existing key rewrites
its record in place, a new key is appended, a DELETE shifts later records
up: file order is not write order, and an unchanged value rewritten leaves
the file as it was). The README's table "cifsmount/cifsumount ordering"."""

import pytest

from agent.shares.items import Limits, parse_mount
from agent.shares.mountinfo import parse_mountinfo
from agent.shares.plan import SharesState, digest, plan_shares

HOST = "10.0.75.1"
V = "/c;/C;username=me,password=s3cret,noperm"
V2 = "/c;/C;username=me,password=n3w,noperm"
U = "/c;/C"
ROOT = "22 1 0:21 / / rw,relatime - tmpfs rootfs rw\n"
MOUNTED = ROOT + (f"30 22 0:50 / /c rw - cifs //{HOST}/c rw\n31 22 0:50 / /C rw - cifs //{HOST}/c rw\n")


def state(seen, mounted=True, value=V, made=()):
    spec = parse_mount(value)
    return SharesState(drives=(spec,) if mounted else (), mounted=(("/c", spec.fingerprint()),) if mounted else (),
                       seen=tuple((k, digest(v)) for k, v in seen), made=made)  # in file order


def plan(items, st, table):
    return plan_shares(tuple(items), st, parse_mountinfo(table), HOST, Limits(), True, 0.0, {})


def steps(p):
    return [a.name() + " " + (getattr(a, "target", "") or getattr(a, "path", "") or a.drive) for a in p.actions
            if a.name() != "save-shares"]


UNMOUNT = ["unmount /C", "unmount /c", "remove-dir /C", "remove-dir /c"]
MOUNT = ["mount /c", "bind /C"]

# (what the last pass saw, mounted then?, what this pass sees, what is done)
TABLE = [
    # unshare: cifsumount appended after the cifsmount record
    ([("cifsmount", V)], True, [("cifsmount", V), ("cifsumount", U)], UNMOUNT),
    # the same, the cifsumount record first (an older record rewritten in place)
    ([("cifsmount", V)], True, [("cifsumount", U), ("cifsmount", V)], UNMOUNT),
    # unshared, nothing changes: stays unmounted
    ([("cifsmount", V), ("cifsumount", U)], False, [("cifsmount", V), ("cifsumount", U)], []),
    # re-share with the same value: the host deleted the cifsumount, cifsmount rewritten unchanged
    ([("cifsmount", V), ("cifsumount", U)], False, [("cifsmount", V)], MOUNT),
    # re-share with new credentials, the cifsumount left in place
    ([("cifsmount", V), ("cifsumount", U)], False, [("cifsmount", V2), ("cifsumount", U)], MOUNT),
    # unshare and re-share within one pass, cifsumount written and deleted: nothing to see, stays mounted
    ([("cifsmount", V)], True, [("cifsmount", V)], []),
    # both changed within one pass (cifsumount then cifsmount, new password): the cifsmount wins
    ([("cifsmount", V)], True, [("cifsmount", V2), ("cifsumount", U)], ["unmount /C", "unmount /c", *MOUNT]),
    ([("cifsmount", V)], True, [("cifsumount", U), ("cifsmount", V2)], ["unmount /C", "unmount /c", *MOUNT]),
    # the host deleted the cifsmount and wrote a cifsumount (the record shifted up)
    ([("cifsmount", V)], True, [("cifsumount", U)], UNMOUNT),
    # then wrote the cifsmount again: a new key, appended
    ([("cifsumount", U)], False, [("cifsumount", U), ("cifsmount", V)], MOUNT),
    # re-share between two passes: cifsmount deleted and written again (appended behind the cifsumount kept)
    ([("cifsmount", V), ("cifsumount", U)], False, [("cifsumount", U), ("cifsmount", V)], MOUNT),
    # unshare between two passes: cifsumount deleted and written again (appended behind the cifsmount)
    ([("cifsumount", U), ("cifsmount", V)], True, [("cifsmount", V), ("cifsumount", U)], UNMOUNT),
    # the cifsumount deleted but no cifsmount in the pool: nothing to mount
    ([("cifsumount", U)], False, [], []),
]


@pytest.mark.parametrize("before, mounted, now, done", TABLE)
def test_host_sequences(before, mounted, now, done):
    table = MOUNTED if mounted else ROOT
    assert steps(plan(now, state(before, mounted), table)) == done


def test_both_items_in_one_pass_on_a_fresh_agent_mount():
    """A fresh state (the agent's tmpfs state lost) seeing both: mounted."""
    assert steps(plan([("cifsumount", U), ("cifsmount", V)], SharesState(), ROOT)) == MOUNT


def test_a_new_alias_unbinds_the_old_and_removes_the_directory_the_agent_made():
    new = "/c;/D;username=me,password=s3cret,noperm"
    p = plan([("cifsmount", new)], state([("cifsmount", V)], made=("/C", "/c")), MOUNTED)
    assert steps(p) == ["bind /D", "unmount /C", "remove-dir /C"]
    # Not made by the agent (an image's own /C): unbound, kept.
    p = plan([("cifsmount", new)], state([("cifsmount", V)]), MOUNTED)
    assert steps(p) == ["bind /D", "unmount /C"]
    # A foreign mount at the old alias is not the share's: left alone.
    foreign = ROOT + f"30 22 0:50 / /c rw - cifs //{HOST}/c rw\n31 22 0:70 / /C rw - tmpfs tmpfs rw\n"
    assert steps(plan([("cifsmount", new)], state([("cifsmount", V)]), foreign)) == ["bind /D"]


def test_a_new_alias_while_the_mount_waits_still_unbinds_the_old():
    new = "/c;/D;username=me,password=s3cret,noperm"
    bound_only = ROOT + f"31 22 0:50 / /C rw - cifs //{HOST}/c rw\n"
    st = state([("cifsmount", V)])
    p = plan_shares((("cifsmount", new),), st, parse_mountinfo(bound_only), HOST, Limits(), False, 0.0, {})
    assert steps(p) == ["unmount /C"] and p.drive_states["/c"].startswith("waiting: no route")


def test_a_new_alias_with_new_credentials_remounts_then_unbinds_the_old():
    new = "/c;/D;username=me,password=n3w,noperm"
    p = plan([("cifsmount", new)], state([("cifsmount", V)], made=("/C",)), MOUNTED)
    assert steps(p) == ["unmount /c", "mount /c", "bind /D", "unmount /C", "remove-dir /C"]
