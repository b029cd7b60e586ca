"""CRC-32C (Castagnoli), the checksum Julia uses for slugs, cache files and pkgimage ``.so`` files."""
from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["ACCELERATED", "crc32c", "crc32c_file", "crc32c_python"]

# Reflected Castagnoli polynomial; init and xorout 0xFFFFFFFF (julia-formats.md "Slugs and
# hashes"; Julia's src/crc32c.c).
_POLY = 0x82F63B78
_CHUNK = 1 << 20


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc32c_python(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """Pure-Python CRC-32C of ``data`` continuing from ``crc`` (the fallback; slow)."""
    table = _TABLE
    value = (crc & 0xFFFFFFFF) ^ 0xFFFFFFFF
    for byte in bytes(data):
        value = table[(value ^ byte) & 0xFF] ^ (value >> 8)
    return value ^ 0xFFFFFFFF


def _select() -> tuple[Callable[[bytes | bytearray | memoryview, int], int], bool]:
    try:
        from crc32c import crc32c as _accelerated
    except ImportError:  # the C package is optional at runtime; keep working without it
        return crc32c_python, False
    return _accelerated, True


_IMPL, ACCELERATED = _select()


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C of ``data``; chainable: ``crc32c(b, crc32c(a)) == crc32c(a + b)`` (as Julia's
    ``_crc32c(data, crc)``)."""
    return _IMPL(data, crc)


def crc32c_file(path: str | os.PathLike[str], crc: int = 0, *, length: int | None = None) -> int:
    """CRC-32C of a file's bytes (the first ``length`` bytes if given), read in 1 MiB chunks."""
    remaining = length
    with open(path, "rb") as handle:
        while remaining is None or remaining > 0:
            want = _CHUNK if remaining is None else min(_CHUNK, remaining)
            chunk = handle.read(want)
            if not chunk:
                break
            crc = _IMPL(chunk, crc)
            if remaining is not None:
                remaining -= len(chunk)
    return crc
