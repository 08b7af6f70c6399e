/* pipeline.c — model metadata to video settings, clip scoring, and the one-thread pipeline
 * (source -> sampler -> sliding window -> clip -> network -> scores). */
#include "daemon/pipeline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pipeline_video_setup(const struct nn_meta *meta, double window_s, double stride_s,
                         struct pipeline_video *out, struct err_msg *em)
{
    memset(out, 0, sizeof *out);
    if (!(window_s > 0 && window_s <= PIPELINE_MAX_WINDOW_S) || !(stride_s > 0))
        return err_set(em, ERR_RANGE, "window %.2f s / stride %.2f s out of range", window_s,
                       stride_s);
    enum video_motion kind = VIDEO_MOTION_DIFF; /* models without motion never read it */
    if (meta->motion != NN_MOTION_NONE) {
        kind = video_motion_from_name(nn_motion_name(meta->motion));
        if (kind == VIDEO_MOTION_COUNT)
            return err_set(em, ERR_UNSUPPORTED, "motion kind '%s' is not available",
                           nn_motion_name(meta->motion));
    }
    int length = meta->motion_len > 0 ? meta->motion_len : 1;
    out->window_n = llround(window_s * meta->fps);
    out->stride_n = llround(stride_s * meta->fps);
    if (out->stride_n < 1)
        out->stride_n = 1;
    /* A snippet is L + 1 samples, and the K segments' snippets should not all start at one
     * sample: L + K at least. In a window shorter than K (L + 1) the snippets overlap
     * (clip_snippet_start), as TSN does on a short clip: the default model (L 8, K 3) sees
     * 2 s windows (the default) that way, and on synth sequences of 2-5 s actions they follow
     * the timeline better than windows of its 3 s training clips. */
    int64_t need = (int64_t)length + meta->segments;
    if (out->window_n < need)
        return err_set(em, ERR_RANGE,
                       "a %.2f s window holds %lld samples at %.1f fps; %d segments of %d "
                       "samples need at least %lld",
                       window_s, (long long)out->window_n, (double)meta->fps, meta->segments,
                       length + 1, (long long)need);
    if (out->window_n > VIDEO_MAX_RING)
        return err_set(em, ERR_RANGE, "window of %lld samples is longer than %d",
                       (long long)out->window_n, VIDEO_MAX_RING);
    struct video_sampler_opts *so = &out->sampler;
    so->width = meta->width;
    so->height = meta->height;
    so->fps = meta->fps;
    so->capacity = (int)out->window_n;
    memcpy(so->mean, meta->mean, sizeof so->mean);
    memcpy(so->std, meta->std, sizeof so->std);
    so->motion_mv = meta->motion == NN_MOTION_MV;
    so->motion_flow = meta->motion == NN_MOTION_FLOW;
    out->export_mvs = so->motion_mv;
    out->clip = (struct video_clip_opts){.segments = meta->segments, .length = length,
                                         .motion = kind};
    return 0;
}

struct scorer {
    const struct nn_model *m;
    struct nn_plan *plan;
    struct nn_ctx *ctx;
    int rgb_in, motion_in; /* input indices; motion_in -1 for RGB-only models */
    int n_classes, rows;
    float *mean_scores;
};

void scorer_free(struct scorer *s)
{
    if (!s)
        return;
    nn_ctx_free(s->ctx);
    nn_plan_free(s->plan);
    free(s->mean_scores);
    free(s);
}

/* The inputs: "rgb" and "motion" in a two-stream model; a single 3-channel input otherwise. */
static int find_inputs(struct scorer *s, struct err_msg *em)
{
    const struct nn_graph *g = s->m->graph;
    s->rgb_in = s->motion_in = -1;
    for (int i = 0; i < nn_graph_n_inputs(g); i++) {
        if (strcmp(nn_graph_input_name(g, i), "rgb") == 0)
            s->rgb_in = i;
        else if (strcmp(nn_graph_input_name(g, i), "motion") == 0)
            s->motion_in = i;
    }
    if (s->rgb_in < 0 && nn_graph_n_inputs(g) == 1 && nn_graph_input_shape(g, 0, 1).d[1] == 3)
        s->rgb_in = 0;
    if (s->rgb_in < 0)
        return err_set(em, ERR_FORMAT, "model: no 'rgb' input (nor a single 3-channel one)");
    if (s->motion_in >= 0 && s->m->meta.motion == NN_MOTION_NONE)
        return err_set(em, ERR_FORMAT, "model: a 'motion' input but no motion kind in its metadata");
    return 0;
}

int scorer_new(const struct nn_model *m, struct scorer **out, struct err_msg *em)
{
    *out = NULL;
    struct scorer *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(em, ERR_NOMEM, "out of memory");
    s->m = m;
    int rc = find_inputs(s, em);
    if (rc == 0)
        /* Only the fused scores: a stream the late fusion weighs 0 is then not computed. */
        rc = nn_plan_new_for(m->graph, m->meta.segments, 1u, &s->plan, em);
    if (rc == 0 && (rc = nn_ctx_new(s->plan, &s->ctx)) != 0)
        err_set(em, rc, "out of memory for the workspace");
    if (rc == 0) {
        struct nn_shape os = nn_plan_output_shape(s->plan, 0);
        s->rows = os.d[0];
        s->n_classes = (int)(nn_shape_elems(&os) / os.d[0]);
        if (os.ndim != 2 || (m->meta.n_classes && m->meta.n_classes != s->n_classes))
            rc = err_set(em, ERR_FORMAT, "model: output 0 is not [rows, %d classes]",
                         m->meta.n_classes);
    }
    if (rc == 0 && !(s->mean_scores = calloc((size_t)s->n_classes, sizeof(float))))
        rc = err_set(em, ERR_NOMEM, "out of memory");
    if (rc) {
        scorer_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int scorer_n_classes(const struct scorer *s)
{
    return s->n_classes;
}

void scorer_class_name(const struct scorer *s, int i, char *buf, size_t len)
{
    nn_model_class_name(s->m, i, buf, len);
}

/* Copies a clip plane set into a model input of the same element count, scaled. */
static int copy_input(struct scorer *s, int in, const float *src, size_t n, float scale,
                      struct err_msg *em)
{
    struct nn_shape sh = nn_plan_input_shape(s->plan, in);
    if ((size_t)nn_shape_elems(&sh) != n)
        return err_set(em, ERR_FORMAT, "model input '%s' holds %lld values, the clip gives %zu",
                       nn_graph_input_name(s->m->graph, in), (long long)nn_shape_elems(&sh), n);
    float *dst = nn_ctx_input(s->ctx, in);
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i] * scale;
    return 0;
}

int scorer_run(struct scorer *s, const struct video_clip *c, const float **scores,
               struct err_msg *em)
{
    size_t plane = (size_t)c->width * c->height;
    int rc = copy_input(s, s->rgb_in, c->rgb, (size_t)c->segments * 3 * plane, 1.f, em);
    if (rc == 0 && s->motion_in >= 0)
        rc = copy_input(s, s->motion_in, c->motion, (size_t)c->segments * 2 * c->length * plane,
                        s->m->meta.motion_scale, em);
    if (rc == 0)
        rc = nn_run(s->ctx);
    if (rc)
        return rc;
    const float *y = nn_ctx_output(s->ctx, 0);
    for (int j = 0; j < s->n_classes; j++) {
        double sum = 0;
        for (int r = 0; r < s->rows; r++)
            sum += y[(size_t)r * s->n_classes + j];
        s->mean_scores[j] = (float)(sum / s->rows);
    }
    *scores = s->mean_scores;
    return 0;
}

/* Everything pipeline_run holds, freed in one place. */
struct run_state {
    struct pipeline_video pv;
    struct scorer *scorer;
    struct video_source *src;
    struct video_sampler *sampler;
    struct video_clip *clip;
};

static void run_state_free(struct run_state *r)
{
    video_clip_free(r->clip);
    video_sampler_free(r->sampler);
    video_source_close(r->src);
    scorer_free(r->scorer);
}

static int run_state_open(struct run_state *r, const struct nn_model *m, const char *url,
                          const struct pipeline_opts *o, struct err_msg *em)
{
    int rc = pipeline_video_setup(&m->meta, o->window_s, o->stride_s, &r->pv, em);
    if (rc == 0)
        rc = scorer_new(m, &r->scorer, em);
    if (rc == 0)
        rc = video_sampler_new(&r->pv.sampler, &r->sampler, em);
    if (rc == 0)
        rc = video_clip_new(&r->pv.clip, m->meta.width, m->meta.height, &r->clip, em);
    if (rc == 0) {
        struct video_source_opts so = o->source;
        so.export_mvs = r->pv.export_mvs;
        rc = video_source_open(url, &so, &r->src, em);
    }
    return rc;
}

/* Scores the window that the newest sample completed, if any, and reports it. */
static int maybe_score(struct run_state *r, pipeline_window_fn fn, void *user,
                       struct pipeline_stats *st, struct err_msg *em)
{
    int64_t first;
    if (!video_clip_window_due(video_sampler_count(r->sampler), r->pv.window_n, r->pv.stride_n,
                               &first))
        return 0;
    const float *scores;
    int rc = video_clip_fill(r->clip, r->sampler, first, r->pv.window_n, NULL, em);
    if (rc == 0)
        rc = scorer_run(r->scorer, r->clip, &scores, em);
    if (rc)
        return rc;
    st->windows++;
    struct pipeline_window w = {r->clip->start_us, r->clip->end_us, scores,
                                scorer_n_classes(r->scorer)};
    return fn(&w, user) ? 1 : 0;
}

int pipeline_run(const struct nn_model *m, const char *url, const struct pipeline_opts *o,
                 pipeline_window_fn fn, void *user, struct pipeline_stats *st,
                 struct err_msg *em)
{
    memset(st, 0, sizeof *st);
    uint64_t t0 = clock_mono_ns();
    struct run_state r = {0};
    int rc = run_state_open(&r, m, url, o, em);
    while (rc == 0) {
        struct video_frame f;
        rc = video_source_read(r.src, &f, em);
        if (rc)
            break;
        st->frames++;
        int taken = video_sampler_push(r.sampler, &f, em);
        if (taken < 0) {
            rc = taken;
            break;
        }
        if (taken)
            rc = maybe_score(&r, fn, user, st, em);
    }
    if (rc == ERR_EOF || rc == 1)
        rc = 0;
    if (r.src) {
        struct video_source_stats ss;
        video_source_stats(r.src, &ss);
        st->corrupt = ss.corrupt;
    }
    if (r.sampler)
        st->samples = video_sampler_count(r.sampler);
    st->seconds = clock_elapsed_s(t0, clock_mono_ns());
    run_state_free(&r);
    return rc;
}
