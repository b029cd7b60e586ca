"""setuptools entry point: exists for cffi's ``cffi_modules`` (the private CPUID extension).

The extension is optional: where it cannot be built (no compiler, a CPU other than
x86_64/aarch64) installation still succeeds and detection falls back to /proc/cpuinfo.
"""
import platform
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

_SUPPORTED_MACHINES = {"x86_64", "amd64", "aarch64", "arm64"}


class OptionalBuildExt(build_ext):
    """Build the CPUID extension if possible; never fail the installation because of it."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # compiler missing, headers missing, ...
            self._warn(exc)

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._warn(exc)

    @staticmethod
    def _warn(exc: BaseException) -> None:
        print(
            f"depotdelivery: optional CPUID extension not built ({exc}); "
            "CPU detection will read /proc/cpuinfo instead",
            file=sys.stderr,
        )


_cffi_modules = (
    ["src/depotdelivery/_cpuid_build.py:ffibuilder"]
    if platform.machine().lower() in _SUPPORTED_MACHINES
    else []
)

setup(cffi_modules=_cffi_modules, cmdclass={"build_ext": OptionalBuildExt})
