/*
 * sync.c - keeps a token table equal to the database (see sync.h).
 *
 * Only the synchronisation's thread calls sts_sync_step and touches the
 * fields marked "step only"; request threads read the trust deadline and
 * the statistics atomically.
 */
#include "sync.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STS_LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STS_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define STS_ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)

/* The state every process attached to one table shares (see
 * sts_sync_create): what the step has done, the trust deadline, the
 * budget of lookups of unknown digests and the statistics. */
struct sts_sync_shared {
    /* Step only (one thread of the host at a time): */
    int have_revision; /* revision holds a base to read changes from */
    int64_t revision;  /* every change up to it is applied (atomic) */
    int loading;       /* a full read is in progress */
    int load_first;    /* its next page is the first */
    int load_cold;     /* the table is not trusted until it completes */
    unsigned char load_after[STS_DIGEST_LEN];
    int64_t next_poll;
    int64_t next_reload;
    int poll_failing; /* the last read failed: 1, or 2 for no revision
                         row (logged once) */
    int applied;      /* changes applied by the read in progress */
    int overfull;     /* the table could not hold the database (logged once) */
    int full;         /* a token found the table full */
    int put_failed;   /* a token could not be stored (no string space) */
    int lock_failed;  /* the table's lock could not be taken */
    uint64_t seen_resets; /* the table's resets the step has seen */
    int64_t retry_at;     /* no full read before then */
    int64_t page_at;      /* no page read before then (after a failure) */
    /* Any thread (atomics): */
    int ready;             /* a full read completed and no reason to redo */
    int64_t trusted_until; /* the table answers alone before then */
    int64_t ask_tat;       /* rate of lookups of unknown digests (GCRA) */
    sts_sync_stats stats;
};

struct sts_sync {
    sts_token_table *table;
    sts_sync_shared *sh;
    int own_shared; /* sh was allocated here */
    sts_sync_source src;
    int64_t reload_ms;
    size_t max_entries;
};

/* Formats and logs a message through the source. */
static void sts_sync_log(sts_sync *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sts_sync_log(sts_sync *s, int level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    s->src.log(s->src.ctx, level, msg);
}

size_t sts_sync_shared_size(void)
{
    return sizeof(sts_sync_shared);
}

void sts_sync_shared_init(sts_sync_shared *sh)
{
    memset(sh, 0, sizeof(*sh));
    sh->load_cold = 1;
}

sts_sync *sts_sync_create(sts_token_table *table, sts_sync_shared *shared,
                          const sts_sync_source *src, int64_t reload_ms,
                          size_t max_entries)
{
    sts_sync *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        return NULL;
    }
    if (shared == NULL) {
        shared = malloc(sizeof(*shared));
        if (shared == NULL) {
            free(s);
            return NULL;
        }
        sts_sync_shared_init(shared);
        s->own_shared = 1;
    }
    s->table = table;
    s->sh = shared;
    s->src = *src;
    s->reload_ms = reload_ms;
    s->max_entries = max_entries;
    return s;
}

void sts_sync_destroy(sts_sync *s)
{
    if (s != NULL && s->own_shared) {
        free(s->sh);
    }
    free(s);
}

/* Applies one token read from the database (step only). */
static void sts_sync_apply(void *ctx,
                           const unsigned char digest[STS_DIGEST_LEN],
                           const sts_tt_token *tok)
{
    sts_sync *s = ctx;
    int rc;

    if (s->sh->applied++ == 0) {
        /* The statement's rows are applied under one hold of the writers'
         * lock (released by sts_sync_applied), taken at the first row so
         * that the statement itself runs without it. */
        if (sts_table_lock(s->table) != 0) {
            s->sh->lock_failed = 1;
            return;
        }
        /* Before the first change: answers read from the database before
         * it may no longer be stored (sts_table_put_if). */
        sts_table_changing(s->table);
    }
    if (s->sh->lock_failed) {
        return;
    }
    if (tok == NULL) {
        sts_table_remove(s->table, digest);
    } else if ((rc = sts_table_put(s->table, digest, tok)) != 0) {
        /* The table is incomplete (sts_sync_overfull). */
        if (rc == -2) {
            s->sh->full = 1;
        } else {
            s->sh->put_failed = 1;
        }
    }
}

/* After a statement: releases the lock its rows were applied under; -1
 * when it could not be taken (the read failed: nothing was applied). */
static int sts_sync_applied(sts_sync *s)
{
    if (s->sh->lock_failed) {
        s->sh->lock_failed = 0;
        s->sh->applied = 0;
        return -1;
    }
    if (s->sh->applied > 0) {
        sts_table_unlock(s->table);
    }
    return 0;
}

/* Starts a full read; cold: the table is not trusted until it completes. */
static void sts_sync_start_load(sts_sync *s, int cold)
{
    s->sh->loading = 1;
    s->sh->load_first = 1;
    s->sh->load_cold = s->sh->load_cold || cold;
    memset(s->sh->load_after, 0, sizeof(s->sh->load_after));
    if (s->sh->load_cold) {
        STS_STORE(&s->sh->ready, 0);
    }
    sts_table_new_generation(s->table);
}

/* 1 when the table outgrew max_entries or a token could not be stored
 * (out of memory): then it is emptied, untrusted, and a full read is tried
 * again later (see sts_sync_create). */
static int sts_sync_overfull(sts_sync *s, int64_t now)
{
    size_t n = sts_table_count(s->table);

    if (n <= s->max_entries && !s->sh->full && !s->sh->put_failed) {
        if (s->sh->overfull && !s->sh->loading) {
            s->sh->overfull = 0;
        }
        return 0;
    }
    if (!s->sh->overfull) {
        if (s->sh->put_failed) {
            sts_sync_log(s, STS_SYNC_LOG_ERR,
                         "no room left for the tokens' names and roles in "
                         "the token table (longer than usual): it is "
                         "emptied and every token is looked up in the "
                         "database; raise STSTokenCacheEntries");
        } else {
            sts_sync_log(s, STS_SYNC_LOG_ERR,
                         "the database holds more than STSTokenCacheEntries "
                         "(%zu) tokens: the token table is emptied and every "
                         "token is looked up in the database; raise "
                         "STSTokenCacheEntries",
                         s->max_entries);
        }
        s->sh->overfull = 1;
    }
    s->sh->put_failed = 0;
    s->sh->full = 0;
    STS_STORE(&s->sh->ready, 0);
    s->sh->loading = 0;
    s->sh->have_revision = 0;
    s->sh->load_cold = 1;
    sts_table_changing(s->table);
    sts_table_new_generation(s->table);
    sts_table_sweep(s->table);
    s->sh->retry_at = now + (s->reload_ms > 0 ? s->reload_ms : 60000);
    return 1;
}

/* Logs a failed read once (until one succeeds): every token is then
 * looked up, as the table is not trusted past its window. */
static void sts_sync_failed(sts_sync *s, int rc)
{
    int kind = rc == STS_SYNC_NO_REVISION ? 2 : 1;

    if (s->sh->poll_failing == kind) {
        return;
    }
    if (kind == 2) {
        sts_sync_log(s, STS_SYNC_LOG_ERR,
                     "table sts_token_revision has no row, so changes "
                     "cannot reach the token table: every token is looked "
                     "up until the row is back. Restore it as the schema's "
                     "owner: INSERT INTO sts_token_revision (singleton, "
                     "revision) VALUES (true, 0) (or apply sql/schema.sql "
                     "again)");
    } else {
        sts_sync_log(s, STS_SYNC_LOG_WARN,
                     "cannot read the token changes: every token is looked "
                     "up in the database until they can be read again (503 "
                     "while it cannot answer)");
    }
    s->sh->poll_failing = kind;
    if (kind == 2) {
        /* Changes made meanwhile are not recorded: once the row is back,
         * every token is read again before the table answers. */
        STS_STORE(&s->sh->ready, 0);
        s->sh->have_revision = 0;
        s->sh->loading = 0;
        s->sh->load_cold = 1;
    }
}

/* Records the last digest a page delivered (step only). */
typedef struct {
    sts_sync *s;
    unsigned char last[STS_DIGEST_LEN];
} sts_page_ctx;

static void sts_sync_page_row(void *ctx,
                              const unsigned char digest[STS_DIGEST_LEN],
                              const sts_tt_token *tok)
{
    sts_page_ctx *pc = ctx;

    memcpy(pc->last, digest, STS_DIGEST_LEN);
    sts_sync_apply(pc->s, digest, tok);
}

/* Reads the next page of a full read; on the last one, sweeps what the
 * read did not see. */
static void sts_sync_load_page(sts_sync *s, int64_t now)
{
    sts_page_ctx pc;
    int64_t rev = 0;
    int n = 0, rc;

    pc.s = s;
    memcpy(pc.last, s->sh->load_after, STS_DIGEST_LEN);
    s->sh->applied = 0;
    STS_ADD(&s->sh->stats.statements, 1);
    rc = s->src.page(s->src.ctx, s->sh->load_after, s->sh->load_first,
                     STS_SYNC_PAGE, sts_sync_page_row, &pc, &rev, &n);
    if (sts_sync_applied(s) != 0 && rc == 0) {
        rc = -1;
    }
    if (rc != 0) {
        sts_sync_failed(s, rc);
        s->sh->page_at = now + STS_SYNC_POLL_MS; /* tried again then */
        return;
    }
    if (s->sh->load_first) {
        /* Everything committed up to rev is in this page or a later one;
         * every change after it is read from the change log. */
        if (!s->sh->have_revision || rev < s->sh->revision) {
            STS_STORE(&s->sh->revision, rev);
        }
        s->sh->have_revision = 1;
        s->sh->load_first = 0;
    }
    memcpy(s->sh->load_after, pc.last, STS_DIGEST_LEN);
    if (sts_sync_overfull(s, now)) {
        return;
    }
    if (n < STS_SYNC_PAGE) {
        size_t gone = sts_table_sweep(s->table);

        s->sh->loading = 0;
        STS_ADD(&s->sh->stats.full_reads, 1);
        if (gone > 0 && !s->sh->load_cold) {
            sts_sync_log(s, STS_SYNC_LOG_WARN,
                         "%zu tokens were deleted from sts_tokens without "
                         "the change being recorded (a disabled trigger, or "
                         "session_replication_role = replica): they were "
                         "honoured until this full read; removed them",
                         gone);
        }
        sts_sync_log(s, STS_SYNC_LOG_DEBUG,
                     "full read of sts_tokens done: %zu tokens, %zu bytes",
                     sts_table_count(s->table), sts_table_bytes(s->table));
        s->sh->load_cold = 0;
        /* Trusted from the next successful read of the changes: now. */
        STS_STORE(&s->sh->ready, 1);
        s->sh->next_poll = 0;
    }
}

/* Reads and applies the changes after the applied revision. */
static void sts_sync_poll(sts_sync *s, int64_t now)
{
    int64_t rev = 0, horizon = 0;
    int rc;

    s->sh->applied = 0;
    STS_ADD(&s->sh->stats.statements, 1);
    rc = s->src.changes(s->src.ctx, s->sh->revision, sts_sync_apply, s, &rev,
                        &horizon);
    if (sts_sync_applied(s) != 0 && rc == 0) {
        rc = -1;
    }
    if (rc != 0) {
        sts_sync_failed(s, rc);
        return;
    }
    if (s->sh->poll_failing) {
        sts_sync_log(s, STS_SYNC_LOG_NOTICE,
                     "token changes readable again: the token table answers "
                     "again");
        s->sh->poll_failing = 0;
    }
    if (rev < s->sh->revision || s->sh->revision < horizon) {
        sts_sync_log(s, STS_SYNC_LOG_NOTICE,
                     "token changes after revision %lld are %s (database "
                     "at %lld, changes kept after %lld): reading every "
                     "token again",
                     (long long)s->sh->revision,
                     rev < s->sh->revision ? "unknown" : "no longer kept",
                     (long long)rev, (long long)horizon);
        STS_STORE(&s->sh->revision, rev);
        s->sh->have_revision = 0;
        sts_sync_start_load(s, 1);
        return;
    }
    if (sts_sync_overfull(s, now)) {
        return;
    }
    STS_ADD(&s->sh->stats.changes, (uint64_t)s->sh->applied);
    if (s->sh->applied > 0) {
        sts_sync_log(s, STS_SYNC_LOG_DEBUG,
                     "token changes %lld -> %lld applied (%d tokens)",
                     (long long)s->sh->revision, (long long)rev,
                     s->sh->applied);
    }
    STS_STORE(&s->sh->revision, rev);
    if (STS_LOAD(&s->sh->ready)) {
        /* A change committed before now is in rev: the table is current
         * as of now, and trusted for STS_SYNC_TRUST_MS from it. */
        STS_STORE(&s->sh->trusted_until, now + STS_SYNC_TRUST_MS);
    }
}

int64_t sts_sync_step(sts_sync *s, int64_t now)
{
    uint64_t resets = sts_table_resets(s->table);

    if (resets != s->sh->seen_resets) {
        /* A writer died holding the table's lock: the table was emptied
         * and is read again before it answers. */
        sts_sync_log(s, STS_SYNC_LOG_ERR,
                     "a process died while writing the token table: it was "
                     "emptied and every token is read again (looked up "
                     "meanwhile)");
        STS_STORE(&s->sh->seen_resets, resets);
        STS_STORE(&s->sh->ready, 0);
        s->sh->have_revision = 0;
        s->sh->loading = 0;
        s->sh->load_cold = 1;
        s->sh->retry_at = now;
    }
    if (!s->sh->loading && ((!s->sh->have_revision && now >= s->sh->retry_at) ||
                            (s->sh->have_revision && s->reload_ms > 0 &&
                             now >= s->sh->next_reload))) {
        sts_sync_start_load(s, !s->sh->have_revision);
        s->sh->next_reload = now + s->reload_ms;
    }
    if (s->sh->loading && now >= s->sh->page_at) {
        sts_sync_load_page(s, now);
    }
    if (s->sh->have_revision && now >= s->sh->next_poll) {
        s->sh->next_poll = now + STS_SYNC_POLL_MS;
        sts_sync_poll(s, now);
    }
    if (s->sh->loading) {
        return s->sh->page_at > now ? s->sh->page_at - now : 0;
    }
    if (!s->sh->have_revision) {
        return s->sh->retry_at > now ? s->sh->retry_at - now : STS_SYNC_POLL_MS;
    }
    return s->sh->next_poll > now ? s->sh->next_poll - now : 0;
}

int sts_sync_trusted(sts_sync *s, int64_t now)
{
    /* Not once a writer emptied the table after another died in it, until
     * the step read it again. */
    return STS_LOAD(&s->sh->ready) && now < STS_LOAD(&s->sh->trusted_until) &&
           sts_table_resets(s->table) == STS_LOAD(&s->sh->seen_resets);
}

/* 1 when an unknown digest may be looked up now: at most
 * STS_SYNC_ASK_PER_SEC a second, in bursts of STS_SYNC_ASK_BURST (a
 * generic cell rate: ask_tat is when the budget is whole again). */
static int sts_sync_may_ask(sts_sync *s, int64_t now)
{
    const int64_t interval = 1000 / STS_SYNC_ASK_PER_SEC;
    const int64_t tolerance = interval * STS_SYNC_ASK_BURST;
    int64_t tat = STS_LOAD(&s->sh->ask_tat);

    for (;;) {
        int64_t base = tat > now ? tat : now;

        if (base - now >= tolerance) {
            return 0;
        }
        if (__atomic_compare_exchange_n(&s->sh->ask_tat, &tat, base + interval,
                                        0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            return 1;
        }
    }
}

sts_sync_result sts_sync_lookup(sts_sync *s,
                                const unsigned char digest[STS_DIGEST_LEN],
                                int64_t now, sts_tt_token *out,
                                sts_tt_alloc_fn alloc, void *ctx,
                                uint64_t *ticket)
{
    /* The ticket only matters to a lookup the database answers: taken after
     * the table missed, it is still before that lookup, which is what
     * sts_sync_learned needs. A hit spares the read of a line writers
     * change. */
    if (!sts_sync_trusted(s, now)) {
        goto ask;
    }
    switch (sts_table_get(s->table, digest, out, alloc, ctx)) {
    case 1:
        return STS_SYNC_HIT;
    case 0:
        break;
    default:
        goto ask;
    }
    if (!sts_sync_may_ask(s, now)) {
        STS_ADD(&s->sh->stats.refused, 1);
        return STS_SYNC_UNKNOWN;
    }
    STS_ADD(&s->sh->stats.asks, 1);
ask:
    *ticket = sts_table_ticket(s->table);
    return STS_SYNC_ASK;
}

uint64_t sts_sync_ticket(sts_sync *s)
{
    return sts_table_ticket(s->table);
}

void sts_sync_learned(sts_sync *s, const unsigned char digest[STS_DIGEST_LEN],
                      const sts_tt_token *tok, uint64_t ticket)
{
    /* Not while the table is untrusted: it may be over its bound. */
    if (STS_LOAD(&s->sh->ready)) {
        sts_table_put_if(s->table, digest, tok, ticket);
    }
}

void sts_sync_forget(sts_sync *s, const unsigned char digest[STS_DIGEST_LEN])
{
    sts_table_remove(s->table, digest);
}

void sts_sync_get_stats(sts_sync *s, sts_sync_stats *out)
{
    out->statements = STS_LOAD(&s->sh->stats.statements);
    out->changes = STS_LOAD(&s->sh->stats.changes);
    out->full_reads = STS_LOAD(&s->sh->stats.full_reads);
    out->asks = STS_LOAD(&s->sh->stats.asks);
    out->refused = STS_LOAD(&s->sh->stats.refused);
    out->revision = STS_LOAD(&s->sh->revision);
}
