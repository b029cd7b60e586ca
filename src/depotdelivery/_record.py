"""``@record``: frozen, slotted value classes like ``@dataclass(frozen=True, slots=True)``,
without importing :mod:`dataclasses` on a job's cold path.

``dataclasses`` imports ``inspect`` (with ``ast``, ``dis``, ``tokenize``, ``re``, ``enum``)
and compiles generated ``__init__``/``__eq__``/``__repr__`` source with ``exec`` for every
class: for the ~30 document classes a cold ``prepare()`` imports that was more than a bare
interpreter's start-up (benchmarks/bench_jobstart.py). ``@record`` reads the class's
annotations (postponed: plain strings) and gives it one shared ``__init__``, ``__eq__``,
``__hash__``, ``__repr__`` and pickling support that read a per-class field table.

What it supports is what the parsed records use: defaults, ``field(default_factory=...,
compare=False, repr=False, init=False)``, ``kw_only``, ``frozen=False``, ``__post_init__``,
and :func:`replace`. Type checkers see it as a dataclass transform (PEP 681).
tests/test_record.py checks it against ``dataclasses`` behaviour.
"""
from __future__ import annotations

TYPE_CHECKING = False  # no `typing` on a job's path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar, TypeVar, dataclass_transform

    T = TypeVar("T")
else:
    def dataclass_transform(**_: object) -> object:
        return lambda f: f

__all__ = ["field", "record", "replace"]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Any = _Missing()


class _Field:
    __slots__ = ("compare", "default", "factory", "init", "repr")

    def __init__(self, default: Any, factory: Callable[[], Any] | None, init: bool, repr: bool, compare: bool) -> None:
        self.default, self.factory, self.init, self.repr, self.compare = default, factory, init, repr, compare


def field(*, default: Any = _MISSING, default_factory: Callable[[], Any] | None = None, init: bool = True,
          repr: bool = True, compare: bool = True) -> Any:
    """A field with options, as :func:`dataclasses.field`."""
    return _Field(default, default_factory, init, repr, compare)


class _Spec:
    """A record class's field table."""

    __slots__ = ("compared", "fields", "frozen", "init_names", "kw_only", "post_init", "shown")

    def __init__(self, fields: list[tuple[str, _Field]], frozen: bool, kw_only: bool, post_init: bool) -> None:
        self.fields = fields
        self.init_names = tuple(n for n, f in fields if f.init)
        self.compared = tuple(n for n, f in fields if f.compare)
        self.shown = tuple(n for n, f in fields if f.repr)
        self.frozen, self.kw_only, self.post_init = frozen, kw_only, post_init


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    spec: _Spec = type(self)._record_spec
    name = type(self).__name__
    if args and (spec.kw_only or len(args) > len(spec.init_names)):
        raise TypeError(f"{name}() takes {0 if spec.kw_only else len(spec.init_names)} positional arguments "
                        f"but {len(args)} were given")
    setter = object.__setattr__
    given = len(args)
    for i, (fname, f) in enumerate(spec.fields):
        if not f.init:
            if f.factory is not None:
                setter(self, fname, f.factory())
            elif f.default is not _MISSING:
                setter(self, fname, f.default)
            continue
        if i < given:
            value = args[i]
            if fname in kwargs:
                raise TypeError(f"{name}() got multiple values for argument {fname!r}")
        elif fname in kwargs:
            value = kwargs.pop(fname)
        elif f.factory is not None:
            value = f.factory()
        elif f.default is not _MISSING:
            value = f.default
        else:
            raise TypeError(f"{name}() missing required argument {fname!r}")
        setter(self, fname, value)
    if kwargs:
        raise TypeError(f"{name}() got an unexpected keyword argument {next(iter(kwargs))!r}")
    if spec.post_init:
        self.__post_init__()


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise AttributeError(f"cannot assign to field {name!r} of frozen {type(self).__name__}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise AttributeError(f"cannot delete field {name!r} of frozen {type(self).__name__}")


def _key(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, n) for n in type(self)._record_spec.compared)


def _eq(self: Any, other: object) -> bool:
    if type(other) is not type(self):
        return NotImplemented
    return _key(self) == _key(other)


def _hash(self: Any) -> int:
    return hash(_key(self))


def _repr(self: Any) -> str:
    inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in type(self)._record_spec.shown)
    return f"{type(self).__qualname__}({inner})"


def _getstate(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, n) for n, _ in type(self)._record_spec.fields)


def _setstate(self: Any, state: tuple[Any, ...]) -> None:
    for (n, _), value in zip(type(self)._record_spec.fields, state):
        object.__setattr__(self, n, value)


def _build(cls: type, frozen: bool, kw_only: bool) -> type:
    ns = dict(cls.__dict__)
    fields: list[tuple[str, _Field]] = []
    for fname, annotation in ns.get("__annotations__", {}).items():
        if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        value = ns.pop(fname, _MISSING)
        fields.append((fname, value if isinstance(value, _Field) else _Field(value, None, True, True, True)))
    ns.pop("__dict__", None)
    ns.pop("__weakref__", None)
    ns["__slots__"] = tuple(n for n, _ in fields)
    ns["_record_spec"] = _Spec(fields, frozen, kw_only, "__post_init__" in ns)
    ns["__init__"] = _init
    ns.setdefault("__repr__", _repr)
    if "__eq__" not in ns:  # as dataclasses: a class's own __eq__ / __hash__ are kept
        ns["__eq__"] = _eq
        if ns.get("__hash__") is None:
            ns["__hash__"] = _hash if frozen else None
    ns["__getstate__"], ns["__setstate__"] = _getstate, _setstate
    ns["__match_args__"] = () if kw_only else tuple(n for n, f in fields if f.init)
    if frozen:
        ns["__setattr__"], ns["__delattr__"] = _frozen_setattr, _frozen_delattr
    return type(cls)(cls.__name__, cls.__bases__, ns)


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: type[T] | None = None, /, *, frozen: bool = True, kw_only: bool = False) -> Any:
    """Make ``cls`` a value class (``@record`` or ``@record(kw_only=True)``, ``frozen=False``)."""
    if cls is None:
        return lambda c: _build(c, frozen, kw_only)
    return _build(cls, frozen, kw_only)


def replace(obj: T, **changes: Any) -> T:
    """A copy of record ``obj`` with some fields changed (:func:`dataclasses.replace`)."""
    spec: _Spec = type(obj)._record_spec  # type: ignore[attr-defined]
    values = {n: getattr(obj, n) for n in spec.init_names}
    for n in changes:
        if n not in values:
            raise TypeError(f"{type(obj).__name__} has no init field {n!r}")
    values.update(changes)
    return type(obj)(**values)


def _item(i: int) -> property:
    def get(self: tuple[Any, ...]) -> Any:
        return tuple.__getitem__(self, i)
    return property(get, doc=f"field {i}")


class NamedTuple(tuple):  # type checkers read typing.NamedTuple instead
    """``typing.NamedTuple``'s class syntax (fields as annotations, defaults as values) without
    importing ``typing`` (with re, collections, functools, contextlib: more than a bare
    interpreter start-up): modules write ``if TYPE_CHECKING: from typing import NamedTuple``
    ``else: from depotdelivery._record import NamedTuple``. Instances are tuples with the
    fields as properties, ``_fields``, ``_field_defaults``, ``_replace``, ``_asdict`` and the
    same repr, equality and pickling (tests/test_record.py compares it with typing's)."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    _field_defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = tuple(n for n, a in cls.__dict__.get("__annotations__", {}).items()  # noqa: RUF063 - no inspect
                      if not str(a).startswith(("ClassVar", "typing.ClassVar")))
        defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
        for i, n in enumerate(names):
            setattr(cls, n, _item(i))
        cls._fields, cls._field_defaults = names, defaults

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        names = cls._fields
        if len(args) > len(names):
            raise TypeError(f"{cls.__name__}() takes {len(names)} arguments but {len(args)} were given")
        values = list(args)
        for n in names[len(args):]:
            if n in kwargs:
                values.append(kwargs.pop(n))
            elif n in cls._field_defaults:
                values.append(cls._field_defaults[n])
            else:
                raise TypeError(f"{cls.__name__}() missing required argument {n!r}")
        if kwargs:
            raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {next(iter(kwargs))!r}")
        return tuple.__new__(cls, values)

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={v!r}" for n, v in zip(self._fields, self))
        return f"{type(self).__name__}({inner})"

    def __getnewargs__(self) -> tuple[Any, ...]:
        return tuple(self)

    def _replace(self, **changes: Any) -> Any:
        return type(self)(**{**self._asdict(), **changes})

    def _asdict(self) -> dict[str, Any]:
        return dict(zip(self._fields, self))
