"""The facts one build shares between its parts (and the threads building variants), and the
way every part runs a Julia step."""
from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depotdelivery.publisher.build.plan import Probe
from depotdelivery.publisher.build.steps import StepResult, run_step

__all__ = ["Context", "Event", "julia_step"]

Event = Callable[[dict[str, Any]], None]


@dataclass(slots=True, kw_only=True)
class Context:
    """One build's fixed facts, shared by the threads building variants."""

    final: Path
    work: Path
    julia: str
    probe: Probe
    envs: tuple[str, ...]  # environment names, the first is activated on nodes
    base_env: dict[str, str]
    tools_depot: str
    offline: bool
    sysimage_packages: tuple[str, ...] | None
    emit: Event
    shared_digest: str = ""  # the shared depot's inputs digest, part of every variant's inputs
    cancel: threading.Event = field(default_factory=threading.Event)
    warnings: list[str] = field(default_factory=list)
    probe_step: StepResult | None = None  # the probe, recorded with the shared depot

    @property
    def depot(self) -> Path:
        return self.final / "depot"

    def env_dir(self, env: str) -> Path:
        return self.depot / "environments" / env

    def julia_env(self, depots: Sequence[str | Path], **extra: str) -> dict[str, str]:
        """The exact environment of a step: the caller's (less JULIA_*), the depot stack with the
        bundled depots spelled out (an empty entry would add ~/.julia, where Pkg would find
        packages that then miss from the release), no automatic precompilation."""
        env = dict(self.base_env)
        env.update(JULIA_DEPOT_PATH=os.pathsep.join([*map(str, depots), *self.probe.bundled_depots]),
                   JULIA_LOAD_PATH="@:@stdlib", JULIA_PKG_PRECOMPILE_AUTO="0")
        if self.offline:
            env["JULIA_PKG_OFFLINE"] = "true"
        env.update(extra)
        return env

    def identity(self) -> dict[str, str]:
        return {"version": self.probe.version, "commit": self.probe.commit, "julia": self.probe.julia,
                "arch": self.probe.arch}


def julia_step(ctx: Context, where: str, variant: str | None, step: str, script: str, record_dir: Path,
               env: Mapping[str, str], julia_args: Sequence[str] = ()) -> StepResult:
    """Run one step; its script goes into the record directory, its log into the work directory
    (kept there on failure, copied into the record when it succeeds)."""
    log = ctx.work / "logs" / (variant or "shared") / f"{step}.log"
    ctx.emit({"event": "step", "state": "start", "variant": variant, "step": step})
    r = run_step(where=where, step=step, julia=ctx.julia, script=script, script_path=record_dir / "scripts" / f"{step}.jl",
                 log_path=log, env=env, julia_args=julia_args, cancel=ctx.cancel)
    (record_dir / "logs").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(log, record_dir / "logs" / f"{step}.log")
    ctx.emit({"event": "step", "state": "done", "variant": variant, "step": step, "seconds": round(r.seconds, 3)})
    return r
