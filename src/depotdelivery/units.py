"""The one way sizes are printed: IEC binary units (KiB = 1024 B), everywhere a human reads them.

Mixing ``MB`` (10^6) from one command with ``MiB`` (2^20) from another made ``status`` and
``publish`` disagree by 5% on the same bytes (issue #16); every size a command prints goes
through :func:`human_bytes`. JSON output carries plain byte counts instead.
"""
from __future__ import annotations

__all__ = ["human_bytes"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``; whole bytes below 1 KiB; one decimal above."""
    for unit in _UNITS:
        if abs(n) < 1024 or unit == _UNITS[-1]:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
