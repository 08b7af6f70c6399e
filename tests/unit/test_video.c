/* test_video.c — unit tests of video/: decoding synth clips, sampling by timestamp, resizing,
 * normalisation, diff motion, clip assembly, and bad input that must fail cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "video/video.h"

#include <arpa/inet.h>
#include <libavutil/pixfmt.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Small clips, written once for the suite by the synth API. */
struct fixture {
    char dir[64];
    char walk[96], still[96], trunc[96], noise[96], empty[96], badcodec[96], damaged[96];
};

static struct fixture fx;

#define CLIP_W 128
#define CLIP_H 96

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", fx.dir, name);
}

static int write_bytes(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(buf, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len);
    if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return buf;
}

/* The walker crosses at exactly this speed: 2 pixels per frame at 25 fps. */
#define WALK_PX_S 50.0f

static int synth_clip(const char *path, int cls, int clean, int dir, double seconds)
{
    struct video_synth_opts o;
    video_synth_opts_default(&o);
    o.width = CLIP_W;
    o.height = CLIP_H;
    o.seconds = seconds;
    struct video_synth_clip c = {.cls = cls, .seed = 11, .direction = dir, .figure_height = 60,
                                 .speed_px_s = WALK_PX_S, .clean = clean};
    struct err_msg em = {{0}};
    int rc = video_synth_clip_write(path, &c, &o, &em);
    if (rc < 0)
        fprintf(stderr, "synth: %s\n", err_text(&em, rc));
    return rc;
}

static int synth_one(const char *path, int cls, int clean)
{
    return synth_clip(path, cls, clean, 1, 1.0);
}

/* The bad files: cut in half (the MP4 index is at the end), random bytes, nothing, the codec's
 * fourcc overwritten, and a good clip with a stretch of its frame data scrambled. */
static int make_bad_files(void)
{
    size_t n;
    unsigned char *mp4 = read_all(fx.walk, &n);
    if (!mp4)
        return -1;
    int rc = write_bytes(fx.trunc, mp4, n / 2);
    unsigned char *junk = malloc(8192);
    uint64_t x = 0x1234567;
    for (size_t i = 0; i < 8192; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        junk[i] = (unsigned char)(x >> 56);
    }
    rc |= write_bytes(fx.noise, junk, 8192);
    rc |= write_bytes(fx.empty, "", 0);
    unsigned char *patched = malloc(n);
    memcpy(patched, mp4, n);
    for (size_t i = 0; i + 4 <= n; i++)
        if (memcmp(patched + i, "avc1", 4) == 0)
            memcpy(patched + i, "zzzz", 4);
    rc |= write_bytes(fx.badcodec, patched, n);
    memcpy(patched, mp4, n);
    /* mdat follows ftyp at the start of a non-faststart MP4: scramble well inside it. */
    for (size_t i = n / 3; i < n / 3 + 600 && i < n; i++)
        patched[i] ^= junk[i % 8192];
    rc |= write_bytes(fx.damaged, patched, n);
    free(patched);
    free(junk);
    free(mp4);
    return rc;
}

static int group_setup(void **state)
{
    (void)state;
    video_log_setup(LOG_LVL_ERROR);
    snprintf(fx.dir, sizeof fx.dir, "/tmp/actiond-video-XXXXXX");
    if (!mkdtemp(fx.dir))
        return -1;
    path_in(fx.walk, sizeof fx.walk, "walk.mp4");
    path_in(fx.still, sizeof fx.still, "still.mp4");
    path_in(fx.trunc, sizeof fx.trunc, "trunc.mp4");
    path_in(fx.noise, sizeof fx.noise, "noise.mp4");
    path_in(fx.empty, sizeof fx.empty, "empty.mp4");
    path_in(fx.badcodec, sizeof fx.badcodec, "badcodec.mp4");
    path_in(fx.damaged, sizeof fx.damaged, "damaged.mp4");
    if (synth_one(fx.walk, VIDEO_SYNTH_WALK, 1) < 0 || synth_one(fx.still, VIDEO_SYNTH_NONE, 1) < 0)
        return -1;
    return make_bad_files();
}

static int group_teardown(void **state)
{
    (void)state;
    const char *files[] = {fx.walk, fx.still, fx.trunc, fx.noise, fx.empty, fx.badcodec, fx.damaged};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(files[i]);
    rmdir(fx.dir);
    return 0;
}

static struct video_source *open_ok(const char *path)
{
    struct video_source_opts o;
    video_source_opts_default(&o);
    struct video_source *s = NULL;
    struct err_msg em = {{0}};
    int rc = video_source_open(path, &o, &s, &em);
    if (rc < 0)
        fail_msg("%s", err_text(&em, rc));
    return s;
}

static struct video_sampler *sampler_make(int w, int h, double fps, int cap)
{
    struct video_sampler_opts o = {.width = w, .height = h, .fps = fps, .capacity = cap,
                                   .mean = {0, 0, 0}, .std = {1, 1, 1}};
    struct video_sampler *s = NULL;
    struct err_msg em = {{0}};
    int rc = video_sampler_new(&o, &s, &em);
    if (rc < 0)
        fail_msg("%s", err_text(&em, rc));
    return s;
}

/* ---- decoding ---- */

static void test_decode_counts_frames_and_timestamps(void **state)
{
    (void)state;
    struct video_source *s = open_ok(fx.walk);
    struct video_source_info info;
    video_source_info(s, &info);
    assert_int_equal(info.width, CLIP_W);
    assert_int_equal(info.height, CLIP_H);
    assert_true(fabs(info.fps - 25.0) < 1e-9);
    assert_string_equal(info.codec, "h264");
    assert_true(fabs(info.duration_s - 1.0) < 0.05);
    struct video_frame f;
    struct err_msg em = {{0}};
    int n = 0, rc;
    while ((rc = video_source_read(s, &f, &em)) == 0) {
        assert_int_equal(f.pts_us, (int64_t)n * 40000);
        assert_int_equal(f.width, CLIP_W);
        if (n == 0)
            assert_true(f.key);
        n++;
    }
    assert_int_equal(rc, ERR_EOF);
    assert_int_equal(n, 25);
    assert_int_equal(video_source_read(s, &f, &em), ERR_EOF);
    struct video_source_stats st;
    video_source_stats(s, &st);
    assert_int_equal(st.frames, 25);
    assert_int_equal(st.corrupt, 0);
    video_source_close(s);
}

static void test_decode_threads_option(void **state)
{
    (void)state;
    struct video_source_opts o;
    video_source_opts_default(&o);
    o.threads = 2;
    struct video_source *s = NULL;
    assert_int_equal(video_source_open(fx.walk, &o, &s, NULL), 0);
    struct video_sampler *sm = sampler_make(32, 24, 25, 64);
    assert_int_equal(video_sampler_read_all(sm, s, NULL), 0);
    assert_int_equal(video_sampler_count(sm), 25);
    video_sampler_free(sm);
    video_source_close(s);
    o.threads = 0;
    assert_int_equal(video_source_open(fx.walk, &o, &s, NULL), ERR_RANGE);
}

static void test_hw_decoder_falls_back_to_software(void **state)
{
    (void)state;
    const char *names[] = {"no_such_decoder", "mpeg4"}; /* missing; present but another codec */
    for (int i = 0; i < 2; i++) {
        struct video_source_opts o;
        video_source_opts_default(&o);
        o.hw_decoder = names[i];
        struct video_source *s = NULL;
        assert_int_equal(video_source_open(fx.walk, &o, &s, NULL), 0);
        struct video_source_info info;
        video_source_info(s, &info);
        assert_string_equal(info.decoder, "h264");
        struct video_frame f;
        assert_int_equal(video_source_read(s, &f, NULL), 0);
        video_source_close(s);
    }
}

/* ---- sampling ---- */

static void test_sampler_25_to_10_fps_by_timestamp(void **state)
{
    (void)state;
    struct video_source *s = open_ok(fx.walk);
    struct video_sampler *sm = sampler_make(32, 24, 10, 64);
    assert_int_equal(video_sampler_read_all(sm, s, NULL), 0);
    /* Sampling times 0, 100, ... 900 ms; the first frame at or after each is taken. */
    const int64_t want_ms[] = {0, 120, 200, 320, 400, 520, 600, 720, 800, 920};
    assert_int_equal(video_sampler_count(sm), 10);
    for (int i = 0; i < 10; i++) {
        int64_t pts;
        assert_non_null(video_sampler_rgb(sm, i, &pts));
        assert_int_equal(pts, want_ms[i] * 1000);
    }
    video_sampler_free(sm);
    video_source_close(s);
}

/* A hand-made yuv420p frame: luma from a function of (x, y), chroma constant. */
struct yuv_frame {
    uint8_t y[64 * 48], u[32 * 24], v[32 * 24];
    struct video_frame f;
};

static void yuv_make(struct yuv_frame *yf, int (*luma)(int x, int y), int u, int v, int64_t pts_us)
{
    for (int y = 0; y < 48; y++)
        for (int x = 0; x < 64; x++)
            yf->y[y * 64 + x] = (uint8_t)luma(x, y);
    memset(yf->u, u, sizeof yf->u);
    memset(yf->v, v, sizeof yf->v);
    yf->f = (struct video_frame){.width = 64, .height = 48, .format = AV_PIX_FMT_YUV420P,
                                 .data = {yf->y, yf->u, yf->v}, .linesize = {64, 32, 32},
                                 .pts_us = pts_us};
}

static int luma_flat(int x, int y)
{
    (void)x;
    (void)y;
    return 128;
}

static void test_sampler_follows_timestamps_not_counts(void **state)
{
    (void)state;
    struct video_sampler *sm = sampler_make(32, 24, 10, 16);
    static struct yuv_frame yf;
    /* 25 fps with a gap: 0 40 80 120 | 500 540 580 620. Times 0, 100 (-> 120), then 200, 300,
     * 400 are missed and 500 takes one sample, not four; 600 -> 620. */
    const int64_t pts_ms[] = {0, 40, 80, 120, 500, 540, 580, 620};
    const int taken_want[] = {1, 0, 0, 1, 1, 0, 0, 1};
    for (int i = 0; i < 8; i++) {
        yuv_make(&yf, luma_flat, 128, 128, pts_ms[i] * 1000);
        assert_int_equal(video_sampler_push(sm, &yf.f, NULL), taken_want[i]);
    }
    assert_int_equal(video_sampler_count(sm), 4);
    /* A frame 0.5 ms early still counts as on time (container rounding). */
    video_sampler_reset(sm);
    yuv_make(&yf, luma_flat, 128, 128, 0);
    assert_int_equal(video_sampler_push(sm, &yf.f, NULL), 1);
    yuv_make(&yf, luma_flat, 128, 128, 99500);
    assert_int_equal(video_sampler_push(sm, &yf.f, NULL), 1);
    yuv_make(&yf, luma_flat, 128, 128, 100000);
    assert_int_equal(video_sampler_push(sm, &yf.f, NULL), 0);
    video_sampler_free(sm);
}

/* 2x2 blocks of one grey each, stepping evenly: halving the size must give each block's grey,
 * since a symmetric filter weighs the darker and the brighter neighbour alike. */
static int luma_blocks(int x, int y)
{
    return 16 + (x / 2) * 4 + (y / 2) * 3;
}

static int luma_ramp(int x, int y)
{
    (void)y;
    return 20 + 3 * x;
}

static int grey_of(int luma)
{
    return (int)lround((luma - 16) * 255.0 / 219.0);
}

/* libswscale's aarch64 code converts to RGB one level below its x86-64 code (measured under
 * qemu: every value of the ramp below); the bounds allow that much more there. */
#if defined(__aarch64__)
#define SWS_ARCH_SLACK 1
#else
#define SWS_ARCH_SLACK 0
#endif

static void test_resize_known_pattern(void **state)
{
    (void)state;
    static struct yuv_frame yf;
    yuv_make(&yf, luma_blocks, 128, 128, 0);
    struct video_sampler *sm = sampler_make(32, 24, 10, 4);
    assert_int_equal(video_sampler_push(sm, &yf.f, NULL), 1);
    const uint8_t *rgb = video_sampler_rgb(sm, 0, NULL);
    int worst = 0;
    /* Interior only: the filter at the border reads a replicated edge. */
    for (int y = 1; y < 23; y++)
        for (int x = 1; x < 31; x++)
            for (int c = 0; c < 3; c++) {
                int d = abs(rgb[(y * 32 + x) * 3 + c] - grey_of(luma_blocks(2 * x, 2 * y)));
                worst = d > worst ? d : worst;
            }
    video_sampler_free(sm);
    assert_true(worst <= 2);
    /* A linear ramp stays linear: output x sits over input 2x + 0.5. */
    yuv_make(&yf, luma_ramp, 128, 128, 0);
    sm = sampler_make(32, 24, 10, 4);
    assert_int_equal(video_sampler_push(sm, &yf.f, NULL), 1);
    rgb = video_sampler_rgb(sm, 0, NULL);
    for (int x = 2; x < 30; x++) {
        double want = (20 + 3 * (2 * x + 0.5) - 16) * 255.0 / 219.0;
        assert_true(fabs(rgb[(12 * 32 + x) * 3] - want) <= 1.5 + SWS_ARCH_SLACK);
    }
    /* Same size: the copy is exact (up to the limited-to-full range expansion). */
    video_sampler_free(sm);
    sm = sampler_make(64, 48, 10, 4);
    yuv_make(&yf, luma_blocks, 128, 128, 0);
    assert_int_equal(video_sampler_push(sm, &yf.f, NULL), 1);
    rgb = video_sampler_rgb(sm, 0, NULL);
    for (int y = 0; y < 48; y++)
        for (int x = 0; x < 64; x++)
            assert_true(abs(rgb[(y * 64 + x) * 3 + 1] - grey_of(luma_blocks(x, y))) <=
                        1 + SWS_ARCH_SLACK);
    video_sampler_free(sm);
}

static void test_planes_are_normalised_rgb(void **state)
{
    (void)state;
    static struct yuv_frame yf;
    yuv_make(&yf, luma_blocks, 90, 170, 0); /* a reddish tint: R, G, B differ */
    struct video_sampler_opts o = {.width = 16, .height = 12, .fps = 10, .capacity = 2,
                                   .mean = {0.485f, 0.456f, 0.406f}, .std = {0.229f, 0.224f, 0.225f}};
    struct video_sampler *sm = NULL;
    assert_int_equal(video_sampler_new(&o, &sm, NULL), 0);
    assert_int_equal(video_sampler_push(sm, &yf.f, NULL), 1);
    const uint8_t *rgb = video_sampler_rgb(sm, 0, NULL);
    float planes[3 * 16 * 12];
    assert_int_equal(video_sampler_planes(sm, 0, planes), 0);
    assert_true(rgb[0] > rgb[2] + 20); /* red above blue: channel order is R, G, B */
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 16 * 12; p++) {
            float want = ((float)rgb[p * 3 + c] / 255.0f - o.mean[c]) / o.std[c];
            assert_float_equal(planes[c * 16 * 12 + p], want, 1e-5);
        }
    assert_int_equal(video_sampler_planes(sm, 1, planes), ERR_RANGE);
    video_sampler_free(sm);
    o.std[1] = 0.0f;
    assert_int_equal(video_sampler_new(&o, &sm, NULL), ERR_RANGE);
    o.std[1] = 1.0f;
    o.capacity = VIDEO_MAX_RING + 1;
    assert_int_equal(video_sampler_new(&o, &sm, NULL), ERR_RANGE);
}

/* ---- motion and clips ---- */

/* Mean and max of |motion| of a diff clip made from a whole file. */
static void diff_stats(const char *path, double *mean, double *max)
{
    struct video_source *s = open_ok(path);
    struct video_sampler *sm = sampler_make(64, 48, 10, 32);
    assert_int_equal(video_sampler_read_all(sm, s, NULL), 0);
    struct video_clip_opts co = {.segments = 3, .length = 2, .motion = VIDEO_MOTION_DIFF};
    struct video_clip *c = NULL;
    assert_int_equal(video_clip_new(&co, 64, 48, &c, NULL), 0);
    assert_int_equal(video_clip_fill(c, sm, 0, video_sampler_count(sm), NULL, NULL), 0);
    size_t n = (size_t)3 * 4 * 64 * 48;
    double sum = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(c->motion[i] >= 0.0f && c->motion[i] <= 1.0f);
        sum += c->motion[i];
        mx = c->motion[i] > mx ? c->motion[i] : mx;
    }
    *mean = sum / (double)n;
    *max = mx;
    video_clip_free(c);
    video_sampler_free(sm);
    video_source_close(s);
}

static void test_diff_of_static_clip_is_zero(void **state)
{
    (void)state;
    double mean, max;
    diff_stats(fx.still, &mean, &max);
    assert_true(mean < 1e-3);
    assert_true(max < 0.05);
}

static void test_diff_of_moving_figure_is_not_zero(void **state)
{
    (void)state;
    double mean, max;
    diff_stats(fx.walk, &mean, &max);
    assert_true(mean > 2e-3);
    assert_true(max > 0.2);
}

static int luma_of_index(int x, int y)
{
    (void)x;
    (void)y;
    return 0; /* replaced per frame below */
}

/* Frames whose grey level encodes their index let the test see which sample went where. */
static struct video_sampler *indexed_samples(int n)
{
    struct video_sampler *sm = sampler_make(16, 12, 10, 64);
    static struct yuv_frame yf;
    for (int i = 0; i < n; i++) {
        yuv_make(&yf, luma_of_index, 128, 128, (int64_t)i * 100000);
        memset(yf.y, 16 + 4 * i, sizeof yf.y);
        assert_int_equal(video_sampler_push(sm, &yf.f, NULL), 1);
    }
    return sm;
}

static int index_of_plane(const float *plane)
{
    /* planes are x/255 with mean 0, std 1; luma 16 + 4i maps to grey 4i*255/219. */
    return (int)lround(plane[0] * 255.0 * 219.0 / 255.0 / 4.0);
}

static void test_clip_segments_centred_and_random(void **state)
{
    (void)state;
    struct video_sampler *sm = indexed_samples(40);
    struct video_clip_opts co = {.segments = 4, .length = 2, .motion = VIDEO_MOTION_DIFF};
    struct video_clip *c = NULL;
    assert_int_equal(video_clip_new(&co, 16, 12, &c, NULL), 0);
    /* Window [8, 32): segments of 6; snippet of 3 centred: start seg0 + 1, RGB at start + 1. */
    assert_int_equal(video_clip_fill(c, sm, 8, 24, NULL, NULL), 0);
    size_t plane = 16 * 12;
    for (int k = 0; k < 4; k++) {
        assert_int_equal(index_of_plane(c->rgb + (size_t)k * 3 * plane), 8 + 6 * k + 2);
        /* Each step brightens by 4 levels: positive part ~ 4/219, negative part 0. */
        const float *m = c->motion + (size_t)k * 4 * plane;
        assert_float_equal(m[0], 4.0f * 255.0f / 219.0f / 255.0f, 2.0f / 255.0f);
        assert_float_equal(m[plane], 0.0f, 1e-6);
    }
    assert_int_equal(c->start_us, 800000);
    assert_int_equal(c->end_us, 3100000);
    /* Random offsets: always inside the segment, the same for the same seed. */
    int seen[4][6] = {{0}};
    for (uint64_t seed = 1; seed <= 40; seed++) {
        uint64_t r1 = seed, r2 = seed;
        assert_int_equal(video_clip_fill(c, sm, 8, 24, &r1, NULL), 0);
        int first[4];
        for (int k = 0; k < 4; k++) {
            first[k] = index_of_plane(c->rgb + (size_t)k * 3 * plane);
            int off = first[k] - 1 - (8 + 6 * k);
            assert_true(off >= 0 && off <= 3);
            seen[k][off] = 1;
        }
        assert_int_equal(video_clip_fill(c, sm, 8, 24, &r2, NULL), 0);
        for (int k = 0; k < 4; k++)
            assert_int_equal(index_of_plane(c->rgb + (size_t)k * 3 * plane), first[k]);
    }
    for (int k = 0; k < 4; k++)
        assert_true(seen[k][0] + seen[k][1] + seen[k][2] + seen[k][3] >= 3);
    /* Windows that are not held, or too short for L + 1 samples. */
    assert_int_equal(video_clip_fill(c, sm, 30, 20, NULL, NULL), ERR_RANGE);
    assert_int_equal(video_clip_fill(c, sm, 0, 2, NULL, NULL), ERR_RANGE);
    co.motion = VIDEO_MOTION_MV;
    struct video_clip *cm = NULL;
    assert_int_equal(video_clip_new(&co, 16, 12, &cm, NULL), 0);
    assert_int_equal(video_clip_fill(cm, sm, 0, 24, NULL, NULL), ERR_INVAL);
    video_clip_free(cm);
    video_clip_free(c);
    video_sampler_free(sm);
}

static void test_clip_window_due(void **state)
{
    (void)state;
    int64_t first = -1;
    assert_int_equal(video_clip_window_due(15, 16, 4, &first), 0);
    assert_int_equal(video_clip_window_due(16, 16, 4, &first), 1);
    assert_int_equal(first, 0);
    assert_int_equal(video_clip_window_due(18, 16, 4, &first), 0);
    assert_int_equal(video_clip_window_due(20, 16, 4, &first), 1);
    assert_int_equal(first, 4);
    assert_int_equal(video_clip_window_due(20, 16, 0, &first), 0);
    assert_int_equal(video_motion_from_name("diff"), VIDEO_MOTION_DIFF);
    assert_int_equal(video_motion_from_name("mv"), VIDEO_MOTION_MV);
    assert_int_equal(video_motion_from_name("warp"), VIDEO_MOTION_COUNT);
    assert_string_equal(video_motion_name(VIDEO_MOTION_MV), "mv");
}

/* ---- codec motion vectors ---- */

/* Mean x and y motion over the pixels that move, from an mv clip of a whole file. */
static void mv_mean(const char *path, double fps, double *mx, double *my, int64_t *nsamples)
{
    struct video_source_opts so;
    video_source_opts_default(&so);
    so.export_mvs = 1;
    struct video_source *s = NULL;
    assert_int_equal(video_source_open(path, &so, &s, NULL), 0);
    struct video_sampler_opts o = {.width = CLIP_W / 2, .height = CLIP_H / 2, .fps = fps,
                                   .capacity = 128, .std = {1, 1, 1}, .motion_mv = 1};
    struct video_sampler *sm = NULL;
    assert_int_equal(video_sampler_new(&o, &sm, NULL), 0);
    assert_int_equal(video_sampler_read_all(sm, s, NULL), 0);
    int64_t n = video_sampler_count(sm);
    /* One segment per step pair over the whole clip, skipping sample 0 (no motion before it). */
    struct video_clip_opts co = {.segments = (int)((n - 1) / 2), .length = 2, .motion = VIDEO_MOTION_MV};
    struct video_clip *c = NULL;
    assert_int_equal(video_clip_new(&co, o.width, o.height, &c, NULL), 0);
    assert_int_equal(video_clip_fill(c, sm, 1, n - 1, NULL, NULL), 0);
    size_t plane = (size_t)o.width * (size_t)o.height;
    double sx = 0, sy = 0;
    long cnt = 0;
    for (int k = 0; k < co.segments; k++)
        for (int l = 0; l < co.length; l++) {
            const float *fx_ = c->motion + ((size_t)k * 2 * co.length + 2 * (size_t)l) * plane;
            const float *fy_ = fx_ + plane;
            for (size_t p = 0; p < plane; p++)
                if (fabsf(fx_[p]) + fabsf(fy_[p]) > 0.05f) {
                    sx += fx_[p];
                    sy += fy_[p];
                    cnt++;
                }
        }
    assert_true(cnt > 50);
    *mx = sx / (double)cnt;
    *my = sy / (double)cnt;
    *nsamples = n;
    video_clip_free(c);
    video_sampler_free(sm);
    video_source_close(s);
}

static void test_mv_follows_a_figure_moving_right_and_left(void **state)
{
    (void)state;
    char left[128];
    path_in(left, sizeof left, "walk-left.mp4");
    assert_int_equal(synth_clip(left, VIDEO_SYNTH_WALK, 1, -1, 1.0), 0);
    /* 2 px per frame at the clip's size is 1 px per frame at half size: the body moves that,
     * the swinging limbs more or less, so the mean lands near 1. */
    double want = WALK_PX_S / 25.0 / 2.0, mx, my;
    int64_t n;
    mv_mean(fx.walk, 25.0, &mx, &my, &n);
    assert_int_equal(n, 25);
    assert_true(mx > 0.5 * want && mx < 1.6 * want);
    assert_true(fabs(my) < 0.3 * want);
    mv_mean(left, 25.0, &mx, &my, &n);
    assert_true(mx < -0.5 * want && mx > -1.6 * want);
    /* At 10 samples per second a field spans 2.5 frames on average: the displacement between
     * samples, not per frame. */
    mv_mean(fx.walk, 10.0, &mx, &my, &n);
    assert_int_equal(n, 10);
    /* Accumulating over frames spreads a field over more half-covered blocks: ~0.55x here. */
    assert_true(mx > 0.4 * 2.5 * want && mx < 1.6 * 2.5 * want);
    unlink(left);
}

static void test_mv_iframe_repeats_the_last_field(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "walk-long.mp4");
    assert_int_equal(synth_clip(path, VIDEO_SYNTH_WALK, 1, 1, 2.4), 0);
    struct video_source_opts so;
    video_source_opts_default(&so);
    so.export_mvs = 1;
    struct video_source *s = NULL;
    assert_int_equal(video_source_open(path, &so, &s, NULL), 0);
    struct video_sampler_opts o = {.width = 64, .height = 48, .fps = 25, .capacity = 128,
                                   .std = {1, 1, 1}, .motion_mv = 1};
    struct video_sampler *sm = NULL;
    assert_int_equal(video_sampler_new(&o, &sm, NULL), 0);
    struct video_frame f;
    int keys[64], n = 0;
    while (n < 64 && video_source_read(s, &f, NULL) == 0) {
        keys[n++] = f.key;
        assert_true(video_sampler_push(sm, &f, NULL) == 1);
    }
    assert_int_equal(n, 60);
    assert_true(keys[0] && keys[50] && !keys[49] && !keys[51]); /* GOP of 2 s at 25 fps */
    struct video_clip_opts co = {.segments = 1, .length = 1, .motion = VIDEO_MOTION_MV};
    struct video_clip *c = NULL;
    assert_int_equal(video_clip_new(&co, 64, 48, &c, NULL), 0);
    float *prev = malloc(2 * 64 * 48 * sizeof(float));
    assert_int_equal(video_clip_fill(c, sm, 48, 2, NULL, NULL), 0); /* field of sample 49 */
    memcpy(prev, c->motion, 2 * 64 * 48 * sizeof(float));
    assert_int_equal(video_clip_fill(c, sm, 49, 2, NULL, NULL), 0); /* field of sample 50 */
    assert_memory_equal(prev, c->motion, 2 * 64 * 48 * sizeof(float));
    double any = 0;
    for (int i = 0; i < 64 * 48; i++)
        any += fabsf(prev[i]);
    assert_true(any > 1.0);
    free(prev);
    video_clip_free(c);
    video_sampler_free(sm);
    video_source_close(s);
    unlink(path);
}

/* ---- streams: RTSP/TCP on 127.0.0.1 only ---- */

/* A socket listening on a free loopback port; it answers nothing unless a test makes it. */
static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        fail_msg("cannot listen on 127.0.0.1");
    *port = ntohs(a.sin_port);
    return fd;
}

static int open_url(const char *url, struct video_source_opts *o, struct err_msg *em,
                    double *seconds)
{
    struct video_source *s = NULL;
    uint64_t t0 = clock_mono_ns();
    int rc = video_source_open(url, o, &s, em);
    *seconds = clock_elapsed_s(t0, clock_mono_ns());
    video_source_close(s);
    return rc;
}

static void test_rtsp_nothing_listening(void **state)
{
    (void)state;
    int port;
    close(listen_loopback(&port)); /* a port that was free a moment ago */
    char url[64];
    snprintf(url, sizeof url, "rtsp://127.0.0.1:%d/cam", port);
    const char *transports[] = {"tcp", "udp"};
    for (int i = 0; i < 2; i++) {
        struct video_source_opts o;
        video_source_opts_default(&o);
        o.rtsp_transport = transports[i];
        struct err_msg em = {{0}};
        double secs;
        assert_int_equal(open_url(url, &o, &em, &secs), ERR_IO);
        assert_non_null(strstr(em.text, url));
        assert_non_null(strstr(em.text, "refused"));
        assert_true(secs < 2.0);
    }
}

static void test_rtsp_silent_server_times_out(void **state)
{
    (void)state;
    int port, fd = listen_loopback(&port); /* connects, never answers */
    char url[64];
    snprintf(url, sizeof url, "rtsp://127.0.0.1:%d/cam", port);
    struct video_source_opts o;
    video_source_opts_default(&o);
    o.open_timeout_ms = 300;
    struct err_msg em = {{0}};
    double secs;
    assert_int_equal(open_url(url, &o, &em, &secs), ERR_TIMEOUT);
    assert_non_null(strstr(em.text, url));
    assert_true(secs >= 0.25 && secs < 3.0);
    /* The stop flag ends the same wait at once, and says so. */
    atomic_int stop = 1;
    o.open_timeout_ms = 5000;
    o.stop = &stop;
    memset(&em, 0, sizeof em);
    assert_int_equal(open_url(url, &o, &em, &secs), ERR_EOF);
    assert_non_null(strstr(em.text, "stopped"));
    assert_true(secs < 2.0);
    close(fd);
}

struct feeder {
    int fd;
    const unsigned char *data;
    size_t n;
    atomic_int done;
};

/* Sends the first part of a stream, then keeps the connection open and silent. */
static void *feeder_run(void *arg)
{
    struct feeder *f = arg;
    int c = accept(f->fd, NULL, NULL);
    if (c < 0)
        return NULL;
    size_t off = 0;
    while (off < f->n) {
        ssize_t w = send(c, f->data + off, f->n - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    for (int i = 0; i < 100 && !atomic_load(&f->done); i++)
        poll(NULL, 0, 50);
    close(c);
    return NULL;
}

static void test_stream_that_goes_silent_stalls(void **state)
{
    (void)state;
    char ts[128];
    path_in(ts, sizeof ts, "walk.ts");
    assert_int_equal(synth_clip(ts, VIDEO_SYNTH_WALK, 1, 1, 3.0), 0);
    size_t n;
    unsigned char *data = read_all(ts, &n);
    assert_non_null(data);
    struct feeder f = {.data = data, .n = n * 6 / 10};
    int port;
    f.fd = listen_loopback(&port);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, feeder_run, &f), 0);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    struct video_source_opts o;
    video_source_opts_default(&o);
    o.input_format = "mpegts";
    o.stall_timeout_ms = 300;
    struct video_source *s = NULL;
    struct err_msg em = {{0}};
    int rc = video_source_open(url, &o, &s, &em);
    if (rc < 0)
        fail_msg("%s", err_text(&em, rc));
    struct video_frame fr;
    int frames = 0;
    uint64_t t0 = clock_mono_ns();
    while ((rc = video_source_read(s, &fr, &em)) == 0)
        frames++;
    double secs = clock_elapsed_s(t0, clock_mono_ns());
    assert_int_equal(rc, ERR_STALL);
    assert_non_null(strstr(em.text, url));
    assert_true(frames >= 10 && frames < 75);
    assert_true(secs < 3.0);
    video_source_close(s);
    atomic_store(&f.done, 1);
    pthread_join(th, NULL);
    close(f.fd);
    free(data);
    unlink(ts);
}

static void test_source_option_errors(void **state)
{
    (void)state;
    struct video_source_opts o;
    video_source_opts_default(&o);
    struct err_msg em = {{0}};
    double secs;
    o.rtsp_transport = "sctp";
    assert_int_equal(open_url("rtsp://127.0.0.1:1/x", &o, &em, &secs), ERR_INVAL);
    video_source_opts_default(&o);
    o.input_format = "no-such-demuxer";
    assert_int_equal(open_url(fx.walk, &o, &em, &secs), ERR_UNSUPPORTED);
    video_source_opts_default(&o);
    o.framerate = 1000;
    assert_int_equal(open_url(fx.walk, &o, &em, &secs), ERR_RANGE);
    /* A camera that is not there: libavdevice's V4L2 input, chosen by the name. */
    video_source_opts_default(&o);
    memset(&em, 0, sizeof em);
    assert_int_equal(open_url("/dev/video99", &o, &em, &secs), ERR_NOTFOUND);
    assert_non_null(strstr(em.text, "/dev/video99"));
    /* named: libavdevice, loaded at run time, has registered its demuxers with libavformat */
    o.input_format = "video4linux2";
    memset(&em, 0, sizeof em);
    assert_int_equal(open_url("/dev/video99", &o, &em, &secs), ERR_NOTFOUND);
}

/* ---- bad input ---- */

/* Opens and reads to the end; returns the first error and its message. */
static int open_and_read(const char *path, struct err_msg *em, struct video_source_stats *st)
{
    struct video_source_opts o;
    video_source_opts_default(&o);
    struct video_source *s = NULL;
    int rc = video_source_open(path, &o, &s, em);
    if (rc < 0)
        return rc;
    struct video_frame f;
    for (int i = 0; i < 10000 && (rc = video_source_read(s, &f, em)) == 0; i++)
        ;
    if (st)
        video_source_stats(s, st);
    video_source_close(s);
    return rc;
}

static void expect_error(const char *path, int want, const char *words)
{
    struct err_msg em = {{0}};
    int rc = open_and_read(path, &em, NULL);
    if (want)
        assert_int_equal(rc, want);
    else
        assert_true(rc < 0 && rc != ERR_EOF);
    assert_non_null(strstr(em.text, path));
    if (words)
        assert_non_null(strstr(em.text, words));
    assert_null(strchr(em.text, '\n'));
}

static void test_bad_truncated_mp4(void **state)
{
    (void)state;
    expect_error(fx.trunc, ERR_FORMAT, NULL);
}

static void test_bad_random_bytes(void **state)
{
    (void)state;
    expect_error(fx.noise, ERR_FORMAT, "not a video");
}

static void test_bad_zero_length(void **state)
{
    (void)state;
    expect_error(fx.empty, ERR_FORMAT, NULL);
}

static void test_bad_missing_file(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof path, "no-such.mp4");
    expect_error(path, ERR_NOTFOUND, "no such file");
}

static void test_bad_unknown_codec(void **state)
{
    (void)state;
    expect_error(fx.badcodec, ERR_UNSUPPORTED, "no decoder");
}

static void test_bad_damaged_frames_are_not_fatal(void **state)
{
    (void)state;
    struct err_msg em = {{0}};
    struct video_source_stats st;
    int rc = open_and_read(fx.damaged, &em, &st);
    assert_int_equal(rc, ERR_EOF);
    assert_true(st.frames >= 10);
    assert_true(st.corrupt + st.damaged >= 1);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    struct video_source_opts o;
    video_source_opts_default(&o);
    struct video_source *s = NULL;
    assert_int_equal(video_source_open("", &o, &s, NULL), ERR_INVAL);
    assert_null(s);
    video_source_close(NULL);
    video_sampler_free(NULL);
    video_clip_free(NULL);
    video_writer_free(NULL);
    struct video_sampler *sm = sampler_make(16, 12, 10, 2);
    struct video_frame f = {.width = 100000, .height = 10, .format = AV_PIX_FMT_YUV420P};
    assert_int_equal(video_sampler_push(sm, &f, NULL), ERR_RANGE);
    video_sampler_free(sm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_counts_frames_and_timestamps),
        cmocka_unit_test(test_decode_threads_option),
        cmocka_unit_test(test_hw_decoder_falls_back_to_software),
        cmocka_unit_test(test_sampler_25_to_10_fps_by_timestamp),
        cmocka_unit_test(test_sampler_follows_timestamps_not_counts),
        cmocka_unit_test(test_resize_known_pattern),
        cmocka_unit_test(test_planes_are_normalised_rgb),
        cmocka_unit_test(test_diff_of_static_clip_is_zero),
        cmocka_unit_test(test_diff_of_moving_figure_is_not_zero),
        cmocka_unit_test(test_clip_segments_centred_and_random),
        cmocka_unit_test(test_clip_window_due),
        cmocka_unit_test(test_mv_follows_a_figure_moving_right_and_left),
        cmocka_unit_test(test_mv_iframe_repeats_the_last_field),
        cmocka_unit_test(test_rtsp_nothing_listening),
        cmocka_unit_test(test_rtsp_silent_server_times_out),
        cmocka_unit_test(test_stream_that_goes_silent_stalls),
        cmocka_unit_test(test_source_option_errors),
        cmocka_unit_test(test_bad_truncated_mp4),
        cmocka_unit_test(test_bad_random_bytes),
        cmocka_unit_test(test_bad_zero_length),
        cmocka_unit_test(test_bad_missing_file),
        cmocka_unit_test(test_bad_unknown_codec),
        cmocka_unit_test(test_bad_damaged_frames_are_not_fatal),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
