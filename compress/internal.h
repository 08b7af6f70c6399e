/* internal.h — what the pipeline's files (compress.c, measure.c, stage_prune.c,
 * stage_tucker.c, report.c) share; only compress/ and its tests include it. */
#ifndef ACTIOND_COMPRESS_INTERNAL_H
#define ACTIOND_COMPRESS_INTERNAL_H

#include "compress/compress.h"
#include "fit/fit.h"

/* Cost and speed of a model, in total and per node, as deployed (BatchNorms folded). */
struct cmp_measure {
    int64_t params, flops;
    double ms;                  /* median of the runs, one clip (K segments), one thread */
    int n;                      /* nodes */
    struct nn_layer_info *info; /* [n], of the folded copy */
    struct nn_model *folded;    /* the copy measured; info's names point into it */
    double *node_ms;            /* [n] medians */
};
int cmp_measure(const struct nn_model *m, int runs, struct cmp_measure *out, struct err_msg *em);
/* Several models timed interleaved, run by run (the input beside the output: a machine busy
 * now and then slows both alike, so their ratio holds). */
#define CMP_MEASURE_MAX 4
int cmp_measure_many(const struct nn_model *const *m, int n, int runs, struct cmp_measure *out,
                     struct err_msg *em);
void cmp_measure_free(struct cmp_measure *me);
/* The index of the node called name in a measured model, or -1. */
int cmp_find_node(const struct cmp_measure *me, const char *name);
/* The median of v[n] (n >= 1; the mean of the middle two when n is even); sorts v. */
double cmp_median(double *v, int n);
/* Total FLOPs (flops 1) or parameters (flops 0) of a model, without timing it. */
int64_t cmp_cost(const struct nn_model *m, int flops);

/* A budget in absolute counts, and the latency as a fraction of the input's (the
 * decomposition stage's only: lat_table.c); a limit of 0 is no limit. */
struct cmp_budget {
    double flops, params, latency;
};
/* The budget for model m: its cost times each target of o raised to power (1: the whole
 * budget; prune_share: the pruning stage's part, which has no latency limit). */
struct cmp_budget cmp_budget_of(const struct nn_model *m, const struct compress_opts *o,
                                double power);
/* How full a cost leaves the budget: the larger of cost / limit over the limits set; within
 * the budget when <= 1. */
double cmp_budget_ratio(struct cmp_budget b, int64_t flops, int64_t params);

/* The nodes a decomposition adds before the layer's own, named NAME + part (surg_decompose):
 * a Gemm's first SVD factor, U_in, or the core when a square factor was folded into it. */
#define CMP_LAYER_PARTS 3
extern const char *const cmp_layer_parts[CMP_LAYER_PARTS];

/* A decomposed layer, as the Tucker stage chose it. */
struct cmp_rank {
    char name[NN_NAME_MAX];
    int rin, rout;  /* Gemm: rin = r, rout = 0 */
    double rel_err;
};

struct cmp_ctx;
typedef int (*cmp_latency_fn)(const struct cmp_ctx *c, const struct nn_model *m, double *ratio,
                              struct err_msg *em);

/* What the stages share: options, clips, the reference model, results for the report. */
struct cmp_ctx {
    const struct compress_opts *o;
    const struct nn_model *input;
    struct fit_clips *val;   /* validation clips; NULL without a data set */
    struct fit_clips *calib; /* calibration clips (nb pruning, adaptive BN) */
    bool bn_off;             /* too few calibration clips for adaptive BN */
    struct compress_report *rep;
    struct cmp_rank *ranks;  /* the Tucker stage's layers */
    int n_ranks;
    double val_base[3];      /* the input's validation top-1: fused, RGB, motion (< 0: none) */
    /* How the decomposition stage measures a built model's one-thread latency as a fraction
     * of the input's; NULL: cmp_latency_ratio. Tests give it a machine whose table errs. */
    cmp_latency_fn latency_ratio;
};

/* m's one-thread latency over the input's, the two timed interleaved (o->latency_runs runs)
 * and the ratio of their medians, as the report's ms_output / ms_input is taken. */
int cmp_latency_ratio(const struct cmp_ctx *c, const struct nn_model *m, double *ratio,
                      struct err_msg *em);

/* The decomposition stage's latency table (lat_table.c): per layer, its one-thread time at
 * a grid of ranks, measured with the layer decomposed, as a fraction of the input model's
 * time in the same runs; a genome's latency is rest + each layer's time at its ranks. */
#define CMP_LAT_GRID 6
struct cmp_lat_layer {
    int na, nb;                 /* grid points of R_in (or r) and R_out (1 for a Gemm) */
    int va[CMP_LAT_GRID], vb[CMP_LAT_GRID];
    double t[CMP_LAT_GRID][CMP_LAT_GRID];
    double kept;                /* the layer as it is in the stage's input */
};
struct cmp_lat_table {
    int n;
    struct cmp_lat_layer *l;
    double rest;                /* every other node's (the median over the runs) */
};
struct surg_convs;
typedef int (*cmp_build_fn)(void *ud, const int *genome, struct nn_model **out,
                            struct err_msg *em);
/* Measures the table for the layers cs of model in, whose genes are bounded by hi[2n]:
 * CMP_LAT_GRID^2 models that build() makes from grid genomes, each timed beside in and the
 * original input (o->latency_runs runs); `kept` and `rest` are medians over those timings. */
int cmp_lat_table_new(const struct cmp_ctx *c, const struct nn_model *in,
                      const struct surg_convs *cs, const int *hi, cmp_build_fn build, void *ud,
                      struct cmp_lat_table *t, struct err_msg *em);
void cmp_lat_table_free(struct cmp_lat_table *t);
/* Layer l's time at ranks (a, b), bilinear between the grid points: exact for a cost
 * c0 + c1 a + c2 b + c3 a b, the form of the three factor passes'. */
double cmp_lat_layer_at(const struct cmp_lat_layer *l, int a, int b);

/* The report's per-layer table: every Conv and Gemm of the input beside what became of it
 * in the final model. */
int cmp_report_layers(struct cmp_ctx *c, const struct nn_model *final, struct err_msg *em);

#define COMPRESS_BN_BATCH 8 /* clips per batch of fit_clips_observe_bn */

/* Adaptive BN (--bn-batches): m's BN statistics from the calibration clips, as its cut
 * filters now make them; nothing without calibration clips or with 0 batches. Every cut
 * model is measured after it, so candidates are compared as fine-tuning will find them. */
int cmp_observe_bn(const struct cmp_ctx *c, struct nn_model *m, struct err_msg *em);

/* Validation top-1 (fused) of m on ctx->val; -1 without clips. */
int cmp_val_top1(const struct cmp_ctx *c, const struct nn_model *m, double *top1,
                 struct err_msg *em);

/* What the stages judge a cut by: the share of the input's validation top-1 that m keeps,
 * averaged over its fused output and each stream (a two-stream model's fused top-1 barely
 * moves when one stream is cut to nothing, and a stream lost is not regained by fine-tuning);
 * the fused share alone for a model with one output. -1 without clips. */
int cmp_val_score(const struct cmp_ctx *c, const struct nn_model *m, double *score,
                  struct err_msg *em);
/* Both of the above from one pass over the validation clips. */
int cmp_val_measure(const struct cmp_ctx *c, const struct nn_model *m, double *top1,
                    double *score, struct err_msg *em);

/* Fine-tunes m in place on the data set's training part (fit_train, distilled with
 * --distill) with stage `which`'s epochs and learning rate; its checkpoint and JSON log go to
 * the work folder under `stage`'s name. */
int cmp_finetune(const struct cmp_ctx *c, struct nn_model *m, enum compress_stage which,
                 const char *stage, struct err_msg *em);

/* m on the data set's test list (fit_eval); the caller frees r. */
int cmp_test_eval(const struct cmp_ctx *c, const struct nn_model *m, struct fit_eval_result *r,
                  struct err_msg *em);

/* Spearman's rank correlation of x and y (ties ranked by their mean position); NAN for
 * n < 3 or when either is constant. */
double cmp_spearman(const double *x, const double *y, int n);

/* The largest scale top * k / steps (k = steps .. 1) that fits(ud, scale) accepts, 0 when
 * none does. A scan from the top, not a bisection: a rank scale's cost is not monotonic (a
 * layer at full ranks is kept whole and can be faster than at ranks just below it; a
 * measured latency table has bumps), and a bisection that met a bump settled far below the
 * budget. */
double cmp_scale_scan(double top, int steps, int (*fits)(void *ud, double s), void *ud);

/* Stage 1: a new model with channels pruned so that its cost is within `target`. */
int cmp_stage_prune(struct cmp_ctx *c, const struct nn_model *in, struct cmp_budget target,
                    struct nn_model **out, struct err_msg *em);
/* Stage 2: a new model with convolutions as TuckerConv and Gemms as SVD pairs, within
 * target; fills the report's ranks and errors. */
int cmp_stage_tucker(struct cmp_ctx *c, const struct nn_model *in, struct cmp_budget target,
                     struct nn_model **out, struct err_msg *em);

#endif
