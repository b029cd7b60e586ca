"""Ed25519 keys, key ids, signature files (``X.sig``), and the node's TrustStore (trusted dir, revocations, threshold).

``cryptography`` is imported inside the functions that need it (key generation, loading a
private key, signing, keys in another PEM form), never at module level: the node imports this
module to read trusted keys, parse ``.sig`` files and verify signatures
(:mod:`depotdelivery.store.ed25519`) on its cold path, which imports no ``json``, ``base64``,
``pathlib`` or ``typing`` either.
"""
from __future__ import annotations

import binascii
import os

from depotdelivery._record import record
from depotdelivery.errors import (
    FormatError,
    InputError,
    IntegrityError,
    TrustError,
    UsageError,
)
from depotdelivery.readbounded import KEY_LIMIT, read_bounded
from depotdelivery.store import ed25519, fastjson
from depotdelivery.store.canonical import canonical_json
from depotdelivery.store.fields import Fields
from depotdelivery.store.hashing import hash_bytes

TYPE_CHECKING = False  # no `typing` on a job's cold path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "REVOKED_FILE",
    "THRESHOLD_FILE",
    "PrivateKey",
    "Signature",
    "TrustStore",
    "encode_signatures",
    "key_id",
    "keygen",
    "load_private_key",
    "parse_signatures",
    "parse_threshold",
    "raw_public_key",
    "sign",
    "signature_valid",
    "signing_keys",
]

# The revocation list inside a trusted-keys directory: key ids, one per line, '#' comments.
REVOKED_FILE = "revoked"
# How many distinct trusted, unrevoked keys must sign each document (DESIGN.md: "several
# signatures per document allowed (key rotation, thresholds)"); absent: 1.
THRESHOLD_FILE = "threshold"
_THRESHOLD_DIGITS = 6  # a threshold above 999999 keys is a typo, not a policy
_KEYID_HEX = 32


def key_id(raw_public: bytes) -> str:
    """The key id: first 16 bytes (32 hex digits) of BLAKE3 of the raw 32-byte public key."""
    return hash_bytes(raw_public)[:_KEYID_HEX]


def raw_public_key(pub: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of a ``cryptography`` Ed25519 public key (what :func:`signature_valid` takes)."""
    from cryptography.hazmat.primitives import serialization

    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@record
class PrivateKey:
    """A loaded signing key and its key id."""

    key: Ed25519PrivateKey
    keyid: str
    path: Path


@record
class Signature:
    keyid: str
    sig: bytes

    def to_dict(self) -> dict[str, str]:
        return {"keyid": self.keyid, "sig": binascii.b2a_base64(self.sig, newline=False).decode("ascii")}


def keygen(out: str | os.PathLike[str], *, force: bool = False) -> tuple[Path, Path, str]:
    """Write a new Ed25519 private key to ``out`` (PEM, mode 0600) and its public key to
    ``out.pub``; return ``(private path, public path, key id)``. Refuses to overwrite either
    unless ``force``."""
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from depotdelivery.store.atomic import (
        write_atomic,  # publisher-only: off the node's import path
    )

    path = Path(out)
    pub_path = path.with_name(path.name + ".pub")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    if not force:
        for p in (path, pub_path):
            if os.path.lexists(p):
                raise UsageError(f"{p} already exists; refusing to overwrite a key (remove it first, or --force)")
    try:
        # the private key only ever goes into a new file created 0600 (a temporary renamed over
        # an old key with --force): never into an existing file another mode or name can expose
        if force:
            write_atomic(path, private_pem, mode=0o600)
        else:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(private_pem)
        write_atomic(pub_path, public_pem)
    except FileExistsError:
        raise UsageError(f"{path} already exists; refusing to overwrite a key (remove it first, or --force)") from None
    except OSError as exc:
        raise UsageError(f"cannot create key file {exc.filename or path}: {exc.strerror}") from None
    return path, pub_path, key_id(raw_public_key(key.public_key()))


def load_private_key(path: str | os.PathLike[str]) -> PrivateKey:
    """Load a PEM Ed25519 private key written by :func:`keygen`."""
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    p = Path(path)
    try:
        data = read_bounded(p, KEY_LIMIT)
    except OSError as exc:
        raise InputError(f"cannot read key {p}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{p}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{p}: not an Ed25519 key ({type(key).__name__})")
    return PrivateKey(key, key_id(raw_public_key(key.public_key())), p)


def signing_keys(key: PrivateKey | Sequence[PrivateKey]) -> tuple[PrivateKey, ...]:
    """One key or several (``--key`` given more than once) as a tuple, each key id once: the
    same key twice would only add a signature that counts once."""
    keys = (key,) if isinstance(key, PrivateKey) else tuple(key)
    if not keys:
        raise UsageError("signing needs at least one key")
    return tuple({k.keyid: k for k in keys}.values())


def sign(doc: bytes, *keys: PrivateKey) -> bytes:
    """The ``.sig`` file for ``doc`` signed by every key in ``keys``."""
    return encode_signatures([Signature(k.keyid, k.key.sign(doc)) for k in signing_keys(keys)])


def encode_signatures(sigs: list[Signature]) -> bytes:
    return canonical_json({"signatures": [s.to_dict() for s in sigs]})


def parse_signatures(raw: bytes, *, where: str) -> tuple[Signature, ...]:
    """Parse a ``.sig`` file: ``{"signatures": [{"keyid", "sig"}, ...]}`` (at least one)."""
    try:
        obj = fastjson.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # also a >4300-digit integer or hostile nesting depth
        raise FormatError(f"{where}: unreadable signature file (truncated or not JSON: {str(exc)[:120]})") from None
    f = Fields(obj, where)
    f.only(frozenset({"signatures"}))
    out = []
    for s in f.subs("signatures"):
        s.only(frozenset({"keyid", "sig"}))
        keyid = s.str("keyid")
        if len(keyid) != _KEYID_HEX or any(c not in "0123456789abcdef" for c in keyid):
            raise s.error("keyid", f"expected {_KEYID_HEX} lowercase hex digits, got {keyid!r}")
        sig = _b64decode(s.str("sig"))
        if sig is None:
            raise s.error("sig", "not base64")
        if len(sig) != 64:
            raise s.error("sig", f"an Ed25519 signature is 64 bytes, got {len(sig)}")
        out.append(Signature(keyid, sig))
    if not out:
        raise FormatError(f"{where}: no signatures")
    return tuple(out)


class TrustStore:
    """Public keys a node trusts, from a directory it controls (never from the repository).

    ``<dir>/*.pub``: PEM Ed25519 public keys; ``<dir>/revoked``: key ids no longer trusted;
    ``<dir>/threshold``: how many distinct trusted keys must sign each document (default 1).
    """

    def __init__(self, keys: dict[str, bytes], revoked: frozenset[str], source: str, threshold: int = 1) -> None:
        self._keys = keys  # keyid -> raw public key
        self.revoked = revoked
        self.source = source
        self.threshold = threshold

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str]) -> TrustStore:
        d = os.fspath(directory)
        if not os.path.isdir(d):
            raise TrustError(f"trusted-keys directory {d} does not exist (set --trust DIR or DEPOTDELIVERY_TRUSTED_KEYS)")
        keys: dict[str, bytes] = {}
        # the names glob("*.pub") finds: not hidden, in order
        for name in sorted(n for n in os.listdir(d) if n.endswith(".pub") and not n.startswith(".")):
            p = os.path.join(d, name)
            try:
                raw, kind = _load_public(read_bounded(p, KEY_LIMIT))
            except (OSError, ValueError) as exc:
                raise InputError(f"trusted key {p}: not a PEM public key ({exc})") from None
            if raw is None:
                raise InputError(f"trusted key {p}: not an Ed25519 key ({kind})")
            keys[key_id(raw)] = raw
        return cls(keys, _revoked(os.path.join(d, REVOKED_FILE)), d, _threshold(os.path.join(d, THRESHOLD_FILE)))

    def verify(self, doc: bytes, sig_raw: bytes | None, where: str) -> str:
        """The id of the first trusted key whose signature over ``doc`` verifies, once
        :meth:`signers` found enough of them (its errors)."""
        return self.signers(doc, sig_raw, where)[0]

    def signers(self, doc: bytes, sig_raw: bytes | None, where: str) -> tuple[str, ...]:
        """The distinct trusted, unrevoked keys whose signatures over ``doc`` verify, in ``.sig``
        order: at least ``threshold`` of them.

        Signatures by unknown or revoked keys are ignored (they never count). Raises
        IntegrityError when a trusted key signed but none of its signatures matches ``doc``
        (modified after signing), even if enough others did; TrustError (unsigned, or fewer
        than ``threshold`` valid signatures: the error says how many, by which keys). A key may
        also hold a signature over the channel's *previous* document (a reader racing an
        update, docs/format.md): one valid signature per key is what counts.
        """
        if sig_raw is None:
            raise TrustError(f"{where} is not signed (no .sig file)")
        sigs = parse_signatures(sig_raw, where=f"{where} signature")
        valid: list[str] = []
        tried: list[str] = []
        for s in sigs:
            pub = None if s.keyid in self.revoked else self._keys.get(s.keyid)
            if pub is None or s.keyid in valid:
                continue
            if s.keyid not in tried:
                tried.append(s.keyid)
            if signature_valid(pub, s.sig, doc):
                valid.append(s.keyid)
        bad = [k for k in tried if k not in valid]
        if bad:
            raise IntegrityError(
                f"{where}: signature by trusted key {bad[0]} does not match the document (modified after signing)")
        if len(valid) >= self.threshold:
            return tuple(valid)
        revoked = sorted({s.keyid for s in sigs if s.keyid in self.revoked})
        unknown = sorted({s.keyid for s in sigs if s.keyid not in self.revoked and s.keyid not in self._keys})
        if self.threshold == 1:
            if revoked:
                raise TrustError(f"{where} signed only by revoked key {revoked[0]} (listed in {self.source}/{REVOKED_FILE})")
            raise TrustError(f"{where} signed by unknown key {unknown[0]}: add its public key to {self.source}")
        ignored = "".join(
            f"; ignored {what} key(s) {', '.join(ids)}" for what, ids in (("revoked", revoked), ("unknown", unknown)) if ids)
        raise TrustError(
            f"{where}: {len(valid)} of {self.threshold} required signatures by distinct trusted keys "
            f"(valid: {', '.join(valid) or 'none'}{ignored}; threshold set in {self.source}/{THRESHOLD_FILE}); "
            "co-sign it with `depotdelivery sign`")


# DER of an Ed25519 SubjectPublicKeyInfo (RFC 8410 section 4): SEQUENCE { SEQUENCE { OID
# 1.3.101.112 }, BIT STRING (0 unused bits) } around the 32 raw key bytes
_ED25519_SPKI = bytes.fromhex("302a300506032b6570032100")
_PEM_BEGIN, _PEM_END = b"-----BEGIN PUBLIC KEY-----", b"-----END PUBLIC KEY-----"


def _b64decode(text: str | bytes) -> bytes | None:
    """``base64.b64decode(text, validate=True)`` (which is this strict a2b_base64) without
    importing base64 (re, struct); None where it raises, also for non-ASCII text."""
    try:
        return binascii.a2b_base64(text.encode("ascii") if isinstance(text, str) else text, strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        return None


def _load_public(data: bytes) -> tuple[bytes | None, str]:
    """(raw key bytes, key type) of a PEM public key file. The PEM keygen writes is read
    directly: ``cryptography``'s serialization module costs a cold node job more than a bare
    interpreter start-up. Anything else goes through serialization, for its verdict and its
    error (ValueError); another type of key comes back as (None, its type's name)."""
    head, begin, rest = data.partition(_PEM_BEGIN)
    body, end, tail = rest.partition(_PEM_END)
    if begin and end and not head.strip() and not tail.strip():
        der = _b64decode(b"".join(body.split())) or b""
        if len(der) == len(_ED25519_SPKI) + 32 and der.startswith(_ED25519_SPKI):
            return der[len(_ED25519_SPKI):], "Ed25519PublicKey"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    pub = serialization.load_pem_public_key(data)
    return (raw_public_key(pub), type(pub).__name__) if isinstance(pub, Ed25519PublicKey) else (None, type(pub).__name__)


def signature_valid(public: bytes, sig: bytes, doc: bytes) -> bool:
    """Whether ``sig`` is the Ed25519 signature over ``doc`` by the key with raw bytes ``public``
    (:mod:`depotdelivery.store.ed25519`: no ``cryptography`` import for a job's one check)."""
    return ed25519.verify(public, sig, doc)


def parse_threshold(text: str, where: str) -> int:
    """The threshold file's number: one positive decimal integer; blank lines and ``#``
    comments allowed (like the revocation list)."""
    words = [(n, line.split("#", 1)[0].strip()) for n, line in enumerate(text.splitlines(), 1)]
    words = [(n, w) for n, w in words if w]
    if not words:
        raise TrustError(f"threshold file {where}: empty (expected one positive integer, e.g. 2)")
    if len(words) > 1:
        raise TrustError(f"threshold file {where}, line {words[1][0]}: expected one positive integer, found a second value")
    n, w = words[0]
    if not (w.isascii() and w.isdigit()) or len(w) > _THRESHOLD_DIGITS or int(w) < 1:
        raise TrustError(f"threshold file {where}, line {n}: expected a positive integer of at most "
                         f"{_THRESHOLD_DIGITS} digits, got {w[:40]!r}")
    return int(w)


def _read_text(path: str) -> str:
    return read_bounded(path, KEY_LIMIT).decode("utf-8")


def _threshold(tfile: str) -> int:
    """The threshold (1 when the file is truly absent). Unreadable is an error, never 1: that
    would silently accept a single stolen key (fail open)."""
    try:
        text = _read_text(tfile)
    except FileNotFoundError:
        if not os.path.lexists(tfile):
            return 1
        raise TrustError(f"threshold file {tfile} is a dangling symlink; refusing to trust keys without it") from None
    except OSError as exc:
        raise TrustError(f"threshold file {tfile} cannot be read: {exc.strerror}; refusing to trust keys without it") from None
    except UnicodeDecodeError as exc:
        raise TrustError(f"threshold file {tfile}: not UTF-8 at byte {exc.start}") from None
    return parse_threshold(text, str(tfile))


def _revoked(rfile: str) -> frozenset[str]:
    """The key ids in the revocation list; only a list that is truly absent means none. One
    that exists but cannot be read (a dangling symlink, a directory, not UTF-8) is an error:
    ignoring it would silently trust every revoked key (fail open)."""
    try:
        text = _read_text(rfile)
    except FileNotFoundError:
        if not os.path.lexists(rfile):
            return frozenset()
        raise TrustError(f"revocation list {rfile} is a dangling symlink; refusing to trust keys without it") from None
    except OSError as exc:
        raise TrustError(f"revocation list {rfile} cannot be read: {exc.strerror}; refusing to trust keys without it") from None
    except UnicodeDecodeError as exc:
        raise TrustError(f"revocation list {rfile}: not UTF-8 at byte {exc.start}; refusing to trust keys without it") from None
    words = (line.split("#", 1)[0].strip().lower() for line in text.splitlines())
    return frozenset(w for w in words if w)
