/* pipeline.h — the path from video to action scores, in pieces the daemon runs on different
 * threads (decode and sample; score) and `actiond infer` chains on one. */
#ifndef ACTIOND_DAEMON_PIPELINE_H
#define ACTIOND_DAEMON_PIPELINE_H

#include "common/common.h"
#include "nn/nn.h"
#include "video/video.h"

/* A window must hold every segment's snippet; longer than this is a configuration error. */
#define PIPELINE_MAX_WINDOW_S 60.0

/* What the model asks of the video, from its metadata and the window/stride in seconds. */
struct pipeline_video {
    struct video_sampler_opts sampler;
    struct video_clip_opts clip;
    int64_t window_n, stride_n; /* in samples */
    int export_mvs;
};

int pipeline_video_setup(const struct nn_meta *meta, double window_s, double stride_s,
                         struct pipeline_video *out, struct err_msg *em);

/* One worker's way to score clips: a plan and a context over a shared, BN-folded model. */
struct scorer;

int scorer_new(const struct nn_model *m, struct scorer **out, struct err_msg *em);
void scorer_free(struct scorer *s);
/* Runs one clip; *scores points at n_classes values (the model's first output, averaged
 * over segments when it has one row per segment), valid until the next call. */
int scorer_run(struct scorer *s, const struct video_clip *c, const float **scores,
               struct err_msg *em);
int scorer_n_classes(const struct scorer *s);
/* The name of class i: the model's, or "class<i>" when it has none. */
void scorer_class_name(const struct scorer *s, int i, char *buf, size_t len);

/* ---- the whole pipeline on one thread, for files and one-shot runs ---- */

struct pipeline_window {
    int64_t start_us, end_us; /* timestamps of the window's first and last samples */
    const float *scores;      /* n_classes values */
    int n_classes;
};

typedef int (*pipeline_window_fn)(const struct pipeline_window *w, void *user);

struct pipeline_opts {
    double window_s, stride_s;
    struct video_source_opts source;
};

struct pipeline_stats {
    int64_t frames, samples, windows, corrupt;
    double seconds; /* wall time */
};

/* Decodes url, scores every window, calls fn for each (a non-zero return stops early).
 * The model must be BN-folded. */
int pipeline_run(const struct nn_model *m, const char *url, const struct pipeline_opts *o,
                 pipeline_window_fn fn, void *user, struct pipeline_stats *st,
                 struct err_msg *em);

#endif
