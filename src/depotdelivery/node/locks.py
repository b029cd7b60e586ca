"""Hydration locks (one flock-ed lock file per depot key) and leases (an flock held while a job runs)."""
from __future__ import annotations

import _thread
import errno
import fcntl
import os
import time

from depotdelivery.errors import CacheError, LockTimeoutError
from depotdelivery.node._record import Record
from depotdelivery.oserrors import cache_error

__all__ = ["Gate", "Lease", "LeaseInfo", "acquire_lease", "acquire_pid_lease", "hydration_lock", "leases",
           "process_start", "reap_leases", "try_hydration_lock"]

# Only these errnos mean "held by someone else" (as in filelock 3.13.1's UnixFileLock); any other
# errno (ENOLCK on an NFS without lockd, EBADF, ...) means flock does not work here.
_CONTENDED = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)


def _acquire_file_lock(lock_file: str, timeout: float) -> Gate | None:
    """The hydration lock, held (an exclusive flock on the lock file), or None when another
    process held it past ``timeout`` seconds (0: one try). Plain fcntl through :class:`Gate`:
    ``filelock`` cost a cold job more than all the rest of its prepare() (4.x imports
    asyncio, inspect and pathlib) and, like this, only flock-s the file (lock files stay)."""
    gate = Gate(lock_file)
    deadline = time.monotonic() + timeout
    try:
        while not gate.try_lead():
            if time.monotonic() >= deadline:
                gate.close()
                return None
            try:
                gate.wait_free(deadline, timeout)  # then race the other waiters for it
            except LockTimeoutError:
                gate.close()
                return None
    except BaseException:
        gate.close()
        raise
    return gate


class _Held:
    """``with``-block holding an acquired hydration lock (None: not acquired); a class, not
    ``contextlib.contextmanager``, whose import costs more than a warm prepare()."""

    __slots__ = ("lock",)

    def __init__(self, lock: Gate | None) -> None:
        self.lock = lock

    def __enter__(self) -> bool:
        return self.lock is not None

    def __exit__(self, *exc: object) -> None:
        if self.lock is not None:
            self.lock.close()


def hydration_lock(lock_file: str, timeout: float) -> _Held:
    """Hold the hydration lock of one depot key (``with hydration_lock(...):``);
    :class:`LockTimeoutError` after ``timeout`` s."""
    lock = _acquire_file_lock(lock_file, timeout)
    if lock is None:
        raise LockTimeoutError(
            f"another process held the hydration lock {lock_file} for more than {timeout:g} s "
            "(raise lock_timeout / DEPOTDELIVERY_LOCK_TIMEOUT, or look for a hung job)")
    return _Held(lock)


class Gate:
    """The cold path's gate (plain fcntl; also the hydration locks' primitive): one
    job leads (exclusive flock) and verifies/selects/hydrates; the others wait until they can
    take the flock *shared*, which they all get at once when the leader is done, and then
    read its records lock-free."""

    __slots__ = ("fd", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = self._open()

    def _open(self) -> int:
        try:
            try:
                return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise cache_error("create lock", self.path, exc) from None

    def __enter__(self) -> Gate:  # noqa: PYI034 (typing.Self would import typing on the hot path)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the gate's descriptor, which also drops its flock."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _try(self, how: int) -> bool:
        try:
            fcntl.flock(self.fd, how | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno in _CONTENDED:
                return False
            raise CacheError(f"cannot lock {self.path}: {exc.strerror} (no working flock?)") from None

    def try_lead(self) -> bool:
        """Take the gate exclusively if nobody holds it; release with :meth:`unlock`."""
        return self._try(fcntl.LOCK_EX)

    def unlock(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def wait_free(self, deadline: float, timeout: float) -> None:
        """Return once no leader holds the gate (monotonic ``deadline``), else LockTimeoutError.

        A helper thread blocks in flock(LOCK_SH) on a second open file description of the gate
        (its lock is independent of :attr:`fd`'s) and lets go at once; this thread waits for it
        with the timeout. Waiting costs no CPU and ends the moment the leader unlocks: polling
        cost every waiter CPU time and latency on the cores the leader needs (bench_prepare.py's
        simultaneous cold jobs). ``_thread`` is built in and loaded at start-up (``threading`` is not). After a
        timeout the helper stays blocked until the leader is done, then lets go at once."""
        if self._try(fcntl.LOCK_SH):  # the leader is already done: no thread (nor a timeout of 0 s)
            self.unlock()
            return
        fd = self._open()
        done = _thread.allocate_lock()
        done.acquire()
        failed: list[OSError] = []

        def helper() -> None:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
            except OSError as exc:
                failed.append(exc)
            finally:
                os.close(fd)  # drops the shared lock: the gate was free, that is all we wait for
                done.release()

        try:
            _thread.start_new_thread(helper, ())
        except RuntimeError as exc:  # no thread left (RLIMIT_NPROC, memory)
            os.close(fd)
            raise CacheError(f"cannot wait for {self.path}: {exc}") from None
        if not done.acquire(timeout=min(max(0.0, deadline - time.monotonic()), _thread.TIMEOUT_MAX)):
            raise LockTimeoutError(
                f"another process held {self.path} for more than {timeout:g} s (raise lock_timeout / "
                "DEPOTDELIVERY_LOCK_TIMEOUT, or look for a hung job)")
        if failed:
            raise CacheError(f"cannot lock {self.path}: {failed[0].strerror} (no working flock?)")


def try_hydration_lock(lock_file: str) -> _Held:
    """Non-blocking variant for ``gc``: ``with try_hydration_lock(f) as got`` (False when
    another process holds the lock)."""
    return _Held(_acquire_file_lock(lock_file, 0))


class Lease:
    """An open, flock-ed lease file. The descriptor is inheritable so that a job started by
    ``exec`` (execve) or a child process keeps the lease for as long as it runs; the kernel
    drops the lock when the last process holding the descriptor exits."""

    __slots__ = ("fd", "key", "path")

    def __init__(self, *, key: str, path: str, fd: int) -> None:
        self.key, self.path, self.fd = key, path, fd

    def __repr__(self) -> str:
        return f"Lease(key={self.key!r}, path={self.path!r}, fd={self.fd})"

    def release(self) -> None:
        """Drop the lease now (normally the process exit does it)."""
        if self.fd >= 0:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            os.close(self.fd)
            self.fd = -1
            _HELD.pop((os.getpid(), self.key), None)


# (pid, key) -> Lease: repeated prepare() calls in one process reuse one lease; a forked
# child gets its own entry (it shares the parent's open descriptor, hence its lock, anyway).
_HELD: dict[tuple[int, str], Lease] = {}


def _create_lease_file(directory: str, path: str, flags: int) -> int:
    # the per-key leases directory is made on first use; a failure is the node cache's (exit 8)
    try:
        try:
            return os.open(path, flags, 0o600)
        except FileNotFoundError:
            os.makedirs(directory, exist_ok=True)
            return os.open(path, flags, 0o600)
    except OSError as exc:
        raise cache_error("create lease", path, exc) from None


def acquire_lease(leases_dir: str, key: str) -> Lease:
    """Take a lease on depot ``key``: create the file under a hidden name, flock it, then
    rename it into place, so ``gc`` never sees an unlocked lease that is about to be locked."""
    held = _HELD.get((os.getpid(), key))
    if held is not None and held.fd >= 0:
        return held
    directory = os.path.join(leases_dir, key)
    name = f"{os.getpid()}-{os.urandom(4).hex()}"
    tmp = os.path.join(directory, f".{name}.tmp")
    fd = _create_lease_file(directory, tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.set_inheritable(fd, True)
        final = os.path.join(directory, f"{name}.lease")
        os.rename(tmp, final)
    except OSError as exc:
        os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise CacheError(f"cannot take lease in {directory}: {exc.strerror} (no working flock?)") from None
    lease = Lease(key=key, path=final, fd=fd)
    _HELD[(os.getpid(), key)] = lease
    return lease


PID_LEASE = ".pidlease"


def process_start(pid: int) -> int | None:
    """Start time of process ``pid`` (clock ticks since boot, field 22 of /proc/<pid>/stat,
    proc(5)), or None if there is no such process or it has exited (a zombie its parent has
    not reaped yet): with the pid it names one process, even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may contain spaces and ')'
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):  # field 3, state: zombie or dead
        return None
    return int(fields[22 - 3])


def acquire_pid_lease(leases_dir: str, key: str, pid: int) -> str:
    """Lease depot ``key`` for as long as process ``pid`` lives, without holding a descriptor
    in it: ``eval "$(depotdelivery env)"`` exports the depot into a shell whose ``env`` child
    exits at once. The file ``<pid>-<start>.pidlease`` is held while a process with that pid
    and start time exists. Call it while holding an flock lease on ``key`` (no gap for gc)."""
    start = process_start(pid)
    if start is None:
        raise CacheError(f"cannot lease depot {key} for process {pid}: no such process")
    directory = os.path.join(leases_dir, key)
    path = os.path.join(directory, f"{pid}-{start}{PID_LEASE}")
    fd = _create_lease_file(directory, path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC)
    os.close(fd)
    return path


def _pid_lease_held(name: str) -> bool:
    pid, _, start = name[: -len(PID_LEASE)].partition("-")
    return pid.isdigit() and start.isdigit() and process_start(int(pid)) == int(start)


class LeaseInfo(Record):
    """A lease file seen by ``status``/``gc``: its owner pid, age and whether it is held."""

    __slots__ = ("held", "mtime", "path", "pid")
    path: str
    pid: int | None
    held: bool
    mtime: float


def _probe(path: str) -> bool | None:
    """True if some process holds ``path`` locked (a pid lease: its process lives), False if
    not, None if it vanished."""
    name = os.path.basename(path)
    if name.endswith(PID_LEASE):
        return _pid_lease_held(name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _CONTENDED:
            return True
        raise CacheError(f"cannot probe lease {path}: {exc.strerror}") from None
    finally:
        os.close(fd)  # also drops our probe lock
    return False


def leases(leases_dir: str, key: str) -> list[LeaseInfo]:
    """The lease files of depot ``key`` and whether each is still held by a live process."""
    found: list[LeaseInfo] = []
    for entry in _entries(os.path.join(leases_dir, key)):
        if entry.name.startswith("."):
            continue
        path = entry.path
        try:
            mtime = entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            continue
        held = _probe(path)
        if held is None:
            continue
        pid_text = entry.name.split("-", 1)[0]
        found.append(LeaseInfo(path=path, pid=int(pid_text) if pid_text.isdigit() else None, held=held, mtime=mtime))
    return found


def reap_leases(leases_dir: str, key: str, *, tmp_grace: float = 60.0) -> int:
    """Remove lease files nobody holds (their job is gone) and hidden ``.tmp`` files older than
    ``tmp_grace`` seconds (a job killed between creating and renaming its lease); return how many."""
    reaped = 0
    now = time.time()
    for entry in _entries(os.path.join(leases_dir, key)):
        path = entry.path
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            continue
        if entry.name.startswith(".") and age <= tmp_grace:
            continue
        if _probe(path) is False:
            _unlink(path)
            reaped += 1
    return reaped


def _entries(directory: str) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(directory))
    except FileNotFoundError:
        return []


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
