"""prepare(): configuration -> verified channel/release -> variant -> lease -> hydrated depot -> Prepared.

The hot path (depot already complete) reads a few small JSON records and takes the job's
lease; it takes no lock, verifies no signature it already verified for the same bytes, and
imports neither ``cryptography`` nor ``archspec`` (nor ``filelock``, ``subprocess``, ``tomllib``).
"""
from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # no `typing` on the hot path (see depotdelivery/__init__.py)

from depotdelivery.errors import CacheError
from depotdelivery.node import joblog
from depotdelivery.node.cache import (
    COMPLETE,
    RECORD_FORMAT,
    NodeCache,
    crc32_hex,
)
from depotdelivery.node.config import Config, resolve
from depotdelivery.node.env import Prepared
from depotdelivery.node.locks import (
    Gate,
    acquire_lease,
    acquire_pid_lease,
    hydration_lock,
)
from depotdelivery.node.session import Session
from depotdelivery.oserrors import cache_error
from depotdelivery.trees import rmtree

if TYPE_CHECKING:
    from typing import Any

    from depotdelivery.cpu import HostCPU
    from depotdelivery.node.hydrate import Layer
    from depotdelivery.store.release import Release, Variant

__all__ = ["RELOCATING_MODES", "depot_key", "home_depot_joins", "layers", "prepare", "prepare_config",
           "relocation_breaks_caches"]

HYDRATION_LOG = "hydrations.log"


def depot_key(release_id: str, variant: str, mode: str) -> str:
    return f"{release_id[:16]}-{variant}-{mode}"


def prepare(*, repo: str | None = None, channel: str | None = None, release: str | None = None,
            mode: str | None = None, cache: str | None = None, trusted_keys: str | None = None,
            microarch: str | None = None, cpuinfo: str | None = None, lock_timeout: float | None = None,
            host: HostCPU | None = None, lease_pid: int | None = None) -> Prepared:
    """Prepare the depot stack for a job on this node.

    The configuration keys (docs/configuration.md; None: from ``DEPOTDELIVERY_*``, config files,
    defaults): ``repo`` root, ``channel`` to follow or ``release`` NAME/VERSION to pin, hydration
    ``mode`` (stack, symlink, copy, overlay), node ``cache`` directory, ``trusted_keys``
    directory, ``microarch`` or ``cpuinfo`` instead of CPUID, ``lock_timeout`` seconds.
    ``host``: a :class:`~depotdelivery.cpu.HostCPU` to use instead of detecting it.
    ``lease_pid``: lease the depot for that process instead of this one (the shell of
    ``eval "$(depotdelivery env)"``, which keeps no descriptor of ours; see
    :func:`~depotdelivery.node.locks.acquire_pid_lease`)."""
    t0 = time.perf_counter()
    overrides = {"repo": repo, "channel": channel, "release": release, "mode": mode, "cache": cache,
                 "trusted_keys": trusted_keys, "microarch": microarch, "cpuinfo": cpuinfo,
                 "lock_timeout": lock_timeout}
    return prepare_config(resolve(overrides), host=host, started=t0, lease_pid=lease_pid)


def _ms(t: float) -> float:
    return round((time.perf_counter() - t) * 1000, 3)


def _host_key(cfg: Config) -> str:
    """What the cached selection depends on besides the release: the machine and overrides.
    (A cache shared between nodes of different CPUs with equal host names is not supported.)"""
    u = os.uname()
    return crc32_hex(f"{u.nodename}\0{u.machine}\0{cfg.microarch or ''}\0{cfg.cpuinfo or ''}")


class _Cold(Exception):
    """The hot path found a record missing: the caller redoes the work behind the gate."""


def prepare_config(cfg: Config, *, host: HostCPU | None = None, started: float | None = None,
                   lease_pid: int | None = None) -> Prepared:
    """:func:`prepare` for an already resolved :class:`Config`.

    First the hot path, lock-free, from the records of earlier calls. If a record is missing,
    the job queues on the cache's gate for this channel (or pinned release): the first one
    verifies, selects and hydrates; the others then find the records and leave at once, so 64
    simultaneous cold jobs cost about one cold job."""
    t0 = time.perf_counter() if started is None else started
    session = Session(cfg, host=host)
    prepared = _gated(session, t0)
    if lease_pid is not None:
        acquire_pid_lease(session.cache.leases, prepared.key, lease_pid)
        if prepared.lease is not None:  # the pid lease now covers the depot: leave no file behind
            prepared.lease.release()
    return _log_job(cfg, prepared)


def _log_job(cfg: Config, prepared: Prepared) -> Prepared:
    """One line in the job log; a job never fails over it (a full or read-only log directory
    is the site's to notice): the failure becomes one of the job's warnings instead."""
    path = joblog.log_path(cfg)
    if path is None:
        return prepared
    try:
        joblog.write_line(path, joblog.entry(prepared), cfg.job_log_max_bytes)
    except OSError as exc:
        prepared.warnings = (*prepared.warnings, f"job log {path}: cannot append ({exc.strerror})")
    return prepared


def _gated(session: Session, t0: float) -> Prepared:
    try:
        return _attempt(session, t0, cold=False)
    except _Cold:
        pass
    cfg, cache = session.cfg, session.cache
    t = time.perf_counter()
    deadline = time.monotonic() + cfg.lock_timeout
    what = cfg.release.replace("/", "+") if cfg.release else cfg.channel
    with Gate(os.path.join(cache.locks, f"prepare-{session.repo_id}-{what}.lock")) as gate:
        while True:
            if gate.try_lead():
                try:
                    prepared = _attempt(session, t0, cold=True)
                finally:
                    gate.unlock()
                break
            gate.wait_free(deadline, cfg.lock_timeout)
            try:
                prepared = _attempt(session, t0, cold=False)
                break
            except _Cold:
                continue  # the leader failed or did other work: lead ourselves
    prepared.timings["cold"] = _ms(t)  # behind the gate: waiting for a leader, or leading
    return prepared


def _attempt(session: Session, t0: float, *, cold: bool) -> Prepared:
    timings: dict[str, float] = {}
    cfg, cache = session.cfg, session.cache
    if not session.locate(verify=cold):
        raise _Cold
    release_id = session.release_id
    assert release_id is not None
    timings["verify"] = _ms(t0)

    t = time.perf_counter()
    selection_path = os.path.join(cache.selections, f"{release_id[:16]}-{_host_key(cfg)}.json")
    chosen = cache.read_json(selection_path)
    if not (isinstance(chosen, dict) and isinstance(chosen.get("variant"), str)):
        if not cold:
            raise _Cold
        chosen = _select(session, selection_path)
    timings["select"] = _ms(t)

    t = time.perf_counter()
    key = depot_key(release_id, chosen["variant"], cfg.mode)
    # The lease comes before the completeness check: gc checks leases, renames the depot away
    # and checks again, so a job that saw the depot complete is always seen by gc.
    lease = acquire_lease(cache.leases, key)
    record = _checked(session, key, chosen["variant"], cache.read_complete(key))
    hydrated = False
    if record is None or (record["mount"] and not os.path.ismount(record["mount"])):
        if not cold:
            raise _Cold
        record, hydrated = _hydrate(session, chosen["variant"], key)
    timings["hydrate" if hydrated else "lease"] = _ms(t)
    timings["total"] = _ms(t0)
    sysimage = record["sysimage"]
    return Prepared(depot_path=tuple(record["depot_path"]), env=_job_env(record),
                    julia_args=("--sysimage", sysimage) if sysimage else (), release=record["release"]["ref"],
                    release_id=record["release"]["id"], variant=record["variant"], mode=record["mode"],
                    key=key, depot=record["depot"], why=chosen.get("why", ""), hydrated=hydrated,
                    warnings=tuple(record["warnings"]), timings=timings, lease=lease, session=session)


def _job_env(record: dict[str, Any]) -> dict[str, str]:
    """The job's environment, built here from the record's checked fields: a record holds no
    environment of its own, so no record can add a variable (LD_PRELOAD) to a job."""
    return {
        "JULIA_DEPOT_PATH": ":".join(record["depot_path"]) + ":",  # trailing ':' keeps the bundled stdlib depots
        "JULIA_PROJECT": record["project"],
        "JULIA_PKG_OFFLINE": "true",
        "JULIA_PKG_PRECOMPILE_AUTO": "0",
        "JULIA_CPU_TARGET": record["cpu_target"],
        # informational, for logs: not DEPOTDELIVERY_RELEASE, which would pin every later
        # depotdelivery call of the job (docs/configuration.md)
        "DEPOTDELIVERY_PREPARED_RELEASE": record["release"]["ref"],
        "DEPOTDELIVERY_PREPARED_VARIANT": record["variant"],
    }


# JULIA_CPU_TARGET's alphabet (names, +/-features, ';' between targets, clone_all, base(N))
_CPU_TARGET_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.,;+-()")


def _checked(session: Session, key: str, variant: str, record: dict[str, Any] | None) -> dict[str, Any] | None:
    from depotdelivery.store import layout  # loaded already (node.session imports it)

    """``record`` if it says only what this node would have written for ``key``, else None (the
    depot is then redone). Paths must lie in this depot's directory or in the verified
    release's directory of the configured repository, laid out as the mode lays them; the
    release, variant and mode must be the ones being prepared. So even a record someone else
    wrote could not point a job at a foreign depot, project or sysimage."""
    if record is None:
        return None
    try:
        ref, release = session.ref, record["release"]
        name, _, version = str(ref).partition("/")
        inside = (layout.release_dir(session.root, name, version) + os.sep,)
        depot = os.path.join(session.cache.depot_dir(key), "depot")
        mode, depot_path, sysimage, mount = record["mode"], record["depot_path"], record["sysimage"], record["mount"]
        ok = (release["ref"] == ref and release["id"] == session.release_id and mode == session.cfg.mode
              and record["variant"] == variant and record["depot"] == depot and type(depot_path) is list
              and depot_path[:1] == [depot] and _all_str(record["warnings"])
              and isinstance(record["cpu_target"], str) and 0 < len(record["cpu_target"]) <= 4096
              and _CPU_TARGET_CHARS.issuperset(record["cpu_target"]))
        if ok and mode == "stack":
            ok = len(depot_path) == 3 and all(_under(p, inside) for p in depot_path[1:]) and _under(
                record["project"], inside)
        elif ok:
            ok = len(depot_path) == 1 and _under(record["project"], (depot + os.sep,))
        if ok and sysimage is not None:
            own = os.path.join(session.cache.depot_dir(key), os.path.basename(str(sysimage)))
            ok = sysimage == own if mode == "copy" else _under(sysimage, inside)
        if ok:
            ok = mount is None if mode != "overlay" else mount == depot
    except (KeyError, TypeError, AttributeError):
        return None
    return record if ok else None


def _all_str(values: Any) -> bool:
    return type(values) is list and all(isinstance(v, str) for v in values)


def _under(path: Any, prefixes: tuple[str, ...]) -> bool:
    # normalised already (no '..', no '//'): anything else was not written by this node
    return isinstance(path, str) and path.startswith(prefixes) and os.path.normpath(path) == path


def _select(session: Session, path: str) -> dict[str, Any]:
    from depotdelivery.node.select import select

    selection = select(session.release(), session.host())
    chosen = {"variant": selection.target, "why": selection.why, "selection": selection.to_dict()}
    session.cache.ensure()
    session.cache.write_json(path, chosen, durable=False)  # an accelerator: lost, selected again
    return chosen


def layers(session: Session, variant: Variant, *, listings: bool) -> list[Layer]:
    """The read-only depots of ``variant`` of the session's release, highest priority first:
    the variant's own depot (its precompiled caches), then the release's shared depot.
    ``listings``: each layer carries its signed listing entries (copy mode)."""
    from depotdelivery.node.hydrate import Layer
    from depotdelivery.store import layout

    release = session.release()
    release_dir = layout.release_dir(session.root, release.name, release.version)

    def entries(tree: str, prefix: str) -> Any:
        def read() -> Any:
            cut = len(prefix)
            return [(entry.path[cut:], entry) for entry in session.repository().read_listing(release, tree)
                    if entry.path.startswith(prefix)]
        return read if listings else None

    return [
        Layer(name=f"variant {variant.target}", root=os.path.join(release_dir, variant.path, "depot"),
              entries=entries(variant.tree, "depot/")),
        Layer(name="shared depot", root=os.path.join(release_dir, release.shared.path),
              entries=entries(release.shared.tree, "")),
    ]


def _hydrate(session: Session, target: str, key: str) -> tuple[dict[str, Any], bool]:
    from depotdelivery.node import hydrate

    cfg, cache, release = session.cfg, session.cache, session.release()
    variant = release.variant(target)
    stack = layers(session, variant, listings=cfg.mode == "copy")
    cache.ensure()
    with hydration_lock(cache.lock_file(key), cfg.lock_timeout):
        final = cache.depot_dir(key)
        record = _checked(session, key, target, cache.read_complete(key))
        if record is not None:
            if record["mount"] and not os.path.ismount(record["mount"]):
                hydrate.mount_overlay(stack, final)  # a reboot or another mount namespace lost it
            return record, False
        t = time.perf_counter()
        cache.clean_tmp(key)
        if os.path.lexists(final):
            rmtree(final)  # no valid completion record: never a depot anyone may use
        build = cache.build_dir(key)
        try:
            done = hydrate.hydrate(cfg.mode, stack, build, final)
            sysimage = _sysimage(session, variant, build, final)
            record = _record(cfg, release, variant, key, stack, done, sysimage)
            # no fsync: a record lost in a power cut reads as garbage or absent and the depot is
            # redone (an fsync of it never made a stack or symlink depot's entries durable
            # either); copy mode's syncfs below covers it with the copied bytes
            cache.write_json(os.path.join(build, COMPLETE), record, durable=False)
            if cfg.mode == "copy":
                from depotdelivery.store.atomic import syncfs

                syncfs(build)  # the copied bytes reach the disk before the rename publishes them
            os.rename(build, final)
        except OSError as exc:
            rmtree(build)
            if isinstance(exc, CacheError):
                raise
            raise cache_error(f"hydrate ({cfg.mode} mode) depot", final, exc) from None
        except BaseException:
            rmtree(build)
            raise
        if done.mount:
            hydrate.mount_overlay(stack, final)
        _log(cache, {"key": key, "pid": os.getpid(), "time": time.time(), "mode": cfg.mode,
                     "files": done.files, "seconds": round(time.perf_counter() - t, 6)})
    return record, True


def _sysimage(session: Session, variant: Variant, build: str, final: str) -> str | None:
    """The sysimage path Julia gets: the repository's file, or in copy mode a verified copy."""
    if variant.sysimage is None:
        return None
    from depotdelivery.store import layout

    release = session.release()
    src = os.path.join(layout.release_dir(session.root, release.name, release.version), variant.sysimage.path)
    if session.cfg.mode != "copy":
        return str(src)
    from depotdelivery.node.hydrate import verified_copy

    name = os.path.basename(variant.sysimage.path)
    verified_copy(src, os.path.join(build, name), blake3=variant.sysimage.blake3, size=variant.sysimage.size,
                  signed_by=f"the sysimage of release {release.ref}")
    os.chmod(os.path.join(build, name), 0o555)
    return os.path.join(final, name)


def _record(cfg: Config, release: Release, variant: Variant, key: str, stack: list[Layer],
            done: Any, sysimage: str | None) -> dict[str, Any]:
    project_base = str(stack[-1].root) if cfg.mode == "stack" else done.depot
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
        "project": os.path.join(project_base, release.project), "cpu_target": variant.cpu_target,
        "sysimage": sysimage,
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
    joblog.write_line(os.path.join(cache.root, HYDRATION_LOG), entry, 0)  # an audit trail: never rotated
