"""Pool files read and written in this process against a second process that
behaves like hv_kvp_daemon (tests/integration/writer.py): the README's
"Pool files" rules about locks, pool numbers, and what a write changes."""

import errno
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent import kvp

WRITER = Path(__file__).with_name("writer.py")


def test_a_pool_1_write_waits_for_the_daemons_fcntl_lock(tmp_path):
    """The daemon's lock is an fcntl record lock: a write under flock (or no
    lock) would not wait, and would lose the daemon's items."""
    path = tmp_path / ".kvp_pool_1"
    path.write_bytes(b"")
    holder = subprocess.Popen([sys.executable, str(WRITER), str(path), "hold", "0.6", "daemon.item=1"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        assert kvp.update_pool(str(path), {"moby-agent.state": "running"}) is True
        waited = time.monotonic() - t0
    finally:
        assert holder.wait(10) == 0
    assert waited >= 0.4, f"the write did not wait for the lock ({waited:.2f} s)"
    # Read after the daemon's write finished: its item is kept, ours added.
    assert kvp.read_pool(str(path)).items == (("daemon.item", "1"), ("moby-agent.state", "running"))


def test_a_write_changes_only_what_it_names_and_says_whether_it_changed(tmp_path):
    path = str(tmp_path / ".kvp_pool_1")
    assert kvp.update_pool(path, {"a": "1", "b": "2", "c": "3"}) is True
    assert kvp.update_pool(path, {"b": "2"}) is False  # the same value: nothing written
    assert kvp.update_pool(path, {"absent": None}) is False  # deleting what is not there
    assert kvp.update_pool(path, {"b": None, "d": "4", "a": "1"}) is True
    assert kvp.read_pool(path).items == (("a", "1"), ("c", "3"), ("d", "4"))
    assert Path(path).stat().st_size == 3 * kvp.RECORD_SIZE


def test_a_write_repairs_a_torn_file_even_without_new_items(tmp_path):
    path = tmp_path / ".kvp_pool_1"
    kvp.update_pool(str(path), {"a": "1"})
    with open(path, "ab") as f:
        f.write(b"torn")
    assert kvp.read_pool(str(path)).warnings
    assert kvp.update_pool(str(path), {"a": "1"}) is True  # same items, but the file was torn
    pool = kvp.read_pool(str(path))
    assert pool.items == (("a", "1"),) and pool.warnings == ()
    assert path.stat().st_size == kvp.RECORD_SIZE


def test_a_missing_pool_file_is_left_missing_unless_asked(tmp_path):
    path = tmp_path / ".kvp_pool_1"
    assert kvp.update_pool(str(path), {"a": "1"}, create=False) is False
    assert not path.exists()
    assert kvp.write_guest_items(str(tmp_path), 1, {"a": "1"}, create=False) is False
    assert not path.exists()
    assert kvp.write_guest_items(str(tmp_path), 1, {"a": "1"}) is True
    assert kvp.read_pool(str(path)).items == (("a", "1"),)
    with pytest.raises(kvp.KvpError, match="cannot open for writing"):
        kvp.update_pool(str(tmp_path / "no-such-dir" / ".kvp_pool_1"), {"a": "1"})


@pytest.mark.parametrize("pool", [0, 2, 3, 4])
def test_only_pool_1_is_written(tmp_path, pool):
    with pytest.raises(kvp.KvpError, match="guest writes pool 1 only"):
        kvp.write_guest_items(str(tmp_path), pool, {"a": "1"})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("pool, ok", [(-1, False), (0, True), (4, True), (5, False)])
def test_pool_numbers(pool, ok):
    if ok:
        assert kvp.pool_path("/p", pool) == f"/p/.kvp_pool_{pool}"
    else:
        with pytest.raises(kvp.KvpError, match=f"pool {pool} does not exist"):
            kvp.pool_path("/p", pool)


def test_items_at_the_size_limits(tmp_path):
    path = str(tmp_path / ".kvp_pool_1")
    kvp.update_pool(path, {"k" * 511: "v" * 2047, "é" * 255: "€" * 682})
    assert kvp.read_pool(path).as_dict() == {"k" * 511: "v" * 2047, "é" * 255: "€" * 682}
    for key, value in (("k" * 512, "v"), ("k", "v" * 2048), ("é" * 256, "v"), ("k", "€" * 683)):
        with pytest.raises(kvp.KvpError):
            kvp.update_pool(path, {key: value})
    assert kvp.read_pool(path).get("k") is None
    assert kvp.read_pool(path).get("k" * 511) == "v" * 2047


def test_a_created_pool_file_is_0644_and_deleting_everything_empties_it(tmp_path):
    path = tmp_path / ".kvp_pool_1"
    old = os.umask(0o022)
    try:
        assert kvp.update_pool(str(path), {"a": "1", "b": "2"}) is True
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert kvp.update_pool(str(path), {"a": None, "b": None}) is True
    assert path.stat().st_size == 0
    assert kvp.read_pool(str(path)) == kvp.Pool(())


@pytest.mark.parametrize("errno_, message", [(errno.ENOSPC, "no space left"), (errno.EIO, "write failed")])
def test_a_failed_write_is_a_kvp_error_naming_the_file(tmp_path, monkeypatch, errno_, message):
    path = tmp_path / ".kvp_pool_1"
    kvp.update_pool(str(path), {"a": "1"})

    def fail(*args):
        raise OSError(errno_, os.strerror(errno_))

    for name in ("write", "pwrite", "writev", "pwritev"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, fail)
    with pytest.raises(kvp.KvpError, match=message) as info:
        kvp.update_pool(str(path), {"a": "2"})
    assert str(path) in str(info.value)


def test_a_pool_file_larger_than_the_cap_is_a_kvp_error_not_a_memory_error(tmp_path):
    """A sparse 1 TB pool file: bytearray(size) raised MemoryError. The cap
    is a KvpError naming the file and its size, for a read and a write, and
    the pool capability's problem in the loop."""
    from agent.kvp.hostitems import observe_pools

    for pool in (0, 1):
        with open(tmp_path / f".kvp_pool_{pool}", "wb") as f:
            f.truncate(1 << 40)
    with pytest.raises(kvp.KvpError) as info:
        kvp.read_pool(str(tmp_path / ".kvp_pool_0"))
    assert str(info.value) == (f"{tmp_path / '.kvp_pool_0'}: 1099511627776 bytes, larger than any pool "
                               f"(at most {kvp.MAX_POOL_BYTES}); not read")
    with pytest.raises(kvp.KvpError, match="1099511627776 bytes, larger than any pool"):
        kvp.write_guest_items(str(tmp_path), 1, {"k": "v"})
    assert os.stat(tmp_path / ".kvp_pool_1").st_size == 1 << 40  # nothing written
    exists, pools, errors = observe_pools(str(tmp_path))
    assert exists and pools[0].items == () and [n for n, _ in errors] == [0, 1]
    assert "larger than any pool" in errors[0][1]


def test_the_pool_cap_is_exact(tmp_path, monkeypatch):
    from agent.kvp import codec

    assert kvp.MAX_POOL_BYTES >= 100_000 * kvp.RECORD_SIZE  # 100,000 items, 256 MB, are read
    monkeypatch.setattr(codec, "MAX_POOL_BYTES", 3 * kvp.RECORD_SIZE)
    path = tmp_path / ".kvp_pool_0"
    path.write_bytes(kvp.encode([("a", "1"), ("b", "2"), ("c", "3")]))
    assert kvp.read_pool(str(path)).as_dict() == {"a": "1", "b": "2", "c": "3"}
    with open(path, "ab") as f:
        f.write(b"x")
    with pytest.raises(kvp.KvpError, match=f"{3 * kvp.RECORD_SIZE + 1} bytes, larger than any pool"):
        kvp.read_pool(str(path))
