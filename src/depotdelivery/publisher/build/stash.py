"""Resuming a CVMFS build: aborting a transaction discards everything written in it, so before
the abort build moves what it finished (the shared depot, every variant with a complete record)
to the work directory, and the next build moves it back into its new transaction. The paths are
the same and ``shutil.move`` keeps every mtime, so Julia 1.10 caches stay valid; the records then
decide what is resumed."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from depotdelivery.publisher.build.context import Event
from depotdelivery.publisher.build.record import read_record

__all__ = ["stashed"]


def _parts(final: Path) -> list[str]:
    """What is worth keeping: the shared depot (even unfinished: its packages need no download
    again), and the variants whose record is complete."""
    parts = ["depot"] if (final / "depot").is_dir() else []
    vroot = final / "variants"
    return parts + [f"variants/{d.name}" for d in sorted(vroot.iterdir()) if vroot.is_dir()
                    and read_record(d / "build") is not None]


@contextmanager
def stashed(final: Path, stash: Path, emit: Event) -> Iterator[None]:
    """Restore what an aborted build left in ``stash``; on failure, stash what finished."""
    for rel in _parts(stash) if stash.is_dir() else []:
        if not (final / rel).exists():
            (final / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(stash / rel, final / rel)
            emit({"event": "restored", "variant": None, "path": rel})
    shutil.rmtree(stash, ignore_errors=True)
    try:
        yield
    except BaseException:
        for rel in _parts(final):
            (stash / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(final / rel, stash / rel)
            emit({"event": "stashed", "variant": None, "path": rel, "stash": str(stash / rel)})
        raise
