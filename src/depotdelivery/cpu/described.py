"""HostCPUs from descriptions rather than live x86_64 CPUID: /proc/cpuinfo, aarch64 HWCAP/MIDR,
and archspec microarchitecture names (DEPOTDELIVERY_MICROARCH)."""
from __future__ import annotations

import os

from depotdelivery.cpu import _x86
from depotdelivery.cpu.host import ENV_MICROARCH, HostCPU
from depotdelivery.errors import UnsupportedError, UsageError

TYPE_CHECKING = False  # no `typing` on the hot path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from typing import Any

    from depotdelivery.cpu._parse import CpuInfo

__all__ = ["from_proc_cpuinfo", "host_from_cpuinfo", "host_from_microarch", "live_aarch64"]

PROC_CPUINFO = "/proc/cpuinfo"
SYSFS_CPUS = "/sys/devices/system/cpu"  # cpu<N>/regs/identification/midr_el1, one per core


def host_from_cpuinfo(info: CpuInfo, *, source: str, midr: int | None = None) -> HostCPU:
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
    midrs = tuple(_aarch64.midr_from_fields(*core) for core in info.cores)
    if midr is None:
        midr = _aarch64.midr_from_fields(*(cpuinfo_int(info, k) for k in (
            "CPU implementer", "CPU variant", "CPU part", "CPU revision")))
    return _aarch64_host(info.fields.get("CPU implementer"), midr, hwcap, hwcap2, info.flags, source,
                         midrs=midrs or None)


def _aarch64_host(implementer_text: str | None, midr: int, hwcap: int, hwcap2: int,
                  features: frozenset[str], source: str,
                  midrs: tuple[int, ...] | None = None) -> HostCPU:
    """``midrs``: every core's MIDR in CPU order (default: ``midr`` alone, when known)."""
    from depotdelivery.cpu import _aarch64

    fields = _aarch64.midr_fields(midr)
    if implementer_text is None and not midr:
        vendor = "generic"  # archspec's _canonicalize_aarch64_vendor without an implementer
    else:
        vendor = _aarch64.IMPLEMENTERS.get(fields.implementer, implementer_text or f"0x{fields.implementer:02x}")
    return HostCPU(arch="aarch64", vendor=vendor, family=fields.implementer, model=fields.part,
                   stepping=fields.revision, brand="", features=features, source=source,
                   hwcap=hwcap, hwcap2=hwcap2, midr=midr,
                   midrs=midrs if midrs is not None else ((midr,) if midr else ()))


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


def live_aarch64(hwcap: int, hwcap2: int) -> HostCPU:
    """HostCPU of this aarch64 machine from getauxval's HWCAP/HWCAP2 and every core's sysfs
    MIDR_EL1 (``source="cpuid"``; the first core's is ``midr``); /proc/cpuinfo names the CPU
    when sysfs has none."""
    from depotdelivery.cpu._aarch64 import decode_hwcaps

    midrs = _sysfs_midrs()
    if not midrs:
        return from_proc_cpuinfo(hwcap=(hwcap, hwcap2))
    return _aarch64_host(None, midrs[0], hwcap, hwcap2, decode_hwcaps(hwcap, hwcap2), "cpuid",
                         midrs=midrs)


def _sysfs_midrs(root: str = SYSFS_CPUS) -> tuple[int, ...]:
    """Every ``cpu<N>`` directory's midr_el1 (a 4.7+ arm64 kernel), in CPU-number order;
    unreadable or malformed files are skipped, as Julia's get_cpuinfo_sysfs skips them."""
    try:
        names = os.listdir(root)
    except OSError:
        return ()
    numbered = sorted(int(n[3:]) for n in names if n.startswith("cpu") and n[3:].isdigit())
    out = []
    for number in numbered:
        try:
            with open(f"{root}/cpu{number}/regs/identification/midr_el1", "rb") as file:
                out.append(int(file.read().strip(), 16))
        except (OSError, ValueError):
            continue
    return tuple(out)


def from_proc_cpuinfo(hwcap: tuple[int, int] | None = None, *, path: str = PROC_CPUINFO,
                      machine: str | None = None) -> HostCPU:
    """HostCPU of this machine's /proc/cpuinfo (``source="cpuinfo"``; aarch64 HWCAPs given:
    ``"cpuid"``), UnsupportedError for a CPU family depotdelivery does not model or when the
    file describes another architecture than the running kernel's (``machine``, default
    ``os.uname().machine``: a 32-bit task on a 64-bit kernel, an emulated or foreign host)."""
    from depotdelivery.cpu._parse import parse_cpuinfo, read_text

    machine = os.uname().machine if machine is None else machine
    try:
        info = parse_cpuinfo(read_text(path, "cpuinfo file"), where=path)
    except UnsupportedError as exc:
        raise UnsupportedError(
            f"cannot detect this CPU ({machine}): depotdelivery models x86_64 and "
            f"aarch64; set {ENV_MICROARCH} to name a microarchitecture ({exc})"
        ) from None
    if info.arch != machine:
        raise UnsupportedError(
            f"cannot detect this CPU ({machine}): {path} describes an {info.arch} CPU but this "
            f"process runs as {machine}, which depotdelivery does not model; set {ENV_MICROARCH} "
            "to name a microarchitecture"
        )
    host = host_from_cpuinfo(info, source="cpuinfo")
    if hwcap is not None:  # aarch64 with the extension but no sysfs MIDR: trust getauxval
        host = host.replace(hwcap=hwcap[0], hwcap2=hwcap[1], source="cpuid")
    return host
