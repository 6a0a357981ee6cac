"""daemon.json, rendered by a pure function from layered settings.

Layers, later wins: built-in defaults, drop-ins (/etc/moby-agent/daemon.json.d
/*.json, in name order), the database's etc/docker/daemon.json, then the
legacy keys (insecure-registry, proxy/http, proxy/https, proxy/exclude).
Merge rules: objects are merged key by key (recursively), lists are joined
and de-duplicated keeping the first occurrence, anything else is replaced.
"""

import json
import shlex
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

DEFAULTS: Dict[str, Any] = {}

BOOL, STR, INT = "a boolean", "a string", "an integer"
LSTR, OBJ, LOBJ = "a list of strings", "an object", "a list of objects"
SCHEMA: Dict[str, str] = {
    "allow-nondistributable-artifacts": LSTR,
    "api-cors-header": STR,
    "authorization-plugins": LSTR,
    "bip": STR,
    "bridge": STR,
    "builder": OBJ,
    "cgroup-parent": STR,
    "cluster-advertise": STR,
    "cluster-store": STR,
    "cluster-store-opts": OBJ,
    "containerd": STR,
    "containerd-namespace": STR,
    "containerd-plugins-namespace": STR,
    "data-root": STR,
    "debug": BOOL,
    "default-address-pools": LOBJ,
    "default-cgroupns-mode": STR,
    "default-gateway": STR,
    "default-gateway-v6": STR,
    "default-ipc-mode": STR,
    "default-runtime": STR,
    "default-shm-size": STR,
    "default-ulimits": OBJ,
    "dns": LSTR,
    "dns-opts": LSTR,
    "dns-search": LSTR,
    "exec-opts": LSTR,
    "exec-root": STR,
    "experimental": BOOL,
    "features": OBJ,
    "fixed-cidr": STR,
    "fixed-cidr-v6": STR,
    "group": STR,
    "hosts": LSTR,
    "icc": BOOL,
    "init": BOOL,
    "init-path": STR,
    "insecure-registries": LSTR,
    "ip": STR,
    "ip-forward": BOOL,
    "ip-masq": BOOL,
    "ip6tables": BOOL,
    "iptables": BOOL,
    "ipv6": BOOL,
    "labels": LSTR,
    "live-restore": BOOL,
    "log-driver": STR,
    "log-level": STR,
    "log-opts": OBJ,
    "max-concurrent-downloads": INT,
    "max-concurrent-uploads": INT,
    "max-download-attempts": INT,
    "metrics-addr": STR,
    "mtu": INT,
    "no-new-privileges": BOOL,
    "node-generic-resources": LSTR,
    "oom-score-adjust": INT,
    "pidfile": STR,
    "raw-logs": BOOL,
    "registry-mirrors": LSTR,
    "runtimes": OBJ,
    "seccomp-profile": STR,
    "selinux-enabled": BOOL,
    "shutdown-timeout": INT,
    "storage-driver": STR,
    "storage-opts": LSTR,
    "swarm-default-advertise-addr": STR,
    "tls": BOOL,
    "tlscacert": STR,
    "tlscert": STR,
    "tlskey": STR,
    "tlsverify": BOOL,
    "userland-proxy": BOOL,
    "userland-proxy-path": STR,
    "userns-remap": STR,
}
PROXIES_SINCE = (23, 0)  # daemon.json "proxies" exists from Docker 23

# What SIGHUP reloads (facts section 6); any other change needs a restart.
RELOADABLE: FrozenSet[str] = frozenset(
    {
        "debug",
        "labels",
        "live-restore",
        "max-concurrent-downloads",
        "max-concurrent-uploads",
        "max-download-attempts",
        "default-runtime",
        "runtimes",
        "authorization-plugins",
        "insecure-registries",
        "registry-mirrors",
        "shutdown-timeout",
        "features",
    }
)

# dockerd flags whose daemon.json key differs from the flag name.
_FLAG_KEYS = {
    "H": "hosts",
    "host": "hosts",
    "D": "debug",
    "l": "log-level",
    "s": "storage-driver",
    "b": "bridge",
    "G": "group",
    "g": "data-root",
    "graph": "data-root",
    "p": "pidfile",
    "insecure-registry": "insecure-registries",
    "registry-mirror": "registry-mirrors",
    "label": "labels",
    "dns-opt": "dns-opts",
    "exec-opt": "exec-opts",
    "storage-opt": "storage-opts",
    "log-opt": "log-opts",
    "add-runtime": "runtimes",
    "authorization-plugin": "authorization-plugins",
    "default-ulimit": "default-ulimits",
    "default-address-pool": "default-address-pools",
    "tlsverify": "tlsverify",
    "feature": "features",
}


class ConfigProblem(Exception):
    """A layer that cannot be used; the text names the layer and the key."""


@dataclass(frozen=True)
class Layers:
    dropins: Tuple[Tuple[str, str], ...] = ()  # (file name, text)
    database: Optional[str] = None  # etc/docker/daemon.json from the database
    insecure_registry: Optional[str] = None
    proxy_http: Optional[str] = None
    proxy_https: Optional[str] = None
    proxy_exclude: Optional[str] = None


def merge(base: Any, over: Any) -> Any:
    if isinstance(over, dict):  # merged into an object below it; lists inside de-duplicated
        out = dict(base) if isinstance(base, dict) else {}
        for key, value in over.items():
            out[key] = merge(out.get(key), value)
        return out
    if isinstance(over, list):  # joined with a list below it, and always de-duplicated
        out_list: List[Any] = []
        for item in (base if isinstance(base, list) else []) + over:
            if item not in out_list:
                out_list.append(item)
        return out_list
    return over


def _type_ok(kind: str, value: Any) -> bool:
    if kind == BOOL:
        return isinstance(value, bool)
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == STR:
        return isinstance(value, str)
    if kind == LSTR:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == OBJ:
        return isinstance(value, dict)
    if kind == LOBJ:
        return isinstance(value, list) and all(isinstance(v, dict) for v in value)
    return False


def check(doc: Mapping[str, Any], where: str, version: Tuple[int, int]) -> None:
    for key, value in doc.items():
        kind = SCHEMA.get(key)
        if key == "proxies" and version >= PROXIES_SINCE:
            kind = OBJ
        if kind is None:
            raise ConfigProblem(f"{where}: {key!r} is not a daemon.json key dockerd {version[0]}.{version[1]} knows")
        if not _type_ok(kind, value):
            raise ConfigProblem(f"{where}: {key!r} must be {kind}, not {json.dumps(value)[:60]}")


def _parse(text: str, where: str, version: Tuple[int, int]) -> Dict[str, Any]:
    from agent.system import loads_limited

    try:
        doc = loads_limited(text)  # a value nested too deep is refused, never a RecursionError
    except ValueError as exc:
        raise ConfigProblem(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ConfigProblem(f"{where}: must be a JSON object")
    check(doc, where, version)
    return doc


def flag_keys(docker_opts: str) -> FrozenSet[str]:
    """The daemon.json keys that DOCKER_OPTS sets as flags."""
    try:
        words = shlex.split(docker_opts)
    except ValueError:
        words = docker_opts.split()
    keys = set()
    for word in words:
        if not word.startswith("-") or word == "--":
            continue
        name = word.lstrip("-").split("=", 1)[0]
        if name.startswith("no-"):
            name = name[3:]
        keys.add(_FLAG_KEYS.get(name, name))
    return frozenset(keys)


def docker_opts_from_confd(text: str) -> str:
    """DOCKER_OPTS="..." from /etc/conf.d/docker (last assignment wins)."""
    value = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export ") :]
        if line.startswith("DOCKER_OPTS="):
            try:
                parts = shlex.split(line[len("DOCKER_OPTS=") :])
            except ValueError:
                parts = []
            value = " ".join(parts)
    return value


def render(layers: Layers, docker_opts: str = "", version: Tuple[int, int] = (20, 10)) -> Dict[str, Any]:
    """The daemon.json document, or ConfigProblem naming the bad part."""
    doc: Dict[str, Any] = dict(DEFAULTS)
    for name, text in layers.dropins:
        doc = merge(doc, _parse(text, f"drop-in {name}", version))
    if layers.database is not None:
        doc = merge(doc, _parse(layers.database, "database key etc/docker/daemon.json", version))
    if layers.insecure_registry and layers.insecure_registry.strip():
        doc = merge(doc, {"insecure-registries": [layers.insecure_registry.strip()]})
    proxies = {
        k: v.strip()
        for k, v in (
            ("http-proxy", layers.proxy_http),
            ("https-proxy", layers.proxy_https),
            ("no-proxy", layers.proxy_exclude),
        )
        if v and v.strip()
    }
    if proxies:
        if version < PROXIES_SINCE:
            raise ConfigProblem(
                f"database keys proxy/*: dockerd {version[0]}.{version[1]} takes proxies only from its environment "
                '(HTTP_PROXY, HTTPS_PROXY, NO_PROXY in /etc/conf.d/docker); daemon.json "proxies" needs Docker 23'
            )
        doc = merge(doc, {"proxies": proxies})
    clashes = sorted(flag_keys(docker_opts) & set(doc))
    if clashes:
        raise ConfigProblem(
            f"{', '.join(clashes)} set both in DOCKER_OPTS (/etc/conf.d/docker) and in daemon.json; dockerd refuses "
            "to start on that: remove one"
        )
    return doc


def encode(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def changed_keys(old: Optional[str], new: Mapping[str, Any]) -> FrozenSet[str]:
    """Top-level keys whose value differs (old unreadable: every key)."""
    from agent.system import loads_limited

    try:
        before = loads_limited(old) if old else {}
    except ValueError:
        before = None
    if not isinstance(before, dict):
        return frozenset(new) | {"<unreadable>"}
    return frozenset(k for k in set(before) | set(new) if before.get(k) != new.get(k))


def how_to_apply(changed: FrozenSet[str], running: bool) -> str:
    """'none' (dockerd not running, or nothing changed), 'reload' (SIGHUP:
    every changed key is reloadable) or 'restart'."""
    if not running or not changed:
        return "none"
    return "reload" if changed <= RELOADABLE else "restart"


def version_of(text: str) -> Tuple[int, int]:
    """'Docker version 20.10.24+dfsg1, build 297e128' -> (20, 10)."""
    for word in text.replace(",", " ").split():
        parts = word.split(".")
        if len(parts) >= 2 and parts[0].isdigit() and parts[1][:2].isdigit():
            return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    return (20, 10)


def expected_info(doc: Mapping[str, Any]) -> Dict[str, Any]:
    """What /info must show once doc is in effect (the keys we can check)."""
    out: Dict[str, Any] = {}
    if "debug" in doc:
        out["Debug"] = doc["debug"]
    if "insecure-registries" in doc:
        out["insecure"] = sorted(doc["insecure-registries"])
    if "registry-mirrors" in doc:
        out["mirrors"] = [m.rstrip("/") + "/" for m in doc["registry-mirrors"]]
    if "labels" in doc:
        out["Labels"] = sorted(doc["labels"])
    return out


def differences(info: Mapping[str, Any], expected: Mapping[str, Any]) -> List[str]:
    diffs = []
    if "Debug" in expected and info.get("Debug") != expected["Debug"]:
        diffs.append(f"Debug is {info.get('Debug')}, want {expected['Debug']}")
    registry = info.get("RegistryConfig") or {}
    if "insecure" in expected:
        index = registry.get("IndexConfigs") or {}
        for reg in expected["insecure"]:
            if (index.get(reg) or {}).get("Secure", True):
                diffs.append(f"registry {reg} is not insecure in /info")
    if "mirrors" in expected:
        mirrors = registry.get("Mirrors") or []
        for m in expected["mirrors"]:
            if m not in mirrors:
                diffs.append(f"mirror {m} is not in /info")
    if "Labels" in expected:
        labels = info.get("Labels") or []
        for label in expected["Labels"]:
            if label not in labels:
                diffs.append(f"label {label} is not in /info")
    return diffs


def dropin_names(names: Sequence[str]) -> List[str]:
    return sorted(n for n in names if n.endswith(".json") and not n.startswith("."))
