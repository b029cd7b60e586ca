"""Clone targets of ELF sysimages/pkgimages via ``jl_image_pointers``, and a minimal ELF writer."""
from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from depotdelivery.errors import FormatError
from depotdelivery.julia._binary import Cursor, fail
from depotdelivery.julia.targetdata import TargetData, parse_target_data_prefix

__all__ = [
    "IMAGE_POINTERS",
    "ElfImage",
    "open_image",
    "read_image_targets",
    "read_symbol",
    "write_image",
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

    def __enter__(self) -> ElfImage:
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


# -- writer ------------------------------------------------------------------------------------

def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def write_image(path: str | os.PathLike[str], target_blob: bytes, *, machine: str = "x86_64",
                extra_symbols: Mapping[str, bytes] | None = None, zero_slots: bool = True,
                soname: str | None = None) -> None:
    """Write a minimal ELF64 shared object exporting ``jl_image_pointers`` (slot 0 -> an image
    header ``{1, 0, 0, 0}``, slot 4 -> ``target_blob``) and one data symbol per
    ``extra_symbols`` entry. Pointers get R_*_RELATIVE relocations so the file loads at any
    address; ``zero_slots`` leaves the slots 0 in the file as LLD does (GNU ld stores the
    value). Enough for dlopen/dlsym, readelf and nm; no code, no Julia data."""
    if machine not in _EM_BY_NAME:
        raise ValueError(f"machine must be one of {sorted(_EM_BY_NAME)}, not {machine!r}")
    em = _EM_BY_NAME[machine]
    if IMAGE_POINTERS in (extra_symbols or {}):
        raise ValueError(f"{IMAGE_POINTERS} is written by write_image itself")
    symbols = {IMAGE_POINTERS: b""} | dict(extra_symbols or {})
    names = list(symbols)

    dynstr = bytearray(b"\0")
    name_off = {}
    for n in names + ([soname] if soname else []):
        name_off[n] = len(dynstr)
        dynstr += n.encode() + b"\0"
    nsyms = len(names) + 1

    ehdr_size, nph = _EHDR.size, 3
    off = ehdr_size + nph * _PHDR.size
    hash_off = _align(off, 8)
    hash_size = 4 * (2 + 1 + nsyms)
    dynsym_off = _align(hash_off + hash_size, 8)
    dynstr_off = dynsym_off + nsyms * _SYM.size
    rela_off = _align(dynstr_off + len(dynstr), 8)
    nrela = 2
    data_off = _align(rela_off + nrela * _RELA.size, 16)

    # .data: jl_image_pointers, the image header, the target blob, then the extra symbols
    data = bytearray(8 * _NSLOTS)
    hdr_at = data_off + len(data)
    data += struct.pack("<IIII", 1, 0, 0, 0)
    blob_at = data_off + len(data)
    data += target_blob
    sym_at = {IMAGE_POINTERS: (data_off, 8 * _NSLOTS)}
    for n in names[1:]:
        data += bytes(_align(len(data), 16) - len(data))
        sym_at[n] = (data_off + len(data), len(symbols[n]))
        data += symbols[n]
    relocs = [(data_off + 0, hdr_at), (data_off + 8 * _TARGET_SLOT, blob_at)]
    if not zero_slots:
        struct.pack_into("<Q", data, 0, hdr_at)
        struct.pack_into("<Q", data, 8 * _TARGET_SLOT, blob_at)

    dyn_off = _align(data_off + len(data), 8)
    dyn = [(4, hash_off), (5, dynstr_off), (6, dynsym_off), (10, len(dynstr)), (11, _SYM.size),
           (7, rela_off), (8, nrela * _RELA.size), (9, _RELA.size), (0x6FFFFFF9, nrela)]
    if soname:
        dyn.append((14, name_off[soname]))
    dyn.append((0, 0))
    dyn_size = len(dyn) * 16
    load_end = dyn_off + dyn_size

    shstr = bytearray(b"\0")
    sec_names = [".hash", ".dynsym", ".dynstr", ".rela.dyn", ".data", ".dynamic", ".shstrtab"]
    sec_name_off = {}
    for n in sec_names:
        sec_name_off[n] = len(shstr)
        shstr += n.encode() + b"\0"
    shstr_off = load_end
    shoff = _align(shstr_off + len(shstr), 8)

    out = bytearray(shoff + (len(sec_names) + 1) * _SHDR.size)
    ident = b"\x7fELF" + bytes((2, 1, 1, 0)) + bytes(8)
    _EHDR.pack_into(out, 0, ident, 3, em, 1, 0, ehdr_size, shoff, 0, ehdr_size, _PHDR.size, nph,
                    _SHDR.size, len(sec_names) + 1, len(sec_names))
    ph = ehdr_size
    _PHDR.pack_into(out, ph, _PT_LOAD, 6, 0, 0, 0, load_end, load_end, 0x10000)
    _PHDR.pack_into(out, ph + _PHDR.size, _PT_DYNAMIC, 6, dyn_off, dyn_off, dyn_off, dyn_size, dyn_size, 8)
    _PHDR.pack_into(out, ph + 2 * _PHDR.size, _PT_GNU_STACK, 6, 0, 0, 0, 0, 0, 16)

    # SysV hash table with a single bucket: every name hashes to it and the chain visits
    # every symbol, so the ELF hash function itself is not needed (symbol counts are tiny)
    chain = [0] + [i + 1 if i + 1 < nsyms else 0 for i in range(1, nsyms)]
    struct.pack_into(f"<II I{nsyms}I", out, hash_off, 1, nsyms, 1 if nsyms > 1 else 0, *chain)

    data_shndx = 5
    for i, n in enumerate(names, start=1):
        value, size = sym_at[n]
        # STB_GLOBAL << 4 | STT_OBJECT, STV_DEFAULT
        _SYM.pack_into(out, dynsym_off + i * _SYM.size, name_off[n], 0x11, 0, data_shndx, value, size)
    out[dynstr_off:dynstr_off + len(dynstr)] = dynstr
    rel_type = _RELATIVE[em]
    for i, (where, target) in enumerate(relocs):
        _RELA.pack_into(out, rela_off + i * _RELA.size, where, rel_type, target)
    out[data_off:data_off + len(data)] = data
    for i, (tag, val) in enumerate(dyn):
        struct.pack_into("<qQ", out, dyn_off + 16 * i, tag, val)
    out[shstr_off:shstr_off + len(shstr)] = shstr

    # name, type, flags, addr, offset, size, link, info, align, entsize (A=2, W=1)
    sections = [
        (".hash", _SHT_HASH, 2, hash_off, hash_size, 2, 0, 8, 4),
        (".dynsym", _SHT_DYNSYM, 2, dynsym_off, nsyms * _SYM.size, 3, 1, 8, _SYM.size),
        (".dynstr", _SHT_STRTAB, 2, dynstr_off, len(dynstr), 0, 0, 1, 0),
        (".rela.dyn", _SHT_RELA, 2, rela_off, nrela * _RELA.size, 2, 0, 8, _RELA.size),
        (".data", 1, 3, data_off, len(data), 0, 0, 16, 0),
        (".dynamic", _SHT_DYNAMIC, 3, dyn_off, dyn_size, 3, 0, 8, 16),
        (".shstrtab", _SHT_STRTAB, 0, shstr_off, len(shstr), 0, 0, 1, 0),
    ]
    for i, (n, typ, flags, o, size, link, info, align, ent) in enumerate(sections, start=1):
        addr = o if flags & 2 else 0
        _SHDR.pack_into(out, shoff + i * _SHDR.size, sec_name_off[n], typ, flags, addr, o, size, link,
                        info, align, ent)
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    with open(tmp, "wb") as handle:
        handle.write(out)
    os.replace(tmp, path)
