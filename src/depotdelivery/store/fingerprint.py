"""Module-graph fingerprints, the format both sides read: the module graph a job's Julia loads,
as canonical JSON with one BLAKE3 hash over it, and the explanation of a difference between two.

A fingerprint holds the Julia version, the sysimage (its BLAKE3 and the clone Julia picks on the
host) and, per package in load order, the cache file used (its path relative to the depot it is
in and its BLAKE3), the build id and checksum from its header, and the dependencies (name, UUID,
build id) it was built against; a package Julia would recompile carries the reason instead.
node/fingerprint.py makes one from the ``check`` prediction; the publisher records CI's in
``release.json`` (store/release.py ``Variant.fingerprints``).

Only ``graph`` is hashed. ``reference`` (who made it) and ``meta`` (host, release, variant,
CPU name, the long explanation of each recompile) are carried along but never make two equal
graphs differ: a node and the CI host it is compared with have other depot paths and names.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from depotdelivery._record import field, record
from depotdelivery.errors import FormatError

__all__ = [
    "FORMAT",
    "Dependency",
    "Difference",
    "Fingerprint",
    "FingerprintDiff",
    "PackageEntry",
    "SysimageEntry",
    "compare",
    "load",
    "load_order",
    "parse",
]

FORMAT = 1
_HEX = re.compile(r"[0-9a-f]+")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_VERDICTS = ("load", "recompile", "not installed")


@record(kw_only=True)
class Dependency:
    """A module a cache file was built against (its header's required modules)."""

    name: str
    uuid: str | None
    build_id: str  # 32 hex digits

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "uuid": self.uuid, "build_id": self.build_id}


@record(kw_only=True)
class PackageEntry:
    """One package of the graph: the cache Julia loads, or the reason it recompiles."""

    name: str
    uuid: str | None
    verdict: str  # "load", "recompile" or "not installed" (julia/stale.py)
    cache: str | None = None  # relative to the depot it is in: compiled/v1.11/Foo/abcDE_fghIJ.ji
    cache_blake3: str | None = None
    ocache: str | None = None  # the pkgimage .so next to it (relative), None for a .ji without native code
    ocache_blake3: str | None = None
    build_id: str | None = None  # 32 hex digits: checksum << 64 | the worklist's build_id.lo
    checksum: str | None = None  # 16 hex digits: the header's checksum
    deps: tuple[Dependency, ...] = ()
    reason: str | None = None  # a julia/stale.py REASONS key when the verdict is not "load"
    # the clone of the pkgimage Julia picks for the JIT target (None: no native code, or unknown)
    clone_index: int | None = None
    clone_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "uuid": self.uuid, "verdict": self.verdict, "cache": self.cache,
                "cache_blake3": self.cache_blake3, "ocache": self.ocache, "ocache_blake3": self.ocache_blake3,
                "build_id": self.build_id, "checksum": self.checksum, "deps": [d.to_dict() for d in self.deps],
                "reason": self.reason, "clone_index": self.clone_index, "clone_name": self.clone_name}


@record(kw_only=True)
class SysimageEntry:
    """The sysimage Julia starts with and the clone of it Julia picks on the host."""

    blake3: str
    clone_index: int | None  # None: the image's clone targets are not known
    clone_name: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"blake3": self.blake3, "clone_index": self.clone_index, "clone_name": self.clone_name}


@record(kw_only=True)
class Fingerprint:
    """A module graph (hashed) with who made it (``reference``) and context (``meta``, not hashed)."""

    julia_version: str
    arch: str
    sysimage: SysimageEntry | None
    packages: tuple[PackageEntry, ...]
    reference: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    def graph(self) -> dict[str, Any]:
        """The hashed part."""
        return {"julia_version": self.julia_version, "arch": self.arch,
                "sysimage": None if self.sysimage is None else self.sysimage.to_dict(),
                "packages": [p.to_dict() for p in self.packages]}

    @property
    def hash(self) -> str:
        """BLAKE3 of the canonical JSON of :meth:`graph`."""
        from depotdelivery.store.canonical import canonical_json
        from depotdelivery.store.hashing import hash_bytes

        return hash_bytes(canonical_json(self.graph()))

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "hash": self.hash, "reference": self.reference, "meta": dict(self.meta),
                "graph": self.graph()}

    def to_bytes(self) -> bytes:
        """Canonical JSON of :meth:`to_dict` (what ``depotdelivery fingerprint --json`` prints)."""
        from depotdelivery.store.canonical import canonical_json

        return canonical_json(self.to_dict())


# -- reading ---------------------------------------------------------------------------------------

def _fields(obj: Any, where: str, path: str = "") -> Any:
    from depotdelivery.store.fields import Fields

    return Fields(obj, where, path)


def _opt_hex(f: Any, key: str, digits: int | None = None) -> str | None:
    value = f.str(key, optional=True)
    if value is not None and (not _HEX.fullmatch(value) or (digits is not None and len(value) != digits)):
        raise f.error(key, f"expected {digits or 'some'} lowercase hex digits, got {value!r}")
    return value


def _uuid(f: Any, key: str) -> str | None:
    value = f.str(key, optional=True)
    if value is not None and not _UUID.fullmatch(value):
        raise f.error(key, f"invalid UUID {value!r}")
    return value


def _package(f: Any) -> PackageEntry:
    f.only(frozenset({"name", "uuid", "verdict", "cache", "cache_blake3", "ocache", "ocache_blake3",
                      "build_id", "checksum", "deps", "reason", "clone_index", "clone_name"}))
    verdict = f.str("verdict")
    if verdict not in _VERDICTS:
        raise f.error("verdict", f"expected one of {', '.join(_VERDICTS)}, got {verdict!r}")
    deps = []
    for d in f.subs("deps"):
        d.only(frozenset({"name", "uuid", "build_id"}))
        deps.append(Dependency(name=d.str("name"), uuid=_uuid(d, "uuid"), build_id=_opt_hex(d, "build_id", 32) or ""))
    entry = PackageEntry(name=f.str("name"), uuid=_uuid(f, "uuid"), verdict=verdict, cache=f.str("cache", optional=True),
                         cache_blake3=_opt_hex(f, "cache_blake3", 64), ocache=f.str("ocache", optional=True),
                         ocache_blake3=_opt_hex(f, "ocache_blake3", 64), build_id=_opt_hex(f, "build_id", 32),
                         checksum=_opt_hex(f, "checksum", 16), deps=tuple(deps), reason=f.str("reason", optional=True),
                         clone_index=f.int("clone_index", minimum=0, optional=True),
                         clone_name=f.str("clone_name", optional=True))
    if (verdict == "load") != (entry.cache is not None):
        raise f.error("cache", "a package that loads names its cache file, one that does not names none")
    return entry


def parse(obj: Any, *, where: str, path: str = "") -> Fingerprint:
    """A fingerprint from its JSON object (``to_dict``); FormatError naming ``where`` and the
    field (below ``path`` when it is part of a larger document) for anything malformed,
    including a ``hash`` that is not the hash of its graph."""
    f = _fields(obj, where, path)
    f.only(frozenset({"format", "hash", "reference", "meta", "graph"}))
    version = f.int("format")
    if version != FORMAT:
        raise f.error("format", f"unsupported fingerprint format {version} (this depotdelivery reads {FORMAT})")
    g = f.sub("graph")
    assert g is not None
    g.only(frozenset({"julia_version", "arch", "sysimage", "packages"}))
    s = g.sub("sysimage", optional=True)
    sysimage = None
    if s is not None:
        s.only(frozenset({"blake3", "clone_index", "clone_name"}))
        sysimage = SysimageEntry(blake3=_opt_hex(s, "blake3", 64) or "", clone_index=s.int("clone_index", minimum=0, optional=True),
                                 clone_name=s.str("clone_name", optional=True))
    meta = f.sub("meta", optional=True)
    fp = Fingerprint(julia_version=g.str("julia_version"), arch=g.str("arch"), sysimage=sysimage,
                     packages=tuple(_package(p) for p in g.subs("packages")), reference=f.str("reference"),
                     meta=dict(meta.obj) if meta is not None else {})
    seen: set[tuple[str | None, str]] = set()
    for i, p in enumerate(fp.packages):
        if (p.uuid, p.name) in seen:
            raise g.error(f"packages[{i}]", f"package {p.name} [{p.uuid}] is listed twice")
        seen.add((p.uuid, p.name))
    claimed = f.str("hash")
    if claimed != fp.hash:
        raise f.error("hash", f"{claimed[:16]}... is not the hash of the graph ({fp.hash[:16]}...): edited or corrupt")
    return fp


def load(path: str | os.PathLike[str]) -> Fingerprint:
    """Read a fingerprint file (``depotdelivery fingerprint --json > FILE``)."""
    import json

    where = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(64 << 20)
    except OSError as exc:
        from depotdelivery.errors import UsageError

        raise UsageError(f"fingerprint {where}: cannot read: {exc.strerror}") from None
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FormatError(f"fingerprint {where}: not a JSON document ({str(exc)[:80]})") from None
    return parse(obj, where=f"fingerprint {where}")


def load_order(entries: Sequence[PackageEntry]) -> tuple[PackageEntry, ...]:
    """Dependencies before their dependents (the order Julia loads them in: a cache's required
    modules are loaded first), ties by name; packages outside the graph's edges by name."""
    by_key = {(e.uuid, e.name): e for e in entries}
    needs = {key: {(d.uuid, d.name) for d in e.deps} & set(by_key) for key, e in by_key.items()}
    done: list[PackageEntry] = []
    placed: set[tuple[str | None, str]] = set()
    while len(done) < len(by_key):
        ready = sorted((k for k in by_key if k not in placed and needs[k] <= placed), key=lambda k: (k[1], k[0] or ""))
        if not ready:  # a cycle (no cache can be built for one): the rest by name
            ready = sorted((k for k in by_key if k not in placed), key=lambda k: (k[1], k[0] or ""))
        key = ready[0]
        placed.add(key)
        done.append(by_key[key])
    return tuple(done)



# -- comparing --------------------------------------------------------------------------------------

@record(kw_only=True)
class Difference:
    """One line of a diff: ``kind`` is julia_version, arch, sysimage, clone (of the sysimage, or
    per package of its pkgimage), missing, recompile, cache, build_id or deps; ``package`` is
    None for the session-wide kinds."""

    kind: str
    package: str | None
    line: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "package": self.package, "line": self.line}


@record(kw_only=True)
class FingerprintDiff:
    a: Fingerprint
    b: Fingerprint
    differences: tuple[Difference, ...]

    @property
    def same(self) -> bool:
        return not self.differences

    def lines(self) -> list[str]:
        return [d.line for d in self.differences]

    def to_dict(self) -> dict[str, Any]:
        return {"same": self.same, "a": {"hash": self.a.hash, "reference": self.a.reference},
                "b": {"hash": self.b.hash, "reference": self.b.reference},
                "differences": [d.to_dict() for d in self.differences]}


def _label(fp: Fingerprint, default: str) -> str:
    return fp.reference or default


def _session_differences(a: Fingerprint, b: Fingerprint, la: str, lb: str) -> list[Difference]:
    out = []
    if a.julia_version != b.julia_version:
        out.append(Difference(kind="julia_version", package=None,
                              line=f"Julia version: {la} runs {a.julia_version}, {lb} runs {b.julia_version}"))
    if a.arch != b.arch:
        out.append(Difference(kind="arch", package=None, line=f"architecture: {la} {a.arch}, {lb} {b.arch}"))
    sa, sb = a.sysimage, b.sysimage
    if (sa is None) != (sb is None) or (sa and sb and sa.blake3 != sb.blake3):
        out.append(Difference(kind="sysimage", package=None,
                              line=f"sysimage: {la} {sa.blake3[:16] + '...' if sa else 'default'}, "
                                   f"{lb} {sb.blake3[:16] + '...' if sb else 'default'}"))
    elif sa and sb and (sa.clone_index, sa.clone_name) != (sb.clone_index, sb.clone_name):
        out.append(Difference(kind="clone", package=None,
                              line=f"sysimage clone: {la} picks {_clone(sa)}, {lb} picks {_clone(sb)} "
                                   f"(other machine code for every sysimage function)"))
    return out


def _clone(s: SysimageEntry | PackageEntry) -> str:
    return "an unknown clone" if s.clone_index is None else f"clone {s.clone_index} ({s.clone_name})"


def _why(fp: Fingerprint, p: PackageEntry) -> str:
    long = fp.meta.get("why", {}).get(p.name) if isinstance(fp.meta.get("why"), dict) else None
    return str(long or p.reason or "no reason recorded")


def _package_difference(a: Fingerprint, b: Fingerprint, pa: PackageEntry, pb: PackageEntry,
                        la: str, lb: str) -> Difference | None:
    name = pa.name
    if pa.verdict != "load" or pb.verdict != "load":
        if pa.verdict == pb.verdict and pa.reason == pb.reason:
            return None
        if pb.verdict != "load" and pa.verdict == "load":
            return Difference(kind="recompile", package=name, line=f"{name}: would recompile on {lb} ({_why(b, pb)}); {la} loads {pa.cache}")
        if pa.verdict != "load" and pb.verdict == "load":
            return Difference(kind="recompile", package=name, line=f"{name}: would recompile on {la} ({_why(a, pa)}); {lb} loads {pb.cache}")
        return Difference(kind="recompile", package=name,
                          line=f"{name}: not loaded from a cache on either: {la} {pa.reason}, {lb} {pb.reason}")
    if (pa.cache, pa.cache_blake3, pa.ocache_blake3) != (pb.cache, pb.cache_blake3, pb.ocache_blake3):
        what = "another file" if pa.cache != pb.cache else "the same path with other bytes"
        return Difference(kind="cache", package=name,
                          line=f"{name}: different cache ({what}): {la} {pa.cache} [{(pa.cache_blake3 or '')[:12]}], "
                               f"{lb} {pb.cache} [{(pb.cache_blake3 or '')[:12]}]")
    if (pa.clone_index, pa.clone_name) != (pb.clone_index, pb.clone_name):
        return Difference(kind="clone", package=name,
                          line=f"{name}: pkgimage clone: {la} picks {_clone(pa)}, {lb} picks {_clone(pb)}")
    if pa.build_id != pb.build_id:
        return Difference(kind="build_id", package=name, line=f"{name}: build id {la} {pa.build_id}, {lb} {pb.build_id}")
    if pa.deps != pb.deps:
        da, db = {d.name: d.build_id for d in pa.deps}, {d.name: d.build_id for d in pb.deps}
        changed = sorted(n for n in da.keys() | db.keys() if da.get(n) != db.get(n))
        return Difference(kind="deps", package=name,
                          line=f"{name}: built against other dependencies: {', '.join(changed)}")
    return None


def compare(a: Fingerprint, b: Fingerprint) -> FingerprintDiff:
    """What differs between two module graphs, one line per package (in ``a``'s load order, then
    the packages only ``b`` has): missing, different cache, would recompile and why, and first the
    session-wide lines (Julia version, sysimage, the clone Julia picks)."""
    la, lb = _label(a, "A"), _label(b, "B")
    if la == lb:
        la, lb = f"A ({la})", f"B ({lb})"
    out = _session_differences(a, b, la, lb)
    pb_by = {(p.uuid, p.name): p for p in b.packages}
    for pa in a.packages:
        pb = pb_by.pop((pa.uuid, pa.name), None)
        if pb is None:
            out.append(Difference(kind="missing", package=pa.name, line=f"{pa.name}: missing on {lb}"))
            continue
        d = _package_difference(a, b, pa, pb, la, lb)
        if d is not None:
            out.append(d)
    out += [Difference(kind="missing", package=n, line=f"{n}: missing on {la}") for _, n in pb_by]
    return FingerprintDiff(a=a, b=b, differences=tuple(out))
