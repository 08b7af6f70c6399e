/* test_events.c — unit tests of daemon/events: smoothing, hysteresis against flicker, event
 * times and scores, action filters, gaps, flushes, reloads and sink failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/common.h"
#include "daemon/events.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CALLS 256

/* A sink that records every call, hands out ids 1, 2, ... and can be told to fail. */
struct recorder {
    struct events_event calls[MAX_CALLS];
    bool is_open[MAX_CALLS];
    int n;
    int64_t next_id;
    int fail_opens; /* how many opened() calls fail next */
    int fail_closes;
};

static int rec_opened(void *ctx, struct events_event *ev)
{
    struct recorder *r = ctx;
    if (r->fail_opens > 0) {
        r->fail_opens--;
        return ERR_IO;
    }
    ev->id = ++r->next_id;
    assert_true(r->n < MAX_CALLS);
    r->calls[r->n] = *ev;
    r->is_open[r->n++] = true;
    return 0;
}

static int rec_closed(void *ctx, const struct events_event *ev)
{
    struct recorder *r = ctx;
    assert_true(r->n < MAX_CALLS);
    r->calls[r->n] = *ev;
    r->is_open[r->n++] = false;
    if (r->fail_closes > 0) {
        r->fail_closes--;
        return ERR_IO;
    }
    return 0;
}

static const char *const classes3[] = {"walk", "run", "wave"};

struct fixture {
    struct recorder rec;
    struct events *ev;
    struct err_msg em;
};

static struct events_params params(double enter, double exit_, int smooth)
{
    return (struct events_params){.enter = enter, .exit = exit_, .smooth = smooth};
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    struct events_sink sink = {rec_opened, rec_closed, &f->rec};
    if (events_new(3, classes3, &sink, &f->ev, &f->em) != 0)
        return -1;
    struct events_params p = params(0.6, 0.4, 1);
    if (events_stream_add(f->ev, "cam1", &p, &f->em) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    events_free(f->ev);
    free(f);
    return 0;
}

/* Feeds one 1 s window starting at t seconds with these three scores. */
static int feed3(struct fixture *f, const char *stream, int t, float a, float b, float c)
{
    float s[3] = {a, b, c};
    struct events_window w = {stream, t * 1000, t * 1000 + 1000, s, 3};
    return events_feed(f->ev, &w, &f->em);
}

static int count_calls(const struct recorder *r, bool opened)
{
    int n = 0;
    for (int i = 0; i < r->n; i++)
        n += r->is_open[i] == opened;
    return n;
}

static void test_opens_at_enter_closes_below_exit(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(feed3(f, "cam1", 0, 0.5f, 0, 0), 0);
    assert_int_equal(f->rec.n, 0);
    assert_int_equal(feed3(f, "cam1", 1, 0.7f, 0, 0), 0);
    assert_int_equal(f->rec.n, 1);
    assert_true(f->rec.is_open[0]);
    assert_string_equal(f->rec.calls[0].action, "walk");
    assert_string_equal(f->rec.calls[0].stream, "cam1");
    assert_true(f->rec.calls[0].open);
    assert_int_equal(f->rec.calls[0].end_ms, 0);
    assert_int_equal(feed3(f, "cam1", 2, 0.45f, 0, 0), 0); /* between exit and enter: held */
    assert_int_equal(f->rec.n, 1);
    assert_int_equal(feed3(f, "cam1", 3, 0.3f, 0, 0), 0);
    assert_int_equal(f->rec.n, 2);
    assert_false(f->rec.is_open[1]);
    assert_int_equal(f->rec.calls[1].id, f->rec.calls[0].id);
    assert_false(f->rec.calls[1].open);
    assert_int_equal(events_open_count(f->ev, NULL), 0);
}

static void test_flicker_does_not_reopen(void **state)
{
    struct fixture *f = *state;
    struct events_params p = params(0.6, 0.4, 3);
    assert_int_equal(events_stream_update(f->ev, "cam1", &p, &f->em), 0);
    /* Raw scores that cross enter and exit every window. */
    for (int t = 0; t < 40; t++)
        assert_int_equal(feed3(f, "cam1", t, t % 2 ? 0.9f : 0.35f, 0, 0), 0);
    assert_int_equal(count_calls(&f->rec, true), 1);
    assert_int_equal(count_calls(&f->rec, false), 0);
    /* And a score hovering just under enter never opens anything on another stream. */
    p = params(0.6, 0.4, 1);
    assert_int_equal(events_stream_add(f->ev, "cam2", &p, &f->em), 0);
    for (int t = 0; t < 40; t++)
        assert_int_equal(feed3(f, "cam2", t, t % 2 ? 0.59f : 0.41f, 0, 0), 0);
    assert_int_equal(events_open_count(f->ev, "cam2"), 0);
}

static void test_flicker_around_exit_does_not_reclose(void **state)
{
    struct fixture *f = *state;
    struct events_params p = params(0.6, 0.4, 3);
    assert_int_equal(events_stream_update(f->ev, "cam1", &p, &f->em), 0);
    for (int t = 0; t < 6; t++)
        assert_int_equal(feed3(f, "cam1", t, 0.9f, 0, 0), 0);
    assert_int_equal(f->rec.n, 1);
    /* Dips under exit for one window at a time: the EMA stays above it. */
    for (int t = 6; t < 30; t++)
        assert_int_equal(feed3(f, "cam1", t, t % 2 ? 0.3f : 0.7f, 0, 0), 0);
    assert_int_equal(f->rec.n, 1);
    for (int t = 30; t < 36; t++)
        assert_int_equal(feed3(f, "cam1", t, 0.0f, 0, 0), 0);
    assert_int_equal(f->rec.n, 2);
}

static void test_single_spike_does_not_open_when_smoothed(void **state)
{
    struct fixture *f = *state;
    struct events_params p = params(0.6, 0.4, 3);
    assert_int_equal(events_stream_update(f->ev, "cam1", &p, &f->em), 0);
    assert_int_equal(feed3(f, "cam1", 0, 1.0f, 0, 0), 0); /* EMA 0.5 */
    assert_int_equal(feed3(f, "cam1", 1, 0.0f, 0, 0), 0);
    assert_int_equal(feed3(f, "cam1", 2, 0.0f, 0, 0), 0);
    assert_int_equal(f->rec.n, 0);
    assert_int_equal(feed3(f, "cam1", 3, 1.0f, 0, 0), 0); /* 0.5625 */
    assert_int_equal(f->rec.n, 0);
    assert_int_equal(feed3(f, "cam1", 4, 1.0f, 0, 0), 0); /* 0.78 */
    assert_int_equal(f->rec.n, 1);
}

static void test_start_reaches_back_and_scores(void **state)
{
    struct fixture *f = *state;
    struct events_params p = params(0.6, 0.4, 3);
    assert_int_equal(events_stream_update(f->ev, "cam1", &p, &f->em), 0);
    assert_int_equal(feed3(f, "cam1", 10, 0.1f, 0, 0), 0);
    assert_int_equal(feed3(f, "cam1", 11, 0.8f, 0, 0), 0); /* run starts: 0.425 */
    assert_int_equal(feed3(f, "cam1", 12, 1.0f, 0, 0), 0); /* 0.71: opens */
    assert_int_equal(f->rec.n, 1);
    assert_int_equal(f->rec.calls[0].start_ms, 11000);
    assert_int_equal(f->rec.calls[0].windows, 2);
    assert_float_equal(f->rec.calls[0].peak, 1.0, 1e-6);
    assert_float_equal(f->rec.calls[0].mean, 0.9, 1e-6);
    assert_int_equal(feed3(f, "cam1", 13, 0.6f, 0, 0), 0);
    for (int t = 14; f->rec.n < 2 && t < 30; t++)
        assert_int_equal(feed3(f, "cam1", t, 0.0f, 0, 0), 0);
    assert_int_equal(f->rec.n, 2);
    const struct events_event *c = &f->rec.calls[1];
    /* Held while the EMA was at least exit: t=13 (0.655) and t=14 (0.33 < 0.4 closes). */
    assert_int_equal(c->end_ms, 14000);
    assert_int_equal(c->windows, 3);
    assert_float_equal(c->peak, 1.0, 1e-6);
    assert_float_equal(c->mean, (0.8 + 1.0 + 0.6) / 3, 1e-6);
}

static void test_exit_above_enter_refused(void **state)
{
    struct fixture *f = *state;
    struct events_params p = params(0.4, 0.6, 1);
    assert_int_equal(events_stream_add(f->ev, "cam2", &p, &f->em), ERR_INVAL);
    assert_non_null(strstr(f->em.text, "above enter"));
    p = params(0.5, 0.5, 1); /* equal is allowed */
    assert_int_equal(events_stream_add(f->ev, "cam2", &p, &f->em), 0);
    p = params(1.5, 0.5, 1);
    assert_int_equal(events_stream_add(f->ev, "cam3", &p, &f->em), ERR_INVAL);
    p = params(NAN, 0.5, 1);
    assert_int_equal(events_stream_add(f->ev, "cam3", &p, &f->em), ERR_INVAL);
    p = params(0.6, 0.4, 0);
    assert_int_equal(events_stream_add(f->ev, "cam3", &p, &f->em), ERR_INVAL);
    p = params(0.6, 0.4, EVENTS_MAX_SMOOTH + 1);
    assert_int_equal(events_stream_add(f->ev, "cam3", &p, &f->em), ERR_INVAL);
    /* A refused update leaves the old settings. */
    p = params(0.4, 0.6, 1);
    assert_int_equal(events_stream_update(f->ev, "cam1", &p, &f->em), ERR_INVAL);
    assert_int_equal(feed3(f, "cam1", 0, 0.65f, 0, 0), 0);
    assert_int_equal(f->rec.n, 1);
}

static void test_multiple_actions_at_once(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(feed3(f, "cam1", 0, 0.9f, 0.8f, 0.1f), 0);
    assert_int_equal(f->rec.n, 2);
    assert_string_equal(f->rec.calls[0].action, "walk");
    assert_string_equal(f->rec.calls[1].action, "run");
    assert_int_not_equal(f->rec.calls[0].id, f->rec.calls[1].id);
    assert_int_equal(events_open_count(f->ev, "cam1"), 2);
    /* walk ends while wave begins: the close is reported before the open. */
    assert_int_equal(feed3(f, "cam1", 1, 0.1f, 0.8f, 0.9f), 0);
    assert_int_equal(f->rec.n, 4);
    assert_false(f->rec.is_open[2]);
    assert_string_equal(f->rec.calls[2].action, "walk");
    assert_true(f->rec.is_open[3]);
    assert_string_equal(f->rec.calls[3].action, "wave");
    assert_int_equal(events_open_count(f->ev, "cam1"), 2);
}

static void test_action_filter(void **state)
{
    struct fixture *f = *state;
    const char *const only[] = {"run"};
    struct events_params p = params(0.6, 0.4, 1);
    p.actions = only;
    p.n_actions = 1;
    assert_int_equal(events_stream_update(f->ev, "cam1", &p, &f->em), 0);
    assert_int_equal(feed3(f, "cam1", 0, 0.9f, 0.9f, 0.9f), 0);
    assert_int_equal(f->rec.n, 1);
    assert_string_equal(f->rec.calls[0].action, "run");
    const char *const bad[] = {"swim"};
    p.actions = bad;
    assert_int_equal(events_stream_update(f->ev, "cam1", &p, &f->em), ERR_NOTFOUND);
    assert_non_null(strstr(f->em.text, "swim"));
    assert_int_equal(events_stream_add(f->ev, "cam9", &p, &f->em), ERR_NOTFOUND);
}

static void test_flush_closes_only_that_stream(void **state)
{
    struct fixture *f = *state;
    struct events_params p = params(0.6, 0.4, 1);
    assert_int_equal(events_stream_add(f->ev, "cam2", &p, &f->em), 0);
    assert_int_equal(feed3(f, "cam1", 0, 0.9f, 0, 0), 0);
    assert_int_equal(feed3(f, "cam2", 0, 0.9f, 0, 0), 0);
    assert_int_equal(feed3(f, "cam1", 1, 0.9f, 0, 0), 0);
    assert_int_equal(events_open_count(f->ev, NULL), 2);
    assert_int_equal(events_flush(f->ev, "cam1", &f->em), 0);
    assert_int_equal(events_open_count(f->ev, "cam1"), 0);
    assert_int_equal(events_open_count(f->ev, "cam2"), 1);
    const struct events_event *c = &f->rec.calls[f->rec.n - 1];
    assert_false(c->open);
    assert_string_equal(c->stream, "cam1");
    assert_int_equal(c->end_ms, 2000); /* the end of the last window seen */
    assert_int_equal(events_flush(f->ev, NULL, &f->em), 0);
    assert_int_equal(events_open_count(f->ev, NULL), 0);
    assert_int_equal(events_flush(f->ev, "nope", &f->em), ERR_NOTFOUND);
    /* Smoothing restarted: a flushed stream opens again at the next high window. */
    assert_int_equal(feed3(f, "cam1", 5, 0.9f, 0, 0), 0);
    assert_int_equal(events_open_count(f->ev, "cam1"), 1);
}

static void test_remove_closes_events(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(feed3(f, "cam1", 0, 0.9f, 0, 0), 0);
    assert_int_equal(events_stream_remove(f->ev, "cam1", &f->em), 0);
    assert_int_equal(f->rec.n, 2);
    assert_false(f->rec.is_open[1]);
    assert_int_equal(feed3(f, "cam1", 1, 0.9f, 0, 0), ERR_NOTFOUND);
    assert_int_equal(events_stream_remove(f->ev, "cam1", &f->em), ERR_NOTFOUND);
}

static void test_gap_closes_and_resets(void **state)
{
    struct fixture *f = *state;
    struct events_params p = params(0.6, 0.4, 1);
    p.max_gap_ms = 5000;
    assert_int_equal(events_stream_update(f->ev, "cam1", &p, &f->em), 0);
    assert_int_equal(feed3(f, "cam1", 0, 0.9f, 0, 0), 0);
    assert_int_equal(feed3(f, "cam1", 1, 0.9f, 0, 0), 0);
    assert_int_equal(feed3(f, "cam1", 100, 0.9f, 0, 0), 0); /* 98 s later */
    assert_int_equal(f->rec.n, 3);
    assert_false(f->rec.is_open[1]);
    assert_int_equal(f->rec.calls[1].end_ms, 2000);
    assert_true(f->rec.is_open[2]);
    assert_int_equal(f->rec.calls[2].start_ms, 100000);
}

static void test_bad_windows(void **state)
{
    struct fixture *f = *state;
    float s[3] = {0.1f, NAN, 0};
    struct events_window w = {"cam1", 0, 1000, s, 3};
    assert_int_equal(events_feed(f->ev, &w, &f->em), ERR_INVAL);
    s[1] = INFINITY;
    assert_int_equal(events_feed(f->ev, &w, &f->em), ERR_INVAL);
    s[1] = 0;
    w.n_classes = 2;
    assert_int_equal(events_feed(f->ev, &w, &f->em), ERR_INVAL);
    w.n_classes = 3;
    w.end_ms = -1;
    assert_int_equal(events_feed(f->ev, &w, &f->em), ERR_INVAL);
    w.end_ms = 1000;
    w.stream = "cam7";
    assert_int_equal(events_feed(f->ev, &w, &f->em), ERR_NOTFOUND);
    w.stream = NULL;
    assert_int_equal(events_feed(f->ev, &w, &f->em), ERR_NOTFOUND);
    assert_int_equal(feed3(f, "cam1", 10, 0, 0, 0), 0);
    assert_int_equal(feed3(f, "cam1", 9, 0, 0, 0), ERR_RANGE);
    assert_int_equal(feed3(f, "cam1", 10, 0, 0, 0), 0); /* a repeat start is not older */
}

static void test_failed_open_retried(void **state)
{
    struct fixture *f = *state;
    f->rec.fail_opens = 1;
    assert_int_equal(feed3(f, "cam1", 0, 0.9f, 0, 0), ERR_IO);
    assert_int_equal(events_open_count(f->ev, "cam1"), 0);
    assert_int_equal(feed3(f, "cam1", 1, 0.9f, 0, 0), 0);
    assert_int_equal(events_open_count(f->ev, "cam1"), 1);
    assert_int_equal(f->rec.n, 1);
    f->rec.fail_closes = 1;
    assert_int_equal(feed3(f, "cam1", 2, 0.0f, 0, 0), ERR_IO);
    assert_int_equal(events_open_count(f->ev, "cam1"), 0); /* closed in memory all the same */
}

static void test_stream_bounds(void **state)
{
    struct fixture *f = *state;
    struct events_params p = params(0.6, 0.4, 1);
    assert_int_equal(events_stream_add(f->ev, "cam1", &p, &f->em), ERR_BUSY);
    assert_int_equal(events_stream_add(f->ev, "", &p, &f->em), ERR_INVAL);
    char longid[64];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    assert_int_equal(events_stream_add(f->ev, longid, &p, &f->em), ERR_INVAL);
    char id[16];
    for (int i = 1; i < EVENTS_MAX_STREAMS; i++) {
        snprintf(id, sizeof id, "s%d", i);
        assert_int_equal(events_stream_add(f->ev, id, &p, &f->em), 0);
    }
    assert_int_equal(events_stream_add(f->ev, "onemore", &p, &f->em), ERR_RANGE);
}

static void test_new_bounds(void **state)
{
    (void)state;
    struct events *e = NULL;
    struct err_msg em;
    struct events_sink sink = {0};
    assert_int_equal(events_new(0, classes3, &sink, &e, &em), ERR_INVAL);
    const char *const bad[] = {"a", ""};
    assert_int_equal(events_new(2, bad, &sink, &e, &em), ERR_INVAL);
    assert_null(e);
    events_free(NULL);
}

static void test_params_from_config(void **state)
{
    (void)state;
    char *acts[] = {"run"};
    struct config_stream cs = {.window_ms = 2000, .stride_ms = 1000};
    cs.thresholds.enter = 0.7;
    cs.thresholds.exit = 0.3;
    cs.actions.items = acts;
    cs.actions.count = 1;
    struct events_params p;
    events_params_from_config(&cs, &p);
    assert_float_equal(p.enter, 0.7, 0);
    assert_float_equal(p.exit, 0.3, 0);
    assert_int_equal(p.n_actions, 1);
    assert_string_equal(p.actions[0], "run");
    assert_int_equal(p.max_gap_ms, 10000);
    cs.stride_ms = 20000;
    events_params_from_config(&cs, &p);
    assert_int_equal(p.max_gap_ms, 60000);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_opens_at_enter_closes_below_exit),
        T(test_flicker_does_not_reopen),
        T(test_flicker_around_exit_does_not_reclose),
        T(test_single_spike_does_not_open_when_smoothed),
        T(test_start_reaches_back_and_scores),
        T(test_exit_above_enter_refused),
        T(test_multiple_actions_at_once),
        T(test_action_filter),
        T(test_flush_closes_only_that_stream),
        T(test_remove_closes_events),
        T(test_gap_closes_and_resets),
        T(test_bad_windows),
        T(test_failed_open_retried),
        T(test_stream_bounds),
        T(test_new_bounds),
        T(test_params_from_config),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
