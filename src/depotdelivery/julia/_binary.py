"""Bounds-checked little-endian reading shared by the Julia format readers (never over-reads)."""
from __future__ import annotations

import struct

TYPE_CHECKING = False  # no `typing` on a job's path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    import mmap
    from typing import Any

from depotdelivery.errors import FormatError

__all__ = ["Cursor", "Truncated", "fail"]

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")


class Truncated(FormatError):
    """The data ended (or a length points) past the end of the buffer: a reader that holds
    only a prefix of a file may retry with more of it."""


def fail(where: str, offset: int, message: str, cls: type[FormatError] = FormatError) -> FormatError:
    """The one error shape of every reader: ``<file>: offset <n>: <what was expected>``."""
    return cls(f"{where}: offset {offset}: {message}")


class Cursor:
    """A read position in a byte buffer; every read checks the remaining length first, so a
    hostile length field can never allocate more than the buffer holds."""

    __slots__ = ("base", "buf", "end", "pos", "where")

    def __init__(self, buf: bytes | memoryview | mmap.mmap, where: str, pos: int = 0, end: int | None = None,
                 *, base: int = 0):
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end
        self.where = where
        self.base = base  # added to offsets in messages: the buffer's offset in its file

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def error(self, message: str, offset: int | None = None, cls: type[FormatError] = FormatError) -> FormatError:
        return fail(self.where, self.base + (self.pos if offset is None else offset), message, cls)

    def _need(self, n: int, what: str) -> int:
        if n > self.end - self.pos:
            raise self.truncated(what, n)
        start = self.pos
        self.pos = start + n
        return start

    def truncated(self, what: str, n: int) -> FormatError:
        return self.error(f"expected {what} ({n} bytes), only {self.end - self.pos} left", cls=Truncated)

    def _unpack(self, st: struct.Struct, what: str) -> int | float:
        start = self._need(st.size, what)
        return st.unpack_from(self.buf, start)[0]

    def fields(self, st: struct.Struct, what: str) -> tuple[Any, ...]:
        """Several fixed-size fields at once (one bounds check, one unpack)."""
        start = self._need(st.size, what)
        return st.unpack_from(self.buf, start)

    def u8(self, what: str) -> int:
        return int(self._unpack(_U8, what))

    def u16(self, what: str) -> int:
        return int(self._unpack(_U16, what))

    def u32(self, what: str) -> int:
        return int(self._unpack(_U32, what))

    def i32(self, what: str) -> int:
        return int(self._unpack(_I32, what))

    def u64(self, what: str) -> int:
        return int(self._unpack(_U64, what))

    def i64(self, what: str) -> int:
        return int(self._unpack(_I64, what))

    def f64(self, what: str) -> float:
        return float(self._unpack(_F64, what))

    def take(self, n: int, what: str) -> bytes:
        start = self._need(n, what)
        return bytes(self.buf[start:start + n])

    def length(self, what: str, *, signed: bool = True) -> int:
        """A length field followed by that many bytes: negative or beyond the data is an error."""
        at = self.pos
        n = self.i32(f"length of {what}") if signed else self.u32(f"length of {what}")
        if n < 0:
            raise self.error(f"length {n} of {what} is negative", at)
        if n > self.remaining:
            raise self.error(f"length {n} of {what} is outside the {self.remaining} bytes left", at, Truncated)
        return n

    def cstring(self, what: str, limit: int = 4096) -> bytes:
        """A NUL-terminated string of at most ``limit`` bytes."""
        stop = min(self.end, self.pos + limit + 1)
        idx = bytes(self.buf[self.pos:stop]).find(b"\0")
        if idx < 0:
            message = f"expected NUL-terminated {what} within {limit} bytes"
            raise self.error(message, cls=Truncated if stop == self.end else FormatError)
        return self.take(idx + 1, what)[:-1]
