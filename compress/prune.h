/* prune.h — channel-importance scores (naive-Bayes, L1, BN-γ, random) and the global
 * allocation of kept channels per layer under a cost budget. Internal to compress/. */
#ifndef ACTIOND_COMPRESS_PRUNE_H
#define ACTIOND_COMPRESS_PRUNE_H

#include "common/err.h"

#include <stdint.h>

/* Widest channel group accepted: 16x the widest convolutions in common CNNs (4096). */
#define PRUNE_MAX_CHANNELS 65536
/* Most channel groups in one allocation: far beyond any network's prunable convolutions. */
#define PRUNE_MAX_LAYERS 4096
/* Most channels over all groups of one allocation; bounds its scratch to about 100 MB. */
#define PRUNE_MAX_TOTAL (1 << 22)
/* Most classes of a calibration set (the Gaussian table is classes x 5 doubles per channel). */
#define PRUNE_MAX_CLASSES 1024
/* The MI factor of the naive-Bayes score adds this fraction of the layer's mean MI to every
 * channel, so a channel with no marginal label information keeps about 9 % of an average
 * channel's MI factor instead of 0 (see docs/compression.md, "Channel importance"). */
#define PRUNE_NB_MI_OFFSET 0.1
/* Each class variance is at least this fraction of the channel's variance over all clips. */
#define PRUNE_NB_VAR_FLOOR 1e-6

/* Naive-Bayes importance of ch channels from acts[n][ch] (acts[i * ch + c]: clip i's spatially
 * pooled activation of channel c) with labels[n] in [0, classes). Per channel and class a
 * Gaussian (mean, unbiased variance floored at PRUNE_NB_VAR_FLOOR x the channel's variance),
 * priors from class frequencies. mi[c] (may be NULL) receives the mutual information between
 * channel and label under that model, estimated on the calibration clips and clipped to
 * [0, log classes]. score[c] = MI factor x RMS factor x consumer-weight factor, each relative to
 * its mean over the layer (the formula is in docs/compression.md); consumer_w[c] (may be NULL =
 * all 1) is the L2 norm of the consumer weights reading channel c. A channel whose activation
 * is the same on every clip (dead) gets mi 0 and score 0.
 * ERR_INVAL for n < 2, ch outside [1, PRUNE_MAX_CHANNELS], classes outside
 * [2, PRUNE_MAX_CLASSES], a label out of range, a non-finite activation (the message names the
 * first bad clip and channel) or a consumer weight that is negative or not finite; ERR_NOMEM.
 * On failure score and mi are untouched. */
int prune_score_nb(const float *acts, const int *labels, int n, int ch, int classes,
                   const double *consumer_w, double *score, double *mi, struct err_msg *em);

/* Baselines. L1 norm of each output filter (w[cout][per_out]); |γ| of BN (network slimming);
 * uniform in [0, 1) from a seed (score[c] depends only on seed and c). A count cout or c <= 0
 * writes nothing and per_out <= 0 gives zeros; non-finite inputs give non-finite scores, which
 * prune_allocate and prune_mask_top reject. */
void prune_score_l1(const float *w, int cout, int per_out, double *score);
void prune_score_bn(const float *gamma, int c, double *score);
void prune_score_random(uint64_t seed, int c, double *score);

/* Cost (e.g. FLOPs) of the model with keep[l] channels in group l; must be monotone
 * non-decreasing in every keep[l]. */
typedef double (*prune_cost_fn)(void *ud, const int *keep);

/* Global allocation over n_layers groups: group l has channels[l] channels with scores[l][c] >= 0
 * (higher = more important), a layer weight lw[l] > 0 (a more sensitive layer gets a larger
 * weight and loses fewer channels) and a floor floor_keep[l] in [1, channels[l]]. Each score is
 * divided by its layer's mean and multiplied by lw[l]; keep[l] = max(floor, channels clearing a
 * global threshold τ), with the largest such keep whose cost <= target found by bisection over
 * the sorted candidate thresholds (exact: no tolerance). Budget left over is then filled greedily
 * in the same global order, skipping layers whose next channel no longer fits, so that adding
 * one channel to any layer not yet full would exceed target. keep[] receives the counts.
 * ERR_RANGE when even the floors cost more than target (the message gives both); ERR_INVAL for
 * bad arguments (sizes out of the PRUNE_MAX_* bounds, a negative or non-finite score, lw <= 0,
 * a floor out of range, a NaN target or a NaN cost); ERR_NOMEM. On failure keep is untouched. */
int prune_allocate(int n_layers, const int *channels, const double *const *scores,
                   const double *lw, const int *floor_keep, prune_cost_fn cost, void *ud,
                   double target, int *keep, struct err_msg *em);

/* mask[c] = 1 for the `keep` highest scores (ties: lower index first), else 0.
 * ERR_INVAL for ch outside [1, PRUNE_MAX_CHANNELS] or a non-finite score; ERR_RANGE for keep outside
 * [0, ch]; ERR_NOMEM. On failure mask is untouched. */
int prune_mask_top(const double *score, int ch, int keep, unsigned char *mask,
                   struct err_msg *em);

#endif
