"""``depotdelivery check --julia PATH``: run a real Julia once in the prepared environment and
compare, field by field, what it reports with what depotdelivery predicted.

Julia runs a small probe script (``PROBE``) with ``JULIA_DEBUG=loading``, ``--startup-file=no``,
``--history-file=no`` and ``--color=no`` and the prepared ``--sysimage``. The probe prints, on
stdout, lines of its own (``depotdelivery-probe:<key>\\t<values>``): ``VERSION``,
``Sys.CPU_NAME``, ``Base.JLOptions().image_file``, ``Sys.BINDIR``, ``DEPOT_PATH``, then for each
package of the prediction, in load order, whether ``Base.isprecompiled`` finds a loadable cache
and, if so, the cache ``Base.require`` loaded it from (``Base.pkgorigins[pkg].cachepath``) and the
module's build id. A package without a loadable cache is not required: nothing is compiled, so
nothing is written, and the run stays short. Julia's stderr (the loader's debug messages:
every rejection and why) is parsed by julia/loadinglog.py and kept whole in the report.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from depotdelivery.errors import JuliaOutputError, UsageError

if TYPE_CHECKING:
    from depotdelivery.cpu import HostCPU
    from depotdelivery.julia.loadinglog import LoadingLog
    from depotdelivery.julia.stale import PackagePrediction, StalenessReport
    from depotdelivery.node.env import Prepared
    from depotdelivery.store.release import Release

__all__ = [
    "DEFAULT_TIMEOUT",
    "PROBE",
    "PROBE_PREFIX",
    "JuliaCheck",
    "JuliaRun",
    "Mismatch",
    "Probe",
    "ProbePackage",
    "check_with_julia",
    "compare_with_julia",
    "namespace_problem",
    "parse_probe",
    "run_julia",
]

DEFAULT_TIMEOUT = 300.0
PROBE_PREFIX = "depotdelivery-probe:"
PROBE_FORMAT = 1
# Julia 1.10+ (Base.isprecompiled is new in 1.10). Each argument is NAME=UUID.
PROBE = """\
let P = "depotdelivery-probe:"
    out(xs...) = (print(stdout, P); join(stdout, xs, '\\t'); println(stdout); flush(stdout))
    out("format", 1)
    out("julia_version", VERSION)
    out("cpu_name", Sys.CPU_NAME)
    out("image_file", unsafe_string(Base.JLOptions().image_file))
    out("bindir", Sys.BINDIR)
    foreach(d -> out("depot", d), DEPOT_PATH)
    for a in ARGS
        name, u = split(a, '=')
        id = Base.PkgId(Base.UUID(u), String(name))
        if !Base.isprecompiled(id)
            out("package", u, name, "stale")
            continue
        end
        out("package", u, name, "precompiled")
        try
            m = Base.require(id)
            o = get(Base.pkgorigins, id, nothing)
            c = o === nothing ? nothing : o.cachepath
            out("loaded", u, name, string(Base.module_build_id(m), base=16, pad=32), something(c, ""))
        catch e
            out("failed", u, name, replace(sprint(showerror, e), r"\\s+" => " "))
        end
    end
    out("end")
end
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbePackage:
    name: str
    uuid: str
    precompiled: bool
    build_id: str | None = None
    cache: str | None = None  # Base.pkgorigins cachepath ("" when Julia recorded none)
    failed: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "uuid": self.uuid, "precompiled": self.precompiled, "build_id": self.build_id,
                "cache": self.cache, "failed": self.failed}


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    """What the probe script printed."""

    julia_version: str
    cpu_name: str
    image_file: str
    bindir: str
    depots: tuple[str, ...]
    packages: tuple[ProbePackage, ...]
    other_stdout: tuple[str, ...] = ()

    def by_name(self) -> dict[str, ProbePackage]:
        return {p.name: p for p in self.packages}

    def to_dict(self) -> dict[str, Any]:
        return {"julia_version": self.julia_version, "cpu_name": self.cpu_name, "image_file": self.image_file,
                "bindir": self.bindir, "depot_path": list(self.depots),
                "packages": [p.to_dict() for p in self.packages]}


_ARITY = {"format": 1, "julia_version": 1, "cpu_name": 1, "image_file": 1, "bindir": 1, "depot": 1,
          "package": 3, "loaded": 4, "failed": 3, "end": 0}
_HEX32 = re.compile(r"[0-9a-f]{32}")


def _probe_lines(stdout: str) -> tuple[list[tuple[int, str, list[str]]], list[str]]:
    ours, other = [], []
    for no, line in enumerate(stdout.splitlines(), 1):
        if not line.startswith(PROBE_PREFIX):
            other.append(line)  # a package printing to stdout: kept, not judged
            continue
        key, *values = line[len(PROBE_PREFIX):].split("\t")
        if _ARITY.get(key) != len(values):
            raise JuliaOutputError(f"Julia's stdout line {no}: probe line {line[:120]!r} is not one depotdelivery "
                                   f"wrote (key {key!r} with {len(values)} value(s))")
        ours.append((no, key, values))
    return ours, other


def parse_probe(stdout: str) -> Probe:
    """Read the probe's lines from Julia's stdout; JuliaOutputError when they are not complete."""
    ours, other = _probe_lines(stdout)
    if not ours or ours[-1][1] != "end":
        raise JuliaOutputError("Julia's stdout does not end with the probe's last line: the probe did not run to "
                               "its end (a Julia older than 1.10, or killed)")
    single: dict[str, str] = {}
    depots: list[str] = []
    packages: dict[str, ProbePackage] = {}
    for no, key, values in ours[:-1]:
        if key == "depot":
            depots.append(values[0])
        elif key == "package":
            u, name, state = values
            if state not in ("stale", "precompiled"):
                raise JuliaOutputError(f"Julia's stdout line {no}: package state {state!r}")
            packages[name] = ProbePackage(name=name, uuid=u, precompiled=state == "precompiled")
        elif key in ("loaded", "failed"):
            name = values[1]
            if name not in packages:
                raise JuliaOutputError(f"Julia's stdout line {no}: {key} {name} before its package line")
            if key == "loaded" and not _HEX32.fullmatch(values[2]):
                raise JuliaOutputError(f"Julia's stdout line {no}: build id {values[2]!r} is not 32 hex digits")
            p = packages[name]
            packages[name] = (ProbePackage(name=name, uuid=p.uuid, precompiled=p.precompiled, build_id=values[2],
                                           cache=values[3]) if key == "loaded" else
                              ProbePackage(name=name, uuid=p.uuid, precompiled=p.precompiled, failed=values[2]))
        else:
            single[key] = values[0]
    missing = [k for k in ("format", "julia_version", "cpu_name", "image_file", "bindir") if k not in single]
    if missing or single.get("format") != str(PROBE_FORMAT):
        raise JuliaOutputError(f"Julia's stdout: the probe's {', '.join(missing) or 'format'} line is missing or wrong")
    return Probe(julia_version=single["julia_version"], cpu_name=single["cpu_name"], image_file=single["image_file"],
                 bindir=single["bindir"], depots=tuple(depots), packages=tuple(packages.values()),
                 other_stdout=tuple(other))


# -- running Julia ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class JuliaRun:
    argv: tuple[str, ...]
    status: int | None  # None: killed at the time limit
    stdout: str
    stderr: str
    seconds: float
    readonly: tuple[str, ...] = ()  # what Julia saw read-only (a private mount namespace)

    def to_dict(self) -> dict[str, Any]:
        # the probe script itself is PROBE; the report names it instead of repeating it
        argv = ["<PROBE>" if a == PROBE else a for a in self.argv]
        return {"argv": argv, "status": self.status, "seconds": round(self.seconds, 3), "stderr": self.stderr,
                "readonly": list(self.readonly)}


def run_julia(julia: str, prepared: Prepared, packages: Sequence[tuple[str, str]], *,
              timeout: float = DEFAULT_TIMEOUT, readonly: Sequence[str] = ()) -> JuliaRun:
    """Run ``julia`` once with the probe in ``prepared``'s environment (its own process group,
    killed as a whole after ``timeout`` seconds); ``packages`` are (name, uuid) in load order.
    ``readonly``: directories Julia sees read-only (a private mount namespace, :func:`_guard`)."""
    exe = julia if os.sep in julia else _which(julia)
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        raise UsageError(f"--julia {julia}: not an executable file")
    argv = (exe, "--startup-file=no", "--history-file=no", "--color=no", *prepared.julia_args, "-e", PROBE,
            *(f"{n}={u}" for n, u in packages))
    env = {**os.environ, **prepared.env, "JULIA_DEBUG": "loading"}
    t0 = time.monotonic()
    # cwd: the node depot, the one place this run may write to
    proc = subprocess.Popen([*_guard(readonly), *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=prepared.depot, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        status: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        status = None
    return JuliaRun(argv=argv, status=status, stdout=out.decode("utf-8", "replace"),
                    stderr=err.decode("utf-8", "replace"), seconds=time.monotonic() - t0, readonly=tuple(readonly))


def _unshare() -> list[str]:
    # root: a private mount namespace is enough; others need a user namespace too (-r)
    return ["unshare", "-m", "--propagation", "private"] if os.geteuid() == 0 else ["unshare", "-rm"]


def _guard(readonly: Sequence[str]) -> list[str]:
    """The command prefix that runs Julia with ``readonly`` bind-mounted onto themselves
    read-only in a private mount namespace (same paths), or nothing without any."""
    if not readonly:
        return []
    steps = " && ".join(f'mount --bind "${i}" "${i}" && mount -o remount,bind,ro "${i}"' for i in range(1, len(readonly) + 1))
    return [*_unshare(), "sh", "-c", f'{steps} && shift {len(readonly)} && exec "$@"', "sh", *readonly]


def namespace_problem() -> str | None:
    """Why a private mount namespace with a read-only bind mount cannot be made here, or None."""
    import shutil
    import tempfile

    if shutil.which("unshare") is None:
        return "unshare(1) is not installed"
    with tempfile.TemporaryDirectory(prefix="depotdelivery-ns-") as probe:
        done = subprocess.run([*_guard([probe]), "sh", "-c", f'! touch "{probe}/x" 2>/dev/null'],
                              capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"no read-only bind mount in a private mount namespace ({done.stderr.strip() or done.returncode})"
    return None


def _writable_elsewhere(prepared: Prepared, report: StalenessReport) -> list[str]:
    """The depots of the stack other than the node depot, and the repository, that this user
    could write to: Julia's loader touches the cache files it loads (base/loading.jl ``touch``)."""
    node = os.path.realpath(prepared.depot)
    roots = [*report.depot_stack, *([] if prepared.session is None else [prepared.session.root])]
    out: list[str] = []
    for d in sorted(dict.fromkeys(os.path.realpath(r) for r in roots), key=len):  # parents first
        inside = d == node or d.startswith(node + os.sep)
        if not inside and os.path.isdir(d) and os.access(d, os.W_OK) and not any(d.startswith(o + os.sep) for o in out):
            out.append(d)
    return out


def _which(name: str) -> str:
    import shutil

    found = shutil.which(name)
    if found is None:
        raise UsageError(f"--julia {name}: not found on PATH")
    return found


# -- comparing --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class Mismatch:
    """One field where Julia and the prediction disagree."""

    field: str  # julia_version, cpu_name, image_file, depot_path, verdict, cache, build_id, rejection, load_failed
    package: str | None
    predicted: Any
    julia: Any
    line: str

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "package": self.package, "predicted": self.predicted, "julia": self.julia,
                "line": self.line}


def _norm(path: str) -> str:
    return os.path.normpath(path) if path else path


def _bundled(bindir: str) -> set[str]:
    # Julia's bundled depots, which an empty JULIA_DEPOT_PATH entry adds (julia-formats.md "Depot")
    return {_norm(os.path.join(bindir, "..", "local", "share", "julia")), _norm(os.path.join(bindir, "..", "share", "julia"))}


def _session_mismatches(report: StalenessReport, probe: Probe, *, cpu_name: str, image_file: str | None) -> list[Mismatch]:
    out = []
    want = report.julia_version
    got_v = probe.julia_version if want.count(".") >= 2 else ".".join(probe.julia_version.split(".")[:2])
    if got_v != want:
        out.append(Mismatch(field="julia_version", package=None, predicted=want, julia=probe.julia_version,
                            line=f"Julia version: predicted for {want}, this Julia is {probe.julia_version}"))
    if probe.cpu_name != cpu_name:
        out.append(Mismatch(field="cpu_name", package=None, predicted=cpu_name, julia=probe.cpu_name,
                            line=f"Sys.CPU_NAME: predicted {cpu_name}, Julia says {probe.cpu_name}"))
    if image_file is not None and _norm(probe.image_file) != _norm(image_file):
        out.append(Mismatch(field="image_file", package=None, predicted=image_file, julia=probe.image_file,
                            line=f"sysimage: predicted {image_file}, Julia runs {probe.image_file}"))
    bundled = _bundled(probe.bindir)
    depots = [_norm(d) for d in probe.depots if _norm(d) not in bundled]
    if depots != [_norm(d) for d in report.depot_stack]:
        out.append(Mismatch(field="depot_path", package=None, predicted=list(report.depot_stack), julia=list(probe.depots),
                            line=f"DEPOT_PATH: predicted {':'.join(report.depot_stack)}, Julia has {':'.join(probe.depots)}"))
    return out


def _julia_rejections(log: LoadingLog) -> dict[str, list[str]]:
    """cache file -> Julia's reasons, in order, each once (isprecompiled and require both check)."""
    out: dict[str, list[str]] = {}
    for r in log.rejections:
        reasons = out.setdefault(_norm(r.cache), [])
        if r.reason not in reasons:
            reasons.append(r.reason)
    return out


def _package_mismatches(p: PackagePrediction, got: ProbePackage | None, rejected: dict[str, list[str]]) -> list[Mismatch]:
    name = p.name
    if got is None:
        return [Mismatch(field="verdict", package=name, predicted=p.verdict, julia=None,
                         line=f"{name}: the probe did not report it")]
    out = []
    if got.failed is not None:
        out.append(Mismatch(field="load_failed", package=name, predicted=p.cache, julia=got.failed,
                            line=f"{name}: Julia found a cache but loading it failed: {got.failed}"))
    elif p.will_load and not got.precompiled:
        why = rejected.get(_norm(p.cache or ""), [])
        out.append(Mismatch(field="verdict", package=name, predicted="load", julia="recompile",
                            line=f"{name}: predicted to load {p.cache}, Julia finds no loadable cache"
                                 + (f" (it rejected that file: {', '.join(why)})" if why else "")))
    elif not p.will_load and got.precompiled:
        out.append(Mismatch(field="verdict", package=name, predicted=p.verdict, julia="load",
                            line=f"{name}: predicted to recompile ({p.reason}), Julia loads {got.cache or 'a cache'}"))
    elif p.will_load and got.precompiled:
        if _norm(got.cache or "") != _norm(p.cache or ""):
            out.append(Mismatch(field="cache", package=name, predicted=p.cache, julia=got.cache,
                                line=f"{name}: predicted {p.cache}, Julia loaded {got.cache}"))
        elif got.build_id != p.build_id:
            out.append(Mismatch(field="build_id", package=name, predicted=p.build_id, julia=got.build_id,
                                line=f"{name}: build id predicted {p.build_id}, Julia's module has {got.build_id}"))
    if out:
        return out
    for r in p.rejections:
        julia_says = rejected.get(_norm(r.cache), [])
        if r.reason in julia_says or (not julia_says and r.reason == "dependency not loadable"):
            # Base.isprecompiled checks a candidate's dependencies without a message of its own
            continue
        out.append(Mismatch(field="rejection", package=name, predicted=r.reason, julia=julia_says or None,
                            line=f"{name}: {r.cache}: predicted rejection '{r.reason}', Julia "
                                 + (f"rejected it for {', '.join(julia_says)}" if julia_says else "printed no rejection")))
    return out


def _unpredicted(report: StalenessReport, rejected: dict[str, list[str]]) -> list[Mismatch]:
    """Julia rejected a cache in the stack that the prediction thought fine or never looked at."""
    known = {_norm(r.cache) for p in report.packages for r in p.rejections}
    loads = {_norm(p.cache): p.name for p in report.packages if p.cache}
    names = {p.name for p in report.packages}
    out = []
    for cache, all_reasons in rejected.items():
        # "for different buildid": a dependency's cache passed over while Julia looks for the exact
        # build a dependent was compiled against; the package's own choice is judged above
        reasons = [r for r in all_reasons if r != "for different buildid"]
        if cache in known or cache in loads or not reasons:
            continue  # judged above (a rejected predicted load is a verdict mismatch)
        parts = cache.split(os.sep)
        pkg = parts[-2] if len(parts) >= 2 else None
        inside = any(cache.startswith(_norm(d) + os.sep) for d in report.depot_stack)
        if inside and pkg in names:
            out.append(Mismatch(field="rejection", package=pkg, predicted=None, julia=reasons,
                                line=f"{pkg}: Julia rejected {cache} ({', '.join(reasons)}), the prediction has no "
                                     f"rejection for it"))
    return out


def compare_with_julia(report: StalenessReport, probe: Probe, log: LoadingLog, *, cpu_name: str,
                       image_file: str | None) -> list[Mismatch]:
    """Every field where Julia's run (``probe``, ``log``) disagrees with ``report``."""
    out = _session_mismatches(report, probe, cpu_name=cpu_name, image_file=image_file)
    rejected = _julia_rejections(log)
    by_name = probe.by_name()
    for p in report.packages:
        if p.verdict == "not installed" or p.uuid is None:
            continue
        out += _package_mismatches(p, by_name.get(p.name), rejected)
    return out + _unpredicted(report, rejected)


@dataclass(frozen=True, slots=True, kw_only=True)
class JuliaCheck:
    """The outcome of ``check --julia``: agreement, or every mismatch; all Julia printed."""

    mismatches: tuple[Mismatch, ...]
    probe: Probe
    log: LoadingLog
    run: JuliaRun
    notes: tuple[str, ...] = field(default=())

    @property
    def agree(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {"agree": self.agree, "mismatches": [m.to_dict() for m in self.mismatches],
                "julia": self.probe.to_dict(), "log": self.log.to_dict(), "run": self.run.to_dict(),
                "notes": list(self.notes)}


def _packages_in_order(report: StalenessReport) -> list[tuple[str, str]]:
    from depotdelivery.julia.cachefile import read_cache_file
    from depotdelivery.store.fingerprint import Dependency, PackageEntry, load_order

    entries = []
    for p in report.packages:
        if p.verdict == "not installed" or p.uuid is None:
            continue
        deps: tuple[Dependency, ...] = ()
        if p.cache:
            cf = read_cache_file(p.cache, header_only=True)
            deps = tuple(Dependency(name=m.name, uuid=None if m.uuid is None else str(m.uuid), build_id="")
                         for m in cf.required_modules)
        entries.append(PackageEntry(name=p.name, uuid=p.uuid, verdict=p.verdict, deps=deps))
    return [(e.name, e.uuid or "") for e in load_order(entries)]


def check_with_julia(prepared: Prepared, julia: str, release: Release | None = None, host: HostCPU | None = None,
                     *, timeout: float = DEFAULT_TIMEOUT, report: StalenessReport | None = None) -> JuliaCheck:
    """Run ``julia`` once in ``prepared``'s environment and compare with the prediction
    (``report``, computed by node/check.py when not given). ``release`` and ``host`` default
    to those of ``prepared``'s session."""
    from depotdelivery.julia.loadinglog import parse_loading_log
    from depotdelivery.node.check import check, release_and_host
    from depotdelivery.node.fingerprint import sysimage_of

    release, host = release_and_host(prepared, release, host)
    if report is None:
        report = check(prepared, release, host)
    notes = list(report.notes)
    readonly = _writable_elsewhere(prepared, report)
    if readonly and (problem := namespace_problem()) is not None:
        notes.append(f"{', '.join(readonly)} writable and {problem}: Julia's loader updates the modification time "
                     f"of the cache files it loads there (base/loading.jl touch), as in every job")
        readonly = []
    run = run_julia(julia, prepared, _packages_in_order(report), timeout=timeout, readonly=readonly)
    tail = " / ".join(run.stderr.strip().splitlines()[-3:])
    if run.status is None:
        raise JuliaOutputError(f"{julia} did not finish the check within {timeout:g} s and was killed "
                               f"(last stderr: {tail or 'none'})")
    if run.status != 0:
        raise JuliaOutputError(f"{julia} exited with status {run.status} during the check (last stderr: {tail or 'none'})")
    try:
        probe = parse_probe(run.stdout)
    except JuliaOutputError:
        # say what broke on stderr when that is the clearer story (a record cut off mid-way)
        parse_loading_log(run.stderr, release.julia_version)
        raise
    log = parse_loading_log(run.stderr, probe.julia_version)
    mismatches = compare_with_julia(report, probe, log, cpu_name=host.julia_cpu(release.julia_version),
                                    image_file=sysimage_of(prepared))
    return JuliaCheck(mismatches=tuple(mismatches), probe=probe, log=log, run=run, notes=tuple(notes))
