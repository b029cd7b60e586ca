"""Recommend a ``JULIA_CPU_TARGET`` for the microarchitectures a release must serve (the build's
choice of clone targets). It needs both Julia's CPU tables (:mod:`depotdelivery.julia.cputarget`)
and the host model of each microarchitecture (:mod:`depotdelivery.cpu`), so it lives above both
and neither imports the other's way back."""
from __future__ import annotations

import warnings
from collections.abc import Iterable

from depotdelivery.julia.cputarget import (
    julia_cpu_for_microarch,
    parse_cpu_target,
    vector_size,
)

__all__ = ["recommended_cpu_target"]

# archspec names that are ISA levels, not CPU models: no host is *named* after them.
_LEVELS = frozenset({"x86_64_v2", "x86_64_v3", "x86_64_v4", "armv8.1a", "armv8.2a", "armv8.3a",
                     "armv8.4a", "armv8.5a", "armv9.0a", "armv9.2a"})


def _microarch_token(microarch: str, arch: str, julia_version: str) -> str:
    """Julia's CPU for the microarchitecture, minus the features of Julia's table that the
    microarchitecture does not guarantee (archspec's definition, in Julia's names, via the
    host model): e.g. x86_64_v3 -> ``haswell,-fsgsbase,-pclmul``; neoverse_v2 (a core Julia
    does not recognise, so hosts lack the Julia-only v8_Xa bits) -> ``neoverse-v1,-v8_1a,...``.
    Every such clone is accepted by any host of that microarchitecture."""
    from depotdelivery.cpu import detect  # the host model; imports archspec lazily

    name, note = julia_cpu_for_microarch(microarch, arch, julia_version)
    if note:
        warnings.warn(note, UserWarning, stacklevel=3)
    if name == "generic":
        return name
    host = detect(microarch=microarch)
    if host.julia_cpu(julia_version) == "generic" and microarch not in _LEVELS:
        # host_cpu_name (processor_*.cpp): an unrecognised CPU takes LLVM's name, "generic"
        # for a model LLVM does not know either, and a CPU-name match beats every other clone
        warnings.warn(f"{microarch}: Julia {julia_version} does not recognise this CPU and "
                      f"names it 'generic': such hosts run the generic clone (name match)",
                      UserWarning, stacklevel=3)
    guaranteed = host.julia_features(julia_version, guaranteed=True)
    extra = sorted(parse_cpu_target(name, arch, julia_version)[0].enabled - guaranteed)
    return ",".join([name, *(f"-{f}" for f in extra)])


def recommended_cpu_target(microarchs: Iterable[str], arch: str, julia_version: str) -> str:
    """A JULIA_CPU_TARGET covering the given archspec microarchitectures, shaped like the
    official strings: ``generic`` first, the lowest specific target ``clone_all``, the others
    ``base(1)``. Fallbacks (e.g. zen4 on Julia 1.10) are reported with ``warnings.warn``."""
    tokens: dict[str, frozenset[str]] = {}
    for m in microarchs:
        token = _microarch_token(m, arch, julia_version)
        if token != "generic":
            tokens[token] = parse_cpu_target(token, arch, julia_version)[0].enabled
    order = sorted(tokens, key=lambda t: (vector_size(tokens[t], arch), len(tokens[t]), t))
    parts = ["generic"]
    for i, token in enumerate(order):
        parts.append(f"{token},clone_all" if i == 0 else f"{token},base(1)")
    return ";".join(parts)
