/* op_winograd4.c — 3x3 stride-1 convolution by Winograd F(4x4, 3x3) (Lavin & Gray,
 * 2016): 36 multiplies per 4x4 output tile and channel pair instead of 144, as 36
 * SGEMMs. Four times fewer multiplies than direct convolution, at a float32 error
 * several times that of F(2x2,3x3); the plan uses it only on large maps, where the
 * saving is largest, and tests hold it to the same tolerance as every fast kernel. */
#include "nn/ops.h"

#include <cblas.h>
#include <string.h>

#define W4 36 /* 6x6 transformed tile */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define WINO_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WINO_CLONES
#endif

static int tiles_y(const struct nn_conv_geom *g) { return (g->ho + 3) / 4; }
static int tiles_x(const struct nn_conv_geom *g) { return (g->wo + 3) / 4; }
/* Length of one column phase (col mod 4) of a row: tiles plus the next tile's start. */
static int phase_len(const struct nn_conv_geom *g) { return tiles_x(g) + 1; }

/* Row scratch: six input rows and six combined rows, each as four phases. */
static size_t row_floats(const struct nn_conv_geom *g)
{
    return 48 * (size_t)phase_len(g);
}

size_t nn_wino4_scratch(const struct nn_conv_geom *g)
{
    size_t t = (size_t)tiles_y(g) * tiles_x(g);
    return (size_t)W4 * t * ((size_t)g->cin + g->cout) + row_floats(g);
}

/* The six rows of G applied to three values: G = [1/4 0 0; -1/6 -1/6 -1/6;
 * -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]. */
static void g_rows(const float k[3], float out[6])
{
    out[0] = k[0] / 4.f;
    out[1] = -(k[0] + k[1] + k[2]) / 6.f;
    out[2] = -(k[0] - k[1] + k[2]) / 6.f;
    out[3] = k[0] / 24.f + k[1] / 12.f + k[2] / 6.f;
    out[4] = k[0] / 24.f - k[1] / 12.f + k[2] / 6.f;
    out[5] = k[2];
}

/* u = G w G^T for every (co, ci), stored as u[36][cout][cin]. */
void nn_wino4_weights(const float *w, int cout, int cin, float *u)
{
    size_t plane = (size_t)cout * cin;
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++) {
            const float *k = w + ((size_t)co * cin + ci) * 9;
            float t[6][3], col[3], r[6];
            for (int j = 0; j < 3; j++) {
                col[0] = k[j];
                col[1] = k[3 + j];
                col[2] = k[6 + j];
                g_rows(col, r);
                for (int i = 0; i < 6; i++)
                    t[i][j] = r[i];
            }
            for (int i = 0; i < 6; i++) {
                g_rows(t[i], r);
                for (int j = 0; j < 6; j++)
                    u[(size_t)(i * 6 + j) * plane + (size_t)co * cin + ci] = r[j];
            }
        }
}

/* Splits input row iy into its four column phases, zero outside the image. */
static void load_row(const struct nn_conv_geom *g, const float *xp, int iy, float *ph, int pl)
{
    if (iy < 0 || iy >= g->h) {
        memset(ph, 0, sizeof(float) * 4 * (size_t)pl);
        return;
    }
    const float *row = xp + (size_t)iy * g->w;
    for (int p = 0; p < 4; p++) {
        float *dst = ph + (size_t)p * pl;
        /* k in [lo, hi) reads x = 4k + p - pad inside the row */
        int off = p - g->pl;
        int lo = off >= 0 ? 0 : (-off + 3) / 4;
        int hi = off >= g->w ? 0 : (g->w - 1 - off) / 4 + 1;
        lo = lo < pl ? lo : pl;
        hi = hi < pl ? hi : pl;
        hi = hi > lo ? hi : lo;
        for (int k = 0; k < lo; k++)
            dst[k] = 0.f;
        const float *src = row + off;
        for (int k = lo; k < hi; k++)
            dst[k] = src[4 * k];
        for (int k = hi; k < pl; k++)
            dst[k] = 0.f;
    }
}

/* B^T applied down six rows (r, each n long) into six combined rows (t). */
WINO_CLONES
static void btrans(const float *restrict r0, const float *restrict r1, const float *restrict r2,
                   const float *restrict r3, const float *restrict r4, const float *restrict r5,
                   float *restrict t, size_t stride, int n)
{
    float *t0 = t, *t1 = t + stride, *t2 = t + 2 * stride, *t3 = t + 3 * stride;
    float *t4 = t + 4 * stride, *t5 = t + 5 * stride;
    for (int k = 0; k < n; k++) {
        t0[k] = 4.f * r0[k] - 5.f * r2[k] + r4[k];
        t1[k] = -4.f * (r1[k] + r2[k]) + r3[k] + r4[k];
        t2[k] = 4.f * (r1[k] - r2[k]) - r3[k] + r4[k];
        t3[k] = -2.f * (r1[k] - r3[k]) - r2[k] + r4[k];
        t4[k] = 2.f * (r1[k] - r3[k]) - r2[k] + r4[k];
        t5[k] = 4.f * r1[k] - 5.f * r3[k] + r5[k];
    }
}

static void transform_input(const struct nn_conv_geom *g, const float *x, float *v, float *rows)
{
    int ty = tiles_y(g), tx = tiles_x(g), pl = phase_len(g);
    size_t nt = (size_t)ty * tx, plane = (size_t)g->cin * nt, rl = 4 * (size_t)pl;
    float *in = rows, *t = rows + 6 * rl;
    for (int ci = 0; ci < g->cin; ci++) {
        const float *xp = x + (size_t)ci * g->h * g->w;
        for (int a = 0; a < ty; a++) {
            for (int i = 0; i < 6; i++)
                load_row(g, xp, 4 * a - g->pt + i, in + i * rl, pl);
            /* vertical: all four phases at once (they are contiguous) */
            btrans(in, in + rl, in + 2 * rl, in + 3 * rl, in + 4 * rl, in + 5 * rl, t, rl,
                   (int)rl);
            float *va = v + (size_t)ci * nt + (size_t)a * tx;
            for (int i = 0; i < 6; i++) {
                const float *p = t + i * rl; /* phases p0..p3 of combined row i */
                /* horizontal: columns 4b..4b+5 are p0[b] p1[b] p2[b] p3[b] p0[b+1] p1[b+1] */
                btrans(p, p + pl, p + 2 * pl, p + 3 * pl, p + 1, p + pl + 1,
                       va + (size_t)(6 * i) * plane, plane, tx);
            }
        }
    }
}

/* A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1] applied to six rows. */
WINO_CLONES
static void atrans(const float *restrict m0, const float *restrict m1, const float *restrict m2,
                   const float *restrict m3, const float *restrict m4, const float *restrict m5,
                   float *restrict o, size_t stride, int n)
{
    float *o0 = o, *o1 = o + stride, *o2 = o + 2 * stride, *o3 = o + 3 * stride;
    for (int k = 0; k < n; k++) {
        float a = m1[k] + m2[k], b = m1[k] - m2[k], c = m3[k] + m4[k], d = m3[k] - m4[k];
        o0[k] = m0[k] + a + c;
        o1[k] = b + 2.f * d;
        o2[k] = a + 4.f * c;
        o3[k] = b + 8.f * d + m5[k];
    }
}

static void store_row(const float *ph, int tx, float bias, enum nn_act act, float alpha,
                      float *y, int wo)
{
    for (int j = 0; j < wo; j++)
        y[j] = ph[(size_t)(j & 3) * tx + (j >> 2)];
    nn_bias_act_inplace(y, (size_t)wo, bias, act, alpha);
}

/* y = A^T m A for every tile, plus bias and activation; edge tiles are clipped. */
static void transform_output(const struct nn_conv_geom *g, const float *m, const float *bias,
                             float *y, float *rows)
{
    int ty = tiles_y(g), tx = tiles_x(g);
    size_t nt = (size_t)ty * tx, plane = (size_t)g->cout * nt;
    float *t = rows, *o = rows + 24 * (size_t)tx; /* t: 4 rows x 6 cols; o: 4 rows x 4 phases */
    for (int co = 0; co < g->cout; co++) {
        float bv = bias ? bias[co] : 0.f;
        float *yp = y + (size_t)co * g->ho * g->wo;
        for (int a = 0; a < ty; a++) {
            const float *ma = m + (size_t)co * nt + (size_t)a * tx;
            /* vertical, for each of the six columns j: t[i][j] over tiles */
            for (int j = 0; j < 6; j++)
                atrans(ma + (size_t)j * plane, ma + (size_t)(6 + j) * plane,
                       ma + (size_t)(12 + j) * plane, ma + (size_t)(18 + j) * plane,
                       ma + (size_t)(24 + j) * plane, ma + (size_t)(30 + j) * plane,
                       t + (size_t)j * tx, 6 * (size_t)tx, tx);
            for (int i = 0; i < 4; i++) {
                const float *ti = t + (size_t)i * 6 * tx;
                float *oi = o + (size_t)i * 4 * tx;
                atrans(ti, ti + tx, ti + 2 * tx, ti + 3 * tx, ti + 4 * tx, ti + 5 * tx, oi,
                       (size_t)tx, tx);
                int oy = 4 * a + i;
                if (oy < g->ho)
                    store_row(oi, tx, bv, g->act, g->alpha, yp + (size_t)oy * g->wo, g->wo);
            }
        }
    }
}

void nn_conv_wino4(const struct nn_conv_geom *g, const float *x, const float *u, const float *b,
                   float *y, float *scratch)
{
    size_t nt = (size_t)tiles_y(g) * tiles_x(g);
    float *v = scratch, *m = scratch + (size_t)W4 * g->cin * nt;
    float *rows = m + (size_t)W4 * g->cout * nt;
    for (int n = 0; n < g->n; n++) {
        transform_input(g, x + (size_t)n * g->cin * g->h * g->w, v, rows);
        for (int e = 0; e < W4; e++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->cout, (int)nt, g->cin, 1.f,
                        u + (size_t)e * g->cout * g->cin, g->cin, v + (size_t)e * g->cin * nt,
                        (int)nt, 0.f, m + (size_t)e * g->cout * nt, (int)nt);
        transform_output(g, m, b, y + (size_t)n * g->cout * g->ho * g->wo, rows);
    }
}
