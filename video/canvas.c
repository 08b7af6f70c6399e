/* canvas.c — filled shapes on synth's float RGB canvas, with one-pixel anti-aliased edges so
 * limbs move smoothly at sub-pixel speeds instead of jumping a pixel at a time. */
#include "video/synth_int.h"

#include <math.h>
#include <stddef.h>

static float clampf(float v, float lo, float hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static void blend(struct canvas *c, int x, int y, float cov, const float rgb[3])
{
    float *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    for (int k = 0; k < 3; k++)
        p[k] += (rgb[k] - p[k]) * cov;
}

/* Clips a box to the canvas; 0 when nothing is left. */
static int clip_box(const struct canvas *c, float x0, float y0, float x1, float y1, int b[4])
{
    b[0] = (int)floorf(clampf(x0, 0, (float)c->w));
    b[1] = (int)floorf(clampf(y0, 0, (float)c->h));
    b[2] = (int)ceilf(clampf(x1, 0, (float)c->w));
    b[3] = (int)ceilf(clampf(y1, 0, (float)c->h));
    return b[0] < b[2] && b[1] < b[3];
}

void canvas_capsule(struct canvas *c, float x0, float y0, float x1, float y1, float r,
                    const float rgb[3])
{
    int b[4];
    float m = r + 1.0f;
    if (!clip_box(c, fminf(x0, x1) - m, fminf(y0, y1) - m, fmaxf(x0, x1) + m, fmaxf(y0, y1) + m, b))
        return;
    float dx = x1 - x0, dy = y1 - y0;
    float len2 = dx * dx + dy * dy;
    float inv = len2 > 1e-12f ? 1.0f / len2 : 0.0f;
    for (int y = b[1]; y < b[3]; y++) {
        float py = (float)y + 0.5f - y0;
        for (int x = b[0]; x < b[2]; x++) {
            float px = (float)x + 0.5f - x0;
            float t = clampf((px * dx + py * dy) * inv, 0.0f, 1.0f);
            float ex = px - t * dx, ey = py - t * dy;
            float cov = clampf(r + 0.5f - sqrtf(ex * ex + ey * ey), 0.0f, 1.0f);
            if (cov > 0.0f)
                blend(c, x, y, cov, rgb);
        }
    }
}

void canvas_disc(struct canvas *c, float cx, float cy, float r, const float rgb[3])
{
    canvas_capsule(c, cx, cy, cx, cy, r, rgb);
}

void canvas_rect(struct canvas *c, float x0, float y0, float x1, float y1, const float rgb[3])
{
    int b[4];
    if (!clip_box(c, x0 - 1, y0 - 1, x1 + 1, y1 + 1, b))
        return;
    for (int y = b[1]; y < b[3]; y++) {
        float cy = (float)y + 0.5f;
        float vy = clampf(fminf(cy - y0, y1 - cy) + 0.5f, 0.0f, 1.0f);
        for (int x = b[0]; x < b[2]; x++) {
            float cx = (float)x + 0.5f;
            float vx = clampf(fminf(cx - x0, x1 - cx) + 0.5f, 0.0f, 1.0f);
            if (vx * vy > 0.0f)
                blend(c, x, y, vx * vy, rgb);
        }
    }
}
