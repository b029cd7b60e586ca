"""One variant: ``variants/<name>/`` with the sysimage (PackageCompiler, the variant's target
string), ``sysimage-modules.json`` and the package caches built with that sysimage loaded;
variants build in parallel, a failure stops the others and names variant and step."""
from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from depotdelivery.publisher.build import checks, scripts
from depotdelivery.publisher.build.context import Context, julia_step
from depotdelivery.publisher.build.plan import VariantPlan
from depotdelivery.publisher.build.record import (
    inputs_digest,
    read_record,
    write_record,
)
from depotdelivery.publisher.build.steps import Cancelled

__all__ = ["MODULES", "RECORD_DIR", "SYSIMAGE", "VariantOutcome", "build_variants"]

SYSIMAGE = "sys.so"
MODULES = "sysimage-modules.json"
RECORD_DIR = "build"  # variants/<name>/build/


@dataclass(frozen=True, slots=True, kw_only=True)
class VariantOutcome:
    """What building (or resuming) one variant gave."""

    name: str
    cpu_target: str
    resumed: bool
    caches: int
    seconds: float
    lint: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "cpu_target": self.cpu_target, "resumed": self.resumed, "caches": self.caches,
                "seconds": round(self.seconds, 3), "lint": list(self.lint)}


def build_variants(ctx: Context, plans: Sequence[VariantPlan], jobs: int) -> tuple[VariantOutcome, ...]:
    """Build every planned variant, ``jobs`` at a time. Variant directories no plan names are
    removed first (an in-place publish takes every variant it finds: never a stale one)."""
    vroot = ctx.final / "variants"
    names = {p.name for p in plans}
    for d in sorted(vroot.iterdir()) if vroot.is_dir() else []:
        if d.name not in names:
            shutil.rmtree(d)
            ctx.emit({"event": "removed", "variant": d.name, "reason": "not in this build's variant list"})
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="variant") as pool:
        futures = [pool.submit(_build_one, ctx, p) for p in plans]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            if any(f.exception() is not None for f in done):
                ctx.cancel.set()  # running steps are terminated, queued variants do not start
            wait(futures)
        except BaseException:  # KeyboardInterrupt: stop the Julia processes, then leave
            ctx.cancel.set()
            raise
    errors = [f.exception() for f in futures if f.exception() is not None]
    real = [e for e in errors if not isinstance(e, Cancelled)]
    if errors:
        raise (real or errors)[0]  # type: ignore[misc]
    return tuple(f.result() for f in futures)


def _inputs(ctx: Context, plan: VariantPlan, vdir: Path) -> dict[str, object]:
    env0 = str(ctx.env_dir(ctx.envs[0]))
    return {
        "julia": ctx.identity(), "shared": ctx.shared_digest, "cpu_target": plan.cpu_target,
        "sysimage_packages": list(ctx.sysimage_packages) if ctx.sysimage_packages is not None else None,
        "scripts": [scripts.sysimage_script(env0, str(vdir / SYSIMAGE), plan.cpu_target, ctx.sysimage_packages),
                    scripts.modules_script(str(vdir / MODULES)),
                    scripts.precompile_script([str(ctx.env_dir(e)) for e in ctx.envs])],
        "depot_path": [str(vdir / "depot"), str(ctx.depot), *ctx.probe.bundled_depots],
    }


def _build_one(ctx: Context, plan: VariantPlan) -> VariantOutcome:
    if ctx.cancel.is_set():
        raise Cancelled(f"variant {plan.name}: not started because another variant failed")
    t0 = time.monotonic()
    vdir = ctx.final / "variants" / plan.name
    inputs = _inputs(ctx, plan, vdir)
    digest = inputs_digest(inputs)
    old = read_record(vdir / RECORD_DIR)
    if old is not None and old.get("inputs_digest") == digest and (vdir / SYSIMAGE).is_file():
        ctx.emit({"event": "resumed", "variant": plan.name, "reason": "same inputs as the recorded build"})
        return VariantOutcome(name=plan.name, cpu_target=plan.cpu_target, resumed=True,
                              caches=int(old.get("caches", 0)), seconds=time.monotonic() - t0, lint=plan.lint)
    if vdir.exists():
        why = "its inputs changed" if old is not None else "its last build did not finish"
        ctx.emit({"event": "rebuild", "variant": plan.name, "reason": why})
        shutil.rmtree(vdir)  # never mixed: a variant is built whole, from nothing
    steps, caches = _steps(ctx, plan, vdir)
    write_record(vdir / RECORD_DIR, {"inputs": inputs, "inputs_digest": digest, "cpu_target": plan.cpu_target,
                                     "caches": caches, "steps": steps, "lint": list(plan.lint),
                                     "seconds": round(time.monotonic() - t0, 3)})
    ctx.emit({"event": "variant", "state": "done", "variant": plan.name, "caches": caches})
    return VariantOutcome(name=plan.name, cpu_target=plan.cpu_target, resumed=False, caches=caches,
                          seconds=time.monotonic() - t0, lint=plan.lint)


def _steps(ctx: Context, plan: VariantPlan, vdir: Path) -> tuple[list[dict[str, object]], int]:
    """sysimage -> modules -> precompile, each checked before the next."""
    where = f"variant {plan.name}"
    rec = vdir / RECORD_DIR
    (vdir / "depot").mkdir(parents=True)
    env0 = str(ctx.env_dir(ctx.envs[0]))
    scratch = ctx.work / "scratch" / plan.name
    shutil.rmtree(scratch, ignore_errors=True)
    # PackageCompiler precompiles and instantiates in its own process: DEPOT_PATH[1] is a
    # scratch depot outside the release, so nothing it writes lands in the variant; the
    # caller's depot (PackageCompiler itself) comes after the release's depots. No
    # JULIA_CPU_TARGET: the target goes to create_sysimage, which passes it as --cpu-target to
    # the process compiling the image; in this one it would only make Julia reject (and
    # recompile) PackageCompiler's own caches, built for the CI machine.
    env = ctx.julia_env([scratch, ctx.depot, ctx.tools_depot], JULIA_PROJECT=env0,
                        JULIA_LOAD_PATH="@:@v#.#:@stdlib", JULIA_PKG_OFFLINE="true")
    r1 = julia_step(ctx, where, plan.name, "sysimage",
                    scripts.sysimage_script(env0, str(vdir / SYSIMAGE), plan.cpu_target, ctx.sysimage_packages), rec, env)
    targets = checks.check_sysimage(vdir / SYSIMAGE, where, ctx.probe.arch, plan.cpu_target, plan.clone_names)
    shutil.rmtree(scratch, ignore_errors=True)
    loaded = ("--sysimage", str(vdir / SYSIMAGE))
    env = ctx.julia_env([vdir / "depot", ctx.depot], JULIA_PROJECT=env0, JULIA_CPU_TARGET=plan.cpu_target,
                        JULIA_PKG_OFFLINE="true")
    r2 = julia_step(ctx, where, plan.name, "modules", scripts.modules_script(str(vdir / MODULES)), rec, env, loaded)
    modules = checks.read_modules(vdir / MODULES, where)
    r3 = julia_step(ctx, where, plan.name, "precompile",
                    scripts.precompile_script([str(ctx.env_dir(e)) for e in ctx.envs]), rec, env, loaded)
    expected = {n for e in ctx.envs for n, entry in checks.manifest_packages(ctx.env_dir(e) / "Manifest.toml", where)
                if "git-tree-sha1" in entry or "path" in entry}
    expected |= {p for e in ctx.envs if (p := checks.project_package(ctx.env_dir(e))) is not None}
    caches = checks.check_pkgimages(vdir / "depot", where, ctx.probe.version, targets, modules, expected)
    return [r.to_dict() for r in (r1, r2, r3)], caches
