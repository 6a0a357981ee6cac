"""A share whose server went away and came back: the health decision
(shares/health.py) and the remount it plans."""

import errno
import os
import threading

from agent.shares import health
from agent.shares.health import OK, TIMEOUT, judge
from agent.shares.items import Limits, parse_mount
from agent.shares.mountinfo import parse_mountinfo
from agent.shares.plan import SharesState, digest, plan_shares

V = "/c;/C;username=me,password=s3cret,noperm"
MOUNTED = ("22 1 0:21 / / rw - tmpfs rootfs rw\n30 22 0:50 / /c rw - cifs //10.0.75.1/c rw\n"
           "31 22 0:50 / /C rw - cifs //10.0.75.1/c rw\n")


def test_a_drive_is_dead_only_after_failing_for_dead_after_seconds():
    since, dead = judge({"/c": "EHOSTDOWN"}, {}, now=100.0, dead_after=20.0)
    assert since == {"/c": 100.0} and not dead  # suspect: probed again at 120
    since, dead = judge({"/c": TIMEOUT}, since, now=110.0, dead_after=20.0)
    assert since == {"/c": 100.0} and not dead
    since, dead = judge({"/c": "EIO"}, since, now=120.0, dead_after=20.0)
    assert dead == {"/c"} and since == {}  # remounted: a new count


def test_a_good_probe_clears_the_suspicion_and_unprobed_drives_keep_theirs():
    since, dead = judge({"/c": OK}, {"/c": 1.0, "/d": 2.0}, now=50.0, dead_after=20.0)
    assert since == {"/d": 2.0} and not dead


def test_a_dead_drive_is_unmounted_lazily_and_mounted_again():
    spec = parse_mount(V)
    state = SharesState(drives=(spec,), mounted=(("/c", spec.fingerprint()),), seen=(("cifsmount", digest(V)),))
    args = ((("cifsmount", V),), state, parse_mountinfo(MOUNTED), "10.0.75.1", Limits(), True, 0.0, {}, None)
    assert plan_shares(*args).actions == ()
    p = plan_shares(*args, frozenset({"/c"}))
    assert [a.as_dict() for a in p.actions][:2] == [{"action": "unmount", "target": "/C", "lazy": True},
                                                    {"action": "unmount", "target": "/c", "lazy": True}]
    assert [a.name() for a in p.actions][2:] == ["mount", "bind"]


def test_the_probe_reports_dead_errors_and_a_stat_that_hangs(monkeypatch, tmp_path):
    assert health.probe_mount(str(tmp_path)) == OK
    real_stat = os.stat

    def dead(path, *a, **k):
        if path == "/dead":
            raise OSError(errno.EHOSTDOWN, "Host is down")
        if path == "/denied":
            raise OSError(errno.EACCES, "Permission denied")
        return real_stat(path, *a, **k)

    monkeypatch.setattr(health.os, "stat", dead)
    assert health.probe_mount("/dead") == "EHOSTDOWN"
    assert health.probe_mount("/denied") == OK  # says nothing about the connection
    gate = threading.Event()
    monkeypatch.setattr(health.os, "stat", lambda path: gate.wait(10))
    assert health.probe_mount("/hung", timeout=0.05) == TIMEOUT
    assert health.probe_mount("/hung", timeout=5) == TIMEOUT  # still stuck: no second thread, no wait
    gate.set()
