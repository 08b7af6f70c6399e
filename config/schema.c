/* schema.c — the one table of configuration keys (path, type, bounds, default, reloadable,
 * help), the lookups the parser needs, and the Markdown that docs/config.md is made from. */
#include "config/internal.h"
#include "common/err.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

static const char *const log_level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const rtsp_names[] = {"tcp", "udp", NULL};

_Static_assert(LOG_LVL_COUNT == 4, "log_level_names follows enum log_level");
_Static_assert(CONFIG_RTSP_TRANSPORT_COUNT == 2, "rtsp_names follows the enum");
_Static_assert(sizeof(enum log_level) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum config_rtsp_transport) == sizeof(int), "enums are stored as int");

/* Ids name streams in URLs, metric labels and MQTT topics, so nothing there needs quoting. */
static const char *check_stream_id(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
            return "may hold only a-z, 0-9, '_' and '-'";
    return NULL;
}

static const char *check_hostname(const char *s)
{
    if (*s == '-' || *s == '.')
        return "must be a host name or an IP address";
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '-' || *s == ':'))
            return "must be a host name or an IP address";
    return NULL;
}

/* A prefix is the start of every topic we publish: wildcards would make it a filter. */
static const char *check_topic(const char *s)
{
    if (s[0] == '$')
        return "must not start with '$' (reserved by brokers)";
    if (strpbrk(s, "+#"))
        return "must not contain the MQTT wildcards '+' or '#'";
    if (s[strlen(s) - 1] == '/')
        return "must not end with '/'";
    return NULL;
}

/* Printable ASCII without spaces: brokers differ on the rest. */
static const char *check_client_id(const char *s)
{
    for (; *s; s++)
        if (*s <= ' ' || *s > '~' || *s == '+' || *s == '#' || *s == '/')
            return "may hold printable ASCII but no space, '/', '+' or '#'";
    return NULL;
}

static const char *check_action(const char *s)
{
    if (s[0] == ' ' || s[strlen(s) - 1] == ' ')
        return "must not start or end with a space";
    return NULL;
}

/* FFmpeg decoder and hwaccel names ("h264_v4l2m2m", "cuda"). */
static const char *check_decoder(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return "must be an FFmpeg decoder name (a-z, 0-9, '_')";
    return NULL;
}

#define TOP(f) offsetof(struct config, f)
#define STR(f) offsetof(struct config_stream, f)
#define R CONFIG_KEY_RELOADABLE
#define REQ CONFIG_KEY_REQUIRED
#define DAY_MS 86400000.0
#define TIB 1099511627776.0

const struct config_key config_keys[] = {
    {"model", CONFIG_T_PATH, REQ, 1, CONFIG_PATH_MAX - 1, NULL, "(required)", NULL, NULL,
     TOP(model), "The model file the daemon runs (`actiond info MODEL` shows its classes and fps)."},
    {"state_dir", CONFIG_T_PATH, 0, 1, CONFIG_PATH_MAX - 1, NULL,
     "$STATE_DIRECTORY, else /var/lib/actiond", NULL, NULL, TOP(state_dir),
     "Directory for the event store; an explicit value wins over systemd's $STATE_DIRECTORY."},
    {"log_level", CONFIG_T_ENUM, R, 0, 0, "info", NULL, log_level_names, NULL, TOP(log_level),
     "Least severe message logged."},
    {"inference_workers", CONFIG_T_INT, 0, 1, 16, "1", NULL, NULL, NULL, TOP(inference_workers),
     "Threads running the network; each takes one clip at a time from the stream queues."},
    {"threads", CONFIG_T_INT, 0, 0, 64, "0", NULL, NULL, NULL, TOP(threads),
     "BLAS threads per inference worker; 0 divides the CPU cores among the workers."},
    {"queue_depth", CONFIG_T_INT, 0, 1, 64, "4", NULL, NULL, NULL, TOP(queue_depth),
     "Clips waiting per stream; when full the oldest is dropped, so latency stays bounded."},

    {"http", CONFIG_T_SECTION, 0, 0, 0, NULL, NULL, NULL, NULL, 0, "The HTTP API."},
    {"http.listen", CONFIG_T_ADDR, 0, 0, 0, "127.0.0.1:8080", NULL, NULL, NULL, TOP(http.listen),
     "Address and port to listen on: an IP literal, `[::1]:8080` for IPv6."},
    {"http.token", CONFIG_T_SECRET, R, 1, CONFIG_SECRET_MAX, NULL, "none: no authentication", NULL,
     NULL, TOP(http.token),
     "Bearer token required on every path but /healthz."},
    {"http.max_connections", CONFIG_T_INT, 0, 1, 4096, "64", NULL, NULL, NULL,
     TOP(http.max_connections), "Open connections at most, live-event streams included."},
    {"http.per_ip_limit", CONFIG_T_INT, 0, 0, 4096, "16", NULL, NULL, NULL, TOP(http.per_ip_limit),
     "Open connections at most from one client address; 0 for no limit."},
    {"http.timeout", CONFIG_T_DURATION, 0, 1000, 3600000, "30s", NULL, NULL, NULL,
     TOP(http.timeout_ms), "An idle connection is closed after this long."},

    {"store", CONFIG_T_SECTION, 0, 0, 0, NULL, NULL, NULL, NULL, 0,
     "The SQLite store of events and window results."},
    {"store.path", CONFIG_T_PATH, CONFIG_KEY_IN_STATE_DIR, 1, CONFIG_PATH_MAX - 1, NULL,
     "actiond.db in state_dir", NULL, NULL, TOP(store.path),
     "The database file; a relative path is taken inside state_dir."},
    {"store.retention_days", CONFIG_T_INT, R, 1, 3650, "30", NULL, NULL, NULL,
     TOP(store.retention_days), "Events and window results older than this are deleted."},
    {"store.retention_max_events", CONFIG_T_INT, R, 0, 100000000, "1000000", NULL, NULL, NULL,
     TOP(store.retention_max_events), "Events kept at most, oldest deleted first; 0 for no limit."},
    {"store.max_size", CONFIG_T_SIZE, R, 0, TIB, "0", NULL, NULL, NULL, TOP(store.max_size),
     "Cap on the database size, for small SD cards: past it the oldest window results go "
     "first; 0 for no cap."},

    {"mqtt", CONFIG_T_SECTION, 0, 0, 0, NULL, NULL, NULL, NULL, 0,
     "Optional publishing of events to an MQTT broker."},
    {"mqtt.enabled", CONFIG_T_BOOL, 0, 0, 0, "false", NULL, NULL, NULL, TOP(mqtt.enabled),
     "Publish each event as it opens and closes."},
    {"mqtt.host", CONFIG_T_STRING, 0, 1, 253, "localhost", NULL, NULL, check_hostname,
     TOP(mqtt.host), "Broker host name or IP address."},
    {"mqtt.port", CONFIG_T_INT, 0, 1, 65535, "1883", NULL, NULL, NULL, TOP(mqtt.port),
     "Broker port (8883 is the usual one for TLS)."},
    {"mqtt.prefix", CONFIG_T_STRING, 0, 1, 128, "actiond", NULL, NULL, check_topic,
     TOP(mqtt.prefix), "Topic prefix: events go to PREFIX/STREAM_ID/events."},
    {"mqtt.username", CONFIG_T_STRING, 0, 1, 256, NULL, "none", NULL, NULL, TOP(mqtt.username),
     "User name for the broker."},
    {"mqtt.password", CONFIG_T_SECRET, 0, 1, CONFIG_SECRET_MAX, NULL, "none", NULL, NULL,
     TOP(mqtt.password), "Password for the broker; needs mqtt.username."},
    {"mqtt.tls", CONFIG_T_SECTION, 0, 0, 0, NULL, NULL, NULL, NULL, 0,
     "TLS to the broker: on when tls.ca is set."},
    {"mqtt.tls.ca", CONFIG_T_PATH, 0, 1, CONFIG_PATH_MAX - 1, NULL, "none: no TLS", NULL, NULL,
     TOP(mqtt.tls.ca), "CA certificate file (PEM) the broker's certificate must chain to."},
    {"mqtt.tls.cert", CONFIG_T_PATH, 0, 1, CONFIG_PATH_MAX - 1, NULL, "none", NULL, NULL,
     TOP(mqtt.tls.cert), "Client certificate (PEM), for brokers that want one; needs tls.key."},
    {"mqtt.tls.key", CONFIG_T_PATH, 0, 1, CONFIG_PATH_MAX - 1, NULL, "none", NULL, NULL,
     TOP(mqtt.tls.key), "Private key (PEM) of tls.cert."},
    {"mqtt.qos", CONFIG_T_INT, 0, 0, 2, "1", NULL, NULL, NULL, TOP(mqtt.qos),
     "MQTT quality of service of published events."},
    {"mqtt.keepalive", CONFIG_T_DURATION, 0, 5000, 3600000, "60s", NULL, NULL, NULL,
     TOP(mqtt.keepalive_ms), "Keepalive interval agreed with the broker."},
    {"mqtt.client_id", CONFIG_T_STRING, 0, 1, 64, NULL, "actiond-HOSTNAME", NULL, check_client_id,
     TOP(mqtt.client_id),
     "Client id at the broker; every board needs its own, or they disconnect each other."},
    {"mqtt.stats_interval", CONFIG_T_DURATION, 0, 0, 3600000, "60s", NULL, NULL, NULL,
     TOP(mqtt.stats_interval_ms),
     "How often stream statistics go to PREFIX/stats; 0 sends none."},
    {"mqtt.backoff_max", CONFIG_T_DURATION, 0, 1000, 600000, "30s", NULL, NULL, NULL,
     TOP(mqtt.backoff_max_ms),
     "Reconnect delay after a failure doubles from 1 s up to this."},
    {"mqtt.outbox_max", CONFIG_T_INT, 0, 10, 10000000, "100000", NULL, NULL, NULL,
     TOP(mqtt.outbox_max),
     "Messages kept in the store while the broker is away; past it the oldest are dropped."},

    {"streams", CONFIG_T_STREAMS, R, 0, CONFIG_MAX_STREAMS, NULL, "[] (none)", NULL, NULL, 0,
     "The cameras: a list of mappings, one per stream. Added, removed and changed streams "
     "apply on reload without touching the others."},
    {"streams[].id", CONFIG_T_STRING, R | REQ, 1, CONFIG_STREAM_ID_MAX, NULL, "(required)", NULL,
     check_stream_id, STR(id), "Unique name of the stream, used in the API, metrics and topics."},
    {"streams[].url", CONFIG_T_STRING, R | REQ, 1, CONFIG_URL_MAX, NULL, "(required)", NULL,
     NULL, STR(url),
     "What to open: rtsp://, http://, a file, or a V4L2 device such as /dev/video0."},
    {"streams[].enabled", CONFIG_T_BOOL, R, 0, 0, "true", NULL, NULL, NULL, STR(enabled),
     "A disabled stream stays configured and visible over HTTP, but is not opened."},
    {"streams[].fps", CONFIG_T_INT, R, 1, 60, NULL, "the model's fps", NULL, NULL, STR(fps),
     "Frames per second sampled for the model; best left at the rate the model was trained at."},
    {"streams[].window", CONFIG_T_DURATION, R, 500, 60000, "2s", NULL, NULL, NULL,
     STR(window_ms), "Length of video in one clip the model scores."},
    {"streams[].stride", CONFIG_T_DURATION, R, 100, 60000, "1s", NULL, NULL, NULL,
     STR(stride_ms),
     "Time between the starts of consecutive clips; longer than window leaves gaps."},
    {"streams[].thresholds", CONFIG_T_SECTION, R, 0, 0, NULL, NULL, NULL, NULL, 0,
     "Hysteresis on the smoothed score of each action."},
    {"streams[].thresholds.enter", CONFIG_T_DOUBLE, R, 0, 1, "0.6", NULL, NULL, NULL,
     STR(thresholds.enter), "An event opens when the score rises above this."},
    {"streams[].thresholds.exit", CONFIG_T_DOUBLE, R, 0, 1, "0.4", NULL, NULL, NULL,
     STR(thresholds.exit), "The event closes when the score falls below this; at most enter."},
    {"streams[].actions", CONFIG_T_STRLIST, R, 0, CONFIG_MAX_ACTIONS, NULL, "[] (all)", NULL,
     check_action, STR(actions),
     "Names of the actions to report (the model's class names); empty reports all."},
    {"streams[].hwdec", CONFIG_T_STRING, R, 1, 32, NULL, "none: software decoding", NULL,
     check_decoder, STR(hwdec),
     "FFmpeg hardware decoder, e.g. h264_v4l2m2m on a Raspberry Pi 4 (docs/boards.md)."},
    {"streams[].rtsp_transport", CONFIG_T_ENUM, R, 0, 0, "tcp", NULL, rtsp_names, NULL,
     STR(rtsp_transport), "RTSP transport; tcp survives lossy Wi-Fi better."},
    {"streams[].timeouts", CONFIG_T_SECTION, R, 0, 0, NULL, NULL, NULL, NULL, 0,
     "When to give up on a source and reconnect (with backoff)."},
    {"streams[].timeouts.connect", CONFIG_T_DURATION, R, 1000, 300000, "10s", NULL, NULL, NULL,
     STR(timeouts.connect_ms), "Opening the source may take at most this long."},
    {"streams[].timeouts.stall", CONFIG_T_DURATION, R, 1000, 300000, "10s", NULL, NULL, NULL,
     STR(timeouts.stall_ms), "No frame for this long counts as a stall and reconnects."},
};

const size_t config_n_keys = sizeof config_keys / sizeof config_keys[0];

_Static_assert(sizeof config_keys / sizeof config_keys[0] <= CONFIG_MAX_KEYS,
               "raise CONFIG_MAX_KEYS");

#define STREAM_PREFIX "streams[]."

static const char *const secret_suffix[] = {"", "_file", "_env"};

/* Does path equal parent + "." + name + suffix (or name + suffix at the top)? */
static bool path_is(const char *path, const char *parent, const char *name, const char *suffix)
{
    size_t pl = strlen(parent);
    if (pl) {
        if (strncmp(path, parent, pl) != 0 || path[pl] != '.')
            return false;
        path += pl + 1;
    }
    size_t nl = strlen(path), sl = strlen(suffix);
    return strlen(name) == nl + sl && strncmp(name, path, nl) == 0 &&
           strcmp(name + nl, suffix) == 0;
}

const struct config_key *config_key_find(const char *parent, const char *name,
                                         enum config_secret_form *form)
{
    for (size_t i = 0; i < config_n_keys; i++) {
        const struct config_key *k = &config_keys[i];
        if (!config_key_is_child(k, parent))
            continue;
        int forms = k->type == CONFIG_T_SECRET ? 3 : 1;
        for (int f = 0; f < forms; f++) {
            if (path_is(k->path, parent, name, secret_suffix[f])) {
                if (form)
                    *form = (enum config_secret_form)f;
                return k;
            }
        }
    }
    return NULL;
}

const struct config_key *config_key_by_path(const char *path)
{
    for (size_t i = 0; i < config_n_keys; i++)
        if (strcmp(config_keys[i].path, path) == 0)
            return &config_keys[i];
    return NULL;
}

size_t config_key_index(const struct config_key *k)
{
    return (size_t)(k - config_keys);
}

bool config_key_in_stream(const struct config_key *k)
{
    return strncmp(k->path, STREAM_PREFIX, strlen(STREAM_PREFIX)) == 0;
}

bool config_key_is_child(const struct config_key *k, const char *parent)
{
    size_t pl = strlen(parent);
    const char *rest = k->path;
    if (pl) {
        if (strncmp(k->path, parent, pl) != 0 || k->path[pl] != '.')
            return false;
        rest += pl + 1;
    }
    return strchr(rest, '.') == NULL;
}

/* Levenshtein distance, capped: names are short and only small distances matter. */
static size_t edit_distance(const char *a, const char *b)
{
    enum { MAXN = 40 };
    size_t la = strlen(a), lb = strlen(b);
    if (la >= MAXN || lb >= MAXN)
        return MAXN;
    size_t row[MAXN + 1];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *config_key_suggest(const char *parent, const char *name)
{
    const char *best = NULL;
    size_t best_d = 3; /* more than two edits is a different word */
    for (size_t i = 0; i < config_n_keys; i++) {
        const struct config_key *k = &config_keys[i];
        if (!config_key_is_child(k, parent))
            continue;
        const char *leaf = strrchr(k->path, '.');
        leaf = leaf ? leaf + 1 : k->path;
        size_t d = edit_distance(name, leaf);
        if (d < best_d) {
            best_d = d;
            best = leaf;
        }
    }
    return best;
}

const char *config_type_name(enum config_type t)
{
    static const char *const names[CONFIG_T_COUNT] = {
        [CONFIG_T_SECTION] = "section",   [CONFIG_T_STREAMS] = "list of sections",
        [CONFIG_T_BOOL] = "bool",         [CONFIG_T_INT] = "integer",
        [CONFIG_T_DOUBLE] = "number",     [CONFIG_T_STRING] = "string",
        [CONFIG_T_PATH] = "path",         [CONFIG_T_ENUM] = "enum",
        [CONFIG_T_DURATION] = "duration", [CONFIG_T_SIZE] = "size",
        [CONFIG_T_STRLIST] = "list of strings", [CONFIG_T_SECRET] = "secret",
        [CONFIG_T_ADDR] = "address",
    };
    return (unsigned)t < CONFIG_T_COUNT ? names[t] : "?";
}

static int md_row(FILE *out, const char *key, const char *type, const char *def,
                  const char *bounds, const char *reload, const char *help)
{
    int n = fprintf(out, "| `%s` | %s | %s | %s | %s | %s |\n", key, type, def, bounds, reload,
                    help);
    return n < 0 ? ERR_IO : 0;
}

/* A plain section holds no value of its own: its keys each say whether they reload. */
static const char *reload_doc(const struct config_key *k)
{
    if (k->type == CONFIG_T_SECTION && !config_key_in_stream(k))
        return "—";
    return (k->flags & CONFIG_KEY_RELOADABLE) ? "yes" : "no";
}

/* A secret is one row of the table but three keys in the file. */
static int md_secret_rows(FILE *out, const struct config_key *k, const char *bounds)
{
    char key[96], help[256];
    const char *r = (k->flags & CONFIG_KEY_RELOADABLE) ? "yes" : "no";
    snprintf(help, sizeof help, "%s Given inline here, or (better) by one of the next two keys.",
             k->help);
    int rc = md_row(out, k->path, "secret", k->def_doc, bounds, r, help);
    snprintf(key, sizeof key, "%s_file", k->path);
    snprintf(help, sizeof help, "File holding `%s` (one line; a trailing newline is dropped).",
             k->path);
    rc = rc ? rc : md_row(out, key, "path", "none", "file of at most 4096 bytes", r, help);
    snprintf(key, sizeof key, "%s_env", k->path);
    snprintf(help, sizeof help, "Environment variable holding `%s`.", k->path);
    return rc ? rc : md_row(out, key, "string", "none", "a variable name", r, help);
}

int config_schema_write_markdown(FILE *out)
{
    int rc = 0;
    if (fprintf(out, "| key | type | default | bounds | reloadable | meaning |\n"
                     "|---|---|---|---|---|---|\n") < 0)
        return ERR_IO;
    for (size_t i = 0; i < config_n_keys && rc == 0; i++) {
        const struct config_key *k = &config_keys[i];
        char bounds[128], def[96];
        config_bounds_format(k, bounds, sizeof bounds);
        if (k->def)
            snprintf(def, sizeof def, "`%s`", k->def);
        else
            snprintf(def, sizeof def, "%s", k->def_doc ? k->def_doc : "");
        if (k->type == CONFIG_T_SECRET)
            rc = md_secret_rows(out, k, bounds);
        else
            rc = md_row(out, k->path, config_type_name(k->type), def, bounds, reload_doc(k),
                        k->help);
    }
    return rc;
}
