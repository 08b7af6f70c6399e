/* events.c — smoothing and hysteresis per (stream, class): an EMA of the fused score opens an
 * event at `enter` and closes it below `exit`; the event's start reaches back to the first window
 * of the rise so the EMA's lag does not shift it. */
#include "daemon/events.h"
#include "common/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Everything kept per class of one stream. A "run" is the current stretch of consecutive
 * windows whose raw score is at least exit: when the EMA finally crosses enter, the run
 * says when the action really began. */
struct class_state {
    double ema;
    bool reported;
    bool run;
    int64_t run_start_ms;
    double run_peak, run_sum;
    int64_t run_n;
    bool open;
    int64_t id, start_ms, last_end_ms;
    double peak, sum;
    int64_t n;
};

struct stream_state {
    char id[DAEMON_STREAM_ID_SIZE];
    double enter, exit, alpha;
    int64_t max_gap_ms;
    bool seen; /* a window arrived since the last reset */
    int64_t last_start_ms, last_end_ms;
    struct class_state *cls;
};

struct events {
    int n_classes;
    char (*classes)[DAEMON_ACTION_SIZE];
    struct events_sink sink;
    struct stream_state *streams[EVENTS_MAX_STREAMS];
    size_t n_streams;
};

void events_params_from_config(const struct config_stream *cfg, struct events_params *out)
{
    int64_t gap = 3 * (cfg->stride_ms > cfg->window_ms ? cfg->stride_ms : cfg->window_ms);
    *out = (struct events_params){
        .enter = cfg->thresholds.enter,
        .exit = cfg->thresholds.exit,
        .smooth = 3,
        .max_gap_ms = gap < 10000 ? 10000 : gap,
        .actions = (const char *const *)cfg->actions.items,
        .n_actions = cfg->actions.count,
    };
}

int events_new(int n_classes, const char *const *classes, const struct events_sink *sink,
               struct events **out, struct err_msg *em)
{
    if (n_classes <= 0 || n_classes > EVENTS_MAX_CLASSES || !classes || !sink)
        return err_set(em, ERR_INVAL, "events: %d classes (1..%d)", n_classes, EVENTS_MAX_CLASSES);
    for (int i = 0; i < n_classes; i++)
        if (!classes[i] || !classes[i][0] || strlen(classes[i]) >= DAEMON_ACTION_SIZE)
            return err_set(em, ERR_INVAL, "events: class %d has no usable name", i);
    struct events *e = calloc(1, sizeof *e);
    if (!e || !(e->classes = calloc((size_t)n_classes, sizeof *e->classes))) {
        free(e);
        return err_set(em, ERR_NOMEM, "events: out of memory");
    }
    e->n_classes = n_classes;
    for (int i = 0; i < n_classes; i++)
        strcpy(e->classes[i], classes[i]);
    e->sink = *sink;
    *out = e;
    return 0;
}

static void stream_free(struct stream_state *s)
{
    if (s)
        free(s->cls);
    free(s);
}

void events_free(struct events *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n_streams; i++)
        stream_free(e->streams[i]);
    free(e->classes);
    free(e);
}

static int stream_index(const struct events *e, const char *id)
{
    for (size_t i = 0; i < e->n_streams; i++)
        if (strcmp(e->streams[i]->id, id) == 0)
            return (int)i;
    return -1;
}

static int class_index(const struct events *e, const char *name)
{
    for (int i = 0; i < e->n_classes; i++)
        if (strcmp(e->classes[i], name) == 0)
            return i;
    return -1;
}

static int params_check(const struct events_params *p, struct err_msg *em)
{
    if (!(p->enter >= 0 && p->enter <= 1 && p->exit >= 0 && p->exit <= 1))
        return err_set(em, ERR_INVAL, "events: thresholds must lie in [0, 1]");
    if (p->exit > p->enter)
        return err_set(em, ERR_INVAL, "events: exit %g is above enter %g", p->exit, p->enter);
    if (p->smooth < 1 || p->smooth > EVENTS_MAX_SMOOTH)
        return err_set(em, ERR_INVAL, "events: smooth %d (1..%d)", p->smooth, EVENTS_MAX_SMOOTH);
    if (p->max_gap_ms < 0)
        return err_set(em, ERR_INVAL, "events: negative max_gap_ms");
    if (p->n_actions && !p->actions)
        return err_set(em, ERR_INVAL, "events: %zu actions but no list", p->n_actions);
    return 0;
}

/* Applies params to s, resetting every class; nothing changes on error. */
static int stream_configure(const struct events *e, struct stream_state *s,
                            const struct events_params *p, struct err_msg *em)
{
    int rc = params_check(p, em);
    if (rc)
        return rc;
    for (size_t i = 0; i < p->n_actions; i++)
        if (!p->actions[i] || class_index(e, p->actions[i]) < 0)
            return err_set(em, ERR_NOTFOUND, "events: stream '%s': the model has no action '%s'",
                           s->id, p->actions[i] ? p->actions[i] : "(null)");
    memset(s->cls, 0, (size_t)e->n_classes * sizeof *s->cls);
    for (int c = 0; c < e->n_classes; c++)
        s->cls[c].reported = p->n_actions == 0;
    for (size_t i = 0; i < p->n_actions; i++)
        s->cls[class_index(e, p->actions[i])].reported = true;
    s->enter = p->enter;
    s->exit = p->exit;
    s->alpha = 2.0 / (p->smooth + 1);
    s->max_gap_ms = p->max_gap_ms;
    s->seen = false;
    return 0;
}

static bool stream_id_ok(const char *id)
{
    return id && id[0] && strlen(id) < DAEMON_STREAM_ID_SIZE;
}

int events_stream_add(struct events *e, const char *id, const struct events_params *p,
                      struct err_msg *em)
{
    if (!stream_id_ok(id))
        return err_set(em, ERR_INVAL, "events: stream id empty or over %d characters",
                       CONFIG_STREAM_ID_MAX);
    if (stream_index(e, id) >= 0)
        return err_set(em, ERR_BUSY, "events: stream '%s' already added", id);
    if (e->n_streams == EVENTS_MAX_STREAMS)
        return err_set(em, ERR_RANGE, "events: %d streams at most", EVENTS_MAX_STREAMS);
    struct stream_state *s = calloc(1, sizeof *s);
    if (!s || !(s->cls = calloc((size_t)e->n_classes, sizeof *s->cls))) {
        stream_free(s);
        return err_set(em, ERR_NOMEM, "events: out of memory");
    }
    strcpy(s->id, id);
    int rc = stream_configure(e, s, p, em);
    if (rc) {
        stream_free(s);
        return rc;
    }
    e->streams[e->n_streams++] = s;
    return 0;
}

static void event_fill(const struct events *e, const struct stream_state *s, int c,
                       struct events_event *ev)
{
    const struct class_state *k = &s->cls[c];
    memset(ev, 0, sizeof *ev);
    ev->id = k->id;
    strcpy(ev->stream, s->id);
    strcpy(ev->action, e->classes[c]);
    ev->start_ms = k->start_ms;
    ev->open = k->open;
    ev->end_ms = k->open ? 0 : k->last_end_ms;
    ev->peak = k->peak;
    ev->mean = k->n ? k->sum / (double)k->n : 0;
    ev->windows = k->n;
}

/* Closes class c's event at its last held window; returns the sink's verdict. */
static int class_close(const struct events *e, struct stream_state *s, int c)
{
    struct class_state *k = &s->cls[c];
    k->open = false;
    struct events_event ev;
    event_fill(e, s, c, &ev);
    return e->sink.closed ? e->sink.closed(e->sink.ctx, &ev) : 0;
}

/* Closes every open event of s and restarts its smoothing; returns the first sink error. */
static int stream_flush(const struct events *e, struct stream_state *s)
{
    int first = 0;
    for (int c = 0; c < e->n_classes; c++) {
        if (s->cls[c].open) {
            int rc = class_close(e, s, c);
            if (rc && !first)
                first = rc;
        }
        bool reported = s->cls[c].reported;
        memset(&s->cls[c], 0, sizeof s->cls[c]);
        s->cls[c].reported = reported;
    }
    s->seen = false;
    return first;
}

/* The sink knows why it failed and logs it; the caller learns that it did. */
static int sink_error(struct err_msg *em, int rc, const char *what, const char *stream)
{
    return err_set(em, rc, "events: stream '%s': recording %s events failed", stream, what);
}

int events_stream_update(struct events *e, const char *id, const struct events_params *p,
                         struct err_msg *em)
{
    int i = stream_index(e, id ? id : "");
    if (i < 0)
        return err_set(em, ERR_NOTFOUND, "events: no stream '%s'", id ? id : "(null)");
    int rc = params_check(p, em);
    if (rc)
        return rc;
    struct stream_state *s = e->streams[i];
    for (size_t a = 0; a < p->n_actions; a++)
        if (!p->actions[a] || class_index(e, p->actions[a]) < 0)
            return err_set(em, ERR_NOTFOUND, "events: stream '%s': the model has no action '%s'",
                           id, p->actions[a] ? p->actions[a] : "(null)");
    int flushed = stream_flush(e, s);
    rc = stream_configure(e, s, p, em);
    if (rc)
        return rc;
    return flushed ? sink_error(em, flushed, "closed", id) : 0;
}

int events_stream_remove(struct events *e, const char *id, struct err_msg *em)
{
    int i = stream_index(e, id ? id : "");
    if (i < 0)
        return err_set(em, ERR_NOTFOUND, "events: no stream '%s'", id ? id : "(null)");
    struct stream_state *s = e->streams[i];
    int rc = stream_flush(e, s);
    stream_free(s);
    e->streams[i] = e->streams[--e->n_streams];
    e->streams[e->n_streams] = NULL;
    return rc ? sink_error(em, rc, "closed", id) : 0;
}

static int window_check(const struct events *e, const struct events_window *w, struct err_msg *em)
{
    if (w->n_classes != e->n_classes || !w->scores)
        return err_set(em, ERR_INVAL, "events: stream '%s': %d scores for %d classes", w->stream,
                       w->n_classes, e->n_classes);
    if (w->end_ms < w->start_ms)
        return err_set(em, ERR_INVAL, "events: stream '%s': window ends before it starts",
                       w->stream);
    for (int c = 0; c < w->n_classes; c++)
        if (!isfinite(w->scores[c]))
            return err_set(em, ERR_INVAL, "events: stream '%s': score of '%s' is not finite",
                           w->stream, e->classes[c]);
    return 0;
}

/* Tracks the raw run and the EMA of one class for one window; says whether the EMA holds. */
static void class_observe(struct class_state *k, double alpha, double exit, double x,
                          const struct events_window *w)
{
    k->ema = alpha * x + (1 - alpha) * k->ema;
    if (x >= exit) {
        if (!k->run) {
            k->run = true;
            k->run_start_ms = w->start_ms;
            k->run_peak = k->run_sum = 0;
            k->run_n = 0;
        }
        k->run_peak = x > k->run_peak ? x : k->run_peak;
        k->run_sum += x;
        k->run_n++;
    } else {
        k->run = false;
    }
}

static void class_accumulate(struct class_state *k, double x, int64_t end_ms)
{
    k->peak = x > k->peak ? x : k->peak;
    k->sum += x;
    k->n++;
    k->last_end_ms = end_ms;
}

/* Opens class c's event at this window: the start and statistics reach back over the run. */
static int class_open(const struct events *e, struct stream_state *s, int c, double x,
                      const struct events_window *w)
{
    struct class_state *k = &s->cls[c];
    k->open = true;
    k->id = 0;
    if (k->run) {
        k->start_ms = k->run_start_ms;
        k->peak = k->run_peak;
        k->sum = k->run_sum;
        k->n = k->run_n;
        k->last_end_ms = w->end_ms;
    } else {
        k->start_ms = w->start_ms;
        k->peak = k->sum = 0;
        k->n = 0;
        class_accumulate(k, x, w->end_ms);
    }
    struct events_event ev;
    event_fill(e, s, c, &ev);
    int rc = e->sink.opened ? e->sink.opened(e->sink.ctx, &ev) : 0;
    if (rc) {
        k->open = false;
        return rc;
    }
    k->id = ev.id;
    return 0;
}

/* A window long after the previous one: what was open ended with the last window seen. */
static int stream_gap(const struct events *e, struct stream_state *s, const struct events_window *w)
{
    if (!s->seen || s->max_gap_ms == 0 || w->start_ms - s->last_end_ms <= s->max_gap_ms)
        return 0;
    return stream_flush(e, s);
}

int events_check_window(const struct events *e, const struct events_window *w,
                        struct err_msg *em)
{
    int i = stream_index(e, w && w->stream ? w->stream : "");
    if (i < 0)
        return err_set(em, ERR_NOTFOUND, "events: no stream '%s'",
                       w && w->stream ? w->stream : "(null)");
    int rc = window_check(e, w, em);
    if (rc)
        return rc;
    const struct stream_state *s = e->streams[i];
    if (s->seen && w->start_ms < s->last_start_ms)
        return err_set(em, ERR_RANGE, "events: stream '%s': window at %lld ms is older than %lld ms",
                       s->id, (long long)w->start_ms, (long long)s->last_start_ms);
    return 0;
}

int events_feed(struct events *e, const struct events_window *w, struct err_msg *em)
{
    int rc = events_check_window(e, w, em);
    if (rc)
        return rc;
    struct stream_state *s = e->streams[stream_index(e, w->stream)];
    int first = stream_gap(e, s, w);
    /* Two passes so that within one window every close precedes every open. */
    for (int c = 0; c < e->n_classes; c++) {
        struct class_state *k = &s->cls[c];
        double x = w->scores[c];
        class_observe(k, s->alpha, s->exit, x, w);
        if (!k->open)
            continue;
        if (k->ema < s->exit) {
            rc = class_close(e, s, c);
            first = first ? first : rc;
        } else {
            class_accumulate(k, x, w->end_ms);
        }
    }
    for (int c = 0; c < e->n_classes; c++) {
        struct class_state *k = &s->cls[c];
        if (k->open || !k->reported || k->ema < s->enter)
            continue;
        rc = class_open(e, s, c, w->scores[c], w);
        first = first ? first : rc;
    }
    s->seen = true;
    s->last_start_ms = w->start_ms;
    s->last_end_ms = w->end_ms;
    return first ? sink_error(em, first, "this window's", s->id) : 0;
}

int events_flush(struct events *e, const char *stream, struct err_msg *em)
{
    int first = 0;
    for (size_t i = 0; i < e->n_streams; i++) {
        if (stream && strcmp(stream, e->streams[i]->id) != 0)
            continue;
        int rc = stream_flush(e, e->streams[i]);
        first = first ? first : rc;
    }
    if (stream && stream_index(e, stream) < 0)
        return err_set(em, ERR_NOTFOUND, "events: no stream '%s'", stream);
    return first ? sink_error(em, first, "closed", stream ? stream : "*") : 0;
}

size_t events_open_count(const struct events *e, const char *stream)
{
    size_t n = 0;
    for (size_t i = 0; i < e->n_streams; i++) {
        if (stream && strcmp(stream, e->streams[i]->id) != 0)
            continue;
        for (int c = 0; c < e->n_classes; c++)
            n += e->streams[i]->cls[c].open;
    }
    return n;
}
