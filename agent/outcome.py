"""One model of outcomes: what a pass planned, what went wrong, what it did.

Every action and every problem belongs to a capability (pool, shares,
database, docker_config, network, live_reload). A capability's state is
derived from its own actions and problems only (capability_state), never by
matching message text after the fact. status.json, `moby-agent status`, the
pool 1 items and doctor all read this model.
"""

from dataclasses import asdict, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Dict, Iterable, List, Mapping, Optional, Tuple

from agent.record import dataclass

if TYPE_CHECKING:
    from agent.agentconfig import AgentConfig

# Capabilities in the order status shows them.
CAPABILITIES = ("pool", "shares", "database", "docker_config", "network", "live_reload")
STATES = ("ok", "waiting", "warning", "error", "inactive")
# A problem's level, worst first; the capability takes the worst one's state.
LEVELS = ("error", "waiting", "warning")


@dataclass(frozen=True)
class Action:
    """A step a plan asks for. Its capability executes it (EXECUTORS in the
    capability's apply module); `name()` is its "action" in plan --json."""

    CAPABILITY: ClassVar[str] = ""
    # Changes the real system (a mount, the network, the kernel): never done
    # under --root, where the agent works on a fixture tree.
    SYSTEM: ClassVar[bool] = False

    def name(self) -> str:
        raise NotImplementedError

    def capability(self) -> str:
        return self.CAPABILITY

    def subject(self) -> str:
        """What the action is about: a drive, a path, an address."""
        for attr in ("drive", "path", "target", "address"):
            value = getattr(self, attr, None)
            if isinstance(value, str):
                return value
        return ""

    def describe(self) -> str:
        """A done action, for a capability's last_action."""
        return f"{self.name()} {self.subject()}".strip()

    def chain(self) -> Optional[str]:
        """The chain of dependent steps the action belongs to (a drive's
        unmount, mount and bind), or None: once one step of a chain fails,
        the hub skips its later steps."""
        return None

    def deadline(self, conf: "AgentConfig") -> float:
        """The longest it may legitimately take, in seconds, under the
        agent's config: its command's own timeout plus a margin. The
        healthcheck answers "alive" while an action is within it."""
        return 45.0  # umount 30 s, 9p mount 30 s, bind and sysctl 10 s

    def as_dict(self) -> Dict[str, object]:
        d: Dict[str, object] = {"action": self.name()}
        d.update(asdict(self))
        return d


@dataclass(frozen=True)
class Problem:
    """Something a capability cannot do, with what it is about. str() is the
    text, which never holds a secret."""

    capability: str
    subject: str
    text: str
    level: str = "error"

    def __post_init__(self) -> None:
        assert self.capability in CAPABILITIES, self.capability
        assert self.level in LEVELS, self.level

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Note:
    """What a capability is doing, as its plan sees it; inactive when it has
    nothing to handle (no database label, no share, DHCP)."""

    text: str
    active: bool = True


@dataclass(frozen=True)
class PlanPart:
    """One capability's share of a plan."""

    actions: Tuple[Action, ...] = ()
    problems: Tuple[Problem, ...] = ()
    notes: Mapping[str, Note] = field(default_factory=dict)


class ActionFailed(Exception):
    """An executor's failure with a typed cause (e.g. the server refused the
    credentials): the outcome carries the cause, so that whatever reads it
    (the retry memory, the drive's state) never re-reads the message."""

    def __init__(self, message: str, cause: Optional[str] = None) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class Outcome:
    """What applying one action gave: ok, or its error (and its typed cause)."""

    action: Action
    ok: bool
    error: Optional[str] = None
    # Not tried because an earlier step for the same drive failed: the state
    # shows that first error, never this.
    skipped: bool = False
    # Why it failed, as the executor established it (ActionFailed.cause).
    cause: Optional[str] = None


def capability(state: str, last_action: Optional[str] = None, last_error: Optional[str] = None) -> Dict[str, Any]:
    assert state in STATES, state
    return {"state": state, "last_action": last_action, "last_error": last_error}


def capability_state(
    name: str, note: Note, problems: Iterable[Problem], outcomes: Iterable[Outcome]
) -> Dict[str, Any]:
    """A capability's state from its own outcomes and problems: a failed
    action is an error; else the worst problem (error, waiting, warning);
    else ok, or inactive when it has nothing to handle."""
    mine = [o for o in outcomes if o.action.capability() == name]
    done = [o.action.describe() for o in mine if o.ok]
    text = note.text + ("; did " + ", ".join(done) if done else "")
    failed = next((o for o in mine if not o.ok and not o.skipped), None)
    if failed is not None:
        return capability("error", text, failed.error)
    own = [p for p in problems if p.capability == name]
    for level in LEVELS:
        worst = next((p for p in own if p.level == level), None)
        if worst is not None:
            return capability(level, text, worst.text)
    return capability("ok" if note.active or done else "inactive", text)


def first_line(text: Optional[str]) -> str:
    """The first non-empty line: mount.cifs's `mount error(13): ...`, not its
    advice to read the manual."""
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def merge_parts(parts: Iterable[PlanPart]) -> Tuple[Tuple[Action, ...], Tuple[Problem, ...], Dict[str, Note]]:
    actions: List[Action] = []
    problems: List[Problem] = []
    notes: Dict[str, Note] = {}
    for part in parts:
        actions.extend(part.actions)
        problems.extend(part.problems)
        notes.update(part.notes)
    return tuple(actions), tuple(problems), notes


Executor = Callable[[Any, Any], None]
# A capability's hook after apply: (context, its plan part, all outcomes).
AfterApply = Callable[[Any, PlanPart, List[Outcome]], None]
