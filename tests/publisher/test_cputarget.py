"""recommended_cpu_target (publisher/cputarget.py): JULIA_CPU_TARGET strings for a set of archspec
microarchitectures, shaped like the official ones, accepted by every captured machine of each."""
import warnings

import pytest
from captured_cpus import SUPPORTED, detect_captured
from julia.test_cputarget import VERSIONS

from depotdelivery.errors import UsageError
from depotdelivery.julia.cputarget import (
    julia_cpu_for_microarch,
    lint_cpu_target,
    parse_cpu_target,
)
from depotdelivery.publisher.cputarget import recommended_cpu_target


@pytest.mark.parametrize("version", VERSIONS)
def test_recommended_x86(version):
    text = recommended_cpu_target(["x86_64", "x86_64_v3", "skylake_avx512"], "x86_64", version)
    assert text.startswith("generic;haswell,-fsgsbase,-pclmul,clone_all;skylake-avx512,")
    assert text.endswith(",base(1)")
    specs = parse_cpu_target(text, "x86_64", version)
    # exactly the x86-64-v3 level: nothing a v3 host (a VM masking the rest) might lack
    assert specs[1].enabled == {"cx16", "sahf", "popcnt", "sse3", "sse4.1", "sse4.2", "ssse3",
                                "avx", "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe",
                                "xsave"}
    assert {"avx512f", "avx512bw", "avx512vl", "clwb", "aes"} <= specs[2].enabled
    assert lint_cpu_target(text, "x86_64", version) == []


def test_recommended_zen4_needs_julia_111():
    with pytest.warns(UserWarning, match="znver4"):
        old = recommended_cpu_target(["zen4"], "x86_64", "1.10")
    assert old.startswith("generic;znver3,")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = recommended_cpu_target(["zen4", "x86_64_v3"], "x86_64", "1.11")
    assert new.startswith("generic;haswell,-fsgsbase,-pclmul,clone_all;znver4,")
    zen4 = parse_cpu_target(new, "x86_64", "1.11")[2]
    assert zen4.name == "znver4" and {"avx512f", "avx512bf16", "vaes"} <= zen4.enabled
    name, note = julia_cpu_for_microarch("zen5", "x86_64", "1.11")
    assert name == "znver4" and "znver5" in note
    assert julia_cpu_for_microarch("zen5", "x86_64", "1.12") == ("znver5", "")


def test_recommended_aarch64():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = recommended_cpu_target(["aarch64", "neoverse_v1", "a64fx", "neoverse_n1"],
                                      "aarch64", "1.11")
    names = [s.name for s in parse_cpu_target(text, "aarch64", "1.11")]
    assert names == ["generic", "neoverse-n1", "a64fx", "neoverse-v1"]
    assert text.split(";")[1].endswith(",clone_all") and text.endswith(",base(1)")
    assert lint_cpu_target(text, "aarch64", "1.11") == []
    # every recommended clone fits the microarchitecture's guaranteed features (host model),
    # e.g. a core Julia does not recognise gets no Julia-only v8_Xa bits
    from depotdelivery.cpu import detect
    for m in ("neoverse_v2", "ampere1", "m2", "olympus", "a64fx"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spec = parse_cpu_target(recommended_cpu_target([m], "aarch64", "1.11"), "aarch64",
                                    "1.11")[1]
        assert spec.enabled <= detect(microarch=m).julia_features("1.11"), m


@pytest.mark.parametrize("name", SUPPORTED)  # the others: test_cpu_targets.py asserts the refusal
def test_recommended_clone_is_accepted_on_captured_machines(name):
    """Real machines (archspec's captured /proc/cpuinfo and CPUID dumps): the clone recommended
    for the machine's own microarchitecture is never rejected, and wins unless Julia names
    the host 'generic' (then the generic clone wins by name, as in Julia)."""
    from depotdelivery.julia.clones import match_targets

    host = detect_captured(name)
    for version in VERSIONS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = recommended_cpu_target([host.microarch], host.arch, version)
        specs = parse_cpu_target(text, host.arch, version)
        m = match_targets(host.julia_features(version), host.julia_cpu(version), specs,
                          host.arch, version)
        assert m.accepted and m.rejections == (), (version, text)
        if len(specs) > 1 and host.julia_cpu(version) != "generic":
            assert m.index == 1, (version, text, m.reason)


def test_recommended_covers_every_archspec_microarch():
    archspec = pytest.importorskip("archspec.cpu")
    for name, target in archspec.TARGETS.items():
        arch = target.family.name
        if arch not in ("x86_64", "aarch64"):
            continue
        for version in VERSIONS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                text = recommended_cpu_target([name], arch, version)
            assert all(s.known_name for s in parse_cpu_target(text, arch, version)), (name, text)


def test_microarch_errors():
    with pytest.raises(UsageError, match="zen4"):
        julia_cpu_for_microarch("zen4", "aarch64", "1.11")
    with pytest.raises(UsageError, match="power9"):
        recommended_cpu_target(["power9"], "x86_64", "1.11")
