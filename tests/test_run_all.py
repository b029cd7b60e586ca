"""benchmarks/run_all.py on a directory of small real scripts: discovery, the JSON each prints,
the ratios it reports, a failing benchmark recorded without stopping the others, the files it writes."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

RUN_ALL = Path(__file__).resolve().parent.parent / "benchmarks" / "run_all.py"


def _script(path: Path, body: str) -> None:
    path.write_text(textwrap.dedent(body))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(RUN_ALL), *args], capture_output=True, text=True, timeout=120)


def test_collects_results_ratios_and_failures(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    _script(bench / "bench_ok.py", """
        import json, sys
        print(json.dumps({"ratios": {"ours_over_baseline": 0.5}, "results": [{"what": "crc", "speedup": 40.0}],
                          "iterations": 20, "operations": 80, "ratio_vs_cp": 1.25,
                          "argv": sys.argv[1:]}, indent=1))
        print()
        print("| measurement | ours | baseline | ratio |")
        print("|---|---|---|---|")
        print("| crc | 1 ms | 40 ms | 40x |")
    """)
    _script(bench / "bench_broken.py", """
        import sys
        print("starting", flush=True)
        sys.exit("bench_broken: b3sum is not installed")
    """)
    _script(bench / "_helper.py", "raise SystemExit('helpers are not benchmarks')\n")
    out = tmp_path / "results"
    done = _run("--benchmarks", str(bench), "--out", str(out))
    assert done.returncode == 1, done.stderr  # one benchmark failed
    [report_json] = out.glob("*.json")
    [report_md] = out.glob("*.md")
    assert report_json.stem == report_md.stem and report_json.stem.count("-") >= 3  # <date>-<host>
    doc = json.loads(report_json.read_text())
    assert set(doc["benchmarks"]) == {"bench_ok", "bench_broken"}
    ok, broken = doc["benchmarks"]["bench_ok"], doc["benchmarks"]["bench_broken"]
    assert ok["returncode"] == 0 and ok["result"]["ratios"] == {"ours_over_baseline": 0.5}
    assert ok["result"]["argv"] == [] and ok["table"].startswith("| measurement |")
    assert broken["returncode"] == 1 and broken["result"] is None
    assert broken["stderr_tail"] == ["bench_broken: b3sum is not installed"]
    md = report_md.read_text()
    assert "ratios.ours_over_baseline = 0.5" in md and "results[crc].speedup = 40" in md and "ratio_vs_cp = 1.25" in md
    assert "iterations" not in md and "operations" not in md  # counts, not ratios
    assert "| bench_broken | FAILED (exit 1) |" in md and "| crc | 1 ms | 40 ms | 40x |" in md
    assert doc["machine"]["cpus"] and doc["command"].startswith("benchmarks/run_all.py")


def test_only_selects_and_unknown_names_are_refused(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    _script(bench / "bench_a.py", "print('{\"x_vs_y\": 2}')\n")
    _script(bench / "bench_b.py", "raise SystemExit(3)\n")
    done = _run("--benchmarks", str(bench), "--out", str(tmp_path / "r"), "--only", "bench_a")
    assert done.returncode == 0, done.stderr
    doc = json.loads(next((tmp_path / "r").glob("*.json")).read_text())
    assert list(doc["benchmarks"]) == ["bench_a"] and doc["benchmarks"]["bench_a"]["result"] == {"x_vs_y": 2}
    refused = _run("--benchmarks", str(bench), "--out", str(tmp_path / "r2"), "--only", "bench_nope")
    assert refused.returncode == 2 and "no benchmark named bench_nope" in refused.stderr
    assert not (tmp_path / "r2").exists()
