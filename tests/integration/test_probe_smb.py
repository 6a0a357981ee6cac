"""probe_smb, the probe behind a failed mount's words (file sharing off, a
firewall, no route, a gateway), against the real kernel: routes, a port
445 that listens or not, packets dropped, an ICMP host-unreachable. In a
thread of this process that has a network namespace of its own (a
namespace is a thread's: the rest of the test run keeps the machine's),
so that mutation testing sees the function reached."""

import ctypes
import os
import socket
import subprocess
import threading

from agent.shares.failures import probe_smb
from tests.conftest import require_root

CLONE_NEWNET = 0x40000000
SETUP = [
    ["ip", "link", "set", "lo", "up"],
    ["ip", "addr", "add", "10.0.75.1/32", "dev", "lo"],  # local: a listener on 445
    ["ip", "addr", "add", "10.0.75.5/32", "dev", "lo"],  # local: nothing on 445
    ["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"],  # on-link, nobody answers
    ["ip", "addr", "add", "10.0.76.2/24", "dev", "v0"],
    ["ip", "link", "set", "v1", "up"],
    ["ip", "link", "set", "v0", "up"],
    ["ip", "route", "add", "10.0.80.0/24", "via", "10.0.76.254", "dev", "v0"],
    ["iptables", "-A", "OUTPUT", "-p", "tcp", "-d", "10.0.76.3", "--dport", "445", "-j", "REJECT",
     "--reject-with", "icmp-host-unreachable"],
    # Refused by a firewall with an ICMP no client expects: connect() fails with ENOPROTOOPT.
    ["iptables", "-A", "OUTPUT", "-p", "tcp", "-d", "10.0.76.4", "--dport", "445", "-j", "REJECT",
     "--reject-with", "icmp-proto-unreachable"],
]
HOSTS = {"listening": "10.0.75.1", "nothing on 445": "10.0.75.5", "dropped": "10.0.76.1",
         "host unreachable": "10.0.76.3", "an odd ICMP": "10.0.76.4", "through a gateway": "10.0.80.1",
         "no route": "192.0.2.1"}


def probe_all(out):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        out["error"] = os.strerror(ctypes.get_errno())
        return
    for argv in SETUP:  # a child forked from this thread starts in its namespace
        subprocess.run(argv, check=True, capture_output=True)
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("10.0.75.1", 445))
        server.listen(4)
        for name, host in HOSTS.items():
            r = probe_smb(host, timeout=1.0)
            out[name] = (r.route, r.port)


def test_probe_smb_tells_each_way_a_host_is_not_reached():
    require_root()
    out: dict = {}
    t = threading.Thread(target=probe_all, args=(out,))
    t.start()
    t.join(60)
    assert out == {
        "listening": ("", "open"),
        "nothing on 445": ("", "refused"),  # a reset: file sharing off
        "dropped": ("", "timeout"),  # what Windows Defender Firewall does
        "host unreachable": ("", "unreachable"),
        "an odd ICMP": ("", "timeout"),  # any other error: a firewall too
        "through a gateway": ("10.0.76.254", None),  # never probed through a gateway
        "no route": (None, None),
    }
