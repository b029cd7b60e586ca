"""Git tree hash of a directory, as Pkg computes artifact names (Pkg src/GitTools.jl tree_hash)."""
from __future__ import annotations

import hashlib
import os
import stat

from depotdelivery.errors import InputError

__all__ = ["blob_hash", "git_tree_hash", "tree_hash_bytes"]

# Pkg src/GitTools.jl GitMode: the octal modes git writes into tree objects
_MODE_DIR = b"40000"
_MODE_FILE = b"100644"
_MODE_EXEC = b"100755"
_MODE_LINK = b"120000"
_CHUNK = 1 << 20


def blob_hash(path: str | bytes | os.PathLike[str]) -> bytes:
    """SHA-1 of the git blob of a file (its bytes) or a symlink (its target string).

    A symlink's header counts the target's characters, not its bytes: Pkg src/GitTools.jl
    blob_hash writes ``length(readlink(path))`` (Julia's character count) and then the target's
    UTF-8 bytes. Artifact names are what Pkg computes, so for a non-ASCII target this differs
    from ``git hash-object``; a target that is not UTF-8 is refused (Julia counts malformed
    sequences by its own rules, which we do not reproduce)."""
    sha = hashlib.sha1()
    if os.path.islink(path):
        target = os.readlink(os.fsencode(path))
        try:
            characters = len(target.decode("utf-8"))
        except UnicodeDecodeError:
            raise InputError(f"{os.fsdecode(path)}: symlink target is not UTF-8; cannot compute Pkg's tree hash") from None
        sha.update(b"blob %d\0" % characters)
        sha.update(target)
        return sha.digest()
    with open(path, "rb") as handle:
        sha.update(b"blob %d\0" % os.fstat(handle.fileno()).st_size)
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
    return sha.digest()


def _contains_files(path: bytes) -> bool:
    """Pkg's contains_files: anything but a directory counts as a file (symlinks included)."""
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        return True
    with os.scandir(path) as it:
        return any(_contains_files(entry.path) for entry in it)


def tree_hash_bytes(path: str | bytes | os.PathLike[str]) -> bytes:
    """The 20-byte tree hash of a directory (see git_tree_hash)."""
    root = os.fsencode(path)
    entries = []
    with os.scandir(root) as it:
        listing = [(entry.name, entry.path, entry.stat(follow_symlinks=False).st_mode) for entry in it]
    for name, full, mode in listing:
        if name == b".git":  # Pkg skips `.git` (a file or a directory) at every level
            continue
        if stat.S_ISLNK(mode):
            entries.append((name, _MODE_LINK, blob_hash(full)))
        elif stat.S_ISDIR(mode):
            if _contains_files(full):  # directories with no files are not in the tree
                entries.append((name, _MODE_DIR, tree_hash_bytes(full)))
        elif stat.S_ISREG(mode):
            entries.append((name, _MODE_EXEC if mode & stat.S_IXUSR else _MODE_FILE, blob_hash(full)))
        else:
            raise InputError(f"{os.fsdecode(full)}: cannot hash a special file (fifo, socket or device) into a git tree")
    # git orders a directory as if its name ended in "/" (Pkg: sort by f * "/" for directories)
    entries.sort(key=lambda e: e[0] + b"/" if e[1] == _MODE_DIR else e[0])
    body = b"".join(mode + b" " + name + b"\0" + digest for name, mode, digest in entries)
    return hashlib.sha1(b"tree %d\0" % len(body) + body).digest()


def git_tree_hash(path: str | os.PathLike[str]) -> str:
    """The git tree SHA-1 (hex) of a directory, exactly as Pkg names artifacts: modes 40000 /
    100644 / 100755 (owner execute bit) / 120000 (symlinks hashed by target, never followed),
    ``.git`` skipped, directories without files skipped, names ordered as git orders them."""
    return tree_hash_bytes(path).hex()
