"""Publisher scanning: what a release will hold, read from the input trees (lstat walk,
path and file-type checks), and each file's BLAKE3 (from the stat-keyed cache when unchanged)."""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from depotdelivery.errors import InputError, PublishError
from depotdelivery.publisher.progress import ProgressLine
from depotdelivery.store.hashing import FileChangedError, HashCache, hash_file
from depotdelivery.store.listing import ListingEntry, resolve_inside
from depotdelivery.store.release import Tree
from depotdelivery.store.walk import walk

__all__ = ["InputTree", "Item", "hash_trees", "scan"]


@dataclass(slots=True)
class Item:
    rel: str
    st: os.stat_result
    kind: str
    target: str | None = None
    digest: str | None = None


@dataclass(slots=True)
class InputTree:
    """One tree being published: where it is read from and where it goes in the release."""

    src: Path
    dest: str  # "depot" or "variants/<target>"
    items: list[Item] = field(default_factory=list)
    listing_files: dict[str, bytes] = field(default_factory=dict)  # listings/<hash>.jsonl (chunks + index)
    tree: str = ""

    def entries(self) -> list[ListingEntry]:
        out = []
        for it in self.items:
            mt = it.st.st_mtime_ns
            if it.kind == "file":
                out.append(ListingEntry(path=it.rel, type="file", mtime_ns=mt, mode=stat.S_IMODE(it.st.st_mode),
                                        size=it.st.st_size, blake3=it.digest))
            elif it.kind == "dir":
                out.append(ListingEntry(path=it.rel, type="dir", mtime_ns=mt, mode=stat.S_IMODE(it.st.st_mode)))
            else:
                out.append(ListingEntry(path=it.rel, type="symlink", mtime_ns=mt, target=it.target))
        return out

    @property
    def files(self) -> list[Item]:
        return [it for it in self.items if it.kind == "file"]

    def summary(self) -> Tree:
        files = self.files
        return Tree(path=self.dest, tree=self.tree, files=len(files), bytes=sum(i.st.st_size for i in files))


def scan(top: Path) -> list[Item]:
    """Every entry below ``top`` (sorted by path); refuses what a release cannot hold."""
    try:
        if not stat.S_ISDIR(os.stat(top).st_mode):
            raise InputError(f"{top} is not a directory")
        entries = walk(top)
    except OSError as exc:
        raise InputError(f"cannot read {exc.filename or top}: {exc.strerror}") from None
    items: list[Item] = []
    for e in entries:
        try:
            e.rel.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"{os.fsencode(e.path)!r}: file name is not UTF-8; listings hold UTF-8 paths only") from None
        m = e.st.st_mode
        if stat.S_ISDIR(m):
            items.append(Item(e.rel, e.st, "dir"))
        elif stat.S_ISREG(m):
            items.append(Item(e.rel, e.st, "file"))
        elif stat.S_ISLNK(m):
            items.append(Item(e.rel, e.st, "symlink", target=os.readlink(e.path)))
        else:
            raise InputError(f"{e.path} is {_special_kind(m)}; only files, directories and symlinks can be published")
    links = {i.rel: i.target for i in items if i.kind == "symlink"}
    for i in items:
        if i.kind == "symlink" and (not i.target or not resolve_inside(i.rel, i.target, links)):
            raise InputError(f"{top / i.rel} -> {i.target} points outside {top}; symlinks must stay inside the tree")
    return items


def _special_kind(mode: int) -> str:
    return {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
            stat.S_IFBLK: "a block device"}.get(stat.S_IFMT(mode), "a special file")


def hash_trees(trees: list[InputTree], cache: HashCache, progress: ProgressLine | None) -> int:
    """Fill every file's digest (from the stat cache when unchanged); return bytes hashed."""
    all_files = [(t, i) for t in trees for i in t.files]
    total_bytes = sum(i.st.st_size for _, i in all_files)
    if progress is not None:
        progress.start("hashing", len(all_files), total_bytes)
    done_bytes = hashed = 0
    for n, (t, it) in enumerate(all_files, 1):
        key = f"{t.dest}/{it.rel}"
        digest = cache.lookup(key, it.st)
        if digest is None:
            path = t.src / it.rel
            try:
                digest = hash_file(path, it.st)
            except FileChangedError:
                raise PublishError(f"{path} changed while it was being hashed; publish again when the build has finished") from None
            except OSError as exc:
                raise InputError(f"cannot read {path}: {exc.strerror}") from None
            hashed += it.st.st_size
        cache.store(key, it.st, digest)
        it.digest = digest
        done_bytes += it.st.st_size
        if progress is not None:
            progress.update(n, done_bytes)
    if progress is not None:
        progress.finish()
    return hashed
