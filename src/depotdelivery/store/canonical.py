"""Canonical JSON: the exact bytes that get hashed and signed (sorted keys, compact, UTF-8)."""
from __future__ import annotations

from depotdelivery.store import fastjson

TYPE_CHECKING = False  # no `typing` on the hot path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["canonical_json"]


def canonical_json(obj: Any) -> bytes:
    """Serialise ``obj`` canonically: sorted keys, ``,``/``:`` separators, UTF-8, no NaN.

    Two equal documents always give the same bytes, so the BLAKE3 of these bytes is a
    stable identity (the release id) and a signature over them is reproducible.
    """
    return fastjson.canonical(obj)  # json.dumps' bytes without importing json (a cold job's path)
