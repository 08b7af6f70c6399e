/* blas.c — which OpenBLAS kernel runs. OpenBLAS picks its kernel when it loads, from
 * CPUID/MIDR or from OPENBLAS_CORETYPE; releases older than the CPU (Debian 12's 0.3.21 on
 * AMD Zen 4, or on the Cortex-A76 of a Raspberry Pi 5) fall back to a generic kernel, several
 * times slower. nn_blas_better_core() names the kernel this CPU can run when the loaded one is
 * slower; main re-executes itself with OPENBLAS_CORETYPE set to it. */
#include "nn/nn.h"

#include <cblas.h>
#include <strings.h>

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_CPUID
#define HWCAP_CPUID (1 << 11) /* the kernel emulates MIDR_EL1 reads from user space */
#endif
#endif

/* Feature levels of OpenBLAS's x86-64 kernels, by core name; older x86 cores are listed
 * too so that no other architecture is ever told to run one. */
enum blas_level { LEVEL_GENERIC, LEVEL_AVX, LEVEL_AVX2, LEVEL_AVX512 };

static const struct {
    const char *name;
    enum blas_level level;
} x86_cores[] = {
    {"SkylakeX", LEVEL_AVX512}, {"CooperLake", LEVEL_AVX512}, {"SapphireRapids", LEVEL_AVX512},
    {"Haswell", LEVEL_AVX2},    {"Zen", LEVEL_AVX2},          {"Excavator", LEVEL_AVX2},
    {"Sandybridge", LEVEL_AVX}, {"Bulldozer", LEVEL_AVX},     {"Piledriver", LEVEL_AVX},
    {"Steamroller", LEVEL_AVX}, {"Prescott", LEVEL_GENERIC},  {"Core2", LEVEL_GENERIC},
    {"Penryn", LEVEL_GENERIC},  {"Dunnington", LEVEL_GENERIC}, {"Nehalem", LEVEL_GENERIC},
    {"Atom", LEVEL_GENERIC},    {"Opteron", LEVEL_GENERIC},   {"Opteron_SSE3", LEVEL_GENERIC},
    {"Barcelona", LEVEL_GENERIC}, {"Nano", LEVEL_GENERIC},    {"Bobcat", LEVEL_GENERIC},
    {"Katmai", LEVEL_GENERIC},  {"Coppermine", LEVEL_GENERIC}, {"Northwood", LEVEL_GENERIC},
    {"Banias", LEVEL_GENERIC},  {"Athlon", LEVEL_GENERIC},
};

static int x86_core_index(const char *core)
{
    for (size_t i = 0; i < sizeof x86_cores / sizeof x86_cores[0]; i++)
        if (core && strcasecmp(core, x86_cores[i].name) == 0)
            return (int)i;
    return -1;
}

/* Arm Ltd. (implementer 0x41) cores that OpenBLAS 0.3.21 does not recognise and leaves on
 * the generic armv8 kernel, though its Neoverse N1 kernel fits them: the N1 is a Cortex-A76
 * for servers, and the A77/A78/X1 are its successors with the same ARMv8.2 instructions.
 * A53/A55/A57/A72/A73 are recognised by OpenBLAS itself and need nothing. */
static const struct {
    unsigned part;
    const char *core;
} arm_parts[] = {
    {0xd0b, "neoversen1"}, /* Cortex-A76: Raspberry Pi 5 */
    {0xd0e, "neoversen1"}, /* Cortex-A76AE */
    {0xd0d, "neoversen1"}, /* Cortex-A77 */
    {0xd41, "neoversen1"}, /* Cortex-A78 */
    {0xd42, "neoversen1"}, /* Cortex-A78AE: Jetson Orin */
    {0xd4b, "neoversen1"}, /* Cortex-A78C */
    {0xd44, "neoversen1"}, /* Cortex-X1 */
};

const char *nn_blas_arm_core(unsigned implementer, unsigned part, const char *loaded)
{
    if (!loaded || strcasecmp(loaded, "armv8") != 0 || implementer != 0x41)
        return NULL;
    for (size_t i = 0; i < sizeof arm_parts / sizeof arm_parts[0]; i++)
        if (arm_parts[i].part == part)
            return arm_parts[i].core;
    return NULL;
}

/* OpenBLAS's arm64 kernels (DYNAMIC_CORE of its Makefile.system). */
static const char *const arm_cores[] = {
    "armv8",      "cortexa53",    "cortexa55", "cortexa57",     "cortexa72",
    "cortexa73",  "falkor",       "thunderx",  "thunderx2t99",  "thunderx3t110",
    "tsv110",     "emag8180",     "neoversen1", "neoversen2",   "neoversev1",
    "a64fx",      "armv8sve",     "vortex",
};

static int is_arm_core(const char *core)
{
    for (size_t i = 0; i < sizeof arm_cores / sizeof arm_cores[0]; i++)
        if (core && strcasecmp(core, arm_cores[i]) == 0)
            return 1;
    return 0;
}

int nn_blas_core_fits_arch(const char *core)
{
    int x86 = x86_core_index(core) >= 0, arm = is_arm_core(core);
    (void)x86, (void)arm;
#if defined(__x86_64__) || defined(__i386__)
    return !arm;
#elif defined(__aarch64__)
    return !x86;
#else
    return !x86 && !arm;
#endif
}

const char *nn_blas_core(void)
{
    return openblas_get_corename();
}

const char *nn_blas_better_core(void)
{
    return nn_blas_better_core_than(nn_blas_core());
}

#if defined(__x86_64__) || defined(__i386__)
static const char *better_x86(const char *loaded)
{
    /* __builtin_cpu_supports also checks that the OS saves the wider registers. */
    const char *want = NULL;
    enum blas_level lvl = LEVEL_GENERIC;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl")) {
        want = "SkylakeX";
        lvl = LEVEL_AVX512;
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        want = "Haswell";
        lvl = LEVEL_AVX2;
    } else if (__builtin_cpu_supports("avx")) {
        want = "Sandybridge";
        lvl = LEVEL_AVX;
    }
    int i = x86_core_index(loaded);
    return lvl > (i < 0 ? LEVEL_GENERIC : x86_cores[i].level) ? want : NULL;
}
#endif

#if defined(__aarch64__) && defined(__linux__)
static const char *better_arm(const char *loaded)
{
    /* OpenBLAS reads MIDR_EL1 the same way; without HWCAP_CPUID the read would trap. */
    if (!(getauxval(AT_HWCAP) & HWCAP_CPUID))
        return NULL;
    unsigned long midr;
    __asm__ volatile("mrs %0, midr_el1" : "=r"(midr));
    return nn_blas_arm_core((unsigned)(midr >> 24) & 0xff, (unsigned)(midr >> 4) & 0xfff,
                            loaded);
}
#endif

const char *nn_blas_better_core_than(const char *loaded)
{
#if defined(__x86_64__) || defined(__i386__)
    return better_x86(loaded);
#elif defined(__aarch64__) && defined(__linux__)
    return better_arm(loaded);
#else
    (void)loaded;
    return NULL;
#endif
}

void nn_blas_set_threads(int n)
{
    openblas_set_num_threads(n < 1 ? 1 : n);
}
