"""Shared test configuration: hypothesis profiles sized for a 2-core CI machine, and the one
in-process CLI runner (the ``cli`` fixture; :func:`run_cli` where a fixture cannot go, e.g.
inside a hypothesis test)."""
from __future__ import annotations

import contextlib
import io
import json
import os
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, settings

from depotdelivery.cli import main

# "ci" keeps the whole suite under a few minutes on 2 cores; "thorough" is for local soak runs:
#   HYPOTHESIS_PROFILE=thorough make test
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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
