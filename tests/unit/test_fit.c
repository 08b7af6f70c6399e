/* test_fit.c — fit/'s clips in memory: loading a data set's parts, evaluating on them
 * (checked against fit_eval through the loader), pooled activations, and fine-tuning a
 * given model in place. */
#include "fit/fit.h"
#include "nn/graph.h"
#include "video/video.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define CLASSES 3
#define PER_CLASS 6

struct fx {
    char dir[64];
    char ckpt[128], log[128]; /* fine-tuning's checkpoint and log, in dir */
    struct nn_model *m;
};

/* A two-stream vgg-small at 32x32, K=1, L=1 mv at 10 fps, for the synth classes. */
static struct nn_model *tiny_model(void)
{
    struct nn_model *m = nn_model_new();
    const char *names[CLASSES];
    for (int i = 0; i < CLASSES; i++)
        names[i] = video_synth_class_name(i);
    struct err_msg em = {{0}};
    assert_int_equal(nn_model_set_classes(m, CLASSES, names, &em), 0);
    m->meta.width = m->meta.height = 32;
    m->meta.motion = NN_MOTION_MV;
    m->meta.motion_len = 1;
    m->meta.segments = 1;
    m->meta.fps = 10;
    struct nn_arch_opts ao = {.arch = "vgg-small", .width = 0.25f, .n_classes = CLASSES,
                              .seed = 5};
    if (nn_arch_two_stream(m->graph, &ao, 32, 32, 2, m->meta.fusion, &em))
        fail_msg("%s", em.text);
    return m;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/actiond-fit-XXXXXX");
    if (!f || !mkdtemp(f->dir))
        return -1;
    struct video_synth_opts so;
    video_synth_opts_default(&so);
    so.classes = CLASSES;
    so.clips_per_class = PER_CLASS;
    so.width = 96;
    so.height = 64;
    so.seconds = 1.0;
    so.test_fraction = 0.5;
    struct err_msg em = {{0}};
    if (video_synth_dataset(f->dir, &so, &em)) {
        fprintf(stderr, "synth: %s\n", em.text);
        return -1;
    }
    f->m = tiny_model();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    nn_model_free(f->m);
    free(f);
    return 0;
}

static struct fit_clips *load(const struct fx *f, const char *split, enum fit_part part,
                              int max_clips)
{
    struct fit_clips_opts o = {.dataset = f->dir, .split = split, .part = part, .val_split = 0.34,
                               .seed = 3, .max_clips = max_clips, .loader_threads = 1};
    struct fit_clips *c = NULL;
    struct err_msg em = {{0}};
    if (fit_clips_load(&f->m->meta, &o, &c, &em))
        fail_msg("fit_clips_load: %s", em.text);
    return c;
}

static void test_parts(void **state)
{
    struct fx *f = *state;
    struct fit_clips *all = load(f, "train", FIT_PART_ALL, 0);
    struct fit_clips *tr = load(f, "train", FIT_PART_TRAIN, 0);
    struct fit_clips *va = load(f, "train", FIT_PART_VAL, 0);
    struct fit_clips *few = load(f, "train", FIT_PART_ALL, 2);
    assert_int_equal(all->n, CLASSES * PER_CLASS / 2);
    assert_int_equal(tr->n + va->n, all->n);
    assert_true(va->n >= 1 && tr->n >= 1);
    assert_int_equal(few->n, 2);
    for (int i = 0; i < all->n; i++)
        assert_true(all->labels[i] >= 0 && all->labels[i] < CLASSES);
    assert_int_equal(all->width, 32);
    assert_int_equal(all->length, 1);
    fit_clips_free(all);
    fit_clips_free(tr);
    fit_clips_free(va);
    fit_clips_free(few);
}

/* The same numbers as fit_eval, which streams the clips through the loader instead. */
static void test_eval_matches_fit_eval(void **state)
{
    struct fx *f = *state;
    struct fit_clips *c = load(f, "test", FIT_PART_ALL, 0);
    struct fit_eval_result a, b;
    struct err_msg em = {{0}};
    assert_int_equal(fit_clips_eval(f->m, c, &a, &em), 0);
    struct fit_eval_opts eo = {.dataset = f->dir, .split = "test", .threads = 1,
                               .loader_threads = 1};
    assert_int_equal(fit_eval(f->m, &eo, &b, &em), 0);
    assert_int_equal(a.clips, b.clips);
    assert_int_equal(a.clips, c->n);
    assert_true(fabs(a.top1 - b.top1) < 1e-12);
    assert_true(fabs(a.top1_rgb - b.top1_rgb) < 1e-12);
    assert_true(fabs(a.top1_motion - b.top1_motion) < 1e-12);
    assert_memory_equal(a.confusion, b.confusion, sizeof(int) * CLASSES * CLASSES);
    /* each stream per class: the same in both, and averaging back to the stream's top-1 */
    assert_non_null(a.per_class_rgb);
    assert_non_null(b.per_class_motion);
    double sum_r = 0, sum_m = 0;
    for (int i = 0; i < CLASSES; i++) {
        int row = 0;
        for (int j = 0; j < CLASSES; j++)
            row += a.confusion[i * CLASSES + j];
        assert_true(fabs(a.per_class_rgb[i] - b.per_class_rgb[i]) < 1e-12);
        assert_true(fabs(a.per_class_motion[i] - b.per_class_motion[i]) < 1e-12);
        sum_r += a.per_class_rgb[i] * row;
        sum_m += a.per_class_motion[i] * row;
    }
    assert_true(fabs(sum_r / a.clips - a.top1_rgb) < 1e-9);
    assert_true(fabs(sum_m / a.clips - a.top1_motion) < 1e-9);
    fit_eval_result_free(&a);
    fit_eval_result_free(&b);
    fit_clips_free(c);
}

static const float *tensor_data(const struct nn_model *m, const char *name)
{
    for (int i = 0; i < m->graph->n_tensors; i++)
        if (strcmp(m->graph->tensors[i].name, name) == 0)
            return m->graph->tensors[i].data;
    fail_msg("no tensor %s", name);
    return NULL;
}

/* Adaptive BN over every clip of a set (two whole batches): in inference mode the first BN's
 * output then averages to its shift (beta) over those clips, whatever its statistics were
 * (deeper BNs see inputs normalised by running, not batch, statistics: close, not exact);
 * too few clips is a clear error. */
static void test_observe_bn(void **state)
{
    struct fx *f = *state;
    struct fit_clips *c = load(f, "all", FIT_PART_ALL, 16);
    assert_int_equal(c->n, 16);
    struct nn_model *m = nn_model_clone(f->m);
    float *run_mean = (float *)tensor_data(m, "motion/features.0.bn.running_mean");
    float *beta = (float *)tensor_data(m, "motion/features.0.bn.bias");
    run_mean[0] += 3.f; /* off-centre, as after a cut */
    for (int j = 0; j < 8; j++)
        beta[j] = 0.1f * (float)j;
    const char *v[1] = {"motion/features.0.bn.out"};
    float *acts[1];
    int ch[1];
    struct err_msg em = {{0}};
    assert_int_equal(fit_clips_observe_bn(m, c, 2, &em), 0);
    assert_int_equal(fit_clips_activations(m, c, v, 1, acts, ch, &em), 0);
    for (int j = 0; j < ch[0]; j++) {
        double mean = 0;
        for (int i = 0; i < c->n; i++)
            mean += acts[0][(size_t)i * ch[0] + j] / c->n;
        assert_true(fabs(mean - beta[j]) < 1e-3);
    }
    free(acts[0]);
    struct fit_clips *few = load(f, "all", FIT_PART_ALL, 7);
    assert_int_equal(fit_clips_observe_bn(m, few, 2, &em), ERR_RANGE);
    assert_non_null(strstr(em.text, "at least 8 clips"));
    fit_clips_free(few);
    nn_model_free(m);
    fit_clips_free(c);
}

/* With K = 1, the pooled logits through the trainer's forward, softmaxed, are the plan's
 * per-stream probabilities. */
static void test_activations_match_plan(void **state)
{
    struct fx *f = *state;
    struct fit_clips *c = load(f, "test", FIT_PART_ALL, 0);
    const char *values[2] = {"rgb/logits", "motion/logits"};
    float *acts[2];
    int ch[2];
    struct err_msg em = {{0}};
    if (fit_clips_activations(f->m, c, values, 2, acts, ch, &em))
        fail_msg("%s", em.text);
    assert_int_equal(ch[0], CLASSES);
    struct nn_plan *p;
    struct nn_ctx *x;
    assert_int_equal(nn_plan_new(f->m->graph, 1, &p, &em), 0);
    assert_int_equal(nn_ctx_new(p, &x), 0);
    size_t rgb_n = 3 * 32 * 32, mot_n = 2 * 32 * 32;
    for (int i = 0; i < c->n; i++) {
        memcpy(nn_ctx_input(x, 0), c->rgb + i * rgb_n, rgb_n * sizeof(float));
        memcpy(nn_ctx_input(x, 1), c->motion + i * mot_n, mot_n * sizeof(float));
        assert_int_equal(nn_run(x), 0);
        for (int s = 0; s < 2; s++) {
            const float *prob = nn_ctx_output(x, 1 + s), *lg = acts[s] + (size_t)i * CLASSES;
            double z = 0;
            for (int j = 0; j < CLASSES; j++)
                z += exp(lg[j]);
            for (int j = 0; j < CLASSES; j++)
                assert_true(fabs(exp(lg[j]) / z - prob[j]) < 1e-4);
        }
    }
    nn_ctx_free(x);
    nn_plan_free(p);
    free(acts[0]);
    free(acts[1]);
    assert_int_equal(fit_clips_activations(f->m, c, (const char *[]){"no/such"}, 1, acts, ch, &em),
                     ERR_NOTFOUND);
    fit_clips_free(c);
}

/* fit_train with a model given trains that model in place and writes nothing else. */
static void test_finetune_in_place(void **state)
{
    struct fx *f = *state;
    struct nn_shape s;
    struct nn_node_view v;
    assert_int_equal(nn_graph_node_view(f->m->graph, 0, &v), 0);
    const float *w = nn_graph_tensor(f->m->graph, v.params[0], &s);
    float before = w[0];
    char ckpt[128], log[128];
    snprintf(ckpt, sizeof ckpt, "%s/ft.ckpt", f->dir);
    snprintf(log, sizeof log, "%s/ft.jsonl", f->dir);
    struct fit_train_opts o;
    fit_train_opts_default(&o);
    o.dataset = f->dir;
    o.model = f->m;
    o.checkpoint = ckpt;
    o.log = log;
    o.size = 32;
    o.motion_len = 1;
    o.segments = 1;
    o.epochs = 1;
    o.batch = 2;
    o.threads = 1;
    o.loader_threads = 1;
    o.val_split = 0.34;
    struct err_msg em = {{0}};
    if (fit_train(&o, &em))
        fail_msg("%s", em.text);
    assert_true(w[0] != before);
    assert_int_equal(access(log, R_OK), 0);
    o.size = 48; /* not the model's */
    assert_int_equal(fit_train(&o, &em), ERR_INVAL);
    o.size = 32;
    o.log = NULL;
    assert_int_equal(fit_train(&o, &em), ERR_INVAL);
}

/* The first weight of a copy of m after one epoch, with or without a teacher. */
static float weight_after(struct fit_train_opts *o, const struct nn_model *m,
                          const struct nn_model *teacher)
{
    struct nn_model *s = nn_model_clone(m);
    o->model = s;
    o->teacher = teacher;
    struct err_msg em = {{0}};
    if (fit_train(o, &em))
        fail_msg("%s", em.text);
    struct nn_node_view v;
    nn_graph_node_view(s->graph, 0, &v);
    float w = nn_graph_tensor(s->graph, v.params[0], NULL)[3];
    nn_model_free(s);
    return w;
}

/* One epoch of fine-tuning at the tiny model's size on the fixture's clips, distilled at 0.5
 * per stream; the model and teacher are weight_after's to set. */
static void distill_opts(struct fit_train_opts *o, struct fx *f)
{
    snprintf(f->ckpt, sizeof f->ckpt, "%s/d.ckpt", f->dir);
    snprintf(f->log, sizeof f->log, "%s/d.jsonl", f->dir);
    fit_train_opts_default(o);
    o->dataset = f->dir;
    o->distill = 0.5f;
    o->checkpoint = f->ckpt;
    o->log = f->log;
    o->size = 32;
    o->motion_len = 1;
    o->segments = 1;
    o->epochs = 1;
    o->batch = 2;
    o->threads = 1;
    o->loader_threads = 1;
    o->val_split = 0.34;
}

/* Distillation from a teacher: its targets per stream and on the fused scores change what
 * is learnt (and deterministically); weights out of range, a fused term without both streams
 * and a teacher that does not take the student's inputs are refused. */
static void test_distill(void **state)
{
    struct fx *f = *state;
    struct nn_model *teacher = tiny_model(), *other = tiny_model();
    other->meta.width = 48;
    struct fit_train_opts o;
    distill_opts(&o, f);
    float plain = weight_after(&o, f->m, NULL), taught = weight_after(&o, f->m, teacher);
    assert_true(plain != taught);
    assert_true(taught == weight_after(&o, f->m, teacher));
    /* the fused term alone, and beside the streams' */
    o.distill = 0;
    o.distill_fused = 0.5f;
    float fused = weight_after(&o, f->m, teacher);
    assert_true(fused != plain && fused != taught);
    assert_true(fused == weight_after(&o, f->m, teacher));
    o.distill = 0.5f;
    float both = weight_after(&o, f->m, teacher);
    assert_true(both != taught && both != fused);
    struct err_msg em = {{0}};
    o.model = f->m;
    o.teacher = teacher;
    o.distill_fused = 1.5f;
    assert_int_equal(fit_train(&o, &em), ERR_RANGE);
    o.distill_fused = 0.5f;
    o.streams = FIT_STREAM_RGB;
    assert_int_equal(fit_train(&o, &em), ERR_INVAL);
    assert_non_null(strstr(em.text, "both streams"));
    o.streams = FIT_STREAM_RGB | FIT_STREAM_MOTION;
    o.distill_fused = 0;
    o.distill = 0;
    assert_int_equal(fit_train(&o, &em), ERR_RANGE);
    o.distill = 0.5f;
    o.teacher = other;
    assert_int_equal(fit_train(&o, &em), ERR_INVAL);
    assert_non_null(strstr(em.text, "teacher"));
    nn_model_free(teacher);
    nn_model_free(other);
}

/* The tail before clip logits (NN_FUSION_LOGITS): the segments' fused softmaxes averaged. The
 * built model's mean and softmax after the fusion swap back (nn_model_fuse_clip_logits undone). */
static void segment_softmax_tail(struct nn_model *m)
{
    struct nn_graph *g = m->graph;
    for (int i = 0; i < g->n_nodes; i++) {
        struct nn_node *s = &g->nodes[i];
        int p = g->values[s->in[0]].producer;
        if (s->op != NN_OP_SOFTMAX || p < 0 || g->nodes[p].op != NN_OP_BATCHMEAN)
            continue;
        struct nn_node *b = &g->nodes[p], t = *s;
        memcpy(s->name, b->name, sizeof s->name);
        s->op = NN_OP_BATCHMEAN;
        s->a = b->a;
        memcpy(b->name, t.name, sizeof b->name);
        b->op = NN_OP_SOFTMAX;
        b->a = t.a;
        return;
    }
    fail_msg("no clip-logit tail");
}

/* The fused term at the teacher's fusion weights: one epoch trains as at the model's own when
 * the two agree and otherwise not, a second not even then (the model's are chosen again);
 * deterministic; refused with a teacher whose weights do not weigh clip logits. */
static void test_distill_fused_teacher(void **state)
{
    struct fx *f = *state;
    struct nn_model *teacher = tiny_model(), *same = nn_model_clone(f->m);
    struct err_msg em = {{0}};
    assert_int_equal(nn_model_set_fusion(teacher, 2.0f, 0.5f, &em), 0);
    assert_int_equal(nn_model_set_fusion(same, 2.0f, 0.5f, &em), 0);
    assert_true(f->m->meta.fusion[0] != 2.0f);
    struct fit_train_opts o;
    distill_opts(&o, f);
    o.distill_fused = 1.f;
    float own = weight_after(&o, f->m, teacher), own_same = weight_after(&o, same, teacher);
    o.distill_fused_teacher = true;
    float theirs = weight_after(&o, f->m, teacher);
    assert_true(theirs != own);
    assert_true(theirs == weight_after(&o, f->m, teacher));
    assert_true(weight_after(&o, same, teacher) == own_same);
    /* a second epoch: the model's own weights are chosen again after the first (here not the
     * teacher's), the teacher's stay */
    o.epochs = 2;
    float theirs2 = weight_after(&o, same, teacher);
    o.distill_fused_teacher = false;
    assert_true(weight_after(&o, same, teacher) != theirs2);
    o.distill_fused_teacher = true;
    o.epochs = 1;
    segment_softmax_tail(teacher);
    assert_int_equal(nn_model_fusion_kind(teacher), NN_FUSION_LOGITS);
    o.model = same;
    assert_int_equal(fit_train(&o, &em), ERR_INVAL);
    assert_non_null(strstr(em.text, "teacher's fusion weights"));
    o.distill_fused_teacher = false;
    (void)weight_after(&o, f->m, teacher); /* its own weights take any two-stream teacher */
    nn_model_free(teacher);
    nn_model_free(same);
}

static void test_wrong_classes(void **state)
{
    struct fx *f = *state;
    struct nn_model *m = tiny_model();
    const char *names[CLASSES] = {"a", "b", "c"};
    assert_int_equal(nn_model_set_classes(m, CLASSES, names, NULL), 0);
    struct fit_clips_opts o = {.dataset = f->dir, .loader_threads = 1};
    struct fit_clips *c = NULL;
    struct err_msg em = {{0}};
    assert_int_equal(fit_clips_load(&m->meta, &o, &c, &em), ERR_FORMAT);
    assert_null(c);
    assert_non_null(strstr(em.text, "class 1"));
    nn_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parts),
        cmocka_unit_test(test_observe_bn),
        cmocka_unit_test(test_eval_matches_fit_eval),
        cmocka_unit_test(test_activations_match_plan),
        cmocka_unit_test(test_wrong_classes),
        cmocka_unit_test(test_finetune_in_place),
        cmocka_unit_test(test_distill),
        cmocka_unit_test(test_distill_fused_teacher),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
