"""Module-graph fingerprints (issue 14): made from the check prediction of a real published
release, canonical JSON with one hash, and the one-line-per-package diff."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from node_fixtures import build_repo, captured_cpu

from depotdelivery._record import replace
from depotdelivery.errors import FormatError
from depotdelivery.node.fingerprint import take_fingerprint
from depotdelivery.store.fingerprint import (
    Dependency,
    Fingerprint,
    PackageEntry,
    compare,
    load,
    load_order,
    parse,
)

HASWELL = str(captured_cpu("linux-rhel7-haswell"))
SKYLAKE_AVX512 = str(captured_cpu("linux-rhel7-skylake_avx512"))


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return build_repo(tmp_path_factory.mktemp("fp-repo"), targets=("generic", "haswell"))


def _take(repo, cache: Path, **kw):
    if "microarch" not in kw:
        kw.setdefault("cpuinfo", HASWELL)
    return take_fingerprint(repo=str(repo.root), trusted_keys=str(repo.trusted), cache=str(cache), **kw)


def test_two_nodes_with_the_same_graph_have_the_same_hash(repo, tmp_path):
    a = _take(repo, tmp_path / "a")
    b = _take(repo, tmp_path / "b", mode="copy")  # other depot paths, other files, same bytes
    assert a.hash == b.hash and compare(a, b).same
    assert all(p.verdict == "load" and p.cache.startswith("compiled/v1.11/") for p in a.packages)
    assert a.sysimage is not None and a.sysimage.clone_name == "haswell"
    # every package comes after the packages its cache was built against
    seen: set[str] = set()
    for p in a.packages:
        assert {d.name for d in p.deps} & {q.name for q in a.packages} <= seen, p.name
        seen.add(p.name)


def test_the_json_round_trips_and_names_an_edited_field(repo, tmp_path):
    fp = _take(repo, tmp_path / "c")
    doc = json.loads(fp.to_bytes())
    assert parse(doc, where="x").hash == fp.hash == doc["hash"]
    path = tmp_path / "fp.json"
    path.write_bytes(fp.to_bytes())
    assert load(path) == fp
    doc["graph"]["packages"][0]["build_id"] = "0" * 32
    with pytest.raises(FormatError, match="field hash: .* not the hash of the graph"):
        parse(doc, where="x")
    doc["graph"]["packages"][0]["verdict"] = "maybe"
    with pytest.raises(FormatError, match=r"packages\[0\]\.verdict"):
        parse(doc, where="x")


def test_diff_names_the_clone_and_each_package_that_would_recompile(tmp_path):
    repo = build_repo(tmp_path / "r110", targets=("generic", "haswell"), julia_version="1.10.5")
    ci = _take(repo, tmp_path / "ci", reference="ci-runner-3")
    node = _take(repo, tmp_path / "node", mode="copy", reference="node17")
    diff = compare(ci, node)
    kinds = {d.kind for d in diff.differences}
    # copy mode relocates the sources, which Julia 1.10 caches record by absolute path and mtime
    assert "recompile" in kinds, diff.lines()
    assert len(diff.differences) == len({d.package for d in diff.differences})  # one line per package
    line = next(d.line for d in diff.differences if d.kind == "recompile")
    assert line.startswith(f"{next(d.package for d in diff.differences if d.kind == 'recompile')}: would recompile on node17 (")
    assert "ci-runner-3 loads compiled/v1.10/" in line


def test_a_host_that_picks_another_clone_differs_in_one_session_line(repo, tmp_path):
    a = _take(repo, tmp_path / "a")
    assert a.sysimage is not None
    other = replace(a, sysimage=replace(a.sysimage, clone_index=1, clone_name="sandybridge"), reference="node")
    diff = compare(replace(a, reference="ci"), other)
    assert [(d.kind, d.package) for d in diff.differences] == [("clone", None)]
    assert diff.lines()[0].startswith("sysimage clone: ci picks clone 0 (haswell), node picks clone 1 (sandybridge)")
    assert other.hash != a.hash


def _entry(name: str, deps: tuple[str, ...] = ()) -> PackageEntry:
    return PackageEntry(name=name, uuid=None, verdict="load", cache=f"compiled/v1.11/{name}/x.ji",
                        deps=tuple(Dependency(name=d, uuid=None, build_id="0" * 32) for d in deps))


@given(st.permutations(["A", "B", "C", "D", "E"]))
def test_load_order_puts_dependencies_first_whatever_the_input_order(order):
    graph = {"A": (), "B": ("A",), "C": ("A", "B"), "D": ("Core",), "E": ("C", "D")}
    out = [p.name for p in load_order([_entry(n, graph[n]) for n in order])]
    assert out == ["A", "B", "C", "D", "E"]


def test_missing_and_different_cache_lines():
    a_pkgs = (_entry("A"), _entry("B", ("A",)))
    a = Fingerprint(julia_version="1.11.1", arch="x86_64", sysimage=None, packages=a_pkgs, reference="ci")
    b = replace(a, packages=(replace(a_pkgs[0], cache_blake3="f" * 64),), reference="node")
    assert compare(a, b).lines() == [
        ("A: different cache (the same path with other bytes): ci compiled/v1.11/A/x.ji [], "
        "node compiled/v1.11/A/x.ji [ffffffffffff]"),
        "B: missing on node"]


def test_a_pkgimage_clone_julia_picks_differently_is_a_package_line(repo, tmp_path):
    a = replace(_take(repo, tmp_path / "a"), reference="ci")
    first = a.packages[0]
    assert first.ocache is not None and first.clone_name == "haswell"  # the clone the JIT target takes
    b = replace(a, packages=(replace(first, clone_index=1, clone_name="sandybridge"), *a.packages[1:]), reference="node")
    assert [(d.kind, d.package, d.line) for d in compare(a, b).differences] == [
        ("clone", first.name, f"{first.name}: pkgimage clone: ci picks clone 0 (haswell), node picks clone 1 (sandybridge)")]
