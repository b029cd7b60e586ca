"""Julia's host CPU name, source by source: Julia's own tables, LLVM's model tables, LLVM's
unknown-family-6 guess chain, the AArch64 MIDR rules. The expectations below are transcribed
from the sources (src/processor_x86.cpp, src/processor_arm.cpp, Host.cpp; docs/julia-cpu-names.md
says which copy of each was read), written independently of depotdelivery.julia.cpunames; a
coverage test checks that every model/part the tables carry has an expectation here."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depotdelivery.cpu._x86 import registers_from_flags
from depotdelivery.errors import UsageError
from depotdelivery.julia import hostcpu
from depotdelivery.julia.cpunames import (
    julia_aarch64,
    julia_x86,
    llvm_aarch64,
    llvm_x86,
)

JULIAS = ("1.10", "1.11", "1.12")
LLVMS = (15, 16, 18)
# deps/llvm.version of each release line
LLVM_OF = {"1.9": 14, "1.10": 15, "1.11": 16, "1.12": 18}

HASWELL = {"fpu", "sse", "sse2", "mmx", "pni", "ssse3", "sse4_1", "sse4_2", "popcnt", "avx", "avx2",
           "fma", "bmi1", "bmi2", "movbe", "lm", "cx16", "xsave", "f16c"}


def cpu(vendor: str, family: int, model: int, flags: set[str] = frozenset(), brand_id: int = 0):
    """CPUID registers + XCR0 of a CPU with these Linux flags (the OS saving every state the
    flags need), as a test fixture."""
    regs, xcr0 = registers_from_flags(set(flags), vendor=vendor, family=family, model=model)
    if brand_id:
        eax, ebx, ecx, edx = regs[(1, 0)]
        regs[(1, 0)] = (eax, ebx | brand_id, ecx, edx)
    return regs, xcr0


# --- Julia's table (get_intel_processor_name, v1.9-v1.12: identical) ------------------------

JULIA_INTEL_6 = {
    "yonah": (0x0E,), "core2": (0x0F, 0x16), "penryn": (0x17, 0x1D),
    "nehalem": (0x1A, 0x1E, 0x1F, 0x2E), "westmere": (0x25, 0x2C, 0x2F),
    "sandybridge": (0x2A, 0x2D), "ivybridge": (0x3A, 0x3E), "haswell": (0x3C, 0x3F, 0x45, 0x46),
    "broadwell": (0x3D, 0x47, 0x4F, 0x56), "skylake": (0x4E, 0x5E, 0x8E, 0x9E, 0xA5, 0xA6),
    "cannonlake": (0x66,), "icelake-client": (0x7D, 0x7E, 0x9D), "icelake-server": (0x6A, 0x6C),
    "tigerlake": (0x8C, 0x8D), "alderlake": (0x97, 0x9A), "sapphirerapids": (0x8F,),
    "bonnell": (0x1C, 0x26, 0x27, 0x35, 0x36), "silvermont": (0x37, 0x4A, 0x4D, 0x5D, 0x4C, 0x5A, 0x75),
    "goldmont": (0x5C, 0x5F), "goldmont-plus": (0x7A,), "tremont": (0x86, 0x96, 0x9C),
    "knl": (0x57,), "knm": (0x85,),
}


@pytest.mark.parametrize("name,model", [(n, m) for n, ms in JULIA_INTEL_6.items() for m in ms])
def test_julia_intel_family6_table(name, model):
    regs, xcr0 = cpu("GenuineIntel", 6, model, HASWELL)
    for version in JULIAS:
        assert hostcpu.x86_cpu_name(regs, xcr0, version) == (name, "julia"), version


@pytest.mark.parametrize("flags,name", [
    (set(), "skylake-avx512"), ({"avx512_vnni"}, "cascadelake"),
    ({"avx512_vnni", "avx512_bf16"}, "cooperlake"), ({"avx512_bf16"}, "cooperlake"),
])
def test_julia_skylake_xeon_is_told_apart_by_features(flags, name):
    regs, xcr0 = cpu("GenuineIntel", 6, 0x55, HASWELL | {"avx512f", "avx512bw", "avx512vl"} | flags)
    for version in JULIAS:
        assert hostcpu.x86_cpu_name(regs, xcr0, version) == (name, "julia")


def test_julia_skylake_xeon_without_avx512_state_is_skylake_avx512():
    # _get_host_cpu masks the AVX-512 features before naming: an OS without the ZMM state
    # turns a Cascade Lake into skylake-avx512 (LLVM would do the same)
    regs, _ = cpu("GenuineIntel", 6, 0x55, HASWELL | {"avx512f", "avx512_vnni"})
    assert hostcpu.x86_julia_name(regs, 0x7, "1.11") == "skylake-avx512"


@pytest.mark.parametrize("family,model,name", [(15, 3, "nocona"), (15, 4, "nocona"), (15, 6, "nocona")])
def test_julia_intel_family15(family, model, name):
    regs, xcr0 = cpu("GenuineIntel", family, model, {"sse", "sse2", "pni", "lm"})
    assert hostcpu.x86_cpu_name(regs, xcr0, "1.10") == (name, "julia")


@pytest.mark.parametrize("family,model", [(15, 2), (5, 4), (4, 1), (3, 0)])
def test_julia_intel_generic_families_go_to_llvm(family, model):
    regs, xcr0 = cpu("GenuineIntel", family, model, {"sse", "sse2", "mmx"})
    assert hostcpu.x86_julia_name(regs, xcr0, "1.10") == "generic"


def test_julia_brand_id_makes_it_generic_and_llvm_names_it():
    regs, xcr0 = cpu("GenuineIntel", 6, 0x3F, HASWELL, brand_id=0x16)
    assert hostcpu.x86_julia_name(regs, xcr0, "1.11") == "generic"
    assert hostcpu.x86_cpu_name(regs, xcr0, "1.11") == ("haswell", "llvm-16")


# (family, model, extra flags) -> {julia version: name}
JULIA_AMD = [
    (15, 1, {"pni"}, "k8-sse3", "k8-sse3", "k8-sse3"), (15, 1, set(), "opteron", "opteron", "opteron"),
    (15, 5, set(), "athlon-fx", "athlon-fx", "athlon-fx"), (15, 0x4B, set(), "athlon64", "athlon64", "athlon64"),
    (16, 2, set(), "barcelona", "barcelona", "barcelona"), (16, 9, set(), "amdfam10", "amdfam10", "amdfam10"),
    (20, 1, set(), "btver1", "btver1", "btver1"),
    (21, 0x00, set(), "bdver1", "bdver1", "bdver1"), (21, 0x02, set(), "bdver1", "bdver1", "bdver1"),
    (21, 0x0F, set(), "bdver1", "bdver1", "bdver1"), (21, 0x10, set(), "bdver2", "bdver2", "bdver2"),
    (21, 0x1F, set(), "bdver2", "bdver2", "bdver2"), (21, 0x30, set(), "bdver3", "bdver3", "bdver3"),
    (21, 0x3F, set(), "bdver3", "bdver3", "bdver3"), (21, 0x50, set(), "bdver4", "bdver4", "bdver4"),
    (21, 0x6F, set(), "bdver4", "bdver4", "bdver4"), (21, 0x20, set(), "btver1", "btver1", "btver1"),
    (21, 0x70, set(), "btver1", "btver1", "btver1"), (22, 0, set(), "btver2", "btver2", "btver2"),
    (23, 0x01, set(), "znver1", "znver1", "znver1"), (23, 0x18, set(), "znver1", "znver1", "znver1"),
    (23, 0x2F, set(), "znver1", "znver1", "znver1"), (23, 0x30, set(), "znver2", "znver2", "znver2"),
    (23, 0x60, set(), "znver2", "znver2", "znver2"), (23, 0xFF, set(), "znver2", "znver2", "znver2"),
    (25, 0x00, set(), "znver3", "znver3", "znver3"), (25, 0x0F, set(), "znver3", "znver3", "znver3"),
    (25, 0x10, set(), "znver3", "znver4", "znver4"), (25, 0x1F, set(), "znver3", "znver4", "znver4"),
    (25, 0x20, set(), "znver3", "znver3", "znver3"), (25, 0x5F, set(), "znver3", "znver3", "znver3"),
    (25, 0x60, set(), "znver3", "znver4", "znver4"), (25, 0x74, set(), "znver3", "znver4", "znver4"),
    (25, 0x75, set(), "znver3", "znver3", "znver3"), (25, 0x77, set(), "znver3", "znver3", "znver3"),
    (25, 0x78, set(), "znver3", "znver4", "znver4"), (25, 0x7B, set(), "znver3", "znver4", "znver4"),
    (25, 0x7C, set(), "znver3", "znver3", "znver3"), (25, 0xA0, set(), "znver3", "znver4", "znver4"),
    (25, 0xAF, set(), "znver3", "znver4", "znver4"), (25, 0xB0, set(), "znver3", "znver3", "znver3"),
    (26, 0x02, set(), "generic", "generic", "znver5"), (26, 0x44, set(), "generic", "generic", "znver5"),
    (26, 0x78, set(), "generic", "generic", "znver5"),
    (24, 0x00, set(), "generic", "generic", "generic"),  # Hygon-like family under AMD's vendor
    (6, 0x08, {"sse"}, "generic", "generic", "generic"), (5, 0x08, set(), "generic", "generic", "generic"),
]


@pytest.mark.parametrize("family,model,flags,v10,v11,v12", JULIA_AMD)
def test_julia_amd_table(family, model, flags, v10, v11, v12):
    regs, xcr0 = cpu("AuthenticAMD", family, model, {"sse", "sse2"} | flags)
    for version, name in zip(JULIAS, (v10, v11, v12)):
        assert hostcpu.x86_julia_name(regs, xcr0, version) == name, version


def test_julia_vendor_is_read_from_ebx_only_llvm_needs_all_twelve_bytes():
    regs, xcr0 = cpu("GenuineIotel", 6, 0x3F, HASWELL)  # "Genu" matches, the rest does not
    assert hostcpu.x86_julia_name(regs, xcr0, "1.10") == "haswell"
    assert hostcpu.x86_llvm_name(regs, xcr0, 15) == ("generic", False)
    regs, xcr0 = cpu("CentaurHauls", 6, 0x0F, HASWELL)
    assert hostcpu.x86_cpu_name(regs, xcr0, "1.12") == ("generic", "llvm-18")


# --- LLVM's model table (getIntelProcessorTypeAndSubtype / getAMDProcessorTypeAndSubtype) ---

LLVM15_INTEL_6 = {
    "core2": (0x0F, 0x16), "penryn": (0x17, 0x1D), "nehalem": (0x1A, 0x1E, 0x1F, 0x2E),
    "westmere": (0x25, 0x2C, 0x2F), "sandybridge": (0x2A, 0x2D), "ivybridge": (0x3A, 0x3E),
    "haswell": (0x3C, 0x3F, 0x45, 0x46), "broadwell": (0x3D, 0x47, 0x4F, 0x56),
    "skylake": (0x4E, 0x5E, 0x8E, 0x9E, 0xA5, 0xA6), "rocketlake": (0xA7,), "cannonlake": (0x66,),
    "icelake-client": (0x7D, 0x7E), "tigerlake": (0x8C, 0x8D), "alderlake": (0x97, 0x9A),
    "icelake-server": (0x6A, 0x6C), "sapphirerapids": (0x8F,),
    "bonnell": (0x1C, 0x26, 0x27, 0x35, 0x36), "silvermont": (0x37, 0x4A, 0x4D, 0x5A, 0x5D, 0x4C),
    "goldmont": (0x5C, 0x5F), "goldmont-plus": (0x7A,), "tremont": (0x86,), "knl": (0x57,), "knm": (0x85,),
}
LLVM16_ADDED = {"alderlake": (0xB7, 0xAA, 0xAC), "sapphirerapids": (0xCF,),
                "graniterapids": (0xAD, 0xAE), "sierraforest": (0xAF,), "grandridge": (0xB6,)}
LLVM18_ADDED = {"alderlake": (0xBA, 0xBF, 0xBE), "arrowlake": (0xC5,), "arrowlake-s": (0xC6, 0xBD),
                "pantherlake": (0xCC,), "graniterapids-d": (0xAE,), "tremont": (0x8A, 0x96, 0x9C),
                "clearwaterforest": (0xDD,)}


def _llvm_intel_expectations() -> dict[int, dict[int, str]]:
    def flat(table: dict[str, tuple[int, ...]]) -> dict[int, str]:
        return {m: n for n, ms in table.items() for m in ms}
    v15 = flat(LLVM15_INTEL_6)
    v16 = {**v15, **flat(LLVM16_ADDED)}
    return {14: v15, 15: v15, 16: v16, 18: {**v16, **flat(LLVM18_ADDED)}}


LLVM_INTEL = _llvm_intel_expectations()
ALL_LLVM_MODELS = sorted({m for t in LLVM_INTEL.values() for m in t})


@pytest.mark.parametrize("model", ALL_LLVM_MODELS)
def test_llvm_intel_family6_table(model):
    # HASWELL flags: a model a version does not list falls to the guess chain ("haswell")
    regs, xcr0 = cpu("GenuineIntel", 6, model, HASWELL)
    for llvm in LLVMS:
        expected = LLVM_INTEL[llvm].get(model)
        got = hostcpu.x86_llvm_name(regs, xcr0, llvm)
        assert got == ((expected, False) if expected else ("haswell", True)), (llvm, hex(model))


@pytest.mark.parametrize("family,model,flags,name", [
    (3, 0, set(), "i386"), (4, 8, set(), "i486"), (5, 2, set(), "pentium"), (5, 4, {"mmx"}, "pentium-mmx"),
    (15, 2, set(), "pentium4"), (15, 3, {"pni"}, "prescott"), (15, 4, {"pni", "lm"}, "nocona"),
    (6, 0x55, {"avx512f", "avx512vl", "avx"}, "skylake-avx512"),
    (6, 0x55, {"avx512f", "avx512_vnni", "avx"}, "cascadelake"),
    (6, 0x55, {"avx512f", "avx512_bf16", "avx"}, "cooperlake"),
    (7, 1, set(), "generic"), (0x13, 1, set(), "generic"),  # Itanium-era / Diamond Rapids family
])
def test_llvm_intel_other_families(family, model, flags, name):
    regs, xcr0 = cpu("GenuineIntel", family, model, flags)
    for llvm in LLVMS:
        assert hostcpu.x86_llvm_name(regs, xcr0, llvm) == (name, False), llvm


# (family, model, flags, llvm15, llvm16, llvm18)
LLVM_AMD = [
    (4, 1, set(), "i486", "i486", "i486"), (5, 6, set(), "k6", "k6", "k6"), (5, 7, set(), "k6", "k6", "k6"),
    (5, 8, set(), "k6-2", "k6-2", "k6-2"), (5, 9, set(), "k6-3", "k6-3", "k6-3"),
    (5, 13, set(), "k6-3", "k6-3", "k6-3"), (5, 10, set(), "geode", "geode", "geode"),
    (5, 2, set(), "pentium", "pentium", "pentium"), (6, 1, {"sse"}, "athlon-xp", "athlon-xp", "athlon-xp"),
    (6, 1, set(), "athlon", "athlon", "athlon"), (15, 1, {"pni"}, "k8-sse3", "k8-sse3", "k8-sse3"),
    (15, 1, set(), "k8", "k8", "k8"), (16, 2, set(), "amdfam10", "amdfam10", "amdfam10"),
    (20, 0, set(), "btver1", "btver1", "btver1"),
    (21, 0x00, set(), "bdver1", "bdver1", "bdver1"), (21, 0x02, set(), "bdver2", "bdver2", "bdver2"),
    (21, 0x10, set(), "bdver2", "bdver2", "bdver2"), (21, 0x1F, set(), "bdver2", "bdver2", "bdver2"),
    (21, 0x30, set(), "bdver3", "bdver3", "bdver3"), (21, 0x3F, set(), "bdver3", "bdver3", "bdver3"),
    (21, 0x60, set(), "bdver4", "bdver4", "bdver4"),
    (21, 0x7F, set(), "bdver4", "bdver4", "bdver4"), (21, 0x20, set(), "bdver1", "bdver1", "bdver1"),
    (22, 0, set(), "btver2", "btver2", "btver2"),
    (23, 0x01, set(), "znver1", "znver1", "znver1"), (23, 0x30, set(), "znver2", "znver2", "znver2"),
    (23, 0x3F, set(), "znver2", "znver2", "znver2"), (23, 0x71, set(), "znver2", "znver2", "znver2"),
    (23, 0x47, set(), "znver1", "znver1", "znver2"), (23, 0x60, set(), "znver1", "znver1", "znver2"),
    (23, 0x7F, set(), "znver1", "znver1", "znver2"), (23, 0x84, set(), "znver1", "znver1", "znver2"),
    (23, 0x87, set(), "znver1", "znver1", "znver2"), (23, 0x90, set(), "znver1", "znver1", "znver2"),
    (23, 0xAF, set(), "znver1", "znver1", "znver2"), (23, 0xB0, set(), "znver1", "znver1", "znver1"),
    (25, 0x01, set(), "znver3", "znver3", "znver3"), (25, 0x10, set(), "znver3", "znver4", "znver4"),
    (25, 0x1F, set(), "znver3", "znver4", "znver4"), (25, 0x21, set(), "znver3", "znver3", "znver3"),
    (25, 0x60, set(), "znver3", "znver4", "znver4"), (25, 0x74, set(), "znver3", "znver4", "znver4"),
    (25, 0x75, set(), "znver3", "znver3", "znver4"), (25, 0x77, set(), "znver3", "znver3", "znver4"),
    (25, 0x78, set(), "znver3", "znver4", "znver4"), (25, 0x7B, set(), "znver3", "znver4", "znver4"),
    (25, 0x7F, set(), "znver3", "znver3", "znver4"), (25, 0xA0, set(), "znver3", "znver4", "znver4"),
    (25, 0xAF, set(), "znver3", "znver4", "znver4"), (25, 0xB0, set(), "znver3", "znver3", "znver3"),
    (26, 0x02, set(), "generic", "generic", "generic"), (24, 0, set(), "generic", "generic", "generic"),
]


@pytest.mark.parametrize("family,model,flags,v15,v16,v18", LLVM_AMD)
def test_llvm_amd_table(family, model, flags, v15, v16, v18):
    regs, xcr0 = cpu("AuthenticAMD", family, model, flags)
    for llvm, name in zip(LLVMS, (v15, v16, v18)):
        assert hostcpu.x86_llvm_name(regs, xcr0, llvm) == (name, False), llvm


# --- LLVM's guess for an unknown family-6 model ("Unknown family 6 CPU, try to guess") -----

AVX = {"avx", "xsave"}
AVX512 = AVX | {"avx512f"}
GUESS = [
    (AVX512 | {"avx512_vp2intersect", "avx512vbmi", "avx512vl"}, "tigerlake"),
    (AVX512 | {"avx512_vbmi2", "avx512vbmi"}, "icelake-client"), (AVX512 | {"avx512vbmi"}, "cannonlake"),
    (AVX512 | {"avx512_bf16", "avx512_vnni"}, "cooperlake"), (AVX512 | {"avx512_vnni"}, "cascadelake"),
    (AVX512 | {"avx512vl", "clflushopt"}, "skylake-avx512"), (AVX512 | {"avx512er"}, "knl"),
    ({"clflushopt", "sha_ni", "avx2"} | AVX, "goldmont"), ({"clflushopt", "avx2"} | AVX, "skylake"),
    ({"adx", "avx2"} | AVX, "broadwell"), ({"avx2"} | AVX, "haswell"), (AVX | {"sse4_2"}, "sandybridge"),
    ({"sse4_2", "movbe"}, "silvermont"), ({"sse4_2"}, "nehalem"), ({"sse4_1", "ssse3"}, "penryn"),
    ({"ssse3", "movbe"}, "bonnell"), ({"ssse3"}, "core2"), ({"lm", "pni"}, "core2"), ({"pni"}, "yonah"),
    ({"sse2", "sse"}, "pentium-m"), ({"sse"}, "pentium3"), ({"mmx"}, "pentium2"), (set(), "pentiumpro"),
]


@pytest.mark.parametrize("flags,name", GUESS)
def test_llvm_family6_guess_chain(flags, name):
    regs, xcr0 = cpu("GenuineIntel", 6, 0xFE, flags)  # a model no table lists
    for llvm in LLVMS:
        assert hostcpu.x86_llvm_name(regs, xcr0, llvm) == (name, True), llvm


def test_guess_needs_the_os_state_for_avx_and_avx512():
    regs, _ = cpu("GenuineIntel", 6, 0xFE, AVX512 | {"avx512_vp2intersect", "avx2", "adx"})
    assert hostcpu.x86_llvm_name(regs, 0x7 | 0xE0, 18) == ("tigerlake", True)
    assert hostcpu.x86_llvm_name(regs, 0x7, 18) == ("broadwell", True)  # no ZMM state
    assert hostcpu.x86_llvm_name(regs, 0x3, 18)[0] == "broadwell"  # adx needs no AVX state


def test_bf16_subleaf_rule_changed_after_llvm_16():
    regs, xcr0 = cpu("GenuineIntel", 6, 0xFE, AVX512 | {"avx512_bf16"})
    _, ebx, ecx, edx = regs[(7, 0)]
    regs[(7, 0)] = (0, ebx, ecx, edx)  # CPUID(7,0).EAX: no subleaf 1 advertised
    assert hostcpu.x86_llvm_name(regs, xcr0, 15)[0] == "cooperlake"  # reads (7,1) anyway
    assert hostcpu.x86_llvm_name(regs, xcr0, 18)[0] == "sandybridge"  # checks the subleaf count


# --- the combination, per Julia version -----------------------------------------------------

@pytest.mark.parametrize("model,names,sources", [
    # the VM: Julia's table says generic, LLVM's table says rocketlake in every version
    (0xA7, ("rocketlake",) * 3, ("llvm-15", "llvm-16", "llvm-18")),
    # Raptor Lake-S / -P / refresh: LLVM 15 guesses, 16 knows only 0xB7, 18 all three
    (0xB7, ("goldmont", "alderlake", "alderlake"), ("llvm-15-guess", "llvm-16", "llvm-18")),
    (0xBA, ("goldmont", "goldmont", "alderlake"), ("llvm-15-guess", "llvm-16-guess", "llvm-18")),
    (0xBF, ("goldmont", "goldmont", "alderlake"), ("llvm-15-guess", "llvm-16-guess", "llvm-18")),
    (0xAA, ("goldmont", "alderlake", "alderlake"), ("llvm-15-guess", "llvm-16", "llvm-18")),
    (0xC6, ("goldmont", "goldmont", "arrowlake-s"), ("llvm-15-guess", "llvm-16-guess", "llvm-18")),
    (0x97, ("alderlake",) * 3, ("julia",) * 3),
])
def test_client_parts_per_julia_version(model, names, sources):
    regs, xcr0 = cpu("GenuineIntel", 6, model, HASWELL | {"clflushopt", "sha_ni", "adx"})
    got = [hostcpu.x86_cpu_name(regs, xcr0, v) for v in JULIAS]
    assert got == list(zip(names, sources))


@pytest.mark.parametrize("model,names,sources", [
    (0xCF, ("tigerlake", "sapphirerapids", "sapphirerapids"), ("llvm-15-guess", "llvm-16", "llvm-18")),
    (0xAD, ("tigerlake", "graniterapids", "graniterapids"), ("llvm-15-guess", "llvm-16", "llvm-18")),
    (0xAE, ("tigerlake", "graniterapids", "graniterapids-d"), ("llvm-15-guess", "llvm-16", "llvm-18")),
])
def test_server_parts_per_julia_version(model, names, sources):
    flags = HASWELL | AVX512 | {"avx512_vp2intersect", "avx512vl", "avx512_vnni", "clflushopt", "adx"}
    regs, xcr0 = cpu("GenuineIntel", 6, model, flags)
    assert [hostcpu.x86_cpu_name(regs, xcr0, v) for v in JULIAS] == list(zip(names, sources))


def test_julia_1_9_asks_llvm_14_and_newer_julias_are_refused():
    regs, xcr0 = cpu("GenuineIntel", 6, 0xA7, HASWELL)
    assert hostcpu.x86_cpu_name(regs, xcr0, "1.9.4") == ("rocketlake", "llvm-14")
    with pytest.raises(UsageError, match=r"Julia 1\.13\.1 is not supported yet"):
        hostcpu.x86_cpu_name(regs, xcr0, "1.13.1")
    with pytest.raises(UsageError, match="no LLVM 17 host-CPU tables"):
        hostcpu.x86_llvm_name(regs, xcr0, 17)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.tuples(st.sampled_from([0, 1, 7, 0xD, 0x14, 0x80000000, 0x80000001]),
                                 st.integers(0, 1)),
                       st.tuples(*[st.integers(0, 2**32 - 1)] * 4), max_size=8),
       st.integers(0, 2**64 - 1), st.sampled_from(("1.9", "1.10", "1.11", "1.12")))
def test_any_register_dump_gets_a_name_and_a_source(regs, xcr0, version):
    name, source = hostcpu.x86_cpu_name(regs, xcr0, version)
    assert name and source in ("julia", f"llvm-{LLVM_OF[version]}", f"llvm-{LLVM_OF[version]}-guess")


# --- AArch64: Julia's MIDR table, big.LITTLE, LLVM's getHostCPUNameForARM ------------------

def midr(implementer: int, part: int, variant: int = 0, revision: int = 0) -> int:
    return implementer << 24 | variant << 20 | 0xF << 16 | part << 4 | revision


JULIA_MIDR = {  # (implementer, part) -> name, every Julia version
    (0x41, 0xD02): "cortex-a34", (0x41, 0xD03): "cortex-a53", (0x41, 0xD04): "cortex-a35",
    (0x41, 0xD05): "cortex-a55", (0x41, 0xD06): "cortex-a65", (0x41, 0xD07): "cortex-a57",
    (0x41, 0xD08): "cortex-a72", (0x41, 0xD09): "cortex-a73", (0x41, 0xD0A): "cortex-a75",
    (0x41, 0xD0B): "cortex-a76", (0x41, 0xD0C): "neoverse-n1", (0x41, 0xD0D): "cortex-a77",
    (0x41, 0xD0E): "cortex-a76ae", (0x41, 0xD40): "neoverse-v1", (0x41, 0xD41): "cortex-a78",
    (0x41, 0xD43): "cortex-a65ae", (0x41, 0xD44): "cortex-x1", (0x41, 0xD49): "neoverse-n2",
    (0x41, 0xD4A): "neoverse-e1", (0x42, 0x516): "thunderx2t99p1", (0x43, 0x0A0): "thunderx",
    (0x43, 0x0A2): "thunderxt81", (0x43, 0x0A3): "thunderxt83", (0x43, 0x0AF): "thunderx2t99",
    (0x43, 0x0B0): "octeontx2", (0x43, 0x0B1): "octeontx2t98", (0x43, 0x0B2): "octeontx2t96",
    (0x43, 0x0B3): "octeontx2f95", (0x43, 0x0B4): "octeontx2f95n", (0x43, 0x0B5): "octeontx2f95mm",
    (0x43, 0x0B8): "thunderx3t110", (0x46, 0x001): "a64fx", (0x48, 0xD01): "tsv110",
    (0x48, 0xD40): "cortex-a76", (0x4E, 0x000): "denver1", (0x4E, 0x003): "denver2",
    (0x4E, 0x004): "carmel", (0x50, 0x000): "xgene1", (0x51, 0x201): "kyro", (0x51, 0x205): "kyro",
    (0x51, 0x211): "kyro", (0x51, 0x800): "cortex-a73", (0x51, 0x801): "cortex-a53",
    (0x51, 0x802): "cortex-a75", (0x51, 0x803): "cortex-a55", (0x51, 0x804): "cortex-a76",
    (0x51, 0x805): "cortex-a55", (0x51, 0xC00): "falkor", (0x51, 0xC01): "saphira",
    (0x61, 0x001): "apple-a7", (0x61, 0x002): "apple-a8", (0x61, 0x003): "apple-a8",
    (0x61, 0x004): "apple-a9", (0x61, 0x005): "apple-a9", (0x61, 0x006): "apple-a10",
    (0x61, 0x007): "apple-a10", (0x61, 0x008): "apple-a11", (0x61, 0x009): "apple-a11",
    (0x61, 0x00B): "apple-a12", (0x61, 0x00C): "apple-a12", (0x61, 0x010): "apple-a12",
    (0x61, 0x011): "apple-a12", (0x61, 0x00F): "apple-s4", (0x61, 0x012): "apple-a13",
    (0x61, 0x013): "apple-a13", (0x61, 0x020): "apple-a14", (0x61, 0x021): "apple-a14",
    (0x61, 0x022): "apple-m1", (0x61, 0x023): "apple-m1", (0x68, 0x000): "phecda",
}
JULIA_MIDR_BY_VERSION = {  # (implementer, part) -> (1.10, 1.11, 1.12); None: not in the table
    (0x61, 0x024): (None, "apple-m1", "apple-m1"), (0x61, 0x025): (None, "apple-m1", "apple-m1"),
    (0x61, 0x028): (None, "apple-m1", "apple-m1"), (0x61, 0x029): (None, "apple-m1", "apple-m1"),
    (0x61, 0x030): (None, "apple-m2", "apple-a15"), (0x61, 0x031): (None, "apple-m2", "apple-a15"),
    **{(0x61, p): (None, "apple-m2", "apple-m2") for p in (0x032, 0x033, 0x034, 0x035, 0x038, 0x039)},
    (0x61, 0x040): (None, None, "apple-a16"), (0x61, 0x041): (None, None, "apple-a16"),
    **{(0x61, p): (None, None, "apple-m3") for p in (0x042, 0x043, 0x044, 0x045)},
    (0x61, 0x048): (None, "apple-m3", "apple-m3"), (0x61, 0x049): (None, "apple-m3", "apple-m3"),
    (0x61, 0x050): (None, None, "apple-a17"), (0x61, 0x051): (None, None, "apple-a17"),
    **{(0x61, p): (None, None, "apple-m4") for p in (0x052, 0x053, 0x054, 0x055, 0x058, 0x059)},
}
# parts Julia knows as 32-bit-only CPUs (check_cpu_arch_ver fails on AArch64: ignored)
JULIA_32BIT = [(0x41, p) for p in (0xB02, 0xB36, 0xB56, 0xB76, 0xC05, 0xC07, 0xC08, 0xC09, 0xC0D,
                                   0xC0F, 0xC0E, 0xC14, 0xC15, 0xC17, 0xC18, 0xC20, 0xC21, 0xC23,
                                   0xC24, 0xC27, 0xD01, 0xD13, 0xD20, 0xD21)] + \
    [(0x51, 0x00F), (0x51, 0x02D), (0x51, 0x04D), (0x51, 0x06F), (0x56, 0x581), (0x56, 0x584),
     (0x61, 0x000), (0x69, 0x001)]


@pytest.mark.parametrize("key", sorted(JULIA_MIDR))
def test_julia_midr_table(key):
    for version in JULIAS:
        assert hostcpu.aarch64_cpu_name([midr(*key)], version) == (JULIA_MIDR[key], "julia")


@pytest.mark.parametrize("key", sorted(JULIA_MIDR_BY_VERSION))
def test_julia_midr_table_apple_rows_per_version(key):
    for version, name in zip(JULIAS, JULIA_MIDR_BY_VERSION[key]):
        got = hostcpu.aarch64_cpu_name([midr(*key)], version)
        assert got == ((name, "julia") if name else ("generic", f"llvm-{LLVM_OF[version]}")), version


@pytest.mark.parametrize("key", JULIA_32BIT)
def test_julia_32bit_only_parts_are_ignored(key):
    assert hostcpu.aarch64_julia_cores([midr(*key)], "1.12") == ((), False)


@pytest.mark.parametrize("part,variant,name", [
    (0x0A1, 0, "thunderxt88p1"), (0x0A1, 1, "thunderxt88"), (0x0A1, 2, "thunderxt88"),
])
def test_julia_cavium_thunderx88_by_variant(part, variant, name):
    assert hostcpu.aarch64_cpu_name([midr(0x43, part, variant)], "1.11") == (name, "julia")


@pytest.mark.parametrize("part,variant,julia,llvm", [
    (0x001, 4, "exynos-m2", None), (0x001, 0, "exynos-m1", None), (0x002, 1, "exynos-m3", None),
    (0x003, 1, "exynos-m4", None), (0x004, 1, "exynos-m5", None),
    (0x002, 0, None, "exynos-m3"), (0x003, 0, None, "exynos-m3"),  # LLVM: 0x1003 only is m4
    (0x005, 1, None, "exynos-m3"),
])
def test_samsung_parts_need_the_right_variant(part, variant, julia, llvm):
    got = hostcpu.aarch64_cpu_name([midr(0x53, part, variant)], "1.12")
    assert got == ((julia, "julia") if julia else (llvm, "llvm-18"))


@pytest.mark.parametrize("cores,name", [
    ([(0x41, 0xD05), (0x41, 0xD0B)], "cortex-a76"),  # a55 + a76: the big core
    ([(0x41, 0xD0B), (0x41, 0xD05)], "cortex-a76"),  # core order does not matter
    ([(0x41, 0xD03), (0x41, 0xD08)], "cortex-a72"),
    ([(0x41, 0xD05), (0x53, 0x002, 1)], "exynos-m3"),  # Exynos 9810
    ([(0x41, 0xD05), (0x41, 0xD46)], "cortex-a55"),  # an unknown core does not name the host
    ([(0x43, 0x0AF), (0x46, 0x001)], "thunderx2t99"),  # not in the order: first by implementer
    ([(0x41, 0xD0C), (0x41, 0xD40)], "neoverse-v1"),
])
def test_julia_big_little_takes_the_biggest_known_core(cores, name):
    midrs = [midr(*c) for c in cores]
    for version in JULIAS:
        assert hostcpu.aarch64_cpu_name(midrs, version) == (name, "julia")


def test_unknown_core_voids_julias_extra_features_but_not_the_name():
    assert hostcpu.aarch64_julia_cores([midr(0x41, 0xD05), midr(0x41, 0xD46)], "1.11") == (("cortex-a55",), True)
    assert hostcpu.aarch64_julia_cores([midr(0x41, 0xD05)] * 4, "1.11") == (("cortex-a55",), False)


LLVM_ARM = {  # (implementer, part) -> (llvm15, llvm16, llvm18)
    **{(0x41, p): (n, n, n) for p, n in (
        (0x926, "arm926ej-s"), (0xB02, "mpcore"), (0xB36, "arm1136j-s"), (0xB56, "arm1156t2-s"),
        (0xB76, "arm1176jz-s"), (0xC08, "cortex-a8"), (0xC09, "cortex-a9"), (0xC0F, "cortex-a15"),
        (0xC20, "cortex-m0"), (0xC23, "cortex-m3"), (0xC24, "cortex-m4"), (0xD22, "cortex-m55"),
        (0xD02, "cortex-a34"), (0xD04, "cortex-a35"), (0xD03, "cortex-a53"), (0xD07, "cortex-a57"),
        (0xD08, "cortex-a72"), (0xD09, "cortex-a73"), (0xD0A, "cortex-a75"), (0xD0B, "cortex-a76"),
        (0xD0D, "cortex-a77"), (0xD41, "cortex-a78"), (0xD44, "cortex-x1"), (0xD4C, "cortex-x1c"),
        (0xD0C, "neoverse-n1"), (0xD49, "neoverse-n2"), (0xD40, "neoverse-v1"))},
    **{(0x41, p): ("generic", "generic", n) for p, n in (
        (0xD24, "cortex-m52"), (0xD05, "cortex-a55"), (0xD46, "cortex-a510"), (0xD80, "cortex-a520"),
        (0xD47, "cortex-a710"), (0xD4D, "cortex-a715"), (0xD81, "cortex-a720"), (0xD48, "cortex-x2"),
        (0xD4E, "cortex-x3"), (0xD82, "cortex-x4"), (0xD4F, "neoverse-v2"))},
    (0x41, 0xD84): ("generic",) * 3, (0x41, 0xD8E): ("generic",) * 3,  # Neoverse V3 / N3
    (0x42, 0x516): ("thunderx2t99",) * 3, (0x43, 0x516): ("thunderx2t99",) * 3,
    (0x42, 0x0AF): ("thunderx2t99",) * 3, (0x43, 0x0AF): ("thunderx2t99",) * 3,
    (0x42, 0x0A1): ("thunderxt88",) * 3, (0x43, 0x0A1): ("thunderxt88",) * 3,
    (0x46, 0x001): ("a64fx",) * 3, (0x4E, 0x004): ("carmel",) * 3, (0x4E, 0x010): ("generic",) * 3,
    (0x48, 0xD01): ("tsv110",) * 3, (0x51, 0x06F): ("krait",) * 3,
    **{(0x51, p): ("kryo",) * 3 for p in (0x201, 0x205, 0x211)},
    (0x51, 0x800): ("cortex-a73",) * 3, (0x51, 0x801): ("cortex-a73",) * 3,
    (0x51, 0x802): ("cortex-a75",) * 3, (0x51, 0x803): ("cortex-a75",) * 3,
    (0x51, 0x804): ("cortex-a76",) * 3, (0x51, 0x805): ("cortex-a76",) * 3,
    (0x51, 0xC00): ("falkor",) * 3, (0x51, 0xC01): ("saphira",) * 3,
    (0x6D, 0xD49): ("generic", "generic", "neoverse-n2"),
    (0xC0, 0xAC3): ("ampere1",) * 3, (0xC0, 0xAC4): ("generic", "generic", "ampere1a"),
    (0xC0, 0xAC5): ("generic", "generic", "ampere1b"), (0x61, 0x022): ("generic",) * 3,
}


@pytest.mark.parametrize("key", sorted(LLVM_ARM))
def test_llvm_arm_table(key):
    for llvm, name in zip(LLVMS, LLVM_ARM[key]):
        assert hostcpu.aarch64_llvm_name(midr(*key), llvm) == name, llvm


def test_llvm_reads_the_last_cpuinfo_block_when_julia_knows_no_core():
    # big.LITTLE of cores Julia does not know: LLVM 18 names the last core; 15 knows neither
    midrs = [midr(0x41, 0xD46), midr(0x41, 0xD46), midr(0x41, 0xD4D)]
    assert hostcpu.aarch64_cpu_name(midrs, "1.12") == ("cortex-a715", "llvm-18")
    assert hostcpu.aarch64_cpu_name(midrs[::-1], "1.12") == ("cortex-a510", "llvm-18")
    assert hostcpu.aarch64_cpu_name(midrs, "1.10") == ("generic", "llvm-15")
    assert hostcpu.aarch64_cpu_name([], "1.11") == ("generic", "llvm-16")


# --- the expectations cover every row of the tables ------------------------------------------

def _models(rows, family=None):
    out = set()
    for row in rows:
        if family is not None and row[0] != family:
            continue
        for spec in row[1]:
            out.update((spec,) if isinstance(spec, int) else (spec[0], spec[1]))
    return out


def test_every_table_row_has_an_expectation_here():
    assert _models(julia_x86.INTEL, 6) == {m for ms in JULIA_INTEL_6.values() for m in ms} | {0x55}
    assert _models(llvm_x86.INTEL, 6) == set(ALL_LLVM_MODELS) | {0x55}
    amd_cases = {(f, m) for f, m, *_ in JULIA_AMD}
    assert {(row[0], m) for row in julia_x86.AMD for m in _models([row])} <= amd_cases
    llvm_amd_cases = {(f, m) for f, m, *_ in LLVM_AMD}
    assert {(row[0], m) for row in llvm_x86.AMD for m in _models([row])} <= llvm_amd_cases
    assert [n for _, n, *_ in llvm_x86.FAMILY6_GUESS] == [n for _, n in GUESS]
    known = set(JULIA_MIDR) | set(JULIA_MIDR_BY_VERSION) | set(JULIA_32BIT) | {(0x43, 0x0A1)} | \
        {(0x53, p) for p in (1, 2, 3, 4)}
    assert {(imp, p) for imp, parts, *_ in julia_aarch64.MIDR for p in parts} == known
    assert {(imp, p) for imp, p, *_ in llvm_aarch64.PARTS} <= set(LLVM_ARM)
