"""The ``build`` subcommand: Julia projects -> a release tree (and optionally the published
release), one sysimage and cache set per CPU target (wiring only)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from depotdelivery.errors import DepotDeliveryError, UsageError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the build subcommand to the parser."""
    p = sub.add_parser(
        "build", help="build a release from Julia projects: shared depot + one sysimage and cache set per CPU target",
        description="Instantiate the projects into the release's shared depot, then per variant build the sysimage "
                    "with PackageCompiler and the variant's JULIA_CPU_TARGET and the package caches with that "
                    "sysimage loaded; every step is a separate Julia process whose script is kept in the build "
                    "record. A re-run resumes what finished with the same inputs.")
    p.add_argument("--repo", required=True, metavar="R", help="repository root (a directory or /cvmfs/FQRN/...)")
    p.add_argument("--name", required=True, help="release name, e.g. hep")
    p.add_argument("--version", required=True, help="release version, e.g. 2026.11")
    p.add_argument("--project", required=True, action="append", metavar="DIR",
                   help="a Julia project (Project.toml + Manifest.toml); repeatable, the first is the one jobs activate")
    p.add_argument("--julia", default="julia", metavar="PATH", help="the julia binary to build with (default: julia)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=CPU_TARGET",
                   help="a variant and its JULIA_CPU_TARGET, e.g. haswell=haswell,-rdrnd (repeatable; default: "
                        "the --variant-set recommended for the Julia version)")
    p.add_argument("--variant-set", default="microarch", choices=("microarch", "official"),
                   help="default variants: one per common microarchitecture, or one multi-target like Julia's "
                        "release builds (default: microarch)")
    p.add_argument("--sysimage-packages", metavar="P,...",
                   help="packages baked into each sysimage (default: PackageCompiler's, every direct dependency "
                        "of the first project)")
    p.add_argument("--in-place", action="store_true",
                   help="build at the release's final path releases/NAME/VERSION (required for Julia 1.10)")
    p.add_argument("--build-dir", metavar="DIR",
                   help="without --in-place: where to build (default: depotdelivery-build/NAME/VERSION)")
    p.add_argument("--work-dir", metavar="DIR",
                   help="logs and scratch depots, outside the release (default: ~/.cache/depotdelivery/build/...)")
    p.add_argument("--tools-depot", metavar="DIR",
                   help="the depot whose default environment has PackageCompiler (default: the first entry of "
                        "$JULIA_DEPOT_PATH, else ~/.julia)")
    p.add_argument("--offline", action="store_true", help="JULIA_PKG_OFFLINE=true for instantiate too")
    p.add_argument("--cvmfs", metavar="FQRN",
                   help="publish into this CVMFS repository (needs --publish); with --in-place the build itself "
                        "runs inside the same `cvmfs_server transaction FQRN`")
    p.add_argument("--publish", action="store_true", help="sign and publish the release when the build succeeds")
    p.add_argument("--key", action="append", default=[], metavar="KEY", help="signing key for --publish (repeatable)")
    p.add_argument("--channel", help="with --publish: point this channel at the release")
    p.add_argument("--expires", default="90d", metavar="DURATION", help="channel expiry (default 90d)")
    p.add_argument("--jobs", type=int, default=1, metavar="J", help="variants built at once (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout: one per event, the result last")
    p.set_defaults(handler=_build)


class _Progress:
    """Step lines on stderr (human), or JSON lines on stdout (``--json``)."""

    def __init__(self, json_lines: bool, quiet: bool) -> None:
        self.json, self.quiet, self.t0 = json_lines, quiet, time.monotonic()

    def __call__(self, event: dict[str, Any]) -> None:
        if self.json:
            sys.stdout.write(json.dumps({"time": round(time.monotonic() - self.t0, 3), **event}, sort_keys=True) + "\n")
            sys.stdout.flush()
            return
        if self.quiet:
            return
        who = f"[{event.get('variant') or 'shared'}]"
        kind = event["event"]
        if kind == "step":
            done = f" done in {event['seconds']:.1f} s" if event["state"] == "done" and "seconds" in event else (
                " done" if event["state"] == "done" else " ...")
            line = f"{who} {event['step']}{done}"
        elif kind in ("lint", "warning"):
            line = f"{who} warning: {event['message']}"
        elif kind in ("resumed", "rebuild", "removed"):
            line = f"{who} {kind}: {event['reason']}"
        else:
            return
        print(f"depotdelivery: {line}", file=sys.stderr, flush=True)


def _build(args: argparse.Namespace) -> int:
    from depotdelivery.cli.durations import parse_expiry
    from depotdelivery.publisher.build import build_release, parse_variant_args
    from depotdelivery.store.keys import load_private_key

    if args.publish != bool(args.key):
        raise UsageError("--publish needs --key KEY" if args.publish else "--key is for --publish")
    progress = _Progress(args.json, args.quiet)
    try:
        r = build_release(
            args.repo, args.name, args.version, args.project, args.julia, parse_variant_args(args.variant) or None,
            variant_set=args.variant_set, in_place=args.in_place, build_dir=args.build_dir, work_dir=args.work_dir,
            sysimage_packages=[p for p in args.sysimage_packages.split(",") if p] if args.sysimage_packages else None,
            cvmfs=args.cvmfs, keys=[load_private_key(k) for k in args.key], channel=args.channel,
            expires=parse_expiry(args.expires), jobs=args.jobs, offline=args.offline,
            tools_depot=args.tools_depot, events=progress)
    except DepotDeliveryError as exc:
        if args.json:
            progress({"event": "error", "message": str(exc), "exit_code": exc.exit_code})
        raise
    if args.json:
        progress({"event": "result", **r.to_dict()})
        return 0
    for w in r.warnings:
        print(f"depotdelivery: warning: {w}", file=sys.stderr)
    parts = [f"{v.name} ({'resumed' if v.resumed else f'{v.caches} caches'})" for v in r.variants]
    print(f"built {args.name}/{args.version} with Julia {r.julia_version} at {r.path}: {', '.join(parts)} "
          f"in {r.seconds:.1f} s")
    if r.published is not None:
        pub = r.published
        print(f"published {pub['release']} {pub['release_id']}" if pub["created"] else
              f"{pub['release']} was already published with identical content ({pub['release_id']})")
        if pub.get("channel_seq") is not None:
            print(f"channel {args.channel} -> {pub['release']} (seq {pub['channel_seq']})")
    else:
        where = "--in-place" if args.in_place else f"--depot {r.path}/depot --variant NAME={r.path}/variants/NAME ..."
        print(f"publish it with: depotdelivery publish --repo {args.repo} --name {args.name} --version {args.version} "
              f"{where} --key KEY")
    return 0
