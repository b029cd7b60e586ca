"""detect(): the HostCPU of this machine (CPUID, else /proc/cpuinfo), of a recorded file, or of
a named microarchitecture (DEPOTDELIVERY_MICROARCH)."""
from __future__ import annotations

import os

from depotdelivery.cpu import _x86
from depotdelivery.cpu.host import HostCPU
from depotdelivery.errors import UnsupportedError, UsageError

# `typing` (with re, enum, collections, functools) costs more to import than the whole first
# detect(): type checkers treat a module-level TYPE_CHECKING name as typing.TYPE_CHECKING.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping, Optional, Union

    from depotdelivery.cpu._parse import CpuInfo

    PathArg = Union[str, os.PathLike[str]]

__all__ = ["ENV_MICROARCH", "detect", "host_from_cpuinfo", "host_from_microarch", "host_from_registers"]

ENV_MICROARCH = "DEPOTDELIVERY_MICROARCH"
PROC_CPUINFO = "/proc/cpuinfo"
MIDR_SYSFS = "/sys/devices/system/cpu/cpu0/regs/identification/midr_el1"
_AT_HWCAP, _AT_HWCAP2 = 16, 26  # linux/auxvec.h
_ARCH_X86_64, _ARCH_AARCH64 = 1, 2  # src/_cpuid.c dd_arch()

_cache: dict[Optional[str], HostCPU] = {}



def detect(
    registers: Optional[Mapping[tuple[int, int], tuple[int, int, int, int]]] = None,
    *,
    xcr0: Optional[int] = None,
    cpuinfo: Optional[PathArg] = None,
    cpuid_dump: Optional[PathArg] = None,
    microarch: Optional[str] = None,
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
    if cpuid_dump is not None or cpuinfo is not None:
        from depotdelivery.cpu._parse import parse_cpuid_dump, parse_cpuinfo, read_text
    if cpuid_dump is not None:
        where = os.fspath(cpuid_dump)
        return host_from_registers(parse_cpuid_dump(read_text(cpuid_dump, "CPUID dump"), where=where), xcr0, source="file")
    if cpuinfo is not None:
        where = os.fspath(cpuinfo)
        return host_from_cpuinfo(parse_cpuinfo(read_text(cpuinfo, "cpuinfo file"), where=where), source="file")
    if microarch is not None:
        return host_from_microarch(microarch)
    override = os.environ.get(ENV_MICROARCH) or None
    host = _cache.get(override)
    if host is None:
        host = _cache[override] = host_from_microarch(override, env=True) if override else _live()
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
    registers: Mapping[tuple[int, int], tuple[int, int, int, int]], xcr0: Optional[int], *, source: str
) -> HostCPU:
    """HostCPU of an x86_64 CPUID dump (never raises on odd register values)."""
    regs = {
        (int(leaf) & 0xFFFFFFFF, int(sub) & 0xFFFFFFFF): tuple(int(v) & 0xFFFFFFFF for v in values[:4])
        for (leaf, sub), values in registers.items()
    }
    regs = {key: value + (0,) * (4 - len(value)) for key, value in regs.items()}
    if xcr0 is None:
        xcr0 = _assumed_xcr0(regs)
    return _x86_host(regs, xcr0, source)


def _x86_host(regs: dict[tuple[int, int], tuple[int, int, int, int]], xcr0: int, source: str) -> HostCPU:
    # regs already normalized: 32-bit values, four per leaf (CPUID itself gives no others)
    vendor, family, model, stepping, brand, features = _x86.decode_x86(regs, xcr0)
    return HostCPU(arch="x86_64", vendor=vendor, family=family, model=model, stepping=stepping,
                   brand=brand, features=features, source=source, registers=regs, xcr0=xcr0)


def host_from_cpuinfo(info: CpuInfo, *, source: str, midr: Optional[int] = None) -> HostCPU:
    """HostCPU of a parsed /proc/cpuinfo: the kernel's flags as they are, plus the registers
    (x86) or HWCAPs (aarch64) those flags imply, for Julia's feature words."""
    from depotdelivery.cpu import _aarch64
    from depotdelivery.cpu._parse import cpuinfo_int

    if info.arch == "x86_64":
        vendor = info.fields.get("vendor_id", "")
        family, model, stepping = (cpuinfo_int(info, k) for k in ("cpu family", "model", "stepping"))
        regs, xcr0 = _x86.registers_from_flags(info.flags, vendor=vendor, family=family, model=model, stepping=stepping)
        return HostCPU(arch="x86_64", vendor=vendor, family=family, model=model, stepping=stepping,
                       brand=info.fields.get("model name", ""), features=info.flags, source=source,
                       registers=regs, xcr0=xcr0)
    hwcap, hwcap2 = _aarch64.hwcaps_from_features(info.flags)
    if midr is None:
        midr = _aarch64.midr_from_fields(*(cpuinfo_int(info, k) for k in (
            "CPU implementer", "CPU variant", "CPU part", "CPU revision")))
    return _aarch64_host(info.fields.get("CPU implementer"), midr, hwcap, hwcap2, info.flags, source)


def _aarch64_host(implementer_text: Optional[str], midr: int, hwcap: int, hwcap2: int,
                  features: frozenset[str], source: str) -> HostCPU:
    from depotdelivery.cpu import _aarch64

    fields = _aarch64.midr_fields(midr)
    if implementer_text is None and not midr:
        vendor = "generic"  # archspec's _canonicalize_aarch64_vendor without an implementer
    else:
        vendor = _aarch64.IMPLEMENTERS.get(fields.implementer, implementer_text or f"0x{fields.implementer:02x}")
    return HostCPU(arch="aarch64", vendor=vendor, family=fields.implementer, model=fields.part,
                   stepping=fields.revision, brand="", features=features, source=source,
                   hwcap=hwcap, hwcap2=hwcap2, midr=midr)


def host_from_microarch(name: str, *, env: bool = False) -> HostCPU:
    """HostCPU with archspec's features for a microarchitecture name (``source="override"``)."""
    from depotdelivery.cpu._archspec import microarchitectures

    targets = microarchitectures()
    root = name
    while root in targets and targets[root]["from"]:
        root = targets[root]["from"][0]
    if name not in targets or root not in ("x86_64", "aarch64"):
        valid = sorted(n for n in targets if _root(targets, n) in ("x86_64", "aarch64"))
        origin = f"{ENV_MICROARCH}={name}" if env else f"microarchitecture {name!r}"
        raise UsageError(f"{origin} is not an x86_64 or aarch64 archspec name; valid: {', '.join(valid)}")
    record = targets[name]
    features = _inherited_features(targets, name)
    if "ssse3" in features:  # as archspec's Microarchitecture.__init__ adds it
        features.add("sse3")
    vendor = record["vendor"]
    if root == "x86_64":
        family, model = _REPRESENTATIVE_X86.get(name, (0, 0))
        regs, xcr0 = _x86.registers_from_flags(
            features, vendor="" if vendor == "generic" else vendor, family=family, model=model)
        host = HostCPU(arch="x86_64", vendor=vendor, family=family, model=model,
                       brand=f"{name} ({ENV_MICROARCH})" if env else name,
                       features=frozenset(features), source="override", registers=regs, xcr0=xcr0)
    else:
        from depotdelivery.cpu import _aarch64

        codes = {v: k for k, v in _aarch64.IMPLEMENTERS.items()}
        part = record.get("cpupart", "")
        midr = 0
        if vendor in codes and part.startswith("0x"):
            midr = _aarch64.midr_from_fields(codes[vendor], 0, int(part, 16), 0)
        hwcap, hwcap2 = _aarch64.hwcaps_from_features(features)
        host = _aarch64_host(vendor, midr, hwcap, hwcap2, frozenset(features), "override")
        host = host.replace(vendor=vendor)
    host._memo["microarch"] = name  # the user named it: do not re-derive (archspec may pick a sibling)
    return host


# archspec x86_64 name -> the CPUID (family, model) of a typical CPU of it, so an override host
# gets the CPU name Julia's model tables give such a CPU (src/processor_x86.cpp), just as a
# real one would; generic levels (x86_64_v2/v3/v4) have no model. aarch64 overrides carry
# archspec's "cpupart" in MIDR instead.
_REPRESENTATIVE_X86: dict[str, tuple[int, int]] = {
    "nocona": (15, 0x04), "core2": (6, 0x0F), "nehalem": (6, 0x1A), "westmere": (6, 0x2C),
    "sandybridge": (6, 0x2A), "ivybridge": (6, 0x3A), "haswell": (6, 0x3F),
    "broadwell": (6, 0x4F), "skylake": (6, 0x5E), "mic_knl": (6, 0x57),
    "skylake_avx512": (6, 0x55), "cascadelake": (6, 0x55), "cannonlake": (6, 0x66),
    "icelake": (6, 0x7E), "sapphirerapids": (6, 0x8F), "alderlake": (6, 0x97),
    "arrowlake": (6, 0xC6), "arrowlake_s": (6, 0xC6),
    "k10": (16, 0x04), "bulldozer": (21, 0x01), "piledriver": (21, 0x10),
    "steamroller": (21, 0x30), "excavator": (21, 0x60), "zen": (23, 0x01), "zen2": (23, 0x31),
    "zen3": (25, 0x01), "zen4": (25, 0x11), "zen5": (26, 0x02), "zen6": (26, 0x50),
}


def _root(targets: dict[str, Any], name: str) -> str:
    while targets[name]["from"]:
        name = targets[name]["from"][0]
    return name


def _inherited_features(targets: dict[str, Any], name: str) -> set[str]:
    # archspec's Microarchitecture.features: its own plus every ancestor's
    features = set(targets[name]["features"])
    for parent in targets[name]["from"]:
        features |= _inherited_features(targets, parent)
    return features


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
        from depotdelivery.cpu._aarch64 import decode_hwcaps

        hwcap, hwcap2 = lib.dd_getauxval(_AT_HWCAP), lib.dd_getauxval(_AT_HWCAP2)
        midr = _sysfs_midr()
        if midr is None:
            return _from_proc_cpuinfo(hwcap=(hwcap, hwcap2))
        return _aarch64_host(None, midr, hwcap, hwcap2, decode_hwcaps(hwcap, hwcap2), "cpuid")
    return _from_proc_cpuinfo()


def _sysfs_midr() -> Optional[int]:
    try:
        with open(MIDR_SYSFS, "rb") as file:
            return int(file.read().strip(), 16)
    except (OSError, ValueError):
        return None


def _from_proc_cpuinfo(hwcap: Optional[tuple[int, int]] = None) -> HostCPU:
    from depotdelivery.cpu._parse import parse_cpuinfo, read_text

    try:
        info = parse_cpuinfo(read_text(PROC_CPUINFO, "cpuinfo file"), where=PROC_CPUINFO)
    except UnsupportedError:
        raise UnsupportedError(
            f"cannot detect this CPU ({os.uname().machine}): depotdelivery models x86_64 and "
            f"aarch64; set {ENV_MICROARCH} to name a microarchitecture"
        ) from None
    host = host_from_cpuinfo(info, source="cpuinfo")
    if hwcap is not None:  # aarch64 with the extension but no sysfs MIDR: trust getauxval
        host = host.replace(hwcap=hwcap[0], hwcap2=hwcap[1], source="cpuid")
    return host
