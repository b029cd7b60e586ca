"""The end-to-end demo: generate, sign and publish a depot, then select, prepare, check, roll back and gc on this node."""
from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from depotdelivery.errors import TrustError, UnsupportedError

if TYPE_CHECKING:
    from depotdelivery.node.env import Prepared
    from depotdelivery.publisher.publish import PublishResult
    from depotdelivery.store.keys import PrivateKey

__all__ = ["CHANNEL", "MODES", "RELEASES", "DemoResult", "ModeOutcome", "demo_env", "run_demo"]

CHANNEL = "stable"
MODES = ("stack", "symlink", "copy", "overlay")
# (version, synth seed): the first release, and the second one the channel moves to and back from
RELEASES = (("2026.11", 0), ("2026.12", 1))
BUILT = "2026.11-ci"  # the release `depotdelivery build` makes from the first release's project
BUILD_VARIANTS = {"generic": "generic", "haswell": "haswell,-rdrnd"}
NAME = "hep"
ENV_FILE = "demo.env"


@dataclass(frozen=True, slots=True, kw_only=True)
class ModeOutcome:
    """One hydration mode on this node: prepared (cold and warm timings) or skipped, and why."""

    mode: str
    prepared: bool
    reason: str  # why it was skipped; "" when prepared
    key: str | None = None
    depot_path: tuple[str, ...] = ()
    hydrated: bool = False  # this run built it (False: it was already in the node cache)
    cold_ms: float | None = None
    warm_ms: float | None = None
    check: str = ""  # the staleness prediction's summary line for this depot
    warnings: tuple[str, ...] = ()  # what prepare() warns about (copy mode with Julia 1.10 caches)

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "prepared": self.prepared, "reason": self.reason, "key": self.key,
                "depot_path": list(self.depot_path), "hydrated": self.hydrated, "cold_ms": self.cold_ms,
                "warm_ms": self.warm_ms, "check": self.check, "warnings": list(self.warnings)}


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoResult:
    """What the demo did, with every path under ``out_dir``."""

    out_dir: Path
    repo: Path
    trusted_keys: Path
    cache: Path
    key: Path
    env_file: Path
    releases: tuple[str, ...]
    release_ids: dict[str, str]
    host: dict[str, str]
    selected: str
    why: str
    verdicts: tuple[dict[str, Any], ...]
    modes: tuple[ModeOutcome, ...]
    env: dict[str, str]
    julia_args: tuple[str, ...]
    check: dict[str, Any]
    channel_before: dict[str, Any]  # after pointing the channel at the second release
    channel_after: dict[str, Any]  # after the rollback
    prepared_after_rollback: str
    replay_refused: str  # the node's message refusing a replayed older channel document
    gc: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir), "repo": str(self.repo), "trusted_keys": str(self.trusted_keys),
            "cache": str(self.cache), "key": str(self.key), "env_file": str(self.env_file),
            "releases": list(self.releases), "release_ids": dict(self.release_ids), "host": dict(self.host),
            "selected": self.selected, "why": self.why, "verdicts": list(self.verdicts),
            "modes": [m.to_dict() for m in self.modes], "env": dict(self.env), "julia_args": list(self.julia_args),
            "check": self.check, "channel_before": self.channel_before, "channel_after": self.channel_after,
            "prepared_after_rollback": self.prepared_after_rollback, "replay_refused": self.replay_refused,
            "gc": self.gc, "timings": dict(self.timings),
        }


def demo_env(out_dir: str | os.PathLike[str]) -> dict[str, str]:
    """The variables that point the CLI and ``prepare()`` at the demo's repository, keys and
    node cache (also written to ``<out_dir>/demo.env`` for ``source``)."""
    d = Path(out_dir).absolute()
    return {
        "DEPOTDELIVERY_REPO": str(d / "repo"),
        "DEPOTDELIVERY_CHANNEL": CHANNEL,
        "DEPOTDELIVERY_TRUSTED_KEYS": str(d / "node" / "trusted-keys"),
        "DEPOTDELIVERY_CACHE": str(d / "node" / "cache"),
        # the publisher's stat-keyed hash cache would otherwise go to ~/.cache
        "DEPOTDELIVERY_PUBLISH_CACHE": str(d / "publisher" / "hash-cache"),
    }


class _Story:
    """The human narrative: numbered steps, the CLI command each step corresponds to, timings."""

    def __init__(self, out: TextIO | None, base: Path) -> None:
        self.out = out
        self.base = base
        self.timings: dict[str, float] = {}
        self._t = time.perf_counter()
        self._step = ""

    def say(self, text: str = "") -> None:
        if self.out is not None:
            self.out.write(text + "\n")
            self.out.flush()

    def cli(self, *argv: str) -> None:
        """The command a user would type for this step (shown, not run)."""
        words = [shlex.quote(self.short(a)) for a in argv]
        lines, line = [], "  $"
        for i, w in enumerate(words):
            # long commands break before an option, as one would type them in a script
            if w.startswith("--") and len(line) > 60 and i + 1 < len(words):
                lines.append(line + " \\")
                line = "     "
            line += " " + w
        self.say("\n".join(lines + [line]))

    def short(self, text: str) -> str:
        """Paths inside the output directory shown relative to the current directory."""
        base = str(self.base)
        if base in text:
            rel = os.path.relpath(base)
            return text.replace(base, base if rel.startswith("..") else rel)
        return text

    def step(self, name: str, title: str) -> None:
        self._close()
        self._step = name
        self._t = time.perf_counter()
        self.say(f"\n== {title} ==")

    def _close(self) -> None:
        if self._step:
            self.timings[self._step] = round(time.perf_counter() - self._t, 4)

    def finish(self) -> None:
        self._close()
        self._step = ""


def _generate(build: Path, repo: Path, version: str, seed: int, julia_version: str) -> Any:
    """Release inputs as a CI would build them, at a fresh path (regenerated on every run:
    the generator is deterministic, so a re-run re-publishes identical bytes)."""
    from depotdelivery.synth.depot import DEFAULT_TARGETS, generate_release_inputs

    target = build / f"{NAME}-{version}"
    if target.exists():
        shutil.rmtree(target)
    targets = [t for ts in DEFAULT_TARGETS.values() for t in ts]
    return generate_release_inputs(target, final_root=repo / "releases" / NAME / version / "depot",
                                   julia_version=julia_version, packages=8, artifact_bytes=32 * 1024,
                                   targets=targets, seed=seed)


def _publish(story: _Story, repo: Path, inputs: Any, version: str, key: PrivateKey, hash_cache: Path,
             channel: str | None) -> PublishResult:
    from depotdelivery.publisher.publish import VariantInput, publish
    from depotdelivery.units import human_bytes

    variants = {t: VariantInput(dir=v.dir, sysimage=v.sysimage, cpu_target=v.cpu_target, arch=v.arch)
                for t, v in inputs.variants.items()}
    argv = ["depotdelivery", "publish", "--repo", str(repo), "--name", NAME, "--version", version,
            "--depot", str(inputs.depot)]
    for t, v in sorted(inputs.variants.items()):
        argv += ["--variant", f"{t}={v.dir}", "--cpu-target", f"{t}={v.cpu_target}"]
    argv += ["--key", str(key.path)] + (["--channel", channel] if channel else [])
    story.cli(*argv)
    r = publish(repo, NAME, version, inputs.depot, variants, key, channel=channel, project=inputs.project,
                hash_cache_dir=hash_cache)
    if r.created:
        story.say(f"published {r.ref} (release id {r.release_id[:16]}...): {r.files} files, {human_bytes(r.bytes)}, "
                  f"{r.linked_files} hard-linked to an earlier release, in {r.seconds:.2f} s")
    else:
        story.say(f"{r.ref} was already published with identical content (release id {r.release_id[:16]}...): "
                  "nothing written")
    if r.channel_seq is not None:
        story.say(f"channel {channel} -> {r.ref} (seq {r.channel_seq})")
    return r


def _build(story: _Story, base: Path, repo: Path, inputs: Any, key: PrivateKey, hash_cache: Path) -> tuple[str, str]:
    """``depotdelivery build`` from the first release's project with the STAND-IN julia
    (depotdelivery.synth.julia_standin: no Julia exists here), its package server being the
    generated depot; then publish. Returns (ref, release id)."""
    from depotdelivery.publisher.build import build_release
    from depotdelivery.store.repo import Repository
    from depotdelivery.synth.julia_standin import write_standin

    ref = f"{NAME}/{BUILT}"
    if (repo / "releases" / NAME / BUILT / "release.json").exists():
        story.say(f"{ref} is already published (releases are immutable; a re-run changes nothing)")
        return ref, Repository.open(repo).read_release(NAME, BUILT).id
    ci = base / "publisher" / "ci"
    project = ci / "projects" / "hep"
    project.mkdir(parents=True, exist_ok=True)
    for f in ("Project.toml", "Manifest.toml"):
        shutil.copy2(inputs.depot / inputs.project / f, project / f)
    minor = ".".join(inputs.julia_version.split(".")[:2])
    tools = ci / "tools"  # the CI's own depot, where PackageCompiler is installed
    (tools / "environments" / f"v{minor}").mkdir(parents=True, exist_ok=True)
    (tools / "environments" / f"v{minor}" / "Project.toml").write_text(
        '[deps]\nPackageCompiler = "9b87118b-4619-50d2-8e1e-99f35a4d4d9d"\n')
    julia = write_standin(ci / "julia" / "bin", {"version": inputs.julia_version, "pkg_server": str(inputs.depot),
                                                  "log": str(ci / "julia-calls.jsonl")})
    first = inputs.packages[0].name
    argv = ["depotdelivery", "build", "--repo", str(repo), "--name", NAME, "--version", BUILT, "--project", str(project),
            "--julia", str(julia), *(a for v, t in BUILD_VARIANTS.items() for a in ("--variant", f"{v}={t}")),
            "--sysimage-packages", first, "--in-place", "--publish", "--key", str(key.path)]
    story.cli(*argv)

    def event(e: dict[str, Any]) -> None:
        if e["event"] == "step" and e["state"] == "done":
            story.say(f"  [{e.get('variant') or 'shared'}] {e['step']} done")

    r = build_release(repo, NAME, BUILT, [project], str(julia), BUILD_VARIANTS, sysimage_packages=[first], in_place=True,
                      keys=[key], work_dir=ci / "work", tools_depot=tools, events=event, hash_cache_dir=hash_cache)
    published = r.published or {}
    story.say(f"built and published {published.get('release')} (release id {str(published.get('release_id'))[:16]}...) "
              f"with the stand-in julia: " + ", ".join(f"{v.name} ({v.caches} caches)" for v in r.variants))
    story.say(f"build record (versioninfo, manifests, commands, environment, timings): "
              f"{story.short(str(r.path / 'depot' / 'config' / 'depotdelivery-build' / 'record.json'))}")
    return ref, str(published.get("release_id"))


def _prepare_mode(story: _Story, node: dict[str, Any], mode: str,
                  held: list[Prepared]) -> tuple[ModeOutcome, Prepared | None]:
    from depotdelivery.node.prepare import prepare

    try:
        cold = prepare(**node, mode=mode)
    except UnsupportedError as exc:
        story.say(f"  {mode:<8} skipped: {exc}")
        return ModeOutcome(mode=mode, prepared=False, reason=str(exc)), None
    held.append(cold)
    warm = prepare(**node, mode=mode)  # the hot path: what every later job on this node pays
    verb = "hydrated" if cold.hydrated else "already in the cache"
    story.say(f"  {mode:<8} {verb}: {cold.timings['total']:.1f} ms; warm prepare {warm.timings['total']:.2f} ms; "
              f"JULIA_DEPOT_PATH={story.short(cold.env['JULIA_DEPOT_PATH'])}")
    for w in cold.warnings:
        story.say(f"  {'':<8} warning: {w}")
    return ModeOutcome(mode=mode, prepared=True, reason="", key=cold.key, depot_path=cold.depot_path,
                       hydrated=cold.hydrated, cold_ms=cold.timings["total"], warm_ms=warm.timings["total"],
                       warnings=tuple(cold.warnings)), cold


def _check(prepared: Prepared) -> Any:
    """Julia's staleness verdict for every package in the prepared depot (``depotdelivery check``),
    with the release and host of the session ``prepared`` came from."""
    from depotdelivery.node.check import check

    return check(prepared)


def _summary(report: Any) -> str:
    n, ok = len(report.packages), len(report.will_load)
    return f"{ok} of {n} packages will load from caches, {n - ok} will recompile or fail"


@dataclass(slots=True, kw_only=True)
class _Run:
    """One demo run: where everything lives (all under ``base``), the narrative, the node's
    configuration, and the jobs holding a lease (released at the end)."""

    base: Path
    story: _Story
    julia_version: str
    variables: dict[str, str]
    cpuinfo: str | None = None  # a recorded /proc/cpuinfo describing the node, else this machine's CPU
    held: list[Prepared] = field(default_factory=list)

    @property
    def repo(self) -> Path:
        return Path(self.variables["DEPOTDELIVERY_REPO"])

    @property
    def trusted(self) -> Path:
        return Path(self.variables["DEPOTDELIVERY_TRUSTED_KEYS"])

    @property
    def cache(self) -> Path:
        return Path(self.variables["DEPOTDELIVERY_CACHE"])

    @property
    def key_path(self) -> Path:
        return self.base / "publisher" / "publisher.key"

    @property
    def node(self) -> dict[str, Any]:
        node: dict[str, Any] = {"repo": str(self.repo), "channel": CHANNEL, "trusted_keys": str(self.trusted), "cache": str(self.cache)}
        if self.cpuinfo is not None:
            node["cpuinfo"] = self.cpuinfo
        return node


def run_demo(out_dir: str | os.PathLike[str] = "demo-out", *, out: TextIO | None = sys.stdout,
             julia_version: str = "1.11.1", cpuinfo: str | os.PathLike[str] | None = None) -> DemoResult:
    """Run the whole demo inside ``out_dir`` (created if needed; a re-run reuses it) and
    narrate it on ``out`` (None: silent). Everything it writes stays under ``out_dir``:
    the repository, the signing key, the node's trusted keys and its cache. ``cpuinfo``: a
    recorded /proc/cpuinfo the node is described by instead of this machine's CPU (the
    ``cpuinfo`` configuration key: select, prepare and check all see that CPU)."""
    t_start = time.perf_counter()
    base = Path(out_dir).absolute()
    try:
        base.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        from depotdelivery.errors import UsageError

        raise UsageError(f"--dir {out_dir}: not a directory") from None
    run = _Run(base=base, story=_Story(out, base), julia_version=julia_version, variables=demo_env(base),
               cpuinfo=None if cpuinfo is None else os.fspath(Path(cpuinfo).absolute()))
    story = run.story
    story.say(f"depotdelivery demo in {base}")
    key, first, built = _publisher_side(run)
    host, selection = _select_here(run)
    try:
        modes, prepared = _prepare_every_mode(run)
        stack = prepared["stack"]
        report = _env_and_check(run, stack, modes, prepared)
        second, moved, back, after, refused = _rollback(run, key)
        gc = _gc(run, after)
    finally:
        for p in run.held:
            if p.lease is not None:
                p.lease.release()
    story.finish()
    story.timings["total"] = round(time.perf_counter() - t_start, 4)

    story.say("\n== timings ==")
    for name, seconds in story.timings.items():
        story.say(f"  {name:<9} {seconds:8.3f} s")
    env_file = base / ENV_FILE
    story.say(f"\nTry it yourself:  source {story.short(str(env_file))}; depotdelivery select; depotdelivery check")
    return DemoResult(
        out_dir=base, repo=run.repo, trusted_keys=run.trusted, cache=run.cache, key=run.key_path, env_file=env_file,
        releases=(first.ref, second.ref),
        release_ids={first.ref: first.release_id, second.ref: second.release_id, built[0]: built[1]},
        host={"arch": host.arch, "brand": host.brand, "source": host.source, "julia_cpu": selection.host_cpu,
              "julia_cpu_source": selection.host_cpu_source},
        selected=selection.target, why=selection.why, verdicts=tuple(v.to_dict() for v in selection.verdicts),
        modes=tuple(modes), env=dict(stack.env), julia_args=stack.julia_args, check=report.to_dict(),
        channel_before=moved.summary(), channel_after=back.summary(),
        prepared_after_rollback=after.release, replay_refused=refused, gc=gc.to_dict(), timings=story.timings,
    )


def _publisher_side(run: _Run) -> tuple[PrivateKey, PublishResult, tuple[str, str]]:
    """Steps 1-3b: generate the depot, make the key (the node trusts its public half), publish,
    build a release from the project; the built release's (ref, id)."""
    from depotdelivery.publisher.publish import init_repository
    from depotdelivery.store.keys import keygen, load_private_key

    story, repo, trusted, key_path = run.story, run.repo, run.trusted, run.key_path
    story.step("generate", "1. CI: build a Julia depot with one sysimage per CPU target")
    inputs = _generate(run.base / "build", repo, RELEASES[0][0], RELEASES[0][1], run.julia_version)
    story.say(f"generated a Julia {inputs.julia_version} depot in {story.short(str(inputs.root))}: "
              f"{len(inputs.packages)} packages ({', '.join(p.name for p in inputs.packages[:4])}, ...), "
              f"{len(inputs.artifacts)} artifacts, environment {inputs.project}")
    for t, v in inputs.variants.items():
        story.say(f"  variant {t:<15} {v.arch:<8} JULIA_CPU_TARGET={v.cpu_target}")

    story.step("keys", "2. publisher: create a signing key; the node trusts its public half")
    key_path.parent.mkdir(parents=True, exist_ok=True)
    story.cli("depotdelivery", "keygen", "--out", str(key_path))
    if not key_path.exists():
        keygen(key_path)
    key = load_private_key(key_path)
    trusted.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(key_path.with_name(key_path.name + ".pub"), trusted / "publisher.pub")
    story.say(f"key {key.keyid}: private {story.short(str(key_path))}, public copied to "
              f"{story.short(str(trusted / 'publisher.pub'))}")

    story.step("publish", f"3. publisher: sign and publish {NAME}/{RELEASES[0][0]}, point channel {CHANNEL} at it")
    init_repository(repo)
    first = _publish(story, repo, inputs, RELEASES[0][0], key, Path(run.variables["DEPOTDELIVERY_PUBLISH_CACHE"]),
                     CHANNEL)
    story.step("build", f"3b. CI: depotdelivery build {NAME}/{BUILT} from the Julia project (stand-in julia)")
    built = _build(story, run.base, repo, inputs, key, Path(run.variables["DEPOTDELIVERY_PUBLISH_CACHE"]))
    (run.base / ENV_FILE).write_text(
        "# source this file to point depotdelivery at the demo (written by `depotdelivery demo`)\n"
        + "".join(f"export {k}={shlex.quote(v)}\n" for k, v in run.variables.items()))
    return key, first, built


def _select_here(run: _Run) -> tuple[Any, Any]:
    """Step 4: the variant Julia accepts on this host, with every verdict."""
    from depotdelivery.node.config import resolve
    from depotdelivery.node.select import describe_cpu_source, select
    from depotdelivery.node.session import Session

    story = run.story
    story.step("select", "4. node: which variant does Julia accept here, and why")
    story.cli("depotdelivery", "select", "--repo", str(run.repo), "--channel", CHANNEL, "--trust", str(run.trusted),
              "--cache", str(run.cache))
    session = Session(resolve(run.node))
    release, host = session.release(), session.host()
    selection = select(release, host)
    story.say(f"host CPU: {host.brand or host.vendor} ({host.arch}), detected from {host.source}; "
              f"Julia {release.julia_version} calls it {selection.host_cpu} "
              f"({describe_cpu_source(selection.host_cpu_source)})")
    story.say(f"selected {selection.target} (JULIA_CPU_TARGET={selection.variant.cpu_target}); "
              "* selected, + Julia would accept it too, - Julia would refuse it:")
    for v in selection.verdicts:
        mark = "*" if v.target == selection.target else ("+" if v.accepted else "-")
        story.say(f"  {mark} {v.target:<15} {v.reason}")
    return host, selection


def _prepare_every_mode(run: _Run) -> tuple[list[ModeOutcome], dict[str, Prepared]]:
    """Step 5: prepare the depot in every hydration mode, cold then warm."""
    run.story.step("prepare", "5. node: prepare the depot in every hydration mode (cold, then warm)")
    run.story.cli("depotdelivery", "prepare", "--mode", "MODE")
    modes: list[ModeOutcome] = []
    prepared: dict[str, Prepared] = {}
    for mode in MODES:
        outcome, p = _prepare_mode(run.story, run.node, mode, run.held)
        modes.append(outcome)
        if p is not None:
            prepared[mode] = p
    return modes, prepared


def _env_and_check(run: _Run, stack: Prepared, modes: list[ModeOutcome], prepared: dict[str, Prepared]) -> Any:
    """Steps 6-7: the job environment, and which caches Julia will load in each mode."""
    from depotdelivery.julia.stale import format_report
    from depotdelivery.node.env import render_env

    story = run.story
    story.step("env", "6. the environment a job gets (eval \"$(depotdelivery env)\")")
    story.cli("depotdelivery", "env")
    for line in render_env(stack.env, "sh").splitlines():
        story.say("  " + story.short(line))
    story.say(f"  julia {' '.join(shlex.quote(story.short(a)) for a in stack.julia_args)} script.jl"
              "   # what `depotdelivery exec -- julia script.jl` runs")

    story.step("check", "7. node: which caches will Julia load? (depotdelivery check)")
    story.cli("depotdelivery", "check")
    report = _check(stack)
    for line in format_report(report).splitlines():
        story.say("  " + story.short(line))
    for i, m in enumerate(modes):
        if m.prepared:
            line = _summary(report if m.mode == "stack" else _check(prepared[m.mode]))
            modes[i] = replace(m, check=line)
            story.say(f"  {m.mode:<8} {line}")
    return report


def _rollback(run: _Run, key: PrivateKey) -> tuple[PublishResult, Any, Any, Prepared, str]:
    """Step 8: a second release, the channel moved to it and rolled back; a replayed older
    channel document refused."""
    from depotdelivery.node.prepare import prepare
    from depotdelivery.publisher.channels import (
        channel_history,
        rollback_channel,
        set_channel,
    )

    story, repo, key_path = run.story, run.repo, run.key_path
    v2, seed2 = RELEASES[1]
    story.step("rollback", f"8. publisher: release {NAME}/{v2}, move {CHANNEL} to it, then roll back")
    inputs2 = _generate(run.base / "build", repo, v2, seed2, run.julia_version)
    second = _publish(story, repo, inputs2, v2, key, Path(run.variables["DEPOTDELIVERY_PUBLISH_CACHE"]), None)
    story.cli("depotdelivery", "channel", "set", "--repo", str(repo), "--channel", CHANNEL,
              "--release", second.ref, "--key", str(key_path))
    moved = set_channel(repo, CHANNEL, second.ref, key)
    story.say(f"channel {CHANNEL} -> {moved.release} (seq {moved.seq})")
    newer = prepare(**run.node, mode="stack")
    run.held.append(newer)
    story.say(f"node: prepare now gives {newer.release} variant {newer.variant} "
              f"({'hydrated' if newer.hydrated else 'cached'} in {newer.timings['total']:.1f} ms)")
    channel_file = repo / "channels" / f"{CHANNEL}.json"
    replay = (channel_file.read_bytes(), channel_file.with_name(channel_file.name + ".sig").read_bytes())
    story.cli("depotdelivery", "channel", "rollback", "--repo", str(repo), "--channel", CHANNEL,
              "--key", str(key_path))
    back = rollback_channel(repo, CHANNEL, key)
    story.say(f"channel {CHANNEL} -> {back.release} (seq {back.seq}): a rollback is a new, higher seq")
    after = prepare(**run.node, mode="stack")
    run.held.append(after)
    story.say(f"node: prepare gives {after.release} again "
              f"({'hydrated' if after.hydrated else 'still in the cache'}, {after.timings['total']:.2f} ms)")
    story.say(f"history of {CHANNEL}:")
    for e in channel_history(repo, CHANNEL)[:3]:
        story.say(f"  seq {e.seq:>3}  {e.issued}  {e.release}")
    refused = _replay(story, run.node, channel_file, replay)
    return second, moved, back, after, refused


def _gc(run: _Run, after: Prepared) -> Any:
    """Step 9: the finished jobs release their leases; gc keeps the depot a running job uses."""
    from depotdelivery.node.cache import NodeCache

    story = run.story
    story.step("gc", "9. node: gc keeps what a running job uses")
    for p in run.held:
        if p is not after and p.lease is not None and p.key != after.key:
            p.lease.release()  # these jobs have finished
    node_cache = NodeCache(str(run.cache))
    story.cli("depotdelivery", "status")
    for d in node_cache.status():
        story.say(f"  {d.key}  {d.release} {d.variant} {d.mode}"
                  f"{'  (leased by a running job)' if d.leases else ''}")
    story.cli("depotdelivery", "gc", "--keep", "0")
    gc = node_cache.gc(keep=0)
    story.say(f"removed {len(gc.removed)} depot(s); kept {len(gc.kept_leased)} leased by a running job "
              f"({', '.join(gc.kept_leased) or 'none'})")
    return gc


def _replay(story: _Story, node: dict[str, Any], channel_file: Path, replay: tuple[bytes, bytes]) -> str:
    """Put the older (validly signed) channel document back, as an attacker or a stale mirror
    would, and show the node refusing it; then restore the current one."""
    from depotdelivery.node.prepare import prepare
    from depotdelivery.store.atomic import write_atomic

    sig_file = channel_file.with_name(channel_file.name + ".sig")
    current = (channel_file.read_bytes(), sig_file.read_bytes())
    write_atomic(sig_file, replay[1])
    write_atomic(channel_file, replay[0])
    try:
        prepare(**node, mode="stack")
    except TrustError as exc:
        message = str(exc)
    else:
        message = ""
    finally:
        write_atomic(sig_file, current[1])
        write_atomic(channel_file, current[0])
    story.say("replaying the older channel document (validly signed, lower seq): "
              + (f"refused: {story.short(message)}" if message else "ACCEPTED (this is a bug)"))
    return message
