"""Staleness prediction: which cache file Julia will load for each package of a depot stack, or
why it will recompile, following base/loading.jl ``stale_cachefile``'s order (1.9-1.12)."""
from __future__ import annotations

import math
import os
import stat
import uuid as _uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from depotdelivery.errors import FormatError, NoCompatibleVariantError, UsageError
from depotdelivery.julia.cachefile import (
    DEFAULT_FLAGS,
    CacheFile,
    CacheFlags,
    Dependency,
    RequiredModule,
    layout_of,
    read_cache_file,
)
from depotdelivery.julia.crc32c import crc32c, crc32c_file
from depotdelivery.julia.slugs import package_slug, version_slug

if TYPE_CHECKING:
    from depotdelivery.julia.cputarget import TargetSpec

__all__ = [
    "REASONS",
    "HostTarget",
    "PackagePrediction",
    "Rejection",
    "SourceResolution",
    "StalenessReport",
    "expand_depot_path",
    "format_report",
    "mtime_matches",
    "predict",
]

# The short reasons are Julia's own `record_reason` strings (base/loading.jl, v1.12), so a
# prediction can be compared with `Base.isprecompiled` debug output; the last three are ours.
REASONS = {
    "incompatible header": "header from another Julia build, or not a cache file",
    "mismatched flags": "cache flags differ from the session's (check-bounds, inline, -O, -g)",
    "requires pkgimages": "a pkgimage cache in a session started with --pkgimages=no",
    "target mismatch": "no clone of the pkgimage fits the JIT target (CPU target)",
    "missing ocachefile": "the pkgimage .so next to the .ji is missing",
    "for different pkgid": "the cache file is for another package",
    "for different buildid": "the cache file has another build id than the dependent expects",
    "wrong julia version": "Core's build id differs: built by another Julia / sysimage",
    "wrong dep version loaded": "a sysimage module has another build id than at build time",
    "dep missing source": "a required package cannot be located in the environment",
    "wrong source": "the cache was compiled from another file than the package's entry file",
    "dep uuid changed": "a `using X` now resolves to another package",
    "nonresolveable depot": "an @depot/ path resolves to no depot (or sources span depots)",
    "missing sourcefile": "a source file recorded in the cache does not exist",
    "include_dependency mtime change": "a source file's mtime differs (1.9/1.10 includes)",
    "include_dependency fsize change": "a source file's size differs",
    "include_dependency fhash change": "a source file's CRC-32C differs",
    "invalid checksum": "the .ji file's trailing CRC-32C does not match",
    "ocachefile invalid checksum": "the pkgimage .so's CRC-32C differs from the .ji trailer",
    "preferences hash mismatch": "compile-time preferences changed",
    "dependency not loadable": "a required package has no loadable cache with the build id",
    "no cache file": "no <slug>_*.ji for the package in any depot of the stack",
    "not installed": "the package's source is not in any depot of the stack",
}

Verdict = Literal["load", "recompile", "not installed"]


class _JuliaHost(Protocol):  # depotdelivery.cpu.HostCPU
    arch: str

    def julia_features(self, julia_version: str = ...) -> frozenset[str]: ...

    def julia_cpu(self, julia_version: str = ...) -> str: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class HostTarget:
    """The JIT target pkgimages are matched against: Julia's CPU name and feature names."""

    arch: str
    cpu: str
    features: frozenset[str]

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, "cpu": self.cpu, "features": sorted(self.features)}


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceResolution:
    """One source file of a cache: as recorded, as resolved, and the depot it resolved to."""

    recorded: str
    resolved: str
    depot: str | None  # None: outside every depot of the stack, or unresolved

    def to_dict(self) -> dict[str, Any]:
        return {"recorded": self.recorded, "resolved": self.resolved, "depot": self.depot}


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """Why one candidate cache file will not be loaded."""

    cache: str
    depot: str
    reason: str  # a key of REASONS
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"cache": self.cache, "depot": self.depot, "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True, slots=True, kw_only=True)
class PackagePrediction:
    """The verdict for one package: the cache Julia loads, or why it recompiles."""

    name: str
    uuid: str | None
    verdict: Verdict
    cache: str | None = None
    depot: str | None = None  # depot of the cache file loaded
    build_id: str | None = None  # hex UInt128 of the loaded cache
    sources: tuple[SourceResolution, ...] = ()
    reason: str | None = None  # short reason (REASONS key) when not loading
    detail: str | None = None
    rejections: tuple[Rejection, ...] = ()  # every candidate's rejection, in Julia's order

    @property
    def will_load(self) -> bool:
        return self.verdict == "load"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "uuid": self.uuid, "verdict": self.verdict, "cache": self.cache,
                "depot": self.depot, "build_id": self.build_id,
                "sources": [s.to_dict() for s in self.sources], "reason": self.reason,
                "detail": self.detail, "rejections": [r.to_dict() for r in self.rejections]}


@dataclass(frozen=True, slots=True, kw_only=True)
class StalenessReport:
    """Predictions for every package with a cache in the stack (or in the environment)."""

    julia_version: str
    depot_stack: tuple[str, ...]
    host: HostTarget
    project: str | None
    packages: tuple[PackagePrediction, ...]
    notes: tuple[str, ...] = ()

    @property
    def will_load(self) -> tuple[PackagePrediction, ...]:
        return tuple(p for p in self.packages if p.will_load)

    @property
    def will_recompile(self) -> tuple[PackagePrediction, ...]:
        return tuple(p for p in self.packages if not p.will_load)

    def by_name(self) -> dict[str, PackagePrediction]:
        return {p.name: p for p in self.packages}

    def to_dict(self) -> dict[str, Any]:
        return {"julia_version": self.julia_version, "depot_stack": list(self.depot_stack),
                "host": self.host.to_dict(), "project": self.project,
                "summary": {"packages": len(self.packages), "load": len(self.will_load),
                            "recompile": len(self.will_recompile)},
                "packages": [p.to_dict() for p in self.packages], "notes": list(self.notes)}


def mtime_matches(actual: float, recorded: float) -> bool:
    """Julia's mtime comparison with its tolerances (base/loading.jl stale_cachefile,
    v1.10.5; any_includes_stale, v1.11+): exact, floor (Docker, #13606), ceil (CircleCI,
    #47433), truncation to microseconds (GlusterFS, #20837), 1.0 (Nix, #43090), and up to
    1 us older (Windows tar, #45552)."""
    return (actual == recorded or actual == math.floor(recorded) or actual == math.ceil(recorded)
            or actual == math.trunc(recorded * 1e6) / 1e6 or actual == 1.0
            or 0 < recorded - actual < 1e-6)


# -- the environment: locate_package / identify_package -----------------------------------------

_STDLIB = "@stdlib"  # located in Julia's own stdlib directory (not in the depot stack)


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    uuid: str
    tree_sha1: str | None
    path: str | None
    deps: Mapping[str, str]  # name -> uuid (resolved from the manifest)


class _Environment:
    """An explicit environment (Project.toml + Manifest.toml) as Julia's loader reads it."""

    def __init__(self, project_file: Path):
        import tomllib

        self.project_file = project_file
        manifest = next((project_file.parent / n for n in ("JuliaManifest.toml", "Manifest.toml")
                         if (project_file.parent / n).is_file()), None)
        if manifest is None:
            raise UsageError(f"{project_file.parent}: no Manifest.toml next to {project_file.name}")
        try:
            data = tomllib.loads(manifest.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise FormatError(f"{manifest}: cannot parse the manifest: {exc}") from None
        raw = data.get("deps", {}) if data.get("manifest_format") else data
        if not isinstance(raw, dict):
            raise FormatError(f"{manifest}: field deps: expected a table of packages")
        by_name: dict[str, list[dict[str, Any]]] = {n: v for n, v in raw.items() if isinstance(v, list)}
        uuid_of = {n: str(v[0].get("uuid", "")) for n, v in by_name.items() if len(v) == 1}
        self.entries: dict[str, _Entry] = {}
        for name, items in by_name.items():
            for item in items:
                deps_raw = item.get("deps", [])
                deps = (dict(deps_raw) if isinstance(deps_raw, dict)
                        else {d: uuid_of.get(d, "") for d in deps_raw})
                u = str(item.get("uuid", ""))
                tree = item.get("git-tree-sha1")
                if tree is not None and not _is_sha1(tree):
                    raise FormatError(f"{manifest}: deps.{name}: git-tree-sha1 {tree!r} is not 40 hex digits")
                self.entries[u] = _Entry(name=name, uuid=u, tree_sha1=item.get("git-tree-sha1"),
                                         path=item.get("path"), deps=deps)
        self.manifest = manifest

    def locate(self, uuid: str, name: str, depots: Sequence[str]) -> str | None:
        """Entry file of a package (base/loading.jl explicit_manifest_uuid_path: a ``path``
        entry, else ``packages/<name>/<slug>`` in the first depot that has it, else a stdlib)."""
        entry = self.entries.get(uuid)
        if entry is None or entry.name != name:
            return None
        if entry.path is not None:
            return str(self.manifest.parent / entry.path / "src" / f"{name}.jl")
        if entry.tree_sha1 is None:
            return _STDLIB
        slugs = (version_slug(uuid, entry.tree_sha1), version_slug(uuid, entry.tree_sha1, 4))
        for depot in depots:
            for s in slugs:
                d = os.path.join(depot, "packages", name, s)
                if os.path.isdir(d):
                    return os.path.join(d, "src", f"{name}.jl")
        return None

    def identify(self, where_uuid: str, name: str) -> str | None:
        entry = self.entries.get(where_uuid)
        return None if entry is None else entry.deps.get(name)


def _is_sha1(value: object) -> bool:
    return isinstance(value, str) and len(value) == 40 and all(c in "0123456789abcdefABCDEF" for c in value)


# src/Makefile: -DJL_BUILD_UNAME='"$(OS)"', the build machine's `uname` ("Linux" for every Julia
# that runs on the Linux nodes depotdelivery serves)
_BUILD_UNAME = "Linux"
_NO_COMMIT_NOTE = ("the session Julia's git branch and commit were not given: caches built by another "
                   "build of the same Julia version are assumed loadable")
_APPROXIMATE_NOTE = ("approximate header check: the session's Julia version {mm} has no patch level; the "
                     "patch level, git branch and git commit were not compared (a cache from any Julia "
                     "{mm}.x is assumed loadable, Julia itself requires its exact version and commit)")
_BUNDLED_NOTE = ("stdlibs outside the sysimage load from Julia's bundled depot, which is not in "
                 "the stack: assumed loadable, not judged")


def _locate_without_project(name: str, depots: Sequence[str], mm: str) -> str | None:
    """Without an environment: the first ``packages/<name>/<slug>/src/<name>.jl`` in the
    stack; a package with neither source nor caches in the stack is taken to be a stdlib."""
    if not any(os.path.isdir(os.path.join(d, "packages", name)) or
               os.path.isdir(os.path.join(d, "compiled", f"v{mm}", name)) for d in depots):
        return _STDLIB
    for depot in depots:
        base = os.path.join(depot, "packages", name)
        if os.path.isdir(base):
            for s in sorted(os.listdir(base)):
                entry = os.path.join(base, s, "src", f"{name}.jl")
                if os.path.isfile(entry):
                    return entry
    return None


def _find_project(project: str | os.PathLike[str] | None, depots: Sequence[str]) -> Path | None:
    if project is None:
        return None
    p = Path(project)
    candidates = [p] if p.is_absolute() else [Path(d) / p for d in depots] + [p]
    for c in candidates:
        f = c if c.name.endswith(".toml") else c / "Project.toml"
        if f.is_file():
            return f
    raise UsageError(f"project {os.fspath(project)!r}: no Project.toml there nor in any depot of the stack")


# -- the host / JIT target ----------------------------------------------------------------------

def _jit(host: _JuliaHost | HostTarget, julia_version: str, jit_target: str | None,
         sysimage_targets: Sequence[Any] | None) -> tuple[str, TargetSpec]:
    """The JIT target pkgimages are matched against (a cputarget.TargetSpec): the first
    target of ``-C``/``JULIA_CPU_TARGET`` resolved against the host and, when the sysimage's
    clones are known, narrowed to the vector width of the clone Julia picks (clones.py)."""
    from depotdelivery.julia.clones import match_targets
    from depotdelivery.julia.cputarget import jit_target as resolve_jit

    if isinstance(host, HostTarget):
        arch, cpu, feats = host.arch, host.cpu, host.features
    else:
        arch, cpu = host.arch, host.julia_cpu(julia_version)
        feats = frozenset(host.julia_features(julia_version))
    if sysimage_targets is None:
        return arch, resolve_jit(feats, cpu, arch, julia_version, jit_target or "native")
    match = match_targets(feats, cpu, list(sysimage_targets), arch, julia_version,
                          cpu_target=jit_target or "native")
    if not match.accepted:
        raise NoCompatibleVariantError(f"Julia {julia_version} will not start with this sysimage on "
                                       f"this host: {match.reason}")
    return arch, match.jit


def _target_rejection(blob: bytes, jit: TargetSpec, arch: str, julia_version: str) -> str | None:
    from depotdelivery.julia.clones import match_pkgimage
    from depotdelivery.julia.targetdata import parse_target_data

    try:
        match = match_pkgimage(jit, parse_target_data(blob, where="clone targets").targets, arch, julia_version)
    except (FormatError, UsageError) as exc:  # a corrupt blob, or one from another Julia's tables
        return f"unreadable clone targets: {exc}"
    return None if match.accepted else match.reason


# -- the prediction ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Candidate:
    path: str
    depot: str
    pkgimage: bool
    mtime: float


@dataclass(slots=True)
class _Fresh:
    """A candidate that passed stale_cachefile; its package dependencies still to check."""

    cache: CacheFile
    candidate: _Candidate
    sources: tuple[SourceResolution, ...]
    deps: tuple[RequiredModule, ...]


@dataclass(slots=True)
class _Outcome:
    fresh: _Fresh | None
    rejections: list[Rejection] = field(default_factory=list)


def _uuid_str(u: _uuid.UUID | None) -> str | None:
    return None if u is None else str(u)


def _dir_crc(path: str) -> int:
    # include_dependency of a directory hashes join(readdir(path)): sorted names, no separator
    return crc32c("".join(sorted(os.listdir(path))).encode())


class _Predictor:
    def __init__(self, depots: Sequence[str], julia_version: str, sysimage: Mapping[tuple[str | None, str], int],
                 arch: str, jit: TargetSpec, env: _Environment | None, requested: CacheFlags,
                 build: tuple[str, str] | None):
        self.depots = depots
        self.build = build
        self.arch = arch
        self.julia_version = julia_version
        self.layout = layout_of(julia_version)
        self.mm = ".".join(julia_version.split(".")[:2])
        self.sysimage = sysimage
        self.jit = jit
        self.env = env
        self.requested = requested
        self.notes: set[str] = set()
        self._memo: dict[tuple[str | None, str, int], _Outcome] = {}
        self._active: set[tuple[str | None, str, int]] = set()

    # base/loading.jl find_all_in_cache_path: <pkgslug>_*.ji from every depot, pkgimages first,
    # then newest mtime first (a stable sort: ties keep depot order)
    def candidates(self, uuid: str | None, name: str) -> list[_Candidate]:
        prefix = f"{package_slug(uuid)}_" if uuid else None
        found: list[_Candidate] = []
        for depot in self.depots:
            d = os.path.join(depot, "compiled", f"v{self.mm}", name)
            try:
                files = sorted(os.listdir(d))
            except OSError:
                continue
            for f in files:
                ok = f.startswith(prefix) and f.endswith(".ji") if prefix else f == f"{name}.ji"
                path = os.path.join(d, f)
                if not ok or not os.path.isfile(path):
                    continue
                try:
                    pkgimage = read_cache_file(path, header_only=True).cache_flags.use_pkgimages
                except FormatError:
                    pkgimage = False
                found.append(_Candidate(path, depot, bool(pkgimage and self.requested.use_pkgimages),
                                        os.stat(path).st_mtime))
        found.sort(key=lambda c: (not c.pkgimage, -c.mtime))
        return found

    def locate(self, uuid: str | None, name: str) -> str | None:
        if self.env is not None:
            return self.env.locate(uuid or "", name, self.depots)
        return _locate_without_project(name, self.depots, self.mm)

    def depot_of(self, path: str) -> str | None:
        for depot in self.depots:
            root = depot.rstrip("/")
            if path == root or path.startswith(root + "/"):
                return depot
        return None

    def resolve_depot(self, recorded: str) -> str | None:
        # base/loading.jl resolve_depot (v1.11+): the first depot where the file exists
        for depot in self.depots:
            if os.path.exists(depot + recorded[len("@depot"):]):
                return depot
        return None

    def resolve_sources(self, cf: CacheFile) -> tuple[SourceResolution, ...]:
        """base/loading.jl parse_cache_header (v1.11+): include() files (those with source
        text) must all resolve to one depot, else none is restored; include_dependency()
        files resolve one by one."""
        srcfiles = {t.path for t in cf.source_texts}
        # unresolvable files do not veto the others: they are restored to the depot found and
        # then fail as missing files
        src_depots = {self.resolve_depot(p) for p in srcfiles if p.startswith("@depot/")} - {None}
        one = src_depots.pop() if len(src_depots) == 1 else None
        out = []
        for dep in cf.dependencies:
            p = dep.path
            if not p.startswith("@depot/"):
                out.append(SourceResolution(recorded=p, resolved=p, depot=self.depot_of(p)))
                continue
            depot = one if p in srcfiles else self.resolve_depot(p)
            resolved = p if depot is None else depot + p[len("@depot"):]
            out.append(SourceResolution(recorded=p, resolved=resolved, depot=depot))
        return tuple(out)

    def header_mismatch(self, cf: CacheFile) -> str | None:
        """src/staticdata_utils.c jl_read_verify_header: the build's uname, arch, version string,
        git branch and git commit must all equal the running Julia's. A two-part session
        version ("1.11") or no commit given compares less, and the report's notes say so."""
        if cf.uname != _BUILD_UNAME:
            return f"built on {cf.uname}, the session's Julia was built on {_BUILD_UNAME}"
        if cf.arch != self.arch:
            return f"built for {cf.arch}, host is {self.arch}"
        if self.julia_version.count(".") >= 2:
            if cf.julia_version != self.julia_version:
                return f"built by Julia {cf.julia_version}, the session runs {self.julia_version}"
        elif layout_of(cf.julia_version) != self.layout:
            return f"built by Julia {cf.julia_version}, the session runs {self.julia_version}"
        if self.build is not None and (cf.git_branch, cf.git_commit) != self.build:
            return (f"built by Julia {cf.julia_version} from git {cf.git_branch or '?'}/{cf.git_commit or '?'}, "
                    f"the session's Julia is {self.build[0] or '?'}/{self.build[1] or '?'}")
        return None

    def reject(self, cand: _Candidate, reason: str, detail: str) -> Rejection:
        return Rejection(cache=cand.path, depot=cand.depot, reason=reason, detail=detail)

    def stale(self, uuid: str | None, name: str, build_id: int, modpath: str | None,
              cand: _Candidate) -> _Fresh | Rejection:
        """base/loading.jl stale_cachefile, check by check, in Julia's order."""
        try:
            # full read: the file CRC (below) needs every byte, as Julia reads them
            cf = read_cache_file(cand.path)
        except FormatError as exc:
            return self.reject(cand, "incompatible header", str(exc))
        why = self.header_mismatch(cf)
        if why is not None:
            return self.reject(cand, "incompatible header", why)
        if not cf.cache_flags.satisfies(self.requested, julia_version=self.julia_version):
            return self.reject(cand, "mismatched flags",
                               f"cache flags 0x{cf.flags:02x}, session 0x{self.requested.to_byte():02x}")
        ocache = None
        if cf.clone_targets:
            if not self.requested.use_pkgimages:
                return self.reject(cand, "requires pkgimages", "the session runs with --pkgimages=no")
            why = _target_rejection(cf.clone_targets, self.jit, self.arch, self.julia_version)
            if why is not None:
                return self.reject(cand, "target mismatch", why)
            ocache = cand.path[:-3] + ".so"
            if not os.path.isfile(ocache):
                return self.reject(cand, "missing ocachefile", f"{ocache} does not exist")
        top = cf.worklist[0]
        if (_uuid_str(top.uuid), top.name) != (uuid, name):
            return self.reject(cand, "for different pkgid", f"cache is for {top.name} [{top.uuid}]")
        if build_id and cf.build_id(top) != build_id:
            return self.reject(cand, "for different buildid",
                               f"build id {cf.build_id(top):032x}, a dependent needs {build_id:032x}")
        deps = []
        for req in cf.required_modules:
            key = (_uuid_str(req.uuid), req.name)
            loaded = self.sysimage.get(key)
            if loaded is not None:
                if loaded == req.build_id:
                    continue
                reason = "wrong julia version" if key == (None, "Core") else "wrong dep version loaded"
                return self.reject(cand, reason, f"{req.name} has build id {loaded:032x} in the sysimage, "
                                                 f"the cache was built against {req.build_id:032x}")
            if self.locate(key[0], req.name) is None:
                return self.reject(cand, "dep missing source",
                                   f"dependency {req.name} [{req.uuid}] is not installed in the environment")
            deps.append(req)
        sources = self.resolve_sources(cf)
        includes = [(dep, src) for dep, src in zip(cf.dependencies, sources)]
        if modpath is not None and modpath != _STDLIB and includes:
            first = includes[0][1].resolved
            if not (os.path.exists(first) and os.path.exists(modpath) and os.path.samefile(first, modpath)):
                return self.reject(cand, "wrong source", f"compiled from {first}, the package is {modpath}")
        if self.env is not None:
            for requires in cf.requires:
                got = self.env.identify(uuid or "", requires.name)
                if got != _uuid_str(requires.uuid):
                    return self.reject(cand, "dep uuid changed",
                                       f"{name} => {requires.name} was [{requires.uuid}], now {got or 'not a dependency'}")
        for include, src in includes:
            stale_source = self.source_stale(include, src)
            if stale_source is not None:
                return self.reject(cand, *stale_source)
        if not cf.crc_ok:
            return self.reject(cand, "invalid checksum", f"trailing CRC-32C 0x{cf.file_crc:08x} does not match")
        if ocache is not None:
            crc = crc32c_file(ocache)
            if crc != cf.so_crc:
                return self.reject(cand, "ocachefile invalid checksum",
                                   f"{ocache} has CRC-32C 0x{crc:08x}, the .ji expects 0x{cf.so_crc:08x}")
        if cf.preferences:
            self.notes.add("compile-time preferences are not checked (their hash is Julia's hash() "
                           "of the preference values)")
        elif cf.prefs_hash != 0:
            # get_preferences_hash starts at 0 and hashes nothing when no preference is used
            return self.reject(cand, "preferences hash mismatch",
                               f"hash 0x{cf.prefs_hash:016x} for an empty preference list")
        return _Fresh(cache=cf, candidate=cand, sources=sources, deps=tuple(deps))

    def source_stale(self, dep: Dependency, src: SourceResolution) -> tuple[str, str] | None:
        f = src.resolved
        if f.startswith("@depot/"):
            return "nonresolveable depot", f"{f}: no depot of the stack has it (or the sources span depots)"
        try:
            st = os.stat(f)
        except OSError:
            return "missing sourcefile", f"{f} does not exist"
        if dep.mtime >= 0:
            if not mtime_matches(st.st_mtime, dep.mtime):
                return "include_dependency mtime change", f"{f}: mtime {st.st_mtime!r}, recorded {dep.mtime!r}"
            return None
        if st.st_size != dep.fsize:
            return "include_dependency fsize change", f"{f}: size {st.st_size}, recorded {dep.fsize}"
        crc = _dir_crc(f) if stat.S_ISDIR(st.st_mode) else crc32c_file(f)
        if crc != dep.crc32c:
            return "include_dependency fhash change", f"{f}: CRC-32C 0x{crc:08x}, recorded 0x{dep.crc32c:08x}"
        return None

    def search(self, uuid: str | None, name: str, build_id: int) -> _Outcome:
        """_require_search_from_serialized: the first candidate that is fresh and whose
        package dependencies all load with the exact build ids it was compiled against."""
        key = (uuid, name, build_id)
        if key in self._memo:
            return self._memo[key]
        outcome = _Outcome(None)
        if key in self._active:  # a dependency cycle cannot load from caches
            return outcome
        self._active.add(key)
        modpath = self.locate(uuid, name)
        for cand in self.candidates(uuid, name):
            got = self.stale(uuid, name, build_id, modpath, cand)
            if isinstance(got, Rejection):
                outcome.rejections.append(got)
                continue
            bad = next((d for d in got.deps if not self.dep_loadable(d)), None)
            if bad is not None:
                outcome.rejections.append(self.reject(
                    cand, "dependency not loadable",
                    f"required dependency {bad.name} with build id {bad.build_id:032x} has no "
                    f"loadable cache file"))
                continue
            outcome.fresh = got
            break
        self._active.discard(key)
        self._memo[key] = outcome
        return outcome

    def dep_loadable(self, dep: RequiredModule) -> bool:
        u = _uuid_str(dep.uuid)
        if self.search(u, dep.name, dep.build_id).fresh is not None:
            return True
        if self.locate(u, dep.name) == _STDLIB and not self.candidates(u, dep.name):
            # a stdlib outside the sysimage: its cache is in Julia's bundled depot
            self.notes.add(_BUNDLED_NOTE)
            return True
        return False

    def predict_package(self, uuid: str | None, name: str) -> PackagePrediction:
        if self.locate(uuid, name) is None:
            return PackagePrediction(name=name, uuid=uuid, verdict="not installed", reason="not installed",
                                     detail=f"{name} [{uuid}] has no source in the environment / depot stack")
        out = self.search(uuid, name, 0)
        rejections = tuple(out.rejections)
        if out.fresh is None:
            first = rejections[0] if rejections else None
            return PackagePrediction(
                name=name, uuid=uuid, verdict="recompile", rejections=rejections,
                reason=first.reason if first else "no cache file",
                detail=first.detail if first else f"no {name} cache in compiled/v{self.mm}/ of any depot")
        f = out.fresh
        return PackagePrediction(name=name, uuid=uuid, verdict="load", cache=f.candidate.path,
                                 depot=f.candidate.depot, build_id=f"{f.cache.build_id(f.cache.worklist[0]):032x}",
                                 sources=f.sources, rejections=rejections)


def _sysimage_map(modules: Iterable[Any]) -> dict[tuple[str | None, str], int]:
    out: dict[tuple[str | None, str], int] = {}
    for m in modules:
        u = _field(m, "uuid")
        u = None if u in (None, "", "00000000-0000-0000-0000-000000000000") else str(u)
        bid = _field(m, "build_id")
        out[(u, str(_field(m, "name")))] = int(bid, 16) if isinstance(bid, str) else int(bid)
    return out


def _field(module: Any, key: str) -> Any:
    # sysimage modules come as release.json dicts or as SysimageModule records
    return module.get(key) if isinstance(module, Mapping) else getattr(module, key)


def _packages_in_stack(depots: Sequence[str], mm: str) -> dict[tuple[str | None, str], None]:
    """(uuid, name) of every package with a cache anywhere in the stack (from the headers)."""
    found: dict[tuple[str | None, str], None] = {}
    for depot in depots:
        root = os.path.join(depot, "compiled", f"v{mm}")
        try:
            names = sorted(os.listdir(root))
        except OSError:
            continue
        for name in names:
            try:
                files = sorted(f for f in os.listdir(os.path.join(root, name)) if f.endswith(".ji"))
            except OSError:
                continue
            for f in files:
                try:
                    top = read_cache_file(os.path.join(root, name, f), header_only=True).worklist[0]
                except FormatError:
                    continue
                if top.name == name:
                    found.setdefault((_uuid_str(top.uuid), name), None)
    return found


def expand_depot_path(value: str, julia_version: str) -> list[str]:
    """The depots Julia makes of the ``JULIA_DEPOT_PATH`` text ``value`` (julia-formats.md
    "Depot"), where an empty entry means the user depot ``~/.julia`` on Julia <= 1.10 always,
    on 1.11 only if every entry is empty, on 1.12+ only as the first entry. The bundled
    ``<julia>/local/share/julia`` and ``<julia>/share/julia`` an empty entry also brings are
    left out: they belong to a Julia installation, which is not known here."""
    layout = tuple(int(x) for x in layout_of(julia_version).split("."))
    entries = value.split(":")
    home = os.path.join(os.path.expanduser("~"), ".julia")  # Julia's homedir(): $HOME, else passwd
    # each depot once (caches are gathered per depot: a repeated one would count its files twice)
    return list(dict.fromkeys(
        entry or home for i, entry in enumerate(entries)
        if entry or layout <= (1, 10) or (layout == (1, 11) and not any(entries)) or (layout >= (1, 12) and i == 0)))


def predict(depot_stack: str | Sequence[str | os.PathLike[str]], *, julia_version: str,
            sysimage_modules: Iterable[Any], host: _JuliaHost | HostTarget, jit_target: str | None = None,
            project: str | os.PathLike[str] | None = None,
            requested_flags: CacheFlags | int | None = None,
            sysimage_targets: Sequence[Any] | None = None,
            julia_branch: str | None = None, julia_commit: str | None = None) -> StalenessReport:
    """Predict, for every package, whether Julia loads a cache file from ``depot_stack``
    (``JULIA_DEPOT_PATH`` order, or its text: empty entries as :func:`expand_depot_path`) or
    recompiles, and why.

    ``sysimage_modules``: the sysimage's modules (``{"name", "uuid", "build_id"}`` dicts as in
    release.json, or objects with those attributes). ``host``: a ``HostCPU`` or a
    ``HostTarget``; ``jit_target``: the session's ``JULIA_CPU_TARGET`` (default native).
    ``project``: the environment (a directory or Project.toml; a relative path is looked up in
    each depot): packages are then located through its manifest as Julia does, and every
    manifest package is judged; without it the packages are those with caches in the stack and
    their sources are looked up as ``packages/<Name>/*``. ``requested_flags``: the session's
    cache flags (default: a default session, 0xA3).

    Julia loads only caches whose header names its own build (``jl_read_verify_header``). With a
    full ``julia_version`` ("1.11.1") the version string must match exactly; a two-part one
    ("1.11") is an explicitly approximate check (any patch level; said in the report's notes).
    ``julia_branch``/``julia_commit``: the session Julia's ``Base.GIT_VERSION_INFO`` branch and
    commit (empty for a build outside git); None: not compared (said in the notes)."""
    try:
        layout_of(julia_version)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if (julia_branch is None) != (julia_commit is None):
        raise UsageError("give both julia_branch and julia_commit (Julia compares both), or neither")
    if julia_commit is not None and julia_version.count(".") < 2:
        raise UsageError(f"julia_commit names one build: give its full version (x.y.z), not {julia_version!r}")
    if isinstance(depot_stack, str):
        depot_stack = expand_depot_path(depot_stack, julia_version)
    depots = [os.path.abspath(os.fspath(d)) for d in depot_stack if os.fspath(d)]
    if not depots:
        raise UsageError("empty depot stack: give at least one depot")
    if requested_flags is None:
        flags = CacheFlags.from_byte(DEFAULT_FLAGS)
    else:
        flags = requested_flags if isinstance(requested_flags, CacheFlags) else CacheFlags.from_byte(requested_flags)
    arch, jit = _jit(host, julia_version, jit_target, sysimage_targets)
    project_file = _find_project(project, depots)
    env = _Environment(project_file) if project_file is not None else None
    sysimage = _sysimage_map(sysimage_modules)
    build = None if julia_commit is None else (julia_branch or "", julia_commit)
    p = _Predictor(depots, julia_version, sysimage, arch, jit, env, flags, build)
    if julia_version.count(".") < 2:
        p.notes.add(_APPROXIMATE_NOTE.format(mm=p.mm))
    elif build is None:
        p.notes.add(_NO_COMMIT_NOTE)
    keys: dict[tuple[str | None, str], None] = {}
    if env is not None:
        for e in env.entries.values():
            if (e.uuid, e.name) in sysimage:
                continue
            if e.tree_sha1 is None and e.path is None and not p.candidates(e.uuid, e.name):
                p.notes.add(_BUNDLED_NOTE)
                continue
            keys[(e.uuid, e.name)] = None
    else:
        keys = _packages_in_stack(depots, p.mm)
    preds = tuple(p.predict_package(u, n) for u, n in sorted(keys, key=lambda k: (k[1], k[0] or "")))
    if env is None:
        p.notes.add("no project given: `requires` mappings are not checked")
    host_target = HostTarget(arch=arch, cpu=jit.name, features=frozenset(jit.enabled))
    return StalenessReport(julia_version=julia_version, depot_stack=tuple(depots), host=host_target,
                           project=str(project_file) if project_file else None, packages=preds,
                           notes=tuple(sorted(p.notes)))


def format_report(report: StalenessReport, *, verbose: bool = False) -> str:
    """Human-readable report (``depotdelivery check``)."""
    lines = [(f"Julia {report.julia_version} on {report.host.arch} (JIT target {report.host.cpu}); "
             f"depot stack:")]
    lines += [f"  {i}. {d}" for i, d in enumerate(report.depot_stack, 1)]
    if report.project:
        lines.append(f"environment: {report.project}")
    width = max((len(p.name) for p in report.packages), default=0)
    for p in report.packages:
        if p.will_load:
            lines.append(f"  {p.name:<{width}}  will load   {p.cache}")
            if verbose:
                lines += [f"  {'':<{width}}    {s.resolved}  [{s.depot or 'outside the stack'}]"
                          for s in p.sources]
        else:
            lines.append(f"  {p.name:<{width}}  will {'recompile' if p.verdict == 'recompile' else 'fail'}: "
                         f"{p.reason} ({p.detail})")
            if verbose:
                lines += [f"  {'':<{width}}    {r.cache}: {r.reason}: {r.detail}" for r in p.rejections]
    n, ok = len(report.packages), len(report.will_load)
    lines.append(f"{ok} of {n} packages will load from caches, {n - ok} will recompile or fail.")
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines) + "\n"
