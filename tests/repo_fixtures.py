"""Small depots and repositories for the store/publish tests: files, executables, symlinks,
nested directories, nanosecond mtimes, a variant with a real ELF sysimage, a trusted signing key
with an empty repository, a series of small releases, a file a real writer keeps growing, and a
wait for a process to block on the repository lock."""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from depotdelivery.julia.features import feature_table
from depotdelivery.julia.targetdata import ImageTarget, TargetData
from depotdelivery.publisher.publish import publish
from depotdelivery.store.keys import PrivateKey, keygen, load_private_key
from depotdelivery.synth.elfimage import write_image
from depotdelivery.synth.targetdata import target_data_bytes

BASE_NS = 1_730_419_200_123_456_789  # 2024-11-01, with a nanosecond part Julia 1.10 would compare


def tree_digest(root: Path) -> str:
    """A hash of everything observable in a directory tree: names (as bytes: hostile ones need
    not be UTF-8), types, modes, mtimes, sizes, contents, link targets, and the root's own mode
    (lstat: a root that is a symlink, even a dangling one, is hashed as the link).
    Equal digests = byte-for-byte the same tree."""
    top = os.fsencode(root)
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            h.update(b"%s\0%d\0%d\0%d\0" % (os.path.relpath(p, top), st.st_mode, st.st_mtime_ns, st.st_size))
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as fh:
                    h.update(fh.read())
    h.update(b"%d" % os.lstat(top).st_mode)
    return h.hexdigest()


def unique_bytes(root: Path) -> int:
    """Bytes of the regular files below ``root``, each inode once: what hard links cost."""
    seen: set[int] = set()
    total = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode) and st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_size
    return total


def write(path: Path, data: bytes | str, *, mode: int = 0o644, mtime_ns: int = BASE_NS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def build_depot(root: Path, *, packages: tuple[str, ...] = ("Foo", "Bar"), julia: str = "1.11",
                env: str = "hep", salt: str = "", big: int = 0) -> Path:
    """A shared depot: packages, an environment, an artifact with an executable and a
    relative symlink, a registry, compiled caches. ``salt`` changes one package's source."""
    d = root
    for i, name in enumerate(packages):
        pkg = d / "packages" / name / f"Ab{i}cD"
        write(pkg / "Project.toml", f'name = "{name}"\nuuid = "00000000-0000-0000-0000-00000000000{i}"\n',
              mtime_ns=BASE_NS + i)
        write(pkg / "src" / f"{name}.jl", f"module {name}\n# {salt if i == 0 else ''}\nend\n", mtime_ns=BASE_NS + 10 + i)
        write(d / "compiled" / f"v{julia}" / name / f"x{i}_y.ji", hashlib.sha256(name.encode()).digest() * 8,
              mtime_ns=BASE_NS + 20 + i)
    art = d / "artifacts" / "0123456789abcdef0123456789abcdef01234567"
    write(art / "lib" / "libfoo.so", b"\x7fELF fake library" * 100, mode=0o755, mtime_ns=BASE_NS + 30)
    os.symlink("libfoo.so", art / "lib" / "libfoo.so.1")
    os.utime(art / "lib" / "libfoo.so.1", ns=(BASE_NS + 31, BASE_NS + 31), follow_symlinks=False)
    write(art / "bin" / "tool", "#!/bin/sh\necho tool\n", mode=0o755, mtime_ns=BASE_NS + 32)
    if big:
        write(art / "share" / "big.bin", os.urandom(big), mtime_ns=BASE_NS + 33)
    write(d / "environments" / env / "Project.toml", "[deps]\n" + "".join(f'{p} = "x"\n' for p in packages),
          mtime_ns=BASE_NS + 40)
    write(d / "environments" / env / "Manifest.toml", "# manifest\n", mtime_ns=BASE_NS + 41)
    write(d / "registries" / "General.toml", "[General]\n", mtime_ns=BASE_NS + 50)
    (d / "logs").mkdir()
    for dirpath, dirnames, _ in os.walk(d):
        for n in dirnames:
            os.utime(os.path.join(dirpath, n), ns=(BASE_NS + 60, BASE_NS + 60))
    return d


def sysimage_blob(arch: str = "x86_64", julia: str = "1.11",
                  targets: tuple[tuple[str, tuple[str, ...]], ...] = (("haswell", ("avx2", "bmi2", "fma")),)) -> bytes:
    table = feature_table(arch, julia)
    zero = tuple([0] * table.nwords)
    return target_data_bytes(TargetData(tuple(
        ImageTarget(flags=0, en_words=table.words(table.enable_depends(feats)), dis_words=zero, name=name)
        for name, feats in targets)))


def build_variant(root: Path, *, arch: str = "x86_64", julia: str = "1.11", sysimage: bool = True,
                  targets: tuple[tuple[str, tuple[str, ...]], ...] = (("haswell", ("avx2", "bmi2", "fma")),)) -> Path:
    """``variants/<target>/``: a real ELF sysimage carrying clone-target data, plus caches."""
    root.mkdir(parents=True)
    if sysimage:
        write_image(root / "sys.so", sysimage_blob(arch, julia, targets), machine=arch)
        os.utime(root / "sys.so", ns=(BASE_NS + 70, BASE_NS + 70))
    write(root / "depot" / "compiled" / f"v{julia}" / "Foo" / "x0_y.so", b"pkgimage" * 64, mode=0o755,
          mtime_ns=BASE_NS + 71)
    return root


@dataclass(frozen=True, slots=True, kw_only=True)
class Publisher:
    """A signing key whose public half is the only trusted key, and an empty repository."""

    key_path: Path
    key: PrivateKey
    trust: Path
    repo: Path


def make_publisher(base: Path) -> Publisher:
    """``base/key`` (its ``key.pub`` copied into ``base/trust``) and an empty ``base/repo``."""
    keygen(base / "key")
    trust = base / "trust"
    trust.mkdir()
    shutil.copy(base / "key.pub", trust)
    repo = base / "repo"
    repo.mkdir()
    return Publisher(key_path=base / "key", key=load_private_key(base / "key"), trust=trust, repo=repo)


def publish_series(pub: Publisher, depot: Path, versions: Iterable[str]) -> None:
    """Releases ``hep/<v>`` of ``depot`` without variants, one per version, each differing from
    the one before in a single file (the registry names the version)."""
    for v in versions:
        write(depot / "registries" / "General.toml", f"[General] # {v}\n")
        publish(pub.repo, "hep", v, depot, {}, pub.key, use_hash_cache=False)


@contextmanager
def growing(path: Path, chunk: bytes) -> Iterator[None]:
    """While the block runs, a real writer thread keeps appending ``chunk`` to ``path``."""
    stop = threading.Event()

    def writer() -> None:
        with open(path, "ab") as fh:
            while not stop.is_set():
                fh.write(chunk)
                fh.flush()

    t = threading.Thread(target=writer)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


def blocked_on_flock(proc: subprocess.Popen[bytes]) -> bool:
    """Wait until ``proc`` is blocked in ``flock`` (a waiter line of /proc/locks names its pid):
    True; or has exited without blocking: False. A state, not a clock."""
    while proc.poll() is None:
        with open("/proc/locks") as f:
            if any(" -> FLOCK " in line and f" {proc.pid} " in line for line in f):
                return True
        time.sleep(0.005)
    return False


# A real process that takes dir_lock(argv[1]) (what a publisher holds while it writes) and keeps
# it until killed.
_LOCK_HOLDER = ("import sys, time; from pathlib import Path; from depotdelivery.store.atomic import dir_lock\n"
                "with dir_lock(Path(sys.argv[1])):\n print('held', flush=True); time.sleep(600)")


@contextmanager
def lock_held(path: Path) -> Iterator[subprocess.Popen[str]]:
    """While the block runs, another real process holds ``dir_lock(path)``; SIGKILLed after."""
    proc = subprocess.Popen([sys.executable, "-c", _LOCK_HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait()
