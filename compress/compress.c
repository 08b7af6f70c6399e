/* compress.c — the pipeline: options, the stages in order (prune, fine-tune, decompose,
 * fine-tune), and a measured point of the report after each. */
#include "compress/internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const prune_names[] = {
#define COMPRESS_NAME_(n, s) s,
    COMPRESS_PRUNE_MAP(COMPRESS_NAME_)
#undef COMPRESS_NAME_
};
static const char *const ranks_names[] = {
#define COMPRESS_NAME_(n, s) s,
    COMPRESS_RANKS_MAP(COMPRESS_NAME_)
#undef COMPRESS_NAME_
};

const char *compress_prune_name(enum compress_prune p)
{
    return p >= 0 && p < COMPRESS_PRUNE_COUNT ? prune_names[p] : "?";
}

const char *compress_ranks_name(enum compress_ranks r)
{
    return r >= 0 && r < COMPRESS_RANKS_COUNT ? ranks_names[r] : "?";
}

enum compress_prune compress_prune_from_name(const char *s)
{
    int i = 0;
    while (i < COMPRESS_PRUNE_COUNT && strcmp(s, prune_names[i]) != 0)
        i++;
    return (enum compress_prune)i;
}

enum compress_ranks compress_ranks_from_name(const char *s)
{
    int i = 0;
    while (i < COMPRESS_RANKS_COUNT && strcmp(s, ranks_names[i]) != 0)
        i++;
    return (enum compress_ranks)i;
}

void compress_opts_default(struct compress_opts *o)
{
    memset(o, 0, sizeof *o);
    o->prune = COMPRESS_PRUNE_NB;
    o->ranks = COMPRESS_RANKS_GA;
    o->target_flops = 0.2;
    o->prune_share = 0.5;
    o->floor = 0.25;
    o->calib_clips = 200;
    o->bn_batches = 4;
    o->val_split = 0.1;
    o->finetune_epochs[COMPRESS_STAGE_PRUNE] = o->finetune_epochs[COMPRESS_STAGE_DECOMPOSE] = 12;
    o->finetune_lr[COMPRESS_STAGE_PRUNE] = o->finetune_lr[COMPRESS_STAGE_DECOMPOSE] = 0.005f;
    o->batch = 8;
    o->distill_weight = 0.5f;
    o->distill_temp = 1.f;
    o->population = 16;
    o->generations = 10;
    o->hooi_iters = 5;
    o->seed = 1;
    o->threads = 2;
    o->latency_runs = 20;
}

int compress_opts_check(const struct compress_opts *o, struct err_msg *em)
{
    if (o->prune < 0 || o->prune >= COMPRESS_PRUNE_COUNT || o->ranks < 0 ||
        o->ranks >= COMPRESS_RANKS_COUNT)
        return err_set(em, ERR_RANGE, "unknown --prune or --ranks method");
    if (!(o->target_flops >= 0 && o->target_flops <= 1) ||
        !(o->target_params >= 0 && o->target_params <= 1) ||
        (o->target_flops == 0 && o->target_params == 0))
        return err_set(em, ERR_RANGE, "the targets must be fractions in (0, 1] (at least one), "
                                      "not %g and %g", o->target_flops, o->target_params);
    if (!(o->prune_share >= 0 && o->prune_share <= 1) || !(o->floor > 0 && o->floor <= 1))
        return err_set(em, ERR_RANGE, "--prune-share and --floor must be in [0, 1] and (0, 1]");
    if (o->calib_clips < 2 || o->calib_clips > 100000 || o->val_clips < 0 ||
        o->val_clips > 100000 || o->bn_batches < 0 || o->bn_batches > 1000)
        return err_set(em, ERR_RANGE, "--calib-clips must be in 2..100000, --val-clips 0..100000, "
                                      "--bn-batches 0..1000");
    for (int k = 0; k < COMPRESS_STAGES; k++)
        if (o->finetune_epochs[k] < 0 || o->finetune_epochs[k] > FIT_MAX_EPOCHS ||
            !(o->finetune_lr[k] > 0 && o->finetune_lr[k] < 10))
            return err_set(em, ERR_RANGE, "fine-tuning epochs or learning rate out of range");
    if (o->batch < 1 || o->batch > 256)
        return err_set(em, ERR_RANGE, "--batch %d outside 1..256", o->batch);
    if (!(o->distill_weight > 0 && o->distill_weight <= 1) ||
        !(o->distill_temp >= 1 && o->distill_temp <= NN_MAX_TEMPERATURE) ||
        !(o->distill_fused >= 0 && o->distill_fused <= 1))
        return err_set(em, ERR_RANGE, "--distill-weight must be in (0, 1], --distill-temp "
                                      "in [1, %d] and --distill-fused in [0, 1]",
                       NN_MAX_TEMPERATURE);
    if (o->distill_fused_input && !(o->distill_fused > 0))
        return err_set(em, ERR_INVAL, "--distill-fused-weights input needs --distill-fused");
    if (o->population < 4 || o->population > 1024 || o->generations < 1 ||
        o->generations > 10000 || o->hooi_iters < 0 || o->hooi_iters > 100)
        return err_set(em, ERR_RANGE, "--population (4..1024), --generations (1..10000) or "
                                      "HOOI rounds out of range");
    if (o->ga_check < 0 || o->ga_check > COMPRESS_MAX_CHECKS)
        return err_set(em, ERR_RANGE, "--ga-check must be in 0..%d", COMPRESS_MAX_CHECKS);
    if (o->ga_check &&
        (o->ranks != COMPRESS_RANKS_GA || o->finetune_epochs[COMPRESS_STAGE_DECOMPOSE] == 0))
        return err_set(em, ERR_INVAL, "--ga-check fine-tunes genomes of the GA: it needs "
                                      "--ranks ga and fine-tuning epochs");
    if (o->threads < 1 || o->threads > 64 || o->latency_runs < 1 || o->latency_runs > 10000)
        return err_set(em, ERR_RANGE, "--threads (1..64) or latency runs out of range");
    if (!o->dataset && (o->prune == COMPRESS_PRUNE_NB || o->ranks == COMPRESS_RANKS_GA))
        return err_set(em, ERR_INVAL, "--prune nb and --ranks ga learn from data: give -d DATASET");
    if (!o->dataset && (o->finetune_epochs[COMPRESS_STAGE_PRUNE] > 0 ||
                        o->finetune_epochs[COMPRESS_STAGE_DECOMPOSE] > 0 || o->distill))
        return err_set(em, ERR_INVAL, "fine-tuning needs a data set: give -d DATASET, or "
                                      "--finetune-epochs 0 without --distill");
    if (!(o->target_latency >= 0 && o->target_latency <= 1))
        return err_set(em, ERR_RANGE, "--target-latency %g outside (0, 1]", o->target_latency);
    if (o->target_latency > 0 && o->ranks == COMPRESS_RANKS_NONE)
        return err_set(em, ERR_INVAL, "--target-latency is met by the decomposition stage: "
                                      "give --ranks ga, vbmf or uniform");
    if (o->prune == COMPRESS_PRUNE_NONE && o->ranks == COMPRESS_RANKS_NONE)
        return err_set(em, ERR_INVAL, "--prune none with --ranks none leaves nothing to do");
    if (o->dataset && !o->work)
        return err_set(em, ERR_INVAL, "a work folder is needed for the fine-tuning's checkpoints");
    return 0;
}

struct cmp_budget cmp_budget_of(const struct nn_model *m, const struct compress_opts *o,
                                double power)
{
    struct cmp_budget b = {0, 0, power == 1 ? o->target_latency : 0};
    if (o->target_flops > 0)
        b.flops = floor((double)cmp_cost(m, 1) * pow(o->target_flops, power));
    if (o->target_params > 0)
        b.params = floor((double)cmp_cost(m, 0) * pow(o->target_params, power));
    return b;
}

double cmp_budget_ratio(struct cmp_budget b, int64_t flops, int64_t params)
{
    double f = b.flops > 0 ? (double)flops / b.flops : 0;
    double p = b.params > 0 ? (double)params / b.params : 0;
    return f > p ? f : p;
}

/* m's validation top-1 per output: fused, RGB, motion (< 0 where m has no such output). */
static int val_eval(const struct cmp_ctx *c, const struct nn_model *m, double acc[3],
                    struct err_msg *em)
{
    struct fit_eval_result r;
    int rc = fit_clips_eval(m, c->val, &r, em);
    if (rc == 0) {
        acc[0] = r.top1;
        acc[1] = r.top1_rgb;
        acc[2] = r.top1_motion;
    }
    fit_eval_result_free(&r);
    return rc;
}

int cmp_val_measure(const struct cmp_ctx *c, const struct nn_model *m, double *top1,
                    double *score, struct err_msg *em)
{
    double acc[3];
    *top1 = *score = -1;
    if (!c->val)
        return 0;
    int rc = val_eval(c, m, acc, em);
    if (rc)
        return rc;
    double sum = 0;
    int n = 0;
    for (int i = 0; i < 3; i++)
        if (c->val_base[i] > 0 && acc[i] >= 0) {
            /* a share above 1 is luck on a weak stream, not a gain to set against a loss */
            sum += fmin(1, acc[i] / c->val_base[i]);
            n++;
        }
    *top1 = acc[0];
    *score = n ? sum / n : acc[0];
    return 0;
}

int cmp_val_top1(const struct cmp_ctx *c, const struct nn_model *m, double *top1,
                 struct err_msg *em)
{
    double score;
    return cmp_val_measure(c, m, top1, &score, em);
}

int cmp_val_score(const struct cmp_ctx *c, const struct nn_model *m, double *score,
                  struct err_msg *em)
{
    double top1;
    return cmp_val_measure(c, m, &top1, score, em);
}

int cmp_observe_bn(const struct cmp_ctx *c, struct nn_model *m, struct err_msg *em)
{
    if (!c->calib || c->o->bn_batches == 0 || c->bn_off)
        return 0;
    return fit_clips_observe_bn(m, c->calib, c->o->bn_batches, em);
}

int cmp_test_eval(const struct cmp_ctx *c, const struct nn_model *m, struct fit_eval_result *r,
                  struct err_msg *em)
{
    struct fit_eval_opts eo = {.dataset = c->o->dataset, .split = "test", .cache = c->o->cache,
                               .threads = 1};
    return fit_eval(m, &eo, r, em);
}

/* Average ranks (ties share the mean of their positions) of v[0..n) into r. */
static void ranks_of(const double *v, int n, double *r)
{
    for (int i = 0; i < n; i++) {
        int below = 0, equal = 0;
        for (int j = 0; j < n; j++) {
            below += v[j] < v[i];
            equal += v[j] == v[i];
        }
        r[i] = below + (equal + 1) / 2.0;
    }
}

double cmp_spearman(const double *x, const double *y, int n)
{
    if (n < 3)
        return NAN;
    double *rx = malloc(sizeof(double) * 2 * (size_t)n);
    if (!rx)
        return NAN;
    double *ry = rx + n, mean = (n + 1) / 2.0, sxy = 0, sxx = 0, syy = 0;
    ranks_of(x, n, rx);
    ranks_of(y, n, ry);
    for (int i = 0; i < n; i++) {
        sxy += (rx[i] - mean) * (ry[i] - mean);
        sxx += (rx[i] - mean) * (rx[i] - mean);
        syy += (ry[i] - mean) * (ry[i] - mean);
    }
    free(rx);
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
}

/* Adds a measured point (cost, latency, validation and test accuracy) to the report. */
static int add_point(struct cmp_ctx *c, const char *stage, const struct nn_model *m,
                     double seconds, struct err_msg *em)
{
    struct compress_report *rep = c->rep;
    if (rep->n_points >= COMPRESS_MAX_POINTS)
        return err_set(em, ERR_RANGE, "too many report points");
    struct compress_point *p = &rep->points[rep->n_points];
    memset(p, 0, sizeof *p);
    snprintf(p->stage, sizeof p->stage, "%s", stage);
    p->seconds = seconds;
    p->test_top1 = p->test_top1_rgb = p->test_top1_motion = -1;
    struct cmp_measure me;
    int rc = cmp_measure(m, c->o->latency_runs, &me, em);
    if (rc)
        return rc;
    p->params = me.params;
    p->flops = me.flops;
    p->ms = me.ms;
    cmp_measure_free(&me);
    if ((rc = cmp_val_top1(c, m, &p->val_top1, em)))
        return rc;
    if (c->o->dataset) {
        struct fit_eval_result r;
        if ((rc = cmp_test_eval(c, m, &r, em)))
            return rc;
        p->test_top1 = r.top1;
        p->test_top1_rgb = r.top1_rgb;
        p->test_top1_motion = r.top1_motion;
        p->test_right = fit_eval_right_string(&r);
        fit_eval_result_free(&r);
        if (!p->test_right)
            return err_set(em, ERR_NOMEM, "out of memory");
    }
    rep->n_points++;
    log_info("compress: %-14s params %lld, FLOPs %lld, %.2f ms, val top-1 %.3f, test top-1 %.3f",
             stage, (long long)p->params, (long long)p->flops, p->ms, p->val_top1, p->test_top1);
    return 0;
}

int cmp_finetune(const struct cmp_ctx *c, struct nn_model *m, enum compress_stage which,
                 const char *stage, struct err_msg *em)
{
    const struct compress_opts *o = c->o;
    char ckpt[4096], log[4096];
    snprintf(ckpt, sizeof ckpt, "%s/%s.ckpt", o->work, stage);
    snprintf(log, sizeof log, "%s/%s.train.jsonl", o->work, stage);
    struct fit_train_opts t;
    fit_train_opts_default(&t);
    t.dataset = o->dataset;
    t.cache = o->cache;
    t.model = m;
    t.checkpoint = ckpt;
    t.log = log;
    t.size = m->meta.width;
    t.motion = m->meta.motion;
    t.motion_len = m->meta.motion_len;
    t.segments = m->meta.segments;
    t.fps = m->meta.fps;
    t.epochs = o->finetune_epochs[which];
    t.batch = o->batch;
    t.lr = o->finetune_lr[which];
    t.val_split = o->val_split;
    t.seed = o->seed;
    t.threads = o->threads;
    t.progress_bar = o->progress;
    t.teacher = o->distill ? c->input : NULL;
    t.distill = o->distill_weight;
    t.distill_temp = o->distill_temp;
    t.distill_fused = o->distill_fused;
    t.distill_fused_teacher = o->distill_fused_input;
    if (t.teacher)
        log_info("compress: fine-tuning (%s) for %d epochs from lr %g, distilled at weight %g "
                 "(fused %g%s), temperature %g", stage, t.epochs, (double)t.lr,
                 (double)t.distill, (double)t.distill_fused,
                 t.distill_fused_teacher ? " at the input's fusion weights" : "",
                 (double)t.distill_temp);
    else
        log_info("compress: fine-tuning (%s) for %d epochs from lr %g", stage, t.epochs,
                 (double)t.lr);
    int rc = fit_train(&t, em);
    remove(ckpt);
    return rc;
}

static int load_clips(struct cmp_ctx *c, struct err_msg *em)
{
    const struct compress_opts *o = c->o;
    struct fit_clips_opts co = {.dataset = o->dataset, .split = "train", .part = FIT_PART_VAL,
                                .val_split = o->val_split, .seed = o->seed,
                                .max_clips = o->val_clips, .cache = o->cache};
    int rc = fit_clips_load(&c->input->meta, &co, &c->val, em);
    if (rc == 0 && (o->prune == COMPRESS_PRUNE_NB || o->bn_batches > 0)) {
        co.part = FIT_PART_TRAIN;
        co.max_clips = o->calib_clips;
        rc = fit_clips_load(&c->input->meta, &co, &c->calib, em);
    }
    if (rc == 0 && o->bn_batches > 0 && c->calib->n < COMPRESS_BN_BATCH) {
        log_warn("compress: adaptive BN left out: %d calibration clips, it needs %d",
                 c->calib->n, COMPRESS_BN_BATCH);
        c->bn_off = true;
    }
    if (rc == 0)
        log_info("compress: %d validation clips%s%d calibration clips", c->val->n,
                 c->calib ? ", " : "", c->calib ? c->calib->n : 0);
    return rc;
}

/* Each stage's result (fine-tuned when it was) in the work folder as NAME.adm: a long run
 * that fails later keeps what it made, and one pruned model can be inspected, evaluated or
 * decomposed again by itself. Only with data, when there is a work folder. */
static int save_stage(const struct cmp_ctx *c, const struct nn_model *m, const char *name,
                      struct err_msg *em)
{
    if (!c->o->dataset)
        return 0;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s.adm", c->o->work, name) >= (int)sizeof path)
        return err_set(em, ERR_INVAL, "%s: work folder name too long", c->o->work);
    int rc = nn_model_save(m, path, em);
    if (rc == 0)
        log_info("compress: %s model saved to %s", name, path);
    return rc;
}

/* One stage: run it, measure it, fine-tune it and measure again. *cur becomes the result. */
static int stage(struct cmp_ctx *c, struct nn_model **cur, struct cmp_budget target, int decompose,
                 struct err_msg *em)
{
    uint64_t t0 = clock_mono_ns();
    struct nn_model *next = NULL;
    const char *name = decompose ? "decomposed" : "pruned";
    int rc = decompose ? cmp_stage_tucker(c, *cur, target, &next, em)
                       : cmp_stage_prune(c, *cur, target, &next, em);
    if (rc == 0)
        rc = cmp_observe_bn(c, next, em);
    if (rc) {
        nn_model_free(next);
        return rc;
    }
    nn_model_free(*cur);
    *cur = next;
    if ((rc = add_point(c, name, next, clock_elapsed_s(t0, clock_mono_ns()), em)))
        return rc;
    enum compress_stage which = decompose ? COMPRESS_STAGE_DECOMPOSE : COMPRESS_STAGE_PRUNE;
    if (c->o->finetune_epochs[which] > 0) {
        t0 = clock_mono_ns();
        char ft[32];
        snprintf(ft, sizeof ft, "%s+ft", name);
        if ((rc = cmp_finetune(c, next, which, name, em)) ||
            (rc = add_point(c, ft, next, clock_elapsed_s(t0, clock_mono_ns()), em)))
            return rc;
    }
    return save_stage(c, next, name, em);
}

static int run(struct cmp_ctx *c, struct nn_model **cur, struct err_msg *em)
{
    const struct compress_opts *o = c->o;
    int rc = 0;
    /* the input's accuracies: the denominators of cmp_val_score */
    if (o->dataset && ((rc = load_clips(c, em)) || (rc = val_eval(c, c->input, c->val_base, em))))
        return rc;
    if (o->dataset && mkdir(o->work, 0755) != 0 && errno != EEXIST)
        return err_set(em, ERR_IO, "%s: cannot make the work folder: %s", o->work,
                       strerror(errno));
    if ((rc = add_point(c, "input", c->input, 0, em)))
        return rc;
    int both = o->prune != COMPRESS_PRUNE_NONE && o->ranks != COMPRESS_RANKS_NONE;
    struct cmp_budget total = cmp_budget_of(c->input, o, 1);
    if (o->prune != COMPRESS_PRUNE_NONE) {
        struct cmp_budget t = both ? cmp_budget_of(c->input, o, o->prune_share) : total;
        if ((rc = stage(c, cur, t, 0, em)))
            return rc;
    }
    if (o->ranks != COMPRESS_RANKS_NONE)
        rc = stage(c, cur, total, 1, em);
    return rc;
}

int compress_run(const struct nn_model *in, const struct compress_opts *o, struct nn_model **out,
                 struct compress_report **report, struct err_msg *em)
{
    int rc = compress_opts_check(o, em);
    if (rc)
        return rc;
    struct compress_report *rep = calloc(1, sizeof *rep);
    struct nn_model *cur = nn_model_clone(in);
    if (!rep || !cur) {
        free(rep);
        nn_model_free(cur);
        return err_set(em, ERR_NOMEM, "out of memory");
    }
    snprintf(rep->prune, sizeof rep->prune, "%s", compress_prune_name(o->prune));
    snprintf(rep->ranks, sizeof rep->ranks, "%s", compress_ranks_name(o->ranks));
    rep->target_flops = o->target_flops;
    rep->target_params = o->target_params;
    rep->target_latency = o->target_latency;
    rep->check_rank_corr = NAN;
    struct cmp_ctx c = {.o = o, .input = in, .rep = rep, .val_base = {-1, -1, -1}};
    uint64_t t0 = clock_mono_ns();
    rc = run(&c, &cur, em);
    if (rc == 0)
        rc = cmp_report_layers(&c, cur, em);
    rep->seconds = clock_elapsed_s(t0, clock_mono_ns());
    fit_clips_free(c.val);
    fit_clips_free(c.calib);
    free(c.ranks);
    if (rc) {
        nn_model_free(cur);
        compress_report_free(rep);
        return rc;
    }
    *out = cur;
    if (report)
        *report = rep;
    else
        compress_report_free(rep);
    return 0;
}
