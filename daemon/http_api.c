/* http_api.c — the routes of the HTTP API: health, streams, paged events and window results, and
 * the Prometheus text of /metrics; every body built with jansson (or a memstream for /metrics),
 * the unfiltered first page of a list kept between store commits (http_cache.c). */
#include "daemon/http_internal.h"
#include "daemon/json.h"
#include "daemon/page.h"
#include "common/err.h"
#include "common/log.h"
#include "nn/nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JSON_TYPE "application/json"

void http_api_error(struct http_response *rs, int status, const char *msg)
{
    free(rs->body);
    rs->body = NULL;
    rs->len = 0;
    rs->status = status;
    rs->content_type = JSON_TYPE;
    json_t *o = json_pack("{s:s}", "error", msg);
    if (!o) /* not UTF-8: our own messages always are, so this is a bug, not the client's */
        o = json_pack("{s:s}", "error", "internal error");
    rs->body = o ? json_dumps(o, DAEMON_JSON_FLAGS) : NULL;
    rs->len = rs->body ? strlen(rs->body) : 0;
    json_decref(o);
}

/* Takes o (steals the reference) as a 200 body. */
static void respond_json(struct http_response *rs, json_t *o)
{
    if (!o) {
        http_api_error(rs, 500, "out of memory");
        return;
    }
    rs->status = 200;
    rs->content_type = JSON_TYPE;
    rs->body = json_dumps(o, DAEMON_JSON_FLAGS);
    json_decref(o);
    if (!rs->body) {
        http_api_error(rs, 500, "out of memory");
        return;
    }
    rs->len = strlen(rs->body);
}

/* v when present (and made: an error text that is not UTF-8 is not), else null. */
static json_t *or_null(json_t *v, bool present)
{
    if (present && v)
        return v;
    json_decref(v);
    return json_null();
}

/* Milliseconds, as people read latency; null until a window has been measured. */
static json_t *window_latency_json(const struct daemon_window_latency *l)
{
    if (!l->count)
        return json_null();
    return json_pack("{s:I, s:f, s:f, s:f}", "windows", (json_int_t)l->count, "p50",
                     l->p50_s * 1e3, "p99", l->p99_s * 1e3, "max", l->max_s * 1e3);
}

static json_t *stream_json(const struct daemon_stream_status *s)
{
    return json_pack("{s:s, s:s, s:I, s:o, s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "id",
                     s->id,
                     "state", daemon_stream_state_name(s->state), "state_since_ms",
                     (json_int_t)s->state_since_ms, "last_error",
                     or_null(json_string(s->last_error), s->last_error[0] != '\0'), "frames",
                     (json_int_t)s->frames, "fps", s->fps, "clips", (json_int_t)s->clips,
                     "dropped", (json_int_t)s->dropped, "reconnects_last_hour",
                     (json_int_t)s->reconnects_last_hour, "reconnects",
                     (json_int_t)s->reconnects, "events", (json_int_t)s->events,
                     "last_frame_ms",
                     or_null(json_integer(s->last_frame_ms), s->last_frame_ms != 0),
                     "window_latency_ms", window_latency_json(&s->window_latency));
}

/* Copies the stream statuses out of the state (the lock is not held while building JSON). */
static size_t streams_copy(const struct http_ctx *c, struct daemon_stream_status **out)
{
    *out = calloc(EVENTS_MAX_STREAMS, sizeof **out);
    if (!*out)
        return 0;
    size_t n = daemon_state_snapshot(c->state, *out, EVENTS_MAX_STREAMS);
    return n > EVENTS_MAX_STREAMS ? EVENTS_MAX_STREAMS : n;
}

static void route_streams(const struct http_ctx *c, struct http_response *rs)
{
    struct daemon_stream_status *st;
    size_t n = streams_copy(c, &st);
    json_t *arr = st ? json_array() : NULL;
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, stream_json(&st[i]));
    free(st);
    respond_json(rs, arr ? json_pack("{s:o}", "streams", arr) : NULL);
}

static void route_stream(const struct http_ctx *c, const char *id, struct http_response *rs)
{
    struct daemon_stream_status s;
    if (!http_stream_id_ok(id) || daemon_state_stream_get(c->state, id, &s) != 0) {
        http_api_error(rs, 404, "no such stream");
        return;
    }
    respond_json(rs, stream_json(&s));
}

static void route_page(struct http_response *rs)
{
    rs->body = malloc(daemon_page_html_len);
    if (!rs->body) {
        http_api_error(rs, 500, "out of memory");
        return;
    }
    memcpy(rs->body, daemon_page_html, daemon_page_html_len);
    rs->len = daemon_page_html_len;
    rs->status = 200;
    rs->content_type = "text/html; charset=utf-8";
}

/* ?label=1 (or true/0/false) is the one parameter; anything else is a 400. */
static int snapshot_params(const struct http_request *rq, bool *label)
{
    *label = false;
    if (rq->too_many_params || rq->n_params > 1)
        return ERR_INVAL;
    if (rq->n_params == 0)
        return 0;
    const struct http_param *p = &rq->params[0];
    if (strcmp(p->key, "label") != 0 || !p->value)
        return ERR_INVAL;
    if (strcmp(p->value, "1") == 0 || strcmp(p->value, "true") == 0)
        *label = true;
    else if (strcmp(p->value, "0") != 0 && strcmp(p->value, "false") != 0)
        return ERR_INVAL;
    return 0;
}

static void route_snapshot(const struct http_ctx *c, const struct http_request *rq,
                           const char *id, struct http_response *rs)
{
    struct daemon_stream_status st;
    bool label;
    if (!http_stream_id_ok(id) || daemon_state_stream_get(c->state, id, &st) != 0 ||
        !c->snapshots) {
        http_api_error(rs, 404, "no such stream");
        return;
    }
    if (snapshot_params(rq, &label)) {
        http_api_error(rs, 400, "snapshot.jpg takes only label=1 or label=0");
        return;
    }
    unsigned char *jpeg = NULL;
    size_t len = 0;
    struct err_msg em;
    int rc = daemon_snapshots_jpeg(c->snapshots, id, label, &jpeg, &len, &em);
    if (rc == ERR_NOTFOUND) {
        http_api_error(rs, 503, "no frame from this stream yet");
        return;
    }
    if (rc) {
        log_warn("http: %s", err_text(&em, rc));
        http_api_error(rs, 500, "the snapshot could not be made");
        return;
    }
    rs->status = 200;
    rs->content_type = "image/jpeg";
    rs->body = (char *)jpeg;
    rs->len = len;
}

/* "/api/v1/streams/" is gone already: "ID" or "ID/snapshot.jpg". */
static void route_stream_path(const struct http_ctx *c, const struct http_request *rq,
                              const char *rest, struct http_response *rs)
{
    static const char leaf[] = "/snapshot.jpg";
    const char *slash = strchr(rest, '/');
    if (!slash) {
        if (rq->n_params || rq->too_many_params)
            http_api_error(rs, 400, "this path takes no query parameters");
        else
            route_stream(c, rest, rs);
        return;
    }
    char id[DAEMON_STREAM_ID_SIZE];
    size_t n = (size_t)(slash - rest);
    if (strcmp(slash, leaf) != 0 || n == 0 || n >= sizeof id) {
        http_api_error(rs, 404, "no such path");
        return;
    }
    memcpy(id, rest, n);
    id[n] = '\0';
    route_snapshot(c, rq, id, rs);
}

static json_t *model_json(const struct http_ctx *c)
{
    struct daemon_model_info m;
    if (!daemon_state_get_model(c->state, &m))
        return json_null();
    return json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:f, s:s}", "path", m.path, "arch", m.arch,
                     "classes", m.n_classes, "width", m.width, "height", m.height, "segments",
                     m.segments, "fps", (double)m.fps, "motion", m.motion);
}

static void route_health(const struct http_ctx *c, struct http_response *rs)
{
    struct store_stats ss;
    store_get_stats(c->store, &ss);
    struct daemon_stream_status *st;
    size_t n = streams_copy(c, &st);
    json_t *streams = st ? json_array() : NULL;
    for (size_t i = 0; streams && i < n; i++)
        json_array_append_new(streams, json_pack("{s:s, s:s}", "id", st[i].id, "state",
                                                 daemon_stream_state_name(st[i].state)));
    free(st);
    char started[DAEMON_ISO_SIZE];
    daemon_json_iso(daemon_state_started_ms(c->state), started);
    json_t *store = json_pack("{s:b, s:s?, s:I, s:I}", "healthy", ss.healthy, "last_error",
                              ss.last_error[0] ? ss.last_error : NULL, "write_errors",
                              (json_int_t)ss.write_errors, "size_bytes",
                              (json_int_t)ss.size_bytes);
    json_t *o = streams && store
                    ? json_pack("{s:s, s:s, s:s, s:f, s:s, s:o, s:o, s:o}", "status",
                                ss.healthy ? "ok" : "degraded", "version", ACTIOND_VERSION,
                                "openblas_core", nn_blas_core(), "uptime_s",
                                daemon_state_uptime_s(c->state), "started", started, "model",
                                model_json(c), "store", store, "streams", streams)
                    : NULL;
    if (!o) {
        json_decref(streams);
        json_decref(store);
    }
    respond_json(rs, o);
}

/* ---- paged lists ---- */

struct page {
    json_t *items;
    int64_t last_id;
    int n;
};

static int page_event(void *ctx, const struct events_event *ev)
{
    struct page *p = ctx;
    p->last_id = ev->id;
    p->n++;
    return json_array_append_new(p->items, daemon_json_event(ev)) ? 1 : 0;
}

static int page_detection(void *ctx, const struct store_detection *d)
{
    struct page *p = ctx;
    p->last_id = d->id;
    p->n++;
    return json_array_append_new(p->items, daemon_json_detection(d)) ? 1 : 0;
}

static void store_error(struct http_response *rs, int rc)
{
    if (rc == ERR_BUSY)
        http_api_error(rs, 503, "the store is busy; try again");
    else
        http_api_error(rs, 500, "the store could not be read");
}

/* One page of a list, queried and built afresh. */
static void list_page(const struct http_ctx *c, const struct http_list_query *q,
                      enum http_list_kind kind, struct http_response *rs)
{
    struct err_msg em;
    struct page p = {.items = json_array()};
    if (!p.items) {
        http_api_error(rs, 500, "out of memory");
        return;
    }
    int rc = kind == HTTP_LIST_EVENTS
                 ? store_events_query(c->store, &q->q, page_event, &p, &em)
                 : store_detections_query(c->store, &q->q, page_detection, &p, &em);
    if (rc < 0 || (size_t)p.n != json_array_size(p.items)) {
        json_decref(p.items);
        store_error(rs, rc < 0 ? rc : ERR_NOMEM);
        return;
    }
    char cursor[HTTP_CURSOR_SIZE];
    /* A full page may have more after it; the client learns it reached the end from a page
     * shorter than its limit (possibly an empty one). */
    bool more = p.n == q->q.limit;
    if (more)
        http_cursor_encode(p.last_id, q->filter_sum, cursor);
    json_t *o = json_pack("{s:o, s:i}", "items", p.items, "limit", q->q.limit);
    if (o && json_object_set_new(o, "next_cursor", more ? json_string(cursor) : json_null())) {
        json_decref(o);
        o = NULL;
    }
    respond_json(rs, o);
}

/* The first page with no parameters is the one dashboards poll: it comes from the cache,
 * made again only after the store has committed (so a window result shows on the next
 * request after its commit). Other queries are rarer and too varied to keep. */
static void list_page_cached(const struct http_ctx *c, const struct http_list_query *q,
                             enum http_list_kind kind, struct http_response *rs)
{
    uint64_t gen = store_generation(c->store); /* before the query, as the cache requires */
    int rc = http_page_cache_get(c->cache, kind, gen, &rs->body, &rs->len);
    if (rc == 0) {
        rs->status = 200;
        rs->content_type = JSON_TYPE;
        return;
    }
    if (rc != ERR_NOTFOUND) {
        http_api_error(rs, 500, "out of memory");
        return;
    }
    list_page(c, q, kind, rs);
    bool ok = rs->status == 200 && rs->body;
    http_page_cache_put(c->cache, kind, gen, ok ? rs->body : NULL, rs->len);
}

static void route_list(const struct http_ctx *c, const struct http_request *rq,
                       enum http_list_kind kind, struct http_response *rs)
{
    struct http_list_query lq;
    struct err_msg em;
    int rc = http_list_query_parse(rq, kind, &lq, &em);
    if (rc) {
        http_api_error(rs, 400, em.text);
        return;
    }
    if (c->cache && rq->n_params == 0 && !rq->too_many_params)
        list_page_cached(c, &lq, kind, rs);
    else
        list_page(c, &lq, kind, rs);
}

/* ---- /metrics ---- */

/* Label values are stream ids (a-z, 0-9, '_', '-'), but escape as the format asks anyway. */
static void label(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f);
        if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void metric_head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

#define PER_STREAM(f, st, n, name, type, help, fmt, expr)                                         \
    do {                                                                                          \
        metric_head(f, name, type, help);                                                         \
        for (size_t i_ = 0; i_ < (n); i_++) {                                                    \
            fprintf(f, "%s{stream=\"", name);                                                     \
            label(f, (st)[i_].id);                                                                \
            fprintf(f, "\"} " fmt "\n", expr);                                                    \
        }                                                                                         \
    } while (0)

static void metrics_streams(FILE *f, const struct daemon_stream_status *st, size_t n)
{
    PER_STREAM(f, st, n, "actiond_stream_fps", "gauge", "Decoded frames per second.", "%.3f",
               st[i_].fps);
    PER_STREAM(f, st, n, "actiond_stream_frames_total", "counter", "Frames decoded.", "%llu",
               (unsigned long long)st[i_].frames);
    PER_STREAM(f, st, n, "actiond_stream_clips_total", "counter", "Clips queued for inference.",
               "%llu", (unsigned long long)st[i_].clips);
    PER_STREAM(f, st, n, "actiond_stream_dropped_clips_total", "counter",
               "Clips dropped because inference fell behind.", "%llu",
               (unsigned long long)st[i_].dropped);
    PER_STREAM(f, st, n, "actiond_stream_reconnects_total", "counter", "Reconnects.", "%llu",
               (unsigned long long)st[i_].reconnects);
    PER_STREAM(f, st, n, "actiond_stream_reconnects_last_hour", "gauge",
               "Reconnects in the last hour.", "%u", st[i_].reconnects_last_hour);
    PER_STREAM(f, st, n, "actiond_stream_last_frame_timestamp_seconds", "gauge",
               "Wall-clock time of the last decoded frame (0: none yet).", "%.3f",
               (double)st[i_].last_frame_ms / 1000.0);
    PER_STREAM(f, st, n, "actiond_events_total", "counter", "Events opened.", "%llu",
               (unsigned long long)st[i_].events);
    metric_head(f, "actiond_stream_state", "gauge", "1 for the state the stream is in.");
    for (size_t i = 0; i < n; i++)
        for (int s = 0; s < DAEMON_STREAM_STATE_COUNT; s++) {
            fputs("actiond_stream_state{stream=\"", f);
            label(f, st[i].id);
            fprintf(f, "\",state=\"%s\"} %d\n", daemon_stream_state_name(s),
                    (int)st[i].state == s);
        }
}

/* A summary per stream: quantiles over the recent windows, sum and count since the start. */
static void metrics_window_latency(FILE *f, const struct daemon_stream_status *st, size_t n)
{
    const char *name = "actiond_window_latency_seconds";
    metric_head(f, name, "summary",
                "Time from a window's last frame arriving to its result being recorded.");
    for (size_t i = 0; i < n; i++) {
        const struct daemon_window_latency *l = &st[i].window_latency;
        static const double qs[] = {0.5, 0.99};
        for (int q = 0; q < 2; q++) {
            fprintf(f, "%s{stream=\"", name);
            label(f, st[i].id);
            fprintf(f, "\",quantile=\"%g\"} %.6f\n", qs[q], q == 0 ? l->p50_s : l->p99_s);
        }
        fprintf(f, "%s_sum{stream=\"", name);
        label(f, st[i].id);
        fprintf(f, "\"} %.6f\n%s_count{stream=\"", l->sum_s, name);
        label(f, st[i].id);
        fprintf(f, "\"} %llu\n", (unsigned long long)l->count);
    }
}

static void metrics_latency(FILE *f, const struct daemon_latency *l)
{
    const char *name = "actiond_inference_latency_seconds";
    metric_head(f, name, "histogram", "Time from a clip's last frame to its scores.");
    uint64_t cum = 0;
    for (int b = 0; b < DAEMON_LATENCY_BUCKETS; b++) {
        cum += l->counts[b];
        fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, daemon_latency_bounds[b],
                (unsigned long long)cum);
    }
    fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)l->count);
    fprintf(f, "%s_sum %.6f\n%s_count %llu\n", name, l->sum_s, name, (unsigned long long)l->count);
}

/* Resident set size from /proc/self/statm (pages), 0 when unreadable. */
static unsigned long long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long long size = 0, rss = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%llu %llu", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * (unsigned long long)sysconf(_SC_PAGESIZE);
}

static void metrics_process(FILE *f, const struct http_ctx *c)
{
    struct daemon_bus_stats bs;
    daemon_bus_get_stats(daemon_state_bus(c->state), &bs);
    struct store_stats ss;
    store_get_stats(c->store, &ss);
    metric_head(f, "actiond_sse_clients", "gauge", "Live-event clients connected.");
    fprintf(f, "actiond_sse_clients %u\n", bs.subscribers);
    metric_head(f, "actiond_sse_dropped_clients_total", "counter",
                "Live-event clients cut off for not reading.");
    fprintf(f, "actiond_sse_dropped_clients_total %llu\n", (unsigned long long)bs.dropped_subs);
    metric_head(f, "actiond_store_write_errors_total", "counter", "Failed store writes.");
    fprintf(f, "actiond_store_write_errors_total %llu\n", (unsigned long long)ss.write_errors);
    metric_head(f, "actiond_store_healthy", "gauge", "1 when the last store write succeeded.");
    fprintf(f, "actiond_store_healthy %d\n", ss.healthy);
    metric_head(f, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    fprintf(f, "process_resident_memory_bytes %llu\n", rss_bytes());
    metric_head(f, "process_start_time_seconds", "gauge", "Start time since the epoch.");
    fprintf(f, "process_start_time_seconds %.3f\n",
            (double)daemon_state_started_ms(c->state) / 1000.0);
    metric_head(f, "actiond_uptime_seconds", "gauge", "Seconds since start.");
    fprintf(f, "actiond_uptime_seconds %.3f\n", daemon_state_uptime_s(c->state));
    metric_head(f, "actiond_build_info", "gauge", "Version and OpenBLAS kernel.");
    fprintf(f, "actiond_build_info{version=\"%s\",openblas_core=\"", ACTIOND_VERSION);
    label(f, nn_blas_core());
    fputs("\"} 1\n", f);
}

static void route_metrics(const struct http_ctx *c, struct http_response *rs)
{
    struct daemon_stream_status *st;
    size_t n = streams_copy(c, &st);
    struct daemon_latency lat;
    daemon_state_get_latency(c->state, &lat);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = st ? open_memstream(&buf, &len) : NULL;
    if (!f) {
        free(st);
        http_api_error(rs, 500, "out of memory");
        return;
    }
    metrics_streams(f, st, n);
    metrics_window_latency(f, st, n);
    metrics_latency(f, &lat);
    metrics_process(f, c);
    free(st);
    if (fclose(f) != 0 || !buf) {
        free(buf);
        http_api_error(rs, 500, "out of memory");
        return;
    }
    rs->status = 200;
    rs->content_type = "text/plain; version=0.0.4; charset=utf-8";
    rs->body = buf;
    rs->len = len;
}

/* ---- routing ---- */

static bool method_ok(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
}

void http_api_handle(const struct http_ctx *c, const struct http_request *rq,
                     struct http_response *rs)
{
    static const char streams_prefix[] = "/api/v1/streams/";
    const char *path = rq->path;
    memset(rs, 0, sizeof *rs);
    if (!method_ok(rq->method)) {
        rs->allow = "GET, HEAD";
        http_api_error(rs, 405, "method not allowed: the API is read-only (GET, HEAD)");
        return;
    }
    bool list = strcmp(path, "/api/v1/events") == 0 || strcmp(path, "/api/v1/detections") == 0;
    bool own_params = strncmp(path, streams_prefix, sizeof streams_prefix - 1) == 0;
    if (!list && !own_params && (rq->n_params || rq->too_many_params)) {
        http_api_error(rs, 400, "this path takes no query parameters");
        return;
    }
    if (strcmp(path, "/healthz") == 0)
        respond_json(rs, json_pack("{s:s}", "status", "ok"));
    else if (strcmp(path, "/") == 0)
        route_page(rs);
    else if (strcmp(path, "/api/v1/health") == 0)
        route_health(c, rs);
    else if (strcmp(path, "/api/v1/streams") == 0)
        route_streams(c, rs);
    else if (strncmp(path, streams_prefix, sizeof streams_prefix - 1) == 0)
        route_stream_path(c, rq, path + sizeof streams_prefix - 1, rs);
    else if (strcmp(path, "/api/v1/events") == 0)
        route_list(c, rq, HTTP_LIST_EVENTS, rs);
    else if (strcmp(path, "/api/v1/detections") == 0)
        route_list(c, rq, HTTP_LIST_DETECTIONS, rs);
    else if (strcmp(path, "/api/v1/events/live") == 0)
        rs->sse = true;
    else if (strcmp(path, "/metrics") == 0)
        route_metrics(c, rs);
    else
        http_api_error(rs, 404, "no such path");
}
