"""The base of every planned action."""

from dataclasses import asdict, dataclass
from typing import Dict


@dataclass(frozen=True)
class Action:
    """A step the plan asks for; `name()` is its "action" in plan --json."""

    def name(self) -> str:
        raise NotImplementedError

    def as_dict(self) -> Dict[str, object]:
        d: Dict[str, object] = {"action": self.name()}
        d.update(asdict(self))
        return d
