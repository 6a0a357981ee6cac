"""Live reload on shared drives: host-side changes re-emitted to the guest's
inotify watchers.

SMB gives the guest no inotify for changes made on the host. The cifs
ioctl CIFS_IOC_NOTIFY_INFO blocks until something changes in one directory
on the server; after each return the directory is rescanned (nothing is
queued between calls) and every added or modified file is re-emitted with a
chmod to its current mode, which raises IN_ATTRIB for local watchers (and
their bind mounts) and is not echoed back by the server. One thread per
watched directory, blocked in the kernel: idle costs no CPU.
"""

import ctypes
import logging
import os
import stat
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple

log = logging.getLogger("moby-agent")

CIFS_IOC_NOTIFY_INFO = 0xC009CF0B  # _IOWR(0xCF, 11, struct smb3_notify_info), 9-byte header
# FILE_NOTIFY_CHANGE_FILE_NAME | DIR_NAME | ATTRIBUTES | SIZE | LAST_WRITE
COMPLETION_FILTER = 0x1 | 0x2 | 0x4 | 0x8 | 0x10
DATA_LEN = 4096
SETTLE = 0.3  # seconds of quiet after a change before the next request
_HEADER = struct.Struct("<I?I")

Snapshot = Dict[str, Tuple[int, int, bool]]  # name -> (mtime_ns, size, is_dir)


def parse_notify(data: bytes) -> List[Tuple[int, str]]:
    """FILE_NOTIFY_INFORMATION records -> [(action, name)]. Never raises."""
    out = []
    offset = 0
    while offset + 12 <= len(data):
        next_offset, action, length = struct.unpack_from("<III", data, offset)
        name = data[offset + 12 : offset + 12 + length].decode("utf-16-le", "replace")
        out.append((action, name))
        if next_offset == 0:
            break
        offset += next_offset
    return out


_LIBC: Optional[ctypes.CDLL] = None


def wait_for_change(fd: int) -> List[Tuple[int, str]]:
    """Block in the server until something in the directory changes.

    Through ctypes, which releases the GIL for the call: every watched
    directory's thread blocks in the kernel at the same time."""
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(_HEADER.size + DATA_LEN)
    _HEADER.pack_into(buf, 0, COMPLETION_FILTER, False, DATA_LEN)
    if _LIBC.ioctl(fd, ctypes.c_ulong(CIFS_IOC_NOTIFY_INFO), buf) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    (length,) = struct.unpack_from("<I", buf, 5)
    return parse_notify(buf.raw[_HEADER.size : _HEADER.size + min(length, DATA_LEN)])


def snapshot(path: str) -> Snapshot:
    out: Snapshot = {}
    with os.scandir(path) as entries:
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            out[entry.name] = (st.st_mtime_ns, st.st_size, stat.S_ISDIR(st.st_mode))
    return out


def changed(before: Snapshot, after: Snapshot) -> Tuple[List[str], List[str], List[str]]:
    """(files added or modified, directories added, directories removed)."""
    files = [n for n, v in after.items() if not v[2] and before.get(n) != v]
    new_dirs = [n for n, v in after.items() if v[2] and not (before.get(n) or (0, 0, False))[2]]
    gone_dirs = [n for n, v in before.items() if v[2] and not (after.get(n) or (0, 0, False))[2]]
    return files, new_dirs, gone_dirs


@dataclass
class WatchStats:
    roots: List[str] = field(default_factory=list)
    directories: int = 0
    reemitted: int = 0
    dropped: int = 0
    why: Optional[str] = None

    def as_dict(self) -> Dict[str, object]:
        return {"roots": list(self.roots), "directories": self.directories, "reemitted": self.reemitted,
                "dropped": self.dropped, "why": self.why}


class ShareWatcher:
    """Threads blocked in CIFS_IOC_NOTIFY_INFO, one per directory below the roots."""

    def __init__(self, skip: Iterable[str], max_dirs: int, under: Callable[[str], str] = lambda p: p,
                 on_activity: Callable[[], None] = lambda: None, rescan_seconds: float = 0.0) -> None:
        self.rescan_seconds = rescan_seconds  # > 0: poll directories whose server has no change notify
        self.on_activity = on_activity  # called (from a watcher thread) after re-emitting
        self.skip = set(skip)
        self.max_dirs = max_dirs
        self.under = under
        self.stats = WatchStats()
        self._lock = threading.Lock()
        self._dirs: Set[str] = set()
        self._stop = threading.Event()

    def set_roots(self, roots: Iterable[str]) -> None:
        for root in roots:
            if root in self.stats.roots:
                continue
            if not os.path.isdir(self.under(root)):
                self.stats.why = f"{root} is not a directory (not mounted yet?)"
                continue
            self.stats.roots.append(root)
            self._add(root)

    def _add(self, path: str) -> None:
        with self._lock:
            if path in self._dirs:
                return
            if len(self._dirs) >= self.max_dirs:
                self.stats.dropped += 1
                self.stats.why = f"limit of {self.max_dirs} watched directories reached; {path} not watched"
                return
            self._dirs.add(path)
            self.stats.directories = len(self._dirs)
        threading.Thread(target=self._watch, args=(path,), daemon=True, name=f"watch {path}").start()

    def _remove(self, path: str) -> None:
        with self._lock:
            self._dirs.discard(path)
            self.stats.directories = len(self._dirs)

    def _watch(self, path: str) -> None:
        real = self.under(path)
        try:
            fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            self.stats.why = f"{path}: {exc.strerror}"
            self._remove(path)
            return
        try:
            before = snapshot(real)
            # Most recently changed first: over the limit, those are the ones kept.
            for name, _entry in sorted(before.items(), key=lambda kv: -kv[1][0]):
                if _entry[2] and name not in self.skip:
                    self._add(os.path.join(path, name))
            errors = 0
            while not self._stop.is_set():
                try:
                    wait_for_change(fd)
                    errors = 0
                except OSError as exc:
                    if not os.path.isdir(real):
                        break  # the directory is gone
                    # The server also fails a request whose changes overflowed
                    # its buffer (STATUS_NOTIFY_ENUM_DIR): rescan, as after any
                    # return. Only an error that repeats at once means that
                    # change notify is not available at all.
                    errors += 1
                    if errors >= 3:
                        if self.rescan_seconds <= 0:
                            self.stats.why = f"{path}: change notify not available ({exc.strerror}); not watched"
                            self.stats.dropped += 1
                            break
                        self.stats.why = (f"{path}: change notify not available ({exc.strerror}); "
                                          f"rescanned every {self.rescan_seconds:g} s")
                        time.sleep(self.rescan_seconds)
                # Nothing is queued between two calls: rescan until the
                # directory has been quiet for SETTLE seconds, then re-arm.
                try:
                    while True:
                        after = snapshot(real)
                        if not self._apply(path, real, before, after):
                            break
                        before = after
                        self.on_activity()
                        time.sleep(SETTLE)
                except OSError:
                    break
        finally:
            os.close(fd)
            self._remove(path)

    def _apply(self, path: str, real: str, before: Snapshot, after: Snapshot) -> bool:
        """Re-emit what changed between two scans; False when nothing did."""
        files, new_dirs, gone = changed(before, after)
        for name in files:
            self._reemit(os.path.join(real, name))
        for name in new_dirs:
            if name not in self.skip:
                self._add(os.path.join(path, name))
                self._reemit(os.path.join(real, name))  # watchers add a watch for a new directory
                self._reemit_tree(os.path.join(real, name))
        for name in gone:
            self._remove(os.path.join(path, name))
        return bool(files or new_dirs or gone)

    def _reemit(self, path: str) -> None:
        """chmod to the current mode: IN_ATTRIB for local watchers, no echo from the server."""
        try:
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
                os.chmod(path, stat.S_IMODE(st.st_mode))
                self.stats.reemitted += 1
        except OSError:
            pass

    def _reemit_tree(self, path: str) -> None:
        """Files already in a directory that appeared: re-emit them too."""
        try:
            for name, (_m, _s, is_dir) in snapshot(path).items():
                if not is_dir:
                    self._reemit(os.path.join(path, name))
        except OSError:
            pass

    def stop(self) -> None:
        self._stop.set()
