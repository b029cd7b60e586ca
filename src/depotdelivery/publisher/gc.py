"""Repository garbage collection: remove releases no channel needs, never one a channel points at."""
from __future__ import annotations

import os
import secrets
import shutil
import stat
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from depotdelivery.errors import DepotDeliveryError, PublishError, UsageError
from depotdelivery.publisher.channels import repository_lock
from depotdelivery.store.atomic import LockBusy, dir_lock, temp_name
from depotdelivery.store.debris import Debris, find_debris
from depotdelivery.store.repo import Repository
from depotdelivery.store.walk import walk
from depotdelivery.trees import rmtree

__all__ = ["GcResult", "repo_gc"]


@dataclass(slots=True)
class GcResult:
    removed: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # release -> why it stays
    freed_bytes: int = 0
    dry_run: bool = False
    # temporaries of interrupted writers (store.debris): removed (or, dry run, would be), and
    # those kept because their writer may still be running -> why
    debris_removed: list[str] = field(default_factory=list)
    debris_kept: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"removed": self.removed, "kept": self.kept, "freed_bytes": self.freed_bytes, "dry_run": self.dry_run,
                "debris_removed": self.debris_removed, "debris_kept": self.debris_kept}


def _keep_reasons(repo: Repository, keep_last: int) -> dict[str, str]:
    reasons: dict[str, str] = {}
    referenced: set[str] = set()
    for c in repo.channels():
        try:
            ch = repo.read_channel(c, check_expiry=False)
        except DepotDeliveryError as exc:
            # what an unreadable channel points at is unknown: deleting anything could break it
            raise PublishError(f"repo-gc refuses to run: {exc}") from None
        reasons.setdefault(ch.release, f"channel {c} points at it (seq {ch.seq})")
        for e in ch.previous[: max(keep_last - 1, 0)]:
            reasons.setdefault(e.release, f"in the last {keep_last} of channel {c}'s history (seq {e.seq})")
        referenced.update(e.release for e in ch.history())
    # a release never put on a channel may be pinned by jobs (--release N/V) or about to be
    # promoted: the newest keep_last of those stay, per release name
    newest: dict[str, list[tuple[int, str]]] = {}
    for n, v in repo.releases():
        ref = f"{n}/{v}"
        if ref not in referenced:
            mtime = os.stat(repo.release_dir(n, v) / "release.json").st_mtime_ns
            newest.setdefault(n, []).append((mtime, ref))
    for items in newest.values():
        for _, ref in sorted(items, reverse=True)[:keep_last]:
            reasons.setdefault(ref, f"one of the {keep_last} newest releases not on any channel")
    return reasons


def _private_bytes(d: Path) -> int:
    """Bytes that removing ``d`` frees: files not hard-linked from another release. (On CVMFS
    the link count says nothing -- its client shows links within one directory only -- and
    what a removal frees is content no other revision or tag references, decided by CVMFS's own
    garbage collection: docs/site-admin.md.)"""
    return sum(e.st.st_size for e in walk(d) if stat.S_ISREG(e.st.st_mode) and e.st.st_nlink == 1)


def repo_gc(root: str | os.PathLike[str], *, keep_last: int = 3, dry_run: bool = False,
            cvmfs: str | None = None) -> GcResult:
    """Remove every release that no channel points at, that is not among the last
    ``keep_last`` entries of any channel's history, and that is not among the ``keep_last``
    newest never-channelled releases of its name. Each removal is a rename out of sight then
    a delete, so readers never see half a release.

    Then remove the temporaries interrupted writers left (:mod:`~depotdelivery.store.debris`),
    each only while holding every lock its writer would hold, taken without waiting: one a
    running publish or channel update may still be writing is kept, with the reason."""
    if keep_last < 1:
        raise UsageError(f"--keep-last must be at least 1, got {keep_last}")
    repo = Repository.open(root)
    result, doomed = _plan(repo, keep_last, dry_run)
    debris = find_debris(repo.root)
    if dry_run:
        _sweep(debris, result, held=None, remove=False)
        return result
    if not doomed and not debris:
        return result  # no transaction, no lock for nothing
    # a unique tag per run: CVMFS refuses to publish under a tag the repository already has
    tag = f"repo-gc-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(3)}"
    # the lock channel updates take, then decide again: a channel cannot move onto a release
    # being removed, and what a concurrent update pointed at is seen. Waited for only when
    # releases are to go (a channel update is short); for debris alone a busy lock just means
    # "not now"
    try:
        with repository_lock(repo.root, cvmfs, tag=tag, message="depotdelivery: repo-gc",
                             wait=bool(doomed)) as commit:
            if doomed:
                result, doomed = _plan(repo, keep_last, dry_run)
                _remove_releases(repo, doomed, cvmfs)
            # listed again under the lock: a temporary seen before may have been renamed into place
            _sweep(find_debris(repo.root), result, held=repo.root, remove=True)
            if commit is not None:
                commit.message = (f"depotdelivery: repo-gc removed {', '.join(result.removed) or 'nothing'}"
                                  f" and {len(result.debris_removed)} leftover temporaries")
    except LockBusy:
        for d in debris:
            result.debris_kept[str(d.path)] = (f"another process holds the repository lock ({repo.root}): "
                                               f"the {d.writer} may still be running; run repo-gc again later")
    return result


def _remove_releases(repo: Repository, doomed: list[tuple[str, str]], cvmfs: str | None) -> None:
    for n, v in doomed:
        d = repo.release_dir(n, v)
        gone = temp_name(d)
        try:
            if cvmfs is None:
                os.rename(d, gone)
                shutil.rmtree(gone)
            else:
                # inside the transaction readers see nothing until it is published; and the
                # overlay cvmfs_server mounts has no redirect_dir, so renaming a directory
                # of the published revision fails with EXDEV (the kernel's overlayfs.rst
                # "Renaming directories"; cvmfs_server's fstab line for the union mount)
                shutil.rmtree(d)
        except OSError as exc:
            raise PublishError(f"repo-gc: cannot remove {d}: {exc.strerror}") from None
        try:
            os.rmdir(d.parent)
        except OSError:
            pass  # other versions remain


def _sweep(debris: list[Debris], result: GcResult, *, held: Path | None, remove: bool) -> None:
    """Remove (``remove``; else only report) each temporary whose writer's locks are all free:
    taken without waiting, except ``held`` (the repository lock this process holds already; a
    second flock of it here would conflict with our own)."""
    for d in debris:
        try:
            with ExitStack() as locks:
                for lock in d.locks:
                    if lock != held:
                        try:
                            locks.enter_context(dir_lock(lock, wait=False))
                        except FileNotFoundError:
                            continue  # no such directory: nobody can hold its lock
                if remove:
                    if not os.path.lexists(d.path):
                        continue  # renamed into place before we held the lock: not debris after all
                    _remove_debris(d.path)
                result.debris_removed.append(str(d.path))
        except LockBusy as busy:
            result.debris_kept[str(d.path)] = (f"{busy} is locked: the {d.writer} that writes it may still be "
                                               "running; run repo-gc again once it has finished")


def _remove_debris(p: Path) -> None:
    try:
        rmtree(str(p))
    except OSError as exc:
        raise PublishError(f"repo-gc: cannot remove {p}: {exc.strerror}") from None


def _plan(repo: Repository, keep_last: int, dry_run: bool) -> tuple[GcResult, list[tuple[str, str]]]:
    """What stays (and why) and what goes, from the channels as they are now."""
    reasons = _keep_reasons(repo, keep_last)
    result = GcResult(dry_run=dry_run)
    doomed = []
    for n, v in repo.releases():
        ref = f"{n}/{v}"
        if ref in reasons:
            result.kept[ref] = reasons[ref]
        else:
            doomed.append((n, v))
            result.removed.append(ref)
            result.freed_bytes += _private_bytes(repo.release_dir(n, v))
    return result, doomed
