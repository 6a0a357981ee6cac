"""The host's configuration database: a Plan 9 tree mounted at /Database,
named by `com.docker.database="<name>"` on the kernel command line.

Keys are plain files under branch/master/ro/<name>/ (mobyconfig semantics:
get, exists, dir, path, find). Pure functions here; the mount is an action.
"""

import os
import re
import shlex
from typing import Dict, List, Optional

NOT_FOUND = "Could not find database configuration information"
IMMUTABLE = "Configuration is immutable"
MAX_FILE = 1 << 20  # a key larger than this is refused (read as a problem)


class DatabaseError(Exception):
    pass


def parse_cmdline(text: str, label: str = "com.docker.database") -> Optional[str]:
    """The database name from a kernel command line, quoted or not; None
    when the label is absent or empty. Never raises."""
    try:
        words = shlex.split(text.replace("\\", "\\\\"), posix=True)
    except ValueError:  # unbalanced quotes: the kernel takes the rest as one word
        words = text.replace('"', " ").split()
    name = None
    for word in words:
        if word.startswith(label + "="):
            name = word[len(label) + 1 :]
    if not name or "/" in name or name in (".", "..") or "\0" in name:
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
