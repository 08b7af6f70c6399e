/* recorder.c — window result -> store batch -> events -> commit -> bus. The order is the
 * durability promise: nothing reaches a client before it is on disk. */
#include "daemon/recorder.h"
#include "daemon/json.h"
#include "common/err.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct daemon_recorder {
    struct store *store;
    struct daemon_state *state;
    struct events *events;
    int n_classes;
    const char **classes; /* into names */
    char (*names)[DAEMON_ACTION_SIZE];
    struct err_msg sink_em; /* why the last sink call failed */
    int sink_rc;            /* its code, 0 when the sink has not failed since the last reset */
    bool failing;           /* logging once per burst of store errors, not once per window */
};

static void note_failure(struct daemon_recorder *r, int rc, const struct err_msg *em)
{
    if (!r->failing)
        log_error("%s", err_text(em, rc));
    r->failing = true;
}

static void note_success(struct daemon_recorder *r)
{
    if (r->failing)
        log_info("store: writing again");
    r->failing = false;
}

int daemon_recorder_sse_format(const struct events_event *ev, bool opened, char *out, size_t cap)
{
    json_t *o = daemon_json_event(ev);
    if (!o)
        return ERR_NOMEM;
    int head = snprintf(out, cap, "event: %s\ndata: ", opened ? "opened" : "closed");
    size_t room = cap > (size_t)head + 3 ? cap - (size_t)head - 3 : 0;
    size_t len = room ? json_dumpb(o, out + head, room, DAEMON_JSON_FLAGS) : 0;
    json_decref(o);
    if (!room || len == 0 || len > room)
        return ERR_RANGE;
    memcpy(out + head + len, "\n\n", 3);
    return head + (int)len + 2;
}

static void publish(struct daemon_recorder *r, const struct events_event *ev, bool opened)
{
    char msg[DAEMON_BUS_MSG_MAX];
    int n = daemon_recorder_sse_format(ev, opened, msg, sizeof msg);
    if (n > 0)
        daemon_bus_publish(daemon_state_bus(r->state), msg, (size_t)n);
}

static int sink_opened(void *ctx, struct events_event *ev)
{
    struct daemon_recorder *r = ctx;
    int rc = store_event_open(r->store, ev, &r->sink_em);
    if (rc)
        return r->sink_rc = rc;
    daemon_state_stream_event(r->state, ev->stream);
    publish(r, ev, true);
    log_info("event %lld opened: %s on %s", (long long)ev->id, ev->action, ev->stream);
    return 0;
}

static int sink_closed(void *ctx, const struct events_event *ev)
{
    struct daemon_recorder *r = ctx;
    int rc = ev->id > 0 ? store_event_close(r->store, ev, &r->sink_em) : 0;
    if (rc)
        return r->sink_rc = rc;
    publish(r, ev, false);
    log_info("event %lld closed: %s on %s after %lld ms", (long long)ev->id, ev->action,
             ev->stream, (long long)(ev->end_ms - ev->start_ms));
    return 0;
}

int daemon_recorder_new(struct store *store, struct daemon_state *state, int n_classes,
                        const char *const *classes, struct daemon_recorder **out,
                        struct err_msg *em)
{
    struct daemon_recorder *r = calloc(1, sizeof *r);
    if (!r)
        return err_set(em, ERR_NOMEM, "recorder: out of memory");
    r->store = store;
    r->state = state;
    struct events_sink sink = {sink_opened, sink_closed, r};
    int rc = events_new(n_classes, classes, &sink, &r->events, em);
    if (rc) {
        free(r);
        return rc;
    }
    r->n_classes = n_classes;
    r->names = calloc((size_t)n_classes, sizeof *r->names);
    r->classes = calloc((size_t)n_classes, sizeof *r->classes);
    if (!r->names || !r->classes) {
        daemon_recorder_free(r);
        return err_set(em, ERR_NOMEM, "recorder: out of memory");
    }
    for (int i = 0; i < n_classes; i++) {
        snprintf(r->names[i], sizeof r->names[i], "%s", classes[i]);
        r->classes[i] = r->names[i];
    }
    *out = r;
    return 0;
}

void daemon_recorder_free(struct daemon_recorder *r)
{
    if (!r)
        return;
    events_free(r->events);
    free(r->classes);
    free(r->names);
    free(r);
}

int daemon_recorder_stream_add(struct daemon_recorder *r, const char *id,
                               const struct events_params *p, struct err_msg *em)
{
    return events_stream_add(r->events, id, p, em);
}

int daemon_recorder_stream_update(struct daemon_recorder *r, const char *id,
                                  const struct events_params *p, struct err_msg *em)
{
    return events_stream_update(r->events, id, p, em);
}

int daemon_recorder_stream_remove(struct daemon_recorder *r, const char *id, struct err_msg *em)
{
    return events_stream_remove(r->events, id, em);
}

static int record_detection(struct daemon_recorder *r, const struct events_window *w,
                            struct err_msg *em)
{
    struct store_detection d = {.start_ms = w->start_ms, .end_ms = w->end_ms};
    snprintf(d.stream, sizeof d.stream, "%s", w->stream);
    int best = 0;
    int rc = daemon_json_top(w->scores, w->n_classes, r->classes, DAEMON_RECORDER_TOP_K, d.top,
                             &best);
    if (rc)
        return err_set(em, rc, "recorder: out of memory");
    snprintf(d.action, sizeof d.action, "%s", r->classes[best]);
    d.score = w->scores[best];
    return store_detection_add(r->store, &d, em);
}

int daemon_recorder_window(struct daemon_recorder *r, const struct events_window *w,
                           struct err_msg *em)
{
    if (!w || !w->stream || w->n_classes != r->n_classes || !w->scores)
        return err_set(em, ERR_INVAL, "recorder: a window needs a stream and %d scores",
                       r->n_classes);
    if (w->start_ms < STORE_TIME_MIN || w->end_ms > STORE_TIME_MAX)
        return err_set(em, ERR_RANGE, "recorder: window times out of range");
    /* Checked before anything is stored; then the window result joins the batch before the
     * detector runs, so an event's commit carries the window that opened or closed it. */
    int rc = events_check_window(r->events, w, em);
    if (rc)
        return rc;
    struct err_msg dem;
    int drc = record_detection(r, w, &dem);
    r->sink_rc = 0;
    rc = events_feed(r->events, w, em);
    if (rc && !r->sink_rc)
        return rc; /* not expected after the check: the detector's own error */
    if (r->sink_rc) {
        note_failure(r, r->sink_rc, &r->sink_em);
        if (em)
            *em = r->sink_em;
        return r->sink_rc;
    }
    if (drc) {
        note_failure(r, drc, &dem);
        if (em)
            *em = dem;
        return drc;
    }
    note_success(r);
    return 0;
}

int daemon_recorder_flush(struct daemon_recorder *r, const char *stream, struct err_msg *em)
{
    r->sink_rc = 0;
    int rc = events_flush(r->events, stream, em);
    if (rc && r->sink_rc) {
        note_failure(r, r->sink_rc, &r->sink_em);
        if (em)
            *em = r->sink_em;
        return r->sink_rc;
    }
    if (rc)
        return rc;
    rc = store_commit(r->store, em);
    if (rc)
        note_failure(r, rc, em);
    return rc;
}

int daemon_recorder_tick(struct daemon_recorder *r, struct err_msg *em)
{
    struct err_msg tem;
    int rc = store_tick(r->store, &tem);
    if (rc) {
        note_failure(r, rc, &tem);
        if (em)
            *em = tem;
    }
    return rc;
}
