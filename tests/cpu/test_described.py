"""CPU families depotdelivery does not model are refused, never read as x86_64/aarch64:
hand-written /proc/cpuinfo files in the kernels' formats (tests/data/cpu/), and the live
/proc/cpuinfo fallback refusing a file whose architecture is not the running kernel's."""
from __future__ import annotations

from pathlib import Path

import pytest
from captured_cpus import captured_cpu

from depotdelivery.cpu import detect
from depotdelivery.cpu._parse import parse_cpuinfo
from depotdelivery.cpu.described import from_proc_cpuinfo
from depotdelivery.errors import InputError, UnsupportedError

DATA = Path(__file__).parents[1] / "data" / "cpu"

# file -> what the message names (arch/s390/kernel/processor.c show_cpu_summary; arch/arm/kernel/
# setup.c c_show; arch/arm64/kernel/cpuinfo.c c_show for a 32-bit task; arch/loongarch/kernel/proc.c)
FOREIGN = {
    "linux-s390x-z15": "IBM/S390",
    "linux-armv7l-cortex_a53": "ARMv7 Processor rev 4 (v7l)",
    "linux-armv8l-neoverse_n1": "ARMv8 Processor rev 1 (v8l)",
    "linux-loongarch64-3a5000": "generic-loongson-machine",
}


@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_foreign_cpuinfo_is_unsupported_naming_the_file(name):
    path = str(DATA / name)
    with pytest.raises(UnsupportedError, match="does not model") as caught:
        parse_cpuinfo((DATA / name).read_text(), where=path)
    assert str(caught.value).startswith(f"{path}: ") and FOREIGN[name] in str(caught.value)
    with pytest.raises(UnsupportedError, match="does not model"):
        detect(cpuinfo=path)


def test_x86_needs_flags_and_an_x86_vendor():
    with pytest.raises(InputError, match=r"^f:1: x86 processor block has no 'flags' field"):
        parse_cpuinfo("vendor_id : AuthenticAMD\ncpu family : 25\n", where="f")
    with pytest.raises(UnsupportedError, match="does not model"):
        parse_cpuinfo("processor : 0\nvendor_id : Kalray\nflags : fpu sse\n", where="f")
    assert parse_cpuinfo("vendor_id : HygonGenuine\nflags : fpu sse sse2\n", where="f").arch == "x86_64"


def test_aarch64_needs_armv8_evidence():
    assert parse_cpuinfo("processor : 0\nFeatures : fp asimd\nCPU implementer : 0x41\n", where="f").arch == "aarch64"
    assert parse_cpuinfo("Processor : AArch64 Processor rev 0 (aarch64)\nFeatures : fp asimd evtstrm\n"
                         "CPU architecture: AArch64\n", where="f").arch == "aarch64"  # pre-4.x arm64 kernels
    with pytest.raises(UnsupportedError, match="does not model"):
        parse_cpuinfo("processor : 0\nCPU implementer : 0x41\nCPU architecture: 6TEJ\n", where="f")


@pytest.mark.parametrize(("name", "arch"), [("linux-rhel7-haswell", "x86_64"), ("linux-amazon-neoverse_n1", "aarch64")])
def test_live_fallback_refuses_another_architecture(name, arch):
    """An x86_64 cpuinfo read by an i686 task, an aarch64 one by an armv8l task (32-bit on a
    64-bit kernel), or either on the other architecture: refused, not detected."""
    path = str(captured_cpu(name))
    assert from_proc_cpuinfo(path=path, machine=arch).arch == arch
    for machine in {"x86_64", "aarch64", "i686", "armv8l"} - {arch}:
        with pytest.raises(UnsupportedError, match=f"describes an {arch} CPU but this process runs as {machine}"):
            from_proc_cpuinfo(path=path, machine=machine)


def test_live_fallback_on_a_foreign_machine_names_the_file():
    path = str(DATA / "linux-s390x-z15")
    with pytest.raises(UnsupportedError, match=r"cannot detect this CPU \(s390x\).*IBM/S390") as caught:
        from_proc_cpuinfo(path=path, machine="s390x")
    assert path in str(caught.value)
