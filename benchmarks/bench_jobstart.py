"""Benchmark (issue 13): what a job pays at start, and copy/check/concurrency/re-publish, each
against its baseline measured in the same run, as ratios.

Every figure of issue 13's table, both the CLI path (the console script, as a job script runs
it) and the library path (``python -c "import depotdelivery; depotdelivery.prepare()"``):

- warm ``depotdelivery env`` / ``prepare --json`` / ``exec -- true`` / ``python -m depotdelivery
  env`` / the library one-liner, against ``python -c pass`` (``exec`` against a Python that
  execs ``true`` itself: "up to the exec"); targets <= 1.6x (CLI) and <= 1.3x (library);
- cold stack-mode prepare as a process at every depot size, against ``python -c pass``
  (target <= 3x), with the hydration's own milliseconds;
- 64 simultaneous cold jobs (one hydrates, 63 wait) against 64 simultaneous warm jobs, whole
  processes, makespan (target <= 1.3x);
- copy mode against ``cp -a`` of the same trees, on tmpfs and on disk (target <= 1.3x);
- ``depotdelivery check`` on the big depot against a ``find -printf`` stat walk (target <= 3x);
- ``select`` and ``detect --json`` against ``python -c pass`` (target <= 2x);
- publishing after one package changed against an identical re-publish (target <= 1.5x).

Process timings are interleaved rounds (every case once per round, medians over the rounds):
wall-clock milliseconds and, steadier on a shared machine, CPU milliseconds (user + system,
from wait4). Repositories are generated with the synth depot generator and published with the
real publisher. Prints one JSON object, then a markdown table.

    .venv/bin/python benchmarks/bench_jobstart.py                     # modest sizes
    .venv/bin/python benchmarks/bench_jobstart.py --sizes 1000,10000,50000 --packages 300  # the issue's
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _timing import Sample, interleaved, median, run_timed
from node_fixtures import build_repo, captured_cpu

CPU = "linux-rhel7-haswell"
PY = sys.executable
CLI = str(Path(PY).with_name("depotdelivery"))  # the console script the installer generated


_RE_WRAPPER = ("import re\nimport sys\nfrom depotdelivery.cli import main\n"
               "sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\nsys.exit(main())")


def _env(repo: Any, cache: Path, **extra: str) -> dict[str, str]:
    # like an installed package in a job: byte-code caches are written and used
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "DEPOTDELIVERY_DEBUG")}
    return {**base, "DEPOTDELIVERY_REPO": str(repo.root), "DEPOTDELIVERY_TRUSTED_KEYS": str(repo.trusted),
            "DEPOTDELIVERY_CACHE": str(cache), "DEPOTDELIVERY_CPUINFO": str(captured_cpu(CPU)), **extra}


def _figure(samples: list[Sample], base: list[Sample]) -> dict[str, float]:
    """Medians of one case and its ratio to the baseline's, by wall-clock and by CPU time."""
    wall, cpu, bwall, bcpu = median(samples), median(samples, "cpu"), median(base), median(base, "cpu")
    return {"wall_ms": wall, "cpu_ms": cpu, "base_wall_ms": bwall, "base_cpu_ms": bcpu,
            "ratio": round(wall / bwall, 3), "cpu_ratio": round(cpu / bcpu, 3) if bcpu else 0.0}


# ---- warm job start ------------------------------------------------------------------------------

def warm(repo: Any, work: Path, rounds: int) -> dict[str, dict[str, float]]:
    env = _env(repo, work / "warm-cache")
    subprocess.run([CLI, "prepare"], env=env, check=True, capture_output=True)  # hydrate once
    true = shutil.which("true") or "/bin/true"
    cases: dict[str, list[str]] = {
        "python -c pass": [PY, "-c", "pass"],
        "python execs true": [PY, "-c", f"import os; os.execv({true!r}, ['true'])"],
        "depotdelivery env": [CLI, "env"],
        "depotdelivery prepare --json": [CLI, "prepare", "--json"],
        "depotdelivery exec -- true": [CLI, "exec", "--", true],
        "python -m depotdelivery env": [PY, "-m", "depotdelivery", "env"],
        # the wrapper distlib's default template and the `installer` package write (pip's own
        # wrapper only imports sys): what a console script costs when the installer imports re
        "env via a wrapper that imports re": [PY, "-c", _RE_WRAPPER, "env"],
        "library one-liner": [PY, "-c", "import depotdelivery; depotdelivery.prepare()"],
        "depotdelivery select": [CLI, "select"],
        "depotdelivery select --json": [CLI, "select", "--json"],
        "depotdelivery detect --json": [CLI, "detect", "--json"],
    }
    got = interleaved({k: (lambda a=argv: run_timed(a, env)) for k, argv in cases.items()}, rounds)
    base = got["python -c pass"]
    out = {k: _figure(v, got["python execs true"] if k.startswith("depotdelivery exec") else base)
           for k, v in got.items() if k != "python -c pass"}
    out["python -c pass"] = _figure(base, base)
    return out


# ---- cold stack-mode prepare -----------------------------------------------------------------------

def cold(repo: Any, work: Path, rounds: int) -> dict[str, Any]:
    """A cold `depotdelivery prepare --json` (empty node cache: verify, select, hydrate) and the
    library one-liner, each with a fresh cache per run."""
    counter = iter(range(1 << 30))
    hydrate_ms: list[float] = []

    def run(argv: list[str]) -> Sample:
        cache = work / f"cold-{next(counter)}"
        s = run_timed(argv, _env(repo, cache))
        if s.stdout.startswith(b"{"):
            hydrate_ms.append(json.loads(s.stdout)["timings"]["hydrate"])
        shutil.rmtree(cache, ignore_errors=True)
        return s

    got = interleaved({
        "python -c pass": lambda: run_timed([PY, "-c", "pass"], os.environ),
        "depotdelivery prepare --json": lambda: run([CLI, "prepare", "--json"]),
        "library one-liner": lambda: run([PY, "-c", "import depotdelivery; depotdelivery.prepare()"]),
    }, rounds)
    base = got["python -c pass"]
    return {"cli": _figure(got["depotdelivery prepare --json"], base),
            "library": _figure(got["library one-liner"], base),
            "hydrate_ms": round(statistics.median(hydrate_ms), 3)}


# ---- simultaneous jobs -----------------------------------------------------------------------------

def _simultaneous(argv: list[str], env: dict[str, str], n: int, fifo: Path) -> float:
    """Start ``n`` processes blocked on opening ``fifo``, release them at once (opening its
    write end), and return the seconds until the last one exited."""
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    gate = ["sh", "-c", ': < "$0"; exec "$@"', str(fifo), *argv]
    procs = [subprocess.Popen(gate, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(n)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # every shell blocked in open() of the FIFO
        try:
            if all(Path(f"/proc/{p.pid}/wchan").read_text() in ("fifo_open", "wait_for_partner") for p in procs):
                break
        except OSError:
            pass
        time.sleep(0.01)
    else:
        raise RuntimeError(f"the {n} jobs did not all reach the start line in 60 s")
    t = time.perf_counter()
    os.close(os.open(fifo, os.O_WRONLY))
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"a simultaneous job failed: {err.decode()[-500:]}")
    fifo.unlink()
    return time.perf_counter() - t


def makespan(repo: Any, work: Path, n: int, rounds: int) -> dict[str, Any]:
    cold_s, warm_s = [], []
    warm_env = _env(repo, work / "jobs-warm")
    subprocess.run([CLI, "prepare"], env=warm_env, check=True, capture_output=True)
    for i in range(rounds):
        cache = work / f"jobs-cold-{i}"
        cold_s.append(_simultaneous([CLI, "env"], _env(repo, cache), n, work / "go"))
        log = (cache / "hydrations.log").read_text().splitlines()
        assert len(log) == 1, f"{len(log)} hydrations"  # one hydrated, the others waited for it
        shutil.rmtree(cache, ignore_errors=True)
        warm_s.append(_simultaneous([CLI, "env"], warm_env, n, work / "go"))
    c, w = statistics.median(cold_s) * 1000, statistics.median(warm_s) * 1000
    return {"jobs": n, "cold_ms": round(c, 3), "warm_ms": round(w, 3), "ratio": round(c / w, 3),
            "cold_runs_ms": [round(x * 1000, 1) for x in cold_s], "warm_runs_ms": [round(x * 1000, 1) for x in warm_s]}


# ---- copy mode ---------------------------------------------------------------------------------------

def copy_mode(repo: Any, where: Path, rounds: int) -> dict[str, Any]:
    """Copy-mode cold prepare (BLAKE3-verified) against `cp -a` of the same two trees, with the
    repository and the node cache on the filesystem of ``where``."""
    where.mkdir(parents=True, exist_ok=True)
    root = where / "repo"
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run(["cp", "-a", str(repo.root), str(root)], check=True)
    local = dataclasses.replace(repo, root=root)
    rel = root / "releases" / repo.ref
    counter = iter(range(1 << 30))

    def ours() -> Sample:
        cache = where / f"cache-{next(counter)}"
        s = run_timed([CLI, "prepare", "--mode", "copy"], _env(local, cache))
        shutil.rmtree(cache, ignore_errors=True)
        return s

    def cp() -> Sample:
        dst = where / "cp"
        shutil.rmtree(dst, ignore_errors=True)
        s = run_timed(["sh", "-c", f"cp -a '{rel}/variants/haswell/depot/.' '{dst}' && cp -a -n '{rel}/depot/.' '{dst}'"],
                      os.environ)
        shutil.rmtree(dst, ignore_errors=True)
        return s

    got = interleaved({"cp -a": cp, "copy mode": ours}, rounds)
    shutil.rmtree(root, ignore_errors=True)
    return _figure(got["copy mode"], got["cp -a"])


# ---- check -------------------------------------------------------------------------------------------

def check(repo: Any, work: Path, rounds: int) -> dict[str, Any]:
    env = _env(repo, work / "check-cache")
    subprocess.run([CLI, "prepare"], env=env, check=True, capture_output=True)
    rel = repo.root / "releases" / repo.ref
    trees = [str(rel / "variants" / "haswell" / "depot"), str(rel / "depot")]
    got = interleaved({"find -printf": lambda: run_timed(["find", *trees, "-printf", ""], env),
                       "depotdelivery check": lambda: run_timed([CLI, "check", "--json"], env)}, rounds)
    report = json.loads(got["depotdelivery check"][-1].stdout)["report"]
    out = _figure(got["depotdelivery check"], got["find -printf"])
    out["packages"] = len(report.get("packages", ()))
    out["sources_by"] = report.get("sources_checked_by")
    return out


# ---- re-publish ------------------------------------------------------------------------------------------

def republish(work: Path, files: int, packages: int, rounds: int) -> dict[str, Any]:
    """An identical re-publish (every file unchanged: the stat cache answers) against a publish
    after one package's sources and caches changed (a new version)."""
    from depotdelivery.publisher.publish import VariantInput, init_repository, publish
    from depotdelivery.store.keys import keygen, load_private_key
    from depotdelivery.synth.depot import generate_release_inputs

    base = work / "publish"
    inputs = generate_release_inputs(base / "inputs", files=files, packages=packages, artifact_bytes=1 << 20,
                                     targets=("generic", "haswell"))
    keygen(base / "key")
    key = load_private_key(base / "key")
    variants = {t: VariantInput(dir=v.dir, cpu_target=v.cpu_target) for t, v in inputs.variants.items()}
    init_repository(base / "repo")
    cache = base / "hash-cache"

    def pub(version: str) -> float:
        t = time.perf_counter()
        publish(base / "repo", "hep", version, inputs.depot, variants, key, project=inputs.project,
                hash_cache_dir=cache)
        return time.perf_counter() - t

    pub("1")
    time.sleep(1.1)  # past the stat cache's racy window for the generated files
    pub("1")
    identical, changed = [], []
    pkgs = list(inputs.packages)
    last = "1"
    for i in range(rounds):
        identical.append(pub(last))  # the inputs as last published: nothing to write
        pkg = pkgs[(len(pkgs) // 2 + i) % len(pkgs)]
        for p in [p for t in (inputs.depot, *(v.dir for v in inputs.variants.values()))
                  for p in Path(t).rglob("*") if p.is_file() and f"/{pkg.name}/" in str(p)]:
            with open(p, "ab") as fh:
                fh.write(b"\n# patched\n")
        last = f"2.{i}"
        changed.append(pub(last))
        time.sleep(1.1)  # the patched files out of the racy window before the next identical run
    i_s, c_s = statistics.median(identical), statistics.median(changed)
    shutil.rmtree(base, ignore_errors=True)
    return {"files": files, "identical_ms": round(i_s * 1000, 1), "one_package_ms": round(c_s * 1000, 1),
            "ratio": round(c_s / i_s, 3)}


# ---- report ------------------------------------------------------------------------------------------------

TARGETS = {"warm_cli": 1.6, "warm_library": 1.3, "cold": 3.0, "makespan": 1.3, "copy": 1.3, "check": 3.0,
           "select": 2.0, "republish": 1.5}


def _value(f: dict[str, Any]) -> tuple[Any, Any]:
    return (f.get("wall_ms", f.get("cold_ms", f.get("one_package_ms"))),
            f.get("base_wall_ms", f.get("warm_ms", f.get("identical_ms"))))


def _figures(res: dict[str, Any]) -> list[tuple[str, tuple[str, ...], str, float | None]]:
    """(what, key path into the result, baseline, target) of every row of the table."""
    rows: list[tuple[str, tuple[str, ...], str, float | None]] = []
    for name in ("depotdelivery env", "depotdelivery prepare --json", "python -m depotdelivery env",
                 "env via a wrapper that imports re"):
        rows.append((f"warm `{name}`", ("warm", name), "`python -c pass`", TARGETS["warm_cli"]))
    rows.append(("warm `depotdelivery exec -- true`", ("warm", "depotdelivery exec -- true"),
                 "python that execs `true`", TARGETS["warm_cli"]))
    rows.append(("warm library one-liner", ("warm", "library one-liner"), "`python -c pass`", TARGETS["warm_library"]))
    for size in res.get("cold", {}):
        rows.append((f"cold stack `prepare --json`, {size} files", ("cold", size, "cli"), "`python -c pass`",
                     TARGETS["cold"]))
        rows.append((f"cold stack library one-liner, {size} files", ("cold", size, "library"), "`python -c pass`", None))
    if "makespan" in res:
        n = res["makespan"]["jobs"]
        rows.append((f"{n} simultaneous cold `env` jobs, makespan", ("makespan",), f"{n} simultaneous warm jobs",
                     TARGETS["makespan"]))
    for fs in res.get("copy", {}):
        rows.append((f"copy mode, {res['big_files']} files, {fs}", ("copy", fs), "`cp -a`", TARGETS["copy"]))
    if "check" in res:
        rows.append((f"`check`, {res['check']['packages']} packages", ("check",), "`find -printf` walk",
                     TARGETS["check"]))
    for name in ("depotdelivery select", "depotdelivery select --json", "depotdelivery detect --json"):
        rows.append((f"`{name.split(' ', 1)[1]}`", ("warm", name), "`python -c pass`", TARGETS["select"]))
    if "republish" in res:
        rows.append((f"publish after one package changed ({res['republish']['files']} files)", ("republish",),
                     "identical re-publish", TARGETS["republish"]))
    return rows


def _get(res: dict[str, Any] | None, path: tuple[str, ...]) -> dict[str, Any] | None:
    for key in path:
        if not isinstance(res, dict) or key not in res:
            return None
        res = res[key]
    return res


def markdown(res: dict[str, Any], before: dict[str, Any] | None = None) -> str:
    head = "| what | depotdelivery | baseline (same run) | ratio | target |"
    lines = [head + (" before: ratio (value, baseline) |" if before else ""),
             "|---|---|---|---|---|" + ("---|" if before else "")]
    for what, path, base, target in _figures(res):
        f = _get(res, path)
        if f is None:
            continue
        value, bvalue = _value(f)
        ok = "" if target is None else (" ✓" if f["ratio"] <= target else " ✗")
        cpu = f" (CPU {f['cpu_ms']} ms, {f['cpu_ratio']}x)" if "cpu_ms" in f else ""
        row = (f"| {what} | {value} ms{cpu} | {base} {bvalue} ms | {f['ratio']}x |"
               f" {'' if target is None else f'<= {target}x'}{ok} |")
        if before:
            b = _get(before, path)
            row += " - |" if b is None else f" {b['ratio']}x ({_value(b)[0]} ms, {_value(b)[1]} ms) |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def _save(path: Path | None, res: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(res, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,5000", help="depot sizes (files) for the cold prepare")
    ap.add_argument("--packages", type=int, default=30, help="packages of the biggest depot (copy, check)")
    ap.add_argument("--rounds", type=int, default=15, help="interleaved rounds of the process timings")
    ap.add_argument("--jobs", type=int, default=64, help="simultaneous jobs (0: skip)")
    ap.add_argument("--skip", action="append", default=[], choices=("cold", "makespan", "copy", "check", "republish"))
    ap.add_argument("--work", type=Path, help="scratch directory on disk (default: a temporary one)")
    ap.add_argument("--tmpfs", type=Path, default=Path("/dev/shm"), help="a tmpfs directory for copy mode")
    ap.add_argument("--before", type=Path, help="JSON of an earlier run (e.g. before a change): a column of its ratios")
    ap.add_argument("--table-only", action="store_true", help="with --result: only print the table of that JSON")
    ap.add_argument("--result", type=Path, help="JSON of a run to tabulate (with --table-only)")
    ap.add_argument("--save", type=Path, help="write the JSON here after every section (a partial run is kept)")
    args = ap.parse_args(argv)
    before = json.loads(args.before.read_text()) if args.before else None
    if args.table_only:
        print(markdown(json.loads(args.result.read_text()), before))
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-jobstart-", dir="/var/tmp"))
    sizes = sorted(int(s) for s in args.sizes.split(",") if s)
    res: dict[str, Any] = {"sizes": sizes, "rounds": args.rounds, "cpus": os.cpu_count(), "cold": {},
                           "big_files": sizes[-1], "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        repos = {}
        for size in sizes:
            t = time.perf_counter()
            packages = args.packages if size == sizes[-1] else max(2, size // 100)
            repos[size] = build_repo(work / f"size-{size}", targets=("generic", "haswell"), packages=packages,
                                     files=size)
            print(f"# built and published {size} files, {packages} packages in {time.perf_counter() - t:.1f} s",
                  file=sys.stderr)
        os.sync()  # the builds' write-back must not land in the measurements
        small, big = repos[sizes[0]], repos[sizes[-1]]
        res["warm"] = warm(small, work, args.rounds)
        print("# warm done", file=sys.stderr)
        _save(args.save, res)
        if "cold" not in args.skip:
            for size in sizes:
                res["cold"][str(size)] = cold(repos[size], work, max(5, args.rounds // 2))
            print("# cold done", file=sys.stderr)
            _save(args.save, res)
        if "makespan" not in args.skip and args.jobs:
            res["makespan"] = makespan(small, work, args.jobs, 5)
            print("# makespan done", file=sys.stderr)
            _save(args.save, res)
        if "copy" not in args.skip:
            scratch = Path(tempfile.mkdtemp(prefix="bench-jobstart-", dir=args.tmpfs))
            try:
                res["copy"] = {"tmpfs": copy_mode(big, scratch, 3), "disk": copy_mode(big, work / "copy", 3)}
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            print("# copy done", file=sys.stderr)
            _save(args.save, res)
        if "check" not in args.skip:
            res["check"] = check(big, work, 5)
            print("# check done", file=sys.stderr)
            _save(args.save, res)
        if "republish" not in args.skip:
            res["republish"] = republish(work, sizes[-1], args.packages, 3)
            _save(args.save, res)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    table = markdown(res, before)
    print(json.dumps(res))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
