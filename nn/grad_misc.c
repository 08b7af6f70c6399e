/* grad_misc.c — training forward and backward of every op but the convolutions: BatchNorm
 * on batch statistics, activations, pools, Add/WeightedSum/Flatten/Reshape, Concat, Gemm,
 * Softmax, BatchMean, and inverted Dropout with masks that are a pure function of the step. */
#include "nn/grad.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <string.h>

/* dx[i] = expr or dx[i] += expr for i < len (expr reads i), the branch outside the loops
 * so both vectorise. */
#define STORE_GRAD(dx, len, acc, expr)            \
    do {                                          \
        if (acc)                                  \
            for (size_t i = 0; i < (len); i++)    \
                (dx)[i] += (expr);                \
        else                                      \
            for (size_t i = 0; i < (len); i++)    \
                (dx)[i] = (expr);                 \
    } while (0)

/* Block sums: float lanes over short blocks (vectorised), blocks summed in double, so a
 * channel of 10^6 values keeps about 1e-7 relative accuracy. */
#define BLOCK 256

double nn_sum_floats(const float *p, size_t n)
{
    double total = 0;
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        float lane[8] = {0};
        for (size_t j = 0; j < BLOCK; j += 8)
            for (int l = 0; l < 8; l++)
                lane[l] += p[i + j + (size_t)l];
        for (int l = 0; l < 8; l++)
            total += lane[l];
    }
    for (; i < n; i++)
        total += p[i];
    return total;
}

/* sum (p - c)^2 */
static double sq_dev(const float *p, size_t n, float c)
{
    double total = 0;
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        float lane[8] = {0};
        for (size_t j = 0; j < BLOCK; j += 8)
            for (int l = 0; l < 8; l++) {
                float d = p[i + j + (size_t)l] - c;
                lane[l] += d * d;
            }
        for (int l = 0; l < 8; l++)
            total += lane[l];
    }
    for (; i < n; i++)
        total += (double)(p[i] - c) * (p[i] - c);
    return total;
}

/* sum a * (b - c) */
static double dot_dev(const float *a, const float *b, size_t n, float c)
{
    double total = 0;
    size_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        float lane[8] = {0};
        for (size_t j = 0; j < BLOCK; j += 8)
            for (int l = 0; l < 8; l++)
                lane[l] += a[i + j + (size_t)l] * (b[i + j + (size_t)l] - c);
        for (int l = 0; l < 8; l++)
            total += lane[l];
    }
    for (; i < n; i++)
        total += (double)a[i] * (b[i] - c);
    return total;
}

/* ---- BatchNorm ---- */

void nn_bn_train_forward(int n, int c, int inner, int c0, int c1, const float *x,
                         const float *gamma, const float *beta, float eps, float *y, float *mean,
                         float *var, float *invstd)
{
    double count = (double)n * inner;
    for (int ch = c0; ch < c1; ch++) {
        double s = 0;
        for (int i = 0; i < n; i++)
            s += nn_sum_floats(x + ((size_t)i * c + ch) * inner, (size_t)inner);
        float mu = (float)(s / count);
        double ss = 0; /* two passes: no cancellation in E[x^2] - E[x]^2 */
        for (int i = 0; i < n; i++)
            ss += sq_dev(x + ((size_t)i * c + ch) * inner, (size_t)inner, mu);
        double v = ss / count;
        double is = 1.0 / sqrt(v + eps);
        mean[ch] = mu;
        var[ch] = (float)v;
        invstd[ch] = (float)is;
        float k = (float)(gamma[ch] * is), b = (float)(beta[ch] - mu * gamma[ch] * is);
        for (int i = 0; i < n; i++) {
            size_t off = ((size_t)i * c + ch) * inner;
            for (int j = 0; j < inner; j++)
                y[off + j] = x[off + j] * k + b;
        }
    }
}

void nn_bn_update_running(int c, int64_t count, const float *mean, const float *var,
                          float momentum, float *run_mean, float *run_var)
{
    double unbias = count > 1 ? (double)count / (double)(count - 1) : 1.0;
    for (int ch = 0; ch < c; ch++) {
        run_mean[ch] = (1.f - momentum) * run_mean[ch] + momentum * mean[ch];
        run_var[ch] = (1.f - momentum) * run_var[ch] + momentum * (float)(var[ch] * unbias);
    }
}

void nn_bn_backward(int n, int c, int inner, int c0, int c1, const float *x,
                    const float *gamma, const float *mean, const float *invstd, const float *dy,
                    float *dx, int acc, float *dgamma, float *dbeta)
{
    double count = (double)n * inner;
    for (int ch = c0; ch < c1; ch++) {
        double sdy = 0, sdyx = 0;
        for (int i = 0; i < n; i++) {
            size_t off = ((size_t)i * c + ch) * inner;
            sdy += nn_sum_floats(dy + off, (size_t)inner);
            sdyx += dot_dev(dy + off, x + off, (size_t)inner, mean[ch]);
        }
        double is = invstd[ch], sdxhat = sdyx * is; /* sum dy * xhat */
        dbeta[ch] += (float)sdy;
        dgamma[ch] += (float)sdxhat;
        if (!dx)
            continue;
        /* dx = a dy + b x + shift, the formula in grad.h regrouped per channel */
        double k = gamma[ch] * is / count;
        float a = (float)(gamma[ch] * is), b = (float)(-k * sdxhat * is);
        float shift = (float)(-k * sdy + k * sdxhat * is * mean[ch]);
        for (int img = 0; img < n; img++) {
            size_t off = ((size_t)img * c + ch) * inner;
            const float *dyp = dy + off, *xp = x + off;
            float *dxp = dx + off;
            STORE_GRAD(dxp, (size_t)inner, acc, a * dyp[i] + b * xp[i] + shift);
        }
    }
}

/* ---- activations ---- */

/* Slopes as functions of loaded values: a conditional load (x > 0 ? dy[i] : 0) would keep
 * the loops scalar, a select between loaded values vectorises. */
static inline float relu_grad(float x, float g)
{
    return x > 0.f ? g : 0.f;
}

static inline float relu6_grad(float x, float g)
{
    return x > 0.f && x < 6.f ? g : 0.f;
}

static inline float leaky_grad(float x, float g, float alpha)
{
    return x > 0.f ? g : alpha * g;
}

void nn_act_backward(enum nn_act act, float alpha, const float *x, const float *dy, float *dx,
                     size_t len, int acc)
{
    switch (act) {
    case NN_ACT_RELU: STORE_GRAD(dx, len, acc, relu_grad(x[i], dy[i])); break;
    case NN_ACT_RELU6: STORE_GRAD(dx, len, acc, relu6_grad(x[i], dy[i])); break;
    case NN_ACT_LEAKY: STORE_GRAD(dx, len, acc, leaky_grad(x[i], dy[i], alpha)); break;
    case NN_ACT_NONE: STORE_GRAD(dx, len, acc, dy[i]); break;
    }
}

/* ---- pools ---- */

static void zero_unless(float *dx, size_t len, int acc)
{
    if (!acc)
        memset(dx, 0, sizeof(float) * len);
}

/* The index in xp of the first maximum of a window (nn_maxpool_ref's choice), -1 if the
 * window holds no pixel. */
static int window_argmax(const struct nn_pool_geom *g, const float *xp, int oy, int ox)
{
    float m = -FLT_MAX;
    int at = -1;
    for (int ky = 0; ky < g->kh; ky++) {
        int iy = oy * g->sh - g->pt + ky * g->dh;
        if (iy < 0 || iy >= g->h)
            continue;
        for (int kx = 0; kx < g->kw; kx++) {
            int ix = ox * g->sw - g->pl + kx * g->dw;
            if (ix >= 0 && ix < g->w && (xp[iy * g->w + ix] > m || at < 0)) {
                m = xp[iy * g->w + ix];
                at = iy * g->w + ix;
            }
        }
    }
    return at;
}

/* Windows that tile the input without padding or overlap (VGG's 2x2 stride 2): every
 * window lies inside, so its pixels are indexed directly. */
static int tiles_input(const struct nn_pool_geom *g)
{
    return g->pt == 0 && g->pl == 0 && g->dh == 1 && g->dw == 1 && g->sh == g->kh &&
           g->sw == g->kw && g->ho * g->sh <= g->h && g->wo * g->sw <= g->w;
}

static void maxpool_backward_tiled(const struct nn_pool_geom *g, const float *x,
                                   const float *dy, float *dx)
{
    size_t hw = (size_t)g->h * g->w, hwo = (size_t)g->ho * g->wo;
    for (int p = 0; p < g->n * g->c; p++)
        for (int oy = 0; oy < g->ho; oy++)
            for (int ox = 0; ox < g->wo; ox++) {
                size_t base = (size_t)p * hw + (size_t)oy * g->kh * g->w + (size_t)ox * g->kw;
                const float *xw = x + base;
                size_t at = 0;
                float m = xw[0];
                for (int ky = 0; ky < g->kh; ky++)
                    for (int kx = 0; kx < g->kw; kx++)
                        if (xw[(size_t)ky * g->w + kx] > m) {
                            m = xw[(size_t)ky * g->w + kx];
                            at = (size_t)ky * g->w + kx;
                        }
                dx[base + at] += dy[(size_t)p * hwo + (size_t)oy * g->wo + ox];
            }
}

void nn_maxpool_backward(const struct nn_pool_geom *g, const float *x, const float *dy,
                         float *dx, int acc)
{
    size_t hw = (size_t)g->h * g->w, hwo = (size_t)g->ho * g->wo;
    zero_unless(dx, (size_t)g->n * g->c * hw, acc);
    if (tiles_input(g)) {
        maxpool_backward_tiled(g, x, dy, dx);
        return;
    }
    for (int p = 0; p < g->n * g->c; p++) {
        const float *xp = x + (size_t)p * hw, *dyp = dy + (size_t)p * hwo;
        float *dxp = dx + (size_t)p * hw;
        for (int oy = 0; oy < g->ho; oy++)
            for (int ox = 0; ox < g->wo; ox++) {
                int at = window_argmax(g, xp, oy, ox);
                if (at >= 0)
                    dxp[at] += dyp[oy * g->wo + ox];
            }
    }
}

/* nn_avgpool's divisor for one window: the pixels inside, plus with count_include_pad the
 * positions inside the declared padding. */
static int avg_divisor(const struct nn_pool_geom *g, int oy, int ox)
{
    int cnt = 0, padded = 0;
    for (int ky = 0; ky < g->kh; ky++) {
        int iy = oy * g->sh - g->pt + ky * g->dh;
        for (int kx = 0; kx < g->kw; kx++) {
            int ix = ox * g->sw - g->pl + kx * g->dw;
            if (iy >= 0 && iy < g->h && ix >= 0 && ix < g->w)
                cnt++;
            else if (iy < g->h + g->pt && ix < g->w + g->pl)
                padded++;
        }
    }
    return g->count_include_pad ? cnt + padded : cnt;
}

void nn_avgpool_backward(const struct nn_pool_geom *g, const float *dy, float *dx, int acc)
{
    size_t hw = (size_t)g->h * g->w, hwo = (size_t)g->ho * g->wo;
    zero_unless(dx, (size_t)g->n * g->c * hw, acc);
    for (int oy = 0; oy < g->ho; oy++)
        for (int ox = 0; ox < g->wo; ox++) {
            int div = avg_divisor(g, oy, ox);
            if (!div)
                continue;
            for (int p = 0; p < g->n * g->c; p++) {
                float v = dy[(size_t)p * hwo + (size_t)oy * g->wo + ox] / (float)div;
                float *dxp = dx + (size_t)p * hw;
                for (int ky = 0; ky < g->kh; ky++) {
                    int iy = oy * g->sh - g->pt + ky * g->dh;
                    if (iy < 0 || iy >= g->h)
                        continue;
                    for (int kx = 0; kx < g->kw; kx++) {
                        int ix = ox * g->sw - g->pl + kx * g->dw;
                        if (ix >= 0 && ix < g->w)
                            dxp[iy * g->w + ix] += v;
                    }
                }
            }
        }
}

void nn_global_avgpool_backward(int n, int c, int hw, const float *dy, float *dx, int acc)
{
    for (int p = 0; p < n * c; p++) {
        float v = dy[p] / (float)hw;
        float *dxp = dx + (size_t)p * hw;
        STORE_GRAD(dxp, (size_t)hw, acc, v);
    }
}

/* ---- data movement and sums ---- */

void nn_grad_scaled(const float *dy, float scale, float *dx, size_t len, int acc)
{
    if (scale == 1.f)
        STORE_GRAD(dx, len, acc, dy[i]);
    else
        STORE_GRAD(dx, len, acc, scale * dy[i]);
}

void nn_grad_mul(const float *dy, const float *m, float *dx, size_t len, int acc)
{
    STORE_GRAD(dx, len, acc, dy[i] * m[i]);
}

void nn_concat_backward(int k, const int *lens, int outer, int inner, int j, const float *dy,
                        float *dx, int acc)
{
    size_t row = 0, off = 0;
    for (int i = 0; i < k; i++) {
        if (i < j)
            off += (size_t)lens[i] * inner;
        row += (size_t)lens[i] * inner;
    }
    size_t chunk = (size_t)lens[j] * inner;
    for (int o = 0; o < outer; o++) {
        const float *src = dy + (size_t)o * row + off;
        float *dst = dx + (size_t)o * chunk;
        STORE_GRAD(dst, chunk, acc, src[i]);
    }
}

void nn_gemm_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                      float *dx, int acc, float *dw, float *db)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.f, dy, out, x, in, 1.f, dw,
                in);
    if (db)
        for (int o = 0; o < out; o++) {
            double s = 0;
            for (int i = 0; i < n; i++)
                s += dy[(size_t)i * out + o];
            db[o] += (float)s;
        }
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.f, dy, out, w, in,
                    acc ? 1.f : 0.f, dx, in);
}

void nn_softmax_backward(int outer, int axis, int inner, const float *y, const float *dy,
                         float *dx, int acc)
{
    for (int o = 0; o < outer; o++)
        for (int in = 0; in < inner; in++) {
            size_t base = (size_t)o * axis * inner + in;
            double s = 0;
            for (int a = 0; a < axis; a++)
                s += (double)dy[base + (size_t)a * inner] * y[base + (size_t)a * inner];
            for (int a = 0; a < axis; a++) {
                size_t i = base + (size_t)a * inner;
                float v = y[i] * (float)(dy[i] - s);
                dx[i] = acc ? dx[i] + v : v;
            }
        }
}

void nn_batchmean_backward(int n, size_t len, const float *dy, float *dx, int acc)
{
    float inv = 1.f / (float)n;
    for (int j = 0; j < n; j++) {
        float *dxp = dx + (size_t)j * len;
        STORE_GRAD(dxp, len, acc, dy[i] * inv);
    }
}

/* ---- dropout ---- */

/* splitmix64's finaliser: a bijection that mixes every input bit into every output bit. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#define GOLDEN 0x9E3779B97F4A7C15ull

static uint64_t mask_key(uint64_t seed, int64_t step, int node)
{
    return mix64(seed ^ mix64((uint64_t)step * GOLDEN + (uint64_t)(unsigned)node));
}

static float keep_scale(uint64_t key, size_t i, float ratio)
{
    uint64_t h = mix64(key + (uint64_t)(i + 1) * GOLDEN);
    double u = (double)(h >> 11) * (1.0 / 9007199254740992.0); /* [0, 1) from 53 bits */
    return u < ratio ? 0.f : 1.f / (1.f - ratio);
}

float nn_dropout_scale(uint64_t seed, int64_t step, int node, size_t i, float ratio)
{
    return keep_scale(mask_key(seed, step, node), i, ratio);
}

void nn_dropout_mask(uint64_t seed, int64_t step, int node, float ratio, float *mask, size_t len)
{
    uint64_t key = mask_key(seed, step, node);
    for (size_t i = 0; i < len; i++)
        mask[i] = keep_scale(key, i, ratio);
}
