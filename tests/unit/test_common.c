/* test_common.c — unit tests of common/: error table, logging, arena, CRC32, clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_err_codes_are_negative_and_distinct(void **state)
{
    (void)state;
    const int codes[] = {ERR_NOMEM, ERR_INVAL, ERR_IO, ERR_FORMAT, ERR_CORRUPT, ERR_VERSION,
                         ERR_RANGE, ERR_NOTFOUND, ERR_UNSUPPORTED, ERR_EOF, ERR_TIMEOUT,
                         ERR_STALL, ERR_CONFIG, ERR_BUSY, ERR_NOTIMPL};
    size_t n = sizeof codes / sizeof codes[0];
    assert_int_equal(n, ERR_COUNT);
    for (size_t i = 0; i < n; i++) {
        assert_true(codes[i] < 0);
        for (size_t j = i + 1; j < n; j++)
            assert_int_not_equal(codes[i], codes[j]);
    }
}

static void test_err_str_and_name(void **state)
{
    (void)state;
    assert_string_equal(err_str(ERR_OK), "success");
    assert_string_equal(err_str(ERR_CORRUPT), "checksum mismatch");
    assert_string_equal(err_name(ERR_FORMAT), "ERR_FORMAT");
    assert_string_equal(err_str(-9999), "unknown error");
    assert_string_equal(err_str(42), "unknown error");
    assert_string_equal(err_name(-ERR_COUNT - 1), "ERR_UNKNOWN");
    for (int i = 1; i <= ERR_COUNT; i++)
        assert_string_not_equal(err_str(-i), "unknown error");
}

static void test_err_set_formats_and_returns_code(void **state)
{
    (void)state;
    struct err_msg m = {{0}};
    assert_string_equal(err_text(&m, ERR_IO), "input/output error");
    int rc = err_set(&m, ERR_CORRUPT, "%s: section '%s' CRC mismatch", "model.bin", "conv3.w");
    assert_int_equal(rc, ERR_CORRUPT);
    assert_string_equal(m.text, "model.bin: section 'conv3.w' CRC mismatch");
    assert_string_equal(err_text(&m, rc), m.text);
    assert_int_equal(err_set(NULL, ERR_IO, "ignored %d", 1), ERR_IO);
    /* A detail longer than the buffer is cut, never overflows. */
    char big[2 * ERR_MSG_LEN];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    err_set(&m, ERR_RANGE, "%s", big);
    assert_int_equal(strlen(m.text), ERR_MSG_LEN - 1);
}

static void test_log_level_parse(void **state)
{
    (void)state;
    enum log_level l;
    assert_int_equal(log_level_parse("debug", &l), 0);
    assert_int_equal(l, LOG_LVL_DEBUG);
    assert_int_equal(log_level_parse("warn", &l), 0);
    assert_int_equal(l, LOG_LVL_WARN);
    assert_int_equal(log_level_parse("loud", &l), ERR_INVAL);
}

/* Runs log calls with stderr redirected to a pipe and returns what was written. */
static size_t capture_log(enum log_level set, char *out, size_t cap)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    enum log_level old = log_get_level();
    log_set_level(set);
    log_error("e %d", 1);
    log_warn("w %s", "two");
    log_info("i");
    log_debug("d");
    log_set_level(old);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    ssize_t n = read(fds[0], out, cap - 1);
    close(fds[0]);
    assert_true(n >= 0);
    out[n] = '\0';
    return (size_t)n;
}

static void test_log_filters_by_level(void **state)
{
    (void)state;
    unsetenv("JOURNAL_STREAM");
    char buf[1024];
    capture_log(LOG_LVL_WARN, buf, sizeof buf);
    assert_string_equal(buf, "actiond: error: e 1\nactiond: warn: w two\n");
    capture_log(LOG_LVL_DEBUG, buf, sizeof buf);
    assert_non_null(strstr(buf, "actiond: debug: d\n"));
}

static void test_log_journald_prefix(void **state)
{
    (void)state;
    setenv("JOURNAL_STREAM", "8:1234", 1);
    char buf[1024];
    capture_log(LOG_LVL_ERROR, buf, sizeof buf);
    unsetenv("JOURNAL_STREAM");
    assert_string_equal(buf, "<3>e 1\n");
}

static void test_log_long_line_is_cut_with_newline(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    char *big = malloc(10000);
    memset(big, 'y', 9999);
    big[9999] = '\0';
    log_error("%s", big);
    free(big);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    char buf[16384];
    ssize_t n = read(fds[0], buf, sizeof buf);
    close(fds[0]);
    assert_true(n > 100 && n < 4096);
    assert_int_equal(buf[n - 1], '\n');
}

static void test_arena_alignment_and_exhaustion(void **state)
{
    (void)state;
    struct arena a;
    assert_int_equal(arena_init(&a, 1000), 0);
    assert_int_equal(a.size, 1024);
    void *p = arena_alloc(&a, 3);
    void *q = arena_alloc(&a, 100);
    assert_non_null(p);
    assert_non_null(q);
    assert_int_equal((uintptr_t)p % ARENA_ALIGN, 0);
    assert_int_equal((uintptr_t)q % ARENA_ALIGN, 0);
    assert_int_equal((char *)q - (char *)p, 64);
    assert_null(arena_alloc(&a, 2000)); /* never grows */
    assert_null(arena_alloc(&a, SIZE_MAX));
    assert_null(arena_calloc(&a, SIZE_MAX / 2, 4)); /* count*size overflow */
    arena_fini(&a);
    arena_fini(NULL);
}

static void test_arena_mark_rewind_reset(void **state)
{
    (void)state;
    struct arena a;
    assert_int_equal(arena_init(&a, 4096), 0);
    arena_alloc(&a, 64);
    size_t m = arena_mark(&a);
    char *x = arena_alloc(&a, 512);
    arena_rewind(&a, m);
    char *y = arena_alloc(&a, 512);
    assert_ptr_equal(x, y);
    assert_int_equal(a.peak, 64 + 512);
    arena_reset(&a);
    assert_int_equal(a.used, 0);
    int *z = arena_calloc(&a, 16, sizeof(int));
    for (int i = 0; i < 16; i++)
        assert_int_equal(z[i], 0);
    arena_fini(&a);
}

static void test_arena_size_of(void **state)
{
    (void)state;
    assert_int_equal(arena_size_of(0), 0);
    assert_int_equal(arena_size_of(1), 64);
    assert_int_equal(arena_size_of(64), 64);
    assert_int_equal(arena_size_of(65), 128);
    assert_int_equal(arena_size_of(SIZE_MAX - 3), SIZE_MAX);
}

static void test_crc32_known_vectors(void **state)
{
    (void)state;
    /* The standard check value of CRC-32/ISO-HDLC. */
    assert_int_equal(crc32_update(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(crc32_update(0, "", 0), 0);
    assert_int_equal(crc32_update(0, "The quick brown fox jumps over the lazy dog", 43),
                     0x414FA339u);
}

static void test_crc32_incremental_equals_whole(void **state)
{
    (void)state;
    unsigned char buf[1000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 7 + 3);
    uint32_t whole = crc32_update(0, buf, sizeof buf);
    uint32_t part = crc32_update(0, buf, 123);
    part = crc32_update(part, buf + 123, sizeof buf - 123);
    assert_int_equal(whole, part);
    buf[500] ^= 1;
    assert_int_not_equal(whole, crc32_update(0, buf, sizeof buf));
}

/* The definition, one bit at a time: what the sliced tables must reproduce. */
static uint32_t crc32_bitwise(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (c & 1 ? 0xEDB88320u : 0);
    }
    return ~c;
}

static void test_crc32_matches_bitwise_reference(void **state)
{
    (void)state;
    unsigned char buf[80];
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < sizeof buf; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (unsigned char)x;
    }
    /* Every start alignment and every length around the 8-byte blocks. */
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; off + n <= sizeof buf; n++)
            assert_int_equal(crc32_update(0, buf + off, n), crc32_bitwise(buf + off, n));
}

static void test_clock_monotonic_and_sleep(void **state)
{
    (void)state;
    uint64_t a = clock_mono_ns();
    clock_sleep_ms(20, NULL);
    uint64_t b = clock_mono_ns();
    assert_true(b >= a + 20 * 1000000ull);
    assert_true(clock_elapsed_s(a, b) >= 0.02);
    assert_true(clock_elapsed_s(b, a) == 0.0);
    assert_true(clock_wall_ms() > 1600000000000ll);
    atomic_int stop = 1;
    uint64_t c = clock_mono_ns();
    clock_sleep_ms(10000, &stop); /* returns at once when asked to stop */
    assert_true(clock_mono_ns() - c < 1000000000ull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_codes_are_negative_and_distinct),
        cmocka_unit_test(test_err_str_and_name),
        cmocka_unit_test(test_err_set_formats_and_returns_code),
        cmocka_unit_test(test_log_level_parse),
        cmocka_unit_test(test_log_filters_by_level),
        cmocka_unit_test(test_log_journald_prefix),
        cmocka_unit_test(test_log_long_line_is_cut_with_newline),
        cmocka_unit_test(test_arena_alignment_and_exhaustion),
        cmocka_unit_test(test_arena_mark_rewind_reset),
        cmocka_unit_test(test_arena_size_of),
        cmocka_unit_test(test_crc32_known_vectors),
        cmocka_unit_test(test_crc32_incremental_equals_whole),
        cmocka_unit_test(test_crc32_matches_bitwise_reference),
        cmocka_unit_test(test_clock_monotonic_and_sleep),
    };
    return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
