"""Julia's clone selection (match_sysimg_targets): ranking, rejections, cx16, pkgimages."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery.errors import UsageError
from depotdelivery.julia.clones import (
    CX16_MESSAGE,
    NO_MATCH_MESSAGE,
    match_pkgimage,
    match_targets,
)
from depotdelivery.julia.cputarget import (
    cpu_features,
    cpu_names,
    parse_cpu_target,
    to_image_target,
    vector_size,
)
from depotdelivery.julia.features import LLVM_UNUSED_FEATURES, feature_table
from depotdelivery.julia.targetdata import ImageTarget, TargetData, parse_target_data
from depotdelivery.synth.targetdata import target_data_bytes

OFFICIAL_X86 = ("generic;sandybridge,-xsaveopt,clone_all;haswell,-rdrnd,base(1);"
                "x86-64-v4,-rdrnd,base(1)")
V = "1.11"


def x86_host(name, version=V):
    return cpu_features(name, "x86_64", version), name


def images(text, arch="x86_64", version=V, vec_call=False):
    """Image targets as Julia stores them: through the blob bytes and back."""
    blob = TargetData(tuple(to_image_target(s, arch, version, vec_call=vec_call)
                            for s in parse_cpu_target(text, arch, version)))
    return parse_target_data(target_data_bytes(blob)).targets


def test_wider_vectors_win():
    m = match_targets(*x86_host("cascadelake"), images(OFFICIAL_X86), "x86_64", V)
    # skylake-avx512 ... but the official string's AVX-512 clone is x86-64-v4 with no features
    assert (m.accepted, m.index, m.target, m.vector_size) == (True, 2, "haswell", 32)
    m = match_targets(*x86_host("cascadelake"), images("generic;haswell;skylake-avx512"),
                      "x86_64", V)
    assert (m.index, m.target, m.vector_size) == (2, "skylake-avx512", 64)
    assert m.rejections == ()
    m = match_targets(*x86_host("cascadelake"), images("generic;skylake-avx512;haswell"),
                      "x86_64", V)
    assert m.index == 1 and m.log[2].endswith(
        "Rejecting this target since another target has a larger vector register size")


def test_exact_name_match_beats_wider_vectors():
    text = "generic;skylake-avx512;cascadelake,-avx512f;icelake-server"
    m = match_targets(*x86_host("cascadelake"), images(text), "x86_64", V)
    # cascadelake without AVX-512 has 32-byte vectors; its name still wins, and the later
    # icelake-server is rejected (name mismatch, and the host lacks its features)
    assert (m.index, m.target, m.vector_size) == (2, "cascadelake", 32)
    assert "CPU name matches" in m.reason
    assert [r.index for r in m.rejections] == [3]
    host, _ = x86_host("icelake-server")
    m = match_targets(host, "cascadelake", images(text), "x86_64", V)
    assert m.index == 2 and m.log[3].endswith(
        "Rejecting this target since another target has a cpu name match")


def test_more_features_and_ties_go_to_the_later_target():
    m = match_targets(*x86_host("broadwell"), images("generic;haswell;sandybridge"), "x86_64", V)
    assert m.index == 1 and m.log[2].endswith(
        "Rejecting this target since another target has a larger feature set")
    m = match_targets(*x86_host("broadwell"), images("generic;haswell;haswell"), "x86_64", V)
    assert m.index == 2 and m.log[2].endswith("Updating best match to this target")
    m = match_targets(*x86_host("haswell"), images("generic;haswell;haswell"), "x86_64", V)
    assert m.index == 2  # both match by name: equal, the later one wins


def test_rejections_list_missing_features():
    m = match_targets(*x86_host("westmere"), images(OFFICIAL_X86), "x86_64", V)
    assert (m.accepted, m.index, m.target) == (True, 0, "generic")
    by_name = {r.name: r.missing for r in m.rejections}
    assert by_name["sandybridge"] == ("avx", "xsave")
    assert {"avx2", "bmi2", "fma", "avx"} <= set(by_name["haswell"])
    assert list(by_name["haswell"]) == sorted(by_name["haswell"])
    assert m.log[1] == ("Target 1 (sandybridge): Rejecting this target due to use of "
                        "runtime-disabled features")


def test_no_compatible_target():
    host, name = cpu_features("cortex-a53", "aarch64", V), "cortex-a53"
    m = match_targets(host, name, images("thunderx2t99;carmel", "aarch64"), "aarch64", V)
    assert not m.accepted and m.index is None and m.target is None
    assert m.julia_message.splitlines()[0] == NO_MATCH_MESSAGE
    assert "Target 0 (thunderx2t99): Rejecting this target due to use of runtime-disabled" \
        in m.julia_message
    assert [(r.index, r.name) for r in m.rejections] == [(0, "thunderx2t99"), (1, "carmel")]
    assert "aes" in m.reason and "sha2" in m.reason


def test_cx16_refusal():
    host = cpu_features("haswell", "x86_64", V) - {"cx16"}
    m = match_targets(host, "haswell", images("generic;haswell"), "x86_64", V)
    assert not m.accepted and m.reason == CX16_MESSAGE == m.julia_message
    assert all(r.missing == ("cx16",) for r in m.rejections)
    # a target without cx16 lets Julia start: with the official string, the feature-less
    # x86-64-v4 clone (LLVM code for AVX-512!) is the only one left
    m = match_targets(host, "haswell", images(OFFICIAL_X86), "x86_64", V)
    assert m.accepted and m.target == "x86-64-v4"
    m = match_targets(host, "haswell", images("generic,-cx16;haswell"), "x86_64", V)
    assert m.accepted and m.target == "generic"


def test_stored_llvm_name_is_normalised():
    t = ImageTarget(flags=0, en_words=(0,) * 11, dis_words=(0,) * 11, name="x86-64")
    m = match_targets(set(), "generic", [t], "x86_64", "1.10")
    assert m.target == "generic" and "CPU name matches" in m.reason
    t = ImageTarget(flags=0, en_words=(0,) * 11, dis_words=(0,) * 11, name="core-avx2")
    assert match_targets(*x86_host("haswell"), [t], "x86_64", V).target == "haswell"


def test_words_from_another_julia_version_are_refused():
    t = images("haswell", version="1.12")[0]
    with pytest.raises(UsageError, match="12 feature words"):
        match_targets(*x86_host("haswell"), [t], "x86_64", "1.11")


def test_aarch64_vector_sizes():
    # Julia's neoverse-n2 entry lacks ssbs, which the neoverse-v1 entry has; a real N2
    # reports it in AT_HWCAP
    assert [(r.name, r.missing) for r in match_targets(
        cpu_features("neoverse-n2", "aarch64", V), "neoverse-n2",
        images("neoverse-v1", "aarch64"), "aarch64", V).rejections] == [("neoverse-v1", ("ssbs",))]
    host = cpu_features("neoverse-n2", "aarch64", V) | {"ssbs"}
    m = match_targets(host, "neoverse-n2", images("generic;a64fx;neoverse-v1", "aarch64"),
                      "aarch64", V)
    assert (m.target, m.vector_size) == ("neoverse-v1", 128)
    assert [(r.name, r.missing) for r in m.rejections] == [("a64fx", ("sha2",))]
    m = match_targets(host, "unknown-core", images("generic;neoverse-v1;generic,+sve2",
                                                   "aarch64"), "aarch64", V)
    assert (m.index, m.vector_size) == (2, 256)


def test_target_specs_work_like_image_targets():
    specs = parse_cpu_target(OFFICIAL_X86, "x86_64", V)
    for host in ("westmere", "sandybridge", "haswell", "skylake-avx512", "znver3"):
        a = match_targets(*x86_host(host), specs, "x86_64", V)
        b = match_targets(*x86_host(host), images(OFFICIAL_X86), "x86_64", V)
        assert (a.index, a.rejections, a.log) == (b.index, b.rejections, b.log)


def test_pkgimage_against_the_jit_target():
    # A cache built for an AVX-512 target on a host without AVX-512: Julia rejects it.
    sys = match_targets(*x86_host("haswell"), images("generic;haswell"), "x86_64", V)
    pkg = match_pkgimage(sys.jit, images("skylake-avx512"), "x86_64", V)
    assert not pkg.accepted and "pkgimage" in pkg.reason
    assert {"avx512f", "avx512bw"} <= set(pkg.rejections[0].missing)
    # A multi-target pkgimage: the host's own clone
    pkg = match_pkgimage(sys.jit, images("generic;haswell;skylake-avx512"), "x86_64", V)
    assert pkg.accepted and pkg.target == "haswell"


def test_vec_call_narrows_the_jit():
    host = x86_host("skylake-avx512")
    narrow = match_targets(*host, images("generic;haswell", vec_call=True), "x86_64", V)
    assert narrow.target == "haswell" and "avx512f" not in narrow.jit.enabled
    assert "avx2" in narrow.jit.enabled
    # Julia does not recompute ``disabled``: the narrowed JIT still does not *disable*
    # AVX-512, so an AVX-512 pkgimage clone is not rejected by the feature check
    assert not narrow.jit.disabled & {"avx512f"}
    wide = match_targets(*host, images("generic;haswell"), "x86_64", V)
    assert "avx512f" in wide.jit.enabled
    generic = match_targets(*host, images("generic", vec_call=True), "x86_64", V)
    assert not generic.jit.enabled & {"avx", "avx2", "fma", "avx512f"}


@st.composite
def scenario(draw):
    arch = draw(st.sampled_from(["x86_64", "aarch64"]))
    version = draw(st.sampled_from(["1.10", "1.11", "1.12"]))
    table = feature_table(arch, version)
    names = cpu_names(arch, version)
    host_name = draw(st.sampled_from(names))
    base = cpu_features(host_name, arch, version)
    drop = draw(st.frozensets(st.sampled_from(sorted(base)), max_size=4)) if base else frozenset()
    add = draw(st.frozensets(st.sampled_from(sorted(table.all)), max_size=4))
    host = (base - drop) | add
    targets = []
    for _ in range(draw(st.integers(1, 6))):
        toks = [draw(st.sampled_from(list(names) + ["x86-64-v4", "mystery"]))]
        for f in draw(st.lists(st.sampled_from(sorted(table.all)), max_size=3)):
            toks.append(draw(st.sampled_from("+-")) + f)
        targets.append(",".join(toks))
    return arch, version, host, host_name, ";".join(targets)


@given(scenario())
def test_selection_properties(case):
    arch, version, host, host_name, text = case
    specs = parse_cpu_target(text, arch, version)
    m = match_targets(host, host_name, images(text, arch, version), arch, version)
    jit = m.jit
    compatible = [i for i, s in enumerate(specs) if not s.enabled & jit.disabled]
    rejected = {r.index for r in m.rejections}
    if arch == "x86_64" and "cx16" not in jit.enabled and \
            all("cx16" in s.enabled for s in specs):
        assert not m.accepted and m.reason == CX16_MESSAGE
        return
    assert rejected == set(range(len(specs))) - set(compatible)
    for r in m.rejections:
        assert set(r.missing) == specs[r.index].enabled - jit.enabled - LLVM_UNUSED_FEATURES
    if not compatible:
        assert not m.accepted
        return
    assert m.accepted
    chosen = specs[m.index]
    # never a clone that needs a feature the host lacks
    assert chosen.enabled <= host
    # the ranking, stated independently of the loop: among the candidates (the name-matching
    # compatible targets if any, else all compatible ones) the chosen one has the widest
    # vectors, then the most features, and is the last of its equals
    pool = [i for i in compatible if specs[i].name == jit.name] or compatible
    key = {i: (vector_size(specs[i].enabled, arch), len(specs[i].enabled)) for i in pool}
    best = max(key.values())
    assert key[m.index] == best and m.index == max(i for i in pool if key[i] == best)
