/* store.h — the SQLite store in the state directory: events, window results (detections) and
 * the MQTT outbox. One writer thread; any thread may query, through a small connection pool. */
#ifndef ACTIOND_DAEMON_STORE_H
#define ACTIOND_DAEMON_STORE_H

#include "daemon/events.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct err_msg;

/* One page of a query; paging goes on with a cursor. */
#define STORE_QUERY_LIMIT_MAX 1000
/* A detection's top-K scores as a JSON array: K <= 5 names of <= 63 bytes fit. */
#define STORE_TOP_MAX 512
/* Readers in the pool: HTTP queries at once; more wait (up to the busy timeout). */
#define STORE_READERS 4
/* Window results are committed in batches of this many rows or this age, whichever first:
 * a 4-camera board writes ~4 rows/s, so one fsync a second at most. */
#define STORE_BATCH_ROWS 256
#define STORE_BATCH_MS 1000
/* Retention runs this often from store_tick (and at once after a disk-full error). */
#define STORE_RETENTION_EVERY_MS (10 * 60 * 1000)
/* Rows deleted per retention transaction, so the writer never holds the lock for long. */
#define STORE_RETENTION_CHUNK 1000
/* Past max_size, window results are trimmed until the used size is under this share of it. */
#define STORE_SIZE_TARGET_PCT 80
/* Oldest and newest times accepted anywhere: 0 to the end of year 9999, in ms. */
#define STORE_TIME_MIN 0
#define STORE_TIME_MAX INT64_C(253402300799999)

struct store_opts {
    const char *path;
    int64_t retention_ms;   /* older events and window results are deleted; 0 keeps all */
    int64_t max_events;     /* closed events kept at most; 0 for no limit */
    int64_t max_detections; /* window results kept at most; 0 for no limit */
    uint64_t max_size;      /* bytes; 0 for no cap */
    bool outbox;            /* record event opens/closes for MQTT */
    int64_t outbox_max;     /* outbox rows kept at most, oldest dropped first; 0 for no limit */
    int busy_timeout_ms;    /* 0: 5000 */
    int readers;            /* 1..16; 0: STORE_READERS */
};

/* store.path, retention_days, retention_max_events, max_size from cfg; outbox when MQTT is on,
 * bounded by mqtt.outbox_max;
 * max_detections: 0 (age and size bound them). */
void store_opts_from_config(const struct config *cfg, struct store_opts *out);

/* A window result: the top class, its score, and the top-K as JSON text. */
struct store_detection {
    int64_t id;
    char stream[DAEMON_STREAM_ID_SIZE];
    int64_t start_ms, end_ms;
    char action[DAEMON_ACTION_SIZE];
    double score;
    char top[STORE_TOP_MAX];
};

struct store_query {
    const char *stream; /* NULL: any */
    const char *action; /* NULL: any; for detections, the top action */
    int64_t since_ms;   /* rows whose [start, end] overlaps [since, until); an open event's end */
    int64_t until_ms;   /*   is unknown and counts as now */
    int64_t before_id;  /* keyset cursor: only ids below this; 0 starts at the newest */
    int limit;          /* 1..STORE_QUERY_LIMIT_MAX */
};

struct store_stats {
    uint64_t commits;
    uint64_t write_errors;
    uint64_t rows_pending;
    uint64_t size_bytes; /* pages in use times page size, at the last retention run */
    uint64_t outbox_pending; /* MQTT messages not yet acknowledged by the broker */
    uint64_t outbox_dropped; /* dropped from a full outbox since start */
    bool healthy;        /* the last write succeeded */
    char last_error[256];
};

struct store;

/* Opens (creating mode 0600 if missing) and migrates the database, switches to WAL with
 * synchronous=FULL, and closes events a crash left open (at their stream's last stored
 * window). ERR_IO (cannot open, read-only, disk full), ERR_CORRUPT, ERR_VERSION (written by a
 * newer actiond), ERR_INVAL, ERR_NOMEM. */
int store_open(const struct store_opts *o, struct store **out, struct err_msg *em);
/* Commits what is pending and closes. NULL does nothing. */
void store_close(struct store *s);
/* Retention settings take effect at the next run (a reload). */
void store_set_retention(struct store *s, int64_t retention_ms, int64_t max_events,
                         int64_t max_detections, uint64_t max_size);

/* ---- the writer: one thread at a time ---- */

/* Inserts an open event, sets ev->id, and commits (with any pending window results) before
 * returning: an id handed out is on disk. */
int store_event_open(struct store *s, struct events_event *ev, struct err_msg *em);
/* Records the end, peak, mean and windows of ev (by id) and commits before returning. */
int store_event_close(struct store *s, const struct events_event *ev, struct err_msg *em);
/* Queues a window result in the open batch (committed by store_tick, store_commit or the
 * next event); d->id is set. */
int store_detection_add(struct store *s, struct store_detection *d, struct err_msg *em);
/* Commits the pending batch, if any. */
int store_commit(struct store *s, struct err_msg *em);
/* Housekeeping, at least once a second: commits a batch older than STORE_BATCH_MS and runs
 * retention when due. */
int store_tick(struct store *s, struct err_msg *em);

struct store_retention_stats {
    int64_t events, detections; /* rows deleted */
};
/* Deletes by age (relative to now_ms), by count and by size, in bounded chunks. */
int store_retention_run(struct store *s, int64_t now_ms, struct store_retention_stats *st,
                        struct err_msg *em);

/* Deletes outbox rows the broker acknowledged, and commits. Unknown ids are no error (a row
 * the bound dropped while its message was on the wire). */
int store_outbox_delete(struct store *s, const int64_t *ids, size_t n, struct err_msg *em);

/* ---- readers: any thread ---- */

/* Newest first. row() is called per row (a non-zero return stops early); returns the number
 * of rows seen or a negative error: ERR_INVAL (bad query), ERR_BUSY (every reader in use for
 * the whole busy timeout), ERR_IO, ERR_CORRUPT. */
int store_events_query(struct store *s, const struct store_query *q,
                       int (*row)(void *ctx, const struct events_event *ev), void *ctx,
                       struct err_msg *em);
int store_detections_query(struct store *s, const struct store_query *q,
                           int (*row)(void *ctx, const struct store_detection *d), void *ctx,
                           struct err_msg *em);

/* An MQTT message waiting for the broker: the event JSON as it was when the event opened or
 * closed (daemon_json_event), at most STORE_OUTBOX_PAYLOAD_MAX - 1 bytes. */
#define STORE_OUTBOX_PAYLOAD_MAX 4096
struct store_outbox_row {
    int64_t id; /* grows with every row, never reused */
    int64_t event_id;
    char stream[DAEMON_STREAM_ID_SIZE];
    bool closed; /* false: the event opened */
    int64_t created_ms;
    const char *payload; /* valid during the callback only */
    size_t payload_len;
};
/* The id of the newest outbox row committed (0 for none): any thread, no query. */
int64_t store_outbox_last_id(struct store *s);
/* Outbox rows after after_id, oldest first, at most limit. */
int store_outbox_pending(struct store *s, int64_t after_id, int limit,
                         int (*row)(void *ctx, const struct store_outbox_row *r), void *ctx,
                         struct err_msg *em);

/* A count of the commits readers can see, advanced after each one (window result batches,
 * events, outbox deletes, retention). An answer built from queries begun after this returned
 * g is current for as long as it still returns g: what the HTTP API checks its cached pages
 * against. Any thread, no query. */
uint64_t store_generation(struct store *s);

/* PRAGMA integrity_check: 0, or ERR_CORRUPT with its first complaint. */
int store_integrity_check(struct store *s, struct err_msg *em);
/* The largest event id ever handed out (0 for none). */
int64_t store_last_event_id(struct store *s);
void store_get_stats(struct store *s, struct store_stats *out);

#endif
