/* motion.c — motion fields at model size: codec motion vectors rasterised per block, the
 * signed luma difference of consecutive samples, and the luma plane the optical flow reads. */
#include "video/motion_int.h"

#include <libavutil/frame.h>
#include <libavutil/motion_vector.h>
#include <math.h>
#include <string.h>

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* One block's displacement painted over the model pixels its area covers. */
static void paint_block(const AVMotionVector *mv, float sx, float sy, int w, int h, float *field)
{
    /* motion_x/y point from the block to where it came from in the reference; the motion of the
     * content is the opposite. A future reference (source > 0) flips it again. */
    float sign = mv->source < 0 ? -1.0f : 1.0f;
    int scale = mv->motion_scale ? mv->motion_scale : 1;
    float dx = sign * (float)mv->motion_x / (float)scale * sx;
    float dy = sign * (float)mv->motion_y / (float)scale * sy;
    int x0 = clampi((int)floorf(((float)mv->dst_x - mv->w * 0.5f) * sx + 0.5f), 0, w);
    int x1 = clampi((int)floorf(((float)mv->dst_x + mv->w * 0.5f) * sx + 0.5f), 0, w);
    int y0 = clampi((int)floorf(((float)mv->dst_y - mv->h * 0.5f) * sy + 0.5f), 0, h);
    int y1 = clampi((int)floorf(((float)mv->dst_y + mv->h * 0.5f) * sy + 0.5f), 0, h);
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            field[(size_t)y * (size_t)w + (size_t)x] = dx;
            field[(size_t)(h + y) * (size_t)w + (size_t)x] = dy;
        }
}

int motion_mv_raster(const struct video_frame *f, int w, int h, float *field)
{
    const AVFrame *av = f->av;
    const AVFrameSideData *sd = av ? av_frame_get_side_data(av, AV_FRAME_DATA_MOTION_VECTORS) : NULL;
    if (!sd) {
        /* An I-frame has no vectors; so has a P-frame whose blocks are all intra (the decoder
         * then exports none either). Only the I-frame case keeps the last field. */
        if (f->key)
            return 0;
        memset(field, 0, (size_t)w * (size_t)h * 2 * sizeof(float));
        return 0;
    }
    memset(field, 0, (size_t)w * (size_t)h * 2 * sizeof(float));
    const AVMotionVector *mvs = (const AVMotionVector *)sd->data;
    size_t n = sd->size / sizeof *mvs;
    float sx = (float)w / (float)f->width, sy = (float)h / (float)f->height;
    for (size_t i = 0; i < n; i++)
        paint_block(&mvs[i], sx, sy, w, h, field);
    return 1;
}

void motion_luma(const uint8_t *rgb, int w, int h, float *grey)
{
    size_t n = (size_t)w * (size_t)h;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = rgb + i * 3;
        grey[i] = (0.299f * (float)p[0] + 0.587f * (float)p[1] + 0.114f * (float)p[2]) *
                  (1.0f / 255.0f);
    }
}

void motion_diff(const uint8_t *a, const uint8_t *b, int w, int h, float *pos, float *neg)
{
    size_t n = (size_t)w * (size_t)h;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *pa = a + i * 3, *pb = b + i * 3;
        float d = (0.299f * (float)(pb[0] - pa[0]) + 0.587f * (float)(pb[1] - pa[1]) +
                   0.114f * (float)(pb[2] - pa[2])) * (1.0f / 255.0f);
        pos[i] = d > 0.0f ? d : 0.0f;
        neg[i] = d < 0.0f ? -d : 0.0f;
    }
}
