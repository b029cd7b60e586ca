"""Repository: open a root, read and verify releases, listings and channels (read side only).

A cold node job reads a channel and a release through here: paths are strings inside (no
``pathlib``, ``typing`` or ``dataclasses`` on that path; docs/architecture.md "Start-up cost");
the methods other callers use still return :class:`pathlib.Path`.
"""
from __future__ import annotations

import errno
import os
import stat

from depotdelivery._record import record
from depotdelivery.errors import (
    FormatError,
    IntegrityError,
    NotFoundError,
)
from depotdelivery.oserrors import read_error, repo_unavailable
from depotdelivery.readbounded import DOCUMENT_LIMIT, read_bounded
from depotdelivery.store import layout
from depotdelivery.store.channel import Channel
from depotdelivery.store.fields import (
    FORMAT,
    Fields,
    check_format,
    check_name,
    load_canonical,
)
from depotdelivery.store.hashing import hash_bytes
from depotdelivery.store.layout import REPO_FILE
from depotdelivery.store.release import Release
from depotdelivery.store.storage import POSIX, Storage

TYPE_CHECKING = False  # no `typing` on a job's cold path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from pathlib import Path

    from depotdelivery.store.keys import TrustStore
    from depotdelivery.store.listing import ListingEntry

__all__ = [
    "REPO_FILE",
    "Repository",
    "listing_bytes",
    "read_document",
    "repo_document",
]

_HEX = frozenset("0123456789abcdef")


def read_document(path: str | os.PathLike[str], what: str) -> bytes | None:
    """The bytes of repository file ``path`` (``what`` names it in errors), None if absent."""
    try:
        return read_bounded(path, DOCUMENT_LIMIT)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise read_error(what, path, exc) from None


@record
class Repository:
    """A repository root (format 1) opened for reading; ``path`` is the root as given (a
    string), :attr:`root` the same as a :class:`pathlib.Path`; ``storage``: what its storage
    preserves (the root document's ``storage`` record; absent: a directory keeping all)."""

    path: str
    repo_id: str
    storage: Storage = POSIX

    @property
    def root(self) -> Path:
        from pathlib import Path

        return Path(self.path)

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> Repository:
        r = os.fspath(root)
        try:
            is_dir = stat.S_ISDIR(os.stat(r).st_mode)
        except OSError as exc:  # the errors Path.is_dir() reads as "no directory"
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP):
                raise repo_unavailable(r, f"is not reachable: {exc.strerror}") from None
            is_dir = False
        except ValueError:  # a NUL in the name
            is_dir = False
        if not is_dir:
            raise repo_unavailable(r, "does not exist or is not a directory")
        meta = os.path.join(r, REPO_FILE)
        try:
            raw = read_bounded(meta, DOCUMENT_LIMIT)
        except FileNotFoundError:
            raise repo_unavailable(r, f"is not a depotdelivery repository (no {REPO_FILE})") from None
        except OSError as exc:
            raise repo_unavailable(r, f"is not readable: {exc.strerror}") from None
        f = Fields(load_canonical(raw, meta), meta)
        check_format(f)
        repo_id = f.str("id")
        if not repo_id or any(c not in _HEX for c in repo_id):
            raise f.error("id", f"expected lowercase hex, got {repo_id!r}")
        rec = f.obj.get("storage")
        return cls(r, repo_id, POSIX if rec is None else Storage.from_dict(rec, meta))

    # ---- paths -------------------------------------------------------------------------------
    def release_dir(self, name: str, version: str) -> Path:
        from pathlib import Path

        return Path(self._release_dir(name, version))

    def _release_dir(self, name: str, version: str) -> str:
        return layout.release_dir(self.path, check_name("release name", name), check_name("release version", version))

    def channel_path(self, channel: str) -> Path:
        from pathlib import Path

        return Path(self._channel_file(channel))

    def _channel_file(self, channel: str) -> str:
        return layout.channel_file(self.path, check_name("channel", channel))

    # ---- documents -----------------------------------------------------------------------------
    def read_release(self, name: str, version: str, trust: TrustStore | None = None) -> Release:
        """Read ``releases/N/V/release.json``; verify its signature when ``trust`` is given."""
        d = self._release_dir(name, version)
        where = f"release {name}/{version}"
        doc = os.path.join(d, layout.RELEASE_FILE)
        raw = read_document(doc, "release document")
        if raw is None:
            known = ", ".join(f"{n}/{v}" for n, v in self.releases()) or "none"
            raise NotFoundError(f"{where} not found in {self.path} (releases: {known})")
        sig_raw = read_document(layout.sig_file(doc), "signature")
        if trust is not None:
            trust.verify(raw, sig_raw, where)
        rel = Release.from_bytes(raw, where=doc, sig_raw=sig_raw)
        if (rel.name, rel.version) != (name, version):
            raise FormatError(f"{doc}: names release {rel.ref}, but it is filed under {name}/{version}")
        return rel

    def read_channel(self, channel: str, trust: TrustStore | None = None, *,
                     now: float | None = None, check_expiry: bool = True) -> Channel:
        """Read ``channels/<c>.json``; verify signature (when ``trust`` given) and expiry."""
        p = self._channel_file(channel)
        where = f"channel {channel}"
        raw = read_document(p, "channel document")
        if raw is None:
            known = ", ".join(self.channels()) or "none"
            raise NotFoundError(f"{where} not found in {self.path} (channels: {known})")
        sig_raw = read_document(layout.sig_file(p), "signature")
        if trust is not None:
            trust.verify(raw, sig_raw, where)
        ch = Channel.from_bytes(raw, where=p, sig_raw=sig_raw)
        if ch.channel != channel:
            raise FormatError(f"{p}: names channel {ch.channel!r}, but it is filed as {channel!r}")
        if check_expiry:
            ch.check_fresh(now, where=p)
        return ch

    def listing_path(self, name: str, version: str, tree: str) -> Path:
        from pathlib import Path

        return Path(layout.listing_file(self.path, check_name("release name", name),
                                        check_name("release version", version), tree))

    def read_listing(self, release: Release, tree: str) -> tuple[ListingEntry, ...]:
        """The entries of one of ``release``'s trees (its chunks joined when the listing is a
        chunk index), checked against the tree hash and for path safety."""
        from depotdelivery.store.listing import (
            parse_listing,  # copy mode and check only
        )

        p = self.listing_path(release.name, release.version, tree)
        return parse_listing(listing_bytes(p.parent, tree, f"release {release.ref}"), where=str(p))

    # ---- enumeration -------------------------------------------------------------------------
    def releases(self) -> list[tuple[str, str]]:
        """Every committed release ``(name, version)``, sorted (temporaries are skipped)."""
        out = []
        releases = layout.releases_dir(self.path)
        for n in _subdirs(releases):
            for v in _subdirs(os.path.join(releases, n)):
                if os.path.isfile(layout.release_file(self.path, n, v)):
                    out.append((n, v))
        return sorted(out)

    def channels(self) -> list[str]:
        try:
            names = os.listdir(layout.channels_dir(self.path))
        except FileNotFoundError:
            return []
        return sorted(n[:-5] for n in names if n.endswith(".json") and not n.startswith("."))


def _subdirs(p: str) -> list[str]:
    try:
        with os.scandir(p) as it:
            return [e.name for e in it if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def repo_document(repo_id: str, storage: Storage | None = None) -> dict[str, object]:
    """The content of ``depotdelivery-repo.json``: a new repository's (random ``repo_id``), or
    an existing one's with a new ``storage`` record."""
    doc: dict[str, object] = {"format": FORMAT, "id": repo_id}
    if storage is not None:
        doc["storage"] = storage.to_dict()
    return doc


def listing_bytes(listings: str | os.PathLike[str], tree: str, owner: str) -> bytes:
    """The listing of ``tree`` from directory ``listings``: the file itself, or the chunks a
    chunk index names, concatenated; every file checked against the hash it is named by."""
    from depotdelivery.store.listing import is_chunk_index, parse_chunk_index

    p = os.path.join(listings, f"{tree}.jsonl")
    raw = read_document(p, "listing")
    if raw is None:
        raise FormatError(f"listing {p} of {owner} is missing")
    actual = hash_bytes(raw)
    if actual != tree:
        raise IntegrityError(f"{p}: listing hash {actual} does not match the tree {tree} it is filed under")
    if not is_chunk_index(raw):
        return raw
    parts = []
    for chunk, entries in parse_chunk_index(raw, where=p):
        cp = os.path.join(listings, f"{chunk}.jsonl")
        data = read_document(cp, "listing chunk")
        if data is None:
            raise FormatError(f"listing chunk {cp} named by {p} is missing")
        actual = hash_bytes(data)
        if actual != chunk:
            raise IntegrityError(f"{cp}: listing chunk hash {actual} does not match its name")
        lines = data.count(b"\n")
        if lines != entries or not data.endswith(b"\n"):
            raise FormatError(f"{cp}: {lines} complete lines, the index {p} says {entries} entries")
        parts.append(data)
    return b"".join(parts)

