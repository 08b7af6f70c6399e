/* figure.c — synth's actor: per-action limb kinematics, the skeleton they drive, and drawing.
 * Angles and lengths are in body heights so one gait serves actors of every size. */
#include "video/synth_int.h"
#include "video/rng.h"
#include "video/video.h"

#include <math.h>

#define DEG ((float)M_PI / 180.0f)

/* Segment lengths in body heights, after adult proportions (a head about 1/8 of the height). */
#define TORSO_LEN 0.30f
#define NECK_LEN 0.035f
#define SHOULDER_DROP 0.03f
#define UPPER_ARM_LEN 0.16f
#define FOREARM_LEN 0.15f
#define THIGH_LEN 0.235f
#define SHIN_LEN 0.235f
#define SHOULDER_HALF 0.085f /* front view: shoulders and hips sit apart from the midline */
#define HIP_HALF 0.045f

struct class_gait {
    float cadence; /* cycles per second */
    float speed;   /* body heights per second; 0 = in place */
};

/* Walk and run differ in speed by about 2x over the whole random range (0.46-0.76 vs 0.99-1.6
 * body heights/s), so speed, which only motion shows, separates them. */
static const struct class_gait class_gaits[VIDEO_SYNTH_CLASS_COUNT] = {
    [VIDEO_SYNTH_BEND] = {0.35f, 0.0f},  [VIDEO_SYNTH_JACK] = {1.1f, 0.0f},
    [VIDEO_SYNTH_JUMP] = {1.3f, 0.8f},   [VIDEO_SYNTH_PJUMP] = {1.5f, 0.0f},
    [VIDEO_SYNTH_RUN] = {1.4f, 1.3f},    [VIDEO_SYNTH_SIDE] = {1.6f, 0.8f},
    [VIDEO_SYNTH_SKIP] = {1.1f, 1.0f},   [VIDEO_SYNTH_WALK] = {0.9f, 0.6f},
    [VIDEO_SYNTH_WAVE1] = {1.4f, 0.0f},  [VIDEO_SYNTH_WAVE2] = {1.4f, 0.0f},
};

void figure_gait_random(int cls, uint64_t *rng, struct gait *g)
{
    const struct class_gait *b = &class_gaits[cls];
    float k = rng_range(rng, 0.85f, 1.15f);
    g->cadence = b->cadence * k;
    g->amp = rng_range(rng, 0.85f, 1.15f);
    g->phase0 = rng_unit(rng);
    g->speed = b->speed * k * rng_range(rng, 0.9f, 1.1f);
}

static float pos(float v)
{
    return v > 0.0f ? v : 0.0f;
}

static void set_arm(struct pose *p, int i, float upper_deg, float lower_deg)
{
    p->arm[i][0] = upper_deg * DEG;
    p->arm[i][1] = lower_deg * DEG;
}

static void set_leg(struct pose *p, int i, float thigh_deg, float shin_deg)
{
    p->leg[i][0] = thigh_deg * DEG;
    p->leg[i][1] = shin_deg * DEG;
}

/* Legs swing in antiphase; the knee folds while its leg swings forward (cos > 0). */
static void pose_walk(struct pose *p, float ph, float a)
{
    for (int i = 0; i < 2; i++) {
        float s = i ? -sinf(ph) : sinf(ph), c = i ? -cosf(ph) : cosf(ph);
        float thigh = 25.0f * a * s;
        set_leg(p, i, thigh, thigh - 5.0f - 35.0f * pos(c));
        float upper = -20.0f * a * s;
        set_arm(p, i, upper, upper + 15.0f);
    }
    p->torso = 3.0f * DEG;
}

static void pose_run(struct pose *p, float ph, float a)
{
    for (int i = 0; i < 2; i++) {
        float s = i ? -sinf(ph) : sinf(ph), c = i ? -cosf(ph) : cosf(ph);
        float thigh = 10.0f + 40.0f * a * s;
        set_leg(p, i, thigh, thigh - 25.0f - 65.0f * pos(c));
        float upper = -35.0f * a * s;
        set_arm(p, i, upper, upper + 85.0f);
    }
    p->torso = 12.0f * DEG;
    p->lift = 0.035f * pos(-cosf(2.0f * ph));
}

/* Step-hop: one hop per step, so two per cycle, with the swinging knee raised high. */
static void pose_skip(struct pose *p, float ph, float a)
{
    for (int i = 0; i < 2; i++) {
        float s = i ? -sinf(ph) : sinf(ph), c = i ? -cosf(ph) : cosf(ph);
        float thigh = 30.0f * a * s;
        set_leg(p, i, thigh + 20.0f * pos(c), thigh - 10.0f - 60.0f * pos(c));
        float upper = -40.0f * a * s;
        set_arm(p, i, upper, upper + 30.0f);
    }
    p->torso = 5.0f * DEG;
    p->lift = 0.07f * pos(sinf(2.0f * ph));
}

/* Two-footed jumps forward: crouch on the ground half of the cycle, fly the other half. */
static void pose_jump(struct pose *p, float ph, float a)
{
    float air = pos(sinf(ph)), crouch = pos(-sinf(ph));
    for (int i = 0; i < 2; i++) {
        float thigh = 15.0f + 45.0f * a * crouch + (i ? 4.0f : -4.0f);
        set_leg(p, i, thigh, thigh - 20.0f - 90.0f * a * crouch);
        float upper = -45.0f * crouch + 70.0f * air + (i ? 6.0f : 0.0f);
        set_arm(p, i, upper, upper + 20.0f);
    }
    p->torso = (10.0f + 30.0f * crouch) * DEG;
    p->lift = 0.12f * a * air;
}

/* Front view from here on: limb i sits on its own side; + is away from the midline. */
static void pose_pjump(struct pose *p, float ph, float a)
{
    float air = pos(sinf(ph)), crouch = pos(-sinf(ph));
    for (int i = 0; i < 2; i++) {
        set_leg(p, i, 6.0f + 22.0f * crouch, -4.0f - 14.0f * crouch);
        set_arm(p, i, 12.0f + 15.0f * a * air, 8.0f + 20.0f * a * air);
    }
    p->lift = 0.10f * a * air;
    p->front = 1.0f;
}

static void pose_jack(struct pose *p, float ph, float a)
{
    float e = 0.5f - 0.5f * cosf(ph);
    for (int i = 0; i < 2; i++) {
        set_leg(p, i, 4.0f + 22.0f * a * e, 4.0f + 22.0f * a * e);
        set_arm(p, i, 15.0f + 150.0f * e, 15.0f + 165.0f * e);
    }
    p->lift = 0.05f * pos(sinf(2.0f * ph));
    p->front = 1.0f;
}

/* Side gallop: legs part and close while the body travels sideways. */
static void pose_side(struct pose *p, float ph, float a)
{
    float e = 0.5f - 0.5f * cosf(ph);
    for (int i = 0; i < 2; i++) {
        set_leg(p, i, 4.0f + 20.0f * a * e, 4.0f + 18.0f * a * e);
        set_arm(p, i, 10.0f + 25.0f * e, 12.0f + 30.0f * e);
    }
    p->lift = 0.06f * pos(sinf(ph));
    p->front = 1.0f;
}

static void pose_bend(struct pose *p, float ph, float a)
{
    float b = 0.5f - 0.5f * cosf(ph);
    p->torso = 95.0f * a * b * DEG;
    for (int i = 0; i < 2; i++) {
        set_arm(p, i, 12.0f * b + (i ? 5.0f : 0.0f), 20.0f * b + 8.0f);
        set_leg(p, i, -12.0f * b, 0.0f);
    }
}

/* A raised arm whose forearm swings across the top of the head. */
static void wave_arm(struct pose *p, int i, float ph, float a)
{
    set_arm(p, i, 135.0f, 170.0f + 35.0f * a * sinf(ph));
}

static void pose_wave(struct pose *p, float ph, float a, int both)
{
    wave_arm(p, 0, ph, a);
    if (both)
        wave_arm(p, 1, ph, a);
    else
        set_arm(p, 1, 8.0f, 5.0f);
    for (int i = 0; i < 2; i++)
        set_leg(p, i, 6.0f, 5.0f);
    p->front = 1.0f;
}

void figure_pose_at(int cls, const struct gait *g, float t, struct pose *p)
{
    *p = (struct pose){0};
    float ph = 2.0f * (float)M_PI * (g->cadence * t + g->phase0);
    switch (cls) {
    case VIDEO_SYNTH_WALK: pose_walk(p, ph, g->amp); break;
    case VIDEO_SYNTH_RUN: pose_run(p, ph, g->amp); break;
    case VIDEO_SYNTH_SKIP: pose_skip(p, ph, g->amp); break;
    case VIDEO_SYNTH_JUMP: pose_jump(p, ph, g->amp); break;
    case VIDEO_SYNTH_PJUMP: pose_pjump(p, ph, g->amp); break;
    case VIDEO_SYNTH_JACK: pose_jack(p, ph, g->amp); break;
    case VIDEO_SYNTH_SIDE: pose_side(p, ph, g->amp); break;
    case VIDEO_SYNTH_BEND: pose_bend(p, ph, g->amp); break;
    case VIDEO_SYNTH_WAVE1: pose_wave(p, ph, g->amp, 0); break;
    case VIDEO_SYNTH_WAVE2: pose_wave(p, ph, g->amp, 1); break;
    default: break;
    }
    /* Nobody stands perfectly still: a slow sway keeps in-place actions alive between moves. */
    p->torso += 1.5f * DEG * sinf(2.0f * (float)M_PI * (0.4f * t + g->phase0));
}

static void lerp(float *a, float b, float w)
{
    *a += (b - *a) * w;
}

void figure_pose_blend(struct pose *a, const struct pose *b, float w)
{
    lerp(&a->torso, b->torso, w);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            lerp(&a->arm[i][j], b->arm[i][j], w);
            lerp(&a->leg[i][j], b->leg[i][j], w);
        }
    lerp(&a->lift, b->lift, w);
    lerp(&a->front, b->front, w);
}

static void random_colour(uint64_t *rng, float rgb[3], float lo, float hi)
{
    for (int k = 0; k < 3; k++)
        rgb[k] = rng_range(rng, lo, hi);
}

void figure_random(struct figure *f, float height_px, uint64_t *rng)
{
    f->height = height_px;
    random_colour(rng, f->shirt, 0.05f, 0.95f);
    random_colour(rng, f->trousers, 0.05f, 0.7f);
    float tone = rng_range(rng, 0.35f, 0.95f);
    f->skin[0] = tone;
    f->skin[1] = tone * rng_range(rng, 0.7f, 0.85f);
    f->skin[2] = tone * rng_range(rng, 0.55f, 0.75f);
    f->limb_r = rng_range(rng, 0.022f, 0.030f);
    f->torso_r = rng_range(rng, 0.045f, 0.065f);
    f->head_r = rng_range(rng, 0.055f, 0.068f);
}

/* Joint positions in body heights, pelvis at the origin, y up, x forward. */
struct skeleton {
    float neck[2], head[2];
    float shoulder[2][2], elbow[2][2], hand[2][2];
    float hip[2][2], knee[2][2], foot[2][2];
};

static void limb(const float from[2], float ang, float len, float to[2])
{
    to[0] = from[0] + len * sinf(ang);
    to[1] = from[1] - len * cosf(ang);
}

static void skeleton_of(const struct pose *p, struct skeleton *s)
{
    s->neck[0] = TORSO_LEN * sinf(p->torso);
    s->neck[1] = TORSO_LEN * cosf(p->torso);
    float head_tilt = 0.8f * p->torso;
    float hr = NECK_LEN + 0.062f;
    s->head[0] = s->neck[0] + hr * sinf(head_tilt);
    s->head[1] = s->neck[1] + hr * cosf(head_tilt);
    for (int i = 0; i < 2; i++) {
        /* In the front view limb i sits on side +1 or -1 and its angle mirrors with it. */
        float side = p->front > 0.5f ? (i ? -1.0f : 1.0f) : 1.0f;
        float spread = p->front;
        float sh[2] = {s->neck[0] - SHOULDER_DROP * sinf(p->torso) + side * spread * SHOULDER_HALF,
                       s->neck[1] - SHOULDER_DROP * cosf(p->torso)};
        s->shoulder[i][0] = sh[0];
        s->shoulder[i][1] = sh[1];
        limb(s->shoulder[i], side * p->arm[i][0], UPPER_ARM_LEN, s->elbow[i]);
        limb(s->elbow[i], side * p->arm[i][1], FOREARM_LEN, s->hand[i]);
        s->hip[i][0] = side * spread * HIP_HALF;
        s->hip[i][1] = 0.0f;
        limb(s->hip[i], side * p->leg[i][0], THIGH_LEN, s->knee[i]);
        limb(s->knee[i], side * p->leg[i][1], SHIN_LEN, s->foot[i]);
    }
}

struct to_image {
    float x, y, scale;
    int dir;
};

static void map_pt(const struct to_image *m, const float p[2], float out[2])
{
    out[0] = m->x + (float)m->dir * p[0] * m->scale;
    out[1] = m->y - p[1] * m->scale;
}

static void draw_seg(struct canvas *c, const struct to_image *m, const float a[2], const float b[2],
                     float r, const float rgb[3])
{
    float pa[2], pb[2];
    map_pt(m, a, pa);
    map_pt(m, b, pb);
    canvas_capsule(c, pa[0], pa[1], pb[0], pb[1], r * m->scale, rgb);
}

static void shade(const float in[3], float k, float out[3])
{
    for (int i = 0; i < 3; i++)
        out[i] = in[i] * k;
}

static void draw_leg(struct canvas *c, const struct to_image *m, const struct skeleton *s, int i,
                     float r, const float rgb[3])
{
    draw_seg(c, m, s->hip[i], s->knee[i], r * 1.2f, rgb);
    draw_seg(c, m, s->knee[i], s->foot[i], r, rgb);
}

static void draw_arm(struct canvas *c, const struct to_image *m, const struct skeleton *s, int i,
                     float r, const float shirt[3], const float skin[3])
{
    draw_seg(c, m, s->shoulder[i], s->elbow[i], r, shirt);
    draw_seg(c, m, s->elbow[i], s->hand[i], r * 0.9f, skin);
}

void figure_draw(struct canvas *c, const struct figure *f, const struct pose *p, float x,
                 float ground_y, int dir)
{
    struct skeleton s;
    skeleton_of(p, &s);
    /* The lower foot (less its thickness) rests on the ground unless the pose is in the air. */
    float low = fminf(s.foot[0][1], s.foot[1][1]) - f->limb_r;
    struct to_image m = {x, ground_y - (p->lift - low) * f->height, f->height, dir};
    float far_shirt[3], far_trousers[3], far_skin[3];
    /* The far limbs of a side view are in shadow, so limb order stays readable. */
    float k = p->front > 0.5f ? 1.0f : 0.72f;
    shade(f->shirt, k, far_shirt);
    shade(f->trousers, k, far_trousers);
    shade(f->skin, k, far_skin);
    draw_arm(c, &m, &s, 1, f->limb_r, far_shirt, far_skin);
    draw_leg(c, &m, &s, 1, f->limb_r, far_trousers);
    draw_leg(c, &m, &s, 0, f->limb_r, f->trousers);
    float pelvis[2] = {0.0f, 0.0f};
    draw_seg(c, &m, pelvis, s.neck, f->torso_r, f->shirt);
    draw_seg(c, &m, s.neck, s.head, f->limb_r, f->skin);
    float hc[2];
    map_pt(&m, s.head, hc);
    canvas_disc(c, hc[0], hc[1], f->head_r * f->height, f->skin);
    draw_arm(c, &m, &s, 0, f->limb_r, f->shirt, f->skin);
}
