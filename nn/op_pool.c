/* op_pool.c — max, average and global average pooling (NCHW). One kernel each serves
 * as both reference and fast path: these ops move memory, they do no GEMM. */
#include "nn/ops.h"

#include <float.h>

void nn_maxpool(const struct nn_pool_geom *g, const float *x, float *y)
{
    for (int p = 0; p < g->n * g->c; p++) {
        const float *xp = x + (size_t)p * g->h * g->w;
        float *yp = y + (size_t)p * g->ho * g->wo;
        for (int oy = 0; oy < g->ho; oy++)
            for (int ox = 0; ox < g->wo; ox++) {
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
                yp[oy * g->wo + ox] = m;
            }
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
