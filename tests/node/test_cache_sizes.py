"""``status``'s sizes: apparent and on-disk bytes as GNU du reports them (each inode once)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from depotdelivery.node.cache import NodeCache
from depotdelivery.units import human_bytes


def _du(path, *extra: str) -> int:
    out = subprocess.run(["du", "-s", "-B1", *extra, str(path)], check=True, capture_output=True, text=True).stdout
    return int(out.split()[0])


@pytest.fixture
def linked_depot(tmp_path):
    """A depot of three regular files, one of them reached through three hard links, one sparse."""
    cache = NodeCache(tmp_path / "cache")
    cache.ensure()
    depot = tmp_path / "cache" / "depots" / "k1"
    (depot / "compiled").mkdir(parents=True)
    (depot / "a.ji").write_bytes(os.urandom(300_000))
    for n in (1, 2):
        os.link(depot / "a.ji", depot / "compiled" / f"a{n}.ji")
    (depot / "small.toml").write_bytes(b"x" * 10)
    with open(depot / "sparse", "wb") as f:  # 8 MiB apparent, one block on disk
        f.seek(8 << 20)
        f.write(b"!")
    os.symlink("a.ji", depot / "link.ji")
    return cache, depot


def test_status_counts_each_inode_once_like_du(linked_depot):
    cache, depot = linked_depot
    if shutil.which("du") is None:
        pytest.skip("needs GNU du (coreutils) to compare with")
    [d] = cache.status()
    # du counts directories' own blocks too; we count regular files' bytes only
    dirs_apparent = sum(os.lstat(p).st_size for p in (depot, depot / "compiled"))
    dirs_disk = sum(os.lstat(p).st_blocks * 512 for p in (depot, depot / "compiled"))
    symlink = os.lstat(depot / "link.ji")
    assert d.apparent_bytes == 300_000 + 10 + (8 << 20) + 1
    assert d.apparent_bytes == _du(depot, "--apparent-size") - dirs_apparent - symlink.st_size
    assert d.disk_bytes == _du(depot) - dirs_disk - symlink.st_blocks * 512
    assert d.disk_bytes < d.apparent_bytes  # the sparse file
    assert d.files == 6  # every name is an entry, however many point at one inode


def test_status_prints_both_sizes_in_iec_units(linked_depot, cli):
    cache, _ = linked_depot
    [d] = cache.status()
    r = cli("status", "--cache", cache.root)
    assert r.code == 0, r.err
    assert f"{human_bytes(d.apparent_bytes)} in 6 files ({human_bytes(d.disk_bytes)} on disk)" in r.out
    assert " MB" not in r.out and " KB" not in r.out
    doc = cli("status", "--cache", cache.root, "--json").json()
    assert (doc["depots"][0]["apparent_bytes"], doc["depots"][0]["disk_bytes"]) == (d.apparent_bytes, d.disk_bytes)


@pytest.mark.parametrize(("n", "text"), [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
                                         (5 << 20, "5.0 MiB"), (3 << 30, "3.0 GiB"), (1 << 50, "1.0 PiB")])
def test_human_bytes_is_iec(n, text):
    assert human_bytes(n) == text
