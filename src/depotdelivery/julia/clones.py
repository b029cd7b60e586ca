"""Which clone of a system image or pkgimage Julia picks on a host, or why Julia refuses it.

Julia's rule, src/processor.cpp ``match_sysimg_targets`` (same in v1.10-v1.12), applied by
``sysimg_init_cb`` / ``pkgimg_init_cb`` in src/processor_x86.cpp and src/processor_arm.cpp:
for each image target in order, reject it if it enables a feature the JIT target disables;
the first target whose CPU name equals the JIT target's resets the running best and every
later target without the name is rejected; otherwise a smaller vector size than the best
is rejected, a larger one becomes the best, and on equal size the target with at least as
many enabled feature bits becomes the best (ties go to the later target).
"""
from __future__ import annotations

TYPE_CHECKING = False  # no `typing` on a job's path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import NamedTuple
else:
    from depotdelivery._record import NamedTuple

from depotdelivery._record import record, replace
from depotdelivery.errors import UsageError
from depotdelivery.julia.cputarget import (
    TargetSpec,
    jit_target,
    normalize_cpu_name,
    vector_size,
)
from depotdelivery.julia.features import (
    AVX512_STATE_FEATURES,
    AVX_STATE_FEATURES,
    FeatureTable,
    feature_table,
)
from depotdelivery.julia.targetdata import VEC_CALL, ImageTarget

__all__ = [
    "CX16_MESSAGE", "NO_MATCH_MESSAGE", "CloneMatch", "Rejection", "match_pkgimage",
    "match_targets",
]

# src/processor_x86.cpp ``sysimg_init_cb``: refused before matching when every image target
# needs cx16 and the host lacks it.
CX16_MESSAGE = ("Your CPU does not support the CX16 instruction, which is required by this "
                "version of Julia!  This is often due to running inside of a virtualized "
                "environment.  Please read https://docs.julialang.org/en/v1/devdocs/sysimg/ "
                "for more.")
# src/processor.cpp ``match_sysimg_targets``: first line of the error when nothing matches.
NO_MATCH_MESSAGE = "Unable to find compatible target in cached code image."
# Julia's per-target lines in that error (src/processor.cpp, v1.10-v1.12).
_DISABLED = "Rejecting this target due to use of runtime-disabled features"
_NAME = "Rejecting this target since another target has a cpu name match"
_VSIZE = "Rejecting this target since another target has a larger vector register size"
_WIDER = "Updating best match to this target due to larger vector register size"
_FEWER = "Rejecting this target since another target has a larger feature set"
_BEST = "Updating best match to this target"


class Rejection(NamedTuple):
    """A clone Julia cannot use on this host: the features it needs that the host lacks."""

    index: int  # type: ignore[assignment]  # the clone's position; shadows tuple.index on purpose
    name: str
    missing: tuple[str, ...]


@record(kw_only=True)
class CloneMatch:
    """The outcome of Julia's clone selection for one image on one host.

    ``index``/``target`` name the chosen clone (None when Julia refuses the image);
    ``reason`` is one human sentence; ``rejections`` lists the clones the host cannot run;
    ``log`` is Julia's own line for every target (what Julia prints when it refuses);
    ``jit`` is the JIT target Julia continues with (pkgimages are matched against it).
    """

    accepted: bool
    index: int | None
    target: str | None
    vector_size: int
    reason: str
    rejections: tuple[Rejection, ...]
    log: tuple[str, ...]
    jit: TargetSpec

    @property
    def julia_message(self) -> str:
        """The error text Julia would print (empty when the image is accepted)."""
        if self.accepted:
            return ""
        if self.log:
            return "\n".join([NO_MATCH_MESSAGE, *self.log])
        return self.reason


@record
class _Img:
    name: str
    enabled: frozenset[str]
    nbits: int
    flags: int


def _image(t: ImageTarget | TargetSpec, table: FeatureTable, i: int) -> _Img:
    # Julia normalises stored names (``generic`` is stored as LLVM's ``x86-64``).
    name = normalize_cpu_name(t.name, table.arch)
    if isinstance(t, TargetSpec):
        return _Img(name, t.enabled, len(t.enabled), t.flags)
    if len(t.en_words) != table.nwords:
        raise UsageError(f"image target {i} ({t.name}) has {len(t.en_words)} feature words; "
                         f"Julia {table.version} on {table.arch} uses {table.nwords} (an image "
                         f"from another Julia version)")
    nbits = sum((w & 0xFFFFFFFF).bit_count() for w in t.en_words)
    return _Img(name, table.names(t.en_words), nbits, t.flags)


def _select(images: Sequence[_Img], jit: TargetSpec, arch: str,
            ) -> tuple[int | None, int, tuple[str, ...], tuple[Rejection, ...], bool]:
    best: int | None = None
    vreg = 0
    nbits_best = 0
    name_match = False
    log: list[str] = []
    rejections: list[Rejection] = []
    for i, img in enumerate(images):
        missing = img.enabled & jit.disabled
        if missing:
            log.append(_DISABLED)
            rejections.append(Rejection(i, img.name, tuple(sorted(missing))))
            continue
        if img.name == jit.name:
            if not name_match:
                name_match = True
                vreg = 0
                nbits_best = 0
        elif name_match:
            log.append(_NAME)
            continue
        vsz = vector_size(img.enabled, arch)
        if vreg > vsz:
            log.append(_VSIZE)
            continue
        if vreg < vsz:
            best, vreg, nbits_best = i, vsz, img.nbits
            log.append(_WIDER)
            continue
        if img.nbits < nbits_best:
            log.append(_FEWER)
            continue
        best, nbits_best = i, img.nbits
        log.append(_BEST)
    lines = tuple(f"Target {i} ({img.name}): {line}" for i, (img, line) in
                  enumerate(zip(images, log)))
    return best, vreg, lines, tuple(rejections), name_match


def _outcome(images: Sequence[_Img], jit: TargetSpec, arch: str, what: str) -> CloneMatch:
    best, vreg, log, rejections, name_match = _select(images, jit, arch)
    if best is None:
        return CloneMatch(accepted=False, index=None, target=None, vector_size=0,
                          reason=f"Julia rejects this {what}: {NO_MATCH_MESSAGE} "
                                 f"(no clone runs on a host without "
                                 f"{_missing_summary(rejections)})",
                          rejections=rejections, log=log, jit=jit)
    chosen = images[best]
    if name_match:
        why = f"its CPU name matches the host's ({jit.name})"
    else:
        why = (f"it has the widest vectors ({vreg} bytes) and the most features "
               f"({chosen.nbits}) among the clones this host can run")
    return CloneMatch(accepted=True, index=best, target=chosen.name, vector_size=vreg,
                      reason=f"Julia picks clone {best} ({chosen.name}) of this {what}: {why}",
                      rejections=rejections, log=log, jit=_jit_after(jit, chosen, vreg, arch))


def _missing_summary(rejections: Sequence[Rejection]) -> str:
    if not rejections:
        return "any feature"
    common = set(rejections[0].missing)
    for r in rejections[1:]:
        common &= set(r.missing)
    feats = sorted(common) or sorted({f for r in rejections for f in r.missing})
    return ", ".join(feats)


def _jit_after(jit: TargetSpec, chosen: _Img, vreg: int, arch: str) -> TargetSpec:
    """``sysimg_init_cb``: with a VEC_CALL clone of smaller vectors, the JIT drops AVX-512
    (and AVX) so vector arguments keep one ABI. ``disabled`` stays as it was (Julia does not
    recompute it), which matters for the pkgimage match."""
    if arch != "x86_64" or not chosen.flags & VEC_CALL or vreg == vector_size(jit.enabled, arch):
        return jit
    drop = (AVX512_STATE_FEATURES if vreg < 64 else frozenset()) | \
        (AVX_STATE_FEATURES if vreg < 32 else frozenset())
    return replace(jit, enabled=jit.enabled - drop)


def match_targets(host_features: Iterable[str], host_cpu: str,
                  targets: Sequence[ImageTarget | TargetSpec], arch: str, julia_version: str,
                  *, cpu_target: str = "native") -> CloneMatch:
    """Which clone of a system image Julia picks on a host, or Julia's refusal.

    ``host_features`` are Julia feature names after host masking (``HostCPU.julia_features``),
    ``host_cpu`` Julia's name for the host CPU; ``targets`` the image's clone targets in
    image order; ``cpu_target`` Julia's ``-C`` option (default ``native``).
    """
    table = feature_table(arch, julia_version)
    jit = jit_target(host_features, host_cpu, arch, julia_version, cpu_target)
    images = [_image(t, table, i) for i, t in enumerate(targets)]
    if arch == "x86_64" and "cx16" not in jit.enabled and \
            all("cx16" in img.enabled for img in images):
        return CloneMatch(accepted=False, index=None, target=None, vector_size=0,
                          reason=CX16_MESSAGE,
                          rejections=tuple(Rejection(i, img.name, ("cx16",))
                                           for i, img in enumerate(images)),
                          log=(), jit=jit)
    return _outcome(images, jit, arch, "system image")


def match_pkgimage(jit: TargetSpec, targets: Sequence[ImageTarget | TargetSpec], arch: str,
                   julia_version: str) -> CloneMatch:
    """The same rule for a pkgimage against the JIT target (``pkgimg_init_cb``); pass the
    ``jit`` of the system image's CloneMatch."""
    table = feature_table(arch, julia_version)
    images = [_image(t, table, i) for i, t in enumerate(targets)]
    return _outcome(images, jit, arch, "pkgimage")
