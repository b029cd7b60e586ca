"""The repository's storage record (``depotdelivery-repo.json`` ``storage``): parsed strictly,
written by publish (--cvmfs, --storage), and the mtime granularity verify compares at: whole
seconds on CVMFS storage (as a CVMFS catalog keeps them), exact everywhere else, content always
by hash."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_cli
from hypothesis import given
from hypothesis import strategies as st
from repo_fixtures import build_depot, make_publisher

from depotdelivery.errors import FormatError, IntegrityError, UsageError
from depotdelivery.publisher.publish import publish
from depotdelivery.store.canonical import canonical_json
from depotdelivery.store.repo import Repository
from depotdelivery.store.storage import STORAGE_NAMES, Storage, storage_named
from depotdelivery.store.verify import verify
from depotdelivery.store.walk import walk

_NS = st.integers(min_value=-(2**62), max_value=2**62)


@given(st.sampled_from(sorted(STORAGE_NAMES)))
def test_record_round_trips(name):
    s = storage_named(name)
    assert Storage.from_dict(json.loads(canonical_json(s.to_dict())), "x") == s
    assert s.name == name


@given(st.dictionaries(st.sampled_from(["kind", "mtime_resolution_ns", "extra"]),
                       st.one_of(st.integers(-3, 2 * 10**9), st.text(max_size=8), st.booleans(), st.none())))
def test_a_bad_record_is_a_format_error_naming_the_field(obj):
    try:
        s = Storage.from_dict(obj, "repo.json")
    except FormatError as exc:
        assert "repo.json: field storage" in str(exc)
    else:  # accepted: exactly the fields, of the right kinds
        assert set(obj) == {"kind", "mtime_resolution_ns"} and s.kind in ("posix", "cvmfs")
        assert 10**9 % s.mtime_resolution_ns == 0


@given(_NS, _NS)
def test_seconds_storage_accepts_exact_or_floor_only(listed, actual):
    cvmfs = STORAGE_NAMES["cvmfs"]
    floor = listed - listed % 10**9
    assert cvmfs.mtime_matches(listed, actual) == (actual in (listed, floor))
    assert cvmfs.mtime_matches(listed, floor)
    assert STORAGE_NAMES["posix"].mtime_matches(listed, actual) == (listed == actual)
    assert STORAGE_NAMES["cvmfs-mtime-ns"].mtime_matches(listed, actual) == (listed == actual)


def test_floor_before_1970_is_the_timespec_seconds():
    # st_mtim = {-2 s, 500000000 ns} is -1.5 s; a catalog keeps tv_sec = -2
    assert STORAGE_NAMES["cvmfs"].mtime_matches(-1_500_000_000, -2_000_000_000)
    assert not STORAGE_NAMES["cvmfs"].mtime_matches(-1_500_000_000, -1_000_000_000)


def test_unknown_storage_name_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown storage 'nfs'"):
        storage_named("nfs")


def _truncate_mtimes(top):
    """What a CVMFS client shows: every mtime rounded down to the second."""
    for e in reversed(walk(top)):
        ns = e.st.st_mtime_ns
        os.utime(e.path, ns=(ns, ns - ns % 10**9), follow_symlinks=False)


@pytest.fixture
def pub(tmp_path):
    return make_publisher(tmp_path), build_depot(tmp_path / "depot")


def test_storage_option_is_recorded_and_verify_compares_at_it(pub):
    p, depot = pub
    publish(p.repo, "hep", "1", depot, {}, p.key, storage="cvmfs", use_hash_cache=False)
    assert Repository.open(p.repo).storage == STORAGE_NAMES["cvmfs"]
    verify(p.repo)  # exact mtimes are kept too
    _truncate_mtimes(p.repo / "releases/hep/1/depot")
    verify(p.repo)
    # one second off is not what CVMFS does: reported
    f = next(e for e in walk(p.repo / "releases/hep/1/depot") if e.path.endswith(".jl"))
    os.utime(f.path, ns=(0, f.st.st_mtime_ns - 10**9))
    with pytest.raises(IntegrityError, match="whole|granularity"):
        verify(p.repo)


def test_posix_storage_still_compares_exactly(pub):
    p, depot = pub
    publish(p.repo, "hep", "1", depot, {}, p.key, use_hash_cache=False)
    assert Repository.open(p.repo).storage == STORAGE_NAMES["posix"]
    _truncate_mtimes(p.repo / "releases/hep/1/depot")
    with pytest.raises(IntegrityError, match="compared exactly"):
        verify(p.repo)


def test_content_is_compared_by_hash_at_any_granularity(pub):
    p, depot = pub
    publish(p.repo, "hep", "1", depot, {}, p.key, storage="cvmfs", use_hash_cache=False)
    f = next(e for e in walk(p.repo / "releases/hep/1/depot") if e.path.endswith(".jl"))
    data = bytearray(Path(f.path).read_bytes())
    data[0] ^= 1
    with open(f.path, "wb") as fh:
        fh.write(data)
    os.utime(f.path, ns=(0, f.st.st_mtime_ns))
    with pytest.raises(IntegrityError, match="BLAKE3"):
        verify(p.repo)


def test_a_finer_record_over_coarse_releases_is_refused(pub, tmp_path):
    p, depot = pub
    publish(p.repo, "hep", "1", depot, {}, p.key, storage="cvmfs", use_hash_cache=False)
    before = (p.repo / "depotdelivery-repo.json").read_bytes()
    (depot / "registries" / "extra.toml").write_text("x = 1\n")
    with pytest.raises(UsageError, match="whole|1000000000 ns"):
        publish(p.repo, "hep", "2", depot, {}, p.key, storage="cvmfs-mtime-ns", use_hash_cache=False)
    assert (p.repo / "depotdelivery-repo.json").read_bytes() == before
    assert not (p.repo / "releases/hep/2").exists()
    # coarser is always possible; the CLI spells it --storage (a failed publish puts the old record
    # back: test_publish_faults.test_enospc_mid_publish[--storage])
    done = run_cli("publish", "--repo", str(p.repo), "--name", "hep", "--version", "2", "--depot", str(depot),
                   "--key", str(p.key_path), "--storage", "cvmfs", "--quiet")
    assert done.code == 0, done.err
