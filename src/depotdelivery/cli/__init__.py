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

import io
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


class _Stdout(io.TextIOWrapper):
    """sys.stdout whose write failures (a closed fd 1, a full disk, an I/O error) raise
    :class:`~depotdelivery.errors.OutputError`; a broken pipe stays a BrokenPipeError."""

    def write(self, text: str) -> int:
        try:
            return super().write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _output_error(exc) from None

    def flush(self) -> None:
        try:
            super().flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _output_error(exc) from None


_OUTPUT_ERROR = 15  # errors.OutputError.exit_code


def _output_error(exc: OSError) -> DepotDeliveryError:
    from depotdelivery.errors import OutputError

    return OutputError(f"cannot write output: {exc.strerror or exc}")


def _standard_streams() -> None:
    """Make fds 0-2 safe, as coreutils does: a closed one is reopened on /dev/null (fd 1 read-only,
    so that writing the output fails and the command exits 15 instead of succeeding silently;
    fd 2 write-only, so error messages vanish and only the exit code tells), so that no file
    this process opens later can take its number (an error message must never reach stdout:
    ``eval "$(depotdelivery env 2>&-)"``). sys.stdout becomes a :class:`_Stdout`."""
    for fd, flags in ((0, os.O_RDONLY), (1, os.O_RDONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, flags)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    old = sys.stdout
    encoding = getattr(old, "encoding", None) or "utf-8"
    errors = getattr(old, "errors", None) or "strict"
    line_buffering = bool(getattr(old, "line_buffering", False))
    if old is not None:
        try:
            old.flush()
        except OSError:
            pass
    sys.stdout = _Stdout(open(1, "wb", closefd=False), encoding=encoding, errors=errors,  # noqa: SIM115
                         line_buffering=line_buffering)
    if sys.stderr is None:
        sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115


def _say(message: str) -> None:
    """One line on stderr; nothing if stderr cannot be written (the exit code still tells)."""
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code. Called without ``argv`` (a real process), it
    first makes the standard streams safe (:func:`_standard_streams`)."""
    if argv is None:
        _standard_streams()
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
    """Call the command's handler; expected failures become one line on stderr and an exit code.
    The output is flushed here, so a failure to write it is one of them (exit 15)."""
    try:
        status = handler(args)
        sys.stdout.flush()
        return status
    except DepotDeliveryError as exc:
        if exc.exit_code == _OUTPUT_ERROR:
            # what could not be written is dropped: the interpreter's last flush must not fail again
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.close(null)
        if args.debug:
            raise
        _say(f"depotdelivery: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        _say("depotdelivery: interrupted")
        return 130
    except BrokenPipeError:
        # stdout closed early (``depotdelivery status | head``): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if args.debug:
            raise
        _say(f"depotdelivery: internal error: {type(exc).__name__}: {exc} "
             "(rerun with --debug for a traceback and report it)")
        return 1
