"""Hostile paths and mismatched pieces: forged (validly re-signed) listings with traversing
paths, escaping symlinks, reordered or duplicated lines, huge sizes and non-UTF-8 names; the
published tree itself with symlinks leading out of it (files and parent directories), /dev/zero,
FIFOs and non-UTF-8 names; and one release's pieces mixed into another's. verify and copy-mode
prepare refuse with exit 4; nothing is ever written outside the node cache."""
from __future__ import annotations

import json
import os
import shutil

from hypothesis import given
from hypothesis import strategies as st

from adversarial.strategies import traversing_paths
from adversarial.world import A, B, Scene, World, heavy, resign_release

MTIME = 1_730_419_200_000_000_000


def _canon(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _shared(scene: Scene) -> tuple[dict, list[dict]]:
    d = scene.release_dir(B)
    doc = json.loads((d / "release.json").read_bytes())
    lines = (d / "listings" / f"{doc['shared']['tree']}.jsonl").read_bytes().splitlines()
    return doc, [json.loads(x) for x in lines]


def _forge(scene: Scene, doc: dict, listing: bytes) -> None:
    from depotdelivery.store.hashing import hash_bytes

    doc["shared"]["tree"] = hash_bytes(listing)
    resign_release(scene, B, doc, [listing])


def _refused(scene: Scene, outside: str, depots: dict[str, str]) -> None:
    v = scene.verify()
    assert v.code == 4, v
    cold = scene.prepare(mode="copy", cache=scene.cold)
    assert cold.code == 4, cold
    assert "internal error" not in cold.err + v.err
    assert not (scene.cold / "depots").is_dir() or not os.listdir(scene.cold / "depots")
    for mode in ("stack", "symlink"):  # they never read listings: whatever they answer, no escape
        scene.prepare(mode=mode, cache=scene.cold)
    scene.assert_intact(outside, depots)


@heavy(4)
@given(kind=st.sampled_from(["file", "dir", "symlink-path", "symlink-target"]), hostile=traversing_paths)
def test_forged_listing_with_a_traversing_entry(world: World, kind: str, hostile: str) -> None:
    scene = world.fresh()
    depots = scene.depots()
    doc, entries = _shared(scene)
    entry = {"file": {"path": hostile, "type": "file", "mode": 420, "mtime_ns": MTIME, "size": 1,
                      "blake3": "0" * 64},
             "dir": {"path": hostile, "type": "dir", "mode": 493, "mtime_ns": MTIME},
             "symlink-path": {"path": hostile, "type": "symlink", "target": "packages", "mtime_ns": MTIME},
             "symlink-target": {"path": "zz", "type": "symlink", "target": hostile, "mtime_ns": MTIME}}[kind]
    lines = sorted([*entries, entry], key=lambda e: e["path"])
    _forge(scene, doc, b"".join(_canon(e) + b"\n" for e in lines))
    if kind == "symlink-target" and _stays_inside(hostile):
        # a legitimate (dangling) link inside the tree: copy mode recreates it inside the depot
        outside = scene.outside()
        assert scene.verify().code == 4  # it is not in the published tree
        assert scene.prepare(mode="copy", cache=scene.cold).code == 0
        assert scene.outside() == outside
        return
    _refused(scene, scene.outside(), depots)


def _stays_inside(target: str) -> bool:
    """Lexical resolution of a top-level link's target (the tree has no top-level symlinks)."""
    if not target or target.startswith("/") or "\0" in target:
        return False
    depth = 0
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return False
        elif part not in ("", "."):
            depth += 1
    return True


@heavy(4)
@given(data=st.data(), how=st.sampled_from(["permute", "duplicate", "symlinked-parent", "huge-size",
                                            "huge-count", "non-utf8"]))
def test_forged_listing_structure(world: World, data: st.DataObject, how: str) -> None:
    scene = world.fresh()
    depots = scene.depots()
    doc, entries = _shared(scene)
    raw = [_canon(e) for e in entries]
    if how == "permute":
        order = data.draw(st.permutations(range(len(raw))).filter(lambda p: list(p) != sorted(p)))
        raw = [raw[i] for i in order]
    elif how == "duplicate":
        i = data.draw(st.integers(0, len(raw) - 1))
        raw.insert(i, raw[i])
    elif how == "symlinked-parent":
        # a directory turned into a symlink while its children stay listed below it
        dirs = [i for i, e in enumerate(entries) if e["type"] == "dir"]
        i = data.draw(st.sampled_from(dirs))
        e = entries[i]
        raw[i] = _canon({"path": e["path"], "type": "symlink", "target": "../" * e["path"].count("/") + "..",
                         "mtime_ns": MTIME})
    elif how == "huge-size":
        files = [i for i, e in enumerate(entries) if e["type"] == "file"]
        i = data.draw(st.sampled_from(files))
        raw[i] = _canon({**entries[i], "size": data.draw(st.integers(1 << 40, 1 << 62))})
    elif how == "huge-count":
        doc["shared"]["files"] = data.draw(st.integers(1 << 31, 10 ** 18))
    else:
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = raw[i].replace(b'"path":"', b'"path":"\xff\xfe', 1)
    _forge(scene, doc, b"".join(r + b"\n" for r in raw))
    if how == "huge-count":  # the listing is fine: only verify compares the counts
        v = scene.verify()
        assert v.code == 4 and "files" in v.err, v
        assert {k: scene.depots().get(k) for k in depots} == depots
        return
    _refused(scene, scene.outside(), depots)


def _published_files(scene: Scene, under: str) -> list[str]:
    top = scene.release_dir(B) / under
    return sorted(str(p.relative_to(top)) for p in top.rglob("*") if p.is_file() and not p.is_symlink())


@heavy(4)
@given(data=st.data(), how=st.sampled_from(["abs-link", "rel-link", "dev-zero", "fifo", "dir-link-same",
                                            "dir-link-other", "non-utf8-name"]))
def test_published_tree_with_escapes(world: World, data: st.DataObject, how: str) -> None:
    scene = world.fresh()
    depots = scene.depots()
    top = scene.release_dir(B) / "depot"
    rel = data.draw(st.sampled_from(_published_files(scene, "depot")), label="file")
    victim = top / rel
    canary = scene.dir / "canary" / "keep.txt"
    copy_ok = False
    if how in ("abs-link", "rel-link", "dev-zero", "fifo"):
        victim.unlink()
        if how == "abs-link":
            os.symlink(canary, victim)
        elif how == "rel-link":
            os.symlink(os.path.relpath(canary, victim.parent), victim)
        elif how == "dev-zero":
            os.symlink("/dev/zero", victim)
        else:
            os.mkfifo(victim)
    elif how.startswith("dir-link"):
        # the victim's parent directory replaced by a symlink to a copy outside the repository
        parent = victim.parent
        outside_copy = scene.dir / "canary" / "moved"
        shutil.copytree(parent, outside_copy, symlinks=True)
        if how == "dir-link-other":
            (outside_copy / victim.name).write_bytes(b"not what was signed\n")
            os.utime(outside_copy / victim.name, ns=(victim.stat().st_mtime_ns,) * 2)
        else:
            copy_ok = True  # same bytes, reached through a symlink: copy mode verifies content only
        shutil.rmtree(parent)
        os.symlink(outside_copy, parent)
    else:
        (victim.parent / b"\xff\xfe-planted.jl".decode("utf-8", "surrogateescape")).write_bytes(b"x")
        copy_ok = True  # copy mode copies listed entries only; verify reports the stranger
    outside = scene.outside()
    v = scene.verify()
    assert v.code == 4, v
    cold = scene.prepare(mode="copy", cache=scene.cold)
    assert cold.code == (0 if copy_ok else 4), cold
    assert "internal error" not in cold.err + v.err
    assert scene.prepare().code == 0  # stack mode hands the tree to Julia unread: documented
    scene.assert_intact(outside, depots)


@heavy(4)
@given(piece=st.sampled_from(["release-doc", "listings", "variant-tree", "shared-tree", "channel-hash"]))
def test_mix_and_match(world: World, piece: str) -> None:
    """One release's pieces inside another's (as a confused mirror or a hostile one would serve)."""
    scene = world.fresh()
    depots = scene.depots()
    a, b = scene.release_dir(A), scene.release_dir(B)
    cold_stack = 4
    if piece == "release-doc":
        for name in ("release.json", "release.json.sig"):
            scene.rewrite(b / name, (a / name).read_bytes())
    elif piece == "listings":
        doc_a = json.loads((a / "release.json").read_bytes())
        doc_b = json.loads((b / "release.json").read_bytes())
        scene.rewrite(b / "listings" / f"{doc_b['shared']['tree']}.jsonl",
                      (a / "listings" / f"{doc_a['shared']['tree']}.jsonl").read_bytes())
        cold_stack = 0
    else:
        if piece in ("variant-tree", "shared-tree"):
            sub = "variants/haswell" if piece == "variant-tree" else "depot"
            shutil.rmtree(b / sub)
            shutil.copytree(a / sub, b / sub, symlinks=True)
            cold_stack = 0
        else:
            from depotdelivery.store.channel import Channel
            from depotdelivery.store.keys import load_private_key, sign

            ch_path = scene.root / "channels/stable.json"
            ch = Channel.from_bytes(ch_path.read_bytes(), where="x")
            forged = Channel(channel="stable", seq=ch.seq + 1, release=B, release_hash=scene.ids[A],
                             issued=ch.issued, expires=ch.expires, previous=ch.history())
            raw = forged.to_bytes()
            scene.rewrite(ch_path.with_name("stable.json.sig"), sign(raw, load_private_key(scene.repo.key)))
            scene.rewrite(ch_path, raw)
    outside = scene.outside()
    v = scene.verify()
    assert v.code == 4, v
    assert scene.prepare(cache=scene.cold).code == cold_stack
    assert scene.prepare(mode="copy", cache=scene.cold).code == 4
    if piece in ("release-doc", "channel-hash"):
        assert scene.prepare("--release", B, cache=scene.cold).code == (4 if piece == "release-doc" else 0)
    if piece == "channel-hash":
        # signed, but self-contradictory: it names B and A's hash. The warm cache holds A's depot;
        # a re-verified channel must still be checked against the release it names.
        hot = scene.prepare()
        assert hot.code == 4, hot
    scene.assert_intact(outside, depots)


@heavy(6)
@given(target=st.sampled_from(["stranger-signed", "dangling", "loop", "file", "faithful-copy"]))
def test_repository_root_replaced_by_a_symlink(world: World, target: str) -> None:
    """The configured root becomes a symlink: to a copy re-signed by an untrusted key (5), to
    nothing or a loop or a file (3, unavailable), or to a faithful copy (accepted: the bytes are
    what was signed, and the node's trust state, keyed by the configured root, still applies)."""
    from depotdelivery.publisher.channels import set_channel
    from depotdelivery.store.keys import keygen, load_private_key, sign

    scene = world.fresh()
    depots = scene.depots()
    copy = scene.dir / "elsewhere"
    shutil.copytree(scene.root, copy, symlinks=True)
    shutil.rmtree(scene.root)
    if target == "stranger-signed":
        keygen(scene.dir / "stranger.key")
        stranger = load_private_key(scene.dir / "stranger.key")
        set_channel(copy, "stable", A, stranger)  # a newer seq, but by a key the node does not trust
        for d in (copy / "releases" / A, copy / "releases" / B):
            (d / "release.json.sig").write_bytes(sign((d / "release.json").read_bytes(), stranger))
        os.symlink(copy, scene.root)
    elif target == "dangling":
        os.symlink(scene.dir / "nowhere", scene.root)
    elif target == "loop":
        os.symlink(scene.root, scene.root)
    elif target == "file":
        (scene.dir / "a-file").write_text("not a repository\n")
        os.symlink(scene.dir / "a-file", scene.root)
    else:
        os.symlink(copy, scene.root)
    outside = scene.outside()
    want = {"stranger-signed": 5, "dangling": 3, "loop": 3, "file": 3, "faithful-copy": 0}[target]
    hot, cold = scene.prepare(), scene.prepare(mode="copy", cache=scene.cold)
    assert (hot.code, cold.code) == (want, want), (hot, cold)
    assert "internal error" not in hot.err + cold.err
    v = scene.verify()
    assert v.code == (want if target != "stranger-signed" else 5), v
    assert scene.api_prepare() == want
    scene.assert_intact(outside, depots)
