"""OSError -> CacheError: the one translator of the node cache's operating-system failures
(cache, locks, prepare), with what to do for the usual ones (full, quota, not writable)."""
from __future__ import annotations

import errno
import os

from depotdelivery.errors import CacheError

__all__ = ["cache_error"]


def cache_error(what: str, path: os.PathLike[str] | str, exc: OSError) -> CacheError:
    """One-line CacheError for an OSError in the cache (ENOSPC and EACCES get a hint)."""
    hint = {
        errno.ENOSPC: " (the node cache is full: run `depotdelivery gc` or set DEPOTDELIVERY_CACHE)",
        errno.EDQUOT: " (disk quota exceeded: run `depotdelivery gc` or set DEPOTDELIVERY_CACHE)",
        errno.EACCES: " (not writable: set DEPOTDELIVERY_CACHE to a writable local directory)",
        errno.EROFS: " (read-only filesystem: set DEPOTDELIVERY_CACHE to a writable local directory)",
    }.get(exc.errno or 0, "")
    return CacheError(f"cannot {what} {os.fspath(path)}: {exc.strerror or exc}{hint}")
