/* grad.h — nn/'s training kernels: the forward passes that keep what backward needs, and
 * the backward of every op. Like ops.h: kernels never allocate. Internal to nn/.
 *
 * Gradients of activations are written or accumulated: `acc` 0 overwrites dx (whatever it
 * held), 1 adds to it, so a value read by several nodes sums their contributions.
 * Gradients of parameters (dw, db, dgamma, ...) always accumulate; the trainer zeroes
 * them once per step. */
#ifndef ACTIOND_NN_GRAD_H
#define ACTIOND_NN_GRAD_H

#include "nn/ops.h"

#include <stdint.h>

/* ---- convolutions (grad_conv.c) ---- */

/* Which passes of this conv take Winograd F(4x4,3x3): 1 the forward, 2 dX (a bit mask). */
int nn_conv_train_winograd(const struct nn_conv_geom *g);
/* Floats of scratch one thread needs to run nn_conv_train_forward or nn_conv_backward on
 * any number of images of this geometry. */
size_t nn_conv_train_scratch(const struct nn_conv_geom *g);
/* Floats of the transformed weights the Winograd passes take (0: none applies). They are
 * made once per pass and shared by the threads: prep_forward for the forward, prep_dx
 * for dX (the flipped weights, transformed). */
size_t nn_conv_train_wino_floats(const struct nn_conv_geom *g);
void nn_conv_train_prep_forward(const struct nn_conv_geom *g, const float *w, float *u);
void nn_conv_train_prep_dx(const struct nn_conv_geom *g, const float *w, float *u);
/* The training forward: Winograd with u from prep_forward, else (u NULL) nn_conv_fast. */
void nn_conv_train_forward(const struct nn_conv_geom *g, const float *x, const float *w,
                           const float *u, const float *b, float *y, float *scratch);
/* Backward of y = conv(x, w) + b over g->n images (g->act must be NONE): dw += dy (*) x,
 * db += sum dy (db may be NULL), dx = W^T dy through col2im, or by Winograd with u_dx from
 * prep_dx (used only when dx is overwritten, acc 0); dx NULL: not needed. */
void nn_conv_backward(const struct nn_conv_geom *g, const float *x, const float *w,
                      const float *u_dx, const float *dy, float *dx, int acc, float *dw,
                      float *db, float *col);

/* A Tucker-2 layer (struct nn_tucker_geom, ops.h) over the whole batch. */
/* Floats of scratch for nn_tucker_forward and nn_tucker_backward. */
size_t nn_tucker_scratch(const struct nn_tucker_geom *t);
/* Keeps the two intermediate maps (mid1 [N,Rin,H,W], mid2 [N,Rout,Ho,Wo]) for backward. */
void nn_tucker_forward(const struct nn_tucker_geom *t, const float *x, const float *const *p,
                       float *mid1, float *mid2, float *y, float *scratch);
/* p: U_in, core, U_out, bias (or NULL); dp: their gradients (dp[3] NULL without bias). */
void nn_tucker_backward(const struct nn_tucker_geom *t, const float *x, const float *const *p,
                        const float *mid1, const float *mid2, const float *dy, float *dx,
                        int acc, float *const *dp, float *scratch);

/* ---- everything else (grad_misc.c) ---- */

/* Sum of n floats with about float precision relative to the sum of magnitudes, however
 * large n: float lanes over short blocks (vectorised), the blocks added in double. */
double nn_sum_floats(const float *p, size_t n);

/* BatchNorm in training mode over [n, c, inner], channels [c0, c1) (threads split the
 * channels): per channel the batch mean and biased variance over n * inner values,
 * y = (x - mean) / sqrt(var + eps) * gamma + beta. */
void nn_bn_train_forward(int n, int c, int inner, int c0, int c1, const float *x,
                         const float *gamma, const float *beta, float eps, float *y, float *mean,
                         float *var, float *invstd);
/* running = (1 - m) * running + m * batch, with the unbiased variance var * M / (M - 1)
 * (M = count, the values per channel), as PyTorch does. */
void nn_bn_update_running(int c, int64_t count, const float *mean, const float *var,
                          float momentum, float *run_mean, float *run_var);
/* Channels [c0, c1); with xhat = (x - mean) * invstd and M = n * inner (Ioffe & Szegedy
 * 2015):
 * dbeta = sum dy, dgamma = sum dy * xhat,
 * dx = gamma * invstd / M * (M * dy - dbeta - xhat * dgamma). */
void nn_bn_backward(int n, int c, int inner, int c0, int c1, const float *x,
                    const float *gamma, const float *mean, const float *invstd, const float *dy,
                    float *dx, int acc, float *dgamma, float *dbeta);

/* ReLU, ReLU6, LeakyReLU from their input x: the slope where x lies (0 at the kinks). */
void nn_act_backward(enum nn_act act, float alpha, const float *x, const float *dy, float *dx,
                     size_t len, int acc);

/* Max pooling routes each output's gradient to the first maximum of its window (the one
 * nn_maxpool_ref picks), found again from x. */
void nn_maxpool_backward(const struct nn_pool_geom *g, const float *x, const float *dy,
                         float *dx, int acc);
/* Average pooling spreads dy / divisor over the window, with nn_avgpool's divisor. */
void nn_avgpool_backward(const struct nn_pool_geom *g, const float *dy, float *dx, int acc);
void nn_global_avgpool_backward(int n, int c, int hw, const float *dy, float *dx, int acc);

/* dx = scale * dy: Add, WeightedSum, Flatten, Reshape. */
void nn_grad_scaled(const float *dy, float scale, float *dx, size_t len, int acc);
/* dx = dy * m elementwise: Dropout (m its mask). */
void nn_grad_mul(const float *dy, const float *m, float *dx, size_t len, int acc);
/* Input j's slice of a concatenation's gradient ([outer, lens..., inner] as nn_concat). */
void nn_concat_backward(int k, const int *lens, int outer, int inner, int j, const float *dy,
                        float *dx, int acc);
/* y[n,out] = x[n,in] w[out,in]^T + b: dw += dy^T x, db += sum_n dy, dx = dy w. */
void nn_gemm_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                      float *dx, int acc, float *dw, float *db);
/* Softmax along the middle of [outer, axis, inner]: dx = y * (dy - sum_axis(dy * y)). */
void nn_softmax_backward(int outer, int axis, int inner, const float *y, const float *dy,
                         float *dx, int acc);
/* BatchMean: every row of dx gets dy / n. */
void nn_batchmean_backward(int n, size_t len, const float *dy, float *dx, int acc);

/* Inverted dropout: element i of node `node` at step `step` is kept with probability
 * 1 - ratio and scaled by 1 / (1 - ratio); a pure function of its arguments, so masks need
 * no saved RNG state and replay exactly. Returns 0 or the scale. */
float nn_dropout_scale(uint64_t seed, int64_t step, int node, size_t i, float ratio);
void nn_dropout_mask(uint64_t seed, int64_t step, int node, float ratio, float *mask,
                     size_t len);

/* ---- the loss (loss.c) ---- */

struct nn_ce_result {
    double loss;  /* mean over clips */
    int correct;  /* clips whose consensus argmax is the label */
};
/* Soft targets mixed into a loss (distillation): soft[clips][classes], each row a
 * distribution, with weight w in [0, 1] at temperature t >= 1; w 0 (or soft NULL) is plain
 * cross-entropy. */
struct nn_soft_target {
    const float *soft;
    float w, t;
};

/* Softmax cross-entropy on logits [clips * segments, classes]: the segments of a clip
 * are averaged first (TSN consensus), zbar = mean_s z_s, then with the smoothed one-hot
 * h = (1 - eps) * onehot(label) + eps / classes (st NULL: w = 0)
 *   loss = -(1 - w) sum_c h_c log softmax(zbar)_c + w t^2 sum_c s_c log(s_c / softmax(zbar / t)_c),
 * s the soft row at temperature t: s_c = soft_c^(1/t) / sum_j soft_j^(1/t) — soft_c taken
 * as a softmax of the teacher's logits, s is the softmax of those logits / t (Hinton et al.
 * 2015; t^2 keeps the soft term's gradient the size of the hard one's). The soft term is a
 * divergence, 0 when the student matches, not a cross-entropy: the same gradient, and a loss
 * that reads like the hard one's (the cross-entropy would add t^2 times s's entropy, ~37 at
 * t = 4 on two streams of ten classes).
 * dlogits (when not NULL) gets d(mean loss)/dz = ((1 - w) (softmax(zbar) - h) +
 * w t (softmax(zbar / t) - s)) / (clips * segments) in every row. work: 4 * classes doubles.
 * Labels must be in range (the caller checks). */
struct nn_ce_result nn_softmax_ce(int clips, int segments, int classes, const float *logits,
                                  const int *labels, float eps, const struct nn_soft_target *st,
                                  float *dlogits, double *work);

/* Distillation of the fused output: soft[clips][classes] (e.g. a teacher's fused scores) with
 * weight w at temperature t, against the fusion of two streams' logits as a model of
 * NN_FUSION_CLIP_LOGITS computes it, zf = fusion[0] zbar_a + fusion[1] zbar_b (each zbar the
 * mean of a clip's segment rows of that stream):
 *   loss = w t^2 sum_c s_c log(s_c / softmax(zf / t)_c),  s tempered as in nn_softmax_ce.
 * The per-stream losses see each stream alone; this term sees what the model outputs. */
struct nn_fused_target {
    const float *soft;
    float w, t;
    float fusion[2];
};
/* The fused term's mean over clips; when da and db are not NULL it *adds*
 * d(mean loss)/dz = fusion[i] w t (softmax(zf / t) - s) / (clips * segments) to every row
 * of the matching stream's gradient. work: 4 * classes doubles. */
double nn_fused_kl(int clips, int segments, int classes, const float *za, const float *zb,
                   const struct nn_fused_target *ft, float *da, float *db, double *work);

#endif
