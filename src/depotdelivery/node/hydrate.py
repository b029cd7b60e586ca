"""The four hydration modes (stack, symlink, copy, overlay): read-only layers -> one usable depot stack."""
from __future__ import annotations

import errno
import os
import stat
import sys
import time

from depotdelivery._record import record
from depotdelivery.errors import IntegrityError, UnsupportedError
from depotdelivery.units import human_bytes

TYPE_CHECKING = False  # stack mode, a cold job's usual one, imports no typing or pathlib
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path
    from typing import Any

    from depotdelivery.store.hashing import Copier

__all__ = ["DELAY_ENV", "WRITE_ZONES", "Hydrated", "Layer", "hydrate", "mount_overlay", "overlay_support", "unmount",
           "verified_copy"]

# Julia and Pkg write into DEPOT_PATH[1] only here (julia-formats.md "Depot": new caches and
# *.ji.pidfile locks under compiled/vX.Y/<Pkg>/, logs/*_usage.toml, scratchspaces/<uuid>/<key>):
# these subtrees get real directories, everything else is linked at the highest level.
WRITE_ZONES = frozenset({"compiled", "logs", "scratchspaces"})
# Files Julia rewrites in place (Pkg's usage logs): copied, not linked, in symlink mode.
_COPIED_ZONES = frozenset({"logs"})

# A real per-entry delay (seconds) for crash tests: widens the window in which `kill -9`
# lands inside a hydration. Read only on the cold path.
DELAY_ENV = "DEPOTDELIVERY_HYDRATE_DELAY"


@record(kw_only=True)
class Layer:
    """One read-only depot of the stack (highest priority first): its directory, and for
    ``copy`` the ``(path relative to root, listing entry)`` pairs that say what it must contain."""

    name: str
    root: str | os.PathLike[str]
    entries: Callable[[], Iterable[Any]] | None = None


@record(kw_only=True)
class Hydrated:
    """What a hydration produced, with paths as they will be after the rename into place."""

    depot_path: tuple[str, ...]
    depot: str  # the writable first depot
    mount: str | None  # overlay mount point to (re)mount, else None
    files: int


def _delay() -> Callable[[], None]:
    import math

    text = os.environ.get(DELAY_ENV) or "0"
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        from depotdelivery.errors import UsageError

        raise UsageError(f"{DELAY_ENV}={text!r} is not a number of seconds")
    return (lambda: time.sleep(seconds)) if seconds > 0 else (lambda: None)


def hydrate(mode: str, layers: list[Layer], build: str | os.PathLike[str], final: str | os.PathLike[str]) -> Hydrated:
    """Populate ``build`` (a fresh directory later renamed to ``final``) for ``mode``."""
    tick = _delay()
    if mode == "stack":
        os.mkdir(os.path.join(build, "depot"))
        tick()
        top = os.path.join(final, "depot")
        return Hydrated(depot_path=(top, *(os.fspath(layer.root) for layer in layers)), depot=top, mount=None, files=0)
    from pathlib import Path

    build, final = Path(build), Path(final)
    depot = build / "depot"
    if mode == "symlink":
        depot.mkdir()
        files = _link_merge(depot, [Path(layer.root) for layer in layers], top=True, zone=False, copy=False, tick=tick)
        return Hydrated(depot_path=(str(final / "depot"),), depot=str(final / "depot"), mount=None, files=files)
    if mode == "copy":
        depot.mkdir()
        files = _copy_layers(depot, layers, tick)
        return Hydrated(depot_path=(str(final / "depot"),), depot=str(final / "depot"), mount=None, files=files)
    if mode == "overlay":
        overlay_support()
        for sub in ("upper", "work", "depot"):
            (build / sub).mkdir()
        tick()
        return Hydrated(depot_path=(str(final / "depot"),), depot=str(final / "depot"),
                        mount=str(final / "depot"), files=0)
    raise ValueError(f"unknown hydration mode {mode!r}")


def _link_merge(dst: Path, sources: list[Path], *, top: bool, zone: bool, copy: bool,
                tick: Callable[[], None]) -> int:
    """Merge directories ``sources`` (first wins) into real directory ``dst``: a name is linked
    when one source provides it and it is outside the write zones; directories present in
    several sources, and every directory inside a write zone, become real directories."""
    from pathlib import Path  # symlink mode only

    names: dict[str, list[tuple[Path, bool]]] = {}
    for src in sources:
        with os.scandir(src) as it:
            for entry in it:
                names.setdefault(entry.name, []).append((Path(entry.path), entry.is_dir(follow_symlinks=False)))
    count = 0
    for name, hits in sorted(names.items()):
        first, first_is_dir = hits[0]
        in_zone = zone or (top and name in WRITE_ZONES)
        sub_dirs = [path for path, is_dir in hits if is_dir]
        if first_is_dir and (in_zone or len(sub_dirs) > 1):
            (dst / name).mkdir()
            count += _link_merge(dst / name, sub_dirs, top=False, zone=in_zone,
                                 copy=copy or (top and name in _COPIED_ZONES), tick=tick)
        elif copy and not first_is_dir:
            _copy_log(os.fspath(first), os.fspath(dst / name))
            count += 1
        else:
            os.symlink(first, dst / name)
            count += 1
        tick()
    return count


def _copy_log(src: str, dest: str) -> None:
    """Copy a file of a copied zone (Pkg's usage logs) with its mode and mtime, as linking
    every other file trusts the read-only repository. Only a regular file is copied: a FIFO or
    a device there (``/dev/zero`` would fill the node's disk) is the repository's fault
    (IntegrityError, exit 4), and a symlink is copied as the symlink it is."""
    st = os.lstat(src)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dest)
        return
    if not stat.S_ISREG(st.st_mode):  # checked again on the open descriptor, by Copier
        raise IntegrityError(f"{src}: is not a regular file (mode {st.st_mode:o})")
    from depotdelivery.store.hashing import Copier

    try:
        Copier(64 << 10).copy(src, dest, mode=stat.S_IMODE(st.st_mode), mtime_ns=st.st_mtime_ns)
    except OSError as exc:
        if exc.filename is None or os.fspath(exc.filename) != src:
            raise
        raise IntegrityError(f"{src}: cannot be read: {exc.strerror}") from None


def verified_copy(src: Path | str, dest: Path | str, *, blake3: str, size: int, signed_by: str,
                  mode: int | None = None, mtime_ns: int | None = None, copier: Copier | None = None) -> None:
    """Copy repository file ``src`` to the new file ``dest`` (copy mode), hashing while copying:
    the copy must have the BLAKE3 and size ``signed_by`` names (a listing, a release's
    sysimage); ``mode`` and ``mtime_ns`` are given to it. A copy loop passes one ``copier``
    (its buffer) for every file. FileExistsError (before reading ``src``) if ``dest`` exists."""
    if copier is None:
        from depotdelivery.store.hashing import Copier

        copier = Copier()
    try:
        digest, got = copier.copy(os.fspath(src), os.fspath(dest), mode=mode, mtime_ns=mtime_ns, limit=size)
    except OSError as exc:
        if exc.filename is None or os.fspath(exc.filename) != os.fspath(src):
            raise  # the cache side (ENOSPC, EACCES, an existing dest): the caller's
        # the repository side: a listed file missing or unreadable (a CVMFS catalog
        # changing under the job, a mixed-up tree) is not a problem of the node cache
        raise IntegrityError(f"{src}: listed in {signed_by} but cannot be read: {exc.strerror} "
                             "(a changing CVMFS catalog? run again, or `depotdelivery verify`)") from None
    if digest != blake3 or got != size:
        raise IntegrityError(f"{src}: content does not match {signed_by} "
                             f"(blake3 {digest[:16]}... size {got}, expected {blake3[:16]}... size {size})")


def _copy_layers(depot: Path, layers: list[Layer], tick: Callable[[], None]) -> int:
    """Copy every listed entry, verifying each file's BLAKE3 and size while copying; modes and
    mtimes are kept (Julia 1.10 compares source mtimes). Per layer, its directories and
    symlinks first (in listing order: parents before children), then its files; a name an
    earlier layer made is skipped, so layer order is priority order. Directory modes/mtimes are applied last, deepest first, so writing into
    them is still possible. Paths are plain strings (a Path per file was most of the time)."""
    progress = _Progress()
    base = os.fspath(depot)
    dirs: list[tuple[str, int, int]] = []
    files = 0
    for layer in layers:
        if layer.entries is None:
            raise ValueError(f"layer {layer.name} has no listing: copy mode needs one")
        root = os.fspath(layer.root)
        todo: list[tuple[str, str, Any]] = []
        for rel, entry in layer.entries():
            dest = f"{base}/{rel}"
            kind = entry.type
            if kind == "file":
                todo.append((f"{root}/{rel}", dest, entry))
                continue
            try:  # an existing name: a higher-priority layer provides it
                if kind == "dir":
                    os.mkdir(dest)
                    dirs.append((dest, entry.mode, entry.mtime_ns))
                else:
                    os.symlink(entry.target, dest)
            except FileExistsError:
                pass
            tick()
        files += _copy_files(todo, f"the signed listing of {layer.name}", progress, tick)
    for path, mode, mtime_ns in sorted(dirs, key=lambda d: d[0].count("/"), reverse=True):
        os.chmod(path, mode)
        os.utime(path, ns=(mtime_ns, mtime_ns))
    progress.done()
    return files


def _copy_files(todo: list[tuple[str, str, Any]], signed_by: str, progress: _Progress,
                tick: Callable[[], None]) -> int:
    """Verified copies of ``(src, dest, listing entry)`` through one buffer; the number made
    (an existing ``dest`` is skipped). One thread: two (measured, 50k files on tmpfs) took
    1.9x as long, contending for the GIL and for the directories' inode locks."""
    from depotdelivery.store.hashing import Copier

    copier, made = Copier(), 0
    for src, dest, entry in todo:
        try:
            verified_copy(src, dest, blake3=entry.blake3, size=entry.size, signed_by=signed_by,
                          mode=entry.mode, mtime_ns=entry.mtime_ns, copier=copier)
        except FileExistsError:
            continue
        made += 1
        progress.add(entry.size)
        tick()
    return made


class _Progress:
    """``copied N files, X MiB`` on stderr, for a terminal only, once a copy has taken over a
    second (then at most five times a second), and cleared at the end."""

    __slots__ = ("bytes", "files", "next", "shown", "start")

    def __init__(self) -> None:
        self.files = self.bytes = 0
        self.start = time.monotonic()
        self.next = self.start + 1.0
        self.shown = False

    def add(self, size: int) -> None:
        self.files += 1
        self.bytes += size
        if self.files & 63 == 0 and time.monotonic() >= self.next:
            self.next = time.monotonic() + 0.2
            if self.shown or _stderr_tty():
                self.shown = True
                sys.stderr.write(f"\rdepotdelivery: copy mode: {self.files} files, {human_bytes(self.bytes)} verified")
                sys.stderr.flush()

    def done(self) -> None:
        if self.shown:
            sys.stderr.write(f"\rdepotdelivery: copy mode: {self.files} files, {human_bytes(self.bytes)} verified in "
                             f"{time.monotonic() - self.start:.1f} s\n")
            sys.stderr.flush()


def _stderr_tty() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def overlay_support() -> str:
    """The fuse-overlayfs binary, or :class:`UnsupportedError` saying what is missing."""
    import shutil  # shutil and subprocess: not for the stack mode of a cold job (~20 ms)

    binary = shutil.which("fuse-overlayfs")
    if binary is None:
        raise UnsupportedError("overlay mode needs fuse-overlayfs, which is not installed (use --mode stack or symlink)")
    try:
        fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise UnsupportedError(
            f"overlay mode needs FUSE, but /dev/fuse cannot be opened ({exc.strerror}); use --mode stack or symlink"
        ) from None
    os.close(fd)
    return binary


def mount_overlay(layers: list[Layer], depot_dir: str | os.PathLike[str]) -> None:
    """Mount the read-only ``layers`` (first on top) under ``depot_dir``'s writable upper dir."""
    from pathlib import Path

    depot_dir = Path(depot_dir)
    binary = overlay_support()
    lower = [str(layer.root) for layer in layers]
    for path in lower + [str(depot_dir)]:
        if ":" in path or "," in path:
            raise UnsupportedError(f"overlay mode cannot use path {path!r}: fuse-overlayfs options split on ':' and ','")
    options = f"lowerdir={':'.join(lower)},upperdir={depot_dir / 'upper'},workdir={depot_dir / 'work'}"
    import subprocess

    done = subprocess.run([binary, "-o", options, str(depot_dir / "depot")], check=False, capture_output=True, text=True)
    if done.returncode != 0 or not os.path.ismount(depot_dir / "depot"):
        raise UnsupportedError(
            f"fuse-overlayfs could not mount {depot_dir / 'depot'}: {done.stderr.strip() or done.returncode}"
        )


def unmount(mount: str | os.PathLike[str]) -> None:
    """Unmount an overlay depot (``gc``): fusermount for FUSE, umount as a last resort."""
    import shutil
    import subprocess

    for argv in (["fusermount3", "-u", str(mount)], ["fusermount", "-u", str(mount)], ["umount", str(mount)]):
        if shutil.which(argv[0]) is None:
            continue
        if subprocess.run(argv, check=False, capture_output=True).returncode == 0 or not os.path.ismount(mount):
            return
    if os.path.ismount(mount):
        raise OSError(errno.EBUSY, f"cannot unmount {mount}")
