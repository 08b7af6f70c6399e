/* loader.c — the batch loader: worker threads read clips through the cache, pick TSN snippets,
 * augment and normalise them into a ring of staged clips; a packer thread copies them, in order,
 * into double-buffered batches that video_loader_next hands out. */
#include "video/video.h"
#include "video/motion_int.h"
#include "video/rng.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One batch with the caller, one being packed. */
#define LOADER_BUFFERS 2
/* Salts keep the order's and the clips' random streams apart from each other and from synth. */
#define LOADER_ORDER_SALT 0x4f52444552ull
#define LOADER_CLIP_SALT 0x434c4950ull
#define LOADER_CACHE_DIR ".actiond-cache"

enum stage_state { STAGE_FREE, STAGE_BUSY, STAGE_OK, STAGE_FAILED };
enum buf_state { BUF_FREE, BUF_FILLING, BUF_READY, BUF_HELD };

/* A clip prepared by a worker, waiting for the packer. */
struct stage {
    enum stage_state state;
    int clip;                 /* data set index */
    float *rgb, *motion;      /* [K][3][H][W], [K][2L][H][W] */
};

struct batch_buf {
    struct video_batch b;
    enum buf_state state;
    int64_t seq;
};

struct worker {
    struct video_loader *ld;
    pthread_t th;
    struct video_cache_reader *reader;
    uint8_t *frames;          /* the snippet's L + 1 samples, augmented */
    struct err_msg em;
};

struct video_loader {
    struct video_loader_opts o;
    const struct video_dataset *ds;
    int n;                    /* clips in the loader */
    int *clips;               /* their data set indices */
    int *order;               /* positions in clips[] for epoch order_epoch */
    int64_t order_epoch;
    unsigned char *bad;       /* by position: could not be read */
    struct video_cache *cache;
    int own_cache;
    float lut[3][256];        /* x -> (x/255 - mean) / std, as the sampler computes it */
    size_t plane, frame_bytes, clip_rgb, clip_motion;

    pthread_mutex_t lock;
    pthread_cond_t cv_work;   /* a stage came free: workers may claim */
    pthread_cond_t cv_stage;  /* a stage is done: the packer may take it */
    pthread_cond_t cv_batch;  /* a batch is ready, or a buffer came free */
    atomic_int stop;          /* also the readers': ends decodes in progress */
    int fatal;
    struct err_msg fatal_em;

    struct stage *stages;
    int n_stages;
    int64_t claimed, consumed; /* clip positions over all epochs: q -> epoch q / n, q % n */
    struct batch_buf bufs[LOADER_BUFFERS];
    int64_t published, taken;
    int held;                 /* the buffer the caller has, or -1 */

    struct worker *workers;
    int n_workers;            /* started */
    pthread_t packer;
    int packer_started;

    int64_t failed, batches_out, clips_out;
    uint64_t wait_ns;
};

void video_loader_opts_default(struct video_loader_opts *o)
{
    *o = (struct video_loader_opts){.width = 112, .height = 112, .fps = 25.0,
                                    .mean = {0.485f, 0.456f, 0.406f},
                                    .std = {0.229f, 0.224f, 0.225f}, .segments = 3, .length = 5,
                                    .motion = VIDEO_MOTION_DIFF, .batch = 8, .shuffle = 1,
                                    .augment = 1, .seed = 1, .threads = 2};
}

/* ---- checks ---- */

static int opts_check(const struct video_loader_opts *o, struct err_msg *em)
{
    if (o->width < VIDEO_MIN_SIDE / 2 || o->width > VIDEO_MAX_MODEL_SIDE ||
        o->height < VIDEO_MIN_SIDE / 2 || o->height > VIDEO_MAX_MODEL_SIDE)
        return err_set(em, ERR_RANGE, "loader: size %dx%d outside %d..%d", o->width, o->height,
                       VIDEO_MIN_SIDE / 2, VIDEO_MAX_MODEL_SIDE);
    if (!(o->fps > 0.0 && o->fps <= VIDEO_MAX_FPS))
        return err_set(em, ERR_RANGE, "loader: fps %g outside (0, %d]", o->fps, VIDEO_MAX_FPS);
    for (int c = 0; c < 3; c++)
        if (!(o->std[c] > 1e-6f) || !isfinite(o->mean[c]) || !isfinite(o->std[c]))
            return err_set(em, ERR_RANGE, "loader: std must be positive and mean finite");
    if (o->segments < 1 || o->segments > VIDEO_MAX_SEGMENTS || o->length < 1 ||
        o->length > VIDEO_MAX_MOTION_LEN)
        return err_set(em, ERR_RANGE, "loader: segments %d or length %d outside 1..%d, 1..%d",
                       o->segments, o->length, VIDEO_MAX_SEGMENTS, VIDEO_MAX_MOTION_LEN);
    if ((int)o->motion < 0 || o->motion >= VIDEO_MOTION_COUNT)
        return err_set(em, ERR_RANGE, "loader: unknown motion kind %d", (int)o->motion);
    /* the cache keeps frames and codec vectors; flow would be recomputed per epoch */
    if (o->motion != VIDEO_MOTION_DIFF && o->motion != VIDEO_MOTION_MV)
        return err_set(em, ERR_UNSUPPORTED, "loader: motion kind %s is not supported for "
                       "training yet (diff and mv are)", video_motion_name(o->motion));
    if (o->batch < 1 || o->batch > VIDEO_LOADER_MAX_BATCH)
        return err_set(em, ERR_RANGE, "loader: batch %d outside 1..%d", o->batch,
                       VIDEO_LOADER_MAX_BATCH);
    if (o->threads < 1 || o->threads > VIDEO_LOADER_MAX_THREADS)
        return err_set(em, ERR_RANGE, "loader: threads %d outside 1..%d", o->threads,
                       VIDEO_LOADER_MAX_THREADS);
    return 0;
}

static int indices_check(const struct video_dataset *ds, const int *idx, int n, struct err_msg *em)
{
    int count = video_dataset_count(ds);
    if (n < 1 || n > count)
        return err_set(em, ERR_RANGE, "loader: %d clips asked for, the data set has %d", n, count);
    for (int i = 0; idx && i < n; i++)
        if (idx[i] < 0 || idx[i] >= count)
            return err_set(em, ERR_RANGE, "loader: clip index %d outside 0..%d", idx[i], count - 1);
    return 0;
}

/* Every float buffer: LOADER_BUFFERS batches and the staged clips. */
static int memory_check(const struct video_loader *ld, struct err_msg *em)
{
    double clips = (double)LOADER_BUFFERS * ld->o.batch + ld->n_stages;
    double bytes = clips * (double)(ld->clip_rgb + ld->clip_motion) * sizeof(float);
    if (bytes > (double)VIDEO_LOADER_MAX_BYTES)
        return err_set(em, ERR_RANGE, "loader: buffers would take %.0f MiB, over %zu MiB: fewer "
                       "clips per batch, segments or a smaller size", bytes / 1048576.0,
                       VIDEO_LOADER_MAX_BYTES >> 20);
    return 0;
}

/* ---- set-up ---- */

static int cache_setup(struct video_loader *ld, struct err_msg *em)
{
    const struct video_loader_opts *o = &ld->o;
    int with_mv = o->motion == VIDEO_MOTION_MV;
    if (o->cache) {
        int w, h, mv;
        double fps;
        cache_settings(o->cache, &w, &h, &fps, &mv);
        if (w != o->width || h != o->height || fps != o->fps || (with_mv && !mv))
            return err_set(em, ERR_INVAL, "loader: the cache holds %dx%d at %g fps%s, the loader "
                           "wants %dx%d at %g fps%s", w, h, fps, mv ? " with vectors" : "",
                           o->width, o->height, o->fps, with_mv ? " with vectors" : "");
        ld->cache = o->cache;
        return 0;
    }
    char dir[PATH_MAX];
    if (!o->cache_dir) {
        int len = snprintf(dir, sizeof dir, "%s/%s", video_dataset_dir(ld->ds), LOADER_CACHE_DIR);
        if (len < 0 || (size_t)len >= sizeof dir)
            return err_set(em, ERR_RANGE, "loader: cache folder name too long");
    }
    struct video_cache_opts co = {.dir = o->cache_dir ? o->cache_dir : dir, .width = o->width,
                                  .height = o->height, .fps = o->fps, .motion_vectors = with_mv,
                                  .ram_bytes = o->ram_bytes};
    int rc = video_cache_new(&co, &ld->cache, em);
    ld->own_cache = rc == 0;
    return rc;
}

static int buffers_alloc(struct video_loader *ld)
{
    size_t B = (size_t)ld->o.batch;
    ld->stages = calloc((size_t)ld->n_stages, sizeof *ld->stages);
    if (!ld->stages)
        return ERR_NOMEM;
    for (int i = 0; i < ld->n_stages; i++) {
        ld->stages[i].rgb = malloc(ld->clip_rgb * sizeof(float));
        ld->stages[i].motion = malloc(ld->clip_motion * sizeof(float));
        if (!ld->stages[i].rgb || !ld->stages[i].motion)
            return ERR_NOMEM;
    }
    for (int i = 0; i < LOADER_BUFFERS; i++) {
        struct video_batch *b = &ld->bufs[i].b;
        *b = (struct video_batch){.segments = ld->o.segments, .length = ld->o.length,
                                  .width = ld->o.width, .height = ld->o.height};
        b->rgb = malloc(B * ld->clip_rgb * sizeof(float));
        b->motion = malloc(B * ld->clip_motion * sizeof(float));
        b->labels = malloc(B * sizeof(int));
        b->index = malloc(B * sizeof(int));
        if (!b->rgb || !b->motion || !b->labels || !b->index)
            return ERR_NOMEM;
    }
    return 0;
}

static int workers_alloc(struct video_loader *ld, struct err_msg *em)
{
    ld->workers = calloc((size_t)ld->o.threads, sizeof *ld->workers);
    if (!ld->workers)
        return err_set(em, ERR_NOMEM, "loader: out of memory");
    for (int i = 0; i < ld->o.threads; i++) {
        struct worker *w = &ld->workers[i];
        w->ld = ld;
        w->frames = malloc((size_t)(ld->o.length + 1) * ld->frame_bytes);
        if (!w->frames)
            return err_set(em, ERR_NOMEM, "loader: out of memory");
        int rc = video_cache_reader_new(ld->cache, &ld->stop, &w->reader, em);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int clips_setup(struct video_loader *ld, const int *indices)
{
    ld->clips = malloc((size_t)ld->n * sizeof *ld->clips);
    ld->order = malloc((size_t)ld->n * sizeof *ld->order);
    ld->bad = calloc((size_t)ld->n, 1);
    if (!ld->clips || !ld->order || !ld->bad)
        return ERR_NOMEM;
    for (int i = 0; i < ld->n; i++)
        ld->clips[i] = indices ? indices[i] : i;
    ld->order_epoch = -1;
    return 0;
}

static void lut_make(struct video_loader *ld)
{
    for (int c = 0; c < 3; c++)
        for (int x = 0; x < 256; x++)
            ld->lut[c][x] = ((float)x / 255.0f - ld->o.mean[c]) / ld->o.std[c];
}

/* ---- a worker: one clip, start to finish ---- */

static void normalise(const struct video_loader *ld, const uint8_t *rgb, float *out)
{
    size_t n = ld->plane;
    for (size_t p = 0; p < n; p++)
        for (int c = 0; c < 3; c++)
            out[(size_t)c * n + p] = ld->lut[c][rgb[p * 3 + (size_t)c]];
}

/* Segment k's snippet of L + 1 samples from `start`: its RGB frame (sample L/2) and L motion
 * fields, as video_clip_fill makes them. A clip shorter than the snippet repeats its ends. */
static int prepare_segment(struct worker *w, const struct video_augment *a, int64_t start, int n,
                           struct stage *st, int k, struct err_msg *em)
{
    const struct video_loader *ld = w->ld;
    int L = ld->o.length, W = ld->o.width, H = ld->o.height;
    int diff = ld->o.motion == VIDEO_MOTION_DIFF;
    float *mot = st->motion + (size_t)k * 2 * (size_t)L * ld->plane;
    for (int l = 0; l <= L; l++) {
        int need_rgb = diff || l == L / 2, need_mv = !diff && l > 0;
        if (!need_rgb && !need_mv)
            continue;
        int64_t i = start + l;
        const uint8_t *rgb;
        const int16_t *mv;
        int rc = video_cache_reader_sample(w->reader, (int)(i < 0 ? 0 : i >= n ? n - 1 : i), &rgb,
                                           &mv, em);
        if (rc < 0)
            return rc;
        if (need_rgb)
            video_augment_rgb(a, rgb, W, H, w->frames + (size_t)l * ld->frame_bytes);
        if (need_mv)
            video_augment_mv(a, mv, W, H, mot + (size_t)(2 * (l - 1)) * ld->plane);
    }
    normalise(ld, w->frames + (size_t)(L / 2) * ld->frame_bytes, st->rgb + (size_t)k * 3 * ld->plane);
    for (int l = 0; diff && l < L; l++)
        motion_diff(w->frames + (size_t)l * ld->frame_bytes,
                    w->frames + (size_t)(l + 1) * ld->frame_bytes, W, H,
                    mot + (size_t)(2 * l) * ld->plane, mot + (size_t)(2 * l + 1) * ld->plane);
    return 0;
}

/* The clip's random choices come from (seed, epoch, clip) alone: snippet offsets first, the
 * same draws video_clip_fill makes, then the augmentation. */
static int prepare_clip(struct worker *w, int clip, int64_t epoch, struct stage *st,
                        struct err_msg *em)
{
    const struct video_loader *ld = w->ld;
    const struct video_loader_opts *o = &ld->o;
    int n, rc = video_cache_reader_open(w->reader, video_dataset_path(ld->ds, clip), &n, em);
    if (rc < 0)
        return rc;
    uint64_t rng = rng_derive(o->seed ^ LOADER_CLIP_SALT, (uint64_t)epoch, (uint64_t)clip);
    int64_t start[VIDEO_MAX_SEGMENTS];
    for (int k = 0; k < o->segments; k++)
        start[k] = clip_snippet_start(0, n, k, o->segments, o->length, o->augment ? &rng : NULL);
    struct video_augment a;
    if (o->augment)
        video_augment_random(&rng, o->width, o->height, &a);
    else
        video_augment_identity(o->width, o->height, &a);
    for (int k = 0; k < o->segments; k++)
        if ((rc = prepare_segment(w, &a, start[k], n, st, k, em)) < 0)
            return rc;
    return 0;
}

static void order_make(struct video_loader *ld, int64_t epoch)
{
    for (int i = 0; i < ld->n; i++)
        ld->order[i] = i;
    if (ld->o.shuffle) {
        uint64_t rng = rng_derive(ld->o.seed ^ LOADER_ORDER_SALT, (uint64_t)epoch, (uint64_t)ld->n);
        for (int i = ld->n - 1; i > 0; i--) {
            int j = rng_int(&rng, i + 1), t = ld->order[i];
            ld->order[i] = ld->order[j];
            ld->order[j] = t;
        }
    }
    ld->order_epoch = epoch;
}

/* Claims the next clip position (lock held): its stage, or NULL when stopping. */
static struct stage *claim(struct video_loader *ld, int64_t *epoch, int *pos)
{
    while (!atomic_load(&ld->stop) && ld->claimed >= ld->consumed + ld->n_stages)
        pthread_cond_wait(&ld->cv_work, &ld->lock);
    if (atomic_load(&ld->stop))
        return NULL;
    int64_t q = ld->claimed++;
    *epoch = q / ld->n;
    if (*epoch != ld->order_epoch)
        order_make(ld, *epoch);
    *pos = ld->order[q % ld->n];
    struct stage *st = &ld->stages[q % ld->n_stages];
    st->state = STAGE_BUSY;
    st->clip = ld->clips[*pos];
    return st;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct video_loader *ld = w->ld;
    pthread_mutex_lock(&ld->lock);
    for (;;) {
        int64_t epoch;
        int pos;
        struct stage *st = claim(ld, &epoch, &pos);
        if (!st)
            break;
        int bad = ld->bad[pos], clip = st->clip;
        pthread_mutex_unlock(&ld->lock);
        int rc = bad ? ERR_FORMAT : prepare_clip(w, clip, epoch, st, &w->em);
        pthread_mutex_lock(&ld->lock);
        /* Named once: the same clip may be in flight for two epochs when the set is small. */
        int first_failure = rc < 0 && !ld->bad[pos] && !atomic_load(&ld->stop);
        if (first_failure) {
            ld->bad[pos] = 1;
            ld->failed++;
            pthread_mutex_unlock(&ld->lock);
            log_warn("loader: skipping %s: %s", video_dataset_relpath(ld->ds, clip),
                     err_text(&w->em, rc));
            pthread_mutex_lock(&ld->lock);
        }
        st->state = rc < 0 ? STAGE_FAILED : STAGE_OK;
        pthread_cond_broadcast(&ld->cv_stage);
    }
    pthread_mutex_unlock(&ld->lock);
    return NULL;
}

/* ---- the packer: staged clips, in order, into batches ---- */

/* A free buffer to fill (lock held), or NULL when stopping. */
static struct batch_buf *buf_acquire(struct video_loader *ld)
{
    for (;;) {
        if (atomic_load(&ld->stop))
            return NULL;
        for (int i = 0; i < LOADER_BUFFERS; i++) {
            struct batch_buf *b = &ld->bufs[i];
            if (b->state == BUF_FREE) {
                b->state = BUF_FILLING;
                b->b.clips = 0;
                b->b.epoch_end = 0;
                return b;
            }
        }
        pthread_cond_wait(&ld->cv_batch, &ld->lock);
    }
}

static void buf_publish(struct video_loader *ld, struct batch_buf *b)
{
    b->state = BUF_READY;
    b->seq = ld->published++;
    pthread_cond_broadcast(&ld->cv_batch);
}

static void stage_copy(const struct video_loader *ld, const struct stage *st, struct video_batch *b)
{
    size_t i = (size_t)b->clips;
    memcpy(b->rgb + i * ld->clip_rgb, st->rgb, ld->clip_rgb * sizeof(float));
    memcpy(b->motion + i * ld->clip_motion, st->motion, ld->clip_motion * sizeof(float));
    b->labels[i] = video_dataset_label(ld->ds, st->clip);
    b->index[i] = st->clip;
    b->clips++;
}

/* Waits for the next stage in order to be done (lock held); NULL when stopping. */
static struct stage *stage_wait(struct video_loader *ld)
{
    struct stage *st = &ld->stages[ld->consumed % ld->n_stages];
    while (!atomic_load(&ld->stop) && (st->state == STAGE_FREE || st->state == STAGE_BUSY))
        pthread_cond_wait(&ld->cv_stage, &ld->lock);
    return atomic_load(&ld->stop) ? NULL : st;
}

/* A full batch goes out only once the next readable clip shows up, so the last batch of an
 * epoch is never empty, whatever clips fail at its end. */
static void *packer_main(void *arg)
{
    struct video_loader *ld = arg;
    pthread_mutex_lock(&ld->lock);
    struct batch_buf *cur = buf_acquire(ld);
    int64_t step = 0, epoch_ok = 0;
    struct stage *st;
    while (cur && (st = stage_wait(ld))) {
        int64_t epoch = ld->consumed / ld->n;
        int last = ld->consumed % ld->n == ld->n - 1;
        if (st->state == STAGE_OK) {
            if (cur->b.clips == ld->o.batch) {
                buf_publish(ld, cur);
                step++;
                if (!(cur = buf_acquire(ld)))
                    break;
            }
            if (cur->b.clips == 0) {
                cur->b.epoch = epoch;
                cur->b.step = step;
            }
            pthread_mutex_unlock(&ld->lock); /* the stage and the buffer are the packer's now */
            stage_copy(ld, st, &cur->b);
            pthread_mutex_lock(&ld->lock);
            epoch_ok++;
        }
        st->state = STAGE_FREE;
        ld->consumed++;
        pthread_cond_broadcast(&ld->cv_work);
        if (last && epoch_ok == 0) {
            ld->fatal = err_set(&ld->fatal_em, ERR_FORMAT, "loader: none of the %d clips could be "
                                "read (see the warnings above)", ld->n);
            pthread_cond_broadcast(&ld->cv_batch);
            break;
        }
        if (last) {
            cur->b.epoch_end = 1;
            buf_publish(ld, cur);
            cur = buf_acquire(ld);
            step = 0;
            epoch_ok = 0;
        }
    }
    pthread_mutex_unlock(&ld->lock);
    return NULL;
}

/* ---- the public door ---- */

static int threads_start(struct video_loader *ld, struct err_msg *em)
{
    if (pthread_create(&ld->packer, NULL, packer_main, ld) != 0)
        return err_set(em, ERR_NOMEM, "loader: cannot start a thread");
    ld->packer_started = 1;
    for (int i = 0; i < ld->o.threads; i++) {
        if (pthread_create(&ld->workers[i].th, NULL, worker_main, &ld->workers[i]) != 0)
            break;
        ld->n_workers++;
    }
    if (ld->n_workers == 0)
        return err_set(em, ERR_NOMEM, "loader: cannot start a thread");
    if (ld->n_workers < ld->o.threads)
        log_warn("loader: started %d of %d threads", ld->n_workers, ld->o.threads);
    return 0;
}

static int loader_init(struct video_loader *ld, const int *indices, struct err_msg *em)
{
    const struct video_loader_opts *o = &ld->o;
    ld->plane = (size_t)o->width * (size_t)o->height;
    ld->frame_bytes = ld->plane * 3;
    ld->clip_rgb = (size_t)o->segments * 3 * ld->plane;
    ld->clip_motion = (size_t)o->segments * 2 * (size_t)o->length * ld->plane;
    /* A batch ahead, and one clip in hand per worker. */
    ld->n_stages = o->batch + o->threads;
    ld->held = -1;
    int rc = memory_check(ld, em);
    if (rc < 0)
        return rc;
    if (clips_setup(ld, indices) < 0 || buffers_alloc(ld) < 0)
        return err_set(em, ERR_NOMEM, "loader: out of memory");
    lut_make(ld);
    if ((rc = cache_setup(ld, em)) < 0 || (rc = workers_alloc(ld, em)) < 0)
        return rc;
    return threads_start(ld, em);
}

int video_loader_new(const struct video_dataset *ds, const int *indices, int n,
                     const struct video_loader_opts *o, struct video_loader **out,
                     struct err_msg *em)
{
    if (!indices)
        n = video_dataset_count(ds);
    int rc = opts_check(o, em);
    if (rc < 0 || (rc = indices_check(ds, indices, n, em)) < 0)
        return rc;
    struct video_loader *ld = calloc(1, sizeof *ld);
    if (!ld)
        return err_set(em, ERR_NOMEM, "loader: out of memory");
    ld->o = *o;
    ld->ds = ds;
    ld->n = n;
    pthread_mutex_init(&ld->lock, NULL);
    pthread_cond_init(&ld->cv_work, NULL);
    pthread_cond_init(&ld->cv_stage, NULL);
    pthread_cond_init(&ld->cv_batch, NULL);
    if ((rc = loader_init(ld, indices, em)) < 0) {
        video_loader_free(ld);
        return rc;
    }
    *out = ld;
    return 0;
}

/* The next batch in publication order, if it is ready (lock held). */
static struct batch_buf *ready_next(struct video_loader *ld)
{
    for (int i = 0; i < LOADER_BUFFERS; i++)
        if (ld->bufs[i].state == BUF_READY && ld->bufs[i].seq == ld->taken)
            return &ld->bufs[i];
    return NULL;
}

int video_loader_next(struct video_loader *ld, const struct video_batch **batch, struct err_msg *em)
{
    uint64_t t0 = clock_mono_ns();
    pthread_mutex_lock(&ld->lock);
    if (ld->held >= 0) {
        ld->bufs[ld->held].state = BUF_FREE;
        ld->held = -1;
        pthread_cond_broadcast(&ld->cv_batch);
    }
    struct batch_buf *b;
    while (!(b = ready_next(ld)) && !ld->fatal)
        pthread_cond_wait(&ld->cv_batch, &ld->lock);
    int rc = 0;
    if (b) {
        b->state = BUF_HELD;
        ld->held = (int)(b - ld->bufs);
        ld->taken++;
        ld->batches_out++;
        ld->clips_out += b->b.clips;
        *batch = &b->b;
    } else {
        rc = ld->fatal;
        if (em)
            *em = ld->fatal_em;
    }
    ld->wait_ns += clock_mono_ns() - t0;
    pthread_mutex_unlock(&ld->lock);
    return rc;
}

void video_loader_stats(const struct video_loader *ld, struct video_loader_stats *st)
{
    struct video_loader *m = (struct video_loader *)ld; /* the lock only */
    pthread_mutex_lock(&m->lock);
    *st = (struct video_loader_stats){.batches = ld->batches_out, .clips = ld->clips_out,
                                      .failed = ld->failed, .wait_s = (double)ld->wait_ns * 1e-9};
    pthread_mutex_unlock(&m->lock);
    if (ld->cache)
        video_cache_stats(ld->cache, &st->cache);
}

static void threads_stop(struct video_loader *ld)
{
    pthread_mutex_lock(&ld->lock);
    atomic_store(&ld->stop, 1);
    pthread_cond_broadcast(&ld->cv_work);
    pthread_cond_broadcast(&ld->cv_stage);
    pthread_cond_broadcast(&ld->cv_batch);
    pthread_mutex_unlock(&ld->lock);
    for (int i = 0; i < ld->n_workers; i++)
        pthread_join(ld->workers[i].th, NULL);
    if (ld->packer_started)
        pthread_join(ld->packer, NULL);
}

void video_loader_free(struct video_loader *ld)
{
    if (!ld)
        return;
    threads_stop(ld);
    for (int i = 0; ld->workers && i < ld->o.threads; i++) {
        video_cache_reader_free(ld->workers[i].reader);
        free(ld->workers[i].frames);
    }
    free(ld->workers);
    for (int i = 0; ld->stages && i < ld->n_stages; i++) {
        free(ld->stages[i].rgb);
        free(ld->stages[i].motion);
    }
    free(ld->stages);
    for (int i = 0; i < LOADER_BUFFERS; i++) {
        free(ld->bufs[i].b.rgb);
        free(ld->bufs[i].b.motion);
        free(ld->bufs[i].b.labels);
        free(ld->bufs[i].b.index);
    }
    if (ld->own_cache)
        video_cache_free(ld->cache);
    free(ld->clips);
    free(ld->order);
    free(ld->bad);
    pthread_cond_destroy(&ld->cv_work);
    pthread_cond_destroy(&ld->cv_stage);
    pthread_cond_destroy(&ld->cv_batch);
    pthread_mutex_destroy(&ld->lock);
    free(ld);
}
