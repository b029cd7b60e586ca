"""HostCPU: the immutable record of one CPU (identity, Linux feature names, raw registers)."""
from __future__ import annotations

TYPE_CHECKING = False  # no `typing` on the hot path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["DEFAULT_JULIA_VERSION", "ENV_MICROARCH", "HostCPU"]

DEFAULT_JULIA_VERSION = "1.11"
# overrides detection with a microarchitecture name (EESSI_SOFTWARE_SUBDIR_OVERRIDE's role)
ENV_MICROARCH = "DEPOTDELIVERY_MICROARCH"

_FIELDS = (
    "arch", "vendor", "family", "model", "stepping", "brand", "features", "source",
    "registers", "xcr0", "hwcap", "hwcap2", "midr", "midrs",
)


class HostCPU:
    """One CPU as depotdelivery sees it. Frozen and slotted like a ``dataclass(frozen=True,
    slots=True)``, written out by hand so that ``detect()`` never imports ``dataclasses``
    (and with it ``inspect``): the cold path stays well under a millisecond.

    ``registers`` (x86_64: sorted ``((leaf, subleaf), (eax, ebx, ecx, edx))`` pairs) and
    ``xcr0``, or ``hwcap``/``hwcap2``/``midr`` (aarch64), are the raw facts; everything else
    is derived from them, so a HostCPU rebuilt from its registers is equal to the original.
    """

    __slots__ = _FIELDS + ("_memo",)
    _memo: dict[Any, Any]  # per-instance cache of derived names (set in __init__)

    arch: str  # "x86_64" | "aarch64"
    vendor: str  # "GenuineIntel", "AuthenticAMD"; aarch64: the implementer's name
    family: int  # aarch64: implementer code
    model: int  # aarch64: part number
    stepping: int  # aarch64: revision
    brand: str
    features: frozenset[str]  # Linux /proc/cpuinfo names (archspec's vocabulary)
    source: str  # "cpuid" | "cpuinfo" | "override" | "file"
    registers: tuple[tuple[tuple[int, int], tuple[int, int, int, int]], ...]
    xcr0: int
    hwcap: int
    hwcap2: int
    midr: int
    midrs: tuple[int, ...]  # aarch64: every core's MIDR_EL1 in CPU order (Julia reads them all)

    def __init__(
        self,
        *,
        arch: str,
        vendor: str,
        family: int = 0,
        model: int = 0,
        stepping: int = 0,
        brand: str = "",
        features: frozenset[str] = frozenset(),
        source: str,
        registers: Any = (),
        xcr0: int = 0,
        hwcap: int = 0,
        hwcap2: int = 0,
        midr: int = 0,
        midrs: Any = (),
    ) -> None:
        setattr_ = object.__setattr__
        if hasattr(registers, "items"):
            registers = tuple(sorted(registers.items()))
        values = (arch, vendor, family, model, stepping, brand, frozenset(features), source,
                  tuple(registers), xcr0, hwcap, hwcap2, midr, tuple(midrs))
        for name, value in zip(_FIELDS, values):
            setattr_(self, name, value)
        setattr_(self, "_memo", {})

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"HostCPU is immutable: cannot set {name!r} (use .replace())")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"HostCPU is immutable: cannot delete {name!r}")

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _FIELDS)

    def __eq__(self, other: object) -> bool:
        return self._key() == other._key() if isinstance(other, HostCPU) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"HostCPU(arch={self.arch!r}, vendor={self.vendor!r}, family={self.family}, "
                f"model={self.model}, stepping={self.stepping}, brand={self.brand!r}, "
                f"features=<{len(self.features)} flags>, source={self.source!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (dict(zip(_FIELDS, self._key())),))

    def replace(self, **changes: Any) -> HostCPU:
        """A copy with some fields changed (``dataclasses.replace`` for this record)."""
        unknown = set(changes) - set(_FIELDS)
        if unknown:
            raise TypeError(f"HostCPU has no field(s) {', '.join(sorted(unknown))}")
        return HostCPU(**{**dict(zip(_FIELDS, self._key())), **changes})

    def _memoized(self, key: Any, compute: Any) -> Any:
        try:
            return self._memo[key]
        except KeyError:
            value = self._memo[key] = compute()
            return value

    # -- names (computed on first use; archspec is imported only here) ----------------------

    @property
    def microarch(self) -> str:
        """archspec's microarchitecture name for these features and vendor (what
        ``archspec.cpu.host()`` answers on this machine)."""
        from depotdelivery.cpu.names import microarch_name

        return self._memoized("microarch", lambda: microarch_name(self))

    @property
    def generic(self) -> str:
        """The best generic level: ``x86_64_v2/v3/v4`` (or ``x86_64``), ``aarch64``."""
        from depotdelivery.cpu.names import generic_name

        return self._memoized("generic", lambda: generic_name(self))

    def why_not(self, target: str) -> str:
        """archspec-style explanation of why ``target`` is not this host's microarchitecture.
        Never raises."""
        from depotdelivery.cpu.names import why_not

        return why_not(self, target)

    # -- Julia's view ------------------------------------------------------------------------

    def julia_features(self, julia_version: str = DEFAULT_JULIA_VERSION, *,
                       guaranteed: bool = False) -> frozenset[str]:
        """Julia's feature names for the ``native`` target on this host, host-masked as Julia
        does (OS state for AVX/AVX-512/AMX; rdrnd, rdseed, rtm, xsaveopt cleared). For an
        override host these are a typical CPU's of that name, or with ``guaranteed`` only
        what its archspec microarchitecture guarantees."""
        from depotdelivery.cpu._julia import julia_features

        return self._memoized(("jf", julia_version, guaranteed),
                              lambda: julia_features(self, julia_version, guaranteed=guaranteed))

    def julia_words(self, julia_version: str = DEFAULT_JULIA_VERSION) -> tuple[int, ...]:
        """The same features as Julia's u32 feature words (``32 * word + bit``)."""
        from depotdelivery.cpu._julia import julia_words

        return self._memoized(("jw", julia_version), lambda: julia_words(self, julia_version))

    def julia_cpu(self, julia_version: str = DEFAULT_JULIA_VERSION) -> str:
        """The CPU name Julia gives this host (``Sys.CPU_NAME``): Julia's own table, where it
        says generic LLVM's ``getHostCPUName`` of the LLVM that Julia version ships."""
        return self._julia_cpu(julia_version)[0]

    def julia_cpu_source(self, julia_version: str = DEFAULT_JULIA_VERSION) -> str:
        """Where :meth:`julia_cpu` comes from: ``julia`` (Julia's table), ``llvm-<N>`` (LLVM
        N's model table) or ``llvm-<N>-guess`` (LLVM's guess for an unknown Intel family-6
        model)."""
        return self._julia_cpu(julia_version)[1]

    def _julia_cpu(self, julia_version: str) -> tuple[str, str]:
        from depotdelivery.cpu._julia import julia_cpu

        return self._memoized(("jc", julia_version), lambda: julia_cpu(self, julia_version))

    def to_dict(self, julia_version: str = DEFAULT_JULIA_VERSION) -> dict[str, Any]:
        """The ``depotdelivery detect --json`` object."""
        out: dict[str, Any] = {
            "arch": self.arch,
            "vendor": self.vendor,
            "family": self.family,
            "model": self.model,
            "stepping": self.stepping,
            "brand": self.brand,
            "features": sorted(self.features),
            "source": self.source,
            "microarch": self.microarch,
            "generic": self.generic,
            "julia_version": julia_version,
            "julia_cpu": self.julia_cpu(julia_version),
            "julia_cpu_source": self.julia_cpu_source(julia_version),
            "julia_features": sorted(self.julia_features(julia_version)),
            "julia_words": list(self.julia_words(julia_version)),
        }
        if self.arch == "x86_64":
            out["xcr0"] = self.xcr0
        else:
            out.update(hwcap=self.hwcap, hwcap2=self.hwcap2, midr=self.midr, midrs=list(self.midrs))
        return out


def _rebuild(fields: dict[str, Any]) -> HostCPU:
    return HostCPU(**fields)
