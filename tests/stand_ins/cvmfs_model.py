"""STAND-IN MODEL of a CernVM-FS repository (release manager + client), used only by tests and
benchmarks through tests/stand_ins/cvmfs_server when CVMFS_STANDIN_MODEL=1.

No cvmfs_server or cvmfs client can run here, so this models what they do to the data, with
real kernel mounts (root needed; `problem()` says why it cannot run otherwise):

* Outside a transaction /cvmfs/FQRN (CVMFS_STANDIN_REPO) is a read-only bind mount (nosuid,
  as the client mounts: doc-cvmfs "SETUID bit and file capabilities") of the published revision
  (STATE/rdonly) -- the tree a client shows, not the files the publisher wrote.
* `transaction` mounts overlayfs over it exactly as cvmfs_server's fstab line does
  (lowerdir=rdonly, upperdir=scratch, workdir, no redirect_dir: cvmfs_server_util mkfs), so
  what the kernel does is real: a hard link to a file of an earlier release copies that file
  up whole into the scratch area, and renaming a directory of an earlier revision fails (EXDEV).
* `publish` processes the scratch area only (as cvmfs_server's sync of the union does), into
  the next revision, with what the catalog keeps: mtimes in whole seconds (the catalog's
  "Last Modified", doc-cvmfs cpt-details "File Catalog"; nanoseconds with
  CVMFS_STANDIN_MTIME_NS=1, i.e. CVMFS_ENABLE_MTIME_NS=true); hard links only within one
  directory ("The emulated hard links work within the same directory, only", same page;
  CVMFS_IGNORE_XDIR_HARDLINKS=true breaks the others); ownership claimed by the reading user
  (CVMFS_CLAIM_OWNERSHIP=yes, the client default); no xattrs; whiteouts and opaque directories
  applied. Nested catalogs follow the `.cvmfscatalog` markers: each publish records in
  STATE/publishes.jsonl which catalogs it changed, their entry counts, and the scratch-area cost
  (regular files and bytes written into the transaction, files copied up from the lower layer).
  A catalog over 200k entries (root, CVMFS_ROOT_KCATALOG_LIMIT default) or 500k (nested) is
  warned about on stderr, as cvmfs_server does.
* `abort` discards the scratch area.
"""
from __future__ import annotations

import filecmp
import json
import os
import shutil
import stat
import subprocess
import sys
import time

_ROOT_LIMIT, _NESTED_LIMIT = 200_000, 500_000
MARKER = ".cvmfscatalog"


def problem() -> str | None:
    """Why the model cannot run on this machine, or None."""
    if os.geteuid() != 0:
        return "the CVMFS model mounts overlayfs and read-only bind mounts in this namespace: needs root"
    for tool in ("mount", "umount"):
        if shutil.which(tool) is None:
            return f"{tool}(8) is not installed"
    return None


class ModelError(RuntimeError):
    """A mount or unmount the model needs failed (cvmfs_server reports it as a refusal; a test's
    finalizer sees an ordinary exception, never a SystemExit that would abort pytest's teardown)."""


def _sh(*argv: str) -> None:
    done = subprocess.run(argv, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise ModelError(f"{' '.join(argv)}: {done.stderr.strip()}")


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as fh:
        return any(line.split()[4] == path for line in fh)


def _umount(path: str) -> None:
    while _mounted(path):
        _sh("umount", path)


def _umount_patiently(path: str, seconds: float = 10.0) -> None:
    """A finalizer's unmount: a FUSE daemon the test just unmounted (fuse-overlayfs over the
    repository, overlay mode) can hold the tree for a moment after fusermount returns, so wait
    out EBUSY, then detach lazily rather than leave the mount behind."""
    deadline = time.monotonic() + seconds
    while _mounted(path):
        try:
            _sh("umount", path)
        except ModelError:
            if time.monotonic() > deadline:
                _sh("umount", "-l", path)
            else:
                time.sleep(0.1)


def _ro_bind(src: str, dst: str) -> None:
    _sh("mount", "--bind", src, dst)
    _sh("mount", "-o", "remount,bind,ro,nosuid,nodev", dst)


class Model:
    def __init__(self, state: str, repo: str) -> None:
        self.state, self.repo = state, os.path.realpath(repo)
        self.rdonly = os.path.join(state, "rdonly")
        self.upper = os.path.join(state, "scratch", "upper")
        self.work = os.path.join(state, "scratch", "work")
        self.mtime_ns = os.environ.get("CVMFS_STANDIN_MTIME_NS") == "1"

    def ensure(self) -> None:
        """First use: the repository's current content becomes revision 0, mounted read-only."""
        if os.path.isdir(self.rdonly):
            return
        os.makedirs(self.rdonly)
        if os.listdir(self.repo):
            self._apply(self.repo)
            for name in os.listdir(self.repo):
                p = os.path.join(self.repo, name)
                shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
        _ro_bind(self.rdonly, self.repo)

    def transaction(self) -> None:
        self.ensure()
        _umount(self.repo)
        for d in (self.upper, self.work):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
        _sh("mount", "-t", "overlay", "overlay", "-o",
            f"lowerdir={self.rdonly},upperdir={self.upper},workdir={self.work},nodev", self.repo)

    def abort(self) -> None:
        _umount(self.repo)
        shutil.rmtree(os.path.join(self.state, "scratch"), ignore_errors=True)
        _ro_bind(self.rdonly, self.repo)

    def publish(self, tag: str | None) -> None:
        _umount(self.repo)
        cost = self._cost()
        changed = self._apply(self.upper)
        shutil.rmtree(os.path.join(self.state, "scratch"), ignore_errors=True)
        _ro_bind(self.rdonly, self.repo)
        catalogs = {c: self._entries(c) for c in sorted(changed)}
        for c, n in catalogs.items():
            limit = _ROOT_LIMIT if c == "" else _NESTED_LIMIT
            if n > limit:
                print(f"cvmfs_server (model): WARNING: catalog at /{c} has {n} entries (> {limit})", file=sys.stderr)
        with open(os.path.join(self.state, "publishes.jsonl"), "a") as fh:
            fh.write(json.dumps({"tag": tag, **cost, "catalogs_changed": catalogs}) + "\n")

    # ---- what a publish costs and changes -------------------------------------------------
    def _cost(self) -> dict[str, int]:
        """Regular files (inodes) and bytes in the scratch area, and how many of them are
        unchanged copy-ups of a published file (same path, same bytes: pure cost)."""
        inodes: dict[tuple[int, int], int] = {}
        copied_up = paths = 0
        for dirpath, _, files in os.walk(self.upper):
            for f in files:
                p = os.path.join(dirpath, f)
                st = os.lstat(p)
                if not stat.S_ISREG(st.st_mode):
                    continue
                paths += 1
                inodes[(st.st_dev, st.st_ino)] = st.st_size
                lower = os.path.join(self.rdonly, os.path.relpath(p, self.upper))
                if os.path.isfile(lower) and filecmp.cmp(lower, p, shallow=False):
                    copied_up += 1
        return {"files_written": len(inodes), "bytes_written": sum(inodes.values()),
                "paths_in_scratch": paths, "copied_up": copied_up}

    def catalog_of(self, rel: str) -> str:
        """The nested catalog (its root, '' for the root catalog) holding path ``rel``."""
        parts = rel.split("/") if rel else []
        for n in range(len(parts), 0, -1):
            d = "/".join(parts[:n])
            if os.path.isfile(os.path.join(self.rdonly, d, MARKER)):
                return d
        return ""

    def _entries(self, catalog: str) -> int:
        """Entries in ``catalog``, not counting those of catalogs nested in it."""
        n = 0
        for dirpath, dirs, files in os.walk(os.path.join(self.rdonly, catalog)):
            nested = [d for d in dirs if os.path.isfile(os.path.join(dirpath, d, MARKER))]
            for d in nested:
                dirs.remove(d)
            n += len(dirs) + len(files) + len(nested)
        return n

    # ---- the scratch area into the next revision ------------------------------------------
    def _apply(self, src: str) -> set[str]:
        """Put the tree ``src`` (an overlay upper layer) over the revision; the catalogs changed."""
        changed: set[str] = set()
        dirs: list[tuple[str, os.stat_result]] = []
        links: dict[tuple[int, int, str], str] = {}  # (dev, inode, parent) -> first path there
        for dirpath, dirnames, filenames in os.walk(src):
            rel_dir = os.path.relpath(dirpath, src).replace(os.sep, "/")
            rel_dir = "" if rel_dir == "." else rel_dir
            dest_dir = os.path.join(self.rdonly, rel_dir)
            if rel_dir:
                opaque = _xattr(dirpath, "trusted.overlay.opaque") == b"y"
                if opaque or not os.path.isdir(dest_dir) or os.path.islink(dest_dir):
                    _remove(dest_dir)
                    os.mkdir(dest_dir)
                    changed.add(self.catalog_of(rel_dir))  # a new directory entry
            # (a directory only copied up as the parent of a change is not counted: its entry's
            # mtime moves in the catalog(s) holding it, as CVMFS updates the path to a change)
            dirs.append((dest_dir, os.lstat(dirpath)))
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                self._apply_entry(os.path.join(dirpath, name), os.path.join(dest_dir, name), rel_dir, links)
                changed.add(self.catalog_of(f"{rel_dir}/{name}".lstrip("/")))
        for dest, st in reversed(dirs):  # deepest last-visited first: entries no longer move them
            os.chmod(dest, stat.S_IMODE(st.st_mode))
            self._own_and_time(dest, st)
        return changed

    def _apply_entry(self, path: str, dest: str, parent: str, links: dict[tuple[int, int, str], str]) -> None:
        st = os.lstat(path)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:  # an overlayfs whiteout: deleted
            _remove(dest)
            return
        _remove(dest)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(path), dest)
        elif stat.S_ISREG(st.st_mode):
            first = links.get((st.st_dev, st.st_ino, parent)) if st.st_nlink > 1 else None
            if first is not None:
                os.link(first, dest)  # a hard link within one directory survives
                return
            shutil.copyfile(path, dest)  # data only: no xattrs
            os.chmod(dest, stat.S_IMODE(st.st_mode))
            links[(st.st_dev, st.st_ino, parent)] = dest
        else:
            return  # sockets, FIFOs, devices: not published by this model
        self._own_and_time(dest, st)

    def _own_and_time(self, dest: str, st: os.stat_result) -> None:
        os.lchown(dest, os.getuid(), os.getgid())  # CVMFS_CLAIM_OWNERSHIP: the reader owns all
        ns = st.st_mtime_ns if self.mtime_ns else st.st_mtime_ns // 10**9 * 10**9
        os.utime(dest, ns=(ns, ns), follow_symlinks=False)


def _xattr(path: str, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None


def _remove(p: str) -> None:
    if os.path.isdir(p) and not os.path.islink(p):
        shutil.rmtree(p)
    elif os.path.lexists(p):
        os.unlink(p)


def unmount(state: str, repo: str) -> None:
    """Tear the model's mounts down (a test's finalizer)."""
    _umount_patiently(os.path.realpath(repo))
    shutil.rmtree(os.path.join(state, "scratch"), ignore_errors=True)


if __name__ == "__main__":  # cvmfs_model.py ensure|unmount STATE REPO
    if sys.argv[1:2] == ["unmount"]:
        unmount(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["ensure"]:
        Model(sys.argv[2], sys.argv[3]).ensure()
