"""Hyper-V KVP pool files, read and written exactly as hv_kvp_daemon does.

A pool file is an array of records: 512 bytes of key, then 2048 bytes of
value, each NUL-terminated UTF-8; bytes after the first NUL are garbage left
by earlier values. The daemon holds a whole-file fcntl record lock for every
operation and rewrites the file in place (truncate, write), so readers take a
shared lock of the same kind and writers an exclusive one. The agent rewrites
pool 1 in place too, but overwrite first and truncate last, so that a kill at
any point never leaves it empty.
"""

import errno
import fcntl
import os
import stat
import time
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from agent.record import dataclass
from agent.system import printable

KEY_SIZE = 512
VALUE_SIZE = 2048
RECORD_SIZE = KEY_SIZE + VALUE_SIZE
POOL_COUNT = 5
HOST_POOL = 0  # EXTERNAL: what the host pushed (cifsmount lands here)
GUEST_POOL = 1  # GUEST: what the guest reports to the host

Item = Tuple[str, str]


class KvpError(Exception):
    """An item that cannot be written, or a pool file that cannot be used."""


class KvpLockWait(KvpError):
    """Gave up waiting for the pool lock: should_stop() (SIGTERM) or timeout."""


@dataclass(frozen=True)
class Pool:
    """The items of one pool file in file order, and what was odd about it."""

    items: Tuple[Item, ...]
    warnings: Tuple[str, ...] = ()

    def get(self, key: str) -> Optional[str]:
        for k, v in self.items:
            if k == key:
                return v
        return None

    def as_dict(self) -> Dict[str, str]:
        return dict(self.items)


def pool_path(pool_dir: str, pool: int) -> str:
    if not 0 <= pool < POOL_COUNT:
        raise KvpError(f"pool {pool} does not exist (pools are 0 to {POOL_COUNT - 1})")
    return os.path.join(pool_dir, f".kvp_pool_{pool}")


def _field(data: bytes, start: int, size: int, what: str, index: int, warnings: List[str]) -> str:
    end = data.find(b"\0", start, start + size)
    if end < 0:
        end = start + size
    raw = data[start:end]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        warnings.append(f"record {index}: {what} is not valid UTF-8; undecodable bytes replaced")
        return raw.decode("utf-8", "replace")


def decode(data: bytes) -> Pool:
    """Decode the bytes of a pool file. Never raises on any input."""
    warnings: List[str] = []
    count, extra = divmod(len(data), RECORD_SIZE)
    if extra:
        warnings.append(
            f"trailing partial record of {extra} bytes ignored "
            f"(file size {len(data)} is not a multiple of {RECORD_SIZE})"
        )
    items: Dict[str, str] = {}
    find = data.find
    for index in range(count):
        base = index * RECORD_SIZE
        # The common case inline (NUL found, valid UTF-8); _field otherwise.
        kend = find(b"\0", base, base + KEY_SIZE)
        vstart = base + KEY_SIZE
        vend = find(b"\0", vstart, vstart + VALUE_SIZE)
        key = value = None
        if kend >= 0 and vend >= 0:
            try:
                key = data[base:kend].decode()
                value = data[vstart:vend].decode()
            except UnicodeDecodeError:
                key = None
        if key is None or value is None:
            key = _field(data, base, KEY_SIZE, "key", index, warnings)
            value = _field(data, vstart, VALUE_SIZE, "value", index, warnings)
        if not key:
            warnings.append(f"record {index}: empty key, record ignored")
            continue
        if key in items:
            warnings.append(f"record {index}: key {printable(key)!r} repeated, the last record wins")
        items[key] = value
    return Pool(tuple(items.items()), tuple(warnings))


def check_item(key: str, value: str) -> Tuple[bytes, bytes]:
    """The encoded key and value, or KvpError saying why they cannot be stored."""
    if not key:
        raise KvpError("key is empty")
    try:
        k = key.encode("utf-8", "strict")
        v = value.encode("utf-8", "strict")
    except UnicodeEncodeError:
        raise KvpError(f"key {printable(key)!r}: not encodable as UTF-8") from None
    if b"\0" in k or b"\0" in v:
        raise KvpError(f"key {printable(key)!r}: NUL characters cannot be stored")
    if len(k) > KEY_SIZE - 1:
        raise KvpError(f"key {printable(key[:40])!r}...: {len(k)} UTF-8 bytes, at most {KEY_SIZE - 1} fit")
    if len(v) > VALUE_SIZE - 1:
        raise KvpError(f"key {printable(key)!r}: value of {len(v)} UTF-8 bytes, at most {VALUE_SIZE - 1} fit")
    return k, v


def encode(items: Iterable[Item]) -> bytes:
    """Encode items as the daemon writes them (NUL-padded records)."""
    out = bytearray()
    for key, value in items:
        k, v = check_item(key, value)
        out += k.ljust(KEY_SIZE, b"\0") + v.ljust(VALUE_SIZE, b"\0")
    return bytes(out)


# The largest pool file read or written. hv_kvp_daemon grows a pool in
# blocks of 50 records (128,000 bytes); 100,000 items are 256 MB. Twice that
# is far above any real pool, and a sparse or runaway file (1 TB: a
# MemoryError) is refused before a buffer of its size is asked for.
MAX_POOL_BYTES = 512 << 20


def _too_large(path: str, size: int) -> KvpError:
    return KvpError(f"{printable(path)}: {size} bytes, larger than any pool (at most {MAX_POOL_BYTES}); not read")


def _read_all(fd: int, path: str) -> bytes:
    """The whole file, read into one buffer of its size (chunks joined at
    the end would hold the pool twice: 2x memory for a large pool). A file
    over MAX_POOL_BYTES, at the start or grown meanwhile, is a KvpError."""
    size = os.fstat(fd).st_size
    if size > MAX_POOL_BYTES:
        raise _too_large(path, size)
    buf = bytearray(size)
    view = memoryview(buf)
    done = 0
    while done < size:
        n = os.preadv(fd, [view[done:]], done)
        if n == 0:
            break  # shrank meanwhile (we hold the lock: only a writer ignoring it)
        done += n
    view.release()
    del buf[done:]
    while True:  # grew meanwhile
        more = os.pread(fd, 1 << 20, len(buf))
        if not more:
            return buf  # type: ignore[return-value]  # a bytearray serves wherever bytes are read
        buf += more
        if len(buf) > MAX_POOL_BYTES:
            raise _too_large(path, os.fstat(fd).st_size)


_LOCK_POLL = 0.05  # seconds between tries while another process holds the lock


def _lock(fd: int, exclusive: bool, path: str, should_stop: Optional[Callable[[], bool]],
          timeout: Optional[float]) -> None:
    """The daemon's kind of lock (fcntl record lock on the whole file).
    Without should_stop or timeout: wait as long as it takes (a signal whose
    handler raises still ends the wait). With them: try without blocking
    every 50 ms, and raise KvpLockWait when should_stop() turns true (SIGTERM)
    or the timeout passes, so that a process holding the lock forever
    cannot hold the agent."""
    kind = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    if should_stop is None and timeout is None:
        fcntl.lockf(fd, kind)
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            fcntl.lockf(fd, kind | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise
        if should_stop is not None and should_stop():
            raise KvpLockWait(f"{printable(path)}: stopped while another process holds the pool lock")
        if deadline is not None and time.monotonic() >= deadline:
            raise KvpLockWait(f"{printable(path)}: another process held the pool lock for over {timeout:g} s")
        time.sleep(_LOCK_POLL)


def _open_pool(path: str, flags: int, mode: int = 0o644, doing: str = "open") -> int:
    """Open a pool file without following a symlink and without blocking
    (a FIFO never hangs); it must be a regular file. Any failure is a
    KvpError naming the file ("cannot <doing>: why"), never a traceback; a
    missing file raises FileNotFoundError (callers treat it as empty)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY, mode)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            why = "it is a symlink (never followed)"
        elif exc.errno == errno.ENOTDIR:
            why = "the pool directory is not a directory"
        elif exc.errno == errno.EISDIR:
            why = "it is a directory"
        else:
            why = exc.strerror or str(exc)
        raise KvpError(f"{printable(path)}: cannot {doing}: {why}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KvpError(f"{printable(path)}: not a regular file (mode {stat.filemode(st.st_mode)}); not used")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_pool(path: str, should_stop: Optional[Callable[[], bool]] = None, timeout: Optional[float] = None) -> Pool:
    """Read a pool file under a shared fcntl lock. A missing file is empty;
    a file that cannot be used (a symlink, FIFO, directory, EACCES, the pool
    directory being a file) is a KvpError. should_stop/timeout: see _lock."""
    try:
        fd = _open_pool(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return Pool(())
    try:
        _lock(fd, False, path, should_stop, timeout)
        return decode(_read_all(fd, path))
    except OSError as exc:
        raise KvpError(f"{printable(path)}: cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)  # closing releases the lock


def _rewrite(fd: int, data: bytes, old_size: int) -> None:
    """Replace the file's content with `data` in place, so that no crash
    point leaves it empty: the new records are written over the old ones
    from offset 0, one record at a time, and only then is the file cut to
    the new length. A kill in between leaves each record old or new (at
    worst new records followed by old ones, read "last record wins"),
    never an empty file. The daemon holds its lock on this very file, so it
    cannot be replaced by a rename."""
    view = memoryview(data)
    offset = 0
    while offset < len(data):
        end = min(len(data), offset + RECORD_SIZE)
        offset += os.pwrite(fd, view[offset:end], offset)
    if old_size != len(data):
        os.ftruncate(fd, len(data))
    os.fsync(fd)


def update_pool(path: str, changes: Mapping[str, Optional[str]], create: bool = True,
                should_stop: Optional[Callable[[], bool]] = None, timeout: Optional[float] = None) -> bool:
    """Set (value) or delete (None) items of a pool file, read-modify-write
    under an exclusive lock, rewriting the whole file in place as the daemon
    does (but never through an empty file: _rewrite). Every item is checked
    before anything is written. Returns whether the file changed.
    create=False: a missing file is left missing. should_stop/timeout: see
    _lock. A symlink, FIFO or directory as the pool file is a KvpError and
    nothing is written through it.
    """
    for key, value in changes.items():
        if value is not None:
            check_item(key, value)
    try:
        fd = _open_pool(path, os.O_RDWR | (os.O_CREAT if create else 0), doing="open for writing")
    except (FileNotFoundError, NotADirectoryError) as exc:
        if not create and isinstance(exc, FileNotFoundError):
            return False  # left to hv_kvp_daemon, which creates every pool file
        raise KvpError(f"{printable(path)}: cannot open for writing: {exc.strerror}") from None
    try:
        _lock(fd, True, path, should_stop, timeout)
        raw = _read_all(fd, path)
        current = decode(raw)
        items = dict(current.items)
        for key, value in changes.items():
            if value is None:
                items.pop(key, None)
            else:
                items[key] = value
        data = encode(items.items())
        if data == raw:
            return False
        if data == encode(current.items) and not current.warnings:
            return False
        _rewrite(fd, data, len(raw))
        return True
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise KvpError(f"{printable(path)}: no space left; the pool may hold old and new records") from None
        raise KvpError(f"{printable(path)}: write failed: {exc.strerror}") from None
    finally:
        os.close(fd)


def write_guest_items(pool_dir: str, pool: int, changes: Mapping[str, Optional[str]], create: bool = True,
                      should_stop: Optional[Callable[[], bool]] = None, timeout: Optional[float] = None) -> bool:
    """update_pool for the guest pool only; the other pools belong to the
    host and the daemon. create=False: a missing pool file stays missing
    (False is returned)."""
    if pool != GUEST_POOL:
        raise KvpError(
            f"pool {pool} is written by the host and hv_kvp_daemon; the guest writes pool {GUEST_POOL} only"
        )
    return update_pool(pool_path(pool_dir, pool), changes, create, should_stop, timeout)
