/* scene.c — the world around synth's actor: a textured backdrop with baked-in lighting, moving
 * distractors, a camera that pans and shakes, and the sensor (flicker, noise, yuv420p). */
#include "video/synth_int.h"
#include "video/rng.h"
#include "common/err.h"

#include <math.h>
#include <stdlib.h>

#define TWO_PI (2.0f * (float)M_PI)

/* Room around the frame for shake and jitter: a few pixels, like a hand-held camera. */
#define SHAKE_MARGIN 8

struct wave {
    float fx, fy, ph, amp;
};

struct backdrop {
    float horizon;
    float wall[3], floor[3];
    struct wave waves[3];
    float panel_period, panel_contrast;
    float light_gx, light_gain, floor_lines;
};

static void backdrop_random(struct backdrop *b, int h, uint64_t *rng)
{
    b->horizon = (float)h * rng_range(rng, 0.35f, 0.7f);
    for (int k = 0; k < 3; k++) {
        b->wall[k] = rng_range(rng, 0.15f, 0.9f);
        b->floor[k] = rng_range(rng, 0.1f, 0.7f);
    }
    for (int i = 0; i < 3; i++) {
        float f = rng_range(rng, 0.02f, 0.25f), a = rng_range(rng, 0.0f, TWO_PI);
        b->waves[i] = (struct wave){f * cosf(a), f * sinf(a), rng_range(rng, 0, TWO_PI),
                                    rng_range(rng, 0.01f, 0.06f)};
    }
    b->panel_period = rng_range(rng, 12.0f, 80.0f);
    b->panel_contrast = rng_range(rng, 0.0f, 0.12f);
    b->light_gx = rng_range(rng, -0.5f, 0.5f);
    b->light_gain = rng_range(rng, 0.6f, 1.15f);
    b->floor_lines = rng_range(rng, 0.0f, 0.1f);
}

static void backdrop_texel(const struct backdrop *b, float x, float y, int w, float out[3])
{
    float tex = 0.0f;
    for (int i = 0; i < 3; i++)
        tex += b->waves[i].amp * sinf(b->waves[i].fx * x + b->waves[i].fy * y + b->waves[i].ph);
    const float *base;
    if (y < b->horizon) {
        base = b->wall;
        if (((int)floorf(x / b->panel_period)) & 1)
            tex += b->panel_contrast;
    } else {
        base = b->floor;
        /* Lines that converge on the horizon give the floor depth. */
        float d = y - b->horizon + 4.0f;
        tex += b->floor_lines * sinf(x * 60.0f / d);
    }
    float light = b->light_gain * (1.0f + b->light_gx * (x / (float)w - 0.5f));
    for (int k = 0; k < 3; k++)
        out[k] = (base[k] + tex) * light;
}

/* Windows, posters, boxes: flat shapes fixed to the backdrop. */
static void backdrop_props(struct canvas *c, float horizon, uint64_t *rng)
{
    int n = 2 + rng_int(rng, 6);
    for (int i = 0; i < n; i++) {
        float rgb[3];
        for (int k = 0; k < 3; k++)
            rgb[k] = rng_range(rng, 0.05f, 0.95f);
        float x = rng_range(rng, 0, (float)c->w), y = rng_range(rng, 0, fmaxf(horizon, 4.0f));
        canvas_rect(c, x, y, x + rng_range(rng, 6, 50), y + rng_range(rng, 6, 40), rgb);
    }
}

static void distractor_random(struct distractor *d, const struct scene *s, uint64_t *rng)
{
    d->shape = rng_int(rng, 3);
    d->x = s->origin_x + rng_range(rng, 0, (float)s->tw);
    d->y = rng_range(rng, 0.1f, 0.85f) * (float)s->h;
    int moving = rng_unit(rng) < 0.6f;
    d->vx = moving ? (float)rng_sign(rng) * rng_range(rng, 5.0f, 25.0f) : 0.0f;
    d->vy = moving ? rng_range(rng, -5.0f, 5.0f) : 0.0f;
    d->w = rng_range(rng, 4.0f, 0.12f * (float)s->w + 5.0f);
    d->h = rng_range(rng, 4.0f, 0.15f * (float)s->h + 5.0f);
    for (int k = 0; k < 3; k++)
        d->rgb[k] = rng_range(rng, 0.05f, 0.95f);
    d->swing_hz = rng_range(rng, 0.2f, 0.8f);
}

int scene_init(struct scene *s, int w, int h, float pan_vx, float seconds, int clean, uint64_t *rng)
{
    *s = (struct scene){.w = w, .h = h, .pan_vx = pan_vx};
    float span = fabsf(pan_vx) * seconds;
    s->tw = w + 2 * SHAKE_MARGIN + (int)ceilf(span) + 2;
    s->th = h + 2 * SHAKE_MARGIN + 2;
    s->origin_x = fminf(0.0f, pan_vx * seconds) - SHAKE_MARGIN;
    s->origin_y = -SHAKE_MARGIN;
    s->tex = malloc((size_t)s->tw * (size_t)s->th * 3 * sizeof(float));
    if (!s->tex)
        return ERR_NOMEM;
    struct backdrop b;
    backdrop_random(&b, h, rng);
    s->horizon = b.horizon;
    for (int j = 0; j < s->th; j++)
        for (int i = 0; i < s->tw; i++)
            backdrop_texel(&b, s->origin_x + (float)i, s->origin_y + (float)j, w,
                           s->tex + ((size_t)j * (size_t)s->tw + (size_t)i) * 3);
    struct canvas tc = {s->tw, s->th, s->tex};
    backdrop_props(&tc, b.horizon - s->origin_y, rng);
    if (clean)
        return 0;
    for (int a = 0; a < 2; a++) {
        s->shake_amp[a] = rng_range(rng, 0.0f, 2.0f);
        s->shake_hz[a] = rng_range(rng, 0.3f, 2.5f);
        s->shake_ph[a] = rng_range(rng, 0.0f, TWO_PI);
    }
    s->jitter = rng_range(rng, 0.0f, 0.4f);
    s->flicker_amp = rng_range(rng, 0.0f, 0.04f);
    s->flicker_hz = rng_range(rng, 0.2f, 2.0f);
    s->noise_y = rng_range(rng, 0.5f, 4.0f);
    s->noise_c = s->noise_y * 0.5f;
    s->ndistractors = rng_int(rng, SCENE_MAX_DISTRACTORS);
    for (int i = 0; i < s->ndistractors; i++)
        distractor_random(&s->d[i], s, rng);
    return 0;
}

void scene_fini(struct scene *s)
{
    free(s->tex);
    s->tex = NULL;
}

void scene_camera(const struct scene *s, float t, uint64_t *rng, float *cx, float *cy)
{
    float j[2] = {rng_range(rng, -1.0f, 1.0f), rng_range(rng, -1.0f, 1.0f)};
    float sh[2];
    for (int a = 0; a < 2; a++)
        sh[a] = s->shake_amp[a] * sinf(TWO_PI * s->shake_hz[a] * t + s->shake_ph[a]) + s->jitter * j[a];
    *cx = s->pan_vx * t + sh[0];
    *cy = sh[1];
}

static void distractor_draw(const struct distractor *d, struct canvas *c, float t, float cx, float cy)
{
    float x = d->x + d->vx * t - cx, y = d->y + d->vy * t - cy;
    switch (d->shape) {
    case 0: canvas_rect(c, x, y, x + d->w, y + d->h, d->rgb); break;
    case 1: canvas_disc(c, x, y, 0.5f * d->w, d->rgb); break;
    default: {
        /* A bar swinging from a fixed pivot, like a branch or a sign in the wind. */
        float a = 0.5f * sinf(TWO_PI * d->swing_hz * t);
        float len = d->h * 2.0f;
        canvas_capsule(c, d->x - cx, d->y - cy, d->x - cx + len * sinf(a), d->y - cy + len * cosf(a),
                       1.5f, d->rgb);
    } break;
    }
}

void scene_render(const struct scene *s, struct canvas *c, float t, float cx, float cy)
{
    float u0 = cx - s->origin_x, v0 = cy - s->origin_y;
    int iu = (int)floorf(u0), iv = (int)floorf(v0);
    /* The camera offset is the same for every pixel, so are the bilinear weights. */
    float fu = u0 - (float)iu, fv = v0 - (float)iv;
    float w00 = (1 - fu) * (1 - fv), w01 = fu * (1 - fv), w10 = (1 - fu) * fv, w11 = fu * fv;
    if (iu < 0)
        iu = 0;
    if (iu > s->tw - c->w - 1)
        iu = s->tw - c->w - 1;
    if (iv < 0)
        iv = 0;
    if (iv > s->th - c->h - 1)
        iv = s->th - c->h - 1;
    size_t row = (size_t)s->tw * 3;
    for (int y = 0; y < c->h; y++) {
        const float *t0 = s->tex + (size_t)(iv + y) * row + (size_t)iu * 3;
        const float *t1 = t0 + row;
        float *o = c->px + (size_t)y * (size_t)c->w * 3;
        for (int i = 0; i < c->w * 3; i++)
            o[i] = w00 * t0[i] + w01 * t0[i + 3] + w10 * t1[i] + w11 * t1[i + 3];
    }
    for (int i = 0; i < s->ndistractors; i++)
        distractor_draw(&s->d[i], c, t, cx, cy);
}

/* An approximately normal deviate from four bytes (Irwin-Hall), cheap enough for every pixel. */
static float noise16(uint64_t r)
{
    int sum = (int)(r & 255) + (int)((r >> 8) & 255) + (int)((r >> 16) & 255) + (int)((r >> 24) & 255);
    return (float)(sum - 510) * (1.0f / 147.8f);
}

static uint8_t to_u8(float v, float lo, float hi)
{
    v = v < lo ? lo : v > hi ? hi : v;
    return (uint8_t)(v + 0.5f);
}

/* BT.601 limited range: what H.264 decoders and libswscale assume when nothing is signalled. */
void scene_to_yuv(const struct scene *s, const struct canvas *c, float t, uint64_t *rng,
                  uint8_t *const planes[3], const int strides[3])
{
    float g = 1.0f + s->flicker_amp * sinf(TWO_PI * s->flicker_hz * t);
    for (int y = 0; y < c->h; y += 2) {
        for (int x = 0; x < c->w; x += 2) {
            float su = 0.0f, sv = 0.0f;
            uint64_t r = rng_next(rng), r2 = rng_next(rng);
            for (int k = 0; k < 4; k++) {
                int px = x + (k & 1), py = y + (k >> 1);
                const float *p = c->px + ((size_t)py * (size_t)c->w + (size_t)px) * 3;
                float R = p[0] * g, G = p[1] * g, B = p[2] * g;
                float n = noise16((k < 2 ? r : r2) >> (k & 1 ? 32 : 0));
                planes[0][(size_t)py * (size_t)strides[0] + (size_t)px] =
                    to_u8(16.0f + 219.0f * (0.299f * R + 0.587f * G + 0.114f * B) + s->noise_y * n,
                          16.0f, 235.0f);
                su += -0.168736f * R - 0.331264f * G + 0.5f * B;
                sv += 0.5f * R - 0.418688f * G - 0.081312f * B;
            }
            uint64_t rc = rng_next(rng);
            size_t ci = (size_t)(y / 2);
            planes[1][ci * (size_t)strides[1] + (size_t)(x / 2)] =
                to_u8(128.0f + 56.0f * su + s->noise_c * noise16(rc), 16.0f, 240.0f);
            planes[2][ci * (size_t)strides[2] + (size_t)(x / 2)] =
                to_u8(128.0f + 56.0f * sv + s->noise_c * noise16(rc >> 32), 16.0f, 240.0f);
        }
    }
}
