"""Is a mounted share still alive? (sleep, resume, a server restarted)

The kernel's cifs client reconnects by itself while the server comes back
on the same address; a mount whose session it cannot re-establish keeps
failing (EIO, EHOSTDOWN, ESTALE, ENOTCONN) or, mounted `hard`, blocks. The
agent probes each mounted share with a stat in a thread (bounded by a
timeout; a probe still stuck from before counts as a timeout and no second
thread is started), only on a netlink link/address/route event and at the
re-check of a drive already suspect: never on a timer while all is well.
judge() is the pure decision: dead once a drive has failed its probes for
DEAD_AFTER seconds; then the plan unmounts it lazily (`umount -l`, a dead
hard mount cannot be unmounted otherwise) and mounts it again.
"""

import errno
import os
import threading
from typing import AbstractSet, Dict, Mapping, Tuple

PROBE_TIMEOUT = 5.0  # seconds a stat may take
DEAD_AFTER = 20.0  # seconds a drive must keep failing before a remount
OK, TIMEOUT = "ok", "timeout"
# Errors that say the connection is gone (others, e.g. EACCES, say nothing about it).
DEAD_ERRORS = frozenset({errno.EIO, errno.EHOSTDOWN, errno.ESTALE, errno.ENOTCONN, errno.ECONNRESET,
                         errno.ETIMEDOUT, errno.ECONNABORTED, errno.EHOSTUNREACH})

_stuck: Dict[str, threading.Thread] = {}


def probe_mount(path: str, timeout: float = PROBE_TIMEOUT) -> str:
    """OK, TIMEOUT or the errno name of a dead connection. Live systems
    only (the caller's rule)."""
    old = _stuck.get(path)
    if old is not None and old.is_alive():
        return TIMEOUT
    result = [TIMEOUT]

    def stat() -> None:
        try:
            os.stat(path)
            result[0] = OK
        except OSError as exc:
            result[0] = errno.errorcode.get(exc.errno or 0, "EIO") if exc.errno in DEAD_ERRORS else OK

    thread = threading.Thread(target=stat, name=f"probe {path}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        _stuck[path] = thread
    else:
        _stuck.pop(path, None)
    return result[0]


def judge(results: Mapping[str, str], suspect: Mapping[str, float], now: float, dead_after: float = DEAD_AFTER
          ) -> Tuple[Dict[str, float], AbstractSet[str]]:
    """Pure. results: drive -> this pass's probe (drives not probed keep
    their suspicion). Returns (drive -> since when it fails, the drives to
    remount now)."""
    since = dict(suspect)
    dead = set()
    for drive, result in results.items():
        if result == OK:
            since.pop(drive, None)
            continue
        first = since.setdefault(drive, now)
        if now - first >= dead_after:
            dead.add(drive)
            since.pop(drive)  # remounted: a new mount starts a new count
    return since, frozenset(dead)
