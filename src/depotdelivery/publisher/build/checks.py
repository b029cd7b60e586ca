"""What each step must have written, checked from the files (with the project's Julia-format
readers) before the next step runs: a Julia that exits 0 but wrote nothing, or wrote caches
for another target or against another sysimage, fails the build here, never on the nodes."""
from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from depotdelivery.errors import BuildError, DepotDeliveryError

if TYPE_CHECKING:
    from depotdelivery.julia.targetdata import ImageTarget, TargetData

__all__ = ["check_instantiated", "check_pkgimages", "check_sysimage", "manifest_packages", "project_package",
           "read_modules"]


def _toml(path: Path, where: str) -> dict[str, object]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BuildError(f"{where}: {path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BuildError(f"{where}: {path} is unreadable ({exc})") from None


def manifest_packages(manifest: Path, where: str) -> list[tuple[str, dict[str, object]]]:
    """``(name, entry)`` of every ``[[deps.Name]]`` of a format-2.0 manifest (Pkg's layout)."""
    doc = _toml(manifest, where)
    deps = doc.get("deps", {})
    if doc.get("manifest_format") != "2.0" or not isinstance(deps, dict):
        raise BuildError(f"{where}: {manifest} is not a manifest_format 2.0 manifest (Julia 1.7+); "
                         "re-resolve it with that Julia")
    return [(name, e) for name, entries in deps.items()
            for e in (entries if isinstance(entries, list) else [entries]) if isinstance(e, dict)]


def project_package(project: Path) -> str | None:
    """The package a project directory is itself (Project.toml with ``name`` and ``uuid``), if any."""
    doc = _toml(project / "Project.toml", f"project {project}")
    name, uuid = doc.get("name"), doc.get("uuid")
    return name if isinstance(name, str) and isinstance(uuid, str) else None


def check_instantiated(depot: Path, environments: Iterable[Path]) -> list[str]:
    """Every registered package of every manifest is in ``depot/packages`` at its version slug,
    every non-lazy artifact it names for all platforms is in ``depot/artifacts``. Returns
    warnings (no registry); raises BuildError for what nodes would miss."""
    from depotdelivery.julia.slugs import version_slug

    missing: list[str] = []
    for env in environments:
        for name, e in manifest_packages(env / "Manifest.toml", "step instantiate"):
            tree, uuid = e.get("git-tree-sha1"), e.get("uuid")
            if "path" in e or not isinstance(tree, str) or not isinstance(uuid, str):
                continue  # a developed package (copied into dev/) or a stdlib
            pkg = depot / "packages" / name / version_slug(uuid, tree)
            if not pkg.is_dir():
                missing.append(f"{name} {e.get('version', '')} ({pkg.relative_to(depot)})")
                continue
            missing += [f"artifact {a} of {name}" for a in _artifacts(pkg) if not (depot / "artifacts" / a).is_dir()]
    if missing:
        raise BuildError(f"shared depot, step instantiate: julia exited 0 but {depot} lacks "
                         f"{len(missing)} item(s): {', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}")
    regs = depot / "registries"
    if not regs.is_dir() or not any(regs.iterdir()):
        return [f"{depot} holds no registry: Pkg could not add packages there later (offline nodes do not need one)"]
    return []


def _artifacts(pkg: Path) -> list[str]:
    """Tree hashes of the platform-independent, non-lazy artifacts a package's Artifacts.toml
    names (platform-specific ones are Pkg's choice for the build platform: not checked)."""
    f = pkg / "Artifacts.toml"
    if not f.is_file():
        return []
    doc = _toml(f, "step instantiate")
    return [str(v["git-tree-sha1"]) for v in doc.values()
            if isinstance(v, dict) and "git-tree-sha1" in v and not v.get("lazy", False)]


def check_sysimage(path: Path, where: str, arch: str, cpu_target: str, clone_names: Sequence[str]) -> TargetData:
    """The sysimage exists, is an image for ``arch`` and carries the clone targets the target
    string names (not the build machine's CPU: a ``cpu_target`` PackageCompiler did not get)."""
    from depotdelivery.julia.elfimage import open_image

    if not path.is_file():
        raise BuildError(f"{where}, step sysimage: julia exited 0 but wrote no sysimage at {path}")
    try:
        with open_image(path) as image:
            machine, targets = image.machine, image.targets()
    except DepotDeliveryError as exc:
        raise BuildError(f"{where}, step sysimage: {path} is not a Julia image ({exc})") from None
    if machine != arch:
        raise BuildError(f"{where}, step sysimage: {path} is a {machine} image, not {arch}")
    names = tuple(t.name for t in targets)
    if names != tuple(clone_names):
        raise BuildError(f"{where}, step sysimage: {path} was built for {';'.join(names)}, not for JULIA_CPU_TARGET "
                         f"{cpu_target!r} ({';'.join(clone_names)}): PackageCompiler did not get the target string "
                         "(its default is native)")
    return targets


def read_modules(path: Path, where: str) -> dict[str, str]:
    """``sysimage-modules.json`` as ``{name: build_id hex}``."""
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise BuildError(f"{where}, step modules: julia exited 0 but wrote no {path}") from None
    except (OSError, ValueError) as exc:
        raise BuildError(f"{where}, step modules: {path} is unreadable ({exc})") from None
    if not isinstance(doc, list) or not doc or not all(
            isinstance(m, dict) and all(isinstance(m.get(k), str) for k in ("name", "uuid", "build_id")) for m in doc):
        raise BuildError(f"{where}, step modules: {path} is not a non-empty list of {{name, uuid, build_id}}")
    return {m["name"]: m["build_id"].lower() for m in doc}


def _same(a: ImageTarget, b: ImageTarget) -> bool:
    return (a.name, a.en_words, a.dis_words, a.ext) == (b.name, b.en_words, b.dis_words, b.ext)


def check_pkgimages(depot: Path, where: str, julia_version: str, sys_targets: TargetData, modules: dict[str, str],
                    expected: Iterable[str]) -> int:
    """Every package cache under ``depot/compiled`` was built for the sysimage's targets (all of
    them where Julia writes multi-target pkgimages, else its first) against this sysimage (the
    build ids of the sysimage's modules it requires), and every ``expected`` package has one.
    Returns the number of cache files."""
    from depotdelivery.julia.cachefile import read_cache_file
    from depotdelivery.julia.cputarget import multi_target_pkgimages

    minor = ".".join(julia_version.split(".")[:2])
    compiled = depot / "compiled" / f"v{minor}"
    want = list(sys_targets) if multi_target_pkgimages(julia_version) else list(sys_targets)[:1]
    found: set[str] = set()
    n = 0
    for dirpath, _, files in os.walk(compiled):
        for f in sorted(files):
            if not f.endswith(".ji"):
                continue
            path = Path(dirpath) / f
            try:
                cf = read_cache_file(path, header_only=True)
            except DepotDeliveryError as exc:
                raise BuildError(f"{where}, step precompile: {path} is unreadable ({exc})") from None
            n += 1
            found.add(Path(dirpath).name)
            got = list(cf.targets)
            if got and (len(got) != len(want) or not all(map(_same, got, want))):
                raise BuildError(
                    f"{where}, step precompile: {path} was compiled for {';'.join(t.name for t in got)} but the "
                    f"variant's sysimage is {';'.join(t.name for t in want)}: nodes would recompile it or refuse it "
                    "(pkgimages need the sysimage's JULIA_CPU_TARGET)")
            for m in cf.required_modules:
                if m.name in modules and f"{m.build_id:032x}" != modules[m.name]:
                    raise BuildError(f"{where}, step precompile: {path} was built against another sysimage "
                                     f"({m.name} build id {m.build_id:032x}, the variant's is {modules[m.name]})")
    absent = sorted(set(expected) - found - set(modules))
    if absent:
        raise BuildError(f"{where}, step precompile: julia exited 0 but wrote no cache for {len(absent)} package(s) "
                         f"in {compiled}: {', '.join(absent[:5])}{', ...' if len(absent) > 5 else ''}")
    return n
