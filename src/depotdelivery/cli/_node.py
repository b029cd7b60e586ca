"""Node subcommands: select, prepare, env, exec, check, status, gc.

``env``, ``prepare`` and ``exec`` start every job, so their plain forms are parsed here by
:func:`parse_fast` without argparse (cli/__init__.py); argparse and :func:`parse_fast` both
take the configuration options from one table, :data:`_CONFIG_OPTIONS`. Nothing this module
imports at module level costs more than the warm prepare() it wires.
"""
from __future__ import annotations

import os
import sys
import time

from depotdelivery.errors import UsageError
from depotdelivery.node.env import SHELLS, shell_quote

TYPE_CHECKING = False  # no `typing` (nor argparse) on the jobs' fast path
if TYPE_CHECKING:
    import argparse
    from typing import Any

__all__ = ["parse_fast", "register"]

_MODES = ("stack", "symlink", "copy", "overlay")  # node.config.MODES (not imported: argparse checks)

# The configuration options of the node commands: (flag, dest, metavar, choices or a type,
# mutually exclusive group, help). argparse (_add_config) and parse_fast both read it.
_CONFIG_TITLE = "configuration (docs/configuration.md; flags beat DEPOTDELIVERY_* and config files)"
_CONFIG_OPTIONS: tuple[tuple[str, str, str | None, Any, str | None, str], ...] = (
    ("--repo", "repo", None, None, None, "repository root (DEPOTDELIVERY_REPO)"),
    ("--channel", "channel", None, None, "which", "channel to follow (default: stable)"),
    ("--release", "release", "NAME/VERSION", None, "which", "pin a release instead of a channel"),
    ("--mode", "mode", None, _MODES, None, "hydration mode (default: stack)"),
    ("--cache", "cache", None, None, None, "node cache directory (DEPOTDELIVERY_CACHE)"),
    ("--trust", "trusted_keys", "DIR", None, None, "trusted publisher keys directory"),
    ("--microarch", "microarch", None, None, "host", "override CPU detection (e.g. haswell, zen4, neoverse_v1)"),
    ("--cpuinfo", "cpuinfo", "FILE", None, "host", "detect the CPU from a recorded /proc/cpuinfo"),
    ("--lock-timeout", "lock_timeout", "SECONDS", float, None,
     "how long to wait for another job's hydration (default: 600)"),
)


def _add_config(p: argparse.ArgumentParser, *, mode: bool = True) -> None:
    g = p.add_argument_group(_CONFIG_TITLE)
    groups: dict[str, Any] = {}
    for flag, dest, metavar, kind, exclusive, text in _CONFIG_OPTIONS:
        if flag == "--mode" and not mode:
            continue
        if exclusive is not None and exclusive not in groups:
            # not setdefault(): its default argument would add an empty group each time, and
            # argparse's usage formatter raises "empty group" on one (Python 3.11)
            groups[exclusive] = g.add_mutually_exclusive_group()
        target = g if exclusive is None else groups[exclusive]
        extra: dict[str, Any] = {"choices": kind} if isinstance(kind, tuple) else {"type": kind} if kind else {}
        target.add_argument(flag, dest=dest, metavar=metavar, help=text, **extra)


class _Args:
    """What argparse's Namespace would hold for a fast-parsed command (argparse not imported)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


def parse_fast(words: list[str]) -> _Args | None:
    """``select``/``env``/``prepare``/``exec`` arguments -> the namespace argparse would give, or None for
    anything but exact long options with valid values (argparse then parses, helps or errs)."""
    command, options = words[0], _FAST_FLAGS[words[0]]
    values: dict[str, Any] = {dest: None for dest, _kind, _exclusive in options.values()}
    values.update(_FAST_DEFAULTS[command])
    groups: dict[str, str] = {}
    i = 1
    while i < len(words):
        word = words[i]
        if command == "exec" and (word == "--" or not word.startswith("-")):
            values["cmd"] = words[i:]  # argparse.REMAINDER keeps the '--'
            break
        flag, eq, value = word.partition("=")
        option = options.get(flag)
        if option is None:
            return None
        dest, kind, exclusive = option
        if kind is True:  # a store_true flag
            if eq:
                return None
            values[dest] = True
            i += 1
            continue
        if eq and value == "--":
            return None  # argparse drops a '--' value (`--repo=--` gives []): leave it to argparse
        if not eq:
            if i + 1 == len(words) or words[i + 1].startswith("-"):
                return None
            value = words[i + 1]
            i += 1
        if value == "--" or (isinstance(kind, tuple) and value not in kind):
            return None  # argparse drops a '--' value (`--repo=--` gives []): its business
        parsed: str | float = value
        if kind is float:
            try:
                parsed = number = float(value)
            except ValueError:
                return None
            if number != number or number in (float("inf"), float("-inf")):  # noqa: PLR0124 (NaN test)
                return None  # nan/inf: argparse and the configuration check say what is wrong
        if exclusive is not None and groups.setdefault(exclusive, flag) != flag:
            return None
        values[dest] = parsed
        i += 1
    return _Args(command=command, debug=bool(os.environ.get("DEPOTDELIVERY_DEBUG")), **values)


def _fast_flags() -> dict[str, dict[str, tuple[str, Any, str | None]]]:
    config = {flag: (dest, kind, exclusive) for flag, dest, _m, kind, exclusive, _h in _CONFIG_OPTIONS}
    node = {flag: value for flag, value in config.items() if flag != "--mode"}
    return {"select": {**node, "--json": ("json", True, None)},
            "prepare": {**config, "--json": ("json", True, None)},
            "env": {**config, "--shell": ("shell", SHELLS, None)},
            "exec": config}


_FAST_FLAGS = _fast_flags()


def _config(args: argparse.Namespace) -> Any:
    from depotdelivery.node.config import KEYS, resolve

    return resolve({k.name: getattr(args, k.name, None) for k in KEYS})


def _prepare(args: argparse.Namespace, *, lease_parent: bool = False) -> Any:
    """prepare() for a command; ``lease_parent``: lease the depot for the calling process (the
    shell of ``eval "$(depotdelivery env)"``) instead of this one, which exits at once."""
    from depotdelivery.node.prepare import prepare_config

    prepared = prepare_config(_config(args), lease_pid=os.getppid() if lease_parent else None)
    for warning in prepared.warnings:
        print(f"depotdelivery: warning: {warning}", file=sys.stderr)
    return prepared


def _emit(obj: dict[str, Any]) -> None:
    from depotdelivery.cli import emit_json

    emit_json(obj)


# ---- select -------------------------------------------------------------------------------------

def _cmd_select(args: argparse.Namespace) -> int:
    from depotdelivery.node.select import select
    from depotdelivery.node.session import Session

    session = Session(_config(args))
    selection = select(session.release(), session.host())
    if args.json:
        _emit(selection.to_dict())
        return 0
    print(f"{selection.target}  ({selection.variant.cpu_target})")
    for v in selection.verdicts:
        mark = "*" if v.target == selection.target else ("+" if v.accepted else "-")
        print(f"  {mark} {v.target}: {v.reason}")
    return 0


# ---- prepare / env / exec -------------------------------------------------------------------------

def _cmd_prepare(args: argparse.Namespace) -> int:
    prepared = _prepare(args, lease_parent=True)
    if args.json:
        _emit(prepared.to_dict())
        return 0
    print(f"{prepared.release} variant {prepared.variant}, {prepared.mode} mode"
          f" ({'hydrated' if prepared.hydrated else 'ready'} in {prepared.timings['total']:.1f} ms)")
    print(f"JULIA_DEPOT_PATH={prepared.env['JULIA_DEPOT_PATH']}")
    if prepared.julia_args:
        print(f"julia {' '.join(shell_quote(a) for a in prepared.julia_args)}")
    print("why: " + prepared.why.replace("\n", "\n     "))
    return 0


def _cmd_env(args: argparse.Namespace) -> int:
    from depotdelivery.node.env import render_env

    prepared = _prepare(args, lease_parent=True)
    env = dict(prepared.env)
    sys.stdout.write(render_env(env, args.shell))
    return 0


def _cmd_exec(args: argparse.Namespace) -> int:
    argv = list(args.cmd)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UsageError("exec needs a command: depotdelivery exec [options] -- julia script.jl ...")
    prepared = _prepare(args)
    env = {**os.environ, **prepared.env}
    command = prepared.command(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # The lease descriptor is inheritable: the job keeps the depot leased for as long as it runs,
    # and execvpe passes its signals and exit status straight through.
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        # what a shell does: 127 for a command not found, 126 for one that cannot run
        print(f"depotdelivery: cannot run {command[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127 if isinstance(exc, FileNotFoundError) else 126
    return 0  # pragma: no cover - execvpe does not return


# ---- check ------------------------------------------------------------------------------------------

def _cmd_check(args: argparse.Namespace) -> int:
    """The prediction; against the variant's CI fingerprints (exit 12 if the graph differs);
    with ``--julia`` against a real Julia run (exit 11 if it disagrees; 11 wins over 12)."""
    from depotdelivery.errors import ModuleGraphMismatchError, PredictionMismatchError
    from depotdelivery.julia.stale import format_report
    from depotdelivery.node.check import check
    from depotdelivery.node.fingerprint import compare_with_ci

    prepared = _prepare(args)
    report = check(prepared)  # the release and host of prepare()'s session, not loaded again
    warnings = list(prepared.warnings)
    ci = compare_with_ci(prepared, report)
    julia = None
    if args.julia is not None:
        from depotdelivery.node.realjulia import check_with_julia

        julia = check_with_julia(prepared, args.julia, report=report, timeout=args.julia_timeout)
    status = (PredictionMismatchError.exit_code if julia is not None and not julia.agree else
              ModuleGraphMismatchError.exit_code if ci is not None and not ci.same else 0)
    doc = {"prepared": prepared.to_dict(), "report": report.to_dict(), "warnings": warnings,
           "ci": None if ci is None else ci.to_dict(), "julia": None if julia is None else julia.to_dict(),
           "exit": status}
    if args.report is not None:
        _write_report(args.report, doc)
    if args.json:
        _emit(doc)
        return status
    sys.stdout.write(format_report(report, verbose=args.verbose))
    for w in warnings:
        print(f"warning: {w}")
    if ci is not None:
        print(ci.line())
        for line in ([] if ci.diff is None else ci.diff.lines()):
            print(f"  {line}")
    if julia is not None:
        print(f"Julia {julia.probe.julia_version} at {args.julia} agrees with the prediction" if julia.agree else
              f"Julia {julia.probe.julia_version} at {args.julia} DISAGREES with the prediction:")
        for m in julia.mismatches:
            print(f"  {m.line}")
    return status


def _write_report(path: str, doc: dict[str, Any]) -> None:
    import json
    from pathlib import Path

    from depotdelivery.store.atomic import write_atomic

    try:
        write_atomic(Path(path), (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode())
    except OSError as exc:
        raise UsageError(f"--report {path}: cannot write: {exc.strerror}") from None


# ---- status / gc -----------------------------------------------------------------------------------

def _cache_from(args: argparse.Namespace) -> Any:
    from depotdelivery.node.cache import NodeCache
    from depotdelivery.node.config import resolve

    cache = NodeCache(resolve({"cache": args.cache}).cache)
    cache.secure(create=False)  # another user's cache is refused (exit 8), never read or cleaned
    return cache


def _cmd_status(args: argparse.Namespace) -> int:
    from depotdelivery.units import human_bytes

    cache = _cache_from(args)
    depots = cache.status()
    if args.json:
        _emit({"cache": str(cache.root), "depots": [d.to_dict() for d in depots]})
        return 0
    print(f"node cache {cache.root}: {len(depots)} depot(s)")
    now = time.time()
    for d in depots:
        state = "complete" if d.complete else "INCOMPLETE"
        leases = f"{len(d.leases)} lease(s) (pids {', '.join(str(p) for p in d.leases)})" if d.leases else "no leases"
        print(f"  {d.key}  {d.release or '?'} {d.variant or '?'} {d.mode or '?'}  {state}  "
              f"{human_bytes(d.apparent_bytes)} in {d.files} files ({human_bytes(d.disk_bytes)} on disk), "
              f"last use {_ago(now - d.last_use)} ago, {leases}"
              + ("  [mounted]" if d.mounted else ""))
    return 0


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _cmd_gc(args: argparse.Namespace) -> int:
    from depotdelivery.cli.durations import parse_age

    older = None
    if args.older_than is not None:
        try:
            older = parse_age(args.older_than)
        except UsageError as exc:
            raise UsageError(f"--older-than: {exc}") from None
    if args.keep is not None and args.keep < 0:
        raise UsageError("--keep must be >= 0")
    report = _cache_from(args).gc(keep=args.keep, older_than=older)
    if args.json:
        _emit(report.to_dict())
        return 0
    print(f"removed {len(report.removed)} depot(s){': ' + ', '.join(report.removed) if report.removed else ''}; "
          f"kept {len(report.kept_leased)} leased, {len(report.kept_busy)} being hydrated; "
          f"{report.tmp_removed} build leftover(s) and {report.leases_reaped} dead lease(s) removed")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the node subcommands to the parser."""
    import argparse

    p = sub.add_parser("select", help="show which variant this host gets, and why")
    _add_config(p, mode=False)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_select)

    p = sub.add_parser("prepare", help="verify, select and hydrate the depot for jobs on this node")
    _add_config(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_prepare)

    p = sub.add_parser("env", help='print the job environment: eval "$(depotdelivery env)"')
    _add_config(p)
    p.add_argument("--shell", choices=SHELLS, default="sh")
    p.set_defaults(handler=_cmd_env)

    p = sub.add_parser("exec", help="run a command (julia ...) in the prepared environment")
    _add_config(p)
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    p.set_defaults(handler=_cmd_exec)

    p = sub.add_parser("check", help="predict which caches Julia will load or recompile on this node")
    _add_config(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--julia", metavar="PATH", help="also run this Julia once (JULIA_DEBUG=loading) and compare what it "
                                                   "loads with the prediction (exit 11 if it disagrees)")
    p.add_argument("--julia-timeout", type=float, default=300.0, metavar="SECONDS",
                   help="kill that Julia after this long (default 300)")
    p.add_argument("--report", metavar="FILE", help="also write the JSON report (every mismatch, Julia's stderr) to FILE")
    p.set_defaults(handler=_cmd_check)

    p = sub.add_parser("status", help="list the node cache's depots, sizes, last use and leases")
    p.add_argument("--cache", help="node cache directory (DEPOTDELIVERY_CACHE)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_status)

    p = sub.add_parser("gc", help="remove unused depots (never one a running job holds)")
    p.add_argument("--cache", help="node cache directory (DEPOTDELIVERY_CACHE)")
    p.add_argument("--keep", type=int, metavar="N", help="keep the N most recently used depots")
    p.add_argument("--older-than", metavar="AGE", help="remove depots unused for AGE (30d, 12h, 15m, 45s)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_gc)


# argparse's defaults for what parse_fast parses (register() sets the same)
_FAST_DEFAULTS: dict[str, dict[str, Any]] = {
    "select": {"json": False, "handler": _cmd_select},
    "prepare": {"json": False, "handler": _cmd_prepare},
    "env": {"shell": "sh", "handler": _cmd_env},
    "exec": {"cmd": [], "handler": _cmd_exec},
}
