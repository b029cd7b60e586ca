"""Subcommands of this area (filled in by its issue)."""
from __future__ import annotations

import argparse

__all__ = ["register"]


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add this area's subcommands to the parser."""
