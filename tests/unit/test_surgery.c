/* test_surgery.c — compress/surgery*.c: groups on built-in and hand-built graphs, pruning
 * against the model with removed channels made inert, costs, Tucker/SVD rebuilds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "nn_testlib.h"
#include "compress/surgery.h"

#include <stdio.h>

#define SEGMENTS 2

/* ---- models ---- */

static void must(int rc, const struct err_msg *em, const char *what)
{
    if (rc < 0)
        fail_msg("%s: %s", what, em->text);
}

static int node_index(const struct nn_graph *g, const char *name)
{
    struct nn_node_view v;
    for (int k = 0; k < nn_graph_n_nodes(g); k++)
        if (nn_graph_node_view(g, k, &v) == 0 && strcmp(v.name, name) == 0)
            return k;
    return -1;
}

static struct nn_node_view view_of(const struct nn_graph *g, const char *name)
{
    struct nn_node_view v;
    int k = node_index(g, name);
    if (k < 0)
        fail_msg("no node '%s'", name);
    nn_graph_node_view(g, k, &v);
    return v;
}

/* BN away from identity, so a wrong slice of any of its four vectors shows. */
static void randomise_bn(struct nn_graph *g, uint64_t seed)
{
    uint64_t rng = seed | 1;
    static const float lo[4] = {0.5f, -0.5f, -0.3f, 0.5f}, hi[4] = {1.5f, 0.5f, 0.3f, 2.f};
    for (int k = 0; k < nn_graph_n_nodes(g); k++) {
        struct nn_node_view v;
        nn_graph_node_view(g, k, &v);
        if (v.op != NN_OP_BATCHNORM)
            continue;
        for (int i = 0; i < 4; i++) {
            struct nn_shape s;
            float *p = nn_graph_tensor(g, v.params[i], &s);
            for (int c = 0; c < s.d[0]; c++)
                p[c] = tl_uniform(&rng, lo[i], hi[i]);
        }
    }
}

/* Smaller logits keep the softmax outputs away from saturation, where they would hide
 * differences upstream. */
static void scale_tensor(struct nn_graph *g, const char *name, float f)
{
    struct nn_shape s;
    float *p = nn_graph_tensor(g, name, &s);
    assert_non_null(p);
    for (int64_t i = 0; i < nn_shape_elems(&s); i++)
        p[i] *= f;
}

static const char *const classes[5] = {"walk", "run", "wave", "sit", "fall"};

static struct nn_model *vgg_two_stream(uint64_t seed)
{
    struct nn_model *m = nn_model_new();
    struct err_msg em = {{0}};
    struct nn_arch_opts o = {.arch = "vgg-small", .width = 0.25f, .n_classes = 5, .seed = seed};
    float fusion[2] = {1.f, 1.5f};
    must(nn_arch_two_stream(m->graph, &o, 32, 32, 4, fusion, &em), &em, "two_stream");
    must(nn_model_set_classes(m, 5, classes, &em), &em, "classes");
    m->meta.height = m->meta.width = 32;
    m->meta.motion = NN_MOTION_MV;
    m->meta.motion_len = 2;
    m->meta.segments = SEGMENTS;
    m->meta.fusion[0] = 1.f;
    m->meta.fusion[1] = 1.5f;
    m->meta.fps = 12.5f;
    snprintf(m->meta.arch, sizeof m->meta.arch, "vgg-small");
    randomise_bn(m->graph, seed);
    scale_tensor(m->graph, "rgb/fc.weight", 0.2f);
    scale_tensor(m->graph, "motion/fc.weight", 0.2f);
    return m;
}

static struct nn_model *resnet18(uint64_t seed)
{
    struct nn_model *m = nn_model_new();
    struct err_msg em = {{0}};
    struct nn_arch_opts o = {.arch = "resnet18", .width = 0.25f, .n_classes = 5, .seed = seed};
    must(nn_arch_classifier(m->graph, &o, 3, 32, 32, &em), &em, "classifier");
    must(nn_model_set_classes(m, 5, classes, &em), &em, "classes");
    snprintf(m->meta.arch, sizeof m->meta.arch, "resnet18");
    randomise_bn(m->graph, seed);
    return m;
}

/* ---- the hand-built graph ---- */

static void add_node(struct nn_graph *g, struct nn_node_desc d)
{
    struct err_msg em = {{0}};
    must(nn_graph_add_node(g, &d, &em), &em, d.name);
}

static void conv(struct nn_graph *g, const char *name, const char *in, int cin, int cout, int k,
                 int group, int bias, uint64_t *rng)
{
    char w[NN_NAME_MAX], b[NN_NAME_MAX], out[NN_NAME_MAX];
    snprintf(w, sizeof w, "%s.w", name);
    snprintf(b, sizeof b, "%s.b", name);
    snprintf(out, sizeof out, "%s.out", name);
    tl_tensor(g, w, tl_shape(4, cout, cin / group, k, k), rng);
    struct nn_node_desc d = tl_node(name, NN_OP_CONV, in, out);
    d.n_params = 1;
    d.params[0] = w;
    if (bias) {
        tl_tensor(g, b, tl_shape(1, cout, 0, 0, 0), rng);
        d.n_params = 2;
        d.params[1] = b;
    }
    d.attrs.group = group;
    d.attrs.pad[0] = d.attrs.pad[1] = d.attrs.pad[2] = d.attrs.pad[3] = k / 2;
    add_node(g, d);
}

static void bn(struct nn_graph *g, const char *name, const char *in, int c, uint64_t *rng)
{
    char p[4][NN_NAME_MAX], out[NN_NAME_MAX];
    static const char *const sfx[4] = {"g", "b", "m", "v"};
    struct nn_node_desc d = tl_node(name, NN_OP_BATCHNORM, in, out);
    snprintf(out, sizeof out, "%s.out", name);
    for (int i = 0; i < 4; i++) {
        snprintf(p[i], sizeof p[i], "%s.%s", name, sfx[i]);
        tl_tensor(g, p[i], tl_shape(1, c, 0, 0, 0), rng);
        d.params[i] = p[i];
    }
    float *var = nn_graph_tensor(g, p[3], NULL);
    for (int i = 0; i < c; i++)
        var[i] = 0.5f + var[i] * var[i];
    d.n_params = 4;
    add_node(g, d);
}

/* x [1,3,6,6]: c1 -> b1 -> r1 and c2 -> b2 tied by an Add (one group, two producers),
 * read by c4; c3 and c4 feed a Concat; c5 reads the Concat and feeds a Gemm through a
 * Flatten of 6x6 and a 1x1 conv c6 whose output goes to a Softmax; c7 and c8 feed a
 * WeightedSum; c10 feeds a depthwise conv dw. */
static struct nn_model *tiny_model(void)
{
    uint64_t rng = 77;
    struct nn_model *m = nn_model_new();
    struct nn_graph *g = m->graph;
    struct err_msg em = {{0}};
    struct nn_shape xs = tl_shape(4, 1, 3, 6, 6);
    must(nn_graph_add_input(g, "x", &xs, &em), &em, "input");
    conv(g, "c1", "x", 3, 4, 3, 1, 1, &rng);
    bn(g, "b1", "c1.out", 4, &rng);
    add_node(g, tl_node("r1", NN_OP_RELU, "b1.out", "r1.out"));
    conv(g, "c2", "r1.out", 4, 4, 3, 1, 1, &rng);
    bn(g, "b2", "c2.out", 4, &rng);
    struct nn_node_desc d = tl_node("add", NN_OP_ADD, "r1.out", "add.out");
    d.n_in = 2;
    d.in[1] = "b2.out";
    add_node(g, d);
    add_node(g, tl_node("r2", NN_OP_RELU, "add.out", "r2.out"));
    conv(g, "c3", "x", 3, 2, 1, 1, 0, &rng);
    conv(g, "c4", "r2.out", 4, 3, 3, 1, 1, &rng);
    d = tl_node("cat", NN_OP_CONCAT, "c3.out", "cat.out");
    d.n_in = 2;
    d.in[1] = "c4.out";
    add_node(g, d);
    conv(g, "c5", "cat.out", 5, 4, 3, 1, 1, &rng);
    add_node(g, tl_node("r5", NN_OP_RELU, "c5.out", "r5.out"));
    add_node(g, tl_node("fl", NN_OP_FLATTEN, "r5.out", "fl.out"));
    tl_tensor(g, "fc.w", tl_shape(2, 3, 4 * 36, 0, 0), &rng);
    tl_tensor(g, "fc.b", tl_shape(1, 3, 0, 0, 0), &rng);
    d = tl_node("fc", NN_OP_GEMM, "fl.out", "logits");
    d.n_params = 2;
    d.params[0] = "fc.w";
    d.params[1] = "fc.b";
    add_node(g, d);
    conv(g, "c6", "r5.out", 4, 2, 1, 1, 0, &rng);
    add_node(g, tl_node("sm", NN_OP_SOFTMAX, "c6.out", "sm.out"));
    conv(g, "c7", "x", 3, 2, 3, 1, 0, &rng);
    conv(g, "c8", "x", 3, 2, 3, 1, 0, &rng);
    d = tl_node("ws", NN_OP_WSUM, "c7.out", "ws.out");
    d.n_in = 2;
    d.in[1] = "c8.out";
    d.attrs.weights[0] = 0.5f;
    d.attrs.weights[1] = 2.f;
    add_node(g, d);
    conv(g, "c10", "x", 3, 4, 1, 1, 0, &rng);
    conv(g, "dw", "c10.out", 4, 4, 3, 4, 0, &rng);
    const char *outs[4] = {"logits", "sm.out", "ws.out", "dw.out"};
    for (int i = 0; i < 4; i++)
        must(nn_graph_add_output(g, outs[i], &em), &em, outs[i]);
    must(nn_graph_check(g, &em), &em, "check");
    return m;
}

/* ---- running ---- */

/* Every output of g for `batch` rows of seeded random inputs, concatenated. */
static float *run_all(const struct nn_graph *g, int batch, uint64_t seed, size_t *len)
{
    struct nn_plan *p = NULL;
    struct nn_ctx *c = NULL;
    struct err_msg em = {{0}};
    must(nn_plan_new(g, batch, &p, &em), &em, "plan");
    assert_int_equal(nn_ctx_new(p, &c), 0);
    nn_ctx_set_kernels(c, NN_KERNELS_REF);
    for (int i = 0; i < nn_graph_n_inputs(g); i++) {
        struct nn_shape s = nn_plan_input_shape(p, i);
        float *x = nn_ctx_input(c, i);
        uint64_t r = seed + (uint64_t)i * 7919;
        for (int64_t j = 0; j < nn_shape_elems(&s); j++)
            x[j] = tl_uniform(&r, -2.f, 2.f);
    }
    assert_int_equal(nn_run(c), 0);
    size_t n = 0;
    for (int i = 0; i < nn_graph_n_outputs(g); i++) {
        struct nn_shape s = nn_plan_output_shape(p, i);
        n += (size_t)nn_shape_elems(&s);
    }
    float *out = malloc(n * sizeof *out);
    size_t at = 0;
    for (int i = 0; i < nn_graph_n_outputs(g); i++) {
        struct nn_shape s = nn_plan_output_shape(p, i);
        memcpy(out + at, nn_ctx_output(c, i), (size_t)nn_shape_elems(&s) * sizeof *out);
        at += (size_t)nn_shape_elems(&s);
    }
    *len = n;
    nn_ctx_free(c);
    nn_plan_free(p);
    return out;
}

static void assert_same_outputs(const struct nn_graph *a, const struct nn_graph *b, int batch,
                                double tol)
{
    size_t na, nb;
    float *ya = run_all(a, batch, 4242, &na), *yb = run_all(b, batch, 4242, &nb);
    assert_int_equal(na, nb);
    double err = tl_rel_l2(yb, ya, na);
    if (!(err <= tol))
        fail_msg("outputs differ: relative L2 %g > %g", err, tol);
    free(ya);
    free(yb);
}

static void totals(const struct nn_graph *g, int64_t *flops, int64_t *params)
{
    int n = nn_graph_n_nodes(g);
    struct nn_layer_info *li = calloc((size_t)n, sizeof *li);
    assert_int_equal(nn_graph_layers(g, li, n, NULL), n);
    *flops = *params = 0;
    for (int k = 0; k < n; k++) {
        *flops += li[k].flops;
        *params += li[k].params;
    }
    free(li);
}

static struct nn_layer_info layer_of(const struct nn_graph *g, const char *name)
{
    int n = nn_graph_n_nodes(g), k = node_index(g, name);
    struct nn_layer_info *li = calloc((size_t)n, sizeof *li), r;
    assert_true(k >= 0);
    assert_int_equal(nn_graph_layers(g, li, n, NULL), n);
    r = li[k];
    free(li);
    return r;
}

static struct surg_groups *groups_of(const struct nn_graph *g)
{
    struct surg_groups *gr = NULL;
    struct err_msg em = {{0}};
    must(surg_groups_find(g, &gr, &em), &em, "surg_groups_find");
    return gr;
}

static int has_name(char (*list)[NN_NAME_MAX], int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return 1;
    return 0;
}

static const struct surg_group *group_named(const struct surg_groups *gr, const char *name)
{
    int i = surg_groups_index(gr, name);
    if (i < 0)
        fail_msg("no group '%s'", name);
    return &gr->g[i];
}

/* ---- groups ---- */

static void test_groups_vgg(void **state)
{
    (void)state;
    struct nn_model *m = vgg_two_stream(1);
    struct surg_groups *gr = groups_of(m->graph);
    int convs = 0;
    for (int k = 0; k < nn_graph_n_nodes(m->graph); k++) {
        struct nn_node_view v;
        nn_graph_node_view(m->graph, k, &v);
        if (v.op != NN_OP_CONV)
            continue;
        convs++;
        const struct surg_group *grp = group_named(gr, v.name);
        assert_true(grp->prunable);
        assert_string_equal(grp->reason, "");
        assert_int_equal(grp->n_producers, 1);
        assert_string_equal(grp->producers[0], v.name);
        assert_int_equal(grp->n_bns, 1);
        assert_int_equal(grp->n_consumers, 1);
        assert_int_equal(grp->channels, layer_of(m->graph, v.name).out_shape.d[1]);
    }
    assert_int_equal(convs, 12);
    assert_int_equal(gr->n, 12);
    /* features.1 reads features.0 after BN, ReLU and pooling. */
    const struct surg_group *g0 = group_named(gr, "rgb/features.0.conv");
    assert_string_equal(g0->bns[0], "rgb/features.0.bn");
    assert_string_equal(g0->consumers[0].name, "rgb/features.1.conv");
    assert_int_equal(g0->consumers[0].op, NN_OP_CONV);
    assert_string_equal(g0->act_value, "rgb/features.0.pool.out");
    /* The last group reaches the classifier through pool, Flatten (of 1x1) and Dropout. */
    const struct surg_group *g5 = group_named(gr, "motion/features.5.conv");
    assert_string_equal(g5->consumers[0].name, "motion/fc");
    assert_int_equal(g5->consumers[0].op, NN_OP_GEMM);
    assert_int_equal(g5->consumers[0].per_channel, 1);
    assert_string_equal(g5->act_value, "motion/avgpool.out");
    surg_groups_free(gr);
    nn_model_free(m);
}

static void test_groups_resnet(void **state)
{
    (void)state;
    struct nn_model *m = resnet18(2);
    struct surg_groups *gr = groups_of(m->graph);
    assert_int_equal(gr->n, 4 + 8);
    for (int l = 1; l <= 4; l++) {
        char first[NN_NAME_MAX], p[3][NN_NAME_MAX];
        if (l == 1)
            snprintf(first, sizeof first, "conv1");
        else
            snprintf(first, sizeof first, "layer%d.0.conv2", l);
        snprintf(p[0], sizeof p[0], "layer%d.0.conv2", l);
        snprintf(p[1], sizeof p[1], "layer%d.1.conv2", l);
        snprintf(p[2], sizeof p[2], l == 1 ? "conv1" : "layer%d.0.downsample.0", l);
        const struct surg_group *grp = group_named(gr, first);
        assert_true(grp->prunable);
        assert_int_equal(grp->n_producers, 3);
        for (int i = 0; i < 3; i++)
            assert_true(has_name(grp->producers, grp->n_producers, p[i]));
        assert_int_equal(grp->n_bns, 3);
        /* Read by the stage's second block and the next stage's first (conv1 and
         * downsample) or the fc; the stem's space also by layer1.0.conv1. */
        assert_int_equal(grp->n_consumers, l == 1 ? 4 : l < 4 ? 3 : 2);
        for (int b = 0; b < 2; b++) {
            char c1[NN_NAME_MAX];
            snprintf(c1, sizeof c1, "layer%d.%d.conv1", l, b);
            const struct surg_group *cg = group_named(gr, c1);
            assert_true(cg->prunable);
            assert_int_equal(cg->n_producers, 1);
            assert_int_equal(cg->n_consumers, 1);
            char c2[NN_NAME_MAX];
            snprintf(c2, sizeof c2, "layer%d.%d.conv2", l, b);
            assert_string_equal(cg->consumers[0].name, c2);
        }
    }
    const struct surg_group *s1 = group_named(gr, "conv1");
    assert_string_equal(s1->act_value, "maxpool.out");
    assert_string_equal(s1->consumers[0].name, "layer1.0.conv1");
    const struct surg_group *s4 = group_named(gr, "layer4.0.conv2");
    assert_string_equal(s4->consumers[s4->n_consumers - 1].name, "fc");
    surg_groups_free(gr);
    nn_model_free(m);
}

static void test_groups_unprunable(void **state)
{
    (void)state;
    struct nn_model *m = tiny_model();
    struct surg_groups *gr = groups_of(m->graph);
    /* c1, c3, c4, c5, c6, c7, c8, c10, dw */
    assert_int_equal(gr->n, 9);
    const struct surg_group *g1 = group_named(gr, "c1");
    assert_true(g1->prunable);
    assert_int_equal(g1->n_producers, 2);
    assert_string_equal(g1->producers[1], "c2");
    assert_int_equal(g1->n_bns, 2);
    assert_int_equal(g1->n_consumers, 2); /* c2 reads r1.out, c4 reads r2.out */
    assert_string_equal(g1->act_value, "r1.out");
    const struct surg_group *g5 = group_named(gr, "c5");
    assert_true(g5->prunable);
    assert_int_equal(g5->n_consumers, 2);
    assert_string_equal(g5->consumers[0].name, "fc");
    assert_int_equal(g5->consumers[0].per_channel, 36);
    assert_string_equal(g5->act_value, "r5.out");
    static const char *const bad[][2] = {{"c3", "Concat"},      {"c4", "Concat"},
                                         {"c6", "Softmax"},     {"c7", "WeightedSum"},
                                         {"c8", "WeightedSum"}, {"c10", "grouped Conv"},
                                         {"dw", "grouped Conv"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const struct surg_group *grp = group_named(gr, bad[i][0]);
        assert_false(grp->prunable);
        if (!strstr(grp->reason, bad[i][1]))
            fail_msg("group %s: reason '%s' does not name %s", bad[i][0], grp->reason,
                     bad[i][1]);
    }
    surg_groups_free(gr);
    nn_model_free(m);
}

/* A graph input tied into a residual space, and a conv output that is a graph output. */
static void test_groups_inputs_outputs(void **state)
{
    (void)state;
    uint64_t rng = 5;
    struct nn_graph *g = nn_graph_new();
    struct nn_shape xs = tl_shape(4, 1, 3, 5, 5);
    assert_true(nn_graph_add_input(g, "x", &xs, NULL) >= 0);
    conv(g, "a", "x", 3, 3, 3, 1, 0, &rng);
    struct nn_node_desc d = tl_node("add", NN_OP_ADD, "x", "add.out");
    d.n_in = 2;
    d.in[1] = "a.out";
    add_node(g, d);
    conv(g, "b", "add.out", 3, 2, 3, 1, 0, &rng);
    assert_int_equal(nn_graph_add_output(g, "b.out", NULL), 0);
    assert_int_equal(nn_graph_check(g, NULL), 0);
    struct surg_groups *gr = groups_of(g);
    assert_int_equal(gr->n, 2);
    assert_false(gr->g[0].prunable);
    assert_non_null(strstr(gr->g[0].reason, "graph input 'x'"));
    assert_false(gr->g[1].prunable);
    assert_non_null(strstr(gr->g[1].reason, "graph output 'b.out'"));
    surg_groups_free(gr);
    nn_graph_free(g);
}

static void test_consumer_norms(void **state)
{
    (void)state;
    struct nn_model *m = tiny_model();
    struct surg_groups *gr = groups_of(m->graph);
    int gi = surg_groups_index(gr, "c5");
    double w[4];
    assert_int_equal(surg_consumer_norms(m->graph, gr, gi, w), 0);
    const float *fc = nn_graph_tensor(m->graph, "fc.w", NULL);
    const float *c6 = nn_graph_tensor(m->graph, "c6.w", NULL); /* [2, 4, 1, 1] */
    for (int c = 0; c < 4; c++) {
        double s = 0;
        for (int o = 0; o < 3; o++)
            for (int j = 0; j < 36; j++)
                s += (double)fc[o * 144 + c * 36 + j] * fc[o * 144 + c * 36 + j];
        for (int o = 0; o < 2; o++)
            s += (double)c6[o * 4 + c] * c6[o * 4 + c];
        assert_float_equal(w[c], sqrt(s), 1e-9 * sqrt(s));
    }
    /* c1's space is read by c2 and c4: 3x3 kernels over 4 input channels. */
    gi = surg_groups_index(gr, "c1");
    assert_int_equal(surg_consumer_norms(m->graph, gr, gi, w), 0);
    const float *w2 = nn_graph_tensor(m->graph, "c2.w", NULL); /* [4, 4, 3, 3] */
    const float *w4 = nn_graph_tensor(m->graph, "c4.w", NULL); /* [3, 4, 3, 3] */
    for (int c = 0; c < 4; c++) {
        double s = 0;
        for (int j = 0; j < 9; j++) {
            for (int o = 0; o < 4; o++)
                s += (double)w2[(o * 4 + c) * 9 + j] * w2[(o * 4 + c) * 9 + j];
            for (int o = 0; o < 3; o++)
                s += (double)w4[(o * 4 + c) * 9 + j] * w4[(o * 4 + c) * 9 + j];
        }
        assert_float_equal(w[c], sqrt(s), 1e-9 * sqrt(s));
    }
    assert_int_equal(surg_consumer_norms(m->graph, gr, gr->n, w), ERR_RANGE);
    assert_int_equal(surg_consumer_norms(m->graph, gr, -1, w), ERR_RANGE);
    surg_groups_free(gr);
    nn_model_free(m);
}

/* ---- pruning ---- */

/* Random masks keeping about 60% of each prunable group (at least one channel). */
static unsigned char **random_masks(const struct surg_groups *gr, uint64_t seed)
{
    uint64_t rng = seed | 1;
    unsigned char **masks = calloc((size_t)gr->n, sizeof *masks);
    for (int i = 0; i < gr->n; i++) {
        if (!gr->g[i].prunable)
            continue;
        masks[i] = calloc((size_t)gr->g[i].channels, 1);
        int kept = 0;
        for (int c = 0; c < gr->g[i].channels; c++)
            kept += masks[i][c] = tl_uniform(&rng, 0, 1) < 0.6f;
        if (!kept)
            masks[i][tl_int(&rng, 0, gr->g[i].channels - 1)] = 1;
    }
    return masks;
}

static void masks_free(unsigned char **masks, int n)
{
    for (int i = 0; i < n; i++)
        free(masks[i]);
    free(masks);
}

enum inert { INERT_PRODUCERS, INERT_CONSUMERS };

/* Makes the dropped channels contribute nothing in the unpruned model: either they are 0
 * wherever the group's values hold them (producer rows and biases 0, and every BN of the
 * group with gamma = beta = 0), or every consumer weight that reads them is 0. */
static void make_inert(struct nn_graph *g, const struct surg_groups *gr, unsigned char **masks,
                       enum inert how)
{
    for (int i = 0; i < gr->n; i++) {
        const struct surg_group *grp = &gr->g[i];
        if (!masks[i])
            continue;
        for (int c = 0; c < grp->channels; c++) {
            if (masks[i][c])
                continue;
            for (int p = 0; how == INERT_PRODUCERS && p < grp->n_producers; p++) {
                struct nn_node_view v = view_of(g, grp->producers[p]);
                struct nn_shape s;
                float *w = nn_graph_tensor(g, v.params[0], &s);
                int64_t row = nn_shape_elems(&s) / s.d[0];
                memset(w + c * row, 0, (size_t)row * sizeof *w);
                if (v.n_params > 1)
                    nn_graph_tensor(g, v.params[1], NULL)[c] = 0.f;
            }
            for (int b = 0; how == INERT_PRODUCERS && b < grp->n_bns; b++) {
                struct nn_node_view v = view_of(g, grp->bns[b]);
                nn_graph_tensor(g, v.params[0], NULL)[c] = 0.f;
                nn_graph_tensor(g, v.params[1], NULL)[c] = 0.f;
            }
            for (int u = 0; how == INERT_CONSUMERS && u < grp->n_consumers; u++) {
                struct nn_node_view v = view_of(g, grp->consumers[u].name);
                struct nn_shape s;
                float *w = nn_graph_tensor(g, v.params[0], &s);
                int64_t cols = nn_shape_elems(&s) / s.d[0];
                int64_t per = v.op == NN_OP_GEMM ? grp->consumers[u].per_channel
                                                 : (int64_t)s.d[2] * s.d[3];
                for (int o = 0; o < s.d[0]; o++)
                    for (int64_t j = 0; j < per; j++)
                        w[o * cols + c * per + j] = 0.f;
            }
        }
    }
}

static int count_kept(const unsigned char *mask, int n)
{
    int k = 0;
    for (int c = 0; c < n; c++)
        k += mask ? mask[c] != 0 : 1;
    return k;
}

static void check_meta(const struct nn_model *a, const struct nn_model *b)
{
    assert_int_equal(a->meta.n_classes, b->meta.n_classes);
    for (int i = 0; i < a->meta.n_classes; i++)
        assert_string_equal(a->meta.classes[i], b->meta.classes[i]);
    if (a->meta.n_classes > 0)
        assert_ptr_not_equal(a->meta.classes, b->meta.classes);
    assert_int_equal(a->meta.height, b->meta.height);
    assert_int_equal(a->meta.segments, b->meta.segments);
    assert_int_equal(a->meta.motion, b->meta.motion);
    assert_int_equal(a->meta.motion_len, b->meta.motion_len);
    assert_true(a->meta.fusion[1] == b->meta.fusion[1] && a->meta.fps == b->meta.fps);
    assert_string_equal(a->meta.arch, b->meta.arch);
}

/* Prunes m with random masks after making the dropped channels inert, and checks the
 * outputs, the producers' widths, the metadata and the predicted cost. */
static void prune_exact(struct nn_model *m, int batch, enum inert how, uint64_t seed)
{
    struct surg_groups *gr = groups_of(m->graph);
    unsigned char **masks = random_masks(gr, seed);
    make_inert(m->graph, gr, masks, how);
    struct nn_model *p = NULL;
    struct err_msg em = {{0}};
    must(surg_prune(m, gr, (const unsigned char *const *)masks, &p, &em), &em, "surg_prune");
    assert_same_outputs(m->graph, p->graph, batch, 1e-5);
    check_meta(m, p);
    assert_int_equal(nn_graph_n_nodes(p->graph), nn_graph_n_nodes(m->graph));
    int *keep = calloc((size_t)gr->n, sizeof *keep);
    int removed = 0;
    for (int i = 0; i < gr->n; i++) {
        const struct surg_group *grp = &gr->g[i];
        keep[i] = count_kept(masks[i], grp->channels);
        removed += grp->channels - keep[i];
        for (int j = 0; j < grp->n_producers; j++)
            assert_int_equal(layer_of(p->graph, grp->producers[j]).out_shape.d[1], keep[i]);
    }
    assert_true(removed > 0);
    int64_t f0, p0, f1, p1, cf, cp;
    totals(m->graph, &f0, &p0);
    totals(p->graph, &f1, &p1);
    assert_true(f1 < f0 && p1 < p0);
    assert_int_equal(surg_prune_cost(m->graph, gr, keep, &cf, &cp), 0);
    assert_int_equal(cf, f1);
    assert_int_equal(cp, p1);
    free(keep);
    nn_model_free(p);
    masks_free(masks, gr->n);
    surg_groups_free(gr);
}

static void test_prune_vgg_producers(void **state)
{
    (void)state;
    struct nn_model *m = vgg_two_stream(3);
    prune_exact(m, SEGMENTS, INERT_PRODUCERS, 11);
    nn_model_free(m);
}

static void test_prune_vgg_consumers(void **state)
{
    (void)state;
    struct nn_model *m = vgg_two_stream(4);
    prune_exact(m, SEGMENTS, INERT_CONSUMERS, 12);
    nn_model_free(m);
}

static void test_prune_resnet_producers(void **state)
{
    (void)state;
    struct nn_model *m = resnet18(5);
    prune_exact(m, 2, INERT_PRODUCERS, 13);
    nn_model_free(m);
}

static void test_prune_resnet_consumers(void **state)
{
    (void)state;
    struct nn_model *m = resnet18(6);
    prune_exact(m, 1, INERT_CONSUMERS, 14);
    nn_model_free(m);
}

static void test_prune_tiny(void **state)
{
    (void)state;
    for (int how = 0; how < 2; how++) {
        struct nn_model *m = tiny_model();
        prune_exact(m, 2, (enum inert)how, 15 + (uint64_t)how);
        nn_model_free(m);
    }
}

/* surg_prune_cost against the graphs surg_prune really builds, over many random masks. */
/* An ONNX import (our ResNet-18 exported and read back, as a torchvision one would come
 * in): the same groups, and pruning stays exact. */
static void test_onnx_import(void **state)
{
    (void)state;
    struct nn_model *m = resnet18(16), *im = NULL;
    void *buf = NULL;
    size_t len = 0;
    struct err_msg em = {{0}};
    must(nn_onnx_export_mem(m, &buf, &len, &em), &em, "export");
    must(nn_onnx_import_mem(buf, len, &im, &em), &em, "import");
    free(buf);
    struct surg_groups *a = groups_of(m->graph), *b = groups_of(im->graph);
    assert_int_equal(a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        const struct surg_group *gb = group_named(b, a->g[i].name);
        assert_int_equal(gb->prunable, a->g[i].prunable);
        assert_int_equal(gb->n_producers, a->g[i].n_producers);
        assert_int_equal(gb->n_consumers, a->g[i].n_consumers);
        assert_int_equal(gb->channels, a->g[i].channels);
    }
    surg_groups_free(a);
    surg_groups_free(b);
    prune_exact(im, 1, INERT_CONSUMERS, 17);
    nn_model_free(im);
    nn_model_free(m);
}

static void test_prune_cost(void **state)
{
    (void)state;
    struct nn_model *ms[2] = {vgg_two_stream(7), resnet18(8)};
    for (int mi = 0; mi < 2; mi++) {
        struct nn_model *m = ms[mi];
        struct surg_groups *gr = groups_of(m->graph);
        int64_t f, p, cf, cp;
        totals(m->graph, &f, &p);
        assert_int_equal(surg_prune_cost(m->graph, gr, NULL, &cf, &cp), 0);
        assert_int_equal(cf, f);
        assert_int_equal(cp, p);
        for (int trial = 0; trial < 6; trial++) {
            unsigned char **masks = random_masks(gr, 100 + (uint64_t)trial);
            int *keep = calloc((size_t)gr->n, sizeof *keep);
            for (int i = 0; i < gr->n; i++)
                keep[i] = count_kept(masks[i], gr->g[i].channels);
            struct nn_model *pm = NULL;
            struct err_msg em = {{0}};
            must(surg_prune(m, gr, (const unsigned char *const *)masks, &pm, &em), &em, "prune");
            totals(pm->graph, &f, &p);
            assert_int_equal(surg_prune_cost(m->graph, gr, keep, &cf, &cp), 0);
            assert_int_equal(cf, f);
            assert_int_equal(cp, p);
            nn_model_free(pm);
            free(keep);
            masks_free(masks, gr->n);
        }
        surg_groups_free(gr);
        nn_model_free(m);
    }
}

static void test_prune_trains(void **state)
{
    (void)state;
    struct nn_model *m = vgg_two_stream(9);
    struct surg_groups *gr = groups_of(m->graph);
    unsigned char **masks = random_masks(gr, 21);
    struct nn_model *p = NULL;
    struct err_msg em = {{0}};
    must(surg_prune(m, gr, (const unsigned char *const *)masks, &p, &em), &em, "prune");
    struct nn_train_opts o;
    nn_train_opts_default(&o);
    o.batch = 2 * SEGMENTS;
    o.segments = SEGMENTS;
    const char *losses[2] = {"rgb/logits", "motion/logits"};
    struct nn_trainer *t = NULL;
    must(nn_trainer_new(p, losses, 2, &o, &t, &em), &em, "trainer");
    nn_trainer_free(t);
    nn_model_free(p);
    masks_free(masks, gr->n);
    surg_groups_free(gr);
    nn_model_free(m);
}

static void test_prune_errors(void **state)
{
    (void)state;
    struct nn_model *m = tiny_model();
    struct surg_groups *gr = groups_of(m->graph);
    unsigned char **masks = calloc((size_t)gr->n, sizeof *masks);
    struct nn_model *out = NULL;
    struct err_msg em = {{0}};
    int g1 = surg_groups_index(gr, "c1"), g3 = surg_groups_index(gr, "c3");
    /* keeps nothing */
    masks[g1] = calloc(4, 1);
    assert_int_equal(surg_prune(m, gr, (const unsigned char *const *)masks, &out, &em),
                     ERR_RANGE);
    assert_null(out);
    assert_non_null(strstr(em.text, "c1"));
    /* an unprunable group losing a channel */
    masks[g1][0] = 1;
    masks[g3] = calloc(2, 1);
    masks[g3][0] = 1;
    em.text[0] = 0;
    assert_int_equal(surg_prune(m, gr, (const unsigned char *const *)masks, &out, &em),
                     ERR_INVAL);
    assert_null(out);
    assert_non_null(strstr(em.text, "Concat"));
    /* an unprunable group keeping everything is fine */
    masks[g3][1] = 1;
    must(surg_prune(m, gr, (const unsigned char *const *)masks, &out, &em), &em, "prune");
    nn_model_free(out);
    out = NULL;
    /* costs */
    int64_t f, p;
    int *keep = calloc((size_t)gr->n, sizeof *keep);
    for (int i = 0; i < gr->n; i++)
        keep[i] = gr->g[i].channels;
    keep[g1] = 0;
    assert_int_equal(surg_prune_cost(m->graph, gr, keep, &f, &p), ERR_RANGE);
    keep[g1] = 5;
    assert_int_equal(surg_prune_cost(m->graph, gr, keep, &f, &p), ERR_RANGE);
    keep[g1] = 4;
    keep[g3] = 1;
    assert_int_equal(surg_prune_cost(m->graph, gr, keep, &f, &p), ERR_INVAL);
    free(keep);
    /* groups of another graph */
    struct nn_model *other = vgg_two_stream(1);
    assert_int_equal(surg_prune(other, gr, NULL, &out, &em), ERR_INVAL);
    assert_null(out);
    assert_int_equal(surg_prune_cost(other->graph, gr, NULL, &f, &p), ERR_INVAL);
    nn_model_free(other);
    masks_free(masks, gr->n);
    surg_groups_free(gr);
    nn_model_free(m);
}

static void test_folded_refused(void **state)
{
    (void)state;
    struct nn_model *m = resnet18(10);
    struct surg_groups *gr = groups_of(m->graph);
    assert_int_equal(nn_graph_fold_bn(m->graph, NULL), 0);
    struct err_msg em = {{0}};
    struct surg_groups *g2 = NULL;
    struct surg_convs *cs = NULL;
    struct nn_model *out = NULL;
    assert_int_equal(surg_groups_find(m->graph, &g2, &em), ERR_UNSUPPORTED);
    assert_null(g2);
    assert_non_null(strstr(em.text, "folded"));
    assert_int_equal(surg_convs_find(m->graph, &cs, &em), ERR_UNSUPPORTED);
    assert_null(cs);
    assert_int_equal(surg_prune(m, gr, NULL, &out, &em), ERR_UNSUPPORTED);
    assert_int_equal(surg_decompose(m, 0, NULL, &out, &em), ERR_UNSUPPORTED);
    assert_null(out);
    surg_groups_free(gr);
    nn_model_free(m);
}

/* A graph nn/ itself rejects, and missing arguments: errors, nothing returned. */
static void test_bad_graph(void **state)
{
    (void)state;
    struct nn_graph *g = nn_graph_new(); /* no inputs, no outputs */
    struct surg_groups *gr = NULL;
    struct surg_convs *cs = NULL;
    struct err_msg em = {{0}};
    assert_int_equal(surg_groups_find(g, &gr, &em), ERR_FORMAT);
    assert_null(gr);
    assert_int_equal(surg_convs_find(g, &cs, &em), ERR_FORMAT);
    assert_null(cs);
    assert_int_equal(surg_groups_find(NULL, &gr, &em), ERR_INVAL);
    assert_int_equal(surg_prune(NULL, NULL, NULL, NULL, &em), ERR_INVAL);
    assert_int_equal(surg_decompose(NULL, 0, NULL, NULL, &em), ERR_INVAL);
    surg_groups_free(NULL);
    surg_convs_free(NULL);
    nn_graph_free(g);
}

/* ---- factorisation ---- */

static const struct surg_conv *conv_named(const struct surg_convs *cs, const char *name)
{
    for (int i = 0; i < cs->n; i++)
        if (strcmp(cs->c[i].name, name) == 0)
            return &cs->c[i];
    return NULL;
}

static void test_convs_list(void **state)
{
    (void)state;
    struct nn_model *m = resnet18(11);
    struct surg_convs *cs = NULL;
    struct err_msg em = {{0}};
    must(surg_convs_find(m->graph, &cs, &em), &em, "convs");
    /* the stem, 16 block convs (3x3) and fc; the 1x1 downsamples are left out */
    assert_int_equal(cs->n, 1 + 16 + 1);
    assert_null(conv_named(cs, "layer2.0.downsample.0"));
    const struct surg_conv *c = conv_named(cs, "layer2.0.conv1");
    assert_non_null(c);
    assert_int_equal(c->op, NN_OP_CONV);
    assert_int_equal(c->cin, 16);
    assert_int_equal(c->cout, 32);
    assert_int_equal(c->kh, 3);
    assert_int_equal(c->in_h, 8);
    assert_int_equal(c->out_h, 4);
    assert_int_equal(c->out_w, 4);
    assert_false(c->has_bias);
    struct nn_layer_info li = layer_of(m->graph, "layer2.0.conv1");
    assert_int_equal(c->flops, li.flops);
    assert_int_equal(c->params, li.params);
    const struct surg_conv *fc = conv_named(cs, "fc");
    assert_non_null(fc);
    assert_int_equal(fc->op, NN_OP_GEMM);
    assert_int_equal(fc->cin, 128);
    assert_int_equal(fc->cout, 5);
    assert_true(fc->has_bias);
    int64_t f, p;
    assert_int_equal(surg_tucker_cost(c, 0, 4, &f, &p), ERR_RANGE);
    assert_int_equal(surg_tucker_cost(c, 17, 4, &f, &p), ERR_RANGE);
    assert_int_equal(surg_tucker_cost(c, 4, 33, &f, &p), ERR_RANGE);
    assert_int_equal(surg_tucker_cost(fc, 4, 4, &f, &p), ERR_INVAL);
    assert_int_equal(surg_svd_cost(fc, 6, &f, &p), ERR_RANGE);
    assert_int_equal(surg_svd_cost(c, 2, &f, &p), ERR_INVAL);
    /* a decomposition pays when it lowers FLOPs or parameters: 16 -> 32 3x3 at 4/4, yes; at
     * 16/32 (three passes for one) no; a first layer of 3 inputs at 3/4, no; bad ranks, no */
    assert_true(surg_decomposition_pays(c, 4, 4));
    assert_false(surg_decomposition_pays(c, 16, 32));
    assert_false(surg_decomposition_pays(c, 0, 4));
    const struct surg_conv *stem = conv_named(cs, "conv1");
    assert_non_null(stem);
    assert_int_equal(stem->cin, 3);
    int64_t sf, sp;
    assert_int_equal(surg_tucker_cost(stem, 3, stem->cout, &sf, &sp), 0);
    assert_true(sf > stem->flops);
    assert_false(surg_decomposition_pays(stem, 3, stem->cout));
    assert_true(surg_decomposition_pays(fc, 2, 0));
    assert_false(surg_decomposition_pays(fc, 5, 0));
    surg_convs_free(cs);
    nn_model_free(m);
}

/* Factors for every listed layer: identities around the weight (exact at full rank), or
 * random ones of the given ranks with the original weight replaced by their product. */
struct factors {
    int n;
    struct surg_factor *f;
    float **bufs;
    int n_bufs;
};

static float *fbuf(struct factors *fs, int64_t n)
{
    fs->bufs = realloc(fs->bufs, (size_t)(fs->n_bufs + 1) * sizeof *fs->bufs);
    return fs->bufs[fs->n_bufs++] = calloc((size_t)n, sizeof(float));
}

static void factors_free(struct factors *fs)
{
    for (int i = 0; i < fs->n_bufs; i++)
        free(fs->bufs[i]);
    free(fs->bufs);
    free(fs->f);
}

static void identity_factor(struct nn_graph *g, const struct surg_conv *c, struct factors *fs,
                            struct surg_factor *f)
{
    const float *w = nn_graph_tensor(g, view_of(g, c->name).params[0], NULL);
    f->node = c->name;
    if (c->op == NN_OP_GEMM) {
        f->r1 = c->cout;
        float *b = fbuf(fs, (int64_t)c->cout * c->cout);
        for (int i = 0; i < c->cout; i++)
            b[i * c->cout + i] = 1.f;
        f->a = w;
        f->b = b;
        return;
    }
    f->r1 = c->cin;
    f->r2 = c->cout;
    float *ui = fbuf(fs, (int64_t)c->cin * c->cin), *uo = fbuf(fs, (int64_t)c->cout * c->cout);
    for (int i = 0; i < c->cin; i++)
        ui[i * c->cin + i] = 1.f;
    for (int i = 0; i < c->cout; i++)
        uo[i * c->cout + i] = 1.f;
    f->u_in = ui;
    f->core = w;
    f->u_out = uo;
}

static int rank_of(uint64_t *rng, int full)
{
    return tl_int(rng, 1, full > 1 ? full - 1 : 1);
}

/* Random factors at random ranks (full == 1: R_in = Cin, full == 2: R_out = Cout, the square
 * factor that surg_decompose folds into the core); the original weight becomes their product
 * W[o,i,y,x] = sum_b sum_a U_out[o,b] core[b,a,y,x] U_in[a,i] (Gemm: W = b a). */
static void lowrank_factor(struct nn_graph *g, const struct surg_conv *c, struct factors *fs,
                           struct surg_factor *f, uint64_t *rng, int full)
{
    float *w = nn_graph_tensor(g, view_of(g, c->name).params[0], NULL);
    f->node = c->name;
    if (c->op == NN_OP_GEMM) {
        int r = rank_of(rng, c->cout < c->cin ? c->cout : c->cin);
        float *a = fbuf(fs, (int64_t)r * c->cin), *b = fbuf(fs, (int64_t)c->cout * r);
        for (int64_t i = 0; i < (int64_t)r * c->cin; i++)
            a[i] = tl_uniform(rng, -0.5f, 0.5f);
        for (int64_t i = 0; i < (int64_t)c->cout * r; i++)
            b[i] = tl_uniform(rng, -0.5f, 0.5f);
        for (int o = 0; o < c->cout; o++)
            for (int i = 0; i < c->cin; i++) {
                double s = 0;
                for (int k = 0; k < r; k++)
                    s += (double)b[o * r + k] * a[k * c->cin + i];
                w[o * c->cin + i] = (float)s;
            }
        f->r1 = r;
        f->a = a;
        f->b = b;
        return;
    }
    int ri = rank_of(rng, c->cin), ro = rank_of(rng, c->cout), kk = c->kh * c->kw;
    if (full == 1 && c->cout > 1)
        ri = c->cin;
    else if (full == 2 && c->cin > 1)
        ro = c->cout;
    float *ui = fbuf(fs, (int64_t)ri * c->cin), *core = fbuf(fs, (int64_t)ro * ri * kk),
          *uo = fbuf(fs, (int64_t)c->cout * ro);
    float scale = 1.f / sqrtf((float)(ri * kk));
    for (int64_t i = 0; i < (int64_t)ri * c->cin; i++)
        ui[i] = tl_uniform(rng, -1.f, 1.f);
    for (int64_t i = 0; i < (int64_t)ro * ri * kk; i++)
        core[i] = tl_uniform(rng, -1.f, 1.f) * scale;
    for (int64_t i = 0; i < (int64_t)c->cout * ro; i++)
        uo[i] = tl_uniform(rng, -1.f, 1.f);
    for (int o = 0; o < c->cout; o++)
        for (int i = 0; i < c->cin; i++)
            for (int y = 0; y < kk; y++) {
                double s = 0;
                for (int b = 0; b < ro; b++)
                    for (int a = 0; a < ri; a++)
                        s += (double)uo[o * ro + b] * core[(b * ri + a) * kk + y] *
                             ui[a * c->cin + i];
                w[((int64_t)o * c->cin + i) * kk + y] = (float)s;
            }
    f->r1 = ri;
    f->r2 = ro;
    f->u_in = ui;
    f->core = core;
    f->u_out = uo;
}

/* Decomposes every listed layer of m, checks outputs, names, ops and costs. lowrank 0:
 * identity factors; 1: random low ranks; 2: the same with R_in full in every third layer and
 * R_out full in the next, which surg_decompose builds as two convolutions. */
static struct nn_model *decompose_all(struct nn_model *m, int batch, int lowrank, uint64_t seed)
{
    struct surg_convs *cs = NULL;
    struct err_msg em = {{0}};
    must(surg_convs_find(m->graph, &cs, &em), &em, "convs");
    struct factors fs = {0};
    fs.f = calloc((size_t)cs->n, sizeof *fs.f);
    uint64_t rng = seed | 1;
    for (int i = 0; i < cs->n; i++) {
        if (lowrank)
            lowrank_factor(m->graph, &cs->c[i], &fs, &fs.f[i], &rng, lowrank == 2 ? i % 3 : 0);
        else
            identity_factor(m->graph, &cs->c[i], &fs, &fs.f[i]);
    }
    struct nn_model *d = NULL;
    int folded = 0;
    must(surg_decompose(m, cs->n, fs.f, &d, &em), &em, "surg_decompose");
    assert_same_outputs(m->graph, d->graph, batch, 1e-4);
    check_meta(m, d);
    for (int i = 0; i < cs->n; i++) {
        const struct surg_conv *c = &cs->c[i];
        struct nn_node_view v = view_of(d->graph, c->name);
        int64_t f, p;
        char name[NN_NAME_MAX + 8];
        int in_full = fs.f[i].r1 == c->cin, out_full = fs.f[i].r2 == c->cout;
        if (c->op == NN_OP_CONV && in_full != out_full) {
            /* one square factor folded: a 1x1 then the k×k conv, or the k×k then a 1x1 */
            struct nn_node_view ov = view_of(m->graph, c->name);
            snprintf(name, sizeof name, "%s%s", c->name, out_full ? ".u_in" : ".core");
            struct nn_node_view fv = view_of(d->graph, name);
            assert_int_equal(v.op, NN_OP_CONV);
            assert_int_equal(fv.op, NN_OP_CONV);
            assert_string_equal(v.in[0], fv.out);
            assert_string_equal(fv.in[0], ov.in[0]);
            assert_string_equal(v.out, ov.out);
            const struct nn_node_view *kxk = out_full ? &v : &fv;
            assert_memory_equal(kxk->attrs.stride, ov.attrs.stride, sizeof ov.attrs.stride);
            assert_memory_equal(kxk->attrs.pad, ov.attrs.pad, sizeof ov.attrs.pad);
            assert_int_equal(v.n_params, c->has_bias ? 2 : 1);
            assert_int_equal(fv.n_params, 1);
            assert_int_equal(surg_tucker_cost(c, fs.f[i].r1, fs.f[i].r2, &f, &p), 0);
            struct nn_layer_info l1 = layer_of(d->graph, name), l2 = layer_of(d->graph, c->name);
            assert_int_equal(f, l1.flops + l2.flops);
            assert_int_equal(p, l1.params + l2.params);
            folded++;
        } else if (c->op == NN_OP_CONV) {
            assert_int_equal(v.op, NN_OP_TUCKERCONV);
            snprintf(name, sizeof name, "%s.u_in", c->name);
            assert_string_equal(v.params[0], name);
            snprintf(name, sizeof name, "%s.core", c->name);
            assert_string_equal(v.params[1], name);
            assert_int_equal(v.n_params, c->has_bias ? 4 : 3);
            struct nn_node_view ov = view_of(m->graph, c->name);
            assert_string_equal(v.out, ov.out);
            assert_memory_equal(v.attrs.stride, ov.attrs.stride, sizeof v.attrs.stride);
            assert_memory_equal(v.attrs.pad, ov.attrs.pad, sizeof v.attrs.pad);
            assert_int_equal(surg_tucker_cost(c, fs.f[i].r1, fs.f[i].r2, &f, &p), 0);
            struct nn_layer_info li = layer_of(d->graph, c->name);
            assert_int_equal(f, li.flops);
            assert_int_equal(p, li.params);
        } else {
            assert_int_equal(v.op, NN_OP_GEMM);
            snprintf(name, sizeof name, "%s/svd", c->name);
            assert_string_equal(v.in[0], name);
            snprintf(name, sizeof name, "%s.svd_a", c->name);
            struct nn_node_view av = view_of(d->graph, name);
            assert_int_equal(av.n_params, 1);
            assert_int_equal(v.n_params, c->has_bias ? 2 : 1);
            assert_int_equal(surg_svd_cost(c, fs.f[i].r1, &f, &p), 0);
            struct nn_layer_info l1 = layer_of(d->graph, name), l2 = layer_of(d->graph, c->name);
            assert_int_equal(f, l1.flops + l2.flops);
            assert_int_equal(p, l1.params + l2.params);
        }
    }
    assert_true(lowrank == 2 ? folded > 0 : folded == 0);
    factors_free(&fs);
    surg_convs_free(cs);
    return d;
}

static void test_decompose_identity_vgg(void **state)
{
    (void)state;
    struct nn_model *m = vgg_two_stream(12);
    struct nn_model *d = decompose_all(m, SEGMENTS, 0, 0);
    struct nn_train_opts o;
    nn_train_opts_default(&o);
    o.batch = 2 * SEGMENTS;
    o.segments = SEGMENTS;
    const char *losses[2] = {"rgb/logits", "motion/logits"};
    struct nn_trainer *t = NULL;
    struct err_msg em = {{0}};
    must(nn_trainer_new(d, losses, 2, &o, &t, &em), &em, "trainer");
    nn_trainer_free(t);
    nn_model_free(d);
    nn_model_free(m);
}

static void test_decompose_lowrank_resnet(void **state)
{
    (void)state;
    struct nn_model *m = resnet18(13);
    nn_model_free(decompose_all(m, 2, 1, 31));
    nn_model_free(m);
}

/* One square factor (R_in = Cin or R_out = Cout) folded into the core: the same outputs
 * as the three-factor product, in two convolutions, costed as surg_tucker_cost says. */
static void test_decompose_folds_square_factor(void **state)
{
    (void)state;
    struct nn_model *m = resnet18(14);
    nn_model_free(decompose_all(m, 2, 2, 33));
    nn_model_free(m);
    m = vgg_two_stream(15);
    nn_model_free(decompose_all(m, SEGMENTS, 2, 34));
    nn_model_free(m);
}

static void test_decompose_lowrank_tiny(void **state)
{
    (void)state;
    struct nn_model *m = tiny_model(); /* conv biases, a Gemm bias, grouped conv left alone */
    nn_model_free(decompose_all(m, 2, 1, 32));
    nn_model_free(m);
}

/* Pruning after decomposing: TuckerConv spaces and readers are not prunable. */
static void test_groups_after_decompose(void **state)
{
    (void)state;
    struct nn_model *m = tiny_model();
    struct nn_model *d = decompose_all(m, 1, 0, 0);
    struct surg_groups *gr = groups_of(d->graph);
    const struct surg_group *g1 = group_named(gr, "c1");
    assert_false(g1->prunable);
    assert_non_null(strstr(g1->reason, "TuckerConv"));
    surg_groups_free(gr);
    nn_model_free(d);
    nn_model_free(m);
}

static void test_decompose_errors(void **state)
{
    (void)state;
    struct nn_model *m = tiny_model();
    float *w1 = nn_graph_tensor(m->graph, "c1.w", NULL); /* [4, 3, 3, 3] */
    float u[16] = {1, 0, 0, 0, 1, 0, 0, 0, 1}, uo[16] = {0};
    for (int i = 0; i < 4; i++)
        uo[i * 4 + i] = 1.f;
    struct surg_factor f = {.node = "c1", .r1 = 3, .r2 = 4, .u_in = u, .core = w1, .u_out = uo};
    struct nn_model *out = NULL;
    struct err_msg em = {{0}};
    must(surg_decompose(m, 1, &f, &out, &em), &em, "decompose");
    nn_model_free(out);
    out = NULL;
    struct surg_factor bad = f;
    bad.node = "nope";
    assert_int_equal(surg_decompose(m, 1, &bad, &out, &em), ERR_NOTFOUND);
    assert_non_null(strstr(em.text, "nope"));
    bad = f;
    bad.r1 = 4;
    assert_int_equal(surg_decompose(m, 1, &bad, &out, &em), ERR_RANGE);
    bad.r1 = 0;
    assert_int_equal(surg_decompose(m, 1, &bad, &out, &em), ERR_RANGE);
    bad = f;
    bad.r2 = 5;
    assert_int_equal(surg_decompose(m, 1, &bad, &out, &em), ERR_RANGE);
    bad = f;
    bad.node = "b1";
    assert_int_equal(surg_decompose(m, 1, &bad, &out, &em), ERR_UNSUPPORTED);
    bad.node = "dw";
    assert_int_equal(surg_decompose(m, 1, &bad, &out, &em), ERR_UNSUPPORTED);
    bad = f;
    bad.core = NULL;
    assert_int_equal(surg_decompose(m, 1, &bad, &out, &em), ERR_INVAL);
    bad = f;
    bad.node = NULL;
    assert_int_equal(surg_decompose(m, 1, &bad, &out, &em), ERR_INVAL);
    struct surg_factor two[2] = {f, f};
    assert_int_equal(surg_decompose(m, 2, two, &out, &em), ERR_INVAL);
    float nanu[9];
    memcpy(nanu, u, sizeof nanu);
    nanu[4] = NAN;
    bad = f;
    bad.u_in = nanu;
    assert_int_equal(surg_decompose(m, 1, &bad, &out, &em), ERR_RANGE);
    /* Gemm fc [3, 144]: rank at most 3 */
    const float *fw = nn_graph_tensor(m->graph, "fc.w", NULL);
    float eye[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    struct surg_factor g = {.node = "fc", .r1 = 3, .a = fw, .b = eye};
    must(surg_decompose(m, 1, &g, &out, &em), &em, "decompose gemm");
    assert_same_outputs(m->graph, out->graph, 1, 1e-5);
    nn_model_free(out);
    out = NULL;
    g.r1 = 4;
    assert_int_equal(surg_decompose(m, 1, &g, &out, &em), ERR_RANGE);
    g.r1 = 3;
    g.b = NULL;
    assert_int_equal(surg_decompose(m, 1, &g, &out, &em), ERR_INVAL);
    assert_null(out);
    assert_int_equal(surg_decompose(m, -1, &f, &out, &em), ERR_INVAL);
    nn_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_groups_vgg),
        cmocka_unit_test(test_groups_resnet),
        cmocka_unit_test(test_groups_unprunable),
        cmocka_unit_test(test_groups_inputs_outputs),
        cmocka_unit_test(test_consumer_norms),
        cmocka_unit_test(test_prune_vgg_producers),
        cmocka_unit_test(test_prune_vgg_consumers),
        cmocka_unit_test(test_prune_resnet_producers),
        cmocka_unit_test(test_prune_resnet_consumers),
        cmocka_unit_test(test_prune_tiny),
        cmocka_unit_test(test_onnx_import),
        cmocka_unit_test(test_prune_cost),
        cmocka_unit_test(test_prune_trains),
        cmocka_unit_test(test_prune_errors),
        cmocka_unit_test(test_folded_refused),
        cmocka_unit_test(test_bad_graph),
        cmocka_unit_test(test_convs_list),
        cmocka_unit_test(test_decompose_identity_vgg),
        cmocka_unit_test(test_decompose_lowrank_resnet),
        cmocka_unit_test(test_decompose_lowrank_tiny),
        cmocka_unit_test(test_decompose_folds_square_factor),
        cmocka_unit_test(test_groups_after_decompose),
        cmocka_unit_test(test_decompose_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
