/* test_nn.c — nn/ engine: fast kernels against the reference on random shapes, known
 * values, BN folding, fusion, the memory plan, and graph errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "nn_testlib.h"
#include "nn/graph.h" /* nn_window_out */
#include "nn/ops.h"   /* nn_gemm_packed */

#include <math.h>
#include <pthread.h>
#include <stdio.h>

#define TOL 1e-5


static void compare_kernels(const struct nn_graph *g, int batch, const char *what)
{
    size_t n1 = 0, n2 = 0;
    float *ref = tl_run(g, batch, NN_KERNELS_REF, 99, &n1);
    float *fast = tl_run(g, batch, NN_KERNELS_FAST, 99, &n2);
    assert_non_null(ref);
    assert_non_null(fast);
    assert_int_equal(n1, n2);
    double e = tl_rel_l2(fast, ref, n1);
    if (!(e < TOL) || getenv("NN_TEST_VERBOSE"))
        fprintf(stderr, "%s: relative error %g\n", what, e);
    assert_true(e < TOL);
    free(ref);
    free(fast);
}

static void test_conv_fast_matches_ref_random(void **state)
{
    (void)state;
    uint64_t rng = 0x1234567;
    for (int t = 0; t < 60; t++) {
        struct nn_graph *g = nn_graph_new();
        int kind = tl_int(&rng, 0, 2); /* dense, grouped, depthwise */
        int group = kind == 0 ? 1 : kind == 1 ? 2 : tl_int(&rng, 2, 8);
        int cin = kind == 2 ? group : group * tl_int(&rng, 1, 6);
        int cout = kind == 2 ? group : group * tl_int(&rng, 1, 6);
        int k = tl_int(&rng, 1, 5), dil = tl_int(&rng, 1, 2), stride = tl_int(&rng, 1, 3);
        int h = tl_int(&rng, dil * (k - 1) + 1, 20), w = tl_int(&rng, dil * (k - 1) + 1, 20);
        struct nn_shape xs = tl_shape(4, 1, cin, h, w);
        assert_true(nn_graph_add_input(g, "x", &xs, NULL) >= 0);
        tl_tensor(g, "w", tl_shape(4, cout, cin / group, k, k), &rng);
        int bias = tl_int(&rng, 0, 1);
        if (bias)
            tl_tensor(g, "b", tl_shape(1, cout, 0, 0, 0), &rng);
        struct nn_node_desc d = tl_node("conv", NN_OP_CONV, "x", "y");
        d.n_params = 1 + bias;
        d.params[0] = "w";
        d.params[1] = "b";
        d.attrs.group = group;
        d.attrs.stride[0] = d.attrs.stride[1] = stride;
        d.attrs.dilation[0] = d.attrs.dilation[1] = dil;
        for (int i = 0; i < 4; i++)
            d.attrs.pad[i] = tl_int(&rng, 0, k / 2 + 1);
        assert_true(nn_graph_add_node(g, &d, NULL) >= 0);
        const char *out = "y";
        int act = tl_int(&rng, 0, 3);
        if (act) {
            enum nn_op ops[] = {NN_OP_RELU, NN_OP_RELU6, NN_OP_LEAKYRELU};
            struct nn_node_desc r = tl_node("act", ops[act - 1], "y", "z");
            r.attrs.alpha = 0.1f;
            assert_true(nn_graph_add_node(g, &r, NULL) >= 0);
            out = "z";
        }
        assert_int_equal(nn_graph_add_output(g, out, NULL), 0);
        struct err_msg em = {{0}};
        assert_int_equal(nn_graph_check(g, &em), 0);
        char what[160];
        snprintf(what, sizeof what, "conv %d->%d k%d s%d d%d g%d %dx%d act%d", cin, cout, k,
                 stride, dil, group, h, w, act);
        compare_kernels(g, tl_int(&rng, 1, 3), what);
        nn_graph_free(g);
    }
}

/* n floats in [-1, 1), drawn in order. */
static float *random_floats(size_t n, uint64_t *rng)
{
    float *p = malloc(sizeof(float) * n);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = tl_uniform(rng, -1.f, 1.f);
    return p;
}

/* Relative L2 error of one conv run through the direct kernel (the variant isa, where it
 * applies) or else nn_conv_fast, against nn_conv_ref; the scratch
 * starts as NaN so a kernel that reads what it did not write shows, and the floats past
 * the output and the scratch must stay untouched. */
#define GUARD 16
static double conv_fast_error(const struct nn_conv_geom *g, uint64_t *rng, int isa)
{
    size_t xs = (size_t)g->n * g->cin * g->h * g->w, ys = (size_t)g->n * g->cout * g->ho * g->wo;
    size_t ws = (size_t)g->cout * g->cin * g->kh * g->kw, ss = nn_conv_scratch(g);
    float *x = random_floats(xs, rng), *w = random_floats(ws, rng);
    float *b = random_floats((size_t)g->cout, rng), *ref = malloc(sizeof(float) * ys);
    float *y = malloc(sizeof(float) * (ys + GUARD)), *scratch = malloc(sizeof(float) * (ss + GUARD));
    assert_true(ref && y && scratch);
    for (size_t i = 0; i < ss + GUARD; i++)
        scratch[i] = NAN;
    for (size_t i = 0; i < ys + GUARD; i++)
        y[i] = -7.f;
    const float *bias = tl_int(rng, 0, 1) ? b : NULL;
    nn_conv_ref(g, x, w, bias, ref);
    if (nn_conv_direct_applies(g))
        nn_conv_direct_isa(g, x, w, bias, y, scratch, (enum nn_direct_isa)isa);
    else
        nn_conv_fast(g, x, w, bias, y, scratch, NULL);
    for (int i = 0; i < GUARD; i++) {
        assert_true(isnan(scratch[ss + i]));
        assert_true(y[ys + i] == -7.f);
    }
    double e = tl_rel_l2(y, ref, ys);
    free(x), free(w), free(b), free(ref), free(y), free(scratch);
    return e;
}

/* The direct small-channel kernel against the reference across the edges of where it
 * applies: 1..17 input and 1..33 output channels, kernels 1..5 (not square), strides 1
 * and 2, uneven padding, odd sizes, with and without bias, every activation, and each
 * kernel variant (AVX-512, AVX2, baseline) this CPU runs. Shapes
 * just outside its bounds go through the same dispatch and must match too. */
static void test_conv_direct_matches_ref(void **state)
{
    (void)state;
    uint64_t rng = 0xd1ec7;
    int direct = 0;
    for (int t = 0; t < 300; t++) {
        struct nn_conv_geom g = {.n = tl_int(&rng, 1, 2), .cin = tl_int(&rng, 1, 17),
                                 .cout = tl_int(&rng, 1, 33), .kh = tl_int(&rng, 1, 5),
                                 .kw = tl_int(&rng, 1, 5), .sh = tl_int(&rng, 1, 2),
                                 .sw = tl_int(&rng, 1, 2), .dh = 1, .dw = 1, .group = 1,
                                 .alpha = 0.1f};
        if (t % 3 == 0) /* the models' case: 3x3, stride 1, pad 1 */
            g.kh = g.kw = 3, g.sh = g.sw = 1;
        g.pt = t % 3 == 0 ? 1 : tl_int(&rng, 0, g.kh / 2 + 1);
        g.pl = t % 3 == 0 ? 1 : tl_int(&rng, 0, g.kw / 2 + 1);
        int pb = t % 3 == 0 ? 1 : tl_int(&rng, 0, g.kh / 2), pr = t % 3 == 0 ? 1 : tl_int(&rng, 0, g.kw / 2);
        g.h = tl_int(&rng, g.kh, 37);
        g.w = tl_int(&rng, g.kw, 53);
        g.ho = (g.h + g.pt + pb - g.kh) / g.sh + 1;
        g.wo = (g.w + g.pl + pr - g.kw) / g.sw + 1;
        g.act = (enum nn_act)tl_int(&rng, 0, 3);
        direct += nn_conv_direct_applies(&g);
        int isa = t % 4 == 1 ? NN_DIRECT_AVX2 : t % 4 == 3 ? NN_DIRECT_BASE : NN_DIRECT_BEST;
        double e = conv_fast_error(&g, &rng, isa);
        if (!(e < TOL) || getenv("NN_TEST_VERBOSE"))
            fprintf(stderr, "conv %d->%d k%dx%d s%dx%d p%d,%d,%d,%d %dx%d n%d act%d %s%d: %g\n",
                    g.cin, g.cout, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, pb, pr, g.h, g.w, g.n,
                    g.act, nn_conv_direct_applies(&g) ? "direct" : "other", isa, e);
        assert_true(e < TOL);
    }
    assert_true(direct >= 100); /* the shapes above do exercise the direct kernel */
    /* a one-column image padded on the right only: the odd stride phase misses it */
    struct nn_conv_geom g = {.n = 1, .cin = 2, .h = 3, .w = 1, .cout = 3, .ho = 2, .wo = 12,
                             .kh = 3, .kw = 3, .sh = 2, .sw = 2, .pt = 1, .pl = 0, .dh = 1,
                             .dw = 1, .group = 1, .act = NN_ACT_RELU6};
    assert_true(nn_conv_direct_applies(&g));
    for (int isa = 0; isa < 3; isa++)
        assert_true(conv_fast_error(&g, &rng, isa) < TOL);
}

/* Through the plan: a plain conv with a fused ReLU over a batch, and a Tucker-2 layer
 * whose core takes the direct kernel, as in a compressed model. */
static void test_conv_direct_in_plan(void **state)
{
    (void)state;
    uint64_t rng = 611;
    struct nn_graph *g = nn_graph_new();
    struct nn_shape xs = tl_shape(4, 1, 6, 29, 35);
    nn_graph_add_input(g, "x", &xs, NULL);
    tl_tensor(g, "w", tl_shape(4, 11, 6, 3, 3), &rng);
    tl_tensor(g, "b", tl_shape(1, 11, 0, 0, 0), &rng);
    tl_tensor(g, "ui", tl_shape(4, 11, 11, 1, 1), &rng);
    tl_tensor(g, "core", tl_shape(4, 15, 11, 3, 3), &rng);
    tl_tensor(g, "uo", tl_shape(4, 21, 15, 1, 1), &rng);
    struct nn_node_desc c = tl_node("conv", NN_OP_CONV, "x", "y");
    c.n_params = 2;
    c.params[0] = "w";
    c.params[1] = "b";
    c.attrs.pad[0] = c.attrs.pad[1] = c.attrs.pad[2] = c.attrs.pad[3] = 1;
    assert_true(nn_graph_add_node(g, &c, NULL) >= 0);
    struct nn_node_desc r = tl_node("relu", NN_OP_RELU, "y", "z");
    assert_true(nn_graph_add_node(g, &r, NULL) >= 0);
    struct nn_node_desc d = tl_tucker("z", "o");
    assert_true(nn_graph_add_node(g, &d, NULL) >= 0);
    nn_graph_add_output(g, "o", NULL);
    compare_kernels(g, 3, "direct conv and tucker core");
    nn_graph_free(g);
}

/* The fused Tucker-2 kernel against three reference convs, with its scratch NaN and the
 * floats past its output and scratch watched, as conv_fast_error does. */
static double tucker_fused_error(const struct nn_tucker_geom *t, uint64_t *rng)
{
    size_t xs = (size_t)t->in.cin * t->in.h * t->in.w;
    size_t m1 = (size_t)t->in.cout * t->in.h * t->in.w;
    size_t m2 = (size_t)t->core.cout * t->core.ho * t->core.wo;
    size_t ys = (size_t)t->out.cout * t->out.ho * t->out.wo;
    size_t ss = nn_tucker_fused_scratch(t);
    float *x = random_floats(xs, rng), *u = random_floats((size_t)t->in.cout * t->in.cin, rng);
    float *core = random_floats((size_t)t->core.cout * t->core.cin * t->core.kh * t->core.kw, rng);
    float *v = random_floats((size_t)t->out.cout * t->out.cin, rng);
    float *b = random_floats((size_t)t->out.cout, rng);
    float *mid1 = malloc(sizeof(float) * m1), *mid2 = malloc(sizeof(float) * m2);
    float *ref = malloc(sizeof(float) * ys), *y = malloc(sizeof(float) * (ys + GUARD));
    float *scratch = malloc(sizeof(float) * (ss + GUARD));
    assert_true(mid1 && mid2 && ref && y && scratch);
    for (size_t i = 0; i < ss + GUARD; i++)
        scratch[i] = NAN;
    for (size_t i = 0; i < ys + GUARD; i++)
        y[i] = -7.f;
    const float *bias = tl_int(rng, 0, 1) ? b : NULL;
    nn_conv_ref(&t->in, x, u, NULL, mid1);
    nn_conv_ref(&t->core, mid1, core, NULL, mid2);
    nn_conv_ref(&t->out, mid2, v, bias, ref);
    nn_tucker_fused(t, x, u, core, v, bias, y, scratch);
    for (int i = 0; i < GUARD; i++) {
        assert_true(isnan(scratch[ss + i]));
        assert_true(y[ys + i] == -7.f);
    }
    double e = tl_rel_l2(y, ref, ys);
    free(x), free(u), free(core), free(v), free(b), free(mid1), free(mid2), free(ref), free(y),
        free(scratch);
    return e;
}

static struct nn_tucker_geom tucker_geom_of(int cin, int r1, int r2, int cout, int h, int w,
                                            int kh, int kw, int sh, int sw, int pt, int pl,
                                            int pb, int pr, enum nn_act act)
{
    struct nn_tucker_geom t;
    t.core = (struct nn_conv_geom){.n = 1, .cin = r1, .h = h, .w = w, .cout = r2,
                                   .ho = (h + pt + pb - kh) / sh + 1,
                                   .wo = (w + pl + pr - kw) / sw + 1, .kh = kh, .kw = kw,
                                   .sh = sh, .sw = sw, .pt = pt, .pl = pl, .dh = 1, .dw = 1,
                                   .group = 1};
    t.in = (struct nn_conv_geom){.n = 1, .cin = cin, .h = h, .w = w, .cout = r1, .ho = h,
                                 .wo = w, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1,
                                 .group = 1};
    t.out = (struct nn_conv_geom){.n = 1, .cin = r2, .h = t.core.ho, .w = t.core.wo,
                                  .cout = cout, .ho = t.core.ho, .wo = t.core.wo, .kh = 1,
                                  .kw = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .group = 1,
                                  .act = act, .alpha = 0.1f};
    return t;
}

/* Random Tucker-2 layers within and around the fused kernel's bounds (1..40 channels
 * each side, ranks up to the direct core's limits, kernels 1..5, strides 1 and 2, uneven
 * padding, maps from a few rows to several bands, every activation), and the first
 * motion layer of a compressed model as it is. */
static void test_tucker_fused_matches_ref(void **state)
{
    (void)state;
    uint64_t rng = 0x7c4e;
    int fused = 0;
    for (int i = 0; i < 200; i++) {
        int kh = tl_int(&rng, 1, 5), kw = tl_int(&rng, 2, 5), sh = tl_int(&rng, 1, 2);
        int sw = tl_int(&rng, 1, 2), h = tl_int(&rng, kh, 70), w = tl_int(&rng, kw + 12, 90);
        int pt = tl_int(&rng, 0, kh / 2 + 1), pl = tl_int(&rng, 0, kw / 2 + 1);
        int pb = tl_int(&rng, 0, kh / 2), pr = tl_int(&rng, 0, kw / 2);
        struct nn_tucker_geom t = tucker_geom_of(
            tl_int(&rng, 1, 40), tl_int(&rng, 1, 12), tl_int(&rng, 1, 33), tl_int(&rng, 1, 40),
            h, w, kh, kw, sh, sw, pt, pl, pb, pr, (enum nn_act)tl_int(&rng, 0, 3));
        if (!nn_tucker_fused_applies(&t))
            continue;
        fused++;
        double e = tucker_fused_error(&t, &rng);
        if (!(e < TOL))
            fprintf(stderr, "tucker %d/%d/%d/%d %dx%d k%dx%d s%dx%d p%d,%d: %g\n", t.in.cin,
                    t.in.cout, t.core.cout, t.out.cout, h, w, kh, kw, sh, sw, pt, pl, e);
        assert_true(e < TOL);
    }
    assert_true(fused >= 100);
    struct nn_tucker_geom m0 = tucker_geom_of(16, 8, 6, 13, 112, 112, 3, 3, 1, 1, 1, 1, 1, 1,
                                              NN_ACT_RELU);
    assert_true(nn_tucker_fused_applies(&m0));
    assert_true(tucker_fused_error(&m0, &rng) < TOL);
    /* a 1x1 core, and a core too wide for the direct kernel, stay on the three-conv path */
    m0.core.kh = m0.core.kw = 1, m0.core.pt = m0.core.pl = 0;
    assert_false(nn_tucker_fused_applies(&m0));
    struct nn_tucker_geom wide = tucker_geom_of(16, 40, 40, 13, 56, 56, 3, 3, 1, 1, 1, 1, 1, 1,
                                                NN_ACT_NONE);
    assert_false(nn_tucker_fused_applies(&wide));
}

/* Layers big enough to take the Winograd path: fast (Winograd) against reference. */
static void test_winograd_matches_ref(void **state)
{
    (void)state;
    uint64_t rng = 4242;
    /* even, odd and wide maps for F(2x2,3x3); maps of 7x7 tiles and more take F(4x4,3x3) */
    const int hw[5][3] = {{16, 16, 128}, {15, 13, 128}, {17, 30, 128}, {28, 28, 64}, {30, 27, 48}};
    for (int t = 0; t < 5; t++) {
        struct nn_graph *g = nn_graph_new();
        int c = hw[t][2];
        struct nn_shape xs = tl_shape(4, 1, c, hw[t][0], hw[t][1]);
        nn_graph_add_input(g, "x", &xs, NULL);
        tl_tensor(g, "w", tl_shape(4, c + 8, c, 3, 3), &rng);
        tl_tensor(g, "b", tl_shape(1, c + 8, 0, 0, 0), &rng);
        struct nn_node_desc d = tl_node("conv", NN_OP_CONV, "x", "y");
        d.n_params = 2;
        d.params[0] = "w";
        d.params[1] = "b";
        d.attrs.pad[0] = d.attrs.pad[1] = d.attrs.pad[2] = d.attrs.pad[3] = (t == 2 || t == 4) ? 0 : 1;
        assert_true(nn_graph_add_node(g, &d, NULL) >= 0);
        struct nn_node_desc r = tl_node("relu", NN_OP_RELU, "y", "z");
        assert_true(nn_graph_add_node(g, &r, NULL) >= 0);
        nn_graph_add_output(g, "z", NULL);
        compare_kernels(g, t % 3 + 1, "winograd conv");
        nn_graph_free(g);
    }
    /* and inside a Tucker-2 layer, whose core is 128 -> 128 */
    struct nn_graph *g = nn_graph_new();
    struct nn_shape xs = tl_shape(4, 1, 32, 16, 16);
    nn_graph_add_input(g, "x", &xs, NULL);
    tl_tensor(g, "ui", tl_shape(4, 128, 32, 1, 1), &rng);
    tl_tensor(g, "core", tl_shape(4, 128, 128, 3, 3), &rng);
    tl_tensor(g, "uo", tl_shape(4, 48, 128, 1, 1), &rng);
    struct nn_node_desc d = tl_tucker("x", "y");
    assert_true(nn_graph_add_node(g, &d, NULL) >= 0);
    nn_graph_add_output(g, "y", NULL);
    compare_kernels(g, 2, "winograd tucker core");
    nn_graph_free(g);
}

/* A residual add followed by ReLU runs as one fused add. */
static void test_add_relu_fusion(void **state)
{
    (void)state;
    struct nn_graph *g = nn_graph_new();
    struct nn_shape s = tl_shape(2, 1, 4, 0, 0);
    nn_graph_add_input(g, "a", &s, NULL);
    nn_graph_add_input(g, "b", &s, NULL);
    struct nn_node_desc ad = tl_node("add", NN_OP_ADD, "a", "s");
    ad.n_in = 2;
    ad.in[1] = "b";
    struct nn_node_desc r = tl_node("relu", NN_OP_RELU6, "s", "y");
    assert_true(nn_graph_add_node(g, &ad, NULL) >= 0);
    assert_true(nn_graph_add_node(g, &r, NULL) >= 0);
    nn_graph_add_output(g, "y", NULL);
    struct nn_plan *p;
    struct nn_ctx *c;
    assert_int_equal(nn_plan_new(g, 1, &p, NULL), 0);
    nn_ctx_new(p, &c);
    float a[4] = {-3, 1, 5, 2}, b[4] = {1, 1, 4, -5};
    memcpy(nn_ctx_input(c, 0), a, sizeof a);
    memcpy(nn_ctx_input(c, 1), b, sizeof b);
    nn_run(c);
    float want[4] = {0, 2, 6, 0};
    assert_memory_equal(nn_ctx_output(c, 0), want, sizeof want);
    nn_ctx_free(c);
    nn_plan_free(p);
    nn_graph_free(g);
}

/* The packed-weight GEMM against a double-precision loop: ragged row panels, every tile
 * width, K across block boundaries. */
static void test_gemm_packed_matches_ref(void **state)
{
    (void)state;
    uint64_t rng = 2024;
    for (int t = 0; t < 30; t++) {
        int m = tl_int(&rng, 1, 100), n = tl_int(&rng, 1, 64), k = tl_int(&rng, 1, 600);
        float *a = malloc(sizeof(float) * (size_t)m * k), *b = malloc(sizeof(float) * (size_t)k * n);
        float *c = malloc(sizeof(float) * (size_t)m * n), *want = malloc(sizeof(float) * (size_t)m * n);
        float *ap = aligned_alloc(64, sizeof(float) * nn_gemm_packed_floats(m, k) + 64);
        for (int i = 0; i < m * k; i++)
            a[i] = tl_uniform(&rng, -1, 1);
        for (int i = 0; i < k * n; i++)
            b[i] = tl_uniform(&rng, -1, 1);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double acc = 0;
                for (int x = 0; x < k; x++)
                    acc += (double)a[i * k + x] * b[x * n + j];
                want[i * n + j] = (float)acc;
            }
        nn_gemm_pack_a(a, m, k, ap);
        nn_gemm_packed(m, n, k, ap, b, n, c, n);
        double e = tl_rel_l2(c, want, (size_t)m * n);
        if (!(e < TOL))
            fprintf(stderr, "packed gemm %dx%dx%d: relative error %g\n", m, n, k, e);
        assert_true(e < TOL);
        free(a);
        free(b);
        free(c);
        free(want);
        free(ap);
    }
}

/* Small maps take the packed path when the CPU has it: fast against reference. */
static void test_small_map_convs_match_ref(void **state)
{
    (void)state;
    uint64_t rng = 77;
    const int cfg[3][4] = {{64, 40, 3, 2}, {96, 64, 3, 1}, {72, 33, 1, 2}}; /* cin cout k stride */
    for (int t = 0; t < 3; t++) {
        struct nn_graph *g = nn_graph_new();
        struct nn_shape xs = tl_shape(4, 1, cfg[t][0], 14, 14);
        nn_graph_add_input(g, "x", &xs, NULL);
        tl_tensor(g, "w", tl_shape(4, cfg[t][1], cfg[t][0], cfg[t][2], cfg[t][2]), &rng);
        tl_tensor(g, "b", tl_shape(1, cfg[t][1], 0, 0, 0), &rng);
        struct nn_node_desc d = tl_node("conv", NN_OP_CONV, "x", "y");
        d.n_params = 2;
        d.params[0] = "w";
        d.params[1] = "b";
        d.attrs.stride[0] = d.attrs.stride[1] = cfg[t][3];
        d.attrs.pad[0] = d.attrs.pad[1] = d.attrs.pad[2] = d.attrs.pad[3] = cfg[t][2] / 2;
        assert_true(nn_graph_add_node(g, &d, NULL) >= 0);
        nn_graph_add_output(g, "y", NULL);
        compare_kernels(g, 2, "small-map conv");
        nn_graph_free(g);
    }
}

static void test_conv_ref_known_values(void **state)
{
    (void)state;
    struct nn_graph *g = nn_graph_new();
    struct nn_shape xs = tl_shape(4, 1, 1, 3, 3), ws = tl_shape(4, 1, 1, 2, 2);
    nn_graph_add_input(g, "x", &xs, NULL);
    float ones[4] = {1, 1, 1, 1};
    nn_graph_add_tensor(g, "w", &ws, ones, NULL);
    struct nn_node_desc d = tl_node("c", NN_OP_CONV, "x", "y");
    d.n_params = 1;
    d.params[0] = "w";
    assert_true(nn_graph_add_node(g, &d, NULL) >= 0);
    nn_graph_add_output(g, "y", NULL);
    for (int k = 0; k < 2; k++) {
        struct nn_plan *p;
        struct nn_ctx *c;
        assert_int_equal(nn_plan_new(g, 1, &p, NULL), 0);
        assert_int_equal(nn_ctx_new(p, &c), 0);
        nn_ctx_set_kernels(c, k ? NN_KERNELS_FAST : NN_KERNELS_REF);
        for (int i = 0; i < 9; i++)
            nn_ctx_input(c, 0)[i] = (float)(i + 1);
        nn_run(c);
        const float *y = nn_ctx_output(c, 0);
        float want[4] = {12, 16, 24, 28};
        for (int i = 0; i < 4; i++)
            assert_float_equal(y[i], want[i], 1e-6);
        nn_ctx_free(c);
        nn_plan_free(p);
    }
    nn_graph_free(g);
}

/* A Tucker-2 conv equals its three convolutions run one after the other. */
static void test_tucker_equals_three_convs(void **state)
{
    (void)state;
    uint64_t rng = 77;
    struct nn_graph *a = nn_graph_new(), *b = nn_graph_new();
    struct nn_shape xs = tl_shape(4, 1, 12, 11, 9);
    struct nn_shape sh[4] = {tl_shape(4, 5, 12, 1, 1), tl_shape(4, 4, 5, 3, 3),
                             tl_shape(4, 10, 4, 1, 1), tl_shape(1, 10, 0, 0, 0)};
    const char *names[4] = {"ui", "core", "uo", "bias"};
    for (int i = 0; i < 4; i++) {
        uint64_t r = rng + (uint64_t)i;
        tl_tensor(a, names[i], sh[i], &r);
        r = rng + (uint64_t)i;
        tl_tensor(b, names[i], sh[i], &r);
    }
    nn_graph_add_input(a, "x", &xs, NULL);
    nn_graph_add_input(b, "x", &xs, NULL);
    struct nn_node_desc t = tl_node("t", NN_OP_TUCKERCONV, "x", "y");
    t.n_params = 4;
    for (int i = 0; i < 4; i++)
        t.params[i] = names[i];
    t.attrs.stride[0] = 2;
    t.attrs.pad[0] = t.attrs.pad[1] = t.attrs.pad[2] = t.attrs.pad[3] = 1;
    assert_true(nn_graph_add_node(a, &t, NULL) >= 0);
    nn_graph_add_output(a, "y", NULL);

    struct nn_node_desc c1 = tl_node("c1", NN_OP_CONV, "x", "m1");
    c1.n_params = 1;
    c1.params[0] = "ui";
    struct nn_node_desc c2 = tl_node("c2", NN_OP_CONV, "m1", "m2");
    c2.n_params = 1;
    c2.params[0] = "core";
    c2.attrs = t.attrs;
    struct nn_node_desc c3 = tl_node("c3", NN_OP_CONV, "m2", "y");
    c3.n_params = 2;
    c3.params[0] = "uo";
    c3.params[1] = "bias";
    assert_true(nn_graph_add_node(b, &c1, NULL) >= 0);
    assert_true(nn_graph_add_node(b, &c2, NULL) >= 0);
    assert_true(nn_graph_add_node(b, &c3, NULL) >= 0);
    nn_graph_add_output(b, "y", NULL);

    size_t na, nb;
    float *ya = tl_run(a, 2, NN_KERNELS_FAST, 5, &na);
    float *yb = tl_run(b, 2, NN_KERNELS_FAST, 5, &nb);
    assert_int_equal(na, nb);
    assert_int_equal(na, 2 * 10 * 6 * 9); /* stride 2 rows, 1 column */
    assert_true(tl_rel_l2(ya, yb, na) < 1e-6);
    free(ya);
    free(yb);
    compare_kernels(a, 3, "tucker");

    struct nn_layer_info li[4];
    assert_int_equal(nn_graph_layers(a, li, 4, NULL), 1);
    /* 12*5 per input pixel, 5*4*9 and 4*10 per output pixel (6x9 outputs) */
    assert_int_equal(li[0].flops, 2 * (11 * 9 * 12 * 5 + 54 * 5 * 4 * 9 + 54 * 4 * 10));
    assert_int_equal(li[0].params, 60 + 180 + 40 + 10);
    nn_graph_free(a);
    nn_graph_free(b);
}

static struct nn_graph *gemm_graph(int in, int out, int bias, uint64_t *rng)
{
    struct nn_graph *g = nn_graph_new();
    struct nn_shape xs = tl_shape(2, 1, in, 0, 0);
    nn_graph_add_input(g, "x", &xs, NULL);
    tl_tensor(g, "w", tl_shape(2, out, in, 0, 0), rng);
    tl_tensor(g, "b", tl_shape(1, out, 0, 0, 0), rng);
    struct nn_node_desc d = tl_node("fc", NN_OP_GEMM, "x", "y");
    d.n_params = 1 + bias;
    d.params[0] = "w";
    d.params[1] = "b";
    nn_graph_add_node(g, &d, NULL);
    nn_graph_add_output(g, "y", NULL);
    return g;
}

static void test_gemm_fast_matches_ref(void **state)
{
    (void)state;
    uint64_t rng = 5;
    for (int t = 0; t < 10; t++) {
        struct nn_graph *g = gemm_graph(tl_int(&rng, 1, 300), tl_int(&rng, 1, 50), t & 1, &rng);
        assert_int_equal(nn_graph_check(g, NULL), 0);
        compare_kernels(g, tl_int(&rng, 1, 4), "gemm");
        nn_graph_free(g);
    }
}

static float *run_pool(enum nn_op op, const struct nn_attrs *a, const float *x, int h, int w,
                       struct nn_shape *ys)
{
    struct nn_graph *g = nn_graph_new();
    struct nn_shape xs = tl_shape(4, 1, 1, h, w);
    nn_graph_add_input(g, "x", &xs, NULL);
    struct nn_node_desc d = tl_node("p", op, "x", "y");
    d.attrs = *a;
    assert_true(nn_graph_add_node(g, &d, NULL) >= 0);
    nn_graph_add_output(g, "y", NULL);
    struct nn_plan *p;
    struct nn_ctx *c;
    assert_int_equal(nn_plan_new(g, 1, &p, NULL), 0);
    nn_ctx_new(p, &c);
    memcpy(nn_ctx_input(c, 0), x, sizeof(float) * (size_t)(h * w));
    nn_run(c);
    *ys = nn_plan_output_shape(p, 0);
    size_t n = (size_t)nn_shape_elems(ys);
    float *y = malloc(n * sizeof(float));
    memcpy(y, nn_ctx_output(c, 0), n * sizeof(float));
    nn_ctx_free(c);
    nn_plan_free(p);
    nn_graph_free(g);
    return y;
}

static void test_pools_known_values(void **state)
{
    (void)state;
    float x[16];
    for (int i = 0; i < 16; i++)
        x[i] = (float)i; /* 4x4 */
    struct nn_attrs a;
    nn_attrs_default(&a);
    a.kernel[0] = a.kernel[1] = 2;
    a.stride[0] = a.stride[1] = 2;
    struct nn_shape ys;
    float *y = run_pool(NN_OP_MAXPOOL, &a, x, 4, 4, &ys);
    assert_int_equal(ys.d[2], 2);
    assert_float_equal(y[0], 5, 0);
    assert_float_equal(y[3], 15, 0);
    free(y);
    /* 3x3 average with pad 1: the corner sees 4 values; 9 counted when pads count. */
    a.kernel[0] = a.kernel[1] = 3;
    a.stride[0] = a.stride[1] = 1;
    a.pad[0] = a.pad[1] = a.pad[2] = a.pad[3] = 1;
    y = run_pool(NN_OP_AVGPOOL, &a, x, 4, 4, &ys);
    assert_int_equal(ys.d[2], 4);
    assert_float_equal(y[0], (0 + 1 + 4 + 5) / 4.f, 1e-6);
    free(y);
    a.count_include_pad = 1;
    y = run_pool(NN_OP_AVGPOOL, &a, x, 4, 4, &ys);
    assert_float_equal(y[0], (0 + 1 + 4 + 5) / 9.f, 1e-6);
    free(y);
    /* ceil_mode: 5 wide, kernel 2 stride 2 -> 3 outputs instead of 2 */
    nn_attrs_default(&a);
    a.kernel[0] = a.kernel[1] = 2;
    a.stride[0] = a.stride[1] = 2;
    a.ceil_mode = 1;
    float x5[25];
    for (int i = 0; i < 25; i++)
        x5[i] = (float)i;
    y = run_pool(NN_OP_MAXPOOL, &a, x5, 5, 5, &ys);
    assert_int_equal(ys.d[3], 3);
    assert_float_equal(y[2], 9, 0);
    assert_float_equal(y[8], 24, 0);
    free(y);
    y = run_pool(NN_OP_GLOBALAVGPOOL, &a, x, 4, 4, &ys);
    assert_int_equal(ys.d[2], 1);
    assert_float_equal(y[0], 7.5f, 1e-6);
    free(y);
}

/* One max pool on input xs (kernel k, stride st, dilation dil, pads up to max_pad, ceil mode
 * drawn), fast against reference when the geometry is valid. */
static void maxpool_case(uint64_t *rng, struct nn_shape xs, int k, int st, int dil, int max_pad,
                         const char *what)
{
    struct nn_graph *g = nn_graph_new();
    nn_graph_add_input(g, "x", &xs, NULL);
    struct nn_node_desc d = tl_node("pool", NN_OP_MAXPOOL, "x", "y");
    d.attrs.kernel[0] = d.attrs.kernel[1] = k;
    d.attrs.stride[0] = d.attrs.stride[1] = st;
    d.attrs.dilation[0] = d.attrs.dilation[1] = dil;
    for (int i = 0; i < 4; i++)
        d.attrs.pad[i] = tl_int(rng, 0, max_pad);
    d.attrs.ceil_mode = tl_int(rng, 0, 1);
    assert_true(nn_graph_add_node(g, &d, NULL) >= 0);
    nn_graph_add_output(g, "y", NULL);
    if (nn_graph_check(g, NULL) == 0)
        compare_kernels(g, tl_int(rng, 1, 2), what);
    nn_graph_free(g);
}

static void test_maxpool_fast_matches_ref(void **state)
{
    (void)state;
    uint64_t rng = 555;
    for (int t = 0; t < 40; t++) {
        int k = tl_int(&rng, 1, 4), dil = tl_int(&rng, 1, 2);
        int span = dil * (k - 1) + 1;
        struct nn_shape xs = tl_shape(4, 1, tl_int(&rng, 1, 5), tl_int(&rng, span, 19),
                                      tl_int(&rng, span, 19));
        maxpool_case(&rng, xs, k, tl_int(&rng, 1, 3), dil, k - 1, "maxpool");
    }
    /* 2x2 stride 2 has a loop of its own: rows of 16 to 40 outputs, padded and unpadded, odd
     * sizes in ceil mode */
    for (int t = 0; t < 16; t++) {
        struct nn_shape xs = tl_shape(4, 1, tl_int(&rng, 1, 3), tl_int(&rng, 2, 9),
                                      tl_int(&rng, 32, 81));
        maxpool_case(&rng, xs, 2, 2, 1, t % 2, "maxpool 2x2/2");
    }
}

static void test_window_out(void **state)
{
    (void)state;
    assert_int_equal(nn_window_out(224, 7, 2, 3, 3, 1, 0), 112);
    assert_int_equal(nn_window_out(112, 3, 2, 1, 1, 1, 0), 56);
    assert_int_equal(nn_window_out(3, 5, 1, 0, 0, 1, 0), 0);
    assert_int_equal(nn_window_out(5, 3, 1, 0, 0, 2, 0), 1);
}

/* The classifier tail: softmax, weighted sum of two streams, mean over segments. */
static void test_fusion_tail_known_values(void **state)
{
    (void)state;
    struct nn_graph *g = nn_graph_new();
    struct nn_shape s = tl_shape(2, 1, 3, 0, 0);
    nn_graph_add_input(g, "a", &s, NULL);
    nn_graph_add_input(g, "b", &s, NULL);
    struct nn_node_desc sa = tl_node("sa", NN_OP_SOFTMAX, "a", "pa");
    struct nn_node_desc sb = tl_node("sb", NN_OP_SOFTMAX, "b", "pb");
    struct nn_node_desc f = tl_node("fuse", NN_OP_WSUM, "pa", "f");
    f.n_in = 2;
    f.in[1] = "pb";
    f.attrs.weights[0] = 0.25f;
    f.attrs.weights[1] = 0.75f;
    struct nn_node_desc m = tl_node("mean", NN_OP_BATCHMEAN, "f", "y");
    assert_true(nn_graph_add_node(g, &sa, NULL) >= 0);
    assert_true(nn_graph_add_node(g, &sb, NULL) >= 0);
    assert_true(nn_graph_add_node(g, &f, NULL) >= 0);
    assert_true(nn_graph_add_node(g, &m, NULL) >= 0);
    nn_graph_add_output(g, "y", NULL);
    struct nn_plan *p;
    struct nn_ctx *c;
    assert_int_equal(nn_plan_new(g, 2, &p, NULL), 0);
    nn_ctx_new(p, &c);
    float av[6] = {0, 0, 0, 1000, 0, 0}; /* uniform; then one-hot (and no overflow) */
    float bv[6] = {0, 0, 1000, 0, 0, 1000};
    memcpy(nn_ctx_input(c, 0), av, sizeof av);
    memcpy(nn_ctx_input(c, 1), bv, sizeof bv);
    nn_run(c);
    struct nn_shape ys = nn_plan_output_shape(p, 0);
    assert_int_equal(ys.d[0], 1);
    assert_int_equal(ys.d[1], 3);
    const float *y = nn_ctx_output(c, 0);
    float want0 = (0.25f * (1 / 3.f + 1) + 0) / 2;
    float want2 = (0.25f * (1 / 3.f) + 0.75f * 2) / 2;
    assert_float_equal(y[0], want0, 1e-6);
    assert_float_equal(y[2], want2, 1e-6);
    assert_float_equal(y[0] + y[1] + y[2], 1.0f, 1e-6);
    nn_ctx_free(c);
    nn_plan_free(p);
    nn_graph_free(g);
}

static void test_concat_add_known_values(void **state)
{
    (void)state;
    struct nn_graph *g = nn_graph_new();
    struct nn_shape s1 = tl_shape(4, 1, 1, 1, 2), s2 = tl_shape(4, 1, 2, 1, 2);
    nn_graph_add_input(g, "a", &s1, NULL);
    nn_graph_add_input(g, "b", &s2, NULL);
    struct nn_node_desc c = tl_node("cat", NN_OP_CONCAT, "a", "ab");
    c.n_in = 2;
    c.in[1] = "b";
    struct nn_node_desc ad = tl_node("add", NN_OP_ADD, "ab", "y");
    ad.n_in = 2;
    ad.in[1] = "ab";
    struct nn_node_desc fl = tl_node("flat", NN_OP_FLATTEN, "y", "z");
    assert_true(nn_graph_add_node(g, &c, NULL) >= 0);
    assert_true(nn_graph_add_node(g, &ad, NULL) >= 0);
    assert_true(nn_graph_add_node(g, &fl, NULL) >= 0);
    nn_graph_add_output(g, "z", NULL);
    struct nn_plan *p;
    struct nn_ctx *ctx;
    assert_int_equal(nn_plan_new(g, 2, &p, NULL), 0);
    nn_ctx_new(p, &ctx);
    float a[4] = {1, 2, 3, 4}, b[8] = {10, 20, 30, 40, 50, 60, 70, 80};
    memcpy(nn_ctx_input(ctx, 0), a, sizeof a);
    memcpy(nn_ctx_input(ctx, 1), b, sizeof b);
    nn_run(ctx);
    struct nn_shape zs = nn_plan_output_shape(p, 0);
    assert_int_equal(zs.ndim, 2);
    assert_int_equal(zs.d[1], 6);
    float want[12] = {2, 4, 20, 40, 60, 80, 6, 8, 100, 120, 140, 160};
    const float *z = nn_ctx_output(ctx, 0);
    for (int i = 0; i < 12; i++)
        assert_float_equal(z[i], want[i], 0);
    nn_ctx_free(ctx);
    nn_plan_free(p);
    nn_graph_free(g);
}

/* conv -> BN -> ReLU: folding the BN leaves the output unchanged. */
static void test_bn_fold_preserves_output(void **state)
{
    (void)state;
    uint64_t rng = 31;
    struct nn_graph *g = nn_graph_new();
    struct nn_shape xs = tl_shape(4, 1, 3, 10, 10);
    nn_graph_add_input(g, "x", &xs, NULL);
    tl_tensor(g, "w", tl_shape(4, 8, 3, 3, 3), &rng);
    const char *bn_names[4] = {"gamma", "beta", "mean", "var"};
    for (int i = 0; i < 3; i++)
        tl_tensor(g, bn_names[i], tl_shape(1, 8, 0, 0, 0), &rng);
    float var[8];
    for (int i = 0; i < 8; i++)
        var[i] = tl_uniform(&rng, 0.1f, 2.f);
    struct nn_shape vs = tl_shape(1, 8, 0, 0, 0);
    nn_graph_add_tensor(g, "var", &vs, var, NULL);
    struct nn_node_desc c = tl_node("conv", NN_OP_CONV, "x", "c");
    c.n_params = 1;
    c.params[0] = "w";
    c.attrs.pad[0] = c.attrs.pad[1] = c.attrs.pad[2] = c.attrs.pad[3] = 1;
    struct nn_node_desc b = tl_node("bn", NN_OP_BATCHNORM, "c", "b");
    b.n_params = 4;
    memcpy(b.params, bn_names, sizeof bn_names);
    struct nn_node_desc r = tl_node("relu", NN_OP_RELU, "b", "y");
    assert_true(nn_graph_add_node(g, &c, NULL) >= 0);
    assert_true(nn_graph_add_node(g, &b, NULL) >= 0);
    assert_true(nn_graph_add_node(g, &r, NULL) >= 0);
    nn_graph_add_output(g, "y", NULL);
    size_t n1, n2;
    float *before = tl_run(g, 2, NN_KERNELS_REF, 3, &n1);
    assert_int_equal(nn_graph_fold_bn(g, NULL), 0);
    assert_int_equal(nn_graph_fold_bn(g, NULL), 0); /* idempotent */
    float *after = tl_run(g, 2, NN_KERNELS_FAST, 3, &n2);
    assert_int_equal(n1, n2);
    double e = tl_rel_l2(after, before, n1);
    assert_true(e < TOL);
    struct nn_layer_info li[3];
    assert_int_equal(nn_graph_layers(g, li, 3, NULL), 3);
    assert_int_equal(li[1].flops, 0); /* folded */
    struct nn_node_view v;
    assert_int_equal(nn_graph_node_view(g, 1, &v), 0);
    assert_string_equal(v.name, b.name);
    assert_int_equal(v.op, NN_OP_BATCHNORM);
    assert_string_equal(v.in[0], b.in[0]);
    assert_string_equal(v.out, "b");
    assert_int_equal(v.n_params, 4);
    assert_true(v.folded);
    assert_int_equal(nn_graph_node_view(g, 3, &v), ERR_RANGE);
    assert_int_equal(nn_graph_node_view(g, -1, &v), ERR_RANGE);
    struct nn_shape ts;
    assert_int_equal(nn_graph_node_view(g, 0, &v), 0);
    assert_non_null(nn_graph_tensor(g, v.params[0], &ts));
    assert_int_equal(ts.ndim, 4);
    assert_null(nn_graph_tensor(g, "no such tensor", &ts));
    free(before);
    free(after);
    nn_graph_free(g);
}

/* A long chain must not need memory for every value at once. */
static void test_plan_reuses_memory(void **state)
{
    (void)state;
    uint64_t rng = 8;
    struct nn_graph *g = nn_graph_new();
    struct nn_shape xs = tl_shape(4, 1, 8, 32, 32);
    nn_graph_add_input(g, "x", &xs, NULL);
    tl_tensor(g, "w", tl_shape(4, 8, 8, 3, 3), &rng);
    char in[16] = "x", out[16], name[16];
    for (int i = 0; i < 10; i++) {
        snprintf(out, sizeof out, "v%d", i);
        snprintf(name, sizeof name, "c%d", i);
        struct nn_node_desc d = tl_node(name, NN_OP_CONV, in, out);
        d.n_params = 1;
        d.params[0] = "w";
        d.attrs.pad[0] = d.attrs.pad[1] = d.attrs.pad[2] = d.attrs.pad[3] = 1;
        assert_true(nn_graph_add_node(g, &d, NULL) >= 0);
        strcpy(in, out);
    }
    nn_graph_add_output(g, in, NULL);
    struct nn_plan *p;
    assert_int_equal(nn_plan_new(g, 1, &p, NULL), 0);
    size_t value_bytes = 8 * 32 * 32 * sizeof(float);
    size_t im2col = 8 * 9 * 32 * 32 * sizeof(float);
    /* input + two live values + im2col scratch, not eleven values */
    assert_true(nn_plan_workspace_bytes(p) <= 3 * value_bytes + im2col + 4 * 64);
    nn_plan_free(p);
    compare_kernels(g, 1, "chain");
    nn_graph_free(g);
}

/* Running twice gives the same output: inputs are not clobbered by the plan. */
static void test_run_is_repeatable(void **state)
{
    (void)state;
    uint64_t rng = 9;
    struct nn_graph *g = gemm_graph(20, 7, 1, &rng);
    struct nn_plan *p;
    struct nn_ctx *c;
    assert_int_equal(nn_plan_new(g, 3, &p, NULL), 0);
    nn_ctx_new(p, &c);
    for (int i = 0; i < 60; i++)
        nn_ctx_input(c, 0)[i] = (float)i / 10;
    nn_ctx_enable_timing(c, 1);
    nn_run(c);
    float first[21];
    memcpy(first, nn_ctx_output(c, 0), sizeof first);
    nn_run(c);
    assert_memory_equal(first, nn_ctx_output(c, 0), sizeof first);
    assert_non_null(nn_ctx_node_ms(c));
    assert_true(nn_ctx_node_ms(c)[0] >= 0);
    nn_ctx_free(c);
    nn_plan_free(p);
    nn_graph_free(g);
}

/* ResNet-18 in torchvision's layout: 11,689,512 parameters for 1000 classes, plus
 * 9,600 BN running statistics (2 x 4,800 channels), and 1.814 G multiply-adds. */
static void test_arch_resnet18_counts(void **state)
{
    (void)state;
    struct nn_graph *g = nn_graph_new();
    struct nn_arch_opts o = {.arch = "resnet18", .width = 1.f, .n_classes = 1000, .seed = 1};
    struct err_msg em = {{0}};
    assert_int_equal(nn_arch_classifier(g, &o, 3, 224, 224, &em), 0);
    struct nn_layer_info *li = calloc(256, sizeof *li);
    int n = nn_graph_layers(g, li, 256, &em);
    assert_true(n > 50);
    int64_t params = 0, macs = 0;
    for (int i = 0; i < n; i++) {
        params += li[i].params;
        if (li[i].op == NN_OP_CONV || li[i].op == NN_OP_GEMM)
            macs += li[i].flops / 2;
    }
    assert_int_equal(params, 11689512 + 9600);
    assert_true(macs > 1813000000 && macs < 1815000000);
    assert_int_equal(li[n - 1].out_shape.d[1], 1000);
    free(li);
    nn_graph_free(g);
}

/* Output 0 ("scores") of a two-stream graph with fusion weights fw, planned with every output
 * and with output 0 alone; the RGB input of the second is NaN when its weight is 0. Returns
 * the two plans' workspace sizes through ws_all / ws_one. */
static void selective_plan(const float fw[2], size_t *ws_all, size_t *ws_one)
{
    struct nn_graph *g = nn_graph_new();
    struct nn_arch_opts o = {.arch = "vgg-small", .width = 0.25f, .n_classes = 5, .seed = 3};
    struct err_msg em = {{0}};
    assert_int_equal(nn_arch_two_stream(g, &o, 32, 32, 4, fw, &em), 0);
    struct nn_plan *pa, *p1;
    struct nn_ctx *ca, *c1;
    assert_int_equal(nn_plan_new(g, 3, &pa, &em), 0);
    assert_int_equal(nn_plan_new_for(g, 3, 1u, &p1, &em), 0);
    assert_int_equal(nn_ctx_new(pa, &ca), 0);
    assert_int_equal(nn_ctx_new(p1, &c1), 0);
    uint64_t r = 9;
    for (int i = 0; i < 2; i++) {
        struct nn_shape s = nn_plan_input_shape(pa, i);
        for (int64_t j = 0; j < nn_shape_elems(&s); j++) {
            float v = tl_uniform(&r, -1, 1);
            nn_ctx_input(ca, i)[j] = v;
            nn_ctx_input(c1, i)[j] = i == 0 && fw[0] == 0 ? NAN : v;
        }
    }
    nn_run(ca);
    nn_run(c1);
    assert_memory_equal(nn_ctx_output(ca, 0), nn_ctx_output(c1, 0), 5 * sizeof(float));
    assert_non_null(nn_ctx_output(ca, 1));
    assert_null(nn_ctx_output(c1, 1));
    assert_null(nn_ctx_output(c1, 2));
    *ws_all = nn_plan_workspace_bytes(pa);
    *ws_one = nn_plan_workspace_bytes(p1);
    nn_ctx_free(ca);
    nn_ctx_free(c1);
    nn_plan_free(pa);
    nn_plan_free(p1);
    assert_int_equal(nn_plan_new_for(g, 3, 0u, &p1, &em), ERR_RANGE);
    assert_int_equal(nn_plan_new_for(g, 3, 1u << 3, &p1, &em), ERR_RANGE);
    nn_graph_free(g);
}

/* A plan for the fused scores alone skips a stream the fusion weighs 0: the same scores,
 * bit for bit, with that stream's input never read (NaN there changes nothing) and less
 * workspace; with both streams weighed it only drops the per-stream outputs. */
static void test_plan_selected_outputs(void **state)
{
    (void)state;
    size_t all, one;
    selective_plan((const float[2]){0.f, 1.f}, &all, &one);
    assert_true(one < all);
    selective_plan((const float[2]){0.4f, 0.6f}, &all, &one);
    assert_true(one <= all);
}

static void test_arch_two_stream(void **state)
{
    (void)state;
    struct nn_graph *g = nn_graph_new();
    struct nn_arch_opts o = {.arch = "vgg-small", .width = 0.25f, .n_classes = 5, .seed = 3,
                             .dropout = 0.2f};
    float fusion[2] = {0.4f, 0.6f};
    struct err_msg em = {{0}};
    assert_int_equal(nn_arch_two_stream(g, &o, 64, 64, 10, fusion, &em), 0);
    assert_int_equal(nn_graph_n_inputs(g), 2);
    /* each stream's dropout takes the asked ratio exactly (0 would turn it off) */
    int n_dropout = 0;
    for (int i = 0; i < nn_graph_n_nodes(g); i++) {
        struct nn_node_view v;
        assert_int_equal(nn_graph_node_view(g, i, &v), 0);
        if (v.op == NN_OP_DROPOUT) {
            assert_float_equal(v.attrs.ratio, 0.2f, 0);
            n_dropout++;
        }
    }
    assert_int_equal(n_dropout, 2);
    assert_int_equal(nn_graph_n_outputs(g), 3);
    assert_string_equal(nn_graph_output_name(g, 0), "scores");
    struct nn_plan *p;
    struct nn_ctx *c;
    assert_int_equal(nn_plan_new(g, 3, &p, &em), 0);
    struct nn_shape ys = nn_plan_output_shape(p, 0), rs = nn_plan_output_shape(p, 1);
    assert_int_equal(ys.d[0], 1);
    assert_int_equal(ys.d[1], 5);
    assert_int_equal(rs.d[0], 3);
    nn_ctx_new(p, &c);
    uint64_t r = 1;
    for (int i = 0; i < 2; i++) {
        struct nn_shape s = nn_plan_input_shape(p, i);
        for (int64_t j = 0; j < nn_shape_elems(&s); j++)
            nn_ctx_input(c, i)[j] = tl_uniform(&r, -1, 1);
    }
    nn_run(c);
    const float *y = nn_ctx_output(c, 0);
    float sum = 0;
    for (int i = 0; i < 5; i++)
        sum += y[i];
    assert_float_equal(sum, 1.0f, 1e-5); /* weights sum to 1, each stream a distribution */
    nn_ctx_free(c);
    nn_plan_free(p);
    struct nn_arch_opts bad = {.arch = "alexnet", .n_classes = 5};
    struct nn_graph *g2 = nn_graph_new();
    assert_int_equal(nn_arch_classifier(g2, &bad, 3, 64, 64, &em), ERR_NOTFOUND);
    assert_non_null(strstr(em.text, "alexnet"));
    nn_graph_free(g2);
    nn_graph_free(g);
}

/* Workers share one plan (and graph) and run their own contexts at the same time. */
struct worker_arg {
    const struct nn_plan *p;
    int seed;
    float out[10];
    int rc;
};

static void *worker(void *argp)
{
    struct worker_arg *w = argp;
    struct nn_ctx *c;
    if ((w->rc = nn_ctx_new(w->p, &c)))
        return NULL;
    for (int round = 0; round < 20; round++) {
        uint64_t r = (uint64_t)w->seed;
        struct nn_shape s = nn_plan_input_shape(w->p, 0);
        for (int64_t j = 0; j < nn_shape_elems(&s); j++)
            nn_ctx_input(c, 0)[j] = tl_uniform(&r, -1, 1);
        nn_run(c);
    }
    memcpy(w->out, nn_ctx_output(c, 0), sizeof w->out);
    nn_ctx_free(c);
    return NULL;
}

static void test_contexts_run_concurrently(void **state)
{
    (void)state;
    struct nn_graph *g = nn_graph_new();
    struct nn_arch_opts o = {.arch = "vgg-small", .width = 0.25f, .n_classes = 10, .seed = 9};
    assert_int_equal(nn_arch_classifier(g, &o, 3, 32, 32, NULL), 0);
    assert_int_equal(nn_graph_fold_bn(g, NULL), 0);
    struct nn_plan *p;
    assert_int_equal(nn_plan_new(g, 2, &p, NULL), 0);
    nn_blas_set_threads(1);
    struct worker_arg solo[4], par[4];
    for (int i = 0; i < 4; i++) {
        solo[i] = (struct worker_arg){.p = p, .seed = i + 1};
        worker(&solo[i]);
        par[i] = (struct worker_arg){.p = p, .seed = i + 1};
    }
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker, &par[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(par[i].rc, 0);
        assert_memory_equal(par[i].out, solo[i].out, sizeof solo[i].out);
    }
    assert_memory_not_equal(solo[0].out, solo[1].out, sizeof solo[0].out);
    nn_plan_free(p);
    nn_graph_free(g);
}

static void test_graph_errors(void **state)
{
    (void)state;
    struct err_msg em = {{0}};
    struct nn_graph *g = nn_graph_new();
    struct nn_shape xs = tl_shape(4, 1, 3, 8, 8);
    assert_true(nn_graph_add_input(g, "x", &xs, &em) >= 0);
    assert_int_equal(nn_graph_add_input(g, "x", &xs, &em), ERR_INVAL);
    assert_non_null(strstr(em.text, "defined twice"));
    struct nn_shape bad = tl_shape(4, 1, -3, 8, 8);
    assert_int_equal(nn_graph_add_input(g, "y", &bad, &em), ERR_RANGE);
    struct nn_shape huge = tl_shape(4, 65536, 65536, 2, 2);
    assert_int_equal(nn_graph_add_tensor(g, "huge", &huge, NULL, &em), ERR_RANGE);
    char longname[100];
    memset(longname, 'n', sizeof longname - 1);
    longname[99] = '\0';
    assert_int_equal(nn_graph_add_tensor(g, longname, &xs, NULL, &em), ERR_RANGE);

    struct nn_node_desc d = tl_node("c", NN_OP_CONV, "nope", "y");
    assert_int_equal(nn_graph_add_node(g, &d, &em), ERR_NOTFOUND);
    assert_non_null(strstr(em.text, "'nope'"));
    d.in[0] = "x";
    d.n_params = 1;
    d.params[0] = "missing";
    assert_int_equal(nn_graph_add_node(g, &d, &em), ERR_NOTFOUND);
    struct nn_shape ws = tl_shape(4, 4, 2, 3, 3); /* 2 in-channels for a 3-channel input */
    nn_graph_add_tensor(g, "w", &ws, NULL, &em);
    d.params[0] = "w";
    d.attrs.stride[0] = 0;
    assert_int_equal(nn_graph_add_node(g, &d, &em), ERR_RANGE);
    d.attrs.stride[0] = 1;
    assert_true(nn_graph_add_node(g, &d, &em) >= 0);
    nn_graph_add_output(g, "y", &em);
    assert_int_equal(nn_graph_check(g, &em), ERR_FORMAT);
    assert_non_null(strstr(em.text, "node 'c'"));
    struct nn_plan *p = NULL;
    assert_int_equal(nn_plan_new(g, 0, &p, &em), ERR_RANGE);
    assert_null(p);
    assert_int_equal(nn_graph_add_output(g, "zz", &em), ERR_NOTFOUND);
    nn_graph_free(g);

    /* a kernel larger than the (unpadded) input */
    g = nn_graph_new();
    struct nn_shape small = tl_shape(4, 1, 1, 2, 2);
    nn_graph_add_input(g, "x", &small, NULL);
    struct nn_shape w5 = tl_shape(4, 1, 1, 5, 5);
    nn_graph_add_tensor(g, "w", &w5, NULL, NULL);
    d = tl_node("c", NN_OP_CONV, "x", "y");
    d.n_params = 1;
    d.params[0] = "w";
    nn_graph_add_node(g, &d, NULL);
    nn_graph_add_output(g, "y", NULL);
    assert_int_equal(nn_graph_check(g, &em), ERR_FORMAT);
    assert_non_null(strstr(em.text, "does not fit"));
    nn_graph_free(g);
    nn_graph_free(NULL);
}

static void test_op_names_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < NN_OP_COUNT; i++)
        assert_int_equal(nn_op_from_name(nn_op_name((enum nn_op)i)), i);
    assert_int_equal(nn_op_from_name("Frobnicate"), NN_OP_COUNT);
}

static void test_blas_core_choice(void **state)
{
    (void)state;
    /* Already a vector kernel at least as good as the CPU allows: nothing to change. */
    assert_null(nn_blas_better_core_than("SapphireRapids"));
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        const char *c = nn_blas_better_core_than("Prescott");
        assert_non_null(c);
        assert_true(strcmp(c, "SkylakeX") == 0 || strcmp(c, "Haswell") == 0);
        assert_null(nn_blas_better_core_than("SkylakeX"));
    }
#endif
    assert_non_null(nn_blas_core());
    /* Never an x86 kernel off x86: on ARM the answer is NULL or an ARM kernel. */
    const char *arm = nn_blas_better_core_than("armv8");
#if !defined(__x86_64__) && !defined(__i386__)
    assert_true(arm == NULL || nn_blas_core_fits_arch(arm));
    assert_false(nn_blas_core_fits_arch("Haswell"));
    assert_false(nn_blas_core_fits_arch("prescott"));
    assert_null(nn_blas_better_core_than("cortexa72"));
    assert_null(nn_blas_better_core_than("neoversen1"));
#else
    (void)arm;
    assert_true(nn_blas_core_fits_arch("Haswell"));
    assert_false(nn_blas_core_fits_arch("cortexa72"));
    assert_false(nn_blas_core_fits_arch("NEOVERSEN1"));
#endif
}

/* MIDR parts of the boards' CPUs, decided the same on every machine. */
static void test_blas_arm_core_choice(void **state)
{
    (void)state;
    /* Pi 5 (A76) and Jetson Orin (A78AE): 0.3.21 leaves them on generic armv8. */
    assert_string_equal(nn_blas_arm_core(0x41, 0xd0b, "armv8"), "neoversen1");
    assert_string_equal(nn_blas_arm_core(0x41, 0xd42, "ARMV8"), "neoversen1");
    assert_string_equal(nn_blas_arm_core(0x41, 0xd41, "armv8"), "neoversen1");
    /* Pi 4 (A72), Jetson Nano (A57), Pi 3/Zero 2 (A53): OpenBLAS's own choice stands. */
    assert_null(nn_blas_arm_core(0x41, 0xd08, "cortexa72"));
    assert_null(nn_blas_arm_core(0x41, 0xd07, "cortexa57"));
    assert_null(nn_blas_arm_core(0x41, 0xd03, "cortexa53"));
    /* Already a tuned kernel, another vendor, or an unknown part: nothing to change. */
    assert_null(nn_blas_arm_core(0x41, 0xd0b, "neoversen1"));
    assert_null(nn_blas_arm_core(0x51, 0xd0b, "armv8"));
    assert_null(nn_blas_arm_core(0x41, 0xfff, "armv8"));
    assert_null(nn_blas_arm_core(0x41, 0xd0b, NULL));
    /* No answer is ever an x86 kernel name. */
    for (unsigned part = 0xd00; part < 0xd50; part++) {
        const char *c = nn_blas_arm_core(0x41, part, "armv8");
        if (c)
            assert_true(strncmp(c, "neoverse", 8) == 0 || strncmp(c, "cortex", 6) == 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_fast_matches_ref_random),
        cmocka_unit_test(test_conv_direct_matches_ref),
        cmocka_unit_test(test_conv_direct_in_plan),
        cmocka_unit_test(test_tucker_fused_matches_ref),
        cmocka_unit_test(test_winograd_matches_ref),
        cmocka_unit_test(test_add_relu_fusion),
        cmocka_unit_test(test_gemm_packed_matches_ref),
        cmocka_unit_test(test_small_map_convs_match_ref),
        cmocka_unit_test(test_conv_ref_known_values),
        cmocka_unit_test(test_tucker_equals_three_convs),
        cmocka_unit_test(test_gemm_fast_matches_ref),
        cmocka_unit_test(test_pools_known_values),
        cmocka_unit_test(test_maxpool_fast_matches_ref),
        cmocka_unit_test(test_window_out),
        cmocka_unit_test(test_fusion_tail_known_values),
        cmocka_unit_test(test_concat_add_known_values),
        cmocka_unit_test(test_bn_fold_preserves_output),
        cmocka_unit_test(test_plan_reuses_memory),
        cmocka_unit_test(test_run_is_repeatable),
        cmocka_unit_test(test_arch_resnet18_counts),
        cmocka_unit_test(test_arch_two_stream),
        cmocka_unit_test(test_plan_selected_outputs),
        cmocka_unit_test(test_contexts_run_concurrently),
        cmocka_unit_test(test_graph_errors),
        cmocka_unit_test(test_op_names_round_trip),
        cmocka_unit_test(test_blas_core_choice),
        cmocka_unit_test(test_blas_arm_core_choice),
    };
    return cmocka_run_group_tests_name("nn", tests, NULL, NULL);
}
