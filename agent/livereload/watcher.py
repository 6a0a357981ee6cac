"""Live reload on shared drives: host-side changes re-emitted to the guest's
inotify watchers.

SMB gives the guest no inotify for changes made on the host. The cifs
ioctl CIFS_IOC_NOTIFY_INFO blocks until something changes in one directory
on the server; after each return the directory is rescanned (nothing is
queued between calls) and every added or modified file is re-emitted with a
chmod to its current mode, which raises IN_ATTRIB for local watchers (and
their bind mounts) and is not echoed back by the server. One thread per
watched directory, blocked in the kernel: idle costs no CPU.

The server also reports the guest's own writes, once at once and again when
the client's deferred close sets the file's write time (closetimeo, 1 s).
Local inotify sees every change made through this kernel, in any mount
namespace, and none made on the host: a file with a local event in the last
LOCAL_GRACE seconds changed in the guest, whose watchers already saw it, and
is not re-emitted.
"""

import ctypes
import errno
import logging
import os
import select
import stat
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from inotify_simple import INotify, flags

from agent.system import printable, raise_open_files

log = logging.getLogger("moby-agent")

CIFS_IOC_NOTIFY_INFO = 0xC009CF0B  # _IOWR(0xCF, 11, struct smb3_notify_info), 9-byte header: Linux 6.1
CIFS_IOC_NOTIFY = 0x4005CF09  # _IOW(0xCF, 9, struct smb3_notify), {u32 filter; bool tree} packed: Linux 5.6
# Descriptors kept free beyond one per watched directory: the agent's own
# (pool watcher, sockets, the mount helper's pipes) and the snapshots' scandir.
FD_HEADROOM = 256
# What an ioctl the kernel does not have answers (cifs_ioctl's default is
# ENOTTY): try the older one, then the rescan interval.
NO_SUCH_IOCTL = frozenset({errno.ENOTTY, errno.EINVAL, errno.ENOSYS})
# FILE_ACTION_ADDED, MODIFIED, RENAMED_NEW_NAME: a named file to look at.
NAMED_ACTIONS = frozenset({1, 3, 5})
# FILE_NOTIFY_CHANGE_FILE_NAME | DIR_NAME | ATTRIBUTES | SIZE | LAST_WRITE
COMPLETION_FILTER = 0x1 | 0x2 | 0x4 | 0x8 | 0x10
DATA_LEN = 4096
SETTLE = 0.3  # seconds of quiet after a change before the next request
# How long after a local event a change to the file is the guest's own: the
# client's deferred close (closetimeo) and attribute cache (actimeo), 1 s
# each by default, plus a margin. A host edit to the same file within this
# time of a guest edit is not re-emitted (the guest's watchers saw the file
# change at about that time).
LOCAL_GRACE = 2.5
_LOCAL_MASK = (flags.CREATE | flags.MODIFY | flags.CLOSE_WRITE | flags.MOVED_TO | flags.MOVED_FROM
               | flags.DELETE | flags.ATTRIB | flags.ONLYDIR)
MAX_BACKOFF = 30.0  # seconds between requests while the server keeps failing them
# What the client or server answers when change notify is not there at all
# (a server with "change notify = no": EOPNOTSUPP); anything else is retried.
UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.ENOTTY, errno.ENOSYS, errno.EINVAL})
# The connection's failures (a soft mount's calls fail so, after about 25 s
# of reconnecting, while the server is down).
UNREACHABLE = frozenset({errno.EHOSTDOWN, errno.EHOSTUNREACH, errno.ECONNREFUSED, errno.ECONNRESET,
                         errno.ECONNABORTED, errno.ETIMEDOUT, errno.ENOTCONN, errno.EAGAIN})
_HEADER = struct.Struct("<I?I")
_NOTIFY = struct.Struct("<I?")

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


def wait_for_change(fd: int, tree: bool = False) -> List[Tuple[int, str]]:  # pragma: no mutate block
    """Block in the server until something in the directory changes.

    Through ctypes, which releases the GIL for the call: every watched
    directory's thread blocks in the kernel at the same time."""
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(_HEADER.size + DATA_LEN)
    _HEADER.pack_into(buf, 0, COMPLETION_FILTER, tree, DATA_LEN)
    if _LIBC.ioctl(fd, ctypes.c_ulong(CIFS_IOC_NOTIFY_INFO), buf) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    (length,) = struct.unpack_from("<I", buf, 5)
    return parse_notify(buf.raw[_HEADER.size : _HEADER.size + min(length, DATA_LEN)])


def wait_for_notify(fd: int, tree: bool = False) -> List[Tuple[int, str]]:  # pragma: no mutate block
    """CIFS_IOC_NOTIFY (Linux 5.6 to 6.0): blocks the same way, returns no
    names (the rescan after it finds what changed)."""
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(_NOTIFY.pack(COMPLETION_FILTER, tree), _NOTIFY.size)
    if _LIBC.ioctl(fd, ctypes.c_ulong(CIFS_IOC_NOTIFY), buf) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return []


def named_files(records: Iterable[Tuple[int, str]]) -> List[str]:
    """The names a notify reply gives as added, modified or renamed to, in
    this directory (a tree watch's 'sub/name' is left to the rescan)."""
    out: List[str] = []
    for action, name in records:
        if action in NAMED_ACTIONS and name and "/" not in name and "\\" not in name and name not in out:
            out.append(name)
    return out


def named_in_tree(records: Iterable[Tuple[int, str]]) -> Optional[Dict[str, List[str]]]:
    """A tree watch's reply -> {directory relative to the root ('' for the
    root): [names added, modified or renamed to]}, with every directory a
    change was reported in (removals too) as a key. None when the reply
    named nothing (the server's buffer overflowed, or CIFS_IOC_NOTIFY):
    every directory is to be rescanned."""
    out: Dict[str, List[str]] = {}
    for action, name in records:
        parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
        if not parts:
            continue
        names = out.setdefault("/".join(parts[:-1]), [])
        if action in NAMED_ACTIONS and parts[-1] not in names:
            names.append(parts[-1])
    return out or None


def unsupported_words(err: int) -> str:
    """Why there is no change notify, in plain words."""
    if err in NO_SUCH_IOCTL:
        return ("this kernel has no SMB change notify (CIFS_IOC_NOTIFY needs Linux 5.6, "
                f"CIFS_IOC_NOTIFY_INFO 6.1; {os.strerror(err)})")
    return f"the server does not offer change notify ({os.strerror(err)})"


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


class LocalChanges:
    """The guest's own changes in the watched directories, from local inotify.

    A thread blocked on the inotify descriptor stamps each event with the time
    it arrived; recent() drains what is queued first, so a change the guest
    made before the server reported it is always known by then (the event is
    queued by the write itself). The agent's own re-emitting chmods are
    counted out."""

    def __init__(self) -> None:  # pragma: no mutate block
        self._ino = INotify(nonblocking=True)
        self._lock = threading.Lock()
        self._wds: Dict[str, int] = {}
        self._paths: Dict[int, str] = {}
        self._last: Dict[Tuple[str, str], float] = {}  # (directory, name) -> monotonic time of the last event
        self._own: Dict[Tuple[str, str], int] = {}  # our chmods whose IN_ATTRIB has not been read yet
        self._pruned = 0.0
        self._warned = False  # a directory got no local watch (max_user_watches reached): logged once
        threading.Thread(target=self._run, daemon=True, name="local changes").start()

    def add(self, path: str, real: str) -> None:
        with self._lock:
            try:
                wd = self._ino.add_watch(real, _LOCAL_MASK)
            except OSError as exc:
                if not self._warned:
                    log.warning("watch %s: no local inotify watch (%s); the guest's own changes there are "
                                "re-emitted", path, exc.strerror)
                    self._warned = True
                return
            self._wds[path] = wd
            self._paths[wd] = path

    def remove(self, path: str) -> None:
        with self._lock:
            wd = self._wds.pop(path, None)
            if wd is not None:
                self._paths.pop(wd, None)
                try:
                    self._ino.rm_watch(wd)
                except OSError:
                    pass  # the directory is gone: the kernel dropped the watch

    def touch(self, path: str, names: Iterable[str]) -> None:
        """Count names as changed in the guest now (a directory the guest made)."""
        now = time.monotonic()
        with self._lock:
            for name in names:
                self._last[(path, name)] = now

    def expect_own(self, path: str, name: str, delta: int) -> None:
        """Our chmod of path/name is (delta 1) or is not (-1, it failed) about to raise an IN_ATTRIB."""
        with self._lock:
            if path in self._wds:  # no local watch there: no event will come to be counted out
                self._count_own((path, name), delta)

    def _count_own(self, key: Tuple[str, str], delta: int) -> None:
        count = self._own.get(key, 0) + delta
        if count > 0:
            self._own[key] = count
        else:
            self._own.pop(key, None)

    def recent(self, path: str, name: str) -> bool:
        """Did the guest itself change path/name in the last LOCAL_GRACE seconds?"""
        with self._lock:
            self._drain()
            last = self._last.get((path, name))
        return last is not None and time.monotonic() - last < LOCAL_GRACE

    def _run(self) -> None:  # pragma: no mutate block
        poller = select.poll()
        poller.register(self._ino.fileno(), select.POLLIN)
        while True:
            poller.poll()  # blocked until an event is queued
            with self._lock:
                self._drain()

    def _drain(self) -> None:
        now = time.monotonic()
        for event in self._ino.read(timeout=0):
            if event.mask & flags.Q_OVERFLOW:
                self._own.clear()  # the chmods' events were lost with the rest
                continue
            path = self._paths.get(event.wd)
            if path is None or not event.name:
                continue  # the directory itself, or a watch just removed
            key = (path, event.name)
            if event.mask & flags.ATTRIB and self._own.get(key):
                self._count_own(key, -1)
                continue
            self._last[key] = now
        if now - self._pruned > LOCAL_GRACE:
            self._pruned = now
            for key in [k for k, t in self._last.items() if now - t >= LOCAL_GRACE]:
                del self._last[key]


class _Watch:
    """One watched directory's thread: cancelled when it is let go (it ends
    at its next return), done once its descriptor is closed."""

    __slots__ = ("cancelled", "done")

    def __init__(self) -> None:  # pragma: no mutate block
        self.cancelled = threading.Event()
        self.done = threading.Event()


def _gone(path: str) -> bool:
    """The directory is gone (not merely unreachable: the server may be down)."""
    try:
        return not stat.S_ISDIR(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False


@dataclass
class WatchStats:
    roots: List[str] = field(default_factory=list)
    directories: int = 0
    reemitted: int = 0
    guest_changes: int = 0  # changes the guest made itself: its watchers saw them, not re-emitted
    dropped: int = 0
    why: Optional[str] = None
    echoes: int = 0  # reported again with the (size, mtime) last re-emitted: not re-emitted again
    notify: str = ""  # how changes are heard: the ioctl, or the rescan interval

    def as_dict(self) -> Dict[str, object]:
        return {"roots": list(self.roots), "directories": self.directories, "reemitted": self.reemitted,
                "guest_changes": self.guest_changes, "dropped": self.dropped, "why": self.why,
                "echoes": self.echoes, "notify": self.notify}


class ShareWatcher:
    """Threads blocked in CIFS_IOC_NOTIFY_INFO, one per directory below the roots."""

    def __init__(self, skip: Iterable[str], max_dirs: int, under: Callable[[str], str] = lambda p: p,
                 on_activity: Callable[[], None] = lambda: None, rescan_seconds: float = 0.0,
                 notify: str = "auto", tree: bool = False) -> None:
        self.rescan_seconds = rescan_seconds  # > 0: poll directories whose server has no change notify
        # One request per root (WATCH_TREE) instead of one per directory:
        # its subdirectories are kept as listings, rescanned when the reply
        # names them (agent.toml's watch.tree; Windows servers honour it).
        self.tree = tree
        self._snaps: Dict[str, Snapshot] = {}  # tree mode: each subdirectory's last listing
        # Which ioctl: "info" (names) until the kernel says it has none,
        # then "notify" (5.6); "rescan": none (agent.toml's watch.notify).
        self.mode = {"auto": "info", "notify": "notify"}.get(notify, "rescan")
        # directory -> name -> (mtime_ns, size) of the file when last re-emitted: an echo is not re-emitted again
        self._emitted: Dict[str, Dict[str, Tuple[int, int]]] = {}
        self.on_activity = on_activity  # called (from any thread) when the stats changed
        self.skip = set(skip)
        self.max_dirs = max_dirs
        self.under = under
        self.stats = WatchStats(notify=self._mode_words())
        # One descriptor per watched directory, plus the agent's own.
        needed = max_dirs + FD_HEADROOM
        self.open_files = raise_open_files(needed)
        if self.open_files < needed:
            self.stats.why = (f"the open-file limit is {self.open_files} and could not be raised: about "
                              f"{max(0, self.open_files - FD_HEADROOM)} directories can be watched, "
                              f"not watch.max_dirs = {max_dirs}")
        self._lock = threading.Lock()
        self._dirs: Dict[str, _Watch] = {}
        self._stop = threading.Event()
        self.local = LocalChanges()

    def _mode_words(self) -> str:
        if self.mode == "info":
            return "CIFS_IOC_NOTIFY_INFO"
        if self.mode == "notify":
            return "CIFS_IOC_NOTIFY (no names: each reply is followed by a rescan)"
        return f"no change notify asked for: rescanned every {self.rescan_seconds:g} s"

    def _wait(self, fd: int, watch: "_Watch") -> List[Tuple[int, str]]:  # pragma: no mutate block
        """One notify request in the kernel's ioctl; on a kernel without
        CIFS_IOC_NOTIFY_INFO, CIFS_IOC_NOTIFY from then on."""
        while True:
            mode = self.mode
            if mode == "rescan":
                watch.cancelled.wait(self.rescan_seconds)
                return []
            try:
                if self.tree:
                    return wait_for_change(fd, True) if mode == "info" else wait_for_notify(fd, True)
                return wait_for_change(fd) if mode == "info" else wait_for_notify(fd)
            except OSError as exc:
                if mode != "info" or exc.errno not in NO_SUCH_IOCTL:
                    raise
                if self.mode == "info":
                    self.mode = "notify"
                    self.stats.notify = self._mode_words()
                    log.info("live reload: no CIFS_IOC_NOTIFY_INFO in this kernel (%s); using CIFS_IOC_NOTIFY",
                             exc.strerror)
                    self.on_activity()

    def set_roots(self, roots: Iterable[str], retry: bool = False) -> None:  # pragma: no mutate block
        """Watch these roots: start the new ones, release the ones no longer
        asked for. retry: also start again the roots left unwatched (their
        server had no change notify, or their first listing failed)."""
        roots = list(roots)
        for root in [r for r in self.stats.roots if r not in roots]:
            self.release(root, keep=roots)
        for root in roots:
            if root in self.stats.roots:
                with self._lock:
                    idle = root not in self._dirs
                if retry and idle:
                    self._clear_why(f"{root}: ", f"{root}/")  # the root's or a subdirectory's
                    self._add(root)
                continue
            try:
                real = self.under(root)
            except OSError as exc:  # under --root: '..', or a symlink leading out of the root
                self.stats.why = f"{root}: {exc.strerror or exc}; not watched"
                continue
            if not os.path.isdir(real):
                self.stats.why = f"{root} is not a directory (not mounted yet?)"
                continue
            self.stats.roots.append(root)
            self._clear_why(f"{root} is not a directory")  # it is now
            self._add(root)

    def _add(self, path: str, made_here: bool = False) -> None:  # pragma: no mutate block
        with self._lock:
            if path in self._dirs:
                return
            if len(self._dirs) >= self.max_dirs:
                self.stats.dropped += 1
                self.stats.why = f"limit of {self.max_dirs} watched directories reached; {path} not watched"
                self.on_activity()
                return
            watch = self._dirs[path] = _Watch()
            self.stats.directories = len(self._dirs)
            passive = self.tree and path not in self.stats.roots
        self.on_activity()
        # The local watch first: the guest's changes from now on are known,
        # and so are the chmods of a new directory's files (_reemit_tree).
        try:
            self.local.add(path, self.under(path))
        except OSError:
            pass  # a way out of the root: _watch says so
        if passive:
            self._list_passive(path, made_here, watch)
            return
        threading.Thread(target=self._watch, args=(path, made_here, watch), daemon=True,
                         name=f"watch {path}").start()

    def _remove(self, path: str, watch: "Optional[_Watch]" = None) -> None:  # pragma: no mutate block
        """Stop watching path (only if watch is still its watch, when given)."""
        with self._lock:
            if path not in self._dirs or (watch is not None and self._dirs[path] is not watch):
                return
            self._dirs.pop(path).cancelled.set()
            self.stats.directories = len(self._dirs)
            self._emitted.pop(path, None)
            self._snaps.pop(path, None)
        self.local.remove(path)
        self.on_activity()

    def release(self, prefix: str, timeout: float = 5.0, keep: Iterable[str] = ()) -> None:  # pragma: no mutate block
        """Stop watching prefix and every directory below it (but the trees
        of the roots in keep below it: a root below a skipped directory of
        another), and wait (at most timeout seconds) until their descriptors
        are closed: before an unmount, which they would otherwise keep busy.

        A thread blocked in the server cannot be interrupted (cifs waits
        killably); setting a directory's times to their current values makes
        the server complete its request, changing nothing."""
        inside = prefix.rstrip("/") + "/"
        kept = [k.rstrip("/") for k in keep if k != prefix and k.startswith(inside)]

        def going(p: str) -> bool:
            return (p == prefix or p.startswith(inside)) and not any(p == k or p.startswith(k + "/") for k in kept)

        with self._lock:
            gone = {p: w for p, w in self._dirs.items() if going(p)}
            self.stats.roots = [r for r in self.stats.roots if not going(r)]
        for p, w in gone.items():
            self._remove(p, w)
            threading.Thread(target=self._wake, args=(p,), daemon=True, name=f"wake {p}").start()
        deadline = time.monotonic() + timeout
        for w in gone.values():
            w.done.wait(max(0.0, deadline - time.monotonic()))

    def _wake(self, path: str) -> None:  # pragma: no mutate block
        try:
            real = self.under(path)
            st = os.stat(real)
            os.utime(real, ns=(st.st_atime_ns, st.st_mtime_ns))
        except OSError:
            pass  # gone or unreachable: its request ends with the directory or the connection

    def _watch(self, path: str, made_here: bool, watch: "_Watch") -> None:  # pragma: no mutate block
        try:
            real = self.under(path)
        except OSError as exc:  # under --root: a way out of the root
            self.stats.why = f"{path}: {exc.strerror or exc}; not watched"
            self._remove(path, watch)
            watch.done.set()
            return
        fd = -1

        def wanted() -> bool:
            return not self._stop.is_set() and not watch.cancelled.is_set()

        failures = unsupported = 0  # in a row
        unreachable = False  # the last failure was the connection's: cleared by a scan that works

        def failed(exc: OSError) -> None:
            """The server failed a request or a scan: its change buffer
            overflowed (STATUS_NOTIFY_ENUM_DIR), or it is unreachable. Rescan
            at once the first time; back off while it repeats."""
            nonlocal failures, unreachable
            failures += 1
            unreachable = exc.errno in UNREACHABLE
            delay = min(MAX_BACKOFF, 0.5 * 2 ** (failures - 2)) if failures > 1 else 0.0
            if unreachable or delay:
                self.stats.why = f"{path}: {exc.strerror}; asking the server again in {delay:g} s"
                self.on_activity()
            watch.cancelled.wait(delay)

        try:
            while True:  # the first listing; the server may be reconnecting
                try:
                    fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY)
                    before = snapshot(real)
                    break
                except OSError as exc:
                    if fd >= 0:
                        os.close(fd)
                        fd = -1
                    if exc.errno == errno.EMFILE:
                        self.stats.why = (f"{path}: Too many open files (the agent's limit is {self.open_files}, "
                                          f"one per watched directory); not watched")
                        return
                    if exc.errno not in UNREACHABLE:
                        self.stats.why = f"{path}: {exc.strerror}; not watched"
                        return
                    failed(exc)
                    if not wanted():
                        return
            if failures:
                self._clear_why(f"{path}: ")  # answered again
                failures = 0
                unreachable = False
            if made_here:
                # Files the guest wrote before the local watch existed: its own.
                self.local.touch(path, before)
            # Most recently changed first: over the limit, those are the ones kept.
            for name, _entry in sorted(before.items(), key=lambda kv: -kv[1][0]):
                if _entry[2] and name not in self.skip:
                    self._add(os.path.join(path, name))
            while wanted():
                named: List[str] = []
                in_tree: Optional[Dict[str, List[str]]] = None
                try:
                    records = self._wait(fd, watch)
                    if log.isEnabledFor(logging.DEBUG):  # a list: repr escapes its names
                        log.debug("watch %s: the server reported %s", printable(path), records)
                    named = named_files(records)
                    if self.tree:
                        in_tree = named_in_tree(records)
                        named = (in_tree or {}).get("", [])
                    if failures:
                        self._clear_why(f"{path}: ")  # answered again
                    failures = unsupported = 0
                except OSError as exc:
                    if not wanted() or _gone(real):
                        break
                    if exc.errno not in UNSUPPORTED:
                        failed(exc)
                    else:
                        unsupported += 1
                        if unsupported >= 3:
                            words = unsupported_words(exc.errno)
                            if exc.errno in NO_SUCH_IOCTL:  # the kernel's: for every directory
                                self.stats.notify = f"none: {words}" + (
                                    f"; rescanned every {self.rescan_seconds:g} s" if self.rescan_seconds > 0 else "")
                            if self.rescan_seconds <= 0:
                                self.stats.why = f"{path}: change notify not available: {words}; not watched"
                                self.stats.dropped += 1
                                break
                            self.stats.why = (f"{path}: change notify not available: {words}; "
                                              f"rescanned every {self.rescan_seconds:g} s")
                            watch.cancelled.wait(self.rescan_seconds)
                # Nothing is queued between two calls: rescan until the
                # directory has been quiet for SETTLE seconds, then re-arm.
                try:
                    while wanted():
                        after = snapshot(real)
                        if unreachable:  # the server answers again
                            unreachable = False
                            self._clear_why(f"{path}: ")
                        changed_root = self._apply(path, before, after, named)
                        if self.tree and path in self.stats.roots:
                            # The settling rescans look at the same directories again.
                            changed_root = self._rescan_tree(path, in_tree) or changed_root
                            if in_tree is not None:  # the same directories, their names handled
                                in_tree = {rel: [] for rel in in_tree}
                        if not changed_root:
                            break
                        named = []
                        before = after
                        self.on_activity()
                        time.sleep(SETTLE)
                except (FileNotFoundError, NotADirectoryError):
                    break  # the directory is gone
                except OSError as exc:
                    failed(exc)
        finally:
            if fd >= 0:
                os.close(fd)
            self._remove(path, watch)
            watch.done.set()

    def _list_passive(self, path: str, made_here: bool, watch: "_Watch") -> None:  # pragma: no mutate block
        """Tree mode: a subdirectory is a listing (no thread, no request of
        its own), and so are its subdirectories."""
        watch.done.set()
        try:
            listing = snapshot(self.under(path))
        except OSError:
            self._remove(path, watch)
            return
        with self._lock:
            if self._dirs.get(path) is not watch:
                return
            self._snaps[path] = listing
        if made_here:
            self.local.touch(path, listing)
        for name, entry in sorted(listing.items(), key=lambda kv: -kv[1][0]):
            if entry[2] and name not in self.skip:
                self._add(os.path.join(path, name), made_here)

    def _drop_tree(self, prefix: str) -> None:
        """Tree mode: a directory gone, with everything listed below it."""
        inside = prefix + "/"
        with self._lock:
            gone = [p for p in self._dirs if p == prefix or p.startswith(inside)]
        for p in gone:
            self._remove(p)

    def _rescan_tree(self, root: str, named: Optional[Dict[str, List[str]]]) -> bool:
        """Tree mode: rescan the directories a reply named (all of them when
        it named none) and re-emit what changed; False when nothing did."""
        with self._lock:
            listed = [p for p in self._snaps if p.startswith(root + "/")]
        todo: Dict[str, List[str]]
        if named is None:
            todo = {p: [] for p in listed}
        else:
            todo = {os.path.join(root, rel) if rel else root: names for rel, names in named.items()}
        any_change = False
        for path in sorted(todo):
            if path == root:
                continue  # the root's own listing is the root thread's
            with self._lock:
                before = self._snaps.get(path)
            if before is None:
                continue  # not listed (skipped, over the limit, or just gone)
            try:
                after = snapshot(self.under(path))
            except (FileNotFoundError, NotADirectoryError):
                self._drop_tree(path)
                any_change = True
                continue
            with self._lock:
                if path in self._snaps:
                    self._snaps[path] = after
            any_change = self._apply(path, before, after, todo[path]) or any_change
        return any_change

    def _clear_why(self, *prefixes: str) -> None:
        """Forget the reported reason if it is this one (it no longer holds)."""
        if (self.stats.why or "").startswith(prefixes):
            self.stats.why = None
            self.on_activity()

    def _apply(self, path: str, before: Snapshot, after: Snapshot, named: Iterable[str] = ()) -> bool:
        """Re-emit what changed between two scans, and the files the server
        named (a change the scans may not tell: same size, a cached time);
        False when the scans show no difference. A file whose (mtime, size) is what it was
        when last re-emitted is not re-emitted again: the server echoing the
        agent's own chmod (a Windows server reports the SET_INFO) would
        otherwise be re-emitted, echoed and re-emitted again."""
        files, new_dirs, gone = changed(before, after)
        differ = bool(files or new_dirs or gone)  # named files alone do not keep the rescans going
        counts = (self.stats.reemitted, self.stats.guest_changes, self.stats.echoes)
        files += [n for n in named if n not in files and n in after and not after[n][2]]
        debug = log.isEnabledFor(logging.DEBUG)  # asked once: at info a file costs no formatting
        for name in files:
            if self.local.recent(path, name):
                self.stats.guest_changes += 1
                if debug:
                    log.debug("watch %s: %s changed in the guest: not re-emitted", printable(path), printable(name))
            elif self._emitted.get(path, {}).get(name) == after[name][:2]:
                self.stats.echoes += 1
                if debug:
                    log.debug("watch %s: %s as last re-emitted %s: an echo", printable(path), printable(name),
                              after[name][:2])
            else:
                if debug:
                    log.debug("watch %s: %s re-emitted %s (before %s)", printable(path), printable(name),
                              after[name][:2], before.get(name))
                self._reemit(path, name, after[name][:2])
        for name in new_dirs:
            made_here = self.local.recent(path, name)
            skipped = name in self.skip
            if not skipped:
                self._add(os.path.join(path, name), made_here)
            if made_here:
                self.stats.guest_changes += 1
                continue
            self._reemit(path, name)  # watchers add a watch for a new directory
            if not skipped:
                self._reemit_tree(os.path.join(path, name))
        for name in gone:
            if self.tree:
                self._drop_tree(os.path.join(path, name))  # and what was listed below it
            else:
                self._remove(os.path.join(path, name))
        if (self.stats.reemitted, self.stats.guest_changes, self.stats.echoes) != counts:
            self.on_activity()  # the status shows each count as it is (a named file alone changes no scan)
        return differ

    def _reemit(self, path: str, name: str, seen: Optional[Tuple[int, int]] = None) -> None:
        """chmod to the current mode: IN_ATTRIB for local watchers. seen:
        the file's (mtime_ns, size) in the scan, remembered once re-emitted."""
        real = os.path.join(self.under(path), name)
        try:
            st = os.lstat(real)
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                return
            self.local.expect_own(path, name, 1)
            try:
                os.chmod(real, stat.S_IMODE(st.st_mode))
            except OSError:
                self.local.expect_own(path, name, -1)
                raise
            self.stats.reemitted += 1
            if seen is not None:
                with self._lock:
                    self._emitted.setdefault(path, {})[name] = seen
        except OSError:
            pass

    def _reemit_tree(self, path: str) -> None:
        """Files already in a directory that appeared: re-emit them too."""
        try:
            for name, (mtime, size, is_dir) in snapshot(self.under(path)).items():
                if not is_dir:
                    self._reemit(path, name, (mtime, size))
        except OSError:
            pass

    def stop(self) -> None:  # pragma: no mutate block
        self._stop.set()
