"""JULIA_CPU_TARGET parsing, Julia's CPU tables per version, recommended strings and lint."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery.errors import UsageError
from depotdelivery.julia.cputarget import (
    CLONE_ALL,
    CLONE_CPU,
    CLONE_FLOAT16,
    CLONE_LOOP,
    CLONE_MATH,
    CLONE_SIMD,
    MINSIZE,
    OPTSIZE,
    UNKNOWN_NAME,
    VEC_CALL,
    cpu_features,
    cpu_names,
    format_cpu_target,
    jit_target,
    lint_cpu_target,
    parse_cpu_target,
    to_image_target,
)
from depotdelivery.julia.features import LLVM_UNUSED_FEATURES, feature_table
from depotdelivery.julia.targetdata import TargetData, parse_target_data
from depotdelivery.synth.targetdata import target_data_bytes

# julia-formats.md: the official release builds' strings.
OFFICIAL_X86 = ("generic;sandybridge,-xsaveopt,clone_all;haswell,-rdrnd,base(1);"
                "x86-64-v4,-rdrnd,base(1)")
OFFICIAL_AARCH64 = ("generic;cortex-a57;thunderx2t99;carmel,clone_all;apple-m1,base(3);"
                    "neoverse-512tvb,-rand,-fpac,base(3)")
VERSIONS = ("1.10", "1.11", "1.12")


@pytest.mark.parametrize("version", VERSIONS)
def test_official_x86_string(version):
    generic, snb, hsw, v4 = parse_cpu_target(OFFICIAL_X86, "x86_64", version)
    all_feats = feature_table("x86_64", version).all
    assert (generic.name, generic.flags, generic.enabled) == ("generic", 0, {"cx16"})
    assert generic.disabled == all_feats - {"cx16"}
    assert snb.flags == CLONE_ALL and {"avx", "xsave", "sse4.2", "pclmul"} <= snb.enabled
    assert "xsaveopt" not in snb.enabled and "xsaveopt" in snb.disabled
    assert hsw.base == 1 and {"avx2", "bmi", "bmi2", "fma", "lzcnt", "movbe", "f16c"} <= hsw.enabled
    assert not hsw.enabled & LLVM_UNUSED_FEATURES
    # ensure_jit_target: fma and avx2 are new relative to sandybridge
    assert hsw.flags == CLONE_CPU | CLONE_LOOP | CLONE_MATH | CLONE_SIMD
    # the x86-64-v4 clone is unknown to Julia: zero features, only its explicit -rdrnd
    assert v4.flags & UNKNOWN_NAME and not v4.known_name
    assert v4.enabled == frozenset() and v4.disabled == {"rdrnd"} and v4.base == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_official_aarch64_string(version):
    specs = parse_cpu_target(OFFICIAL_AARCH64, "aarch64", version)
    assert [s.name for s in specs] == ["generic", "cortex-a57", "thunderx2t99", "carmel",
                                       "apple-m1", "neoverse-512tvb"]
    generic, a57, tx2, carmel, m1, tvb = specs
    assert generic.enabled == frozenset() and a57.enabled == {"crc"}
    assert {"v8_1a", "lse", "rdm", "aes", "sha2", "crc"} == tx2.enabled
    assert carmel.flags == CLONE_ALL and "fullfp16" in carmel.enabled
    assert m1.base == 3 and {"v8_5a", "sha3", "fp16fml", "dotprod"} <= m1.enabled
    assert m1.flags & CLONE_FLOAT16  # fp16fml is new relative to carmel
    assert tvb.flags & UNKNOWN_NAME and tvb.enabled == frozenset()
    assert tvb.disabled == {"rand"} and tvb.ext == "-fpac" and tvb.base == 3


def test_cpu_tables_differ_by_version():
    assert "znver4" not in cpu_names("x86_64", "1.10")
    assert "znver4" in cpu_names("x86_64", "1.11") and "znver5" not in cpu_names("x86_64", "1.11")
    assert "znver5" in cpu_names("x86_64", "1.12.0")
    old, = parse_cpu_target("znver4", "x86_64", "1.10.5")
    new, = parse_cpu_target("znver4", "x86_64", "1.11.1")
    assert old.flags & UNKNOWN_NAME and old.enabled == frozenset()
    assert new.known_name and {"avx512f", "avx512bw", "vaes", "sha"} <= new.enabled
    assert cpu_features("znver5", "x86_64", "1.12") > cpu_features("znver4", "x86_64", "1.12")
    for version in VERSIONS:
        for level in ("x86-64-v2", "x86-64-v3", "x86-64-v4"):
            assert level not in cpu_names("x86_64", version)


def test_unknown_name_gets_only_explicit_features_and_their_dependencies():
    t, = parse_cpu_target("x86-64-v3,+avx2,+rdrnd,-fma", "x86_64", "1.11")
    assert t.flags == UNKNOWN_NAME
    # enable_depends pulls in avx2's requirements; rdrnd is cleared ("LLVM doesn't use")
    assert t.enabled == {"avx2", "avx", "sse4.2", "sse4.1", "ssse3", "sse3"}
    assert t.disabled == {"fma"}  # unknown CPU: only the explicit disables


def test_table_cpu_features_are_closed_under_dependencies():
    for arch in ("x86_64", "aarch64"):
        for version in VERSIONS:
            table = feature_table(arch, version)
            for name in cpu_names(arch, version):
                feats = cpu_features(name, arch, version)
                assert feats <= table.all, name
                t, = parse_cpu_target(name, arch, version)
                assert t.known_name and t.enabled | t.disabled == table.all
                assert not t.enabled & t.disabled


@pytest.mark.parametrize("alias,name", [
    ("core-avx2", "haswell"), ("skx", "skylake-avx512"), ("x86-64", "generic"),
    ("x86_64", "generic"), ("corei7-avx", "sandybridge"), ("atom", "bonnell"),
])
def test_x86_aliases(alias, name):
    t, = parse_cpu_target(alias, "x86_64", "1.11")
    assert t.name == name and t.known_name
    assert t.enabled == parse_cpu_target(name, "x86_64", "1.11")[0].enabled


def test_aarch64_aliases_and_crypto():
    assert parse_cpu_target("ares", "aarch64", "1.11")[0].name == "neoverse-n1"
    t, = parse_cpu_target("generic,+crypto", "aarch64", "1.11")
    assert t.enabled == {"aes", "sha2"} and t.ext == ""
    t, = parse_cpu_target("generic,+sve2", "aarch64", "1.11")
    assert t.enabled == {"sve2", "sve", "fullfp16"}  # Feature::deps closure


def test_rdrnd_is_a_no_op():
    assert parse_cpu_target("haswell,-rdrnd", "x86_64", "1.11") == \
        parse_cpu_target("haswell", "x86_64", "1.11")


def test_flags_and_ext():
    a, b, c = parse_cpu_target("generic,opt_size;haswell,clone_all,min_size,+foo,-bar;"
                               "skylake,base(1),help,,+", "x86_64", "1.12")
    assert a.flags == OPTSIZE
    assert b.flags == CLONE_ALL | MINSIZE and b.ext == "+foo,-bar"
    assert c.base == 1 and c.ext == "+,+"  # empty feature names go to ext, as in Julia
    assert parse_cpu_target("help", "x86_64", "1.11")[0].name == "native"
    t, = parse_cpu_target("generic,base(1x),base()", "x86_64", "1.11")
    assert t.ext == "+base(1x),+base()"  # not a base(N) rule: an unknown feature
    # get_clone_base returns (int)idx + 1, which is 0 ("no match") for 2**32 - 1
    _, t = parse_cpu_target("generic,clone_all;haswell,base(4294967295)", "x86_64", "1.11")
    assert t.base == 0 and t.ext == "+base(4294967295)"


@pytest.mark.parametrize("text,message", [
    ("", "Invalid target option: empty CPU name"),
    (";haswell", "Invalid target option: empty CPU name"),
    ("generic;", "Invalid target option: empty CPU name"),
    ("generic;,avx", "Invalid target option: empty CPU name"),
    ("generic,base(0)", "Invalid target option: base index must refer to a previous target."),
    ("generic;haswell,base(2)", "base index must refer to a previous target."),
    ("generic;haswell,base(0)", "Invalid target option: base target must be clone_all."),
    ("generic,clone_all,-clone_all;haswell,base(0)", "base target must be clone_all."),
    ("generic,clone_all;haswell,-base(0)", "Invalid target option: disabled base index."),
    ("generic,-opt_size", "Invalid target option: disabled opt_size."),
    ("generic,-min_size", "Invalid target option: disabled min_size."),
    ("generic,opt_size,min_size",
     "Conflicting target option: both opt_size and min_size are specified."),
    ("generic,clone_all;haswell,base(2147483647)", "base index must refer to a previous target."),
])
def test_julia_error_messages(text, message):
    with pytest.raises(UsageError) as err:
        parse_cpu_target(text, "x86_64", "1.11")
    assert message in str(err.value)


def test_nul_ends_the_string_like_a_c_string():
    assert parse_cpu_target("haswell\0;;;", "x86_64", "1.11") == \
        parse_cpu_target("haswell", "x86_64", "1.11")


_TOKENS = st.sampled_from([
    "generic", "haswell", "x86-64-v4", "znver4", "native", "help", "+avx2", "-avx", "avx512f",
    "clone_all", "-clone_all", "opt_size", "min_size", "-opt_size", "base(0)", "base(1)",
    "base(2)", "-base(1)", "base(", "base(99999999999999999999)", "+", "-", "crypto", "sve2",
    "", "\0", "é", "+sse4.1",
])


@given(st.lists(st.tuples(_TOKENS, st.sampled_from([",", ";"])), max_size=8),
       st.sampled_from(["x86_64", "aarch64"]), st.sampled_from(VERSIONS))
def test_parser_only_raises_usage_error(parts, arch, version):
    text = "".join(tok + sep for tok, sep in parts)
    try:
        specs = parse_cpu_target(text, arch, version)
    except UsageError as e:
        assert "Invalid target option" in str(e) or "Conflicting target option" in str(e)
        return
    assert specs and all(0 <= s.base < len(specs) for s in specs)


@given(st.text(max_size=40), st.sampled_from(["x86_64", "aarch64"]))
def test_parser_on_arbitrary_text(text, arch):
    try:
        parse_cpu_target(text, arch, "1.11")
    except UsageError:
        pass


@st.composite
def valid_target_strings(draw, arch, version):
    table = feature_table(arch, version)
    names = list(cpu_names(arch, version)) + ["x86-64-v3", "neoverse-512tvb", "mystery"]
    feats = sorted(table.all) + ["fpac", "avx10.1", "foo"]
    n = draw(st.integers(1, 5))
    parts, clone_all = [], []
    for i in range(n):
        toks = [draw(st.sampled_from(names))]
        for f in draw(st.lists(st.sampled_from(feats), max_size=4)):
            toks.append(draw(st.sampled_from(["+", "-", ""])) + f)
        ca = draw(st.booleans())
        if ca:
            toks.append("clone_all")
            clone_all.append(i)
        size = draw(st.sampled_from(["", "opt_size", "min_size"]))
        if size:
            toks.append(size)
        earlier = [j for j in clone_all if j < i]
        if earlier and draw(st.booleans()):
            toks.append(f"base({draw(st.sampled_from(earlier))})")
        parts.append(",".join(toks))
    return ";".join(parts)


@given(st.sampled_from([(a, v) for a in ("x86_64", "aarch64") for v in VERSIONS]).flatmap(
    lambda av: st.tuples(st.just(av), valid_target_strings(*av))))
def test_valid_strings_round_trip(case):
    (arch, version), text = case
    specs = parse_cpu_target(text, arch, version)
    assert len(specs) == text.count(";") + 1
    again = parse_cpu_target(format_cpu_target(specs), arch, version)
    assert again == specs
    table = feature_table(arch, version)
    for s in specs:
        assert s.enabled <= table.all and not s.enabled & s.disabled
        assert table.disable_depends(s.enabled) == s.enabled
        image = to_image_target(s, arch, version)
        assert table.names(image.en_words) == s.enabled
        assert table.names(image.dis_words) == s.disabled
        assert image.flags & ~(UNKNOWN_NAME | VEC_CALL) == 0
    blob = TargetData(tuple(to_image_target(s, arch, version, vec_call=True) for s in specs))
    assert parse_target_data(target_data_bytes(blob)) == blob


def test_image_target_record():
    specs = parse_cpu_target(OFFICIAL_X86, "x86_64", "1.12")
    v4 = to_image_target(specs[3], "x86_64", "1.12")
    assert v4.flags == UNKNOWN_NAME and v4.en_words == (0,) * 12
    hsw = to_image_target(parse_cpu_target(OFFICIAL_X86, "x86_64", "1.10")[2], "x86_64", "1.10",
                          vec_call=True)
    assert hsw.flags == VEC_CALL and len(hsw.en_words) == 11
    assert hsw.en_words[2] >> 5 & 1  # avx2 is bit 69 = word 2, bit 5


def test_jit_target_native():
    host = cpu_features("skylake-avx512", "x86_64", "1.11") | {"rdrnd", "rtm"}
    t = jit_target(host, "skylake-avx512", "x86_64", "1.11")
    assert t.name == "skylake-avx512" and t.known_name
    assert t.enabled == host - LLVM_UNUSED_FEATURES
    assert t.disabled == feature_table("x86_64", "1.11").all - t.enabled
    # -C haswell on that host: haswell's table, masked by the host
    h = jit_target(host, "skylake-avx512", "x86_64", "1.11", "haswell")
    assert h.name == "haswell" and "avx512f" not in h.enabled and "avx2" in h.enabled
    # a host without AVX cannot keep haswell's AVX features
    w = jit_target(cpu_features("westmere", "x86_64", "1.11"), "westmere", "x86_64", "1.11",
                   "haswell")
    assert "avx" not in w.enabled and "fma" not in w.enabled and "avx" in w.disabled


def test_lint():
    warns = lint_cpu_target(OFFICIAL_X86, "x86_64", "1.11")
    assert len(warns) == 1 and "x86-64-v4" in warns[0] and "(none)" in warns[0]
    warns = lint_cpu_target(OFFICIAL_AARCH64, "aarch64", "1.11")
    assert any("neoverse-512tvb" in w and "does not know" in w for w in warns)
    assert any("-fpac" in w for w in warns)
    assert any("not portable" in w for w in lint_cpu_target("native", "x86_64", "1.11"))
    assert any("fallback clone" in w for w in lint_cpu_target("haswell", "x86_64", "1.11"))
    assert any("same CPU and features as target 1" in w
               for w in lint_cpu_target("generic;haswell;haswell,-rdrnd", "x86_64", "1.11"))
    assert lint_cpu_target("znver4", "x86_64", "1.10") and not \
        [w for w in lint_cpu_target("generic;znver4", "x86_64", "1.11")]
