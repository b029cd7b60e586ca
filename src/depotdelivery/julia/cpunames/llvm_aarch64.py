"""LLVM's AArch64 host CPU names on Linux: ``sys::detail::getHostCPUNameForARM`` (Host.cpp),
what Julia's ``host_cpu_name`` uses when its own MIDR table leaves the host generic.

LLVM reads /proc/cpuinfo text, not MIDR registers: every line starting "CPU implementer" /
"CPU part" overwrites the previous one, so the *last* processor block decides (on a
heterogeneous machine: the highest-numbered core, unlike Julia's own rule). Values are matched
as the kernel prints them ("0x41", "0xd4f"); an unknown implementer or part is "generic".
Samsung (0x53) is special: ``(variant << 12) | part`` == 0x1003 -> exynos-m4, anything else
exynos-m3. (The "Hardware: ...MSM8994/MSM8996" Qualcomm-SoC rule is not modelled: no MIDR
carries it.)

Read: 15 at llvm-project-release-prs Support/Host.cpp; 18 at the vendored 18-window
TargetParser/Host.cpp (docs/julia-cpu-names.md). 16 is not read at release/16.x; it is taken
as 15's list (a 17-window copy adds cortex-a55 0xd05, a510, a710, x2, x3, a715 and neoverse-v2
0xd4f, and ampere1a: not dated, so not assumed in 16). 14 (Julia 1.9) uses 15's list.

Rows: ``(implementer, part, name, first, last)`` in LLVM major versions.
"""
from __future__ import annotations

__all__ = ["PARTS", "SAMSUNG"]

PARTS: tuple[tuple[int, int, str, int, int], ...] = (
    (0x41, 0x926, "arm926ej-s", 14, 18),
    (0x41, 0xB02, "mpcore", 14, 18),
    (0x41, 0xB36, "arm1136j-s", 14, 18),
    (0x41, 0xB56, "arm1156t2-s", 14, 18),
    (0x41, 0xB76, "arm1176jz-s", 14, 18),
    (0x41, 0xC08, "cortex-a8", 14, 18),
    (0x41, 0xC09, "cortex-a9", 14, 18),
    (0x41, 0xC0F, "cortex-a15", 14, 18),
    (0x41, 0xC20, "cortex-m0", 14, 18),
    (0x41, 0xC23, "cortex-m3", 14, 18),
    (0x41, 0xC24, "cortex-m4", 14, 18),
    (0x41, 0xD24, "cortex-m52", 18, 18),
    (0x41, 0xD22, "cortex-m55", 14, 18),
    (0x41, 0xD02, "cortex-a34", 14, 18),
    (0x41, 0xD04, "cortex-a35", 14, 18),
    (0x41, 0xD03, "cortex-a53", 14, 18),
    (0x41, 0xD05, "cortex-a55", 18, 18),
    (0x41, 0xD46, "cortex-a510", 18, 18),
    (0x41, 0xD80, "cortex-a520", 18, 18),
    (0x41, 0xD07, "cortex-a57", 14, 18),
    (0x41, 0xD08, "cortex-a72", 14, 18),
    (0x41, 0xD09, "cortex-a73", 14, 18),
    (0x41, 0xD0A, "cortex-a75", 14, 18),
    (0x41, 0xD0B, "cortex-a76", 14, 18),
    (0x41, 0xD0D, "cortex-a77", 14, 18),
    (0x41, 0xD41, "cortex-a78", 14, 18),
    (0x41, 0xD47, "cortex-a710", 18, 18),
    (0x41, 0xD4D, "cortex-a715", 18, 18),
    (0x41, 0xD81, "cortex-a720", 18, 18),
    (0x41, 0xD44, "cortex-x1", 14, 18),
    (0x41, 0xD4C, "cortex-x1c", 14, 18),
    (0x41, 0xD48, "cortex-x2", 18, 18),
    (0x41, 0xD4E, "cortex-x3", 18, 18),
    (0x41, 0xD82, "cortex-x4", 18, 18),
    (0x41, 0xD0C, "neoverse-n1", 14, 18),
    (0x41, 0xD49, "neoverse-n2", 14, 18),
    (0x41, 0xD40, "neoverse-v1", 14, 18),
    (0x41, 0xD4F, "neoverse-v2", 18, 18),
    # Broadcom | Cavium (the kernel prints 3 hex digits, so "0x0516"/"0x0af" never occur)
    (0x42, 0x516, "thunderx2t99", 14, 18),
    (0x43, 0x516, "thunderx2t99", 14, 18),
    (0x42, 0x0AF, "thunderx2t99", 14, 18),
    (0x43, 0x0AF, "thunderx2t99", 14, 18),
    (0x42, 0x0A1, "thunderxt88", 14, 18),
    (0x43, 0x0A1, "thunderxt88", 14, 18),
    (0x46, 0x001, "a64fx", 14, 18),
    (0x4E, 0x004, "carmel", 14, 18),
    (0x48, 0xD01, "tsv110", 14, 18),
    (0x51, 0x06F, "krait", 14, 18),
    (0x51, 0x201, "kryo", 14, 18),
    (0x51, 0x205, "kryo", 14, 18),
    (0x51, 0x211, "kryo", 14, 18),
    (0x51, 0x800, "cortex-a73", 14, 18),
    (0x51, 0x801, "cortex-a73", 14, 18),
    (0x51, 0x802, "cortex-a75", 14, 18),
    (0x51, 0x803, "cortex-a75", 14, 18),
    (0x51, 0x804, "cortex-a76", 14, 18),
    (0x51, 0x805, "cortex-a76", 14, 18),
    (0x51, 0xC00, "falkor", 14, 18),
    (0x51, 0xC01, "saphira", 14, 18),
    (0x6D, 0xD49, "neoverse-n2", 18, 18),  # Microsoft Azure Cobalt 100 (llvm-project#77793)
    (0xC0, 0xAC3, "ampere1", 14, 18),
    (0xC0, 0xAC4, "ampere1a", 18, 18),
    (0xC0, 0xAC5, "ampere1b", 18, 18),
)

# Samsung: ((variant << 12) | part) -> name; every other value "default: fall through to M3".
SAMSUNG: tuple[tuple[int, str, int, int], ...] = (
    (0x1002, "exynos-m3", 14, 18),
    (0x1003, "exynos-m4", 14, 18),
)
