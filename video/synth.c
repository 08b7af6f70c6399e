/* synth.c — the synthetic action data set: one actor per clip in a random scene, encoded as
 * H.264 MP4, in UCF101-style folders with split lists; and one long multi-action sequence. */
#include "video/video.h"
#include "video/rng.h"
#include "video/synth_int.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const class_names[VIDEO_SYNTH_CLASS_COUNT] = {
#define VIDEO_SYNTH_NAME_(name, str) [VIDEO_SYNTH_##name] = str,
    VIDEO_SYNTH_CLASS_MAP(VIDEO_SYNTH_NAME_)
#undef VIDEO_SYNTH_NAME_
};

/* Longest path synth builds from DIR: enough for any sane folder, checked before use. */
#define SYNTH_PATH_MAX 4096
/* A change of action blends the old pose into the new one over this long. */
#define SEQ_BLEND_S 0.3f
#define SEQ_MIN_SEGMENT_S 1.5f
/* An actor's height as a share of the frame's, for clips and sequences alike: a sequence is
 * what a model trained on the clips must recognise, so its actor comes from the same range. */
#define SYNTH_FIGURE_MIN 0.35f
#define SYNTH_FIGURE_MAX 0.55f

const char *video_synth_class_name(int cls)
{
    return cls >= 0 && cls < VIDEO_SYNTH_CLASS_COUNT ? class_names[cls] : "none";
}

int video_synth_class_find(const char *name)
{
    for (int i = 0; i < VIDEO_SYNTH_CLASS_COUNT; i++)
        if (strcmp(name, class_names[i]) == 0)
            return i;
    return -1;
}

void video_synth_opts_default(struct video_synth_opts *o)
{
    *o = (struct video_synth_opts){.classes = VIDEO_SYNTH_CLASS_COUNT, .clips_per_class = 40,
                                   .seed = 1, .width = 320, .height = 240, .fps = 25,
                                   .seconds = 3.0, .test_fraction = 0.2, .threads = 2,
                                   .progress = 0};
}

int video_synth_opts_check(const struct video_synth_opts *o, struct err_msg *em)
{
    if (o->classes < 1 || o->classes > VIDEO_SYNTH_CLASS_COUNT)
        return err_set(em, ERR_RANGE, "classes %d outside 1..%d", o->classes, VIDEO_SYNTH_CLASS_COUNT);
    if (o->clips_per_class < 1 || o->clips_per_class > VIDEO_SYNTH_MAX_CLIPS_PER_CLASS)
        return err_set(em, ERR_RANGE, "clips per class %d outside 1..%d", o->clips_per_class,
                       VIDEO_SYNTH_MAX_CLIPS_PER_CLASS);
    if (o->width < VIDEO_MIN_SIDE || o->width > VIDEO_MAX_WIDTH || (o->width & 1) ||
        o->height < VIDEO_MIN_SIDE || o->height > VIDEO_MAX_HEIGHT || (o->height & 1))
        return err_set(em, ERR_RANGE, "size %dx%d must be even and within %dx%d..%dx%d", o->width,
                       o->height, VIDEO_MIN_SIDE, VIDEO_MIN_SIDE, VIDEO_MAX_WIDTH, VIDEO_MAX_HEIGHT);
    if (o->fps < 1 || o->fps > VIDEO_MAX_FPS)
        return err_set(em, ERR_RANGE, "fps %d outside 1..%d", o->fps, VIDEO_MAX_FPS);
    if (!(o->seconds >= VIDEO_SYNTH_MIN_SECONDS && o->seconds <= VIDEO_SYNTH_MAX_SECONDS))
        return err_set(em, ERR_RANGE, "seconds %g outside %g..%g", o->seconds,
                       VIDEO_SYNTH_MIN_SECONDS, VIDEO_SYNTH_MAX_SECONDS);
    if (!(o->test_fraction >= 0.0 && o->test_fraction <= VIDEO_SYNTH_MAX_TEST_FRACTION))
        return err_set(em, ERR_RANGE, "test fraction %g outside 0..%g", o->test_fraction,
                       VIDEO_SYNTH_MAX_TEST_FRACTION);
    if (o->threads < 1 || o->threads > VIDEO_SYNTH_MAX_THREADS)
        return err_set(em, ERR_RANGE, "threads %d outside 1..%d", o->threads, VIDEO_SYNTH_MAX_THREADS);
    return 0;
}

/* ---- one frame at a time: the buffers a clip renders into, allocated once per clip ---- */

struct render {
    struct canvas canvas;
    uint8_t *yuv;
    uint8_t *planes[3];
    int strides[3];
    struct video_writer *writer;
};

static int render_open(struct render *r, const char *path, const struct video_synth_opts *o,
                       struct err_msg *em)
{
    *r = (struct render){.canvas = {o->width, o->height, NULL}};
    size_t n = (size_t)o->width * (size_t)o->height;
    r->canvas.px = malloc(n * 3 * sizeof(float));
    r->yuv = malloc(n + n / 2);
    if (!r->canvas.px || !r->yuv)
        return err_set(em, ERR_NOMEM, "%s: out of memory", path);
    r->planes[0] = r->yuv;
    r->planes[1] = r->yuv + n;
    r->planes[2] = r->yuv + n + n / 4;
    r->strides[0] = o->width;
    r->strides[1] = r->strides[2] = o->width / 2;
    struct video_writer_opts wo = {.width = o->width, .height = o->height, .fps = o->fps};
    return video_writer_open(path, &wo, &r->writer, em);
}

static int render_emit(struct render *r, const struct scene *s, float t, uint64_t *rng,
                       struct err_msg *em)
{
    scene_to_yuv(s, &r->canvas, t, rng, r->planes, r->strides);
    return video_writer_write(r->writer, (const uint8_t *const *)r->planes, r->strides, em);
}

static void render_close(struct render *r)
{
    video_writer_free(r->writer);
    free(r->canvas.px);
    free(r->yuv);
}

/* ---- one clip of one action ---- */

struct actor {
    int cls;
    int dir;
    struct figure fig;
    struct gait gait;
    float speed_px;   /* pixels per second along dir */
    float x_mid;      /* world x of the actor at the clip's midpoint */
    float ground_y;   /* world y of the feet */
};

static float pick_ground(const struct scene *s, float fig_h, uint64_t *rng)
{
    float lo = fmaxf(s->horizon + 0.05f * (float)s->h, fig_h + 0.04f * (float)s->h);
    float hi = 0.97f * (float)s->h;
    return lo >= hi ? hi : rng_range(rng, lo, hi);
}

static void actor_random(struct actor *a, const struct video_synth_clip *c, int w, int h,
                         uint64_t *rng)
{
    a->cls = c->cls;
    a->dir = c->direction ? (c->direction > 0 ? 1 : -1) : rng_sign(rng);
    float fh = c->figure_height > 0 ? (float)c->figure_height
                                    : (float)h * rng_range(rng, SYNTH_FIGURE_MIN, SYNTH_FIGURE_MAX);
    figure_random(&a->fig, fminf(fh, 0.9f * (float)h), rng);
    if (a->cls >= 0)
        figure_gait_random(a->cls, rng, &a->gait);
    else
        a->gait = (struct gait){0};
    a->speed_px = c->speed_px_s > 0 ? c->speed_px_s : a->gait.speed * a->fig.height;
    a->x_mid = (float)w * (c->clean ? 0.5f : rng_range(rng, 0.35f, 0.65f));
}

/* Hand-held cameras follow fast movers a little: half the travelling clips pan with the actor. */
static float pick_pan(const struct actor *a, int clean, uint64_t *rng)
{
    float p = rng_unit(rng) < 0.5f ? 0.0f : rng_range(rng, 0.1f, 0.5f);
    return clean ? 0.0f : p * a->speed_px * (float)a->dir;
}

static int clip_frames(const struct video_synth_opts *o)
{
    return (int)lround(o->seconds * o->fps);
}

static int clip_render(struct render *r, struct scene *s, struct actor *a,
                       const struct video_synth_opts *o, uint64_t *rng, struct err_msg *em)
{
    int n = clip_frames(o);
    float half = 0.5f * (float)n / (float)o->fps;
    float x_mid_world = a->x_mid + s->pan_vx * half;
    for (int i = 0; i < n; i++) {
        float t = (float)i / (float)o->fps, cx, cy;
        scene_camera(s, t, rng, &cx, &cy);
        scene_render(s, &r->canvas, t, cx, cy);
        if (a->cls >= 0) {
            struct pose p;
            figure_pose_at(a->cls, &a->gait, t, &p);
            float x = x_mid_world + (float)a->dir * a->speed_px * (t - half);
            figure_draw(&r->canvas, &a->fig, &p, x - cx, a->ground_y - cy, a->dir);
        }
        int rc = render_emit(r, s, t, rng, em);
        if (rc < 0)
            return rc;
    }
    return video_writer_finish(r->writer, em);
}

int video_synth_clip_write(const char *path, const struct video_synth_clip *c,
                           const struct video_synth_opts *o, struct err_msg *em)
{
    int rc = video_synth_opts_check(o, em);
    if (rc < 0)
        return rc;
    if (c->cls < VIDEO_SYNTH_NONE || c->cls >= VIDEO_SYNTH_CLASS_COUNT)
        return err_set(em, ERR_RANGE, "%s: class %d out of range", path, c->cls);
    uint64_t rng = c->seed;
    struct actor a;
    actor_random(&a, c, o->width, o->height, &rng);
    struct scene s;
    if (scene_init(&s, o->width, o->height, pick_pan(&a, c->clean, &rng), (float)o->seconds,
                   c->clean, &rng) < 0)
        return err_set(em, ERR_NOMEM, "%s: out of memory", path);
    a.ground_y = pick_ground(&s, a.fig.height, &rng);
    struct render r;
    rc = render_open(&r, path, o, em);
    if (rc == 0)
        rc = clip_render(&r, &s, &a, o, &rng, em);
    render_close(&r);
    scene_fini(&s);
    return rc;
}

/* ---- the data set: folders, lists and a pool of workers ---- */

static int make_dir(const char *path, struct err_msg *em)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    return err_set(em, ERR_IO, "%s: cannot create folder: %s", path, strerror(errno));
}

/* mkdir -p: every missing parent too. */
static int make_dirs(const char *path, struct err_msg *em)
{
    char buf[SYNTH_PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return err_set(em, ERR_RANGE, "output folder name empty or too long");
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i < n; i++) {
        if (buf[i] != '/')
            continue;
        buf[i] = '\0';
        int rc = make_dir(buf, em);
        buf[i] = '/';
        if (rc < 0)
            return rc;
    }
    return make_dir(buf, em);
}

static int clip_is_test(int j, int n, double fraction)
{
    if (fraction <= 0.0 || n < 2)
        return 0;
    long m = lround(n * fraction);
    if (m < 1)
        m = 1;
    if (m > n - 1)
        m = n - 1;
    return ((long)(j + 1) * m) / n > ((long)j * m) / n;
}

static void clip_relpath(char *buf, size_t cap, int cls, int j)
{
    snprintf(buf, cap, "%s/%s_%03d.mp4", class_names[cls], class_names[cls], j);
}

struct pool {
    const char *dir;
    const struct video_synth_opts *o;
    atomic_int next, done, failed;
    pthread_mutex_t lock;
    int rc;
    struct err_msg em;
};

static int pool_clip(struct pool *p, int idx, struct err_msg *em)
{
    int cls = idx / p->o->clips_per_class, j = idx % p->o->clips_per_class;
    char rel[128], path[SYNTH_PATH_MAX];
    clip_relpath(rel, sizeof rel, cls, j);
    snprintf(path, sizeof path, "%s/%s", p->dir, rel);
    struct video_synth_clip c = {.cls = cls, .seed = rng_derive(p->o->seed, (uint64_t)cls, (uint64_t)j)};
    return video_synth_clip_write(path, &c, p->o, em);
}

static void *pool_worker(void *arg)
{
    struct pool *p = arg;
    int total = p->o->classes * p->o->clips_per_class;
    for (;;) {
        int idx = atomic_fetch_add(&p->next, 1);
        if (idx >= total || atomic_load(&p->failed))
            return NULL;
        struct err_msg em = {{0}};
        int rc = pool_clip(p, idx, &em);
        if (rc < 0) {
            pthread_mutex_lock(&p->lock);
            if (!atomic_exchange(&p->failed, 1)) {
                p->rc = rc;
                p->em = em;
            }
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        int done = atomic_fetch_add(&p->done, 1) + 1;
        if (p->o->progress > 0 && (done % p->o->progress == 0 || done == total))
            log_info("synth: %d/%d clips", done, total);
    }
}

static int pool_run(const char *dir, const struct video_synth_opts *o, struct err_msg *em)
{
    struct pool p = {.dir = dir, .o = o};
    pthread_mutex_init(&p.lock, NULL);
    pthread_t th[VIDEO_SYNTH_MAX_THREADS];
    int started = 0;
    for (; started < o->threads; started++)
        if (pthread_create(&th[started], NULL, pool_worker, &p) != 0)
            break;
    if (started == 0)
        pool_worker(&p);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&p.lock);
    if (atomic_load(&p.failed)) {
        if (em)
            *em = p.em;
        return p.rc;
    }
    return 0;
}

static int write_lists(const char *dir, const struct video_synth_opts *o, struct err_msg *em)
{
    static const char *const names[3] = {"classInd.txt", "trainlist.txt", "testlist.txt"};
    FILE *f[3] = {NULL, NULL, NULL};
    char path[SYNTH_PATH_MAX];
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (!(f[i] = fopen(path, "w")))
            rc = err_set(em, ERR_IO, "%s: %s", path, strerror(errno));
    }
    for (int c = 0; rc == 0 && c < o->classes; c++) {
        fprintf(f[0], "%d %s\n", c + 1, class_names[c]);
        for (int j = 0; j < o->clips_per_class; j++) {
            char rel[128];
            clip_relpath(rel, sizeof rel, c, j);
            if (clip_is_test(j, o->clips_per_class, o->test_fraction))
                fprintf(f[2], "%s\n", rel);
            else
                fprintf(f[1], "%s %d\n", rel, c + 1);
        }
    }
    for (int i = 0; i < 3; i++) {
        if (f[i] && (ferror(f[i]) | fclose(f[i])) && rc == 0)
            rc = err_set(em, ERR_IO, "%s/%s: write failed", dir, names[i]);
    }
    return rc;
}

int video_synth_dataset(const char *dir, const struct video_synth_opts *o, struct err_msg *em)
{
    int rc = video_synth_opts_check(o, em);
    if (rc < 0)
        return rc;
    if (strlen(dir) > SYNTH_PATH_MAX - 64)
        return err_set(em, ERR_RANGE, "output folder name too long");
    if ((rc = make_dirs(dir, em)) < 0)
        return rc;
    for (int c = 0; c < o->classes; c++) {
        char path[SYNTH_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, class_names[c]);
        if ((rc = make_dir(path, em)) < 0)
            return rc;
    }
    if ((rc = pool_run(dir, o, em)) < 0)
        return rc;
    return write_lists(dir, o, em);
}

/* ---- the sequence: one actor, several actions in turn, a static camera ---- */

struct segment {
    int cls, dir;
    float start, end;
    struct gait gait;
};

/* The longest sequence over the shortest segment: the bound on the timeline's rows. */
#define SEQ_MAX_SEGMENTS ((int)(VIDEO_SYNTH_MAX_SEQUENCE_SECONDS / SEQ_MIN_SEGMENT_S) + 2)

static int seq_in_place(int prev_cls, int classes, uint64_t *rng)
{
    static const int still[] = {VIDEO_SYNTH_BEND, VIDEO_SYNTH_JACK, VIDEO_SYNTH_PJUMP,
                                VIDEO_SYNTH_WAVE1, VIDEO_SYNTH_WAVE2};
    int ok[5], n = 0;
    for (int i = 0; i < 5; i++)
        if (still[i] < classes && still[i] != prev_cls)
            ok[n++] = still[i];
    return n ? ok[rng_int(rng, n)] : VIDEO_SYNTH_BEND;
}

/* A duration of about d that leaves either nothing or at least a minimum segment after it. */
static float seq_fit(float d, float rest)
{
    d = fminf(d, rest);
    return rest - d < SEQ_MIN_SEGMENT_S ? rest : d;
}

/* Picks the next action; one that travels goes towards the roomier side and is cut short
 * before the edge of the frame, or replaced by an action in place when there is no room. */
static void seq_next(struct segment *sg, int prev_cls, float *x, float fig_h, float t, float total,
                     int classes, int w, uint64_t *rng)
{
    int cls;
    do
        cls = rng_int(rng, classes);
    while (classes > 1 && cls == prev_cls);
    float rest = total - t;
    float dur = seq_fit(rng_range(rng, 2.5f, 5.0f), rest);
    figure_gait_random(cls, rng, &sg->gait);
    sg->dir = *x < 0.5f * (float)w ? 1 : -1;
    float room = sg->dir > 0 ? 0.85f * (float)w - *x : *x - 0.15f * (float)w;
    float speed = sg->gait.speed * fig_h;
    if (speed > 0 && speed * dur > room) {
        dur = room / speed;
        if (rest - dur < SEQ_MIN_SEGMENT_S)
            dur = rest - SEQ_MIN_SEGMENT_S;
        if (dur < SEQ_MIN_SEGMENT_S) {
            cls = seq_in_place(prev_cls, classes, rng);
            figure_gait_random(cls, rng, &sg->gait);
            dur = seq_fit(rng_range(rng, 2.5f, 4.0f), rest);
        }
    }
    sg->cls = cls;
    sg->start = t;
    sg->end = t + dur;
    *x += (float)sg->dir * sg->gait.speed * fig_h * dur;
}

static int seq_plan(struct segment *sg, float total, float fig_h, float x0, int classes, int w,
                    uint64_t *rng)
{
    int n = 0, prev = -1;
    float t = 0.0f, x = x0;
    while (t < total - 1e-3f && n < SEQ_MAX_SEGMENTS) {
        seq_next(&sg[n], prev, &x, fig_h, t, total, classes, w, rng);
        t = sg[n].end;
        prev = sg[n++].cls;
    }
    sg[n - 1].end = total;
    return n;
}

static int seq_write_timeline(const char *path, const struct segment *sg, int n, struct err_msg *em)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return err_set(em, ERR_IO, "%s: %s", path, strerror(errno));
    fprintf(f, "start_s,end_s,action\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "%.3f,%.3f,%s\n", sg[i].start, sg[i].end, class_names[sg[i].cls]);
    if (ferror(f) | fclose(f))
        return err_set(em, ERR_IO, "%s: write failed", path);
    return 0;
}

static void seq_pose(const struct segment *sg, int i, float t, struct pose *p)
{
    figure_pose_at(sg[i].cls, &sg[i].gait, t - sg[i].start, p);
    if (i > 0 && t - sg[i].start < SEQ_BLEND_S) {
        struct pose old;
        figure_pose_at(sg[i - 1].cls, &sg[i - 1].gait, t - sg[i - 1].start, &old);
        figure_pose_blend(&old, p, (t - sg[i].start) / SEQ_BLEND_S);
        *p = old;
    }
}

static int seq_render(struct render *r, struct scene *s, const struct figure *fig, float ground,
                      float x, const struct segment *sg, int nseg, const struct video_synth_opts *o,
                      uint64_t *rng, struct err_msg *em)
{
    int n = clip_frames(o), seg = 0, dir = sg[0].dir;
    for (int i = 0; i < n; i++) {
        float t = (float)i / (float)o->fps, cx, cy;
        while (seg < nseg - 1 && t >= sg[seg].end)
            seg++;
        if (sg[seg].gait.speed > 0)
            dir = sg[seg].dir;
        scene_camera(s, t, rng, &cx, &cy);
        scene_render(s, &r->canvas, t, cx, cy);
        struct pose p;
        seq_pose(sg, seg, t, &p);
        figure_draw(&r->canvas, fig, &p, x - cx, ground - cy, dir);
        int rc = render_emit(r, s, t, rng, em);
        if (rc < 0)
            return rc;
        x += (float)sg[seg].dir * sg[seg].gait.speed * fig->height / (float)o->fps;
    }
    return video_writer_finish(r->writer, em);
}

int video_synth_sequence(const char *mp4_path, const char *timeline_path,
                         const struct video_synth_opts *o, double seconds, struct err_msg *em)
{
    struct video_synth_opts so = *o;
    so.seconds = seconds;
    int rc = video_synth_opts_check(o, em);
    if (rc < 0)
        return rc;
    if (!(seconds >= 2 * SEQ_MIN_SEGMENT_S && seconds <= VIDEO_SYNTH_MAX_SEQUENCE_SECONDS))
        return err_set(em, ERR_RANGE, "sequence seconds %g outside %g..%g", seconds,
                       2 * SEQ_MIN_SEGMENT_S, VIDEO_SYNTH_MAX_SEQUENCE_SECONDS);
    uint64_t rng = rng_derive(o->seed, 0x5E9, 0);
    struct figure fig;
    figure_random(&fig, (float)o->height * rng_range(&rng, SYNTH_FIGURE_MIN, SYNTH_FIGURE_MAX),
                  &rng);
    float x0 = (float)o->width * rng_range(&rng, 0.3f, 0.7f);
    struct segment *sg = calloc(SEQ_MAX_SEGMENTS, sizeof *sg);
    if (!sg)
        return err_set(em, ERR_NOMEM, "%s: out of memory", mp4_path);
    int nseg = seq_plan(sg, (float)seconds, fig.height, x0, o->classes, o->width, &rng);
    struct scene s;
    if (scene_init(&s, o->width, o->height, 0.0f, (float)seconds, 0, &rng) < 0) {
        free(sg);
        return err_set(em, ERR_NOMEM, "%s: out of memory", mp4_path);
    }
    float ground = pick_ground(&s, fig.height, &rng);
    struct render r;
    rc = render_open(&r, mp4_path, &so, em);
    if (rc == 0)
        rc = seq_render(&r, &s, &fig, ground, x0, sg, nseg, &so, &rng, em);
    if (rc == 0)
        rc = seq_write_timeline(timeline_path, sg, nseg, em);
    render_close(&r);
    scene_fini(&s);
    free(sg);
    return rc;
}
