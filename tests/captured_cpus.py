"""archspec's captured machines (its wheel's ``json/tests/targets``): the real CPUs tests replay.

Files are named ``platform-os-expected`` (archspec's ``tests/test_cpu.py`` convention):
``linux-*`` are /proc/cpuinfo files, ``windows-cpuid-*`` raw CPUID dumps, ``darwin-*`` sysctl
dumps. depotdelivery models x86_64 and aarch64 Linux hosts; the others are listed in
``UNSUPPORTED`` and test_cpu_targets.py asserts that each is refused with UnsupportedError.
"""
from __future__ import annotations

from pathlib import Path

from depotdelivery.cpu import detect
from depotdelivery.cpu._archspec import archspec_json_dir

__all__ = ["ALL", "SUPPORTED", "TARGETS_DIR", "UNSUPPORTED", "captured_cpu", "detect_captured"]

TARGETS_DIR = Path(archspec_json_dir()) / "tests" / "targets"
ALL = sorted(p.name for p in TARGETS_DIR.iterdir())

# POWER, RISC-V, and macOS sysctl dumps (not /proc/cpuinfo files; Apple hosts are out of scope).
UNSUPPORTED = frozenset({
    "bgq-rhel6-power7", "linux-centos7-power8le", "linux-rhel8-power9", "linux-unknown-power10",
    "linux-debian13-x60", "linux-sifive-u74mc", "linux-spacemit-x60",
    "darwin-bigsur-m1", "darwin-mojave-haswell", "darwin-mojave-ivybridge",
    "darwin-mojave-skylake", "darwin-monterey-m1", "darwin-monterey-m2", "darwin-sequoia-m3",
    "darwin-sequoia-m4",
})
SUPPORTED = [n for n in ALL if n not in UNSUPPORTED]


def captured_cpu(name: str) -> Path:
    """The captured file of one machine."""
    return TARGETS_DIR / name


def detect_captured(name: str):
    """The HostCPU depotdelivery detects from a captured machine's file."""
    path = captured_cpu(name)
    return detect(cpuid_dump=path) if name.startswith("windows-cpuid-") else detect(cpuinfo=path)
