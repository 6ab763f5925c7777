/*
 * test_cache.c - unit tests of the verified-token cache (src/cache.c)
 * without httpd: the cache is compiled into this program with a fake clock,
 * a fake database (revision counter and sts_tokens rows), and the two logging
 * functions it calls. Build flags come from mk/bench.mk (httpd and APR
 * headers, libapr).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <pthread.h>

#include <cmocka.h>

#include "apr_hash.h"
#include "apr_time.h"

/* The monotonic clock (intervals) and the wall clock (expirations). */
static apr_time_t fake_now;
static apr_time_t fake_wall;
#define STS_CACHE_NOW() __atomic_load_n(&fake_now, __ATOMIC_RELAXED)
#define STS_CACHE_WALL_NOW() __atomic_load_n(&fake_wall, __ATOMIC_RELAXED)

#include "../../src/cache.c"

/* ---- what httpd and store.c would provide ---- */

module AP_MODULE_DECLARE_DATA sts_token_module; /* module_index 0 */

/* status.c's side: the cache reports its size and good polls. */
static long cached_count;
static int64_t polled_revision;

void sts_status_cached_add(int delta)
{
    __atomic_add_fetch(&cached_count, delta, __ATOMIC_RELAXED);
}

void sts_status_poll_ok(apr_time_t started, int64_t revision)
{
    (void)started;
    polled_revision = revision;
}

static int64_t fake_revision;
static int fake_db_up = 1;
static int fake_revision_row = 1; /* 0: sts_token_revision has no row */
static int errors;
static int revision_reads;
static int warnings;

/* While hold_polls is set, a revision read blocks until it is cleared:
 * a poll in flight. poll_entered counts reads that reached the hold. */
static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static int hold_polls;
static int poll_entered;

/* Sets or clears the hold on revision reads. */
static void hold(int on)
{
    pthread_mutex_lock(&hold_mu);
    hold_polls = on;
    pthread_cond_broadcast(&hold_cv);
    pthread_mutex_unlock(&hold_mu);
}

/* Waits until a revision read is blocked in the hold. */
static void wait_poll_entered(void)
{
    pthread_mutex_lock(&hold_mu);
    while (poll_entered == 0) {
        pthread_cond_wait(&hold_cv, &hold_mu);
    }
    pthread_mutex_unlock(&hold_mu);
}

/* The fake sts_tokens: digest (hex) -> row, filled by db_set. */
static pthread_mutex_t db_mu = PTHREAD_MUTEX_INITIALIZER;
static apr_hash_t *fake_db;
static int polled_digests; /* digests the polls asked about */
static int last_poll_digests;

/* The database's revision counter and the rows of the digests asked about,
 * or a failure while "down". */
apr_status_t sts_store_poll(request_rec *r, const char *const *digest_hex,
                            int n, sts_token_row **rows, int64_t *revision)
{
    int i;

    (void)r;
    pthread_mutex_lock(&hold_mu);
    if (hold_polls) {
        poll_entered++;
        pthread_cond_broadcast(&hold_cv);
        while (hold_polls) {
            pthread_cond_wait(&hold_cv, &hold_mu);
        }
    }
    pthread_mutex_unlock(&hold_mu);
    __atomic_add_fetch(&revision_reads, 1, __ATOMIC_RELAXED);
    if (!__atomic_load_n(&fake_db_up, __ATOMIC_RELAXED)) {
        return APR_EGENERAL;
    }
    if (!__atomic_load_n(&fake_revision_row, __ATOMIC_RELAXED)) {
        return APR_NOTFOUND;
    }
    pthread_mutex_lock(&db_mu);
    for (i = 0; i < n; i++) {
        assert_int_equal(strlen(digest_hex[i]), STS_DIGEST_HEX_LEN);
        rows[i] = apr_hash_get(fake_db, digest_hex[i], STS_DIGEST_HEX_LEN);
    }
    polled_digests += n;
    last_poll_digests = n;
    pthread_mutex_unlock(&db_mu);
    *revision = __atomic_load_n(&fake_revision, __ATOMIC_RELAXED);
    return APR_SUCCESS;
}

/* Counts warnings; the text is not needed. */
void ap_log_rerror_(const char *file, int line, int module_index, int level,
                    apr_status_t status, const request_rec *r, const char *fmt,
                    ...)
{
    (void)file;
    (void)line;
    (void)module_index;
    (void)status;
    (void)r;
    (void)fmt;
    if ((level & APLOG_LEVELMASK) == APLOG_WARNING) {
        __atomic_add_fetch(&warnings, 1, __ATOMIC_RELAXED);
    }
    if ((level & APLOG_LEVELMASK) == APLOG_ERR) {
        __atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
    }
}

/* Server-level messages (allocation failures) are not expected. */
void ap_log_error_(const char *file, int line, int module_index, int level,
                   apr_status_t status, const server_rec *s, const char *fmt,
                   ...)
{
    (void)file;
    (void)line;
    (void)module_index;
    (void)level;
    (void)status;
    (void)s;
    (void)fmt;
    fail_msg("unexpected server-level log message");
}

/* ---- fixture ---- */

typedef struct {
    apr_pool_t *pool;
    server_rec server;
    request_rec req;
    sts_db db;
    sts_server_conf conf;
    void *confs[1];
    struct ap_logconf log;
} world;

static world W;

/* store.c's: every request of the test uses the one database. */
sts_db *sts_request_db(const request_rec *r)
{
    (void)r;
    return &W.db;
}

/* Creates a process cache with the given directives' values. */
static void start_cache(int ttl, int entries)
{
    memset(&W, 0, sizeof(W));
    assert_int_equal(apr_pool_create(&W.pool, NULL), APR_SUCCESS);
    W.conf.cache_ttl = ttl;
    W.conf.cache_entries = entries;
    W.confs[0] = &W.conf;
    W.server.module_config = (ap_conf_vector_t *)W.confs;
    W.log.level = APLOG_TRACE8;
    W.server.log.level = APLOG_TRACE8;
    W.req.pool = W.pool;
    W.req.server = &W.server;
    W.req.log = &W.log;
    fake_now = apr_time_from_sec(1000000);
    fake_wall = apr_time_from_sec(1796000000);
    fake_revision = 1;
    fake_db_up = 1;
    fake_revision_row = 1;
    cached_count = 0;
    polled_revision = 0;
    revision_reads = 0;
    warnings = 0;
    errors = 0;
    hold_polls = 0;
    poll_entered = 0;
    fake_db = apr_hash_make(W.pool);
    polled_digests = 0;
    last_poll_digests = 0;
    W.conf.db = &W.db;
    W.conf.dbs = &W.db;
    W.db.server = &W.server;
    sts_cache_child_init(W.pool, &W.server, &W.db);
}

/* Destroys the process pool (and with it the cache). */
static int stop_cache(void **state)
{
    (void)state;
    apr_pool_destroy(W.pool);
    assert_null(W.db.cache);
    return 0;
}

/* A realistic digest for key k, optionally forced into one shard. */
static void digest_of(unsigned k, int shard, unsigned char d[STS_DIGEST_LEN])
{
    char buf[32];

    snprintf(buf, sizeof(buf), "token-%u", k);
    assert_int_equal(0, sts_token_digest(buf, strlen(buf), d));
    if (shard >= 0) {
        d[0] = (unsigned char)shard;
    }
}

/* Sets k's row in the fake database (name NULL: deletes it), as a change
 * that bypasses the revision trigger would: fake_revision does not move. */
static void db_set(unsigned k, const char *name, const char *roles, int64_t tid)
{
    unsigned char d[STS_DIGEST_LEN];
    char *hex = apr_palloc(W.pool, STS_DIGEST_HEX_LEN + 1);
    sts_token_row *t = NULL;

    digest_of(k, -1, d);
    sts_digest_to_hex(d, hex);
    if (name != NULL) {
        t = apr_pcalloc(W.pool, sizeof(*t));
        t->id = tid;
        t->name = apr_pstrdup(W.pool, name);
        t->roles = apr_pstrdup(W.pool, roles);
        t->expiration_ms = -1;
    }
    pthread_mutex_lock(&db_mu);
    apr_hash_set(fake_db, hex, STS_DIGEST_HEX_LEN, t);
    pthread_mutex_unlock(&db_mu);
}

/* Moves the fake clock by ms milliseconds. */
static void advance_ms(long ms)
{
    __atomic_add_fetch(&fake_now, apr_time_from_msec(ms), __ATOMIC_RELAXED);
    __atomic_add_fetch(&fake_wall, apr_time_from_msec(ms), __ATOMIC_RELAXED);
}

/* Looks k up; returns the result and fills *id. */
static sts_cache_result get(unsigned k, sts_identity *id, apr_uint32_t *t)
{
    unsigned char d[STS_DIGEST_LEN];
    apr_uint32_t ticket;

    digest_of(k, -1, d);
    return sts_cache_get(&W.req, d, id, t ? t : &ticket);
}

/* Looks k up and stores it (positive when name != NULL). */
static void put(unsigned k, const char *name, const char *roles, int64_t tid)
{
    unsigned char d[STS_DIGEST_LEN];
    sts_identity in = {tid, name, roles, -1, "id-text", "2031-02-03"}, out;
    apr_uint32_t ticket;

    digest_of(k, -1, d);
    sts_cache_get(&W.req, d, &out, &ticket);
    db_set(k, name, roles, tid); /* what the database answered */
    sts_cache_put(&W.req, d, name ? &in : NULL, ticket);
}

/* ---- tests ---- */

/* STSTokenCacheTTL 0: nothing is stored, nothing is read. */
static void test_ttl0_disables(void **state)
{
    sts_identity id;

    (void)state;
    start_cache(0, 100);
    put(1, "a", "r", 1);
    put(2, NULL, NULL, 0);
    assert_int_equal(get(1, &id, NULL), STS_CACHE_MISS);
    assert_int_equal(get(2, &id, NULL), STS_CACHE_MISS);
    assert_int_equal(revision_reads, 0);
}

/* A hit returns the identity, copied into the request pool. */
static void test_hit_copies_identity(void **state)
{
    char name[300], roles[600];
    sts_identity id;

    (void)state;
    start_cache(300, 100);
    strcpy(name, "ci-pipeline");
    strcpy(roles, "ops,reader");
    put(1, name, roles, 42);
    memset(name, 'x', 10); /* the caller's strings may go away */
    memset(roles, 'x', 5);
    assert_int_equal(get(1, &id, NULL), STS_CACHE_HIT);
    assert_int_equal(id.id, 42);
    assert_int_equal(id.expiration_ms, -1);
    assert_string_equal(id.name, "ci-pipeline");
    assert_string_equal(id.roles, "ops,reader");
    assert_string_equal(id.id_text, "id-text");
    assert_string_equal(id.expiration_text, "2031-02-03");
    /* Longer than the inline area: stored on the heap, same answer. */
    memset(name, 'n', 255);
    name[255] = '\0';
    memset(roles, 'r', 500);
    roles[500] = '\0';
    put(2, name, roles, 43);
    assert_int_equal(get(2, &id, NULL), STS_CACHE_HIT);
    assert_string_equal(id.name, name);
    assert_string_equal(id.roles, roles);
    assert_int_equal(get(3, &id, NULL), STS_CACHE_MISS);
}

/* Name + roles beyond STS_MAX_CACHED_STRINGS are not cached. */
static void test_huge_identity_not_cached(void **state)
{
    static char roles[STS_MAX_CACHED_STRINGS + 10];
    sts_identity id;

    (void)state;
    start_cache(300, 100);
    memset(roles, 'r', sizeof(roles) - 1);
    put(1, "big", roles, 1);
    assert_int_equal(get(1, &id, NULL), STS_CACHE_MISS);
}

/* Unknown digests are remembered for the TTL too (the revision flush
 * forgets them when a token is created). */
static void test_negative_entries(void **state)
{
    sts_identity id;

    (void)state;
    start_cache(300, 100);
    put(7, NULL, NULL, 0);
    assert_int_equal(get(7, &id, NULL), STS_CACHE_UNKNOWN);
    advance_ms(262000); /* 7/8 of the TTL: never jittered away */
    assert_int_equal(get(7, &id, NULL), STS_CACHE_UNKNOWN);
    advance_ms(38000);
    assert_int_equal(get(7, &id, NULL), STS_CACHE_MISS);
    /* A later positive answer replaces a negative one. */
    put(7, NULL, NULL, 0);
    put(7, "now-exists", "r", 9);
    assert_int_equal(get(7, &id, NULL), STS_CACHE_HIT);
}

/* Positive entries not hit since they were stored end with the TTL, spread
 * over its last eighth (each key is looked up once, so none is renewed). */
static void test_positive_ttl(void **state)
{
    sts_identity id;
    int early = 0;
    unsigned k;

    (void)state;
    start_cache(8, 1000);
    for (k = 0; k < 600; k++) {
        put(k, "a", "r", 1);
    }
    advance_ms(7000 - 1);
    for (k = 0; k < 200; k++) {
        assert_int_equal(get(k, &id, NULL), STS_CACHE_HIT);
    }
    advance_ms(500);
    for (k = 200; k < 400; k++) {
        early += get(k, &id, NULL) == STS_CACHE_MISS;
    }
    assert_true(early > 50 && early < 150); /* about half */
    advance_ms(501);
    for (k = 400; k < 600; k++) {
        assert_int_equal(get(k, &id, NULL), STS_CACHE_MISS);
    }
}

/* A cache with an 8 s TTL holding tokens 1, 2 and 3 (names a, b, c). */
static void start_three_tokens(void)
{
    start_cache(8, 100);
    put(1, "a", "r", 1);
    put(2, "b", "r", 2);
    put(3, "c", "r", 3);
}

/* Entries hit since they were stored are confirmed with the database by
 * the polls once less than half their TTL is left, so they never expire
 * while in use; an entry not hit meanwhile ends with its TTL. */
static void test_renewal_keeps_used_entries(void **state)
{
    sts_identity id;
    int t;

    (void)state;
    start_three_tokens();
    for (t = 0; t < 40; t++) { /* 20 s, 2.5 TTLs */
        advance_ms(STS_REVISION_POLL_MS);
        assert_int_equal(get(1, &id, NULL), STS_CACHE_HIT);
        assert_int_equal(get(2, &id, NULL), STS_CACHE_HIT);
        assert_string_equal(id.name, "b");
    }
    assert_int_equal(get(3, &id, NULL), STS_CACHE_MISS);
    /* Each is confirmed about once per half TTL, not at every poll. */
    assert_true(polled_digests >= 2 * 4 && polled_digests <= 2 * 6);
    assert_int_equal(warnings, 0);
}

/* A token deleted or changed without the revision moving (the trigger
 * bypassed) is dropped by the renewal that asks about it, with a warning;
 * an unchanged one stays. */
static void test_renewal_drops_bypassed_changes(void **state)
{
    sts_identity id;
    int t;

    (void)state;
    start_three_tokens();
    db_set(1, NULL, NULL, 0);     /* deleted */
    db_set(2, "b", "r,admin", 2); /* roles changed */
    for (t = 0; t < 4; t++) {     /* 2 s: the revision did not move */
        advance_ms(STS_REVISION_POLL_MS);
        assert_int_equal(get(1, &id, NULL), STS_CACHE_HIT);
        assert_int_equal(get(2, &id, NULL), STS_CACHE_HIT);
        assert_int_equal(get(3, &id, NULL), STS_CACHE_HIT);
    }
    /* Each is asked about once less than half its TTL is left (4 s, minus
     * its jitter), within the next poll. */
    for (t = 0; t < 6 && polled_digests < 3; t++) {
        advance_ms(STS_REVISION_POLL_MS);
        get(3, &id, NULL);
    }
    assert_int_equal(polled_digests, 3);
    assert_int_equal(get(1, &id, NULL), STS_CACHE_MISS);
    assert_int_equal(get(2, &id, NULL), STS_CACHE_MISS);
    assert_int_equal(get(3, &id, NULL), STS_CACHE_HIT);
    assert_true(warnings >= 1 && warnings <= 2); /* one per poll that drops */
}

/* A poll asks about at most STS_RENEW_MAX tokens; the next polls take the
 * rest, so a large cache is renewed over a few polls, all in time. */
static void test_renewal_is_bounded(void **state)
{
    sts_identity id;
    unsigned k, n = 3 * STS_RENEW_MAX / 2;
    int t;

    (void)state;
    start_cache(60, 4 * (int)n);
    for (k = 0; k < n; k++) {
        put(k, "t", "r", (int64_t)k + 1);
        assert_int_equal(get(k, &id, NULL), STS_CACHE_HIT);
    }
    advance_ms(26000); /* some entries are due (jitter), then all */
    for (t = 0; t < 10; t++) {
        advance_ms(STS_REVISION_POLL_MS);
        get(0, &id, NULL);
        assert_true(last_poll_digests <= STS_RENEW_MAX);
    }
    assert_int_equal(polled_digests, (int)n);
    advance_ms(40000); /* past the first TTL: all renewed */
    for (k = 0; k < n; k++) {
        assert_int_equal(get(k, &id, NULL), STS_CACHE_HIT);
    }
}

/* The revision is read at most once per STS_REVISION_POLL_MS; a change
 * flushes positive and negative entries. */
static void test_revision_poll_and_flush(void **state)
{
    sts_identity id;
    int i;

    (void)state;
    start_cache(300, 100);
    put(1, "a", "r", 1);
    put(2, NULL, NULL, 0);
    for (i = 0; i < 100; i++) {
        assert_int_equal(get(1, &id, NULL), STS_CACHE_HIT);
    }
    assert_int_equal(revision_reads, 1);
    advance_ms(STS_REVISION_POLL_MS - 1);
    assert_int_equal(get(1, &id, NULL), STS_CACHE_HIT);
    assert_int_equal(revision_reads, 1);
    advance_ms(1);
    assert_int_equal(get(1, &id, NULL), STS_CACHE_HIT); /* unchanged */
    assert_int_equal(revision_reads, 2);
    fake_revision++;
    advance_ms(STS_REVISION_POLL_MS);
    assert_int_equal(get(1, &id, NULL), STS_CACHE_MISS);
    assert_int_equal(get(2, &id, NULL), STS_CACHE_MISS);
    put(1, "a", "r", 1); /* refilled after the flush */
    assert_int_equal(get(1, &id, NULL), STS_CACHE_HIT);
}

/* A database answer that may predate a flush is not stored. */
static void test_stale_ticket_rejected(void **state)
{
    unsigned char d[STS_DIGEST_LEN];
    sts_identity in = {5, "old", "r", -1, "5", ""}, out;
    apr_uint32_t ticket;

    (void)state;
    start_cache(300, 100);
    digest_of(5, -1, d);
    assert_int_equal(sts_cache_get(&W.req, d, &out, &ticket), STS_CACHE_MISS);
    /* Meanwhile another thread polls and sees the token deleted. */
    fake_revision++;
    advance_ms(STS_REVISION_POLL_MS);
    assert_int_equal(get(99, &out, NULL), STS_CACHE_MISS);
    sts_cache_put(&W.req, d, &in, ticket);
    assert_int_equal(get(5, &out, NULL), STS_CACHE_MISS);
    sts_cache_put(&W.req, d, NULL, ticket);
    assert_int_equal(get(5, &out, NULL), STS_CACHE_MISS);
}

/* Revoke drops every entry of one token id, and answers in flight. */
static void test_revoke(void **state)
{
    unsigned char d[STS_DIGEST_LEN];
    sts_identity in = {5, "five", "r", -1, "5", ""}, out;
    apr_uint32_t ticket;

    (void)state;
    start_cache(300, 100);
    put(1, "five", "r", 5);
    put(2, "five", "r", 5);
    put(3, "six", "r", 6);
    digest_of(4, -1, d);
    sts_cache_get(&W.req, d, &out, &ticket);
    sts_cache_revoke(&W.req, 5);
    assert_int_equal(get(1, &out, NULL), STS_CACHE_MISS);
    assert_int_equal(get(2, &out, NULL), STS_CACHE_MISS);
    assert_int_equal(get(3, &out, NULL), STS_CACHE_HIT);
    assert_int_equal(out.id, 6);
    sts_cache_put(&W.req, d, &in, ticket); /* looked up before the revoke */
    assert_int_equal(get(4, &out, NULL), STS_CACHE_MISS);
}

/* The size reported to server-status follows puts, replacements,
 * revocations, evictions and flushes; a good poll reports its revision. */
static void test_cached_count(void **state)
{
    sts_identity id;
    long linked;
    int i;

    (void)state;
    start_cache(300, 16);
    put(1, "a", "r", 1);
    assert_int_equal(polled_revision, 1);
    put(2, "b", "r", 2);
    put(3, "c", "r", 3);
    put(4, NULL, NULL, 0); /* unknown digests are not tokens */
    assert_int_equal(cached_count, 3);
    put(3, "c", "r", 3); /* replaced, not added */
    assert_int_equal(cached_count, 3);
    sts_cache_revoke(&W.req, 2);
    assert_int_equal(cached_count, 2);
    for (i = 10; i < 500; i++) { /* evictions keep it at the capacity */
        put((unsigned)i, "x", "r", i);
    }
    for (i = 0, linked = 0; i < STS_CACHE_SHARDS; i++) {
        linked += W.db.cache->shards[i].pos.used;
    }
    assert_true(linked > 16); /* full, with evictions */
    assert_int_equal(cached_count, linked);
    fake_revision = 7;
    advance_ms(STS_REVISION_POLL_MS);
    assert_int_equal(get(1, &id, NULL), STS_CACHE_MISS); /* flushed */
    assert_int_equal(cached_count, 0);
    assert_int_equal(polled_revision, 7);
    put(1, "a", "r", 1);
    put(500, "z", "r", 500); /* may reuse a flushed slot: not counted twice */
    assert_int_equal(cached_count, 2);
}

/* Database down: cached entries keep working until their TTL, past the
 * trust window; the warning is logged once; recovery flushes if needed. */
static void test_database_down(void **state)
{
    sts_identity id;

    (void)state;
    start_cache(16, 100);
    put(1, "a", "r", 1);
    put(2, NULL, NULL, 0);
    fake_db_up = 0;
    advance_ms(STS_REVISION_POLL_MS);
    assert_int_equal(get(1, &id, NULL), STS_CACHE_HIT);
    advance_ms(13000); /* past the trust window, within 7/8 of the TTL */
    assert_int_equal(get(1, &id, NULL), STS_CACHE_HIT);
    assert_int_equal(get(2, &id, NULL), STS_CACHE_UNKNOWN);
    assert_int_equal(warnings, 1);
    advance_ms(2500);
    assert_int_equal(get(1, &id, NULL), STS_CACHE_MISS);
    put(1, "a", "r", 1);
    fake_db_up = 1;
    fake_revision++; /* changed while we could not see it */
    advance_ms(STS_REVISION_POLL_MS);
    assert_int_equal(get(1, &id, NULL), STS_CACHE_MISS);
    assert_int_equal(warnings, 1);
}

/* Hits are trusted only within STS_FRESH_MS of the last successful poll's
 * start: while another thread's poll is still in flight past that, a hit
 * counts as a miss (the database decides). */
static void test_trust_window(void **state)
{
    sts_identity id;

    (void)state;
    start_cache(300, 100);
    put(1, "a", "r", 1);     /* polls at t0 */
    W.db.cache->polling = 1; /* a poll starts and hangs */
    advance_ms(STS_FRESH_MS - 1);
    assert_int_equal(get(1, &id, NULL), STS_CACHE_HIT);
    advance_ms(1);
    assert_int_equal(get(1, &id, NULL), STS_CACHE_MISS);
    W.db.cache->polling = 0; /* the next request polls itself */
    assert_int_equal(get(1, &id, NULL), STS_CACHE_HIT);
}

/* A thread whose lookup runs the revision poll (it blocks in the hold). */
static void *polling_lookup(void *arg)
{
    sts_identity id;
    request_rec r = W.req;
    apr_pool_t *p;

    (void)arg;
    apr_pool_create(&p, NULL);
    r.pool = p;
    (void)sts_cache_get(
        &r,
        (const unsigned char *)"\x07"
                               "0123456789abcdef0123456789abcde",
        &id, &(apr_uint32_t){0});
    apr_pool_destroy(p);
    return NULL;
}

/* Clears the hold after 50 ms (the poll in flight then answers). */
static void *release_later(void *arg)
{
    (void)arg;
    apr_sleep(apr_time_from_msec(50));
    hold(0);
    return NULL;
}

/* The wall clock stepped back an hour (NTP, an administrator) changes
 * nothing: polls stay due every STS_REVISION_POLL_MS and a deletion still
 * reaches the cache within a second (failed with the wall clock: no poll
 * for the hour, 120/120 hits of the deleted token). */
static void test_wall_clock_step_back(void **state)
{
    sts_identity id;
    int i, hits = 0;

    (void)state;
    start_cache(300, 100);
    put(1, "a", "r", 1);
    assert_int_equal(get(1, &id, NULL), STS_CACHE_HIT);
    __atomic_sub_fetch(&fake_wall, apr_time_from_sec(3600), __ATOMIC_RELAXED);
    fake_revision++; /* the token is deleted */
    db_set(1, NULL, NULL, 0);
    for (i = 0; i < 120; i++) {
        advance_ms(10);
        hits += get(1, &id, NULL) == STS_CACHE_HIT;
    }
    assert_true(hits <= STS_REVISION_POLL_MS / 10);
    assert_true(revision_reads >= 2);
    /* And forward by a day: entries are not all expired at once. */
    put(2, "b", "r", 2);
    __atomic_add_fetch(&fake_wall, apr_time_from_sec(86400), __ATOMIC_RELAXED);
    assert_int_equal(get(2, &id, NULL), STS_CACHE_HIT);
}

/* The database answers without a revision row (deleted): unlike an outage,
 * nothing cached is trusted until the row is back, and that is logged once
 * (failed before: taken for an outage, the deleted token kept its hits). */
static void test_missing_revision_row(void **state)
{
    sts_identity id;
    int i;

    (void)state;
    start_cache(300, 100);
    put(1, "a", "r", 1);
    put(2, NULL, NULL, 0);
    assert_int_equal(get(1, &id, NULL), STS_CACHE_HIT);
    fake_revision_row = 0;
    db_set(1, NULL, NULL, 0); /* deleted: the trigger could not bump */
    for (i = 0; i < 5; i++) {
        advance_ms(STS_REVISION_POLL_MS + 1);
        assert_int_equal(get(1, &id, NULL), STS_CACHE_MISS);
        assert_int_equal(get(2, &id, NULL), STS_CACHE_MISS);
        put(3, "c", "r", 3); /* looked up meanwhile: not served either */
        assert_int_equal(get(3, &id, NULL), STS_CACHE_MISS);
    }
    assert_int_equal(errors, 1);
    fake_revision_row = 1;
    advance_ms(STS_REVISION_POLL_MS + 1);
    put(3, "c", "r", 3);
    assert_int_equal(get(3, &id, NULL), STS_CACHE_HIT);
    assert_int_equal(get(1, &id, NULL), STS_CACHE_MISS);
}

/* Past the trust window, a hit waits for the poll in flight instead of
 * going to the database, and is served when that poll vouches for it. */
static void test_hit_waits_for_poll(void **state)
{
    pthread_t poller, releaser;
    sts_identity id;
    apr_time_t t0;

    (void)state;
    start_cache(300, 100);
    put(1, "a", "r", 1); /* polls at T */
    advance_ms(STS_FRESH_MS + 100);
    hold(1);
    assert_int_equal(pthread_create(&poller, NULL, polling_lookup, NULL), 0);
    wait_poll_entered(); /* a poll started at T + 1100 and hangs */
    assert_int_equal(pthread_create(&releaser, NULL, release_later, NULL), 0);
    t0 = apr_time_now();
    assert_int_equal(get(1, &id, NULL), STS_CACHE_HIT);
    assert_true(apr_time_now() - t0 >= apr_time_from_msec(40));
    assert_int_equal(revision_reads, 2);
    pthread_join(releaser, NULL);
    pthread_join(poller, NULL);
}

/* A poll in flight for longer than the trust window could cover is not
 * waited for past that: the hit becomes a miss and the database decides. */
static void test_hit_wait_is_bounded(void **state)
{
    pthread_t poller;
    sts_identity id;
    apr_time_t t0;

    (void)state;
    start_cache(300, 100);
    put(1, "a", "r", 1);
    advance_ms(STS_FRESH_MS + 100);
    hold(1);
    assert_int_equal(pthread_create(&poller, NULL, polling_lookup, NULL), 0);
    wait_poll_entered();
    advance_ms(STS_FRESH_MS - 50); /* 50 ms of the poll's window left */
    t0 = apr_time_now();
    assert_int_equal(get(1, &id, NULL), STS_CACHE_MISS);
    assert_true(apr_time_now() - t0 >= apr_time_from_msec(40));
    assert_true(apr_time_now() - t0 < apr_time_from_msec(900));
    hold(0);
    pthread_join(poller, NULL);
    assert_int_equal(get(1, &id, NULL), STS_CACHE_HIT); /* it polls again */
}

/* Memory is bounded; CLOCK keeps a hot entry while cold ones churn. */
static void test_bounded_and_clock(void **state)
{
    unsigned char hot[STS_DIGEST_LEN], d[STS_DIGEST_LEN];
    sts_identity in = {1, "hot", "r", -1, "1", ""}, out;
    apr_uint32_t ticket;
    unsigned k;
    int s, cap;

    (void)state;
    start_cache(300, 64); /* 4 per shard + slack */
    cap = W.db.cache->shards[0].pos.capacity;
    assert_true(cap >= 4 && cap < 64);
    digest_of(0, 3, hot);
    sts_cache_get(&W.req, hot, &out, &ticket);
    sts_cache_put(&W.req, hot, &in, ticket);
    for (k = 1; k <= 2000; k++) {
        sts_identity cold = {k, "cold", "r", -1, "k", ""};

        digest_of(k, 3, d); /* all into the hot entry's shard */
        sts_cache_get(&W.req, d, &out, &ticket);
        sts_cache_put(&W.req, d, &cold, ticket);
        digest_of(k + 100000, 3, d); /* negatives churn too */
        sts_cache_put(&W.req, d, NULL, ticket);
        assert_int_equal(sts_cache_get(&W.req, hot, &out, &ticket),
                         STS_CACHE_HIT);
        assert_int_equal(out.id, 1);
        assert_true(W.db.cache->shards[3].pos.used <= cap);
        assert_true(W.db.cache->shards[3].neg.used <= cap);
    }
    for (s = 0; s < STS_CACHE_SHARDS; s++) {
        assert_true(W.db.cache->shards[s].pos.used <= cap);
    }
}

/* The default size holds the default number of tokens without evicting,
 * despite digests spreading unevenly over the shards. */
static void test_default_size_fits(void **state)
{
    sts_identity id;
    unsigned k;

    (void)state;
    start_cache(300, STS_DEFAULT_CACHE_ENTRIES);
    for (k = 0; k < STS_DEFAULT_CACHE_ENTRIES; k++) {
        put(k, "t", "r", (int64_t)k + 1);
    }
    for (k = 0; k < STS_DEFAULT_CACHE_ENTRIES; k++) {
        assert_int_equal(get(k, &id, NULL), STS_CACHE_HIT);
        assert_int_equal(id.id, (int64_t)k + 1);
    }
}

#define RACE_THREADS 6
#define RACE_KEYS 3000
#define RACE_OPS 60000

static int race_bad;

/* One worker: random gets/puts/revokes; every hit must be the identity of
 * the digest asked for. */
static void *race_worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    apr_pool_t *p;
    request_rec r = W.req;
    int i;

    apr_pool_create(&p, NULL);
    r.pool = p;
    for (i = 0; i < RACE_OPS; i++) {
        unsigned k = (unsigned)rand_r(&seed) % RACE_KEYS;
        unsigned char d[STS_DIGEST_LEN];
        char name[32], roles[32];
        sts_identity in, out;
        apr_uint32_t ticket;
        sts_cache_result res;

        digest_of(k, -1, d);
        snprintf(name, sizeof(name), "name-%u", k);
        snprintf(roles, sizeof(roles), "role-%u", k);
        res = sts_cache_get(&r, d, &out, &ticket);
        if (res == STS_CACHE_HIT &&
            (out.id != (int64_t)k + 1 || strcmp(out.name, name) != 0 ||
             strcmp(out.roles, roles) != 0 ||
             strcmp(out.id_text, name + 5) != 0 ||
             strcmp(out.expiration_text, "") != 0)) {
            __atomic_add_fetch(&race_bad, 1, __ATOMIC_RELAXED);
        }
        if (res == STS_CACHE_UNKNOWN && k % 3 != 0) {
            __atomic_add_fetch(&race_bad, 1, __ATOMIC_RELAXED);
        }
        if (res == STS_CACHE_MISS) {
            in.id = (int64_t)k + 1;
            in.name = name;
            in.roles = roles;
            in.expiration_ms = -1;
            in.id_text = name + 5; /* the key's digits */
            in.expiration_text = "";
            sts_cache_put(&r, d, k % 3 == 0 ? NULL : &in, ticket);
        }
        if (i % 5000 == 0) {
            sts_cache_revoke(&r, (int64_t)k + 1);
        }
        if (i % 7000 == 0 && seed % 2 == 0) {
            __atomic_add_fetch(&fake_revision, 1, __ATOMIC_RELAXED);
            advance_ms(STS_REVISION_POLL_MS);
        }
        if (i % 2000 == 0 && seed % 2 == 1) { /* renewals due */
            advance_ms(STS_REVISION_POLL_MS);
        }
        if (i % 1000 == 0) {
            apr_pool_clear(p);
        }
    }
    apr_pool_destroy(p);
    return NULL;
}

/* Many threads at once (lookups, stores, revokes, flushes, renewals): no
 * torn or mixed-up identities. */
static void test_threads(void **state)
{
    pthread_t th[RACE_THREADS];
    int i;

    (void)state;
    start_cache(4, 1000); /* smaller than the key set: evictions too */
    for (i = 0; i < RACE_KEYS; i++) {
        char name[32], roles[32];

        snprintf(name, sizeof(name), "name-%d", i);
        snprintf(roles, sizeof(roles), "role-%d", i);
        if (i % 3 != 0) {
            db_set((unsigned)i, name, roles, (int64_t)i + 1);
        }
    }
    race_bad = 0;
    for (i = 0; i < RACE_THREADS; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, race_worker,
                                        (void *)(uintptr_t)(i + 1)),
                         0);
    }
    for (i = 0; i < RACE_THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    assert_int_equal(race_bad, 0);
    assert_true(polled_digests > 0); /* renewals ran among the others */
}

/* Runs the tests. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_ttl0_disables, stop_cache),
        cmocka_unit_test_teardown(test_hit_copies_identity, stop_cache),
        cmocka_unit_test_teardown(test_huge_identity_not_cached, stop_cache),
        cmocka_unit_test_teardown(test_negative_entries, stop_cache),
        cmocka_unit_test_teardown(test_positive_ttl, stop_cache),
        cmocka_unit_test_teardown(test_renewal_keeps_used_entries, stop_cache),
        cmocka_unit_test_teardown(test_renewal_drops_bypassed_changes,
                                  stop_cache),
        cmocka_unit_test_teardown(test_renewal_is_bounded, stop_cache),
        cmocka_unit_test_teardown(test_revision_poll_and_flush, stop_cache),
        cmocka_unit_test_teardown(test_stale_ticket_rejected, stop_cache),
        cmocka_unit_test_teardown(test_revoke, stop_cache),
        cmocka_unit_test_teardown(test_cached_count, stop_cache),
        cmocka_unit_test_teardown(test_database_down, stop_cache),
        cmocka_unit_test_teardown(test_missing_revision_row, stop_cache),
        cmocka_unit_test_teardown(test_wall_clock_step_back, stop_cache),
        cmocka_unit_test_teardown(test_trust_window, stop_cache),
        cmocka_unit_test_teardown(test_hit_waits_for_poll, stop_cache),
        cmocka_unit_test_teardown(test_hit_wait_is_bounded, stop_cache),
        cmocka_unit_test_teardown(test_bounded_and_clock, stop_cache),
        cmocka_unit_test_teardown(test_default_size_fits, stop_cache),
        cmocka_unit_test_teardown(test_threads, stop_cache),
    };

    apr_initialize();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
