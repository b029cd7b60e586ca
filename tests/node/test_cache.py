"""status and gc on a real node cache: keep / older-than, leases, build leftovers, overlay
unmount, and gc racing prepare() and running jobs."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from node_fixtures import captured_cpu, node_env, run_ro

HASWELL = str(captured_cpu("linux-rhel7-haswell"))


def _ok(done: subprocess.CompletedProcess[str]) -> dict:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_gc_keep_older_than_leases_and_leftovers(node_repo, tmp_path):
    res = _ok(run_ro(node_repo, """
        import json, os, subprocess, sys, time
        import depotdelivery
        from depotdelivery.errors import UnsupportedError
        from depotdelivery.node.cache import NodeCache
        cache = NodeCache(os.environ["DEPOTDELIVERY_CACHE"])

        def lease_holder():  # a job holding a lease on the copy-mode depot until it is killed
            child = subprocess.Popen([sys.executable, "-c",
                "import depotdelivery, time; depotdelivery.prepare(mode='copy'); print('ok', flush=True); time.sleep(60)"],
                stdout=subprocess.PIPE, text=True)
            assert child.stdout.readline().strip() == "ok"
            return child

        keys = {}
        for mode, age in (("stack", 10 * 86400), ("symlink", 3600), ("copy", 0)):
            p = depotdelivery.prepare(mode=mode)
            keys[mode] = p.key
            p.lease.release()
            t = time.time() - age
            os.utime(os.path.join(cache.leases, p.key), (t, t))
        out = {"keys": keys}
        # a job killed while holding a lease, and one killed while building
        child = lease_holder()
        out["status_leased"] = [d.to_dict() for d in cache.status()]
        child.kill(); child.wait()
        os.utime(os.path.join(cache.leases, keys["copy"]), None)
        leftover = os.path.join(cache.tmp, f"{keys['symlink']}@99999.deadbeef")
        os.makedirs(os.path.join(leftover, "depot"))
        out["gc_plain"] = cache.gc().to_dict()
        out["leftover_exists"] = os.path.exists(leftover)
        out["gc_older"] = cache.gc(older_than=2 * 86400).to_dict()
        out["gc_keep"] = cache.gc(keep=1).to_dict()
        # a held lease protects a depot from everything
        child = lease_holder()
        out["gc_leased"] = cache.gc(keep=0, older_than=0).to_dict()
        child.kill(); child.wait()
        try:
            p = depotdelivery.prepare(mode="overlay")
            mount = p.depot
            p.lease.release()
            out["overlay_mounted"] = os.path.ismount(mount)
        except UnsupportedError as exc:
            mount = None
            out["overlay_mounted"] = str(exc)
        out["gc_all"] = cache.gc(keep=0).to_dict()
        out["overlay_after"] = None if mount is None else os.path.ismount(mount)
        out["left"] = cache.keys()
        print(json.dumps(out))
    """, env=node_env(node_repo, tmp_path / "cache", DEPOTDELIVERY_CPUINFO=HASWELL)))
    keys = res["keys"]
    [copy_status] = [d for d in res["status_leased"] if d["key"] == keys["copy"]]
    assert copy_status["complete"] and len(copy_status["leases"]) == 1 and copy_status["files"] > 0
    assert res["gc_plain"]["removed"] == [] and res["gc_plain"]["tmp_removed"] == 1
    assert res["gc_plain"]["leases_reaped"] == 1 and not res["leftover_exists"]
    assert res["gc_older"]["removed"] == [keys["stack"]]
    assert res["gc_keep"]["removed"] == [keys["symlink"]]
    assert res["gc_leased"]["removed"] == [] and res["gc_leased"]["kept_leased"] == [keys["copy"]]
    if res["overlay_mounted"] is True:
        assert res["overlay_after"] is False  # gc unmounted it before removing
    assert res["left"] == []


def test_gc_racing_prepare_and_running_jobs(node_repo, tmp_path):
    res = _ok(run_ro(node_repo, """
        import json, os, subprocess, sys, time
        dd = [sys.executable, "-m", "depotdelivery"]
        # jobs: each checks, for its whole life, that its depot is still there and usable
        job = ('for i in $(seq 150); do test -f "$JULIA_PROJECT/Project.toml" && test -d "${JULIA_DEPOT_PATH%%:*}/compiled" '
               '|| { echo "depot vanished" >&2; exit 1; }; sleep 0.02; done')
        jobs = [subprocess.Popen(dd + ["exec", "--mode", "symlink", "--", "sh", "-c", job]) for _ in range(6)]
        time.sleep(0.8)  # all jobs hold their lease
        deadline = time.time() + 1.5
        gcs, prepares, removed = [], [], []
        while time.time() < deadline:
            prepares.append(subprocess.Popen(["sh", "-c", '"$@"; exit $?', "sh", *dd, "prepare", "--mode", "stack"],
                                             stdout=subprocess.DEVNULL))  # a job shell: its lease ends with it
            g = subprocess.run(dd + ["gc", "--keep", "0", "--json"], capture_output=True, text=True)
            gcs.append(g.returncode)
            if g.returncode == 0:
                removed += json.loads(g.stdout)["removed"]
        codes = [j.wait() for j in jobs]
        prepare_codes = [p.wait() for p in prepares]
        log = [json.loads(l) for l in open(os.path.join(os.environ["DEPOTDELIVERY_CACHE"], "hydrations.log"))]
        assert gcs, "gc never ran while the jobs were alive"
        print(json.dumps({"jobs": codes, "gc": gcs, "prepares": prepare_codes, "removed": removed, "log": log}))
    """, env=node_env(node_repo, tmp_path / "cache", DEPOTDELIVERY_CPUINFO=HASWELL), timeout=300))
    assert res["jobs"] == [0] * 6  # no job lost its depot
    assert res["prepares"] and set(res["prepares"]) == {0}  # no prepare failed
    assert set(res["gc"]) == {0}
    symlink = [e for e in res["log"] if e["mode"] == "symlink"]
    assert len(symlink) == 1  # the leased depot was never removed (and so never re-hydrated)
    assert not any(k.endswith("-symlink") for k in res["removed"])
    assert any(k.endswith("-stack") for k in res["removed"])  # gc did remove the unleased ones


def test_gc_with_dotted_variant_names_spares_live_builds_and_removes_leftovers(tmp_path):
    """Variant names contain dots (archspec's armv8.2a): gc must take the hydration lock of the
    real key, keep a build another process is making, and remove a killed build's leftovers."""
    import os
    import sys

    from depotdelivery.node.cache import NodeCache

    cache = NodeCache(tmp_path / "cache")
    cache.ensure()
    live, dead = "0123456789abcdef-armv8.2a-stack", "0123456789abcdef-armv8.1a+sve-copy"
    builder = """
import os, sys, time
from depotdelivery.node.cache import NodeCache
from depotdelivery.node.locks import hydration_lock
cache = NodeCache(sys.argv[1])
with hydration_lock(cache.lock_file(sys.argv[2]), 10):
    build = cache.build_dir(sys.argv[2])
    os.makedirs(os.path.join(build, "depot", "compiled"))
    print(build, flush=True)
    sys.stdin.read()  # hydrating until the test closes stdin (or kills it)
"""
    procs = {key: subprocess.Popen([sys.executable, "-c", builder, cache.root, key], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True) for key in (live, dead)}
    builds = {key: p.stdout.readline().strip() for key, p in procs.items()}
    procs[dead].kill()
    procs[dead].wait()

    def gc() -> dict:
        done = subprocess.run([sys.executable, "-m", "depotdelivery", "gc", "--cache", cache.root, "--json"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    try:
        assert gc()["tmp_removed"] == 1
        assert os.path.isdir(builds[live]) and not os.path.exists(builds[dead])
    finally:
        procs[live].stdin.close()
        procs[live].wait()
    assert gc()["tmp_removed"] == 1 and os.listdir(cache.tmp) == []


def test_gc_unmounts_an_overlay_only_after_its_last_lease_check(node_repo, tmp_path):
    """A lease taken while gc removes an overlay depot must find it mounted. The fusermount3
    that gc runs is a wrapper (records its call) in which a job takes a lease on the depot just
    before the real fusermount3 unmounts: when gc unmounted before its last lease check, it
    then saw that lease, renamed the depot back and left the job an empty mount point."""
    import shutil

    if shutil.which("fusermount3") is None and shutil.which("fusermount") is None:
        import pytest

        pytest.skip("fusermount3/fusermount is not installed: cannot unmount a FUSE overlay")
    res = _ok(run_ro(node_repo, """
        import json, os, shutil, subprocess, sys, time
        import depotdelivery
        from depotdelivery.errors import UnsupportedError
        from depotdelivery.node.cache import NodeCache
        from depotdelivery.node.locks import leases
        cache = NodeCache(os.environ["DEPOTDELIVERY_CACHE"])
        try:
            p = depotdelivery.prepare(mode="overlay")
        except UnsupportedError as exc:
            print(json.dumps({"skip": str(exc)}))
            raise SystemExit
        p.lease.release()
        real = shutil.which("fusermount3") or shutil.which("fusermount")
        bindir, calls, marker = sys.argv[1], sys.argv[1] + "/calls", sys.argv[1] + "/holder.pid"
        holder = ("import os, sys, time; from depotdelivery.node.locks import acquire_lease; "
                  "acquire_lease(sys.argv[1], sys.argv[2]); open(sys.argv[3], 'w').write(str(os.getpid())); time.sleep(120)")
        with open(os.path.join(bindir, os.path.basename(real)), "w") as f:
            f.write(f'''#!/bin/sh
        echo "$@" >> {calls}
        {sys.executable} -c "{holder}" {cache.leases} {p.key} {marker} >/dev/null 2>&1 &
        while [ ! -s {marker} ]; do sleep 0.05; done
        exec {real} "$@"
        ''')
        os.chmod(os.path.join(bindir, os.path.basename(real)), 0o755)
        os.environ["PATH"] = bindir + ":" + os.environ["PATH"]
        assert os.path.ismount(p.depot)
        outcome = cache.remove_depot(p.key)
        out = {"outcome": outcome, "calls": open(calls).read().splitlines(),
               "held": sum(l.held for l in leases(cache.leases, p.key)),
               "complete": cache.read_complete(p.key) is not None, "mounted": os.path.ismount(p.depot)}
        os.kill(int(open(marker).read()), 9)
        print(json.dumps(out))
    """, str(tmp_path), env=node_env(node_repo, tmp_path / "cache", DEPOTDELIVERY_CPUINFO=HASWELL)))
    if "skip" in res:
        import pytest

        pytest.skip(res["skip"])
    assert len(res["calls"]) == 1 and res["held"] == 1  # gc unmounted once; the job's lease is held
    assert res["mounted"] or not res["complete"], "a leased, complete overlay depot left unmounted"
    # the lease came after gc's last check: the depot was already renamed away, so the job's
    # prepare() finds no complete.json and hydrates anew; it never sees a depot without its mount
    assert res["outcome"] == "removed" and not res["complete"] and not res["mounted"]


def test_env_leases_the_depot_for_the_shell_that_evals_it(node_repo, tmp_path):
    """`eval "$(depotdelivery env)"`: the env process exits at once, the shell runs Julia later.
    The depot stays leased while that shell lives (pid + start time, so a reused pid does not
    count) and gc may remove it once the shell has exited."""
    import os
    import sys
    import time

    from node_fixtures import ro_command

    from depotdelivery.node.cache import NodeCache
    from depotdelivery.node.locks import leases

    env = {**os.environ, **node_env(node_repo, tmp_path / "cache", DEPOTDELIVERY_CPUINFO=HASWELL)}
    cache = NodeCache(tmp_path / "cache")
    shell = subprocess.Popen(ro_command([node_repo.root], [
        "bash", "-c", (f'eval "$({sys.executable} -m depotdelivery env --mode symlink)" && echo "$$" && read _ && '
                      'test -f "$JULIA_PROJECT/Project.toml"')]),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def gc() -> dict:
        done = subprocess.run([sys.executable, "-m", "depotdelivery", "gc", "--keep", "0", "--json"],
                              capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    try:
        pid = int(shell.stdout.readline())
        [key] = cache.keys()
        assert [lease.pid for lease in leases(cache.leases, key) if lease.held] == [pid]
        # the env process's own flock lease went with it: no orphan lease file per call
        assert [os.path.basename(lease.path).endswith(".pidlease") for lease in leases(cache.leases, key)] == [True]
        assert gc()["kept_leased"] == [key]
        # a lease file of a reused pid: this process's pid with another start time
        fake = os.path.join(cache.leases, key, f"{os.getpid()}-1.pidlease")
        open(fake, "w").close()
        assert gc()["leases_reaped"] == 1 and not os.path.exists(fake)
        # a process that has exited but is not reaped yet (a zombie) holds nothing either
        from depotdelivery.node.locks import acquire_pid_lease

        child = subprocess.Popen(["sleep", "0.2"])
        zombie = acquire_pid_lease(cache.leases, key, child.pid)
        while Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            time.sleep(0.01)
        assert [lease.held for lease in leases(cache.leases, key) if lease.path == zombie] == [False]
        child.wait()
    finally:
        shell.stdin.write("go\n")
        shell.stdin.close()
    assert shell.wait() == 0  # the shell ran with its depot intact
    report = gc()
    assert report["removed"] == [key] and report["leases_reaped"] == 2  # the shell's and the zombie's
