/* fit_int.h — what fit.c, fit_clips.c and fusion.c share; only fit/ (and its unit tests)
 * include it. */
#ifndef ACTIOND_FIT_FIT_INT_H
#define ACTIOND_FIT_FIT_INT_H

#include "fit/fit.h"
#include "video/video.h"

/* Loader options for evaluating a model: its size, fps, mean/std, K, L and motion kind,
 * centred snippets without augmentation. */
int fit_loader_opts(const struct nn_meta *mt, int threads, const char *cache,
                    struct video_loader_opts *lo, struct err_msg *em);
/* The data set's classes are the model's, in the same order. */
int fit_check_classes(const struct nn_meta *mt, const struct video_dataset *ds, struct err_msg *em);

/* Validation clips for choosing the late fusion: each stream's per-segment logits. */
struct fit_fusion_set {
    int n, k, c;          /* clips, segments, classes */
    const float *zr, *zm; /* [n][k][c] logits of the RGB and the motion stream */
    const int *labels;    /* [n] */
};
struct fit_fusion_pick {
    double acc, nll; /* on the set */
    double w[2];     /* the weights for nn_model_set_fusion */
};
/* A clip's fused scores as a model whose fusion is of `kind` computes them with weights w:
 * softmax of the mean over its k segments of w0 zr + w1 zm (NN_FUSION_CLIP_LOGITS), the
 * mean of softmax(w0 zr + w1 zm) (NN_FUSION_LOGITS) or of w0 softmax(zr) + w1 softmax(zm)
 * (NN_FUSION_PROBS). */
void fit_fusion_scores(enum nn_fusion_kind kind, const float *zr, const float *zm, int k, int c,
                       const double w[2], double *out);
/* The fusion weights for v: w_rgb in steps of 0.05 with w_motion = 1 - w_rgb, in log space
 * (both logit kinds) both times a temperature and the candidate of lowest NLL (ties: better
 * top-1); for NN_FUSION_PROBS the best top-1 (ties: lower NLL). */
void fit_fusion_choose(enum nn_fusion_kind kind, const struct fit_fusion_set *v,
                       struct fit_fusion_pick *best);
/* Distillation of the fused output: a two-stream model's fused scores of each of `clips` clips
 * from its per-segment probabilities pr and pm ([clips][k][c] each, its "rgb/prob" and
 * "motion/prob"), as its graph computes "scores" for one clip — that output averages over the
 * whole batch it runs. Its logits are not outputs, but log-probabilities differ from them by a
 * constant per row, which no fusion kind sees: a softmax ignores it, and averaged over the
 * segments it stays one constant a clip. logp: 2 * k * c floats; out: [clips][c]. */
void fit_teacher_scores(enum nn_fusion_kind kind, const double w[2], const float *pr,
                        const float *pm, int clips, int k, int c, float *logp, float *out);

#endif
