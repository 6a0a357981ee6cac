"""Registry certificates (pure): database keys etc/docker/certs.d/<registry>/
<file> installed byte-exact under /etc/docker/certs.d/<registry>/, where
dockerd reads them at each pull (no reload). <registry> is a host name or
address, with an optional :port; *.crt (CA roots) and *.cert (client
certificate) must hold a PEM certificate, *.key a PEM private key (mode
0600). A bad file is a problem for that file only. What the host removes is
removed from the guest: only files the agent installed, as its record says.
"""

import ipaddress
import json
from typing import Dict, Iterable, List, Optional, Tuple, Union

from agent.lazyre import lazy

PREFIX = "etc/docker/certs.d/"
RECORD = "/etc/docker/certs.d/.moby-agent-installed.json"
_HOST = lazy(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_CERT = lazy(rb"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----")
_KEY = lazy(rb"-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----\r?\n[A-Za-z0-9+/=\r\n:,-]+"
                  rb"-----END \1-----")


def registry_problem(name: str) -> Optional[str]:
    """Why a certs.d directory name is no registry, or None."""
    host, colon, port = name.rpartition(":") if ":" in name else (name, "", "")
    if colon and not (port.isdigit() and 1 <= int(port) <= 65535):
        return f"registry {name!r}: the port must be from 1 to 65535"
    try:
        ipaddress.IPv4Address(host)
        return None
    except ValueError:
        pass
    if not _HOST.match(host):
        return f"registry {name!r} is not a host name, address or host:port"
    return None


def check(key: str, data: bytes) -> Tuple[str, int]:
    """(guest path, mode) for a certs.d key, or ValueError saying why not."""
    rest = key[len(PREFIX):]
    registry, slash, name = rest.partition("/")
    if not slash or "/" in name:
        raise ValueError(f"database key {key}: certs.d holds <registry>/<file> only; not installed")
    bad = registry_problem(registry)
    if bad:
        raise ValueError(f"database key {key}: {bad}; not installed")
    lower = name.lower()
    if lower.endswith((".crt", ".cert")):
        if not _CERT.search(data):
            raise ValueError(f"database key {key}: not a PEM certificate; not installed (the others are)")
        return "/" + key, 0o644
    if lower.endswith(".key"):
        if not _KEY.search(data):
            raise ValueError(f"database key {key}: not a PEM private key; not installed (the others are)")
        return "/" + key, 0o600
    raise ValueError(f"database key {key}: dockerd reads only *.crt, *.cert and *.key there; not installed")


def parse_record(data: Optional[bytes]) -> Tuple[Tuple[str, ...], Optional[str]]:
    """The guest paths the agent installed (from its record), and a problem
    when the record is unreadable (then none is removed)."""
    if data is None:
        return (), None
    try:
        paths = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return (), f"{RECORD} is not JSON; no certificate is removed until it is rewritten"
    if not isinstance(paths, list) or not all(isinstance(p, str) and p.startswith("/" + PREFIX) and ".." not in p
                                              for p in paths):
        return (), f"{RECORD} is not a list of certs.d paths; no certificate is removed until it is rewritten"
    return tuple(paths), None


def encode_record(paths: Iterable[str]) -> bytes:
    return (json.dumps(sorted(set(paths))) + "\n").encode()


def wanted(db: Dict[str, Union[str, bytes]]) -> Tuple[Dict[str, Tuple[bytes, int, str]], List[Tuple[str, str]]]:
    """{guest path: (bytes, mode, key)} to install, [(key, why not)]."""
    out: Dict[str, Tuple[bytes, int, str]] = {}
    problems: List[Tuple[str, str]] = []
    for key in sorted(db):
        if not key.startswith(PREFIX):
            continue
        value = db[key]
        data = value.encode() if isinstance(value, str) else value
        try:
            target, mode = check(key, data)
        except ValueError as exc:
            problems.append((key, str(exc)))
            continue
        out[target] = (data, mode, key)
    return out, problems
