/* op_conv_direct.c — direct convolution for dense convs with few channels (the small
 * layers a compressed model is left with), where im2col + SGEMM has too few output rows
 * to run well and Winograd's transforms outweigh its savings; and the same register
 * blocks as a 1x1 conv over a run of positions, for the fused Tucker-2 layer. */
#include "nn/ops.h"

#include <limits.h>
#include <string.h>

/* Output columns per block: one vector of 16 floats (one AVX-512 register, two AVX2,
 * four SSE/NEON), written in GCC vector extensions so every target gets plain vector
 * code without intrinsics. */
#define VW 16
typedef float v16 __attribute__((vector_size(VW * sizeof(float))));

/* Measured on AVX-512 (bench/conv_direct.c, 1 thread): within these bounds the direct
 * kernel beat or matched im2col + SGEMM on every shape tried, by up to 1.8x on large maps
 * with fewer than 8 input channels (at 14x14 they are even); past them the GEMM's reuse
 * of each input across many output channels wins. Against Winograd (3x3 stride 1) it
 * wins while the channel pairs are few (15->15 at 28x28: 0.05 vs 0.06 ms) and loses from
 * about 16->32 on (56x56: 1.14 vs 0.95 ms), the transforms amortised over enough pairs. */
#define DIRECT_MAX_COUT 32
#define DIRECT_MAX_K 160          /* cin * kh * kw: 17 channels of a 3x3 */
#define DIRECT_MAX_WINO_PAIRS 320 /* cin * cout, for convs Winograd could take */
#define DIRECT_MIN_WO 12          /* narrower rows leave most of a 16-column block idle */
#define DIRECT_MAX_STRIDE 2
/* Positions per call of the 1x1 kernel: a multiple of two vectors that keeps its int
 * column count far from overflow. */
#define DIRECT_MAX_RUN ((size_t)1 << 24)

/* Output channels accumulated per pass: as many vectors as the target's registers hold
 * next to the input vector and a broadcast weight. */
#define BLOCK_AVX512 8  /* two column vectors each: 16 of 32 zmm */
#define BLOCK_AVX2 6    /* 12 of 16 ymm */
#define BLOCK_BASE 4    /* 16 of 16 xmm (SSE2) or of 32 q (NEON) */

int nn_conv_direct_applies(const struct nn_conv_geom *g)
{
    return g->group == 1 && g->dh == 1 && g->dw == 1 && g->sh <= DIRECT_MAX_STRIDE &&
           g->sw <= DIRECT_MAX_STRIDE && !(g->kh == 1 && g->kw == 1) &&
           g->cout <= DIRECT_MAX_COUT && g->cin * g->kh * g->kw <= DIRECT_MAX_K &&
           g->wo >= DIRECT_MIN_WO &&
           (!nn_wino_applies(g) || g->cin * g->cout <= DIRECT_MAX_WINO_PAIRS);
}

/* The input rows one output row reads are copied into a panel: per (ci, ky) a zero-padded
 * row split into sw phases (column ix*sw + p in phase p), so every tap kx reads 16
 * consecutive floats of phase kx % sw starting at kx / sw, whatever the padding and
 * stride, and the loops need no bounds checks. */
static int phase_len(const struct nn_conv_geom *g)
{
    int blocks = (g->wo + VW - 1) / VW;
    return blocks * VW + (g->kw - 1) / g->sw;
}

static size_t row_floats(const struct nn_conv_geom *g)
{
    return (size_t)g->sw * phase_len(g);
}

static size_t panel_floats(const struct nn_conv_geom *g)
{
    return (size_t)g->cin * g->kh * row_floats(g);
}

/* The panel, then the weights regrouped per pass (pack_weights). */
size_t nn_conv_direct_scratch(const struct nn_conv_geom *g)
{
    return panel_floats(g) + (size_t)g->cout * g->cin * g->kh * g->kw;
}

/* dst[j] = src[j * sw]; the common strides get loops of their own so they vectorise. */
static void copy_phase(float *dst, const float *src, int n, int sw)
{
    if (sw == 1)
        memcpy(dst, src, sizeof(float) * (size_t)n);
    else if (sw == 2)
        for (int j = 0; j < n; j++)
            dst[j] = src[2 * j];
    else
        for (int j = 0; j < n; j++)
            dst[j] = src[(size_t)j * sw];
}

/* Phase p of the padded input row xr (NULL: outside the image) into dst: the columns
 * inside the image, zeros around them. */
static void fill_phase(const struct nn_conv_geom *g, const float *xr, int p, float *dst)
{
    int len = phase_len(g), sw = g->sw;
    if (!xr) {
        memset(dst, 0, sizeof(float) * (size_t)len);
        return;
    }
    int first = g->pl - p; /* dst[j] for j in [lo, hi) is xr[j*sw - first] */
    int lo = first > 0 ? (first + sw - 1) / sw : 0;
    int last = g->w - 1 + first; /* j*sw <= last; negative when this phase misses the row */
    int hi = last >= 0 ? last / sw + 1 : 0;
    lo = lo < len ? lo : len;
    hi = hi < len ? hi : len;
    hi = hi > lo ? hi : lo;
    memset(dst, 0, sizeof(float) * (size_t)lo);
    if (hi > lo)
        copy_phase(dst + lo, xr + (lo * sw - first), hi - lo, sw);
    memset(dst + hi, 0, sizeof(float) * (size_t)(len - hi));
}

static void fill_panel(const struct nn_conv_geom *g, const float *x, int oy, float *panel)
{
    size_t plane = (size_t)g->h * g->w, rf = row_floats(g);
    for (int ci = 0; ci < g->cin; ci++)
        for (int ky = 0; ky < g->kh; ky++) {
            int iy = oy * g->sh - g->pt + ky;
            const float *xr = iy >= 0 && iy < g->h ? x + ci * plane + (size_t)iy * g->w : NULL;
            float *dst = panel + ((size_t)ci * g->kh + ky) * rf;
            for (int p = 0; p < g->sw; p++)
                fill_phase(g, xr, p, dst + (size_t)p * phase_len(g));
        }
}

struct direct_row {
    const float *panel;
    const int *tap;  /* per tap (ci, ky, kx): where its 16 columns start in the panel */
    const float *w;  /* the pass's weights, wp[tap][nb] */
    const float *b;  /* b[co0], or NULL */
    float *y;        /* y[co0][oy][0] */
    size_t y_plane;  /* ho * wo */
    int taps;        /* cin * kh * kw */
    int wo;
};

/* nb output channels of one output row, 16 columns at a time, the accumulators held in
 * registers across all taps. nb is a constant where this is inlined. */
static inline __attribute__((always_inline)) void direct_block(const struct direct_row *r,
                                                               int nb)
{
    for (int ox = 0; ox < r->wo; ox += VW) {
        v16 acc[BLOCK_AVX512];
        for (int b = 0; b < nb; b++)
            acc[b] = (v16){0} + (r->b ? r->b[b] : 0.f);
        const float *pc = r->panel + ox;
        for (int t = 0; t < r->taps; t++) {
            v16 xv;
            memcpy(&xv, pc + r->tap[t], sizeof xv);
            for (int b = 0; b < nb; b++)
                acc[b] += xv * r->w[t * nb + b];
        }
        int n = r->wo - ox < VW ? r->wo - ox : VW;
        for (int b = 0; b < nb; b++) {
            float *dst = r->y + b * r->y_plane + ox;
            if (n == VW)
                memcpy(dst, &acc[b], sizeof acc[b]);
            else
                for (int i = 0; i < n; i++)
                    dst[i] = acc[b][i];
        }
    }
}

/* One instance per channel count, so each block's accumulators have a constant count. */
#define DIRECT_CASE(n) \
    case n: direct_block(r, n); break

#define DIRECT_CASES_4 DIRECT_CASE(1); DIRECT_CASE(2); DIRECT_CASE(3); DIRECT_CASE(4)
#define DIRECT_CASES_6 DIRECT_CASES_4; DIRECT_CASE(5); DIRECT_CASE(6)

static void block_base(const struct direct_row *r, int nb)
{
    switch (nb) {
    DIRECT_CASES_4;
    default: break;
    }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DIRECT_X86 1
/* Two column vectors per step, so each broadcast weight feeds two FMAs: with one, every
 * FMA waited on a load of its own, and AVX-512 passes of 16 channels of 16 columns ran
 * slower than these of 8 channels of 32 (bench/conv_direct.c: up to 15 % on convs with 6
 * output channels, 2-7 % on most others). */
static inline __attribute__((always_inline)) void direct_block2(const struct direct_row *r,
                                                                int nb)
{
    int ox = 0;
    for (; ox + 2 * VW <= r->wo; ox += 2 * VW) {
        v16 acc[2][BLOCK_AVX512];
        for (int b = 0; b < nb; b++)
            acc[0][b] = acc[1][b] = (v16){0} + (r->b ? r->b[b] : 0.f);
        const float *pc = r->panel + ox;
        for (int t = 0; t < r->taps; t++) {
            v16 x0, x1;
            memcpy(&x0, pc + r->tap[t], sizeof x0);
            memcpy(&x1, pc + r->tap[t] + VW, sizeof x1);
            for (int b = 0; b < nb; b++) {
                float wt = r->w[t * nb + b];
                acc[0][b] += x0 * wt;
                acc[1][b] += x1 * wt;
            }
        }
        for (int b = 0; b < nb; b++) {
            memcpy(r->y + b * r->y_plane + ox, &acc[0][b], sizeof acc[0][b]);
            memcpy(r->y + b * r->y_plane + ox + VW, &acc[1][b], sizeof acc[1][b]);
        }
    }
    if (ox < r->wo) {
        struct direct_row tail = *r;
        tail.panel += ox;
        tail.y += ox;
        tail.wo -= ox;
        direct_block(&tail, nb);
    }
}

#define DIRECT_CASE2(n) \
    case n: direct_block2(r, n); break

__attribute__((target("avx2,fma"))) static void block_avx2(const struct direct_row *r, int nb)
{
    switch (nb) {
    DIRECT_CASES_6;
    default: break;
    }
}

__attribute__((target("avx512f,fma"))) static void block_avx512(const struct direct_row *r,
                                                                 int nb)
{
    switch (nb) {
    DIRECT_CASE2(1); DIRECT_CASE2(2); DIRECT_CASE2(3); DIRECT_CASE2(4); DIRECT_CASE2(5);
    DIRECT_CASE2(6); DIRECT_CASE2(7); DIRECT_CASE2(8);
    default: break;
    }
}
#endif

typedef void (*block_fn)(const struct direct_row *r, int nb);

/* The widest kernel this CPU runs, no wider than asked for. */
static block_fn pick_block(enum nn_direct_isa isa, int *max_nb)
{
#ifdef DIRECT_X86
    if (isa == NN_DIRECT_BEST && __builtin_cpu_supports("avx512f")) {
        *max_nb = BLOCK_AVX512;
        return block_avx512;
    }
    if (isa != NN_DIRECT_BASE && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma")) {
        *max_nb = BLOCK_AVX2;
        return block_avx2;
    }
#else
    (void)isa;
#endif
    *max_nb = BLOCK_BASE;
    return block_base;
}

/* Channels [co0, co0 + nb) into row `row` of y; activation applied while the row is in
 * L1. */
static void direct_channels(const struct nn_conv_geom *g, struct direct_row *r, block_fn fn,
                            const float *w, const float *b, float *y, int co0, int nb, int row)
{
    r->w = w + (size_t)co0 * r->taps;
    r->b = b ? b + co0 : NULL;
    r->y = y + (size_t)co0 * r->y_plane + (size_t)row * g->wo;
    fn(r, nb);
    if (g->act != NN_ACT_NONE)
        for (int i = 0; i < nb; i++)
            nn_bias_act_inplace(r->y + i * r->y_plane, (size_t)g->wo, 0.f, g->act, g->alpha);
}

/* tap[(ci*kh + ky)*kw + kx]: the panel offset of tap kx of row (ci, ky). */
static void tap_offsets(const struct nn_conv_geom *g, int *tap)
{
    int rf = (int)row_floats(g), plen = phase_len(g);
    for (int row = 0; row < g->cin * g->kh; row++)
        for (int kx = 0; kx < g->kw; kx++)
            tap[row * g->kw + kx] = row * rf + (kx % g->sw) * plen + kx / g->sw;
}

/* wp[co0*taps + t*nb + b] = w[co0 + b][t] for each pass [co0, co0 + nb): a tap's nb
 * weights side by side, so the kernel reads them at constant offsets from one pointer
 * (a pointer per channel ran out of registers). */
static void pack_weights(const float *w, int taps, int co0, int nb, float *wp)
{
    for (int t = 0; t < taps; t++)
        for (int b = 0; b < nb; b++)
            wp[(size_t)co0 * taps + (size_t)t * nb + b] = w[(size_t)(co0 + b) * taps + t];
}

/* Channels per pass: passes of equal size (15 as 8 + 7, not 14 + 1). */
static int pass_channels(int cout, int max_nb, int co)
{
    int passes_left = (cout - co + max_nb - 1) / max_nb;
    return (cout - co + passes_left - 1) / passes_left;
}

static void pack_passes(const float *w, int taps, int cout, int max_nb, float *wp)
{
    for (int co = 0, nb; co < cout; co += nb) {
        nb = pass_channels(cout, max_nb, co);
        pack_weights(w, taps, co, nb, wp);
    }
}

/* Output rows [oy0, oy1) of one image into y (row oy0 first, planes y_plane apart): the
 * weights packed after the panel in scratch (again per call: a few hundred floats), then
 * row by row the panel and every pass of channels. */
static void direct_rows(const struct nn_conv_geom *g, const float *x, const float *w,
                        const float *b, float *y, size_t y_plane, int oy0, int oy1,
                        float *scratch, enum nn_direct_isa isa)
{
    int max_nb, tap[DIRECT_MAX_K];
    block_fn fn = pick_block(isa, &max_nb);
    tap_offsets(g, tap);
    int taps = g->cin * g->kh * g->kw;
    float *wp = scratch + panel_floats(g);
    pack_passes(w, taps, g->cout, max_nb, wp);
    struct direct_row r = {.panel = scratch, .tap = tap, .y_plane = y_plane, .taps = taps,
                           .wo = g->wo};
    for (int oy = oy0; oy < oy1; oy++) {
        fill_panel(g, x, oy, scratch);
        for (int co = 0, nb; co < g->cout; co += nb) {
            nb = pass_channels(g->cout, max_nb, co);
            direct_channels(g, &r, fn, wp, b, y, co, nb, oy - oy0);
        }
    }
}

void nn_conv_direct(const struct nn_conv_geom *g, const float *x, const float *w, const float *b,
                    float *y, float *scratch)
{
    nn_conv_direct_isa(g, x, w, b, y, scratch, NN_DIRECT_BEST);
}

void nn_conv_direct_isa(const struct nn_conv_geom *g, const float *x, const float *w,
                        const float *b, float *y, float *scratch, enum nn_direct_isa isa)
{
    size_t plane = (size_t)g->ho * g->wo;
    for (int n = 0; n < g->n; n++)
        direct_rows(g, x + (size_t)n * g->cin * g->h * g->w, w, b,
                    y + (size_t)n * g->cout * plane, plane, 0, g->ho, scratch, isa);
}

void nn_conv_direct_band(const struct nn_conv_geom *g, const float *x, const float *w,
                         const float *b, float *y, size_t y_plane, int oy0, int oy1,
                         float *scratch)
{
    direct_rows(g, x, w, b, y, y_plane, oy0, oy1, scratch, NN_DIRECT_BEST);
}

/* ---- 1x1 convolution over a run of positions ---- */

int nn_pointwise_direct_applies(int cin, size_t x_plane)
{
    return cin >= 1 && cin <= DIRECT_MAX_K && (size_t)cin * x_plane <= (size_t)INT_MAX;
}

size_t nn_pointwise_direct_scratch(int cin, int cout)
{
    return (size_t)cin * cout + (size_t)(cin + cout) * VW;
}

/* The positions past the last whole vector through the same kernel, copied into a
 * zero-padded vector per channel (the kernel would read past the end of the last
 * plane) and back. */
static void pointwise_tail(int cin, int cout, block_fn fn, int max_nb, size_t lo, size_t len,
                           const float *x, size_t x_plane, const float *wp, const float *b,
                           float *y, size_t y_plane, float *buf)
{
    int n = (int)(len - lo), tap[DIRECT_MAX_K];
    float *tx = buf, *ty = buf + (size_t)cin * VW;
    for (int t = 0; t < cin; t++) {
        tap[t] = t * VW;
        memset(tx + t * VW, 0, sizeof(float) * VW);
        memcpy(tx + t * VW, x + (size_t)t * x_plane + lo, sizeof(float) * (size_t)n);
    }
    struct direct_row r = {.panel = tx, .tap = tap, .y_plane = VW, .taps = cin, .wo = VW};
    for (int co = 0, nb; co < cout; co += nb) {
        nb = pass_channels(cout, max_nb, co);
        r.w = wp + (size_t)co * cin;
        r.b = b ? b + co : NULL;
        r.y = ty + (size_t)co * VW;
        fn(&r, nb);
    }
    for (int co = 0; co < cout; co++)
        memcpy(y + (size_t)co * y_plane + lo, ty + (size_t)co * VW, sizeof(float) * (size_t)n);
}

void nn_pointwise_direct(int cin, int cout, size_t len, const float *x, size_t x_plane,
                         const float *w, const float *b, float *y, size_t y_plane,
                         enum nn_act act, float alpha, float *wp)
{
    int max_nb, tap[DIRECT_MAX_K];
    block_fn fn = pick_block(NN_DIRECT_BEST, &max_nb);
    for (int t = 0; t < cin; t++)
        tap[t] = t * (int)x_plane;
    pack_passes(w, cin, cout, max_nb, wp);
    size_t whole = len / VW * VW;
    for (size_t lo = 0; lo < whole; lo += DIRECT_MAX_RUN) {
        size_t n = whole - lo < DIRECT_MAX_RUN ? whole - lo : DIRECT_MAX_RUN;
        struct direct_row r = {.panel = x + lo, .tap = tap, .y_plane = y_plane, .taps = cin,
                               .wo = (int)n};
        for (int co = 0, nb; co < cout; co += nb) {
            nb = pass_channels(cout, max_nb, co);
            r.w = wp + (size_t)co * cin;
            r.b = b ? b + co : NULL;
            r.y = y + (size_t)co * y_plane + lo;
            fn(&r, nb);
        }
    }
    if (whole < len)
        pointwise_tail(cin, cout, fn, max_nb, whole, len, x, x_plane, wp, b, y, y_plane,
                       wp + (size_t)cin * cout);
    if (act != NN_ACT_NONE)
        for (int co = 0; co < cout; co++)
            nn_bias_act_inplace(y + (size_t)co * y_plane, len, 0.f, act, alpha);
}
