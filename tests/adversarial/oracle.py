"""Independent expectations for tampered signature files: which exit code a verifier that
follows docs/architecture.md must give (checked with ``cryptography`` directly, not our code)."""
from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import Path

__all__ = ["sig_verdict"]

_KEYID = re.compile(r"[0-9a-f]{32}")


def _entries(raw: bytes) -> list[tuple[str, bytes]] | None:
    """The (keyid, signature) pairs of a well-formed ``.sig`` file, None if it is malformed."""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not (isinstance(obj, dict) and set(obj) == {"signatures"} and isinstance(obj["signatures"], list)
            and obj["signatures"]):
        return None
    out = []
    for item in obj["signatures"]:
        if not (isinstance(item, dict) and set(item) == {"keyid", "sig"}
                and isinstance(item["keyid"], str) and isinstance(item["sig"], str)
                and _KEYID.fullmatch(item["keyid"])):
            return None
        try:
            sig = base64.b64decode(item["sig"], validate=True)
        except binascii.Error:
            return None
        if len(sig) != 64:
            return None
        out.append((item["keyid"], sig))
    return out


def sig_verdict(doc: bytes, sig_raw: bytes, trusted_pub: Path, trusted_keyid: str) -> int:
    """0 if ``sig_raw`` carries a valid signature over ``doc`` by the trusted key; 4 if it is
    malformed or a trusted key's signature does not match; 5 if only unknown keys signed."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    entries = _entries(sig_raw)
    if entries is None:
        return 4
    pub = load_pem_public_key(trusted_pub.read_bytes())
    ours = [sig for keyid, sig in entries if keyid == trusted_keyid]
    for sig in ours:
        try:
            pub.verify(sig, doc)  # type: ignore[union-attr]
            return 0
        except InvalidSignature:
            continue
    return 4 if ours else 5
