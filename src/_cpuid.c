/* Raw CPU registers for depotdelivery.cpu: no decoding, no policy (decoding is Python data).
 *
 * x86_64:  dd_cpuid_leaves(leaves, n, out) -> a whole CPUID dump in one call;  dd_xgetbv(0) -> XCR0.
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

/* One call for every leaf detection reads: a Python->C call costs about as much as a CPUID
 * (which traps to the hypervisor in a VM), so the leaves are not read one call each.
 * leaves[2i], leaves[2i+1] = (leaf, subleaf), each range's base leaf (0, 0x80000000) listed
 * before the rest of its range; out[5i] = 1 if read, then eax, ebx, ecx, edx. A leaf above the
 * maximum its base leaf reports is not read (the CPU would return another leaf's data): 0s. */
void dd_cpuid_leaves(const uint32_t *leaves, uint32_t n, uint32_t *out)
{
    uint32_t max_basic = 0, max_ext = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t leaf = leaves[2 * i], subleaf = leaves[2 * i + 1], *o = out + 5 * i;
        unsigned int a = 0, b = 0, c = 0, d = 0;
        int base = leaf == 0 || leaf == 0x80000000u;
        if (!base && leaf > (leaf >= 0x80000000u ? max_ext : max_basic)) {
            o[0] = o[1] = o[2] = o[3] = o[4] = 0;
            continue;
        }
        __cpuid_count(leaf, subleaf, a, b, c, d);
        if (leaf == 0)
            max_basic = a;
        else if (leaf == 0x80000000u)
            max_ext = a;
        o[0] = 1; o[1] = a; o[2] = b; o[3] = c; o[4] = d;
    }
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

void dd_cpuid_leaves(const uint32_t *leaves, uint32_t n, uint32_t *out)
{
    (void)leaves;
    for (uint32_t i = 0; i < 5 * n; i++)
        out[i] = 0;
}

uint64_t dd_xgetbv(uint32_t index) { (void)index; return 0; }

unsigned long dd_getauxval(unsigned long type) { return getauxval(type); }

#else
int dd_arch(void) { return DD_ARCH_OTHER; }
void dd_cpuid_leaves(const uint32_t *leaves, uint32_t n, uint32_t *out)
{
    (void)leaves;
    for (uint32_t i = 0; i < 5 * n; i++)
        out[i] = 0;
}
uint64_t dd_xgetbv(uint32_t index) { (void)index; return 0; }
unsigned long dd_getauxval(unsigned long type) { (void)type; return 0; }
#endif
