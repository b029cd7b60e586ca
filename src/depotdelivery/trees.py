"""Removing a tree whatever modes it was given: a copy-mode depot keeps 0555 directories, and a
killed publish may have set a release's final read-only modes before it died."""
from __future__ import annotations

import os
import stat

__all__ = ["rmtree"]


def rmtree(path: str) -> None:
    """Remove ``path`` (a tree, a file or a symlink; nothing if it is gone), adding the owner's
    write permission to each directory first, top-down, so its entries can be deleted."""
    import shutil

    if not os.path.isdir(path) or os.path.islink(path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    _add_write(path)
    for dirpath, dirnames, _files in os.walk(path):  # top-down: each dir is fixed before use
        for name in dirnames:
            _add_write(os.path.join(dirpath, name))
    shutil.rmtree(path)


def _add_write(path: str) -> None:
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode) and (st.st_mode & stat.S_IRWXU) != stat.S_IRWXU:
        os.chmod(path, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)
