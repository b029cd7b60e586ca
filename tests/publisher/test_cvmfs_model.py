"""Publish, verify, prepare (every mode), check and repo-gc against a repository as a CVMFS client
presents it: the STAND-IN MODEL tests/stand_ins/cvmfs_model.py behind tests/stand_ins/cvmfs_server
(CVMFS_STANDIN_MODEL=1). Transactions are a real overlayfs over the published revision; after
`cvmfs_server publish` /cvmfs/FQRN is a real read-only bind mount of the next revision with
whole-second mtimes, hard links split across directories and ownership claimed -- not the
files the publisher wrote."""
from __future__ import annotations

import errno
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from node_fixtures import build_repo, captured_cpu
from repo_fixtures import build_depot, make_publisher, write

from depotdelivery.errors import IntegrityError
from depotdelivery.publisher.channels import set_channel
from depotdelivery.publisher.gc import repo_gc
from depotdelivery.publisher.publish import publish
from depotdelivery.store.keys import TrustStore
from depotdelivery.store.repo import Repository
from depotdelivery.store.verify import verify
from depotdelivery.store.walk import walk

STAND_INS = Path(__file__).parents[1] / "stand_ins"
FQRN = "sw.example.org"
_spec = importlib.util.spec_from_file_location("cvmfs_model", STAND_INS / "cvmfs_model.py")
assert _spec is not None and _spec.loader is not None
cvmfs_model = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cvmfs_model)


@pytest.fixture
def model(tmp_path, monkeypatch):
    """/cvmfs/FQRN (``repo``) under the model, read-only from the start; ``state`` its state."""
    why = cvmfs_model.problem()
    if why is not None:
        pytest.skip(why)
    repo = tmp_path / "cvmfs" / FQRN
    repo.mkdir(parents=True)
    state = tmp_path / "cvmfs-state"
    monkeypatch.setenv("PATH", f"{STAND_INS}:{Path(sys.executable).parent}:{os.environ['PATH']}")
    monkeypatch.setenv("CVMFS_STANDIN_DIR", str(state))
    monkeypatch.setenv("CVMFS_STANDIN_REPO", str(repo))
    monkeypatch.setenv("CVMFS_STANDIN_MODEL", "1")
    monkeypatch.setenv("DEPOTDELIVERY_PUBLISH_CACHE", str(tmp_path / "hash-cache"))
    subprocess.run([sys.executable, str(STAND_INS / "cvmfs_model.py"), "ensure", str(state), str(repo)], check=True)
    yield repo, state
    cvmfs_model.unmount(str(state), str(repo))


def cvmfs_server(*args: str) -> None:
    done = subprocess.run(["cvmfs_server", *args], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def publishes(state: Path) -> list[dict]:
    return [json.loads(line) for line in (state / "publishes.jsonl").read_text().splitlines()]


def test_the_model_does_to_the_data_what_cvmfs_does(model, monkeypatch):
    repo, state = model
    with pytest.raises(OSError) as exc:
        (repo / "x").write_text("")
    assert exc.value.errno == errno.EROFS
    cvmfs_server("transaction", FQRN)
    x = write(repo / "a" / "x", "data", mtime_ns=1_730_419_200_987_654_321)
    os.chown(x, 4321, 4321)
    os.link(x, repo / "a" / "z")
    (repo / "b").mkdir()
    os.link(x, repo / "b" / "y")
    cvmfs_server("publish", FQRN)
    a, z, y = (os.lstat(repo / p) for p in ("a/x", "a/z", "b/y"))
    assert a.st_ino == z.st_ino and a.st_ino != y.st_ino, "links kept within a directory, split across"
    assert a.st_mtime_ns == y.st_mtime_ns == 1_730_419_200_000_000_000
    assert (a.st_uid, a.st_gid) == (os.getuid(), os.getgid()), "ownership claimed by the reader"
    assert publishes(state)[-1]["files_written"] == 1
    # a hard link to a published file copies it up whole into the scratch area; a directory of
    # the published revision cannot be renamed (overlayfs without redirect_dir)
    cvmfs_server("transaction", FQRN)
    os.link(repo / "a" / "x", repo / "c")
    with pytest.raises(OSError) as exc:
        os.rename(repo / "b", repo / "b2")
    assert exc.value.errno == errno.EXDEV
    cvmfs_server("publish", FQRN)
    assert publishes(state)[-1]["copied_up"] == 1
    # CVMFS_ENABLE_MTIME_NS=true keeps nanoseconds
    monkeypatch.setenv("CVMFS_STANDIN_MTIME_NS", "1")
    cvmfs_server("transaction", FQRN)
    write(repo / "ns", "n", mtime_ns=1_730_419_200_987_654_321)
    cvmfs_server("publish", FQRN)
    assert os.lstat(repo / "ns").st_mtime_ns == 1_730_419_200_987_654_321


def test_publish_verify_channels_and_repo_gc_on_the_client_tree(model, tmp_path):
    repo, state = model
    p = make_publisher(tmp_path)
    depot = build_depot(tmp_path / "depot")
    trust = TrustStore.from_dir(p.trust)
    first = publish(repo, "hep", "1", depot, {}, p.key, cvmfs=FQRN, channel="stable", use_hash_cache=False)
    write(depot / "packages" / "Extra" / "src" / "Extra.jl", "module Extra end\n")
    second = publish(repo, "hep", "2", depot, {}, p.key, cvmfs=FQRN, channel="stable", use_hash_cache=False)
    assert first.linked_files == second.linked_files == 0
    rel = repo / "releases" / "hep"
    assert (rel / "1" / ".cvmfscatalog").is_file() and (repo / "channels" / ".cvmfscatalog").is_file()
    last = publishes(state)[-1]
    assert last["copied_up"] == 0 and "releases/hep/1" not in last["catalogs_changed"]
    assert "releases/hep/2" in last["catalogs_changed"]
    # what the client shows: whole seconds where the listing has nanoseconds; verify agrees
    listing = {e.path: e for e in Repository.open(repo).read_listing(
        Repository.open(repo).read_release("hep", "2"), Repository.open(repo).read_release("hep", "2").shared.tree)}
    shown = {e.rel: e.st for e in walk(rel / "2" / "depot")}
    assert all(st.st_mtime_ns % 10**9 == 0 for st in shown.values())
    assert any(e.mtime_ns % 10**9 for e in listing.values())
    assert [r.subject for r in verify(repo, trust=trust)] == ["release hep/1", "release hep/2", "channel stable"]
    # a channel move changes the channels catalog only
    set_channel(repo, "stable", "hep/1", p.key, cvmfs=FQRN)
    assert set(publishes(state)[-1]["catalogs_changed"]) == {"channels"}
    # repo-gc in a transaction (no rename of a published directory: EXDEV on the overlay)
    gone = repo_gc(repo, keep_last=1, cvmfs=FQRN)
    assert gone.removed == ["hep/2"] and not (rel / "2").exists()
    verify(repo, trust=trust)


def test_a_repository_recorded_as_posix_on_cvmfs_fails_verify(model, tmp_path):
    repo, _ = model
    p = make_publisher(tmp_path)
    publish(repo, "hep", "1", build_depot(tmp_path / "depot"), {}, p.key, cvmfs=FQRN, storage="posix",
            use_hash_cache=False)
    with pytest.raises(IntegrityError, match="compared exactly"):
        verify(repo)


@pytest.mark.parametrize("julia", ["1.10.5", "1.11.1"])
def test_prepare_every_mode_and_check_on_the_client_tree(model, tmp_path, julia, monkeypatch):
    """Julia 1.10 caches record source mtimes with nanoseconds; the client shows whole seconds:
    Julia accepts floor(recorded) (base/loading.jl stale_cachefile), so check predicts every
    package loads -- from the read-only client tree, in every mode."""
    import depotdelivery
    from depotdelivery.node.check import check

    repo, _ = model
    node = build_repo(tmp_path / "node", root=repo, cvmfs=FQRN, julia_version=julia, targets=("haswell",))
    monkeypatch.setenv("DEPOTDELIVERY_CPUINFO", str(captured_cpu("linux-rhel7-haswell")))
    seen = {}
    for mode in ("stack", "symlink", "copy", "overlay"):
        try:
            prep = depotdelivery.prepare(repo=str(repo), channel="stable", mode=mode, cache=str(tmp_path / "cache"),
                                         trusted_keys=str(node.trusted))
        except depotdelivery.UnsupportedError:
            assert mode == "overlay"
            continue
        try:
            report = check(prep)
            seen[mode] = (len(report.packages), {p.reason for p in report.will_recompile})
        finally:
            if mode == "overlay":
                subprocess.run(["fusermount3", "-u", str(prep.depot)], check=False)
    assert {"stack", "symlink", "copy"} <= set(seen)
    for mode, (n, reasons) in seen.items():
        assert n > 0
        if julia == "1.10.5" and mode in ("copy", "overlay"):
            # 1.10 caches name their sources by absolute path: valid only where the release is
            # (docs/launchers.md); never an mtime verdict
            assert reasons == {"wrong source"}, (mode, reasons)
        else:
            assert not reasons, (mode, reasons)
    assert all(e.st.st_mtime_ns % 10**9 == 0 for e in walk(repo / "releases") if not e.rel.endswith(".cvmfscatalog"))
