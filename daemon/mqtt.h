/* mqtt.h — the MQTT publisher (libmosquitto): one thread that sends the store's outbox to a
 * broker at QoS 1, keeps a retained online/offline status with a Last Will, sends stream
 * statistics, and reconnects with backoff. docs/mqtt.md describes the topics and payloads. */
#ifndef ACTIOND_DAEMON_MQTT_H
#define ACTIOND_DAEMON_MQTT_H

#include "daemon/state.h"
#include "daemon/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct err_msg;

/* Messages on the wire without an acknowledgement: enough to fill a link's round trip with
 * events, few enough that a copy of each can be kept to send again after a reconnect. */
#define MQTT_INFLIGHT_MAX 16
/* Reconnect backoff: 1 s doubling to 30 s (mqtt.backoff_max). Cameras back off to 60 s, but
 * a broker is one cheap TCP connect away and events wait for it in the outbox. */
#define MQTT_BACKOFF_MIN_MS 1000
#define MQTT_BACKOFF_MAX_MS 30000
/* A CONNACK later than this counts as a failed attempt. */
#define MQTT_CONNECT_TIMEOUT_MS 10000
/* How long mosquitto_loop may block: the longest a stop request or new outbox row waits. */
#define MQTT_LOOP_MS 100
/* On stop, the offline status gets this long to be acknowledged. */
#define MQTT_STOP_GRACE_MS 1000
/* Longest topic: prefix (128) + "/" + stream id (32) + "/events". */
#define MQTT_TOPIC_MAX 192
#define MQTT_CLIENT_ID_MAX 96

struct daemon_mqtt_opts {
    const char *host;
    int port;
    const char *prefix;
    const char *client_id; /* NULL: "actiond-" and the host name */
    const char *username, *password;
    const char *ca, *cert, *key; /* ca set: TLS */
    int qos;
    int keepalive_s;
    int64_t stats_interval_ms; /* 0: none */
    int backoff_min_ms, backoff_max_ms; /* 0: the defaults above */
};

void daemon_mqtt_opts_from_config(const struct config *cfg, struct daemon_mqtt_opts *out);

struct daemon_mqtt_stats {
    bool connected;
    uint64_t published;  /* outbox messages the broker acknowledged */
    uint64_t connects;   /* successful connections */
    uint64_t failures;   /* failed attempts and lost connections */
    char last_error[128];
};

struct daemon_mqtt;

/* Starts the publisher thread; it connects in the background. store and state must outlive
 * it. ERR_UNSUPPORTED when built without libmosquitto, ERR_INVAL, ERR_NOMEM. */
int daemon_mqtt_start(const struct daemon_mqtt_opts *o, struct store *store,
                      struct daemon_state *state, struct daemon_mqtt **out, struct err_msg *em);
/* Publishes "offline", disconnects and joins the thread; acknowledgements that came in up to
 * then can still be taken. Rows not acknowledged stay in the outbox for the next start.
 * NULL does nothing. */
void daemon_mqtt_stop(struct daemon_mqtt *m);
/* Stops if still running, then frees. NULL does nothing. */
void daemon_mqtt_free(struct daemon_mqtt *m);

/* Takes up to cap outbox ids the broker acknowledged, for the store's writer thread to delete
 * (store_outbox_delete). Returns how many. */
size_t daemon_mqtt_acked_take(struct daemon_mqtt *m, int64_t *ids, size_t cap);

void daemon_mqtt_get_stats(struct daemon_mqtt *m, struct daemon_mqtt_stats *out);

/* Topics, for the daemon and its tests: PREFIX/STREAM/events, PREFIX/status, PREFIX/stats.
 * ERR_RANGE when it does not fit. */
int daemon_mqtt_topic(const char *prefix, const char *stream, const char *leaf, char *out,
                      size_t cap);

#endif
