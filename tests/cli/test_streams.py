"""Closed and failing standard streams, in real processes: an error never reaches stdout
(``eval "$(depotdelivery env 2>&-)"``), output that cannot be written is exit 15 with one
line, and bad values of the environment or of ``demo --dir`` are usage errors (exit 2)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from node_fixtures import captured_cpu, node_env

CLI = str(Path(sys.executable).with_name("depotdelivery"))


@pytest.fixture(scope="module")
def env(node_repo, tmp_path_factory):
    env = {k: v for k, v in os.environ.items() if k != "DEPOTDELIVERY_DEBUG"}
    env.update(node_env(node_repo, tmp_path_factory.mktemp("streams") / "cache",
                        DEPOTDELIVERY_CPUINFO=str(captured_cpu("linux-rhel7-haswell"))))
    return env


def _sh(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], env={**env, "DD": CLI}, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.parametrize("command", ["env", "check", "status", "prepare --json"])
def test_closed_stdout_is_exit_15_with_one_line(env, command):
    done = _sh(f'"$DD" {command} >&-', env)
    assert done.returncode == 15, done.stderr
    assert done.stderr == "depotdelivery: cannot write output: Bad file descriptor\n"


@pytest.mark.parametrize("command", ["env", "status", "select"])
def test_full_disk_is_exit_15_naming_enospc(env, command):
    done = _sh(f'"$DD" {command} > /dev/full', env)
    assert done.returncode == 15
    assert done.stderr == "depotdelivery: cannot write output: No space left on device\n"


def test_closed_stderr_never_puts_the_error_on_stdout(env):
    done = _sh('out=$(DEPOTDELIVERY_REPO=/nonexistent "$DD" env 2>&-); rc=$?; printf "%s|%s" "$rc" "$out"', env)
    assert done.stdout == "3|"


def test_closed_stdin_and_a_broken_pipe_are_fine(env):
    done = _sh('"$DD" env 0<&- | grep -c JULIA_DEPOT_PATH; "$DD" status | head -c 1 > /dev/null; '
               'echo "${PIPESTATUS[0]}"', env)
    assert done.stdout.split() == ["1", "0"], done.stderr
    assert "Traceback" not in done.stderr


def test_non_numeric_hydrate_delay_is_a_usage_error(env, tmp_path):
    done = subprocess.run([CLI, "prepare", "--cache", str(tmp_path / "c")],
                          env={**env, "DEPOTDELIVERY_HYDRATE_DELAY": "abc"}, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert done.stderr == "depotdelivery: DEPOTDELIVERY_HYDRATE_DELAY='abc' is not a number of seconds\n"


def test_demo_dir_that_is_a_file_is_a_usage_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    done = subprocess.run([sys.executable, "-m", "depotdelivery", "demo", "--dir", str(f)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert done.stderr == f"depotdelivery: --dir {f}: not a directory\n"
