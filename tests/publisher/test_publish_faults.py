"""Publishing into a repository that cannot take it: missing root, read-only root (a real read-only
bind mount), a full filesystem (a real tiny tmpfs). Clear error, exit 9 (3 for a missing root),
and the repository byte-for-byte as before."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from node_fixtures import ro_command
from repo_fixtures import build_depot

from depotdelivery.store.keys import keygen

TESTS = Path(__file__).parents[1]
# Runs inside the private mount namespace: publish with the real CLI, hash the tree before and
# after with the same digest the other tests use, report both and the exit code as JSON.
_SCRIPT = """
import json, subprocess, sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from repo_fixtures import tree_digest
repo = Path({repo!r})
before = tree_digest(repo)
p = subprocess.run([sys.executable, "-m", "depotdelivery", *{args!r}], capture_output=True, text=True)
print(json.dumps({{"before": before, "after": tree_digest(repo), "code": p.returncode, "err": p.stderr}}))
"""


def _in_namespace(repo: Path, args: list[str], *, readonly: tuple[Path, ...] = (),
                  tmpfs: tuple[tuple[Path, str], ...] = (), before: tuple[str, ...] = ()) -> dict:
    """Run ``_SCRIPT`` in a private mount namespace (node_fixtures.ro_command), after the shell
    steps ``before``; skips where such a namespace cannot be made."""
    script = repo.parent / "in_namespace.py"
    script.write_text(_SCRIPT.format(tests=str(TESTS), repo=str(repo), args=args))
    shell = " && ".join([*before, f"exec {sys.executable} {script}"])
    done = subprocess.run(ro_command(readonly, ["sh", "-c", shell], tmpfs=tmpfs),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture
def inputs(tmp_path):
    keygen(tmp_path / "key")
    return tmp_path, build_depot(tmp_path / "depot")


def _args(repo: Path, version: str, depot: Path, key: Path) -> list[str]:
    return ["publish", "--repo", str(repo), "--name", "hep", "--version", version, "--depot", str(depot),
            "--key", str(key), "--no-hash-cache", "--quiet"]


def test_missing_repo_root(inputs, cli):
    base, depot = inputs
    assert cli(*_args(base / "absent", "1", depot, base / "key")).code == 3
    err = cli.last.err
    assert "repository" in err and "does not exist" in err and "Traceback" not in err
    assert not (base / "absent").exists()


def test_read_only_repo_root(inputs, cli):
    base, depot = inputs
    repo = base / "repo"
    repo.mkdir()
    assert cli(*_args(repo, "1", depot, base / "key")).code == 0
    (depot / "registries" / "General.toml").write_text("[changed]\n")
    result = _in_namespace(repo, _args(repo, "2", depot, base / "key"), readonly=(repo,))
    assert result["code"] == 9, result["err"]
    assert "is read-only" in result["err"] and "left as it was" in result["err"] and "Traceback" not in result["err"]
    assert result["before"] == result["after"]


@pytest.mark.parametrize("extra", [(), ("--storage", "cvmfs")], ids=["plain", "--storage"])
def test_enospc_mid_publish(inputs, extra):
    """With --storage the storage record written for the release is put back as well."""
    base, depot = inputs
    repo = base / "repo"
    repo.mkdir()
    # a small first release fits; the second carries 2 MiB more than the 1 MiB tmpfs holds
    before = (f"{sys.executable} -m depotdelivery {' '.join(_args(repo, '1', depot, base / 'key'))}",
              f"head -c 2097152 /dev/urandom > {depot}/artifacts/big.bin")
    result = _in_namespace(repo, [*_args(repo, "2", depot, base / "key"), *extra], tmpfs=((repo, "size=1m"),),
                           before=before)
    assert result["code"] == 9, result["err"]
    assert "is full (no space left on device)" in result["err"] and "Traceback" not in result["err"]
    assert result["before"] == result["after"], "the half-written release must be gone"


def test_channel_failure_after_the_commit_keeps_the_release(inputs, cli):
    """The rename of the release into place is the commit point: when the channel update
    after it fails (channels/ on a real read-only bind mount), the release stays and the error
    says so and how to finish; the channel is as it was."""
    base, depot = inputs
    repo = base / "repo"
    repo.mkdir()
    assert cli(*_args(repo, "1", depot, base / "key"), "--channel", "stable").code == 0
    channel_before = (repo / "channels" / "stable.json").read_bytes()
    (depot / "registries" / "General.toml").write_text("[changed]\n")
    result = _in_namespace(repo, [*_args(repo, "2", depot, base / "key"), "--channel", "stable"],
                           readonly=(repo / "channels",))
    assert result["code"] == 9, result["err"]
    assert "release hep/2 published, channel stable not updated" in result["err"], result["err"]
    assert "depotdelivery channel set --repo" in result["err"] and "Traceback" not in result["err"]
    assert (repo / "releases" / "hep" / "2" / "release.json").is_file()
    assert (repo / "channels" / "stable.json").read_bytes() == channel_before
