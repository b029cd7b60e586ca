"""detect(): the HostCPU of this machine (CPUID, else /proc/cpuinfo), of a recorded file, or of
a named microarchitecture (DEPOTDELIVERY_MICROARCH); x86_64 CPUID registers -> HostCPU.

Only what the first detect() on x86_64 runs lives here (its import is part of that call's
cost); the other sources are in cpu.described, imported when one is used."""
from __future__ import annotations

import os

from depotdelivery.cpu import _x86
from depotdelivery.cpu.host import ENV_MICROARCH, HostCPU
from depotdelivery.errors import UsageError

TYPE_CHECKING = False  # no `typing` on the hot path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Mapping
    PathArg = str | os.PathLike[str]

__all__ = ["ENV_MICROARCH", "detect", "host_from_registers"]

_AT_HWCAP, _AT_HWCAP2 = 16, 26  # linux/auxvec.h
_ARCH_X86_64, _ARCH_AARCH64 = 1, 2  # src/_cpuid.c dd_arch()

_cache: dict[str | None, HostCPU] = {}



def detect(
    registers: Mapping[tuple[int, int], tuple[int, int, int, int]] | None = None,
    *,
    xcr0: int | None = None,
    cpuinfo: PathArg | None = None,
    cpuid_dump: PathArg | None = None,
    microarch: str | None = None,
) -> HostCPU:
    """The host CPU.

    With no argument: ``DEPOTDELIVERY_MICROARCH`` if set, else CPUID through the extension
    (``source="cpuid"``), else ``/proc/cpuinfo`` (``source="cpuinfo"``); cached per process.
    Explicit facts take precedence and are never cached: ``registers`` (a CPUID dump
    ``{(leaf, subleaf): (eax, ebx, ecx, edx)}``, with ``xcr0``), a recorded ``cpuinfo`` file
    or ``cpuid_dump`` file (``source="file"``), or a ``microarch`` name (``"override"``).
    """
    given = [x is not None for x in (registers, cpuinfo, cpuid_dump, microarch)]
    if sum(given) > 1:
        raise UsageError("give at most one of registers, cpuinfo, cpuid_dump, microarch")
    if registers is not None:
        return host_from_registers(registers, xcr0, source="cpuid")
    if cpuid_dump is not None:
        from depotdelivery.cpu._parse import parse_cpuid_dump, read_text

        where = os.fspath(cpuid_dump)
        return host_from_registers(parse_cpuid_dump(read_text(cpuid_dump, "CPUID dump"), where=where), xcr0, source="file")
    if cpuinfo is not None:
        from depotdelivery.cpu._parse import parse_cpuinfo, read_text
        from depotdelivery.cpu.described import host_from_cpuinfo

        where = os.fspath(cpuinfo)
        return host_from_cpuinfo(parse_cpuinfo(read_text(cpuinfo, "cpuinfo file"), where=where), source="file")
    if microarch is not None:
        from depotdelivery.cpu.described import host_from_microarch

        return host_from_microarch(microarch)
    override = os.environ.get(ENV_MICROARCH) or None
    host = _cache.get(override)
    if host is None:
        if override:
            from depotdelivery.cpu.described import host_from_microarch

            host = host_from_microarch(override, env=True)
        else:
            host = _live()
        _cache[override] = host
    return host


def _assumed_xcr0(registers: Mapping[tuple[int, int], tuple[int, int, int, int]]) -> int:
    # A dump records no XCR0. Assume the OS saves every state the CPU supports (what Linux
    # and Windows do): CPUID(0xD,0).EDX:EAX when recorded, else every state we test for.
    if not registers.get((1, 0), (0, 0, 0, 0))[2] & (1 << 27):
        return 0
    leaf_d = registers.get((0xD, 0))
    if leaf_d is not None and leaf_d[0]:
        return (leaf_d[3] << 32) | leaf_d[0]
    return 0x3 | _x86.XCR0_AVX | _x86.XCR0_AVX512 | _x86.XCR0_AMX


def host_from_registers(
    registers: Mapping[tuple[int, int], tuple[int, int, int, int]], xcr0: int | None, *, source: str
) -> HostCPU:
    """HostCPU of an x86_64 CPUID dump (never raises on odd register values)."""
    regs: dict[tuple[int, int], tuple[int, int, int, int]] = {}
    for (leaf, sub), values in registers.items():
        v = [int(x) & 0xFFFFFFFF for x in values[:4]] + [0, 0, 0, 0]
        regs[(int(leaf) & 0xFFFFFFFF, int(sub) & 0xFFFFFFFF)] = (v[0], v[1], v[2], v[3])
    if xcr0 is None:
        xcr0 = _assumed_xcr0(regs)
    return _x86_host(regs, xcr0, source)


def _x86_host(regs: dict[tuple[int, int], tuple[int, int, int, int]], xcr0: int, source: str) -> HostCPU:
    # regs already normalized: 32-bit values, four per leaf (CPUID itself gives no others)
    vendor, family, model, stepping, brand, features = _x86.decode_x86(regs, xcr0)
    return HostCPU(arch="x86_64", vendor=vendor, family=family, model=model, stepping=stepping,
                   brand=brand, features=features, source=source, registers=regs, xcr0=xcr0)


# What _live() reads in its one dd_cpuid_leaves call: each range's base leaf (its maximum) first.
_DUMP_LEAVES = tuple(sorted({(0, 0), (0x80000000, 0), *_x86.LEAVES}))
_DUMP_INPUT = [value for pair in _DUMP_LEAVES for value in pair]


def _live() -> HostCPU:
    try:
        from depotdelivery._cpuid import ffi, lib  # the optional extension

        arch = lib.dd_arch()
    except ImportError:
        return _from_proc_cpuinfo()
    if arch == _ARCH_X86_64:
        n = len(_DUMP_LEAVES)
        out = ffi.new("uint32_t[]", 5 * n)
        lib.dd_cpuid_leaves(ffi.new("uint32_t[]", _DUMP_INPUT), n, out)
        v = ffi.unpack(out, 5 * n)  # per leaf: read?, eax, ebx, ecx, edx
        regs = {key: (v[i + 1], v[i + 2], v[i + 3], v[i + 4])
                for key, i in zip(_DUMP_LEAVES, range(0, 5 * n, 5)) if v[i]}
        osxsave = regs.get((1, 0), (0, 0, 0, 0))[2] & (1 << 27)
        xcr0 = lib.dd_xgetbv(0) if osxsave else 0  # XGETBV faults unless the OS enabled it
        return _x86_host(regs, xcr0, "cpuid")
    if arch == _ARCH_AARCH64:
        from depotdelivery.cpu.described import live_aarch64

        return live_aarch64(lib.dd_getauxval(_AT_HWCAP), lib.dd_getauxval(_AT_HWCAP2))
    return _from_proc_cpuinfo()


def _from_proc_cpuinfo() -> HostCPU:
    from depotdelivery.cpu.described import from_proc_cpuinfo

    return from_proc_cpuinfo()
