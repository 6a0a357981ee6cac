"""Issue 16 item 6: a static network that would cut the VM off is refused
with a problem saying why; what is in place is kept."""

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.network.plan import NetState, plan_network, static_network

CURRENT = NetState((("10.0.75.9", 24),), "10.0.75.1")


def net(address, netmask="255.255.255.0", gateway="10.0.75.1", config="static"):
    db = {"net/config": config, "net/address": address, "net/gateway": gateway}
    if netmask is not None:
        db["net/netmask"] = netmask
    return db


@pytest.mark.parametrize("db, why", [
    (net("0.0.0.0"), "unspecified"), (net("127.0.0.5"), "loopback"), (net("224.0.0.5"), "multicast"),
    (net("169.254.3.4", gateway="169.254.3.1"), "link-local"), (net("10.0.75.0"), "network address"),
    (net("10.0.75.255"), "broadcast address"), (net("10.0.75.2", gateway="10.0.75.2"), "net/address itself"),
    (net("10.0.75.2", gateway="10.0.76.1"), "not in 10.0.75.0/24"), (net("10.0.75.2", gateway="10.0.75.255"),
                                                                      "broadcast address of"),
    (net("10.0.75.2/25", netmask="255.255.255.0"), "disagree"), (net("10.0.75.2/33"), "net/address"),
    (net("", gateway=""), "net/address is empty"), (net("240.0.0.1"), "reserved"),
    (net("10.0.75.2", gateway="127.0.0.1"), "loopback"),
])
def test_what_would_cut_the_vm_off_is_a_problem_that_says_why_and_keeps_what_is_there(db, why):
    part = plan_network(db, "eth0", CURRENT)
    assert part.actions == ()
    assert len(part.problems) == 1 and why in str(part.problems[0]), str(part.problems[0])
    assert "kept" in str(part.problems[0])


@pytest.mark.parametrize("db, want", [
    (net("10.0.75.2", config="STATIC"), ("10.0.75.2", 24, "10.0.75.1")),
    (net("10.0.75.2", config=" Static\n"), ("10.0.75.2", 24, "10.0.75.1")),
    (net("10.0.75.2/24", netmask=None), ("10.0.75.2", 24, "10.0.75.1")),
    (net("10.0.75.2/24", netmask=""), ("10.0.75.2", 24, "10.0.75.1")),
    (net("10.0.75.2/24"), ("10.0.75.2", 24, "10.0.75.1")),
    (net("10.0.75.2/16", netmask="255.255.0.0", gateway="10.0.0.1"), ("10.0.75.2", 16, "10.0.0.1")),
    (net("10.0.75.2", netmask=None, gateway=""), ("10.0.75.2", 24, None)),
    (net("10.0.75.3", netmask="255.255.255.254", gateway="10.0.75.2"), ("10.0.75.3", 31, "10.0.75.2")),
    (net("10.0.75.2", config="dhcp"), None),
])
def test_good_settings(db, want):
    assert static_network(db) == want


@given(st.integers(0, (1 << 32) - 1), st.integers(8, 30), st.integers(0, (1 << 32) - 1), st.booleans())
def test_accepted_exactly_when_address_and_gateway_are_usable_hosts_of_the_subnet(a, prefix, g, same_subnet):
    ip = ipaddress.IPv4Address(a)
    network = ipaddress.IPv4Network(f"{ip}/{prefix}", strict=False)
    host_bits = (1 << (32 - prefix)) - 1
    gw = ipaddress.IPv4Address((a & ~host_bits) | (g & host_bits) if same_subnet else g)

    def usable(x):
        return not (x.is_unspecified or x.is_loopback or x.is_multicast or x.is_link_local or x.is_reserved
                    or x in (network.network_address, network.broadcast_address))

    ok = usable(ip) and usable(gw) and gw != ip and gw in network
    db = net(f"{ip}/{prefix}", netmask=None, gateway=str(gw))
    if ok:
        assert static_network(db) == (str(ip), prefix, str(gw))
    else:
        with pytest.raises(ValueError):
            static_network(db)
