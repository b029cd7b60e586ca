"""Keys (keygen, key ids, TrustStore with revocations) and hashing (BLAKE3 vs b3sum, change detection, stat cache)."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time

import blake3
import pytest

from depotdelivery.errors import FormatError, InputError, IntegrityError, TrustError, UsageError
from depotdelivery.store.hashing import LARGE_FILE, FileChangedError, HashCache, copy_with_hash, hash_file
from depotdelivery.store.keys import REVOKED_FILE, TrustStore, key_id, keygen, load_private_key, sign


def test_keygen_writes_0600_private_and_public(tmp_path, cli):
    assert cli("keygen", "--out", str(tmp_path / "k"), "--json").code == 0
    assert stat.S_IMODE(os.stat(tmp_path / "k").st_mode) == 0o600
    assert (tmp_path / "k.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    out = cli.last.out
    key = load_private_key(tmp_path / "k")
    assert key.keyid in out and len(key.keyid) == 32
    # the documented derivation: first 16 bytes of BLAKE3 of the raw public key
    from cryptography.hazmat.primitives import serialization
    raw = key.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert key_id(raw) == blake3.blake3(raw).digest()[:16].hex() == key.keyid
    assert cli("keygen", "--out", str(tmp_path / "k")).code == 2  # never overwrites a key
    assert "already exists" in cli.last.err


def test_keygen_force_never_writes_into_the_old_file(tmp_path, cli):
    """--force over a world-readable key file: the new private key goes into a new 0600 file
    renamed over it, so another name of the old file (a hard link, an open descriptor) never
    sees it; without --force an existing .pub is refused too, before anything is written."""
    old = tmp_path / "k"
    old.write_bytes(b"old key")
    os.chmod(old, 0o644)
    os.link(old, tmp_path / "k-elsewhere")
    assert cli("keygen", "--out", str(old), "--force").code == 0
    assert stat.S_IMODE(os.stat(old).st_mode) == 0o600
    assert (tmp_path / "k-elsewhere").read_bytes() == b"old key", "the new key went into the old 0644 file"
    assert load_private_key(old).keyid
    (tmp_path / "n.pub").write_bytes(b"someone's public key")
    assert cli("keygen", "--out", str(tmp_path / "n")).code == 2
    assert "n.pub already exists" in cli.last.err
    assert not (tmp_path / "n").exists() and (tmp_path / "n.pub").read_bytes() == b"someone's public key"


def test_load_private_key_rejects_garbage(tmp_path):
    (tmp_path / "bad").write_text("not a key")
    with pytest.raises(InputError, match="not an unencrypted PEM private key"):
        load_private_key(tmp_path / "bad")
    with pytest.raises(InputError, match="cannot read key"):
        load_private_key(tmp_path / "missing")


@pytest.fixture
def two_keys(tmp_path):
    trust = tmp_path / "trust"
    trust.mkdir()
    keygen(tmp_path / "a")
    keygen(tmp_path / "b")
    shutil.copy(tmp_path / "a.pub", trust)
    return load_private_key(tmp_path / "a"), load_private_key(tmp_path / "b"), trust


def test_trust_store_verifies_and_names_problems(two_keys):
    a, b, trust = two_keys
    ts = TrustStore.from_dir(trust)
    doc = b'{"x":1}'
    assert ts.verify(doc, sign(doc, a), "release hep/1") == a.keyid
    assert ts.verify(doc, sign(doc, b, a), "release hep/1") == a.keyid  # any trusted signature suffices
    with pytest.raises(TrustError, match=f"release hep/1 signed by unknown key {b.keyid}: add its public key to {trust}"):
        ts.verify(doc, sign(doc, b), "release hep/1")
    with pytest.raises(IntegrityError, match="modified after signing"):
        ts.verify(b'{"x":2}', sign(doc, a), "release hep/1")
    with pytest.raises(TrustError, match="not signed"):
        ts.verify(doc, None, "release hep/1")
    with pytest.raises(FormatError, match="unreadable signature file"):
        ts.verify(doc, sign(doc, a)[:40], "release hep/1")


def test_revocation_list_is_honoured(two_keys):
    a, _, trust = two_keys
    (trust / REVOKED_FILE).write_text(f"# compromised 2026-11-01\n{a.keyid.upper()}  # laptop key\n")
    ts = TrustStore.from_dir(trust)
    with pytest.raises(TrustError, match=f"signed only by revoked key {a.keyid}"):
        ts.verify(b"d", sign(b"d", a), "channel stable")


@pytest.mark.parametrize("spoil, message", [
    (lambda f: os.symlink("gone", f), "is a dangling symlink"),
    (lambda f: os.mkdir(f), "cannot be read: Is a directory"),
    (lambda f: f.write_bytes(b"\xff\xfe not text"), "not UTF-8 at byte 0"),
])
def test_an_unreadable_revocation_list_fails_closed(two_keys, spoil, message):
    """A revocation list that exists but cannot be read never means "nothing revoked"."""
    a, _, trust = two_keys
    spoil(trust / REVOKED_FILE)
    with pytest.raises(TrustError, match=f"revocation list {trust / REVOKED_FILE}.*{message}"):
        TrustStore.from_dir(trust)


def test_trust_dir_must_exist(tmp_path):
    with pytest.raises(TrustError, match="does not exist"):
        TrustStore.from_dir(tmp_path / "nope")


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

    import depotdelivery.store.hashing as hashing

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


def test_usage_error_for_bad_names():
    from depotdelivery.store.fields import check_name
    with pytest.raises(UsageError):
        check_name("release name", "../etc")
