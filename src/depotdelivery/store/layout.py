"""The one map of a repository's paths (format 1, docs/format.md), as plain strings.

Both sides spell repository paths through this module: the publisher and
:class:`~depotdelivery.store.repo.Repository` (which wrap them in ``Path``), and the node's hot
path (``os.path`` strings only: this module imports nothing but ``os``).
"""
from __future__ import annotations

import os

__all__ = [
    "RELEASE_FILE",
    "REPO_FILE",
    "SIG_SUFFIX",
    "channel_file",
    "channels_dir",
    "listing_file",
    "listings_dir",
    "release_dir",
    "release_file",
    "releases_dir",
    "sig_file",
]

REPO_FILE = "depotdelivery-repo.json"  # {"format": 1, "id": "<hex>"} at the root
RELEASE_FILE = "release.json"
SIG_SUFFIX = ".sig"  # X.sig beside document X


def releases_dir(root: str | os.PathLike[str]) -> str:
    return os.path.join(root, "releases")


def release_dir(root: str | os.PathLike[str], name: str, version: str) -> str:
    return os.path.join(root, "releases", name, version)


def release_file(root: str | os.PathLike[str], name: str, version: str) -> str:
    return os.path.join(root, "releases", name, version, RELEASE_FILE)


def listings_dir(root: str | os.PathLike[str], name: str, version: str) -> str:
    return os.path.join(root, "releases", name, version, "listings")


def listing_file(root: str | os.PathLike[str], name: str, version: str, tree: str) -> str:
    return os.path.join(root, "releases", name, version, "listings", f"{tree}.jsonl")


def channels_dir(root: str | os.PathLike[str]) -> str:
    return os.path.join(root, "channels")


def channel_file(root: str | os.PathLike[str], channel: str) -> str:
    return os.path.join(root, "channels", f"{channel}.json")


def sig_file(document: str) -> str:
    """The signature file beside ``document``."""
    return document + SIG_SUFFIX
