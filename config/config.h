/* config.h — the public door of config/: the daemon's YAML configuration read into a plain
 * struct, validated whole against one schema table, every problem reported as FILE:LINE:COL. */
#ifndef ACTIOND_CONFIG_CONFIG_H
#define ACTIOND_CONFIG_CONFIG_H

#include "common/log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct err_msg;

#define CONFIG_DEFAULT_PATH "/etc/actiond/actiond.yaml"

/* A real file is a few KiB; 1 MiB leaves room for 64 commented streams and caps what a
 * hostile file can make libyaml allocate. */
#define CONFIG_MAX_FILE_SIZE (1024 * 1024)
/* The schema is 4 levels deep; 16 leaves room for mistakes and stops a "[[[[..." bomb. */
#define CONFIG_MAX_DEPTH 16
/* One inference engine on a small board cannot serve more cameras than this. */
#define CONFIG_MAX_STREAMS 64
/* Stream ids appear in URLs, metric labels and MQTT topics: short and plain. */
#define CONFIG_STREAM_ID_MAX 32
#define CONFIG_MAX_ACTIONS 64
#define CONFIG_ACTION_NAME_MAX 64
/* Tokens and passwords are short; a larger "secret" file is the wrong file. */
#define CONFIG_SECRET_MAX 4096
#define CONFIG_URL_MAX 2048
#define CONFIG_PATH_MAX 4096
/* Past this many errors the rest are usually echoes of the first ones. */
#define CONFIG_MAX_ERRORS 20
/* Errors plus warnings kept for display; counts go on past it. */
#define CONFIG_MAX_DIAGS 32
#define CONFIG_DIAG_LEN 384
/* "[" + IPv6 text + "]", the longest listen host. */
#define CONFIG_HOST_MAX 48

enum config_rtsp_transport { CONFIG_RTSP_TCP, CONFIG_RTSP_UDP, CONFIG_RTSP_TRANSPORT_COUNT };

struct config_strlist {
    char **items;
    size_t count;
};

/* A numeric listen address: host is an IPv4 or IPv6 literal (without brackets). */
struct config_addr {
    char host[CONFIG_HOST_MAX];
    int family; /* AF_INET or AF_INET6 */
    int port;
};

struct config_stream {
    char *id;
    char *url; /* may hold camera credentials: never logged by config/ */
    bool enabled;
    int fps; /* 0: the fps the model was trained at */
    int64_t window_ms;
    int64_t stride_ms;
    struct {
        double enter, exit; /* hysteresis: exit <= enter */
    } thresholds;
    struct config_strlist actions; /* empty: report every action */
    char *hwdec;                   /* NULL: software decoding */
    enum config_rtsp_transport rtsp_transport;
    struct {
        int64_t connect_ms, stall_ms;
    } timeouts;
};

struct config {
    char *path;      /* the file it was read from */
    char *model;     /* every path is absolute once loaded */
    char *state_dir; /* the key, else $STATE_DIRECTORY, else /var/lib/actiond */
    enum log_level log_level;
    int inference_workers;
    int threads; /* BLAS threads per worker; 0: cores / workers */
    int queue_depth;
    struct {
        struct config_addr listen;
        char *token; /* resolved secret; NULL: no authentication */
        int max_connections;
        int per_ip_limit; /* 0: no per-address limit */
        int64_t timeout_ms;
    } http;
    struct {
        char *path; /* the SQLite file */
        int retention_days;
        int retention_max_events; /* 0: no count limit */
        uint64_t max_size;        /* bytes; 0: no cap */
    } store;
    struct {
        bool enabled;
        char *host;
        int port;
        char *prefix;
        char *username;
        char *password; /* resolved secret */
        struct {
            char *ca, *cert, *key; /* ca set: TLS on */
        } tls;
        int qos;
        int64_t keepalive_ms;
        char *client_id;          /* NULL: "actiond-" and the host name */
        int64_t stats_interval_ms; /* 0: no stats messages */
        int outbox_max;           /* undelivered messages kept at most */
        int64_t backoff_max_ms;   /* reconnect delay doubles from 1 s up to this */
    } mqtt;
    struct config_stream *streams;
    size_t n_streams;
};

enum config_diag_kind { CONFIG_DIAG_ERROR, CONFIG_DIAG_WARNING };

struct config_diag {
    enum config_diag_kind kind;
    char text[CONFIG_DIAG_LEN]; /* "FILE:LINE:COL: key 'a.b': what is wrong", no newline */
};

/* Everything one load found, in file order. Counts go on past what item[] keeps. */
struct config_diags {
    size_t errors;
    size_t warnings;
    size_t count;
    struct config_diag item[CONFIG_MAX_DIAGS];
};

/* Reads, validates and resolves PATH (secrets read, relative paths made absolute against the
 * file's directory). 0 and *out set, or a negative code with *out untouched: ERR_NOTFOUND,
 * ERR_IO, ERR_CONFIG (invalid), ERR_NOMEM. em gets the first error and how many followed;
 * warnings are logged. */
int config_load(const char *path, struct config **out, struct err_msg *em);
/* The same, with every error and warning (up to CONFIG_MAX_DIAGS) in diags. */
int config_load_diags(const char *path, struct config **out, struct config_diags *diags);
/* Secrets are wiped before their memory is freed. NULL does nothing. */
void config_free(struct config *cfg);

/* 0 when every difference between the two is in a reloadable key (log_level, http.token,
 * store retention, streams); ERR_UNSUPPORTED naming the first key that needs a restart. */
int config_diff_reloadable(const struct config *old_cfg, const struct config *new_cfg,
                           struct err_msg *em);
/* True when two streams agree on every key: a reload leaves such a stream running. */
bool config_stream_equal(const struct config_stream *a, const struct config_stream *b);
/* The stream with this id, or NULL. */
const struct config_stream *config_stream_find(const struct config *cfg, const char *id);

/* The schema as a Markdown table (key, type, default, bounds, reloadable, meaning), the one
 * source of docs/config.md. Returns 0 or ERR_IO. */
int config_schema_write_markdown(FILE *out);

/* The value grammars of the file, for command-line flags too. Each returns 0 or ERR_INVAL
 * (malformed) / ERR_RANGE (does not fit), and leaves *out untouched on failure. */
/* true/false, yes/no, on/off, in any case. */
int config_parse_bool(const char *s, bool *out);
/* A decimal integer, optionally signed. */
int config_parse_int(const char *s, long long *out);
/* A finite decimal number: "0.5", "-3", "1e-3"; no inf, nan or hex. */
int config_parse_double(const char *s, double *out);
/* A number with a unit — ms, s, m, h, d — or a bare number of seconds; "1.5s" is 1500. */
int config_parse_duration_ms(const char *s, int64_t *ms);
/* A number with an optional unit: B, kB/KB/K, MB/M, GB/G, TB/T (powers of 1000) or
 * KiB, MiB, GiB, TiB (powers of 1024); "64MiB", "1.5 GB", "4096". */
int config_parse_size(const char *s, uint64_t *bytes);

#endif
