"""The one grammar for durations on the command line: ``channel --expires`` (``90d``, ``1d12h``,
``never``) and ``gc --older-than`` (``30d``, ``1.5h``, ``45s``, plain seconds).

A duration is one or more ``<number><unit>`` parts (units ``s m h d w``; a number may have a
fraction: ``1.5h``), summed; ``never`` and a bare number of seconds only where the caller allows
them. Errors are :class:`~depotdelivery.errors.UsageError` (exit 2) naming the text and the form.
"""
from __future__ import annotations

import re

from depotdelivery.errors import UsageError

__all__ = ["UNITS", "parse_age", "parse_duration", "parse_expiry"]

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?"
_PART = re.compile(rf"({_NUMBER})([smhdw])")
_BARE = re.compile(_NUMBER)


def parse_duration(text: str, *, what: str = "duration", never: bool = False, bare_seconds: bool = False,
                   zero: bool = False) -> float | None:
    """Seconds in ``text``; None for ``never`` (only with ``never``). ``bare_seconds``: a
    number without a unit is seconds; ``zero``: 0 is allowed (else a duration must be > 0).
    ``what`` names the value in the error (``age``, ``duration``)."""
    t = text.strip().lower()
    forms = ", ".join(["30d", "12h", "1d12h", "1.5h", *(["45 (seconds)"] if bare_seconds else []),
                       *(["never"] if never else [])])
    if never and t == "never":
        return None
    if bare_seconds and _BARE.fullmatch(t):
        total = float(t)
    else:
        pos, total = 0, 0.0
        for m in _PART.finditer(t):
            if m.start() != pos:
                break
            total += float(m.group(1)) * UNITS[m.group(2)]
            pos = m.end()
        if not t or pos != len(t):
            raise UsageError(f"bad {what} {text!r} (expected e.g. {forms})")
    if not (total >= 0 if zero else total > 0) or total == float("inf"):
        raise UsageError(f"bad {what} {text!r} (must be {'>= 0' if zero else '> 0'})")
    return total


def parse_expiry(text: str) -> float | None:
    """``channel set/rollback --expires`` and ``publish --expires``: > 0, or ``never`` (None)."""
    return parse_duration(text, what="duration", never=True)


def parse_age(text: str) -> float:
    """``gc --older-than``: >= 0; a bare number is seconds."""
    age = parse_duration(text, what="age", bare_seconds=True, zero=True)
    assert age is not None
    return age
