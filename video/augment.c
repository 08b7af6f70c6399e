/* augment.c — training augmentation of decoded samples: a random crop resized back to the frame
 * (bilinear, fixed point) and a left-right mirror, for RGB24 frames and motion-vector fields. */
#include "video/video.h"
#include "video/rng.h"

#include <math.h>
#include <string.h>

/* Bilinear weights in 1/2048: exact for the identity, and the product of two weights and a
 * 255 pixel stays far inside 32 bits. */
#define AUG_FRAC_BITS 11
#define AUG_ONE (1 << AUG_FRAC_BITS)

/* Where each output column (or row) reads: two source indices and the second one's weight. */
struct axis_map {
    int i0[VIDEO_MAX_MODEL_SIDE];
    int i1[VIDEO_MAX_MODEL_SIDE];
    int f[VIDEO_MAX_MODEL_SIDE];
};

void video_augment_identity(int width, int height, struct video_augment *a)
{
    *a = (struct video_augment){0, 0, width, height, 0};
}

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void video_augment_random(uint64_t *rng, int width, int height, struct video_augment *a)
{
    double area = VIDEO_AUGMENT_MIN_AREA + (1.0 - VIDEO_AUGMENT_MIN_AREA) * rng_unit(rng);
    /* Log-uniform aspect, so 3/4 and 4/3 are equally likely. */
    double aspect = exp(log(0.75) + (log(4.0 / 3.0) - log(0.75)) * rng_unit(rng));
    int w = clampi((int)lround(width * sqrt(area * aspect)), 1, width);
    int h = clampi((int)lround(height * sqrt(area / aspect)), 1, height);
    a->w = w;
    a->h = h;
    a->x = rng_int(rng, width - w + 1);
    a->y = rng_int(rng, height - h + 1);
    a->flip = (int)(rng_next(rng) >> 63);
}

static int is_identity(const struct video_augment *a, int width, int height)
{
    return a->x == 0 && a->y == 0 && a->w == width && a->h == height && !a->flip;
}

/* Output pixel d (of n) samples the crop [off, off + len) at pixel centres; the mirror reads
 * the crop from its other end. Edges repeat rather than reach outside the crop. */
static void axis_build(struct axis_map *m, int n, int off, int len, int flip)
{
    double scale = (double)len / n;
    for (int d = 0; d < n; d++) {
        int dd = flip ? n - 1 - d : d;
        double s = (dd + 0.5) * scale - 0.5;
        if (s < 0.0)
            s = 0.0;
        if (s > len - 1)
            s = len - 1;
        int i = (int)s;
        int f = (int)lround((s - i) * AUG_ONE);
        if (f == AUG_ONE) {
            i++;
            f = 0;
        }
        m->i0[d] = off + i;
        m->i1[d] = off + (i + 1 < len ? i + 1 : i);
        m->f[d] = f;
    }
}

/* One source row resized horizontally, kept in AUG_ONE units: at most 255 * AUG_ONE. */
static void rgb_row(const struct axis_map *mx, const uint8_t *restrict row, int width,
                    uint32_t *restrict out)
{
    for (int x = 0; x < width; x++) {
        const uint8_t *a = row + mx->i0[x] * 3, *b = row + mx->i1[x] * 3;
        uint32_t fx = (uint32_t)mx->f[x], gx = AUG_ONE - fx;
        for (int c = 0; c < 3; c++)
            out[x * 3 + c] = a[c] * gx + b[c] * fx;
    }
}

/* Separable: rows resized once each (a crop is only ever stretched, so consecutive output rows
 * share source rows), then a contiguous vertical blend the compiler vectorises. Sums stay below
 * 255 * AUG_ONE^2 < 2^31. */
static void resize_rgb(const struct axis_map *mx, const struct axis_map *my, const uint8_t *src,
                       int width, int height, uint8_t *restrict dst)
{
    uint32_t buf[2][VIDEO_MAX_MODEL_SIDE * 3];
    uint32_t *h0 = buf[0], *h1 = buf[1];
    int row0 = -1, row1 = -1;
    size_t stride = (size_t)width * 3;
    for (int y = 0; y < height; y++) {
        int i0 = my->i0[y], i1 = my->i1[y];
        if (row0 != i0) {
            if (row1 == i0) { /* moving down: the old second row is the new first */
                uint32_t *t = h0;
                h0 = h1;
                h1 = t;
                row1 = row0;
            } else {
                rgb_row(mx, src + (size_t)i0 * stride, width, h0);
            }
            row0 = i0;
        }
        if (row1 != i1) {
            rgb_row(mx, src + (size_t)i1 * stride, width, h1);
            row1 = i1;
        }
        uint32_t fy = (uint32_t)my->f[y], gy = AUG_ONE - fy;
        const uint32_t half = 1u << (2 * AUG_FRAC_BITS - 1);
        uint8_t *restrict out = dst + (size_t)y * stride;
        for (size_t i = 0; i < stride; i++)
            out[i] = (uint8_t)((h0[i] * gy + h1[i] * fy + half) >> (2 * AUG_FRAC_BITS));
    }
}

void video_augment_rgb(const struct video_augment *a, const uint8_t *src, int width, int height,
                       uint8_t *dst)
{
    if (is_identity(a, width, height)) {
        memcpy(dst, src, (size_t)width * (size_t)height * 3);
        return;
    }
    struct axis_map mx, my;
    axis_build(&mx, width, a->x, a->w, a->flip);
    axis_build(&my, height, a->y, a->h, 0);
    resize_rgb(&mx, &my, src, width, height, dst);
}

/* One channel of a field, resized and multiplied by gain (units, resize and mirror sign). */
static void resize_field(const struct axis_map *mx, const struct axis_map *my, const int16_t *src,
                         int width, int height, float gain, float *dst)
{
    const float k = gain / ((float)AUG_ONE * (float)AUG_ONE);
    for (int y = 0; y < height; y++) {
        const int16_t *r0 = src + (size_t)my->i0[y] * (size_t)width;
        const int16_t *r1 = src + (size_t)my->i1[y] * (size_t)width;
        int fy = my->f[y];
        float *out = dst + (size_t)y * (size_t)width;
        for (int x = 0; x < width; x++) {
            int i0 = mx->i0[x], i1 = mx->i1[x], fx = mx->f[x];
            int64_t top = (int64_t)r0[i0] * (AUG_ONE - fx) + (int64_t)r0[i1] * fx;
            int64_t bot = (int64_t)r1[i0] * (AUG_ONE - fx) + (int64_t)r1[i1] * fx;
            out[x] = (float)(top * (AUG_ONE - fy) + bot * fy) * k;
        }
    }
}

void video_augment_mv(const struct video_augment *a, const int16_t *src, int width, int height,
                      float *dst)
{
    size_t plane = (size_t)width * (size_t)height;
    const float unit = 1.0f / VIDEO_CACHE_MV_ONE;
    if (is_identity(a, width, height)) {
        for (size_t i = 0; i < 2 * plane; i++)
            dst[i] = (float)src[i] * unit;
        return;
    }
    struct axis_map mx, my;
    axis_build(&mx, width, a->x, a->w, a->flip);
    axis_build(&my, height, a->y, a->h, 0);
    /* Stretching the crop to the frame stretches every displacement with it; the mirror turns
     * rightward motion into leftward. */
    float gx = unit * (float)width / (float)a->w * (a->flip ? -1.0f : 1.0f);
    float gy = unit * (float)height / (float)a->h;
    resize_field(&mx, &my, src, width, height, gx, dst);
    resize_field(&mx, &my, src + plane, width, height, gy, dst + plane);
}
