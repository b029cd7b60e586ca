"""LLVM's x86 host CPU names: ``llvm::sys::getHostCPUName()`` in llvm/lib/Support/Host.cpp
(LLVM 15) and llvm/lib/TargetParser/Host.cpp (LLVM >= 16): ``getIntelProcessorTypeAndSubtype``,
``getAMDProcessorTypeAndSubtype`` and, for an Intel family-6 model the table does not list,
the "Unknown family 6 CPU, try to guess" chain. Julia uses it when its own table says generic
(``host_cpu_name`` -> ``jl_get_cpu_name_llvm``): Julia 1.9 ships LLVM 14.0.5, 1.10 15.0.7,
1.11 16.0.6, 1.12 18.1.7 (deps/llvm.version of each release line).

How each version was read (docs/julia-cpu-names.md): 15 from llvm-project-release-prs'
Support/Host.cpp (the release/15.x staging tree); 18 from a vendored TargetParser/Host.cpp of
the 18 window (EVEX512 present, Zen 5 absent); 16 is NOT read at release/16.x: its rows are
the 15 rows plus the additions whose reviews sit in the Clang 16 release notes (raptorlake,
meteorlake, emeraldrapids: D140950; sierraforest, graniterapids, grandridge: D137153; znver4),
cross-checked with a compiler-rt cpu_model.c of that window (Granite Rapids 0xAD+0xAE, Raptor
Lake 0xB7 only). LLVM 14 (Julia 1.9) is not read either: Julia 1.9 uses the 15 rows.

LLVM ignores the brand id and needs the full vendor string ("GenuineIntel"/"AuthenticAMD");
an unknown vendor, family or AMD model gives ``generic``.

Rows: ``(family, models, choice, first, last)`` as in julia_x86, ``first``/``last`` in LLVM
major versions, features in LLVM's names (``getAvailableFeatures``: see hostcpu).
"""
from __future__ import annotations

__all__ = ["AMD", "FAMILY6_GUESS", "INTEL", "SKYLAKE_XEON"]

SKYLAKE_XEON = (("avx512bf16", "cooperlake"), ("avx512vnni", "cascadelake"), ("", "skylake-avx512"))

INTEL: tuple[tuple[int, tuple[int | tuple[int, int], ...], str | tuple[tuple[str, str], ...], int, int], ...] = (
    (3, (), "i386", 14, 18),
    (4, (), "i486", 14, 18),
    (5, (), (("mmx", "pentium-mmx"), ("", "pentium")), 14, 18),
    (6, (0x0F, 0x16), "core2", 14, 18),
    (6, (0x17, 0x1D), "penryn", 14, 18),
    (6, (0x1A, 0x1E, 0x1F, 0x2E), "nehalem", 14, 18),
    (6, (0x25, 0x2C, 0x2F), "westmere", 14, 18),
    (6, (0x2A, 0x2D), "sandybridge", 14, 18),
    (6, (0x3A, 0x3E), "ivybridge", 14, 18),
    (6, (0x3C, 0x3F, 0x45, 0x46), "haswell", 14, 18),
    (6, (0x3D, 0x47, 0x4F, 0x56), "broadwell", 14, 18),
    (6, (0x4E, 0x5E, 0x8E, 0x9E, 0xA5, 0xA6), "skylake", 14, 18),
    (6, (0xA7,), "rocketlake", 14, 18),
    (6, (0x55,), SKYLAKE_XEON, 14, 18),
    (6, (0x66,), "cannonlake", 14, 18),
    (6, (0x7D, 0x7E), "icelake-client", 14, 18),
    (6, (0x8C, 0x8D), "tigerlake", 14, 18),
    (6, (0x97, 0x9A), "alderlake", 14, 18),
    # Raptor Lake and Meteor Lake are named alderlake (their own names only from LLVM 19+);
    # 0xBA/0xBF and Gracemont 0xBE join in 18: under LLVM 15/16 they fall to the guess chain
    (6, (0xB7, 0xAA, 0xAC), "alderlake", 16, 18),
    (6, (0xBA, 0xBF, 0xBE), "alderlake", 18, 18),
    (6, (0xC5,), "arrowlake", 18, 18),
    (6, (0xC6, 0xBD), "arrowlake-s", 18, 18),  # Lunar Lake 0xBD is named arrowlake-s
    (6, (0xCC,), "pantherlake", 18, 18),
    (6, (0xAD, 0xAE), "graniterapids", 16, 17),
    (6, (0xAD,), "graniterapids", 18, 18),
    (6, (0xAE,), "graniterapids-d", 18, 18),
    (6, (0x6A, 0x6C), "icelake-server", 14, 18),
    (6, (0x8F,), "sapphirerapids", 14, 18),
    (6, (0xCF,), "sapphirerapids", 16, 18),  # Emerald Rapids
    (6, (0x1C, 0x26, 0x27, 0x35, 0x36), "bonnell", 14, 18),
    (6, (0x37, 0x4A, 0x4D, 0x5A, 0x5D, 0x4C), "silvermont", 14, 18),
    (6, (0x5C, 0x5F), "goldmont", 14, 18),
    (6, (0x7A,), "goldmont-plus", 14, 18),
    (6, (0x86,), "tremont", 14, 18),
    (6, (0x8A, 0x96, 0x9C), "tremont", 18, 18),
    (6, (0xAF,), "sierraforest", 16, 18),
    (6, (0xB6,), "grandridge", 16, 18),
    (6, (0xDD,), "clearwaterforest", 18, 18),
    (6, (0x57,), "knl", 14, 18),
    (6, (0x85,), "knm", 14, 18),
    (15, (), (("64bit", "nocona"), ("sse3", "prescott"), ("", "pentium4")), 14, 18),
)

# default: // Unknown family 6 CPU, try to guess. (same in 15, 16 and 18): the first rule
# whose features are all present names the CPU; a rule's features are "+"-joined.
FAMILY6_GUESS: tuple[tuple[str, str, int, int], ...] = (
    ("avx512vp2intersect", "tigerlake", 14, 18),
    ("avx512vbmi2", "icelake-client", 14, 18),
    ("avx512vbmi", "cannonlake", 14, 18),
    ("avx512bf16", "cooperlake", 14, 18),
    ("avx512vnni", "cascadelake", 14, 18),
    ("avx512vl", "skylake-avx512", 14, 18),
    ("avx512er", "knl", 14, 18),
    ("clflushopt+sha", "goldmont", 14, 18),
    ("clflushopt", "skylake", 14, 18),
    ("adx", "broadwell", 14, 18),
    ("avx2", "haswell", 14, 18),
    ("avx", "sandybridge", 14, 18),
    ("sse4.2+movbe", "silvermont", 14, 18),
    ("sse4.2", "nehalem", 14, 18),
    ("sse4.1", "penryn", 14, 18),
    ("ssse3+movbe", "bonnell", 14, 18),
    ("ssse3", "core2", 14, 18),
    ("64bit", "core2", 14, 18),
    ("sse3", "yonah", 14, 18),
    ("sse2", "pentium-m", 14, 18),
    ("sse", "pentium3", 14, 18),
    ("mmx", "pentium2", 14, 18),
    ("", "pentiumpro", 14, 18),
)

AMD: tuple[tuple[int, tuple[int | tuple[int, int], ...], str | tuple[tuple[str, str], ...], int, int], ...] = (
    (4, (), "i486", 14, 18),
    (5, (6, 7), "k6", 14, 18),
    (5, (8,), "k6-2", 14, 18),
    (5, (9, 13), "k6-3", 14, 18),
    (5, (10,), "geode", 14, 18),
    (5, (), "pentium", 14, 18),
    (6, (), (("sse", "athlon-xp"), ("", "athlon")), 14, 18),
    (15, (), (("sse3", "k8-sse3"), ("", "k8")), 14, 18),
    (16, (), "amdfam10", 14, 18),
    (20, (), "btver1", 14, 18),
    (21, ((0x60, 0x7F),), "bdver4", 14, 18),
    (21, ((0x30, 0x3F),), "bdver3", 14, 18),
    (21, (0x02, (0x10, 0x1F)), "bdver2", 14, 18),
    (21, (), "bdver1", 14, 18),
    (22, (), "btver2", 14, 18),
    # family 17h: Zen 2 by model; every other model (Zen+, Raven, unknown) is znver1
    (23, ((0x30, 0x3F), 0x71), "znver2", 14, 17),
    (23, ((0x30, 0x3F), 0x47, (0x60, 0x7F), (0x84, 0x87), (0x90, 0xAF)), "znver2", 18, 18),
    (23, (), "znver1", 14, 18),
    # family 19h: Zen 4 by model from 16; every other model is znver3
    (25, ((0x10, 0x1F), (0x60, 0x74), (0x78, 0x7B), (0xA0, 0xAF)), "znver4", 16, 17),
    (25, ((0x10, 0x1F), (0x60, 0x7F), (0xA0, 0xAF)), "znver4", 18, 18),
    (25, (), "znver3", 14, 18),
    # family 1Ah (Zen 5) is unknown to LLVM <= 18: generic
)
