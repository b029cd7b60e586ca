"""Publisher-side subcommands: ``keygen``, ``publish``, ``channel``, ``sign``, ``verify``, ``repo-gc`` (wiring only)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from depotdelivery.errors import UsageError

__all__ = ["register"]

_TRUST_ENV = "DEPOTDELIVERY_TRUSTED_KEYS"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the repository subcommands to the parser."""
    p = sub.add_parser("keygen", help="create an Ed25519 signing key (KEY, mode 0600) and KEY.pub",
                       description="Create a signing key. Copy KEY.pub into every node's trusted-keys directory.")
    p.add_argument("--out", required=True, metavar="KEY", help="private key file to create")
    p.add_argument("--force", action="store_true", help="overwrite an existing key file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_keygen)
    _register_publish(sub)
    _register_channel_and_sign(sub)
    _register_verify_and_gc(sub)


def _register_publish(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("publish", help="publish a depot (+ per-CPU variants) as a signed, immutable release",
                       description="Hash, list, sign and atomically commit a release under releases/NAME/VERSION.")
    _repo_arg(p)
    p.add_argument("--name", required=True, help="release name, e.g. hep")
    p.add_argument("--version", required=True, help="release version, e.g. 2026.11")
    p.add_argument("--depot", metavar="DIR", help="the shared depot (default with --in-place: already in place)")
    p.add_argument("--variant", action="append", default=[], metavar="TARGET=DIR[,sysimage=FILE][,arch=A]",
                   help="a per-microarchitecture variant directory (repeatable)")
    p.add_argument("--cpu-target", action="append", default=[], metavar="TARGET=STRING",
                   help="the JULIA_CPU_TARGET the variant was built with (default: the target name)")
    p.add_argument("--key", required=True, action="append", metavar="KEY",
                   help="private signing key (from keygen); repeat it to sign with several keys")
    p.add_argument("--channel", help="also point this channel at the release")
    p.add_argument("--expires", default="90d", metavar="DURATION", help="channel expiry: 30d, 12h, never (default 90d)")
    p.add_argument("--cvmfs", metavar="FQRN", help="write inside `cvmfs_server transaction FQRN` ... `publish`")
    p.add_argument("--storage", choices=("posix", "cvmfs", "cvmfs-mtime-ns"),
                   help="record what the repository's storage preserves (default with --cvmfs: cvmfs, whole-second "
                        "mtimes; cvmfs-mtime-ns: CVMFS_ENABLE_MTIME_NS=true; cvmfs without --cvmfs: reaches CVMFS "
                        "another way)")
    p.add_argument("--in-place", action="store_true",
                   help="the content already sits at releases/NAME/VERSION (built at its final path, variants "
                        "included): only hash, sign, commit")
    p.add_argument("--fingerprint", action="append", default=[], metavar="[TARGET=]FILE",
                   help="record the module-graph fingerprint a CI reference host made of this build "
                        "(`depotdelivery fingerprint --json`) in the variant (default TARGET: the one it names); repeatable")
    p.add_argument("--julia-version", help="Julia version (default: from the depot's compiled/vX.Y)")
    p.add_argument("--project", help="environment to activate, relative to the depot (default: environments/NAME)")
    p.add_argument("--no-hash-cache", action="store_true", help="re-hash every file instead of trusting unchanged stat data")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_publish)


def _register_channel_and_sign(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("channel", help="show, set, roll back or list the history of a release channel",
                       description="Channels are signed documents whose seq only grows; a rollback is a new document.")
    p.add_argument("action", choices=("show", "set", "history", "rollback"))
    _repo_arg(p)
    p.add_argument("--channel", required=True)
    p.add_argument("--release", metavar="NAME/VERSION", help="set: the release; rollback: an earlier one (default: the previous)")
    p.add_argument("--key", action="append", metavar="KEY", help="signing key (set, rollback; repeatable)")
    p.add_argument("--expires", default="90d", metavar="DURATION", help="30d, 12h, never (default 90d)")
    p.add_argument("--cvmfs", metavar="FQRN", help="write inside a CVMFS transaction")
    _trust_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_channel)

    p = sub.add_parser("sign", help="add a key's signature to a published release or channel (co-signing)",
                       description="Adds signatures to the document's .sig (the document is never changed); "
                                   "idempotent. For nodes whose trusted-keys directory holds a threshold file.")
    _repo_arg(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--release", metavar="NAME/VERSION", help="co-sign this release's release.json")
    which.add_argument("--channel", help="co-sign this channel's current document")
    p.add_argument("--key", required=True, action="append", metavar="KEY", help="private signing key (repeatable)")
    p.add_argument("--cvmfs", metavar="FQRN", help="write inside a CVMFS transaction")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_sign)


def _register_verify_and_gc(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("verify", help="re-hash a release (or the whole repository) and check its signatures",
                       description="Reports every mismatch with its path; exit 4 on integrity, 5 on trust failures.")
    p.add_argument("--repo", metavar="R",
                   help="repository root; default: the one a node uses (DEPOTDELIVERY_REPO, the config files)")
    p.add_argument("--release", metavar="NAME/VERSION", help="only this release (default: every release and channel)")
    p.add_argument("--trust", metavar="DIR",
                   help=f"trusted public keys (*.pub + revoked); default: as a node finds them (${_TRUST_ENV}, "
                        "the config files, /etc/depotdelivery/keys)")
    p.add_argument("--no-signatures", action="store_true",
                   help="only re-hash, do not check signatures (when no trusted-keys directory exists here)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_verify)

    p = sub.add_parser("repo-gc", help="remove releases no channel needs, and leftover temporaries",
                       description="Never removes a release a channel points at, nor a temporary whose "
                                   "writer (a publish, a channel update) still holds its lock.")
    _repo_arg(p)
    p.add_argument("--keep-last", type=int, default=3, metavar="N",
                   help="keep the last N releases of each channel's history (and the N newest unchannelled) (default 3)")
    p.add_argument("--dry-run", action="store_true", help="only report what would be removed")
    p.add_argument("--cvmfs", metavar="FQRN", help="remove inside a CVMFS transaction")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_repo_gc)


def _repo_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", required=True, metavar="R", help="repository root (a directory or /cvmfs/FQRN/...)")


def _trust_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust", metavar="DIR", default=os.environ.get(_TRUST_ENV),
                   help=f"trusted public keys (*.pub + revoked); default ${_TRUST_ENV}")


def _trust(args: argparse.Namespace) -> Any:
    if not args.trust:
        return None
    from depotdelivery.store.keys import TrustStore

    return TrustStore.from_dir(args.trust)


def _verify_trust(args: argparse.Namespace) -> Any:
    """The trusted keys ``verify`` checks signatures with: ``--trust``, else the directory a node
    would use (node.config's resolution); None only with ``--no-signatures``."""
    from depotdelivery.errors import TrustError
    from depotdelivery.node.config import resolve
    from depotdelivery.store.keys import TrustStore

    if args.no_signatures:
        if args.trust:
            raise UsageError("verify: --trust and --no-signatures exclude each other")
        return None
    if args.trust:
        return TrustStore.from_dir(args.trust)
    config = resolve()
    if not os.path.isdir(config.trusted_keys):
        raise TrustError(f"trusted-keys directory {config.trusted_keys} ({config.sources['trusted_keys']}) does not "
                         "exist: pass --trust DIR, or --no-signatures to re-hash without checking signatures")
    return TrustStore.from_dir(config.trusted_keys)


def _node_repo() -> str:
    """The repository a node is configured for (node.config's resolution), for ``verify``."""
    from depotdelivery.node.config import resolve

    config = resolve()
    if config.repo is None:
        raise UsageError("verify: no repository: pass --repo R or set DEPOTDELIVERY_REPO (or `repo` in a config file)")
    return config.repo


def _keygen(args: argparse.Namespace) -> int:
    from depotdelivery.cli import emit_json
    from depotdelivery.store.keys import keygen

    priv, pub, keyid = keygen(args.out, force=args.force)
    if args.json:
        emit_json({"private_key": str(priv), "public_key": str(pub), "keyid": keyid})
    else:
        print(f"key {keyid}: private {priv} (keep it secret), public {pub} (copy to the nodes' trusted-keys directory)")
    return 0


def _parse_variants(specs: list[str], cpu_targets: list[str], in_place_dir: Path | None = None) -> dict[str, Any]:
    from depotdelivery.publisher.publish import VariantInput

    targets: dict[str, str] = {}
    for spec in cpu_targets:
        t, sep, value = spec.partition("=")
        if not sep or not t or not value:
            raise UsageError(f"--cpu-target {spec!r}: expected TARGET=STRING")
        targets[t] = value
    out: dict[str, Any] = {}
    for spec in specs:
        target, sep, rest = spec.partition("=")
        if not sep or not target or not rest:
            raise UsageError(f"--variant {spec!r}: expected TARGET=DIR[,sysimage=FILE][,arch=A]")
        directory, *opts = rest.split(",")
        extra: dict[str, str] = {}
        for opt in opts:
            k, sep, v = opt.partition("=")
            if k not in ("sysimage", "arch") or not sep or not v:
                raise UsageError(f"--variant {spec!r}: unknown option {opt!r} (sysimage=FILE, arch=x86_64|aarch64)")
            extra[k] = v
        if target in out:
            raise UsageError(f"--variant {target} given twice")
        out[target] = VariantInput(dir=Path(directory), sysimage=Path(extra["sysimage"]) if "sysimage" in extra else None,
                                   arch=extra.get("arch"), cpu_target=targets.pop(target, None))
    if in_place_dir is not None:  # --in-place: the variants already sit under releases/N/V/variants/
        out.update({t: VariantInput(dir=in_place_dir / t, cpu_target=c) for t, c in targets.items()})
    elif targets:
        raise UsageError(f"--cpu-target for {', '.join(targets)} which is not a --variant")
    return out


def _fingerprints(specs: list[str]) -> dict[str, list[Any]]:
    """``--fingerprint [TARGET=]FILE`` -> target -> fingerprints (the target a file names in its
    meta when not given)."""
    from depotdelivery.store.fingerprint import load

    out: dict[str, list[Any]] = {}
    for spec in specs:
        target, sep, path = spec.partition("=")
        if not sep:
            target, path = "", spec
        fp = load(path)
        target = target or str(fp.meta.get("variant") or "")
        if not target:
            raise UsageError(f"--fingerprint {spec}: the file names no variant; give TARGET=FILE")
        out.setdefault(target, []).append(fp)
    return out


def _publish(args: argparse.Namespace) -> int:
    from depotdelivery.cli import emit_json
    from depotdelivery.cli.durations import parse_expiry
    from depotdelivery.publisher.progress import ProgressLine
    from depotdelivery.publisher.publish import publish
    from depotdelivery.store.keys import load_private_key
    from depotdelivery.units import human_bytes

    in_place_dir = Path(args.repo) / "releases" / args.name / args.version / "variants" if args.in_place else None
    variants = _parse_variants(args.variant, args.cpu_target, in_place_dir)
    keys = [load_private_key(k) for k in args.key]
    progress = None if args.quiet or args.json else ProgressLine(sys.stderr)
    r = publish(args.repo, args.name, args.version, args.depot, variants, keys, channel=args.channel,
                expires=parse_expiry(args.expires), cvmfs=args.cvmfs, storage=args.storage, in_place=args.in_place,
                julia_version=args.julia_version, project=args.project, progress=progress,
                use_hash_cache=not args.no_hash_cache, fingerprints=_fingerprints(args.fingerprint))
    for w in r.warnings:
        print(f"depotdelivery: warning: {w}", file=sys.stderr)
    if args.json:
        emit_json(r.to_dict())
        return 0
    if r.created:
        print(f"published {r.ref} {r.release_id}: {r.files} files, {human_bytes(r.bytes)} "
              f"({r.linked_files} hard-linked to earlier releases, {human_bytes(r.copied_bytes)} copied) "
              f"in {r.seconds:.2f} s")
    else:
        print(f"{r.ref} is already published with identical content ({r.release_id}); nothing written")
    if r.channel_seq is not None:
        print(f"channel {args.channel} -> {r.ref} (seq {r.channel_seq})")
    return 0


def _sign(args: argparse.Namespace) -> int:
    from depotdelivery.cli import emit_json
    from depotdelivery.publisher.cosign import cosign
    from depotdelivery.store.keys import load_private_key

    done = cosign(args.repo, [load_private_key(k) for k in args.key], release=args.release, channel=args.channel,
                  cvmfs=args.cvmfs)
    if args.json:
        emit_json(done.to_dict())
    elif done.added:
        print(f"{done.subject}: signed by {', '.join(done.added)} ({done.signatures} signature(s) in {done.sig_path})")
    else:
        print(f"{done.subject}: already signed by {', '.join(done.already)}; nothing written")
    return 0


def _channel(args: argparse.Namespace) -> int:
    from depotdelivery.cli import emit_json
    from depotdelivery.cli.durations import parse_expiry
    from depotdelivery.publisher import channels
    from depotdelivery.store.keys import load_private_key
    from depotdelivery.store.repo import Repository

    if args.action in ("set", "rollback"):
        if not args.key:
            raise UsageError(f"channel {args.action} needs --key KEY")
        keys = [load_private_key(k) for k in args.key]
        expires = parse_expiry(args.expires)
        if args.action == "set":
            if not args.release:
                raise UsageError("channel set needs --release NAME/VERSION")
            ch = channels.set_channel(args.repo, args.channel, args.release, keys, expires=expires, cvmfs=args.cvmfs)
        else:
            ch = channels.rollback_channel(args.repo, args.channel, keys, to=args.release, expires=expires,
                                           cvmfs=args.cvmfs)
        if args.json:
            emit_json(ch.summary())
        else:
            print(f"channel {ch.channel} -> {ch.release} (seq {ch.seq}, expires {ch.expires or 'never'})")
        return 0
    repo = Repository.open(args.repo)
    ch = repo.read_channel(args.channel, _trust(args), check_expiry=False)
    if args.action == "show":
        if args.json:
            emit_json(ch.summary())
        else:
            state = "EXPIRED" if ch.expired() else "valid"
            print(f"channel {ch.channel} -> {ch.release} ({ch.release_hash[:16]}) seq {ch.seq}, issued {ch.issued}, "
                  f"expires {ch.expires or 'never'} ({state}){'' if args.trust else ', signature not checked (no --trust)'}")
        return 0
    entries = ch.history()
    if args.json:
        emit_json({"channel": ch.channel, "history": [e.to_dict() for e in entries]})
    else:
        for e in entries:
            print(f"{e.seq:>6}  {e.issued}  {e.release}  {e.release_hash[:16]}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from depotdelivery.cli import emit_json
    from depotdelivery.errors import IntegrityError, TrustError
    from depotdelivery.store.verify import REPOSITORY, verify
    from depotdelivery.units import human_bytes

    trust = _verify_trust(args)
    root = args.repo or _node_repo()
    try:
        reports = verify(root, args.release, trust)
    except (IntegrityError, TrustError) as exc:
        failed = getattr(exc, "reports", None)
        if failed is None:
            raise
        if args.json:
            emit_json({"ok": False, "signatures_checked": trust is not None, "reports": [r.to_dict() for r in failed]})
        else:
            for r in failed:
                for p in r.problems:
                    print(f"{r.subject}: {p}")
            _verify_warnings(failed)
        print(f"depotdelivery: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        emit_json({"ok": True, "signatures_checked": trust is not None, "reports": [r.to_dict() for r in reports]})
        return 0
    for r in reports:
        if r.subject == REPOSITORY:
            continue  # only warnings, printed below
        signed = f", signed by {r.signed_by}" if r.signed_by else ""
        what = (f"points at {r.release} ({r.release_id[:16]})" if r.release is not None else
                f"{r.files} files, {human_bytes(r.bytes)}")
        print(f"ok {r.subject}: {what}{signed}")
    _verify_warnings(reports)
    if trust is None:
        print("depotdelivery: signatures were NOT checked (--no-signatures): only the hashes were verified",
              file=sys.stderr)
    return 0


def _verify_warnings(reports: list[Any]) -> None:
    """What verify found that fails nothing (leftover temporaries), one stderr line each."""
    for r in reports:
        for w in r.warnings:
            print(f"depotdelivery: warning: {w}", file=sys.stderr)


def _repo_gc(args: argparse.Namespace) -> int:
    from depotdelivery.cli import emit_json
    from depotdelivery.publisher.gc import repo_gc
    from depotdelivery.units import human_bytes

    r = repo_gc(args.repo, keep_last=args.keep_last, dry_run=args.dry_run, cvmfs=args.cvmfs)
    if args.json:
        emit_json(r.to_dict())
        return 0
    verb = "would remove" if r.dry_run else "removed"
    for ref in r.removed:
        print(f"{verb} {ref}")
    for ref, why in sorted(r.kept.items()):
        print(f"kept {ref}: {why}")
    for path in r.debris_removed:
        print(f"{verb} leftover temporary {path}")
    for path, why in sorted(r.debris_kept.items()):
        print(f"kept temporary {path}: {why}")
    print(f"{verb} {len(r.removed)} release(s), {human_bytes(r.freed_bytes)}"
          + (f", and {len(r.debris_removed)} leftover temporaries" if r.debris_removed else ""))
    return 0
