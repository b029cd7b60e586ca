"""``depotdelivery fingerprint [--json]`` and ``depotdelivery fingerprint diff A B``."""
from __future__ import annotations

import argparse
import sys

from depotdelivery.errors import ModuleGraphMismatchError, UsageError

__all__ = ["register"]


def _cmd_fingerprint(args: argparse.Namespace) -> int:
    if args.words:
        if args.words[0] != "diff" or len(args.words) != 3:
            raise UsageError("usage: depotdelivery fingerprint diff A.json B.json (or no arguments for this node's)")
        return _diff(args, args.words[1], args.words[2])
    from depotdelivery.cli._node import _prepare
    from depotdelivery.node.fingerprint import of_prepared

    fp = of_prepared(_prepare(args), reference=args.reference)
    if args.json:
        sys.stdout.buffer.write(fp.to_bytes() + b"\n")
        return 0
    s = fp.sysimage
    print(f"module graph {fp.hash}  ({fp.reference})")
    print(f"Julia {fp.julia_version} on {fp.arch}; sysimage "
          + ("default" if s is None else f"{s.blake3[:16]}..., clone {s.clone_index} ({s.clone_name})"))
    width = max((len(p.name) for p in fp.packages), default=0)
    for p in fp.packages:
        if p.verdict == "load":
            print(f"  {p.name:<{width}}  {p.cache}  build {p.build_id}")
        else:
            print(f"  {p.name:<{width}}  would {'recompile' if p.verdict == 'recompile' else 'fail'}: {p.reason}")
    return 0


def _diff(args: argparse.Namespace, a: str, b: str) -> int:
    from depotdelivery.store.fingerprint import compare, load

    diff = compare(load(a), load(b))
    if args.json:
        from depotdelivery.cli import emit_json

        emit_json(diff.to_dict())
    elif diff.same:
        print(f"same module graph ({diff.a.hash})")
    else:
        sys.stdout.write("".join(line + "\n" for line in diff.lines()))
    return 0 if diff.same else ModuleGraphMismatchError.exit_code


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from depotdelivery.cli._node import _add_config

    p = sub.add_parser("fingerprint", help="the module graph Julia will load here (canonical JSON, one hash); "
                                           "`fingerprint diff A B` explains two")
    _add_config(p)
    p.add_argument("--json", action="store_true", help="print the fingerprint document (canonical JSON)")
    p.add_argument("--reference", metavar="LABEL", help="who made it (default: host name and variant)")
    p.add_argument("words", nargs="*", metavar="diff A B", help="compare two fingerprint files (exit 12 if they differ)")
    p.set_defaults(handler=_cmd_fingerprint)
