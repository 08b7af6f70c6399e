/* fit_int.h — what fit.c and fit_clips.c share; only fit/ includes it. */
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

#endif
