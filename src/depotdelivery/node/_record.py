"""Record: a slotted, frozen, keyword-only value class for the node's hot-path modules.

``dataclasses`` imports ``inspect`` and generates code with ``exec`` for every class, which
costs more at start-up than a whole warm ``prepare()`` (benchmarks/bench_prepare.py); the node
modules a job imports use this small base instead. Subclasses list their fields in
``__slots__`` and optional ones with their default in ``_defaults``.
"""
from __future__ import annotations

TYPE_CHECKING = False  # no `typing` on the hot path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from typing import Any, ClassVar

__all__ = ["Record"]


class Record:
    __slots__: tuple[str, ...] = ()
    _defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **fields: Any) -> None:
        for name in self.__slots__:
            if name in fields:
                value = fields.pop(name)
            elif name in self._defaults:
                value = self._defaults[name]
            else:
                raise TypeError(f"{type(self).__name__}() missing keyword argument {name!r}")
            object.__setattr__(self, name, value)
        if fields:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword argument(s) {', '.join(fields)}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({inner})"
