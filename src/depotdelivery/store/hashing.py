"""BLAKE3 of files (multi-threaded for large ones), hash-while-copy, and the publisher's stat cache."""
from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import BinaryIO

import blake3

__all__ = [
    "LARGE_FILE",
    "FileChangedError",
    "HashCache",
    "copy_with_hash",
    "hash_bytes",
    "hash_file",
]

# Above this size the BLAKE3 tree is hashed on all cores (blake3's ``max_threads``); below it
# the thread start-up costs more than it saves (blake3-py README: "a few hundred KiB").
LARGE_FILE = 1 << 20
_CHUNK = 1 << 20


class FileChangedError(OSError):
    """A file's size or mtime changed while it was being read (a concurrent writer)."""


def hash_bytes(data: bytes) -> str:
    """BLAKE3 hex digest of ``data``."""
    return blake3.blake3(data).hexdigest()


def _hasher(size: int) -> "blake3.blake3":
    if size >= LARGE_FILE:
        return blake3.blake3(max_threads=blake3.blake3.AUTO)
    return blake3.blake3()


def hash_file(path: str | os.PathLike[str], st: os.stat_result | None = None) -> str:
    """BLAKE3 hex digest of the file at ``path``.

    When ``st`` (the ``lstat`` taken before) is given, the file is ``fstat``-ed again after
    reading and :class:`FileChangedError` is raised if size, mtime or ctime moved: a file being
    written while we hash it must never be published with a hash of half its bytes.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NOATIME", 0))
    try:
        before = os.fstat(fd)
        if st is not None and _changed(st, before):
            raise FileChangedError(f"{os.fspath(path)} changed while it was being hashed")
        if before.st_size >= LARGE_FILE:
            h = _hasher(before.st_size)
            # mmap through the descriptor we fstat-ed, not the name (it could be replaced)
            h.update_mmap(f"/proc/self/fd/{fd}")
        else:
            h = blake3.blake3(os.read(fd, before.st_size + 1) if before.st_size else b"")
            # read() returning more than st_size means the file grew: caught by fstat below
        after = os.fstat(fd)
        if _changed(before, after):
            raise FileChangedError(f"{os.fspath(path)} changed while it was being hashed")
        return h.hexdigest()
    finally:
        os.close(fd)


def _changed(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_size, a.st_mtime_ns, a.st_ctime_ns) != (b.st_size, b.st_mtime_ns, b.st_ctime_ns)


def copy_with_hash(
    src: str | os.PathLike[str], dst: str | os.PathLike[str] | BinaryIO, *, fsync: bool = False
) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` (a path, created exclusively, or an open binary file) while
    hashing the bytes read; return ``(blake3 hex, size)``.

    One read of the source serves both the copy and the hash (installer's
    ``copyfileobj_with_hashing``), so a node's ``copy`` hydration verifies what it wrote.
    """
    with open(src, "rb") as fin:
        size = os.fstat(fin.fileno()).st_size
        h = _hasher(size)
        if isinstance(dst, (str, os.PathLike)):
            with open(dst, "xb") as fout:
                n = _pump(fin, fout, h)
                if fsync:
                    os.fsync(fout.fileno())
        else:
            n = _pump(fin, dst, h)
    return h.hexdigest(), n


def _pump(fin: BinaryIO, fout: BinaryIO, h: "blake3.blake3") -> int:
    n = 0
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    while k := fin.readinto(buf):
        h.update(view[:k])
        fout.write(view[:k])
        n += k
    return n


# A change landing in the same clock tick as our stat would leave every key field equal
# ("racy git", Documentation/technical/racy-git.txt): entries whose ctime is this close to
# the scan are not trusted on the next run. ctime cannot be set by utime(), unlike mtime.
_RACY_NS = 1_000_000_000


class HashCache:
    """A stat-keyed cache of file hashes for one source tree, persisted outside the repository.

    Like git's index, an entry is keyed on (dev, inode, size, mtime, ctime, mode): ``lookup``
    returns a cached hash only when none of these moved;
    ``save`` writes the entries seen in this run (stale paths are dropped) atomically.
    """

    _VERSION = 1

    def __init__(self, file: Path | None) -> None:
        self.file = file
        self._old: dict[str, list[object]] = {}
        self._new: dict[str, list[object]] = {}
        self._started_ns = time.time_ns()
        if file is not None:
            try:
                doc = json.loads(file.read_bytes())
                if doc.get("version") == self._VERSION and isinstance(doc.get("entries"), dict):
                    self._old = doc["entries"]
            except (OSError, ValueError):
                pass  # a missing or corrupt cache only costs a re-hash

    @classmethod
    def for_tree(cls, cache_dir: Path | None, root: Path) -> "HashCache":
        """The cache file of source tree ``root`` inside ``cache_dir`` (None: no persistence)."""
        if cache_dir is None:
            return cls(None)
        return cls(cache_dir / f"{hash_bytes(os.fsencode(root.resolve()))[:32]}.json")

    def lookup(self, rel: str, st: os.stat_result) -> str | None:
        entry = self._old.get(rel)
        if entry is not None and entry[:-1] == _key_list(st):
            return str(entry[-1])
        return None

    def store(self, rel: str, st: os.stat_result, digest: str) -> None:
        if st.st_ctime_ns < self._started_ns - _RACY_NS:
            self._new[rel] = [*_key_list(st), digest]

    def save(self) -> None:
        """Persist this run's entries; failures are ignored (the cache is only an accelerator)."""
        if self.file is None or self._new == self._old:
            return
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.file.with_name(f".{self.file.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"version": self._VERSION, "entries": self._new}))
            os.replace(tmp, self.file)
        except OSError:
            pass


def _key_list(st: os.stat_result) -> list[object]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, stat.S_IMODE(st.st_mode)]
