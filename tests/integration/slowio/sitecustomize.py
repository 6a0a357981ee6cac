"""Fault injection for the crash tests: a slowed writer.

On PYTHONPATH of an agent subprocess with MOBY_SLOW_IO set (comma-separated
of write, fsync, rename, ftruncate, pwrite, scandir), the named os calls of
that process are slowed: write and pwrite go out in 4 KiB pieces with a
pause between them, fsync, rename, ftruncate and scandir pause first
(ftruncate: after; scandir: a slow database directory, for the liveness
tests).
So a SIGKILL at a random moment lands inside the windows that atomic
writes must survive, not only around them. MOBY_SLOW_IO_MS: the pause
(default 3 ms). MOBY_SLOW_IO_MARK: a file created when the first slowed
call begins (for write: the first of more than 4 KiB), so that the test
knows the window is open.
"""

import os
import time

_SLOW = set(filter(None, os.environ.get("MOBY_SLOW_IO", "").split(",")))
_PAUSE = float(os.environ.get("MOBY_SLOW_IO_MS", "3")) / 1000
_PIECE = 4096
_MARK = os.environ.get("MOBY_SLOW_IO_MARK")


def _mark() -> None:
    global _MARK
    if _MARK:
        os.close(os.open(_MARK, os.O_WRONLY | os.O_CREAT, 0o644))
        _MARK = None


def _install() -> None:
    real_write, real_pwrite = os.write, os.pwrite
    real_fsync, real_rename, real_ftruncate, real_scandir = os.fsync, os.rename, os.ftruncate, os.scandir

    def write(fd, data):
        view = memoryview(data)
        if len(view) <= _PIECE:
            return real_write(fd, view)
        _mark()
        time.sleep(_PAUSE)
        return real_write(fd, view[:_PIECE])  # a short write: callers loop

    def pwrite(fd, data, offset):
        view = memoryview(data)
        _mark()
        time.sleep(_PAUSE)
        return real_pwrite(fd, view[:_PIECE], offset)

    def fsync(fd):
        time.sleep(_PAUSE)
        return real_fsync(fd)

    def rename(src, dst, **kw):
        time.sleep(_PAUSE)
        return real_rename(src, dst, **kw)

    def ftruncate(fd, length):
        _mark()
        result = real_ftruncate(fd, length)
        time.sleep(_PAUSE * 5)
        return result

    def scandir(path="."):
        _mark()
        time.sleep(_PAUSE)
        return real_scandir(path)

    for name, fake in (("write", write), ("pwrite", pwrite), ("fsync", fsync), ("rename", rename),
                       ("ftruncate", ftruncate), ("scandir", scandir)):
        if name in _SLOW:
            setattr(os, name, fake)


if _SLOW:
    _install()
