"""Bad input for the node commands: each failure class gets its message and exit code, leaves
no partial depot and leaves the depots already hydrated untouched."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from node_fixtures import build_repo, captured_cpu, node_env, ro_command

HASWELL = str(captured_cpu("linux-rhel7-haswell"))


def cli(repo, args, env, *, tmpfs=(), extra_ro=()) -> subprocess.CompletedProcess[str]:
    """``depotdelivery ARGS`` with the repository mounted read-only."""
    argv = ro_command([repo.root, *extra_ro], [sys.executable, "-m", "depotdelivery", *args], tmpfs=tmpfs)
    return subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env}, timeout=120)


def snapshot(cache: Path) -> dict[str, object]:
    """Every depot in the cache with its complete record and its file tree."""
    out: dict[str, object] = {}
    depots = cache / "depots"
    for key in sorted(os.listdir(depots)) if depots.is_dir() else []:
        tree = sorted(str(p.relative_to(depots / key)) for p in (depots / key).rglob("*"))
        out[key] = ((depots / key / "complete.json").read_text(), tree)
    return out


def assert_clean(cache: Path, before: dict[str, object]) -> None:
    assert snapshot(cache) == before  # nothing new (no partial depot), nothing old touched
    tmp = cache / "tmp"
    assert not tmp.is_dir() or os.listdir(tmp) == []


@pytest.fixture
def warm(node_repo, tmp_path):
    """A cache that already holds one complete depot (stack mode) to prove it stays untouched."""
    cache = tmp_path / "cache"
    env = node_env(node_repo, cache, DEPOTDELIVERY_CPUINFO=HASWELL)
    done = cli(node_repo, ["prepare", "--json"], env)
    assert done.returncode == 0, done.stderr
    return cache, env, snapshot(cache)


def _fails(done: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert done.returncode == code, f"exit {done.returncode}: {done.stderr}"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("depotdelivery: "), done.stderr  # one line, no traceback
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_repository_not_mounted_suggests_cvmfs_probe(node_repo, warm):
    cache, env, before = warm
    _fails(cli(node_repo, ["prepare", "--repo", "/cvmfs/sw.example.org/depots"], env), 3,
           "/cvmfs/sw.example.org/depots", "cvmfs_config probe sw.example.org")
    assert_clean(cache, before)


def test_missing_release_and_channel(node_repo, warm):
    cache, env, before = warm
    _fails(cli(node_repo, ["prepare", "--release", "hep/1999.01"], env), 3, "hep/1999.01", "not found", "hep/2026.11")
    _fails(cli(node_repo, ["prepare", "--channel", "nightly"], env), 3, "nightly", "not found", "stable")
    assert_clean(cache, before)


def test_untrusted_signatures(node_repo, warm, tmp_path):
    cache, env, before = warm
    empty = tmp_path / "no-keys"
    empty.mkdir()
    _fails(cli(node_repo, ["prepare", "--trust", str(empty)], env), 5, "unknown key", str(empty))
    _fails(cli(node_repo, ["prepare", "--release", "hep/2026.11", "--trust", str(empty)], env), 5, "unknown key")
    _fails(cli(node_repo, ["prepare", "--trust", str(tmp_path / "absent")], env), 5, "does not exist")
    assert_clean(cache, before)


def test_no_usable_variant(node_repo, warm):
    cache, env, before = warm
    done = cli(node_repo, ["prepare", "--cpuinfo", str(captured_cpu("linux-amazon-cortex_a72"))], env)
    _fails(done, 6, "no variant", "a64fx: Julia would refuse it", "haswell: built for x86_64")
    assert_clean(cache, before)


def test_unwritable_cache(node_repo, tmp_path):
    cache = tmp_path / "ro-cache"
    env = node_env(node_repo, cache, DEPOTDELIVERY_CPUINFO=HASWELL)
    _fails(cli(node_repo, ["prepare"], env, tmpfs=[(cache, "ro,size=1m,mode=0700")]), 8, str(cache))


def test_enospc_during_hydration_leaves_no_partial_depot(node_repo, tmp_path):
    cache = tmp_path / "tiny"
    env = node_env(node_repo, cache, DEPOTDELIVERY_CPUINFO=HASWELL)
    argv = ro_command([node_repo.root], ["sh", "-c", f"""
        {sys.executable} -m depotdelivery prepare --json > {tmp_path}/stack.json || exit 90
        find {cache}/depots | sort > {tmp_path}/before.txt
        {sys.executable} -m depotdelivery prepare --mode copy 2> {tmp_path}/copy.err
        echo $? > {tmp_path}/copy.code
        find {cache}/depots | sort > {tmp_path}/after.txt
        ls -A {cache}/tmp > {tmp_path}/tmp.txt
        {sys.executable} -m depotdelivery prepare --json > {tmp_path}/stack2.json || exit 91
    """], tmpfs=[(cache, "size=96k,mode=0700")])
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "copy.code").read_text().strip() == "8"
    err = (tmp_path / "copy.err").read_text().strip()
    assert err.startswith("depotdelivery: ") and "No space left" in err and "depotdelivery gc" in err, err
    assert (tmp_path / "before.txt").read_text() == (tmp_path / "after.txt").read_text()  # stack depot untouched
    assert (tmp_path / "tmp.txt").read_text() == ""  # the partial copy is gone
    assert not json.loads((tmp_path / "stack2.json").read_text())["hydrated"]


def test_lock_timeout(node_repo, tmp_path):
    cache = tmp_path / "cache"
    env = node_env(node_repo, cache, DEPOTDELIVERY_CPUINFO=HASWELL)
    key = f"{node_repo.release_id[:16]}-haswell-symlink"
    holder = (f"import filelock, time; l = filelock.FileLock({str(cache / 'locks' / (key + '.lock'))!r}); "
              "l.acquire(); open(" + repr(str(tmp_path / "held")) + ", 'w').close(); time.sleep(60)")
    argv = ro_command([node_repo.root], ["sh", "-c", f"""
        mkdir -p {cache}/locks
        {sys.executable} -c "{holder}" & pid=$!
        while [ ! -e {tmp_path}/held ]; do sleep 0.01; done
        {sys.executable} -m depotdelivery prepare --mode symlink --lock-timeout 0.3 2> {tmp_path}/err
        echo $? > {tmp_path}/code
        kill $pid
    """])
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "code").read_text().strip() == "7"
    err = (tmp_path / "err").read_text()
    assert "hydration lock" in err and "DEPOTDELIVERY_LOCK_TIMEOUT" in err
    assert snapshot(cache) == {}


# ---- documents changed in the repository (a writable copy, mounted read-only for the node) -------

@pytest.fixture
def own_repo(tmp_path):
    return build_repo(tmp_path / "own", targets=("generic", "haswell"), packages=2)


def test_tampered_channel_is_an_integrity_failure(own_repo, tmp_path):
    cache = tmp_path / "cache"
    env = node_env(own_repo, cache, DEPOTDELIVERY_CPUINFO=HASWELL)
    assert cli(own_repo, ["prepare"], env).returncode == 0
    before = snapshot(cache)
    channel = own_repo.root / "channels/stable.json"
    doc = json.loads(channel.read_bytes())
    doc["issued"] = "2020-01-01T00:00:00Z"
    channel.write_bytes(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
    _fails(cli(own_repo, ["prepare"], env), 4, "does not match", "stable")
    assert_clean(cache, before)


def test_channel_downgrade_and_expiry_are_refused(own_repo, tmp_path):
    from depotdelivery.publisher.channels import set_channel
    from depotdelivery.store.keys import load_private_key

    cache = tmp_path / "cache"
    env = node_env(own_repo, cache, DEPOTDELIVERY_CPUINFO=HASWELL)
    channel = own_repo.root / "channels/stable.json"
    old = channel.read_bytes(), channel.with_name("stable.json.sig").read_bytes()
    key = load_private_key(own_repo.key)
    set_channel(own_repo.root, "stable", own_repo.ref, key)  # seq 2, same release
    assert cli(own_repo, ["prepare"], env).returncode == 0
    before = snapshot(cache)
    new = channel.read_bytes(), channel.with_name("stable.json.sig").read_bytes()
    channel.write_bytes(old[0])
    channel.with_name("stable.json.sig").write_bytes(old[1])  # replay the validly signed seq 1
    _fails(cli(own_repo, ["prepare"], env), 5, "seq 2", "seq 1", "downgrade")
    assert_clean(cache, before)
    channel.write_bytes(new[0])
    channel.with_name("stable.json.sig").write_bytes(new[1])
    assert cli(own_repo, ["prepare"], env).returncode == 0  # the hot path still checks trust state
    set_channel(own_repo.root, "stable", own_repo.ref, key, expires=-60)  # seq 3, already expired
    _fails(cli(own_repo, ["prepare"], env), 5, "expired", "re-sign")
    assert_clean(cache, before)


def test_revoking_the_key_is_noticed_by_the_hot_path(node_repo, tmp_path):
    trusted = tmp_path / "trusted"
    shutil.copytree(node_repo.trusted, trusted)
    cache = tmp_path / "cache"
    env = node_env(node_repo, cache, DEPOTDELIVERY_CPUINFO=HASWELL, DEPOTDELIVERY_TRUSTED_KEYS=str(trusted))
    assert cli(node_repo, ["prepare"], env).returncode == 0
    assert cli(node_repo, ["prepare", "--release", node_repo.ref], env).returncode == 0
    before = snapshot(cache)
    keyid = json.loads((node_repo.root / "channels/stable.json.sig").read_text())["signatures"][0]["keyid"]
    (trusted / "revoked").write_text(f"{keyid}  # compromised\n")
    # the documents are byte-identical, but the trust state changed: verified again, and refused
    _fails(cli(node_repo, ["prepare"], env), 5, "revoked", keyid)
    _fails(cli(node_repo, ["prepare", "--release", node_repo.ref], env), 5, "revoked")
    assert_clean(cache, before)
