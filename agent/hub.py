"""One pass: observe, plan, apply; the hub only sequences the capabilities.

observe() reads everything a decision needs into one immutable Observation
(each capability's own observe function); plan() is a pure function from it
to actions and typed problems (each capability's pure plan); apply() hands
each action to its capability's executor, records the outcome, and never
lets one failure stop the others (only the later steps for the same drive
are skipped: Action.chain), then runs each capability's after_apply hook
(its retry memory, its state file). Adding an action touches one capability
folder: its plan and its EXECUTORS.
"""

import logging
import time
from dataclasses import field, replace
from typing import Callable, Dict, FrozenSet, List, Mapping, Optional, Set, Tuple

from agent import kvp
from agent.agentconfig import AgentConfig, share_limits
from agent.kvp import hostitems
from agent.kvp.hostitems import NoteHostItems
from agent.network import apply as network_apply
from agent.network.plan import plan_network
from agent.outcome import Action, ActionFailed, AfterApply, Executor, Note, Outcome, PlanPart, Problem, merge_parts
from agent.record import dataclass
from agent.settings import apply as settings_apply
from agent.settings.plan import HostInputs, plan_host, text_keys
from agent.shares import apply as shares_apply
from agent.shares.health import judge
from agent.shares.items import Limits
from agent.shares.mountinfo import MountEntry
from agent.shares.plan import Retry, SharesState, plan_shares
from agent.system import UnsafePath, printable, under, under_dir

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
    shares_problem: Optional[Tuple[str, str]] = None  # (the share state file, why it was unreadable)
    network_ok: Optional[bool] = None
    now: float = 0.0
    retries: Mapping[str, Retry] = field(default_factory=dict)
    health: Mapping[str, str] = field(default_factory=dict)  # drive -> this pass's probe (shares/health.py)
    suspect: Mapping[str, float] = field(default_factory=dict)  # drive -> since when its probes fail
    host_inputs: HostInputs = HostInputs()
    conf: AgentConfig = AgentConfig()
    # What could not be observed (a bug, an unforeseen input): reported, and
    # those capabilities are not planned this pass.
    errors: Tuple[Problem, ...] = ()
    failed: FrozenSet[str] = frozenset()
    pool_errors: Tuple[Tuple[int, str], ...] = ()  # (pool, why) for pool files that could not be read
    # The pool directory read (the one in use: a reload does not change it),
    # which the plan names; None: the config's.
    pool_dir: Optional[str] = None


@dataclass(frozen=True)
class Plan:
    """A pass's plan: the capabilities' actions and problems in order, and each part for its after_apply."""

    actions: Tuple[Action, ...]
    problems: Tuple[Problem, ...]
    notes: Mapping[str, Note] = field(default_factory=dict)
    # Each capability's own part, for its after_apply hook.
    parts: Mapping[str, PlanPart] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, object]:
        return {"actions": [a.as_dict() for a in self.actions], "problems": [p.text for p in self.problems]}


# Tracebacks already logged, by capability and text: each new failure of a
# capability's code is logged once with its traceback, not at every pass.
_LOGGED: Set[Tuple[str, str]] = set()


def _crashed(capability: str, stage: str, exc: BaseException) -> Problem:
    """A bug or an unforeseen input in one capability's code: a problem of
    that capability; the others and the loop go on."""
    if isinstance(exc, UnsafePath):  # refused at the boundary (a way out of --root, a loop): said, not a bug
        text = f"{capability}: {stage}: {printable(exc.strerror or exc)}; nothing of it was changed"
    else:
        text = f"{capability}: {stage} failed unexpectedly ({type(exc).__name__}: {exc}); nothing of it was changed"
    if (capability, text) not in _LOGGED:
        _LOGGED.add((capability, text))
        log.error("%s", text, exc_info=None if isinstance(exc, UnsafePath) else exc)
    return Problem(capability, stage, text)


def observe(
    conf: AgentConfig,
    root: str,
    seen_host_items: Optional[Tuple[kvp.Item, ...]],
    retries: Optional[Mapping[str, Retry]] = None,
    network: Callable[[str], bool] = network_apply.route_to,
    pool_dir: Optional[str] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    run_programs: bool = False,
    check_health: bool = False,
    suspect: Optional[Mapping[str, float]] = None,
) -> Observation:
    """pool_dir: the pool directory in use (a running agent keeps the one it
    started with: kvp.pool_dir changes only at restart). A capability whose
    observation raises is left out of this pass's plan (never planned from a
    blank it did not see) and reported. run_programs: the agent's own
    passes only; plan and daemon-json run no program (observe_host)."""
    live = root in ("", "/")
    errors: List[Problem] = []
    failed: Set[str] = set()
    pool_dir_exists, pools = False, {HOST_POOL: kvp.Pool(()), kvp.GUEST_POOL: kvp.Pool(())}
    pool_errors: Tuple[Tuple[int, str], ...] = ()
    pool_dir = pool_dir or conf.kvp.pool_dir
    try:
        pool_dir_exists, pools, pool_errors = hostitems.observe_pools(under_dir(root, pool_dir), should_stop)
    except Exception as exc:  # noqa: BLE001 - reported against the capability
        errors.append(_crashed("pool", "observe", exc))
        failed |= {"pool", "shares"}  # the shares are planned from pool 0's items
    if any(n == HOST_POOL for n, _text in pool_errors):
        failed.add("shares")  # never planned from a pool 0 it could not read
    mounts: Tuple[MountEntry, ...] = ()
    shares, problem, network_ok = SharesState(), None, None
    try:
        mounts, shares, problem, network_ok = shares_apply.observe(conf, root, retries, live, network)
    except Exception as exc:  # noqa: BLE001
        errors.append(_crashed("shares", "observe", exc))
        failed |= {"shares", "database"}  # both read the mount table
    health_results: Dict[str, str] = {}
    if live and (check_health or suspect):
        try:
            health_results = shares_apply.observe_health(conf, mounts, shares)
        except Exception as exc:  # noqa: BLE001
            errors.append(_crashed("shares", "observe", exc))
    host_inputs = HostInputs()
    try:
        host_inputs = settings_apply.observe_host(conf, root, mounts, live, run_programs)
    except Exception as exc:  # noqa: BLE001
        errors.append(_crashed("docker_config", "observe", exc))
        failed |= {"database", "docker_config", "network"}
    return Observation(
        host_inputs=host_inputs,
        conf=conf,
        pool_dir_exists=pool_dir_exists,
        pools=pools,
        seen_host_items=seen_host_items,
        host=conf.host.address,
        limits=share_limits(conf),
        mounts=mounts,
        shares=shares,
        shares_problem=problem,
        network_ok=network_ok,
        now=time.monotonic(),
        retries=dict(retries or {}),
        health=health_results,
        suspect=dict(suspect or {}),
        pool_errors=pool_errors,
        pool_dir=pool_dir,
        errors=tuple(errors),
        failed=frozenset(failed),
    )


def _plan_part(capability: str, obs: Observation, make: Callable[[], PlanPart],
               needs: Tuple[str, ...] = ()) -> PlanPart:
    if obs.failed & {capability, *needs}:
        return PlanPart()
    try:
        return make()
    except Exception as exc:  # noqa: BLE001 - one capability's bug stops only its own plan
        return PlanPart(problems=(_crashed(capability, "plan", exc),))


def plan(obs: Observation) -> Plan:
    """Pure: the same observation always gives the same plan."""
    host = obs.pools.get(HOST_POOL, kvp.Pool(()))
    s = obs.conf
    pool_dir = obs.pool_dir or s.kvp.pool_dir
    pool = _plan_part("pool", obs, lambda: hostitems.plan_pool(pool_dir, obs.pool_dir_exists, host,
                                                              obs.seen_host_items, obs.pool_errors))
    suspect, dead = judge(obs.health, obs.suspect, obs.now)
    shares = _plan_part("shares", obs, lambda: replace(
        plan_shares(host.items, obs.shares, obs.mounts, obs.host, obs.limits, obs.network_ok, obs.now, obs.retries,
                    obs.shares_problem, dead), suspect=suspect))
    settings = _plan_part("docker_config", obs, lambda: plan_host(
        obs.host_inputs, mount_point=s.database.mount_point, tag=s.database.tag, options=s.database.options,
        daemon_json=s.docker.daemon_json, host_address=s.host.address, proxy_env=s.docker.proxy_env),
        needs=("database",))
    network = _plan_part("network", obs, lambda: plan_network(text_keys(obs.host_inputs.database),
                                                              obs.host_inputs.interface, obs.host_inputs.net))
    parts = {"pool": pool, "shares": shares, "docker_config": settings, "network": network}
    actions, problems, notes = merge_parts((PlanPart(problems=obs.errors), *parts.values()))
    return Plan(actions, problems, notes, parts)


@dataclass
class Memory:
    """What the agent keeps between passes."""

    seen_host_items: Optional[Tuple[kvp.Item, ...]] = None
    retries: Dict[str, Retry] = field(default_factory=dict)
    last_errors: Dict[str, str] = field(default_factory=dict)
    # Set by the shares' after_apply: each drive's state after the pass, and
    # whether a drive waits for the network (netlink events retry it).
    drives: Dict[str, str] = field(default_factory=dict)
    waiting_for_network: bool = False
    suspect: Dict[str, float] = field(default_factory=dict)  # drive -> since when its health probes fail


@dataclass
class Context:
    """What the executors need: where, with what configuration, and the state
    they update (the share state, saved by the shares' after_apply if it
    changed)."""

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
    # Told before each action with its deadline (monotonic), and with None
    # after: the healthcheck answers "alive" while an action is within it.
    busy: Callable[[Optional[Action], float], None] = lambda action, deadline: None

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


# What each capability does after the pass's actions (its own memory and
# state files), in this order.
AFTER_APPLY: Dict[str, AfterApply] = {"shares": shares_apply.after_apply}


def apply(actions: Tuple[Action, ...], ctx: Context) -> List[Outcome]:
    outcomes = []
    failed_chains: Set[str] = set()
    for action in actions:
        chain = action.chain()
        what = f"{action.name()} {chain}" if chain is not None else action.name()
        if chain is not None and chain in failed_chains:
            outcomes.append(Outcome(action, False, "skipped: an earlier step for this drive failed", skipped=True))
            continue
        ctx.busy(action, time.monotonic() + action.deadline(ctx.conf))
        try:
            _apply_one(action, ctx)
        except Exception as exc:  # one failure never stops the others
            message = str(exc)
            if chain is not None:
                failed_chains.add(chain)
            if ctx.memory.last_errors.get(what) != message:  # once per change, not per try
                log.error("%s failed: %s", what, message)
                ctx.memory.last_errors[what] = message
            cause = exc.cause if isinstance(exc, ActionFailed) else None
            outcomes.append(Outcome(action, False, message, cause=cause))
        else:
            ctx.memory.last_errors.pop(what, None)
            outcomes.append(Outcome(action, True))
        finally:
            ctx.busy(None, 0.0)
    return outcomes


def run(plan: Plan, ctx: Context) -> List[Outcome]:
    """Apply the plan's actions, then each capability's after_apply."""
    outcomes = apply(plan.actions, ctx)
    for name, after in AFTER_APPLY.items():
        after(ctx, plan.parts.get(name, PlanPart()), outcomes)
    return outcomes
