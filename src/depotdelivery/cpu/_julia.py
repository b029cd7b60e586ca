"""Julia's view of the host: host-masked feature words and the CPU name Julia's model tables give.

Facts from src/processor_x86.cpp and src/processor_arm.cpp (``_get_host_cpu``,
``get_intel_processor_name``, ``get_amd_processor_name``, ``get_cpu_name``,
``arg_target_data``); the feature numbering itself is depotdelivery.julia.features.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from depotdelivery.cpu._x86 import XCR0_AMX, XCR0_AVX, XCR0_AVX512

if TYPE_CHECKING:
    from depotdelivery.cpu._x86 import Registers
    from depotdelivery.cpu.host import HostCPU

__all__ = ["julia_cpu", "julia_features", "julia_words"]

_REG_INDEX = {"eax": 0, "ebx": 1, "ecx": 2, "edx": 3}
_AVX_BIT = 1 << 28  # CPUID(1).ECX
_OSXSAVE_BIT = 1 << 27


def _x86_host_names(registers: Registers, xcr0: int, version: str) -> frozenset[str]:
    from depotdelivery.julia import features as jf

    key = jf.version_key(version)
    table = jf.feature_table("x86_64", key)
    words = []
    for leaf, sub, reg in jf.X86_WORD_SOURCES[key]:
        values = registers.get((leaf, sub))
        words.append(values[_REG_INDEX[reg]] & 0xFFFFFFFF if values else 0)
    names = set(table.names(words))  # mask_features: only bits Julia defines
    ecx1 = words[0]
    # _get_host_cpu: XSAVE usable iff OSXSAVE and the OS saves SSE+AVX state
    hasxsave = bool(ecx1 & _OSXSAVE_BIT) and xcr0 & XCR0_AVX == XCR0_AVX
    hasavx = hasxsave and bool(ecx1 & _AVX_BIT)
    if not hasavx:
        names -= jf.AVX_STATE_FEATURES
    if not (hasavx and xcr0 & XCR0_AVX512 == XCR0_AVX512):
        names -= jf.AVX512_STATE_FEATURES
    if not (hasxsave and xcr0 & XCR0_AMX == XCR0_AMX):
        names -= jf.AMX_STATE_FEATURES
    # arg_target_data("native", require_host=true): enable_depends, drop what LLVM does not
    # use (rdrnd, rdseed, rtm, xsaveopt), intersect with the host, disable_depends
    host = frozenset(names)
    enabled = (table.enable_depends(host) - jf.LLVM_UNUSED_FEATURES) & host
    return table.disable_depends(enabled)


# src/processor_arm.cpp ``get_cpu_name`` (AArch64 parts Julia names; v1.10-v1.12) ->
# (Julia CPU name, the architecture version bit its CPU table entry carries in word 2).
_ARM_CPUS: dict[tuple[int, int], tuple[str, str]] = {
    (0x41, 0xD03): ("cortex-a53", ""), (0x41, 0xD04): ("cortex-a35", ""),
    (0x41, 0xD05): ("cortex-a55", "v8_2a"), (0x41, 0xD07): ("cortex-a57", ""),
    (0x41, 0xD08): ("cortex-a72", ""), (0x41, 0xD09): ("cortex-a73", ""),
    (0x41, 0xD0A): ("cortex-a75", "v8_2a"), (0x41, 0xD0B): ("cortex-a76", "v8_2a"),
    (0x41, 0xD0C): ("neoverse-n1", "v8_2a"), (0x41, 0xD0D): ("cortex-a77", "v8_2a"),
    (0x41, 0xD0E): ("cortex-a76ae", "v8_2a"), (0x41, 0xD40): ("neoverse-v1", "v8_4a"),
    (0x41, 0xD41): ("cortex-a78", "v8_2a"), (0x41, 0xD49): ("neoverse-n2", "v8_5a"),
    (0x42, 0x516): ("thunderx2t99", "v8_1a"), (0x43, 0x0AF): ("thunderx2t99", "v8_1a"),
    (0x46, 0x001): ("a64fx", "v8_2a"), (0x4E, 0x004): ("carmel", "v8_2a"),
    (0x61, 0x022): ("apple-m1", "v8_5a"), (0x61, 0x023): ("apple-m1", "v8_5a"),
    (0x61, 0x024): ("apple-m1", "v8_5a"), (0x61, 0x025): ("apple-m1", "v8_5a"),
    (0x61, 0x028): ("apple-m1", "v8_5a"), (0x61, 0x029): ("apple-m1", "v8_5a"),
}


def _arm_cpu(host: HostCPU) -> tuple[str, str]:
    from depotdelivery.cpu._aarch64 import midr_fields

    fields = midr_fields(host.midr)
    return _ARM_CPUS.get((fields.implementer, fields.part), ("generic", ""))


def julia_features(host: HostCPU, version: str, *, guaranteed: bool = False) -> frozenset[str]:
    """The feature names Julia's ``native`` target has on this host (after its host masking).

    ``guaranteed`` only matters for an override host: then only the features its archspec
    microarchitecture guarantees (what a CPU target must limit itself to), not those of a
    typical CPU of that name (what selection for an override assumes)."""
    names = _measured_features(host, version)
    if host.source != "override" or guaranteed:
        return names
    # An override (``DEPOTDELIVERY_MICROARCH=haswell``) stands for a typical CPU of that name,
    # but archspec's feature lists are minimal (its haswell lacks fsgsbase, its skylake_avx512
    # lacks pku and xsaves): Julia's own table for the CPU name it would give such a host is
    # what a real one of them has, so a ``haswell`` clone is usable on a ``haswell`` override.
    from depotdelivery.julia.cputarget import cpu_features

    return names | (cpu_features(julia_cpu(host, version), host.arch, version) or frozenset())


def _measured_features(host: HostCPU, version: str) -> frozenset[str]:
    if host.arch == "x86_64":
        return _x86_host_names(dict(host.registers), host.xcr0, version)
    from depotdelivery.julia import features as jf

    table = jf.feature_table("aarch64", version)
    names = set(table.names((host.hwcap & 0xFFFFFFFF, host.hwcap2 & 0xFFFFFFFF, 0)))
    # _get_host_cpu ORs in the features of the CPU recognised from MIDR: its architecture
    # version bit and what that version implies (processor_arm.cpp enable_depends)
    version_bit = _arm_cpu(host)[1]
    if version_bit:
        names |= table.enable_depends({version_bit})
    host_names = frozenset(names)
    return table.disable_depends(table.enable_depends(host_names) & host_names)


def julia_words(host: HostCPU, version: str) -> tuple[int, ...]:
    from depotdelivery.julia import features as jf

    return jf.feature_table(host.arch, version).words(julia_features(host, version))


def _intel_name(family: int, model: int, brand_id: int, features: frozenset[str], minor: int) -> str:
    # src/processor_x86.cpp get_intel_processor_name (v1.10.x; 1.11/1.12 add no Intel models
    # to Julia's own table as far as read)
    if brand_id != 0:
        return "generic"
    if family == 15:
        return "nocona" if model in (3, 4, 6) else "generic"
    if family != 6:
        return "generic"
    if model == 0x55:  # Skylake Xeon: told apart by feature
        if "avx512bf16" in features:
            return "cooperlake"
        if "avx512vnni" in features:
            return "cascadelake"
        return "skylake-avx512"
    for name, models in _INTEL_MODELS:
        if model in models:
            return name
    # Julia names an unknown model with LLVM's sys::getHostCPUName (host_cpu_name): LLVM 15/16
    # (Julia 1.10/1.11) call Raptor Lake and Meteor Lake "alderlake"; LLVM 18 (1.12) has names
    if model in (0xB7, 0xBA, 0xBF):
        return "raptorlake" if minor >= 12 else "alderlake"
    if model in (0xAA, 0xAC):
        return "meteorlake" if minor >= 12 else "alderlake"
    return "generic"


_INTEL_MODELS: tuple[tuple[str, frozenset[int]], ...] = tuple(
    (name, frozenset(models))
    for name, models in (
        ("yonah", (0x0E,)), ("core2", (0x0F, 0x16)), ("penryn", (0x17, 0x1D)),
        ("nehalem", (0x1A, 0x1E, 0x1F, 0x2E)), ("westmere", (0x25, 0x2C, 0x2F)),
        ("sandybridge", (0x2A, 0x2D)), ("ivybridge", (0x3A, 0x3E)),
        ("haswell", (0x3C, 0x3F, 0x45, 0x46)), ("broadwell", (0x3D, 0x47, 0x4F, 0x56)),
        ("skylake", (0x4E, 0x5E, 0x8E, 0x9E, 0xA5, 0xA6)), ("cannonlake", (0x66,)),
        ("icelake-client", (0x7D, 0x7E, 0x9D)), ("icelake-server", (0x6A, 0x6C)),
        ("tigerlake", (0x8C, 0x8D)), ("alderlake", (0x97, 0x9A)),
        ("sapphirerapids", (0x8F,)), ("bonnell", (0x1C, 0x26, 0x27, 0x35, 0x36)),
        ("silvermont", (0x37, 0x4A, 0x4D, 0x5D, 0x4C, 0x5A, 0x75)),
        ("goldmont", (0x5C, 0x5F)), ("goldmont-plus", (0x7A,)),
        ("tremont", (0x86, 0x96, 0x9C)), ("knl", (0x57,)), ("knm", (0x85,)),
    )
)


def _amd_name(family: int, model: int, features: frozenset[str], minor: int) -> str:
    # src/processor_x86.cpp get_amd_processor_name (v1.10.x); Zen 4 detection from
    # JuliaLang/julia#52944 (in 1.11), Zen 5 (family 1Ah) in 1.12
    if family == 15:
        return "k8-sse3" if "sse3" in features else {1: "opteron", 5: "athlon-fx"}.get(model, "athlon64")
    if family == 16:
        return "barcelona" if model == 2 else "amdfam10"
    if family == 20:
        return "btver1"
    if family == 21:
        if 0x50 <= model <= 0x6F:
            return "bdver4"
        if 0x30 <= model <= 0x3F:
            return "bdver3"
        if 0x10 <= model <= 0x1F:
            return "bdver2"
        return "bdver1" if model <= 0x0F else "btver1"
    if family == 22:
        return "btver2"
    if family == 23:
        return "znver2" if model >= 0x30 else "znver1"
    if family == 25:
        # Family 19h: Zen 4 are models 10h-1Fh, 60h-7Fh, A0h-AFh (AMD's software
        # optimization guide, as LLVM's Host.cpp); the rest Zen 3
        zen4 = 0x10 <= model <= 0x1F or 0x60 <= model <= 0x7F or 0xA0 <= model <= 0xAF
        return "znver4" if zen4 and minor >= 11 else "znver3"
    if family == 26 and minor >= 12:
        return "znver5"
    return "generic"


def julia_cpu(host: HostCPU, version: str) -> str:
    """The CPU name Julia gives this host (``Sys.CPU_NAME``, the ``native`` target's name)."""
    from depotdelivery.julia import features as jf

    minor = int(jf.version_key(version).split(".")[1])
    if host.arch == "aarch64":
        return _arm_cpu(host)[0]
    registers = dict(host.registers)
    names = _x86_host_names(registers, host.xcr0, version)
    if host.vendor == "GenuineIntel":
        brand_id = registers.get((1, 0), (0, 0, 0, 0))[1] & 0xFF
        return _intel_name(host.family, host.model, brand_id, names, minor)
    if host.vendor == "AuthenticAMD":
        return _amd_name(host.family, host.model, names, minor)
    return "generic"
