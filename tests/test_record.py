"""depotdelivery._record: @record behaves as @dataclass(frozen=True, slots=True) and NamedTuple
as typing.NamedTuple for what the parsed records use (the cold path imports neither module)."""
from __future__ import annotations

import dataclasses
import pickle
import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery._record import NamedTuple, field, record, replace


@record(kw_only=True)
class Ours:
    a: int
    b: str = "x"
    c: tuple[int, ...] = field(default_factory=tuple)
    d: bytes = field(default=b"", compare=False, repr=False)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Theirs:
    a: int
    b: str = "x"
    c: tuple[int, ...] = dataclasses.field(default_factory=tuple)
    d: bytes = dataclasses.field(default=b"", compare=False, repr=False)


@record
class Positional:
    x: int
    y: int = 2


_VALUES = st.fixed_dictionaries({"a": st.integers()}, optional={"b": st.text(max_size=3), "c": st.tuples(st.integers()),
                                                                 "d": st.binary(max_size=3)})


@given(_VALUES, _VALUES)
def test_record_is_a_frozen_slotted_dataclass(one, two):
    ours, theirs = Ours(**one), Theirs(**one)
    assert repr(ours) == repr(theirs).replace("Theirs", "Ours")
    assert (ours == Ours(**two)) == (theirs == Theirs(**two))
    if ours == Ours(**two):
        assert hash(ours) == hash(Ours(**two))
    assert replace(ours, b="y") == Ours(**{**one, "b": "y"})
    assert pickle.loads(pickle.dumps(ours)) == ours
    with pytest.raises(AttributeError):
        ours.a = 1  # type: ignore[misc]
    assert not hasattr(ours, "__dict__")


def test_record_argument_errors_are_dataclass_like():
    with pytest.raises(TypeError):
        Ours(1)  # type: ignore[misc]  # kw_only
    with pytest.raises(TypeError, match="missing"):
        Ours()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected"):
        Ours(a=1, z=2)  # type: ignore[call-arg]
    assert Positional(1) == Positional(x=1, y=2) != Positional(1, 3)
    with pytest.raises(TypeError, match="multiple"):
        Positional(1, x=1)  # type: ignore[misc]


class OurTuple(NamedTuple):
    index: int  # type: ignore[assignment]  # shadows tuple.index, as clones.Rejection does
    name: str
    rest: tuple[str, ...] = ()


class TheirTuple(typing.NamedTuple):
    index: int  # type: ignore[assignment]
    name: str
    rest: tuple[str, ...] = ()


@given(st.integers(), st.text(max_size=4), st.none() | st.tuples(st.text(max_size=2)))
def test_named_tuple_is_typing_named_tuple(i, name, rest):
    args = (i, name) if rest is None else (i, name, rest)
    ours, theirs = OurTuple(*args), TheirTuple(*args)
    assert tuple(ours) == tuple(theirs) and ours == theirs
    assert repr(ours) == repr(theirs).replace("TheirTuple", "OurTuple")
    assert (ours.index, ours.name, ours.rest) == (theirs.index, theirs.name, theirs.rest)
    assert ours._asdict() == theirs._asdict() and ours._fields == theirs._fields
    assert ours._replace(name="z") == theirs._replace(name="z")
    assert OurTuple(index=i, name=name) == TheirTuple(index=i, name=name)
    assert pickle.loads(pickle.dumps(ours)) == ours
