"""Benchmark the Julia format readers: CRC-32C (C package vs pure-Python fallback), cache-file
scanning (header-only vs full parse), clone targets of a large sysimage (mmap vs reading the
whole file). Baselines are measured in the same run; results are ratios.

    .venv/bin/python benchmarks/julia_formats.py [--files 300] [--image-mb 256]

Prints one JSON object, then a markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

from depotdelivery.julia.cachefile import (
    CHECKSUM_TAG,
    CacheFile,
    Dependency,
    RequiredModule,
    SourceText,
    WorklistModule,
    read_cache_file,
)
from depotdelivery.julia.crc32c import crc32c, crc32c_python
from depotdelivery.julia.elfimage import ElfImage, read_image_targets
from depotdelivery.julia.targetdata import ImageTarget, TargetData
from depotdelivery.synth.cachefile import write_cache_file
from depotdelivery.synth.elfimage import write_image
from depotdelivery.synth.targetdata import target_data_bytes


def best(fn, repeat: int = 5) -> float:
    """Best wall time of ``repeat`` runs (seconds)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def make_cache_files(root: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        u = uuid.UUID(int=(i + 1) * 0x9E3779B97F4A7C15 % (1 << 128))
        deps = tuple(Dependency(path=f"@depot/packages/P{i}/abcde/src/f{j}.jl", mtime=-1.0, fsize=1000 + j,
                                crc32c=j) for j in range(40))
        cf = CacheFile(julia_version="1.11.1", checksum=CHECKSUM_TAG | i,
                       worklist=(WorklistModule(name=f"P{i}", uuid=u, build_id=i),), dependencies=deps,
                       required_modules=tuple(RequiredModule(name=f"D{k}", uuid=u, build_id=k) for k in range(30)),
                       clone_targets=b"\0" * 120,
                       source_texts=tuple(SourceText(path=f"/src/f{j}.jl", text=b"x = 1\n" * 2000) for j in range(40)))
        path = root / f"P{i}.ji"
        write_cache_file(cf, path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--image-mb", type=int, default=256)
    args = parser.parse_args(argv)
    rows = []

    data = os.urandom(1 << 20)
    c_time = best(lambda: crc32c(data), 20)
    py_time = best(lambda: crc32c_python(data[: 1 << 16]), 3) * 16
    rows.append({"what": "CRC-32C of 1 MiB", "baseline": "pure-Python fallback", "baseline_s": py_time,
                 "ours": "crc32c C package", "ours_s": c_time})

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = make_cache_files(root, args.files)
        full = best(lambda: [read_cache_file(p) for p in paths], 3)
        fast = best(lambda: [read_cache_file(p, header_only=True) for p in paths], 3)
        rows.append({"what": f"parse {args.files} .ji files (~{paths[0].stat().st_size // 1024} KiB each)",
                     "baseline": "full read + file CRC", "baseline_s": full,
                     "ours": "header_only", "ours_s": fast})

        targets = TargetData(tuple(ImageTarget(flags=0, en_words=(i,) * 11, dis_words=(0,) * 11, name=f"t{i}")
                                   for i in range(4)))
        image = root / "sys.so"
        write_image(image, target_data_bytes(targets), extra_symbols={"jl_system_image_data": b"\0" * (args.image_mb << 20)})

        def whole_file() -> TargetData:
            return ElfImage(image.read_bytes(), str(image)).targets()

        rows.append({"what": f"clone targets of a {args.image_mb} MiB sysimage", "baseline": "read whole file",
                     "baseline_s": best(whole_file, 3), "ours": "mmap", "ours_s": best(lambda: read_image_targets(image), 3)})

    for row in rows:
        row["speedup"] = row["baseline_s"] / row["ours_s"]
    print(json.dumps({"benchmark": "julia_formats", "results": rows}, indent=1))
    print()
    print("| measurement | baseline | baseline (ms) | ours | ours (ms) | speed-up |")
    print("|---|---|---:|---|---:|---:|")
    for r in rows:
        print(f"| {r['what']} | {r['baseline']} | {r['baseline_s'] * 1e3:.2f} | {r['ours']} | "
              f"{r['ours_s'] * 1e3:.2f} | {r['speedup']:.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
