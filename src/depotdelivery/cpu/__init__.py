"""Host CPU model: raw registers (CPUID/XCR0, HWCAP/MIDR) -> HostCPU, detect(), archspec and Julia names.

Importing this package is cheap: archspec, json and Julia's tables are loaded only when a
name (``microarch``, ``generic``, ``julia_*``) is first asked for.
"""
from __future__ import annotations

from depotdelivery.cpu.detection import ENV_MICROARCH, detect
from depotdelivery.cpu.host import DEFAULT_JULIA_VERSION, HostCPU

__all__ = ["DEFAULT_JULIA_VERSION", "ENV_MICROARCH", "HostCPU", "detect"]
