"""The ``depotdelivery`` command line: argparse wiring over the API, and a fast path for jobs.

Each area registers its subcommands from a small private module (``_cpu``, ``_repo``,
``_node``, ``_demo``); handlers import the API lazily so ``depotdelivery detect`` never pays
for the publisher's imports. The commands every job runs at start (``env``, ``prepare``,
``exec``, and ``select``) are parsed by :func:`depotdelivery.cli._node.parse_fast` before argparse is even
imported: building the full parser (16 subcommands, gettext look-ups, ``re``, ``shutil``) costs
more than the warm prepare() itself. Anything the fast parser does not recognise exactly
(``-h``, an abbreviated option, a bad value) goes to argparse, so help and errors are the
same either way. ``main(argv)`` is testable in-process (installer's ``__main__._main``
pattern). Expected failures print one line, ``depotdelivery: <message>``, on stderr and exit
with the error's documented code.
"""
from __future__ import annotations

import os
import sys

from depotdelivery.errors import DepotDeliveryError

TYPE_CHECKING = False  # no `typing` on the hot path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any

    Handler = Callable[[Any], int]

__all__ = ["emit_json", "main"]

# Modules that each define ``register(subparsers)``; order is the order in --help.
_COMMAND_MODULES = (
    "depotdelivery.cli._cpu",
    "depotdelivery.cli._repo",
    "depotdelivery.cli._build",
    "depotdelivery.cli._node",
    "depotdelivery.cli._fingerprint",
    "depotdelivery.cli._demo",
)
# Parsed without argparse (cli/_node.py) when their arguments are the plain ones jobs pass.
_FAST_COMMANDS = frozenset({"env", "prepare", "exec", "select"})


def emit_json(obj: Any) -> None:
    """Print one JSON object on stdout (the ``--json`` contract)."""
    from depotdelivery.store import fastjson

    sys.stdout.write(fastjson.dumps(obj, indent=2) + "\n")


def _parser() -> argparse.ArgumentParser:
    import argparse

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
        __import__(name)
        sys.modules[name].register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    words = sys.argv[1:] if argv is None else list(argv)
    args = None
    if words and words[0] in _FAST_COMMANDS:
        # loaded like the command modules in _parser() (they import emit_json from here)
        __import__("depotdelivery.cli._node")
        args = sys.modules["depotdelivery.cli._node"].parse_fast(words)
    if args is None:
        args = _parser().parse_args(words)
    return _run(args.handler, args)


def _run(handler: Handler, args: Any) -> int:
    """Call the command's handler; expected failures become one line on stderr and an exit code."""
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
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"depotdelivery: internal error: {type(exc).__name__}: {exc} "
            "(rerun with --debug for a traceback and report it)",
            file=sys.stderr,
        )
        return 1
