/*
 * test_sync.c - the synchronisation (src/sync.h) against a fake database
 * (tokens, revision, horizon, change log, failures) and a fake monotonic
 * clock: cold full read, incremental changes (nothing flushed), the trust
 * window (fail closed when the changes cannot be read or the revision row
 * is missing), pruned changes and a revision going backwards, a paged read
 * with changes during it, the periodic read catching changes that bypassed
 * the log, the bound on lookups of unknown digests, stale answers, a full
 * table, two processes sharing one table and its state, and a writer dying
 * in the table.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sync.h"

/* ---- the fake database ---- */

#define MAX_TOKENS 30000
#define MAX_CHANGES 30000

typedef struct {
    unsigned char digest[STS_DIGEST_LEN];
    int64_t id;
    int live;
} fake_token;

static struct {
    fake_token tokens[MAX_TOKENS];
    int ntokens;
    int64_t revision, horizon;
    struct {
        int64_t revision;
        unsigned char digest[STS_DIGEST_LEN];
    } changes[MAX_CHANGES];
    int nchanges;
    int fail;        /* every statement fails */
    int no_revision; /* the sts_token_revision row is missing */
    int statements;
    int warnings;
    int errors;
} db;

static void digest_of(unsigned n, unsigned char d[STS_DIGEST_LEN])
{
    memset(d, 0, STS_DIGEST_LEN);
    /* Big-endian in the first bytes: digest order is number order. */
    d[0] = (unsigned char)(n >> 24);
    d[1] = (unsigned char)(n >> 16);
    d[2] = (unsigned char)(n >> 8);
    d[3] = (unsigned char)n;
    d[31] = 1;
}

static fake_token *find(const unsigned char *d)
{
    int i;

    for (i = 0; i < db.ntokens; i++) {
        if (memcmp(db.tokens[i].digest, d, STS_DIGEST_LEN) == 0) {
            return &db.tokens[i];
        }
    }
    return NULL;
}

static void record(const unsigned char *d)
{
    db.changes[db.nchanges].revision = db.revision;
    memcpy(db.changes[db.nchanges].digest, d, STS_DIGEST_LEN);
    db.nchanges++;
}

/* Creates token n (id n) as a statement would: revision moves, change
 * recorded (unless bypass: a disabled trigger). Tokens are created in
 * number order except where a test says otherwise. */
static void db_create(unsigned n, int bypass)
{
    fake_token *t;
    unsigned char d[STS_DIGEST_LEN];
    int i;

    digest_of(n, d);
    t = find(d);
    if (t == NULL) {
        /* Keep the array sorted by digest (pages read it in order). */
        for (i = db.ntokens;
             i > 0 && memcmp(db.tokens[i - 1].digest, d, STS_DIGEST_LEN) > 0;
             i--) {
            db.tokens[i] = db.tokens[i - 1];
        }
        t = &db.tokens[i];
        db.ntokens++;
    }
    memcpy(t->digest, d, STS_DIGEST_LEN);
    t->id = n;
    t->live = 1;
    if (!bypass) {
        db.revision++;
        record(d);
    }
}

static void db_delete(unsigned n, int bypass)
{
    unsigned char d[STS_DIGEST_LEN];
    fake_token *t;

    digest_of(n, d);
    t = find(d);
    if (t != NULL) {
        t->live = 0;
    }
    if (!bypass) {
        db.revision++;
        record(d);
    }
}

static char names[] = "name";

static void emit(sts_sync_row_fn fn, void *fnctx, const fake_token *t,
                 const unsigned char *d)
{
    sts_tt_token tok;

    if (t == NULL || !t->live) {
        fn(fnctx, d, NULL);
        return;
    }
    tok.id = t->id;
    tok.expiration_ms = -1;
    tok.until_ms = -1;
    tok.retire = 0;
    tok.str[STS_TT_NAME] = names;
    tok.str[STS_TT_ROLES] = "r";
    tok.str[STS_TT_ID_TEXT] = "1";
    tok.str[STS_TT_EXPIRATION_TEXT] = "";
    fn(fnctx, d, &tok);
}

static int fake_changes(void *ctx, int64_t since, sts_sync_row_fn fn,
                        void *fnctx, int64_t *revision, int64_t *horizon)
{
    int i;

    (void)ctx;
    db.statements++;
    if (db.fail) {
        return -1;
    }
    if (db.no_revision) {
        return STS_SYNC_NO_REVISION;
    }
    *revision = db.revision;
    *horizon = db.horizon;
    if (since < db.horizon) {
        return 0;
    }
    for (i = 0; i < db.nchanges; i++) {
        if (db.changes[i].revision > since) {
            emit(fn, fnctx, find(db.changes[i].digest), db.changes[i].digest);
        }
    }
    return 0;
}

static int fake_page(void *ctx, const unsigned char after[STS_DIGEST_LEN],
                     int first, int limit, sts_sync_row_fn fn, void *fnctx,
                     int64_t *revision, int *n)
{
    int i;

    (void)ctx;
    db.statements++;
    *n = 0;
    if (db.fail) {
        return -1;
    }
    if (db.no_revision) {
        return STS_SYNC_NO_REVISION;
    }
    *revision = db.revision;
    for (i = 0; i < db.ntokens && *n < limit; i++) {
        if (!db.tokens[i].live || (!first && memcmp(db.tokens[i].digest, after,
                                                    STS_DIGEST_LEN) <= 0)) {
            continue;
        }
        emit(fn, fnctx, &db.tokens[i], db.tokens[i].digest);
        (*n)++;
    }
    return 0;
}

static void fake_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    if (level == STS_SYNC_LOG_WARN) {
        db.warnings++;
    }
    if (level == STS_SYNC_LOG_ERR) {
        db.errors++;
    }
    if (getenv("TEST_SYNC_VERBOSE")) {
        print_message("log %d: %s\n", level, msg);
    }
}

static const sts_sync_source source = {fake_changes, fake_page, fake_log, NULL};

/* ---- helpers ---- */

static char scratch[1 << 16];
static size_t scratch_used;

static void *scratch_alloc(void *ctx, size_t n)
{
    (void)ctx;
    if (scratch_used + n > sizeof(scratch)) {
        scratch_used = 0;
    }
    scratch_used += n;
    return scratch + scratch_used - n;
}

static sts_token_table *table;
static sts_sync *sync_;

static int setup(void **state)
{
    (void)state;
    memset(&db, 0, sizeof(db));
    table = sts_table_create(MAX_TOKENS);
    sync_ = sts_sync_create(table, NULL, &source, 300000, MAX_TOKENS);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sts_sync_destroy(sync_);
    sts_table_destroy(table);
    return 0;
}

static sts_sync_result lookup(unsigned n, int64_t now)
{
    unsigned char d[STS_DIGEST_LEN];
    sts_tt_token tok;
    uint64_t ticket;

    digest_of(n, d);
    return sts_sync_lookup(sync_, d, now, &tok, scratch_alloc, NULL, &ticket);
}

/* Uses up the lookups of unknown digests allowed at now. */
static void drain_asks(int64_t now)
{
    int i;

    for (i = 0; i < STS_SYNC_ASK_BURST; i++) {
        lookup(999999, now);
    }
}

/* Steps until the synchronisation waits (a full read completes). */
static void settle(int64_t now)
{
    int i;

    for (i = 0; i < 100 && sts_sync_step(sync_, now) == 0; i++) {
    }
}

/* ---- tests ---- */

static void test_cold_read_then_table_answers_alone(void **state)
{
    (void)state;
    db_create(1, 0);
    db_create(2, 0);
    /* Before the first read everything goes to the database. */
    assert_int_equal(lookup(1, 0), STS_SYNC_ASK);
    assert_int_equal(lookup(3, 0), STS_SYNC_ASK);
    settle(0);
    assert_int_equal(db.statements, 2); /* one page, one change read */
    assert_int_equal(lookup(1, 10), STS_SYNC_HIT);
    assert_int_equal(lookup(2, 10), STS_SYNC_HIT);
    drain_asks(10);
    drain_asks(10);
    assert_int_equal(lookup(3, 10), STS_SYNC_UNKNOWN);
}

static void test_changes_apply_one_by_one_nothing_flushed(void **state)
{
    sts_sync_stats st;

    (void)state;
    db_create(1, 0);
    db_create(2, 0);
    settle(0);
    drain_asks(100);
    db_create(3, 0);
    db_delete(1, 0);
    assert_int_equal(sts_sync_step(sync_, STS_SYNC_POLL_MS), STS_SYNC_POLL_MS);
    assert_int_equal(lookup(3, 300), STS_SYNC_HIT);
    drain_asks(300);
    assert_int_equal(lookup(1, 300), STS_SYNC_UNKNOWN);
    assert_int_equal(lookup(2, 300), STS_SYNC_HIT);
    assert_int_equal(sts_table_count(table), 2);
    sts_sync_get_stats(sync_, &st);
    assert_int_equal(st.changes, 2);
    assert_int_equal(st.full_reads, 1);
    /* A quiet database: one statement per poll, nothing applied. */
    db.statements = 0;
    sts_sync_step(sync_, 2 * STS_SYNC_POLL_MS);
    sts_sync_step(sync_, 3 * STS_SYNC_POLL_MS);
    assert_int_equal(db.statements, 2);
    sts_sync_get_stats(sync_, &st);
    assert_int_equal(st.changes, 2);
}

static void test_trust_window_and_fail_closed(void **state)
{
    (void)state;
    db_create(1, 0);
    settle(1000);
    assert_int_equal(lookup(1, 1000 + STS_SYNC_TRUST_MS - 1), STS_SYNC_HIT);
    /* No successful read for a whole window: the database decides. */
    assert_int_equal(lookup(1, 1000 + STS_SYNC_TRUST_MS), STS_SYNC_ASK);
    db.fail = 1;
    sts_sync_step(sync_, 1500);
    sts_sync_step(sync_, 1750);
    assert_int_equal(db.warnings, 1);
    assert_int_equal(lookup(1, 2600), STS_SYNC_ASK);
    assert_int_equal(lookup(7, 2600), STS_SYNC_ASK);
    db.fail = 0;
    sts_sync_step(sync_, 2700);
    assert_int_equal(lookup(1, 2700), STS_SYNC_HIT);
}

static void test_missing_revision_row_distrusts_the_table(void **state)
{
    (void)state;
    db_create(1, 0);
    settle(0);
    assert_int_equal(lookup(1, 100), STS_SYNC_HIT);
    db.no_revision = 1;
    sts_sync_step(sync_, 300);
    sts_sync_step(sync_, 600);
    sts_sync_step(sync_, 900);
    assert_int_equal(lookup(1, 1000), STS_SYNC_ASK);
    drain_asks(1000);
    assert_int_equal(lookup(5, 1000), STS_SYNC_ASK);
    /* Said once, not at every read. */
    assert_int_equal(db.errors, 1);
    assert_int_equal(db.warnings, 0);
    /* Back, with a token deleted meanwhile that no change records: read
     * again in full before the table answers. */
    db.no_revision = 0;
    db_delete(1, 1);
    db_create(2, 1);
    settle(1200);
    drain_asks(1200);
    assert_int_equal(lookup(1, 1200), STS_SYNC_UNKNOWN);
    assert_int_equal(lookup(2, 1200), STS_SYNC_HIT);
}

static void test_trust_follows_the_monotonic_clock_only(void **state)
{
    (void)state;
    /* The caller's clock is all the synchronisation knows: a step at 10 s
     * vouches until 11 s, whatever the wall clock does meanwhile; a clock
     * that went back (impossible for a monotonic one) grants nothing
     * beyond the window either. */
    db_create(1, 0);
    settle(10000);
    assert_int_equal(lookup(1, 10999), STS_SYNC_HIT);
    assert_int_equal(lookup(1, 11000), STS_SYNC_ASK);
    /* Poll schedule: not due before STS_SYNC_POLL_MS. */
    db.statements = 0;
    assert_int_equal(sts_sync_step(sync_, 10100), STS_SYNC_POLL_MS - 100);
    assert_int_equal(db.statements, 0);
}

static void
test_pruned_changes_or_backwards_revision_read_all_again(void **state)
{
    (void)state;
    db_create(1, 0);
    db_create(2, 0);
    settle(0);
    /* Token 2 deleted, and the change pruned before this host read it. */
    db_delete(2, 0);
    db_create(3, 0);
    db.horizon = db.revision;
    db.nchanges = 0;
    sts_sync_step(sync_, 300);
    /* Not trusted until the full read completes. */
    assert_int_equal(lookup(1, 300), STS_SYNC_ASK);
    settle(300);
    drain_asks(300);
    drain_asks(300);
    assert_int_equal(lookup(2, 300), STS_SYNC_UNKNOWN);
    assert_int_equal(lookup(3, 300), STS_SYNC_HIT);
    /* A restored database: its revision went back. */
    db.revision = 1;
    db.horizon = 0;
    db_delete(3, 1);
    sts_sync_step(sync_, 600);
    assert_int_equal(lookup(1, 600), STS_SYNC_ASK);
    settle(600);
    drain_asks(600);
    assert_int_equal(lookup(3, 600), STS_SYNC_UNKNOWN);
    assert_int_equal(lookup(1, 600), STS_SYNC_HIT);
}

static void test_paged_read_with_changes_during_it(void **state)
{
    unsigned n;
    int steps = 0;

    (void)state;
    for (n = 0; n < 25000; n += 1) {
        db_create(n * 2, 1); /* bulk-loaded: no change records */
    }
    /* First page: 10000 tokens, not trusted yet. */
    assert_int_equal(sts_sync_step(sync_, 0), 0);
    assert_int_equal(lookup(2, 0), STS_SYNC_ASK);
    /* Meanwhile: a token deleted from the part already read, one created
     * there, one deleted from the part still to read. */
    db_delete(10, 0);
    db_create(11, 0);
    db_delete(40000, 0);
    while (sts_sync_step(sync_, 0) == 0) {
        steps++;
    }
    assert_int_equal(steps, 1); /* pages 2 and 3 (the last, short) */
    drain_asks(0);
    drain_asks(0);
    assert_int_equal(lookup(10, 0), STS_SYNC_UNKNOWN);
    assert_int_equal(lookup(11, 0), STS_SYNC_HIT);
    drain_asks(0);
    assert_int_equal(lookup(40000, 0), STS_SYNC_UNKNOWN);
    assert_int_equal(lookup(49998, 0), STS_SYNC_HIT);
    assert_int_equal(sts_table_count(table), 25000 - 2 + 1);
}

static void test_periodic_read_catches_bypassed_deletes(void **state)
{
    sts_sync_destroy(sync_);
    sync_ = sts_sync_create(table, NULL, &source, 5000, MAX_TOKENS);
    (void)state;
    db_create(1, 0);
    db_create(2, 0);
    settle(0);
    db_delete(2, 1); /* trigger disabled: no change recorded */
    sts_sync_step(sync_, 300);
    assert_int_equal(lookup(2, 300), STS_SYNC_HIT);
    settle(5000);
    drain_asks(5000);
    drain_asks(5000);
    assert_int_equal(lookup(2, 5000), STS_SYNC_UNKNOWN);
    assert_int_equal(lookup(1, 5000), STS_SYNC_HIT);
    assert_int_equal(db.warnings, 1);
}

static void test_unknown_digests_asked_at_a_bounded_rate(void **state)
{
    sts_sync_stats st;
    int asks = 0, i;

    (void)state;
    settle(0);
    for (i = 0; i < 1000; i++) {
        asks += lookup(100 + i, 0) == STS_SYNC_ASK;
    }
    assert_int_equal(asks, STS_SYNC_ASK_BURST);
    /* Half a second later: half a second's worth. */
    sts_sync_step(sync_, 500);
    for (i = 0, asks = 0; i < 1000; i++) {
        asks += lookup(100 + i, 500) == STS_SYNC_ASK;
    }
    assert_int_equal(asks, STS_SYNC_ASK_PER_SEC / 2);
    sts_sync_get_stats(sync_, &st);
    assert_int_equal(st.asks, STS_SYNC_ASK_BURST + STS_SYNC_ASK_PER_SEC / 2);
    assert_int_equal(st.refused, 2000 - st.asks);
}

/* A token of id n as the database would return it. */
static void row_of(unsigned n, sts_tt_token *tok)
{
    static char id[16];

    snprintf(id, sizeof(id), "%u", n);
    tok->id = n;
    tok->expiration_ms = -1;
    tok->until_ms = -1;
    tok->retire = 0;
    tok->str[STS_TT_NAME] = "n";
    tok->str[STS_TT_ROLES] = "r";
    tok->str[STS_TT_ID_TEXT] = id;
    tok->str[STS_TT_EXPIRATION_TEXT] = "";
}

/* Token id, looked up with ticket, is deleted and the deletion applied
 * before the request stores the row it read: the table does not keep it. */
static void deleted_before_stored(unsigned id, const unsigned char *d,
                                  uint64_t ticket)
{
    sts_tt_token row;

    db_delete(id, 0);
    sts_sync_step(sync_, 300);
    row_of(id, &row);
    sts_sync_learned(sync_, d, &row, ticket);
    drain_asks(300);
    assert_int_equal(lookup(id, 300), STS_SYNC_UNKNOWN);
}

static void
test_answers_older_than_an_applied_change_are_not_stored(void **state)
{
    unsigned char d[STS_DIGEST_LEN];
    sts_tt_token tok;
    uint64_t ticket;

    (void)state;
    db_create(1, 0);
    settle(0);
    drain_asks(0);
    /* A request looks token 5 up (ticket), the database has it, then it is
     * deleted and the deletion applied before the request stores it. */
    db_create(5, 0);
    digest_of(5, d);
    ticket = sts_sync_ticket(sync_);
    deleted_before_stored(5, d, ticket);
    row_of(5, &tok);
    /* A fresh ticket stores (a token this process created). */
    sts_sync_learned(sync_, d, &tok, sts_sync_ticket(sync_));
    assert_int_equal(lookup(5, 300), STS_SYNC_HIT);
    sts_sync_forget(sync_, d);
    drain_asks(300);
    assert_int_equal(lookup(5, 300), STS_SYNC_UNKNOWN);
}

/* The ticket a lookup gives when the database is to be asked (what a
 * request stores its answer with) stores that answer when nothing changed
 * since, and not when a change was applied after it. */
static void test_the_ticket_of_an_ask_guards_its_answer(void **state)
{
    unsigned char d[STS_DIGEST_LEN];
    sts_tt_token tok, row;
    uint64_t ticket = 0;

    (void)state;
    db_create(1, 0);
    settle(0);
    /* Token 6 is in the database, not yet in the table. */
    db_create(6, 0);
    digest_of(6, d);
    assert_int_equal(
        sts_sync_lookup(sync_, d, 100, &tok, scratch_alloc, NULL, &ticket),
        STS_SYNC_ASK);
    row_of(6, &row);
    sts_sync_learned(sync_, d, &row, ticket);
    assert_int_equal(lookup(6, 100), STS_SYNC_HIT);
    /* Token 7: asked, then deleted and the deletion applied before the
     * answer is stored. */
    db_create(7, 0);
    digest_of(7, d);
    assert_int_equal(
        sts_sync_lookup(sync_, d, 100, &tok, scratch_alloc, NULL, &ticket),
        STS_SYNC_ASK);
    deleted_before_stored(7, d, ticket);
}

static void test_database_larger_than_the_bound_is_not_kept(void **state)
{
    (void)state;
    sts_sync_destroy(sync_);
    sync_ = sts_sync_create(table, NULL, &source, 5000, 2);
    db_create(1, 0);
    db_create(2, 0);
    settle(0);
    assert_int_equal(lookup(1, 10), STS_SYNC_HIT);
    db_create(3, 0);
    sts_sync_step(sync_, 300);
    /* Over the bound: emptied, every lookup to the database. */
    assert_int_equal(sts_table_count(table), 0);
    assert_int_equal(lookup(1, 300), STS_SYNC_ASK);
    drain_asks(300);
    assert_int_equal(lookup(9, 300), STS_SYNC_ASK);
    /* Retried after the reload period; fits again once a token went. */
    db_delete(3, 0);
    db.statements = 0;
    assert_int_equal(sts_sync_step(sync_, 1000), 4300);
    assert_int_equal(db.statements, 0);
    settle(5300);
    assert_int_equal(lookup(1, 5300), STS_SYNC_HIT);
}

static void test_failed_page_read_waits_before_retrying(void **state)
{
    (void)state;
    db_create(1, 0);
    db.fail = 1;
    assert_int_equal(sts_sync_step(sync_, 0), STS_SYNC_POLL_MS);
    assert_int_equal(sts_sync_step(sync_, 100), STS_SYNC_POLL_MS - 100);
    assert_int_equal(db.statements, 1);
    db.fail = 0;
    settle(STS_SYNC_POLL_MS);
    assert_int_equal(lookup(1, STS_SYNC_POLL_MS), STS_SYNC_HIT);
}

static void test_full_table_is_not_kept(void **state)
{
    (void)state;
    sts_sync_destroy(sync_);
    sts_table_destroy(table);
    table = sts_table_create(2);
    sync_ = sts_sync_create(table, NULL, &source, 5000, MAX_TOKENS);
    db_create(1, 0);
    db_create(2, 0);
    settle(0);
    assert_int_equal(lookup(1, 10), STS_SYNC_HIT);
    db_create(3, 0);
    sts_sync_step(sync_, 300);
    assert_int_equal(sts_table_count(table), 0);
    assert_int_equal(lookup(1, 300), STS_SYNC_ASK);
    assert_int_equal(db.errors, 1);
}

/* Two processes: each its own synchronisation (and source), one table and
 * one shared state. */
static void test_processes_share_the_reads_trust_and_budget(void **state)
{
    sts_sync_shared *shared = malloc(sts_sync_shared_size());
    sts_sync *a, *b;
    unsigned char d[STS_DIGEST_LEN];
    sts_tt_token tok;
    uint64_t ticket;
    int asks = 0, i;

    (void)state;
    sts_sync_shared_init(shared);
    a = sts_sync_create(table, shared, &source, 300000, MAX_TOKENS);
    b = sts_sync_create(table, shared, &source, 300000, MAX_TOKENS);
    db_create(1, 0);
    for (i = 0; i < 10 && sts_sync_step(a, 0) == 0; i++) {
    }
    assert_int_equal(db.statements, 2);
    /* b answers from what a read, without a statement of its own. */
    digest_of(1, d);
    assert_int_equal(
        sts_sync_lookup(b, d, 10, &tok, scratch_alloc, NULL, &ticket),
        STS_SYNC_HIT);
    assert_int_equal(sts_sync_step(b, 100), STS_SYNC_POLL_MS - 100);
    assert_int_equal(db.statements, 2);
    /* Whichever steps when a read is due makes it, once. */
    db_create(2, 0);
    sts_sync_step(b, STS_SYNC_POLL_MS);
    sts_sync_step(a, STS_SYNC_POLL_MS + 10);
    assert_int_equal(db.statements, 3);
    digest_of(2, d);
    assert_int_equal(sts_sync_lookup(a, d, STS_SYNC_POLL_MS + 10, &tok,
                                     scratch_alloc, NULL, &ticket),
                     STS_SYNC_HIT);
    /* The budget of lookups of unknown digests is one for both. */
    for (i = 0; i < 100; i++) {
        digest_of(5000 + i, d);
        asks += sts_sync_lookup(i % 2 ? a : b, d, 300, &tok, scratch_alloc,
                                NULL, &ticket) == STS_SYNC_ASK;
    }
    assert_int_equal(asks, STS_SYNC_ASK_BURST);
    sts_sync_destroy(a);
    sts_sync_destroy(b);
    free(shared);
}

static void *die_holding_the_lock(void *arg)
{
    /* The thread ends holding the writers' lock, as a process that
     * crashed in the middle of a write. */
    sts_table_lock(arg);
    return NULL;
}

static int no_lock(void *ctx)
{
    (void)ctx;
    return 0;
}

static void no_unlock(void *ctx)
{
    (void)ctx;
}

static void test_writer_dying_in_the_table_reads_all_again(void **state)
{
    sts_tt_lock lock = {no_lock, no_unlock, NULL};
    void *mem = calloc(1, sts_table_mem_size(100) + 64);
    void *aligned = (void *)(((uintptr_t)mem + 63) & ~(uintptr_t)63);
    sts_token_table *t;
    pthread_t th;

    (void)state;
    sts_sync_destroy(sync_);
    sts_table_format(aligned, 100);
    t = sts_table_attach(aligned, &lock);
    sync_ = sts_sync_create(t, NULL, &source, 300000, MAX_TOKENS);
    db_create(1, 0);
    db_create(2, 0);
    settle(0);
    assert_int_equal(lookup(1, 10), STS_SYNC_HIT);
    pthread_create(&th, NULL, die_holding_the_lock, t);
    pthread_join(th, NULL);
    /* The next write (a change applied) empties the table: from then on
     * every token is looked up, until the step has read it all again. */
    db_create(3, 0);
    sts_sync_step(sync_, STS_SYNC_POLL_MS);
    assert_int_equal(sts_table_resets(t), 1);
    assert_int_equal(lookup(1, STS_SYNC_POLL_MS), STS_SYNC_ASK);
    db.statements = 0;
    settle(STS_SYNC_POLL_MS + 10);
    assert_int_equal(db.statements, 2); /* a page and a change read */
    assert_int_equal(lookup(1, STS_SYNC_POLL_MS + 20), STS_SYNC_HIT);
    assert_int_equal(lookup(3, STS_SYNC_POLL_MS + 20), STS_SYNC_HIT);
    assert_int_equal(sts_table_count(t), 3);
    sts_sync_destroy(sync_);
    sync_ = sts_sync_create(table, NULL, &source, 300000, MAX_TOKENS);
    sts_table_detach(t);
    free(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cold_read_then_table_answers_alone,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_changes_apply_one_by_one_nothing_flushed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trust_window_and_fail_closed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_missing_revision_row_distrusts_the_table, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_trust_follows_the_monotonic_clock_only, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_pruned_changes_or_backwards_revision_read_all_again, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_paged_read_with_changes_during_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_periodic_read_catches_bypassed_deletes, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_unknown_digests_asked_at_a_bounded_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_the_ticket_of_an_ask_guards_its_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_answers_older_than_an_applied_change_are_not_stored, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_database_larger_than_the_bound_is_not_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_failed_page_read_waits_before_retrying, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_table_is_not_kept, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_processes_share_the_reads_trust_and_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_writer_dying_in_the_table_reads_all_again, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
