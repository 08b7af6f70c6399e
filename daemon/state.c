/* state.c — the daemon's shared status board: a mutex over a fixed array of streams, counters
 * the workers bump, and the figures derived at read time (fps, reconnects in the last hour). */
#include "daemon/state.h"
#include "common/clock.h"
#include "common/err.h"
#include "nn/nn.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double daemon_latency_bounds[DAEMON_LATENCY_BUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 7.5, 10,
};

/* Reconnects are counted per minute over the last hour: exact to a minute, constant memory,
 * however fast a source flaps. */
#define RECONNECT_SLOTS 60

struct stream_slot {
    struct daemon_stream_status st;
    uint64_t fps_start_ms, fps_frames, fps_last_ms; /* monotonic */
    uint64_t rc_minute[RECONNECT_SLOTS];
    uint32_t rc_count[RECONNECT_SLOTS];
    float lat_ring[DAEMON_WINDOW_LATENCY_KEEP]; /* seconds, the newest at (lat_n - 1) % KEEP */
    uint64_t lat_n;
    double lat_max, lat_sum;
};

struct daemon_state {
    pthread_mutex_t lock;
    struct stream_slot streams[EVENTS_MAX_STREAMS];
    size_t n_streams;
    bool have_model;
    struct daemon_model_info model;
    int64_t started_wall_ms;
    uint64_t started_mono_ns;
    struct daemon_latency latency;
    struct daemon_bus *bus;
};

const char *daemon_stream_state_name(enum daemon_stream_state s)
{
    static const char *const names[DAEMON_STREAM_STATE_COUNT] = {"starting", "running",
                                                                  "backoff", "disabled"};
    return (unsigned)s < DAEMON_STREAM_STATE_COUNT ? names[s] : "unknown";
}

int daemon_state_new(struct daemon_state **out, struct err_msg *em)
{
    struct daemon_state *st = calloc(1, sizeof *st);
    if (!st || daemon_bus_new(&st->bus) != 0) {
        free(st);
        return err_set(em, ERR_NOMEM, "state: out of memory");
    }
    pthread_mutex_init(&st->lock, NULL);
    st->started_wall_ms = clock_wall_ms();
    st->started_mono_ns = clock_mono_ns();
    *out = st;
    return 0;
}

void daemon_state_free(struct daemon_state *st)
{
    if (!st)
        return;
    daemon_bus_free(st->bus);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

struct daemon_bus *daemon_state_bus(struct daemon_state *st)
{
    return st->bus;
}

void daemon_state_set_model(struct daemon_state *st, const char *path, const struct nn_meta *meta)
{
    struct daemon_model_info m = {0};
    snprintf(m.path, sizeof m.path, "%s", path ? path : "");
    snprintf(m.arch, sizeof m.arch, "%s", meta->arch);
    m.n_classes = meta->n_classes;
    m.width = meta->width;
    m.height = meta->height;
    m.segments = meta->segments;
    m.fps = meta->fps;
    snprintf(m.motion, sizeof m.motion, "%s", nn_motion_name(meta->motion));
    pthread_mutex_lock(&st->lock);
    st->model = m;
    st->have_model = true;
    pthread_mutex_unlock(&st->lock);
}

bool daemon_state_get_model(struct daemon_state *st, struct daemon_model_info *out)
{
    pthread_mutex_lock(&st->lock);
    bool have = st->have_model;
    *out = st->model;
    pthread_mutex_unlock(&st->lock);
    return have;
}

int64_t daemon_state_started_ms(struct daemon_state *st)
{
    return st->started_wall_ms;
}

double daemon_state_uptime_s(struct daemon_state *st)
{
    return clock_elapsed_s(st->started_mono_ns, clock_mono_ns());
}

static struct stream_slot *slot_find(struct daemon_state *st, const char *id)
{
    if (!id)
        return NULL;
    for (size_t i = 0; i < st->n_streams; i++)
        if (strcmp(st->streams[i].st.id, id) == 0)
            return &st->streams[i];
    return NULL;
}

static int ids_check(const char *const *ids, size_t n, struct err_msg *em)
{
    if (n > EVENTS_MAX_STREAMS)
        return err_set(em, ERR_RANGE, "state: %zu streams (at most %d)", n, EVENTS_MAX_STREAMS);
    for (size_t i = 0; i < n; i++) {
        if (!ids[i] || !ids[i][0] || strlen(ids[i]) >= DAEMON_STREAM_ID_SIZE)
            return err_set(em, ERR_INVAL, "state: stream %zu has no usable id", i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(ids[i], ids[j]) == 0)
                return err_set(em, ERR_INVAL, "state: stream '%s' twice", ids[i]);
    }
    return 0;
}

int daemon_state_set_streams(struct daemon_state *st, const char *const *ids,
                             const bool *enabled, size_t n, struct err_msg *em)
{
    int rc = ids_check(ids, n, em);
    if (rc)
        return rc;
    /* Built aside (it is large) and swapped in under the lock. */
    struct stream_slot *next = calloc(EVENTS_MAX_STREAMS, sizeof *next);
    if (!next)
        return err_set(em, ERR_NOMEM, "state: out of memory");
    int64_t now = clock_wall_ms();
    pthread_mutex_lock(&st->lock);
    for (size_t i = 0; i < n; i++) {
        struct stream_slot *old = slot_find(st, ids[i]);
        bool on = !enabled || enabled[i];
        if (old && (old->st.state == DAEMON_STREAM_DISABLED) == !on) {
            next[i] = *old;
            continue;
        }
        if (old)
            next[i] = *old;
        strcpy(next[i].st.id, ids[i]); /* length checked by ids_check */
        next[i].st.state = on ? DAEMON_STREAM_STARTING : DAEMON_STREAM_DISABLED;
        next[i].st.state_since_ms = now;
        next[i].st.fps = 0;
    }
    memcpy(st->streams, next, n * sizeof *next);
    st->n_streams = n;
    pthread_mutex_unlock(&st->lock);
    free(next);
    return 0;
}

static uint32_t reconnects_last_hour(const struct stream_slot *s, uint64_t now_minute)
{
    uint32_t n = 0;
    for (int i = 0; i < RECONNECT_SLOTS; i++)
        if (s->rc_count[i] && now_minute - s->rc_minute[i] < RECONNECT_SLOTS)
            n += s->rc_count[i];
    return n;
}

static void reconnect_count(struct stream_slot *s, uint64_t now_minute)
{
    int i = (int)(now_minute % RECONNECT_SLOTS);
    if (s->rc_minute[i] != now_minute) {
        s->rc_minute[i] = now_minute;
        s->rc_count[i] = 0;
    }
    s->rc_count[i]++;
    s->st.reconnects++;
}

int daemon_state_stream_set_state(struct daemon_state *st, const char *id,
                                  enum daemon_stream_state state, const char *error)
{
    if ((unsigned)state >= DAEMON_STREAM_STATE_COUNT)
        return ERR_INVAL;
    int64_t now = clock_wall_ms();
    uint64_t minute = clock_mono_ms() / 60000;
    pthread_mutex_lock(&st->lock);
    struct stream_slot *s = slot_find(st, id);
    if (s) {
        if (state == DAEMON_STREAM_BACKOFF && s->st.state != DAEMON_STREAM_BACKOFF)
            reconnect_count(s, minute);
        if (state != s->st.state)
            s->st.state_since_ms = now;
        s->st.state = state;
        if (error)
            snprintf(s->st.last_error, sizeof s->st.last_error, "%s", error);
    }
    pthread_mutex_unlock(&st->lock);
    return s ? 0 : ERR_NOTFOUND;
}

static void fps_update(struct stream_slot *s, uint64_t n, uint64_t now)
{
    if (!s->fps_start_ms || now - s->fps_last_ms > 2 * DAEMON_FPS_WINDOW_MS) {
        s->fps_start_ms = now;
        s->fps_frames = 0;
        s->st.fps = 0;
    }
    s->fps_frames += n;
    s->fps_last_ms = now;
    uint64_t span = now - s->fps_start_ms;
    if (span >= DAEMON_FPS_WINDOW_MS) {
        s->st.fps = (double)s->fps_frames * 1000.0 / (double)span;
        s->fps_start_ms = now;
        s->fps_frames = 0;
    }
}

int daemon_state_stream_frames(struct daemon_state *st, const char *id, uint64_t n,
                               int64_t frame_wall_ms)
{
    uint64_t now = clock_mono_ms();
    pthread_mutex_lock(&st->lock);
    struct stream_slot *s = slot_find(st, id);
    if (s) {
        s->st.frames += n;
        s->st.last_frame_ms = frame_wall_ms;
        fps_update(s, n, now);
    }
    pthread_mutex_unlock(&st->lock);
    return s ? 0 : ERR_NOTFOUND;
}

int daemon_state_stream_clip(struct daemon_state *st, const char *id, bool dropped)
{
    pthread_mutex_lock(&st->lock);
    struct stream_slot *s = slot_find(st, id);
    if (s) {
        s->st.clips++;
        s->st.dropped += dropped;
    }
    pthread_mutex_unlock(&st->lock);
    return s ? 0 : ERR_NOTFOUND;
}

int daemon_state_stream_event(struct daemon_state *st, const char *id)
{
    pthread_mutex_lock(&st->lock);
    struct stream_slot *s = slot_find(st, id);
    if (s)
        s->st.events++;
    pthread_mutex_unlock(&st->lock);
    return s ? 0 : ERR_NOTFOUND;
}

int daemon_state_stream_window(struct daemon_state *st, const char *id, double seconds)
{
    pthread_mutex_lock(&st->lock);
    struct stream_slot *s = slot_find(st, id);
    if (s && seconds >= 0) {
        s->lat_ring[s->lat_n % DAEMON_WINDOW_LATENCY_KEEP] = (float)seconds;
        s->lat_n++;
        s->lat_sum += seconds;
        if (seconds > s->lat_max)
            s->lat_max = seconds;
    }
    pthread_mutex_unlock(&st->lock);
    return s ? 0 : ERR_NOTFOUND;
}

static int float_cmp(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest value with at least q of the sorted values at or below it. */
static double nearest_rank(const float *sorted, size_t n, double q)
{
    size_t k = (size_t)ceil(q * (double)n);
    return sorted[k > 0 ? k - 1 : 0];
}

/* Sorting 4 KiB under the lock costs tens of microseconds, once per HTTP read of a stream. */
static void window_latency_now(const struct stream_slot *s, struct daemon_window_latency *out)
{
    memset(out, 0, sizeof *out);
    if (!s->lat_n)
        return;
    size_t n = DAEMON_WINDOW_LATENCY_KEEP;
    if (s->lat_n < n)
        n = (size_t)s->lat_n;
    float sorted[DAEMON_WINDOW_LATENCY_KEEP];
    memcpy(sorted, s->lat_ring, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, float_cmp);
    out->count = s->lat_n;
    out->p50_s = nearest_rank(sorted, n, 0.5);
    out->p99_s = nearest_rank(sorted, n, 0.99);
    out->max_s = s->lat_max;
    out->sum_s = s->lat_sum;
}

void daemon_state_observe_latency(struct daemon_state *st, double seconds)
{
    if (!(seconds >= 0))
        return; /* NaN or negative: a clock step, not a measurement */
    int b = 0;
    while (b < DAEMON_LATENCY_BUCKETS && seconds > daemon_latency_bounds[b])
        b++;
    pthread_mutex_lock(&st->lock);
    st->latency.counts[b]++;
    st->latency.count++;
    st->latency.sum_s += seconds;
    pthread_mutex_unlock(&st->lock);
}

void daemon_state_get_latency(struct daemon_state *st, struct daemon_latency *out)
{
    pthread_mutex_lock(&st->lock);
    *out = st->latency;
    pthread_mutex_unlock(&st->lock);
}

/* The figures that depend on when they are read. */
static void status_now(const struct stream_slot *s, uint64_t now_ms,
                       struct daemon_stream_status *out)
{
    *out = s->st;
    out->reconnects_last_hour = reconnects_last_hour(s, now_ms / 60000);
    window_latency_now(s, &out->window_latency);
    if (s->fps_last_ms && now_ms - s->fps_last_ms > 2 * DAEMON_FPS_WINDOW_MS)
        out->fps = 0;
}

size_t daemon_state_snapshot(struct daemon_state *st, struct daemon_stream_status *out,
                             size_t cap)
{
    uint64_t now = clock_mono_ms();
    pthread_mutex_lock(&st->lock);
    size_t n = st->n_streams;
    for (size_t i = 0; i < n && i < cap; i++)
        status_now(&st->streams[i], now, &out[i]);
    pthread_mutex_unlock(&st->lock);
    return n;
}

int daemon_state_stream_get(struct daemon_state *st, const char *id,
                            struct daemon_stream_status *out)
{
    uint64_t now = clock_mono_ms();
    pthread_mutex_lock(&st->lock);
    struct stream_slot *s = slot_find(st, id);
    if (s)
        status_now(s, now, out);
    pthread_mutex_unlock(&st->lock);
    return s ? 0 : ERR_NOTFOUND;
}
