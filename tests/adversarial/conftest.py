"""The session's published world (built once; each example works on a fresh copy of it)."""
from __future__ import annotations

import pytest

from adversarial.world import World, build_world


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("adversarial"))
