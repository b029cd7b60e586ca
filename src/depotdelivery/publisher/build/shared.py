"""The shared depot: the projects' environments (and developed packages) copied into
``depot/``, then ``Pkg.instantiate`` into it. Resumed when its record's inputs match."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from depotdelivery.errors import BuildError
from depotdelivery.publisher.build import checks, scripts
from depotdelivery.publisher.build.context import Context, julia_step
from depotdelivery.publisher.build.record import (
    file_sha256,
    inputs_digest,
    read_record,
    write_record,
)

__all__ = ["RECORD_DIR", "build_shared"]

RECORD_DIR = Path("config") / "depotdelivery-build"  # inside the shared depot
_COPIED = ("Project.toml", "Manifest.toml", "LocalPreferences.toml")  # what an environment is
_DEPS_HEADER = re.compile(r"^\[\[deps\.(?P<name>[^\]]+)\]\]\s*$")
_PATH_LINE = re.compile(r"^path\s*=\s*(?P<value>\"(?:[^\"\\]|\\.)*\")\s*$")


def build_shared(ctx: Context, projects: dict[str, Path]) -> bool:
    """Copy and instantiate; True when resumed from a complete record with the same inputs."""
    inputs = {"julia": ctx.identity(),
              "environments": {env: {f: file_sha256(p / f) for f in _COPIED if (p / f).is_file()}
                               for env, p in projects.items()},
              "package_sources": {env: _tree_digest(p) for env, p in projects.items() if checks.project_package(p)},
              "developed": {env: _developed_digest(p) for env, p in projects.items()}}
    digest = inputs_digest(inputs)
    record_dir = ctx.depot / RECORD_DIR
    old = read_record(record_dir)
    if old is not None and old.get("inputs_digest") == digest:
        ctx.emit({"event": "resumed", "variant": None, "reason": "shared depot: same inputs as the recorded build"})
        ctx.shared_digest = digest
        return True
    if ctx.depot.exists():
        # different inputs or an unfinished build: what was copied goes; packages, artifacts and
        # registries stay (content-addressed by Pkg; what the new manifests do not use is pruned)
        for sub in ("environments", "dev", str(RECORD_DIR)):
            shutil.rmtree(ctx.depot / sub, ignore_errors=True)
    for name, p in projects.items():
        _copy_environment(ctx, name, p)
        _check_manifest_julia(ctx, name)
    r = julia_step(ctx, "shared depot", None, "instantiate",
                   scripts.instantiate_script([str(ctx.env_dir(e)) for e in projects]), record_dir,
                   ctx.julia_env([ctx.depot]))
    ctx.warnings += checks.check_instantiated(ctx.depot, [ctx.env_dir(e) for e in projects])
    _prune_packages(ctx, projects)
    steps = [r.to_dict()]
    if ctx.probe_step is not None:  # the probe ran before the depot existed: its script and log join the record
        for sub, name in (("scripts", "probe.jl"), ("logs", "probe.log")):
            shutil.copyfile(ctx.work / sub / name, record_dir / sub / name)
        steps.insert(0, ctx.probe_step.to_dict())
    write_record(record_dir, {
        "inputs": inputs, "inputs_digest": digest, "probe": ctx.probe.to_dict(), "steps": steps,
        "manifests": {e: file_sha256(ctx.env_dir(e) / "Manifest.toml") for e in projects},
    })
    ctx.shared_digest = digest
    return False


def _check_manifest_julia(ctx: Context, env: str) -> None:
    """Pkg installs a manifest resolved by another Julia minor version as it is, with a warning
    (Types.check_warn_manifest_julia_version_compat): its stdlib entries may not be that Julia's."""
    import tomllib

    try:
        resolved = str(tomllib.loads((ctx.env_dir(env) / "Manifest.toml").read_text()).get("julia_version", ""))
    except (OSError, tomllib.TOMLDecodeError):
        return  # manifest_packages reports it
    if resolved and ".".join(resolved.split(".")[:2]) != ctx.probe.minor:
        message = (f"environment {env}: Manifest.toml was resolved by Julia {resolved}, the build uses "
                   f"{ctx.probe.version}; re-resolve it with that Julia")
        ctx.warnings.append(message)
        ctx.emit({"event": "warning", "variant": None, "message": message})


def _developed(project: Path) -> list[tuple[str, Path]]:
    """``(name, source dir)`` of each developed package (a manifest ``path`` entry)."""
    out = []
    for name, e in checks.manifest_packages(project / "Manifest.toml", f"project {project}"):
        if isinstance(e.get("path"), str):
            src = (project / str(e["path"])).resolve()
            if not (src / "Project.toml").is_file() and not (src / "JuliaProject.toml").is_file():
                raise BuildError(f"project {project}: developed package {name} at {src} has no Project.toml")
            out.append((name, src))
    return out


def _developed_digest(project: Path) -> dict[str, str]:
    """Each developed package's files: a changed source rebuilds."""
    return {name: _tree_digest(src) for name, src in _developed(project)}


def _tree_digest(top: Path) -> str:
    """The digest of a source tree's files (path, size, mtime; .git skipped)."""
    entries = []
    for dirpath, dirnames, files in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for f in sorted(files):
            st = os.stat(os.path.join(dirpath, f))
            entries.append(f"{os.path.relpath(os.path.join(dirpath, f), top)}:{st.st_size}:{st.st_mtime_ns}")
    return inputs_digest({"files": entries})


def _copy_environment(ctx: Context, env: str, project: Path) -> None:
    """Project.toml, Manifest.toml (+ LocalPreferences.toml) into environments/<env>/ with
    their mtimes -- the whole directory (but .git) when the project is itself a package, whose
    sources Pkg then precompiles too; developed packages into dev/<Name>/, their manifest paths
    made relative (``../../dev/<Name>``) so the depot works wherever it is mounted."""
    dest = ctx.env_dir(env)
    if checks.project_package(project):
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(project, dest, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    else:
        dest.mkdir(parents=True)
        for f in _COPIED:
            if (project / f).is_file():
                shutil.copy2(project / f, dest / f)
    moved = {}
    for name, src in _developed(project):
        target = ctx.depot / "dev" / name
        if target.exists():
            raise BuildError(f"project {project}: developed package {name} is also developed by another project")
        shutil.copytree(src, target, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        moved[name] = f"../../dev/{name}"
    if moved:
        _rewrite_paths(dest / "Manifest.toml", moved)


def _rewrite_paths(manifest: Path, moved: dict[str, str]) -> None:
    """Replace the ``path = "..."`` line of each moved package's ``[[deps.Name]]`` entry, every
    other byte of the manifest unchanged."""
    lines = manifest.read_text(encoding="utf-8").splitlines(keepends=True)
    current = None
    for i, line in enumerate(lines):
        m = _DEPS_HEADER.match(line)
        if m is not None:
            current = m.group("name").strip('"')
        elif line.startswith("["):
            current = None
        elif current in moved and _PATH_LINE.match(line.rstrip("\n")):
            lines[i] = f'path = "{moved[current]}"\n'
    st = manifest.stat()
    manifest.write_text("".join(lines), encoding="utf-8")
    os.utime(manifest, ns=(st.st_atime_ns, st.st_mtime_ns))


def _prune_packages(ctx: Context, projects: dict[str, Path]) -> None:
    """Remove package versions left by an earlier build whose manifests differed: a release
    holds what its manifests name, never a mix."""
    from depotdelivery.julia.slugs import version_slug

    keep = {(n, version_slug(str(e["uuid"]), str(e["git-tree-sha1"])))
            for env in projects for n, e in checks.manifest_packages(ctx.env_dir(env) / "Manifest.toml", "prune")
            if isinstance(e.get("git-tree-sha1"), str) and isinstance(e.get("uuid"), str)}
    pkgs = ctx.depot / "packages"
    for d in sorted(pkgs.glob("*/*")) if pkgs.is_dir() else []:
        if d.is_dir() and (d.parent.name, d.name) not in keep:
            shutil.rmtree(d)
            ctx.emit({"event": "pruned", "variant": None, "path": str(d)})
