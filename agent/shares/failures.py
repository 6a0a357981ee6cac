"""Why a share cannot be mounted, in words the user can act on.

explain() is pure: mount.cifs's output (and, when the agent or doctor could
probe it, how the host answers on TCP port 445) to a typed cause and its
text. reach_cause() is the one verdict on a probe that the agent (after a
failed mount) and `moby-agent doctor` share; probe_smb() is the probe itself
(the route lookup, then a TCP connect with a short timeout).

mount.cifs prints `mount error(N): <strerror>` for most errors (cifs-utils
mount.cifs.c, the `default:` of its switch on errno), but
`mount error(N): could not connect to <address>` (no newline) for
ECONNREFUSED and EHOSTUNREACH (and EINPROGRESS in newer versions), and for
EHOSTDOWN `mount error: Server abruptly closed the connection.` with no
number; older versions print `mount error(112): Host is down`.
"""

import errno
import ipaddress
from typing import Optional

from agent.lazyre import lazy
from agent.record import dataclass

# Typed causes (Outcome.cause): what the drive state and doctor say.
REFUSED = "credentials refused"
NO_SHARE = "share unknown"
PORT_BLOCKED = "port 445 blocked"
SHARING_OFF = "file sharing off"
NO_ROUTE = "no route"
HOST_DOWN = "host down"
OTHER = "other"

# How the host answered a probe (Reach.port).
OPEN, CONNECT_REFUSED, TIMEOUT, UNREACHABLE = "open", "refused", "timeout", "unreachable"


@dataclass(frozen=True)
class Cause:
    """Why a mount failed: typed (kind), in words (text), and mount.cifs's error code."""

    kind: str
    text: str
    code: str = ""  # "mount error(13)", or "" when not from mount.cifs

    def line(self) -> str:
        """The one line the drive state, status and the log show."""
        return f"{self.text} ({self.code})" if self.code else self.text


@dataclass(frozen=True)
class Reach:
    """A probe of the host: route None (no route or no source address), ''
    (on-link) or the gateway it goes through; port OPEN, CONNECT_REFUSED,
    TIMEOUT, UNREACHABLE, or None (not probed: no route, or routed)."""

    route: Optional[str]
    port: Optional[str] = None


def _network(host: str) -> str:
    try:
        return str(ipaddress.ip_network(f"{host}/24", strict=False))
    except ValueError:
        return f"the network of {host}"


def refused_text() -> str:
    return "the server refused the credentials: re-share the drive with the current Windows password"


def no_route_text(host: str) -> str:
    return f"no route to {host}: a VPN may have taken the {_network(host)} network"


def port_blocked_text(host: str) -> str:
    return (f"{host} does not answer on TCP port 445: a firewall (Windows Defender Firewall, a 'Public' network "
            "profile on DockerNAT) blocks file sharing")


def sharing_off_text(host: str) -> str:
    # A reset: something on the path answers for 445 but nothing listens
    # there. Windows Defender Firewall drops silently (a timeout), while a
    # host whose SMB server is not bound to the adapter resets.
    return (f"nothing listens on TCP port 445 at {host}: file sharing is off on the host (enable 'File and Printer "
            "Sharing for Microsoft Networks' on the DockerNAT adapter; the Server service must be running)")


def host_down_text(host: str) -> str:
    return f"{host} did not answer in time: the host is down, asleep or restarting"


def no_share_text(share: str) -> str:
    drive = share.upper()
    return f"the host does not share drive {drive} (share {drive} unknown)"


def reach_cause(host: str, reach: Reach) -> Optional[Cause]:
    """The shared verdict on a probe: None when port 445 answers (or was not
    probed on a route that exists), else the cause."""
    if reach.route is None or reach.port == UNREACHABLE:
        return Cause(NO_ROUTE, no_route_text(host))
    if reach.port == CONNECT_REFUSED:
        return Cause(SHARING_OFF, sharing_off_text(host))
    if reach.port == TIMEOUT:
        return Cause(PORT_BLOCKED, port_blocked_text(host))
    return None


_CODE = lazy(r"mount error\((\d+)\)")


def explain(output: str, host: str, share: str, reach: Optional[Reach] = None) -> Cause:
    """Pure. mount.cifs's whole output (a warning line may come first), the
    host, the share name, and the probe made after the failure (None: not
    probed)."""
    match = _CODE.search(output)
    number = int(match.group(1)) if match else None
    if number is None and "Server abruptly closed the connection" in output:
        number = errno.EHOSTDOWN
    code = f"mount error({number})" if number is not None else ""
    if number == errno.EACCES:
        return Cause(REFUSED, refused_text(), code)
    if number == errno.ENOENT or "STATUS_BAD_NETWORK_NAME" in output:
        return Cause(NO_SHARE, no_share_text(share), code)
    network_error = number in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EINPROGRESS,
                               errno.ETIMEDOUT, errno.EHOSTDOWN)
    if network_error and reach is not None:
        probed = reach_cause(host, reach)
        if probed is not None:
            return Cause(probed.kind, probed.text, code)
        if number == errno.EHOSTDOWN and reach.port == OPEN:
            return Cause(HOST_DOWN, f"{host} closed the connection: the server is restarting, or does not speak "
                         "the SMB version asked for (vers=)", code)
        # Port 445 answers now: the server was restarting, or it closed the
        # connection (an SMB version it does not speak).
    if number in (errno.EHOSTUNREACH, errno.ENETUNREACH) and reach is None:
        return Cause(NO_ROUTE, no_route_text(host), code)
    if number == errno.ECONNREFUSED and reach is None:
        return Cause(SHARING_OFF, sharing_off_text(host), code)
    if network_error:
        return Cause(HOST_DOWN, host_down_text(host), code)
    first = next((line.strip() for line in output.splitlines() if line.strip()), "")
    return Cause(OTHER, first or "mount.cifs failed", "")


def probe_smb(host: str, timeout: float = 2.0) -> Reach:
    """The route to the host, then a TCP connect to its port 445 (only when
    on-link: never through a gateway). Live systems only."""
    from agent.network.apply import route_via

    via = route_via(host)
    if via is None or via:
        return Reach(via)
    try:
        import socket  # only when a mount failed: about 4 ms of start-up

        with socket.create_connection((host, 445), timeout=timeout):
            return Reach("", OPEN)
    except socket.timeout:
        return Reach("", TIMEOUT)
    except ConnectionRefusedError:
        return Reach("", CONNECT_REFUSED)
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return Reach("", UNREACHABLE)
        return Reach("", TIMEOUT)
