"""A build world: a package server (a synth depot: packages, registry, artifacts), a project
(its Project.toml + Manifest.toml), a tools depot with PackageCompiler, and the STAND-IN julia
(depotdelivery.synth.julia_standin: no Julia binary exists here; it records every call and
writes what Julia, Pkg and PackageCompiler would). ``calls()`` reads its log."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depotdelivery.synth.depot import generate_release_inputs
from depotdelivery.synth.julia_standin import write_standin

PACKAGECOMPILER_UUID = "9b87118b-4619-50d2-8e1e-99f35a4d4d9d"  # PackageCompiler.jl's Project.toml


@dataclass
class World:
    base: Path
    version: str
    server: Any  # SynthInputs of the package server
    project: Path
    tools: Path
    repo: Path
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def julia(self) -> str:
        return str(self.base / "julia" / "bin" / "julia")

    @property
    def log(self) -> Path:
        return self.base / "calls.jsonl"

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, HOME=str(self.base / "home"))

    def standin(self, **config: Any) -> str:
        """(Re)write the stand-in with ``config`` on top of the defaults."""
        self.config = {"version": self.version, "pkg_server": str(self.server.depot), "log": str(self.log), **config}
        return str(write_standin(self.base / "julia" / "bin", self.config))

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def steps(self) -> list[tuple[str, str | None]]:
        """(step, target) of every call, in order: the sysimage script's CPU_TARGET, else the
        JULIA_CPU_TARGET the step ran with."""
        return [(c["step"], target(c)) for c in self.calls()]

    def clear_log(self) -> None:
        self.log.unlink(missing_ok=True)

    def kwargs(self, **extra: Any) -> dict[str, Any]:
        """build_release's keyword arguments for this world."""
        return {"tools_depot": self.tools, "work_dir": self.base / "work", "environ": self.env,
                "sysimage_packages": [self.server.packages[0].name], **extra}

    @property
    def final(self) -> Path:
        return self.repo / "releases" / "hep" / "1.0"


def target(call: dict[str, Any]) -> str | None:
    """The CPU target a stand-in call built for (see World.steps)."""
    from depotdelivery.synth.julia_standin import _constants

    return _constants(call["script"]).get("CPU_TARGET", call["env"].get("JULIA_CPU_TARGET"))


def make_world(base: Path, version: str = "1.11.1", packages: int = 4) -> World:
    server = generate_release_inputs(base / "server", targets=[], packages=packages, julia_version=version, seed=3)
    project = base / "projects" / "hep"
    project.mkdir(parents=True)
    for f in ("Project.toml", "Manifest.toml"):
        shutil.copy2(server.depot / "environments" / "hep" / f, project / f)
    minor = ".".join(version.split(".")[:2])
    tools = base / "tools"
    (tools / "environments" / f"v{minor}").mkdir(parents=True)
    (tools / "environments" / f"v{minor}" / "Project.toml").write_text(
        f'[deps]\nPackageCompiler = "{PACKAGECOMPILER_UUID}"\n')
    (base / "home").mkdir()
    (base / "repo").mkdir()
    w = World(base=base, version=version, server=server, project=project, tools=tools, repo=base / "repo")
    w.standin()
    return w
