/* test_state.c — unit tests of the daemon's plumbing: the status board (state), the live-event
 * bus (a slow subscriber is dropped, the producer never waits), sd_notify, the shared JSON, and
 * the recorder (committed before published, nothing published when the store refuses). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/common.h"
#include "daemon/daemon.h"
#include "daemon/json.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- state ---- */

static void test_streams_keep_counters_across_reload(void **state)
{
    (void)state;
    struct daemon_state *st;
    struct err_msg em;
    assert_int_equal(daemon_state_new(&st, &em), 0);
    const char *a[] = {"cam1", "cam2"};
    assert_int_equal(daemon_state_set_streams(st, a, NULL, 2, &em), 0);
    assert_int_equal(daemon_state_stream_frames(st, "cam1", 10, 1234), 0);
    assert_int_equal(daemon_state_stream_clip(st, "cam1", true), 0);
    assert_int_equal(daemon_state_stream_event(st, "cam1"), 0);
    assert_int_equal(daemon_state_stream_set_state(st, "cam1", DAEMON_STREAM_BACKOFF, "eof"), 0);
    assert_int_equal(daemon_state_stream_set_state(st, "cam1", DAEMON_STREAM_BACKOFF, NULL), 0);
    assert_int_equal(daemon_state_stream_set_state(st, "cam1", DAEMON_STREAM_RUNNING, NULL), 0);
    assert_int_equal(daemon_state_stream_set_state(st, "cam1", DAEMON_STREAM_BACKOFF, NULL), 0);
    assert_int_equal(daemon_state_stream_frames(st, "nope", 1, 0), ERR_NOTFOUND);
    /* A reload drops cam2, adds cam3 (disabled), keeps cam1 as it was. */
    const char *b[] = {"cam3", "cam1"};
    bool on[] = {false, true};
    assert_int_equal(daemon_state_set_streams(st, b, on, 2, &em), 0);
    struct daemon_stream_status s[EVENTS_MAX_STREAMS];
    assert_int_equal(daemon_state_snapshot(st, s, EVENTS_MAX_STREAMS), 2);
    assert_string_equal(s[0].id, "cam3");
    assert_int_equal(s[0].state, DAEMON_STREAM_DISABLED);
    assert_string_equal(s[1].id, "cam1");
    assert_int_equal(s[1].frames, 10);
    assert_int_equal(s[1].clips, 1);
    assert_int_equal(s[1].dropped, 1);
    assert_int_equal(s[1].events, 1);
    assert_int_equal(s[1].last_frame_ms, 1234);
    assert_string_equal(s[1].last_error, "eof");
    assert_int_equal(s[1].reconnects, 2); /* entering backoff twice, not staying in it */
    assert_int_equal(s[1].reconnects_last_hour, 2);
    assert_int_equal(daemon_state_stream_get(st, "cam2", &s[0]), ERR_NOTFOUND);
    const char *dup[] = {"x", "x"};
    assert_int_equal(daemon_state_set_streams(st, dup, NULL, 2, &em), ERR_INVAL);
    assert_int_equal(daemon_state_set_streams(st, b, NULL, EVENTS_MAX_STREAMS + 1, &em), ERR_RANGE);
    assert_int_equal(daemon_state_stream_set_state(st, "cam1", DAEMON_STREAM_STATE_COUNT, NULL),
                     ERR_INVAL);
    assert_string_equal(daemon_stream_state_name(DAEMON_STREAM_BACKOFF), "backoff");
    daemon_state_free(st);
    daemon_state_free(NULL);
}

static void test_latency_histogram(void **state)
{
    (void)state;
    struct daemon_state *st;
    assert_int_equal(daemon_state_new(&st, NULL), 0);
    daemon_state_observe_latency(st, 0.001);
    daemon_state_observe_latency(st, 0.005); /* on a bound: in that bucket (le) */
    daemon_state_observe_latency(st, 0.3);
    daemon_state_observe_latency(st, 60);
    daemon_state_observe_latency(st, -1);   /* ignored */
    daemon_state_observe_latency(st, 0.0 / 0.0);
    struct daemon_latency l;
    daemon_state_get_latency(st, &l);
    assert_int_equal(l.count, 4);
    assert_int_equal(l.counts[0], 2);
    assert_int_equal(l.counts[6], 1); /* 0.5 */
    assert_int_equal(l.counts[DAEMON_LATENCY_BUCKETS], 1);
    assert_float_equal(l.sum_s, 60.306, 1e-9);
    daemon_state_free(st);
}

static void test_window_latency_quantiles(void **state)
{
    (void)state;
    struct daemon_state *st;
    struct err_msg em;
    assert_int_equal(daemon_state_new(&st, &em), 0);
    const char *ids[] = {"cam1", "cam2"};
    assert_int_equal(daemon_state_set_streams(st, ids, NULL, 2, &em), 0);
    struct daemon_stream_status s;
    assert_int_equal(daemon_state_stream_get(st, "cam1", &s), 0);
    assert_int_equal(s.window_latency.count, 0);
    assert_float_equal(s.window_latency.p99_s, 0, 0);
    /* 1..200 ms in a scrambled order: nearest rank gives 100 and 198 ms. */
    for (int i = 0; i < 200; i++)
        assert_int_equal(daemon_state_stream_window(st, "cam1", ((i * 73) % 200 + 1) / 1e3), 0);
    assert_int_equal(daemon_state_stream_window(st, "cam1", -0.5), 0); /* ignored */
    assert_int_equal(daemon_state_stream_window(st, "cam1", 0.0 / 0.0), 0);
    assert_int_equal(daemon_state_stream_window(st, "nope", 0.1), ERR_NOTFOUND);
    assert_int_equal(daemon_state_stream_get(st, "cam1", &s), 0);
    assert_int_equal(s.window_latency.count, 200);
    assert_float_equal(s.window_latency.p50_s, 0.100, 1e-6);
    assert_float_equal(s.window_latency.p99_s, 0.198, 1e-6);
    assert_float_equal(s.window_latency.max_s, 0.200, 1e-9);
    assert_float_equal(s.window_latency.sum_s, 20.1, 1e-9);
    assert_int_equal(daemon_state_stream_get(st, "cam2", &s), 0);
    assert_int_equal(s.window_latency.count, 0); /* streams do not share */
    /* The quantiles forget what scrolled out of the kept windows; max and count do not. */
    for (int i = 0; i < DAEMON_WINDOW_LATENCY_KEEP; i++)
        daemon_state_stream_window(st, "cam1", 0.010);
    assert_int_equal(daemon_state_stream_get(st, "cam1", &s), 0);
    assert_int_equal(s.window_latency.count, 200 + DAEMON_WINDOW_LATENCY_KEEP);
    assert_float_equal(s.window_latency.p99_s, 0.010, 1e-6);
    assert_float_equal(s.window_latency.max_s, 0.200, 1e-9);
    /* A reload that keeps the stream keeps its latencies. */
    const char *b[] = {"cam1"};
    assert_int_equal(daemon_state_set_streams(st, b, NULL, 1, &em), 0);
    assert_int_equal(daemon_state_stream_get(st, "cam1", &s), 0);
    assert_int_equal(s.window_latency.count, 200 + DAEMON_WINDOW_LATENCY_KEEP);
    daemon_state_free(st);
}

/* ---- bus ---- */

static void test_bus_delivers_in_order(void **state)
{
    (void)state;
    struct daemon_bus *b;
    struct daemon_bus_sub *s1, *s2;
    assert_int_equal(daemon_bus_new(&b), 0);
    assert_int_equal(daemon_bus_subscribe(b, &s1), 0);
    assert_int_equal(daemon_bus_subscribe(b, &s2), 0);
    assert_int_equal(daemon_bus_publish(b, "one", 3), 0);
    assert_int_equal(daemon_bus_publish(b, "two", 3), 0);
    struct daemon_bus_msg *m;
    size_t len;
    assert_int_equal(daemon_bus_wait(s1, 1000, &m), 1);
    assert_string_equal(daemon_bus_msg_text(m, &len), "one");
    assert_int_equal(len, 3);
    daemon_bus_msg_release(m);
    assert_int_equal(daemon_bus_wait(s1, 1000, &m), 1);
    assert_string_equal(daemon_bus_msg_text(m, NULL), "two");
    daemon_bus_msg_release(m);
    assert_int_equal(daemon_bus_wait(s1, 10, &m), 0); /* nothing more: a timeout */
    assert_int_equal(daemon_bus_publish(b, "", 0), ERR_INVAL);
    assert_int_equal(daemon_bus_publish(b, "x", DAEMON_BUS_MSG_MAX + 1), ERR_INVAL);
    daemon_bus_unsubscribe(s2); /* with two unread messages: freed, no leak */
    struct daemon_bus_stats bs;
    daemon_bus_get_stats(b, &bs);
    assert_int_equal(bs.subscribers, 1);
    assert_int_equal(bs.published, 2);
    daemon_bus_close(b);
    assert_int_equal(daemon_bus_wait(s1, 1000, &m), ERR_EOF);
    assert_int_equal(daemon_bus_subscribe(b, &s2), ERR_EOF);
    assert_int_equal(daemon_bus_wait_idle(b, 10), ERR_TIMEOUT);
    daemon_bus_unsubscribe(s1);
    assert_int_equal(daemon_bus_wait_idle(b, 10), 0);
    daemon_bus_free(b);
    daemon_bus_unsubscribe(NULL);
    daemon_bus_free(NULL);
}

static void test_bus_drops_slow_subscriber(void **state)
{
    (void)state;
    struct daemon_bus *b;
    struct daemon_bus_sub *slow, *fast;
    assert_int_equal(daemon_bus_new(&b), 0);
    assert_int_equal(daemon_bus_subscribe(b, &slow), 0);
    assert_int_equal(daemon_bus_subscribe(b, &fast), 0);
    struct daemon_bus_msg *m;
    /* The producer runs far ahead of one reader: it never blocks, the reader is cut off. */
    for (int i = 0; i < DAEMON_BUS_QUEUE * 4; i++) {
        char text[16];
        int n = snprintf(text, sizeof text, "m%d", i);
        assert_int_equal(daemon_bus_publish(b, text, (size_t)n), 0);
        assert_int_equal(daemon_bus_wait(fast, 1000, &m), 1);
        daemon_bus_msg_release(m);
    }
    assert_int_equal(daemon_bus_wait(slow, 1000, &m), ERR_BUSY);
    struct daemon_bus_stats bs;
    daemon_bus_get_stats(b, &bs);
    assert_int_equal(bs.dropped_subs, 1);
    daemon_bus_unsubscribe(slow);
    daemon_bus_unsubscribe(fast);
    daemon_bus_free(b);
}

static void test_bus_subscriber_bound(void **state)
{
    (void)state;
    struct daemon_bus *b;
    struct daemon_bus_sub *subs[DAEMON_BUS_MAX_SUBS], *one;
    assert_int_equal(daemon_bus_new(&b), 0);
    for (int i = 0; i < DAEMON_BUS_MAX_SUBS; i++)
        assert_int_equal(daemon_bus_subscribe(b, &subs[i]), 0);
    assert_int_equal(daemon_bus_subscribe(b, &one), ERR_BUSY);
    for (int i = 0; i < DAEMON_BUS_MAX_SUBS; i++)
        daemon_bus_unsubscribe(subs[i]);
    daemon_bus_free(b);
}

/* ---- notify ---- */

static void test_notify_datagram(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/tmp/actiond-test-notify-%d", (int)getpid());
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char buf[512];
    assert_int_equal(daemon_notify_dgram(path, "READY=1"), 1);
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    assert_int_equal(n, 7);
    buf[n] = 0;
    assert_string_equal(buf, "READY=1");
    /* Through the public calls, whichever implementation this build has. */
    setenv("NOTIFY_SOCKET", path, 1);
    assert_int_equal(daemon_notify_status("2 streams\nrunning"), 1);
    n = recv(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    assert_string_equal(buf, "STATUS=2 streams running"); /* one line */
    assert_int_equal(daemon_notify_stopping(), 1);
    n = recv(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    assert_string_equal(buf, "STOPPING=1");
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(daemon_notify_ready(), 0); /* not under systemd: nothing, no error */
    assert_int_equal(daemon_notify_dgram("relative/path", "X=1"), ERR_INVAL);
    assert_int_equal(daemon_notify_dgram(NULL, "X=1"), 0);
    close(fd);
    unlink(path);
}

static void test_watchdog_interval(void **state)
{
    (void)state;
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("WATCHDOG_USEC", "30000000", 1);
    setenv("WATCHDOG_PID", pid, 1);
    assert_int_equal(daemon_notify_watchdog_interval_ms(), 15000);
    setenv("WATCHDOG_PID", "1", 1); /* meant for another process */
    assert_int_equal(daemon_notify_watchdog_interval_ms(), 0);
    unsetenv("WATCHDOG_PID");
    setenv("WATCHDOG_USEC", "junk", 1);
    assert_int_equal(daemon_notify_watchdog_interval_ms(), 0);
    unsetenv("WATCHDOG_USEC");
    assert_int_equal(daemon_notify_watchdog_interval_ms(), 0);
}

/* ---- json ---- */

static void test_json_top_and_iso(void **state)
{
    (void)state;
    const char *const cls[] = {"a", "b", "c", "d", "e", "f", "g"};
    float sc[7] = {0.1f, 0.5f, 0.05f, 0.2f, 0.9f, 0.0f, 0.3f};
    char top[STORE_TOP_MAX];
    int best = -1;
    assert_int_equal(daemon_json_top(sc, 7, cls, 3, top, &best), 0);
    assert_int_equal(best, 4);
    json_t *a = json_loads(top, 0, NULL);
    assert_int_equal(json_array_size(a), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "action")), "e");
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 1), "action")), "b");
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 2), "action")), "g");
    json_decref(a);
    char iso[DAEMON_ISO_SIZE];
    daemon_json_iso(1767225600123LL, iso);
    assert_string_equal(iso, "2026-01-01T00:00:00.123Z");
    struct events_event ev = {.id = 3, .start_ms = 5, .open = true, .peak = 0.5};
    strcpy(ev.stream, "cam1");
    strcpy(ev.action, "walk");
    char sse[DAEMON_BUS_MSG_MAX];
    int n = daemon_recorder_sse_format(&ev, true, sse, sizeof sse);
    assert_true(n > 0);
    assert_int_equal(strncmp(sse, "event: opened\ndata: {", 21), 0);
    assert_string_equal(sse + n - 2, "\n\n");
    assert_ptr_equal(strchr(sse + 20, '\n'), sse + n - 2); /* the JSON is one line */
    assert_int_equal(daemon_recorder_sse_format(&ev, true, sse, 30), ERR_RANGE);
}

/* ---- recorder ---- */

struct rfix {
    char dir[64];
    char path[128];
    struct store *store;
    struct daemon_state *st;
    struct daemon_recorder *rec;
    struct daemon_bus_sub *sub;
};

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static int rsetup(void **state)
{
    struct rfix *f = calloc(1, sizeof *f);
    struct err_msg em;
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/actiond-test-state-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/actiond.db", f->dir);
    struct store_opts o = {.path = f->path, .max_size = 128 * 1024};
    const char *ids[] = {"cam1"};
    const char *cls[] = {"walk", "run"};
    struct events_params p = {.enter = 0.6, .exit = 0.4, .smooth = 1};
    if (store_open(&o, &f->store, &em) || daemon_state_new(&f->st, &em) ||
        daemon_state_set_streams(f->st, ids, NULL, 1, &em) ||
        daemon_recorder_new(f->store, f->st, 2, cls, &f->rec, &em) ||
        daemon_recorder_stream_add(f->rec, "cam1", &p, &em) ||
        daemon_bus_subscribe(daemon_state_bus(f->st), &f->sub))
        return -1;
    *state = f;
    return 0;
}

static int rteardown(void **state)
{
    struct rfix *f = *state;
    daemon_bus_unsubscribe(f->sub);
    daemon_recorder_free(f->rec);
    store_close(f->store);
    daemon_state_free(f->st);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static int rwindow(struct rfix *f, int t, float walk, float run)
{
    float s[2] = {walk, run};
    struct events_window w = {"cam1", t * 1000, t * 1000 + 1000, s, 2};
    struct err_msg em;
    return daemon_recorder_window(f->rec, &w, &em);
}

static int count_rows(void *ctx, const struct events_event *ev)
{
    (void)ev;
    (*(int *)ctx)++;
    return 0;
}

static int count_dets(void *ctx, const struct store_detection *d)
{
    (void)d;
    (*(int *)ctx)++;
    return 0;
}

static void test_recorder_commits_then_publishes(void **state)
{
    struct rfix *f = *state;
    assert_int_equal(rwindow(f, 0, 0.9f, 0.1f), 0);
    struct daemon_bus_msg *m;
    assert_int_equal(daemon_bus_wait(f->sub, 1000, &m), 1);
    assert_non_null(strstr(daemon_bus_msg_text(m, NULL), "event: opened"));
    daemon_bus_msg_release(m);
    /* When published, the event and the window that opened it were already committed. */
    struct store_query q = {.since_ms = STORE_TIME_MIN, .until_ms = STORE_TIME_MAX, .limit = 10};
    int n = 0, d = 0;
    struct err_msg em;
    assert_int_equal(store_events_query(f->store, &q, count_rows, &n, &em), 1);
    assert_int_equal(store_detections_query(f->store, &q, count_dets, &d, &em), 1);
    struct daemon_stream_status s;
    assert_int_equal(daemon_state_stream_get(f->st, "cam1", &s), 0);
    assert_int_equal(s.events, 1);
    assert_int_equal(daemon_recorder_flush(f->rec, "cam1", &em), 0);
    assert_int_equal(daemon_bus_wait(f->sub, 1000, &m), 1);
    assert_non_null(strstr(daemon_bus_msg_text(m, NULL), "event: closed"));
    daemon_bus_msg_release(m);
    /* A bad window is refused and stores nothing. */
    assert_int_equal(rwindow(f, -5, 0.5f, 0.5f), ERR_RANGE);
    float bad[2] = {0.5f, 0.0f / 0.0f};
    struct events_window w = {"cam1", 9000, 10000, bad, 2};
    assert_int_equal(daemon_recorder_window(f->rec, &w, &em), ERR_INVAL);
    d = 0;
    assert_int_equal(store_detections_query(f->store, &q, count_dets, &d, &em), 1);
}

static void test_recorder_store_full_publishes_nothing(void **state)
{
    struct rfix *f = *state;
    int rc = 0, t;
    for (t = 0; t < 100000 && rc == 0; t++)
        rc = rwindow(f, t, 0.1f, 0.1f);
    assert_int_equal(rc, ERR_IO); /* the cap of 128 KiB: a clear error, no crash */
    for (int i = 0; i < 5; i++)
        rc = rwindow(f, t + i, 0.95f, 0.0f);
    struct daemon_bus_msg *m;
    /* Whatever opened after the store recovered (the failed batch is rolled back, which may
     * free room) was committed first; nothing was published that is not in the store. */
    while (daemon_bus_wait(f->sub, 0, &m) == 1) {
        const char *text = daemon_bus_msg_text(m, NULL);
        const char *id = strstr(text, "\"id\":");
        assert_non_null(id);
        long long eid = atoll(id + 5);
        daemon_bus_msg_release(m);
        struct store_query q = {.since_ms = STORE_TIME_MIN, .until_ms = STORE_TIME_MAX,
                                .limit = 1, .before_id = eid + 1};
        int n = 0;
        struct err_msg em;
        assert_int_equal(store_events_query(f->store, &q, count_rows, &n, &em), 1);
    }
    struct store_stats ss;
    store_get_stats(f->store, &ss);
    assert_true(ss.write_errors >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_streams_keep_counters_across_reload),
        cmocka_unit_test(test_latency_histogram),
        cmocka_unit_test(test_window_latency_quantiles),
        cmocka_unit_test(test_bus_delivers_in_order),
        cmocka_unit_test(test_bus_drops_slow_subscriber),
        cmocka_unit_test(test_bus_subscriber_bound),
        cmocka_unit_test(test_notify_datagram),
        cmocka_unit_test(test_watchdog_interval),
        cmocka_unit_test(test_json_top_and_iso),
        cmocka_unit_test_setup_teardown(test_recorder_commits_then_publishes, rsetup, rteardown),
        cmocka_unit_test_setup_teardown(test_recorder_store_full_publishes_nothing, rsetup,
                                        rteardown),
    };
    log_set_level(LOG_LVL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
