/* compress.h — the public door of compress/: naive-Bayes channel pruning, Tucker-2 with
 * ranks from a genetic search, fine-tuning, the baselines, and the report (docs/compression.md). */
#ifndef ACTIOND_COMPRESS_COMPRESS_H
#define ACTIOND_COMPRESS_COMPRESS_H

#include "common/common.h"
#include "nn/nn.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define COMPRESS_PRUNE_MAP(X) X(NB, "nb") X(L1, "l1") X(BN, "bn") X(RANDOM, "random") X(NONE, "none")
#define COMPRESS_RANKS_MAP(X) X(GA, "ga") X(VBMF, "vbmf") X(UNIFORM, "uniform") X(NONE, "none")

enum compress_prune {
#define COMPRESS_ENUM_(n, s) COMPRESS_PRUNE_##n,
    COMPRESS_PRUNE_MAP(COMPRESS_ENUM_)
#undef COMPRESS_ENUM_
    COMPRESS_PRUNE_COUNT
};
enum compress_ranks {
#define COMPRESS_ENUM_(n, s) COMPRESS_RANKS_##n,
    COMPRESS_RANKS_MAP(COMPRESS_ENUM_)
#undef COMPRESS_ENUM_
    COMPRESS_RANKS_COUNT
};
const char *compress_prune_name(enum compress_prune p);
const char *compress_ranks_name(enum compress_ranks r);
/* The _COUNT value when the name is unknown. */
enum compress_prune compress_prune_from_name(const char *s);
enum compress_ranks compress_ranks_from_name(const char *s);

/* The two stages, each fine-tuned with its own epochs and learning rate: they hand over
 * different models (whole filters kept, or thin factors of them), which need not recover
 * alike. */
enum compress_stage { COMPRESS_STAGE_PRUNE, COMPRESS_STAGE_DECOMPOSE, COMPRESS_STAGES };

struct compress_opts {
    const char *dataset;     /* a data-set folder; NULL runs data-free (l1/bn/random pruning,
                              * vbmf/uniform ranks, no fine-tuning) */
    const char *cache;       /* decoded-clip cache (default DATASET/.actiond-cache) */
    const char *work;        /* checkpoints and logs of the fine-tuning (default OUT.work) */
    enum compress_prune prune;
    enum compress_ranks ranks;
    double target_flops;     /* the budget: the compressed model's FLOPs and parameters as */
    double target_params;    /* fractions of the input's, (0, 1]; 0 = no limit (not both) */
    double target_latency;   /* the one-thread latency as a fraction of the input's, (0, 1];
                              * 0 = no limit. The decomposition stage meets it, predicted
                              * from a table it measures (needs --ranks other than none) */
    double prune_share;      /* with both stages: pruning takes the cost to target^prune_share */
    double floor;            /* never keep fewer than this fraction of a layer's channels */
    int calib_clips;         /* calibration clips (from the training part) */
    int bn_batches;          /* adaptive BN after every cut, candidates included: batches of 8
                              * calibration clips whose statistics replace the BNs'; 0 = off */
    int val_clips;           /* validation clips for the sensitivity pass and the GA (0 = all) */
    double val_split;        /* of the training list, as `train` holds it out */
    int finetune_epochs[COMPRESS_STAGES]; /* after each stage (enum compress_stage); 0 = none */
    float finetune_lr[COMPRESS_STAGES];   /* the peak of each stage's schedule */
    int batch;               /* clips per fine-tuning step */
    bool distill;            /* fine-tune towards the input model's outputs as well */
    float distill_weight;    /* the share of the input's targets, (0, 1] */
    float distill_temp;      /* their temperature, [1, NN_MAX_TEMPERATURE] */
    float distill_fused;     /* weight of a term on the fused scores against the input's,
                              * [0, 1] (fit_train_opts.distill_fused); 0 = off */
    bool distill_fused_input; /* that term weighs the streams with the input's fusion weights,
                               * not the model's own (fit_train_opts.distill_fused_teacher) */
    int population, generations; /* the GA's */
    int ga_check;            /* after the GA: fine-tune this many of the genomes it evaluated
                              * within the budget (spread from its best fitness to its worst)
                              * as the stage would, and report how the fitness ranks them
                              * against their fine-tuned scores; 0 = off */
    int hooi_iters;
    uint64_t seed;
    int threads;
    int latency_runs;        /* timed runs per model for the report (median) */
    bool progress;           /* redraw a progress line on a terminal */
};

/* nb + ga, FLOPs to 0.2 (parameters unlimited), prune share 0.5, floor 0.25, 200 calibration
 * clips, adaptive BN on 4 batches of them, all validation clips, val split 0.1, 12 fine-tuning
 * epochs a stage at lr 0.005 in batches of 8 (the settings bench/compress.sh measures),
 * distillation (when asked for) at weight 0.5 and temperature 1,
 * population 16 over 10 generations, 5 HOOI rounds, seed 1, 2 threads, 20 latency runs. */
void compress_opts_default(struct compress_opts *o);
/* Ranges and combinations (nb and ga need a data set); ERR_RANGE / ERR_INVAL naming the flag. */
int compress_opts_check(const struct compress_opts *o, struct err_msg *em);

/* One convolution or fully connected layer before and after. */
struct compress_layer {
    char name[NN_NAME_MAX];
    enum nn_op op_before, op_after;
    int cin, cout, cin_after, cout_after; /* channels (Gemm: features) */
    int rin, rout;                        /* Tucker ranks (Gemm SVD: rin); 0 when not decomposed */
    double rel_err;                       /* ||W - W^|| / ||W|| of the decomposition */
    int64_t params_before, params_after, flops_before, flops_after;
    double ms_before, ms_after;           /* median time of the node, one thread */
};

/* A model at one point of the pipeline. */
struct compress_point {
    char stage[24];   /* "input", "pruned", "pruned+ft", "decomposed", "decomposed+ft" */
    int64_t params, flops;
    double ms;        /* median latency of one clip (K segments), one thread, BN folded */
    double val_top1;  /* on the validation clips; < 0 when there is no data set */
    double test_top1, test_top1_rgb, test_top1_motion; /* on the test list; < 0 without */
    char *test_right; /* per test clip in list order '1' right, '0' wrong, '-' unread (fused);
                       * NULL without a data set. Owned by the report. */
    double seconds;   /* the stage's wall time */
};

#define COMPRESS_MAX_POINTS 8

/* One genome of the GA fine-tuned to check its fitness (--ga-check). */
struct compress_check {
    double fitness, score;   /* the GA's, before fine-tuning */
    double cost;             /* against the budget (<= 1) */
    double score_ft;         /* the validation score after fine-tuning */
    double val_top1_ft, test_top1_ft; /* fused, after; test < 0 without a test list */
};

#define COMPRESS_MAX_CHECKS 32

struct compress_report {
    char prune[16], ranks[16];
    double target_flops, target_params, target_latency; /* 0 = no limit */
    double latency_predicted; /* the kept genome's, from the latency table (0: no table) */
    /* The decomposition stage's check of its choice in measured time (with a latency limit;
     * else all 0): the first choice's predicted and measured latency (fractions of the input's
     * time, timed beside it as ms_output / ms_input is); when the measured one was over the
     * limit, the table limit the ranks were chosen again with (limit * predicted / measured)
     * and that choice's measured latency (0 when the first choice was within). */
    double latency_first_predicted, latency_first_measured;
    double latency_retarget, latency_retarget_measured;
    int n_layers;
    struct compress_layer *layers;
    int n_points;
    struct compress_point points[COMPRESS_MAX_POINTS];
    int ga_evaluations, ga_cache_hits;
    double ga_fitness;       /* --ranks ga: the fitness of the genome kept */
    int n_checks;            /* --ga-check: best fitness first */
    struct compress_check checks[COMPRESS_MAX_CHECKS];
    double check_rank_corr;  /* Spearman's rho of fitness against score_ft; NAN below 3 */
    double ms_input, ms_output; /* one-thread latency of a clip, the two timed interleaved */
    double seconds;
};
void compress_report_free(struct compress_report *r);
/* The report as JSON (atomically) and as a table (per layer, then the points). */
int compress_report_write_json(const struct compress_report *r, const char *path,
                               struct err_msg *em);
void compress_report_print(const struct compress_report *r, FILE *f);

/* Compresses `in` (not BN-folded; unchanged) into a new model *out. *report (may be NULL) gets
 * the report, which the caller frees. */
int compress_run(const struct nn_model *in, const struct compress_opts *o, struct nn_model **out,
                 struct compress_report **report, struct err_msg *em);

#endif
