"""The clone-target blob as Julia writes it into an image or a ``.ji`` header, for generated
fixtures: the inverse of :func:`depotdelivery.julia.targetdata.parse_target_data`."""
from __future__ import annotations

import struct

from depotdelivery.julia.targetdata import ImageTarget, TargetData

__all__ = ["image_target_bytes", "target_data_bytes"]


def image_target_bytes(t: ImageTarget) -> bytes:
    """One target: u32 flags, then serialize_target_data (u32 nfeature, en words, dis words,
    u32 + name, u32 + ext features)."""
    name = t.name.encode()
    ext = t.ext.encode()
    n = len(t.en_words)
    return b"".join((
        struct.pack(f"<II{n}I{n}I", t.flags, n, *t.en_words, *t.dis_words),
        struct.pack("<I", len(name)), name,
        struct.pack("<I", len(ext)), ext,
    ))


def target_data_bytes(data: TargetData) -> bytes:
    """The blob: u32 ntargets, then per target u32 flags + serialize_target_data
    (src/processor.cpp, src/aotcompile.cpp (v1.11.1))."""
    return struct.pack("<I", len(data.targets)) + b"".join(image_target_bytes(t) for t in data.targets)
