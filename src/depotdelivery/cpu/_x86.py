"""x86_64 decoding: CPUID registers + XCR0 -> vendor, family/model/stepping, brand, Linux flag names."""
from __future__ import annotations

__all__ = [
    "EAX",
    "EBX",
    "ECX",
    "EDX",
    "FLAGS",
    "LEAVES",
    "decode_x86",
    "os_supported",
    "registers_from_flags",
]

TYPE_CHECKING = False  # no `typing` on the hot path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Mapping

    Registers = Mapping[tuple[int, int], tuple[int, int, int, int]]

EAX, EBX, ECX, EDX = range(4)

# (leaf, subleaf, register) -> {bit: Linux /proc/cpuinfo name}. Every bit archspec's
# json/cpu/cpuid.json maps (tests/test_cpu_x86.py checks this against the installed archspec),
# under the kernel's name where archspec spells it differently (arch/x86/include/asm/
# cpufeatures.h: tscdeadline -> tsc_deadline_timer, pdpe1gp -> pdpe1gb, pqm -> cqm,
# pqe -> rdt_a, dbx -> bpext, perftsc -> ptsc, pci_l2i -> perfctr_llc; the bit Intel calls
# SSE3 is "pni"), plus the kernel flags archspec's microarchitectures.json needs but its
# cpuid.json lacks (tsc_adjust, flush_l1d, clzero, avx_vnni_int8, avx_ne_convert,
# avx_vnni_int16) and other kernel flags of the same leaves, so the set cross-checks with
# /proc/cpuinfo.
FLAGS: dict[tuple[int, int, int], dict[int, str]] = {
    (0x1, 0, ECX): {
        0: 'pni', 1: 'pclmulqdq', 2: 'dtes64', 3: 'monitor', 4: 'ds_cpl', 5: 'vmx', 6: 'smx',
        7: 'est', 8: 'tm2', 9: 'ssse3', 10: 'cid', 12: 'fma', 13: 'cx16', 14: 'xtpr',
        15: 'pdcm', 17: 'pcid', 18: 'dca', 19: 'sse4_1', 20: 'sse4_2', 21: 'x2apic',
        22: 'movbe', 23: 'popcnt', 24: 'tsc_deadline_timer', 25: 'aes', 26: 'xsave',
        27: 'osxsave', 28: 'avx', 29: 'f16c', 30: 'rdrand', 31: 'hypervisor',
    },
    (0x1, 0, EDX): {
        0: 'fpu', 1: 'vme', 2: 'de', 3: 'pse', 4: 'tsc', 5: 'msr', 6: 'pae', 7: 'mce',
        8: 'cx8', 9: 'apic', 11: 'sep', 12: 'mtrr', 13: 'pge', 14: 'mca', 15: 'cmov',
        16: 'pat', 17: 'pse36', 18: 'pn', 19: 'clflush', 21: 'dts', 22: 'acpi', 23: 'mmx',
        24: 'fxsr', 25: 'sse', 26: 'sse2', 27: 'ss', 28: 'ht', 29: 'tm', 30: 'ia64', 31: 'pbe',
    },
    (0x7, 0, EBX): {
        0: 'fsgsbase', 1: 'tsc_adjust', 2: 'sgx', 3: 'bmi1', 4: 'hle', 5: 'avx2',
        6: 'fdp-excptn-only', 7: 'smep', 8: 'bmi2', 9: 'erms', 10: 'invpcid', 11: 'rtm',
        12: 'cqm', 14: 'mpx', 15: 'rdt_a', 16: 'avx512f', 17: 'avx512dq', 18: 'rdseed',
        19: 'adx', 20: 'smap', 21: 'avx512ifma', 22: 'pcommit', 23: 'clflushopt', 24: 'clwb',
        25: 'intel_pt', 26: 'avx512pf', 27: 'avx512er', 28: 'avx512cd', 29: 'sha_ni',
        30: 'avx512bw', 31: 'avx512vl',
    },
    (0x7, 0, ECX): {
        0: 'prefetchwt1', 1: 'avx512vbmi', 2: 'umip', 3: 'pku', 4: 'ospke', 5: 'waitpkg',
        6: 'avx512_vbmi2', 7: 'cet_ss', 8: 'gfni', 9: 'vaes', 10: 'vpclmulqdq',
        11: 'avx512_vnni', 12: 'avx512_bitalg', 13: 'tme', 14: 'avx512_vpopcntdq', 16: 'la57',
        22: 'rdpid', 24: 'bus_lock_detect', 25: 'cldemote', 27: 'movdiri', 28: 'movdir64b',
        29: 'enqcmd', 30: 'sgx_lc', 31: 'pks',
    },
    (0x7, 0, EDX): {
        2: 'avx512_4vnniw', 3: 'avx512_4fmaps', 4: 'fsrm', 8: 'avx512_vp2intersect',
        10: 'md_clear', 14: 'serialize', 16: 'tsxldtrk', 18: 'pconfig', 19: 'arch_lbr',
        20: 'ibt', 22: 'amx_bf16', 23: 'avx512_fp16', 24: 'amx_tile', 25: 'amx_int8',
        28: 'flush_l1d', 29: 'arch_capabilities', 31: 'ssbd',
    },
    (0x7, 1, EAX): {
        0: 'sha512', 1: 'sm3', 2: 'sm4', 3: 'rao_int', 4: 'avx_vnni', 5: 'avx512_bf16',
        7: 'cmpccxadd', 8: 'arch_perfmon_ext', 10: 'fzrm', 11: 'fsrs', 12: 'fsrc', 18: 'lkgs',
        21: 'amx_fp16', 23: 'avx_ifma', 26: 'lam',
    },
    (0x7, 1, EDX): {
        4: 'avx_vnni_int8', 5: 'avx_ne_convert', 10: 'avx_vnni_int16',
    },
    (0xD, 1, EAX): {
        0: 'xsaveopt', 1: 'xsavec', 2: 'xgetbv1', 3: 'xsaves', 4: 'xfd',
    },
    (0x80000001, 0, ECX): {
        0: 'lahf_lm', 1: 'cmp_legacy', 2: 'svm', 3: 'extapic', 4: 'cr8_legacy', 5: 'abm',
        6: 'sse4a', 7: 'misalignsse', 8: '3dnowprefetch', 9: 'osvw', 10: 'ibs', 11: 'xop',
        12: 'skinit', 13: 'wdt', 15: 'lwp', 16: 'fma4', 17: 'tce', 19: 'nodeid_msr', 21: 'tbm',
        22: 'topoext', 23: 'perfctr_core', 24: 'perfctr_nb', 26: 'bpext', 27: 'ptsc',
        28: 'perfctr_llc', 29: 'mwaitx',
    },
    (0x80000001, 0, EDX): {
        0: 'fpu', 1: 'vme', 2: 'de', 3: 'pse', 4: 'tsc', 5: 'msr', 6: 'pae', 7: 'mce',
        8: 'cx8', 9: 'apic', 10: 'syscall', 11: 'syscall', 12: 'mtrr', 13: 'pge', 14: 'mca',
        15: 'cmov', 16: 'pat', 17: 'pse36', 19: 'mp', 20: 'nx', 22: 'mmxext', 23: 'mmx',
        24: 'fxsr', 25: 'fxsr_opt', 26: 'pdpe1gb', 27: 'rdtscp', 29: 'lm', 30: '3dnowext',
        31: '3dnow',
    },
    (0x80000008, 0, EBX): {
        0: 'clzero', 1: 'irperf', 2: 'xsaveerptr', 4: 'rdpru', 9: 'wbnoinvd', 23: 'amd_ppin',
        25: 'virt_ssbd', 27: 'cppc', 31: 'brs',
    },
}

# Every (leaf, subleaf) read from the CPU besides leaves 0 and 0x80000000 (the maxima): the
# flag leaves, the brand string and the leaves Julia's feature words come from
# (src/processor_x86.cpp, _get_host_cpu: 0x14 and 7.1 EBX). Each CPUID traps to the
# hypervisor in a VM (about 5 us here), so nothing else is read.
LEAVES: tuple[tuple[int, int], ...] = tuple(
    sorted(
        {(leaf, sub) for (leaf, sub, _reg) in FLAGS}
        | {(0x14, 0), (0x80000002, 0), (0x80000003, 0), (0x80000004, 0)}
    )
)

# Flags that exist only when the OS saves the register state (DESIGN.md "Features the OS has
# not enabled are not features"; Julia's _get_host_cpu and the kernel's xstate setup apply
# the same rule): XSAVE itself needs OSXSAVE; AVX-class needs XCR0 bits 1-2 (SSE, YMM);
# AVX-512 also bits 5-7 (opmask, ZMM_Hi256, Hi16_ZMM); AMX bits 17-18 (XTILECFG, XTILEDATA).
_XSAVE_FLAGS = frozenset({"xsave", "xsaveopt", "xsavec", "xsaves", "xgetbv1", "xfd"})
_AVX512_FLAGS = frozenset(
    {
        "avx512f", "avx512dq", "avx512ifma", "avx512pf", "avx512er", "avx512cd", "avx512bw",
        "avx512vl", "avx512vbmi", "avx512_vbmi2", "avx512_vnni", "avx512_bitalg",
        "avx512_vpopcntdq", "avx512_4vnniw", "avx512_4fmaps", "avx512_vp2intersect",
        "avx512_bf16", "avx512_fp16",
    }
)
_AMX_FLAGS = frozenset({"amx_bf16", "amx_tile", "amx_int8", "amx_fp16"})
_AVX_FLAGS = frozenset(
    {
        "avx", "avx2", "fma", "f16c", "fma4", "xop", "vaes", "vpclmulqdq", "avx_vnni",
        "avx_ifma", "avx_vnni_int8", "avx_ne_convert", "avx_vnni_int16",
    }
) | _AVX512_FLAGS

# Other spellings of bits in our table: archspec's microarchitectures.json (it adds "sse3"
# wherever "ssse3" is; the kernel prints the SSE3 bit as "pni") and the kernel's synthetic
# "user_shstk", printed only when the CPU has CET shadow stacks (CPUID(7).ECX bit 7).
_FLAG_ALIASES = {"sse3": "pni", "sse4.1": "sse4_1", "sse4.2": "sse4_2", "user_shstk": "cet_ss"}

XCR0_AVX = 0x6
XCR0_AVX512 = 0xE0
XCR0_AMX = (1 << 17) | (1 << 18)
_OSXSAVE = 1 << 27  # CPUID(1).ECX


# (vendor, family, model, stepping, brand, features); a plain tuple, not a NamedTuple class,
# because building a NamedTuple class costs more than a whole warm detect()
if TYPE_CHECKING:
    X86Decoded = tuple[str, int, int, int, str, frozenset[str]]


def os_supported(osxsave: bool, xcr0: int) -> tuple[bool, bool, bool, bool]:
    """(xsave, avx, avx512, amx) state the OS saves, from CPUID(1).ECX.OSXSAVE and XCR0."""
    xsave = osxsave
    avx = xsave and xcr0 & XCR0_AVX == XCR0_AVX
    return xsave, avx, avx and xcr0 & XCR0_AVX512 == XCR0_AVX512, xsave and xcr0 & XCR0_AMX == XCR0_AMX


def _reg(registers: Registers, leaf: int, sub: int, index: int) -> int:
    values = registers.get((leaf, sub))
    return (values[index] & 0xFFFFFFFF) if values is not None else 0


def _ascii(words: list[int]) -> str:
    raw = b"".join((w & 0xFFFFFFFF).to_bytes(4, "little") for w in words)
    return raw.split(b"\0", 1)[0].decode("ascii", "replace").strip()


def decode_x86(registers: Registers, xcr0: int) -> X86Decoded:
    """Decode a CPUID dump. Never raises: absent leaves read as zero (as a CPU reports leaves
    beyond its maximum), out-of-range values are truncated to 32 bits."""
    max_basic = _reg(registers, 0, 0, EAX)
    max_ext = _reg(registers, 0x80000000, 0, EAX)
    vendor = _ascii([_reg(registers, 0, 0, r) for r in (EBX, EDX, ECX)])
    signature = _reg(registers, 1, 0, EAX)
    family = (signature >> 8) & 0xF
    model = (signature >> 4) & 0xF
    # Intel SDM vol. 2A CPUID "Processor Version Information": extended family only for
    # family 0xF, extended model for families 6 and 0xF (as Linux and Julia decode it)
    if family == 0xF:
        family += (signature >> 20) & 0xFF
    if family == 6 or family >= 0xF:
        model += ((signature >> 16) & 0xF) << 4
    brand = ""
    if max_ext >= 0x80000004:
        brand = _ascii([_reg(registers, leaf, 0, r) for leaf in (0x80000002, 0x80000003, 0x80000004) for r in range(4)])
    max_sub7 = _reg(registers, 7, 0, EAX)
    names: set[str] = set()
    for (leaf, sub, index), bits in FLAGS.items():
        # a leaf above the CPU's maximum returns data of the highest leaf: not flags
        if leaf > (max_ext if leaf >= 0x80000000 else max_basic) or (leaf == 7 and sub > max_sub7):
            continue
        value = _reg(registers, leaf, sub, index)
        while value:
            low = value & -value
            name = bits.get(low.bit_length() - 1)
            if name:
                names.add(name)
            value ^= low
    xsave, avx, avx512, amx = os_supported(bool(_reg(registers, 1, 0, ECX) & _OSXSAVE), xcr0)
    if not xsave:
        names -= _XSAVE_FLAGS
    if not avx:
        names -= _AVX_FLAGS
    elif not avx512:
        names -= _AVX512_FLAGS
    if not amx:
        names -= _AMX_FLAGS
    return vendor, family, model, signature & 0xF, brand, frozenset(names)


def registers_from_flags(
    flags: frozenset[str] | set[str],
    *,
    vendor: str = "",
    family: int = 0,
    model: int = 0,
    stepping: int = 0,
) -> tuple[dict[tuple[int, int], tuple[int, int, int, int]], int]:
    """The CPUID registers and XCR0 a CPU reporting these Linux flags would give (for
    /proc/cpuinfo and DEPOTDELIVERY_MICROARCH hosts), so one decoder serves every source.

    XCR0 and OSXSAVE are what the kernel must have enabled for the flags it reports.
    """
    regs: dict[tuple[int, int], list[int]] = {}
    flags = {_FLAG_ALIASES.get(name, name) for name in flags}
    for (leaf, sub, index), bits in FLAGS.items():
        for bit, name in bits.items():
            if name in flags:
                regs.setdefault((leaf, sub), [0, 0, 0, 0])[index] |= 1 << bit
    xcr0 = 0x3 if flags & _XSAVE_FLAGS else 0
    if flags & _AVX_FLAGS:
        xcr0 |= XCR0_AVX
    if flags & _AVX512_FLAGS:
        xcr0 |= XCR0_AVX512
    if flags & _AMX_FLAGS:
        xcr0 |= XCR0_AMX
    leaf1 = regs.setdefault((1, 0), [0, 0, 0, 0])
    if xcr0:
        leaf1[ECX] |= _OSXSAVE
    base_family = min(family, 0xF)
    ext_family = family - 0xF if family >= 0xF else 0
    leaf1[EAX] = (ext_family << 20) | ((model >> 4) << 16) | (base_family << 8) | ((model & 0xF) << 4) | (stepping & 0xF)
    vendor_bytes = vendor.encode("ascii", "replace")[:12].ljust(12, b"\0")
    ebx, edx, ecx = (int.from_bytes(vendor_bytes[i : i + 4], "little") for i in (0, 4, 8))
    regs[(0, 0)] = [max(leaf for leaf, _ in regs if leaf < 0x80000000), ebx, ecx, edx]
    if any(leaf >= 0x80000000 for leaf, _ in regs):
        regs[(0x80000000, 0)] = [max(leaf for leaf, _ in regs if leaf >= 0x80000000), 0, 0, 0]
    if (7, 1) in regs:
        regs.setdefault((7, 0), [0, 0, 0, 0])[EAX] = 1
    return {key: tuple(value) for key, value in regs.items()}, xcr0  # type: ignore[misc]
