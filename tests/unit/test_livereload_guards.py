"""The live-reload guards, one by one (README "Live reload"): what one
re-emit does (one chmod to the current mode, one IN_ATTRIB, counted once,
its own event counted out), what is not re-emitted, and the notify record
parser's edges. No cifs mount needed: the re-emitting is plain chmod."""

import os
import stat
import struct

import pytest
from inotify_simple import INotify, flags

from agent.livereload.watcher import LocalChanges, ShareWatcher, WatchStats, parse_notify


def attribs(listener):
    return [e.name for e in listener.read(timeout=200) if e.mask & flags.ATTRIB]


@pytest.fixture
def share(tmp_path):
    """A watcher whose /C is tmp_path, with the local watch the agent keeps;
    the files are made before it (the guest's own changes would not be
    re-emitted)."""
    (tmp_path / "a.js").write_text("x")
    os.chmod(tmp_path / "a.js", 0o640)
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    os.symlink("dir", tmp_path / "link")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "one.js").write_text("1")
    (tmp_path / "src" / "two.js").write_text("2")
    (tmp_path / "src" / "sub").mkdir()
    (tmp_path / ".git").mkdir()
    w = ShareWatcher([".git"], max_dirs=10, under=lambda p: str(tmp_path) + p[len("/C"):])
    w.local.add("/C", str(tmp_path))
    listener = INotify()
    listener.add_watch(str(tmp_path), flags.ATTRIB)
    yield w, listener
    w.stop()
    listener.close()


def test_one_re_emit_is_one_chmod_to_the_current_mode_counted_once(tmp_path, share):
    w, listener = share
    w._reemit("/C", "a.js")
    assert attribs(listener) == ["a.js"]
    assert stat.S_IMODE((tmp_path / "a.js").stat().st_mode) == 0o640
    assert w.stats.reemitted == 1
    # The agent's own chmod is counted out, and only it: a later chmod is the guest's.
    assert not w.local.recent("/C", "a.js")
    os.chmod(tmp_path / "a.js", 0o640)
    assert w.local.recent("/C", "a.js")


def test_a_directory_is_re_emitted_and_other_kinds_are_not(tmp_path, share):
    w, listener = share
    for name in ("dir", "fifo", "link", "gone"):
        w._reemit("/C", name)
    assert attribs(listener) == ["dir"]
    assert w.stats.reemitted == 1


def test_a_failed_chmod_takes_its_expectation_back(tmp_path, share, monkeypatch):
    w, _ = share

    def refuse(*args, **kw):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chmod", refuse)
    w._reemit("/C", "a.js")
    assert w.stats.reemitted == 0
    assert w.local._own == {}


def test_a_new_directory_and_the_files_in_it_are_re_emitted_once_each(tmp_path, share, monkeypatch):
    w, listener = share
    added = []
    monkeypatch.setattr(w, "_add", lambda path, made_here=False: added.append(path))
    inner = INotify()
    inner.add_watch(str(tmp_path / "src"), flags.ATTRIB)
    after = {"src": (1, 0, True), ".git": (1, 0, True)}
    assert w._apply("/C", {}, after) is True
    assert added == ["/C/src"]  # .git is skipped
    assert sorted(attribs(listener)) == [".git", "src"]  # both directories themselves
    assert sorted(e.name for e in inner.read(timeout=200) if e.mask & flags.ATTRIB and e.name) == ["one.js", "two.js"]
    assert w.stats.reemitted == 4
    assert w._apply("/C", after, after) is False


def test_own_chmods_counted_twice_are_counted_out_twice(tmp_path):
    local = LocalChanges()
    (tmp_path / "a.js").write_text("1")
    local.add("/C", str(tmp_path))
    local.expect_own("/C", "a.js", 1)
    local.expect_own("/C", "a.js", 1)
    os.chmod(tmp_path / "a.js", 0o644)
    assert not local.recent("/C", "a.js")  # read between them: the kernel would merge two
    os.chmod(tmp_path / "a.js", 0o644)     # identical events in a row into one
    assert not local.recent("/C", "a.js")  # both were ours
    os.chmod(tmp_path / "a.js", 0o644)
    assert local.recent("/C", "a.js")  # this one is the guest's
    local.expect_own("/C", "never.js", -1)  # taking back what was never expected: nothing to do
    assert local._own == {}


def test_watch_stats_as_reported():
    stats = WatchStats(roots=["/C/src"], directories=3, reemitted=5, guest_changes=2, dropped=1, why="limit",
                       echoes=4, notify="CIFS_IOC_NOTIFY_INFO")
    assert stats.as_dict() == {"roots": ["/C/src"], "directories": 3, "reemitted": 5, "guest_changes": 2,
                               "dropped": 1, "why": "limit", "echoes": 4, "notify": "CIFS_IOC_NOTIFY_INFO"}
    assert WatchStats().as_dict() == {"roots": [], "directories": 0, "reemitted": 0, "guest_changes": 0,
                                      "dropped": 0, "why": None, "echoes": 0, "notify": ""}


def test_notify_records_at_the_edges():
    empty_name = struct.pack("<III", 0, 2, 0)  # 12 bytes: a record with an empty name
    assert parse_notify(empty_name) == [(2, "")]
    assert parse_notify(empty_name[:11]) == []
    two = struct.pack("<III", 16, 1, 2) + "a".encode("utf-16-le") + b"\0\0" + struct.pack("<III", 0, 3, 2) + \
        "b".encode("utf-16-le")
    assert parse_notify(two) == [(1, "a"), (3, "b")]
    assert parse_notify(b"") == []


def test_guest_changes_are_counted_once_each_and_every_new_directory_is_seen(tmp_path, monkeypatch):
    w = ShareWatcher([], max_dirs=10, under=lambda p: str(tmp_path) + p[len("/C"):])
    w.local.add("/C", str(tmp_path))
    added, removed = [], []
    monkeypatch.setattr(w, "_add", lambda path, made_here=False: added.append((path, made_here)))
    monkeypatch.setattr(w, "_remove", lambda path, watch=None: removed.append(path))
    (tmp_path / "mine").mkdir()  # made in the guest: recent
    (tmp_path / "mine.js").write_text("1")
    w.local.touch("/C", ["theirs-too"])  # counted as the guest's by touch()
    after = {"mine": (1, 0, True), "other": (1, 0, True), "mine.js": (1, 1, False), "theirs-too": (1, 1, False)}
    before = {"old": (1, 0, True)}
    assert w._apply("/C", before, after) is True
    assert w.stats.guest_changes == 3
    assert sorted(added) == [("/C/mine", True), ("/C/other", False)]
    assert removed == ["/C/old"]
    w.stop()


def test_gone_means_not_a_directory_any_more(tmp_path):
    from agent.livereload.watcher import _gone

    (tmp_path / "f").write_text("x")
    assert _gone(str(tmp_path / "missing")) and _gone(str(tmp_path / "f")) and _gone(str(tmp_path / "f" / "x"))
    assert not _gone(str(tmp_path))


def test_a_reason_is_cleared_only_by_its_own_kind():
    w = ShareWatcher([], max_dirs=10)
    calls = []
    w.on_activity = lambda: calls.append(1)
    w.stats.why = "limit of 2 watched directories reached"
    w._clear_why("server not answering")
    assert w.stats.why and calls == []
    w._clear_why("limit of", "other")
    assert w.stats.why is None and calls == [1]
    w._clear_why("limit of")  # nothing to clear: nothing reported
    assert calls == [1]
    w.stop()


def test_a_removed_local_watch_stops_counting_guest_changes(tmp_path):
    local = LocalChanges()
    local.add("/C", str(tmp_path))
    local.remove("/C")
    local.remove("/C")  # twice: nothing to do
    (tmp_path / "a.js").write_text("1")
    assert not local.recent("/C", "a.js")
    local.add("/C", str(tmp_path))
    (tmp_path / "b.js").write_text("1")
    assert local.recent("/C", "b.js") and not local.recent("/C", "")


def test_under_root_a_watched_root_never_leads_out_of_it(tmp_path):
    """Roots are resolved as the agent resolves them (system.under_dir): a
    symlink climbing out of --root is refused with why; an absolute one is
    taken inside the root."""
    from agent.system import under_dir

    root = tmp_path / "root"
    (root / "C" / "inside").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink("../../..", root / "C" / "up")
    os.symlink(str(outside), root / "C" / "abs")  # /…/outside, inside the root: not there
    os.symlink("/C/inside", root / "C" / "link")
    w = ShareWatcher([], max_dirs=10, under=lambda p: under_dir(str(root), p))
    try:
        w.set_roots(["/C/up"])
        assert "leads out of" in w.stats.why and w.stats.roots == [] and w.stats.directories == 0
        w.set_roots(["/C/abs"])
        assert "is not a directory" in w.stats.why and w.stats.roots == []
        assert w.under("/C/link") == str(root / "C" / "inside")
    finally:
        w.stop()


def test_a_file_only_the_server_named_still_refreshes_the_status(tmp_path, share):
    """A reply naming a file whose scan shows no difference (a metadata
    change, an echo): the counts change, so the status is written again."""
    w, _ = share
    pokes = []
    w.on_activity = lambda: pokes.append(1)
    same = {"a.js": (1, 1, False)}
    assert w._apply("/C", same, same, ["a.js"]) is False  # re-emitted: the scans show no difference
    assert w.stats.reemitted == 1 and len(pokes) == 1
    assert w._apply("/C", same, same, ["a.js"]) is False  # as last re-emitted: an echo
    assert w.stats.echoes == 1 and len(pokes) == 2
    assert w._apply("/C", same, same) is False  # nothing named, nothing changed: no write
    assert len(pokes) == 2
