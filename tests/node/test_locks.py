"""Leases are real flocks held by live processes (and survive execve); hydration locks time out."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from depotdelivery.errors import CacheError, LockTimeoutError
from depotdelivery.node import locks


def _child(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            stdout=subprocess.PIPE, text=True)


def test_lease_is_seen_held_by_another_process_until_it_exits(tmp_path):
    proc = _child("""
        import sys
        from pathlib import Path
        from depotdelivery.node.locks import acquire_lease
        lease = acquire_lease(Path(sys.argv[1]), "k")
        print(lease.path, flush=True)
        __import__("time").sleep(60)
    """, str(tmp_path))
    path = proc.stdout.readline().strip()
    try:
        [info] = locks.leases(tmp_path, "k")
        assert info.held and info.pid == proc.pid and str(info.path) == path
        assert locks.reap_leases(tmp_path, "k") == 0  # held: never reaped
    finally:
        proc.kill()
        proc.wait()
    [info] = locks.leases(tmp_path, "k")
    assert not info.held  # the kernel dropped the flock with the process
    assert locks.reap_leases(tmp_path, "k") == 1
    assert locks.leases(tmp_path, "k") == []


def test_lease_survives_execve(tmp_path):
    # the job's lease must live as long as the job that `depotdelivery exec` becomes
    proc = _child("""
        import os, sys
        from pathlib import Path
        from depotdelivery.node.locks import acquire_lease
        acquire_lease(Path(sys.argv[1]), "k")
        print("ready", flush=True)
        os.execvp("sleep", ["sleep", "60"])
    """, str(tmp_path))
    assert proc.stdout.readline().strip() == "ready"
    try:
        for _ in range(100):  # wait for the exec to replace the interpreter
            with open(f"/proc/{proc.pid}/comm") as f:
                if f.read().strip() == "sleep":
                    break
            time.sleep(0.02)
        [info] = locks.leases(tmp_path, "k")
        assert info.held
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not locks.leases(tmp_path, "k")[0].held


def test_same_process_reuses_one_lease_and_sees_it_held(tmp_path):
    a = locks.acquire_lease(tmp_path, "k")
    b = locks.acquire_lease(tmp_path, "k")
    assert a is b and os.get_inheritable(a.fd)
    assert [i.held for i in locks.leases(tmp_path, "k")] == [True]  # flock conflicts per open file
    a.release()
    assert locks.leases(tmp_path, "k") == []
    c = locks.acquire_lease(tmp_path, "k")
    assert c is not a
    c.release()


def test_unwritable_lease_directory_is_a_cache_error(tmp_path):
    if os.geteuid() == 0:
        target = tmp_path / "file"  # root ignores modes: a file where a directory must be
        target.write_text("")
        with pytest.raises(CacheError, match="cannot create lease"):
            locks.acquire_lease(target, "k")
    else:
        tmp_path.chmod(0o500)
        with pytest.raises(CacheError, match="not writable"):
            locks.acquire_lease(tmp_path / "leases", "k")


def test_hydration_lock_times_out_with_exit_code_7(tmp_path):
    lock_file = tmp_path / "locks" / "k.lock"
    proc = _child("""
        import sys, time
        from pathlib import Path
        from depotdelivery.node.locks import hydration_lock
        with hydration_lock(Path(sys.argv[1]), timeout=5):
            print("held", flush=True)
            time.sleep(60)
    """, str(lock_file))
    try:
        assert proc.stdout.readline().strip() == "held"
        with (pytest.raises(LockTimeoutError, match="DEPOTDELIVERY_LOCK_TIMEOUT") as err,
              locks.hydration_lock(lock_file, timeout=0.2)):
            pass
        assert err.value.exit_code == 7
        with locks.try_hydration_lock(lock_file) as got:
            assert got is False
    finally:
        proc.kill()
        proc.wait()
    # free once its holder is dead. Not a single try: the timed-out wait above left its helper
    # thread blocked in flock(LOCK_SH), and it holds that shared lock for an instant when the
    # holder dies (the CI flake); a job that timed out exits, taking the thread with it
    started = time.monotonic()
    with locks.hydration_lock(lock_file, timeout=5):
        assert time.monotonic() - started < 3
    assert lock_file.exists()  # lock files are never deleted (filelock 3.13.1's rule)


def test_gate_wait_on_a_free_gate_returns_even_with_no_time_left(tmp_path):
    """A waiter whose leader finished before it started waiting passes at once, as with a
    lock_timeout of 0 (no helper thread that could lose the race against the deadline)."""
    with locks.Gate(str(tmp_path / "locks" / "prepare.lock")) as gate:
        gate.wait_free(time.monotonic() - 1, 0)
        assert gate.try_lead()
        gate.unlock()


def test_gate_has_one_leader_and_releases_all_waiters_at_once(tmp_path):
    gate_file = str(tmp_path / "locks" / "prepare.lock")
    proc = _child("""
        import sys, time
        from depotdelivery.node.locks import Gate
        with Gate(sys.argv[1]) as gate:
            assert gate.try_lead()
            print("leading", flush=True)
            time.sleep(float(sys.argv[2]))
    """, gate_file, "0.6")
    try:
        assert proc.stdout.readline().strip() == "leading"
        with locks.Gate(gate_file) as gate:
            assert not gate.try_lead()  # one leader at a time
            with pytest.raises(LockTimeoutError, match="DEPOTDELIVERY_LOCK_TIMEOUT"):
                gate.wait_free(time.monotonic() + 0.05, 0.05)
            with locks.Gate(gate_file) as other:
                gate.wait_free(time.monotonic() + 30, 30)  # returns when the leader is done
                other.wait_free(time.monotonic() + 30, 30)  # waiters do not exclude each other
            assert proc.poll() is not None or proc.wait(timeout=5) == 0
            # the timed-out wait's helper thread got its shared lock when the leader finished
            # and lets go at once: the gate is free to lead again
            for _ in range(500):
                if gate.try_lead():
                    break
                time.sleep(0.01)
            else:
                pytest.fail("the gate stayed held after the leader and every waiter were done")
            gate.unlock()
    finally:
        proc.kill()
        proc.wait()
