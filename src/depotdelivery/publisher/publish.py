"""Publisher orchestration: ingest a depot and its variants -> scan and hash -> listings ->
release.json -> sign -> commit atomically (inside a CVMFS transaction with ``cvmfs``) -> channel.

The steps live beside this module: :mod:`~depotdelivery.publisher.scan` (what the trees hold and
their hashes), :mod:`~depotdelivery.publisher.inspect` (what Julia's files say),
:mod:`~depotdelivery.publisher.write` (hard-link dedup, the write, the undo) and
:mod:`~depotdelivery.publisher.cvmfs` (the transaction)."""
from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from depotdelivery.errors import (
    ConflictError,
    DepotDeliveryError,
    PublishError,
    UsageError,
)
from depotdelivery.oserrors import publish_error, repo_unavailable
from depotdelivery.publisher.channels import DEFAULT_EXPIRY, set_channel
from depotdelivery.publisher.inspect import (
    infer_julia_version,
    infer_project,
    variant_record,
)
from depotdelivery.publisher.progress import ProgressLine
from depotdelivery.publisher.scan import InputTree, hash_trees, scan
from depotdelivery.publisher.write import (
    LinkIndex,
    WriteStats,
    lay_release_catalogs,
    mkdirs,
    undo,
    write_documents,
    write_release,
)
from depotdelivery.store.atomic import (
    dir_lock,
    dir_times_restored_on_error,
    temp_name,
    write_atomic,
)
from depotdelivery.store.canonical import canonical_json
from depotdelivery.store.fields import check_name
from depotdelivery.store.hashing import HashCache
from depotdelivery.store.keys import PrivateKey, signing_keys
from depotdelivery.store.listing import encode_listing_files
from depotdelivery.store.release import Release, Variant
from depotdelivery.store.repo import REPO_FILE, Repository, repo_document
from depotdelivery.store.storage import STORAGE_NAMES, Storage, storage_named

if TYPE_CHECKING:
    from depotdelivery.publisher.cvmfs import Commit
    from depotdelivery.store.fingerprint import Fingerprint

__all__ = [
    "PublishResult",
    "VariantInput",
    "default_hash_cache_dir",
    "init_repository",
    "publish",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class VariantInput:
    """One variant to publish: a directory laid out as ``variants/<target>/`` will be (the
    sysimage + ``depot/compiled/...``), the sysimage inside it (found when it is the only
    top-level ``*.so``), the variant's ``JULIA_CPU_TARGET`` (default: the target name) and its
    architecture (default: from the sysimage, else this machine's)."""

    dir: Path
    sysimage: Path | None = None
    cpu_target: str | None = None
    arch: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishResult:
    release_id: str
    ref: str
    path: Path
    created: bool
    files: int
    bytes: int
    hashed_bytes: int
    linked_files: int
    copied_bytes: int
    channel_seq: int | None = None
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "release_id": self.release_id, "release": self.ref, "path": str(self.path), "created": self.created,
            "files": self.files, "bytes": self.bytes, "hashed_bytes": self.hashed_bytes,
            "linked_files": self.linked_files, "copied_bytes": self.copied_bytes,
            "channel_seq": self.channel_seq, "warnings": list(self.warnings), "seconds": round(self.seconds, 3),
        }


def default_hash_cache_dir() -> Path:
    """Where the publisher keeps its stat-keyed hash caches (never inside the repository)."""
    env = os.environ.get("DEPOTDELIVERY_PUBLISH_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "depotdelivery" / "publish-hashes"


def init_repository(root: str | os.PathLike[str]) -> Repository:
    """Create (or open) a repository at ``root``: ``depotdelivery-repo.json`` with a random id."""
    r = Path(root)
    try:
        r.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise publish_error(exc, r, "creating the repository root") from None
    return _open_or_init(r, created=[])


def _open_or_init(root: Path, created: list[Path]) -> Repository:
    """Open ``root``; an existing empty directory becomes a new repository (recorded in
    ``created`` so a failed publish removes it again)."""
    if not root.is_dir():
        raise repo_unavailable(root, "does not exist or is not a directory (create it, or mount it)")
    if not (root / REPO_FILE).exists():
        # only a releases/ tree (an --in-place build waiting for its first publish) may be there
        if any(not n.startswith(".") and n != "releases" for n in os.listdir(root)):
            raise repo_unavailable(root, f"is not empty and not a depotdelivery repository (no {REPO_FILE})")
        try:
            # under the repository lock: repo-gc removes a temporary of this document only while
            # holding it (store.debris), and of two first publishers only one writes an id
            with dir_lock(root):
                if not (root / REPO_FILE).exists():
                    write_atomic(root / REPO_FILE, canonical_json(repo_document(secrets.token_hex(16))))
                    created.append(root / REPO_FILE)
        except OSError as exc:
            raise publish_error(exc, root, "initialising the repository") from None
    return Repository.open(root)


def _brief(value: object, limit: int = 80) -> str:
    # a conflict message stays one readable line: long values (clone lists, sysimage
    # module build ids) are cut, the full documents are in the repository for diffing
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def _describe_conflict(repo: Repository, old: Release, new: Release, trees: list[InputTree]) -> str:
    diffs = [f"{k} {getattr(old, k)!r} -> {getattr(new, k)!r}" for k in ("julia_version", "project")
             if getattr(old, k) != getattr(new, k)]
    old_trees = {t.path: t for t in old.trees()}
    for t in trees:
        ot = old_trees.pop(t.dest, None)
        if ot is None:
            diffs.append(f"new tree {t.dest}")
        elif ot.tree != t.tree:
            try:
                before = {e.path: e for e in repo.read_listing(old, ot.tree)}
            except DepotDeliveryError:
                before = {}
            after = {e.path: e for e in t.entries()}
            changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
            diffs.append(f"{t.dest}: {len(changed)} paths differ ({', '.join(changed[:3])}{', ...' if len(changed) > 3 else ''})")
    diffs += [f"tree {p} missing" for p in old_trees]
    old_variants = {v.target: v.to_dict() for v in old.variants}
    for v in new.variants:
        old_v = old_variants.get(v.target)
        if old_v is not None:
            new_v = v.to_dict()
            diffs += [f"variant {v.target} {k} {_brief(old_v[k])} -> {_brief(new_v[k])}" for k in sorted(new_v)
                      if k not in ("tree", "files", "bytes", "sysimage") and old_v[k] != new_v[k]]
    if not diffs:
        diffs.append("variant metadata differs")
    return "; ".join(diffs)


# ---- publish ----------------------------------------------------------------------------------

def publish(
    repo_root: str | os.PathLike[str],
    name: str,
    version: str,
    depot: str | os.PathLike[str] | None,
    variants: Mapping[str, VariantInput],
    key: PrivateKey | Sequence[PrivateKey],
    *,
    channel: str | None = None,
    expires: float | None = DEFAULT_EXPIRY,
    cvmfs: str | None = None,
    storage: str | None = None,
    in_place: bool = False,
    julia_version: str | None = None,
    project: str | None = None,
    progress: ProgressLine | None = None,
    hash_cache_dir: Path | None = None,
    use_hash_cache: bool = True,
    fingerprints: Mapping[str, Sequence[Fingerprint]] | None = None,
) -> PublishResult:
    """Publish ``depot`` (+ ``variants``) as release ``name/version`` of the repository at
    ``repo_root``, signed with ``key`` (one key, or several: each signs ``release.json`` and the
    channel document, for nodes with a signature threshold); optionally point ``channel`` at it.

    Identical inputs give the identical release id and write nothing; different content
    under an existing name/version raises ConflictError. Any failure before the release is
    committed leaves the repository exactly as it was; a failing channel update after it keeps
    the release and raises PublishError saying so. With ``cvmfs`` the writes happen inside a CVMFS
    transaction (opened here, or, with ``in_place``, by the caller who built the content at its
    final path); every exit publishes or aborts it, none leaves it open. ``fingerprints``:
    per variant target, the module-graph fingerprints of the CI reference host(s)
    (``depotdelivery fingerprint --json``), recorded in the variant and signed with the release.
    ``storage`` (a :data:`~depotdelivery.store.storage.STORAGE_NAMES` name) is recorded in
    ``depotdelivery-repo.json`` with the release; with ``cvmfs`` and no ``storage``, ``cvmfs``
    (whole-second mtimes) unless the repository already records CVMFS storage.
    """
    from depotdelivery.publisher.cvmfs import transaction

    job = _Job(root=Path(repo_root), name=name, version=version, depot=depot, variants=dict(variants),
               keys=signing_keys(key), channel=channel, expires=expires, cvmfs=cvmfs,
               storage=None if storage is None else storage_named(storage), in_place=in_place,
               julia_version=julia_version, project=project, progress=progress, hash_cache_dir=hash_cache_dir,
               use_hash_cache=use_hash_cache, t0=time.monotonic(),
               fingerprints={t: tuple(fps) for t, fps in (fingerprints or {}).items()})
    with ExitStack() as ci:
        if in_place and cvmfs is not None:
            # --in-place --cvmfs: the caller's transaction is open from the start, so entering it
            # here first means a failure anywhere (arguments, scanning, hashing, a conflict) aborts it
            job.commit = ci.enter_context(transaction(
                cvmfs, tag=f"{name}-{version}", message=f"depotdelivery: release {name}/{version}",
                already_open=True))
        result = _publish(job)
    if job.channel_error is not None:
        raise job.channel_error  # only now: every transaction holding the release has been published
    return result


@dataclass(slots=True, kw_only=True)
class _Job:
    """One publish call: its arguments (``depot`` and ``variants`` completed for ``in_place``),
    the caller's open CVMFS transaction (``commit``, --in-place --cvmfs) and, once the release is
    committed, the channel's new seq or the update's failure (raised after every transaction is
    closed)."""

    root: Path
    name: str
    version: str
    depot: str | os.PathLike[str] | None
    variants: dict[str, VariantInput]
    keys: tuple[PrivateKey, ...]
    channel: str | None
    expires: float | None
    cvmfs: str | None
    storage: Storage | None
    in_place: bool
    julia_version: str | None
    project: str | None
    progress: ProgressLine | None
    hash_cache_dir: Path | None
    use_hash_cache: bool
    t0: float
    commit: Commit | None = None
    fingerprints: dict[str, tuple[Fingerprint, ...]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    channel_seq: int | None = None
    channel_error: PublishError | None = None

    @property
    def final(self) -> Path:
        return self.root / "releases" / self.name / self.version


def _publish(job: _Job) -> PublishResult:
    """The body of :func:`publish`: check the inputs, read them, then commit (or find the
    identical release committed already)."""
    depot = _check_inputs(job)
    trees, hashed = _scan_and_hash(job, depot)
    release = _release_document(job, trees)
    total = (sum(len(t.files) for t in trees), sum(t.summary().bytes for t in trees))

    def result(created: bool, ws: WriteStats | None) -> PublishResult:
        return PublishResult(
            release_id=release.id, ref=release.ref, path=job.final, created=created, files=total[0],
            bytes=total[1], hashed_bytes=hashed, linked_files=ws.linked if ws else 0,
            copied_bytes=ws.copied_bytes if ws else 0, channel_seq=job.channel_seq, warnings=tuple(job.warnings),
            seconds=time.monotonic() - job.t0)

    if _already_published(job, release, trees):
        if job.commit is not None:
            # nothing new to tag (the release's tag exists already): close the caller's
            # transaction with an untagged publish, holding the channel update if any
            job.commit.tag = None
            job.commit.message = f"depotdelivery: release {release.ref} unchanged"
        _point_channel(job, release, in_transaction=job.commit is not None)
        return result(False, None)
    ws = WriteStats()
    return result(_commit(job, release, trees, ws, total), ws)


def _check_inputs(job: _Job) -> Path:
    """Check names and paths before anything is read; with ``in_place`` complete the variants
    from what is built at the final path. The depot directory to publish."""
    check_name("release name", job.name)
    check_name("release version", job.version)
    for target in job.variants:
        check_name("variant target", target)
    final = job.final
    if job.in_place:
        if job.depot is not None and Path(job.depot).resolve() != (final / "depot").resolve():
            raise UsageError(f"--in-place publishes the content already at {final}/depot, not {job.depot}")
        for target, vi in job.variants.items():
            if vi.dir.resolve() != (final / "variants" / target).resolve():
                raise UsageError(f"--in-place: variant {target} must be at {final}/variants/{target}, not {vi.dir}")
        job.depot = final / "depot"
        # every variant already built in place is part of the release, named or not
        vroot = final / "variants"
        found = sorted(e.name for e in os.scandir(vroot) if e.is_dir(follow_symlinks=False)) if vroot.is_dir() else []
        job.variants = {**{t: VariantInput(dir=vroot / t) for t in found}, **job.variants}
        for target in job.variants:
            check_name("variant target", target)
    if job.depot is None:
        raise UsageError("publish needs --depot DIR")
    if not job.root.is_dir():
        raise repo_unavailable(job.root, "does not exist or is not a directory (create it, or mount it)")
    return Path(job.depot)


def _scan_and_hash(job: _Job, depot: Path) -> tuple[list[InputTree], int]:
    """The input trees (shared depot first, then the variants by target), scanned, hashed and
    encoded as listings; and the bytes hashed (not taken from the stat cache)."""
    trees = [InputTree(src=depot, dest="depot")]
    trees += [InputTree(src=vi.dir, dest=f"variants/{target}") for target, vi in sorted(job.variants.items())]
    for t in trees:
        t.items = scan(t.src)
    if job.use_hash_cache:
        cache = HashCache.for_tree(job.hash_cache_dir or default_hash_cache_dir(), depot)
    else:
        cache = HashCache(None)
    hashed = hash_trees(trees, cache, job.progress)
    cache.save()
    for t in trees:
        t.tree, t.listing_files = encode_listing_files(t.entries())
    return trees, hashed


def _release_document(job: _Job, trees: list[InputTree]) -> Release:
    jv = job.julia_version or infer_julia_version(trees)
    targets = sorted(job.variants)
    unknown = sorted(set(job.fingerprints) - set(targets))
    if unknown:
        raise UsageError(f"fingerprint for variant {unknown[0]}, which is not published (variants: {', '.join(targets)})")
    release = Release(
        name=job.name, version=job.version, julia_version=jv,
        project=job.project or infer_project(trees[0], job.name), shared=trees[0].summary(),
        variants=tuple(_with_fingerprints(variant_record(t, target, job.variants[target], jv, job.warnings),
                                          job.fingerprints.get(target, ()), jv)
                       for t, target in zip(trees[1:], targets)),
    ).sealed()
    # round-trip through the parser: the publisher never writes a document a node would reject
    Release.from_bytes(release.raw, where=f"new release {release.ref}")
    return release


def _with_fingerprints(variant: Variant, fps: Sequence[Fingerprint], julia_version: str) -> Variant:
    """``variant`` with the CI fingerprints recorded: each must be of this variant's Julia,
    architecture and sysimage bytes (made on a host that ran exactly this build)."""
    from depotdelivery._record import replace

    for fp in fps:
        where = f"fingerprint {fp.reference or fp.hash[:16]} for variant {variant.target}"
        if fp.julia_version != julia_version or fp.arch != variant.arch:
            raise UsageError(f"{where}: made with Julia {fp.julia_version} on {fp.arch}, the variant is "
                             f"Julia {julia_version} on {variant.arch}")
        want = None if variant.sysimage is None else variant.sysimage.blake3
        got = None if fp.sysimage is None else fp.sysimage.blake3
        if got != want:
            raise UsageError(f"{where}: made with sysimage {str(got)[:16]}..., the variant's is {str(want)[:16]}... "
                             f"(fingerprint the build being published)")
    return replace(variant, fingerprints=tuple(fps)) if fps else variant


def _already_published(job: _Job, release: Release, trees: list[InputTree]) -> bool:
    """True when the identical release is committed already; ConflictError when other content
    holds its name, or an unfinished --in-place build sits at its path without ``in_place``."""
    existing = job.final / "release.json"
    if existing.exists():
        old_raw = existing.read_bytes()
        if old_raw == release.raw:
            return True
        repo = Repository.open(job.root)
        old = Release.from_bytes(old_raw, where=str(existing))
        raise ConflictError(
            f"release {release.ref} already exists in {job.root} with different content "
            f"({_describe_conflict(repo, old, release, trees)}); releases are immutable: publish a new version")
    if not job.in_place and job.final.exists():
        raise ConflictError(f"{job.final} exists but holds no committed release (an unfinished --in-place build?); "
                            "remove it or publish it with --in-place")
    return False


def _commit(job: _Job, release: Release, trees: list[InputTree], ws: WriteStats, totals: tuple[int, int]) -> bool:
    """Write and commit the release (in a CVMFS transaction of its own unless the caller's is
    open), then point the channel; False when a concurrent publisher committed it first."""
    from depotdelivery.publisher.cvmfs import transaction

    root, final = job.root, job.final
    created: list[Path] = []
    message = f"depotdelivery: release {release.ref} {release.id[:16]}"
    if job.commit is not None:
        job.commit.message = message
    with ExitStack() as stack:
        if job.cvmfs is not None and job.commit is None:
            stack.enter_context(transaction(job.cvmfs, tag=f"{job.name}-{job.version}", message=message))
        stack.enter_context(dir_times_restored_on_error(
            root, root / "releases", root / "releases" / job.name, final, root / "channels"))
        try:
            raced = _write(job, release, trees, ws, totals, created)
        except BaseException as exc:
            if job.progress is not None:
                job.progress.finish()
            undo(created)
            if isinstance(exc, OSError) and not isinstance(exc, DepotDeliveryError):
                raise publish_error(exc, root, f"publishing {release.ref}") from None
            raise
        # the release is committed (renamed into place, or its release.json written): readers
        # may already use it, so a failing channel update below no longer takes it back
        _point_channel(job, release, in_transaction=True)
    return not raced


def _write(job: _Job, release: Release, trees: list[InputTree], ws: WriteStats, totals: tuple[int, int],
           created: list[Path]) -> bool:
    """Under the release name's lock: write the release, unless another publisher committed
    the identical one meanwhile (True; different content: ConflictError)."""
    repo = _open_or_init(job.root, created)
    mkdirs(job.root / "releases" / job.name, created)
    with dir_lock(job.root / "releases" / job.name), _storage_recorded(job, repo):  # publishers of one name
        existing = job.final / "release.json"
        if existing.exists():  # another publisher committed while we hashed
            if existing.read_bytes() != release.raw:
                raise ConflictError(f"release {release.ref} was published concurrently with different "
                                    "content; releases are immutable: publish a new version")
            return True
        catalogs = (job.storage or repo.storage).kind == "cvmfs" or job.cvmfs is not None
        if job.in_place:
            write_documents(job.final, trees, release, job.keys, created)
            if catalogs:
                lay_release_catalogs(job.final, trees, created)
        else:
            # Inside a CVMFS transaction a hard link to an earlier release's file copies that
            # file up whole into the overlay's scratch area (its lower layer is read-only), the
            # publish then re-processes the old path too, and CVMFS splits links across
            # directories anyway (doc-cvmfs cpt-details "File Catalog": emulated hard links work
            # within one directory only; CVMFS_IGNORE_XDIR_HARDLINKS). CVMFS de-duplicates by
            # content itself, so --cvmfs writes plain copies (benchmarks/bench_cvmfs.py).
            links = LinkIndex(repo, job.name) if job.cvmfs is None else None
            write_release(job.final, trees, release, job.keys, links, created, ws, job.progress, totals,
                          catalogs=catalogs)
    return False


def _wanted_storage(job: _Job, repo: Repository) -> Storage | None:
    """The storage record to write, None to keep the repository's. A finer mtime granularity
    than recorded is refused while releases exist: they were stored at the coarser one (a CVMFS
    catalog keeps old entries' whole seconds after CVMFS_ENABLE_MTIME_NS is switched on)."""
    want = job.storage
    if want is None and job.cvmfs is not None and repo.storage.kind != "cvmfs":
        want = STORAGE_NAMES["cvmfs"]
    if want is None or want == repo.storage:
        return None
    if want.mtime_resolution_ns < repo.storage.mtime_resolution_ns and repo.releases():
        raise UsageError(f"{job.root} records {repo.storage.name} storage and holds releases stored with "
                         f"{repo.storage.mtime_resolution_ns} ns mtimes: recording {want.name} would make verify "
                         "report them; publish into a new repository instead")
    return want


@contextmanager
def _storage_recorded(job: _Job, repo: Repository) -> Iterator[None]:
    """Record what the storage preserves in ``depotdelivery-repo.json`` (inside the transaction
    with ``cvmfs``) for the body; put the old record back if the body fails."""
    want = _wanted_storage(job, repo)
    if want is None:
        yield
        return
    path = job.root / REPO_FILE
    # releases/'s lock for as long as the temporaries below exist: repo-gc removes a leftover
    # one only while holding it (store.debris). Rare (the storage record changes once), so
    # serialising publishers of other names meanwhile costs little.
    with dir_lock(job.root / "releases"):
        # the old record kept as a second name: putting it back is a rename, which needs no space
        # on the full filesystem that may be why the body failed
        old = temp_name(path)
        os.link(path, old)
        try:
            write_atomic(path, canonical_json(repo_document(repo.repo_id, want)))
            yield
        except BaseException:
            os.replace(old, path)
            raise
        os.unlink(old)


def _point_channel(job: _Job, release: Release, *, in_transaction: bool) -> None:
    """Point the job's channel at the committed ``release`` (in a CVMFS transaction of its own
    unless ``in_transaction``), keeping its new seq in ``job.channel_seq``. A failure (the
    release stays published either way) is kept in ``job.channel_error``, naming the command
    that finishes the job."""
    channel, cvmfs = job.channel, job.cvmfs
    if channel is None:
        return
    try:
        job.channel_seq = set_channel(job.root, channel, release.ref, job.keys, expires=job.expires,
                                      cvmfs=None if in_transaction else cvmfs, if_changed=True).seq
    except (DepotDeliveryError, OSError) as exc:
        reason = str(exc) if isinstance(exc, DepotDeliveryError) else f"{exc.filename}: {exc.strerror}"
        rerun = f"depotdelivery channel set --repo {job.root} --channel {channel} --release {release.ref} --key KEY"
        job.channel_error = PublishError(f"release {release.ref} published, channel {channel} not updated: {reason}; "
                                         f"run `{rerun}{'' if cvmfs is None else f' --cvmfs {cvmfs}'}`")
