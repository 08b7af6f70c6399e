/* timing.h — what the hand-run kernel benches (conv_direct.c, tucker_fused.c) share:
 * a monotonic clock, a comparison for qsort'ing times, and the relative L2 error of one
 * kernel's output against another's. Header-only: each bench builds on its own. */
#ifndef ACTIOND_BENCH_TIMING_H
#define ACTIOND_BENCH_TIMING_H

#include <math.h>
#include <stddef.h>
#include <time.h>

static inline double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline double rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += (double)(a[i] - b[i]) * (a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

#endif
