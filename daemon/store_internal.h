/* store_internal.h — what store.c shares with its tests: the migration runner and the schema
 * list. Not for other modules. */
#ifndef ACTIOND_DAEMON_STORE_INTERNAL_H
#define ACTIOND_DAEMON_STORE_INTERNAL_H

#include "daemon/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stddef.h>

struct err_msg;

#define STORE_READERS_MAX 16

/* Query statements by filter: bit 0 set filters by stream, bit 1 by action. */
#define STORE_FILTER_VARIANTS 4

/* A read-only connection with its prepared statements; used by one thread at a time. */
struct store_reader {
    sqlite3 *db;
    sqlite3_stmt *events[STORE_FILTER_VARIANTS];
    sqlite3_stmt *detections[STORE_FILTER_VARIANTS];
    sqlite3_stmt *outbox;
    sqlite3_stmt *last_id;
    bool busy;
};

struct store {
    char *path;
    struct store_opts opts;
    sqlite3 *db; /* the writer's connection */
    sqlite3_stmt *st_begin, *st_commit, *st_rollback;
    sqlite3_stmt *st_ev_insert, *st_ev_close, *st_det_insert;
    sqlite3_stmt *st_outbox_insert, *st_outbox_delete, *st_outbox_trim;
    int64_t page_size;
    uint64_t pending;
    uint64_t batch_started_ms;
    uint64_t next_retention_ms;
    bool retention_now; /* a write found the disk full */
    int64_t outbox_rows;    /* rows in the outbox, as the writer last left it */
    int64_t outbox_written; /* the newest outbox row written, committed or not */
    atomic_llong outbox_committed; /* the newest outbox row committed: read by any thread */
    atomic_ullong generation;      /* commits readers can see so far: store_generation() */

    pthread_mutex_t pool_lock;
    pthread_cond_t pool_cond; /* a reader came back */
    struct store_reader readers[STORE_READERS_MAX];
    int n_readers;

    pthread_mutex_t stats_lock;
    struct store_stats stats;
};

/* A negative ERR_* for an SQLite result code: FULL, READONLY, CANTOPEN and IOERR are ERR_IO,
 * CORRUPT and NOTADB ERR_CORRUPT, BUSY and LOCKED ERR_BUSY, NOMEM ERR_NOMEM. */
int store_err_code(int sqlite_rc);
/* Fills em with "store: PATH: what: sqlite's message" and returns store_err_code(rc). */
int store_sql_error(const struct store *s, sqlite3 *db, int rc, const char *what,
                    struct err_msg *em);

/* Reader pool (store_read.c). */
int store_readers_open(struct store *s, int n, struct err_msg *em);
void store_readers_close(struct store *s);

/* Schema version `version` is reached by running sql on version - 1; versions count from 1
 * without holes, and each step runs in its own transaction with PRAGMA user_version. */
struct store_migration {
    int version;
    const char *sql;
};

/* The migrations of this build; the last one's version is the current schema. */
extern const struct store_migration store_migrations[];
extern const size_t store_n_migrations;

/* Brings db from its user_version up to the last of list[0..n). A database newer than the
 * list is ERR_VERSION; a failed step is rolled back and leaves the version before it. */
int store_migrate(sqlite3 *db, const char *path, const struct store_migration *list, size_t n,
                  struct err_msg *em);

#endif
