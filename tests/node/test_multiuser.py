"""Shared nodes, tried with two real unprivileged users (issue 12): an attacker (uid 64101) and
a victim (uid 64102), switched to with ``setpriv`` (root is needed for that; CI runs as root,
so there a missing capability fails instead of skipping). Every attack ends with the victim's
job either getting exactly the verified release's environment or failing closed with exit 8
naming the path; never with the attacker's bytes.

The repository is a real published one in a world-readable directory; the victim's cache is
the real default, ``/var/tmp/depotdelivery-<uid>``, removed before and after each test."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from node_fixtures import NodeRepo, build_repo, captured_cpu, second_user_problem

ATTACKER, VICTIM, SHARED_GROUP = 64101, 64102, 64200
VICTIM_CACHE = Path(f"/var/tmp/depotdelivery-{VICTIM}")


@pytest.fixture(scope="module")
def world() -> NodeRepo:
    why = second_user_problem()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the two-user tests: {why}")
        pytest.skip(why)
    base = Path(tempfile.mkdtemp(prefix="dd-multiuser-"))
    os.chmod(base, 0o755)
    repo = build_repo(base)
    for d, dirs, files in os.walk(base):  # readable by both users, writable by neither
        for name in dirs + files:
            p = os.path.join(d, name)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode | 0o444 | (0o111 if os.path.isdir(p) else 0))
    for uid in (ATTACKER, VICTIM):
        home = base / f"home-{uid}"
        home.mkdir()
        os.chown(home, uid, uid)
    yield repo
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(autouse=True)
def clean_caches(world):
    def clean() -> None:
        for path in (VICTIM_CACHE, Path(f"/var/tmp/depotdelivery-{ATTACKER}"), Path("/var/tmp/dd-attacker")):
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.exists():
                shutil.rmtree(path)
    clean()
    yield
    clean()


def _as(uid: int, repo: NodeRepo, *argv: str, umask: str = "022", groups: str | None = None,
        extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    who = ["setpriv", f"--reuid={uid}", f"--regid={uid}"]
    who += [f"--groups={groups}"] if groups else ["--clear-groups"]
    env = {"PATH": os.environ["PATH"], "HOME": str(repo.base / f"home-{uid}"), "USER": f"user{uid}",
           "DEPOTDELIVERY_REPO": str(repo.root), "DEPOTDELIVERY_TRUSTED_KEYS": str(repo.trusted),
           "DEPOTDELIVERY_CPUINFO": str(captured_cpu("linux-rhel7-haswell")), **(extra or {})}
    # setpriv execs the command itself (no shell in between: a shell's own `exec` path check
    # refuses the venv's interpreter, a symlink into root's home); the umask is inherited
    return subprocess.run([*who, *argv], capture_output=True, text=True, env=env, timeout=120,
                          umask=int(umask, 8))


def _dd(uid: int, repo: NodeRepo, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return _as(uid, repo, sys.executable, "-m", "depotdelivery", *args, **kw)  # type: ignore[arg-type]


def _victim_env(repo: NodeRepo, **kw: object) -> dict[str, str]:
    done = _dd(VICTIM, repo, "env", "--shell", "json", **kw)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _fails_closed(done: subprocess.CompletedProcess[str], *expect: str) -> None:
    assert done.returncode == 8, (done.returncode, done.stdout, done.stderr)
    assert done.stdout == "", "nothing for the job to eval"
    line = done.stderr.strip()
    assert line.count("\n") == 0 and "Traceback" not in line, line
    for text in expect:
        assert text in line, line


def _honest(env: dict[str, str], repo: NodeRepo) -> None:
    """The victim's environment names only the verified release's files and its own cache."""
    depots = env["JULIA_DEPOT_PATH"].rstrip(":").split(":")
    assert depots[0].startswith(f"{VICTIM_CACHE}/depots/")
    assert all(d.startswith((f"{VICTIM_CACHE}/", f"{repo.root}/releases/")) for d in depots), depots
    assert env["JULIA_PROJECT"].startswith(f"{repo.root}/releases/")
    assert env["DEPOTDELIVERY_PREPARED_RELEASE"] == repo.ref
    assert not {k for k in env if k.startswith("LD_")}


def test_the_default_cache_is_created_private_whatever_the_umask(world):
    """Under ``umask 000`` (or a group-sharing 002) the cache and what is in it are the
    victim's alone: the attacker cannot even look into it, let alone open a lock to hold."""
    _honest(_victim_env(world, umask="000"), world)
    assert stat.S_IMODE(VICTIM_CACHE.stat().st_mode) == 0o700
    assert VICTIM_CACHE.stat().st_uid == VICTIM
    locks = list((VICTIM_CACHE / "locks").iterdir())
    assert locks and all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in locks)
    peek = _as(ATTACKER, world, sys.executable, "-c",
               "import os, sys; os.open(sys.argv[1], os.O_RDONLY)", str(locks[0]))
    assert peek.returncode != 0 and "PermissionError" in peek.stderr


def test_a_squatted_cache_directory_is_refused(world):
    """The attacker creates the victim's default cache first (world-readable, then even with
    a complete depot record of theirs inside): the victim's job fails closed, exit 8."""
    made = _as(ATTACKER, world, "sh", "-c", f"mkdir -m 0755 {VICTIM_CACHE} && mkdir {VICTIM_CACHE}/depots")
    assert made.returncode == 0, made.stderr
    _fails_closed(_dd(VICTIM, world, "env"), str(VICTIM_CACHE), f"owned by uid {ATTACKER}", "DEPOTDELIVERY_CACHE")
    _fails_closed(_dd(VICTIM, world, "status"), str(VICTIM_CACHE))
    _fails_closed(_dd(VICTIM, world, "gc"), str(VICTIM_CACHE))


def test_a_squatted_cache_symlink_is_refused(world):
    """The attacker points the victim's cache path at a directory of theirs: refused, and
    nothing is written through the link."""
    target = Path("/var/tmp/dd-attacker")
    made = _as(ATTACKER, world, "sh", "-c", f"mkdir -m 0777 {target} && ln -s {target} {VICTIM_CACHE}")
    assert made.returncode == 0, made.stderr
    _fails_closed(_dd(VICTIM, world, "env"), str(VICTIM_CACHE), "symbolic link", f"uid {ATTACKER}")
    assert list(target.iterdir()) == []


def test_a_group_writable_cache_is_refused_and_a_readable_one_tightened(world):
    """A victim who shares a group with the attacker and made a group-writable cache (umask 002
    with an older version): someone may already have written into it, so it is refused. A
    cache of the victim's that others can only read (older versions made it 0755, lock files
    0644, so anyone could hold a lock) is made 0700 on the next use."""
    _victim_env(world)
    os.chmod(VICTIM_CACHE, 0o770)
    _fails_closed(_dd(VICTIM, world, "env", groups=str(SHARED_GROUP)), "writable by group or others")
    os.chmod(VICTIM_CACHE, 0o755)
    for lock in (VICTIM_CACHE / "locks").iterdir():
        os.chmod(lock, 0o644)
    _honest(_victim_env(world), world)
    assert stat.S_IMODE(VICTIM_CACHE.stat().st_mode) == 0o700
    lock = next((VICTIM_CACHE / "locks").iterdir())
    hold = _as(ATTACKER, world, sys.executable, "-c",
               "import fcntl, os, sys; fcntl.flock(os.open(sys.argv[1], os.O_RDONLY), fcntl.LOCK_EX)", str(lock))
    assert hold.returncode != 0 and "PermissionError" in hold.stderr


def test_a_cache_inside_a_directory_the_attacker_owns_is_refused(world):
    """A configured cache under a directory the attacker owns: they could rename the victim's
    cache away and put theirs in its place at any time."""
    parent = Path("/var/tmp/dd-attacker")
    made = _as(ATTACKER, world, "sh", "-c", f"mkdir -m 0777 {parent}")
    assert made.returncode == 0, made.stderr
    done = _dd(VICTIM, world, "env", extra={"DEPOTDELIVERY_CACHE": f"{parent}/victim"})
    _fails_closed(done, f"inside {parent}", f"owned by uid {ATTACKER}")


def test_edited_records_never_reach_the_job(world):
    """Whoever edits the victim's completion record (here root, standing in for an attacker who
    got write access once) cannot add a variable or point the job at another depot, project
    or sysimage: the record is not used, the depot is redone, and the job gets the verified
    release's environment. A record owned by the attacker is refused outright."""
    honest = _victim_env(world)
    [record_path] = VICTIM_CACHE.glob("depots/*/complete.json")
    record = json.loads(record_path.read_text())
    evil = Path("/var/tmp/dd-attacker")
    for change in ({"env": {"LD_PRELOAD": f"{evil}/x.so"}, "julia_args": ["--sysimage", f"{evil}/sys.so"]},
                   {"depot_path": [record["depot"], f"{evil}/depot", *record["depot_path"][1:]]},
                   {"project": f"{evil}/project"}, {"sysimage": f"{evil}/sys.so"},
                   {"depot_path": [record["depot"], f"{world.root}/releases/../../../{evil}", record["depot_path"][2]]},
                   {"cpu_target": "haswell\n; export LD_PRELOAD=x"}):
        record_path.write_text(json.dumps({**record, **change}))
        os.chown(record_path, VICTIM, VICTIM)
        os.chmod(record_path, 0o600)
        got = _victim_env(world)
        assert got == honest, change
        assert "LD_PRELOAD" not in json.dumps(got) and str(evil) not in json.dumps(got)
        record = json.loads(record_path.read_text())  # redone by the victim's job
    os.chown(record_path, ATTACKER, ATTACKER)
    _fails_closed(_dd(VICTIM, world, "env"), str(record_path), "cannot be read by you")
    os.chmod(record_path, 0o644)
    _fails_closed(_dd(VICTIM, world, "env"), str(record_path), f"owned by uid {ATTACKER}")


def test_a_fifo_or_device_where_a_record_belongs_is_not_waited_on(world):
    """A FIFO (or /dev/zero) in place of a record would hang the job's read or exhaust its
    memory: it is not a regular file, so it reads as missing and is redone."""
    _victim_env(world)
    [record_path] = VICTIM_CACHE.glob("depots/*/complete.json")
    record_path.unlink()
    os.mkfifo(record_path)
    os.chown(record_path, VICTIM, VICTIM)
    _honest(_victim_env(world), world)
    [selection] = VICTIM_CACHE.glob("selections/*.json")
    selection.unlink()
    os.mknod(selection, 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    os.chown(selection, VICTIM, VICTIM)
    _honest(_victim_env(world), world)


def test_user_and_uid_expand_in_a_site_wide_cache_path(world):
    """One /etc setting for every account: ``$USER`` and ``${UID}`` name the caller's cache."""
    done = _dd(VICTIM, world, "prepare", "--json", extra={"DEPOTDELIVERY_CACHE": "/var/tmp/depotdelivery-${UID}"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["depot"].startswith(f"{VICTIM_CACHE}/")
    done = _dd(VICTIM, world, "prepare", "--json", extra={"DEPOTDELIVERY_CACHE": "/var/tmp/depotdelivery-$TMPDIR"})
    assert done.returncode == 2 and "only $USER and $UID" in done.stderr
