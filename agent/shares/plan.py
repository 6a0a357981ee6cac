"""The share plan: what to mount, bind and unmount (pure).

plan_shares() turns the host pool's items, the agent's share state and the
mount table into actions and problems. The executors are in shares/apply.py.
"""

import json
from dataclasses import asdict, field
from typing import TYPE_CHECKING, AbstractSet, Dict, Iterable, List, Mapping, Optional, Tuple

from agent import kvp
from agent.outcome import Action, Note, Outcome, PlanPart, Problem, first_line
from agent.record import dataclass
from agent.shares.failures import REFUSED, no_route_text, refused_text
from agent.shares.items import (
    CIFSMOUNT,
    CIFSUMOUNT,
    Limits,
    ShareError,
    ShareSpec,
    check_mount_point,
    parse_mount,
    parse_umount,
    recheck_drive,
)
from agent.shares.mountinfo import MountEntry, stacked, top_mount

if TYPE_CHECKING:
    from agent.agentconfig import AgentConfig


def digest(value: str) -> str:
    import hashlib  # loads OpenSSL (about 3 MB): only once there is a share item

    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:24]


# ---- the agent's share state (kept on tmpfs, mode 0600) ---------------------


@dataclass(frozen=True)
class SharesState:
    """The drives the host wants (a second cifsmount must not drop the first),
    what the agent mounted with which fingerprint, which item values it has
    already acted on, and which credentials the server refused."""

    drives: Tuple[ShareSpec, ...] = ()
    mounted: Tuple[Tuple[str, str], ...] = ()
    seen: Tuple[Tuple[str, str], ...] = ()
    auth_failed: Tuple[Tuple[str, str], ...] = ()
    made: Tuple[str, ...] = ()  # directories the agent created (mount points, aliases)

    def to_json(self) -> bytes:
        doc = asdict(self)
        return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> "SharesState":
        """Raises ValueError on anything but a state this agent wrote."""
        from agent.system import loads_limited

        doc = loads_limited(data)
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        drives = tuple(
            ShareSpec(d["mountpoint"], d["alias"], d["username"], d["password"], d.get("domain"), tuple(d["options"]))
            for d in doc.get("drives", [])
        )
        pairs = {k: tuple((str(a), str(b)) for a, b in doc.get(k, [])) for k in ("mounted", "seen", "auth_failed")}
        made = tuple(sorted({str(p) for p in doc.get("made", [])}))
        return cls(drives, pairs["mounted"], pairs["seen"], pairs["auth_failed"], made)

    def rechecked(self, limits: Limits) -> Tuple["SharesState", List[str]]:
        """The state with every drive that fails the rules a fresh item
        must pass (under these limits) dropped, and with the mount points
        it remembers as mounted or refused kept only when they are allowed
        mount points: anyone with root may have written the file. Also the
        problems, one per dropped entry (naming the drive, never a password)."""
        problems: List[str] = []
        drives: List[ShareSpec] = []
        taken: Tuple[str, ...] = ()
        for spec in self.drives:
            try:
                drives.append(recheck_drive(spec, limits, taken))
                taken += (spec.mountpoint, spec.alias)
            except ShareError as exc:
                problems.append(f"{exc}; the drive was dropped")
        pairs = {}
        for name in ("mounted", "auth_failed"):
            kept = []
            for mp, fp in getattr(self, name):
                problem = check_mount_point(mp, limits)
                if problem:
                    problems.append(f"{name}: {problem}; it was dropped")
                else:
                    kept.append((mp, fp))
            pairs[name] = tuple(kept)
        made = []  # directories the agent may remove again: allowed mount points only
        for path in self.made:
            problem = check_mount_point(path, limits)
            if problem:
                problems.append(f"made: {problem}; it was dropped")
            else:
                made.append(path)
        return SharesState(tuple(drives), pairs["mounted"], self.seen, pairs["auth_failed"], tuple(made)), problems


# ---- actions ---------------------------------------------------------------


@dataclass(frozen=True)
class DriveStep(Action):
    """A step for one drive: after one fails, that drive's later steps are
    skipped (a bind after a failed mount would bind the bare directory)."""

    drive: str

    def chain(self) -> Optional[str]:
        return self.drive


@dataclass(frozen=True)
class MountShare(DriveStep):
    """Mount //<host>/<share> at the drive's mount point with mount.cifs."""

    CAPABILITY = "shares"
    SYSTEM = True

    drive: str
    spec: ShareSpec = field(repr=False)
    host: str = ""

    def name(self) -> str:
        return "mount"

    def describe(self) -> str:
        return f"mount {self.spec.mountpoint}"

    def deadline(self, conf: "AgentConfig") -> float:
        return conf.shares.mount_timeout + 10  # a host that drops packets

    @property
    def source(self) -> str:
        return f"//{self.host}/{self.spec.share}"

    def as_dict(self) -> Dict[str, object]:
        return {"action": "mount", "source": self.source, "target": self.spec.mountpoint, "fstype": "cifs",
                "options": self.spec.shown_options()}


@dataclass(frozen=True)
class BindAlias(DriveStep):
    """Bind-mount the drive's mount point at its alias (/c at /C)."""

    CAPABILITY = "shares"
    SYSTEM = True

    drive: str
    source: str
    target: str

    def name(self) -> str:
        return "bind"

    def as_dict(self) -> Dict[str, object]:
        return {"action": "bind", "source": self.source, "target": self.target}


@dataclass(frozen=True)
class Unmount(DriveStep):
    """Unmount one of a drive's targets (alias or mount point); lazily for a dead share."""

    CAPABILITY = "shares"
    SYSTEM = True

    drive: str
    target: str
    lazy: bool = False  # `umount -l`: a dead share (a hard mount would block)

    def name(self) -> str:
        return "unmount"

    def as_dict(self) -> Dict[str, object]:
        return {"action": "unmount", "target": self.target, **({"lazy": True} if self.lazy else {})}


@dataclass(frozen=True)
class RemoveDir(DriveStep):
    """Remove a drive's directory once it is empty."""

    CAPABILITY = "shares"

    drive: str
    path: str

    def name(self) -> str:
        return "remove-dir"

    def as_dict(self) -> Dict[str, object]:
        return {"action": "remove-dir", "path": self.path}


@dataclass(frozen=True)
class SaveShares(Action):
    """Record the wanted drives and the items acted on."""

    CAPABILITY = "shares"

    drives: Tuple[ShareSpec, ...] = field(repr=False)
    seen: Tuple[Tuple[str, str], ...]

    def name(self) -> str:
        return "save-shares"

    def describe(self) -> str:
        return "save the share state"

    def as_dict(self) -> Dict[str, object]:
        return {"action": "save-shares", "drives": [d.mountpoint for d in self.drives]}


@dataclass(frozen=True)
class Retry:
    """A drive whose mount failed: when to try again and why it failed."""

    failures: int
    next_at: float
    error: str


@dataclass(frozen=True)
class SharePlan(PlanPart):
    """The shares' plan part, with each drive's state and whether one waits for the network."""

    # drive -> "mounted", "mounting", "waiting: <reason>" or "failed: <reason>":
    # no countdown (pool 1 is rewritten only when a state really changes).
    drive_states: Mapping[str, str] = field(default_factory=dict)
    waiting_for_network: bool = False
    suspect: Mapping[str, float] = field(default_factory=dict)  # drive -> since when its probes fail


def _unmount_steps(mp: str, alias: str, entries: Tuple[MountEntry, ...], source: str, remove: bool,
                   lazy: bool = False) -> List[Action]:
    """Every mount of the share at the alias, then at the mount point (each
    umount removes the top one), then the directories."""
    steps: List[Action] = []
    if alias != mp:
        steps.extend(Unmount(mp, alias, lazy) for _ in stacked(entries, alias, None))
    steps.extend(Unmount(mp, mp, lazy) for _ in stacked(entries, mp, source))
    if remove:
        if alias != mp:
            steps.append(RemoveDir(mp, alias))
        steps.append(RemoveDir(mp, mp))
    return steps


def plan_shares(
    items: Tuple[kvp.Item, ...],
    state: SharesState,
    entries: Tuple[MountEntry, ...],
    host: str,
    limits: Limits,
    network_ok: Optional[bool],
    now: float,
    retries: Mapping[str, Retry],
    state_problem: Optional[Tuple[str, str]] = None,
    dead: AbstractSet[str] = frozenset(),
) -> SharePlan:
    """Pure. network_ok None means unknown (not needed: nothing to mount).
    state_problem: (state file, why) when the saved state was unreadable
    (the plan starts from the pool: a warning). dead: mounted drives whose
    health probes failed for too long (shares/health.py): remounted."""
    actions: List[Action] = []
    problems: List[Problem] = []
    if state_problem is not None:
        problems.append(Problem("shares", state_problem[0], state_problem[1], "warning"))
    drives: Dict[str, ShareSpec] = {d.mountpoint: d for d in state.drives}
    # An item the host deleted is forgotten, so that the same value written
    # again later is acted on again (a value rewritten unchanged cannot be
    # told from the old one: the daemon's file shows no difference).
    present = {key for key, _ in items}
    seen = {key: value for key, value in state.seen if key in present}
    states: Dict[str, str] = {}
    # A cifsumount the host deleted since the last pass: a re-share (README:
    # cifsmount/cifsumount ordering), so the cifsmount present counts as new.
    reshared = any(key == CIFSUMOUNT for key, _ in state.seen) and CIFSUMOUNT not in present
    # seen is kept in file order. hv_kvp_daemon appends only a key it does
    # not hold and shifts later records up on a DELETE, so an item now
    # behind the other, where it was in front, was deleted and written again
    # (perhaps with the same value, perhaps between two passes): it is new.
    order_before = [key for key, _ in state.seen if key in (CIFSMOUNT, CIFSUMOUNT)]
    order = list(dict.fromkeys(key for key, _ in items if key in (CIFSMOUNT, CIFSUMOUNT)))
    rewritten = {order[-1]} if len(order) == 2 and len(order_before) == 2 and order_before != order else set()
    # cifsumount before cifsmount, whatever the file order (the daemon
    # rewrites a record in place: file order is not write order); both new
    # in one pass: the cifsmount wins (the host's re-share ends with it).
    ordered = [i for i in items if i[0] == CIFSUMOUNT] + [i for i in items if i[0] == CIFSMOUNT]

    for key, value in ordered:
        fresh = seen.get(key) != digest(value) or (key == CIFSMOUNT and reshared) or key in rewritten
        seen[key] = digest(value)
        try:
            if key == CIFSMOUNT:
                spec = parse_mount(value, limits)
                for other in drives.values():
                    if other.mountpoint != spec.mountpoint and {other.mountpoint, other.alias} & {
                        spec.mountpoint, spec.alias
                    }:
                        raise ShareError(f"{spec.mountpoint} or {spec.alias} is used by drive {other.mountpoint}")
                if fresh:
                    drives[spec.mountpoint] = spec
            else:
                mp, _alias = parse_umount(value, limits)
                if fresh:
                    drives.pop(mp, None)
        except ShareError as exc:
            problems.append(Problem("shares", key, f"{key} rejected: {exc}; nothing was mounted or unmounted"))

    wanted = tuple(drives[k] for k in sorted(drives))
    new_seen = tuple((key, seen[key]) for key in dict.fromkeys(key for key, _ in items) if key in seen)
    if wanted != state.drives or new_seen != state.seen:
        actions.append(SaveShares(wanted, new_seen))

    mounted = dict(state.mounted)
    auth_failed = dict(state.auth_failed)
    waiting_for_network = False
    source_of = {spec.mountpoint: f"//{host}/{spec.share}" for spec in wanted}

    before = {d.mountpoint: d for d in state.drives}
    for spec in wanted:
        mp, alias, fp = spec.mountpoint, spec.alias, spec.fingerprint()
        entry = top_mount(entries, mp)
        ours = entry is not None and entry.fstype == "cifs" and entry.source == source_of[mp]
        source = source_of[mp]
        alias_stack = stacked(entries, alias, None) if alias != mp else []
        # A new alias for the same drive: the old alias's binds of this share
        # go (after the new alias is bound), and its directory if the agent
        # made it.
        old = before.get(mp)
        gone = old.alias if old is not None and old.alias not in (alias, mp) else None
        cleanup: List[Action] = []
        if gone is not None:
            cleanup.extend(Unmount(mp, gone) for _ in stacked(entries, gone, source))
            if gone in state.made:
                cleanup.append(RemoveDir(mp, gone))
        if ours and mounted.get(mp) == fp and mp not in dead:
            assert entry is not None
            if alias != mp and (not alias_stack or alias_stack[-1].dev != entry.dev):
                # Missing, or a stale bind of an earlier mount: unmount what is there, bind again.
                actions.extend(Unmount(mp, alias) for _ in alias_stack)
                actions.append(BindAlias(mp, mp, alias))
            actions.extend(cleanup)
            states[mp] = "mounted"
            continue
        if auth_failed.get(mp) == fp:
            actions.extend(cleanup)
            states[mp] = AUTH_STATE
            problems.append(Problem("shares", mp, f"{mp}: {refused_text()}"))
            continue
        if network_ok is False:
            actions.extend(cleanup)
            waiting_for_network = True
            states[mp] = f"waiting: {no_route_text(host)}"
            problems.append(Problem("shares", mp, f"{mp}: {no_route_text(host)}", "waiting"))
            continue
        retry = retries.get(mp)
        if retry is not None and retry.next_at > now:
            actions.extend(cleanup)
            # The time of the next try is in status.json (absolute); pool 1
            # gets only the reason, so it is not rewritten at every retry.
            states[mp] = f"waiting: {retry.error}" if retry.error else "waiting to retry"
            problems.append(Problem("shares", mp, f"{mp}: {retry.error or 'mount failed'}; retrying"))
            continue
        # Mounted with other credentials or options (remount), or stale
        # mounts left at the mount point or the alias: unmount them first.
        actions.extend(_unmount_steps(mp, alias, entries, source, remove=False, lazy=mp in dead))
        actions.append(MountShare(mp, spec, host))
        if alias != mp:
            actions.append(BindAlias(mp, mp, alias))
        actions.extend(cleanup)
        states[mp] = "mounting"

    wanted_mps = {spec.mountpoint for spec in wanted}
    for mp in sorted(mounted):
        if mp in wanted_mps:
            continue
        old = next((d for d in state.drives if d.mountpoint == mp), None)
        share = old.share if old else mp.lstrip("/")
        actions.extend(_unmount_steps(mp, old.alias if old else mp, entries, f"//{host}/{share}", remove=True))
    note = Note(", ".join(f"{d} {states[d]}" for d in sorted(states)) or "no drive shared", active=bool(wanted))
    return SharePlan(tuple(actions), tuple(problems), {"shares": note}, states, waiting_for_network)


# A drive whose credentials the server refused: the same words right after the
# failed mount and at every later pass (pool 1 is rewritten only on change).
AUTH_STATE = f"failed: {refused_text()} (mount error(13))"


def drive_states_after(
    planned: Mapping[str, str], outcomes: Iterable[Outcome], retried: AbstractSet[str]
) -> Dict[str, str]:
    """Each drive's state after apply: its first real error (never a later
    step's skip), as "waiting: ..." when a retry is due (the same words the
    plan gives while it waits, so pool 1 is not rewritten at each retry) or
    "failed: ..." when it is not retried; else what the plan said, with a
    "mounting" that went through as "mounted"."""
    first_error: Dict[str, str] = {}
    refused = set()
    for o in outcomes:
        drive = getattr(o.action, "drive", None)
        if isinstance(drive, str) and not o.ok and not o.skipped and drive not in first_error:
            first_error[drive] = first_line(o.error) or "failed"
            if o.cause == REFUSED:
                refused.add(drive)
    states = {}
    for drive, state in planned.items():
        if drive in refused:
            states[drive] = AUTH_STATE
        elif drive in first_error:
            states[drive] = ("waiting: " if drive in retried else "failed: ") + first_error[drive]
        else:
            states[drive] = "mounted" if state == "mounting" else state
    return states
