"""What plan_shares hands on besides the mount actions, whole: each problem
(capability, subject, words, level), each drive's state, the shares note
and waiting_for_network, and the drive each cleanup step belongs to (a
failed step skips that drive's later steps). The words are the README's
("Drive sharing", "When something is wrong") and shares/failures.py's
texts; the situations are the plan's docstrings."""

from agent.outcome import Note, Problem
from agent.shares.failures import no_route_text, refused_text
from agent.shares.items import Limits, parse_mount
from agent.shares.mountinfo import parse_mountinfo
from agent.shares.plan import AUTH_STATE, RemoveDir, Retry, SharesState, Unmount, digest, plan_shares

HOST = "10.0.75.1"
ROOT = "22 1 0:21 / / rw,relatime - tmpfs rootfs rw\n"
C = "/c;/C;username=me,password=s3cret,noperm"
D = "/d;/D;username=me,password=s3cret,noperm"


def plan(items, state=SharesState(), mountinfo=ROOT, network_ok=True, now=0.0, retries=None, limits=Limits(),
         state_problem=None):
    return plan_shares(tuple(items), state, parse_mountinfo(mountinfo), HOST, limits, network_ok, now,
                       retries or {}, state_problem)


def known(value):
    """A state in which the drive of `value` is wanted and its item acted on."""
    return SharesState(drives=(parse_mount(value),), seen=(("cifsmount", digest(value)),))


def test_an_unreadable_state_file_is_a_warning_naming_it():
    p = plan([], state_problem=("/run/moby-agent/shares.json", "not JSON"))
    assert p.problems == (Problem("shares", "/run/moby-agent/shares.json", "not JSON", "warning"),)


def test_nothing_shared_is_an_inactive_note():
    p = plan([])
    assert p.notes == {"shares": Note("no drive shared", active=False)}
    assert p.drive_states == {} and p.waiting_for_network is False and p.problems == ()


def test_the_note_lists_every_drive_with_its_state():
    p = plan([("cifsmount", D)], known(C))
    assert p.notes == {"shares": Note("/c mounting, /d mounting", active=True)}
    assert p.waiting_for_network is False


def test_refused_credentials_are_an_error_of_the_drive():
    spec = parse_mount(C)
    state = SharesState(drives=(spec,), seen=(("cifsmount", digest(C)),), auth_failed=(("/c", spec.fingerprint()),))
    p = plan([("cifsmount", C)], state)
    assert p.problems == (Problem("shares", "/c", f"/c: {refused_text()}"),)
    assert p.drive_states == {"/c": AUTH_STATE}


def test_no_route_is_a_waiting_problem_of_each_drive():
    p = plan([("cifsmount", C)], network_ok=False)
    assert p.problems == (Problem("shares", "/c", f"/c: {no_route_text(HOST)}", "waiting"),)
    assert p.drive_states == {"/c": f"waiting: {no_route_text(HOST)}"}
    assert "no route to 10.0.75.1" in p.problems[0].text
    assert p.waiting_for_network is True


def test_a_drive_waiting_to_retry_says_why():
    p = plan([("cifsmount", C)], now=1.0, retries={"/c": Retry(1, 5.0, "mount error(112): Host is down")})
    assert p.problems == (Problem("shares", "/c", "/c: mount error(112): Host is down; retrying"),)
    assert p.drive_states == {"/c": "waiting: mount error(112): Host is down"}
    p = plan([("cifsmount", C)], now=1.0, retries={"/c": Retry(1, 5.0, "")})
    assert p.problems == (Problem("shares", "/c", "/c: mount failed; retrying"),)
    assert p.drive_states == {"/c": "waiting to retry"}


def test_an_item_value_already_acted_on_is_not_acted_on_again():
    """SharesState.seen: a cifsmount the agent acted on and no longer wants
    (the drive is not among the wanted ones) is not mounted again while the
    value stays; there is no cifsumount whose deletion would be a re-share."""
    state = SharesState(drives=(), seen=(("cifsmount", digest(C)), ("other", digest("x"))))
    p = plan([("cifsmount", C), ("other", "x")], state)
    assert [a.as_dict()["action"] for a in p.actions] == []
    assert p.drive_states == {}


def test_a_cifsumount_of_a_configured_forbidden_mount_point_is_refused():
    limits = Limits(forbidden=("/d",))
    p = plan([("cifsumount", "/d;/D")], limits=limits)
    assert len(p.problems) == 1 and p.problems[0].subject == "cifsumount"
    assert p.problems[0].text.startswith("cifsumount rejected: ")


def test_the_old_aliass_cleanup_belongs_to_the_drive():
    """A new alias for the same drive: the old alias's binds and directory go,
    as steps of that drive."""
    old = parse_mount(C)
    new = "/c;/X;username=me,password=s3cret,noperm"
    state = SharesState(drives=(old,), mounted=(("/c", parse_mount(new).fingerprint()),),
                        seen=(("cifsmount", digest(C)),), made=("/C",))
    table = ROOT + (f"30 22 0:50 / /c rw - cifs //{HOST}/c rw\n"
                    f"31 22 0:50 / /C rw - cifs //{HOST}/c rw\n"
                    f"32 22 0:50 / /X rw - cifs //{HOST}/c rw\n")
    p = plan([("cifsmount", new)], state, table)
    cleanup = [a for a in p.actions if isinstance(a, (Unmount, RemoveDir))]
    assert cleanup == [Unmount("/c", "/C"), RemoveDir("/c", "/C")]


def test_an_unshared_drive_s_steps_are_one_chain():
    """cifsumount: the alias's unmount, the mount point's, then both
    directories, all steps of the drive (a failed unmount skips the
    directories' removal instead of trying an rmdir of a mount point)."""
    old = parse_mount(C)
    state = SharesState(drives=(old,), mounted=(("/c", old.fingerprint()),), seen=(("cifsmount", digest(C)),),
                        made=("/C", "/c"))
    table = ROOT + (f"30 22 0:50 / /c rw - cifs //{HOST}/c rw\n"
                    f"31 22 0:50 / /C rw - cifs //{HOST}/c rw\n")
    p = plan([("cifsmount", C), ("cifsumount", "/c;/C")], state, table)
    steps = [a for a in p.actions if isinstance(a, (Unmount, RemoveDir))]
    assert steps == [Unmount("/c", "/C"), Unmount("/c", "/c"), RemoveDir("/c", "/C"), RemoveDir("/c", "/c")]
    assert {a.chain() for a in steps} == {"/c"}
