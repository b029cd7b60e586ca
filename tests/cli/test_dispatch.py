"""The jobs' fast path: `env`/`prepare`/`exec` parsed without argparse exactly as argparse would,
and a warm job start (console script or library) that imports none of the modules that cost
as much as the interpreter's own start-up. (What it costs is benchmarks/bench_jobstart.py's
business: no timings here.)"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from node_fixtures import captured_cpu, node_env

from depotdelivery.cli import _node, _parser

# Modules a warm job start must not import: each costs a sizeable fraction of `python -c pass`
# (re and json alone about half), and none is needed to read the node's records.
HEAVY = {"re", "json", "argparse", "typing", "dataclasses", "pathlib", "contextlib", "shlex", "enum",
         "functools", "collections", "gettext", "locale", "shutil", "subprocess", "cryptography", "archspec",
         "filelock", "blake3", "tomllib", "asyncio", "inspect"}
CLI = str(Path(sys.executable).with_name("depotdelivery"))


def _imported(stderr: str) -> set[str]:
    """Top-level module names from ``python -X importtime`` output."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name.split(".")[0])
    return names


@pytest.fixture(scope="module")
def warm_env(node_repo, tmp_path_factory):
    env = {k: v for k, v in os.environ.items() if k != "DEPOTDELIVERY_DEBUG"}
    env.update(node_env(node_repo, tmp_path_factory.mktemp("warm") / "cache",
                        DEPOTDELIVERY_CPUINFO=str(captured_cpu("linux-rhel7-haswell"))))
    done = subprocess.run([CLI, "prepare"], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return env


@pytest.mark.parametrize("argv", [
    [CLI, "env"],
    [CLI, "env", "--shell", "csh", "--mode=stack", "--channel", "stable"],
    [CLI, "prepare", "--json"],
    [CLI, "exec", "--", sys.executable, "-S", "-c", "pass"],
    [sys.executable, "-c", "import depotdelivery; depotdelivery.prepare()"],
], ids=["env", "env-options", "prepare-json", "exec", "library"])
def test_warm_job_start_imports_nothing_heavy(warm_env, argv):
    # -X importtime through the interpreter the console script names: the console script itself
    # (the installer's wrapper) is part of what is checked
    cmd = [sys.executable, "-X", "importtime", *argv] if argv[0] == CLI else [argv[0], "-X", "importtime", *argv[1:]]
    done = subprocess.run(cmd, env=warm_env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    heavy = _imported(done.stderr) & HEAVY
    assert not heavy, f"a warm {' '.join(argv[1:3])} imported {sorted(heavy)}"
    if "--json" in argv:
        assert json.loads(done.stdout)["hydrated"] is False


def test_fast_path_output_is_the_argparse_path_output(warm_env):
    # `env --shel sh` is an abbreviation only argparse accepts: the same handler, another parser
    fast = subprocess.run([CLI, "env", "--shell", "sh"], env=warm_env, capture_output=True, text=True, check=False)
    slow = subprocess.run([CLI, "env", "--shel", "sh"], env=warm_env, capture_output=True, text=True, check=False)
    assert fast.returncode == slow.returncode == 0
    assert fast.stdout == slow.stdout and "export JULIA_DEPOT_PATH=" in fast.stdout


def _argparse(words: list[str]) -> dict[str, object] | None:
    try:
        ns = _parser().parse_args(words)
    except SystemExit:
        return None
    return vars(ns)


_VALUES = st.sampled_from(["stable", "x", "", "haswell", "1.5", "nan", "-1", "sh", "json", "copy", "stack", "a=b",
                           "hep/1", "julia", "--", "-x", "--repo"])
_OPTIONS = st.sampled_from(["--repo", "--channel", "--release", "--mode", "--cache", "--trust", "--microarch",
                            "--cpuinfo", "--lock-timeout", "--shell", "--json", "--debug", "-h", "--rep", "--mod"])
_WORD = st.one_of(_OPTIONS, _VALUES, st.builds(lambda o, v: f"{o}={v}", _OPTIONS, _VALUES))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["env", "prepare", "exec", "select"]), st.lists(_WORD, max_size=7))
def test_parse_fast_agrees_with_argparse(command, words):
    argv = [command, *words]
    fast = _node.parse_fast(argv)
    if fast is None:
        return  # argparse parses it (or reports the error): nothing to agree on
    expected = _argparse(argv)
    assert expected is not None, f"parse_fast accepted {argv} which argparse rejects"
    assert vars(fast) == expected


def test_parse_fast_leaves_help_and_errors_to_argparse():
    for argv in (["env", "-h"], ["env", "--help"], ["prepare", "--rel", "a/b"], ["env", "--mode", "bogus"],
                 ["env", "--channel", "a", "--release", "b/c"], ["prepare", "--lock-timeout", "soon"],
                 ["env", "--json"], ["prepare", "--json=1"], ["env", "stray"], ["env", "--repo"],
                 ["select", "--mode", "stack"], ["select", "--shell", "sh"]):
        assert _node.parse_fast(argv) is None, argv


@given(st.text())
def test_shell_quote_is_shlex_quote(text):
    assert _node.shell_quote(text) == shlex.quote(text)


def test_argparse_options_come_from_the_one_table():
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command in ("env", "prepare", "exec", "select", "check"):
        flags = set(sub.choices[command]._option_string_actions)
        table = {flag for flag, *_ in _node._CONFIG_OPTIONS if command != "select" or flag != "--mode"}
        assert table <= flags, (command, table - flags)
