/* http.c — libmicrohttpd glue: binding, limits, the bearer token, turning MHD callbacks into
 * plain requests for http_api.c, and the Server-Sent Events stream of live events.
 *
 * Threads: one per connection (MHD_USE_THREAD_PER_CONNECTION, with poll). An SSE client is a
 * long wait for the next event; a thread can simply block on the bus with a timeout that is the
 * heartbeat, where an epoll loop would need suspend/resume and a timer for every client. The
 * connection limit bounds the threads, and on a board serving a handful of dashboards the cost
 * (a mostly untouched 1 MiB stack each) is small. */
#include "daemon/http.h"
#include "daemon/http_internal.h"
#include "common/err.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

struct http_server {
    struct MHD_Daemon *mhd;
    struct http_ctx ctx;
    int port;
    int heartbeat_ms;
    pthread_mutex_t token_lock;
    char *token; /* NULL: no authentication */
};

/* Per request, from the URI logger until MHD reports it complete. */
struct request_state {
    size_t query_len;
    bool nul_in_path; /* "%00": MHD's decoded path would end there, naming another route */
    bool headers_seen; /* the handler's first call (headers only) has been made */
};

/* One live-event client. */
struct sse_client {
    struct daemon_bus_sub *sub;
    int heartbeat_ms;
    char buf[DAEMON_BUS_MSG_MAX + 64];
    size_t len, off;
};

void http_opts_from_config(const struct config *cfg, struct http_opts *out)
{
    *out = (struct http_opts){
        .family = cfg->http.listen.family,
        .port = cfg->http.listen.port,
        .token = cfg->http.token,
        .max_connections = cfg->http.max_connections,
        .per_ip_limit = cfg->http.per_ip_limit,
        .timeout_ms = cfg->http.timeout_ms,
    };
    snprintf(out->host, sizeof out->host, "%s", cfg->http.listen.host);
}

/* ---- authentication ---- */

/* Compares in time that depends only on the length of the expected token, so response times
 * tell an attacker nothing about how much of a guess was right. */
static bool token_equal(const char *given, const char *want)
{
    size_t glen = strlen(given), wlen = strlen(want);
    volatile unsigned char diff = (unsigned char)(glen != wlen);
    for (size_t i = 0; i < wlen; i++)
        diff |= (unsigned char)want[i] ^ (unsigned char)(i < glen ? given[i] : 0);
    return diff == 0;
}

/* 0 when the request may go on, else the reason for the 401. The live-event stream also
 * takes ?token=, because a browser's EventSource cannot send headers. */
static const char *auth_check(struct http_server *s, struct MHD_Connection *c, bool live)
{
    const char *hdr = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *given = hdr && strncasecmp(hdr, "Bearer ", 7) == 0 ? hdr + 7 : NULL;
    if (!given && live)
        given = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
    pthread_mutex_lock(&s->token_lock);
    const char *why = NULL;
    if (s->token) {
        if (!given)
            why = "unauthorized: send 'Authorization: Bearer <token>'";
        else if (!token_equal(given, s->token))
            why = "unauthorized: wrong token";
    }
    pthread_mutex_unlock(&s->token_lock);
    return why;
}

int http_server_set_token(struct http_server *s, const char *token)
{
    char *copy = NULL;
    if (token && token[0] && !(copy = strdup(token)))
        return ERR_NOMEM;
    pthread_mutex_lock(&s->token_lock);
    char *old = s->token;
    s->token = copy;
    pthread_mutex_unlock(&s->token_lock);
    if (old) {
        /* A secret should not linger in freed memory. */
        volatile char *p = old;
        while (*p)
            *p++ = 0;
        free(old);
    }
    return 0;
}

/* ---- responses ---- */

static void add_common_headers(struct MHD_Response *r, const char *content_type)
{
    if (content_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
}

static enum MHD_Result send_response(struct MHD_Connection *c, struct http_response *rs,
                                     const char *www_auth)
{
    struct MHD_Response *r;
    if (rs->body)
        r = MHD_create_response_from_buffer(rs->len, rs->body, MHD_RESPMEM_MUST_FREE);
    else
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(rs->body);
        return MHD_NO;
    }
    rs->body = NULL; /* MHD owns it now */
    add_common_headers(r, rs->content_type);
    if (rs->allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, rs->allow);
    if (www_auth)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, www_auth);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)rs->status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, int status, const char *msg,
                                  const char *www_auth)
{
    struct http_response rs = {0};
    http_api_error(&rs, status, msg);
    return send_response(c, &rs, www_auth);
}

/* ---- Server-Sent Events ---- */

static void sse_stage(struct sse_client *k, const char *text, size_t len)
{
    if (len > sizeof k->buf)
        len = sizeof k->buf;
    memcpy(k->buf, text, len);
    k->len = len;
    k->off = 0;
}

/* MHD asks for more bytes; this thread may block, up to a heartbeat, waiting for an event. */
static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    struct sse_client *k = cls;
    if (k->off == k->len) {
        struct daemon_bus_msg *m;
        int rc = daemon_bus_wait(k->sub, k->heartbeat_ms, &m);
        if (rc == ERR_EOF)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (rc < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR; /* dropped: it fell too far behind */
        if (rc == 0) {
            sse_stage(k, ": heartbeat\n\n", 13);
        } else {
            size_t len;
            const char *text = daemon_bus_msg_text(m, &len);
            sse_stage(k, text, len);
            daemon_bus_msg_release(m);
        }
    }
    size_t n = k->len - k->off < max ? k->len - k->off : max;
    memcpy(out, k->buf + k->off, n);
    k->off += n;
    return (ssize_t)n;
}

static void sse_free(void *cls)
{
    struct sse_client *k = cls;
    daemon_bus_unsubscribe(k->sub);
    free(k);
}

static enum MHD_Result sse_start(struct http_server *s, struct MHD_Connection *c)
{
    struct daemon_bus_stats bs;
    struct daemon_bus *bus = daemon_state_bus(s->ctx.state);
    daemon_bus_get_stats(bus, &bs);
    if ((int)bs.subscribers >= s->ctx.sse_max)
        return send_error(c, 503, "too many live-event clients", NULL);
    struct sse_client *k = calloc(1, sizeof *k);
    if (!k)
        return send_error(c, 500, "out of memory", NULL);
    k->heartbeat_ms = s->heartbeat_ms;
    int rc = daemon_bus_subscribe(bus, &k->sub);
    if (rc) {
        free(k);
        return send_error(c, 503, rc == ERR_EOF ? "shutting down" : "too many live-event clients",
                          NULL);
    }
    char hello[64];
    int n = snprintf(hello, sizeof hello, "retry: %d\n: connected\n\n", HTTP_SSE_RETRY_MS);
    sse_stage(k, hello, (size_t)n);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, sse_read, k,
                                                               sse_free);
    if (!r) {
        sse_free(k);
        return MHD_NO;
    }
    add_common_headers(r, "text/event-stream");
    MHD_add_response_header(r, "X-Accel-Buffering", "no"); /* proxies must not hold events */
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- requests ---- */

static enum MHD_Result collect_param(void *cls, enum MHD_ValueKind kind, const char *key,
                                     size_t key_len, const char *value, size_t value_len)
{
    (void)kind, (void)key_len;
    struct http_request *rq = cls;
    if (rq->n_params == HTTP_MAX_PARAMS) {
        rq->too_many_params = true;
        return MHD_NO;
    }
    rq->params[rq->n_params++] = (struct http_param){key, value, value_len};
    return MHD_YES;
}

static void drop_param(struct http_request *rq, const char *key)
{
    size_t keep = 0;
    for (size_t i = 0; i < rq->n_params; i++)
        if (strcmp(rq->params[i].key, key) != 0)
            rq->params[keep++] = rq->params[i];
    rq->n_params = keep;
}

/* True when the path part of a raw URI holds an encoded NUL. */
static bool path_has_nul(const char *uri, const char *query)
{
    size_t n = query ? (size_t)(query - uri) : strlen(uri);
    for (size_t i = 0; i + 2 < n; i++)
        if (uri[i] == '%' && uri[i + 1] == '0' && uri[i + 2] == '0')
            return true;
    return false;
}

/* Called by MHD with the raw URI before anything else: the query length and an encoded NUL in
 * the path are seen here, before MHD's own decoding can hide them. */
static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls, (void)c;
    struct request_state *r = calloc(1, sizeof *r);
    const char *q = uri ? strchr(uri, '?') : NULL;
    if (r) {
        r->query_len = q ? strlen(q + 1) : 0;
        r->nul_in_path = uri && path_has_nul(uri, q);
    }
    return r;
}

static void request_done(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode why)
{
    (void)cls, (void)c, (void)why;
    free(*req_cls);
    *req_cls = NULL;
}

/* libmicrohttpd calls the handler once when the headers are in, then again (after any body).
 * A response queued at that first call is an "early" one: MHD 0.9.75 stops reading the
 * connection and answers "Connection: close", so every keep-alive client paid a new TCP
 * connection and a new connection thread per request (under bench/load.sh most of the
 * server's CPU went to accept, clone and malloc). GET and HEAD, which carry no body, are
 * answered at the second call and keep their connection. Other methods are refused at once:
 * closing is right for a body this read-only API will not read. */
static bool answer_later(const char *method)
{
    return strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    (void)version, (void)upload_data, (void)upload_data_size;
    struct http_server *s = cls;
    struct request_state *st = *req_cls;
    if (!st)
        return MHD_NO; /* the URI logger could not allocate: drop the connection */
    if (!st->headers_seen && answer_later(method)) {
        st->headers_seen = true;
        return MHD_YES;
    }
    if (st->query_len > HTTP_MAX_QUERY_LEN)
        return send_error(c, 414, "query string too long", NULL);
    if (st->nul_in_path)
        return send_error(c, 400, "the path holds a NUL byte (%00)", NULL);
    bool live = strcmp(url, HTTP_LIVE_PATH) == 0;
    /* The page holds no data: it asks for the token and then reads the API with it. */
    if (strcmp(url, "/healthz") != 0 && strcmp(url, "/") != 0) {
        const char *why = auth_check(s, c, live);
        if (why)
            return send_error(c, 401, why, "Bearer realm=\"actiond\"");
    }
    struct http_request rq = {.method = method, .path = url, .query_len = st->query_len};
    MHD_get_connection_values_n(c, MHD_GET_ARGUMENT_KIND, collect_param, &rq);
    if (live)
        drop_param(&rq, "token"); /* authentication's, not the route's */
    struct http_response rs;
    http_api_handle(&s->ctx, &rq, &rs);
    if (rs.sse)
        return sse_start(s, c);
    return send_response(c, &rs, NULL);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    /* Client misbehaviour shows up here too: debug, so hostile clients cannot flood the log. */
    log_debug("http: %s", line);
}

/* ---- lifecycle ---- */

static int make_addr(const struct http_opts *o, struct sockaddr_storage *sa, struct err_msg *em)
{
    memset(sa, 0, sizeof *sa);
    if (o->port < 0 || o->port > 65535)
        return err_set(em, ERR_INVAL, "http: port %d", o->port);
    if (o->family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)sa;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)o->port);
        if (inet_pton(AF_INET6, o->host, &a->sin6_addr) == 1)
            return 0;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)sa;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)o->port);
        if (inet_pton(AF_INET, o->host, &a->sin_addr) == 1)
            return 0;
    }
    return err_set(em, ERR_INVAL, "http: '%s' is not a numeric address", o->host);
}

static int opts_check(const struct http_opts *o, struct err_msg *em)
{
    if (o->max_connections < 1 || o->max_connections > 4096 || o->per_ip_limit < 0 ||
        o->per_ip_limit > 4096)
        return err_set(em, ERR_INVAL, "http: connection limits out of range");
    if (o->timeout_ms < 1000 || o->timeout_ms > 3600 * 1000)
        return err_set(em, ERR_INVAL, "http: timeout %lld ms (1 s to 1 h)",
                       (long long)o->timeout_ms);
    return 0;
}

static void server_free(struct http_server *s)
{
    http_page_cache_free(s->ctx.cache);
    http_server_set_token(s, NULL);
    pthread_mutex_destroy(&s->token_lock);
    free(s);
}

static int server_init(struct http_server *s, const struct http_opts *o,
                       struct daemon_state *state, struct store *store)
{
    pthread_mutex_init(&s->token_lock, NULL);
    s->ctx = (struct http_ctx){state, store,
                               o->max_connections / 2 > 0 ? o->max_connections / 2 : 1,
                               o->snapshots, NULL};
    if (s->ctx.sse_max > DAEMON_BUS_MAX_SUBS)
        s->ctx.sse_max = DAEMON_BUS_MAX_SUBS;
    /* The heartbeat must beat the idle timeout, or quiet streams would be cut. */
    int hb = o->heartbeat_ms > 0 ? o->heartbeat_ms : HTTP_SSE_HEARTBEAT_MS;
    s->heartbeat_ms = hb < o->timeout_ms / 2 ? hb : (int)(o->timeout_ms / 2);
    int rc = http_page_cache_new(&s->ctx.cache);
    return rc ? rc : http_server_set_token(s, o->token);
}

int http_server_start(const struct http_opts *o, struct daemon_state *state, struct store *store,
                      struct http_server **out, struct err_msg *em)
{
    struct sockaddr_storage sa;
    int rc = opts_check(o, em);
    if (rc || (rc = make_addr(o, &sa, em)))
        return rc;
    struct http_server *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(em, ERR_NOMEM, "http: out of memory");
    if (server_init(s, o, state, store)) {
        server_free(s);
        return err_set(em, ERR_NOMEM, "http: out of memory");
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG | (o->family == AF_INET6 ? MHD_USE_IPv6 : 0);
    s->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)o->per_ip_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)((o->timeout_ms + 999) / 1000),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)HTTP_THREAD_STACK, MHD_OPTION_URI_LOG_CALLBACK,
        uri_logger, s, MHD_OPTION_NOTIFY_COMPLETED, request_done, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
        MHD_OPTION_STRICT_FOR_CLIENT, 1, MHD_OPTION_END);
    if (!s->mhd) {
        server_free(s);
        return err_set(em, ERR_IO, "http: cannot listen on %s%s%s:%d (in use, or not an address "
                       "of this machine?)", o->family == AF_INET6 ? "[" : "", o->host,
                       o->family == AF_INET6 ? "]" : "", o->port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : o->port;
    *out = s;
    return 0;
}

int http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_stop(struct http_server *s)
{
    if (!s)
        return;
    /* Ends every SSE stream first (their threads wait on the bus) and lets each write what it
     * still holds, such as the close of an event that shutdown itself closed; MHD_stop_daemon
     * would cut them mid-write. A client that does not read is cut after the grace period. */
    struct daemon_bus *bus = daemon_state_bus(s->ctx.state);
    daemon_bus_close(bus);
    MHD_socket ls = MHD_quiesce_daemon(s->mhd);
    if (daemon_bus_wait_idle(bus, HTTP_STOP_GRACE_MS) != 0)
        log_warn("http: live-event clients still writing after %d ms; closing them",
                 HTTP_STOP_GRACE_MS);
    MHD_stop_daemon(s->mhd);
    if (ls != MHD_INVALID_SOCKET)
        close(ls); /* quiesce handed the listening socket to us */
    server_free(s);
}
