"""Data tables for the host CPU name Julia gives a machine (``Sys.CPU_NAME``, the ``native``
target's name), one module per source, each row carrying the version range it holds for:

* ``julia_x86`` / ``julia_aarch64``: Julia's own tables (src/processor_x86.cpp,
  src/processor_arm.cpp), ranges in Julia minor versions;
* ``llvm_x86`` / ``llvm_aarch64``: ``llvm::sys::getHostCPUName()`` of the LLVM each Julia
  version ships (llvm/lib/Support/Host.cpp <= 15, llvm/lib/TargetParser/Host.cpp >= 16),
  ranges in LLVM major versions, including the x86 "Unknown family 6 CPU, try to guess" chain.

The tables are plain tuples, imported only when a name is computed (depotdelivery.julia.hostcpu
holds the rules that walk them). How each fact was read is in docs/julia-cpu-names.md.
"""
__all__: list[str] = []
