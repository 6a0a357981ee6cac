"""The host's settings turned into the guest's configuration (pure).

From the observed database tree, drop-ins and current files, plan: mounting
the database, writing daemon.json (and reloading or restarting dockerd), and
copying etc/resolv.conf, etc/hosts, etc/sysctl.conf and etc/docker/** into
/etc. A bad setting is a problem and leaves what is in place untouched. The
static address is the network capability's (agent/network/plan.py).
"""

from dataclasses import field, replace
from typing import TYPE_CHECKING, Any, Dict, FrozenSet, List, Mapping, Optional, Tuple, Union

from agent.network.plan import NetState
from agent.outcome import Action, Note, PlanPart, Problem
from agent.record import dataclass
from agent.settings import certs, daemonjson, proxy
from agent.settings.database import copy_mode

if TYPE_CHECKING:
    from agent.agentconfig import AgentConfig

# Database keys read as settings (text only).
SETTING_KEYS = ("etc/docker/daemon.json", "insecure-registry", "proxy/http", "proxy/https", "proxy/exclude")
NET_KEYS = ("net/config", "net/address", "net/netmask", "net/gateway")
COPIED = {"etc/resolv.conf": "/etc/resolv.conf", "etc/hosts": "/etc/hosts", "etc/sysctl.conf": "/etc/sysctl.conf"}


@dataclass(frozen=True)
class HostInputs:
    """The part of an Observation this module reads."""

    database_name: Optional[str] = None
    database_mounted: bool = False
    # key -> value (text, or bytes byte-exact when not UTF-8); None: unavailable
    database: Optional[Mapping[str, Union[str, bytes]]] = None
    database_error: Optional[str] = None
    dropins: Tuple[Tuple[str, str], ...] = ()
    docker_opts: str = ""
    daemon_json: Optional[str] = None
    proxy_env: Optional[bytes] = None  # the agent's proxy environment file as it is (None: absent)
    certs_record: Optional[bytes] = None  # certs.RECORD: the certificates the agent installed
    dockerd_running: bool = False
    dockerd_version: Tuple[int, int] = (20, 10)
    files: Mapping[str, Optional[bytes]] = field(default_factory=dict)  # guest path -> current bytes
    # What could not be read (one key, one drop-in, one file): a problem for
    # that one only; the rest applies.
    problems: Tuple[Problem, ...] = ()
    interface: str = "eth0"
    net: Optional[NetState] = None


@dataclass(frozen=True)
class MountDatabase(Action):
    """Mount the host's configuration database (9p) at its mount point."""

    CAPABILITY = "database"
    SYSTEM = True

    tag: str
    target: str
    options: str

    def name(self) -> str:
        return "mount-database"


@dataclass(frozen=True)
class WriteFile(Action):
    """Write one file (daemon.json, the proxy file, a certificate, an /etc copy) atomically."""

    path: str
    content: bytes = field(repr=False)
    source: str = ""
    owner: str = "database"  # daemon.json is docker_config's
    mode: int = 0o644  # 0600 for a private key

    def name(self) -> str:
        return "write-file"

    def capability(self) -> str:
        return self.owner

    def as_dict(self) -> Dict[str, object]:
        return {"action": "write-file", "path": self.path, "from": self.source, "mode": f"{self.mode:04o}"}


@dataclass(frozen=True)
class RemoveFile(Action):
    """Remove a file the agent installed (and its directory once empty)."""

    CAPABILITY = "database"
    SYSTEM = True

    path: str

    def name(self) -> str:
        return "remove-file"


@dataclass(frozen=True)
class ApplySysctl(Action):
    """Apply the sysctl.conf copied from the database (`sysctl -p`)."""

    CAPABILITY = "database"
    SYSTEM = True

    path: str

    def name(self) -> str:
        return "apply-sysctl"


@dataclass(frozen=True)
class ApplyDocker(Action):
    """SIGHUP (reload) or restart dockerd, then verify through its API."""

    CAPABILITY = "docker_config"

    how: str
    changed: Tuple[str, ...]
    expected: Mapping[str, Any] = field(default_factory=dict)

    def name(self) -> str:
        return "reload-docker" if self.how == "reload" else "restart-docker"

    def as_dict(self) -> Dict[str, object]:
        return {"action": self.name(), "changed": list(self.changed)}

    def describe(self) -> str:
        return f"{self.name()} (applied and verified)"

    def deadline(self, conf: "AgentConfig") -> float:
        return 2 * conf.docker.verify_timeout + 40  # the restart command, then the verification


def copied_to(key: str) -> Optional[str]:
    """The guest path a database key is copied to, if it is one."""
    if key in COPIED:
        return COPIED[key]
    if key.startswith("etc/docker/") and key != "etc/docker/daemon.json":
        return "/" + key
    return None


def text_keys(db: Optional[Mapping[str, Union[str, bytes]]]) -> Dict[str, str]:
    """The keys whose value is text (settings are read from these only)."""
    return {k: v for k, v in (db or {}).items() if isinstance(v, str)}


def daemon_json_layers(inputs: HostInputs) -> daemonjson.Layers:
    """The layers daemon.json is rendered from: drop-ins, then the database."""
    db = text_keys(inputs.database)
    return daemonjson.Layers(
        dropins=inputs.dropins,
        database=db.get("etc/docker/daemon.json"),
        insecure_registry=db.get("insecure-registry"),
        proxy_http=db.get("proxy/http"),
        proxy_https=db.get("proxy/https"),
        proxy_exclude=db.get("proxy/exclude"),
    )


def plan_host(inputs: HostInputs, *, mount_point: str, tag: str, options: str, daemon_json: str,
              host_address: str = "10.0.75.1", proxy_env: str = "/etc/docker/moby-agent-proxy.env") -> PlanPart:
    actions: List[Action] = []
    problems: List[Problem] = list(inputs.problems)
    notes: Dict[str, Note] = {}
    db = inputs.database

    if inputs.database_name is None:
        notes["database"] = Note("no com.docker.database label on the kernel command line: local settings only",
                                 active=False)
    elif not inputs.database_mounted:
        actions.append(MountDatabase(tag, mount_point, options))
        notes["database"] = Note(f"mounting {mount_point}")
    elif db is None:
        problems.append(Problem("database", inputs.database_name, f"database {inputs.database_name}: "
                                f"{inputs.database_error or 'unreadable'}; local settings only"))
        notes["database"] = Note("unreadable")
    else:
        notes["database"] = Note(f"{inputs.database_name}: {len(db)} keys")
    db = db or {}
    for key in SETTING_KEYS + NET_KEYS:
        if isinstance(db.get(key), bytes):
            capability = "network" if key in NET_KEYS else "docker_config"
            problems.append(Problem(capability, key, f"database key {key} is not UTF-8 text; ignored"))

    # proxies: each key checked on its own; before dockerd 23 in the environment file
    layers = daemon_json_layers(inputs)
    proxies, bad_proxies = proxy.settings(daemonjson.proxy_values(layers), host_address)
    problems.extend(Problem("docker_config", key, text) for key, text in bad_proxies)
    env_wanted: Optional[bytes] = None
    if inputs.dockerd_version < daemonjson.PROXIES_SINCE and proxies:
        env_wanted = proxy.env_file(proxies)
    elif inputs.proxy_env is not None:
        env_wanted = proxy.env_file({})  # the host removed them, or dockerd takes them in daemon.json now
    changed: FrozenSet[str] = frozenset()
    removed: FrozenSet[str] = frozenset()
    shown: Dict[str, Any] = {}  # the daemon.json to be in effect, for /info's check
    doc: Dict[str, Any] = {}
    writes: List[Action] = []
    if env_wanted is not None and env_wanted != inputs.proxy_env:
        writes.append(WriteFile(proxy_env, env_wanted, "database keys proxy/*", "docker_config", 0o600))
        changed = frozenset({"proxies"})  # read at start only: a restart

    # daemon.json (before dockerd 23 the proxies alone are no daemon.json layer)
    if inputs.dockerd_version < daemonjson.PROXIES_SINCE:
        layers = replace(layers, proxy_http=None, proxy_https=None, proxy_exclude=None)
    if layers == daemonjson.Layers():
        notes["docker_config"] = Note(f"nothing to render; {daemon_json} left as it is", active=False)
    else:
        try:
            doc = daemonjson.render(layers, inputs.docker_opts, inputs.dockerd_version, host_address)
        except daemonjson.ConfigProblem as exc:
            problems.append(Problem("docker_config", daemon_json, f"daemon.json not changed: {exc}"))
            notes["docker_config"] = Note("previous daemon.json kept")
        else:
            content = daemonjson.encode(doc)
            if content != inputs.daemon_json:
                mode = 0o600 if proxy.has_secret(doc.get("proxies") or {}) else 0o644  # a proxy password in it
                writes.insert(0, WriteFile(daemon_json, content.encode(), "daemon.json layers", "docker_config", mode))
                changed |= daemonjson.changed_keys(inputs.daemon_json, doc)
                removed = daemonjson.removed_keys(inputs.daemon_json, doc)
                shown = dict(doc)
            else:
                notes["docker_config"] = Note("daemon.json up to date")
    if writes:
        actions.extend(writes)
        what = " and ".join(a.path for a in writes if isinstance(a, WriteFile))
        how = daemonjson.how_to_apply(changed, inputs.dockerd_running, removed)
        if how != "none":
            actions.append(ApplyDocker(how, tuple(sorted(changed)), daemonjson.expected_info(shown, removed)))
            notes["docker_config"] = Note(f"writing {what}, then {how}")
        else:
            notes["docker_config"] = Note(f"writing {what}; dockerd not running: applies at its next start")

    # files
    wanted_files: Dict[str, Tuple[bytes, str]] = {}
    for key, value in db.items():
        target = copied_to(key)
        if target is not None and not key.startswith(certs.PREFIX):
            wanted_files[target] = (value.encode() if isinstance(value, str) else value, key)
    for target in sorted(wanted_files):
        data, key = wanted_files[target]
        if inputs.files.get(target) != data:
            actions.append(WriteFile(target, data, f"database key {key}", mode=copy_mode(key, data)))
            if target == "/etc/sysctl.conf":
                actions.append(ApplySysctl(target))

    # registry certificates: installed, checked; removed only when the agent installed them
    installed, record_problem = certs.parse_record(inputs.certs_record)
    if record_problem:
        problems.append(Problem("database", certs.RECORD, record_problem, "warning"))
    cert_files, cert_problems = certs.wanted(dict(db))
    problems.extend(Problem("database", key, text) for key, text in cert_problems)
    for target in sorted(cert_files):
        data, mode, key = cert_files[target]
        if inputs.files.get(target) != data:
            actions.append(WriteFile(target, data, f"database key {key}", mode=mode))
    if inputs.database is not None:  # an unread database removes nothing
        # A file the host still has but that is now bad is kept (nothing working torn down).
        kept = {"/" + k for k, _ in cert_problems}
        for path in sorted(set(installed) - set(cert_files) - kept):
            actions.append(RemoveFile(path))
        record = certs.encode_record(set(cert_files) | (set(installed) & kept))
        if (cert_files or inputs.certs_record is not None) and record != inputs.certs_record:
            actions.append(WriteFile(certs.RECORD, record, "installed certificates"))

    return PlanPart(tuple(actions), tuple(problems), notes)
