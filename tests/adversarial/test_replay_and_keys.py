"""Replayed channel documents and revoked keys. A node that accepted seq k refuses every validly
signed document with a lower seq (rollback attack), also when the hostile repository disguises
itself as another one (a new id in the unsigned depotdelivery-repo.json, or the root replaced by
a symlink to a doctored copy); documents signed only by a revoked key are refused even on the
hot path, where nothing in the repository changed."""
from __future__ import annotations

import json
import os
import shutil

from hypothesis import given
from hypothesis import strategies as st

from adversarial.world import A, B, Scene, World, heavy

DISGUISES = ("none", "new-repo-id", "root-symlink")


def _history(scene: Scene, moves: list[str]) -> list[tuple[int, bytes, bytes]]:
    """Apply channel moves (set A, set B, rollback) and return every document written."""
    from depotdelivery.errors import UsageError
    from depotdelivery.publisher.channels import rollback_channel, set_channel
    from depotdelivery.store.keys import load_private_key

    key = load_private_key(scene.repo.key)
    ch = scene.root / "channels" / "stable.json"
    docs = [(2, ch.read_bytes(), ch.with_name("stable.json.sig").read_bytes())]
    for move in moves:
        if move == "rollback":
            try:
                c = rollback_channel(scene.root, "stable", key)
            except UsageError:
                continue  # every earlier release was already rolled back from: none to go back to
        else:
            c = set_channel(scene.root, "stable", A if move == "A" else B, key)
        docs.append((c.seq, c.raw, c.sig_raw))
    return docs


def _install(scene: Scene, doc: bytes, sig: bytes) -> None:
    ch = scene.root / "channels" / "stable.json"
    scene.rewrite(ch.with_name("stable.json.sig"), sig, keep_mtime=False)
    scene.rewrite(ch, doc, keep_mtime=False)


def _disguise(scene: Scene, how: str) -> None:
    if how == "new-repo-id":
        meta = scene.root / "depotdelivery-repo.json"
        doc = json.loads(meta.read_bytes())
        doc["id"] = "f" * len(doc["id"])
        scene.rewrite(meta, json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
    elif how == "root-symlink":
        copy = scene.dir / "mirror"
        shutil.copytree(scene.root, copy, symlinks=True)
        shutil.rmtree(scene.root)
        os.symlink(copy, scene.root)


@heavy(3)
@given(moves=st.lists(st.sampled_from(["A", "B", "rollback"]), min_size=1, max_size=5),
       data=st.data(), disguise=st.sampled_from(DISGUISES))
def test_replayed_older_channel_is_refused(world: World, moves: list[str], data: st.DataObject,
                                           disguise: str) -> None:
    scene = world.fresh()
    if "rollback" in moves[:1]:
        moves = ["A", *moves]  # the first rollback needs an earlier release in the history
    docs = _history(scene, moves)
    k = data.draw(st.integers(0, len(docs) - 1), label="accepted")
    j = data.draw(st.integers(0, len(docs) - 1), label="replayed")
    _install(scene, *docs[k][1:])
    assert (o := scene.prepare()).code == 0, o  # the node accepts seq k
    depots = scene.depots()
    _install(scene, *docs[j][1:])
    _disguise(scene, disguise)
    outside = scene.outside()
    got = scene.prepare()
    if docs[j][0] < docs[k][0]:
        assert got.code == 5, got
        assert "downgrade" in got.err and f"seq {docs[k][0]}" in got.err
        assert scene.api_prepare() == 5
    else:
        assert got.code == 0, got
    assert scene.verify().code == 0  # each document on its own is valid: only the node's memory tells
    scene.assert_intact(outside, depots)


@heavy(3)
@given(resign=st.sampled_from(["channel", "release", "both"]), hot=st.booleans())
def test_documents_signed_only_by_a_revoked_key(world: World, resign: str, hot: bool) -> None:
    from depotdelivery.store.keys import keygen, load_private_key, sign

    scene = world.fresh()
    other = scene.dir / "rotated.key"
    _, pub, keyid = keygen(other)
    shutil.copy(pub, scene.repo.trusted / "rotated.pub")
    key = load_private_key(other)
    paths = {"channel": [scene.root / "channels/stable.json"],
             "release": [scene.release_dir(B) / "release.json"]}
    targets = paths["channel"] + paths["release"] if resign == "both" else paths[resign]
    for doc in targets:
        scene.rewrite(doc.with_name(doc.name + ".sig"), sign(doc.read_bytes(), key), keep_mtime=False)
    pin = ("--release", B) if resign == "release" else ()
    if hot:
        assert (o := scene.prepare(*pin)).code == 0, o  # trusted before the revocation
    depots = scene.depots()
    (scene.repo.trusted / "revoked").write_text(f"# compromised\n{keyid}\n")
    outside = scene.outside()
    got = scene.prepare(*pin)
    assert got.code == 5 and "revoked" in got.err, got
    assert scene.prepare(*pin, mode="copy", cache=scene.cold).code == 5
    v = scene.verify()
    assert v.code == 5 and "revoked" in v.err, v
    scene.assert_intact(outside, depots)
