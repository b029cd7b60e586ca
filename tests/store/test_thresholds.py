"""Signature thresholds (a trusted-keys directory's ``threshold`` file) and co-signing: real
Ed25519 keys, real ``.sig`` files, real repositories, the real CLI."""
from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st
from trust_fixtures import write_threshold

from depotdelivery.errors import IntegrityError, TrustError
from depotdelivery.store.keys import (
    REVOKED_FILE,
    THRESHOLD_FILE,
    Signature,
    TrustStore,
    encode_signatures,
    parse_threshold,
    sign,
)

DOC = b'{"format":1,"what":"a document"}'


def test_default_threshold_is_one_and_any_trusted_signature_passes(keys):
    trust, k = keys
    store = TrustStore.from_dir(trust)
    assert store.threshold == 1
    assert store.signers(DOC, sign(DOC, k["s"], k["b"]), "doc") == (k["b"].keyid,)


def test_threshold_two_with_one_signature_names_one_of_two(keys):
    trust, k = keys
    write_threshold(trust, 2)
    with pytest.raises(TrustError, match=f"doc: 1 of 2 required signatures .*valid: {k['a'].keyid}.*"
                                         f"ignored unknown key\\(s\\) {k['s'].keyid}.*{THRESHOLD_FILE}"):
        TrustStore.from_dir(trust).signers(DOC, sign(DOC, k["a"], k["s"]), "doc")
    assert TrustStore.from_dir(trust).signers(DOC, sign(DOC, k["a"], k["s"], k["c"]), "doc") == (
        k["a"].keyid, k["c"].keyid)


def test_two_signatures_by_the_same_key_count_once(keys):
    trust, k = keys
    write_threshold(trust, 2)
    a = k["a"]
    twice = encode_signatures([Signature(a.keyid, a.key.sign(DOC)), Signature(a.keyid, a.key.sign(DOC))])
    with pytest.raises(TrustError, match="1 of 2"):
        TrustStore.from_dir(trust).signers(DOC, twice, "doc")


def test_a_revoked_keys_signature_does_not_count(keys):
    trust, k = keys
    write_threshold(trust, 2)
    (trust / REVOKED_FILE).write_text(f"{k['b'].keyid}  # stolen\n")
    with pytest.raises(TrustError, match=f"1 of 2 .*ignored revoked key\\(s\\) {k['b'].keyid}"):
        TrustStore.from_dir(trust).signers(DOC, sign(DOC, k["a"], k["b"]), "doc")


def test_an_invalid_signature_by_a_trusted_key_fails_even_when_the_threshold_is_met(keys):
    trust, k = keys
    forged = Signature(k["c"].keyid, k["c"].key.sign(DOC + b" "))  # c signed other bytes
    sigs = encode_signatures([Signature(k["a"].keyid, k["a"].key.sign(DOC)),
                              Signature(k["b"].keyid, k["b"].key.sign(DOC)), forged])
    for n in (1, 2):
        write_threshold(trust, n)
        with pytest.raises(IntegrityError, match=f"trusted key {k['c'].keyid} does not match"):
            TrustStore.from_dir(trust).signers(DOC, sigs, "doc")


def test_a_keys_signature_over_the_previous_document_is_not_tampering(keys):
    """A channel's .sig keeps each signer's signature over the previous document (readers racing
    an update): a key with one valid signature counts, its other one is not a forgery."""
    trust, k = keys
    write_threshold(trust, 2)
    old, new = DOC, DOC + b"\n"
    both = encode_signatures([Signature(x.keyid, x.key.sign(d)) for d in (new, old) for x in (k["a"], k["b"])])
    store = TrustStore.from_dir(trust)
    assert store.signers(new, both, "doc") == store.signers(old, both, "doc") == (k["a"].keyid, k["b"].keyid)


def test_verify_returns_the_first_signer(keys):
    trust, k = keys
    assert TrustStore.from_dir(trust).verify(DOC, sign(DOC, k["c"], k["a"]), "doc") == k["c"].keyid


@pytest.mark.parametrize("text, message", [
    ("0\n", "line 1: expected a positive integer"),
    ("-1", "got '-1'"),
    ("two", "got 'two'"),
    ("2\n3\n", "line 2: expected one positive integer, found a second value"),
    ("# only a comment\n\n", "empty"),
    ("1234567", "at most 6 digits"),
    ("\u0662", "got"),  # an Arabic-Indic two: str.isdigit, but not a threshold
])
def test_malformed_threshold_file_is_a_trust_error_naming_it(keys, text, message):
    trust, _ = keys
    (trust / THRESHOLD_FILE).write_text(text)
    with pytest.raises(TrustError, match=f"threshold file {trust / THRESHOLD_FILE}.*{message}"):
        TrustStore.from_dir(trust)


def test_unreadable_threshold_file_fails_closed(keys):
    trust, _ = keys
    os.symlink(trust / "nowhere", trust / THRESHOLD_FILE)
    with pytest.raises(TrustError, match="dangling symlink"):
        TrustStore.from_dir(trust)
    os.unlink(trust / THRESHOLD_FILE)
    (trust / THRESHOLD_FILE).mkdir()
    with pytest.raises(TrustError, match="cannot be read"):
        TrustStore.from_dir(trust)
    (trust / THRESHOLD_FILE).rmdir()
    (trust / THRESHOLD_FILE).write_bytes(b"\xff2")
    with pytest.raises(TrustError, match="not UTF-8 at byte 0"):
        TrustStore.from_dir(trust)


@given(n=st.integers(1, 999_999), comment=st.sampled_from(["", "  # two of three publishers", "#"]),
       blank=st.sampled_from(["", "\n", "\n# header\n\n"]))
def test_threshold_parser_reads_what_it_is_given(n, comment, blank):
    assert parse_threshold(f"{blank} {n}{comment}\n{blank}", "t") == n


@given(st.text(max_size=20))
def test_threshold_parser_accepts_exactly_one_positive_ascii_integer(text):
    words = [w.split("#", 1)[0].strip() for w in text.splitlines()]
    words = [w for w in words if w]
    ok = len(words) == 1 and words[0].isascii() and words[0].isdigit() and len(words[0]) <= 6 and int(words[0]) > 0
    try:
        got = parse_threshold(text, "t")
    except TrustError as exc:
        assert not ok and str(exc).startswith("threshold file t")
    else:
        assert ok and got == int(words[0])


# ---- co-signing, the CLI, and a node with a threshold ------------------------------------------
