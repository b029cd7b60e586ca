"""CVMFS publish benchmark (issue 11): a release that shares all but one package with the
previous one, published into a CVMFS transaction with `--cvmfs` (no hard links: CVMFS
de-duplicates by content) against the same publish with hard links to the previous release
(a plain publish inside an open transaction), on the STAND-IN MODEL of CVMFS
(tests/stand_ins/cvmfs_model.py behind tests/stand_ins/cvmfs_server: a real overlayfs
transaction over the published revision; a hard link to a published file copies it up whole
into the scratch area, as on a release manager machine). Reports what lands in the scratch
area (files, bytes, unchanged copy-ups) and the wall time of the whole publish, both cases in
the same run, for sources with nanosecond mtimes and with whole-second ones (what a tarball
extraction leaves; only then can an old release's file on the client tree, which shows whole
seconds, be hard-linked at all). Needs root (the model mounts overlayfs and read-only bind mounts).

    .venv/bin/python benchmarks/bench_cvmfs.py                 # quick: 5000 package files
    .venv/bin/python benchmarks/bench_cvmfs.py --files 50000   # the issue's size

The model's own `cvmfs_server publish` (applying the scratch area to the next revision) is
in the wall time; a real server also compresses and hashes what it finds there, so the
scratch figures are the ones that carry over to a real repository. Both cases time the
library's publish() (the console script adds its constant start-up, the same for both).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Self

HERE = Path(__file__).resolve().parent
STAND_INS = HERE.parent / "tests" / "stand_ins"
FQRN = "bench.example.org"


def _model() -> Any:
    spec = importlib.util.spec_from_file_location("cvmfs_model", STAND_INS / "cvmfs_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Repo:
    """One modelled CVMFS repository under ``work/<case>``; its cvmfs_server environment is
    switched in around each publish (the stand-in reads it from the environment)."""

    def __init__(self, work: Path, case: str) -> None:
        self.repo = work / case / "cvmfs" / FQRN
        self.state = work / case / "state"
        self.cache = work / case / "hash-cache"
        self.repo.mkdir(parents=True)
        self.env = {"PATH": f"{STAND_INS}:{Path(sys.executable).parent}:{os.environ['PATH']}",
                    "CVMFS_STANDIN_DIR": str(self.state), "CVMFS_STANDIN_REPO": str(self.repo),
                    "CVMFS_STANDIN_MODEL": "1", "DEPOTDELIVERY_PUBLISH_CACHE": str(self.cache)}
        subprocess.run([sys.executable, str(STAND_INS / "cvmfs_model.py"), "ensure", str(self.state), str(self.repo)],
                       check=True)

    def __enter__(self) -> Self:
        self._saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        return self

    def __exit__(self, *exc: object) -> None:
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    def server(self, *args: str) -> None:
        subprocess.run(["cvmfs_server", *args], check=True, capture_output=True)

    def last_publish(self) -> dict[str, Any]:
        lines = (self.state / "publishes.jsonl").read_text().splitlines()
        return dict(json.loads(lines[-1]))


def _patch_one_package(inputs: Any) -> tuple[str, int]:
    """Append to every file of one package (its sources and its caches, as bench_publish)."""
    pkg = inputs.packages[len(inputs.packages) // 2]
    changed = 0
    for tree in (inputs.depot, *(v.dir for v in inputs.variants.values())):
        for dirpath, _, names in os.walk(tree):
            for n in names:
                path = os.path.join(dirpath, n)
                if f"/{pkg.name}/" in path and os.path.isfile(path) and not os.path.islink(path):
                    with open(path, "ab") as fh:
                        fh.write(b"\n# patched\n")
                    changed += 1
    return pkg.name, changed


def _whole_seconds(inputs: Any) -> None:
    for tree in (inputs.depot, *(v.dir for v in inputs.variants.values())):
        for dirpath, dirs, names in os.walk(tree):
            for n in names + dirs:
                p = os.path.join(dirpath, n)
                ns = os.lstat(p).st_mtime_ns // 10**9 * 10**9
                os.utime(p, ns=(ns, ns), follow_symlinks=False)


def _scenario(work: Path, args: argparse.Namespace, key: Any, repos: list[_Repo], whole_seconds: bool) -> dict[str, Any]:
    """Release 1 into two modelled repositories, one package changed, release 2 into each:
    with --cvmfs, and as a plain publish (hard links) inside an open transaction."""
    from depotdelivery.publisher.publish import VariantInput, publish
    from depotdelivery.synth.depot import generate_release_inputs

    inputs = generate_release_inputs(work / "inputs", files=args.files, packages=max(8, args.files // 60),
                                     artifact_bytes=args.artifact_mb << 20, targets=("generic", "haswell"))
    if whole_seconds:
        _whole_seconds(inputs)
    variants = {t: VariantInput(dir=v.dir, cpu_target=v.cpu_target) for t, v in inputs.variants.items()}
    pair = [_Repo(work, "cvmfs"), _Repo(work, "links")]
    repos.extend(pair)

    def release(r: _Repo, version: str, cvmfs: str | None) -> Any:
        return publish(r.repo, "hep", version, inputs.depot, variants, key, project=inputs.project,
                       cvmfs=cvmfs, storage="cvmfs", hash_cache_dir=r.cache)

    for r in pair:
        with r:
            release(r, "1", FQRN)
    package, changed = _patch_one_package(inputs)
    time.sleep(1.1)  # past the hash cache's racy window for the patched files
    cases: dict[str, dict[str, Any]] = {}
    with pair[0] as r:
        t = time.perf_counter()
        second = release(r, "2", FQRN)
        cases["cvmfs"] = {"s": time.perf_counter() - t, "linked_files": second.linked_files, **r.last_publish()}
    with pair[1] as r:
        t = time.perf_counter()
        r.server("transaction", FQRN)
        second = release(r, "2", None)  # a plain publish (hard links) inside the transaction
        r.server("publish", FQRN)
        cases["with_links"] = {"s": time.perf_counter() - t, "linked_files": second.linked_files, **r.last_publish()}
    a, b = cases["cvmfs"], cases["with_links"]
    keep = ("s", "paths_in_scratch", "files_written", "bytes_written", "copied_up", "linked_files")
    doc: dict[str, Any] = {"package": package, "files_changed": changed}
    for name, case in cases.items():
        doc[name] = {k: round(case[k], 3) if k == "s" else case[k] for k in keep}
        # a link into release 1 copies its file up: CVMFS re-processes release 1's catalog too
        doc[name]["release_1_catalog_changed"] = "releases/hep/1" in case["catalogs_changed"]
    doc["paths_ratio_links_vs_cvmfs"] = round(b["paths_in_scratch"] / max(1, a["paths_in_scratch"]), 2)
    doc["bytes_written_ratio_links_vs_cvmfs"] = round(b["bytes_written"] / max(1, a["bytes_written"]), 2)
    doc["wall_ratio_links_vs_cvmfs"] = round(b["s"] / a["s"], 2)
    return doc


def _table(files: int, scenarios: dict[str, dict[str, Any]]) -> str:
    mib = 2**20
    rows = []
    for label, d in scenarios.items():
        for case, what in (("cvmfs", "`publish --cvmfs` (no hard links)"),
                           ("with_links", "hard links to release 1 inside the transaction")):
            c = d[case]
            rows.append(f"| {label} | {what} | {c['linked_files']} | {c['paths_in_scratch']} | "
                        f"{c['bytes_written'] / mib:.1f} MiB | {c['copied_up']} | "
                        f"{'yes' if c['release_1_catalog_changed'] else 'no'} | {c['s']:.2f} s |")
        rows.append(f"| {label} | ratio (links / --cvmfs) | | {d['paths_ratio_links_vs_cvmfs']}x | "
                    f"{d['bytes_written_ratio_links_vs_cvmfs']}x | | | {d['wall_ratio_links_vs_cvmfs']}x |")
    return (f"| source mtimes ({files} package files, one package changed) | second release | hard links made | "
            "paths in the scratch area | bytes | unchanged copy-ups | release 1's catalog changed | wall |\n"
            "|---|---|---|---|---|---|---|---|\n"
            + "\n".join(rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=5000, help="package source files in the depot (default 5000)")
    ap.add_argument("--artifact-mb", type=int, default=16, help="artifact payload in MiB (default 16)")
    ap.add_argument("--json-out", help="also write the JSON result here")
    args = ap.parse_args(argv)
    model = _model()
    why = model.problem()
    if why is not None:
        print(f"bench_cvmfs: {why}", file=sys.stderr)
        return 2

    from depotdelivery.store.keys import keygen, load_private_key

    work = Path(tempfile.mkdtemp(prefix="bench-cvmfs-"))
    repos: list[_Repo] = []
    try:
        keygen(work / "key")
        key = load_private_key(work / "key")
        scenarios = {label: _scenario(work / label, args, key, repos, whole)
                     for label, whole in (("nanoseconds", False), ("whole seconds", True))}
        doc = {"files": args.files, "scenarios": scenarios}
        out = json.dumps(doc, indent=2)
        print(out)
        if args.json_out:
            Path(args.json_out).write_text(out + "\n")
        print("\n" + _table(args.files, scenarios) + "\n")
    finally:
        for r in repos:
            model.unmount(str(r.state), str(r.repo))
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
