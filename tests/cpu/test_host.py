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


@pytest.mark.parametrize(
    ("microarch", "cpu_target"),
    [
        ("haswell", "generic;haswell,-rdrnd"),
        ("skylake_avx512", "generic;skylake-avx512"),
        ("zen4", "generic;znver4"),
        ("neoverse_v1", "generic;neoverse-v1"),
        ("a64fx", "generic;a64fx"),
    ],
)
def test_override_host_accepts_the_clone_julia_names_for_it(microarch, cpu_target):
    # DEPOTDELIVERY_MICROARCH=haswell stands for a typical Haswell: Julia's own haswell clone
    # must be usable on it (archspec's minimal feature lists alone would reject it).
    from depotdelivery.julia.clones import match_targets
    from depotdelivery.julia.cputarget import parse_cpu_target

    host = detect(microarch=microarch)
    targets = parse_cpu_target(cpu_target, host.arch, "1.11")
    match = match_targets(host.julia_features("1.11"), host.julia_cpu("1.11"), targets,
                          host.arch, "1.11")
    assert match.accepted and match.index == 1, match.reason
