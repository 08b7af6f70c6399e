/* sched.c — per-slot clip pools and drop-oldest queues behind one mutex; consumers take the
 * slots round-robin so one busy camera cannot starve the others. */
#include "daemon/sched.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A clip out with a worker belongs to a slot generation; a closed slot's clips are freed
 * when they come back instead of rejoining a pool. */
struct slot {
    char id[SCHED_ID_SIZE];
    bool open;
    unsigned gen;
    int n_free, head, len;
    struct video_clip *free[SCHED_MAX_DEPTH + 2];
    struct sched_item queue[SCHED_MAX_DEPTH];
};

struct sched {
    pthread_mutex_t mu;
    pthread_cond_t work;
    struct video_clip_opts clip_opts;
    int width, height, depth, next_slot;
    bool stopped;
    struct slot slots[SCHED_MAX_SLOTS];
};

int sched_new(const struct video_clip_opts *clip_opts, int width, int height, int depth,
              struct sched **out, struct err_msg *em)
{
    *out = NULL;
    if (depth < 1 || depth > SCHED_MAX_DEPTH)
        return err_set(em, ERR_RANGE, "queue depth %d out of range 1..%d", depth,
                       SCHED_MAX_DEPTH);
    struct sched *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(em, ERR_NOMEM, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->work, &ca);
    pthread_condattr_destroy(&ca);
    s->clip_opts = *clip_opts;
    s->width = width;
    s->height = height;
    s->depth = depth;
    *out = s;
    return 0;
}

static void slot_drain(struct slot *sl)
{
    for (int i = 0; i < sl->len; i++)
        video_clip_free(sl->queue[(sl->head + i) % SCHED_MAX_DEPTH].clip);
    for (int i = 0; i < sl->n_free; i++)
        video_clip_free(sl->free[i]);
    sl->len = sl->head = sl->n_free = 0;
}

void sched_free(struct sched *s)
{
    if (!s)
        return;
    for (int i = 0; i < SCHED_MAX_SLOTS; i++)
        slot_drain(&s->slots[i]);
    pthread_cond_destroy(&s->work);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int sched_slot_open(struct sched *s, const char *id, int *slot, struct err_msg *em)
{
    if (strlen(id) >= SCHED_ID_SIZE)
        return err_set(em, ERR_RANGE, "stream id '%s' too long", id);
    pthread_mutex_lock(&s->mu);
    int found = -1;
    for (int i = 0; i < SCHED_MAX_SLOTS && found < 0; i++)
        if (!s->slots[i].open && s->slots[i].n_free == 0)
            found = i;
    if (found >= 0) {
        s->slots[found].open = true;
        s->slots[found].gen++;
        snprintf(s->slots[found].id, sizeof s->slots[found].id, "%s", id);
    }
    pthread_mutex_unlock(&s->mu);
    if (found < 0)
        return err_set(em, ERR_RANGE, "more than %d streams", SCHED_MAX_SLOTS);
    /* the clips are allocated outside the lock, then handed over */
    struct video_clip *clips[SCHED_MAX_DEPTH + 2];
    int n = s->depth + 2, rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        if ((rc = video_clip_new(&s->clip_opts, s->width, s->height, &clips[i], em)))
            n = i;
    pthread_mutex_lock(&s->mu);
    struct slot *sl = &s->slots[found];
    for (int i = 0; i < n; i++)
        sl->free[sl->n_free++] = clips[i];
    if (rc) {
        sl->open = false;
        slot_drain(sl);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc == 0)
        *slot = found;
    return rc;
}

void sched_slot_close(struct sched *s, int slot)
{
    pthread_mutex_lock(&s->mu);
    struct slot *sl = &s->slots[slot];
    sl->open = false;
    sl->gen++;
    slot_drain(sl);
    pthread_mutex_unlock(&s->mu);
}

struct video_clip *sched_acquire(struct sched *s, int slot, bool *dropped)
{
    pthread_mutex_lock(&s->mu);
    struct slot *sl = &s->slots[slot];
    struct video_clip *c = NULL;
    *dropped = false;
    if (sl->n_free > 0) {
        c = sl->free[--sl->n_free];
    } else if (sl->len > 0) { /* every clip queued: reuse the oldest */
        c = sl->queue[sl->head].clip;
        sl->head = (sl->head + 1) % SCHED_MAX_DEPTH;
        sl->len--;
        *dropped = true;
    }
    pthread_mutex_unlock(&s->mu);
    return c;
}

void sched_unacquire(struct sched *s, int slot, struct video_clip *clip)
{
    pthread_mutex_lock(&s->mu);
    struct slot *sl = &s->slots[slot];
    if (sl->open && sl->n_free < SCHED_MAX_DEPTH + 2)
        sl->free[sl->n_free++] = clip;
    else
        video_clip_free(clip);
    pthread_mutex_unlock(&s->mu);
}

bool sched_push(struct sched *s, int slot, struct video_clip *clip, int64_t start_ms,
                int64_t end_ms, int64_t ready_ms)
{
    pthread_mutex_lock(&s->mu);
    struct slot *sl = &s->slots[slot];
    bool dropped = false;
    if (sl->len == s->depth) {
        sl->free[sl->n_free++] = sl->queue[sl->head].clip;
        sl->head = (sl->head + 1) % SCHED_MAX_DEPTH;
        sl->len--;
        dropped = true;
    }
    sl->queue[(sl->head + sl->len) % SCHED_MAX_DEPTH] =
        (struct sched_item){"", clip, slot, start_ms, end_ms, ready_ms, sl->gen};
    memcpy(sl->queue[(sl->head + sl->len) % SCHED_MAX_DEPTH].id, sl->id, sizeof sl->id);
    sl->len++;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->mu);
    return dropped;
}

/* The next queued item after the last slot served, or false. Called locked. */
static bool take(struct sched *s, struct sched_item *it)
{
    for (int k = 0; k < SCHED_MAX_SLOTS; k++) {
        int i = (s->next_slot + k) % SCHED_MAX_SLOTS;
        struct slot *sl = &s->slots[i];
        if (!sl->open || sl->len == 0)
            continue;
        *it = sl->queue[sl->head];
        sl->head = (sl->head + 1) % SCHED_MAX_DEPTH;
        sl->len--;
        s->next_slot = (i + 1) % SCHED_MAX_SLOTS;
        return true;
    }
    return false;
}

bool sched_pop(struct sched *s, struct sched_item *it, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    bool got = false;
    while (!s->stopped && !(got = take(s, it)))
        if (pthread_cond_timedwait(&s->work, &s->mu, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&s->mu);
    return got;
}

void sched_release(struct sched *s, const struct sched_item *it)
{
    pthread_mutex_lock(&s->mu);
    struct slot *sl = &s->slots[it->slot];
    if (sl->open && sl->gen == it->gen && sl->n_free < SCHED_MAX_DEPTH + 2)
        sl->free[sl->n_free++] = it->clip;
    else
        video_clip_free(it->clip);
    pthread_mutex_unlock(&s->mu);
}

void sched_stop(struct sched *s)
{
    pthread_mutex_lock(&s->mu);
    s->stopped = true;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->mu);
}
