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

    return names | (cpu_features(host.julia_cpu(version), host.arch, version) or frozenset())


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


def julia_cpu(host: HostCPU, version: str) -> tuple[str, str]:
    """``(name, source)``: the CPU name Julia gives this host (``Sys.CPU_NAME``, the ``native``
    target's name) and where it comes from (``julia`` | ``llvm-<N>`` | ``llvm-<N>-guess``),
    computed by depotdelivery.julia.hostcpu from the host's raw registers / MIDR."""
    from depotdelivery.julia import hostcpu

    if host.arch == "aarch64":
        return hostcpu.aarch64_cpu_name((host.midr,) if host.midr else (), version)
    return hostcpu.x86_cpu_name(dict(host.registers), host.xcr0, version)
