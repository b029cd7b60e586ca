"""archspec's JSON data files, located and read without importing archspec (cached per process)."""
from __future__ import annotations

import functools
import os
from typing import Any

__all__ = ["archspec_json", "archspec_json_dir", "microarchitectures"]


@functools.cache
def archspec_json_dir() -> str:
    """Directory of archspec's ``json`` data (``cpu/``, ``tests/targets/``).

    ``find_spec`` of a top-level package locates it without executing its ``__init__``, so
    archspec's import cost is only paid when its algorithm is really needed.
    """
    import importlib.util

    spec = importlib.util.find_spec("archspec")
    if spec is None or not spec.submodule_search_locations:
        from depotdelivery.errors import UnsupportedError

        raise UnsupportedError("archspec is not installed: `pip install archspec`")
    return os.path.join(next(iter(spec.submodule_search_locations)), "json")


@functools.cache
def archspec_json(name: str) -> Any:
    """Parsed ``archspec/json/cpu/<name>.json`` (``cpuid`` or ``microarchitectures``)."""
    import json

    with open(os.path.join(archspec_json_dir(), "cpu", f"{name}.json"), "rb") as file:
        return json.loads(file.read())


def microarchitectures() -> dict[str, Any]:
    """archspec's microarchitecture records by name (``from``, ``vendor``, ``features``, ...)."""
    return archspec_json("microarchitectures")["microarchitectures"]
