"""The depot generator writes what Julia and Pkg would: slugs, tree hashes (checked with git),
environment, registry, cache headers consistent with sources, sysimages and pkgimages."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tomllib
import uuid
from pathlib import Path

import pytest

from depotdelivery.errors import UsageError
from depotdelivery.julia import cachefile
from depotdelivery.julia.crc32c import crc32c, crc32c_file
from depotdelivery.julia.elfimage import read_image_targets
from depotdelivery.julia.slugs import package_slug, version_slug
from depotdelivery.synth import depot as synth
from depotdelivery.synth.targetdata import target_data_bytes

FINAL = "/cvmfs/sw.example.org/releases/hep/2026.11/depot"


def snapshot(root: Path) -> list[tuple[str, int, int, str]]:
    """Every entry's path, mode, mtime_ns and content (or link target) hash."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath, name)
            st = p.lstat()
            if p.is_symlink():
                digest = os.readlink(p)
            elif p.is_file():
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                digest = "dir"
            out.append((str(p.relative_to(root)), st.st_mode, st.st_mtime_ns, digest))
    return sorted(out)


def git_tree(path: Path, tmp: Path) -> str:
    """The tree hash git itself computes for ``path`` (a throwaway index, nothing written there)."""
    env = {**os.environ, "GIT_DIR": str(tmp / "git"), "GIT_WORK_TREE": str(path),
           "GIT_INDEX_FILE": str(tmp / "index")}
    if not (tmp / "git").exists():
        subprocess.run(["git", "init", "-q", "--bare", str(tmp / "git")], check=True)
    (tmp / "index").unlink(missing_ok=True)
    subprocess.run(["git", "add", "-A", "."], cwd=path, env=env, check=True)
    return subprocess.run(["git", "write-tree"], cwd=path, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture(scope="module")
def gen11(tmp_path_factory) -> synth.SynthInputs:
    return synth.generate_release_inputs(tmp_path_factory.mktemp("g11"), final_root=FINAL, packages=10, seed=7)


@pytest.fixture(scope="module")
def gen10(tmp_path_factory) -> synth.SynthInputs:
    return synth.generate_release_inputs(tmp_path_factory.mktemp("g10") / "out", julia_version="1.10.5",
                                         packages=5, seed=7, targets=("haswell",))


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    kw = {"final_root": FINAL, "packages": 6, "seed": 11, "targets": ("generic", "neoverse-v1")}
    a = synth.generate_release_inputs(tmp_path / "a", **kw)
    b = synth.generate_release_inputs(tmp_path / "b", **kw)
    assert snapshot(a.root) == snapshot(b.root)
    assert a.packages == b.packages and a.artifacts == b.artifacts
    c = synth.generate_release_inputs(tmp_path / "c", **{**kw, "seed": 12})
    assert {p.tree_sha1 for p in c.packages}.isdisjoint({p.tree_sha1 for p in a.packages})


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_artifact_and_package_names_are_their_git_tree_hashes(gen11, tmp_path):
    assert gen11.artifacts
    names = sorted(p.name for p in (gen11.depot / "artifacts").iterdir())
    assert names == sorted(gen11.artifacts)
    for tree in gen11.artifacts:
        art = gen11.depot / "artifacts" / tree
        assert any(p.is_symlink() for p in art.rglob("*")) and any(
            p.stat().st_mode & 0o100 for p in art.rglob("*") if p.is_file() and not p.is_symlink())
        assert git_tree(art, tmp_path) == tree
    for p in gen11.packages:
        assert git_tree(gen11.depot / p.path, tmp_path) == p.tree_sha1


def test_slugs_project_manifest_and_registry_agree(gen11):
    manifest = tomllib.loads((gen11.depot / gen11.project / "Manifest.toml").read_text())
    assert manifest["manifest_format"] == "2.0" and manifest["julia_version"] == "1.11.1"
    project = tomllib.loads((gen11.depot / gen11.project / "Project.toml").read_text())
    registry = tomllib.loads((gen11.depot / "registries/General/Registry.toml").read_text())
    names = {p.name for p in gen11.packages}
    assert set(project["deps"]) <= names and project["deps"]
    for p in gen11.packages:
        assert uuid.UUID(p.uuid).version == 4
        assert p.slug == version_slug(p.uuid, p.tree_sha1) and (gen11.depot / p.path).is_dir()
        (entry,) = manifest["deps"][p.name]
        assert (entry["uuid"], entry["version"], entry["git-tree-sha1"]) == (p.uuid, p.version, p.tree_sha1)
        for dep in entry.get("deps", []):
            assert dep in manifest["deps"]  # every dependency has its own manifest entry
        proj = tomllib.loads((gen11.depot / p.path / "Project.toml").read_text())
        assert (proj["name"], proj["uuid"], proj["version"]) == (p.name, p.uuid, p.version)
        assert set(proj.get("deps", {})) == set(entry.get("deps", []))
        reg = registry["packages"][p.uuid]
        versions = tomllib.loads((gen11.depot / "registries/General" / reg["path"] / "Versions.toml").read_text())
        assert versions == {p.version: {"git-tree-sha1": p.tree_sha1}}
        if p.artifacts:
            arts = tomllib.loads((gen11.depot / p.path / "Artifacts.toml").read_text())
            assert [a["git-tree-sha1"] for a in arts.values()] == list(p.artifacts)


def _ji(variant: synth.VariantDir, p: synth.SynthPackage, mm: str) -> Path:
    (ji,) = (variant.depot / "compiled" / f"v{mm}" / p.name).glob(f"{package_slug(p.uuid)}_*.ji")
    return ji


def test_111_caches_read_back_consistently(gen11):
    for target, variant in gen11.variants.items():
        sysmods = {(m["name"], m["uuid"]): int(m["build_id"], 16)
                   for m in json.loads((variant.dir / "sysimage-modules.json").read_text())}
        assert {n for n, _ in sysmods} >= {"Core", "Base", "Random"}
        image = read_image_targets(variant.sysimage)
        assert image.targets[0].name == synth.CPU_TARGET_STRINGS[target].split(",")[0]
        build = {}
        for p in gen11.packages:  # index order: dependencies first
            ji = _ji(variant, p, "1.11")
            cf = cachefile.read_cache_file(ji)
            assert cf.crc_ok and cf.layout == "1.11" and cf.arch == variant.arch
            assert [(w.name, str(w.uuid)) for w in cf.worklist] == [(p.name, p.uuid)]
            assert cf.clone_targets == target_data_bytes(image)
            assert cf.so_crc == crc32c_file(ji.with_suffix(".so"))
            assert read_image_targets(ji.with_suffix(".so")) == image
            header = cachefile.find_image_header(ji.with_suffix(".so"))
            assert header.checksum == cf.checksum and header.required_modules == cf.required_modules
            assert [d.path for d in cf.dependencies][: len(p.includes)] == [f"@depot/{p.path}/{i}" for i in p.includes]
            for dep in cf.dependencies:
                data = (gen11.depot / dep.path.removeprefix("@depot/")).read_bytes()
                assert (dep.mtime, dep.fsize, dep.crc32c) == (-1.0, len(data), crc32c(data))
            assert {t.path for t in cf.source_texts} == {f"@depot/{p.path}/{i}" for i in p.includes}
            req = {(m.name, str(m.uuid) if m.uuid else synth._NIL_UUID): m.build_id for m in cf.required_modules}
            assert all(req[k] == v for k, v in sysmods.items())  # the whole sysimage
            for d in p.deps:
                assert req[(d, next(q.uuid for q in gen11.packages if q.name == d))] == build[d]
            assert {r.name for r in cf.requires} == set(p.deps) | set(p.stdlibs) | ({"Artifacts"} if p.artifacts else set())
            build[p.name] = cf.build_id(cf.worklist[0])


def test_110_caches_embed_final_paths_and_mtimes(gen10):
    variant = gen10.variants["haswell"]
    for p in gen10.packages:
        cf = cachefile.read_cache_file(_ji(variant, p, "1.10"))
        assert cf.layout == "1.10" and cf.includes_mtime
        for dep in cf.dependencies:
            assert dep.path.startswith(str(gen10.depot) + "/packages/") and dep.fsize is None
            assert os.stat(dep.path).st_mtime == dep.mtime


def test_size_is_a_parameter(tmp_path):
    out = synth.generate_release_inputs(tmp_path / "s", packages=12, files=120, artifact_bytes=3 << 20,
                                        targets=("haswell",), seed=1)
    nfiles = sum(len(fs) for p in out.packages for _, _, fs in os.walk(out.depot / p.path))
    assert 120 <= nfiles <= 130  # Artifacts.toml files come on top
    art_bytes = sum(f.stat().st_size for a in out.artifacts for f in (out.depot / "artifacts" / a).rglob("*")
                    if f.is_file() and not f.is_symlink())
    assert 3 << 20 <= art_bytes < (3 << 20) + 4096
    assert len({p.name for p in out.packages}) == 12


def test_cli_entry(tmp_path, capsys):
    assert synth.main([str(tmp_path / "cli"), "--packages", "3", "--targets", "generic,a64fx",
                       "--julia-version", "1.12.1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["packages"] == 3 and set(doc["variants"]) == {"generic", "a64fx"}
    assert (tmp_path / "cli/variants/a64fx/depot/compiled/v1.12").is_dir()
    assert synth.main([str(tmp_path / "cli"), "--packages", "3"]) == 2  # not empty any more
    assert "already holds" in capsys.readouterr().err


@pytest.mark.parametrize("kw,match", [
    ({"julia_version": "1.8.5"}, "1.8.5"), ({"targets": ("pentium",)}, "unknown synth target"),
    ({"packages": 0}, "packages must be"),
])
def test_bad_arguments(tmp_path, kw, match):
    with pytest.raises(UsageError, match=match):
        synth.generate_release_inputs(tmp_path / "x", **kw)
