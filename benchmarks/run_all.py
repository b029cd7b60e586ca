"""Run every benchmark, collect their JSON, and write benchmarks/results/<date>-<host>.json plus a
markdown report of the ratios each benchmark measured against its in-run baselines.

    .venv/bin/python benchmarks/run_all.py            # modest sizes: a few minutes on 2 cores
    .venv/bin/python benchmarks/run_all.py --full     # the sizes the issues set targets for
    .venv/bin/python benchmarks/run_all.py --only bench_publish --only bench_detect

Every benchmark script in this directory (``bench_*.py``, the Julia format benchmarks,
``soak.py`` when present) prints one JSON object and then a markdown table. A script that
fails is recorded with its exit status and the end of its stderr; the others still run, and
run_all exits 1.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# Per script: (modest arguments, --full arguments). "{work}" is a scratch directory run_all
# owns (scripts that write files by default must not write into results/). A script not listed
# runs with its own defaults in both cases.
SIZES: dict[str, tuple[list[str], list[str]]] = {
    "bench_cvmfs": (["--files", "2000"], ["--files", "50000", "--artifact-mb", "256"]),
    "bench_detect": (["--runs", "7"], ["--runs", "15"]),
    "bench_prepare": (["--sizes", "1000,5000", "--jobs", "1,8,16", "--runs", "3", "--out", "{work}"],
                      ["--sizes", "1000,10000,50000", "--jobs", "1,8,32,64", "--out", "{work}"]),
    "bench_jobstart": (["--sizes", "1000,5000", "--packages", "30", "--rounds", "9"],
                       ["--sizes", "1000,10000,50000", "--packages", "300", "--rounds", "11"]),
    "bench_publish": (["--files", "2000", "--artifact-mb", "16", "--repeat", "2"],
                      ["--files", "50000", "--artifact-mb", "2048"]),
    "julia_formats": (["--files", "100", "--image-mb", "64"], ["--files", "300", "--image-mb", "256"]),
    "julia_synth_stale": (["--packages", "30", "--files", "3000", "--artifact-mb", "32"],
                          ["--packages", "300", "--files", "50000", "--artifact-mb", "2048"]),
    "soak": (["--procs", "4", "--iterations", "20", "--seconds", "20"],
             ["--procs", "16", "--iterations", "200", "--seconds", "600"]),
}


def discover(directory: Path = HERE) -> list[Path]:
    """The benchmark scripts: every top-level ``*.py`` except this one and helpers (``_*``)."""
    return sorted(p for p in directory.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_"))


def split_output(stdout: str) -> tuple[Any, str]:
    """The first JSON object printed, and the text after it (the script's markdown table)."""
    start = stdout.find("{")
    if start < 0:
        return None, stdout.strip()
    try:
        obj, end = json.JSONDecoder().raw_decode(stdout, start)
    except json.JSONDecodeError:
        return None, stdout.strip()
    return obj, stdout[end:].strip()


def ratios(obj: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every value under a key that names a ratio or speed-up, with its dotted path."""
    out: list[tuple[str, Any]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            p = f"{path}.{k}" if path else str(k)
            # whole words only: "iterations" and "operations" contain "ratio"
            if re.search(r"(^|_)ratios?($|_)|speed.?up|_over_|_vs_", str(k)) and isinstance(v, (int, float)) \
                    and not isinstance(v, bool):
                out.append((p, v))
            else:
                out += ratios(v, p)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            label = v.get("what") or v.get("name") if isinstance(v, dict) else None
            out += ratios(v, f"{path}[{label or i}]")
    return out


def run_one(script: Path, args: list[str], timeout: float) -> dict[str, Any]:
    argv = [sys.executable, str(script), *args]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=HERE.parent)
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        code = -1
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr = f"timed out after {timeout:.0f} s"
    result, table = split_output(stdout)
    shown = [os.path.relpath(argv[0], HERE.parent), os.path.relpath(argv[1], HERE.parent), *argv[2:]]
    return {"command": " ".join(shlex.quote(a) for a in shown),
            "seconds": round(time.perf_counter() - t0, 2), "returncode": code, "result": result,
            "table": table, "stderr_tail": stderr.strip().splitlines()[-15:] if code else []}


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"host": socket.gethostname(), "platform": platform.platform(),
                            "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        import depotdelivery

        host = depotdelivery.detect()
        info.update(cpu=host.brand, microarch=host.microarch, julia_cpu=host.julia_cpu())
    except Exception as exc:  # noqa: BLE001 - the report still gets written
        info["cpu"] = f"unknown ({type(exc).__name__}: {exc})"
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def report_markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [f"# Benchmarks {doc['date']} on {m['host']}", "",
             f"`{doc['command']}` ({'--full sizes' if doc['full'] else 'modest sizes'}), "
             f"{doc['seconds']:.0f} s in total.", "",
             f"Machine: {m.get('cpu')} ({m.get('microarch')}, Julia calls it {m.get('julia_cpu')}), "
             f"{m['cpus']} CPUs, load average at start {m.get('load_average')}, Python {m['python']}, "
             f"{m['platform']}.", "",
             "Every ratio is against a baseline measured in the same run, on the same machine "
             "(other work on a shared machine affects both sides alike).", "",
             "## Summary", "", "| benchmark | status | time | ratios |", "|---|---|---:|---|"]
    for name, b in doc["benchmarks"].items():
        status = "ok" if b["returncode"] == 0 else f"FAILED (exit {b['returncode']})"
        found = ratios(b["result"])
        shown = "; ".join(f"{p} = {v:.3g}" for p, v in found[:6]) + ("; ..." if len(found) > 6 else "")
        lines.append(f"| {name} | {status} | {b['seconds']:.0f} s | {shown or '(see below)'} |")
    for name, b in doc["benchmarks"].items():
        lines += ["", f"## {name}", "", f"`{b['command']}`", ""]
        if b["returncode"] != 0:
            lines += ["Failed:", "", "```text", *b["stderr_tail"], "```", ""]
        if b["table"]:
            lines += [b["table"], ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="the issues' sizes (long: tens of minutes, GBs of disk)")
    ap.add_argument("--only", action="append", default=[], metavar="NAME", help="run only this benchmark (repeatable)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="report directory (default benchmarks/results)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark (default 1800)")
    ap.add_argument("--benchmarks", type=Path, default=HERE, metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    scripts = discover(args.benchmarks)
    unknown = set(args.only) - {s.stem for s in scripts}
    if unknown:
        ap.error(f"no benchmark named {', '.join(sorted(unknown))} (have: {', '.join(s.stem for s in scripts)})")
    if args.only:
        scripts = [s for s in scripts if s.stem in args.only]
    t0 = time.perf_counter()
    started = datetime.datetime.now(datetime.timezone.utc)
    doc: dict[str, Any] = {"date": started.strftime("%Y-%m-%d"), "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "command": " ".join(["benchmarks/run_all.py", *(argv if argv is not None else sys.argv[1:])]),
                           "full": args.full, "machine": machine(), "benchmarks": {}}
    with tempfile.TemporaryDirectory(prefix="depotdelivery-bench-") as work:
        for script in scripts:
            modest, full = SIZES.get(script.stem, ([], []))
            extra = [a.replace("{work}", work) for a in (full if args.full else modest)]
            print(f"run_all: {script.name} {' '.join(extra)}", file=sys.stderr, flush=True)
            b = run_one(script, extra, args.timeout)
            b["command"] = b["command"].replace(work, "$TMPDIR")
            doc["benchmarks"][script.stem] = b
            print(f"run_all: {script.name}: exit {b['returncode']} in {b['seconds']:.0f} s", file=sys.stderr, flush=True)
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    host = re.sub(r"[^A-Za-z0-9._-]", "_", doc["machine"]["host"]) or "host"
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{doc['date']}-{host}"
    (args.out / f"{stem}.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    (args.out / f"{stem}.md").write_text(report_markdown(doc))
    print(f"run_all: wrote {args.out / stem}.json and .md", file=sys.stderr)
    return 0 if all(b["returncode"] == 0 for b in doc["benchmarks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
