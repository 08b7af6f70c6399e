/* test_http.c — unit tests of the HTTP layer without sockets: query parameters (times, limits,
 * names, cursors, every refusal) and routing through http_api_handle to JSON bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/common.h"
#include "daemon/daemon.h"
#include "daemon/http_internal.h"

#include <ftw.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- times ---- */

static void test_time_ms_and_iso(void **state)
{
    (void)state;
    int64_t t = -1;
    assert_int_equal(http_parse_time("0", &t), 0);
    assert_int_equal(t, 0);
    assert_int_equal(http_parse_time("1767225600000", &t), 0);
    assert_int_equal(t, 1767225600000LL);
    assert_int_equal(http_parse_time("2026-01-01T00:00:00Z", &t), 0);
    assert_int_equal(t, 1767225600000LL);
    assert_int_equal(http_parse_time("2026-01-01T01:00:00+01:00", &t), 0);
    assert_int_equal(t, 1767225600000LL);
    assert_int_equal(http_parse_time("2025-12-31T23:30:00.5-00:30", &t), 0);
    assert_int_equal(t, 1767225600500LL);
    assert_int_equal(http_parse_time("1970-01-01T00:00:00.123456789Z", &t), 0);
    assert_int_equal(t, 123);
    assert_int_equal(http_parse_time("2024-02-29T12:00:00z", &t), 0); /* a leap day */
    assert_int_equal(t, 1709208000000LL);
    assert_int_equal(http_parse_time("2000-03-01T00:00:00Z", &t), 0); /* 2000 was leap */
    assert_int_equal(t, 951868800000LL);
    assert_int_equal(http_parse_time("9999-12-31T23:59:59.999Z", &t), 0);
    assert_int_equal(t, STORE_TIME_MAX);
}

static void test_time_refusals(void **state)
{
    (void)state;
    int64_t t = 42;
    const char *bad[] = {"",
                         "-1",
                         "1e3",
                         " 5",
                         "5 ",
                         "0x10",
                         "yesterday",
                         "2026-01-01",
                         "2026-01-01T00:00:00",
                         "2026-01-01 00:00:00Z",
                         "2026-13-01T00:00:00Z",
                         "2026-02-29T00:00:00Z",
                         "1900-02-29T00:00:00Z",
                         "2026-01-32T00:00:00Z",
                         "2026-01-01T24:00:00Z",
                         "2026-01-01T00:60:00Z",
                         "2026-01-01T00:00:60Z",
                         "2026-01-01T00:00:00.Z",
                         "2026-01-01T00:00:00.1234567890Z",
                         "2026-01-01T00:00:00+1:00",
                         "2026-01-01T00:00:00+24:00",
                         "2026-01-01T00:00:00Zjunk",
                         "1969-12-31T23:59:59Z",
                         "1970-01-01T00:00:00+00:01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (http_parse_time(bad[i], &t) == 0)
            fail_msg("accepted '%s'", bad[i]);
        assert_int_equal(t, 42); /* untouched on failure */
    }
    assert_int_equal(http_parse_time("999999999999999999999", &t), ERR_RANGE);
    assert_int_equal(http_parse_time("253402300800000", &t), ERR_RANGE); /* year 10000 */
    assert_int_equal(http_parse_time(NULL, &t), ERR_INVAL);
}

static void test_limit(void **state)
{
    (void)state;
    int l = 7;
    assert_int_equal(http_parse_limit("1", &l), 0);
    assert_int_equal(l, 1);
    assert_int_equal(http_parse_limit("1000", &l), 0);
    assert_int_equal(l, 1000);
    assert_int_equal(http_parse_limit("0001", &l), 0);
    assert_int_equal(l, 1);
    const char *bad[] = {"0", "1001", "99999999999999999999", "-1", "+5", "5.0", "", "1e2", " 1"};
    l = 7;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (http_parse_limit(bad[i], &l) == 0)
            fail_msg("accepted limit '%s'", bad[i]);
    assert_int_equal(l, 7);
}

static void test_names(void **state)
{
    (void)state;
    assert_true(http_stream_id_ok("cam-1_a"));
    assert_false(http_stream_id_ok("Cam1"));
    assert_false(http_stream_id_ok("../etc"));
    assert_false(http_stream_id_ok(""));
    assert_false(http_stream_id_ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")); /* 33 */
    assert_true(http_stream_id_ok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));  /* 32 */
    assert_true(http_action_ok("walk"));
    assert_true(http_action_ok("hand wave"));
    assert_true(http_action_ok("sauter \xc3\xa0 la corde")); /* UTF-8 */
    assert_false(http_action_ok(""));
    assert_false(http_action_ok("a\nb"));
    assert_false(http_action_ok("\xff\xfe"));
    assert_false(http_action_ok("\xc0\xaf"));         /* overlong '/' */
    assert_false(http_action_ok("\xed\xa0\x80"));     /* a surrogate */
    assert_false(http_action_ok("\xf4\x90\x80\x80")); /* past U+10FFFF */
    assert_false(http_action_ok("\xe2\x82"));         /* cut short */
    char longname[80];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    assert_false(http_action_ok(longname));
}

static void test_cursor_round_trip_and_tamper(void **state)
{
    (void)state;
    char c[HTTP_CURSOR_SIZE];
    http_cursor_encode(12345, 0xdeadbeef, c);
    assert_int_equal(strlen(c), HTTP_CURSOR_SIZE - 1);
    int64_t id = 0;
    assert_int_equal(http_cursor_decode(c, 0xdeadbeef, &id), 0);
    assert_int_equal(id, 12345);
    assert_int_equal(http_cursor_decode(c, 0xdeadbeee, &id), ERR_INVAL); /* other filters */
    c[15] = c[15] == '0' ? '1' : '0';                                     /* another id */
    assert_int_equal(http_cursor_decode(c, 0xdeadbeef, &id), ERR_INVAL);
    assert_int_equal(http_cursor_decode("", 0, &id), ERR_INVAL);
    assert_int_equal(http_cursor_decode("zzzzzzzzzzzzzzzzzzzzzzzz", 0, &id), ERR_INVAL);
    assert_int_equal(http_cursor_decode("0000000000003039DEADBEEF", 0, &id), ERR_INVAL);
    http_cursor_encode(0, 0, c);
    assert_int_equal(http_cursor_decode(c, 0, &id), ERR_INVAL); /* ids start at 1 */
    assert_int_equal(id, 12345);
}

/* ---- the list query ---- */

static struct http_request req(const char *path)
{
    return (struct http_request){.method = "GET", .path = path};
}

static void add(struct http_request *rq, const char *k, const char *v)
{
    rq->params[rq->n_params++] = (struct http_param){k, v, v ? strlen(v) : 0};
}

static void test_list_query(void **state)
{
    (void)state;
    struct http_request rq = req("/api/v1/events");
    struct http_list_query lq;
    struct err_msg em;
    assert_int_equal(http_list_query_parse(&rq, HTTP_LIST_EVENTS, &lq, &em), 0);
    assert_int_equal(lq.q.limit, HTTP_LIMIT_DEFAULT);
    assert_null(lq.q.stream);
    assert_int_equal(lq.q.since_ms, STORE_TIME_MIN);
    assert_int_equal(lq.q.until_ms, STORE_TIME_MAX);
    uint32_t unfiltered = lq.filter_sum;
    add(&rq, "stream", "cam1");
    add(&rq, "action", "walk");
    add(&rq, "since", "1000");
    add(&rq, "until", "2026-01-01T00:00:00Z");
    add(&rq, "limit", "5");
    assert_int_equal(http_list_query_parse(&rq, HTTP_LIST_EVENTS, &lq, &em), 0);
    assert_string_equal(lq.q.stream, "cam1");
    assert_string_equal(lq.q.action, "walk");
    assert_int_equal(lq.q.since_ms, 1000);
    assert_int_equal(lq.q.until_ms, 1767225600000LL);
    assert_int_equal(lq.q.limit, 5);
    assert_int_not_equal(lq.filter_sum, unfiltered);
    char c[HTTP_CURSOR_SIZE];
    http_cursor_encode(99, lq.filter_sum, c);
    add(&rq, "cursor", c);
    assert_int_equal(http_list_query_parse(&rq, HTTP_LIST_EVENTS, &lq, &em), 0);
    assert_int_equal(lq.q.before_id, 99);
    /* The same cursor on detections, or without the filters, is refused. */
    assert_int_equal(http_list_query_parse(&rq, HTTP_LIST_DETECTIONS, &lq, &em), ERR_INVAL);
    assert_non_null(strstr(em.text, "cursor"));
}

static void expect_refused(struct http_request *rq, const char *needle)
{
    struct http_list_query lq;
    struct err_msg em;
    assert_int_equal(http_list_query_parse(rq, HTTP_LIST_EVENTS, &lq, &em), ERR_INVAL);
    if (!strstr(em.text, needle))
        fail_msg("'%s' does not mention '%s'", em.text, needle);
}

static void test_list_query_refusals(void **state)
{
    (void)state;
    struct http_request rq = req("/api/v1/events");
    add(&rq, "acton", "walk");
    expect_refused(&rq, "unknown parameter 'acton'");
    rq = req("/x");
    add(&rq, "\xff\"<script>", "1");
    expect_refused(&rq, "unknown parameter"); /* not quoted back */
    rq = req("/x");
    add(&rq, "limit", "5");
    add(&rq, "limit", "6");
    expect_refused(&rq, "twice");
    rq = req("/x");
    add(&rq, "stream", NULL);
    expect_refused(&rq, "needs a value");
    rq = req("/x");
    rq.params[rq.n_params++] = (struct http_param){"stream", "cam1", 6}; /* "cam1\0x" */
    expect_refused(&rq, "needs a value");
    rq = req("/x");
    add(&rq, "since", "5000");
    add(&rq, "until", "5000");
    expect_refused(&rq, "before until");
    rq = req("/x");
    add(&rq, "stream", "CAM");
    expect_refused(&rq, "stream");
    rq = req("/x");
    add(&rq, "action", "\xc3");
    expect_refused(&rq, "action");
    rq = req("/x");
    add(&rq, "limit", "100000");
    expect_refused(&rq, "limit");
    rq = req("/x");
    rq.too_many_params = true;
    expect_refused(&rq, "too many");
}

/* ---- routing, with a real store and state ---- */

struct fixture {
    char dir[64];
    char path[128];
    struct store *store;
    struct daemon_state *st;
    struct http_ctx ctx;
    struct http_response rs;
    json_t *json;
};

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    struct err_msg em;
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/actiond-test-http-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/actiond.db", f->dir);
    struct store_opts o = {.path = f->path};
    const char *ids[] = {"cam1", "cam2"};
    bool on[] = {true, false};
    if (store_open(&o, &f->store, &em) || daemon_state_new(&f->st, &em) ||
        daemon_state_set_streams(f->st, ids, on, 2, &em))
        return -1;
    f->ctx = (struct http_ctx){f->st, f->store, 4, NULL, NULL};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    free(f->rs.body);
    json_decref(f->json);
    store_close(f->store);
    daemon_state_free(f->st);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Handles rq through ctx; checks the status and parses a JSON body into f->json. */
static void handle_ctx(struct fixture *f, const struct http_ctx *ctx,
                       const struct http_request *rq, int status)
{
    free(f->rs.body);
    json_decref(f->json);
    f->json = NULL;
    http_api_handle(ctx, rq, &f->rs);
    if (f->rs.status != status)
        fail_msg("%s: %d, want %d: %.*s", rq->path, f->rs.status, status, (int)f->rs.len,
                 f->rs.body ? f->rs.body : "");
    if (f->rs.content_type && strcmp(f->rs.content_type, "application/json") == 0) {
        f->json = json_loadb(f->rs.body, f->rs.len, 0, NULL);
        assert_non_null(f->json);
    }
}

static void handle(struct fixture *f, const struct http_request *rq, int status)
{
    handle_ctx(f, &f->ctx, rq, status);
}

static const char *error_of(struct fixture *f)
{
    return json_string_value(json_object_get(f->json, "error"));
}

static void test_routes_and_errors(void **state)
{
    struct fixture *f = *state;
    struct http_request rq = req("/healthz");
    handle(f, &rq, 200);
    assert_string_equal(json_string_value(json_object_get(f->json, "status")), "ok");
    rq = req("/api/v1/streams");
    handle(f, &rq, 200);
    json_t *arr = json_object_get(f->json, "streams");
    assert_int_equal(json_array_size(arr), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 1), "state")),
                        "disabled");
    rq = req("/api/v1/streams/cam1");
    handle(f, &rq, 200);
    assert_string_equal(json_string_value(json_object_get(f->json, "state")), "starting");
    assert_true(json_is_null(json_object_get(f->json, "last_error")));
    assert_true(json_is_null(json_object_get(f->json, "window_latency_ms")));
    assert_int_equal(daemon_state_stream_window(f->st, "cam1", 0.25), 0);
    assert_int_equal(daemon_state_stream_window(f->st, "cam1", 0.75), 0);
    handle(f, &rq, 200);
    json_t *wl = json_object_get(f->json, "window_latency_ms");
    assert_int_equal(json_integer_value(json_object_get(wl, "windows")), 2);
    assert_float_equal(json_real_value(json_object_get(wl, "p50")), 250, 1e-3);
    assert_float_equal(json_real_value(json_object_get(wl, "p99")), 750, 1e-3);
    assert_float_equal(json_real_value(json_object_get(wl, "max")), 750, 1e-3);
    rq = req("/api/v1/streams/cam9");
    handle(f, &rq, 404);
    assert_non_null(error_of(f));
    rq = req("/api/v1/streams/");
    handle(f, &rq, 404);
    rq = req("/api/v1/streams/cam1/extra");
    handle(f, &rq, 404);
    rq = req("/api/v2/streams");
    handle(f, &rq, 404);
    rq = req("/api/v1/streams");
    rq.method = "PUT";
    handle(f, &rq, 405);
    assert_string_equal(f->rs.allow, "GET, HEAD");
    assert_non_null(error_of(f));
    rq = req("/api/v1/health");
    add(&rq, "x", "1");
    handle(f, &rq, 400);
    rq = req("/api/v1/events");
    add(&rq, "limit", "0");
    handle(f, &rq, 400);
    assert_non_null(strstr(error_of(f), "limit"));
    rq = req("/api/v1/events/live");
    free(f->rs.body); /* http_api_handle fills rs afresh */
    http_api_handle(&f->ctx, &rq, &f->rs);
    assert_true(f->rs.sse);
}

static void test_health_and_metrics(void **state)
{
    struct fixture *f = *state;
    struct http_request rq = req("/api/v1/health");
    handle(f, &rq, 200);
    assert_true(json_is_null(json_object_get(f->json, "model")));
    assert_non_null(json_string_value(json_object_get(f->json, "openblas_core")));
    struct nn_meta meta = {.n_classes = 3, .fps = 25, .motion = NN_MOTION_FLOW};
    strcpy(meta.arch, "vgg-small");
    daemon_state_set_model(f->st, "/models/m.adm", &meta);
    daemon_state_observe_latency(f->st, 0.2);
    daemon_state_observe_latency(f->st, 100);
    handle(f, &rq, 200);
    json_t *m = json_object_get(f->json, "model");
    assert_string_equal(json_string_value(json_object_get(m, "arch")), "vgg-small");
    assert_string_equal(json_string_value(json_object_get(m, "motion")), "flow");
    rq = req("/metrics");
    handle(f, &rq, 200);
    assert_non_null(strstr(f->rs.body, "actiond_stream_state{stream=\"cam2\",state=\"disabled\"} 1\n"));
    assert_non_null(strstr(f->rs.body, "actiond_inference_latency_seconds_bucket{le=\"0.25\"} 1\n"));
    assert_non_null(strstr(f->rs.body, "actiond_inference_latency_seconds_bucket{le=\"10\"} 1\n"));
    assert_non_null(strstr(f->rs.body, "actiond_inference_latency_seconds_bucket{le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(f->rs.body, "actiond_inference_latency_seconds_count 2\n"));
    daemon_state_stream_window(f->st, "cam1", 0.5);
    handle(f, &rq, 200);
    assert_non_null(strstr(f->rs.body, "# TYPE actiond_window_latency_seconds summary\n"));
    assert_non_null(strstr(f->rs.body,
        "actiond_window_latency_seconds{stream=\"cam1\",quantile=\"0.99\"} 0.500000\n"));
    assert_non_null(strstr(f->rs.body,
        "actiond_window_latency_seconds_count{stream=\"cam1\"} 1\n"));
    assert_non_null(strstr(f->rs.body,
        "actiond_window_latency_seconds_count{stream=\"cam2\"} 0\n"));
}

static void test_lists_page_through_store(void **state)
{
    struct fixture *f = *state;
    struct err_msg em;
    for (int i = 0; i < 5; i++) {
        struct events_event ev = {.start_ms = i * 1000, .open = true};
        strcpy(ev.stream, "cam1");
        strcpy(ev.action, "walk");
        assert_int_equal(store_event_open(f->store, &ev, &em), 0);
    }
    struct http_request rq = req("/api/v1/events");
    add(&rq, "limit", "3");
    handle(f, &rq, 200);
    assert_int_equal(json_array_size(json_object_get(f->json, "items")), 3);
    const char *next = json_string_value(json_object_get(f->json, "next_cursor"));
    assert_non_null(next);
    char cursor[HTTP_CURSOR_SIZE];
    snprintf(cursor, sizeof cursor, "%s", next);
    add(&rq, "cursor", cursor);
    handle(f, &rq, 200);
    assert_int_equal(json_array_size(json_object_get(f->json, "items")), 2);
    assert_true(json_is_null(json_object_get(f->json, "next_cursor")));
    json_t *last = json_array_get(json_object_get(f->json, "items"), 1);
    assert_int_equal(json_integer_value(json_object_get(last, "id")), 1);
    assert_true(json_is_null(json_object_get(last, "end_ms")));
    assert_string_equal(json_string_value(json_object_get(last, "start")),
                        "1970-01-01T00:00:00.000Z");
    rq = req("/api/v1/detections");
    handle(f, &rq, 200);
    assert_int_equal(json_array_size(json_object_get(f->json, "items")), 0);
}

/* ---- the cached first page ---- */

static void add_detection(struct fixture *f, int64_t start, const char *action)
{
    struct store_detection d = {.start_ms = start, .end_ms = start + 1000, .score = 0.75};
    strcpy(d.stream, "cam1");
    snprintf(d.action, sizeof d.action, "%s", action);
    snprintf(d.top, sizeof d.top, "[{\"action\":\"%s\",\"score\":0.75}]", action);
    struct err_msg em;
    assert_int_equal(store_detection_add(f->store, &d, &em), 0);
}

/* The body of rq through ctx, as a new string. */
static char *body_of(struct fixture *f, const struct http_ctx *ctx, const struct http_request *rq)
{
    handle_ctx(f, ctx, rq, 200);
    char *b = strndup(f->rs.body, f->rs.len);
    assert_non_null(b);
    return b;
}

/* Cached and made afresh, the default page must be the same bytes; a result must show on the
 * first request after its commit, and not before it. */
static void test_default_page_cached_until_commit(void **state)
{
    struct fixture *f = *state;
    struct err_msg em;
    struct http_ctx cached = f->ctx;
    assert_int_equal(http_page_cache_new(&cached.cache), 0);
    for (int i = 0; i < 3; i++)
        add_detection(f, i * 1000, "walk");
    assert_int_equal(store_commit(f->store, &em), 0);
    struct http_request rq = req("/api/v1/detections");
    char *fresh = body_of(f, &f->ctx, &rq);
    char *first = body_of(f, &cached, &rq);
    char *again = body_of(f, &cached, &rq);
    assert_string_equal(first, fresh);
    assert_string_equal(again, fresh);
    assert_int_equal(json_array_size(json_object_get(f->json, "items")), 3);
    add_detection(f, 5000, "run"); /* pending: not yet visible */
    handle_ctx(f, &cached, &rq, 200);
    assert_int_equal(json_array_size(json_object_get(f->json, "items")), 3);
    assert_int_equal(store_commit(f->store, &em), 0);
    handle_ctx(f, &cached, &rq, 200);
    json_t *items = json_object_get(f->json, "items");
    assert_int_equal(json_array_size(items), 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "action")),
                        "run");
    free(fresh);
    fresh = body_of(f, &f->ctx, &rq);
    free(first);
    first = body_of(f, &cached, &rq);
    assert_string_equal(first, fresh);
    rq.method = "HEAD"; /* the same body: MHD leaves it out */
    handle_ctx(f, &cached, &rq, 200);
    assert_int_equal(f->rs.len, strlen(fresh));
    /* Parameters bypass the cache and still agree with it. */
    rq = req("/api/v1/detections");
    add(&rq, "limit", "100");
    free(again);
    again = body_of(f, &cached, &rq);
    assert_string_equal(again, fresh);
    free(fresh);
    free(first);
    free(again);
    http_page_cache_free(cached.cache);
}

/* Events change without new ids (a close): the events page follows them too. */
static void test_events_page_follows_close(void **state)
{
    struct fixture *f = *state;
    struct err_msg em;
    struct http_ctx cached = f->ctx;
    assert_int_equal(http_page_cache_new(&cached.cache), 0);
    struct events_event ev = {.start_ms = 1000, .open = true, .peak = 0.5, .mean = 0.5};
    strcpy(ev.stream, "cam1");
    strcpy(ev.action, "walk");
    assert_int_equal(store_event_open(f->store, &ev, &em), 0);
    struct http_request rq = req("/api/v1/events");
    handle_ctx(f, &cached, &rq, 200);
    json_t *first = json_array_get(json_object_get(f->json, "items"), 0);
    assert_true(json_is_true(json_object_get(first, "open")));
    ev.end_ms = 3000;
    ev.open = false;
    assert_int_equal(store_event_close(f->store, &ev, &em), 0);
    handle_ctx(f, &cached, &rq, 200);
    first = json_array_get(json_object_get(f->json, "items"), 0);
    assert_true(json_is_false(json_object_get(first, "open")));
    assert_int_equal(json_integer_value(json_object_get(first, "end_ms")), 3000);
    http_page_cache_free(cached.cache);
}

struct waiter {
    struct http_page_cache *c;
    int rc;
    char *body;
    size_t len;
};

static void *wait_for_page(void *arg)
{
    struct waiter *w = arg;
    w->rc = http_page_cache_get(w->c, HTTP_LIST_DETECTIONS, 1, &w->body, &w->len);
    return NULL;
}

/* One caller makes a stale page; a second one, before or after the page is kept, gets that
 * page rather than making it again. A failed making hands the job to the next caller. */
static void test_page_cache_one_maker(void **state)
{
    (void)state;
    struct http_page_cache *c;
    char *body = NULL;
    size_t len = 0;
    assert_int_equal(http_page_cache_new(&c), 0);
    assert_int_equal(http_page_cache_get(c, HTTP_LIST_DETECTIONS, 1, &body, &len), ERR_NOTFOUND);
    struct waiter w = {.c = c};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wait_for_page, &w), 0);
    http_page_cache_put(c, HTTP_LIST_DETECTIONS, 1, "page-1", 6);
    pthread_join(t, NULL);
    assert_int_equal(w.rc, 0);
    assert_int_equal(w.len, 6);
    assert_memory_equal(w.body, "page-1", 6);
    free(w.body);
    /* Another kind is its own page. */
    assert_int_equal(http_page_cache_get(c, HTTP_LIST_EVENTS, 1, &body, &len), ERR_NOTFOUND);
    http_page_cache_put(c, HTTP_LIST_EVENTS, 1, NULL, 0); /* making it failed */
    assert_int_equal(http_page_cache_get(c, HTTP_LIST_EVENTS, 1, &body, &len), ERR_NOTFOUND);
    http_page_cache_put(c, HTTP_LIST_EVENTS, 1, NULL, 0);
    /* A newer page serves a caller that read an older generation; an older one does not. */
    assert_int_equal(http_page_cache_get(c, HTTP_LIST_DETECTIONS, 3, &body, &len), ERR_NOTFOUND);
    http_page_cache_put(c, HTTP_LIST_DETECTIONS, 3, "page-3", 6);
    assert_int_equal(http_page_cache_get(c, HTTP_LIST_DETECTIONS, 2, &body, &len), 0);
    assert_memory_equal(body, "page-3", 6);
    free(body);
    assert_int_equal(http_page_cache_get(c, HTTP_LIST_DETECTIONS, 4, &body, &len), ERR_NOTFOUND);
    http_page_cache_put(c, HTTP_LIST_DETECTIONS, 2, "page-2", 6); /* late, older: not kept */
    assert_int_equal(http_page_cache_get(c, HTTP_LIST_DETECTIONS, 3, &body, &len), 0);
    assert_memory_equal(body, "page-3", 6);
    free(body);
    http_page_cache_free(c);
    http_page_cache_free(NULL);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_ms_and_iso),
        cmocka_unit_test(test_time_refusals),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_cursor_round_trip_and_tamper),
        cmocka_unit_test(test_list_query),
        cmocka_unit_test(test_list_query_refusals),
        T(test_routes_and_errors),
        T(test_health_and_metrics),
        T(test_lists_page_through_store),
        T(test_default_page_cached_until_commit),
        T(test_events_page_follows_close),
        cmocka_unit_test(test_page_cache_one_maker),
    };
#undef T
    log_set_level(LOG_LVL_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
