"""CVMFS transactions around repository writes: ``cvmfs_server transaction`` ... ``publish``, ``abort`` on failure."""
from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from depotdelivery.errors import PublishError

__all__ = ["CATALOG_ENTRIES", "Commit", "Held", "abort", "held", "lay_catalog_marker", "tag_name", "transaction"]

# Nested catalogs: CVMFS recommends splitting big trees so that no catalog holds more than
# ~200k entries (cvmfs_server warns above CVMFS_ROOT_KCATALOG_LIMIT=200 thousand for the root
# catalog, CVMFS_NESTED_KCATALOG_LIMIT=500 for nested ones; doc-cvmfs cpt-repo "Managing Nested
# Catalogs"), and a client downloads a whole catalog to read any entry of it. So every release
# directory is a catalog of its own (a node opening one release loads only that release's
# catalog; a new release never rewrites an old one's), channels/ is a tiny one (a channel move
# changes a few KB, not the catalog of the whole repository), and a tree above this many
# entries gets one more marker at its top.
CATALOG_ENTRIES = 100_000
_MARKER = ".cvmfscatalog"


def lay_catalog_marker(d: Path, created: list[Path] | None = None) -> None:
    """Make directory ``d`` the root of a nested CVMFS catalog (an empty ``.cvmfscatalog``)."""
    p = d / _MARKER
    if p.exists():
        return
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.close(fd)
    if created is not None:
        created.append(p)

# cvmfs_server tag names: letters, digits and . _ - (cvmfs_server's check_tag_name / docs
# "Named Snapshots"); anything else in a release name/version becomes '_'.
_TAG_BAD = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(slots=True, kw_only=True)
class Commit:
    """The tag and message the transaction is published with; the body may change them once it
    knows more (a channel's new seq is read only inside the transaction)."""

    tag: str | None  # None: publish untagged (CVMFS names the snapshot itself)
    message: str


def tag_name(text: str) -> str:
    return _TAG_BAD.sub("_", text)


def _run(args: list[str]) -> None:
    try:
        proc = subprocess.run(args, check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    except FileNotFoundError:
        raise PublishError(f"`{args[0]}` not found: --cvmfs needs the CVMFS release manager tools on this machine") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise PublishError(f"`{' '.join(args)}` failed (exit {proc.returncode}): {detail[-1] if detail else 'no output'}")


def abort(fqrn: str) -> None:
    """Discard the open transaction of ``fqrn`` (``-f``: without asking)."""
    _run(["cvmfs_server", "abort", "-f", fqrn])


@contextmanager
def transaction(fqrn: str, *, tag: str, message: str, already_open: bool = False) -> Iterator[Commit]:
    """Open a transaction on ``fqrn`` (unless the caller already did), run the body, then
    publish with a named tag; on any failure abort, so no transaction is ever left open."""
    if not already_open:
        _run(["cvmfs_server", "transaction", fqrn])
    commit = Commit(tag=tag, message=message)
    try:
        yield commit
    except BaseException as exc:
        try:
            abort(fqrn)
        except PublishError as abort_exc:
            raise PublishError(f"{exc}; and aborting the CVMFS transaction failed too: {abort_exc}") from exc
        raise
    try:
        tag_args = [] if commit.tag is None else ["-a", tag_name(commit.tag)]
        _run(["cvmfs_server", "publish", *tag_args, "-m", commit.message, fqrn])
    except PublishError as exc:
        try:
            abort(fqrn)
        except PublishError as abort_exc:
            raise PublishError(f"{exc}; and aborting the CVMFS transaction failed too: {abort_exc}") from None
        raise PublishError(f"{exc}; the transaction was aborted, the repository is unchanged") from None


@dataclass(slots=True)
class Held:
    """A transaction opened by :func:`held`; ``hand_over()`` once a call that closes it itself
    (``publish(in_place=True, cvmfs=...)``, which publishes or aborts) takes it."""

    fqrn: str
    handed_over: bool = False

    def hand_over(self) -> None:
        self.handed_over = True


@contextmanager
def held(fqrn: str) -> Iterator[Held]:
    """Open a transaction on ``fqrn`` for work that runs before the call that closes it (``build
    --in-place --cvmfs``: the tree is built inside it, then publish closes it); any failure before
    the hand-over aborts it, so no transaction is ever left open."""
    _run(["cvmfs_server", "transaction", fqrn])
    handle = Held(fqrn)
    try:
        yield handle
    except BaseException as exc:
        if handle.handed_over:
            raise
        try:
            abort(fqrn)
        except PublishError as abort_exc:
            raise PublishError(f"{exc}; and aborting the CVMFS transaction failed too: {abort_exc}") from exc
        raise
    if not handle.handed_over:
        abort(fqrn)  # nothing took it: discard it rather than leave it open
