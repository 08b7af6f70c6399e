/* stage_prune.c — the pruning stage: a score per channel of every prunable group (naive
 * Bayes from calibration activations, or a baseline), a sensitivity weight per group from the
 * validation clips, the global allocation under the budget, and the channels removed. */
#include "compress/internal.h"
#include "compress/prune.h"
#include "compress/surgery.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A group's channels are halved to measure how much the model minds. */
#define SENSITIVITY_KEEP 0.5
/* Layer weights stay within [1, SENSITIVITY_MAX_WEIGHT]. */
#define SENSITIVITY_MAX_WEIGHT 4.0

struct prune_run {
    struct cmp_ctx *c;
    const struct nn_model *in;
    struct surg_groups *gr;
    int n;          /* prunable groups */
    int *gi;        /* [n]: their indices in gr */
    double **score; /* [n][channels] */
    double *lw;     /* [n] */
    int *keep_all;  /* [gr->n]: the cost function's scratch */
    struct cmp_budget budget;
};

static void run_free(struct prune_run *r)
{
    for (int i = 0; r->score && i < r->n; i++)
        free(r->score[i]);
    free(r->score);
    free(r->gi);
    free(r->lw);
    free(r->keep_all);
    surg_groups_free(r->gr);
}

static int setup(struct prune_run *r, struct err_msg *em)
{
    int rc = surg_groups_find(r->in->graph, &r->gr, em);
    if (rc)
        return rc;
    r->gi = calloc((size_t)r->gr->n + 1, sizeof(int));
    r->score = calloc((size_t)r->gr->n + 1, sizeof(double *));
    r->lw = calloc((size_t)r->gr->n + 1, sizeof(double));
    r->keep_all = calloc((size_t)r->gr->n + 1, sizeof(int));
    if (!r->gi || !r->score || !r->lw || !r->keep_all)
        return err_set(em, ERR_NOMEM, "out of memory");
    for (int i = 0; i < r->gr->n; i++) {
        r->keep_all[i] = r->gr->g[i].channels;
        if (r->gr->g[i].prunable)
            r->gi[r->n++] = i;
        else
            log_debug("compress: group %s kept whole: %s", r->gr->g[i].name, r->gr->g[i].reason);
    }
    for (int i = 0; i < r->n; i++)
        if (!(r->score[i] = calloc((size_t)r->gr->g[r->gi[i]].channels, sizeof(double))))
            return err_set(em, ERR_NOMEM, "out of memory");
    if (r->n == 0)
        return err_set(em, ERR_UNSUPPORTED, "the model has no prunable convolution");
    return 0;
}

/* The naive-Bayes scores: pooled activations of every group over the calibration clips. */
static int score_nb(struct prune_run *r, struct err_msg *em)
{
    const char **values = calloc((size_t)r->n, sizeof *values);
    float **acts = calloc((size_t)r->n, sizeof *acts);
    int *ch = calloc((size_t)r->n, sizeof *ch);
    double *w = NULL;
    struct nn_model *m = nn_model_clone(r->in); /* the trainer's forward wants it writable */
    int rc = values && acts && ch && m ? 0 : err_set(em, ERR_NOMEM, "out of memory");
    for (int i = 0; rc == 0 && i < r->n; i++)
        values[i] = r->gr->g[r->gi[i]].act_value;
    if (rc == 0)
        rc = fit_clips_activations(m, r->c->calib, values, r->n, acts, ch, em);
    for (int i = 0; rc == 0 && i < r->n; i++) {
        const struct surg_group *g = &r->gr->g[r->gi[i]];
        if (ch[i] != g->channels)
            rc = err_set(em, ERR_FORMAT, "value %s has %d channels, group %s %d", values[i],
                         ch[i], g->name, g->channels);
        free(w);
        if (rc == 0 && !(w = calloc((size_t)g->channels, sizeof *w)))
            rc = err_set(em, ERR_NOMEM, "out of memory");
        if (rc == 0)
            rc = surg_consumer_norms(r->in->graph, r->gr, r->gi[i], w);
        if (rc == 0)
            rc = prune_score_nb(acts[i], r->c->calib->labels, r->c->calib->n, g->channels,
                                r->c->calib->n_classes, w, r->score[i], NULL, em);
    }
    for (int i = 0; acts && i < r->n; i++)
        free(acts[i]);
    free(w);
    free(values);
    free(acts);
    free(ch);
    nn_model_free(m);
    return rc;
}

/* Adds the baseline score of one producer or BN node to the group's scores. */
static int score_node(struct prune_run *r, int i, const char *node, struct err_msg *em)
{
    const struct nn_graph *g = r->in->graph;
    int ch = r->gr->g[r->gi[i]].channels;
    double *s = malloc(sizeof(double) * (size_t)ch);
    if (!s)
        return err_set(em, ERR_NOMEM, "out of memory");
    for (int k = 0; k < nn_graph_n_nodes(g); k++) {
        struct nn_node_view v;
        nn_graph_node_view(g, k, &v);
        if (strcmp(v.name, node) != 0)
            continue;
        struct nn_shape sh;
        const float *t = nn_graph_tensor(g, v.params[0], &sh);
        if (v.op == NN_OP_BATCHNORM)
            prune_score_bn(t, ch, s);
        else
            prune_score_l1(t, ch, (int)(nn_shape_elems(&sh) / ch), s);
        for (int j = 0; j < ch; j++)
            r->score[i][j] += s[j];
    }
    free(s);
    return 0;
}

static int score_baseline(struct prune_run *r, struct err_msg *em)
{
    enum compress_prune p = r->c->o->prune;
    int rc = 0;
    for (int i = 0; rc == 0 && i < r->n; i++) {
        const struct surg_group *g = &r->gr->g[r->gi[i]];
        if (p == COMPRESS_PRUNE_RANDOM) {
            prune_score_random(r->c->o->seed * 7919 + (uint64_t)i, g->channels, r->score[i]);
        } else if (p == COMPRESS_PRUNE_BN && g->n_bns > 0) {
            for (int k = 0; rc == 0 && k < g->n_bns; k++)
                rc = score_node(r, i, g->bns[k], em);
        } else { /* L1, and BN-gamma for a group without BatchNorm */
            for (int k = 0; rc == 0 && k < g->n_producers; k++)
                rc = score_node(r, i, g->producers[k], em);
        }
    }
    return rc;
}

static double prune_cost(void *ud, const int *keep)
{
    struct prune_run *r = ud;
    for (int i = 0; i < r->n; i++)
        r->keep_all[r->gi[i]] = keep[i];
    int64_t flops = 0, params = 0;
    if (surg_prune_cost(r->in->graph, r->gr, r->keep_all, &flops, &params) != 0)
        return NAN;
    return cmp_budget_ratio(r->budget, flops, params);
}

/* Masks keeping keep[i] channels of prunable group i (the top scores); NULL for the others. */
static int make_masks(const struct prune_run *r, const int *keep, unsigned char **masks,
                      struct err_msg *em)
{
    int rc = 0;
    for (int i = 0; rc == 0 && i < r->n; i++) {
        int ch = r->gr->g[r->gi[i]].channels;
        unsigned char *m = malloc((size_t)ch);
        if (!m)
            return err_set(em, ERR_NOMEM, "out of memory");
        masks[r->gi[i]] = m;
        rc = prune_mask_top(r->score[i], ch, keep[i], m, em);
    }
    return rc;
}

static void free_masks(const struct prune_run *r, unsigned char **masks)
{
    for (int i = 0; i < r->gr->n; i++)
        free(masks[i]);
}

/* Prunes group i alone to half its channels and measures the validation score lost
 * (cmp_val_score); weights grow with the loss relative to the mean loss. Without clips all
 * weights are 1. */
static int sensitivity(struct prune_run *r, struct err_msg *em)
{
    for (int i = 0; i < r->n; i++)
        r->lw[i] = 1;
    if (!r->c->val)
        return 0;
    double base;
    int rc = cmp_val_score(r->c, r->in, &base, em);
    int *keep = calloc((size_t)r->n, sizeof(int));
    unsigned char **masks = calloc((size_t)r->gr->n, sizeof *masks);
    if (!keep || !masks)
        rc = err_set(em, ERR_NOMEM, "out of memory");
    double mean = 0;
    for (int i = 0; rc == 0 && i < r->n; i++) {
        for (int j = 0; j < r->n; j++)
            keep[j] = r->gr->g[r->gi[j]].channels;
        keep[i] = (int)ceil(keep[i] * SENSITIVITY_KEEP);
        struct nn_model *m = NULL;
        double acc = base;
        if ((rc = make_masks(r, keep, masks, em)) == 0 &&
            (rc = surg_prune(r->in, r->gr, (const unsigned char *const *)masks, &m, em)) == 0 &&
            (rc = cmp_observe_bn(r->c, m, em)) == 0)
            rc = cmp_val_score(r->c, m, &acc, em);
        nn_model_free(m);
        free_masks(r, masks);
        memset(masks, 0, sizeof *masks * (size_t)r->gr->n);
        r->lw[i] = base - acc > 0 ? base - acc : 0;
        mean += r->lw[i] / r->n;
    }
    for (int i = 0; rc == 0 && i < r->n; i++) {
        double w = 1 + r->lw[i] / (mean > 0.01 ? mean : 0.01);
        log_info("compress: sensitivity %-24s score %+.3f at half width, weight %.2f",
                 r->gr->g[r->gi[i]].name, -r->lw[i], fmin(w, SENSITIVITY_MAX_WEIGHT));
        r->lw[i] = fmin(w, SENSITIVITY_MAX_WEIGHT);
    }
    free(keep);
    free(masks);
    return rc;
}

static int allocate_and_cut(struct prune_run *r, struct nn_model **out, struct err_msg *em)
{
    int *ch = calloc((size_t)r->n, sizeof(int)), *fl = calloc((size_t)r->n, sizeof(int));
    int *keep = calloc((size_t)r->n, sizeof(int));
    unsigned char **masks = calloc((size_t)r->gr->n, sizeof *masks);
    int rc = ch && fl && keep && masks ? 0 : err_set(em, ERR_NOMEM, "out of memory");
    for (int i = 0; rc == 0 && i < r->n; i++) {
        ch[i] = r->gr->g[r->gi[i]].channels;
        fl[i] = (int)ceil(ch[i] * r->c->o->floor);
        fl[i] = fl[i] < 1 ? 1 : fl[i] > ch[i] ? ch[i] : fl[i];
    }
    if (rc == 0)
        rc = prune_allocate(r->n, ch, (const double *const *)r->score, r->lw, fl, prune_cost, r,
                            1.0, keep, em);
    for (int i = 0; rc == 0 && i < r->n; i++)
        log_info("compress: prune %-24s %4d -> %4d channels", r->gr->g[r->gi[i]].name, ch[i],
                 keep[i]);
    if (rc == 0 && (rc = make_masks(r, keep, masks, em)) == 0)
        rc = surg_prune(r->in, r->gr, (const unsigned char *const *)masks, out, em);
    if (masks)
        free_masks(r, masks);
    free(masks);
    free(ch);
    free(fl);
    free(keep);
    return rc;
}

int cmp_stage_prune(struct cmp_ctx *c, const struct nn_model *in, struct cmp_budget target,
                    struct nn_model **out, struct err_msg *em)
{
    struct prune_run r = {.c = c, .in = in, .budget = target};
    int rc = setup(&r, em);
    if (rc == 0)
        rc = c->o->prune == COMPRESS_PRUNE_NB ? score_nb(&r, em) : score_baseline(&r, em);
    if (rc == 0)
        rc = sensitivity(&r, em);
    if (rc == 0)
        rc = allocate_and_cut(&r, out, em);
    run_free(&r);
    return rc;
}
