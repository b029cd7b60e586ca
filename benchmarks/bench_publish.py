"""Publisher benchmark: hashing and publishing a generated HEP-sized depot vs `b3sum` and `cp -a`
of the same tree in the same run; identical re-publish time; repository growth when one
package changes. Prints one JSON object and a markdown table (ratios against the baselines).

    .venv/bin/python benchmarks/bench_publish.py                 # quick: 5000 package files
    .venv/bin/python benchmarks/bench_publish.py --files 50000   # the issue's target size

Targets (issue 3): hashing within 1.5x of b3sum on the same files; identical re-publish of
50k files in under 2 s. Everything runs on a warm page cache (the depot was just generated),
for the baselines as much as for us.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from repo_fixtures import unique_bytes  # noqa: E402 - the test suite's hard-link-aware size


def _timed(fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    value = fn()
    return time.perf_counter() - t, value


def _best(n: int, fn, setup=None):  # type: ignore[no-untyped-def]
    """Best of ``n`` runs (the least disturbed by the other work on a shared machine);
    ``setup`` (e.g. removing the previous run's output) runs before each, untimed."""
    runs = []
    for _ in range(n):
        if setup is not None:
            setup()
        runs.append(_timed(fn))
    return min(r[0] for r in runs), runs[0][1]


def _files(root: Path) -> list[tuple[str, os.stat_result]]:
    from depotdelivery.store.walk import walk

    return [(e.path, e.st) for e in walk(root) if stat.S_ISREG(e.st.st_mode)]


def _b3sum(paths: list[str]) -> None:
    # xargs-style batches: one b3sum process per few thousand files, as a shell user would run it
    for i in range(0, len(paths), 4000):
        subprocess.run(["b3sum", "--no-names", *paths[i:i + 4000]], check=True, stdout=subprocess.DEVNULL)


def _our_hash(files: list[tuple[str, os.stat_result]]) -> None:
    from depotdelivery.store.hashing import hash_file

    for path, st in files:
        hash_file(path, st)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=5000, help="package source files in the depot (default 5000)")
    ap.add_argument("--packages", type=int, default=0, help="packages (default files/60, at least 8)")
    ap.add_argument("--artifact-mb", type=int, default=64, help="artifact payload in MiB (default 64)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per timing, best kept (default 3)")
    ap.add_argument("--dir", help="work directory (default: a fresh temporary directory, removed after)")
    ap.add_argument("--json-out", help="also write the JSON result here")
    args = ap.parse_args(argv)
    if shutil.which("b3sum") is None:
        print("bench_publish: b3sum is not installed (Debian package b3sum): no baseline", file=sys.stderr)
        return 2

    from depotdelivery.publisher.publish import VariantInput, init_repository, publish
    from depotdelivery.store.keys import keygen, load_private_key
    from depotdelivery.synth.depot import generate_release_inputs

    work = Path(args.dir or tempfile.mkdtemp(prefix="bench-publish-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        packages = args.packages or max(8, args.files // 60)
        gen_s, inputs = _timed(lambda: generate_release_inputs(
            work / "inputs", files=args.files, packages=packages, artifact_bytes=args.artifact_mb << 20,
            targets=("generic", "haswell", "skylake-avx512")))
        trees = [inputs.depot, *(v.dir for v in inputs.variants.values())]
        files = [f for t in trees for f in _files(t)]
        nfiles, nbytes = len(files), sum(st.st_size for _, st in files)
        paths = [p for p, _ in files]

        b3_s, _ = _best(args.repeat, lambda: _b3sum(paths))
        ours_s, _ = _best(args.repeat, lambda: _our_hash(files))

        keygen(work / "key")
        key = load_private_key(work / "key")
        variants = {t: VariantInput(dir=v.dir, cpu_target=v.cpu_target) for t, v in inputs.variants.items()}
        cache = work / "hash-cache"

        def clean_cp() -> None:
            shutil.rmtree(work / "cp", ignore_errors=True)
            (work / "cp").mkdir()

        def clean_repo() -> None:
            shutil.rmtree(work / "repo", ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)
            init_repository(work / "repo")

        # interleaved, so both see the same background load
        cp_runs, cold_runs = [], []
        for _ in range(args.repeat):
            cp_runs.append(_best(1, lambda: subprocess.run(["cp", "-a", *map(str, trees), str(work / "cp")], check=True),
                                 clean_cp)[0])
            s, first = _best(1, lambda: publish(work / "repo", "hep", "1", inputs.depot, variants, key,
                                                project=inputs.project, hash_cache_dir=cache), clean_repo)
            cold_runs.append(s)
        shutil.rmtree(work / "cp")
        cp_s, cold_s = min(cp_runs), min(cold_runs)
        time.sleep(1.1)  # past the stat cache's racy window for the files written by the generator
        publish(work / "repo", "hep", "1", inputs.depot, variants, key, project=inputs.project, hash_cache_dir=cache)
        re_s, again = _best(args.repeat, lambda: publish(work / "repo", "hep", "1", inputs.depot, variants, key,
                                                         project=inputs.project, hash_cache_dir=cache))
        assert not again.created and again.release_id == first.release_id  # type: ignore[attr-defined]
        cli = [sys.executable, "-m", "depotdelivery", "publish", "--repo", str(work / "repo"), "--name", "hep",
               "--version", "1", "--depot", str(inputs.depot), "--key", str(work / "key"), "--project", inputs.project,
               "--quiet", *[f"--variant={t}={v.dir}" for t, v in inputs.variants.items()],
               *[f"--cpu-target={t}={v.cpu_target}" for t, v in inputs.variants.items()]]
        env = dict(os.environ, DEPOTDELIVERY_PUBLISH_CACHE=str(cache))
        re_cli_s, _ = _best(args.repeat, lambda: subprocess.run(cli, check=True, env=env, stdout=subprocess.DEVNULL))

        # one package changes (its sources and its caches): how much does the repository grow?
        pkg = inputs.packages[len(inputs.packages) // 2]
        changed = [p for p, _ in files if f"/{pkg.name}/" in p]
        changed_bytes = 0
        for p in changed:
            with open(p, "ab") as fh:
                fh.write(b"\n# patched\n")
            changed_bytes += os.path.getsize(p)
        before = unique_bytes(work / "repo")
        second_s, second = _timed(lambda: publish(work / "repo", "hep", "2", inputs.depot, variants, key,
                                                  project=inputs.project, hash_cache_dir=cache))
        growth = unique_bytes(work / "repo") - before
        # listing files release 2 does not share with release 1 (unchanged chunks are hard links)
        listings = sum(st.st_size for p in (work / "repo" / "releases" / "hep" / "2" / "listings").iterdir()
                       if (st := p.stat()).st_nlink == 1)

        mb = nbytes / 2**20
        result = {
            "files": nfiles, "bytes": nbytes, "packages": packages, "generate_s": round(gen_s, 2),
            "hash": {"ours_s": round(ours_s, 3), "b3sum_s": round(b3_s, 3), "ratio_vs_b3sum": round(ours_s / b3_s, 2),
                     "ours_files_per_s": round(nfiles / ours_s), "ours_mb_per_s": round(mb / ours_s, 1),
                     "b3sum_files_per_s": round(nfiles / b3_s), "b3sum_mb_per_s": round(mb / b3_s, 1)},
            "publish_cold": {"s": round(cold_s, 3), "files_per_s": round(nfiles / cold_s), "mb_per_s": round(mb / cold_s, 1),
                             "cp_a_s": round(cp_s, 3), "ratio_vs_cp_a": round(cold_s / cp_s, 2),
                             "ratio_vs_b3sum_plus_cp_a": round(cold_s / (b3_s + cp_s), 2)},
            "republish_identical": {"library_s": round(re_s, 3), "cli_s": round(re_cli_s, 3), "target_s_at_50k": 2.0},
            "one_package_changed": {"package": pkg.name, "files_changed": len(changed), "changed_bytes": changed_bytes,
                                    "publish_s": round(second_s, 3), "repo_growth_bytes": growth,
                                    "of_which_new_listings_bytes": listings,
                                    "linked_files": second.linked_files,  # type: ignore[attr-defined]
                                    "growth_vs_release_size": round(growth / nbytes, 4)},
        }
        out = json.dumps(result, indent=2)
        print(out)
        if args.json_out:
            Path(args.json_out).write_text(out + "\n")
        h, c, r, g = result["hash"], result["publish_cold"], result["republish_identical"], result["one_package_changed"]
        print(f"""
| measure ({nfiles} files, {mb:.0f} MiB) | depotdelivery | baseline | ratio |
|---|---|---|---|
| hash every file | {h['ours_s']} s ({h['ours_files_per_s']} files/s, {h['ours_mb_per_s']} MB/s) | b3sum {h['b3sum_s']} s | {h['ratio_vs_b3sum']}x (target <= 1.5x) |
| cold publish (hash + copy + sign + commit) | {c['s']} s ({c['files_per_s']} files/s, {c['mb_per_s']} MB/s) | cp -a {c['cp_a_s']} s; b3sum + cp -a {round(b3_s + cp_s, 3)} s | {c['ratio_vs_cp_a']}x cp -a; {c['ratio_vs_b3sum_plus_cp_a']}x b3sum+cp |
| identical re-publish | library {r['library_s']} s, CLI {r['cli_s']} s | target < 2 s at 50k files | |
| one package changed ({g['files_changed']} files, {g['changed_bytes']} B) | repo grew {g['repo_growth_bytes']} B (listings {listings} B) in {g['publish_s']} s | release {nbytes} B | {g['growth_vs_release_size']} of a full copy |
""")
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
