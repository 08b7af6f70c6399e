/* synth_int.h — internals of synth shared by figure.c, scene.c and synth.c: a float RGB canvas,
 * the articulated actor (pose per action, skeleton, drawing) and the scene around it. */
#ifndef ACTIOND_VIDEO_SYNTH_INT_H
#define ACTIOND_VIDEO_SYNTH_INT_H

#include <stddef.h>
#include <stdint.h>

/* Interleaved RGB floats in [0, 1]; the renderer's working image. */
struct canvas {
    int w, h;
    float *px; /* w * h * 3 */
};

void canvas_disc(struct canvas *c, float cx, float cy, float r, const float rgb[3]);
/* A thick segment with round caps, edges anti-aliased over one pixel. */
void canvas_capsule(struct canvas *c, float x0, float y0, float x1, float y1, float r,
                    const float rgb[3]);
void canvas_rect(struct canvas *c, float x0, float y0, float x1, float y1, const float rgb[3]);

/* Angles in radians; a limb at 0 hangs straight down, positive turns it towards the way the
 * actor faces (side view) or away from the body's midline on its own side (front view). */
struct pose {
    float torso;      /* pelvis-to-neck lean from upright, + forward */
    float arm[2][2];  /* [limb][upper, lower], absolute */
    float leg[2][2];  /* [limb][thigh, shin], absolute */
    float lift;       /* lowest foot above the ground, in body heights */
    float front;      /* 1 front view (limbs mirrored about the midline), 0 side view */
};

/* Per-actor variation of a gait, drawn once per clip. */
struct gait {
    float cadence;  /* cycles per second */
    float amp;      /* scales limb swing, ~0.8..1.2 */
    float phase0;   /* cycles */
    float speed;    /* travel in body heights per second (0 for actions in place) */
};

/* Draws the class's base gait with per-clip variation. */
void figure_gait_random(int cls, uint64_t *rng, struct gait *g);
/* The pose at time t seconds. */
void figure_pose_at(int cls, const struct gait *g, float t, struct pose *p);
/* Blends a toward b by w in [0, 1] (for changes of action in a sequence). */
void figure_pose_blend(struct pose *a, const struct pose *b, float w);

struct figure {
    float height;        /* pixels */
    float shirt[3], trousers[3], skin[3];
    float limb_r, torso_r, head_r; /* in body heights */
};

void figure_random(struct figure *f, float height_px, uint64_t *rng);
/* Draws the actor with its feet (or, in the air, lift above) on ground_y at x, facing dir. */
void figure_draw(struct canvas *c, const struct figure *f, const struct pose *p, float x,
                 float ground_y, int dir);

/* ---- the scene: a textured backdrop wider than the frame, distractors, a moving camera ---- */

#define SCENE_MAX_DISTRACTORS 4

struct distractor {
    int shape;               /* 0 rectangle, 1 disc, 2 swinging bar */
    float x, y, vx, vy;      /* world pixels and pixels per second */
    float w, h;
    float rgb[3];
    float swing_hz;
};

struct scene {
    int w, h;                 /* the frame */
    int tw, th;               /* the backdrop texture */
    float *tex;               /* tw * th * 3 */
    float origin_x, origin_y; /* world position of texel (0, 0) */
    float horizon;            /* where wall meets floor, world pixels */
    float pan_vx;             /* camera pixels per second */
    float shake_amp[2], shake_hz[2], shake_ph[2], jitter;
    float flicker_amp, flicker_hz;
    float noise_y, noise_c;   /* sensor noise, 8-bit levels (sigma) */
    int ndistractors;
    struct distractor d[SCENE_MAX_DISTRACTORS];
};

/* Builds a random scene for a w x h frame whose camera pans at pan_vx for `seconds`. */
int scene_init(struct scene *s, int w, int h, float pan_vx, float seconds, int clean, uint64_t *rng);
void scene_fini(struct scene *s);
/* The camera's world offset at time t (pan + shake). */
void scene_camera(const struct scene *s, float t, uint64_t *rng, float *cx, float *cy);
/* Draws backdrop and distractors as seen from camera offset (cx, cy). */
void scene_render(const struct scene *s, struct canvas *c, float t, float cx, float cy);
/* Converts to yuv420p (BT.601 limited range) with lighting flicker and sensor noise. */
void scene_to_yuv(const struct scene *s, const struct canvas *c, float t, uint64_t *rng,
                  uint8_t *const planes[3], const int strides[3]);

#endif
