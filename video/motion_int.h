/* motion_int.h — internals shared by sampler.c, motion.c and clip.c: motion fields from codec
 * vectors and from frame differences, and what clip.c reads out of the sampler. */
#ifndef ACTIOND_VIDEO_MOTION_INT_H
#define ACTIOND_VIDEO_MOTION_INT_H

#include "video/video.h"

/* Fills field[2][h][w] (x then y, model pixels per decoded frame) from the frame's vectors.
 * Returns 1 when the frame carried vectors, 0 when it had none (an I-frame): field untouched. */
int motion_mv_raster(const struct video_frame *f, int w, int h, float *field);
/* Luma difference of two packed RGB24 images b - a, split into pos = max(d, 0), neg = max(-d, 0). */
void motion_diff(const uint8_t *a, const uint8_t *b, int w, int h, float *pos, float *neg);

void sampler_size(const struct video_sampler *s, int *w, int *h);
/* The motion-vector field [2][H][W] kept with sample i; NULL if not kept or not made. */
const float *sampler_mv(const struct video_sampler *s, int64_t i);

/* What a cache holds, so a loader handed one can check it matches. */
void cache_settings(const struct video_cache *c, int *width, int *height, double *fps, int *mv);

#endif
