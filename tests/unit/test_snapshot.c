/* test_snapshot.c — unit tests of daemon/snapshot: the bitmap font, slots that keep the last
 * frame, JPEG made by libavcodec (decoded back to check size
 * and the label's pixels), and "no frame yet". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/common.h"
#include "daemon/snapshot.h"
#include "video/video.h"

#include <libavcodec/avcodec.h>
#include <libavutil/pixfmt.h>
#include <stdlib.h>
#include <string.h>

static void test_font_draws_in_its_box(void **state)
{
    (void)state;
    enum { W = 64, H = 24 };
    uint8_t plane[W * H];
    memset(plane, 128, sizeof plane);
    daemon_snapshot_draw_text(plane, W, W, H, 1, 1, 1, "A1");
    int ink = 0, box = 0, other = 0;
    for (int i = 0; i < W * H; i++) {
        ink += plane[i] > 200;
        box += plane[i] < 32;
        other += plane[i] == 128;
    }
    /* 'A' has 18 lit pixels and '1' 10; the box is 2 glyphs wide plus padding. */
    assert_int_equal(ink, 18 + 10);
    assert_true(box > 0);
    assert_int_equal(ink + box + other, W * H);
    assert_int_equal(plane[0], 128); /* the box starts at (1, 1) */
    /* Clipped at the edges rather than written past them. */
    daemon_snapshot_draw_text(plane, W, W, H, W - 3, H - 3, 3, "WAVE 0.99 ?!");
    /* Lower case is drawn as upper case. */
    uint8_t a[W * H], b[W * H];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    daemon_snapshot_draw_text(a, W, W, H, 0, 0, 1, "walk");
    daemon_snapshot_draw_text(b, W, W, H, 0, 0, 1, "WALK");
    assert_memory_equal(a, b, sizeof a);
}

/* A grey YUV 4:2:0 frame made by hand, as a decoder would hand it over. */
struct frame_buf {
    uint8_t y[64 * 48], u[32 * 24], v[32 * 24];
    struct video_frame f;
};

static void make_frame(struct frame_buf *b, uint8_t luma)
{
    memset(b->y, luma, sizeof b->y);
    memset(b->u, 128, sizeof b->u);
    memset(b->v, 128, sizeof b->v);
    b->f = (struct video_frame){.width = 64, .height = 48, .format = AV_PIX_FMT_YUV420P,
                                .data = {b->y, b->u, b->v}, .linesize = {64, 32, 32}};
}

/* Decodes a JPEG and returns its luma at (x, y); checks its size. */
static int jpeg_luma_at(const unsigned char *jpeg, size_t len, int w, int h, int x, int y)
{
    const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_MJPEG);
    assert_non_null(codec);
    AVCodecContext *c = avcodec_alloc_context3(codec);
    AVPacket *pkt = av_packet_alloc();
    AVFrame *f = av_frame_alloc();
    assert_int_equal(avcodec_open2(c, codec, NULL), 0);
    pkt->data = (uint8_t *)jpeg;
    pkt->size = (int)len;
    assert_int_equal(avcodec_send_packet(c, pkt), 0);
    assert_int_equal(avcodec_receive_frame(c, f), 0);
    assert_int_equal(f->width, w);
    assert_int_equal(f->height, h);
    int v = f->data[0][y * f->linesize[0] + x];
    av_frame_free(&f);
    pkt->data = NULL;
    pkt->size = 0;
    av_packet_free(&pkt);
    avcodec_free_context(&c);
    return v;
}

static void test_jpeg_of_the_last_frame(void **state)
{
    (void)state;
    struct daemon_snapshots *s;
    struct err_msg em;
    assert_int_equal(daemon_snapshots_new(&s, &em), 0);
    unsigned char *jpeg = NULL;
    size_t len = 0;
    /* Unknown stream, and a known one before its first frame. */
    assert_int_equal(daemon_snapshots_jpeg(s, "cam1", false, &jpeg, &len, &em), ERR_NOTFOUND);
    struct daemon_snapshot_slot *slot = daemon_snapshots_attach(s, "cam1");
    assert_non_null(slot);
    assert_ptr_equal(daemon_snapshots_attach(s, "cam1"), slot); /* same id, same slot */
    daemon_snapshots_detach(s, slot);
    struct frame_buf *fb = calloc(1, sizeof *fb);
    make_frame(fb, 100);
    daemon_snapshot_offer(slot, &fb->f);
    assert_int_equal(daemon_snapshots_jpeg(s, "cam1", false, &jpeg, &len, &em), 0);
    assert_true(len > 100);
    assert_int_equal(jpeg[0], 0xff); /* SOI */
    assert_int_equal(jpeg[1], 0xd8);
    int y = jpeg_luma_at(jpeg, len, 64, 48, 32, 24);
    assert_true(y > 100 - 20 && y < 100 + 30); /* limited-range 100 read back as full range */
    free(jpeg);
    /* The label draws the top action in white on a dark box at the top left. */
    daemon_snapshots_set_top(s, "cam1", "wave", 0.87);
    assert_int_equal(daemon_snapshots_jpeg(s, "cam1", true, &jpeg, &len, &em), 0);
    assert_true(jpeg_luma_at(jpeg, len, 64, 48, 5, 5) < 60);
    free(jpeg);
    daemon_snapshots_detach(s, slot);
    /* A detached stream keeps its last frame for the page. */
    assert_int_equal(daemon_snapshots_jpeg(s, "cam1", false, &jpeg, &len, &em), 0);
    free(jpeg);
    free(fb);
    daemon_snapshots_free(s);
}

static void test_slots_are_bounded(void **state)
{
    (void)state;
    struct daemon_snapshots *s;
    struct err_msg em;
    assert_int_equal(daemon_snapshots_new(&s, &em), 0);
    struct daemon_snapshot_slot *slots[SNAPSHOT_SLOTS];
    char id[16];
    for (int i = 0; i < SNAPSHOT_SLOTS; i++) {
        snprintf(id, sizeof id, "s%d", i);
        assert_non_null(slots[i] = daemon_snapshots_attach(s, id));
    }
    assert_null(daemon_snapshots_attach(s, "one-more"));
    daemon_snapshots_detach(s, slots[3]);
    assert_ptr_equal(daemon_snapshots_attach(s, "one-more"), slots[3]); /* a retired id's slot */
    daemon_snapshot_offer(NULL, NULL); /* no slot: nothing to do */
    for (int i = 0; i < SNAPSHOT_SLOTS; i++)
        daemon_snapshots_detach(s, slots[i]);
    daemon_snapshots_free(s);
    daemon_snapshots_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_font_draws_in_its_box),
        cmocka_unit_test(test_jpeg_of_the_last_frame),
        cmocka_unit_test(test_slots_are_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
