"""Module-graph fingerprints of a prepared job environment (``depotdelivery fingerprint``),
made from the prediction ``depotdelivery check`` makes (julia/stale.py); the format, the hash
and the diff are store/fingerprint.py's."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from depotdelivery.store.fingerprint import (
    Dependency,
    Fingerprint,
    PackageEntry,
    SysimageEntry,
    load_order,
)

if TYPE_CHECKING:
    from depotdelivery.cpu import HostCPU
    from depotdelivery.julia.clones import CloneMatch
    from depotdelivery.julia.cputarget import TargetSpec
    from depotdelivery.julia.stale import PackagePrediction, StalenessReport
    from depotdelivery.node.env import Prepared
    from depotdelivery.store.fingerprint import FingerprintDiff
    from depotdelivery.store.release import Release, Variant

__all__ = ["CIComparison", "clone_of", "compare_with_ci", "from_report", "of_prepared", "sysimage_of",
           "take_fingerprint"]


def _file_hash(path: str) -> str:
    from depotdelivery.store.hashing import hash_file

    # a symlink-mode depot links to the published file: hash the bytes Julia reads
    return hash_file(os.path.realpath(path))


def _entry(p: PackagePrediction, jit: TargetSpec | None, arch: str, julia_version: str) -> PackageEntry:
    if not p.will_load or p.cache is None or p.depot is None:
        return PackageEntry(name=p.name, uuid=p.uuid, verdict=p.verdict, reason=p.reason)
    from depotdelivery.julia.cachefile import read_cache_file

    cf = read_cache_file(p.cache, header_only=True)
    ocache = p.cache[:-3] + ".so" if cf.clone_targets else None
    deps = tuple(Dependency(name=m.name, uuid=None if m.uuid is None else str(m.uuid), build_id=f"{m.build_id:032x}")
                 for m in cf.required_modules)
    clone = None
    if cf.clone_targets and jit is not None:
        from depotdelivery.julia.clones import match_pkgimage

        clone = match_pkgimage(jit, cf.targets.targets, arch, julia_version)  # the .ji it loads passed this
    return PackageEntry(
        name=p.name, uuid=p.uuid, verdict="load", cache=os.path.relpath(p.cache, p.depot),
        cache_blake3=_file_hash(p.cache), ocache=None if ocache is None else os.path.relpath(ocache, p.depot),
        ocache_blake3=None if ocache is None else _file_hash(ocache), build_id=p.build_id,
        checksum=f"{cf.checksum:016x}", deps=deps, clone_index=None if clone is None else clone.index,
        clone_name=None if clone is None else clone.target)


def _jit_of(report: StalenessReport, clone: CloneMatch | None) -> TargetSpec | None:
    """The JIT target pkgimages are matched against: the sysimage clone match's, else Julia's
    default (``-C native``) for the report's host."""
    if clone is not None:
        return clone.jit
    from depotdelivery.julia.cputarget import jit_target

    try:
        return jit_target(report.host.features, report.host.cpu, report.host.arch, report.julia_version)
    except ValueError:  # a Julia version without feature tables: the clone stays unknown
        return None


def from_report(report: StalenessReport, *, sysimage: str | None, clone: CloneMatch | None,
                reference: str = "", meta: Mapping[str, Any] | None = None) -> Fingerprint:
    """The fingerprint of a prediction: ``sysimage`` is the image file Julia starts with (None:
    Julia's default image), ``clone`` Julia's choice among its clones on this host; its JIT
    target (or, without known clones, the report's host target) picks each pkgimage's clone."""
    sys_entry = None
    if sysimage is not None:
        sys_entry = SysimageEntry(blake3=_file_hash(sysimage), clone_index=None if clone is None else clone.index,
                                  clone_name=None if clone is None else clone.target)
    jit = _jit_of(report, clone)
    packages = load_order([_entry(p, jit, report.host.arch, report.julia_version) for p in report.packages])
    why = {p.name: f"{p.reason}: {p.detail}" for p in report.packages if not p.will_load}
    return Fingerprint(julia_version=report.julia_version, arch=report.host.arch, sysimage=sys_entry,
                       packages=packages, reference=reference, meta={**(meta or {}), "why": why})


def sysimage_of(prepared: Prepared) -> str | None:
    """The image file the prepared Julia starts with (``--sysimage PATH``), None for Julia's own."""
    args = list(prepared.julia_args)
    return args[args.index("--sysimage") + 1] if "--sysimage" in args[:-1] else None


def clone_of(variant: Variant, host: HostCPU, julia_version: str) -> CloneMatch | None:
    """Julia's pick among the variant's sysimage clones on ``host`` (None: clones not recorded)."""
    from depotdelivery.julia.clones import match_targets
    from depotdelivery.node.select import image_targets

    targets = image_targets(variant)
    if not targets:
        return None
    return match_targets(host.julia_features(julia_version), host.julia_cpu(julia_version), targets,
                         variant.arch, julia_version)


def of_prepared(prepared: Prepared, release: Release | None = None, host: HostCPU | None = None, *,
                reference: str | None = None, report: StalenessReport | None = None) -> Fingerprint:
    """The fingerprint of a prepared job environment (what ``depotdelivery fingerprint`` prints):
    the ``check`` prediction (``report``, made here when not given) on this host, the variant's
    sysimage and the clone Julia picks. ``release`` and ``host`` default to those of
    ``prepared``'s session (node/check.py)."""
    from depotdelivery.node.check import check, release_and_host

    release, host = release_and_host(prepared, release, host)
    if report is None:
        report = check(prepared, release, host)
    variant = release.variant(prepared.variant)
    node = os.uname().nodename
    meta = {"host": node, "cpu_name": host.julia_cpu(release.julia_version), "release": release.ref,
            "release_id": release.id, "variant": variant.target, "mode": prepared.mode}
    return from_report(report, sysimage=sysimage_of(prepared), clone=clone_of(variant, host, release.julia_version),
                       reference=reference or f"{node} ({variant.target})", meta=meta)


@dataclass(frozen=True, slots=True, kw_only=True)
class CIComparison:
    """This node's fingerprint against the CI reference fingerprints recorded for its variant:
    ``match`` is the reference with the same graph hash, else ``diff`` is against the closest."""

    node: Fingerprint
    match: Fingerprint | None
    diff: FingerprintDiff | None

    @property
    def same(self) -> bool:
        return self.match is not None

    def line(self) -> str:
        if self.match is not None:
            return f"same module graph as CI ({self.match.reference or self.match.hash[:16]})"
        assert self.diff is not None
        return f"module graph differs from CI ({self.diff.a.reference or self.diff.a.hash[:16]}):"

    def to_dict(self) -> dict[str, Any]:
        return {"same": self.same, "node": {"hash": self.node.hash, "reference": self.node.reference},
                "reference": None if self.match is None else {"hash": self.match.hash, "reference": self.match.reference},
                "diff": None if self.diff is None else self.diff.to_dict()}


def compare_with_ci(prepared: Prepared, report: StalenessReport | None = None) -> CIComparison | None:
    """``check``'s A/B comparison: None when the variant records no CI fingerprint."""
    from depotdelivery.store.fingerprint import compare

    assert prepared.session is not None
    release = prepared.session.release()
    references = release.variant(prepared.variant).fingerprints
    if not references:
        return None
    node = of_prepared(prepared, report=report)
    for ref in references:
        if ref.hash == node.hash:
            return CIComparison(node=node, match=ref, diff=None)
    diffs = [compare(ref, node) for ref in references]
    return CIComparison(node=node, match=None, diff=min(diffs, key=lambda d: len(d.differences)))


def take_fingerprint(*, reference: str | None = None, **config: Any) -> Fingerprint:
    """``depotdelivery.fingerprint()``: prepare this node's job environment (the keyword
    arguments of :func:`depotdelivery.prepare`) and return its module-graph fingerprint."""
    from depotdelivery.node.prepare import prepare

    return of_prepared(prepare(**config), reference=reference)
