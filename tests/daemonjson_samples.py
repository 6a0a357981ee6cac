"""A valid value for every daemon.json key the agent knows for dockerd
20.10 (unit tests check the agent accepts each; tests/integration/
test_dockerd.py checks the real dockerd 20.10 does)."""

from agent.settings import daemonjson

_BY_KIND = {daemonjson.BOOL: True, daemonjson.INT: 1, daemonjson.STR: "x", daemonjson.LSTR: ["x"],
            daemonjson.OBJ: {}, daemonjson.LOBJ: []}
_SPECIAL = {
    "bip": "172.30.0.1/16", "fixed-cidr": "172.30.0.0/24", "fixed-cidr-v6": "fd00:1::/64",
    "default-gateway": "172.30.0.1", "default-gateway-v6": "fd00:1::1", "ip": "0.0.0.0",
    "host-gateway-ip": "10.0.75.1", "dns": ["10.0.75.1"], "labels": ["a=1"], "log-level": "warn",
    "registry-mirrors": ["https://mirror.example"], "insecure-registries": ["reg.example:5000"],
    "default-shm-size": "64M", "hosts": ["unix:///tmp/moby-agent-sample.sock"], "mtu": 1500,
    "default-address-pools": [{"base": "172.31.0.0/16", "size": 24}], "log-driver": "json-file",
    "storage-driver": "vfs", "default-ipc-mode": "private", "default-cgroupns-mode": "host",
    "default-runtime": "runc", "exec-opts": ["native.cgroupdriver=cgroupfs"], "log-opts": {"max-size": "10m"},
    "storage-opts": [], "features": {"buildkit": True}, "seccomp-profile": "unconfined",
    "node-generic-resources": ["gpu=1"], "userland-proxy-path": "/usr/bin/docker-proxy",
    "graph": "/var/lib/docker",
}


def sample(key):
    if key in _SPECIAL:
        return _SPECIAL[key]
    return _BY_KIND[daemonjson.SCHEMA[key]]
