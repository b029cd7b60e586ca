"""The ``demo`` subcommand: the whole system end to end on a generated repository (wiring only)."""
from __future__ import annotations

import argparse
import sys

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the demo subcommand to the parser."""
    p = sub.add_parser(
        "demo", help="end to end on a generated repository: publish, select, prepare, check, rollback, gc",
        description="Generate a Julia depot with x86_64 and aarch64 variants, sign and publish it, then run "
                    "select, prepare (every mode), env, check, a channel rollback and gc on this node. "
                    "Everything is written inside --dir; running it again reuses the directory.")
    p.add_argument("--dir", default="demo-out", metavar="D", help="output directory (default: demo-out)")
    p.add_argument("--julia-version", default="1.11.1", help="Julia version of the generated depot (default 1.11.1)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the narrative")
    p.add_argument("--cpuinfo", metavar="FILE",
                   help="describe the node by a recorded /proc/cpuinfo instead of this machine's CPU")
    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from depotdelivery.cli import emit_json
    from depotdelivery.demo import run_demo

    result = run_demo(args.dir, out=None if args.json else sys.stdout, julia_version=args.julia_version,
                      cpuinfo=args.cpuinfo)
    if args.json:
        emit_json(result.to_dict())
    return 0
