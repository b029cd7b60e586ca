"""Session: one repository as this node's configuration sees it, with the verified channel or
pin turned into a :class:`~depotdelivery.store.release.Release` once.

prepare(), check, select, the CLI and the demo share this one path from configuration to a
verified release: the repository is opened at most once, ``release.json`` read at most once
(verifying a channel reads the release it names; that document is kept), and the host CPU
detected at most once. On the hot path (everything remembered from earlier calls) a session
opens nothing: :meth:`Session.locate` answers from the node's records of verified bytes.
"""
from __future__ import annotations

import os

from depotdelivery.errors import UsageError
from depotdelivery.node import trust
from depotdelivery.node.cache import NodeCache
from depotdelivery.store import fastjson, layout

TYPE_CHECKING = False  # no `typing` on the hot path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from depotdelivery.cpu import HostCPU
    from depotdelivery.node.config import Config
    from depotdelivery.store.release import Release
    from depotdelivery.store.repo import Repository

__all__ = ["Session", "repo_id_of"]


def repo_id_of(root: str) -> str:
    """The repository id from ``depotdelivery-repo.json`` (one small read); anything unusual
    goes through the store's reader for the proper error (``cvmfs_config probe`` hint)."""
    try:
        with open(os.path.join(root, layout.REPO_FILE), "rb") as f:
            repo_id = fastjson.loads(f.read()).get("id")
        if isinstance(repo_id, str) and repo_id.isalnum():
            return repo_id
    except (OSError, ValueError, AttributeError, RecursionError):  # the store reader names the problem
        pass
    from depotdelivery.store.repo import Repository

    return Repository.open(root).repo_id


class Session:
    """The configured repository, its verified channel or pinned release, and the host.

    ``ref`` / ``release_id`` are set by :meth:`locate`; :meth:`release` and :meth:`host` load
    and detect on first use and keep the answer."""

    __slots__ = ("_host", "_release", "_repo", "cache", "cfg", "ref", "release_id", "repo_id", "root")

    def __init__(self, cfg: Config, *, cache: NodeCache | None = None, host: HostCPU | None = None) -> None:
        if cfg.repo is None:
            raise UsageError("no repository configured: pass repo=..., use --repo, or set DEPOTDELIVERY_REPO "
                             "(see docs/configuration.md)")
        self.cfg = cfg
        self.root: str = cfg.repo
        self.cache = NodeCache(cfg.cache) if cache is None else cache
        self.cache.secure(create=True)  # before anything in it is read (node/guard.py)
        self.repo_id = repo_id_of(self.root)
        self.ref: str | None = None
        self.release_id: str | None = None
        self._repo: Repository | None = None
        self._release: Release | None = None
        self._host = host

    def __repr__(self) -> str:
        return f"Session(root={self.root!r}, ref={self.ref!r})"

    def repository(self) -> Repository:
        """The repository, opened on first use."""
        if self._repo is None:
            from depotdelivery.store.repo import Repository

            self._repo = Repository.open(self.root)
        return self._repo

    def locate(self, *, verify: bool = True) -> bool:
        """Find the release to use (``ref``, ``release_id``): the pinned release, or the one the
        channel names. Without ``verify`` (the hot path) only from this node's records of bytes
        it verified before: False when those do not suffice. With ``verify``, signatures are
        checked as needed and the trust state updated; always True."""
        if self.release_id is not None:
            return True
        cfg, cache = self.cfg, self.cache
        if cfg.release is not None:
            release_id = trust.remembered_release_id(cache, self.root, self.repo_id, cfg.release, cfg.trusted_keys)
            if release_id is None:
                if not verify:
                    return False
                self._release = trust.load_release(cache, self.repository(), self.repo_id, cfg.release,
                                                   cfg.trusted_keys, expected_id=None)
                release_id = self._release.id
            self.ref, self.release_id = cfg.release, release_id
            return True
        facts = trust.verified_channel(cache, self.root, self.repo_id, cfg.channel, cfg.trusted_keys,
                                       remembered_only=not verify, repository=self.repository)
        if facts is None:
            return False
        self.ref, self.release_id = facts.release, facts.release_hash
        if facts.document is not None:
            self._release = facts.document  # verifying the channel read (and checked) it already
        return True

    def release(self) -> Release:
        """The verified release (located first if needed), read once."""
        if self._release is None:
            self.locate(verify=True)  # verifying a channel keeps the release it checked
        if self._release is None:
            assert self.ref is not None
            self._release = trust.load_release(self.cache, self.repository(), self.repo_id, self.ref,
                                               self.cfg.trusted_keys, expected_id=self.release_id)
        return self._release

    def host(self) -> HostCPU:
        """The host CPU as configured (``microarch`` override, a recorded ``cpuinfo``, or CPUID)."""
        if self._host is None:
            from depotdelivery.cpu import detect

            self._host = detect(cpuinfo=self.cfg.cpuinfo, microarch=self.cfg.microarch)
        return self._host
