"""Multi-user safety of the node cache: no other user can have written what a job trusts.

A job takes its environment (``JULIA_DEPOT_PATH``, ``--sysimage``) from records in its cache,
so the cache is safe only if no other account can write there. The rules (docs/security.md
"Shared nodes"), checked on every use:

* the cache root is a directory owned by the caller, reached only through directories that
  no other non-root user can change: each ancestor is owned by root or the caller and is not
  group/world-writable unless sticky (``/tmp``, ``/var/tmp``), as OpenSSH's ``StrictModes``
  checks a home directory; the root itself may be a symlink only if root or the caller owns it;
* a cache the caller creates is 0700 whatever the umask, and the caller's own cache with group
  or world read/search bits is tightened to 0700: anyone who can open a lock file, even
  read-only, can hold ``flock`` on it and stall every hydration (``flock(2)`` needs no write
  access). A cache writable by group or others is refused: someone else may already have
  written into it;
* every record is opened with ``O_NOFOLLOW | O_NONBLOCK`` and ``fstat``-ed: a regular file of
  the caller's, not group/world-writable, at most :data:`RECORD_LIMIT` bytes.

Refusals are :class:`~depotdelivery.errors.CacheError` (exit 8) naming the path and the fix.
"""
from __future__ import annotations

import os
import stat

from depotdelivery.errors import CacheError
from depotdelivery.oserrors import cache_error

__all__ = ["RECORD_LIMIT", "read_record", "secure_cache"]

# The largest record the cache holds is a selection (every variant's verdict and reason):
# a few KiB. A bigger file is not one of ours.
RECORD_LIMIT = 1 << 20

_FIX = "set DEPOTDELIVERY_CACHE (or `cache`) to a directory of your own, e.g. /var/tmp/depotdelivery-$USER " \
       "(docs/security.md \"Shared nodes\")"


def _refuse(path: str, problem: str) -> CacheError:
    return CacheError(f"node cache {path} {problem}: another user could change what your jobs load; {_FIX}")


def secure_cache(root: str, *, create: bool) -> bool:
    """Check (and with ``create`` make) the node cache ``root`` safe for the caller; False when
    it does not exist and ``create`` is off (nothing to read, nothing to clean)."""
    uid = os.geteuid()
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        if not create:
            return False
        _create(root)
        st = os.lstat(root)
    except OSError as exc:
        raise cache_error("inspect node cache", root, exc) from None
    real = root
    if stat.S_ISLNK(st.st_mode):
        if st.st_uid not in (uid, 0):
            raise _refuse(root, f"is a symbolic link owned by uid {st.st_uid}, not by you (uid {uid})")
        real = os.path.realpath(root)
        try:
            st = os.stat(real)
        except OSError as exc:
            raise cache_error("inspect node cache", real, exc) from None
    if not stat.S_ISDIR(st.st_mode):
        raise CacheError(f"node cache {root} is not a directory; {_FIX}")
    if st.st_uid != uid:
        raise _refuse(root, f"is owned by uid {st.st_uid}, not by you (uid {uid})")
    if st.st_mode & 0o022:
        raise _refuse(root, f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})")
    if st.st_mode & 0o077:
        try:
            os.chmod(real, 0o700)
        except OSError as exc:
            raise cache_error("make private (chmod 0700) node cache", real, exc) from None
    _check_ancestors(root, os.path.realpath(real), uid)
    return True


def _create(root: str) -> None:
    parent = os.path.dirname(root)
    try:
        os.makedirs(parent, exist_ok=True)
        try:
            os.mkdir(root, 0o700)
        except FileExistsError:
            return  # another job made it first: the checks that follow judge it
        os.chmod(root, 0o700)  # mkdir's mode is masked by the umask; 0700 whatever it is
    except OSError as exc:
        raise cache_error("create node cache", root, exc) from None


def _check_ancestors(root: str, real: str, uid: int) -> None:
    """Every directory above the cache (symlinks resolved): a user who can rename entries in
    one of them can swap the cache for a directory of theirs."""
    path = os.path.dirname(real)
    while True:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise cache_error("inspect the directories above node cache", path, exc) from None
        if st.st_uid not in (uid, 0):
            raise _refuse(root, f"is inside {path}, owned by uid {st.st_uid}")
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            raise _refuse(root, f"is inside {path}, which group or others can write to "
                                f"(mode {stat.S_IMODE(st.st_mode):o}, not sticky)")
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def read_record(path: str) -> bytes | None:
    """The bytes of record ``path`` of the caller's cache; None when it is missing, not a
    regular file or too large to be a record (then it is redone, like garbage). A record of
    another user's, or one others could have written, is refused (exit 8)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except PermissionError:  # in a cache of one's own: someone else put it there
        raise CacheError(f"node cache record {path} cannot be read by you: remove it, and check who else wrote "
                         f"into the cache; {_FIX}") from None
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > RECORD_LIMIT:
            return None
        if st.st_uid == os.geteuid() and not st.st_mode & 0o022:
            return os.read(fd, RECORD_LIMIT + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    owner = "others can write to it" if st.st_uid == os.geteuid() else f"it is owned by uid {st.st_uid}"
    raise CacheError(f"node cache record {path} is not yours alone ({owner}): remove it, and check "
                     f"who else wrote into the cache; {_FIX}")
