/* op_gemm_packed.c — C = A B for a weight matrix A packed once at planning and a thin
 * B (few columns: a 7x7 map, a batch of one). OpenBLAS re-packs A on every call, which
 * dominates when B has few columns; here A is read once per K-block straight from its
 * packed panels while a tile of C stays in registers. The kernel is plain C with GCC
 * vector extensions; the plan uses it only where the vectors map onto AVX-512
 * registers (nn_gemm_packed_wanted), and OpenBLAS everywhere else. */
#include "nn/ops.h"

#include <string.h>

#define MR 32  /* rows of A per panel: two vectors of 16 */
#define NR 7   /* columns of C per tile: 14 accumulators plus 2 loads fit 32 registers */
#define KC 256 /* K per block: one panel block (32 KiB) stays in L1 */

typedef float v16 __attribute__((vector_size(64)));

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PACKED_CLONES __attribute__((target_clones("avx512f", "default")))
#else
#define PACKED_CLONES
#endif

int nn_gemm_packed_wanted(int m, int n, int k)
{
#if defined(__x86_64__) && defined(__GNUC__)
    return __builtin_cpu_supports("avx512f") && m >= MR && n <= NN_GEMM_PACKED_MAX_N &&
           k >= 64;
#else
    (void)m, (void)n, (void)k;
    return 0;
#endif
}

size_t nn_gemm_packed_floats(int m, int k)
{
    return (size_t)((m + MR - 1) / MR) * MR * (size_t)k;
}

/* ap[(p*k + kk)*MR + r] = a[(p*MR + r)*k + kk], zero past the last row. */
void nn_gemm_pack_a(const float *a, int m, int k, float *ap)
{
    int panels = (m + MR - 1) / MR;
    for (int p = 0; p < panels; p++)
        for (int kk = 0; kk < k; kk++) {
            float *dst = ap + ((size_t)p * k + kk) * MR;
            for (int r = 0; r < MR; r++) {
                int row = p * MR + r;
                dst[r] = row < m ? a[(size_t)row * k + kk] : 0.f;
            }
        }
}

/* One MR x nr tile of C over kc values of K; adds to C when accumulate is set. */
static inline __attribute__((always_inline)) void
tile(int kc, const float *ap, const float *b, int ldb, float *c, int ldc, int rows, int nr,
     int accumulate)
{
    v16 acc0[NR], acc1[NR];
    for (int j = 0; j < NR; j++)
        acc0[j] = acc1[j] = (v16){0};
    for (int kk = 0; kk < kc; kk++) {
        v16 a0 = *(const v16 *)(ap + (size_t)kk * MR);
        v16 a1 = *(const v16 *)(ap + (size_t)kk * MR + 16);
        const float *br = b + (size_t)kk * ldb;
        for (int j = 0; j < nr; j++) {
            acc0[j] += a0 * br[j];
            acc1[j] += a1 * br[j];
        }
    }
    for (int j = 0; j < nr; j++)
        for (int r = 0; r < rows; r++) {
            float v = r < 16 ? acc0[j][r] : acc1[j][r - 16];
            float *dst = c + (size_t)r * ldc + j;
            *dst = accumulate ? *dst + v : v;
        }
}

PACKED_CLONES
static void panel_block(int kc, const float *ap, const float *b, int ldb, float *c, int ldc,
                        int rows, int n, int accumulate)
{
    int j = 0;
    for (; j + NR <= n; j += NR)
        tile(kc, ap, b + j, ldb, c + j, ldc, rows, NR, accumulate);
    /* the last, narrower tile: one case per width so each loop has a constant bound */
    switch (n - j) {
    case 6: tile(kc, ap, b + j, ldb, c + j, ldc, rows, 6, accumulate); break;
    case 5: tile(kc, ap, b + j, ldb, c + j, ldc, rows, 5, accumulate); break;
    case 4: tile(kc, ap, b + j, ldb, c + j, ldc, rows, 4, accumulate); break;
    case 3: tile(kc, ap, b + j, ldb, c + j, ldc, rows, 3, accumulate); break;
    case 2: tile(kc, ap, b + j, ldb, c + j, ldc, rows, 2, accumulate); break;
    case 1: tile(kc, ap, b + j, ldb, c + j, ldc, rows, 1, accumulate); break;
    default: break;
    }
}

void nn_gemm_packed(int m, int n, int k, const float *ap, const float *b, int ldb, float *c,
                    int ldc)
{
    int panels = (m + MR - 1) / MR;
    for (int k0 = 0; k0 < k; k0 += KC) {
        int kc = k - k0 < KC ? k - k0 : KC;
        for (int p = 0; p < panels; p++) {
            int rows = m - p * MR < MR ? m - p * MR : MR;
            panel_block(kc, ap + ((size_t)p * k + k0) * MR, b + (size_t)k0 * ldb, ldb,
                        c + (size_t)p * MR * ldc, ldc, rows, n, k0 > 0);
        }
    }
}
