"""The OS boundary: paths under --root, atomic file writes, processes."""

import errno
import os
import stat
import time
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Union


class UnsafePath(OSError):
    """A path that would leave --root, or a file that is not what it must be
    (a symlink, a FIFO, a device, a directory, too large): an error for that
    one file, never a hang or a read through it."""


_MAX_LINKS = 40  # as the kernel's ELOOP limit


def _is_root(root: str) -> bool:
    return root in ("", "/")


def _parts(path: str) -> List[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def resolve_under(root: str, path: str, follow_last: bool = True) -> str:
    """`path` (absolute, as the guest sees it) resolved under `root` the way
    a chroot would: symlinks are followed inside the root (an absolute
    target is taken from the root), a `..` in `path` is refused, and a link
    whose target climbs above the root raises UnsafePath (a target naming
    the root's own host path is taken as inside it). The part that
    does not exist yet is appended as it is. follow_last=False leaves the
    last component unresolved (so that O_NOFOLLOW still sees it)."""
    if _is_root(root):
        return path
    if ".." in path.split("/"):
        raise UnsafePath(errno.EXDEV, f"'..' in a path under --root: {printable(path)}")
    top = os.path.realpath(root)
    done: List[str] = []  # resolved components below top
    todo = _parts(path)
    links = 0
    while todo:
        name = todo.pop(0)
        if name == "..":  # only from a link's target
            if not done:
                raise UnsafePath(errno.EXDEV, f"{printable(path)}: a symlink leads out of {top}")
            done.pop()
            continue
        current = os.path.join(top, *done, name)
        if not todo and not follow_last:
            done.append(name)
            break
        try:
            st = os.lstat(current)
        except (FileNotFoundError, NotADirectoryError):
            done.append(name)
            done.extend(p for p in todo if p != "..")
            if ".." in todo:
                raise UnsafePath(errno.EXDEV, f"{printable(path)}: a symlink leads out of {top}") from None
            break
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_LINKS:
                raise UnsafePath(errno.ELOOP, f"{printable(path)}: too many levels of symbolic links")
            target = os.readlink(current)
            if target == top or target.startswith(top + "/"):
                target = target[len(top):] or "/"  # a link made on the host side to a place inside the root
            if target.startswith("/"):
                done = []
            todo = _parts(target) + todo
            continue
        done.append(name)
    return os.path.join(top, *done) if done else top


def under(root: str, path: str) -> str:
    """`path` (absolute, as the guest sees it) resolved under `root`: its
    directories resolved inside the root (resolve_under), its last component
    kept as named so that opening it without following symlinks still
    refuses a link. Raises UnsafePath for '..' or a way out of the root."""
    if _is_root(root):
        return path
    return resolve_under(root, path, follow_last=False)


def under_dir(root: str, path: str) -> str:
    """A directory (`path`, as the guest sees it) under `root`, resolved to
    its last component (resolve_under): for a directory that file names
    are joined onto (the pool directory, the drop-in directory), so that a
    symlinked last directory is followed inside the root, never out of it.
    The live system ("/") is unchanged."""
    if _is_root(root):
        return path
    return resolve_under(root, path, follow_last=True)


def printable(text: object) -> str:
    """Text from outside (pool keys and values, database values, paths) as
    it may be printed or logged: one line, no terminal control. Control
    characters, escape sequences, line and paragraph separators, bidi
    controls and undecodable bytes (surrogates) become \\n, \\x1b, \\u202e..."""
    s = text if isinstance(text, str) else str(text)
    if s.isprintable():
        return s
    out = []
    for c in s:
        if c.isprintable():
            out.append(c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x100:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    return "".join(out)


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
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):  # rename would fail after the work, naming the temporary file
            raise UnsafePath(errno.EISDIR, f"{printable(path)} is a directory: not replaced (kept as it is)")
    except FileNotFoundError:
        pass
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
    except OSError as exc:  # said of the file, not of the temporary one
        os.unlink(tmp)
        raise OSError(exc.errno, f"{printable(path)}: {exc.strerror}; not replaced (kept as it was)") from None
    except BaseException:
        os.unlink(tmp)
        raise
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


READ_LIMIT = 16 << 20  # no file the agent reads is anywhere near this
MAX_JSON_DEPTH = 64  # nesting of a JSON value (json.loads recurses: RecursionError near 1000)


def read_bytes_safely(path: str, limit: int = READ_LIMIT) -> bytes:
    """The bytes of a regular file, opened without following a symlink
    (O_NOFOLLOW) and without blocking (O_NONBLOCK: a FIFO never hangs).
    FileNotFoundError when it does not exist; UnsafePath when it is a
    symlink, anything but a regular file, or larger than `limit` bytes;
    another OSError (EACCES...) as it is."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(errno.ELOOP, f"{printable(path)} is a symlink (not followed)") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(errno.EINVAL, f"{printable(path)} is {file_kind(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise UnsafePath(errno.EFBIG, f"{printable(path)} is larger than {limit} bytes")
        chunks: List[bytes] = []
        size = 0
        while True:  # /proc files say size 0: read to the end, bounded
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise UnsafePath(errno.EFBIG, f"{printable(path)} is larger than {limit} bytes")
    finally:
        os.close(fd)


def file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return name
    return "of an unknown type"


def read_text(path: str, limit: int = READ_LIMIT) -> Optional[str]:
    """The file's text (invalid UTF-8 replaced), or None when it does not
    exist. Opened as read_bytes_safely does: a symlink, a FIFO, a device or
    a directory raise UnsafePath (an OSError) instead of hanging or being
    read through."""
    try:
        data = read_bytes_safely(path, limit)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return data.decode("utf-8", "replace")


PID_MAX = 4194304  # the kernel's PID_MAX_LIMIT (64-bit)
DOCKERD_NAMES = ("dockerd",)
AGENT_PROGRAM = "/usr/bin/moby-agent"  # packaging/moby-agent, as `make install` puts it


def raise_open_files(needed: int) -> int:
    """RLIMIT_NOFILE's soft limit raised to at least `needed` (the hard limit
    too, where the process may: root), as far as allowed; the soft limit in
    effect is returned. Live reload holds one descriptor per watched
    directory for its change-notify request, and the soft limit a daemon
    gets from init is 1024 (hard 4096): 5,000 directories would otherwise
    end in "Too many open files" at the 1,010th."""
    import resource  # here: only live reload needs it

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            return needed
        except (ValueError, OSError):  # not root, or past fs.nr_open: as far as the hard limit
            needed = hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    except (ValueError, OSError):
        return soft
    return needed


def valid_pid(value: object) -> Optional[int]:
    """A pid as read from outside (a pid file, status.json): an int from 2 to
    PID_MAX, else None. Never 0, 1 or negative (kill(-1) is everyone)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 1 < value <= PID_MAX else None


def read_pid(path: str) -> Optional[int]:
    """The pid in a pid file, or None: missing, not a regular file (symlink,
    FIFO: never followed, never blocks), not one decimal number, or not a
    pid that may be signalled (> 1)."""
    try:
        data = read_bytes_safely(path, 64)
    except OSError:
        return None
    text = data.decode("ascii", "replace").strip()
    if not text.isdigit() or len(text) > 7:
        return None
    return valid_pid(int(text))


def _proc_read(path: str) -> Optional[bytes]:
    try:
        return read_bytes_safely(path, 1 << 16)
    except OSError:
        return None


def pid_is(pid: object, names: Iterable[str], proc: str = "/proc") -> bool:
    """Whether `pid` (> 1, not this process's own group tricks) is, by
    /proc/<pid>/comm or its command line, one of `names`: the program's name
    (comm, cut at 15 characters by the kernel), its argv[0]'s base name, or,
    for an interpreter (python3 /usr/bin/moby-agent, python3 -m agent), the
    script's base name or the module run with -m."""
    checked = valid_pid(pid)
    if checked is None:
        return False
    wanted = [n for n in names if n]
    base = os.path.join(proc, str(checked))
    comm = _proc_read(os.path.join(base, "comm"))
    raw = _proc_read(os.path.join(base, "cmdline"))
    if comm is None or raw is None:
        return False
    name = comm.decode("utf-8", "replace").rstrip("\n")
    argv = [a.decode("utf-8", "replace") for a in raw.split(b"\0")]
    if argv and argv[-1] == "":
        argv.pop()
    program = os.path.basename(argv[0]) if argv else ""
    for want in wanted:
        if name == want[:15] or program == want:
            return True
    if program.startswith("python") or name.startswith("python"):
        rest = argv[1:]
        while rest and rest[0].startswith("-") and rest[0] != "-m":
            rest = rest[1:]  # interpreter options (-u, -B, -X...)
        if len(rest) >= 2 and rest[0] == "-m" and rest[1] in wanted:
            return True
        if rest and rest[0] != "-m" and os.path.basename(rest[0]) in wanted:
            return True
    return False


# ---- is this pid the agent that wrote status.json? --------------------------

_PYTHON_OPTIONS_WITH_VALUE = ("-W", "-X", "--check-hash-based-pycs")


def agent_home() -> str:
    """The directory this agent package is installed in (its parent):
    /usr/lib/moby-agent once installed, the checkout in tests."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _has_agent_package(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, "agent", "__main__.py"))


def is_agent_command(argv: List[str], cwd: Optional[str], pythonpath: str, home: str,
                     has_package: Callable[[str], bool] = _has_agent_package) -> bool:
    """Whether a process's argv (with its working directory and PYTHONPATH)
    runs this agent through one of its real entry points:
    /usr/bin/moby-agent (run by python3 through its #! line, or directly),
    home/agent/__main__.py, or `python3 -m agent` where the package -m
    finds first (in the working directory, then PYTHONPATH: has_package
    says where one is; injected in tests) is the one in `home`.
    Not a program merely named `agent` or `moby-agent` (a copy of sleep),
    nor `python3 -m agent` importing some other package called agent."""
    if not argv:
        return False
    if argv[0] == AGENT_PROGRAM:
        return True
    if not os.path.basename(argv[0]).startswith("python"):
        return False
    rest = argv[1:]
    while rest and rest[0].startswith("-") and rest[0] not in ("-m", "-c", "-"):
        takes_value = rest[0] in _PYTHON_OPTIONS_WITH_VALUE
        rest = rest[2:] if takes_value else rest[1:]  # interpreter options (-u, -B, -X dev...)
    if not rest:
        return False
    if rest[0] == "-m":
        if len(rest) < 2 or rest[1] != "agent":
            return False
        for d in [cwd or ""] + pythonpath.split(":"):
            if d and os.path.isabs(d) and has_package(d):
                return os.path.normpath(d) == os.path.normpath(home)  # the first one found is imported
        return False
    if rest[0] in ("-c", "-"):
        return False
    script = os.path.normpath(os.path.join(cwd or "/", rest[0]))
    return script in (AGENT_PROGRAM, os.path.join(home, "agent", "__main__.py"))


def parse_start_time(stat_line: bytes) -> Optional[int]:
    """Pure: a process's start time (field 22 of /proc/PID/stat, clock ticks
    after boot). The fields are counted after the LAST ')': comm (field 2,
    in parentheses) may itself hold spaces and parentheses. None when the
    text is not such a line."""
    end = stat_line.rfind(b")")
    if end < 0:
        return None
    fields = stat_line[end + 1:].split()
    if len(fields) < 20:  # fields 3 (state) to 22 (starttime)
        return None
    value = fields[19]
    return int(value) if value.isdigit() and len(value) <= 20 else None


def process_start_time(pid: int, proc: str = "/proc") -> Optional[int]:
    """A process's start time from /proc/PID/stat (parse_start_time), or
    None when it is not running or unreadable."""
    checked = valid_pid(pid)
    raw = _proc_read(os.path.join(proc, str(checked), "stat")) if checked else None
    return parse_start_time(raw) if raw else None


def seconds_since_start(start_ticks: Optional[int], uptime_text: Optional[str],
                        ticks_per_second: int) -> Optional[float]:
    """Pure: how long a process has run, from its start time (clock ticks
    after boot) and /proc/uptime's text; None when either is unreadable."""
    if start_ticks is None or not uptime_text or ticks_per_second <= 0:
        return None
    try:
        uptime = float(uptime_text.split()[0])
    except (ValueError, IndexError):
        return None
    return max(0.0, uptime - start_ticks / ticks_per_second)


def own_age() -> Optional[float]:
    """Seconds since this process was exec'd (for the first pass's log line:
    what a boot waits on the agent)."""
    raw = _proc_read("/proc/uptime")
    return seconds_since_start(process_start_time(os.getpid()), raw.decode("ascii", "replace") if raw else None,
                               os.sysconf("SC_CLK_TCK"))


def _proc_environ(pid: int, proc: str) -> Dict[str, str]:
    raw = _proc_read(os.path.join(proc, str(pid), "environ")) or b""
    env: Dict[str, str] = {}
    for entry in raw.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep:
            env[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
    return env


def agent_pid_is(pid: object, start_time: object, proc: str = "/proc", home: Optional[str] = None) -> bool:
    """Whether `pid` is the agent that recorded `start_time` (its own
    process_start_time, written into status.json): the start time must
    match (a reused pid never does) and the process must run one of the
    agent's entry points (is_agent_command)."""
    checked = valid_pid(pid)
    if checked is None or isinstance(start_time, bool) or not isinstance(start_time, int):
        return False
    if process_start_time(checked, proc) != start_time:
        return False
    argv = process_args(checked, proc)
    try:
        cwd: Optional[str] = os.readlink(os.path.join(proc, str(checked), "cwd"))
    except OSError:
        cwd = None
    pythonpath = _proc_environ(checked, proc).get("PYTHONPATH", "")
    if not is_agent_command(argv, cwd, pythonpath, home or agent_home()):
        return False
    return process_start_time(checked, proc) == start_time  # still the same process


def process_args(pid: int, proc: str = "/proc") -> List[str]:
    """A process's argv (empty if unreadable)."""
    checked = valid_pid(pid)
    raw = _proc_read(os.path.join(proc, str(checked), "cmdline")) if checked else None
    if not raw:
        return []
    return [a.decode("utf-8", "surrogateescape") for a in raw.rstrip(b"\0").split(b"\0")]


def same_root(root: str, argv: List[str]) -> bool:
    """Whether a process (by its argv) runs against `root`: an agent given
    `--root ROOT`, or a program given a path under ROOT (a fixture dockerd's
    --pidfile). Under --root, only such processes are inside the boundary."""
    want = os.path.realpath(root)
    for i, arg in enumerate(argv):
        if arg == "--root" and i + 1 < len(argv):
            return os.path.realpath(argv[i + 1]) == want
        if arg.startswith("--root="):
            return os.path.realpath(arg[len("--root="):]) == want
    top = want.rstrip("/") + "/"
    return any(top in arg for arg in argv)


def signal_confirmed(pid: object, names: Iterable[str], sig: int, proc: str = "/proc") -> bool:
    """Send `sig` to `pid` only if pid_is(pid, names); True if it was sent.
    Never a pid <= 1, never a number as it was read from a file."""
    checked = valid_pid(pid)
    if checked is None or not pid_is(checked, names, proc):
        return False
    try:
        os.kill(checked, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def remove_stale_credentials(directory: str, prefix: str = ".credentials-") -> List[str]:
    """Remove the credentials files a killed mount left (`prefix`* in the
    shares state directory; only the agent makes them, and only for the
    duration of one mount.cifs). Returns the names removed. Symlinks and
    other non-files with that prefix are removed too (unlink never follows)."""
    removed: List[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(prefix):
            continue
        try:
            os.unlink(os.path.join(directory, name))
        except IsADirectoryError:
            continue
        except OSError:
            continue
        removed.append(name)
    return removed


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
        try:
            comm = read_text(os.path.join(proc, entry, "comm"), 4096)
        except OSError:
            continue
        if comm is not None and comm.strip() == name[:15]:
            found.append(int(entry))
    return found


def json_depth(text: Union[str, bytes], limit: int = MAX_JSON_DEPTH) -> int:
    """The nesting depth of a JSON text's arrays and objects (strings
    skipped), counted without recursion; stops counting past `limit`."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    depth = deepest = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif c in "]}":
            depth -= 1
    return deepest


def loads_limited(text: Union[str, bytes], limit: int = MAX_JSON_DEPTH) -> object:
    """json.loads, refusing (ValueError) a value nested deeper than `limit`
    before parsing it: a deep daemon.json in the database must be a
    problem, not a RecursionError that kills the agent."""
    import json

    if json_depth(text, limit) > limit:
        raise ValueError(f"JSON nested deeper than {limit} levels")
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def read_json(path: str, limit: int = 1 << 20, max_depth: int = 32) -> object:
    """A JSON file the agent keeps (status.json, shares.json, watch.json),
    read as if it came from the host: no symlink followed, no FIFO waited
    on, at most `limit` bytes, nested at most `max_depth` levels.
    FileNotFoundError when absent; UnsafePath (OSError) or ValueError
    otherwise. The caller still checks the shape it expects."""
    return loads_limited(read_bytes_safely(path, limit), max_depth)


def confirmed_pid(path: str, names: Iterable[str], proc: str = "/proc") -> Optional[int]:
    """The pid in a pid file (read_pid) only if /proc confirms it is one of
    `names` (pid_is): e.g. confirmed_pid(docker.pidfile, DOCKERD_NAMES)."""
    pid = read_pid(path)
    return pid if pid is not None and pid_is(pid, names, proc) else None


class CommandResult:
    def __init__(self, returncode: int, output: str) -> None:
        self.returncode = returncode
        self.output = output


def run_command(argv: List[str], timeout: float, should_stop: Callable[[], bool] = lambda: False,
                detach: bool = False) -> CommandResult:
    """Run argv (never through a shell), its stdout and stderr together;
    killed on timeout, or when should_stop() turns true (SIGTERM)."""
    try:
        # detach: a session of its own, so that a signal to the agent's
        # process group (its service being stopped) does not cut it short.
        import subprocess  # only when a program runs: about 3 ms of start-up

        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=detach)
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
