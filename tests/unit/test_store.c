/* test_store.c — unit tests of daemon/store: schema migrations (a fake v0 -> v1 -> v2), events
 * and ids across reopens, batching, keyset paging and filters, retention by age, count and size,
 * a full disk via max_size, the outbox, integrity checks and the bounded reader pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/common.h"
#include "daemon/store.h"
#include "daemon/store_internal.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fixture {
    char dir[64];
    char path[128];
    struct store_opts opts;
    struct store *s;
    struct err_msg em;
};

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/actiond-test-store-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/actiond.db", f->dir);
    f->opts = (struct store_opts){.path = f->path, .busy_timeout_ms = 200};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(f->s);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void open_store(struct fixture *f)
{
    int rc = store_open(&f->opts, &f->s, &f->em);
    if (rc)
        fail_msg("store_open: %s", err_text(&f->em, rc));
}

static void reopen(struct fixture *f)
{
    store_close(f->s);
    f->s = NULL;
    open_store(f);
}

static struct events_event make_event(const char *stream, const char *action, int64_t start)
{
    struct events_event ev = {.start_ms = start, .open = true, .peak = 0.9, .mean = 0.8,
                              .windows = 2};
    snprintf(ev.stream, sizeof ev.stream, "%s", stream);
    snprintf(ev.action, sizeof ev.action, "%s", action);
    return ev;
}

static int64_t add_event(struct fixture *f, const char *stream, const char *action,
                         int64_t start, int64_t end)
{
    struct events_event ev = make_event(stream, action, start);
    assert_int_equal(store_event_open(f->s, &ev, &f->em), 0);
    assert_true(ev.id > 0);
    if (end >= 0) {
        ev.end_ms = end;
        ev.open = false;
        assert_int_equal(store_event_close(f->s, &ev, &f->em), 0);
    }
    return ev.id;
}

static int add_detection(struct fixture *f, const char *stream, const char *action,
                         int64_t start)
{
    struct store_detection d = {.start_ms = start, .end_ms = start + 1000, .score = 0.5};
    snprintf(d.stream, sizeof d.stream, "%s", stream);
    snprintf(d.action, sizeof d.action, "%s", action);
    snprintf(d.top, sizeof d.top, "[{\"action\":\"%s\",\"score\":0.5}]", action);
    return store_detection_add(f->s, &d, &f->em);
}

/* Collects ids (and the last event) from a query. */
struct collect {
    int64_t ids[STORE_QUERY_LIMIT_MAX + 1];
    int n;
    struct events_event last;
    struct store_detection last_d;
};

static int collect_event(void *ctx, const struct events_event *ev)
{
    struct collect *c = ctx;
    c->ids[c->n++] = ev->id;
    c->last = *ev;
    return 0;
}

static int collect_detection(void *ctx, const struct store_detection *d)
{
    struct collect *c = ctx;
    c->ids[c->n++] = d->id;
    c->last_d = *d;
    return 0;
}

static struct store_query all_query(int limit)
{
    return (struct store_query){.since_ms = STORE_TIME_MIN, .until_ms = STORE_TIME_MAX,
                                .limit = limit};
}

static int events_q(struct fixture *f, const struct store_query *q, struct collect *c)
{
    memset(c, 0, sizeof *c);
    return store_events_query(f->s, q, collect_event, c, &f->em);
}

static int detections_q(struct fixture *f, const struct store_query *q, struct collect *c)
{
    memset(c, 0, sizeof *c);
    return store_detections_query(f->s, q, collect_detection, c, &f->em);
}

static int64_t sql_int(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* ---- migrations ---- */

static const struct store_migration fake_list[] = {
    {1, "CREATE TABLE t (a INTEGER);"},
    {2, "ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'x'; INSERT INTO t (a) VALUES (7);"},
};

static void test_migrate_fake_v0_to_v2(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(store_migrate(db, f->path, fake_list, 1, &f->em), 0);
    sqlite3_close(db);
    assert_int_equal(sql_int(f->path, "PRAGMA user_version"), 1);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM t"), 0);
    /* A later build knows v2: only the missing step runs. */
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(store_migrate(db, f->path, fake_list, 2, &f->em), 0);
    assert_int_equal(store_migrate(db, f->path, fake_list, 2, &f->em), 0); /* idempotent */
    sqlite3_close(db);
    assert_int_equal(sql_int(f->path, "PRAGMA user_version"), 2);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM t WHERE a = 7 AND b = 'x'"), 1);
    /* An older build refuses a newer file rather than guessing. */
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(store_migrate(db, f->path, fake_list, 1, &f->em), ERR_VERSION);
    assert_non_null(strstr(f->em.text, "newer"));
    sqlite3_close(db);
}

static void test_migrate_failed_step_rolls_back(void **state)
{
    struct fixture *f = *state;
    static const struct store_migration broken[] = {
        {1, "CREATE TABLE t (a INTEGER);"},
        {2, "CREATE TABLE u (a INTEGER); THIS IS NOT SQL;"},
    };
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(store_migrate(db, f->path, broken, 2, &f->em), ERR_IO);
    assert_non_null(strstr(f->em.text, "v2"));
    sqlite3_close(db);
    assert_int_equal(sql_int(f->path, "PRAGMA user_version"), 1);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM sqlite_master WHERE name = 'u'"), 0);
}

static void test_open_creates_latest_private_wal(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    int64_t latest = store_migrations[store_n_migrations - 1].version;
    assert_int_equal(latest, 2);
    assert_int_equal(sql_int(f->path, "PRAGMA user_version"), latest);
    assert_int_equal(sql_int(f->path, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                                      "AND name IN ('events', 'detections', 'outbox')"),
                     3);
    assert_int_equal(store_integrity_check(f->s, &f->em), 0);
    reopen(f); /* a second open migrates nothing */
    assert_int_equal(sql_int(f->path, "PRAGMA user_version"), latest);
}

static void test_open_refuses_newer_and_garbage(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(store_open(&f->opts, &f->s, &f->em), ERR_VERSION);
    assert_null(f->s);
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 512; i++)
        fputs("this is not a database ", fp);
    fclose(fp);
    assert_int_equal(store_open(&f->opts, &f->s, &f->em), ERR_CORRUPT);
    assert_null(f->s);
}

static void test_open_errors_are_clear(void **state)
{
    struct fixture *f = *state;
    struct store_opts o = f->opts;
    char path[160];
    snprintf(path, sizeof path, "%s/no/such/dir/actiond.db", f->dir);
    o.path = path;
    assert_int_equal(store_open(&o, &f->s, &f->em), ERR_IO);
    assert_non_null(strstr(f->em.text, path));
    o.path = "";
    assert_int_equal(store_open(&o, &f->s, &f->em), ERR_INVAL);
    o.path = f->path;
    o.readers = STORE_READERS_MAX + 1;
    assert_int_equal(store_open(&o, &f->s, &f->em), ERR_INVAL);
    assert_null(f->s);
    store_close(NULL);
}

/* ---- events ---- */

static void test_event_open_close_and_ids_across_reopen(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    int64_t a = add_event(f, "cam1", "walk", 1000, 5000);
    int64_t b = add_event(f, "cam1", "run", 2000, -1);
    assert_true(b > a);
    struct store_query q = all_query(10);
    struct collect c;
    assert_int_equal(events_q(f, &q, &c), 2);
    assert_int_equal(c.ids[0], b); /* newest first */
    assert_int_equal(c.last.id, a);
    assert_int_equal(c.last.end_ms, 5000);
    assert_false(c.last.open);
    assert_string_equal(c.last.action, "walk");
    assert_float_equal(c.last.peak, 0.9, 1e-9);
    /* Retention removes every closed event; ids still never repeat after a reopen. */
    store_set_retention(f->s, 1, 0, 0, 0);
    struct store_retention_stats rs;
    assert_int_equal(store_retention_run(f->s, 1000000, &rs, &f->em), 0);
    assert_int_equal(rs.events, 1);
    reopen(f);
    assert_true(store_last_event_id(f->s) >= b);
    int64_t d = add_event(f, "cam1", "walk", 9000, -1);
    assert_true(d > b);
}

static void test_open_events_closed_after_crash(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    int64_t id = add_event(f, "cam1", "walk", 1000, -1);
    int64_t lone = add_event(f, "cam2", "run", 3000, -1);
    assert_int_equal(add_detection(f, "cam1", "walk", 4000), 0);
    assert_int_equal(store_commit(f->s, &f->em), 0);
    reopen(f); /* the events were never closed: as after SIGKILL */
    struct store_query q = all_query(10);
    struct collect c;
    assert_int_equal(events_q(f, &q, &c), 2);
    for (int i = 0; i < c.n; i++)
        assert_true(c.ids[i] == id || c.ids[i] == lone);
    q.stream = "cam1";
    assert_int_equal(events_q(f, &q, &c), 1);
    assert_false(c.last.open);
    assert_int_equal(c.last.end_ms, 5000); /* the end of cam1's last window */
    q.stream = "cam2";
    assert_int_equal(events_q(f, &q, &c), 1);
    assert_int_equal(c.last.end_ms, 3000); /* nothing later stored: ends where it began */
}

static void test_bad_writes_refused(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    struct events_event ev = make_event("", "walk", 0);
    assert_int_equal(store_event_open(f->s, &ev, &f->em), ERR_INVAL);
    ev = make_event("cam1", "walk", -5);
    assert_int_equal(store_event_open(f->s, &ev, &f->em), ERR_INVAL);
    ev = make_event("cam1", "walk", 0);
    ev.id = 12345;
    ev.end_ms = 10;
    assert_int_equal(store_event_close(f->s, &ev, &f->em), ERR_NOTFOUND);
    struct store_detection d = {.start_ms = 10, .end_ms = 5};
    strcpy(d.stream, "cam1");
    strcpy(d.action, "walk");
    assert_int_equal(store_detection_add(f->s, &d, &f->em), ERR_INVAL);
}

/* ---- detections and batching ---- */

static void test_detections_batched_until_commit(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    for (int i = 0; i < 10; i++)
        assert_int_equal(add_detection(f, "cam1", "walk", i * 1000), 0);
    struct store_query q = all_query(100);
    struct collect c;
    assert_int_equal(detections_q(f, &q, &c), 0); /* not committed: not visible */
    struct store_stats st;
    store_get_stats(f->s, &st);
    assert_int_equal(st.rows_pending, 10);
    assert_int_equal(store_commit(f->s, &f->em), 0);
    assert_int_equal(detections_q(f, &q, &c), 10);
    assert_string_equal(c.last_d.top, "[{\"action\":\"walk\",\"score\":0.5}]");
    assert_int_equal(c.last_d.start_ms, 0);
    assert_int_equal(c.last_d.end_ms, 1000);
    /* A full batch commits itself; an event commits what is pending with it. */
    for (int i = 0; i < STORE_BATCH_ROWS; i++)
        assert_int_equal(add_detection(f, "cam1", "walk", 20000 + i), 0);
    q.limit = STORE_QUERY_LIMIT_MAX;
    assert_int_equal(detections_q(f, &q, &c), 10 + STORE_BATCH_ROWS);
    assert_int_equal(add_detection(f, "cam1", "walk", 90000), 0);
    add_event(f, "cam1", "walk", 90000, -1);
    assert_int_equal(detections_q(f, &q, &c), 11 + STORE_BATCH_ROWS);
    store_get_stats(f->s, &st);
    assert_true(st.healthy);
    assert_true(st.commits >= 3);
}

static void test_pending_committed_on_close(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    assert_int_equal(add_detection(f, "cam1", "walk", 0), 0);
    reopen(f);
    struct store_query q = all_query(10);
    struct collect c;
    assert_int_equal(detections_q(f, &q, &c), 1);
    assert_int_equal(store_tick(f->s, &f->em), 0);
}

/* ---- paging and filters ---- */

static void test_keyset_paging(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    for (int i = 0; i < 25; i++)
        add_event(f, i % 2 ? "cam2" : "cam1", i % 3 ? "walk" : "run", i * 10000,
                  i * 10000 + 5000);
    struct store_query q = all_query(10);
    struct collect c;
    int64_t seen[25];
    int n_seen = 0;
    for (int page = 0; page < 5; page++) {
        int n = events_q(f, &q, &c);
        assert_true(n >= 0);
        for (int i = 0; i < n; i++)
            seen[n_seen++] = c.ids[i];
        if (n < q.limit)
            break;
        q.before_id = c.ids[n - 1];
    }
    assert_int_equal(n_seen, 25);
    for (int i = 1; i < n_seen; i++)
        assert_true(seen[i] < seen[i - 1]); /* strictly descending: no repeats, no gaps */
    /* New rows arriving between pages do not shift the next page (unlike OFFSET). */
    q = all_query(10);
    assert_int_equal(events_q(f, &q, &c), 10);
    int64_t cursor = c.ids[9];
    add_event(f, "cam1", "walk", 999000, -1);
    q.before_id = cursor;
    assert_int_equal(events_q(f, &q, &c), 10);
    assert_int_equal(c.ids[0], cursor - 1);
}

static void test_filters(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    add_event(f, "cam1", "walk", 1000, 2000);
    add_event(f, "cam1", "run", 3000, 4000);
    add_event(f, "cam2", "walk", 5000, 6000);
    add_event(f, "cam2", "run", 7000, -1); /* still open */
    struct store_query q = all_query(10);
    struct collect c;
    q.stream = "cam1";
    assert_int_equal(events_q(f, &q, &c), 2);
    q.action = "walk";
    assert_int_equal(events_q(f, &q, &c), 1);
    assert_int_equal(c.last.start_ms, 1000);
    q.stream = NULL;
    assert_int_equal(events_q(f, &q, &c), 2);
    q = all_query(10);
    q.since_ms = 3500; /* overlaps: ends at or after since */
    assert_int_equal(events_q(f, &q, &c), 3);
    q.until_ms = 5000; /* starts before until */
    assert_int_equal(events_q(f, &q, &c), 1);
    q = all_query(10);
    q.since_ms = 100000; /* only the open event goes on that long */
    assert_int_equal(events_q(f, &q, &c), 1);
    assert_true(c.last.open);
    q.stream = "nope";
    assert_int_equal(events_q(f, &q, &c), 0);
    /* Detections filter by their top action and by window overlap. */
    assert_int_equal(add_detection(f, "cam1", "walk", 0), 0);
    assert_int_equal(add_detection(f, "cam1", "run", 1000), 0);
    assert_int_equal(add_detection(f, "cam2", "run", 2000), 0);
    assert_int_equal(store_commit(f->s, &f->em), 0);
    q = all_query(10);
    q.action = "run";
    assert_int_equal(detections_q(f, &q, &c), 2);
    q.stream = "cam2";
    assert_int_equal(detections_q(f, &q, &c), 1);
    q = all_query(10);
    q.since_ms = 1500;
    q.until_ms = 2000;
    assert_int_equal(detections_q(f, &q, &c), 1);
    assert_int_equal(c.last_d.start_ms, 1000);
}

static void test_query_bounds(void **state)
{
    struct fixture *f = *state;
    open_store(f);
    struct store_query q = all_query(0);
    struct collect c;
    assert_int_equal(events_q(f, &q, &c), ERR_INVAL);
    q.limit = STORE_QUERY_LIMIT_MAX + 1;
    assert_int_equal(events_q(f, &q, &c), ERR_INVAL);
    assert_int_equal(detections_q(f, &q, &c), ERR_INVAL);
    q.limit = 5;
    q.before_id = -1;
    assert_int_equal(events_q(f, &q, &c), ERR_INVAL);
}

/* Stops at the first row and, while holding the only reader, asks for another. */
struct nested {
    struct fixture *f;
    int inner_rc;
};

static int nested_row(void *ctx, const struct events_event *ev)
{
    (void)ev;
    struct nested *n = ctx;
    struct store_query q = all_query(1);
    struct collect c;
    n->inner_rc = events_q(n->f, &q, &c);
    return 1;
}

static void test_reader_pool_bounded_wait(void **state)
{
    struct fixture *f = *state;
    f->opts.readers = 1;
    f->opts.busy_timeout_ms = 50;
    open_store(f);
    add_event(f, "cam1", "walk", 1000, -1);
    add_event(f, "cam1", "walk", 2000, -1);
    struct nested n = {f, 0};
    struct store_query q = all_query(10);
    uint64_t t0 = clock_mono_ms();
    assert_int_equal(store_events_query(f->s, &q, nested_row, &n, &f->em), 1);
    assert_int_equal(n.inner_rc, ERR_BUSY);
    assert_true(clock_mono_ms() - t0 < 2000);
    struct collect c;
    assert_int_equal(events_q(f, &q, &c), 2); /* the reader went back to the pool */
}

/* ---- retention ---- */

/* The count the HTTP API's cached pages are checked against: it must move with every commit
 * a reader can see (batches, events, retention) and not before. */
static void test_generation_follows_commits(void **state)
{
    struct fixture *f = *state;
    f->opts.retention_ms = 10000;
    open_store(f);
    uint64_t g = store_generation(f->s);
    assert_int_equal(add_detection(f, "cam1", "walk", 0), 0);
    assert_int_equal(store_generation(f->s), g); /* pending: nothing visible changed */
    assert_int_equal(store_commit(f->s, &f->em), 0);
    assert_true(store_generation(f->s) > g);
    g = store_generation(f->s);
    assert_int_equal(store_commit(f->s, &f->em), 0); /* nothing pending: no commit */
    assert_int_equal(store_generation(f->s), g);
    int64_t id = add_event(f, "cam1", "walk", 1000, -1);
    assert_true(store_generation(f->s) > g);
    g = store_generation(f->s);
    struct events_event ev = make_event("cam1", "walk", 1000);
    ev.id = id;
    ev.end_ms = 2000;
    ev.open = false;
    assert_int_equal(store_event_close(f->s, &ev, &f->em), 0);
    assert_true(store_generation(f->s) > g);
    g = store_generation(f->s);
    struct store_retention_stats rs;
    assert_int_equal(store_retention_run(f->s, 100000, &rs, &f->em), 0);
    assert_int_equal(rs.detections, 1);
    assert_true(store_generation(f->s) > g); /* rows deleted are a change too */
    g = store_generation(f->s);
    assert_int_equal(store_retention_run(f->s, 100000, &rs, &f->em), 0);
    assert_int_equal(store_generation(f->s), g); /* nothing deleted */
}

static void test_retention_by_age(void **state)
{
    struct fixture *f = *state;
    f->opts.retention_ms = 10000;
    open_store(f);
    add_event(f, "cam1", "walk", 1000, 2000);      /* old */
    add_event(f, "cam1", "walk", 1000, -1);        /* old but still open: kept */
    add_event(f, "cam1", "walk", 95000, 96000);    /* recent */
    for (int i = 0; i < 3; i++)
        assert_int_equal(add_detection(f, "cam1", "walk", i * 50000), 0); /* 0, 50 s, 100 s */
    assert_int_equal(store_commit(f->s, &f->em), 0);
    struct store_retention_stats rs;
    assert_int_equal(store_retention_run(f->s, 100000, &rs, &f->em), 0);
    assert_int_equal(rs.events, 1);
    assert_int_equal(rs.detections, 2);
    struct store_query q = all_query(10);
    struct collect c;
    assert_int_equal(events_q(f, &q, &c), 2);
    assert_int_equal(detections_q(f, &q, &c), 1);
}

static void test_retention_by_count(void **state)
{
    struct fixture *f = *state;
    f->opts.max_events = 5;
    f->opts.max_detections = 1500;
    open_store(f);
    for (int i = 0; i < 12; i++)
        add_event(f, "cam1", "walk", i * 1000, i * 1000 + 500);
    for (int i = 0; i < 3000; i++)
        assert_int_equal(add_detection(f, "cam1", "walk", i), 0);
    assert_int_equal(store_commit(f->s, &f->em), 0);
    struct store_retention_stats rs;
    assert_int_equal(store_retention_run(f->s, 0, &rs, &f->em), 0);
    assert_int_equal(rs.events, 7);
    assert_int_equal(rs.detections, 1500);
    struct store_query q = all_query(STORE_QUERY_LIMIT_MAX);
    struct collect c;
    assert_int_equal(events_q(f, &q, &c), 5);
    assert_int_equal(c.last.start_ms, 7000); /* the newest five stay */
    assert_int_equal(sql_int(f->path, "SELECT min(start_ms) FROM detections"), 1500);
}

/* max_size caps the pages: writes past it fail with a clear error, never a crash, and the
 * next tick's retention trims window results so writing goes on. */
static void test_disk_full_then_recovers(void **state)
{
    struct fixture *f = *state;
    f->opts.max_size = 256 * 1024;
    open_store(f);
    int rc = 0, i;
    for (i = 0; i < 100000 && rc == 0; i++)
        rc = add_detection(f, "cam1", "walk", i);
    if (rc == 0)
        rc = store_commit(f->s, &f->em);
    assert_int_equal(rc, ERR_IO);
    assert_non_null(strstr(f->em.text, "full"));
    struct store_stats st;
    store_get_stats(f->s, &st);
    assert_false(st.healthy);
    assert_true(st.write_errors >= 1);
    assert_non_null(strstr(st.last_error, "full"));
    /* An event on a full disk is refused, not acknowledged with an id. */
    struct events_event ev = make_event("cam1", "walk", 1);
    int erc = store_event_open(f->s, &ev, &f->em);
    if (erc == 0) {
        /* The failed batch was rolled back, which may have freed room: that is fine too. */
        assert_true(ev.id > 0);
    } else {
        assert_int_equal(erc, ERR_IO);
        assert_int_equal(ev.id, 0);
    }
    /* Fill it again so there is something to trim, then let retention make room. */
    rc = 0;
    for (i = 0; i < 100000 && rc == 0; i++)
        rc = add_detection(f, "cam1", "walk", i);
    assert_int_equal(store_tick(f->s, &f->em), 0);
    for (i = 0; i < 50; i++)
        assert_int_equal(add_detection(f, "cam1", "walk", 200000 + i), 0);
    assert_int_equal(store_commit(f->s, &f->em), 0);
    ev = make_event("cam1", "walk", 300000);
    assert_int_equal(store_event_open(f->s, &ev, &f->em), 0);
    store_get_stats(f->s, &st);
    assert_true(st.healthy);
    assert_true(st.size_bytes <= f->opts.max_size);
    assert_int_equal(store_integrity_check(f->s, &f->em), 0);
}

/* ---- outbox ---- */

struct outbox_collect {
    struct store_outbox_row rows[16];
    char payloads[16][STORE_OUTBOX_PAYLOAD_MAX];
    int n;
};

static int collect_outbox(void *ctx, const struct store_outbox_row *r)
{
    struct outbox_collect *c = ctx;
    c->rows[c->n] = *r;
    snprintf(c->payloads[c->n], sizeof c->payloads[c->n], "%.*s", (int)r->payload_len, r->payload);
    c->rows[c->n].payload = c->payloads[c->n];
    c->n++;
    return 0;
}

static void test_outbox(void **state)
{
    struct fixture *f = *state;
    f->opts.outbox = true;
    open_store(f);
    assert_int_equal(store_outbox_last_id(f->s), 0);
    int64_t id = add_event(f, "cam1", "walk", 1000, 2000);
    struct outbox_collect c = {0};
    assert_int_equal(store_outbox_pending(f->s, 0, 10, collect_outbox, &c, &f->em), 2);
    assert_int_equal(c.rows[0].event_id, id);
    assert_string_equal(c.rows[0].stream, "cam1");
    assert_false(c.rows[0].closed);
    assert_true(c.rows[1].closed);
    assert_int_equal(store_outbox_last_id(f->s), c.rows[1].id);
    /* The message is the event as it was: open with no end, then closed with its end. */
    char want[64];
    snprintf(want, sizeof want, "{\"id\":%lld,", (long long)id);
    assert_non_null(strstr(c.payloads[0], want));
    assert_non_null(strstr(c.payloads[0], "\"open\":true"));
    assert_non_null(strstr(c.payloads[0], "\"end_ms\":null"));
    assert_non_null(strstr(c.payloads[1], "\"open\":false"));
    assert_non_null(strstr(c.payloads[1], "\"end_ms\":2000"));
    /* Acknowledged rows go; the rest stay, also across a reopen. */
    assert_int_equal(store_outbox_delete(f->s, &c.rows[0].id, 1, &f->em), 0);
    assert_int_equal(store_outbox_delete(f->s, &c.rows[0].id, 1, &f->em), 0); /* again: no error */
    reopen(f);
    struct outbox_collect d = {0};
    assert_int_equal(store_outbox_pending(f->s, 0, 10, collect_outbox, &d, &f->em), 1);
    assert_int_equal(d.rows[0].id, c.rows[1].id);
    assert_int_equal(store_outbox_pending(f->s, c.rows[1].id, 10, collect_outbox, &d, &f->em), 0);
    assert_int_equal(store_outbox_pending(f->s, 0, 0, collect_outbox, &d, &f->em), ERR_INVAL);
    struct store_stats st;
    store_get_stats(f->s, &st);
    assert_int_equal(st.outbox_pending, 1);
    /* Without MQTT nothing is queued. */
    f->opts.outbox = false;
    reopen(f);
    add_event(f, "cam1", "walk", 3000, 4000);
    struct outbox_collect e = {0};
    assert_int_equal(store_outbox_pending(f->s, 0, 10, collect_outbox, &e, &f->em), 1);
}

static void test_outbox_bound_drops_oldest(void **state)
{
    struct fixture *f = *state;
    f->opts.outbox = true;
    f->opts.outbox_max = 3;
    open_store(f);
    for (int i = 0; i < 3; i++)
        add_event(f, "cam1", "walk", 1000 * i, 1000 * i + 500); /* 6 messages */
    struct outbox_collect c = {0};
    assert_int_equal(store_outbox_pending(f->s, 0, 10, collect_outbox, &c, &f->em), 3);
    /* The newest three survive, in order: event 2 closed, event 3 opened and closed. */
    assert_true(c.rows[0].closed);
    assert_false(c.rows[1].closed);
    assert_true(c.rows[2].closed);
    assert_true(c.rows[0].id < c.rows[1].id && c.rows[1].id < c.rows[2].id);
    struct store_stats st;
    store_get_stats(f->s, &st);
    assert_int_equal(st.outbox_dropped, 3);
    assert_int_equal(st.outbox_pending, 3);
}

/* A crash leaves an event open: the next start closes it and queues that close. */
static void test_outbox_dangling_close(void **state)
{
    struct fixture *f = *state;
    f->opts.outbox = true;
    open_store(f);
    int64_t id = add_event(f, "cam1", "wave", 1767225600123, -1);
    assert_int_equal(add_detection(f, "cam1", "wave", 1767225601000), 0);
    assert_int_equal(store_commit(f->s, &f->em), 0);
    reopen(f);
    struct outbox_collect c = {0};
    assert_int_equal(store_outbox_pending(f->s, 0, 10, collect_outbox, &c, &f->em), 2);
    assert_true(c.rows[1].closed);
    assert_int_equal(c.rows[1].event_id, id);
    assert_non_null(strstr(c.payloads[1], "\"open\":false"));
    assert_non_null(strstr(c.payloads[1], "\"end_ms\":1767225602000"));
    assert_non_null(strstr(c.payloads[1], "\"start\":\"2026-01-01T00:00:00.123Z\""));
    assert_non_null(strstr(c.payloads[1], "\"end\":\"2026-01-01T00:00:02.000Z\""));
}

/* A v1 database with undelivered rows keeps them, rebuilt as messages. */
static void test_outbox_migrates_from_v1(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(store_migrate(db, f->path, store_migrations, 1, &f->em), 0);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO events VALUES (7, 'cam2', 'run', 5000, 9000, 0.9, "
                                  "0.7, 4);"
                                  "INSERT INTO outbox VALUES (1, 7, 'opened', 5000, 6000);"
                                  "INSERT INTO outbox VALUES (2, 7, 'closed', 9000, NULL);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    f->opts.outbox = true;
    open_store(f);
    struct outbox_collect c = {0};
    assert_int_equal(store_outbox_pending(f->s, 0, 10, collect_outbox, &c, &f->em), 1);
    assert_true(c.rows[0].closed);
    assert_string_equal(c.rows[0].stream, "cam2");
    assert_string_equal(c.payloads[0],
                        "{\"id\":7,\"stream\":\"cam2\",\"action\":\"run\",\"open\":false,"
                        "\"peak\":0.9,\"mean\":0.7,\"windows\":4,\"start_ms\":5000,"
                        "\"start\":\"1970-01-01T00:00:05.000Z\",\"end_ms\":9000,"
                        "\"end\":\"1970-01-01T00:00:09.000Z\"}");
}

static void test_opts_from_config(void **state)
{
    (void)state;
    struct config cfg = {0};
    cfg.store.path = "/var/lib/actiond/actiond.db";
    cfg.store.retention_days = 2;
    cfg.store.retention_max_events = 7;
    cfg.store.max_size = 1000;
    cfg.mqtt.enabled = true;
    cfg.mqtt.outbox_max = 9;
    struct store_opts o;
    store_opts_from_config(&cfg, &o);
    assert_string_equal(o.path, cfg.store.path);
    assert_int_equal(o.retention_ms, 2 * 86400 * 1000LL);
    assert_int_equal(o.max_events, 7);
    assert_int_equal(o.max_size, 1000);
    assert_true(o.outbox);
    assert_int_equal(o.outbox_max, 9);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_migrate_fake_v0_to_v2),
        T(test_migrate_failed_step_rolls_back),
        T(test_open_creates_latest_private_wal),
        T(test_open_refuses_newer_and_garbage),
        T(test_open_errors_are_clear),
        T(test_event_open_close_and_ids_across_reopen),
        T(test_open_events_closed_after_crash),
        T(test_bad_writes_refused),
        T(test_detections_batched_until_commit),
        T(test_pending_committed_on_close),
        T(test_keyset_paging),
        T(test_filters),
        T(test_query_bounds),
        T(test_reader_pool_bounded_wait),
        T(test_generation_follows_commits),
        T(test_retention_by_age),
        T(test_retention_by_count),
        T(test_disk_full_then_recovers),
        T(test_outbox),
        T(test_outbox_bound_drops_oldest),
        T(test_outbox_dangling_close),
        T(test_outbox_migrates_from_v1),
        T(test_opts_from_config),
    };
#undef T
    log_set_level(LOG_LVL_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
