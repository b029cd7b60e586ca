"""Repository document parsers: round trips and hostile input (hypothesis), path safety rules."""
from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery.errors import (
    DepotDeliveryError,
    FormatError,
    IntegrityError,
    RepositoryUnavailableError,
)
from depotdelivery.store import listing as listing_mod
from depotdelivery.store.canonical import canonical_json
from depotdelivery.store.channel import Channel, ChannelEntry, format_time, parse_time
from depotdelivery.store.hashing import hash_bytes
from depotdelivery.store.keys import Signature, encode_signatures, parse_signatures
from depotdelivery.store.listing import (
    ListingEntry,
    encode_listing,
    parse_listing,
    resolve_inside,
)
from depotdelivery.store.release import (
    Clone,
    Release,
    SysimageModule,
    SysimageRef,
    Tree,
    Variant,
)
from depotdelivery.store.repo import Repository

HEX64 = st.text("0123456789abcdef", min_size=64, max_size=64)
NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,20}", fullmatch=True)
COMPONENT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"), min_size=1,
                    max_size=8).filter(lambda s: s not in (".", ".."))
U32 = st.integers(0, 2**32 - 1)


@st.composite
def listings(draw: st.DrawFn) -> list[ListingEntry]:
    """A valid tree: directories listed before their children, symlinks pointing inside."""
    entries: dict[str, ListingEntry] = {}
    dirs = [""]
    for _ in range(draw(st.integers(0, 12))):
        parent = draw(st.sampled_from(dirs))
        name = draw(COMPONENT)
        path = f"{parent}/{name}" if parent else name
        if path in entries or any(path.startswith(p + "/") for p, e in entries.items() if e.type != "dir"):
            continue
        kind = draw(st.sampled_from(["file", "dir", "symlink"]))
        mtime = draw(st.integers(-(2**62), 2**62))
        if kind == "dir":
            entries[path] = ListingEntry(path=path, type="dir", mtime_ns=mtime, mode=draw(st.integers(0, 0o7777)))
            dirs.append(path)
        elif kind == "file":
            entries[path] = ListingEntry(path=path, type="file", mtime_ns=mtime, mode=draw(st.integers(0, 0o7777)),
                                         size=draw(st.integers(0, 2**40)), blake3=draw(HEX64))
        else:
            depth = path.count("/")
            target = "/".join([".."] * draw(st.integers(0, depth)) + [draw(COMPONENT)])
            entries[path] = ListingEntry(path=path, type="symlink", mtime_ns=mtime, target=target)
    links = {p: e.target for p, e in entries.items() if e.type == "symlink"}
    return [e for p, e in entries.items() if e.type != "symlink" or resolve_inside(p, e.target or "", links)]


@given(listings())
def test_listing_round_trip(entries):
    data = encode_listing(entries)
    parsed = parse_listing(data, where="t", tree=hash_bytes(data))
    assert list(parsed) == sorted(entries, key=lambda e: e.path)
    assert encode_listing(parsed) == data


@given(listings())
def test_listing_lines_are_exactly_canonical_json(entries):
    expected = b"".join(canonical_json(e.to_dict()) + b"\n" for e in sorted(entries, key=lambda e: e.path))
    assert encode_listing(entries) == expected


@given(listings(), st.data())
def test_listing_any_corruption_is_a_format_or_integrity_error(entries, data):
    raw = bytearray(encode_listing(entries) or b'{"x":1}\n')
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    try:
        parse_listing(bytes(raw), where="t", tree=data.draw(st.none() | st.just(hash_bytes(bytes(raw)))))
    except (FormatError, IntegrityError) as exc:
        assert str(exc).startswith("t")
    # a corruption may also give another valid listing; it must never escape as another exception


@given(st.binary(max_size=300))
def test_listing_arbitrary_bytes(raw):
    try:
        parse_listing(raw, where="x")
    except FormatError:
        pass


def _line(**kw: object) -> bytes:
    return canonical_json(kw) + b"\n"


def _file(path: str) -> bytes:
    return _line(path=path, type="file", mode=0o644, mtime_ns=1, size=0, blake3="0" * 64)


@pytest.mark.parametrize("raw, message", [
    (_file("../etc/passwd"), "unsafe path"),
    (_file("/etc/passwd"), "unsafe path"),
    (_file("a//b"), "unsafe path"),
    (_file("a/./b"), "unsafe path"),
    (_file("a") + _file("a"), "duplicate path 'a'"),
    (_file("b") + _file("a"), "not sorted"),
    (_file("d/x"), "no directory entry for its parent"),
    (_line(path="l", type="symlink", mtime_ns=1, target="/etc") , "absolute or empty target"),
    (_line(path="l", type="symlink", mtime_ns=1, target="../x"), "leaves the tree"),
    (_line(path="a", type="symlink", mtime_ns=1, target="b/..") + _line(path="b", type="symlink", mtime_ns=1,
                                                                         target="."), "leaves the tree"),
    (_line(path="a", type="symlink", mtime_ns=1, target="b/x") + _line(path="b", type="symlink", mtime_ns=1,
                                                                        target="a"), "leaves the tree"),
    (_line(path="l", type="symlink", mtime_ns=1, target="x") + _file("l/y"), "no directory entry"),
    (b'{"blake3":"' + b"0" * 64 + b'","mode":420,"mtime_ns":1,"path":"caf\xe9","size":0,"type":"file"}\n', "not UTF-8"),
    (b'{"mode":420, "mtime_ns":1,"path":"d","type":"dir"}\n', "not canonical"),
    (_line(path="d", type="dir", mode=0o644, mtime_ns=1, extra=1), "unknown field"),
    (_line(path="d", type="dir", mode=0o100644, mtime_ns=1), "permission bits only"),
    (_line(path="f", type="file", mode=0o644, mtime_ns=1, size=-1, blake3="0" * 64), "must be >= 0"),
    (_line(path="f", type="file", mode=0o644, mtime_ns=True, size=1, blake3="0" * 64), "expected an integer"),
    (_line(path="f", type="fifo", mtime_ns=1), "expected one of"),
    (_file("a")[:-1], "truncated"),
])
def test_listing_rejects(raw, message):
    with pytest.raises(FormatError, match=message):
        parse_listing(raw, where="L")


def test_listing_tree_hash_checked():
    data = _file("a")
    with pytest.raises(IntegrityError, match="does not match the tree"):
        parse_listing(data, where="L", tree="1" * 64)


def test_symlink_resolution_follows_the_kernel():
    links = {"b": ".", "c": "d/e", "loop": "loop"}
    assert not resolve_inside("a", "b/..", links)  # lexically inside, really the parent
    assert resolve_inside("a", "c/../..", links)  # c -> d/e, then up twice: the root
    assert not resolve_inside("x/a", "../..", {})
    assert resolve_inside("x/a", "../y", {})
    assert not resolve_inside("a", "loop/x", links)


# ---- release.json --------------------------------------------------------------------------------

@st.composite
def releases(draw: st.DrawFn) -> Release:
    variants = []
    for target in draw(st.lists(NAME, unique=True, max_size=3)):
        path = f"variants/{target}"
        n = draw(st.integers(1, 12))
        variants.append(Variant(
            target=target, arch=draw(st.sampled_from(["x86_64", "aarch64"])), cpu_target=draw(st.text(max_size=40)),
            path=path, tree=draw(HEX64), files=draw(st.integers(0, 10**6)), bytes=draw(st.integers(0, 2**50)),
            sysimage=draw(st.none() | st.builds(SysimageRef, path=st.just(f"{path}/sys.so"), blake3=HEX64,
                                                size=st.integers(0, 2**40))),
            clones=tuple(draw(st.lists(st.builds(
                Clone, name=st.text(max_size=20), flags=U32, en=st.tuples(*[U32] * n), dis=st.tuples(*[U32] * n),
                features=st.lists(st.text(max_size=10), max_size=5).map(tuple), ext=st.text(max_size=10)), max_size=3))),
            clones_source=draw(st.sampled_from(["image", "approximate"])),
            sysimage_modules=tuple(draw(st.lists(st.builds(
                SysimageModule, name=st.text(max_size=10), uuid=st.uuids().map(str),
                build_id=st.text("0123456789abcdef", min_size=1, max_size=32)), max_size=3))),
        ))
    return Release(name=draw(NAME), version=draw(NAME), julia_version=draw(st.from_regex(r"1\.1[0-2](\.[0-9])?", fullmatch=True)),
                   project="environments/" + draw(NAME),
                   shared=Tree(path="depot", tree=draw(HEX64), files=draw(st.integers(0, 10**6)),
                               bytes=draw(st.integers(0, 2**50))),
                   variants=tuple(variants))


@given(releases())
def test_release_round_trip_and_id(rel):
    raw = rel.to_bytes()
    parsed = Release.from_bytes(raw, where="r")
    assert parsed == rel
    assert parsed.id == hash_bytes(raw) and parsed.raw == raw
    assert parsed.to_bytes() == raw


@given(releases(), st.data())
def test_release_corruption_never_escapes(rel, data):
    raw = bytearray(rel.to_bytes())
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255))
    try:
        Release.from_bytes(bytes(raw), where="r")
    except FormatError:
        pass


def _release_dict() -> dict:
    return json.loads(Release(name="hep", version="1", julia_version="1.11.1", project="environments/hep",
                              shared=Tree(path="depot", tree="a" * 64, files=1, bytes=1),
                              variants=(Variant(target="haswell", arch="x86_64", cpu_target="haswell", path="variants/haswell",
                                                tree="b" * 64, files=1, bytes=1, sysimage=None, clones=(),
                                                clones_source="approximate"),)).to_bytes())


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(format=2), "field format: unsupported format version 2"),
    (lambda d: d.pop("julia_version"), "field julia_version: missing"),
    (lambda d: d["shared"].update(tree="xyz"), "field shared.tree: invalid value"),
    (lambda d: d["variants"][0].update(arch="riscv"), r"field variants\[0\].arch"),
    (lambda d: d["variants"][0].update(path="variants/other"), r"field variants\[0\].path"),
    (lambda d: d["variants"].append(dict(d["variants"][0])), r"variants\[1\].target: duplicate"),
    (lambda d: d.update(name="../x"), "field name: invalid value"),
    (lambda d: d.update(project="../../etc"), "field project: unsafe path"),
    (lambda d: d["variants"][0].update(sysimage={"path": "depot/sys.so", "blake3": "c" * 64, "size": 1}),
     r"variants\[0\].sysimage.path: 'depot/sys.so' is not inside"),
    (lambda d: d.update(surprise=1), "field surprise: unknown field"),
])
def test_release_rejects_with_dotted_field(mutate, message):
    d = _release_dict()
    mutate(d)
    with pytest.raises(FormatError, match=message):
        Release.from_bytes(canonical_json(d), where="release.json")


def test_release_must_be_canonical():
    raw = json.dumps(_release_dict()).encode()
    with pytest.raises(FormatError, match="not canonical"):
        Release.from_bytes(raw, where="release.json")


# ---- channels --------------------------------------------------------------------------------------

TIMES = st.integers(0, 2**33).map(format_time)


@st.composite
def channels(draw: st.DrawFn) -> Channel:
    seqs = sorted(draw(st.sets(st.integers(1, 10**9), min_size=1, max_size=5)), reverse=True)
    ref = st.builds(lambda a, b: f"{a}/{b}", NAME, NAME)
    def back(s: int) -> int | None:  # rollback_of: any seq below the entry's own (the state it left)
        return draw(st.none() | st.integers(1, s - 1)) if s > 1 else None

    prev = tuple(ChannelEntry(seq=s, release=draw(ref), release_hash=draw(HEX64), issued=draw(TIMES), rollback_of=back(s))
                 for s in seqs[1:])
    return Channel(channel=draw(NAME), seq=seqs[0], release=draw(ref), release_hash=draw(HEX64), issued=draw(TIMES),
                   expires=draw(st.none() | TIMES), previous=prev, rollback_of=back(seqs[0]))


@given(channels())
def test_channel_round_trip(ch):
    raw = ch.to_bytes()
    parsed = Channel.from_bytes(raw, where="c")
    assert parsed == ch and parsed.to_bytes() == raw
    assert [e.seq for e in parsed.history()] == sorted((e.seq for e in parsed.history()), reverse=True)


@given(channels(), st.data())
def test_channel_corruption_never_escapes(ch, data):
    raw = bytearray(ch.to_bytes())
    raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        Channel.from_bytes(bytes(raw), where="c")
    except FormatError:
        pass


def test_channel_rollback_of_must_be_an_earlier_seq():
    d = json.loads(Channel(channel="s", seq=2, release="a/1", release_hash="a" * 64, issued=format_time(0),
                           expires=None, rollback_of=1).to_bytes())
    d["rollback_of"] = 2
    with pytest.raises(FormatError, match="field rollback_of: 2 is not below the seq 2"):
        Channel.from_bytes(canonical_json(d), where="c")


def test_channel_history_must_descend():
    d = json.loads(Channel(channel="s", seq=2, release="a/1", release_hash="a" * 64, issued=format_time(0), expires=None,
                           previous=(ChannelEntry(seq=3, release="a/0", release_hash="b" * 64, issued=format_time(0)),)
                           ).to_bytes())
    with pytest.raises(FormatError, match=r"previous\[0\].seq: 3 is not below 2"):
        Channel.from_bytes(canonical_json(d), where="c")


@given(st.integers(0, 2**35))
def test_time_round_trip(t):
    assert parse_time(format_time(t)) == t


# ---- signature files -------------------------------------------------------------------------------

@given(st.lists(st.builds(Signature, st.text("0123456789abcdef", min_size=32, max_size=32),
                          st.binary(min_size=64, max_size=64)), min_size=1, max_size=4))
def test_signatures_round_trip(sigs):
    assert list(parse_signatures(encode_signatures(sigs), where="s")) == sigs


@given(st.binary(max_size=200))
def test_signatures_arbitrary_bytes(raw):
    try:
        parse_signatures(raw, where="s")
    except FormatError:
        pass


@pytest.mark.parametrize("raw, message", [
    (encode_signatures([Signature("a" * 32, b"x" * 64)])[:-7], "unreadable signature file"),
    (b'{"signatures":[]}', "no signatures"),
    (b'{"signatures":[{"keyid":"abc","sig":"AA=="}]}', "expected 32 lowercase hex"),
    (canonical_json({"signatures": [{"keyid": "a" * 32, "sig": "AAAA"}]}), "64 bytes, got 3"),
    (canonical_json({"signatures": [{"keyid": "a" * 32, "sig": "!!"}]}), "not base64"),
])
def test_signatures_reject(raw, message):
    with pytest.raises(DepotDeliveryError, match=message):
        parse_signatures(raw, where="s")


@pytest.mark.parametrize("content, exc, message", [
    (b'{"format":2,"id":"ab"}', FormatError, "unsupported format version 2"),
    (b'{"format":1,"id":"XYZ"}', FormatError, "field id: expected lowercase hex"),
    (b'{"format":1}', FormatError, "field id: missing"),
    (b'{"id":"ab","format":1}', FormatError, "not canonical"),
    (None, RepositoryUnavailableError, "not a depotdelivery repository"),
])
def test_repository_document(tmp_path, content, exc, message):
    if content is not None:
        (tmp_path / "depotdelivery-repo.json").write_bytes(content)
    with pytest.raises(exc, match=message):
        Repository.open(tmp_path)


def test_repository_document_ok(tmp_path):
    (tmp_path / "depotdelivery-repo.json").write_bytes(b'{"format":1,"id":"00ff"}')
    repo = Repository.open(tmp_path)
    assert (repo.repo_id, repo.releases(), repo.channels()) == ("00ff", [], [])


@given(listings(), st.data())
def test_listing_bulk_parse_agrees_with_the_line_parse(entries, data):
    """The one-pass parse (listing._parse_quick) accepts exactly what the line-by-line parse
    accepts, with the same entries; on anything else it declines (None) and the line parse
    names the fault."""
    raw = bytearray(encode_listing(entries))
    for _ in range(data.draw(st.integers(0, 3)) if raw else 0):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.sampled_from(b'{}[],:"\\\n0aZ/.'))
    quick = listing_mod._parse_quick(bytes(raw))
    try:
        lines = listing_mod._parse_lines(bytes(raw), "t")
    except FormatError:
        assert quick is None
    else:
        assert quick is None or quick == lines
        if raw == encode_listing(entries):  # a valid listing takes the fast path
            assert quick == lines
