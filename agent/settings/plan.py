"""The host's settings turned into the guest's configuration (pure).

From the observed database tree, drop-ins and current files, plan: mounting
the database, writing daemon.json (and reloading or restarting dockerd),
copying etc/resolv.conf, etc/hosts, etc/sysctl.conf and etc/docker/** into
/etc, and a static address and default route. A bad setting is a problem and
leaves what is in place untouched.
"""

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from agent.outcome import Action
from agent.settings import daemonjson

COPIED = {"etc/resolv.conf": "/etc/resolv.conf", "etc/hosts": "/etc/hosts", "etc/sysctl.conf": "/etc/sysctl.conf"}


@dataclass(frozen=True)
class NetState:
    addresses: Tuple[Tuple[str, int], ...]  # IPv4 (address, prefix) on the interface
    gateway: Optional[str]  # the default route's gateway


@dataclass(frozen=True)
class HostInputs:
    """The part of an Observation this module reads."""

    database_name: Optional[str] = None
    database_mounted: bool = False
    database: Optional[Mapping[str, str]] = None  # key -> value; None: unavailable
    database_error: Optional[str] = None
    dropins: Tuple[Tuple[str, str], ...] = ()
    docker_opts: str = ""
    daemon_json: Optional[str] = None
    dockerd_running: bool = False
    dockerd_version: Tuple[int, int] = (20, 10)
    files: Mapping[str, Optional[str]] = field(default_factory=dict)  # guest path -> current text
    interface: str = "eth0"
    net: Optional[NetState] = None


@dataclass(frozen=True)
class MountDatabase(Action):
    tag: str
    target: str
    options: str

    def name(self) -> str:
        return "mount-database"


@dataclass(frozen=True)
class WriteFile(Action):
    path: str
    content: str = field(repr=False)
    source: str = ""

    def name(self) -> str:
        return "write-file"

    def as_dict(self) -> Dict[str, object]:
        return {"action": "write-file", "path": self.path, "from": self.source}


@dataclass(frozen=True)
class ApplySysctl(Action):
    path: str

    def name(self) -> str:
        return "apply-sysctl"


@dataclass(frozen=True)
class ApplyDocker(Action):
    """SIGHUP (reload) or restart dockerd, then verify through its API."""

    how: str
    changed: Tuple[str, ...]
    expected: Mapping[str, Any] = field(default_factory=dict)

    def name(self) -> str:
        return "reload-docker" if self.how == "reload" else "restart-docker"

    def as_dict(self) -> Dict[str, object]:
        return {"action": self.name(), "changed": list(self.changed)}


@dataclass(frozen=True)
class SetAddress(Action):
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
    interface: str
    gateway: str

    def name(self) -> str:
        return "set-default-route"


@dataclass(frozen=True)
class HostPlan:
    actions: Tuple[Action, ...]
    problems: Tuple[str, ...]
    notes: Mapping[str, str]  # capability -> what it is doing


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


def daemon_json_layers(inputs: HostInputs) -> daemonjson.Layers:
    """The layers daemon.json is rendered from: drop-ins, then the database."""
    db = inputs.database or {}
    return daemonjson.Layers(
        dropins=inputs.dropins,
        database=db.get("etc/docker/daemon.json"),
        insecure_registry=db.get("insecure-registry"),
        proxy_http=db.get("proxy/http"),
        proxy_https=db.get("proxy/https"),
        proxy_exclude=db.get("proxy/exclude"),
    )


def plan_host(inputs: HostInputs, *, mount_point: str, tag: str, options: str, daemon_json: str) -> HostPlan:
    actions: List[Action] = []
    problems: List[str] = []
    notes: Dict[str, str] = {}
    db = inputs.database

    if inputs.database_name is None:
        notes["database"] = "no com.docker.database label on the kernel command line: local settings only"
    elif not inputs.database_mounted:
        actions.append(MountDatabase(tag, mount_point, options))
        notes["database"] = f"mounting {mount_point}"
    elif db is None:
        problems.append(f"database {inputs.database_name}: {inputs.database_error or 'unreadable'}; "
                        "local settings only")
        notes["database"] = "unreadable"
    else:
        notes["database"] = f"{inputs.database_name}: {len(db)} keys"
    db = db or {}

    # daemon.json
    layers = daemon_json_layers(inputs)
    if layers == daemonjson.Layers():
        notes["docker_config"] = f"nothing to render; {daemon_json} left as it is"
    else:
        try:
            doc = daemonjson.render(layers, inputs.docker_opts, inputs.dockerd_version)
        except daemonjson.ConfigProblem as exc:
            problems.append(f"daemon.json not changed: {exc}")
            notes["docker_config"] = "previous daemon.json kept"
        else:
            content = daemonjson.encode(doc)
            if content != inputs.daemon_json:
                actions.append(WriteFile(daemon_json, content, "daemon.json layers"))
                changed = daemonjson.changed_keys(inputs.daemon_json, doc)
                how = daemonjson.how_to_apply(changed, inputs.dockerd_running)
                if how != "none":
                    actions.append(ApplyDocker(how, tuple(sorted(changed)), daemonjson.expected_info(doc)))
                    notes["docker_config"] = f"writing daemon.json, then {how}"
                else:
                    notes["docker_config"] = "writing daemon.json; dockerd not running: applies at its next start"
            else:
                notes["docker_config"] = "daemon.json up to date"

    # files
    wanted_files: Dict[str, Tuple[str, str]] = {}
    for key, target in COPIED.items():
        if key in db:
            wanted_files[target] = (db[key], key)
    for key, value in db.items():
        if key.startswith("etc/docker/") and key != "etc/docker/daemon.json":
            wanted_files["/etc/docker/" + key[len("etc/docker/") :]] = (value, key)
    for target in sorted(wanted_files):
        content, key = wanted_files[target]
        if inputs.files.get(target) != content:
            actions.append(WriteFile(target, content, f"database key {key}"))
            if target == "/etc/sysctl.conf":
                actions.append(ApplySysctl(target))

    # network
    try:
        static = static_network(db)
    except ValueError as exc:
        problems.append(f"network not changed: {exc}")
        static = None
        notes["network"] = "bad static settings; nothing changed"
    if static is not None:
        address, prefix, gateway = static
        net = inputs.net or NetState((), None)
        readdress = (address, prefix) not in net.addresses
        if readdress:
            others = tuple(a for a in net.addresses if a != (address, prefix))
            actions.append(SetAddress(inputs.interface, address, prefix, others))
        # Removing the old address drops the routes that used it: set the
        # default route again after any change of address.
        if gateway and (net.gateway != gateway or readdress):
            actions.append(SetRoute(inputs.interface, gateway))
        notes["network"] = f"static {address}/{prefix}" + (f" via {gateway}" if gateway else "")
    elif "network" not in notes:
        notes["network"] = "not static (DHCP or as configured)"
    return HostPlan(tuple(actions), tuple(problems), notes)
