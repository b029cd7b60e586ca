"""The rule for names that become path components (release names and versions, variant
targets, channels), without ``re``: the node checks a configured channel or pinned release on
its hot path, where importing ``re`` would cost about half a bare interpreter's start-up.

``NAME_PATTERN`` is the same rule as a regular expression (the documents and docs state it);
tests/store/test_names.py checks that the two agree.
"""
from __future__ import annotations

from depotdelivery.errors import UsageError

__all__ = ["NAME_MAX", "NAME_PATTERN", "check_name", "is_name"]

NAME_MAX = 128
NAME_PATTERN = rf"[A-Za-z0-9][A-Za-z0-9._+-]{{0,{NAME_MAX - 1}}}"
_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_REST = _FIRST | frozenset("._+-")


def is_name(value: str) -> bool:
    """Whether ``value`` is a valid name: letters, digits and ``. _ + -``, not starting with
    one of those four, at most :data:`NAME_MAX` characters."""
    return 0 < len(value) <= NAME_MAX and value[0] in _FIRST and _REST.issuperset(value)


def check_name(kind: str, value: str) -> str:
    """Validate a release name/version, variant target or channel given by a user."""
    if not is_name(value):
        raise UsageError(f"invalid {kind} {value!r}: use letters, digits and . _ + - (not starting with . _ + -), "
                         f"at most {NAME_MAX}")
    return value
