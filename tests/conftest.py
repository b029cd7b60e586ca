"""Shared test configuration: hypothesis profiles sized for a 2-core CI machine, the one
in-process CLI runner (the ``cli`` fixture; :func:`run_cli` where a fixture cannot go, e.g.
inside a hypothesis test), and the summary's list of the system tools missing here."""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, settings

from depotdelivery.cli import main

# node_fixtures' and trust_fixtures' fixtures (node_repo: one published repository per session;
# keys: trusted signing keys) for every test package, without each test module importing a fixture by name
pytest_plugins = ["node_fixtures", "trust_fixtures"]

# "ci" keeps the whole suite under a few minutes on 2 cores; "thorough" is for local soak runs:
#   HYPOTHESIS_PROFILE=thorough make test
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# System tools tests use when present. `make test` never installs them (scripts/system-deps.sh
# does, when run explicitly: `make system-deps`, CI's .ci/run); each test that needs one skips
# with its reason, and this list in the summary says what this machine could not check.
SYSTEM_TOOLS = {
    "fuse-overlayfs": "overlay hydration mode (Debian fuse-overlayfs)",
    "fusermount3": "unmounting FUSE overlays (Debian fuse3)",
    "b3sum": "BLAKE3 cross-check against the reference implementation (Debian b3sum)",
    "ld.lld": "system-image fixtures linked as Julia links them (Debian lld)",
    "gcc": "ELF fixtures and the flock-less stand-in library",
    "git": "Pkg tree hashes compared with git's",
    "unshare": "read-only repositories (user + mount namespaces; util-linux)",
    "mksquashfs": "flock on squashfs, CVMFS's own format (Debian squashfs-tools)",
    "du": "status sizes compared with GNU du (coreutils)",
    "slurmd": "the launcher recipes in a real single-node Slurm (Debian slurm-wlm)",
    "munged": "authentication of that Slurm cluster (Debian munge)",
    "systemd-analyze": "verifying the node gc timer and service of contrib/systemd (Debian systemd)",
}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    missing = {tool: use for tool, use in SYSTEM_TOOLS.items() if shutil.which(tool) is None}
    if missing:
        terminalreporter.write_sep("-", f"{len(missing)} system tool(s) missing here (tests that need them skipped or checked less)")
        for tool, use in missing.items():
            terminalreporter.write_line(f"missing {tool}: {use}")


class CliRun(NamedTuple):
    """What one ``depotdelivery ARGS`` printed and returned."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(*args: str | os.PathLike[str]) -> CliRun:
    """``depotdelivery ARGS`` in this process, through the console script's ``main()``: its exit
    code, stdout and stderr. (Tests that need a separate process, a read-only mount or a signal
    use ``node_fixtures.run_ro`` or ``subprocess`` instead.)"""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([os.fspath(a) for a in args])
    return CliRun(code, out.getvalue(), err.getvalue())


class CliRunner:
    """The ``cli`` fixture: ``cli(*args) -> CliRun``; ``cli.last`` is the latest run."""

    def __init__(self) -> None:
        self.last = CliRun(0, "", "")

    def __call__(self, *args: str | os.PathLike[str]) -> CliRun:
        self.last = run_cli(*args)
        return self.last


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()
