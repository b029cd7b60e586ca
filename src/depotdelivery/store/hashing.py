"""BLAKE3 of files (multi-threaded for large ones), hash-while-copy, and the publisher's stat cache."""
from __future__ import annotations

import errno
import io
import os
import stat
import time

import blake3

TYPE_CHECKING = False  # no `typing`, `pathlib`, `json` on a job's cold path (hash_bytes)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import BinaryIO

from depotdelivery.errors import IntegrityError

__all__ = [
    "LARGE_FILE",
    "Copier",
    "FileChangedError",
    "HashCache",
    "NotRegularFileError",
    "copy_with_hash",
    "hash_bytes",
    "hash_file",
    "open_regular",
]

# Above this size the BLAKE3 tree is hashed on all cores (blake3's ``max_threads``); below it
# the thread start-up costs more than it saves (blake3-py README: "a few hundred KiB").
LARGE_FILE = 1 << 20
_CHUNK = 1 << 20


class FileChangedError(OSError):
    """A file's size or mtime changed while it was being read (a concurrent writer)."""


class NotRegularFileError(OSError):
    """A path to be read as a file is a symlink, FIFO, device, socket or directory."""


# O_NONBLOCK: opening a FIFO must not wait for a writer (fstat then refuses it); on a regular
# file the flag changes nothing. O_NOFOLLOW: a symlink is refused (ELOOP), not followed.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NOATIME = getattr(os, "O_NOATIME", 0)


def open_regular(path: str | os.PathLike[str], *, noatime: bool = False) -> tuple[int, os.stat_result]:
    """Open ``path`` for reading if it is a regular file; return ``(fd, fstat)``.

    With ``noatime``, reads do not touch atime when the caller owns the file (O_NOATIME, for
    the publisher hashing its own build tree); open(2) refuses that flag with EPERM to anyone
    else (verifying a root-owned or CVMFS repository), so the open is then repeated without
    it. Anything but a regular file raises
    :class:`NotRegularFileError` with no byte read: a FIFO or ``/dev/zero`` in a tree would
    otherwise hang the reader or fill the disk.
    """
    try:
        try:
            fd = os.open(path, _READ_FLAGS | (_NOATIME if noatime else 0))
        except PermissionError as exc:
            if exc.errno != errno.EPERM or not (noatime and _NOATIME):
                raise
            fd = os.open(path, _READ_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularFileError(f"{os.fspath(path)}: is a symlink, expected a regular file") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegularFileError(f"{os.fspath(path)}: is not a regular file (mode {st.st_mode:o})")
    return fd, st


def hash_bytes(data: bytes) -> str:
    """BLAKE3 hex digest of ``data``."""
    return blake3.blake3(data).hexdigest()


def _hasher(size: int) -> blake3.blake3:
    if size >= LARGE_FILE:
        return blake3.blake3(max_threads=blake3.blake3.AUTO)
    return blake3.blake3()


def hash_file(path: str | os.PathLike[str], st: os.stat_result | None = None) -> str:
    """BLAKE3 hex digest of the file at ``path``.

    When ``st`` (the ``lstat`` taken before, e.g. by the publisher's scan) is given, the file
    is ``fstat``-ed after reading and :class:`FileChangedError` is raised if size, mtime or
    ctime moved since: a file being written while we hash it must never be published with a
    hash of half its bytes. (Any write between ``st`` and the last read moves mtime and ctime.)
    A file replaced since ``st`` (by a FIFO, say) is a :class:`FileChangedError` too; without
    ``st``, a path that is not a regular file raises :class:`NotRegularFileError`.
    """
    try:
        fd, opened = open_regular(path, noatime=True)
    except NotRegularFileError:
        if st is not None:
            raise FileChangedError(f"{os.fspath(path)} changed while it was being hashed") from None
        raise
    try:
        before = opened if st is None else st
        if _changed(before, opened):
            raise FileChangedError(f"{os.fspath(path)} changed while it was being hashed")
        if before.st_size >= LARGE_FILE:
            h = _hasher(before.st_size)
            # mmap through the descriptor we opened, not the name (it could be replaced)
            h.update_mmap(f"/proc/self/fd/{fd}")
        else:
            # one read of size + 1: more bytes than st_size means the file grew (caught below)
            h = blake3.blake3(os.read(fd, before.st_size + 1) if before.st_size else b"")
        if _changed(before, os.fstat(fd)):
            raise FileChangedError(f"{os.fspath(path)} changed while it was being hashed")
        return h.hexdigest()
    finally:
        os.close(fd)


def _changed(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_ino, a.st_dev, a.st_size, a.st_mtime_ns, a.st_ctime_ns) != (
        b.st_ino, b.st_dev, b.st_size, b.st_mtime_ns, b.st_ctime_ns)


def copy_with_hash(
    src: str | os.PathLike[str], dst: str | os.PathLike[str] | BinaryIO, *, fsync: bool = False,
    limit: int | None = None,
) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` (a path, created exclusively, or an open binary file) while
    hashing the bytes read; return ``(blake3 hex, size)``.

    One read of the source serves both the copy and the hash (installer's
    ``copyfileobj_with_hashing``), so a node's ``copy`` hydration verifies what it wrote.
    ``src`` must be a regular file, not a symlink: a hostile repository could otherwise point
    it at ``/dev/zero`` or a FIFO, and the copy would never end (IntegrityError instead).
    With ``limit``, at most ``limit + 1`` bytes are read: enough to tell the file is too large.
    """
    fd, st = _open_source(src)
    with open(fd, "rb") as fin:
        h = _hasher(st.st_size)
        if isinstance(dst, (str, os.PathLike)):
            with open(dst, "xb") as fout:
                n = _pump(fin, fout, h, limit)
                if fsync:
                    os.fsync(fout.fileno())
        else:
            n = _pump(fin, dst, h, limit)
    return h.hexdigest(), n


def _open_source(src: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    """:func:`open_regular` for a repository's file: anything else is the repository's fault."""
    try:
        return open_regular(src)
    except NotRegularFileError as exc:
        raise IntegrityError(str(exc)) from None


class Copier:
    """Hash-while-copy of many files with one reusable buffer (copy mode's inner loop): per
    file one open of each side, a read of the whole file into the buffer when it fits
    (``readinto``), the BLAKE3 of those bytes, their write, ``fchmod`` and ``futimens``."""

    __slots__ = ("buf", "view")

    def __init__(self, size: int = _CHUNK) -> None:
        self.buf = bytearray(size)
        self.view = memoryview(self.buf)

    def copy(self, src: str, dst: str, *, mode: int | None = None, mtime_ns: int | None = None,
             limit: int | None = None) -> tuple[str, int]:
        """Copy regular file ``src`` to the new file ``dst`` (O_EXCL: FileExistsError when it
        exists, before ``src`` is opened), give it ``mode`` and ``mtime_ns`` (None: as created
        under the umask, and now); return
        ``(blake3 hex, size)``. ``src`` must be a regular file, not a symlink (IntegrityError):
        a hostile repository could otherwise point it at ``/dev/zero`` or a FIFO. With
        ``limit``, at most ``limit + 1`` bytes are read: enough to tell the file is too large."""
        out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666 if mode is None else 0o600)
        try:
            fd, st = _open_source(src)
            try:
                digest, n = self._pump(fd, out, _hasher(st.st_size), st.st_size, limit)
            finally:
                os.close(fd)
            if mode is not None:
                os.fchmod(out, mode)
            if mtime_ns is not None:
                os.utime(out, ns=(mtime_ns, mtime_ns))
        finally:
            os.close(out)
        return digest, n

    def _pump(self, fd: int, out: int, h: blake3.blake3, size: int, limit: int | None) -> tuple[str, int]:
        """Read ``fd`` into the buffer, hash and write those bytes to ``out``, until the end of
        the file or ``limit + 1`` bytes. A short read that has brought exactly the ``fstat``
        size ends the loop without the extra read that would return 0 (one syscall per file
        of the 50k a copy hydration does): what was hashed is still exactly what was written."""
        view = self.view
        whole = len(view)
        n = 0
        left = whole if limit is None else limit + 1
        while left > 0:
            want = min(whole, left)
            k = os.readv(fd, [view[:want]] if want < whole else [view])
            if not k:
                break
            chunk = view[:k]
            h.update(chunk)
            while chunk:
                chunk = chunk[os.write(out, chunk):]
            n += k
            if limit is not None:
                left -= k
            if k < want and n == size:
                break
        return h.hexdigest(), n


def _pump(fin: io.BufferedIOBase, fout: BinaryIO, h: blake3.blake3, limit: int | None) -> int:
    n = 0
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    left = None if limit is None else limit + 1
    while left is None or left > 0:
        k = fin.readinto(view if left is None or left >= _CHUNK else view[:left])
        if not k:
            break
        h.update(view[:k])
        fout.write(view[:k])
        n += k
        if left is not None:
            left -= k
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
            import json  # the publisher's cache: off a job's cold path

            try:
                doc = json.loads(file.read_bytes())
                if doc.get("version") == self._VERSION and isinstance(doc.get("entries"), dict):
                    self._old = doc["entries"]
            except (OSError, ValueError):
                pass  # a missing or corrupt cache only costs a re-hash

    @classmethod
    def for_tree(cls, cache_dir: Path | None, root: Path) -> HashCache:
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
        import json

        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.file.with_name(f".{self.file.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"version": self._VERSION, "entries": self._new}))
            os.replace(tmp, self.file)
        except OSError:
            pass


def _key_list(st: os.stat_result) -> list[object]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, stat.S_IMODE(st.st_mode)]
