"""Durable, atomic file writes for the publisher: temporary name, fsync, rename, fsync the directory."""
from __future__ import annotations

import ctypes
import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LockBusy", "dir_lock", "dir_times_restored_on_error", "fsync_dir", "syncfs", "temp_name", "write_atomic"]


def temp_name(final: Path) -> Path:
    """A hidden sibling of ``final`` that readers skip (they ignore names starting with '.')."""
    return final.with_name(f".{final.name}.tmp-{secrets.token_hex(6)}")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def syncfs(path: str | os.PathLike[str]) -> None:
    """Flush the whole filesystem holding ``path``: one ``syncfs(2)`` instead of an fsync per
    file when thousands of files must be durable before a rename commits them."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old or the new bytes, never a mix."""
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


@contextmanager
def dir_times_restored_on_error(*dirs: Path) -> Iterator[None]:
    """On an exception, put back the atime/mtime of ``dirs`` (those that exist now): creating
    and removing a temporary inside a directory moves its mtime, and a failed publish must
    leave the repository exactly as it was."""
    saved = []
    for d in dirs:
        try:
            st = os.stat(d)
        except FileNotFoundError:
            continue
        saved.append((d, st.st_atime_ns, st.st_mtime_ns))
    try:
        yield
    except BaseException:
        for d, atime, mtime in saved:
            try:
                os.utime(d, ns=(atime, mtime))
            except OSError:
                pass  # read-only or gone: nothing was changed there either
        raise


class LockBusy(Exception):
    """``dir_lock(path, wait=False)`` found another process holding the lock."""


@contextmanager
def dir_lock(path: Path, *, wait: bool = True) -> Iterator[None]:
    """Serialise the publishers that change what is under ``path``: an exclusive ``flock`` on
    the directory itself, so no lock file is ever left in the repository (and a killed holder's
    lock goes with its process). ``wait=False``: raise :class:`LockBusy` instead of waiting
    (repo-gc must not stall behind a long publish just to learn a temporary is still in use)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockBusy(str(path)) from None
        yield
    finally:
        os.close(fd)
