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

/* Row buffer floats: four input rows padded to cover every tile of a row. */
static size_t row_floats(const struct nn_conv_geom *g)
{
    return 4 * ((size_t)2 * tiles_x(g) + 2);
}

size_t nn_wino_scratch(const struct nn_conv_geom *g)
{
    size_t t = (size_t)tiles_y(g) * tiles_x(g);
    return (size_t)WT * t * ((size_t)g->cin + g->cout) + row_floats(g);
}

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

/* Tile loops run over a row of tiles at a time so the compiler can vectorise them;
 * on x86-64 they are also built for AVX2 and AVX-512 and picked at load time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define WINO_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WINO_CLONES
#endif

/* Copies input rows y0..y0+3 into r (stride rw), zero outside the image. */
static void load_rows(const struct nn_conv_geom *g, const float *xp, int y0, float *r, int rw)
{
    int left = g->pl, n = g->w;
    if (left + n > rw)
        n = rw - left;
    for (int i = 0; i < 4; i++) {
        float *ri = r + (size_t)i * rw;
        int iy = y0 + i;
        if (iy < 0 || iy >= g->h || n <= 0) {
            memset(ri, 0, sizeof(float) * (size_t)rw);
            continue;
        }
        memset(ri, 0, sizeof(float) * (size_t)left);
        memcpy(ri + left, xp + (size_t)iy * g->w, sizeof(float) * (size_t)n);
        memset(ri + left + n, 0, sizeof(float) * (size_t)(rw - left - n));
    }
}

/* v = B^T d B for every tile of one row; v[e * plane + b]. */
WINO_CLONES
static void input_row(const float *restrict r, int rw, int tx, float *restrict v, size_t plane)
{
    const float *r0 = r, *r1 = r + rw, *r2 = r + 2 * rw, *r3 = r + 3 * rw;
    for (int b = 0; b < tx; b++) {
        float t[4][4];
        for (int j = 0; j < 4; j++) {
            int c = 2 * b + j;
            t[0][j] = r0[c] - r2[c];
            t[1][j] = r1[c] + r2[c];
            t[2][j] = r2[c] - r1[c];
            t[3][j] = r1[c] - r3[c];
        }
        for (int i = 0; i < 4; i++) {
            v[(size_t)(i * 4 + 0) * plane + b] = t[i][0] - t[i][2];
            v[(size_t)(i * 4 + 1) * plane + b] = t[i][1] + t[i][2];
            v[(size_t)(i * 4 + 2) * plane + b] = t[i][2] - t[i][1];
            v[(size_t)(i * 4 + 3) * plane + b] = t[i][1] - t[i][3];
        }
    }
}

static void transform_input(const struct nn_conv_geom *g, const float *x, float *v, float *rows)
{
    int ty = tiles_y(g), tx = tiles_x(g), rw = 2 * tx + 2;
    size_t nt = (size_t)ty * tx, plane = (size_t)g->cin * nt;
    for (int ci = 0; ci < g->cin; ci++) {
        const float *xp = x + (size_t)ci * g->h * g->w;
        for (int a = 0; a < ty; a++) {
            load_rows(g, xp, 2 * a - g->pt, rows, rw);
            input_row(rows, rw, tx, v + (size_t)ci * nt + (size_t)a * tx, plane);
        }
    }
}

/* A^T m A for every tile of one row, into two output rows o0, o1 (2*tx wide). */
WINO_CLONES
static void output_row(const float *restrict m, size_t plane, int tx, float *restrict o0,
                       float *restrict o1)
{
    for (int b = 0; b < tx; b++) {
        float s[16], t[2][4];
        for (int e = 0; e < 16; e++)
            s[e] = m[(size_t)e * plane + b];
        for (int j = 0; j < 4; j++) {
            t[0][j] = s[j] + s[4 + j] + s[8 + j];
            t[1][j] = s[4 + j] - s[8 + j] - s[12 + j];
        }
        o0[2 * b] = t[0][0] + t[0][1] + t[0][2];
        o0[2 * b + 1] = t[0][1] - t[0][2] - t[0][3];
        o1[2 * b] = t[1][0] + t[1][1] + t[1][2];
        o1[2 * b + 1] = t[1][1] - t[1][2] - t[1][3];
    }
}

static void store_row(const float *o, float bias, enum nn_act act, float alpha, float *y, int wo)
{
    for (int j = 0; j < wo; j++)
        y[j] = nn_act_apply(act, alpha, o[j] + bias);
}

/* y = A^T m A for every tile, plus bias and activation; edge tiles are clipped. */
static void transform_output(const struct nn_conv_geom *g, const float *m, const float *bias,
                             float *y, float *rows)
{
    int ty = tiles_y(g), tx = tiles_x(g);
    size_t nt = (size_t)ty * tx, plane = (size_t)g->cout * nt;
    float *o0 = rows, *o1 = rows + 2 * tx + 2;
    for (int co = 0; co < g->cout; co++) {
        float bv = bias ? bias[co] : 0.f;
        float *yp = y + (size_t)co * g->ho * g->wo;
        for (int a = 0; a < ty; a++) {
            output_row(m + (size_t)co * nt + (size_t)a * tx, plane, tx, o0, o1);
            store_row(o0, bv, g->act, g->alpha, yp + (size_t)(2 * a) * g->wo, g->wo);
            if (2 * a + 1 < g->ho)
                store_row(o1, bv, g->act, g->alpha, yp + (size_t)(2 * a + 1) * g->wo, g->wo);
        }
    }
}

void nn_conv_wino(const struct nn_conv_geom *g, const float *x, const float *u, const float *b,
                  float *y, float *scratch)
{
    size_t nt = (size_t)tiles_y(g) * tiles_x(g);
    float *v = scratch, *m = scratch + (size_t)WT * g->cin * nt;
    float *rows = m + (size_t)WT * g->cout * nt;
    for (int n = 0; n < g->n; n++) {
        transform_input(g, x + (size_t)n * g->cin * g->h * g->w, v, rows);
        for (int e = 0; e < WT; e++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->cout, (int)nt, g->cin, 1.f,
                        u + (size_t)e * g->cout * g->cin, g->cin, v + (size_t)e * g->cin * nt,
                        (int)nt, 0.f, m + (size_t)e * g->cout * nt, (int)nt);
        transform_output(g, m, b, y + (size_t)n * g->cout * g->ho * g->wo, rows);
    }
}
