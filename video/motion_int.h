/* motion_int.h — internals shared by sampler.c, motion.c, clip.c and the data set loader: motion
 * fields from codec vectors, frame differences and optical flow, what clip.c reads out of the
 * sampler, TSN offsets. */
#ifndef ACTIOND_VIDEO_MOTION_INT_H
#define ACTIOND_VIDEO_MOTION_INT_H

#include "video/video.h"

/* Fills field[2][h][w] (x then y, model pixels per decoded frame) from the frame's vectors.
 * Returns 1 when the frame carried vectors, 0 when it had none (an I-frame): field untouched. */
int motion_mv_raster(const struct video_frame *f, int w, int h, float *field);
/* Luma difference of two packed RGB24 images b - a, split into pos = max(d, 0), neg = max(-d, 0). */
void motion_diff(const uint8_t *a, const uint8_t *b, int w, int h, float *pos, float *neg);
/* Luma of a packed RGB24 image in [0, 1], with motion_diff's weights: the flow's input. */
void motion_luma(const uint8_t *rgb, int w, int h, float *grey);

void sampler_size(const struct video_sampler *s, int *w, int *h);
/* The motion-vector field [2][H][W] kept with sample i; NULL if not kept or not made. */
const float *sampler_mv(const struct video_sampler *s, int64_t i);
/* The optical flow [2][H][W] from sample i - 1 to sample i; NULL if not kept or not made. */
const float *sampler_flow(const struct video_sampler *s, int64_t i);

/* Where segment k of K's snippet of L + 1 samples starts in the window [first, first + n): centred
 * in its segment, or uniformly random in it from *rng when rng is not NULL. It may spill past a
 * short segment but never past the window; negative only when n < L + 1. clip.c and loader.c both
 * use it, so training and serving pick snippets by one rule. */
int64_t clip_snippet_start(int64_t first, int64_t n, int k, int K, int L, uint64_t *rng);

/* What a cache holds, so a loader handed one can check it matches. */
void cache_settings(const struct video_cache *c, int *width, int *height, double *fps, int *mv);

#endif
