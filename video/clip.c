/* clip.c — TSN-style clips: a window of samples split into K segments, one snippet of L + 1
 * consecutive samples from each, giving one RGB frame and L motion fields per segment. */
#include "video/motion_int.h"
#include "video/rng.h"

#include <stdlib.h>
#include <string.h>

static const char *const motion_names[VIDEO_MOTION_COUNT] = {
    [VIDEO_MOTION_DIFF] = "diff",
    [VIDEO_MOTION_MV] = "mv",
    [VIDEO_MOTION_FLOW] = "flow",
};

const char *video_motion_name(enum video_motion m)
{
    return (int)m >= 0 && m < VIDEO_MOTION_COUNT ? motion_names[m] : "unknown";
}

enum video_motion video_motion_from_name(const char *name)
{
    for (int i = 0; i < VIDEO_MOTION_COUNT; i++)
        if (strcmp(name, motion_names[i]) == 0)
            return (enum video_motion)i;
    return VIDEO_MOTION_COUNT;
}

int video_clip_new(const struct video_clip_opts *o, int width, int height, struct video_clip **out,
                   struct err_msg *em)
{
    if (o->segments < 1 || o->segments > VIDEO_MAX_SEGMENTS || o->length < 1 ||
        o->length > VIDEO_MAX_MOTION_LEN)
        return err_set(em, ERR_RANGE, "clip: segments %d or length %d outside 1..%d, 1..%d",
                       o->segments, o->length, VIDEO_MAX_SEGMENTS, VIDEO_MAX_MOTION_LEN);
    if ((int)o->motion < 0 || o->motion >= VIDEO_MOTION_COUNT)
        return err_set(em, ERR_RANGE, "clip: unknown motion kind %d", (int)o->motion);
    if (width < 1 || width > VIDEO_MAX_MODEL_SIDE || height < 1 || height > VIDEO_MAX_MODEL_SIDE)
        return err_set(em, ERR_RANGE, "clip: size %dx%d out of range", width, height);
    struct video_clip *c = calloc(1, sizeof *c);
    if (!c)
        return err_set(em, ERR_NOMEM, "clip: out of memory");
    *c = (struct video_clip){.segments = o->segments, .length = o->length, .width = width,
                             .height = height, .kind = o->motion};
    size_t plane = (size_t)width * (size_t)height;
    c->rgb = malloc((size_t)o->segments * 3 * plane * sizeof(float));
    c->motion = malloc((size_t)o->segments * 2 * (size_t)o->length * plane * sizeof(float));
    if (!c->rgb || !c->motion) {
        video_clip_free(c);
        return err_set(em, ERR_NOMEM, "clip: out of memory");
    }
    *out = c;
    return 0;
}

void video_clip_free(struct video_clip *c)
{
    if (!c)
        return;
    free(c->rgb);
    free(c->motion);
    free(c);
}

int64_t clip_snippet_start(int64_t first, int64_t n, int k, int K, int L, uint64_t *rng)
{
    int64_t seg0 = first + n * k / K, seg1 = first + n * (k + 1) / K;
    int64_t room = seg1 - seg0 - L; /* start positions that keep the snippet in its segment */
    int64_t start;
    if (room < 1)
        start = seg0;
    else if (rng)
        start = seg0 + (int64_t)(rng_next(rng) % (uint64_t)room);
    else
        start = seg0 + (room - 1) / 2;
    int64_t last = first + n - (L + 1);
    return start > last ? last : start;
}

/* The field the sampler made with sample i (the motion from i - 1 to i), for the kinds it makes. */
static const float *kept_field(const struct video_sampler *s, enum video_motion kind, int64_t i)
{
    switch (kind) {
    case VIDEO_MOTION_MV: return sampler_mv(s, i);
    case VIDEO_MOTION_FLOW: return sampler_flow(s, i);
    default: return NULL;
    }
}

static int fill_motion(struct video_clip *c, const struct video_sampler *s, int64_t start, float *out,
                       struct err_msg *em)
{
    size_t plane = (size_t)c->width * (size_t)c->height;
    for (int l = 0; l < c->length; l++) {
        float *ch = out + (size_t)(2 * l) * plane;
        if (c->kind == VIDEO_MOTION_DIFF) {
            const uint8_t *a = video_sampler_rgb(s, start + l, NULL);
            const uint8_t *b = video_sampler_rgb(s, start + l + 1, NULL);
            motion_diff(a, b, c->width, c->height, ch, ch + plane);
            continue;
        }
        const float *f = kept_field(s, c->kind, start + l + 1);
        if (!f)
            return err_set(em, ERR_INVAL, "clip: the sampler makes no %s fields (motion_%s)",
                           video_motion_name(c->kind), video_motion_name(c->kind));
        memcpy(ch, f, 2 * plane * sizeof(float));
    }
    return 0;
}

int video_clip_fill(struct video_clip *c, const struct video_sampler *s, int64_t first, int64_t n,
                    uint64_t *rng, struct err_msg *em)
{
    int sw, sh;
    sampler_size(s, &sw, &sh);
    if (sw != c->width || sh != c->height)
        return err_set(em, ERR_INVAL, "clip: sampler makes %dx%d, clip holds %dx%d", sw, sh,
                       c->width, c->height);
    int64_t count = video_sampler_count(s);
    if (n < c->length + 1 || first < 0 || first + n > count ||
        !video_sampler_rgb(s, first, NULL))
        return err_set(em, ERR_RANGE, "clip: window [%lld, %lld) not held (%lld samples, need >= %d)",
                       (long long)first, (long long)(first + n), (long long)count, c->length + 1);
    size_t plane = (size_t)c->width * (size_t)c->height;
    for (int k = 0; k < c->segments; k++) {
        int64_t start = clip_snippet_start(first, n, k, c->segments, c->length, rng);
        video_sampler_planes(s, start + c->length / 2, c->rgb + (size_t)k * 3 * plane);
        float *m = c->motion + (size_t)k * 2 * (size_t)c->length * plane;
        int rc = fill_motion(c, s, start, m, em);
        if (rc < 0)
            return rc;
    }
    c->first = first;
    c->count = n;
    video_sampler_rgb(s, first, &c->start_us);
    video_sampler_rgb(s, first + n - 1, &c->end_us);
    return 0;
}

int video_clip_window_due(int64_t count, int64_t window, int64_t stride, int64_t *first)
{
    if (window < 1 || stride < 1 || count < window || (count - window) % stride != 0)
        return 0;
    *first = count - window;
    return 1;
}
