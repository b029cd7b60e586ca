"""JSON for the node's hot path without importing :mod:`json` (which imports ``re``, ``enum``,
``functools`` and ``collections``: about half a bare interpreter's start-up time).

:func:`loads` drives the C scanner of the ``_json`` extension, the very code ``json.loads``
runs, and :func:`dumps` writes what ``json.dumps(obj, sort_keys=True, indent=...)`` writes,
strings escaped by ``_json``'s own ``encode_basestring_ascii``. Anything outside the common
case (malformed input, a byte-order mark, an object these encoders do not handle) is handed to
:mod:`json` itself, so results and exceptions are always exactly the standard library's.
tests/store/test_fastjson.py checks both against :mod:`json` with hypothesis.
"""
from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["canonical", "dumps", "loads"]

_WHITESPACE = " \t\n\r"  # json.decoder.WHITESPACE


class _Context:
    """The attributes ``_json.make_scanner`` reads from a ``json.JSONDecoder``, at their defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # the C scanner reads only these attributes


def loads(data: str | bytes) -> Any:
    """``json.loads(data)``, UTF-8 for bytes."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        start = len(text) - len(text.lstrip(_WHITESPACE))
        if not text.startswith("\ufeff"):
            obj, end = _scan(text, start)
            if not text[end:].strip(_WHITESPACE):
                return obj
    except (ValueError, StopIteration, RecursionError):
        pass
    import json  # the standard library's answer, or its exception

    return json.loads(data)


_esc = _json.encode_basestring_ascii
_esc_utf8 = _json.encode_basestring  # ensure_ascii=False


def _floatstr(f: float) -> str:
    if f != f:  # noqa: PLR0124 - the NaN test, without importing math (a shared library)
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "Infinity" if f > 0 else "-Infinity"
    return float.__repr__(f)


class _Unsupported(Exception):
    pass


class _Style:
    """How to write: ``json.dumps``'s indent, separators, ensure_ascii and allow_nan."""

    __slots__ = ("allow_nan", "esc", "indent", "item_sep", "key_sep")

    def __init__(self, indent: str | None, item_sep: str, key_sep: str, esc: Any, allow_nan: bool) -> None:
        self.indent, self.item_sep, self.key_sep, self.esc, self.allow_nan = indent, item_sep, key_sep, esc, allow_nan


_CANONICAL = _Style(None, ",", ":", _esc_utf8, False)


def _encode(obj: Any, out: list[str], style: _Style, level: int) -> None:
    if isinstance(obj, str):
        out.append(style.esc(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        out.append(int.__repr__(obj))
    elif isinstance(obj, float):
        text = _floatstr(obj)
        if not style.allow_nan and text[-1] not in "0123456789":  # NaN, Infinity: json's error
            raise _Unsupported
        out.append(text)
    elif isinstance(obj, (list, tuple, dict)):
        if not obj:
            out.append("{}" if isinstance(obj, dict) else "[]")
            return
        indent = style.indent
        inner = None if indent is None else "\n" + indent * (level + 1)
        sep = style.item_sep if inner is None else style.item_sep + inner
        out.append("{" if isinstance(obj, dict) else "[")
        if inner is not None:
            out.append(inner)
        if isinstance(obj, dict):
            if not all(type(k) is str for k in obj):
                raise _Unsupported  # json converts int/float/bool/None keys: let it
            for i, key in enumerate(sorted(obj)):
                if i:
                    out.append(sep)
                out.append(style.esc(key))
                out.append(style.key_sep)
                _encode(obj[key], out, style, level + 1)
        else:
            for i, value in enumerate(obj):
                if i:
                    out.append(sep)
                _encode(value, out, style, level + 1)
        if inner is not None:
            out.append("\n" + indent * level)  # type: ignore[operator]  # inner set: indent is a str
        out.append("}" if isinstance(obj, dict) else "]")
    else:
        raise _Unsupported


def dumps(obj: Any, *, indent: int | None = None) -> str:
    """``json.dumps(obj, sort_keys=True, indent=indent)`` (default separators)."""
    out: list[str] = []
    style = _Style(None if indent is None else " " * indent, ", " if indent is None else ",", ": ", _esc, True)
    try:
        _encode(obj, out, style, 0)
    except (_Unsupported, RecursionError):
        import json

        return json.dumps(obj, sort_keys=True, indent=indent)
    return "".join(out)


def canonical(obj: Any) -> bytes:
    """``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    allow_nan=False).encode()``: the canonical form (:mod:`depotdelivery.store.canonical`)."""
    out: list[str] = []
    try:
        _encode(obj, out, _CANONICAL, 0)
    except (_Unsupported, RecursionError):
        import json

        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    return "".join(out).encode()
