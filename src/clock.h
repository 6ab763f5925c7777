/*
 * clock.h - the monotonic clock for intervals (no Apache types).
 *
 * apr_time_now() is the wall clock: an administrator or NTP stepping it back
 * by an hour would stretch every interval measured with it by an hour (a
 * revision poll not due, a cache entry trusted that long). APR has no
 * monotonic clock, so this is the one place that reads CLOCK_MONOTONIC.
 * Intervals (poll schedule, trust window, TTLs) use it; only token
 * expirations, which are dates, use the wall clock.
 */
#ifndef STS_CLOCK_H
#define STS_CLOCK_H

#include <stdint.h>

/* Microseconds since an arbitrary fixed point (boot), never going back;
 * the same unit as apr_time_t, so APR's interval macros apply. */
int64_t sts_monotonic_now(void);

#endif
