/*
 * test_token_table.c - the set of valid digests (src/token_table.h):
 * store, replace, look up, remove, tickets, generations and sweep, growth
 * to 100,000 entries with its memory, and threads reading while others
 * write.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "token_table.h"

/* A bump allocator standing in for a request pool. */
typedef struct {
    char buf[16384];
    size_t used;
    int fail;
} arena;

static void *arena_alloc(void *ctx, size_t n)
{
    arena *a = ctx;
    void *p;

    if (a->fail || a->used + n > sizeof(a->buf)) {
        return NULL;
    }
    p = a->buf + a->used;
    a->used += n;
    return p;
}

/* A digest made from a number (first byte varies, so shards vary). */
static void digest_of(unsigned n, unsigned char d[STS_DIGEST_LEN])
{
    unsigned k;

    for (k = 0; k < STS_DIGEST_LEN; k++) {
        d[k] = (unsigned char)((n * 2654435761u) >> ((k % 4) * 8)) ^
               (unsigned char)(k * 31);
    }
    memcpy(d + 8, &n, sizeof(n));
}

static sts_tt_token token(int64_t id, const char *name, const char *roles)
{
    sts_tt_token t;

    t.id = id;
    t.expiration_ms = -1;
    t.until_ms = -1;
    t.retire = 0;
    t.str[STS_TT_NAME] = name;
    t.str[STS_TT_ROLES] = roles;
    t.str[STS_TT_ID_TEXT] = "42";
    t.str[STS_TT_EXPIRATION_TEXT] = "";
    return t;
}

static void test_put_get_replace_remove(void **state)
{
    sts_token_table *t = sts_table_create();
    unsigned char d[STS_DIGEST_LEN], other[STS_DIGEST_LEN];
    sts_tt_token in = token(42, "ci", "reader,writer"), out;
    arena a = {.used = 0};

    (void)state;
    digest_of(1, d);
    digest_of(2, other);
    assert_int_equal(sts_table_get(t, d, &out, arena_alloc, &a), 0);
    assert_int_equal(sts_table_put(t, d, &in), 0);
    assert_int_equal(sts_table_get(t, d, &out, arena_alloc, &a), 1);
    assert_int_equal(out.id, 42);
    assert_int_equal(out.expiration_ms, -1);
    assert_string_equal(out.str[STS_TT_NAME], "ci");
    assert_string_equal(out.str[STS_TT_ROLES], "reader,writer");
    assert_string_equal(out.str[STS_TT_ID_TEXT], "42");
    assert_string_equal(out.str[STS_TT_EXPIRATION_TEXT], "");
    /* The strings were copied out: the caller's memory, not the table's. */
    assert_true(out.str[STS_TT_NAME] >= a.buf &&
                out.str[STS_TT_NAME] < a.buf + sizeof(a.buf));
    assert_int_equal(sts_table_get(t, other, &out, arena_alloc, &a), 0);

    in = token(42, "ci-renamed", "admin");
    assert_int_equal(sts_table_put(t, d, &in), 0);
    assert_int_equal(sts_table_count(t), 1);
    assert_int_equal(sts_table_get(t, d, &out, arena_alloc, &a), 1);
    assert_string_equal(out.str[STS_TT_NAME], "ci-renamed");

    a.fail = 1;
    assert_int_equal(sts_table_get(t, d, &out, arena_alloc, &a), -1);
    a.fail = 0;

    assert_int_equal(sts_table_remove(t, other), 0);
    assert_int_equal(sts_table_remove(t, d), 1);
    assert_int_equal(sts_table_get(t, d, &out, arena_alloc, &a), 0);
    assert_int_equal(sts_table_count(t), 0);
    sts_table_destroy(t);
}

static void test_the_largest_valid_token_fits(void **state)
{
    sts_token_table *t = sts_table_create();
    unsigned char d[STS_DIGEST_LEN];
    char name[256], roles[64 * 129];
    sts_tt_token in, out;
    static arena a;
    int i;

    (void)state;
    memset(name, 'n', 255);
    name[255] = '\0';
    for (i = 0; i < 64; i++) {
        memset(roles + i * 129, 'r', 128);
        roles[i * 129 + 128] = i < 63 ? ',' : '\0';
    }
    in = token(9007199254740991, name, roles);
    in.str[STS_TT_ID_TEXT] = "9007199254740991";
    in.str[STS_TT_EXPIRATION_TEXT] = "2100-01-01";
    digest_of(5, d);
    assert_int_equal(sts_table_put(t, d, &in), 0);
    a.used = 0;
    assert_int_equal(sts_table_get(t, d, &out, arena_alloc, &a), 1);
    assert_string_equal(out.str[STS_TT_ROLES], roles);
    sts_table_destroy(t);
}

static void test_too_long_strings_are_not_stored(void **state)
{
    sts_token_table *t = sts_table_create();
    unsigned char d[STS_DIGEST_LEN];
    char *roles = malloc(STS_TT_MAX_STRINGS + 1);
    sts_tt_token in;

    (void)state;
    memset(roles, 'r', STS_TT_MAX_STRINGS);
    roles[STS_TT_MAX_STRINGS] = '\0';
    in = token(1, "x", roles);
    digest_of(3, d);
    assert_int_equal(sts_table_put(t, d, &in), -1);
    assert_int_equal(sts_table_count(t), 0);
    free(roles);
    sts_table_destroy(t);
}

static void test_put_if_refuses_answers_older_than_a_change(void **state)
{
    sts_token_table *t = sts_table_create();
    unsigned char d[STS_DIGEST_LEN];
    sts_tt_token in = token(7, "n", "r"), out;
    arena a = {.used = 0};
    uint64_t ticket;

    (void)state;
    digest_of(4, d);
    ticket = sts_table_ticket(t);
    sts_table_changing(t); /* the synchronisation applied a change */
    assert_int_equal(sts_table_put_if(t, d, &in, ticket), 0);
    assert_int_equal(sts_table_get(t, d, &out, arena_alloc, &a), 0);
    ticket = sts_table_ticket(t);
    assert_int_equal(sts_table_put_if(t, d, &in, ticket), 1);
    assert_int_equal(sts_table_get(t, d, &out, arena_alloc, &a), 1);
    sts_table_destroy(t);
}

static void test_sweep_removes_what_a_generation_did_not_store(void **state)
{
    sts_token_table *t = sts_table_create();
    unsigned char d1[STS_DIGEST_LEN], d2[STS_DIGEST_LEN], d3[STS_DIGEST_LEN];
    sts_tt_token in = token(1, "n", "r"), out;
    arena a = {.used = 0};

    (void)state;
    digest_of(10, d1);
    digest_of(11, d2);
    digest_of(12, d3);
    sts_table_put(t, d1, &in);
    sts_table_put(t, d2, &in);
    sts_table_new_generation(t);
    sts_table_put(t, d2, &in); /* seen again */
    sts_table_put(t, d3, &in); /* new */
    assert_int_equal(sts_table_sweep(t), 1);
    assert_int_equal(sts_table_get(t, d1, &out, arena_alloc, &a), 0);
    assert_int_equal(sts_table_get(t, d2, &out, arena_alloc, &a), 1);
    assert_int_equal(sts_table_get(t, d3, &out, arena_alloc, &a), 1);
    assert_int_equal(sts_table_sweep(t), 0);
    sts_table_destroy(t);
}

/* A rotation's two entries: the previous secret keeps its end, and the
 * new one's retire flag is taken by one caller only (the first use), given
 * back when retiring failed, and replaced by the next put. */
static void test_rotation_entries_and_the_retire_flag(void **state)
{
    sts_token_table *t = sts_table_create();
    unsigned char cur[STS_DIGEST_LEN], prev[STS_DIGEST_LEN],
        none[STS_DIGEST_LEN];
    sts_tt_token in = token(7, "ci", "r"), out;
    arena a = {.used = 0};

    (void)state;
    digest_of(10, cur);
    digest_of(11, prev);
    digest_of(12, none);
    in.retire = 1;
    assert_int_equal(sts_table_put(t, cur, &in), 0);
    in.retire = 0;
    in.until_ms = 1700000000000;
    assert_int_equal(sts_table_put(t, prev, &in), 0);
    assert_int_equal(sts_table_get(t, prev, &out, arena_alloc, &a), 1);
    assert_true(out.until_ms == 1700000000000);
    assert_int_equal(out.retire, 0);
    assert_int_equal(sts_table_get(t, cur, &out, arena_alloc, &a), 1);
    assert_true(out.until_ms == -1);
    assert_int_equal(out.retire, 1);

    assert_int_equal(sts_table_set_retire(t, cur, 0), 1);
    assert_int_equal(sts_table_set_retire(t, cur, 0), 0);
    assert_int_equal(sts_table_get(t, cur, &out, arena_alloc, &a), 1);
    assert_int_equal(out.retire, 0);
    assert_int_equal(sts_table_set_retire(t, cur, 1), 0);
    assert_int_equal(sts_table_set_retire(t, cur, 0), 1);
    assert_int_equal(sts_table_set_retire(t, none, 0), -1);
    assert_int_equal(sts_table_count(t), 2);
    sts_table_destroy(t);
}

static void test_grows_to_100k_entries(void **state)
{
    sts_token_table *t = sts_table_create();
    unsigned char d[STS_DIGEST_LEN];
    sts_tt_token in = token(0, "service-token-name", "stackstate-admin"), out;
    char idtext[24];
    size_t bytes;
    unsigned i;

    (void)state;
    for (i = 0; i < 100000; i++) {
        digest_of(i, d);
        in.id = i;
        snprintf(idtext, sizeof(idtext), "%u", i);
        in.str[STS_TT_ID_TEXT] = idtext;
        assert_int_equal(sts_table_put(t, d, &in), 0);
    }
    assert_int_equal(sts_table_count(t), 100000);
    for (i = 0; i < 100000; i += 997) {
        arena a = {.used = 0};

        digest_of(i, d);
        assert_int_equal(sts_table_get(t, d, &out, arena_alloc, &a), 1);
        assert_int_equal(out.id, i);
    }
    bytes = sts_table_bytes(t);
    print_message("100000 tokens: %zu bytes, %zu per token\n", bytes,
                  bytes / 100000);
    assert_true(bytes / 100000 < 200);
    for (i = 0; i < 100000; i++) {
        digest_of(i, d);
        assert_int_equal(sts_table_remove(t, d), 1);
    }
    assert_int_equal(sts_table_count(t), 0);
    sts_table_destroy(t);
}

/* Readers look up tokens that stay while writers replace and remove
 * others: every stable token is always found, intact. */
typedef struct {
    sts_token_table *t;
    int writer;
    int failures;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    unsigned char d[STS_DIGEST_LEN];
    sts_tt_token in = token(5, "stable", "r"), out;
    unsigned i;

    for (i = 0; i < 200000; i++) {
        unsigned n = i % 1000;

        if (w->writer) {
            digest_of(1000 + n, d);
            if (i % 3 == 0) {
                sts_table_remove(w->t, d);
            } else {
                sts_table_put(w->t, d, &in);
            }
        } else {
            arena a = {.used = 0};

            digest_of(n, d);
            if (sts_table_get(w->t, d, &out, arena_alloc, &a) != 1 ||
                strcmp(out.str[STS_TT_NAME], "stable") != 0) {
                w->failures++;
            }
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    sts_token_table *t = sts_table_create();
    sts_tt_token in = token(5, "stable", "r");
    unsigned char d[STS_DIGEST_LEN];
    pthread_t th[4];
    worker w[4];
    int i;

    (void)state;
    for (i = 0; i < 1000; i++) {
        digest_of((unsigned)i, d);
        sts_table_put(t, d, &in);
    }
    for (i = 0; i < 4; i++) {
        w[i].t = t;
        w[i].writer = i % 2;
        w[i].failures = 0;
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    sts_table_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_replace_remove),
        cmocka_unit_test(test_the_largest_valid_token_fits),
        cmocka_unit_test(test_too_long_strings_are_not_stored),
        cmocka_unit_test(test_put_if_refuses_answers_older_than_a_change),
        cmocka_unit_test(test_sweep_removes_what_a_generation_did_not_store),
        cmocka_unit_test(test_rotation_entries_and_the_retire_flag),
        cmocka_unit_test(test_grows_to_100k_entries),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
