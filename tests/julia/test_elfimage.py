"""Clone targets from ELF images: real shared objects linked by GNU ld and LLD, the minimal
writer (loaded with dlopen, inspected with readelf/nm), and malformed files."""
import ctypes
import platform
import shutil
import struct
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depotdelivery.errors import FormatError
from depotdelivery.julia.elfimage import open_image, read_image_targets, read_symbol
from depotdelivery.julia.targetdata import (
    UNKNOWN_NAME,
    VEC_CALL,
    ImageTarget,
    TargetData,
)
from depotdelivery.synth.elfimage import write_image
from depotdelivery.synth.targetdata import target_data_bytes

TARGETS = TargetData((
    ImageTarget(flags=VEC_CALL, en_words=(0,) * 11, dis_words=(0,) * 11, name="generic"),
    ImageTarget(flags=0, en_words=(1 << 28 | 1 << 13,) + (0,) * 10, dis_words=(1 << 30,) + (0,) * 10,
                name="sandybridge", ext=""),
    ImageTarget(flags=UNKNOWN_NAME, en_words=(0,) * 11, dis_words=(0,) * 11, name="x86-64-v4", ext="+avx512f"),
))

# The shape src/aotcompile.cpp gives an image: an exported constant array of five pointers
# {header, shards, ptls, jl_small_typeof, target_data}, the header {version 1, nshards, nfvars,
# ngvars}; the blob is a private constant the last slot points to.
C_SOURCE = """
#include <stdint.h>
static const uint32_t image_header[4] = {1, 1, 0, 0};
static const void *shards[1] = {0};
static const uint8_t target_data[] = {%s};
__attribute__((visibility("default")))
const void *const jl_image_pointers[5] = {image_header, shards, 0, 0, target_data};
int other_symbol = 3;
"""

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")


def compile_so(tmp_path, name, *flags, source=None):
    src = tmp_path / f"{name}.c"
    src.write_text(source or C_SOURCE % ",".join(str(b) for b in target_data_bytes(TARGETS)))
    out = tmp_path / f"{name}.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(out), str(src), *flags],
                   check=True, capture_output=True, text=True)
    return out


def slot4_in_file(path):
    with open_image(path) as img:
        base, size = img.symbol("jl_image_pointers")
        assert size == 40
        off, _ = img.offset_of(base + 32, "slot")
        return struct.unpack_from("<Q", img.data, off)[0], img.relative_addend(base + 32)


def lld_available():
    if shutil.which("gcc") is None or not (shutil.which("ld.lld") or shutil.which("lld")):
        return False
    probe = subprocess.run(["gcc", "-fuse-ld=lld", "-shared", "-x", "c", "-", "-o", "/dev/null"],
                           input="int x;", capture_output=True, text=True)
    return probe.returncode == 0


@needs_gcc
def test_gnu_ld_stores_the_pointer_in_the_file(tmp_path):
    so = compile_so(tmp_path, "gnu", "-fuse-ld=bfd")
    value, addend = slot4_in_file(so)
    assert value != 0 and addend == value  # GNU ld writes the value and a RELATIVE reloc
    assert read_image_targets(so) == TARGETS


@pytest.mark.skipif(not lld_available(), reason="ld.lld is not installed (Debian package lld)")
def test_lld_leaves_the_slot_zero_and_we_follow_the_relative_relocation(tmp_path):
    so = compile_so(tmp_path, "lld", "-fuse-ld=lld")
    value, addend = slot4_in_file(so)
    assert value == 0 and addend  # the address lives only in .rela.dyn
    assert read_image_targets(so) == TARGETS


@needs_gcc
def test_packed_relative_relocations_keep_the_value_in_place(tmp_path):
    try:
        so = compile_so(tmp_path, "relr", "-fuse-ld=bfd", "-Wl,-z,pack-relative-relocs")
    except subprocess.CalledProcessError:
        pytest.skip("this GNU ld does not support -z pack-relative-relocs")
    assert slot4_in_file(so)[0] != 0
    assert read_image_targets(so) == TARGETS


@needs_gcc
def test_missing_symbol(tmp_path):
    so = compile_so(tmp_path, "nosym", source="int not_an_image = 1;\n")
    with pytest.raises(FormatError, match=r"nosym\.so: no symbol 'jl_image_pointers'"):
        read_image_targets(so)


@needs_gcc
def test_pointer_outside_every_segment(tmp_path):
    so = compile_so(tmp_path, "wild", "-fuse-ld=bfd")
    with open_image(so) as img:
        base, _ = img.symbol("jl_image_pointers")
        off, _ = img.offset_of(base + 32, "slot")
        data = bytearray(img.data)
    struct.pack_into("<Q", data, off, 0xDEAD0000000)
    so.write_bytes(data)
    with pytest.raises(FormatError, match=r"wild\.so: offset \d+: jl_image_pointers\[4\]: target data address 0xdead0000000 is outside every PT_LOAD"):
        read_image_targets(so)


@pytest.mark.parametrize("zero_slots", [True, False])
def test_writer_output_reads_back_and_loads_with_dlopen(tmp_path, zero_slots):
    so = tmp_path / f"sys-{zero_slots}.so"
    ids = struct.pack("<4Q", 1, 2, 3, 4)
    write_image(so, target_data_bytes(TARGETS), extra_symbols={"dd_module_build_ids": ids}, zero_slots=zero_slots)
    assert read_image_targets(so) == TARGETS
    assert read_symbol(so, "dd_module_build_ids") == ids
    assert (slot4_in_file(so)[0] == 0) is zero_slots
    if platform.machine() != "x86_64":
        pytest.skip("dlopen check needs an x86_64 host")
    lib = ctypes.CDLL(str(so))
    ptrs = (ctypes.c_uint64 * 5).in_dll(lib, "jl_image_pointers")
    blob = target_data_bytes(TARGETS)
    assert ctypes.string_at(ptrs[4], len(blob)) == blob  # the dynamic loader applied the relocation
    assert struct.unpack("<4I", ctypes.string_at(ptrs[0], 16)) == (1, 0, 0, 0)
    assert ctypes.string_at(ctypes.addressof(ctypes.c_char.in_dll(lib, "dd_module_build_ids")), 32) == ids


@pytest.mark.skipif(shutil.which("readelf") is None or shutil.which("nm") is None, reason="binutils missing")
@pytest.mark.parametrize(("machine", "header", "reloc"), [
    ("x86_64", "Advanced Micro Devices X86-64", "R_X86_64_RELATIVE"),
    ("aarch64", "AArch64", "R_AARCH64_RELATIV"),
])
def test_writer_output_is_understood_by_binutils(tmp_path, machine, header, reloc):
    so = tmp_path / f"{machine}.so"
    write_image(so, target_data_bytes(TARGETS), machine=machine, extra_symbols={"dd_ids": b"x" * 16}, soname="sys.so")
    run = lambda *a: subprocess.run(a, capture_output=True, text=True, check=True).stdout
    assert header in run("readelf", "-h", str(so))
    syms = run("readelf", "-Ws", "--dyn-syms", str(so))
    assert any(line.split()[-1] == "jl_image_pointers" and "OBJECT" in line and "GLOBAL" in line and " 40 " in line
               for line in syms.splitlines() if line.strip())
    assert "dd_ids" in syms
    nm = run("nm", "-D", str(so))
    assert any(line.endswith("D jl_image_pointers") for line in nm.splitlines())
    relocs = run("readelf", "-r", str(so))
    assert relocs.count(reloc) == 2
    assert "sys.so" in run("readelf", "-d", str(so))
    assert read_image_targets(so) == TARGETS
    with open_image(so) as img:
        assert img.machine == machine


def test_not_an_elf(tmp_path):
    f = tmp_path / "x.so"
    f.write_text("just text, no ELF here")
    with pytest.raises(FormatError, match=r"x\.so: offset 0: expected the ELF magic 7F 45 4C 46, found 6A 75 73 74"):
        read_image_targets(f)
    f.write_bytes(b"\x7fEL")
    with pytest.raises(FormatError, match="offset 0: expected the ELF identification"):
        read_image_targets(f)


def test_32_bit_and_big_endian_are_refused(tmp_path):
    so = tmp_path / "a.so"
    write_image(so, target_data_bytes(TARGETS))
    data = bytearray(so.read_bytes())
    data[4] = 1
    so.write_bytes(data)
    with pytest.raises(FormatError, match=r"offset 4: expected a 64-bit ELF \(class 2\), found class 1"):
        read_image_targets(so)
    data[4], data[5] = 2, 2
    so.write_bytes(data)
    with pytest.raises(FormatError, match="offset 5: expected a little-endian ELF"):
        read_image_targets(so)


def test_null_target_slot_without_relocation(tmp_path):
    so = tmp_path / "a.so"
    write_image(so, target_data_bytes(TARGETS))
    with open_image(so) as img:
        rela = next(s for s in img.sections if s.name == ".rela.dyn")
        data = bytearray(img.data)
    for i in range(rela.size // 24):  # move every relocation away from the slots
        struct.pack_into("<Q", data, rela.offset + 24 * i, 0)
    so.write_bytes(data)
    with pytest.raises(FormatError, match=r"jl_image_pointers\[4\] \(target data\) is a null pointer"):
        read_image_targets(so)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(FormatError, match="cannot read image"):
        read_image_targets(tmp_path / "absent.so")
    (tmp_path / "empty.so").write_bytes(b"")
    with pytest.raises(FormatError, match=r"empty\.so: offset 0: expected the ELF identification \(16 bytes\), only 0 left"):
        read_image_targets(tmp_path / "empty.so")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cut=st.integers(0, 10**6), flips=st.lists(st.integers(0, 10**7), max_size=3))
def test_truncated_or_corrupted_images_raise_only_format_error(tmp_path_factory, cut, flips):
    so = tmp_path_factory.mktemp("elf") / "f.so"
    write_image(so, target_data_bytes(TARGETS), machine="aarch64")
    data = bytearray(so.read_bytes())
    for bit in flips:
        bit %= 8 * len(data)
        data[bit // 8] ^= 1 << (bit % 8)
    so.write_bytes(bytes(data[: cut % (len(data) + 1)]))
    try:
        read_image_targets(so)
    except FormatError:
        pass


def test_writer_refuses_to_overwrite_the_pointer_table(tmp_path):
    with pytest.raises(ValueError, match="written by write_image itself"):
        write_image(tmp_path / "x.so", b"", extra_symbols={"jl_image_pointers": b"x"})
    with pytest.raises(ValueError, match="machine must be one of"):
        write_image(tmp_path / "x.so", b"", machine="riscv64")


_symbol_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=20).filter(
    lambda n: n != "jl_image_pointers")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(machine=st.sampled_from(["x86_64", "aarch64"]), zero_slots=st.booleans(),
       names=st.lists(st.text(max_size=12), max_size=4),
       symbols=st.dictionaries(_symbol_names, st.binary(max_size=100), max_size=4))
def test_writer_round_trip(tmp_path_factory, machine, zero_slots, names, symbols):
    data = TargetData(tuple(ImageTarget(flags=i, en_words=(i,) * 3, dis_words=(0,) * 3, name=n)
                            for i, n in enumerate(names)))
    so = tmp_path_factory.mktemp("w") / "x.so"
    write_image(so, target_data_bytes(data), machine=machine, extra_symbols=symbols, zero_slots=zero_slots)
    assert read_image_targets(so) == data
    for name, value in symbols.items():
        assert read_symbol(so, name) == value
