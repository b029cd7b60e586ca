"""Captured machines through ``depotdelivery detect --julia-version V --json``: archspec's
captures (its wheel's json/tests/targets) and site-style captures (tests/data/cpu/sites), for
every supported Julia version, compared with the name and source Julia would report. The
expectations are written here from the sources (Julia's tables, then LLVM's of the LLVM that
version ships: 1.10 -> 15, 1.11 -> 16, 1.12 -> 18), not computed by depotdelivery."""
from __future__ import annotations

from pathlib import Path

import pytest
from captured_cpus import SUPPORTED, captured_cpu
from conftest import run_cli

SITES = Path(__file__).resolve().parents[1] / "data" / "cpu" / "sites"
VERSIONS = ("1.10", "1.11", "1.12")


def same(name: str) -> tuple[tuple[str, str], ...]:
    """Julia's own table names it, in every version."""
    return ((name, "julia"),) * 3


NOT_BEFORE_18 = (("generic", "llvm-15"), ("generic", "llvm-16"))

ARCHSPEC = {
    "linux-amazon-cortex_a72": same("cortex-a72"),
    "linux-amazon-neoverse_n1": same("neoverse-n1"),
    "linux-amazon-neoverse_v1": same("neoverse-v1"),
    "linux-asahi-m1": same("apple-m1"),
    "linux-asahi-m2": (("generic", "llvm-15"), ("apple-m2", "julia"), ("apple-m2", "julia")),
    "linux-centos7-cascadelake": same("cascadelake"),
    "linux-centos7-thunderx2": same("thunderx2t99"),
    # family 15h model 2: Julia's table says bdver1 (models <= 0x0F), before LLVM's bdver2
    "linux-rhel6-piledriver": same("bdver1"),
    "linux-rhel7-broadwell": same("broadwell"),
    "linux-rhel7-haswell": same("haswell"),
    "linux-rhel7-ivybridge": same("ivybridge"),
    "linux-rhel7-skylake_avx512": same("skylake-avx512"),
    "linux-rhel7-x86_64_v3": same("haswell"),
    "linux-rhel7-zen": same("znver1"),
    "linux-rhel8-neoverse_v1": same("neoverse-v1"),
    "linux-rhel9-neoverse_n2": same("neoverse-n2"),
    "linux-rhel9-neoverse_v2": (*NOT_BEFORE_18, ("neoverse-v2", "llvm-18")),
    "linux-rocky8-a64fx": same("a64fx"),
    "linux-rocky8.5-zen4": (("znver3", "julia"), ("znver4", "julia"), ("znver4", "julia")),
    "linux-rocky9-zen5": (*NOT_BEFORE_18[:1], ("generic", "llvm-16"), ("znver5", "julia")),
    "linux-rocky9-zen6": (*NOT_BEFORE_18[:1], ("generic", "llvm-16"), ("znver5", "julia")),
    "linux-scientific7-k10": same("amdfam10"),
    "linux-scientific7-piledriver": same("bdver1"),
    "linux-scientificfermi6-bulldozer": same("bdver1"),
    "linux-scientificfermi6-piledriver": same("bdver1"),
    "linux-ubuntu18.04-broadwell": same("broadwell"),
    "linux-ubuntu20.04-zen3": same("znver3"),
    "linux-ubuntu22.04-ampere1": (("ampere1", "llvm-15"), ("ampere1", "llvm-16"), ("ampere1", "llvm-18")),
    "linux-ubuntu22.04-ampere1a": (*NOT_BEFORE_18, ("ampere1a", "llvm-18")),
    "linux-ubuntu22.04-neoverse_n2": same("neoverse-n2"),
    "linux-ubuntu22.04-neoverse_v2": (*NOT_BEFORE_18, ("neoverse-v2", "llvm-18")),
    # model 0xC6 (Arrow Lake-S): LLVM 15/16 do not list it and guess from SHA + CLFLUSHOPT
    "linux-ubuntu24.04-alderlake": (("goldmont", "llvm-15-guess"), ("goldmont", "llvm-16-guess"),
                                    ("arrowlake-s", "llvm-18")),
    "linux-ubuntu24.04-neoverse_v3ae": (("generic", "llvm-15"), ("generic", "llvm-16"), ("generic", "llvm-18")),
    "linux-ubuntu26.04-arrowlake_s": (("goldmont", "llvm-15-guess"), ("goldmont", "llvm-16-guess"),
                                      ("arrowlake-s", "llvm-18")),
    "linux-ubuntu26.04-olympus": (("generic", "llvm-15"), ("generic", "llvm-16"), ("generic", "llvm-18")),
    "linux-unknown-neoverse_v2": (*NOT_BEFORE_18, ("neoverse-v2", "llvm-18")),
    "linux-unknown-sapphirerapids": same("sapphirerapids"),
    "windows-cpuid-broadwell": same("broadwell"),
    "windows-cpuid-icelake": same("tigerlake"),  # model 0x8C is Tiger Lake
}

SITE = {
    "intel-6-a7-vm.cpuid": (("rocketlake", "llvm-15"), ("rocketlake", "llvm-16"), ("rocketlake", "llvm-18")),
    "intel-6-a7-vm.cpuinfo": (("rocketlake", "llvm-15"), ("rocketlake", "llvm-16"), ("rocketlake", "llvm-18")),
    "intel-raptorlake-s-i9-13900k.cpuinfo": (("goldmont", "llvm-15-guess"), ("alderlake", "llvm-16"),
                                             ("alderlake", "llvm-18")),
    "intel-raptorlake-p-i7-1360p.cpuinfo": (("goldmont", "llvm-15-guess"), ("goldmont", "llvm-16-guess"),
                                            ("alderlake", "llvm-18")),
    "intel-raptorlake-refresh-i9-14900k.cpuinfo": (("goldmont", "llvm-15-guess"),
                                                   ("goldmont", "llvm-16-guess"), ("alderlake", "llvm-18")),
    "intel-meteorlake-ultra7-155h.cpuinfo": (("goldmont", "llvm-15-guess"), ("alderlake", "llvm-16"),
                                             ("alderlake", "llvm-18")),
    "intel-emeraldrapids-xeon-8592.cpuinfo": (("icelake-client", "llvm-15-guess"),
                                              ("sapphirerapids", "llvm-16"), ("sapphirerapids", "llvm-18")),
    "intel-graniterapids-xeon-6980p.cpuinfo": (("icelake-client", "llvm-15-guess"),
                                               ("graniterapids", "llvm-16"), ("graniterapids", "llvm-18")),
    "amd-zen2-rome-epyc-7742.cpuinfo": same("znver2"),
    "amd-zen4-phoenix-ryzen-7840u.cpuinfo": (("znver3", "julia"), ("znver4", "julia"), ("znver4", "julia")),
    # model 0x75 is outside Julia's Zen 4 ranges: Julia's own table says znver3 (LLVM 18 would not)
    "amd-zen4-hawkpoint-ryzen-8845hs.cpuinfo": same("znver3"),
    "amd-zen5-turin-epyc-9755.cpuinfo": (("generic", "llvm-15"), ("generic", "llvm-16"), ("znver5", "julia")),
    "arm-kunpeng920.cpuinfo": same("tsv110"),
    "arm-rk3588-a55-a76.cpuinfo": same("cortex-a76"),  # big.LITTLE: the big core names it
    # neither core is in Julia's table: LLVM names the last /proc/cpuinfo block
    "arm-dimensity-a510-a715.cpuinfo": (*NOT_BEFORE_18, ("cortex-a715", "llvm-18")),
}


def detect_json(path: Path, version: str) -> dict:
    flag = "--cpuid-dump" if path.name.startswith("windows-cpuid-") or path.suffix == ".cpuid" else "--cpuinfo"
    done = run_cli("detect", flag, str(path), "--json", "--julia-version", version)
    assert done.code == 0
    return done.json()


def test_every_supported_archspec_capture_has_an_expectation():
    assert set(ARCHSPEC) == set(SUPPORTED)


def test_every_site_capture_has_an_expectation():
    assert set(SITE) == {p.name for p in SITES.iterdir() if p.suffix in (".cpuinfo", ".cpuid")}


@pytest.mark.parametrize("name", sorted(ARCHSPEC))
def test_archspec_capture(name):
    got = [detect_json(captured_cpu(name), v) for v in VERSIONS]
    assert [(g["julia_cpu"], g["julia_cpu_source"]) for g in got] == list(ARCHSPEC[name])


@pytest.mark.parametrize("name", sorted(SITE))
def test_site_capture(name):
    got = [detect_json(SITES / name, v) for v in VERSIONS]
    assert [(g["julia_cpu"], g["julia_cpu_source"]) for g in got] == list(SITE[name])


def test_julia_1_13_is_refused_with_one_clear_line(cli):
    assert cli("detect", "--cpuinfo", str(SITES / "intel-6-a7-vm.cpuinfo"), "--json",
               "--julia-version", "1.13.1").code != 0
    err = cli.last.err.strip().splitlines()
    assert len(err) == 1 and "Julia 1.13.1 is not supported yet" in err[0], err


def test_heterogeneous_cores_and_julias_extra_features():
    # _get_host_cpu ORs the CPU-table features common to every recognised core into the
    # HWCAPs; a core its table does not know leaves only the HWCAPs (no v8_Xa bits)
    big_little = detect_json(SITES / "arm-rk3588-a55-a76.cpuinfo", "1.11")
    assert len(big_little["midrs"]) == 8 and {"v8_1a", "v8_2a", "dotprod"} <= set(big_little["julia_features"])
    unknown = detect_json(SITES / "arm-dimensity-a510-a715.cpuinfo", "1.12")
    assert not {"v8_1a", "v8_2a"} & set(unknown["julia_features"]) and "dotprod" in unknown["julia_features"]


@pytest.mark.parametrize("text", ["sysimage", "sysimage;haswell,clone_all", "generic;sysimage"])
def test_sysimage_keyword_is_recognised_and_explained(text):
    # Julia 1.13's keyword (#58970); 1.10-1.12 parse it as an unknown CPU name
    from depotdelivery.julia.cputarget import (
        UNKNOWN_NAME,
        lint_cpu_target,
        parse_cpu_target,
    )

    specs = parse_cpu_target(text, "x86_64", "1.12")
    assert any(s.name == "sysimage" and s.flags & UNKNOWN_NAME and not s.enabled for s in specs)
    assert any("only from Julia 1.13" in w for w in lint_cpu_target(text, "x86_64", "1.12"))


OFFICIAL_X86 = "generic;sandybridge,-xsaveopt,clone_all;haswell,-rdrnd,base(1);x86-64-v4,-rdrnd,base(1)"


@pytest.mark.parametrize("version", VERSIONS)
def test_official_x86_target_on_the_rocketlake_vm(version):
    # JuliaCI/julia-buildkite utilities/build_envs.sh's x86_64 JULIA_CPU_TARGET. Julia's CPU
    # table has no x86-64-v4 (1.10-1.12, and the 1.13 branch point), so that clone carries no
    # features Julia can check (UNKNOWN_NAME) and ranks as 16-byte: Julia runs haswell's code
    # even on this AVX-512 VM
    from depotdelivery.cpu import detect
    from depotdelivery.julia.clones import match_targets
    from depotdelivery.julia.cputarget import UNKNOWN_NAME, parse_cpu_target

    specs = parse_cpu_target(OFFICIAL_X86, "x86_64", version)
    assert specs[3].name == "x86-64-v4" and specs[3].flags & UNKNOWN_NAME and not specs[3].enabled
    host = detect(cpuid_dump=SITES / "intel-6-a7-vm.cpuid")
    match = match_targets(host.julia_features(version), host.julia_cpu(version), specs, "x86_64", version)
    assert (match.index, match.target) == (2, "haswell"), match.reason
