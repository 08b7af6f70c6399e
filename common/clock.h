/* clock.h — monotonic time for intervals and timeouts, wall time for timestamps. */
#ifndef ACTIOND_COMMON_CLOCK_H
#define ACTIOND_COMMON_CLOCK_H

#include <stdatomic.h>
#include <stdint.h>

/* Nanoseconds on CLOCK_MONOTONIC: immune to wall-clock steps. */
uint64_t clock_mono_ns(void);
/* Milliseconds on CLOCK_MONOTONIC. */
uint64_t clock_mono_ms(void);
/* Milliseconds since the Unix epoch (CLOCK_REALTIME), for stored event times. */
int64_t clock_wall_ms(void);
/* Seconds between two monotonic readings in ns, as a double. */
double clock_elapsed_s(uint64_t start_ns, uint64_t end_ns);
/* Sleeps for ms milliseconds, resuming after signals until the time is up
 * unless *stop (if not NULL) becomes non-zero. */
void clock_sleep_ms(uint64_t ms, const atomic_int *stop);

#endif
