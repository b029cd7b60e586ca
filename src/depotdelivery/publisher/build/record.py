"""Build records: what a step sequence was built from (its inputs, hashed) and what ran, kept in
the release (``depot/config/depotdelivery-build/record.json``, ``variants/<v>/build/record.json``)
beside the scripts and logs. A record is written last and atomically: a re-run resumes a part
whose record is complete and whose inputs hash is the same, and rebuilds anything else whole."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["RECORD", "file_sha256", "inputs_digest", "read_record", "recorded_cpu_target", "write_record"]

RECORD = "record.json"
_FORMAT = 1


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def inputs_digest(inputs: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``inputs`` (sorted keys, compact)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def read_record(directory: Path) -> dict[str, Any] | None:
    """The complete record in ``directory``, None when absent, unreadable or unfinished."""
    try:
        doc = json.loads((directory / RECORD).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT or doc.get("status") != "complete":
        return None
    return doc


def write_record(directory: Path, record: Mapping[str, Any]) -> None:
    from depotdelivery.store.atomic import write_atomic

    directory.mkdir(parents=True, exist_ok=True)
    doc = {"format": _FORMAT, "status": "complete", **record}
    write_atomic(directory / RECORD, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())


def recorded_cpu_target(variant_dir: Path) -> str | None:
    """The JULIA_CPU_TARGET a complete variant build record names (``variants/<v>/build/``), for
    a publish that is not told it."""
    doc = read_record(variant_dir / "build")
    value = doc.get("cpu_target") if doc is not None else None
    return value if isinstance(value, str) and value else None
