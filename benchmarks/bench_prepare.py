"""Benchmark: depotdelivery.prepare() warm and cold, per hydration mode and depot size, and the
makespan of simultaneous cold jobs. Every baseline is measured in the same run; results are ratios.

Targets (issue 4): warm prepare() <= 2 ms in-process, and as a process within 1.5x of
`python3 -c "import json"`; stack-mode cold prepare independent of depot size (50k vs 1k files
within 1.2x); symlink mode faster than `cp -as` at every size; 64 simultaneous cold jobs
within 2x of one. Repositories are generated with julia.synth and published with the real
publisher. Prints one JSON object, then a markdown table; writes both (and a PNG when
matplotlib is installed) to --out.

Usage: python benchmarks/bench_prepare.py [--sizes 1000,10000,50000] [--jobs 1,8,32,64] [--runs N]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from node_fixtures import build_repo, captured_cpu  # noqa: E402 - the test suite's repository builder

from _timing import wall_times  # noqa: E402

MODES = ("stack", "symlink", "copy", "overlay")
CPU = "linux-rhel7-haswell"


def _env(repo, cache: Path) -> dict[str, str]:
    # like an installed package: byte-code caches are written and used
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**base, "DEPOTDELIVERY_REPO": str(repo.root), "DEPOTDELIVERY_TRUSTED_KEYS": str(repo.trusted),
            "DEPOTDELIVERY_CACHE": str(cache), "DEPOTDELIVERY_CPUINFO": str(captured_cpu(CPU))}


def _median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 3)


def warm(repo, base: Path, runs: int) -> dict[str, float]:
    """Warm prepare() in-process (per call) and as a whole process, against python -c baselines."""
    cache = base / "warm-cache"
    env = _env(repo, cache)
    os.environ.update({k: v for k, v in env.items() if k.startswith("DEPOTDELIVERY_")})
    import depotdelivery

    depotdelivery.prepare()  # cold once
    samples = []
    for _ in range(5):
        n = 2000
        t = time.perf_counter()
        for _ in range(n):
            depotdelivery.prepare()
        samples.append((time.perf_counter() - t) / n)
    # a fresh Prepared per process: first call in a process (its lease is new)
    first = []
    code = "import time; t=time.perf_counter(); import depotdelivery; depotdelivery.prepare(); print(time.perf_counter()-t)"
    for _ in range(runs):
        first.append(float(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                          capture_output=True, text=True).stdout))
    proc = wall_times([sys.executable, "-c", "import depotdelivery; depotdelivery.prepare()"], env, runs)
    json_base = wall_times([sys.executable, "-c", "import json"], env, runs)
    pass_base = wall_times([sys.executable, "-c", "pass"], env, runs)
    cli = wall_times([sys.executable, "-m", "depotdelivery", "env"], env, runs)
    return {
        "in_process_ms": round(min(samples) * 1000, 4),
        "first_in_new_process_ms": _median_ms(first),
        "process_ms": _median_ms(proc),
        "python_import_json_ms": _median_ms(json_base),
        "python_pass_ms": _median_ms(pass_base),
        "cli_env_ms": _median_ms(cli),
        "process_vs_import_json": round(statistics.median(proc) / statistics.median(json_base), 3),
    }


def _cold_once(repo, base: Path, mode: str) -> float | None:
    cache = base / f"cold-{mode}"
    shutil.rmtree(cache, ignore_errors=True)
    code = ("import json, sys, time, depotdelivery\n"
            "depotdelivery.prepare(mode=sys.argv[1], cache=sys.argv[2])\n"  # another cache: loads every module
            "t = time.perf_counter()\n"
            "p = depotdelivery.prepare(mode=sys.argv[1])\n"
            "e = time.perf_counter() - t\n"
            "assert p.hydrated\n"
            "print(json.dumps({'s': e, 'depot': p.depot}))\n")
    warmup = base / f"cold-{mode}-warmup"
    shutil.rmtree(warmup, ignore_errors=True)
    done = subprocess.run([sys.executable, "-c", code, mode, str(warmup)], env=_env(repo, cache),
                          capture_output=True, text=True)
    if done.returncode != 0:
        if "UnsupportedError" in done.stderr or "overlay mode" in done.stderr:
            return None
        raise RuntimeError(done.stderr)
    out = json.loads(done.stdout)
    if mode == "overlay":
        subprocess.run(["fusermount3", "-u", out["depot"]], check=False)
        subprocess.run(["fusermount3", "-u", out["depot"].replace(str(cache), str(warmup))], check=False)
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(warmup, ignore_errors=True)
    return float(out["s"])


def _cp(repo, base: Path, flags: str) -> float:
    """The same trees merged into one directory with cp (the shell way to hydrate)."""
    rel = repo.root / "releases" / repo.ref
    dst = base / f"cp{flags}"
    shutil.rmtree(dst, ignore_errors=True)
    t = time.perf_counter()
    subprocess.run(["cp", flags, f"{rel}/variants/haswell/depot/.", str(dst)], check=True)
    subprocess.run(["cp", flags, "-n", f"{rel}/depot/.", str(dst)], check=True)
    e = time.perf_counter() - t
    shutil.rmtree(dst, ignore_errors=True)
    return e


def cold(repo, base: Path, runs: int) -> dict[str, object]:
    out: dict[str, object] = {}
    for mode in MODES:
        # O(1) modes take milliseconds: more samples against a noisy shared machine
        times = [_cold_once(repo, base, mode) for _ in range(runs * 3 if mode in ("stack", "overlay") else runs)]
        out[mode] = None if any(t is None for t in times) else _median_ms([t for t in times if t is not None])
    out["cp_as"] = _median_ms([_cp(repo, base, "-as") for _ in range(runs)])
    out["cp_a"] = _median_ms([_cp(repo, base, "-a") for _ in range(runs)])
    return out


def makespan(repo, base: Path, njobs: int, mode: str = "stack") -> dict[str, float]:
    """njobs processes released at once on a cold cache: time until all are prepared.

    Each job has imported depotdelivery.node before the start (interpreter start-up is the
    same for every job count and measured by warm()); the barrier is a FIFO, which costs no
    CPU while the jobs wait (polling a file from 64 processes would saturate 2 cores). A job
    that is prepared records the time, then blocks on stdin until every job is prepared: its
    interpreter teardown (~7 ms CPU here) is not prepare() work and lies outside the single
    job's measurement too, but 63 of them on 2 cores would delay the last jobs by ~200 ms.
    ``all_exited_ms`` (teardowns included) is reported beside it."""
    cache = base / f"jobs-{njobs}"
    shutil.rmtree(cache, ignore_errors=True)
    go = base / f"go-{njobs}"
    go.unlink(missing_ok=True)
    os.mkfifo(go)
    code = ("import json, os, sys, time, depotdelivery, depotdelivery.node\n"
            "print('ready', flush=True)\n"
            "open(sys.argv[1]).close()\n"
            f"p = depotdelivery.prepare(mode={mode!r})\n"
            "print(json.dumps({'end': time.time(), 'hydrated': p.hydrated}), flush=True)\n"
            "sys.stdin.read()\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(go)], env=_env(repo, cache),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(njobs)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    start = time.time()
    writer = os.open(go, os.O_WRONLY)  # releases every job blocked in open(); kept open for late ones
    ends = []
    hydrations = 0
    for p in procs:
        assert p.stdout is not None
        doc = json.loads(p.stdout.readline())
        ends.append(doc["end"])
        hydrations += doc["hydrated"]
    for p in procs:
        p.communicate()  # closes stdin: the job exits
        assert p.returncode == 0, p.returncode
    exited = time.time()
    os.close(writer)
    assert hydrations == 1, hydrations
    shutil.rmtree(cache, ignore_errors=True)
    go.unlink()
    return {"makespan_ms": round((max(ends) - start) * 1000, 3), "all_exited_ms": round((exited - start) * 1000, 3)}


def _markdown(res: dict) -> str:
    w = res["warm"]
    lines = ["| measurement | value | baseline | ratio | target |", "|---|---|---|---|---|",
             f"| warm prepare() in-process | {w['in_process_ms']} ms | - | - | <= 2 ms |",
             f"| warm prepare() as a process | {w['process_ms']} ms | python -c 'import json' {w['python_import_json_ms']} ms"
             f" | {w['process_vs_import_json']}x | <= 1.5x |",
             f"| first prepare() in a new process (excl. start-up) | {w['first_in_new_process_ms']} ms | python -c pass "
             f"{w['python_pass_ms']} ms | - | - |",
             f"| `depotdelivery env` process | {w['cli_env_ms']} ms | - | - | - |"]
    sizes = sorted(res["cold"], key=int)
    for size in sizes:
        c = res["cold"][size]
        for mode in MODES:
            if c[mode] is None:
                lines.append(f"| cold {mode}, {size} files | unsupported | | | |")
                continue
            base = c["cp_as"] if mode in ("stack", "symlink", "overlay") else c["cp_a"]
            tool = "cp -as" if base is c["cp_as"] else "cp -a"
            target = "< 1x" if mode == "symlink" else ""
            lines.append(f"| cold {mode}, {size} files | {c[mode]} ms | {tool} {base} ms | {round(c[mode] / base, 3)}x | {target} |")
    if len(sizes) > 1:
        lo, hi = res["cold"][sizes[0]]["stack"], res["cold"][sizes[-1]]["stack"]
        lines.append(f"| stack cold {sizes[-1]} vs {sizes[0]} files | {hi} ms | {lo} ms | {round(hi / lo, 3)}x | <= 1.2x |")
    one = res["makespan"].get("1", {}).get("makespan_ms")
    for n, m in sorted(res["makespan"].items(), key=lambda kv: int(kv[0])):
        ratio = round(m["makespan_ms"] / one, 3) if one else "-"
        lines.append(f"| makespan {n} simultaneous cold jobs (stack) | {m['makespan_ms']} ms | 1 job {one} ms | {ratio}x | "
                     f"{'<= 2x' if n == '64' else ''} |")
        exited, one_exited = m["all_exited_ms"], res["makespan"]["1"]["all_exited_ms"] if one else None
        lines.append(f"| ... until all {n} exited (teardowns incl.) | {exited} ms | 1 job {one_exited} ms | "
                     f"{round(exited / one_exited, 3) if one_exited else '-'}x | |")
    return "\n".join(lines) + "\n"


def _plot(res: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sizes = sorted(res["cold"], key=int)
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in (*MODES, "cp_as", "cp_a"):
        ys = [res["cold"][s][key] for s in sizes]
        if all(y is not None for y in ys):
            ax.plot([int(s) for s in sizes], ys, marker="o", label=key)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("files in the depot")
    ax.set_ylabel("cold prepare (ms)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--jobs", default="1,8,32,64")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    ap.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temporary one)")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    sizes = [int(s) for s in args.sizes.split(",") if s]
    res: dict = {"sizes": sizes, "runs": args.runs, "cpus": os.cpu_count(), "cold": {}, "makespan": {}}
    repos = {}
    for size in sizes:
        t = time.perf_counter()
        repos[size] = build_repo(work / f"size-{size}", targets=("generic", "haswell"),
                                 packages=max(2, size // 100), files=size)
        print(f"# built and published {size} files in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    os.sync()  # the builds' write-back must not land in the cold measurements
    smallest = repos[sizes[0]]
    res["warm"] = warm(smallest, work, args.runs * 4)
    for size in sizes:
        res["cold"][str(size)] = cold(repos[size], work, args.runs)
        print(f"# cold {size}: {res['cold'][str(size)]}", file=sys.stderr)
    # job counts interleaved, each --runs times, medians: one run each was at the mercy of
    # whatever else the shared machine did during it
    jobs = [int(j) for j in args.jobs.split(",") if j]
    runs: dict[int, list[dict[str, float]]] = {n: [] for n in jobs}
    for _ in range(args.runs):
        for n in jobs:
            runs[n].append(makespan(smallest, work, n))
    for n in jobs:
        res["makespan"][str(n)] = {key: round(statistics.median(r[key] for r in runs[n]), 3)
                                   for key in ("makespan_ms", "all_exited_ms")}
        res["makespan"][str(n)]["makespan_runs_ms"] = [r["makespan_ms"] for r in runs[n]]
        print(f"# makespan {n}: {res['makespan'][str(n)]}", file=sys.stderr)
    table = _markdown(res)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_prepare.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / "bench_prepare.md").write_text(table)
    res["plot"] = str(args.out / "bench_prepare.png") if _plot(res, args.out / "bench_prepare.png") else None
    print(json.dumps(res))
    print(table)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
