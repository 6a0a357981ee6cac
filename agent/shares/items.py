"""cifsmount / cifsumount items: what the host asks the guest to mount.

Pure: parsing and validation only, as an attacker would probe them. A
rejected item is a ShareError whose message names the offending part and
never contains a password.

Formats (facts section 3):
  v1 cifsmount   "<mountpoint>;<alias>;<options>"      credentials in options
  v2 cifsmount   "<mountpoint>\\n<alias>\\n<username>\\n<password>\\n<options>"
  cifsumount     "<mountpoint>;<alias>" or "<mountpoint>\\n<alias>"
"""

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Pattern, Tuple

CIFSMOUNT = "cifsmount"
CIFSUMOUNT = "cifsumount"
SECRET_KEYS = (CIFSMOUNT,)
DEFAULT_PATTERN = r"^/[A-Za-z]$"

# Never a mount point or alias, nor anything below them, whatever the pattern.
FORBIDDEN = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root", "/run", "/sbin", "/sys",
    "/tmp",  # noqa: S108 - a path refused, not used
    "/usr", "/var", "/Database",
)

FLAGS = frozenset({"noperm", "nobrl", "mfsymlinks", "nounix", "noserverino", "serverino", "nocase", "ro", "rw",
                   "hard", "soft", "nodfs"})
VERSIONS = frozenset({"2.0", "2.1", "3", "3.0", "3.02", "3.0.2", "3.1.1", "3.11", "default"})
CACHE = frozenset({"strict", "loose", "none"})
STRONG_SEC = frozenset({"ntlmssp", "ntlmsspi", "ntlmv2", "ntlmv2i", "krb5", "krb5i"})
MAX_USERNAME, MAX_PASSWORD, MAX_DOMAIN, MAX_OPTIONS = 256, 512, 64, 32
_IOCHARSET = re.compile(r"^[a-z0-9][a-z0-9_-]{0,19}$")
_DOMAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_VALUED = frozenset({"vers", "iocharset", "domain", "uid", "gid", "file_mode", "dir_mode", "cache", "actimeo",
                     "sec", "username", "password"})
_PASSWORD = re.compile(r"(?i)((?:^|[,;])(?:password|pass)=)(?:[^,]|,,)*")


class ShareError(Exception):
    """An item that is rejected as a whole; the text names the offending part."""


@dataclass(frozen=True)
class Limits:
    pattern: str = DEFAULT_PATTERN
    max_id: int = 65535


@dataclass(frozen=True)
class ShareSpec:
    """One drive the host wants: //<host>/<share> at mountpoint, bound at alias."""

    mountpoint: str
    alias: str
    username: str
    password: str = field(repr=False)
    domain: Optional[str]
    options: Tuple[str, ...]

    @property
    def share(self) -> str:
        return self.mountpoint.lstrip("/")

    def fingerprint(self) -> str:
        """Identifies what the mount was made with (credentials included), so
        that new credentials or options cause a remount."""
        import hashlib  # lazily: OpenSSL costs about 3 MB of RSS

        text = "\0".join((self.share, self.username, self.password, self.domain or "", *self.options))
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def shown_options(self) -> List[str]:
        """The options as plan and status show them: password as ***."""
        shown = list(self.options) + [f"username={self.username}"]
        if self.domain:
            shown.append(f"domain={self.domain}")
        return shown + ["password=***"]


def redact_item(key: str, value: str) -> str:
    """The value with any password replaced by ***, for display."""
    if key not in SECRET_KEYS:
        return value
    if "\n" in value:  # v2: mountpoint, alias, username, password, options
        fields = value.split("\n")
        if len(fields) >= 4:
            fields[3] = "***"
        fields[4:] = [_PASSWORD.sub(r"\1***", f) for f in fields[4:]]
        return "\n".join(fields)
    return _PASSWORD.sub(r"\1***", value)


def _check_path(what: str, path: str, pattern: Pattern[str]) -> str:
    if not path:
        raise ShareError(f"{what} is empty")
    if len(path) > 64:
        raise ShareError(f"{what} is longer than 64 characters")
    if any(c in path for c in "\0\n\r\t ,;=\\") or not path.isprintable():
        raise ShareError(f"{what} {path!r} contains a forbidden character")
    if path == "/":
        raise ShareError(f"{what} '/' is a system directory")
    if not path.startswith("/") or any(part in ("", ".", "..") for part in path.split("/")[1:]):
        raise ShareError(f"{what} {path!r} is not a plain absolute path")
    if any(path == f or path.startswith(f + "/") for f in FORBIDDEN):
        raise ShareError(f"{what} {path!r} is a system directory")
    if not pattern.fullmatch(path):
        raise ShareError(f"{what} {path!r} is not allowed (allowed: {pattern.pattern})")
    return path


def _split_options(text: str) -> List[str]:
    """Comma-separated, with mount.cifs's ",," for a literal comma (password)."""
    parts: List[str] = []
    current = ""
    i = 0
    while i < len(text):
        c = text[i]
        if c == ",":
            if text[i + 1 : i + 2] == "," and current.lower().startswith(("password=", "pass=")):
                current += ","
                i += 2
                continue
            parts.append(current)
            current = ""
        else:
            current += c
        i += 1
    parts.append(current)
    return parts


def _check_int(name: str, value: str, low: int, high: int, base: int = 10) -> str:
    try:
        number = int(value, base)
    except ValueError:
        raise ShareError(f"option {name!r}: {value!r} is not a number") from None
    if not low <= number <= high:
        shown = oct(high)[2:] if base == 8 else high
        raise ShareError(f"option {name!r} must be between {low} and {shown}")
    return f"{name}={value}"


def _options(text: str, limits: Limits, creds: Dict[str, str]) -> Tuple[str, ...]:
    """Validate options; credentials (username, password, domain) are moved to
    `creds`, everything else is returned in order."""
    out: List[str] = []
    seen = set()
    parts = [p for p in _split_options(text) if p != ""] if text else []
    if len(parts) > MAX_OPTIONS:
        raise ShareError(f"more than {MAX_OPTIONS} options")
    for part in parts:
        name, eq, value = part.partition("=")
        name = name.strip().lower()
        if name in seen:
            raise ShareError(f"option {name!r} is given twice")
        seen.add(name)
        if name in ("password", "pass"):
            if "\n" in value or "\r" in value or "\0" in value:
                raise ShareError("password contains a line break or NUL")
            if len(value.encode()) > MAX_PASSWORD:
                raise ShareError(f"password is longer than {MAX_PASSWORD} bytes")
            creds["password"] = value
            continue
        if any(c in value for c in "\0\n\r"):
            raise ShareError(f"option {name!r} contains a line break or NUL")
        if name in ("username", "user"):
            if not value or len(value) > MAX_USERNAME or not value.isprintable() or "," in value:
                raise ShareError("option 'username' is empty, too long or has forbidden characters")
            if "%" in value or "/" in value or "\\" in value:
                raise ShareError("option 'username' must not carry a password or domain (%, /, \\)")
            creds["username"] = value
        elif name in ("domain", "dom", "workgroup"):
            if not _DOMAIN.fullmatch(value) or len(value) > MAX_DOMAIN:
                raise ShareError("option 'domain' has forbidden characters or is too long")
            creds["domain"] = value
        elif name in FLAGS:
            if eq:
                raise ShareError(f"option {name!r} takes no value")
            out.append(name)
        elif name == "vers":
            if value not in VERSIONS:
                raise ShareError(f"option 'vers={value}' is not allowed (allowed: {', '.join(sorted(VERSIONS))})")
            out.append(part.strip())
        elif name == "iocharset":
            if not _IOCHARSET.fullmatch(value):
                raise ShareError("option 'iocharset' has forbidden characters")
            out.append(f"iocharset={value}")
        elif name in ("uid", "gid"):
            out.append(_check_int(name, value, 0, limits.max_id))
        elif name in ("file_mode", "dir_mode"):
            out.append(_check_int(name, value, 0, 0o777, 8))
        elif name == "cache":
            if value not in CACHE:
                raise ShareError(f"option 'cache={value}' is not allowed (allowed: strict, loose, none)")
            out.append(f"cache={value}")
        elif name == "actimeo":
            out.append(_check_int(name, value, 0, 3600))
        elif name == "sec":
            if value not in STRONG_SEC:
                raise ShareError(f"option 'sec={value}' is not allowed (allowed: {', '.join(sorted(STRONG_SEC))})")
            out.append(f"sec={value}")
        else:
            allowed = ", ".join(sorted(FLAGS | _VALUED))
            raise ShareError(f"option {name!r} is not allowed (allowed: {allowed})")
    return tuple(out)


def parse_mount(value: str, limits: Limits = Limits()) -> ShareSpec:
    """A cifsmount item's value -> ShareSpec, or ShareError."""
    pattern = re.compile(limits.pattern)
    if "\0" in value:
        raise ShareError("the item contains a NUL character")
    creds: Dict[str, str] = {}
    if "\n" in value:
        fields = value.split("\n")
        if len(fields) != 5:
            raise ShareError(
                f"a v2 item has 5 lines (mount point, alias, username, password, options), not {len(fields)}"
            )
        mountpoint, alias, username, password, options = fields
        if not username or len(username) > MAX_USERNAME or not username.isprintable() or "," in username:
            raise ShareError("username is empty, too long or has forbidden characters")
        if "%" in username or "\\" in username or "/" in username:
            raise ShareError("username must not carry a password or domain (%, /, \\)")
        if len(password.encode()) > MAX_PASSWORD or "\r" in password:
            raise ShareError(f"password is longer than {MAX_PASSWORD} bytes or has a line break")
        opts = _options(options, limits, creds)
        if "username" in creds or "password" in creds:
            raise ShareError("a v2 item carries username and password in their own lines, not in options")
        creds["username"], creds["password"] = username, password
    else:
        fields = value.split(";")
        if len(fields) != 3:
            raise ShareError(
                f"a v1 item has 3 fields separated by ';' (mount point;alias;options), not {len(fields)}"
            )
        mountpoint, alias, options = fields
        opts = _options(options, limits, creds)
        if "username" not in creds:
            raise ShareError("options carry no username")
        creds.setdefault("password", "")
    mountpoint = _check_path("mount point", mountpoint, pattern)
    alias = _check_path("alias", alias, pattern) if alias else mountpoint
    return ShareSpec(mountpoint, alias, creds["username"], creds["password"], creds.get("domain"), opts)


def parse_umount(value: str, limits: Limits = Limits()) -> Tuple[str, str]:
    """A cifsumount item's value -> (mountpoint, alias), or ShareError."""
    pattern = re.compile(limits.pattern)
    fields = value.split("\n") if "\n" in value else value.split(";")
    if len(fields) != 2:
        raise ShareError("a cifsumount item is '<mountpoint>;<alias>' (or the two on separate lines)")
    mountpoint = _check_path("mount point", fields[0], pattern)
    alias = _check_path("alias", fields[1], pattern) if fields[1] else mountpoint
    return mountpoint, alias


def credentials_file(spec: ShareSpec) -> str:
    """What mount.cifs reads from credentials=: the rest of each line after
    the first '=' is the value, so commas, '=' and spaces are safe."""
    text = f"username={spec.username}\npassword={spec.password}\n"
    if spec.domain:
        text += f"domain={spec.domain}\n"
    return text
