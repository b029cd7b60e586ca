"""Julia cache files (``.ji`` and the header inside pkgimage ``.so``): the reader, 1.9-1.12 (the
writer, for generated fixtures, is :mod:`depotdelivery.synth.cachefile`)."""
from __future__ import annotations

import io
import mmap
import os
import re
import struct
import uuid as _uuid
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

from depotdelivery.errors import FormatError
from depotdelivery.julia._binary import Cursor, Truncated
from depotdelivery.julia.crc32c import crc32c
from depotdelivery.julia.targetdata import TargetData, parse_target_data

__all__ = [
    "CHECKSUM_TAG",
    "DEFAULT_FLAGS",
    "FORMAT_VERSION",
    "KNOWN_FORMATS",
    "LAYOUTS",
    "MAGIC",
    "CacheFile",
    "CacheFlags",
    "Dependency",
    "ImageHeader",
    "RequiredModule",
    "Requires",
    "SourceText",
    "WorklistModule",
    "file_crc_ok",
    "find_image_header",
    "layout_of",
    "read_cache_file",
    "read_image_header",
]

# src/staticdata_utils.c (v1.9.4 .. v1.12.x): JI_MAGIC "\373jli\r\n\032\n", JI_FORMAT_VERSION 12,
# BOM 0xFEFF written native-endian (FF FE on little-endian hosts).
MAGIC = b"\xfbjli\r\n\x1a\n"
FORMAT_VERSION = 12
KNOWN_FORMATS = (12,)
_BOM_LE = b"\xff\xfe"
# The header's layout depends on the Julia version: 1.11 added fsize + CRC-32C to every
# dependency entry (base/loading.jl parse_cache_header, v1.11.1).
LAYOUTS = ("1.9", "1.10", "1.11", "1.12")
Layout = Literal["1.9", "1.10", "1.11", "1.12"]
_SIZED_LAYOUTS = frozenset({"1.11", "1.12"})
# src/staticdata.c (v1.10.5) jl_create_system_image: the header checksum is the data CRC-32C
# tagged with 0xfafbfcfd in the high word; it is also the module's build_id.hi.
CHECKSUM_TAG = 0xFAFBFCFD << 32
# jl_cache_flags() of a default session: pkgimages, debug 1, check-bounds default, inline, -O2.
DEFAULT_FLAGS = 0xA3

_MODULE = struct.Struct("<QQQQ")  # uuid.hi, uuid.lo, build_id.hi, build_id.lo
_WORKLIST = struct.Struct("<QQQ")  # uuid.hi, uuid.lo, build_id.lo
_DEP_SIZED = struct.Struct("<QIdi")  # fsize, crc32c, mtime, modindex (1.11+)
_DEP_PLAIN = struct.Struct("<di")  # mtime, modindex (1.9/1.10)
_STRING_LIMIT = 4096  # uname/arch/version/branch/commit; real ones are < 100 bytes
_HEADER_PREFIX = 1 << 16  # header-only reads start with 64 KiB and double as needed
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)(?:\.|$)")


def layout_of(julia_version: str) -> str:
    """The header layout (``"1.10"``, ...) of a Julia version (``"1.10.5"``, ``"1.11"``,
    ``"1.12.0-rc1"``); ValueError if unknown."""
    m = _VERSION_RE.match(julia_version)
    if not m or f"{m[1]}.{m[2]}" not in LAYOUTS:
        raise ValueError(f"Julia {julia_version!r} cache layout is not supported (known: {', '.join(LAYOUTS)})")
    return f"{m[1]}.{m[2]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheFlags:
    """The cache-flags byte ``OOICCDDP`` (src/staticdata_utils.c jl_cache_flags, v1.11.1)."""

    use_pkgimages: bool = True
    debug_level: int = 1
    check_bounds: int = 0
    inline: bool = True
    opt_level: int = 2

    @classmethod
    def from_byte(cls, value: int) -> CacheFlags:
        return cls(use_pkgimages=bool(value & 1), debug_level=(value >> 1) & 3,
                   check_bounds=(value >> 3) & 3, inline=bool(value >> 5 & 1), opt_level=(value >> 6) & 3)

    def to_byte(self) -> int:
        return (int(self.use_pkgimages) | (self.debug_level & 3) << 1 | (self.check_bounds & 3) << 3
                | int(self.inline) << 5 | (self.opt_level & 3) << 6)

    def satisfies(self, requested: CacheFlags, *, julia_version: str = "1.11",
                  pkgimages_existing: bool = False) -> bool:
        """Would a session whose jl_cache_flags() are ``requested`` accept a cache with these
        flags? (jl_match_cache_flags, src/staticdata_utils.c). Without pkgimages on either side
        (a ``.ji`` in a ``--pkgimages=no`` session) nothing else is compared. With
        ``--pkgimages=existing`` (1.11+; the session's P bit is then 0) the cache's P bit is
        ignored. All other bits must be equal, except that the cache's optimisation level may
        be higher and, from 1.12, its debug level too (1.10/1.11 compare every bit below
        OPT_LEVEL exactly; the 1.12 sources mask out DEBUG_LEVEL and compare it with >=)."""
        actual, wanted = self.to_byte(), requested.to_byte()
        if not wanted & 1 and not actual & 1:
            return True
        layout = layout_of(julia_version)
        if pkgimages_existing and layout not in ("1.9", "1.10"):
            actual &= ~1
        opt_ok = self.opt_level >= requested.opt_level
        if layout == "1.12":
            mask = ~(3 << 6) & ~(3 << 1) & 0x7F
            return (actual & mask) == (wanted & mask) and opt_ok and self.debug_level >= requested.debug_level
        mask = (1 << 6) - 1
        return (actual & mask) == (wanted & mask) and opt_ok


@dataclass(frozen=True, slots=True, kw_only=True)
class WorklistModule:
    """A module the cache file provides: name, package UUID, ``build_id.lo``."""

    name: str
    uuid: _uuid.UUID | None
    build_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Dependency:
    """A source file the cache depends on. ``path`` is verbatim (``@depot/...`` in 1.11+
    caches); ``mtime`` is -1.0 for ``include`` in 1.11+ (compare size + CRC instead);
    ``fsize``/``crc32c`` are None in the 1.9/1.10 layouts. ``modindex`` is the 1-based
    worklist module that included it (0: none), ``submodules`` the module path below it."""

    path: str
    mtime: float
    fsize: int | None = None
    crc32c: int | None = None
    modindex: int = 1
    submodules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Requires:
    """A ``requires`` record: module ``modindex``/``submodules`` loaded package ``uuid``/``name``."""

    name: str
    uuid: _uuid.UUID | None
    modindex: int = 1
    submodules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RequiredModule:
    """A module that must be loaded with exactly this 128-bit build id (Core, Base, stdlibs
    from the sysimage, and every package dependency)."""

    name: str
    uuid: _uuid.UUID | None
    build_id: int

    @property
    def build_id_hi(self) -> int:
        return self.build_id >> 64

    @property
    def build_id_lo(self) -> int:
        return self.build_id & 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceText:
    """Source text embedded in the cache (absolute path at build time, file bytes)."""

    path: str
    text: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheFile:
    """A parsed ``.ji`` file. ``srctextpos`` and ``file_crc`` are what the file says; the
    writer computes them (values given to it are ignored). ``payload`` holds the bytes between
    the clone-target block and the source text (the serialized data of a ``.ji`` without
    native code; empty for a pkgimage's ``.ji``). ``header_only`` files were read without
    source texts and payload. ``layout`` is derived from ``julia_version`` when left empty."""

    format_version: int = FORMAT_VERSION
    layout: str = ""
    pointer_size: int = 8
    uname: str = "Linux"
    arch: str = "x86_64"
    julia_version: str
    git_branch: str = ""
    git_commit: str = ""
    pkgimage: int = 0
    checksum: int
    datastartpos: int = 0
    dataendpos: int = 0
    flags: int = DEFAULT_FLAGS
    worklist: tuple[WorklistModule, ...]
    dependencies: tuple[Dependency, ...] = ()
    requires: tuple[Requires, ...] = ()
    preferences: tuple[str, ...] = ()
    prefs_hash: int = 0
    srctextpos: int = 0
    required_modules: tuple[RequiredModule, ...] = ()
    clone_targets: bytes = b""
    payload: bytes = b""
    source_texts: tuple[SourceText, ...] = ()
    so_crc: int = 0
    file_crc: int = 0
    header_only: bool = False
    crc_ok: bool | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        derived = layout_of(self.julia_version)
        if not self.layout:
            object.__setattr__(self, "layout", derived)
        elif self.layout != derived:
            raise ValueError(f"layout {self.layout!r} does not match Julia {self.julia_version}")

    @property
    def cache_flags(self) -> CacheFlags:
        return CacheFlags.from_byte(self.flags)

    @property
    def targets(self) -> TargetData:
        """The clone targets of the pkgimage (empty for a ``.ji`` without native code)."""
        if not self.clone_targets:
            return TargetData(())
        return parse_target_data(self.clone_targets, where="clone targets")

    def build_id(self, module: WorklistModule | None = None) -> int:
        """The 128-bit build id Julia gives a worklist module (default: the package's top
        module, the last one): ``checksum << 64 | build_id.lo`` (base/loading.jl)."""
        mod = module if module is not None else self.worklist[-1]
        return (self.checksum << 64) | mod.build_id

    @property
    def has_native_code(self) -> bool:
        """A pkgimage's ``.ji``: non-empty clone targets mean a ``.so`` companion must exist
        (base/loading.jl stale_cachefile, v1.10.5)."""
        return bool(self.clone_targets)

    @property
    def includes_mtime(self) -> bool:
        """True for the 1.9/1.10 layouts, which validate sources by path + mtime only."""
        return self.layout not in _SIZED_LAYOUTS


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageHeader:
    """The header at the start of the serialized data inside a pkgimage ``.so``
    (write_header with pkgimage=1, the flags byte, write_mod_list)."""

    format_version: int = FORMAT_VERSION
    pointer_size: int = 8
    uname: str = "Linux"
    arch: str = "x86_64"
    julia_version: str
    git_branch: str = ""
    git_commit: str = ""
    pkgimage: int = 1
    checksum: int
    datastartpos: int = 0
    dataendpos: int = 0
    flags: int = DEFAULT_FLAGS
    required_modules: tuple[RequiredModule, ...] = ()



# -- reading -----------------------------------------------------------------------------------

def _name(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _uuid_of(hi: int, lo: int) -> _uuid.UUID | None:
    value = hi << 64 | lo
    return _uuid.UUID(int=value) if value else None


def _read_preamble(cur: Cursor) -> dict[str, object]:
    start = cur.pos
    magic = cur.take(len(MAGIC), "the cache-file magic")
    if magic != MAGIC:
        raise cur.error(f"expected the cache-file magic {MAGIC!r}, found {magic!r}", start)
    at = cur.pos
    version = cur.u16("u16 format version")
    if version not in KNOWN_FORMATS:
        raise cur.error(f"cache format {version} is not supported (known: "
                        f"{', '.join(map(str, KNOWN_FORMATS))})", at)
    at = cur.pos
    bom = cur.take(2, "byte-order mark")
    if bom != _BOM_LE:
        raise cur.error(f"expected byte-order mark FF FE (little-endian), found {bom.hex(' ').upper()}", at)
    at = cur.pos
    ptr = cur.u8("u8 pointer size")
    if ptr not in (4, 8):
        raise cur.error(f"expected pointer size 4 or 8, found {ptr}", at)
    strings = {}
    for key in ("uname", "arch", "julia_version", "git_branch", "git_commit"):
        strings[key] = _name(cur.cstring(key.replace("_", " "), _STRING_LIMIT))
    at = cur.pos
    pkgimage = cur.u8("u8 pkgimage flag")
    return dict(format_version=version, pointer_size=ptr, **strings, pkgimage=pkgimage,
                checksum=cur.u64("u64 checksum"), datastartpos=cur.u64("u64 datastartpos"),
                dataendpos=cur.u64("u64 dataendpos"), _pkgimage_at=at)


def _layout(cur: Cursor, julia_version: str) -> str:
    try:
        return layout_of(julia_version)
    except ValueError as exc:
        raise cur.error(f"{exc}") from None


def _read_modules(cur: Cursor, what: str) -> tuple[RequiredModule, ...]:
    mods = []
    while n := cur.length(f"{what} name"):
        name = _name(cur.take(n, f"{what} name"))
        uhi, ulo, bhi, blo = cur.fields(_MODULE, "u64 uuid.hi, uuid.lo, build_id.hi, build_id.lo")
        mods.append(RequiredModule(name=name, uuid=_uuid_of(uhi, ulo), build_id=bhi << 64 | blo))
    return tuple(mods)


def _read_worklist(cur: Cursor) -> tuple[WorklistModule, ...]:
    mods = []
    while n := cur.length("worklist module name"):
        name = _name(cur.take(n, "worklist module name"))
        uhi, ulo, blo = cur.fields(_WORKLIST, "u64 uuid.hi, uuid.lo, build_id.lo")
        mods.append(WorklistModule(name=name, uuid=_uuid_of(uhi, ulo), build_id=blo))
    return tuple(mods)


def _read_dependencies(cur: Cursor, layout: str, nworklist: int
                       ) -> tuple[tuple[Dependency, ...], tuple[Requires, ...]]:
    deps: list[Dependency] = []
    reqs: list[Requires] = []
    sized = layout in _SIZED_LAYOUTS
    while n := cur.length("dependency path"):
        at = cur.pos
        raw = cur.take(n, "dependency path")
        fsize = crc = None
        if sized:
            fsize, crc, mtime, modindex = cur.fields(_DEP_SIZED, "u64 fsize, u32 CRC-32C, f64 mtime, i32 module index")
        else:
            mtime, modindex = cur.fields(_DEP_PLAIN, "f64 mtime, i32 module index")
        mat = cur.pos - 4
        if not 0 <= modindex <= nworklist:
            raise cur.error(f"module index {modindex} is outside the worklist (0..{nworklist})", mat)
        subs = []
        if modindex:
            while m := cur.length("submodule name"):
                subs.append(_name(cur.take(m, "submodule name")))
        if raw[:1] == b"\0":
            # base/loading.jl binpack: NUL, UInt128 uuid (little-endian), package name
            if len(raw) < 17:
                raise cur.error(f"requires record of {len(raw)} bytes is shorter than 17", at)
            reqs.append(Requires(name=_name(raw[17:]),
                                 uuid=_uuid.UUID(int=int.from_bytes(raw[1:17], "little")) if any(raw[1:17]) else None,
                                 modindex=modindex, submodules=tuple(subs)))
        else:
            deps.append(Dependency(path=_name(raw), mtime=mtime, fsize=fsize, crc32c=crc,
                                   modindex=modindex, submodules=tuple(subs)))
    return tuple(deps), tuple(reqs)


def _read_header(cur: Cursor) -> dict[str, object]:
    """Everything from the magic to the end of the clone-target block."""
    pre = _read_preamble(cur)
    pkgimage_at = pre.pop("_pkgimage_at")
    layout = _layout(cur, str(pre["julia_version"]))
    if pre["pkgimage"] != 0:
        # base/loading.jl isvalid_cache_header: a .ji header must say pkgimage = 0
        raise cur.error(f"expected pkgimage flag 0 in a .ji header, found {pre['pkgimage']}", int(pkgimage_at))  # type: ignore[call-overload]
    flags = cur.u8("u8 cache flags")
    worklist = _read_worklist(cur)
    if not worklist:
        raise cur.error("expected at least one worklist module, found none")
    tot_at = cur.pos
    totbytes = cur.i64("i64 total bytes of the dependency list")
    deps, reqs = _read_dependencies(cur, layout, len(worklist))
    prefs = []
    while n := cur.length("preference name"):
        prefs.append(_name(cur.take(n, "preference name")))
    prefs_hash = cur.u64("u64 preferences hash")
    srctextpos = cur.i64("i64 srctextpos")
    if totbytes != cur.pos - 8 - tot_at:
        # loading.jl asserts totbytes == 0 after subtracting every field read
        raise cur.error(f"total bytes {totbytes} of the dependency list disagree with its "
                        f"length {cur.pos - 8 - tot_at}", tot_at)
    required = _read_modules(cur, "required module")
    nclone = cur.length("clone-target data")
    clone = cur.take(nclone, "clone-target data")
    return dict(pre, layout=layout, flags=flags, worklist=worklist, dependencies=deps, requires=reqs,
                preferences=tuple(prefs), prefs_hash=prefs_hash, srctextpos=srctextpos,
                required_modules=required, clone_targets=clone)


def _read_sources(cur: Cursor) -> tuple[SourceText, ...]:
    texts = []
    while n := cur.length("source-text path"):
        path = _name(cur.take(n, "source-text path"))
        at = cur.pos
        size = cur.u64("u64 source-text length")
        if size > cur.remaining:
            raise cur.error(f"source-text length {size} is outside the {cur.remaining} bytes left", at)
        texts.append(SourceText(path=path, text=cur.take(size, "source text")))
    return tuple(texts)


def _parse_full(buf: bytes | memoryview, where: str) -> CacheFile:
    cur = Cursor(buf, where)
    fields = _read_header(cur)
    size = len(buf)
    body_end = size - 8
    if body_end < cur.pos:
        raise cur.error(f"expected source text and an 8-byte trailer, only {size - cur.pos} bytes left")
    srctextpos = int(fields["srctextpos"])  # type: ignore[call-overload]
    if not cur.pos <= srctextpos <= body_end - 4:
        raise cur.error(f"srctextpos {srctextpos} is outside {cur.pos}..{body_end - 4}")
    for key in ("datastartpos", "dataendpos"):
        pos = int(fields[key])  # type: ignore[call-overload]
        if pos and not cur.pos <= pos <= srctextpos:
            raise cur.error(f"{key} {pos} is outside the data region {cur.pos}..{srctextpos}")
    if int(fields["dataendpos"]) < int(fields["datastartpos"]):  # type: ignore[call-overload]
        raise cur.error(f"dataendpos {fields['dataendpos']} is before datastartpos {fields['datastartpos']}")
    payload = bytes(buf[cur.pos:srctextpos])
    src = Cursor(buf, where, srctextpos, body_end)
    texts = _read_sources(src)
    if src.remaining:
        raise src.error(f"expected the 8-byte trailer, found {src.remaining} more bytes")
    so_crc, file_crc = struct.unpack_from("<II", buf, body_end)
    ok = crc32c(memoryview(buf)[: size - 4]) == file_crc
    return CacheFile(**fields, payload=payload, source_texts=texts, so_crc=so_crc,  # type: ignore[arg-type]
                     file_crc=file_crc, crc_ok=ok)


def _parse_header_only(handle: BinaryIO, size: int, where: str) -> CacheFile:
    want = _HEADER_PREFIX
    while True:
        handle.seek(0)
        prefix = handle.read(min(want, size))
        cur = Cursor(prefix, where)
        try:
            fields = _read_header(cur)
        except Truncated:
            # only the prefix was too short: read more (unless the file shrank under us)
            if len(prefix) == min(want, size) < size:
                want *= 2
                continue
            raise
        break
    if size - 8 < cur.pos:
        raise cur.error(f"expected source text and an 8-byte trailer, only {size - cur.pos} bytes left")
    handle.seek(size - 8)
    so_crc, file_crc = struct.unpack("<II", handle.read(8))
    return CacheFile(**fields, so_crc=so_crc, file_crc=file_crc, header_only=True)  # type: ignore[arg-type]


def read_cache_file(source: str | os.PathLike[str] | bytes | bytearray | memoryview, *,
                    header_only: bool = False, where: str | None = None) -> CacheFile:
    """Parse a ``.ji`` file from a path or bytes. ``header_only`` reads just the
    header and the 8-byte trailer: the fast path for scanning many files (no source texts,
    no payload, ``crc_ok`` None). Raises FormatError naming the file, offset and expectation
    for anything malformed, truncated or of an unknown format."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if header_only:
            return _parse_header_only(io.BytesIO(data), len(data), where or "<cache file bytes>")
        return _parse_full(data, where or "<cache file bytes>")
    name = where or os.fspath(source)
    try:
        with open(source, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if header_only:
                return _parse_header_only(handle, size, name)
            data = handle.read()
    except OSError as exc:
        raise FormatError(f"{name}: cannot read cache file: {exc.strerror or exc}") from None
    return _parse_full(data, name)


def read_image_header(buf: bytes | memoryview | mmap.mmap, *, where: str = "<image header>",
                      start: int = 0) -> ImageHeader:
    """Parse the header at the start of a pkgimage's serialized data, which begins at
    ``buf[start]`` (offsets in errors are offsets in ``buf``)."""
    cur = Cursor(buf, where, start)
    pre = _read_preamble(cur)
    pre.pop("_pkgimage_at")
    _layout(cur, str(pre["julia_version"]))
    flags = cur.u8("u8 cache flags")
    return ImageHeader(**pre, flags=flags, required_modules=_read_modules(cur, "required module"))  # type: ignore[arg-type]


def find_image_header(path: str | os.PathLike[str]) -> ImageHeader:
    """The header of a pkgimage ``.so``: its serialized data (``jl_system_image_data``) begins
    with the cache-file magic and a header saying pkgimage = 1 (write_header(ff, 1) in
    src/staticdata.c). Other copies of the magic (e.g. a ``.ji`` header with pkgimage = 0)
    are skipped; the first valid pkgimage header wins."""
    name = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            if not os.fstat(handle.fileno()).st_size:
                return _first_pkgimage_header(b"", name)  # mmap refuses an empty file
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _first_pkgimage_header(data, name)
    except OSError as exc:
        raise FormatError(f"{name}: cannot read image: {exc.strerror or exc}") from None


def _first_pkgimage_header(data: bytes | mmap.mmap, name: str) -> ImageHeader:
    """The first valid header with pkgimage = 1 at a copy of the magic in ``data``; else the
    first copy's error, or that there is none."""
    first_error: FormatError | None = None
    at = data.find(MAGIC)
    while at >= 0:
        try:
            header = read_image_header(data, where=name, start=at)
        except FormatError as exc:
            first_error = first_error or exc
        else:
            if header.pkgimage == 1:
                return header
        at = data.find(MAGIC, at + 1)
    if first_error is not None:
        raise first_error
    raise FormatError(f"{name}: offset 0: expected an embedded cache header with pkgimage = 1 "
                      f"(magic {MAGIC!r}), found none")


def file_crc_ok(path: str | os.PathLike[str]) -> bool:
    """Julia's isvalid_file_crc: the last 4 bytes are the CRC-32C of everything before them."""
    from depotdelivery.julia.crc32c import crc32c_file

    size = os.path.getsize(path)
    if size < 4:
        return False
    with open(path, "rb") as handle:
        handle.seek(size - 4)
        stored = struct.unpack("<I", handle.read(4))[0]
    return crc32c_file(path, length=size - 4) == stored
