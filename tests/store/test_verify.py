"""Bad input against a published repository: each class of tampering gives its error and exit code,
every problem is reported with its path, and verifying never changes the repository."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import run_cli
from repo_fixtures import build_depot, build_variant, make_publisher, tree_digest

from depotdelivery.errors import FormatError, IntegrityError, TrustError
from depotdelivery.publisher.publish import VariantInput, publish
from depotdelivery.store.canonical import canonical_json
from depotdelivery.store.hashing import hash_bytes
from depotdelivery.store.keys import (
    REVOKED_FILE,
    TrustStore,
    keygen,
    load_private_key,
    sign,
)
from depotdelivery.store.repo import Repository
from depotdelivery.store.verify import verify

REL = Path("releases/hep/1")


@pytest.fixture
def pub(tmp_path):
    p = make_publisher(tmp_path)
    keygen(tmp_path / "stranger")
    publish(p.repo, "hep", "1", build_depot(tmp_path / "depot"),
            {"haswell": VariantInput(dir=build_variant(tmp_path / "haswell"))}, p.key, use_hash_cache=False)
    return p.repo, p.trust, tmp_path


def _cli_verify(repo: Path, trust: Path, *extra: str) -> tuple[int, str, str]:
    before = tree_digest(repo)
    done = run_cli("verify", "--repo", str(repo), "--trust", str(trust), *extra)
    assert tree_digest(repo) == before, "verify must never modify the repository"
    return done


def test_clean_repository_verifies(pub):
    repo, trust, _ = pub
    code, out, _ = _cli_verify(repo, trust)
    assert code == 0 and "ok release hep/1: 13 files" in out and "signed by" in out


def test_tampered_files_every_problem_reported(pub):
    repo, trust, _ = pub
    d = repo / REL / "depot"
    src = d / "packages" / "Foo" / "Ab0cD" / "src" / "Foo.jl"
    data = src.read_bytes()
    st = src.stat()
    src.write_bytes(data[:-2] + b"!\n")  # same size: only the hash can tell
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.chmod(d / "registries" / "General.toml", 0o666)
    link = d / "artifacts" / "0123456789abcdef0123456789abcdef01234567" / "lib" / "libfoo.so.1"
    link.unlink()
    os.symlink("../bin/tool", link)
    (d / "packages" / "Foo" / "Ab0cD" / "extra.jl").write_text("planted")
    (d / "environments" / "hep" / "Manifest.toml").unlink()
    code, out, err = _cli_verify(repo, trust, "--json")
    assert code == 4
    problems = {p["path"].split("/depot/")[-1]: p["problem"] for r in json.loads(out)["reports"] for p in r["problems"]}
    assert problems["packages/Foo/Ab0cD/src/Foo.jl"].startswith("BLAKE3 ")
    assert problems["registries/General.toml"] == "mode 666, the listing says 644"
    assert "points to '../bin/tool'" in problems[str(link).split("/depot/")[-1]]
    assert problems["packages/Foo/Ab0cD/extra.jl"].startswith("not in the listing")
    assert problems["environments/hep/Manifest.toml"] == "missing (file in the listing)"
    assert "problem(s)" in err


def test_tampered_listing(pub):
    repo, trust, _ = pub
    listing = next((repo / REL / "listings").glob("*.jsonl"))
    listing.write_bytes(listing.read_bytes().replace(b'"mode":420', b'"mode":438', 1))
    code, out, _ = _cli_verify(repo, trust)
    assert code == 4 and "does not match the tree" in out


def test_tampered_release_json(pub):
    repo, trust, _ = pub
    doc = repo / REL / "release.json"
    doc.write_bytes(doc.read_bytes().replace(b'"julia_version":"1.11"', b'"julia_version":"1.12"'))
    code, out, _ = _cli_verify(repo, trust)
    assert code == 4 and "modified after signing" in out
    with pytest.raises(IntegrityError, match="modified after signing"):
        Repository.open(repo).read_release("hep", "1", TrustStore.from_dir(trust))


def test_untrusted_and_revoked_keys(pub):
    repo, trust, base = pub
    doc = (repo / REL / "release.json").read_bytes()
    stranger = load_private_key(base / "stranger")
    (repo / REL / "release.json.sig").write_bytes(sign(doc, stranger))
    code, _, err = _cli_verify(repo, trust)
    assert code == 5 and f"signed by unknown key {stranger.keyid}: add its public key to {trust}" in err
    key = load_private_key(base / "key")
    (repo / REL / "release.json.sig").write_bytes(sign(doc, key))
    (trust / REVOKED_FILE).write_text(key.keyid + "\n")
    code, _, err = _cli_verify(repo, trust)
    assert code == 5 and "revoked key" in err
    with pytest.raises(TrustError):
        Repository.open(repo).read_release("hep", "1", TrustStore.from_dir(trust))


def test_truncated_signature_file(pub):
    repo, trust, _ = pub
    sig = repo / REL / "release.json.sig"
    sig.write_bytes(sig.read_bytes()[:50])
    code, out, _ = _cli_verify(repo, trust)
    assert code == 4 and "unreadable signature file" in out
    sig.unlink()
    code, out, _ = _cli_verify(repo, trust)
    assert code == 5 and "not signed" in out


def _forge_listing(repo: Path, base: Path, mutate) -> None:
    """Replace the shared listing with a mutated one and re-sign everything with the trusted
    key: a signed but malicious (or buggy) listing must still be refused by the parser."""
    doc = json.loads((repo / REL / "release.json").read_bytes())
    old = repo / REL / "listings" / f"{doc['shared']['tree']}.jsonl"
    lines = [json.loads(x) for x in old.read_bytes().splitlines()]
    raw = mutate(lines)
    tree = hash_bytes(raw)
    old.unlink()
    (repo / REL / "listings" / f"{tree}.jsonl").write_bytes(raw)
    doc["shared"]["tree"] = tree
    new_doc = canonical_json(doc)
    (repo / REL / "release.json").write_bytes(new_doc)
    (repo / REL / "release.json.sig").write_bytes(sign(new_doc, load_private_key(base / "key")))


def _jsonl(lines: list[dict]) -> bytes:
    return b"".join(canonical_json(x) + b"\n" for x in lines)


@pytest.mark.parametrize("mutate, message", [
    (lambda ls: _jsonl([*ls, {**ls[-1], "path": "../../../../etc/cron.d/x"}]), "unsafe path"),
    (lambda ls: _jsonl([{**ls[0], "path": "/etc/passwd"}, *ls[1:]]), "unsafe path"),
    (lambda ls: _jsonl([{"mtime_ns": 1, "path": "a", "target": "../../../..", "type": "symlink"}, *ls]),
     "leaves the tree"),
    (lambda ls: _jsonl([ls[0], ls[0], *ls[1:]]), "duplicate path"),
    (lambda ls: _jsonl(ls).replace(b'"path":"logs"', b'"path":"l\xffgs"'), "not UTF-8"),
])
def test_forged_listings_are_refused(pub, mutate, message):
    repo, trust, base = pub
    _forge_listing(repo, base, mutate)
    code, out, _ = _cli_verify(repo, trust)
    assert code == 4 and message in out
    rel = Repository.open(repo).read_release("hep", "1", TrustStore.from_dir(trust))  # the signature is fine
    with pytest.raises(FormatError, match=message):
        Repository.open(repo).read_listing(rel, rel.shared.tree)


def test_release_filed_under_another_name(pub):
    repo, trust, _ = pub
    shutil.copytree(repo / REL, repo / "releases" / "hep" / "2", symlinks=True)
    with pytest.raises(FormatError, match="names release hep/1, but it is filed under hep/2"):
        Repository.open(repo).read_release("hep", "2", TrustStore.from_dir(trust))


def test_verify_without_trust_still_hashes(pub, cli):
    repo, _, _ = pub
    assert cli("verify", "--repo", str(repo), "--release", "hep/1", "--no-signatures").code == 0
    assert "signatures were NOT checked (--no-signatures)" in cli.last.err
    (repo / REL / "depot" / "registries" / "General.toml").write_text("x")
    with pytest.raises(IntegrityError):
        verify(repo, "hep/1")
    assert cli("verify", "--repo", str(repo), "--release", "hep/9", "--no-signatures").code == 3
    assert cli("verify", "--repo", str(repo.parent / "gone"), "--no-signatures").code == 3


def test_verify_finds_the_trusted_keys_as_a_node_does(pub, cli, monkeypatch, tmp_path):
    """Without --trust, verify checks signatures with the keys a node would use
    (DEPOTDELIVERY_TRUSTED_KEYS, then the config files, then /etc/depotdelivery/keys); with
    none there it fails (exit 5) instead of reporting ok, unless --no-signatures is given."""
    repo, trust, _ = pub
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no user config file
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setattr("depotdelivery.node.config.SYSTEM_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("DEPOTDELIVERY_TRUSTED_KEYS", str(trust))
    assert cli("verify", "--repo", str(repo), "--json").code == 0
    assert json.loads(cli.last.out)["signatures_checked"] is True
    empty = tmp_path / "other-keys"
    empty.mkdir()
    monkeypatch.setenv("DEPOTDELIVERY_TRUSTED_KEYS", str(empty))
    assert cli("verify", "--repo", str(repo)).code == 5, "signed by a key this node does not trust"
    assert "unknown key" in cli.last.err
    monkeypatch.setenv("DEPOTDELIVERY_TRUSTED_KEYS", str(tmp_path / "nowhere"))
    assert cli("verify", "--repo", str(repo)).code == 5
    err = cli.last.err
    assert f"trusted-keys directory {tmp_path / 'nowhere'} (environment variable DEPOTDELIVERY_TRUSTED_KEYS)" in err
    assert "--no-signatures" in err
    assert cli("verify", "--repo", str(repo), "--no-signatures", "--trust", str(trust)).code == 2
    monkeypatch.delenv("DEPOTDELIVERY_TRUSTED_KEYS")
    user = tmp_path / "home" / ".config" / "depotdelivery" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text(f"trusted_keys = {str(trust)!r}\n")
    assert cli("verify", "--repo", str(repo), "--json").code == 0, "the user config file names the keys"


def test_exit_codes_say_whose_problem_it_is(pub, cli):
    """A release that is not NAME/VERSION is a usage error (2) as in prepare and channel; a
    release directory this user may not read makes the repository unavailable (3), not an
    integrity failure (4); a directory where release.json belongs is a malformed repository (4)."""
    import subprocess
    import sys
    import tempfile

    repo, trust, _ = pub
    assert cli("verify", "--repo", str(repo), "--trust", str(trust), "--release", "hep").code == 2
    assert "invalid release 'hep': expected NAME/VERSION" in cli.last.err
    # permissions do not bind root: read as nobody, from a copy nobody can reach
    shared = Path(tempfile.mkdtemp(prefix="dd-verify-"))
    try:
        os.chmod(shared, 0o755)
        copy = shared / "repo"
        shutil.copytree(repo, copy, symlinks=True)
        (shared / "trust").mkdir()
        shutil.copy(next(trust.glob("*.pub")), shared / "trust")
        os.chmod(copy / REL, 0o700)
        done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                               "depotdelivery", "verify", "--repo", str(copy), "--trust", str(shared / "trust"),
                               "--release", "hep/1"], capture_output=True, text=True)
        assert done.returncode == 3, done.stderr
        assert "cannot read release document" in done.stderr and "Permission denied" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        shutil.rmtree(shared)
    (repo / REL / "release.json").unlink()
    (repo / REL / "release.json").mkdir()
    assert cli("verify", "--repo", str(repo), "--trust", str(trust), "--release", "hep/1").code == 4
    assert "Is a directory" in cli.last.err


def test_verify_defaults_to_the_nodes_repository(pub, cli, monkeypatch, tmp_path):
    """Without --repo, verify checks the repository a node is configured for
    (DEPOTDELIVERY_REPO, the config files); with none configured it is a usage error."""
    repo, trust, _ = pub
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no user config file
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setattr("depotdelivery.node.config.SYSTEM_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("DEPOTDELIVERY_REPO", raising=False)
    assert cli("verify", "--trust", str(trust)).code == 2
    assert "pass --repo R or set DEPOTDELIVERY_REPO" in cli.last.err
    monkeypatch.setenv("DEPOTDELIVERY_REPO", str(repo))
    assert cli("verify", "--trust", str(trust), "--json").code == 0
    doc = json.loads(cli.last.out)
    assert doc["ok"] and doc["reports"]
    monkeypatch.setenv("DEPOTDELIVERY_REPO", str(tmp_path / "gone"))
    assert cli("verify", "--trust", str(trust)).code == 3


def test_a_channel_reports_the_release_it_points_at_not_a_size(pub, cli):
    from depotdelivery.publisher.channels import set_channel
    from depotdelivery.store.keys import load_private_key

    repo, trust, tmp_path = pub
    set_channel(repo, "stable", "hep/1", [load_private_key(tmp_path / "key")])
    rel_id = Repository.open(repo).read_release("hep", "1").id
    assert cli("verify", "--repo", str(repo), "--trust", str(trust)).code == 0, cli.last.err
    [line] = [ln for ln in cli.last.out.splitlines() if ln.startswith("ok channel")]
    assert line.startswith(f"ok channel stable: points at hep/1 ({rel_id[:16]}), signed by ")
    assert " files" not in line and " B" not in line
    doc = cli("verify", "--repo", str(repo), "--trust", str(trust), "--json").json()
    [channel] = [r for r in doc["reports"] if r["subject"] == "channel stable"]
    assert (channel["release"], channel["release_id"]) == ("hep/1", rel_id)


def test_a_threshold_problem_names_the_document_once(pub, cli):
    repo, trust, _ = pub
    (trust / "threshold").write_text("2\n")
    assert cli("verify", "--repo", str(repo), "--trust", str(trust), "--release", "hep/1").code == 5
    [line] = cli.last.out.splitlines()
    sig = repo / REL / "release.json.sig"
    assert line.startswith(f"release hep/1: {sig}: 1 of 2 required signatures"), line
    assert line.count("release hep/1") == 1 and line.count(str(sig)) == 1, line
    assert "release hep/1" not in cli.last.err and cli.last.err.count(str(sig)) == 1, cli.last.err
