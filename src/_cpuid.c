/* Raw CPU registers for depotdelivery.cpu: no decoding, no policy (decoding is Python data).
 *
 * x86_64:  dd_cpuid(leaf, subleaf, out[4]) -> eax, ebx, ecx, edx;  dd_xgetbv(0) -> XCR0.
 * aarch64 Linux: dd_getauxval(AT_HWCAP / AT_HWCAP2) (MIDR_EL1 is read from sysfs in Python).
 * Each function reports through dd_arch() which primitives exist, so the Python side never
 * calls one that is not there.
 */
#include <stdint.h>

#define DD_ARCH_OTHER 0
#define DD_ARCH_X86_64 1
#define DD_ARCH_AARCH64 2

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>

int dd_arch(void) { return DD_ARCH_X86_64; }

void dd_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4])
{
    unsigned int a = 0, b = 0, c = 0, d = 0;
    __cpuid_count(leaf, subleaf, a, b, c, d);
    out[0] = a; out[1] = b; out[2] = c; out[3] = d;
}

/* Only valid when CPUID(1).ECX.OSXSAVE is set; the caller checks that first. */
uint64_t dd_xgetbv(uint32_t index)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(index));
    return ((uint64_t)hi << 32) | lo;
}

unsigned long dd_getauxval(unsigned long type) { (void)type; return 0; }

#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>

int dd_arch(void) { return DD_ARCH_AARCH64; }

void dd_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4])
{
    (void)leaf; (void)subleaf;
    out[0] = out[1] = out[2] = out[3] = 0;
}

uint64_t dd_xgetbv(uint32_t index) { (void)index; return 0; }

unsigned long dd_getauxval(unsigned long type) { return getauxval(type); }

#else
int dd_arch(void) { return DD_ARCH_OTHER; }
void dd_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4])
{
    (void)leaf; (void)subleaf;
    out[0] = out[1] = out[2] = out[3] = 0;
}
uint64_t dd_xgetbv(uint32_t index) { (void)index; return 0; }
unsigned long dd_getauxval(unsigned long type) { (void)type; return 0; }
#endif
