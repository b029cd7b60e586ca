"""Julia cache files: independent byte-level encodings, round trips for every layout, and
hostile input (truncation, bit flips, absurd lengths, unknown formats) -> FormatError only."""
import struct
import uuid
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery.errors import FormatError
from depotdelivery.julia.cachefile import (
    CHECKSUM_TAG,
    DEFAULT_FLAGS,
    MAGIC,
    CacheFile,
    CacheFlags,
    Dependency,
    ImageHeader,
    RequiredModule,
    Requires,
    SourceText,
    WorklistModule,
    file_crc_ok,
    find_image_header,
    layout_of,
    read_cache_file,
    read_image_header,
)
from depotdelivery.julia.crc32c import crc32c
from depotdelivery.julia.targetdata import ImageTarget, TargetData
from depotdelivery.synth.cachefile import image_header_bytes, sealed, write_cache_file
from depotdelivery.synth.elfimage import write_image
from depotdelivery.synth.targetdata import target_data_bytes

FOO = uuid.UUID("7876af07-990d-54b4-ab0e-23690620f79a")
BAR = uuid.UUID("fa267f1f-6049-4f14-aa54-33bafae1ed76")
VERSIONS = {"1.9": "1.9.4", "1.10": "1.10.5", "1.11": "1.11.1", "1.12": "1.12.6"}


# -- an encoding written from julia-formats.md, independent of the writer under test ---------

def i32(n): return struct.pack("<i", n)
def s32(b): return i32(len(b)) + b


def handmade(version: str, *, sized: bool) -> tuple[bytes, dict]:
    """A .ji file assembled field by field from the spec (steps 1-10)."""
    out = bytearray(MAGIC + struct.pack("<H", 12) + b"\xff\xfe" + b"\x08")
    for s in (b"Linux", b"x86_64", version.encode(), b"release-1.x", b"0123abcd" * 5):
        out += s + b"\0"
    out += b"\x00" + struct.pack("<QQQ", CHECKSUM_TAG | 0x1234, 0, 0)      # step 3
    out += bytes([DEFAULT_FLAGS])                                           # step 4
    out += s32(b"Foo") + struct.pack("<QQQ", FOO.int >> 64, FOO.int & (2**64 - 1), 99) + i32(0)
    tot_at = len(out)
    out += bytes(8)                                                         # step 6
    dep_path = b"@depot/packages/Foo/AbCdE/src/Foo.jl" if sized else b"/depot/packages/Foo/AbCdE/src/Foo.jl"
    stamp = struct.pack("<QI", 1234, 0xDEADBEEF) if sized else b""
    out += s32(dep_path) + stamp + struct.pack("<d", -1.0 if sized else 1.7e9) + i32(1) + i32(0)
    sub_path = dep_path.replace(b"Foo.jl", b"inner.jl")
    out += s32(sub_path) + stamp + struct.pack("<d", 2.5) + i32(1) + s32(b"Inner") + i32(0)
    req = b"\0" + BAR.int.to_bytes(16, "little") + b"TOML"
    out += s32(req) + (bytes(12) if sized else b"") + struct.pack("<d", 0.0) + i32(1) + i32(0)
    out += i32(0)
    out += s32(b"Foo.mode") + i32(0) + struct.pack("<Q", 0xABCDEF)
    srcpos_at = len(out)
    out += bytes(8)
    struct.pack_into("<q", out, tot_at, srcpos_at - tot_at)
    out += s32(b"Base") + struct.pack("<QQQQ", 0, 0, 0xAAAA, 0xBBBB)       # step 7
    out += s32(b"TOML") + struct.pack("<QQQQ", BAR.int >> 64, BAR.int & (2**64 - 1), 1, 2) + i32(0)
    blob = target_data_bytes(TargetData((ImageTarget(flags=1, en_words=(1,) * 11, dis_words=(0,) * 11, name="haswell"),)))
    out += s32(blob)                                                        # step 8
    struct.pack_into("<q", out, srcpos_at, len(out))
    out += s32(b"/depot/packages/Foo/AbCdE/src/Foo.jl") + struct.pack("<Q", 14) + b"module Foo end"
    out += i32(0)                                                           # step 9
    out += struct.pack("<I", 0x5151)                                        # step 10
    out += struct.pack("<I", crc32c(out))
    return bytes(out), {"dep_path": dep_path.decode(), "blob": blob}


@pytest.mark.parametrize("layout", list(VERSIONS))
def test_reads_a_handmade_file_and_writes_it_back_identically(layout):
    sized = layout in ("1.11", "1.12")
    data, facts = handmade(VERSIONS[layout], sized=sized)
    cf = read_cache_file(data, where="Foo.ji")
    assert cf.layout == layout and cf.julia_version == VERSIONS[layout]
    assert cf.format_version == 12 and cf.pointer_size == 8 and cf.pkgimage == 0
    assert (cf.uname, cf.arch, cf.git_branch) == ("Linux", "x86_64", "release-1.x")
    assert cf.checksum == CHECKSUM_TAG | 0x1234
    assert cf.cache_flags == CacheFlags()  # 0xA3 is the default session
    assert cf.worklist == (WorklistModule(name="Foo", uuid=FOO, build_id=99),)
    assert cf.build_id() == (CHECKSUM_TAG | 0x1234) << 64 | 99
    main, inner = cf.dependencies
    assert main.path == facts["dep_path"]
    assert (main.fsize, main.crc32c) == ((1234, 0xDEADBEEF) if sized else (None, None))
    assert inner.submodules == ("Inner",) and inner.mtime == 2.5
    assert cf.requires == (Requires(name="TOML", uuid=BAR, modindex=1),)
    assert cf.preferences == ("Foo.mode",) and cf.prefs_hash == 0xABCDEF
    base, toml = cf.required_modules
    assert base == RequiredModule(name="Base", uuid=None, build_id=0xAAAA << 64 | 0xBBBB)
    assert (toml.uuid, toml.build_id_hi, toml.build_id_lo) == (BAR, 1, 2)
    assert cf.clone_targets == facts["blob"] and cf.targets[0].name == "haswell"
    assert cf.source_texts == (SourceText(path="/depot/packages/Foo/AbCdE/src/Foo.jl", text=b"module Foo end"),)
    assert cf.so_crc == 0x5151 and cf.crc_ok and cf.payload == b""
    assert write_cache_file(cf) == data


# -- round trips -----------------------------------------------------------------------------

_text = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=12)
_name = _text.filter(bool)
_uuids = st.one_of(st.none(), st.uuids().filter(lambda u: u.int != 0))
_u64 = st.integers(0, 2**64 - 1)
_subs = st.lists(_name, max_size=2).map(tuple)


@st.composite
def cache_files(draw, layout=None):
    layout = layout or draw(st.sampled_from(list(VERSIONS)))
    sized = layout in ("1.11", "1.12")
    worklist = tuple(draw(st.lists(st.builds(WorklistModule, name=_name, uuid=_uuids, build_id=_u64),
                                   min_size=1, max_size=3)))
    n = len(worklist)

    def located(builder):
        modindex = draw(st.integers(0, n))
        return builder(modindex=modindex, submodules=draw(_subs) if modindex else ())

    deps = tuple(located(lambda **kw: Dependency(
        path=draw(_name.filter(lambda p: not p.startswith("\0"))), mtime=draw(st.floats(allow_nan=False)),
        fsize=draw(_u64) if sized else None, crc32c=draw(st.integers(0, 2**32 - 1)) if sized else None, **kw))
        for _ in range(draw(st.integers(0, 4))))
    reqs = tuple(located(lambda **kw: Requires(name=draw(_text), uuid=draw(_uuids), **kw))
                 for _ in range(draw(st.integers(0, 2))))
    return CacheFile(
        julia_version=VERSIONS[layout] + draw(st.sampled_from(["", "-rc1", "-DEV.12"])),
        uname=draw(_text), arch=draw(_text), git_branch=draw(_text), git_commit=draw(_text),
        pointer_size=draw(st.sampled_from([4, 8])), checksum=draw(_u64),
        flags=draw(st.integers(0, 255)), worklist=worklist, dependencies=deps, requires=reqs,
        preferences=tuple(draw(st.lists(_name, max_size=3))), prefs_hash=draw(_u64),
        required_modules=tuple(draw(st.lists(st.builds(RequiredModule, name=_name, uuid=_uuids,
                                                       build_id=st.integers(0, 2**128 - 1)), max_size=3))),
        clone_targets=draw(st.binary(max_size=40)), payload=draw(st.binary(max_size=40)),
        source_texts=tuple(draw(st.lists(st.builds(SourceText, path=_name, text=st.binary(max_size=30)),
                                         max_size=2))),
        so_crc=draw(st.integers(0, 2**32 - 1)),
    )


def _strip(cf):
    return replace(cf, srctextpos=0, file_crc=0)


@pytest.mark.parametrize("layout", list(VERSIONS))
@given(data=st.data())
def test_round_trip_every_layout(layout, data):
    cf = data.draw(cache_files(layout))
    raw = write_cache_file(cf)
    back = read_cache_file(raw)
    assert _strip(back) == _strip(cf)
    assert back.crc_ok and back.layout == layout
    assert back.file_crc == crc32c(raw[:-4]) and back.srctextpos > 0
    assert write_cache_file(back) == raw
    assert sealed(cf) == back


@given(cf=cache_files(), cut=st.integers(0, 10**6))
def test_truncation_raises_format_error_or_fails_the_crc(cf, cut):
    raw = write_cache_file(cf)
    cut %= len(raw)
    try:
        back = read_cache_file(raw[:cut])
    except FormatError as exc:
        assert "offset" in str(exc)
    else:  # a prefix that happens to parse can never carry a valid file CRC
        assert not back.crc_ok


@given(cf=cache_files(), bit=st.integers(0, 10**7))
def test_bit_flips_raise_only_format_error(cf, bit):
    raw = bytearray(write_cache_file(cf))
    bit %= 8 * len(raw)
    raw[bit // 8] ^= 1 << (bit % 8)
    try:
        read_cache_file(bytes(raw), header_only=True)
    except FormatError:
        pass
    try:
        back = read_cache_file(bytes(raw))
    except FormatError:
        return
    assert not back.crc_ok  # CRC-32C detects every single-bit error


@given(cf=cache_files())
def test_header_only_from_bytes(cf):
    raw = write_cache_file(cf)
    fast = read_cache_file(raw, header_only=True)
    full = read_cache_file(raw)
    assert replace(fast, header_only=False, payload=full.payload, source_texts=full.source_texts) == full
    assert fast.has_native_code == bool(cf.clone_targets)


@given(cf=cache_files(), pos=st.integers(0, 10**6),
       value=st.sampled_from([-1, -(2**31), 2**31 - 1, 2**30, 0x7FFFFFF0]))
def test_hostile_length_fields_raise_only_format_error(cf, pos, value):
    raw = bytearray(write_cache_file(cf))
    pos %= len(raw) - 4
    struct.pack_into("<i", raw, pos, value)
    try:
        read_cache_file(bytes(raw))
    except FormatError:
        pass


def test_every_truncation_of_a_real_layout_file_is_a_format_error():
    data, _ = handmade("1.11.1", sized=True)
    for cut in range(len(data)):
        with pytest.raises(FormatError, match=r"^Foo\.ji: offset \d+: "):
            read_cache_file(data[:cut], where="Foo.ji")


# -- refusing what we do not know ------------------------------------------------------------

def test_newer_format_is_refused_with_offset():
    data = bytearray(handmade("1.11.1", sized=True)[0])
    struct.pack_into("<H", data, 8, 16)
    with pytest.raises(FormatError, match=r"^x\.ji: offset 8: cache format 16 is not supported \(known: 12\)$"):
        read_cache_file(bytes(data), where="x.ji")


def test_unknown_julia_layout_is_refused():
    data = handmade("1.12.6", sized=True)[0].replace(b"1.12.6\0", b"1.13.0\0")
    with pytest.raises(FormatError, match=r"Julia '1\.13\.0' cache layout is not supported \(known: 1\.9, 1\.10, 1\.11, 1\.12\)"):
        read_cache_file(data)
    with pytest.raises(FormatError, match="Julia '1.8.5'"):
        read_cache_file(handmade("1.12.6", sized=True)[0].replace(b"1.12.6\0", b"1.8.5\0\0"))


@pytest.mark.parametrize(("patch", "message"), [
    ((0, b"\x00"), r"offset 0: expected the cache-file magic"),
    ((10, b"\xfe\xff"), r"offset 10: expected byte-order mark FF FE \(little-endian\), found FE FF"),
    ((12, b"\x02"), r"offset 12: expected pointer size 4 or 8, found 2"),
])
def test_header_errors_name_offset_and_expectation(patch, message):
    data = bytearray(handmade("1.10.5", sized=False)[0])
    at, new = patch
    data[at:at + len(new)] = new
    with pytest.raises(FormatError, match=message):
        read_cache_file(bytes(data), where="Foo.ji")


def test_pkgimage_flag_in_a_ji_is_rejected():
    data = bytearray(handmade("1.10.5", sized=False)[0])
    at = data.index(b"0123abcd" * 5 + b"\0") + 41
    data[at] = 1
    with pytest.raises(FormatError, match=rf"offset {at}: expected pkgimage flag 0 in a \.ji header, found 1"):
        read_cache_file(bytes(data))


def test_totbytes_disagreement_is_reported():
    data = bytearray(handmade("1.11.1", sized=True)[0])
    tot_at = data.index(b"\x03\x00\x00\x00Foo") + 4 + 3 + 24 + 4
    struct.pack_into("<q", data, tot_at, 12345)
    with pytest.raises(FormatError, match=rf"offset {tot_at}: total bytes 12345 of the dependency list disagree"):
        read_cache_file(bytes(data))


def test_absurd_length_is_bounded_by_the_file():
    data = bytearray(handmade("1.11.1", sized=True)[0])
    at = data.index(b"\x03\x00\x00\x00Foo")
    struct.pack_into("<i", data, at, 2**31 - 1)
    with pytest.raises(FormatError, match=rf"offset {at}: length 2147483647 of worklist module name is outside"):
        read_cache_file(bytes(data))


def test_writer_refuses_inconsistent_records():
    cf = read_cache_file(handmade("1.10.5", sized=False)[0])
    with pytest.raises(ValueError, match="has no fsize"):
        write_cache_file(replace(cf, dependencies=(Dependency(path="/a.jl", mtime=1.0, fsize=1, crc32c=2),)))
    with pytest.raises(ValueError, match="does not match"):
        CacheFile(julia_version="1.10.5", layout="1.11", checksum=1, worklist=cf.worklist)


def test_layout_of():
    assert [layout_of(v) for v in ("1.9.4", "1.10.0-rc2", "1.11", "1.12.6")] == ["1.9", "1.10", "1.11", "1.12"]
    with pytest.raises(ValueError):
        layout_of("1.100.0")


# -- files on disk ---------------------------------------------------------------------------

def test_header_only_fast_path_matches_full_read(tmp_path):
    deps = tuple(Dependency(path=f"@depot/packages/Big/x/src/f{i:05d}.jl", mtime=-1.0, fsize=i, crc32c=i)
                 for i in range(3000))  # > 64 KiB of header: the prefix must grow
    cf = CacheFile(julia_version="1.11.1", checksum=CHECKSUM_TAG | 5,
                   worklist=(WorklistModule(name="Big", uuid=FOO, build_id=1),), dependencies=deps,
                   source_texts=(SourceText(path="/x.jl", text=b"x" * 1000),), so_crc=77)
    path = tmp_path / "Big.ji"
    write_cache_file(cf, path)
    full = read_cache_file(path)
    fast = read_cache_file(path, header_only=True)
    assert fast.header_only and fast.crc_ok is None and fast.source_texts == () and fast.payload == b""
    assert replace(fast, header_only=False, source_texts=full.source_texts) == full
    assert file_crc_ok(path)
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 1
    path.write_bytes(raw)
    assert not file_crc_ok(path) and read_cache_file(path).crc_ok is False


def test_missing_file_is_a_format_error(tmp_path):
    with pytest.raises(FormatError, match="cannot read cache file"):
        read_cache_file(tmp_path / "nope.ji")


# -- flags -----------------------------------------------------------------------------------

@given(st.integers(0, 255))
def test_flags_byte_round_trip(b):
    assert CacheFlags.from_byte(b).to_byte() == b


def test_default_flags():
    assert CacheFlags.from_byte(0xA3) == CacheFlags(use_pkgimages=True, debug_level=1, check_bounds=0,
                                                    inline=True, opt_level=2)


@pytest.mark.parametrize(("cache", "session", "version", "existing", "ok"), [
    (CacheFlags(), CacheFlags(), "1.10.5", False, True),
    (CacheFlags(opt_level=3), CacheFlags(), "1.10.5", False, True),       # higher -O is fine
    (CacheFlags(opt_level=1), CacheFlags(), "1.11.1", False, False),
    (CacheFlags(check_bounds=1), CacheFlags(), "1.11.1", False, False),   # --check-bounds=yes
    (CacheFlags(inline=False), CacheFlags(), "1.12.6", False, False),
    (CacheFlags(debug_level=2), CacheFlags(), "1.10.5", False, False),    # exact before 1.12
    (CacheFlags(debug_level=2), CacheFlags(), "1.11.1", False, False),
    (CacheFlags(debug_level=2), CacheFlags(), "1.12.6", False, True),     # >= from 1.12
    (CacheFlags(debug_level=0), CacheFlags(), "1.12.6", False, False),
    (CacheFlags(use_pkgimages=False, opt_level=0), CacheFlags(use_pkgimages=False), "1.10.5", False, True),
    (CacheFlags(), CacheFlags(use_pkgimages=False), "1.11.1", True, True),
    (CacheFlags(), CacheFlags(use_pkgimages=False), "1.10.5", True, False),  # no "existing" in 1.10
    (CacheFlags(), CacheFlags(use_pkgimages=False), "1.11.1", False, False),
])
def test_flag_compatibility(cache, session, version, existing, ok):
    assert cache.satisfies(session, julia_version=version, pkgimages_existing=existing) is ok


# -- the header inside a pkgimage .so --------------------------------------------------------

def test_image_header_round_trip_and_found_inside_an_elf(tmp_path):
    hdr = ImageHeader(julia_version="1.11.1", git_branch="HEAD", git_commit="abc", checksum=CHECKSUM_TAG | 9,
                      datastartpos=128, dataendpos=4096,
                      required_modules=(RequiredModule(name="Base", uuid=None, build_id=5),))
    raw = image_header_bytes(hdr)
    assert raw[:8] == MAGIC and read_image_header(raw) == hdr
    so = tmp_path / "Foo_abc.so"
    write_image(so, b"\0" * 4, extra_symbols={"jl_system_image_data": raw + bytes(64)})
    assert find_image_header(so) == hdr
    # a .ji-style header (pkgimage 0) and a broken copy of the magic come first: skipped
    decoy = image_header_bytes(replace(hdr, pkgimage=0))
    write_image(so, b"\0" * 4, extra_symbols={"a": MAGIC + b"\xff\xff", "b": decoy, "c": raw})
    assert find_image_header(so) == hdr
    write_image(so, b"\0" * 4, extra_symbols={"a": MAGIC + b"\x10\x00"})
    with pytest.raises(FormatError, match="cache format 16 is not supported"):
        find_image_header(so)
    for cut in range(len(raw)):
        with pytest.raises(FormatError):
            read_image_header(raw[:cut])
    with pytest.raises(FormatError, match=r"^x: offset 3: expected the cache-file magic"):
        read_image_header(b"abc" + raw[1:], where="x", start=3)
    assert read_image_header(b"junk" + raw, start=4) == hdr


def test_no_embedded_header(tmp_path):
    so = tmp_path / "x.so"
    write_image(so, b"\0" * 4)
    with pytest.raises(FormatError, match="expected an embedded cache header"):
        find_image_header(so)
    (tmp_path / "empty.so").write_bytes(b"")
    with pytest.raises(FormatError, match="expected an embedded cache header"):
        find_image_header(tmp_path / "empty.so")
    with pytest.raises(FormatError, match="cannot read image"):
        find_image_header(tmp_path / "absent.so")


def test_data_positions_of_a_ji_without_native_code():
    cf = CacheFile(julia_version="1.10.5", checksum=CHECKSUM_TAG | 1, pkgimage=0, flags=0xA2,
                   worklist=(WorklistModule(name="Foo", uuid=FOO, build_id=1),), payload=bytes(64))
    end = len(write_cache_file(cf)) - 8 - 4  # the data ends where the (empty) source text starts
    good = sealed(replace(cf, datastartpos=end - 32, dataendpos=end))
    assert (good.datastartpos, good.dataendpos) == (end - 32, end) and not good.has_native_code
    with pytest.raises(FormatError, match="dataendpos .* is before datastartpos"):
        read_cache_file(write_cache_file(replace(cf, datastartpos=end, dataendpos=end - 8)))
    with pytest.raises(FormatError, match=r"datastartpos 5 is outside the data region"):
        read_cache_file(write_cache_file(replace(cf, datastartpos=5)))
