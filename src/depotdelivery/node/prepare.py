"""prepare(): configuration -> verified channel/release -> variant -> lease -> hydrated depot -> Prepared.

The hot path (depot already complete) reads a few small JSON records and takes the job's
lease; it takes no lock, verifies no signature it already verified for the same bytes, and
imports neither ``cryptography`` nor ``archspec`` (nor ``filelock``, ``subprocess``, ``tomllib``).
"""
from __future__ import annotations

import json
import os
import time
# typing costs ~4 ms to import and these names are only annotations (postponed by
# ``from __future__ import annotations``): the node's hot path never imports it
TYPE_CHECKING = False

from depotdelivery.errors import CacheError, UsageError
from depotdelivery.node import trust
from depotdelivery.node.cache import COMPLETE, RECORD_FORMAT, NodeCache, cache_error, crc32_hex, rmtree
from depotdelivery.node.config import Config, resolve
from depotdelivery.node.locks import Gate, Lease, acquire_lease, hydration_lock

if TYPE_CHECKING:
    from typing import Any, Sequence
    from pathlib import Path

    from depotdelivery.cpu import HostCPU
    from depotdelivery.node.hydrate import Layer
    from depotdelivery.store.release import Release, Variant

__all__ = ["RELOCATING_MODES", "Prepared", "relocation_breaks_caches", "depot_key", "detect_host", "home_depot_joins",
           "julia_index", "layers", "names_sysimage", "prepare", "prepare_config", "repo_id_of"]

HYDRATION_LOG = "hydrations.log"


class Prepared:
    """A ready depot stack for one job: the environment and Julia arguments that use it.

    Holds the job's lease (an open, inheritable flock-ed descriptor) for as long as this
    process, or a process it ``exec``s, runs. (A plain slotted class: ``dataclasses`` costs
    more to import than a warm prepare() takes.)"""

    __slots__ = ("depot_path", "env", "julia_args", "release", "release_id", "variant", "mode", "key", "depot",
                 "why", "hydrated", "warnings", "timings", "lease")

    def __init__(self, *, depot_path: tuple[str, ...], env: dict[str, str], julia_args: tuple[str, ...],
                 release: str, release_id: str, variant: str, mode: str, key: str, depot: str, why: str,
                 hydrated: bool, warnings: tuple[str, ...] = (), timings: dict[str, float] | None = None,
                 lease: Lease | None = None) -> None:
        self.depot_path = depot_path
        self.env = env  # JULIA_DEPOT_PATH, JULIA_PROJECT, JULIA_PKG_OFFLINE, JULIA_CPU_TARGET, ...
        self.julia_args = julia_args  # ("--sysimage", path)
        self.release = release  # NAME/VERSION
        self.release_id = release_id
        self.variant = variant
        self.mode = mode
        self.key = key
        self.depot = depot  # the writable first depot
        self.why = why
        self.hydrated = hydrated  # True if this call built the depot
        self.warnings = warnings
        self.timings = {} if timings is None else timings  # milliseconds per phase
        self.lease = lease

    def __repr__(self) -> str:
        return f"Prepared(release={self.release!r}, variant={self.variant!r}, mode={self.mode!r}, depot={self.depot!r})"

    def apply(self) -> None:
        """Export :attr:`env` into ``os.environ`` (for code that starts Julia itself)."""
        os.environ.update(self.env)

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` with :attr:`julia_args` inserted right after the first ``julia``
        executable (``srun julia x.jl`` works too), unless it already names a sysimage."""
        out = list(argv)
        i = julia_index(out)
        if i is None or not self.julia_args or names_sysimage(out[i + 1:]):
            return out
        return out[: i + 1] + list(self.julia_args) + out[i + 1:]

    def to_dict(self) -> dict[str, Any]:
        return {"depot_path": list(self.depot_path), "env": dict(self.env), "julia_args": list(self.julia_args),
                "release": self.release, "release_id": self.release_id, "variant": self.variant,
                "mode": self.mode, "key": self.key, "depot": self.depot, "why": self.why,
                "hydrated": self.hydrated, "warnings": list(self.warnings), "timings": dict(self.timings),
                "lease": None if self.lease is None else str(self.lease.path)}


def julia_index(argv: Sequence[str]) -> int | None:
    """Index of the first argument naming a Julia executable (``julia``, ``julia-1.11``, a path)."""
    for i, arg in enumerate(argv):
        base = os.path.basename(arg)
        if base == "julia" or (base.startswith("julia-") and base[6:7].isdigit()):
            return i
    return None


# Julia's options that take a value, as its getopt_long sees them (src/jloptions.c, v1.12:
# shortopts "+vhqH:e:E:L:J:C:it:p:O:g:m:" and the required_argument long options). Optional
# ones (--project, --optimize, --code-coverage, ...) only take a value after '='.
_SHORT_WITH_VALUE = frozenset("HeELJCtpOgm")
_LONG_WITH_VALUE = frozenset({
    "banner", "home", "eval", "module", "print", "load", "bug-report", "sysimage", "sysimage-native-code",
    "compiled-modules", "pkgimages", "cpu-target", "procs", "threads", "gcthreads", "machine-file", "color",
    "history-file", "startup-file", "compile", "check-bounds", "output-bc", "output-unopt-bc", "output-o",
    "output-asm", "output-ji", "output-incremental", "depwarn", "warn-overwrite", "warn-scope", "inline",
    "polly", "trace-compile", "math-mode", "handle-signals", "bind-to", "permalloc-pkgimg", "heap-size-hint",
})


def names_sysimage(args: Sequence[str]) -> bool:
    """Whether Julia's own options in ``args`` (what follows the executable) name a sysimage
    (``-J``/``--sysimage``). Like Julia's option parser ("+": no permutation) it stops at the
    program file, at ``--`` and after ``-m``/``--module``, and skips options' values, so
    ``julia x.jl --sysimage y`` (arguments of x.jl) or ``julia -e '-J'`` name none."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--" or arg == "-" or not arg.startswith("-"):
            return False
        if arg.startswith("--"):
            name, eq, _value = arg[2:].partition("=")
            if name == "sysimage":
                return True
            if name == "module":
                return False
            i += name in _LONG_WITH_VALUE and not eq  # the value is the next argument
        else:
            for j, c in enumerate(arg[1:], 2):  # bundled short options: -qJ x, -qJx
                if c in _SHORT_WITH_VALUE:
                    if c == "J":
                        return True
                    if c == "m":
                        return False
                    i += j == len(arg)  # nothing attached: the value is the next argument
                    break
        i += 1
    return False


def depot_key(release_id: str, variant: str, mode: str) -> str:
    return f"{release_id[:16]}-{variant}-{mode}"


def prepare(**overrides: Any) -> Prepared:
    """Prepare the depot stack for a job on this node (see docs/configuration.md for the keys:
    ``repo``, ``channel``, ``release``, ``mode``, ``cache``, ``trusted_keys``, ``microarch``,
    ``cpuinfo``, ``lock_timeout``). ``host=HostCPU`` may be passed to skip detection."""
    t0 = time.perf_counter()
    host = overrides.pop("host", None)
    return prepare_config(resolve(overrides), host=host, started=t0)


def _ms(t: float) -> float:
    return round((time.perf_counter() - t) * 1000, 3)


def repo_id_of(root: str) -> str:
    """The repository id from ``depotdelivery-repo.json`` (one small read); anything unusual
    goes through the store's reader for the proper error (``cvmfs_config probe`` hint)."""
    try:
        with open(os.path.join(root, "depotdelivery-repo.json"), "rb") as f:
            repo_id = json.loads(f.read()).get("id")
        if isinstance(repo_id, str) and repo_id.isalnum():
            return repo_id
    except (OSError, ValueError, AttributeError, RecursionError):  # the store reader names the problem
        pass
    from depotdelivery.store.repo import Repository

    return Repository.open(root).repo_id


def _host_key(cfg: Config) -> str:
    """What the cached selection depends on besides the release: the machine and overrides.
    (A cache shared between nodes of different CPUs with equal host names is not supported.)"""
    u = os.uname()
    return crc32_hex(f"{u.nodename}\0{u.machine}\0{cfg.microarch or ''}\0{cfg.cpuinfo or ''}")


class _Cold(Exception):
    """The hot path found a record missing: the caller redoes the work behind the gate."""


def prepare_config(cfg: Config, *, host: "HostCPU | None" = None, started: float | None = None) -> Prepared:
    """:func:`prepare` for an already resolved :class:`Config`.

    First the hot path, lock-free, from the records of earlier calls. If a record is missing,
    the job queues on the cache's gate for this channel (or pinned release): the first one
    verifies, selects and hydrates; the others then find the records and leave at once, so 64
    simultaneous cold jobs cost about one cold job."""
    t0 = time.perf_counter() if started is None else started
    if cfg.repo is None:
        raise UsageError("no repository configured: pass repo=..., use --repo, or set DEPOTDELIVERY_REPO "
                         "(see docs/configuration.md)")
    cache = NodeCache(cfg.cache)
    repo_id = repo_id_of(cfg.repo)
    try:
        return _attempt(cfg, cache, repo_id, host, t0, cold=False)
    except _Cold:
        pass
    t = time.perf_counter()
    deadline = time.monotonic() + cfg.lock_timeout
    what = cfg.release.replace("/", "+") if cfg.release else cfg.channel
    with Gate(os.path.join(cache.locks, f"prepare-{repo_id}-{what}.lock")) as gate:
        while True:
            if gate.try_lead():
                try:
                    prepared = _attempt(cfg, cache, repo_id, host, t0, cold=True)
                finally:
                    gate.unlock()
                break
            gate.wait_free(deadline, cfg.lock_timeout)
            try:
                prepared = _attempt(cfg, cache, repo_id, host, t0, cold=False)
                break
            except _Cold:
                continue  # the leader failed or did other work: lead ourselves
    prepared.timings["cold"] = _ms(t)  # behind the gate: waiting for a leader, or leading
    return prepared


def _attempt(cfg: Config, cache: NodeCache, repo_id: str, host: "HostCPU | None", t0: float,
             *, cold: bool) -> Prepared:
    timings: dict[str, float] = {}
    root = cfg.repo
    assert root is not None
    release: Release | None = None
    if cfg.release is not None:
        ref = cfg.release
        release_id = trust.remembered_release_id(cache, root, repo_id, ref, cfg.trusted_keys)
        if release_id is None:
            if not cold:
                raise _Cold
            release = trust.load_release(cache, root, repo_id, ref, cfg.trusted_keys, expected_id=None)
            release_id = release.id
    else:
        facts = trust.verified_channel(cache, root, repo_id, cfg.channel, cfg.trusted_keys, remembered_only=not cold)
        if facts is None:
            raise _Cold
        ref, release_id = facts.release, facts.release_hash
    timings["verify"] = _ms(t0)

    t = time.perf_counter()
    selection_path = os.path.join(cache.selections, f"{release_id[:16]}-{_host_key(cfg)}.json")
    chosen = cache.read_json(selection_path)
    if not (isinstance(chosen, dict) and isinstance(chosen.get("variant"), str)):
        if not cold:
            raise _Cold
        if release is None:
            release = trust.load_release(cache, root, repo_id, ref, cfg.trusted_keys, expected_id=release_id)
        chosen = _select(cfg, cache, release, host, selection_path)
    timings["select"] = _ms(t)

    t = time.perf_counter()
    key = depot_key(release_id, chosen["variant"], cfg.mode)
    # The lease comes before the completeness check: gc checks leases, renames the depot away
    # and checks again, so a job that saw the depot complete is always seen by gc.
    lease = acquire_lease(cache.leases, key)
    record = cache.read_complete(key)
    hydrated = False
    if record is None or (record.get("mount") and not os.path.ismount(record["mount"])):
        if not cold:
            raise _Cold
        if release is None:
            release = trust.load_release(cache, root, repo_id, ref, cfg.trusted_keys, expected_id=release_id)
        record, hydrated = _hydrate(cfg, cache, release, chosen["variant"], key)
    timings["hydrate" if hydrated else "lease"] = _ms(t)
    timings["total"] = _ms(t0)
    return Prepared(depot_path=tuple(record["depot_path"]), env=dict(record["env"]),
                    julia_args=tuple(record["julia_args"]), release=record["release"]["ref"],
                    release_id=record["release"]["id"], variant=record["variant"], mode=record["mode"],
                    key=key, depot=record["depot"], why=chosen.get("why", ""), hydrated=hydrated,
                    warnings=tuple(record.get("warnings", ())), timings=timings, lease=lease)


def _select(cfg: Config, cache: NodeCache, release: "Release", host: "HostCPU | None",
            path: str) -> dict[str, Any]:
    from depotdelivery.select import select

    if host is None:
        host = detect_host(cfg)
    selection = select(release, host)
    chosen = {"variant": selection.target, "why": selection.why, "selection": selection.to_dict()}
    cache.ensure()
    cache.write_json(path, chosen)
    return chosen


def detect_host(cfg: Config) -> "HostCPU":
    """The host CPU as configured: ``microarch`` override, a recorded ``cpuinfo``, or CPUID."""
    from depotdelivery.cpu import detect

    return detect(cpuinfo=cfg.cpuinfo, microarch=cfg.microarch)


def layers(root: str, release: "Release", variant: "Variant", *, listings: bool) -> list["Layer"]:
    """The read-only depots of ``variant``, highest priority first: the variant's own depot
    (its precompiled caches), then the release's shared depot."""
    from pathlib import Path

    from depotdelivery.node.hydrate import Layer
    from depotdelivery.store.repo import Repository

    release_dir = Path(root, "releases", release.name, release.version)
    repo = Repository.open(root) if listings else None

    def entries(tree: str, prefix: str) -> Any:
        def read() -> Any:
            assert repo is not None
            for entry in repo.read_listing(release, tree):
                if entry.path.startswith(prefix):
                    yield _Relative(entry, entry.path[len(prefix):])
        return read if listings else None

    return [
        Layer(name=f"variant {variant.target}", root=release_dir / variant.path / "depot",
              entries=entries(variant.tree, "depot/")),
        Layer(name="shared depot", root=release_dir / release.shared.path, entries=entries(release.shared.tree, "")),
    ]


class _Relative:
    """A listing entry seen from a subdirectory of its tree (the variant's ``depot/``)."""

    __slots__ = ("entry", "path")

    def __init__(self, entry: Any, path: str) -> None:
        self.entry, self.path = entry, path

    def __getattr__(self, name: str) -> Any:
        return getattr(self.entry, name)


def _hydrate(cfg: Config, cache: NodeCache, release: "Release", target: str,
             key: str) -> tuple[dict[str, Any], bool]:
    from pathlib import Path

    from depotdelivery.node import hydrate

    assert cfg.repo is not None
    variant = release.variant(target)
    stack = layers(cfg.repo, release, variant, listings=cfg.mode == "copy")
    cache.ensure()
    with hydration_lock(cache.lock_file(key), cfg.lock_timeout):
        final = Path(cache.depot_dir(key))
        record = cache.read_complete(key)
        if record is not None:
            if record.get("mount") and not os.path.ismount(record["mount"]):
                hydrate.mount_overlay(stack, final)  # a reboot or another mount namespace lost it
            return record, False
        t = time.perf_counter()
        cache.clean_tmp(key)
        if os.path.lexists(final):
            rmtree(str(final))  # no valid completion record: never a depot anyone may use
        build = Path(cache.build_dir(key))
        try:
            done = hydrate.hydrate(cfg.mode, stack, build, final)
            sysimage = _sysimage(cfg, release, variant, build, final)
            record = _record(cfg, release, variant, key, stack, done, sysimage)
            cache.write_json(str(build / COMPLETE), record)
            if cfg.mode == "copy":
                from depotdelivery.store.atomic import syncfs

                syncfs(build)  # the copied bytes reach the disk before the rename publishes them
            os.rename(build, final)
        except OSError as exc:
            rmtree(str(build))
            if isinstance(exc, CacheError):
                raise
            raise cache_error(f"hydrate ({cfg.mode} mode) depot", final, exc) from None
        except BaseException:
            rmtree(str(build))
            raise
        if done.mount:
            hydrate.mount_overlay(stack, final)
        _log(cache, {"key": key, "pid": os.getpid(), "time": time.time(), "mode": cfg.mode,
                     "files": done.files, "seconds": round(time.perf_counter() - t, 6)})
    return record, True


def _sysimage(cfg: Config, release: "Release", variant: "Variant", build: "Path", final: "Path") -> str | None:
    """The sysimage path Julia gets: the repository's file, or in copy mode a verified copy."""
    if variant.sysimage is None:
        return None
    assert cfg.repo is not None
    src = os.path.join(cfg.repo, "releases", release.name, release.version, variant.sysimage.path)
    if cfg.mode != "copy":
        return str(src)
    from depotdelivery.errors import IntegrityError
    from depotdelivery.store.hashing import copy_with_hash

    name = os.path.basename(variant.sysimage.path)
    digest, size = copy_with_hash(src, build / name, limit=variant.sysimage.size)
    if (digest, size) != (variant.sysimage.blake3, variant.sysimage.size):
        raise IntegrityError(f"{src}: sysimage does not match release {release.ref} (blake3 {digest[:16]}..., "
                             f"size {size}; signed {variant.sysimage.blake3[:16]}..., size {variant.sysimage.size})")
    os.chmod(build / name, 0o555)
    return str(final / name)


def _record(cfg: Config, release: "Release", variant: "Variant", key: str, stack: list["Layer"],
            done: Any, sysimage: str | None) -> dict[str, Any]:
    project_base = str(stack[-1].root) if cfg.mode == "stack" else done.depot
    env = {
        "JULIA_DEPOT_PATH": ":".join(done.depot_path) + ":",  # trailing ':' keeps the bundled stdlib depots
        "JULIA_PROJECT": os.path.join(project_base, release.project),
        "JULIA_PKG_OFFLINE": "true",
        "JULIA_PKG_PRECOMPILE_AUTO": "0",
        "JULIA_CPU_TARGET": variant.cpu_target,
        # informational, for logs: not DEPOTDELIVERY_RELEASE, which would pin every later
        # depotdelivery call of the job (docs/configuration.md)
        "DEPOTDELIVERY_PREPARED_RELEASE": release.ref,
        "DEPOTDELIVERY_PREPARED_VARIANT": variant.target,
    }
    warnings = []
    if cfg.mode in RELOCATING_MODES and relocation_breaks_caches(release.julia_version):
        warnings.append(f"{cfg.mode} mode with Julia {release.julia_version}: its caches record the absolute paths "
                        "of the published sources, and the sources Julia finds through this depot are other files, "
                        "so Julia will find the caches stale and recompile; use stack or symlink mode "
                        "(`depotdelivery check` shows the prediction)")
    if home_depot_joins(release.julia_version):
        warnings.append(f"Julia {release.julia_version} reads the trailing ':' of JULIA_DEPOT_PATH (kept for its "
                        "bundled stdlib caches) as ~/.julia too: caches are gathered from every depot, newest "
                        "first, so caches the user built in ~/.julia/compiled can be loaded instead of the "
                        "release's (`depotdelivery check` includes ~/.julia in its prediction)")
    return {
        "format": RECORD_FORMAT, "key": key, "mode": cfg.mode, "variant": variant.target, "warnings": warnings,
        "release": {"ref": release.ref, "id": release.id, "julia_version": release.julia_version},
        "repo": cfg.repo, "depot_path": list(done.depot_path), "depot": done.depot, "mount": done.mount,
        "env": env, "julia_args": ["--sysimage", sysimage] if sysimage else [], "sysimage": sysimage,
        "files": done.files, "created": time.time(),
    }


# Modes whose depot presents the sources as other files than the published ones: a copy, or
# an overlay mount (another st_dev/st_ino, so Julia's ``samefile`` check of the first include
# fails); stack and symlink modes reach the published inodes themselves.
RELOCATING_MODES = frozenset({"copy", "overlay"})


def _at_most_1_10(julia_version: str) -> bool:
    major, minor = julia_version.split(".")[:2]
    return (int(major), int("".join(c for c in minor if c.isdigit()) or 0)) <= (1, 10)


def relocation_breaks_caches(julia_version: str) -> bool:
    """Julia <= 1.10 caches record absolute source paths (julia-formats.md "Staleness"): a depot
    whose sources are other files than the published ones makes them stale. 1.11+ records
    ``@depot/`` paths (relocatable)."""
    return _at_most_1_10(julia_version)


def home_depot_joins(julia_version: str) -> bool:
    """Julia <= 1.10 expands every empty ``JULIA_DEPOT_PATH`` entry, so also the trailing ':'
    kept for the bundled stdlib caches, to ``~/.julia`` too (julia-formats.md "Depot")."""
    return _at_most_1_10(julia_version)


def _log(cache: NodeCache, entry: dict[str, Any]) -> None:
    line = (json.dumps(entry, sort_keys=True) + "\n").encode()
    fd = os.open(os.path.join(cache.root, HYDRATION_LOG), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, line)  # one write() with O_APPEND: lines from concurrent jobs never interleave
    finally:
        os.close(fd)
