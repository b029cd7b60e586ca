"""Julia's package and version slugs (the short names under ``compiled/`` and ``packages/``)."""
from __future__ import annotations

import uuid as _uuid

from depotdelivery.julia.crc32c import crc32c

__all__ = ["SLUG_CHARS", "package_slug", "slug", "uuid_bytes", "version_slug"]

# base/loading.jl `slug_chars`: 'A':'Z', 'a':'z', '0':'9'
SLUG_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def slug(x: int, n: int) -> str:
    """``n`` characters of ``x`` in base 62, least significant digit first (base/loading.jl)."""
    out = []
    for _ in range(n):
        x, digit = divmod(x, len(SLUG_CHARS))
        out.append(SLUG_CHARS[digit])
    return "".join(out)


def uuid_bytes(value: _uuid.UUID | str) -> bytes:
    """A UUID as Julia hashes it: its UInt128 in 16 little-endian bytes."""
    u = value if isinstance(value, _uuid.UUID) else _uuid.UUID(str(value))
    return u.int.to_bytes(16, "little")


def package_slug(uuid: _uuid.UUID | str, n: int = 5) -> str:
    """The slug of ``compiled/vX.Y/<Name>/<package_slug>_<projslug>.ji``."""
    return slug(crc32c(uuid_bytes(uuid)), n)


def version_slug(uuid: _uuid.UUID | str, tree_sha1: str | bytes, n: int = 5) -> str:
    """The slug of ``packages/<Name>/<version_slug>`` (``n=4`` gives the legacy slug)."""
    sha = bytes.fromhex(tree_sha1) if isinstance(tree_sha1, str) else bytes(tree_sha1)
    if len(sha) != 20:
        raise ValueError(f"tree SHA-1 must be 20 bytes, got {len(sha)}")
    return slug(crc32c(sha, crc32c(uuid_bytes(uuid))), n)
