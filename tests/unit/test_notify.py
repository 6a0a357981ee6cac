import errno
import os
import struct
import threading
import time

from hypothesis import given
from hypothesis import strategies as st
from inotify_simple import INotify, flags

from agent.livereload import watcher
from agent.livereload.watcher import LocalChanges, ShareWatcher, changed, parse_notify


def record(action, name, last=False):
    raw = name.encode("utf-16-le")
    size = 12 + len(raw)
    size += -size % 4
    body = struct.pack("<III", 0 if last else size, action, len(raw)) + raw
    return body.ljust(size, b"\0")


def test_parse_notify_records():
    data = record(1, "new.js") + record(4, ".app.js.swp") + record(5, "app.js", last=True)
    assert parse_notify(data) == [(1, "new.js"), (4, ".app.js.swp"), (5, "app.js")]


@given(st.binary(max_size=300))
def test_parse_notify_never_raises(data):
    parse_notify(data)


def test_changed_files_and_directories():
    before = {"a.js": (1, 10, False), "b.js": (1, 10, False), "lib": (1, 0, True), "old": (1, 0, True)}
    after = {"a.js": (2, 11, False), "b.js": (1, 10, False), "c.js": (3, 1, False), "lib": (1, 0, True),
             "new": (4, 0, True)}
    assert changed(before, after) == (["a.js", "c.js"], ["new"], ["old"])


def test_the_directory_limit_is_respected_and_reported(tmp_path):
    started = []
    w = ShareWatcher([".git"], max_dirs=2)
    w._watch = lambda path, made_here, token: started.append(path)  # no blocking notify outside a cifs mount
    for name in ("a", "b", "c"):
        w._add(f"/C/src/{name}")
    assert w.stats.directories == 2 and w.stats.dropped == 1
    assert "limit of 2 watched directories reached" in w.stats.why


def test_a_directory_without_change_notify_is_reported(tmp_path):
    # Outside cifs the ioctl fails: the watcher says so instead of spinning.
    w = ShareWatcher([], max_dirs=10)
    w.set_roots([str(tmp_path)])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not w.stats.why:
        time.sleep(0.01)
    assert "change notify not available" in w.stats.why
    assert w.stats.directories == 0


def test_a_root_left_unwatched_is_tried_again_on_retry_only(tmp_path):
    w = ShareWatcher([], max_dirs=10)
    w.set_roots([str(tmp_path)])
    wait_for(lambda: w.stats.dropped == 1)
    w.set_roots([str(tmp_path)])  # an ordinary pass: not asked again
    time.sleep(0.2)
    assert w.stats.dropped == 1
    w.set_roots([str(tmp_path)], retry=True)  # a reload
    wait_for(lambda: w.stats.dropped == 2)
    assert "change notify not available" in w.stats.why and w.stats.roots == [str(tmp_path)]


def test_a_retry_forgets_the_reason_a_subdirectory_gave(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    supported = threading.Event()

    def wait(fd):
        if not supported.is_set():
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        time.sleep(0.05)  # the server answers: nothing changed
        return []

    monkeypatch.setattr(watcher, "wait_for_change", wait)
    w = ShareWatcher([], max_dirs=10)
    w.set_roots([str(tmp_path)])
    wait_for(lambda: w.stats.dropped == 2)
    w.stats.why = f"{tmp_path}/sub: change notify not available (Operation not supported); not watched"
    supported.set()
    w.set_roots([str(tmp_path)], retry=True)
    wait_for(lambda: w.stats.directories == 2)
    assert w.stats.why is None
    w.release(str(tmp_path))


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def rescanning_watcher(tmp_path):
    w = ShareWatcher([], max_dirs=10, rescan_seconds=0.05)
    w.set_roots([str(tmp_path)])
    wait_for(lambda: "rescanned every 0.05 s" in (w.stats.why or ""))
    return w


def test_without_change_notify_a_rescan_interval_covers_it(tmp_path):
    (tmp_path / "a.txt").write_text("1")
    w = rescanning_watcher(tmp_path)
    # A change this kernel's inotify does not see, as a host-side edit: the
    # local watch is taken away first.
    w.local.remove(str(tmp_path))
    (tmp_path / "b.txt").write_text("2")
    wait_for(lambda: w.stats.reemitted >= 1)
    assert w.stats.directories == 1 and w.stats.guest_changes == 0
    w.stop()


def test_the_guests_own_writes_are_not_re_emitted(tmp_path):
    w = rescanning_watcher(tmp_path)
    listener = INotify()
    listener.add_watch(str(tmp_path), flags.ATTRIB | flags.CREATE | flags.MODIFY)
    (tmp_path / "mine.txt").write_text("written in the guest")
    (tmp_path / "made-here").mkdir()
    (tmp_path / "made-here" / "inside.txt").write_text("x")
    wait_for(lambda: w.stats.guest_changes >= 2)
    time.sleep(0.3)  # several rescans more
    assert w.stats.reemitted == 0
    assert not [e for e in listener.read(timeout=0) if e.mask & flags.ATTRIB], "a guest write was re-emitted"
    w.stop()


def test_own_chmods_are_not_taken_for_guest_changes(tmp_path):
    local = LocalChanges()
    (tmp_path / "a.js").write_text("1")
    local.add("/C/src", str(tmp_path))
    local.expect_own("/C/src", "a.js", 1)
    os.chmod(tmp_path / "a.js", 0o644)
    assert not local.recent("/C/src", "a.js")
    os.chmod(tmp_path / "a.js", 0o644)  # not ours: the guest's
    assert local.recent("/C/src", "a.js")
    # A chmod that failed raises nothing: its expectation is taken back.
    local.expect_own("/C/src", "b.js", 1)
    local.expect_own("/C/src", "b.js", -1)
    (tmp_path / "b.js").write_text("2")
    assert local.recent("/C/src", "b.js")
    assert not local.recent("/C/elsewhere", "b.js")
    # Where there is no local watch no event comes: nothing is left waiting for one.
    local.expect_own("/C/elsewhere", "c.js", 1)
    assert local._own == {}


def test_guest_changes_are_forgotten_after_the_grace_time(tmp_path, monkeypatch):
    local = LocalChanges()
    local.add("/C/src", str(tmp_path))
    (tmp_path / "a.js").write_text("1")
    assert local.recent("/C/src", "a.js")
    monkeypatch.setattr("agent.livereload.watcher.LOCAL_GRACE", 0.0)
    assert not local.recent("/C/src", "a.js")


def test_a_first_listing_the_server_fails_is_retried_not_given_up(tmp_path, monkeypatch):
    """A share still reconnecting (after Samba restarted) fails the listing
    with a connection error: back off and ask again, as for requests."""
    real_snapshot = watcher.snapshot
    calls = []

    def flaky(path):
        calls.append(path)
        if len(calls) <= 2:
            raise OSError(errno.EHOSTDOWN, os.strerror(errno.EHOSTDOWN))
        return real_snapshot(path)

    monkeypatch.setattr(watcher, "snapshot", flaky)
    w = ShareWatcher([], max_dirs=10, rescan_seconds=0.05)
    w.set_roots([str(tmp_path)])
    wait_for(lambda: "asking the server again in 0.5 s" in (w.stats.why or ""))
    wait_for(lambda: len(calls) >= 3 and w.stats.directories == 1)
    wait_for(lambda: "rescanned every" in (w.stats.why or ""))  # on to the request; not "not watched"
    w.release(str(tmp_path))


def test_a_first_listing_that_fails_otherwise_is_reported_and_left(tmp_path, monkeypatch):
    def denied(path):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(watcher, "snapshot", denied)
    w = ShareWatcher([], max_dirs=10)
    w.set_roots([str(tmp_path)])
    wait_for(lambda: w.stats.why == f"{tmp_path}: Permission denied; not watched")
    wait_for(lambda: w.stats.directories == 0)


def test_release_stops_watching_and_closes_the_descriptors(tmp_path):
    """Before an unmount: every directory at or below the target is let go."""
    (tmp_path / "sub").mkdir()
    w = rescanning_watcher(tmp_path)
    wait_for(lambda: w.stats.directories == 2)
    tokens = dict(w._dirs)
    t0 = time.monotonic()
    w.release(str(tmp_path))
    assert time.monotonic() - t0 < 1.0
    assert all(t.done.is_set() for t in tokens.values()), "a watcher still holds its directory"
    assert w.stats.directories == 0 and w.stats.roots == []
    # Watched again once asked (the share remounted): a fresh thread.
    w.set_roots([str(tmp_path)])
    wait_for(lambda: w.stats.directories == 2)
    assert w._dirs[str(tmp_path)] is not tokens[str(tmp_path)]
    # A root no longer asked for is released.
    w.set_roots([])
    assert w.stats.directories == 0 and w.stats.roots == []
    w.stop()


entries = st.dictionaries(st.sampled_from(["a", "b", "c", "d", "lib", "src"]),
                          st.tuples(st.integers(0, 3), st.integers(0, 3), st.booleans()), max_size=6)


@given(entries, entries)
def test_changed_reports_what_a_watcher_must_hear_of(before, after):
    files, new_dirs, gone_dirs = changed(before, after)
    for name, (mtime, size, is_dir) in after.items():
        if is_dir:
            assert name not in files
            assert (name in new_dirs) == (not before.get(name, (0, 0, False))[2])
        else:
            # New, or different in mtime or size (or a directory before): re-emitted.
            assert (name in files) == (before.get(name) != (mtime, size, False))
    for name, (_m, _s, is_dir) in before.items():
        assert (name in gone_dirs) == (is_dir and not after.get(name, (0, 0, False))[2])
    assert len(set(files)) == len(files)
    assert changed(after, after) == ([], [], [])
