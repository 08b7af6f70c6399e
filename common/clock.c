/* clock.c — thin wrappers over clock_gettime and nanosleep. */
#include "common/clock.h"

#include <errno.h>
#include <time.h>

uint64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t clock_mono_ms(void)
{
    return clock_mono_ns() / 1000000u;
}

int64_t clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double clock_elapsed_s(uint64_t start_ns, uint64_t end_ns)
{
    return end_ns >= start_ns ? (double)(end_ns - start_ns) * 1e-9 : 0.0;
}

void clock_sleep_ms(uint64_t ms, const atomic_int *stop)
{
    uint64_t end = clock_mono_ns() + ms * 1000000u;
    for (;;) {
        if (stop && atomic_load(stop))
            return;
        uint64_t now = clock_mono_ns();
        if (now >= end)
            return;
        uint64_t left = end - now;
        struct timespec ts = {(time_t)(left / 1000000000u), (long)(left % 1000000000u)};
        if (nanosleep(&ts, NULL) == 0)
            return;
        if (errno != EINTR)
            return;
    }
}
