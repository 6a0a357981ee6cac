"""The network capability's side effects, through netlink (pyroute2,
imported only here and only when needed: about 90 ms and 6 MB)."""

import logging
from typing import TYPE_CHECKING, Dict, Optional

from agent.network.plan import NetState, SetAddress, SetRoute
from agent.outcome import Executor

if TYPE_CHECKING:
    from agent.hub import Context

log = logging.getLogger("moby-agent")


def read_net(interface: str) -> NetState:
    """IPv4 addresses on the interface and the default route's gateway."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = ipr.link_lookup(ifname=interface)
        if not links:
            return NetState((), None)
        addrs = tuple(
            (a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=links[0], family=2)
        )
        gateway = None
        for route in ipr.get_default_routes(family=2):
            gateway = route.get_attr("RTA_GATEWAY")
        return NetState(addrs, gateway)


def route_via(host: str) -> Optional[str]:
    """How the guest reaches `host`: '' on-link, the gateway's address if
    routed, None if there is no route or no source address for it. The one
    route lookup the agent and doctor share."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        with IPRoute() as ipr:
            routes = ipr.route("get", dst=host)
    except (NetlinkError, OSError):
        return None
    for route in routes:
        if not route.get_attr("RTA_PREFSRC"):
            return None
        return route.get_attr("RTA_GATEWAY") or ""
    return None


def route_to(host: str) -> bool:
    """Whether the guest has an address and a route to the host."""
    return route_via(host) is not None


def set_address(action: SetAddress, ctx: "Context") -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=action.interface)[0]
        # The old addresses go first: deleting a primary address also drops
        # the secondaries of its subnet (promote_secondaries is off).
        for address, prefix in action.remove:
            ipr.addr("del", index=index, address=address, prefixlen=prefix)
        ipr.addr("add", index=index, address=action.address, prefixlen=action.prefix)
        ipr.link("set", index=index, state="up")
    log.info("address %s/%d set on %s", action.address, action.prefix, action.interface)


def set_route(action: SetRoute, ctx: "Context") -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=action.interface)[0]
        ipr.route("replace", dst="0.0.0.0/0", gateway=action.gateway, oif=index)
    log.info("default route via %s", action.gateway)


EXECUTORS: Dict[type, Executor] = {SetAddress: set_address, SetRoute: set_route}
