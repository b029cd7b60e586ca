"""cffi builder (API, out-of-line mode) for the private extension ``depotdelivery._cpuid``."""

from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef(
    """
    int dd_arch(void);
    void dd_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4]);
    uint64_t dd_xgetbv(uint32_t index);
    unsigned long dd_getauxval(unsigned long type);
    """
)
ffibuilder.set_source(
    "depotdelivery._cpuid",
    '#include <stdint.h>\n'
    "int dd_arch(void);\n"
    "void dd_cpuid(uint32_t, uint32_t, uint32_t[4]);\n"
    "uint64_t dd_xgetbv(uint32_t);\n"
    "unsigned long dd_getauxval(unsigned long);\n",
    sources=["src/_cpuid.c"],  # relative to setup.py, as setuptools requires
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
