"""OSError -> one-line DepotDeliveryError: the one translator of the operating system's failures.

Each side says the same errno differently because each has a different fix: the node cache
(exit 8: run gc, point DEPOTDELIVERY_CACHE elsewhere), a publisher writing a repository (the
repository was left as it was; on CVMFS open a transaction), and anyone reading a repository
(exit 3 when it is unreachable, exit 4 when the wrong kind of file sits where a document
belongs). The errno tables below are the only place those phrasings live."""
from __future__ import annotations

import errno
import os

from depotdelivery.errors import (
    CacheError,
    FormatError,
    PublishError,
    RepositoryUnavailableError,
)

__all__ = ["cache_error", "publish_error", "read_error", "repo_unavailable"]

_CACHE_HINTS = {
    errno.ENOSPC: " (the node cache is full: run `depotdelivery gc` or set DEPOTDELIVERY_CACHE)",
    errno.EDQUOT: " (disk quota exceeded: run `depotdelivery gc` or set DEPOTDELIVERY_CACHE)",
    errno.EACCES: " (not writable: set DEPOTDELIVERY_CACHE to a writable local directory)",
    errno.EROFS: " (read-only filesystem: set DEPOTDELIVERY_CACHE to a writable local directory)",
}

_REPOSITORY_WRITE = {
    errno.ENOSPC: "is full (no space left on device)",
    errno.EDQUOT: "is full (disk quota exceeded)",
    errno.EROFS: "is read-only (on CVMFS, publish with --cvmfs FQRN to open a transaction)",
    errno.EACCES: "is not writable by this user",
    errno.EPERM: "is not writable by this user",
}

# the wrong kind of file where a document belongs: a malformed repository, not a lost one
# (EINVAL, EFBIG: a FIFO or device, or a file too large to be a document: readbounded.py)
_MALFORMED = frozenset({errno.EISDIR, errno.ENOTDIR, errno.ELOOP, errno.EINVAL, errno.EFBIG})


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def cache_error(what: str, path: os.PathLike[str] | str, exc: OSError) -> CacheError:
    """``cannot <what> <path>: <reason>`` for an OSError in the node cache (with a hint for a
    full, over-quota, unwritable or read-only cache)."""
    return CacheError(f"cannot {what} {os.fspath(path)}: {_reason(exc)}{_CACHE_HINTS.get(exc.errno or 0, '')}")


def publish_error(exc: OSError, where: os.PathLike[str] | str, doing: str) -> PublishError:
    """An OSError while ``doing`` a write into the repository at ``where``; the publisher has
    undone its own writes by the time this is raised."""
    what = _REPOSITORY_WRITE.get(exc.errno or 0, f"failed: {_reason(exc)}")
    return PublishError(f"{doing}: {exc.filename or os.fspath(where)} {what}; the repository was left as it was")


def repo_unavailable(root: os.PathLike[str] | str, problem: str) -> RepositoryUnavailableError:
    """The error for an unusable repository root; under /cvmfs it says how to check the mount."""
    parts = os.path.abspath(root).split(os.sep)
    hint = f" (is CVMFS mounted? `cvmfs_config probe {parts[2]}`)" if len(parts) >= 3 and parts[1] == "cvmfs" and parts[2] else ""
    return RepositoryUnavailableError(f"repository {os.fspath(root)} {problem}{hint}")


def read_error(what: str, path: os.PathLike[str] | str, exc: OSError) -> FormatError | RepositoryUnavailableError:
    """An OSError reading repository file ``path`` (``what`` names it): exit 4 for the wrong
    kind of file there, exit 3 for anything else (no permission, I/O errors, a lost mount)."""
    cls = FormatError if exc.errno in _MALFORMED else RepositoryUnavailableError
    return cls(f"cannot read {what} {os.fspath(path)}: {_reason(exc)}")
