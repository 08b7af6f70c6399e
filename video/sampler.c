/* sampler.c — takes decoded frames at the model's rate by timestamp, resizes them to the model's
 * size with libswscale into a ring of RGB24 samples, and makes normalised float planes; keeps
 * each sample's motion-vector field and optical flow alongside when asked. */
#include "video/video.h"
#include "video/motion_int.h"

#include <libavutil/frame.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A frame whose timestamp is this close before a sampling time still counts as on time:
 * container time bases round (1/90000 s, 1/12800 s), sampling times are exact. */
#define SAMPLE_TOLERANCE_US 1000
/* The largest input frame the sampler accepts (8K): bounds swscale's buffers. */
#define SAMPLER_MAX_INPUT_SIDE 8192
/* Bytes of slack after the scratch image: swscale's SIMD may store a little past a row. */
#define SCRATCH_PAD 64

struct video_sampler {
    struct video_sampler_opts o;
    struct SwsContext *sws;
    int src_w, src_h, src_fmt, src_cs, src_range;
    size_t frame_bytes;       /* W * H * 3 */
    size_t field_floats;      /* 2 * W * H */
    int scratch_stride;
    uint8_t *scratch;
    uint8_t *rgb;             /* capacity * frame_bytes */
    int64_t *pts;
    float *mv;                /* capacity * field_floats, with motion_mv */
    float *mv_acc, *mv_last;  /* displacement since the last sample; the last frame's field */
    float *flow;              /* capacity * field_floats, with motion_flow */
    float *grey;              /* W * H: the newest sample's luma, the flow's input */
    struct video_flow *flow_ctx; /* holds the previous sample's pyramid between samples */
    float lut[3][256];        /* x -> (x/255 - mean) / std */
    int64_t count;
    int64_t t0, next_k;
    int started;
};

static int sampler_opts_check(const struct video_sampler_opts *o, struct err_msg *em)
{
    if (o->width < VIDEO_MIN_SIDE / 2 || o->width > VIDEO_MAX_MODEL_SIDE ||
        o->height < VIDEO_MIN_SIDE / 2 || o->height > VIDEO_MAX_MODEL_SIDE)
        return err_set(em, ERR_RANGE, "sampler size %dx%d outside %d..%d", o->width, o->height,
                       VIDEO_MIN_SIDE / 2, VIDEO_MAX_MODEL_SIDE);
    if (!(o->fps > 0.0 && o->fps <= VIDEO_MAX_FPS))
        return err_set(em, ERR_RANGE, "sampler fps %g outside (0, %d]", o->fps, VIDEO_MAX_FPS);
    if (o->capacity < 1 || o->capacity > VIDEO_MAX_RING)
        return err_set(em, ERR_RANGE, "sampler capacity %d outside 1..%d", o->capacity, VIDEO_MAX_RING);
    for (int c = 0; c < 3; c++)
        if (!(o->std[c] > 1e-6f) || !isfinite(o->mean[c]))
            return err_set(em, ERR_RANGE, "sampler std must be positive and mean finite");
    return 0;
}

int video_sampler_new(const struct video_sampler_opts *o, struct video_sampler **out,
                      struct err_msg *em)
{
    int rc = sampler_opts_check(o, em);
    if (rc < 0)
        return rc;
    struct video_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(em, ERR_NOMEM, "sampler: out of memory");
    s->o = *o;
    size_t cap = (size_t)o->capacity;
    s->frame_bytes = (size_t)o->width * (size_t)o->height * 3;
    s->field_floats = (size_t)o->width * (size_t)o->height * 2;
    s->scratch_stride = (o->width * 3 + 63) & ~63;
    s->scratch = malloc((size_t)s->scratch_stride * (size_t)o->height + SCRATCH_PAD);
    s->rgb = malloc(cap * s->frame_bytes);
    s->pts = calloc(cap, sizeof *s->pts);
    int ok = s->scratch && s->rgb && s->pts;
    if (o->motion_mv) {
        s->mv = calloc(cap * s->field_floats, sizeof(float));
        s->mv_acc = calloc(s->field_floats, sizeof(float));
        s->mv_last = calloc(s->field_floats, sizeof(float));
        ok = ok && s->mv && s->mv_acc && s->mv_last;
    }
    if (o->motion_flow) {
        s->flow = calloc(cap * s->field_floats, sizeof(float));
        s->grey = malloc((size_t)o->width * (size_t)o->height * sizeof(float));
        ok = ok && s->flow && s->grey;
    }
    if (!ok) {
        video_sampler_free(s);
        return err_set(em, ERR_NOMEM, "sampler: out of memory");
    }
    if (o->motion_flow) {
        rc = video_flow_new(o->width, o->height, &o->flow, &s->flow_ctx, em);
        if (rc < 0) {
            video_sampler_free(s);
            return rc;
        }
    }
    for (int c = 0; c < 3; c++)
        for (int x = 0; x < 256; x++)
            s->lut[c][x] = ((float)x / 255.0f - o->mean[c]) / o->std[c];
    *out = s;
    return 0;
}

void video_sampler_free(struct video_sampler *s)
{
    if (!s)
        return;
    sws_freeContext(s->sws);
    free(s->scratch);
    free(s->rgb);
    free(s->pts);
    free(s->mv);
    free(s->mv_acc);
    free(s->mv_last);
    free(s->flow);
    free(s->grey);
    video_flow_free(s->flow_ctx);
    free(s);
}

void video_sampler_reset(struct video_sampler *s)
{
    s->count = 0;
    s->started = 0;
    s->next_k = 0;
    if (s->mv_acc) {
        memset(s->mv_acc, 0, s->field_floats * sizeof(float));
        memset(s->mv_last, 0, s->field_floats * sizeof(float));
    }
    if (s->flow_ctx)
        video_flow_reset(s->flow_ctx);
}

static int64_t sample_time(const struct video_sampler *s, int64_t k)
{
    return s->t0 + (int64_t)llround((double)k * 1e6 / s->o.fps);
}

/* Whether the frame at pts is due, and if so, which sampling time comes after it. */
static int sample_due(struct video_sampler *s, int64_t pts)
{
    if (!s->started) {
        s->started = 1;
        s->t0 = pts;
        s->next_k = 1;
        return 1;
    }
    if (pts < sample_time(s, s->next_k) - SAMPLE_TOLERANCE_US)
        return 0;
    int64_t k = (int64_t)floor((double)(pts - s->t0 + SAMPLE_TOLERANCE_US) * s->o.fps / 1e6) + 1;
    s->next_k = k > s->next_k + 1 ? k : s->next_k + 1;
    return 1;
}

static int is_full_range(const struct video_frame *f)
{
    const AVFrame *av = f->av;
    if (av && av->color_range == AVCOL_RANGE_JPEG)
        return 1;
    return f->format == AV_PIX_FMT_YUVJ420P || f->format == AV_PIX_FMT_YUVJ422P ||
           f->format == AV_PIX_FMT_YUVJ444P;
}

/* The scaler is rebuilt only when the input's size, format or colours change. */
static int scaler_for(struct video_sampler *s, const struct video_frame *f, struct err_msg *em)
{
    const AVFrame *av = f->av;
    int cs = av && av->colorspace == AVCOL_SPC_BT709 ? SWS_CS_ITU709 : SWS_CS_DEFAULT;
    int range = is_full_range(f);
    if (s->sws && f->width == s->src_w && f->height == s->src_h && f->format == s->src_fmt &&
        cs == s->src_cs && range == s->src_range)
        return 0;
    sws_freeContext(s->sws);
    /* Area averaging: the model sizes are far below a camera's, where it is both the faster
     * and the less aliased downscale (measured by bench/video.sh against bilinear). */
    s->sws = sws_getContext(f->width, f->height, (enum AVPixelFormat)f->format, s->o.width,
                            s->o.height, AV_PIX_FMT_RGB24, SWS_AREA, NULL, NULL, NULL);
    if (!s->sws)
        return err_set(em, ERR_UNSUPPORTED, "sampler: cannot convert %dx%d %s frames", f->width,
                       f->height, av_get_pix_fmt_name((enum AVPixelFormat)f->format));
    /* Decoders tag HD as BT.709; ignoring that tints every colour a little. */
    sws_setColorspaceDetails(s->sws, sws_getCoefficients(cs), range, sws_getCoefficients(SWS_CS_DEFAULT),
                             1, 0, 1 << 16, 1 << 16);
    s->src_w = f->width;
    s->src_h = f->height;
    s->src_fmt = f->format;
    s->src_cs = cs;
    s->src_range = range;
    return 0;
}

static int sample_store(struct video_sampler *s, const struct video_frame *f, struct err_msg *em)
{
    int rc = scaler_for(s, f, em);
    if (rc < 0)
        return rc;
    uint8_t *dst[4] = {s->scratch, NULL, NULL, NULL};
    int dst_stride[4] = {s->scratch_stride, 0, 0, 0};
    if (sws_scale(s->sws, f->data, f->linesize, 0, f->height, dst, dst_stride) != s->o.height)
        return err_set(em, ERR_FORMAT, "sampler: scaling a %dx%d frame failed", f->width, f->height);
    size_t slot = (size_t)(s->count % s->o.capacity);
    uint8_t *out = s->rgb + slot * s->frame_bytes;
    size_t row = (size_t)s->o.width * 3;
    for (int y = 0; y < s->o.height; y++)
        memcpy(out + (size_t)y * row, s->scratch + (size_t)y * (size_t)s->scratch_stride, row);
    s->pts[slot] = f->pts_us;
    if (s->mv) {
        memcpy(s->mv + slot * s->field_floats, s->mv_acc, s->field_floats * sizeof(float));
        memset(s->mv_acc, 0, s->field_floats * sizeof(float));
    }
    /* The flow from the previous sample (zeros for the first after a reset), made now so that
     * each pair is computed once however many clips later read it. */
    if (s->flow) {
        motion_luma(out, s->o.width, s->o.height, s->grey);
        video_flow_push(s->flow_ctx, s->grey, s->flow + slot * s->field_floats);
    }
    s->count++;
    return 1;
}

/* Every decoded frame adds its motion to the running displacement, taken or not, so a sample's
 * field is the motion since the previous sample whatever the input's rate. A frame without
 * vectors (an I-frame) repeats the last frame's field: motion rarely stops at a GOP boundary. */
static void mv_accumulate(struct video_sampler *s, const struct video_frame *f)
{
    motion_mv_raster(f, s->o.width, s->o.height, s->mv_last);
    for (size_t i = 0; i < s->field_floats; i++)
        s->mv_acc[i] += s->mv_last[i];
}

int video_sampler_push(struct video_sampler *s, const struct video_frame *f, struct err_msg *em)
{
    if (f->width < 1 || f->height < 1 || f->width > SAMPLER_MAX_INPUT_SIDE ||
        f->height > SAMPLER_MAX_INPUT_SIDE || !f->data[0])
        return err_set(em, ERR_RANGE, "sampler: frame size %dx%d not supported", f->width, f->height);
    if (s->started && f->pts_us < s->t0)
        return 0; /* from before the first sample: a stream that jumped back */
    if (s->mv && s->started)
        mv_accumulate(s, f);
    if (!sample_due(s, f->pts_us))
        return 0;
    return sample_store(s, f, em);
}

int video_sampler_read_all(struct video_sampler *s, struct video_source *src, struct err_msg *em)
{
    struct video_frame f;
    for (;;) {
        int rc = video_source_read(src, &f, em);
        if (rc == ERR_EOF)
            return 0;
        if (rc < 0)
            return rc;
        if ((rc = video_sampler_push(s, &f, em)) < 0)
            return rc;
    }
}

void sampler_size(const struct video_sampler *s, int *w, int *h)
{
    *w = s->o.width;
    *h = s->o.height;
}

int64_t video_sampler_count(const struct video_sampler *s)
{
    return s->count;
}

static int kept(const struct video_sampler *s, int64_t i)
{
    return i >= 0 && i < s->count && i >= s->count - s->o.capacity;
}

const uint8_t *video_sampler_rgb(const struct video_sampler *s, int64_t i, int64_t *pts_us)
{
    if (!kept(s, i))
        return NULL;
    size_t slot = (size_t)(i % s->o.capacity);
    if (pts_us)
        *pts_us = s->pts[slot];
    return s->rgb + slot * s->frame_bytes;
}

const float *sampler_mv(const struct video_sampler *s, int64_t i)
{
    if (!s->mv || !kept(s, i))
        return NULL;
    return s->mv + (size_t)(i % s->o.capacity) * s->field_floats;
}

const float *sampler_flow(const struct video_sampler *s, int64_t i)
{
    if (!s->flow || !kept(s, i))
        return NULL;
    return s->flow + (size_t)(i % s->o.capacity) * s->field_floats;
}

int video_sampler_planes(const struct video_sampler *s, int64_t i, float *out)
{
    const uint8_t *rgb = video_sampler_rgb(s, i, NULL);
    if (!rgb)
        return ERR_RANGE;
    size_t n = (size_t)s->o.width * (size_t)s->o.height;
    for (size_t p = 0; p < n; p++)
        for (int c = 0; c < 3; c++)
            out[(size_t)c * n + p] = s->lut[c][rgb[p * 3 + (size_t)c]];
    return 0;
}
