"""Static network settings from the database (pure): net/config = static,
net/address, net/netmask, net/gateway -> an address and a default route.
The executors (netlink, pyroute2) are in agent/network/apply.py.
"""

import ipaddress
from typing import Dict, List, Mapping, Optional, Tuple

from agent.outcome import Action, Note, PlanPart, Problem
from agent.record import dataclass


@dataclass(frozen=True)
class NetState:
    """The interface's IPv4 addresses and the default route, as netlink reports them."""

    addresses: Tuple[Tuple[str, int], ...]  # IPv4 (address, prefix) on the interface
    gateway: Optional[str]  # the default route's gateway


@dataclass(frozen=True)
class SetAddress(Action):
    """Put the database's static IPv4 address on the interface."""

    CAPABILITY = "network"
    SYSTEM = True

    interface: str
    address: str
    prefix: int
    remove: Tuple[Tuple[str, int], ...] = ()

    def name(self) -> str:
        return "set-address"

    def as_dict(self) -> Dict[str, object]:
        return {"action": "set-address", "interface": self.interface, "address": f"{self.address}/{self.prefix}",
                "remove": [f"{a}/{p}" for a, p in self.remove]}


@dataclass(frozen=True)
class SetRoute(Action):
    """Set the default route through the database's gateway."""

    CAPABILITY = "network"
    SYSTEM = True

    interface: str
    gateway: str

    def name(self) -> str:
        return "set-default-route"


def _unusable(ip: ipaddress.IPv4Address) -> Optional[str]:
    """Why an address cannot be the VM's own or its gateway, if it cannot."""
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_link_local:
        return "a link-local address (169.254.0.0/16)"
    if ip == ipaddress.IPv4Address("255.255.255.255") or ip.is_reserved:
        return "a reserved or broadcast address"
    return None


def static_network(db: Mapping[str, str]) -> Optional[Tuple[str, int, Optional[str]]]:
    """(address, prefix, gateway) when net/config is static (any case);
    ValueError saying why when the settings would cut the VM off: an
    address that is unspecified, loopback, multicast, link-local, reserved,
    or the network or broadcast address of its subnet; a gateway that is
    one of those, the address itself, or outside the subnet. net/address
    may carry its prefix (10.0.75.2/24) when net/netmask is absent or says
    the same; net/netmask defaults to 255.255.255.0."""
    if db.get("net/config", "").strip().lower() != "static":
        return None
    address = db.get("net/address", "").strip()
    netmask = db.get("net/netmask", "").strip()
    gateway = db.get("net/gateway", "").strip() or None
    if not address:
        raise ValueError("net/config is static but net/address is empty")
    address, slash, prefix_text = address.partition("/")
    try:
        if slash:
            iface = ipaddress.IPv4Interface(f"{address}/{prefix_text}")
            if netmask and ipaddress.IPv4Interface(f"{address}/{netmask}").network != iface.network:
                raise ValueError(f"net/address {address}/{prefix_text} and net/netmask {netmask} disagree; "
                                 "give the prefix in one of them")
        else:
            iface = ipaddress.IPv4Interface(f"{address}/{netmask or '255.255.255.0'}")
        gw = ipaddress.IPv4Address(gateway) if gateway else None
    except ValueError as exc:
        raise ValueError(f"net/address, net/netmask or net/gateway: {exc}") from None
    ip, network = iface.ip, iface.network
    why = _unusable(ip)
    if why:
        raise ValueError(f"net/address {ip} is {why}: the VM would be cut off")
    if network.prefixlen <= 30 and ip in (network.network_address, network.broadcast_address):
        which = "network" if ip == network.network_address else "broadcast"
        raise ValueError(f"net/address {ip} is the {which} address of {network}: the VM would be cut off")
    if gw is not None:
        why = _unusable(gw)
        if why:
            raise ValueError(f"net/gateway {gw} is {why}")
        if gw == ip:
            raise ValueError(f"net/gateway {gw} is net/address itself")
        if gw not in network:
            raise ValueError(f"net/gateway {gw} is not in {network}: it could not be reached")
        if network.prefixlen <= 30 and gw in (network.network_address, network.broadcast_address):
            which = "network" if gw == network.network_address else "broadcast"
            raise ValueError(f"net/gateway {gw} is the {which} address of {network}")
    return str(ip), network.prefixlen, None if gw is None else str(gw)


def plan_network(db: Mapping[str, str], interface: str, net: Optional[NetState]) -> PlanPart:
    """Pure: the address and route actions that make the interface match a
    static configuration; nothing for DHCP; a bad setting is a problem and
    changes nothing."""
    actions: List[Action] = []
    problems: List[Problem] = []
    notes: Dict[str, Note] = {}
    try:
        static = static_network(db)
    except ValueError as exc:
        problems.append(Problem("network", "net/config", f"network not changed (the current address and route are "
                                f"kept): {exc}"))
        static = None
        notes["network"] = Note("bad static settings; nothing changed")
    if static is not None:
        address, prefix, gateway = static
        net = net or NetState((), None)
        readdress = (address, prefix) not in net.addresses
        if readdress:
            others = tuple(a for a in net.addresses if a != (address, prefix))
            actions.append(SetAddress(interface, address, prefix, others))
        # Removing the old address drops the routes that used it: set the
        # default route again after any change of address.
        if gateway and (net.gateway != gateway or readdress):
            actions.append(SetRoute(interface, gateway))
        notes["network"] = Note(f"static {address}/{prefix}" + (f" via {gateway}" if gateway else ""))
    elif "network" not in notes:
        notes["network"] = Note("not static (DHCP or as configured)", active=False)
    return PlanPart(tuple(actions), tuple(problems), notes)
