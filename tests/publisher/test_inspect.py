"""Julia inspection at publish time (publisher/inspect.py): the Julia version and environment,
the sysimage and its modules, and clone targets from the image (else approximate, from
JULIA_CPU_TARGET) and from the pkgimages' headers."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from repo_fixtures import build_variant, write

from depotdelivery.errors import UsageError
from depotdelivery.julia.cachefile import read_cache_file
from depotdelivery.publisher.publish import VariantInput, publish
from depotdelivery.store.repo import Repository


def test_julia_version_and_project_inference(env):
    (env.depot / "compiled" / "v1.10").mkdir()
    with pytest.raises(UsageError, match="caches for 1.10, 1.11; pass --julia-version"):
        env.publish()
    r = env.publish(julia_version="1.11.2")
    assert Repository.open(env.repo).read_release("hep", "1").julia_version == "1.11.2" and r.created
    (env.depot / "environments" / "other").mkdir()
    with pytest.raises(UsageError, match="environments: environments/hep, environments/other"):
        publish(env.repo, "lib", "1", env.depot, {}, env.key, julia_version="1.11")


def test_variant_without_sysimage_is_approximate(env, tmp_path):
    plain = build_variant(tmp_path / "plain", sysimage=False)
    env.publish(variants={"skylake-avx512": VariantInput(dir=plain, cpu_target="skylake-avx512,-rdrnd", arch="x86_64")})
    v = Repository.open(env.repo).read_release("hep", "1").variant("skylake-avx512")
    assert v.clones_source == "approximate" and v.sysimage is None
    assert v.clones[0].name == "skylake-avx512" and "avx512f" in v.clones[0].features
    assert "rdrnd" not in v.clones[0].features


def test_unreadable_sysimage_falls_back_with_a_warning(env, tmp_path):
    broken = build_variant(tmp_path / "broken", sysimage=False)
    write(broken / "sys.so", b"not an ELF file at all")
    r = env.publish(variants={"haswell": VariantInput(dir=broken)})
    assert r.warnings and "clone targets not readable" in r.warnings[0]
    v = Repository.open(env.repo).read_release("hep", "1").variant("haswell")
    assert v.clones_source == "approximate" and v.sysimage is not None


def test_sysimage_modules_recorded(env):
    mods = [{"name": "Base", "uuid": "00000000-0000-0000-0000-000000000000", "build_id": "ab" * 16}]
    write(env.variant / "sysimage-modules.json", json.dumps(mods))
    env.publish()
    v = Repository.open(env.repo).read_release("hep", "1").variant("haswell")
    assert [m.to_dict() for m in v.sysimage_modules] == mods


def _cache_targets(variant_dir: Path) -> list[list[tuple[str, int, tuple[int, ...], tuple[int, ...], str]]]:
    """The distinct clone-target lists the variant's ``.ji`` headers carry, read independently."""
    seen: list[list[tuple[str, int, tuple[int, ...], tuple[int, ...], str]]] = []
    for ji in sorted(variant_dir.glob("depot/compiled/*/*/*.ji")):
        data = [(t.name, t.flags, t.en_words, t.dis_words, t.ext) for t in read_cache_file(ji).targets]
        if data and data not in seen:
            seen.append(data)
    return seen


def test_published_release_records_the_targets_its_pkgimages_carry(node_repo):
    repo = Repository.open(node_repo.root)
    release = repo.read_release("hep", "2026.11")
    for variant in release.variants:
        on_disk = _cache_targets(repo.release_dir("hep", "2026.11") / variant.path)
        assert on_disk, f"synth variant {variant.target} has pkgimages"
        recorded = [[(c.name, c.flags, c.en, c.dis, c.ext) for c in lst] for lst in variant.pkgimage_targets]
        assert recorded == on_disk
        # synth builds the caches with the sysimage's own targets
        assert variant.pkgimage_targets == (variant.clones,)
    doc = json.loads(release.raw)
    assert all("pkgimage_targets" in v for v in doc["variants"])
