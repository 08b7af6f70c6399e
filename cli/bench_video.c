/* bench_video.c — `actiond bench --video FILE`: the input pipeline's throughput on one thread,
 * decode + sample + motion (mv, diff or flow) for every sample, as bench/video.sh times it. */
#include "cli/cli.h"
#include "common/common.h"
#include "video/video.h"

#include <jansson.h>
#include <stdio.h>

/* Samples kept: a clip of one step needs the newest two; a few more cost nothing. */
#define BENCH_VIDEO_RING 4

struct video_times {
    uint64_t decode_ns, sample_ns, clip_ns;
    int64_t frames, samples, clips;
    double wall_s;
};

/* Every sample after the first becomes a one-segment, one-step clip (its RGB planes and the
 * motion from the previous sample), as the daemon's windows would read it. */
static int bench_loop(struct video_source *src, struct video_sampler *sm, struct video_clip *c,
                      struct video_times *t, struct err_msg *em)
{
    struct video_frame f;
    for (;;) {
        uint64_t t0 = clock_mono_ns();
        int rc = video_source_read(src, &f, em);
        uint64_t t1 = clock_mono_ns();
        t->decode_ns += t1 - t0;
        if (rc == ERR_EOF)
            return 0;
        if (rc < 0)
            return rc;
        t->frames++;
        rc = video_sampler_push(sm, &f, em);
        uint64_t t2 = clock_mono_ns();
        t->sample_ns += t2 - t1;
        if (rc < 0)
            return rc;
        int64_t n = video_sampler_count(sm);
        if (rc == 0 || n < 2)
            continue;
        if ((rc = video_clip_fill(c, sm, n - 2, 2, NULL, em)) < 0)
            return rc;
        t->clip_ns += clock_mono_ns() - t2;
        t->clips++;
    }
}

static void print_times(const struct cli_bench_video_opts *o, const struct video_source_info *info,
                        double fps, const struct video_times *t)
{
    double per_frame = 1e-6 / (double)(t->frames ? t->frames : 1);
    double decode_ms = (double)t->decode_ns * per_frame, sample_ms = (double)t->sample_ns * per_frame;
    double clip_ms = (double)t->clip_ns * per_frame, rate = (double)t->frames / t->wall_s;
    if (!o->json) {
        printf("%s %dx%d -> %s %dx%d at %g fps: %lld frames in %.3f s = %.1f frames/s, 1 thread\n",
               info->codec, info->width, info->height, video_motion_name(o->motion), o->width,
               o->height, fps, (long long)t->frames, t->wall_s, rate);
        printf("per decoded frame: decode %.3f ms, sample %.3f ms, clip %.3f ms\n", decode_ms,
               sample_ms, clip_ms);
        return;
    }
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:f, s:i, s:I, s:I, s:I, s:f, "
                          "s:f, s:f, s:f, s:f}",
                          "video", o->path, "motion", video_motion_name(o->motion), "codec",
                          info->codec, "decoder", info->decoder, "source_width", info->width,
                          "source_height", info->height, "width", o->width, "height", o->height,
                          "sample_fps", fps, "threads", 1, "frames", (json_int_t)t->frames,
                          "samples", (json_int_t)t->samples, "clips", (json_int_t)t->clips,
                          "seconds", t->wall_s, "frames_per_s", rate, "decode_ms", decode_ms,
                          "sample_ms", sample_ms, "clip_ms", clip_ms);
    json_dumpf(j, stdout, JSON_COMPACT);
    putchar('\n');
    json_decref(j);
}

/* The sampling rate: as asked, else the file's own (every frame sampled, the most motion work). */
static double sample_fps(const struct cli_bench_video_opts *o, const struct video_source_info *info)
{
    if (o->fps > 0)
        return o->fps;
    if (info->fps > 0 && info->fps <= VIDEO_MAX_FPS)
        return info->fps;
    return 25.0;
}

int cli_bench_video(const struct cli_bench_video_opts *o)
{
    struct err_msg em = {{0}};
    struct video_source_opts so;
    video_source_opts_default(&so);
    so.export_mvs = o->motion == VIDEO_MOTION_MV;
    struct video_source *src = NULL;
    struct video_sampler *sm = NULL;
    struct video_clip *c = NULL;
    struct video_times t = {0};
    struct video_source_info info;
    double fps = 0;
    uint64_t start = clock_mono_ns();
    int rc = video_source_open(o->path, &so, &src, &em);
    if (rc == 0) {
        video_source_info(src, &info);
        fps = sample_fps(o, &info);
        struct video_sampler_opts sam = {.width = o->width, .height = o->height, .fps = fps,
                                         .capacity = BENCH_VIDEO_RING, .std = {1, 1, 1},
                                         .motion_mv = o->motion == VIDEO_MOTION_MV,
                                         .motion_flow = o->motion == VIDEO_MOTION_FLOW};
        rc = video_sampler_new(&sam, &sm, &em);
    }
    struct video_clip_opts co = {.segments = 1, .length = 1, .motion = o->motion};
    if (rc == 0)
        rc = video_clip_new(&co, o->width, o->height, &c, &em);
    if (rc == 0)
        rc = bench_loop(src, sm, c, &t, &em);
    t.wall_s = clock_elapsed_s(start, clock_mono_ns());
    t.samples = sm ? video_sampler_count(sm) : 0;
    if (rc == 0 && t.frames == 0)
        rc = err_set(&em, ERR_FORMAT, "%s: no frames decoded", o->path);
    if (rc == 0)
        print_times(o, &info, fps, &t);
    else
        fprintf(stderr, "actiond: bench: %s\n", err_text(&em, rc));
    video_clip_free(c);
    video_sampler_free(sm);
    video_source_close(src);
    return rc < 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
