"""A node cache on a filesystem where flock does not work.

No such filesystem can be mounted on this host, and the first test shows it: /proc/filesystems
lists none of the kernel filesystems that implement their own ``flock`` and can refuse it (NFS
without lockd answers ENOLCK; CIFS, 9p, GFS2, OCFS2, Ceph), and every filesystem that can be
mounted here - tmpfs, ramfs, kernel overlay, squashfs, and FUSE (fuse-overlayfs) - gets flock
from the VFS: FUSE falls back to local flock when its daemon does not negotiate
FUSE_FLOCK_LOCKS (linux fs/fuse/file.c, fuse_file_flock), so a FUSE filesystem "without lock
support" still locks. The probe checks that the locks are real (a second process is refused).

The detection path is therefore exercised with a stand-in, clearly named: ``noflock.so``, an
LD_PRELOAD shim whose ``flock()`` fails with ENOLCK exactly as an NFS client without a
reachable lockd does, and which records every call (path, operation) so the test can see that
depotdelivery really asked for the lock on the cache and then refused to go on (exit 8)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from node_fixtures import build_repo, captured_cpu, node_env

HASWELL = str(captured_cpu("linux-rhel7-haswell"))
FLOCKING = ("nfs", "nfs4", "cifs", "smb3", "9p", "gfs2", "ocfs2", "ceph")

# Locks the mounted directory itself (an O_RDONLY descriptor: works on read-only squashfs too),
# then checks that a second process is refused: the lock is real, not a no-op.
_PROBE = textwrap.dedent("""
    import fcntl, json, os, subprocess, sys
    fd = os.open(sys.argv[1], os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        print(json.dumps({"ok": False, "errno": exc.errno}))
        raise SystemExit(0)
    other = subprocess.run([sys.executable, "-c",
        "import fcntl, os, sys\\nfd = os.open(sys.argv[1], os.O_RDONLY)\\n"
        "try:\\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\\nexcept BlockingIOError:\\n    sys.exit(11)\\n",
        sys.argv[1]])
    print(json.dumps({"ok": True, "second_refused": other.returncode == 11}))
""")


def _mounts(tmp: Path) -> dict[str, str]:
    """Shell steps that mount one filesystem of each kind at tmp/<kind> (writable where possible)."""
    lower, upper, work, sq = tmp / "lower", tmp / "upper", tmp / "work", tmp / "img.sqfs"
    for d in (lower, upper, work):
        d.mkdir()
    steps = {
        "tmpfs": "mount -t tmpfs tmpfs {d}",
        "ramfs": "mount -t ramfs ramfs {d}",
        "overlay": f"mount -t overlay overlay -o lowerdir={lower},upperdir={upper},workdir={work} {{d}}",
    }
    if shutil.which("fuse-overlayfs") and os.path.exists("/dev/fuse"):
        (tmp / "fupper").mkdir()
        (tmp / "fwork").mkdir()
        steps["fuse (fuse-overlayfs)"] = (f"fuse-overlayfs -o lowerdir={lower},upperdir={tmp / 'fupper'},"
                                          f"workdir={tmp / 'fwork'} {{d}}")
    if shutil.which("mksquashfs"):
        subprocess.run(["mksquashfs", str(lower), str(sq), "-quiet", "-noappend"], check=True, capture_output=True)
        steps["squashfs"] = f"mount -t squashfs -o loop {sq} {{d}}"
    return steps


def test_every_mountable_filesystem_here_supports_flock(tmp_path):
    listed = {line.split()[-1] for line in Path("/proc/filesystems").read_text().splitlines() if line.strip()}
    assert not listed & set(FLOCKING), f"a filesystem with its own flock exists here: {listed & set(FLOCKING)}"
    results = {}
    for kind, step in _mounts(tmp_path).items():
        d = tmp_path / f"mnt-{kind.split()[0]}"
        d.mkdir()
        # unmount before leaving: a FUSE daemon would otherwise outlive the namespace
        script = (f"{step.format(d=d)} || exit 97; {sys.executable} -c '{_PROBE}' {d}; rc=$?; "
                  f"umount {d}; exit $rc")
        done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                              capture_output=True, text=True, timeout=60)
        if done.returncode == 97:
            results[kind] = {"skipped": done.stderr.strip()}
            continue
        assert done.returncode == 0, (kind, done.stderr)
        results[kind] = json.loads(done.stdout)
    probed = {k: v for k, v in results.items() if "skipped" not in v}
    assert {"tmpfs", "ramfs"} <= set(probed), results
    for kind, r in probed.items():
        assert r == {"ok": True, "second_refused": True}, (kind, r)


_SHIM = r"""
/* noflock.so - STAND-IN for a filesystem without flock (an NFS client without lockd):
   every flock() fails with ENOLCK; each call is recorded in $NOFLOCK_LOG. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int flock(int fd, int op) {
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    path[n < 0 ? 0 : n] = 0;
    const char *log = getenv("NOFLOCK_LOG");
    if (log) {
        int l = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (l >= 0) { dprintf(l, "flock %s %d ENOLCK\n", path, op); close(l); }
    }
    errno = ENOLCK;
    return -1;
}
"""


@pytest.fixture(scope="module")
def noflock(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the noflock.so stand-in")
    d = tmp_path_factory.mktemp("noflock")
    (d / "noflock.c").write_text(_SHIM)
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(d / "noflock.so"), str(d / "noflock.c")], check=True)
    return d / "noflock.so"


def test_cache_without_flock_is_refused_with_a_clear_message(noflock, tmp_path):
    repo = build_repo(tmp_path / "r", targets=("haswell",), packages=2)
    cache = tmp_path / "cache"
    log = tmp_path / "flock.log"
    env = node_env(repo, cache, DEPOTDELIVERY_CPUINFO=HASWELL)
    shim = {"LD_PRELOAD": str(noflock), "NOFLOCK_LOG": str(log)}

    def run(*args: str, preload: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "depotdelivery", *args], capture_output=True, text=True,
                              env={**os.environ, **env, **(shim if preload else {})}, timeout=120)

    cold = run("prepare")  # nothing hydrated yet: the cold path's gate is the first lock
    assert cold.returncode == 8, cold.stderr
    assert cold.stderr.startswith("depotdelivery: ") and len(cold.stderr.strip().splitlines()) == 1
    assert "flock" in cold.stderr and str(cache) in cold.stderr, cold.stderr
    assert not (cache / "depots").is_dir() or os.listdir(cache / "depots") == []
    calls = log.read_text().splitlines()
    assert calls and all(c.startswith(f"flock {cache}/") for c in calls), calls

    assert run("prepare", preload=False).returncode == 0  # hydrated where flock works
    before = sorted(p.name for p in (cache / "depots").iterdir())
    log.unlink()
    hot = run("prepare")  # the hot path takes no lock, but its lease is an flock
    assert hot.returncode == 8 and "flock" in hot.stderr and "leases" in hot.stderr, hot.stderr
    assert "lease" in log.read_text()
    gc = run("gc", "--keep", "0", "--cache", str(cache))
    assert gc.returncode == 8, gc.stderr  # gc cannot tell a held lease from a dead one: it must not guess
    assert "internal error" not in gc.stderr
    assert sorted(p.name for p in (cache / "depots").iterdir()) == before
