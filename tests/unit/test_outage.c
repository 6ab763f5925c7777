/*
 * test_outage.c - the database outage state: one attempt per retry
 * interval while down, reports once per interval with counts, the end of
 * an outage once, Retry-After.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "outage.h"

#define S 1000000 /* one second in microseconds */
#define R STS_OUTAGE_RETRY_US

/* Up: every request may try, Retry-After is 1. */
static void test_up(void **state)
{
    sts_outage o;
    int i;

    (void)state;
    memset(&o, 0, sizeof(o));
    for (i = 0; i < 5; i++) {
        assert_true(sts_outage_may_try(&o, 100 * S + i));
    }
    assert_int_equal(sts_outage_retry_after(&o, 100 * S), 1);
}

/* Down: one attempt per retry interval goes through, the rest are
 * refused. */
static void test_one_attempt_per_interval(void **state)
{
    sts_outage o;
    int64_t t = 100 * S;
    int i, tried = 0;

    (void)state;
    memset(&o, 0, sizeof(o));
    assert_true(sts_outage_failed(&o, t));
    assert_false(sts_outage_failed(&o, t + 1)); /* already down */
    for (i = 0; i < 1000; i++) {
        tried += sts_outage_may_try(&o, t + i * (R / 1000)); /* R in all */
    }
    assert_int_equal(tried, 0);
    assert_true(sts_outage_may_try(&o, t + R + 1));
    assert_false(sts_outage_may_try(&o, t + R + 2));
    assert_true(sts_outage_may_try(&o, t + 2 * R + 1));
    /* Until the next attempt, rounded up to whole seconds. */
    assert_int_equal(sts_outage_retry_after(&o, t + 2 * R + 2), 1);
    sts_outage_failed(&o, t + 10 * S);
    assert_int_equal(sts_outage_retry_after(&o, t + 10 * S - 2 * S), 3);
}

/* The background's attempt is its own: while it is still connecting after
 * the database came back, a request due to try is not refused for it. A
 * failure of either kind moves both a retry interval on. */
static void test_background_attempt_is_apart(void **state)
{
    sts_outage o;
    int64_t t = 100 * S, down;
    uint32_t n;

    (void)state;
    memset(&o, 0, sizeof(o));
    assert_true(sts_outage_failed(&o, t));
    assert_false(sts_outage_may_try_background(&o, t + R - 1));
    assert_true(sts_outage_may_try_background(&o, t + R + 1));
    assert_false(sts_outage_may_try_background(&o, t + R + 2));
    assert_true(sts_outage_may_try(&o, t + R + 3));
    assert_false(sts_outage_may_try(&o, t + R + 4));
    /* The background's attempt fails: the next request waits too. */
    sts_outage_failed(&o, t + 2 * R);
    assert_false(sts_outage_may_try(&o, t + 3 * R - 1));
    assert_false(sts_outage_may_try_background(&o, t + 3 * R - 1));
    assert_true(sts_outage_may_try(&o, t + 3 * R));
    assert_true(sts_outage_may_try_background(&o, t + 3 * R));
    /* Up again: both may always try. */
    assert_true(sts_outage_reached(&o, t + 3 * R + 1, &down, &n));
    assert_true(sts_outage_may_try(&o, t + 3 * R + 2));
    assert_true(sts_outage_may_try_background(&o, t + 3 * R + 2));
    assert_true(sts_outage_may_try_background(&o, t + 3 * R + 2));
}

/* Reports: the start is the caller's line; then one report per 10 s with
 * the count since the last one. */
static void test_reports(void **state)
{
    sts_outage o;
    int64_t t = 100 * S;
    uint32_t n = 0;
    int i;

    (void)state;
    memset(&o, 0, sizeof(o));
    assert_true(sts_outage_failed(&o, t));
    for (i = 0; i < 500; i++) {
        sts_outage_refused(&o);
        assert_false(sts_outage_report_due(&o, t + i * 1000, &n));
    }
    assert_true(sts_outage_report_due(&o, t + STS_OUTAGE_REPORT_US, &n));
    assert_int_equal(n, 500);
    assert_false(sts_outage_report_due(&o, t + STS_OUTAGE_REPORT_US + 1, &n));
    sts_outage_refused(&o);
    assert_true(sts_outage_report_due(&o, t + 2 * STS_OUTAGE_REPORT_US, &n));
    assert_int_equal(n, 1);
}

/* The end of an outage: once, with its length and total count; then the
 * next failure is reported at once. */
static void test_reached(void **state)
{
    sts_outage o;
    int64_t t = 100 * S, down = 0;
    uint32_t n = 0;
    int i;

    (void)state;
    memset(&o, 0, sizeof(o));
    assert_false(sts_outage_reached(&o, t, &down, &n)); /* never down */
    assert_true(sts_outage_failed(&o, t));
    for (i = 0; i < 7; i++) {
        sts_outage_refused(&o);
    }
    assert_true(sts_outage_reached(&o, t + 3 * S, &down, &n));
    assert_int_equal(down, 3 * S);
    assert_int_equal(n, 7);
    assert_false(sts_outage_reached(&o, t + 4 * S, &down, &n));
    assert_true(sts_outage_may_try(&o, t + 4 * S));
    assert_true(sts_outage_report_due(&o, t + 4 * S, &n));
    assert_int_equal(n, 0);
}

/* A statement failure while up is reported at once, then once per 10 s. */
static void test_report_while_up(void **state)
{
    sts_outage o;
    int64_t t = 100 * S;
    uint32_t n = 0;

    (void)state;
    memset(&o, 0, sizeof(o));
    sts_outage_refused(&o);
    assert_true(sts_outage_report_due(&o, t, &n));
    assert_int_equal(n, 1);
    sts_outage_refused(&o);
    assert_false(sts_outage_report_due(&o, t + S, &n));
}

/* Threads racing for the attempt of one interval: exactly one wins. */
static sts_outage race;
static int winners;

static void *racer(void *arg)
{
    int64_t now = *(int64_t *)arg;
    int i;

    for (i = 0; i < 1000; i++) {
        if (sts_outage_may_try(&race, now)) {
            __atomic_add_fetch(&winners, 1, __ATOMIC_RELAXED);
        }
    }
    return NULL;
}

static void test_one_winner_among_threads(void **state)
{
    pthread_t th[8];
    int64_t now = 200 * S;
    int i;

    (void)state;
    memset(&race, 0, sizeof(race));
    assert_true(sts_outage_failed(&race, now - 2 * S));
    for (i = 0; i < 8; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, racer, &now), 0);
    }
    for (i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
    }
    assert_int_equal(winners, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_up),
        cmocka_unit_test(test_one_attempt_per_interval),
        cmocka_unit_test(test_background_attempt_is_apart),
        cmocka_unit_test(test_reports),
        cmocka_unit_test(test_reached),
        cmocka_unit_test(test_report_while_up),
        cmocka_unit_test(test_one_winner_among_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
