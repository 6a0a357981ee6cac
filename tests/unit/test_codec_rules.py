"""The pool codec against the rules of facts.md section 2 and the codec's
docstrings, case by case: fields cut at their first NUL (whatever follows),
what each warning and refusal names, the lock's kind and its waits, reads
that see a file shrink or grow, and what a failed open or read says."""

import errno
import fcntl
import os
import stat
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest

from agent import kvp
from agent.kvp import codec


def record(key: bytes, value: bytes) -> bytes:
    assert len(key) <= kvp.KEY_SIZE and len(value) <= kvp.VALUE_SIZE
    return key.ljust(kvp.KEY_SIZE, b"\0") + value.ljust(kvp.VALUE_SIZE, b"\0")


# ---- decoding --------------------------------------------------------------


@pytest.mark.parametrize("key, value, stale", [
    (b"kXX", b"v", b"XXold"),  # a stale key tail that starts like the key ends
    (b"k", b"vXX", b"XXold"),  # the same for the value (a shorter value copied over a longer one)
    (b"k", b"v\0XX", b"XX"),
])
def test_a_field_ends_at_its_first_nul_whatever_the_stale_bytes_after_it(key, value, stale):
    if key.endswith(b"XX"):
        rec = (key + b"\0" + stale).ljust(kvp.KEY_SIZE, b"\0") + (value + b"\0").ljust(kvp.VALUE_SIZE, b"\0")
    else:
        rec = (key + b"\0").ljust(kvp.KEY_SIZE, b"\0") + (value + b"\0" + stale).ljust(kvp.VALUE_SIZE, b"\0")
    pool = kvp.decode(rec)
    assert pool.items == ((key.decode(), value.split(b"\0")[0].decode()),) and pool.warnings == ()


def test_a_value_without_nul_is_its_whole_field_in_any_record():
    """Not the last record's field up to the end of the file."""
    data = record(b"a", b"v" * kvp.VALUE_SIZE) + record(b"b", b"2")
    assert kvp.decode(data).items == (("a", "v" * kvp.VALUE_SIZE), ("b", "2"))


def test_an_undecodable_value_is_replaced_and_reported_with_its_record():
    data = record(b"a", b"1") + record(b"k", b"v\xff")
    pool = kvp.decode(data)
    assert pool.items == (("a", "1"), ("k", "v\ufffd"))
    assert pool.warnings == ("record 1: value is not valid UTF-8; undecodable bytes replaced",)


@pytest.mark.parametrize("value", [b"v" * kvp.VALUE_SIZE, b"\xff"])
def test_the_first_record_with_an_empty_key_is_ignored_whatever_its_value(value):
    data = record(b"", value) + record(b"a", b"1")
    pool = kvp.decode(data)
    assert pool.items == (("a", "1"),)
    assert "record 0: empty key, record ignored" in pool.warnings


def test_a_repeated_key_warning_names_the_key_and_the_record():
    pool = kvp.decode(record(b"a", b"1") + record(b"b", b"2") + record(b"a", b"3"))
    assert pool.warnings == ("record 2: key 'a' repeated, the last record wins",)


def test_a_missing_pool_number_says_which_pools_exist():
    with pytest.raises(kvp.KvpError) as exc:
        kvp.pool_path("/p", 5)
    assert str(exc.value) == "pool 5 does not exist (pools are 0 to 4)"


# ---- what cannot be stored ---------------------------------------------------


@pytest.mark.parametrize("key, value, message", [
    ("", "v", "key is empty"),
    ("a\0b", "v", r"key 'a\\x00b': NUL characters cannot be stored"),
    ("k", "a\0b", "key 'k': NUL characters cannot be stored"),
    ("\udcff", "v", r"key '\\udcff': not encodable as UTF-8"),
    ("k", "\udcff", "key 'k': not encodable as UTF-8"),
    ("k" * 600, "v", f"key '{'k' * 40}'...: 600 UTF-8 bytes, at most 511 fit"),
    ("k", "v" * 2048, "key 'k': value of 2048 UTF-8 bytes, at most 2047 fit"),
])
def test_an_item_that_cannot_be_stored_is_refused_naming_its_key(key, value, message):
    with pytest.raises(kvp.KvpError) as exc:
        kvp.check_item(key, value)
    assert type(exc.value) is kvp.KvpError
    assert str(exc.value) == message


# ---- the lock ---------------------------------------------------------------


@contextmanager
def lock_held(path, exclusive):
    """Another process holding the daemon's kind of lock on the whole file."""
    kind = "LOCK_EX" if exclusive else "LOCK_SH"
    mode = "O_RDWR" if exclusive else "O_RDONLY"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, time\n"
         f"fd = os.open({str(path)!r}, os.{mode})\n"
         f"fcntl.lockf(fd, fcntl.{kind})\n"
         "print('locked', flush=True)\n"
         "time.sleep(30)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait()


def test_a_write_waits_for_a_reader_and_a_read_does_not(tmp_path):
    """Writers take the exclusive lock, readers the shared one (module
    docstring): a reader's lock (the daemon's read) keeps a write out but
    lets another read in."""
    path = tmp_path / ".kvp_pool_1"
    path.write_bytes(kvp.encode([("a", "1")]))
    with lock_held(path, exclusive=False):
        assert kvp.read_pool(str(path), timeout=0.3).items == (("a", "1"),)
        with pytest.raises(kvp.KvpLockWait):
            kvp.update_pool(str(path), {"b": "2"}, timeout=0.3)
        with pytest.raises(kvp.KvpLockWait):
            kvp.write_guest_items(str(tmp_path), 1, {"b": "2"}, timeout=0.3)
    assert kvp.read_pool(str(path)).items == (("a", "1"),)


def test_a_lock_wait_with_a_timeout_waits_that_long_and_says_so(tmp_path):
    path = tmp_path / ".kvp_pool_1"
    path.write_bytes(kvp.encode([("a", "1")]))
    with lock_held(path, exclusive=True):
        for attempt in (lambda: kvp.read_pool(str(path), timeout=0.4),
                        lambda: kvp.update_pool(str(path), {"b": "2"}, timeout=0.4),
                        lambda: kvp.write_guest_items(str(tmp_path), 1, {"b": "2"}, timeout=0.4)):
            t0 = time.monotonic()
            with pytest.raises(kvp.KvpLockWait) as exc:
                attempt()
            waited = time.monotonic() - t0
            assert 0.35 <= waited < 3, waited
            assert str(exc.value) == f"{path}: another process held the pool lock for over 0.4 s"


def test_a_lock_wait_asked_to_stop_says_so(tmp_path):
    path = tmp_path / ".kvp_pool_1"
    path.write_bytes(kvp.encode([("a", "1")]))
    with lock_held(path, exclusive=True):
        for attempt in (lambda: kvp.read_pool(str(path), should_stop=lambda: True),
                        lambda: kvp.update_pool(str(path), {"b": "2"}, should_stop=lambda: True),
                        lambda: kvp.write_guest_items(str(tmp_path), 1, {"b": "2"}, should_stop=lambda: True)):
            with pytest.raises(kvp.KvpLockWait) as exc:
                attempt()
            assert str(exc.value) == f"{path}: stopped while another process holds the pool lock"


# ---- reading the whole file --------------------------------------------------


def _fake_size(monkeypatch, size):
    """os.fstat reporting another size: the file shrank or grew between the
    fstat and the read (only a writer ignoring the lock does that)."""
    real = os.fstat

    def fstat(fd):
        st = real(fd)
        if not stat.S_ISREG(st.st_mode):
            return st
        fields = list(st)
        fields[stat.ST_SIZE] = size
        return os.stat_result(fields)

    monkeypatch.setattr(os, "fstat", fstat)


def test_a_file_that_shrank_while_read_is_read_as_it_is(tmp_path, monkeypatch):
    path = tmp_path / ".kvp_pool_0"
    data = kvp.encode([("a", "1"), ("b", "2")])
    path.write_bytes(data)
    _fake_size(monkeypatch, len(data) + 3 * kvp.RECORD_SIZE)
    assert kvp.read_pool(str(path)).items == (("a", "1"), ("b", "2"))


def test_a_file_that_grew_while_read_is_read_whole(tmp_path, monkeypatch):
    path = tmp_path / ".kvp_pool_0"
    items = [(f"k{i}", "v" * 2000) for i in range(500)]  # 1.28 MB: more than one read of the rest
    path.write_bytes(kvp.encode(items))
    _fake_size(monkeypatch, kvp.RECORD_SIZE)
    assert kvp.read_pool(str(path)).items == tuple(items)


def test_short_reads_are_read_on(tmp_path, monkeypatch):
    path = tmp_path / ".kvp_pool_0"
    items = [("a", "1"), ("b", "2"), ("c", "3")]
    path.write_bytes(kvp.encode(items))
    real = os.preadv

    def short(fd, buffers, offset):
        return real(fd, [buffers[0][:1000]], offset)

    monkeypatch.setattr(os, "preadv", short)
    assert kvp.read_pool(str(path)).items == tuple(items)


@pytest.mark.parametrize("over", [False, True])
def test_a_file_that_grew_over_the_cap_while_read_is_refused(tmp_path, monkeypatch, over):
    size = 3 * kvp.RECORD_SIZE
    path = tmp_path / ".kvp_pool_1"
    path.write_bytes(kvp.encode([("a", "1"), ("b", "2"), ("c", "3")]))
    monkeypatch.setattr(codec, "MAX_POOL_BYTES", size - 1 if over else size)  # the cap is exact
    real = os.fstat
    calls = []

    def fstat(fd):  # the open's and the read's fstat see one record; later ones the whole file
        st = real(fd)
        if not stat.S_ISREG(st.st_mode):
            return st
        calls.append(fd)
        fields = list(st)
        if len(calls) <= 2:
            fields[stat.ST_SIZE] = kvp.RECORD_SIZE
        return os.stat_result(fields)

    monkeypatch.setattr(os, "fstat", fstat)
    if not over:
        assert len(kvp.read_pool(str(path)).items) == 3
        return
    for attempt in (lambda: kvp.read_pool(str(path)), lambda: kvp.update_pool(str(path), {"d": "4"})):
        calls.clear()
        with pytest.raises(kvp.KvpError) as exc:
            attempt()
        assert str(exc.value) == f"{path}: {size} bytes, larger than any pool (at most {size - 1}); not read"


def test_a_read_that_fails_says_so_naming_the_file(tmp_path, monkeypatch):
    path = tmp_path / ".kvp_pool_0"
    path.write_bytes(kvp.encode([("a", "1")]))

    def eio(*args):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "preadv", eio)
    with pytest.raises(kvp.KvpError) as exc:
        kvp.read_pool(str(path))
    assert str(exc.value) == f"{path}: cannot read: Input/output error"


# ---- opening ---------------------------------------------------------------------


def test_what_cannot_be_opened_says_why_naming_the_file(tmp_path):
    pools = tmp_path / "pools"
    pools.mkdir()
    link = pools / ".kvp_pool_0"
    link.symlink_to(tmp_path / "elsewhere")
    directory = pools / ".kvp_pool_1"
    directory.mkdir()
    fifo = pools / ".kvp_pool_2"
    os.mkfifo(fifo)
    notdir = tmp_path / "file"
    notdir.write_bytes(b"")
    cases = [
        (lambda: kvp.read_pool(str(link)), f"{link}: cannot open: it is a symlink (never followed)"),
        (lambda: kvp.update_pool(str(link), {"a": "1"}),
         f"{link}: cannot open for writing: it is a symlink (never followed)"),
        (lambda: kvp.update_pool(str(directory), {"a": "1"}),
         f"{directory}: cannot open for writing: it is a directory"),
        (lambda: kvp.read_pool(str(directory)), f"{directory}: not a regular file (mode drwxr-xr-x); not used"),
        (lambda: kvp.read_pool(str(fifo)), f"{fifo}: not a regular file (mode prw-r--r--); not used"),
        (lambda: kvp.read_pool(str(notdir / ".kvp_pool_0")),
         f"{notdir}/.kvp_pool_0: cannot open: the pool directory is not a directory"),
        (lambda: kvp.update_pool(str(notdir / ".kvp_pool_1"), {"a": "1"}),
         f"{notdir}/.kvp_pool_1: cannot open for writing: the pool directory is not a directory"),
        (lambda: kvp.update_pool(str(tmp_path / "missing" / ".kvp_pool_1"), {"a": "1"}),
         f"{tmp_path}/missing/.kvp_pool_1: cannot open for writing: No such file or directory"),
    ]
    os.chmod(directory, 0o755)
    os.chmod(fifo, 0o644)
    for attempt, message in cases:
        with pytest.raises(kvp.KvpError) as exc:
            attempt()
        assert str(exc.value) == message


@pytest.mark.parametrize("error, why", [
    (PermissionError(errno.EACCES, "Permission denied"), "Permission denied"),
    (OSError("no strerror"), "no strerror"),
])
def test_another_open_failure_gives_the_systems_words(tmp_path, monkeypatch, error, why):
    path = tmp_path / ".kvp_pool_1"

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(os, "open", fail)
    with pytest.raises(kvp.KvpError) as exc:
        kvp.read_pool(str(path))
    assert str(exc.value) == f"{path}: cannot open: {why}"
    with pytest.raises(kvp.KvpError) as exc:
        kvp.update_pool(str(path), {"a": "1"})
    assert str(exc.value) == f"{path}: cannot open for writing: {why}"


def test_a_path_that_holds_the_words_cannot_open_is_named_as_it_is(tmp_path):
    """The write's message names the file unchanged (it once rewrote the
    first "cannot open" it found, which was in the path)."""
    pools = tmp_path / "cannot open"
    pools.mkdir()
    (pools / ".kvp_pool_1").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(kvp.KvpError) as exc:
        kvp.write_guest_items(str(pools), 1, {"a": "1"})
    assert str(exc.value) == f"{pools}/.kvp_pool_1: cannot open for writing: it is a symlink (never followed)"


def test_a_pool_file_is_not_inherited_by_the_commands_the_agent_runs(tmp_path, monkeypatch):
    """O_CLOEXEC: a child (mount.cifs) holding the fd would hold the lock's file."""
    path = tmp_path / ".kvp_pool_1"
    path.write_bytes(b"")
    fd = codec._open_pool(str(path), os.O_RDONLY)
    try:
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert os.get_blocking(fd)  # O_NONBLOCK was for the open only (a FIFO)
    finally:
        os.close(fd)


# ---- writing -----------------------------------------------------------------------


def test_a_write_of_what_a_daemon_written_file_holds_changes_nothing(tmp_path):
    """Stale bytes after the NULs (the daemon's way) are not a change:
    the same items are not rewritten (the file's bytes stay), and the
    answer is False."""
    path = tmp_path / ".kvp_pool_1"
    raw = record(b"a", b"1\0old tail") + record(b"b", b"2")
    path.write_bytes(raw)
    assert kvp.update_pool(str(path), {"a": "1"}) is False
    assert kvp.write_guest_items(str(tmp_path), 1, {"b": "2", "c": None}) is False
    assert path.read_bytes() == raw


def test_the_rewrite_goes_one_record_at_a_time(tmp_path, monkeypatch):
    """A kill in between leaves each record old or new (_rewrite)."""
    path = tmp_path / ".kvp_pool_1"
    path.write_bytes(kvp.encode([("a", "1")]))
    writes = []
    real = os.pwrite

    def pwrite(fd, data, offset):
        writes.append((offset, len(data)))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    assert kvp.update_pool(str(path), {"b": "2", "c": "3"}) is True
    assert writes == [(0, kvp.RECORD_SIZE), (kvp.RECORD_SIZE, kvp.RECORD_SIZE), (2 * kvp.RECORD_SIZE, kvp.RECORD_SIZE)]
    assert kvp.read_pool(str(path)).items == (("a", "1"), ("b", "2"), ("c", "3"))


def test_a_pool_is_read_into_one_buffer_of_its_size(tmp_path, monkeypatch):
    """Not in pieces joined at the end (twice the pool's size in memory for
    a large pool): one read into a buffer of the file's size, then one
    empty read that says the file did not grow meanwhile."""
    path = tmp_path / ".kvp_pool_0"
    items = [(f"key{i}", "v" * 100) for i in range(1200)]  # 1200 records: over 3 MiB
    path.write_bytes(codec.encode(items))
    preads = []
    real = os.pread

    def pread(fd, n, offset):
        data = real(fd, n, offset)
        preads.append(len(data))
        return data

    monkeypatch.setattr(os, "pread", pread)
    pool = codec.read_pool(str(path))
    assert len(pool.items) == 1200 and preads == [0]
