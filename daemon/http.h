/* http.h — the HTTP API server (libmicrohttpd): /healthz, /api/v1/..., live events over SSE and
 * /metrics, reading daemon state and the store; docs/http-api.md describes every route. */
#ifndef ACTIOND_DAEMON_HTTP_H
#define ACTIOND_DAEMON_HTTP_H

#include "config/config.h"
#include "daemon/snapshot.h"
#include "daemon/state.h"
#include "daemon/store.h"

#include <stdint.h>

struct err_msg;

/* A real query is under 300 bytes (six parameters and a cursor); 2 KiB is generous, and a
 * longer one is refused with 414 before any parsing. */
#define HTTP_MAX_QUERY_LEN 2048
/* Parameters in one query: six are defined, a few repeats or typos still get a clear 400. */
#define HTTP_MAX_PARAMS 8
/* Memory libmicrohttpd gives a connection for its request line and headers: a request that
 * does not fit is refused by MHD itself (414 or 431). */
#define HTTP_CONN_MEMORY (32 * 1024)
/* Stack of each connection thread: jansson and SQLite queries need little, sanitizers more. */
#define HTTP_THREAD_STACK (1024 * 1024)
/* An SSE comment this often keeps proxies and the idle timeout from closing a quiet stream. */
#define HTTP_SSE_HEARTBEAT_MS 15000
/* At stop, live-event clients get this long to receive their last records (well inside the
 * 5 s a SIGTERM may take). */
#define HTTP_STOP_GRACE_MS 2000
/* Server-Sent Events clients retry after this long (the "retry:" field). */
#define HTTP_SSE_RETRY_MS 3000

struct http_opts {
    char host[CONFIG_HOST_MAX]; /* an IPv4 or IPv6 literal */
    int family;                 /* AF_INET or AF_INET6 */
    int port;                   /* 0: any free port (tests); see http_server_port */
    const char *token;          /* copied; NULL or "": no authentication */
    int max_connections;
    int per_ip_limit;           /* 0: none */
    int64_t timeout_ms;         /* idle connections close after this */
    int heartbeat_ms;           /* 0: HTTP_SSE_HEARTBEAT_MS (capped to half the timeout) */
    struct daemon_snapshots *snapshots; /* NULL: snapshot.jpg answers 404 */
};

void http_opts_from_config(const struct config *cfg, struct http_opts *out);

struct http_server;

/* Listens and serves until stopped. state and store must outlive the server. ERR_IO when the
 * address cannot be bound (named in em), ERR_INVAL, ERR_NOMEM. */
int http_server_start(const struct http_opts *o, struct daemon_state *state, struct store *store,
                      struct http_server **out, struct err_msg *em);
/* The port bound (the one chosen, when opts.port was 0). */
int http_server_port(const struct http_server *s);
/* Replaces the token (a reload); NULL or "" turns authentication off. ERR_NOMEM. */
int http_server_set_token(struct http_server *s, const char *token);
/* Closes the live-event bus (every SSE stream ends), stops accepting, waits for the
 * connection threads and frees. NULL does nothing. */
void http_server_stop(struct http_server *s);

#endif
