"""Bounded reads of files someone else supplies (depotdelivery/readbounded.py): a device, a
FIFO or a huge file where a cpuinfo, a key or a repository document belongs is a one-line
error with its exit code, in a real process, at once (never a hang, never memory exhaustion)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery.readbounded import read_bounded


@given(data=st.binary(max_size=3000), limit=st.integers(0, 4000))
def test_reads_exactly_the_file_or_refuses_it(tmp_path_factory, data, limit):
    p = tmp_path_factory.mktemp("rb") / "f"
    p.write_bytes(data)
    if len(data) <= limit:
        assert read_bounded(p, limit) == data
    else:
        with pytest.raises(OSError, match=f"larger than {limit} bytes"):
            read_bounded(p, limit)


def test_proc_files_whose_size_says_zero_are_read(tmp_path):
    assert read_bounded("/proc/self/status", 1 << 20).startswith(b"Name:")


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "depotdelivery", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


def _one_line(done: subprocess.CompletedProcess[str], code: int, *texts: str) -> None:
    assert done.returncode == code, (done.returncode, done.stderr)
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    for text in texts:
        assert text in done.stderr, done.stderr


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("source", ["/dev/zero", "fifo"])
def test_a_cpuinfo_that_is_a_device_or_fifo(source, fifo, node_repo, tmp_path):
    path = str(fifo) if source == "fifo" else source
    _one_line(_run("detect", "--cpuinfo", path), 2, path, "not a regular file")
    env = {"DEPOTDELIVERY_REPO": str(node_repo.root), "DEPOTDELIVERY_TRUSTED_KEYS": str(node_repo.trusted),
           "DEPOTDELIVERY_CACHE": str(tmp_path / "cache"), "DEPOTDELIVERY_CPUINFO": path}
    _one_line(_run("select", env=env), 2, path, "not a regular file")


def test_a_huge_cpuinfo(tmp_path):
    big = tmp_path / "cpuinfo"
    with open(big, "wb") as fh:
        fh.truncate(64 << 20)  # sparse: costs nothing on disk
    _one_line(_run("detect", "--cpuinfo", str(big)), 2, str(big), "larger than")


@pytest.mark.parametrize("source", ["/dev/zero", "fifo"])
def test_a_signing_key_or_trusted_key_that_is_a_device_or_fifo(source, fifo, tmp_path):
    path = str(fifo) if source == "fifo" else source
    repo = tmp_path / "repo"
    done = _run("sign", "--repo", str(repo), "--channel", "stable", "--key", path)
    assert done.returncode in (2, 3) and "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    trust = tmp_path / "trust"
    trust.mkdir()
    os.symlink(path, trust / "evil.pub")
    from depotdelivery.errors import InputError
    from depotdelivery.store.keys import TrustStore

    with pytest.raises(InputError, match="not a regular file"):
        TrustStore.from_dir(trust)
    from depotdelivery.store.keys import load_private_key

    with pytest.raises(InputError, match=f"cannot read key {path}: not a regular file"):
        load_private_key(path)


def test_a_huge_repository_document_is_malformed_not_read(tmp_path):
    from depotdelivery.errors import FormatError
    from depotdelivery.readbounded import DOCUMENT_LIMIT
    from depotdelivery.store.repo import read_document

    doc = tmp_path / "release.json"
    with open(doc, "wb") as fh:
        fh.truncate(DOCUMENT_LIMIT + 1)
    with pytest.raises(FormatError, match="larger than"):
        read_document(doc, "release document")
    os.unlink(doc)
    os.mkfifo(doc)
    with pytest.raises(FormatError, match="not a regular file"):
        read_document(doc, "release document")
