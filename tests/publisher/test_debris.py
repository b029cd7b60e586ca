"""Temporaries interrupted writers leave (store/debris.py): a real `depotdelivery publish` killed
with SIGKILL mid-write, a real process holding a channel update's lock. verify warns about each
leftover (exit 0), repo-gc removes it, never one whose writer still holds its lock."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli
from repo_fixtures import (
    Publisher,
    build_depot,
    lock_held,
    make_publisher,
    tree_digest,
    write,
)

from depotdelivery.publisher.gc import repo_gc
from depotdelivery.publisher.publish import publish
from depotdelivery.publisher.write import DELAY_ENV
from depotdelivery.store.keys import TrustStore
from depotdelivery.store.verify import REPOSITORY, verify

# per written file: the depot has 13 files, so a publish spends ~2.6 s inside its temporary
_DELAY = "0.2"


@pytest.fixture
def published(tmp_path, monkeypatch) -> tuple[Publisher, Path]:
    """A repository with release hep/1 on channel stable, and a depot whose content differs."""
    monkeypatch.setenv("DEPOTDELIVERY_PUBLISH_CACHE", str(tmp_path / "hash-cache"))
    pub = make_publisher(tmp_path)
    depot = build_depot(tmp_path / "depot")
    publish(pub.repo, "hep", "1", depot, {}, pub.key, channel="stable", use_hash_cache=False)
    write(depot / "registries" / "General.toml", "[General] # 2\n")
    return pub, depot


def _start_publish(pub: Publisher, depot: Path, version: str) -> subprocess.Popen[bytes]:
    """A real `python -m depotdelivery publish`, slowed down per written file."""
    return subprocess.Popen(
        [sys.executable, "-m", "depotdelivery", "publish", "--repo", str(pub.repo), "--name", "hep",
         "--version", version, "--depot", str(depot), "--key", str(pub.key_path), "--no-hash-cache", "--quiet"],
        env={**os.environ, DELAY_ENV: _DELAY}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for_temp(proc: subprocess.Popen[bytes], parent: Path, prefix: str) -> Path:
    """Poll until ``proc`` has a temporary named ``prefix``... under ``parent`` with a file in
    it (mid-write, not just created); fail if it exits first."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"publish exited ({proc.returncode}) before writing: {proc.stderr}"
        for p in parent.glob(f"{prefix}*") if parent.is_dir() else ():
            if any(f.is_file() for f in p.rglob("*")):
                return p
        time.sleep(0.005)
    raise AssertionError("no temporary appeared")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _warnings(pub: Publisher) -> list[str]:
    """The paths verify (API) warns about; every release and channel verifies."""
    reports = verify(pub.repo, trust=TrustStore.from_dir(pub.trust))
    return [w.path for r in reports if r.subject == REPOSITORY for w in r.warnings]


def test_killed_publish_leaves_debris_verify_reports_and_repo_gc_removes(published):
    pub, depot = published
    before = tree_digest(pub.repo / "releases" / "hep" / "1")
    proc = _start_publish(pub, depot, "2")
    tmp = _wait_for_temp(proc, pub.repo / "releases" / "hep", ".2.tmp-")
    _kill(proc)
    assert tmp.is_dir(), "SIGKILL runs no cleanup: the temporary stays"

    assert _warnings(pub) == [str(tmp)]
    done = run_cli("verify", "--repo", pub.repo, "--trust", pub.trust)
    assert done.code == 0, "a leftover temporary is no corruption of any release: a warning, exit 0"
    assert f"warning: {tmp}: debris of an interrupted publish of hep" in done.err
    assert "`depotdelivery repo-gc` removes it" in done.err and "Traceback" not in done.err
    assert "ok release hep/1" in done.out and "ok channel stable" in done.out
    js = run_cli("verify", "--repo", pub.repo, "--trust", pub.trust, "--json").json()
    assert js["ok"] and [w["path"] for r in js["reports"] for w in r["warnings"]] == [str(tmp)]

    dry = run_cli("repo-gc", "--repo", pub.repo, "--dry-run")
    assert dry.code == 0 and f"would remove leftover temporary {tmp}" in dry.out and tmp.is_dir()
    gc = run_cli("repo-gc", "--repo", pub.repo)
    assert gc.code == 0, gc.err
    assert f"removed leftover temporary {tmp}" in gc.out and "kept hep/1: channel stable points at it" in gc.out
    assert not tmp.exists()
    assert _warnings(pub) == []
    assert run_cli("verify", "--repo", pub.repo, "--trust", pub.trust).err == ""
    assert tree_digest(pub.repo / "releases" / "hep" / "1") == before, "the published release is untouched"
    # and the interrupted publish can simply be run again
    publish(pub.repo, "hep", "2", depot, {}, pub.key, use_hash_cache=False)
    assert _warnings(pub) == []


def test_repo_gc_keeps_the_temporary_of_a_running_publish(published):
    """The publish still holds releases/hep's lock: repo-gc (not waiting) keeps its temporary,
    and the publish then commits its release as if repo-gc had never run."""
    pub, depot = published
    proc = _start_publish(pub, depot, "2")
    tmp = _wait_for_temp(proc, pub.repo / "releases" / "hep", ".2.tmp-")
    t0 = time.monotonic()
    r = repo_gc(pub.repo)
    assert time.monotonic() - t0 < 2, "repo-gc did not wait for the publish"
    assert r.debris_removed == [] and tmp.is_dir()
    assert str(pub.repo / "releases" / "hep") in r.debris_kept[str(tmp)]
    assert "may still be running" in r.debris_kept[str(tmp)]
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    assert not tmp.exists() and (pub.repo / "releases" / "hep" / "2" / "release.json").is_file()
    assert _warnings(pub) == []


# A real process that takes the repository lock a channel update holds (channels.repository_lock)
# and makes a temporary beside the channel document as write_atomic does, then waits.
_HOLDER = """
import sys, time
from pathlib import Path
from depotdelivery.store.atomic import dir_lock, temp_name
root = Path(sys.argv[1])
with dir_lock(root):
    tmp = temp_name(root / "channels" / "stable.json")
    tmp.write_bytes(b"half a channel document")
    print(tmp, flush=True)
    time.sleep(600)
"""


def test_channel_update_debris(published):
    """A killed `channel set` can leave channels/.stable.json.tmp-*, but its window (one small
    write_atomic) is too short to hit reliably with SIGKILL. So a real process takes the same
    lock (the repository lock) and makes such a temporary: while it holds the lock repo-gc keeps
    the temporary; once it is killed the file is left without a holder and repo-gc removes it."""
    pub, _ = published
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(pub.repo)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        tmp = Path(holder.stdout.readline().strip())
        assert tmp.name.startswith(".stable.json.tmp-") and tmp.is_file()
        assert _warnings(pub) == [str(tmp)]
        done = run_cli("verify", "--repo", pub.repo, "--trust", pub.trust)
        assert done.code == 0 and f"warning: {tmp}: debris of an interrupted channel update" in done.err
        t0 = time.monotonic()
        kept = run_cli("repo-gc", "--repo", pub.repo)
        assert time.monotonic() - t0 < 2 and kept.code == 0, kept.err
        assert f"kept temporary {tmp}: another process holds the repository lock" in kept.out
        assert tmp.is_file()
    finally:
        _kill(holder)
    r = repo_gc(pub.repo)
    assert r.debris_removed == [str(tmp)] and r.debris_kept == {} and not tmp.exists()
    assert _warnings(pub) == []
    assert run_cli("channel", "history", "--repo", pub.repo, "--channel", "stable").code == 0


def test_repository_document_and_signature_debris(published):
    """The other temporaries: a co-sign's beside a committed release.json.sig (repository lock),
    a storage-record change's beside depotdelivery-repo.json (releases/'s lock, held here by a
    real process: kept, then removed once it is gone)."""
    pub, _ = published
    sig_tmp = write(pub.repo / "releases" / "hep" / "1" / ".release.json.sig.tmp-0123456789ab", b"x")
    doc_tmp = write(pub.repo / ".depotdelivery-repo.json.tmp-abcdef012345", b"{}")
    unrelated = write(pub.repo / "channels" / ".stable.json.tmp-short", b"not temp_name's shape")
    # a release temporary whose directories have their final (read-only) modes already
    rel_tmp = pub.repo / "releases" / "hep" / ".3.tmp-0123456789ab"
    write(rel_tmp / "depot" / "packages" / "f", b"x")
    os.chmod(rel_tmp / "depot" / "packages", 0o555)
    os.chmod(rel_tmp / "depot", 0o555)
    assert _warnings(pub) == [str(doc_tmp), str(rel_tmp), str(sig_tmp)]
    with lock_held(pub.repo / "releases"):
        r = repo_gc(pub.repo)
        assert r.debris_removed == [str(rel_tmp), str(sig_tmp)] and list(r.debris_kept) == [str(doc_tmp)]
        assert doc_tmp.exists() and not sig_tmp.exists() and not rel_tmp.exists()
    assert repo_gc(pub.repo).debris_removed == [str(doc_tmp)]
    assert _warnings(pub) == [] and unrelated.exists()
