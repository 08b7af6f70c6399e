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

static struct nn_node_desc node(const char *name, enum nn_op op, const char *in, const char *out)
{
    struct nn_node_desc d;
    memset(&d, 0, sizeof d);
    d.name = name;
    d.op = op;
    d.n_in = 1;
    d.in[0] = in;
    d.out = out;
    nn_attrs_default(&d.attrs);
    return d;
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
    struct nn_node_desc d = node("conv", NN_OP_CONV, "x", "y");
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
    struct nn_node_desc d = node("conv", NN_OP_CONV, "x", "y");
    params(&d, 2, "w", "b", NULL, NULL);
    d.attrs.group = 2;
    check_unary(m, d, 3, fill_uniform, "conv 1x1 grouped");
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
        struct nn_node_desc d = node("tucker", NN_OP_TUCKERCONV, "x", "y");
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
        struct nn_node_desc d = node("bn", NN_OP_BATCHNORM, "x", "y");
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
        struct nn_node_desc d = node(names[i], ops[i], "x", "y");
        d.attrs.alpha = 0.2f;
        struct nn_model *m = unary_model(tl_shape(4, 1, 3, 5, 4));
        check_unary(m, d, 2, fill_away_from_kinks, names[i]);
    }
}

static void pool_case(enum nn_op op, int k, int stride, int pad, int dil, int ceil, int incl,
                      const char *what)
{
    struct nn_node_desc d = node("pool", op, "x", "y");
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
    pool_case(NN_OP_MAXPOOL, 2, 2, 0, 1, 1, 0, "maxpool 2/2 ceil");
    pool_case(NN_OP_MAXPOOL, 2, 1, 1, 2, 0, 0, "maxpool dilated");
    pool_case(NN_OP_AVGPOOL, 3, 2, 1, 1, 0, 0, "avgpool excl pad");
    pool_case(NN_OP_AVGPOOL, 3, 2, 1, 1, 1, 1, "avgpool incl pad");
    struct nn_node_desc d = node("gap", NN_OP_GLOBALAVGPOOL, "x", "y");
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
        struct nn_node_desc d = node("add", NN_OP_ADD, "a", "s");
        d.n_in = 2;
        d.in[1] = same ? "a" : "b";
        add(m->graph, d);
        struct nn_node_desc d2 = node("sum2", NN_OP_ADD, "s", "y"); /* a second reader of b */
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
    struct nn_node_desc d = node("wsum", NN_OP_WSUM, "a", "y");
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
        struct nn_node_desc d = node("cat", NN_OP_CONCAT, "a", "y");
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
        struct nn_node_desc r = node("reshape", NN_OP_RESHAPE, "x", "r");
        r.attrs.shape_ndim = 3;
        r.attrs.shape[0] = 0;
        r.attrs.shape[1] = 4;
        r.attrs.shape[2] = -1;
        add(g, r);
        add(g, node("flatten", NN_OP_FLATTEN, "r", "f"));
        tl_tensor(g, "w", tl_shape(2, 5, 12, 0, 0), &rng);
        tl_tensor(g, "b", tl_shape(1, 5, 0, 0, 0), &rng);
        struct nn_node_desc d = node("fc", NN_OP_GEMM, "f", "y");
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
        struct nn_node_desc d = node("softmax", NN_OP_SOFTMAX, "x", "y");
        d.attrs.axis = axes[i];
        struct nn_model *m = unary_model(shapes[i]);
        check_unary(m, d, 3, fill_uniform, i ? "softmax axis 2" : "softmax axis 1");
    }
}

/* Dropout with the trainer's mask of step 0 (the reference draws the same mask). */
static void test_grad_dropout(void **state)
{
    (void)state;
    struct nn_node_desc d = node("drop", NN_OP_DROPOUT, "x", "y");
    d.attrs.ratio = 0.3f;
    struct nn_model *m = unary_model(tl_shape(2, 1, 20, 0, 0));
    check_unary(m, d, 4, fill_uniform, "dropout 0.3");
}

static void test_grad_batchmean(void **state)
{
    (void)state;
    struct nn_node_desc d = node("mean", NN_OP_BATCHMEAN, "x", "y");
    struct nn_model *m = unary_model(tl_shape(2, 1, 6, 0, 0));
    check_unary(m, d, 4, fill_uniform, "batchmean");
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
        struct nn_node_desc d = node("fc", NN_OP_GEMM, "x", "logits");
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
static struct nn_model *tiny_net(uint64_t seed, int classes)
{
    uint64_t rng = seed;
    struct nn_model *m = nn_model_new();
    struct nn_graph *g = m->graph;
    input(g, "x", tl_shape(4, 1, 2, 8, 8));
    tl_tensor(g, "c1.w", tl_shape(4, 4, 2, 3, 3), &rng);
    bn_tensors(g, "bn1", 4, &rng);
    tl_tensor(g, "c2.w", tl_shape(4, 4, 2, 3, 3), &rng);
    tl_tensor(g, "c2.b", tl_shape(1, 4, 0, 0, 0), &rng);
    tl_tensor(g, "sc.w", tl_shape(4, 4, 4, 1, 1), &rng);
    tl_tensor(g, "fc.w", tl_shape(2, classes, 4, 0, 0), &rng);
    tl_tensor(g, "fc.b", tl_shape(1, classes, 0, 0, 0), &rng);
    struct nn_node_desc d = node("c1", NN_OP_CONV, "x", "c1");
    params(&d, 1, "c1.w", NULL, NULL, NULL);
    d.attrs.pad[0] = d.attrs.pad[1] = d.attrs.pad[2] = d.attrs.pad[3] = 1;
    add(g, d);
    d = node("bn1", NN_OP_BATCHNORM, "c1", "bn1");
    params(&d, 4, "bn1.g", "bn1.b", "bn1.m", "bn1.v");
    add(g, d);
    add(g, node("relu1", NN_OP_RELU, "bn1", "r1"));
    d = node("pool", NN_OP_MAXPOOL, "r1", "p");
    d.attrs.kernel[0] = d.attrs.kernel[1] = 2;
    d.attrs.stride[0] = d.attrs.stride[1] = 2;
    add(g, d);
    d = node("c2", NN_OP_CONV, "p", "c2");
    params(&d, 2, "c2.w", "c2.b", NULL, NULL);
    d.attrs.group = 2;
    d.attrs.pad[0] = d.attrs.pad[1] = d.attrs.pad[2] = d.attrs.pad[3] = 1;
    add(g, d);
    d = node("sc", NN_OP_CONV, "p", "sc");
    params(&d, 1, "sc.w", NULL, NULL, NULL);
    add(g, d);
    d = node("add", NN_OP_ADD, "c2", "s");
    d.n_in = 2;
    d.in[1] = "sc";
    add(g, d);
    add(g, node("relu2", NN_OP_LEAKYRELU, "s", "r2"));
    add(g, node("gap", NN_OP_GLOBALAVGPOOL, "r2", "gap"));
    add(g, node("flat", NN_OP_FLATTEN, "gap", "f"));
    d = node("drop", NN_OP_DROPOUT, "f", "dr");
    d.attrs.ratio = 0.25f;
    add(g, d);
    d = node("fc", NN_OP_GEMM, "dr", "logits");
    params(&d, 2, "fc.w", "fc.b", NULL, NULL);
    add(g, d);
    assert_int_equal(nn_graph_add_output(g, "logits", NULL), 0);
    assert_int_equal(nn_graph_check(g, NULL), 0);
    return m;
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_conv),
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
    };
    return cmocka_run_group_tests_name("train", tests, NULL, NULL);
}
