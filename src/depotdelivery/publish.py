"""Publisher: ingest a depot and its variants -> hash -> listings -> sign -> commit atomically."""
from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import stat
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from depotdelivery.errors import (
    ConflictError,
    DepotDeliveryError,
    InputError,
    PublishError,
    UsageError,
)
from depotdelivery.channels import DEFAULT_EXPIRY, set_channel
from depotdelivery.progress import ProgressLine
from depotdelivery.store._fields import check_name
from depotdelivery.store.atomic import dir_lock, dir_times_restored_on_error, fsync_dir, syncfs, temp_name, write_atomic
from depotdelivery.store.canonical import canonical_json
from depotdelivery.store.hashing import FileChangedError, HashCache, hash_file
from depotdelivery.store.keys import PrivateKey, sign, signing_keys
from depotdelivery.store.listing import ListingEntry, encode_listing_files, resolve_inside
from depotdelivery.store.release import Release, SysimageModule, SysimageRef, Tree, Variant
from depotdelivery.store.repo import REPO_FILE, Repository, listing_bytes, repo_document, repo_unavailable
from depotdelivery.store.walk import walk

if TYPE_CHECKING:
    from depotdelivery.cvmfs import Commit

__all__ = [
    "MODULES_FILE",
    "PublishResult",
    "VariantInput",
    "default_hash_cache_dir",
    "init_repository",
    "publish",
]

_COMPILED = re.compile(r"(?:depot/)?compiled/v(\d+\.\d+)")
# Beside a variant's sysimage: the modules it contains with their build ids (see _sysimage_modules).
MODULES_FILE = "sysimage-modules.json"


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


# ---- repository root ---------------------------------------------------------------------------

def init_repository(root: str | os.PathLike[str]) -> Repository:
    """Create (or open) a repository at ``root``: ``depotdelivery-repo.json`` with a random id."""
    r = Path(root)
    try:
        r.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _os_error(exc, r, "creating the repository root") from None
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
            write_atomic(root / REPO_FILE, canonical_json(repo_document(secrets.token_hex(16))))
        except OSError as exc:
            raise _os_error(exc, root, "initialising the repository") from None
        created.append(root / REPO_FILE)
    return Repository.open(root)


def _os_error(exc: OSError, where: Path, doing: str) -> PublishError:
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        what = "is full (no space left on device)"
    elif exc.errno == errno.EROFS:
        what = "is read-only (on CVMFS, publish with --cvmfs FQRN to open a transaction)"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        what = "is not writable by this user"
    else:
        what = f"failed: {exc.strerror or exc}"
    path = exc.filename or where
    return PublishError(f"{doing}: {path} {what}; the repository was left as it was")


# ---- scanning ----------------------------------------------------------------------------------

@dataclass(slots=True)
class _Item:
    rel: str
    st: os.stat_result
    kind: str
    target: str | None = None
    digest: str | None = None


@dataclass(slots=True)
class _TreeIn:
    """One tree being published: where it is read from and where it goes in the release."""

    src: Path
    dest: str  # "depot" or "variants/<target>"
    items: list[_Item] = field(default_factory=list)
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
    def files(self) -> list[_Item]:
        return [it for it in self.items if it.kind == "file"]

    def summary(self) -> Tree:
        files = self.files
        return Tree(path=self.dest, tree=self.tree, files=len(files), bytes=sum(i.st.st_size for i in files))


def _scan(top: Path) -> list[_Item]:
    """Every entry below ``top`` (sorted by path); refuses what a release cannot hold."""
    try:
        if not stat.S_ISDIR(os.stat(top).st_mode):
            raise InputError(f"{top} is not a directory")
        entries = walk(top)
    except OSError as exc:
        raise InputError(f"cannot read {exc.filename or top}: {exc.strerror}") from None
    items: list[_Item] = []
    for e in entries:
        try:
            e.rel.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"{os.fsencode(e.path)!r}: file name is not UTF-8; listings hold UTF-8 paths only") from None
        m = e.st.st_mode
        if stat.S_ISDIR(m):
            items.append(_Item(e.rel, e.st, "dir"))
        elif stat.S_ISREG(m):
            items.append(_Item(e.rel, e.st, "file"))
        elif stat.S_ISLNK(m):
            items.append(_Item(e.rel, e.st, "symlink", target=os.readlink(e.path)))
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


# ---- hashing ----------------------------------------------------------------------------------

def _hash_trees(trees: list[_TreeIn], cache: HashCache, progress: ProgressLine | None) -> int:
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


# ---- release document --------------------------------------------------------------------------

def _infer_julia_version(trees: list[_TreeIn]) -> str:
    """``X.Y`` from the ``compiled/vX.Y`` directories, refined to the full version written in
    a cache-file header there (``1.11.1``) when one can be read."""
    found = {m.group(1): (t, i) for t in trees for i in t.items
             if i.kind == "dir" and (m := _COMPILED.fullmatch(i.rel))}
    if not found:
        raise UsageError("cannot infer the Julia version: no compiled/vX.Y directory in the depot; pass --julia-version")
    if len(found) > 1:
        raise UsageError(f"cannot infer the Julia version: the depot has caches for {', '.join(sorted(found))}; "
                         "pass --julia-version")
    (minor, (t, d)), = found.items()
    from depotdelivery.julia.cachefile import read_cache_file

    for i in t.items:
        if i.kind == "file" and i.rel.startswith(d.rel + "/") and i.rel.endswith(".ji"):
            try:
                full = read_cache_file(t.src / i.rel, header_only=True).julia_version
            except (DepotDeliveryError, OSError, ValueError):
                continue
            if full == minor or full.startswith(minor + "."):
                return full
    return minor


def _infer_project(shared: _TreeIn, name: str) -> str:
    envs = [i.rel for i in shared.items if i.kind == "dir" and i.rel.count("/") == 1 and i.rel.startswith("environments/")]
    if f"environments/{name}" in envs:
        return f"environments/{name}"
    if len(envs) == 1:
        return envs[0]
    listed = ", ".join(envs) or "none"
    raise UsageError(f"cannot infer the environment to activate (environments: {listed}); pass --project environments/NAME")


def _find_sysimage(t: _TreeIn, vi: VariantInput) -> _Item | None:
    files = {i.rel: i for i in t.files}
    if vi.sysimage is not None:
        p = vi.sysimage if vi.sysimage.is_absolute() else vi.dir / vi.sysimage
        try:
            rel = p.resolve().relative_to(vi.dir.resolve()).as_posix()
        except ValueError:
            raise UsageError(f"sysimage {p} must be inside the variant directory {vi.dir}") from None
        if rel not in files:
            raise UsageError(f"sysimage {p} is not a regular file in {vi.dir}")
        return files[rel]
    top = [i for rel, i in files.items() if "/" not in rel and rel.endswith((".so", ".dylib", ".dll"))]
    return top[0] if len(top) == 1 else None


def _variant(t: _TreeIn, target: str, vi: VariantInput, julia_version: str, warnings: list[str]) -> Variant:
    from depotdelivery.publish_clones import clone_targets, pkgimage_targets

    si = _find_sysimage(t, vi)
    cpu_target = vi.cpu_target or target
    clones, source, arch = clone_targets(
        None if si is None else t.src / si.rel, cpu_target, vi.arch, julia_version, warnings, where=f"variant {target}")
    caches = (t.src / i.rel for i in t.files if i.rel.startswith("depot/compiled/") and i.rel.endswith(".ji"))
    pkg_targets = pkgimage_targets(caches, arch, julia_version, warnings, where=f"variant {target}")
    summary = t.summary()
    return Variant(
        target=target, arch=arch, cpu_target=cpu_target, path=t.dest, tree=t.tree, files=summary.files,
        bytes=summary.bytes, clones_source=source, clones=clones, pkgimage_targets=pkg_targets,
        sysimage=None if si is None else SysimageRef(path=f"{t.dest}/{si.rel}", blake3=si.digest or "", size=si.st.st_size),
        sysimage_modules=_sysimage_modules(t, si),
    )


def _sysimage_modules(t: _TreeIn, si: _Item | None) -> tuple[SysimageModule, ...]:
    """The modules baked into the sysimage, from ``sysimage-modules.json`` beside it (the CI
    writes it from ``Base.loaded_modules_array()`` / ``Base.module_build_id``; julia.synth does
    too): ``[{"name", "uuid", "build_id": "<32 hex>"}]``. None listed: an empty tuple."""
    if si is None:
        return ()
    rel = f"{si.rel.rpartition('/')[0]}/{MODULES_FILE}".lstrip("/")
    if rel not in {i.rel for i in t.files}:
        return ()
    where = str(t.src / rel)
    try:
        doc = json.loads((t.src / rel).read_bytes())
    except (OSError, ValueError) as exc:
        raise InputError(f"{where}: unreadable ({exc})") from None
    if not isinstance(doc, list):
        raise InputError(f"{where}: expected a list of {{name, uuid, build_id}}")
    out = []
    for n, m in enumerate(doc):
        if not isinstance(m, dict) or not all(isinstance(m.get(k), str) for k in ("name", "uuid", "build_id")):
            raise InputError(f"{where}: entry {n}: expected {{name, uuid, build_id}} strings")
        out.append(SysimageModule(name=m["name"], uuid=m["uuid"].lower(), build_id=m["build_id"].lower()))
    return tuple(out)


# ---- writing -----------------------------------------------------------------------------------

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


class _LinkIndex:
    """Files of earlier releases by (BLAKE3, size, mode, mtime): a hard link to one of them
    shares the inode, and an inode carries mode and mtime, so all four must be equal."""

    def __init__(self, repo: Repository, name: str) -> None:
        self._by_key: dict[tuple[str, int, int, int], Path] = {}
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
            for line in listing_bytes(d / "listings", tree.tree, f"release {rel.ref}").splitlines():
                e = json.loads(line)
                if e.get("type") == "file":
                    self._by_key.setdefault((e["blake3"], e["size"], e["mode"], e["mtime_ns"]), d / tree.path / e["path"])

    def find(self, it: _Item) -> Path | None:
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
class _WriteStats:
    linked: int = 0
    copied_bytes: int = 0
    files: int = 0
    bytes: int = 0


def _copy_file(src: Path, dst: Path, it: _Item) -> None:
    """Copy one file (kernel-side ``copy_file_range`` when possible) and check that the source
    is the one that was hashed: same size, mtime and ctime before and after the copy."""
    fin = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        before = os.fstat(fin)
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            left = before.st_size
            while left > 0:
                try:
                    n = os.copy_file_range(fin, fout, left)
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                        raise
                    n = os.write(fout, os.read(fin, min(left, 1 << 20)))
                if n == 0:
                    break
                left -= n
        finally:
            os.close(fout)
        after = os.fstat(fin)
    finally:
        os.close(fin)
    sig = (it.st.st_size, it.st.st_mtime_ns, it.st.st_ctime_ns)
    if (before.st_size, before.st_mtime_ns, before.st_ctime_ns) != sig or (
            after.st_size, after.st_mtime_ns, after.st_ctime_ns) != sig or left:
        raise PublishError(f"{src} changed while it was being published; publish again when the build has finished")


def _write_tree(t: _TreeIn, dest: Path, links: _LinkIndex | None, ws: _WriteStats,
                progress: ProgressLine | None) -> None:
    os.mkdir(dest, 0o700)
    for it in t.items:
        dst = dest / it.rel
        if it.kind == "dir":
            os.mkdir(dst, 0o700)
        elif it.kind == "symlink":
            os.symlink(it.target or "", dst)
            os.utime(dst, ns=(it.st.st_mtime_ns, it.st.st_mtime_ns), follow_symlinks=False)
        else:
            if _link(links.find(it) if links is not None else None, dst):
                ws.linked += 1
            else:
                _copy_file(t.src / it.rel, dst, it)
                os.chmod(dst, stat.S_IMODE(it.st.st_mode))
                os.utime(dst, ns=(it.st.st_mtime_ns, it.st.st_mtime_ns))
                ws.copied_bytes += it.st.st_size
            ws.files += 1
            ws.bytes += it.st.st_size
            if progress is not None:
                progress.update(ws.files, ws.bytes)
    # directories last, deepest first: adding entries would move their mtimes again
    for it in reversed(t.items):
        if it.kind == "dir":
            os.chmod(dest / it.rel, stat.S_IMODE(it.st.st_mode))
            os.utime(dest / it.rel, ns=(it.st.st_mtime_ns, it.st.st_mtime_ns))
    top_st = os.stat(t.src)
    os.chmod(dest, stat.S_IMODE(top_st.st_mode))


def _link(old: Path | None, dst: Path) -> bool:
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


def _write_documents(d: Path, trees: list[_TreeIn], release: Release, keys: tuple[PrivateKey, ...], created: list[Path],
                     links: _LinkIndex | None = None) -> None:
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


def _undo(created: list[Path]) -> None:
    for p in reversed(created):
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except FileNotFoundError:
            pass


def _mkdirs(p: Path, created: list[Path]) -> None:
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


def _brief(value: object, limit: int = 80) -> str:
    # a conflict message stays one readable line: long values (clone lists, sysimage
    # module build ids) are cut, the full documents are in the repository for diffing
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def _describe_conflict(repo: Repository, old: Release, new: Release, trees: list[_TreeIn]) -> str:
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
        before = old_variants.get(v.target)
        if before is not None:
            after = v.to_dict()
            diffs += [f"variant {v.target} {k} {_brief(before[k])} -> {_brief(after[k])}" for k in sorted(after)
                      if k not in ("tree", "files", "bytes", "sysimage") and before[k] != after[k]]
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
    in_place: bool = False,
    julia_version: str | None = None,
    project: str | None = None,
    progress: ProgressLine | None = None,
    hash_cache_dir: Path | None = None,
    use_hash_cache: bool = True,
) -> PublishResult:
    """Publish ``depot`` (+ ``variants``) as release ``name/version`` of the repository at
    ``repo_root``, signed with ``key`` (one key, or several: each signs ``release.json`` and the
    channel document, for nodes with a signature threshold); optionally point ``channel`` at it.

    Identical inputs give the identical release id and write nothing; different content
    under an existing name/version raises ConflictError. Any failure before the release is
    committed leaves the repository exactly as it was; a failing channel update after it keeps
    the release and raises PublishError saying so. With ``cvmfs`` the writes happen inside a CVMFS
    transaction (opened here, or, with ``in_place``, by the caller who built the content at its
    final path); every exit publishes or aborts it, none leaves it open.
    """
    from depotdelivery.cvmfs import transaction

    t0 = time.monotonic()
    with ExitStack() as ci:
        # --in-place --cvmfs: the caller's transaction is open from the start, so entering it
        # here first means a failure anywhere (arguments, scanning, hashing, a conflict) aborts it
        commit = ci.enter_context(transaction(
            cvmfs, tag=f"{name}-{version}", message=f"depotdelivery: release {name}/{version}",
            already_open=True)) if in_place and cvmfs is not None else None
        result, channel_error = _publish(
            Path(repo_root), name, version, depot, variants, signing_keys(key), channel=channel, expires=expires, cvmfs=cvmfs,
            in_place=in_place, julia_version=julia_version, project=project, progress=progress,
            hash_cache_dir=hash_cache_dir, use_hash_cache=use_hash_cache, commit=commit, t0=t0)
    if channel_error is not None:
        raise channel_error  # only now: every transaction holding the release has been published
    return result


def _publish(root: Path, name: str, version: str, depot: str | os.PathLike[str] | None,
             variants: Mapping[str, VariantInput], keys: tuple[PrivateKey, ...], *, channel: str | None,
             expires: float | None, cvmfs: str | None, in_place: bool, julia_version: str | None,
             project: str | None, progress: ProgressLine | None, hash_cache_dir: Path | None,
             use_hash_cache: bool, commit: Commit | None, t0: float) -> tuple[PublishResult, PublishError | None]:
    """The body of :func:`publish`; ``commit``: the caller's open CVMFS transaction (--in-place
    --cvmfs), else None. Returns the result and the channel update's failure, if any."""
    check_name("release name", name)
    check_name("release version", version)
    for target in variants:
        check_name("variant target", target)
    final = root / "releases" / name / version
    if in_place:
        if depot is not None and Path(depot).resolve() != (final / "depot").resolve():
            raise UsageError(f"--in-place publishes the content already at {final}/depot, not {depot}")
        for target, vi in variants.items():
            if vi.dir.resolve() != (final / "variants" / target).resolve():
                raise UsageError(f"--in-place: variant {target} must be at {final}/variants/{target}, not {vi.dir}")
        depot = final / "depot"
        # every variant already built in place is part of the release, named or not
        vroot = final / "variants"
        found = sorted(e.name for e in os.scandir(vroot) if e.is_dir(follow_symlinks=False)) if vroot.is_dir() else []
        variants = {**{t: VariantInput(dir=vroot / t) for t in found}, **variants}
        for target in variants:
            check_name("variant target", target)
    if depot is None:
        raise UsageError("publish needs --depot DIR")
    if not root.is_dir():
        raise repo_unavailable(root, "does not exist or is not a directory (create it, or mount it)")

    trees = [_TreeIn(src=Path(depot), dest="depot")]
    trees += [_TreeIn(src=vi.dir, dest=f"variants/{target}") for target, vi in sorted(variants.items())]
    for t in trees:
        t.items = _scan(t.src)
    cache = HashCache.for_tree(hash_cache_dir or default_hash_cache_dir(), Path(depot)) if use_hash_cache else HashCache(None)
    hashed = _hash_trees(trees, cache, progress)
    cache.save()
    for t in trees:
        t.tree, t.listing_files = encode_listing_files(t.entries())

    warnings: list[str] = []
    jv = julia_version or _infer_julia_version(trees)
    release = Release(
        name=name, version=version, julia_version=jv, project=project or _infer_project(trees[0], name),
        shared=trees[0].summary(),
        variants=tuple(_variant(t, target, variants[target], jv, warnings)
                       for t, target in zip(trees[1:], sorted(variants))),
    ).sealed()
    # round-trip through the parser: the publisher never writes a document a node would reject
    Release.from_bytes(release.raw, where=f"new release {release.ref}")
    total_files = sum(len(t.files) for t in trees)
    total_bytes = sum(t.summary().bytes for t in trees)

    def result(created: bool, ws: _WriteStats | None, seq: int | None) -> PublishResult:
        return PublishResult(
            release_id=release.id, ref=release.ref, path=final, created=created, files=total_files,
            bytes=total_bytes, hashed_bytes=hashed, linked_files=ws.linked if ws else 0,
            copied_bytes=ws.copied_bytes if ws else 0, channel_seq=seq, warnings=tuple(warnings),
            seconds=time.monotonic() - t0)

    existing = final / "release.json"
    if existing.exists():
        old_raw = existing.read_bytes()
        if old_raw == release.raw:
            if commit is not None:
                # nothing new to tag (the release's tag exists already): close the caller's
                # transaction with an untagged publish, holding the channel update if any
                commit.tag = None
                commit.message = f"depotdelivery: release {release.ref} unchanged"
            seq, channel_error = _point_channel(root, channel, release, keys, expires, cvmfs, in_transaction=commit is not None)
            return result(False, None, seq), channel_error
        repo = Repository.open(root)
        old = Release.from_bytes(old_raw, where=str(existing))
        raise ConflictError(
            f"release {release.ref} already exists in {root} with different content "
            f"({_describe_conflict(repo, old, release, trees)}); releases are immutable: publish a new version")
    if not in_place and final.exists():
        raise ConflictError(f"{final} exists but holds no committed release (an unfinished --in-place build?); "
                            "remove it or publish it with --in-place")

    from depotdelivery.cvmfs import transaction

    created: list[Path] = []
    ws = _WriteStats()
    message = f"depotdelivery: release {release.ref} {release.id[:16]}"
    if commit is not None:
        commit.message = message
    with ExitStack() as stack:
        if cvmfs is not None and commit is None:
            stack.enter_context(transaction(cvmfs, tag=f"{name}-{version}", message=message))
        stack.enter_context(dir_times_restored_on_error(
            root, root / "releases", root / "releases" / name, final, root / "channels"))
        try:
            repo = _open_or_init(root, created)
            _mkdirs(root / "releases" / name, created)
            with dir_lock(root / "releases" / name):  # publishers of one release name
                raced = existing.exists()  # another publisher committed while we hashed
                if raced:
                    if existing.read_bytes() != release.raw:
                        raise ConflictError(f"release {release.ref} was published concurrently with different "
                                            "content; releases are immutable: publish a new version")
                elif in_place:
                    _write_documents(final, trees, release, keys, created)
                else:
                    links = _LinkIndex(repo, name) if cvmfs is None else None  # CVMFS deduplicates itself
                    _write_release(final, trees, release, keys, links, created, ws, progress,
                                   (total_files, total_bytes))
        except BaseException as exc:
            if progress is not None:
                progress.finish()
            _undo(created)
            if isinstance(exc, OSError) and not isinstance(exc, DepotDeliveryError):
                raise _os_error(exc, root, f"publishing {release.ref}") from None
            raise
        # the release is committed (renamed into place, or its release.json written): readers
        # may already use it, so a failing channel update below no longer takes it back
        seq, channel_error = _point_channel(root, channel, release, keys, expires, cvmfs, in_transaction=True)
    return result(not raced, ws, seq), channel_error


def _write_release(final: Path, trees: list[_TreeIn], release: Release, keys: tuple[PrivateKey, ...],
                   links: _LinkIndex | None, created: list[Path], ws: _WriteStats,
                   progress: ProgressLine | None, totals: tuple[int, int]) -> None:
    """Write the whole release into a temporary directory next to ``final``, then rename it
    into place: a reader never sees a half-written release. ``totals``: (files, bytes)."""
    tmp = temp_name(final)
    os.mkdir(tmp, 0o755)
    created.append(tmp)
    if progress is not None:
        progress.start("writing", *totals)
    for t in trees:
        _mkdirs((tmp / t.dest).parent, [])
        _write_tree(t, tmp / t.dest, links, ws, progress)
    if progress is not None:
        progress.finish()
    _write_documents(tmp, trees, release, keys, [], links)
    syncfs(tmp)
    os.rename(tmp, final)
    created[-1] = final
    fsync_dir(final.parent)


def _point_channel(root: Path, channel: str | None, release: Release, keys: tuple[PrivateKey, ...], expires: float | None,
                   cvmfs: str | None, *, in_transaction: bool) -> tuple[int | None, PublishError | None]:
    """Point ``channel`` at the committed ``release`` (in a CVMFS transaction of its own unless
    ``in_transaction``): its new seq, or the failure (the release stays published either way)
    naming the command that finishes the job."""
    if channel is None:
        return None, None
    try:
        return set_channel(root, channel, release.ref, keys, expires=expires, cvmfs=None if in_transaction else cvmfs,
                           if_changed=True).seq, None
    except (DepotDeliveryError, OSError) as exc:
        reason = str(exc) if isinstance(exc, DepotDeliveryError) else f"{exc.filename}: {exc.strerror}"
        rerun = f"depotdelivery channel set --repo {root} --channel {channel} --release {release.ref} --key KEY"
        return None, PublishError(f"release {release.ref} published, channel {channel} not updated: {reason}; "
                                  f"run `{rerun}{'' if cvmfs is None else f' --cvmfs {cvmfs}'}`")
