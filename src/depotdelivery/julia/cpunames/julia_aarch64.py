"""Julia's own AArch64 CPU-name table: src/processor_arm.cpp ``get_cpu_name(CPUID)`` (MIDR
implementer, variant, part -> CPU) and the rules ``_get_host_cpu`` applies to a machine's cores.

Read from git at the release lines (docs/julia-cpu-names.md): 1.10 = 1.10.8 (1.9.3 identical),
1.11 = the release-1.11 branch point, 1.12 = release-1.12 (1.12.5); the Apple rows are the only
ones that change (1.11: M1 Pro/Max/Ultra, M2, M3; 1.12 (#58301): A15/A16/A17, M3 Pro, M4).

How Julia uses it (``_get_host_cpu``, same 1.9-1.12): every core's MIDR is read
(/sys/devices/system/cpu/cpu*/regs/identification/midr_el1, else every /proc/cpuinfo block),
duplicates dropped and the rest ordered by (implementer, part, variant). A core the table does
not know makes the host's extra features empty; a row naming a 32-bit-only CPU (``""`` below:
``check_cpu_arch_ver`` fails on AArch64) is skipped. Of the known cores, big.LITTLE pairs are
shrunk to the *biggest* core by ``BIG_LITTLE_ORDER`` (cores not in that order are kept), and the
first remaining core names the host; none left: generic, and then Julia asks LLVM
(``host_cpu_name``: if LLVM's name is not "generic" it wins).

Rows: ``(implementer, parts, variants, name, first, last)``: ``variants`` empty = any; first
matching row wins; ``first``/``last`` are Julia minor versions.
"""
from __future__ import annotations

__all__ = ["BIG_LITTLE_ORDER", "MIDR"]

MIDR: tuple[tuple[int, tuple[int, ...], tuple[int, ...], str, int, int], ...] = (
    # ARM: 32-bit-only and M/R-profile cores Julia names on ARMv7 only (ignored on AArch64)
    (0x41, (0xB02, 0xB36, 0xB56, 0xB76, 0xC05, 0xC07, 0xC08, 0xC09, 0xC0D, 0xC0F, 0xC0E, 0xC14,
            0xC15, 0xC17, 0xC18, 0xC20, 0xC21, 0xC23, 0xC24, 0xC27, 0xD01, 0xD13, 0xD20, 0xD21),
     (), "", 9, 12),
    (0x41, (0xD02,), (), "cortex-a34", 9, 12),
    (0x41, (0xD03,), (), "cortex-a53", 9, 12),
    (0x41, (0xD04,), (), "cortex-a35", 9, 12),
    (0x41, (0xD05,), (), "cortex-a55", 9, 12),
    (0x41, (0xD06,), (), "cortex-a65", 9, 12),
    (0x41, (0xD07,), (), "cortex-a57", 9, 12),
    (0x41, (0xD08,), (), "cortex-a72", 9, 12),
    (0x41, (0xD09,), (), "cortex-a73", 9, 12),
    (0x41, (0xD0A,), (), "cortex-a75", 9, 12),
    (0x41, (0xD0B,), (), "cortex-a76", 9, 12),
    (0x41, (0xD0C,), (), "neoverse-n1", 9, 12),
    (0x41, (0xD0D,), (), "cortex-a77", 9, 12),
    (0x41, (0xD0E,), (), "cortex-a76ae", 9, 12),
    (0x41, (0xD40,), (), "neoverse-v1", 9, 12),
    (0x41, (0xD41,), (), "cortex-a78", 9, 12),
    (0x41, (0xD43,), (), "cortex-a65ae", 9, 12),
    (0x41, (0xD44,), (), "cortex-x1", 9, 12),
    (0x41, (0xD49,), (), "neoverse-n2", 9, 12),
    (0x41, (0xD4A,), (), "neoverse-e1", 9, 12),
    # (Neoverse V2 0xD4F, V3, N3, Cortex-A510/A710/X2+ are not in Julia's table: generic)
    (0x42, (0x516,), (), "thunderx2t99p1", 9, 12),
    (0x43, (0x0A0,), (), "thunderx", 9, 12),
    (0x43, (0x0A1,), (0,), "thunderxt88p1", 9, 12),
    (0x43, (0x0A1,), (), "thunderxt88", 9, 12),
    (0x43, (0x0A2,), (), "thunderxt81", 9, 12),
    (0x43, (0x0A3,), (), "thunderxt83", 9, 12),
    (0x43, (0x0AF,), (), "thunderx2t99", 9, 12),
    (0x43, (0x0B0,), (), "octeontx2", 9, 12),
    (0x43, (0x0B1,), (), "octeontx2t98", 9, 12),
    (0x43, (0x0B2,), (), "octeontx2t96", 9, 12),
    (0x43, (0x0B3,), (), "octeontx2f95", 9, 12),
    (0x43, (0x0B4,), (), "octeontx2f95n", 9, 12),
    (0x43, (0x0B5,), (), "octeontx2f95mm", 9, 12),
    (0x43, (0x0B8,), (), "thunderx3t110", 9, 12),
    (0x46, (0x001,), (), "a64fx", 9, 12),
    (0x48, (0xD01,), (), "tsv110", 9, 12),
    (0x48, (0xD40,), (), "cortex-a76", 9, 12),  # Kirin 980
    (0x4E, (0x000,), (), "denver1", 9, 12),
    (0x4E, (0x003,), (), "denver2", 9, 12),
    (0x4E, (0x004,), (), "carmel", 9, 12),
    (0x50, (0x000,), (), "xgene1", 9, 12),
    (0x51, (0x00F, 0x02D, 0x04D, 0x06F), (), "", 9, 12),  # Scorpion, Krait (32-bit)
    (0x51, (0x201, 0x205, 0x211), (), "kyro", 9, 12),
    (0x51, (0x800,), (), "cortex-a73", 9, 12),
    (0x51, (0x801,), (), "cortex-a53", 9, 12),
    (0x51, (0x802,), (), "cortex-a75", 9, 12),
    (0x51, (0x803, 0x805), (), "cortex-a55", 9, 12),
    (0x51, (0x804,), (), "cortex-a76", 9, 12),
    (0x51, (0xC00,), (), "falkor", 9, 12),
    (0x51, (0xC01,), (), "saphira", 9, 12),
    # Samsung: part 1 is M1 (M2 for variant 4); parts 2-4 only with variant 1
    (0x53, (0x001,), (4,), "exynos-m2", 9, 12),
    (0x53, (0x001,), (), "exynos-m1", 9, 12),
    (0x53, (0x002,), (1,), "exynos-m3", 9, 12),
    (0x53, (0x003,), (1,), "exynos-m4", 9, 12),
    (0x53, (0x004,), (1,), "exynos-m5", 9, 12),
    (0x56, (0x581, 0x584), (), "", 9, 12),  # Marvell PJ4 (32-bit)
    (0x61, (0x000,), (), "", 9, 12),  # Swift (32-bit)
    (0x61, (0x001,), (), "apple-a7", 9, 12),
    (0x61, (0x002, 0x003), (), "apple-a8", 9, 12),
    (0x61, (0x004, 0x005), (), "apple-a9", 9, 12),
    (0x61, (0x006, 0x007), (), "apple-a10", 9, 12),
    (0x61, (0x008, 0x009), (), "apple-a11", 9, 12),
    (0x61, (0x00B, 0x00C, 0x010, 0x011), (), "apple-a12", 9, 12),
    (0x61, (0x00F,), (), "apple-s4", 9, 12),
    (0x61, (0x012, 0x013), (), "apple-a13", 9, 12),
    (0x61, (0x020, 0x021), (), "apple-a14", 9, 12),
    (0x61, (0x022, 0x023), (), "apple-m1", 9, 12),
    (0x61, (0x024, 0x025, 0x028, 0x029), (), "apple-m1", 11, 12),
    (0x61, (0x030, 0x031, 0x032, 0x033, 0x034, 0x035, 0x038, 0x039), (), "apple-m2", 11, 11),
    (0x61, (0x030, 0x031), (), "apple-a15", 12, 12),
    (0x61, (0x032, 0x033, 0x034, 0x035, 0x038, 0x039), (), "apple-m2", 12, 12),
    (0x61, (0x040, 0x041), (), "apple-a16", 12, 12),
    (0x61, (0x048, 0x049), (), "apple-m3", 11, 12),
    (0x61, (0x042, 0x043, 0x044, 0x045), (), "apple-m3", 12, 12),
    (0x61, (0x050, 0x051), (), "apple-a17", 12, 12),
    (0x61, (0x052, 0x053, 0x054, 0x055, 0x058, 0x059), (), "apple-m4", 12, 12),
    (0x68, (0x000,), (), "phecda", 9, 12),
    (0x69, (0x001,), (), "", 9, 12),  # Intel 3735D (32-bit)
)

# _get_host_cpu ``v8order`` (1.9-1.12): of the known cores in this list only the latest
# listed survives ``shrink_big_little`` (a55 + a76 -> cortex-a76).
BIG_LITTLE_ORDER: tuple[str, ...] = (
    "cortex-a35", "cortex-a53", "cortex-a55", "cortex-a57", "cortex-a72", "cortex-a73",
    "cortex-a75", "cortex-a76", "neoverse-n1", "neoverse-n2", "neoverse-v1", "denver2", "carmel",
    "exynos-m1", "exynos-m2", "exynos-m3", "exynos-m4", "exynos-m5",
)
