"""One pass: observe, plan, apply.

observe() reads everything a decision needs into one immutable Observation;
plan() is a pure function from it to actions and problems; apply() runs each
action, records its outcome, and never lets one failure stop the others.
"""

import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

from agent import kvp
from agent.config import Settings
from agent.shares import redact_item
from agent.system import under

log = logging.getLogger("moby-agent")

HOST_POOL = 0


@dataclass(frozen=True)
class Observation:
    """What the agent saw at the start of a pass."""

    pool_dir_exists: bool
    pools: Mapping[int, kvp.Pool]
    # The host pool's items as the last applied pass saw them (the agent's
    # memory), so that the plan can say what changed.
    seen_host_items: Optional[Tuple[kvp.Item, ...]]


@dataclass(frozen=True)
class Action:
    """Base of every action: `name` is its "action" in plan --json."""

    def name(self) -> str:
        raise NotImplementedError

    def as_dict(self) -> Dict[str, object]:
        d: Dict[str, object] = {"action": self.name()}
        d.update(asdict(self))
        return d


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

    def as_dict(self) -> Dict[str, object]:
        return {"actions": [a.as_dict() for a in self.actions], "problems": list(self.problems)}


def observe(settings: Settings, root: str, seen_host_items: Optional[Tuple[kvp.Item, ...]]) -> Observation:
    pool_dir = under(root, settings.kvp.pool_dir)
    pools = {}
    for pool in (HOST_POOL, kvp.GUEST_POOL):
        pools[pool] = kvp.read_pool(kvp.pool_path(pool_dir, pool))
    return Observation(
        pool_dir_exists=os.path.isdir(pool_dir),
        pools=pools,
        seen_host_items=seen_host_items,
    )


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
    return Plan(tuple(actions), tuple(problems))


@dataclass
class Memory:
    """What the agent keeps between passes."""

    seen_host_items: Optional[Tuple[kvp.Item, ...]] = None


@dataclass(frozen=True)
class Outcome:
    action: Action
    ok: bool
    error: Optional[str] = None


def _apply_one(action: Action, memory: Memory) -> None:
    if isinstance(action, NoteHostItems):
        items = dict(action.items)
        for key in action.added + action.changed:
            verb = "added" if key in action.added else "changed"
            log.info("pool %d: item %s %s: %s", HOST_POOL, key, verb, redact_item(key, items[key]))
        for key in action.removed:
            log.info("pool %d: item %s removed", HOST_POOL, key)
        memory.seen_host_items = action.items
        return
    raise NotImplementedError(f"no executor for action {action.name()}")


def apply(actions: Tuple[Action, ...], memory: Memory) -> List[Outcome]:
    outcomes = []
    for action in actions:
        try:
            _apply_one(action, memory)
        except Exception as exc:  # one failure never stops the others
            log.error("%s failed: %s", action.name(), exc)
            outcomes.append(Outcome(action, False, str(exc)))
        else:
            outcomes.append(Outcome(action, True))
    return outcomes
