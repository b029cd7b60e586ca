"""The fingerprint format (store/fingerprint.py): canonical JSON with one hash over the graph,
every field checked on reading, and the optional release.json field that carries CI's."""
from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery._record import replace
from depotdelivery.errors import FormatError
from depotdelivery.store.canonical import canonical_json
from depotdelivery.store.fingerprint import (
    Dependency,
    Fingerprint,
    PackageEntry,
    SysimageEntry,
    compare,
    parse,
)
from depotdelivery.store.release import Release, Tree, Variant

HEX = "0123456789abcdef"
TEXT = st.text(max_size=12)
UUIDS = st.none() | st.uuids().map(str)


def _hex(n: int):
    return st.text(HEX, min_size=n, max_size=n)


@st.composite
def packages(draw: st.DrawFn) -> PackageEntry:
    deps = tuple(draw(st.lists(st.builds(Dependency, name=TEXT, uuid=UUIDS, build_id=_hex(32)), max_size=3)))
    if draw(st.booleans()):
        return PackageEntry(name=draw(TEXT), uuid=draw(UUIDS), verdict="load", cache=draw(TEXT), cache_blake3=draw(_hex(64)),
                            ocache=draw(st.none() | TEXT), ocache_blake3=draw(st.none() | _hex(64)),
                            build_id=draw(_hex(32)), checksum=draw(_hex(16)), deps=deps)
    return PackageEntry(name=draw(TEXT), uuid=draw(UUIDS), verdict=draw(st.sampled_from(["recompile", "not installed"])),
                        reason=draw(st.none() | TEXT))


fingerprints = st.builds(
    Fingerprint, julia_version=TEXT, arch=st.sampled_from(["x86_64", "aarch64"]),
    sysimage=st.none() | st.builds(SysimageEntry, blake3=_hex(64), clone_index=st.none() | st.integers(0, 9),
                                   clone_name=st.none() | TEXT),
    packages=st.lists(packages(), max_size=4, unique_by=lambda p: (p.uuid, p.name)).map(tuple), reference=TEXT,
    meta=st.dictionaries(TEXT, TEXT, max_size=2))


@given(fingerprints)
def test_round_trip_and_one_hash_over_the_graph_only(fp):
    doc = json.loads(fp.to_bytes())
    again = parse(doc, where="fp")
    assert again == fp and again.hash == fp.hash == doc["hash"]
    assert replace(fp, reference=fp.reference + "x", meta={"other": "host"}).hash == fp.hash
    assert compare(fp, again).same


@given(fingerprints, st.data())
def test_any_corruption_is_a_format_error_or_a_valid_document(fp, data):
    raw = bytearray(fp.to_bytes())
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255))
    try:
        parse(json.loads(bytes(raw)), where="fp")
    except (FormatError, ValueError):  # ValueError: not JSON any more
        pass


def _release(fps: tuple[Fingerprint, ...]) -> Release:
    return Release(name="hep", version="1", julia_version="1.11.1", project="environments/hep",
                   shared=Tree(path="depot", tree="a" * 64, files=1, bytes=1),
                   variants=(Variant(target="haswell", arch="x86_64", cpu_target="haswell", path="variants/haswell",
                                     tree="b" * 64, files=1, bytes=1, sysimage=None, clones=(),
                                     clones_source="approximate", fingerprints=fps),))


@given(st.lists(fingerprints, max_size=2).map(tuple))
def test_release_json_carries_them_and_older_documents_are_unchanged(fps):
    rel = _release(fps)
    raw = rel.to_bytes()
    parsed = Release.from_bytes(raw, where="release.json")
    assert parsed.variant("haswell").fingerprints == fps and parsed.to_bytes() == raw
    assert (b'"fingerprints"' in raw) == bool(fps)  # absent when empty: older documents parse and serialise unchanged


def test_a_tampered_recorded_fingerprint_names_its_field():
    fp = Fingerprint(julia_version="1.11.1", arch="x86_64", sysimage=None, reference="ci",
                     packages=(PackageEntry(name="A", uuid=None, verdict="recompile", reason="wrong source"),))
    doc = json.loads(_release((fp,)).to_bytes())
    doc["variants"][0]["fingerprints"][0]["graph"]["packages"][0]["reason"] = "fine"
    with pytest.raises(FormatError, match=r"release.json: field variants\[0\]\.fingerprints\[0\]\.hash: .* not the hash"):
        Release.from_bytes(canonical_json(doc), where="release.json")
    doc["variants"][0]["fingerprints"][0]["graph"]["packages"][0]["verdict"] = "load"
    with pytest.raises(FormatError, match=r"fingerprints\[0\]\.graph\.packages\[0\]\.cache"):
        Release.from_bytes(canonical_json(doc), where="release.json")
