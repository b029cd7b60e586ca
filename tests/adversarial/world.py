"""One published world per session (two releases, a channel history, a node cache with hydrated
depots), reset per hypothesis example by copying it back to fixed paths, and the checks every
attack ends with: the right exit code, nothing written outside the node cache, and every depot
hydrated before the attack byte-for-byte intact."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from node_fixtures import NodeRepo, build_repo, captured_cpu
from repo_fixtures import tree_digest

from depotdelivery.errors import DepotDeliveryError

__all__ = ["HASWELL", "A", "B", "Outcome", "Scene", "World", "build_world", "cli", "heavy", "resign_release"]

A, B = "hep/2026.11", "hep/2026.12"  # the channel went A (seq 1) -> B (seq 2)
HASWELL = str(captured_cpu("linux-rhel7-haswell"))
TARGETS = ("generic", "haswell")


def heavy(divisor: int):
    """Settings for tests whose examples each run several commands: a fraction of the profile's
    max_examples (so HYPOTHESIS_PROFILE=thorough still scales them), at least 10."""
    from hypothesis import settings

    return settings(max_examples=max(10, settings.default.max_examples // divisor))


@dataclass(frozen=True)
class Outcome:
    code: int
    err: str


def cli(*argv: str) -> Outcome:
    """``depotdelivery ARGV`` in-process: exit code and stderr. A job's lease is dropped after
    the call (a CLI process would drop it at exit), so the next example starts clean."""
    from conftest import run_cli

    from depotdelivery.node import locks

    done = run_cli(*argv)
    for lease in list(locks._HELD.values()):
        lease.release()
    return Outcome(done.code, done.err.strip())


@dataclass(frozen=True)
class Scene:
    """The working copy one example attacks: ``scene/repo``, ``scene/cache`` (warm),
    ``scene/cold`` (an empty cache), ``scene/canary`` (must never change)."""

    dir: Path
    repo: NodeRepo
    ids: dict[str, str]  # ref -> release id

    @property
    def root(self) -> Path:
        return self.repo.root

    @property
    def cache(self) -> Path:
        return self.dir / "cache"

    @property
    def cold(self) -> Path:
        return self.dir / "cold"

    @staticmethod
    def rewrite(path: Path, data: bytes, *, keep_mtime: bool = True) -> None:
        """Replace ``path``'s bytes through a new inode (the world is hard-linked to the pristine
        copy), keeping its mode and, by default, its mtime, so only the bytes differ."""
        st = path.lstat()
        path.unlink()
        path.write_bytes(data)
        os.chmod(path, st.st_mode & 0o7777)
        if keep_mtime:
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    def release_dir(self, ref: str) -> Path:
        return self.root / "releases" / ref

    def prepare(self, *extra: str, cache: Path | None = None, mode: str = "stack") -> Outcome:
        return cli("prepare", "--repo", str(self.root), "--trust", str(self.repo.trusted),
                   "--cache", str(cache or self.cache), "--cpuinfo", HASWELL, "--mode", mode, *extra)

    def verify(self, *extra: str) -> Outcome:
        return cli("verify", "--repo", str(self.root), "--trust", str(self.repo.trusted), *extra)

    def api_prepare(self, **kw: object) -> int:
        """The API's answer as an exit code (a non-depotdelivery exception fails the test)."""
        from depotdelivery import prepare

        kw = {"repo": str(self.root), "trusted_keys": str(self.repo.trusted), "cache": str(self.cache),
              "cpuinfo": HASWELL, **kw}
        try:
            p = prepare(**kw)
        except DepotDeliveryError as exc:
            return exc.exit_code
        if p.lease is not None:
            p.lease.release()
        return 0

    # ---- the invariants ---------------------------------------------------------------------
    def outside(self) -> str:
        """Everything in the scene except the node caches: repository, keys, canary."""
        return tree_digest_except(self.dir, {"cache", "cold"})

    def depots(self) -> dict[str, str]:
        d = self.cache / "depots"
        return {k: tree_digest(d / k) for k in sorted(os.listdir(d))} if d.is_dir() else {}

    def assert_intact(self, outside: str, depots: dict[str, str]) -> None:
        """Nothing outside the node caches changed since ``outside`` was taken, and every depot
        of ``depots`` (taken before the attack) is still there, byte-for-byte the same."""
        assert self.outside() == outside, "the attack changed something outside the node caches"
        now = self.depots()
        changed = sorted(k for k, digest in depots.items() if now.get(k) != digest)
        assert not changed, f"depots hydrated before the attack changed or vanished: {changed}"


def tree_digest_except(top: Path, skip: set[str]) -> str:
    parts = [f"{name}={tree_digest(top / name)}" for name in sorted(os.listdir(top)) if name not in skip]
    return "|".join(parts)


class World:
    """The pristine session copy and the fixed working paths examples run at (cache records
    hold absolute paths, so the copy always lands at the same place)."""

    def __init__(self, base: Path) -> None:
        self.pristine = base / "pristine"
        self.work = base / "work"
        self.scene: Scene | None = None

    def fresh(self) -> Scene:
        assert self.scene is not None
        if self.work.exists():
            shutil.rmtree(self.work)
        # hard links: cheap, and safe because attacks go through Scene.rewrite (a new inode)
        # and nothing under test may write into the repository or an existing depot (checked)
        shutil.copytree(self.pristine, self.work, symlinks=True, copy_function=os.link)
        return self.scene


def build_world(base: Path) -> World:
    """Publish A then B (channel stable: seq 1 -> A, seq 2 -> B), hydrate B in stack and copy
    mode and A pinned in stack mode, then keep the whole thing as the pristine copy."""
    world = World(base)
    work = world.work
    repo_a = build_repo(work, targets=TARGETS, packages=2, version="2026.11", seed=0)
    repo_b = build_repo(work, targets=TARGETS, packages=2, version="2026.12", seed=1)
    (work / "canary").mkdir()
    (work / "canary" / "keep.txt").write_text("nothing may write here\n")
    scene = Scene(dir=work, repo=repo_b, ids={A: repo_a.release_id, B: repo_b.release_id})
    for mode in ("stack", "copy"):
        assert (o := scene.prepare(mode=mode)).code == 0, o
    assert (o := scene.prepare("--release", A)).code == 0, o
    shutil.rmtree(scene.cold, ignore_errors=True)
    os.rename(work, world.pristine)
    world.scene = scene
    world.fresh()
    return world


def resign_release(scene: Scene, ref: str, doc: dict, listings: Iterable[bytes] = ()) -> str:
    """A *forged but validly signed* release: ``doc`` rewritten canonically and signed with the
    trusted publisher key (what a buggy or compromised publisher could produce), extra listing
    files stored under their hashes, and the channel pointed at it. Returns the new id."""
    from depotdelivery.publisher.channels import set_channel
    from depotdelivery.store.canonical import canonical_json
    from depotdelivery.store.hashing import hash_bytes
    from depotdelivery.store.keys import load_private_key, sign

    key = load_private_key(scene.repo.key)
    d = scene.release_dir(ref)
    for data in listings:
        path = d / "listings" / f"{hash_bytes(data)}.jsonl"
        if not path.exists():  # an existing one is hard-linked to the pristine copy
            path.write_bytes(data)
    raw = canonical_json(doc)
    scene.rewrite(d / "release.json", raw)
    scene.rewrite(d / "release.json.sig", sign(raw, key))
    set_channel(scene.root, "stable", ref, key)
    return hash_bytes(raw)
