"""The Slurm recipes of docs/launchers.md and docs/site-admin.md, run as written in a real
single-node Slurm cluster (launchers/slurm_cluster.py: munged, slurmctld, slurmd as root on
localhost) against the demo repository, with the ``julia`` stand-in tests/stand_ins/julia-recorder
on PATH recording each task's argv, environment and the project Julia would activate.

The recipes' text comes from the pages (test_docs.recipe / test_docs.heredoc), so the docs show
what runs here. What a site changes is changed, visibly, on the command line (``sbatch
--nodes=1 --array=0-7``) or, for the epilog's two site paths, by a checked substitution.
All jobs are submitted at once and run side by side (8 CPUs advertised), then each test checks
one recipe's outcome: the suite pays for one cluster start and one round of jobs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_docs import heredoc, recipe

from depotdelivery.demo import demo_env, run_demo
from launchers.slurm_cluster import SlurmCluster, why_not

RECORDER = Path(__file__).resolve().parents[1] / "stand_ins" / "julia-recorder"
BIN = Path(sys.executable).parent  # the console script `depotdelivery` of this installation
TASKS = 8

pytestmark = pytest.mark.skipif(why_not() is not None, reason=str(why_not()))

# The documented recipe before issue 16: the batch shell expands $SLURM_PROCID (to 0) before
# srun starts the tasks, and a bare --project replaces the JULIA_PROJECT depotdelivery sets.
OLD_SRUN = '#!/bin/bash\nsrun depotdelivery exec -- julia --project analysis.jl "$SLURM_PROCID"\n'


def _script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


class Jobs:
    """Every job of the module, submitted together; what the tests read back."""

    def __init__(self, base: Path, cluster: SlurmCluster, env: dict[str, str]) -> None:
        self.base, self.cluster, self.env = base, cluster, env
        self.work = base / "work"
        self.ids: dict[str, str] = {}

    def submit(self, name: str, script: Path, *options: str, **variables: str) -> None:
        env = {**self.env, "JULIA_RECORD": str(self.base / f"{name}.jsonl"),
               "DEPOTDELIVERY_CACHE": str(self.cache(name)), **variables}
        self.ids[name] = self.cluster.sbatch(script, f"--output={self.base}/{name}.out", *options,
                                             env=env, cwd=self.work)

    def cache(self, name: str) -> Path:
        # the prolog jobs use the cache the epilog's substituted default names for uid 0
        return self.base / (f"cache-{os.getuid()}" if name.startswith("prolog") else f"cache-{name}")

    def records(self, name: str) -> list[dict]:
        path = self.base / f"{name}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def output(self, name: str) -> str:
        return (self.base / f"{name}.out").read_text()

    def hydrations(self, name: str) -> list[dict]:
        log = self.cache(name) / "hydrations.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    base = tmp_path_factory.mktemp("slurm")
    run_demo(base / "demo", out=None)
    (base / "bin").mkdir()
    (base / "bin" / "julia").symlink_to(RECORDER)
    work = base / "work"
    work.mkdir()
    (work / "analysis.jl").write_text("println(ARGS)\n")
    (work / "Project.toml").write_text('name = "NotTheRelease"\n')  # what a bare --project finds

    # the epilog as documented, with its two site paths pointed at this installation and this
    # test's caches (each must still be in the text: a changed recipe fails here)
    epilog = recipe("site-admin.md", "epilog-gc")
    for site, here in (("/usr/local/bin/depotdelivery", str(BIN / "depotdelivery")),
                       ("/var/tmp/depotdelivery-", f"{base}/cache-")):
        assert site in epilog, f"the documented epilog no longer uses {site}"
        epilog = epilog.replace(site, here)
    cluster = SlurmCluster(base / "slurm", epilog=_script(base / "epilog.sh", epilog))
    cluster.start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPOTDELIVERY_", "JULIA_"))}
        env.update(demo_env(base / "demo"), PATH=f"{BIN}:{base / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
                   HOME=str(base))
        j = Jobs(base, cluster, env)
        # a leftover of a killed job in the epilog's cache: gc removes incomplete depots
        (j.cache("prolog") / "depots" / "0123456789abcdef-x86_64-stack").mkdir(parents=True)
        prolog = _script(base / "taskprolog.sh", heredoc("launchers.md", "taskprolog.sh"))
        prolog_job = _script(base / "prolog-job.sh",
                             f"#!/bin/bash\nsrun --ntasks={TASKS} --task-prolog={prolog} julia analysis.jl\n")
        j.submit("srun", _script(base / "srun.sh", recipe("launchers.md", "srun-ranks")), "--nodes=1")
        j.submit("old-srun", _script(base / "old-srun.sh", OLD_SRUN), f"--ntasks={TASKS}")
        j.submit("array", _script(base / "array.sh", recipe("launchers.md", "array")), f"--array=0-{TASKS - 1}")
        j.submit("prolog", prolog_job, f"--ntasks={TASKS}")
        j.submit("prolog-broken", prolog_job, f"--ntasks={TASKS}",
                 DEPOTDELIVERY_REPO=str(base / "no-such-repo"))
        cluster.wait_all()
        yield j
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def expected(jobs):
    """What `depotdelivery prepare` computes on this host, in a cache of its own."""
    env = {**jobs.env, "DEPOTDELIVERY_CACHE": str(jobs.base / "cache-reference")}
    done = subprocess.run(["depotdelivery", "prepare", "--json"], env=env, capture_output=True, text=True,
                          check=True)
    return {**json.loads(done.stdout), "cache": env["DEPOTDELIVERY_CACHE"]}


def test_every_job_completed(jobs):
    for name, job in jobs.ids.items():
        states = jobs.cluster.job_states(job)
        assert states and all(s == "COMPLETED 0:0" for s in states.values()), (name, states)


def _assert_env(record: dict, expected: dict, cache: Path) -> None:
    """A task's julia got the prepared environment (the writable depot in the job's cache)."""
    for name, value in expected["env"].items():
        assert record["env"].get(name) == value.replace(expected["cache"], str(cache)), name


def _assert_prepared(record: dict, expected: dict, cache: Path) -> None:
    """A task's julia got the prepared sysimage, environment and project."""
    assert record["argv"][:2] == expected["julia_args"] == ["--sysimage", record["sysimage"]]
    assert Path(record["sysimage"]).is_file()
    _assert_env(record, expected, cache)
    assert record["active_project"] == os.path.join(expected["env"]["JULIA_PROJECT"], "Project.toml")


def test_srun_recipe_gives_each_task_its_rank_and_one_hydration(jobs, expected):
    records = jobs.records("srun")
    assert len(records) == TASKS and len({r["pid"] for r in records}) == TASKS
    for r in records:
        _assert_prepared(r, expected, jobs.cache("srun"))
        assert r["argv"][2:] == ["analysis.jl", r["env"]["SLURM_PROCID"]]
    assert sorted(int(r["env"]["SLURM_PROCID"]) for r in records) == list(range(TASKS))
    hydrations = jobs.hydrations("srun")
    assert len(hydrations) == 1 and hydrations[0]["key"].endswith(f"-{expected['variant']}-stack"), hydrations


def test_the_old_srun_recipe_was_wrong(jobs, expected):
    """Why the docs changed: the unquoted rank is the batch shell's 0 in every task, and the
    bare --project activates the working directory's project instead of the release's."""
    records = jobs.records("old-srun")
    assert len(records) == TASKS
    assert {r["argv"][-1] for r in records} == {"0"}
    assert sorted(int(r["env"]["SLURM_PROCID"]) for r in records) == list(range(TASKS))
    assert {r["active_project"] for r in records} == {str(jobs.work / "Project.toml")}
    assert expected["env"]["JULIA_PROJECT"] != str(jobs.work)


def test_array_recipe_gives_each_task_its_index_and_one_hydration(jobs, expected):
    records = jobs.records("array")
    assert sorted(int(r["argv"][-1]) for r in records) == list(range(TASKS))
    for r in records:
        _assert_prepared(r, expected, jobs.cache("array"))
        assert r["argv"][-1] == r["env"]["SLURM_ARRAY_TASK_ID"]
    assert len({r["env"]["SLURM_JOB_ID"] for r in records}) == TASKS  # each array task is a job
    assert len(jobs.hydrations("array")) == 1


def test_taskprolog_exports_the_environment(jobs, expected):
    records = jobs.records("prolog")
    assert len(records) == TASKS
    for r in records:
        assert r["sysimage"] is None  # a prolog cannot add julia arguments (the docs say so)
        _assert_env(r, expected, jobs.cache("prolog"))
    assert len(jobs.hydrations("prolog")) == 1
    assert "not prepared" not in jobs.output("prolog")


def test_failing_taskprolog_says_why_in_the_job_output(jobs):
    env = {**jobs.env, "DEPOTDELIVERY_REPO": str(jobs.base / "no-such-repo"),
           "DEPOTDELIVERY_CACHE": str(jobs.base / "cache-broken-reference")}
    done = subprocess.run(["depotdelivery", "env", "--shell", "json"], env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode != 0 and done.stderr.strip()
    out = jobs.output("prolog-broken").splitlines()
    assert out.count(f"depotdelivery: environment not prepared (exit {done.returncode}), "
                     "Julia will use ~/.julia:") == TASKS
    assert out.count(done.stderr.strip()) == TASKS, out  # the error itself, once per task
    records = jobs.records("prolog-broken")
    assert len(records) == TASKS and not any("JULIA_DEPOT_PATH" in r["env"] for r in records)


def test_epilog_gc_reaps_dead_leases_and_leftovers_keeps_the_depot(jobs, expected):
    cache = jobs.cache("prolog")
    depots = sorted(p.name for p in (cache / "depots").iterdir())
    assert depots == [expected["key"]]  # the killed job's leftover went, the depot in use stayed
    leases = [p for p in (cache / "leases").rglob("*") if p.is_file()]
    assert leases == []  # the prologs' leases (their processes exited) did not pile up
