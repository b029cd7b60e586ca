"""The clone-target blob of system images and pkgimages: reader and writer."""
from __future__ import annotations

import mmap
import struct

from depotdelivery._record import record

TYPE_CHECKING = False  # no `typing` on a job's path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Iterator
from depotdelivery.julia._binary import Cursor

__all__ = [
    "CLONE_ALL", "CLONE_BFLOAT16", "CLONE_CPU", "CLONE_FLOAT16", "CLONE_LOOP", "CLONE_MATH",
    "CLONE_SIMD", "MINSIZE", "OPTSIZE", "UNKNOWN_NAME", "VEC_CALL",
    "ImageTarget", "TargetData", "parse_target_data", "parse_target_data_prefix",
]

# JL_TARGET_* flags, src/processor.h (v1.11.1); CLONE_BFLOAT16 exists from 1.11.
VEC_CALL = 1 << 0
CLONE_ALL = 1 << 1
CLONE_MATH = 1 << 2
CLONE_LOOP = 1 << 3
CLONE_SIMD = 1 << 4
UNKNOWN_NAME = 1 << 5
OPTSIZE = 1 << 6
MINSIZE = 1 << 7
CLONE_CPU = 1 << 8
CLONE_FLOAT16 = 1 << 9
CLONE_BFLOAT16 = 1 << 10

# Sanity bound on words per target: x86 uses 11 (1.10/1.11) or 12 (1.12), aarch64 3
# (src/features_x86.h, src/features_aarch64.h). A larger count means a corrupt blob.
_MAX_WORDS = 64


@record(kw_only=True)
class ImageTarget:
    """One clone target: stored flags, enabled/disabled feature words, CPU name, ext features."""

    flags: int
    en_words: tuple[int, ...]
    dis_words: tuple[int, ...]
    name: str
    ext: str = ""

    def __post_init__(self) -> None:
        if len(self.en_words) != len(self.dis_words):
            raise ValueError(f"target {self.name!r}: en_words and dis_words differ in length")

    @property
    def nfeature(self) -> int:
        return len(self.en_words)

    def enabled_bits(self) -> frozenset[int]:
        """Feature bits (``32 * word + bit``) this target requires."""
        return _bits(self.en_words)

    def disabled_bits(self) -> frozenset[int]:
        return _bits(self.dis_words)


def _bits(words: tuple[int, ...]) -> frozenset[int]:
    return frozenset(32 * w + b for w, word in enumerate(words) for b in range(32) if word >> b & 1)


@record
class TargetData:
    """The clone targets of an image, in the image's order (index 0 is the default clone)."""

    targets: tuple[ImageTarget, ...]

    def __len__(self) -> int:
        return len(self.targets)

    def __iter__(self) -> Iterator[ImageTarget]:
        return iter(self.targets)

    def __getitem__(self, index: int) -> ImageTarget:
        return self.targets[index]


def _text(cur: Cursor, raw: bytes, what: str, at: int) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise cur.error(f"expected UTF-8 {what}", at) from None


def _read(cur: Cursor) -> TargetData:
    ntargets = cur.u32("u32 ntargets")
    # each target needs at least 16 bytes: flags, nfeature, namelen, extlen
    if ntargets * 16 > cur.remaining:
        raise cur.error(f"ntargets {ntargets} cannot fit in the {cur.remaining} bytes left", cur.pos - 4)
    targets = []
    for i in range(ntargets):
        flags = cur.u32(f"u32 flags of target {i}")
        at = cur.pos
        n = cur.u32(f"u32 nfeature of target {i}")
        if n > _MAX_WORDS or 8 * n > cur.remaining:
            raise cur.error(f"nfeature {n} of target {i} is implausible (at most {_MAX_WORDS})", at)
        words = struct.unpack_from(f"<{2 * n}I", cur.take(8 * n, f"feature words of target {i}"))
        at = cur.pos
        name = _text(cur, cur.take(cur.length(f"name of target {i}", signed=False), "name"), "CPU name", at)
        at = cur.pos
        ext = _text(cur, cur.take(cur.length(f"ext features of target {i}", signed=False), "ext"),
                    "ext features", at)
        targets.append(ImageTarget(flags=flags, en_words=tuple(words[:n]), dis_words=tuple(words[n:]),
                                   name=name, ext=ext))
    return TargetData(tuple(targets))


def parse_target_data(blob: bytes | memoryview, *, where: str = "target data", base: int = 0) -> TargetData:
    """Parse a complete blob (as stored in a pkgimage ``.ji`` header); trailing bytes are an
    error. ``base`` is the blob's offset in its file, for error messages."""
    cur = Cursor(blob, where, base=base)
    data = _read(cur)
    if cur.remaining:
        raise cur.error(f"expected the end of the target data, found {cur.remaining} more bytes")
    return data


def parse_target_data_prefix(buf: bytes | memoryview | mmap.mmap, start: int, *, where: str = "target data",
                             end: int | None = None) -> tuple[TargetData, int]:
    """Parse the blob beginning at ``buf[start]`` when no length is known (the ``.so`` case:
    the blob ends where its last target ends); returns the data and the end offset."""
    cur = Cursor(buf, where, start, end)
    data = _read(cur)
    return data, cur.pos
