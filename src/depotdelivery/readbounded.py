"""Reading a whole small file that someone else supplied, with a bound: a FIFO, a device
(``DEPOTDELIVERY_CPUINFO=/dev/zero``, ``--key /dev/zero``) or a huge file where a document, a
key or a cpuinfo belongs must end in a one-line error, never in a hang or an exhausted memory."""
from __future__ import annotations

import errno
import os
import stat

__all__ = ["DOCUMENT_LIMIT", "KEY_LIMIT", "read_bounded"]

# Release and channel documents are KiB, listing chunks a few MiB: more is not ours.
DOCUMENT_LIMIT = 256 << 20
# A PEM key, a revocation list or a threshold file.
KEY_LIMIT = 1 << 20


def read_bounded(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of regular file ``path``, at most ``limit`` of them. Errors are OSErrors whose
    ``strerror`` says what is wrong (callers already turn an OSError into their one-line error):
    the open's own, EINVAL "not a regular file" (opened non-blocking, so a FIFO never waits for
    a writer), EFBIG "larger than N bytes". ``st_size`` is not trusted: /proc files say 0."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):  # what a plain open() + read() said
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
        chunks = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    if left <= 0:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes", os.fspath(path))
    return b"".join(chunks)
