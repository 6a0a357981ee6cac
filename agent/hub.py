"""One pass: observe, plan, apply.

observe() reads everything a decision needs into one immutable Observation;
plan() is a pure function from it to actions and problems; apply() runs each
action, records its outcome, and never lets one failure stop the others
(only the later steps for the same drive are skipped).
"""

import logging
import os
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from agent import kvp
from agent.agentconfig import AgentConfig
from agent.outcome import Action
from agent.settings import daemonjson, database
from agent.settings.plan import (
    COPIED,
    ApplyDocker,
    ApplySysctl,
    HostInputs,
    MountDatabase,
    NetState,
    SetAddress,
    SetRoute,
    WriteFile,
    plan_host,
    static_network,
)
from agent.shares.items import Limits, credentials_file, redact_item
from agent.shares.plan import (
    BindAlias,
    MountEntry,
    MountShare,
    RemoveDir,
    Retry,
    SaveShares,
    SharesState,
    Unmount,
    parse_mountinfo,
    plan_shares,
)
from agent.system import create_exclusive, pid_alive, read_text, run_command, under, write_atomic

log = logging.getLogger("moby-agent")

HOST_POOL = 0
AUTH_ERROR = "mount error(13)"


@dataclass(frozen=True)
class Observation:
    """What the agent saw at the start of a pass."""

    pool_dir_exists: bool
    pools: Mapping[int, kvp.Pool]
    # The host pool's items as the last applied pass saw them (the agent's
    # memory), so that the plan can say what changed.
    seen_host_items: Optional[Tuple[kvp.Item, ...]]
    host: str = "10.0.75.1"
    limits: Limits = Limits()
    mounts: Tuple[MountEntry, ...] = ()
    shares: SharesState = SharesState()
    shares_problem: Optional[str] = None
    network_ok: Optional[bool] = None
    now: float = 0.0
    retries: Mapping[str, Retry] = field(default_factory=dict)
    host_inputs: HostInputs = HostInputs()
    conf: AgentConfig = AgentConfig()


@dataclass(frozen=True)
class NoteHostItems(Action):
    """The host pool's items changed: record (and log) the new set."""

    added: Tuple[str, ...]
    changed: Tuple[str, ...]
    removed: Tuple[str, ...]
    items: Tuple[kvp.Item, ...] = field(repr=False)

    def name(self) -> str:
        return "note-host-items"

    def as_dict(self) -> Dict[str, object]:
        return {
            "action": self.name(),
            "added": list(self.added),
            "changed": list(self.changed),
            "removed": list(self.removed),
        }


@dataclass(frozen=True)
class Plan:
    actions: Tuple[Action, ...]
    problems: Tuple[str, ...]
    drive_states: Mapping[str, str] = field(default_factory=dict)
    waiting_for_network: bool = False
    notes: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, object]:
        return {"actions": [a.as_dict() for a in self.actions], "problems": list(self.problems)}


def load_shares(path: str) -> Tuple[SharesState, Optional[str]]:
    try:
        with open(path, "rb") as f:
            return SharesState.from_json(f.read()), None
    except FileNotFoundError:
        return SharesState(), None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return SharesState(), f"share state {path} is unreadable ({type(exc).__name__}); starting from the pool"


def route_to(host: str) -> bool:
    """Whether the guest has an address and a route to the host (netlink)."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        with IPRoute() as ipr:
            routes = ipr.route("get", dst=host)
    except (NetlinkError, OSError):
        return False
    return any(r.get_attr("RTA_PREFSRC") for r in routes)


def observe(
    conf: AgentConfig,
    root: str,
    seen_host_items: Optional[Tuple[kvp.Item, ...]],
    retries: Optional[Mapping[str, Retry]] = None,
    network: Callable[[str], bool] = route_to,
) -> Observation:
    pool_dir = under(root, conf.kvp.pool_dir)
    pools = {pool: kvp.read_pool(kvp.pool_path(pool_dir, pool)) for pool in (HOST_POOL, kvp.GUEST_POOL)}
    mounts = parse_mountinfo(read_text(under(root, "/proc/self/mountinfo")) or "")
    shares, problem = load_shares(under(root, conf.shares.state_file))
    # Mounts are tried at once; only after a failure does the route to the
    # host tell "the network is not up yet" (wait for netlink events) from
    # "the server refused or is down" (back off). This keeps pyroute2's
    # import off the first mount's path.
    network_ok = None
    if retries and root in ("", "/"):
        network_ok = network(conf.host.address)
    return Observation(
        host_inputs=observe_host(conf, root, mounts),
        conf=conf,
        pool_dir_exists=os.path.isdir(pool_dir),
        pools=pools,
        seen_host_items=seen_host_items,
        host=conf.host.address,
        limits=Limits(conf.shares.mount_pattern, conf.shares.max_id),
        mounts=mounts,
        shares=shares,
        shares_problem=problem,
        network_ok=network_ok,
        now=time.monotonic(),
        retries=dict(retries or {}),
    )


def _dockerd_version(conf: AgentConfig) -> Tuple[int, int]:
    result = run_command([conf.docker.dockerd, "--version"], 10)
    return daemonjson.version_of(result.output) if result.returncode == 0 else (20, 10)


_VERSION_CACHE: Dict[str, Tuple[int, int]] = {}


def _pid_from(path: str) -> Optional[int]:
    text = read_text(path)
    try:
        return int(text.strip()) if text else None
    except ValueError:
        return None


def observe_host(conf: AgentConfig, root: str, mounts: Tuple[MountEntry, ...]) -> HostInputs:
    """The database tree, drop-ins, DOCKER_OPTS, current files, dockerd and
    (only when the database asks for a static address) the interface."""
    dbs = conf.database
    name = database.parse_cmdline(read_text(under(root, dbs.cmdline)) or "", dbs.label)
    mounted = any(m.target == dbs.mount_point for m in mounts)
    tree: Optional[Dict[str, str]] = None
    error = None
    if name is not None and mounted:
        top = under(root, database.base(dbs.mount_point, name))
        if os.path.isdir(top):
            try:
                tree = database.read_tree(top)
            except (OSError, database.DatabaseError) as exc:
                error = str(exc)
        else:
            error = f"{database.base(dbs.mount_point, name)} does not exist"
    dropin_dir = under(root, conf.docker.dropin_dir)
    try:
        names = daemonjson.dropin_names(os.listdir(dropin_dir))
    except (FileNotFoundError, NotADirectoryError):
        names = []
    dropins = tuple((n, read_text(os.path.join(dropin_dir, n)) or "") for n in names)
    files: Dict[str, Optional[str]] = {}
    for key in list(tree or {}):
        target = COPIED.get(key)
        if target is None and key.startswith("etc/docker/"):
            target = "/" + key
        if target:
            files[target] = read_text(under(root, target))
    pid = _pid_from(under(root, conf.docker.pidfile))
    running = pid is not None and pid_alive(pid)
    version = _VERSION_CACHE.get(conf.docker.dockerd)
    if version is None and (tree or dropins):
        version = _VERSION_CACHE[conf.docker.dockerd] = _dockerd_version(conf)
    net = None
    try:
        static = static_network(tree or {})
    except ValueError:
        static = None
    if static is not None and root in ("", "/"):
        net = read_net(conf.network.interface)
    return HostInputs(
        database_name=name,
        database_mounted=mounted,
        database=tree,
        database_error=error,
        dropins=dropins,
        docker_opts=daemonjson.docker_opts_from_confd(read_text(under(root, conf.docker.confd)) or ""),
        daemon_json=read_text(under(root, conf.docker.daemon_json)),
        dockerd_running=running,
        dockerd_version=version or (20, 10),
        files=files,
        interface=conf.network.interface,
        net=net,
    )


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


def plan(obs: Observation) -> Plan:
    """Pure: the same observation always gives the same plan."""
    actions: List[Action] = []
    problems: List[str] = []
    host = obs.pools.get(HOST_POOL, kvp.Pool(()))
    for warning in host.warnings:
        problems.append(f"pool {HOST_POOL}: {warning}")
    if (obs.seen_host_items or ()) != host.items:
        before = dict(obs.seen_host_items or ())
        after = dict(host.items)
        actions.append(
            NoteHostItems(
                added=tuple(k for k in after if k not in before),
                changed=tuple(k for k in after if k in before and before[k] != after[k]),
                removed=tuple(k for k in before if k not in after),
                items=host.items,
            )
        )
    if obs.shares_problem:
        problems.append(obs.shares_problem)
    shares = plan_shares(host.items, obs.shares, obs.mounts, obs.host, obs.limits, obs.network_ok, obs.now,
                         obs.retries)
    actions.extend(shares.actions)
    problems.extend(shares.problems)
    s = obs.conf
    host_plan = plan_host(obs.host_inputs, mount_point=s.database.mount_point, tag=s.database.tag,
                          options=s.database.options, daemon_json=s.docker.daemon_json)
    actions.extend(host_plan.actions)
    problems.extend(host_plan.problems)
    return Plan(tuple(actions), tuple(problems), shares.drive_states, shares.waiting_for_network, host_plan.notes)


@dataclass
class Memory:
    """What the agent keeps between passes."""

    seen_host_items: Optional[Tuple[kvp.Item, ...]] = None
    retries: Dict[str, Retry] = field(default_factory=dict)
    last_errors: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    action: Action
    ok: bool
    error: Optional[str] = None


@dataclass
class Context:
    """What the executor needs: where, with what settings, and the state it
    updates (share state is saved once at the end of apply if it changed)."""

    conf: AgentConfig
    root: str
    memory: Memory
    shares: SharesState
    should_stop: Callable[[], bool] = lambda: False
    # Called with a mount target before it is unmounted: the live-reload
    # watcher lets go of its directories there (they would keep it busy).
    release: Callable[[str], None] = lambda target: None
    changed: bool = False
    rerun: bool = False

    def path(self, p: str) -> str:
        return under(self.root, p)


class MountFailed(Exception):
    def __init__(self, message: str, auth: bool) -> None:
        super().__init__(message)
        self.auth = auth


def _mount_share(action: MountShare, ctx: Context) -> None:
    spec = action.spec
    target = ctx.path(spec.mountpoint)
    os.makedirs(target, exist_ok=True)
    creds_dir = os.path.dirname(ctx.path(ctx.conf.shares.state_file))
    os.makedirs(creds_dir, mode=0o700, exist_ok=True)
    fd, creds = create_exclusive(creds_dir, ".credentials-")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(credentials_file(spec))
        options = ",".join(list(spec.options) + [f"credentials={creds}"])
        result = run_command(["mount.cifs", action.source, target, "-o", options],
                             ctx.conf.shares.mount_timeout, ctx.should_stop)
    finally:
        os.unlink(creds)  # right after the mount returns
    fp = spec.fingerprint()
    if result.returncode != 0:
        auth = AUTH_ERROR in result.output
        if auth:
            ctx.shares = _with(ctx.shares, "auth_failed", spec.mountpoint, fp)
            ctx.changed = True
        raise MountFailed(result.output.replace(spec.password, "***") if spec.password else result.output, auth)
    ctx.shares = _with(_without(ctx.shares, "auth_failed", spec.mountpoint), "mounted", spec.mountpoint, fp)
    ctx.changed = True


def _with(state: SharesState, attr: str, key: str, value: str) -> SharesState:
    return _set(state, attr, key, value)


def _without(state: SharesState, attr: str, key: str) -> SharesState:
    return _set(state, attr, key, None)


def _set(state: SharesState, attr: str, key: str, value: Optional[str]) -> SharesState:
    pairs = dict(getattr(state, attr))
    if value is None:
        pairs.pop(key, None)
    else:
        pairs[key] = value
    new = tuple(sorted(pairs.items()))
    if attr == "mounted":
        return replace(state, mounted=new)
    if attr == "auth_failed":
        return replace(state, auth_failed=new)
    raise ValueError(attr)


# Actions that change the real system (mounts, the network, kernel settings):
# never run under --root, where the agent works on a fixture tree (and a
# mount.cifs would send packets to the configured host).
SYSTEM_ACTIONS = (MountShare, BindAlias, Unmount, MountDatabase, SetAddress, SetRoute, ApplySysctl)


def _apply_one(action: Action, ctx: Context) -> None:
    if ctx.root not in ("", "/") and isinstance(action, SYSTEM_ACTIONS):
        raise RuntimeError(f"not done under --root {ctx.root}: {action.name()} would change the real system")
    memory = ctx.memory
    if isinstance(action, NoteHostItems):
        items = dict(action.items)
        for key in action.added + action.changed:
            verb = "added" if key in action.added else "changed"
            log.info("pool %d: item %s %s: %s", HOST_POOL, key, verb, redact_item(key, items[key]))
        for key in action.removed:
            log.info("pool %d: item %s removed", HOST_POOL, key)
        memory.seen_host_items = action.items
    elif isinstance(action, SaveShares):
        ctx.shares = replace(ctx.shares, drives=action.drives, seen=action.seen)
        ctx.changed = True
    elif isinstance(action, MountShare):
        _mount_share(action, ctx)
        log.info("share %s mounted at %s", action.source, action.spec.mountpoint)
    elif isinstance(action, BindAlias):
        # Bind only the share itself: if it was unmounted meanwhile, binding
        # the bare directory would leave a stale alias.
        table = parse_mountinfo(read_text(ctx.path("/proc/self/mountinfo")) or "")
        if not any(e.target == action.source and e.fstype == "cifs" for e in table):
            raise RuntimeError(f"bind {action.source} at {action.target}: {action.source} is not mounted")
        os.makedirs(ctx.path(action.target), exist_ok=True)
        result = run_command(["mount", "-o", "bind", ctx.path(action.source), ctx.path(action.target)], 10,
                             ctx.should_stop)
        if result.returncode != 0:
            raise RuntimeError(f"bind {action.source} at {action.target}: {result.output}")
        log.info("alias %s bound to %s", action.target, action.source)
    elif isinstance(action, Unmount):
        ctx.release(action.target)
        result = run_command(["umount", ctx.path(action.target)], 30, ctx.should_stop)
        if result.returncode != 0:
            raise RuntimeError(f"unmount {action.target}: {result.output}")
        if action.target == action.drive:
            ctx.shares = _without(ctx.shares, "mounted", action.drive)
            ctx.changed = True
        log.info("unmounted %s", action.target)
    elif isinstance(action, RemoveDir):
        try:
            os.rmdir(ctx.path(action.path))
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.info("kept %s: %s", action.path, exc.strerror)
        if action.path == action.drive:
            ctx.shares = _without(ctx.shares, "mounted", action.drive)
            ctx.changed = True
    elif isinstance(action, MountDatabase):
        os.makedirs(ctx.path(action.target), exist_ok=True)
        result = run_command(["mount", "-t", "9p", "-o", action.options, action.tag, ctx.path(action.target)], 30,
                             ctx.should_stop)
        if result.returncode != 0:
            raise RuntimeError(f"mount 9p {action.tag} at {action.target}: {result.output}")
        ctx.rerun = True  # read the database in a pass of its own
        log.info("database mounted at %s", action.target)
    elif isinstance(action, WriteFile):
        write_atomic(ctx.path(action.path), action.content.encode())
        log.info("wrote %s (from %s)", action.path, action.source)
    elif isinstance(action, ApplySysctl):
        result = run_command(["sysctl", "-p", ctx.path(action.path)], 10, ctx.should_stop)
        if result.returncode != 0:
            raise RuntimeError(f"sysctl -p {action.path}: {result.output}")
    elif isinstance(action, ApplyDocker):
        _apply_docker(action, ctx)
    elif isinstance(action, SetAddress):
        _set_address(action)
        log.info("address %s/%d set on %s", action.address, action.prefix, action.interface)
    elif isinstance(action, SetRoute):
        _set_route(action)
        log.info("default route via %s", action.gateway)
    else:
        raise NotImplementedError(f"no executor for action {action.name()}")


def _apply_docker(action: ApplyDocker, ctx: Context) -> None:
    """Reload or restart dockerd, then check /info: returns once it shows the
    new settings (applied and verified), raises with what differs."""
    import signal as _signal

    from agent.settings.dockerapi import DockerAPI, DockerError

    docker = ctx.conf.docker
    if action.how == "reload":
        pid = _pid_from(ctx.path(docker.pidfile))
        if pid is None:
            raise RuntimeError(f"no pid in {docker.pidfile}")
        os.kill(pid, _signal.SIGHUP)
        log.info("dockerd (pid %d) reloaded with SIGHUP for %s", pid, ", ".join(action.changed))
    else:
        result = run_command(list(docker.restart_command), docker.verify_timeout + 30, ctx.should_stop)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(docker.restart_command)}: {result.output}")
        log.info("dockerd restarted for %s", ", ".join(action.changed))
    api = DockerAPI(ctx.path(docker.socket), timeout=5)
    deadline = time.monotonic() + docker.verify_timeout
    diffs: List[str] = ["dockerd did not answer"]
    try:
        while time.monotonic() < deadline and not ctx.should_stop():
            try:
                if api.ping():
                    diffs = daemonjson.differences(api.info(), action.expected)
                    if not diffs:
                        return
            except DockerError as exc:
                diffs = [str(exc)]
            time.sleep(0.2)
    finally:
        api.close()
    raise RuntimeError("applied, but " + "; ".join(diffs))


def _set_address(action: SetAddress) -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=action.interface)[0]
        # The old addresses go first: deleting a primary address also drops
        # the secondaries of its subnet (promote_secondaries is off).
        for address, prefix in action.remove:
            ipr.addr("del", index=index, address=address, prefixlen=prefix)
        ipr.addr("add", index=index, address=action.address, prefixlen=action.prefix)
        ipr.link("set", index=index, state="up")


def _set_route(action: SetRoute) -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=action.interface)[0]
        ipr.route("replace", dst="0.0.0.0/0", gateway=action.gateway, oif=index)


def _backoff(ctx: Context, drive: str, error: str, auth: bool) -> None:
    retry = ctx.conf.retry
    old = ctx.memory.retries.get(drive)
    failures = (old.failures if old else 0) + 1
    delay = min(retry.max_seconds, retry.min_seconds * 2 ** (failures - 1))
    if not auth:
        ctx.memory.retries[drive] = Retry(failures, time.monotonic() + delay, error.splitlines()[-1] if error else "")


def apply(actions: Tuple[Action, ...], ctx: Context) -> List[Outcome]:
    outcomes = []
    failed_drives = set()
    for action in actions:
        drive = getattr(action, "drive", None)
        if drive is not None and drive in failed_drives:
            outcomes.append(Outcome(action, False, "skipped: an earlier step for this drive failed"))
            continue
        try:
            _apply_one(action, ctx)
        except Exception as exc:  # one failure never stops the others
            message = str(exc)
            if drive is not None:
                failed_drives.add(drive)
                _backoff(ctx, drive, message, isinstance(exc, MountFailed) and exc.auth)
            what = f"{action.name()} {drive}" if drive is not None else action.name()
            if ctx.memory.last_errors.get(what) != message:  # once per change, not per try
                log.error("%s failed: %s", what, message)
                ctx.memory.last_errors[what] = message
            outcomes.append(Outcome(action, False, message))
        else:
            if isinstance(action, MountShare):
                ctx.memory.retries.pop(action.drive, None)
            ctx.memory.last_errors.pop(f"{action.name()} {drive}" if drive is not None else action.name(), None)
            outcomes.append(Outcome(action, True))
    if ctx.changed:
        try:
            write_atomic(ctx.path(ctx.conf.shares.state_file), ctx.shares.to_json(), mode=0o600)
        except OSError as exc:
            log.error("cannot save share state %s: %s", ctx.conf.shares.state_file, exc.strerror)
    return outcomes
