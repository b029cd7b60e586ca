"""Benchmark: depotdelivery.detect() vs archspec.cpu.host(), and `depotdelivery detect --json` vs
`python3 -c pass`. Every number is measured in this run; results are ratios to those baselines.

Targets (issue 2): warm detect() <= 100 us; first detect() from CPUID >= 20x faster than
archspec.cpu.host() including its import; `import depotdelivery` <= 15 ms.
Prints one JSON object, then a markdown table. Usage: python benchmarks/bench_detect.py [--runs N]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from _timing import wall_times

# Fresh-process probes: each prints seconds as JSON. perf_counter brackets only the measured
# step, so interpreter start-up is excluded (it is measured separately, as `python -c pass`).
PROBES = {
    "import_depotdelivery": "import time; t=time.perf_counter(); import depotdelivery; "
                            "print(time.perf_counter()-t)",
    "dd_first_detect": "import depotdelivery, time; t=time.perf_counter(); h=depotdelivery.detect(); "
                       "e=time.perf_counter()-t; assert h.source=='cpuid', h.source; print(e)",
    "dd_import_and_first_detect": "import time; t=time.perf_counter(); import depotdelivery; "
                                  "h=depotdelivery.detect(); print(time.perf_counter()-t)",
    "archspec_import_and_first_host": "import time; t=time.perf_counter(); import archspec.cpu; "
                                      "archspec.cpu.host(); print(time.perf_counter()-t)",
}


def _env() -> dict[str, str]:
    # like an installed package: byte-code caches may be written and used
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "DEPOTDELIVERY_MICROARCH")}
    return env


def _probe(code: str, runs: int) -> list[float]:
    env = _env()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)  # warm-up
    return [float(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                 capture_output=True, text=True).stdout) for _ in range(runs)]


def _wall(argv: list[str], runs: int) -> list[float]:
    return wall_times(argv, _env(), runs)


def _warm(fn, loops: int = 20000) -> float:
    fn()
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, (time.perf_counter() - t) / loops)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs

    import archspec.cpu

    import depotdelivery
    from depotdelivery.cpu import detection

    med = {name: statistics.median(_probe(code, runs)) for name, code in PROBES.items()}
    med["cli_detect_json_wall"] = statistics.median(
        _wall([sys.executable, "-m", "depotdelivery", "detect", "--json"], runs))
    med["python_c_pass_wall"] = statistics.median(_wall([sys.executable, "-c", "pass"], runs))
    med["dd_warm_detect"] = _warm(depotdelivery.detect)
    med["archspec_warm_host"] = _warm(archspec.cpu.host)
    # re-detection without any cache: our CPUID read + decode vs archspec's full detection
    med["dd_uncached_detect"] = _warm(detection._live, loops=300)
    med["archspec_uncached_host"] = _warm(lambda: archspec.cpu.host.__wrapped__(), loops=30)

    ratios = {
        "archspec_first_over_dd_first_detect": med["archspec_import_and_first_host"] / med["dd_first_detect"],
        "archspec_first_over_dd_import_and_first_detect":
            med["archspec_import_and_first_host"] / med["dd_import_and_first_detect"],
        "archspec_uncached_over_dd_uncached": med["archspec_uncached_host"] / med["dd_uncached_detect"],
        "cli_detect_over_python_c_pass": med["cli_detect_json_wall"] / med["python_c_pass_wall"],
    }
    targets = {
        "warm_detect_le_100us": med["dd_warm_detect"] <= 100e-6,
        "first_detect_ge_20x_faster_than_archspec_incl_import": ratios["archspec_first_over_dd_first_detect"] >= 20,
        "import_depotdelivery_le_15ms": med["import_depotdelivery"] <= 15e-3,
    }
    result = {"benchmark": "detect", "runs": runs, "python": sys.version.split()[0],
              "host": detection.detect().microarch, "seconds_median": med, "ratios": ratios,
              "targets_met": targets}
    print(json.dumps(result, indent=2, sort_keys=True))

    def ms(x: float) -> str:
        return f"{x * 1e3:.3f} ms" if x >= 1e-3 else f"{x * 1e6:.2f} us"

    rows = [
        ("`import depotdelivery` (fresh process)", ms(med["import_depotdelivery"]), "target <= 15 ms"),
        ("first `detect()` after import (fresh process, CPUID)", ms(med["dd_first_detect"]),
         f"archspec / this = {ratios['archspec_first_over_dd_first_detect']:.1f}x (target >= 20x)"),
        ("`import depotdelivery` + first `detect()`", ms(med["dd_import_and_first_detect"]),
         f"archspec / this = {ratios['archspec_first_over_dd_import_and_first_detect']:.1f}x"),
        ("`import archspec.cpu` + first `host()` (baseline)", ms(med["archspec_import_and_first_host"]), "1.0x"),
        ("warm `detect()` (cached)", ms(med["dd_warm_detect"]), "target <= 100 us"),
        ("warm `archspec.cpu.host()` (lru_cache)", ms(med["archspec_warm_host"]), ""),
        ("uncached re-detection, depotdelivery", ms(med["dd_uncached_detect"]),
         f"archspec / this = {ratios['archspec_uncached_over_dd_uncached']:.1f}x"),
        ("uncached re-detection, archspec (baseline)", ms(med["archspec_uncached_host"]), "1.0x"),
        ("`depotdelivery detect --json` wall", ms(med["cli_detect_json_wall"]),
         f"{ratios['cli_detect_over_python_c_pass']:.2f}x `python3 -c pass`"),
        ("`python3 -c pass` wall (baseline)", ms(med["python_c_pass_wall"]), "1.0x"),
    ]
    print()
    print("| measurement | median | ratio / target |")
    print("| --- | ---: | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
