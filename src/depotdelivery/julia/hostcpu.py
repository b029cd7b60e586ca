"""The host CPU name each Julia version gives a machine (``Sys.CPU_NAME``, the name of the
``native`` target that clone selection compares with every clone's name), and where it came
from: Julia's own table (``"julia"``), LLVM's model table (``"llvm-<N>"``) or LLVM's
feature-based guess for an unknown Intel family-6 model (``"llvm-<N>-guess"``).

The rule, src/processor_x86.cpp / src/processor_arm.cpp ``host_cpu_name`` (1.9-1.12): Julia's
table names the CPU; where it says generic, the name is ``jl_get_cpu_name_llvm()`` =
``llvm::sys::getHostCPUName()`` of the LLVM that Julia version ships (x86: always; AArch64: only
if LLVM's answer is not "generic"). The tables are data (depotdelivery.julia.cpunames); this
module only walks them, from raw facts (CPUID registers + XCR0, or every core's MIDR_EL1).
"""
from __future__ import annotations

from depotdelivery._memo import cache

TYPE_CHECKING = False  # no `typing` on a job's path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    Registers = Mapping[tuple[int, int], Sequence[int]]
from depotdelivery.errors import UsageError

__all__ = [
    "LLVM_VERSIONS", "aarch64_cpu_name", "aarch64_julia_cores", "aarch64_llvm_name", "llvm_version",
    "x86_cpu_name", "x86_julia_name", "x86_llvm_name",
]

# deps/llvm.version (LLVM_VER) of each release line: 1.9 14.0.5, 1.10 15.0.7, 1.11 16.0.6,
# 1.12 18.1.7 (1.13 ships 20.1.8 and is refused by features.version_key).
LLVM_VERSIONS: dict[int, int] = {9: 14, 10: 15, 11: 16, 12: 18}

_EAX, _EBX, _ECX, _EDX = range(4)


def _minor(julia_version: str) -> int:
    """The Julia minor version (1.9 .. 1.12); features.version_key validates and refuses."""
    from depotdelivery.julia.features import parse_version, version_key

    version_key(julia_version)  # raises UsageError for malformed, too old or too new versions
    parsed = parse_version(julia_version.strip())
    minor = parsed[1] if parsed else -1
    if minor not in LLVM_VERSIONS:
        raise UsageError(f"Julia {julia_version}: no CPU-name tables (known: "
                         f"{', '.join(f'1.{m}' for m in LLVM_VERSIONS)})")
    return minor


def llvm_version(julia_version: str) -> int:
    """The LLVM major version a Julia version ships (deps/llvm.version)."""
    return LLVM_VERSIONS[_minor(julia_version)]


def _check_llvm(llvm: int) -> None:
    if llvm not in LLVM_VERSIONS.values():
        raise UsageError(f"no LLVM {llvm} host-CPU tables (known: "
                         f"{', '.join(map(str, sorted(LLVM_VERSIONS.values())))})")


# --- table walking ------------------------------------------------------------------------

def _model_matches(model: int, models: Iterable[int | tuple[int, int]]) -> bool:
    specs = tuple(models)
    if not specs:
        return True
    return any(model == s if isinstance(s, int) else s[0] <= model <= s[1] for s in specs)


def _choose(choice: str | tuple[tuple[str, str], ...], features: frozenset[str]) -> str | None:
    """A row's name: a plain name, or the first ``(features, name)`` whose "+"-joined
    features are all present (``""`` always); None when no alternative applies."""
    if isinstance(choice, str):
        return choice
    for needed, name in choice:
        if not needed or all(f in features for f in needed.split("+")):
            return name
    return None


def _lookup(rows: Iterable[tuple[int, tuple[int | tuple[int, int], ...], str | tuple[tuple[str, str], ...], int, int]],
            version: int, family: int, model: int, features: frozenset[str]) -> str | None:
    for fam, models, choice, first, last in rows:
        if first <= version <= last and fam == family and _model_matches(model, models):
            name = _choose(choice, features)
            if name is not None:
                return name
    return None


# --- x86 ----------------------------------------------------------------------------------

def _reg(registers: Registers, leaf: int, sub: int, index: int) -> int:
    values = registers.get((leaf, sub))
    return int(values[index]) & 0xFFFFFFFF if values is not None and len(values) > index else 0


def _bit(value: int, bit: int) -> bool:
    return bool(value >> bit & 1)


def _family_model(registers: Registers) -> tuple[int, int]:
    # _get_host_cpu / detectX86FamilyModel: extended family only for family 0xF, extended
    # model for families 6 and 0xF
    eax = _reg(registers, 1, 0, _EAX)
    family, model = (eax >> 8) & 0xF, (eax >> 4) & 0xF
    if family in (6, 0xF):
        if family == 0xF:
            family += (eax >> 20) & 0xFF
        model += ((eax >> 16) & 0xF) << 4
    return family, model


def _julia_features(registers: Registers, xcr0: int) -> frozenset[str]:
    """The few host features Julia's name tables test, masked as ``_get_host_cpu`` masks
    them before naming (XSAVE+AVX state for AVX, AVX-512 state for avx512*)."""
    max_leaf = _reg(registers, 0, 0, _EAX)
    ecx1 = _reg(registers, 1, 0, _ECX)
    hasxsave = _bit(ecx1, 27) and xcr0 & 0x6 == 0x6
    hasavx512 = hasxsave and _bit(ecx1, 28) and xcr0 & 0xE0 == 0xE0
    out = {"sse3"} if _bit(ecx1, 0) else set()
    if max_leaf >= 7 and hasavx512:
        if _bit(_reg(registers, 7, 0, _ECX), 11):
            out.add("avx512vnni")
        if _bit(_reg(registers, 7, 1, _EAX), 5):
            out.add("avx512bf16")
    return frozenset(out)


def _llvm_features(registers: Registers, xcr0: int, llvm: int) -> frozenset[str]:
    """``getAvailableFeatures`` (Host.cpp), reduced to the features the name rules test."""
    max_leaf = _reg(registers, 0, 0, _EAX)
    ecx, edx = _reg(registers, 1, 0, _ECX), _reg(registers, 1, 0, _EDX)
    out = {name for bit, name in ((23, "mmx"), (25, "sse"), (26, "sse2")) if _bit(edx, bit)}
    out |= {name for bit, name in ((0, "sse3"), (9, "ssse3"), (19, "sse4.1"), (20, "sse4.2"),
                                   (22, "movbe")) if _bit(ecx, bit)}
    has_avx = _bit(ecx, 27) and _bit(ecx, 28) and xcr0 & 0x6 == 0x6
    save512 = has_avx and xcr0 & 0xE0 == 0xE0
    if has_avx:
        out.add("avx")
    if max_leaf >= 7:
        ebx7, ecx7, edx7 = (_reg(registers, 7, 0, r) for r in (_EBX, _ECX, _EDX))
        gated = ((ebx7, 5, "avx2", has_avx), (ebx7, 19, "adx", True), (ebx7, 23, "clflushopt", True),
                 (ebx7, 27, "avx512er", save512), (ebx7, 29, "sha", True),
                 (ebx7, 31, "avx512vl", save512), (ecx7, 1, "avx512vbmi", save512),
                 (ecx7, 6, "avx512vbmi2", save512), (ecx7, 11, "avx512vnni", save512),
                 (edx7, 8, "avx512vp2intersect", save512))
        out |= {name for reg, bit, name, ok in gated if ok and _bit(reg, bit)}
        # CPUID(7,1): LLVM <= 16 reads it whenever leaf 7 exists; from 17 only when
        # CPUID(7,0).EAX (the highest subleaf) is >= 1
        if (llvm <= 16 or _reg(registers, 7, 0, _EAX) >= 1) and save512 \
                and _bit(_reg(registers, 7, 1, _EAX), 5):
            out.add("avx512bf16")
    if _reg(registers, 0x80000000, 0, _EAX) >= 0x80000001 and \
            _bit(_reg(registers, 0x80000001, 0, _EDX), 29):
        out.add("64bit")
    return frozenset(out)


def _vendor(registers: Registers) -> bytes:
    return b"".join(_reg(registers, 0, 0, r).to_bytes(4, "little") for r in (_EBX, _EDX, _ECX))


def x86_julia_name(registers: Registers, xcr0: int, julia_version: str) -> str:
    """What Julia's own table (``get_intel_processor_name`` / ``get_amd_processor_name``) says
    of an x86 CPU: a name, or ``generic`` when Julia then asks LLVM."""
    return _julia_x86(registers, xcr0, _minor(julia_version))


def _julia_x86(registers: Registers, xcr0: int, minor: int) -> str:
    from depotdelivery.julia.cpunames import julia_x86

    if _reg(registers, 0, 0, _EAX) < 1:
        return "generic"
    family, model = _family_model(registers)
    features = _julia_features(registers, xcr0)
    vendor = _vendor(registers)[:4]  # _get_host_cpu compares CPUID(0).EBX only
    if vendor == b"Genu":
        if _reg(registers, 1, 0, _EBX) & 0xFF:  # a non-zero brand id: generic
            return "generic"
        rows = julia_x86.INTEL
    elif vendor == b"Auth":
        rows = julia_x86.AMD
    else:
        return "generic"
    return _lookup(rows, minor, family, model, features) or "generic"


def x86_llvm_name(registers: Registers, xcr0: int, llvm: int) -> tuple[str, bool]:
    """``(name, guessed)``: what ``getHostCPUName`` of LLVM ``llvm`` (14, 15, 16, 18) answers
    for an x86 CPU; ``guessed`` when the unknown-family-6 chain named it."""
    from depotdelivery.julia.cpunames import llvm_x86

    _check_llvm(llvm)

    vendor = _vendor(registers)
    if _reg(registers, 0, 0, _EAX) < 1 or vendor not in (b"GenuineIntel", b"AuthenticAMD"):
        return "generic", False
    family, model = _family_model(registers)
    features = _llvm_features(registers, xcr0, llvm)
    rows = llvm_x86.INTEL if vendor == b"GenuineIntel" else llvm_x86.AMD
    name = _lookup(rows, llvm, family, model, features)
    if name is None and vendor == b"GenuineIntel" and family == 6:
        for needed, guess, first, last in llvm_x86.FAMILY6_GUESS:
            if first <= llvm <= last and _choose(((needed, guess),), features):
                return guess, True
    return name or "generic", False


def x86_cpu_name(registers: Registers, xcr0: int, julia_version: str) -> tuple[str, str]:
    """``(name, source)`` for an x86_64 host: Julia's table, else LLVM's ``getHostCPUName``
    (source ``llvm-<N>``, or ``llvm-<N>-guess`` from the unknown-family-6 chain)."""
    minor = _minor(julia_version)
    return _x86_cached(tuple(sorted((k, tuple(v)) for k, v in registers.items())), xcr0, minor)


@cache(maxsize=64)
def _x86_cached(regs: tuple[tuple[tuple[int, int], tuple[int, ...]], ...], xcr0: int,
                minor: int) -> tuple[str, str]:
    registers = dict(regs)
    name = _julia_x86(registers, xcr0, minor)
    if name != "generic":
        return name, "julia"
    llvm = LLVM_VERSIONS[minor]
    name, guessed = x86_llvm_name(registers, xcr0, llvm)
    return name, f"llvm-{llvm}-guess" if guessed else f"llvm-{llvm}"


# --- aarch64 ------------------------------------------------------------------------------

def _midr(value: int) -> tuple[int, int, int]:
    """(implementer, part, variant) of a MIDR_EL1 value."""
    return (value >> 24) & 0xFF, (value >> 4) & 0xFFF, (value >> 20) & 0xF


def _julia_core(implementer: int, part: int, variant: int, minor: int) -> str | None:
    """Julia's name for one core: a CPU name, ``""`` for a 32-bit-only CPU (ignored on
    AArch64), None for a core the table does not know (generic)."""
    from depotdelivery.julia.cpunames import julia_aarch64

    for imp, parts, variants, name, first, last in julia_aarch64.MIDR:
        if first <= minor <= last and imp == implementer and part in parts \
                and (not variants or variant in variants):
            return name
    return None


def aarch64_julia_cores(midrs: Sequence[int], julia_version: str) -> tuple[tuple[str, ...], bool]:
    """The distinct cores Julia recognises, in ``_get_host_cpu``'s order (sorted by
    implementer, part, variant), and whether some core is unknown to its table (then Julia
    adds no CPU-table features to the host's HWCAPs)."""
    minor = _minor(julia_version)
    names: list[str] = []
    unknown = False
    for implementer, part, variant in sorted({_midr(m) for m in midrs}):
        name = _julia_core(implementer, part, variant, minor)
        if name is None:
            unknown = True
        elif name and name not in names:
            names.append(name)
    return tuple(names), unknown


def _shrink_big_little(names: Sequence[str]) -> list[str]:
    from depotdelivery.julia.cpunames.julia_aarch64 import BIG_LITTLE_ORDER

    ranks = [BIG_LITTLE_ORDER.index(n) if n in BIG_LITTLE_ORDER else -1 for n in names]
    top = max(ranks, default=-1)
    return [n for n, r in zip(names, ranks) if r == -1 or r >= top]


def aarch64_llvm_name(midr: int, llvm: int) -> str:
    """What ``getHostCPUNameForARM`` of LLVM ``llvm`` answers for a /proc/cpuinfo whose last
    processor block has this MIDR_EL1."""
    from depotdelivery.julia.cpunames import llvm_aarch64

    _check_llvm(llvm)

    implementer, part, variant = _midr(midr)
    if implementer == 0x53:
        exynos = (variant << 12) | part
        return next((name for value, name, first, last in llvm_aarch64.SAMSUNG
                     if value == exynos and first <= llvm <= last), "exynos-m3")
    return next((name for imp, p, name, first, last in llvm_aarch64.PARTS
                 if imp == implementer and p == part and first <= llvm <= last), "generic")


def aarch64_cpu_name(midrs: Sequence[int], julia_version: str) -> tuple[str, str]:
    """``(name, source)`` for an AArch64 host from every core's MIDR_EL1 (in CPU order: the
    last one is the /proc/cpuinfo block LLVM reads). No MIDR known: generic from LLVM's
    side as well."""
    minor = _minor(julia_version)
    llvm = LLVM_VERSIONS[minor]
    known, _unknown = aarch64_julia_cores(midrs, julia_version)
    remaining = _shrink_big_little(known)
    if remaining:
        return remaining[0], "julia"
    name = aarch64_llvm_name(midrs[-1], llvm) if midrs else "generic"
    return name, f"llvm-{llvm}"
