"""The node cache: its layout, completion records, atomic small files, status and gc."""
from __future__ import annotations

import errno
import os
import stat
import time

TYPE_CHECKING = False  # no `typing` on the hot path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from typing import Any

from depotdelivery.node import guard, locks
from depotdelivery.node._record import Record
from depotdelivery.oserrors import cache_error
from depotdelivery.store import fastjson
from depotdelivery.trees import rmtree

__all__ = ["COMPLETE", "TMP_SEP", "DepotStatus", "GcReport", "NodeCache", "crc32_hex"]

COMPLETE = "complete.json"  # written last, atomically: its presence means "depot is complete"
RECORD_FORMAT = 2  # 2: no env or julia_args; the job environment is rebuilt from checked fields
# tmp/<key>@<pid>.<hex> (builds) and tmp/<key>@gc.<hex> (gc's trash): keys contain dots
# (variant names such as armv8.2a) but never '@' (store.names.is_name, MODES)
TMP_SEP = "@"


def _nibble_table() -> tuple[int, ...]:
    # CRC-32 (reflected IEEE 802.3 polynomial 0xEDB88320) of each 4-bit value
    table = []
    for crc in range(16):
        for _ in range(4):
            crc = (crc >> 1) ^ (0xEDB88320 & -(crc & 1))
        table.append(crc)
    return tuple(table)


_CRC32_NIBBLES = _nibble_table()


def crc32_hex(text: str) -> str:
    """zlib's CRC-32 of ``text`` (UTF-8) as 8 hex digits, the short keys in cache file names.

    Computed four bits a step rather than with ``zlib``: loading zlib's shared library costs a
    job process more than computing a path's CRC this way (benchmarks/bench_prepare.py measures
    the warm path). The values, hence the names of existing records, are zlib.crc32's
    (tests/node/test_config.py checks that)."""
    table = _CRC32_NIBBLES
    crc = 0xFFFFFFFF
    for byte in text.encode():
        crc ^= byte
        crc = (crc >> 4) ^ table[crc & 0xF]
        crc = (crc >> 4) ^ table[crc & 0xF]
    return f"{crc ^ 0xFFFFFFFF:08x}"


class DepotStatus(Record):
    """One hydrated (or broken) depot in the cache."""

    __slots__ = ("apparent_bytes", "complete", "disk_bytes", "files", "key", "last_use", "leases", "mode", "mounted",
                 "release", "variant")
    key: str
    complete: bool
    mode: str | None
    release: str | None
    variant: str | None
    apparent_bytes: int  # the sum of the files' sizes (what `du --apparent-size` says), each inode once
    disk_bytes: int  # the blocks they occupy (st_blocks * 512, what `du` says), each inode once
    files: int
    last_use: float
    leases: tuple[int | None, ...]  # pids of running jobs holding a lease
    mounted: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "complete": self.complete, "mode": self.mode, "release": self.release,
            "variant": self.variant, "apparent_bytes": self.apparent_bytes, "disk_bytes": self.disk_bytes,
            "files": self.files,
            "last_use": self.last_use, "leases": list(self.leases), "mounted": self.mounted,
        }


class GcReport(Record):
    """What one ``gc`` run did."""

    __slots__ = ("kept_busy", "kept_leased", "leases_reaped", "removed", "tmp_removed")
    removed: tuple[str, ...]
    kept_leased: tuple[str, ...]
    kept_busy: tuple[str, ...]
    tmp_removed: int
    leases_reaped: int

    def to_dict(self) -> dict[str, Any]:
        return {"removed": list(self.removed), "kept_leased": list(self.kept_leased),
                "kept_busy": list(self.kept_busy), "tmp_removed": self.tmp_removed,
                "leases_reaped": self.leases_reaped}


class NodeCache:
    """Paths of the node cache (docs/architecture.md "Node cache") and the operations on them.
    Paths are strings: ``pathlib`` is not imported on the hot path."""

    __slots__ = ("depots", "leases", "locks", "root", "secured", "selections", "tmp", "trust", "verified")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)
        self.depots = os.path.join(self.root, "depots")
        self.locks = os.path.join(self.root, "locks")
        self.leases = os.path.join(self.root, "leases")
        self.trust = os.path.join(self.root, "trust")
        self.tmp = os.path.join(self.root, "tmp")
        self.verified = os.path.join(self.root, "verified")
        self.selections = os.path.join(self.root, "selections")
        self.secured = False  # checked by secure() in this process: the cold path checks once

    # --- small files -------------------------------------------------------------------
    def secure(self, *, create: bool) -> bool:
        """Check that no other user can have written into this cache (node/guard.py), creating
        it 0700 with ``create``; False when it does not exist (and ``create`` is off)."""
        self.secured = guard.secure_cache(self.root, create=create)
        return self.secured

    def ensure(self) -> None:
        """Create the layout (cold path only); an unusable cache is a CacheError."""
        if not self.secured:
            self.secure(create=True)
        for d in (self.depots, self.locks, self.leases, self.trust, self.tmp, self.verified, self.selections):
            try:
                os.makedirs(d, exist_ok=True)
            except OSError as exc:
                raise cache_error("create cache directory", d, exc) from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise cache_error("write to cache directory", self.root, PermissionError(errno.EACCES, "Permission denied"))

    @staticmethod
    def read_json(path: str) -> Any | None:
        """The JSON document at ``path``, or None if it is missing or unreadable garbage
        (every record here is an accelerator or is rewritten by the cold path). A record
        another user owns or could have written is refused (CacheError, node/guard.py)."""
        data = guard.read_record(path)
        if data is None:
            return None
        try:
            return fastjson.loads(data)
        except (ValueError, RecursionError):
            return None

    def write_json(self, path: str, obj: Any, *, durable: bool = True) -> None:
        """Write ``obj`` to ``path`` atomically (temporary file, rename; ``durable``: fsync
        before the rename). Records that are only accelerators, checked when read and redone
        when missing or garbage, pass ``durable=False``: after a power loss they may be empty,
        which costs a redo, never a wrong answer, and each fsync is milliseconds of a cold job.
        A durable record's directory is fsynced after the rename too: without that the rename
        itself may not survive a power cut (the trust state would forget a seq it accepted).
        Records are 0600: what a job runs is nobody else's business."""
        data = fastjson.canonical(obj)
        head, name = os.path.split(path)
        tmp = os.path.join(head, f".{name}.{os.getpid()}.{os.urandom(3).hex()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            if durable:
                _fsync_dir(head)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise cache_error("write", path, exc) from None

    # --- depots ------------------------------------------------------------------------
    def depot_dir(self, key: str) -> str:
        return os.path.join(self.depots, key)

    def lock_file(self, key: str) -> str:
        return os.path.join(self.locks, f"{key}.lock")

    def read_complete(self, key: str) -> dict[str, Any] | None:
        record = self.read_json(os.path.join(self.depots, key, COMPLETE))
        if isinstance(record, dict) and record.get("format") == RECORD_FORMAT and record.get("key") == key:
            return record
        return None

    def build_dir(self, key: str) -> str:
        """A fresh temporary directory for building depot ``key`` (same filesystem as depots/)."""
        path = os.path.join(self.tmp, f"{key}{TMP_SEP}{os.getpid()}.{os.urandom(4).hex()}")
        try:
            os.mkdir(path)
        except OSError as exc:
            raise cache_error("create build directory", path, exc) from None
        return path

    def clean_tmp(self, key: str) -> int:
        """Remove build leftovers of ``key`` (caller holds its hydration lock, so none is live)."""
        removed = 0
        try:
            names = os.listdir(self.tmp)
        except FileNotFoundError:
            return 0
        for name in names:
            if name.split(TMP_SEP, 1)[0] == key:
                rmtree(os.path.join(self.tmp, name))
                removed += 1
        return removed

    def keys(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.depots) if not n.startswith("."))
        except FileNotFoundError:
            return []
        except OSError as exc:  # the cache (or depots/) is a file, unreadable, ...
            raise cache_error("read node cache", self.depots if os.path.isdir(self.root) else self.root, exc) from None

    def last_use(self, key: str) -> float:
        """Creating a lease file updates its directory's mtime: that is the last use, for free."""
        for path in (os.path.join(self.leases, key), os.path.join(self.depots, key, COMPLETE),
                     os.path.join(self.depots, key)):
            try:
                return os.stat(path).st_mtime
            except OSError:
                continue
        return 0.0

    def status(self) -> list[DepotStatus]:
        out = []
        for key in self.keys():
            record = self.read_complete(key)
            mount = record.get("mount") if record else None
            apparent, disk, nfiles = _du(self.depot_dir(key), skip=mount)
            held = [lease.pid for lease in locks.leases(self.leases, key) if lease.held]
            out.append(DepotStatus(
                key=key, complete=record is not None,
                mode=record.get("mode") if record else None,
                release=record["release"]["ref"] if record else None,
                variant=record.get("variant") if record else None,
                apparent_bytes=apparent, disk_bytes=disk, files=nfiles, last_use=self.last_use(key),
                leases=tuple(held), mounted=bool(mount) and os.path.ismount(str(mount)),
            ))
        return out

    def gc(self, *, keep: int | None = None, older_than: float | None = None, now: float | None = None) -> GcReport:
        """Remove depots beyond the ``keep`` most recently used and/or unused for longer than
        ``older_than`` seconds (both given: both must hold; neither: only incomplete depots
        go). Never a depot with a held lease or one being hydrated. Also reaps stale leases
        and build directories of killed jobs."""
        now = time.time() if now is None else now
        # read before reaping: unlinking a dead job's lease file touches the leases directory,
        # which would make a long-unused depot look used just now
        used = {key: self.last_use(key) for key in self.keys()}
        by_use = sorted(used, key=used.__getitem__, reverse=True)
        removed: list[str] = []
        leased: list[str] = []
        busy: list[str] = []
        reaped = 0
        for rank, key in enumerate(by_use):
            reaped += locks.reap_leases(self.leases, key)
            complete = self.read_complete(key) is not None
            wanted = not complete
            if complete and (keep is not None or older_than is not None):
                wanted = (keep is None or rank >= keep) and (
                    older_than is None or now - used[key] > older_than
                )
            if not wanted:
                continue
            outcome = self.remove_depot(key)
            {"removed": removed, "leased": leased, "busy": busy}[outcome].append(key)
        tmp_removed = self._gc_tmp()
        return GcReport(removed=tuple(removed), kept_leased=tuple(leased), kept_busy=tuple(busy),
                        tmp_removed=tmp_removed, leases_reaped=reaped)

    def _gc_tmp(self) -> int:
        removed = 0
        try:
            names = os.listdir(self.tmp)
        except FileNotFoundError:
            return 0
        for key in sorted({n.split(TMP_SEP, 1)[0] for n in names}):
            with locks.try_hydration_lock(self.lock_file(key)) as got:
                if got:  # nobody hydrates this key, so its build dirs are leftovers
                    removed += self.clean_tmp(key)
        return removed

    def remove_depot(self, key: str) -> str:
        """Remove depot ``key`` unless leased or being hydrated: "removed" | "leased" | "busy".

        Protocol (prepare takes its lease *before* looking for complete.json): under the
        hydration lock, check the leases, rename the depot out of the way, check again; a
        lease that appeared in between may have seen the depot, so it is renamed back. An
        overlay stays mounted until that last check (its mount moves with the renamed
        directory): a job whose lease came in between runs on the mounted depot."""
        with locks.try_hydration_lock(self.lock_file(key)) as got:
            if not got:
                return "busy"
            if any(lease.held for lease in locks.leases(self.leases, key)):
                return "leased"
            record = self.read_complete(key)
            depot = self.depot_dir(key)
            trash = os.path.join(self.tmp, f"{key}{TMP_SEP}gc.{os.urandom(4).hex()}")
            os.makedirs(self.tmp, exist_ok=True)
            try:
                os.rename(depot, trash)
            except FileNotFoundError:
                return "removed"
            if any(lease.held for lease in locks.leases(self.leases, key)):
                os.rename(trash, depot)
                return "leased"
            mount = record.get("mount") if record else None
            moved = os.path.join(trash, os.path.relpath(mount, depot)) if mount else None
            if moved is not None and os.path.ismount(moved):
                from depotdelivery.node.hydrate import unmount

                try:
                    unmount(moved)
                except OSError:
                    os.rename(trash, depot)  # still mounted and whole: never delete through a mount
                    raise
            rmtree(trash)
            return "removed"


def _fsync_dir(path: str) -> None:
    # not store.atomic.fsync_dir: importing that module (contextlib, for the publisher's
    # context managers) costs a cold job ~4 ms for these four lines
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _du(path: str, skip: str | None) -> tuple[int, int, int]:
    """(apparent bytes, disk bytes, files) under ``path``, like ``du -s --apparent-size`` and
    ``du -s``: an inode reached through several hard links (copy and stack modes link
    files) counts once, as du counts it; directories and symlinks add no bytes, only entries."""
    apparent = disk = nfiles = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(path):
        if skip is not None:
            dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) != skip]
        for name in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            nfiles += 1
            if not stat.S_ISREG(st.st_mode):
                continue
            if st.st_nlink > 1:
                inode = (st.st_dev, st.st_ino)
                if inode in seen:
                    continue
                seen.add(inode)
            apparent += st.st_size
            disk += st.st_blocks * 512  # st_blocks is in 512-byte units whatever the block size (stat(2))
    return apparent, disk, nfiles
