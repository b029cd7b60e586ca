"""BLAKE3 hashing of files (store/hashing.py): b3sum's answers, changes caught while hashing, hash-while-copy, the stat-keyed hash cache."""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import blake3
import pytest
from node_fixtures import second_user_problem

from depotdelivery.errors import IntegrityError
from depotdelivery.store.hashing import (
    LARGE_FILE,
    FileChangedError,
    HashCache,
    copy_with_hash,
    hash_file,
)


@pytest.mark.parametrize("size", [0, 1, 1023, LARGE_FILE - 1, LARGE_FILE, 3 * LARGE_FILE + 17])
def test_hash_file_matches_b3sum(tmp_path, size):
    p = tmp_path / "f"
    p.write_bytes(os.urandom(size))
    digest = hash_file(p, os.lstat(p))
    assert digest == blake3.blake3(p.read_bytes()).hexdigest()
    if shutil.which("b3sum"):
        assert subprocess.run(["b3sum", "--no-names", str(p)], capture_output=True, text=True).stdout.strip() == digest


def test_hash_file_detects_a_change_since_stat(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"before")
    st = os.lstat(p)
    time.sleep(0.01)
    with open(p, "ab") as fh:
        fh.write(b" and after")
    with pytest.raises(FileChangedError, match="changed while it was being hashed"):
        hash_file(p, st)


def test_hash_file_detects_a_file_replaced_since_stat(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"same")
    st = os.lstat(p)
    (tmp_path / "g").write_bytes(b"same")
    os.utime(tmp_path / "g", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp_path / "g", p)  # another inode under the same name (an installer's rename)
    with pytest.raises(FileChangedError):
        hash_file(p, st)


# Run by a second process while the first is inside hash_file: append, or overwrite in place
# (same size: only mtime/ctime can tell).
_WRITER = """
import sys
with open(sys.argv[1], "ab" if sys.argv[2] == "append" else "r+b") as fh:
    fh.seek(0 if sys.argv[2] == "append" else 4096)
    fh.write(b"x" * 4096)
"""


@pytest.mark.parametrize("how", ["append", "overwrite"])
def test_hash_file_detects_a_concurrent_writer(tmp_path, monkeypatch, how):
    """A real writer process changing a large file while it is being hashed (after hash_file
    opened it, before its last fstat): caught, whether the file grew or kept its size. The
    write happens at exactly that point, from the hasher's read (a controlled interleaving,
    not a race the scheduler may or may not produce)."""
    import sys

    from depotdelivery.store import hashing

    real = blake3.blake3
    p = tmp_path / "big"
    p.write_bytes(os.urandom(4 * LARGE_FILE))
    # an mtime long past: the write below moves it whatever the clock's granularity
    os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    st = os.lstat(p)
    written = []

    class WrittenWhileReading:
        AUTO = real.AUTO

        def __init__(self, *args: object, **kwargs: object) -> None:
            self._h = real(*args, **kwargs)

        def update_mmap(self, path: str) -> None:
            subprocess.run([sys.executable, "-c", _WRITER, str(p), how], check=True)
            written.append(os.lstat(p))
            self._h.update_mmap(path)

        def hexdigest(self) -> str:
            return self._h.hexdigest()

    monkeypatch.setattr(hashing.blake3, "blake3", WrittenWhileReading)
    with pytest.raises(FileChangedError, match="changed while it was being hashed"):
        hash_file(p, st)
    assert len(written) == 1 and (written[0].st_size == st.st_size) == (how == "overwrite")


def test_hash_file_refuses_symlinks(tmp_path):
    (tmp_path / "t").write_bytes(b"x")
    os.symlink("t", tmp_path / "l")
    with pytest.raises(OSError):
        hash_file(tmp_path / "l")


def test_copy_with_hash(tmp_path):
    src = tmp_path / "src"
    data = os.urandom(2 * LARGE_FILE + 5)
    src.write_bytes(data)
    digest, n = copy_with_hash(src, tmp_path / "dst", fsync=True)
    assert (digest, n) == (blake3.blake3(data).hexdigest(), len(data))
    assert (tmp_path / "dst").read_bytes() == data
    with pytest.raises(FileExistsError):
        copy_with_hash(src, tmp_path / "dst")


def test_hash_cache_trusts_only_unchanged_old_stat(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"one")
    old = time.time_ns() - 5 * 10**9
    os.utime(f, ns=(old, old))
    cache = HashCache(tmp_path / "cache.json")
    st = os.lstat(f)
    cache.store("f", st, "d1")  # ctime is "now": racy, not stored
    cache.save()
    assert HashCache(tmp_path / "cache.json").lookup("f", st) is None
    cache2 = HashCache(tmp_path / "cache.json")
    cache2._started_ns += 10 * 10**9  # a later run: the ctime is now well in the past
    cache2.store("f", st, "d1")
    cache2.save()
    assert HashCache(tmp_path / "cache.json").lookup("f", st) == "d1"
    f.write_bytes(b"two")  # same size, new ctime/mtime
    assert HashCache(tmp_path / "cache.json").lookup("f", os.lstat(f)) is None
    (tmp_path / "cache.json").write_text("{corrupt")
    assert HashCache(tmp_path / "cache.json").lookup("f", st) is None


def test_a_reader_that_does_not_own_the_file_can_hash_it():
    """O_NOATIME is refused (EPERM) to anyone but the file's owner: verifying a repository
    owned by root or the CVMFS service account must not fail on it. Run as a real second
    uid (65534) on a root-owned, world-readable file."""
    why = second_user_problem()
    if why:
        pytest.skip(why)
    import sys
    import tempfile
    from pathlib import Path

    # pytest's tmp_path is under a 0700 directory of root's: a world-traversable one instead
    tmp_path = Path(tempfile.mkdtemp(prefix="dd-hash-"))
    os.chmod(tmp_path, 0o755)
    data = os.urandom(3 * LARGE_FILE)  # both paths: the mmap one and the small-file one
    for name, body in (("big", data), ("small", data[:100])):
        (tmp_path / name).write_bytes(body)
    code = ("import sys; from depotdelivery.store.hashing import hash_file; "
            "print(*(hash_file(p) for p in sys.argv[1:]))")
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code,
                           str(tmp_path / "big"), str(tmp_path / "small")], capture_output=True, text=True, timeout=60)
    shutil.rmtree(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [blake3.blake3(data).hexdigest(), blake3.blake3(data[:100]).hexdigest()]


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    """A FIFO opened for reading blocks until a writer comes, i.e. forever: it is opened
    non-blocking and refused by its type. Scanned as a file and replaced by a FIFO since,
    it is a changed file (the publisher says publish again)."""
    from depotdelivery.store.hashing import NotRegularFileError, open_regular

    f = tmp_path / "f"
    f.write_bytes(b"x")
    st = os.lstat(f)
    f.unlink()
    os.mkfifo(f)
    with pytest.raises(NotRegularFileError, match="is not a regular file"):
        open_regular(f)
    with pytest.raises(NotRegularFileError):
        hash_file(f)
    with pytest.raises(FileChangedError, match="changed while it was being hashed"):
        hash_file(f, st)
    with pytest.raises(IntegrityError, match="is not a regular file"):
        copy_with_hash(f, tmp_path / "out")
    assert not (tmp_path / "out").exists()
