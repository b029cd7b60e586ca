"""Chunked listings of large trees: lossless, content-defined (a one-file change adds one chunk
and an index), every chunk checked against its name."""
from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given
from repo_fixtures import build_depot, make_publisher, write

from depotdelivery.errors import FormatError, IntegrityError
from depotdelivery.publisher.publish import publish
from depotdelivery.store import listing as listing_mod
from depotdelivery.store.canonical import canonical_json
from depotdelivery.store.hashing import hash_bytes
from depotdelivery.store.keys import TrustStore, sign
from depotdelivery.store.listing import (
    encode_listing,
    encode_listing_files,
    is_chunk_index,
    parse_chunk_index,
)
from depotdelivery.store.repo import Repository
from depotdelivery.store.verify import verify
from store.test_formats import listings


def _small_chunks():  # type: ignore[no-untyped-def]
    """Chunk trees above 8 entries, boundaries every ~4 entries: the real sizes (4096, ~256)
    would need thousands of files per test."""
    return mock.patch.multiple(listing_mod, CHUNK_ABOVE=8, _CHUNK_MASK=0x3, _CHUNK_MAX=16)


@given(listings())
def test_chunks_join_to_the_plain_listing(entries):
    with _small_chunks():
        tree, files = encode_listing_files(entries)
    plain = encode_listing(entries)
    if len(entries) <= 8:
        assert files == {tree: plain} and tree == hash_bytes(plain)
        return
    index = files[tree]
    assert is_chunk_index(index) and tree == hash_bytes(index)
    parts = parse_chunk_index(index, where="i")
    assert b"".join(files[h] for h, _ in parts) == plain
    assert all(files[h].count(b"\n") == n and hash_bytes(files[h]) == h for h, n in parts)
    assert all(n <= 16 for _, n in parts)


@pytest.fixture
def big(tmp_path):
    pub = make_publisher(tmp_path)
    depot = build_depot(tmp_path / "depot")
    for i in range(60):
        write(depot / "packages" / f"Pkg{i:02d}" / "src" / f"Pkg{i:02d}.jl", f"module Pkg{i:02d} end\n")
    return pub.repo, pub.trust, pub.key, depot


def _new_listing_files(repo: Path, version: str) -> list[str]:
    d = repo / "releases" / "hep" / version / "listings"
    return sorted(p.name for p in d.iterdir() if os.stat(p).st_nlink == 1)


def test_chunked_release_reads_verifies_and_grows_by_one_chunk(big):
    repo, trust, key, depot = big
    with _small_chunks():
        publish(repo, "hep", "1", depot, {}, key, use_hash_cache=False)
        write(depot / "packages" / "Pkg30" / "src" / "Pkg30.jl", "module Pkg30 # patched\nend\n")
        publish(repo, "hep", "2", depot, {}, key, use_hash_cache=False)
    r = Repository.open(repo)
    for v in ("1", "2"):
        rel = r.read_release("hep", v, TrustStore.from_dir(trust))
        index = (repo / "releases" / "hep" / v / "listings" / f"{rel.shared.tree}.jsonl").read_bytes()
        assert is_chunk_index(index)
        entries = r.read_listing(rel, rel.shared.tree)
        assert len([e for e in entries if e.type == "file"]) == rel.shared.files == 71
    # release 2 owns exactly one new chunk (the one holding Pkg30.jl) and the new index
    assert len(_new_listing_files(repo, "2")) == 2
    verify(repo, trust=TrustStore.from_dir(trust))


def _chunk_of(repo: Path, version: str) -> tuple[Path, Path, list[tuple[str, int]]]:
    rel = Repository.open(repo).read_release("hep", version)
    d = repo / "releases" / "hep" / version / "listings"
    index = d / f"{rel.shared.tree}.jsonl"
    return d, index, list(parse_chunk_index(index.read_bytes(), where="i"))


def test_tampered_or_missing_chunks(big):
    repo, trust, key, depot = big
    with _small_chunks():
        publish(repo, "hep", "1", depot, {}, key, use_hash_cache=False)
    d, _, parts = _chunk_of(repo, "1")
    rel = Repository.open(repo).read_release("hep", "1")
    chunk = d / f"{parts[1][0]}.jsonl"
    good = chunk.read_bytes()
    chunk.write_bytes(good[:-1] + b" \n")
    with pytest.raises(IntegrityError, match="listing chunk hash .* does not match its name"):
        Repository.open(repo).read_listing(rel, rel.shared.tree)
    with pytest.raises(IntegrityError, match=parts[1][0]):
        verify(repo, trust=TrustStore.from_dir(trust))
    chunk.unlink()
    with pytest.raises(FormatError, match="is missing"):
        Repository.open(repo).read_listing(rel, rel.shared.tree)


def _resign_index(repo: Path, key, index_bytes: bytes) -> None:  # type: ignore[no-untyped-def]
    """Replace the shared tree's index and re-sign: a malformed but signed index must be refused."""
    d = repo / "releases" / "hep" / "1"
    doc = __import__("json").loads((d / "release.json").read_bytes())
    tree = hash_bytes(index_bytes)
    (d / "listings" / f"{tree}.jsonl").write_bytes(index_bytes)
    doc["shared"]["tree"] = tree
    raw = canonical_json(doc)
    (d / "release.json").write_bytes(raw)
    (d / "release.json.sig").write_bytes(sign(raw, key))


@pytest.mark.parametrize("forge, message", [
    (lambda parts: [(parts[0][0], parts[0][1] + 1), *parts[1:]], "the index .* says"),
    (lambda parts: [parts[1], parts[0], *parts[2:]], "not sorted|no directory entry for its parent"),
    (lambda parts: [parts[0], parts[0], *parts[1:]], "duplicate path"),
])
def test_forged_indexes_are_refused(big, forge, message):
    repo, trust, key, depot = big
    with _small_chunks():
        publish(repo, "hep", "1", depot, {}, key, use_hash_cache=False)
    _, _, parts = _chunk_of(repo, "1")
    forged = b"".join(canonical_json({"chunk": h, "entries": n}) + b"\n" for h, n in forge(parts))
    _resign_index(repo, key, forged)
    rel = Repository.open(repo).read_release("hep", "1", TrustStore.from_dir(trust))
    with pytest.raises(FormatError, match=message):
        Repository.open(repo).read_listing(rel, rel.shared.tree)


@pytest.mark.parametrize("raw, message", [
    (b'{"chunk":"' + b"a" * 64 + b'","entries":0}\n', "must be >= 1"),
    (b'{"chunk":"xyz","entries":1}\n', "invalid value"),
    (b'{"chunk":"' + b"a" * 64 + b'","entries":1,"x":1}\n', "unknown field"),
    (b'{"chunk":"' + b"a" * 64 + b'", "entries":1}\n', "not canonical"),
    (b'{"chunk":"' + b"a" * 64 + b'","entries":1}', "truncated"),
])
def test_chunk_index_parser_rejects(raw, message):
    with pytest.raises(FormatError, match=message):
        parse_chunk_index(raw, where="i")
