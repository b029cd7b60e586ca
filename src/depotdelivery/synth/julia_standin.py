"""STAND-IN for ``julia`` running the scripts ``depotdelivery build`` generates (no Julia binary
exists on these machines). It records every call and does to the files what Julia, Pkg and
PackageCompiler would, with the project's Julia-faithful writers:

* ``probe``: the installation facts as TOML (version, arch, host CPU, bundled depots, a
  ``versioninfo()`` text);
* ``instantiate``: Pkg's rules -- registries are added only when no depot in JULIA_DEPOT_PATH has
  one; a package counts as installed when *any* depot has ``packages/<Name>/<slug>`` (so a stray
  ``~/.julia`` in the stack would leave the release without it); missing packages and artifacts
  are "downloaded" from a package-server directory (a synth depot) into DEPOT_PATH[1], their
  tree hashes checked as Pkg does; ``JULIA_PKG_OFFLINE=true`` refuses any download;
  ``logs/manifest_usage.toml`` is written into DEPOT_PATH[1];
* ``sysimage``: PackageCompiler's ``create_sysimage`` -- needs PackageCompiler on the load path
  (an ``environments/vX.Y`` listing it in some depot, ``@v#.#`` in JULIA_LOAD_PATH); the ELF
  image's clone targets come from the ``cpu_target`` keyword the script passes (absent:
  PackageCompiler's default, ``native`` = this machine's CPU); its ``ensurecompiled`` writes
  caches (against the default sysimage) into DEPOT_PATH[1];
* ``modules``: the loaded sysimage's modules and build ids (read from the image) as JSON;
* ``precompile``: one pkgimage (``.ji`` + ``.so``) per package not in the loaded sysimage, in
  DEPOT_PATH[1]/compiled/vX.Y/<Name>/, for JULIA_CPU_TARGET (absent: native; only its first
  target before Julia 1.10.11/1.11.2), requiring the loaded sysimage's build ids, with 1.10
  absolute paths + mtimes or 1.11+ ``@depot`` paths + size + CRC-32C.

Configuration: a JSON file named by the wrapper ``write_standin`` creates (``version``, ``arch``,
``host_cpu``, ``pkg_server``, ``log``, ``delay``, ``fail``: rules ``{"step", "cpu_target"?,
"mode": "exit" | "silent" | "native" | "hang"}``).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time
import tomllib
import uuid as _uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "write_standin"]

_HEADER = "# depotdelivery build step: "
_CONST = re.compile(r'^const (?P<name>[A-Z_]+) = (?P<value>".*"|String\[.*\])\s*$')
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_KWARG = re.compile(r"\b(?P<key>[a-z_]+)\s*=\s*(?P<value>[A-Za-z_][A-Za-z_0-9]*|true|false)")
_NIL = "00000000-0000-0000-0000-000000000000"
_MODULES_SYMBOL = "jl_standin_modules"  # where the stand-in's image keeps its modules' build ids


class _Fail(Exception):
    """What real Julia would print before exiting 1."""


def write_standin(bin_dir: str | os.PathLike[str], config: dict[str, Any]) -> Path:
    """Write ``bin_dir/julia`` (this interpreter running the stand-in) and its config file."""
    d = Path(bin_dir)
    d.mkdir(parents=True, exist_ok=True)
    cfg = d / "julia-standin.json"
    cfg.write_text(json.dumps(config, indent=1, sort_keys=True))
    exe = d / "julia"
    exe.write_text(f"#!{sys.executable}\n# STAND-IN for julia (tests and the demo): see depotdelivery.synth.julia_standin\n"
                   "import sys\nfrom depotdelivery.synth.julia_standin import main\n"
                   f"sys.exit(main(sys.argv, {str(cfg)!r}))\n")
    exe.chmod(0o755)
    return exe


def _unescape(body: str) -> str:
    """The value of a Julia string literal's body (the escapes scripts.jl_string writes)."""
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and body[i + 1] in "xu":
            width = 2 if body[i + 1] == "x" else 4
            out.append(chr(int(body[i + 2:i + 2 + width], 16)))
            i += 2 + width
        elif c == "\\":
            out.append(body[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _constants(script: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in script.split("\n"):
        m = _CONST.match(line)
        if m:
            values = [_unescape(s) for s in _STRING.findall(m.group("value"))]
            out[m.group("name")] = values if m.group("value").startswith("String[") else values[0]
    return out


def _depots(env: dict[str, str], home: str, bundled: Sequence[str]) -> list[Path]:
    """JULIA_DEPOT_PATH as Julia expands it (an empty entry: ~/.julia and the bundled depots)."""
    out: list[Path] = []
    for entry in env.get("JULIA_DEPOT_PATH", "").split(os.pathsep):
        out += [Path(home) / ".julia", *map(Path, bundled)] if not entry else [Path(entry)]
    return out


class _Julia:
    def __init__(self, argv: Sequence[str], cfg: dict[str, Any]) -> None:
        self.argv, self.cfg, self.env = list(argv), cfg, dict(os.environ)
        self.version: str = cfg.get("version", "1.11.1")
        self.minor = ".".join(self.version.split(".")[:2])
        self.arch: str = cfg.get("arch", "x86_64")
        self.prefix = Path(argv[0]).absolute().parent.parent
        self.bundled = [str(self.prefix / "local" / "share" / "julia"), str(self.prefix / "share" / "julia")]
        self.depots = _depots(self.env, self.env.get("HOME", "/nonexistent"), self.bundled)
        self.sysimage = argv[argv.index("--sysimage") + 1] if "--sysimage" in argv else None

    # ---- steps -----------------------------------------------------------------------------------

    def probe(self, c: dict[str, Any]) -> None:
        lines = [f"version = {json.dumps(self.version)}", 'commit = "standin0000"', f"arch = {json.dumps(self.arch)}",
                 f"cpu_name = {json.dumps(self.cfg.get('host_cpu', 'skylake-avx512'))}", "word_size = 64",
                 f"bindir = {json.dumps(str(self.prefix / 'bin'))}", f"julia = {json.dumps(self.argv[0])}",
                 f"bundled_depots = {json.dumps(self.bundled)}",
                 f"versioninfo = {json.dumps(f'Julia Version {self.version} (depotdelivery stand-in)')}"]
        Path(c["OUT"]).write_text("\n".join(lines) + "\n")

    def instantiate(self, c: dict[str, Any]) -> None:
        first = self.depots[0]
        offline = self.env.get("JULIA_PKG_OFFLINE", "").lower() in ("true", "1", "yes")
        server = Path(self.cfg.get("pkg_server", "/nonexistent"))
        if not any((d / "registries").is_dir() and any((d / "registries").iterdir()) for d in self.depots):
            if offline:
                raise _Fail("Pkg is in offline mode: cannot install the default registries")
            shutil.copytree(server / "registries", first / "registries", dirs_exist_ok=True)
        for env in c["ENVIRONMENTS"]:
            for name, e in _manifest(Path(env) / "Manifest.toml"):
                if isinstance(e.get("path"), str):
                    if not (Path(env) / e["path"]).is_dir():
                        raise _Fail(f"expected package {name} to exist at path {e['path']}")
                elif "git-tree-sha1" in e:
                    pkg = self._fetch(f"packages/{name}/{_slug(e)}", e["git-tree-sha1"], offline, server, name)
                    for art in _artifact_hashes(pkg):
                        self._fetch(f"artifacts/{art}", art, offline, server, f"artifact of {name}")
            (first / "logs").mkdir(parents=True, exist_ok=True)
            with open(first / "logs" / "manifest_usage.toml", "a") as log:
                log.write(f'[[{json.dumps(str(Path(env) / "Manifest.toml"))}]]\ntime = {time.time()}\n')

    def _fetch(self, rel: str, tree: str, offline: bool, server: Path, what: str) -> Path:
        """A package or artifact found in any depot, else downloaded into DEPOT_PATH[1]."""
        from depotdelivery.julia.treehash import git_tree_hash

        for d in self.depots:
            if (d / rel).is_dir():
                return d / rel
        if offline:
            raise _Fail(f"{what}: not installed, and Pkg is in offline mode (JULIA_PKG_OFFLINE)")
        if not (server / rel).is_dir():
            raise _Fail(f"{what}: tree hash {tree} not found on the package server")
        shutil.copytree(server / rel, self.depots[0] / rel, symlinks=True)
        if git_tree_hash(self.depots[0] / rel) != tree:
            raise _Fail(f"{what}: tree hash mismatch after download")
        return self.depots[0] / rel

    def sysimage_step(self, c: dict[str, Any], script: str) -> None:
        if "@v#.#" not in self.env.get("JULIA_LOAD_PATH", "@:@v#.#:@stdlib").split(":") or not any(
                "PackageCompiler" in _read(d / "environments" / f"v{self.minor}" / "Project.toml") for d in self.depots):
            raise _Fail("ArgumentError: Package PackageCompiler not found in current path.")
        call = script[script.index("create_sysimage("):]
        kwargs = {m.group("key"): m.group("value") for m in _KWARG.finditer(call[:call.index(")")])}

        def get(key: str, default: Any = None) -> Any:
            return c.get(kwargs[key], default) if key in kwargs else default

        cpu_target = get("cpu_target", "native")  # PackageCompiler's default before Julia 1.13
        if self._rule("sysimage", cpu_target) == "native":
            cpu_target = "native"
        project = Path(get("project", self.env.get("JULIA_PROJECT", ".")))
        manifest = _manifest(project / "Manifest.toml")
        wanted: list[str] = list(c["PACKAGES"] if "PACKAGES" in c else _toml(project / "Project.toml").get("deps", {}))
        closure = _closure(manifest, wanted)
        # ensurecompiled: caches of the packages against the default image, into DEPOT_PATH[1]
        self._caches(project, manifest, sorted(closure), _default_modules(self.version), "native", None)
        mods = _default_modules(self.version) + [
            {"name": n, "uuid": e["uuid"], "build_id": _build_id(f"{cpu_target}/{n}/{e.get('git-tree-sha1', '')}")}
            for n, e in manifest if n in closure]
        self._image(Path(get("sysimage_path")), cpu_target, {_MODULES_SYMBOL: json.dumps(mods).encode()}, single=False)

    def modules(self, c: dict[str, Any]) -> None:
        Path(c["OUT"]).write_text(json.dumps(self._loaded_modules()) + "\n")

    def precompile(self, c: dict[str, Any]) -> None:
        mods = self._loaded_modules()
        in_image = {m["name"] for m in mods}
        target = self.env.get("JULIA_CPU_TARGET") or "native"
        if self._rule("precompile", target) == "native":
            target = "native"  # a Pkg.precompile that did not get JULIA_CPU_TARGET
        for env in c["ENVIRONMENTS"]:
            manifest = _manifest(Path(env) / "Manifest.toml")
            todo = [n for n, e in manifest if n not in in_image and ("git-tree-sha1" in e or "path" in e)]
            project = _toml(Path(env) / "Project.toml")
            if isinstance(project.get("name"), str) and isinstance(project.get("uuid"), str):
                # the project is itself a package: Pkg.precompile compiles it too, from the environment
                manifest.append((project["name"], {"uuid": project["uuid"], "path": ".",
                                                   "deps": sorted(project.get("deps", {}))}))
                todo.append(project["name"])
            self._caches(Path(env), manifest, todo, mods, target, self.sysimage)

    # ---- writers ---------------------------------------------------------------------------------

    def _loaded_modules(self) -> list[dict[str, str]]:
        from depotdelivery.errors import DepotDeliveryError
        from depotdelivery.julia.elfimage import read_symbol

        if self.sysimage is None:
            return _default_modules(self.version)
        try:
            raw = read_symbol(self.sysimage, _MODULES_SYMBOL)
        except (DepotDeliveryError, OSError):
            raise _Fail(f"could not load system image {self.sysimage}") from None
        return list(json.loads(raw.rstrip(b"\0")))

    def _image(self, path: Path, cpu_target: str, symbols: dict[str, bytes], *, single: bool) -> None:
        from depotdelivery.synth.elfimage import write_image

        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(path, self._blob(cpu_target, single), machine=self.arch, soname=path.name, extra_symbols=symbols)

    def _blob(self, cpu_target: str, single: bool) -> bytes:
        from depotdelivery.julia.cputarget import parse_cpu_target, to_image_target
        from depotdelivery.julia.targetdata import TargetData
        from depotdelivery.synth.targetdata import target_data_bytes

        host = self.cfg.get("host_cpu", "skylake-avx512")
        specs = parse_cpu_target(cpu_target.replace("native", host), self.arch, self.version)
        return target_data_bytes(TargetData(tuple(to_image_target(s, self.arch, self.version)
                                                   for s in specs[:1 if single else None])))

    def _caches(self, project: Path, manifest: list[tuple[str, dict[str, Any]]], names: Sequence[str],
                mods: list[dict[str, str]], cpu_target: str, sysimage: str | None) -> None:
        """One pkgimage per package (dependencies first), into DEPOT_PATH[1]."""
        from depotdelivery.julia import cachefile as cfm
        from depotdelivery.julia.crc32c import crc32c, crc32c_file
        from depotdelivery.julia.slugs import package_slug, slug
        from depotdelivery.synth.cachefile import image_header_bytes, write_cache_file

        by_name = dict(manifest)
        required = [cfm.RequiredModule(name=m["name"], uuid=None if m["uuid"] == _NIL else _uuid.UUID(m["uuid"]),
                                       build_id=int(m["build_id"], 16)) for m in mods]
        multi = _multi_target(self.version)
        blob = self._blob(cpu_target, single=not multi)
        sized = self.minor not in ("1.9", "1.10")
        projslug = slug(crc32c(f"{project}/Project.toml|{sysimage}|{cpu_target}".encode()), 5)
        for name in names:
            e = by_name[name]
            src = self._source(project, name, e)
            deps = []
            for f in sorted(src.rglob("*.jl")):
                data = f.read_bytes()
                rel = f.relative_to(self._depot_of(src)).as_posix()
                deps.append(cfm.Dependency(path=f"@depot/{rel}", mtime=-1.0, fsize=len(data), crc32c=crc32c(data))
                            if sized else cfm.Dependency(path=str(f), mtime=f.stat().st_mtime))
            checksum = cfm.CHECKSUM_TAG | int(_build_id(f"{name}/{cpu_target}/{sysimage}")[:8], 16)
            stem = self.depots[0] / "compiled" / f"v{self.minor}" / name / f"{package_slug(e['uuid'])}_{projslug}"
            stem.parent.mkdir(parents=True, exist_ok=True)
            header = image_header_bytes(cfm.ImageHeader(julia_version=self.version, arch=self.arch, checksum=checksum,
                                                        required_modules=tuple(required)))
            self._image(stem.with_suffix(".so"), cpu_target, {"jl_system_image_data": header}, single=not multi)
            write_cache_file(cfm.CacheFile(
                julia_version=self.version, arch=self.arch, checksum=checksum,
                worklist=(cfm.WorklistModule(name=name, uuid=_uuid.UUID(e["uuid"]), build_id=checksum & 0xFFFFFFFF),),
                dependencies=tuple(deps), required_modules=tuple(required), clone_targets=blob,
                so_crc=crc32c_file(stem.with_suffix(".so"))), stem.with_suffix(".ji"))

    def _source(self, project: Path, name: str, e: dict[str, Any]) -> Path:
        if isinstance(e.get("path"), str):
            return (project / e["path"]).resolve()
        for d in self.depots:
            if (d / "packages" / name / _slug(e)).is_dir():
                return d / "packages" / name / _slug(e)
        raise _Fail(f"ArgumentError: Package {name} [{e['uuid']}] is required but does not seem to be installed")

    def _depot_of(self, src: Path) -> Path:
        return next((d for d in self.depots if src.is_relative_to(d)), src.parent)

    def _rule(self, step: str, cpu_target: str | None = None) -> str | None:
        for rule in self.cfg.get("fail", []):
            if rule["step"] == step and rule.get("cpu_target", cpu_target) == cpu_target:
                return str(rule["mode"])
        return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise _Fail(f"could not read {path}: {exc}") from None


def _manifest(path: Path) -> list[tuple[str, dict[str, Any]]]:
    return [(n, e) for n, es in _toml(path).get("deps", {}).items() for e in es]


def _slug(e: dict[str, Any]) -> str:
    from depotdelivery.julia.slugs import version_slug

    return version_slug(e["uuid"], e["git-tree-sha1"])


def _artifact_hashes(pkg: Path) -> list[str]:
    doc = _toml(pkg / "Artifacts.toml") if (pkg / "Artifacts.toml").is_file() else {}
    return [v["git-tree-sha1"] for v in doc.values() if isinstance(v, dict) and not v.get("lazy", False)]


def _closure(manifest: list[tuple[str, dict[str, Any]]], roots: list[str]) -> set[str]:
    """The packages (not stdlibs) reachable from ``roots`` (include_transitive_dependencies)."""
    by_name = dict(manifest)
    seen: set[str] = set()
    todo = [r for r in roots if r in by_name]
    while todo:
        n = todo.pop()
        if n in seen or ("git-tree-sha1" not in by_name[n] and "path" not in by_name[n]):
            continue
        seen.add(n)
        todo += [d for d in by_name[n].get("deps", []) if d in by_name]
    return seen


def _build_id(text: str) -> str:
    """A 128-bit build id (hex): checksum tag in the high half, as Julia's images have."""
    h = hashlib.sha256(text.encode()).hexdigest()
    return f"fafbfcfd{h[:24]}"


def _default_modules(version: str) -> list[dict[str, str]]:
    from depotdelivery.synth.depot import STDLIB_UUIDS

    names = [("Core", _NIL), ("Base", _NIL), *sorted(STDLIB_UUIDS.items())]
    return [{"name": n, "uuid": u, "build_id": _build_id(f"default/{version}/{n}")} for n, u in names]


def _multi_target(version: str) -> bool:
    from depotdelivery.julia.cputarget import multi_target_pkgimages

    return multi_target_pkgimages(version)


def main(argv: Sequence[str], config: str) -> int:
    cfg = json.loads(Path(config).read_text())
    script_path = next((a for a in argv[1:] if a.endswith(".jl")), None)
    script = Path(script_path).read_text() if script_path else ""
    step = script.split("\n", 1)[0][len(_HEADER):] if script.startswith(_HEADER) else None
    with open(cfg["log"], "a") as log:
        log.write(json.dumps({"argv": list(argv), "step": step, "script": script, "pid": os.getpid(),
                              "start": time.time(), "env": {k: v for k, v in os.environ.items()
                                                            if k.startswith("JULIA_") or k in ("PATH", "HOME")}}) + "\n")
    julia = _Julia(argv, cfg)
    if step is None:
        print("julia (stand-in): only runs depotdelivery build scripts", file=sys.stderr)
        return 1
    time.sleep(float(cfg.get("delay", {}).get(step, 0)))
    consts = _constants(script)
    mode = julia._rule(step, consts.get("CPU_TARGET", os.environ.get("JULIA_CPU_TARGET")))
    if mode == "exit":
        print(f"ERROR: simulated failure of step {step}", file=sys.stderr)
        return 1
    if mode == "silent":
        return 0  # exits 0, writes nothing: build must notice
    if mode == "hang":
        time.sleep(3600)
    try:
        if step == "sysimage":
            julia.sysimage_step(consts, script)
        else:
            getattr(julia, step)(consts)
    except _Fail as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    print(f"julia (stand-in): step {step} done")
    return 0
