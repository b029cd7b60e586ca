"""The node CLI on a read-only repository: env for each shell, exec (argv, environment, pid,
signals, exit status, lease), select, check, status."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from node_fixtures import captured_cpu, node_env, ro_command

from depotdelivery.node.env import render_env

HASWELL = str(captured_cpu("linux-rhel7-haswell"))


def _dd(repo, env, *args: str, **kw) -> subprocess.CompletedProcess[str]:
    argv = ro_command([repo.root], [sys.executable, "-m", "depotdelivery", *args])
    return subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env}, timeout=120, **kw)


@pytest.fixture
def env(node_repo, tmp_path):
    return node_env(node_repo, tmp_path / "cache", DEPOTDELIVERY_CPUINFO=HASWELL)


def test_env_for_sh_evaluates_to_the_prepared_environment(node_repo, env):
    prepared = json.loads(_dd(node_repo, env, "prepare", "--json").stdout)
    argv = ro_command([node_repo.root], ["sh", "-c",
                                         (f'eval "$({sys.executable} -m depotdelivery env)" && '
                                         'printf "%s\\n%s\\n%s" "$JULIA_DEPOT_PATH" "$JULIA_PROJECT" "$JULIA_CPU_TARGET"')])
    out = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env}).stdout.split("\n")
    assert out == [prepared["env"][k] for k in ("JULIA_DEPOT_PATH", "JULIA_PROJECT", "JULIA_CPU_TARGET")]
    as_json = json.loads(_dd(node_repo, env, "env", "--shell", "json").stdout)
    assert as_json == prepared["env"]
    fish = _dd(node_repo, env, "env", "--shell", "fish").stdout
    assert "set -gx JULIA_PKG_OFFLINE 'true';" in fish
    csh = _dd(node_repo, env, "env", "--shell", "csh").stdout
    assert f"setenv JULIA_DEPOT_PATH '{prepared['env']['JULIA_DEPOT_PATH']}';" in csh


@settings(max_examples=30)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20))
def test_sh_quoting_round_trips_any_value(value):
    script = render_env({"X": value}, "sh") + 'printf "%s" "$X"'
    out = subprocess.run(["sh", "-c", script], capture_output=True).stdout
    assert out == value.encode("utf-8", "surrogateescape")


def test_exec_replaces_the_process_inserts_sysimage_and_keeps_the_lease(node_repo, env, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    probe = (f"{sys.executable} -c \"import os, sys; from pathlib import Path; "
             "from depotdelivery.node.locks import leases; "
             "root = Path(os.environ['DEPOTDELIVERY_CACHE'], 'leases'); "
             "print(sum(l.held for k in os.listdir(root) for l in leases(root, k)))\"")
    (bin_dir / "julia").write_text(f"""#!/bin/sh
echo $$ > {tmp_path}/pid
printf '%s\\n' "$@" > {tmp_path}/args
printf '%s' "$JULIA_DEPOT_PATH" > {tmp_path}/depot_path
{probe} > {tmp_path}/held
trap 'exit 42' TERM
touch {tmp_path}/ready
while [ ! -e {tmp_path}/stop ]; do sleep 0.01; done
exit 3
""")
    (bin_dir / "julia").chmod(0o755)
    prepared = json.loads(_dd(node_repo, env, "prepare", "--json").stdout)
    env = {**env, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    argv = ro_command([node_repo.root], [sys.executable, "-m", "depotdelivery", "exec", "--",
                                         "julia", "script.jl", "a b"])
    # the shell of ro_command execs too, so the pid we start is the job's pid after all execs
    proc = subprocess.Popen(argv, env={**os.environ, **env})
    for _ in range(1000):
        if (tmp_path / "ready").exists():
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)  # reaches the job itself: no wrapper in between
    assert proc.wait(timeout=30) == 42
    assert int((tmp_path / "pid").read_text()) == proc.pid
    assert (tmp_path / "args").read_text().splitlines() == ["--sysimage", prepared["julia_args"][1], "script.jl", "a b"]
    assert (tmp_path / "depot_path").read_text() == prepared["env"]["JULIA_DEPOT_PATH"]
    assert int((tmp_path / "held").read_text()) >= 1  # the job holds its lease across execve
    (tmp_path / "stop").touch()
    # exit status passes through unchanged
    done = subprocess.run(argv, env={**os.environ, **env}, timeout=60)
    assert done.returncode == 3


def test_exec_without_a_command_is_a_usage_error(node_repo, env):
    done = _dd(node_repo, env, "exec")
    assert done.returncode == 2 and "exec needs a command" in done.stderr
    done = _dd(node_repo, env, "exec", "--", "no-such-julia-binary")
    assert done.returncode == 127 and "cannot run 'no-such-julia-binary'" in done.stderr


def test_select_json_explains_every_variant(node_repo, env):
    done = _dd(node_repo, env, "select", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["variant"] == "haswell" and doc["host_cpu"] == "haswell"
    verdicts = {v["target"]: v for v in doc["verdicts"]}
    assert set(verdicts) == {"generic", "haswell", "skylake-avx512", "znver4", "neoverse-v1", "a64fx"}
    assert "avx512f" in verdicts["skylake-avx512"]["missing"]["skylake-avx512"]
    assert not verdicts["a64fx"]["accepted"] and "aarch64" in verdicts["a64fx"]["reason"]
    assert "haswell" in doc["why"]


def test_prepare_explains_each_variant_on_its_own_line(node_repo, env):
    doc = json.loads(_dd(node_repo, env, "select", "--json").stdout)
    done = _dd(node_repo, env, "prepare")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("why: variant haswell of "))
    why = lines[start:]
    others = [v for v in doc["verdicts"] if v["target"] != "haswell"]
    assert why[2].strip() == "others:" and len(why) == 3 + len(others)
    for line, verdict in zip(why[3:], others, strict=True):
        assert line.strip() == f"{verdict['target']}: {verdict['reason']}"
    assert len(why[0]) < 200 and len(why[1]) < 200, why


def test_check_reports_each_package_and_a_summary(node_repo, env):
    done = _dd(node_repo, env, "check")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any("will load" in line for line in lines)
    assert any(line.endswith("will recompile or fail.") for line in lines)
    doc = json.loads(_dd(node_repo, env, "check", "--json").stdout)
    assert doc["report"]["packages"] and doc["warnings"] == []
    assert all(p["verdict"] == "load" for p in doc["report"]["packages"]), doc["report"]["packages"]


def test_check_warns_that_copy_breaks_julia_110_caches(tmp_path):
    from node_fixtures import build_repo

    repo = build_repo(tmp_path / "r110", targets=("haswell",), packages=2, julia_version="1.10.5")
    env = node_env(repo, tmp_path / "cache", DEPOTDELIVERY_CPUINFO=HASWELL)
    done = _dd(repo, env, "check", "--mode", "copy", "--json")
    doc = json.loads(done.stdout)
    assert doc["warnings"] and "absolute" in doc["warnings"][0]
    assert "depotdelivery: warning: copy mode with Julia 1.10.5" in done.stderr
    # and Julia's own rule agrees: the copied depot's caches name the repository's sources
    assert any(p["verdict"] != "load" for p in doc["report"]["packages"]), doc["report"]["packages"]
    stack = json.loads(_dd(repo, env, "check", "--json").stdout)
    assert len(stack["warnings"]) == 1 and "~/.julia" in stack["warnings"][0]  # see the next test


def test_julia_110_depot_path_brings_in_the_users_julia_depot(tmp_path):
    """Julia <= 1.10 reads the trailing ':' as ~/.julia too, and gathers caches from every depot
    newest first: a cache the user built in ~/.julia/compiled wins over the release's. prepare
    warns, and check predicts it; 1.11 leaves ~/.julia out."""
    import shutil

    from node_fixtures import build_repo

    home = tmp_path / "home"
    for version in ("1.10.5", "1.11.1"):
        repo = build_repo(tmp_path / f"r{version}", targets=("haswell",), packages=2, julia_version=version)
        env = node_env(repo, tmp_path / f"cache{version}", DEPOTDELIVERY_CPUINFO=HASWELL, HOME=str(home))
        prepared = json.loads(_dd(repo, env, "prepare", "--json").stdout)
        mm = "v" + ".".join(version.split(".")[:2])
        [compiled] = [p for d in prepared["depot_path"] if (p := Path(d, "compiled", mm)).is_dir()][:1]
        pkg = min(compiled.iterdir())
        mine = home / ".julia" / "compiled" / mm / pkg.name
        mine.mkdir(parents=True)
        for f in pkg.iterdir():  # the user's own build of the package, newer than the release's
            shutil.copy(f, mine / f.name)
            os.utime(mine / f.name, (time.time() + 60, time.time() + 60))
        doc = json.loads(_dd(repo, env, "check", "--json").stdout)
        stack = doc["report"]["depot_stack"]
        [verdict] = [p for p in doc["report"]["packages"] if p["name"] == pkg.name]
        if version == "1.10.5":
            assert stack[-1] == str(home / ".julia") and any("~/.julia" in w for w in doc["warnings"])
            assert verdict["verdict"] == "load" and verdict["depot"] == str(home / ".julia"), verdict
        else:
            assert str(home / ".julia") not in stack and doc["warnings"] == []
            assert verdict["verdict"] == "load" and verdict["depot"] != str(home / ".julia"), verdict
        shutil.rmtree(home)


def test_status_json_lists_depots_and_leases(node_repo, env):
    _dd(node_repo, env, "prepare", "--mode", "symlink")
    done = subprocess.run([sys.executable, "-m", "depotdelivery", "status", "--json"], capture_output=True,
                          text=True, env={**os.environ, **env})
    doc = json.loads(done.stdout)
    [depot] = doc["depots"]
    assert depot["complete"] and depot["mode"] == "symlink" and depot["variant"] == "haswell"
    assert depot["leases"] == [os.getpid()]  # prepare has exited; its caller (this process) holds the lease
    assert depot["files"] > 0 and depot["last_use"] > 0


def test_env_output_does_not_pin_later_calls_of_the_job(tmp_path):
    from node_fixtures import build_repo

    build_repo(tmp_path / "r", targets=("haswell",), packages=1, version="2026.11", channel="stable")
    repo = build_repo(tmp_path / "r", targets=("haswell",), packages=1, version="2026.12", channel="testing")
    env = node_env(repo, tmp_path / "cache", DEPOTDELIVERY_CPUINFO=HASWELL)
    dd = f"{sys.executable} -m depotdelivery"
    # a job script: the environment of `env`, then later depotdelivery calls in the same job
    argv = ro_command([repo.root], ["sh", "-c", (f'eval "$({dd} env)" && env | grep ^DEPOTDELIVERY_PREPARED_ && '
                                                f'{dd} prepare --json --channel testing')])
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env}, timeout=120)
    assert done.returncode == 0, done.stderr
    exported, _, later = done.stdout.partition("{")
    assert sorted(exported.split()) == ["DEPOTDELIVERY_PREPARED_RELEASE=hep/2026.11", "DEPOTDELIVERY_PREPARED_VARIANT=haswell"]
    assert json.loads("{" + later)["release"] == "hep/2026.12"


@pytest.mark.parametrize("command", ["status", "gc"])
def test_status_and_gc_on_a_cache_that_is_a_file_are_cache_errors(tmp_path, command):
    not_a_dir = tmp_path / "cache-file"
    not_a_dir.write_text("x")
    inner = tmp_path / "cache"
    (inner / "depots").parent.mkdir()
    (inner / "depots").write_text("x")
    for cache, message in ((not_a_dir, f"node cache {not_a_dir} is not a directory; set DEPOTDELIVERY_CACHE"),
                           (inner, f"cannot read node cache {inner / 'depots'}: Not a directory\n")):
        done = subprocess.run([sys.executable, "-m", "depotdelivery", command, "--cache", str(cache)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 8, done.stderr
        assert done.stderr.startswith(f"depotdelivery: {message}") and done.stderr.count("\n") == 1, done.stderr


def test_prepare_with_a_cpuinfo_that_is_no_cpuinfo_is_a_usage_error(node_repo, tmp_path):
    env = node_env(node_repo, tmp_path / "cache")
    done = _dd(node_repo, env, "prepare", "--cpuinfo", "/etc/passwd")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("depotdelivery: /etc/passwd:1: not a /proc/cpuinfo file") and done.stderr.count("\n") == 1
    power = _dd(node_repo, env, "prepare", "--cpuinfo", str(captured_cpu("linux-rhel8-power9")))
    assert power.returncode == 10 and "does not model (POWER9" in power.stderr, power.stderr


def test_check_predicts_with_julias_default_jit_target_not_julia_cpu_target(tmp_path):
    """Julia's JIT target is `-C` (default `native`); JULIA_CPU_TARGET, which the prepared
    environment exports, only sets the targets of caches Julia writes. On a Skylake-AVX512 host
    running the `generic` variant, `check` must judge pkgimages against the native CPU."""
    from node_fixtures import build_repo

    repo = build_repo(tmp_path / "rg", targets=("generic",), packages=2)
    env = node_env(repo, tmp_path / "cache",
                   DEPOTDELIVERY_CPUINFO=str(captured_cpu("linux-rhel7-skylake_avx512")))
    doc = json.loads(_dd(repo, env, "check", "--json").stdout)
    assert doc["prepared"]["env"]["JULIA_CPU_TARGET"] == "generic"
    assert doc["report"]["host"]["cpu"] == "skylake-avx512", doc["report"]["host"]
    assert all(p["verdict"] == "load" for p in doc["report"]["packages"])
