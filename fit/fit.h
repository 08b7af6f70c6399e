/* fit.h — the public door of fit/: training a two-stream model on a data-set folder and
 * evaluating one, with video/'s loader feeding nn/'s trainer and plans. */
#ifndef ACTIOND_FIT_FIT_H
#define ACTIOND_FIT_FIT_H

#include "common/common.h"
#include "nn/nn.h"

#include <stdbool.h>

#define FIT_MAX_EPOCHS 10000
#define FIT_STREAM_RGB 1
#define FIT_STREAM_MOTION 2

struct fit_train_opts {
    const char *dataset;   /* folder with classInd/trainlist/testlist */
    const char *out;       /* the model file to write */
    const char *resume;    /* a checkpoint to continue from, or NULL */
    const char *checkpoint; /* where checkpoints go (default OUT.ckpt) */
    const char *log;       /* JSON lines, one per epoch (default OUT.train.jsonl) */
    const char *cache;     /* decoded-clip cache folder (default DATASET/.actiond-cache) */
    const char *arch;      /* "vgg-small" or "resnet18" */
    float width;           /* channel multiplier */
    int size;              /* input side in pixels */
    enum nn_motion motion; /* mv, flow or diff */
    int motion_len;        /* L */
    int segments;          /* K */
    float fps;             /* samples per second */
    int epochs, batch;     /* batch: clips per step */
    float lr, weight_decay, label_smoothing;
    float dropout;         /* before each stream's classifier, when the model is built */
    double val_split;
    uint64_t seed;
    int threads;           /* trainer threads */
    int loader_threads;
    int streams;           /* FIT_STREAM_* bits: which stream's loss trains */
    int stop_after;        /* end this run after so many epochs (checkpoint kept); 0 = never */
    bool progress_bar;     /* redraw one line on a terminal; else a log line now and then */
    struct nn_model *model; /* fine-tuning: train this model in place instead of building
                             * `arch` (size, motion, segments and fps must match its metadata);
                             * not freed; written to `out` only when out is not NULL, in which
                             * case checkpoint and log must be given */
    const struct nn_model *teacher; /* distillation: each stream's loss also pulls towards
                                     * this model's probabilities on the same batch (same
                                     * inputs and classes); NULL = off */
    float distill;         /* the weight of the teacher's targets per stream, [0, 1] */
    float distill_temp;    /* their temperature, [1, NN_MAX_TEMPERATURE] (nn.h) */
    float distill_fused;   /* the weight of a term pulling the model's fused scores towards
                            * the teacher's (nn_trainer_set_fused_target), [0, 1]; needs both
                            * streams and a model that fuses clip logits; 0 = off. It or
                            * distill must be above 0 with a teacher. */
    bool distill_fused_teacher; /* the fused term combines the model's streams with the
                                 * teacher's fusion weights, fixed for the run, instead of the
                                 * model's own as chosen after each epoch; needs a teacher
                                 * that fuses clip logits */
};

/* vgg-small width 0.5 at 112x112, mv, L 3, K 3, 10 fps, 30 epochs of 8 clips, lr 0.02,
 * wd 5e-4, dropout 0.5, 10 % validation, seed 1, 2 threads, both streams; distillation
 * (when a teacher is given) at temperature 1. */
void fit_train_opts_default(struct fit_train_opts *o);

/* Trains, writes the model (fusion weights chosen on the validation split) and returns 0,
 * or a negative code with em set. With a model to fine-tune, 0 epochs only chooses its
 * fusion weights again. A data set with no readable clip is an error; a bad clip is skipped
 * with a warning. */
int fit_train(const struct fit_train_opts *o, struct err_msg *em);

/* Evaluation of a model on clips of a data set. */
struct fit_eval_opts {
    const char *dataset;
    const char *split;   /* "test" (default), "train" or "all" */
    const char *cache;
    int threads, loader_threads;
};

struct fit_eval_result {
    int clips, n_classes;
    double top1, top5;            /* fused, the model's first output */
    double top1_rgb, top1_motion; /* each stream alone; < 0 when the model has no such output */
    double *per_class;            /* [n_classes] fused top-1 per class */
    double *per_class_rgb;        /* [n_classes] each stream alone per class; NULL when the */
    double *per_class_motion;     /* model has no such output */
    int *confusion;               /* [n_classes][n_classes]: rows true, columns predicted */
    int n_listed;                 /* the clips the list (or the fit_clips) holds */
    signed char *right;           /* [n_listed] in list order: 1 when the fused prediction was
                                   * right, 0 wrong, -1 not evaluated (unreadable); lets two
                                   * models be compared clip by clip */
    char (*classes)[NN_CLASS_NAME_MAX];
};

int fit_eval(const struct nn_model *m, const struct fit_eval_opts *o, struct fit_eval_result *r,
             struct err_msg *em);
void fit_eval_result_free(struct fit_eval_result *r);
/* r->right as text, one character per listed clip ('1' right, '0' wrong, '-' not
 * evaluated), for a paired comparison of two models on one list; malloc'd, NULL when out of
 * memory. */
char *fit_eval_right_string(const struct fit_eval_result *r);

/* ---- clips held in memory: calibration and repeated evaluation (compress/) ---- */

enum fit_part { FIT_PART_ALL, FIT_PART_TRAIN, FIT_PART_VAL };

struct fit_clips_opts {
    const char *dataset;
    const char *split;   /* "train" (default), "test" or "all" */
    enum fit_part part;  /* of the split, divided as fit_train divides it (val_split, seed) */
    double val_split;
    uint64_t seed;
    int max_clips;       /* 0 = all; else this many, spread evenly over the part */
    const char *cache;
    int loader_threads;
};

/* Clips decoded for a model's input contract, without augmentation (centred snippets). */
struct fit_clips {
    int n, segments, length, width, height, n_classes;
    float *rgb;    /* [n * K][3][H][W], normalised */
    float *motion; /* [n * K][2L][H][W], as the loader makes them (before motion_scale) */
    int *labels;   /* [n] */
};

/* Loads the clips for model metadata mt (its size, fps, motion, K, L, mean/std, classes). */
int fit_clips_load(const struct nn_meta *mt, const struct fit_clips_opts *o,
                   struct fit_clips **out, struct err_msg *em);
void fit_clips_free(struct fit_clips *c);
/* fit_eval on clips in memory (single-threaded: call it from several threads at once with
 * different models to spread evaluations). */
int fit_clips_eval(const struct nn_model *m, const struct fit_clips *c, struct fit_eval_result *r,
                   struct err_msg *em);
/* The spatially pooled activation of each named value, averaged over the K segments of a
 * clip: acts[v] (malloc'd, [c->n][channels[v]]). Runs the trainer's inference-mode forward,
 * so the model must not be BN-folded. */
int fit_clips_activations(struct nn_model *m, const struct fit_clips *c, const char *const *values,
                          int n_values, float **acts, int *channels, struct err_msg *em);
/* Adaptive BN (nn_trainer_observe_bn): every BN's running statistics become the mean of its
 * batch statistics over `batches` batches of 8 clips of c, spread over the set (fewer when
 * c holds fewer); nothing else of m changes. ERR_RANGE with fewer than 8 clips. */
int fit_clips_observe_bn(struct nn_model *m, const struct fit_clips *c, int batches,
                         struct err_msg *em);

#endif
