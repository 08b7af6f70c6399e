/* test_tucker.c — compress/tucker.c and vbmf.c: Tucker-2 recovery, HOOI against HOSVD, truncated
 * SVD against Eckart-Young, VBMF ranks on planted low-rank data, and every kind of bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "compress/tucker.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- seeded randomness (splitmix64, Box-Muller) ---- */

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_unit(struct rng *r) /* (0, 1) */
{
    return ((double)(rng_next(r) >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_gauss(struct rng *r)
{
    return sqrt(-2 * log(rng_unit(r))) * cos(6.283185307179586 * rng_unit(r));
}

static float *gauss_new(size_t n, double sigma, struct rng *r)
{
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(sigma * rng_gauss(r));
    return x;
}

/* ---- independent references: plain loops, no BLAS ---- */

/* Ŵ[o, i, k] = Σ_s U_out[o, s] Σ_r core[s, r, k] U_in[r, i], straight from the definition. */
static double *tucker_rebuild(const float *u_in, const float *core, const float *u_out, int cout,
                              int cin, int k, int rin, int rout)
{
    double *w = calloc((size_t)cout * cin * k, sizeof *w);
    assert_non_null(w);
    for (int o = 0; o < cout; o++)
        for (int i = 0; i < cin; i++)
            for (int j = 0; j < k; j++) {
                double acc = 0;
                for (int s = 0; s < rout; s++)
                    for (int r = 0; r < rin; r++)
                        acc += (double)u_out[o * rout + s] * core[((size_t)s * rin + r) * k + j] *
                               u_in[r * cin + i];
                w[((size_t)o * cin + i) * k + j] = acc;
            }
    return w;
}

static double rel_diff(const float *w, const double *what, size_t n)
{
    double d2 = 0, w2 = 0;
    for (size_t i = 0; i < n; i++) {
        d2 += (w[i] - what[i]) * (w[i] - what[i]);
        w2 += (double)w[i] * w[i];
    }
    return w2 > 0 ? sqrt(d2 / w2) : sqrt(d2);
}

/* A weight that is exactly a Tucker-2 product of Gaussian (not orthonormal) factors. */
static float *planted_tucker_new(int cout, int cin, int k, int rin, int rout, struct rng *r)
{
    float *ui = gauss_new((size_t)rin * cin, 1, r), *uo = gauss_new((size_t)cout * rout, 1, r);
    float *c = gauss_new((size_t)rout * rin * k, 1, r);
    double *w = tucker_rebuild(ui, c, uo, cout, cin, k, rin, rout);
    size_t n = (size_t)cout * cin * k;
    float *wf = malloc(n * sizeof *wf);
    assert_non_null(wf);
    for (size_t i = 0; i < n; i++)
        wf[i] = (float)w[i];
    free(w);
    free(ui);
    free(uo);
    free(c);
    return wf;
}

/* Factors and the error of one decomposition, checked against the independent rebuild. */
struct t2_out {
    float *ui, *core, *uo;
    double rel, rel_ref;
};

static void t2_run(const float *w, int cout, int cin, int kh, int kw, int rin, int rout, int iters,
                   struct t2_out *out)
{
    int k = kh * kw;
    out->ui = malloc((size_t)rin * cin * sizeof(float));
    out->core = malloc((size_t)rout * rin * k * sizeof(float));
    out->uo = malloc((size_t)cout * rout * sizeof(float));
    assert_true(out->ui && out->core && out->uo);
    struct err_msg em = {{0}};
    out->rel = -1;
    int rc = tucker2_decompose(w, cout, cin, kh, kw, rin, rout, iters, out->ui, out->core, out->uo,
                               &out->rel, &em);
    if (rc)
        fail_msg("tucker2_decompose: %s", err_text(&em, rc));
    double *what = tucker_rebuild(out->ui, out->core, out->uo, cout, cin, k, rin, rout);
    out->rel_ref = rel_diff(w, what, (size_t)cout * cin * k);
    free(what);
}

static void t2_out_fini(struct t2_out *o)
{
    free(o->ui);
    free(o->core);
    free(o->uo);
}

/* ---- Tucker-2 ---- */

static void test_tucker_planted_ranks_recovered(void **state)
{
    (void)state;
    static const int shapes[][6] = {
        /* cout, cin, kh, kw, rin, rout */
        {12, 10, 3, 3, 3, 4}, {8, 16, 3, 3, 5, 2}, {20, 6, 1, 3, 2, 5}, {9, 7, 1, 1, 4, 3},
        {16, 16, 5, 5, 1, 1},
    };
    struct rng r = {11};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int *s = shapes[t];
        float *w = planted_tucker_new(s[0], s[1], s[2] * s[3], s[4], s[5], &r);
        for (int iters = 0; iters <= 5; iters += 5) {
            struct t2_out o;
            t2_run(w, s[0], s[1], s[2], s[3], s[4], s[5], iters, &o);
            if (!(o.rel < 1e-5 && o.rel_ref < 1e-5))
                fail_msg("shape %zu iters %d: rel_err %g, rebuilt %g", t, iters, o.rel, o.rel_ref);
            t2_out_fini(&o);
        }
        free(w);
    }
}

static void test_tucker_full_ranks_exact(void **state)
{
    (void)state;
    struct rng r = {12};
    static const int shapes[][4] = {{6, 5, 3, 3}, {4, 9, 1, 1}, {10, 3, 2, 3}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int *s = shapes[t];
        float *w = gauss_new((size_t)s[0] * s[1] * s[2] * s[3], 1, &r);
        struct t2_out o;
        t2_run(w, s[0], s[1], s[2], s[3], s[1], s[0], 3, &o);
        if (!(o.rel < 1e-5 && o.rel_ref < 1e-5))
            fail_msg("shape %zu: rel_err %g, rebuilt %g", t, o.rel, o.rel_ref);
        t2_out_fini(&o);
        free(w);
    }
}

static void test_tucker_rel_err_matches_rebuild(void **state)
{
    (void)state;
    struct rng r = {13};
    static const int cases[][7] = {
        {16, 12, 3, 3, 5, 7, 0}, {16, 12, 3, 3, 5, 7, 10}, {24, 32, 3, 3, 2, 20, 4},
        {7, 5, 1, 5, 5, 1, 2},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int *c = cases[t];
        float *w = gauss_new((size_t)c[0] * c[1] * c[2] * c[3], 0.3, &r);
        struct t2_out o;
        t2_run(w, c[0], c[1], c[2], c[3], c[4], c[5], c[6], &o);
        /* A truncated rank on Gaussian data keeps a clearly nonzero error. */
        assert_true(o.rel > 0.05 && o.rel < 1.0);
        if (fabs(o.rel - o.rel_ref) > 1e-6)
            fail_msg("case %zu: reported %.9f, rebuilt %.9f", t, o.rel, o.rel_ref);
        t2_out_fini(&o);
        free(w);
    }
}

/* The best rank-(rin, rout) error can never be below what the best rank-rout SVD of the mode-0
 * unfolding leaves (Tucker-2 also constrains the other mode): an independent lower bound. */
static void test_tucker_error_above_unfolding_bound(void **state)
{
    (void)state;
    struct rng r = {14};
    int cout = 10, cin = 8, k = 9, rin = 3, rout = 4;
    float *w = gauss_new((size_t)cout * cin * k, 1, &r);
    double s[10];
    assert_int_equal(svd_values(w, cout, cin * k, s, NULL), 0);
    double tail = 0, all = 0;
    for (int j = 0; j < cout; j++) {
        all += s[j] * s[j];
        if (j >= rout)
            tail += s[j] * s[j];
    }
    struct t2_out o;
    t2_run(w, cout, cin, 3, 3, rin, rout, 10, &o);
    print_message("rel_err %.6f >= mode-0 bound %.6f\n", o.rel, sqrt(tail / all));
    assert_true(o.rel >= sqrt(tail / all) - 1e-7);
    t2_out_fini(&o);
    free(w);
}

static void test_tucker_hooi_never_worse_than_hosvd(void **state)
{
    (void)state;
    struct rng r = {15};
    static const int cases[][6] = {
        {16, 12, 3, 3, 4, 5}, {32, 24, 3, 3, 6, 6}, {8, 20, 1, 3, 3, 2}, {12, 12, 3, 3, 1, 11},
    };
    int improved = 0;
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int *c = cases[t];
        float *w = gauss_new((size_t)c[0] * c[1] * c[2] * c[3], 1, &r);
        struct t2_out a, b;
        t2_run(w, c[0], c[1], c[2], c[3], c[4], c[5], 0, &a);
        t2_run(w, c[0], c[1], c[2], c[3], c[4], c[5], 20, &b);
        print_message("random %zu: HOSVD %.7f  HOOI %.7f\n", t, a.rel_ref, b.rel_ref);
        assert_true(b.rel_ref <= a.rel_ref + 1e-7);
        improved += b.rel_ref < a.rel_ref - 1e-6;
        t2_out_fini(&a);
        t2_out_fini(&b);
        free(w);
    }
    print_message("HOOI improved on %d of 4 random weights\n", improved);
}

/* A weight where HOSVD picks the wrong pair. Output A holds energy 4c^2 spread evenly over input
 * channels 0..3 (one per kernel position), output B holds d^2 in input channel 4 alone, with
 * c^2 < d^2 < 4 c^2. At rank (1, 1) HOSVD takes A (the larger mode-0 energy) and channel 4 (the
 * larger mode-1 energy): they share nothing, the core is 0 and the error 100%. HOOI moves to B and
 * keeps d^2: error sqrt(4c^2 / (4c^2 + d^2)) = 0.8 for c = 1, d = 1.5. */
static void test_tucker_hooi_beats_hosvd_constructed(void **state)
{
    (void)state;
    int cout = 2, cin = 5, kh = 2, kw = 2, k = 4;
    float w[2 * 5 * 4] = {0};
    for (int j = 0; j < 4; j++)
        w[(0 * cin + j) * k + j] = 1.0f; /* A */
    w[(1 * cin + 4) * k + 0] = 1.5f;     /* B */
    struct t2_out a, b;
    t2_run(w, cout, cin, kh, kw, 1, 1, 0, &a);
    t2_run(w, cout, cin, kh, kw, 1, 1, 10, &b);
    print_message("constructed: HOSVD %.7f  HOOI %.7f\n", a.rel_ref, b.rel_ref);
    assert_true(fabs(a.rel_ref - 1.0) < 1e-6);
    assert_true(fabs(b.rel_ref - 0.8) < 1e-6);
    assert_true(fabs(b.rel - 0.8) < 1e-6);
    t2_out_fini(&a);
    t2_out_fini(&b);
}

static void assert_orthonormal(const float *u, int n, int r, int rows_are_vectors)
{
    for (int a = 0; a < r; a++)
        for (int b = 0; b < r; b++) {
            double dot = 0;
            for (int i = 0; i < n; i++)
                dot += rows_are_vectors ? (double)u[a * n + i] * u[b * n + i]
                                        : (double)u[i * r + a] * u[i * r + b];
            if (fabs(dot - (a == b)) > 1e-5)
                fail_msg("vectors %d, %d: dot %.8f", a, b, dot);
        }
}

static void test_tucker_factors_orthonormal(void **state)
{
    (void)state;
    struct rng r = {16};
    int cout = 24, cin = 20, rin = 7, rout = 9;
    float *w = gauss_new((size_t)cout * cin * 9, 1, &r);
    for (int iters = 0; iters <= 8; iters += 8) {
        struct t2_out o;
        t2_run(w, cout, cin, 3, 3, rin, rout, iters, &o);
        assert_orthonormal(o.ui, cin, rin, 1);   /* U_in[Rin, Cin]: rows */
        assert_orthonormal(o.uo, cout, rout, 0); /* U_out[Cout, Rout]: columns */
        t2_out_fini(&o);
    }
    free(w);
}

static void test_tucker_deterministic(void **state)
{
    (void)state;
    struct rng r = {17};
    int cout = 16, cin = 12, rin = 5, rout = 6, k = 9;
    float *w = gauss_new((size_t)cout * cin * k, 1, &r);
    struct t2_out a, b;
    t2_run(w, cout, cin, 3, 3, rin, rout, 5, &a);
    t2_run(w, cout, cin, 3, 3, rin, rout, 5, &b);
    assert_memory_equal(a.ui, b.ui, (size_t)rin * cin * sizeof(float));
    assert_memory_equal(a.uo, b.uo, (size_t)cout * rout * sizeof(float));
    assert_memory_equal(a.core, b.core, (size_t)rout * rin * k * sizeof(float));
    t2_out_fini(&a);
    t2_out_fini(&b);
    free(w);
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The size the GA meets most. The time is printed, not asserted: a shared machine, sanitizers
 * or valgrind would make any bound flaky (about 0.1 s for HOSVD and 0.4 s with 10 HOOI rounds on
 * one core of the development machine). */
static void test_tucker_speed_256(void **state)
{
    (void)state;
    struct rng r = {18};
    int c = 256, k = 9, rk = 96;
    float *w = gauss_new((size_t)c * c * k, 0.05, &r);
    float *ui = malloc((size_t)rk * c * sizeof *ui), *uo = malloc((size_t)c * rk * sizeof *uo);
    float *core = malloc((size_t)rk * rk * k * sizeof *core);
    assert_true(ui && uo && core);
    double rel = -1, t0 = seconds_now();
    assert_int_equal(tucker2_decompose(w, c, c, 3, 3, rk, rk, 10, ui, core, uo, &rel, NULL), 0);
    double dt = seconds_now() - t0;
    print_message("256x256x3x3 at (96, 96), 10 HOOI rounds: %.3f s, rel_err %.4f\n", dt, rel);
    assert_true(rel > 0 && rel < 1);
    free(ui);
    free(uo);
    free(core);
    free(w);
}

/* ---- truncated SVD ---- */

/* Householder reflection I - 2 v v^T / (v^T v) of a random v: an orthogonal matrix to build
 * matrices with known singular values. */
static double *householder_new(int n, struct rng *r)
{
    double *v = malloc((size_t)n * sizeof *v), *q = malloc((size_t)n * n * sizeof *q), vv = 0;
    assert_true(v && q);
    for (int i = 0; i < n; i++) {
        v[i] = rng_gauss(r);
        vv += v[i] * v[i];
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            q[i * n + j] = (i == j) - 2 * v[i] * v[j] / vv;
    free(v);
    return q;
}

static void test_svd_values_known(void **state)
{
    (void)state;
    struct rng r = {21};
    int rows = 9, cols = 6;
    const double sv[6] = {7.5, 4.0, 2.25, 1.0, 0.5, 0.125};
    double *p = householder_new(rows, &r), *q = householder_new(cols, &r);
    float m[9 * 6];
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            double acc = 0;
            for (int h = 0; h < cols; h++)
                acc += p[i * rows + h] * sv[h] * q[j * cols + h];
            m[i * cols + j] = (float)acc;
        }
    double s[6], st[6];
    assert_int_equal(svd_values(m, rows, cols, s, NULL), 0);
    float mt[6 * 9];
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            mt[j * rows + i] = m[i * cols + j];
    assert_int_equal(svd_values(mt, cols, rows, st, NULL), 0);
    for (int h = 0; h < 6; h++) {
        assert_true(fabs(s[h] - sv[h]) < 1e-5);
        assert_true(fabs(st[h] - sv[h]) < 1e-5);
    }
    free(p);
    free(q);
}

static void test_svd_truncate_exact_rank(void **state)
{
    (void)state;
    struct rng r = {22};
    int out = 20, in = 15, rk = 4;
    float *b0 = gauss_new((size_t)out * rk, 1, &r), *a0 = gauss_new((size_t)rk * in, 1, &r);
    float w[20 * 15];
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) {
            double acc = 0;
            for (int j = 0; j < rk; j++)
                acc += (double)b0[o * rk + j] * a0[j * in + i];
            w[o * in + i] = (float)acc;
        }
    float a[4 * 15], b[20 * 4];
    double rel = -1, what[20 * 15];
    assert_int_equal(svd_truncate(w, out, in, rk, a, b, &rel, NULL), 0);
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) {
            double acc = 0;
            for (int j = 0; j < rk; j++)
                acc += (double)b[o * rk + j] * a[j * in + i];
            what[o * in + i] = acc;
        }
    double ref = rel_diff(w, what, (size_t)out * in);
    if (!(rel < 1e-5 && ref < 1e-5))
        fail_msg("rel_err %g, rebuilt %g", rel, ref);
    free(a0);
    free(b0);
}

static void test_svd_truncate_eckart_young(void **state)
{
    (void)state;
    struct rng r = {23};
    int out = 30, in = 20;
    float *w = gauss_new((size_t)out * in, 1, &r);
    double s[20];
    assert_int_equal(svd_values(w, out, in, s, NULL), 0);
    double all = 0;
    for (int j = 0; j < in; j++)
        all += s[j] * s[j];
    float a[20 * 20], b[30 * 20];
    for (int rk = 1; rk <= in; rk += 3) {
        double rel = -1, tail = 0;
        for (int j = rk; j < in; j++)
            tail += s[j] * s[j];
        assert_int_equal(svd_truncate(w, out, in, rk, a, b, &rel, NULL), 0);
        if (fabs(rel - sqrt(tail / all)) > 1e-5)
            fail_msg("rank %d: rel_err %.8f, Eckart-Young %.8f", rk, rel, sqrt(tail / all));
        /* The balanced split: row j of A and column j of B both have norm sqrt(s_j). */
        for (int j = 0; j < rk; j++) {
            double na = 0, nb = 0;
            for (int i = 0; i < in; i++)
                na += (double)a[j * in + i] * a[j * in + i];
            for (int o = 0; o < out; o++)
                nb += (double)b[o * rk + j] * b[o * rk + j];
            assert_true(fabs(na - s[j]) < 1e-4 * s[0]);
            assert_true(fabs(nb - s[j]) < 1e-4 * s[0]);
        }
    }
    free(w);
}

/* ---- VBMF ---- */

/* U V^T (rank rk, Gaussian factors) plus Gaussian noise of deviation sigma. */
static float *lowrank_noise_new(int rows, int cols, int rk, double sigma, struct rng *r)
{
    float *u = gauss_new((size_t)rows * rk, 1, r), *v = gauss_new((size_t)cols * rk, 1, r);
    float *m = gauss_new((size_t)rows * cols, sigma, r);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            double acc = 0;
            for (int h = 0; h < rk; h++)
                acc += (double)u[i * rk + h] * v[j * rk + h];
            m[i * cols + j] += (float)acc;
        }
    free(u);
    free(v);
    return m;
}

static void test_vbmf_finds_planted_rank(void **state)
{
    (void)state;
    struct rng r = {31};
    static const int cases[][3] = {{64, 48, 5}, {48, 64, 5}, {100, 30, 5}, {40, 40, 8}, {64, 48, 1}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int *c = cases[t];
        float *m = lowrank_noise_new(c[0], c[1], c[2], 0.1, &r);
        int rank = -1;
        struct err_msg em = {{0}};
        int rc = vbmf_rank(m, c[0], c[1], &rank, &em);
        if (rc)
            fail_msg("%s", err_text(&em, rc));
        print_message("%dx%d, planted rank %d: VBMF rank %d\n", c[0], c[1], c[2], rank);
        assert_int_equal(rank, c[2]);
        free(m);
    }
}

static void test_vbmf_pure_noise_small_rank(void **state)
{
    (void)state;
    struct rng r = {32};
    static const int sizes[][2] = {{64, 48}, {200, 50}, {30, 30}, {16, 128}};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        float *m = gauss_new((size_t)sizes[t][0] * sizes[t][1], 0.7, &r);
        int rank = -1;
        assert_int_equal(vbmf_rank(m, sizes[t][0], sizes[t][1], &rank, NULL), 0);
        print_message("%dx%d noise: VBMF rank %d\n", sizes[t][0], sizes[t][1], rank);
        assert_true(rank >= 1 && rank <= 2);
        free(m);
    }
}

/* Unit noise plus components of known singular value along orthonormal directions. The EVB
 * threshold for a 64x48 matrix is sqrt(M x_) sigma = 16.53 (M = 64, x_ = 4.2719 from the zero of
 * Psi at alpha = 0.75), above the noise edge sqrt(M) + sqrt(L) = 14.93. A component of 0.6x the
 * threshold comes out near that edge (14.3 with this seed; about 15.5 in the large-size limit
 * sqrt((g^2 + M)(g^2 + L)) / g) and is not kept; one at 1.3x comes out at 23.6 and is. */
static void test_vbmf_threshold_placement(void **state)
{
    (void)state;
    struct rng r = {34};
    int rows = 64, cols = 48;
    double *p = householder_new(rows, &r), *q = householder_new(cols, &r);
    const double thr = 16.53, strong = 4 * thr;
    const double weak[2] = {0.6 * thr, 1.3 * thr};
    const int want[2] = {2, 3};
    for (int t = 0; t < 2; t++) {
        const double g[3] = {strong, 0.8 * strong, weak[t]};
        float *m = gauss_new((size_t)rows * cols, 1, &r);
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
                for (int h = 0; h < 3; h++)
                    m[i * cols + j] += (float)(g[h] * p[i * rows + h] * q[j * cols + h]);
        int rank = -1;
        double s[48];
        assert_int_equal(svd_values(m, rows, cols, s, NULL), 0);
        assert_int_equal(vbmf_rank(m, rows, cols, &rank, NULL), 0);
        print_message("weak component %.1f (observed %.2f, next %.2f): VBMF rank %d (want %d)\n",
                      weak[t], s[2], s[3], rank, want[t]);
        assert_int_equal(rank, want[t]);
        free(m);
    }
    free(p);
    free(q);
}

static void test_vbmf_zero_and_vector(void **state)
{
    (void)state;
    float z[12] = {0}, v[5] = {1, -2, 3, 0.5f, 4};
    int rank = -1;
    assert_int_equal(vbmf_rank(z, 3, 4, &rank, NULL), 0);
    assert_int_equal(rank, 1);
    rank = -1;
    assert_int_equal(vbmf_rank(v, 1, 5, &rank, NULL), 0);
    assert_int_equal(rank, 1);
}

/* A planted Tucker-2 weight plus a little noise: the mode-0 unfolding has rank rout and the
 * mode-1 one rank rin, so the two ranks come back in their own places. */
static void test_vbmf_conv_ranks_planted(void **state)
{
    (void)state;
    struct rng r = {33};
    int cout = 32, cin = 24, k = 9, rin = 3, rout = 6;
    float *w = planted_tucker_new(cout, cin, k, rin, rout, &r);
    for (size_t i = 0; i < (size_t)cout * cin * k; i++)
        w[i] += (float)(0.05 * rng_gauss(&r));
    int gi = -1, go = -1;
    assert_int_equal(vbmf_conv_ranks(w, cout, cin, 3, 3, &gi, &go, NULL), 0);
    print_message("planted (rin %d, rout %d): VBMF (%d, %d)\n", rin, rout, gi, go);
    assert_int_equal(gi, rin);
    assert_int_equal(go, rout);
    free(w);
}

/* ---- bad input ---- */

static void expect_err(int rc, int code, const struct err_msg *em, const char *needle)
{
    if (rc != code)
        fail_msg("got %s (%s), want %s", err_name(rc), em->text, err_name(code));
    if (needle && !strstr(em->text, needle))
        fail_msg("message '%s' lacks '%s'", em->text, needle);
}

static void test_tucker_bad_input(void **state)
{
    (void)state;
    float w[6 * 4 * 9], ui[64], core[512], uo[64];
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
        w[i] = (float)i / 10;
    memset(ui, 0x5a, sizeof ui);
    memset(core, 0x5a, sizeof core);
    memset(uo, 0x5a, sizeof uo);
    float ui0[64], core0[512], uo0[64];
    memcpy(ui0, ui, sizeof ui);
    memcpy(core0, core, sizeof core);
    memcpy(uo0, uo, sizeof uo);
    double rel = 42;
    struct err_msg em = {{0}};
#define T2(cout_, cin_, kh_, kw_, rin_, rout_, it_) \
    tucker2_decompose(w, cout_, cin_, kh_, kw_, rin_, rout_, it_, ui, core, uo, &rel, &em)
    expect_err(T2(6, 4, 3, 3, 0, 2, 1), ERR_RANGE, &em, "rin = 0");
    expect_err(T2(6, 4, 3, 3, 2, 0, 1), ERR_RANGE, &em, "rout = 0");
    expect_err(T2(6, 4, 3, 3, 5, 2, 1), ERR_RANGE, &em, "cin = 4");
    expect_err(T2(6, 4, 3, 3, 2, 7, 1), ERR_RANGE, &em, "rout = 7");
    expect_err(T2(6, 4, 3, 3, 2, 2, -1), ERR_RANGE, &em, "-1");
    expect_err(T2(0, 4, 3, 3, 1, 1, 1), ERR_RANGE, &em, "cout = 0");
    expect_err(T2(6, 4, -3, 3, 1, 1, 1), ERR_RANGE, &em, "kh = -3");
    /* Huge sizes are refused before the weight is read or anything allocated. */
    expect_err(T2(1 << 17, 4, 3, 3, 1, 1, 1), ERR_RANGE, &em, "131072");
    expect_err(T2(1 << 15, 1 << 15, 3, 3, 1, 1, 1), ERR_RANGE, &em, NULL);
    expect_err(T2(1 << 16, 1 << 16, 1 << 16, 1 << 16, 1, 1, 1), ERR_RANGE, &em, NULL);
    assert_int_equal(tucker2_decompose(NULL, 6, 4, 3, 3, 1, 1, 1, ui, core, uo, NULL, &em),
                     ERR_INVAL);
    w[100] = NAN;
    expect_err(T2(6, 4, 3, 3, 2, 2, 1), ERR_INVAL, &em, "100");
    w[100] = -INFINITY;
    expect_err(T2(6, 4, 3, 3, 2, 2, 1), ERR_INVAL, &em, "100");
    w[100] = 1;
#undef T2
    /* Failures leave the outputs alone. */
    assert_true(rel == 42);
    assert_memory_equal(ui, ui0, sizeof ui);
    assert_memory_equal(core, core0, sizeof core);
    assert_memory_equal(uo, uo0, sizeof uo);
    /* NULL em is allowed. */
    assert_int_equal(tucker2_decompose(w, 6, 4, 3, 3, 0, 1, 1, ui, core, uo, &rel, NULL),
                     ERR_RANGE);
}

/* A tall Gram matrix (Cout = 1<<16 gives 2^32 entries) is refused on the workspace bound. */
static void test_tucker_workspace_bound(void **state)
{
    (void)state;
    int cout = 1 << 16;
    float *w = calloc((size_t)cout, sizeof *w), ui[1], core[1];
    float *uo = calloc((size_t)cout, sizeof *uo);
    assert_true(w && uo);
    struct err_msg em = {{0}};
    int rc = tucker2_decompose(w, cout, 1, 1, 1, 1, 1, 0, ui, core, uo, NULL, &em);
    expect_err(rc, ERR_RANGE, &em, "workspace");
    free(w);
    free(uo);
}

static void test_svd_bad_input(void **state)
{
    (void)state;
    float w[8 * 5], a[64], b[64];
    double s[8], rel = 42;
    for (int i = 0; i < 40; i++)
        w[i] = (float)(i % 7) - 3;
    struct err_msg em = {{0}};
    expect_err(svd_truncate(w, 8, 5, 0, a, b, &rel, &em), ERR_RANGE, &em, "r = 0");
    expect_err(svd_truncate(w, 8, 5, 6, a, b, &rel, &em), ERR_RANGE, &em, "= 5");
    expect_err(svd_truncate(w, 0, 5, 1, a, b, &rel, &em), ERR_RANGE, &em, NULL);
    expect_err(svd_truncate(w, 1 << 20, 1 << 20, 1, a, b, &rel, &em), ERR_RANGE, &em, NULL);
    expect_err(svd_values(w, 1 << 17, 1 << 17, s, &em), ERR_RANGE, &em, NULL);
    expect_err(svd_values(w, 8, -5, s, &em), ERR_RANGE, &em, NULL);
    int rank = -7, ri = -7, ro = -7;
    expect_err(vbmf_rank(w, 1 << 17, 1 << 17, &rank, &em), ERR_RANGE, &em, NULL);
    expect_err(vbmf_conv_ranks(w, 1 << 15, 1 << 15, 3, 3, &ri, &ro, &em), ERR_RANGE, &em, NULL);
    expect_err(vbmf_conv_ranks(w, 4, 2, 0, 5, &ri, &ro, &em), ERR_RANGE, &em, NULL);
    w[17] = NAN;
    expect_err(svd_truncate(w, 8, 5, 2, a, b, &rel, &em), ERR_INVAL, &em, "17");
    expect_err(svd_values(w, 8, 5, s, &em), ERR_INVAL, &em, "17");
    expect_err(vbmf_rank(w, 8, 5, &rank, &em), ERR_INVAL, &em, "17");
    expect_err(vbmf_conv_ranks(w, 4, 2, 1, 5, &ri, &ro, &em), ERR_INVAL, &em, "17");
    assert_true(rel == 42);
    assert_int_equal(rank, -7);
    assert_int_equal(ri, -7);
    assert_int_equal(ro, -7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tucker_planted_ranks_recovered),
        cmocka_unit_test(test_tucker_full_ranks_exact),
        cmocka_unit_test(test_tucker_rel_err_matches_rebuild),
        cmocka_unit_test(test_tucker_error_above_unfolding_bound),
        cmocka_unit_test(test_tucker_hooi_never_worse_than_hosvd),
        cmocka_unit_test(test_tucker_hooi_beats_hosvd_constructed),
        cmocka_unit_test(test_tucker_factors_orthonormal),
        cmocka_unit_test(test_tucker_deterministic),
        cmocka_unit_test(test_tucker_speed_256),
        cmocka_unit_test(test_svd_values_known),
        cmocka_unit_test(test_svd_truncate_exact_rank),
        cmocka_unit_test(test_svd_truncate_eckart_young),
        cmocka_unit_test(test_vbmf_finds_planted_rank),
        cmocka_unit_test(test_vbmf_pure_noise_small_rank),
        cmocka_unit_test(test_vbmf_threshold_placement),
        cmocka_unit_test(test_vbmf_zero_and_vector),
        cmocka_unit_test(test_vbmf_conv_ranks_planted),
        cmocka_unit_test(test_tucker_bad_input),
        cmocka_unit_test(test_tucker_workspace_bound),
        cmocka_unit_test(test_svd_bad_input),
    };
    return cmocka_run_group_tests_name("tucker", tests, NULL, NULL);
}
