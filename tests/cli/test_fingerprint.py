"""The A/B workflow a site runs at rollout, through the console script: CI fingerprints the
build it is about to publish, `publish --fingerprint` records (and signs) it per variant, and
`check` on a node says "same module graph as CI" or prints the diff with exit 12; `fingerprint
diff`; `check --julia` with the stand-in julia (exit 11 on disagreement, 13 on output it does
not understand, a JSON report naming every mismatch)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from node_fixtures import captured_cpu

from depotdelivery.errors import UsageError

HASWELL = str(captured_cpu("linux-rhel7-haswell"))
STAND_IN = Path(__file__).parent.parent / "stand_ins" / "julia-loading"


def _dd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "depotdelivery", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=180, check=False)


def _publish(base: Path, root: Path, inputs, fingerprints: dict | None = None) -> str:
    from depotdelivery.publisher.publish import VariantInput, init_repository, publish
    from depotdelivery.store.keys import keygen, load_private_key

    key = base / "publisher.key"
    if not key.exists():
        (base / "trusted").mkdir()
        _, pub, _ = keygen(key)
        (base / "trusted" / "publisher.pub").write_bytes(Path(pub).read_bytes())
    if not root.exists():
        init_repository(root)
    variants = {t: VariantInput(dir=v.dir, sysimage=v.sysimage, cpu_target=v.cpu_target, arch=v.arch)
                for t, v in inputs.variants.items()}
    return publish(root, "hep", "2026.11", inputs.depot, variants, load_private_key(key), channel="stable",
                   project=inputs.project, use_hash_cache=False, fingerprints=fingerprints).release_id


@pytest.fixture(scope="module")
def rollout(tmp_path_factory):
    """CI: publish to staging, fingerprint there on the reference host, publish to production
    with the fingerprint recorded."""
    from depotdelivery.store.fingerprint import load
    from depotdelivery.synth.depot import generate_release_inputs

    base = tmp_path_factory.mktemp("rollout")
    inputs = generate_release_inputs(base / "inputs", julia_version="1.11.1", packages=3, artifact_bytes=4096,
                                     targets=("generic", "haswell"))
    _publish(base, base / "staging", inputs)
    ci = _dd("fingerprint", "--json", "--reference", "ci-haswell-01", "--repo", str(base / "staging"),
             "--trust", str(base / "trusted"), "--cache", str(base / "ci-cache"), "--cpuinfo", HASWELL)
    assert ci.returncode == 0, ci.stderr
    (base / "ci.json").write_text(ci.stdout)
    _publish(base, base / "prod", inputs, {"haswell": [load(base / "ci.json")]})
    return base, inputs


def _node(base: Path, cache: str, *args: str) -> subprocess.CompletedProcess[str]:
    return _dd(*args, "--repo", str(base / "prod"), "--trust", str(base / "trusted"), "--cache", str(base / cache),
               "--cpuinfo", HASWELL)


def test_a_node_with_the_ci_graph_says_so_and_exits_0(rollout):
    base, _ = rollout
    done = _node(base, "node-a", "check")
    assert done.returncode == 0, done.stderr
    assert "same module graph as CI (ci-haswell-01)" in done.stdout.splitlines()
    doc = json.loads(_node(base, "node-a", "check", "--json").stdout)
    assert doc["ci"]["same"] is True and doc["exit"] == 0
    fp = json.loads(_node(base, "node-a", "fingerprint", "--json").stdout)
    assert fp["hash"] == json.loads((base / "ci.json").read_text())["hash"]


def test_a_node_whose_graph_differs_prints_the_diff_and_exits_12(rollout):
    base, _ = rollout
    assert _node(base, "node-b", "prepare", "--mode", "copy").returncode == 0
    doc = json.loads(_node(base, "node-b", "check", "--mode", "copy", "--json").stdout)
    victim = doc["report"]["packages"][0]
    source = Path(victim["sources"][0]["resolved"])  # the node's own copy (copy mode)
    source.write_bytes(source.read_bytes() + b"# edited on the node\n")
    done = _node(base, "node-b", "check", "--mode", "copy")
    assert done.returncode == 12, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    i = lines.index("module graph differs from CI (ci-haswell-01):")
    assert lines[i + 1].startswith(f"  {victim['name']}: would recompile on ")
    assert "include_dependency fsize change" in lines[i + 1]


def test_fingerprint_diff_exits_0_for_the_same_graph_and_12_otherwise(rollout, tmp_path):
    base, _ = rollout
    a = tmp_path / "a.json"
    a.write_text(_node(base, "node-a", "fingerprint", "--json").stdout)
    same = _dd("fingerprint", "diff", str(a), str(base / "ci.json"))
    assert same.returncode == 0 and same.stdout.startswith("same module graph (")
    from depotdelivery._record import replace
    from depotdelivery.store.fingerprint import load

    fa = load(a)
    b = tmp_path / "b.json"
    b.write_bytes(replace(fa, packages=fa.packages[1:], reference="node").to_bytes())
    diff = _dd("fingerprint", "diff", str(a), str(b), "--json")
    assert diff.returncode == 12
    assert json.loads(diff.stdout)["differences"][0]["kind"] == "missing"
    bad = _dd("fingerprint", "diff", str(a))
    assert bad.returncode == 2 and "fingerprint diff A.json B.json" in bad.stderr
    doc = json.loads(a.read_text())
    (tmp_path / "c.json").write_text(json.dumps({**doc, "hash": "0" * 64}))
    tampered = _dd("fingerprint", "diff", str(a), str(tmp_path / "c.json"))
    assert tampered.returncode == 4 and "not the hash of the graph" in tampered.stderr


def test_the_fingerprint_is_signed_with_the_release_and_checked(rollout):
    base, _ = rollout
    from depotdelivery.store.release import Release

    raw = next((base / "prod" / "releases").glob("*/*/release.json")).read_bytes()
    release = Release.from_bytes(raw, where="release.json")
    (fp,) = release.variant("haswell").fingerprints
    assert fp.reference == "ci-haswell-01" and not release.variant("generic").fingerprints
    assert b'"fingerprints"' in raw and raw.count(b'"fingerprints"') == 1  # absent where none was recorded
    doc = json.loads(raw)
    doc["variants"][[v["target"] for v in doc["variants"]].index("haswell")]["fingerprints"][0]["graph"]["arch"] = "aarch64"
    from depotdelivery.errors import FormatError

    with pytest.raises(FormatError, match=r"variants\[\d\]\.fingerprints\[0\]\.hash"):
        Release.from_dict(doc, where="release.json")


def test_publish_refuses_a_fingerprint_of_another_build(rollout, tmp_path):
    base, inputs = rollout
    from depotdelivery._record import replace
    from depotdelivery.store.fingerprint import load

    fp = load(base / "ci.json")
    other = replace(fp, sysimage=replace(fp.sysimage, blake3="0" * 64))
    with pytest.raises(UsageError, match="made with sysimage 0000000000000000..., the variant's is"):
        _publish(base, tmp_path / "repo", inputs, {"haswell": [other]})
    with pytest.raises(UsageError, match="fingerprint for variant zen9, which is not published"):
        _publish(base, tmp_path / "repo", inputs, {"zen9": [fp]})
    cli = _dd("publish", "--repo", str(tmp_path / "repo"), "--name", "x", "--version", "1", "--depot", str(inputs.depot),
              "--key", str(base / "publisher.key"), "--fingerprint", str(tmp_path / "missing.json"))
    assert cli.returncode == 2 and "missing.json: cannot read" in cli.stderr


def _julia(tmp_path: Path) -> Path:
    julia = tmp_path / "bin" / "julia"
    julia.parent.mkdir()
    julia.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STAND_IN}" "$@"\n')
    julia.chmod(0o755)
    return julia


def test_check_julia_agreement_disagreement_and_the_report(rollout, tmp_path):
    base, _ = rollout
    julia = _julia(tmp_path)
    scenario = tmp_path / "scenario.json"
    env = {"JULIA_STANDIN_SCENARIO": str(scenario)}
    scenario.write_text(json.dumps({"version": "1.11.1", "cpu_name": "haswell"}))
    ok = _dd("check", "--julia", str(julia), "--repo", str(base / "prod"), "--trust", str(base / "trusted"),
             "--cache", str(base / "node-a"), "--cpuinfo", HASWELL, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Julia 1.11.1 at " in ok.stdout and "agrees with the prediction" in ok.stdout
    scenario.write_text(json.dumps({"version": "1.11.1", "cpu_name": "znver3"}))
    report = tmp_path / "report.json"
    bad = _dd("check", "--julia", str(julia), "--report", str(report), "--repo", str(base / "prod"),
              "--trust", str(base / "trusted"), "--cache", str(base / "node-a"), "--cpuinfo", HASWELL, env=env)
    assert bad.returncode == 11, bad.stdout + bad.stderr
    assert "  Sys.CPU_NAME: predicted haswell, Julia says znver3" in bad.stdout.splitlines()
    doc = json.loads(report.read_text())
    assert doc["exit"] == 11 and [m["field"] for m in doc["julia"]["mismatches"]] == ["cpu_name"]
    assert "Loading object cache file" in doc["julia"]["run"]["stderr"]  # Julia's stderr, kept whole
    scenario.write_text(json.dumps({"version": "1.11.1", "stderr": ["┌ Debug: Rejecting cache file /x.ji because why not",
                                                                      "└ @ Base loading.jl:1"]}))
    garbled = _dd("check", "--julia", str(julia), "--repo", str(base / "prod"), "--trust", str(base / "trusted"),
                  "--cache", str(base / "node-a"), "--cpuinfo", HASWELL, env=env)
    assert garbled.returncode == 13 and "a loading message depotdelivery does not know" in garbled.stderr
