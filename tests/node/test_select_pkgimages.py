"""The publisher records each variant's pkgimage clone targets (``pkgimage_targets``) as the caches
carry them, and selection prefers a variant whose pkgimages Julia would load on its JIT target."""
from __future__ import annotations

import dataclasses
import json
import re
import shutil

import pytest
from captured_cpus import detect_captured

from depotdelivery._record import replace
from depotdelivery.errors import FormatError
from depotdelivery.julia.cachefile import read_cache_file
from depotdelivery.julia.cputarget import parse_cpu_target, to_image_target
from depotdelivery.julia.targetdata import TargetData
from depotdelivery.node.select import select
from depotdelivery.store.release import Release
from depotdelivery.store.repo import Repository
from depotdelivery.synth.cachefile import write_cache_file
from depotdelivery.synth.targetdata import target_data_bytes

JULIA = "1.11.1"
HASWELL = "linux-rhel7-haswell"


@pytest.fixture(scope="module")
def mismatched(tmp_path_factory):
    """A release whose haswell variant's pkgimages were built for skylake-avx512 (the ``.ji``
    headers rewritten with that clone-target blob), next to a generic variant."""
    from depotdelivery.publisher.publish import VariantInput, init_repository, publish
    from depotdelivery.store.keys import keygen, load_private_key
    from depotdelivery.synth.depot import generate_release_inputs

    base = tmp_path_factory.mktemp("pkgimage-mismatch")
    root = base / "repo"
    inputs = generate_release_inputs(base / "inputs", final_root=root / "releases" / "hep" / "1" / "depot",
                                     julia_version=JULIA, packages=3, artifact_bytes=1024,
                                     targets=("generic", "haswell"), seed=7)
    avx512 = target_data_bytes(TargetData(tuple(to_image_target(s, "x86_64", JULIA)
                              for s in parse_cpu_target("skylake-avx512", "x86_64", JULIA))))
    rewritten = 0
    for ji in inputs.variants["haswell"].dir.glob("depot/compiled/*/*/*.ji"):
        write_cache_file(dataclasses.replace(read_cache_file(ji), clone_targets=avx512), ji)
        rewritten += 1
    assert rewritten
    keygen(base / "publisher.key")
    init_repository(root)
    variants = {t: VariantInput(dir=v.dir, sysimage=v.sysimage, cpu_target=v.cpu_target, arch=v.arch)
                for t, v in inputs.variants.items()}
    publish(root, "hep", "1", inputs.depot, variants, load_private_key(base / "publisher.key"),
            channel=None, project=inputs.project, use_hash_cache=False)
    shutil.rmtree(base / "inputs")
    return Repository.open(root).read_release("hep", "1")


def test_variant_whose_pkgimages_match_beats_a_better_sysimage_clone(mismatched):
    haswell = mismatched.variant("haswell")
    assert [c.name for lst in haswell.pkgimage_targets for c in lst] == ["skylake-avx512"]
    sel = select(mismatched, detect_captured(HASWELL))
    assert sel.target == "generic"
    by_target = {v.target: v for v in sel.verdicts}
    loser = by_target["haswell"]
    assert loser.accepted and loser.clone_name == "haswell"  # the sysimage is still fine
    assert loser.rank[0] == -1 and by_target["generic"].rank[0] == 1
    assert loser.rank[1:] > by_target["generic"].rank[1:]  # its clone alone would have won
    assert "pkgimages target skylake-avx512" in loser.reason and "every package would recompile" in loser.reason
    assert "JIT target haswell" in loser.reason


def test_release_without_the_field_selects_by_the_sysimage_clone_as_before(mismatched):
    doc = json.loads(mismatched.raw)
    for v in doc["variants"]:
        del v["pkgimage_targets"]
    old = Release.from_dict(doc, where="old release.json")
    assert all(v.pkgimage_targets == () for v in old.variants)
    assert "pkgimage_targets" not in json.dumps(old.to_dict())  # absent, not empty
    sel = select(old, detect_captured(HASWELL))
    assert sel.target == "haswell"
    assert all(v.rank[0] == 0 for v in sel.verdicts if v.accepted)


def test_unknown_caches_rank_between_a_match_and_a_mismatch(mismatched):
    host = detect_captured(HASWELL)
    # haswell with no pkgimage record: unknown (0) still loses to generic's confirmed match (1)
    unknown = replace(mismatched.variant("haswell"), pkgimage_targets=())
    rel = replace(mismatched, variants=(mismatched.variant("generic"), unknown))
    assert select(rel, host).target == "generic"
    # but beats a mismatch (-1), whatever the clones say
    bad_generic = replace(mismatched.variant("generic"),
                                      pkgimage_targets=mismatched.variant("haswell").pkgimage_targets)
    rel = replace(mismatched, variants=(bad_generic, unknown))
    assert select(rel, host).target == "haswell"


@pytest.mark.parametrize("bad, message", [
    ({"pkgimage_targets": {}}, "field variants[0].pkgimage_targets: expected a list"),
    ({"pkgimage_targets": [[]]}, "field variants[0].pkgimage_targets[0]: expected a non-empty list"),
    ({"pkgimage_targets": [[{"name": "x"}]]}, "field variants[0].pkgimage_targets[0][0].flags: missing"),
])
def test_malformed_pkgimage_targets_name_the_field(mismatched, bad, message):
    doc = json.loads(mismatched.raw)
    doc["variants"][0].update(bad)
    with pytest.raises(FormatError, match=re.escape(message)):
        Release.from_dict(doc, where="release.json")


def test_one_rejected_pkgimage_target_list_of_several_is_a_mismatch(mismatched):
    generic, haswell = mismatched.variant("generic"), mismatched.variant("haswell")
    mixed = replace(generic, pkgimage_targets=generic.pkgimage_targets + haswell.pkgimage_targets)
    rel = replace(mismatched, variants=(mixed,))
    verdict = select(rel, detect_captured(HASWELL)).verdicts[0]
    assert verdict.rank[0] == -1
    assert "target skylake-avx512 which" in verdict.reason and "the packages built for it would recompile" in verdict.reason
