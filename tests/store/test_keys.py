"""Keys (keygen, key ids, TrustStore with revocations) and hashing (BLAKE3 vs b3sum, change detection, stat cache)."""
from __future__ import annotations

import base64
import binascii
import os
import shutil
import stat

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from depotdelivery.errors import FormatError, InputError, IntegrityError, TrustError
from depotdelivery.store.keys import (
    REVOKED_FILE,
    TrustStore,
    key_id,
    keygen,
    load_private_key,
    sign,
)


def test_keygen_writes_0600_private_and_public(tmp_path, cli):
    assert cli("keygen", "--out", str(tmp_path / "k"), "--json").code == 0
    assert stat.S_IMODE(os.stat(tmp_path / "k").st_mode) == 0o600
    assert (tmp_path / "k.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    out = cli.last.out
    key = load_private_key(tmp_path / "k")
    assert key.keyid in out and len(key.keyid) == 32
    # the documented derivation: first 16 bytes of BLAKE3 of the raw public key
    from cryptography.hazmat.primitives import serialization
    raw = key.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert key_id(raw) == blake3.blake3(raw).digest()[:16].hex() == key.keyid
    assert cli("keygen", "--out", str(tmp_path / "k")).code == 2  # never overwrites a key
    assert "already exists" in cli.last.err


def test_keygen_force_never_writes_into_the_old_file(tmp_path, cli):
    """--force over a world-readable key file: the new private key goes into a new 0600 file
    renamed over it, so another name of the old file (a hard link, an open descriptor) never
    sees it; without --force an existing .pub is refused too, before anything is written."""
    old = tmp_path / "k"
    old.write_bytes(b"old key")
    os.chmod(old, 0o644)
    os.link(old, tmp_path / "k-elsewhere")
    assert cli("keygen", "--out", str(old), "--force").code == 0
    assert stat.S_IMODE(os.stat(old).st_mode) == 0o600
    assert (tmp_path / "k-elsewhere").read_bytes() == b"old key", "the new key went into the old 0644 file"
    assert load_private_key(old).keyid
    (tmp_path / "n.pub").write_bytes(b"someone's public key")
    assert cli("keygen", "--out", str(tmp_path / "n")).code == 2
    assert "n.pub already exists" in cli.last.err
    assert not (tmp_path / "n").exists() and (tmp_path / "n.pub").read_bytes() == b"someone's public key"


def test_load_private_key_rejects_garbage(tmp_path):
    (tmp_path / "bad").write_text("not a key")
    with pytest.raises(InputError, match="not an unencrypted PEM private key"):
        load_private_key(tmp_path / "bad")
    with pytest.raises(InputError, match="cannot read key"):
        load_private_key(tmp_path / "missing")


@pytest.fixture
def two_keys(tmp_path):
    trust = tmp_path / "trust"
    trust.mkdir()
    keygen(tmp_path / "a")
    keygen(tmp_path / "b")
    shutil.copy(tmp_path / "a.pub", trust)
    return load_private_key(tmp_path / "a"), load_private_key(tmp_path / "b"), trust


def test_trust_store_verifies_and_names_problems(two_keys):
    a, b, trust = two_keys
    ts = TrustStore.from_dir(trust)
    doc = b'{"x":1}'
    assert ts.verify(doc, sign(doc, a), "release hep/1") == a.keyid
    assert ts.verify(doc, sign(doc, b, a), "release hep/1") == a.keyid  # any trusted signature suffices
    with pytest.raises(TrustError, match=f"release hep/1 signed by unknown key {b.keyid}: add its public key to {trust}"):
        ts.verify(doc, sign(doc, b), "release hep/1")
    with pytest.raises(IntegrityError, match="modified after signing"):
        ts.verify(b'{"x":2}', sign(doc, a), "release hep/1")
    with pytest.raises(TrustError, match="not signed"):
        ts.verify(doc, None, "release hep/1")
    with pytest.raises(FormatError, match="unreadable signature file"):
        ts.verify(doc, sign(doc, a)[:40], "release hep/1")


def test_revocation_list_is_honoured(two_keys):
    a, _, trust = two_keys
    (trust / REVOKED_FILE).write_text(f"# compromised 2026-11-01\n{a.keyid.upper()}  # laptop key\n")
    ts = TrustStore.from_dir(trust)
    with pytest.raises(TrustError, match=f"signed only by revoked key {a.keyid}"):
        ts.verify(b"d", sign(b"d", a), "channel stable")


@pytest.mark.parametrize("spoil, message", [
    (lambda f: os.symlink("gone", f), "is a dangling symlink"),
    (lambda f: os.mkdir(f), "cannot be read: Is a directory"),
    (lambda f: f.write_bytes(b"\xff\xfe not text"), "not UTF-8 at byte 0"),
])
def test_an_unreadable_revocation_list_fails_closed(two_keys, spoil, message):
    """A revocation list that exists but cannot be read never means "nothing revoked"."""
    _a, _, trust = two_keys
    spoil(trust / REVOKED_FILE)
    with pytest.raises(TrustError, match=f"revocation list {trust / REVOKED_FILE}.*{message}"):
        TrustStore.from_dir(trust)


def test_trust_dir_must_exist(tmp_path):
    with pytest.raises(TrustError, match="does not exist"):
        TrustStore.from_dir(tmp_path / "nope")


@settings(max_examples=300)
@given(st.text(alphabet="ABCab01+/=-_ \n\té", max_size=16) | st.binary(max_size=16)
       | st.binary(max_size=48).map(lambda b: base64.b64encode(b).decode()))
def test_signature_base64_is_b64decode_validate(text):
    """keys._b64decode (no base64 import on a job's cold path) accepts exactly what
    base64.b64decode(validate=True) accepts, with the same bytes (non-ASCII text: refused)."""
    from depotdelivery.store.keys import _b64decode

    try:
        expected = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        expected = None
    assert _b64decode(text) == expected
