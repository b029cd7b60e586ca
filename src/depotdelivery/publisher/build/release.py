"""``build``: from Julia projects to a publish-ready (optionally published) release tree.

Order (every Julia step a fresh process running a generated script, see scripts.py):

1. ``probe`` the Julia binary (version, arch, ``versioninfo()``); pick and lint the variants
   and refuse what would not work on nodes before anything is built;
2. with ``--in-place --cvmfs`` open the CVMFS transaction (cvmfs.transaction, the one place);
3. the shared depot: copy each project's Project/Manifest into ``depot/environments/<env>/``
   (developed packages into ``depot/dev/``), ``instantiate`` them into it;
4. per variant, in parallel up to ``jobs``: ``sysimage`` (PackageCompiler, the variant's target
   string), ``modules`` (sysimage-modules.json) and ``precompile`` (with that sysimage loaded,
   the same JULIA_CPU_TARGET, the variant depot first in JULIA_DEPOT_PATH);
5. optionally publish (in the same transaction).

Each part ends with its record; a re-run skips a part whose record has the same inputs.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from depotdelivery.errors import BuildError, ConflictError, UsageError
from depotdelivery.publisher.build import scripts
from depotdelivery.publisher.build.context import Context, Event
from depotdelivery.publisher.build.plan import (
    Probe,
    VariantPlan,
    check_final_path,
    default_variants,
    plan_variants,
    read_probe,
)
from depotdelivery.publisher.build.shared import build_shared
from depotdelivery.publisher.build.stash import stashed
from depotdelivery.publisher.build.steps import StepResult, base_environment, run_step
from depotdelivery.publisher.build.variant import (
    SYSIMAGE,
    VariantOutcome,
    build_variants,
)

if TYPE_CHECKING:
    from depotdelivery.store.keys import PrivateKey

__all__ = ["BuildResult", "Event", "VariantOutcome", "build_release"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildResult:
    path: Path  # the release tree (releases/N/V with in_place, else the build directory)
    julia_version: str
    project: str
    variants: tuple[VariantOutcome, ...]
    shared_resumed: bool
    published: dict[str, object] | None = None
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {"path": str(self.path), "julia_version": self.julia_version, "project": self.project,
                "variants": [v.to_dict() for v in self.variants], "shared_resumed": self.shared_resumed,
                "published": self.published, "warnings": list(self.warnings), "seconds": round(self.seconds, 3)}


def _noop(_: dict[str, Any]) -> None:
    return None


def build_release(repo_root: str | os.PathLike[str], name: str, version: str, projects: Sequence[str | os.PathLike[str]],
                  julia: str, variants: Mapping[str, str] | None = None, *, variant_set: str = "microarch",
                  sysimage_packages: Sequence[str] | None = None, in_place: bool = False,
                  build_dir: str | os.PathLike[str] | None = None, work_dir: str | os.PathLike[str] | None = None,
                  cvmfs: str | None = None, keys: Sequence[PrivateKey] = (), channel: str | None = None,
                  expires: float | None = None, jobs: int = 1, offline: bool = False,
                  tools_depot: str | os.PathLike[str] | None = None, events: Event | None = None,
                  environ: Mapping[str, str] | None = None, hash_cache_dir: Path | None = None) -> BuildResult:
    """Build release ``name/version`` of the repository at ``repo_root`` from ``projects``
    (directories with Project.toml + Manifest.toml; the first is the environment nodes
    activate) with the Julia at ``julia``: one variant per ``{name: JULIA_CPU_TARGET}`` (default:
    the ``variant_set`` recommended for that Julia). ``in_place``: build at the release's final
    path ``releases/NAME/VERSION`` (required for Julia 1.10); else in ``build_dir``. With ``keys``
    the result is published (and ``channel`` pointed at it; ``hash_cache_dir``: publish's);
    ``cvmfs`` (needs ``keys``) publishes in a CVMFS transaction, which with ``in_place`` the build
    runs in too. Raises BuildError naming the variant, the step and the kept log; a failure
    publishes nothing and aborts the transaction."""
    t0 = time.monotonic()
    emit = events or _noop
    root = Path(repo_root).absolute()
    _check_args(name, version, cvmfs, keys, channel, jobs)
    elsewhere = Path(build_dir) if build_dir is not None else Path("depotdelivery-build") / name / version
    final = root / "releases" / name / version if in_place else elsewhere.absolute()
    if (root / "releases" / name / version / "release.json").exists():
        raise ConflictError(f"release {name}/{version} is already published in {root}; releases are immutable: "
                            "build a new version")
    if not root.is_dir():
        from depotdelivery.oserrors import repo_unavailable

        raise repo_unavailable(root, "does not exist or is not a directory (create it, or mount it)")
    envs = _environment_names(projects)
    work = Path(work_dir).absolute() if work_dir else _default_work(final)
    work.mkdir(parents=True, exist_ok=True)
    with _exclusive(work / "lock", f"{name}/{version}"):
        base = base_environment(environ)
        probe, probe_step = _probe(julia, work, base, emit)
        check_final_path(probe, in_place, final)
        plans = plan_variants(dict(variants) if variants else default_variants(probe, variant_set), probe)
        for p in plans:
            for w in p.lint:
                emit({"event": "lint", "variant": p.name, "message": w})
        ctx = Context(final=final, work=work, julia=julia, probe=probe, envs=tuple(envs), base_env=base,
                   tools_depot=str(tools_depot or _caller_depot(environ)), offline=offline,
                   sysimage_packages=tuple(sysimage_packages) if sysimage_packages is not None else None, emit=emit,
                   probe_step=probe_step)
        with ExitStack() as stack:
            handle = None
            if cvmfs is not None and in_place:
                from depotdelivery.publisher.cvmfs import held

                handle = stack.enter_context(held(cvmfs))
                # exits before the abort: what finished survives it in the work dir
                stack.enter_context(stashed(final, work / "stash", emit))
            shared_resumed = build_shared(ctx, dict(zip(envs, map(Path, projects), strict=True)))
            outcomes = build_variants(ctx, plans, jobs)
            published = None
            if keys:
                if handle is not None:
                    handle.hand_over()  # publish --in-place --cvmfs publishes (or aborts) the transaction
                published = _publish(ctx, root, name, version, plans, keys, channel, expires, cvmfs, in_place,
                                     hash_cache_dir)
    return BuildResult(path=final, julia_version=probe.version, project=f"environments/{envs[0]}",
                       variants=outcomes, shared_resumed=shared_resumed, published=published,
                       warnings=tuple(ctx.warnings), seconds=time.monotonic() - t0)


def _check_args(name: str, version: str, cvmfs: str | None, keys: Sequence[Any], channel: str | None,
                jobs: int) -> None:
    from depotdelivery.store.names import check_name

    check_name("release name", name)
    check_name("release version", version)
    if cvmfs is not None and not keys:
        raise UsageError("--cvmfs builds and publishes in one transaction: pass --publish --key KEY")
    if channel is not None and not keys:
        raise UsageError("--channel needs --publish --key KEY")
    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")


def _environment_names(projects: Sequence[str | os.PathLike[str]]) -> list[str]:
    from depotdelivery.store.names import check_name

    if not projects:
        raise UsageError("build needs at least one --project DIR")
    names: list[str] = []
    for p in map(Path, projects):
        for f in ("Project.toml", "Manifest.toml"):
            if not (p / f).is_file():
                raise UsageError(f"project {p}: no {f} (build installs a manifest exactly as written; "
                                 "resolve it once with `julia --project=DIR -e 'using Pkg; Pkg.resolve()'`)")
        env = p.absolute().name
        check_name("environment name (the project directory's name)", env)
        if env in names:
            raise UsageError(f"two projects are named {env!r}: environments/<name> must be unique")
        names.append(env)
    return names


def _default_work(final: Path) -> Path:
    """Logs and scratch depots outside the release (they survive a CVMFS abort)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "depotdelivery" / "build" / hashlib.sha256(str(final).encode()).hexdigest()[:16]


def _caller_depot(environ: Mapping[str, str] | None) -> str:
    """Where the CI keeps PackageCompiler: the caller's first depot (default ``~/.julia``)."""
    env = os.environ if environ is None else environ
    first = next((d for d in env.get("JULIA_DEPOT_PATH", "").split(os.pathsep) if d), "")
    return first or os.path.join(os.path.expanduser("~"), ".julia")


class _exclusive:
    """An flock on ``path``: one build of a release at a time."""

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what, self.fd = path, what, -1

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise BuildError(f"another build of {self.what} is running (lock {self.path})") from None

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def _probe(julia: str, work: Path, base: dict[str, str], emit: Event) -> tuple[Probe, StepResult]:
    out = work / "probe.toml"
    out.unlink(missing_ok=True)
    # the trailing ':' adds the bundled depots (and on <= 1.10 ~/.julia, only read here): their
    # stdlib caches (InteractiveUtils is not in the 1.11+ sysimage) need no precompiling
    env = dict(base, JULIA_DEPOT_PATH=f"{work / 'probe-depot'}{os.pathsep}", JULIA_LOAD_PATH="@stdlib",
               JULIA_PKG_OFFLINE="true")
    emit({"event": "step", "state": "start", "variant": None, "step": "probe"})
    r = run_step(where="julia", step="probe", julia=julia, script=scripts.probe_script(str(out)),
                 script_path=work / "scripts" / "probe.jl", log_path=work / "logs" / "probe.log", env=env)
    probe = read_probe(out)
    emit({"event": "step", "state": "done", "variant": None, "step": "probe", "julia_version": probe.version})
    return probe, r


def _publish(ctx: Context, root: Path, name: str, version: str, plans: Sequence[VariantPlan],
             keys: Sequence[PrivateKey], channel: str | None, expires: float | None, cvmfs: str | None,
             in_place: bool, hash_cache_dir: Path | None) -> dict[str, object]:
    """Publish the built tree: in place (with ``cvmfs``: closing the transaction the build ran
    in), or copied from the build directory."""
    from depotdelivery.publisher.channels import DEFAULT_EXPIRY
    from depotdelivery.publisher.publish import VariantInput, publish

    vroot = ctx.final / "variants"
    variants = {p.name: VariantInput(dir=vroot / p.name, sysimage=vroot / p.name / SYSIMAGE, cpu_target=p.cpu_target,
                                     arch=ctx.probe.arch) for p in plans}
    ctx.emit({"event": "step", "state": "start", "variant": None, "step": "publish"})
    r = publish(root, name, version, None if in_place else ctx.depot, variants, list(keys), channel=channel,
                expires=DEFAULT_EXPIRY if expires is None else expires, cvmfs=cvmfs, in_place=in_place,
                julia_version=ctx.probe.version, project=f"environments/{ctx.envs[0]}", hash_cache_dir=hash_cache_dir)
    ctx.warnings += r.warnings
    ctx.emit({"event": "step", "state": "done", "variant": None, "step": "publish", "release": r.ref,
              "release_id": r.release_id})
    return r.to_dict()
