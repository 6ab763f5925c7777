/*
 * test_last_use.c - the uses noted in a process until written: due at once,
 * then at most once per STS_LU_EVERY_MS per token; the latest use wins;
 * a failed write keeps them due; bounded (clean slots reused, the oldest
 * first; a use dropped only when its set holds nothing but unwritten
 * uses); client addresses validated.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "last_use.h"

#define MIN STS_LU_EVERY_MS

static sts_lu_entry batch[STS_LU_CAPACITY];

static int setup(void **state)
{
    *state = sts_lu_create();
    return *state == NULL;
}

static int teardown(void **state)
{
    sts_lu_destroy(*state);
    return 0;
}

/* A first use is due at once; written, it is not due again. */
static void test_first_use_due_at_once(void **state)
{
    sts_last_use *lu = *state;

    assert_int_equal(sts_lu_due(lu, 1000, 0, batch, STS_LU_CAPACITY), 0);
    assert_int_equal(sts_lu_note(lu, 42, 1700000000000, "10.1.2.3"), 0);
    assert_int_equal(sts_lu_due(lu, 1000, 0, batch, STS_LU_CAPACITY), 1);
    assert_int_equal(batch[0].id, 42);
    assert_int_equal(batch[0].used_ms, 1700000000000);
    assert_string_equal(batch[0].addr, "10.1.2.3");
    sts_lu_written(lu, batch, 1, 1000);
    assert_int_equal(sts_lu_due(lu, 1001, 0, batch, STS_LU_CAPACITY), 0);
}

/* Uses within the minute after a write update the slot; they are due a
 * minute after the write, with the latest use and its address. */
static void test_once_a_minute_latest_wins(void **state)
{
    sts_last_use *lu = *state;
    int i;

    sts_lu_note(lu, 7, 100000, "10.0.0.1");
    assert_int_equal(sts_lu_due(lu, 5000, 0, batch, 8), 1);
    sts_lu_written(lu, batch, 1, 5000);
    for (i = 0; i < 1000; i++) {
        sts_lu_note(lu, 7, 100001 + i, i == 999 ? "2001:db8::7" : "10.0.0.2");
    }
    /* Out of order: an older use does not replace a newer one. */
    sts_lu_note(lu, 7, 100500, "10.9.9.9");
    assert_int_equal(sts_lu_due(lu, 5000 + MIN - 1, 0, batch, 8), 0);
    assert_int_equal(sts_lu_due(lu, 5000 + MIN, 0, batch, 8), 1);
    assert_int_equal(batch[0].used_ms, 101000);
    assert_string_equal(batch[0].addr, "2001:db8::7");
    /* Stopping: every unwritten use is due whatever the interval. */
    sts_lu_written(lu, batch, 1, 5000 + MIN);
    sts_lu_note(lu, 7, 200000, NULL);
    assert_int_equal(sts_lu_due(lu, 5000 + MIN + 1, 0, batch, 8), 0);
    assert_int_equal(sts_lu_due(lu, 5000 + MIN + 1, 1, batch, 8), 1);
    assert_string_equal(batch[0].addr, "");
}

/* A failed write (no sts_lu_written) leaves the uses due; a use noted
 * between collecting and writing stays due after the write. */
static void test_failed_write_and_late_use(void **state)
{
    sts_last_use *lu = *state;

    sts_lu_note(lu, 9, 1000, "10.0.0.9");
    assert_int_equal(sts_lu_due(lu, 0, 0, batch, 8), 1);
    assert_int_equal(sts_lu_due(lu, 5000, 0, batch, 8), 1);
    sts_lu_note(lu, 9, 2000, "10.0.0.10");
    sts_lu_written(lu, batch, 1, 5000); /* wrote the use at 1000 */
    assert_int_equal(sts_lu_due(lu, 5000 + MIN, 0, batch, 8), 1);
    assert_int_equal(batch[0].used_ms, 2000);
    assert_string_equal(batch[0].addr, "10.0.0.10");
}

/* Only IPv4 and IPv6 addresses are kept (an IPv6 zone left out); ids must
 * be positive. */
static void test_addresses_and_ids(void **state)
{
    sts_last_use *lu = *state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"192.0.2.1", "192.0.2.1"},
        {"::1", "::1"},
        {"fe80::1%eth0", "fe80::1"},
        {"fe80::1%an-interface-name-long-enough-to-pass-46-bytes", "fe80::1"},
        /* 45 characters, the longest text form an address has, and 46. */
        {"0000:0000:0000:0000:0000:ffff:192.168.100.200",
         "0000:0000:0000:0000:0000:ffff:192.168.100.200"},
        {"0000:0000:0000:0000:0000:ffff:192.168.100.2000", ""},
        {"::ffff:192.0.2.1", "::ffff:192.0.2.1"},
        {"", ""},
        {"%eth0", ""},
        {"localhost", ""},
        {"1.2.3.4\"},{\"x", ""},
        {"1.2.3.4 ", ""},
        {"0000:0000:0000:0000:0000:0000:0000:0000:0000:0000", ""},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(sts_lu_note(lu, 100 + (int64_t)i, 1, cases[i].in), 0);
    }
    assert_int_equal(sts_lu_due(lu, 0, 0, batch, STS_LU_CAPACITY),
                     sizeof(cases) / sizeof(cases[0]));
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t k;

        for (k = 0; batch[k].id != 100 + (int64_t)i; k++) {
        }
        assert_string_equal(batch[k].addr, cases[i].out);
    }
    assert_int_equal(sts_lu_note(lu, 0, 1, "10.0.0.1"), -1);
    assert_int_equal(sts_lu_note(lu, -5, 1, "10.0.0.1"), -1);
}

/* Bounded: more distinct tokens than slots between two writes drop uses
 * (counted), never grow; once written, slots are reused, the one written
 * longest ago first, and every id is then noted again. */
static void test_bounded(void **state)
{
    sts_last_use *lu = *state;
    const int64_t n = 3 * STS_LU_CAPACITY;
    sts_lu_stats st;
    size_t due, i;
    int64_t id;
    int dropped = 0;

    for (id = 1; id <= n; id++) {
        dropped += sts_lu_note(lu, id, id, "10.0.0.1") != 0;
    }
    sts_lu_get_stats(lu, &st);
    assert_int_equal(st.noted + st.dropped, n);
    assert_int_equal(st.dropped, (uint64_t)dropped);
    due = sts_lu_due(lu, 0, 0, batch, STS_LU_CAPACITY);
    assert_int_equal(due, st.noted);
    assert_true(due <= STS_LU_CAPACITY);
    /* Hashing spreads sequential ids: most slots are used. */
    assert_true(due > STS_LU_CAPACITY * 9 / 10);
    /* A small batch takes part of what is due. */
    assert_int_equal(sts_lu_due(lu, 0, 0, batch, 10), 10);
    due = sts_lu_due(lu, 0, 0, batch, STS_LU_CAPACITY);
    sts_lu_written(lu, batch, due, 1000);
    /* Clean slots make room: every id fits again, one set at a time. */
    dropped = 0;
    for (id = n + 1; id <= n + STS_LU_WAYS; id++) {
        dropped += sts_lu_note(lu, id, id, "10.0.0.2") != 0;
    }
    assert_int_equal(dropped, 0);
    /* The newcomers are due (never written); the evicted are gone. */
    due = sts_lu_due(lu, 1001, 0, batch, STS_LU_CAPACITY);
    assert_int_equal(due, STS_LU_WAYS);
    for (i = 0; i < due; i++) {
        assert_true(batch[i].id > n);
    }
}

/* ids of one set. */
static void same_set(int set, int64_t *out, int n)
{
    int64_t id;
    int k = 0;

    for (id = 1; k < n; id++) {
        if (sts_lu_set_of(id) == set) {
            out[k++] = id;
        }
    }
}

/* In a full set the slot written longest ago goes first; a set holding
 * only unwritten uses drops the newcomer. */
static void test_evicts_oldest_clean_drops_when_dirty(void **state)
{
    sts_last_use *lu = *state;
    int64_t ids[STS_LU_WAYS + 2];
    int i;

    same_set(3, ids, STS_LU_WAYS + 2);
    for (i = 0; i < STS_LU_WAYS; i++) {
        assert_int_equal(sts_lu_note(lu, ids[i], 1, ""), 0);
    }
    /* All unwritten: no room. */
    assert_int_equal(sts_lu_note(lu, ids[STS_LU_WAYS], 1, ""), -1);
    assert_int_equal(sts_lu_due(lu, 0, 0, batch, STS_LU_CAPACITY), STS_LU_WAYS);
    /* ids[5] written at 10, the others at 20. */
    for (i = 0; i < STS_LU_WAYS; i++) {
        sts_lu_written(lu, &batch[i], 1, batch[i].id == ids[5] ? 10 : 20);
    }
    assert_int_equal(sts_lu_note(lu, ids[STS_LU_WAYS], 2, ""), 0);
    /* ids[5] lost its slot: noted again, it is new (due at once); ids[6]
     * kept its slot (written at 20: not due before 20 + a minute). */
    assert_int_equal(sts_lu_note(lu, ids[5], 3, ""), 0);
    assert_int_equal(sts_lu_note(lu, ids[6], 3, ""), 0);
    assert_int_equal(sts_lu_due(lu, 30, 0, batch, STS_LU_CAPACITY), 2);
    assert_true((batch[0].id == ids[5] && batch[1].id == ids[STS_LU_WAYS]) ||
                (batch[1].id == ids[5] && batch[0].id == ids[STS_LU_WAYS]));
}

/* Many threads noting the same and different tokens: every use counted,
 * each token due once with its latest use. */
#define THREADS 8
#define PER_THREAD 20000

static void *noter(void *arg)
{
    sts_last_use *lu = ((void **)arg)[0];
    int64_t base = (int64_t)(intptr_t)((void **)arg)[1];
    int i;

    for (i = 0; i < PER_THREAD; i++) {
        sts_lu_note(lu, 1 + i % 100, base + i, "10.0.0.1");
    }
    return NULL;
}

static void test_threads(void **state)
{
    sts_last_use *lu = *state;
    pthread_t th[THREADS];
    void *args[THREADS][2];
    sts_lu_stats st;
    size_t due, i;
    int t;

    for (t = 0; t < THREADS; t++) {
        args[t][0] = lu;
        args[t][1] = (void *)(intptr_t)(t * 1000000);
        assert_int_equal(pthread_create(&th[t], NULL, noter, args[t]), 0);
    }
    for (t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
    }
    sts_lu_get_stats(lu, &st);
    assert_int_equal(st.noted, THREADS * PER_THREAD);
    assert_int_equal(st.dropped, 0);
    due = sts_lu_due(lu, 0, 0, batch, STS_LU_CAPACITY);
    assert_int_equal(due, 100);
    for (i = 0; i < due; i++) {
        /* The last thread's latest use of that id. */
        int64_t k = batch[i].id - 1;
        int64_t last = (PER_THREAD - 1) - ((PER_THREAD - 1 - k) % 100);

        assert_int_equal(batch[i].used_ms, (THREADS - 1) * 1000000 + last);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_use_due_at_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_once_a_minute_latest_wins, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_and_late_use, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_addresses_and_ids, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_evicts_oldest_clean_drops_when_dirty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
