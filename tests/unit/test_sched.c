/* test_sched.c — the clip queues between stream and inference workers: drop-oldest when
 * full, streams served in turn, closed slots, and stop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemon/sched.h"

#include <pthread.h>

static struct sched *make(int depth)
{
    struct video_clip_opts co = {.segments = 1, .length = 1, .motion = VIDEO_MOTION_DIFF};
    struct sched *s = NULL;
    struct err_msg em = {{0}};
    assert_int_equal(sched_new(&co, 16, 16, depth, &s, &em), 0);
    return s;
}

static void push_n(struct sched *s, int slot, int n, int64_t first, int *dropped)
{
    for (int i = 0; i < n; i++) {
        bool d = false;
        struct video_clip *c = sched_acquire(s, slot, &d);
        assert_non_null(c);
        *dropped += d;
        *dropped += sched_push(s, slot, c, first + i, first + i, first + i);
    }
}

static void test_full_queue_drops_oldest(void **state)
{
    (void)state;
    struct sched *s = make(3);
    int slot, dropped = 0;
    assert_int_equal(sched_slot_open(s, "cam", &slot, NULL), 0);
    push_n(s, slot, 5, 100, &dropped);
    assert_int_equal(dropped, 2);
    struct sched_item it;
    for (int want = 102; want <= 104; want++) { /* the newest three, oldest first */
        assert_true(sched_pop(s, &it, 0));
        assert_int_equal(it.start_ms, want);
        assert_string_equal(it.id, "cam");
        sched_release(s, &it);
    }
    assert_false(sched_pop(s, &it, 10));
    sched_free(s);
}

static void test_streams_served_in_turn(void **state)
{
    (void)state;
    struct sched *s = make(4);
    int a, b, dropped = 0;
    assert_int_equal(sched_slot_open(s, "a", &a, NULL), 0);
    assert_int_equal(sched_slot_open(s, "b", &b, NULL), 0);
    push_n(s, a, 3, 0, &dropped);
    push_n(s, b, 3, 10, &dropped);
    char order[7] = {0};
    struct sched_item it;
    for (int i = 0; i < 6; i++) {
        assert_true(sched_pop(s, &it, 0));
        order[i] = it.id[0];
        sched_release(s, &it);
    }
    assert_string_equal(order, "ababab");
    assert_int_equal(dropped, 0);
    sched_free(s);
}

/* The producer never waits: with every clip queued or out, the oldest queued is reused. */
static void test_acquire_never_blocks(void **state)
{
    (void)state;
    struct sched *s = make(2);
    int slot, dropped = 0;
    assert_int_equal(sched_slot_open(s, "cam", &slot, NULL), 0);
    push_n(s, slot, 2, 0, &dropped);
    struct sched_item out1, out2;
    assert_true(sched_pop(s, &out1, 0)); /* two clips out with "workers" */
    assert_true(sched_pop(s, &out2, 0));
    push_n(s, slot, 4, 10, &dropped); /* 4 = depth + 2: the pool's last two, then reuse */
    assert_true(dropped >= 2);
    sched_release(s, &out1);
    sched_release(s, &out2);
    sched_free(s);
}

static void test_closed_slot_frees_returning_clips(void **state)
{
    (void)state;
    struct sched *s = make(2);
    int slot, dropped = 0;
    assert_int_equal(sched_slot_open(s, "cam", &slot, NULL), 0);
    push_n(s, slot, 1, 0, &dropped);
    struct sched_item it;
    assert_true(sched_pop(s, &it, 0));
    sched_slot_close(s, slot);
    int again;
    assert_int_equal(sched_slot_open(s, "new", &again, NULL), 0);
    sched_release(s, &it); /* freed, not given to the new stream (ASan checks) */
    push_n(s, again, 1, 5, &dropped);
    assert_true(sched_pop(s, &it, 0));
    assert_string_equal(it.id, "new");
    sched_release(s, &it);
    sched_free(s);
}

static void *popper(void *arg)
{
    struct sched_item it;
    return sched_pop(arg, &it, 10000) ? (void *)1 : NULL;
}

static void test_stop_wakes_waiters(void **state)
{
    (void)state;
    struct sched *s = make(2);
    pthread_t t;
    pthread_create(&t, NULL, popper, s);
    uint64_t t0 = clock_mono_ns();
    clock_sleep_ms(50, NULL);
    sched_stop(s);
    void *got;
    pthread_join(t, &got);
    assert_null(got);
    assert_true(clock_mono_ns() - t0 < 2000000000ull);
    sched_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_queue_drops_oldest),
        cmocka_unit_test(test_streams_served_in_turn),
        cmocka_unit_test(test_acquire_never_blocks),
        cmocka_unit_test(test_closed_slot_frees_returning_clips),
        cmocka_unit_test(test_stop_wakes_waiters),
    };
    return cmocka_run_group_tests_name("sched", tests, NULL, NULL);
}
