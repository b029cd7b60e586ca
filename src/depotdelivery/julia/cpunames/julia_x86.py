"""Julia's own x86 CPU-name tables: src/processor_x86.cpp ``get_intel_processor_name`` and
``get_amd_processor_name``, called by ``_get_host_cpu`` with CPUID(1)'s family/model (extended
family for family 0xF, extended model for families 6 and 0xF), CPUID(1).EBX[7:0] as the brand
id, and Julia's host-masked feature words.

Read from git at the release lines (docs/julia-cpu-names.md says how): v1.10 = the
backports-release-1.10 and 1.10.8 trees (identical tables; 1.9.3's are the same), v1.11 = the
release-1.11 branch point (master before ``Set VERSION to 1.12.0-DEV``, #53346), v1.12 = the
release-1.12 branch (1.12.5). 1.11 adds Zen 4 (JuliaLang/julia#52944), 1.12 Zen 5
(JuliaLang/julia#56967); neither adds an Intel model: Raptor Lake, Meteor Lake, Emerald and
Granite Rapids, Arrow Lake, Rocket Lake are *not* in Julia's table in any release, so Julia
asks LLVM for them (host_cpu_name, see llvm_x86).

Rows: ``(family, models, choice, first, last)``. ``models`` are model numbers or inclusive
``(lo, hi)`` ranges, empty for any model; ``choice`` is a CPU name or ``((feature, name), ...)``
tried in order (``""`` always matches), features in Julia's names; ``first``/``last`` the Julia
minor versions (1.first .. 1.last) the row holds for. The first matching row wins; no row:
``generic``. Rules that are not data: ``brand_id != 0`` -> generic (Intel only), and the vendor
is recognised from CPUID(0).EBX alone ("Genu" / "Auth").
"""
from __future__ import annotations

__all__ = ["AMD", "INTEL", "SKYLAKE_XEON"]

# case 0x55 "Skylake Xeon": told apart by the host's (masked) features.
SKYLAKE_XEON = (("avx512bf16", "cooperlake"), ("avx512vnni", "cascadelake"), ("", "skylake-avx512"))

INTEL: tuple[tuple[int, tuple[int | tuple[int, int], ...], str | tuple[tuple[str, str], ...], int, int], ...] = (
    # family 6 (families 3, 4, 5 and unknown family-6 models: generic)
    (6, (0x0E,), "yonah", 9, 12),
    (6, (0x0F, 0x16), "core2", 9, 12),
    (6, (0x17, 0x1D), "penryn", 9, 12),
    (6, (0x1A, 0x1E, 0x1F, 0x2E), "nehalem", 9, 12),
    (6, (0x25, 0x2C, 0x2F), "westmere", 9, 12),
    (6, (0x2A, 0x2D), "sandybridge", 9, 12),
    (6, (0x3A, 0x3E), "ivybridge", 9, 12),
    (6, (0x3C, 0x3F, 0x45, 0x46), "haswell", 9, 12),
    (6, (0x3D, 0x47, 0x4F, 0x56), "broadwell", 9, 12),
    (6, (0x4E, 0x5E, 0x8E, 0x9E, 0xA5, 0xA6), "skylake", 9, 12),
    (6, (0x55,), SKYLAKE_XEON, 9, 12),
    (6, (0x66,), "cannonlake", 9, 12),
    (6, (0x7D, 0x7E, 0x9D), "icelake-client", 9, 12),
    (6, (0x6A, 0x6C), "icelake-server", 9, 12),
    (6, (0x8C, 0x8D), "tigerlake", 9, 12),
    (6, (0x97, 0x9A), "alderlake", 9, 12),
    (6, (0x8F,), "sapphirerapids", 9, 12),
    (6, (0x1C, 0x26, 0x27, 0x35, 0x36), "bonnell", 9, 12),
    (6, (0x37, 0x4A, 0x4D, 0x5D, 0x4C, 0x5A, 0x75), "silvermont", 9, 12),
    (6, (0x5C, 0x5F), "goldmont", 9, 12),
    (6, (0x7A,), "goldmont-plus", 9, 12),
    (6, (0x86, 0x96, 0x9C), "tremont", 9, 12),
    (6, (0x57,), "knl", 9, 12),
    (6, (0x85,), "knm", 9, 12),
    # family 15 (Pentium 4): 90 nm and 65 nm parts are nocona on x86_64, the rest generic
    (15, (3, 4, 6), "nocona", 9, 12),
)

AMD: tuple[tuple[int, tuple[int | tuple[int, int], ...], str | tuple[tuple[str, str], ...], int, int], ...] = (
    (15, (), (("sse3", "k8-sse3"),), 9, 12),
    (15, (1,), "opteron", 9, 12),
    (15, (5,), "athlon-fx", 9, 12),
    (15, (), "athlon64", 9, 12),
    (16, (2,), "barcelona", 9, 12),
    (16, (), "amdfam10", 9, 12),
    (20, (), "btver1", 9, 12),
    (21, ((0x50, 0x6F),), "bdver4", 9, 12),
    (21, ((0x30, 0x3F),), "bdver3", 9, 12),
    (21, ((0x10, 0x1F),), "bdver2", 9, 12),
    (21, ((0x00, 0x0F),), "bdver1", 9, 12),
    (21, (), "btver1", 9, 12),  # "fallback"
    (22, (), "btver2", 9, 12),
    # family 17h: "Known models: Zen: 1, 17; Zen+: 8, 24; Zen2: 96, 113"
    (23, ((0x30, 0xFF),), "znver2", 9, 12),
    (23, (), "znver1", 9, 12),
    # family 19h: 1.10 names every model znver3; 1.11 (#52944) adds Zen 4 by model range
    (25, ((0x00, 0x0F), (0x20, 0x5F)), "znver3", 11, 12),
    (25, ((0x10, 0x1F), (0x60, 0x74), (0x78, 0x7B), (0xA0, 0xAF)), "znver4", 11, 12),
    (25, (), "znver3", 9, 12),
    # family 1Ah: 1.12 (#56967) names every model znver5 (the "model <= 0x77" test is commented out)
    (26, (), "znver5", 12, 12),
)
