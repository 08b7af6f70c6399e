/* test_fusion.c — the late fusion: the two-stream graph fuses in log space and averages the
 * segments before its softmax, fit/'s chooser computes every candidate as the graph does
 * (every kind of fusion), and its pick follows each kind's criterion (lowest NLL in log
 * space, best top-1 for averaged probabilities), with the temperature that fits the labels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "nn_testlib.h"
#include "fit/fit_int.h"

#include <math.h>

#define K 3
#define C 5

static void add_node(struct nn_graph *g, struct nn_node_desc d)
{
    struct err_msg em = {{0}};
    if (nn_graph_add_node(g, &d, &em) < 0)
        fail_msg("%s", em.text);
}

/* A fusion tail alone: logits in as "rgb" and "motion", each stream's softmax, then the
 * fusion of `fused_in` (the logits or the probabilities) and the nodes after it up to
 * "scores". */
static struct nn_model *tail(const char *fused_in, const struct nn_node_desc *after, int n_after,
                             float w0, float w1)
{
    struct nn_model *m = nn_model_new();
    struct err_msg em = {{0}};
    struct nn_shape s = {2, {K, C}};
    assert_true(nn_graph_add_input(m->graph, "rgb", &s, &em) >= 0);
    assert_true(nn_graph_add_input(m->graph, "motion", &s, &em) >= 0);
    add_node(m->graph, tl_node("rgb/softmax", NN_OP_SOFTMAX, "rgb", "rgb/prob"));
    add_node(m->graph, tl_node("motion/softmax", NN_OP_SOFTMAX, "motion", "motion/prob"));
    int probs = strcmp(fused_in, "prob") == 0;
    struct nn_node_desc f = tl_node("fusion", NN_OP_WSUM, probs ? "rgb/prob" : "rgb", "fused");
    f.n_in = 2;
    f.in[1] = probs ? "motion/prob" : "motion";
    add_node(m->graph, f);
    for (int i = 0; i < n_after; i++)
        add_node(m->graph, after[i]);
    assert_int_equal(nn_graph_add_output(m->graph, "scores", &em), 0);
    assert_int_equal(nn_model_set_fusion(m, w0, w1, &em), 0);
    return m;
}

/* As an ONNX two-stream import builds it: the weighted sum of the probabilities, the mean. */
static struct nn_model *probs_tail(float w0, float w1)
{
    struct nn_node_desc mean = tl_node("consensus", NN_OP_BATCHMEAN, "fused", "scores");
    return tail("prob", &mean, 1, w0, w1);
}

/* The tail of the models of 2026-11-28 to 30: the weighted sum of the logits, a softmax per
 * segment, then the mean. */
static struct nn_model *segment_logits_tail(float w0, float w1)
{
    struct nn_node_desc after[2] = {
        tl_node("fused/softmax", NN_OP_SOFTMAX, "fused", "fused/prob"),
        tl_node("consensus", NN_OP_BATCHMEAN, "fused/prob", "scores"),
    };
    return tail("logits", after, 2, w0, w1);
}

/* Runs m on random inputs; the stream logits it saw (recovered from rgb/prob and
 * motion/prob for the arch model: log p is the logits up to a per-row constant, which
 * neither fusion sees) into zr, zm; its scores into y. */
static void run(const struct nn_model *m, int logits_are_inputs, float *zr, float *zm, float *y)
{
    struct err_msg em = {{0}};
    struct nn_plan *p;
    struct nn_ctx *c;
    assert_int_equal(nn_plan_new(m->graph, K, &p, &em), 0);
    assert_int_equal(nn_ctx_new(p, &c), 0);
    uint64_t r = 17;
    for (int i = 0; i < 2; i++) {
        struct nn_shape s = nn_plan_input_shape(p, i);
        for (int64_t j = 0; j < nn_shape_elems(&s); j++)
            nn_ctx_input(c, i)[j] = tl_uniform(&r, -2, 2);
    }
    assert_int_equal(nn_run(c), 0);
    for (int j = 0; j < K * C; j++) {
        zr[j] = logits_are_inputs ? nn_ctx_input(c, 0)[j] : logf(nn_ctx_output(c, 1)[j]);
        zm[j] = logits_are_inputs ? nn_ctx_input(c, 1)[j] : logf(nn_ctx_output(c, 2)[j]);
    }
    memcpy(y, nn_ctx_output(c, 0), C * sizeof(float));
    nn_ctx_free(c);
    nn_plan_free(p);
}

static void expect_scores(const struct nn_model *m, enum nn_fusion_kind kind, const float *zr,
                          const float *zm, const float *y)
{
    double w[2] = {m->meta.fusion[0], m->meta.fusion[1]}, q[C], sum = 0;
    fit_fusion_scores(kind, zr, zm, K, C, w, q);
    for (int j = 0; j < C; j++) {
        assert_float_equal(q[j], y[j], 2e-5);
        sum += q[j];
    }
    assert_float_equal(sum, 1.0, 1e-6);
}

/* Built-in models fuse the logits (weights need not sum to 1) and average the segments
 * before the softmax; an import fuses probabilities; the previous tail averaged softmaxes;
 * fit_fusion_scores matches each graph's scores. */
static void test_scores_match_graphs(void **state)
{
    (void)state;
    float zr[K * C], zm[K * C], y[C];
    struct err_msg em = {{0}};
    struct nn_model *m = nn_model_new();
    m->meta.fusion[0] = 0.8f;
    m->meta.fusion[1] = 1.7f;
    struct nn_arch_opts o = {.arch = "vgg-small", .width = 0.25f, .n_classes = C, .seed = 3};
    assert_int_equal(nn_arch_two_stream(m->graph, &o, 32, 32, 4, m->meta.fusion, &em), 0);
    assert_int_equal(nn_model_fusion_kind(m), NN_FUSION_CLIP_LOGITS);
    run(m, 0, zr, zm, y);
    expect_scores(m, NN_FUSION_CLIP_LOGITS, zr, zm, y);
    /* a weight changed later reaches the graph */
    assert_int_equal(nn_model_set_fusion(m, 2.5f, 0.f, &em), 0);
    run(m, 0, zr, zm, y);
    expect_scores(m, NN_FUSION_CLIP_LOGITS, zr, zm, y);
    assert_int_equal(nn_model_fuse_clip_logits(m), 0);
    nn_model_free(m);

    m = probs_tail(0.3f, 0.7f);
    assert_int_equal(nn_model_fusion_kind(m), NN_FUSION_PROBS);
    run(m, 1, zr, zm, y);
    expect_scores(m, NN_FUSION_PROBS, zr, zm, y);
    assert_int_equal(nn_model_fuse_clip_logits(m), 0);
    assert_int_equal(nn_model_fusion_kind(m), NN_FUSION_PROBS);
    nn_model_free(m);

    m = nn_model_new();
    assert_int_equal(nn_model_fusion_kind(m), NN_FUSION_NONE);
    assert_int_equal(nn_model_fuse_clip_logits(m), 0);
    nn_model_free(m);
}

/* A model of the previous tail scores as it did until it is moved to the clip consensus;
 * then it scores as a built one, with the same weights, and moving it again does nothing. */
static void test_move_to_clip_logits(void **state)
{
    (void)state;
    float zr[K * C], zm[K * C], y[C], y2[C];
    struct nn_model *m = segment_logits_tail(1.2f, 2.1f);
    assert_int_equal(nn_model_fusion_kind(m), NN_FUSION_LOGITS);
    run(m, 1, zr, zm, y);
    expect_scores(m, NN_FUSION_LOGITS, zr, zm, y);
    assert_int_equal(nn_model_fuse_clip_logits(m), 1);
    assert_int_equal(nn_model_fusion_kind(m), NN_FUSION_CLIP_LOGITS);
    run(m, 1, zr, zm, y2);
    expect_scores(m, NN_FUSION_CLIP_LOGITS, zr, zm, y2);
    int differs = 0;
    for (int j = 0; j < C; j++)
        differs |= fabsf(y[j] - y2[j]) > 1e-4f;
    assert_true(differs);
    assert_int_equal(nn_model_fuse_clip_logits(m), 0);
    /* the graph reads as nn_arch_two_stream writes it */
    struct nn_node_view mean, soft;
    int n = nn_graph_n_nodes(m->graph);
    assert_int_equal(nn_graph_node_view(m->graph, n - 2, &mean), 0);
    assert_int_equal(nn_graph_node_view(m->graph, n - 1, &soft), 0);
    assert_string_equal(mean.name, "consensus");
    assert_int_equal(mean.op, NN_OP_BATCHMEAN);
    assert_string_equal(mean.in[0], "fused");
    assert_string_equal(mean.out, "fused/mean");
    assert_string_equal(soft.name, "fused/softmax");
    assert_int_equal(soft.op, NN_OP_SOFTMAX);
    assert_string_equal(soft.in[0], "fused/mean");
    assert_string_equal(soft.out, "scores");
    nn_model_free(m);
}

/* Averaging the segments before the softmax, the temperature (the weights' sum) calibrates
 * the scores and leaves the argmax alone; a softmax per segment lets it move the argmax. */
static void test_temperature_keeps_the_argmax(void **state)
{
    (void)state;
    float zr[K * C], zm[K * C];
    uint64_t r = 23;
    int moved[2] = {0, 0};
    for (int clip = 0; clip < 200; clip++) {
        for (int j = 0; j < K * C; j++) /* segments that disagree, as real ones do */
            zr[j] = tl_uniform(&r, -3, 3), zm[j] = tl_uniform(&r, -3, 3);
        for (int kind = 0; kind < 2; kind++) {
            enum nn_fusion_kind f = kind ? NN_FUSION_LOGITS : NN_FUSION_CLIP_LOGITS;
            int first = -1;
            for (double T = 0.25; T <= 8; T *= 2) {
                double w[2] = {T * 0.4, T * 0.6}, q[C];
                fit_fusion_scores(f, zr, zm, K, C, w, q);
                int best = 0;
                for (int j = 1; j < C; j++)
                    best = q[j] > q[best] ? j : best;
                moved[kind] |= first >= 0 && best != first;
                first = first < 0 ? best : first;
            }
        }
    }
    assert_false(moved[0]);
    assert_true(moved[1]);
}

/* n clips of C classes: motion right on all but every `wrong`-th clip (margin mm), RGB right
 * exactly there (margin rm) and near-uniform elsewhere. */
struct set {
    int n;
    float zr[200 * K * C], zm[200 * K * C];
    int labels[200];
};

static void make_set(struct set *s, int n, int wrong, float mm, float rm, uint64_t seed)
{
    s->n = n;
    for (int i = 0; i < n; i++) {
        int y = i % C, miss = wrong && i % wrong == 0;
        s->labels[i] = y;
        for (int k = 0; k < K; k++)
            for (int j = 0; j < C; j++) {
                size_t at = ((size_t)i * K + k) * C + j;
                float noise = tl_uniform(&seed, -0.1f, 0.1f);
                s->zm[at] = noise + (j == (miss ? (y + 1) % C : y) ? mm : 0.f);
                s->zr[at] = tl_uniform(&seed, -0.1f, 0.1f) + (miss && j == y ? rm : 0.f);
            }
    }
}

static struct fit_fusion_pick pick(enum nn_fusion_kind kind, const struct set *s)
{
    struct fit_fusion_set v = {.n = s->n, .k = K, .c = C, .zr = s->zr, .zm = s->zm,
                               .labels = s->labels};
    struct fit_fusion_pick p;
    fit_fusion_choose(kind, &v, &p);
    return p;
}

/* q's accuracy and NLL on the set, for its weights q->w, computed through fit_fusion_scores. */
static void fill_pick(enum nn_fusion_kind kind, const struct set *s, struct fit_fusion_pick *q)
{
    int right = 0;
    double nll = 0, p[C];
    for (int i = 0; i < s->n; i++) {
        size_t at = (size_t)i * K * C;
        fit_fusion_scores(kind, s->zr + at, s->zm + at, K, C, q->w, p);
        int best = 0;
        for (int j = 1; j < C; j++)
            best = p[j] > p[best] ? j : best;
        right += best == s->labels[i];
        nll -= log(p[s->labels[i]] + 1e-12);
    }
    q->acc = (double)right / s->n;
    q->nll = nll / s->n;
}

/* The accuracy and NLL the chooser reports are those of its weights. */
static void expect_consistent(enum nn_fusion_kind kind, const struct set *s,
                              const struct fit_fusion_pick *p)
{
    struct fit_fusion_pick q = {.w = {p->w[0], p->w[1]}};
    fill_pick(kind, s, &q);
    assert_float_equal(p->acc, q.acc, 1e-12);
    assert_float_equal(p->nll, q.nll, 1e-9);
}

/* A weak stream that knows what the strong one gets wrong: fused beats both, in either
 * kind of fusion, with the RGB stream weighed. */
static void test_weak_stream_helps(void **state)
{
    (void)state;
    static struct set s;
    make_set(&s, 200, 10, 3.f, 2.f, 5);
    for (int kind = NN_FUSION_PROBS; kind <= NN_FUSION_CLIP_LOGITS; kind++) {
        struct fit_fusion_pick p = pick((enum nn_fusion_kind)kind, &s);
        expect_consistent((enum nn_fusion_kind)kind, &s, &p);
        assert_true(p.acc > 0.9 + 1e-9); /* motion alone: 0.9, RGB alone: about chance */
        assert_true(p.w[0] > 0);
        if (kind == NN_FUSION_PROBS)
            assert_float_equal(p.w[0] + p.w[1], 1.0, 1e-12);
    }
}

/* In log space the weights' sum is a temperature, set by the labels: always right at a small
 * margin asks for sharper scores (sum above 1); confidently wrong one clip in four for
 * softer ones (sum below 1). Probability averaging has no such freedom. */
static void test_temperature_follows_the_labels(void **state)
{
    (void)state;
    static struct set s;
    for (int kind = NN_FUSION_LOGITS; kind <= NN_FUSION_CLIP_LOGITS; kind++) {
        make_set(&s, 100, 0, 1.f, 0.f, 7);
        struct fit_fusion_pick p = pick((enum nn_fusion_kind)kind, &s);
        expect_consistent((enum nn_fusion_kind)kind, &s, &p);
        assert_float_equal(p.acc, 1.0, 1e-12);
        assert_true(p.w[0] + p.w[1] > 1.5);
        make_set(&s, 100, 4, 6.f, 0.f, 9);
        p = pick((enum nn_fusion_kind)kind, &s);
        expect_consistent((enum nn_fusion_kind)kind, &s, &p);
        assert_float_equal(p.acc, 0.75, 1e-12);
        assert_true(p.w[0] + p.w[1] < 0.8);
    }
}

/* The criterion per kind, against every candidate of a noisy set: in log space no weights of
 * the grid have a lower NLL than the pick; averaging probabilities, none a higher top-1. */
static void test_criterion_per_kind(void **state)
{
    (void)state;
    static struct set s;
    make_set(&s, 200, 6, 2.f, 1.5f, 11);
    for (int i = 0; i < s.n * K * C; i++) /* blur the set so that the two criteria part */
        s.zr[i] += (float)(i % 7) * 0.15f, s.zm[i] += (float)(i % 5) * 0.2f;
    for (int kind = NN_FUSION_PROBS; kind <= NN_FUSION_CLIP_LOGITS; kind++) {
        struct fit_fusion_pick p = pick((enum nn_fusion_kind)kind, &s);
        expect_consistent((enum nn_fusion_kind)kind, &s, &p);
        static const double ts[] = {0.5, 1, 2, 4};
        int parted = 0; /* some candidate beats the pick on the other kind's criterion */
        for (int t = 0; t < (kind != NN_FUSION_PROBS ? 4 : 1); t++)
            for (int u = 0; u <= 20; u++) {
                double T = kind != NN_FUSION_PROBS ? ts[t] : 1;
                struct fit_fusion_pick q = {.w = {T * u / 20, T * (20 - u) / 20}};
                fill_pick((enum nn_fusion_kind)kind, &s, &q);
                if (kind != NN_FUSION_PROBS)
                    assert_true(p.nll <= q.nll + 1e-12);
                else
                    assert_true(p.acc >= q.acc - 1e-12);
                parted |= kind != NN_FUSION_PROBS ? q.acc > p.acc + 1e-12 : q.nll < p.nll - 1e-12;
            }
        assert_true(parted);
    }
}

/* Softmax of each row of x [rows][C] into p. */
static void softmax_rows(const float *x, int rows, float *p)
{
    for (int i = 0; i < rows; i++) {
        double mx = x[i * C], sum = 0;
        for (int j = 1; j < C; j++)
            mx = x[i * C + j] > mx ? x[i * C + j] : mx;
        for (int j = 0; j < C; j++)
            sum += exp(x[i * C + j] - mx);
        for (int j = 0; j < C; j++)
            p[i * C + j] = (float)(exp(x[i * C + j] - mx) / sum);
    }
}

/* One clip of a batch of two through m alone (a plan of K); its scores into y. */
static void run_clip(const struct nn_model *m, struct nn_ctx *two, int clip, float *y)
{
    struct err_msg em = {{0}};
    struct nn_plan *p;
    struct nn_ctx *c;
    assert_int_equal(nn_plan_new(m->graph, K, &p, &em), 0);
    assert_int_equal(nn_ctx_new(p, &c), 0);
    for (int i = 0; i < 2; i++) {
        struct nn_shape s = nn_plan_input_shape(p, i);
        size_t n = (size_t)nn_shape_elems(&s);
        memcpy(nn_ctx_input(c, i), nn_ctx_input(two, i) + clip * n, n * sizeof(float));
    }
    assert_int_equal(nn_run(c), 0);
    memcpy(y, nn_ctx_output(c, 0), C * sizeof(float));
    nn_ctx_free(c);
    nn_plan_free(p);
}

/* Distillation's teacher scores: two clips run as one batch (whose "scores" output is the
 * mean over both), each clip's fused scores from the streams' probabilities are the graph's
 * for that clip alone — for every kind of fusion. */
static void test_teacher_scores_per_clip(void **state)
{
    (void)state;
    struct err_msg em = {{0}};
    struct nn_model *ms[3] = {nn_model_new(), probs_tail(0.3f, 0.7f),
                              segment_logits_tail(1.2f, 2.1f)};
    struct nn_arch_opts o = {.arch = "vgg-small", .width = 0.25f, .n_classes = C, .seed = 4};
    assert_int_equal(nn_arch_two_stream(ms[0]->graph, &o, 32, 32, 4, ms[0]->meta.fusion, &em), 0);
    assert_int_equal(nn_model_set_fusion(ms[0], 0.8f, 1.7f, &em), 0);
    for (int k = 0; k < 3; k++) {
        struct nn_plan *p;
        struct nn_ctx *c;
        assert_int_equal(nn_plan_new(ms[k]->graph, 2 * K, &p, &em), 0);
        assert_int_equal(nn_ctx_new(p, &c), 0);
        uint64_t r = 23 + (uint64_t)k;
        for (int i = 0; i < 2; i++) {
            struct nn_shape s = nn_plan_input_shape(p, i);
            for (int64_t j = 0; j < nn_shape_elems(&s); j++)
                nn_ctx_input(c, i)[j] = tl_uniform(&r, -2, 2);
        }
        assert_int_equal(nn_run(c), 0);
        float pr[2 * K * C], pm[2 * K * C], logp[2 * K * C], out[2 * C], y[C];
        if (k == 0) {
            memcpy(pr, nn_ctx_output(c, 1), sizeof pr);
            memcpy(pm, nn_ctx_output(c, 2), sizeof pm);
        } else {
            softmax_rows(nn_ctx_input(c, 0), 2 * K, pr);
            softmax_rows(nn_ctx_input(c, 1), 2 * K, pm);
        }
        double w[2] = {ms[k]->meta.fusion[0], ms[k]->meta.fusion[1]};
        fit_teacher_scores(nn_model_fusion_kind(ms[k]), w, pr, pm, 2, K, C, logp, out);
        for (int clip = 0; clip < 2; clip++) {
            run_clip(ms[k], c, clip, y);
            for (int j = 0; j < C; j++)
                assert_float_equal(out[clip * C + j], y[j], 2e-5);
        }
        assert_true(fabsf(out[0] - out[C]) > 1e-4f); /* two clips, two rows */
        nn_ctx_free(c);
        nn_plan_free(p);
        nn_model_free(ms[k]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scores_match_graphs),
        cmocka_unit_test(test_move_to_clip_logits),
        cmocka_unit_test(test_temperature_keeps_the_argmax),
        cmocka_unit_test(test_weak_stream_helps),
        cmocka_unit_test(test_temperature_follows_the_labels),
        cmocka_unit_test(test_criterion_per_kind),
        cmocka_unit_test(test_teacher_scores_per_clip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
