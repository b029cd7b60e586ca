"""Every machine archspec captured (archspec/json/tests/targets/) through our readers: linux-*
via --cpuinfo, windows-cpuid-* via --cpuid-dump, each must give archspec's expected name."""
from __future__ import annotations

import os

import pytest
from captured_cpus import ALL, TARGETS_DIR, UNSUPPORTED, detect_captured

from depotdelivery.cpu._aarch64 import (
    IMPLEMENTERS,
    decode_hwcaps,
    hwcaps_from_features,
    midr_fields,
    midr_from_fields,
)
from depotdelivery.cpu._archspec import archspec_json
from depotdelivery.cpu._parse import parse_cpuid_dump, read_text
from depotdelivery.errors import UnsupportedError
from depotdelivery.julia.features import feature_table

FILES = ALL
EXPECTED_UNSUPPORTED = UNSUPPORTED  # asserted to fail with UnsupportedError, not skipped
_detect = detect_captured


def test_archspec_ships_captures():
    assert len(FILES) > 40
    assert any(f.startswith("windows-cpuid-") for f in FILES)


@pytest.mark.parametrize("name", FILES)
def test_captured_machine(name):
    expected = name.split("-", 2)[2]
    if name in EXPECTED_UNSUPPORTED:
        with pytest.raises(UnsupportedError, match="does not model"):
            _detect(name)
        return
    host = _detect(name)
    assert host.source == "file"
    assert host.microarch == expected
    assert host.generic in ("x86_64", "x86_64_v2", "x86_64_v3", "x86_64_v4", "aarch64")
    for version in ("1.10", "1.12"):
        words = host.julia_words(version)
        assert feature_table(host.arch, version).names(words) == host.julia_features(version)
        assert host.julia_cpu(version)


@pytest.mark.parametrize("name", [f for f in FILES if f.startswith("windows-cpuid-")])
def test_cpuid_dump_features_are_archspecs_under_kernel_names(name):
    """What archspec's CpuidInfoCollector reads from the same dump (cpuid.json applied bit by
    bit), renamed to the kernel's spelling, is exactly our feature set minus our extra bits."""
    from cpu.test_x86 import KERNEL_RENAMES, VOCABULARY

    registers = parse_cpuid_dump(read_text(os.path.join(TARGETS_DIR, name), "dump"), where=name)
    data = archspec_json("cpuid")
    max_basic, max_ext = registers[(0, 0)][0], registers.get((0x80000000, 0), (0,))[0]
    archspec = set()
    for group, limit in (("flags", max_basic), ("extension-flags", max_ext)):
        for call in data[group]:
            if call["input"]["eax"] > limit:
                continue
            values = registers.get((call["input"]["eax"], call["input"]["ecx"]), (0, 0, 0, 0))
            for bit in call["bits"]:
                if values["abcd".index(bit["register"][1])] >> bit["bit"] & 1:
                    archspec.add(KERNEL_RENAMES.get(bit["name"], bit["name"]))
    ours = _detect(name).features
    archspec_names = {KERNEL_RENAMES.get(b["name"], b["name"])
                      for g in ("flags", "extension-flags") for c in data[g] for b in c["bits"]}
    assert ours & archspec_names == archspec
    assert ours - archspec_names <= VOCABULARY


def test_aarch64_vendor_names_are_archspecs():
    arm_vendors = archspec_json("microarchitectures")["conversions"]["arm_vendors"]
    assert {int(code, 16): name for code, name in arm_vendors.items()} == IMPLEMENTERS


def test_aarch64_hwcaps_round_trip_and_cover_archspec_features():
    from depotdelivery.cpu._archspec import microarchitectures

    for record in microarchitectures().values():
        if record["vendor"] in ("ARM", "Fujitsu", "Cavium", "Ampere", "Apple", "Nvidia"):
            features = set(record["features"])
            # ls64 is an AT_HWCAP3 bit (Linux 6.16+); we read HWCAP and HWCAP2 only
            assert decode_hwcaps(*hwcaps_from_features(features)) == features - {"ls64"}, record
    for midr in (0x410FD490, 0x460F0010, 0x431F0AF1, 0x610F0220):
        assert midr_from_fields(*(midr_fields(midr)[i] for i in (0, 1, 3, 4)), midr_fields(midr)[2]) == midr


def test_aarch64_capture_identity_and_julia_view():
    host = _detect("linux-rhel9-neoverse_n2")
    assert (host.vendor, host.family, host.model) == ("ARM", 0x41, 0xD49)
    assert host.julia_cpu("1.11") == "neoverse-n2"
    julia = host.julia_features("1.11")
    assert {"sve", "sve2", "dotprod", "i8mm", "bf16", "v8_5a"} <= julia
    assert "sve" in host.features and "sve2" in host.features


def test_sysfs_midr_reader_and_hwcap_host(tmp_path):
    """The aarch64 live path's pieces on real file formats: every core's sysfs midr_el1 as the
    kernel writes it (in CPU-number order, unreadable ones skipped), and a host built from
    HWCAPs equal to the one from the same machine's /proc/cpuinfo."""
    from depotdelivery.cpu import described

    for cpu, text in ((0, "0x00000000410fd490\n"), (10, "0x00000000410fd0b0\n"), (2, "garbage")):
        (tmp_path / f"cpu{cpu}" / "regs" / "identification").mkdir(parents=True)
        (tmp_path / f"cpu{cpu}" / "regs" / "identification" / "midr_el1").write_text(text)
    (tmp_path / "cpufreq").mkdir()
    assert described._sysfs_midrs(str(tmp_path)) == (0x410FD490, 0x410FD0B0)
    midr = described._sysfs_midrs(str(tmp_path))[0]
    from_file = _detect("linux-rhel9-neoverse_n2")
    hwcap, hwcap2 = hwcaps_from_features(from_file.features)
    live = described._aarch64_host(None, midr, hwcap, hwcap2, decode_hwcaps(hwcap, hwcap2), "cpuid")
    assert (live.vendor, live.family, live.model) == (from_file.vendor, from_file.family, from_file.model)
    assert live.features == from_file.features and live.microarch == "neoverse_n2"
    assert live.julia_features("1.11") == from_file.julia_features("1.11")
    assert live.midrs == from_file.midrs == (midr,)
    assert described._sysfs_midrs(str(tmp_path / "missing")) == ()
