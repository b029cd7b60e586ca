"""The clone-target blob: a byte-level encoding from the spec, round trips, hostile input."""
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery.errors import FormatError
from depotdelivery.julia.targetdata import (
    CLONE_ALL,
    UNKNOWN_NAME,
    VEC_CALL,
    ImageTarget,
    TargetData,
    parse_target_data,
    parse_target_data_prefix,
)
from depotdelivery.synth.targetdata import target_data_bytes


def spec_blob(targets):
    """julia-formats.md: u32 ntargets; per target u32 flags, u32 nfeature, en[], dis[],
    u32 namelen + name, u32 extlen + ext (little-endian)."""
    out = struct.pack("<I", len(targets))
    for flags, en, dis, name, ext in targets:
        out += struct.pack("<II", flags, len(en)) + struct.pack(f"<{len(en)}I", *en)
        out += struct.pack(f"<{len(dis)}I", *dis)
        out += struct.pack("<I", len(name)) + name + struct.pack("<I", len(ext)) + ext
    return out


# The official x86_64 target list shape: generic;sandybridge,...;haswell,...;x86-64-v4,...
OFFICIAL = [
    (VEC_CALL, (0,) * 11, (0,) * 11, b"generic", b""),
    (0, (1 << 13 | 1 << 28,) + (0,) * 10, (0,) * 11, b"sandybridge", b""),
    (0, (1 << 12,) + (0,) * 10, (1 << 30,) + (0,) * 10, b"haswell", b""),
    (UNKNOWN_NAME, (0,) * 11, (0,) * 11, b"x86-64-v4", b""),
]


def test_parses_a_spec_built_blob():
    blob = spec_blob(OFFICIAL)
    data = parse_target_data(blob)
    assert [t.name for t in data] == ["generic", "sandybridge", "haswell", "x86-64-v4"]
    assert data[0].flags == VEC_CALL and data[3].flags == UNKNOWN_NAME
    assert data[1].enabled_bits() == {13, 28} and data[2].disabled_bits() == {30}
    assert data[3].nfeature == 11 and not data[3].enabled_bits()  # the zero-feature v4 clone
    assert target_data_bytes(data) == blob


def test_aarch64_three_words_and_ext_features():
    blob = spec_blob([(VEC_CALL, (1 << 4, 1 << 1, 0), (0, 0, 0), b"neoverse-512tvb", b"-rand,+sve")])
    t = parse_target_data(blob)[0]
    assert t.en_words == (16, 2, 0) and t.ext == "-rand,+sve" and t.enabled_bits() == {4, 33}


_targets = st.builds(
    lambda flags, n, words, name, ext: ImageTarget(flags=flags, en_words=tuple(words[:n]),
                                                   dis_words=tuple(words[n:2 * n]), name=name, ext=ext),
    st.integers(0, 2**32 - 1), st.integers(0, 12),
    st.lists(st.integers(0, 2**32 - 1), min_size=24, max_size=24),
    st.text(max_size=20), st.text(max_size=20))
_data = st.lists(_targets, max_size=5).map(lambda ts: TargetData(tuple(ts)))


@given(_data)
def test_round_trip(data):
    blob = target_data_bytes(data)
    assert parse_target_data(blob) == data
    # the .so case: no length prefix, followed by unrelated bytes
    parsed, end = parse_target_data_prefix(blob + b"\xff" * 7, 0)
    assert parsed == data and end == len(blob)


@given(_data, st.integers(0, 10**6))
def test_truncation_is_a_format_error(data, cut):
    blob = target_data_bytes(data)
    cut %= len(blob)
    with pytest.raises(FormatError, match=r"^blob: offset \d+: "):
        parse_target_data(blob[:cut], where="blob")


@given(_data, st.integers(0, 10**6), st.sampled_from([2**32 - 1, 2**31, 0x10000, 65]))
def test_hostile_counts_raise_only_format_error(data, pos, value):
    blob = bytearray(target_data_bytes(data))
    pos %= max(1, len(blob) - 3)
    if len(blob) >= 4:
        struct.pack_into("<I", blob, pos, value)
    try:
        parse_target_data(bytes(blob))
    except FormatError:
        pass


def test_errors_carry_file_offsets():
    blob = spec_blob(OFFICIAL)
    with pytest.raises(FormatError, match=r"^Foo\.ji: offset 1004: expected the end of the target data, found 1 more bytes$"):
        parse_target_data(blob + b"\0", where="Foo.ji", base=1004 - len(blob))
    bad = bytearray(blob)
    struct.pack_into("<I", bad, 8, 1000)  # nfeature of target 0
    with pytest.raises(FormatError, match=r"offset 108: nfeature 1000 of target 0 is implausible"):
        parse_target_data(bytes(bad), base=100)
    with pytest.raises(FormatError, match="ntargets 4294967295 cannot fit"):
        parse_target_data(b"\xff\xff\xff\xff")


def test_non_utf8_name_is_a_format_error():
    with pytest.raises(FormatError, match="expected UTF-8 CPU name"):
        parse_target_data(spec_blob([(0, (), (), b"\xff\xfe", b"")]))


def test_mismatched_words_are_refused():
    with pytest.raises(ValueError):
        ImageTarget(flags=CLONE_ALL, en_words=(1,), dis_words=(), name="x")
