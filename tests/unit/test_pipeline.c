/* test_pipeline.c — what a model's metadata asks of a stream's window (daemon/pipeline.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "daemon/pipeline.h"

#include <string.h>

static struct nn_meta meta_of(int segments, int length)
{
    struct nn_model *m = nn_model_new();
    struct nn_meta mt = m->meta;
    nn_model_free(m);
    mt.width = mt.height = 112;
    mt.fps = 10;
    mt.segments = segments;
    mt.motion = NN_MOTION_MV;
    mt.motion_len = length;
    return mt;
}

/* K = 3, L = 8: 3 s holds three snippets apart, 2 s overlapping ones, 1 s (L + K - 1) not. */
static void test_window_minimum(void **state)
{
    (void)state;
    struct nn_meta mt = meta_of(3, 8);
    struct pipeline_video pv;
    struct err_msg em = {{0}};
    assert_int_equal(pipeline_video_setup(&mt, 3.0, 1.0, &pv, &em), 0);
    assert_int_equal(pv.window_n, 30);
    assert_int_equal(pv.stride_n, 10);
    assert_int_equal(pipeline_video_setup(&mt, 2.0, 1.0, &pv, &em), 0);
    assert_int_equal(pipeline_video_setup(&mt, 1.1, 1.0, &pv, &em), 0);
    assert_int_equal(pipeline_video_setup(&mt, 1.0, 1.0, &pv, &em), ERR_RANGE);
    assert_non_null(strstr(em.text, "need at least 11"));
}

static void test_window_bounds(void **state)
{
    (void)state;
    struct nn_meta mt = meta_of(3, 3);
    struct pipeline_video pv;
    struct err_msg em = {{0}};
    assert_int_equal(pipeline_video_setup(&mt, 0, 1.0, &pv, &em), ERR_RANGE);
    assert_int_equal(pipeline_video_setup(&mt, PIPELINE_MAX_WINDOW_S + 1, 1.0, &pv, &em),
                     ERR_RANGE);
    assert_int_equal(pipeline_video_setup(&mt, 2.0, 0, &pv, &em), ERR_RANGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_minimum),
        cmocka_unit_test(test_window_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
