/* op_winograd.c — 3x3 stride-1 convolution by Winograd F(2x2, 3x3) (Lavin & Gray,
 * "Fast Algorithms for Convolutional Neural Networks", 2016): each 2x2 output tile
 * takes 16 multiplies per channel pair instead of 36, done as 16 SGEMMs of
 * [Cout x Cin] x [Cin x tiles]. F(2x2,3x3) keeps float32 error near that of direct
 * convolution; larger tiles save more but lose accuracy. */
#include "nn/ops.h"

#include <cblas.h>
#include <string.h>

#define WT 16 /* 4x4 transformed tile */

int nn_wino_applies(const struct nn_conv_geom *g)
{
    return g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 &&
           g->group == 1;
}

static int tiles_y(const struct nn_conv_geom *g) { return (g->ho + 1) / 2; }
static int tiles_x(const struct nn_conv_geom *g) { return (g->wo + 1) / 2; }

/* u = G w G^T for every (co, ci), stored as u[16][cout][cin]. */
void nn_wino_weights(const float *w, int cout, int cin, float *u)
{
    size_t plane = (size_t)cout * cin;
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++) {
            const float *k = w + ((size_t)co * cin + ci) * 9;
            float t[4][3];
            for (int j = 0; j < 3; j++) {
                t[0][j] = k[j];
                t[1][j] = 0.5f * (k[j] + k[3 + j] + k[6 + j]);
                t[2][j] = 0.5f * (k[j] - k[3 + j] + k[6 + j]);
                t[3][j] = k[6 + j];
            }
            for (int i = 0; i < 4; i++) {
                float r[4] = {t[i][0], 0.5f * (t[i][0] + t[i][1] + t[i][2]),
                              0.5f * (t[i][0] - t[i][1] + t[i][2]), t[i][2]};
                for (int j = 0; j < 4; j++)
                    u[(size_t)(i * 4 + j) * plane + (size_t)co * cin + ci] = r[j];
            }
        }
}

/* The transforms are separable: B^T d B is a vertical pass over four input rows,
 * then a horizontal pass along them. Splitting each row into its even and odd columns
 * first makes every loop below contiguous, so the compiler vectorises them; on x86-64
 * they are also built for AVX2 and AVX-512 and picked at load time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define WINO_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WINO_CLONES
#endif

/* Half-row length: tiles of a row plus the one extra column pair the last tile reads. */
static int half_len(const struct nn_conv_geom *g)
{
    return tiles_x(g) + 1;
}

/* Scratch for one row of tiles: 4 input rows as even/odd halves, and 8 combined halves. */
static size_t row_floats(const struct nn_conv_geom *g)
{
    return 16 * (size_t)half_len(g);
}

size_t nn_wino_scratch(const struct nn_conv_geom *g)
{
    size_t t = (size_t)tiles_y(g) * tiles_x(g);
    return (size_t)WT * t * ((size_t)g->cin + g->cout) + row_floats(g);
}

/* Splits input row iy (zero outside the image) into even and odd padded columns. */
static void load_row(const struct nn_conv_geom *g, const float *xp, int iy, float *ev, float *od,
                     int hl)
{
    if (iy < 0 || iy >= g->h) {
        memset(ev, 0, sizeof(float) * (size_t)hl);
        memset(od, 0, sizeof(float) * (size_t)hl);
        return;
    }
    const float *row = xp + (size_t)iy * g->w;
    for (int k = 0; k < hl; k++) {
        int x0 = 2 * k - g->pl, x1 = x0 + 1;
        ev[k] = (x0 >= 0 && x0 < g->w) ? row[x0] : 0.f;
        od[k] = (x1 >= 0 && x1 < g->w) ? row[x1] : 0.f;
    }
}

/* Vertical pass: rows r0..r3 (each as even/odd halves) -> t0..t3 = B^T d, per column. */
WINO_CLONES
static void input_vertical(const float *restrict in, float *restrict t, int n)
{
    /* in: r0e r0o r1e r1o r2e r2o r3e r3o, each n long; t likewise t0e t0o ... t3o */
    for (int h = 0; h < 2; h++) {
        const float *r0 = in + (size_t)(0 + h) * n, *r1 = in + (size_t)(2 + h) * n;
        const float *r2 = in + (size_t)(4 + h) * n, *r3 = in + (size_t)(6 + h) * n;
        float *t0 = t + (size_t)(0 + h) * n, *t1 = t + (size_t)(2 + h) * n;
        float *t2 = t + (size_t)(4 + h) * n, *t3 = t + (size_t)(6 + h) * n;
        for (int k = 0; k < n; k++) {
            t0[k] = r0[k] - r2[k];
            t1[k] = r1[k] + r2[k];
            t2[k] = r2[k] - r1[k];
            t3[k] = r1[k] - r3[k];
        }
    }
}

/* Horizontal pass on one combined row (even e, odd o halves): the four columns of
 * (B^T d) B for every tile b, written to v[0..3] (each `plane` apart). */
WINO_CLONES
static void input_horizontal(const float *restrict e, const float *restrict o, int tx,
                             float *restrict v, size_t plane)
{
    float *v0 = v, *v1 = v + plane, *v2 = v + 2 * plane, *v3 = v + 3 * plane;
    for (int b = 0; b < tx; b++) {
        v0[b] = e[b] - e[b + 1];
        v1[b] = o[b] + e[b + 1];
        v2[b] = e[b + 1] - o[b];
        v3[b] = o[b] - o[b + 1];
    }
}

static void transform_input(const struct nn_conv_geom *g, const float *x, float *v, float *rows)
{
    int ty = tiles_y(g), tx = tiles_x(g), hl = half_len(g);
    size_t nt = (size_t)ty * tx, plane = (size_t)g->cin * nt;
    float *in = rows, *t = rows + 8 * (size_t)hl;
    for (int ci = 0; ci < g->cin; ci++) {
        const float *xp = x + (size_t)ci * g->h * g->w;
        for (int a = 0; a < ty; a++) {
            for (int i = 0; i < 4; i++)
                load_row(g, xp, 2 * a - g->pt + i, in + (size_t)(2 * i) * hl,
                         in + (size_t)(2 * i + 1) * hl, hl);
            input_vertical(in, t, hl);
            float *va = v + (size_t)ci * nt + (size_t)a * tx;
            for (int i = 0; i < 4; i++)
                input_horizontal(t + (size_t)(2 * i) * hl, t + (size_t)(2 * i + 1) * hl, tx,
                                 va + (size_t)(4 * i) * plane, plane);
        }
    }
}

/* A^T m A for every tile of one row: outputs split into even and odd columns of the
 * two output rows (o0e, o0o, o1e, o1o, each tx long). */
WINO_CLONES
static void output_row(const float *restrict m, size_t plane, int tx, float *restrict o)
{
    float *o0e = o, *o0o = o + tx, *o1e = o + 2 * tx, *o1o = o + 3 * tx;
    for (int b = 0; b < tx; b++) {
        float t0[4], t1[4];
        for (int j = 0; j < 4; j++) {
            float s0 = m[(size_t)j * plane + b], s1 = m[(size_t)(4 + j) * plane + b];
            float s2 = m[(size_t)(8 + j) * plane + b], s3 = m[(size_t)(12 + j) * plane + b];
            t0[j] = s0 + s1 + s2;
            t1[j] = s1 - s2 - s3;
        }
        o0e[b] = t0[0] + t0[1] + t0[2];
        o0o[b] = t0[1] - t0[2] - t0[3];
        o1e[b] = t1[0] + t1[1] + t1[2];
        o1o[b] = t1[1] - t1[2] - t1[3];
    }
}

/* Interleaves even/odd columns into an output row, adding bias and activation. */
static void store_row(const float *ev, const float *od, float bias, enum nn_act act, float alpha,
                      float *y, int wo)
{
    for (int j = 0; j < wo; j++)
        y[j] = (j & 1) ? od[j >> 1] : ev[j >> 1];
    nn_bias_act_inplace(y, (size_t)wo, bias, act, alpha);
}

/* y = A^T m A for every tile, plus bias and activation; edge tiles are clipped. */
static void transform_output(const struct nn_conv_geom *g, const float *m, const float *bias,
                             float *y, float *rows)
{
    int ty = tiles_y(g), tx = tiles_x(g);
    size_t nt = (size_t)ty * tx, plane = (size_t)g->cout * nt;
    for (int co = 0; co < g->cout; co++) {
        float bv = bias ? bias[co] : 0.f;
        float *yp = y + (size_t)co * g->ho * g->wo;
        for (int a = 0; a < ty; a++) {
            output_row(m + (size_t)co * nt + (size_t)a * tx, plane, tx, rows);
            store_row(rows, rows + tx, bv, g->act, g->alpha, yp + (size_t)(2 * a) * g->wo,
                      g->wo);
            if (2 * a + 1 < g->ho)
                store_row(rows + 2 * tx, rows + 3 * tx, bv, g->act, g->alpha,
                          yp + (size_t)(2 * a + 1) * g->wo, g->wo);
        }
    }
}

int nn_wino_packs(const struct nn_conv_geom *g)
{
    return nn_gemm_packed_wanted(g->cout, tiles_y(g) * tiles_x(g), g->cin);
}

size_t nn_wino_weight_floats(const struct nn_conv_geom *g)
{
    size_t per = nn_wino_packs(g) ? nn_gemm_packed_floats(g->cout, g->cin)
                                  : (size_t)g->cout * g->cin;
    return WT * per;
}

void nn_wino_prepare(const struct nn_conv_geom *g, const float *w, float *u, float *tmp)
{
    if (!nn_wino_packs(g)) {
        nn_wino_weights(w, g->cout, g->cin, u);
        return;
    }
    size_t plane = (size_t)g->cout * g->cin, per = nn_gemm_packed_floats(g->cout, g->cin);
    nn_wino_weights(w, g->cout, g->cin, tmp);
    for (int e = 0; e < WT; e++)
        nn_gemm_pack_a(tmp + (size_t)e * plane, g->cout, g->cin, u + (size_t)e * per);
}

void nn_conv_wino(const struct nn_conv_geom *g, const float *x, const float *u, const float *b,
                  float *y, float *scratch)
{
    size_t nt = (size_t)tiles_y(g) * tiles_x(g);
    float *v = scratch, *m = scratch + (size_t)WT * g->cin * nt;
    float *rows = m + (size_t)WT * g->cout * nt;
    int packed = nn_wino_packs(g);
    size_t per = nn_wino_weight_floats(g) / WT;
    for (int n = 0; n < g->n; n++) {
        transform_input(g, x + (size_t)n * g->cin * g->h * g->w, v, rows);
        for (int e = 0; e < WT; e++) {
            if (packed)
                nn_gemm_packed(g->cout, (int)nt, g->cin, u + (size_t)e * per,
                               v + (size_t)e * g->cin * nt, (int)nt, m + (size_t)e * g->cout * nt,
                               (int)nt);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->cout, (int)nt, g->cin,
                            1.f, u + (size_t)e * per, g->cin, v + (size_t)e * g->cin * nt,
                            (int)nt, 0.f, m + (size_t)e * g->cout * nt, (int)nt);
        }
        transform_output(g, m, b, y + (size_t)n * g->cout * g->ho * g->wo, rows);
    }
}
