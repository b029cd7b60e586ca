"""Walk a directory tree without following symlinks: every entry with its lstat, sorted by path."""
from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["Entry", "walk"]


@dataclass(frozen=True, slots=True)
class Entry:
    rel: str  # '/'-separated path below the top (surrogate-escaped if the name is not UTF-8)
    path: str
    st: os.stat_result


def walk(top: str | os.PathLike[str]) -> list[Entry]:
    """Every entry below ``top``, sorted by ``rel``; directories are descended, symlinks not.

    Raises OSError (with the failing path) when a directory cannot be listed.
    """
    out: list[Entry] = []
    stack = [("", os.fspath(top))]
    while stack:
        rel, d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                r = f"{rel}/{e.name}" if rel else e.name
                st = e.stat(follow_symlinks=False)
                out.append(Entry(r, e.path, st))
                if e.is_dir(follow_symlinks=False):
                    stack.append((r, e.path))
    out.sort(key=lambda e: e.rel)
    return out
