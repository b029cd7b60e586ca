"""Julia cache files as Julia writes them (``.ji`` and the pkgimage image header), for generated
fixtures: the inverse of :mod:`depotdelivery.julia.cachefile`'s reader, layouts 1.9-1.12
(src/staticdata_utils.c, v1.9.4 .. v1.12.x: write_header, write_worklist, write_dependency_list)."""
from __future__ import annotations

import os
import struct
import uuid as _uuid

from depotdelivery.julia.cachefile import (
    _BOM_LE,
    _SIZED_LAYOUTS,
    KNOWN_FORMATS,
    MAGIC,
    CacheFile,
    ImageHeader,
    RequiredModule,
    read_cache_file,
)
from depotdelivery.julia.crc32c import crc32c

__all__ = ["image_header_bytes", "sealed", "write_cache_file"]


def _s(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _put_str32(out: bytearray, raw: bytes) -> None:
    out += struct.pack("<i", len(raw))
    out += raw


def _put_uuid(out: bytearray, value: _uuid.UUID | None) -> None:
    v = value.int if value is not None else 0
    out += struct.pack("<QQ", v >> 64, v & 0xFFFFFFFFFFFFFFFF)


def _put_preamble(out: bytearray, h: CacheFile | ImageHeader) -> None:
    out += MAGIC
    out += struct.pack("<H", h.format_version) + _BOM_LE + bytes((h.pointer_size,))
    for text in (h.uname, h.arch, h.julia_version, h.git_branch, h.git_commit):
        out += _s(text) + b"\0"
    out += struct.pack("<BQQQ", h.pkgimage, h.checksum, h.datastartpos, h.dataendpos)


def _put_modules(out: bytearray, mods: tuple[RequiredModule, ...]) -> None:
    for mod in mods:
        _put_str32(out, _s(mod.name))
        _put_uuid(out, mod.uuid)
        out += struct.pack("<QQ", mod.build_id_hi, mod.build_id_lo)
    out += struct.pack("<i", 0)


def _put_dep(out: bytearray, raw: bytes, sized: bool, fsize: int, crc: int, mtime: float,
             modindex: int, submodules: tuple[str, ...]) -> None:
    _put_str32(out, raw)
    if sized:
        out += struct.pack("<QI", fsize, crc)
    out += struct.pack("<di", mtime, modindex)
    if modindex:
        for sub in submodules:
            _put_str32(out, _s(sub))
        out += struct.pack("<i", 0)


def write_cache_file(cf: CacheFile, path: str | os.PathLike[str] | None = None) -> bytes:
    """The bytes of ``cf`` as Julia writes them (``requires`` records after the includes),
    with ``srctextpos``, the dependency-list length and the trailing file CRC-32C computed so
    the result validates; written to ``path`` too when given."""
    if cf.format_version not in KNOWN_FORMATS:
        raise ValueError(f"cannot write cache format {cf.format_version} (known: {KNOWN_FORMATS})")
    if not cf.worklist:
        raise ValueError("a cache file needs at least one worklist module")
    sized = cf.layout in _SIZED_LAYOUTS
    out = bytearray()
    _put_preamble(out, cf)
    out += bytes((cf.flags,))
    for mod in cf.worklist:
        _put_str32(out, _s(mod.name))
        _put_uuid(out, mod.uuid)
        out += struct.pack("<Q", mod.build_id)
    out += struct.pack("<i", 0)
    tot_at = len(out)
    out += bytes(8)
    for dep in cf.dependencies:
        if sized != (dep.fsize is not None and dep.crc32c is not None):
            raise ValueError(f"dependency {dep.path!r}: the {cf.layout} layout "
                             f"{'needs' if sized else 'has no'} fsize and crc32c")
        _put_dep(out, _s(dep.path), sized, dep.fsize or 0, dep.crc32c or 0, dep.mtime,
                 dep.modindex, dep.submodules)
    for req in cf.requires:
        raw = b"\0" + (req.uuid.int if req.uuid else 0).to_bytes(16, "little") + _s(req.name)
        _put_dep(out, raw, sized, 0, 0, 0.0, req.modindex, req.submodules)
    out += struct.pack("<i", 0)
    for pref in cf.preferences:
        _put_str32(out, _s(pref))
    out += struct.pack("<iQ", 0, cf.prefs_hash)
    srctext_field = len(out)
    out += bytes(8)
    struct.pack_into("<q", out, tot_at, srctext_field - tot_at)
    _put_modules(out, cf.required_modules)
    _put_str32(out, cf.clone_targets)
    out += cf.payload
    struct.pack_into("<q", out, srctext_field, len(out))
    for text in cf.source_texts:
        _put_str32(out, _s(text.path))
        out += struct.pack("<Q", len(text.text)) + text.text
    out += struct.pack("<iI", 0, cf.so_crc)
    out += struct.pack("<I", crc32c(out))
    data = bytes(out)
    if path is not None:
        with open(path, "wb") as handle:
            handle.write(data)
    return data


def image_header_bytes(h: ImageHeader) -> bytes:
    """The header Julia writes at the start of a pkgimage's serialized data."""
    out = bytearray()
    _put_preamble(out, h)
    out += bytes((h.flags,))
    _put_modules(out, h.required_modules)
    return bytes(out)


def sealed(cf: CacheFile) -> CacheFile:
    """``cf`` with the fields the writer computes filled in (what reading it back gives)."""
    return read_cache_file(write_cache_file(cf))
