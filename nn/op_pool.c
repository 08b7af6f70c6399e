/* op_pool.c — max, average and global average pooling (NCHW). One kernel each serves
 * as both reference and fast path: these ops move memory, they do no GEMM. */
#include "nn/ops.h"

#include <float.h>

/* The output columns [lo, hi) whose window start ox*sw - pl and end (+ kw - 1) lie
 * inside the row: those need no bounds checks. */
static void inner_cols(const struct nn_pool_geom *g, int *lo, int *hi)
{
    int l = (g->pl + g->sw - 1) / g->sw;
    int last = g->w - 1 - (g->kw - 1) * g->dw + g->pl; /* largest ox*sw allowed */
    int h = last < 0 ? 0 : last / g->sw + 1;
    *lo = l < g->wo ? l : g->wo;
    *hi = h < g->wo ? h : g->wo;
    if (*hi < *lo)
        *hi = *lo;
}

static float max_window(const struct nn_pool_geom *g, const float *xp, int oy, int ox)
{
    float m = -FLT_MAX;
    for (int ky = 0; ky < g->kh; ky++) {
        int iy = oy * g->sh - g->pt + ky * g->dh;
        if (iy < 0 || iy >= g->h)
            continue;
        for (int kx = 0; kx < g->kw; kx++) {
            int ix = ox * g->sw - g->pl + kx * g->dw;
            if (ix >= 0 && ix < g->w && xp[iy * g->w + ix] > m)
                m = xp[iy * g->w + ix];
        }
    }
    return m;
}

/* n outputs of a 2x2 stride-2 window from input rows r0 and r1 (2n columns each). Written
 * per output, GCC vectorises it better than the general loop's strided taps: about twice as
 * fast on a 112x112 map. These pools are most of a small model's time outside its
 * convolutions. */
static void max2x2_row(const float *r0, const float *r1, float *y, int n)
{
    for (int ox = 0; ox < n; ox++) {
        float a = r0[2 * ox] > r1[2 * ox] ? r0[2 * ox] : r1[2 * ox];
        float b = r0[2 * ox + 1] > r1[2 * ox + 1] ? r0[2 * ox + 1] : r1[2 * ox + 1];
        y[ox] = a > b ? a : b;
    }
}

static int is_2x2_stride_2(const struct nn_pool_geom *g)
{
    return g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->dh == 1 && g->dw == 1;
}

/* The inner columns [lo, hi) of output row oy: max2x2_row where both rows of a 2x2/2
 * window are inside the map, else a loop over the row per window tap. */
static void max_inner(const struct nn_pool_geom *g, const float *xp, int oy, int lo, int hi,
                      float *yr)
{
    int iy0 = oy * g->sh - g->pt;
    if (is_2x2_stride_2(g) && iy0 >= 0 && iy0 + 1 < g->h) {
        const float *r0 = xp + (size_t)iy0 * g->w - g->pl + 2 * lo;
        max2x2_row(r0, r0 + g->w, yr + lo, hi - lo);
        return;
    }
    for (int ox = lo; ox < hi; ox++)
        yr[ox] = -FLT_MAX;
    for (int ky = 0; ky < g->kh; ky++) {
        int iy = iy0 + ky * g->dh;
        if (iy < 0 || iy >= g->h)
            continue;
        for (int kx = 0; kx < g->kw; kx++) {
            const float *xr = xp + (size_t)iy * g->w - g->pl + kx * g->dw;
            for (int ox = lo; ox < hi; ox++) {
                float v = xr[ox * g->sw];
                yr[ox] = v > yr[ox] ? v : yr[ox];
            }
        }
    }
}

/* Max pooling: edge columns take the checked path, the inner ones max_inner. */
void nn_maxpool(const struct nn_pool_geom *g, const float *x, float *y)
{
    int lo, hi;
    inner_cols(g, &lo, &hi);
    for (int p = 0; p < g->n * g->c; p++) {
        const float *xp = x + (size_t)p * g->h * g->w;
        float *yp = y + (size_t)p * g->ho * g->wo;
        for (int oy = 0; oy < g->ho; oy++) {
            float *yr = yp + (size_t)oy * g->wo;
            for (int ox = 0; ox < lo; ox++)
                yr[ox] = max_window(g, xp, oy, ox);
            for (int ox = hi; ox < g->wo; ox++)
                yr[ox] = max_window(g, xp, oy, ox);
            max_inner(g, xp, oy, lo, hi, yr);
        }
    }
}

void nn_maxpool_ref(const struct nn_pool_geom *g, const float *x, float *y)
{
    for (int p = 0; p < g->n * g->c; p++) {
        const float *xp = x + (size_t)p * g->h * g->w;
        float *yp = y + (size_t)p * g->ho * g->wo;
        for (int oy = 0; oy < g->ho; oy++)
            for (int ox = 0; ox < g->wo; ox++)
                yp[oy * g->wo + ox] = max_window(g, xp, oy, ox);
    }
}

void nn_avgpool(const struct nn_pool_geom *g, const float *x, float *y)
{
    for (int p = 0; p < g->n * g->c; p++) {
        const float *xp = x + (size_t)p * g->h * g->w;
        float *yp = y + (size_t)p * g->ho * g->wo;
        for (int oy = 0; oy < g->ho; oy++)
            for (int ox = 0; ox < g->wo; ox++) {
                float s = 0.f;
                int cnt = 0, padded = 0;
                for (int ky = 0; ky < g->kh; ky++) {
                    int iy = oy * g->sh - g->pt + ky * g->dh;
                    for (int kx = 0; kx < g->kw; kx++) {
                        int ix = ox * g->sw - g->pl + kx * g->dw;
                        if (iy >= 0 && iy < g->h && ix >= 0 && ix < g->w) {
                            s += xp[iy * g->w + ix];
                            cnt++;
                        } else if (iy < g->h + g->pt && ix < g->w + g->pl) {
                            padded++; /* inside the declared padding, not past it */
                        }
                    }
                }
                int div = g->count_include_pad ? cnt + padded : cnt;
                yp[oy * g->wo + ox] = div ? s / (float)div : 0.f;
            }
    }
}

void nn_global_avgpool(int n, int c, int hw, const float *x, float *y)
{
    for (int p = 0; p < n * c; p++) {
        const float *xp = x + (size_t)p * hw;
        double s = 0;
        for (int i = 0; i < hw; i++)
            s += xp[i];
        y[p] = (float)(s / hw);
    }
}
