"""``depotdelivery detect``: JSON/human output, --why-not, DEPOTDELIVERY_MICROARCH, bad input
(exit 2, one line naming file and line, no traceback), and the fallback without the extension."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from depotdelivery.cpu import detect
from depotdelivery.cpu._archspec import archspec_json_dir
from depotdelivery.cpu._parse import parse_cpuid_dump, parse_cpuinfo
from depotdelivery.errors import InputError, UnsupportedError, UsageError

TARGETS = os.path.join(archspec_json_dir(), "tests", "targets")
JSON_KEYS = {"arch", "vendor", "family", "model", "stepping", "brand", "features", "microarch",
             "generic", "julia_cpu", "julia_features", "source"}
HAS_PROC_CPUINFO = os.path.exists("/proc/cpuinfo")


def test_json_for_a_recorded_cpuinfo(cli):
    code, out, err = cli("detect", "--json", "--cpuinfo", os.path.join(TARGETS, "linux-rocky8.5-zen4"),
                          "--julia-version", "1.10")
    assert code == 0 and not err
    info = json.loads(out)
    assert JSON_KEYS <= set(info)
    assert info["features"] == sorted(info["features"])
    assert (info["microarch"], info["generic"], info["julia_cpu"], info["source"]) == ("zen4", "x86_64_v4", "znver3", "file")
    assert "avx512f" in info["julia_features"]


def test_json_for_a_cpuid_dump_and_why_not(cli):
    code, out, _ = cli("detect", "--json", "--cpuid-dump", os.path.join(TARGETS, "windows-cpuid-broadwell"),
                        "--why-not", "skylake_avx512")
    info = json.loads(out)
    assert code == 0 and info["microarch"] == "broadwell"
    assert info["why_not"]["reason"].startswith("skylake_avx512 requires features not available on the host: ")
    assert "avx512f" in info["why_not"]["reason"]


@pytest.mark.parametrize(
    ("target", "expected"),
    [("no_such_cpu", "is not a known microarchitecture target"),
     ("haswell", "is an ancestor of the detected host"),
     ("broadwell", "is the detected host microarchitecture"),
     ("zen2", "targets vendor AuthenticAMD"),
     ("neoverse_n1", "belongs to the aarch64 architecture family")],
)
def test_why_not_never_raises(cli, target, expected):
    code, out, _ = cli("detect", "--cpuid-dump", os.path.join(TARGETS, "windows-cpuid-broadwell"),
                        "--why-not", target)
    assert code == 0 and expected in out


def test_human_output_on_this_host(cli):
    code, out, _ = cli("detect")
    assert code == 0
    assert "microarch:" in out and "julia_cpu (1.11):" in out and "features:" in out


@pytest.mark.parametrize(
    ("content", "flag", "line"),
    [("processor : 0\nflags : fpu sse\nthis line has no colon\n", "--cpuinfo", 3),
     ("vendor_id : GenuineIntel\ncpu family : six\n", "--cpuinfo", 2),
     ("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:/usr/sbin/nologin\n", "--cpuinfo", 1),  # /etc/passwd
     ("\n\nName: x\nType: y\n", "--cpuinfo", 3),
     ("0, 0, 13, 1, 2, 3\n1, 0, 1, 2\n", "--cpuid-dump", 2),
     ("0, 0, 13, 1, 2, 3\n7, 0, x, 0, 0, 0\n", "--cpuid-dump", 2),
     ("0, 0, 13, 1, 2, 3\n\n1, 0, 1, 2, 3, 0x1FFFFFFFF\n", "--cpuid-dump", 3)],
)
def test_malformed_files_exit_2_with_one_line(tmp_path, cli, content, flag, line):
    path = tmp_path / "bad-input"
    path.write_text(content)
    code, out, err = cli("detect", flag, str(path))
    assert code == 2 and not out
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"depotdelivery: {path}:{line}: ")


def test_unreadable_and_unsupported_files(tmp_path, cli):
    code, _, err = cli("detect", "--cpuinfo", str(tmp_path / "missing"))
    assert code == 2 and "cannot read cpuinfo file" in err and str(tmp_path / "missing") in err
    code, _, err = cli("detect", "--cpuinfo", os.path.join(TARGETS, "linux-rhel8-power9"))
    assert code == UnsupportedError.exit_code and "POWER9" in err and err.count("\n") == 1


def test_malformed_file_as_a_real_process(tmp_path):
    bad = tmp_path / "dump"
    bad.write_text("0, 0, 13\n")
    proc = subprocess.run([sys.executable, "-m", "depotdelivery", "detect", "--cpuid-dump", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == f"depotdelivery: {bad}:1: expected 6 comma-separated integers (eax_in, ecx_in, eax, ebx, ecx, edx), got 3\n"


def test_microarch_override(monkeypatch, cli):
    monkeypatch.setenv("DEPOTDELIVERY_MICROARCH", "zen3")
    code, out, _ = cli("detect", "--json")
    info = json.loads(out)
    assert code == 0
    assert (info["source"], info["microarch"], info["julia_cpu"], info["generic"]) == ("override", "zen3", "znver3", "x86_64_v3")
    assert {"vaes", "pku", "avx2"} <= set(info["features"])
    assert {"avx2", "vaes", "vpclmulqdq"} <= set(info["julia_features"])
    monkeypatch.setenv("DEPOTDELIVERY_MICROARCH", "neoverse_v1")
    host = detect()
    assert (host.arch, host.vendor, host.microarch, host.julia_cpu()) == ("aarch64", "ARM", "neoverse_v1", "neoverse-v1")


def test_unknown_microarch_override_lists_valid_names(monkeypatch, cli):
    monkeypatch.setenv("DEPOTDELIVERY_MICROARCH", "pentium9000")
    code, out, err = cli("detect")
    assert code == 2 and not out and err.count("\n") == 1
    assert "DEPOTDELIVERY_MICROARCH=pentium9000" in err
    for name in ("haswell", "zen4", "neoverse_v1", "x86_64_v3"):
        assert name in err
    assert "power9" not in err  # only names depotdelivery can model
    with pytest.raises(UsageError):
        detect(microarch="power9")


def test_detect_is_cached_per_process_only_without_arguments():
    assert detect() is detect()
    dump = os.path.join(TARGETS, "windows-cpuid-icelake")
    assert detect(cpuid_dump=dump) == detect(cpuid_dump=dump)
    assert detect(cpuid_dump=dump) is not detect(cpuid_dump=dump)


@pytest.mark.skipif(not HAS_PROC_CPUINFO, reason="needs /proc/cpuinfo")
def test_without_the_extension_detection_reads_proc_cpuinfo():
    """The extension's import fails (as where it could not be built): detection still works."""
    code = (
        "import sys, json; sys.modules['depotdelivery._cpuid'] = None\n"
        "import depotdelivery; h = depotdelivery.detect()\n"
        "print(json.dumps({'source': h.source, 'features': sorted(h.features), 'microarch': h.microarch,"
        " 'arch': h.arch}))"
    )
    env = {k: v for k, v in os.environ.items() if k != "DEPOTDELIVERY_MICROARCH"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["source"] == "cpuinfo"
    with open("/proc/cpuinfo") as file:
        info_file = parse_cpuinfo(file.read())
    assert set(info["features"]) == info_file.flags
    if info["arch"] == "x86_64" and detect().source == "cpuid":
        assert info["microarch"] == detect().microarch


# --- hypothesis: the readers never fail in any other way than a one-line InputError ---------

@given(st.text(max_size=400))
def test_cpuinfo_reader_accepts_or_names_the_problem(text):
    try:
        info = parse_cpuinfo(text, where="f")
    except InputError as exc:
        assert str(exc).startswith("f:") and "\n" not in str(exc)
    except UnsupportedError as exc:
        assert str(exc).startswith("f:")
    else:
        assert info.arch in ("x86_64", "aarch64")


@given(st.text(alphabet="0123456789xabcdefABCDEF, #\n-", max_size=300))
def test_cpuid_dump_reader_accepts_or_names_the_problem(text):
    try:
        registers = parse_cpuid_dump(text, where="d")
    except InputError as exc:
        assert str(exc).startswith("d:") and "\n" not in str(exc)
    else:
        assert (0, 0) in registers
        assert all(0 <= v <= 0xFFFFFFFF for values in registers.values() for v in values)


@given(st.dictionaries(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
                       st.tuples(*[st.integers(0, 2**32 - 1)] * 4), min_size=1))
def test_cpuid_dump_round_trip(registers):
    registers[(0, 0)] = registers.get((0, 0), (0, 0, 0, 0))
    text = "\n".join(f"{l}, {s}, {a}, {hex(b)}, {c}, {d}" for (l, s), (a, b, c, d) in registers.items())
    assert parse_cpuid_dump(text, where="d") == registers
