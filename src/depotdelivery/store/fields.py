"""Field validation shared by the document parsers: typed getters whose errors name file and dotted field.

A cold node job parses a channel and a release document through here: no ``re`` or ``json``
(value rules are predicates, JSON goes through :mod:`depotdelivery.store.fastjson`;
tests/store/test_fields.py checks each predicate against the regular expression it replaces).
"""
from __future__ import annotations

import builtins

TYPE_CHECKING = False  # no `typing` on the hot path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, TypeVar

    T = TypeVar("T")

from depotdelivery.errors import FormatError, UsageError
from depotdelivery.store import fastjson
from depotdelivery.store.canonical import canonical_json
from depotdelivery.store.names import check_name, is_name

__all__ = [
    "FORMAT",
    "Fields",
    "check_format",
    "check_name",
    "is_hex",
    "load_canonical",
    "split_ref",
]

FORMAT = 1
_HEX = frozenset("0123456789abcdef")


def is_hex(value: str, low: int = 1, high: int = 64) -> bool:
    """Whether ``value`` is ``low`` to ``high`` lowercase hex digits (``[0-9a-f]{low,high}``)."""
    return low <= len(value) <= high and _HEX.issuperset(value)


def _is_hex64(value: str) -> bool:
    return is_hex(value, 64, 64)


def _shown(value: Any) -> str:
    import json  # error messages only

    return json.dumps(value)[:40]


def load_canonical(raw: bytes, where: str) -> Any:
    """Parse ``raw`` as JSON and insist it is in canonical form (so its BLAKE3 is an identity)."""
    try:
        obj = fastjson.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise FormatError(f"{where}: not UTF-8 at byte {exc.start}") from None
    except (ValueError, RecursionError) as exc:
        import json  # fastjson handed the bad bytes to json, which raised: imported already

        if isinstance(exc, json.JSONDecodeError):
            raise FormatError(f"{where}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
        # hostile bytes: an integer of more than 4300 digits (CPython's int_max_str_digits) or
        # nesting deeper than the recursion limit; neither is in any document we write
        raise FormatError(f"{where}: unparseable JSON ({type(exc).__name__}: {str(exc)[:80]})") from None
    try:
        canonical = canonical_json(obj)
    except ValueError as exc:  # NaN / Infinity
        raise FormatError(f"{where}: {exc}") from None
    if canonical != raw:
        raise FormatError(f"{where}: not canonical JSON (sorted keys, compact separators, UTF-8)")
    return obj


class Fields:
    """Typed access to one JSON object; every error names ``where`` and the dotted field path."""

    __slots__ = ("obj", "path", "where")

    def __init__(self, obj: Any, where: builtins.str, path: builtins.str = "") -> None:
        if not isinstance(obj, dict):
            raise FormatError(f"{where}: {path or 'document'}: expected an object, got {type(obj).__name__}")
        self.obj: Mapping[str, Any] = obj
        self.where = where
        self.path = path

    def error(self, key: builtins.str, msg: builtins.str) -> FormatError:
        return FormatError(f"{self.where}: field {self._dotted(key)}: {msg}")

    def _dotted(self, key: builtins.str) -> builtins.str:
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: builtins.str, types: type | tuple[type, ...], optional: bool) -> Any:
        if key not in self.obj:
            if optional:
                return None
            raise self.error(key, "missing")
        value = self.obj[key]
        if value is None and optional:
            return None
        # bool is an int subclass; a JSON true is never a valid integer field
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
            raise self.error(key, f"expected {_type_name(types)}, got {_shown(value)}")
        return value

    def str(self, key: builtins.str, *, optional: bool = False,
            valid: Callable[[builtins.str], bool] | None = None) -> Any:
        """A string field; ``valid``: the rule its value must follow (an "invalid value" error)."""
        value = self._get(key, str, optional)
        if value is not None and valid is not None and not valid(value):
            raise self.error(key, f"invalid value {value!r}")
        return value

    def name(self, key: builtins.str) -> builtins.str:
        """A name that becomes a path component (:func:`depotdelivery.store.names.is_name`)."""
        return self.str(key, valid=is_name)

    def hex64(self, key: builtins.str, *, optional: bool = False) -> Any:
        return self.str(key, optional=optional, valid=_is_hex64)

    def int(self, key: builtins.str, *, minimum: builtins.int | None = None, optional: bool = False) -> Any:
        value = self._get(key, int, optional)
        if value is not None and minimum is not None and value < minimum:
            raise self.error(key, f"must be >= {minimum}, got {value}")
        return value

    def list(self, key: builtins.str) -> builtins.list[Any]:
        return self._get(key, list, False)

    def int_list(self, key: builtins.str) -> tuple[builtins.int, ...]:
        items = self.list(key)
        for i, v in enumerate(items):
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << 32:
                raise self.error(f"{key}[{i}]", f"expected a u32, got {_shown(v)}")
        return tuple(items)

    def str_list(self, key: builtins.str) -> tuple[builtins.str, ...]:
        items = self.list(key)
        for i, v in enumerate(items):
            if not isinstance(v, str):
                raise self.error(f"{key}[{i}]", f"expected a string, got {_shown(v)}")
        return tuple(items)

    def sub(self, key: builtins.str, *, optional: bool = False) -> Fields | None:
        value = self._get(key, dict, optional)
        return None if value is None else Fields(value, self.where, self._dotted(key))

    def subs(self, key: builtins.str) -> builtins.list[Fields]:
        return [Fields(v, self.where, f"{self._dotted(key)}[{i}]") for i, v in enumerate(self.list(key))]

    def only(self, allowed: frozenset[builtins.str]) -> None:
        """Reject fields this format version does not define (a typo must not pass silently)."""
        extra = sorted(set(self.obj) - allowed)
        if extra:
            raise self.error(extra[0], "unknown field")


def check_format(f: Fields) -> None:
    """Reject a document of an unknown major format version."""
    version = f.int("format")
    if version != FORMAT:
        raise f.error("format", f"unsupported format version {version} (this depotdelivery reads {FORMAT}); upgrade depotdelivery")


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _type_name(types: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", list: "a list", dict: "an object", bool: "a boolean"}
    return " or ".join(names.get(t, t.__name__) for t in _as_tuple(types))


def split_ref(ref: str) -> tuple[str, str]:
    """``NAME/VERSION`` given by a user -> (name, version); a usage error (exit 2) otherwise."""
    name, sep, version = ref.partition("/")
    if not sep or not name or not version:
        raise UsageError(f"invalid release {ref!r}: expected NAME/VERSION")
    return name, version
