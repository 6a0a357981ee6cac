"""Watching the KVP pool directory with inotify.

hv_kvp_daemon's init script deletes and recreates the pool directory, so the
directory's inode cannot be trusted: while it exists we watch it, and while it
does not we watch its nearest existing ancestor for its return. The agent
blocks on fileno(); nothing wakes it while nothing changes.
"""

import logging
import os
import select
from typing import Optional, Tuple

from inotify_simple import INotify, flags

# What a pool change looks like: the daemon truncates, writes and closes the
# file (fopen "w"), or the file or directory comes and goes.
_DIR_MASK = (
    flags.CLOSE_WRITE
    | flags.MOVED_TO
    | flags.MOVED_FROM
    | flags.DELETE
    | flags.CREATE
    | flags.DELETE_SELF
    | flags.MOVE_SELF
    | flags.ONLYDIR
)
_ANCESTOR_MASK = flags.CREATE | flags.MOVED_TO | flags.DELETE_SELF | flags.MOVE_SELF | flags.ONLYDIR
POOL_PREFIX = ".kvp_pool_"
log = logging.getLogger("moby-agent")


class PoolWatcher:
    """Tells the loop when a pool file may have changed."""

    def __init__(self, pool_dir: str, pools: Tuple[int, ...] = (0,)) -> None:
        self.pool_dir = os.path.normpath(pool_dir)
        # Only the pools the agent decides from wake it: its own writes to
        # pool 1 (the guest pool) must not start another pass.
        self._names = frozenset(f"{POOL_PREFIX}{n}" for n in pools)
        self._inotify = INotify(nonblocking=True)
        self._wd: Optional[int] = None
        self._watching: Optional[str] = None
        self._arm()

    def fileno(self) -> int:
        return self._inotify.fileno()

    def close(self) -> None:
        self._inotify.close()

    @property
    def watching(self) -> Optional[str]:
        """The path watched now: the pool directory or an ancestor."""
        return self._watching

    def _arm(self) -> None:
        """Watch the pool directory if it exists, else its nearest ancestor."""
        if self._wd is not None:
            try:
                self._inotify.rm_watch(self._wd)
            except OSError:
                pass  # already gone with its directory
            self._wd = None
        path = self.pool_dir
        mask = _DIR_MASK
        while True:
            try:
                self._wd = self._inotify.add_watch(path, mask)
                self._watching = path
                return
            except (FileNotFoundError, NotADirectoryError):
                parent = os.path.dirname(path)
                if parent == path:
                    raise
                path, mask = parent, _ANCESTOR_MASK

    def read(self) -> bool:
        """Drain pending events; True if anything relevant happened (a full
        pass is due). Re-arms the watch when the directory came or went."""
        relevant = False
        rearm = False
        for event in self._inotify.read(timeout=0):
            if event.mask & flags.Q_OVERFLOW:
                log.warning("inotify queue overflowed: events were lost; running a full pass")
                relevant = rearm = True
                continue
            if event.wd != self._wd:
                continue  # a watch we already removed
            if event.mask & (flags.DELETE_SELF | flags.MOVE_SELF | flags.IGNORED):
                relevant = rearm = True
            elif self._watching == self.pool_dir:
                if event.name in self._names:
                    relevant = True
            else:
                # Something appeared in an ancestor: maybe the next step
                # towards the pool directory. Re-arm and rescan.
                rearm = True
                relevant = True
        if rearm:
            self._arm()
        return relevant

    def wait(self, settle_ms: int) -> bool:
        """After a wake-up, keep draining until the directory has been quiet
        for settle_ms, so that a burst becomes one pass; at most 50 rounds,
        so that a writer that never stops does not hold the pass off."""
        relevant = self.read()
        if settle_ms <= 0:
            return relevant
        poller = select.poll()
        poller.register(self.fileno(), select.POLLIN)
        rounds = 0
        while poller.poll(settle_ms) and rounds < 50:
            relevant = self.read() or relevant
            rounds += 1
        return relevant
