"""Julia inspection for the publisher: what release.json says about the depot and each variant,
read from Julia's own files: the Julia version (``compiled/vX.Y`` and the cache headers), the
environment to activate, the sysimage, the modules baked into it, and the clone targets of the
sysimage (read from the image, else derived from JULIA_CPU_TARGET) and of its pkgimages (read
from the ``.ji`` headers)."""
from __future__ import annotations

import json
import platform
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from depotdelivery.errors import DepotDeliveryError, InputError, UsageError
from depotdelivery.publisher.scan import InputTree, Item
from depotdelivery.store.clones import clones_from_image, clones_from_specs
from depotdelivery.store.release import (
    ARCHES,
    Clone,
    SysimageModule,
    SysimageRef,
    Variant,
)

if TYPE_CHECKING:
    from depotdelivery.publisher.publish import VariantInput

__all__ = ["MODULES_FILE", "clone_targets", "infer_julia_version", "infer_project", "pkgimage_targets",
           "variant_record"]

_COMPILED = re.compile(r"(?:depot/)?compiled/v(\d+\.\d+)")
# Beside a variant's sysimage: the modules it contains with their build ids (see _sysimage_modules).
MODULES_FILE = "sysimage-modules.json"


def infer_julia_version(trees: list[InputTree]) -> str:
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


def infer_project(shared: InputTree, name: str) -> str:
    envs = [i.rel for i in shared.items if i.kind == "dir" and i.rel.count("/") == 1 and i.rel.startswith("environments/")]
    if f"environments/{name}" in envs:
        return f"environments/{name}"
    if len(envs) == 1:
        return envs[0]
    listed = ", ".join(envs) or "none"
    raise UsageError(f"cannot infer the environment to activate (environments: {listed}); pass --project environments/NAME")


def _find_sysimage(t: InputTree, vi: VariantInput) -> Item | None:
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


def variant_record(t: InputTree, target: str, vi: VariantInput, julia_version: str, warnings: list[str]) -> Variant:
    from depotdelivery.publisher.build.record import recorded_cpu_target

    si = _find_sysimage(t, vi)
    # a variant `depotdelivery build` made knows the target string it was built with
    cpu_target = vi.cpu_target or recorded_cpu_target(vi.dir) or target
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


def _sysimage_modules(t: InputTree, si: Item | None) -> tuple[SysimageModule, ...]:
    """The modules baked into the sysimage, from ``sysimage-modules.json`` beside it (the CI
    writes it from ``Base.loaded_modules_array()`` / ``Base.module_build_id``; synth.depot does
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


def clone_targets(sysimage: Path | None, cpu_target: str, arch: str | None, julia_version: str,
                  warnings: list[str], *, where: str) -> tuple[tuple[Clone, ...], str, str]:
    """``(clones, clones_source, arch)`` of one variant.

    The sysimage's own clone-target data is what Julia matches at start-up
    (``match_sysimg_targets``), so it is used whenever it can be read ("image"). Without a
    readable image the targets come from parsing ``cpu_target`` with Julia's CPU tables
    ("approximate": right for the names Julia knows, blind to what the build really did).
    """
    from depotdelivery.julia.features import feature_table

    if sysimage is not None:
        from depotdelivery.julia.elfimage import open_image

        try:
            image = open_image(sysimage)
            data = image.targets()
        except DepotDeliveryError as exc:
            warnings.append(f"{where}: clone targets not readable from {sysimage} ({exc}); derived from {cpu_target!r} instead")
        else:
            if arch is not None and arch != image.machine:
                raise UsageError(f"{where}: sysimage {sysimage} is {image.machine}, not {arch}")
            return clones_from_image(data, feature_table(image.machine, julia_version)), "image", image.machine
    from depotdelivery.julia.cputarget import parse_cpu_target

    arch = arch or _machine()
    table = feature_table(arch, julia_version)
    return clones_from_specs(parse_cpu_target(cpu_target, arch, julia_version), table), "approximate", arch


def pkgimage_targets(cache_files: Iterable[Path], arch: str, julia_version: str, warnings: list[str],
                     *, where: str) -> tuple[tuple[Clone, ...], ...]:
    """The distinct clone-target lists of a variant's pkgimages, in first-seen order.

    Each ``.ji`` of a pkgimage carries the clone targets of its ``.so`` in its header (the
    ``clone_targets`` blob, julia-formats.md); Julia matches them against its JIT target
    (``pkgimg_init_cb``). A ``.ji`` without native code has none and is skipped; an
    unreadable one is skipped with a warning (the node re-reads headers anyway)."""
    from depotdelivery.julia.cachefile import read_cache_file
    from depotdelivery.julia.features import feature_table

    table = feature_table(arch, julia_version)
    seen: dict[tuple[Clone, ...], None] = {}
    for path in cache_files:
        try:
            data = read_cache_file(path, header_only=True).targets
        except DepotDeliveryError as exc:
            warnings.append(f"{where}: pkgimage targets not readable from {path} ({exc})")
            continue
        if len(data):
            seen.setdefault(clones_from_image(data, table))
    return tuple(seen)


def _machine() -> str:
    m = platform.machine()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(m.lower(), m)
    if arch not in ARCHES:
        raise UsageError(f"cannot tell the variant's architecture on a {m} machine; pass arch=x86_64|aarch64")
    return arch
