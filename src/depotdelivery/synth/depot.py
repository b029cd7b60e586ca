"""Julia-faithful depot generator: packages, registry, environment, artifacts, compiled caches
and per-CPU-target variants, deterministic for a seed (tests, the demo and benchmarks)."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import struct
import sys
import uuid as _uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from depotdelivery.errors import UsageError
from depotdelivery.julia.slugs import package_slug, slug, version_slug
from depotdelivery.julia.treehash import git_tree_hash
from depotdelivery.synth.cachefile import image_header_bytes, write_cache_file
from depotdelivery.synth.targetdata import target_data_bytes

__all__ = [
    "CPU_TARGET_STRINGS",
    "DEFAULT_TARGETS",
    "STDLIB_UUIDS",
    "SynthInputs",
    "SynthPackage",
    "SysimageModule",
    "VariantDir",
    "generate_release_inputs",
    "main",
]

# Default per-architecture variant targets (the x86_64 / aarch64 sets).
DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    "x86_64": ("generic", "haswell", "skylake-avx512", "znver4"),
    "aarch64": ("neoverse-v1", "a64fx"),
}
# The JULIA_CPU_TARGET a CI would build each variant with (one clone each; `-rdrnd` as in
# Julia's official strings, contrib/ and Make.inc (v1.11.1)).
CPU_TARGET_STRINGS: dict[str, str] = {
    "generic": "generic",
    "haswell": "haswell,-rdrnd",
    "skylake-avx512": "skylake-avx512,-rdrnd",
    "znver4": "znver4,-rdrnd",
    "neoverse-v1": "neoverse-v1",
    "a64fx": "a64fx",
}
_TARGET_ARCH = {t: arch for arch, ts in DEFAULT_TARGETS.items() for t in ts}

# Real stdlib UUIDs (each stdlib's Project.toml); Core and Base have none.
STDLIB_UUIDS: dict[str, str] = {
    "Artifacts": "56f22d72-fd6d-98f1-02f0-08ddc0907c33",
    "Base64": "2a0f44e3-6c83-55bd-87e4-b1978d98bd5f",
    "Dates": "ade2ca70-3891-5945-98fb-dc099432e06a",
    "Libdl": "8f399da3-3557-5675-b5ff-fb832c97cbdb",
    "LinearAlgebra": "37e2e46d-f89d-539d-b4ee-838fcccc9c8e",
    "Logging": "56ddb016-857b-54e1-b83d-db4d58db5568",
    "Mmap": "a63ad114-7e13-5084-954f-fe012c677804",
    "Printf": "de0858da-6303-5e67-8744-51eddeeeb8d7",
    "Random": "9a3f8284-a2c9-5f02-9a11-845980a1fd5c",
    "SHA": "ea8e919c-243c-51af-8825-aaa63cd721ce",
    "Serialization": "9e88b42a-f829-5b0c-bbe9-9e923198166b",
    "TOML": "fa267f1f-6049-4f14-aa54-33bafae1ed76",
    "UUIDs": "cf7118a7-6976-5b1a-9a39-7adc72f591a4",
    "Unicode": "4ec0a83e-493e-50e2-b9ac-8f72acf5a8f5",
}
_NIL_UUID = "00000000-0000-0000-0000-000000000000"
# registries/General/Registry.toml of the real General registry
_GENERAL_UUID = "23338594-aafe-5451-b93e-139f81909106"

# Realistic names: HEP and general-purpose Julia packages; more are composed from parts.
_NAMES = (
    "UnROOT", "FHist", "LorentzVectorHEP", "Geant4", "EDM4hep", "JetReconstruction",
    "LorentzVectors", "Corpuscles", "PDGdata", "HepMC3", "YODA", "Minuit2", "LHEF",
    "StaticArrays", "StructArrays", "DataFrames", "CSV", "JSON3", "Parsers", "Tables",
    "OrderedCollections", "DataStructures", "Distributions", "StatsBase", "SpecialFunctions",
    "ForwardDiff", "Optim", "NLSolversBase", "LoopVectorization", "Polyester", "ThreadsX",
    "FLoops", "Transducers", "BangBang", "Accessors", "ConstructionBase", "Compat",
    "Preferences", "JLLWrappers", "Zstd_jll", "XZ_jll", "Lz4_jll", "LibCURL_jll",
    "ROOTprotocol", "Arrow", "Parquet2", "HDF5", "HDF5_jll", "Measurements", "Unitful",
    "IrrationalConstants", "LogExpFunctions", "DocStringExtensions", "MacroTools",
    "Reexport", "Requires", "PrecompileTools", "Adapt", "ArrayInterface", "GPUArraysCore",
    "FillArrays", "OffsetArrays", "Interpolations", "QuadGK", "Roots", "Colors",
    "FixedPointNumbers", "Makie", "CairoMakie", "GeometryBasics", "Observables",
    "Graphs", "Memoize", "ProgressMeter", "Crayons", "PrettyTables", "Formatting",
)
_PREFIXES = ("Hep", "Fast", "Lazy", "Sparse", "Batched", "Tiled", "Stream", "Event", "Track",
             "Calo", "Vertex", "Muon", "Jet", "Flavour", "Trigger", "Detector")
_SUFFIXES = ("Arrays", "IO", "Fits", "Kernels", "Tools", "Utils", "Core", "Base", "Maps",
             "Tables", "Readers", "Writers", "Models", "Plots", "Geometry", "Calib")

# Fixed mtimes: the depot's bytes (and Julia 1.10 caches, which record mtimes) are then a
# function of the seed only. 2024-11-01T00:00:00Z plus a deterministic per-file offset.
_EPOCH_NS = 1_730_419_200 * 10**9
_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class SynthPackage:
    """One generated package as the environment, registry and caches describe it."""

    name: str
    uuid: str
    version: str
    tree_sha1: str  # git tree hash of packages/<name>/<slug>/ (Pkg's tree hash)
    slug: str  # version_slug(uuid, tree_sha1)
    deps: tuple[str, ...]  # direct package dependencies (names, all in this depot)
    stdlibs: tuple[str, ...]  # direct stdlib dependencies (in the sysimage)
    includes: tuple[str, ...]  # include() files relative to the package dir, entry first
    artifacts: tuple[str, ...]  # tree hashes of the artifacts its Artifacts.toml names

    @property
    def path(self) -> str:
        """The package directory relative to the depot."""
        return f"packages/{self.name}/{self.slug}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SysimageModule:
    """A module baked into a sysimage: what ``sysimage-modules.json`` lists."""

    name: str
    uuid: str
    build_id: int  # UInt128: checksum (hi 64 bits) | build id (lo 64 bits)

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "uuid": self.uuid, "build_id": f"{self.build_id:032x}"}

    @classmethod
    def from_dict(cls, d: Mapping[str, str]) -> SysimageModule:
        return cls(name=d["name"], uuid=d["uuid"], build_id=int(d["build_id"], 16))


@dataclass(frozen=True, slots=True, kw_only=True)
class VariantDir:
    """One per-target variant: ``variants/<target>/`` with ``sys.so`` and its own depot."""

    target: str
    arch: str
    dir: Path
    sysimage: Path
    cpu_target: str
    depot: Path
    sysimage_modules: tuple[SysimageModule, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SynthInputs:
    """What ``generate_release_inputs`` wrote: the publisher's inputs."""

    root: Path
    depot: Path
    final_root: Path  # where the shared depot lives when published (1.9/1.10 paths point here)
    variants: Mapping[str, VariantDir]
    project: str  # environment to activate, relative to the depot
    julia_version: str
    packages: tuple[SynthPackage, ...]
    artifacts: tuple[str, ...]


class _Writer:
    """Deterministic file writing: fixed mtimes, fast bulk bytes from one seeded block."""

    def __init__(self, rng: random.Random):
        self.block = rng.randbytes(_BLOCK)
        self.count = 0

    def mtime_ns(self) -> int:
        # distinct, strictly increasing, with a sub-second part so that Julia 1.10's
        # floor/ceil tolerances are exercised by real values
        self.count += 1
        return _EPOCH_NS + self.count * 1_000_000_000 + 250_000_000

    def text(self, path: Path, content: str, mode: int = 0o644) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        os.chmod(path, mode)

    def bulk(self, path: Path, size: int, key: bytes, mode: int = 0o644) -> None:
        """``size`` bytes, distinct per ``key`` and per MiB, written a block at a time."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tag = hashlib.sha1(key).digest()
        with open(path, "wb") as out:
            written, index = 0, 0
            while written < size:
                n = min(_BLOCK, size - written)
                head = tag + struct.pack("<Q", index)
                out.write(head[:n])
                if n > len(head):
                    out.write(memoryview(self.block)[len(head):n])
                written += n
                index += 1
        os.chmod(path, mode)


def _package_names(rng: random.Random, n: int) -> list[str]:
    names = list(_NAMES[:n])
    combos = [p + s for p in _PREFIXES for s in _SUFFIXES]
    rng.shuffle(combos)
    seen = set(names)
    i = 0
    while len(names) < n:
        base = combos[i % len(combos)]
        candidate = base if i < len(combos) else f"{base}{i // len(combos) + 1}"
        i += 1
        if candidate not in seen:
            seen.add(candidate)
            names.append(candidate)
    return names


def _uuid4(rng: random.Random) -> str:
    return str(_uuid.UUID(int=rng.getrandbits(128), version=4))


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string of ASCII text is a valid TOML basic string


def _toml_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(_toml_str(v) for v in values) + "]"


def _install(staging: Path, final: Path) -> None:
    if final.exists():  # identical content hashes to the same name (dedup, as Pkg does)
        shutil.rmtree(staging)
    else:
        final.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(final)


def _write_artifact(w: _Writer, depot: Path, owner: str, index: int, nbytes: int) -> str:
    lib = f"{owner.removesuffix('_jll').lower()}{index}"
    staging = depot / "artifacts" / f".staging-{owner}-{index}"
    w.bulk(staging / "lib" / f"lib{lib}.so", nbytes, f"{owner}/{index}".encode())
    os.symlink(f"lib{lib}.so", staging / "lib" / f"lib{lib}.so.1")
    w.text(staging / "include" / f"{lib}.h", f"#pragma once\nint {lib}_version(void);\n")
    w.text(staging / "bin" / f"{lib}-config", f"#!/bin/sh\necho {lib} {index}\n", mode=0o755)
    w.text(staging / "share" / "licenses" / owner / "LICENSE", f"MIT License ({owner})\n")
    tree = git_tree_hash(staging)
    _install(staging, depot / "artifacts" / tree)
    return tree


def _entry_source(name: str, deps: Sequence[str], parts: Sequence[str], artifacts: bool) -> str:
    lines = [f'module {name}', ""]
    lines += [f"using {d}" for d in deps]
    if artifacts:
        lines.append("using Artifacts")
        lines.append('const artifacts_toml = joinpath(@__DIR__, "..", "Artifacts.toml")')
    lines.append("")
    lines += [f'include("{p}")' for p in parts]
    lines += ["", f'greet() = "{name} ready"', "", "end # module", ""]
    return "\n".join(lines)


def _part_source(name: str, k: int, rng: random.Random) -> str:
    body = [f"# {name}: part {k}", ""]
    for j in range(rng.randint(2, 6)):
        body.append(f"function f{k}_{j}(x::AbstractVector{{T}}) where {{T<:Real}}")
        body.append("    s = zero(T)")
        body.append(f"    @inbounds for v in x; s += v * {rng.randint(2, 97)}; end")
        body.append("    return s")
        body.append("end")
        body.append("")
    return "\n".join(body)


def _write_package(w: _Writer, depot: Path, rng: random.Random, *, name: str, uuid: str,
                   version: str, deps: Sequence[tuple[str, str]], stdlibs: Sequence[str],
                   nfiles: int, artifacts: Mapping[str, str]) -> tuple[str, str, tuple[str, ...]]:
    """Write one package under a staging name, then rename it to its version slug."""
    staging = depot / "packages" / name / ".staging"
    nparts = max(1, (nfiles - 3) * 2 // 3)  # the rest: tests and docs
    parts = [f"part{k}.jl" for k in range(1, nparts + 1)]
    project = [f"name = {_toml_str(name)}", f"uuid = {_toml_str(uuid)}",
               'authors = ["depotdelivery synth"]', f"version = {_toml_str(version)}", ""]
    alldeps = sorted([*deps, *((s, STDLIB_UUIDS[s]) for s in stdlibs)]
                     + ([("Artifacts", STDLIB_UUIDS["Artifacts"])] if artifacts else []))
    if alldeps:
        project.append("[deps]")
        project += [f"{d} = {_toml_str(u)}" for d, u in dict(alldeps).items()]
        project.append("")
    project += ["[compat]", 'julia = "1.9"', ""]
    w.text(staging / "Project.toml", "\n".join(project))
    w.text(staging / "src" / f"{name}.jl",
           _entry_source(name, [d for d, _ in deps] + list(stdlibs), parts, bool(artifacts)))
    for k, part in enumerate(parts, 1):
        w.text(staging / "src" / part, _part_source(name, k, rng))
    ntests = max(0, nfiles - 3 - nparts)
    for k in range(ntests):
        w.text(staging / "test" / ("runtests.jl" if k == 0 else f"test{k}.jl"),
               f"using {name}, Test\n@test {name}.greet() isa String  # {k}\n")
    w.text(staging / "LICENSE.md", f"MIT License\n\nCopyright (c) {name} contributors\n")
    if artifacts:
        w.text(staging / "Artifacts.toml", "".join(
            f"[{a}]\ngit-tree-sha1 = {_toml_str(h)}\nlazy = false\n\n" for a, h in artifacts.items()))
    tree = git_tree_hash(staging)
    vslug = version_slug(uuid, tree)
    _install(staging, depot / "packages" / name / vslug)
    includes = (f"src/{name}.jl", *(f"src/{p}" for p in parts))
    return tree, vslug, includes


def _write_registry(w: _Writer, depot: Path, packages: Sequence[SynthPackage],
                    by_name: Mapping[str, SynthPackage]) -> None:
    """The uncompressed registry tree (registries/General/), as Pkg clones it."""
    root = depot / "registries" / "General"
    lines = ['name = "General"', f"uuid = {_toml_str(_GENERAL_UUID)}",
             'repo = "https://github.com/JuliaRegistries/General.git"', "",
             'description = """', "Synthetic registry written by depotdelivery.synth.depot.",
             '"""', "", "[packages]"]
    for p in sorted(packages, key=lambda p: p.uuid):
        lines.append(f'{p.uuid} = {{ name = {_toml_str(p.name)}, path = '
                     f'{_toml_str(f"{p.name[0].upper()}/{p.name}")} }}')
    w.text(root / "Registry.toml", "\n".join(lines) + "\n")
    for p in packages:
        pdir = root / p.name[0].upper() / p.name
        w.text(pdir / "Package.toml", f"name = {_toml_str(p.name)}\nuuid = {_toml_str(p.uuid)}\n"
               f'repo = "https://github.com/synth/{p.name}.jl.git"\n')
        w.text(pdir / "Versions.toml",
               f'["{p.version}"]\ngit-tree-sha1 = {_toml_str(p.tree_sha1)}\n')
        deps = {d: by_name[d].uuid for d in p.deps}
        deps.update({s: STDLIB_UUIDS[s] for s in p.stdlibs})
        if p.artifacts:
            deps["Artifacts"] = STDLIB_UUIDS["Artifacts"]
        if deps:
            w.text(pdir / "Deps.toml", f'["{p.version}"]\n' + "".join(
                f"{d} = {_toml_str(u)}\n" for d, u in sorted(deps.items())))
        w.text(pdir / "Compat.toml", f'["{p.version}"]\njulia = "1.9.0-1"\n')


def _write_environment(w: _Writer, env_dir: Path, julia_version: str,
                       packages: Sequence[SynthPackage], roots: Sequence[SynthPackage]) -> None:
    """Project.toml + Manifest.toml (manifest_format 2.0) of the environment to activate."""
    project = "[deps]\n" + "".join(f"{p.name} = {_toml_str(p.uuid)}\n"
                                   for p in sorted(roots, key=lambda p: p.name))
    w.text(env_dir / "Project.toml", project)
    stdlibs = sorted({s for p in packages for s in p.stdlibs}
                     | ({"Artifacts"} if any(p.artifacts for p in packages) else set()))
    entries: list[tuple[str, str]] = []
    for p in packages:
        deps = sorted([*p.deps, *p.stdlibs, *(["Artifacts"] if p.artifacts else [])])
        body = (f"deps = {_toml_list(deps)}\n" if deps else "") + (
            f"git-tree-sha1 = {_toml_str(p.tree_sha1)}\nuuid = {_toml_str(p.uuid)}\n"
            f"version = {_toml_str(p.version)}\n")
        entries.append((p.name, body))
    major_minor = ".".join(julia_version.split(".")[:2])
    for s in stdlibs:
        # stdlib entries carry no tree hash; from 1.11 on Pkg records their version
        version = f"version = {_toml_str(major_minor + '.0')}\n" if major_minor != "1.10" \
            and major_minor != "1.9" else ""
        entries.append((s, f"uuid = {_toml_str(STDLIB_UUIDS[s])}\n{version}"))
    project_hash = hashlib.sha1(project.encode()).hexdigest()
    manifest = ["# This file is machine-generated - editing it directly is not advised", "",
                f"julia_version = {_toml_str(julia_version)}", 'manifest_format = "2.0"',
                f"project_hash = {_toml_str(project_hash)}", ""]
    for name, body in sorted(entries):
        manifest += [f"[[deps.{name}]]", body]
    w.text(env_dir / "Manifest.toml", "\n".join(manifest))


def _fix_mtimes(root: Path, counter: _Writer) -> None:
    """Give every file a distinct fixed mtime (sorted path order) and every directory the
    epoch and mode 0755 (whatever the umask): the tree's bytes and metadata are then a
    function of the seed."""
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        dirnames.sort()
        for f in sorted(filenames):
            ns = counter.mtime_ns()
            os.utime(os.path.join(dirpath, f), ns=(ns, ns), follow_symlinks=False)
    for dirpath, _, _ in sorted(os.walk(root), reverse=True):
        os.chmod(dirpath, 0o755)
        os.utime(dirpath, ns=(_EPOCH_NS, _EPOCH_NS))


def _closure(packages: Sequence[SynthPackage]) -> dict[str, tuple[str, ...]]:
    """Every package's transitive package dependencies, in load (index) order."""
    order = {p.name: i for i, p in enumerate(packages)}
    out: dict[str, tuple[str, ...]] = {}
    for p in packages:
        seen = set(p.deps)
        for d in p.deps:
            seen.update(out[d])
        out[p.name] = tuple(sorted(seen, key=order.__getitem__))
    return out


def _sysimage_modules(rng: random.Random) -> tuple[SysimageModule, ...]:
    from depotdelivery.julia.cachefile import CHECKSUM_TAG

    # every module of one image shares the image checksum as build_id.hi (src/staticdata.c)
    hi = CHECKSUM_TAG | rng.getrandbits(32)
    names = [("Core", _NIL_UUID), ("Base", _NIL_UUID), *sorted(STDLIB_UUIDS.items())]
    return tuple(SysimageModule(name=n, uuid=u, build_id=hi << 64 | rng.getrandbits(64)) for n, u in names)


def _projslug(project_file: str, sysimage: str, flags: int, cpu_target: str) -> str:
    from depotdelivery.julia.crc32c import crc32c

    # base/loading.jl compilecache_path (v1.11.1): CRC-32C chained over the active project,
    # the image file, the julia binary, the flags byte, the CPU target and the prefs hash
    crc = crc32c(project_file.encode())
    crc = crc32c(sysimage.encode(), crc)
    crc = crc32c(b"/opt/julia/bin/julia", crc)
    crc = crc32c(bytes((flags,)), crc)
    crc = crc32c(cpu_target.encode(), crc)
    crc = crc32c((0).to_bytes(8, "little"), crc)
    return slug(crc, 5)


def _sources(depot: Path, packages: Sequence[SynthPackage]) -> dict[str, list[tuple[str, bytes, float]]]:
    """Each package's cache dependencies (include files, entry first, then Artifacts.toml):
    relative path, bytes, and the mtime Julia reads (st_mtime: sec + nsec * 1e-9)."""
    out = {}
    for p in packages:
        files = [*p.includes, *(["Artifacts.toml"] if p.artifacts else [])]
        out[p.name] = [(rel, (depot / p.path / rel).read_bytes(), os.stat(depot / p.path / rel).st_mtime)
                       for rel in files]
    return out


def _write_variant(w: _Writer, rng: random.Random, *, root: Path, sources: Mapping[str, list[tuple[str, bytes, float]]],
                   final_root: str, target: str, arch: str, julia_version: str, project: str,
                   packages: Sequence[SynthPackage]) -> VariantDir:
    from depotdelivery.julia import cachefile as cfm
    from depotdelivery.julia.cputarget import parse_cpu_target, to_image_target
    from depotdelivery.julia.crc32c import crc32c, crc32c_file
    from depotdelivery.julia.targetdata import TargetData
    from depotdelivery.synth.elfimage import write_image

    cpu_target = CPU_TARGET_STRINGS.get(target, target)
    specs = parse_cpu_target(cpu_target, arch, julia_version)
    blob = target_data_bytes(TargetData(tuple(to_image_target(s, arch, julia_version) for s in specs)))
    vdir = root / "variants" / target
    vdepot = vdir / "depot"
    vdir.mkdir(parents=True)
    sysmods = _sysimage_modules(rng)
    sysimage = vdir / "sys.so"
    write_image(sysimage, blob, machine=arch, soname="sys.so")
    w.text(vdir / "sysimage-modules.json",
           json.dumps([m.to_dict() for m in sysmods], indent=1, sort_keys=True) + "\n")
    required_sys = tuple(cfm.RequiredModule(name=m.name, uuid=None if m.uuid == _NIL_UUID else _uuid.UUID(m.uuid),
                                            build_id=m.build_id) for m in sysmods)
    final_variant = f"{Path(final_root).parent}/variants/{target}"
    projslug = _projslug(f"{final_root}/{project}/Project.toml", f"{final_variant}/sys.so",
                         cfm.DEFAULT_FLAGS, cpu_target)
    mm = cfm.layout_of(julia_version)
    sized = mm not in ("1.9", "1.10")
    closure = _closure(packages)
    by_name = {p.name: p for p in packages}
    build: dict[str, cfm.RequiredModule] = {}
    for p in packages:
        checksum = cfm.CHECKSUM_TAG | rng.getrandbits(32)
        lo = rng.getrandbits(64)
        build[p.name] = cfm.RequiredModule(name=p.name, uuid=_uuid.UUID(p.uuid), build_id=checksum << 64 | lo)
        deps, texts = [], []
        for rel, content, mtime in sources[p.name]:
            recorded = (f"@depot/{p.path}/{rel}" if sized else f"{final_root}/{p.path}/{rel}")
            if sized:  # 1.11+: include and include_dependency track size + CRC-32C, mtime -1
                deps.append(cfm.Dependency(path=recorded, mtime=-1.0, fsize=len(content), crc32c=crc32c(content)))
            else:  # 1.9/1.10: absolute path + the mtime Julia reads (sec + nsec * 1e-9)
                deps.append(cfm.Dependency(path=recorded, mtime=mtime))
            if rel != "Artifacts.toml":  # include() files carry their source text
                texts.append(cfm.SourceText(path=recorded, text=content))
        requires = tuple(cfm.Requires(name=d, uuid=_uuid.UUID(by_name[d].uuid) if d in by_name
                                      else _uuid.UUID(STDLIB_UUIDS[d]))
                         for d in sorted({*p.deps, *p.stdlibs, *(["Artifacts"] if p.artifacts else [])}))
        required = required_sys + tuple(build[d] for d in closure[p.name])
        cdir = vdepot / "compiled" / f"v{mm}" / p.name
        cdir.mkdir(parents=True)
        stem = cdir / f"{package_slug(p.uuid)}_{projslug}"
        header = image_header_bytes(cfm.ImageHeader(julia_version=julia_version, arch=arch, checksum=checksum,
                                                    required_modules=required))
        write_image(stem.with_suffix(".so"), blob, machine=arch, soname=f"{stem.name}.so",
                    extra_symbols={"jl_system_image_data": header + rng.randbytes(64)})
        cf = cfm.CacheFile(julia_version=julia_version, arch=arch, checksum=checksum,
                           worklist=(cfm.WorklistModule(name=p.name, uuid=_uuid.UUID(p.uuid), build_id=lo),),
                           dependencies=tuple(deps), requires=requires, required_modules=required,
                           clone_targets=blob, source_texts=tuple(texts),
                           so_crc=crc32c_file(stem.with_suffix(".so")))
        write_cache_file(cf, stem.with_suffix(".ji"))
    _fix_mtimes(vdir, w)
    return VariantDir(target=target, arch=arch, dir=vdir, sysimage=sysimage, cpu_target=cpu_target,
                      depot=vdepot, sysimage_modules=sysmods)


def generate_release_inputs(out_dir: str | os.PathLike[str], *, final_root: str | os.PathLike[str] | None = None,
                            julia_version: str = "1.11.1", packages: int = 8,
                            files_per_package: int = 6, files: int | None = None,
                            artifact_bytes: int = 64 * 1024, artifact_every: int = 4,
                            targets: Sequence[str] | None = None, env: str = "hep",
                            seed: int = 0) -> SynthInputs:
    """Write a release's inputs under ``out_dir``: ``depot/`` (the shared depot) and
    ``variants/<target>/`` (``sys.so``, ``sysimage-modules.json``, ``depot/compiled/``).

    ``final_root`` is the shared depot's path once published (1.9/1.10 caches embed absolute
    source paths; default: ``out_dir/depot``). ``files`` (total package files) overrides
    ``files_per_package``; ``artifact_bytes`` is the total artifact payload, spread over one
    artifact per ``artifact_every`` packages. ``targets`` default to every x86_64 and aarch64
    target of ``DEFAULT_TARGETS``. Same arguments and seed: identical bytes and mtimes."""
    from depotdelivery.julia.cachefile import layout_of

    try:
        layout_of(julia_version)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if packages < 1:
        raise UsageError(f"packages must be >= 1, got {packages}")
    targets = tuple(targets) if targets is not None else tuple(t for ts in DEFAULT_TARGETS.values() for t in ts)
    unknown = [t for t in targets if t not in _TARGET_ARCH]
    if unknown:
        raise UsageError(f"unknown synth target(s) {', '.join(unknown)} (known: {', '.join(_TARGET_ARCH)})")
    root = Path(out_dir).absolute()
    depot = root / "depot"
    if depot.exists() or (root / "variants").exists():
        raise UsageError(f"{root}: already holds a generated depot; give an empty directory")
    final = os.path.abspath(os.fspath(final_root)) if final_root is not None else str(depot)
    rng = random.Random(seed)
    w = _Writer(random.Random(rng.getrandbits(64)))
    names = _package_names(rng, packages)
    uuids = [_uuid4(rng) for _ in names]
    counts = ([files // packages + (1 if i < files % packages else 0) for i in range(packages)]
              if files is not None else [files_per_package] * packages)
    has_art = [i % artifact_every == artifact_every - 1 or names[i].endswith("_jll") for i in range(packages)]
    per_artifact = max(64, artifact_bytes // max(1, sum(has_art)))
    stdlib_pool = sorted(set(STDLIB_UUIDS) - {"Artifacts"})
    made: list[SynthPackage] = []
    for i, name in enumerate(names):
        ndeps = min(i, rng.randint(0, 3))
        deps = sorted(rng.sample(range(i), ndeps))
        stdlibs = tuple(sorted(rng.sample(stdlib_pool, rng.randint(0, 2))))
        version = f"{rng.randint(0, 3)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"
        arts = {}
        if has_art[i]:
            tree = _write_artifact(w, depot, name, i, per_artifact)
            arts[name.removesuffix("_jll")] = tree
        dep_pairs = [(names[j], uuids[j]) for j in deps]
        tree, vslug, includes = _write_package(
            w, depot, rng, name=name, uuid=uuids[i], version=version, deps=dep_pairs,
            stdlibs=stdlibs, nfiles=max(4, counts[i]), artifacts=arts)
        made.append(SynthPackage(name=name, uuid=uuids[i], version=version, tree_sha1=tree, slug=vslug,
                                 deps=tuple(n for n, _ in dep_pairs), stdlibs=stdlibs, includes=includes,
                                 artifacts=tuple(arts.values())))
    by_name = {p.name: p for p in made}
    _write_registry(w, depot, made, by_name)
    depended = {d for p in made for d in p.deps}
    roots = [p for p in made if p.name not in depended]
    project = f"environments/{env}"
    _write_environment(w, depot / project, julia_version, made, roots)
    _fix_mtimes(depot, w)
    variants = {}
    sources = _sources(depot, made)
    for t in targets:
        variants[t] = _write_variant(w, random.Random(f"{seed}/{t}"), root=root, sources=sources, final_root=final,
                                     target=t, arch=_TARGET_ARCH[t], julia_version=julia_version,
                                     project=project, packages=made)
    if variants:
        os.chmod(root / "variants", 0o755)
        os.utime(root / "variants", ns=(_EPOCH_NS, _EPOCH_NS))
    return SynthInputs(root=root, depot=depot, final_root=Path(final), variants=variants, project=project,
                       julia_version=julia_version, packages=tuple(made),
                       artifacts=tuple(sorted({a for p in made for a in p.artifacts})))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m depotdelivery.synth.depot OUT --packages 300 --files 50000 ...``"""
    ap = argparse.ArgumentParser(prog="python -m depotdelivery.synth.depot",
                                 description="Write a Julia-faithful depot and per-target variants.")
    ap.add_argument("out", help="empty output directory")
    ap.add_argument("--final-root", help="path of the shared depot once published (1.10 caches)")
    ap.add_argument("--julia-version", default="1.11.1")
    ap.add_argument("--packages", type=int, default=8)
    ap.add_argument("--files", type=int, help="total package files (default: 6 per package)")
    ap.add_argument("--artifact-bytes", type=int, default=64 * 1024, help="total artifact bytes")
    ap.add_argument("--targets", help="comma-separated targets (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        out = generate_release_inputs(
            args.out, final_root=args.final_root, julia_version=args.julia_version, packages=args.packages,
            files=args.files, artifact_bytes=args.artifact_bytes,
            targets=args.targets.split(",") if args.targets else None, seed=args.seed)
    except UsageError as exc:
        print(f"synth: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"depot": str(out.depot), "project": out.project, "julia_version": out.julia_version,
                      "packages": len(out.packages), "artifacts": len(out.artifacts),
                      "variants": {t: {"dir": str(v.dir), "cpu_target": v.cpu_target}
                                   for t, v in out.variants.items()}}, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
