"""The publisher tests' shared fixture: ``env``, a repository, a signing key, one depot and one
variant directory to publish from."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from repo_fixtures import build_depot, build_variant, make_publisher

from depotdelivery.publisher.publish import PublishResult, VariantInput, publish
from depotdelivery.store.keys import PrivateKey


@dataclass
class Env:
    base: Path
    repo: Path
    depot: Path
    variant: Path
    key: PrivateKey
    key_path: Path
    trust: Path

    def publish(self, version: str = "1", **kw: object) -> PublishResult:
        variants = kw.pop("variants", {"haswell": VariantInput(dir=self.variant)})
        depot = kw.pop("depot", self.depot)
        return publish(self.repo, "hep", version, depot, variants, self.key, **kw)  # type: ignore[arg-type]


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPOTDELIVERY_PUBLISH_CACHE", str(tmp_path / "hash-cache"))
    p = make_publisher(tmp_path)
    return Env(base=tmp_path, repo=p.repo, depot=build_depot(tmp_path / "depot"),
               variant=build_variant(tmp_path / "haswell"), key=p.key, key_path=p.key_path, trust=p.trust)
