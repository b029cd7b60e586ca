"""Co-signing (publisher/cosign.py, `depotdelivery sign`) against nodes with a signature
threshold: real Ed25519 keys, real ``.sig`` files, real repositories, the real CLI."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from trust_fixtures import write_threshold

from depotdelivery.errors import TrustError
from depotdelivery.store.keys import (
    TrustStore,
    keygen,
    load_private_key,
    parse_signatures,
)
from depotdelivery.store.repo import Repository


@pytest.fixture
def signed_repo(tmp_path):
    """A real published repository (channel ``stable``, signed by publisher.key only), a second
    key ``b`` trusted by the node too, and threshold 2."""
    from node_fixtures import build_repo

    repo = build_repo(tmp_path / "n", targets=("haswell",), packages=1)
    _, pub, _ = keygen(tmp_path / "b")
    shutil.copy(pub, repo.trusted / "b.pub")
    write_threshold(repo.trusted, 2)
    return repo, tmp_path / "b"


def _node(repo, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    from captured_cpus import captured_cpu
    from node_fixtures import node_env

    env = node_env(repo, cache, DEPOTDELIVERY_CPUINFO=str(captured_cpu("linux-rhel7-haswell")))
    return subprocess.run([sys.executable, "-m", "depotdelivery", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_threshold_two_refuses_one_signature_until_cosigned(signed_repo, tmp_path, cli):
    repo, b = signed_repo
    done = _node(repo, tmp_path / "cache", "prepare", "--json")
    assert done.returncode == 5 and "1 of 2" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert cli("verify", "--repo", str(repo.root), "--trust", str(repo.trusted)).code == 5
    assert "1 of 2" in cli.last.err

    release_json = (repo.root / "releases/hep/2026.11/release.json").read_bytes()
    channel_json = (repo.root / "channels/stable.json").read_bytes()
    assert cli("sign", "--repo", str(repo.root), "--channel", "stable", "--key", str(b)).code == 0
    assert "signed by" in cli.last.out
    done = _node(repo, tmp_path / "cache", "prepare", "--json")  # the release is checked by the channel's hash
    assert done.returncode == 0, done.stderr
    assert cli("verify", "--repo", str(repo.root), "--trust", str(repo.trusted)).code == 5  # release.json: 1 of 2
    assert "releases/hep/2026.11/release.json.sig: 1 of 2" in cli.last.err
    assert cli("sign", "--repo", str(repo.root), "--release", repo.ref, "--key", str(b), "--key", str(repo.key), "--json").code == 0
    out = json.loads(cli.last.out)
    assert out["already_signed"] == [load_private_key(repo.key).keyid] and out["signatures"] == 2
    assert cli("verify", "--repo", str(repo.root), "--trust", str(repo.trusted), "--json").code == 0
    reports = json.loads(cli.last.out)["reports"]
    assert all(len(r["signed_by"].split(", ")) == 2 for r in reports)
    pinned = _node(repo, tmp_path / "cache2", "prepare", "--release", repo.ref, "--json")
    assert pinned.returncode == 0, pinned.stderr

    # idempotent: signing again writes nothing; the documents were never changed
    sigs = {p: p.read_bytes() for p in repo.root.rglob("*.sig")}
    stats = {p: os.stat(p).st_ino for p in sigs}
    assert cli("sign", "--repo", str(repo.root), "--channel", "stable", "--key", str(b)).code == 0
    assert "nothing written" in cli.last.out
    assert {p: p.read_bytes() for p in sigs} == sigs and {p: os.stat(p).st_ino for p in sigs} == stats
    assert (repo.root / "releases/hep/2026.11/release.json").read_bytes() == release_json
    assert (repo.root / "channels/stable.json").read_bytes() == channel_json

    # a raised threshold forces the remembered verification to be redone (hot path included)
    write_threshold(repo.trusted, 3)
    done = _node(repo, tmp_path / "cache", "prepare", "--json")
    assert done.returncode == 5 and "2 of 3" in done.stderr, done.stderr


def test_publish_and_channel_set_sign_with_every_key(signed_repo, tmp_path, cli):
    from repo_fixtures import build_depot

    repo, b = signed_repo
    trust = TrustStore.from_dir(repo.trusted)
    depot = build_depot(tmp_path / "depot")
    assert cli("publish", "--repo", str(repo.root), "--name", "lib", "--version", "1", "--depot", str(depot), "--key", str(repo.key), "--key", str(b), "--key", str(b), "--quiet").code == 0
    r = Repository.open(repo.root)
    rel = r.read_release("lib", "1", trust)
    assert len(parse_signatures(rel.sig_raw or b"", where="t")) == 2  # the repeated key signs once

    old = r.read_channel("stable", check_expiry=False)
    assert cli("channel", "set", "--repo", str(repo.root), "--channel", "stable", "--release", "lib/1", "--key", str(repo.key), "--key", str(b)).code == 0
    new = r.read_channel("stable", trust)
    # a reader racing the update (old document, new .sig) still finds both keys' signatures
    assert len(trust.signers(old.raw, new.sig_raw, "old stable")) == 2

    # an update signed by one key only: nodes with threshold 2 refuse it until it is co-signed
    assert cli("channel", "rollback", "--repo", str(repo.root), "--channel", "stable", "--key", str(repo.key)).code == 0
    with pytest.raises(TrustError, match="1 of 2"):
        r.read_channel("stable", trust)
    assert cli("sign", "--repo", str(repo.root), "--channel", "stable", "--key", str(b)).code == 0
    rolled = r.read_channel("stable", trust)
    assert rolled.release == repo.ref and rolled.raw != new.raw


def test_sign_cli_exit_codes(signed_repo, tmp_path, cli):
    repo, b = signed_repo
    root = str(repo.root)
    assert cli("sign", "--repo", root, "--release", "hep/9", "--key", str(b)).code == 3  # no such release
    assert cli("sign", "--repo", root, "--channel", "nightly", "--key", str(b)).code == 3
    assert cli("sign", "--repo", root, "--release", "hep", "--key", str(b)).code == 2  # not NAME/VERSION
    assert cli("sign", "--repo", root, "--channel", "stable", "--key", str(tmp_path / "missing")).code == 2
    assert "Traceback" not in cli.last.err
    for argv in (["--key", str(b)], ["--release", repo.ref, "--channel", "stable", "--key", str(b)],
                 ["--release", repo.ref]):
        with pytest.raises(SystemExit) as exc:
            cli("sign", "--repo", root, *argv)
        assert exc.value.code == 2
    sig = repo.root / "channels/stable.json.sig"
    sig.write_bytes(sig.read_bytes()[:20])  # a truncated .sig is refused, not overwritten
    assert cli("sign", "--repo", root, "--channel", "stable", "--key", str(b)).code == 4
    assert len(sig.read_bytes()) == 20


def test_sign_with_cvmfs_runs_in_one_transaction_and_none_when_already_signed(signed_repo, monkeypatch, tmp_path, cli):
    from publisher.test_cvmfs import FQRN, STAND_INS, calls

    repo, b = signed_repo
    state = tmp_path / "cvmfs-state"
    monkeypatch.setenv("PATH", f"{STAND_INS}:{Path(sys.executable).parent}:{os.environ['PATH']}")
    monkeypatch.setenv("CVMFS_STANDIN_DIR", str(state))
    monkeypatch.setenv("CVMFS_STANDIN_REPO", str(repo.root))
    assert cli("sign", "--repo", str(repo.root), "--release", repo.ref, "--key", str(b), "--cvmfs", FQRN).code == 0
    argv = [a for a, _ in calls(state)]
    assert [a[0] for a in argv] == ["transaction", "publish"] and "sign-hep_2026.11" in argv[1]
    assert cli("sign", "--repo", str(repo.root), "--release", repo.ref, "--key", str(b), "--cvmfs", FQRN).code == 0
    assert len(calls(state)) == 2  # nothing to add: no transaction
    Repository.open(repo.root).read_release("hep", "2026.11", TrustStore.from_dir(repo.trusted))


def test_sign_waits_for_the_repository_lock(signed_repo):
    from repo_fixtures import blocked_on_flock

    from depotdelivery.publisher.channels import repository_lock

    repo, b = signed_repo
    with repository_lock(repo.root, None, tag="t", message="m"):
        signer = subprocess.Popen([sys.executable, "-m", "depotdelivery", "sign", "--repo", str(repo.root),
                                   "--channel", "stable", "--key", str(b)], stderr=subprocess.PIPE)
        assert blocked_on_flock(signer), "sign did not wait for the repository lock"
        assert len(parse_signatures((repo.root / "channels/stable.json.sig").read_bytes(), where="t")) == 1
    assert signer.wait(timeout=60) == 0, signer.stderr.read() if signer.stderr else ""
    ch = Repository.open(repo.root).read_channel("stable", check_expiry=False)
    assert len(TrustStore.from_dir(repo.trusted).signers(ch.raw, ch.sig_raw, "stable")) == 2
