"""``check --julia``: the comparison of a real Julia's report with the prediction, against the
clearly named stand-in tests/stand_ins/julia-loading (no Julia can run here), which prints what
Julia 1.10, 1.11 and 1.12 print, in their exact formats, with values from the real files."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from node_fixtures import build_repo, captured_cpu

from depotdelivery.errors import JuliaOutputError, UsageError
from depotdelivery.node.realjulia import (
    PROBE,
    PROBE_PREFIX,
    check_with_julia,
    parse_probe,
)

STAND_IN = Path(__file__).parent.parent / "stand_ins" / "julia-loading"
HASWELL = str(captured_cpu("linux-rhel7-haswell"))
VERSIONS = ("1.10.5", "1.11.1", "1.12.1")


@dataclass
class Node:
    prepared: object
    release: object
    host: object
    julia: Path
    base: Path

    def run(self, monkeypatch, scenario: dict | None = None, **kw):
        sc = {"version": self.release.julia_version, "cpu_name": self.host.julia_cpu(self.release.julia_version),
              **(scenario or {})}
        path = self.base / "scenario.json"
        path.write_text(json.dumps(sc))
        monkeypatch.setenv("JULIA_STANDIN_SCENARIO", str(path))
        return check_with_julia(self.prepared, str(self.julia), self.release, self.host, **kw)

    def package(self, index: int = 0):
        from depotdelivery.node.check import check

        return check(self.prepared, self.release, self.host).packages[index]


def _node(base: Path, julia_version: str, mode: str = "stack") -> Node:
    from depotdelivery.node.prepare import prepare

    repo = build_repo(base, targets=("generic", "haswell"), julia_version=julia_version, packages=3)
    prepared = prepare(repo=str(repo.root), trusted_keys=str(repo.trusted), cache=str(base / f"cache-{mode}"),
                       cpuinfo=HASWELL, mode=mode)
    release, host = prepared.session.release(), prepared.session.host()
    julia = base / "bin" / "julia"
    julia.parent.mkdir(exist_ok=True)
    # the stand-in runs with this interpreter; the wrapper is named like the real binary
    julia.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STAND_IN}" "$@"\n')
    julia.chmod(0o755)
    return Node(prepared, release, host, julia, base)


@pytest.fixture(scope="module", params=VERSIONS)
def node(request, tmp_path_factory):
    return _node(tmp_path_factory.mktemp(f"rj-{request.param}"), request.param)


def test_a_correct_run_agrees_field_by_field(node, monkeypatch):
    got = node.run(monkeypatch, {"bundled_noise": True})
    assert got.agree, [m.line for m in got.mismatches]
    loaded = {p.name: p for p in got.probe.packages}
    report = json.loads(json.dumps(got.to_dict()))  # the report is JSON
    assert report["agree"] is True and report["run"]["stderr"] == got.run.stderr
    # every predicted cache is the one Julia loaded, with the build id of its header
    for p in (node.package(i) for i in range(len(loaded))):
        assert os.path.normpath(loaded[p.name].cache) == os.path.normpath(p.cache)
        assert loaded[p.name].build_id == p.build_id
    # the stdlib Julia loads from its bundled depot is outside the prediction and ignored
    assert any("/share/julia/compiled/" in x.cache for x in got.log.loads)


def _reasons(version: str) -> list[str]:
    common = ["incompatible header", "mismatched flags", "requires pkgimages", "target mismatch",
              "missing ocachefile", "for different buildid", "wrong julia version", "wrong dep version loaded",
              "wrong source", "missing sourcefile", "invalid checksum", "ocachefile invalid checksum",
              "preferences hash mismatch", "dep uuid changed", "dependency not loadable"]
    if version.startswith("1.10"):
        return common + ["include_dependency mtime change"]
    return common + ["include_dependency fsize change", "include_dependency fhash change", "nonresolveable depot"]


def test_a_cache_julia_rejects_for_each_reason_it_gives_is_a_named_mismatch(node, monkeypatch):
    """Every rejection message of this version (as many per Julia run as there are packages)."""
    from depotdelivery.node.check import check

    packages = check(node.prepared, node.release, node.host).packages
    reasons = _reasons(node.release.julia_version)
    for start in range(0, len(reasons), len(packages)):
        chunk = dict(zip((p.name for p in packages), reasons[start:start + len(packages)]))
        got = node.run(monkeypatch, {"packages": {n: {"reject": [r]} for n, r in chunk.items()}})
        by_pkg = {m.package: m for m in got.mismatches}
        julia_said = {(r.reason, os.path.normpath(r.cache)) for r in got.log.rejections}
        for p in packages:
            if p.name not in chunk:
                continue
            reason, m = chunk[p.name], by_pkg.get(p.name)
            assert m is not None and (m.field, m.predicted, m.julia) == ("verdict", "load", "recompile"), (reason, m)
            if reason != "dependency not loadable":  # isprecompiled moves on without a message there
                assert (reason, os.path.normpath(p.cache)) in julia_said
                assert m.line.endswith(f"(it rejected that file: {reason})")


def test_a_message_in_another_versions_wording_is_refused(node, monkeypatch):
    c = node.package().cache
    if node.release.julia_version.startswith("1.10"):  # the 1.11+ content check does not exist in 1.10
        line = f"Rejecting stale cache file {c} because file size of /x.jl has changed (file size 2, before 1)"
    else:  # 1.10's mtime wording
        line = f"Rejecting stale cache file {c} (mtime 1.0e9) because file /x.jl (mtime 2.0e9) has changed"
    with pytest.raises(JuliaOutputError, match="a loading message depotdelivery does not know"):
        node.run(monkeypatch, {"stderr": [f"┌ Debug: {line}", "└ @ Base loading.jl:3000"]})


def test_a_different_cpu_name_and_a_different_sysimage_are_mismatches(node, monkeypatch):
    got = node.run(monkeypatch, {"cpu_name": "znver3", "image_file": "/opt/julia/lib/julia/sys.so"})
    fields = {m.field: m for m in got.mismatches}
    assert set(fields) == {"cpu_name", "image_file"}
    assert fields["cpu_name"].predicted == node.host.julia_cpu(node.release.julia_version) and fields["cpu_name"].julia == "znver3"
    assert fields["image_file"].predicted == node.prepared.julia_args[1]


def test_another_depot_path_another_cache_and_another_build_id_are_mismatches(node, monkeypatch, tmp_path):
    import shutil

    first, second = node.package(0), node.package(1)
    # a second candidate of the first package in the node depot, older, so both sides try the
    # published one first; Julia (the scenario) rejects that one and loads the copy
    rel = os.path.relpath(first.cache, first.depot)
    copy = Path(node.prepared.depot, os.path.dirname(rel), os.path.basename(rel).split("_")[0] + "_zzzzz.ji")
    copy.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copy(first.cache, copy)
        if os.path.exists(first.cache[:-3] + ".so"):
            shutil.copy(first.cache[:-3] + ".so", str(copy)[:-3] + ".so")
        os.utime(copy, (1.0e9, 1.0e9))
        assert node.package(0).cache == first.cache  # the prediction still loads the published cache
        got = node.run(monkeypatch, {
            "depot_path": ["/elsewhere", *node.prepared.depot_path],
            "packages": {first.name: {"reject": ["invalid checksum"]}, second.name: {"build_id": "f" * 32}}})
    finally:
        for f in (copy, Path(str(copy)[:-3] + ".so")):
            f.unlink(missing_ok=True)
    fields = {(m.field, m.package): m for m in got.mismatches}
    assert set(fields) == {("depot_path", None), ("cache", first.name), ("build_id", second.name)}
    assert os.path.normpath(fields[("cache", first.name)].julia) == os.path.normpath(str(copy))
    assert fields[("build_id", second.name)].julia == "f" * 32


def test_another_julia_version_and_a_failed_load(node, monkeypatch):
    p = node.package()
    got = node.run(monkeypatch, {"version": node.release.julia_version[:-1] + "9",
                                 "packages": {p.name: {"load_failed": "InitError: boom"}}})
    assert {m.field for m in got.mismatches} == {"julia_version", "load_failed"}


def test_agreement_and_disagreement_on_a_real_stale_source(tmp_path, monkeypatch):
    """Julia 1.11 in copy mode: a package source edited in the node depot (a real condition);
    the stand-in prints the size Julia would see. Agreement when Julia says what was predicted."""
    node = _node(tmp_path, "1.11.1", mode="copy")
    p = node.package()
    source = Path(p.sources[0].resolved)
    source.write_bytes(source.read_bytes() + b"\n# edited on the node\n")
    p = node.package()
    assert p.verdict == "recompile" and p.reason == "include_dependency fsize change"
    agree = node.run(monkeypatch, {"packages": {p.name: {"reject": ["include_dependency fsize change"]}}})
    assert agree.agree, [m.line for m in agree.mismatches]
    (r,) = agree.log.rejections
    assert r.values["file"] == str(source) and int(r.values["actual"]) == source.stat().st_size
    wrong = node.run(monkeypatch, {"packages": {p.name: {"reject": ["include_dependency fhash change"]}}})
    assert [(m.field, m.predicted, m.julia) for m in wrong.mismatches] == [
        ("rejection", "include_dependency fsize change", ["include_dependency fhash change"])]
    loads = node.run(monkeypatch, {})
    assert [(m.field, m.predicted, m.julia) for m in loads.mismatches] == [("verdict", "recompile", "load")]


def test_julia_110_mtime_rejection_agrees(tmp_path, monkeypatch):
    node = _node(tmp_path, "1.10.5")
    p = node.package()
    source = Path(p.sources[0].resolved)
    os.utime(source, (source.stat().st_atime, source.stat().st_mtime + 3600.5))
    p = node.package()
    assert p.reason == "include_dependency mtime change"
    got = node.run(monkeypatch, {"packages": {p.name: {"reject": ["include_dependency mtime change"]}}})
    assert got.agree, [m.line for m in got.mismatches]
    assert float(got.log.rejections[0].values["actual"]) == source.stat().st_mtime


@pytest.mark.parametrize("scenario, match", [
    ({"stderr": ["┌ Debug: Rejecting cache file /x.ji because of sunspots", "└ @ Base loading.jl:1"]}, "does not know"),
    ({"cut": True, "packages": {"*": {}}}, None),
    ({"exit": 1}, "exited with status 1"),
])
def test_output_it_does_not_understand_is_a_clear_error(node, monkeypatch, scenario, match):
    if scenario.get("cut"):
        scenario = {"cut": True, "packages": {node.package().name: {"reject": ["invalid checksum"]}}}
        match = "never ends"
    with pytest.raises(JuliaOutputError, match=match):
        node.run(monkeypatch, scenario)


def test_the_run_time_is_bounded(tmp_path, monkeypatch):
    node = _node(tmp_path, "1.12.1")
    with pytest.raises(JuliaOutputError, match="within 1 s and was killed"):
        node.run(monkeypatch, {"sleep": 30}, timeout=1.0)


def test_julia_gets_exactly_the_prepared_call(node, monkeypatch, tmp_path):
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("JULIA_STANDIN_LOG", str(log))
    node.run(monkeypatch)
    (argv,) = [json.loads(x) for x in log.read_text().splitlines()]
    assert argv[:5] == ["--startup-file=no", "--history-file=no", "--color=no", "--sysimage", node.prepared.julia_args[1]]
    assert argv[5:7] == ["-e", PROBE] and all("=" in a for a in argv[7:])


def test_julia_writes_nothing_outside_the_node_depot(tmp_path, monkeypatch):
    """Julia touches every cache it loads (the stand-in does too): on a writable repository the
    check runs it with the repository and the other depots read-only (a private mount namespace)."""
    from depotdelivery.node.realjulia import namespace_problem

    node = _node(tmp_path, "1.11.1")
    repo = Path(node.prepared.session.root)
    before = {p: p.stat().st_mtime_ns for p in repo.rglob("*.ji")}
    got = node.run(monkeypatch)
    assert got.agree, [m.line for m in got.mismatches]
    if namespace_problem() is not None:
        assert any("writable and" in n for n in got.notes)
        pytest.skip(f"no private mount namespace here: {namespace_problem()} (the report says so)")
    assert str(repo.resolve()) in got.run.readonly
    assert {p: p.stat().st_mtime_ns for p in repo.rglob("*.ji")} == before


def test_a_julia_that_is_not_executable_is_a_usage_error(node, tmp_path):
    with pytest.raises(UsageError, match="not an executable"):
        check_with_julia(node.prepared, str(tmp_path / "nope" / "julia"), node.release, node.host)


_field = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30).filter(lambda s: "\t" not in s)


@given(version=_field, cpu=_field, depots=st.lists(_field, max_size=3), extra=st.lists(_field, max_size=3))
def test_probe_lines_round_trip_among_other_stdout(version, cpu, depots, extra):
    lines = [f"{PROBE_PREFIX}format\t1", f"{PROBE_PREFIX}julia_version\t{version}", *extra,
             f"{PROBE_PREFIX}cpu_name\t{cpu}", f"{PROBE_PREFIX}image_file\t/i", f"{PROBE_PREFIX}bindir\t/b",
             *(f"{PROBE_PREFIX}depot\t{d}" for d in depots), f"{PROBE_PREFIX}end"]
    extra = [x for x in extra if not x.startswith(PROBE_PREFIX)]
    lines = [x for x in lines if not x.startswith(PROBE_PREFIX) or x.split("\t")[0] != PROBE_PREFIX.rstrip()]
    probe = parse_probe("\n".join(lines) + "\n")
    assert (probe.julia_version, probe.cpu_name, list(probe.depots)) == (version, cpu, depots)


@pytest.mark.parametrize("stdout, match", [
    ("", "does not end with"),
    (f"{PROBE_PREFIX}format\t1\n{PROBE_PREFIX}end\n", "missing or wrong"),
    (f"{PROBE_PREFIX}loaded\tx\n{PROBE_PREFIX}end\n", "not one depotdelivery wrote"),
])
def test_a_broken_probe_output_is_refused(stdout, match):
    with pytest.raises(JuliaOutputError, match=match):
        parse_probe(stdout)


def test_a_rejection_the_prediction_never_looked_at_is_named_except_a_dependency_build_search(node, monkeypatch):
    """Julia rejected another cache of a package in the stack: a mismatch, unless it was passed
    over for its build id while Julia looked for the exact build a dependent needs."""
    from dataclasses import replace as dc_replace

    from depotdelivery.julia.loadinglog import RejectEvent
    from depotdelivery.node.check import check
    from depotdelivery.node.realjulia import compare_with_julia

    got = node.run(monkeypatch)
    report = check(node.prepared, node.release, node.host)
    p = report.packages[0]
    other = os.path.join(os.path.dirname(p.cache), "zzzzz_other.ji")

    def with_rejection(reason: str):
        event = RejectEvent(cache=other, reason=reason, pkg=None, values={}, at=1, message="")
        return compare_with_julia(report, got.probe, dc_replace(got.log, rejections=(event,)),
                                  cpu_name=node.host.julia_cpu(node.release.julia_version),
                                  image_file=node.prepared.julia_args[1])

    assert with_rejection("for different buildid") == []
    (m,) = with_rejection("invalid checksum")
    assert (m.field, m.package, m.predicted, m.julia) == ("rejection", p.name, None, ["invalid checksum"])
