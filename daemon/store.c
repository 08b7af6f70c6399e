/* store.c — opening and migrating the SQLite store, the writer (events committed before they are
 * acknowledged, window results in batches) and retention by age, count and size. */
#include "daemon/store.h"
#include "daemon/store_internal.h"
#include "daemon/json.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "config/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Durability: WAL with synchronous=FULL fsyncs the WAL at every commit, so a transaction that
 * COMMIT reported is on disk and survives power loss; NORMAL would survive a crash or SIGKILL
 * but could lose the last commits to a power cut, and an event that the API or MQTT already
 * reported must not vanish. The price is one fsync per commit, which batching keeps to about
 * one a second plus one per event open or close. */
static const char schema_v1[] =
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT," /* AUTOINCREMENT: ids never reused after retention */
    "  stream TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  start_ms INTEGER NOT NULL,"
    "  end_ms INTEGER," /* NULL while open */
    "  peak REAL NOT NULL,"
    "  mean REAL NOT NULL,"
    "  windows INTEGER NOT NULL);"
    "CREATE INDEX events_stream ON events(stream, id);"
    "CREATE INDEX events_action ON events(action, id);"
    "CREATE INDEX events_open ON events(id) WHERE end_ms IS NULL;"
    "CREATE TABLE detections ("
    "  id INTEGER PRIMARY KEY,"
    "  stream TEXT NOT NULL,"
    "  start_ms INTEGER NOT NULL,"
    "  end_ms INTEGER NOT NULL,"
    "  action TEXT NOT NULL,"
    "  score REAL NOT NULL,"
    "  top TEXT NOT NULL);"
    "CREATE INDEX detections_stream ON detections(stream, id);"
    "CREATE INDEX detections_action ON detections(action, id);"
    "CREATE TABLE outbox ("
    "  id INTEGER PRIMARY KEY,"
    "  event_id INTEGER NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('opened', 'closed')),"
    "  created_ms INTEGER NOT NULL,"
    "  delivered_ms INTEGER);"
    "CREATE INDEX outbox_pending ON outbox(id) WHERE delivered_ms IS NULL;";

/* The JSON of daemon_json_event, made by SQLite for event rows C does not load: the events a
 * crash left open (closed at start-up) and v1 outbox rows. END is an SQL expression for end_ms,
 * NULL for an event still open. Field order and time format follow json.c. */
#define ISO_SQL(MS) "strftime('%Y-%m-%dT%H:%M:%S', (" MS ") / 1000, 'unixepoch') || " \
                    "printf('.%03dZ', (" MS ") % 1000)"
#define EVENT_JSON_SQL(END)                                                                      \
    "json_object('id', id, 'stream', stream, 'action', action, 'open', "                       \
    "json(CASE WHEN (" END ") IS NULL THEN 'true' ELSE 'false' END), 'peak', peak, "             \
    "'mean', mean, 'windows', windows, 'start_ms', start_ms, 'start', " ISO_SQL("start_ms") ", " \
    "'end_ms', (" END "), 'end', CASE WHEN (" END ") IS NULL THEN NULL ELSE " ISO_SQL(END)        \
    " END)"

/* Where an event a crash left open ends: its stream's last stored window (or its start). */
#define DANGLING_END_SQL                                                                         \
    "max(start_ms, coalesce((SELECT d.end_ms FROM detections d WHERE d.stream = events.stream " \
    "ORDER BY d.id DESC LIMIT 1), start_ms))"

/* v2: the outbox holds the message itself (stream and JSON as they were when the event opened
 * or closed), so retention of events cannot take an undelivered message's content away; a
 * row is deleted when the broker acknowledges it, so every row is pending. v1 rows not yet
 * delivered are carried over with their message rebuilt from the event. */
static const char schema_v2[] =
    "CREATE TABLE outbox_v2 ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT," /* never reused: a sent id is never a new row */
    "  stream TEXT NOT NULL,"
    "  event_id INTEGER NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('opened', 'closed')),"
    "  created_ms INTEGER NOT NULL,"
    "  payload TEXT NOT NULL);"
    "INSERT INTO outbox_v2 (stream, event_id, kind, created_ms, payload) "
    "SELECT e.stream, o.event_id, o.kind, o.created_ms, "
    "  (SELECT " EVENT_JSON_SQL("CASE WHEN o.kind = 'closed' THEN end_ms END")
    "   FROM events WHERE id = o.event_id) "
    "FROM outbox o JOIN events e ON e.id = o.event_id "
    "WHERE o.delivered_ms IS NULL ORDER BY o.id;"
    "DROP TABLE outbox;"
    "ALTER TABLE outbox_v2 RENAME TO outbox;";

const struct store_migration store_migrations[] = {
    {1, schema_v1},
    {2, schema_v2},
};
const size_t store_n_migrations = sizeof store_migrations / sizeof store_migrations[0];

int store_err_code(int sqlite_rc)
{
    switch (sqlite_rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return ERR_CORRUPT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return ERR_BUSY;
    case SQLITE_NOMEM:
        return ERR_NOMEM;
    case SQLITE_RANGE:
    case SQLITE_MISUSE:
        return ERR_INVAL;
    default: /* FULL, READONLY, CANTOPEN, IOERR, PERM and the rest */
        return ERR_IO;
    }
}

int store_sql_error(const struct store *s, sqlite3 *db, int rc, const char *what,
                    struct err_msg *em)
{
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    return err_set(em, store_err_code(rc), "store: %s: %s: %s", s && s->path ? s->path : "?",
                   what, msg);
}

/* ---- migrations ---- */

static int user_version(sqlite3 *db, int *out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

static int migrate_step(sqlite3 *db, const struct store_migration *m)
{
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", m->version);
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_exec(db, m->sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, pragma, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int store_migrate(sqlite3 *db, const char *path, const struct store_migration *list, size_t n,
                  struct err_msg *em)
{
    int have = 0;
    int rc = user_version(db, &have);
    if (rc != SQLITE_OK)
        return err_set(em, store_err_code(rc), "store: %s: reading the schema version: %s", path,
                       sqlite3_errmsg(db));
    int latest = n ? list[n - 1].version : 0;
    if (have > latest)
        return err_set(em, ERR_VERSION,
                       "store: %s: schema v%d was written by a newer actiond (this one knows v%d)",
                       path, have, latest);
    for (size_t i = 0; i < n; i++) {
        if (list[i].version <= have)
            continue;
        rc = migrate_step(db, &list[i]);
        if (rc != SQLITE_OK)
            return err_set(em, store_err_code(rc), "store: %s: migrating to schema v%d: %s", path,
                           list[i].version, sqlite3_errmsg(db));
        log_info("store: %s: schema v%d", path, list[i].version);
        have = list[i].version;
    }
    return 0;
}

/* ---- opening ---- */

static void stats_error(struct store *s, const struct err_msg *em, int rc)
{
    pthread_mutex_lock(&s->stats_lock);
    s->stats.write_errors++;
    s->stats.healthy = false;
    snprintf(s->stats.last_error, sizeof s->stats.last_error, "%s", err_text(em, rc));
    pthread_mutex_unlock(&s->stats_lock);
}

/* After the commit, never before: a reader that sees the new count must also see the rows
 * (release pairs with the acquire in store_generation). */
static void generation_advance(struct store *s)
{
    atomic_fetch_add_explicit(&s->generation, 1, memory_order_release);
}

uint64_t store_generation(struct store *s)
{
    return (uint64_t)atomic_load_explicit(&s->generation, memory_order_acquire);
}

static void stats_commit(struct store *s)
{
    pthread_mutex_lock(&s->stats_lock);
    s->stats.commits++;
    s->stats.healthy = true;
    s->stats.rows_pending = 0;
    s->stats.outbox_pending = (uint64_t)s->outbox_rows;
    pthread_mutex_unlock(&s->stats_lock);
}

/* SQLite creates files 0644 under the usual umask; what cameras saw is nobody else's business. */
static int create_private(const char *path, struct err_msg *em)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return err_set(em, ERR_IO, "store: %s: %s", path, strerror(errno));
    close(fd);
    return 0;
}

static int exec_pragma(struct store *s, const char *sql, struct err_msg *em)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : store_sql_error(s, s->db, rc, sql, em);
}

static int query_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        *out = 0;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* PRAGMA journal_mode answers with the mode it ended up in, which is not WAL on file systems
 * without shared memory. */
static int journal_wal(sqlite3 *db, bool *wal)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *mode = sqlite3_column_text(st, 0);
        *wal = mode && strcmp((const char *)mode, "wal") == 0;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

static int writer_configure(struct store *s, struct err_msg *em)
{
    sqlite3_busy_timeout(s->db, s->opts.busy_timeout_ms);
    sqlite3_extended_result_codes(s->db, 1);
    bool wal = false;
    int rc = journal_wal(s->db, &wal);
    if (rc != SQLITE_OK)
        return store_sql_error(s, s->db, rc, "switching to WAL", em);
    if (!wal)
        return err_set(em, ERR_UNSUPPORTED, "store: %s: the file system does not support WAL",
                       s->path);
    static const char *const pragmas[] = {
        "PRAGMA synchronous = FULL",
        "PRAGMA foreign_keys = OFF",
        "PRAGMA trusted_schema = OFF",
        /* After a checkpoint the WAL is truncated to this, so it cannot sit at its peak size. */
        "PRAGMA journal_size_limit = 4194304",
    };
    for (size_t i = 0; i < sizeof pragmas / sizeof pragmas[0]; i++) {
        rc = exec_pragma(s, pragmas[i], em);
        if (rc)
            return rc;
    }
    rc = query_int(s->db, "PRAGMA page_size", &s->page_size);
    if (rc != SQLITE_OK || s->page_size <= 0)
        return store_sql_error(s, s->db, rc, "reading the page size", em);
    return 0;
}

/* A hard cap on pages turns a runaway database into SQLITE_FULL (a clear error) rather than a
 * full SD card; retention trims window results well before it. */
static int writer_cap(struct store *s, struct err_msg *em)
{
    if (!s->opts.max_size)
        return 0;
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld",
             (long long)(s->opts.max_size / (uint64_t)s->page_size));
    return exec_pragma(s, sql, em);
}

static int prepare(struct store *s, const char *sql, sqlite3_stmt **st, struct err_msg *em)
{
    int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    return rc == SQLITE_OK ? 0 : store_sql_error(s, s->db, rc, "preparing a statement", em);
}

static int writer_prepare(struct store *s, struct err_msg *em)
{
    struct {
        sqlite3_stmt **st;
        const char *sql;
    } list[] = {
        {&s->st_begin, "BEGIN IMMEDIATE"},
        {&s->st_commit, "COMMIT"},
        {&s->st_rollback, "ROLLBACK"},
        {&s->st_ev_insert, "INSERT INTO events (stream, action, start_ms, end_ms, peak, mean, "
                           "windows) VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6)"},
        {&s->st_ev_close, "UPDATE events SET end_ms = ?2, peak = ?3, mean = ?4, windows = ?5 "
                          "WHERE id = ?1"},
        {&s->st_det_insert, "INSERT INTO detections (stream, start_ms, end_ms, action, score, top) "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"},
        {&s->st_outbox_insert, "INSERT INTO outbox (stream, event_id, kind, created_ms, payload) "
                               "VALUES (?1, ?2, ?3, ?4, ?5)"},
        {&s->st_outbox_delete, "DELETE FROM outbox WHERE id = ?1"},
        {&s->st_outbox_trim, "DELETE FROM outbox WHERE id = (SELECT min(id) FROM outbox)"},
    };
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
        int rc = prepare(s, list[i].sql, list[i].st, em);
        if (rc)
            return rc;
    }
    return 0;
}

static void writer_finalize(struct store *s)
{
    sqlite3_stmt **all[] = {&s->st_begin,     &s->st_commit,       &s->st_rollback,
                            &s->st_ev_insert, &s->st_ev_close,     &s->st_det_insert,
                            &s->st_outbox_insert, &s->st_outbox_delete, &s->st_outbox_trim};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        sqlite3_finalize(*all[i]);
        *all[i] = NULL;
    }
}

static int step_done(sqlite3_stmt *st);

/* Events a crash or SIGKILL left open end where their stream's last stored window ended (or
 * where they began, when nothing later was stored); their close goes to the outbox too. */
static int close_dangling(struct store *s, struct err_msg *em)
{
    int64_t n = 0;
    int rc = query_int(s->db, "SELECT count(*) FROM events WHERE end_ms IS NULL", &n);
    if (rc != SQLITE_OK)
        return store_sql_error(s, s->db, rc, "looking for open events", em);
    if (n == 0)
        return 0;
    static const char outbox_sql[] =
        "INSERT INTO outbox (stream, event_id, kind, created_ms, payload) SELECT stream, id, "
        "'closed', ?1, " EVENT_JSON_SQL(DANGLING_END_SQL) " FROM events WHERE end_ms IS NULL "
        "ORDER BY id";
    const char *close_sql = "UPDATE events SET end_ms = " DANGLING_END_SQL " WHERE end_ms IS NULL";
    rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK && s->opts.outbox) {
        sqlite3_stmt *st;
        rc = sqlite3_prepare_v2(s->db, outbox_sql, -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, clock_wall_ms());
            rc = step_done(st);
            sqlite3_finalize(st);
        }
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, close_sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int code = store_sql_error(s, s->db, rc, "closing events left open", em);
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return code;
    }
    log_info("store: %s: closed %lld event%s left open by the last run", s->path, (long long)n,
             n == 1 ? "" : "s");
    return 0;
}

/* The outbox's size and newest row, kept in memory so the bound costs no query per event. */
static int outbox_load(struct store *s, struct err_msg *em)
{
    int64_t n = 0, last = 0;
    int rc = query_int(s->db, "SELECT count(*) FROM outbox", &n);
    if (rc == SQLITE_OK)
        rc = query_int(s->db, "SELECT coalesce(max(id), 0) FROM outbox", &last);
    if (rc != SQLITE_OK)
        return store_sql_error(s, s->db, rc, "counting the outbox", em);
    s->outbox_rows = n;
    atomic_store(&s->outbox_committed, (long long)last);
    pthread_mutex_lock(&s->stats_lock);
    s->stats.outbox_pending = (uint64_t)n;
    pthread_mutex_unlock(&s->stats_lock);
    return 0;
}

static int opts_check(const struct store_opts *o, struct err_msg *em)
{
    if (!o || !o->path || !o->path[0])
        return err_set(em, ERR_INVAL, "store: no database path");
    if (o->retention_ms < 0 || o->max_events < 0 || o->max_detections < 0)
        return err_set(em, ERR_INVAL, "store: negative retention");
    if (o->outbox_max < 0)
        return err_set(em, ERR_INVAL, "store: negative outbox bound");
    if (o->readers < 0 || o->readers > STORE_READERS_MAX || o->busy_timeout_ms < 0)
        return err_set(em, ERR_INVAL, "store: readers 0..%d and a busy timeout >= 0",
                       STORE_READERS_MAX);
    return 0;
}

static struct store *store_alloc(const struct store_opts *o)
{
    struct store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->path = strdup(o->path);
    if (!s->path) {
        free(s);
        return NULL;
    }
    s->opts = *o;
    s->opts.path = s->path;
    if (!s->opts.busy_timeout_ms)
        s->opts.busy_timeout_ms = 5000;
    if (!s->opts.readers)
        s->opts.readers = STORE_READERS;
    pthread_mutex_init(&s->stats_lock, NULL);
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->pool_cond, &ca);
    pthread_condattr_destroy(&ca);
    s->stats.healthy = true;
    s->next_retention_ms = clock_mono_ms();
    return s;
}

static int writer_open(struct store *s, struct err_msg *em)
{
    int rc = create_private(s->path, em);
    if (rc)
        return rc;
    int sq = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (sq != SQLITE_OK)
        return store_sql_error(s, s->db, sq, "opening", em);
    if ((rc = writer_configure(s, em)) || (rc = store_migrate(s->db, s->path, store_migrations,
                                                               store_n_migrations, em)))
        return rc;
    if ((rc = writer_cap(s, em)) || (rc = writer_prepare(s, em)) ||
        (rc = close_dangling(s, em)) || (rc = outbox_load(s, em)))
        return rc;
    return 0;
}

int store_open(const struct store_opts *o, struct store **out, struct err_msg *em)
{
    int rc = opts_check(o, em);
    if (rc)
        return rc;
    struct store *s = store_alloc(o);
    if (!s)
        return err_set(em, ERR_NOMEM, "store: out of memory");
    rc = writer_open(s, em);
    if (!rc)
        rc = store_readers_open(s, s->opts.readers, em);
    if (rc) {
        store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    if (s->db && s->pending) {
        struct err_msg em;
        int rc = store_commit(s, &em);
        if (rc)
            log_error("%s", err_text(&em, rc));
    }
    store_readers_close(s);
    writer_finalize(s);
    if (s->db && sqlite3_close(s->db) != SQLITE_OK)
        log_error("store: %s: closing: %s", s->path, sqlite3_errmsg(s->db));
    pthread_cond_destroy(&s->pool_cond);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_mutex_destroy(&s->stats_lock);
    free(s->path);
    free(s);
}

void store_opts_from_config(const struct config *cfg, struct store_opts *out)
{
    *out = (struct store_opts){
        .path = cfg->store.path,
        .retention_ms = (int64_t)cfg->store.retention_days * 86400 * 1000,
        .max_events = cfg->store.retention_max_events,
        .max_size = cfg->store.max_size,
        .outbox = cfg->mqtt.enabled,
        .outbox_max = cfg->mqtt.outbox_max,
    };
}

void store_set_retention(struct store *s, int64_t retention_ms, int64_t max_events,
                         int64_t max_detections, uint64_t max_size)
{
    s->opts.retention_ms = retention_ms < 0 ? 0 : retention_ms;
    s->opts.max_events = max_events < 0 ? 0 : max_events;
    s->opts.max_detections = max_detections < 0 ? 0 : max_detections;
    s->opts.max_size = max_size;
    struct err_msg em;
    int rc = writer_cap(s, &em);
    if (rc)
        log_warn("%s", err_text(&em, rc));
    s->retention_now = true;
}

/* ---- the writer ---- */

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* A failed write loses the open batch: what was pending was never visible to a reader, so
 * nothing acknowledged goes with it. A full disk makes retention run at the next tick. */
static int write_failed(struct store *s, int rc, const char *what, struct err_msg *em)
{
    int code = store_sql_error(s, s->db, rc, what, em);
    if (!sqlite3_get_autocommit(s->db))
        step_done(s->st_rollback);
    generation_advance(s); /* a COMMIT that reported an I/O error may still have landed */
    s->pending = 0;
    s->outbox_written = 0;
    if (outbox_load(s, NULL) != 0)
        log_warn("store: %s: cannot recount the outbox", s->path);
    if ((rc & 0xff) == SQLITE_FULL)
        s->retention_now = true;
    stats_error(s, em, code);
    return code;
}

static int tx_begin(struct store *s, struct err_msg *em)
{
    if (!sqlite3_get_autocommit(s->db))
        return 0;
    int rc = step_done(s->st_begin);
    if (rc != SQLITE_OK)
        return write_failed(s, rc, "beginning a transaction", em);
    s->batch_started_ms = clock_mono_ms();
    return 0;
}

static int tx_commit(struct store *s, struct err_msg *em)
{
    if (sqlite3_get_autocommit(s->db))
        return 0;
    int rc = step_done(s->st_commit);
    if (rc != SQLITE_OK)
        return write_failed(s, rc, "committing", em);
    s->pending = 0;
    if (s->outbox_written)
        atomic_store(&s->outbox_committed, (long long)s->outbox_written);
    generation_advance(s);
    stats_commit(s);
    return 0;
}

/* Past the bound the oldest message goes: a board cut off from its broker for weeks keeps the
 * newest events, and its disk. */
static int outbox_trim(struct store *s)
{
    if (!s->opts.outbox_max || s->outbox_rows < s->opts.outbox_max)
        return SQLITE_OK;
    int rc = step_done(s->st_outbox_trim);
    if (rc == SQLITE_OK && sqlite3_changes(s->db) > 0) {
        s->outbox_rows--;
        pthread_mutex_lock(&s->stats_lock);
        if (s->stats.outbox_dropped++ == 0)
            log_warn("store: the MQTT outbox is full (%lld messages); dropping the oldest",
                     (long long)s->opts.outbox_max);
        pthread_mutex_unlock(&s->stats_lock);
    }
    return rc;
}

static int outbox_add(struct store *s, const struct events_event *ev, const char *kind)
{
    if (!s->opts.outbox)
        return SQLITE_OK;
    char payload[STORE_OUTBOX_PAYLOAD_MAX];
    json_t *o = daemon_json_event(ev);
    size_t len = o ? json_dumpb(o, payload, sizeof payload, DAEMON_JSON_FLAGS) : 0;
    json_decref(o);
    if (len == 0 || len >= sizeof payload)
        return SQLITE_NOMEM;
    int rc = outbox_trim(s);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_stmt *st = s->st_outbox_insert;
    sqlite3_bind_text(st, 1, ev->stream, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, ev->id);
    sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, clock_wall_ms());
    sqlite3_bind_text(st, 5, payload, (int)len, SQLITE_STATIC);
    rc = step_done(st);
    if (rc == SQLITE_OK) {
        s->outbox_rows++;
        s->outbox_written = sqlite3_last_insert_rowid(s->db);
    }
    return rc;
}

static bool time_ok(int64_t t)
{
    return t >= STORE_TIME_MIN && t <= STORE_TIME_MAX;
}

int store_event_open(struct store *s, struct events_event *ev, struct err_msg *em)
{
    if (!ev->stream[0] || !ev->action[0] || !time_ok(ev->start_ms))
        return err_set(em, ERR_INVAL, "store: an event needs a stream, an action and a time");
    int rc = tx_begin(s, em);
    if (rc)
        return rc;
    sqlite3_stmt *st = s->st_ev_insert;
    sqlite3_bind_text(st, 1, ev->stream, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ev->action, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, ev->start_ms);
    sqlite3_bind_double(st, 4, ev->peak);
    sqlite3_bind_double(st, 5, ev->mean);
    sqlite3_bind_int64(st, 6, ev->windows);
    int sq = step_done(st);
    int64_t id = sqlite3_last_insert_rowid(s->db);
    if (sq == SQLITE_OK) {
        struct events_event sent = *ev;
        sent.id = id;
        sq = outbox_add(s, &sent, "opened");
    }
    if (sq != SQLITE_OK)
        return write_failed(s, sq, "recording an event", em);
    rc = tx_commit(s, em);
    if (rc)
        return rc;
    ev->id = id;
    return 0;
}

int store_event_close(struct store *s, const struct events_event *ev, struct err_msg *em)
{
    if (ev->id <= 0 || !time_ok(ev->end_ms))
        return err_set(em, ERR_INVAL, "store: closing event %lld at %lld ms", (long long)ev->id,
                       (long long)ev->end_ms);
    int rc = tx_begin(s, em);
    if (rc)
        return rc;
    sqlite3_stmt *st = s->st_ev_close;
    sqlite3_bind_int64(st, 1, ev->id);
    sqlite3_bind_int64(st, 2, ev->end_ms);
    sqlite3_bind_double(st, 3, ev->peak);
    sqlite3_bind_double(st, 4, ev->mean);
    sqlite3_bind_int64(st, 5, ev->windows);
    int sq = step_done(st);
    if (sq == SQLITE_OK && sqlite3_changes(s->db) == 0) {
        /* Not an SQLite error: nothing to roll back but the batch stays pending. */
        return err_set(em, ERR_NOTFOUND, "store: no event %lld to close", (long long)ev->id);
    }
    if (sq == SQLITE_OK)
        sq = outbox_add(s, ev, "closed");
    if (sq != SQLITE_OK)
        return write_failed(s, sq, "closing an event", em);
    return tx_commit(s, em);
}

int store_detection_add(struct store *s, struct store_detection *d, struct err_msg *em)
{
    if (!d->stream[0] || !d->action[0] || !time_ok(d->start_ms) || !time_ok(d->end_ms) ||
        d->end_ms < d->start_ms || !memchr(d->top, 0, sizeof d->top))
        return err_set(em, ERR_INVAL, "store: a window result needs a stream, an action and times");
    int rc = tx_begin(s, em);
    if (rc)
        return rc;
    sqlite3_stmt *st = s->st_det_insert;
    sqlite3_bind_text(st, 1, d->stream, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, d->start_ms);
    sqlite3_bind_int64(st, 3, d->end_ms);
    sqlite3_bind_text(st, 4, d->action, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 5, d->score);
    sqlite3_bind_text(st, 6, d->top[0] ? d->top : "[]", -1, SQLITE_STATIC);
    int sq = step_done(st);
    if (sq != SQLITE_OK)
        return write_failed(s, sq, "recording a window result", em);
    d->id = sqlite3_last_insert_rowid(s->db);
    s->pending++;
    pthread_mutex_lock(&s->stats_lock);
    s->stats.rows_pending = s->pending;
    pthread_mutex_unlock(&s->stats_lock);
    return s->pending >= STORE_BATCH_ROWS ? tx_commit(s, em) : 0;
}

int store_commit(struct store *s, struct err_msg *em)
{
    return tx_commit(s, em);
}

int store_outbox_delete(struct store *s, const int64_t *ids, size_t n, struct err_msg *em)
{
    if (n == 0)
        return 0;
    int rc = tx_begin(s, em);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(s->st_outbox_delete, 1, ids[i]);
        int sq = step_done(s->st_outbox_delete);
        if (sq != SQLITE_OK)
            return write_failed(s, sq, "deleting delivered outbox rows", em);
        s->outbox_rows -= sqlite3_changes(s->db);
    }
    return tx_commit(s, em);
}

int64_t store_outbox_last_id(struct store *s)
{
    return (int64_t)atomic_load(&s->outbox_committed);
}

int store_tick(struct store *s, struct err_msg *em)
{
    uint64_t now = clock_mono_ms();
    int rc = 0;
    if (!sqlite3_get_autocommit(s->db) && now - s->batch_started_ms >= STORE_BATCH_MS)
        rc = tx_commit(s, em);
    if (rc == 0 && (s->retention_now || now >= s->next_retention_ms)) {
        s->retention_now = false;
        s->next_retention_ms = now + STORE_RETENTION_EVERY_MS;
        struct store_retention_stats st;
        rc = store_retention_run(s, clock_wall_ms(), &st, em);
    }
    return rc;
}

/* ---- retention ---- */

/* Runs a chunked DELETE (its ?1 bound to arg) in its own transactions until it deletes
 * nothing, at most max_chunks times; adds the rows deleted to *count. */
static int delete_chunks(struct store *s, const char *sql, int64_t arg, int max_chunks,
                         int64_t *count, struct err_msg *em)
{
    sqlite3_stmt *st;
    int rc = tx_commit(s, em);
    if (rc)
        return rc;
    int sq = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (sq != SQLITE_OK)
        return store_sql_error(s, s->db, sq, "preparing retention", em);
    for (int i = 0; i < max_chunks; i++) {
        sqlite3_bind_int64(st, 1, arg);
        sq = step_done(st);
        int changes = sqlite3_changes(s->db);
        if (sq != SQLITE_OK) {
            rc = write_failed(s, sq, "deleting old rows", em);
            break;
        }
        *count += changes;
        if (changes > 0)
            generation_advance(s); /* each chunk committed on its own (autocommit) */
        if (changes < STORE_RETENTION_CHUNK)
            break;
    }
    sqlite3_finalize(st);
    return rc;
}

#define CHUNK_S "1000"
_Static_assert(STORE_RETENTION_CHUNK == 1000, "CHUNK_S spells STORE_RETENTION_CHUNK");
/* A run deletes at most this many chunks per kind; the rest waits for the next run. */
#define RETENTION_MAX_CHUNKS 1000

static int retain_age(struct store *s, int64_t now_ms, struct store_retention_stats *st,
                      struct err_msg *em)
{
    if (!s->opts.retention_ms)
        return 0;
    int64_t cut = now_ms - s->opts.retention_ms;
    int rc = delete_chunks(s,
                           "DELETE FROM detections WHERE id IN (SELECT id FROM detections "
                           "WHERE end_ms < ?1 ORDER BY id LIMIT " CHUNK_S ")",
                           cut, RETENTION_MAX_CHUNKS, &st->detections, em);
    if (!rc)
        rc = delete_chunks(s,
                           "DELETE FROM events WHERE id IN (SELECT id FROM events "
                           "WHERE end_ms < ?1 ORDER BY id LIMIT " CHUNK_S ")",
                           cut, RETENTION_MAX_CHUNKS, &st->events, em);
    return rc;
}

/* The id at and under which rows go to keep `keep` rows, or 0 when there are no more. */
static int count_cutoff(struct store *s, const char *table, int64_t keep, int64_t *cut,
                        struct err_msg *em)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT id FROM %s ORDER BY id DESC LIMIT 1 OFFSET %lld", table,
             (long long)keep);
    int rc = query_int(s->db, sql, cut);
    return rc == SQLITE_OK ? 0 : store_sql_error(s, s->db, rc, "counting rows", em);
}

static int retain_count(struct store *s, struct store_retention_stats *st, struct err_msg *em)
{
    int64_t cut = 0;
    int rc = 0;
    if (s->opts.max_events && !(rc = count_cutoff(s, "events", s->opts.max_events, &cut, em)) &&
        cut > 0)
        rc = delete_chunks(s,
                           "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE id <= ?1 "
                           "AND end_ms IS NOT NULL ORDER BY id LIMIT " CHUNK_S ")",
                           cut, RETENTION_MAX_CHUNKS, &st->events, em);
    cut = 0;
    if (!rc && s->opts.max_detections &&
        !(rc = count_cutoff(s, "detections", s->opts.max_detections, &cut, em)) && cut > 0)
        rc = delete_chunks(s,
                           "DELETE FROM detections WHERE id IN (SELECT id FROM detections "
                           "WHERE id <= ?1 ORDER BY id LIMIT " CHUNK_S ")",
                           cut, RETENTION_MAX_CHUNKS, &st->detections, em);
    return rc;
}

static int used_bytes(struct store *s, uint64_t *out, struct err_msg *em)
{
    int64_t pages = 0, free_pages = 0;
    int rc = query_int(s->db, "PRAGMA page_count", &pages);
    if (rc == SQLITE_OK)
        rc = query_int(s->db, "PRAGMA freelist_count", &free_pages);
    if (rc != SQLITE_OK)
        return store_sql_error(s, s->db, rc, "measuring the database", em);
    *out = (uint64_t)(pages - free_pages) * (uint64_t)s->page_size;
    return 0;
}

/* Past max_size the oldest window results go first, then the oldest closed events: a chunk at
 * a time until the pages in use are under STORE_SIZE_TARGET_PCT of the cap. */
static int retain_size(struct store *s, struct store_retention_stats *st, struct err_msg *em)
{
    uint64_t used = 0;
    int rc = used_bytes(s, &used, em);
    uint64_t target = s->opts.max_size / 100 * STORE_SIZE_TARGET_PCT;
    for (int i = 0; !rc && s->opts.max_size && used > target && i < RETENTION_MAX_CHUNKS; i++) {
        int64_t before = st->detections + st->events;
        rc = delete_chunks(s,
                           "DELETE FROM detections WHERE id IN (SELECT id FROM detections "
                           "ORDER BY id LIMIT " CHUNK_S ")",
                           0, 1, &st->detections, em);
        if (!rc && st->detections + st->events == before)
            rc = delete_chunks(s,
                               "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE "
                               "end_ms IS NOT NULL ORDER BY id LIMIT " CHUNK_S ")",
                               0, 1, &st->events, em);
        if (!rc && st->detections + st->events == before)
            break; /* nothing left that may go */
        if (!rc)
            rc = used_bytes(s, &used, em);
    }
    if (!rc) {
        pthread_mutex_lock(&s->stats_lock);
        s->stats.size_bytes = used;
        pthread_mutex_unlock(&s->stats_lock);
    }
    return rc;
}

int store_retention_run(struct store *s, int64_t now_ms, struct store_retention_stats *st,
                        struct err_msg *em)
{
    memset(st, 0, sizeof *st);
    int rc = retain_age(s, now_ms, st, em);
    if (!rc)
        rc = retain_count(s, st, em);
    if (!rc)
        rc = retain_size(s, st, em);
    if (!rc && st->events + st->detections > 0)
        log_info("store: retention deleted %lld events and %lld window results",
                 (long long)st->events, (long long)st->detections);
    return rc;
}

void store_get_stats(struct store *s, struct store_stats *out)
{
    pthread_mutex_lock(&s->stats_lock);
    *out = s->stats;
    pthread_mutex_unlock(&s->stats_lock);
}
