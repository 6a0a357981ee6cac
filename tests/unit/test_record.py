"""agent/record.py: a class made at its first use behaves exactly as the
same class under dataclasses.dataclass, whatever is asked of it first."""

import copy
import dataclasses
import inspect
import pickle
import threading
from dataclasses import FrozenInstanceError, field
from typing import ClassVar, List, Mapping, Tuple

import pytest

from agent import record


def define(deco):
    """The same classes, under the decorator given."""

    @deco(frozen=True)
    class Base:
        """A frozen base."""

        KIND: ClassVar[str] = "base"
        a: int
        b: str = "x"

        def total(self):
            return self.a + len(self.b)

    @deco(frozen=True)
    class Child(Base):
        """A frozen child with every kind of default."""

        c: Tuple[str, ...] = field(default=())
        d: List[int] = field(default_factory=list, repr=False, compare=False)
        e: Mapping[str, int] = field(default_factory=dict)
        secret: str = field(default="s", repr=False)

    @deco
    class Mutable:
        """Plain @dataclass: eq, so no hash."""

        n: int = 0
        items: List[str] = field(default_factory=list)

    @deco(order=True, unsafe_hash=True)
    class Ordered:
        """order and unsafe_hash."""

        x: int
        y: int = 0

    @deco(frozen=True)
    class Checked:
        """__post_init__, and a body's own __eq__ and __repr__."""

        v: int

        def __post_init__(self):
            if self.v < 0:
                raise ValueError("negative")

        def __repr__(self):
            return f"<{self.v}>"

        def __eq__(self, other):
            return isinstance(other, Checked) and other.v % 10 == self.v % 10

        __hash__ = None

    return Base, Child, Mutable, Ordered, Checked


def both():
    return define(dataclasses.dataclass), define(record.dataclass)


def made(cls):
    return cls not in record._pending


def test_a_record_is_left_as_written_until_used():
    Base, Child, Mutable, Ordered, Checked = define(record.dataclass)
    assert not any(made(c) for c in (Base, Child, Mutable, Ordered, Checked))
    Child(1)
    assert made(Child) and made(Base)  # its base first
    assert not any(made(c) for c in (Mutable, Ordered, Checked))


def test_instances_behave_as_the_dataclass_s():
    real, lazy = both()
    for (R, L) in zip(real, lazy):
        assert R.__qualname__ == L.__qualname__
    rb, rc, rm, ro, rk = real
    lb, lc, lm, lo, lk = lazy

    def same(make):
        r, z = make(real), make(lazy)
        assert repr(r) == repr(z)
        return r, z

    r, z = same(lambda k: k[1](1, "yy", ("p",), [3], {"k": 1}))
    assert z == lc(1, "yy", ("p",), [9], {"k": 1})  # d: compare=False
    assert z != lc(2, "yy", ("p",), [3], {"k": 1})
    assert z != lb(1, "yy")  # another class
    with pytest.raises(TypeError):  # e is a dict: unhashable
        hash(r)
    with pytest.raises(TypeError):
        hash(z)
    assert "secret" not in repr(z) and "d=" not in repr(z)
    assert z.total() == 3 and z.KIND == "base"

    rb1, lb1 = same(lambda k: k[0](5))
    assert hash(lb1) == hash(rb1) == hash((5, "x"))
    assert lb1 == lb(5, "x") and {lb1: 1}[lb(5)] == 1
    for obj in (rb1, lb1, z):
        with pytest.raises(FrozenInstanceError, match="cannot assign to field 'a'"):
            obj.a = 2
        with pytest.raises(FrozenInstanceError):
            del obj.a
        with pytest.raises(FrozenInstanceError):
            obj.other = 1

    rm1, lm1 = same(lambda k: k[2]())
    assert lm1.items is not lm().items  # default_factory: one list each
    for obj in (rm1, lm1):
        obj.n = 4
        obj.items.append("a")
    assert lm1 == lm(4, ["a"]) and repr(lm1) == repr(rm1)
    assert lm.__hash__ is None and rm.__hash__ is None
    with pytest.raises(TypeError):
        hash(lm1)

    assert sorted([lo(2), lo(1, 5), lo(1, 2)]) == [lo(1, 2), lo(1, 5), lo(2)]
    assert hash(lo(1, 2)) == hash(ro(1, 2)) == hash((1, 2))
    assert lo(1) < lo(2) and lo(2) >= lo(2) and not (lo(3) <= lo(2))

    assert lk(3) == lk(13) and repr(lk(3)) == "<3>" and hash(lk(3)) == hash(rk(3)) == hash((3,))
    with pytest.raises(ValueError, match="negative"):
        lk(-1)
    with pytest.raises(TypeError):
        lb()  # a is required
    with pytest.raises(TypeError):
        lb(1, "x", 3)


def test_the_dataclass_functions_agree():
    real, lazy = both()
    rc, lc = real[1], lazy[1]
    r, z = rc(1, e={"k": 2}), lc(1, e={"k": 2})
    assert dataclasses.asdict(z) == dataclasses.asdict(r) == {"a": 1, "b": "x", "c": (), "d": [], "e": {"k": 2},
                                                             "secret": "s"}
    assert dataclasses.astuple(z) == dataclasses.astuple(r)
    z2 = dataclasses.replace(z, b="q")
    assert type(z2) is lc and z2.b == "q" and z2.a == 1 and z.b == "x"
    assert [(f.name, f.type, f.default, f.repr, f.compare) for f in dataclasses.fields(z)] == \
        [(f.name, f.type, f.default, f.repr, f.compare) for f in dataclasses.fields(r)]
    assert copy.copy(z) == z and copy.deepcopy(z) == z


def test_the_class_reads_as_the_dataclass_s_before_its_first_instance():
    real, lazy = both()
    for R, L in zip(real, lazy):
        assert not made(L)
        assert dataclasses.is_dataclass(L)  # asking makes it
        assert made(L)
    real, lazy = both()
    for R, L in zip(real, lazy):
        assert str(inspect.signature(L)) == str(inspect.signature(R))
    real, lazy = both()
    for R, L in zip(real, lazy):
        assert [f.name for f in dataclasses.fields(L)] == [f.name for f in dataclasses.fields(R)]
    real, lazy = both()
    for R, L in zip(real, lazy):
        assert getattr(L, "__match_args__", None) == getattr(R, "__match_args__", None)  # 3.10 on
    real, lazy = both()
    for R, L in zip(real, lazy):
        assert hasattr(L, "__replace__") == hasattr(R, "__replace__")  # 3.13 on
    real, lazy = both()
    for R, L in zip(real, lazy):
        assert repr(L.__dataclass_params__) == repr(R.__dataclass_params__)
    # A field(...) default never shows as the Field: as dataclass leaves the class.
    real, lazy = both()
    rc, lc = real[1], lazy[1]
    assert lc.c == () == rc.c and lc.secret == "s" and lc.b == "x"
    with pytest.raises(AttributeError):
        lc.d  # noqa: B018 - default_factory: dataclass deletes the attribute
    with pytest.raises(AttributeError):
        rc.d  # noqa: B018
    _, lazy = both()
    assert lazy[0].b == "x" and lazy[0].KIND == "base" and not made(lazy[0])  # a plain default is just there


def test_a_made_class_holds_what_the_dataclass_holds_and_no_placeholder():
    real, lazy = both()
    for R, L in zip(real, lazy):
        dataclasses.fields(L)
        assert set(vars(L)) == set(vars(R)), L
        for name, value in vars(R).items():
            if name not in ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__", "__lt__",
                            "__le__", "__gt__", "__ge__", "__dataclass_fields__", "__dataclass_params__",
                            "__module__", "__qualname__", "__annotations__", "total", "__post_init__", "__dict__",
                            "__weakref__"):
                assert vars(L)[name] == value, name
        assert L.__doc__ == R.__doc__
        assert not any(type(v).__name__ == "_Placeholder" for v in vars(L).values())
        for name in ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__"):
            r, z = getattr(R, name), getattr(L, name)
            assert (r is None) == (z is None) and type(r) is type(z), name
            if callable(r) and hasattr(r, "__code__"):
                assert r.__code__.co_code == z.__code__.co_code, name


def test_a_dataclass_deriving_from_a_record_before_it_is_made_sees_its_fields():
    _, lazy = both()
    Base = lazy[0]

    @dataclasses.dataclass(frozen=True)
    class Derived(Base):
        z: int = 0

    assert [f.name for f in dataclasses.fields(Derived)] == ["a", "b", "z"]
    assert Derived(1, "y", 2) == Derived(1, "y", 2) and Derived(1).b == "x"
    with pytest.raises(TypeError, match="non-frozen"):
        @dataclasses.dataclass
        class Thawed(lazy[1]):
            pass

    class Plain(lazy[2]):
        """A plain subclass: made through its base."""

    p = Plain(3)
    assert p == Plain(3) and p.n == 3 and p.items == []

    _, lazy = both()

    class Own(lazy[0]):
        """Its own __init__, reaching the base's through super() before the base is made."""

        def __init__(self, a):
            super().__init__(a, "own")

    assert Own(2).b == "own" and repr(Own(2)).endswith("Own(a=2, b='own')")
    assert Own(2) != lazy[0](2, "own") and Own(2).total() == 5


def message(get):
    try:
        get()
    except AttributeError as e:
        return str(e)
    raise AssertionError("no AttributeError")


def test_a_missing_attribute_is_said_as_python_says_it():
    real, lazy = both()
    assert message(lambda: lazy[1].d) == message(lambda: real[1].d) == "type object 'Child' has no attribute 'd'"
    real, lazy = both()
    assert message(lambda: lazy[0].__match_args__.x) == message(lambda: real[0].__match_args__.x)


def test_a_class_without_a_docstring_is_made_at_once():
    @record.dataclass(frozen=True)
    class Bare:
        a: int

    @dataclasses.dataclass(frozen=True)
    class Real:
        a: int

    assert made(Bare) and Bare.__doc__ == Real.__doc__.replace("Real", "Bare") == "Bare(a: int)"


def test_pickled_records_round_trip():
    r = Picklable(1, ("a",))
    assert pickle.loads(pickle.dumps(r)) == r


def test_threads_first_using_records_at_once_each_get_a_made_class():
    classes = [record.dataclass(frozen=True)(type(f"T{i}", (), {"__doc__": "t", "__annotations__": {"v": int},
                                                                "__module__": __name__, "__qualname__": f"T{i}"}))
               for i in range(8)]
    barrier = threading.Barrier(len(classes))
    errors = []

    def use(cls):
        barrier.wait()
        try:
            assert cls(1) == cls(1) and repr(cls(2)) == f"{cls.__qualname__}(v=2)"
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=use, args=(c,)) for c in classes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and all(made(c) for c in classes)


@record.dataclass(frozen=True)
class Picklable:
    """At module level, so that pickle finds it."""

    n: int
    t: Tuple[str, ...] = ()


def test_every_record_of_the_agent_makes():
    """A mistake dataclass reports at definition (a non-frozen class deriving
    from a frozen one, a field without a default after one with) is
    reported at the class's first use: here, for every class of the agent."""
    import importlib
    import pkgutil

    import agent

    for info in pkgutil.walk_packages(agent.__path__, "agent."):
        if not info.name.endswith(".__main__"):
            importlib.import_module(info.name)
    for cls in list(record._pending):
        record._ready(cls)
        assert dataclasses.is_dataclass(cls) and made(cls)
    assert not record.pending()
