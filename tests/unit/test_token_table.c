/*
 * test_token_table.c - the set of valid digests (src/token_table.h):
 * store, replace, look up, remove, tickets, generations and sweep, 100,000
 * entries with their memory, the capacity and string space bounds, threads
 * reading while others write, a table shared by forked processes, and a
 * writer that dies holding the lock.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

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
    sts_token_table *t = sts_table_create(1000);
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
    sts_token_table *t = sts_table_create(1000);
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
    sts_token_table *t = sts_table_create(1000);
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
    sts_token_table *t = sts_table_create(1000);
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
    sts_token_table *t = sts_table_create(1000);
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
 * back when retiring failed, kept taken when the same digest is stored
 * again (the synchronisation applying the rotation), cleared by a put
 * without it. */
static void test_rotation_entries_and_the_retire_flag(void **state)
{
    sts_token_table *t = sts_table_create(100);
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

    assert_int_equal(sts_table_take_retire(t, cur), 1);
    assert_int_equal(sts_table_take_retire(t, cur), 0);
    assert_int_equal(sts_table_get(t, cur, &out, arena_alloc, &a), 1);
    assert_int_equal(out.retire, 0);
    /* Stored again with the flag (the change log's copy of the rotation):
     * still taken. */
    in = token(7, "ci", "r");
    in.retire = 1;
    assert_int_equal(sts_table_put(t, cur, &in), 0);
    assert_int_equal(sts_table_take_retire(t, cur), 0);
    assert_int_equal(sts_table_get(t, cur, &out, arena_alloc, &a), 1);
    assert_int_equal(out.retire, 0);
    /* Retiring failed: the next use takes it. */
    sts_table_return_retire(t, cur);
    assert_int_equal(sts_table_get(t, cur, &out, arena_alloc, &a), 1);
    assert_int_equal(out.retire, 1);
    assert_int_equal(sts_table_take_retire(t, cur), 1);
    /* The database says the previous secret is retired. */
    in.retire = 0;
    assert_int_equal(sts_table_put(t, cur, &in), 0);
    sts_table_return_retire(t, cur);
    assert_int_equal(sts_table_take_retire(t, cur), 0);
    assert_int_equal(sts_table_take_retire(t, prev), 0);
    assert_int_equal(sts_table_take_retire(t, none), -1);
    assert_int_equal(sts_table_count(t), 2);
    sts_table_destroy(t);
}

static void test_holds_100k_entries(void **state)
{
    sts_token_table *t = sts_table_create(100000);
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
    /* 192 per entry, 4 or 8 per token of index (a power of two). */
    assert_true(bytes / 100000 < 210);
    assert_true(sts_table_mem_size(100000) / 100000 < 240);
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
    sts_token_table *t = sts_table_create(1000);
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

static void test_full_table_refuses_new_tokens(void **state)
{
    sts_token_table *t = sts_table_create(3);
    unsigned char d[STS_DIGEST_LEN];
    sts_tt_token in = token(1, "n", "r");
    unsigned i;

    (void)state;
    for (i = 0; i < 3; i++) {
        digest_of(i, d);
        assert_int_equal(sts_table_put(t, d, &in), 0);
    }
    digest_of(3, d);
    assert_int_equal(sts_table_put(t, d, &in), -2);
    digest_of(1, d); /* replacing needs no room */
    assert_int_equal(sts_table_put(t, d, &in), 0);
    assert_int_equal(sts_table_remove(t, d), 1);
    digest_of(3, d);
    assert_int_equal(sts_table_put(t, d, &in), 0);
    assert_int_equal(sts_table_count(t), 3);
    assert_int_equal(sts_table_capacity(t), 3);
    sts_table_destroy(t);
}

static void test_string_space_is_bounded_and_reused(void **state)
{
    sts_token_table *t = sts_table_create(2);
    unsigned char d1[STS_DIGEST_LEN], d2[STS_DIGEST_LEN];
    char *roles = malloc(8000);
    sts_tt_token in, out;
    static arena a;
    size_t before;

    (void)state;
    memset(roles, 'r', 7999);
    roles[7999] = '\0';
    in = token(1, "long", roles);
    digest_of(1, d1);
    digest_of(2, d2);
    before = sts_table_bytes(t);
    assert_int_equal(sts_table_put(t, d1, &in), 0);
    assert_true(sts_table_bytes(t) > before + 8000);
    /* A second token that long does not fit in a table of 2. */
    assert_int_equal(sts_table_put(t, d2, &in), -1);
    assert_int_equal(sts_table_put(t, d1, &in), 0); /* its own chunks back */
    assert_int_equal(sts_table_remove(t, d1), 1);
    assert_int_equal(sts_table_bytes(t), before);
    assert_int_equal(sts_table_put(t, d2, &in), 0);
    a.used = 0;
    assert_int_equal(sts_table_get(t, d2, &out, arena_alloc, &a), 1);
    assert_string_equal(out.str[STS_TT_ROLES], roles);
    assert_string_equal(out.str[STS_TT_ID_TEXT], "42");
    free(roles);
    sts_table_destroy(t);
}

/* The writers' lock of the processes sharing a table: a robust
 * process-shared mutex, released by the kernel when its holder dies. */
static int robust_lock(void *ctx)
{
    int rc = pthread_mutex_lock(ctx);

    if (rc == EOWNERDEAD) {
        pthread_mutex_consistent(ctx);
        rc = 0;
    }
    return rc;
}

static void robust_unlock(void *ctx)
{
    pthread_mutex_unlock(ctx);
}

typedef struct {
    pthread_mutex_t mutex;
    char pad[64 - sizeof(pthread_mutex_t) % 64];
} shared_lock;

/* A table in shared memory, as httpd's parent makes it. */
static void *shared_table(size_t capacity, sts_tt_lock *lock)
{
    size_t size = sizeof(shared_lock) + sts_table_mem_size(capacity);
    char *mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    shared_lock *l = (shared_lock *)mem;
    pthread_mutexattr_t attr;

    assert_true(mem != MAP_FAILED);
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&l->mutex, &attr);
    pthread_mutexattr_destroy(&attr);
    lock->lock = robust_lock;
    lock->unlock = robust_unlock;
    lock->ctx = &l->mutex;
    sts_table_format(mem + sizeof(shared_lock), capacity);
    return mem;
}

static int wait_child(pid_t pid)
{
    int st = 0;

    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_shared_between_processes(void **state)
{
    sts_tt_lock lock;
    char *mem = shared_table(1000, &lock);
    sts_token_table *t = sts_table_attach(mem + sizeof(shared_lock), &lock);
    unsigned char d[STS_DIGEST_LEN];
    sts_tt_token in = token(7, "from-child", "r"), out;
    arena a = {.used = 0};
    pid_t pid;
    unsigned i;

    (void)state;
    pid = fork();
    if (pid == 0) {
        sts_token_table *c = sts_table_attach(mem + sizeof(shared_lock), &lock);

        for (i = 0; i < 100; i++) {
            digest_of(i, d);
            if (sts_table_put(c, d, &in) != 0) {
                _exit(1);
            }
        }
        _exit(0);
    }
    assert_int_equal(wait_child(pid), 0);
    /* Stored by the other process, read here without copying anything. */
    assert_int_equal(sts_table_count(t), 100);
    digest_of(42, d);
    assert_int_equal(sts_table_get(t, d, &out, arena_alloc, &a), 1);
    assert_string_equal(out.str[STS_TT_NAME], "from-child");
    assert_int_equal(sts_table_remove(t, d), 1);
    pid = fork();
    if (pid == 0) {
        sts_token_table *c = sts_table_attach(mem + sizeof(shared_lock), &lock);

        _exit(sts_table_get(c, d, &out, arena_alloc, &a) == 0 ? 0 : 1);
    }
    assert_int_equal(wait_child(pid), 0);
    sts_table_detach(t);
    munmap(mem, sizeof(shared_lock) + sts_table_mem_size(1000));
}

/* Processes racing for a rotated token's retire flag: one of them takes
 * it. */
static void test_one_process_takes_the_retire_flag(void **state)
{
    enum { CHILDREN = 8 };
    sts_tt_lock lock;
    char *mem = shared_table(100, &lock);
    sts_token_table *t = sts_table_attach(mem + sizeof(shared_lock), &lock);
    unsigned char d[STS_DIGEST_LEN];
    sts_tt_token in = token(7, "rotated", "r");
    pid_t pid[CHILDREN];
    int i, took = 0;

    (void)state;
    digest_of(5, d);
    in.retire = 1;
    assert_int_equal(sts_table_put(t, d, &in), 0);
    for (i = 0; i < CHILDREN; i++) {
        pid[i] = fork();
        if (pid[i] == 0) {
            sts_token_table *c =
                sts_table_attach(mem + sizeof(shared_lock), &lock);

            _exit(sts_table_take_retire(c, d) == 1 ? 0 : 2);
        }
    }
    for (i = 0; i < CHILDREN; i++) {
        int rc = wait_child(pid[i]);

        assert_true(rc == 0 || rc == 2);
        took += rc == 0;
    }
    assert_int_equal(took, 1);
    assert_int_equal(sts_table_take_retire(t, d), 0);
    sts_table_detach(t);
    munmap(mem, sizeof(shared_lock) + sts_table_mem_size(100));
}

static void test_writer_dying_mid_write_empties_the_table(void **state)
{
    sts_tt_lock lock;
    char *mem = shared_table(1000, &lock);
    sts_token_table *t = sts_table_attach(mem + sizeof(shared_lock), &lock);
    unsigned char d[STS_DIGEST_LEN], d2[STS_DIGEST_LEN];
    sts_tt_token in = token(7, "n", "r"), out;
    arena a = {.used = 0};
    pid_t pid;

    (void)state;
    digest_of(1, d);
    digest_of(2, d2);
    assert_int_equal(sts_table_put(t, d, &in), 0);
    pid = fork();
    if (pid == 0) {
        sts_token_table *c = sts_table_attach(mem + sizeof(shared_lock), &lock);

        /* Dies holding the lock, as a crash in the middle of a write. */
        _exit(sts_table_lock(c) == 0 ? 0 : 1);
    }
    assert_int_equal(wait_child(pid), 0);
    assert_int_equal(sts_table_resets(t), 0);
    /* Readers still answer; the next writer empties the table. */
    assert_int_equal(sts_table_get(t, d, &out, arena_alloc, &a), 1);
    assert_int_equal(sts_table_put(t, d2, &in), 0);
    assert_int_equal(sts_table_resets(t), 1);
    assert_int_equal(sts_table_count(t), 1);
    assert_int_equal(sts_table_get(t, d, &out, arena_alloc, &a), 0);
    assert_int_equal(sts_table_get(t, d2, &out, arena_alloc, &a), 1);
    /* A writer that finished cleanly leaves nothing to empty. */
    assert_int_equal(sts_table_remove(t, d2), 1);
    assert_int_equal(sts_table_resets(t), 1);
    sts_table_detach(t);
    munmap(mem, sizeof(shared_lock) + sts_table_mem_size(1000));
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
        cmocka_unit_test(test_holds_100k_entries),
        cmocka_unit_test(test_full_table_refuses_new_tokens),
        cmocka_unit_test(test_string_space_is_bounded_and_reused),
        cmocka_unit_test(test_shared_between_processes),
        cmocka_unit_test(test_one_process_takes_the_retire_flag),
        cmocka_unit_test(test_writer_dying_mid_write_empties_the_table),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
