"""Repository gc: never a release a channel points at; history retention; dry runs change nothing."""
from __future__ import annotations

import json
import os

import pytest
from repo_fixtures import (
    blocked_on_flock,
    build_depot,
    make_publisher,
    publish_series,
    tree_digest,
)

from depotdelivery.errors import PublishError, UsageError
from depotdelivery.publisher.channels import rollback_channel, set_channel
from depotdelivery.publisher.gc import repo_gc
from depotdelivery.store.keys import TrustStore
from depotdelivery.store.repo import Repository
from depotdelivery.store.verify import verify


@pytest.fixture
def six(tmp_path):
    pub = make_publisher(tmp_path)
    publish_series(pub, build_depot(tmp_path / "depot", big=256 * 1024), [str(i) for i in range(1, 7)])
    for i in range(1, 7):
        os.utime(pub.repo / "releases" / "hep" / str(i) / "release.json", ns=(i * 10**18, i * 10**18))
    return pub.repo, pub.trust, pub.key


def test_gc_keeps_channels_and_history(six):
    repo, trust, key = six
    for v in ("1", "2", "3", "5"):
        set_channel(repo, "stable", f"hep/{v}", key)
    set_channel(repo, "testing", "hep/6", key)
    rollback_channel(repo, "stable", key)  # stable -> hep/3, history 3,5,3,2,1
    before = tree_digest(repo)
    dry = repo_gc(repo, keep_last=2, dry_run=True)
    assert tree_digest(repo) == before, "a dry run removes nothing"
    assert sorted(dry.removed) == ["hep/1", "hep/2"]
    assert dry.kept["hep/4"] == "one of the 2 newest releases not on any channel"
    assert dry.kept["hep/3"].startswith("channel stable points at it")
    assert dry.kept["hep/5"].startswith("in the last 2 of channel stable's history")
    assert dry.kept["hep/6"].startswith("channel testing points at it")
    done = repo_gc(repo, keep_last=2)
    assert done.removed == dry.removed and done.freed_bytes == dry.freed_bytes
    assert Repository.open(repo).releases() == [("hep", "3"), ("hep", "4"), ("hep", "5"), ("hep", "6")]
    # hard links shared with removed releases keep the survivors intact
    verify(repo, trust=TrustStore.from_dir(trust))
    assert not [p for p in (repo / "releases" / "hep").iterdir() if p.name.startswith(".")]


def test_gc_never_removes_a_pointed_at_release(six):
    repo, _, key = six
    set_channel(repo, "stable", "hep/1", key)  # the oldest
    r = repo_gc(repo, keep_last=1)
    assert "hep/1" not in r.removed and ("hep", "1") in Repository.open(repo).releases()
    assert sorted(r.removed) == ["hep/2", "hep/3", "hep/4", "hep/5"], "hep/6: the newest never-channelled one"


def test_gc_refuses_with_an_unreadable_channel(six):
    repo, _, key = six
    set_channel(repo, "stable", "hep/6", key)
    (repo / "channels" / "stable.json").write_text("{broken")
    before = tree_digest(repo)
    with pytest.raises(PublishError, match="repo-gc refuses to run"):
        repo_gc(repo)
    assert tree_digest(repo) == before


def test_gc_cli(six, cli):
    repo, _, key = six
    set_channel(repo, "stable", "hep/6", key)
    assert cli("repo-gc", "--repo", str(repo), "--keep-last", "1", "--dry-run", "--json").code == 0
    out = json.loads(cli.last.out)
    assert out["dry_run"] and sorted(out["removed"]) == ["hep/1", "hep/2", "hep/3", "hep/4"]
    assert cli("repo-gc", "--repo", str(repo), "--keep-last", "1").code == 0
    assert "removed 4 release(s)" in cli.last.out
    assert cli("repo-gc", "--repo", str(repo), "--keep-last", "0").code == 2
    with pytest.raises(UsageError):
        repo_gc(repo, keep_last=0)


def test_gc_waits_for_a_channel_update_in_progress(six):
    """repo-gc takes the repository lock before it reads the channels: a channel writer that
    holds the lock and points a channel at an old release keeps that release alive."""
    import shutil
    import subprocess
    import sys

    from depotdelivery.publisher.channels import repository_lock

    repo, trust, key = six
    set_channel(repo, "stable", "hep/1", key)
    saved = repo / ".saved"
    saved.mkdir()
    for f in ("stable.json", "stable.json.sig"):
        shutil.copy(repo / "channels" / f, saved / f)
    set_channel(repo, "stable", "hep/6", key)
    with repository_lock(repo, None, tag="t", message="m"):
        gc = subprocess.Popen([sys.executable, "-c", ("import sys; from depotdelivery.publisher.gc import repo_gc; "
                               "repo_gc(sys.argv[1], keep_last=1)"), str(repo)])
        blocked_on_flock(gc)  # or finished without waiting for our lock (the bug this catches)
        for f in ("stable.json.sig", "stable.json"):  # what a concurrent writer commits under the lock
            os.replace(saved / f, repo / "channels" / f)
    assert gc.wait() == 0
    saved.rmdir()
    assert ("hep", "1") in Repository.open(repo).releases(), "gc read the channels before the writer finished"
    Repository.open(repo).read_channel("stable", TrustStore.from_dir(trust), check_expiry=False)
