"""Dataclasses made at their first use, not at import.

`dataclasses.dataclass` compiles __init__, __repr__, __eq__, __hash__,
__setattr__ and __delattr__ for every class, one exec apiece (about 4 M
instructions a class): the agent's classes cost 165 M instructions, 40 % of
every start (docs/benchmarks.md), and a pass with nothing to do creates
fewer than half of them. `@dataclass(...)` from here marks the class and
leaves it as written; `dataclasses.dataclass(...)` runs on it (in place: the
same class object), its bases first, the first time the class is used:

- an instance is created;
- something asks for what `dataclass` puts on a class: its fields
  (`dataclasses.fields`, `is_dataclass`, a dataclass deriving from it), its
  `__init__`, `__repr__`, `__eq__`, `__hash__`, `__setattr__`,
  `__delattr__`, `__match_args__`, ordering methods, or a `field(...)`
  attribute (which reads as `dataclass` leaves it, never as the Field).

Each of those names holds a placeholder until then, put only where the
class body left the name unset, and taken out again before `dataclass`
runs, which sees the class exactly as written. Made at once instead: a
class without a docstring (`dataclass` writes one from the signature, with
inspect), one that defines its own `__init__` (nothing would mark its first
instance) and one asking for slots (`dataclass` returns a new class then).

What dataclass would refuse at the definition (a non-frozen class deriving
from a frozen one, a field without a default after one with) it refuses at
the first use: tests/unit/test_record.py makes every class of the agent.

Threads: making is serialised by a lock, but an instance created in another
thread while its own class is being made would meet object.__init__ (its
placeholder is gone, dataclass's not yet set). The agent creates these
classes' instances in its main thread; the live-reload threads' own
classes are made as they are used, which is from one thread each.

For type checkers this is `dataclasses.dataclass` itself."""

import dataclasses
import threading
from typing import TYPE_CHECKING, Any, Dict, Set, Tuple

if TYPE_CHECKING:
    from dataclasses import dataclass as dataclass
else:

    def dataclass(cls=None, **kwargs):
        """dataclasses.dataclass, run when the class is first used."""
        def wrap(c):
            return _defer(c, kwargs)

        return wrap if cls is None else wrap(cls)


_ABSENT = object()
# What dataclass() may set on a class.
_MADE = ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__", "__lt__", "__le__", "__gt__",
         "__ge__", "__match_args__", "__replace__", "__dataclass_fields__", "__dataclass_params__")
_lock = threading.RLock()
# class -> (dataclass's arguments, {name: what its placeholder hides, _ABSENT for nothing})
_pending: Dict[type, Tuple[Dict[str, Any], Dict[str, Any]]] = {}
_making: Set[type] = set()


class _Placeholder:
    """Stands for what dataclass() will put at a name: reading it makes the
    classes first, then reads the name again."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        # Found in owner's classes; or in obj's when a class is passed as the
        # instance (inspect.signature does, from Python 3.13).
        mro = (owner if owner is not None else type(obj)).__mro__
        if isinstance(obj, type) and not any(c.__dict__.get(self.name) is self for c in mro):
            mro = obj.__mro__
        # The class holding this placeholder: super() may have begun the lookup there.
        held = next((i for i, c in enumerate(mro) if c.__dict__.get(self.name) is self), 0)
        _ready(mro[0])
        for c in mro[held:]:  # the lookup again, now that the classes are made
            if self.name in c.__dict__:
                value = c.__dict__[self.name]
                get = getattr(type(value), "__get__", None)
                return value if get is None else get(value, obj, owner)
        if obj is None:
            raise AttributeError(f"type object {owner.__name__!r} has no attribute {self.name!r}")
        raise AttributeError(f"{type(obj).__name__!r} object has no attribute {self.name!r}")


_PLACEHOLDERS: Dict[str, _Placeholder] = {}


def _placeholder(name: str) -> _Placeholder:
    p = _PLACEHOLDERS.get(name)
    if p is None:
        p = _PLACEHOLDERS[name] = _Placeholder(name)
    return p


def _ready(cls: type) -> None:
    """Make every pending class cls derives from, bases first."""
    with _lock:
        for c in reversed(cls.__mro__):
            if c in _making:  # only this thread can be making it: it holds the lock
                raise RuntimeError(f"{c.__qualname__} used while its dataclass is being made")
            if c in _pending:
                _make(c)


def _make(cls: type) -> None:
    kwargs, hidden = _pending[cls]
    _making.add(cls)
    try:
        for name, value in hidden.items():
            if value is _ABSENT:
                delattr(cls, name)
            else:
                setattr(cls, name, value)
        dataclasses.dataclass(**kwargs)(cls)
    finally:
        _making.discard(cls)
        del _pending[cls]


def _defer(cls: type, kwargs: Dict[str, Any]) -> type:
    own = cls.__dict__
    if cls.__doc__ is None or kwargs.get("slots") or "__init__" in own:
        return dataclasses.dataclass(**kwargs)(cls)
    hidden = {name: _ABSENT for name in _MADE if name not in own}
    hidden.update((name, value) for name, value in own.items() if isinstance(value, dataclasses.Field))
    with _lock:
        _pending[cls] = (kwargs, hidden)
        for name in hidden:
            setattr(cls, name, _placeholder(name))
    return cls


def pending() -> Set[str]:
    """The classes not made yet, as module.qualname (the start-up test)."""
    with _lock:
        return {f"{c.__module__}.{c.__qualname__}" for c in _pending}
