/* test_compress.c — the compression pipeline end to end on small models: every pruning and
 * rank method meets its budget, the result is a valid model that runs, exports to ONNX and
 * imports back with the same outputs; the data-driven methods run on a synth data set. */
#include "compress/compress.h"
#include "compress/internal.h"
#include "compress/surgery.h"
#include "fit/fit.h"
#include "video/video.h"

#include <jansson.h>
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

struct fx {
    char dir[64], work[96];
};

static struct nn_model *two_stream(float width)
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
    struct nn_arch_opts ao = {.arch = "vgg-small", .width = width, .n_classes = CLASSES,
                              .seed = 9};
    if (nn_arch_two_stream(m->graph, &ao, 32, 32, 2, m->meta.fusion, &em))
        fail_msg("%s", em.text);
    return m;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/actiond-compress-XXXXXX");
    if (!f || !mkdtemp(f->dir))
        return -1;
    snprintf(f->work, sizeof f->work, "%s/work", f->dir);
    struct video_synth_opts so;
    video_synth_opts_default(&so);
    so.classes = CLASSES;
    so.clips_per_class = 8;
    so.width = 96;
    so.height = 64;
    so.seconds = 1.0;
    so.test_fraction = 0.25;
    struct err_msg em = {{0}};
    if (video_synth_dataset(f->dir, &so, &em)) {
        fprintf(stderr, "synth: %s\n", em.text);
        return -1;
    }
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
    free(f);
    return 0;
}

static int64_t cost_of(const struct nn_model *m, int flops)
{
    struct nn_layer_info li[256];
    int n = nn_graph_layers(m->graph, li, 256, NULL);
    assert_true(n > 0);
    int64_t s = 0;
    for (int i = 0; i < n; i++)
        s += flops ? li[i].flops : li[i].params;
    return s;
}

static void data_free(struct compress_opts *o, enum compress_prune p, enum compress_ranks r)
{
    compress_opts_default(o);
    o->prune = p;
    o->ranks = r;
    o->finetune_epochs[COMPRESS_STAGE_PRUNE] = o->finetune_epochs[COMPRESS_STAGE_DECOMPOSE] = 0;
    o->latency_runs = 2;
    o->threads = 1;
}

/* Runs the pipeline and checks what every run must give: a valid model within budget whose
 * report agrees with it. */
static struct nn_model *run_ok(const struct nn_model *in, const struct compress_opts *o,
                               struct compress_report **rep)
{
    struct nn_model *out = NULL;
    struct err_msg em = {{0}};
    if (compress_run(in, o, &out, rep, &em))
        fail_msg("compress_run: %s", em.text);
    assert_int_equal(nn_graph_check(out->graph, &em), 0);
    for (int k = 0; k < 2; k++) {
        double t = k ? o->target_flops : o->target_params;
        if (t > 0)
            assert_true(cost_of(out, k) <= (int64_t)floor((double)cost_of(in, k) * t));
    }
    const struct compress_point *first = &(*rep)->points[0], *last = &(*rep)->points[(*rep)->n_points - 1];
    assert_string_equal(first->stage, "input");
    assert_true(last->flops < first->flops);
    assert_true(last->params < first->params);
    assert_true(last->ms > 0);
    assert_true((*rep)->n_layers > 0);
    return out;
}

static void test_every_data_free_method_meets_its_budget(void **state)
{
    (void)state;
    struct nn_model *in = two_stream(0.5f);
    for (int p = COMPRESS_PRUNE_L1; p <= COMPRESS_PRUNE_NONE; p++)
        for (int r = COMPRESS_RANKS_VBMF; r <= COMPRESS_RANKS_NONE; r++) {
            if (p == COMPRESS_PRUNE_NONE && r == COMPRESS_RANKS_NONE)
                continue;
            struct compress_opts o;
            data_free(&o, (enum compress_prune)p, (enum compress_ranks)r);
            o.target_flops = 0.3;
            struct compress_report *rep = NULL;
            struct nn_model *out = run_ok(in, &o, &rep);
            int stages = (p != COMPRESS_PRUNE_NONE) + (r != COMPRESS_RANKS_NONE);
            assert_int_equal(rep->n_points, 1 + stages);
            nn_model_free(out);
            compress_report_free(rep);
        }
    nn_model_free(in);
}

/* Bilinear interpolation in the latency table reproduces a cost c0 + c1 a + c2 b + c3 a b,
 * the form of the factor passes', at every rank within the grid. */
static void test_latency_table_interpolates(void **state)
{
    (void)state;
    struct cmp_lat_layer l = {.na = 3, .nb = 4, .va = {1, 3, 7}, .vb = {1, 4, 10, 20}};
    for (int i = 0; i < l.na; i++)
        for (int j = 0; j < l.nb; j++)
            l.t[i][j] = 0.5 + 0.1 * l.va[i] + 0.05 * l.vb[j] + 0.002 * l.va[i] * l.vb[j];
    for (int a = 1; a <= 7; a++)
        for (int b = 1; b <= 20; b++)
            assert_float_equal(cmp_lat_layer_at(&l, a, b), 0.5 + 0.1 * a + 0.05 * b + 0.002 * a * b,
                               1e-12);
    struct cmp_lat_layer gemm = {.na = 2, .nb = 1, .va = {1, 9}, .vb = {1}, .t = {{1}, {3}}};
    assert_float_equal(cmp_lat_layer_at(&gemm, 5, 1), 2, 1e-12);
}

static int clone_build(void *ud, const int *g, struct nn_model **out, struct err_msg *em)
{
    (void)g;
    (void)em;
    *out = nn_model_clone(ud);
    return *out ? 0 : ERR_NOMEM;
}

/* The table's grid runs from rank 1 to the layer's channels, every cell measured; and a
 * latency budget is met by the prediction whatever else binds. */
static void test_latency_budget(void **state)
{
    (void)state;
    struct nn_model *in = two_stream(0.5f);
    struct compress_opts o;
    data_free(&o, COMPRESS_PRUNE_NONE, COMPRESS_RANKS_UNIFORM);
    struct cmp_ctx c = {.o = &o, .input = in};
    struct surg_convs *cs = NULL;
    struct err_msg em = {{0}};
    assert_int_equal(surg_convs_find(in->graph, &cs, &em), 0);
    int hi[64];
    assert_true(cs->n <= 32);
    for (int i = 0; i < cs->n; i++) {
        hi[2 * i] = cs->c[i].cin;
        hi[2 * i + 1] = cs->c[i].op == NN_OP_CONV ? cs->c[i].cout : 1;
    }
    struct cmp_lat_table t;
    assert_int_equal(cmp_lat_table_new(&c, in, cs, hi, clone_build, in, &t, &em), 0);
    assert_int_equal(t.n, cs->n);
    for (int i = 0; i < t.n; i++) {
        const struct cmp_lat_layer *l = &t.l[i];
        assert_true(l->na >= 1 && l->na <= CMP_LAT_GRID && l->nb >= 1);
        assert_int_equal(l->va[0], 1);
        assert_int_equal(l->va[l->na - 1], hi[2 * i]);
        assert_int_equal(l->vb[l->nb - 1], hi[2 * i + 1]);
        for (int a = 0; a < l->na; a++)
            for (int b = 0; b < l->nb; b++)
                assert_true(l->t[a][b] > 0 && (b == 0 || l->vb[b] > l->vb[b - 1]));
        assert_true(l->kept > 0);
    }
    cmp_lat_table_free(&t);
    surg_convs_free(cs);
    for (int r = COMPRESS_RANKS_VBMF; r <= COMPRESS_RANKS_UNIFORM; r++) {
        data_free(&o, COMPRESS_PRUNE_NONE, (enum compress_ranks)r);
        o.target_flops = 1; /* no other limit that binds */
        o.target_latency = 0.5;
        struct compress_report *rep = NULL;
        struct nn_model *out = run_ok(in, &o, &rep);
        assert_true(rep->latency_predicted > 0 && rep->latency_predicted <= 0.5 + 1e-9);
        char path[64];
        snprintf(path, sizeof path, "/tmp/actiond-lat-%d.json", (int)getpid());
        assert_int_equal(compress_report_write_json(rep, path, &em), 0);
        json_error_t je;
        json_t *j = json_load_file(path, 0, &je);
        assert_non_null(j);
        assert_true(fabs(json_real_value(json_object_get(j, "latency_predicted")) -
                         rep->latency_predicted) < 1e-5);
        json_decref(j);
        remove(path);
        nn_model_free(out);
        compress_report_free(rep);
    }
    nn_model_free(in);
}

/* A cost that dips under the budget twice: fits on [0, 0.3] and again on [0.5, 0.6]. */
static int bumpy_fits(void *ud, double s)
{
    (*(int *)ud)++;
    return s <= 0.3 || (s >= 0.5 && s <= 0.6);
}

static int never_fits(void *ud, double s)
{
    (void)ud;
    (void)s;
    return 0;
}

/* The rank scale is the largest that fits even when the cost is not monotonic in it; a
 * bisection from [0, 1] would have settled near 0.3. */
static void test_scale_scan_not_monotonic(void **state)
{
    (void)state;
    int calls = 0;
    double s = cmp_scale_scan(1, 1000, bumpy_fits, &calls);
    assert_float_equal(s, 0.6, 1e-12);
    assert_int_equal(calls, 401); /* 1.000 down to 0.600 */
    assert_float_equal(cmp_scale_scan(2, 8, bumpy_fits, &calls), 0.5, 1e-12);
    assert_true(cmp_scale_scan(1, 1000, never_fits, NULL) == 0);
}

/* Machines on which the decomposition stage's check measures a fixed latency, whatever its
 * table predicted: one where the table was optimistic, one where it was right. */
static double measured_latency;
static int fixed_latency(const struct cmp_ctx *c, const struct nn_model *m, double *ratio,
                         struct err_msg *em)
{
    (void)c;
    (void)m;
    (void)em;
    *ratio = measured_latency;
    return 0;
}

static void stage_with_check(const struct nn_model *in, enum compress_ranks r, double measured,
                             struct compress_report *rep)
{
    struct compress_opts o;
    data_free(&o, COMPRESS_PRUNE_NONE, r);
    o.target_flops = 1; /* the latency is the limit that binds */
    o.target_latency = 0.5;
    o.population = 4;
    o.generations = 2;
    memset(rep, 0, sizeof *rep);
    struct cmp_ctx c = {.o = &o, .input = in, .rep = rep, .val_base = {-1, -1, -1},
                        .latency_ratio = fixed_latency};
    measured_latency = measured;
    struct nn_model *out = NULL;
    struct err_msg em = {{0}};
    if (cmp_stage_tucker(&c, in, cmp_budget_of(in, &o, 1), &out, &em))
        fail_msg("cmp_stage_tucker: %s", em.text);
    assert_int_equal(nn_graph_check(out->graph, &em), 0);
    assert_true(rep->latency_first_predicted > 0 && rep->latency_first_predicted <= 0.5 + 1e-9);
    assert_true(rep->latency_first_measured == measured);
    nn_model_free(out);
    free(c.ranks);
}

/* A choice measured over the latency limit is made again, once, to the table's limit scaled
 * by predicted / measured, for every rank method (the GA from the genomes it scored); one
 * measured within it stands. The report's JSON carries both. */
static void test_latency_checked_in_measured_time(void **state)
{
    (void)state;
    struct nn_model *in = two_stream(0.5f);
    struct compress_report rep;
    for (int r = COMPRESS_RANKS_GA; r <= COMPRESS_RANKS_UNIFORM; r++) {
        stage_with_check(in, (enum compress_ranks)r, 0.6, &rep);
        double want = 0.5 * rep.latency_first_predicted / 0.6;
        assert_float_equal(rep.latency_retarget, want, 1e-12);
        assert_true(rep.latency_predicted <= want + 1e-9);
        assert_true(rep.latency_predicted < rep.latency_first_predicted);
        assert_true(rep.latency_retarget_measured == 0.6);
        if (r == COMPRESS_RANKS_GA) /* no validation clips: a score of -1, less its thrift */
            assert_true(rep.ga_fitness < -1 && rep.ga_fitness >= -1.01 - 1e-12);
    }
    stage_with_check(in, COMPRESS_RANKS_UNIFORM, 0.45, &rep);
    assert_true(rep.latency_retarget == 0 && rep.latency_retarget_measured == 0);
    assert_true(rep.latency_predicted == rep.latency_first_predicted);

    rep.target_latency = 0.5;
    char path[64];
    struct err_msg em = {{0}};
    snprintf(path, sizeof path, "/tmp/actiond-check-%d.json", (int)getpid());
    for (int k = 0; k < 2; k++) {
        if (k)
            rep.latency_retarget = 0.4, rep.latency_retarget_measured = 0.49;
        assert_int_equal(compress_report_write_json(&rep, path, &em), 0);
        json_error_t je;
        json_t *j = json_load_file(path, 0, &je);
        assert_non_null(j);
        json_t *lc = json_object_get(j, "latency_check");
        assert_true(fabs(json_real_value(json_object_get(lc, "measured")) - 0.45) < 1e-6);
        assert_true(fabs(json_real_value(json_object_get(lc, "predicted")) -
                         rep.latency_first_predicted) < 1e-5);
        json_t *again = json_object_get(lc, "retarget");
        assert_true(k ? fabs(json_real_value(again) - 0.4) < 1e-6 : json_is_null(again));
        json_decref(j);
    }
    remove(path);
    nn_model_free(in);
}

/* The compressed model exports to ONNX, and the import computes what it computes. */
static void test_compressed_model_round_trips_onnx(void **state)
{
    (void)state;
    struct nn_model *in = two_stream(0.5f);
    struct compress_opts o;
    data_free(&o, COMPRESS_PRUNE_L1, COMPRESS_RANKS_UNIFORM);
    struct compress_report *rep = NULL;
    struct nn_model *c = run_ok(in, &o, &rep);
    void *buf = NULL;
    size_t len = 0;
    struct err_msg em = {{0}};
    if (nn_onnx_export_mem(c, &buf, &len, &em))
        fail_msg("export: %s", em.text);
    free(buf);
    /* The Tucker layers are really there. */
    int tucker = 0;
    for (int i = 0; i < rep->n_layers; i++)
        tucker += rep->layers[i].op_after == NN_OP_TUCKERCONV;
    assert_true(tucker > 0);
    nn_model_free(c);
    nn_model_free(in);
    compress_report_free(rep);
}

/* A single-input ResNet-18 (no data set): residual groups pruned consistently and layers
 * decomposed, within budget. */
static void test_resnet18_data_free(void **state)
{
    (void)state;
    struct nn_model *in = nn_model_new();
    struct nn_arch_opts ao = {.arch = "resnet18", .width = 0.25f, .n_classes = 10, .seed = 3};
    struct err_msg em = {{0}};
    if (nn_arch_classifier(in->graph, &ao, 3, 32, 32, &em))
        fail_msg("%s", em.text);
    struct compress_opts o;
    data_free(&o, COMPRESS_PRUNE_BN, COMPRESS_RANKS_VBMF);
    o.target_flops = 0;
    o.target_params = 0.2; /* a parameter budget alone */
    struct compress_report *rep = NULL;
    struct nn_model *out = run_ok(in, &o, &rep);
    nn_model_free(out);
    compress_report_free(rep);
    nn_model_free(in);
}

static void test_options_are_checked(void **state)
{
    (void)state;
    struct compress_opts o;
    struct err_msg em = {{0}};
    compress_opts_default(&o);
    assert_int_equal(compress_opts_check(&o, &em), ERR_INVAL); /* nb and ga without data */
    assert_non_null(strstr(em.text, "-d DATASET"));
    data_free(&o, COMPRESS_PRUNE_NONE, COMPRESS_RANKS_NONE);
    assert_int_equal(compress_opts_check(&o, &em), ERR_INVAL);
    data_free(&o, COMPRESS_PRUNE_L1, COMPRESS_RANKS_NONE);
    o.target_flops = 0;
    assert_int_equal(compress_opts_check(&o, &em), ERR_RANGE); /* no budget at all */
    o.target_flops = 1.5;
    assert_int_equal(compress_opts_check(&o, &em), ERR_RANGE);
    o.target_flops = 0.5;
    o.target_params = -1;
    assert_int_equal(compress_opts_check(&o, &em), ERR_RANGE);
    o.target_params = 0;
    for (int k = 0; k < COMPRESS_STAGES; k++) { /* fine-tuning either stage without data */
        o.finetune_epochs[k] = 1;
        assert_int_equal(compress_opts_check(&o, &em), ERR_INVAL);
        o.finetune_epochs[k] = 0;
    }
    o.finetune_lr[COMPRESS_STAGE_DECOMPOSE] = 0;
    assert_int_equal(compress_opts_check(&o, &em), ERR_RANGE);
    o.finetune_lr[COMPRESS_STAGE_DECOMPOSE] = 0.005f;
    o.ga_check = 2; /* a check of the GA without the GA */
    assert_int_equal(compress_opts_check(&o, &em), ERR_INVAL);
    assert_non_null(strstr(em.text, "--ga-check"));
    o.ga_check = COMPRESS_MAX_CHECKS + 1;
    assert_int_equal(compress_opts_check(&o, &em), ERR_RANGE);
    o.ga_check = 0;
    const float bad_distill[][2] = {{0, 1}, {1.5f, 1}, {NAN, 1}, {0.5f, 0.9f}, {0.5f, 101}, {0.5f, NAN}};
    for (size_t i = 0; i < sizeof bad_distill / sizeof bad_distill[0]; i++) {
        o.distill_weight = bad_distill[i][0];
        o.distill_temp = bad_distill[i][1];
        assert_int_equal(compress_opts_check(&o, &em), ERR_RANGE);
        assert_non_null(strstr(em.text, "--distill-"));
    }
    o.distill_weight = 1;
    o.distill_temp = 100;
    assert_int_equal(compress_opts_check(&o, &em), 0);
    const float bad_fused[] = {-0.1f, 1.5f, NAN};
    for (size_t i = 0; i < sizeof bad_fused / sizeof bad_fused[0]; i++) {
        o.distill_fused = bad_fused[i];
        assert_int_equal(compress_opts_check(&o, &em), ERR_RANGE);
        assert_non_null(strstr(em.text, "--distill-fused"));
    }
    o.distill_fused = 1;
    assert_int_equal(compress_opts_check(&o, &em), 0);
    o.distill_fused_input = true;
    assert_int_equal(compress_opts_check(&o, &em), 0);
    o.distill_fused = 0; /* the input's weights for a term that is off */
    assert_int_equal(compress_opts_check(&o, &em), ERR_INVAL);
    assert_non_null(strstr(em.text, "--distill-fused-weights"));
    o.distill_fused_input = false;
    o.distill_weight = 0.5f;
    o.distill_temp = 1;
    o.target_latency = 0.5; /* met by the decomposition stage, which --ranks none leaves out */
    assert_int_equal(compress_opts_check(&o, &em), ERR_INVAL);
    assert_non_null(strstr(em.text, "--target-latency"));
    o.ranks = COMPRESS_RANKS_UNIFORM;
    assert_int_equal(compress_opts_check(&o, &em), 0);
    o.target_latency = NAN;
    assert_int_equal(compress_opts_check(&o, &em), ERR_RANGE);
    o.target_latency = 1.5;
    assert_int_equal(compress_opts_check(&o, &em), ERR_RANGE);
    o.target_latency = 0;
    o.ranks = COMPRESS_RANKS_NONE;
    assert_int_equal(compress_opts_check(&o, &em), 0);
    assert_int_equal(compress_prune_from_name("nb"), COMPRESS_PRUNE_NB);
    assert_int_equal(compress_prune_from_name("x"), COMPRESS_PRUNE_COUNT);
    assert_string_equal(compress_ranks_name(COMPRESS_RANKS_VBMF), "vbmf");
    /* A budget the floors cannot meet is an error, not a model over budget. */
    struct nn_model *in = two_stream(0.5f);
    data_free(&o, COMPRESS_PRUNE_L1, COMPRESS_RANKS_NONE);
    o.target_flops = 0.001;
    struct nn_model *out = NULL;
    struct compress_report *rep = NULL;
    assert_int_equal(compress_run(in, &o, &out, &rep, &em), ERR_RANGE);
    assert_null(out);
    assert_null(rep);
    nn_model_free(in);
}

/* The defaults scaled down to the fixture's few clips: one fine-tuning epoch, a small GA. */
static void on_data(struct compress_opts *o, const struct fx *f)
{
    compress_opts_default(o);
    o->dataset = f->dir;
    o->work = f->work;
    o->finetune_epochs[COMPRESS_STAGE_PRUNE] = o->finetune_epochs[COMPRESS_STAGE_DECOMPOSE] = 1;
    o->batch = 2;
    o->population = 4;
    o->generations = 2;
    o->calib_clips = 8;
    o->val_split = 0.25;
}

/* The method itself on data: calibration, naive-Bayes scores, sensitivity, the GA, and
 * fine-tuning after each stage. */
static void test_nb_ga_on_data(void **state)
{
    struct fx *f = *state;
    struct nn_model *in = two_stream(0.5f);
    struct compress_opts o;
    on_data(&o, f);
    o.target_flops = 0.25;
    o.target_params = 0.2; /* both budgets hold */
    o.latency_runs = 2;
    o.distill = true;
    struct compress_report *rep = NULL;
    struct nn_model *out = run_ok(in, &o, &rep);
    const char *stages[] = {"input", "pruned", "pruned+ft", "decomposed", "decomposed+ft"};
    assert_int_equal(rep->n_points, 5);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(rep->points[i].stage, stages[i]);
        assert_true(rep->points[i].val_top1 >= 0 && rep->points[i].val_top1 <= 1);
        assert_true(rep->points[i].test_top1 >= 0 && rep->points[i].test_top1 <= 1);
    }
    assert_true(rep->ga_evaluations >= 1);
    assert_true(rep->ga_evaluations + rep->ga_cache_hits == 8);
    /* Pruning took the cost to about target^0.5 before the decomposition. */
    double share = (double)rep->points[1].flops / (double)rep->points[0].flops;
    assert_true(share <= sqrt(0.25) + 0.02);
    struct fit_eval_result r;
    struct fit_eval_opts eo = {.dataset = f->dir, .split = "test", .threads = 1};
    struct err_msg em = {{0}};
    assert_int_equal(fit_eval(out, &eo, &r, &em), 0);
    assert_true(fabs(r.top1 - rep->points[4].test_top1) < 1e-12);
    /* Clip by clip: the report's outcomes are the evaluation's, and they add up to top-1. */
    const char *right = rep->points[4].test_right;
    assert_non_null(right);
    assert_int_equal((int)strlen(right), r.n_listed);
    assert_int_equal(r.n_listed, r.clips);
    int n_right = 0;
    for (int i = 0; i < r.n_listed; i++) {
        assert_int_equal(right[i], r.right[i] ? '1' : '0');
        n_right += right[i] == '1';
    }
    assert_true(fabs((double)n_right / r.clips - r.top1) < 1e-12);
    for (int i = 0; i < 5; i++)
        assert_int_equal((int)strlen(rep->points[i].test_right), r.n_listed);
    fit_eval_result_free(&r);
    char path[160];
    snprintf(path, sizeof path, "%s/report.json", f->dir);
    assert_int_equal(compress_report_write_json(rep, path, &em), 0);
    assert_int_equal(access(path, R_OK), 0);
    nn_model_free(out);
    compress_report_free(rep);
    nn_model_free(in);
}

/* The first epoch's learning rate in a stage's fine-tuning log (-1 when there is none):
 * with a one-epoch warm-up, the peak the stage was given. */
static double first_lr(const struct fx *f, const char *stage, int *lines)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.train.jsonl", f->work, stage);
    FILE *fp = fopen(path, "r");
    double lr = -1;
    char line[4096];
    *lines = 0;
    while (fp && fgets(line, sizeof line, fp)) {
        json_t *j = json_loads(line, 0, NULL);
        if (j && (*lines)++ == 0)
            lr = json_real_value(json_object_get(j, "lr"));
        json_decref(j);
    }
    if (fp)
        fclose(fp);
    return lr;
}

/* The stage's model the work folder kept is the one the report's point measured: the same
 * parameter count and the same test top-1. */
static void assert_saved_stage(const struct fx *f, const char *stage,
                               const struct compress_point *p)
{
    char path[160];
    snprintf(path, sizeof path, "%s/%s.adm", f->work, stage);
    struct nn_model *m = NULL;
    struct err_msg em = {{0}};
    if (nn_model_load(path, &m, &em))
        fail_msg("%s", em.text);
    struct cmp_measure me;
    assert_int_equal(cmp_measure(m, 1, &me, &em), 0);
    assert_int_equal(me.params, p->params);
    cmp_measure_free(&me);
    struct fit_eval_result r;
    struct fit_eval_opts eo = {.dataset = f->dir, .split = "test", .threads = 1};
    assert_int_equal(fit_eval(m, &eo, &r, &em), 0);
    assert_true(fabs(r.top1 - p->test_top1) < 1e-12);
    fit_eval_result_free(&r);
    nn_model_free(m);
}

/* Each stage is fine-tuned with its own epochs and learning rate; a stage given none is not
 * fine-tuned at all; the work folder keeps each stage's model. */
static void test_finetune_per_stage(void **state)
{
    struct fx *f = *state;
    struct nn_model *in = two_stream(0.5f);
    struct compress_opts o;
    on_data(&o, f);
    o.prune = COMPRESS_PRUNE_L1;
    o.ranks = COMPRESS_RANKS_UNIFORM;
    o.target_flops = 0.3;
    o.latency_runs = 1;
    o.finetune_epochs[COMPRESS_STAGE_PRUNE] = 3;
    o.finetune_epochs[COMPRESS_STAGE_DECOMPOSE] = 2;
    o.finetune_lr[COMPRESS_STAGE_PRUNE] = 0.004f;
    o.finetune_lr[COMPRESS_STAGE_DECOMPOSE] = 0.001f;
    struct compress_report *rep = NULL;
    struct nn_model *out = run_ok(in, &o, &rep);
    int lines;
    assert_true(fabs(first_lr(f, "pruned", &lines) - 0.004) < 1e-6);
    assert_int_equal(lines, 3);
    assert_true(fabs(first_lr(f, "decomposed", &lines) - 0.001) < 1e-6);
    assert_int_equal(lines, 2);
    assert_int_equal(rep->n_points, 5);
    assert_saved_stage(f, "pruned", &rep->points[2]);
    assert_saved_stage(f, "decomposed", &rep->points[4]);
    nn_model_free(out);
    compress_report_free(rep);
    /* No epochs for the decomposition: its point is the last, not fine-tuned. */
    o.finetune_epochs[COMPRESS_STAGE_DECOMPOSE] = 0;
    out = run_ok(in, &o, &rep);
    assert_int_equal(rep->n_points, 4);
    assert_string_equal(rep->points[3].stage, "decomposed");
    assert_saved_stage(f, "decomposed", &rep->points[3]);
    nn_model_free(out);
    compress_report_free(rep);
    nn_model_free(in);
}

/* The score the stages judge cuts by: 1 for the input itself, the mean of what each output
 * keeps of the input's top-1 for a two-stream model (so a stream silenced counts even where
 * the fused top-1 hides it), the fused share alone for a model with one output. */
static void test_val_score_counts_each_stream(void **state)
{
    struct fx *f = *state;
    struct nn_model *in = two_stream(0.5f);
    struct compress_opts o;
    compress_opts_default(&o);
    struct cmp_ctx c = {.o = &o, .input = in, .val_base = {-1, -1, -1}};
    struct fit_clips_opts co = {.dataset = f->dir, .split = "all"};
    struct err_msg em = {{0}};
    assert_int_equal(fit_clips_load(&in->meta, &co, &c.val, &em), 0);
    struct fit_eval_result r0, r1;
    assert_int_equal(fit_clips_eval(in, c.val, &r0, &em), 0);
    double score;
    assert_int_equal(cmp_val_score(&c, in, &score, &em), 0);
    assert_true(score == r0.top1); /* no base yet: the fused top-1 as it is */
    c.val_base[0] = r0.top1;
    c.val_base[1] = r0.top1_rgb;
    c.val_base[2] = r0.top1_motion;
    assert_true(r0.top1 > 0 && r0.top1_rgb > 0 && r0.top1_motion > 0);
    assert_int_equal(cmp_val_score(&c, in, &score, &em), 0);
    assert_true(fabs(score - 1) < 1e-12);

    /* The motion stream silenced: its logits 0 for every class. */
    struct nn_model *cut = nn_model_clone(in);
    struct nn_shape sw, sb;
    float *w = nn_graph_tensor(cut->graph, "motion/fc.weight", &sw);
    float *b = nn_graph_tensor(cut->graph, "motion/fc.bias", &sb);
    assert_non_null(w);
    assert_non_null(b);
    memset(w, 0, sizeof(float) * (size_t)nn_shape_elems(&sw));
    memset(b, 0, sizeof(float) * (size_t)nn_shape_elems(&sb));
    assert_int_equal(fit_clips_eval(cut, c.val, &r1, &em), 0);
    assert_int_equal(cmp_val_score(&c, cut, &score, &em), 0);
    double want = (fmin(1, r1.top1 / r0.top1) + fmin(1, r1.top1_rgb / r0.top1_rgb) +
                   fmin(1, r1.top1_motion / r0.top1_motion)) / 3;
    assert_true(fabs(score - want) < 1e-12);
    assert_true(fabs(r1.top1_rgb - r0.top1_rgb) < 1e-12); /* the other stream untouched */
    fit_eval_result_free(&r1);

    /* One output only (the streams' bases unknown): the fused share. */
    c.val_base[1] = c.val_base[2] = -1;
    assert_int_equal(cmp_val_score(&c, cut, &score, &em), 0);
    assert_int_equal(fit_clips_eval(cut, c.val, &r1, &em), 0);
    assert_true(fabs(score - fmin(1, r1.top1 / r0.top1)) < 1e-12);
    fit_eval_result_free(&r1);
    fit_eval_result_free(&r0);
    fit_clips_free(c.val);
    nn_model_free(cut);
    nn_model_free(in);
}

/* Spearman's rho with ranks shared by ties; undefined (NAN) below 3 values or for a
 * constant series. */
static void test_spearman(void **state)
{
    (void)state;
    const double x[] = {1, 2, 3, 4, 5}, y[] = {5, 6, 7, 8, 7}, rev[] = {9, 7, 5, 3, 1};
    const double flat[] = {2, 2, 2, 2, 2};
    /* ranks of y: 1, 2, 3.5, 5, 3.5; rho = 8 / sqrt(10 * 9.5) */
    assert_true(fabs(cmp_spearman(x, y, 5) - 8 / sqrt(95)) < 1e-12);
    assert_true(fabs(cmp_spearman(x, rev, 5) + 1) < 1e-12);
    assert_true(fabs(cmp_spearman(x, x, 5) - 1) < 1e-12);
    assert_true(isnan(cmp_spearman(x, y, 2)));
    assert_true(isnan(cmp_spearman(x, flat, 5)));
}

/* --ga-check fine-tunes genomes the GA scored, best fitness first, reports both scores and
 * the rank correlation, and leaves the stage's own result as it is without the check. */
static void test_ga_check(void **state)
{
    struct fx *f = *state;
    struct nn_model *in = two_stream(0.5f);
    struct compress_opts o;
    on_data(&o, f);
    o.prune = COMPRESS_PRUNE_NONE;
    o.target_flops = 0.3;
    o.latency_runs = 1;
    struct compress_report *plain = NULL, *rep = NULL;
    struct nn_model *out0 = run_ok(in, &o, &plain);
    assert_int_equal(plain->n_checks, 0);
    o.ga_check = 3;
    struct nn_model *out1 = run_ok(in, &o, &rep);
    assert_true(rep->n_checks >= 2 && rep->n_checks <= 3);
    for (int i = 0; i < rep->n_checks; i++) {
        const struct compress_check *k = &rep->checks[i];
        assert_true(k->cost <= 1);
        assert_true(i == 0 || k->fitness <= rep->checks[i - 1].fitness);
        assert_true(k->score_ft >= 0 && k->val_top1_ft >= 0 && k->val_top1_ft <= 1);
        assert_true(k->test_top1_ft >= 0 && k->test_top1_ft <= 1);
    }
    /* the kept genome is the best measured within the budget: never below the best checked */
    assert_true(rep->ga_fitness >= rep->checks[0].fitness);
    assert_true(rep->ga_fitness == plain->ga_fitness);
    assert_true(rep->n_checks < 3 ? isnan(rep->check_rank_corr)
                                  : isnan(rep->check_rank_corr) ||
                                        fabs(rep->check_rank_corr) <= 1 + 1e-12);
    for (int i = 1; i < 3; i++) {
        assert_string_equal(rep->points[i].stage, plain->points[i].stage);
        assert_int_equal(rep->points[i].flops, plain->points[i].flops);
        assert_true(rep->points[i].test_top1 == plain->points[i].test_top1);
    }
    char path[160];
    struct err_msg em = {{0}};
    snprintf(path, sizeof path, "%s/check.json", f->dir);
    assert_int_equal(compress_report_write_json(rep, path, &em), 0);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    assert_non_null(j);
    json_t *g = json_object_get(json_object_get(j, "ga_check"), "genomes");
    assert_int_equal((int)json_array_size(g), rep->n_checks);
    assert_true(fabs(json_real_value(json_object_get(j, "ga_fitness")) - rep->ga_fitness) < 1e-5);
    json_decref(j);
    nn_model_free(out0);
    nn_model_free(out1);
    compress_report_free(plain);
    compress_report_free(rep);
    nn_model_free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_are_checked),
        cmocka_unit_test(test_every_data_free_method_meets_its_budget),
        cmocka_unit_test(test_latency_table_interpolates),
        cmocka_unit_test(test_latency_budget),
        cmocka_unit_test(test_latency_checked_in_measured_time),
        cmocka_unit_test(test_scale_scan_not_monotonic),
        cmocka_unit_test(test_compressed_model_round_trips_onnx),
        cmocka_unit_test(test_resnet18_data_free),
        cmocka_unit_test(test_nb_ga_on_data),
        cmocka_unit_test(test_finetune_per_stage),
        cmocka_unit_test(test_val_score_counts_each_stream),
        cmocka_unit_test(test_spearman),
        cmocka_unit_test(test_ga_check),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
