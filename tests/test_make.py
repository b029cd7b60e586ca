"""The Makefile's contract: `make test` never installs system packages (CI does, explicitly, in
.ci/run), and a run on a machine without the optional tools says which ones it missed."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_test_installs_no_system_packages():
    # -n: print what `make test` would run, run nothing; -B: every prerequisite as if out of date
    plan = subprocess.run(["make", "-n", "-B", "test"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout
    assert "pytest" in plan and "pip install" in plan
    assert "system-deps" not in plan and "apt-get" not in plan, plan
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if not line.startswith("#")]
    steps = [i for i, line in enumerate(ci) for word in ("scripts/system-deps.sh", "make test") if word in line]
    assert len(steps) == 2 and "system-deps" in ci[steps[0]], "CI installs the tools explicitly, before make test"


def test_the_summary_lists_missing_system_tools(tmp_path):
    # an empty PATH: every tool of conftest.SYSTEM_TOOLS is missing
    bindir = tmp_path / "bin"
    bindir.mkdir()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           "tests/node/test_cache_sizes.py::test_human_bytes_is_iec"],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PATH": str(bindir)}, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    from conftest import SYSTEM_TOOLS

    for tool, use in SYSTEM_TOOLS.items():
        assert f"missing {tool}: {use}" in done.stdout
