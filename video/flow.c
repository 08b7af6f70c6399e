/* flow.c — dense optical flow at model size by Farnebäck's polynomial expansion (G. Farnebäck,
 * "Two-Frame Motion Estimation Based on Polynomial Expansion", SCIA 2003), coarse to fine.
 *
 * Why Farnebäck and not TV-L1: the work per frame is fixed and small — a few separable filters
 * and a 2x2 solve per pixel per iteration, every loop contiguous and vectorisable — where TV-L1
 * runs tens to hundreds of primal-dual iterations per level, with warps between them, and its
 * cost per frame depends on how fast it converges; its gain, sharp motion boundaries, is one a
 * 112-pixel action model barely sees. (Not measured here: TV-L1 was not implemented.)
 *
 * The method, step by step as the paper builds it (named [P1]..[P5] below):
 *  - [P1] Polynomial expansion: around every pixel, f(x) ~ x^T A x + b^T x + c, fitted by
 *    weighted least squares over a (2n+1)^2 neighbourhood with Gaussian applicability a(x). With
 *    full certainty this is normalised convolution, r = (B^T W B)^{-1} B^T W f for the basis
 *    {1, x, y, x^2, y^2, xy}; a Gaussian is separable, so B^T W f is 9 one-dimensional
 *    correlations (3 vertical, 6 horizontal), and B^T W B is fixed: x, y and xy decouple and
 *    {1, x^2, y^2} is a 3x3 system solved once at setup.
 *  - [P2] Displacement: if f2(x) = f1(x - d) then A2 = A1 and b2 = b1 - 2 A1 d, so A d = Δb
 *    with A = (A1 + A2)/2 and Δb = -(b2 - b1)/2 when the two expansions are taken pixel by pixel.
 *  - [P3] One pixel's equation is too noisy, so they are pooled over a neighbourhood with weight
 *    w (a Gaussian here), minimising Σ w ||A d - Δb||^2: d = (Σ w A^T A)^{-1} Σ w A^T Δb.
 *  - [P4] A prior displacement d~ (the previous iteration, or the coarser level) enters by
 *    comparing f1 at x with f2 at x~ = x + d~: A = (A1(x) + A2(x~))/2 and
 *    Δb = -(b2(x~) - b1(x))/2 + A d~.
 *  - [P5] Iterating [P4] refines d, and a pyramid, coarse to fine, gives large displacements a
 *    start.
 * Two choices of ours: where x~ leaves the image the pixel's certainty is 0 (it adds nothing to
 * the pooled sums), and the pooled 2x2 system gets a ridge toward the prior,
 * (G + λI) d = h + λ d~ with G = Σ w A^T A, λ a small fraction of the two frames' mean
 * trace(A^T A), so flat regions and the aperture problem keep the coarser estimate instead of
 * dividing by nearly zero; scaled that way, λ does not depend on the images' brightness scale.
 * Borders replicate the edge pixel. Everything is allocated in one arena at setup. */
#include "video/video.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FLOW_DEFAULT_LEVELS 3
#define FLOW_DEFAULT_ITERATIONS 3
#define FLOW_DEFAULT_WINDOW 13
#define FLOW_DEFAULT_POLY_N 2
#define FLOW_DEFAULT_POLY_SIGMA_PER_N 0.75f
/* The ridge weight as a fraction of the frames' mean trace(A^T A). On 112x112 noisy stripes (the
 * aperture problem: only x is observable) the spurious y flow peaks at 73 px with no ridge,
 * 2.9 px at 1e-3 and 0.35 px at 1e-2, while the error on textured pairs stays within 0.0001 px
 * (tests/unit/test_flow.c, test_flow_aperture_stays_bounded). */
#define FLOW_RIDGE 1e-2f
/* The pyramid's low-pass before decimation: the binomial [1 4 6 4 1]/16 (Burt & Adelson). */
#define PYR_RADIUS 2
/* Planes of the pooled system: G_11, G_12, G_22, h_1, h_2. */
#define SYS_PLANES 5
/* Padded rows at once: each pooled plane down, then across (the expansion needs 5). */
#define ROW_BUFS (2 * SYS_PLANES)

/* The row kernels rely on the vectoriser; on x86-64 they are also built for AVX2 and AVX-512 and
 * picked at load time (on ARM64, NEON is the baseline the default build already uses). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FLOW_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FLOW_CLONES
#endif

/* The warp [P4] reads four of a pixel's five coefficients at four neighbours: held together
 * they are one 128-bit load each (NEON, SSE) instead of four scalar ones. */
typedef float v4f __attribute__((vector_size(16)));
enum { Q_BX, Q_BY, Q_A11, Q_A22 }; /* lanes of a v4f */
enum { S_G11, S_G12, S_G22, S_H1, S_H2 };

/* One frame's expansion at one level. */
struct poly {
    v4f *q;                     /* [h][w] (b_x, b_y, A_11, A_22) */
    float *a12;                 /* [h][w] A_12 */
    float energy;               /* mean of trace(A^T A) = A_11^2 + A_22^2 + 2 A_12^2 */
};

struct flow_level {
    int w, h;
    float *img;                 /* this level's image of the newest frame */
    struct poly poly[2];        /* the two newest frames */
    float *flow;                /* [2][h][w] */
};

struct video_flow {
    struct video_flow_opts o;
    int w, h, levels;
    struct flow_level lv[VIDEO_FLOW_MAX_LEVELS];
    int newest;                 /* index into poly[] of the newest frame */
    int have_prev;
    int pad;                    /* padding each side of a row buffer */
    float *rows[ROW_BUFS];      /* padded rows, w + 2 * pad */
    float *sys;                 /* [SYS_PLANES][h][w], level-0 sized */
    /* Half kernels k[0..r] of even (k[t] = k[-t]) and odd (k[t] = -k[-t]) filters. */
    float g[VIDEO_FLOW_MAX_POLY_N + 1], gt[VIDEO_FLOW_MAX_POLY_N + 1];
    float gtt[VIDEO_FLOW_MAX_POLY_N + 1];
    float win[VIDEO_FLOW_MAX_WINDOW / 2 + 1];
    int win_r;
    /* From the correlations to the coefficients [P1]: b = S_x * inv_b, A_12 = S_xy * inv_xy,
     * A_11 = p S_0 + q S_xx + s S_yy and A_22 = p S_0 + s S_xx + q S_yy. */
    float inv_b, inv_xy, p, q, s;
    struct arena arena;
};

void video_flow_opts_default(struct video_flow_opts *o)
{
    *o = (struct video_flow_opts){.levels = FLOW_DEFAULT_LEVELS,
                                  .iterations = FLOW_DEFAULT_ITERATIONS,
                                  .window = FLOW_DEFAULT_WINDOW,
                                  .poly_n = FLOW_DEFAULT_POLY_N,
                                  .poly_sigma = FLOW_DEFAULT_POLY_SIGMA_PER_N * FLOW_DEFAULT_POLY_N};
}

/* Zeroed fields take their defaults; the rest must lie in the documented bounds. */
static int opts_resolve(const struct video_flow_opts *in, struct video_flow_opts *o,
                        struct err_msg *em)
{
    *o = in ? *in : (struct video_flow_opts){0};
    if (!o->levels)
        o->levels = FLOW_DEFAULT_LEVELS;
    if (!o->iterations)
        o->iterations = FLOW_DEFAULT_ITERATIONS;
    if (!o->window)
        o->window = FLOW_DEFAULT_WINDOW;
    if (!o->poly_n)
        o->poly_n = FLOW_DEFAULT_POLY_N;
    if (o->poly_sigma == 0.0f)
        o->poly_sigma = FLOW_DEFAULT_POLY_SIGMA_PER_N * (float)o->poly_n;
    if (o->levels < 1 || o->levels > VIDEO_FLOW_MAX_LEVELS)
        return err_set(em, ERR_RANGE, "flow: levels %d outside 1..%d", o->levels,
                       VIDEO_FLOW_MAX_LEVELS);
    if (o->iterations < 1 || o->iterations > VIDEO_FLOW_MAX_ITERATIONS)
        return err_set(em, ERR_RANGE, "flow: iterations %d outside 1..%d", o->iterations,
                       VIDEO_FLOW_MAX_ITERATIONS);
    if (o->window < 3 || o->window > VIDEO_FLOW_MAX_WINDOW || o->window % 2 == 0)
        return err_set(em, ERR_RANGE, "flow: window %d not odd in 3..%d", o->window,
                       VIDEO_FLOW_MAX_WINDOW);
    if (o->poly_n < 1 || o->poly_n > VIDEO_FLOW_MAX_POLY_N)
        return err_set(em, ERR_RANGE, "flow: poly_n %d outside 1..%d", o->poly_n,
                       VIDEO_FLOW_MAX_POLY_N);
    if (!(o->poly_sigma > 0.0f && o->poly_sigma <= (float)o->poly_n))
        return err_set(em, ERR_RANGE, "flow: poly_sigma %g outside (0, %d]", (double)o->poly_sigma,
                       o->poly_n);
    return 0;
}

/* The pyramid: each level halves the one above (decimation keeps even pixels), and stops before
 * a side would drop under VIDEO_FLOW_MIN_LEVEL_SIDE. */
static int level_count(int w, int h, int wanted)
{
    int n = 1;
    while (n < wanted) {
        w = (w + 1) / 2;
        h = (h + 1) / 2;
        if (w < VIDEO_FLOW_MIN_LEVEL_SIDE || h < VIDEO_FLOW_MIN_LEVEL_SIDE)
            break;
        n++;
    }
    return n;
}

/* The 3x3 block of B^T W B for {1, x^2, y^2} (the other basis functions are orthogonal to it
 * and to each other under a symmetric applicability), inverted once in double. With 1-D moments
 * m_k = Σ g(t) t^k the 2-D ones factor: <1,1> = m0^2, <1,x^2> = m0 m2, <x^2,x^2> = m0 m4,
 * <x^2,y^2> = m2^2. */
static void poly_setup(struct video_flow *f)
{
    int n = f->o.poly_n;
    double sig = f->o.poly_sigma, m0 = 0, m2 = 0, m4 = 0;
    for (int t = -n; t <= n; t++) {
        double g = exp(-(double)(t * t) / (2.0 * sig * sig));
        m0 += g;
        m2 += g * t * t;
        m4 += g * t * t * t * t;
    }
    for (int t = 0; t <= n; t++) {
        double g = exp(-(double)(t * t) / (2.0 * sig * sig));
        f->g[t] = (float)g;
        f->gt[t] = (float)(g * t);
        f->gtt[t] = (float)(g * t * t);
    }
    double M[3][3] = {{m0 * m0, m0 * m2, m0 * m2},
                      {m0 * m2, m0 * m4, m2 * m2},
                      {m0 * m2, m2 * m2, m0 * m4}};
    /* Rows 2 and 3 of M^{-1} by cofactors: only the quadratic coefficients are needed. */
    double det = M[0][0] * (M[1][1] * M[2][2] - M[1][2] * M[2][1]) -
                 M[0][1] * (M[1][0] * M[2][2] - M[1][2] * M[2][0]) +
                 M[0][2] * (M[1][0] * M[2][1] - M[1][1] * M[2][0]);
    f->p = (float)(-(M[1][0] * M[2][2] - M[1][2] * M[2][0]) / det);
    f->q = (float)((M[0][0] * M[2][2] - M[0][2] * M[2][0]) / det);
    f->s = (float)(-(M[0][0] * M[2][1] - M[0][1] * M[2][0]) / det);
    f->inv_b = (float)(1.0 / (m0 * m2));
    /* The xy coefficient is 2 A_12, so A_12 = S_xy / (2 m2^2). */
    f->inv_xy = (float)(0.5 / (m2 * m2));
}

/* The pooling weight w of [P3]: a Gaussian with sigma = window / 4, normalised to sum 1. */
static void window_setup(struct video_flow *f)
{
    int r = f->o.window / 2;
    double sig = f->o.window / 4.0, sum = 0;
    for (int t = -r; t <= r; t++)
        sum += exp(-(double)(t * t) / (2.0 * sig * sig));
    for (int t = 0; t <= r; t++)
        f->win[t] = (float)(exp(-(double)(t * t) / (2.0 * sig * sig)) / sum);
    f->win_r = r;
}

static size_t plane_bytes(int w, int h, int planes)
{
    return arena_size_of((size_t)w * (size_t)h * (size_t)planes * sizeof(float));
}

static size_t arena_plan(const struct video_flow *f)
{
    size_t n = 0;
    for (int l = 0; l < f->levels; l++) {
        int w = f->lv[l].w, h = f->lv[l].h;
        n += plane_bytes(w, h, 1) + 2 * (plane_bytes(w, h, 4) + plane_bytes(w, h, 1)) +
             plane_bytes(w, h, 2);
    }
    n += plane_bytes(f->w, f->h, SYS_PLANES);
    n += ROW_BUFS * plane_bytes(f->w + 2 * f->pad, 1, 1);
    return n;
}

static void arena_carve(struct video_flow *f)
{
    for (int l = 0; l < f->levels; l++) {
        struct flow_level *L = &f->lv[l];
        size_t px = (size_t)L->w * (size_t)L->h * sizeof(float);
        L->img = arena_alloc(&f->arena, px);
        for (int k = 0; k < 2; k++) {
            L->poly[k].q = arena_alloc(&f->arena, px * 4);
            L->poly[k].a12 = arena_alloc(&f->arena, px);
        }
        L->flow = arena_alloc(&f->arena, px * 2);
    }
    f->sys = arena_alloc(&f->arena, (size_t)f->w * (size_t)f->h * SYS_PLANES * sizeof(float));
    for (int i = 0; i < ROW_BUFS; i++)
        f->rows[i] = arena_alloc(&f->arena, (size_t)(f->w + 2 * f->pad) * sizeof(float));
}

int video_flow_new(int width, int height, const struct video_flow_opts *o, struct video_flow **out,
                   struct err_msg *em)
{
    if (width < VIDEO_MIN_SIDE / 2 || width > VIDEO_MAX_MODEL_SIDE || height < VIDEO_MIN_SIDE / 2 ||
        height > VIDEO_MAX_MODEL_SIDE)
        return err_set(em, ERR_RANGE, "flow: size %dx%d outside %d..%d a side", width, height,
                       VIDEO_MIN_SIDE / 2, VIDEO_MAX_MODEL_SIDE);
    struct video_flow *f = calloc(1, sizeof *f);
    if (!f)
        return err_set(em, ERR_NOMEM, "flow: out of memory");
    int rc = opts_resolve(o, &f->o, em);
    if (rc < 0) {
        free(f);
        return rc;
    }
    f->w = width;
    f->h = height;
    f->levels = level_count(width, height, f->o.levels);
    for (int l = 0, w = width, h = height; l < f->levels; l++, w = (w + 1) / 2, h = (h + 1) / 2)
        f->lv[l] = (struct flow_level){.w = w, .h = h};
    poly_setup(f);
    window_setup(f);
    f->pad = f->win_r > PYR_RADIUS ? f->win_r : PYR_RADIUS;
    if (f->o.poly_n > f->pad)
        f->pad = f->o.poly_n;
    if (arena_init(&f->arena, arena_plan(f)) < 0) {
        free(f);
        return err_set(em, ERR_NOMEM, "flow: out of memory for %dx%d", width, height);
    }
    arena_carve(f);
    *out = f;
    return 0;
}

void video_flow_free(struct video_flow *f)
{
    if (!f)
        return;
    arena_fini(&f->arena);
    free(f);
}

void video_flow_reset(struct video_flow *f)
{
    f->have_prev = 0;
}

/* ---- row kernels: every inner loop runs along a contiguous row ---- */

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Row y of a plane whose rows outside [0, h) replicate the edge rows. */
static const float *row_at(const float *plane, int w, int h, int y)
{
    return plane + (size_t)clampi(y, 0, h - 1) * (size_t)w;
}

/* Extends a row held at buf[0..w) by r replicated pixels each side. */
static void row_pad(float *buf, int w, int r)
{
    for (int i = 1; i <= r; i++) {
        buf[-i] = buf[0];
        buf[w - 1 + i] = buf[w - 1];
    }
}

/* out = Σ_t k[|t|] row(y + t) over t = -r..r: the vertical pass of a symmetric filter. Two taps
 * per sweep halve the loads and stores of out. */
FLOW_CLONES
static void vfilter_even(const float *plane, int w, int h, int y, const float *k, int r,
                         float *restrict out)
{
    const float *c = row_at(plane, w, h, y);
    int t = 1;
    if (r % 2) {
        const float *up = row_at(plane, w, h, y - 1), *dn = row_at(plane, w, h, y + 1);
        for (int x = 0; x < w; x++)
            out[x] = k[0] * c[x] + k[1] * (up[x] + dn[x]);
        t = 2;
    } else {
        for (int x = 0; x < w; x++)
            out[x] = k[0] * c[x];
    }
    for (; t < r; t += 2) {
        const float *u1 = row_at(plane, w, h, y - t), *d1 = row_at(plane, w, h, y + t);
        const float *u2 = row_at(plane, w, h, y - t - 1), *d2 = row_at(plane, w, h, y + t + 1);
        float k1 = k[t], k2 = k[t + 1];
        for (int x = 0; x < w; x++)
            out[x] += k1 * (u1[x] + d1[x]) + k2 * (u2[x] + d2[x]);
    }
}

/* out = Σ_t k[|t|] in[x + t]: the horizontal pass of a symmetric filter on a padded row. */
FLOW_CLONES
static void hfilter_even(const float *in, int w, const float *k, int r, float *restrict out)
{
    int t = 1;
    if (r % 2) {
        for (int x = 0; x < w; x++)
            out[x] = k[0] * in[x] + k[1] * (in[x - 1] + in[x + 1]);
        t = 2;
    } else {
        for (int x = 0; x < w; x++)
            out[x] = k[0] * in[x];
    }
    for (; t < r; t += 2) {
        float k1 = k[t], k2 = k[t + 1];
        for (int x = 0; x < w; x++)
            out[x] += k1 * (in[x - t] + in[x + t]) + k2 * (in[x - t - 1] + in[x + t + 1]);
    }
}

/* out = Σ_t sign(t) k[|t|] in[x + t]: the horizontal pass of an antisymmetric filter. */
FLOW_CLONES
static void hfilter_odd(const float *in, int w, const float *k, int r, float *restrict out)
{
    for (int x = 0; x < w; x++)
        out[x] = 0.0f;
    for (int t = 1; t <= r; t++) {
        float kt = k[t];
        for (int x = 0; x < w; x++)
            out[x] += kt * (in[x + t] - in[x - t]);
    }
}

/* ---- the pyramid ---- */

/* One coarse row: the binomial low-pass down the fine columns, then across at even columns. */
static void pyr_down(const struct video_flow *f, const struct flow_level *fine,
                     struct flow_level *coarse)
{
    static const float k[PYR_RADIUS + 1] = {6.0f / 16, 4.0f / 16, 1.0f / 16};
    float *buf = f->rows[0] + f->pad;
    for (int y = 0; y < coarse->h; y++) {
        vfilter_even(fine->img, fine->w, fine->h, 2 * y, k, PYR_RADIUS, buf);
        row_pad(buf, fine->w, PYR_RADIUS);
        float *out = coarse->img + (size_t)y * (size_t)coarse->w;
        for (int x = 0; x < coarse->w; x++) {
            const float *c = buf + 2 * x;
            out[x] = k[0] * c[0] + k[1] * (c[-1] + c[1]) + k[2] * (c[-2] + c[2]);
        }
    }
}

/* ---- [P1] polynomial expansion ---- */

/* Vertical moments of one row: v0 = Σ g f, v1 = Σ g t f, v2 = Σ g t^2 f over rows y + t. */
FLOW_CLONES
static void poly_vertical(const struct video_flow *f, const float *img, int w, int h, int y,
                          float *restrict v0, float *restrict v1, float *restrict v2)
{
    const float *c = row_at(img, w, h, y);
    for (int x = 0; x < w; x++) {
        v0[x] = f->g[0] * c[x];
        v1[x] = 0.0f;
        v2[x] = 0.0f;
    }
    for (int t = 1; t <= f->o.poly_n; t++) {
        const float *up = row_at(img, w, h, y - t), *dn = row_at(img, w, h, y + t);
        float g = f->g[t], gt = f->gt[t], gtt = f->gtt[t];
        for (int x = 0; x < w; x++) {
            float sum = dn[x] + up[x], dif = dn[x] - up[x];
            v0[x] += g * sum;
            v1[x] += gt * dif;
            v2[x] += gtt * sum;
        }
    }
}

/* The coefficients of one row from its six correlations ([P1], see poly_setup). */
FLOW_CLONES
static void poly_row_coeffs(const struct video_flow *f, int w, const float *sx, const float *sy,
                            const float *s0, const float *sxx, const float *syy, v4f *restrict q,
                            float *restrict a12)
{
    float ib = f->inv_b, ixy = f->inv_xy, p = f->p, qq = f->q, s = f->s;
    for (int x = 0; x < w; x++) {
        q[x] = (v4f){sx[x] * ib, sy[x] * ib, p * s0[x] + qq * sxx[x] + s * syy[x],
                     p * s0[x] + s * sxx[x] + qq * syy[x]};
        a12[x] *= ixy;
    }
}

/* Σ trace(A^T A) over a row, four lanes at a time so it vectorises without reassociation. */
FLOW_CLONES
static float row_energy(const v4f *q, const float *a12, int w)
{
    v4f acc = {0, 0, 0, 0};
    float off = 0;
    for (int x = 0; x < w; x++) {
        acc += q[x] * q[x];
        off += a12[x] * a12[x];
    }
    return acc[Q_A11] + acc[Q_A22] + 2.0f * off;
}

static void poly_expand(struct video_flow *f, const struct flow_level *L, struct poly *out)
{
    double energy = 0;
    int w = L->w, h = L->h, n = f->o.poly_n;
    float *r[8];
    for (int k = 0; k < 8; k++)
        r[k] = f->rows[k] + f->pad;
    float *v0 = r[0], *v1 = r[1], *v2 = r[2];
    float *s0 = r[3], *sxx = r[4], *syy = r[5], *sx = r[6], *sy = r[7];
    for (int y = 0; y < h; y++) {
        poly_vertical(f, L->img, w, h, y, v0, v1, v2);
        row_pad(v0, w, n);
        row_pad(v1, w, n);
        row_pad(v2, w, n);
        size_t o = (size_t)y * (size_t)w;
        hfilter_even(v0, w, f->g, n, s0);
        hfilter_odd(v0, w, f->gt, n, sx);
        hfilter_even(v0, w, f->gtt, n, sxx);
        hfilter_even(v1, w, f->g, n, sy);
        hfilter_odd(v1, w, f->gt, n, out->a12 + o);
        hfilter_even(v2, w, f->g, n, syy);
        poly_row_coeffs(f, w, sx, sy, s0, sxx, syy, out->q + o, out->a12 + o);
        energy += row_energy(out->q + o, out->a12 + o, w);
    }
    out->energy = (float)(energy / ((double)w * (double)h));
}

/* ---- [P2]-[P5] displacement ---- */

/* Bilinear weights and the top-left index of a point known to lie inside the image. */
struct bilin {
    size_t i;
    float w00, w01, w10, w11;
    size_t stride;
};

static float bilin_at(const float *plane, const struct bilin *b)
{
    const float *p = plane + b->i;
    return b->w00 * p[0] + b->w01 * p[1] + b->w10 * p[b->stride] + b->w11 * p[b->stride + 1];
}

/* Where x~ = x + d~ lands: 0 when outside the image (certainty 0), else 1 and the weights.
 * Levels are at least 2 pixels a side, so the top-left index stays one short of each edge. */
static int bilin_make(float xs, float ys, int w, int h, struct bilin *b)
{
    if (!(xs >= 0.0f && ys >= 0.0f && xs <= (float)(w - 1) && ys <= (float)(h - 1)))
        return 0;
    int x0 = (int)xs, y0 = (int)ys;
    x0 = x0 > w - 2 ? w - 2 : x0;
    y0 = y0 > h - 2 ? h - 2 : y0;
    float fx = xs - (float)x0, fy = ys - (float)y0;
    b->i = (size_t)y0 * (size_t)w + (size_t)x0;
    b->stride = (size_t)w;
    b->w00 = (1 - fx) * (1 - fy);
    b->w01 = fx * (1 - fy);
    b->w10 = (1 - fx) * fy;
    b->w11 = fx * fy;
    return 1;
}

/* The warp of one row [P4]: A = (A1(x) + A2(x~))/2 and the b difference -(b2(x~) - b1(x))/2,
 * parked in the system's planes (G11 <- A_11, G12 <- A_12, G22 <- A_22, h <- the b term) for
 * system_row; all zero where x~ leaves the image, so the pixel drops out of the pooled sums. */
FLOW_CLONES
static void warp_row(int w, int h, int y, const float *u, const float *v, const v4f *q1,
                     const float *a12_1, const struct poly *p2, float *restrict A11,
                     float *restrict A12, float *restrict A22, float *restrict B1,
                     float *restrict B2)
{
    for (int x = 0; x < w; x++) {
        struct bilin b;
        if (!bilin_make((float)x + u[x], (float)y + v[x], w, h, &b)) {
            A11[x] = A12[x] = A22[x] = B1[x] = B2[x] = 0.0f;
            continue;
        }
        const v4f *c = p2->q + b.i;
        v4f at2 = b.w00 * c[0] + b.w01 * c[1] + b.w10 * c[b.stride] + b.w11 * c[b.stride + 1];
        v4f sum = 0.5f * (q1[x] + at2), dif = -0.5f * (at2 - q1[x]);
        A11[x] = sum[Q_A11];
        A22[x] = sum[Q_A22];
        A12[x] = 0.5f * (a12_1[x] + bilin_at(p2->a12, &b));
        B1[x] = dif[Q_BX];
        B2[x] = dif[Q_BY];
    }
}

/* The point-wise system of one row ([P4] in A^T A form, for the pooling of [P3]):
 * Δb = b term + A d~, then G = A^T A and h = A^T Δb, in place over what warp_row parked. */
FLOW_CLONES
static void system_row(int w, const float *u, const float *v, float *restrict G11,
                       float *restrict G12, float *restrict G22, float *restrict H1,
                       float *restrict H2)
{
    for (int x = 0; x < w; x++) {
        float a11 = G11[x], a12 = G12[x], a22 = G22[x];
        float dbx = H1[x] + a11 * u[x] + a12 * v[x];
        float dby = H2[x] + a12 * u[x] + a22 * v[x];
        G11[x] = a11 * a11 + a12 * a12;
        G12[x] = a12 * (a11 + a22);
        G22[x] = a12 * a12 + a22 * a22;
        H1[x] = a11 * dbx + a12 * dby;
        H2[x] = a12 * dbx + a22 * dby;
    }
}

static void system_build(struct video_flow *f, const struct flow_level *L, const struct poly *p1,
                         const struct poly *p2)
{
    int w = L->w, h = L->h;
    size_t plane = (size_t)w * (size_t)h;
    for (int y = 0; y < h; y++) {
        size_t o = (size_t)y * (size_t)w;
        const float *u = L->flow + o, *v = L->flow + plane + o;
        float *G11 = f->sys + S_G11 * plane + o, *G12 = f->sys + S_G12 * plane + o;
        float *G22 = f->sys + S_G22 * plane + o, *H1 = f->sys + S_H1 * plane + o;
        float *H2 = f->sys + S_H2 * plane + o;
        warp_row(w, h, y, u, v, p1->q + o, p1->a12 + o, p2, G11, G12, G22, H1, H2);
        system_row(w, u, v, G11, G12, G22, H1, H2);
    }
}

/* Solves the pooled, ridged system for one row: (G + λI) d = h + λ d~, written as the update
 * d = d~ + (G + λI)^{-1} (h - G d~), which leaves d~ where the system is singular. */
FLOW_CLONES
static void solve_row(int w, const float *G11, const float *G12, const float *G22, const float *H1,
                      const float *H2, float lambda, float *restrict u, float *restrict v)
{
    for (int x = 0; x < w; x++) {
        float g11 = G11[x] + lambda, g12 = G12[x], g22 = G22[x] + lambda;
        float r1 = H1[x] - (G11[x] * u[x] + g12 * v[x]);
        float r2 = H2[x] - (g12 * u[x] + G22[x] * v[x]);
        float det = g11 * g22 - g12 * g12;
        float inv = det > 0.0f ? 1.0f / det : 0.0f;
        u[x] += (g22 * r1 - g12 * r2) * inv;
        v[x] += (g11 * r2 - g12 * r1) * inv;
    }
}

/* [P3]'s pooling, separable (down each plane into a padded row, then across into a second row,
 * because the planes' own rows are still read by the rows below), and the solve for that row;
 * the flow is updated in place, which is safe because the whole system was built first. */
static void pool_and_solve(struct video_flow *f, struct flow_level *L, float lambda)
{
    int w = L->w, h = L->h, r = f->win_r;
    size_t plane = (size_t)w * (size_t)h;
    float *pooled[SYS_PLANES];
    for (int y = 0; y < h; y++) {
        for (int k = 0; k < SYS_PLANES; k++) {
            float *down = f->rows[k] + f->pad;
            vfilter_even(f->sys + (size_t)k * plane, w, h, y, f->win, r, down);
            row_pad(down, w, r);
            pooled[k] = f->rows[SYS_PLANES + k] + f->pad;
            hfilter_even(down, w, f->win, r, pooled[k]);
        }
        size_t o = (size_t)y * (size_t)w;
        solve_row(w, pooled[S_G11], pooled[S_G12], pooled[S_G22], pooled[S_H1], pooled[S_H2],
                  lambda, L->flow + o, L->flow + plane + o);
    }
}

/* Iterations at one level [P5]: build the point-wise system from the current estimate, pool
 * it, solve. λ follows the two frames' mean trace(A^T A) at this level, so every level and any
 * brightness scale is ridged alike. */
static void level_iterate(struct video_flow *f, struct flow_level *L, const struct poly *p1,
                          const struct poly *p2)
{
    float lambda = FLOW_RIDGE * 0.5f * (p1->energy + p2->energy);
    for (int it = 0; it < f->o.iterations; it++) {
        system_build(f, L, p1, p2);
        pool_and_solve(f, L, lambda);
    }
}

/* The coarse estimate as the fine level's start [P5]: coarse pixel i sits on fine pixel 2i, so
 * d_fine(x) = 2 d_coarse(x / 2), bilinear, the last odd pixel holding the edge value. */
static void flow_upsample(const struct flow_level *C, struct flow_level *F)
{
    size_t cp = (size_t)C->w * (size_t)C->h, fp = (size_t)F->w * (size_t)F->h;
    for (int y = 0; y < F->h; y++) {
        int y0 = y / 2, y1 = clampi(y0 + (y & 1), 0, C->h - 1);
        float wy = (y & 1) ? 0.5f : 0.0f;
        for (int x = 0; x < F->w; x++) {
            int x0 = x / 2, x1 = clampi(x0 + (x & 1), 0, C->w - 1);
            float wx = (x & 1) ? 0.5f : 0.0f;
            for (int c = 0; c < 2; c++) {
                const float *p = C->flow + (size_t)c * cp;
                const float *r0 = p + (size_t)y0 * (size_t)C->w, *r1 = p + (size_t)y1 * (size_t)C->w;
                float top = r0[x0] + wx * (r0[x1] - r0[x0]);
                float bot = r1[x0] + wx * (r1[x1] - r1[x0]);
                F->flow[(size_t)c * fp + (size_t)y * (size_t)F->w + (size_t)x] =
                    2.0f * (top + wy * (bot - top));
            }
        }
    }
}

/* The new image's pyramid and expansion at every level, into poly[slot]. */
static void frame_expand(struct video_flow *f, const float *grey, int slot)
{
    memcpy(f->lv[0].img, grey, (size_t)f->w * (size_t)f->h * sizeof(float));
    for (int l = 0; l < f->levels; l++) {
        if (l > 0)
            pyr_down(f, &f->lv[l - 1], &f->lv[l]);
        poly_expand(f, &f->lv[l], &f->lv[l].poly[slot]);
    }
}

int video_flow_push(struct video_flow *f, const float *grey, float *out)
{
    size_t field = (size_t)f->w * (size_t)f->h * 2;
    int slot = f->have_prev ? f->newest ^ 1 : f->newest;
    frame_expand(f, grey, slot);
    if (!f->have_prev) {
        f->have_prev = 1;
        memset(out, 0, field * sizeof(float));
        return 0;
    }
    int prev = f->newest;
    f->newest = slot;
    for (int l = f->levels - 1; l >= 0; l--) {
        struct flow_level *L = &f->lv[l];
        if (l == f->levels - 1)
            memset(L->flow, 0, (size_t)L->w * (size_t)L->h * 2 * sizeof(float));
        else
            flow_upsample(&f->lv[l + 1], L);
        level_iterate(f, L, &L->poly[prev], &L->poly[slot]);
    }
    memcpy(out, f->lv[0].flow, field * sizeof(float));
    return 1;
}

void video_flow_pair(struct video_flow *f, const float *a, const float *b, float *out)
{
    video_flow_reset(f);
    video_flow_push(f, a, out);
    video_flow_push(f, b, out);
}
