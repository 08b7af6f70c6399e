/* events.h — per-stream event detection from window results: smoothing, hysteresis, and
 * events that open and close. Pure logic: no I/O, no clock, no locks; one thread feeds it. */
#ifndef ACTIOND_DAEMON_EVENTS_H
#define ACTIOND_DAEMON_EVENTS_H

#include "config/config.h"
#include "nn/nn.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err_msg;

/* Buffer sizes, with the NUL: a stream id as config/ allows it, an action as a model names it. */
#define DAEMON_STREAM_ID_SIZE (CONFIG_STREAM_ID_MAX + 1)
#define DAEMON_ACTION_SIZE NN_CLASS_NAME_MAX
#define EVENTS_MAX_STREAMS CONFIG_MAX_STREAMS
#define EVENTS_MAX_CLASSES NN_MAX_CLASSES
/* An EMA over more windows than this reacts too slowly to be an event detector. */
#define EVENTS_MAX_SMOOTH 32

struct events_event {
    int64_t id; /* set by the sink's opened callback (the store's row id) */
    char stream[DAEMON_STREAM_ID_SIZE];
    char action[DAEMON_ACTION_SIZE];
    int64_t start_ms;
    int64_t end_ms; /* 0 while open */
    bool open;
    double peak; /* highest raw fused score over the event's windows */
    double mean; /* mean raw fused score over the event's windows */
    int64_t windows;
};

/* Where events go. opened() sets ev->id; a non-zero return means the event was not recorded
 * (disk full, say): it is not opened, and opens at a later window if the score holds.
 * closed() is called once per opened event; the event is closed in memory whatever it returns.
 * Within one window closes come before opens, each in class order. */
struct events_sink {
    int (*opened)(void *ctx, struct events_event *ev);
    int (*closed)(void *ctx, const struct events_event *ev);
    void *ctx;
};

/* Per-stream settings. The smoothed score of a class is an exponential moving average
 * s = a*x + (1-a)*s with a = 2/(smooth+1), the EMA whose centre of mass matches a mean of
 * the last `smooth` windows; s starts at 0, so one stray window cannot open an event on its
 * own. An event opens when s >= enter and closes when s < exit (exit <= enter). */
struct events_params {
    double enter, exit;
    int smooth;           /* 1..EVENTS_MAX_SMOOTH; 1 is no smoothing */
    int64_t max_gap_ms;   /* a longer pause between windows closes open events and resets s; 0: never */
    const char *const *actions; /* names to report; n_actions 0 reports every class */
    size_t n_actions;
};

/* Defaults for a stream from its configuration: thresholds and actions from cfg,
 * smooth 3, max_gap_ms 3 strides (at least 10 s). The actions point into cfg. */
void events_params_from_config(const struct config_stream *cfg, struct events_params *out);

/* One window result: n_classes fused scores in the model's class order. */
struct events_window {
    const char *stream;
    int64_t start_ms, end_ms;
    const float *scores;
    int n_classes;
};

struct events;

/* classes are copied; sink is copied. ERR_INVAL (no classes, too many, a name too long),
 * ERR_NOMEM. */
int events_new(int n_classes, const char *const *classes, const struct events_sink *sink,
               struct events **out, struct err_msg *em);
/* Open events are dropped without callbacks: flush first to close them. NULL does nothing. */
void events_free(struct events *e);

/* ERR_INVAL (bad id or params, exit > enter), ERR_NOTFOUND (an action the model lacks),
 * ERR_BUSY (id already added), ERR_RANGE (EVENTS_MAX_STREAMS reached). */
int events_stream_add(struct events *e, const char *id, const struct events_params *p,
                      struct err_msg *em);
/* New settings for a stream (a reload): its open events close first and smoothing restarts. */
int events_stream_update(struct events *e, const char *id, const struct events_params *p,
                         struct err_msg *em);
/* Closes the stream's open events, then forgets it. ERR_NOTFOUND if unknown. */
int events_stream_remove(struct events *e, const char *id, struct err_msg *em);

/* Feeds one window. ERR_NOTFOUND (unknown stream), ERR_INVAL (class count, end before start,
 * a score that is not finite), ERR_RANGE (a window starting before the previous one); a sink
 * error is returned after the whole window was processed. */
int events_feed(struct events *e, const struct events_window *w, struct err_msg *em);
/* The checks events_feed makes before it changes anything, alone: for a caller that records
 * the window elsewhere first. Same errors. */
int events_check_window(const struct events *e, const struct events_window *w,
                        struct err_msg *em);
/* Closes the open events of one stream (NULL: every stream) at the end of its last window,
 * and restarts smoothing: for a stream that stopped, and at shutdown. */
int events_flush(struct events *e, const char *stream, struct err_msg *em);
/* Open events of a stream (NULL: all streams). */
size_t events_open_count(const struct events *e, const char *stream);

#endif
