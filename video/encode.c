/* encode.c — the H.264 MP4 writer (libx264 through libavcodec, muxed by libavformat), set up
 * the way cameras encode: main profile, no B-frames, a fixed GOP with no scene-cut I-frames. */
#include "video/video.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct video_writer {
    AVFormatContext *fc;
    AVCodecContext *cc;
    AVStream *st;
    AVFrame *frame;
    AVPacket *pkt;
    int64_t next_pts;
    char *path;
};

void video_log_setup(enum log_level level)
{
    av_log_set_level(level >= LOG_LVL_DEBUG ? AV_LOG_INFO : AV_LOG_QUIET);
}

static int av_fail(struct err_msg *em, int code, const char *path, const char *what, int averr)
{
    char buf[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(averr, buf, sizeof buf);
    return err_set(em, code, "%s: %s: %s", path, what, buf);
}

static int writer_opts_check(const struct video_writer_opts *o, const char *path, struct err_msg *em)
{
    if (o->width < VIDEO_MIN_SIDE || o->width > VIDEO_MAX_WIDTH || (o->width & 1) ||
        o->height < VIDEO_MIN_SIDE || o->height > VIDEO_MAX_HEIGHT || (o->height & 1))
        return err_set(em, ERR_RANGE, "%s: frame size %dx%d not even or outside %dx%d..%dx%d", path,
                       o->width, o->height, VIDEO_MIN_SIDE, VIDEO_MIN_SIDE, VIDEO_MAX_WIDTH,
                       VIDEO_MAX_HEIGHT);
    if (o->fps < 1 || o->fps > VIDEO_MAX_FPS)
        return err_set(em, ERR_RANGE, "%s: fps %d outside 1..%d", path, o->fps, VIDEO_MAX_FPS);
    if (o->gop < 0 || o->gop > 10 * VIDEO_MAX_FPS || o->crf < 0 || o->crf > 51)
        return err_set(em, ERR_RANGE, "%s: gop %d or crf %d out of range", path, o->gop, o->crf);
    return 0;
}

static int encoder_open(struct video_writer *w, const struct video_writer_opts *o, struct err_msg *em)
{
    const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
    if (!codec)
        return err_set(em, ERR_UNSUPPORTED, "%s: libavcodec has no libx264 encoder", w->path);
    AVCodecContext *cc = w->cc = avcodec_alloc_context3(codec);
    if (!cc)
        return err_set(em, ERR_NOMEM, "%s: out of memory", w->path);
    cc->width = o->width;
    cc->height = o->height;
    cc->pix_fmt = AV_PIX_FMT_YUV420P;
    cc->time_base = (AVRational){1, o->fps};
    cc->framerate = (AVRational){o->fps, 1};
    cc->gop_size = o->gop ? o->gop : 2 * o->fps;
    cc->keyint_min = cc->gop_size;
    cc->max_b_frames = 0;
    /* One thread per encoder: x264's output then depends on nothing but its input. */
    cc->thread_count = 1;
    cc->color_range = AVCOL_RANGE_MPEG;
    cc->colorspace = AVCOL_SPC_SMPTE170M;
    cc->color_primaries = AVCOL_PRI_SMPTE170M;
    cc->color_trc = AVCOL_TRC_SMPTE170M;
    if (w->fc->oformat->flags & AVFMT_GLOBALHEADER)
        cc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    av_opt_set(cc->priv_data, "preset", "veryfast", 0);
    av_opt_set(cc->priv_data, "profile", "main", 0);
    /* cpu-independent: without it some of x264's SIMD paths (seen with AVX-512) let heap
     * contents reach the last macroblock, and the same frames encoded to different bytes. */
    av_opt_set(cc->priv_data, "x264-params", "scenecut=0:cpu-independent=1", 0);
    av_opt_set_double(cc->priv_data, "crf", o->crf ? o->crf : 23, 0);
    int rc = avcodec_open2(cc, codec, NULL);
    if (rc < 0)
        return av_fail(em, ERR_UNSUPPORTED, w->path, "cannot open libx264", rc);
    return 0;
}

static int stream_setup(struct video_writer *w, struct err_msg *em)
{
    w->st = avformat_new_stream(w->fc, NULL);
    if (!w->st)
        return err_set(em, ERR_NOMEM, "%s: out of memory", w->path);
    int rc = avcodec_parameters_from_context(w->st->codecpar, w->cc);
    if (rc < 0)
        return av_fail(em, ERR_IO, w->path, "codec parameters", rc);
    w->st->time_base = w->cc->time_base;
    w->st->avg_frame_rate = w->cc->framerate;
    w->frame = av_frame_alloc();
    w->pkt = av_packet_alloc();
    if (!w->frame || !w->pkt)
        return err_set(em, ERR_NOMEM, "%s: out of memory", w->path);
    w->frame->width = w->cc->width;
    w->frame->height = w->cc->height;
    w->frame->format = AV_PIX_FMT_YUV420P;
    w->frame->color_range = AVCOL_RANGE_MPEG;
    if (av_frame_get_buffer(w->frame, 0) < 0)
        return err_set(em, ERR_NOMEM, "%s: out of memory", w->path);
    /* Padding bytes are never encoded, but zeroed they can never make two runs differ. */
    for (int i = 0; i < AV_NUM_DATA_POINTERS && w->frame->buf[i]; i++)
        memset(w->frame->buf[i]->data, 0, w->frame->buf[i]->size);
    return 0;
}

static const char *container_for(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot && strcmp(dot, ".ts") == 0)
        return "mpegts";
    if (dot && strcmp(dot, ".mkv") == 0)
        return "matroska";
    return "mp4";
}

static int writer_start(struct video_writer *w, const struct video_writer_opts *o, struct err_msg *em)
{
    int rc = avformat_alloc_output_context2(&w->fc, NULL, container_for(w->path), w->path);
    if (rc < 0 || !w->fc)
        return av_fail(em, ERR_UNSUPPORTED, w->path, "no muxer", rc);
    /* No library version strings in the file: the same input gives the same bytes. */
    w->fc->flags |= AVFMT_FLAG_BITEXACT;
    if ((rc = encoder_open(w, o, em)) < 0 || (rc = stream_setup(w, em)) < 0)
        return rc;
    rc = avio_open(&w->fc->pb, w->path, AVIO_FLAG_WRITE);
    if (rc < 0)
        return av_fail(em, ERR_IO, w->path, "cannot create", rc);
    rc = avformat_write_header(w->fc, NULL);
    if (rc < 0)
        return av_fail(em, ERR_IO, w->path, "cannot write MP4 header", rc);
    return 0;
}

int video_writer_open(const char *path, const struct video_writer_opts *o, struct video_writer **out,
                      struct err_msg *em)
{
    int rc = writer_opts_check(o, path, em);
    if (rc < 0)
        return rc;
    struct video_writer *w = calloc(1, sizeof *w);
    if (!w)
        return err_set(em, ERR_NOMEM, "%s: out of memory", path);
    w->path = strdup(path);
    rc = w->path ? writer_start(w, o, em) : err_set(em, ERR_NOMEM, "%s: out of memory", path);
    if (rc < 0) {
        video_writer_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

/* Moves every packet the encoder has ready into the file. */
static int drain(struct video_writer *w, struct err_msg *em)
{
    for (;;) {
        int rc = avcodec_receive_packet(w->cc, w->pkt);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            return 0;
        if (rc < 0)
            return av_fail(em, ERR_IO, w->path, "encoding failed", rc);
        av_packet_rescale_ts(w->pkt, w->cc->time_base, w->st->time_base);
        w->pkt->stream_index = w->st->index;
        rc = av_interleaved_write_frame(w->fc, w->pkt);
        if (rc < 0)
            return av_fail(em, ERR_IO, w->path, "write failed", rc);
    }
}

int video_writer_write(struct video_writer *w, const uint8_t *const planes[3], const int strides[3],
                       struct err_msg *em)
{
    int rc = av_frame_make_writable(w->frame);
    if (rc < 0)
        return av_fail(em, ERR_NOMEM, w->path, "frame buffer", rc);
    for (int p = 0; p < 3; p++) {
        int pw = p ? w->cc->width / 2 : w->cc->width, ph = p ? w->cc->height / 2 : w->cc->height;
        for (int y = 0; y < ph; y++)
            memcpy(w->frame->data[p] + (size_t)y * (size_t)w->frame->linesize[p],
                   planes[p] + (size_t)y * (size_t)strides[p], (size_t)pw);
    }
    w->frame->pts = w->next_pts++;
    rc = avcodec_send_frame(w->cc, w->frame);
    if (rc < 0)
        return av_fail(em, ERR_IO, w->path, "encoding failed", rc);
    return drain(w, em);
}

int video_writer_finish(struct video_writer *w, struct err_msg *em)
{
    int rc = avcodec_send_frame(w->cc, NULL);
    if (rc < 0 && rc != AVERROR_EOF)
        return av_fail(em, ERR_IO, w->path, "flushing the encoder", rc);
    if ((rc = drain(w, em)) < 0)
        return rc;
    rc = av_write_trailer(w->fc);
    if (rc < 0)
        return av_fail(em, ERR_IO, w->path, "cannot write MP4 index", rc);
    rc = avio_closep(&w->fc->pb);
    if (rc < 0)
        return av_fail(em, ERR_IO, w->path, "close failed", rc);
    return 0;
}

void video_writer_free(struct video_writer *w)
{
    if (!w)
        return;
    if (w->fc && w->fc->pb)
        avio_closep(&w->fc->pb);
    avformat_free_context(w->fc);
    avcodec_free_context(&w->cc);
    av_frame_free(&w->frame);
    av_packet_free(&w->pkt);
    free(w->path);
    free(w);
}
