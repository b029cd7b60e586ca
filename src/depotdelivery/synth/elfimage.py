"""A minimal ELF64 shared object exporting ``jl_image_pointers`` (slot 4 -> a clone-target
blob) and data symbols, for generated fixtures: what :mod:`depotdelivery.julia.elfimage` reads.
The ELF layout (structs, section and segment types, relocation types) is the reader's: the
writer takes its constants from there, so the two cannot drift apart."""
from __future__ import annotations

import os
import struct
from collections.abc import Mapping

from depotdelivery.julia.elfimage import (  # the format's layout, defined once beside the reader
    _EHDR,
    _EM_BY_NAME,
    _NSLOTS,
    _PHDR,
    _PT_DYNAMIC,
    _PT_GNU_STACK,
    _PT_LOAD,
    _RELA,
    _RELATIVE,
    _SHDR,
    _SHT_DYNAMIC,
    _SHT_DYNSYM,
    _SHT_HASH,
    _SHT_RELA,
    _SHT_STRTAB,
    _SYM,
    _TARGET_SLOT,
    IMAGE_POINTERS,
)

__all__ = ["write_image"]


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

    dynstr, name_off = _strtab(names + ([soname] if soname else []))
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

    data, sym_at, relocs = _data(data_off, target_blob, symbols, zero_slots=zero_slots)

    dyn_off = _align(data_off + len(data), 8)
    dyn = [(4, hash_off), (5, dynstr_off), (6, dynsym_off), (10, len(dynstr)), (11, _SYM.size),
           (7, rela_off), (8, nrela * _RELA.size), (9, _RELA.size), (0x6FFFFFF9, nrela)]
    if soname:
        dyn.append((14, name_off[soname]))
    dyn.append((0, 0))
    dyn_size = len(dyn) * 16
    load_end = dyn_off + dyn_size

    sec_names = [".hash", ".dynsym", ".dynstr", ".rela.dyn", ".data", ".dynamic", ".shstrtab"]
    shstr, sec_name_off = _strtab(sec_names)
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

    _pack_symbols(out, hash_off, dynsym_off, [(name_off[n], *sym_at[n]) for n in names])
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
    _replace(path, bytes(out))


def _replace(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` as ``path`` in one rename: a reader never maps a half-written image."""
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _pack_symbols(out: bytearray, hash_off: int, dynsym_off: int, symbols: list[tuple[int, int, int]]) -> None:
    """The SysV hash table and .dynsym (entry 0 is the null symbol) for ``symbols``: (name
    offset, address, size), all global data objects in .data (section 5)."""
    nsyms = len(symbols) + 1
    # one bucket: every name hashes to it and the chain visits every symbol, so the ELF hash
    # function itself is not needed (symbol counts are tiny)
    chain = [0] + [i + 1 if i + 1 < nsyms else 0 for i in range(1, nsyms)]
    struct.pack_into(f"<II I{nsyms}I", out, hash_off, 1, nsyms, 1 if nsyms > 1 else 0, *chain)
    for i, (name, value, size) in enumerate(symbols, start=1):
        # STB_GLOBAL << 4 | STT_OBJECT, STV_DEFAULT
        _SYM.pack_into(out, dynsym_off + i * _SYM.size, name, 0x11, 0, 5, value, size)


def _strtab(names: list[str]) -> tuple[bytearray, dict[str, int]]:
    """An ELF string table (a NUL first, then each name NUL-terminated) and each name's offset."""
    table, offsets = bytearray(b"\0"), {}
    for n in names:
        offsets[n] = len(table)
        table += n.encode() + b"\0"
    return table, offsets


def _data(data_off: int, target_blob: bytes, symbols: dict[str, bytes], *,
          zero_slots: bool) -> tuple[bytearray, dict[str, tuple[int, int]], list[tuple[int, int]]]:
    """.data: jl_image_pointers, the image header, the target blob, then the extra symbols
    (16-aligned). Each symbol's (address, size), and the (where, target) relocations of the
    two slots that point into it."""
    data = bytearray(8 * _NSLOTS)
    hdr_at = data_off + len(data)
    data += struct.pack("<IIII", 1, 0, 0, 0)
    blob_at = data_off + len(data)
    data += target_blob
    sym_at = {IMAGE_POINTERS: (data_off, 8 * _NSLOTS)}
    for n, value in symbols.items():
        if n == IMAGE_POINTERS:
            continue
        data += bytes(_align(len(data), 16) - len(data))
        sym_at[n] = (data_off + len(data), len(value))
        data += value
    if not zero_slots:
        struct.pack_into("<Q", data, 0, hdr_at)
        struct.pack_into("<Q", data, 8 * _TARGET_SLOT, blob_at)
    return data, sym_at, [(data_off + 0, hdr_at), (data_off + 8 * _TARGET_SLOT, blob_at)]
