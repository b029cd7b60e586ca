"""The one map of repository paths (store/layout.py): what Repository opens, what the node's hot
path reads and what the publisher writes are the same files."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery.errors import UsageError
from depotdelivery.store import layout
from depotdelivery.store.repo import Repository

_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,20}", fullmatch=True).filter(lambda n: n not in (".", ".."))


@given(name=_names, version=_names, channel=_names, tree=st.from_regex(r"[0-9a-f]{64}", fullmatch=True))
def test_repository_paths_are_the_layouts(name, version, channel, tree):
    repo = Repository(Path("/repo"), "0" * 32)
    assert repo.release_dir(name, version) == Path(layout.release_dir("/repo", name, version))
    assert repo.channel_path(channel) == Path(layout.channel_file("/repo", channel))
    assert repo.listing_path(name, version, tree) == Path(layout.listing_file("/repo", name, version, tree))
    assert layout.release_file("/repo", name, version) == os.path.join(layout.release_dir("/repo", name, version),
                                                                       layout.RELEASE_FILE)
    assert layout.sig_file(layout.release_file("/repo", name, version)).endswith("/release.json.sig")


def test_the_format_documents_these_paths():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "format.md").read_text()
    for path in ("depotdelivery-repo.json", "releases/", "channels/", "listings/", "release.json.sig"):
        assert path in doc, path


def test_repository_refuses_names_that_would_leave_the_tree():
    repo = Repository(Path("/repo"), "0" * 32)
    for bad in ("..", "a/b", "", "-x"):
        with pytest.raises(UsageError):
            repo.release_dir(bad, "1")
        with pytest.raises(UsageError):
            repo.channel_path(bad)
