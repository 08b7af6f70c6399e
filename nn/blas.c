/* blas.c — which OpenBLAS kernel runs. OpenBLAS picks its kernel when it loads, from
 * CPUID or from OPENBLAS_CORETYPE; releases older than the CPU (Debian 12's 0.3.21 on
 * AMD Zen 4, say) fall back to the generic "Prescott" kernel, several times slower.
 * nn_blas_better_core() names the kernel this CPU can run when the loaded one is
 * slower; main re-executes itself with OPENBLAS_CORETYPE set to it. */
#include "nn/nn.h"

#include <cblas.h>
#include <strings.h>

/* Feature levels of OpenBLAS's x86-64 kernels, by core name. */
enum blas_level { LEVEL_GENERIC, LEVEL_AVX, LEVEL_AVX2, LEVEL_AVX512 };

static const struct {
    const char *name;
    enum blas_level level;
} cores[] = {
    {"SkylakeX", LEVEL_AVX512}, {"CooperLake", LEVEL_AVX512}, {"SapphireRapids", LEVEL_AVX512},
    {"Haswell", LEVEL_AVX2},    {"Zen", LEVEL_AVX2},          {"Excavator", LEVEL_AVX2},
    {"Sandybridge", LEVEL_AVX}, {"Bulldozer", LEVEL_AVX},     {"Piledriver", LEVEL_AVX},
    {"Steamroller", LEVEL_AVX},
};

static enum blas_level level_of(const char *core)
{
    for (size_t i = 0; i < sizeof cores / sizeof cores[0]; i++)
        if (core && strcasecmp(core, cores[i].name) == 0)
            return cores[i].level;
    return LEVEL_GENERIC;
}

const char *nn_blas_core(void)
{
    return openblas_get_corename();
}

const char *nn_blas_better_core(void)
{
    return nn_blas_better_core_than(nn_blas_core());
}

const char *nn_blas_better_core_than(const char *loaded)
{
#if defined(__x86_64__) || defined(__i386__)
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
    return lvl > level_of(loaded) ? want : NULL;
#else
    (void)loaded;
    /* ARM cores (Cortex-A72/A76/A78) are recognised by OpenBLAS itself; never force. */
    return NULL;
#endif
}

void nn_blas_set_threads(int n)
{
    openblas_set_num_threads(n < 1 ? 1 : n);
}
