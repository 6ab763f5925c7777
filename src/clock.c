/*
 * clock.c - the monotonic clock for intervals (see clock.h).
 */
#include "clock.h"

#include <time.h>

/* Reads CLOCK_MONOTONIC in microseconds. It cannot fail on Linux for this
 * clock id; should it, 0 makes every interval look elapsed (a poll is due,
 * no entry is trusted), which fails closed. */
int64_t sts_monotonic_now(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return 0;
    }
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
