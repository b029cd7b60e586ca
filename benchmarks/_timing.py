"""Timing helpers shared by the benchmark scripts (not a benchmark: run_all skips ``_*.py``)."""
from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

__all__ = ["Sample", "interleaved", "median", "run_timed", "wall_times"]


def wall_times(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    """Wall-clock seconds of ``runs`` runs of a command, after one untimed warm-up run (page
    cache, .pyc files), so the first sample is not an outlier of a different kind."""
    subprocess.run(argv, env=env, check=True, capture_output=True)
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        out.append(time.perf_counter() - t)
    return out


class Sample:
    """One timed process: wall-clock seconds and the CPU seconds (user + system) it used."""

    __slots__ = ("cpu", "stdout", "wall")

    def __init__(self, wall: float, cpu: float, stdout: bytes) -> None:
        self.wall, self.cpu, self.stdout = wall, cpu, stdout


def run_timed(argv: Sequence[str], env: Mapping[str, str]) -> Sample:
    """Run ``argv`` (stdin closed, stderr discarded) and time it; its CPU time comes from
    wait4(), which counts the process and the children it waited for. On a shared machine the
    CPU time is the steadier figure: waiting for a core adds to wall-clock time only."""
    r, w = os.pipe()
    t = time.perf_counter()
    pid = os.posix_spawnp(argv[0], list(argv), dict(env), file_actions=[
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0), (os.POSIX_SPAWN_DUP2, w, 1),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0), (os.POSIX_SPAWN_CLOSE, r)])
    os.close(w)
    chunks = []
    while chunk := os.read(r, 1 << 16):
        chunks.append(chunk)
    os.close(r)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit status {os.waitstatus_to_exitcode(status)}")
    return Sample(wall, usage.ru_utime + usage.ru_stime, b"".join(chunks))


def interleaved(cases: Mapping[str, Callable[[], Sample]], rounds: int) -> dict[str, list[Sample]]:
    """Each case once per round, in the same order every round, after one untimed warm-up
    round: slow drifts of the machine's load touch every case alike (a case measured in one
    block would get whatever the neighbours did at that time)."""
    for fn in cases.values():
        fn()
    out: dict[str, list[Sample]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            out[name].append(fn())
    return out


def median(samples: list[Sample], what: str = "wall") -> float:
    """Median of the samples' ``wall`` or ``cpu`` seconds, in milliseconds."""
    return round(statistics.median(getattr(s, what) for s in samples) * 1000, 3)
