"""The pool watcher in this process, on real inotify: what wakes the loop,
how a burst is drained into one pass, the pool directory going and coming
back, and an inotify queue overflow (README "Watching")."""

import os
import select
import shutil
import threading
import time

import pytest

from agent.kvp.poolwatch import PoolWatcher
from tests.integration.writer import make_pool_dir, write_items


@pytest.fixture
def pool_dir(tmp_path):
    path = tmp_path / "var" / "lib" / "hyperv"
    make_pool_dir(path)
    return path


@pytest.fixture
def watcher(pool_dir):
    w = PoolWatcher(str(pool_dir))
    yield w
    w.close()


def readable(w, timeout=1.0):
    return bool(select.select([w.fileno()], [], [], timeout)[0])


def test_a_pool_write_wakes_it_and_other_files_do_not(pool_dir, watcher):
    assert watcher.watching == str(pool_dir)
    assert not readable(watcher, 0.05)  # nothing happened: nothing to read
    (pool_dir / "unrelated").write_text("x")
    assert readable(watcher)
    assert watcher.read() is False  # an event, but not about a pool file
    write_items(pool_dir / ".kvp_pool_0", [("k", "v")])
    assert readable(watcher)
    assert watcher.read() is True
    assert watcher.read() is False  # drained


@pytest.mark.parametrize("how", ["new file", "renamed in", "deleted"])
def test_pool_files_created_renamed_in_or_deleted_wake_it(pool_dir, watcher, how):
    if how == "new file":
        (pool_dir / ".kvp_pool_0").unlink()
        assert watcher.wait(0) is True
        (pool_dir / ".kvp_pool_0").touch()
    elif how == "renamed in":
        (pool_dir / "tmp").write_bytes(b"")
        assert watcher.wait(0) is False
        os.rename(pool_dir / "tmp", pool_dir / ".kvp_pool_0")
    else:
        (pool_dir / ".kvp_pool_0").unlink()
    assert readable(watcher)
    assert watcher.wait(0) is True


def test_the_other_pools_do_not_wake_it(pool_dir, watcher):
    """Only pool 0 (what the host pushed) decides anything: the agent's own
    pool 1 writes, and the daemon's pools 2-4, must not start a pass."""
    (pool_dir / ".kvp_pool_1").write_bytes(b"x" * 2560)
    (pool_dir / "tmp").write_bytes(b"")
    os.rename(pool_dir / "tmp", pool_dir / ".kvp_pool_2")
    (pool_dir / ".kvp_pool_3").unlink()
    assert readable(watcher)  # the events did arrive
    assert watcher.wait(0) is False


def test_the_directory_removed_and_recreated_is_watched_again(pool_dir, watcher):
    shutil.rmtree(pool_dir)  # Alpine's init script: rm -rf /var/lib/hyperv
    assert readable(watcher)
    assert watcher.wait(0) is True
    assert watcher.watching == str(pool_dir.parent)  # its nearest existing ancestor
    shutil.rmtree(pool_dir.parent)
    assert readable(watcher)
    assert watcher.wait(0) is True
    assert watcher.watching == str(pool_dir.parent.parent)
    make_pool_dir(pool_dir)
    deadline = time.monotonic() + 5
    while watcher.watching != str(pool_dir):
        assert readable(watcher), watcher.watching
        assert watcher.wait(0) is True
        assert time.monotonic() < deadline
    write_items(pool_dir / ".kvp_pool_0", [("k", "v")])
    assert readable(watcher)
    assert watcher.wait(0) is True


def test_the_directory_moved_away_is_noticed(pool_dir, watcher):
    os.rename(pool_dir, pool_dir.with_name("hyperv.old"))
    assert readable(watcher)
    assert watcher.wait(0) is True
    assert watcher.watching == str(pool_dir.parent)


def test_a_pool_write_then_other_events_while_settling_is_still_a_pass(pool_dir, watcher):
    write_items(pool_dir / ".kvp_pool_0", [("k", "v")])
    assert readable(watcher)

    def later():
        time.sleep(0.05)
        (pool_dir / "unrelated").write_text("x")  # within the settle time: drained with it

    thread = threading.Thread(target=later)
    thread.start()
    assert watcher.wait(settle_ms=300) is True
    thread.join()


def test_an_unrelated_change_in_the_ancestor_is_a_rescan(pool_dir, watcher):
    shutil.rmtree(pool_dir)
    assert watcher.wait(0) is True
    (pool_dir.parent / "other").mkdir()
    assert readable(watcher)
    assert watcher.wait(0) is True
    assert watcher.watching == str(pool_dir.parent)


def burst(pool_dir, count, gap):
    def run():
        for i in range(count):
            write_items(pool_dir / ".kvp_pool_0", [("n", str(i))])
            time.sleep(gap)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_burst_is_drained_until_quiet_for_settle_ms(pool_dir, watcher):
    thread = burst(pool_dir, 20, 0.005)  # 20 writes over 0.1 s or more
    assert readable(watcher)
    assert watcher.wait(settle_ms=200) is True
    thread.join()
    # It came back only after the directory had been quiet for 200 ms:
    # every write of the burst is drained, nothing is left for another pass.
    assert not readable(watcher, 0.05)
    assert watcher.read() is False


def test_without_settling_a_wake_up_is_one_read(pool_dir, watcher):
    thread = burst(pool_dir, 20, 0.01)
    assert readable(watcher)
    assert watcher.wait(settle_ms=0) is True
    assert readable(watcher)  # the rest of the burst is still to come
    thread.join()


def test_a_burst_that_never_ends_still_gives_a_pass(pool_dir, watcher):
    stop = threading.Event()

    def run():
        end = time.monotonic() + 3  # ends by itself, so that a wait() without a bound fails, not hangs
        while not stop.is_set() and time.monotonic() < end:
            write_items(pool_dir / ".kvp_pool_0", [("n", "x")])
            time.sleep(0.001)

    reads = []
    real_read = watcher.read
    watcher.read = lambda: reads.append(1) or real_read()  # counted, and done as it is
    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert readable(watcher)
        t0 = time.monotonic()
        assert watcher.wait(settle_ms=100) is True  # never 100 ms quiet: bounded all the same
        assert time.monotonic() - t0 < 1.5
        assert len(reads) == 1 + 50  # the wake-up's read, then at most 50 rounds of settling
    finally:
        stop.set()
        thread.join()


def test_an_inotify_overflow_forces_a_pass(pool_dir, watcher, caplog):
    limit = int(open("/proc/sys/fs/inotify/max_queued_events").read())
    if limit > 100_000:
        pytest.skip(f"max_queued_events is {limit}: too many events to overflow in a test")
    # Events about files that are not pool files, alternating so that the
    # kernel cannot merge them: read alone, none of them wakes a pass.
    names = [pool_dir / "a", pool_dir / "b"]
    for i in range(limit + 10):
        os.close(os.open(names[i % 2], os.O_WRONLY | os.O_CREAT))
    assert watcher.wait(0) is True  # the overflow
    assert [r.getMessage() for r in caplog.records] == [
        "inotify queue overflowed: events were lost; running a full pass"]
    assert watcher.watching == str(pool_dir)
    write_items(pool_dir / ".kvp_pool_0", [("k", "v")])  # still watching after it
    assert readable(watcher)
    assert watcher.wait(0) is True


def test_events_queued_while_settling_are_drained_for_any_settle_time(pool_dir, watcher, monkeypatch):
    """wait(settle_ms) drains until the directory has been quiet for
    settle_ms: an event already queued when the settling starts is part of
    the burst, even for the smallest settle time (1 ms, the default)."""
    first = watcher.read
    calls = []

    def read_then_write():
        got = first()
        if not calls:  # the wake-up read: the next write lands while settling
            write_items(pool_dir / ".kvp_pool_0", [("k", "again")])
            assert readable(watcher)
        calls.append(got)
        return got

    monkeypatch.setattr(watcher, "read", read_then_write)
    write_items(pool_dir / ".kvp_pool_0", [("k", "v")])
    assert readable(watcher)
    assert watcher.wait(settle_ms=1) is True
    assert len(calls) >= 2  # it read again while settling
    assert not readable(watcher, 0.05)  # and left nothing for another pass


def test_a_burst_delivered_while_settling_is_drained(pool_dir, watcher, monkeypatch):
    """Several writes, each landing while the previous one settles: one pass,
    and when wait() returns nothing of the burst is left."""
    first = watcher.read
    left = [3]

    def read_then_write():
        got = first()
        if left[0]:
            left[0] -= 1
            write_items(pool_dir / ".kvp_pool_0", [("n", str(left[0]))])
        return got

    monkeypatch.setattr(watcher, "read", read_then_write)
    write_items(pool_dir / ".kvp_pool_0", [("n", "first")])
    assert readable(watcher)
    assert watcher.wait(settle_ms=20) is True
    assert left[0] == 0
    assert not readable(watcher, 0.05)


def test_a_pool_write_after_the_watch_came_back_wakes_it(pool_dir, watcher):
    """The pool directory gone, then back: the first pool write after the
    re-arm is a pass, whatever the kernel reports about the watch that was
    let go in the same read (IN_IGNORED of the ancestor's watch)."""
    shutil.rmtree(pool_dir)
    assert watcher.wait(0) is True
    assert watcher.watching == str(pool_dir.parent)
    pool_dir.mkdir()
    assert readable(watcher)
    assert watcher.wait(0) is True
    assert watcher.watching == str(pool_dir)
    write_items(pool_dir / ".kvp_pool_0", [("k", "v")])
    assert readable(watcher)
    assert watcher.read() is True


def test_once_the_pool_directory_is_back_its_parent_no_longer_wakes_it(pool_dir, watcher):
    """The ancestor is watched only while the pool directory is missing:
    after the re-arm, a change in the parent does not wake the loop (the old
    watch is let go, not leaked)."""
    shutil.rmtree(pool_dir)
    assert watcher.wait(0) is True
    pool_dir.mkdir()
    assert readable(watcher)
    assert watcher.wait(0) is True
    assert watcher.watching == str(pool_dir)
    while readable(watcher, 0.05):  # what the re-arm itself queued
        assert watcher.read() is False
    (pool_dir.parent / "other").mkdir()
    (pool_dir.parent / "file").write_text("x")
    assert not readable(watcher, 0.1)



def test_without_settling_what_arrives_after_the_wake_up_read_is_left(pool_dir, watcher, monkeypatch):
    """settle_ms 0: a wake-up is exactly one read; a write that lands after
    it is the next pass's, not drained into this one."""
    first = watcher.read
    calls = []

    def read_then_write():
        got = first()
        if not calls:
            write_items(pool_dir / ".kvp_pool_0", [("k", "again")])
        calls.append(got)
        return got

    monkeypatch.setattr(watcher, "read", read_then_write)
    write_items(pool_dir / ".kvp_pool_0", [("k", "v")])
    assert readable(watcher)
    assert watcher.wait(settle_ms=0) is True
    assert calls == [True]
    assert readable(watcher, 0.05)
