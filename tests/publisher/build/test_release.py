"""``build``: projects -> release tree -> (published) release, with the STAND-IN julia
(depotdelivery.synth.julia_standin; no Julia exists here: it records each call and writes what
Julia, Pkg and PackageCompiler would, so the node side's readers judge real bytes).

Every build here runs real processes (one per step); failures, resumes, rebuilds, parallel
variants and cancellation are observed from the stand-in's call log and the files."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from depotdelivery.errors import BuildError, ConflictError, UsageError
from depotdelivery.publisher.build import build_release
from depotdelivery.store.keys import keygen, load_private_key
from publisher.build.fixtures import make_world, target

TWO = {"generic": "generic", "haswell": "haswell,-rdrnd"}


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path)


def build(w, variants=None, **kw):
    return build_release(w.repo, "hep", "1.0", [w.project], w.julia, variants or TWO, in_place=True, **w.kwargs(**kw))


def test_in_place_build_publishes_caches_nodes_will_load(world, tmp_path):
    """The end-to-end claim: what build writes, publish signs and a node's `check` (Julia's
    staleness rules on the real bytes) says loads, for every package not in the sysimage."""
    from depotdelivery.julia.stale import format_report
    from depotdelivery.node.check import check
    from depotdelivery.node.prepare import prepare

    keygen(tmp_path / "key")
    r = build(world, keys=[load_private_key(tmp_path / "key")], channel="stable")
    assert r.published is not None and r.published["created"] and r.published["channel_seq"] == 1
    assert [v.caches for v in r.variants] == [3, 3]  # 4 packages, 1 in the sysimage
    (tmp_path / "trust").mkdir()
    shutil.copy(tmp_path / "key.pub", tmp_path / "trust" / "ci.pub")
    node = {"repo": str(world.repo), "channel": "stable", "trusted_keys": str(tmp_path / "trust"),
            "cache": str(tmp_path / "cache"), "microarch": "haswell"}
    prepared = prepare(**node, mode="stack")
    release = prepared.session.release()
    report = check(prepared)
    assert len(report.will_load) == len(report.packages) == 3, format_report(report)
    variant = {v.target: v for v in release.variants}["haswell"]
    assert variant.cpu_target == "haswell,-rdrnd" and variant.sysimage_modules  # from sysimage-modules.json
    assert release.project == "environments/hep"


def test_each_step_is_its_own_julia_process_with_the_exact_environment(world):
    build(world)
    calls = world.calls()
    assert [c["step"] for c in calls[:2]] == ["probe", "instantiate"]
    assert sorted(c["step"] for c in calls[2:]) == sorted(["sysimage", "modules", "precompile"] * 2)
    assert len({c["pid"] for c in calls}) == len(calls)
    depot, final = str(world.final / "depot"), world.final
    bundled = [str(world.base / "julia" / "local" / "share" / "julia"), str(world.base / "julia" / "share" / "julia")]
    inst = calls[1]["env"]
    assert inst["JULIA_DEPOT_PATH"].split(":") == [depot, *bundled], "no empty entry: it would add ~/.julia"
    assert inst["JULIA_PKG_PRECOMPILE_AUTO"] == "0"
    for c in calls[2:]:
        env, built_for = c["env"], target(c)
        variant = {"generic": "generic", "haswell,-rdrnd": "haswell"}[built_for]
        vdepot = str(final / "variants" / variant / "depot")
        assert env["JULIA_PKG_OFFLINE"] == "true" and env["JULIA_PROJECT"] == f"{depot}/environments/hep"
        if c["step"] == "sysimage":
            assert "--sysimage" not in c["argv"] and "JULIA_CPU_TARGET" not in env
            assert env["JULIA_DEPOT_PATH"].split(":")[1:3] == [depot, str(world.tools)]
            assert f'const CPU_TARGET = "{built_for}"' in c["script"] and "cpu_target=CPU_TARGET" in c["script"]
        else:  # with the variant's sysimage loaded, its JULIA_CPU_TARGET, the variant depot first
            assert env["JULIA_CPU_TARGET"] == built_for
            assert c["argv"][c["argv"].index("--sysimage") + 1] == str(final / "variants" / variant / "sys.so")
            assert env["JULIA_DEPOT_PATH"].split(":") == [vdepot, depot, *bundled]
    # the scripts and logs are in the release's build record, with the commands and timings
    rec = json.loads((final / "variants" / "haswell" / "build" / "record.json").read_text())
    assert [s["step"] for s in rec["steps"]] == ["sysimage", "modules", "precompile"]
    for s in rec["steps"]:
        assert (final / "variants" / "haswell" / "build" / "scripts" / s["script"]).read_text().startswith("# depotdelivery")
        assert (final / "variants" / "haswell" / "build" / "logs" / s["log"]).is_file() and s["seconds"] >= 0
    shared = json.loads((final / "depot" / "config" / "depotdelivery-build" / "record.json").read_text())
    assert shared["probe"]["versioninfo"].startswith("Julia Version 1.11.1")
    assert [s["step"] for s in shared["steps"]] == ["probe", "instantiate"]
    assert (final / "depot" / "config" / "depotdelivery-build" / "scripts" / "probe.jl").is_file()
    assert set(shared["manifests"]) == {"hep"} and len(shared["manifests"]["hep"]) == 64
    # nothing PackageCompiler precompiled on the side (scratch depot) reached the variants
    assert not (final / "variants" / "haswell" / "depot" / "compiled" / "v1.11" / world.server.packages[0].name).exists()


def test_rerun_resumes_and_changed_inputs_rebuild_only_what_they_change(world):
    build(world)
    world.clear_log()
    r = build(world)
    assert r.shared_resumed and all(v.resumed for v in r.variants)
    assert [c["step"] for c in world.calls()] == ["probe"]
    world.clear_log()
    r = build(world, {"generic": "generic", "haswell": "haswell"})  # haswell's target string changed
    assert {v.name: v.resumed for v in r.variants} == {"generic": True, "haswell": False}
    assert sorted(world.steps()[1:]) == [("modules", "haswell"), ("precompile", "haswell"), ("sysimage", "haswell")]
    world.clear_log()
    r = build(world, {"generic": "generic"})  # a variant dropped from the list leaves the tree
    assert not (world.final / "variants" / "haswell").exists() and r.variants[0].resumed
    world.clear_log()
    manifest = world.project / "Manifest.toml"
    manifest.write_text(manifest.read_text() + "\n")  # a different manifest: everything again
    r = build(world, {"generic": "generic"})
    assert not r.shared_resumed and not r.variants[0].resumed
    assert [c["step"] for c in world.calls()] == ["probe", "instantiate", "sysimage", "modules", "precompile"]


def test_failure_names_variant_and_step_keeps_the_log_publishes_nothing_and_resumes(world, tmp_path):
    keygen(tmp_path / "key")
    key = load_private_key(tmp_path / "key")
    world.standin(fail=[{"step": "precompile", "cpu_target": "haswell,-rdrnd", "mode": "exit"}])
    with pytest.raises(BuildError, match=r"variant haswell, step precompile: julia exited with exit 1: "
                                         r".*simulated failure.* \(full log: (?P<log>\S+)\)") as info:
        build(world, keys=[key], channel="stable", jobs=1)
    log = str(info.value).rsplit("full log: ", 1)[1].rstrip(")")
    assert "simulated failure of step precompile" in Path(log).read_text()
    assert not (world.final / "release.json").exists() and not (world.repo / "channels").exists()
    assert not (world.final / "variants" / "haswell" / "build" / "record.json").exists()
    world.standin()
    world.clear_log()
    r = build(world, keys=[key], channel="stable", jobs=1)
    assert {v.name: v.resumed for v in r.variants} == {"generic": True, "haswell": False}
    assert r.published is not None and (world.final / "release.json").exists()
    with pytest.raises(ConflictError, match="already published"):
        build(world)


@pytest.mark.parametrize("step, message", [
    ("probe", "step probe: julia exited 0 but wrote no"),
    ("instantiate", "shared depot, step instantiate: julia exited 0 but .* lacks 4 item"),
    ("sysimage", "variant generic, step sysimage: julia exited 0 but wrote no sysimage"),
    ("modules", "variant generic, step modules: julia exited 0 but wrote no .*sysimage-modules.json"),
    ("precompile", "variant generic, step precompile: julia exited 0 but wrote no cache for 3 package"),
])
def test_a_julia_that_exits_0_but_writes_nothing_fails_the_build(world, step, message):
    world.standin(fail=[{"step": step, "mode": "silent"}])
    with pytest.raises((BuildError, UsageError), match=message):
        build(world, {"generic": "generic"})
    assert not (world.final / "variants" / "generic" / "build" / "record.json").exists()


def test_native_targets_are_refused_before_anything_is_built(world):
    for refused in ("native", "generic;native,clone_all", "help"):
        world.clear_log()
        with pytest.raises(UsageError, match="variant x: refusing JULIA_CPU_TARGET .*native"):
            build(world, {"generic": "generic", "x": refused})
        assert [c["step"] for c in world.calls()] == ["probe"]
    with pytest.raises(UsageError, match="variant y: invalid CPU target"):
        build(world, {"y": "haswell,base(3)"})


def test_a_sysimage_built_for_the_build_machine_is_refused(world):
    """PackageCompiler without cpu_target builds for `native`: the stand-in models it, the
    image's own clone targets give it away."""
    world.standin(fail=[{"step": "sysimage", "mode": "native"}], host_cpu="icelake-server")
    with pytest.raises(BuildError, match=r"variant haswell, step sysimage: .*sys.so was built for icelake-server, "
                                         r"not for JULIA_CPU_TARGET 'haswell,-rdrnd'"):
        build(world, {"haswell": "haswell,-rdrnd"})


def test_pkgimages_for_another_target_than_the_sysimage_are_refused(world):
    world.standin(fail=[{"step": "precompile", "mode": "native"}], host_cpu="icelake-server")
    with pytest.raises(BuildError, match=r"variant haswell, step precompile: .* was compiled for icelake-server but "
                                         r"the variant's sysimage is haswell"):
        build(world, {"haswell": "haswell,-rdrnd"})


def test_julia_1_10_must_be_built_at_its_final_path(tmp_path):
    w = make_world(tmp_path, version="1.10.5")
    with pytest.raises(UsageError, match="Julia 1.10.5 caches record absolute source paths: .*--in-place"):
        build_release(w.repo, "hep", "1.0", [w.project], w.julia, TWO, **w.kwargs(build_dir=tmp_path / "elsewhere"))
    r = build(w, {"generic": "generic"})
    assert r.julia_version == "1.10.5" and r.variants[0].caches == 3


def test_a_manifest_resolved_by_another_julia_is_built_with_a_warning(world):
    manifest = world.project / "Manifest.toml"
    manifest.write_text(manifest.read_text().replace('julia_version = "1.11.1"', 'julia_version = "1.10.5"'))
    events = []
    r = build(world, {"generic": "generic"}, events=events.append)
    assert any("resolved by Julia 1.10.5, the build uses 1.11.1" in w for w in r.warnings)
    assert [e for e in events if e["event"] == "warning"]


def test_julia_1_11_builds_elsewhere_and_publish_copies_it(world, tmp_path):
    keygen(tmp_path / "key")
    r = build_release(world.repo, "hep", "1.0", [world.project], world.julia, {"generic": "generic"},
                      **world.kwargs(build_dir=tmp_path / "out", keys=[load_private_key(tmp_path / "key")]))
    assert r.path == tmp_path / "out" and (world.final / "release.json").exists()
    assert (world.final / "variants" / "generic" / "sys.so").is_file()


def test_a_later_publish_in_place_takes_the_recorded_target_strings(world, tmp_path):
    from depotdelivery.cli import main
    from depotdelivery.store.repo import Repository

    build(world)
    keygen(tmp_path / "key")
    assert main(["publish", "--repo", str(world.repo), "--name", "hep", "--version", "1.0", "--in-place",
                 "--key", str(tmp_path / "key"), "--quiet"]) == 0
    release = Repository.open(world.repo).read_release("hep", "1.0")
    assert {v.target: v.cpu_target for v in release.variants} == TWO


def test_packages_only_in_home_julia_still_land_in_the_release(world):
    """Pkg counts a package as installed when any depot in the stack has it: with ~/.julia in
    JULIA_DEPOT_PATH (an empty entry) the release would miss it. build never adds it."""
    shutil.copytree(world.server.depot / "packages", world.base / "home" / ".julia" / "packages")
    build(world, {"generic": "generic"})
    for p in world.server.packages:
        assert (world.final / "depot" / p.path).is_dir(), p.name


def test_offline_rerun_instantiates_from_what_is_there(world):
    build(world, {"generic": "generic"})
    shutil.rmtree(world.server.depot)  # no network any more
    shutil.rmtree(world.final / "depot" / "config" / "depotdelivery-build")  # forget the shared record
    world.clear_log()
    r = build(world, {"generic": "generic"}, offline=True)
    assert not r.shared_resumed
    inst = [c for c in world.calls() if c["step"] == "instantiate"]
    assert inst and inst[0]["env"]["JULIA_PKG_OFFLINE"] == "true"
    shutil.rmtree(world.final / "depot" / "packages" / world.server.packages[1].name)
    shutil.rmtree(world.final / "depot" / "config" / "depotdelivery-build")
    with pytest.raises(BuildError, match="shared depot, step instantiate: .*offline mode"):
        build(world, {"generic": "generic"}, offline=True)


@pytest.mark.slow
def test_variants_build_in_parallel_up_to_jobs(world):
    world.standin(delay={"sysimage": 0.6})
    build(world, jobs=2)
    starts = sorted(c["start"] for c in world.calls() if c["step"] == "sysimage")
    assert starts[1] - starts[0] < 0.5, "the second sysimage started before the first one finished"
    world.clear_log()
    shutil.rmtree(world.final)
    build(world, jobs=1)
    calls = [c for c in world.calls() if c["step"] != "probe" and c["step"] != "instantiate"]
    order = [target(c) for c in calls]
    assert order == sorted(order, key=order.index) and len(set(order[:3])) == 1, "one variant at a time"


@pytest.mark.slow
def test_a_failure_stops_the_running_variants(world):
    world.standin(fail=[{"step": "sysimage", "cpu_target": "generic", "mode": "exit"},
                        {"step": "sysimage", "cpu_target": "haswell,-rdrnd", "mode": "hang"}],
                  delay={"sysimage": 0.5})
    t0 = time.monotonic()
    with pytest.raises(BuildError, match="variant generic, step sysimage"):
        build(world, jobs=2)
    assert time.monotonic() - t0 < 20
    hung = [c["pid"] for c in world.calls() if target(c) == "haswell,-rdrnd"]
    assert hung
    for pid in hung:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_defaults_are_the_recommended_variants_for_the_julia_version(tmp_path):
    from depotdelivery.publisher.build import default_variants
    from depotdelivery.publisher.build.plan import Probe

    def probe(v):
        return Probe(version=v, commit="", arch="x86_64", cpu_name="", julia="", bundled_depots=(), versioninfo="")

    assert "znver4" in default_variants(probe("1.11.1")) and "znver4" not in default_variants(probe("1.10.5"))
    assert default_variants(probe("1.10.5"))["haswell"] == "haswell,-rdrnd"
    assert default_variants(probe("1.11.1"), "official") == {
        "multi": "generic;sandybridge,-xsaveopt,clone_all;haswell,-rdrnd,base(1)"}


def test_cli_json_lines_and_exit_codes(world, capsys):
    from depotdelivery.cli import main

    argv = ["build", "--repo", str(world.repo), "--name", "hep", "--version", "1.0", "--project", str(world.project),
            "--julia", world.julia, "--variant", "generic=generic", "--in-place", "--tools-depot", str(world.tools),
            "--work-dir", str(world.base / "work"), "--sysimage-packages", world.server.packages[0].name, "--json"]
    world.standin(fail=[{"step": "sysimage", "mode": "exit"}])
    assert main(argv) == 14
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    assert events[-1]["event"] == "error" and events[-1]["exit_code"] == 14
    assert err.count("\n") == 1 and err.startswith("depotdelivery: variant generic, step sysimage: ")
    world.standin()
    assert main(argv) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {(e.get("variant"), e["step"]) for e in events if e["event"] == "step"} >= {
        (None, "probe"), ("generic", "sysimage"), ("generic", "modules"), ("generic", "precompile")}
    assert events[-1]["event"] == "result" and events[-1]["variants"][0]["caches"] == 3
    assert main(argv[:-1] + ["--publish"]) == 2
    assert "--publish needs --key KEY" in capsys.readouterr().err


@pytest.fixture
def cvmfs(world, monkeypatch):
    """The recording cvmfs_server STAND-IN (tests/stand_ins/cvmfs_server; see tests/publisher/test_cvmfs.py)."""
    import sys

    stand_ins = Path(__file__).resolve().parents[2] / "stand_ins"
    state = world.base / "cvmfs-state"
    monkeypatch.setenv("PATH", f"{stand_ins}:{Path(sys.executable).parent}:{os.environ['PATH']}")
    monkeypatch.setenv("CVMFS_STANDIN_DIR", str(state))
    monkeypatch.setenv("CVMFS_STANDIN_REPO", str(world.repo))

    def calls():
        f = state / "calls.jsonl"
        return [json.loads(line)["argv"][0] for line in f.read_text().splitlines()] if f.exists() else []
    return calls


def test_cvmfs_build_and_publish_share_one_transaction(world, cvmfs, tmp_path):
    keygen(tmp_path / "key")
    key = load_private_key(tmp_path / "key")
    world.standin(fail=[{"step": "precompile", "cpu_target": "haswell,-rdrnd", "mode": "exit"}])
    with pytest.raises(BuildError, match=r"variant haswell, step precompile: .*full log: (?P<log>\S+)"):
        build(world, keys=[key], channel="stable", cvmfs="sw.example.org", jobs=1)
    assert cvmfs() == ["transaction", "abort"]
    assert sorted(os.listdir(world.repo)) == [], "the abort discarded the half-built tree"
    assert (world.base / "work" / "logs" / "haswell" / "precompile.log").is_file(), "the log survives the abort"
    assert sorted(os.listdir(world.base / "work" / "stash" / "variants")) == ["generic"], "finished: kept aside"
    world.standin()
    world.clear_log()
    r = build(world, keys=[key], channel="stable", cvmfs="sw.example.org")
    assert cvmfs() == ["transaction", "abort", "transaction", "publish"]
    assert {v.name: v.resumed for v in r.variants} == {"generic": True, "haswell": False} and r.shared_resumed
    assert sorted(world.steps()[1:]) == [("modules", "haswell,-rdrnd"), ("precompile", "haswell,-rdrnd"),
                                         ("sysimage", "haswell,-rdrnd")]
    assert not (world.base / "work" / "stash").exists()
    state = json.loads((world.base / "cvmfs-state" / "state.json").read_text())
    assert state["sw.example.org"] == "closed" and state["tags"]["sw.example.org"] == ["hep-1.0"]
    assert r.published["channel_seq"] == 1 and (world.repo / "channels" / "stable.json").is_file()
    with pytest.raises(UsageError, match="--cvmfs builds and publishes in one transaction"):
        build(world, cvmfs="sw.example.org")


def test_developed_packages_and_several_projects(world, tmp_path):
    """A package the manifest develops (`path = ...`) is copied into depot/dev/ with a relative
    path, compiled like the others, and a node loads its cache; a second project becomes a
    second environment, precompiled too."""
    import re

    from depotdelivery.node.check import check
    from depotdelivery.node.prepare import prepare

    dev = world.server.packages[-1]  # a leaf package: nothing else depends on it
    shutil.copytree(world.server.depot / dev.path, world.project / "src-dev" / dev.name)
    manifest = world.project / "Manifest.toml"
    text = manifest.read_text()
    entry = re.search(rf"\[\[deps\.{dev.name}\]\]\n(.*?)\n\n", text, re.DOTALL)
    body = re.sub(r'git-tree-sha1 = ".*"\n', f'path = "src-dev/{dev.name}"\n', entry.group(1) + "\n")
    manifest.write_text(text.replace(entry.group(1) + "\n", body))
    other = world.base / "projects" / "ana"
    shutil.copytree(world.project, other, ignore=shutil.ignore_patterns("src-dev"))
    (other / "Manifest.toml").write_text(text)  # the registered version of the same package
    keygen(tmp_path / "key")
    build_release(world.repo, "hep", "1.0", [world.project, other], world.julia, {"haswell": "haswell,-rdrnd"},
                  in_place=True, **world.kwargs(keys=[load_private_key(tmp_path / "key")], channel="stable"))
    depot = world.final / "depot"
    assert (depot / "dev" / dev.name / "Project.toml").is_file()
    assert f'path = "../../dev/{dev.name}"' in (depot / "environments" / "hep" / "Manifest.toml").read_text()
    assert (depot / "environments" / "ana" / "Manifest.toml").read_text() == text
    assert (depot / dev.path).is_dir(), "ana's registered copy is installed too"
    compiled = world.final / "variants" / "haswell" / "depot" / "compiled" / "v1.11" / dev.name
    assert len(list(compiled.glob("*.ji"))) == 2, "one cache per environment"
    (tmp_path / "trust").mkdir()
    shutil.copy(tmp_path / "key.pub", tmp_path / "trust" / "ci.pub")
    node = {"repo": str(world.repo), "channel": "stable", "trusted_keys": str(tmp_path / "trust"),
            "cache": str(tmp_path / "cache"), "microarch": "haswell"}
    prepared = prepare(**node, mode="stack")
    report = check(prepared)
    assert len(report.will_load) == len(report.packages) == 3


def test_a_project_that_is_a_package_ships_its_sources_and_cache(world, tmp_path):
    from depotdelivery.node.check import check
    from depotdelivery.node.prepare import prepare

    project = world.project / "Project.toml"
    project.write_text('name = "HepAnalysis"\nuuid = "7d8a2f4e-2b3c-4f5a-9d6e-1a2b3c4d5e6f"\nversion = "0.1.0"\n\n'
                       + project.read_text())
    (world.project / "src").mkdir()
    (world.project / "src" / "HepAnalysis.jl").write_text("module HepAnalysis\nend\n")
    build(world, {"haswell": "haswell,-rdrnd"})
    (world.project / "src" / "HepAnalysis.jl").write_text("module HepAnalysis\ngreet() = 1\nend\n")
    keygen(tmp_path / "key")
    r = build(world, {"haswell": "haswell,-rdrnd"}, keys=[load_private_key(tmp_path / "key")], channel="stable")
    assert not r.shared_resumed and not r.variants[0].resumed, "a changed source of the project rebuilds"
    shipped = world.final / "depot" / "environments" / "hep" / "src" / "HepAnalysis.jl"
    assert shipped.read_text() == "module HepAnalysis\ngreet() = 1\nend\n"
    compiled = world.final / "variants" / "haswell" / "depot" / "compiled" / "v1.11" / "HepAnalysis"
    assert list(compiled.glob("*.ji"))
    (tmp_path / "trust").mkdir()
    shutil.copy(tmp_path / "key.pub", tmp_path / "trust" / "ci.pub")
    prepared = prepare(repo=str(world.repo), channel="stable", trusted_keys=str(tmp_path / "trust"),
                       cache=str(tmp_path / "cache"), microarch="haswell", mode="stack")
    report = check(prepared)
    assert len(report.will_load) == len(report.packages) >= 3
