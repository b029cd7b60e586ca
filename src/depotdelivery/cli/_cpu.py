"""The ``depotdelivery detect`` subcommand: this host's CPU as depotdelivery, archspec and Julia see it."""
from __future__ import annotations

import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``detect`` to the parser."""
    from depotdelivery.cpu.host import DEFAULT_JULIA_VERSION

    parser = sub.add_parser(
        "detect",
        help="show the host CPU: features, archspec microarchitecture, Julia's CPU name",
        description="Detect the host CPU (CPUID, else /proc/cpuinfo; DEPOTDELIVERY_MICROARCH "
        "overrides), or describe a recorded /proc/cpuinfo or CPUID dump.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--cpuinfo", metavar="FILE", help="a recorded /proc/cpuinfo")
    source.add_argument("--cpuid-dump", metavar="FILE",
                        help="a CPUID dump, one 'eax_in, ecx_in, eax, ebx, ecx, edx' line per leaf")
    parser.add_argument("--why-not", metavar="TARGET",
                        help="explain why an archspec microarchitecture is not this host's")
    parser.add_argument("--julia-version", metavar="V", default=DEFAULT_JULIA_VERSION,
                        help=f"Julia version for the Julia names (default {DEFAULT_JULIA_VERSION})")
    parser.set_defaults(handler=_detect)


def _detect(args: argparse.Namespace) -> int:
    from depotdelivery.cli import emit_json
    from depotdelivery.cpu import detect

    host = detect(cpuinfo=args.cpuinfo, cpuid_dump=args.cpuid_dump)
    info = host.to_dict(args.julia_version)
    if args.why_not:
        info["why_not"] = {"target": args.why_not, "reason": host.why_not(args.why_not)}
    if args.json:
        emit_json(info)
        return 0
    width = 16
    for key in ("arch", "vendor", "brand", "family", "model", "stepping", "microarch",
                "generic", "julia_cpu", "source"):
        label = f"julia_cpu ({args.julia_version})" if key == "julia_cpu" else key
        value = f"{info[key]} (from {info['julia_cpu_source']})" if key == "julia_cpu" else info[key]
        print(f"{label + ':':<{width + 6}} {value}")
    print(f"{'features:':<{width + 6}} {' '.join(info['features'])}")
    print(f"{'julia_features:':<{width + 6}} {' '.join(info['julia_features'])}")
    if args.why_not:
        print(f"{'why not ' + args.why_not + ':':<{width + 6}} {info['why_not']['reason']}")
    return 0
