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

/* Max pooling: edge columns take the checked path, the inner ones a loop over
 * whole rows that the compiler vectorises. */
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
            for (int ox = lo; ox < hi; ox++)
                yr[ox] = -FLT_MAX;
            for (int ky = 0; ky < g->kh; ky++) {
                int iy = oy * g->sh - g->pt + ky * g->dh;
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
