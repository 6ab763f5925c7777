/*
 * token_table.h - the set of valid token digests a host knows, with what
 * authentication needs of each token. Apache-free.
 *
 * A hash table keyed by the SHA-256 digest, split into shards by the
 * digest's first byte, each behind a read-write lock: lookups of many
 * threads proceed together; the synchronisation (sync.c) and the token API
 * change single entries. Nothing ever expires or is evicted here: an entry
 * leaves when the database says the token is gone.
 *
 * Generations: every entry records the table generation it was last stored
 * in. A full re-read of the database starts a new generation, stores every
 * token it reads, and then sweeps the entries of older generations (tokens
 * that vanished without a change being recorded).
 *
 * Change sequence: sts_table_changing() is called by the synchronisation
 * before it applies what the database said; a writer that read the
 * database on its own (a lookup, the token API) took a ticket
 * (sts_table_ticket) before its statement, and its answer is stored only
 * when no change was applied meanwhile, so an answer older than a deletion
 * the synchronisation applied can never be stored after it.
 */
#ifndef STS_TOKEN_TABLE_H
#define STS_TOKEN_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "token.h"

/* The strings kept with a token, each NUL-terminated, in this order. */
enum {
    STS_TT_NAME = 0,
    STS_TT_ROLES,
    STS_TT_ID_TEXT,         /* STS_TOKEN_ID as published */
    STS_TT_EXPIRATION_TEXT, /* STS_TOKEN_EXPIRATION as published */
    STS_TT_STRINGS
};

/* Tokens whose strings (with their NULs) exceed this are not stored: more
 * than the schema allows (name 255, 64 roles of 128 and their commas, id and
 * date), so every valid token fits. */
#define STS_TT_MAX_STRINGS 9000

/* A token as stored or as read back. */
typedef struct {
    int64_t id;
    int64_t expiration_ms; /* -1 when it never expires */
    /* A secret a rotation replaced: refused from this instant (epoch ms)
     * on; -1 for a token's current secret. */
    int64_t until_ms;
    /* The current secret of a token whose previous secret is still valid:
     * its first use retires that one (sts_table_set_retire). */
    int retire;
    const char *str[STS_TT_STRINGS];
} sts_tt_token;

typedef struct sts_token_table sts_token_table;

/* Allocates the memory a lookup copies the strings into (called with the
 * shard's lock held: must be quick and must not call the table). */
typedef void *(*sts_tt_alloc_fn)(void *ctx, size_t n);

/* An empty table; NULL when out of memory. */
sts_token_table *sts_table_create(void);

/* Frees the table and every entry. */
void sts_table_destroy(sts_token_table *t);

/* Looks a digest up: 1 and *out filled (strings copied into memory from
 * alloc) when present, 0 when absent, -1 when alloc failed. */
int sts_table_get(sts_token_table *t,
                  const unsigned char digest[STS_DIGEST_LEN], sts_tt_token *out,
                  sts_tt_alloc_fn alloc, void *ctx);

/* Stores (or replaces) a token in the current generation. 0 on success, -1
 * when out of memory or its strings exceed STS_TT_MAX_STRINGS. */
int sts_table_put(sts_token_table *t,
                  const unsigned char digest[STS_DIGEST_LEN],
                  const sts_tt_token *tok);

/* The current change sequence, taken before reading the database. */
uint64_t sts_table_ticket(sts_token_table *t);

/* sts_table_put when no change was applied since ticket: 1 stored, 0 not
 * (stale), -1 as sts_table_put. */
int sts_table_put_if(sts_token_table *t,
                     const unsigned char digest[STS_DIGEST_LEN],
                     const sts_tt_token *tok, uint64_t ticket);

/* Marks the start of a change applied by the synchronisation (see top). */
void sts_table_changing(sts_token_table *t);

/* Sets (on 1) or clears (on 0) a digest's retire flag. Returns what it
 * was (1 or 0), or -1 when the digest is absent: clearing returns 1 to one
 * caller only, which then retires the previous secret. */
int sts_table_set_retire(sts_token_table *t,
                         const unsigned char digest[STS_DIGEST_LEN], int on);

/* Removes a digest; 1 when it was present. */
int sts_table_remove(sts_token_table *t,
                     const unsigned char digest[STS_DIGEST_LEN]);

/* Starts a new generation (a full re-read begins). */
void sts_table_new_generation(sts_token_table *t);

/* Removes every entry not stored in the current generation; returns how
 * many. */
size_t sts_table_sweep(sts_token_table *t);

/* Entries held, and the bytes they and the table's index take. */
size_t sts_table_count(sts_token_table *t);
size_t sts_table_bytes(sts_token_table *t);

#endif
