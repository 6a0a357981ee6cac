"""LocalChanges (livereload/watcher.py) by its docstrings: only the agent's
own chmods (their IN_ATTRIB) are counted out, every other event of a name
is the guest's, however many arrive in one read; the directory itself is
no name; a removed watch is gone from the kernel too; a directory that
gets no local watch is logged once, naming it and why."""

import errno
import logging
import os

from agent.livereload.watcher import LocalChanges


def kernel_watches(local):
    """The inotify watches the kernel holds for this descriptor."""
    with open(f"/proc/self/fdinfo/{local._ino.fileno()}") as f:
        return [line for line in f if line.startswith("inotify wd:")]


def test_events_in_one_read_are_all_counted(tmp_path):
    """Events queued together (here while the lock is held, so one read
    drains them all): one of ours, the guest's after it; a directory's own
    event before the guest's."""
    local = LocalChanges()
    (tmp_path / "a.js").write_text("1")
    local.add("/C", str(tmp_path))
    local.expect_own("/C", "a.js", 1)
    with local._lock:
        os.chmod(tmp_path / "a.js", 0o644)  # ours
        (tmp_path / "b.js").write_text("2")  # the guest's
    assert local.recent("/C", "b.js")
    assert not local.recent("/C", "a.js")
    with local._lock:
        os.chmod(tmp_path, 0o755)  # the directory itself: no name
        (tmp_path / "c.js").write_text("3")
    assert local.recent("/C", "c.js")
    assert not local.recent("/C", "")


def test_only_an_attrib_is_taken_for_our_chmod(tmp_path):
    """An own chmod is expected, but the guest deletes the file instead (one
    IN_DELETE): that is the guest's change, not ours."""
    local = LocalChanges()
    (tmp_path / "a.js").write_text("1")
    local.add("/C", str(tmp_path))
    local.expect_own("/C", "a.js", 1)
    os.unlink(tmp_path / "a.js")
    assert local.recent("/C", "a.js")


def test_a_removed_watch_is_gone_from_the_kernel(tmp_path):
    """Each local watch counts against max_user_watches: removing it must
    remove the kernel's watch, not only forget it."""
    local = LocalChanges()
    local.add("/C", str(tmp_path))
    assert len(kernel_watches(local)) == 1
    local.remove("/C")
    assert kernel_watches(local) == []
    assert local._paths == {} and local._wds == {}


def test_a_directory_without_a_local_watch_is_logged_once(tmp_path, caplog, monkeypatch):
    local = LocalChanges()

    def full(path, mask):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(local._ino, "add_watch", full)
    with caplog.at_level(logging.WARNING, logger="moby-agent"):
        local.add("/C/a", str(tmp_path))
        local.add("/C/b", str(tmp_path))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["watch /C/a: no local inotify watch (No space left on device); the guest's own changes "
                        "there are re-emitted"]
    (tmp_path / "a.js").write_text("1")
    assert not local.recent("/C/a", "a.js")  # no watch: nothing known
