/* bus.c — reference-counted messages fanned out to per-subscriber rings under one mutex; the
 * copy is made before the lock is taken, so publishing costs the producer a few pointer stores. */
#include "daemon/bus.h"
#include "common/err.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct daemon_bus_msg {
    atomic_int refs;
    size_t len;
    char text[];
};

struct daemon_bus_sub {
    struct daemon_bus *bus;
    pthread_cond_t cond;
    struct daemon_bus_msg *ring[DAEMON_BUS_QUEUE];
    unsigned head, count;
    bool dropped;
};

struct daemon_bus {
    pthread_mutex_t lock;
    pthread_cond_t idle; /* the last subscriber left */
    struct daemon_bus_sub *subs[DAEMON_BUS_MAX_SUBS];
    unsigned n_subs;
    bool closed;
    uint64_t published, dropped_subs;
};

int daemon_bus_new(struct daemon_bus **out)
{
    struct daemon_bus *b = calloc(1, sizeof *b);
    if (!b)
        return ERR_NOMEM;
    pthread_mutex_init(&b->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->idle, &ca);
    pthread_condattr_destroy(&ca);
    *out = b;
    return 0;
}

void daemon_bus_free(struct daemon_bus *b)
{
    if (!b)
        return;
    pthread_cond_destroy(&b->idle);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

void daemon_bus_close(struct daemon_bus *b)
{
    pthread_mutex_lock(&b->lock);
    b->closed = true;
    for (unsigned i = 0; i < b->n_subs; i++)
        pthread_cond_signal(&b->subs[i]->cond);
    pthread_mutex_unlock(&b->lock);
}

int daemon_bus_subscribe(struct daemon_bus *b, struct daemon_bus_sub **out)
{
    struct daemon_bus_sub *s = calloc(1, sizeof *s);
    if (!s)
        return ERR_NOMEM;
    s->bus = b;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_lock(&b->lock);
    int rc = b->closed ? ERR_EOF : b->n_subs == DAEMON_BUS_MAX_SUBS ? ERR_BUSY : 0;
    if (!rc)
        b->subs[b->n_subs++] = s;
    pthread_mutex_unlock(&b->lock);
    if (rc) {
        pthread_cond_destroy(&s->cond);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void daemon_bus_msg_release(struct daemon_bus_msg *m)
{
    if (m && atomic_fetch_sub(&m->refs, 1) == 1)
        free(m);
}

/* Empties s's ring into out[] so the messages can be released after the lock is dropped. */
static unsigned sub_drain(struct daemon_bus_sub *s, struct daemon_bus_msg **out)
{
    unsigned n = s->count;
    for (unsigned i = 0; i < n; i++)
        out[i] = s->ring[(s->head + i) % DAEMON_BUS_QUEUE];
    s->count = 0;
    return n;
}

void daemon_bus_unsubscribe(struct daemon_bus_sub *s)
{
    if (!s)
        return;
    struct daemon_bus *b = s->bus;
    struct daemon_bus_msg *left[DAEMON_BUS_QUEUE];
    pthread_mutex_lock(&b->lock);
    for (unsigned i = 0; i < b->n_subs; i++) {
        if (b->subs[i] == s) {
            b->subs[i] = b->subs[--b->n_subs];
            break;
        }
    }
    unsigned n = sub_drain(s, left);
    if (b->n_subs == 0)
        pthread_cond_broadcast(&b->idle);
    pthread_mutex_unlock(&b->lock);
    for (unsigned i = 0; i < n; i++)
        daemon_bus_msg_release(left[i]);
    pthread_cond_destroy(&s->cond);
    free(s);
}

int daemon_bus_publish(struct daemon_bus *b, const char *text, size_t len)
{
    if (!text || len == 0 || len > DAEMON_BUS_MSG_MAX)
        return ERR_INVAL;
    struct daemon_bus_msg *m = malloc(sizeof *m + len + 1);
    if (!m)
        return ERR_NOMEM;
    atomic_init(&m->refs, 1); /* the publisher's, dropped below */
    m->len = len;
    memcpy(m->text, text, len);
    m->text[len] = '\0';
    struct daemon_bus_msg *freed[DAEMON_BUS_QUEUE * 4];
    unsigned n_freed = 0;
    pthread_mutex_lock(&b->lock);
    b->published++;
    for (unsigned i = 0; i < b->n_subs; i++) {
        struct daemon_bus_sub *s = b->subs[i];
        if (s->dropped)
            continue;
        if (s->count == DAEMON_BUS_QUEUE) {
            /* Falling this far behind means the client is not reading: cut it off and let its
             * thread free the backlog, rather than ever making the producer wait. */
            s->dropped = true;
            b->dropped_subs++;
            if (n_freed + DAEMON_BUS_QUEUE <= sizeof freed / sizeof freed[0])
                n_freed += sub_drain(s, freed + n_freed);
        } else {
            atomic_fetch_add(&m->refs, 1);
            s->ring[(s->head + s->count++) % DAEMON_BUS_QUEUE] = m;
        }
        pthread_cond_signal(&s->cond);
    }
    pthread_mutex_unlock(&b->lock);
    for (unsigned i = 0; i < n_freed; i++)
        daemon_bus_msg_release(freed[i]);
    daemon_bus_msg_release(m);
    return 0;
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

int daemon_bus_wait(struct daemon_bus_sub *s, int timeout_ms, struct daemon_bus_msg **msg)
{
    struct daemon_bus *b = s->bus;
    struct timespec deadline;
    deadline_after(&deadline, timeout_ms < 0 ? 0 : timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&b->lock);
    for (;;) {
        if (s->dropped) {
            rc = ERR_BUSY;
        } else if (s->count) {
            *msg = s->ring[s->head];
            s->head = (s->head + 1) % DAEMON_BUS_QUEUE;
            s->count--;
            rc = 1;
        } else if (b->closed) {
            rc = ERR_EOF;
        } else if (pthread_cond_timedwait(&s->cond, &b->lock, &deadline) != ETIMEDOUT) {
            continue;
        }
        break;
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

int daemon_bus_wait_idle(struct daemon_bus *b, int timeout_ms)
{
    struct timespec deadline;
    deadline_after(&deadline, timeout_ms < 0 ? 0 : timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&b->lock);
    while (b->n_subs > 0 && rc == 0)
        if (pthread_cond_timedwait(&b->idle, &b->lock, &deadline) == ETIMEDOUT)
            rc = b->n_subs > 0 ? ERR_TIMEOUT : 0;
    pthread_mutex_unlock(&b->lock);
    return rc;
}

const char *daemon_bus_msg_text(const struct daemon_bus_msg *m, size_t *len)
{
    if (len)
        *len = m->len;
    return m->text;
}

void daemon_bus_get_stats(struct daemon_bus *b, struct daemon_bus_stats *out)
{
    pthread_mutex_lock(&b->lock);
    out->published = b->published;
    out->dropped_subs = b->dropped_subs;
    out->subscribers = b->n_subs;
    pthread_mutex_unlock(&b->lock);
}
