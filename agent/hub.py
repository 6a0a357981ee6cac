"""One pass: observe, plan, apply; the hub only sequences the capabilities.

observe() reads everything a decision needs into one immutable Observation
(each capability's own observe function); plan() is a pure function from it
to actions and typed problems (each capability's pure plan); apply() hands
each action to its capability's executor, records the outcome, and never
lets one failure stop the others (only the later steps for the same drive
are skipped). Adding an action touches one capability folder: its plan and
its EXECUTORS.
"""

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Set, Tuple

from agent import kvp
from agent.agentconfig import AgentConfig
from agent.kvp import hostitems
from agent.kvp.hostitems import NoteHostItems
from agent.network import apply as network_apply
from agent.network.plan import plan_network
from agent.outcome import Action, Executor, Note, Outcome, PlanPart, Problem, merge_parts
from agent.settings import apply as settings_apply
from agent.settings.plan import HostInputs, plan_host
from agent.shares import apply as shares_apply
from agent.shares.items import Limits
from agent.shares.mountinfo import MountEntry, parse_mountinfo
from agent.shares.plan import Retry, SharesState, plan_shares
from agent.system import read_text, under, write_atomic

log = logging.getLogger("moby-agent")

HOST_POOL = kvp.HOST_POOL

__all__ = ["Action", "Context", "Memory", "NoteHostItems", "Observation", "Outcome", "Plan", "apply", "observe",
           "plan"]


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
class Plan:
    actions: Tuple[Action, ...]
    problems: Tuple[Problem, ...]
    drive_states: Mapping[str, str] = field(default_factory=dict)
    waiting_for_network: bool = False
    notes: Mapping[str, Note] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, object]:
        return {"actions": [a.as_dict() for a in self.actions], "problems": [p.text for p in self.problems]}


def observe(
    conf: AgentConfig,
    root: str,
    seen_host_items: Optional[Tuple[kvp.Item, ...]],
    retries: Optional[Mapping[str, Retry]] = None,
    network: Callable[[str], bool] = network_apply.route_to,
    pool_dir: Optional[str] = None,
) -> Observation:
    """pool_dir: the pool directory in use (a running agent keeps the one it
    started with: kvp.pool_dir changes only at restart)."""
    live = root in ("", "/")
    pool_dir_exists, pools = hostitems.observe_pools(under(root, pool_dir or conf.kvp.pool_dir))
    mounts = parse_mountinfo(read_text(under(root, "/proc/self/mountinfo")) or "")
    shares, problem = shares_apply.load_shares(under(root, conf.shares.state_file))
    # Mounts are tried at once; only after a failure does the route to the
    # host tell "the network is not up yet" (wait for netlink events) from
    # "the server refused or is down" (back off). This keeps pyroute2's
    # import off the first mount's path.
    network_ok = network(conf.host.address) if retries and live else None
    return Observation(
        host_inputs=settings_apply.observe_host(conf, root, mounts, live),
        conf=conf,
        pool_dir_exists=pool_dir_exists,
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


def plan(obs: Observation) -> Plan:
    """Pure: the same observation always gives the same plan."""
    host = obs.pools.get(HOST_POOL, kvp.Pool(()))
    pool = hostitems.plan_pool(obs.conf.kvp.pool_dir, obs.pool_dir_exists, host, obs.seen_host_items)
    shares = plan_shares(host.items, obs.shares, obs.mounts, obs.host, obs.limits, obs.network_ok, obs.now,
                         obs.retries)
    state_problem = PlanPart(problems=(
        Problem("shares", obs.conf.shares.state_file, obs.shares_problem, "warning"),
    )) if obs.shares_problem else PlanPart()
    s = obs.conf
    settings = plan_host(obs.host_inputs, mount_point=s.database.mount_point, tag=s.database.tag,
                         options=s.database.options, daemon_json=s.docker.daemon_json)
    network = plan_network(obs.host_inputs.database or {}, obs.host_inputs.interface, obs.host_inputs.net)
    actions, problems, notes = merge_parts((pool, state_problem, shares, settings, network))
    return Plan(actions, problems, shares.drive_states, shares.waiting_for_network, notes)


@dataclass
class Memory:
    """What the agent keeps between passes."""

    seen_host_items: Optional[Tuple[kvp.Item, ...]] = None
    retries: Dict[str, Retry] = field(default_factory=dict)
    last_errors: Dict[str, str] = field(default_factory=dict)


@dataclass
class Context:
    """What the executors need: where, with what configuration, and the state
    they update (share state is saved once at the end of apply if it changed)."""

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


EXECUTORS: Dict[type, Executor] = {
    **hostitems.EXECUTORS,
    **shares_apply.EXECUTORS,
    **settings_apply.EXECUTORS,
    **network_apply.EXECUTORS,
}


def _apply_one(action: Action, ctx: Context) -> None:
    # Never under --root, where the agent works on a fixture tree (a
    # mount.cifs would send packets to the configured host).
    if ctx.root not in ("", "/") and action.SYSTEM:
        raise RuntimeError(f"not done under --root {ctx.root}: {action.name()} would change the real system")
    executor = EXECUTORS.get(type(action))
    if executor is None:
        raise NotImplementedError(f"no executor for action {action.name()}")
    executor(action, ctx)


def apply(actions: Tuple[Action, ...], ctx: Context) -> List[Outcome]:
    outcomes = []
    failed_drives: Set[str] = set()
    for action in actions:
        drive = getattr(action, "drive", None)
        what = f"{action.name()} {drive}" if drive is not None else action.name()
        if drive is not None and drive in failed_drives:
            outcomes.append(Outcome(action, False, "skipped: an earlier step for this drive failed", skipped=True))
            continue
        try:
            _apply_one(action, ctx)
        except Exception as exc:  # one failure never stops the others
            message = str(exc)
            if drive is not None:
                failed_drives.add(drive)
                shares_apply.failed(ctx, drive, message, exc)
            if ctx.memory.last_errors.get(what) != message:  # once per change, not per try
                log.error("%s failed: %s", what, message)
                ctx.memory.last_errors[what] = message
            outcomes.append(Outcome(action, False, message))
        else:
            shares_apply.succeeded(action, ctx)
            ctx.memory.last_errors.pop(what, None)
            outcomes.append(Outcome(action, True))
    if ctx.changed:
        try:
            write_atomic(ctx.path(ctx.conf.shares.state_file), ctx.shares.to_json(), mode=0o600)
        except OSError as exc:
            log.error("cannot save share state %s: %s", ctx.conf.shares.state_file, exc.strerror)
    return outcomes
