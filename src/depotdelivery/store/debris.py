"""Temporaries that interrupted writers left in a repository (``kill -9`` of publish, channel set,
sign, repo-gc): where they are and which locks their writers hold while they exist.

Every repository write goes through a hidden temporary (:func:`~depotdelivery.store.atomic.temp_name`:
``.<final name>.tmp-<12 hex>``) renamed into place; readers skip names starting with '.', so a
temporary nobody renames is invisible and stays forever. ``verify`` reports them (a warning:
no release's bytes are wrong), ``repo-gc`` removes those whose writer is gone: it holds every
lock listed in :attr:`Debris.locks`, so no running writer can own one.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from depotdelivery.store import layout

__all__ = ["Debris", "find_debris"]

# temp_name's shape exactly (secrets.token_hex(6)): nothing else in a repository looks like it
_TEMP = re.compile(r"\..+\.tmp-[0-9a-f]{12}")


@dataclass(frozen=True, slots=True)
class Debris:
    """One leftover temporary: its path, who makes such temporaries, and the directories whose
    ``dir_lock`` its writer holds from before creating it until after renaming it away."""

    path: Path
    writer: str
    locks: tuple[Path, ...]

    def what(self) -> str:
        return (f"debris of an interrupted {self.writer}: no release or channel uses it (unless that "
                "writer is still running); `depotdelivery repo-gc` removes it")


def _temps(d: str) -> list[str]:
    try:
        with os.scandir(d) as it:
            return sorted(e.name for e in it if _TEMP.fullmatch(e.name))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _subdirs(d: str) -> list[str]:
    try:
        with os.scandir(d) as it:
            return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []


def find_debris(root: str | os.PathLike[str]) -> list[Debris]:
    """Every temporary in the places repository writers make them, sorted by path. Trees inside
    a release are not searched: anything there its listing does not name is reported by
    verify already."""
    top = Path(root)
    releases = Path(layout.releases_dir(top))
    out: list[Debris] = []
    # depotdelivery-repo.json: the first publish creates it under the repository lock, a publish
    # changing the recorded storage replaces it under releases/'s lock
    out += [Debris(top / n, "publish (the repository document)", (top, releases))
            for n in _temps(os.fspath(top)) if n.startswith(f".{layout.REPO_FILE}.")]
    for name in _subdirs(os.fspath(releases)):
        # releases/<name>/.<version>.tmp-*: a release being written (publish, under its name's
        # lock) or a release repo-gc renamed out of sight (under the repository lock)
        locks = (top, releases / name)
        out += [Debris(releases / name / n, f"publish of {name} (or repo-gc)", locks)
                for n in _temps(os.fspath(releases / name))]
        for version in _subdirs(os.fspath(releases / name)):
            if not os.path.isfile(layout.release_file(top, name, version)):
                continue  # no committed release: an unfinished --in-place build owns the directory
            # a committed release's .sig replaced by sign (repository lock); listings of an
            # --in-place publish (its name's lock)
            d = releases / name / version
            out += [Debris(d / n, f"sign or publish of {name}/{version}", locks) for n in _temps(os.fspath(d))]
            ld = layout.listings_dir(top, name, version)
            out += [Debris(Path(ld) / n, f"publish of {name}/{version}", locks) for n in _temps(ld)]
    # channels/: channel set, rollback, publish --channel and sign, all under the repository lock
    cd = layout.channels_dir(top)
    out += [Debris(Path(cd) / n, "channel update (channel set/rollback, publish --channel, sign)", (top,))
            for n in _temps(cd)]
    return sorted(out, key=lambda d: d.path)
