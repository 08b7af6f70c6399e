/* mqtt_common.c — the MQTT parts that need no libmosquitto: options from the config, topic
 * names, and the stand-ins a build without libmosquitto (USE_MQTT=no) links instead. */
#include "daemon/mqtt.h"
#include "common/err.h"
#include "config/config.h"

#include <stdio.h>

void daemon_mqtt_opts_from_config(const struct config *cfg, struct daemon_mqtt_opts *out)
{
    *out = (struct daemon_mqtt_opts){
        .host = cfg->mqtt.host,
        .port = cfg->mqtt.port,
        .prefix = cfg->mqtt.prefix,
        .client_id = cfg->mqtt.client_id,
        .username = cfg->mqtt.username,
        .password = cfg->mqtt.password,
        .ca = cfg->mqtt.tls.ca,
        .cert = cfg->mqtt.tls.cert,
        .key = cfg->mqtt.tls.key,
        .qos = cfg->mqtt.qos,
        .keepalive_s = (int)(cfg->mqtt.keepalive_ms / 1000),
        .stats_interval_ms = cfg->mqtt.stats_interval_ms,
        .backoff_max_ms = (int)cfg->mqtt.backoff_max_ms,
    };
}

int daemon_mqtt_topic(const char *prefix, const char *stream, const char *leaf, char *out,
                      size_t cap)
{
    int n = stream ? snprintf(out, cap, "%s/%s/%s", prefix, stream, leaf)
                   : snprintf(out, cap, "%s/%s", prefix, leaf);
    return n < 0 || (size_t)n >= cap ? ERR_RANGE : 0;
}

#ifndef HAVE_MOSQUITTO
int daemon_mqtt_start(const struct daemon_mqtt_opts *o, struct store *store,
                      struct daemon_state *state, struct daemon_mqtt **out, struct err_msg *em)
{
    (void)o, (void)store, (void)state;
    *out = NULL;
    return err_set(em, ERR_UNSUPPORTED,
                   "mqtt.enabled is set, but this actiond was built without libmosquitto "
                   "(USE_MQTT=no)");
}

void daemon_mqtt_stop(struct daemon_mqtt *m)
{
    (void)m;
}

void daemon_mqtt_free(struct daemon_mqtt *m)
{
    (void)m;
}

size_t daemon_mqtt_acked_take(struct daemon_mqtt *m, int64_t *ids, size_t cap)
{
    (void)m, (void)ids, (void)cap;
    return 0;
}

void daemon_mqtt_get_stats(struct daemon_mqtt *m, struct daemon_mqtt_stats *out)
{
    (void)m;
    *out = (struct daemon_mqtt_stats){0};
}
#endif
