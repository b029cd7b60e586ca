"""Ed25519 keys, key ids, signature files (``X.sig``), and the node's TrustStore (trusted dir + revocations).

``cryptography`` is imported inside the functions that need it, never at module level: the
node imports this module to parse ``.sig`` files on paths that must stay light.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from depotdelivery.errors import FormatError, InputError, IntegrityError, TrustError, UsageError
from depotdelivery.store._fields import Fields
from depotdelivery.store.canonical import canonical_json
from depotdelivery.store.hashing import hash_bytes

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "REVOKED_FILE",
    "PrivateKey",
    "Signature",
    "TrustStore",
    "encode_signatures",
    "key_id",
    "keygen",
    "load_private_key",
    "parse_signatures",
    "sign",
]

# The revocation list inside a trusted-keys directory: key ids, one per line, '#' comments.
REVOKED_FILE = "revoked"
_KEYID_HEX = 32


def key_id(raw_public: bytes) -> str:
    """The key id: first 16 bytes (32 hex digits) of BLAKE3 of the raw 32-byte public key."""
    return hash_bytes(raw_public)[:_KEYID_HEX]


def _raw_public(pub: "Ed25519PublicKey") -> bytes:
    from cryptography.hazmat.primitives import serialization

    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class PrivateKey:
    """A loaded signing key and its key id."""

    key: "Ed25519PrivateKey"
    keyid: str
    path: Path


@dataclass(frozen=True, slots=True)
class Signature:
    keyid: str
    sig: bytes

    def to_dict(self) -> dict[str, str]:
        return {"keyid": self.keyid, "sig": base64.b64encode(self.sig).decode("ascii")}


def keygen(out: str | os.PathLike[str], *, force: bool = False) -> tuple[Path, Path, str]:
    """Write a new Ed25519 private key to ``out`` (PEM, mode 0600) and its public key to
    ``out.pub``; return ``(private path, public path, key id)``. Refuses to overwrite either
    unless ``force``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from depotdelivery.store.atomic import write_atomic  # publisher-only: off the node's import path

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
    return path, pub_path, key_id(_raw_public(key.public_key()))


def load_private_key(path: str | os.PathLike[str]) -> PrivateKey:
    """Load a PEM Ed25519 private key written by :func:`keygen`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read key {p}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{p}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{p}: not an Ed25519 key ({type(key).__name__})")
    return PrivateKey(key, key_id(_raw_public(key.public_key())), p)


def sign(doc: bytes, *keys: PrivateKey) -> bytes:
    """The ``.sig`` file for ``doc`` signed by every key in ``keys``."""
    if not keys:
        raise UsageError("signing needs at least one key")
    return encode_signatures([Signature(k.keyid, k.key.sign(doc)) for k in keys])


def encode_signatures(sigs: list[Signature]) -> bytes:
    return canonical_json({"signatures": [s.to_dict() for s in sigs]})


def parse_signatures(raw: bytes, *, where: str) -> tuple[Signature, ...]:
    """Parse a ``.sig`` file: ``{"signatures": [{"keyid", "sig"}, ...]}`` (at least one)."""
    try:
        obj = json.loads(raw.decode("utf-8"))
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
        try:
            sig = base64.b64decode(s.str("sig"), validate=True)
        except binascii.Error:
            raise s.error("sig", "not base64") from None
        if len(sig) != 64:
            raise s.error("sig", f"an Ed25519 signature is 64 bytes, got {len(sig)}")
        out.append(Signature(keyid, sig))
    if not out:
        raise FormatError(f"{where}: no signatures")
    return tuple(out)


class TrustStore:
    """Public keys a node trusts, from a directory it controls (never from the repository).

    ``<dir>/*.pub``: PEM Ed25519 public keys; ``<dir>/revoked``: key ids no longer trusted.
    """

    def __init__(self, keys: dict[str, Any], revoked: frozenset[str], source: str) -> None:
        self._keys = keys  # keyid -> Ed25519PublicKey
        self.revoked = revoked
        self.source = source

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str]) -> "TrustStore":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        d = Path(directory)
        if not d.is_dir():
            raise TrustError(f"trusted-keys directory {d} does not exist (set --trust DIR or DEPOTDELIVERY_TRUSTED_KEYS)")
        keys: dict[str, Any] = {}
        for p in sorted(d.glob("*.pub")):
            try:
                pub = serialization.load_pem_public_key(p.read_bytes())
            except (OSError, ValueError) as exc:
                raise InputError(f"trusted key {p}: not a PEM public key ({exc})") from None
            if not isinstance(pub, Ed25519PublicKey):
                raise InputError(f"trusted key {p}: not an Ed25519 key ({type(pub).__name__})")
            keys[key_id(_raw_public(pub))] = pub
        return cls(keys, _revoked(d / REVOKED_FILE), str(d))

    def verify(self, doc: bytes, sig_raw: bytes | None, where: str) -> str:
        """Return the id of a trusted, unrevoked key whose signature over ``doc`` verifies.

        Raises TrustError (unsigned, unknown or revoked keys only) or IntegrityError (a trusted
        key's signature does not match: the document was modified after signing).
        """
        from cryptography.exceptions import InvalidSignature

        if sig_raw is None:
            raise TrustError(f"{where} is not signed (no .sig file)")
        sigs = parse_signatures(sig_raw, where=f"{where} signature")
        bad: list[str] = []
        for s in sigs:
            if s.keyid in self.revoked:
                continue
            pub = self._keys.get(s.keyid)
            if pub is None:
                continue
            try:
                pub.verify(s.sig, doc)
            except InvalidSignature:
                bad.append(s.keyid)
                continue
            return s.keyid
        if bad:
            raise IntegrityError(
                f"{where}: signature by trusted key {bad[0]} does not match the document (modified after signing)")
        revoked = [s.keyid for s in sigs if s.keyid in self.revoked]
        if revoked:
            raise TrustError(f"{where} signed only by revoked key {revoked[0]} (listed in {self.source}/{REVOKED_FILE})")
        raise TrustError(f"{where} signed by unknown key {sigs[0].keyid}: add its public key to {self.source}")


def _revoked(rfile: Path) -> frozenset[str]:
    """The key ids in the revocation list; only a list that is truly absent means none. One
    that exists but cannot be read (a dangling symlink, a directory, not UTF-8) is an error:
    ignoring it would silently trust every revoked key (fail open)."""
    try:
        text = rfile.read_text(encoding="utf-8")
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
