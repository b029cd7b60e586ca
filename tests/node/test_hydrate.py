"""Hydration modes over real directory trees: what is linked, what is a real directory, what is copied."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from depotdelivery.errors import UnsupportedError
from depotdelivery.node import hydrate
from depotdelivery.node.hydrate import Layer


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


@pytest.fixture
def two_layers(tmp_path):
    variant = _tree(tmp_path / "variant", {
        "compiled/v1.11/Foo/abcde_x.ji": "variant-ji",
        "compiled/v1.11/Foo/abcde_x.so": "variant-so",
    })
    shared = _tree(tmp_path / "shared", {
        "packages/Foo/slug1/src/Foo.jl": "module Foo end",
        "packages/Bar/slug2/src/Bar.jl": "module Bar end",
        "artifacts/0123/lib/libx.so": "lib",
        "registries/General.toml": "reg",
        "environments/hep/Project.toml": "[deps]",
        "compiled/v1.11/Bar/fghij_y.ji": "shared-ji",
        "compiled/v1.11/Foo/abcde_x.ji": "shadowed",
        "logs/manifest_usage.toml": "usage",
        "scratchspaces/uuid/key/data": "scratch",
    })
    return [Layer(name="variant", root=variant), Layer(name="shared", root=shared)], tmp_path


def test_stack_is_one_empty_directory(two_layers):
    layers, tmp = two_layers
    build, final = tmp / "build", tmp / "final"
    build.mkdir()
    done = hydrate.hydrate("stack", layers, build, final)
    assert done.depot_path == (str(final / "depot"), str(layers[0].root), str(layers[1].root))
    assert os.listdir(build / "depot") == [] and done.mount is None


def test_symlink_links_at_the_highest_level_and_makes_write_zones_real(two_layers):
    layers, tmp = two_layers
    build, final = tmp / "build", tmp / "final"
    build.mkdir()
    done = hydrate.hydrate("symlink", layers, build, final)
    depot = build / "depot"
    assert done.depot_path == (str(final / "depot"),)
    shared = layers[1].root
    # read-only trees provided by one layer: one link each, at the top
    for name in ("packages", "artifacts", "registries", "environments"):
        assert (depot / name).is_symlink() and os.readlink(depot / name) == str(shared / name)
    # where Julia writes: real directories down to compiled/vX.Y/<Pkg>/, files linked, first layer wins
    for d in ("compiled", "compiled/v1.11", "compiled/v1.11/Foo", "compiled/v1.11/Bar", "logs",
              "scratchspaces", "scratchspaces/uuid", "scratchspaces/uuid/key"):
        assert (depot / d).is_dir() and not (depot / d).is_symlink(), d
    assert os.readlink(depot / "compiled/v1.11/Foo/abcde_x.ji") == str(layers[0].root / "compiled/v1.11/Foo/abcde_x.ji")
    assert (depot / "compiled/v1.11/Foo/abcde_x.ji").read_text() == "variant-ji"
    assert os.readlink(depot / "compiled/v1.11/Bar/fghij_y.ji") == str(shared / "compiled/v1.11/Bar/fghij_y.ji")
    # Pkg rewrites its usage logs: a copy, not a link into the read-only tree
    assert not (depot / "logs/manifest_usage.toml").is_symlink()
    assert (depot / "logs/manifest_usage.toml").read_text() == "usage"
    # a new cache can be written next to the linked ones
    (depot / "compiled/v1.11/Foo/new.ji").write_text("new")
    assert done.files == 9


def test_symlink_merges_directories_both_layers_have(tmp_path):
    a = _tree(tmp_path / "a", {"packages/A/s/a.jl": "a", "artifacts/h1/x": "1"})
    b = _tree(tmp_path / "b", {"packages/B/s/b.jl": "b", "artifacts/h1/y": "2", "artifacts/h2/z": "3"})
    build = tmp_path / "build"
    build.mkdir()
    hydrate.hydrate("symlink", [Layer(name="a", root=a), Layer(name="b", root=b)], build, tmp_path / "final")
    depot = build / "depot"
    assert not (depot / "packages").is_symlink()
    assert os.readlink(depot / "packages/A") == str(a / "packages/A")
    assert os.readlink(depot / "packages/B") == str(b / "packages/B")
    assert not (depot / "artifacts/h1").is_symlink()  # both have it: merged
    assert (depot / "artifacts/h1/x").read_text() == "1" and (depot / "artifacts/h1/y").read_text() == "2"
    assert os.readlink(depot / "artifacts/h2") == str(b / "artifacts/h2")


def test_delay_hook_is_a_real_sleep(two_layers, monkeypatch):
    import time

    layers, tmp = two_layers
    build = tmp / "build"
    build.mkdir()
    monkeypatch.setenv(hydrate.DELAY_ENV, "0.01")
    t = time.monotonic()
    hydrate.hydrate("symlink", layers, build, tmp / "final")
    assert time.monotonic() - t >= 0.01 * 9


def _fuse_usable() -> str | None:
    try:
        hydrate.overlay_support()
    except UnsupportedError as exc:
        return str(exc)
    return None


@pytest.mark.needs_fuse
def test_overlay_mount_merges_layers_and_writes_go_up(two_layers):
    reason = _fuse_usable()
    if reason:
        pytest.skip(reason)
    layers, tmp = two_layers
    final = tmp / "final"
    final.mkdir()
    done = hydrate.hydrate("overlay", layers, final, final)
    assert done.mount == str(final / "depot")
    hydrate.mount_overlay(layers, final)
    try:
        depot = final / "depot"
        assert os.path.ismount(depot)
        assert (depot / "compiled/v1.11/Foo/abcde_x.ji").read_text() == "variant-ji"
        assert (depot / "packages/Bar/slug2/src/Bar.jl").read_text() == "module Bar end"
        (depot / "compiled/v1.11/Foo/new.ji").write_text("new")
        assert (final / "upper/compiled/v1.11/Foo/new.ji").read_text() == "new"
        assert not (layers[0].root / "compiled/v1.11/Foo/new.ji").exists()
    finally:
        hydrate.unmount(final / "depot")
    assert not os.path.ismount(final / "depot")


def test_overlay_without_fuse_overlayfs_is_unsupported(two_layers, monkeypatch):
    layers, tmp = two_layers
    monkeypatch.setenv("PATH", str(tmp))  # no fuse-overlayfs on this PATH
    with pytest.raises(UnsupportedError, match="fuse-overlayfs") as err:
        hydrate.hydrate("overlay", layers, tmp, tmp)
    assert err.value.exit_code == 10


@pytest.mark.parametrize("kind", ["char device", "fifo"])
def test_symlink_mode_copies_only_regular_log_files(two_layers, kind):
    """Symlink mode copies the repository's depot/logs/: a character device there (/dev/zero's
    numbers) would copy until the node's disk is full, a FIFO would block forever. Both are
    the repository's fault (IntegrityError, exit 4), found before a byte is written, and the
    log's mode and mtime are kept for regular files."""
    from depotdelivery.errors import IntegrityError

    layers, tmp = two_layers
    log = layers[1].root / "logs" / "artifact_usage.toml"
    if kind == "fifo":
        os.mkfifo(log)
    else:
        if os.geteuid() != 0:
            pytest.skip("mknod of a character device needs root")
        os.mknod(log, 0o644 | stat.S_IFCHR, os.makedev(1, 5))
    build = tmp / "build"
    build.mkdir()
    with pytest.raises(IntegrityError, match=f"{log}: is not a regular file"):
        hydrate.hydrate("symlink", layers, build, tmp / "final")
    assert not (build / "depot" / "logs" / "artifact_usage.toml").exists()


def test_symlink_mode_keeps_log_modes_and_mtimes(two_layers):
    layers, tmp = two_layers
    log = layers[1].root / "logs" / "manifest_usage.toml"
    os.chmod(log, 0o640)
    os.utime(log, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    build = tmp / "build"
    build.mkdir()
    hydrate.hydrate("symlink", layers, build, tmp / "final")
    copied = os.lstat(build / "depot" / "logs" / "manifest_usage.toml")
    assert (stat.S_IMODE(copied.st_mode), copied.st_mtime_ns) == (0o640, 1_600_000_000_123_456_789)
