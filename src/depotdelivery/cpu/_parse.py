"""Readers for recorded CPU descriptions: /proc/cpuinfo and archspec's CPUID dump format."""
from __future__ import annotations

import os

TYPE_CHECKING = False  # no `typing` on a job's path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from depotdelivery._record import NamedTuple

from depotdelivery.errors import InputError, UnsupportedError

__all__ = ["CpuInfo", "cpuinfo_int", "parse_cpuid_dump", "parse_cpuinfo", "read_text"]



class CpuInfo(NamedTuple):
    """The first processor block of a /proc/cpuinfo file, reduced to what detection needs,
    plus (aarch64) every block's MIDR fields: Julia names a heterogeneous machine from all of
    its cores (src/processor_arm.cpp get_cpuinfo_procfs), LLVM from the last block."""

    arch: str  # "x86_64" | "aarch64"
    fields: dict[str, str]
    flags: frozenset[str]  # x86 "flags" / aarch64 "Features"
    cores: tuple[tuple[int, int, int, int], ...] = ()  # aarch64: (implementer, variant, part, revision)


# /proc/cpuinfo of a 1024-core machine is about 1.5 MB; a CPUID dump is a few KiB
_TEXT_LIMIT = 16 << 20


def read_text(path: str | os.PathLike[str], what: str) -> str:
    """File contents, or an InputError saying which file could not be read and why."""
    from depotdelivery.readbounded import read_bounded

    try:
        data = read_bounded(path, _TEXT_LIMIT)
    except OSError as exc:
        raise InputError(f"cannot read {what} {os.fspath(path)}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{os.fspath(path)}:{line}: not UTF-8 text ({what})") from None


def _int_field(fields: dict[str, str], lines: dict[str, int], key: str, where: str) -> int:
    value = fields.get(key, "0")
    try:
        return int(value, 0)
    except ValueError:
        raise InputError(f"{where}:{lines.get(key, 0)}: field {key!r} is not an integer: {value!r}") from None


def parse_cpuinfo(text: str, *, where: str = "/proc/cpuinfo") -> CpuInfo:
    """Parse the first processor block (as archspec and Julia read it).

    Malformed text, or a file that describes no CPU at all, raises InputError naming ``where``
    and the line; a well-formed description of a CPU family we do not model (POWER, RISC-V, a
    macOS sysctl dump) raises UnsupportedError.
    """
    fields: dict[str, str] = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            if fields:
                break  # a blank line ends the first processor's block
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            raise InputError(f"{where}:{number}: expected 'key : value', got {line.strip()[:60]!r}")
        fields.setdefault(key.strip(), value.strip())
        lines.setdefault(key.strip(), number)
    if fields.get("vendor_id") in _X86_VENDORS:
        for key in ("cpu family", "model", "stepping"):
            if key in fields:
                _int_field(fields, lines, key, where)
        if "flags" not in fields:
            raise InputError(f"{where}:{lines['vendor_id']}: x86 processor block has no 'flags' field")
        arch, flags = "x86_64", fields["flags"]
    elif _is_aarch64(fields):
        arch, flags = "aarch64", fields.get("Features", "")
        for key in ("CPU implementer", "CPU variant", "CPU part", "CPU revision"):
            if key in fields:
                _int_field(fields, lines, key, where)
    elif not fields:
        raise InputError(f"{where}:1: empty, not a /proc/cpuinfo file")
    elif not _describes_a_cpu(fields):
        first = next(iter(fields))
        raise InputError(f"{where}:{lines[first]}: not a /proc/cpuinfo file (no 'processor', 'flags' or 'Features' "
                         f"field; first key {first[:40]!r})")
    else:
        hint = next((fields[key] for key in _FAMILY_HINTS if fields.get(key)), next(iter(fields)))
        raise UnsupportedError(
            f"{where}: describes a CPU depotdelivery does not model ({hint[:60]}); "
            "only x86_64 and aarch64 /proc/cpuinfo files are supported"
        )
    cores = _aarch64_cores(text, where) if arch == "aarch64" else ()
    return CpuInfo(arch, fields, frozenset(flags.split()), cores)


_MIDR_KEYS = ("CPU implementer", "CPU variant", "CPU part", "CPU revision")


def _aarch64_cores(text: str, where: str) -> tuple[tuple[int, int, int, int], ...]:
    """Every processor block's (implementer, variant, part, revision), in file order; a block
    without implementer and part is skipped (as Julia's /proc/cpuinfo reader does)."""
    cores: list[tuple[int, int, int, int]] = []
    block: dict[str, int] = {}

    def flush() -> None:
        if "CPU implementer" in block and "CPU part" in block:
            implementer, variant, part, revision = (block.get(k, 0) for k in _MIDR_KEYS)
            cores.append((implementer, variant, part, revision))
        block.clear()

    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            flush()
            continue
        key, _, value = line.partition(":")
        key = key.strip()
        if key in _MIDR_KEYS:
            if key in block:  # a block without the blank line: a new core starts
                flush()
            block[key] = _int_field({key: value.strip()}, {key: number}, key, where)
    flush()
    return tuple(cores)


# The CPUID vendor strings the x86 kernel prints as vendor_id (arch/x86/kernel/cpu/*.c
# c_ident; Zhaoxin's "  Shanghai  " arrives stripped). s390x prints vendor_id too
# ("IBM/S390", arch/s390/kernel/processor.c), and other ports print their own.
_X86_VENDORS = frozenset({
    "GenuineIntel", "AuthenticAMD", "HygonGenuine", "CentaurHauls", "Shanghai", "CyrixInstead",
    "Geode by NSC", "NexGenDriven", "GenuineTMx86", "TransmetaCPU", "UMC UMC UMC", "Vortex86 SoC",
})
# HWCAP names only the 32-bit ARM kernel (arch/arm/kernel/setup.c hwcap_str) and an arm64
# kernel's compat view for a 32-bit task (arch/arm64/kernel/cpuinfo.c compat_hwcap_str) print;
# the arm64 names are "fp", "asimd", ... instead.
_ARM32_HWCAPS = frozenset({"swp", "half", "thumb", "26bit", "fastmult", "vfp", "edsp", "java", "iwmmxt",
                           "thumbee", "neon", "vfpv3", "vfpv3d16", "tls", "vfpv4", "idiva", "idivt"})
# Fields naming the family in the message: model name (ARM, RISC-V), cpu (POWER), isa (RISC-V),
# vendor_id (s390x "IBM/S390"), system type (LoongArch, MIPS), machdep (macOS sysctl dumps).
_FAMILY_HINTS = ("cpu", "isa", "vendor_id", "system type", "model name", "Processor", "machdep.cpu.brand_string")


def _is_aarch64(fields: dict[str, str]) -> bool:
    """An arm64 kernel's view for a 64-bit task: it prints "CPU architecture: 8" (older kernels
    "AArch64"; arch/arm64/kernel/cpuinfo.c c_show) and HWCAP names with "fp"/"asimd". The
    32-bit ARM kernel prints 7 or older architectures, and a 32-bit task on arm64 (armv8l)
    sees 32-bit HWCAP names (and a "(v8l)" model name)."""
    features = set(fields.get("Features", "").split())
    if features & _ARM32_HWCAPS or "(v8l)" in fields.get("model name", ""):
        return False
    architecture = fields.get("CPU architecture")
    if architecture is not None:
        return architecture in ("8", "AArch64")
    return {"fp", "asimd"} <= features


def _describes_a_cpu(fields: dict[str, str]) -> bool:
    """A CPU description of a family we do not model, rather than some other file (say
    /etc/passwd, whose lines also split at ':'): a Linux /proc/cpuinfo block starts with
    ``processor`` on most architectures (POWER, RISC-V, 32-bit ARM, ...), s390x's summary
    block with ``vendor_id``, LoongArch's and MIPS's with ``system type``, old 32-bit ARM
    kernels' with ``Processor``; a macOS sysctl dump (archspec's darwin-* captures) has
    ``hw.*`` / ``machdep.cpu.*`` keys."""
    return (any(key in fields for key in ("processor", "Processor", "vendor_id", "system type",
                                            "CPU architecture", "CPU implementer", "Features", "flags"))
            or any(key.startswith(("hw.", "machdep.cpu.")) for key in fields))


def cpuinfo_int(info: CpuInfo, key: str) -> int:
    """An integer field already validated by parse_cpuinfo (0 when absent)."""
    return int(info.fields.get(key, "0"), 0)


def parse_cpuid_dump(text: str, *, where: str) -> dict[tuple[int, int], tuple[int, int, int, int]]:
    """archspec's captured format: one ``eax_in, ecx_in, eax, ebx, ecx, edx`` line per leaf
    (archspec/json/tests/targets/windows-cpuid-*); blank lines and ``#`` comments allowed."""
    registers: dict[tuple[int, int], tuple[int, int, int, int]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        parts = [p.strip() for p in content.split(",")]
        if len(parts) != 6:
            raise InputError(
                f"{where}:{number}: expected 6 comma-separated integers "
                f"(eax_in, ecx_in, eax, ebx, ecx, edx), got {len(parts)}"
            )
        values = []
        for column, part in zip(("eax_in", "ecx_in", "eax", "ebx", "ecx", "edx"), parts):
            try:
                value = int(part, 0)
            except ValueError:
                raise InputError(f"{where}:{number}: {column} is not an integer: {part[:30]!r}") from None
            if not 0 <= value <= 0xFFFFFFFF:
                raise InputError(f"{where}:{number}: {column} {value} is outside 0..0xFFFFFFFF")
            values.append(value)
        registers[(values[0], values[1])] = (values[2], values[3], values[4], values[5])
    if (0, 0) not in registers:
        raise InputError(f"{where}: no leaf 0 line ('0, 0, max_leaf, ebx, ecx, edx'): not a CPUID dump")
    return registers
