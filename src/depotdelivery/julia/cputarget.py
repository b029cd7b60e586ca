"""JULIA_CPU_TARGET strings: Julia's parser and CPU name tables, target features, recommendations.

Sources (read at the 1.10 line, where the 1.11/1.12 files could not be read the difference is
named): src/processor.cpp ``parse_cmdline`` / ``get_clone_base`` (syntax and error messages),
src/processor_x86.cpp and src/processor_arm.cpp (``cpus[]`` tables, ``normalize_cpu_name``,
``arg_target_data``, ``ensure_jit_target`` clone flags), src/aotcompile.cpp and
``jl_reflect_clone_targets`` (which flags an image stores).
"""
from __future__ import annotations

from depotdelivery._memo import cache

TYPE_CHECKING = False  # no `typing` on a job's path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
from depotdelivery._record import field, record, replace
from depotdelivery.errors import UsageError
from depotdelivery.julia.features import (
    LLVM_UNUSED_FEATURES,
    FeatureTable,
    feature_table,
)
from depotdelivery.julia.targetdata import (
    CLONE_ALL,
    CLONE_BFLOAT16,
    CLONE_CPU,
    CLONE_FLOAT16,
    CLONE_LOOP,
    CLONE_MATH,
    CLONE_SIMD,
    MINSIZE,
    OPTSIZE,
    UNKNOWN_NAME,
    VEC_CALL,
    ImageTarget,
)

__all__ = [
    "CLONE_ALL", "CLONE_BFLOAT16", "CLONE_CPU", "CLONE_FLOAT16", "CLONE_LOOP", "CLONE_MATH",
    "CLONE_SIMD", "MINSIZE", "OPTSIZE", "STORED_FLAGS", "SYSIMAGE_KEYWORD", "UNKNOWN_NAME", "VEC_CALL",
    "TargetSpec", "cpu_features", "cpu_names", "format_cpu_target", "jit_target",
    "julia_cpu_for_microarch", "lint_cpu_target", "multi_target_pkgimages", "normalize_cpu_name",
    "parse_cpu_target", "to_image_target", "vector_size",
]

# JULIA_CPU_TARGET / -C keyword from Julia 1.13 (JuliaLang/julia#58970, src/processor.cpp
# parse_cmdline): a string starting "sysimage" followed by its end or ";" is replaced by the CPU
# target string the running sysimage was built with ("native" if it recorded none). Julia
# 1.9-1.12, the versions depotdelivery models, parse it as an unknown CPU name (lint says so).
SYSIMAGE_KEYWORD = "sysimage"

# The only flags an image keeps: jl_reflect_clone_targets / aotcompile.cpp store
# ``base_flags | (flags & JL_TARGET_UNKNOWN_NAME)``, base_flags carrying VEC_CALL.
STORED_FLAGS = VEC_CALL | UNKNOWN_NAME


# --- CPU tables ---------------------------------------------------------------------------

def _chain(*steps: tuple[str, str | None, str]) -> dict[str, frozenset[str]]:
    """Build named feature sets like processor_*.cpp: (name, parent or None, added features)."""
    out: dict[str, frozenset[str]] = {}
    for name, parent, added in steps:
        out[name] = (out[parent] if parent else frozenset()) | frozenset(added.split())
    return out


# src/processor_x86.cpp (v1.10.x) ``namespace Feature`` feature sets. znver1-3 omit xsaves
# ("Disabled due to Erratum 1386", JuliaLang/julia#50102).
_X86_SETS = _chain(
    ("generic", None, "cx16"),
    ("bonnell", None, "sse3 ssse3 cx16 movbe sahf"),
    ("silvermont", "bonnell", "sse4.1 sse4.2 popcnt pclmul prfchw rdrnd"),
    ("goldmont", "silvermont", "aes sha rdseed xsave xsaveopt xsavec xsaves clflushopt fsgsbase"),
    ("goldmont_plus", "goldmont", "ptwrite rdpid"),
    ("tremont", "goldmont_plus", "clwb gfni"),
    ("knl", None, ("sse3 ssse3 sse4.1 sse4.2 cx16 sahf popcnt aes pclmul avx xsave xsaveopt rdrnd "
                  "f16c fsgsbase avx2 bmi bmi2 fma lzcnt movbe adx rdseed prfchw avx512f "
                  "avx512er avx512cd avx512pf prefetchwt1")),
    ("knm", "knl", "avx512vpopcntdq"),
    ("yonah", None, "sse3"),
    ("core2", None, "sse3 ssse3 cx16 sahf"),
    ("nocona", None, "sse3 cx16"),
    ("penryn", "nocona", "ssse3 sse4.1 sahf"),
    ("nehalem", "penryn", "sse4.2 popcnt"),
    ("westmere", "nehalem", "pclmul"),
    ("sandybridge", "westmere", "avx xsave xsaveopt"),
    ("ivybridge", "sandybridge", "rdrnd f16c fsgsbase"),
    ("haswell", "ivybridge", "avx2 bmi bmi2 fma lzcnt movbe"),
    ("broadwell", "haswell", "adx rdseed prfchw"),
    ("skylake", "broadwell", "aes xsavec xsaves clflushopt"),
    ("skx", "skylake", "avx512f avx512cd avx512dq avx512bw avx512vl pku clwb"),
    ("cascadelake", "skx", "avx512vnni"),
    ("cooperlake", "cascadelake", "avx512bf16"),
    ("cannonlake", "skylake", ("avx512f avx512cd avx512dq avx512bw avx512vl pku avx512vbmi "
                              "avx512ifma sha")),
    ("icelake", "cannonlake", ("avx512bitalg vaes avx512vbmi2 vpclmulqdq avx512vpopcntdq gfni "
                              "clwb rdpid")),
    ("icelake_server", "icelake", "pconfig wbnoinvd"),
    ("tigerlake", "icelake", "avx512vp2intersect movdiri movdir64b shstk"),
    ("alderlake", "skylake", ("clwb sha waitpkg shstk gfni vaes vpclmulqdq pconfig rdpid movdiri "
                             "pku movdir64b serialize ptwrite avxvnni")),
    ("sapphirerapids", "icelake_server", ("amx-tile amx-int8 amx-bf16 avx512bf16 avx512fp16 "
                                         "serialize cldemote waitpkg avxvnni uintr ptwrite "
                                         "tsxldtrk enqcmd shstk avx512vp2intersect movdiri "
                                         "movdir64b")),
    ("k8_sse3", None, "sse3 cx16"),
    ("amdfam10", "k8_sse3", "sse4a lzcnt popcnt sahf"),
    ("btver1", "amdfam10", "ssse3 prfchw"),
    ("btver2", "btver1", "sse4.1 sse4.2 avx aes pclmul bmi f16c movbe xsave xsaveopt"),
    ("bdver1", "amdfam10", "xop fma4 avx ssse3 sse4.1 sse4.2 aes prfchw pclmul xsave"),
    ("bdver2", "bdver1", "f16c bmi tbm fma"),
    ("bdver3", "bdver2", "xsaveopt fsgsbase"),
    ("bdver4", "bdver3", "avx2 bmi2 mwaitx movbe rdrnd"),
    ("znver1", "haswell", "adx aes clflushopt clzero mwaitx prfchw rdseed sha sse4a xsavec"),
    ("znver2", "znver1", "clwb rdpid wbnoinvd"),
    ("znver3", "znver2", "shstk pku vaes vpclmulqdq"),
    # v1.11 (JuliaLang/julia#52944, as quoted in #56967): znver4 = znver3 + AVX-512 subset.
    ("znver4", "znver3", ("avx512f avx512cd avx512dq avx512bw avx512vl avx512ifma avx512vbmi "
                         "avx512vbmi2 avx512vnni avx512bitalg avx512vpopcntdq avx512bf16 gfni "
                         "shstk xsaves")),
    # v1.12 (JuliaLang/julia#56967): znver5; prefetchi is a 1.12 feature (features_x86.h).
    ("znver5", "znver4", "avxvnni movdiri movdir64b avx512vp2intersect prefetchi"),
)

# src/processor_x86.cpp (v1.10.x) ``cpus[]``: CPU name -> feature set, in table order.
_X86_CPUS_110: tuple[tuple[str, str], ...] = (
    ("generic", "generic"), ("bonnell", "bonnell"), ("silvermont", "silvermont"),
    ("goldmont", "goldmont"), ("goldmont-plus", "goldmont_plus"), ("tremont", "tremont"),
    ("core2", "core2"), ("yonah", "yonah"), ("prescott", "yonah"), ("nocona", "nocona"),
    ("penryn", "penryn"), ("nehalem", "nehalem"), ("westmere", "westmere"),
    ("sandybridge", "sandybridge"), ("ivybridge", "ivybridge"), ("haswell", "haswell"),
    ("broadwell", "broadwell"), ("skylake", "skylake"), ("knl", "knl"), ("knm", "knm"),
    ("skylake-avx512", "skx"), ("cascadelake", "cascadelake"), ("cooperlake", "cooperlake"),
    ("cannonlake", "cannonlake"), ("icelake-client", "icelake"),
    ("icelake-server", "icelake_server"), ("tigerlake", "tigerlake"),
    ("alderlake", "alderlake"), ("sapphirerapids", "sapphirerapids"),
    ("athlon64", "generic"), ("athlon-fx", "generic"), ("k8", "generic"), ("opteron", "generic"),
    ("athlon64-sse3", "k8_sse3"), ("k8-sse3", "k8_sse3"), ("opteron-sse3", "k8_sse3"),
    ("amdfam10", "amdfam10"), ("barcelona", "amdfam10"), ("btver1", "btver1"),
    ("btver2", "btver2"), ("bdver1", "bdver1"), ("bdver2", "bdver2"), ("bdver3", "bdver3"),
    ("bdver4", "bdver4"), ("znver1", "znver1"), ("znver2", "znver2"), ("znver3", "znver3"),
)
_X86_CPUS: dict[str, tuple[tuple[str, str], ...]] = {
    "1.10": _X86_CPUS_110,
    "1.11": _X86_CPUS_110 + (("znver4", "znver4"),),
    "1.12": _X86_CPUS_110 + (("znver4", "znver4"), ("znver5", "znver5")),
}

# src/processor_arm.cpp (v1.10.x, AArch64) ``namespace Feature`` feature sets.
_ARM_SETS = _chain(
    ("generic", None, ""),
    ("crc", None, "crc"),
    ("crc_crypto", "crc", "aes sha2"),
    ("v8_1a", "crc", "v8_1a lse rdm"),
    ("v8_1a_crypto", "v8_1a", "aes sha2"),
    ("v8_2a", "v8_1a", "v8_2a ccpp"),
    ("v8_2a_crypto", "v8_2a", "aes sha2"),
    ("v8_3a", "v8_2a", "v8_3a jsconv complxnum rcpc"),
    ("v8_3a_crypto", "v8_3a", "aes sha2"),
    ("v8_4a", "v8_3a", "v8_4a dit rcpc-immo flagm"),
    ("v8_4a_crypto", "v8_4a", "aes sha2"),
    ("v8_5a", "v8_4a", "v8_5a sb ccdp altnzcv fptoint"),
    ("v8_5a_crypto", "v8_5a", "aes sha2"),
    ("v8_6a", "v8_5a", "v8_6a i8mm bf16"),
    ("cortex_a55", "v8_2a", "dotprod rcpc fullfp16 ssbs"),
    ("cortex_a65", "v8_2a", "rcpc fullfp16 ssbs"),
    ("cortex_a75", "v8_2a", "dotprod rcpc fullfp16"),
    ("neoverse_v1", "v8_4a", "sve i8mm bf16 fullfp16 ssbs rand"),
    ("neoverse_n2", "v8_5a", "sve i8mm bf16 fullfp16 sve2 sve2-bitperm rand mte"),
    ("a64fx", "v8_2a", "sha2 fullfp16 sve complxnum"),
    ("tsv110", "v8_2a_crypto", "dotprod fullfp16"),
    ("carmel", "v8_2a_crypto", "fullfp16"),
    ("falkor", "crc_crypto", "rdm"),
    ("exynos_m4", "v8_2a_crypto", "dotprod fullfp16"),
    ("apple_a10", "crc_crypto", "rdm"),
    ("apple_a11", "v8_2a_crypto", "fullfp16"),
    ("apple_a12", "v8_3a_crypto", "fullfp16"),
    ("apple_a13", "v8_4a_crypto", "fp16fml fullfp16 sha3"),
    ("apple_a14", "v8_5a_crypto", "dotprod fp16fml fullfp16 sha3"),
    # v1.11/v1.12: apple_a15, a16, a17, m2, m3, m4 are all this set (processor_arm.cpp)
    ("apple_a15", "v8_5a_crypto", "dotprod fp16fml fullfp16 sha3 i8mm bf16"),
)
_ARM_CPUS_110: tuple[tuple[str, str], ...] = (
    ("generic", "generic"), ("armv8.1-a", "v8_1a"), ("armv8.2-a", "v8_2a"),
    # sic: Julia spells these two with "_" (src/processor_arm.cpp cpus[])
    ("armv8.3_a", "v8_3a"), ("armv8.4-a", "v8_4a"), ("armv8.5-a", "v8_5a"),
    ("armv8.6_a", "v8_6a"),
    ("cortex-a34", "crc"), ("cortex-a35", "crc"), ("cortex-a53", "crc"),
    ("cortex-a55", "cortex_a55"), ("cortex-a57", "crc"), ("cortex-a65", "cortex_a65"),
    ("cortex-a65ae", "cortex_a65"), ("cortex-a72", "crc"), ("cortex-a73", "crc"),
    ("cortex-a75", "cortex_a75"), ("cortex-a76", "cortex_a55"), ("cortex-a76ae", "cortex_a55"),
    ("cortex-a77", "cortex_a55"), ("cortex-a78", "cortex_a55"), ("cortex-x1", "cortex_a55"),
    ("neoverse-e1", "cortex_a65"), ("neoverse-n1", "cortex_a55"),
    ("neoverse-v1", "neoverse_v1"), ("neoverse-n2", "neoverse_n2"),
    ("thunderx", "crc_crypto"), ("thunderxt88", "crc_crypto"), ("thunderxt88p1", "crc_crypto"),
    ("thunderxt81", "crc_crypto"), ("thunderxt83", "crc_crypto"),
    ("thunderx2t99", "v8_1a_crypto"), ("thunderx2t99p1", "v8_1a_crypto"),
    ("octeontx2", "v8_2a_crypto"), ("octeontx2t98", "v8_2a_crypto"),
    ("octeontx2t96", "v8_2a_crypto"), ("octeontx2f95", "v8_2a_crypto"),
    ("octeontx2f95n", "v8_2a_crypto"), ("octeontx2f95mm", "v8_2a_crypto"),
    ("a64fx", "a64fx"), ("tsv110", "tsv110"), ("phecda", "crc_crypto"),
    ("denver1", "generic"), ("denver2", "crc_crypto"), ("carmel", "carmel"),
    ("xgene1", "generic"), ("xgene2", "generic"), ("xgene3", "generic"),
    ("kyro", "crc_crypto"), ("falkor", "falkor"), ("saphira", "v8_4a_crypto"),
    ("exynos-m1", "crc_crypto"), ("exynos-m2", "crc_crypto"), ("exynos-m3", "crc_crypto"),
    ("exynos-m4", "exynos_m4"), ("exynos-m5", "exynos_m4"),
    ("apple-a7", "crc_crypto"), ("apple-a8", "crc_crypto"), ("apple-a9", "crc_crypto"),
    ("apple-a10", "apple_a10"), ("apple-a11", "apple_a11"), ("apple-a12", "apple_a12"),
    ("apple-a13", "apple_a13"), ("apple-a14", "apple_a14"), ("apple-m1", "apple_a14"),
    ("apple-s4", "apple_a12"), ("apple-s5", "apple_a12"), ("thunderx3t110", "v8_3a_crypto"),
)


def _with_apple(base: tuple[tuple[str, str], ...], after: dict[str, tuple[str, ...]]
                ) -> tuple[tuple[str, str], ...]:
    """``base`` with the named Apple CPUs inserted after the given entries (Julia's order)."""
    out: list[tuple[str, str]] = []
    for entry in base:
        out.append(entry)
        out.extend((name, "apple_a15") for name in after.get(entry[0], ()))
    return tuple(out)


# src/processor_arm.cpp cpus[] per release line: 1.11 adds apple-a15/a16/m2/m3, 1.12 a17/m4.
_ARM_CPUS: dict[str, tuple[tuple[str, str], ...]] = {
    "1.10": _ARM_CPUS_110,
    "1.11": _with_apple(_ARM_CPUS_110, {"apple-a14": ("apple-a15", "apple-a16"),
                                        "apple-m1": ("apple-m2", "apple-m3")}),
    "1.12": _with_apple(_ARM_CPUS_110, {"apple-a14": ("apple-a15", "apple-a16", "apple-a17"),
                                        "apple-m1": ("apple-m2", "apple-m3", "apple-m4")}),
}

# ``normalize_cpu_name`` (src/processor_x86.cpp, src/processor_arm.cpp): LLVM aliases.
_X86_ALIASES = {
    "atom": "bonnell", "slm": "silvermont", "glm": "goldmont", "corei7": "nehalem",
    "corei7-avx": "sandybridge", "core-avx-i": "ivybridge", "core-avx2": "haswell",
    "skx": "skylake-avx512", "x86-64": "generic", "x86_64": "generic",
}
_ARM_ALIASES = {
    "ares": "neoverse-n1", "zeus": "neoverse-v1", "cyclone": "apple-a7", "typhoon": "apple-a8",
    "twister": "apple-a9", "hurricane": "apple-a10",
}

# ``ensure_jit_target`` (src/processor_x86.cpp v1.10.x): a new feature of these groups relative
# to the base target sets CLONE_MATH / CLONE_SIMD / CLONE_FLOAT16.
_X86_CLONE_MATH = frozenset({"fma", "fma4"})
_X86_CLONE_SIMD = frozenset({
    "sse3", "ssse3", "sse4.1", "sse4.2", "avx", "avx2", "vaes", "vpclmulqdq", "sse4a", "avx512f",
    "avx512dq", "avx512ifma", "avx512pf", "avx512er", "avx512cd", "avx512bw", "avx512vl",
    "avx512vbmi", "avx512vpopcntdq", "avxvnni", "avx512vbmi2", "avx512vnni", "avx512bitalg",
    "avx512bf16", "avx512vp2intersect", "avx512fp16",
})
_X86_CLONE_FLOAT16 = frozenset({"avx512fp16"})
_ARM_CLONE_FLOAT16 = frozenset({"fp16fml", "fullfp16"})  # src/processor_arm.cpp


@cache()
def _cpus(arch: str, key: str) -> Mapping[str, frozenset[str]]:
    if arch == "x86_64":
        # a set may name features a release dropped (1.12: knl's avx512er/pf, prefetchwt1)
        known = feature_table(arch, key).all
        return {name: _X86_SETS[s] & known for name, s in _X86_CPUS[key]}
    return {name: _ARM_SETS[s] for name, s in _ARM_CPUS[key]}


def cpu_names(arch: str, julia_version: str) -> tuple[str, ...]:
    """The CPU names Julia knows for ``arch`` in that version, in Julia's table order."""
    return tuple(_cpus(arch, feature_table(arch, julia_version).version))


def normalize_cpu_name(name: str, arch: str) -> str:
    """Julia's ``normalize_cpu_name``: LLVM aliases -> Julia's table names."""
    return (_X86_ALIASES if arch == "x86_64" else _ARM_ALIASES).get(name, name)


def cpu_features(name: str, arch: str, julia_version: str) -> frozenset[str] | None:
    """The features Julia's table gives a CPU name (after normalisation), None if unknown."""
    table = feature_table(arch, julia_version)
    return _cpus(arch, table.version).get(normalize_cpu_name(name, arch))


# --- parsing ------------------------------------------------------------------------------

@record(kw_only=True)
class TargetSpec:
    """One target of a CPU target string, with the features Julia computes for it.

    ``flags`` are Julia's ``en.flags`` (JL_TARGET_*), ``dis_flags`` records ``-clone_all``;
    ``enabled``/``disabled`` are Julia feature names (``disabled`` is every other known
    feature when the CPU name is known, else only the explicit ``-feature``s); ``ext`` holds
    the features Julia does not know (passed to LLVM as written); ``base`` the base target.
    """

    name: str
    flags: int
    enabled: frozenset[str]
    disabled: frozenset[str]
    ext: str = ""
    base: int = 0
    dis_flags: int = 0

    @property
    def known_name(self) -> bool:
        return not self.flags & UNKNOWN_NAME


@record(frozen=False)
class _Arg:
    """One target while parsing: processor.cpp ``TargetData`` before ``arg_target_data``."""

    name: str = ""
    en: set[str] = field(default_factory=set)
    dis: set[str] = field(default_factory=set)
    ext: list[str] = field(default_factory=list)
    flags: int = 0
    dis_flags: int = 0
    base: int = 0


def _clone_base(token: str) -> int:
    """processor.cpp ``get_clone_base``: 1-based index for ``base(<digits>)``, else 0."""
    if len(token) <= 5 or not token.startswith("base(") or not "0" <= token[5] <= "9":
        return 0
    end = 5
    while end < len(token) and "0" <= token[end] <= "9":  # strtol's digit run
        end += 1
    if end + 1 != len(token) or token[end] != ")":
        return 0
    idx = min(int(token[5:end]), 2**63 - 1)  # strtol saturates at LONG_MAX
    val = (idx + 1) & 0xFFFFFFFF  # ``(int)idx + 1`` in C: 32-bit signed wrap-around
    return val - 2**32 if val >= 2**31 else val


def _julia_error(text: str, message: str) -> UsageError:
    return UsageError(f"invalid CPU target {text!r}: {message}")


def _parse(text: str, table: FeatureTable) -> list[_Arg]:
    """processor.cpp ``parse_cmdline``: split into targets, flags, known and ext features."""
    text = text.split("\0", 1)[0]  # a C string ends at NUL
    res: list[_Arg] = []
    arg = _Arg()
    start = 0
    for p in range(len(text) + 1):
        c = text[p] if p < len(text) else "\0"
        if c not in ",;\0":
            continue
        done = c == "\0"
        next_target = c == ";" or done
        if not arg.name:
            if p == start:
                raise _julia_error(text, "Invalid target option: empty CPU name")
            arg.name = text[start:p]
            if arg.name == "help":  # Julia prints its help and uses the host
                arg.name = "native"
        else:
            _feature(text, text[start:p], arg, res, table)
        start = p + 1
        if next_target:
            res.append(arg)
            arg = _Arg()
    return res


def _feature(text: str, full: str, arg: _Arg, res: list[_Arg], table: FeatureTable) -> None:
    disable = full.startswith("-")
    fname = full[1:] if full[:1] in ("-", "+") else full
    if fname == "clone_all":
        if disable:
            arg.dis_flags |= CLONE_ALL
            arg.flags &= ~CLONE_ALL
        else:
            arg.flags |= CLONE_ALL
            arg.dis_flags &= ~CLONE_ALL
    elif fname in ("opt_size", "min_size"):
        if disable:
            raise _julia_error(text, f"Invalid target option: disabled {fname}.")
        other = MINSIZE if fname == "opt_size" else OPTSIZE
        if arg.flags & other:
            raise _julia_error(
                text, "Conflicting target option: both opt_size and min_size are specified.")
        arg.flags |= OPTSIZE if fname == "opt_size" else MINSIZE
    elif base := _clone_base(fname):
        if disable:
            raise _julia_error(text, "Invalid target option: disabled base index.")
        base -= 1
        # a negative index (32-bit wrap-around) is undefined behaviour in Julia; refuse it
        if base >= len(res) or base < 0:
            raise _julia_error(
                text, "Invalid target option: base index must refer to a previous target.")
        if res[base].dis_flags & CLONE_ALL or not res[base].flags & CLONE_ALL:
            raise _julia_error(text, "Invalid target option: base target must be clone_all.")
        arg.base = base
    elif fname == "help":
        pass  # Julia prints the list of CPU names and features
    elif table.arch == "aarch64" and fname == "crypto":
        # processor_arm.cpp: "treat `crypto` as an alias of aes + sha2 just like LLVM"
        (arg.dis if disable else arg.en).update(("aes", "sha2"))
    elif table.known(fname):
        (arg.dis if disable else arg.en).add(fname)
    else:
        arg.ext.append(("-" if disable else "+") + fname)


def _resolve(arg: _Arg, table: FeatureTable, host: tuple[frozenset[str], str] | None,
             require_host: bool) -> TargetSpec:
    """``arg_target_data``: the CPU's table features + explicit ones, closures, masking."""
    name = normalize_cpu_name(arg.name, table.arch)
    flags = arg.flags
    base_feats: frozenset[str] | None
    if name == "native" and host is not None:
        base_feats, name = host[0] & table.all, host[1]
    else:
        base_feats = _cpus(table.arch, table.version).get(name)
        if base_feats is None and name != "native":
            flags |= UNKNOWN_NAME
    en = table.enable_depends((base_feats or frozenset()) | arg.en)
    if table.arch == "x86_64":
        en -= LLVM_UNUSED_FEATURES
    en -= arg.dis
    if require_host and host is not None:
        en &= host[0]
    en = table.disable_depends(en)
    dis = table.all - en if base_feats is not None else frozenset(arg.dis)
    return TargetSpec(name=name, flags=flags, enabled=en, disabled=dis, ext=",".join(arg.ext),
                      base=arg.base, dis_flags=arg.dis_flags)


def _clone_flags(specs: list[TargetSpec], arch: str) -> list[TargetSpec]:
    """``ensure_jit_target``: targets after the first that are not clone_all get CLONE_CPU,
    CLONE_LOOP and CLONE_MATH/SIMD/FLOAT16 for features new relative to their base."""
    out = list(specs)
    for i in range(1, len(out)):
        t = out[i]
        if t.flags & CLONE_ALL:
            continue
        flags = t.flags | CLONE_CPU | CLONE_LOOP
        base = out[t.base]
        new = t.enabled - base.enabled
        if arch == "x86_64":
            # "Special case for KNL/KNM since they're so different"; Julia's `break` there
            # leaves the flags of every later target uncomputed.
            if not t.dis_flags & CLONE_ALL and t.name in ("knl", "knm") \
                    and base.name not in ("knl", "knm"):
                out[i] = replace(t, flags=flags | CLONE_ALL)
                break
            if new & _X86_CLONE_MATH:
                flags |= CLONE_MATH
            if new & _X86_CLONE_SIMD:
                flags |= CLONE_SIMD
            if new & _X86_CLONE_FLOAT16:
                flags |= CLONE_FLOAT16
        elif new & _ARM_CLONE_FLOAT16:
            flags |= CLONE_FLOAT16
        out[i] = replace(t, flags=flags)
    return out


def parse_cpu_target(text: str, arch: str, julia_version: str) -> tuple[TargetSpec, ...]:
    """Parse a ``JULIA_CPU_TARGET`` string as Julia would when building an image.

    Invalid strings raise UsageError carrying Julia's own message. ``native`` keeps only
    its explicit features (the build host is not known here; see ``jit_target``).
    """
    if not isinstance(text, str):
        raise UsageError(f"CPU target must be a string, got {type(text).__name__}")
    table = feature_table(arch, julia_version)
    specs = [_resolve(a, table, None, False) for a in _parse(text, table)]
    return tuple(_clone_flags(specs, arch))


def jit_target(host_features: Iterable[str], host_cpu: str, arch: str, julia_version: str,
               cpu_target: str = "native") -> TargetSpec:
    """The JIT target Julia starts with on a host (``-C``, default ``native``): the first
    target of ``cpu_target`` resolved against the host (``arg_target_data(.., true)``).
    ``host_features`` are Julia feature names after host masking."""
    table = feature_table(arch, julia_version)
    host = (frozenset(host_features), normalize_cpu_name(host_cpu, arch))
    return _resolve(_parse(cpu_target, table)[0], table, host, True)


def format_cpu_target(specs: Iterable[TargetSpec]) -> str:
    """A CPU target string that parses back to ``specs`` (features spelled out)."""
    parts = []
    for i, t in enumerate(specs):
        toks = [t.name]
        toks += [f"+{f}" for f in sorted(t.enabled)]
        toks += [f"-{f}" for f in sorted(t.disabled)]
        if t.ext:
            toks += t.ext.split(",")
        # an explicit clone_all skips ensure_jit_target's flags; the KNL rule's does not
        if t.flags & CLONE_ALL and not t.flags & CLONE_CPU:
            toks.append("clone_all")
        if t.dis_flags & CLONE_ALL:
            toks.append("-clone_all")
        if t.flags & OPTSIZE:
            toks.append("opt_size")
        if t.flags & MINSIZE:
            toks.append("min_size")
        if i and t.base:
            toks.append(f"base({t.base})")
        parts.append(",".join(toks))
    return ";".join(parts)


def to_image_target(spec: TargetSpec, arch: str, julia_version: str, *,
                    vec_call: bool = False) -> ImageTarget:
    """The record Julia stores for this target in an image (``serialize_target_data`` with
    the stored flags). Julia also intersects the *first* target with the build host's
    features; for ``generic`` that changes nothing on any x86-64/aarch64 build machine."""
    table = feature_table(arch, julia_version)
    return ImageTarget(flags=(spec.flags & UNKNOWN_NAME) | (VEC_CALL if vec_call else 0),
                       en_words=table.words(spec.enabled), dis_words=table.words(spec.disabled),
                       name=spec.name, ext=spec.ext)


# --- recommendations and lint -------------------------------------------------------------

# archspec microarchitecture name -> Julia CPU names to try, best first (a later entry is the
# fallback when the Julia version lacks the earlier one).
_MICROARCH_TO_JULIA: dict[str, dict[str, tuple[str, ...]]] = {"x86_64": {
    # archspec microarchitectures.json names
    "x86_64": ("generic",), "x86_64_v2": ("nehalem",), "x86_64_v3": ("haswell",),
    "x86_64_v4": ("skylake-avx512",), "nocona": ("nocona",), "core2": ("core2",),
    "nehalem": ("nehalem",), "westmere": ("westmere",), "sandybridge": ("sandybridge",),
    "ivybridge": ("ivybridge",), "haswell": ("haswell",), "broadwell": ("broadwell",),
    "skylake": ("skylake",), "mic_knl": ("knl",), "skylake_avx512": ("skylake-avx512",),
    "cannonlake": ("cannonlake",), "cascadelake": ("cascadelake",),
    "icelake": ("icelake-client",), "sapphirerapids": ("sapphirerapids",),
    "alderlake": ("alderlake",), "arrowlake": ("alderlake",), "arrowlake_s": ("alderlake",),
    "k10": ("amdfam10",), "bulldozer": ("bdver1",), "piledriver": ("bdver2",),
    "steamroller": ("bdver3",), "excavator": ("bdver4",),
    "zen": ("znver1",), "zen2": ("znver2",), "zen3": ("znver3",),
    "zen4": ("znver4", "znver3"), "zen5": ("znver5", "znver4", "znver3"),
    "zen6": ("znver5", "znver4", "znver3"),
}, "aarch64": {
    # newer cores map to the newest Julia CPU whose features they all have
    "aarch64": ("generic",), "armv8.1a": ("armv8.1-a",), "armv8.2a": ("armv8.2-a",),
    "armv8.3a": ("armv8.3_a",), "armv8.4a": ("armv8.4-a",), "armv8.5a": ("armv8.5-a",),
    "armv8.6a": ("armv8.6_a",), "armv9.0a": ("armv8.5-a",), "armv9.2a": ("armv8.6_a",),
    "thunderx2": ("thunderx2t99",), "a64fx": ("a64fx",), "cortex_a72": ("cortex-a72",),
    "neoverse_n1": ("neoverse-n1",), "neoverse_v1": ("neoverse-v1",),
    "neoverse_n2": ("neoverse-n2",), "neoverse_v2": ("neoverse-v1",),
    "neoverse_v3ae": ("neoverse-v1",), "olympus": ("neoverse-v1",),
    "ampere1": ("armv8.6_a",), "ampere1a": ("armv8.6_a",),
    "m1": ("apple-m1",), "m2": ("apple-m1",), "m3": ("apple-m1",), "m4": ("apple-m1",),
}}


def julia_cpu_for_microarch(microarch: str, arch: str, julia_version: str) -> tuple[str, str]:
    """Julia's CPU name for an archspec microarchitecture: (name, note); ``note`` is empty
    unless a fallback was needed. Unknown microarchitectures raise UsageError."""
    table = feature_table(arch, julia_version)
    mapping = _MICROARCH_TO_JULIA[arch]
    candidates = mapping.get(microarch)
    if candidates is None:
        raise UsageError(f"no Julia CPU name known for {arch} microarchitecture {microarch!r} "
                         f"(known: {', '.join(sorted(mapping))})")
    known = _cpus(arch, table.version)
    for i, name in enumerate(candidates):
        if name in known:
            note = "" if i == 0 else (
                f"{microarch}: Julia {julia_version} does not know {candidates[0]!r}; "
                f"using {name!r} instead")
            return name, note
    raise UsageError(f"Julia {table.version} knows none of {', '.join(candidates)} "
                     f"for microarchitecture {microarch!r}")


def vector_size(enabled: Iterable[str], arch: str) -> int:
    """``max_vector_size``: x86 avx512f 64, avx 32, else 16; aarch64 sve2 256, sve 128, else 16
    (src/processor_x86.cpp, src/processor_arm.cpp)."""
    s = frozenset(enabled)
    if arch == "x86_64":
        return 64 if "avx512f" in s else 32 if "avx" in s else 16
    return 256 if "sve2" in s else 128 if "sve" in s else 16


# archspec names that are ISA levels, not CPU models: no host is *named* after them.
_LEVELS = frozenset({"x86_64_v2", "x86_64_v3", "x86_64_v4", "armv8.1a", "armv8.2a", "armv8.3a",
                     "armv8.4a", "armv8.5a", "armv8.6a", "armv9.0a", "armv9.2a"})


def lint_cpu_target(text: str, arch: str, julia_version: str) -> list[str]:
    """Warnings about a CPU target string Julia accepts but that does not do what it says:
    targets Julia does not know (they carry only their explicit features), features Julia
    does not know, ``native``, a non-generic first target, duplicate targets."""
    specs = parse_cpu_target(text, arch, julia_version)
    key = feature_table(arch, julia_version).version
    out: list[str] = []
    seen: dict[tuple[object, ...], int] = {}
    for i, t in enumerate(specs):
        where = f"target {i} ({t.name})"
        if t.name == "native":
            out.append(f"{where}: 'native' is the build machine's CPU; the image is not portable")
        elif t.name == SYSIMAGE_KEYWORD:
            out.append(f"{where}: {SYSIMAGE_KEYWORD!r} stands for the running sysimage's own target "
                       f"string only from Julia 1.13 (JuliaLang/julia#58970, as the first name); "
                       f"Julia {key} takes it as an unknown CPU name with no features")
        elif not t.known_name:
            feats = ", ".join(sorted(t.enabled)) or "none"
            out.append(f"{where}: Julia {key} does not know CPU {t.name!r}; the clone records "
                       f"only its explicit features ({feats}), so Julia cannot check that a "
                       f"host supports the code LLVM generates for it")
        if t.ext:
            out.append(f"{where}: features unknown to Julia {key}, passed to LLVM unchecked: "
                       f"{t.ext}")
        sig = (t.name, t.enabled, t.ext)
        if sig in seen:
            out.append(f"{where}: same CPU and features as target {seen[sig]}; Julia picks the "
                       f"later one on a tie, the earlier one is dead weight")
        seen.setdefault(sig, i)
    if specs and specs[0].name != "generic" and specs[0].name != "native":
        out.append(f"target 0 ({specs[0].name}) is the fallback clone: hosts lacking its "
                   f"features cannot load the image; official strings start with 'generic'")
    return out


def multi_target_pkgimages(julia_version: str) -> bool:
    """Pkgimages carry every target of JULIA_CPU_TARGET from 1.10.11 and 1.11.2 on; before,
    only the first (the worker's JIT target) (julia-formats.md)."""
    parts = [int(p) for p in julia_version.split("-", 1)[0].split(".")[:3]] + [0, 0]
    major_minor, patch = (parts[0], parts[1]), parts[2]
    return (major_minor >= (1, 12) or (major_minor == (1, 11) and patch >= 2)
            or (major_minor == (1, 10) and patch >= 11))
