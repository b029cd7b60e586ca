"""Staleness prediction judged on generated depots: a fresh depot loads everywhere, and each
change flips exactly the affected packages (the package and its dependents) with Julia's reason."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery.errors import NoCompatibleVariantError, UsageError
from depotdelivery.julia import cachefile, stale
from depotdelivery.julia.cputarget import (
    cpu_features,
    parse_cpu_target,
    to_image_target,
)
from depotdelivery.julia.elfimage import read_image_targets
from depotdelivery.julia.targetdata import TargetData
from depotdelivery.synth import depot as synth
from depotdelivery.synth.cachefile import write_cache_file
from depotdelivery.synth.targetdata import target_data_bytes

X86 = ("generic", "haswell", "skylake-avx512", "znver4")


def host(cpu: str, arch: str = "x86_64", version: str = "1.11") -> stale.HostTarget:
    return stale.HostTarget(arch=arch, cpu=cpu, features=cpu_features(cpu, arch, version))


def modules(variant: synth.VariantDir, root: Path | None = None) -> list[dict[str, str]]:
    vdir = variant.dir if root is None else root / "variants" / variant.target
    return json.loads((vdir / "sysimage-modules.json").read_text())


def judge(out: synth.SynthInputs, target: str = "haswell", cpu: str = "haswell", *, root: Path | None = None,
          project: str | None = "environments/hep", mods=None, with_targets: bool = True,
          arch: str = "x86_64") -> stale.StalenessReport:
    """Predict for the stack a node would use: writable node depot, variant depot, shared depot."""
    base = root or out.root
    variant = out.variants[target]
    vdir = base / "variants" / target
    (base / "node").mkdir(exist_ok=True)
    return stale.predict(
        [base / "node", vdir / "depot", base / "depot"], julia_version=out.julia_version,
        sysimage_modules=modules(variant, base) if mods is None else mods,
        host=host(cpu, arch, out.julia_version), project=project,
        sysimage_targets=read_image_targets(vdir / "sys.so").targets if with_targets else None)


def dependents(out: synth.SynthInputs, name: str) -> set[str]:
    """``name`` and every package that needs it, transitively."""
    hit = {name}
    for p in out.packages:  # index order is a topological order
        if hit & set(p.deps):
            hit.add(p.name)
    return hit


def flipped(report: stale.StalenessReport) -> set[str]:
    return {p.name for p in report.will_recompile}


def pkg(out: synth.SynthInputs, name: str) -> synth.SynthPackage:
    return next(p for p in out.packages if p.name == name)


def with_dependents(out: synth.SynthInputs) -> synth.SynthPackage:
    """A package that others depend on (so that flipping it must flip them too)."""
    return next(p for p in out.packages if len(dependents(out, p.name)) > 1)


@pytest.fixture
def d11(tmp_path: Path) -> synth.SynthInputs:
    return synth.generate_release_inputs(tmp_path / "rel11", julia_version="1.11.1", packages=8, seed=3)


@pytest.fixture
def d10(tmp_path: Path) -> synth.SynthInputs:
    return synth.generate_release_inputs(tmp_path / "rel10", julia_version="1.10.5", packages=8, seed=3,
                                         targets=("generic", "haswell"))


# -- a fresh depot loads everywhere --------------------------------------------------------

@pytest.mark.parametrize("target,cpu,arch", [
    ("generic", "haswell", "x86_64"), ("haswell", "haswell", "x86_64"),
    ("haswell", "skylake-avx512", "x86_64"), ("skylake-avx512", "skylake-avx512", "x86_64"),
    ("znver4", "znver4", "x86_64"), ("neoverse-v1", "neoverse-v1", "aarch64"), ("a64fx", "a64fx", "aarch64"),
])
def test_fresh_111_depot_loads_on_every_fitting_host(d11, target, cpu, arch):
    report = judge(d11, target, cpu, arch=arch)
    assert {p.name for p in report.packages} == {p.name for p in d11.packages}
    assert flipped(report) == set()
    for p in report.packages:
        assert p.depot == str(d11.variants[target].depot)
        assert p.sources and all(s.depot == str(d11.depot) for s in p.sources)
        assert all(s.recorded.startswith("@depot/packages/") for s in p.sources)


def test_fresh_110_depot_loads_at_its_final_path(d10):
    report = judge(d10, "haswell", "skylake-avx512")
    assert flipped(report) == set() and len(report.packages) == len(d10.packages)
    for p in report.packages:
        assert all(s.recorded == s.resolved and s.recorded.startswith(str(d10.depot)) for s in p.sources)


@pytest.mark.parametrize("version", ["1.9.4", "1.12.1"])
def test_fresh_depots_of_other_julia_lines_load(tmp_path, version):
    out = synth.generate_release_inputs(tmp_path / "rel", julia_version=version, packages=5, seed=5,
                                        targets=("haswell",))
    report = judge(out, "haswell", "haswell")
    assert len(report.packages) == 5 and flipped(report) == set()


def test_without_project_packages_come_from_the_caches(d11):
    report = judge(d11, project=None)
    assert {p.name for p in report.packages} == {p.name for p in d11.packages}
    assert flipped(report) == set()
    assert any("requires" in n for n in report.notes)


# -- each change flips exactly the affected packages ---------------------------------------

def test_editing_a_source_file_flips_the_package_and_its_dependents(d11):
    victim = with_dependents(d11)
    part = d11.depot / victim.path / victim.includes[1]
    text = part.read_bytes()
    part.write_bytes(text.replace(b"s = zero(T)", b"s = one(T) "))  # same size, new content
    report = judge(d11)
    assert flipped(report) == dependents(d11, victim.name)
    by = report.by_name()
    assert by[victim.name].reason == "include_dependency fhash change"
    assert all(by[n].reason == "dependency not loadable" for n in dependents(d11, victim.name) - {victim.name})
    part.write_bytes(text + b"\n")
    assert judge(d11).by_name()[victim.name].reason == "include_dependency fsize change"


def test_deleting_a_source_file(d11):
    victim = with_dependents(d11)
    (d11.depot / victim.path / victim.includes[-1]).unlink()
    report = judge(d11)
    assert flipped(report) == dependents(d11, victim.name)
    # the other include() files still pick the depot; the missing one is then missing there
    assert report.by_name()[victim.name].reason == "missing sourcefile"
    assert str(d11.depot / victim.path / victim.includes[-1]) in report.by_name()[victim.name].detail


def test_touching_an_mtime_flips_110_but_not_111(d10, d11):
    victim = with_dependents(d10)
    f = d10.depot / victim.path / victim.includes[0]
    st_ = f.stat()
    os.utime(f, ns=(st_.st_atime_ns, st_.st_mtime_ns + 2_000_000_000))
    report = judge(d10)
    assert flipped(report) == dependents(d10, victim.name)
    assert report.by_name()[victim.name].reason == "include_dependency mtime change"
    # Julia's tolerances: an mtime truncated to whole seconds (Docker) still loads
    os.utime(f, ns=(st_.st_atime_ns, st_.st_mtime_ns // 10**9 * 10**9))
    assert flipped(judge(d10)) == set()
    g = d11.depot / victim.path / victim.includes[0]
    os.utime(g, ns=(0, g.stat().st_mtime_ns + 2_000_000_000))
    assert flipped(judge(d11)) == set()  # 1.11 compares size + CRC-32C of include() files


def test_moving_the_depot_flips_110_and_not_111(d10, d11, tmp_path):
    moved10 = tmp_path / "moved10"
    d10.root.rename(moved10)
    report = judge(d10, root=moved10)
    assert flipped(report) == {p.name for p in d10.packages}
    # the manifest now locates the package at the new path; the cache names the old one
    assert {p.reason for p in report.packages} == {"wrong source"}
    moved11 = tmp_path / "moved11"
    d11.root.rename(moved11)
    report = judge(d11, root=moved11)
    assert flipped(report) == set()
    assert all(s.depot == str(moved11 / "depot") for p in report.packages for s in p.sources)


def test_removing_a_dependency_flips_its_dependents(d11):
    victim = with_dependents(d11)
    shutil.rmtree(d11.depot / victim.path)
    report = judge(d11)
    by = report.by_name()
    assert flipped(report) == dependents(d11, victim.name)
    assert by[victim.name].verdict == "not installed"
    assert {by[n].reason for n in dependents(d11, victim.name) - {victim.name}} == {"dep missing source"}


def test_manifest_no_longer_mapping_a_using_flips_the_package(d11):
    victim = next(p for p in d11.packages if p.deps and len(dependents(d11, p.name)) > 1)
    manifest = d11.depot / d11.project / "Manifest.toml"
    text = manifest.read_text()
    block = text[text.index(f"[[deps.{victim.name}]]"):]
    block = block[:block.index("\n\n")]
    manifest.write_text(text.replace(block, block.replace(f'"{victim.deps[0]}"', '"Nonexistent"')))
    report = judge(d11)
    assert flipped(report) == dependents(d11, victim.name)
    assert report.by_name()[victim.name].reason == "dep uuid changed"


def _retarget(ji: Path, cpu_target: str, julia_version: str) -> None:
    """Rewrite a pkgimage's clone targets (and its .so CRC) as if built for ``cpu_target``."""
    cf = cachefile.read_cache_file(ji)
    specs = parse_cpu_target(cpu_target, cf.arch, julia_version)
    blob = target_data_bytes(TargetData(tuple(to_image_target(s, cf.arch, julia_version) for s in specs)))
    write_cache_file(dataclasses.replace(cf, clone_targets=blob), ji)


def test_avx512_cache_on_a_host_without_avx512_flips_it_and_its_dependents(d11):
    victim = with_dependents(d11)
    (ji,) = (d11.variants["haswell"].depot / "compiled" / "v1.11" / victim.name).glob("*.ji")
    _retarget(ji, "skylake-avx512", "1.11.1")
    report = judge(d11, "haswell", "haswell")
    assert flipped(report) == dependents(d11, victim.name)
    assert report.by_name()[victim.name].reason == "target mismatch"
    assert "avx512" in report.by_name()[victim.name].detail
    # the same cache is fine where AVX-512 exists
    assert flipped(judge(d11, "haswell", "skylake-avx512")) == set()


def test_an_avx512_variant_on_a_host_without_avx512(d11):
    with pytest.raises(NoCompatibleVariantError, match="will not start"):
        judge(d11, "skylake-avx512", "haswell")
    report = judge(d11, "skylake-avx512", "haswell", with_targets=False)
    assert flipped(report) == {p.name for p in d11.packages}
    assert {p.reason for p in report.packages} == {"target mismatch"}


def test_a_sysimage_with_other_build_ids_flips_every_cache(d11):
    report = judge(d11, "haswell", mods=modules(d11.variants["generic"]))
    assert flipped(report) == {p.name for p in d11.packages}
    assert {p.reason for p in report.packages} == {"wrong julia version"}
    mods = modules(d11.variants["haswell"])
    for m in mods:
        if m["name"] == "Random":
            m["build_id"] = f"{int(m['build_id'], 16) ^ 1:032x}"
    report = judge(d11, "haswell", mods=mods)
    assert {p.reason for p in report.packages} == {"wrong dep version loaded"}
    assert "Random" in report.packages[0].detail


def test_missing_or_altered_pkgimage_so(d11):
    a, b = [p for p in d11.packages if len(dependents(d11, p.name)) == 1][:2]
    cdir = d11.variants["haswell"].depot / "compiled" / "v1.11"
    (so_a,) = (cdir / a.name).glob("*.so")
    so_a.unlink()
    (so_b,) = (cdir / b.name).glob("*.so")
    with open(so_b, "ab") as f:
        f.write(b"\0")
    by = judge(d11).by_name()
    assert flipped(judge(d11)) == {a.name, b.name}
    assert by[a.name].reason == "missing ocachefile"
    assert by[b.name].reason == "ocachefile invalid checksum"


# -- the depot stack -----------------------------------------------------------------------

def test_sources_resolve_to_the_first_depot_that_has_them(d11):
    victim = with_dependents(d11)
    node = d11.root / "node"
    shutil.copytree(d11.depot / victim.path, node / victim.path, symlinks=True)
    report = judge(d11)
    assert flipped(report) == set()
    assert {s.depot for s in report.by_name()[victim.name].sources} == {str(node)}
    # sources spread over two depots are not restored: Julia recompiles
    for extra in victim.includes[1:]:
        (node / victim.path / extra).unlink()
    report = judge(d11)
    assert flipped(report) == dependents(d11, victim.name)
    assert report.by_name()[victim.name].reason == "wrong source"
    assert "compiled from @depot/" in report.by_name()[victim.name].detail


def test_candidates_from_every_depot_newest_first(d11):
    victim = d11.packages[0]
    (ji,) = (d11.variants["haswell"].depot / "compiled" / "v1.11" / victim.name).glob("*.ji")
    newer = d11.root / "node" / "compiled" / "v1.11" / victim.name / ji.name
    newer.parent.mkdir(parents=True)
    data = bytearray(ji.read_bytes())
    data[-1] ^= 0xFF  # corrupt the trailing CRC
    newer.write_bytes(bytes(data))
    shutil.copy2(ji.with_suffix(".so"), newer.with_suffix(".so"))
    os.utime(newer, ns=(0, ji.stat().st_mtime_ns + 10**9))
    p = judge(d11).by_name()[victim.name]
    assert p.will_load and p.cache == str(ji)
    assert [(r.cache, r.reason) for r in p.rejections] == [(str(newer), "invalid checksum")]
    # an older copy is tried after the variant's one: no rejection recorded
    os.utime(newer, ns=(0, ji.stat().st_mtime_ns - 10**9))
    assert judge(d11).by_name()[victim.name].rejections == ()


def test_flags_and_julia_version(d11):
    report = judge(d11)
    no_pkgimages = stale.predict([d11.variants["haswell"].depot, d11.depot], julia_version="1.11.1",
                                 sysimage_modules=modules(d11.variants["haswell"]), host=host("haswell"),
                                 project=d11.project, requested_flags=cachefile.DEFAULT_FLAGS & ~1)
    assert {p.reason for p in no_pkgimages.packages} == {"mismatched flags"}
    other = stale.predict([d11.variants["haswell"].depot, d11.depot], julia_version="1.11.2",
                          sysimage_modules=modules(d11.variants["haswell"]), host=host("haswell"),
                          project=d11.project)
    assert {p.reason for p in other.packages} == {"incompatible header"}
    assert flipped(report) == set()


def _predict_haswell(out: synth.SynthInputs, **kw) -> stale.StalenessReport:
    return stale.predict([out.variants["haswell"].depot, out.depot], sysimage_modules=modules(out.variants["haswell"]),
                         host=host("haswell"), project=out.project, **{"julia_version": out.julia_version, **kw})


def test_header_must_name_the_sessions_build(d11):
    """jl_read_verify_header (src/staticdata_utils.c): uname, arch, the full version string, git
    branch and git commit must equal the running Julia's."""
    victim = with_dependents(d11)
    (ji,) = (d11.variants["haswell"].depot / "compiled" / "v1.11" / victim.name).glob("*.ji")
    original = cachefile.read_cache_file(ji)
    commit = "5e9a32e7af2837e677e60543d4a15faa8d3a7297"
    write_cache_file(dataclasses.replace(original, git_branch="release-1.11", git_commit=commit), ji)
    unknown = _predict_haswell(d11)  # the session's commit not given: not compared, and said so
    assert flipped(unknown) == set()
    assert any("git branch and commit were not given" in n for n in unknown.notes)
    other = _predict_haswell(d11, julia_branch="", julia_commit="")  # what synth's other caches record
    assert flipped(other) == dependents(d11, victim.name)
    assert other.by_name()[victim.name].reason == "incompatible header"
    assert commit in other.by_name()[victim.name].detail
    assert not any("not given" in n for n in other.notes)
    same = _predict_haswell(d11, julia_branch="release-1.11", julia_commit=commit)
    assert victim.name not in flipped(same) and flipped(same)  # the others are another build
    write_cache_file(dataclasses.replace(original, uname="Darwin"), ji)
    darwin = _predict_haswell(d11)
    assert flipped(darwin) == dependents(d11, victim.name)
    assert darwin.by_name()[victim.name].detail == "built on Darwin, the session's Julia was built on Linux"


def test_patch_level_is_exact_and_two_part_versions_are_approximate(d11):
    later = _predict_haswell(d11, julia_version="1.11.9")
    assert {p.reason for p in later.packages} == {"incompatible header"}
    assert all("Julia 1.11.1, the session runs 1.11.9" in p.detail for p in later.packages)
    approximate = _predict_haswell(d11, julia_version="1.11")
    assert flipped(approximate) == set()
    assert any("patch level, git branch and git commit were not compared" in n for n in approximate.notes)
    with pytest.raises(UsageError, match="full version"):
        _predict_haswell(d11, julia_version="1.11", julia_branch="", julia_commit="abc")
    with pytest.raises(UsageError, match="both"):
        _predict_haswell(d11, julia_commit="abc")


# -- the report ----------------------------------------------------------------------------

def test_report_json_and_text(d11):
    victim = with_dependents(d11)
    shutil.rmtree(d11.depot / victim.path)
    report = judge(d11)
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc["summary"] == {"packages": len(d11.packages), "load": len(d11.packages) - len(flipped(report)),
                              "recompile": len(flipped(report))}
    assert {p["name"] for p in doc["packages"] if p["verdict"] != "load"} == flipped(report)
    text = stale.format_report(report, verbose=True)
    assert "will load" in text and "dep missing source" in text and str(d11.depot) in text


def test_bad_arguments(d11):
    with pytest.raises(UsageError, match="empty depot stack"):
        stale.predict([], julia_version="1.11.1", sysimage_modules=[], host=host("haswell"))
    with pytest.raises(UsageError, match="1.8"):
        stale.predict([d11.depot], julia_version="1.8.5", sysimage_modules=[], host=host("haswell"))
    with pytest.raises(UsageError, match="no Project.toml"):
        stale.predict([d11.depot], julia_version="1.11.1", sysimage_modules=[], host=host("haswell"),
                      project="environments/nope")


@given(st.floats(min_value=2.0, max_value=4e9, allow_nan=False), st.integers(min_value=-3, max_value=3))
def test_mtime_tolerances(recorded, delta):
    # base/loading.jl: exact, floor, ceil, microsecond truncation, 1.0, and < 1 us older
    assert stale.mtime_matches(recorded, recorded)
    assert stale.mtime_matches(math.floor(recorded), recorded)
    assert stale.mtime_matches(math.ceil(recorded), recorded)
    assert stale.mtime_matches(1.0, recorded)
    if delta:
        assert not stale.mtime_matches(math.floor(recorded) + 10 * delta + 0.5, recorded)


@given(st.integers(min_value=0, max_value=2**33), st.integers(min_value=0, max_value=999_999_999))
def test_a_whole_second_mtime_from_cvmfs(sec, nsec):
    """A CVMFS client shows the seconds of the mtime a Julia 1.10 cache recorded with
    nanoseconds. Julia recorded ``mtime(f)`` = tv_sec + tv_nsec * 1e-9 as a Float64
    (jl_stat_mtime; Python's st_mtime is the same sum) and accepts the shown value when it
    equals floor(recorded) (base/loading.jl stale_cachefile, #13606): always -- unless the sum
    rounded up to the next whole second (a fraction within ~1e-7 s of 1 at today's epochs),
    then no tolerance applies and Julia recompiles; check predicts exactly that."""
    recorded = float(sec) + nsec * 1e-9
    assert stale.mtime_matches(float(sec), recorded) == (recorded < sec + 1)


def test_a_recorded_mtime_that_rounded_up_is_stale_on_cvmfs(tmp_path):
    f = tmp_path / "src.jl"
    f.write_text("")
    ns = 1_730_419_200_999_999_990
    os.utime(f, ns=(ns, ns))
    recorded = os.stat(f).st_mtime  # what Julia 1.10 records, bit for bit
    assert recorded == 1_730_419_201.0
    assert not stale.mtime_matches(1_730_419_200.0, recorded)  # the whole second CVMFS shows
    assert stale.mtime_matches(1_730_419_200.0, 1_730_419_200.25)


def test_stdlib_outside_the_sysimage_is_left_to_the_bundled_depot(d11):
    stdlib = next(s for p in d11.packages for s in p.stdlibs)  # in the manifest, no tree hash
    mods = [m for m in modules(d11.variants["haswell"]) if m["name"] != stdlib]
    report = judge(d11, mods=mods)
    assert flipped(report) == set()
    assert any("bundled depot" in n for n in report.notes)
    # a required module in neither the sysimage, the environment nor the stack: not locatable
    mods = [m for m in modules(d11.variants["haswell"]) if m["name"] != "Core"]
    assert {p.reason for p in judge(d11, mods=mods).packages} == {"dep missing source"}


class _RecordedHost:
    """A stand-in for cpu.HostCPU exposing only the calls predict() makes (and recording them):
    a host model built from Julia's own table for a CPU name."""

    def __init__(self, cpu: str, arch: str = "x86_64"):
        self.arch, self._cpu, self.calls = arch, cpu, []

    def julia_cpu(self, julia_version: str) -> str:
        self.calls.append(("julia_cpu", julia_version))
        return self._cpu

    def julia_features(self, julia_version: str) -> frozenset[str]:
        self.calls.append(("julia_features", julia_version))
        return cpu_features(self._cpu, self.arch, julia_version)


def test_host_models_and_the_sessions_cpu_target(d11):
    stack = [d11.variants["haswell"].depot, d11.depot]
    targets = read_image_targets(d11.variants["haswell"].sysimage).targets
    kw = {"julia_version": "1.11.1", "sysimage_modules": modules(d11.variants["haswell"]), "project": d11.project}
    skx = _RecordedHost("skylake-avx512")
    for cpu_target in (None, "haswell,-rdrnd"):
        report = stale.predict(stack, host=skx, jit_target=cpu_target, sysimage_targets=targets, **kw)
        assert flipped(report) == set()
    assert ("julia_features", "1.11.1") in skx.calls and ("julia_cpu", "1.11.1") in skx.calls
    assert report.host.cpu == "haswell" and "avx512f" not in report.host.features
    # -C generic: the JIT target lacks AVX2, so haswell images do not fit
    with pytest.raises(NoCompatibleVariantError):
        stale.predict(stack, host=skx, jit_target="generic", sysimage_targets=targets, **kw)
    report = stale.predict(stack, host=skx, jit_target="generic", **kw)
    assert {p.reason for p in report.packages} == {"target mismatch"}
    arm = stale.predict([d11.variants["neoverse-v1"].depot, d11.depot], host=_RecordedHost("neoverse-v1", "aarch64"),
                        **{**kw, "sysimage_modules": modules(d11.variants["neoverse-v1"])})
    assert flipped(arm) == set() and arm.host.arch == "aarch64"


@pytest.fixture(scope="module")
def shared11(tmp_path_factory) -> synth.SynthInputs:
    return synth.generate_release_inputs(tmp_path_factory.mktemp("shared") / "rel", packages=3, seed=9,
                                         targets=("haswell",))


@given(data=st.data())
def test_a_damaged_cache_in_the_stack_is_rejected_never_raises(shared11, data):
    """Truncated, bit-flipped or garbage copies of a cache in the first depot: Julia tries them
    first (newer), rejects them, and loads the intact one."""
    victim = shared11.packages[-1]
    (ji,) = (shared11.variants["haswell"].depot / "compiled" / "v1.11" / victim.name).glob("*.ji")
    good = ji.read_bytes()
    kind = data.draw(st.sampled_from(["flip", "truncate", "garbage"]))
    if kind == "flip":
        bad = bytearray(good)
        bit = data.draw(st.integers(0, 8 * len(good) - 1))
        bad[bit // 8] ^= 1 << (bit % 8)
    elif kind == "truncate":
        bad = good[: data.draw(st.integers(0, len(good) - 1))]
    else:
        bad = data.draw(st.binary(max_size=4096))
    node = shared11.root / "node" / "compiled" / "v1.11" / victim.name
    node.mkdir(parents=True, exist_ok=True)
    copy = node / ji.name
    copy.write_bytes(bytes(bad))
    shutil.copy2(ji.with_suffix(".so"), copy.with_suffix(".so"))
    os.utime(copy, ns=(0, ji.stat().st_mtime_ns + 10**9))
    try:
        p = judge(shared11).by_name()[victim.name]
    finally:
        shutil.rmtree(node)
    assert p.will_load and p.cache == str(ji)
    # a copy whose header no longer says "pkgimage" sorts after the intact one (never tried)
    assert [r.cache for r in p.rejections] in ([], [str(copy)])
    assert all(r.reason in stale.REASONS for r in p.rejections)


@pytest.mark.parametrize(("value", "version", "expected"), [
    ("/a:/b:", "1.10.5", ["/a", "/b", "~"]),
    (":/a::/b", "1.10.5", ["~", "/a", "/b"]),
    ("/a:/b:", "1.11.1", ["/a", "/b"]),
    ("", "1.11.1", ["~"]),
    (":", "1.11.1", ["~"]),
    (":/a:", "1.11.1", ["/a"]),
    (":/a:", "1.12.0", ["~", "/a"]),
    ("/a:", "1.12.0", ["/a"]),
])
def test_expand_depot_path_follows_each_julia_version(monkeypatch, value, version, expected):
    monkeypatch.setenv("HOME", "/home/u")
    assert stale.expand_depot_path(value, version) == [e.replace("~", "/home/u/.julia") for e in expected]
