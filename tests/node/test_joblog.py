"""The per-node job log: real concurrent writer processes (whole lines, none lost, rotation
under the lock), and what `depotdelivery prepare` writes into it from a read-only repository."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from node_fixtures import captured_cpu, node_env, run_ro

WRITERS = 8
LINES = 200

# A writer process: LINES lines, each naming its writer and sequence number, padded so lines
# differ in length (a torn or interleaved write would show as a line that does not parse).
_WRITER = textwrap.dedent("""
    import sys
    from depotdelivery.node.joblog import write_line
    path, writer, max_bytes, lines = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    for seq in range(lines):
        write_line(path, {"writer": writer, "seq": seq, "pad": "x" * (seq % 97)}, max_bytes)
""")


def _write_concurrently(path: str, max_bytes: int) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, path, str(w), str(max_bytes), str(LINES)]) for w in range(WRITERS)]
    assert [p.wait(timeout=120) for p in procs] == [0] * WRITERS


def _lines(path: str) -> list[dict[str, object]]:
    with open(path, "rb") as f:
        data = f.read()
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.split(b"\n")[:-1]]


def test_concurrent_writers_lose_or_split_no_line(tmp_path):
    path = str(tmp_path / "jobs.jsonl")
    _write_concurrently(path, 0)
    got = sorted((d["writer"], d["seq"]) for d in _lines(path))
    assert got == [(w, s) for w in range(WRITERS) for s in range(LINES)]
    # each writer's own lines stay in order (one O_APPEND write each)
    seqs: dict[object, list[object]] = {}
    for d in _lines(path):
        seqs.setdefault(d["writer"], []).append(d["seq"])
    assert all(s == sorted(s) for s in seqs.values())


def test_rotation_under_concurrent_writers_keeps_whole_lines_and_bounded_files(tmp_path):
    path = str(tmp_path / "jobs.jsonl")
    max_bytes = 4096  # ~25 rotations over the run
    _write_concurrently(path, max_bytes)
    longest = len(json.dumps({"writer": 9, "seq": 999, "pad": "x" * 96})) + 1
    # the very last write may have rotated: then there is no current generation until the next
    current = _lines(path) if os.path.exists(path) else []
    previous = _lines(path + ".1")
    assert previous
    # a rotation happens as soon as a writer sees the file past the limit, so a generation holds
    # at most the limit plus the lines in flight from the other writers
    for name in (path, path + ".1"):
        assert not os.path.exists(name) or os.path.getsize(name) <= max_bytes + WRITERS * longest, name
    # a rotation moves whole files: no line is in both generations
    keys = [(d["writer"], d["seq"]) for d in current + previous]
    assert len(keys) == len(set(keys))
    assert {"jobs.jsonl.1", "jobs.jsonl.lock"} <= set(os.listdir(tmp_path)) <= {"jobs.jsonl", "jobs.jsonl.1",
                                                                                "jobs.jsonl.lock"}
    assert os.stat(path + ".lock").st_mode & 0o777 == 0o600


def _prepare(node_repo, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_ro(node_repo, """
        import sys
        from depotdelivery.cli import main
        sys.argv = ["depotdelivery", "prepare", "--json"]
        sys.exit(main())
    """, env=env)


def test_prepare_logs_release_variant_and_job_ids(node_repo, tmp_path):
    env = node_env(node_repo, tmp_path / "cache", DEPOTDELIVERY_CPUINFO=str(captured_cpu("linux-rhel7-haswell")),
                   SLURM_JOB_ID="4242", SLURM_ARRAY_TASK_ID="3")
    for _ in range(2):  # a cold and a warm job
        done = _prepare(node_repo, env)
        assert done.returncode == 0, done.stderr
    lines = _lines(str(tmp_path / "cache/jobs.jsonl"))
    assert [d["hydrated"] for d in lines] == [True, False]
    for d in lines:
        assert d["release"] == "hep/2026.11" and d["variant"] == "haswell" and d["mode"] == "stack"
        assert d["job"] == {"SLURM_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "3"}
        assert d["uid"] == os.getuid() and d["host"] == os.uname().nodename and d["format"] == 1
        assert isinstance(d["ms"], float) and len(d["release_id"]) == 64


def test_job_log_off_and_elsewhere_and_unwritable(node_repo, tmp_path):
    base = node_env(node_repo, tmp_path / "cache", DEPOTDELIVERY_CPUINFO=str(captured_cpu("linux-rhel7-haswell")))
    assert _prepare(node_repo, {**base, "DEPOTDELIVERY_JOB_LOG": "off"}).returncode == 0
    assert not (tmp_path / "cache/jobs.jsonl").exists()

    elsewhere = tmp_path / "site-log.jsonl"
    assert _prepare(node_repo, {**base, "DEPOTDELIVERY_JOB_LOG": str(elsewhere)}).returncode == 0
    assert [d["variant"] for d in _lines(str(elsewhere))] == ["haswell"]

    # a log that cannot be written never fails the job: one warning on stderr, the JSON on stdout
    done = _prepare(node_repo, {**base, "DEPOTDELIVERY_JOB_LOG": str(tmp_path / "missing-dir/jobs.jsonl")})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["variant"] == "haswell"
    warnings = [line for line in done.stderr.splitlines() if "job log" in line]
    assert len(warnings) == 1 and "missing-dir/jobs.jsonl: cannot append (No such file or directory)" in warnings[0]
