"""A single bit flipped in any file of the repository (documents, signatures, listings, depot
files, sysimages, channels): verify and prepare refuse with the exit code the file's role
implies, write nothing outside the node cache and leave every hydrated depot intact.

What prepare re-checks (the decision these expectations encode): a warm depot is trusted once
the *channel* bytes, its signature and the trusted-keys directory are unchanged since they were
verified, because the depot was built from a release whose hash that channel signs. So a flip in
``release.json``, a listing or a depot file does not disturb a hot ``prepare``; a flip in the
channel or its signature always does. A cold prepare reads ``release.json`` (checked against the
channel's hash); only copy mode reads listings and file bytes (stack/symlink hand the read-only
repository to Julia, whose content CVMFS itself verifies) - ``verify`` finds every flip.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from adversarial.oracle import sig_verdict
from adversarial.world import A, B, Scene, World

RUNS = ("verify", "hot_stack", "hot_copy", "cold_stack", "cold_copy", "pinned_a", "api_hot_stack")


def _files(root: Path) -> list[str]:
    out = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath, n)
            if p.is_file() and not p.is_symlink() and p.stat().st_size and n != "depotdelivery-repo.json":
                out.append(str(p.relative_to(root)))
    return sorted(out)


def _keyid(pub: Path) -> str:
    import blake3
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_public_key(pub.read_bytes())
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return blake3.blake3(raw).hexdigest()[:32]


def expected(scene: Scene, rel: str, old: bytes, new: bytes) -> dict[str, int]:
    """The exit code each run must give after ``rel`` changed from ``old`` to ``new``."""
    pub = scene.repo.trusted / "publisher.pub"
    keyid = _keyid(pub)
    ok = dict.fromkeys(RUNS, 0)
    parts = rel.split("/")
    if parts[0] == "channels":
        doc = (scene.root / "channels/stable.json").read_bytes()
        code = 4 if rel.endswith(".json") else sig_verdict(doc, new, pub, keyid)
        return {**dict.fromkeys(RUNS, code), "pinned_a": 0}
    ref = "/".join(parts[1:3])
    inner = "/".join(parts[3:])
    d = scene.release_dir(ref)
    if inner == "release.json.sig":
        code = sig_verdict((d / "release.json").read_bytes(), new, pub, keyid)
        return {**ok, "verify": code, "pinned_a": code if ref == A else 0}
    if inner == "release.json":
        if ref == A:
            return {**ok, "verify": 4, "pinned_a": 4}
        return {**ok, "verify": 4, "cold_stack": 4, "cold_copy": 4}
    # a listing or a published file: only verify and copy mode read these bytes
    doc = json.loads((d / "release.json").read_bytes())
    haswell = next(v for v in doc["variants"] if v["target"] == "haswell")
    read_by_copy = (
        inner in (f"listings/{doc['shared']['tree']}.jsonl", f"listings/{haswell['tree']}.jsonl") or inner.startswith(("depot/", "variants/haswell/depot/")) or inner == haswell["sysimage"]["path"])
    return {**ok, "verify": 4, "cold_copy": 4 if ref == B and read_by_copy else 0}


def run(scene: Scene, name: str) -> int:
    if name == "verify":
        return scene.verify().code
    if name == "api_hot_stack":
        return scene.api_prepare()
    if name == "pinned_a":
        return scene.prepare("--release", A).code
    where, mode = name.split("_")
    return scene.prepare(mode=mode, cache=scene.cache if where == "hot" else scene.cold).code


def attack_and_check(scene: Scene, tamper) -> None:
    """Snapshot, tamper, run every command, compare with :func:`expected` (computed by ``tamper``)
    and check the invariants."""
    depots = scene.depots()
    want = tamper()
    outside = scene.outside()
    got = {}
    for name in RUNS:
        cold_before = set(os.listdir(scene.cold / "depots")) if (scene.cold / "depots").is_dir() else set()
        got[name] = run(scene, name)
        if name.startswith("cold") and got[name] != 0:
            after = set(os.listdir(scene.cold / "depots")) if (scene.cold / "depots").is_dir() else set()
            assert after == cold_before, f"{name}: a refused prepare left a depot"
            assert not os.listdir(scene.cold / "tmp") if (scene.cold / "tmp").is_dir() else True
        assert scene.outside() == outside, f"{name} wrote outside the node cache"
    assert got == want
    now = scene.depots()
    assert {k: now.get(k) for k in depots} == depots, "a hydrated depot changed"


@given(data=st.data())
def test_one_bit_flipped_anywhere(world: World, data: st.DataObject) -> None:
    scene = world.fresh()
    rel = data.draw(st.sampled_from(_files(scene.root)), label="file")
    path = scene.root / rel
    old = path.read_bytes()
    offset = data.draw(st.integers(0, len(old) - 1), label="offset")
    bit = data.draw(st.integers(0, 7), label="bit")

    def tamper() -> dict[str, int]:
        new = bytearray(old)
        new[offset] ^= 1 << bit
        scene.rewrite(path, bytes(new))
        return expected(scene, rel, old, bytes(new))

    attack_and_check(scene, tamper)
