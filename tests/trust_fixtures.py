"""Trusted-keys fixtures shared by the store, node and publisher tests: ``keys`` (three trusted
Ed25519 keys and a stranger, real key files) and :func:`write_threshold`."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from depotdelivery.store.keys import THRESHOLD_FILE, keygen, load_private_key

__all__ = ["keys", "write_threshold"]


@pytest.fixture
def keys(tmp_path):
    """Three keys a, b, c whose public halves are trusted, and a stranger s (not trusted)."""
    trust = tmp_path / "trust"
    trust.mkdir()
    out = {}
    for name in ("a", "b", "c", "s"):
        _, pub, _ = keygen(tmp_path / name)
        if name != "s":
            shutil.copy(pub, trust / f"{name}.pub")
        out[name] = load_private_key(tmp_path / name)
    return trust, out


def write_threshold(trust: Path, n: int | str) -> None:
    (trust / THRESHOLD_FILE).write_text(f"{n}\n")
