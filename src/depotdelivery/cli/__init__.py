"""The ``depotdelivery`` command line: one argparse parser that only wires the API together.

Each area registers its subcommands from a small private module (``_cpu``, ``_repo``,
``_node``, ``_demo``); handlers import the API lazily so ``depotdelivery detect`` or
``depotdelivery env`` never pay for the publisher's imports. ``main(argv)`` is testable
in-process (installer's ``__main__._main`` pattern). Expected failures print one line,
``depotdelivery: <message>``, on stderr and exit with the error's documented code.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any, Callable, Sequence

from depotdelivery.errors import DepotDeliveryError

__all__ = ["main", "emit_json", "Handler"]

Handler = Callable[[argparse.Namespace], int]

# Modules that each define ``register(subparsers)``; order is the order in --help.
_COMMAND_MODULES = (
    "depotdelivery.cli._cpu",
    "depotdelivery.cli._repo",
    "depotdelivery.cli._node",
    "depotdelivery.cli._fingerprint",
    "depotdelivery.cli._demo",
)


def emit_json(obj: Any) -> None:
    """Print one JSON object on stdout (the ``--json`` contract)."""
    sys.stdout.write(json.dumps(obj, sort_keys=True, indent=2) + "\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depotdelivery",
        description="Deliver precompiled Julia depots and system images to cluster nodes.",
        epilog="Exit codes are listed in docs/troubleshooting.md.",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=bool(os.environ.get("DEPOTDELIVERY_DEBUG")),
        help="show tracebacks for unexpected errors",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    sub.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except DepotDeliveryError as exc:
        if args.debug:
            raise
        print(f"depotdelivery: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("depotdelivery: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout closed early (``depotdelivery status | head``): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - the last resort; --debug shows the traceback
        if args.debug:
            raise
        print(
            f"depotdelivery: internal error: {type(exc).__name__}: {exc} "
            "(rerun with --debug for a traceback and report it)",
            file=sys.stderr,
        )
        return 1
