"""The per-node job log: one JSON line per prepare() saying which release and variant a job got.

A site ships the file to its monitoring (docs/site-admin.md "Job log"). Many jobs append at
once, so each line is one ``write()`` to an ``O_APPEND`` descriptor: POSIX makes the seek to
the end and the write one atomic step (write(2), "If the O_APPEND flag ... the file offset
shall be set to the end of the file prior to each write"), and a line well under the page
size is written whole on a local filesystem, so lines never interleave. When the file passes
``job_log_max_bytes``, the writer that noticed takes ``<log>.lock`` and renames it to
``<log>.1`` (one generation, like logrotate's ``rotate 1``); writers still holding the old
descriptor finish their line into ``<log>.1`` (into nothing, if a second rotation overtook
them), so no line is ever split. The lock is 0600: anyone else able to hold it would stall
every job that rotates. Only ``os``,
``fcntl`` (already imported by the leases) and the package's small JSON encoder: the warm
path's import budget (tests/test_imports.py) does not change.
"""
from __future__ import annotations

import fcntl
import os
import time

from depotdelivery.store import fastjson

TYPE_CHECKING = False  # no `typing` on the hot path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from depotdelivery.node.config import Config
    from depotdelivery.node.env import Prepared

__all__ = ["FORMAT", "JOB_ENV", "OFF", "entry", "log_path", "write_line"]

FORMAT = 1
OFF = "off"
DEFAULT_NAME = "jobs.jsonl"
# The batch systems' job identifiers, recorded when set: Slurm (sbatch(1) "OUTPUT ENVIRONMENT
# VARIABLES"), PBS/Torque, LSF, Grid Engine.
JOB_ENV = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_PROCID",
           "PBS_JOBID", "LSB_JOBID", "JOB_ID")


def log_path(cfg: Config) -> str | None:
    """Where this configuration logs jobs: ``job_log``, default ``<cache>/jobs.jsonl``; None if off."""
    if cfg.job_log == OFF:
        return None
    return cfg.job_log or os.path.join(cfg.cache, DEFAULT_NAME)


def entry(prepared: Prepared) -> dict[str, object]:
    """The line for one prepared job (docs/site-admin.md lists the fields)."""
    env = os.environ
    return {"format": FORMAT, "time": round(time.time(), 3), "host": os.uname().nodename,
            "uid": os.getuid(), "pid": os.getpid(),
            "job": {name: env[name] for name in JOB_ENV if name in env},
            "release": prepared.release, "release_id": prepared.release_id, "variant": prepared.variant,
            "mode": prepared.mode, "key": prepared.key, "hydrated": prepared.hydrated,
            "ms": prepared.timings.get("total")}


def write_line(path: str, record: dict[str, object], max_bytes: int) -> None:
    """Append ``record`` as one line to ``path`` (one write), rotating past ``max_bytes``.
    Raises OSError; the caller decides whether a job fails over its log (it does not)."""
    line = (fastjson.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, line)
        if max_bytes and os.fstat(fd).st_size > max_bytes:
            _rotate(path, fd, max_bytes)
    finally:
        os.close(fd)


def _rotate(path: str, fd: int, max_bytes: int) -> None:
    lock = os.open(path + ".lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # another writer may have rotated between our write and the lock: rotate only if the
        # name still points at the (oversized) file we wrote to
        try:
            current = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return
        mine = os.fstat(fd)
        if (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino) and current.st_size > max_bytes:
            os.rename(path, path + ".1")
    finally:
        os.close(lock)  # closing drops the flock
