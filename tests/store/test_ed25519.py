"""store.ed25519.verify says what cryptography's Ed25519 verification says: RFC 8032's test
vectors, random keys and documents, tampered signatures, messages and keys, non-canonical values."""
from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from depotdelivery.store.ed25519 import verify

_L = 2**252 + 27742317777372353535851937790883648493
_P = 2**255 - 19

# RFC 8032 section 7.1, TEST 1, TEST 2 and TEST 3: (public key, message, signature)
RFC8032 = [
    ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]


def _raw(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _theirs(public: bytes, sig: bytes, msg: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(sig, msg)
    except (InvalidSignature, ValueError):
        return False
    return True


@pytest.mark.parametrize(("public", "msg", "sig"), RFC8032)
def test_rfc8032_vectors(public, msg, sig):
    public, msg, sig = bytes.fromhex(public), bytes.fromhex(msg), bytes.fromhex(sig)
    assert verify(public, sig, msg)
    assert not verify(public, sig, msg + b"\0")
    assert not verify(public, sig[:63] + bytes([sig[63] ^ 1]), msg)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 64 * 8 - 1), st.integers(0, 32 * 8 - 1))
def test_agrees_with_cryptography(msg, sig_bit, key_bit):
    key = Ed25519PrivateKey.generate()
    public, sig = _raw(key.public_key()), key.sign(msg)
    assert verify(public, sig, msg) and _theirs(public, sig, msg)
    bad_sig = bytearray(sig)
    bad_sig[sig_bit // 8] ^= 1 << sig_bit % 8
    assert verify(public, bytes(bad_sig), msg) == _theirs(public, bytes(bad_sig), msg) is False
    bad_key = bytearray(public)
    bad_key[key_bit // 8] ^= 1 << key_bit % 8
    assert verify(bytes(bad_key), sig, msg) == _theirs(bytes(bad_key), sig, msg) is False
    assert verify(public, sig, msg + b"x") is False


def test_non_canonical_values_are_refused():
    key = Ed25519PrivateKey.generate()
    public, sig = _raw(key.public_key()), key.sign(b"doc")
    s = int.from_bytes(sig[32:], "little")
    malleable = sig[:32] + (s + _L).to_bytes(32, "little")  # the same point, S >= L
    assert not verify(public, malleable, b"doc") and not _theirs(public, malleable, b"doc")
    y = int.from_bytes(public, "little") & ((1 << 255) - 1)
    if y + _P < 1 << 255:  # y >= p names the same point: not canonical
        assert not verify((y + _P).to_bytes(32, "little"), sig, b"doc")
    assert not verify(public[:31], sig, b"doc") and not verify(public, sig[:63], b"doc")
    assert not verify(b"\xff" * 32, sig, b"doc")
