"""Channels: signed documents whose seq only grows, rollback as a new document, history, expiry."""
from __future__ import annotations

import json
import time

import pytest
from repo_fixtures import (
    blocked_on_flock,
    build_depot,
    make_publisher,
    publish_series,
    tree_digest,
)

from depotdelivery.errors import NotFoundError, TrustError, UsageError
from depotdelivery.publisher.channels import (
    channel_history,
    rollback_channel,
    set_channel,
)
from depotdelivery.store.keys import TrustStore
from depotdelivery.store.repo import Repository


@pytest.fixture
def three(tmp_path):
    """A repository with releases hep/1..3 (one file differs) and no channel yet."""
    pub = make_publisher(tmp_path)
    publish_series(pub, build_depot(tmp_path / "depot"), ("1", "2", "3"))
    return pub.repo, pub.trust, pub.key, tmp_path


def test_set_history_rollback(three):
    repo, trust, key, _ = three
    assert set_channel(repo, "stable", "hep/1", key).seq == 1
    assert set_channel(repo, "stable", "hep/2", key).seq == 2
    assert set_channel(repo, "stable", "hep/3", key).seq == 3
    back = rollback_channel(repo, "stable", key)
    assert (back.seq, back.release) == (4, "hep/2"), "rollback: a new, higher seq pointing at the previous release"
    again = rollback_channel(repo, "stable", key, to="hep/1")
    assert (again.seq, again.release) == (5, "hep/1")
    hist = channel_history(repo, "stable")
    assert [(e.seq, e.release) for e in hist] == [(5, "hep/1"), (4, "hep/2"), (3, "hep/3"), (2, "hep/2"), (1, "hep/1")]
    ch = Repository.open(repo).read_channel("stable", TrustStore.from_dir(trust))
    rel = Repository.open(repo).read_release("hep", "1")
    assert ch.release_hash == rel.id and ch.seq == 5
    with pytest.raises(UsageError, match="not in the history"):
        rollback_channel(repo, "stable", key, to="hep/9")


def test_rolling_back_twice_walks_further_back(three):
    """A second rollback must not re-deploy the release the first one rolled back from: each
    rollback records the seq it left (signed, in the history) and the default target walks past
    it; with nothing left it asks for --release."""
    repo, trust, key, _ = three
    for v in ("1", "2", "3"):
        set_channel(repo, "stable", f"hep/{v}", key)
    first = rollback_channel(repo, "stable", key)
    assert (first.seq, first.release, first.rollback_of) == (4, "hep/2", 3)
    second = rollback_channel(repo, "stable", key)
    assert (second.seq, second.release, second.rollback_of) == (5, "hep/1", 4), "not back to the bad hep/3"
    with pytest.raises(UsageError, match=r"no earlier release to roll back to \(now hep/1; rolled back from "
                                         r"hep/2, hep/3\); name one with --release"):
        rollback_channel(repo, "stable", key)
    # a release deliberately set again after a rollback is a valid target once more
    set_channel(repo, "stable", "hep/3", key)
    assert rollback_channel(repo, "stable", key).release == "hep/1"
    ch = Repository.open(repo).read_channel("stable", TrustStore.from_dir(trust))
    assert [(e.seq, e.release, e.rollback_of) for e in ch.history()] == [
        (7, "hep/1", 6), (6, "hep/3", None), (5, "hep/1", 4), (4, "hep/2", 3), (3, "hep/3", None),
        (2, "hep/2", None), (1, "hep/1", None)]


def test_set_if_changed_writes_nothing(three):
    repo, _, key, _ = three
    set_channel(repo, "stable", "hep/1", key)
    before = tree_digest(repo)
    assert set_channel(repo, "stable", "hep/1", key, if_changed=True).seq == 1
    assert tree_digest(repo) == before


def test_set_refuses_a_missing_release_and_leaves_no_trace(three):
    repo, _, key, _ = three
    before = tree_digest(repo)
    with pytest.raises(NotFoundError, match="release hep/9 not found"):
        set_channel(repo, "stable", "hep/9", key)
    assert tree_digest(repo) == before


def test_expired_channel_is_refused(three, cli):
    repo, trust, key, _ = three
    set_channel(repo, "stable", "hep/1", key, expires=60, now=time.time() - 3600)
    before = tree_digest(repo)
    with pytest.raises(TrustError, match="expired at .* re-sign it"):
        Repository.open(repo).read_channel("stable", TrustStore.from_dir(trust))
    assert cli("verify", "--repo", str(repo), "--trust", str(trust)).code == 5
    assert "expired" in cli.last.err
    assert cli("channel", "show", "--repo", str(repo), "--channel", "stable", "--trust", str(trust)).code == 0
    assert "EXPIRED" in cli.last.out
    assert tree_digest(repo) == before
    assert set_channel(repo, "stable", "hep/1", key, if_changed=True).seq == 2, "an expired channel is re-signed"


def test_lower_seq_is_refused_by_a_node(three, tmp_path):
    """Replaying an older, validly signed channel document (rollback attack) is refused by the
    node's trust state, which remembers the highest seq it accepted."""
    from depotdelivery.node.cache import NodeCache
    from depotdelivery.node.trust import verified_channel

    repo, trust, key, _ = three
    set_channel(repo, "stable", "hep/1", key)
    old_doc = (repo / "channels" / "stable.json").read_bytes()
    old_sig = (repo / "channels" / "stable.json.sig").read_bytes()
    set_channel(repo, "stable", "hep/2", key)
    repo_id = Repository.open(repo).repo_id
    cache = NodeCache(tmp_path / "node-cache")
    assert verified_channel(cache, repo, repo_id, "stable", str(trust)).seq == 2
    (repo / "channels" / "stable.json").write_bytes(old_doc)
    (repo / "channels" / "stable.json.sig").write_bytes(old_sig)
    before = tree_digest(repo)
    with pytest.raises(TrustError, match="went back from seq 2 .* to seq 1"):
        verified_channel(cache, repo, repo_id, "stable", str(trust))
    assert tree_digest(repo) == before


def test_reader_between_the_two_renames_still_verifies(three):
    """set_channel replaces .sig before the document; the new .sig also signs the old
    document, so a reader holding the old document and the new .sig still verifies."""
    repo, trust, key, _ = three
    set_channel(repo, "stable", "hep/1", key)
    old_doc = (repo / "channels" / "stable.json").read_bytes()
    set_channel(repo, "stable", "hep/2", key)
    new_sig = (repo / "channels" / "stable.json.sig").read_bytes()
    ts = TrustStore.from_dir(trust)
    assert ts.verify(old_doc, new_sig, "channel stable") == key.keyid
    assert ts.verify((repo / "channels" / "stable.json").read_bytes(), new_sig, "channel stable") == key.keyid
    assert len(json.loads(new_sig)["signatures"]) == 2


def test_cli_channel_commands(three, cli):
    repo, trust, _, base = three
    k = str(base / "key")
    r = ["--repo", str(repo), "--channel", "stable"]
    assert cli("channel", "set", *r, "--release", "hep/1", "--key", k, "--expires", "never").code == 0
    assert cli("channel", "set", *r, "--release", "hep/3", "--key", k, "--json").code == 0
    assert cli("channel", "show", *r, "--json").code == 0
    assert json.loads(cli.last.out)["seq"] == 2
    assert cli("channel", "rollback", *r, "--key", k).code == 0
    assert "-> hep/1 (seq 3" in cli.last.out
    assert cli("channel", "history", *r, "--json").code == 0
    hist = json.loads(cli.last.out)["history"]
    assert [(h["seq"], h["release"]) for h in hist] == [(3, "hep/1"), (2, "hep/3"), (1, "hep/1")]
    assert cli("channel", "show", *r, "--trust", str(trust), "--json").code == 0
    shown = json.loads(cli.last.out)
    assert shown["release"] == "hep/1" and not shown["expired"]
    assert cli("channel", "set", *r, "--key", k).code == 2  # no --release
    assert cli("channel", "show", "--repo", str(repo), "--channel", "nightly").code == 3
    assert cli("channel", "set", *r, "--release", "hep/1", "--key", k, "--expires", "soon").code == 2


def test_concurrent_updates_are_serialised(three):
    """Real processes updating one channel at once: every update gets its own seq, the history
    holds all of them in order, and the final document matches its signature."""
    import subprocess
    import sys

    repo, trust, _key, base = three
    script = (
        "import sys\n"
        "from depotdelivery.publisher.channels import set_channel\n"
        "from depotdelivery.store.keys import load_private_key\n"
        "key = load_private_key(sys.argv[2])\n"
        "for i in range(6):\n"
        "    set_channel(sys.argv[1], 'stable', f'hep/{(int(sys.argv[3]) + i) % 3 + 1}', key)\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(repo), str(base / "key"), str(n)])
             for n in range(4)]
    assert [p.wait() for p in procs] == [0] * 4
    ch = Repository.open(repo).read_channel("stable", TrustStore.from_dir(trust))
    seqs = [e.seq for e in ch.history()]
    assert seqs == list(range(24, 0, -1)), "each update read the seq the one before it wrote"


def test_set_rereads_the_release_under_the_lock(three):
    """A release removed (as repo-gc does, under the repository lock) while `channel set` waits
    for that lock: the channel is not pointed at a release that is gone."""
    import shutil
    import subprocess
    import sys

    from depotdelivery.publisher.channels import repository_lock

    repo, trust, key, base = three
    set_channel(repo, "stable", "hep/3", key)
    script = ("import sys\nfrom depotdelivery.publisher.channels import set_channel\n"
              "from depotdelivery.store.keys import load_private_key\n"
              "set_channel(sys.argv[1], 'stable', 'hep/1', load_private_key(sys.argv[2]))\n")
    with repository_lock(repo, None, tag="t", message="m"):
        setter = subprocess.Popen([sys.executable, "-c", script, str(repo), str(base / "key")], stderr=subprocess.PIPE)
        assert blocked_on_flock(setter), "channel set did not wait for the repository lock"
        shutil.rmtree(repo / "releases" / "hep" / "1")
    assert setter.wait() != 0 and b"release hep/1 not found" in setter.stderr.read()
    assert Repository.open(repo).read_channel("stable", TrustStore.from_dir(trust)).release == "hep/3"
