"""Trusted public keys are read without cryptography's serialization module when they are the
PEM keygen writes; every other file gets serialization's own verdict."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from depotdelivery.errors import InputError
from depotdelivery.store.keys import TrustStore, _load_public


def _pem(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _raw(pub) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@pytest.mark.parametrize("variant", ["as written", "crlf", "no final newline", "text around"])
def test_direct_read_equals_serialization(variant):
    for _ in range(20):
        pem = _pem(ed25519.Ed25519PrivateKey.generate())
        pem = {"as written": pem, "crlf": pem.replace(b"\n", b"\r\n"), "no final newline": pem.rstrip(),
               "text around": b"comment\n" + pem + b"trailer\n"}[variant]
        try:
            expected = _raw(serialization.load_pem_public_key(pem))
        except ValueError:
            with pytest.raises(ValueError):
                _load_public(pem)
            continue
        raw, kind = _load_public(pem)
        assert (raw, kind) == (expected, "Ed25519PublicKey")


@pytest.mark.parametrize("damage", [lambda p: p.replace(b"MCowBQYDK2Vw", b"MCowBQYDK2Vx"),  # another OID
                                    lambda p: p[:40] + p[44:],  # truncated body
                                    lambda p: p.replace(b"PUBLIC KEY", b"PRIVATE KEY")])
def test_damaged_pem_gets_serializations_verdict(damage):
    pem = damage(_pem(ed25519.Ed25519PrivateKey.generate()))
    with pytest.raises(ValueError):
        serialization.load_pem_public_key(pem)
    with pytest.raises(ValueError):
        _load_public(pem)


def test_another_key_type_is_named(tmp_path):
    (tmp_path / "ec.pub").write_bytes(_pem(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(InputError, match=r"ec\.pub: not an Ed25519 key \(\w+\)"):
        TrustStore.from_dir(tmp_path)
