/* grad_conv.c — convolutions in training: the forward (Winograd F(4x4,3x3) on large 3x3
 * maps, else the inference fast path), dW by SGEMM against im2col columns, dX by W^T dY and
 * col2im or, for 3x3 stride-1 layers, by Winograd as a convolution of dY; bias gradients
 * by sums; grouped and depthwise convs, and Tucker-2 layers as their three convolutions. */
#include "nn/grad.h"
#include "nn/nn.h"

#include <cblas.h>
#include <string.h>

/* Taps of one depthwise window: shape.c refuses kernels over NN_MAX_KERNEL a side. */
#define DW_MAX_TAPS (NN_MAX_KERNEL * NN_MAX_KERNEL)

static int is_pointwise(const struct nn_conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pl == 0 &&
           g->ho == g->h && g->wo == g->w;
}

static int is_depthwise(const struct nn_conv_geom *g)
{
    return g->group > 1 && g->group == g->cin && g->group == g->cout;
}

static size_t max_size(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* Winograd where the inference plan takes F(4x4,3x3) (plan.c): 3x3 stride-1 dense convs
 * with >= 8 channels on each side and >= 49 output tiles of 4x4 (maps of 25x25 and up);
 * smaller maps make thin GEMMs that lose what the 4x fewer multiplies save. The weights
 * change every step, so each pass transforms them again (nn_conv_train_prep_*: 36 cout
 * cin values, small next to the GEMMs). Tucker layers keep im2col. */
#define WINO_MIN_CHANNELS 8
#define WINO_MIN_TILES 49
#define WINO_TILE_FLOATS 36 /* a 6x6 transformed tile */

static int wino_ok(const struct nn_conv_geom *g)
{
    return nn_wino_applies(g) && g->cin >= WINO_MIN_CHANNELS && g->cout >= WINO_MIN_CHANNELS &&
           ((g->ho + 3) / 4) * ((g->wo + 3) / 4) >= WINO_MIN_TILES;
}

/* dX of a 3x3 stride-1 conv is a 3x3 stride-1 conv of dY: dX = conv(dY, W') with
 * W'[ci][co][ky][kx] = W[co][ci][2-ky][2-kx] and padding 2 - pad, since output row oy
 * reads input rows oy - pad + ky. */
static struct nn_conv_geom dx_geom(const struct nn_conv_geom *g)
{
    struct nn_conv_geom d = *g;
    d.cin = g->cout;
    d.h = g->ho;
    d.w = g->wo;
    d.cout = g->cin;
    d.ho = g->h;
    d.wo = g->w;
    d.pt = 2 - g->pt;
    d.pl = 2 - g->pl;
    d.act = NN_ACT_NONE;
    return d;
}

static int wino_dx_ok(const struct nn_conv_geom *g)
{
    if (!nn_wino_applies(g) || g->pt > 2 || g->pl > 2)
        return 0;
    struct nn_conv_geom d = dx_geom(g);
    return wino_ok(&d);
}

int nn_conv_train_winograd(const struct nn_conv_geom *g)
{
    return (wino_ok(g) ? 1 : 0) | (wino_dx_ok(g) ? 2 : 0);
}

size_t nn_conv_train_scratch(const struct nn_conv_geom *g)
{
    size_t s = nn_conv_scratch(g);
    if (!is_pointwise(g) && !is_depthwise(g)) /* im2col columns of one image and group */
        s = max_size(s, (size_t)(g->cin / g->group) * g->kh * g->kw * g->ho * g->wo);
    struct nn_conv_geom one = *g, d = dx_geom(g);
    one.n = d.n = 1; /* the Winograd kernel reuses its scratch image after image */
    if (wino_ok(g))
        s = max_size(s, nn_wino4_scratch(&one));
    if (wino_dx_ok(g))
        s = max_size(s, nn_wino4_scratch(&d));
    return s;
}

size_t nn_conv_train_wino_floats(const struct nn_conv_geom *g)
{
    size_t cc = (size_t)g->cin * g->cout;
    return wino_dx_ok(g) ? (WINO_TILE_FLOATS + 9) * cc : wino_ok(g) ? WINO_TILE_FLOATS * cc : 0;
}

void nn_conv_train_prep_forward(const struct nn_conv_geom *g, const float *w, float *u)
{
    nn_wino4_weights(w, g->cout, g->cin, u);
}

void nn_conv_train_prep_dx(const struct nn_conv_geom *g, const float *w, float *u)
{
    size_t cc = (size_t)g->cin * g->cout;
    float *flipped = u + WINO_TILE_FLOATS * cc;
    for (int co = 0; co < g->cout; co++)
        for (int ci = 0; ci < g->cin; ci++)
            for (int k = 0; k < 9; k++) /* tap (ky, kx) = k goes to (2-ky, 2-kx) = 8 - k */
                flipped[((size_t)ci * g->cout + co) * 9 + (size_t)(8 - k)] =
                    w[((size_t)co * g->cin + ci) * 9 + (size_t)k];
    nn_wino4_weights(flipped, g->cin, g->cout, u);
}

void nn_conv_train_forward(const struct nn_conv_geom *g, const float *x, const float *w,
                           const float *u, const float *b, float *y, float *scratch)
{
    if (u)
        nn_conv_wino4(g, x, u, b, y, scratch);
    else
        nn_conv_fast(g, x, w, b, y, scratch, NULL);
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

/* col[(ci*kh + ky)*kw + kx][oy*wo + ox] = x[ci][oy*sh - pt + ky*dh][ox*sw - pl + kx*dw],
 * zero outside the image: one image and group, every output row at once. */
static void im2col(const struct nn_conv_geom *g, int cin_g, const float *x, float *col)
{
    size_t hw = (size_t)g->ho * g->wo;
    for (int ci = 0; ci < cin_g; ci++)
        for (int ky = 0; ky < g->kh; ky++)
            for (int kx = 0; kx < g->kw; kx++) {
                const float *xp = x + (size_t)ci * g->h * g->w;
                float *cp = col + ((size_t)(ci * g->kh + ky) * g->kw + kx) * hw;
                int ix0 = kx * g->dw - g->pl, lo, hi;
                valid_cols(ix0, g->sw, g->w, g->wo, &lo, &hi);
                for (int oy = 0; oy < g->ho; oy++) {
                    int iy = oy * g->sh - g->pt + ky * g->dh;
                    float *row = cp + (size_t)oy * g->wo;
                    if (iy < 0 || iy >= g->h) {
                        memset(row, 0, sizeof(float) * (size_t)g->wo);
                        continue;
                    }
                    const float *xr = xp + (size_t)iy * g->w + ix0;
                    for (int ox = 0; ox < lo; ox++)
                        row[ox] = 0.f;
                    if (g->sw == 1)
                        memcpy(row + lo, xr + lo, sizeof(float) * (size_t)(hi - lo));
                    else
                        for (int ox = lo; ox < hi; ox++)
                            row[ox] = xr[(size_t)ox * g->sw];
                    for (int ox = hi; ox < g->wo; ox++)
                        row[ox] = 0.f;
                }
            }
}

/* The adjoint of im2col: every column entry adds into the input pixel it was copied from. */
static void col2im_add(const struct nn_conv_geom *g, int cin_g, const float *col, float *dx)
{
    size_t hw = (size_t)g->ho * g->wo;
    for (int ci = 0; ci < cin_g; ci++)
        for (int ky = 0; ky < g->kh; ky++)
            for (int kx = 0; kx < g->kw; kx++) {
                float *dp = dx + (size_t)ci * g->h * g->w;
                const float *cp = col + ((size_t)(ci * g->kh + ky) * g->kw + kx) * hw;
                int ix0 = kx * g->dw - g->pl, lo, hi;
                valid_cols(ix0, g->sw, g->w, g->wo, &lo, &hi);
                for (int oy = 0; oy < g->ho; oy++) {
                    int iy = oy * g->sh - g->pt + ky * g->dh;
                    if (iy < 0 || iy >= g->h)
                        continue;
                    float *dr = dp + (size_t)iy * g->w + ix0;
                    const float *row = cp + (size_t)oy * g->wo;
                    for (int ox = lo; ox < hi; ox++)
                        dr[(size_t)ox * g->sw] += row[ox];
                }
            }
}

static void bias_grad(const struct nn_conv_geom *g, const float *dy, float *db)
{
    size_t hw = (size_t)g->ho * g->wo;
    for (int co = 0; co < g->cout; co++) {
        double s = 0;
        for (int n = 0; n < g->n; n++)
            s += nn_sum_floats(dy + ((size_t)n * g->cout + co) * hw, hw);
        db[co] += (float)s;
    }
}

/* One depthwise channel of one image: the window sums of the forward, read backwards. */
static void depthwise_channel(const struct nn_conv_geom *g, const float *xp, const float *wp,
                              const float *dyp, float *dxp, double *dwacc)
{
    for (int oy = 0; oy < g->ho; oy++)
        for (int ox = 0; ox < g->wo; ox++) {
            float d = dyp[oy * g->wo + ox];
            for (int ky = 0; ky < g->kh; ky++) {
                int iy = oy * g->sh - g->pt + ky * g->dh;
                if (iy < 0 || iy >= g->h)
                    continue;
                for (int kx = 0; kx < g->kw; kx++) {
                    int ix = ox * g->sw - g->pl + kx * g->dw;
                    if (ix < 0 || ix >= g->w)
                        continue;
                    dwacc[ky * g->kw + kx] += (double)d * xp[iy * g->w + ix];
                    if (dxp)
                        dxp[iy * g->w + ix] += d * wp[ky * g->kw + kx];
                }
            }
        }
}

static void depthwise_backward(const struct nn_conv_geom *g, const float *x, const float *w,
                               const float *dy, float *dx, int acc, float *dw)
{
    size_t hw_in = (size_t)g->h * g->w, hw_out = (size_t)g->ho * g->wo, kk = (size_t)g->kh * g->kw;
    double dwacc[DW_MAX_TAPS];
    for (int c = 0; c < g->cin; c++) {
        memset(dwacc, 0, sizeof(double) * kk);
        for (int n = 0; n < g->n; n++) {
            size_t p = (size_t)n * g->cin + c;
            float *dxp = dx ? dx + p * hw_in : NULL;
            if (dxp && !acc)
                memset(dxp, 0, sizeof(float) * hw_in);
            depthwise_channel(g, x + p * hw_in, w + c * kk, dy + p * hw_out, dxp, dwacc);
        }
        for (size_t i = 0; i < kk; i++)
            dw[c * kk + i] += (float)dwacc[i];
    }
}

/* One image and group: dW_g += dY_g cols^T, then dX_g from W_g^T dY_g. */
static void group_backward(const struct nn_conv_geom *g, const float *xg, const float *wg,
                           const float *dyg, float *dxg, int acc, float *dwg, float *col)
{
    int cin_g = g->cin / g->group, cout_g = g->cout / g->group;
    int k = cin_g * g->kh * g->kw, hw = g->ho * g->wo;
    int pw = is_pointwise(g);
    const float *cols = xg; /* a 1x1 stride-1 conv's columns are its input */
    if (!pw) {
        im2col(g, cin_g, xg, col);
        cols = col;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, cout_g, k, hw, 1.f, dyg, hw, cols, hw,
                1.f, dwg, k);
    if (!dxg)
        return;
    if (pw) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, hw, cout_g, 1.f, wg, k, dyg, hw,
                    acc ? 1.f : 0.f, dxg, hw);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, hw, cout_g, 1.f, wg, k, dyg, hw, 0.f,
                col, hw);
    if (!acc)
        memset(dxg, 0, sizeof(float) * (size_t)cin_g * g->h * g->w);
    col2im_add(g, cin_g, col, dxg);
}

void nn_conv_backward(const struct nn_conv_geom *g, const float *x, const float *w,
                      const float *u_dx, const float *dy, float *dx, int acc, float *dw,
                      float *db, float *col)
{
    if (db)
        bias_grad(g, dy, db);
    if (is_depthwise(g)) {
        depthwise_backward(g, x, w, dy, dx, acc, dw);
        return;
    }
    int cin_g = g->cin / g->group, cout_g = g->cout / g->group;
    size_t k = (size_t)cin_g * g->kh * g->kw;
    size_t hw_in = (size_t)g->h * g->w, hw_out = (size_t)g->ho * g->wo;
    int wdx = dx && !acc && u_dx; /* Winograd overwrites; a sum takes col2im */
    for (int n = 0; n < g->n; n++)
        for (int grp = 0; grp < g->group; grp++) {
            size_t xo = ((size_t)n * g->cin + (size_t)grp * cin_g) * hw_in;
            group_backward(g, x + xo, w + (size_t)grp * cout_g * k,
                           dy + ((size_t)n * g->cout + (size_t)grp * cout_g) * hw_out,
                           dx && !wdx ? dx + xo : NULL, acc, dw + (size_t)grp * cout_g * k, col);
        }
    if (wdx) {
        struct nn_conv_geom d = dx_geom(g);
        nn_conv_wino4(&d, dy, u_dx, NULL, dx, col);
    }
}

/* ---- Tucker-2: three convolutions with their two intermediate maps kept ---- */

static size_t map_floats(const struct nn_conv_geom *g)
{
    return (size_t)g->n * g->cout * g->ho * g->wo;
}

size_t nn_tucker_scratch(const struct nn_tucker_geom *t)
{
    /* dmid2, dmid1, then the scratch of whichever conv is running */
    size_t conv = max_size(nn_conv_train_scratch(&t->in), nn_conv_train_scratch(&t->core));
    conv = max_size(conv, nn_conv_train_scratch(&t->out));
    return map_floats(&t->core) + map_floats(&t->in) + conv;
}

void nn_tucker_forward(const struct nn_tucker_geom *t, const float *x, const float *const *p,
                       float *mid1, float *mid2, float *y, float *scratch)
{
    nn_conv_train_forward(&t->in, x, p[0], NULL, NULL, mid1, scratch);
    nn_conv_train_forward(&t->core, mid1, p[1], NULL, NULL, mid2, scratch);
    nn_conv_train_forward(&t->out, mid2, p[2], NULL, p[3], y, scratch);
}

void nn_tucker_backward(const struct nn_tucker_geom *t, const float *x, const float *const *p,
                        const float *mid1, const float *mid2, const float *dy, float *dx,
                        int acc, float *const *dp, float *scratch)
{
    float *dmid2 = scratch, *dmid1 = dmid2 + map_floats(&t->core);
    float *col = dmid1 + map_floats(&t->in);
    nn_conv_backward(&t->out, mid2, p[2], NULL, dy, dmid2, 0, dp[2], dp[3], col);
    nn_conv_backward(&t->core, mid1, p[1], NULL, dmid2, dmid1, 0, dp[1], NULL, col);
    nn_conv_backward(&t->in, x, p[0], NULL, dmid1, dx, acc, dp[0], NULL, col);
}
