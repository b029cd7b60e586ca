"""cffi builder (API, out-of-line mode) for the private extension ``depotdelivery._cpuid``."""

from cffi import FFI

# The four primitives of src/_cpuid.c (raw registers only; decoding is depotdelivery.cpu).
# One declaration text serves cffi's cdef and the C prototypes the wrapper compiles against.
DECLARATIONS = """
int dd_arch(void);
void dd_cpuid_leaves(const uint32_t *leaves, uint32_t n, uint32_t *out);
uint64_t dd_xgetbv(uint32_t index);
unsigned long dd_getauxval(unsigned long type);
"""

ffibuilder = FFI()
ffibuilder.cdef(DECLARATIONS)
ffibuilder.set_source(
    "depotdelivery._cpuid",
    "#include <stdint.h>\n" + DECLARATIONS,
    sources=["src/_cpuid.c"],  # relative to setup.py, as setuptools requires
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
