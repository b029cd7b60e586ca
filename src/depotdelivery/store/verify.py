"""Full verification of published releases: signatures, listing hashes, every file re-hashed, channels."""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from depotdelivery.errors import (
    DepotDeliveryError,
    IntegrityError,
    NotFoundError,
    TrustError,
)
from depotdelivery.store.debris import find_debris
from depotdelivery.store.fields import split_ref
from depotdelivery.store.hashing import hash_file
from depotdelivery.store.listing import ListingEntry
from depotdelivery.store.release import Release
from depotdelivery.store.repo import Repository, read_document
from depotdelivery.store.storage import Storage, is_magic
from depotdelivery.store.walk import walk

if TYPE_CHECKING:
    from depotdelivery.store.keys import TrustStore

__all__ = ["REPOSITORY", "Problem", "VerifyReport", "verify", "verify_release"]

# the subject of the report on the repository itself (its debris), beside releases and channels
REPOSITORY = "repository"

_KIND = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink"}


@dataclass(frozen=True, slots=True)
class Problem:
    """One mismatch: the repository path it concerns and what is wrong. ``trust`` problems are
    about who signed (exit 5); the others about the bytes (exit 4)."""

    path: str
    what: str
    trust: bool = False

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"


@dataclass(slots=True)
class VerifyReport:
    subject: str  # "release N/V", "channel C" or REPOSITORY
    release_id: str = ""
    release: str | None = None  # a channel's: the NAME/VERSION it points at
    files: int = 0  # a release's: the files and bytes re-hashed (a channel has none of its own)
    bytes: int = 0
    signed_by: str | None = None  # the key ids of the valid trusted signatures, ", "-separated
    problems: list[Problem] = field(default_factory=list)
    # found, but not a failure: no release or channel a node reads is wrong (leftover temporaries)
    warnings: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"subject": self.subject, "release_id": self.release_id, "release": self.release,
                "files": self.files, "bytes": self.bytes,
                "signed_by": self.signed_by, "problems": [{"path": p.path, "problem": p.what} for p in self.problems],
                "warnings": [{"path": p.path, "problem": p.what} for p in self.warnings]}


def _check_signature(report: VerifyReport, trust: TrustStore | None, doc: bytes, sig: bytes | None,
                     where: str, path: Path) -> None:
    if trust is None:
        return
    try:
        report.signed_by = ", ".join(trust.signers(doc, sig, where))
    except (TrustError, IntegrityError) as exc:
        # the problem is printed after the report's subject and the .sig path: the message's own
        # "<where>: " prefix would name the document a second time
        what = str(exc).removeprefix(where).removeprefix(":").strip()
        report.problems.append(Problem(str(path), what, trust=isinstance(exc, TrustError)))


def verify_release(repo: Repository, name: str, version: str, trust: TrustStore | None = None) -> VerifyReport:
    """Check one release completely; return its report (problems collected, not raised)."""
    d = repo.release_dir(name, version)
    report = VerifyReport(f"release {name}/{version}")
    doc_path = d / "release.json"
    raw = read_document(doc_path, "release document")
    if raw is None:
        raise NotFoundError(f"release {name}/{version} not found in {repo.root}")
    sig_path = d / "release.json.sig"
    sig = read_document(sig_path, "signature")
    _check_signature(report, trust, raw, sig, report.subject, sig_path)
    try:
        rel = repo.read_release(name, version)
    except DepotDeliveryError as exc:
        report.problems.append(Problem(str(doc_path), str(exc)))
        return report
    report.release_id = rel.id
    for tree in rel.trees():
        try:
            entries = repo.read_listing(rel, tree.tree)
        except DepotDeliveryError as exc:
            report.problems.append(Problem(str(repo.listing_path(name, version, tree.tree)), str(exc)))
            continue
        files = [e for e in entries if e.type == "file"]
        if (len(files), sum(e.size for e in files)) != (tree.files, tree.bytes):
            report.problems.append(Problem(
                str(doc_path), f"{tree.path}: release.json says {tree.files} files / {tree.bytes} bytes, "
                f"the listing has {len(files)} / {sum(e.size for e in files)}"))
        _check_tree(d / tree.path, entries, report, repo.storage)
        report.files += len(files)
        report.bytes += sum(e.size for e in files)
    _check_sysimages(rel, repo, report)
    return report


def _check_sysimages(rel: Release, repo: Repository, report: VerifyReport) -> None:
    for v in rel.variants:
        if v.sysimage is None:
            continue
        try:
            listed = {e.path: e for e in repo.read_listing(rel, v.tree)}
        except DepotDeliveryError:
            continue  # already reported with the tree
        e = listed.get(v.sysimage.path[len(v.path) + 1:])
        if e is None or e.type != "file" or (e.blake3, e.size) != (v.sysimage.blake3, v.sysimage.size):
            report.problems.append(Problem(str(repo.release_dir(rel.name, rel.version) / v.sysimage.path),
                                           "sysimage hash/size in release.json does not match its listing"))


def _check_tree(top: Path, entries: tuple[ListingEntry, ...], report: VerifyReport, storage: Storage) -> None:
    """Compare the tree at ``top`` with its listing: kinds, mtimes (at the granularity
    ``storage`` keeps), modes, sizes, symlink targets, and every file's BLAKE3."""
    problems = report.problems
    try:
        found = {e.rel: e for e in walk(top)}
    except OSError as exc:
        problems.append(Problem(str(exc.filename or top), f"cannot read: {exc.strerror}"))
        return
    for e in entries:
        path = top / e.path
        got = found.pop(e.path, None)
        if got is None:
            problems.append(Problem(str(path), f"missing ({e.type} in the listing)"))
            continue
        kind = _KIND.get(stat.S_IFMT(got.st.st_mode), "special file")
        if kind != e.type:
            problems.append(Problem(str(path), f"is a {kind}, the listing says {e.type}"))
            continue
        if not storage.mtime_matches(e.mtime_ns, got.st.st_mtime_ns):
            problems.append(Problem(str(path), f"mtime {got.st.st_mtime_ns} ns, the listing says {e.mtime_ns} "
                                               f"({storage.mtime_note()})"))
        if e.type == "symlink":
            target = os.readlink(path)
            if target != e.target:
                problems.append(Problem(str(path), f"points to {target!r}, the listing says {e.target!r}"))
            continue
        mode = stat.S_IMODE(got.st.st_mode)
        if mode != e.mode:
            problems.append(Problem(str(path), f"mode {mode:o}, the listing says {e.mode:o}"))
        if e.type == "file":
            if got.st.st_size != e.size:
                problems.append(Problem(str(path), f"size {got.st.st_size}, the listing says {e.size}"))
                continue
            try:
                digest = hash_file(path, got.st)
            except OSError as exc:
                problems.append(Problem(str(path), f"cannot read: {exc.strerror or exc}"))
                continue
            if digest != e.blake3:
                problems.append(Problem(str(path), f"BLAKE3 {digest}, the listing says {e.blake3}"))
    for rel in sorted(found):
        if is_magic(rel.rpartition("/")[2]) and stat.S_ISREG(found[rel].st.st_mode):
            continue  # a CVMFS catalog marker or dirtab: the storage's, not release content
        problems.append(Problem(str(top / rel), "not in the listing (added after publishing)"))


def _verify_channel(repo: Repository, channel: str, trust: TrustStore | None) -> VerifyReport:
    report = VerifyReport(f"channel {channel}")
    path = repo.channel_path(channel)
    try:
        ch = repo.read_channel(channel, check_expiry=False)
    except DepotDeliveryError as exc:
        report.problems.append(Problem(str(path), str(exc)))
        return report
    _check_signature(report, trust, ch.raw, ch.sig_raw, report.subject, path.with_name(path.name + ".sig"))
    if ch.expired():
        report.problems.append(Problem(str(path), f"expired at {ch.expires}; re-sign it with `depotdelivery channel set`",
                                       trust=True))
    report.release = ch.release
    name, _, version = ch.release.partition("/")
    try:
        rel = repo.read_release(name, version)
    except DepotDeliveryError as exc:
        report.problems.append(Problem(str(path), f"points at {ch.release}: {exc}"))
        return report
    report.release_id = rel.id
    if rel.id != ch.release_hash:
        report.problems.append(Problem(str(path), f"release_hash {ch.release_hash} is not the id {rel.id} of {ch.release}"))
    return report


def verify(repo_root: str | os.PathLike[str], release: str | None = None,
           trust: TrustStore | None = None) -> list[VerifyReport]:
    """Verify one release (``"N/V"``) or the whole repository (every release and channel).

    Every problem is collected; then one error is raised naming them all: IntegrityError
    (exit 4) if any concerns the bytes, else TrustError (exit 5). Without ``trust`` the
    signatures are not checked (the hashes still are). The whole repository's check ends with a
    :data:`REPOSITORY` report when temporaries of interrupted writers are lying about: each is a
    warning, never a failure (nothing a node reads is wrong; ``repo-gc`` removes them).
    """
    repo = Repository.open(repo_root)
    if release is not None:
        reports = [verify_release(repo, *split_ref(release), trust)]
    else:
        reports = [verify_release(repo, n, v, trust) for n, v in repo.releases()]
        reports += [_verify_channel(repo, c, trust) for c in repo.channels()]
        debris = find_debris(repo.root)
        if debris:
            reports.append(VerifyReport(REPOSITORY, warnings=[Problem(str(d.path), d.what()) for d in debris]))
    problems = [p for r in reports for p in r.problems]
    if problems:
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        cls = IntegrityError if any(not p.trust for p in problems) else TrustError
        err = cls(f"verification of {repo.root} found {len(problems)} problem(s): {shown}{more}")
        err.reports = reports  # type: ignore[union-attr]  # an extra attribute: the CLI's --json lists them all
        raise err
    return reports
