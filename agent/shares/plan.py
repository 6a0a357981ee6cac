"""The mount table and the share plan: what to mount, bind and unmount.

Pure: parse_mountinfo() reads /proc/self/mountinfo text; plan_shares() turns
the host pool's items, the agent's share state and the mount table into
actions. The executor lives in reconcile.apply; the OS calls in system.py.
"""

import json
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

from agent import kvp
from agent.outcome import Action
from agent.shares.items import CIFSMOUNT, CIFSUMOUNT, Limits, ShareError, ShareSpec, parse_mount, parse_umount


@dataclass(frozen=True)
class MountEntry:
    mount_id: int
    parent: int
    dev: str
    root: str
    target: str
    fstype: str
    source: str
    options: str


def _unescape(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        octal = text[i + 1 : i + 4]
        if text[i] == "\\" and len(octal) == 3 and octal.isdigit():
            out.append(chr(int(octal, 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> Tuple[MountEntry, ...]:
    """Entries in mount order; malformed lines are skipped. Never raises."""
    entries = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
            entries.append(
                MountEntry(
                    mount_id=int(fields[0]),
                    parent=int(fields[1]),
                    dev=fields[2],
                    root=_unescape(fields[3]),
                    target=_unescape(fields[4]),
                    fstype=fields[sep + 1],
                    source=_unescape(fields[sep + 2]),
                    options=fields[sep + 3] if len(fields) > sep + 3 else "",
                )
            )
        except (ValueError, IndexError):
            continue
    return tuple(entries)


def top_mount(entries: Tuple[MountEntry, ...], target: str) -> Optional[MountEntry]:
    """The mount visible at `target` (the last one mounted there)."""
    found = None
    for entry in entries:
        if entry.target == target:
            found = entry
    return found


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

    def to_json(self) -> bytes:
        doc = asdict(self)
        return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> "SharesState":
        """Raises ValueError on anything but a state this agent wrote."""
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        drives = tuple(
            ShareSpec(d["mountpoint"], d["alias"], d["username"], d["password"], d.get("domain"), tuple(d["options"]))
            for d in doc.get("drives", [])
        )
        pairs = {k: tuple((str(a), str(b)) for a, b in doc.get(k, [])) for k in ("mounted", "seen", "auth_failed")}
        return cls(drives, pairs["mounted"], pairs["seen"], pairs["auth_failed"])


# ---- actions ---------------------------------------------------------------


@dataclass(frozen=True)
class MountShare(Action):
    drive: str
    spec: ShareSpec = field(repr=False)
    host: str = ""

    def name(self) -> str:
        return "mount"

    @property
    def source(self) -> str:
        return f"//{self.host}/{self.spec.share}"

    def as_dict(self) -> Dict[str, object]:
        return {"action": "mount", "source": self.source, "target": self.spec.mountpoint, "fstype": "cifs",
                "options": self.spec.shown_options()}


@dataclass(frozen=True)
class BindAlias(Action):
    drive: str
    source: str
    target: str

    def name(self) -> str:
        return "bind"

    def as_dict(self) -> Dict[str, object]:
        return {"action": "bind", "source": self.source, "target": self.target}


@dataclass(frozen=True)
class Unmount(Action):
    drive: str
    target: str

    def name(self) -> str:
        return "unmount"

    def as_dict(self) -> Dict[str, object]:
        return {"action": "unmount", "target": self.target}


@dataclass(frozen=True)
class RemoveDir(Action):
    drive: str
    path: str

    def name(self) -> str:
        return "remove-dir"

    def as_dict(self) -> Dict[str, object]:
        return {"action": "remove-dir", "path": self.path}


@dataclass(frozen=True)
class SaveShares(Action):
    """Record the wanted drives and the items acted on."""

    drives: Tuple[ShareSpec, ...] = field(repr=False)
    seen: Tuple[Tuple[str, str], ...]

    def name(self) -> str:
        return "save-shares"

    def as_dict(self) -> Dict[str, object]:
        return {"action": "save-shares", "drives": [d.mountpoint for d in self.drives]}


@dataclass(frozen=True)
class Retry:
    """A drive whose mount failed: when to try again and why it failed."""

    failures: int
    next_at: float
    error: str


@dataclass(frozen=True)
class SharePlan:
    actions: Tuple[Action, ...]
    problems: Tuple[str, ...]
    drive_states: Mapping[str, str]
    waiting_for_network: bool


def stacked(entries: Tuple[MountEntry, ...], target: str, source: Optional[str]) -> List[MountEntry]:
    """The mounts at `target`, bottom first: of the share `source`, or any
    (source None: at an alias, which only the agent mounts on, a bind made
    while the share was being unmounted behind its back can be a bind of the
    bare directory, and stacks up)."""
    return [e for e in entries if e.target == target and (source is None or (e.fstype == "cifs" and
                                                                                 e.source == source))]


def _unmount_steps(mp: str, alias: str, entries: Tuple[MountEntry, ...], source: str, remove: bool) -> List[Action]:
    """Every mount of the share at the alias, then at the mount point (each
    umount removes the top one), then the directories."""
    steps: List[Action] = []
    if alias != mp:
        steps.extend(Unmount(mp, alias) for _ in stacked(entries, alias, None))
    steps.extend(Unmount(mp, mp) for _ in stacked(entries, mp, source))
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
) -> SharePlan:
    """Pure. network_ok None means unknown (not needed: nothing to mount)."""
    actions: List[Action] = []
    problems: List[str] = []
    drives: Dict[str, ShareSpec] = {d.mountpoint: d for d in state.drives}
    # An item the host deleted is forgotten, so that the same value written
    # again later is acted on again (a value rewritten unchanged cannot be
    # told from the old one: the daemon's file shows no difference).
    present = {key for key, _ in items}
    seen = {key: value for key, value in state.seen if key in present}
    states: Dict[str, str] = {}

    for key, value in items:  # file order: a later record is a later write
        if key not in (CIFSMOUNT, CIFSUMOUNT):
            continue
        fresh = seen.get(key) != digest(value)
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
            problems.append(f"{key} rejected: {exc}; nothing was mounted or unmounted")

    wanted = tuple(drives[k] for k in sorted(drives))
    new_seen = tuple(sorted(seen.items()))
    if wanted != state.drives or new_seen != state.seen:
        actions.append(SaveShares(wanted, new_seen))

    mounted = dict(state.mounted)
    auth_failed = dict(state.auth_failed)
    waiting_for_network = False
    source_of = {spec.mountpoint: f"//{host}/{spec.share}" for spec in wanted}

    for spec in wanted:
        mp, alias, fp = spec.mountpoint, spec.alias, spec.fingerprint()
        entry = top_mount(entries, mp)
        ours = entry is not None and entry.fstype == "cifs" and entry.source == source_of[mp]
        source = source_of[mp]
        alias_stack = stacked(entries, alias, None) if alias != mp else []
        if ours and mounted.get(mp) == fp:
            assert entry is not None
            if alias != mp and (not alias_stack or alias_stack[-1].dev != entry.dev):
                # Missing, or a stale bind of an earlier mount: unmount what is there, bind again.
                actions.extend(Unmount(mp, alias) for _ in alias_stack)
                actions.append(BindAlias(mp, mp, alias))
            states[mp] = "mounted"
            continue
        if auth_failed.get(mp) == fp:
            states[mp] = "failed: the server refused the credentials; waiting for a new cifsmount item"
            continue
        if network_ok is False:
            waiting_for_network = True
            states[mp] = f"waiting: no route to {host}"
            continue
        retry = retries.get(mp)
        if retry is not None and retry.next_at > now:
            states[mp] = f"waiting: retry in {retry.next_at - now:.0f} s after: {retry.error}"
            continue
        # Mounted with other credentials or options (remount), or stale
        # mounts left at the mount point or the alias: unmount them first.
        actions.extend(_unmount_steps(mp, alias, entries, source, remove=False))
        actions.append(MountShare(mp, spec, host))
        if alias != mp:
            actions.append(BindAlias(mp, mp, alias))
        states[mp] = "mounting"

    wanted_mps = {spec.mountpoint for spec in wanted}
    for mp in sorted(mounted):
        if mp in wanted_mps:
            continue
        old = next((d for d in state.drives if d.mountpoint == mp), None)
        share = old.share if old else mp.lstrip("/")
        actions.extend(_unmount_steps(mp, old.alias if old else mp, entries, f"//{host}/{share}", remove=True))
    return SharePlan(tuple(actions), tuple(problems), states, waiting_for_network)
