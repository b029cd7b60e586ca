"""Timing helpers shared by the benchmark scripts (not a benchmark: run_all skips ``_*.py``)."""
from __future__ import annotations

import subprocess
import time

__all__ = ["wall_times"]


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
