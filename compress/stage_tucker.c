/* stage_tucker.c — the decomposition stage: Tucker-2 ranks for every k×k convolution and an
 * SVD rank for every Gemm, chosen by the genetic search (or VBMF, or one uniform ratio), scaled
 * down together when over the budget, and the layers replaced. Full ranks mean "leave it". */
#include "compress/ga.h"
#include "compress/internal.h"
#include "compress/surgery.h"
#include "compress/tucker.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Fitness = validation top-1 - PENALTY * (cost / target - 1 when over) - THRIFT * cost / target:
 * 10 % over the budget costs as much as 10 points of accuracy, and among genomes equally
 * accurate the cheaper wins. */
#define GA_PENALTY 1.0
#define GA_THRIFT 0.01

struct factors {
    int layer, r1, r2;
    float *u_in, *core, *u_out, *a, *b;
    double err;
};

/* A genome the GA scored: the result is picked among them, --ga-check studies them. */
struct scored {
    int *g;
    double fitness, score, cost;
};

struct tucker_run {
    struct cmp_ctx *c;
    const struct nn_model *in;
    struct surg_convs *cs;
    int n;                 /* layers: genes 2i (R_in, or r) and 2i+1 (R_out, or 1) */
    int *lo, *hi;          /* [2n] */
    const float **w;       /* [n] their weights */
    int64_t base_flops, base_params; /* the cost of everything else */
    struct cmp_budget budget;
    pthread_mutex_t mu;    /* guards the factor cache and the scored list */
    struct factors **cache;
    int n_cache, cap_cache;
    struct scored *scored; /* every genome the GA evaluated */
    int n_scored, cap_scored;
    struct cmp_lat_table lat; /* with a latency budget; else lat.n = 0 */
};

/* Layer i stays as it is at full ranks, and at ranks whose factors would cost as much
 * (a first layer with few input channels at full resolution: the three factor passes cost
 * more than the one convolution). */
static int layer_kept(const struct tucker_run *t, const int *g, int i)
{
    return (g[2 * i] == t->hi[2 * i] && g[2 * i + 1] == t->hi[2 * i + 1]) ||
           !surg_decomposition_pays(&t->cs->c[i], g[2 * i], g[2 * i + 1]);
}

/* The latency table's prediction for genome g, a fraction of the input's latency. */
static double genome_latency(const struct tucker_run *t, const int *g)
{
    double f = t->lat.rest;
    for (int i = 0; i < t->lat.n; i++)
        f += layer_kept(t, g, i) ? t->lat.l[i].kept
                                 : cmp_lat_layer_at(&t->lat.l[i], g[2 * i], g[2 * i + 1]);
    return f;
}

/* The model's cost relative to the budget (cmp_budget_ratio, and the predicted latency
 * against its limit): within it when <= 1. */
static double genome_cost(const struct tucker_run *t, const int *g)
{
    int64_t flops = t->base_flops, params = t->base_params;
    for (int i = 0; i < t->n; i++) {
        const struct surg_conv *cv = &t->cs->c[i];
        int64_t f = cv->flops, p = cv->params;
        int rc = 0;
        if (!layer_kept(t, g, i) && cv->op == NN_OP_CONV)
            rc = surg_tucker_cost(cv, g[2 * i], g[2 * i + 1], &f, &p);
        else if (!layer_kept(t, g, i))
            rc = surg_svd_cost(cv, g[2 * i], &f, &p);
        if (rc) /* genes are kept within bounds, so this is a bug: never fits */
            return HUGE_VAL;
        flops += f;
        params += p;
    }
    double r = cmp_budget_ratio(t->budget, flops, params);
    double l = t->lat.n && t->budget.latency > 0 ? genome_latency(t, g) / t->budget.latency : 0;
    return l > r ? l : r;
}

static void factors_free(struct factors *f)
{
    if (!f)
        return;
    free(f->u_in);
    free(f->core);
    free(f->u_out);
    free(f->a);
    free(f->b);
    free(f);
}

static int factors_compute(const struct tucker_run *t, int i, int r1, int r2,
                           struct factors **out, struct err_msg *em)
{
    const struct surg_conv *cv = &t->cs->c[i];
    struct factors *f = calloc(1, sizeof *f);
    if (!f)
        return err_set(em, ERR_NOMEM, "out of memory");
    f->layer = i;
    f->r1 = r1;
    f->r2 = r2;
    int rc;
    if (cv->op == NN_OP_CONV) {
        f->u_in = malloc(sizeof(float) * (size_t)r1 * cv->cin);
        f->core = malloc(sizeof(float) * (size_t)r2 * r1 * cv->kh * cv->kw);
        f->u_out = malloc(sizeof(float) * (size_t)cv->cout * r2);
        rc = f->u_in && f->core && f->u_out
                 ? tucker2_decompose(t->w[i], cv->cout, cv->cin, cv->kh, cv->kw, r1, r2,
                                     t->c->o->hooi_iters, f->u_in, f->core, f->u_out, &f->err, em)
                 : err_set(em, ERR_NOMEM, "out of memory");
    } else {
        f->a = malloc(sizeof(float) * (size_t)r1 * cv->cin);
        f->b = malloc(sizeof(float) * (size_t)cv->cout * r1);
        rc = f->a && f->b ? svd_truncate(t->w[i], cv->cout, cv->cin, r1, f->a, f->b, &f->err, em)
                          : err_set(em, ERR_NOMEM, "out of memory");
    }
    if (rc) {
        factors_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

static struct factors *cache_find(struct tucker_run *t, int i, int r1, int r2)
{
    for (int k = 0; k < t->n_cache; k++)
        if (t->cache[k]->layer == i && t->cache[k]->r1 == r1 && t->cache[k]->r2 == r2)
            return t->cache[k];
    return NULL;
}

/* The factors of layer i at (r1, r2), computed once whichever thread asks first; they live
 * until the stage ends. */
static int factors_get(struct tucker_run *t, int i, int r1, int r2, struct factors **out,
                       struct err_msg *em)
{
    pthread_mutex_lock(&t->mu);
    *out = cache_find(t, i, r1, r2);
    pthread_mutex_unlock(&t->mu);
    if (*out)
        return 0;
    struct factors *f = NULL;
    int rc = factors_compute(t, i, r1, r2, &f, em);
    if (rc)
        return rc;
    pthread_mutex_lock(&t->mu);
    if ((*out = cache_find(t, i, r1, r2)) == NULL) {
        if (t->n_cache == t->cap_cache) {
            int cap = t->cap_cache ? 2 * t->cap_cache : 64;
            struct factors **p = realloc(t->cache, sizeof *p * (size_t)cap);
            if (!p) {
                pthread_mutex_unlock(&t->mu);
                factors_free(f);
                return err_set(em, ERR_NOMEM, "out of memory");
            }
            t->cache = p;
            t->cap_cache = cap;
        }
        t->cache[t->n_cache++] = *out = f;
        f = NULL;
    }
    pthread_mutex_unlock(&t->mu);
    factors_free(f); /* another thread was first */
    return 0;
}

/* The model a genome describes. */
static int build(struct tucker_run *t, const int *g, struct nn_model **out, struct err_msg *em)
{
    struct surg_factor *sf = calloc((size_t)t->n + 1, sizeof *sf);
    if (!sf)
        return err_set(em, ERR_NOMEM, "out of memory");
    int k = 0, rc = 0;
    for (int i = 0; rc == 0 && i < t->n; i++) {
        if (layer_kept(t, g, i))
            continue;
        struct factors *f;
        if ((rc = factors_get(t, i, g[2 * i], g[2 * i + 1], &f, em)))
            break;
        sf[k] = (struct surg_factor){.node = t->cs->c[i].name, .r1 = f->r1, .r2 = f->r2,
                                     .u_in = f->u_in, .core = f->core, .u_out = f->u_out,
                                     .a = f->a, .b = f->b};
        k++;
    }
    if (rc == 0)
        rc = k ? surg_decompose(t->in, k, sf, out, em)
               : ((*out = nn_model_clone(t->in)) ? 0 : err_set(em, ERR_NOMEM, "out of memory"));
    free(sf);
    return rc;
}

static int build_cb(void *ud, const int *g, struct nn_model **out, struct err_msg *em)
{
    return build(ud, g, out, em);
}

static int keep_scored(struct tucker_run *t, const int *g, double fitness, double score,
                       double cost, struct err_msg *em)
{
    int *copy = malloc(sizeof(int) * 2 * (size_t)t->n);
    if (!copy)
        return err_set(em, ERR_NOMEM, "out of memory");
    memcpy(copy, g, sizeof(int) * 2 * (size_t)t->n);
    pthread_mutex_lock(&t->mu);
    if (t->n_scored == t->cap_scored) {
        int cap = t->cap_scored ? 2 * t->cap_scored : 64;
        struct scored *p = realloc(t->scored, sizeof *p * (size_t)cap);
        if (!p) {
            pthread_mutex_unlock(&t->mu);
            free(copy);
            return err_set(em, ERR_NOMEM, "out of memory");
        }
        t->scored = p;
        t->cap_scored = cap;
    }
    t->scored[t->n_scored++] = (struct scored){copy, fitness, score, cost};
    pthread_mutex_unlock(&t->mu);
    return 0;
}

static double fitness_of(double score, double ratio)
{
    return score - GA_PENALTY * (ratio > 1 ? ratio - 1 : 0) - GA_THRIFT * ratio;
}

static int fitness(void *ud, const int *g, int n_genes, double *fit, struct err_msg *em)
{
    (void)n_genes;
    struct tucker_run *t = ud;
    struct nn_model *m = NULL;
    double acc = 0;
    int rc = build(t, g, &m, em);
    if (rc == 0)
        rc = cmp_observe_bn(t->c, m, em);
    if (rc == 0)
        rc = cmp_val_score(t->c, m, &acc, em);
    nn_model_free(m);
    double ratio = genome_cost(t, g);
    *fit = fitness_of(acc, ratio);
    if (rc == 0)
        rc = keep_scored(t, g, *fit, acc, ratio, em);
    return rc;
}

static void scaled(const struct tucker_run *t, const int *from, double s, int *g)
{
    for (int k = 0; k < 2 * t->n; k++) {
        long r = lround(s * from[k]);
        g[k] = r < t->lo[k] ? t->lo[k] : r > t->hi[k] ? t->hi[k] : (int)r;
    }
}

struct scan_ud {
    const struct tucker_run *t;
    const int *from;
    int *tmp;
};

static int scaled_fits(void *ud, double s)
{
    struct scan_ud *u = ud;
    scaled(u->t, u->from, s, u->tmp);
    return genome_cost(u->t, u->tmp) <= 1;
}

/* Ranks s * from[] (clamped to their bounds) for the largest s whose cost fits the budget:
 * down when from[] is over it, up when it leaves budget unused, so that every rank method
 * spends the same budget and keeps only its shape (the scan: cmp_scale_scan). ERR_RANGE when
 * not even ranks of 1 fit. */
static int scale_to_budget(const struct tucker_run *t, const int *from, int *g, struct err_msg *em)
{
    enum { STEPS = 4096 };
    double top = 1;
    for (int k = 0; k < 2 * t->n; k++)
        if (from[k] > 0 && (double)t->hi[k] / from[k] > top)
            top = (double)t->hi[k] / from[k];
    struct scan_ud u = {t, from, malloc(sizeof(int) * 2 * (size_t)t->n)};
    if (!u.tmp)
        return err_set(em, ERR_NOMEM, "out of memory");
    double s = cmp_scale_scan(top, STEPS, scaled_fits, &u);
    free(u.tmp);
    scaled(t, from, s, g);
    if (genome_cost(t, g) > 1)
        return err_set(em, ERR_RANGE, "decomposition cannot reach the budget: %.2f times it "
                                      "at the lowest ranks",
                       genome_cost(t, g));
    return 0;
}

double cmp_scale_scan(double top, int steps, int (*fits)(void *ud, double s), void *ud)
{
    for (int k = steps; k > 0; k--)
        if (fits(ud, top * k / steps))
            return top * k / steps;
    return 0;
}

static int vbmf_genome(const struct tucker_run *t, int *g, struct err_msg *em)
{
    int rc = 0;
    for (int i = 0; rc == 0 && i < t->n; i++) {
        const struct surg_conv *cv = &t->cs->c[i];
        if (cv->op == NN_OP_CONV) {
            rc = vbmf_conv_ranks(t->w[i], cv->cout, cv->cin, cv->kh, cv->kw, &g[2 * i],
                                 &g[2 * i + 1], em);
        } else {
            rc = vbmf_rank(t->w[i], cv->cout, cv->cin, &g[2 * i], em);
            g[2 * i + 1] = 1;
        }
    }
    return rc;
}

/* Best fitness first; equal fitness in gene order, so that the pick does not depend on
 * which thread scored a genome first. */
static int scored_before(const struct tucker_run *t, const struct scored *a,
                         const struct scored *b)
{
    if (a->fitness != b->fitness)
        return a->fitness > b->fitness;
    return memcmp(a->g, b->g, sizeof(int) * 2 * (size_t)t->n) < 0;
}

/* One genome built and fine-tuned as the stage's result would be, then scored again. */
static int check_one(struct tucker_run *t, const struct scored *s, int k,
                     struct compress_check *out, struct err_msg *em)
{
    char stage[32];
    snprintf(stage, sizeof stage, "ga-check-%d", k + 1);
    *out = (struct compress_check){.fitness = s->fitness, .score = s->score, .cost = s->cost,
                                   .test_top1_ft = -1};
    struct nn_model *m = NULL;
    int rc = build(t, s->g, &m, em);
    if (rc == 0)
        rc = cmp_observe_bn(t->c, m, em);
    if (rc == 0)
        rc = cmp_finetune(t->c, m, COMPRESS_STAGE_DECOMPOSE, stage, em);
    if (rc == 0)
        rc = cmp_val_measure(t->c, m, &out->val_top1_ft, &out->score_ft, em);
    struct fit_eval_result r;
    if (rc == 0 && (rc = cmp_test_eval(t->c, m, &r, em)) == 0) {
        out->test_top1_ft = r.top1;
        fit_eval_result_free(&r);
    }
    nn_model_free(m);
    if (rc == 0)
        log_info("compress: GA check %d: fitness %.4f (score %.4f, cost %.2f of the budget) -> "
                 "fine-tuned score %.4f, val top-1 %.3f, test top-1 %.3f",
                 k + 1, out->fitness, out->score, out->cost, out->score_ft, out->val_top1_ft,
                 out->test_top1_ft);
    return rc;
}

/* --ga-check: genomes within the budget, spread over the fitness order from the best to
 * the worst, each fine-tuned; the report gets both scores of each and Spearman's rho. A
 * fitness that ranks candidates as fine-tuning would has rho near 1. */
static int ga_check(struct tucker_run *t, struct err_msg *em)
{
    int *idx = malloc(sizeof(int) * (size_t)(t->n_scored > 0 ? t->n_scored : 1)), m = 0;
    if (!idx)
        return err_set(em, ERR_NOMEM, "out of memory");
    for (int i = 0; i < t->n_scored; i++) { /* insertion sort: a few hundred at most */
        if (t->scored[i].cost > 1)
            continue;
        int j = m++;
        for (; j > 0 && scored_before(t, &t->scored[i], &t->scored[idx[j - 1]]); j--)
            idx[j] = idx[j - 1];
        idx[j] = i;
    }
    struct compress_report *rep = t->c->rep;
    int want = t->c->o->ga_check < m ? t->c->o->ga_check : m, rc = 0;
    double fit[COMPRESS_MAX_CHECKS], after[COMPRESS_MAX_CHECKS];
    for (int k = 0; rc == 0 && k < want; k++) {
        int pick = want == 1 ? 0 : (int)lround((double)k * (m - 1) / (want - 1));
        if ((rc = check_one(t, &t->scored[idx[pick]], k, &rep->checks[k], em)) == 0) {
            fit[k] = rep->checks[k].fitness;
            after[k] = rep->checks[k].score_ft;
            rep->n_checks = k + 1;
        }
    }
    free(idx);
    if (rc == 0) {
        rep->check_rank_corr = cmp_spearman(fit, after, rep->n_checks);
        log_info("compress: GA check: %d genomes, Spearman's rho of fitness against the "
                 "fine-tuned score %.3f", rep->n_checks, rep->check_rank_corr);
    }
    return rc;
}

static void ga_progress(void *ud, const struct ga_progress *p)
{
    (void)ud;
    log_info("compress: GA generation %d/%d: best fitness %.4f, mean %.4f, %d evaluations "
             "(%d cached)",
             p->generation, p->generations, p->best, p->mean, p->evaluations, p->cache_hits);
}

/* The result: the genome of the best fitness the GA measured within the budget. When its
 * best overall is over the budget, that genome scaled down (as the baselines are) is scored
 * too and competes with the others: a scaled genome is a guess until it is measured, and a
 * slightly cheaper genome the GA did measure may score better. */
static int pick_within_budget(struct tucker_run *t, const int *best, int *g, struct err_msg *em)
{
    int rc = 0;
    if (genome_cost(t, best) > 1) {
        double fit;
        if ((rc = scale_to_budget(t, best, g, em)) == 0)
            rc = fitness(t, g, 2 * t->n, &fit, em);
    } else {
        memcpy(g, best, sizeof(int) * 2 * (size_t)t->n);
    }
    const struct scored *top = NULL;
    for (int i = 0; rc == 0 && i < t->n_scored; i++)
        if (t->scored[i].cost <= 1 && (!top || scored_before(t, &t->scored[i], top)))
            top = &t->scored[i];
    if (top) {
        memcpy(g, top->g, sizeof(int) * 2 * (size_t)t->n);
        t->c->rep->ga_fitness = top->fitness;
    }
    return rc;
}

static int ga_genome(struct tucker_run *t, int *g, struct err_msg *em)
{
    const struct compress_opts *o = t->c->o;
    int *seeds = malloc(sizeof(int) * 4 * (size_t)t->n), *best = malloc(sizeof(int) * 2 * (size_t)t->n);
    int rc = seeds && best ? 0 : err_set(em, ERR_NOMEM, "out of memory");
    if (rc == 0 && (rc = scale_to_budget(t, t->hi, seeds, em)) == 0 &&
        (rc = vbmf_genome(t, best, em)) == 0)
        rc = scale_to_budget(t, best, seeds + 2 * t->n, em);
    struct ga_opts go;
    ga_opts_default(&go);
    go.population = o->population;
    go.generations = o->generations;
    go.seed = o->seed;
    go.threads = o->threads;
    struct ga_result res = {0};
    if (rc == 0) {
        nn_blas_set_threads(1); /* the GA's threads each run their own model */
        rc = ga_run(&go, 2 * t->n, t->lo, t->hi, seeds, 2, fitness, t, ga_progress, NULL, best,
                    &res, em);
    }
    if (rc == 0 && o->ga_check)
        rc = ga_check(t, em);
    if (rc == 0) {
        t->c->rep->ga_evaluations = res.evaluations;
        t->c->rep->ga_cache_hits = res.cache_hits;
        rc = pick_within_budget(t, best, g, em);
    }
    free(seeds);
    free(best);
    return rc;
}

static int setup(struct tucker_run *t, struct cmp_budget target, struct err_msg *em)
{
    int rc = surg_convs_find(t->in->graph, &t->cs, em);
    if (rc)
        return rc;
    t->n = t->cs->n;
    if (t->n == 0)
        return err_set(em, ERR_UNSUPPORTED, "the model has no layer to decompose");
    t->lo = malloc(sizeof(int) * 2 * (size_t)t->n);
    t->hi = malloc(sizeof(int) * 2 * (size_t)t->n);
    t->w = calloc((size_t)t->n, sizeof *t->w);
    if (!t->lo || !t->hi || !t->w)
        return err_set(em, ERR_NOMEM, "out of memory");
    t->base_flops = cmp_cost(t->in, 1);
    t->base_params = cmp_cost(t->in, 0);
    t->budget = target;
    for (int i = 0; i < t->n; i++) {
        const struct surg_conv *cv = &t->cs->c[i];
        t->base_flops -= cv->flops;
        t->base_params -= cv->params;
        t->lo[2 * i] = t->lo[2 * i + 1] = t->hi[2 * i + 1] = 1;
        t->hi[2 * i] = cv->op == NN_OP_CONV ? cv->cin : (cv->cin < cv->cout ? cv->cin : cv->cout);
        if (cv->op == NN_OP_CONV)
            t->hi[2 * i + 1] = cv->cout;
        for (int k = 0; k < nn_graph_n_nodes(t->in->graph); k++) {
            struct nn_node_view v;
            nn_graph_node_view(t->in->graph, k, &v);
            if (strcmp(v.name, cv->name) == 0)
                t->w[i] = nn_graph_tensor(t->in->graph, v.params[0], NULL);
        }
        if (!t->w[i])
            return err_set(em, ERR_FORMAT, "layer %s has no weight", cv->name);
    }
    return 0;
}

static void run_free(struct tucker_run *t)
{
    for (int k = 0; k < t->n_cache; k++)
        factors_free(t->cache[k]);
    free(t->cache);
    for (int k = 0; k < t->n_scored; k++)
        free(t->scored[k].g);
    free(t->scored);
    cmp_lat_table_free(&t->lat);
    free(t->lo);
    free(t->hi);
    free(t->w);
    surg_convs_free(t->cs);
}

/* The latency table of the layers (lat_table.c), measured before any genome is costed. */
static int latency_table(struct tucker_run *t, struct err_msg *em)
{
    uint64_t t0 = clock_mono_ns();
    int rc = cmp_lat_table_new(t->c, t->in, t->cs, t->hi, build_cb, t, &t->lat, em);
    if (rc == 0)
        log_info("compress: latency table of %d layers at up to %dx%d ranks in %.1f s; the "
                 "rest of the model takes %.3f of the input's time",
                 t->lat.n, CMP_LAT_GRID, CMP_LAT_GRID, clock_elapsed_s(t0, clock_mono_ns()),
                 t->lat.rest);
    return rc;
}

/* The chosen layers into the report's rank list. */
static int record(struct tucker_run *t, const int *g, struct err_msg *em)
{
    struct cmp_ctx *c = t->c;
    free(c->ranks);
    c->n_ranks = 0;
    if (!(c->ranks = calloc((size_t)t->n, sizeof *c->ranks)))
        return err_set(em, ERR_NOMEM, "out of memory");
    for (int i = 0; i < t->n; i++) {
        if (layer_kept(t, g, i))
            continue;
        struct factors *f;
        int rc = factors_get(t, i, g[2 * i], g[2 * i + 1], &f, em);
        if (rc)
            return rc;
        struct cmp_rank *r = &c->ranks[c->n_ranks++];
        snprintf(r->name, sizeof r->name, "%s", t->cs->c[i].name);
        r->rin = f->r1;
        r->rout = t->cs->c[i].op == NN_OP_CONV ? f->r2 : 0;
        r->rel_err = f->err;
        log_info("compress: %-24s %s ranks %d/%d of %d/%d, error %.4f", r->name,
                 t->cs->c[i].op == NN_OP_CONV ? "Tucker-2" : "SVD", f->r1, r->rout,
                 t->hi[2 * i], t->hi[2 * i + 1], f->err);
    }
    return 0;
}

static int choose(struct tucker_run *t, int *g, struct err_msg *em)
{
    switch (t->c->o->ranks) {
    case COMPRESS_RANKS_GA: return ga_genome(t, g, em);
    case COMPRESS_RANKS_VBMF: {
        int rc = vbmf_genome(t, g, em);
        return rc ? rc : scale_to_budget(t, g, g, em);
    }
    default: return scale_to_budget(t, t->hi, g, em);
    }
}

/* The choice again under the budget as it now stands. The GA is not run again: the genomes
 * it scored are costed and their fitness taken again, and the best within the budget kept
 * (the best of all scaled down and scored when it is over, as after the search). */
static int choose_again(struct tucker_run *t, int *g, struct err_msg *em)
{
    if (t->c->o->ranks != COMPRESS_RANKS_GA || t->n_scored == 0)
        return choose(t, g, em);
    int top = 0;
    for (int i = 0; i < t->n_scored; i++) {
        struct scored *s = &t->scored[i];
        s->cost = genome_cost(t, s->g);
        s->fitness = fitness_of(s->score, s->cost);
        if (scored_before(t, s, &t->scored[top]))
            top = i;
    }
    int *best = malloc(sizeof(int) * 2 * (size_t)t->n); /* scoring may move the list */
    if (!best)
        return err_set(em, ERR_NOMEM, "out of memory");
    memcpy(best, t->scored[top].g, sizeof(int) * 2 * (size_t)t->n);
    int rc = pick_within_budget(t, best, g, em);
    free(best);
    return rc;
}

/* The table predicts; the built model is timed beside the input as the report will time it.
 * The table has been a few per cent optimistic (a whole model's runs are not the sum of its
 * layers' medians), which is enough to miss a limit the choice spent exactly. When the
 * measured latency is over the limit, the table's error is taken as a bias of the whole
 * model's time: the ranks are chosen again, once, to a table limit scaled by predicted /
 * measured, and *m rebuilt. The report keeps both figures of both choices. */
static int check_latency(struct tucker_run *t, int *g, struct nn_model **m, struct err_msg *em)
{
    struct cmp_ctx *c = t->c;
    struct compress_report *rep = c->rep;
    cmp_latency_fn ratio = c->latency_ratio ? c->latency_ratio : cmp_latency_ratio;
    double limit = t->budget.latency, p = genome_latency(t, g), q;
    int rc = ratio(c, *m, &q, em);
    if (rc)
        return rc;
    rep->latency_first_predicted = p;
    rep->latency_first_measured = q;
    log_info("compress: latency of the choice %.3f of the input's measured, %.3f predicted "
             "(limit %.3f)", q, p, limit);
    if (q <= limit || !(p > 0))
        return 0;
    t->budget.latency = limit * p / q;
    rep->latency_retarget = t->budget.latency;
    if ((rc = choose_again(t, g, em)))
        return rc;
    nn_model_free(*m);
    *m = NULL;
    if ((rc = build(t, g, m, em)) == 0 && (rc = ratio(c, *m, &q, em)) == 0) {
        rep->latency_retarget_measured = q;
        log_info("compress: over the limit, chosen again at a table limit of %.3f: %.3f "
                 "measured, %.3f predicted", t->budget.latency, q, genome_latency(t, g));
    }
    return rc;
}

int cmp_stage_tucker(struct cmp_ctx *c, const struct nn_model *in, struct cmp_budget target,
                     struct nn_model **out, struct err_msg *em)
{
    struct tucker_run t = {.c = c, .in = in};
    *out = NULL;
    pthread_mutex_init(&t.mu, NULL);
    int rc = setup(&t, target, em);
    if (rc == 0 && target.latency > 0)
        rc = latency_table(&t, em);
    int *g = rc ? NULL : malloc(sizeof(int) * 2 * (size_t)t.n);
    if (rc == 0 && !g)
        rc = err_set(em, ERR_NOMEM, "out of memory");
    if (rc == 0)
        rc = choose(&t, g, em);
    if (rc == 0)
        rc = build(&t, g, out, em);
    if (rc == 0 && t.lat.n)
        rc = check_latency(&t, g, out, em);
    if (rc == 0 && t.lat.n) {
        c->rep->latency_predicted = genome_latency(&t, g);
        log_info("compress: predicted latency %.3f of the input's (limit %.3f)",
                 c->rep->latency_predicted, target.latency);
    }
    if (rc == 0)
        rc = record(&t, g, em);
    if (rc) {
        nn_model_free(*out);
        *out = NULL;
    }
    free(g);
    run_free(&t);
    pthread_mutex_destroy(&t.mu);
    return rc;
}
