"""Hostile bytes in every repository document (release.json and its .sig, channel and its
.sig, listings, depotdelivery-repo.json): giant integers, deep nesting, huge strings, non-UTF-8,
NaN, BOMs, duplicate keys. Each is a one-line FormatError (exit 4), never an internal error,
and nothing outside the node cache changes."""
from __future__ import annotations

import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adversarial.strategies import hostile_json
from adversarial.world import World, heavy

DOCUMENTS = ("releases/hep/2026.12/release.json", "releases/hep/2026.12/release.json.sig",
             "channels/stable.json", "channels/stable.json.sig", "depotdelivery-repo.json", "listing")


def _target(scene, which: str):
    if which != "listing":
        return scene.root / which
    d = scene.release_dir("hep/2026.12")
    shared = json.loads((d / "release.json").read_bytes())["shared"]["tree"]
    return d / "listings" / f"{shared}.jsonl"  # the shared tree's: copy mode reads it on any host


@heavy(2)
@given(which=st.sampled_from(DOCUMENTS), payload=hostile_json)
def test_hostile_document_is_a_format_error_for_verify(world: World, which: str, payload: bytes) -> None:
    from depotdelivery.errors import IntegrityError
    from depotdelivery.store.keys import TrustStore
    from depotdelivery.store.verify import verify

    scene = world.fresh()
    scene.rewrite(_target(scene, which), payload)
    outside = scene.outside()
    got = scene.verify()
    assert got.code == 4, got
    assert got.err.startswith("depotdelivery: ") and "internal error" not in got.err
    with pytest.raises(IntegrityError):  # FormatError or a hash mismatch: both exit 4
        verify(scene.root, None, TrustStore.from_dir(scene.repo.trusted))
    assert scene.outside() == outside


@heavy(2)
@given(which=st.sampled_from(DOCUMENTS), payload=hostile_json)
def test_hostile_document_refused_by_prepare(world: World, which: str, payload: bytes) -> None:
    scene = world.fresh()
    depots = scene.depots()
    scene.rewrite(_target(scene, which), payload)
    outside = scene.outside()
    # the listing is only read by copy mode, the release's own signature only for a pinned
    # release (a channel's signature and hash cover release.json); the rest by any cold prepare
    mode = "copy" if which == "listing" else "stack"
    pin = ("--release", "hep/2026.12") if which.endswith("release.json.sig") else ()
    cold = scene.prepare(*pin, mode=mode, cache=scene.cold)
    assert cold.code == 4, cold
    assert "internal error" not in cold.err and len(cold.err.splitlines()) == 1
    assert not os.path.isdir(scene.cold / "depots") or os.listdir(scene.cold / "depots") == []
    if which.startswith("channels/") or which == "depotdelivery-repo.json":
        hot = scene.prepare()  # the channel bytes changed: the warm cache re-verifies them
        assert hot.code == 4, hot
    assert scene.outside() == outside
    assert scene.depots() == depots


def test_fixes_hold_for_the_store_parsers_directly() -> None:
    """The parsers themselves (not only the commands) turn hostile JSON into FormatError."""
    from depotdelivery.errors import FormatError
    from depotdelivery.store.fields import load_canonical
    from depotdelivery.store.keys import parse_signatures
    from depotdelivery.store.listing import parse_listing

    for raw in (b'{"seq":' + b"9" * 5000 + b"}", b"[" * 100_000 + b"]" * 100_000):
        with pytest.raises(FormatError):
            load_canonical(raw, "x")
        with pytest.raises(FormatError):
            parse_signatures(raw, where="x")
        with pytest.raises(FormatError):
            parse_listing(raw + b"\n", where="x")
