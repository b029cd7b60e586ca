"""Soak: N job processes x M iterations of `prepare` / `exec` / `gc` on one node cache while a
publisher process keeps publishing new releases and rolling the channel back and forth.

Every job's `exec` runs a tiny command that reads marker files through the prepared depot
stack (one in the shared depot, one in the variant depot, one beside the activated project)
and checks that they and DEPOTDELIVERY_PREPARED_RELEASE name the same release: a job that saw files
of two releases is a consistency violation. Reports prepares/s, p50/p99 latency (in-process
and as a process, against `python3 -c pass` measured in the same run), failures (must be 0),
violations (must be 0), and what the publisher did. Bounded in time by --seconds.

Usage: python benchmarks/soak.py [--procs 4] [--iterations 40] [--seconds 30] [--out DIR]
Prints one JSON object, then a markdown table; with --out also writes soak.json and soak.md.
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

MODES = ("stack", "symlink", "copy")
TARGETS = ("generic", "haswell")
SHARED_MARKER = "soak-release.txt"
VARIANT_MARKER = "soak-variant.txt"

# Run by `depotdelivery exec` inside the prepared environment: every marker must name the release
# the environment says it is, and the release must be one the publisher published.
CHECK = r"""
import json, os, sys
rel = os.environ["DEPOTDELIVERY_PREPARED_RELEASE"]
stack = [p for p in os.environ["JULIA_DEPOT_PATH"].split(":") if p]
def first(name):
    for p in stack:
        try:
            with open(os.path.join(p, name)) as f:
                return f.read().strip()
        except FileNotFoundError:
            continue
    return None
project = os.environ["JULIA_PROJECT"]
with open(os.path.join(project, "..", "..", "soak-release.txt")) as f:
    beside_project = f.read().strip()
seen = {"env": rel, "shared": first("soak-release.txt"), "variant": first("soak-variant.txt"),
        "project": beside_project}
print(json.dumps(seen))
sys.exit(0 if len(set(seen.values())) == 1 else 3)
"""


def _publish(root: Path, key, base: Path, version: str, seed: int) -> str:
    """Generate a small Julia-faithful release, add the markers, publish it (no channel change)."""
    from depotdelivery.publisher.publish import VariantInput, publish
    from depotdelivery.synth.depot import generate_release_inputs

    ref = f"hep/{version}"
    work = base / f"inputs-{version}"
    inputs = generate_release_inputs(work, final_root=root / "releases" / "hep" / version / "depot",
                                     packages=2, artifact_bytes=2048, targets=TARGETS, seed=seed)
    (inputs.depot / SHARED_MARKER).write_text(ref + "\n")
    for v in inputs.variants.values():
        (Path(v.dir) / "depot" / VARIANT_MARKER).write_text(ref + "\n")
    variants = {t: VariantInput(dir=v.dir, sysimage=v.sysimage, cpu_target=v.cpu_target, arch=v.arch)
                for t, v in inputs.variants.items()}
    publish(root, "hep", version, inputs.depot, variants, key, channel=None, project=inputs.project,
            use_hash_cache=False)
    shutil.rmtree(work)
    return ref


def publisher(root: str, key_path: str, base: str, stop: str, log: str, pause: float) -> None:
    """Loop until the stop file exists: publish a new release and point the channel at it, roll
    the channel back to the previous release, forward again. Appends one JSON line per action."""
    from depotdelivery.publisher.channels import rollback_channel, set_channel
    from depotdelivery.store.keys import load_private_key

    key = load_private_key(key_path)
    i = 2
    with open(log, "a") as out:
        while not os.path.exists(stop):
            ref = _publish(Path(root), key, Path(base), f"{i}", seed=i)
            for action in ("publish", "rollback", "forward"):
                t = time.perf_counter()
                if action == "rollback":
                    ch = rollback_channel(root, "stable", key)
                else:
                    ch = set_channel(root, "stable", ref, key)
                out.write(json.dumps({"action": action, "release": ch.release, "seq": ch.seq,
                                      "ms": (time.perf_counter() - t) * 1000, "time": time.time()}) + "\n")
                out.flush()
                if os.path.exists(stop):
                    break
                time.sleep(pause)
            i += 1


def worker(index: int, iterations: int, deadline: float, env: dict[str, str], log: str) -> None:
    """One job slot: iterations of exec (2 in 5), prepare (2 in 5), gc (1 in 5)."""
    mode = MODES[index % len(MODES)]
    cli = [sys.executable, "-m", "depotdelivery"]
    with open(log, "a") as out:
        for it in range(iterations):
            if time.time() >= deadline:
                break
            op = ("exec", "prepare", "exec", "prepare", "gc")[(it + index) % 5]
            argv = {"exec": [*cli, "exec", "--mode", mode, "--", sys.executable, "-c", CHECK],
                    "prepare": [*cli, "prepare", "--mode", mode, "--json"],
                    "gc": [*cli, "gc", "--keep", "3", "--json"]}[op]
            t = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
            wall = (time.perf_counter() - t) * 1000
            rec = {"worker": index, "op": op, "mode": mode, "code": done.returncode, "wall_ms": wall}
            if done.returncode != 0:
                rec["stderr"] = done.stderr[-2000:]
                rec["stdout"] = done.stdout[-500:]
            elif op == "prepare":
                p = json.loads(done.stdout)
                rec.update(release=p["release"], in_process_ms=p["timings"]["total"], hydrated=p["hydrated"])
            elif op == "exec":
                rec["seen"] = json.loads(done.stdout.strip().splitlines()[-1])
            out.write(json.dumps(rec) + "\n")
            out.flush()


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--procs", type=int, default=4, help="simultaneous job processes (default 4)")
    ap.add_argument("--iterations", type=int, default=40, help="iterations per job process (default 40)")
    ap.add_argument("--seconds", type=float, default=30.0, help="stop starting new iterations after this (default 30)")
    ap.add_argument("--pause", type=float, default=0.3, help="publisher pause between channel moves (s)")
    ap.add_argument("--out", type=Path, help="also write soak.json and soak.md here")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args(argv)

    from depotdelivery.publisher.channels import set_channel
    from depotdelivery.publisher.publish import init_repository
    from depotdelivery.store.keys import keygen, load_private_key

    base = Path(tempfile.mkdtemp(prefix="depotdelivery-soak-"))
    try:
        root, trusted, cache = base / "repo", base / "trusted", base / "cache"
        trusted.mkdir()
        key_path, pub, _ = keygen(base / "publisher.key")
        shutil.copy(pub, trusted / "publisher.pub")
        init_repository(root)
        key = load_private_key(key_path)
        first = _publish(root, key, base, "1", seed=1)
        set_channel(root, "stable", first, key)
        env = {**os.environ, "DEPOTDELIVERY_REPO": str(root), "DEPOTDELIVERY_TRUSTED_KEYS": str(trusted),
               "DEPOTDELIVERY_CACHE": str(cache), "DEPOTDELIVERY_LOCK_TIMEOUT": "120"}

        baseline = []
        for _ in range(10):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            baseline.append((time.perf_counter() - t) * 1000)

        stop, plog = base / "stop", base / "publisher.jsonl"
        here = Path(__file__).resolve()
        pub_proc = subprocess.Popen([sys.executable, "-c",
                                     f"import sys; sys.path.insert(0, {str(here.parent)!r}); import soak; "
                                     f"soak.publisher({str(root)!r}, {str(key_path)!r}, {str(base)!r}, "
                                     f"{str(stop)!r}, {str(plog)!r}, {args.pause!r})"],
                                    env=env)
        t0 = time.time()
        deadline = t0 + args.seconds
        logs = [base / f"worker-{i}.jsonl" for i in range(args.procs)]
        workers = [subprocess.Popen([sys.executable, "-c",
                                     f"import sys, json; sys.path.insert(0, {str(here.parent)!r}); import soak; "
                                     f"soak.worker({i}, {args.iterations}, {deadline!r}, json.loads(sys.argv[1]), "
                                     f"{str(logs[i])!r})", json.dumps(env)]) for i in range(args.procs)]
        for w in workers:
            w.wait()
        elapsed = time.time() - t0
        stop.touch()
        pub_proc.wait(timeout=300)

        recs = [json.loads(line) for log in logs if log.exists() for line in log.read_text().splitlines()]
        moves = [json.loads(line) for line in plog.read_text().splitlines()] if plog.exists() else []
        published = {first} | {m["release"] for m in moves}
        failures = [r for r in recs if r["code"] != 0 and r["code"] != 3]
        violations = [r for r in recs if r["code"] == 3 or
                      (r["op"] == "exec" and r["code"] == 0 and set(r["seen"].values()) - published)]
        prepares = [r for r in recs if r["op"] in ("prepare", "exec") and r["code"] == 0]
        prep = [r for r in recs if r["op"] == "prepare" and r["code"] == 0]
        ex = [r for r in recs if r["op"] == "exec" and r["code"] == 0]
        base_ms = statistics.median(baseline)
        result = {
            "benchmark": "soak", "procs": args.procs, "iterations": args.iterations, "seconds": round(elapsed, 2),
            "operations": len(recs), "prepares": len(prepares),
            "prepares_per_s": round(len(prepares) / elapsed, 2) if elapsed else 0.0,
            "prepare_in_process_ms": {"p50": _pct([r["in_process_ms"] for r in prep], 0.5),
                                      "p99": _pct([r["in_process_ms"] for r in prep], 0.99)},
            "prepare_process_ms": {"p50": _pct([r["wall_ms"] for r in prep], 0.5),
                                   "p99": _pct([r["wall_ms"] for r in prep], 0.99)},
            "exec_job_ms": {"p50": _pct([r["wall_ms"] for r in ex], 0.5), "p99": _pct([r["wall_ms"] for r in ex], 0.99)},
            "baseline_python_pass_ms": round(base_ms, 2),
            "prepare_process_p50_vs_python_pass": round(_pct([r["wall_ms"] for r in prep], 0.5) / base_ms, 2),
            "hydrations": sum(1 for r in prep if r.get("hydrated")),
            "gc_runs": sum(1 for r in recs if r["op"] == "gc" and r["code"] == 0),
            "releases_published": len({m["release"] for m in moves if m["action"] == "publish"}) + 1,
            "channel_moves": len(moves), "rollbacks": sum(1 for m in moves if m["action"] == "rollback"),
            "releases_seen_by_jobs": sorted({r["seen"]["env"] for r in ex}, key=lambda s: int(s.split("/")[1])),
            "failures": len(failures), "consistency_violations": len(violations),
            "failure_samples": [{k: r.get(k) for k in ("op", "mode", "code", "stderr")} for r in failures[:5]],
            "violation_samples": [r.get("seen") or r.get("stdout") for r in violations[:5]],
        }
        print(json.dumps(result, indent=2))
        md = _markdown(result)
        print(md)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
            (args.out / "soak.md").write_text(md)
        return 0 if not failures and not violations else 1
    finally:
        if not args.keep:
            _force_rmtree(base)


def _force_rmtree(path: Path) -> None:
    for dirpath, dirnames, _ in os.walk(path):  # copy mode keeps read-only directory modes
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, 0o755)
    shutil.rmtree(path, ignore_errors=True)


def _markdown(r: dict) -> str:
    rows = [
        ("job processes x iterations", f"{r['procs']} x {r['iterations']} ({r['seconds']} s)"),
        ("prepares (prepare + exec)", f"{r['prepares']} ({r['prepares_per_s']}/s)"),
        ("prepare in-process p50 / p99", f"{r['prepare_in_process_ms']['p50']} / {r['prepare_in_process_ms']['p99']} ms"),
        ("prepare as a process p50 / p99", f"{r['prepare_process_ms']['p50']} / {r['prepare_process_ms']['p99']} ms"),
        ("  vs `python3 -c pass` (same run)", f"{r['baseline_python_pass_ms']} ms -> {r['prepare_process_p50_vs_python_pass']}x"),
        ("exec job (prepare + check) p50 / p99", f"{r['exec_job_ms']['p50']} / {r['exec_job_ms']['p99']} ms"),
        ("hydrations / gc runs", f"{r['hydrations']} / {r['gc_runs']}"),
        ("releases published / channel moves / rollbacks",
         f"{r['releases_published']} / {r['channel_moves']} / {r['rollbacks']}"),
        ("releases seen by jobs", ", ".join(r["releases_seen_by_jobs"])),
        ("failures (must be 0)", str(r["failures"])),
        ("consistency violations (must be 0)", str(r["consistency_violations"])),
    ]
    return "\n| soak | |\n|---|---|\n" + "".join(f"| {a} | {b} |\n" for a, b in rows)


if __name__ == "__main__":
    sys.exit(main())
