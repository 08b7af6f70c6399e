/* op_conv.c — convolution: a direct reference kernel, and the fast path: im2col +
 * SGEMM per image and group, no im2col for 1x1 stride-1 convs, a direct kernel for
 * depthwise convs (where a GEMM would have a single row); dense convs with few channels
 * go to op_conv_direct.c. */
#include "nn/ops.h"

#include <cblas.h>
#include <string.h>

/* The switch stays outside the loops so each vectorises (a switch inside kept GCC 12 to
 * scalar code, a quarter of memory speed on the training forward's large maps). */
void nn_activate(enum nn_act act, float alpha, const float *x, float *y, size_t len)
{
    switch (act) {
    case NN_ACT_RELU:
        for (size_t i = 0; i < len; i++)
            y[i] = x[i] > 0.f ? x[i] : 0.f;
        break;
    case NN_ACT_RELU6:
        for (size_t i = 0; i < len; i++)
            y[i] = x[i] < 0.f ? 0.f : (x[i] > 6.f ? 6.f : x[i]);
        break;
    case NN_ACT_LEAKY:
        for (size_t i = 0; i < len; i++)
            y[i] = x[i] > 0.f ? x[i] : alpha * x[i];
        break;
    case NN_ACT_NONE: memmove(y, x, sizeof(float) * len); break;
    }
}

/* One output element, accumulated in double so the reference is the accurate side. */
static float conv_point(const struct nn_conv_geom *g, const float *x, const float *w, int n,
                        int co, int oy, int ox)
{
    int cin_g = g->cin / g->group, cout_g = g->cout / g->group;
    int grp = co / cout_g;
    double acc = 0;
    for (int ci = 0; ci < cin_g; ci++) {
        const float *xp = x + ((size_t)n * g->cin + (size_t)grp * cin_g + ci) * g->h * g->w;
        const float *wp = w + ((size_t)co * cin_g + ci) * g->kh * g->kw;
        for (int ky = 0; ky < g->kh; ky++) {
            int iy = oy * g->sh - g->pt + ky * g->dh;
            if (iy < 0 || iy >= g->h)
                continue;
            for (int kx = 0; kx < g->kw; kx++) {
                int ix = ox * g->sw - g->pl + kx * g->dw;
                if (ix >= 0 && ix < g->w)
                    acc += (double)xp[iy * g->w + ix] * wp[ky * g->kw + kx];
            }
        }
    }
    return (float)acc;
}

void nn_conv_ref(const struct nn_conv_geom *g, const float *x, const float *w, const float *b,
                 float *y)
{
    for (int n = 0; n < g->n; n++)
        for (int co = 0; co < g->cout; co++)
            for (int oy = 0; oy < g->ho; oy++)
                for (int ox = 0; ox < g->wo; ox++) {
                    float v = conv_point(g, x, w, n, co, oy, ox) + (b ? b[co] : 0.f);
                    y[(((size_t)n * g->cout + co) * g->ho + oy) * g->wo + ox] =
                        nn_act_apply(g->act, g->alpha, v);
                }
}

static int is_pointwise(const struct nn_conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pl == 0 &&
           g->ho == g->h && g->wo == g->w;
}

static int is_depthwise(const struct nn_conv_geom *g)
{
    return g->group > 1 && g->group == g->cin && g->group == g->cout;
}

/* im2col works on bands of output rows so the column block stays in L2 while the
 * GEMM reads it; a band never has fewer columns than a GEMM needs to run well. */
#define IM2COL_BAND_FLOATS (256 * 1024)
#define IM2COL_MIN_COLS 256

static int band_rows(const struct nn_conv_geom *g)
{
    size_t k = (size_t)(g->cin / g->group) * g->kh * g->kw;
    int rows = (int)(IM2COL_BAND_FLOATS / (k * (size_t)g->wo));
    int min_rows = (IM2COL_MIN_COLS + g->wo - 1) / g->wo;
    if (rows < min_rows)
        rows = min_rows;
    return rows > g->ho ? g->ho : rows;
}

size_t nn_conv_gemm_scratch(const struct nn_conv_geom *g)
{
    if (is_pointwise(g) || is_depthwise(g))
        return 0;
    return (size_t)(g->cin / g->group) * g->kh * g->kw * band_rows(g) * g->wo;
}

/* The output columns [lo, hi) whose input column ix0 + ox*sw lies inside [0, w). */
static void valid_cols(int ix0, int sw, int w, int wo, int *lo, int *hi)
{
    int l = ix0 >= 0 ? 0 : (-ix0 + sw - 1) / sw;
    int h = ix0 > w - 1 ? 0 : (w - 1 - ix0) / sw + 1;
    *lo = l < wo ? l : wo;
    *hi = h < wo ? h : wo;
    if (*hi < *lo)
        *hi = *lo;
}

/* dst[i] = src[i * stride]; constant strides get their own loops so they vectorise. */
static void copy_strided(float *dst, const float *src, int n, int stride)
{
    if (stride == 1) {
        memcpy(dst, src, sizeof(float) * (size_t)(n > 0 ? n : 0));
    } else if (stride == 2) {
        for (int i = 0; i < n; i++)
            dst[i] = src[2 * i];
    } else {
        for (int i = 0; i < n; i++)
            dst[i] = src[(size_t)i * stride];
    }
}

/* col[(ci*kh + ky)*kw + kx][(oy - oy0)*wo + ox] = x[ci][iy][ix] for output rows
 * [oy0, oy1), zero outside the image. */
static void im2col(const struct nn_conv_geom *g, int cin_g, const float *x, float *col, int oy0,
                   int oy1)
{
    size_t band = (size_t)(oy1 - oy0) * g->wo;
    for (int ci = 0; ci < cin_g; ci++) {
        const float *xp = x + (size_t)ci * g->h * g->w;
        for (int ky = 0; ky < g->kh; ky++)
            for (int kx = 0; kx < g->kw; kx++) {
                float *cp = col + ((size_t)(ci * g->kh + ky) * g->kw + kx) * band;
                int ix0 = -g->pl + kx * g->dw, lo, hi;
                valid_cols(ix0, g->sw, g->w, g->wo, &lo, &hi);
                for (int oy = oy0; oy < oy1; oy++) {
                    int iy = oy * g->sh - g->pt + ky * g->dh;
                    float *row = cp + (size_t)(oy - oy0) * g->wo;
                    if (iy < 0 || iy >= g->h) {
                        memset(row, 0, sizeof(float) * (size_t)g->wo);
                        continue;
                    }
                    const float *xr = xp + (size_t)iy * g->w + ix0;
                    for (int ox = 0; ox < lo; ox++)
                        row[ox] = 0.f;
                    copy_strided(row + lo, xr + (size_t)lo * g->sw, hi - lo, g->sw);
                    for (int ox = hi; ox < g->wo; ox++)
                        row[ox] = 0.f;
                }
            }
    }
}

/* Adds the bias and applies the activation to `len` values of each of cout channel
 * planes `stride` apart. */
static void bias_act_band(const struct nn_conv_geom *g, const float *b, float *y, int cout,
                          size_t stride, size_t len)
{
    if (!b && g->act == NN_ACT_NONE)
        return;
    for (int co = 0; co < cout; co++)
        nn_bias_act_inplace(y + (size_t)co * stride, len, b ? b[co] : 0.f, g->act, g->alpha);
}

static void bias_act(const struct nn_conv_geom *g, const float *b, float *y, int cout, size_t hw)
{
    bias_act_band(g, b, y, cout, hw, hw);
}

static void conv_depthwise(const struct nn_conv_geom *g, const float *x, const float *w,
                           const float *b, float *y)
{
    for (int n = 0; n < g->n; n++)
        for (int c = 0; c < g->cin; c++) {
            const float *xp = x + ((size_t)n * g->cin + c) * g->h * g->w;
            const float *wp = w + (size_t)c * g->kh * g->kw;
            float *yp = y + ((size_t)n * g->cout + c) * g->ho * g->wo;
            for (int oy = 0; oy < g->ho; oy++)
                for (int ox = 0; ox < g->wo; ox++) {
                    float acc = b ? b[c] : 0.f;
                    for (int ky = 0; ky < g->kh; ky++) {
                        int iy = oy * g->sh - g->pt + ky * g->dh;
                        if (iy < 0 || iy >= g->h)
                            continue;
                        for (int kx = 0; kx < g->kw; kx++) {
                            int ix = ox * g->sw - g->pl + kx * g->dw;
                            if (ix >= 0 && ix < g->w)
                                acc += xp[iy * g->w + ix] * wp[ky * g->kw + kx];
                        }
                    }
                    yp[oy * g->wo + ox] = nn_act_apply(g->act, g->alpha, acc);
                }
        }
}

size_t nn_conv_scratch(const struct nn_conv_geom *g)
{
    if (is_depthwise(g))
        return 0;
    return nn_conv_direct_applies(g) ? nn_conv_direct_scratch(g) : nn_conv_gemm_scratch(g);
}

int nn_conv_packs(const struct nn_conv_geom *g)
{
    int k = (g->cin / g->group) * g->kh * g->kw;
    return g->group == 1 && !is_pointwise(g) && !is_depthwise(g) && !nn_conv_direct_applies(g) &&
           band_rows(g) == g->ho && nn_gemm_packed_wanted(g->cout, g->ho * g->wo, k);
}

void nn_conv_fast(const struct nn_conv_geom *g, const float *x, const float *w, const float *b,
                  float *y, float *scratch, const float *packed)
{
    if (is_depthwise(g))
        conv_depthwise(g, x, w, b, y);
    else if (nn_conv_direct_applies(g))
        nn_conv_direct(g, x, w, b, y, scratch);
    else
        nn_conv_gemm(g, x, w, b, y, scratch, packed);
}

void nn_conv_gemm(const struct nn_conv_geom *g, const float *x, const float *w, const float *b,
                  float *y, float *scratch, const float *packed)
{
    int cin_g = g->cin / g->group, cout_g = g->cout / g->group;
    int k = cin_g * g->kh * g->kw;
    size_t hw_in = (size_t)g->h * g->w, hw_out = (size_t)g->ho * g->wo;
    if (is_pointwise(g)) {
        for (int n = 0; n < g->n; n++)
            for (int grp = 0; grp < g->group; grp++) {
                const float *xg = x + ((size_t)n * g->cin + (size_t)grp * cin_g) * hw_in;
                float *yg = y + ((size_t)n * g->cout + (size_t)grp * cout_g) * hw_out;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout_g, (int)hw_out, k,
                            1.f, w + (size_t)grp * cout_g * k, k, xg, (int)hw_out, 0.f, yg,
                            (int)hw_out);
                bias_act(g, b ? b + (size_t)grp * cout_g : NULL, yg, cout_g, hw_out);
            }
        return;
    }
    int rows = band_rows(g);
    for (int n = 0; n < g->n; n++)
        for (int grp = 0; grp < g->group; grp++) {
            const float *xg = x + ((size_t)n * g->cin + (size_t)grp * cin_g) * hw_in;
            const float *wg = w + (size_t)grp * cout_g * k;
            float *yg = y + ((size_t)n * g->cout + (size_t)grp * cout_g) * hw_out;
            for (int oy = 0; oy < g->ho; oy += rows) {
                int oy1 = oy + rows < g->ho ? oy + rows : g->ho;
                int cols = (oy1 - oy) * g->wo;
                im2col(g, cin_g, xg, scratch, oy, oy1);
                if (packed) /* one band, one group: see nn_conv_packs */
                    nn_gemm_packed(cout_g, cols, k, packed, scratch, cols, yg, (int)hw_out);
                else
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cout_g, cols, k, 1.f,
                                wg, k, scratch, cols, 0.f, yg + (size_t)oy * g->wo, (int)hw_out);
                /* while the band is still in cache */
                bias_act_band(g, b ? b + (size_t)grp * cout_g : NULL, yg + (size_t)oy * g->wo,
                              cout_g, hw_out, (size_t)cols);
            }
        }
}
