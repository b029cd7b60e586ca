"""Variant selection: which published sysimage Julia will accept on a host, ranked by whether its
pkgimages would load and by the clone Julia would pick, with the reasons for every verdict."""
from __future__ import annotations

from depotdelivery._record import record, replace
from depotdelivery.errors import NoCompatibleVariantError

TYPE_CHECKING = False  # no `typing` on a job's path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from typing import Any

    from depotdelivery.cpu import HostCPU
    from depotdelivery.julia.cputarget import TargetSpec
    from depotdelivery.julia.targetdata import ImageTarget
    from depotdelivery.store.release import Release, Variant

__all__ = ["Selection", "Verdict", "describe_cpu_source", "image_targets", "select"]


@record(kw_only=True)
class Verdict:
    """One variant judged for the host: accepted with the clone Julia picks and its rank, or
    rejected with the reason (per clone, the features the host lacks, by name)."""

    target: str
    accepted: bool
    clone_index: int | None
    clone_name: str | None
    # (caches match, name match, vector bytes, feature count, full clone, -clones); caches
    # match: 1 the pkgimages' targets satisfy Julia's JIT target, 0 none recorded, -1 they do not
    rank: tuple[int, ...] | None
    reason: str
    missing: tuple[tuple[str, tuple[str, ...]], ...]  # (clone name, missing features) per rejected clone

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "accepted": self.accepted, "clone_index": self.clone_index,
                "clone": self.clone_name, "rank": None if self.rank is None else list(self.rank),
                "reason": self.reason, "missing": {name: list(feats) for name, feats in self.missing}}


@record(kw_only=True)
class Selection:
    """The chosen variant and why, plus every variant's verdict (best first)."""

    release: str
    host_cpu: str
    host_arch: str
    julia_version: str
    variant: Variant
    verdicts: tuple[Verdict, ...]
    host_cpu_source: str = "julia"  # HostCPU.julia_cpu_source: julia | llvm-<N> | llvm-<N>-guess

    @property
    def target(self) -> str:
        return self.variant.target

    @property
    def why(self) -> str:
        """Several lines: the choice, the chosen verdict, then one ``  target: reason`` line per
        other variant (on one line it ran to 600 characters with a handful of variants)."""
        chosen = self.verdicts[0]
        head = (f"variant {chosen.target} of {self.release}: Julia {self.julia_version} on host CPU "
                f"{self.host_cpu} ({self.host_arch}; {describe_cpu_source(self.host_cpu_source)}) "
                f"picks its clone {chosen.clone_name!r}")
        lines = [head, chosen.reason]
        if len(self.verdicts) > 1:
            lines += ["others:", *(f"  {v.target}: {v.reason}" for v in self.verdicts[1:])]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"release": self.release, "host_cpu": self.host_cpu,
                "host_cpu_source": self.host_cpu_source, "host_arch": self.host_arch,
                "julia_version": self.julia_version, "variant": self.variant.target,
                "cpu_target": self.variant.cpu_target, "why": self.why,
                "verdicts": [v.to_dict() for v in self.verdicts]}


def select(release: Release, host: HostCPU | None = None, *, julia_version: str | None = None) -> Selection:
    """Pick the variant of ``release`` whose sysimage Julia accepts on ``host`` (default: the
    detected CPU) whose pkgimages Julia would also load (a variant with a recorded pkgimage
    target list that fails against Julia's JIT target ranks last: its packages would recompile;
    one recording none ranks between), then with the best clone: Julia's own ranking
    (julia-formats.md "Which clone Julia picks") compared across variants, then a clone compiled
    in full (first target or ``clone_all``), then fewer clones. Raises :class:`NoCompatibleVariantError` listing each
    variant and what it lacks when Julia would reject them all."""
    if host is None:
        from depotdelivery.cpu import detect

        host = detect()
    version = julia_version or release.julia_version
    host_cpu = host.julia_cpu(version)
    host_features = host.julia_features(version)
    verdicts = [_judge(v, host.arch, host_cpu, host_features, version) for v in release.variants]
    accepted = sorted((v for v in verdicts if v.accepted), key=lambda v: v.rank, reverse=True)  # type: ignore[arg-type, return-value]
    if accepted:
        accepted[1:] = [_lost(v, accepted[0], host_cpu) for v in accepted[1:]]
    rejected = [v for v in verdicts if not v.accepted]
    if not accepted:
        detail = "; ".join(f"{v.target}: {v.reason}" for v in verdicts) or "the release has no variants"
        raise NoCompatibleVariantError(
            f"no variant of release {release.ref} can run on this host ({host_cpu}, {host.arch}, "
            f"Julia {version}): {detail}. Publish a variant for this CPU (e.g. `generic`), or "
            "override detection with --microarch / DEPOTDELIVERY_MICROARCH")
    return Selection(release=release.ref, host_cpu=host_cpu, host_arch=host.arch, julia_version=version,
                     variant=release.variant(accepted[0].target), verdicts=(*accepted, *rejected),
                     host_cpu_source=host.julia_cpu_source(version))


def describe_cpu_source(source: str) -> str:
    """What a ``julia_cpu_source`` means, in words (docs/julia-cpu-names.md)."""
    if source == "julia":
        return "Julia's own CPU table names it"
    llvm = source.split("-")[1] if source.startswith("llvm-") else "?"
    if source.endswith("-guess"):
        return (f"not in Julia's CPU table: the name is LLVM {llvm}'s guess from its features "
                "(an Intel family-6 model LLVM does not list)")
    return f"not in Julia's CPU table: the name is LLVM {llvm}'s getHostCPUName"


def _lost(loser: Verdict, winner: Verdict, host_cpu: str) -> Verdict:
    """The loser's reason, plus the first of Julia's criteria (as ranked here) it lost on."""
    lr, wr = loser.rank, winner.rank
    assert lr is not None and wr is not None
    if lr[0] < wr[0]:
        why = "its pkgimages would not all load" if lr[0] < 0 else "it records no pkgimage targets"
    elif lr[1] < wr[1]:
        why = f"{winner.target}'s clone carries the host's CPU name ({host_cpu})"
    elif lr[2] < wr[2]:
        named = "no clone is named" if not wr[1] else "both clones are named"
        why = (f"{named} {host_cpu}, so Julia takes the widest vectors it can run: "
               f"{lr[2]} < {wr[2]} bytes")
    elif lr[3] < wr[3]:
        why = f"same vector width, fewer features ({lr[3]} < {wr[3]})"
    else:
        why = "a partial clone, or more clones, than the winner's"
    return replace(loser, reason=f"{loser.reason}; lost to {winner.target}: {why}")


def image_targets(variant: Variant) -> list[ImageTarget]:
    """The variant's sysimage clone targets as Julia stores them (release.json ``clones``)."""
    from depotdelivery.store.clones import image_targets as as_image_targets

    return as_image_targets(variant.clones)


def _caches_match(variant: Variant, jit: TargetSpec, julia_version: str) -> tuple[int, str]:
    """``(1 | 0 | -1, note)``: whether Julia (``pkgimg_init_cb``) accepts every recorded
    pkgimage target list on the JIT target it continues with after the sysimage (1), rejects
    at least one (-1), or release.json records none (0)."""
    from depotdelivery.julia import clones
    from depotdelivery.store.clones import image_targets as as_image_targets

    if not variant.pkgimage_targets:
        return 0, ""
    failing = [targets for targets in variant.pkgimage_targets
               if not clones.match_pkgimage(jit, as_image_targets(targets), variant.arch, julia_version).accepted]
    if not failing:
        return 1, ""
    # Any rejected list costs recompilation; only when every list fails does every package.
    names = " / ".join(";".join(c.name for c in targets) for targets in failing)
    who = "every package" if len(failing) == len(variant.pkgimage_targets) else "the packages built for it"
    return -1, (f"its pkgimages target {names} which Julia's JIT target {jit.name} does not satisfy: "
                f"{who} would recompile")


def _judge(variant: Variant, host_arch: str, host_cpu: str, host_features: frozenset[str],
           julia_version: str) -> Verdict:
    from depotdelivery.julia import clones
    from depotdelivery.julia.targetdata import CLONE_ALL

    if variant.arch != host_arch:
        return Verdict(target=variant.target, accepted=False, clone_index=None, clone_name=None, rank=None,
                       reason=f"built for {variant.arch}, host is {host_arch}", missing=())
    if not variant.clones:
        return Verdict(target=variant.target, accepted=False, clone_index=None, clone_name=None, rank=None,
                       reason="records no clone targets (cannot tell whether Julia accepts it)", missing=())
    match = clones.match_targets(host_features, host_cpu, image_targets(variant), variant.arch, julia_version)
    missing = tuple((r.name, r.missing) for r in match.rejections)
    if not match.accepted:
        lacks = "; ".join(f"clone {name!r} needs {', '.join(feats)}" for name, feats in missing)
        return Verdict(target=variant.target, accepted=False, clone_index=None, clone_name=None, rank=None,
                       reason=f"Julia would refuse it ({lacks or match.reason})", missing=missing)
    assert match.index is not None
    clone = variant.clones[match.index]
    nbits = sum((w & 0xFFFFFFFF).bit_count() for w in clone.en)
    full = match.index == 0 or bool(clone.flags & CLONE_ALL)
    # Julia's order across variants: CPU name match, vector size, enabled feature bits; then a
    # clone compiled in full beats a partial one, and fewer clones (a smaller image) win.
    # Before all that: a variant whose pkgimages Julia would reject loses to any whose load (DESIGN.md
    # "prefer a variant whose precompiled caches also match").
    caches, why_not = _caches_match(variant, match.jit, julia_version)
    rank = (caches, int(match.target == match.jit.name), match.vector_size, nbits, int(full), -len(variant.clones))
    how = "same CPU name as the host" if rank[1] else f"{rank[2]}-byte vectors, {rank[3]} features"
    reason = f"accepted, but {why_not}" if why_not else f"accepted, clone {clone.name!r}: {how}"
    return Verdict(target=variant.target, accepted=True, clone_index=match.index, clone_name=clone.name,
                   rank=rank, reason=reason, missing=missing)
