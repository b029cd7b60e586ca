"""Julia's feature numbering: bits from julia-formats.md, version differences, closures."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depotdelivery.errors import UsageError
from depotdelivery.julia.features import (
    AVX512_STATE_FEATURES,
    AVX_STATE_FEATURES,
    LLVM_UNUSED_FEATURES,
    TABLE_VERSIONS,
    X86_WORD_SOURCES,
    feature_table,
    version_key,
)

# julia-formats.md "CPU features in Julia's numbering" (x86, 1.10/1.11 numbering).
X86_DOC_BITS = {
    "sse3": 0, "pclmul": 1, "ssse3": 9, "fma": 12, "cx16": 13, "sse4.1": 19, "sse4.2": 20,
    "movbe": 22, "popcnt": 23, "aes": 25, "xsave": 26, "avx": 28, "f16c": 29, "rdrnd": 30,
    "bmi": 67, "avx2": 69, "bmi2": 72, "avx512f": 80, "avx512dq": 81, "avx512ifma": 85,
    "avx512cd": 92, "sha": 93, "avx512bw": 94, "avx512vl": 95, "avx512vbmi": 97, "pku": 100,
    "avx512vbmi2": 102, "gfni": 104, "vaes": 105, "vpclmulqdq": 106, "avx512vnni": 107,
    "avx512bitalg": 108, "avx512vpopcntdq": 110, "avx512vp2intersect": 136, "amx-bf16": 150,
    "avx512fp16": 151, "amx-tile": 152, "amx-int8": 153, "sahf": 160, "lzcnt": 165,
    "sse4a": 166, "prfchw": 168, "xsaveopt": 224, "xsavec": 225, "xsaves": 227, "clzero": 256,
    "avxvnni": 292, "avx512bf16": 293,
}
AARCH64_DOC_BITS = {
    "aes": 4, "sha2": 6, "crc": 7, "lse": 8, "fullfp16": 9, "dotprod": 20, "sve": 22,
    "sve2": 33, "i8mm": 45, "bf16": 46, "rand": 48,
}


@pytest.mark.parametrize("version", ["1.10", "1.11", "1.12"])
def test_documented_x86_bits(version):
    t = feature_table("x86_64", version)
    for name, bit in X86_DOC_BITS.items():
        assert t.bit(name) == bit, name
        assert t.name(bit) == name


@pytest.mark.parametrize("version", ["1.10", "1.11.4", "1.12.0"])
def test_documented_aarch64_bits(version):
    t = feature_table("aarch64", version)
    assert t.nwords == 3
    for name, bit in AARCH64_DOC_BITS.items():
        assert t.bit(name) == bit, name
    assert {t.bit(f"v8_{i}a") for i in range(1, 7)} == set(range(64, 70))


def test_word_layout_differs_in_112():
    t10, t11, t12 = (feature_table("x86_64", v) for v in ("1.10.5", "1.11.1", "1.12.0"))
    assert (t10.nwords, t11.nwords, t12.nwords) == (11, 11, 12)
    assert t10.bit("ptwrite") == 32 * 10 + 4 and t12.bit("ptwrite") == 32 * 11 + 4
    assert X86_WORD_SOURCES["1.11"][10] == (0x14, 0, "ebx")
    assert X86_WORD_SOURCES["1.12"][10] == (0x7, 1, "ebx")
    assert X86_WORD_SOURCES["1.12"][11] == (0x14, 0, "ebx")
    assert not t11.known("prefetchi") and t12.bit("prefetchi") == 32 * 10 + 14
    # every word source table has exactly one entry per word
    for key in TABLE_VERSIONS:
        assert len(X86_WORD_SOURCES[key]) == feature_table("x86_64", key).nwords


def test_every_bit_fits_the_words():
    for arch in ("x86_64", "aarch64"):
        for key in TABLE_VERSIONS:
            t = feature_table(arch, key)
            bits = [b for _, b in t.features]
            assert len(set(bits)) == len(bits), (arch, key)
            assert max(bits) < 32 * t.nwords
            for feat, dep in t.deps:
                assert t.known(feat) and t.known(dep)


def test_masking_groups_are_known_features():
    t = feature_table("x86_64", "1.10")
    assert AVX_STATE_FEATURES | AVX512_STATE_FEATURES | LLVM_UNUSED_FEATURES <= t.all


@pytest.mark.parametrize("text,key", [
    ("1.9", "1.10"), ("1.9.4", "1.10"), ("1.10", "1.10"), ("1.10.5", "1.10"),
    ("v1.11.1", "1.11"), ("1.12.0-rc1", "1.12"), ("1.12.6", "1.12"),
])
def test_version_key(text, key):
    assert version_key(text) == key


@pytest.mark.parametrize("text", ["1.8.5", "0.7", "2.0", "", "eleven", "1", "1.x", "1.13.0", "1.13", "v1.14.0-DEV"])
def test_version_key_refuses(text):
    with pytest.raises(UsageError):
        version_key(text)


def test_unknown_feature_and_arch_errors_name_them():
    t = feature_table("x86_64", "1.11")
    with pytest.raises(UsageError, match="'avx10'"):
        t.bit("avx10")
    with pytest.raises(UsageError, match="bit 31"):
        t.name(31)
    with pytest.raises(UsageError, match="riscv64"):
        feature_table("riscv64", "1.11")


def test_tables_are_cached():
    assert feature_table("x86_64", "1.11.1") is feature_table("x86_64", "1.11.7")


_TABLES = st.sampled_from([(a, k) for a in ("x86_64", "aarch64") for k in TABLE_VERSIONS])
# a table and a set of its feature names
_TABLE_AND_NAMES = _TABLES.flatmap(lambda ak: st.tuples(
    st.just(ak), st.frozensets(st.sampled_from(sorted(feature_table(*ak).all)))))


@given(_TABLE_AND_NAMES)
def test_words_names_round_trip(case):
    (arch, key), names = case
    t = feature_table(arch, key)
    words = t.words(names)
    assert len(words) == t.nwords and all(0 <= w < 2**32 for w in words)
    assert t.names(words) == names
    assert t.unknown_bits(words) == ()


@given(_TABLES.flatmap(lambda ak: st.tuples(
    st.just(ak), st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=13))))
def test_names_never_fails_on_arbitrary_words(case):
    (arch, key), words = case
    t = feature_table(arch, key)
    names = t.names(words)
    unknown = t.unknown_bits(words)
    assert len(names) + len(unknown) == sum(w.bit_count() for w in words)


@given(_TABLE_AND_NAMES)
def test_dependency_closures(case):
    (arch, key), names = case
    t = feature_table(arch, key)
    up = t.enable_depends(names)
    assert names <= up
    assert all(dep in up for feat, dep in t.deps if feat in up)
    assert t.enable_depends(up) == up
    down = t.disable_depends(names)
    assert down <= names
    assert all(dep in down for feat, dep in t.deps if feat in down)
    assert t.disable_depends(down) == down


def test_julia_1_12_feature_words_follow_its_header():
    # src/features_x86.h at release-1.12: avx512pf/er and prefetchwt1 dropped ("Deprecated in
    # LLVM 19"), CPUID(7,1).EAX/EBX features added, ptwrite in word 11
    t11, t12 = feature_table("x86_64", "1.11"), feature_table("x86_64", "1.12")
    assert {"avx512pf", "avx512er", "prefetchwt1"} <= t11.all and not {"avx512pf", "avx512er", "prefetchwt1"} & t12.all
    assert [t12.bit(n) for n in ("sha512", "sm3", "sm4", "cmpccxadd", "amx-fp16", "avxifma",
                                 "avxvnniint8", "avxneconvert", "amx-complex", "avxvnniint16",
                                 "prefetchi", "usermsr", "ptwrite")] == \
        [288, 289, 290, 295, 309, 311, 324, 325, 328, 330, 334, 335, 356]
    assert t12.disable_depends({"avxvnniint8", "sm4", "amx-fp16"}) == frozenset()
    from depotdelivery.julia.cputarget import cpu_features

    assert "avx512er" in cpu_features("knl", "x86_64", "1.11") and "avx512er" not in cpu_features("knl", "x86_64", "1.12")


@settings(max_examples=300)
@given(st.from_regex(r"v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+][0-9A-Za-z.\-+]*)?", fullmatch=True)
       | st.text(alphabet="v0123456789.-+aZ٣ ", max_size=16))
def test_parse_version_is_the_regular_expression(text):
    import re

    from depotdelivery.julia.features import parse_version

    m = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+][0-9A-Za-z.\-+]*)?", text)
    assert parse_version(text) == (None if m is None else (int(m.group(1)), int(m.group(2))))
