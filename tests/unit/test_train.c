/* test_train.c — nn/ training: gradient checks of every op against central differences of
 * a double-precision forward (train_ref.h), then the trainer as a whole: learning, SGD,
 * schedules, clipping, repeatability, exact resume, checkpoint errors, BN statistics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "nn_testlib.h"
#include "nn/train.h"
#include "train_ref.h"

#include <stdio.h>
#include <unistd.h>

#define GRAD_TOL 1e-3
/* Central differences in double: truncation ~H^2 f''' ~ 1e-8, rounding ~1e-16/H. */
#define H 1e-4
/* Elements checked per tensor: every one up to this, evenly spaced beyond. */
#define MAX_CHECKED 160

static int verbose(void)
{
    return getenv("NN_TEST_VERBOSE") != NULL;
}


static void add(struct nn_graph *g, struct nn_node_desc d)
{
    struct err_msg em = {{0}};
    if (nn_graph_add_node(g, &d, &em) < 0)
        fail_msg("adding node '%s': %s", d.name, em.text);
}

static void input(struct nn_graph *g, const char *name, struct nn_shape s)
{
    assert_true(nn_graph_add_input(g, name, &s, NULL) >= 0);
}

static void params(struct nn_node_desc *d, int n, const char *a, const char *b, const char *c,
                   const char *e)
{
    const char *p[4] = {a, b, c, e};
    d->n_params = n;
    for (int i = 0; i < n; i++)
        d->params[i] = p[i];
}

/* BN tensors: random scale and shift, running mean 0 and variance 1 (as PyTorch starts). */
static void bn_tensors(struct nn_graph *g, const char *prefix, int c, uint64_t *rng)
{
    char nm[4][64];
    const char *sfx[4] = {"g", "b", "m", "v"};
    for (int i = 0; i < 4; i++)
        snprintf(nm[i], sizeof nm[i], "%s.%s", prefix, sfx[i]);
    float *d = malloc(sizeof(float) * (size_t)c);
    struct nn_shape s = tl_shape(1, c, 0, 0, 0);
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < c; j++)
            d[j] = i == 0 ? tl_uniform(rng, 0.5f, 1.5f) : i == 1 ? tl_uniform(rng, -0.5f, 0.5f)
                                                          : (float)(i == 3);
        assert_true(nn_graph_add_tensor(g, nm[i], &s, d, NULL) >= 0);
    }
    free(d);
}

/* ---- input fillers: values kept away from kinks and ties ---- */

typedef void (*fill_fn)(uint64_t *rng, float *x, size_t n);

static void fill_uniform(uint64_t *rng, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = tl_uniform(rng, -1.f, 1.f);
}

/* ReLU, ReLU6 and LeakyReLU inputs at least 0.05 from their kinks at 0 and 6. */
static void fill_away_from_kinks(uint64_t *rng, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v;
        do
            v = tl_uniform(rng, -3.f, 8.f);
        while (fabsf(v) < 0.05f || fabsf(v - 6.f) < 0.05f);
        x[i] = v;
    }
}

/* Distinct values 0.01 apart in random order: no two window entries tie for a maximum. */
static void fill_distinct(uint64_t *rng, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = ((float)i - (float)n / 2) * 0.01f;
    for (size_t i = n; i > 1; i--) {
        size_t j = tl_rand(rng) % i;
        float t = x[i - 1];
        x[i - 1] = x[j];
        x[j] = t;
    }
}

/* ---- the gradient check ---- */

struct gcheck {
    struct nn_model *m;
    int batch;
    const char *root;
    fill_fn fill;
    /* softmax cross-entropy through nn_trainer_step instead of sum(r * root) */
    int ce, segments;
    float smoothing;
    int labels[NN_MAX_BATCH];
};

struct gresult {
    double max_err;
    int checked; /* tensors and inputs compared */
};

static double loss_ref(struct dref *d, const struct gcheck *c, int root, const double *r)
{
    dref_forward(d);
    const double *y = d->val[root];
    if (c->ce) {
        const struct nn_shape *s = &d->shape[root];
        return dref_ce(y, s->d[0] / c->segments, c->segments, s->d[1], c->labels, c->smoothing);
    }
    double l = 0;
    for (int64_t i = 0; i < nn_shape_elems(&d->shape[root]); i++)
        l += r[i] * y[i];
    return l;
}

/* Relative L2 error of the analytic gradient over (a sample of) the n elements of p. */
static double compare(struct dref *d, const struct gcheck *c, int root, const double *r,
                      double *p, const float *analytic, size_t n)
{
    size_t step = n > MAX_CHECKED ? n / MAX_CHECKED : 1;
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i += step) {
        double old = p[i];
        p[i] = old + H;
        double lp = loss_ref(d, c, root, r);
        p[i] = old - H;
        double lm = loss_ref(d, c, root, r);
        p[i] = old;
        double fd = (lp - lm) / (2 * H), e = analytic[i] - fd;
        num += e * e;
        den += fd * fd;
    }
    assert_true(den > 1e-20); /* a check of all-zero gradients would prove nothing */
    return sqrt(num / den);
}

static void note(struct gresult *res, const char *what, const char *name, double e)
{
    if (verbose() || !(e < GRAD_TOL))
        fprintf(stderr, "gradcheck %-26s %-8s relative error %.2e\n", what, name, e);
    res->max_err = e > res->max_err ? e : res->max_err;
    res->checked++;
}

/* Analytic gradients (trainer) against central differences (double forward) for every
 * graph input and every trained tensor. */
static struct gresult grad_check(struct gcheck *c, const char *what)
{
    struct nn_graph *g = c->m->graph;
    struct nn_train_opts o;
    nn_train_opts_default(&o);
    o.batch = c->batch;
    o.segments = c->ce ? c->segments : 1;
    o.label_smoothing = c->smoothing;
    o.lr = 0.f; /* a step that leaves the weights where the differences are taken */
    o.momentum = 0.f;
    o.seed = 11;
    o.threads = 3; /* the threaded paths, some threads with nothing to do on small batches */
    struct nn_trainer *t = NULL;
    struct err_msg em = {{0}};
    int flags = NN_TRAIN_INPUT_GRADS | (c->ce ? 0 : NN_TRAIN_ANY_ROOTS);
    if (nn_train_create(c->m, &c->root, 1, &o, flags, &t, &em))
        fail_msg("%s: %s", what, em.text);
    struct dref *d = dref_new(g, c->batch, o.seed, 0);
    assert_non_null(d);
    uint64_t rng = 0x5eed;
    for (int i = 0; i < g->n_inputs; i++) {
        float *x = nn_trainer_input(t, i);
        size_t n = (size_t)nn_shape_elems(&d->shape[g->inputs[i]]);
        (c->fill ? c->fill : fill_uniform)(&rng, x, n);
        for (size_t j = 0; j < n; j++)
            d->in[i][j] = x[j];
    }
    int root = t->roots[0].value;
    size_t rn = (size_t)nn_shape_elems(&d->shape[root]);
    double *r = calloc(rn, sizeof *r);
    float *rf = calloc(rn, sizeof *rf);
    for (size_t i = 0; i < rn; i++)
        rf[i] = (float)(r[i] = tl_uniform(&rng, -1.f, 1.f));
    if (c->ce) {
        struct nn_step_stats st;
        if (nn_trainer_step(t, c->labels, &st, &em))
            fail_msg("%s: %s", what, em.text);
        double want = loss_ref(d, c, root, r);
        assert_true(fabs(st.loss[0] - want) <= 1e-5 * (1 + fabs(want)));
    } else {
        nn_train_forward(t, 1);
        nn_train_backward_begin(t);
        nn_train_seed(t, 0, rf);
        nn_train_backward(t);
    }
    struct gresult res = {0, 0};
    for (int i = 0; i < g->n_inputs; i++) {
        const char *name = nn_graph_input_name(g, i);
        const float *an = nn_train_value_grad(t, name);
        assert_non_null(an);
        note(&res, what, name,
             compare(d, c, root, r, d->in[i], an,
                     (size_t)nn_shape_elems(&d->shape[g->inputs[i]])));
    }
    for (int i = 0; i < g->n_tensors; i++) {
        const float *an = nn_train_param_grad(t, g->tensors[i].name);
        if (an)
            note(&res, what, g->tensors[i].name,
                 compare(d, c, root, r, d->ten[i], an,
                         (size_t)nn_shape_elems(&g->tensors[i].shape)));
    }
    free(r);
    free(rf);
    dref_free(d);
    nn_trainer_free(t);
    assert_true(res.max_err < GRAD_TOL);
    return res;
}

/* A model with one input "x", for a node "x" -> "y" that check_unary adds. */
static struct nn_model *unary_model(struct nn_shape xs)
{
    struct nn_model *m = nn_model_new();
    input(m->graph, "x", xs);
    return m;
}

static void check_unary(struct nn_model *m, struct nn_node_desc d, int batch, fill_fn fill,
                        const char *what)
{
    add(m->graph, d);
    assert_int_equal(nn_graph_add_output(m->graph, "y", NULL), 0);
    struct gcheck c = {.m = m, .batch = batch, .root = "y", .fill = fill};
    grad_check(&c, what);
    nn_model_free(m);
}

/* ---- gradient checks, one op (family) at a time ---- */

static void conv_case(uint64_t *rng, int kind, int k, int stride, int dil, int bias)
{
    int group = kind == 0 ? 1 : kind == 1 ? 2 : 3;
    int cin = kind == 2 ? 3 : group * tl_int(rng, 1, 3);
    int cout = kind == 2 ? 3 : group * tl_int(rng, 1, 3);
    int span = dil * (k - 1) + 1;
    struct nn_model *m = nn_model_new();
    input(m->graph, "x", tl_shape(4, 1, cin, tl_int(rng, span, span + 4), tl_int(rng, span, span + 4)));
    tl_tensor(m->graph, "w", tl_shape(4, cout, cin / group, k, tl_int(rng, 1, k)), rng);
    tl_tensor(m->graph, "b", tl_shape(1, cout, 0, 0, 0), rng);
    struct nn_node_desc d = tl_node("conv", NN_OP_CONV, "x", "y");
    params(&d, 1 + bias, "w", "b", NULL, NULL);
    d.attrs.group = group;
    d.attrs.stride[0] = stride;
    d.attrs.stride[1] = tl_int(rng, 1, 2);
    d.attrs.dilation[0] = dil;
    d.attrs.dilation[1] = tl_int(rng, 1, 2);
    for (int i = 0; i < 4; i++)
        d.attrs.pad[i] = tl_int(rng, 0, k / 2 + 1);
    char what[64];
    snprintf(what, sizeof what, "conv %s k%d s%d d%d", kind == 0 ? "dense" : kind == 1 ? "grouped" : "depthwise",
             k, stride, dil);
    check_unary(m, d, 2, fill_uniform, what);
}

/* Dense, grouped and depthwise convolutions with strides, padding and dilation; 1x1
 * stride-1 convs take the GEMM-without-im2col path. */
static void test_grad_conv(void **state)
{
    (void)state;
    uint64_t rng = 0xc0417;
    for (int kind = 0; kind < 3; kind++) {
        conv_case(&rng, kind, 3, 2, 1, 1);
        conv_case(&rng, kind, 3, 1, 2, 0);
        conv_case(&rng, kind, 2, 3, 1, 1);
    }
    struct nn_model *m = nn_model_new(); /* pointwise, grouped */
    input(m->graph, "x", tl_shape(4, 1, 4, 5, 6));
    tl_tensor(m->graph, "w", tl_shape(4, 6, 2, 1, 1), &rng);
    tl_tensor(m->graph, "b", tl_shape(1, 6, 0, 0, 0), &rng);
    struct nn_node_desc d = tl_node("conv", NN_OP_CONV, "x", "y");
    params(&d, 2, "w", "b", NULL, NULL);
    d.attrs.group = 2;
    check_unary(m, d, 3, fill_uniform, "conv 1x1 grouped");
}

/* Maps large enough for Winograd F(4x4,3x3) in the forward and in dX (a conv of dY with
 * the flipped weights), with uneven padding; a second reader of x makes dX a sum, which
 * takes col2im instead. */
static void test_grad_conv_winograd(void **state)
{
    (void)state;
    uint64_t rng = 0x3143;
    for (int shared = 0; shared < 2; shared++) {
        struct nn_model *m = nn_model_new();
        struct nn_graph *g = m->graph;
        input(g, "x", tl_shape(4, 1, 8, 27, 28));
        tl_tensor(g, "w", tl_shape(4, 8, 8, 3, 3), &rng);
        tl_tensor(g, "b", tl_shape(1, 8, 0, 0, 0), &rng);
        struct nn_node_desc d = tl_node("conv", NN_OP_CONV, "x", shared ? "c" : "y");
        params(&d, 2, "w", "b", NULL, NULL);
        d.attrs.pad[0] = d.attrs.pad[2] = 1;
        d.attrs.pad[1] = shared ? 1 : 2; /* shared: y = conv(x) + x keeps x's shape */
        d.attrs.pad[3] = shared ? 1 : 0;
        add(g, d);
        if (shared) {
            struct nn_node_desc a = tl_node("add", NN_OP_ADD, "c", "y");
            a.n_in = 2;
            a.in[1] = "x";
            add(g, a);
        }
        assert_int_equal(nn_graph_add_output(g, "y", NULL), 0);
        struct nn_shape ys[8];
        assert_int_equal(nn_graph_infer_shapes(g, 1, ys, NULL), 0);
        struct nn_conv_geom cg = {.n = 1, .cin = 8, .h = 27, .w = 28, .cout = 8,
                                  .ho = ys[1].d[2], .wo = ys[1].d[3], .kh = 3, .kw = 3,
                                  .sh = 1, .sw = 1, .pt = 1, .pl = shared ? 1 : 2, .dh = 1,
                                  .dw = 1, .group = 1};
        assert_int_equal(nn_conv_train_winograd(&cg), 3);
        struct gcheck c = {.m = m, .batch = 1, .root = "y"};
        grad_check(&c, shared ? "conv winograd + x" : "conv winograd");
        nn_model_free(m);
    }
}

static void test_grad_tucker(void **state)
{
    (void)state;
    uint64_t rng = 0x70c;
    for (int bias = 0; bias < 2; bias++) {
        struct nn_model *m = nn_model_new();
        input(m->graph, "x", tl_shape(4, 1, 5, 7, 6));
        tl_tensor(m->graph, "ui", tl_shape(4, 3, 5, 1, 1), &rng);
        tl_tensor(m->graph, "core", tl_shape(4, 2, 3, 3, 3), &rng);
        tl_tensor(m->graph, "uo", tl_shape(4, 4, 2, 1, 1), &rng);
        tl_tensor(m->graph, "b", tl_shape(1, 4, 0, 0, 0), &rng);
        struct nn_node_desc d = tl_node("tucker", NN_OP_TUCKERCONV, "x", "y");
        params(&d, 3 + bias, "ui", "core", "uo", "b");
        d.attrs.stride[0] = 2;
        d.attrs.dilation[1] = 2;
        d.attrs.pad[0] = d.attrs.pad[1] = d.attrs.pad[2] = d.attrs.pad[3] = 1;
        check_unary(m, d, 2, fill_uniform, bias ? "tucker + bias" : "tucker");
    }
}

/* BatchNorm in training mode on 4-d maps and on [N, C] rows (inner size 1). */
static void test_grad_batchnorm(void **state)
{
    (void)state;
    uint64_t rng = 0xb4;
    const struct nn_shape shapes[2] = {tl_shape(4, 1, 3, 4, 3), tl_shape(2, 1, 5, 0, 0)};
    for (int i = 0; i < 2; i++) {
        struct nn_model *m = nn_model_new();
        input(m->graph, "x", shapes[i]);
        bn_tensors(m->graph, "bn", shapes[i].d[1], &rng);
        struct nn_node_desc d = tl_node("bn", NN_OP_BATCHNORM, "x", "y");
        params(&d, 4, "bn.g", "bn.b", "bn.m", "bn.v");
        check_unary(m, d, i ? 6 : 3, fill_uniform, i ? "batchnorm 2-d" : "batchnorm 4-d");
    }
}

static void test_grad_activations(void **state)
{
    (void)state;
    const enum nn_op ops[3] = {NN_OP_RELU, NN_OP_RELU6, NN_OP_LEAKYRELU};
    const char *names[3] = {"relu", "relu6", "leakyrelu"};
    for (int i = 0; i < 3; i++) {
        struct nn_node_desc d = tl_node(names[i], ops[i], "x", "y");
        d.attrs.alpha = 0.2f;
        struct nn_model *m = unary_model(tl_shape(4, 1, 3, 5, 4));
        check_unary(m, d, 2, fill_away_from_kinks, names[i]);
    }
}

static void pool_case(enum nn_op op, int k, int stride, int pad, int dil, int ceil, int incl,
                      const char *what)
{
    struct nn_node_desc d = tl_node("pool", op, "x", "y");
    d.attrs.kernel[0] = d.attrs.kernel[1] = k;
    d.attrs.stride[0] = d.attrs.stride[1] = stride;
    d.attrs.pad[0] = d.attrs.pad[1] = d.attrs.pad[2] = d.attrs.pad[3] = pad;
    d.attrs.dilation[0] = d.attrs.dilation[1] = dil;
    d.attrs.ceil_mode = ceil;
    d.attrs.count_include_pad = incl;
    struct nn_model *m = unary_model(tl_shape(4, 1, 2, 7, 8));
    check_unary(m, d, 2, fill_distinct, what);
}

static void test_grad_pools(void **state)
{
    (void)state;
    pool_case(NN_OP_MAXPOOL, 3, 2, 1, 1, 0, 0, "maxpool 3/2 pad 1");
    pool_case(NN_OP_MAXPOOL, 2, 2, 0, 1, 0, 0, "maxpool 2/2"); /* windows tile the map */
    pool_case(NN_OP_MAXPOOL, 2, 2, 0, 1, 1, 0, "maxpool 2/2 ceil");
    pool_case(NN_OP_MAXPOOL, 2, 1, 1, 2, 0, 0, "maxpool dilated");
    pool_case(NN_OP_AVGPOOL, 3, 2, 1, 1, 0, 0, "avgpool excl pad");
    pool_case(NN_OP_AVGPOOL, 3, 2, 1, 1, 1, 1, "avgpool incl pad");
    struct nn_node_desc d = tl_node("gap", NN_OP_GLOBALAVGPOOL, "x", "y");
    struct nn_model *m = unary_model(tl_shape(4, 1, 3, 4, 5));
    check_unary(m, d, 2, fill_uniform, "global avgpool");
}

/* Add (also of a value with itself: two contributions to one gradient), WeightedSum. */
static void test_grad_add_wsum(void **state)
{
    (void)state;
    for (int same = 0; same < 2; same++) {
        struct nn_model *m = nn_model_new();
        input(m->graph, "a", tl_shape(4, 1, 2, 3, 3));
        input(m->graph, "b", tl_shape(4, 1, 2, 3, 3));
        struct nn_node_desc d = tl_node("add", NN_OP_ADD, "a", "s");
        d.n_in = 2;
        d.in[1] = same ? "a" : "b";
        add(m->graph, d);
        struct nn_node_desc d2 = tl_node("sum2", NN_OP_ADD, "s", "y"); /* a second reader of b */
        d2.n_in = 2;
        d2.in[1] = "b";
        add(m->graph, d2);
        assert_int_equal(nn_graph_add_output(m->graph, "y", NULL), 0);
        struct gcheck c = {.m = m, .batch = 2, .root = "y"};
        grad_check(&c, same ? "add x+x" : "add");
        nn_model_free(m);
    }
    struct nn_model *m = nn_model_new();
    const char *ins[3] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        input(m->graph, ins[i], tl_shape(2, 1, 5, 0, 0));
    struct nn_node_desc d = tl_node("wsum", NN_OP_WSUM, "a", "y");
    d.n_in = 3;
    d.in[1] = "b";
    d.in[2] = "c";
    d.attrs.weights[0] = 0.3f;
    d.attrs.weights[1] = -1.2f;
    d.attrs.weights[2] = 2.f;
    add(m->graph, d);
    assert_int_equal(nn_graph_add_output(m->graph, "y", NULL), 0);
    struct gcheck c = {.m = m, .batch = 3, .root = "y"};
    grad_check(&c, "weightedsum");
    nn_model_free(m);
}

static void test_grad_concat(void **state)
{
    (void)state;
    for (int axis = 1; axis <= 3; axis++) {
        struct nn_model *m = nn_model_new();
        int sizes[3] = {2, 3, 1};
        const char *ins[3] = {"a", "b", "c"};
        for (int i = 0; i < 3; i++) {
            struct nn_shape s = tl_shape(4, 1, 2, 3, 2);
            s.d[axis] = sizes[i];
            input(m->graph, ins[i], s);
        }
        struct nn_node_desc d = tl_node("cat", NN_OP_CONCAT, "a", "y");
        d.n_in = 3;
        d.in[1] = "b";
        d.in[2] = "c";
        d.attrs.axis = axis == 3 ? -1 : axis;
        add(m->graph, d);
        assert_int_equal(nn_graph_add_output(m->graph, "y", NULL), 0);
        struct gcheck c = {.m = m, .batch = 2, .root = "y"};
        char what[32];
        snprintf(what, sizeof what, "concat axis %d", axis);
        grad_check(&c, what);
        nn_model_free(m);
    }
}

/* Flatten and Reshape, then Gemm with and without bias. */
static void test_grad_reshape_flatten_gemm(void **state)
{
    (void)state;
    uint64_t rng = 0x6e;
    for (int bias = 0; bias < 2; bias++) {
        struct nn_model *m = nn_model_new();
        struct nn_graph *g = m->graph;
        input(g, "x", tl_shape(4, 1, 3, 2, 2));
        struct nn_node_desc r = tl_node("reshape", NN_OP_RESHAPE, "x", "r");
        r.attrs.shape_ndim = 3;
        r.attrs.shape[0] = 0;
        r.attrs.shape[1] = 4;
        r.attrs.shape[2] = -1;
        add(g, r);
        add(g, tl_node("flatten", NN_OP_FLATTEN, "r", "f"));
        tl_tensor(g, "w", tl_shape(2, 5, 12, 0, 0), &rng);
        tl_tensor(g, "b", tl_shape(1, 5, 0, 0, 0), &rng);
        struct nn_node_desc d = tl_node("fc", NN_OP_GEMM, "f", "y");
        params(&d, 1 + bias, "w", "b", NULL, NULL);
        add(g, d);
        assert_int_equal(nn_graph_add_output(g, "y", NULL), 0);
        struct gcheck c = {.m = m, .batch = 3, .root = "y"};
        grad_check(&c, bias ? "reshape+gemm+bias" : "reshape+gemm");
        nn_model_free(m);
    }
}

static void test_grad_softmax(void **state)
{
    (void)state;
    const struct nn_shape shapes[2] = {tl_shape(2, 1, 6, 0, 0), tl_shape(4, 1, 3, 4, 2)};
    const int axes[2] = {1, 2};
    for (int i = 0; i < 2; i++) {
        struct nn_node_desc d = tl_node("softmax", NN_OP_SOFTMAX, "x", "y");
        d.attrs.axis = axes[i];
        struct nn_model *m = unary_model(shapes[i]);
        check_unary(m, d, 3, fill_uniform, i ? "softmax axis 2" : "softmax axis 1");
    }
}

/* Dropout with the trainer's mask of step 0 (the reference draws the same mask). */
static void test_grad_dropout(void **state)
{
    (void)state;
    struct nn_node_desc d = tl_node("drop", NN_OP_DROPOUT, "x", "y");
    d.attrs.ratio = 0.3f;
    struct nn_model *m = unary_model(tl_shape(2, 1, 20, 0, 0));
    check_unary(m, d, 4, fill_uniform, "dropout 0.3");
}

static void test_grad_batchmean(void **state)
{
    (void)state;
    struct nn_node_desc d = tl_node("mean", NN_OP_BATCHMEAN, "x", "y");
    struct nn_model *m = unary_model(tl_shape(2, 1, 6, 0, 0));
    check_unary(m, d, 4, fill_uniform, "batchmean");
    /* a conv after the mean sees a batch of 1, whatever the training batch */
    uint64_t rng = 0xbee;
    m = nn_model_new();
    input(m->graph, "x", tl_shape(4, 1, 2, 5, 5));
    add(m->graph, tl_node("mean", NN_OP_BATCHMEAN, "x", "m"));
    tl_tensor(m->graph, "w", tl_shape(4, 3, 2, 3, 3), &rng);
    tl_tensor(m->graph, "b", tl_shape(1, 3, 0, 0, 0), &rng);
    d = tl_node("conv", NN_OP_CONV, "m", "y");
    params(&d, 2, "w", "b", NULL, NULL);
    add(m->graph, d);
    assert_int_equal(nn_graph_add_output(m->graph, "y", NULL), 0);
    struct gcheck c = {.m = m, .batch = 4, .root = "y"};
    grad_check(&c, "batchmean + conv");
    nn_model_free(m);
}

/* Softmax cross-entropy through nn_trainer_step: plain, label smoothing, TSN segments. */
static void test_grad_softmax_ce(void **state)
{
    (void)state;
    const int seg[3] = {1, 1, 3};
    const float eps[3] = {0.f, 0.1f, 0.2f};
    for (int i = 0; i < 3; i++) {
        uint64_t rng = 0xce + (uint64_t)i;
        struct nn_model *m = nn_model_new();
        input(m->graph, "x", tl_shape(2, 1, 5, 0, 0));
        tl_tensor(m->graph, "w", tl_shape(2, 4, 5, 0, 0), &rng);
        tl_tensor(m->graph, "b", tl_shape(1, 4, 0, 0, 0), &rng);
        struct nn_node_desc d = tl_node("fc", NN_OP_GEMM, "x", "logits");
        params(&d, 2, "w", "b", NULL, NULL);
        add(m->graph, d);
        assert_int_equal(nn_graph_add_output(m->graph, "logits", NULL), 0);
        struct gcheck c = {.m = m, .batch = 6, .root = "logits", .ce = 1, .segments = seg[i],
                           .smoothing = eps[i], .labels = {1, 3, 0, 2, 2, 1}};
        char what[48];
        snprintf(what, sizeof what, "softmax-ce K%d eps %.1f", seg[i], (double)eps[i]);
        grad_check(&c, what);
        nn_model_free(m);
    }
}

/* A small network of everything: conv-BN-ReLU, max pool, a residual add with a 1x1
 * shortcut, a grouped conv, global pool, dropout, fully connected; the cross-entropy on
 * two-segment clips. Gradients share buffers by liveness here. */
static struct nn_model *tiny_net_w(uint64_t seed, int classes, int ch)
{
    uint64_t rng = seed;
    struct nn_model *m = nn_model_new();
    struct nn_graph *g = m->graph;
    input(g, "x", tl_shape(4, 1, 2, 8, 8));
    tl_tensor(g, "c1.w", tl_shape(4, ch, 2, 3, 3), &rng);
    bn_tensors(g, "bn1", ch, &rng);
    tl_tensor(g, "c2.w", tl_shape(4, ch, ch / 2, 3, 3), &rng);
    tl_tensor(g, "c2.b", tl_shape(1, ch, 0, 0, 0), &rng);
    tl_tensor(g, "sc.w", tl_shape(4, ch, ch, 1, 1), &rng);
    tl_tensor(g, "fc.w", tl_shape(2, classes, ch, 0, 0), &rng);
    tl_tensor(g, "fc.b", tl_shape(1, classes, 0, 0, 0), &rng);
    struct nn_node_desc d = tl_node("c1", NN_OP_CONV, "x", "c1");
    params(&d, 1, "c1.w", NULL, NULL, NULL);
    d.attrs.pad[0] = d.attrs.pad[1] = d.attrs.pad[2] = d.attrs.pad[3] = 1;
    add(g, d);
    d = tl_node("bn1", NN_OP_BATCHNORM, "c1", "bn1");
    params(&d, 4, "bn1.g", "bn1.b", "bn1.m", "bn1.v");
    add(g, d);
    add(g, tl_node("relu1", NN_OP_RELU, "bn1", "r1"));
    d = tl_node("pool", NN_OP_MAXPOOL, "r1", "p");
    d.attrs.kernel[0] = d.attrs.kernel[1] = 2;
    d.attrs.stride[0] = d.attrs.stride[1] = 2;
    add(g, d);
    d = tl_node("c2", NN_OP_CONV, "p", "c2");
    params(&d, 2, "c2.w", "c2.b", NULL, NULL);
    d.attrs.group = 2;
    d.attrs.pad[0] = d.attrs.pad[1] = d.attrs.pad[2] = d.attrs.pad[3] = 1;
    add(g, d);
    d = tl_node("sc", NN_OP_CONV, "p", "sc");
    params(&d, 1, "sc.w", NULL, NULL, NULL);
    add(g, d);
    d = tl_node("add", NN_OP_ADD, "c2", "s");
    d.n_in = 2;
    d.in[1] = "sc";
    add(g, d);
    add(g, tl_node("relu2", NN_OP_LEAKYRELU, "s", "r2"));
    add(g, tl_node("gap", NN_OP_GLOBALAVGPOOL, "r2", "gap"));
    add(g, tl_node("flat", NN_OP_FLATTEN, "gap", "f"));
    d = tl_node("drop", NN_OP_DROPOUT, "f", "dr");
    d.attrs.ratio = 0.25f;
    add(g, d);
    d = tl_node("fc", NN_OP_GEMM, "dr", "logits");
    params(&d, 2, "fc.w", "fc.b", NULL, NULL);
    add(g, d);
    assert_int_equal(nn_graph_add_output(g, "logits", NULL), 0);
    assert_int_equal(nn_graph_check(g, NULL), 0);
    return m;
}

static struct nn_model *tiny_net(uint64_t seed, int classes)
{
    return tiny_net_w(seed, classes, 4);
}

static void test_grad_network(void **state)
{
    (void)state;
    struct nn_model *m = tiny_net(0x7e7, 3);
    struct gcheck c = {.m = m, .batch = 4, .root = "logits", .ce = 1, .segments = 2,
                       .smoothing = 0.1f, .labels = {2, 0}};
    struct gresult r = grad_check(&c, "network");
    assert_int_equal(r.checked, 1 + 8); /* the input and every trained tensor */
    nn_model_free(m);
}

/* ---- the trainer as a whole ---- */

/* A folder per test run for checkpoints; removed with what is in it. */
struct fixture {
    char dir[64];
};

static int setup_dir(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/actiond-train-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown_dir(void **state)
{
    struct fixture *f = *state;
    const char *names[2] = {"a.ckpt", "bad.ckpt"};
    char path[128];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", f->dir, names[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static void path_in(void **state, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", ((struct fixture *)*state)->dir, name);
}

/* Three classes of 2x8x8 images: a horizontal or a vertical bar in channel 0, or a bar in
 * channel 1, at a random place, in noise. */
static void make_sample(uint64_t *rng, int cls, float *x)
{
    for (int i = 0; i < 128; i++)
        x[i] = tl_uniform(rng, -0.2f, 0.2f);
    int p = tl_int(rng, 1, 6);
    for (int j = 0; j < 8; j++)
        x[cls == 1 ? j * 8 + p : (cls == 2 ? 64 : 0) + p * 8 + j] += 1.f;
}

static void make_batch(uint64_t *rng, struct nn_trainer *t, int clips, int segments, int *labels)
{
    float *x = nn_trainer_input(t, 0);
    for (int c = 0; c < clips; c++) {
        labels[c] = tl_int(rng, 0, 2);
        for (int k = 0; k < segments; k++)
            make_sample(rng, labels[c], x + (size_t)(c * segments + k) * 128);
    }
}

static struct nn_trainer *new_trainer(struct nn_model *m, const char *const *losses, int n,
                                      const struct nn_train_opts *o)
{
    struct nn_trainer *t = NULL;
    struct err_msg em = {{0}};
    if (nn_trainer_new(m, losses, n, o, &t, &em))
        fail_msg("nn_trainer_new: %s", em.text);
    return t;
}

static const char *const two_losses[2] = {"rgb/logits", "motion/logits"};

static void step_ok(struct nn_trainer *t, const int *labels, struct nn_step_stats *st)
{
    struct err_msg em = {{0}};
    if (nn_trainer_step(t, labels, st, &em))
        fail_msg("step %lld: %s", (long long)nn_trainer_steps(t), em.text);
}

/* The small conv net learns a separable problem: the loss falls and every held-out clip
 * is classified right (inference mode, BN from running statistics). */
static void test_learns_separable_problem(void **state)
{
    (void)state;
    struct nn_model *m = tiny_net_w(0x1ea7, 3, 8);
    struct nn_train_opts o;
    nn_train_opts_default(&o);
    o.batch = 12;
    o.lr = 0.05f;
    o.schedule = NN_LR_COSINE;
    o.warmup_steps = 10;
    o.total_steps = 200;
    const char *loss = "logits";
    struct nn_trainer *t = new_trainer(m, &loss, 1, &o);
    uint64_t rng = 99;
    int labels[12];
    struct nn_step_stats st;
    double first = 0, last = 0;
    for (int s = 0; s < o.total_steps; s++) {
        make_batch(&rng, t, 12, 1, labels);
        step_ok(t, labels, &st);
        first += s < 10 ? st.loss[0] / 10 : 0;
        last += s >= o.total_steps - 10 ? st.loss[0] / 10 : 0;
    }
    int correct = 0;
    for (int b = 0; b < 5; b++) {
        make_batch(&rng, t, 12, 1, labels);
        assert_int_equal(nn_trainer_eval(t, labels, &st, NULL), 0);
        correct += (int)lroundf(st.top1[0] * 12);
    }
    if (verbose())
        fprintf(stderr, "learning: mean loss %.3f over the first 10 steps, %.4f over the last "
                        "10; %d/60 held-out clips right\n", first, last, correct);
    assert_true(last < first / 5);
    assert_int_equal(correct, 60);
    nn_trainer_free(t);
    nn_model_free(m);
}

/* Soft targets: weight 1 with one-hot rows is exactly the hard loss; weight 0.5 with
 * uniform rows gives half the cross-entropy and half the divergence, computed here from the
 * logits. */
static void test_soft_targets(void **state)
{
    (void)state;
    const int clips = 4, k = 2, classes = 3;
    struct nn_model *m[2] = {tiny_net(0x50f7, classes), tiny_net(0x50f7, classes)};
    struct nn_train_opts o;
    nn_train_opts_default(&o);
    o.batch = clips * k;
    o.segments = k;
    const char *loss = "logits";
    struct nn_trainer *t[2] = {new_trainer(m[0], &loss, 1, &o), new_trainer(m[1], &loss, 1, &o)};
    int labels[4];
    float onehot[12] = {0}, uniform[12];
    struct nn_step_stats st[2];
    for (int i = 0; i < 12; i++)
        uniform[i] = 1.f / classes;
    for (int r = 0; r < 2; r++) {
        uint64_t rng = 5;
        make_batch(&rng, t[r], clips, k, labels);
    }
    for (int i = 0; i < clips; i++)
        onehot[i * classes + labels[i]] = 1;
    assert_int_equal(nn_trainer_set_soft_targets(t[1], 0, onehot, 1.f, 1.f, NULL), 0);
    for (int s = 0; s < 3; s++)
        for (int r = 0; r < 2; r++)
            step_ok(t[r], labels, &st[r]);
    assert_true(fabsf(st[0].loss[0] - st[1].loss[0]) < 1e-6f);
    /* The mixture, checked against the logits of an eval. */
    assert_int_equal(nn_trainer_set_soft_targets(t[1], 0, uniform, 0.5f, 1.f, NULL), 0);
    assert_int_equal(nn_trainer_eval(t[1], labels, &st[1], NULL), 0);
    const float *z = nn_trainer_value(t[1], "logits", NULL);
    double want = 0;
    for (int i = 0; i < clips; i++) {
        double zb[3], mx = -1e30, lse = 0, hard, unif = 0;
        for (int c = 0; c < classes; c++) {
            zb[c] = (z[(i * k) * classes + c] + z[(i * k + 1) * classes + c]) / 2;
            mx = zb[c] > mx ? zb[c] : mx;
        }
        for (int c = 0; c < classes; c++)
            lse += exp(zb[c] - mx);
        lse = mx + log(lse);
        hard = lse - zb[labels[i]];
        for (int c = 0; c < classes; c++) /* KL(uniform || softmax) */
            unif += (lse - zb[c] - log(classes)) / classes;
        want += (0.5 * hard + 0.5 * unif) / clips;
    }
    assert_true(fabs(st[1].loss[0] - want) < 1e-5);
    assert_int_equal(nn_trainer_set_soft_targets(t[1], 1, uniform, 0.5f, 1.f, NULL), ERR_RANGE);
    assert_int_equal(nn_trainer_set_soft_targets(t[1], 0, uniform, 1.5f, 1.f, NULL), ERR_RANGE);
    for (int r = 0; r < 2; r++) {
        nn_trainer_free(t[r]);
        nn_model_free(m[r]);
    }
}

/* Distillation at a temperature: the loss of nn_softmax_ce against the formula written from
 * the teacher's logits u (its soft row softmax(u), tempered inside to softmax(u / t)), and
 * its gradient against central differences; a temperature outside [1, 100] is refused. */
static void test_soft_targets_temperature(void **state)
{
    (void)state;
    enum { CLIPS = 3, SEG = 2, CL = 4 };
    uint64_t rng = 0x7e3;
    float z[CLIPS * SEG * CL], dz[CLIPS * SEG * CL], soft[CLIPS * CL];
    double u[CLIPS * CL], work[4 * CL], want = 0;
    const int labels[CLIPS] = {2, 0, 3};
    const double w = 0.7, t = 3, eps = 0.1;
    for (int i = 0; i < CLIPS * SEG * CL; i++)
        z[i] = tl_uniform(&rng, -2.f, 2.f);
    for (int i = 0; i < CLIPS; i++) {
        double e[CL], sum = 0, et[CL], sumt = 0, zb[CL], mx = -1e30, lse = 0, lset = 0;
        for (int c = 0; c < CL; c++) {
            u[i * CL + c] = tl_uniform(&rng, -3.f, 3.f);
            sum += e[c] = exp(u[i * CL + c]);
            sumt += et[c] = exp(u[i * CL + c] / t);
            zb[c] = (z[(i * SEG) * CL + c] + z[(i * SEG + 1) * CL + c]) / 2.0;
            mx = zb[c] > mx ? zb[c] : mx;
        }
        for (int c = 0; c < CL; c++) {
            soft[i * CL + c] = (float)(e[c] / sum);
            lse += exp(zb[c] - mx);
            lset += exp((zb[c] - mx) / t);
        }
        lse = mx + log(lse);
        lset = mx / t + log(lset);
        for (int c = 0; c < CL; c++) {
            double h = (c == labels[i] ? 1 - eps : 0) + eps / CL;
            double s = et[c] / sumt; /* KL(s || softmax(zbar / t)) */
            want += ((1 - w) * h * (lse - zb[c]) + w * t * t * s * (log(s) + lset - zb[c] / t)) /
                    CLIPS;
        }
    }
    struct nn_soft_target st = {.soft = soft, .w = (float)w, .t = (float)t};
    struct nn_ce_result r = nn_softmax_ce(CLIPS, SEG, CL, z, labels, (float)eps, &st, dz, work);
    assert_true(fabs(r.loss - want) < 1e-5 * fabs(want));
    const float h = 1.f / 1024;
    for (int i = 0; i < CLIPS * SEG * CL; i++) {
        float keep = z[i];
        z[i] = keep + h;
        double up = nn_softmax_ce(CLIPS, SEG, CL, z, labels, (float)eps, &st, NULL, work).loss;
        z[i] = keep - h;
        double down = nn_softmax_ce(CLIPS, SEG, CL, z, labels, (float)eps, &st, NULL, work).loss;
        z[i] = keep;
        assert_true(fabs((up - down) / (2 * h) - dz[i]) < 1e-4);
    }
    /* the soft term matters: without it the gradient is another */
    float dz0[CLIPS * SEG * CL];
    nn_softmax_ce(CLIPS, SEG, CL, z, labels, (float)eps, NULL, dz0, work);
    assert_true(fabsf(dz0[0] - dz[0]) > 1e-3f);

    struct nn_model *m = tiny_net(0x50f7, 3);
    struct nn_train_opts o;
    nn_train_opts_default(&o);
    const char *loss = "logits";
    struct nn_trainer *tr = new_trainer(m, &loss, 1, &o);
    assert_int_equal(nn_trainer_set_soft_targets(tr, 0, soft, 0.5f, 0.5f, NULL), ERR_RANGE);
    assert_int_equal(nn_trainer_set_soft_targets(tr, 0, soft, 0.5f, 101.f, NULL), ERR_RANGE);
    assert_int_equal(nn_trainer_set_soft_targets(tr, 0, soft, 0.5f, NAN, NULL), ERR_RANGE);
    assert_int_equal(nn_trainer_set_soft_targets(tr, 0, soft, 0.5f, 4.f, NULL), 0);
    nn_trainer_free(tr);
    nn_model_free(m);
}

/* The fused term against its formula written out, its gradient against central differences
 * in both streams' logits, added to what the gradient buffers held. */
static void test_fused_kl(void **state)
{
    (void)state;
    enum { CLIPS = 3, SEG = 2, CL = 4, N = CLIPS * SEG * CL };
    uint64_t rng = 0xf05e;
    float za[N], zb[N], da[N], db[N], soft[CLIPS * CL];
    double work[4 * CL], want = 0;
    const double w = 0.6, t = 2, fa = 1.3, fb = 0.7;
    for (int i = 0; i < N; i++) {
        za[i] = tl_uniform(&rng, -2.f, 2.f);
        zb[i] = tl_uniform(&rng, -2.f, 2.f);
        da[i] = db[i] = 0.25f;
    }
    for (int i = 0; i < CLIPS; i++) {
        double u[CL], e[CL], sum = 0, st = 0, q[CL], sq = 0;
        for (int c = 0; c < CL; c++) {
            u[c] = tl_uniform(&rng, -3.f, 3.f);
            sum += e[c] = exp(u[c]);
            st += exp(u[c] / t);
        }
        for (int c = 0; c < CL; c++) {
            soft[i * CL + c] = (float)(e[c] / sum);
            double ma = (za[(i * SEG) * CL + c] + za[(i * SEG + 1) * CL + c]) / 2;
            double mb = (zb[(i * SEG) * CL + c] + zb[(i * SEG + 1) * CL + c]) / 2;
            sq += q[c] = exp((fa * ma + fb * mb) / t);
        }
        for (int c = 0; c < CL; c++) {
            double s = exp(u[c] / t) / st;
            want += w * t * t * s * log(s / (q[c] / sq)) / CLIPS;
        }
    }
    struct nn_fused_target ft = {soft, (float)w, (float)t, {(float)fa, (float)fb}};
    double got = nn_fused_kl(CLIPS, SEG, CL, za, zb, &ft, da, db, work);
    assert_true(want > 0.01 && fabs(got - want) < 1e-5 * want);
    const float h = 1.f / 1024;
    for (int i = 0; i < 2 * N; i++) {
        float *z = i < N ? za + i : zb + i - N, keep = *z;
        *z = keep + h;
        double up = nn_fused_kl(CLIPS, SEG, CL, za, zb, &ft, NULL, NULL, work);
        *z = keep - h;
        double down = nn_fused_kl(CLIPS, SEG, CL, za, zb, &ft, NULL, NULL, work);
        *z = keep;
        double g = (i < N ? da[i] : db[i - N]) - 0.25;
        assert_true(fabs((up - down) / (2 * h) - g) < 1e-4);
    }
    assert_true(fabsf(da[0] - 0.25f) > 1e-3f);
}

/* The trainer's fused target: refused where it cannot apply; eval reports the term on the
 * streams' logits; stepping with it brings the model's fused output nearer the soft rows. */
static void test_fused_target(void **state)
{
    (void)state;
    struct nn_model *one = tiny_net(0x50f7, 3);
    struct nn_train_opts o;
    nn_train_opts_default(&o);
    const char *loss = "logits";
    const float fusion[2] = {1.2f, 0.8f}, bad[2] = {NAN, 1.f};
    float soft[4 * 4];
    struct nn_trainer *t1 = new_trainer(one, &loss, 1, &o);
    assert_int_equal(nn_trainer_set_fused_target(t1, soft, 0.5f, 1.f, fusion, NULL), ERR_INVAL);
    nn_trainer_free(t1);
    nn_model_free(one);

    struct nn_model *m[2];
    struct nn_trainer *t[2];
    struct nn_arch_opts ao = {.arch = "vgg-small", .width = 0.125f, .n_classes = 4, .seed = 9};
    o.batch = 8;
    o.segments = 2;
    o.lr = 0.02f;
    int labels[4] = {0, 1, 2, 3};
    for (int i = 0; i < 4; i++) /* soft rows that disagree with the labels */
        for (int c = 0; c < 4; c++)
            soft[i * 4 + c] = c == (labels[i] + 1) % 4 ? 0.7f : 0.1f;
    for (int r = 0; r < 2; r++) {
        m[r] = nn_model_new();
        assert_int_equal(nn_arch_two_stream(m[r]->graph, &ao, 32, 32, 4, fusion, NULL), 0);
        t[r] = new_trainer(m[r], two_losses, 2, &o);
        uint64_t rng = 6;
        for (int i = 0; i < 2; i++) {
            struct nn_shape sh = nn_trainer_input_shape(t[r], i);
            for (int64_t j = 0; j < nn_shape_elems(&sh); j++)
                nn_trainer_input(t[r], i)[j] = tl_uniform(&rng, -1.f, 1.f);
        }
    }
    assert_int_equal(nn_trainer_set_fused_target(t[0], soft, 1.5f, 1.f, fusion, NULL), ERR_RANGE);
    assert_int_equal(nn_trainer_set_fused_target(t[0], soft, 0.5f, 0.5f, fusion, NULL), ERR_RANGE);
    assert_int_equal(nn_trainer_set_fused_target(t[0], soft, 0.5f, 1.f, bad, NULL), ERR_RANGE);
    struct nn_step_stats st;
    assert_int_equal(nn_trainer_eval(t[0], labels, &st, NULL), 0);
    assert_true(st.fused_loss == 0.f);
    assert_int_equal(nn_trainer_set_fused_target(t[0], soft, 1.f, 2.f, fusion, NULL), 0);
    assert_int_equal(nn_trainer_eval(t[0], labels, &st, NULL), 0);
    struct nn_shape sh;
    const float *za = nn_trainer_value(t[0], "rgb/logits", &sh);
    const float *zb = nn_trainer_value(t[0], "motion/logits", &sh);
    struct nn_fused_target ft = {soft, 1.f, 2.f, {fusion[0], fusion[1]}};
    double work[16], want = nn_fused_kl(4, 2, 4, za, zb, &ft, NULL, NULL, work);
    assert_true(want > 0 && fabs(st.fused_loss - want) < 1e-5 * want);
    for (int s = 0; s < 20; s++) {
        step_ok(t[0], labels, &st);
        step_ok(t[1], labels, &st);
    }
    double kl[2];
    assert_int_equal(nn_trainer_set_fused_target(t[1], soft, 1.f, 2.f, fusion, NULL), 0);
    for (int r = 0; r < 2; r++) {
        assert_int_equal(nn_trainer_eval(t[r], labels, &st, NULL), 0);
        kl[r] = st.fused_loss;
        nn_trainer_free(t[r]);
        nn_model_free(m[r]);
    }
    if (verbose())
        fprintf(stderr, "fused KL after 20 steps: %.4f with the term, %.4f without\n", kl[0],
                kl[1]);
    assert_true(kl[0] < 0.5 * kl[1]);
}

/* x[2,3] -> Gemm -> logits: the gradient and two SGD steps worked out by hand. */
static void test_sgd_step_by_hand(void **state)
{
    (void)state;
    uint64_t rng = 0x5dd;
    struct nn_model *m = nn_model_new();
    input(m->graph, "x", tl_shape(2, 1, 3, 0, 0));
    tl_tensor(m->graph, "w", tl_shape(2, 2, 3, 0, 0), &rng);
    tl_tensor(m->graph, "b", tl_shape(1, 2, 0, 0, 0), &rng);
    struct nn_node_desc d = tl_node("fc", NN_OP_GEMM, "x", "z");
    params(&d, 2, "w", "b", NULL, NULL);
    add(m->graph, d);
    assert_int_equal(nn_graph_add_output(m->graph, "z", NULL), 0);
    struct nn_train_opts o;
    nn_train_opts_default(&o);
    o.batch = 2;
    o.lr = 0.1f;
    o.momentum = 0.9f;
    o.weight_decay = 0.01f;
    const char *loss = "z";
    struct nn_trainer *t = new_trainer(m, &loss, 1, &o);
    const float x[6] = {0.5f, -1.f, 2.f, 1.5f, 0.25f, -0.75f};
    const int labels[2] = {0, 1};
    float *w = m->graph->tensors[0].data, *b = m->graph->tensors[1].data;
    float vw[6] = {0}, vb[2] = {0};
    for (int s = 0; s < 2; s++) {
        float w0[6], b0[2];
        memcpy(w0, w, sizeof w0);
        memcpy(b0, b, sizeof b0);
        memcpy(nn_trainer_input(t, 0), x, sizeof x);
        struct nn_step_stats st;
        step_ok(t, labels, &st);
        /* d(mean CE)/dz = (softmax(z) - onehot) / rows; dW = dz^T x; dB = sum_rows dz */
        double gw[6] = {0}, gb[2] = {0};
        for (int r = 0; r < 2; r++) {
            double z[2], e[2];
            for (int o2 = 0; o2 < 2; o2++) {
                z[o2] = b0[o2];
                for (int k = 0; k < 3; k++)
                    z[o2] += (double)x[r * 3 + k] * w0[o2 * 3 + k];
            }
            double mx = fmax(z[0], z[1]);
            e[0] = exp(z[0] - mx);
            e[1] = exp(z[1] - mx);
            for (int o2 = 0; o2 < 2; o2++) {
                double dz = (e[o2] / (e[0] + e[1]) - (o2 == labels[r])) / 2;
                gb[o2] += dz;
                for (int k = 0; k < 3; k++)
                    gw[o2 * 3 + k] += dz * x[r * 3 + k];
            }
        }
        const float *g = nn_train_param_grad(t, "w"), *gbf = nn_train_param_grad(t, "b");
        for (int i = 0; i < 6; i++)
            assert_float_equal(g[i], gw[i], 1e-6);
        for (int i = 0; i < 2; i++)
            assert_float_equal(gbf[i], gb[i], 1e-6);
        /* v = mu v + g + wd w; w -= lr v: the weight decays, the bias does not */
        for (int i = 0; i < 6; i++) {
            vw[i] = 0.9f * vw[i] + (g[i] + 0.01f * w0[i]);
            assert_true(w[i] == w0[i] - 0.1f * vw[i]);
        }
        for (int i = 0; i < 2; i++) {
            vb[i] = 0.9f * vb[i] + (gbf[i] + 0.f * b0[i]);
            assert_true(b[i] == b0[i] - 0.1f * vb[i]);
        }
    }
    assert_int_equal(nn_trainer_steps(t), 2);
    /* and the update primitive alone, with numbers small enough to follow */
    float pw[2] = {1.f, -2.f}, pv[2] = {0.5f, 0.f};
    const float pg[2] = {0.25f, 1.f};
    nn_sgd_update(pw, pv, pg, 2, 0.5f, 0.5f, 0.5f);
    assert_float_equal(pv[0], 0.25f + 0.25f + 0.5f, 0);  /* mu v + g + wd w = 1 */
    assert_float_equal(pw[0], 0.5f, 0);                  /* 1 - 0.5 * 1 */
    assert_float_equal(pv[1], 0.f + 1.f - 1.f, 0);       /* 0 */
    assert_float_equal(pw[1], -2.f, 0);
    nn_trainer_free(t);
    nn_model_free(m);
}

static void expect_lr(const struct nn_train_opts *o, int64_t step, double want)
{
    double got = nn_sgd_lr(o, step);
    if (fabs(got - want) > 1e-7)
        fail_msg("lr at step %lld: %.9g, want %.9g", (long long)step, got, want);
}

static void test_lr_schedules(void **state)
{
    (void)state;
    struct nn_train_opts o;
    nn_train_opts_default(&o);
    o.lr = 0.1f;
    expect_lr(&o, 0, 0.1);
    expect_lr(&o, 100000, 0.1);
    o.warmup_steps = 4; /* (step + 1) / 4 of the rate until step 3 */
    expect_lr(&o, 0, 0.025);
    expect_lr(&o, 1, 0.05);
    expect_lr(&o, 3, 0.1);
    expect_lr(&o, 4, 0.1);
    o.schedule = NN_LR_COSINE;
    o.warmup_steps = 0;
    o.total_steps = 100;
    expect_lr(&o, 0, 0.1);
    expect_lr(&o, 25, 0.05 * (1 + cos(M_PI / 4)));
    expect_lr(&o, 50, 0.05);
    expect_lr(&o, 100, 0);
    expect_lr(&o, 150, 0);
    o.warmup_steps = 10; /* the cosine runs over the 100 steps after warm-up */
    o.total_steps = 110;
    expect_lr(&o, 0, 0.01);
    expect_lr(&o, 9, 0.1);
    expect_lr(&o, 10, 0.1);
    expect_lr(&o, 60, 0.05);
    expect_lr(&o, 110, 0);
    o.schedule = NN_LR_STEP;
    o.warmup_steps = 0;
    o.step_every = 30;
    o.step_gamma = 0.1f;
    expect_lr(&o, 29, 0.1);
    expect_lr(&o, 30, 0.01);
    expect_lr(&o, 59, 0.01);
    expect_lr(&o, 60, 0.001);
    o.warmup_steps = 5; /* warm-up scales the first steps of any schedule */
    expect_lr(&o, 0, 0.02);
    expect_lr(&o, 31, 0.01);

    /* the rate each step reports is the schedule's */
    struct nn_model *m = tiny_net(5, 3);
    o.batch = 4;
    o.warmup_steps = 3;
    o.step_every = 2;
    const char *loss = "logits";
    struct nn_trainer *t = new_trainer(m, &loss, 1, &o);
    uint64_t rng = 3;
    int labels[4];
    for (int s = 0; s < 6; s++) {
        struct nn_step_stats st;
        make_batch(&rng, t, 4, 1, labels);
        step_ok(t, labels, &st);
        assert_float_equal(st.lr, nn_sgd_lr(&o, s), 0);
    }
    nn_trainer_free(t);
    nn_model_free(m);
}

static void test_options_checked(void **state)
{
    (void)state;
    struct nn_train_opts o;
    struct err_msg em = {{0}};
    nn_train_opts_default(&o);
    assert_int_equal(nn_train_opts_check(&o, &em), 0);
    o.batch = 0;
    assert_int_equal(nn_train_opts_check(&o, &em), ERR_RANGE);
    nn_train_opts_default(&o);
    o.batch = 10;
    o.segments = 3;
    assert_int_equal(nn_train_opts_check(&o, &em), ERR_INVAL);
    assert_non_null(strstr(em.text, "segments"));
    nn_train_opts_default(&o);
    o.lr = NAN;
    assert_int_equal(nn_train_opts_check(&o, &em), ERR_RANGE);
    nn_train_opts_default(&o);
    o.momentum = 1.f;
    assert_int_equal(nn_train_opts_check(&o, &em), ERR_RANGE);
    nn_train_opts_default(&o);
    o.label_smoothing = -0.1f;
    assert_int_equal(nn_train_opts_check(&o, &em), ERR_RANGE);
    nn_train_opts_default(&o);
    o.schedule = NN_LR_COSINE;
    o.warmup_steps = 10;
    o.total_steps = 10;
    assert_int_equal(nn_train_opts_check(&o, &em), ERR_INVAL);
    assert_non_null(strstr(em.text, "total_steps"));
    nn_train_opts_default(&o);
    o.schedule = NN_LR_STEP;
    o.step_every = 0;
    assert_int_equal(nn_train_opts_check(&o, &em), ERR_RANGE);
    nn_train_opts_default(&o);
    o.schedule = NN_LR_COUNT;
    assert_int_equal(nn_train_opts_check(&o, &em), ERR_RANGE);
}

static double grad_norm_now(const struct nn_trainer *t)
{
    double ss = 0;
    for (int i = 0; i < t->g->n_tensors; i++)
        for (int64_t j = 0; t->pgrad[i] && j < nn_shape_elems(&t->g->tensors[i].shape); j++)
            ss += (double)t->pgrad[i][j] * t->pgrad[i][j];
    return sqrt(ss);
}

/* Clipping rescales the gradients to the bound when their norm exceeds it, and the step
 * then moves the weights by lr times the clipped gradient. */
static void test_clipping_bounds_global_norm(void **state)
{
    (void)state;
    for (int clip = 0; clip < 2; clip++) {
        struct nn_model *m = tiny_net(17, 3);
        struct nn_train_opts o;
        nn_train_opts_default(&o);
        o.batch = 6;
        o.lr = 1.f;
        o.momentum = 0.f;
        o.weight_decay = 0.f;
        o.clip_norm = clip ? 1e-3f : 1e9f;
        const char *loss = "logits";
        struct nn_trainer *t = new_trainer(m, &loss, 1, &o);
        const struct nn_tensor *fc = &m->graph->tensors[8];
        assert_string_equal(fc->name, "fc.w");
        float before[12];
        memcpy(before, fc->data, sizeof before);
        uint64_t rng = 8;
        int labels[6];
        struct nn_step_stats st;
        make_batch(&rng, t, 6, 1, labels);
        step_ok(t, labels, &st);
        double after = grad_norm_now(t); /* the gradients as the update used them */
        assert_true(st.grad_norm > 1e-3f);
        if (clip)
            assert_true(after <= 1e-3 * (1 + 1e-5) && after > 1e-3 * (1 - 1e-4));
        else
            assert_float_equal(after, st.grad_norm, 1e-6 * st.grad_norm);
        const float *g = nn_train_param_grad(t, "fc.w");
        for (int i = 0; i < 12; i++)
            assert_true(fc->data[i] == before[i] - 1.f * g[i]);
        nn_trainer_free(t);
        nn_model_free(m);
    }
}

/* Five steps with dropout, twice from the same seed: the same bits; another seed: not. */
static void run_steps(uint64_t seed, int steps, float *losses, struct nn_model **out)
{
    struct nn_model *m = tiny_net(0xabc, 3);
    struct nn_train_opts o;
    nn_train_opts_default(&o);
    o.batch = 4;
    o.segments = 2;
    o.seed = seed;
    const char *loss = "logits";
    struct nn_trainer *t = new_trainer(m, &loss, 1, &o);
    uint64_t rng = 77;
    int labels[2];
    for (int s = 0; s < steps; s++) {
        struct nn_step_stats st;
        make_batch(&rng, t, 2, 2, labels);
        step_ok(t, labels, &st);
        losses[s] = st.loss[0];
    }
    nn_trainer_free(t);
    *out = m;
}

static void test_seed_makes_runs_repeatable(void **state)
{
    (void)state;
    float a[5], b[5], c[5];
    struct nn_model *ma, *mb, *mc;
    run_steps(1, 5, a, &ma);
    run_steps(1, 5, b, &mb);
    run_steps(2, 5, c, &mc);
    assert_memory_equal(a, b, sizeof a);
    assert_true(memcmp(a, c, sizeof a) != 0);
    for (int i = 0; i < ma->graph->n_tensors; i++)
        assert_memory_equal(ma->graph->tensors[i].data, mb->graph->tensors[i].data,
                            sizeof(float) * (size_t)nn_shape_elems(&ma->graph->tensors[i].shape));
    nn_model_free(ma);
    nn_model_free(mb);
    nn_model_free(mc);
}

/* A small two-stream network (vgg-small at width 1/8 on 16x16 frames, 4 motion channels). */
static struct nn_model *two_stream(uint64_t seed, float dropout)
{
    struct nn_model *m = nn_model_new();
    struct nn_arch_opts a = {.arch = "vgg-small", .width = 0.125f, .n_classes = 3, .seed = seed,
                             .dropout = dropout};
    const float fusion[2] = {1.f, 1.f};
    struct err_msg em = {{0}};
    if (nn_arch_two_stream(m->graph, &a, 16, 16, 4, fusion, &em))
        fail_msg("%s", em.text);
    return m;
}


static void two_stream_opts(struct nn_train_opts *o)
{
    nn_train_opts_default(o);
    o->batch = 4;
    o->segments = 2;
    o->lr = 0.05f;
    o->label_smoothing = 0.1f;
    o->clip_norm = 5.f;
    o->schedule = NN_LR_COSINE;
    o->warmup_steps = 2;
    o->total_steps = 10;
    o->seed = 42;
}

/* The batch of step s: a function of s alone, as a data loader that resumes would give. */
static void two_stream_batch(struct nn_trainer *t, int64_t s, int *labels)
{
    uint64_t rng = 1000 + (uint64_t)s;
    for (int i = 0; i < 2; i++) {
        struct nn_shape sh = nn_trainer_input_shape(t, i);
        float *x = nn_trainer_input(t, i);
        for (int64_t j = 0; j < nn_shape_elems(&sh); j++)
            x[j] = tl_uniform(&rng, -1.f, 1.f);
    }
    labels[0] = (int)(s % 3);
    labels[1] = (int)((s + 1) % 3);
}

static void two_stream_step(struct nn_trainer *t, float *loss2)
{
    int labels[2];
    struct nn_step_stats st;
    two_stream_batch(t, nn_trainer_steps(t), labels);
    step_ok(t, labels, &st);
    assert_int_equal(st.n_losses, 2);
    loss2[0] = st.loss[0];
    loss2[1] = st.loss[1];
}

/* Both built-in architectures, as two-stream networks, fit one fixed batch: the loss of
 * each stream falls (ResNet-18 adds strided 1x1 shortcuts, residual sums, a 7x7 stem). */
static void test_builtin_archs_fit_a_batch(void **state)
{
    (void)state;
    const char *archs[2] = {"vgg-small", "resnet18"};
    for (int a = 0; a < 2; a++) {
        struct nn_model *m = nn_model_new();
        struct nn_arch_opts ao = {.arch = archs[a], .width = 0.125f, .n_classes = 4, .seed = 5};
        const float fusion[2] = {1.f, 1.f};
        assert_int_equal(nn_arch_two_stream(m->graph, &ao, 32, 32, 4, fusion, NULL), 0);
        struct nn_train_opts o;
        nn_train_opts_default(&o);
        o.batch = 8;
        o.segments = 2;
        o.lr = 0.02f;
        o.threads = 2;
        struct nn_trainer *t = new_trainer(m, two_losses, 2, &o);
        int labels[4] = {0, 1, 2, 3};
        uint64_t rng = 6;
        for (int i = 0; i < 2; i++) {
            struct nn_shape sh = nn_trainer_input_shape(t, i);
            for (int64_t j = 0; j < nn_shape_elems(&sh); j++)
                nn_trainer_input(t, i)[j] = tl_uniform(&rng, -1.f, 1.f);
        }
        struct nn_step_stats first, st;
        step_ok(t, labels, &first);
        for (int s = 0; s < 30; s++)
            step_ok(t, labels, &st);
        if (verbose())
            fprintf(stderr, "%s: losses %.3f %.3f -> %.3f %.3f\n", archs[a],
                    (double)first.loss[0], (double)first.loss[1], (double)st.loss[0],
                    (double)st.loss[1]);
        assert_true(st.loss[0] < 0.5f * first.loss[0] && st.loss[1] < 0.5f * first.loss[1]);
        nn_trainer_free(t);
        nn_model_free(m);
    }
}

/* Threads split images, channels and elements, and parameter gradients are summed over
 * fixed image chunks: 1, 2 or 3 threads give the same bits. */
static void test_threads_do_not_change_results(void **state)
{
    (void)state;
    float loss[3][4][2];
    struct nn_model *m[3];
    for (int r = 0; r < 3; r++) {
        struct nn_train_opts o;
        two_stream_opts(&o);
        o.batch = 6;
        o.segments = 3;
        o.threads = r + 1;
        m[r] = two_stream(1, 0.f);
        struct nn_trainer *t = new_trainer(m[r], two_losses, 2, &o);
        for (int s = 0; s < 4; s++)
            two_stream_step(t, loss[r][s]);
        nn_trainer_free(t);
    }
    for (int r = 1; r < 3; r++) {
        assert_memory_equal(loss[0], loss[r], sizeof loss[0]);
        for (int i = 0; i < m[0]->graph->n_tensors; i++)
            assert_memory_equal(m[0]->graph->tensors[i].data, m[r]->graph->tensors[i].data,
                                sizeof(float) *
                                    (size_t)nn_shape_elems(&m[0]->graph->tensors[i].shape));
    }
    for (int r = 0; r < 3; r++)
        nn_model_free(m[r]);
}

/* Train 3 steps, save, train 4 more; a fresh trainer (other initial weights) resumed from
 * the checkpoint gives the same 4 pairs of losses and the same weights, bit for bit. */
static void test_resume_continues_exactly(void **state)
{
    char path[128];
    path_in(state, "a.ckpt", path, sizeof path);
    struct nn_train_opts o;
    two_stream_opts(&o);
    struct err_msg em = {{0}};
    struct nn_model *ma = two_stream(1, 0.f);
    struct nn_trainer *ta = new_trainer(ma, two_losses, 2, &o);
    float la[7][2], lb[7][2];
    for (int s = 0; s < 3; s++)
        two_stream_step(ta, la[s]);
    if (nn_trainer_save(ta, path, &em))
        fail_msg("%s", em.text);
    for (int s = 3; s < 7; s++)
        two_stream_step(ta, la[s]);

    struct nn_model *mb = two_stream(2, 0.f);
    o.threads = 2; /* not part of a run's identity: results do not depend on it */
    struct nn_trainer *tb = new_trainer(mb, two_losses, 2, &o);
    if (nn_trainer_resume(tb, path, &em))
        fail_msg("%s", em.text);
    assert_int_equal(nn_trainer_steps(tb), 3);
    for (int s = 3; s < 7; s++)
        two_stream_step(tb, lb[s]);
    assert_memory_equal(la[3], lb[3], sizeof(float) * 2 * 4);
    for (int i = 0; i < ma->graph->n_tensors; i++)
        assert_memory_equal(ma->graph->tensors[i].data, mb->graph->tensors[i].data,
                            sizeof(float) * (size_t)nn_shape_elems(&ma->graph->tensors[i].shape));
    if (verbose())
        fprintf(stderr, "resume: losses at step 6 %.6f %.6f in both runs\n", (double)la[6][0],
                (double)la[6][1]);
    nn_trainer_free(ta);
    nn_trainer_free(tb);
    nn_model_free(ma);
    nn_model_free(mb);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*len);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void spill(const char *path, const unsigned char *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, len, f), len);
    fclose(f);
}

/* Resuming from path fails with code and a message holding `words`, and leaves t as it was. */
static void expect_refused(struct nn_trainer *t, const char *path, int code, const char *words)
{
    struct err_msg em = {{0}};
    const struct nn_tensor *w = &t->g->tensors[0];
    size_t bytes = sizeof(float) * (size_t)nn_shape_elems(&w->shape);
    float *before = malloc(bytes);
    memcpy(before, w->data, bytes);
    int rc = nn_trainer_resume(t, path, &em);
    if (rc != code || !strstr(em.text, words))
        fail_msg("resume: %d '%s', want %d with '%s'", rc, em.text, code, words);
    assert_int_equal(nn_trainer_steps(t), 0);
    assert_memory_equal(before, w->data, bytes);
    free(before);
}

static void test_checkpoint_errors(void **state)
{
    char good[128], bad[128];
    path_in(state, "a.ckpt", good, sizeof good);
    path_in(state, "bad.ckpt", bad, sizeof bad);
    struct nn_train_opts o;
    two_stream_opts(&o);
    struct err_msg em = {{0}};
    struct nn_model *m = two_stream(1, 0.f);
    struct nn_trainer *t = new_trainer(m, two_losses, 2, &o);
    float l[2];
    two_stream_step(t, l);
    assert_int_equal(nn_trainer_save(t, good, &em), 0);
    size_t len;
    unsigned char *b = slurp(good, &len);

    struct nn_model *m2 = two_stream(3, 0.f);
    struct nn_trainer *t2 = new_trainer(m2, two_losses, 2, &o);
    expect_refused(t2, "/nonexistent/x.ckpt", ERR_NOTFOUND, "x.ckpt");
    spill(bad, (const unsigned char *)"hello, world", 12);
    expect_refused(t2, bad, ERR_FORMAT, "not an actiond checkpoint");
    const size_t cuts[6] = {0, 9, 30, 60, 1000, 1};
    for (int i = 0; i < 6; i++) {
        size_t n = i == 5 ? len - 1 : cuts[i];
        spill(bad, b, n);
        expect_refused(t2, bad, ERR_FORMAT, n >= 52 ? "truncated" : "");
    }
    unsigned char *c = malloc(len + 8);
    memcpy(c, b, len);
    spill(bad, c, len + 8); /* trailing garbage */
    expect_refused(t2, bad, ERR_FORMAT, "oversized");
    c[len / 2] ^= 0x10;
    spill(bad, c, len);
    expect_refused(t2, bad, ERR_CORRUPT, "checksum");
    memcpy(c, b, len);
    c[8] = 2; /* version */
    spill(bad, c, len);
    expect_refused(t2, bad, ERR_VERSION, "version 2");
    free(c);
    nn_trainer_free(t2);

    struct nn_train_opts o2 = o;
    o2.lr = 0.02f;
    t2 = new_trainer(m2, two_losses, 2, &o2);
    expect_refused(t2, good, ERR_INVAL, "lr 0.0500000007, this run has 0.0199999996");
    nn_trainer_free(t2);
    t2 = new_trainer(m2, two_losses, 1, &o);
    expect_refused(t2, good, ERR_INVAL, "2 losses");
    nn_trainer_free(t2);
    nn_model_free(m2);

    m2 = two_stream(1, 0.3f); /* another Dropout ratio: another graph */
    t2 = new_trainer(m2, two_losses, 2, &o);
    expect_refused(t2, good, ERR_INVAL, "another graph");
    nn_trainer_free(t2);
    nn_model_free(m2);
    m2 = nn_model_new(); /* the same graph with 4 classes: tensors of other shapes */
    struct nn_arch_opts a = {.arch = "vgg-small", .width = 0.125f, .n_classes = 4, .seed = 1};
    const float fusion[2] = {1.f, 1.f};
    assert_int_equal(nn_arch_two_stream(m2->graph, &a, 16, 16, 4, fusion, NULL), 0);
    t2 = new_trainer(m2, two_losses, 2, &o);
    expect_refused(t2, good, ERR_INVAL, "another shape");
    nn_trainer_free(t2);
    nn_model_free(m2);

    free(b);
    nn_trainer_free(t);
    nn_model_free(m);
}

/* After training, the BN running statistics sit in the BN tensors: inference through
 * nn_plan/nn_run on the folded graph matches the trainer's eval forward. */
static void test_inference_uses_trained_bn_stats(void **state)
{
    (void)state;
    struct nn_model *m = tiny_net(0xb5, 3);
    struct nn_train_opts o;
    nn_train_opts_default(&o);
    o.batch = 6;
    o.lr = 0.05f;
    o.bn_momentum = 0.3f;
    const char *loss = "logits";
    struct nn_trainer *t = new_trainer(m, &loss, 1, &o);
    uint64_t rng = 21;
    int labels[6];
    struct nn_step_stats st;
    for (int s = 0; s < 15; s++) {
        make_batch(&rng, t, 6, 1, labels);
        step_ok(t, labels, &st);
    }
    const float *run_mean = m->graph->tensors[3].data;
    assert_string_equal(m->graph->tensors[3].name, "bn1.m");
    assert_true(fabsf(run_mean[0]) > 1e-3f); /* moved away from its initial 0 */
    make_batch(&rng, t, 6, 1, labels);
    float x[6 * 128], want[18], again[18];
    memcpy(x, nn_trainer_input(t, 0), sizeof x);
    assert_int_equal(nn_trainer_eval(t, labels, &st, NULL), 0);
    struct nn_shape ls;
    memcpy(want, nn_trainer_value(t, "logits", &ls), sizeof want);
    assert_int_equal(nn_shape_elems(&ls), 18);
    assert_int_equal(nn_trainer_eval(t, NULL, NULL, NULL), 0);
    memcpy(again, nn_trainer_value(t, "logits", NULL), sizeof again);
    assert_memory_equal(want, again, sizeof want); /* eval changes nothing */
    nn_trainer_free(t);

    assert_int_equal(nn_graph_fold_bn(m->graph, NULL), 0);
    struct nn_plan *p = NULL;
    struct nn_ctx *c = NULL;
    assert_int_equal(nn_plan_new(m->graph, 6, &p, NULL), 0);
    assert_int_equal(nn_ctx_new(p, &c), 0);
    memcpy(nn_ctx_input(c, 0), x, sizeof x);
    nn_run(c);
    double e = tl_rel_l2(nn_ctx_output(c, 0), want, 18);
    if (verbose())
        fprintf(stderr, "inference vs trainer eval: relative error %.2e\n", e);
    assert_true(e < 1e-5);
    nn_ctx_free(c);
    nn_plan_free(p);
    nn_model_free(m);
}

/* The per-channel mean and unbiased variance of value c1 ([6, 4, 8, 8]) of the last forward. */
static void c1_stats(const struct nn_trainer *t, double *mean, double *var)
{
    struct nn_shape sh;
    const float *v = nn_trainer_value(t, "c1", &sh);
    assert_non_null(v);
    int n = sh.d[0], c = sh.d[1], hw = sh.d[2] * sh.d[3];
    for (int ch = 0; ch < c; ch++) {
        double s = 0, q = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < hw; j++)
                s += v[((size_t)i * c + ch) * hw + j];
        mean[ch] = s / ((double)n * hw);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < hw; j++) {
                double d = v[((size_t)i * c + ch) * hw + j] - mean[ch];
                q += d * d;
            }
        var[ch] = q / ((double)n * hw - 1);
    }
}

/* Adaptive BN: observing a batch with momentum 1 sets the running statistics to that batch's
 * (variance unbiased), a second with 1/2 averages the two; no weight and no step changes. */
static void test_observe_bn(void **state)
{
    (void)state;
    struct nn_model *m = tiny_net(0xab, 3);
    struct nn_train_opts o;
    nn_train_opts_default(&o);
    o.batch = 6;
    const char *loss = "logits";
    struct nn_trainer *t = new_trainer(m, &loss, 1, &o);
    float *run_mean = m->graph->tensors[3].data, *run_var = m->graph->tensors[4].data;
    assert_string_equal(m->graph->tensors[4].name, "bn1.v");
    for (int ch = 0; ch < 4; ch++) {
        run_mean[ch] = 100.f; /* statistics of filters long gone */
        run_var[ch] = 50.f;
    }
    float w0[4 * 2 * 9];
    assert_string_equal(m->graph->tensors[0].name, "c1.w");
    memcpy(w0, m->graph->tensors[0].data, sizeof w0);
    uint64_t rng = 5;
    int labels[6];
    double mean1[4], var1[4], mean2[4], var2[4];
    make_batch(&rng, t, 6, 1, labels);
    struct err_msg em = {{0}};
    assert_int_equal(nn_trainer_observe_bn(t, 1.f, &em), 0);
    c1_stats(t, mean1, var1);
    for (int ch = 0; ch < 4; ch++) {
        assert_true(fabs(run_mean[ch] - mean1[ch]) < 1e-4 * (1 + fabs(mean1[ch])));
        assert_true(fabs(run_var[ch] - var1[ch]) < 1e-4 * var1[ch]);
    }
    make_batch(&rng, t, 6, 1, labels);
    assert_int_equal(nn_trainer_observe_bn(t, 0.5f, &em), 0);
    c1_stats(t, mean2, var2);
    for (int ch = 0; ch < 4; ch++) {
        double want = (mean1[ch] + mean2[ch]) / 2, want_v = (var1[ch] + var2[ch]) / 2;
        assert_true(fabs(run_mean[ch] - want) < 1e-4 * (1 + fabs(want)));
        assert_true(fabs(run_var[ch] - want_v) < 1e-4 * want_v);
    }
    assert_memory_equal(w0, m->graph->tensors[0].data, sizeof w0);
    assert_int_equal(nn_trainer_steps(t), 0);
    assert_int_equal(nn_trainer_observe_bn(t, 0.f, &em), ERR_RANGE);
    assert_non_null(strstr(em.text, "momentum"));
    nn_trainer_free(t);
    nn_model_free(m);
}

static void expect_new_fails(struct nn_model *m, const char *loss, const struct nn_train_opts *o,
                             int code, const char *words)
{
    struct nn_trainer *t = NULL;
    struct err_msg em = {{0}};
    int rc = nn_trainer_new(m, &loss, 1, o, &t, &em);
    if (rc != code || !strstr(em.text, words) || t)
        fail_msg("nn_trainer_new: %d '%s', want %d with '%s'", rc, em.text, code, words);
}

static void test_trainer_refusals(void **state)
{
    (void)state;
    struct nn_model *m = tiny_net(4, 3);
    struct nn_train_opts o;
    nn_train_opts_default(&o);
    o.batch = 4;
    expect_new_fails(m, "nope", &o, ERR_NOTFOUND, "'nope'");
    expect_new_fails(m, "c1", &o, ERR_INVAL, "not [batch, classes]");
    o.segments = 3;
    expect_new_fails(m, "logits", &o, ERR_INVAL, "multiple of segments");
    o.segments = 1;

    /* a bad label or a loss that is not finite changes nothing */
    const char *loss = "logits";
    struct nn_trainer *t = new_trainer(m, &loss, 1, &o);
    uint64_t rng = 5;
    int labels[4];
    make_batch(&rng, t, 4, 1, labels);
    float w0 = m->graph->tensors[0].data[0], mean0 = m->graph->tensors[3].data[0];
    struct err_msg em = {{0}};
    labels[2] = 3;
    assert_int_equal(nn_trainer_step(t, labels, NULL, &em), ERR_RANGE);
    assert_non_null(strstr(em.text, "label 3 of clip 2"));
    labels[2] = 0;
    nn_trainer_input(t, 0)[5] = NAN;
    assert_int_equal(nn_trainer_step(t, labels, NULL, &em), ERR_RANGE);
    assert_non_null(strstr(em.text, "not finite"));
    assert_int_equal(nn_trainer_steps(t), 0);
    assert_true(m->graph->tensors[0].data[0] == w0);
    assert_true(m->graph->tensors[3].data[0] == mean0);
    labels[0] = -1;
    assert_int_equal(nn_trainer_eval(t, labels, NULL, &em), ERR_RANGE);
    nn_trainer_free(t);
    nn_trainer_free(NULL);

    assert_int_equal(nn_graph_fold_bn(m->graph, NULL), 0);
    expect_new_fails(m, "logits", &o, ERR_INVAL, "folded");
    nn_model_free(m);

    m = nn_model_new(); /* nothing to train */
    input(m->graph, "x", tl_shape(2, 1, 3, 0, 0));
    add(m->graph, tl_node("sm", NN_OP_SOFTMAX, "x", "y"));
    assert_int_equal(nn_graph_add_output(m->graph, "y", NULL), 0);
    expect_new_fails(m, "y", &o, ERR_INVAL, "no trainable parameter");
    nn_model_free(m);
}

static void test_dropout_masks(void **state)
{
    (void)state;
    enum { N = 100000 };
    float *a = malloc(sizeof(float) * N), *b = malloc(sizeof(float) * N);
    nn_dropout_mask(7, 3, 12, 0.3f, a, N);
    int zeros = 0;
    for (int i = 0; i < N; i++) {
        assert_true(a[i] == 0.f || a[i] == 1.f / 0.7f);
        zeros += a[i] == 0.f;
        assert_true(a[i] == nn_dropout_scale(7, 3, 12, (size_t)i, 0.3f));
    }
    assert_true(abs(zeros - 30000) < 600); /* ~4 standard deviations */
    nn_dropout_mask(7, 3, 12, 0.3f, b, N);
    assert_memory_equal(a, b, sizeof(float) * N); /* a pure function of its arguments */
    nn_dropout_mask(7, 4, 12, 0.3f, b, N);
    assert_true(memcmp(a, b, sizeof(float) * N) != 0); /* another step, another mask */
    nn_dropout_mask(7, 3, 12, 0.f, b, N);
    for (int i = 0; i < N; i++)
        assert_true(b[i] == 1.f);
    free(a);
    free(b);
}

/* ACTIOND_TRAIN_BENCH=1 (steps: ACTIOND_TRAIN_BENCH_STEPS, default 5; threads:
 * ACTIOND_TRAIN_BENCH_THREADS, default 2): the default two-stream vgg-small (width 1,
 * 112x112, 10 motion channels), 8 clips x 3 segments; prints ms per step. Does nothing
 * otherwise. */
static void test_bench_two_stream_step(void **state)
{
    (void)state;
    if (!getenv("ACTIOND_TRAIN_BENCH"))
        return; /* not skip(): cmocka's TAP reports a skip as "not ok" */
    struct nn_model *m = nn_model_new();
    struct nn_arch_opts a = {.arch = "vgg-small", .width = 1.f, .n_classes = 10, .seed = 1};
    const float fusion[2] = {1.f, 1.5f};
    assert_int_equal(nn_arch_two_stream(m->graph, &a, 112, 112, 10, fusion, NULL), 0);
    struct nn_train_opts o;
    nn_train_opts_default(&o);
    o.batch = 24;
    o.segments = 3;
    const char *th = getenv("ACTIOND_TRAIN_BENCH_THREADS");
    o.threads = th ? atoi(th) : 2;
    struct nn_trainer *t = new_trainer(m, two_losses, 2, &o);
    uint64_t rng = 1;
    for (int i = 0; i < 2; i++) {
        struct nn_shape sh = nn_trainer_input_shape(t, i);
        for (int64_t j = 0; j < nn_shape_elems(&sh); j++)
            nn_trainer_input(t, i)[j] = tl_uniform(&rng, -1.f, 1.f);
    }
    int labels[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    struct nn_step_stats st;
    step_ok(t, labels, &st);
    int steps = getenv("ACTIOND_TRAIN_BENCH_STEPS") ? atoi(getenv("ACTIOND_TRAIN_BENCH_STEPS")) : 5;
    double best = 1e9, total = 0;
    for (int s = 0; s < steps; s++) {
        uint64_t t0 = clock_mono_ns();
        step_ok(t, labels, &st);
        double ms = (double)(clock_mono_ns() - t0) * 1e-6;
        best = ms < best ? ms : best;
        total += ms;
    }
    fprintf(stderr, "two-stream vgg-small 112x112, 8 clips x 3 segments, %d threads: %.1f "
                    "ms/step mean, %.1f min over %d steps (%.1f clips/s); trainer memory %.0f "
                    "MB; BLAS %s\n",
            o.threads, total / steps, best, steps, 8 * 1000.0 * steps / total,
            (double)t->bytes / 1e6, nn_blas_core());
    nn_trainer_free(t);
    nn_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_conv),
        cmocka_unit_test(test_grad_conv_winograd),
        cmocka_unit_test(test_grad_tucker),
        cmocka_unit_test(test_grad_batchnorm),
        cmocka_unit_test(test_grad_activations),
        cmocka_unit_test(test_grad_pools),
        cmocka_unit_test(test_grad_add_wsum),
        cmocka_unit_test(test_grad_concat),
        cmocka_unit_test(test_grad_reshape_flatten_gemm),
        cmocka_unit_test(test_grad_softmax),
        cmocka_unit_test(test_grad_dropout),
        cmocka_unit_test(test_grad_batchmean),
        cmocka_unit_test(test_grad_softmax_ce),
        cmocka_unit_test(test_grad_network),
        cmocka_unit_test(test_learns_separable_problem),
        cmocka_unit_test(test_soft_targets),
        cmocka_unit_test(test_soft_targets_temperature),
        cmocka_unit_test(test_fused_kl),
        cmocka_unit_test(test_fused_target),
        cmocka_unit_test(test_sgd_step_by_hand),
        cmocka_unit_test(test_lr_schedules),
        cmocka_unit_test(test_options_checked),
        cmocka_unit_test(test_clipping_bounds_global_norm),
        cmocka_unit_test(test_seed_makes_runs_repeatable),
        cmocka_unit_test(test_builtin_archs_fit_a_batch),
        cmocka_unit_test(test_threads_do_not_change_results),
        cmocka_unit_test_setup_teardown(test_resume_continues_exactly, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_checkpoint_errors, setup_dir, teardown_dir),
        cmocka_unit_test(test_inference_uses_trained_bn_stats),
        cmocka_unit_test(test_observe_bn),
        cmocka_unit_test(test_trainer_refusals),
        cmocka_unit_test(test_dropout_masks),
        cmocka_unit_test(test_bench_two_stream_step),
    };
    return cmocka_run_group_tests_name("train", tests, NULL, NULL);
}
