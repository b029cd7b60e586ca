"""Julia's CPU feature numbering: feature name <-> bit, per architecture and Julia version.

A Julia feature bit is ``32 * word + bit``; the words are CPUID registers on x86_64 and
HWCAP words on aarch64 (src/processor.h, ``FeatureList``). Images store them as arrays of
u32 (``nfeature`` words). Sources: src/features_x86.h and src/features_aarch64.h (the
``JL_FEATURE_DEF`` tables), the word layout and host masking in src/processor_x86.cpp
(``_get_host_cpu``), the dependency lists ``Feature::deps`` in src/processor_x86.cpp and
src/processor_arm.cpp, and the fixpoint closures ``enable_depends``/``disable_depends`` in
src/processor.cpp (read at the 1.10 line; 1.12 changes noted where they apply).
"""
from __future__ import annotations

from depotdelivery._memo import cache

TYPE_CHECKING = False  # no `typing` on a job's path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Iterable
from depotdelivery._record import field, record
from depotdelivery.errors import UsageError

__all__ = [
    "AMX_STATE_FEATURES",
    "ARCHES",
    "AVX512_STATE_FEATURES",
    "AVX_STATE_FEATURES",
    "LLVM_UNUSED_FEATURES",
    "TABLE_VERSIONS",
    "X86_WORD_SOURCES",
    "XCR0_AMX_STATE",
    "XCR0_AVX512_STATE",
    "XCR0_AVX_STATE",
    "FeatureTable",
    "feature_table",
    "version_key",
]

ARCHES = ("x86_64", "aarch64")
# The Julia release lines whose tables we carry; other 1.x versions map to the nearest.
TABLE_VERSIONS = ("1.10", "1.11", "1.12")
_OLDEST_MINOR = 9  # 1.9 uses the 1.10 numbering (same features_*.h words); older is refused

# --- x86_64 -------------------------------------------------------------------------------

# src/features_x86.h (v1.10.x, identical in v1.11.x): JL_FEATURE_DEF(name, bit, llvmver).
_X86_FEATURES_110: tuple[tuple[str, int], ...] = (
    # word 0: CPUID(1).ECX
    ("sse3", 0), ("pclmul", 1), ("ssse3", 9), ("fma", 12), ("cx16", 13), ("sse4.1", 19),
    ("sse4.2", 20), ("movbe", 22), ("popcnt", 23), ("aes", 25), ("xsave", 26), ("avx", 28),
    ("f16c", 29), ("rdrnd", 30),
    # word 1: CPUID(1).EDX -- no Julia features
    # word 2: CPUID(7,0).EBX
    ("fsgsbase", 64), ("bmi", 67), ("avx2", 69), ("bmi2", 72), ("rtm", 75), ("avx512f", 80),
    ("avx512dq", 81), ("rdseed", 82), ("adx", 83), ("avx512ifma", 85), ("clflushopt", 87),
    ("clwb", 88), ("avx512pf", 90), ("avx512er", 91), ("avx512cd", 92), ("sha", 93),
    ("avx512bw", 94), ("avx512vl", 95),
    # word 3: CPUID(7,0).ECX
    ("prefetchwt1", 96), ("avx512vbmi", 97), ("pku", 100), ("waitpkg", 101),
    ("avx512vbmi2", 102), ("shstk", 103), ("gfni", 104), ("vaes", 105), ("vpclmulqdq", 106),
    ("avx512vnni", 107), ("avx512bitalg", 108), ("avx512vpopcntdq", 110), ("rdpid", 118),
    ("cldemote", 121), ("movdiri", 123), ("movdir64b", 124), ("enqcmd", 125),
    # word 4: CPUID(7,0).EDX
    ("uintr", 133), ("avx512vp2intersect", 136), ("serialize", 142), ("tsxldtrk", 144),
    ("pconfig", 146), ("amx-bf16", 150), ("avx512fp16", 151), ("amx-tile", 152),
    ("amx-int8", 153),
    # word 5: CPUID(0x80000001).ECX
    ("sahf", 160), ("lzcnt", 165), ("sse4a", 166), ("prfchw", 168), ("xop", 171),
    ("lwp", 175), ("fma4", 176), ("tbm", 181), ("mwaitx", 189),
    # word 6: CPUID(0x80000001).EDX -- no Julia features
    # word 7: CPUID(0xD,1).EAX
    ("xsaveopt", 224), ("xsavec", 225), ("xsaves", 227),
    # word 8: CPUID(0x80000008).EBX
    ("clzero", 256), ("wbnoinvd", 265),
    # word 9: CPUID(7,1).EAX
    ("avxvnni", 292), ("avx512bf16", 293),
    # word 10: CPUID(0x14,0).EBX
    ("ptwrite", 324),
)

# src/features_x86.h (v1.12.x, release-1.12 = 1.12.5; the release-1.13 branch point has the
# same header): avx512pf, avx512er and prefetchwt1 are gone ("Deprecated in LLVM 19"), word 9
# gains the CPUID(7,1).EAX features, a new word 10 "EAX=7,ECX=1: EBX" holds avxvnniint8 ..
# prefetchi (processor_x86.cpp reads CPUID(7,1).EBX into it), and ptwrite moves to word 11.
_X86_DROPPED_112 = frozenset({"avx512pf", "avx512er", "prefetchwt1", "ptwrite"})
_X86_FEATURES_112: tuple[tuple[str, int], ...] = tuple(
    f for f in _X86_FEATURES_110 if f[0] not in _X86_DROPPED_112
) + (
    # word 9: CPUID(7,1).EAX
    ("sha512", 288), ("sm3", 289), ("sm4", 290), ("raoint", 291), ("cmpccxadd", 295),
    ("amx-fp16", 309), ("hreset", 310), ("avxifma", 311),
    # word 10: CPUID(7,1).EBX
    ("avxvnniint8", 324), ("avxneconvert", 325), ("amx-complex", 328), ("avxvnniint16", 330),
    ("prefetchi", 334), ("usermsr", 335),
    # word 11: CPUID(0x14,0).EBX
    ("ptwrite", 356),
)

# src/processor_x86.cpp ``_get_host_cpu``: which CPUID (leaf, subleaf, register) fills each
# feature word. v1.10/v1.11: 11 words; v1.12: 12 words.
_X86_WORDS_COMMON: tuple[tuple[int, int, str], ...] = (
    (0x1, 0, "ecx"), (0x1, 0, "edx"), (0x7, 0, "ebx"), (0x7, 0, "ecx"), (0x7, 0, "edx"),
    (0x80000001, 0, "ecx"), (0x80000001, 0, "edx"), (0xD, 1, "eax"), (0x80000008, 0, "ebx"),
    (0x7, 1, "eax"),
)
X86_WORD_SOURCES: dict[str, tuple[tuple[int, int, str], ...]] = {
    "1.10": _X86_WORDS_COMMON + ((0x14, 0, "ebx"),),
    "1.11": _X86_WORDS_COMMON + ((0x14, 0, "ebx"),),
    # v1.12 reads CPUID(7,1).EBX into word 10, as features_x86.h labels it ("EAX=7,ECX=1: EBX";
# prefetchi, which the hardware reports in EDX, is read from EBX bit 14 there).
    "1.12": _X86_WORDS_COMMON + ((0x7, 1, "ebx"), (0x14, 0, "ebx")),
}

# src/processor_x86.cpp ``Feature::deps`` (v1.10.x; unchanged through v1.12 as far as read):
# (feature, what it needs).
_X86_DEPS: tuple[tuple[str, str], ...] = (
    ("ssse3", "sse3"), ("fma", "avx"), ("sse4.1", "ssse3"), ("sse4.2", "sse4.1"),
    ("avx", "sse4.2"), ("f16c", "avx"), ("avx2", "avx"), ("vaes", "avx"), ("vaes", "aes"),
    ("vpclmulqdq", "avx"), ("vpclmulqdq", "pclmul"), ("avxvnni", "avx2"),
    ("avx512f", "avx2"), ("avx512dq", "avx512f"), ("avx512ifma", "avx512f"),
    ("avx512pf", "avx512f"), ("avx512er", "avx512f"), ("avx512cd", "avx512f"),
    ("avx512bw", "avx512f"), ("avx512bf16", "avx512bw"), ("avx512bitalg", "avx512bw"),
    ("avx512vl", "avx512f"), ("avx512vbmi", "avx512bw"), ("avx512vbmi2", "avx512bw"),
    ("avx512vnni", "avx512f"), ("avx512vp2intersect", "avx512f"),
    ("avx512vpopcntdq", "avx512f"), ("avx512fp16", "avx512bw"), ("avx512fp16", "avx512dq"),
    ("avx512fp16", "avx512vl"), ("amx-int8", "amx-tile"), ("amx-bf16", "amx-tile"),
    ("sse4a", "sse3"), ("xop", "fma4"), ("fma4", "avx"), ("fma4", "sse4a"),
    ("xsaveopt", "xsave"), ("xsavec", "xsave"), ("xsaves", "xsave"),
)

# v1.12 ``Feature::deps``: the avx512pf/avx512er entries go, the new features' come in.
_X86_DEPS_112: tuple[tuple[str, str], ...] = tuple(
    d for d in _X86_DEPS if d[0] not in _X86_DROPPED_112
) + (
    ("avxvnniint8", "avx2"), ("avxvnniint16", "avx2"), ("avxifma", "avx2"),
    ("avxneconvert", "avx2"), ("amx-fp16", "amx-tile"), ("amx-complex", "amx-tile"),
    ("sha512", "avx2"), ("sm3", "avx"), ("sm4", "avx2"),
)

# Host masking, src/processor_x86.cpp ``_get_host_cpu``: OSXSAVE is CPUID(1).ECX bit 27;
# AVX state needs (XCR0 & 0x6) == 0x6, AVX-512 state (XCR0 & 0xE0) == 0xE0 (not Darwin),
# AMX state XCR0 bits 17 and 18.
XCR0_AVX_STATE = 0x6
XCR0_AVX512_STATE = 0xE0
XCR0_AMX_STATE = (1 << 17) | (1 << 18)
# ``features_disable_avx`` (processor_x86.cpp): cleared when the OS does not save AVX state.
AVX_STATE_FEATURES: frozenset[str] = frozenset({
    "avx", "fma", "f16c", "xsave", "avx2", "xop", "fma4", "xsaveopt", "xsavec", "xsaves",
    "vaes", "vpclmulqdq",
})
# ``features_disable_avx512`` (processor_x86.cpp): cleared without the AVX-512 XCR0 state.
# avx512fp16 is not listed there; ``disable_depends`` removes it with avx512bw/dq/vl.
AVX512_STATE_FEATURES: frozenset[str] = frozenset({
    "avx512f", "avx512dq", "avx512ifma", "avx512pf", "avx512er", "avx512cd", "avx512bw",
    "avx512vl", "avx512vbmi", "avx512vpopcntdq", "avx512vbmi2", "avx512vnni", "avx512bitalg",
    "avx512vp2intersect", "avx512bf16",
})
# ``features_disable_amx`` (processor_x86.cpp): cleared without the AMX XCR0 state.
AMX_STATE_FEATURES: frozenset[str] = frozenset({"amx-bf16", "amx-tile", "amx-int8"})
# ``arg_target_data`` (processor_x86.cpp): "Mask our rdrand/rdseed/rtm/xsaveopt features that
# LLVM doesn't use and rr disables" -- cleared from every target, the host's included.
LLVM_UNUSED_FEATURES: frozenset[str] = frozenset({"rdrnd", "rdseed", "rtm", "xsaveopt"})

# --- aarch64 ------------------------------------------------------------------------------

# src/features_aarch64.h (same words v1.10-v1.12): word 0 AT_HWCAP, word 1 AT_HWCAP2,
# word 2 Julia's own architecture-version bits (set from a recognised MIDR only).
_AARCH64_FEATURES: tuple[tuple[str, int], ...] = (
    ("aes", 4), ("sha2", 6), ("crc", 7), ("lse", 8), ("fullfp16", 9), ("rdm", 12),
    ("jsconv", 13), ("complxnum", 14), ("rcpc", 15), ("ccpp", 16), ("sha3", 17), ("sm4", 19),
    ("dotprod", 20), ("sve", 22), ("fp16fml", 23), ("dit", 24), ("rcpc-immo", 26),
    ("flagm", 27), ("ssbs", 28), ("sb", 29), ("pauth", 30),
    ("ccdp", 32), ("sve2", 33), ("sve2-aes", 35), ("sve2-bitperm", 36), ("sve2-sha3", 37),
    ("sve2-sm4", 38), ("altnzcv", 39), ("fptoint", 40), ("f32mm", 42), ("f64mm", 43),
    ("i8mm", 45), ("bf16", 46), ("rand", 48), ("bti", 49), ("mte", 50),
    ("v8_1a", 64), ("v8_2a", 65), ("v8_3a", 66), ("v8_4a", 67), ("v8_5a", 68), ("v8_6a", 69),
)

# src/processor_arm.cpp ``Feature::deps`` (AArch64 part, v1.10.x): "does not cover all
# dependencies (e.g. the ones that depends on arm versions)" -- those are _AARCH64_IMPLIES.
_AARCH64_DEPS: tuple[tuple[str, str], ...] = (
    ("rcpc-immo", "rcpc"), ("sha3", "sha2"), ("ccdp", "ccpp"), ("sve", "fullfp16"),
    ("fp16fml", "fullfp16"), ("altnzcv", "flagm"), ("sve2", "sve"), ("sve2-aes", "sve2"),
    ("sve2-aes", "aes"), ("sve2-bitperm", "sve2"), ("sve2-sha3", "sve2"),
    ("sve2-sha3", "sha3"), ("sve2-sm4", "sve2"), ("sve2-sm4", "sm4"), ("f32mm", "sve"),
    ("f64mm", "sve"),
)
# src/processor_arm.cpp ``enable_depends`` (AArch64): one pass, newest version first, before
# the ``deps`` closure. Unlike ``deps`` these are not undone by ``disable_depends``.
_AARCH64_IMPLIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("v8_6a", ("v8_5a",)), ("v8_5a", ("v8_4a",)), ("v8_4a", ("v8_3a",)),
    ("v8_3a", ("v8_2a",)), ("v8_2a", ("v8_1a",)), ("v8_1a", ("crc",)),
    ("v8_1a", ("lse", "rdm")), ("v8_2a", ("ccpp",)), ("v8_3a", ("jsconv", "complxnum", "rcpc")),
    ("v8_4a", ("dit", "rcpc-immo", "flagm")), ("v8_5a", ("sb", "ccdp", "altnzcv", "fptoint")),
    ("v8_6a", ("i8mm", "bf16")),
)


@record
class FeatureTable:
    """Julia's feature numbering for one architecture and one Julia release line."""

    arch: str
    version: str  # table key: "1.10" | "1.11" | "1.12"
    nwords: int
    features: tuple[tuple[str, int], ...]  # (name, bit) in features_*.h order
    deps: tuple[tuple[str, str], ...]  # (feature, required feature), Feature::deps
    implies: tuple[tuple[str, tuple[str, ...]], ...] = ()  # one-pass rules applied first
    _by_name: dict[str, int] = field(init=False, repr=False, compare=False)
    _by_bit: dict[int, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", dict(self.features))
        object.__setattr__(self, "_by_bit", {bit: name for name, bit in self.features})

    @property
    def all(self) -> frozenset[str]:
        """Every feature name Julia knows here (``feature_masks``)."""
        return frozenset(self._by_name)

    def known(self, name: str) -> bool:
        return name in self._by_name

    def bit(self, name: str) -> int:
        try:
            return self._by_name[name]
        except KeyError:
            raise UsageError(
                f"unknown {self.arch} CPU feature {name!r} for Julia {self.version}"
            ) from None

    def name(self, bit: int) -> str:
        try:
            return self._by_bit[bit]
        except KeyError:
            raise UsageError(
                f"bit {bit} is not a {self.arch} CPU feature in Julia {self.version}"
            ) from None

    def names(self, words: Iterable[int]) -> frozenset[str]:
        """Names of the known features set in ``words``; bits Julia does not define are
        ignored (``unknown_bits`` lists them)."""
        return frozenset(self._by_bit[b] for b in _set_bits(words) if b in self._by_bit)

    def unknown_bits(self, words: Iterable[int]) -> tuple[int, ...]:
        """Set bits that are not features of this table (e.g. an image from a newer Julia)."""
        return tuple(b for b in _set_bits(words) if b not in self._by_bit)

    def words(self, names: Iterable[str]) -> tuple[int, ...]:
        out = [0] * self.nwords
        for name in names:
            b = self.bit(name)
            out[b >> 5] |= 1 << (b & 31)
        return tuple(out)

    def enable_depends(self, names: Iterable[str]) -> frozenset[str]:
        """Add every feature an enabled feature needs: the one-pass ``implies`` rules, then
        ``deps`` to a fixpoint (processor.cpp / processor_arm.cpp ``enable_depends``)."""
        out = set(names)
        for feat, implied in self.implies:
            if feat in out:
                out.update(implied)
        changed = True
        while changed:
            changed = False
            for feat, dep in self.deps:
                if feat in out and dep not in out:
                    out.add(dep)
                    changed = True
        return frozenset(out)

    def disable_depends(self, names: Iterable[str]) -> frozenset[str]:
        """Drop every feature whose requirement is missing, to a fixpoint (processor.cpp
        ``disable_depends``)."""
        out = set(names)
        changed = True
        while changed:
            changed = False
            for feat, dep in self.deps:
                if feat in out and dep not in out:
                    out.discard(feat)
                    changed = True
        return frozenset(out)


def _set_bits(words: Iterable[int]) -> Iterable[int]:
    for i, w in enumerate(words):
        w &= 0xFFFFFFFF
        while w:
            low = w & -w
            yield 32 * i + low.bit_length() - 1
            w ^= low


_SUFFIX = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-+")


def parse_version(text: str) -> tuple[int, int] | None:
    """(major, minor) of ``v?MAJOR.MINOR[.PATCH][-+SUFFIX]`` (the regular expression
    ``v?(\\d+)\\.(\\d+)(?:\\.\\d+)?(?:[-+][0-9A-Za-z.\\-+]*)?``, ``\\d`` any Unicode decimal digit as
    ``re`` reads it; tests/julia/test_features.py checks the two agree), None otherwise."""
    body = text.removeprefix("v")
    cut = min((i for i in (body.find("-"), body.find("+")) if i >= 0), default=len(body))
    parts = body[:cut].split(".")
    if not 2 <= len(parts) <= 3 or not all(p.isdecimal() for p in parts) or not _SUFFIX.issuperset(body[cut + 1:]):
        return None
    return int(parts[0]), int(parts[1])


def version_key(julia_version: str) -> str:
    """Map a Julia version ("1.10", "1.10.5", "v1.11.1", "1.12.0-rc1") to the table key.

    1.9 uses the 1.10 numbering. Newer versions are refused: Julia 1.13 (released; its tree
    at the release-1.13 branch point read) changes what depotdelivery models -- it ships LLVM
    20.1.8 (other host CPU names), stores the sysimage's CPU target string in the image
    pointer table (``jl_image_pointers_t.cpu_target_string``, JuliaLang/julia#58970) and has
    a new cache-file layout -- none of which is carried, so guessing would be wrong.
    """
    parsed = parse_version(julia_version.strip()) if isinstance(julia_version, str) else None
    if parsed is None:
        raise UsageError(f"not a Julia version: {julia_version!r} (expected e.g. 1.11 or 1.10.5)")
    major, minor = parsed
    if major != 1:
        raise UsageError(f"Julia {julia_version} is not supported (only Julia 1.x is known)")
    if minor < _OLDEST_MINOR:
        raise UsageError(f"Julia {julia_version} is too old: depotdelivery supports Julia >= 1.9")
    keys = [int(k.split(".")[1]) for k in TABLE_VERSIONS]
    if minor > max(keys):
        raise UsageError(
            f"Julia {julia_version} is not supported yet: depotdelivery models Julia 1.9-"
            f"{TABLE_VERSIONS[-1]} (1.13 ships LLVM 20, a new sysimage pointer table and cache "
            "layout whose CPU names and formats are not carried); use a Julia <= "
            f"{TABLE_VERSIONS[-1]} or a depotdelivery that supports {major}.{minor}")
    nearest = min(keys, key=lambda k: (abs(k - minor), -k))
    return f"1.{nearest}"


@cache()
def _table(arch: str, key: str) -> FeatureTable:
    if arch == "x86_64":
        v112 = key == "1.12"
        return FeatureTable(arch=arch, version=key, nwords=len(X86_WORD_SOURCES[key]),
                            features=_X86_FEATURES_112 if v112 else _X86_FEATURES_110,
                            deps=_X86_DEPS_112 if v112 else _X86_DEPS)
    return FeatureTable(arch=arch, version=key, nwords=3, features=_AARCH64_FEATURES,
                        deps=_AARCH64_DEPS, implies=_AARCH64_IMPLIES)


def feature_table(arch: str, julia_version: str) -> FeatureTable:
    """Julia's feature table for ``arch`` ("x86_64" | "aarch64") and a Julia version."""
    if arch not in ARCHES:
        raise UsageError(f"unsupported architecture {arch!r} (known: {', '.join(ARCHES)})")
    return _table(arch, version_key(julia_version))
