"""Listings (``listings/<tree>.jsonl``): one record per tree entry, parsed with path-safety checks;
large trees split into content-defined chunks under an index."""
from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from json.encoder import encode_basestring as _quote

from depotdelivery.errors import FormatError, IntegrityError
from depotdelivery.store import fastjson
from depotdelivery.store.canonical import canonical_json
from depotdelivery.store.fields import Fields
from depotdelivery.store.hashing import hash_bytes

__all__ = [
    "CHUNK_ABOVE",
    "ListingEntry",
    "encode_listing",
    "encode_listing_files",
    "is_chunk_index",
    "parse_chunk_index",
    "parse_listing",
    "resolve_inside",
]

_TYPES = ("file", "dir", "symlink")
_FIELDS = {
    "file": frozenset({"path", "type", "mode", "mtime_ns", "size", "blake3"}),
    "dir": frozenset({"path", "type", "mode", "mtime_ns"}),
    "symlink": frozenset({"path", "type", "mtime_ns", "target"}),
}
# Linux SYMLOOP_MAX: the kernel gives up after 40 links in one lookup (path_resolution(7)).
_MAX_HOPS = 40

# A tree with more entries than this is stored as chunks of its listing plus an index, so a
# release that changes one package adds a few chunks (~50 KB each), not a new multi-megabyte
# listing (~200 bytes per file). Boundaries depend on the paths only (content-defined, like
# CVMFS's file chunking): after an entry whose CRC-32 of the path has its low 8 bits zero
# (256 entries on average), or after _CHUNK_MAX entries.
CHUNK_ABOVE = 1024
_CHUNK_MASK = 0xFF
_CHUNK_MAX = 1024
_INDEX_PREFIX = b'{"chunk":'


@dataclass(frozen=True, slots=True, kw_only=True)
class ListingEntry:
    """One entry of a tree: a regular file, a directory or a symlink (target inside the tree)."""

    path: str
    type: str
    mtime_ns: int
    mode: int = 0
    size: int = 0
    blake3: str | None = None
    target: str | None = None

    @classmethod
    def from_dict(cls, obj: object, where: str) -> ListingEntry:
        quick = _quick_file(obj)
        if quick is not None:
            return quick
        f = Fields(obj, where)
        kind = f.str("type")
        if kind not in _TYPES:
            raise f.error("type", f"expected one of {', '.join(_TYPES)}, got {kind!r}")
        f.only(_FIELDS[kind])
        path = f.str("path")
        _check_path(path, f"{where}: field path")
        mtime_ns = f.int("mtime_ns")
        if kind == "symlink":
            target = f.str("target")
            if not target or target.startswith("/") or "\0" in target:
                raise f.error("target", f"symlink {path!r} has an absolute or empty target {target!r}")
            return cls(path=path, type=kind, mtime_ns=mtime_ns, target=target)
        mode = f.int("mode", minimum=0)
        if mode > 0o7777:
            raise f.error("mode", f"permission bits only (<= 0o7777), got {oct(mode)}")
        if kind == "dir":
            return cls(path=path, type=kind, mtime_ns=mtime_ns, mode=mode)
        return cls(path=path, type=kind, mtime_ns=mtime_ns, mode=mode,
                   size=f.int("size", minimum=0), blake3=f.hex64("blake3"))

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"path": self.path, "type": self.type, "mtime_ns": self.mtime_ns}
        if self.type == "symlink":
            d["target"] = self.target
        else:
            d["mode"] = self.mode
        if self.type == "file":
            d["size"] = self.size
            d["blake3"] = self.blake3
        return d


_HEX = frozenset("0123456789abcdef")


def _quick_file(obj: object) -> ListingEntry | None:
    """The entry of a well-formed ``file`` line without :class:`Fields` (most lines of a
    listing; parsing 50k of them was most of a copy-mode hydration's CPU), else None: the
    general path then parses it, or names what is wrong."""
    if type(obj) is not dict or obj.keys() != _FIELDS["file"] or obj["type"] != "file":
        return None
    path, mode, mtime_ns, size, digest = obj["path"], obj["mode"], obj["mtime_ns"], obj["size"], obj["blake3"]
    if not (type(path) is str and type(mode) is int and type(mtime_ns) is int and type(size) is int
            and type(digest) is str and 0 <= mode <= 0o7777 and size >= 0 and len(digest) == 64
            and _HEX.issuperset(digest) and path.isascii() and path and path[0] != "/" and "\0" not in path):
        return None
    if "" in (parts := path.split("/")) or "." in parts or ".." in parts:
        return None
    return ListingEntry(path=path, type="file", mtime_ns=mtime_ns, mode=mode, size=size, blake3=digest)


def encode_listing(entries: Iterable[ListingEntry]) -> bytes:
    """The listing bytes: canonical JSON lines sorted by path; its BLAKE3 is the tree hash."""
    return "".join(_line(e) for e in sorted(entries, key=_sort_key)).encode("utf-8")


def encode_listing_files(entries: Iterable[ListingEntry]) -> tuple[str, dict[str, bytes]]:
    """``(tree, {hash: bytes})``: the files ``listings/<hash>.jsonl`` that store a tree.

    Up to :data:`CHUNK_ABOVE` entries: one listing, ``tree`` its hash. Above: chunks (each a
    listing fragment, same line format) and an index, one canonical line per chunk,
    ``{"chunk": "<blake3>", "entries": n}`` in order; ``tree`` is the index's hash.
    """
    ordered = sorted(entries, key=_sort_key)
    if len(ordered) <= CHUNK_ABOVE:
        data = "".join(_line(e) for e in ordered).encode("utf-8")
        h = hash_bytes(data)
        return h, {h: data}
    chunks: list[list[str]] = [[]]
    for e in ordered:
        chunks[-1].append(_line(e))
        if len(chunks[-1]) >= _CHUNK_MAX or zlib.crc32(e.path.encode("utf-8")) & _CHUNK_MASK == 0:
            chunks.append([])
    files: dict[str, bytes] = {}
    index = []
    for lines in filter(None, chunks):
        data = "".join(lines).encode("utf-8")
        h = hash_bytes(data)
        files[h] = data
        index.append(f'{{"chunk":"{h}","entries":{len(lines)}}}\n')
    raw = "".join(index).encode("utf-8")
    tree = hash_bytes(raw)
    files[tree] = raw
    return tree, files


def is_chunk_index(data: bytes) -> bool:
    """Whether listing bytes are a chunk index (entry lines never start with ``"chunk"``)."""
    return data.startswith(_INDEX_PREFIX)


def parse_chunk_index(data: bytes, *, where: str) -> tuple[tuple[str, int], ...]:
    """The ``(chunk hash, entries)`` pairs of a chunk index, in order."""
    if not data.endswith(b"\n"):
        raise FormatError(f"{where}: truncated (no final newline)")
    out = []
    for lineno, line in enumerate(data.split(b"\n")[:-1], start=1):
        at = f"{where}:{lineno}"
        try:
            obj = json.loads(line.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # also UnicodeDecodeError, >4300-digit integers
            raise FormatError(f"{at}: unparseable chunk index line ({type(exc).__name__})") from None
        f = Fields(obj, at)
        f.only(frozenset({"chunk", "entries"}))
        chunk, n = f.hex64("chunk"), f.int("entries", minimum=1)
        if canonical_json(obj) != line:
            raise FormatError(f"{at}: not canonical JSON")
        out.append((chunk, n))
    if not out:
        raise FormatError(f"{where}: empty chunk index")
    return tuple(out)


def _line(e: ListingEntry) -> str:
    """``canonical_json(e.to_dict())`` + newline, written out directly: a re-publish of 50k
    files encodes 50k lines, and json.dumps per line is most of that time. Keys in sorted
    order; strings escaped by json's own encoder (test_store_formats checks the equality)."""
    path = _quote(e.path)
    if e.type == "file":
        return (f'{{"blake3":"{e.blake3}","mode":{e.mode},"mtime_ns":{e.mtime_ns},"path":{path},'
                f'"size":{e.size},"type":"file"}}\n')
    if e.type == "dir":
        return f'{{"mode":{e.mode},"mtime_ns":{e.mtime_ns},"path":{path},"type":"dir"}}\n'
    return f'{{"mtime_ns":{e.mtime_ns},"path":{path},"target":{_quote(e.target or "")},"type":"symlink"}}\n'


def _sort_key(e: ListingEntry) -> str:
    return e.path


def parse_listing(data: bytes, *, where: str, tree: str | None = None) -> tuple[ListingEntry, ...]:
    """Parse listing bytes; check the tree hash (when given) and every path-safety rule.

    Rules: UTF-8; each line canonical JSON; paths relative, ``/``-separated, without ``.``,
    ``..`` or empty components; strictly sorted (so no duplicates); every parent listed as a
    directory (nothing below a symlink); every symlink resolves inside the tree.
    """
    if tree is not None:
        actual = hash_bytes(data)
        if actual != tree:
            raise IntegrityError(f"{where}: listing hash {actual} does not match the tree {tree} it is filed under")
    if data and not data.endswith(b"\n"):
        raise FormatError(f"{where}: truncated (no final newline)")
    quick = _parse_quick(data)
    return quick if quick is not None else _parse_lines(data, where)


def _parse_lines(data: bytes, where: str) -> tuple[ListingEntry, ...]:
    """Line by line, naming the first line that breaks a rule."""
    entries: list[ListingEntry] = []
    kinds: dict[str, str] = {}
    for lineno, line in enumerate(data.split(b"\n")[:-1] if data else [], start=1):
        at = f"{where}:{lineno}"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"{at}: not UTF-8 at byte {exc.start} of the line") from None
        try:
            obj = fastjson.loads(text)
        except json.JSONDecodeError as exc:
            raise FormatError(f"{at}: invalid JSON at column {exc.colno}: {exc.msg}") from None
        except (ValueError, RecursionError) as exc:  # a >4300-digit integer, hostile nesting depth
            raise FormatError(f"{at}: unparseable JSON ({type(exc).__name__})") from None
        entry = ListingEntry.from_dict(obj, at)
        try:
            # the entry's own line (test_store_formats: equal to canonical_json of its fields)
            # and from_dict allows no other field: the same verdict as canonical_json(obj)
            canonical = _line(entry).encode("utf-8")[:-1]
        except UnicodeEncodeError as exc:  # a lone surrogate from a \ud800 escape
            raise FormatError(f"{at}: {exc}") from None
        if canonical != line:
            raise FormatError(f"{at}: not canonical JSON")
        if entries:
            prev = entries[-1].path
            if entry.path == prev:
                raise FormatError(f"{at}: duplicate path {entry.path!r}")
            if entry.path < prev:
                raise FormatError(f"{at}: path {entry.path!r} is not sorted after {prev!r}")
        parent = entry.path.rpartition("/")[0]
        if parent and kinds.get(parent) != "dir":
            raise FormatError(f"{at}: {entry.path!r} has no directory entry for its parent {parent!r}")
        kinds[entry.path] = entry.type
        entries.append(entry)
    _check_links(entries, where)
    return tuple(entries)


def _check_links(entries: list[ListingEntry], where: str) -> None:
    links = {e.path: e.target for e in entries if e.type == "symlink"}
    for e in entries:
        if e.type == "symlink" and not resolve_inside(e.path, e.target or "", links):
            raise FormatError(f"{where}: symlink {e.path!r} -> {e.target!r} leaves the tree")


def _parse_quick(data: bytes) -> tuple[ListingEntry, ...] | None:
    """The entries of a well-formed listing in one pass of the C JSON scanner over all its
    lines (a line-by-line parse of 50k lines was most of a copy-mode hydration's CPU), or None
    when anything is off: :func:`parse_listing`'s line-by-line parse then names the fault.
    Every entry's canonical line must equal its line exactly, so the bulk parse (lines joined
    by ``,`` in one array; JSON strings hold no raw newline) accepts what the line parse does,
    and the same rules (sorted, parents listed as directories, symlinks inside) are checked."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = text.split("\n")[:-1] if text else []
    try:
        objs = fastjson.loads(f"[{','.join(lines)}]")
    except (ValueError, RecursionError):  # also JSONDecodeError
        return None
    if type(objs) is not list or len(objs) != len(lines):
        return None
    entries: list[ListingEntry] = []
    kinds: dict[str, str] = {}
    prev = ""
    for obj, line in zip(objs, lines):
        try:
            entry = ListingEntry.from_dict(obj, "")
        except FormatError:
            return None
        path = entry.path
        parent = path.rpartition("/")[0]
        if _line(entry) != line + "\n" or path <= prev or (parent and kinds.get(parent) != "dir"):
            return None
        kinds[path] = entry.type
        prev = path
        entries.append(entry)
    try:
        _check_links(entries, "")
    except FormatError:
        return None
    return tuple(entries)


def _check_path(path: str, where: str) -> None:
    if not path or path.startswith("/") or "\0" in path:
        raise FormatError(f"{where}: unsafe path {path!r} (empty, absolute or NUL)")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise FormatError(f"{where}: unsafe path {path!r} (empty, '.' or '..' component)")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError(f"{where}: path {path!r} is not valid UTF-8") from None


def resolve_inside(link: str, target: str, links: dict[str, str | None]) -> bool:
    """Whether symlink ``link`` -> ``target`` resolves inside the tree.

    Resolution follows the kernel's, component by component, through the tree's other
    symlinks (``links``: path -> target): a lexical ``normpath`` is not enough, because
    ``a -> b/..`` escapes when ``b -> .``. Dangling targets inside the tree are allowed;
    absolute targets, a ``..`` above the root and loops are not.
    """
    stack = link.split("/")[:-1]
    pending = target.split("/")
    hops = 0
    if target.startswith("/"):
        return False
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return False
            stack.pop()
            continue
        here = "/".join([*stack, part])
        sub = links.get(here)
        if sub is None:
            stack.append(part)
            continue
        hops += 1
        if hops > _MAX_HOPS or sub.startswith("/"):
            return False
        pending[:0] = sub.split("/")
    return True
