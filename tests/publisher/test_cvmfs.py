"""CVMFS transactions around publishing, channel updates and repo-gc.

`cvmfs_server` cannot be installed here (it needs a CVMFS Stratum 0 with a union filesystem),
so these tests put a clearly named recording STAND-IN first on PATH
(tests/stand_ins/cvmfs_server): it logs every call, enforces the real tool's order
(no publish/abort without a transaction, no nested transaction), restores the repository on
abort as the real tool discards its scratch area, and fails on demand (CVMFS_STANDIN_FAIL).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from repo_fixtures import build_depot, lock_held, tree_digest, write

from depotdelivery.errors import DepotDeliveryError, PublishError
from depotdelivery.publisher.gc import repo_gc
from depotdelivery.publisher.publish import publish
from depotdelivery.store.keys import keygen, load_private_key
from depotdelivery.store.repo import Repository

STAND_INS = Path(__file__).parents[1] / "stand_ins"
FQRN = "sw.example.org"


@pytest.fixture
def cv(tmp_path, monkeypatch):
    repo = tmp_path / "cvmfs" / FQRN
    repo.mkdir(parents=True)
    state = tmp_path / "cvmfs-state"
    # the stand-in runs on the first python3 on PATH: this interpreter, not a slow pyenv shim
    monkeypatch.setenv("PATH", f"{STAND_INS}:{Path(sys.executable).parent}:{os.environ['PATH']}")
    monkeypatch.setenv("CVMFS_STANDIN_DIR", str(state))
    monkeypatch.setenv("CVMFS_STANDIN_REPO", str(repo))
    monkeypatch.setenv("DEPOTDELIVERY_PUBLISH_CACHE", str(tmp_path / "hash-cache"))
    keygen(tmp_path / "key")
    return repo, state, load_private_key(tmp_path / "key"), build_depot(tmp_path / "depot"), tmp_path


def calls(state: Path) -> list[tuple[list[str], str]]:
    f = state / "calls.jsonl"
    if not f.exists():
        return []
    return [(d["argv"], d["outcome"]) for d in map(json.loads, f.read_text().splitlines())]


def is_open(state: Path) -> bool:
    return json.loads((state / "state.json").read_text()).get(FQRN) == "open"


def test_stand_in_enforces_the_call_order(cv):
    _, state, *_ = cv
    run = lambda *a: subprocess.run(["cvmfs_server", *a], capture_output=True, text=True).returncode
    assert run("publish", FQRN) != 0
    assert run("abort", "-f", FQRN) != 0
    assert run("transaction", FQRN) == 0
    assert run("transaction", FQRN) != 0
    assert run("abort", FQRN) != 0  # without -f the real tool prompts
    assert run("publish", "-a", "t", "-m", "m", FQRN) == 0
    assert [o for _, o in calls(state)] == ["refused", "refused", "ok", "refused", "refused", "ok"]


def test_publish_runs_in_a_transaction_and_tags(cv):
    repo, state, key, depot, _ = cv
    r = publish(repo, "hep", "2026.11", depot, {}, key, cvmfs=FQRN, channel="stable")
    log = calls(state)
    assert [a for a, _ in log] == [
        ["transaction", FQRN],
        ["publish", "-a", "hep-2026.11", "-m", f"depotdelivery: release hep/2026.11 {r.release_id[:16]}", FQRN],
    ]
    assert not is_open(state)
    assert Repository.open(repo).read_channel("stable").release == "hep/2026.11"
    assert r.linked_files == 0, "on CVMFS, CVMFS deduplicates: no hard links"
    # identical re-publish: no transaction at all
    again = publish(repo, "hep", "2026.11", depot, {}, key, cvmfs=FQRN, channel="stable")
    assert not again.created and len(calls(state)) == 2


def test_failure_inside_the_transaction_aborts(cv):
    repo, state, key, depot, _ = cv
    publish(repo, "hep", "1", depot, {}, key, cvmfs=FQRN)
    os.symlink("nowhere", repo / "releases" / "other")  # the release name's directory cannot be made
    before = tree_digest(repo)
    with pytest.raises(DepotDeliveryError, match="releases/other"):
        publish(repo, "other", "1", depot, {}, key, cvmfs=FQRN, channel="stable")
    assert [a[0] for a, _ in calls(state)][-2:] == ["transaction", "abort"]
    assert not is_open(state) and tree_digest(repo) == before


def test_channel_failure_after_the_commit_publishes_the_release(cv):
    """The release is committed before the channel moves: a failing channel update keeps it
    (the transaction is published) and says how to finish."""
    repo, state, key, depot, _ = cv
    publish(repo, "hep", "1", depot, {}, key, cvmfs=FQRN)
    (repo / "channels").write_text("a file where the channels directory should be")
    write(depot / "registries" / "General.toml", "[changed]\n")
    with pytest.raises(PublishError, match=r"release hep/2 published, channel stable not updated: .*channels.*"
                                           r"run `depotdelivery channel set .* --release hep/2 --key KEY --cvmfs sw"):
        publish(repo, "hep", "2", depot, {}, key, cvmfs=FQRN, channel="stable")
    assert [a[0] for a, _ in calls(state)][-2:] == ["transaction", "publish"] and not is_open(state)
    assert Repository.open(repo).read_release("hep", "2").ref == "hep/2"
    assert (repo / "channels").read_text() == "a file where the channels directory should be"


def test_failed_cvmfs_publish_is_aborted(cv, monkeypatch, cli):
    repo, state, _, depot, base = cv
    assert cli("publish", "--repo", str(repo), "--name", "hep", "--version", "1", "--depot", str(depot), "--key", str(base / "key"), "--cvmfs", FQRN, "--quiet").code == 0
    before = tree_digest(repo)
    monkeypatch.setenv("CVMFS_STANDIN_FAIL", "publish")
    write(depot / "registries" / "General.toml", "[changed]\n")
    assert cli("publish", "--repo", str(repo), "--name", "hep", "--version", "2", "--depot", str(depot), "--key", str(base / "key"), "--cvmfs", FQRN).code == 9
    err = cli.last.err
    assert "simulated failure of publish" in err and "transaction was aborted" in err
    assert [(a[0], o) for a, o in calls(state)][-3:] == [("transaction", "ok"), ("publish", "failed"), ("abort", "ok")]
    assert not is_open(state) and tree_digest(repo) == before


def test_failed_transaction_opens_nothing(cv, monkeypatch):
    repo, state, key, depot, _ = cv
    monkeypatch.setenv("CVMFS_STANDIN_FAIL", "transaction")
    with pytest.raises(PublishError, match="cvmfs_server transaction sw.example.org` failed"):
        publish(repo, "hep", "1", depot, {}, key, cvmfs=FQRN)
    assert [(a[0], o) for a, o in calls(state)] == [("transaction", "failed")]
    assert list(repo.iterdir()) == []


def test_abort_failing_too_is_reported(cv, monkeypatch):
    repo, _state, key, depot, _ = cv
    monkeypatch.setenv("CVMFS_STANDIN_FAIL", "publish,abort")
    with pytest.raises(PublishError, match="aborting the CVMFS transaction failed too"):
        publish(repo, "hep", "1", depot, {}, key, cvmfs=FQRN)


def test_missing_cvmfs_server(cv, monkeypatch):
    repo, _, key, depot, _ = cv
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(PublishError, match="`cvmfs_server` not found"):
        publish(repo, "hep", "1", depot, {}, key, cvmfs=FQRN)


def test_in_place_uses_the_callers_transaction(cv):
    """The CI opened the transaction and built at the final path (Julia 1.10 caches embed
    absolute paths); publish only hashes, signs, commits and closes it."""
    repo, state, key, depot, _ = cv
    subprocess.run(["cvmfs_server", "transaction", FQRN], check=True)
    shutil.copytree(depot, repo / "releases" / "hep" / "1" / "depot", symlinks=True)
    publish(repo, "hep", "1", None, {}, key, cvmfs=FQRN, in_place=True, julia_version="1.11")
    assert [a[0] for a, _ in calls(state)] == ["transaction", "publish"] and not is_open(state)


def _in_place(repo: Path, depot: Path, version: str) -> Path:
    """What the CI does: open the transaction, build the depot at its final path."""
    subprocess.run(["cvmfs_server", "transaction", FQRN], check=True)
    d = repo / "releases" / "hep" / version / "depot"
    if not d.exists():
        shutil.copytree(depot, d, symlinks=True)
    return d


def test_in_place_identical_republish_closes_the_callers_transaction(cv):
    """Re-publishing an identical in-place build (with or without a channel) publishes the
    CI's transaction, untagged (the release's tag exists), instead of nesting another one."""
    repo, state, key, depot, _ = cv
    _in_place(repo, depot, "1")
    publish(repo, "hep", "1", None, {}, key, cvmfs=FQRN, in_place=True, julia_version="1.11", channel="stable")
    for channel in ("testing", None):
        _in_place(repo, depot, "1")
        r = publish(repo, "hep", "1", None, {}, key, cvmfs=FQRN, in_place=True, julia_version="1.11", channel=channel)
        assert not r.created and not is_open(state)
        assert calls(state)[-1] == (["publish", "-m", "depotdelivery: release hep/1 unchanged", FQRN], "ok")
    assert Repository.open(repo).read_channel("testing").release == "hep/1"
    assert [o for _, o in calls(state)].count("refused") == 0


@pytest.mark.parametrize("spoil, message", [
    (lambda d: os.symlink("/etc/passwd", d / "evil"), "points outside"),
    (lambda d: os.mkfifo(d / "fifo"), "is a FIFO"),
    (lambda d: write(d / "registries" / "General.toml", "[other]\n"), "already exists in .* with different content"),
])
def test_in_place_failure_before_writing_aborts_the_callers_transaction(cv, spoil, message):
    """A bad in-place build (a symlink out of the tree, a special file, different content under
    a published version) fails before anything is written: the CI's transaction is aborted."""
    repo, state, key, depot, _ = cv
    _in_place(repo, depot, "1")
    publish(repo, "hep", "1", None, {}, key, cvmfs=FQRN, in_place=True, julia_version="1.11")
    before = tree_digest(repo)
    spoil(_in_place(repo, depot, "1"))
    with pytest.raises(DepotDeliveryError, match=message):
        publish(repo, "hep", "1", None, {}, key, cvmfs=FQRN, in_place=True, julia_version="1.11")
    assert calls(state)[-1] == (["abort", "-f", FQRN], "ok") and not is_open(state)
    assert tree_digest(repo) == before


def test_channel_and_gc_transactions(cv, cli):
    repo, state, key, depot, base = cv
    for v in ("1", "2", "3"):
        write(depot / "registries" / "General.toml", f"[{v}]\n")
        publish(repo, "hep", v, depot, {}, key, cvmfs=FQRN)
    assert cli("channel", "set", "--repo", str(repo), "--channel", "stable", "--release", "hep/3", "--key", str(base / "key"), "--cvmfs", FQRN).code == 0
    assert calls(state)[-1][0][:3] == ["publish", "-a", "channel-stable-1"]
    r = repo_gc(repo, keep_last=1, cvmfs=FQRN)
    assert r.removed == ["hep/1"]
    assert [a[0] for a, _ in calls(state)][-2:] == ["transaction", "publish"] and not is_open(state)


def test_repo_gc_tags_are_unique_across_runs(cv):
    """Each repo-gc run publishes under its own tag: CVMFS refuses a tag that already exists."""
    repo, state, key, depot, _ = cv
    for v in ("1", "2", "3", "4"):
        write(depot / "registries" / "General.toml", f"[{v}]\n")
        publish(repo, "hep", v, depot, {}, key, cvmfs=FQRN, channel="stable")
    assert repo_gc(repo, keep_last=3, cvmfs=FQRN).removed == ["hep/1"]
    assert repo_gc(repo, keep_last=2, cvmfs=FQRN).removed == ["hep/2"]
    tags = [a[2] for a, o in calls(state) if a[0] == "publish" and o == "ok"]
    assert len(tags) == len(set(tags)) and not is_open(state)


def test_publish_with_cvmfs_records_the_storage_in_the_transaction(cv):
    repo, _, key, depot, _ = cv
    publish(repo, "hep", "1", depot, {}, key, cvmfs=FQRN)
    assert Repository.open(repo).storage.name == "cvmfs"  # whole-second mtimes, the CVMFS default
    # an explicit record (CVMFS_ENABLE_MTIME_NS) is kept by later --cvmfs publishes
    other = repo.parent / "ns"
    other.mkdir()
    publish(other, "hep", "ns1", depot, {}, key, cvmfs=FQRN, storage="cvmfs-mtime-ns")
    (depot / "registries" / "more.toml").write_text("x = 2\n")
    publish(other, "hep", "ns2", depot, {}, key, cvmfs=FQRN)
    assert Repository.open(other).storage.name == "cvmfs-mtime-ns"


def test_repo_gc_removes_debris_inside_a_transaction(cv):
    """Leftover temporaries (store/debris.py) go inside a transaction of repo-gc's own; with the
    repository lock busy the transaction is aborted and the temporary kept."""
    repo, state, key, depot, _ = cv
    publish(repo, "hep", "1", depot, {}, key, cvmfs=FQRN, channel="stable")
    tmp = write(repo / "channels" / ".stable.json.tmp-0123456789ab", b"half a document")
    with lock_held(repo):
        r = repo_gc(repo, cvmfs=FQRN)
        assert r.debris_removed == [] and "another process holds the repository lock" in r.debris_kept[str(tmp)]
        assert [a[0] for a, _ in calls(state)][-2:] == ["transaction", "abort"] and not is_open(state)
        assert tmp.exists()
    r = repo_gc(repo, cvmfs=FQRN)
    assert r.debris_removed == [str(tmp)] and not tmp.exists()
    assert [a[0] for a, _ in calls(state)][-2:] == ["transaction", "publish"] and not is_open(state)
    assert "1 leftover temporaries" in calls(state)[-1][0][calls(state)[-1][0].index("-m") + 1]
