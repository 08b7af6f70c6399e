/* store_read.c — the store's read side: a pool of read-only connections with their prepared
 * statements, keyset-paged queries of events and window results, the outbox, integrity checks. */
#include "daemon/store.h"
#include "daemon/store_internal.h"
#include "common/clock.h"
#include "common/err.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static const char *const events_select =
    "SELECT id, stream, action, start_ms, end_ms, peak, mean, windows FROM events "
    "WHERE id < :before AND start_ms < :until AND (end_ms IS NULL OR end_ms >= :since)";
static const char *const detections_select =
    "SELECT id, stream, start_ms, end_ms, action, score, top FROM detections "
    "WHERE id < :before AND start_ms < :until AND end_ms >= :since";

/* One statement per filter combination, so each can use its own index: (stream, id) or
 * (action, id); an "?1 IS NULL OR" filter would keep SQLite from using either. */
static int prepare_variant(sqlite3 *db, const char *base, int variant, sqlite3_stmt **st)
{
    char sql[512];
    snprintf(sql, sizeof sql, "%s%s%s ORDER BY id DESC LIMIT :limit", base,
             variant & 1 ? " AND stream = :stream" : "", variant & 2 ? " AND action = :action" : "");
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
}

static int reader_prepare(struct store_reader *r)
{
    int rc = SQLITE_OK;
    for (int v = 0; v < STORE_FILTER_VARIANTS && rc == SQLITE_OK; v++) {
        rc = prepare_variant(r->db, events_select, v, &r->events[v]);
        if (rc == SQLITE_OK)
            rc = prepare_variant(r->db, detections_select, v, &r->detections[v]);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(r->db,
                                "SELECT id, event_id, kind = 'closed', created_ms, stream, payload "
                                "FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2",
                                -1, SQLITE_PREPARE_PERSISTENT, &r->outbox, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(r->db, "SELECT seq FROM sqlite_sequence WHERE name = 'events'", -1,
                                SQLITE_PREPARE_PERSISTENT, &r->last_id, NULL);
    return rc;
}

static void reader_close(struct store_reader *r)
{
    for (int v = 0; v < STORE_FILTER_VARIANTS; v++) {
        sqlite3_finalize(r->events[v]);
        sqlite3_finalize(r->detections[v]);
    }
    sqlite3_finalize(r->outbox);
    sqlite3_finalize(r->last_id);
    if (r->db)
        sqlite3_close(r->db);
    memset(r, 0, sizeof *r);
}

int store_readers_open(struct store *s, int n, struct err_msg *em)
{
    for (int i = 0; i < n; i++) {
        struct store_reader *r = &s->readers[i];
        int rc = sqlite3_open_v2(s->path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                                 NULL);
        if (rc == SQLITE_OK) {
            sqlite3_busy_timeout(r->db, s->opts.busy_timeout_ms);
            rc = reader_prepare(r);
        }
        if (rc != SQLITE_OK) {
            int code = store_sql_error(s, r->db, rc, "opening a reader", em);
            reader_close(r);
            return code;
        }
        s->n_readers = i + 1;
    }
    return 0;
}

void store_readers_close(struct store *s)
{
    for (int i = 0; i < s->n_readers; i++)
        reader_close(&s->readers[i]);
    s->n_readers = 0;
}

static void deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Checks a connection out of the pool; the pool lock is never held while it is used. */
static int reader_get(struct store *s, struct store_reader **out, struct err_msg *em)
{
    struct timespec deadline;
    deadline_after(&deadline, s->opts.busy_timeout_ms);
    pthread_mutex_lock(&s->pool_lock);
    for (;;) {
        for (int i = 0; i < s->n_readers; i++) {
            if (!s->readers[i].busy) {
                s->readers[i].busy = true;
                pthread_mutex_unlock(&s->pool_lock);
                *out = &s->readers[i];
                return 0;
            }
        }
        if (pthread_cond_timedwait(&s->pool_cond, &s->pool_lock, &deadline) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&s->pool_lock);
    return err_set(em, ERR_BUSY, "store: every reader stayed busy for %d ms",
                   s->opts.busy_timeout_ms);
}

static void reader_put(struct store *s, struct store_reader *r)
{
    pthread_mutex_lock(&s->pool_lock);
    r->busy = false;
    pthread_cond_signal(&s->pool_cond);
    pthread_mutex_unlock(&s->pool_lock);
}

static int query_check(const struct store_query *q, struct err_msg *em)
{
    if (q->limit < 1 || q->limit > STORE_QUERY_LIMIT_MAX)
        return err_set(em, ERR_INVAL, "store: limit %d (1..%d)", q->limit, STORE_QUERY_LIMIT_MAX);
    if (q->before_id < 0)
        return err_set(em, ERR_INVAL, "store: negative cursor");
    return 0;
}

static void bind_named_int(sqlite3_stmt *st, const char *name, int64_t v)
{
    int i = sqlite3_bind_parameter_index(st, name);
    if (i > 0)
        sqlite3_bind_int64(st, i, v);
}

static void bind_named_text(sqlite3_stmt *st, const char *name, const char *v)
{
    int i = sqlite3_bind_parameter_index(st, name);
    if (i > 0)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

static sqlite3_stmt *query_bind(sqlite3_stmt *const *variants, const struct store_query *q)
{
    sqlite3_stmt *st = variants[(q->stream ? 1 : 0) | (q->action ? 2 : 0)];
    bind_named_int(st, ":before", q->before_id > 0 ? q->before_id : INT64_MAX);
    bind_named_int(st, ":since", q->since_ms);
    bind_named_int(st, ":until", q->until_ms);
    bind_named_int(st, ":limit", q->limit);
    if (q->stream)
        bind_named_text(st, ":stream", q->stream);
    if (q->action)
        bind_named_text(st, ":action", q->action);
    return st;
}

static void copy_text(char *dst, size_t n, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, n, "%s", t ? (const char *)t : "");
}

static void event_from_row(sqlite3_stmt *st, struct events_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->id = sqlite3_column_int64(st, 0);
    copy_text(ev->stream, sizeof ev->stream, st, 1);
    copy_text(ev->action, sizeof ev->action, st, 2);
    ev->start_ms = sqlite3_column_int64(st, 3);
    ev->open = sqlite3_column_type(st, 4) == SQLITE_NULL;
    ev->end_ms = ev->open ? 0 : sqlite3_column_int64(st, 4);
    ev->peak = sqlite3_column_double(st, 5);
    ev->mean = sqlite3_column_double(st, 6);
    ev->windows = sqlite3_column_int64(st, 7);
}

static void detection_from_row(sqlite3_stmt *st, struct store_detection *d)
{
    d->id = sqlite3_column_int64(st, 0);
    copy_text(d->stream, sizeof d->stream, st, 1);
    d->start_ms = sqlite3_column_int64(st, 2);
    d->end_ms = sqlite3_column_int64(st, 3);
    copy_text(d->action, sizeof d->action, st, 4);
    d->score = sqlite3_column_double(st, 5);
    copy_text(d->top, sizeof d->top, st, 6);
}

/* Steps st to the end (or until row() says stop), then resets it; returns rows or an error. */
/* Where rows go: one of the callbacks, by query kind. */
struct row_sink {
    int (*event)(void *ctx, const struct events_event *ev);
    int (*detection)(void *ctx, const struct store_detection *d);
    int (*outbox)(void *ctx, const struct store_outbox_row *o);
    void *ctx;
};

static int run_rows(struct store *s, struct store_reader *r, sqlite3_stmt *st,
                    int (*each)(sqlite3_stmt *st, const struct row_sink *k),
                    const struct row_sink *k, struct err_msg *em)
{
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        n++;
        if (each(st, k))
            break;
    }
    int code = rc == SQLITE_ROW || rc == SQLITE_DONE ? n
                                                     : store_sql_error(s, r->db, rc, "querying", em);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return code;
}

static int each_event(sqlite3_stmt *st, const struct row_sink *k)
{
    struct events_event ev;
    event_from_row(st, &ev);
    return k->event(k->ctx, &ev);
}

static int each_detection(sqlite3_stmt *st, const struct row_sink *k)
{
    struct store_detection d;
    detection_from_row(st, &d);
    return k->detection(k->ctx, &d);
}

int store_events_query(struct store *s, const struct store_query *q,
                       int (*row)(void *ctx, const struct events_event *ev), void *ctx,
                       struct err_msg *em)
{
    struct store_reader *r;
    int rc = query_check(q, em);
    if (rc || (rc = reader_get(s, &r, em)))
        return rc;
    struct row_sink k = {.event = row, .ctx = ctx};
    rc = run_rows(s, r, query_bind(r->events, q), each_event, &k, em);
    reader_put(s, r);
    return rc;
}

int store_detections_query(struct store *s, const struct store_query *q,
                           int (*row)(void *ctx, const struct store_detection *d), void *ctx,
                           struct err_msg *em)
{
    struct store_reader *r;
    int rc = query_check(q, em);
    if (rc || (rc = reader_get(s, &r, em)))
        return rc;
    struct row_sink k = {.detection = row, .ctx = ctx};
    rc = run_rows(s, r, query_bind(r->detections, q), each_detection, &k, em);
    reader_put(s, r);
    return rc;
}

static int each_outbox(sqlite3_stmt *st, const struct row_sink *k)
{
    struct store_outbox_row o = {
        .id = sqlite3_column_int64(st, 0),
        .event_id = sqlite3_column_int64(st, 1),
        .closed = sqlite3_column_int(st, 2) != 0,
        .created_ms = sqlite3_column_int64(st, 3),
        .payload = (const char *)sqlite3_column_text(st, 5),
        .payload_len = (size_t)sqlite3_column_bytes(st, 5),
    };
    copy_text(o.stream, sizeof o.stream, st, 4);
    if (!o.payload)
        o.payload = "";
    return k->outbox(k->ctx, &o);
}

int store_outbox_pending(struct store *s, int64_t after_id, int limit,
                         int (*row)(void *ctx, const struct store_outbox_row *r), void *ctx,
                         struct err_msg *em)
{
    if (limit < 1 || limit > STORE_QUERY_LIMIT_MAX)
        return err_set(em, ERR_INVAL, "store: outbox limit %d (1..%d)", limit,
                       STORE_QUERY_LIMIT_MAX);
    struct store_reader *r;
    int rc = reader_get(s, &r, em);
    if (rc)
        return rc;
    sqlite3_bind_int64(r->outbox, 1, after_id);
    sqlite3_bind_int(r->outbox, 2, limit);
    struct row_sink k = {.outbox = row, .ctx = ctx};
    rc = run_rows(s, r, r->outbox, each_outbox, &k, em);
    reader_put(s, r);
    return rc;
}

int64_t store_last_event_id(struct store *s)
{
    struct store_reader *r;
    if (reader_get(s, &r, NULL))
        return 0;
    int64_t id = sqlite3_step(r->last_id) == SQLITE_ROW ? sqlite3_column_int64(r->last_id, 0) : 0;
    sqlite3_reset(r->last_id);
    reader_put(s, r);
    return id;
}

int store_integrity_check(struct store *s, struct err_msg *em)
{
    struct store_reader *r;
    int rc = reader_get(s, &r, em);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    int sq = sqlite3_prepare_v2(r->db, "PRAGMA integrity_check(10)", -1, &st, NULL);
    if (sq == SQLITE_OK) {
        sq = sqlite3_step(st);
        const unsigned char *t = sq == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
        if (sq != SQLITE_ROW)
            rc = store_sql_error(s, r->db, sq, "checking integrity", em);
        else if (!t || strcmp((const char *)t, "ok") != 0)
            rc = err_set(em, ERR_CORRUPT, "store: %s: integrity check: %s", s->path,
                         t ? (const char *)t : "no answer");
        sqlite3_finalize(st);
    } else {
        rc = store_sql_error(s, r->db, sq, "checking integrity", em);
    }
    reader_put(s, r);
    return rc;
}
