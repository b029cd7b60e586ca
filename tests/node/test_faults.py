"""Faults under real conditions: a full cache (tmpfs) during copy hydration, a full repository
(tmpfs) during publish, repository files vanishing or turning unreadable while a copy runs,
an unwritable cache (read-only bind mount; a non-root user), locks and leases of processes
killed with SIGKILL, clock jumps, and a cache on which flock fails.

Each failure must be one line with its documented exit code, leave no partial depot, leave
depots hydrated before intact, and the next run must recover."""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from node_fixtures import (
    NodeRepo,
    build_repo,
    captured_cpu,
    in_job_shell,
    node_env,
    ro_command,
)

HASWELL = str(captured_cpu("linux-rhel7-haswell"))
NOBODY = 65534


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "depotdelivery", *args]


def _run(argv: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env}, timeout=timeout)


def _one_line(err: str, *fragments: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("depotdelivery: "), err
    assert "internal error" not in lines[0]
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def _depots(cache: Path) -> dict[str, str]:
    """Each depot's completion record (or None) and its file list."""
    d = cache / "depots"
    out = {}
    for key in sorted(os.listdir(d)) if d.is_dir() else []:
        rec = d / key / "complete.json"
        out[key] = json.dumps([rec.read_text() if rec.exists() else None,
                               sorted(str(p.relative_to(d / key)) for p in (d / key).rglob("*"))])
    return out


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> NodeRepo:
    return build_repo(tmp_path_factory.mktemp("faults"), targets=("generic", "haswell"), packages=3)


@pytest.fixture
def world_readable() -> Path:
    """A scratch directory other users can traverse (pytest's tmp dirs are 0700 root)."""
    d = Path(tempfile.mkdtemp(prefix="depotdelivery-faults-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


# ---- ENOSPC -------------------------------------------------------------------------------------

def test_enospc_during_copy_hydration_at_several_fill_levels(repo, tmp_path):
    """A real tmpfs cache, filled with ballast so that the copy runs out of space at different
    points; each attempt exits 8, leaves no depot and no build directory, the stack depot
    hydrated first stays intact, and once space is freed the copy succeeds."""
    cache = tmp_path / "tiny"
    env = node_env(repo, cache, DEPOTDELIVERY_CPUINFO=HASWELL)
    need = sum(p.stat().st_size for p in (repo.root / "releases").rglob("*") if p.is_file())
    script = textwrap.dedent(f"""
        import json, os, subprocess, sys
        cache = {str(cache)!r}
        def run(*a):
            p = subprocess.run([sys.executable, "-m", "depotdelivery", *a], capture_output=True, text=True)
            return p.returncode, p.stderr
        def depots():
            d = os.path.join(cache, "depots")
            return sorted(os.listdir(d)) if os.path.isdir(d) else []
        out = {{"stack": run("prepare", "--json")}}
        before = depots()
        st = os.statvfs(cache)
        free = st.f_bavail * st.f_frsize
        out["attempts"] = []
        for left in (4096, 16384, {need // 3}, {need // 2}):
            with open(os.path.join(cache, "ballast"), "wb") as f:
                f.truncate(0)
                try:
                    f.write(b"\\0" * max(free - left - 8192, 0))
                except OSError:
                    pass
            code, err = run("prepare", "--mode", "copy")
            out["attempts"].append({{"left": left, "code": code, "err": err, "depots": depots(),
                                    "tmp": sorted(os.listdir(os.path.join(cache, "tmp")))}})
        os.unlink(os.path.join(cache, "ballast"))
        out["after"] = run("prepare", "--mode", "copy")
        out["before"] = before
        out["final"] = depots()
        print(json.dumps(out))
    """)
    size = max(need * 3, 1 << 20)
    done = _run(ro_command([repo.root], [sys.executable, "-c", script], tmpfs=[(cache, f"size={size},mode=0700")]), env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["stack"][0] == 0
    for a in out["attempts"]:
        assert a["code"] == 8, a
        _one_line(a["err"], "No space left", "depotdelivery gc")
        assert a["depots"] == out["before"] and a["tmp"] == [], a  # no partial depot, no leftovers
    assert out["after"][0] == 0, out["after"]
    assert len(out["final"]) == 2 and set(out["before"]) < set(out["final"])


def test_enospc_during_publish_keeps_the_repository_and_its_nodes_working(tmp_path):
    """A repository on a real tmpfs that holds release 1 (channel stable) but not release 2:
    publishing 2 exits 9, the repository is byte-for-byte as before, and a node still prepares 1."""
    base = tmp_path / "pub"
    first = build_repo(base, targets=("haswell",), packages=2, version="1")
    staging = tmp_path / "staging"
    shutil.copytree(first.root, staging, symlinks=True)
    used = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
    script = textwrap.dedent(f"""
        import json, shutil, subprocess, sys
        sys.path.insert(0, {str(Path(__file__).parents[1])!r})
        from pathlib import Path
        from node_fixtures import build_repo
        from repo_fixtures import tree_digest
        root = Path({str(first.root)!r})
        shutil.copytree({str(staging)!r}, root, symlinks=True, dirs_exist_ok=True)
        before = tree_digest(root)
        err = ""
        try:
            build_repo(Path({str(base)!r}), targets=("haswell",), packages=12, files=400, version="2")
            code = 0
        except Exception as exc:
            code = getattr(exc, "exit_code", 1)
            err = str(exc)
        after = tree_digest(root)
        p = subprocess.run([sys.executable, "-m", "depotdelivery", "prepare", "--json", "--cache",
                            {str(tmp_path / "cache")!r}], capture_output=True, text=True)
        print(json.dumps({{"code": code, "err": err, "same": before == after, "prepare": p.returncode,
                          "release": json.loads(p.stdout)["release"] if p.returncode == 0 else p.stderr}}))
    """)
    shutil.rmtree(first.root)
    env = node_env(first, tmp_path / "cache", DEPOTDELIVERY_CPUINFO=HASWELL)
    size = used + 256 * 1024
    done = _run(ro_command([], [sys.executable, "-c", script], tmpfs=[(first.root, f"size={size}")]), env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["code"] == 9 and "no space left" in out["err"].lower() and "left as it was" in out["err"], out
    assert out["same"], "a failed publish changed the repository"
    assert out["prepare"] == 0 and out["release"] == "hep/1", out


# ---- the repository changing under a copy hydration ------------------------------------------------

def _last_shared_file(repo: NodeRepo) -> Path:
    """The shared depot file copy mode reaches last (the shared layer comes after the variant's,
    entries in listing order), so the change lands while the copy is running."""
    from depotdelivery.store.repo import Repository

    r = Repository.open(repo.root)
    rel = r.read_release(*repo.ref.split("/"))
    entries = [e for e in r.read_listing(rel, rel.shared.tree) if e.type == "file"]
    return repo.root / "releases" / repo.ref / "depot" / entries[-1].path


@pytest.mark.parametrize("change", ["unlink", "chmod-000", "rename-parent", "truncate"])
def test_repository_file_vanishes_or_turns_unreadable_mid_copy(tmp_path, world_readable, change):
    """A second process changes the repository tree while copy mode runs (as a CVMFS catalog
    update under a running job would): the job runs as an unprivileged user (root ignores mode
    bits), the change happens once the build directory holds files. Exit 4 naming the
    repository path, no partial depot, the next run (tree restored) succeeds."""
    repo = build_repo(world_readable / "r", targets=("haswell",), packages=3)
    for dirpath, dirnames, filenames in os.walk(world_readable):
        for n in dirnames:
            os.chmod(os.path.join(dirpath, n), os.stat(os.path.join(dirpath, n)).st_mode | 0o755)
    cache = world_readable / "cache"
    cache.mkdir()
    os.chown(cache, NOBODY, NOBODY)
    env = node_env(repo, cache, DEPOTDELIVERY_CPUINFO=HASWELL, DEPOTDELIVERY_HYDRATE_DELAY="0.03",
                   HOME=str(cache))
    victim = _last_shared_file(repo)
    saved = victim.read_bytes(), victim.stat()
    job = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                            *_cli("prepare", "--mode", "copy")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        builds = list((cache / "tmp").glob("*/depot/*")) if (cache / "tmp").is_dir() else []
        if builds:
            break
        time.sleep(0.005)
    assert builds, "the copy never started"
    moved = victim.parent.with_name(victim.parent.name + ".moved")
    if change == "unlink":
        victim.unlink()
    elif change == "chmod-000":
        os.chmod(victim, 0)
    elif change == "rename-parent":
        victim.parent.rename(moved)
    else:
        with open(victim, "r+b") as f:
            f.truncate(max(saved[1].st_size // 2, 0))
    _, err = job.communicate(timeout=120)
    assert job.returncode == 4, err
    line = _one_line(err, str(repo.root))
    assert "node cache" not in line
    assert _depots(cache) == {} and os.listdir(cache / "tmp") == []
    # restore: the catalog settles, the next job succeeds
    if change == "rename-parent":
        moved.rename(victim.parent)
    if change != "chmod-000":
        victim.write_bytes(saved[0])
    os.chmod(victim, stat.S_IMODE(saved[1].st_mode))
    os.utime(victim, ns=(saved[1].st_atime_ns, saved[1].st_mtime_ns))
    env.pop("DEPOTDELIVERY_HYDRATE_DELAY")
    again = _run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                  *_cli("prepare", "--mode", "copy", "--json")], env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["hydrated"] is True


# ---- an unwritable cache ----------------------------------------------------------------------------

def test_unwritable_cache_for_a_non_root_user(world_readable):
    repo = build_repo(world_readable / "r", targets=("haswell",), packages=2)
    for dirpath, dirnames, _ in os.walk(world_readable):
        for n in dirnames:
            os.chmod(os.path.join(dirpath, n), 0o755)
    cache = world_readable / "root-owned-cache"
    cache.mkdir(mode=0o755)
    env = node_env(repo, cache, DEPOTDELIVERY_CPUINFO=HASWELL, HOME=str(world_readable))
    done = _run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *_cli("prepare")], env)
    assert done.returncode == 8, done.stderr
    _one_line(done.stderr, str(cache), "DEPOTDELIVERY_CACHE")
    assert os.listdir(cache) == []


def test_warm_cache_turned_read_only(repo, tmp_path):
    """A cache that holds a complete depot, then is bind-mounted read-only (an admin mistake, a
    full-disk remount): the job cannot take its lease, so it refuses (exit 8) rather than run
    a depot gc could remove under it; the depot itself is untouched."""
    cache = tmp_path / "cache"
    env = node_env(repo, cache, DEPOTDELIVERY_CPUINFO=HASWELL)
    assert _run(_cli("prepare"), env).returncode == 0
    before = _depots(cache)
    done = _run(ro_command([repo.root, cache], _cli("prepare")), env)
    assert done.returncode == 8, done.stderr
    _one_line(done.stderr, str(cache))
    assert _depots(cache) == before


# ---- locks and leases of killed processes ------------------------------------------------------------

def _holder(code: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """A Python process that runs ``code`` then prints "ready" and sleeps (to be SIGKILLed)."""
    p = subprocess.Popen([sys.executable, "-c", code + "\nprint('ready', flush=True)\nimport time; time.sleep(600)"],
                         stdout=subprocess.PIPE, text=True, env={**os.environ, **env})
    assert p.stdout.readline().strip() == "ready"
    return p


def test_locks_and_leases_of_killed_processes_do_not_block(repo, tmp_path):
    """SIGKILL a job holding its lease, a process holding the hydration lock, the cold-path gate
    and the trust-state lock, and a hydration in the middle of its copy: the next prepare
    proceeds (flock dies with its holder; the lock files stay, as they must), gc reaps the dead
    lease and the build leftovers, and removes the no-longer-leased depot."""
    cache = tmp_path / "cache"
    env = node_env(repo, cache, DEPOTDELIVERY_CPUINFO=HASWELL)
    key = f"{repo.release_id[:16]}-haswell-symlink"
    job = _holder("import depotdelivery; p = depotdelivery.prepare(mode='symlink')", env)
    copier = subprocess.Popen(_cli("prepare", "--mode", "copy"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, **env, "DEPOTDELIVERY_HYDRATE_DELAY": "0.05"})
    deadline = time.monotonic() + 30
    while not list((cache / "tmp").glob("*-copy@*/depot/*")) and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(copier.pid, signal.SIGKILL)
    copier.wait()
    # then every lock file there is (hydration locks, the cold-path gate, the trust lock) held
    # by one process that dies without releasing anything
    locker = _holder(textwrap.dedent(f"""
        import os, filelock
        held = []
        for name in sorted(set(os.listdir({str(cache / 'locks')!r})) | {{{key + '.lock'!r}}}):
            l = filelock.FileLock(os.path.join({str(cache / 'locks')!r}, name), is_singleton=False)
            l.acquire(timeout=5)
            held.append(l)
    """), env)
    for p in (job, locker):
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    assert list((cache / "tmp").iterdir()), "the killed copy left no build directory to clean"
    assert list((cache / "leases" / key).glob("*.lease")), "the killed job's lease file is gone already"
    # the next job: lock files of dead holders are free, the stale lease is ignored
    done = _run(in_job_shell(_cli("prepare", "--mode", "symlink", "--json", "--lock-timeout", "5")), env)
    assert done.returncode == 0, done.stderr
    status = json.loads(_run(_cli("status", "--json", "--cache", str(cache)), env).stdout)
    held = {d["key"]: d["leases"] for d in status["depots"]}
    assert held[key] == []  # the dead job's lease is not counted as held
    gc = _run(_cli("gc", "--keep", "0", "--json", "--cache", str(cache)), env)
    assert gc.returncode == 0, gc.stderr
    report = json.loads(gc.stdout)
    assert key in report["removed"] and report["leases_reaped"] >= 1 and report["tmp_removed"] >= 1, report
    assert os.listdir(cache / "tmp") == []
    again = _run(_cli("prepare", "--mode", "copy", "--json", "--lock-timeout", "5"), env)
    assert again.returncode == 0 and json.loads(again.stdout)["hydrated"], again.stderr


# ---- clock jumps ------------------------------------------------------------------------------------

YEAR = 365 * 86400.0


def test_clock_jumps_never_remove_a_leased_depot(repo, tmp_path):
    """mtimes far in the future (the clock jumped back) and far in the past (it jumped forward):
    gc by age only removes unleased depots whose last use is really old, never a leased one,
    whatever the clock says; a live lease whose file looks ancient is not reaped."""
    from depotdelivery.node.cache import NodeCache

    cache = tmp_path / "cache"
    env = node_env(repo, cache, DEPOTDELIVERY_CPUINFO=HASWELL)
    live = _holder("import depotdelivery; p = depotdelivery.prepare(mode='symlink')", env)
    try:
        assert _run(in_job_shell(_cli("prepare")), env).returncode == 0  # stack: unleased after exit
        assert _run(in_job_shell(_cli("prepare", "--mode", "copy")), env).returncode == 0
        nc = NodeCache(str(cache))
        keys = {k.rsplit("-", 1)[1]: k for k in nc.keys()}  # noqa: SIM118 - NodeCache.keys() is a method, not a mapping
        now = time.time()
        for mode, when in (("symlink", now - 10 * YEAR), ("stack", now - 10 * YEAR), ("copy", now + 10 * YEAR)):
            for p in (cache / "depots" / keys[mode], cache / "depots" / keys[mode] / "complete.json",
                      cache / "leases" / keys[mode]):
                if p.exists():
                    os.utime(p, (when, when))
            for lease in (cache / "leases" / keys[mode]).glob("*"):
                os.utime(lease, (when, when))
        report = nc.gc(older_than=86400.0)
        assert keys["symlink"] in report.kept_leased  # ancient mtimes, but a live job holds it
        assert keys["stack"] in report.removed
        assert keys["copy"] not in report.removed  # last use "in the future": not old
        assert (cache / "leases" / keys["symlink"]).is_dir() and list((cache / "leases" / keys["symlink"]).glob("*.lease"))
        # the clock jumps forward by a decade: still never the leased depot
        later = nc.gc(older_than=86400.0, now=now + 20 * YEAR)
        assert keys["copy"] in later.removed and keys["symlink"] in later.kept_leased
    finally:
        os.kill(live.pid, signal.SIGKILL)
        live.wait()


def test_channel_expiry_follows_the_clock_even_when_remembered(repo, tmp_path):
    """The node's trust record remembers a verified channel, but expiry is judged on every call
    with the current clock (injectable: ``now``); a publisher whose clock ran ahead issues a
    document "from the future", which is accepted (only expiry and seq matter), and one whose
    clock ran behind issues an already expired document, which is refused."""
    from depotdelivery.errors import TrustError
    from depotdelivery.node import trust
    from depotdelivery.node.cache import NodeCache
    from depotdelivery.node.session import repo_id_of
    from depotdelivery.publisher.channels import set_channel
    from depotdelivery.store.channel import parse_time
    from depotdelivery.store.keys import load_private_key

    own = build_repo(tmp_path / "own", targets=("haswell",), packages=2)
    cache = NodeCache(str(tmp_path / "cache"))
    root, rid = str(own.root), repo_id_of(str(own.root))
    facts = trust.verified_channel(cache, root, rid, "stable", str(own.trusted))
    expires = parse_time(facts.expires_text)
    assert trust.verified_channel(cache, root, rid, "stable", str(own.trusted), now=expires - 1).seq == facts.seq
    with pytest.raises(TrustError, match="expired"):
        trust.verified_channel(cache, root, rid, "stable", str(own.trusted), now=expires + 1)
    key = load_private_key(own.key)
    set_channel(own.root, "stable", own.ref, key, now=time.time() + 5 * YEAR, expires=30 * 86400.0)
    assert trust.verified_channel(cache, root, rid, "stable", str(own.trusted)).seq == facts.seq + 1
    set_channel(own.root, "stable", own.ref, key, now=time.time() - YEAR, expires=30 * 86400.0)
    env = node_env(own, tmp_path / "cache", DEPOTDELIVERY_CPUINFO=HASWELL)
    done = _run(_cli("prepare"), env)
    assert done.returncode == 5, done.stderr
    _one_line(done.stderr, "expired", "re-sign")
