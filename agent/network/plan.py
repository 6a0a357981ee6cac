"""Static network settings from the database (pure): net/config = static,
net/address, net/netmask, net/gateway -> an address and a default route.
The executors (netlink, pyroute2) are in agent/network/apply.py.
"""

import ipaddress
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

from agent.outcome import Action, Note, PlanPart, Problem


@dataclass(frozen=True)
class NetState:
    addresses: Tuple[Tuple[str, int], ...]  # IPv4 (address, prefix) on the interface
    gateway: Optional[str]  # the default route's gateway


@dataclass(frozen=True)
class SetAddress(Action):
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
    CAPABILITY = "network"
    SYSTEM = True

    interface: str
    gateway: str

    def name(self) -> str:
        return "set-default-route"


def static_network(db: Mapping[str, str]) -> Optional[Tuple[str, int, Optional[str]]]:
    """(address, prefix, gateway) when net/config is static; ValueError if bad."""
    if db.get("net/config", "").strip() != "static":
        return None
    address = db.get("net/address", "").strip()
    netmask = db.get("net/netmask", "").strip() or "255.255.255.0"
    gateway = db.get("net/gateway", "").strip() or None
    try:
        iface = ipaddress.IPv4Interface(f"{address}/{netmask}")
        gw = str(ipaddress.IPv4Address(gateway)) if gateway else None
    except ValueError as exc:
        raise ValueError(f"net/address, net/netmask or net/gateway: {exc}") from None
    if gw is not None and ipaddress.IPv4Address(gw) not in iface.network:
        raise ValueError(f"net/gateway {gw} is not in {iface.network}")
    return str(iface.ip), iface.network.prefixlen, gw


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
        problems.append(Problem("network", "net/config", f"network not changed: {exc}"))
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
