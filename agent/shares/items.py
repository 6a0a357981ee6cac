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
import sys
from dataclasses import field
from typing import Any, Dict, List, Optional, Pattern, Tuple

from agent.lazyre import lazy
from agent.record import dataclass

CIFSMOUNT = "cifsmount"
CIFSUMOUNT = "cifsumount"
SECRET_KEYS = (CIFSMOUNT,)
DEFAULT_PATTERN = r"^/[A-Za-z]$"

# Never a mount point or alias, nor anything below them, whatever the pattern.
FORBIDDEN = (
    "/bin", "/boot", "/dev", "/etc", "/home", "/init", "/lib", "/lib32", "/lib64", "/libx32", "/lost+found",
    "/media", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys",
    "/tmp",  # noqa: S108 - a path refused, not used
    "/usr", "/var", "/Database",
)

FLAGS = frozenset({"noperm", "nobrl", "mfsymlinks", "nounix", "noserverino", "serverino", "nocase", "ro", "rw",
                   "hard", "soft", "nodfs"})
VERSIONS = frozenset({"2.0", "2.1", "3", "3.0", "3.02", "3.0.2", "3.1.1", "3.11", "default"})
CACHE = frozenset({"strict", "loose", "none"})
STRONG_SEC = frozenset({"ntlmssp", "ntlmsspi", "ntlmv2", "ntlmv2i", "krb5", "krb5i"})
# Lengths in bytes of UTF-8, as mount.cifs and the kernel count them
# (cifs-utils mount.cifs.c: MAX_USERNAME_SIZE 256, MAX_DOMAIN_SIZE 256,
# MOUNT_PASSWD_SIZE 512, each buffer one byte more for the NUL; the kernel's
# CIFS_MAX_USERNAME_LEN 256, CIFS_MAX_DOMAINNAME_LEN 256):
# - user name: up to 256 bytes. mount.cifs strlcpy()s the credentials file's
#   username= into its 257-byte buffer, silently cutting a longer one, and
#   the kernel refuses more than 256: so 256 fits, 257 would be cut.
# - domain: up to 255 bytes. mount.cifs takes 256 (it refuses strnlen >= 257)
#   but the kernel refuses a domain whose strnlen(.., 256) reaches 256.
# - password: up to 512 bytes *after mount.cifs doubles each ','*
#   (set_password() writes ",," for ",", also when it reads the credentials
#   file, then the NUL into a 513-byte buffer): a comma counts twice.
MAX_USERNAME, MAX_PASSWORD, MAX_DOMAIN, MAX_OPTIONS = 256, 512, 255, 32
# Characters Windows never allows in a user name ("=" and ";" also catch
# "username=me password=x" read as one option). "\\" is not among them: it
# separates DOMAIN\user, split off before this check.
_USERNAME_FORBIDDEN = ',;="[]:|+*?<>'
_IOCHARSET = lazy(r"^[a-z0-9][a-z0-9_-]{0,19}$")
# A NetBIOS (CORP, ÉQUIPE) or DNS (corp.example.com) domain: letters and
# digits of any script, '.', '_' and '-', starting with a letter or digit.
_DOMAIN = lazy(r"^[^\W_][\w.-]*$")
# Flags of the allow-list that undo each other: both given is refused (the
# kernel would silently keep the last).
CONTRADICTIONS = (("ro", "rw"), ("hard", "soft"), ("serverino", "noserverino"))
# Other spellings mount.cifs accepts for the credential options: one of each
# is allowed, whatever the spelling ("user=a,username=b" is given twice).
_ALIASES = {"user": "username", "pass": "password", "dom": "domain", "workgroup": "domain"}
_VALUED = frozenset({"vers", "iocharset", "domain", "uid", "gid", "file_mode", "dir_mode", "cache", "actimeo",
                     "sec", "username", "password"})
# Option names, as the parser reads them (stripped, any case), that carry
# a password; and those that carry a user name (where "user%password" hides
# one). Redaction and the parser share _tokens(), so they read an item alike.
PASSWORD_NAMES = frozenset({"password", "pass", "password2", "pass2"})
USER_NAMES = frozenset({"username", "user"})
# A password option anywhere in a text, whatever precedes it (a space, ';').
_MARKER = lazy(r"(?i)(?:^|(?<=[\s,;]))(pass(?:word)?2?)\s*=")
# mount.cifs and kernel option names: the only unknown names a problem text
# may repeat (a word the host sent that is not one of these may be the tail
# of a password whose comma was not doubled).
KNOWN_NAMES = frozenset({
    "credentials", "cred", "setuids", "nosetuids", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "user",
    "users", "nouser", "mand", "nomand", "perm", "forceuid", "forcegid", "noforceuid", "noforcegid", "guest",
    "ip", "addr", "unc", "target", "path", "prefixpath", "port", "servern", "netbiosname", "sfu", "nosfu",
    "multiuser", "cruid", "backupuid", "backupgid", "snapshot", "seal", "rdma", "resilienthandles",
    "persistenthandles", "nosharesock", "max_credits", "rsize", "wsize", "bsize", "echo_interval", "handletimeout",
    "fsc", "mapchars", "nomapchars", "mapposix", "nomapposix", "intr", "nointr", "strictsync", "nostrictsync",
    "dynperm", "nodynperm", "acl", "noacl", "cifsacl", "nocifsacl", "idsfromsid", "modefromsid", "locallease",
    "nolease", "noblocksend", "noautotune", "nohandlecache", "posixpaths", "noposixpaths",
    "remount", "sync", "async", "atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime",
    "domainauto", "sep", "uncpath", "actimeo", "acregmax", "acdirmax", "closetimeo",
    "password2", "pass2", "dom", "workgroup", "pwd",
})
_SAFE_TEXT = lazy(r"^[A-Za-z0-9._/-]{0,64}$")
_PATHLIKE = lazy(r"^(/[A-Za-z0-9._-]{0,63}){0,8}$")


class ShareError(Exception):
    """An item that is rejected as a whole; the text names the offending part."""


@dataclass(frozen=True)
class Limits:
    """What a cifsmount item may name: the mount point pattern, the largest uid/gid, more refused mount points."""

    pattern: str = DEFAULT_PATTERN
    max_id: int = 65535
    # More refused mount points (and everything below): the configured
    # database mount point, e.g. Limits(..., forbidden=(conf.database.mount_point,)).
    forbidden: Tuple[str, ...] = ()


MAX_PATTERN = 200  # characters of shares.mount_pattern
MAX_REPEATS = 3  # quantifiers in it, none nested: matching a 64-character path stays cheap
MAX_PATH = 64  # characters of a mount point or alias (parse_mount refuses longer ones before matching)
# The ways a pattern may try to match one path before it fails, worst case
# (_pattern_ways): 2^20 ways took 17 ms here; 2^39, which 39 alternations in
# a row of under 200 characters reach without any quantifier, would take hours.
MAX_PATTERN_WAYS = 1_000_000


def _pattern_cost_problem(pattern: str) -> Optional[str]:
    """Why a mount pattern could take planning hostage (catastrophic
    backtracking), or None: too long, a quantifier inside a quantified group
    or an alternation inside one, too many quantifiers, a backreference or a
    lookaround."""
    if len(pattern) > MAX_PATTERN:
        return f"longer than {MAX_PATTERN} characters"
    if sys.version_info >= (3, 11):
        import re._parser as sre_parse  # type: ignore[import-not-found]
        from re import _constants as sre_constants  # type: ignore[attr-defined]
    else:  # pragma: no cover - 3.9/3.10
        import sre_constants
        import sre_parse
    try:
        parsed = sre_parse.parse(pattern)
    except re.error as exc:
        return f"not a regular expression: {exc}"
    repeats = 0
    repeat_ops = (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT)
    refused = {sre_constants.GROUPREF: "a backreference", sre_constants.ASSERT: "a lookaround",
               sre_constants.ASSERT_NOT: "a lookaround", sre_constants.GROUPREF_EXISTS: "a conditional"}

    def walk(items: Any, inside_repeat: bool) -> Optional[str]:
        nonlocal repeats
        for op, av in items:
            if op in refused:
                return f"has {refused[op]}"
            if op in repeat_ops:
                low, high, sub = av
                if inside_repeat and high != low:
                    return "has a quantifier inside a quantified group"
                if high != low:
                    repeats += 1
                    if repeats > MAX_REPEATS:
                        return f"has more than {MAX_REPEATS} quantifiers"
                # Any repeat of more than one encloses: a quantifier or an
                # alternation inside a fixed {30} backtracks 2^30 ways too.
                problem = walk(sub, inside_repeat or high > 1)
            elif op == sre_constants.BRANCH:
                if inside_repeat:
                    return "has an alternation inside a quantified group"
                problem = None
                for branch in av[1]:
                    problem = problem or walk(branch, inside_repeat)
            elif op == sre_constants.SUBPATTERN:
                problem = walk(av[-1], inside_repeat)
            else:
                problem = None
            if problem:
                return problem
        return None

    problem = walk(parsed, False)
    if problem:
        return problem
    ways = _pattern_ways(parsed, sre_constants)
    if ways > MAX_PATTERN_WAYS:
        return (f"it may try more than {MAX_PATTERN_WAYS:,} ways (the bound) to match a {MAX_PATH}-character "
                "path before failing: fewer alternatives or quantifiers in a row")
    return None


def _pattern_ways(items: Any, sre_constants: Any) -> int:
    """An upper bound of the ways a backtracking match of a path of up to
    MAX_PATH characters may try: a sequence multiplies its parts' ways, an
    alternation adds its branches', a quantifier multiplies by the counts it
    may take (and by its body's ways for each repetition). Capped once over
    the bound (a 200-character pattern cannot make a huge number slow)."""
    cap = MAX_PATTERN_WAYS + 1
    total = 1
    for op, av in items:
        if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT) or op == getattr(
                sre_constants, "POSSESSIVE_REPEAT", None):
            low, high, sub = av
            high = min(high, MAX_PATH)
            body = _pattern_ways(sub, sre_constants)
            ways = max(high - low + 1, 1) * (body ** min(high, 20) if body > 1 else 1)
        elif op == sre_constants.BRANCH:
            ways = sum(_pattern_ways(branch, sre_constants) for branch in av[1])
        elif op == sre_constants.SUBPATTERN:
            ways = _pattern_ways(av[-1], sre_constants)
        elif op == getattr(sre_constants, "ATOMIC_GROUP", None):
            ways = _pattern_ways(av, sre_constants)
        else:
            ways = 1
        total = min(total * ways, cap)
    return total


_COMPILED: Dict[str, Pattern[str]] = {}


def compile_pattern(pattern: str) -> Pattern[str]:
    """shares.mount_pattern compiled, or ShareError when its matching cost
    is not bounded (see _pattern_cost_problem)."""
    compiled = _COMPILED.get(pattern)
    if compiled is None:
        problem = _pattern_cost_problem(pattern)
        if problem:
            raise ShareError(f"shares.mount_pattern is refused: {problem}")
        compiled = _COMPILED[pattern] = re.compile(pattern)
    return compiled


def _match(pattern: Pattern[str], path: str) -> bool:
    return pattern.fullmatch(path) is not None


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


def _named(name: str) -> str:
    """An option as a problem names it: by name only when it is one from the
    allow-list or a known mount option, never a word that may be part of a
    password whose comma was not doubled."""
    if name in FLAGS or name in _VALUED or name in KNOWN_NAMES or name in USER_NAMES or name in PASSWORD_NAMES:
        return f"option {name!r}"
    return "an option that is no mount option (not shown: it may be part of a password; write its commas as ,,)"


def _shown_path(what: str, path: str) -> str:
    return f"{what} {path!r}" if _SAFE_TEXT.fullmatch(path) else what


def _option_name(token: str) -> str:
    return token.partition("=")[0].strip().lower()


def _tokens(text: str) -> List[str]:
    """Options split at commas, with mount.cifs's ",," for a literal comma
    inside a password (the parser and the redaction both read this)."""
    parts: List[str] = []
    current = ""
    i = 0
    while i < len(text):
        c = text[i]
        if c == ",":
            if text[i + 1 : i + 2] == "," and "=" in current and _option_name(current) in PASSWORD_NAMES:
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


def _valid_plain_option(token: str) -> bool:
    """A token the parser accepts as a non-credential option on its own."""
    name = _option_name(token)
    if name in PASSWORD_NAMES or name in USER_NAMES or name in ("domain", "dom", "workgroup"):
        return False
    try:
        _options(token, Limits(), {})
    except ShareError:
        return False
    return True


def _redact_options(text: str, strict: bool = False) -> str:
    """Options text with every password hidden, read as the parser reads it;
    after a password, anything that is not a valid option on its own (the
    tail of a password whose comma was not doubled) is hidden too."""
    out: List[str] = []
    after_password = False
    for token in _tokens(text):
        name, eq, value = token.partition("=")
        norm = name.strip().lower()
        marker = _MARKER.search(token)
        if eq and norm in PASSWORD_NAMES:
            out.append(name + "=***")
            after_password = True
        elif marker is not None:
            out.append(token[: marker.start(1)] + marker.group(1) + "=***")
            after_password = True
        elif eq and norm in USER_NAMES and "%" in value:
            out.append(name + "=" + value[: value.index("%")] + "%***")
            after_password = True
        elif token.strip() and not _valid_plain_option(token) \
                and (after_password or (strict and not (eq and norm in USER_NAMES))):
            # After a password even a user option is hidden: the tail of a
            # password whose comma was not doubled may read "username=...".
            out.append("***")
        else:
            out.append(token)
    return ",".join(out)


def _redact_v1(line: str, strict: bool = False) -> str:
    """'<mountpoint>;<alias>;<options>': the options are all that follows the
    second ';' (a ';' in a password does not end them). A field that is not
    plainly a path or options is hidden; strict (a line of a misshapen
    item): so is every word of the options that is not a valid option."""
    fields = line.split(";", 2)
    head = [_redact_path(f) for f in fields[:2]]
    if len(fields) < 3:
        return ";".join(head)
    return ";".join(head + [_redact_options(fields[2], strict)])


def _redact_path(text: str) -> str:
    """A mount point or alias field: shown when it is a plain path (or
    empty), else ***."""
    return text if _PATHLIKE.fullmatch(text.rstrip("\r")) else "***"


def redact(value: str) -> str:
    """A cifsmount value with every password hidden, read as parse_mount
    reads it: v1 or v2 (5 lines; CRLF too), any spacing or case of the
    option names (`, password=`, `PASS=`), `user%password`, a ';' or an
    undoubled ',' inside a v1 password. For a misshapen item (a v1 item
    with a trailing newline, a v2 item with a line missing or added) every
    line that could hold a password is hidden."""
    lines = value.split("\n")
    if len(lines) == 5:  # the parser's v2 reading
        mountpoint, alias, username, _password, options = lines
        if "%" in username:
            username = username[: username.index("%")] + "%***"
        head = [_redact_path(p) for p in (mountpoint, alias)]
        return "\n".join(head + [_redact_options(username), "***", _redact_options(options)])
    if len(lines) == 1:
        return redact_url(_redact_v1(value))
    # Misshapen: only the first two lines can be the mount point and alias
    # (or the first a v1 item); any later line may be the password, even one
    # that looks like a path or an option, and is hidden.
    shown = [_redact_v1(line, strict=True) if ";" in line else _redact_path(line) for line in lines[:2]]
    return "\n".join(shown + ["***" if line.strip() else line for line in lines[2:]])


_URL_USERINFO = lazy(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s?#]*)@")
_BARE_USERINFO = lazy(r"^([^\s/@:]+):([^\s/]*)@(?=[^\s/@]+$)")


def redact_url(text: str) -> str:
    """Credentials in URLs hidden: `http://user:pw@host:3128` becomes
    `http://user:***@host:3128`, `https://token@host` `https://***@host`;
    also a bare `user:pw@host:port` (how proxies are often written)."""

    def userinfo(m: "re.Match[str]") -> str:
        user, colon, _secret = m.group(2).partition(":")
        return f"{m.group(1)}{user}:***@" if colon else f"{m.group(1)}***@"

    text = _URL_USERINFO.sub(userinfo, text)
    return _BARE_USERINFO.sub(lambda m: f"{m.group(1)}:***@", text)


def redact_item(key: str, value: str) -> str:
    """The value with any password replaced by ***, for display: cifsmount
    items (any case of the key) as the parser reads them; credentials in
    URLs in any item."""
    if key.strip().lower() in SECRET_KEYS:
        return redact(value)
    if key.strip().lower() == CIFSUMOUNT:
        return _redact_umount(value)
    return redact_url(value)


def _redact_umount(value: str) -> str:
    """A cifsumount item shown with only what its grammar holds: a mount
    point and an alias, each shown only when it is a plain path; any other
    field, and every field after the second (split at ';' and at line
    ends alike: a v1 mount item with a trailing newline, or a v2 one,
    pushed under the wrong key carries the user name and password
    there), is ***."""
    parts = re.split(r"(\n|;)", value)
    shown: List[str] = []
    for i, part in enumerate(parts):
        if i % 2 or (i < 4 and _PATHLIKE.fullmatch(part.rstrip("\r"))):  # a separator, or a plain path
            shown.append(part)
        else:
            shown.append("***" if part.strip() else part)
    text = "".join(shown)
    return "***" if _MARKER.search(text) else redact_url(text)


def _check_path(what: str, path: str, pattern: Pattern[str], extra: Tuple[str, ...] = ()) -> str:
    if not path:
        raise ShareError(f"{what} is empty")
    if len(path) > MAX_PATH:
        raise ShareError(f"{what} is longer than 64 characters")
    if any(c in path for c in "\0\n\r\t ,;=\\%") or not path.isprintable():
        raise ShareError(f"{what} contains a forbidden character")
    if path == "/":
        raise ShareError(f"{what} '/' is a system directory")
    if not path.startswith("/") or any(part in ("", ".", "..") for part in path.split("/")[1:]):
        raise ShareError(f"{_shown_path(what, path)} is not a plain absolute path")
    if any(path == f or path.startswith(f.rstrip("/") + "/") for f in FORBIDDEN + tuple(extra)):
        raise ShareError(f"{_shown_path(what, path)} is a system directory")
    if not _match(pattern, path):
        raise ShareError(f"{_shown_path(what, path)} is not allowed (allowed: {pattern.pattern})")
    return path


def check_mount_point(path: str, limits: Limits) -> Optional[str]:
    """Why path is no mount point an item may name under these limits, or None."""
    try:
        _check_path("mount point", path, compile_pattern(limits.pattern), limits.forbidden)
    except ShareError as exc:
        return str(exc)
    return None


def _check_int(name: str, value: str, low: int, high: int, base: int = 10) -> str:
    """A number option in the one form it is passed in: decimal digits only
    (uid, gid, actimeo), passed without leading zeros; octal digits only
    (file_mode, dir_mode), passed as 0NNN. "1_000", "+5", " 7", non-ASCII
    digits, "0x10" and "0o777" are refused, not read as Python's int() would."""
    digits = "01234567" if base == 8 else "0123456789"
    if not value or any(c not in digits for c in value):
        form = "octal digits only (0-7), e.g. 0755" if base == 8 else "decimal digits only (0-9), e.g. 1000"
        raise ShareError(f"option {name!r} is not a number: write {form}")
    significant = value.lstrip("0") or "0"
    shown = oct(high)[2:] if base == 8 else high
    # More than 12 significant digits is out of range whatever they are (and
    # int() of thousands of digits is slow or refused).
    if len(significant) > 12 or not low <= int(significant, base) <= high:
        raise ShareError(f"option {name!r} must be between {low} and {shown}")
    number = int(significant, base)
    return f"{name}=0{number:03o}" if base == 8 else f"{name}={number}"


def _check_domain(what: str, value: str) -> str:
    if not value or not value.isprintable() or not _DOMAIN.fullmatch(value):
        raise ShareError(f"{what} has forbidden characters or is empty (allowed: letters, digits, '.', '_', '-')")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_DOMAIN:
        raise ShareError(f"{what} is longer than {MAX_DOMAIN} bytes")
    return value


def _account(what: str, value: str) -> Tuple[str, Optional[str]]:
    """A user name as the host writes it -> (user, domain or None), as
    mount.cifs wants them: DOMAIN\\user is split (username=user, domain=DOMAIN);
    user@domain (a UPN, Azure AD too) stays the user name as it is, with no
    domain (Windows and Samba accept a UPN with an empty domain). `what` is
    how a problem names it ("username" or "option 'username'")."""
    domain: Optional[str] = None
    user = value
    if "\\" in value:
        domain, _, user = value.partition("\\")
        if "\\" in user:
            raise ShareError(f"{what} has more than one '\\' (write DOMAIN\\user)")
        _check_domain(f"the domain in {what} (DOMAIN\\user)", domain)
    if not user or not user.isprintable() or any(c in user for c in _USERNAME_FORBIDDEN):
        raise ShareError(f"{what} is empty, too long or has forbidden characters")
    if len(user.encode("utf-8", "surrogatepass")) > MAX_USERNAME:
        raise ShareError(f"{what} is longer than {MAX_USERNAME} bytes")
    if "%" in user or "/" in user:
        raise ShareError(f"{what} must not carry a password or domain (%, /); write a domain as DOMAIN\\user "
                         "or domain=")
    return user, domain


def _password_problem(value: str) -> Optional[str]:
    """Why mount.cifs could not take this password, or None (see MAX_PASSWORD)."""
    if "\n" in value or "\r" in value or "\0" in value:
        return "password contains a line break or NUL"
    if len(value.encode("utf-8", "surrogatepass")) + value.count(",") > MAX_PASSWORD:
        return f"password is longer than {MAX_PASSWORD} bytes (each ',' counts twice: mount.cifs doubles it)"
    return None


def _lower_ascii(value: str) -> str:
    """ASCII text in lower case; anything else unchanged, so that it fails
    the allow-list ("\u212arb5".lower() is "krb5")."""
    return value.lower() if value.isascii() else value


def _options(text: str, limits: Limits, creds: Dict[str, str]) -> Tuple[str, ...]:
    """Validate options; credentials (username, password, domain) are moved to
    `creds`, everything else is returned in order, each in the one form it
    is passed in (what is checked is what is passed): names in lower case,
    numbers canonical, sec/cache/vers/iocharset values in lower case (the
    kernel matches them case-sensitively). A problem names the option,
    never its value, and never a word that may be part of a password
    (_named)."""
    out: List[str] = []
    seen = set()
    parts = [p for p in _tokens(text) if p != ""] if text else []
    if len(parts) > MAX_OPTIONS:
        raise ShareError(f"more than {MAX_OPTIONS} options")
    for part in parts:
        name, eq, value = part.partition("=")
        name = _lower_ascii(name.strip())
        canonical = _ALIASES.get(name, name)
        if canonical in seen:
            raise ShareError(f"{_named(name)} is given twice")
        seen.add(canonical)
        if name in ("password", "pass"):
            problem = _password_problem(value)
            if problem:
                raise ShareError(problem)
            creds["password"] = value
            continue
        if any(c in value for c in "\0\n\r"):
            raise ShareError(f"{_named(name)} contains a line break or NUL")
        if _MARKER.search(part):  # "username=me password=x": a password inside another option
            raise ShareError(f"{_named(name)} has a password inside it; separate options with ','")
        if name in ("username", "user"):
            creds["username"], split_domain = _account("option 'username'", value)
            if split_domain is not None:
                creds["split_domain"] = split_domain
        elif name in ("domain", "dom", "workgroup"):
            creds["domain"] = _check_domain("option 'domain'", value)
        elif name in FLAGS:
            if eq:
                raise ShareError(f"option {name!r} takes no value")
            out.append(name)
        elif name == "vers":
            if _lower_ascii(value) not in VERSIONS:
                raise ShareError(f"option 'vers': this version is not allowed (allowed: {', '.join(sorted(VERSIONS))})")
            out.append(f"vers={value.lower()}")
        elif name == "iocharset":
            if not _IOCHARSET.fullmatch(_lower_ascii(value)):
                raise ShareError("option 'iocharset' has forbidden characters")
            out.append(f"iocharset={value.lower()}")
        elif name in ("uid", "gid"):
            out.append(_check_int(name, value, 0, limits.max_id))
        elif name in ("file_mode", "dir_mode"):
            out.append(_check_int(name, value, 0, 0o777, 8))
        elif name == "cache":
            if _lower_ascii(value) not in CACHE:
                raise ShareError("option 'cache': this value is not allowed (allowed: strict, loose, none)")
            out.append(f"cache={value.lower()}")
        elif name == "actimeo":
            out.append(_check_int(name, value, 0, 3600))
        elif name == "sec":
            if _lower_ascii(value) not in STRONG_SEC:
                raise ShareError(f"option 'sec': this value is not allowed (allowed: {', '.join(sorted(STRONG_SEC))})")
            out.append(f"sec={value.lower()}")
        else:
            allowed = ", ".join(sorted(FLAGS | _VALUED))
            raise ShareError(f"{_named(name)} is not allowed (allowed: {allowed})")
    for a, b in CONTRADICTIONS:
        if a in seen and b in seen:
            raise ShareError(f"options {a!r} and {b!r} contradict each other; give one of them")
    return tuple(out)


def _merge_domain(creds: Dict[str, str]) -> Optional[str]:
    """The one domain of an item: from DOMAIN\\user or from domain=; both
    given must name the same domain (ignoring case; DOMAIN\\user's spelling
    is kept), else the item contradicts itself."""
    split, option = creds.get("split_domain"), creds.get("domain")
    if split is not None and option is not None and split.casefold() != option.casefold():
        raise ShareError("the domain in username (DOMAIN\\user) and option 'domain' differ; give one of them")
    return split if split is not None else option


def _v1_semicolon_problem(fields: List[str]) -> Optional[str]:
    """The real cause of a v1 item with more than two ';', when there is one
    to name: a ';' after password= in the options (mount.cifs's options
    cannot carry it and v1's fields are split at ';'). Names no part of the
    password."""
    if len(fields) <= 3:
        return None
    options = ";".join(fields[2:])
    if _MARKER.search(options[: options.index(";")]):
        return ("a ';' in a v1 password cannot be sent in the v1 format: use the v2 format "
                "(mount point, alias, username, password and options on separate lines)")
    return None


def parse_mount(value: str, limits: Limits = Limits()) -> ShareSpec:
    """A cifsmount item's value -> ShareSpec, or ShareError."""
    pattern = compile_pattern(limits.pattern)
    if "\0" in value:
        raise ShareError("the item contains a NUL character")
    creds: Dict[str, str] = {}
    if "\n" in value:
        # Refused, not guessed at: a "\r" could as well end a password.
        if "\r\n" in value:
            raise ShareError("the item has Windows line ends (CRLF); its lines must end with LF (\\n) only")
        fields = value.split("\n")
        if len(fields) != 5:
            raise ShareError(
                f"a v2 item has 5 lines (mount point, alias, username, password, options), not {len(fields)}"
            )
        mountpoint, alias, username, password, options = fields
        user, split_domain = _account("username", username)
        problem = _password_problem(password)
        if problem:
            raise ShareError(problem)
        opts = _options(options, limits, creds)
        if "username" in creds or "password" in creds:
            raise ShareError("a v2 item carries username and password in their own lines, not in options")
        creds["username"], creds["password"] = user, password
        if split_domain is not None:
            creds["split_domain"] = split_domain
    else:
        fields = value.split(";")
        if len(fields) != 3:
            raise ShareError(
                f"a v1 item has 3 fields separated by ';' (mount point;alias;options), not {len(fields)}"
                + (f": {_v1_semicolon_problem(fields)}" if _v1_semicolon_problem(fields) else "")
            )
        mountpoint, alias, options = fields
        opts = _options(options, limits, creds)
        if "username" not in creds:
            raise ShareError("options carry no username")
        creds.setdefault("password", "")
    domain = _merge_domain(creds)
    mountpoint = _check_path("mount point", mountpoint, pattern, limits.forbidden)
    alias = _check_path("alias", alias, pattern, limits.forbidden) if alias else mountpoint
    return ShareSpec(mountpoint, alias, creds["username"], creds["password"], domain, opts)


def parse_umount(value: str, limits: Limits = Limits()) -> Tuple[str, str]:
    """A cifsumount item's value -> (mountpoint, alias), or ShareError."""
    pattern = compile_pattern(limits.pattern)
    fields = value.split("\n") if "\n" in value else value.split(";")
    if len(fields) != 2:
        raise ShareError("a cifsumount item is '<mountpoint>;<alias>' (or the two on separate lines)")
    mountpoint = _check_path("mount point", fields[0], pattern, limits.forbidden)
    alias = _check_path("alias", fields[1], pattern, limits.forbidden) if fields[1] else mountpoint
    return mountpoint, alias


def recheck_drive(spec: ShareSpec, limits: Limits, taken: Tuple[str, ...] = ()) -> ShareSpec:
    """A drive read back from the agent's own state file, re-validated as
    if the host had just sent it: it must be exactly what parse_mount makes
    of the v2 item it stands for under these limits (mount point, alias,
    options, user name, domain and password all checked again), and its
    mount point and alias must not be those of an earlier drive (`taken`).
    ShareError (naming the drive, never the password) otherwise."""
    what = _shown_path("drive", spec.mountpoint) if isinstance(spec.mountpoint, str) else "a drive"
    fields = (spec.mountpoint, spec.alias, spec.username, spec.password)
    if not all(isinstance(f, str) for f in fields) or not isinstance(spec.domain, (str, type(None))) \
            or not all(isinstance(o, str) for o in spec.options):
        raise ShareError(f"{what}: a field is not text")
    options = list(spec.options) + ([f"domain={spec.domain}"] if spec.domain is not None else [])
    try:
        again = parse_mount("\n".join(fields + (",".join(options),)), limits)
    except ShareError as exc:
        raise ShareError(f"{what}: {exc}") from None
    if again != spec:
        raise ShareError(f"{what} is not what the agent makes of an item (options not in their checked form)")
    if {spec.mountpoint, spec.alias} & set(taken):
        raise ShareError(f"{what}: its mount point or alias is used by another drive")
    return spec


def credentials_file(spec: ShareSpec) -> str:
    """What mount.cifs reads from credentials=: the rest of each line after
    the first '=' is the value, so commas, '=' and spaces are safe."""
    text = f"username={spec.username}\npassword={spec.password}\n"
    if spec.domain:
        text += f"domain={spec.domain}\n"
    return text
