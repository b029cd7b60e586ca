"""aarch64 decoding: AT_HWCAP/AT_HWCAP2 <-> Linux ``Features`` names; MIDR_EL1 <-> implementer/part."""
from __future__ import annotations

TYPE_CHECKING = False  # no `typing` on a job's path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from depotdelivery._record import NamedTuple

__all__ = [
    "HWCAP",
    "HWCAP2",
    "IMPLEMENTERS",
    "Midr",
    "decode_hwcaps",
    "hwcaps_from_features",
    "midr_fields",
    "midr_from_fields",
]

# Bit -> name as /proc/cpuinfo prints it: Linux arch/arm64/include/uapi/asm/hwcap.h (bit
# numbers) and arch/arm64/kernel/cpuinfo.c (hwcap_str, the names).
HWCAP: dict[int, str] = dict(
    enumerate(
        ["fp", "asimd", "evtstrm", "aes", "pmull", "sha1", "sha2", "crc32", "atomics", "fphp", "asimdhp", "cpuid", "asimdrdm", "jscvt", "fcma", "lrcpc", "dcpop", "sha3", "sm3", "sm4", "asimddp", "sha512", "sve", "asimdfhm", "dit", "uscat", "ilrcpc", "flagm", "ssbs", "sb", "paca", "pacg", "gcs", "cmpbr", "fprcvt", "f8mm8", "f8mm4", "svef16mm", "sveeltperm", "sveaes2", "svebfscale", "sve2p2", "sme2p2", "smesbitperm", "smeaes", "smesfexpa", "smestmop", "smesmop4"]
    )
)
HWCAP2: dict[int, str] = dict(
    enumerate(
        ["dcpodp", "sve2", "sveaes", "svepmull", "svebitperm", "svesha3", "svesm4", "flagm2", "frint", "svei8mm", "svef32mm", "svef64mm", "svebf16", "i8mm", "bf16", "dgh", "rng", "bti", "mte", "ecv", "afp", "rpres", "mte3", "sme", "smei16i64", "smef64f64", "smei8i32", "smef16f32", "smeb16f32", "smef32f32", "smefa64", "wfxt", "ebf16", "sveebf16", "cssc", "rprfm", "sve2p1", "sme2", "sme2p1", "smei16i32", "smebi32i32", "smeb16b16", "smef16f16", "mops", "hbc", "sveb16b16", "lrcpc3", "lse128", "fpmr", "lut", "faminmax", "f8cvt", "f8fma", "f8dp4", "f8dp2", "f8e4m3", "f8e5m2", "smelutv2", "smef8f16", "smef8f32", "smesf8fma", "smesf8dp4", "smesf8dp2", "poe"]
    )
)
_HWCAP_BITS = {name: bit for bit, name in HWCAP.items()}
_HWCAP2_BITS = {name: bit for bit, name in HWCAP2.items()}

# MIDR_EL1 implementer code -> vendor, as archspec names them (its microarchitectures.json
# "conversions/arm_vendors", so archspec's vendor check matches; tests compare the two).
IMPLEMENTERS: dict[int, str] = {
    0x41: "ARM", 0x42: "Broadcom", 0x43: "Cavium", 0x44: "DEC", 0x46: "Fujitsu",
    0x48: "HiSilicon", 0x49: "Infineon Technologies AG", 0x4D: "Motorola", 0x4E: "Nvidia",
    0x50: "APM", 0x51: "Qualcomm", 0x53: "Samsung", 0x56: "Marvell", 0x61: "Apple",
    0x66: "Faraday", 0x68: "HXT", 0x69: "Intel", 0xC0: "Ampere",
}


class Midr(NamedTuple):
    implementer: int
    variant: int
    architecture: int
    part: int
    revision: int


def midr_fields(midr: int) -> Midr:
    """Arm ARM D23.2 MIDR_EL1: [31:24] implementer, [23:20] variant, [19:16] architecture,
    [15:4] part number, [3:0] revision."""
    return Midr((midr >> 24) & 0xFF, (midr >> 20) & 0xF, (midr >> 16) & 0xF, (midr >> 4) & 0xFFF, midr & 0xF)


def midr_from_fields(implementer: int, variant: int, part: int, revision: int, architecture: int = 0xF) -> int:
    """MIDR_EL1 from /proc/cpuinfo's fields (``CPU architecture: 8`` means 0xF, "see ID registers")."""
    return ((implementer & 0xFF) << 24) | ((variant & 0xF) << 20) | ((architecture & 0xF) << 16) | ((part & 0xFFF) << 4) | (revision & 0xF)


def _names(value: int, table: dict[int, str]) -> set[str]:
    return {name for bit, name in table.items() if value >> bit & 1}


def decode_hwcaps(hwcap: int, hwcap2: int) -> frozenset[str]:
    """Linux ``Features`` names of the set HWCAP/HWCAP2 bits (unknown bits are ignored)."""
    return frozenset(_names(hwcap, HWCAP) | _names(hwcap2, HWCAP2))


def hwcaps_from_features(features: frozenset[str] | set[str]) -> tuple[int, int]:
    """(AT_HWCAP, AT_HWCAP2) of a CPU whose kernel prints these ``Features``."""
    hwcap = sum(1 << _HWCAP_BITS[name] for name in features if name in _HWCAP_BITS)
    hwcap2 = sum(1 << _HWCAP2_BITS[name] for name in features if name in _HWCAP2_BITS)
    return hwcap, hwcap2
