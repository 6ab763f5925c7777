/*
 * token_table.c - the set of valid token digests (see token_table.h).
 *
 * Layout of the memory, all of it found by offsets so that every process
 * may map it at its own address: the header (counters, free lists, one
 * sequence number per shard on a cache line of its own), the bucket index
 * (an array of entry numbers, a power of two at least the capacity, so
 * chains stay short), the entries (one fixed slot per token, the first
 * STS_TT_INLINE bytes of its strings inside) and the string chunks (for the
 * rest of the strings of a longer token). Entries and chunks are numbered
 * from 1 (0: none); unused ones are handed out from the top first, then
 * from a free list, so memory no token ever used is never written.
 *
 * A bucket's chain holds only entries of one shard (the shard is the
 * bucket number's low bits), so a reader validates its whole walk with its
 * shard's sequence number. Readers bound every index and walk they follow:
 * what they read while a writer changes the shard may be anything, and is
 * thrown away when the sequence number says so.
 */
#include "token_table.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define STS_TT_SHARDS 64
#define STS_TT_ENTRY_SIZE 192
#define STS_TT_INLINE 110
#define STS_TT_CHUNK_DATA 60
#define STS_TT_MAX_CHAIN 256
#define STS_TT_READ_TRIES 2000
#define STS_TT_MAGIC 0x5354534b54424c33ULL

/* The retire flag of a rotated token's new secret: none, waiting for the
 * first use, or taken by it (kept when the same digest is stored again, so
 * that one request per host retires the previous secret). */
enum { STS_TT_RETIRE_NONE = 0, STS_TT_RETIRE_PENDING, STS_TT_RETIRE_TAKEN };

typedef struct {
    uint32_t next; /* the next in the chain or free list */
    uint32_t gen;
    int64_t id;
    int64_t expiration_ms;
    int64_t until_ms; /* a rotated-away secret's end; -1: current secret */
    uint32_t chunk;   /* the first chunk of strings past the inline part */
    uint32_t retire;  /* STS_TT_RETIRE_* (an atomic, under the lock) */
    uint16_t len;     /* bytes of strings */
    uint16_t off[STS_TT_STRINGS];
    unsigned char digest[STS_DIGEST_LEN];
    char data[STS_TT_INLINE];
} sts_tt_entry;

typedef struct {
    uint32_t next;
    char data[STS_TT_CHUNK_DATA];
} sts_tt_chunk;

_Static_assert(sizeof(sts_tt_entry) == STS_TT_ENTRY_SIZE, "entry size");
_Static_assert(sizeof(sts_tt_chunk) == 64, "chunk size");

typedef struct {
    uint32_t v; /* odd while a writer changes the shard */
} __attribute__((aligned(64))) sts_tt_seq;

typedef struct {
    uint64_t magic;
    uint32_t capacity, nbuckets, nchunks;
    /* Under the writers' lock: */
    uint32_t writing; /* a writer holds the lock (left set if it died) */
    uint32_t entry_top, entry_free, chunk_top, chunk_free;
    uint32_t count, chunks_used;
    /* Atomics: */
    uint32_t gen;    /* current generation */
    uint64_t seq;    /* change sequence */
    uint64_t resets; /* tables found half-written and emptied */
    uint64_t buckets_off, entries_off, chunks_off;
    sts_tt_seq shard[STS_TT_SHARDS];
} sts_tt_shared;

struct sts_token_table {
    sts_tt_shared *sh;
    uint32_t *buckets;
    sts_tt_entry *entries;
    sts_tt_chunk *chunks;
    sts_tt_lock lock;
    int private_table; /* created here: memory and mutex are ours */
    pthread_mutex_t mutex;
};

/* The table whose lock this thread holds, and how many times. */
static _Thread_local sts_tt_shared *sts_tt_held;
static _Thread_local int sts_tt_depth;

#define STS_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STS_SET(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

static size_t sts_tt_round(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

static uint32_t sts_tt_nbuckets(size_t capacity)
{
    uint32_t n = STS_TT_SHARDS;

    while (n < capacity) {
        n *= 2;
    }
    return n;
}

/* Chunks for the longer tokens' strings: one for every other token, and
 * enough for the longest token whatever the capacity. */
static uint32_t sts_tt_nchunks(size_t capacity)
{
    return (uint32_t)(capacity / 2 + STS_TT_MAX_STRINGS / STS_TT_CHUNK_DATA +
                      1);
}

static uint32_t sts_tt_chunks_for(size_t len)
{
    return len <= STS_TT_INLINE
               ? 0
               : (uint32_t)((len - STS_TT_INLINE + STS_TT_CHUNK_DATA - 1) /
                            STS_TT_CHUNK_DATA);
}

size_t sts_table_mem_size(size_t capacity)
{
    return sts_tt_round(sizeof(sts_tt_shared)) +
           sts_tt_round((size_t)sts_tt_nbuckets(capacity) * sizeof(uint32_t)) +
           capacity * sizeof(sts_tt_entry) +
           (size_t)sts_tt_nchunks(capacity) * sizeof(sts_tt_chunk);
}

void sts_table_format(void *mem, size_t capacity)
{
    sts_tt_shared *sh = mem;

    memset(sh, 0, sizeof(*sh));
    sh->capacity = (uint32_t)capacity;
    sh->nbuckets = sts_tt_nbuckets(capacity);
    sh->nchunks = sts_tt_nchunks(capacity);
    sh->gen = 1;
    sh->buckets_off = sts_tt_round(sizeof(sts_tt_shared));
    sh->entries_off =
        sh->buckets_off + sts_tt_round((size_t)sh->nbuckets * sizeof(uint32_t));
    sh->chunks_off = sh->entries_off + capacity * sizeof(sts_tt_entry);
    sh->magic = STS_TT_MAGIC;
}

sts_token_table *sts_table_attach(void *mem, const sts_tt_lock *lock)
{
    sts_token_table *t = calloc(1, sizeof(*t));
    char *base = mem;

    if (t == NULL) {
        return NULL;
    }
    t->sh = mem;
    t->buckets = (uint32_t *)(base + t->sh->buckets_off);
    t->entries = (sts_tt_entry *)(base + t->sh->entries_off);
    t->chunks = (sts_tt_chunk *)(base + t->sh->chunks_off);
    t->lock = *lock;
    return t;
}

void sts_table_detach(sts_token_table *t)
{
    free(t);
}

static int sts_tt_mutex_lock(void *ctx)
{
    return pthread_mutex_lock(ctx);
}

static void sts_tt_mutex_unlock(void *ctx)
{
    pthread_mutex_unlock(ctx);
}

sts_token_table *sts_table_create(size_t capacity)
{
    size_t size = sts_table_mem_size(capacity);
    void *mem = aligned_alloc(64, sts_tt_round(size));
    sts_tt_lock lock = {sts_tt_mutex_lock, sts_tt_mutex_unlock, NULL};
    sts_token_table *t;

    if (mem == NULL) {
        return NULL;
    }
    memset(mem, 0, size);
    sts_table_format(mem, capacity);
    t = sts_table_attach(mem, &lock);
    if (t == NULL || pthread_mutex_init(&t->mutex, NULL) != 0) {
        free(t);
        free(mem);
        return NULL;
    }
    t->lock.ctx = &t->mutex;
    t->private_table = 1;
    return t;
}

void sts_table_destroy(sts_token_table *t)
{
    if (t == NULL) {
        return;
    }
    if (t->private_table) {
        pthread_mutex_destroy(&t->mutex);
        free(t->sh);
    }
    free(t);
}

/* The bucket of a digest (bytes 1..8: byte 0 is left to the token's own
 * distribution) and the shard of a bucket. */
static uint32_t sts_tt_bucket(const sts_tt_shared *sh, const unsigned char *d)
{
    uint64_t h;

    memcpy(&h, d + 1, sizeof(h));
    return (uint32_t)(h & (sh->nbuckets - 1));
}

static sts_tt_seq *sts_tt_shard(sts_tt_shared *sh, uint32_t bucket)
{
    return &sh->shard[bucket % STS_TT_SHARDS];
}

/* A writer starts and ends changing a shard (lock held). */
static void sts_tt_seq_begin(sts_tt_seq *q)
{
    STS_SET(&q->v, q->v | 1);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static void sts_tt_seq_end(sts_tt_seq *q)
{
    __atomic_store_n(&q->v, (q->v | 1) + 1, __ATOMIC_RELEASE);
}

/* ---- readers ---- */

int sts_table_get(sts_token_table *t,
                  const unsigned char digest[STS_DIGEST_LEN], sts_tt_token *out,
                  sts_tt_alloc_fn alloc, void *ctx)
{
    sts_tt_shared *sh = t->sh;
    uint32_t b = sts_tt_bucket(sh, digest);
    sts_tt_seq *q = sts_tt_shard(sh, b);
    char *buf = NULL;
    size_t buflen = 0;
    int attempt;

    for (attempt = 0; attempt < STS_TT_READ_TRIES; attempt++) {
        uint32_t s1 = __atomic_load_n(&q->v, __ATOMIC_ACQUIRE);
        uint32_t idx, steps = 0, c;
        uint16_t off[STS_TT_STRINGS];
        sts_tt_entry *e = NULL;
        size_t len = 0, pos;
        int64_t id, exp, until;
        uint32_t retire;
        int k, ok = 1;

        if (s1 & 1) {
            if (attempt >= 100) {
                sched_yield(); /* a writer of another process was preempted */
            }
            continue;
        }
        idx = STS_LOAD(&t->buckets[b]);
        while (idx != 0 && idx <= sh->capacity && steps++ < STS_TT_MAX_CHAIN) {
            sts_tt_entry *x = &t->entries[idx - 1];

            if (memcmp(x->digest, digest, STS_DIGEST_LEN) == 0) {
                e = x;
                break;
            }
            idx = STS_LOAD(&x->next);
        }
        if (e == NULL) {
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (STS_LOAD(&q->v) != s1) {
                continue;
            }
            return idx == 0 ? 0 : -2;
        }
        len = STS_LOAD(&e->len);
        if (len == 0 || len > STS_TT_MAX_STRINGS) {
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (STS_LOAD(&q->v) != s1) {
                continue;
            }
            return -2;
        }
        if (buflen < len) {
            buf = alloc(ctx, len);
            if (buf == NULL) {
                return -1;
            }
            buflen = len;
        }
        pos = len < STS_TT_INLINE ? len : STS_TT_INLINE;
        memcpy(buf, e->data, pos);
        c = STS_LOAD(&e->chunk);
        while (pos < len && c != 0 && c <= sh->nchunks) {
            size_t n =
                len - pos < STS_TT_CHUNK_DATA ? len - pos : STS_TT_CHUNK_DATA;

            memcpy(buf + pos, t->chunks[c - 1].data, n);
            pos += n;
            c = STS_LOAD(&t->chunks[c - 1].next);
        }
        id = STS_LOAD(&e->id);
        exp = STS_LOAD(&e->expiration_ms);
        until = STS_LOAD(&e->until_ms);
        retire = STS_LOAD(&e->retire);
        for (k = 0; k < STS_TT_STRINGS; k++) {
            off[k] = STS_LOAD(&e->off[k]);
        }
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (STS_LOAD(&q->v) != s1) {
            continue;
        }
        /* A stable read: the entry as its writer left it. */
        ok = pos == len && buf[len - 1] == '\0';
        for (k = 0; ok && k < STS_TT_STRINGS; k++) {
            ok = off[k] < len;
        }
        if (!ok) {
            return -2;
        }
        out->id = id;
        out->expiration_ms = exp;
        out->until_ms = until;
        out->retire = retire == STS_TT_RETIRE_PENDING;
        for (k = 0; k < STS_TT_STRINGS; k++) {
            out->str[k] = buf + off[k];
        }
        return 1;
    }
    return -2;
}

/* ---- writers (the lock held) ---- */

/* Empties the table a writer left half-written. */
static void sts_tt_reset(sts_token_table *t)
{
    sts_tt_shared *sh = t->sh;
    int i;

    for (i = 0; i < STS_TT_SHARDS; i++) {
        sts_tt_seq_begin(&sh->shard[i]);
    }
    memset(t->buckets, 0, (size_t)sh->nbuckets * sizeof(uint32_t));
    sh->entry_top = sh->entry_free = 0;
    sh->chunk_top = sh->chunk_free = 0;
    STS_SET(&sh->count, 0);
    STS_SET(&sh->chunks_used, 0);
    for (i = 0; i < STS_TT_SHARDS; i++) {
        sts_tt_seq_end(&sh->shard[i]);
    }
    __atomic_add_fetch(&sh->seq, 1, __ATOMIC_ACQ_REL);
    __atomic_add_fetch(&sh->resets, 1, __ATOMIC_ACQ_REL);
}

int sts_table_lock(sts_token_table *t)
{
    if (sts_tt_held == t->sh) {
        sts_tt_depth++;
        return 0;
    }
    if (sts_tt_held != NULL || t->lock.lock(t->lock.ctx) != 0) {
        return -1;
    }
    sts_tt_held = t->sh;
    sts_tt_depth = 1;
    if (t->sh->writing) {
        sts_tt_reset(t);
    }
    t->sh->writing = 1;
    return 0;
}

void sts_table_unlock(sts_token_table *t)
{
    if (sts_tt_held != t->sh || --sts_tt_depth > 0) {
        return;
    }
    t->sh->writing = 0;
    sts_tt_held = NULL;
    t->lock.unlock(t->lock.ctx);
}

/* The link pointing at a digest's entry, or at the 0 ending its chain. */
static uint32_t *sts_tt_find(sts_token_table *t, uint32_t bucket,
                             const unsigned char *d)
{
    uint32_t *link = &t->buckets[bucket];

    while (*link != 0 &&
           memcmp(t->entries[*link - 1].digest, d, STS_DIGEST_LEN) != 0) {
        link = &t->entries[*link - 1].next;
    }
    return link;
}

/* Returns an entry and its chunks to the free lists. */
static void sts_tt_free(sts_token_table *t, uint32_t idx)
{
    sts_tt_shared *sh = t->sh;
    sts_tt_entry *e = &t->entries[idx - 1];
    uint32_t c = e->chunk, n = sts_tt_chunks_for(e->len);

    while (n-- > 0 && c != 0) {
        uint32_t next = t->chunks[c - 1].next;

        STS_SET(&t->chunks[c - 1].next, sh->chunk_free);
        sh->chunk_free = c;
        STS_SET(&sh->chunks_used, sh->chunks_used - 1);
        c = next;
    }
    STS_SET(&e->next, sh->entry_free);
    sh->entry_free = idx;
    STS_SET(&sh->count, sh->count - 1);
}

static uint32_t sts_tt_take_entry(sts_tt_shared *sh, sts_tt_entry *entries)
{
    uint32_t idx = sh->entry_free;

    if (idx != 0) {
        sh->entry_free = entries[idx - 1].next;
    } else {
        idx = ++sh->entry_top;
    }
    STS_SET(&sh->count, sh->count + 1);
    return idx;
}

static uint32_t sts_tt_take_chunk(sts_tt_shared *sh, sts_tt_chunk *chunks)
{
    uint32_t c = sh->chunk_free;

    if (c != 0) {
        sh->chunk_free = chunks[c - 1].next;
    } else {
        c = ++sh->chunk_top;
    }
    STS_SET(&sh->chunks_used, sh->chunks_used + 1);
    return c;
}

/* Stores a token (lock held): 0, or < 0 as sts_table_put. */
static int sts_tt_put_locked(sts_token_table *t, const unsigned char *digest,
                             const sts_tt_token *tok)
{
    sts_tt_shared *sh = t->sh;
    size_t lens[STS_TT_STRINGS], total = 0, off = 0;
    uint32_t b = sts_tt_bucket(sh, digest), *link, old, idx, need, have;
    uint32_t *chunk_link;
    sts_tt_seq *q = sts_tt_shard(sh, b);
    sts_tt_entry *e;
    char flat[STS_TT_MAX_STRINGS];
    uint32_t retire = tok->retire ? STS_TT_RETIRE_PENDING : STS_TT_RETIRE_NONE;
    int k;

    for (k = 0; k < STS_TT_STRINGS; k++) {
        lens[k] = strlen(tok->str[k]) + 1;
        total += lens[k];
    }
    if (total > STS_TT_MAX_STRINGS) {
        return -1;
    }
    link = sts_tt_find(t, b, digest);
    old = *link;
    if (old == 0 && sh->count >= sh->capacity) {
        return -2;
    }
    need = sts_tt_chunks_for(total);
    have = sh->nchunks - sh->chunks_used +
           (old != 0 ? sts_tt_chunks_for(t->entries[old - 1].len) : 0);
    if (need > have) {
        return -1;
    }
    for (k = 0; k < STS_TT_STRINGS; k++) {
        memcpy(flat + off, tok->str[k], lens[k]);
        off += lens[k];
    }
    /* A first use that took the flag already retires the previous secret:
     * the synchronisation storing the rotation again does not give the
     * flag to a second one. */
    if (old != 0 && retire == STS_TT_RETIRE_PENDING &&
        t->entries[old - 1].retire == STS_TT_RETIRE_TAKEN) {
        retire = STS_TT_RETIRE_TAKEN;
    }
    sts_tt_seq_begin(q);
    if (old != 0) {
        STS_SET(link, t->entries[old - 1].next);
        sts_tt_free(t, old);
    }
    idx = sts_tt_take_entry(sh, t->entries);
    e = &t->entries[idx - 1];
    e->gen = __atomic_load_n(&sh->gen, __ATOMIC_ACQUIRE);
    e->id = tok->id;
    e->expiration_ms = tok->expiration_ms;
    e->until_ms = tok->until_ms;
    e->retire = retire;
    e->len = (uint16_t)total;
    memcpy(e->digest, digest, STS_DIGEST_LEN);
    for (k = 0, off = 0; k < STS_TT_STRINGS; k++) {
        e->off[k] = (uint16_t)off;
        off += lens[k];
    }
    off = total < STS_TT_INLINE ? total : STS_TT_INLINE;
    memcpy(e->data, flat, off);
    chunk_link = &e->chunk;
    *chunk_link = 0;
    while (off < total) {
        uint32_t c = sts_tt_take_chunk(sh, t->chunks);
        size_t n =
            total - off < STS_TT_CHUNK_DATA ? total - off : STS_TT_CHUNK_DATA;

        memcpy(t->chunks[c - 1].data, flat + off, n);
        t->chunks[c - 1].next = 0;
        *chunk_link = c;
        chunk_link = &t->chunks[c - 1].next;
        off += n;
    }
    STS_SET(&e->next, *link);
    STS_SET(link, idx);
    sts_tt_seq_end(q);
    return 0;
}

int sts_table_put(sts_token_table *t,
                  const unsigned char digest[STS_DIGEST_LEN],
                  const sts_tt_token *tok)
{
    int rc;

    if (sts_table_lock(t) != 0) {
        return -1;
    }
    rc = sts_tt_put_locked(t, digest, tok);
    sts_table_unlock(t);
    return rc;
}

int sts_table_put_if(sts_token_table *t,
                     const unsigned char digest[STS_DIGEST_LEN],
                     const sts_tt_token *tok, uint64_t ticket)
{
    int rc = 0;

    if (sts_table_lock(t) != 0) {
        return -1;
    }
    /* Under the lock: sts_table_changing moves seq before the change it
     * announces takes the lock. */
    if (__atomic_load_n(&t->sh->seq, __ATOMIC_ACQUIRE) == ticket) {
        rc = sts_tt_put_locked(t, digest, tok);
        rc = rc == 0 ? 1 : rc;
    }
    sts_table_unlock(t);
    return rc;
}

uint64_t sts_table_ticket(sts_token_table *t)
{
    return __atomic_load_n(&t->sh->seq, __ATOMIC_ACQUIRE);
}

void sts_table_changing(sts_token_table *t)
{
    __atomic_add_fetch(&t->sh->seq, 1, __ATOMIC_ACQ_REL);
}

/* Moves a digest's retire flag from one state to another (lock taken):
 * 1 when it did, 0 when the flag was in another state, -1 when the digest
 * is absent or the lock failed. A single word, read by readers as it is:
 * the shard's sequence number need not move. */
static int sts_tt_retire_move(sts_token_table *t, const unsigned char *digest,
                              uint32_t from, uint32_t to)
{
    uint32_t idx;
    int rc = -1;

    if (sts_table_lock(t) != 0) {
        return -1;
    }
    idx = *sts_tt_find(t, sts_tt_bucket(t->sh, digest), digest);
    if (idx != 0) {
        sts_tt_entry *e = &t->entries[idx - 1];

        rc = e->retire == from;
        if (rc) {
            __atomic_store_n(&e->retire, to, __ATOMIC_RELEASE);
        }
    }
    sts_table_unlock(t);
    return rc;
}

int sts_table_take_retire(sts_token_table *t,
                          const unsigned char digest[STS_DIGEST_LEN])
{
    return sts_tt_retire_move(t, digest, STS_TT_RETIRE_PENDING,
                              STS_TT_RETIRE_TAKEN);
}

void sts_table_return_retire(sts_token_table *t,
                             const unsigned char digest[STS_DIGEST_LEN])
{
    sts_tt_retire_move(t, digest, STS_TT_RETIRE_TAKEN, STS_TT_RETIRE_PENDING);
}

int sts_table_remove(sts_token_table *t,
                     const unsigned char digest[STS_DIGEST_LEN])
{
    sts_tt_shared *sh = t->sh;
    uint32_t b = sts_tt_bucket(sh, digest), *link, idx;
    sts_tt_seq *q = sts_tt_shard(sh, b);

    if (sts_table_lock(t) != 0) {
        return 0;
    }
    link = sts_tt_find(t, b, digest);
    idx = *link;
    if (idx != 0) {
        sts_tt_seq_begin(q);
        STS_SET(link, t->entries[idx - 1].next);
        sts_tt_free(t, idx);
        sts_tt_seq_end(q);
    }
    sts_table_unlock(t);
    return idx != 0;
}

void sts_table_new_generation(sts_token_table *t)
{
    __atomic_add_fetch(&t->sh->gen, 1, __ATOMIC_ACQ_REL);
}

size_t sts_table_sweep(sts_token_table *t)
{
    sts_tt_shared *sh = t->sh;
    uint32_t gen = __atomic_load_n(&sh->gen, __ATOMIC_ACQUIRE), b;
    size_t n = 0;

    if (sts_table_lock(t) != 0) {
        return 0;
    }
    for (b = 0; b < sh->nbuckets; b++) {
        uint32_t *link = &t->buckets[b];

        while (*link != 0) {
            uint32_t idx = *link;
            sts_tt_seq *q;

            if (t->entries[idx - 1].gen == gen) {
                link = &t->entries[idx - 1].next;
                continue;
            }
            q = sts_tt_shard(sh, b);
            sts_tt_seq_begin(q);
            STS_SET(link, t->entries[idx - 1].next);
            sts_tt_free(t, idx);
            sts_tt_seq_end(q);
            n++;
        }
    }
    sts_table_unlock(t);
    return n;
}

size_t sts_table_count(sts_token_table *t)
{
    return __atomic_load_n(&t->sh->count, __ATOMIC_RELAXED);
}

size_t sts_table_bytes(sts_token_table *t)
{
    sts_tt_shared *sh = t->sh;

    return (size_t)sh->entries_off + sts_table_count(t) * sizeof(sts_tt_entry) +
           (size_t)__atomic_load_n(&sh->chunks_used, __ATOMIC_RELAXED) *
               sizeof(sts_tt_chunk);
}

size_t sts_table_capacity(sts_token_table *t)
{
    return t->sh->capacity;
}

uint64_t sts_table_resets(sts_token_table *t)
{
    return __atomic_load_n(&t->sh->resets, __ATOMIC_ACQUIRE);
}
