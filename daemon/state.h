/* state.h — what the daemon's workers report and the HTTP layer shows: per-stream status and
 * counters, the model, start time, the inference latency histogram, and the live-event bus.
 * Every function is thread-safe; the lock is held only to copy, never across I/O. */
#ifndef ACTIOND_DAEMON_STATE_H
#define ACTIOND_DAEMON_STATE_H

#include "daemon/bus.h"
#include "daemon/events.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err_msg;
struct nn_meta;

enum daemon_stream_state {
    DAEMON_STREAM_STARTING,
    DAEMON_STREAM_RUNNING,
    DAEMON_STREAM_BACKOFF,
    DAEMON_STREAM_DISABLED,
    DAEMON_STREAM_STATE_COUNT
};

/* "starting", "running", "backoff", "disabled". */
const char *daemon_stream_state_name(enum daemon_stream_state s);

/* An error line as a stream worker would log it (URLs with credentials must not go here). */
#define DAEMON_ERROR_MAX 256
/* Decoded fps is frames over at least this long; older than twice this and fps reads 0. */
#define DAEMON_FPS_WINDOW_MS 2000
/* Window latencies kept per stream for the quantiles: at a window a second, 17 minutes, so a
 * benchmark run of 10 minutes is covered whole; 4 KiB a stream. */
#define DAEMON_WINDOW_LATENCY_KEEP 1024

/* Time from the arrival of a window's last frame to its result reaching the recorder, over the
 * last DAEMON_WINDOW_LATENCY_KEEP windows (nearest-rank quantiles); max and count since the
 * stream was added. All 0 while count is 0. */
struct daemon_window_latency {
    uint64_t count;
    double p50_s, p99_s, max_s, sum_s;
};

struct daemon_stream_status {
    char id[DAEMON_STREAM_ID_SIZE];
    enum daemon_stream_state state;
    int64_t state_since_ms; /* wall clock of the last state change */
    char last_error[DAEMON_ERROR_MAX]; /* "" when none yet */
    uint64_t frames;                   /* decoded frames since the stream was added */
    double fps;                        /* decoded frames per second, recently */
    uint64_t clips;                    /* clips handed to inference */
    uint64_t dropped;                  /* clips dropped because inference fell behind */
    uint64_t reconnects;               /* since the stream was added */
    uint32_t reconnects_last_hour;
    int64_t last_frame_ms;             /* wall clock; 0 for never */
    uint64_t events;                   /* events opened */
    struct daemon_window_latency window_latency;
};

struct daemon_model_info {
    char path[256]; /* the model file, cut to fit */
    char arch[NN_ARCH_MAX];
    int n_classes;
    int width, height;
    int segments;
    float fps;
    char motion[16];
};

/* Inference latency histogram buckets (seconds), Prometheus style: cumulative upper bounds,
 * then +Inf. From 5 ms (a fast desktop) to 10 s (a board far behind). */
#define DAEMON_LATENCY_BUCKETS 12
extern const double daemon_latency_bounds[DAEMON_LATENCY_BUCKETS];

struct daemon_latency {
    uint64_t counts[DAEMON_LATENCY_BUCKETS + 1]; /* per bucket, not cumulative; last is +Inf */
    uint64_t count;
    double sum_s;
};

struct daemon_state;

int daemon_state_new(struct daemon_state **out, struct err_msg *em);
/* The bus must have no subscribers left. NULL does nothing. */
void daemon_state_free(struct daemon_state *st);

/* The live-event bus, owned by the state. */
struct daemon_bus *daemon_state_bus(struct daemon_state *st);

void daemon_state_set_model(struct daemon_state *st, const char *path, const struct nn_meta *meta);
/* False while no model is set. */
bool daemon_state_get_model(struct daemon_state *st, struct daemon_model_info *out);
int64_t daemon_state_started_ms(struct daemon_state *st); /* wall clock */
double daemon_state_uptime_s(struct daemon_state *st);

/* Replaces the set of streams (start, or a reload). A stream that stays keeps its status and
 * counters; a new one starts "starting" (or "disabled" when enabled[i] is false; enabled may
 * be NULL). ERR_RANGE over EVENTS_MAX_STREAMS, ERR_INVAL for a bad or repeated id. */
int daemon_state_set_streams(struct daemon_state *st, const char *const *ids,
                             const bool *enabled, size_t n, struct err_msg *em);

/* Stream workers report through these; each returns 0 or ERR_NOTFOUND for an unknown id. */
/* error NULL keeps the last error; "" clears it. Entering BACKOFF counts a reconnect. */
int daemon_state_stream_set_state(struct daemon_state *st, const char *id,
                                  enum daemon_stream_state state, const char *error);
/* n frames decoded, the last at frame_wall_ms (the wall clock when it arrived). */
int daemon_state_stream_frames(struct daemon_state *st, const char *id, uint64_t n,
                               int64_t frame_wall_ms);
/* A clip was queued for inference; dropped counts one dropped from a full queue. */
int daemon_state_stream_clip(struct daemon_state *st, const char *id, bool dropped);
/* An event opened on this stream. */
int daemon_state_stream_event(struct daemon_state *st, const char *id);
/* A window result of this stream reached the recorder, seconds after its last frame arrived
 * (negative or NaN is ignored: a clock step, not a measurement). */
int daemon_state_stream_window(struct daemon_state *st, const char *id, double seconds);

/* Inference workers: the time from a clip's last frame to its scores. */
void daemon_state_observe_latency(struct daemon_state *st, double seconds);
void daemon_state_get_latency(struct daemon_state *st, struct daemon_latency *out);

/* Copies up to cap statuses in configuration order; returns how many streams there are. */
size_t daemon_state_snapshot(struct daemon_state *st, struct daemon_stream_status *out,
                             size_t cap);
/* One stream's status, or ERR_NOTFOUND. */
int daemon_state_stream_get(struct daemon_state *st, const char *id,
                            struct daemon_stream_status *out);

#endif
