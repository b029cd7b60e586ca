"""Ed25519 signature verification (RFC 8032 section 5.1.7) in plain Python, for the node.

A cold job verifies one or two signatures. ``cryptography``'s Ed25519 module costs a job
process more than a bare interpreter start-up to import (its Rust extension with a static
OpenSSL: benchmarks/bench_jobstart.py measures the cold path), while the verification itself
is a few hundred curve operations on Python integers. Signing and key generation stay with
``cryptography`` (the publisher, :mod:`depotdelivery.store.keys`).

Verification needs no constant time (key, document and signature are all public). The checks
are RFC 8032's, in the cofactorless form OpenSSL uses: ``S`` below the group order ``L``, ``A``
a canonical encoding (``y < p``) of a point on the curve, and the encoding of ``[S]B - [k]A``
equal to ``R``'s bytes, where ``k = SHA-512(R || A || M) mod L``. tests/store/test_ed25519.py
compares it with ``cryptography`` on RFC 8032's test vectors, random keys and documents, and
tampered signatures and keys.
"""
from __future__ import annotations

from _sha512 import sha512  # type: ignore[import-not-found]  # no stub; hashlib would load libcrypto for one digest

__all__ = ["verify"]

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493  # the order of the base point
_D = -121665 * pow(121666, _P - 2, _P) % _P
_D2 = 2 * _D % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)  # a square root of -1 mod p

# The base point B (RFC 8032 section 5.1) in extended coordinates (X, Y, Z, T), x*y = T/Z.
_BY = 4 * pow(5, _P - 2, _P) % _P
_BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202


def _add(p: tuple[int, int, int, int], q: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    # "add-2008-hwcd-3" for a = -1 (RFC 8032 section 5.1.4, point_add)
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = t1 * _D2 * t2 % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _double(p: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    # "dbl-2008-hwcd" for a = -1 (RFC 8032 section 5.1.4, point_double)
    x1, y1, z1, _ = p
    a = x1 * x1 % _P
    b = y1 * y1 % _P
    c = 2 * z1 * z1 % _P
    h = a + b
    e = h - (x1 + y1) * (x1 + y1) % _P
    g = a - b
    f = c + g
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _decode(s: bytes) -> tuple[int, int, int, int] | None:
    """The point a 32-byte encoding names (RFC 8032 section 5.1.3), None if none or not canonical."""
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        return None
    # x^2 = u/v with u = y^2 - 1, v = d y^2 + 1; candidate x = u v^3 (u v^7)^((p-5)/8)
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    v3 = v * v * v % _P
    x = u * v3 * pow(u * v3 * v3 * v % _P, (_P - 5) // 8, _P) % _P
    vx2 = v * x * x % _P
    if vx2 != u:
        if vx2 != _P - u:
            return None
        x = x * _SQRT_M1 % _P
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return x, y, 1, x * y % _P


def _encode(p: tuple[int, int, int, int]) -> bytes:
    x, y, z, _ = p
    zi = pow(z, _P - 2, _P)
    x, y = x * zi % _P, y * zi % _P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _table(p: tuple[int, int, int, int]) -> list[tuple[int, int, int, int]]:
    """0P, 1P, ..., 15P (the 4-bit windows of :func:`_combination`)."""
    out = [(0, 1, 1, 0), p]
    for _ in range(14):
        out.append(_add(out[-1], p))
    return out


def _combination(s: int, k: int, minus_a: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """[s]B + [k](-A) by Straus' method: one chain of doublings, 4-bit windows of both scalars."""
    tb = _table((_BX, _BY, 1, _BX * _BY % _P))
    ta = _table(minus_a)
    acc = (0, 1, 1, 0)
    for shift in range(252, -4, -4):
        acc = _double(_double(_double(_double(acc))))
        i, j = s >> shift & 15, k >> shift & 15
        if i:
            acc = _add(acc, tb[i])
        if j:
            acc = _add(acc, ta[j])
    return acc


def verify(public: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` (64 bytes) is the Ed25519 signature by ``public`` (32 raw bytes)
    over ``message``."""
    if len(public) != 32 or len(signature) != 64:
        return False
    a = _decode(public)
    if a is None:
        return False
    r, s = signature[:32], int.from_bytes(signature[32:], "little")
    if s >= _L:
        return False
    k = int.from_bytes(sha512(r + public + message).digest(), "little") % _L
    x, y, z, t = a
    return _encode(_combination(s, k, (_P - x, y, z, _P - t))) == r
