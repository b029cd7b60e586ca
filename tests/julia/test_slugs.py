"""Package and version slugs: Julia's real vectors and the base-62 encoding."""
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery.julia.crc32c import crc32c
from depotdelivery.julia.slugs import (
    SLUG_CHARS,
    package_slug,
    slug,
    uuid_bytes,
    version_slug,
)


@pytest.mark.parametrize(("name", "uid", "expected"), [
    ("Pluto", "c3e4b0f8-55cb-11ea-2926-15256bba5781", "OJqMt"),
    ("TOML", "fa267f1f-6049-4f14-aa54-33bafae1ed76", "mjrwE"),
])
def test_package_slug_real_vectors(name, uid, expected):
    assert package_slug(uid) == expected
    assert package_slug(uuid.UUID(uid)) == expected


def test_version_slug_real_vector():
    # JSON.jl: packages/JSON/NeJ9k
    assert version_slug("682c06a0-de6a-54ab-a142-c8b1cf79cde6",
                        "3c837543ddb02250ef42f4738347454f95079d4e") == "NeJ9k"
    assert version_slug(uuid.UUID("682c06a0-de6a-54ab-a142-c8b1cf79cde6"),
                        bytes.fromhex("3c837543ddb02250ef42f4738347454f95079d4e")) == "NeJ9k"


def test_legacy_four_char_slug_is_a_prefix():
    args = ("682c06a0-de6a-54ab-a142-c8b1cf79cde6", "3c837543ddb02250ef42f4738347454f95079d4e")
    assert version_slug(*args, n=4) == "NeJ9"


def test_uuid_bytes_little_endian_uint128():
    u = uuid.UUID("00000000-0000-0000-0000-000000000102")
    assert uuid_bytes(u) == b"\x02\x01" + bytes(14)


def test_bad_tree_sha():
    with pytest.raises(ValueError, match="20 bytes"):
        version_slug(uuid.uuid4(), "abcd")


@given(st.integers(0, 0xFFFFFFFF), st.integers(1, 8))
def test_slug_is_base62_least_significant_first(x, n):
    s = slug(x, n)
    assert len(s) == n and set(s) <= set(SLUG_CHARS)
    assert sum(SLUG_CHARS.index(c) * 62 ** i for i, c in enumerate(s)) == x % 62 ** n


@given(st.uuids(), st.binary(min_size=20, max_size=20))
def test_version_slug_chains_uuid_then_sha(u, sha):
    assert version_slug(u, sha) == slug(crc32c(u.int.to_bytes(16, "little") + sha), 5)
