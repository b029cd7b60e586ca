"""Every command's --help, in a real process: help must never be the thing that crashes
(argparse's usage formatter raised "empty group" for the node commands on Python 3.11)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from depotdelivery.cli import _parser


def _commands() -> list[list[str]]:
    sub = next(a for a in _parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    out = []
    for name, parser in sub.choices.items():
        out.append([name])
        out.extend([name, child] for action in parser._actions if action.__class__.__name__ == "_SubParsersAction"
                   for child in action.choices)
    return out


@pytest.mark.parametrize("words", _commands(), ids=" ".join)
def test_help_of_every_command(words):
    done = subprocess.run([sys.executable, "-m", "depotdelivery", *words, "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: depotdelivery " + " ".join(words)) and not done.stderr
