/*
 * token_table.h - the set of valid token digests a host knows, with what
 * authentication needs of each token. Apache-free.
 *
 * The table lives in one block of memory of a size fixed when it is
 * formatted (sts_table_mem_size of its capacity), holding no pointers, so
 * that the processes of a host can share it: the parent formats it in
 * shared memory, every process attaches its own handle with the lock that
 * serialises the writers of every process. sts_table_create makes a
 * private one (its own memory and a thread mutex).
 *
 * Readers take no lock: each shard (by the digest's first byte) has a
 * sequence number a writer makes odd while it changes the shard's chains,
 * and a reader retries when the number moved under it (a seqlock). A
 * reader never writes to the table, so a process that dies while reading
 * leaves nothing behind. A writer that dies holding the lock leaves the
 * table marked: the next writer empties it (sts_table_resets counts that),
 * so nothing half-written is ever read as a token.
 *
 * Writers: each write takes the lock (or runs inside sts_table_lock, which
 * lets a thread hold it across many writes). Nothing expires or is evicted:
 * an entry leaves when the database says the token is gone.
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
     * its first use retires that one (sts_table_take_retire). */
    int retire;
    const char *str[STS_TT_STRINGS];
} sts_tt_token;

typedef struct sts_token_table sts_token_table;

/* Allocates the memory a lookup copies the strings into (must not call
 * the table). */
typedef void *(*sts_tt_alloc_fn)(void *ctx, size_t n);

/* The writers' lock, shared by every process attached to the table: lock
 * returns 0 when held, else the table is left as it is. */
typedef struct {
    int (*lock)(void *ctx);
    void (*unlock)(void *ctx);
    void *ctx;
} sts_tt_lock;

/* Bytes of memory a table of capacity tokens takes (capacity >= 1). */
size_t sts_table_mem_size(size_t capacity);

/* Formats mem (sts_table_mem_size(capacity) bytes, zero-filled, aligned to
 * 64 bytes) as an empty table. Pages of mem past the index are written only
 * as tokens are stored. */
void sts_table_format(void *mem, size_t capacity);

/* A handle on the table formatted in mem, writing under lock; NULL when out
 * of memory. sts_table_detach frees the handle, not the table. */
sts_token_table *sts_table_attach(void *mem, const sts_tt_lock *lock);
void sts_table_detach(sts_token_table *t);

/* A private table (its memory malloc'd, a thread mutex as its lock); NULL
 * when out of memory. sts_table_destroy frees both. */
sts_token_table *sts_table_create(size_t capacity);
void sts_table_destroy(sts_token_table *t);

/* Looks a digest up: 1 and *out filled (strings copied into memory from
 * alloc) when present, 0 when absent, -1 when alloc failed, -2 when writers
 * kept changing its shard (the caller asks elsewhere). */
int sts_table_get(sts_token_table *t,
                  const unsigned char digest[STS_DIGEST_LEN], sts_tt_token *out,
                  sts_tt_alloc_fn alloc, void *ctx);

/* Holds the writers' lock across several writes by this thread (nested
 * calls count); 0 when held. Every write below takes it by itself too. */
int sts_table_lock(sts_token_table *t);
void sts_table_unlock(sts_token_table *t);

/* Stores (or replaces) a token in the current generation. 0 on success,
 * -1 when its strings exceed STS_TT_MAX_STRINGS, the string space is used
 * up or the lock failed, -2 when the table holds capacity tokens. */
int sts_table_put(sts_token_table *t,
                  const unsigned char digest[STS_DIGEST_LEN],
                  const sts_tt_token *tok);

/* The current change sequence, taken before reading the database. */
uint64_t sts_table_ticket(sts_token_table *t);

/* sts_table_put when no change was applied since ticket: 1 stored, 0 not
 * (stale), < 0 as sts_table_put. */
int sts_table_put_if(sts_token_table *t,
                     const unsigned char digest[STS_DIGEST_LEN],
                     const sts_tt_token *tok, uint64_t ticket);

/* Marks the start of a change applied by the synchronisation (see top). */
void sts_table_changing(sts_token_table *t);

/* The retire flag of a digest (tok->retire when stored) is taken by one
 * caller in every process attached to the table, the first use of a
 * rotated token's new secret, which then retires the previous one: 1 for
 * that caller; 0 when the flag is not set or was taken already (storing
 * the same digest again keeps it taken); -1 when the digest is absent or
 * the lock failed (the caller decides alone). */
int sts_table_take_retire(sts_token_table *t,
                          const unsigned char digest[STS_DIGEST_LEN]);

/* Gives a taken flag back (retiring failed): the next use takes it. */
void sts_table_return_retire(sts_token_table *t,
                             const unsigned char digest[STS_DIGEST_LEN]);

/* Removes a digest; 1 when it was present. */
int sts_table_remove(sts_token_table *t,
                     const unsigned char digest[STS_DIGEST_LEN]);

/* Starts a new generation (a full re-read begins). */
void sts_table_new_generation(sts_token_table *t);

/* Removes every entry not stored in the current generation; returns how
 * many. */
size_t sts_table_sweep(sts_token_table *t);

/* Entries held; the bytes the table holds for them (its header, index and
 * the entries and string space in use); the most it can hold. */
size_t sts_table_count(sts_token_table *t);
size_t sts_table_bytes(sts_token_table *t);
size_t sts_table_capacity(sts_token_table *t);

/* How many times a writer found the table left half-written by a writer
 * that died, and emptied it. */
uint64_t sts_table_resets(sts_token_table *t);

#endif
