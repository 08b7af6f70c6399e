/* snapshot.c — per-stream latest frames: the worker converts a frame to full-range YUV 4:2:0
 * into a buffer of its own and swaps it in (a reference-counted AVFrame, so a request that is
 * encoding the previous one keeps it alive); a request encodes it with libavcodec's MJPEG. */
#include "daemon/snapshot.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "video/video.h"

#include <libavcodec/avcodec.h>
#include <libavutil/frame.h>
#include <libswscale/swscale.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* JPEG quality as an MJPEG quantiser (2 best .. 31 worst): 4 keeps faces and limbs sharp at a
 * few tens of KiB for 720p. */
#define SNAPSHOT_QSCALE 4

struct daemon_snapshot_slot {
    struct daemon_snapshots *owner;
    char id[DAEMON_STREAM_ID_SIZE];
    int attached;
    atomic_int want;          /* a request waits for a fresh frame */
    atomic_llong copied_ms;   /* monotonic time of the last copy; the worker's own clock */
    /* the worker's */
    AVFrame *back;
    struct SwsContext *sws;
    /* under owner->mu */
    AVFrame *front; /* NULL until the first frame */
    int64_t front_ms;
    char top[DAEMON_ACTION_SIZE];
    double top_score;
};

struct daemon_snapshots {
    pthread_mutex_t mu;
    pthread_cond_t fresh; /* a slot got a new frame */
    struct daemon_snapshot_slot slots[SNAPSHOT_SLOTS];
};

int daemon_snapshots_new(struct daemon_snapshots **out, struct err_msg *em)
{
    struct daemon_snapshots *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(em, ERR_NOMEM, "snapshots: out of memory");
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->fresh, &ca);
    pthread_condattr_destroy(&ca);
    for (int i = 0; i < SNAPSHOT_SLOTS; i++)
        s->slots[i].owner = s;
    *out = s;
    return 0;
}

static void slot_clear(struct daemon_snapshot_slot *sl)
{
    av_frame_free(&sl->front);
    av_frame_free(&sl->back);
    sws_freeContext(sl->sws);
    sl->sws = NULL;
    sl->id[0] = '\0';
    sl->top[0] = '\0';
    atomic_store(&sl->copied_ms, 0);
}

void daemon_snapshots_free(struct daemon_snapshots *s)
{
    if (!s)
        return;
    for (int i = 0; i < SNAPSHOT_SLOTS; i++)
        slot_clear(&s->slots[i]);
    pthread_cond_destroy(&s->fresh);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static struct daemon_snapshot_slot *slot_find(struct daemon_snapshots *s, const char *id)
{
    for (int i = 0; i < SNAPSHOT_SLOTS; i++)
        if (s->slots[i].id[0] && strcmp(s->slots[i].id, id) == 0)
            return &s->slots[i];
    return NULL;
}

struct daemon_snapshot_slot *daemon_snapshots_attach(struct daemon_snapshots *s, const char *id)
{
    if (!s)
        return NULL;
    pthread_mutex_lock(&s->mu);
    struct daemon_snapshot_slot *sl = slot_find(s, id);
    /* A new id takes an empty slot, else the slot of a stream no worker feeds any more. */
    for (int i = 0; !sl && i < SNAPSHOT_SLOTS; i++)
        if (!s->slots[i].id[0])
            sl = &s->slots[i];
    for (int i = 0; !sl && i < SNAPSHOT_SLOTS; i++)
        if (!s->slots[i].attached) {
            sl = &s->slots[i];
            slot_clear(sl);
        }
    if (sl) {
        snprintf(sl->id, sizeof sl->id, "%s", id);
        sl->attached++;
    }
    pthread_mutex_unlock(&s->mu);
    return sl;
}

void daemon_snapshots_detach(struct daemon_snapshots *s, struct daemon_snapshot_slot *slot)
{
    if (!s || !slot)
        return;
    pthread_mutex_lock(&s->mu);
    slot->attached--;
    /* The worker's own buffers go with it; the last frame stays for the page. */
    av_frame_free(&slot->back);
    sws_freeContext(slot->sws);
    slot->sws = NULL;
    pthread_mutex_unlock(&s->mu);
}

/* ---- the worker side ---- */

static int convert(struct daemon_snapshot_slot *sl, const struct video_frame *f)
{
    if (!sl->back && !(sl->back = av_frame_alloc()))
        return ERR_NOMEM;
    AVFrame *b = sl->back;
    if (b->width != f->width || b->height != f->height || !b->buf[0]) {
        av_frame_unref(b);
        b->width = f->width;
        b->height = f->height;
        b->format = AV_PIX_FMT_YUVJ420P;
        if (av_frame_get_buffer(b, 0) < 0)
            return ERR_NOMEM;
    } else if (av_frame_make_writable(b) < 0) { /* a request still encodes this buffer */
        return ERR_NOMEM;
    }
    sl->sws = sws_getCachedContext(sl->sws, f->width, f->height, (enum AVPixelFormat)f->format,
                                   f->width, f->height, AV_PIX_FMT_YUVJ420P, SWS_POINT, NULL,
                                   NULL, NULL);
    if (!sl->sws)
        return ERR_UNSUPPORTED;
    sws_scale(sl->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, b->data,
              b->linesize);
    return 0;
}

void daemon_snapshot_offer(struct daemon_snapshot_slot *sl, const struct video_frame *f)
{
    if (!sl)
        return;
    int64_t now = (int64_t)clock_mono_ms();
    bool want = atomic_load(&sl->want);
    if (!want && now - (int64_t)atomic_load(&sl->copied_ms) < SNAPSHOT_EVERY_MS)
        return;
    atomic_store(&sl->copied_ms, (long long)now);
    if (f->width < 2 || f->height < 2 || f->width > SNAPSHOT_MAX_SIDE ||
        f->height > SNAPSHOT_MAX_SIDE || convert(sl, f) != 0)
        return;
    struct daemon_snapshots *s = sl->owner;
    pthread_mutex_lock(&s->mu);
    AVFrame *old = sl->front;
    sl->front = sl->back;
    sl->back = old;
    sl->front_ms = now;
    atomic_store(&sl->want, 0);
    pthread_cond_broadcast(&s->fresh);
    pthread_mutex_unlock(&s->mu);
}

void daemon_snapshots_set_top(struct daemon_snapshots *s, const char *id, const char *action,
                              double score)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    struct daemon_snapshot_slot *sl = slot_find(s, id);
    if (sl) {
        snprintf(sl->top, sizeof sl->top, "%s", action);
        sl->top_score = score;
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- the request side ---- */

/* A reference to the slot's frame, fresh if the worker delivers one within SNAPSHOT_WAIT_MS. */
static int take_frame(struct daemon_snapshots *s, const char *id, AVFrame *out, char *label,
                      size_t label_cap)
{
    pthread_mutex_lock(&s->mu);
    struct daemon_snapshot_slot *sl = slot_find(s, id);
    int64_t now = (int64_t)clock_mono_ms();
    if (sl && sl->attached && (!sl->front || now - sl->front_ms > SNAPSHOT_EVERY_MS)) {
        atomic_store(&sl->want, 1);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (long)(SNAPSHOT_WAIT_MS % 1000) * 1000000L;
        until.tv_sec += SNAPSHOT_WAIT_MS / 1000 + until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        while (atomic_load(&sl->want) && strcmp(sl->id, id) == 0 &&
               pthread_cond_timedwait(&s->fresh, &s->mu, &until) == 0)
            ;
        if (strcmp(sl->id, id) != 0)
            sl = NULL; /* the slot went to another stream meanwhile */
    }
    int rc = sl && sl->front ? (av_frame_ref(out, sl->front) < 0 ? ERR_NOMEM : 0) : ERR_NOTFOUND;
    if (rc == 0 && sl->top[0])
        snprintf(label, label_cap, "%s %.2f", sl->top, sl->top_score);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int encode(const AVFrame *f, unsigned char **jpeg, size_t *len, struct err_msg *em)
{
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
    if (!codec)
        return err_set(em, ERR_UNSUPPORTED, "snapshot: this FFmpeg has no MJPEG encoder");
    AVCodecContext *c = avcodec_alloc_context3(codec);
    AVPacket *pkt = av_packet_alloc();
    AVFrame *in = av_frame_clone(f);
    int rc = c && pkt && in ? 0 : ERR_NOMEM;
    if (rc == 0) {
        c->width = f->width;
        c->height = f->height;
        c->pix_fmt = AV_PIX_FMT_YUVJ420P;
        c->time_base = (AVRational){1, 25};
        c->flags |= AV_CODEC_FLAG_QSCALE;
        c->global_quality = FF_QP2LAMBDA * SNAPSHOT_QSCALE;
        in->quality = c->global_quality;
        in->pict_type = AV_PICTURE_TYPE_I;
        if (avcodec_open2(c, codec, NULL) < 0 || avcodec_send_frame(c, in) < 0 ||
            avcodec_receive_packet(c, pkt) < 0)
            rc = ERR_IO;
    }
    if (rc == 0 && !(*jpeg = malloc((size_t)pkt->size)))
        rc = ERR_NOMEM;
    if (rc == 0) {
        memcpy(*jpeg, pkt->data, (size_t)pkt->size);
        *len = (size_t)pkt->size;
    }
    av_frame_free(&in);
    av_packet_free(&pkt);
    avcodec_free_context(&c);
    return rc ? err_set(em, rc, "snapshot: %s",
                        rc == ERR_NOMEM ? "out of memory" : "the JPEG encoder failed")
              : 0;
}

/* The label goes on a private copy: the frame itself is shared with other requests. */
static int draw_label(AVFrame *f, const char *label)
{
    if (av_frame_make_writable(f) < 0)
        return ERR_NOMEM;
    int scale = f->height >= 720 ? 4 : f->height >= 360 ? 2 : 1;
    daemon_snapshot_draw_text(f->data[0], f->linesize[0], f->width, f->height, 4 * scale,
                              4 * scale, scale, label);
    return 0;
}

int daemon_snapshots_jpeg(struct daemon_snapshots *s, const char *id, bool label,
                          unsigned char **jpeg, size_t *len, struct err_msg *em)
{
    AVFrame *f = av_frame_alloc();
    if (!f)
        return err_set(em, ERR_NOMEM, "snapshot: out of memory");
    char text[DAEMON_ACTION_SIZE + 16] = "";
    int rc = take_frame(s, id, f, text, sizeof text);
    if (rc == ERR_NOTFOUND)
        err_set(em, rc, "no frame from stream %s yet", id);
    else if (rc)
        err_set(em, rc, "snapshot: out of memory");
    if (rc == 0 && label && draw_label(f, text[0] ? text : "-") != 0)
        rc = err_set(em, ERR_NOMEM, "snapshot: out of memory");
    if (rc == 0)
        rc = encode(f, jpeg, len, em);
    av_frame_free(&f);
    return rc;
}
