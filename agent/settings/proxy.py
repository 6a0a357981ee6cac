"""The database's proxy keys (proxy/http, proxy/https, proxy/exclude), pure.

Each is checked on its own: a bad one is a problem for that key only and
is left out. A proxy on the host's loopback (localhost, 127.x, ::1) is
useless in the VM, whose loopback is its own: it is rewritten to the host's
address. dockerd 23 and later take them as daemon.json "proxies"; older
ones from their environment, read at start only: the agent writes them to
a file of its own (export lines) that the docker service sources.
Credentials in a proxy URL are secrets: no text made here shows them.
"""

import ipaddress
import shlex
from typing import Dict, List, Mapping, Optional, Tuple

from agent.lazyre import lazy
from agent.shares.items import redact_url

# database key -> (daemon.json "proxies" key, environment variable)
KEYS: Tuple[Tuple[str, str, str], ...] = (
    ("proxy/http", "http-proxy", "HTTP_PROXY"),
    ("proxy/https", "https-proxy", "HTTPS_PROXY"),
    ("proxy/exclude", "no-proxy", "NO_PROXY"),
)
SCHEMES = ("http", "https", "socks5")
MAX_LEN = 2048
_HOSTNAME = lazy(r"^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*\.?$")
_BAD_CHAR = lazy(r"[\s\x00-\x1f\x7f\u0085\u2028\u2029]")
_SCHEME = lazy(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
HEADER = b"# Written by moby-agent from the database keys proxy/*: replaced whole, never edited in place.\n"


class ProxyError(ValueError):
    """A proxy value that cannot be used; the text never shows a secret."""


def is_loopback(host: str) -> bool:
    """localhost (any case, a trailing dot), 127.0.0.0/8, ::1."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def proxy_url(value: str, host_address: str) -> str:
    """A proxy URL checked (scheme http, https or socks5, or none: http; a
    host; a port 1-65535 if given; nothing but an optional "/" after it; no
    space or control character), its host rewritten to `host_address` when
    it is the loopback. ProxyError says what is wrong, without the value."""
    value = value.strip()
    if not value:
        raise ProxyError("empty")
    if len(value) > MAX_LEN:
        raise ProxyError(f"longer than {MAX_LEN} characters")
    if _BAD_CHAR.search(value):
        raise ProxyError("a space or control character in it")
    m = _SCHEME.match(value)
    if m and m.group(1).lower() not in SCHEMES:
        raise ProxyError(f"scheme {m.group(1)!r} is not one of {', '.join(SCHEMES)}")
    prefix = "" if m else "http://"
    try:
        from urllib.parse import urlsplit  # only with a proxy key: about 3 ms of start-up

        parts = urlsplit(prefix + value)
        port = parts.port
    except ValueError:
        raise ProxyError("not a URL with a host and a port from 1 to 65535") from None
    host = parts.hostname or ""
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in value or "#" in value:
        raise ProxyError("only scheme://[user:password@]host[:port] is a proxy (a path, query or fragment follows)")
    if port == 0 or parts.netloc.endswith(":"):
        raise ProxyError("port must be from 1 to 65535")
    bracketed = "[" in parts.netloc.rpartition("@")[2]
    if bracketed:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ProxyError("not a valid IPv6 address in brackets") from None
    elif not host or not _HOSTNAME.match(host):
        raise ProxyError("no valid host name or address")
    if not is_loopback(host):
        return value
    userinfo, at, hostport = parts.netloc.rpartition("@")
    new_host = f"[{host_address}]" if ":" in host_address else host_address
    new_netloc = f"{userinfo}{at}{new_host}" + (f":{port}" if port is not None else "")
    scheme = value[: m.end()] if m else ""
    return scheme + new_netloc + parts.path


def no_proxy(value: str) -> str:
    """proxy/exclude: names, addresses or CIDRs separated by commas (spaces
    around them dropped); no space or control character inside one."""
    entries = [e.strip() for e in value.strip().split(",")]
    entries = [e for e in entries if e]
    if len(value) > MAX_LEN:
        raise ProxyError(f"longer than {MAX_LEN} characters")
    for e in entries:
        if _BAD_CHAR.search(e):
            raise ProxyError("a space or control character inside an entry (entries are separated by commas)")
    return ",".join(entries)


def shown(key: str, value: str) -> str:
    """A proxy value as it may be printed: credentials hidden."""
    return value if key == "proxy/exclude" else redact_url(value)


def settings(values: Mapping[str, Optional[str]], host_address: str) -> Tuple[Dict[str, str], List[Tuple[str, str]]]:
    """From the database keys' values: ({daemon.json proxies key: value},
    [(database key, why it was left out)]). Absent or blank keys are no
    setting."""
    out: Dict[str, str] = {}
    problems: List[Tuple[str, str]] = []
    for key, daemon_key, _env in KEYS:
        value = values.get(key)
        if value is None or not value.strip():
            continue
        try:
            out[daemon_key] = no_proxy(value) if key == "proxy/exclude" else proxy_url(value, host_address)
        except ProxyError as exc:
            problems.append((key, f"database key {key}: {exc}; this proxy setting is left out (the others apply)"))
    return out, problems


def has_secret(proxies: Mapping[str, str]) -> bool:
    return any(redact_url(v) != v for v in proxies.values())


def env_file(proxies: Mapping[str, str]) -> bytes:
    """The environment file for dockerd before 23: upper- and lower-case
    variables, exported, each value shell-quoted."""
    lines = [HEADER.decode()]
    for _key, daemon_key, env in KEYS:
        if daemon_key in proxies:
            quoted = shlex.quote(proxies[daemon_key])
            lines.append(f"export {env}={quoted}\n")
            lines.append(f"export {env.lower()}={quoted}\n")
    return "".join(lines).encode()
