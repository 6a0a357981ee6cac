"""The host's configuration database: a Plan 9 tree mounted at /Database,
named by `com.docker.database="<name>"` on the kernel command line.

Keys are plain files under branch/master/ro/<name>/ (mobyconfig semantics:
get, exists, dir, path, find). Pure functions here; the mount is an action.
"""

import errno
import os
import stat
from typing import Dict, List, Optional, Tuple, Union

from agent.lazyre import lazy
from agent.system import file_kind, printable

NOT_FOUND = "Could not find database configuration information"
IMMUTABLE = "Configuration is immutable"
MAX_FILE = 1 << 20  # a key larger than this is refused (read as a problem)


class DatabaseError(Exception):
    pass


# A directory name: no slash, no control character, not . or ..
_NAME = lazy(r"^[^/\x00-\x1f\x7f]{1,255}$")


def kernel_params(text: str) -> List[Tuple[str, Optional[str]]]:
    """(param, value) pairs as the kernel splits its command line (next_arg
    in lib/cmdline.c): words split at spaces outside double quotes, an
    unbalanced quote running to the end; a value loses one leading and one
    trailing quote, quotes inside it stay. Pure, never raises."""
    out: List[Tuple[str, Optional[str]]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        quoted = text[i] == '"'
        if quoted:
            i += 1
        start, in_quote, equals = i, quoted, -1
        while i < n and not (text[i].isspace() and not in_quote):
            if equals < 0 and text[i] == "=":
                equals = i
            if text[i] == '"':
                in_quote = not in_quote
            i += 1
        word = text[start:i]
        i += 1
        if quoted and word.endswith('"'):
            word = word[:-1]
        if equals < 0:
            out.append((word, None))
            continue
        param, value = word[: equals - start], word[equals - start + 1 :]
        if value.startswith('"'):
            value = value[1:]
            if value.endswith('"'):
                value = value[:-1]
        out.append((param, value))
    return out


def parse_cmdline(text: str, label: str = "com.docker.database") -> Optional[str]:
    """The database name from a kernel command line, read as the kernel
    reads it; None when the label is absent, empty or not a plain name (the
    last one given wins, as for any kernel parameter). Never raises."""
    name = None
    for param, value in kernel_params(text.rstrip("\n")):  # /proc/cmdline ends with a newline
        if param == label:
            name = value
    if not name or name in (".", "..") or not _NAME.match(name):
        return None
    return name


# A key's component: letters, digits, '.', '_', '-', and at most one
# ':<port>' at its end (a registry's certs.d/<host>:<port> directory).
_PART = r"[A-Za-z0-9._-]+(?::[0-9]{1,5})?"
_KEY = lazy(rf"^{_PART}(/{_PART})*$")


def check_key(key: str) -> str:
    """A database key: relative, plain path components, no '..'."""
    key = key.strip("/")
    if key == "":
        return key
    if not _KEY.fullmatch(key) or any(part in (".", "..") for part in key.split("/")):
        raise DatabaseError(f"invalid key {key!r}")
    return key


def base(mount_point: str, name: str) -> str:
    return os.path.join(mount_point, "branch", "master", "ro", name)


def path(root: str, key: str) -> str:
    key = check_key(key)
    return os.path.join(root, key) if key else root


MAX_KEYS = 10_000  # keys in one tree
MAX_DEPTH = 32  # directory levels

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


def _open_dir(root: str, key: str) -> int:
    """An fd on the directory root/key, walked one component at a time
    without following a symlink (a link anywhere on the way is refused)."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in [p for p in key.split("/") if p]:
            try:
                new = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except NotADirectoryError:  # O_DIRECTORY wins over O_NOFOLLOW: say which
                if stat.S_ISLNK(os.lstat(part, dir_fd=fd).st_mode):
                    raise OSError(errno.ELOOP, "a symlink (not followed)") from None
                raise
            os.close(fd)
            fd = new
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_at(dir_fd: int, name: str, shown: str, limit: int = MAX_FILE) -> bytes:
    """A regular file in dir_fd, opened without following a symlink and
    without blocking; DatabaseError for anything else (FIFO, socket,
    device, directory, symlink) or a file over `limit` bytes."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DatabaseError(f"key {shown!r} is a symlink (not followed)") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DatabaseError(f"key {shown!r} is {file_kind(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise DatabaseError(f"key {shown!r} is larger than {limit} bytes")
        chunks: List[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise DatabaseError(f"key {shown!r} is larger than {limit} bytes")
            chunks.append(chunk)
    finally:
        os.close(fd)


def get_bytes(root: str, key: str) -> Optional[bytes]:
    """A key's bytes, exactly; None when it is absent or a directory.
    DatabaseError for a symlink (anywhere on its path), a FIFO, a device,
    a file over MAX_FILE bytes."""
    key = check_key(key)
    parent, _, name = key.rpartition("/")
    if not name:
        return None
    try:
        dfd = _open_dir(root, parent)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DatabaseError(f"key {printable(key)!r}: a symlink on its path (not followed)") from None
        raise
    try:
        return _read_at(dfd, name, printable(key))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except DatabaseError as exc:
        if "a directory" in str(exc):
            return None
        raise
    finally:
        os.close(dfd)


def get(root: str, key: str) -> Optional[str]:
    """A key's text (invalid UTF-8 replaced: for display; copies use
    get_bytes or read_tree_checked)."""
    data = get_bytes(root, key)
    return None if data is None else data.decode("utf-8", "replace")


def _is_dir(root: str, key: str) -> bool:
    try:
        fd = _open_dir(root, check_key(key))
    except OSError:
        return False
    os.close(fd)
    return True


def exists(root: str, key: str) -> bool:
    """A directory, or a file whose trimmed content is not empty."""
    if _is_dir(root, key):
        return True
    try:
        value = get(root, key)
    except DatabaseError:  # a symlink, a FIFO...: not a key
        return False
    return value is not None and value.strip() != ""


def listdir(root: str, key: str) -> List[str]:
    try:
        fd = _open_dir(root, check_key(key))
    except OSError:
        return []
    try:
        return sorted(printable(n) for n in os.listdir(fd))
    finally:
        os.close(fd)


def find(root: str, key: str) -> List[str]:
    """The keys of every regular file below `key` (symlinks, FIFOs and the
    like are not keys)."""
    key = check_key(key)
    try:
        tree, _problems = read_tree_checked(root, key, read=False)
    except (OSError, DatabaseError):
        return []
    return sorted(tree)


Value = Union[str, bytes]


def read_tree_checked(root: str, below: str = "", read: bool = True) -> Tuple[Dict[str, Value], Dict[str, str]]:
    """Every key under root: (tree, problems). tree maps a key to its text
    (valid UTF-8) or, for any other content, its bytes exactly as stored
    (binary: copy it as is). problems maps a key (printable) to why it was
    left out: a symlink (into the tree or out of it: never followed), a
    FIFO, socket or device (never opened for reading in a way that blocks),
    a file over MAX_FILE bytes, a name that is not a plain key, more than
    MAX_KEYS keys or MAX_DEPTH levels. One bad key never hides the others.
    Raises OSError only when root itself cannot be opened. read=False: the
    keys only (values "")."""
    tree: Dict[str, Value] = {}
    problems: Dict[str, str] = {}
    try:
        top = _open_dir(root, below)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DatabaseError(f"{printable(below or root)}: a symlink (not followed)") from None
        raise
    stack: List[Tuple[int, str, int]] = [(top, below, 0)]
    try:
        while stack:
            dfd, prefix, depth = stack.pop()
            try:
                with os.scandir(dfd) as it:
                    entries = sorted(it, key=lambda e: e.name)
                for entry in entries:
                    key = f"{prefix}/{entry.name}" if prefix else entry.name
                    shown = printable(key)
                    if len(tree) + len(problems) >= MAX_KEYS:
                        problems["..."] = f"more than {MAX_KEYS} keys; the rest are not read"
                        stack.clear()
                        break
                    if not _KEY.fullmatch(entry.name) or entry.name in (".", ".."):
                        problems[shown] = f"key {shown!r}: not a plain key name; ignored"
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError as exc:
                        problems[shown] = f"key {shown!r}: {exc.strerror}"
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        if depth + 1 >= MAX_DEPTH:
                            problems[shown] = f"key {shown!r}: more than {MAX_DEPTH} levels; not read"
                            continue
                        try:
                            sub = os.open(entry.name, _DIR_FLAGS, dir_fd=dfd)
                        except OSError as exc:
                            problems[shown] = f"key {shown!r}: {exc.strerror}"
                            continue
                        stack.append((sub, key, depth + 1))
                        continue
                    if stat.S_ISLNK(st.st_mode):
                        problems[shown] = f"key {shown!r} is a symlink (not followed)"
                        continue
                    if not stat.S_ISREG(st.st_mode):
                        problems[shown] = f"key {shown!r} is {file_kind(st.st_mode)}, not a regular file"
                        continue
                    if not read:
                        tree[key] = ""
                        continue
                    try:
                        data = _read_at(dfd, entry.name, shown)
                    except DatabaseError as exc:
                        problems[shown] = str(exc)
                        continue
                    except OSError as exc:
                        problems[shown] = f"key {shown!r}: {exc.strerror}"
                        continue
                    try:
                        tree[key] = data.decode("utf-8")
                    except UnicodeDecodeError:
                        tree[key] = data  # binary: byte-exact
            except OSError as exc:
                problems[printable(prefix) or "."] = f"{printable(prefix) or 'the tree'}: {exc.strerror}"
            finally:
                os.close(dfd)
    finally:
        for dfd, _p, _d in stack:
            os.close(dfd)
    return tree, problems


def read_tree(root: str) -> Dict[str, str]:
    """Every text key under root with its value (the whole database is
    small). Compatible form of read_tree_checked: binary keys and problem
    keys are left out (use read_tree_checked to copy the first byte-exact
    and report the others)."""
    tree, _problems = read_tree_checked(root)
    return {k: v for k, v in tree.items() if isinstance(v, str)}


_PRIVATE = lazy(rb"-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY-----")


def copy_mode(key: str, data: Value) -> int:
    """The mode a copied key gets: 0600 for a private key (a `*.key` file,
    `key.pem`, or content with a PEM private key block), 0644 otherwise."""
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    name = key.rsplit("/", 1)[-1].lower()
    if name.endswith(".key") or name.endswith("key.pem") or _PRIVATE.search(raw):
        return 0o600
    return 0o644
