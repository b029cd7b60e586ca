"""Clone targets of ELF sysimages/pkgimages via ``jl_image_pointers`` (the writer of minimal
images, for generated fixtures, is :mod:`depotdelivery.synth.elfimage`)."""
from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from typing import Self

from depotdelivery.errors import FormatError
from depotdelivery.julia._binary import Cursor, fail
from depotdelivery.julia.targetdata import TargetData, parse_target_data_prefix

__all__ = [
    "IMAGE_POINTERS",
    "ElfImage",
    "open_image",
    "read_image_targets",
    "read_symbol",
]

# src/aotcompile.cpp (v1.11.1): the exported global `jl_image_pointers` holds five pointers
# {header, shards, ptls, jl_small_typeof, target_data}; slot 4 points at the clone-target blob.
IMAGE_POINTERS = "jl_image_pointers"
_TARGET_SLOT = 4
_NSLOTS = 5

# ELF constants (System V gABI; x86-64 and AArch64 psABIs)
_EM = {62: "x86_64", 183: "aarch64"}
_EM_BY_NAME = {name: em for em, name in _EM.items()}
_RELATIVE = {62: 8, 183: 1027}  # R_X86_64_RELATIVE, R_AARCH64_RELATIVE
_PT_LOAD, _PT_DYNAMIC, _PT_GNU_STACK = 1, 2, 0x6474E551
_SHT_SYMTAB, _SHT_STRTAB, _SHT_RELA, _SHT_HASH, _SHT_DYNAMIC, _SHT_DYNSYM = 2, 3, 4, 5, 6, 11
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_RELA = struct.Struct("<QQq")


@dataclass(frozen=True, slots=True)
class _Section:
    name: str
    type: int
    offset: int
    size: int
    link: int
    entsize: int


@dataclass(frozen=True, slots=True)
class _Segment:
    vaddr: int
    offset: int
    filesz: int
    memsz: int


class ElfImage:
    """A parsed 64-bit little-endian ELF file (sections, symbols, PT_LOAD map) over bytes or
    a read-only mmap: a 500 MB sysimage costs only the pages actually read."""

    def __init__(self, data: bytes | mmap.mmap, where: str):
        self.data = data
        self.where = where
        cur = Cursor(data, where)
        ident = cur.take(16, "the ELF identification")
        if ident[:4] != b"\x7fELF":
            raise fail(where, 0, f"expected the ELF magic 7F 45 4C 46, found {ident[:4].hex(' ').upper()}")
        if ident[4] != 2:
            raise fail(where, 4, f"expected a 64-bit ELF (class 2), found class {ident[4]} (32-bit images are not supported)")
        if ident[5] != 1:
            raise fail(where, 5, f"expected a little-endian ELF (data 1), found {ident[5]}")
        cur.pos = 0
        fields = _EHDR.unpack(cur.take(_EHDR.size, "the ELF header"))
        (_, _, machine, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, shstrndx) = fields
        if machine not in _EM:
            raise fail(where, 18, f"expected machine x86_64 (62) or aarch64 (183), found {machine}")
        self.machine = _EM[machine]
        self._em = machine
        self.segments = tuple(self._segments(phoff, phentsize, phnum))
        self.sections = tuple(self._sections(shoff, shentsize, shnum, shstrndx))

    def close(self) -> None:
        if isinstance(self.data, mmap.mmap):
            self.data.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _table(self, off: int, entsize: int, count: int, st: struct.Struct, what: str) -> list[tuple]:
        if count and entsize < st.size:
            raise fail(self.where, off, f"expected {what} entries of at least {st.size} bytes, found {entsize}")
        if off + entsize * count > len(self.data):
            raise fail(self.where, off, f"expected {count} {what} entries, the file ends at {len(self.data)}")
        return [st.unpack_from(self.data, off + i * entsize) for i in range(count)]

    def _segments(self, phoff: int, entsize: int, count: int) -> list[_Segment]:
        out = []
        for p_type, _, p_offset, p_vaddr, _, p_filesz, p_memsz, _ in self._table(
                phoff, entsize, count, _PHDR, "program header"):
            if p_type == _PT_LOAD:
                if p_offset + p_filesz > len(self.data):
                    raise fail(self.where, phoff, f"PT_LOAD at file offset {p_offset} + {p_filesz} runs past the end")
                out.append(_Segment(p_vaddr, p_offset, p_filesz, p_memsz))
        return out

    def _sections(self, shoff: int, entsize: int, count: int, shstrndx: int) -> list[_Section]:
        raw = self._table(shoff, entsize, count, _SHDR, "section header")
        if not raw:
            return []
        if shstrndx >= len(raw):
            raise fail(self.where, shoff, f"section-name table index {shstrndx} is outside the {len(raw)} sections")
        names_off, names_size = raw[shstrndx][4], raw[shstrndx][5]
        out = []
        for name, sh_type, _, _, off, size, link, _, _, ent in raw:
            if sh_type != 8 and off + size > len(self.data):  # SHT_NOBITS occupies no file bytes
                raise fail(self.where, shoff, f"section at offset {off} + {size} runs past the end of the file")
            out.append(_Section(self._cstr(names_off, names_size, name), sh_type, off, size, link, ent))
        return out

    def _cstr(self, table_off: int, table_size: int, index: int) -> str:
        if index >= table_size:
            raise fail(self.where, table_off, f"string index {index} is outside the {table_size}-byte table")
        end = self.data.find(b"\0", table_off + index, table_off + table_size)
        if end < 0:
            raise fail(self.where, table_off + index, "expected a NUL-terminated string")
        return bytes(self.data[table_off + index:end]).decode("utf-8", "replace")

    def symbol(self, name: str) -> tuple[int, int]:
        """(vaddr, size) of a defined symbol, from .dynsym, else .symtab."""
        for kind in (_SHT_DYNSYM, _SHT_SYMTAB):
            for sec in self.sections:
                if sec.type != kind or sec.link >= len(self.sections):
                    continue
                strtab = self.sections[sec.link]
                for i in range(sec.size // max(sec.entsize, _SYM.size)):
                    st_name, _, _, shndx, value, size = _SYM.unpack_from(self.data, sec.offset + i * max(sec.entsize, _SYM.size))
                    if shndx and self._cstr(strtab.offset, strtab.size, st_name) == name:
                        return value, size
        raise FormatError(f"{self.where}: no symbol {name!r} (expected an exported {name} as Julia images have)")

    def offset_of(self, vaddr: int, what: str, *, at: int | None = None) -> tuple[int, int]:
        """File offset of a virtual address through PT_LOAD, and the end of that segment's
        file bytes. ``at``: the file offset where the address was read, for the message."""
        for seg in self.segments:
            if seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
                return seg.offset + vaddr - seg.vaddr, seg.offset + seg.filesz
        message = f"{what} address {vaddr:#x} is outside every PT_LOAD segment's file bytes"
        raise fail(self.where, at, message) if at is not None else FormatError(f"{self.where}: {message}")

    def relative_addend(self, vaddr: int) -> int | None:
        """r_addend of the RELATIVE relocation that patches ``vaddr`` (None if there is none)."""
        want = _RELATIVE[self._em]
        for sec in self.sections:
            if sec.type != _SHT_RELA:
                continue
            ent = max(sec.entsize, _RELA.size)
            for i in range(sec.size // ent):
                r_offset, r_info, r_addend = _RELA.unpack_from(self.data, sec.offset + i * ent)
                if r_offset == vaddr and r_info & 0xFFFFFFFF == want:
                    return r_addend
        return None

    def pointer(self, vaddr: int, what: str) -> int:
        """The pointer stored at ``vaddr`` after relocation: the file value, or when that is 0
        (LLD leaves RELATIVE slots zero) the addend of its RELATIVE relocation."""
        off, end = self.offset_of(vaddr, what)
        if off + 8 > end:
            raise fail(self.where, off, f"expected an 8-byte {what} inside its segment")
        value = struct.unpack_from("<Q", self.data, off)[0]
        if value == 0:
            addend = self.relative_addend(vaddr)
            if addend is not None:
                return addend
        return value

    def read_symbol(self, name: str) -> bytes:
        vaddr, size = self.symbol(name)
        off, end = self.offset_of(vaddr, f"symbol {name}")
        if off + size > end:
            raise fail(self.where, off, f"symbol {name} of {size} bytes runs past its segment")
        return bytes(self.data[off:off + size])

    def targets(self) -> TargetData:
        base, _ = self.symbol(IMAGE_POINTERS)
        slot = base + 8 * _TARGET_SLOT
        blob = self.pointer(slot, f"{IMAGE_POINTERS}[{_TARGET_SLOT}]")
        if blob == 0:
            raise FormatError(f"{self.where}: {IMAGE_POINTERS}[{_TARGET_SLOT}] (target data) is a null pointer")
        slot_off, _ = self.offset_of(slot, "slot")
        off, end = self.offset_of(blob, f"{IMAGE_POINTERS}[{_TARGET_SLOT}]: target data", at=slot_off)
        return parse_target_data_prefix(self.data, off, where=self.where, end=end)[0]


def open_image(path: str | os.PathLike[str]) -> ElfImage:
    """The parsed image over a read-only mmap of the file; close it (or use ``with``) when
    done, otherwise the mapping goes with the object."""
    name = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                return ElfImage(b"", name)
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise FormatError(f"{name}: cannot read image: {exc.strerror or exc}") from None
    try:
        return ElfImage(data, name)
    except BaseException:
        data.close()
        raise


def read_image_targets(path: str | os.PathLike[str]) -> TargetData:
    """The clone targets of a sysimage or pkgimage ``.so`` (``jl_image_pointers`` slot 4)."""
    with open_image(path) as image:
        return image.targets()


def read_symbol(path: str | os.PathLike[str], name: str) -> bytes:
    """The bytes of a defined data symbol (e.g. one written by ``write_image(extra_symbols=)``)."""
    with open_image(path) as image:
        return image.read_symbol(name)
