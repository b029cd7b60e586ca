"""archspec names for a HostCPU: microarchitecture, generic level, and why-not explanations.

archspec's own data and compatibility checks (``archspec.cpu.TARGETS``,
``archspec.cpu.detect.COMPATIBILITY_CHECKS``) fed with our features, ranked the way
``archspec.cpu.detect.host()`` ranks. archspec is imported here only, on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from depotdelivery.cpu.host import HostCPU

__all__ = ["generic_name", "microarch_name", "why_not"]


def _partial(host: HostCPU) -> Any:
    from archspec.cpu.detect import partial_uarch

    cpu_part = ""
    if host.arch == "aarch64" and host.midr:
        cpu_part = f"0x{(host.midr >> 4) & 0xFFF:03x}"  # /proc/cpuinfo "CPU part" spelling
    return partial_uarch(vendor=host.vendor, features=set(host.features), cpu_part=cpu_part)


def _candidates(host: HostCPU) -> tuple[Any, list[Any], Any]:
    """(partial uarch, compatible targets, best generic) as archspec.cpu.detect.host() has them,
    with the compatibility check of the host's architecture (not of the machine running us)."""
    from archspec.cpu import TARGETS
    from archspec.cpu.detect import COMPATIBILITY_CHECKS
    from archspec.cpu.microarchitecture import generic_microarchitecture

    info = _partial(host)
    tester = COMPATIBILITY_CHECKS.get(host.arch)
    candidates = [t for t in TARGETS.values() if tester is not None and tester(info, t)]
    if not candidates:
        candidates = [TARGETS.get(host.arch) or generic_microarchitecture(host.arch)]
    generic = max((c for c in candidates if c.vendor == "generic"), key=_rank)
    return info, candidates, generic


def _rank(target: Any) -> tuple[int, int]:
    # archspec.cpu.detect.host(): deepest in the inheritance tree, then most features
    return len(target.ancestors), len(target.features)


def microarch_name(host: HostCPU) -> str:
    info, candidates, best_generic = _candidates(host)
    if info.cpu_part and any(c.cpu_part == info.cpu_part for c in candidates):
        candidates = [c for c in candidates if c.cpu_part == info.cpu_part]
    specific = [c for c in candidates if c > best_generic]
    return str(max(specific, key=_rank).name if specific else best_generic.name)


def generic_name(host: HostCPU) -> str:
    return str(_candidates(host)[2].name)


def why_not(host: HostCPU, target_name: str) -> str:
    """Why ``target_name`` is not the host's microarchitecture, in archspec's words
    (``archspec.cpu.why_not``, for this HostCPU instead of the running machine). Never raises."""
    try:
        return _why_not(host, target_name)
    except Exception as exc:  # noqa: BLE001 - the contract is a message, never an exception
        return f"cannot explain {target_name!r}: {type(exc).__name__}: {exc}"


def _why_not(host: HostCPU, target_name: str) -> str:
    from archspec.cpu import TARGETS

    if target_name not in TARGETS:
        return f'"{target_name}" is not a known microarchitecture target'
    target, current = TARGETS[target_name], TARGETS[host.microarch]
    if target == current:
        return f"{target_name} is the detected host microarchitecture"
    if target < current:
        return f"{target_name} is an ancestor of the detected host; {current} was selected as more specific"
    root = TARGETS.get(host.arch)
    if root is None or not (target == root or root in target.ancestors):
        return (f"{target_name} belongs to the {target.family} architecture family, "
                f"but the host is {host.arch}")
    if target.vendor not in (host.vendor, "generic"):
        return (f"{target_name} targets vendor {target.vendor}, "
                f"but the host CPU vendor is {host.vendor}")
    # archspec's partial uarch, as its why_not() uses (it adds "sse3" when "ssse3" is there)
    missing = set(target.features) - set(_partial(host).features)
    if missing:
        return (f"{target_name} requires features not available on the host: "
                f"{', '.join(sorted(missing))}")
    return f"{target_name} is not compatible with the detected host microarchitecture {current}"
