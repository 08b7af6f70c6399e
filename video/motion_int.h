/* motion_int.h — internals shared by sampler.c, motion.c and clip.c: motion fields from codec
 * vectors and from frame differences, luma for the flow, and what clip.c reads out of the sampler. */
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

#endif
