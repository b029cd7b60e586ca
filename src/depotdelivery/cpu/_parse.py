"""Readers for recorded CPU descriptions: /proc/cpuinfo and archspec's CPUID dump format."""
from __future__ import annotations

import os
from typing import NamedTuple, Union

from depotdelivery.errors import InputError, UnsupportedError

__all__ = ["CpuInfo", "cpuinfo_int", "parse_cpuid_dump", "parse_cpuinfo", "read_text"]

PathLike = Union[str, "os.PathLike[str]"]


class CpuInfo(NamedTuple):
    """The first processor block of a /proc/cpuinfo file, reduced to what detection needs."""

    arch: str  # "x86_64" | "aarch64"
    fields: dict[str, str]
    flags: frozenset[str]  # x86 "flags" / aarch64 "Features"


def read_text(path: PathLike, what: str) -> str:
    """File contents, or an InputError saying which file could not be read and why."""
    try:
        with open(path, "rb") as file:
            data = file.read()
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
    if "flags" in fields or "vendor_id" in fields:
        arch, flags = "x86_64", fields.get("flags", "")
        for key in ("cpu family", "model", "stepping"):
            if key in fields:
                _int_field(fields, lines, key, where)
    elif "Features" in fields or "CPU implementer" in fields:
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
        hint = fields.get("cpu") or fields.get("isa") or fields.get("machdep.cpu.brand_string") or next(iter(fields))
        raise UnsupportedError(
            f"{where}: describes a CPU depotdelivery does not model ({hint[:60]}); "
            "only x86_64 ('flags') and aarch64 ('Features') /proc/cpuinfo files are supported"
        )
    return CpuInfo(arch, fields, frozenset(flags.split()))


def _describes_a_cpu(fields: dict[str, str]) -> bool:
    """A CPU description of a family we do not model, rather than some other file (say
    /etc/passwd, whose lines also split at ':'): a Linux /proc/cpuinfo block starts with
    ``processor`` on every architecture (POWER, RISC-V, s390x, ...); a macOS sysctl dump
    (archspec's darwin-* captures) has ``hw.*`` / ``machdep.cpu.*`` keys."""
    return "processor" in fields or any(key.startswith(("hw.", "machdep.cpu.")) for key in fields)


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
