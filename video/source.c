/* source.c — a video source: libavformat demuxing with an interrupt callback for timeouts and
 * stalls, libavcodec send/receive decoding, corrupt packets skipped and counted. */
#include "video/video.h"

#include <dlfcn.h>
#include <errno.h>
#include <libavcodec/avcodec.h>
#include <libavdevice/version.h>
#include <libavformat/avformat.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How much of a network stream libavformat may read to learn its parameters. */
#define NET_ANALYZE_US 1000000

struct video_source {
    AVFormatContext *fc;
    AVCodecContext *cc;
    AVStream *st;
    AVPacket *pkt;
    AVFrame *frame;
    int vidx;
    int draining;
    int corrupt_run;
    int64_t start_ts;          /* stream timestamp of time zero */
    int64_t last_pts_us;
    uint64_t deadline_ns;      /* the interrupt callback fires after this (0 = never) */
    uint64_t wait_from_ns;     /* the stall clock: the last frame, or the read that began later */
    int open_timeout_ms, stall_timeout_ms;
    const atomic_int *stop;
    struct video_source_stats stats;
    char *url;
};

void video_source_opts_default(struct video_source_opts *o)
{
    *o = (struct video_source_opts){.threads = 1, .open_timeout_ms = VIDEO_DEFAULT_TIMEOUT_MS,
                                    .stall_timeout_ms = VIDEO_DEFAULT_TIMEOUT_MS};
}

static int interrupt_due(const struct video_source *s)
{
    if (s->stop && atomic_load(s->stop))
        return 1;
    return s->deadline_ns && clock_mono_ns() > s->deadline_ns;
}

/* libavformat polls this during every blocking read or connect. Demuxers pass the interruption
 * on in their own words (RTSP as bad data, MPEG-TS as the end), so callers ask interrupt_due()
 * again when a call fails. */
static int interrupt_cb(void *opaque)
{
    return interrupt_due(opaque);
}

static void set_deadline(struct video_source *s, uint64_t from_ns, int ms)
{
    s->deadline_ns = from_ns + (uint64_t)ms * 1000000ull;
}

static const char *av_text(int averr, char *buf, size_t cap)
{
    av_strerror(averr, buf, cap);
    return buf;
}

/* Why a blocking call came back early: the stop flag, or the deadline. */
static int interrupted(struct video_source *s, int timeout_code, const char *what, struct err_msg *em)
{
    if (s->stop && atomic_load(s->stop))
        return err_set(em, ERR_EOF, "%s: stopped", s->url);
    return err_set(em, timeout_code, "%s: %s", s->url, what);
}

/* libavdevice brings libavfilter and all it links (speech synthesis, SVG, ...) into the
 * process: some 19 MB of resident memory that a board watching only network cameras never
 * uses. So it is not linked, but loaded when the first device source opens; its register
 * call hands the devices to libavformat, where av_find_input_format finds them. */
#define AVDEVICE_SONAME "libavdevice.so." AV_STRINGIFY(LIBAVDEVICE_VERSION_MAJOR)

static char devices_error[160];

static void register_devices(void)
{
    void *lib = dlopen(AVDEVICE_SONAME, RTLD_NOW | RTLD_LOCAL);
    void (*reg)(void) = NULL;
    if (lib)
        *(void **)&reg = dlsym(lib, "avdevice_register_all");
    const char *why = reg ? NULL : dlerror();
    if (reg)
        reg();
    else
        snprintf(devices_error, sizeof devices_error, "%s", why ? why : AVDEVICE_SONAME);
}

/* Demuxer options for the kind of source: RTSP transport, device size and rate. Our interrupt
 * callback bounds every network wait; a protocol's own timeout (rw_timeout) would fire first and
 * reach us disguised as the end of the stream, so only RTSP's socket timeout is set, at twice
 * ours, as a backstop for calls that do not poll the callback. */
static int demuxer_options(const struct video_source *s, const struct video_source_opts *o,
                           AVDictionary **d)
{
    int rc = 0;
    if (strncmp(s->url, "rtsp://", 7) == 0 || strncmp(s->url, "rtsps://", 8) == 0) {
        int ms = s->open_timeout_ms > s->stall_timeout_ms ? s->open_timeout_ms : s->stall_timeout_ms;
        rc |= av_dict_set(d, "rtsp_transport", o->rtsp_transport ? o->rtsp_transport : "tcp", 0);
        rc |= av_dict_set_int(d, "timeout", (int64_t)ms * 2000, 0);
    }
    if (o->video_size)
        rc |= av_dict_set(d, "video_size", o->video_size, 0);
    if (o->framerate > 0)
        rc |= av_dict_set_int(d, "framerate", o->framerate, 0);
    return rc < 0 ? ERR_NOMEM : 0;
}

/* The demuxer a source names, or that its path implies (a V4L2 camera); NULL: probe. */
static const char *input_format_name(const char *url, const struct video_source_opts *o)
{
    if (o->input_format)
        return o->input_format;
    return strncmp(url, "/dev/video", 10) == 0 ? "v4l2" : NULL;
}

static const AVInputFormat *input_format_for(const char *name)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_devices);
    return av_find_input_format(name);
}

static int open_input(struct video_source *s, const struct video_source_opts *o, struct err_msg *em)
{
    s->fc = avformat_alloc_context();
    if (!s->fc)
        return err_set(em, ERR_NOMEM, "%s: out of memory", s->url);
    s->fc->interrupt_callback = (AVIOInterruptCB){interrupt_cb, s};
    const char *fmt_name = input_format_name(s->url, o);
    const AVInputFormat *fmt = fmt_name ? input_format_for(fmt_name) : NULL;
    if (fmt_name && !fmt)
        return err_set(em, ERR_UNSUPPORTED, "%s: no input format '%s'%s%s", s->url, fmt_name,
                       devices_error[0] ? "; cameras need " : "", devices_error);
    AVDictionary *opts = NULL;
    if (demuxer_options(s, o, &opts) < 0) {
        av_dict_free(&opts);
        return err_set(em, ERR_NOMEM, "%s: out of memory", s->url);
    }
    set_deadline(s, clock_mono_ns(), s->open_timeout_ms);
    int rc = avformat_open_input(&s->fc, s->url, fmt, &opts);
    av_dict_free(&opts);
    char b[AV_ERROR_MAX_STRING_SIZE];
    if (rc == AVERROR_EXIT || (rc < 0 && interrupt_due(s)))
        return interrupted(s, ERR_TIMEOUT, "no answer while opening", em);
    if (rc == AVERROR(ENOENT))
        return err_set(em, ERR_NOTFOUND, "%s: no such file", s->url);
    /* A local file that exists and will not open is not a video FFmpeg can read, whatever
     * errno the probing demuxer chose; for a network URL the errno (refused, unreachable)
     * is the news. */
    int local = !strstr(s->url, "://");
    if (rc < 0 && local && rc != AVERROR(EACCES))
        return err_set(em, ERR_FORMAT, "%s: not a video file FFmpeg can read (%s)", s->url,
                       av_text(rc, b, sizeof b));
    if (rc < 0)
        return err_set(em, rc == AVERROR_INVALIDDATA ? ERR_FORMAT : ERR_IO, "%s: cannot open: %s",
                       s->url, av_text(rc, b, sizeof b));
    /* A live stream has no end to read to: one second of it tells the codec and the rate, and
     * the default five would delay every (re)connect. */
    if (!local)
        s->fc->max_analyze_duration = NET_ANALYZE_US;
    rc = avformat_find_stream_info(s->fc, NULL);
    if (rc == AVERROR_EXIT || (rc < 0 && interrupt_due(s)))
        return interrupted(s, ERR_TIMEOUT, "no answer while probing", em);
    if (rc < 0)
        return err_set(em, ERR_FORMAT, "%s: cannot read stream info: %s", s->url,
                       av_text(rc, b, sizeof b));
    return 0;
}

static int find_video(struct video_source *s, struct err_msg *em)
{
    int idx = av_find_best_stream(s->fc, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    if (idx < 0)
        return err_set(em, ERR_UNSUPPORTED, "%s: no video stream", s->url);
    s->vidx = idx;
    s->st = s->fc->streams[idx];
    const AVCodecParameters *p = s->st->codecpar;
    if (p->width < 1 || p->height < 1 || p->width > 8192 || p->height > 8192)
        return err_set(em, ERR_UNSUPPORTED, "%s: frame size %dx%d not supported", s->url, p->width,
                       p->height);
    s->start_ts = s->st->start_time;
    return 0;
}

static int decoder_try(struct video_source *s, const AVCodec *dec, const struct video_source_opts *o)
{
    AVCodecContext *cc = avcodec_alloc_context3(dec);
    if (!cc)
        return ERR_NOMEM;
    int rc = avcodec_parameters_to_context(cc, s->st->codecpar);
    if (rc >= 0) {
        cc->thread_count = o->threads;
        cc->pkt_timebase = s->st->time_base;
        if (o->export_mvs)
            cc->export_side_data |= AV_CODEC_EXPORT_DATA_MVS;
        rc = avcodec_open2(cc, dec, NULL);
    }
    if (rc < 0) {
        avcodec_free_context(&cc);
        return rc;
    }
    s->cc = cc;
    return 0;
}

/* A named hardware decoder first; when it is missing or will not open, software, with a warning
 * (a Pi without its V4L2 codec device still works, only slower). */
static int open_decoder(struct video_source *s, const struct video_source_opts *o, struct err_msg *em)
{
    enum AVCodecID id = s->st->codecpar->codec_id;
    if (o->hw_decoder && *o->hw_decoder) {
        const AVCodec *hw = avcodec_find_decoder_by_name(o->hw_decoder);
        if (!hw || hw->id != id)
            log_warn("%s: decoder %s %s; decoding in software", s->url, o->hw_decoder,
                     hw ? "is for another codec" : "is not available");
        else if (decoder_try(s, hw, o) < 0)
            log_warn("%s: decoder %s would not open; decoding in software", s->url, o->hw_decoder);
        if (s->cc)
            return 0;
    }
    const AVCodec *dec = avcodec_find_decoder(id);
    if (!dec)
        return err_set(em, ERR_UNSUPPORTED, "%s: no decoder for codec '%s' (tag '%s')", s->url,
                       avcodec_get_name(id), av_fourcc2str(s->st->codecpar->codec_tag));
    int rc = decoder_try(s, dec, o);
    char b[AV_ERROR_MAX_STRING_SIZE];
    if (rc < 0)
        return err_set(em, ERR_UNSUPPORTED, "%s: cannot open decoder %s: %s", s->url, dec->name,
                       av_text(rc, b, sizeof b));
    return 0;
}

static int source_opts_check(const char *url, const struct video_source_opts *o, struct err_msg *em)
{
    if (!url || !*url)
        return err_set(em, ERR_INVAL, "empty source name");
    if (o->threads < 1 || o->threads > VIDEO_MAX_DECODER_THREADS)
        return err_set(em, ERR_RANGE, "%s: decoder threads %d outside 1..%d", url, o->threads,
                       VIDEO_MAX_DECODER_THREADS);
    if (o->open_timeout_ms < 1 || o->stall_timeout_ms < 1)
        return err_set(em, ERR_RANGE, "%s: timeouts must be positive", url);
    if (o->rtsp_transport && strcmp(o->rtsp_transport, "tcp") && strcmp(o->rtsp_transport, "udp"))
        return err_set(em, ERR_INVAL, "%s: rtsp transport '%s' is neither tcp nor udp", url,
                       o->rtsp_transport);
    if (o->framerate < 0 || o->framerate > VIDEO_MAX_FPS)
        return err_set(em, ERR_RANGE, "%s: framerate %d outside 0..%d", url, o->framerate,
                       VIDEO_MAX_FPS);
    return 0;
}

int video_source_open(const char *url, const struct video_source_opts *o, struct video_source **out,
                      struct err_msg *em)
{
    int rc = source_opts_check(url, o, em);
    if (rc < 0)
        return rc;
    struct video_source *s = calloc(1, sizeof *s);
    if (!s || !(s->url = strdup(url))) {
        free(s);
        return err_set(em, ERR_NOMEM, "%s: out of memory", url);
    }
    s->open_timeout_ms = o->open_timeout_ms;
    s->stall_timeout_ms = o->stall_timeout_ms;
    s->stop = o->stop;
    s->pkt = av_packet_alloc();
    s->frame = av_frame_alloc();
    if (!s->pkt || !s->frame)
        rc = err_set(em, ERR_NOMEM, "%s: out of memory", url);
    if (rc == 0 && (rc = open_input(s, o, em)) == 0 && (rc = find_video(s, em)) == 0)
        rc = open_decoder(s, o, em);
    if (rc < 0) {
        video_source_close(s);
        return rc;
    }
    s->deadline_ns = 0;
    s->wait_from_ns = clock_mono_ns();
    *out = s;
    return 0;
}

void video_source_close(struct video_source *s)
{
    if (!s)
        return;
    avcodec_free_context(&s->cc);
    avformat_close_input(&s->fc);
    av_packet_free(&s->pkt);
    av_frame_free(&s->frame);
    free(s->url);
    free(s);
}

static void frame_export(struct video_source *s, struct video_frame *f)
{
    AVFrame *fr = s->frame;
    int64_t ts = fr->best_effort_timestamp;
    if (ts == AV_NOPTS_VALUE) {
        /* No timestamp: one nominal frame after the last, at the stream's stated rate. */
        AVRational r = s->st->avg_frame_rate;
        s->last_pts_us += r.num > 0 && r.den > 0 ? av_rescale(1000000, r.den, r.num) : 40000;
    } else {
        if (s->start_ts == AV_NOPTS_VALUE)
            s->start_ts = ts;
        s->last_pts_us = av_rescale_q(ts - s->start_ts, s->st->time_base, AV_TIME_BASE_Q);
    }
    *f = (struct video_frame){.width = fr->width, .height = fr->height, .format = fr->format,
                              .pts_us = s->last_pts_us, .key = fr->key_frame, .av = fr};
    for (int i = 0; i < 4; i++) {
        f->data[i] = fr->data[i];
        f->linesize[i] = fr->linesize[i];
    }
}

/* A packet the decoder refused or the demuxer flagged: skip it, unless they keep coming. */
static int packet_corrupt(struct video_source *s, struct err_msg *em)
{
    s->stats.corrupt++;
    if (++s->corrupt_run >= VIDEO_MAX_CORRUPT_RUN)
        return err_set(em, ERR_FORMAT, "%s: %d undecodable packets in a row", s->url, s->corrupt_run);
    return 0;
}

/* Reads the next video packet and sends it to the decoder (or starts draining at the end). */
static int feed(struct video_source *s, struct err_msg *em)
{
    char b[AV_ERROR_MAX_STRING_SIZE];
    set_deadline(s, s->wait_from_ns, s->stall_timeout_ms);
    av_packet_unref(s->pkt);
    int rc = av_read_frame(s->fc, s->pkt);
    if (rc == AVERROR_EXIT || (rc < 0 && interrupt_due(s)))
        return interrupted(s, ERR_STALL, "no frame within the stall timeout", em);
    if (rc == AVERROR_EOF || (rc < 0 && avio_feof(s->fc->pb))) {
        s->draining = 1;
        avcodec_send_packet(s->cc, NULL);
        return 0;
    }
    if (rc < 0)
        return err_set(em, ERR_IO, "%s: read failed: %s", s->url, av_text(rc, b, sizeof b));
    if (s->pkt->stream_index != s->vidx)
        return 0;
    s->stats.packets++;
    if (s->pkt->flags & AV_PKT_FLAG_CORRUPT)
        return packet_corrupt(s, em);
    rc = avcodec_send_packet(s->cc, s->pkt);
    if (rc < 0 && rc != AVERROR(EAGAIN))
        return packet_corrupt(s, em);
    return 0;
}

int video_source_read(struct video_source *s, struct video_frame *f, struct err_msg *em)
{
    char b[AV_ERROR_MAX_STRING_SIZE];
    /* Only time spent waiting here counts: a caller that runs a model between reads (infer, eval
     * on a slow board or under emulation) may take longer than the timeout on one clip. */
    s->wait_from_ns = clock_mono_ns();
    for (;;) {
        int rc = avcodec_receive_frame(s->cc, s->frame);
        if (rc == 0) {
            s->corrupt_run = 0;
            s->wait_from_ns = clock_mono_ns();
            s->stats.frames++;
            if (s->frame->decode_error_flags || (s->frame->flags & AV_FRAME_FLAG_CORRUPT))
                s->stats.damaged++;
            frame_export(s, f);
            return 0;
        }
        if (rc == AVERROR_EOF)
            return err_set(em, ERR_EOF, "%s: end of stream", s->url);
        if (rc != AVERROR(EAGAIN)) {
            if (s->draining)
                return err_set(em, ERR_FORMAT, "%s: decoding failed: %s", s->url,
                               av_text(rc, b, sizeof b));
            if ((rc = packet_corrupt(s, em)) < 0)
                return rc;
            continue;
        }
        if (s->draining)
            return err_set(em, ERR_EOF, "%s: end of stream", s->url);
        if (clock_mono_ns() - s->wait_from_ns > (uint64_t)s->stall_timeout_ms * 1000000ull)
            return err_set(em, ERR_STALL, "%s: no frame within the stall timeout", s->url);
        if ((rc = feed(s, em)) < 0)
            return rc;
    }
}

void video_source_info(const struct video_source *s, struct video_source_info *info)
{
    *info = (struct video_source_info){.width = s->cc->width, .height = s->cc->height};
    AVRational r = s->st->avg_frame_rate;
    if (r.num > 0 && r.den > 0)
        info->fps = av_q2d(r);
    if (s->fc->duration > 0)
        info->duration_s = (double)s->fc->duration / AV_TIME_BASE;
    snprintf(info->codec, sizeof info->codec, "%s", avcodec_get_name(s->st->codecpar->codec_id));
    snprintf(info->decoder, sizeof info->decoder, "%s", s->cc->codec->name);
}

void video_source_stats(const struct video_source *s, struct video_source_stats *st)
{
    *st = s->stats;
}
