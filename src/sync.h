/*
 * sync.h - keeps a token table (token_table.h) equal to one database's
 * sts_tokens, and says when it may answer alone. Apache-free: the database
 * is reached through sts_sync_source, the clock is the caller's (monotonic
 * milliseconds).
 *
 * The database records every change to sts_tokens in sts_token_changes,
 * keyed by the revision of sts_token_revision that the change moved
 * (sql/schema.sql). The synchronisation reads the table once in pages (a
 * full read), then every STS_SYNC_POLL_MS reads the changes after the
 * revision it applied, each with the token's current row, and applies them:
 * a token there is stored, a token gone is removed. Nothing is flushed.
 *
 * Trust: the table answers alone (a hit, or a refusal of an unknown digest)
 * only when a full read has completed and an incremental read that started
 * less than STS_SYNC_TRUST_MS ago succeeded. Otherwise every lookup goes to
 * the database (fail closed: a database that cannot answer is a 503). A
 * full read is also repeated every reload interval (STSTokenCacheTTL), to
 * catch changes that bypassed the change log's triggers; and at once when
 * the database no longer holds the changes after the applied revision
 * (pruned: revision below the horizon) or its revision went backwards
 * (restored): the table is then not trusted until that read completes.
 *
 * A digest the table does not know is refused alone, except for a few per
 * second (STS_SYNC_ASK_PER_SEC, bursts of STS_SYNC_ASK_BURST) that are
 * looked up: a token created on another host a moment ago then works at
 * once unless unknown digests arrive faster than that, and within
 * STS_SYNC_POLL_MS plus a read otherwise.
 */
#ifndef STS_SYNC_H
#define STS_SYNC_H

#include <stdint.h>

#include "token_table.h"

#define STS_SYNC_POLL_MS 250
#define STS_SYNC_TRUST_MS 1000
#define STS_SYNC_PAGE 10000
#define STS_SYNC_ASK_PER_SEC 20
#define STS_SYNC_ASK_BURST 20

/* Receives one token read from the database: tok NULL when no token has
 * that digest any more. */
typedef void (*sts_sync_row_fn)(void *ctx,
                                const unsigned char digest[STS_DIGEST_LEN],
                                const sts_tt_token *tok);

enum {
    STS_SYNC_LOG_ERR,
    STS_SYNC_LOG_WARN,
    STS_SYNC_LOG_NOTICE,
    STS_SYNC_LOG_DEBUG
};

/* A source's answer when the database has no sts_token_revision row. */
#define STS_SYNC_NO_REVISION (-2)

/* The database, as the synchronisation needs it. Each call is one
 * statement; each returns 0 on success, STS_SYNC_NO_REVISION, or -1 on
 * another failure (whose details it may log). */
typedef struct {
    /* The revision and horizon (changes at or below it may be pruned) and,
     * in the same snapshot when since >= horizon, every change after since
     * with the token's current row. */
    int (*changes)(void *ctx, int64_t since, sts_sync_row_fn fn, void *fnctx,
                   int64_t *revision, int64_t *horizon);
    /* Up to limit tokens with digests after *after (all zero bytes and
     * first set: from the start), in digest order, and the revision of the
     * page's snapshot; *n receives how many. */
    int (*page)(void *ctx, const unsigned char after[STS_DIGEST_LEN], int first,
                int limit, sts_sync_row_fn fn, void *fnctx, int64_t *revision,
                int *n);
    void (*log)(void *ctx, int level, const char *msg);
    void *ctx;
} sts_sync_source;

/* What the synchronisation did, for the benchmark and mod_status. */
typedef struct {
    uint64_t statements; /* changes and page reads */
    uint64_t changes;    /* changes applied */
    uint64_t full_reads; /* completed */
    uint64_t asks;       /* unknown digests let through to the database */
    uint64_t refused;    /* unknown digests refused alone */
    int64_t revision;    /* the revision applied */
} sts_sync_stats;

typedef struct sts_sync sts_sync;

/* The state of a synchronisation that the processes sharing its table
 * share too (no pointers: it may sit in shared memory next to the table):
 * how far the table is read, the trust deadline, the budget of lookups of
 * unknown digests and the statistics. Initialised once, by whoever
 * formats the table. */
typedef struct sts_sync_shared sts_sync_shared;
size_t sts_sync_shared_size(void);
void sts_sync_shared_init(sts_sync_shared *sh);

/* A synchronisation of table (not owned) with src, in shared (not owned;
 * NULL: a private state of its own); reload_ms is the full read's period
 * (0: none after the first). A database holding more than max_entries
 * tokens (or more than the table's capacity) is not kept in the table
 * (memory bound): the table stays empty and untrusted, every lookup goes
 * to the database, and a full read is tried again after reload_ms (a
 * minute when 0). NULL when out of memory. Each process attached to a
 * shared table makes its own, with its own source. */
sts_sync *sts_sync_create(sts_token_table *table, sts_sync_shared *shared,
                          const sts_sync_source *src, int64_t reload_ms,
                          size_t max_entries);
void sts_sync_destroy(sts_sync *s);

/* Does what is due at now: starts a full read, reads its next page, reads
 * the changes. One thread at a time of all the processes sharing the state
 * may call it (the caller's lock; any of them may, in turn: the state
 * says what is due). Returns how many milliseconds until it should be
 * called again. */
int64_t sts_sync_step(sts_sync *s, int64_t now);

typedef enum {
    STS_SYNC_HIT,     /* *out filled */
    STS_SYNC_UNKNOWN, /* refuse: no such token */
    STS_SYNC_ASK      /* ask the database; store with sts_sync_learned */
} sts_sync_result;

/* Looks a digest up at now (any thread). On STS_SYNC_ASK, *ticket is set
 * for sts_sync_learned (taken before the database is asked). */
sts_sync_result sts_sync_lookup(sts_sync *s,
                                const unsigned char digest[STS_DIGEST_LEN],
                                int64_t now, sts_tt_token *out,
                                sts_tt_alloc_fn alloc, void *ctx,
                                uint64_t *ticket);

/* Stores a token the database just returned (a lookup after ASK, or one
 * the token API created: ticket taken with sts_sync_ticket before its
 * statement); nothing when a change was applied meanwhile. */
void sts_sync_learned(sts_sync *s, const unsigned char digest[STS_DIGEST_LEN],
                      const sts_tt_token *tok, uint64_t ticket);
uint64_t sts_sync_ticket(sts_sync *s);

/* Forgets a token this process deleted. */
void sts_sync_forget(sts_sync *s, const unsigned char digest[STS_DIGEST_LEN]);

/* 1 when the table may answer alone at now. */
int sts_sync_trusted(sts_sync *s, int64_t now);

void sts_sync_get_stats(sts_sync *s, sts_sync_stats *out);

#endif
