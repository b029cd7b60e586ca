"""Test repositories for the node runtime, built with the real generator and publisher, and a
runner that executes code with the repository as a real read-only mount (private namespace)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest
from captured_cpus import captured_cpu  # noqa: F401 - re-exported for the node tests

ALL_TARGETS = ("generic", "haswell", "skylake-avx512", "znver4", "neoverse-v1", "a64fx")


@dataclass(frozen=True)
class NodeRepo:
    """A published repository: root, trusted-keys dir, the signing key, the release."""

    root: Path
    trusted: Path
    key: Path
    ref: str
    release_id: str
    base: Path  # scratch directory next to it (caches, copies)


def build_repo(base: Path, *, targets: Sequence[str] = ALL_TARGETS, packages: int = 4,
               files: int | None = None, julia_version: str = "1.11.1", name: str = "hep",
               version: str = "2026.11", channel: str | None = "stable", seed: int = 0,
               expires: float | None = 90 * 86400.0, root: Path | None = None,
               cvmfs: str | None = None) -> NodeRepo:
    """Generate a depot with ``depotdelivery.synth.depot`` and publish it with
    ``depotdelivery.publisher.publish`` into ``root`` (default ``base/repo``; signed; ``channel``
    pointed at it), inside a CVMFS transaction of ``cvmfs`` if given."""
    from depotdelivery.publisher.publish import VariantInput, init_repository, publish
    from depotdelivery.store.keys import keygen, load_private_key
    from depotdelivery.synth.depot import generate_release_inputs

    base.mkdir(parents=True, exist_ok=True)
    root = base / "repo" if root is None else root
    trusted = base / "trusted"
    trusted.mkdir(exist_ok=True)
    key_path = base / "publisher.key"
    if not key_path.exists():
        _, pub, _ = keygen(key_path)
        shutil.copy(pub, trusted / "publisher.pub")
    inputs = generate_release_inputs(base / f"inputs-{name}-{version}", final_root=root / "releases" / name / version / "depot",
                                     julia_version=julia_version, packages=packages, files=files,
                                     artifact_bytes=4096, targets=targets, seed=seed)
    if not root.exists() and cvmfs is None:
        init_repository(root)
    variants = {t: VariantInput(dir=v.dir, sysimage=v.sysimage, cpu_target=v.cpu_target, arch=v.arch)
                for t, v in inputs.variants.items()}
    result = publish(root, name, version, inputs.depot, variants, load_private_key(key_path),
                     channel=channel, expires=expires, project=inputs.project, use_hash_cache=False, cvmfs=cvmfs)
    shutil.rmtree(base / f"inputs-{name}-{version}")
    return NodeRepo(root=root, trusted=trusted, key=key_path, ref=f"{name}/{version}",
                    release_id=result.release_id, base=base)


@lru_cache(maxsize=1)
def namespace_problem() -> str | None:
    """Why a private mount namespace with a read-only bind mount cannot be made here, or None."""
    if shutil.which("unshare") is None:
        return "unshare(1) is not installed"
    probe = Path(f"/tmp/depotdelivery-ns-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        done = subprocess.run(
            [*_unshare(), "sh", "-c",
             f"mount --bind {probe} {probe} && mount -o remount,bind,ro {probe} && ! touch {probe}/x 2>/dev/null"],
            capture_output=True, text=True)
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    if done.returncode != 0:
        return f"cannot make a read-only bind mount in a private mount namespace: {done.stderr.strip() or done.returncode}"
    return None


def second_user_problem() -> str | None:
    """Why this process cannot run commands as a second uid (``setpriv --reuid``), or None."""
    if os.geteuid() != 0:
        return "switching to a second uid needs root (setpriv --reuid)"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is missing"
    return None


def _unshare() -> list[str]:
    # root: a private mount namespace is enough; others need a user namespace too (-r)
    return ["unshare", "-m", "--propagation", "private"] if os.geteuid() == 0 else ["unshare", "-rm"]


def ro_command(readonly: Sequence[Path], argv: Sequence[str], *, tmpfs: Sequence[tuple[Path, str]] = ()) -> list[str]:
    """``argv`` run in a private mount namespace where each ``readonly`` path is bind-mounted
    onto itself read-only (paths stay the same: Julia 1.10 caches embed them) and each
    ``(dir, options)`` of ``tmpfs`` is a fresh tmpfs (e.g. ``size=64k`` for ENOSPC, ``ro``)."""
    if namespace_problem():
        pytest.skip(namespace_problem())
    steps = [f"mount --bind '{p}' '{p}' && mount -o remount,bind,ro '{p}'" for p in readonly]
    steps += [f"mkdir -p '{d}' && mount -t tmpfs -o '{opts}' tmpfs '{d}'" for d, opts in tmpfs]
    script = " && ".join(steps + ['exec "$@"'])
    return [*_unshare(), "sh", "-c", script, "sh", *argv]


def run_ro(repo: NodeRepo, code: str, *args: str, env: dict[str, str] | None = None,
           tmpfs: Sequence[tuple[Path, str]] = (), timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` with ``repo.root`` mounted read-only; the code first proves that a
    write into the repository fails."""
    prologue = textwrap.dedent(f"""
        import errno, os
        try:
            open({str(repo.root / '.write-probe')!r}, "w")
        except OSError as exc:
            assert exc.errno == errno.EROFS, exc
        else:
            raise SystemExit("the repository is writable: not a read-only mount")
    """)
    argv = ro_command([repo.root], [sys.executable, "-c", prologue + textwrap.dedent(code), *args], tmpfs=tmpfs)
    return subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout)


def in_job_shell(argv: Sequence[str]) -> list[str]:
    """``argv`` run by a job's shell that exits right after it: ``prepare`` and ``env`` lease
    the depot for their calling process (the shell), so that lease ends with this shell."""
    return ["sh", "-c", '"$@"; exit $?', "sh", *argv]


def node_env(repo: NodeRepo, cache: Path, **extra: str) -> dict[str, str]:
    """DEPOTDELIVERY_* variables pointing at ``repo`` with ``cache`` as the node cache."""
    return {"DEPOTDELIVERY_REPO": str(repo.root), "DEPOTDELIVERY_TRUSTED_KEYS": str(repo.trusted),
            "DEPOTDELIVERY_CACHE": str(cache), **extra}


@pytest.fixture(scope="session")
def node_repo(tmp_path_factory: pytest.TempPathFactory) -> NodeRepo:
    """One small release with every synth target (x86_64 and aarch64), channel ``stable``."""
    return build_repo(tmp_path_factory.mktemp("node-repo"))
