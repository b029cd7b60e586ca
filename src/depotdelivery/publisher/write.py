"""Publisher writing: a release's trees and documents into the repository, each file hard-linked
to an identical one of an earlier release where possible (deduplication outside CVMFS), and
everything a failed publish created removed again (:func:`undo`)."""
from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from depotdelivery.errors import DepotDeliveryError, PublishError
from depotdelivery.publisher.cvmfs import CATALOG_ENTRIES, lay_catalog_marker
from depotdelivery.publisher.progress import ProgressLine
from depotdelivery.publisher.scan import InputTree, Item
from depotdelivery.store.atomic import fsync_dir, syncfs, temp_name, write_atomic
from depotdelivery.store.hashing import NotRegularFileError, open_regular
from depotdelivery.store.keys import PrivateKey, sign
from depotdelivery.store.release import Release
from depotdelivery.store.repo import Repository, listing_bytes

__all__ = ["DELAY_ENV", "LinkIndex", "WriteStats", "lay_release_catalogs", "mkdirs", "undo", "write_documents", "write_release"]


# Hard links come from the newest few releases (same name first): indexing every listing of a
# long-lived repository would cost more than it saves; a file absent from all of them is rare.
_LINK_HORIZON = 4


def _link_sources(repo: Repository, name: str) -> list[Path]:
    def newest(refs: list[tuple[str, str]]) -> list[Path]:
        dirs = [repo.release_dir(n, v) for n, v in refs]
        return sorted(dirs, key=lambda d: _mtime(d / "release.json"), reverse=True)

    refs = repo.releases()
    ours = newest([r for r in refs if r[0] == name])
    return (ours + newest([r for r in refs if r[0] != name]))[:_LINK_HORIZON]


def _mtime(p: Path) -> int:
    try:
        return os.stat(p).st_mtime_ns
    except OSError:
        return 0


class LinkIndex:
    """Files of earlier releases by (BLAKE3, size, mode, mtime): a hard link to one of them
    shares the inode, and an inode carries mode and mtime, so all four must be equal."""

    def __init__(self, repo: Repository, name: str) -> None:
        # paths as strings: 50k Path objects were a third of a one-package re-publish
        self._by_key: dict[tuple[str, int, int, int], str] = {}
        self.listings: dict[str, Path] = {}  # listing/chunk hash -> an earlier release's file
        seen: set[str] = set()
        for d in _link_sources(repo, name):
            try:
                self._add(d, seen)
            except (OSError, ValueError, KeyError, DepotDeliveryError):
                continue  # an unreadable old release only loses deduplication; verify reports it

    def _add(self, d: Path, seen: set[str]) -> None:
        """Index the listings and files of the release in directory ``d``; ``seen``: the trees
        already indexed."""
        rel = Release.from_bytes((d / "release.json").read_bytes(), where=str(d / "release.json"))
        with os.scandir(d / "listings") as it:
            for f in it:
                self.listings.setdefault(f.name.removesuffix(".jsonl"), Path(f.path))
        for tree in rel.trees():
            if tree.tree in seen:
                continue  # the same tree (a shared listing): its files are indexed already
            seen.add(tree.tree)
            base = f"{d}/{tree.path}/"
            for line in listing_bytes(d / "listings", tree.tree, f"release {rel.ref}").splitlines():
                e = json.loads(line)
                if e.get("type") == "file":
                    self._by_key.setdefault((e["blake3"], e["size"], e["mode"], e["mtime_ns"]), base + e["path"])

    def find(self, it: Item) -> str | None:
        p = self._by_key.get((it.digest or "", it.st.st_size, stat.S_IMODE(it.st.st_mode), it.st.st_mtime_ns))
        if p is None:
            return None
        try:
            st = os.lstat(p)
        except OSError:
            return None
        if (stat.S_ISREG(st.st_mode) and st.st_size == it.st.st_size and st.st_mtime_ns == it.st.st_mtime_ns
                and stat.S_IMODE(st.st_mode) == stat.S_IMODE(it.st.st_mode)):
            return p
        return None


@dataclass(slots=True)
class WriteStats:
    linked: int = 0
    copied_bytes: int = 0
    files: int = 0
    bytes: int = 0


def _copy_file(src: str, dst: str, it: Item) -> None:
    """Copy one file, holes kept as holes, and check that the source is the one that was
    hashed: same inode, size, mtime and ctime before and after the copy. A source replaced
    since the scan (by a FIFO, say) is refused before a byte is read, never waited on."""
    changed = PublishError(f"{src} changed while it was being published; publish again when the build has finished")
    try:
        fin, before = open_regular(src)
    except NotRegularFileError:
        raise changed from None
    try:
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            complete = _copy_data(fin, fout, before.st_size)
        finally:
            os.close(fout)
        after = os.fstat(fin)
    finally:
        os.close(fin)
    sig = (it.st.st_ino, it.st.st_size, it.st.st_mtime_ns, it.st.st_ctime_ns)
    for st in (before, after):
        if (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) != sig:
            raise changed
    if not complete:
        raise changed


def _copy_data(fin: int, fout: int, size: int) -> bool:
    """Copy the first ``size`` bytes of ``fin`` to ``fout``: only the ranges that hold data
    (lseek SEEK_DATA/SEEK_HOLE), so a sparse source stays sparse as with ``cp --sparse=auto``,
    each range kernel-side (copy_file_range) where the file systems allow. False when the
    source ended early (it shrank while being copied)."""
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fin, pos, os.SEEK_DATA)
            end = min(os.lseek(fin, start, os.SEEK_HOLE), size)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data past pos: the rest is one hole
                break
            if exc.errno != errno.EINVAL:  # EINVAL: the file system cannot say; copy it all
                raise
            start, end = pos, size
        if start >= size:
            break
        if not _copy_range(fin, fout, start, end - start):
            return False
        pos = end
    os.ftruncate(fout, size)
    return True


def _copy_range(fin: int, fout: int, offset: int, count: int) -> bool:
    while count > 0:
        try:
            n = os.copy_file_range(fin, fout, count, offset, offset)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            data = os.pread(fin, min(count, 1 << 20), offset)
            n = os.pwrite(fout, data, offset) if data else 0
        if n == 0:
            return False
        offset += n
        count -= n
    return True


# A real per-file delay (seconds) for crash tests: widens the window in which `kill -9` lands
# while a release's temporary directory is being written (tests/publisher/test_debris.py).
DELAY_ENV = "DEPOTDELIVERY_PUBLISH_DELAY"


def _delay() -> Callable[[], None]:
    seconds = float(os.environ.get(DELAY_ENV) or 0)
    return (lambda: time.sleep(seconds)) if seconds > 0 else (lambda: None)


def _write_tree(t: InputTree, dest: Path, links: LinkIndex | None, ws: WriteStats,
                progress: ProgressLine | None) -> None:
    tick = _delay()
    os.mkdir(dest, 0o700)
    out, src = f"{dest}/", f"{t.src}/"  # strings, not a Path per file
    for it in t.items:
        dst = out + it.rel
        if it.kind == "dir":
            os.mkdir(dst, 0o700)
        elif it.kind == "symlink":
            os.symlink(it.target or "", dst)
            os.utime(dst, ns=(it.st.st_mtime_ns, it.st.st_mtime_ns), follow_symlinks=False)
        else:
            if _link(links.find(it) if links is not None else None, dst):
                ws.linked += 1
            else:
                _copy_file(src + it.rel, dst, it)
                os.chmod(dst, stat.S_IMODE(it.st.st_mode))
                os.utime(dst, ns=(it.st.st_mtime_ns, it.st.st_mtime_ns))
                ws.copied_bytes += it.st.st_size
            ws.files += 1
            ws.bytes += it.st.st_size
            tick()
            if progress is not None:
                progress.update(ws.files, ws.bytes)
    # directories last, deepest first: adding entries would move their mtimes again
    for it in reversed(t.items):
        if it.kind == "dir":
            os.chmod(out + it.rel, stat.S_IMODE(it.st.st_mode))
            os.utime(out + it.rel, ns=(it.st.st_mtime_ns, it.st.st_mtime_ns))
    top_st = os.stat(t.src)
    os.chmod(dest, stat.S_IMODE(top_st.st_mode))


def _link(old: str | os.PathLike[str] | None, dst: str | os.PathLike[str]) -> bool:
    """Hard-link the earlier release's ``old`` as ``dst``. False, with nothing made, where there
    is none or it cannot be linked (removed since, too many links, another filesystem)."""
    if old is None:
        return False
    try:
        os.link(old, dst)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EMLINK, errno.EXDEV):
            raise
        return False
    return True


def write_documents(d: Path, trees: list[InputTree], release: Release, keys: tuple[PrivateKey, ...], created: list[Path],
                     links: LinkIndex | None = None) -> None:
    """listings/, then release.json.sig, then release.json last: a reader that sees
    release.json finds everything it refers to. Listing files (and chunks) are named by their
    own hash, so an unchanged one is a hard link to the earlier release's."""
    listings = d / "listings"
    if not listings.exists():
        os.mkdir(listings, 0o755)
        created.append(listings)
    for name, data in ((h, b) for t in trees for h, b in t.listing_files.items()):
        p = listings / f"{name}.jsonl"
        if p.exists():
            continue
        if not _link(links.listings.get(name) if links is not None else None, p):
            write_atomic(p, data)
        created.append(p)
    sig = d / "release.json.sig"
    write_atomic(sig, sign(release.raw, *keys))
    created.append(sig)
    write_atomic(d / "release.json", release.raw)
    created.append(d / "release.json")


def lay_release_catalogs(d: Path, trees: list[InputTree], created: list[Path] | None = None) -> None:
    """The release directory ``d`` a nested CVMFS catalog, and each of its trees with more than
    CATALOG_ENTRIES entries one more (the markers are the storage's: no listing names them)."""
    lay_catalog_marker(d, created)
    for t in trees:
        if len(t.items) > CATALOG_ENTRIES:
            lay_catalog_marker(d / t.dest, created)


def undo(created: list[Path]) -> None:
    for p in reversed(created):
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except FileNotFoundError:
            pass


def mkdirs(p: Path, created: list[Path]) -> None:
    missing = []
    q = p
    while not q.exists():
        missing.append(q)
        q = q.parent
    for m in reversed(missing):
        try:
            os.mkdir(m, 0o755)
        except FileExistsError:
            continue  # a concurrent publisher made it: theirs, not ours to undo
        created.append(m)


def write_release(final: Path, trees: list[InputTree], release: Release, keys: tuple[PrivateKey, ...],
                   links: LinkIndex | None, created: list[Path], ws: WriteStats,
                   progress: ProgressLine | None, totals: tuple[int, int], *, catalogs: bool = False) -> None:
    """Write the whole release into a temporary directory next to ``final``, then rename it
    into place: a reader never sees a half-written release. ``totals``: (files, bytes);
    ``catalogs``: lay CVMFS nested catalog markers (:func:`~depotdelivery.publisher.cvmfs.lay_catalog_marker`)."""
    tmp = temp_name(final)
    os.mkdir(tmp, 0o755)
    created.append(tmp)
    if progress is not None:
        progress.start("writing", *totals)
    for t in trees:
        mkdirs((tmp / t.dest).parent, [])
        _write_tree(t, tmp / t.dest, links, ws, progress)
    if progress is not None:
        progress.finish()
    write_documents(tmp, trees, release, keys, [], links)
    if catalogs:
        lay_release_catalogs(tmp, trees)
    syncfs(tmp)
    os.rename(tmp, final)
    created[-1] = final
    fsync_dir(final.parent)
