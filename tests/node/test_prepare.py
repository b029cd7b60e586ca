"""prepare() against a published repository mounted read-only: every mode, the hot path, 32
simultaneous jobs, and kill -9 at random points of a hydration."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st
from node_fixtures import captured_cpu, node_env, run_ro

from depotdelivery.node.prepare import Prepared


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return done.stdout


def test_every_mode_hydrates_once_and_gives_a_usable_stack(node_repo, tmp_path):
    out = _ok(run_ro(node_repo, """
        import json, os
        import depotdelivery
        result = {}
        for mode in ("stack", "symlink", "copy", "overlay"):
            try:
                first = depotdelivery.prepare(mode=mode)
            except depotdelivery.UnsupportedError as exc:
                result[mode] = {"unsupported": str(exc)}
                continue
            second = depotdelivery.prepare(mode=mode)
            d = first.to_dict()
            d["second_hydrated"] = second.hydrated
            d["project_exists"] = os.path.isfile(os.path.join(d["env"]["JULIA_PROJECT"], "Project.toml"))
            d["sysimage_exists"] = os.path.isfile(d["julia_args"][1])
            d["writable"] = os.access(d["depot"], os.W_OK)
            stack = d["env"]["JULIA_DEPOT_PATH"].rstrip(":").split(":")
            d["packages_found"] = sorted({n for p in stack if os.path.isdir(os.path.join(p, "packages"))
                                         for n in os.listdir(os.path.join(p, "packages"))})
            d["compiled_found"] = sorted({n for p in stack if os.path.isdir(os.path.join(p, "compiled/v1.11"))
                                         for n in os.listdir(os.path.join(p, "compiled/v1.11"))})
            if mode == "overlay":
                import subprocess
                subprocess.run(["fusermount3", "-u", d["depot"]], check=True)
            result[mode] = d
        print(json.dumps(result))
    """, env=node_env(node_repo, tmp_path / "cache", DEPOTDELIVERY_CPUINFO=str(captured_cpu("linux-rhel7-haswell")))))
    result = json.loads(out)
    release_dir = node_repo.root / "releases/hep/2026.11"
    reference = None
    for mode, d in result.items():
        if "unsupported" in d:
            assert mode == "overlay", d
            continue
        assert d["hydrated"] and not d["second_hydrated"], mode
        assert d["variant"] == "haswell" and d["release"] == "hep/2026.11" and d["mode"] == mode
        env = d["env"]
        assert env["JULIA_PKG_OFFLINE"] == "true" and env["JULIA_CPU_TARGET"] == "haswell,-rdrnd"
        assert env["JULIA_DEPOT_PATH"].endswith(":") and not env["JULIA_DEPOT_PATH"].endswith("::")
        assert d["julia_args"][0] == "--sysimage" and d["sysimage_exists"] and d["project_exists"]
        assert d["writable"], mode
        if mode == "stack":
            assert d["depot_path"] == [d["depot"], str(release_dir / "variants/haswell/depot"), str(release_dir / "depot")]
            assert d["julia_args"][1] == str(release_dir / "variants/haswell/sys.so")
        else:
            assert d["depot_path"] == [d["depot"]]
        if mode == "copy":
            assert d["julia_args"][1].startswith(str(tmp_path / "cache"))
        # every mode exposes the same packages and compiled caches to Julia
        reference = reference or (d["packages_found"], d["compiled_found"])
        assert (d["packages_found"], d["compiled_found"]) == reference, mode
        assert reference[0] and reference[1]
    log = (tmp_path / "cache/hydrations.log").read_text().splitlines()
    assert len(log) == sum("unsupported" not in d for d in result.values())


def test_hot_path_imports_nothing_heavy(node_repo, tmp_path):
    env = node_env(node_repo, tmp_path / "cache", DEPOTDELIVERY_CPUINFO=str(captured_cpu("linux-rhel7-haswell")))
    _ok(run_ro(node_repo, "import depotdelivery; depotdelivery.prepare()", env=env))  # cold
    out = _ok(run_ro(node_repo, """
        import json, sys
        import depotdelivery
        p = depotdelivery.prepare()
        print(json.dumps({"hydrated": p.hydrated, "modules": sorted(sys.modules)}))
    """, env=env))
    hot = json.loads(out)
    assert hot["hydrated"] is False
    loaded = {m.split(".")[0] for m in hot["modules"]}
    # no signature verification (cryptography), no CPU naming (archspec), no lock (filelock),
    # no hashing, no config parsing, no subprocess: a few stats and small JSON reads
    assert not loaded & {"cryptography", "archspec", "filelock", "blake3", "tomllib", "subprocess", "asyncio",
                         "dataclasses", "pathlib", "shutil", "typing"}
    ours = {m for m in hot["modules"] if m.startswith("depotdelivery.")}
    assert not ours & {"depotdelivery.store.keys", "depotdelivery.cpu", "depotdelivery.node.select",
                       "depotdelivery.node.hydrate", "depotdelivery.julia"}, sorted(ours)


def test_pinned_release_shares_the_channel_depot_and_its_hot_path(node_repo, tmp_path):
    env = node_env(node_repo, tmp_path / "cache", DEPOTDELIVERY_CPUINFO=str(captured_cpu("linux-rhel7-haswell")))
    out = _ok(run_ro(node_repo, """
        import json, sys
        import depotdelivery
        a = depotdelivery.prepare()
        b = depotdelivery.prepare(release=sys.argv[1])
        c = depotdelivery.prepare(release=sys.argv[1])
        print(json.dumps([a.key, b.key, c.key, a.hydrated, b.hydrated, c.hydrated]))
    """, node_repo.ref, env=env))
    a, b, c, *hydrated = json.loads(out)
    assert a == b == c and hydrated == [True, False, False]
    out = _ok(run_ro(node_repo, """
        import json, sys
        import depotdelivery
        p = depotdelivery.prepare(release=sys.argv[1])
        print(json.dumps({"hydrated": p.hydrated, "crypto": "cryptography" in sys.modules}))
    """, node_repo.ref, env=env))
    assert json.loads(out) == {"hydrated": False, "crypto": False}  # its signature was verified once


def test_hot_path_ignores_a_held_hydration_lock(node_repo, tmp_path):
    env = node_env(node_repo, tmp_path / "cache", DEPOTDELIVERY_CPUINFO=str(captured_cpu("linux-rhel7-haswell")))
    first = json.loads(_ok(run_ro(node_repo, "import json, depotdelivery; print(json.dumps(depotdelivery.prepare().to_dict()))", env=env)))
    lock = tmp_path / "cache/locks" / f"{first['key']}.lock"
    out = _ok(run_ro(node_repo, """
        import json, subprocess, sys
        holder = subprocess.Popen([sys.executable, "-c",
            "import filelock, sys, time; l = filelock.FileLock(sys.argv[1]); l.acquire(); print('held', flush=True); time.sleep(30)",
            sys.argv[1]], stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "held"
        import depotdelivery
        p = depotdelivery.prepare(lock_timeout=0)
        holder.kill()
        print(json.dumps({"hydrated": p.hydrated, "key": p.key}))
    """, str(lock), env=env))
    assert json.loads(out) == {"hydrated": False, "key": first["key"]}


def test_32_simultaneous_jobs_share_one_hydration(node_repo, tmp_path):
    env = node_env(node_repo, tmp_path / "cache", DEPOTDELIVERY_CPUINFO=str(captured_cpu("linux-rocky8.5-zen4")),
                   DEPOTDELIVERY_MODE="symlink", DEPOTDELIVERY_HYDRATE_DELAY="0.002")
    out = _ok(run_ro(node_repo, """
        import json, os, subprocess, sys, time
        go = sys.argv[1]
        code = ("import json, os, sys, time\\n"
                "import depotdelivery\\n"
                "while not os.path.exists(sys.argv[1]): time.sleep(0.001)\\n"
                "p = depotdelivery.prepare()\\n"
                "print(json.dumps(p.to_dict()))\\n")
        procs = [subprocess.Popen([sys.executable, "-c", code, go], stdout=subprocess.PIPE, text=True) for _ in range(32)]
        time.sleep(0.5)
        open(go, "w").close()
        outs = [p.communicate()[0] for p in procs]
        print(json.dumps({"codes": [p.returncode for p in procs], "outs": outs}))
    """, str(tmp_path / "go"), env=env, timeout=300))
    res = json.loads(out)
    assert res["codes"] == [0] * 32
    docs = [json.loads(o) for o in res["outs"]]
    assert sum(d["hydrated"] for d in docs) == 1
    same = {json.dumps({k: v for k, v in d.items() if k not in ("timings", "lease", "hydrated")}, sort_keys=True)
            for d in docs}
    assert len(same) == 1
    log = (tmp_path / "cache/hydrations.log").read_text().splitlines()
    assert len(log) == 1 and json.loads(log[0])["key"] == docs[0]["key"]
    assert len({d["lease"] for d in docs}) == 32  # one lease per job


KILL_TRIALS = 50


def test_kill_9_at_random_points_never_leaves_a_complete_looking_partial_depot(node_repo, tmp_path):
    env = node_env(node_repo, tmp_path / "cache", DEPOTDELIVERY_CPUINFO=str(captured_cpu("linux-rhel7-haswell")),
                   DEPOTDELIVERY_HYDRATE_DELAY="0.0003")
    out = _ok(run_ro(node_repo, """
        import json, os, random, signal, sys, time
        from pathlib import Path
        import depotdelivery
        from depotdelivery.node.cache import NodeCache, COMPLETE

        cache = NodeCache(os.environ["DEPOTDELIVERY_CACHE"])
        rng = random.Random(int(sys.argv[1]))
        trials = int(sys.argv[2])

        def snapshot(depot):
            out = {}
            for dirpath, dirnames, filenames in os.walk(depot):
                for name in dirnames + filenames:
                    p = os.path.join(dirpath, name)
                    rel = os.path.relpath(p, depot)
                    if os.path.islink(p):
                        out[rel] = "->" + os.readlink(p)
                    elif os.path.isfile(p):
                        out[rel] = Path(p).read_bytes().hex()
                    else:
                        out[rel] = "dir"
            return out

        def run(mode, delay):
            pid = os.fork()
            if pid == 0:
                try:
                    depotdelivery.prepare(mode=mode)
                finally:
                    os._exit(0)
            t = time.monotonic()
            if delay is not None:
                time.sleep(delay)
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return time.monotonic() - t

        reference, duration = {}, {}
        for mode in ("symlink", "copy"):
            duration[mode] = run(mode, None)
            p = depotdelivery.prepare(mode=mode)
            reference[mode] = snapshot(p.depot)
            p.lease.release()
            assert cache.remove_depot(p.key) == "removed"
        stats = {"complete_after_kill": 0, "absent_after_kill": 0, "leftover_tmp": 0}
        for trial in range(trials):
            mode = ("symlink", "copy")[trial % 2]
            run(mode, rng.uniform(0, duration[mode] * 1.2))
            keys = cache.keys()
            for key in keys:
                record = cache.read_complete(key)
                # never a depot without its record: it would be "complete-looking" to nobody, but
                # the protocol promises it cannot exist at all
                assert record is not None, f"trial {trial}: {key} without a completion record"
                assert snapshot(os.path.join(cache.depot_dir(key), "depot")) == reference[mode], f"trial {trial}: partial depot"
                stats["complete_after_kill"] += 1
            if not keys:
                stats["absent_after_kill"] += 1
            stats["leftover_tmp"] += len(os.listdir(cache.tmp)) if os.path.isdir(cache.tmp) else 0
            p = depotdelivery.prepare(mode=mode)  # recovers
            assert snapshot(p.depot) == reference[mode], f"trial {trial}: recovery differs"
            assert not [n for n in os.listdir(cache.tmp) if n.startswith(p.key)], "build leftovers kept"
            p.lease.release()
            assert cache.remove_depot(p.key) == "removed"
        print(json.dumps(stats))
    """, "20261124", str(KILL_TRIALS), env=env, timeout=600))
    stats = json.loads(out)
    # the seeded kill points land both before and after the commit
    assert stats["complete_after_kill"] > 0 and stats["absent_after_kill"] > 0, stats
    assert stats["leftover_tmp"] > 0, stats  # some kills really interrupted a build


def test_prepared_command_inserts_sysimage_after_julia():
    p = Prepared(depot_path=("/d",), env={}, julia_args=("--sysimage", "/s/sys.so"), release="r/1",
                 release_id="0" * 64, variant="haswell", mode="stack", key="k", depot="/d", why="", hydrated=False)
    assert p.command(["julia", "x.jl"]) == ["julia", "--sysimage", "/s/sys.so", "x.jl"]
    assert p.command(["srun", "-n4", "/opt/julia-1.11.1/bin/julia", "-t4", "x.jl"]) == \
        ["srun", "-n4", "/opt/julia-1.11.1/bin/julia", "--sysimage", "/s/sys.so", "-t4", "x.jl"]
    assert p.command(["julia-1.11", "x.jl"])[1] == "--sysimage"
    assert p.command(["julia", "-J", "mine.so"]) == ["julia", "-J", "mine.so"]
    assert p.command(["julia", "--sysimage=mine.so"]) == ["julia", "--sysimage=mine.so"]
    assert p.command(["python3", "juliaish.py"]) == ["python3", "juliaish.py"]


SYS = ["--sysimage", "/s/sys.so"]


@pytest.mark.parametrize(("args", "inserted"), [
    # the program's own arguments are not Julia's options
    (["script.jl", "--sysimage", "foo"], True),
    (["script.jl", "-Jfoo"], True),
    (["-t", "4", "script.jl", "-J", "x"], True),
    (["--", "-J", "x"], True),
    (["-e", "-J", "x.jl"], True),  # -e's value is code, not an option
    (["--eval", "--sysimage=x", "y.jl"], True),
    (["-m", "Pkg", "-J", "x"], True),  # everything after -m MODULE belongs to the module
    (["--project", "-J", "x"], False),  # --project takes no separate value: -J is Julia's
    (["-qJ", "mine.so", "x.jl"], False),
    (["-qJmine.so"], False),
    (["-t4", "--sysimage", "mine.so"], False),
    (["--threads", "4", "-J", "mine.so", "x.jl"], False),
    (["--project=@.", "--sysimage=mine.so"], False),
    (["-O", "3", "-J", "mine.so"], False),
])
def test_command_only_reads_julias_own_options(args, inserted):
    p = Prepared(depot_path=("/d",), env={}, julia_args=tuple(SYS), release="r/1", release_id="0" * 64,
                 variant="haswell", mode="stack", key="k", depot="/d", why="", hydrated=False)
    assert p.command(["srun", "julia", *args]) == ["srun", "julia", *(SYS if inserted else []), *args]


@given(st.lists(st.text(min_size=0, max_size=12), max_size=6))
def test_any_program_arguments_leave_the_sysimage_inserted(program_args):
    p = Prepared(depot_path=("/d",), env={}, julia_args=tuple(SYS), release="r/1", release_id="0" * 64,
                 variant="haswell", mode="stack", key="k", depot="/d", why="", hydrated=False)
    argv = ["julia", "--threads", "4", "analysis.jl", *program_args]
    assert p.command(argv) == ["julia", *SYS, *argv[1:]]
    before = dict(os.environ)
    try:
        Prepared(**{**{f: getattr(p, f) for f in ("depot_path", "julia_args", "release", "release_id", "variant",
                                                   "mode", "key", "depot", "why", "hydrated")},
                    "env": {"JULIA_PKG_OFFLINE": "true"}}).apply()
        assert os.environ["JULIA_PKG_OFFLINE"] == "true"
    finally:
        os.environ.clear()
        os.environ.update(before)
