"""Session (node/session.py): a verified channel or pin becomes a Release once per prepare(): the
repository is opened once, ``release.json`` read once, the host detected once, and check()
reuses all of it."""
from __future__ import annotations

import pytest
from captured_cpus import captured_cpu

import depotdelivery
from depotdelivery.errors import UsageError
from depotdelivery.node.check import check
from depotdelivery.node.config import resolve
from depotdelivery.node.session import Session
from depotdelivery.store import repo as repo_module

HASWELL = str(captured_cpu("linux-rhel7-haswell"))


@pytest.fixture
def counted(monkeypatch):
    """Counts of Repository.open and of repository reads of each document kind."""
    counts = {"open": 0, "release document": 0, "channel document": 0, "listing": 0}
    real_open, real_read = repo_module.Repository.open.__func__, repo_module.read_document

    def opening(cls, root):
        counts["open"] += 1
        return real_open(cls, root)

    def reading(path, what):
        counts[what] = counts.get(what, 0) + 1
        return real_read(path, what)

    monkeypatch.setattr(repo_module.Repository, "open", classmethod(opening))
    monkeypatch.setattr(repo_module, "read_document", reading)
    return counts


def _config(repo, cache, **kw):
    return dict(repo=str(repo.root), trusted_keys=str(repo.trusted), cache=str(cache), cpuinfo=HASWELL, **kw)


@pytest.mark.parametrize("pin", [False, True])
@pytest.mark.parametrize("mode", ["stack", "copy"])
def test_a_cold_prepare_opens_the_repository_and_reads_release_json_once(node_repo, tmp_path, counted, pin, mode):
    kw = {"release": node_repo.ref} if pin else {}
    prepared = depotdelivery.prepare(**_config(node_repo, tmp_path / "cache", mode=mode, **kw))
    try:
        assert prepared.hydrated
        assert counted["open"] == 1 and counted["release document"] == 1, counted
        assert counted["channel document"] == (0 if pin else 1)
        # check() takes the session's release and host: nothing is opened or read again
        before = dict(counted)
        report = check(prepared)
        assert report.packages and counted == before
    finally:
        prepared.lease.release()


def test_a_warm_prepare_opens_nothing(node_repo, tmp_path, counted):
    cfg = _config(node_repo, tmp_path / "cache")
    depotdelivery.prepare(**cfg).lease.release()
    counted.update({k: 0 for k in counted})
    warm = depotdelivery.prepare(**cfg)
    try:
        assert not warm.hydrated and all(v == 0 for v in counted.values()), counted
        assert warm.session is not None and warm.session.release_id == warm.release_id
    finally:
        warm.lease.release()


def test_release_and_host_are_loaded_once_and_kept(node_repo, tmp_path, counted):
    session = Session(resolve(_config(node_repo, tmp_path / "cache"), environ={}, files=[]))
    assert session.ref is None and session.locate(verify=False) is False  # nothing remembered yet
    release = session.release()
    assert session.release() is release and session.host() is session.host()
    assert (session.ref, session.release_id) == (release.ref, release.id)
    assert counted["open"] == 1 and counted["release document"] == 1


def test_no_repository_configured_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no repository configured"):
        Session(resolve({"cache": str(tmp_path)}, environ={}, files=[]))
