"""A variant's clone targets for ``release.json``: its sysimage's (read from the image, else derived
from JULIA_CPU_TARGET) and its pkgimages' (read from the ``.ji`` headers)."""
from __future__ import annotations

import platform
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from depotdelivery.errors import DepotDeliveryError, UsageError
from depotdelivery.store.release import ARCHES, Clone

if TYPE_CHECKING:
    from depotdelivery.julia.features import FeatureTable
    from depotdelivery.julia.targetdata import TargetData

__all__ = ["clone_targets", "pkgimage_targets"]


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
            return _as_clones(data, feature_table(image.machine, julia_version)), "image", image.machine
    from depotdelivery.julia.cputarget import parse_cpu_target

    arch = arch or _machine()
    table = feature_table(arch, julia_version)
    clones = tuple(
        Clone(name=s.name, flags=s.flags, en=table.words(s.enabled), dis=table.words(s.disabled),
              features=tuple(sorted(s.enabled)), ext=s.ext)
        for s in parse_cpu_target(cpu_target, arch, julia_version))
    return clones, "approximate", arch


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
            seen.setdefault(_as_clones(data, table))
    return tuple(seen)


def _as_clones(data: "TargetData", table: "FeatureTable") -> tuple[Clone, ...]:
    return tuple(Clone(name=t.name, flags=t.flags, en=t.en_words, dis=t.dis_words,
                       features=tuple(sorted(table.names(t.en_words))), ext=t.ext)
                 for t in data)


def _machine() -> str:
    m = platform.machine()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(m.lower(), m)
    if arch not in ARCHES:
        raise UsageError(f"cannot tell the variant's architecture on a {m} machine; pass arch=x86_64|aarch64")
    return arch
