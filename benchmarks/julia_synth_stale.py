"""Benchmark the depot generator and the staleness predictor on a HEP-sized stack: generation
against copying the generated tree (``cp -a``), prediction against a bare metadata walk of the
same stack (``os.walk`` + ``stat`` of every file). Baselines are measured in the same run;
results are ratios.

    .venv/bin/python benchmarks/julia_synth_stale.py [--packages 300 --files 50000 --artifact-mb 2048]

Prints one JSON object, then a markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from depotdelivery.julia import stale, synth
from depotdelivery.julia.cputarget import cpu_features
from depotdelivery.julia.elfimage import read_image_targets


def timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def walk_stat(roots: list[Path]) -> int:
    n = 0
    for root in roots:
        for dirpath, _, files in os.walk(root):
            for f in files:
                os.lstat(os.path.join(dirpath, f))
                n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=100)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--artifact-mb", type=int, default=128)
    parser.add_argument("--julia-version", default="1.11.1")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        base = Path(tmp)
        gen_s, out = timed(lambda: synth.generate_release_inputs(
            base / "gen", julia_version=args.julia_version, packages=args.packages, files=args.files,
            artifact_bytes=args.artifact_mb << 20, targets=("haswell",), seed=1))
        nbytes = sum(os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(out.root) for f in fs)
        cp_s, _ = timed(lambda: subprocess.run(["cp", "-a", str(out.root), str(base / "copy")], check=True))
        shutil.rmtree(base / "copy")
        variant = out.variants["haswell"]
        stack = [base / "node", variant.depot, out.depot]
        (base / "node").mkdir()
        mods = json.loads((variant.dir / "sysimage-modules.json").read_text())
        host = stale.HostTarget(arch="x86_64", cpu="haswell",
                                features=cpu_features("haswell", "x86_64", args.julia_version))
        targets = read_image_targets(variant.sysimage).targets

        def run() -> stale.StalenessReport:
            return stale.predict(stack, julia_version=args.julia_version, sysimage_modules=mods, host=host,
                                 project=out.project, sysimage_targets=targets)

        run()  # warm the page cache for both measurements
        pred_s, report = min((timed(run) for _ in range(3)), key=lambda r: r[0])
        walk_s, nfiles = min(timed(lambda: walk_stat(stack)) for _ in range(3))
    assert len(report.will_load) == args.packages, "a fresh generated depot must load everywhere"
    result = {
        "packages": args.packages, "files": nfiles, "bytes": nbytes, "julia_version": args.julia_version,
        "generate_s": round(gen_s, 3), "cp_a_s": round(cp_s, 3), "generate_vs_cp": round(gen_s / cp_s, 2),
        "predict_s": round(pred_s, 3), "walk_stat_s": round(walk_s, 4),
        "predict_vs_walk": round(pred_s / walk_s, 1),
    }
    print(json.dumps(result, sort_keys=True))
    print()
    print("| measurement | this run | baseline (same run) | ratio |")
    print("| --- | --- | --- | --- |")
    print(f"| generate {args.packages} packages, {nfiles} files, {nbytes >> 20} MiB | {gen_s:.2f} s "
          f"| `cp -a` of the result {cp_s:.2f} s | {gen_s / cp_s:.2f}x |")
    print(f"| predict (every include: stat + CRC-32C, every .ji: full read) | {pred_s:.2f} s "
          f"| `os.walk` + `lstat` of the stack {walk_s:.3f} s | {pred_s / walk_s:.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
