"""The pool capability: what the host pushed to pool 0, and what changed.

observe_pools() reads pools 0 and 1; plan_pool() (pure) notes the items that
were added, changed or removed since the last applied pass; the executor logs
them (secrets redacted) and remembers the new set.
"""

import logging
import os
from dataclasses import field
from typing import TYPE_CHECKING, Callable, Dict, List, Mapping, Optional, Tuple

from agent.kvp import codec
from agent.outcome import Action, Executor, Note, PlanPart, Problem
from agent.record import dataclass
from agent.system import printable

if TYPE_CHECKING:
    from agent.hub import Context

log = logging.getLogger("moby-agent")


@dataclass(frozen=True)
class NoteHostItems(Action):
    """The host pool's items changed: record (and log) the new set."""

    CAPABILITY = "pool"

    added: Tuple[str, ...]
    changed: Tuple[str, ...]
    removed: Tuple[str, ...]
    items: Tuple[codec.Item, ...] = field(repr=False)

    def name(self) -> str:
        return "note-host-items"

    def describe(self) -> str:
        return "note the host's items"

    def as_dict(self) -> Dict[str, object]:
        return {
            "action": self.name(),
            "added": list(self.added),
            "changed": list(self.changed),
            "removed": list(self.removed),
        }


def observe_pools(
    pool_dir: str, should_stop: Optional[Callable[[], bool]] = None
) -> Tuple[bool, Dict[int, codec.Pool], Tuple[Tuple[int, str], ...]]:
    """Whether the pool directory exists, pools 0 and 1, and why a pool
    could not be read (a FIFO, a symlink, a directory, EACCES: read as
    empty, and a problem of the pool capability)."""
    pools: Dict[int, codec.Pool] = {}
    errors: List[Tuple[int, str]] = []
    for pool in (codec.HOST_POOL, codec.GUEST_POOL):
        try:
            pools[pool] = codec.read_pool(codec.pool_path(pool_dir, pool), should_stop)
        except codec.KvpError as exc:
            pools[pool] = codec.Pool(())
            errors.append((pool, str(exc)))
    return os.path.isdir(pool_dir) and not os.path.islink(pool_dir), pools, tuple(errors)


def plan_pool(
    pool_dir: str,
    pool_dir_exists: bool,
    host: codec.Pool,
    seen: Optional[Tuple[codec.Item, ...]],
    errors: Tuple[Tuple[int, str], ...] = (),
) -> PlanPart:
    """Pure: the pool's problems and the note of what changed in pool 0."""
    problems: List[Problem] = [Problem("pool", f"pool {n}", text) for n, text in errors]
    if not pool_dir_exists:
        problems.append(Problem("pool", pool_dir, f"pool directory {pool_dir} does not exist (is hv_kvp_daemon "
                                "running?)", "waiting"))
    for warning in host.warnings:
        problems.append(Problem("pool", f"pool {codec.HOST_POOL}", f"pool {codec.HOST_POOL}: {warning}", "warning"))
    actions: List[Action] = []
    if any(n == codec.HOST_POOL for n, _text in errors):
        # Pool 0 could not be read: never note every item as removed.
        return PlanPart((), tuple(problems), {"pool": Note("pool 0 unreadable")})
    if (seen or ()) != host.items:
        before = dict(seen or ())
        after = dict(host.items)
        actions.append(
            NoteHostItems(
                added=tuple(k for k in after if k not in before),
                changed=tuple(k for k in after if k in before and before[k] != after[k]),
                removed=tuple(k for k in before if k not in after),
                items=host.items,
            )
        )
    note = Note(f"read pool {codec.HOST_POOL}: {len(host.items)} items")
    return PlanPart(tuple(actions), tuple(problems), {"pool": note})


# At most this many items are logged one by one per pass; the rest as a count
# (a pool of 100,000 items would otherwise write 100,000 lines at start).
LOGGED_ITEMS = 50


def _note_host_items(action: NoteHostItems, ctx: "Context") -> None:
    from agent.shares.items import redact_item

    items: Mapping[str, str] = dict(action.items)
    added = set(action.added)  # a set: `in` on the tuple made a large pool quadratic
    changes = list(action.added) + list(action.changed)
    for key in changes[:LOGGED_ITEMS]:
        verb = "added" if key in added else "changed"
        log.info("pool %d: item %s %s: %s", codec.HOST_POOL, printable(key), verb,
                 printable(redact_item(key, items[key])))
    for key in action.removed[: max(0, LOGGED_ITEMS - len(changes))]:
        log.info("pool %d: item %s removed", codec.HOST_POOL, printable(key))
    more = len(changes) + len(action.removed) - LOGGED_ITEMS
    if more > 0:
        log.info("pool %d: %d more items added, changed or removed (not listed)", codec.HOST_POOL, more)
    ctx.memory.seen_host_items = action.items


EXECUTORS: Dict[type, Executor] = {NoteHostItems: _note_host_items}
