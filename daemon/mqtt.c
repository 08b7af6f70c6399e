/* mqtt.c — the MQTT publisher thread: outbox rows out at QoS 1 in id order, deleted (by the
 * store's writer, through the ack queue) only once the broker acknowledged them; a fresh
 * client per connection, so libmosquitto never resends on its own and the thread alone
 * decides what goes out again after a reconnect: exactly the messages still unacknowledged. */
#ifdef HAVE_MOSQUITTO
#include "daemon/mqtt.h"
#include "daemon/json.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Acknowledged ids waiting for the writer thread, which takes them every main-loop turn
 * (200 ms); at MQTT_INFLIGHT_MAX per round trip this holds seconds of acknowledgements. */
#define MQTT_ACK_QUEUE 1024

/* A message on its way: a copy of the outbox row, kept until the broker acknowledges it. */
struct flight {
    int64_t id;
    int mid;    /* libmosquitto's message id; 0: not sent on this connection */
    bool acked; /* acknowledged, waiting for room in the ack queue */
    char topic[MQTT_TOPIC_MAX];
    char *payload;
    size_t len;
};

struct daemon_mqtt {
    char *host, *prefix, *client_id, *username, *password, *ca, *cert, *key;
    int port, qos, keepalive_s, backoff_min_ms, backoff_max_ms;
    int64_t stats_interval_ms;
    char status_topic[MQTT_TOPIC_MAX], stats_topic[MQTT_TOPIC_MAX];
    struct store *store;
    struct daemon_state *state;
    pthread_t thread;
    bool started;
    atomic_int stop;
    pthread_mutex_t wake_mu;
    pthread_cond_t wake; /* stop */

    /* owned by the thread */
    struct mosquitto *mosq;
    bool connected, lost;
    int status_mid;
    bool status_acked;
    uint64_t connect_started_ms, next_try_ms, next_stats_ms;
    int backoff_ms;
    struct flight fl[MQTT_INFLIGHT_MAX];
    int n_fl;
    int64_t cursor; /* the newest outbox id taken into flight */

    /* shared, under mu */
    pthread_mutex_t mu;
    int64_t acked[MQTT_ACK_QUEUE];
    size_t acked_head, acked_len;
    struct daemon_mqtt_stats stats;
};

static void note_error(struct daemon_mqtt *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Logs a failure and keeps it for the stats. */
static void note_error(struct daemon_mqtt *m, const char *fmt, ...)
{
    char text[sizeof m->stats.last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&m->mu);
    m->stats.failures++;
    snprintf(m->stats.last_error, sizeof m->stats.last_error, "%s", text);
    pthread_mutex_unlock(&m->mu);
    log_warn("mqtt: %s:%d: %s; retrying in %d s", m->host, m->port, text,
             (m->backoff_ms + 999) / 1000);
}

static void set_connected(struct daemon_mqtt *m, bool on)
{
    pthread_mutex_lock(&m->mu);
    m->stats.connected = on;
    if (on)
        m->stats.connects++;
    pthread_mutex_unlock(&m->mu);
}

/* ---- the ack queue: this thread -> the store's writer ---- */

static bool ack_push(struct daemon_mqtt *m, int64_t id)
{
    pthread_mutex_lock(&m->mu);
    bool room = m->acked_len < MQTT_ACK_QUEUE;
    if (room) {
        m->acked[(m->acked_head + m->acked_len++) % MQTT_ACK_QUEUE] = id;
        m->stats.published++;
    }
    pthread_mutex_unlock(&m->mu);
    return room;
}

size_t daemon_mqtt_acked_take(struct daemon_mqtt *m, int64_t *ids, size_t cap)
{
    if (!m)
        return 0;
    pthread_mutex_lock(&m->mu);
    size_t n = 0;
    for (; n < cap && m->acked_len; n++, m->acked_len--) {
        ids[n] = m->acked[m->acked_head];
        m->acked_head = (m->acked_head + 1) % MQTT_ACK_QUEUE;
    }
    pthread_mutex_unlock(&m->mu);
    return n;
}

void daemon_mqtt_get_stats(struct daemon_mqtt *m, struct daemon_mqtt_stats *out)
{
    pthread_mutex_lock(&m->mu);
    *out = m->stats;
    pthread_mutex_unlock(&m->mu);
}

/* Hands acknowledged flights to the writer, oldest first, while the queue has room. */
static void flights_settle(struct daemon_mqtt *m)
{
    int keep = 0;
    for (int i = 0; i < m->n_fl; i++) {
        struct flight *f = &m->fl[i];
        if (f->acked && ack_push(m, f->id)) {
            free(f->payload);
            continue;
        }
        m->fl[keep++] = *f;
    }
    m->n_fl = keep;
}

/* ---- libmosquitto callbacks (run inside mosquitto_loop, on this thread) ---- */

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    (void)mosq;
    struct daemon_mqtt *m = obj;
    if (rc != 0) {
        note_error(m, "connection refused: %s", mosquitto_connack_string(rc));
        m->lost = true;
        return;
    }
    m->connected = true;
    m->backoff_ms = m->backoff_min_ms;
    set_connected(m, true);
    log_info("mqtt: connected to %s:%d as %s", m->host, m->port, m->client_id);
    int mid = 0;
    rc = mosquitto_publish(m->mosq, &mid, m->status_topic, 6, "online", 1, true);
    if (rc != MOSQ_ERR_SUCCESS)
        log_warn("mqtt: publishing the online status: %s", mosquitto_strerror(rc));
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
    (void)mosq;
    struct daemon_mqtt *m = obj;
    if (m->connected && rc != 0 && !atomic_load(&m->stop))
        note_error(m, "connection lost: %s", mosquitto_strerror(rc));
    m->connected = false;
    m->lost = true;
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid)
{
    (void)mosq;
    struct daemon_mqtt *m = obj;
    if (mid == m->status_mid) {
        m->status_acked = true;
        return;
    }
    for (int i = 0; i < m->n_fl; i++)
        if (m->fl[i].mid == mid && !m->fl[i].acked)
            m->fl[i].acked = true;
}

/* ---- connections ---- */

static void client_drop(struct daemon_mqtt *m)
{
    if (m->mosq)
        mosquitto_destroy(m->mosq);
    m->mosq = NULL;
    if (m->connected)
        set_connected(m, false);
    m->connected = m->lost = false;
    /* What was not acknowledged goes again, in order, on the next connection. */
    for (int i = 0; i < m->n_fl; i++)
        m->fl[i].mid = 0;
    m->next_try_ms = clock_mono_ms() + (uint64_t)m->backoff_ms;
    m->backoff_ms = m->backoff_ms * 2 > m->backoff_max_ms ? m->backoff_max_ms : m->backoff_ms * 2;
}

static const char *mosq_error(int rc)
{
    return rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
}

static int client_setup(struct daemon_mqtt *m)
{
    struct mosquitto *q = m->mosq;
    mosquitto_connect_callback_set(q, on_connect);
    mosquitto_disconnect_callback_set(q, on_disconnect);
    mosquitto_publish_callback_set(q, on_publish);
    int rc = mosquitto_int_option(q, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_will_set(q, m->status_topic, 7, "offline", 1, true);
    if (rc == MOSQ_ERR_SUCCESS && m->username)
        rc = mosquitto_username_pw_set(q, m->username, m->password);
    if (rc == MOSQ_ERR_SUCCESS && m->ca)
        rc = mosquitto_tls_set(q, m->ca, NULL, m->cert, m->key, NULL);
    return rc;
}

/* Starts one connection attempt; the CONNACK arrives later, in mosquitto_loop. */
static void client_open(struct daemon_mqtt *m)
{
    /* clean session: the broker keeps nothing for us; the outbox is the session. */
    m->mosq = mosquitto_new(m->client_id, true, m);
    if (!m->mosq) {
        note_error(m, "cannot create a client: %s", strerror(errno));
        client_drop(m);
        return;
    }
    int rc = client_setup(m);
    if (rc != MOSQ_ERR_SUCCESS) {
        note_error(m, "setting up the client: %s", mosq_error(rc));
        client_drop(m);
        return;
    }
    m->connect_started_ms = clock_mono_ms();
    rc = mosquitto_connect_async(m->mosq, m->host, m->port, m->keepalive_s);
    if (rc != MOSQ_ERR_SUCCESS) {
        note_error(m, "cannot connect: %s", mosq_error(rc));
        client_drop(m);
    }
}

/* ---- sending ---- */

static void send_flight(struct daemon_mqtt *m, struct flight *f)
{
    /* libmosquitto writes the mid before it may call on_publish (at QoS 0, at once). */
    int rc = mosquitto_publish(m->mosq, &f->mid, f->topic, (int)f->len, f->payload, m->qos, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        f->mid = 0;
        m->lost = true; /* the connection is gone: start over with the next one */
    }
}

static int take_row(void *ctx, const struct store_outbox_row *r)
{
    struct daemon_mqtt *m = ctx;
    if (m->n_fl == MQTT_INFLIGHT_MAX)
        return 1;
    struct flight *f = &m->fl[m->n_fl];
    m->cursor = r->id;
    *f = (struct flight){.id = r->id, .len = r->payload_len};
    if (daemon_mqtt_topic(m->prefix, r->stream, "events", f->topic, sizeof f->topic) != 0)
        return 0; /* cannot happen with config/'s bounds; the row is skipped, not resent */
    f->payload = malloc(r->payload_len + 1);
    if (!f->payload)
        return 1;
    memcpy(f->payload, r->payload, r->payload_len + 1);
    m->n_fl++;
    return 0;
}

/* Sends what a reconnect left unsent, then new outbox rows while there is room. */
static void pump(struct daemon_mqtt *m)
{
    flights_settle(m);
    for (int i = 0; i < m->n_fl && !m->lost; i++)
        if (!m->fl[i].mid && !m->fl[i].acked)
            send_flight(m, &m->fl[i]);
    if (m->lost || m->n_fl == MQTT_INFLIGHT_MAX || store_outbox_last_id(m->store) <= m->cursor)
        return;
    int first = m->n_fl;
    struct err_msg em;
    int rc = store_outbox_pending(m->store, m->cursor, MQTT_INFLIGHT_MAX - m->n_fl, take_row, m,
                                  &em);
    if (rc < 0)
        log_warn("mqtt: reading the outbox: %s", err_text(&em, rc));
    for (int i = first; i < m->n_fl && !m->lost; i++)
        send_flight(m, &m->fl[i]);
}

static json_t *stats_json(struct daemon_mqtt *m)
{
    struct daemon_stream_status st[CONFIG_MAX_STREAMS];
    size_t n = daemon_state_snapshot(m->state, st, CONFIG_MAX_STREAMS);
    if (n > CONFIG_MAX_STREAMS)
        n = CONFIG_MAX_STREAMS;
    json_t *streams = json_array();
    for (size_t i = 0; streams && i < n; i++)
        json_array_append_new(
            streams, json_pack("{s:s, s:s, s:f, s:I, s:I, s:I, s:I, s:I}", "id", st[i].id, "state",
                               daemon_stream_state_name(st[i].state), "fps", st[i].fps, "frames",
                               (json_int_t)st[i].frames, "clips", (json_int_t)st[i].clips,
                               "dropped", (json_int_t)st[i].dropped, "reconnects",
                               (json_int_t)st[i].reconnects, "events", (json_int_t)st[i].events));
    struct store_stats ss;
    store_get_stats(m->store, &ss);
    struct daemon_mqtt_stats ms;
    daemon_mqtt_get_stats(m, &ms);
    return streams ? json_pack("{s:I, s:f, s:o, s:I, s:I, s:I}", "time_ms",
                               (json_int_t)clock_wall_ms(), "uptime_s",
                               daemon_state_uptime_s(m->state), "streams", streams,
                               "outbox_pending", (json_int_t)ss.outbox_pending, "outbox_dropped",
                               (json_int_t)ss.outbox_dropped, "published",
                               (json_int_t)ms.published)
                   : NULL;
}

/* Statistics are a snapshot, stale by the next one: QoS 0, not kept in the outbox. */
static void send_stats(struct daemon_mqtt *m)
{
    uint64_t now = clock_mono_ms();
    if (!m->stats_interval_ms || now < m->next_stats_ms)
        return;
    m->next_stats_ms = now + (uint64_t)m->stats_interval_ms;
    json_t *o = stats_json(m);
    char *text = o ? json_dumps(o, DAEMON_JSON_FLAGS) : NULL;
    json_decref(o);
    if (text)
        mosquitto_publish(m->mosq, NULL, m->stats_topic, (int)strlen(text), text, 0, false);
    free(text);
}

/* ---- the thread ---- */

static void wait_until(struct daemon_mqtt *m, uint64_t until_ms)
{
    pthread_mutex_lock(&m->wake_mu);
    uint64_t now = clock_mono_ms();
    if (!atomic_load(&m->stop) && until_ms > now) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (until_ms - now) * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&m->wake, &m->wake_mu, &ts);
    }
    pthread_mutex_unlock(&m->wake_mu);
}

static void step(struct daemon_mqtt *m)
{
    if (!m->mosq) {
        if (clock_mono_ms() >= m->next_try_ms)
            client_open(m);
        else
            wait_until(m, m->next_try_ms);
        return;
    }
    int rc = mosquitto_loop(m->mosq, MQTT_LOOP_MS, 1);
    if (rc != MOSQ_ERR_SUCCESS && !m->lost) {
        note_error(m, m->connected ? "connection lost: %s" : "cannot connect: %s",
                   mosq_error(rc));
        m->lost = true;
    }
    if (!m->connected && !m->lost &&
        clock_mono_ms() - m->connect_started_ms > MQTT_CONNECT_TIMEOUT_MS) {
        note_error(m, "no answer from the broker in %d s", MQTT_CONNECT_TIMEOUT_MS / 1000);
        m->lost = true;
    }
    if (m->connected && !m->lost) {
        pump(m);
        send_stats(m);
    } else {
        flights_settle(m);
    }
    if (m->lost)
        client_drop(m);
}

/* A clean DISCONNECT suppresses the Last Will, so the offline status is published first. */
static void say_goodbye(struct daemon_mqtt *m)
{
    if (!m->mosq || !m->connected)
        return;
    m->status_acked = false;
    int rc = mosquitto_publish(m->mosq, &m->status_mid, m->status_topic, 7, "offline", 1, true);
    uint64_t until = clock_mono_ms() + MQTT_STOP_GRACE_MS;
    while (rc == MOSQ_ERR_SUCCESS && !m->status_acked && clock_mono_ms() < until)
        rc = mosquitto_loop(m->mosq, MQTT_LOOP_MS, 1);
    flights_settle(m);
    mosquitto_disconnect(m->mosq);
    mosquitto_loop(m->mosq, MQTT_LOOP_MS, 1);
}

static void *mqtt_main(void *arg)
{
    struct daemon_mqtt *m = arg;
    while (!atomic_load(&m->stop))
        step(m);
    say_goodbye(m);
    if (m->mosq)
        mosquitto_destroy(m->mosq);
    m->mosq = NULL;
    return NULL;
}

/* ---- start and stop ---- */

static char *dup_or_null(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    *oom |= d == NULL;
    return d;
}

static void wipe_free(char *s)
{
    if (!s)
        return;
    for (volatile char *p = s; *p; p++)
        *p = 0;
    free(s);
}

static void mqtt_free(struct daemon_mqtt *m)
{
    for (int i = 0; i < m->n_fl; i++)
        free(m->fl[i].payload);
    free(m->host);
    free(m->prefix);
    free(m->client_id);
    free(m->username);
    wipe_free(m->password);
    free(m->ca);
    free(m->cert);
    free(m->key);
    pthread_cond_destroy(&m->wake);
    pthread_mutex_destroy(&m->wake_mu);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static int default_client_id(char *out, size_t cap)
{
    char host[64] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "unknown");
    int n = snprintf(out, cap, "actiond-%s", host);
    return n > 0 && (size_t)n < cap ? 0 : ERR_RANGE;
}

static int copy_opts(struct daemon_mqtt *m, const struct daemon_mqtt_opts *o)
{
    char id[MQTT_CLIENT_ID_MAX];
    if (!o->client_id && default_client_id(id, sizeof id))
        return ERR_RANGE;
    bool oom = false;
    m->host = dup_or_null(o->host, &oom);
    m->prefix = dup_or_null(o->prefix, &oom);
    m->client_id = dup_or_null(o->client_id ? o->client_id : id, &oom);
    m->username = dup_or_null(o->username, &oom);
    m->password = dup_or_null(o->password, &oom);
    m->ca = dup_or_null(o->ca, &oom);
    m->cert = dup_or_null(o->cert, &oom);
    m->key = dup_or_null(o->key, &oom);
    m->port = o->port;
    m->qos = o->qos;
    m->keepalive_s = o->keepalive_s;
    m->stats_interval_ms = o->stats_interval_ms;
    m->backoff_min_ms = o->backoff_min_ms > 0 ? o->backoff_min_ms : MQTT_BACKOFF_MIN_MS;
    m->backoff_max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : MQTT_BACKOFF_MAX_MS;
    m->backoff_ms = m->backoff_min_ms;
    return oom ? ERR_NOMEM : 0;
}

static int opts_check(const struct daemon_mqtt_opts *o, struct err_msg *em)
{
    if (!o->host || !o->host[0] || !o->prefix || !o->prefix[0])
        return err_set(em, ERR_INVAL, "mqtt: a broker host and a topic prefix are needed");
    if (o->port < 1 || o->port > 65535 || o->qos < 0 || o->qos > 2 || o->keepalive_s < 5 ||
        o->stats_interval_ms < 0)
        return err_set(em, ERR_INVAL, "mqtt: port, qos, keepalive or stats interval out of range");
    if (!o->username && o->password)
        return err_set(em, ERR_INVAL, "mqtt: a password needs a user name");
    if (!o->ca && (o->cert || o->key))
        return err_set(em, ERR_INVAL, "mqtt: a client certificate needs a CA (TLS)");
    return 0;
}

static void mqtt_init_sync(struct daemon_mqtt *m)
{
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->wake_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->wake, &ca);
    pthread_condattr_destroy(&ca);
}

int daemon_mqtt_start(const struct daemon_mqtt_opts *o, struct store *store,
                      struct daemon_state *state, struct daemon_mqtt **out, struct err_msg *em)
{
    *out = NULL;
    int rc = opts_check(o, em);
    if (rc)
        return rc;
    struct daemon_mqtt *m = calloc(1, sizeof *m);
    if (!m)
        return err_set(em, ERR_NOMEM, "mqtt: out of memory");
    mqtt_init_sync(m);
    m->store = store;
    m->state = state;
    rc = copy_opts(m, o);
    if (rc == 0 && (daemon_mqtt_topic(m->prefix, NULL, "status", m->status_topic,
                                      sizeof m->status_topic) ||
                    daemon_mqtt_topic(m->prefix, NULL, "stats", m->stats_topic,
                                      sizeof m->stats_topic)))
        rc = ERR_RANGE;
    if (rc) {
        mqtt_free(m);
        return err_set(em, rc, "mqtt: %s", rc == ERR_NOMEM ? "out of memory" : "names too long");
    }
    /* Not thread-safe, and harmless to repeat: called here, before the thread exists. */
    mosquitto_lib_init();
    if (pthread_create(&m->thread, NULL, mqtt_main, m) != 0) {
        mqtt_free(m);
        return err_set(em, ERR_NOMEM, "mqtt: cannot start a thread");
    }
    m->started = true;
    *out = m;
    return 0;
}

void daemon_mqtt_stop(struct daemon_mqtt *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->wake_mu);
    atomic_store(&m->stop, 1);
    pthread_cond_broadcast(&m->wake);
    pthread_mutex_unlock(&m->wake_mu);
    if (m->started) {
        pthread_join(m->thread, NULL);
        mosquitto_lib_cleanup();
    }
    m->started = false;
}

void daemon_mqtt_free(struct daemon_mqtt *m)
{
    if (!m)
        return;
    daemon_mqtt_stop(m);
    mqtt_free(m);
}
#endif
