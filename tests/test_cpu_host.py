"""HostCPU as a record: immutable, comparable, hashable, picklable, replace(), JSON-able."""
from __future__ import annotations

import json
import os
import pickle

import pytest

from depotdelivery.cpu import HostCPU, detect
from depotdelivery.cpu._archspec import archspec_json_dir

DUMP = os.path.join(archspec_json_dir(), "tests", "targets", "windows-cpuid-icelake")


def test_record_semantics():
    host = detect(cpuid_dump=DUMP)
    with pytest.raises(AttributeError, match="immutable"):
        host.vendor = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del host.features  # type: ignore[misc]
    assert host == detect(cpuid_dump=DUMP) and hash(host) == hash(detect(cpuid_dump=DUMP))
    clone = pickle.loads(pickle.dumps(host))
    assert clone == host and clone.microarch == host.microarch == "icelake"
    other = host.replace(source="cpuid")
    assert other != host and other.source == "cpuid" and other.features == host.features
    with pytest.raises(TypeError, match="no field"):
        host.replace(colour="red")
    assert "GenuineIntel" in repr(host)


def test_to_dict_is_the_json_contract():
    host = detect(cpuid_dump=DUMP)
    info = json.loads(json.dumps(host.to_dict("1.12")))
    assert info["julia_version"] == "1.12" and len(info["julia_words"]) == 12
    assert info["julia_cpu"] == "tigerlake"  # model 0x8C: Julia's table says Tiger Lake
    assert info["brand"].startswith("11th Gen Intel(R) Core(TM) i7-1185G7")


def test_registers_are_the_source_of_truth():
    host = detect(cpuid_dump=DUMP)
    rebuilt = detect(dict(host.registers), xcr0=host.xcr0).replace(source="file")
    assert rebuilt == host
    assert isinstance(HostCPU(arch="x86_64", vendor="", source="cpuid").features, frozenset)
