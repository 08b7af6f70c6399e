/* recorder.h — where window results go: the store (batched), the event detector, and — once an
 * event's open or close is committed — the live-event bus and the counters. One thread drives
 * it (the one that owns the store's writer side). */
#ifndef ACTIOND_DAEMON_RECORDER_H
#define ACTIOND_DAEMON_RECORDER_H

#include "daemon/events.h"
#include "daemon/state.h"
#include "daemon/store.h"

struct err_msg;

/* Scores kept with each window result: the best few say what the model hesitated between. */
#define DAEMON_RECORDER_TOP_K 5

struct daemon_recorder;

/* store and state must outlive the recorder; classes are the model's, copied. */
int daemon_recorder_new(struct store *store, struct daemon_state *state, int n_classes,
                        const char *const *classes, struct daemon_recorder **out,
                        struct err_msg *em);
/* Open events are dropped without being closed: flush first. NULL does nothing. */
void daemon_recorder_free(struct daemon_recorder *r);

/* The streams whose windows it takes (see events_stream_add/update/remove). */
int daemon_recorder_stream_add(struct daemon_recorder *r, const char *id,
                               const struct events_params *p, struct err_msg *em);
int daemon_recorder_stream_update(struct daemon_recorder *r, const char *id,
                                  const struct events_params *p, struct err_msg *em);
int daemon_recorder_stream_remove(struct daemon_recorder *r, const char *id, struct err_msg *em);

/* Records one window result and feeds it to the event detector. An event is published on the
 * bus only after the store committed it; a store error is returned (and logged once per
 * burst), and the window's other effects still happen. */
int daemon_recorder_window(struct daemon_recorder *r, const struct events_window *w,
                           struct err_msg *em);
/* Closes open events of one stream (NULL: all) and commits: a stream stopped, or shutdown. */
int daemon_recorder_flush(struct daemon_recorder *r, const char *stream, struct err_msg *em);
/* At least once a second: commits batches, runs retention when due. */
int daemon_recorder_tick(struct daemon_recorder *r, struct err_msg *em);

/* The SSE record of an event change: "event: opened|closed\ndata: {json}\n\n". Returns the
 * length written, or a negative ERR_* (ERR_RANGE when it does not fit in cap). */
int daemon_recorder_sse_format(const struct events_event *ev, bool opened, char *out,
                               size_t cap);

#endif
