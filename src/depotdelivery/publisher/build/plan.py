"""What ``build`` will do, decided before any Julia step that builds runs: the Julia found by
the probe, the variants (given, or the recommended list for that Julia), their lint, and the
refusals (a target PackageCompiler would turn into ``native``, a Julia 1.10 build away from
its final path)."""
from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from depotdelivery.errors import InputError, UsageError

__all__ = ["VARIANT_SETS", "Probe", "VariantPlan", "check_final_path", "default_variants", "parse_variant_args",
           "plan_variants", "read_probe"]

# The variant lists build uses when none is given (--variant-set):
# * "microarch": one target per common microarchitecture, `-rdrnd` as in Julia's official
#   strings (contrib/ and Make.inc, v1.11.1): a hypervisor may hide RDRAND.
# * "official": one multi-target variant shaped like Julia's release builds (the string
#   PackageCompiler's default_app_cpu_target() uses, from julia-buildbot's inventory.py). The
#   official x86_64 string's fourth target, x86-64-v4, is left out: Julia's CPU tables (1.10-1.12,
#   src/processor_x86.cpp) do not know that name, so its clone would carry no features; the
#   aarch64 string's neoverse-512tvb is left out for the same reason.
_MICROARCH: dict[str, tuple[tuple[str, str, str], ...]] = {  # (variant, cpu target, min Julia minor)
    "x86_64": (("generic", "generic", "1.9"), ("haswell", "haswell,-rdrnd", "1.9"),
               ("skylake-avx512", "skylake-avx512,-rdrnd", "1.9"), ("znver3", "znver3,-rdrnd", "1.9"),
               ("znver4", "znver4,-rdrnd", "1.11")),
    "aarch64": (("generic", "generic", "1.9"), ("neoverse-v1", "neoverse-v1", "1.9"), ("a64fx", "a64fx", "1.9")),
}
_OFFICIAL = {
    "x86_64": "generic;sandybridge,-xsaveopt,clone_all;haswell,-rdrnd,base(1)",
    "aarch64": "generic;cortex-a57;thunderx2t99;carmel,clone_all;apple-m1,base(3)",
}
VARIANT_SETS = ("microarch", "official")


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    """The Julia installation, as its probe step reported it."""

    version: str
    commit: str
    arch: str
    cpu_name: str
    julia: str
    bundled_depots: tuple[str, ...]
    versioninfo: str

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])

    def to_dict(self) -> dict[str, object]:
        return {"version": self.version, "commit": self.commit, "arch": self.arch, "cpu_name": self.cpu_name,
                "julia": self.julia, "bundled_depots": list(self.bundled_depots), "versioninfo": self.versioninfo}


def read_probe(path: Path) -> Probe:
    """Parse the probe step's TOML; a missing or incomplete file is the step's failure."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"step probe: julia exited 0 but wrote no {path}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"step probe: {path} is unreadable ({exc})") from None
    try:
        probe = Probe(version=str(doc["version"]), commit=str(doc.get("commit", "")), arch=str(doc["arch"]),
                      cpu_name=str(doc.get("cpu_name", "")), julia=str(doc["julia"]),
                      bundled_depots=tuple(str(d) for d in doc["bundled_depots"]),
                      versioninfo=str(doc.get("versioninfo", "")))
    except (KeyError, TypeError) as exc:
        raise InputError(f"step probe: {path} lacks {exc}") from None
    if probe.arch not in _MICROARCH:
        raise UsageError(f"Julia {probe.version} is built for {probe.arch}; build supports x86_64 and aarch64")
    return probe


@dataclass(frozen=True, slots=True, kw_only=True)
class VariantPlan:
    """One variant to build: its name (``variants/<name>/``), target string and lint."""

    name: str
    cpu_target: str
    clone_names: tuple[str, ...]  # Julia's CPU names of the targets, after normalisation
    lint: tuple[str, ...]


def default_variants(probe: Probe, variant_set: str = "microarch") -> dict[str, str]:
    """The recommended variants for this Julia: ``{name: JULIA_CPU_TARGET}``."""
    if variant_set == "official":
        return {"multi": _OFFICIAL[probe.arch]}
    if variant_set != "microarch":
        raise UsageError(f"unknown variant set {variant_set!r} (known: {', '.join(VARIANT_SETS)})")
    minor = tuple(int(x) for x in probe.minor.split("."))
    return {name: target for name, target, since in _MICROARCH[probe.arch]
            if minor >= tuple(int(x) for x in since.split("."))}


def _refusal(cpu_target: str) -> str | None:
    """Why PackageCompiler would build this string for the build machine (``native``), if so.

    ``create_sysimage`` passes the string to ``--cpu-target`` (src/PackageCompiler.jl); Julia's
    parse_cmdline (src/processor.cpp) turns a target named ``native`` -- or ``help``, after
    printing its help -- into the host CPU; from Julia 1.13 ``sysimage`` (PackageCompiler's new
    default) means the running image's target, whatever built that."""
    for i, token in enumerate(cpu_target.split(";")):
        name = token.split(",", 1)[0].strip()
        if name in ("native", "help"):
            return f"target {i} is {name!r}: PackageCompiler builds it for this build machine's CPU (native)"
        if name == "sysimage":
            return (f"target {i} is 'sysimage': PackageCompiler (Julia 1.13+) copies the running image's target; "
                    "name the targets explicitly")
    return None


def plan_variants(variants: Mapping[str, str], probe: Probe) -> tuple[VariantPlan, ...]:
    """Parse and lint every target string before anything is built; refuse what cannot work."""
    from depotdelivery.julia.cputarget import lint_cpu_target, parse_cpu_target
    from depotdelivery.store.names import check_name

    if not variants:
        raise UsageError("no variants to build")
    out = []
    for name, cpu_target in variants.items():
        check_name("variant name", name)
        why = _refusal(cpu_target)
        if why is not None:
            raise UsageError(f"variant {name}: refusing JULIA_CPU_TARGET {cpu_target!r}: {why}; "
                             "the image would not load on other nodes")
        try:
            specs = parse_cpu_target(cpu_target, probe.arch, probe.version)
            lint = lint_cpu_target(cpu_target, probe.arch, probe.version)
        except UsageError as exc:
            raise UsageError(f"variant {name}: {exc}") from None
        out.append(VariantPlan(name=name, cpu_target=cpu_target, clone_names=tuple(s.name for s in specs),
                               lint=tuple(lint)))
    return tuple(out)


def check_final_path(probe: Probe, in_place: bool, final: Path) -> None:
    """Julia 1.9/1.10 caches record absolute source paths and mtimes: only a build at the path
    nodes read (the release's final path) gives caches nodes accept."""
    if not in_place and tuple(int(x) for x in probe.minor.split(".")) <= (1, 10):
        raise UsageError(f"Julia {probe.version} caches record absolute source paths: build it at its final path "
                         f"{final} with --in-place (only Julia 1.11+ caches are relocatable)")


def parse_variant_args(specs: Sequence[str]) -> dict[str, str]:
    """``NAME=CPU_TARGET`` arguments (split at the first ``=``: target strings hold none)."""
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, target = spec.partition("=")
        if not sep or not name or not target:
            raise UsageError(f"--variant {spec!r}: expected NAME=CPU_TARGET, e.g. haswell=haswell,-rdrnd")
        if name in out:
            raise UsageError(f"--variant {name} given twice")
        out[name] = target
    return out
