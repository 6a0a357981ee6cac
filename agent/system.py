"""The OS boundary: paths under --root, atomic file writes, processes."""

import os
import subprocess
import time
from typing import Callable, List, Optional, Tuple


def under(root: str, path: str) -> str:
    """`path` (absolute, as the guest sees it) resolved under `root`."""
    if root in ("", "/"):
        return path
    return os.path.join(root, path.lstrip("/"))


def create_exclusive(directory: str, prefix: str, mode: int = 0o600) -> Tuple[int, str]:
    """A new file `prefix` + random suffix in `directory`, opened for writing
    with O_EXCL (what tempfile.mkstemp does, without the 4 ms its import
    adds to every start): its fd and path."""
    while True:
        path = os.path.join(directory, prefix + os.urandom(6).hex())
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            return os.open(path, flags, mode), path
        except FileExistsError:
            continue


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` so that a reader, or a crash at any point,
    sees either the old file or the new one: a temporary file in the same
    directory, fsync, rename, fsync of the directory."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    prefix = "." + os.path.basename(path) + ".tmp-"
    for stale in os.listdir(directory):  # left by a write that was killed (only the agent writes these)
        if stale.startswith(prefix):
            try:
                os.unlink(os.path.join(directory, stale))
            except FileNotFoundError:
                pass
    fd, tmp = create_exclusive(directory, prefix)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_text(path: str) -> Optional[str]:
    """The file's text, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def processes_named(root: str, name: str) -> List[int]:
    """Pids whose /proc/PID/comm is `name`."""
    proc = under(root, "/proc")
    found: List[int] = []
    try:
        entries = os.listdir(proc)
    except FileNotFoundError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        comm = read_text(os.path.join(proc, entry, "comm"))
        if comm is not None and comm.strip() == name[:15]:
            found.append(int(entry))
    return found


class CommandResult:
    def __init__(self, returncode: int, output: str) -> None:
        self.returncode = returncode
        self.output = output


def run_command(argv: List[str], timeout: float, should_stop: Callable[[], bool] = lambda: False) -> CommandResult:
    """Run argv (never through a shell), its stdout and stderr together;
    killed on timeout, or when should_stop() turns true (SIGTERM)."""
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    except OSError as exc:
        return CommandResult(127, f"{argv[0]}: {exc.strerror}")
    deadline = time.monotonic() + timeout
    while True:
        try:
            out, _ = proc.communicate(timeout=0.1)
            return CommandResult(proc.returncode, out.decode("utf-8", "replace").strip())
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline or should_stop():
                proc.kill()
                out, _ = proc.communicate()
                why = "timed out" if time.monotonic() > deadline else "stopped"
                return CommandResult(124, f"{argv[0]} {why}: {out.decode('utf-8', 'replace').strip()}")
