"""Julia's view of the host: host-masked feature words and the CPU name Julia's model tables give.

Facts from src/processor_x86.cpp and src/processor_arm.cpp (``_get_host_cpu``,
``get_intel_processor_name``, ``get_amd_processor_name``, ``get_cpu_name``,
``arg_target_data``); the feature numbering itself is depotdelivery.julia.features.
"""
from __future__ import annotations

from depotdelivery.cpu._x86 import XCR0_AMX, XCR0_AVX, XCR0_AVX512

TYPE_CHECKING = False  # no `typing` on a job's path (see depotdelivery/__init__.py)
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
    names |= _aarch64_cpu_table_features(host, version)
    host_names = frozenset(names)
    return table.disable_depends(table.enable_depends(host_names) & host_names)


def _midrs(host: HostCPU) -> tuple[int, ...]:
    return host.midrs or ((host.midr,) if host.midr else ())


def _aarch64_cpu_table_features(host: HostCPU, version: str) -> frozenset[str]:
    """_get_host_cpu (processor_arm.cpp, 1.9-1.12) ORs into the HWCAPs the CPU-table features
    common to every core it recognises from MIDR (architecture-version bits, dotprod, sve...);
    one core it does not recognise makes that set empty."""
    from depotdelivery.julia import hostcpu
    from depotdelivery.julia.cputarget import cpu_features

    known, unknown = hostcpu.aarch64_julia_cores(_midrs(host), version)
    if unknown or not known:
        return frozenset()
    return frozenset.intersection(*(cpu_features(name, "aarch64", version) or frozenset() for name in known))


def julia_words(host: HostCPU, version: str) -> tuple[int, ...]:
    from depotdelivery.julia import features as jf

    return jf.feature_table(host.arch, version).words(julia_features(host, version))


def julia_cpu(host: HostCPU, version: str) -> tuple[str, str]:
    """``(name, source)``: the CPU name Julia gives this host (``Sys.CPU_NAME``, the ``native``
    target's name) and where it comes from (``julia`` | ``llvm-<N>`` | ``llvm-<N>-guess``),
    computed by depotdelivery.julia.hostcpu from the host's raw registers / MIDR."""
    from depotdelivery.julia import hostcpu

    if host.arch == "aarch64":
        return hostcpu.aarch64_cpu_name(_midrs(host), version)
    return hostcpu.x86_cpu_name(dict(host.registers), host.xcr0, version)
