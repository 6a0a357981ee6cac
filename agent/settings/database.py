"""The host's configuration database: a Plan 9 tree mounted at /Database,
named by `com.docker.database="<name>"` on the kernel command line.

Keys are plain files under branch/master/ro/<name>/ (mobyconfig semantics:
get, exists, dir, path, find). Pure functions here; the mount is an action.
"""

import os
import re
from typing import Dict, List, Optional, Tuple

NOT_FOUND = "Could not find database configuration information"
IMMUTABLE = "Configuration is immutable"
MAX_FILE = 1 << 20  # a key larger than this is refused (read as a problem)


class DatabaseError(Exception):
    pass


# A directory name: no slash, no control character, not . or ..
_NAME = re.compile(r"^[^/\x00-\x1f\x7f]{1,255}$")


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


_KEY = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


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


def get(root: str, key: str) -> Optional[str]:
    p = path(root, key)
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    if len(data) > MAX_FILE:
        raise DatabaseError(f"key {key!r} is larger than {MAX_FILE} bytes")
    return data.decode("utf-8", "replace")


def exists(root: str, key: str) -> bool:
    """A directory, or a file whose trimmed content is not empty."""
    p = path(root, key)
    if os.path.isdir(p):
        return True
    value = get(root, key)
    return value is not None and value.strip() != ""


def listdir(root: str, key: str) -> List[str]:
    try:
        return sorted(os.listdir(path(root, key)))
    except (FileNotFoundError, NotADirectoryError):
        return []


def find(root: str, key: str) -> List[str]:
    """The keys of every file below `key`."""
    top = path(root, key)
    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(filenames):
            found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return found


def read_tree(root: str) -> Dict[str, str]:
    """Every key under root with its value (the whole database is small)."""
    return {key: get(root, key) or "" for key in find(root, "")}
