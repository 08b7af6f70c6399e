/* json.h — the JSON shape of events and window results, one definition shared by the HTTP API,
 * the live-event stream and (later) MQTT, so every consumer sees the same object. */
#ifndef ACTIOND_DAEMON_JSON_H
#define ACTIOND_DAEMON_JSON_H

#include "daemon/events.h"
#include "daemon/store.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Compact, scores with 6 significant digits: enough for a probability, short on the wire. */
#define DAEMON_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(6))
/* "2026-01-02T03:04:05.678Z" with its NUL. */
#define DAEMON_ISO_SIZE 32

/* ms since the epoch as ISO-8601 UTC with milliseconds. */
void daemon_json_iso(int64_t ms, char out[DAEMON_ISO_SIZE]);
/* A new object, or NULL when out of memory (or a string is not UTF-8). */
json_t *daemon_json_event(const struct events_event *ev);
json_t *daemon_json_detection(const struct store_detection *d);
/* The top k scores of a window as the JSON array text stored with it, cut to fit in
 * STORE_TOP_MAX; writes the index of the best class. Returns 0 or ERR_NOMEM. */
int daemon_json_top(const float *scores, int n, const char *const *classes, int k,
                    char out[STORE_TOP_MAX], int *best);

#endif
