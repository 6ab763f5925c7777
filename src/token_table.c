/*
 * token_table.c - the set of valid token digests (see token_table.h).
 *
 * Layout: STS_TT_SHARDS shards chosen by the digest's first byte (digests
 * are uniform), each a chained hash whose bucket array doubles when it holds
 * more entries than buckets. An entry is one malloc'd block: the fixed
 * fields, the digest, then the token's strings, so a token costs one
 * allocation and a lookup copies its strings out in one memcpy.
 */
#include "token_table.h"

#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define STS_TT_SHARDS 64
#define STS_TT_MIN_BUCKETS 16

typedef struct sts_tt_entry {
    struct sts_tt_entry *next;
    int64_t id;
    int64_t expiration_ms;
    int64_t until_ms;
    uint32_t gen;
    uint8_t retire;
    uint16_t len;                 /* bytes of strings */
    uint16_t off[STS_TT_STRINGS]; /* of each string in strings */
    unsigned char digest[STS_DIGEST_LEN];
    char strings[];
} sts_tt_entry;

typedef struct {
    pthread_rwlock_t lock;
    sts_tt_entry **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    size_t bytes; /* of the entries (allocator's sizes) */
} sts_tt_shard;

struct sts_token_table {
    sts_tt_shard shards[STS_TT_SHARDS];
    uint32_t gen; /* current generation (atomic) */
    uint64_t seq; /* change sequence (atomic) */
};

/* The shard of a digest and its bucket in it (bytes 1..8: byte 0 picks
 * the shard). */
static sts_tt_shard *sts_tt_shard_of(sts_token_table *t, const unsigned char *d)
{
    return &t->shards[d[0] % STS_TT_SHARDS];
}

static size_t sts_tt_bucket(const sts_tt_shard *s, const unsigned char *d)
{
    uint64_t h;

    memcpy(&h, d + 1, sizeof(h));
    return (size_t)(h & (s->nbuckets - 1));
}

/* Bytes the allocator holds for an entry (its header word included). */
static size_t sts_tt_alloc_size(void *p)
{
    return malloc_usable_size(p) + sizeof(size_t);
}

sts_token_table *sts_table_create(void)
{
    sts_token_table *t = calloc(1, sizeof(*t));
    int i;

    if (t == NULL) {
        return NULL;
    }
    t->gen = 1;
    for (i = 0; i < STS_TT_SHARDS; i++) {
        sts_tt_shard *s = &t->shards[i];

        s->nbuckets = STS_TT_MIN_BUCKETS;
        s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
        if (s->buckets == NULL || pthread_rwlock_init(&s->lock, NULL) != 0) {
            free(s->buckets);
            while (--i >= 0) {
                pthread_rwlock_destroy(&t->shards[i].lock);
                free(t->shards[i].buckets);
            }
            free(t);
            return NULL;
        }
    }
    return t;
}

void sts_table_destroy(sts_token_table *t)
{
    int i;

    if (t == NULL) {
        return;
    }
    for (i = 0; i < STS_TT_SHARDS; i++) {
        sts_tt_shard *s = &t->shards[i];
        size_t b;

        for (b = 0; b < s->nbuckets; b++) {
            sts_tt_entry *e = s->buckets[b], *next;

            for (; e != NULL; e = next) {
                next = e->next;
                free(e);
            }
        }
        free(s->buckets);
        pthread_rwlock_destroy(&s->lock);
    }
    free(t);
}

/* The link pointing at a digest's entry, or at the NULL ending its chain
 * (shard locked). */
static sts_tt_entry **sts_tt_find(sts_tt_shard *s, const unsigned char *d)
{
    sts_tt_entry **link = &s->buckets[sts_tt_bucket(s, d)];

    while (*link != NULL && memcmp((*link)->digest, d, STS_DIGEST_LEN) != 0) {
        link = &(*link)->next;
    }
    return link;
}

int sts_table_get(sts_token_table *t,
                  const unsigned char digest[STS_DIGEST_LEN], sts_tt_token *out,
                  sts_tt_alloc_fn alloc, void *ctx)
{
    sts_tt_shard *s = sts_tt_shard_of(t, digest);
    sts_tt_entry *e;
    int rc = 0;

    pthread_rwlock_rdlock(&s->lock);
    e = *sts_tt_find(s, digest);
    if (e != NULL) {
        char *b = alloc(ctx, e->len);
        int k;

        rc = -1;
        if (b != NULL) {
            memcpy(b, e->strings, e->len);
            out->id = e->id;
            out->expiration_ms = e->expiration_ms;
            out->until_ms = e->until_ms;
            out->retire = e->retire;
            for (k = 0; k < STS_TT_STRINGS; k++) {
                out->str[k] = b + e->off[k];
            }
            rc = 1;
        }
    }
    pthread_rwlock_unlock(&s->lock);
    return rc;
}

/* Doubles a shard's bucket array (shard write-locked); stays as it is when
 * out of memory (chains just get longer). */
static void sts_tt_grow(sts_tt_shard *s)
{
    size_t n = s->nbuckets * 2, b;
    sts_tt_entry **nb = calloc(n, sizeof(*nb));
    sts_tt_entry **old = s->buckets;
    size_t old_n = s->nbuckets;

    if (nb == NULL) {
        return;
    }
    s->buckets = nb;
    s->nbuckets = n;
    for (b = 0; b < old_n; b++) {
        sts_tt_entry *e = old[b], *next;

        for (; e != NULL; e = next) {
            size_t i = sts_tt_bucket(s, e->digest);

            next = e->next;
            e->next = nb[i];
            nb[i] = e;
        }
    }
    free(old);
}

/* A new entry for tok (not linked); NULL when out of memory or too long. */
static sts_tt_entry *sts_tt_entry_new(const unsigned char *digest,
                                      const sts_tt_token *tok, uint32_t gen)
{
    size_t lens[STS_TT_STRINGS], total = 0, off = 0;
    sts_tt_entry *e;
    int k;

    for (k = 0; k < STS_TT_STRINGS; k++) {
        lens[k] = strlen(tok->str[k]) + 1;
        total += lens[k];
    }
    if (total > STS_TT_MAX_STRINGS) {
        return NULL;
    }
    e = malloc(sizeof(*e) + total);
    if (e == NULL) {
        return NULL;
    }
    e->next = NULL;
    e->id = tok->id;
    e->expiration_ms = tok->expiration_ms;
    e->until_ms = tok->until_ms;
    e->retire = tok->retire != 0;
    e->gen = gen;
    e->len = (uint16_t)total;
    memcpy(e->digest, digest, STS_DIGEST_LEN);
    for (k = 0; k < STS_TT_STRINGS; k++) {
        e->off[k] = (uint16_t)off;
        memcpy(e->strings + off, tok->str[k], lens[k]);
        off += lens[k];
    }
    return e;
}

/* Stores e in its shard (locked), replacing an entry of the same digest. */
static void sts_tt_link(sts_tt_shard *s, sts_tt_entry *e)
{
    sts_tt_entry **link = sts_tt_find(s, e->digest);

    if (*link != NULL) {
        sts_tt_entry *old = *link;

        e->next = old->next;
        *link = e;
        s->bytes -= sts_tt_alloc_size(old);
        free(old);
    } else {
        e->next = NULL;
        *link = e;
        s->count++;
        if (s->count > s->nbuckets) {
            sts_tt_grow(s);
        }
    }
    s->bytes += sts_tt_alloc_size(e);
}

int sts_table_put_if(sts_token_table *t,
                     const unsigned char digest[STS_DIGEST_LEN],
                     const sts_tt_token *tok, uint64_t ticket)
{
    sts_tt_shard *s = sts_tt_shard_of(t, digest);
    sts_tt_entry *e = sts_tt_entry_new(
        digest, tok, __atomic_load_n(&t->gen, __ATOMIC_ACQUIRE));
    int rc = 1;

    if (e == NULL) {
        return -1;
    }
    pthread_rwlock_wrlock(&s->lock);
    /* Under the lock: sts_table_changing moves seq before the change it
     * announces takes any shard lock. */
    if (__atomic_load_n(&t->seq, __ATOMIC_ACQUIRE) != ticket) {
        rc = 0;
    } else {
        sts_tt_link(s, e);
    }
    pthread_rwlock_unlock(&s->lock);
    if (rc == 0) {
        free(e);
    }
    return rc;
}

int sts_table_put(sts_token_table *t,
                  const unsigned char digest[STS_DIGEST_LEN],
                  const sts_tt_token *tok)
{
    sts_tt_shard *s = sts_tt_shard_of(t, digest);
    sts_tt_entry *e = sts_tt_entry_new(
        digest, tok, __atomic_load_n(&t->gen, __ATOMIC_ACQUIRE));

    if (e == NULL) {
        return -1;
    }
    pthread_rwlock_wrlock(&s->lock);
    sts_tt_link(s, e);
    pthread_rwlock_unlock(&s->lock);
    return 0;
}

uint64_t sts_table_ticket(sts_token_table *t)
{
    return __atomic_load_n(&t->seq, __ATOMIC_ACQUIRE);
}

void sts_table_changing(sts_token_table *t)
{
    __atomic_add_fetch(&t->seq, 1, __ATOMIC_ACQ_REL);
}

int sts_table_set_retire(sts_token_table *t,
                         const unsigned char digest[STS_DIGEST_LEN], int on)
{
    sts_tt_shard *s = sts_tt_shard_of(t, digest);
    sts_tt_entry *e;
    int was = -1;

    pthread_rwlock_wrlock(&s->lock);
    e = *sts_tt_find(s, digest);
    if (e != NULL) {
        was = e->retire;
        e->retire = on != 0;
    }
    pthread_rwlock_unlock(&s->lock);
    return was;
}

int sts_table_remove(sts_token_table *t,
                     const unsigned char digest[STS_DIGEST_LEN])
{
    sts_tt_shard *s = sts_tt_shard_of(t, digest);
    sts_tt_entry **link, *e;

    pthread_rwlock_wrlock(&s->lock);
    link = sts_tt_find(s, digest);
    e = *link;
    if (e != NULL) {
        *link = e->next;
        s->count--;
        s->bytes -= sts_tt_alloc_size(e);
    }
    pthread_rwlock_unlock(&s->lock);
    free(e);
    return e != NULL;
}

void sts_table_new_generation(sts_token_table *t)
{
    __atomic_add_fetch(&t->gen, 1, __ATOMIC_ACQ_REL);
}

size_t sts_table_sweep(sts_token_table *t)
{
    uint32_t gen = __atomic_load_n(&t->gen, __ATOMIC_ACQUIRE);
    size_t n = 0;
    int i;

    for (i = 0; i < STS_TT_SHARDS; i++) {
        sts_tt_shard *s = &t->shards[i];
        size_t b;

        pthread_rwlock_wrlock(&s->lock);
        for (b = 0; b < s->nbuckets; b++) {
            sts_tt_entry **link = &s->buckets[b];

            while (*link != NULL) {
                sts_tt_entry *e = *link;

                if (e->gen == gen) {
                    link = &e->next;
                    continue;
                }
                *link = e->next;
                s->count--;
                s->bytes -= sts_tt_alloc_size(e);
                free(e);
                n++;
            }
        }
        pthread_rwlock_unlock(&s->lock);
    }
    return n;
}

size_t sts_table_count(sts_token_table *t)
{
    size_t n = 0;
    int i;

    for (i = 0; i < STS_TT_SHARDS; i++) {
        pthread_rwlock_rdlock(&t->shards[i].lock);
        n += t->shards[i].count;
        pthread_rwlock_unlock(&t->shards[i].lock);
    }
    return n;
}

size_t sts_table_bytes(sts_token_table *t)
{
    size_t n = sizeof(*t);
    int i;

    for (i = 0; i < STS_TT_SHARDS; i++) {
        pthread_rwlock_rdlock(&t->shards[i].lock);
        n += t->shards[i].bytes +
             t->shards[i].nbuckets * sizeof(*t->shards[i].buckets);
        pthread_rwlock_unlock(&t->shards[i].lock);
    }
    return n;
}
