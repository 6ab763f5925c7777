/*
 * cache.c - per-process cache of verified tokens and of unknown digests,
 * with revocation driven by the database's revision counter.
 *
 * Each database (sts_db: the servers sharing DBDriver and DBDParams) has its
 * own cache, revision and poll state in each process: a digest is only ever
 * answered from the cache of the database that vouched for it, so virtual
 * hosts with their own databases never see each other's tokens, positive
 * or negative.
 *
 * Why per process and not shared memory (socache/shmcb): a hit must cost
 * almost nothing. The event and worker MPMs run a few processes with many
 * threads each, so a per-process table is hit about as often as a shared one,
 * without socache's global mutex, without serialising entries in and out of
 * shared memory, and without shmcb's weakness with many keys (it picks its
 * sub-cache by the key's first byte). Revocation does not depend on sharing:
 * every process reads the revision counter (sts_token_revision, bumped by a
 * trigger on every change to sts_tokens) at most every STS_REVISION_POLL_MS
 * and drops its whole cache when it moved.
 *
 * Layout: STS_CACHE_SHARDS shards chosen by the first digest byte (digests
 * are uniform), each with its own mutex and two fixed-size tables: verified
 * tokens and unknown digests (so a flood of garbage cannot evict the good
 * entries). A table is a chained hash over a fixed array of slots
 * (STSTokenCacheEntries split between the shards) with CLOCK eviction that
 * takes a free, expired or flushed slot before a live one.
 *
 * Flushing is O(1): every slot records the cache epoch it was stored in, and
 * a flush moves flush_epoch past every stored slot; stale slots are reclaimed
 * lazily. A database answer is only stored when no flush or revoke happened
 * since the lookup began (the caller's ticket), so an answer that predates a
 * revocation can never be cached.
 *
 * Revocation bound: a hit is served without question only until
 * STS_FRESH_MS after the start of the last successful revision poll. Past
 * that a hit waits for the poll in flight (the one the request itself runs
 * when the process was idle, or another thread's), at most until that poll
 * could no longer vouch for it, and counts as a miss, going to the
 * database, only when no poll answered in time. So a deletion committed
 * before a request is never honoured from the cache more than STS_FRESH_MS
 * later, and a slow poll (a database busy opening connections) does not turn
 * every hit into a lookup, which would add load exactly when the database is
 * slow. The exception is a database that the last poll could not reach:
 * then cached entries keep working until their TTL ends (documented in the
 * README). A database that answers without the revision row is no such
 * outage: nothing is trusted then (sts_cache_distrust).
 *
 * Renewal: the TTL is how long an entry is trusted without the database
 * confirming it. A token hit since it was stored (or last renewed) whose
 * TTL is less than half left is asked about in the next poll, in the same
 * query as the revision (at most STS_RENEW_MAX per poll); if the database
 * still has it unchanged it gets a new TTL from the poll's start, else it
 * is dropped. So tokens in use are not looked up one by one every TTL (with
 * tokens cached together, as after a flush, that was a wave of lookups),
 * and a change that bypassed the revision trigger (session_replication_role
 * replica on a logical replica, a disabled trigger) still reaches the cache
 * within the TTL, as it did when entries simply expired.
 *
 * Memory: slots are allocated once per process (calloc, so untouched pages
 * cost no RSS); a token's strings (name, roles, and STS_TOKEN_ID and
 * STS_TOKEN_EXPIRATION as published) live inside its slot when they fit
 * STS_INLINE_STRINGS, otherwise in one malloc'd block freed on eviction;
 * tokens whose strings exceed STS_MAX_CACHED_STRINGS are not cached.
 * Pools cannot free single blocks, which an evicting cache must do.
 */
#include "httpd.h"

#include "cache.h"

#include <stdlib.h>
#include <string.h>

#include "apr_strings.h"
#include "apr_thread_cond.h"
#include "apr_thread_mutex.h"
#include "http_config.h"
#include "http_log.h"

#include "clock.h"
#include "status.h"
#include "store.h"

APLOG_USE_MODULE(sts_token);

#define STS_CACHE_SHARDS 16
/* Hits are trusted this long after the start of a successful poll. */
#define STS_FRESH_MS 1000
/* Strings of this size (with their NULs) are stored in the slot. */
#define STS_INLINE_STRINGS 128
/* Tokens with longer strings are not cached (always looked up). */
#define STS_MAX_CACHED_STRINGS 2048
/* The identity's strings kept with an entry, in this order, each with its
 * NUL: name, roles, id_text, expiration_text. A hit copies them to the
 * request pool in one block. */
#define STS_CACHED_STRINGS 4
/* Renewal: at most this many tokens per poll are confirmed with the
 * database, found by scanning at most STS_RENEW_SCAN slots. */
#define STS_RENEW_MAX 512
#define STS_RENEW_SCAN 16384

/* The clocks; unit tests replace them. Every interval (poll schedule,
 * trust window, TTLs, waits) is measured on the monotonic one; the wall
 * clock only decides whether a token's expiration date has passed. */
#ifndef STS_CACHE_NOW
#define STS_CACHE_NOW() ((apr_time_t)sts_monotonic_now())
#endif
#ifndef STS_CACHE_WALL_NOW
#define STS_CACHE_WALL_NOW() apr_time_now()
#endif

#define STS_LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STS_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

/* What both tables' slots start with. */
typedef struct {
    unsigned char digest[STS_DIGEST_LEN];
    apr_uint64_t epoch; /* cache epoch when stored; 0 = free (unlinked) */
    apr_time_t valid_until;
    int next;       /* next slot in the bucket chain, -1 at the end */
    int referenced; /* CLOCK bit */
} sts_slot;

/* A verified token. */
typedef struct {
    sts_slot slot;
    int64_t id;
    int64_t expiration_ms;
    int used;      /* hit since it was stored or last renewed */
    char *strings; /* STS_CACHED_STRINGS: inline_strings or malloc'd */
    size_t strings_len;
    size_t offsets[STS_CACHED_STRINGS]; /* of each string in strings */
    char inline_strings[STS_INLINE_STRINGS];
} sts_pos_slot;

/* A fixed array of slots with a chained hash over it. */
typedef struct {
    char *base;    /* capacity slots of stride bytes */
    size_t stride; /* sizeof(sts_pos_slot) or sizeof(sts_slot) */
    int *buckets;  /* first slot of each chain, -1 when empty */
    /* Verified-token table only: the owning cache's flush epoch and its
     * count of live entries (reported to server-status). */
    const apr_uint64_t *flush_epoch;
    apr_uint64_t *live;
    int capacity;
    int nbuckets; /* power of two */
    int used;     /* linked slots (live or not yet reclaimed) */
    int hand;     /* CLOCK hand */
    int positive; /* 1 for the verified-token table */
} sts_table;

typedef struct {
    apr_thread_mutex_t *mutex;
    sts_table pos; /* verified tokens */
    sts_table neg; /* unknown digests */
} sts_shard;

struct sts_cache {
    sts_shard shards[STS_CACHE_SHARDS];
    void *blocks[4]; /* the slot and bucket arrays, freed at cleanup */
    apr_interval_time_t ttl;
    apr_interval_time_t negative_ttl;
    /* Shared between threads, accessed with STS_LOAD/STS_STORE/atomics
     * (times here and in the slots are on the monotonic clock): */
    apr_uint64_t epoch;       /* bumped by every flush and revoke */
    apr_uint64_t flush_epoch; /* slots stored before it are void */
    apr_uint64_t live;        /* verified tokens stored since the flush */
    apr_uint32_t polling;     /* 1 while a thread polls the revision */
    apr_uint32_t db_down;     /* 1 when the last poll failed */
    apr_uint32_t no_revision; /* 1 when the last poll found no revision */
    apr_time_t poll_started;  /* start of the latest poll */
    apr_time_t next_poll;     /* when the next poll is due */
    apr_time_t fresh_until;   /* hits are trusted until then */
    /* Only the polling thread touches these: */
    int64_t revision;
    int have_revision;
    int renew_cursor; /* where the next scan for due entries starts */
    /* The poller clears polling and broadcasts poll_done under poll_mutex;
     * hits that cannot be trusted wait there for it. */
    apr_thread_mutex_t *poll_mutex;
    apr_thread_cond_t *poll_done;
    sts_db *db; /* whose cache this is */
};
typedef struct sts_cache sts_cache;

/* Slot i of a table. */
static sts_slot *sts_slot_at(const sts_table *t, int i)
{
    return (sts_slot *)(t->base + (size_t)i * t->stride);
}

/* Bucket of a digest inside a shard (bytes 1..4; byte 0 picks the shard). */
static int sts_bucket(const sts_table *t, const unsigned char *d)
{
    apr_uint32_t h = ((apr_uint32_t)d[1] << 24) | ((apr_uint32_t)d[2] << 16) |
                     ((apr_uint32_t)d[3] << 8) | d[4];

    return (int)(h & (apr_uint32_t)(t->nbuckets - 1));
}

/* 1 when a linked slot still holds a usable entry. */
static int sts_slot_live(const sts_slot *s, apr_uint64_t flush_epoch,
                         apr_time_t now)
{
    return s->epoch != 0 && s->epoch >= flush_epoch && now < s->valid_until;
}

/* Unlinks slot i from its chain and frees what it owns (shard locked). */
static void sts_slot_release(sts_table *t, int i)
{
    sts_slot *s = sts_slot_at(t, i);
    int *link = &t->buckets[sts_bucket(t, s->digest)];

    if (s->epoch == 0) {
        return;
    }
    while (*link != -1 && *link != i) {
        link = &sts_slot_at(t, *link)->next;
    }
    if (*link == i) {
        *link = s->next;
    }
    if (t->positive) {
        sts_pos_slot *p = (sts_pos_slot *)s;

        if (s->epoch >= STS_LOAD(t->flush_epoch)) {
            __atomic_sub_fetch(t->live, 1, __ATOMIC_RELAXED);
            sts_status_cached_add(-1);
        }
        if (p->strings != p->inline_strings) {
            free(p->strings);
        }
        p->strings = NULL;
    }
    s->epoch = 0;
    s->next = -1;
    s->referenced = 0;
    t->used--;
}

/* Finds a digest's slot (shard locked); -1 when absent. Stale slots met on
 * the way are left for sts_table_take to reclaim. */
static int sts_table_find(const sts_table *t, const unsigned char *d)
{
    int i = t->buckets[sts_bucket(t, d)];

    while (i != -1 &&
           memcmp(sts_slot_at(t, i)->digest, d, STS_DIGEST_LEN) != 0) {
        i = sts_slot_at(t, i)->next;
    }
    return i;
}

/* Picks a slot for a new entry (shard locked): a free, expired or flushed
 * one first, else the first live one CLOCK finds unreferenced. The slot is
 * returned unlinked. */
static int sts_table_take(sts_table *t, apr_uint64_t flush_epoch,
                          apr_time_t now)
{
    int n, i;

    for (n = 0; n < 2 * t->capacity; n++) {
        sts_slot *s;

        i = t->hand;
        t->hand = (i + 1) % t->capacity;
        s = sts_slot_at(t, i);
        if (s->epoch == 0) {
            return i;
        }
        if (!sts_slot_live(s, flush_epoch, now)) {
            sts_slot_release(t, i);
            return i;
        }
        if (t->used < t->capacity) {
            continue; /* a free slot exists: do not evict a live one */
        }
        if (s->referenced) {
            s->referenced = 0;
            continue;
        }
        sts_slot_release(t, i);
        return i;
    }
    /* Not reached: a full sweep clears every CLOCK bit. */
    i = t->hand;
    sts_slot_release(t, i);
    return i;
}

/* Links a filled slot into its chain (shard locked). */
static void sts_table_link(sts_table *t, int i)
{
    sts_slot *s = sts_slot_at(t, i);
    int b = sts_bucket(t, s->digest);

    s->next = t->buckets[b];
    t->buckets[b] = i;
    t->used++;
}

/* Sets a table's geometry over slots/buckets allocated by the caller. */
static void sts_table_init(sts_table *t, char *base, size_t stride,
                           int *buckets, int capacity, int nbuckets,
                           int positive)
{
    int k;

    t->base = base;
    t->stride = stride;
    t->buckets = buckets;
    t->capacity = capacity;
    t->nbuckets = nbuckets;
    t->positive = positive;
    for (k = 0; k < nbuckets; k++) {
        buckets[k] = -1;
    }
    for (k = 0; k < capacity; k++) {
        sts_slot_at(t, k)->next = -1;
    }
}

/* Voids every entry at once: later lookups see none of them. */
static void sts_cache_flush(sts_cache *c)
{
    apr_uint64_t e = __atomic_add_fetch(&c->epoch, 1, __ATOMIC_ACQ_REL);

    STS_STORE(&c->flush_epoch, e);
    /* Its entries are void now: the process reports them gone. */
    sts_status_cached_add(
        -(int)__atomic_exchange_n(&c->live, 0, __ATOMIC_RELAXED));
}

/* Frees the cache's memory when the process pool goes away. */
static apr_status_t sts_cache_cleanup(void *data)
{
    sts_cache *c = data;
    int s, i;

    c->db->cache = NULL;
    for (s = 0; s < STS_CACHE_SHARDS; s++) {
        sts_table *t = &c->shards[s].pos;

        for (i = 0; i < t->capacity && t->base != NULL; i++) {
            sts_pos_slot *p = (sts_pos_slot *)sts_slot_at(t, i);

            if (p->slot.epoch != 0 && p->strings != p->inline_strings) {
                free(p->strings);
            }
        }
    }
    for (i = 0; i < 4; i++) {
        free(c->blocks[i]);
    }
    return APR_SUCCESS;
}

/* Integer square root (rounded up), for sizing the shards. */
static int sts_isqrt(int n)
{
    int r = 0;

    while (r * r < n) {
        r++;
    }
    return r;
}

/* How much earlier than the TTL an entry expires: up to an eighth of it,
 * by a digest byte (uniform), so that entries cached together (after a
 * flush, at startup) are not all looked up again at the same moment. */
static apr_interval_time_t sts_jitter(apr_interval_time_t ttl,
                                      const unsigned char *d)
{
    return ttl / 8 * d[5] / 256;
}

/* Creates db's cache for this process from the main server's settings. */
void sts_cache_child_init(apr_pool_t *p, server_rec *s, sts_db *db)
{
    sts_server_conf *sc =
        ap_get_module_config(s->module_config, &sts_token_module);
    sts_cache *c;
    int entries, per_shard, nbuckets, i;
    char *pos, *neg;
    int *pos_b, *neg_b;

    db->cache = NULL;
    if (sc->cache_ttl <= 0) {
        return;
    }
    /* post_config set the defaults when the directives are absent. */
    entries = sc->cache_entries;
    /* Digests spread unevenly over the shards: each gets its share plus
     * four standard deviations, so that STSTokenCacheEntries tokens fit
     * without evictions (total memory stays bounded, about 1.2x for the
     * default). */
    per_shard = (entries + STS_CACHE_SHARDS - 1) / STS_CACHE_SHARDS;
    per_shard += 4 * sts_isqrt(per_shard) + 4;
    for (nbuckets = 1; nbuckets < per_shard; nbuckets <<= 1) {
    }
    c = apr_pcalloc(p, sizeof(*c));
    c->db = db;
    c->blocks[0] = pos =
        calloc((size_t)per_shard * STS_CACHE_SHARDS, sizeof(sts_pos_slot));
    c->blocks[1] = neg =
        calloc((size_t)per_shard * STS_CACHE_SHARDS, sizeof(sts_slot));
    c->blocks[2] = pos_b =
        malloc(sizeof(int) * (size_t)nbuckets * STS_CACHE_SHARDS);
    c->blocks[3] = neg_b =
        malloc(sizeof(int) * (size_t)nbuckets * STS_CACHE_SHARDS);
    apr_pool_cleanup_register(p, c, sts_cache_cleanup, apr_pool_cleanup_null);
    if (pos == NULL || neg == NULL || pos_b == NULL || neg_b == NULL) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "cannot allocate the token cache (%d entries); running "
                     "without a cache in this process",
                     entries);
        return;
    }
    if (apr_thread_mutex_create(&c->poll_mutex, APR_THREAD_MUTEX_DEFAULT, p) !=
            APR_SUCCESS ||
        apr_thread_cond_create(&c->poll_done, p) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "cannot create the token cache's poll mutex; running "
                     "without a cache in this process");
        return;
    }
    for (i = 0; i < STS_CACHE_SHARDS; i++) {
        sts_shard *sh = &c->shards[i];
        size_t off = (size_t)i * per_shard;

        if (apr_thread_mutex_create(&sh->mutex, APR_THREAD_MUTEX_DEFAULT, p) !=
            APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                         "cannot create the token cache's mutex; running "
                         "without a cache in this process");
            return;
        }
        sts_table_init(&sh->pos, pos + off * sizeof(sts_pos_slot),
                       sizeof(sts_pos_slot), pos_b + (size_t)i * nbuckets,
                       per_shard, nbuckets, 1);
        sh->pos.flush_epoch = &c->flush_epoch;
        sh->pos.live = &c->live;
        sts_table_init(&sh->neg, neg + off * sizeof(sts_slot), sizeof(sts_slot),
                       neg_b + (size_t)i * nbuckets, per_shard, nbuckets, 0);
    }
    c->ttl = apr_time_from_sec(sc->cache_ttl);
    /* Unknown digests live as long: a token created meanwhile bumps the
     * revision, which flushes them within a second. */
    c->negative_ttl = c->ttl;
    c->epoch = 1; /* slot epoch 0 means free */
    c->flush_epoch = 1;
    db->cache = c;
}

/* Cached tokens the polling thread asks the database about. */
typedef struct {
    int n;
    unsigned char (*digest)[STS_DIGEST_LEN];
    const char **hex;
    int *where;          /* shard * capacity + slot */
    apr_uint64_t *epoch; /* the slot's epoch when collected */
} sts_due;

/* Collects (polling thread, into an empty *due) up to STS_RENEW_MAX tokens that
 * were hit since they were stored or last renewed and have less than half their
 * TTL left, scanning at most STS_RENEW_SCAN slots from where the last scan
 * stopped. */
static void sts_cache_collect_due(request_rec *r, sts_cache *c, apr_time_t now,
                                  sts_due *due)
{
    int cap = c->shards[0].pos.capacity;
    int total = cap * STS_CACHE_SHARDS;
    int scan = total < STS_RENEW_SCAN ? total : STS_RENEW_SCAN;
    apr_uint64_t flush_epoch = STS_LOAD(&c->flush_epoch);
    int64_t wall_ms = apr_time_as_msec(STS_CACHE_WALL_NOW());
    int g = c->renew_cursor % total, shard = -1, k;

    for (k = 0; k < scan && due->n < STS_RENEW_MAX; k++, g = (g + 1) % total) {
        sts_pos_slot *p;

        /* A shard's lock is held for at most 256 slots at a time. */
        if (g / cap != shard || k % 256 == 0) {
            if (shard >= 0) {
                apr_thread_mutex_unlock(c->shards[shard].mutex);
            }
            shard = g / cap;
            apr_thread_mutex_lock(c->shards[shard].mutex);
        }
        p = (sts_pos_slot *)sts_slot_at(&c->shards[shard].pos, g % cap);
        if (p->used && sts_slot_live(&p->slot, flush_epoch, now) &&
            p->slot.valid_until - now < c->ttl / 2 &&
            (p->expiration_ms < 0 || p->expiration_ms > wall_ms)) {
            char *hex = apr_palloc(r->pool, STS_DIGEST_HEX_LEN + 1);

            if (due->hex == NULL) {
                due->digest =
                    apr_palloc(r->pool, sizeof(*due->digest) * STS_RENEW_MAX);
                due->hex =
                    apr_palloc(r->pool, sizeof(*due->hex) * STS_RENEW_MAX);
                due->where =
                    apr_palloc(r->pool, sizeof(*due->where) * STS_RENEW_MAX);
                due->epoch =
                    apr_palloc(r->pool, sizeof(*due->epoch) * STS_RENEW_MAX);
            }
            memcpy(due->digest[due->n], p->slot.digest, STS_DIGEST_LEN);
            sts_digest_to_hex(p->slot.digest, hex);
            due->hex[due->n] = hex;
            due->where[due->n] = g;
            due->epoch[due->n] = p->slot.epoch;
            due->n++;
        }
    }
    if (shard >= 0) {
        apr_thread_mutex_unlock(c->shards[shard].mutex);
    }
    c->renew_cursor = g;
}

/* Applies what the database said (rows, read in the snapshot of an
 * unchanged revision) about the due tokens: each one still there and
 * unchanged is trusted for another TTL from the poll's start; each one gone
 * or changed is dropped. A change that did not move the revision bypassed
 * the trigger, so it reached the caches only now, not within a second:
 * that is logged as a warning. */
static void sts_cache_renew(request_rec *r, sts_cache *c, apr_time_t now,
                            const sts_due *due, sts_token_row *const *rows)
{
    int cap = c->shards[0].pos.capacity;
    int renewed = 0, dropped = 0, i;

    for (i = 0; i < due->n; i++) {
        sts_shard *sh = &c->shards[due->where[i] / cap];
        sts_pos_slot *p =
            (sts_pos_slot *)sts_slot_at(&sh->pos, due->where[i] % cap);
        const sts_token_row *t = rows[i];

        apr_thread_mutex_lock(sh->mutex);
        if (p->slot.epoch == due->epoch[i] &&
            p->slot.epoch >= STS_LOAD(&c->flush_epoch) &&
            memcmp(p->slot.digest, due->digest[i], STS_DIGEST_LEN) == 0) {
            if (t != NULL && t->id == p->id &&
                t->expiration_ms == p->expiration_ms &&
                strcmp(t->name, p->strings + p->offsets[0]) == 0 &&
                strcmp(t->roles, p->strings + p->offsets[1]) == 0) {
                p->slot.valid_until =
                    now + c->ttl - sts_jitter(c->ttl, p->slot.digest);
                p->used = 0;
                renewed++;
            } else {
                sts_slot_release(&sh->pos, due->where[i] % cap);
                dropped++;
            }
        }
        apr_thread_mutex_unlock(sh->mutex);
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "token cache: %d entries renewed, %d dropped", renewed,
                  dropped);
    if (dropped > 0) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "%d cached tokens were deleted or changed in sts_tokens "
                      "without the revision counter moving: such changes "
                      "bypass its trigger (session_replication_role = "
                      "replica, a disabled trigger) and reach the caches "
                      "only within STSTokenCacheTTL, not within a second; "
                      "dropped them",
                      dropped);
    }
}

/* The database answers but sts_token_revision has no row: deleted by hand
 * or by a role allowed to. The trigger's bumps then change nothing, so the
 * cache could not learn of a revocation: it is flushed and no hit is
 * trusted (every token goes to the database) until the row is back. Unlike
 * an unreachable database, this does not keep cached tokens working. */
static void sts_cache_distrust(request_rec *r, sts_cache *c)
{
    sts_cache_flush(c);
    c->have_revision = 0;
    STS_STORE(&c->fresh_until, 0);
    STS_STORE(&c->db_down, 0);
    if (!STS_LOAD(&c->no_revision)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "table sts_token_revision has no row, so deletions "
                      "cannot reach the token cache: the cache is off and "
                      "every token is looked up until the row is back. "
                      "Restore it as the schema's owner: INSERT INTO "
                      "sts_token_revision (singleton, revision) VALUES "
                      "(true, 0) (or apply sql/schema.sql again)");
        STS_STORE(&c->no_revision, 1);
    }
}

/* Reads the revision counter when due (one thread at a time; the others go
 * on without waiting) and flushes the cache when it moved; in the same
 * query, confirms the cached tokens in use whose TTL is running out. */
static void sts_cache_poll(request_rec *r, sts_cache *c, apr_time_t now)
{
    apr_uint32_t idle = 0;
    sts_token_row **rows;
    apr_status_t rv;
    sts_due due;
    int64_t rev;

    if (now < STS_LOAD(&c->next_poll) ||
        !__atomic_compare_exchange_n(&c->polling, &idle, 1, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        return;
    }
    if (now < STS_LOAD(&c->next_poll)) {
        STS_STORE(&c->polling, 0); /* another thread just polled */
        return;
    }
    STS_STORE(&c->next_poll, now + apr_time_from_msec(STS_REVISION_POLL_MS));
    STS_STORE(&c->poll_started, now);
    memset(&due, 0, sizeof(due));
    if (c->have_revision) {
        sts_cache_collect_due(r, c, now, &due);
    }
    rows = apr_palloc(r->pool, sizeof(*rows) * (due.n + 1));
    rv = sts_store_poll(r, due.hex, due.n, rows, &rev);
    if (rv == APR_NOTFOUND) {
        sts_cache_distrust(r, c);
    } else if (rv == APR_SUCCESS) {
        if (c->have_revision && rev == c->revision) {
            if (due.n > 0) {
                sts_cache_renew(r, c, now, &due, rows);
            }
        } else {
            if (c->have_revision) {
                ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                              "tokens changed (revision %" APR_INT64_T_FMT
                              " -> %" APR_INT64_T_FMT "): token cache flushed",
                              c->revision, rev);
            }
            sts_cache_flush(c);
            c->revision = rev;
            c->have_revision = 1;
        }
        if (STS_LOAD(&c->db_down) || STS_LOAD(&c->no_revision)) {
            ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                          "token revision readable again: the token cache "
                          "follows the database again");
            STS_STORE(&c->db_down, 0);
            STS_STORE(&c->no_revision, 0);
        }
        sts_status_poll_ok(apr_time_now(), rev);
        /* Trust hits for STS_FRESH_MS from the poll's start: a change
         * committed before then is reflected in rev. */
        STS_STORE(&c->fresh_until, now + apr_time_from_msec(STS_FRESH_MS));
    } else if (!STS_LOAD(&c->db_down)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "cannot read the token revision: cached tokens stay "
                      "valid until their cache TTL ends, other tokens get "
                      "503 until the database answers");
        STS_STORE(&c->db_down, 1);
    }
    apr_thread_mutex_lock(c->poll_mutex);
    STS_STORE(&c->polling, 0);
    apr_thread_cond_broadcast(c->poll_done);
    apr_thread_mutex_unlock(c->poll_mutex);
}

/* 1 when a hit at now may be served: a poll vouched for the cache within
 * STS_FRESH_MS before now, or the database could not be read. */
static int sts_cache_trusted(sts_cache *c, apr_time_t now)
{
    return now < STS_LOAD(&c->fresh_until) || STS_LOAD(&c->db_down);
}

/* Waits for the poll in flight, if any, as long as its success could still
 * vouch for a hit at now (it started less than STS_FRESH_MS before now);
 * then says whether a hit at now may be served. */
static int sts_cache_wait_trusted(sts_cache *c, apr_time_t now)
{
    apr_time_t started = STS_LOAD(&c->poll_started);
    apr_time_t limit = started + apr_time_from_msec(STS_FRESH_MS);

    apr_thread_mutex_lock(c->poll_mutex);
    while (STS_LOAD(&c->polling) && STS_LOAD(&c->poll_started) == started) {
        apr_time_t t = STS_CACHE_NOW();

        if (t >= limit || apr_thread_cond_timedwait(c->poll_done, c->poll_mutex,
                                                    limit - t) == APR_TIMEUP) {
            break;
        }
    }
    apr_thread_mutex_unlock(c->poll_mutex);
    return sts_cache_trusted(c, now);
}

/* Looks a digest up (see cache.h). */
sts_cache_result sts_cache_get(request_rec *r,
                               const unsigned char digest[STS_DIGEST_LEN],
                               sts_identity *out, apr_uint32_t *ticket)
{
    sts_cache *c = sts_request_db(r)->cache;
    sts_cache_result res = STS_CACHE_MISS;
    apr_uint64_t flush_epoch;
    apr_time_t now;
    sts_shard *sh;
    int trusted, i;

    *ticket = 0;
    if (c == NULL) {
        return STS_CACHE_MISS;
    }
    now = STS_CACHE_NOW();
    sts_cache_poll(r, c, now);
    /* Trust first, then the epochs: a poll flushes before it publishes
     * fresh_until, so epochs read after a trusted fresh_until include the
     * flush that poll made. */
    trusted = sts_cache_trusted(c, now) || sts_cache_wait_trusted(c, now);
    *ticket = (apr_uint32_t)STS_LOAD(&c->epoch);
    flush_epoch = STS_LOAD(&c->flush_epoch);
    sh = &c->shards[digest[0] % STS_CACHE_SHARDS];
    apr_thread_mutex_lock(sh->mutex);
    i = sts_table_find(&sh->pos, digest);
    if (i != -1 && sts_slot_live(sts_slot_at(&sh->pos, i), flush_epoch, now)) {
        sts_pos_slot *p = (sts_pos_slot *)sts_slot_at(&sh->pos, i);

        p->slot.referenced = 1;
        if (trusted) {
            p->used = 1;
            /* Copies: the slot may be reused as soon as the lock goes. */
            char *b = apr_pmemdup(r->pool, p->strings, p->strings_len);

            out->id = p->id;
            out->expiration_ms = p->expiration_ms;
            out->name = b + p->offsets[0];
            out->roles = b + p->offsets[1];
            out->id_text = b + p->offsets[2];
            out->expiration_text = b + p->offsets[3];
            res = STS_CACHE_HIT;
        }
    } else {
        i = sts_table_find(&sh->neg, digest);
        if (i != -1 &&
            sts_slot_live(sts_slot_at(&sh->neg, i), flush_epoch, now)) {
            sts_slot_at(&sh->neg, i)->referenced = 1;
            if (trusted) {
                res = STS_CACHE_UNKNOWN;
            }
        }
    }
    apr_thread_mutex_unlock(sh->mutex);
    if (res != STS_CACHE_MISS) {
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, "token cache %s",
                      res == STS_CACHE_HIT ? "hit" : "hit (unknown digest)");
    }
    return res;
}

/* Stores a database answer (see cache.h). */
void sts_cache_put(request_rec *r, const unsigned char digest[STS_DIGEST_LEN],
                   const sts_identity *id, apr_uint32_t ticket)
{
    sts_cache *c = sts_request_db(r)->cache;
    const char *strs[STS_CACHED_STRINGS];
    size_t lens[STS_CACHED_STRINGS], total = 0;
    char *heap = NULL;
    apr_uint64_t epoch;
    apr_time_t now;
    sts_table *t;
    sts_shard *sh;
    sts_slot *s;
    int i;

    if (c == NULL || ticket == 0) {
        return;
    }
    if (id != NULL) {
        strs[0] = id->name;
        strs[1] = id->roles;
        strs[2] = id->id_text;
        strs[3] = id->expiration_text;
        for (i = 0; i < STS_CACHED_STRINGS; i++) {
            lens[i] = strlen(strs[i]) + 1;
            total += lens[i];
        }
        if (total > STS_MAX_CACHED_STRINGS) {
            ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                          "token id %" APR_INT64_T_FMT " not cached: name "
                          "and roles too long",
                          id->id);
            return;
        }
        if (total > STS_INLINE_STRINGS && (heap = malloc(total)) == NULL) {
            return;
        }
    }
    now = STS_CACHE_NOW();
    sh = &c->shards[digest[0] % STS_CACHE_SHARDS];
    apr_thread_mutex_lock(sh->mutex);
    epoch = STS_LOAD(&c->epoch);
    if ((apr_uint32_t)epoch != ticket) {
        /* Flushed or revoked since the lookup began: the answer may be
         * stale. */
        apr_thread_mutex_unlock(sh->mutex);
        free(heap);
        return;
    }
    if ((i = sts_table_find(&sh->pos, digest)) != -1) {
        sts_slot_release(&sh->pos, i);
    }
    if ((i = sts_table_find(&sh->neg, digest)) != -1) {
        sts_slot_release(&sh->neg, i);
    }
    t = id != NULL ? &sh->pos : &sh->neg;
    i = sts_table_take(t, STS_LOAD(&c->flush_epoch), now);
    s = sts_slot_at(t, i);
    memcpy(s->digest, digest, STS_DIGEST_LEN);
    s->epoch = epoch;
    s->referenced = 0;
    s->valid_until = now + (id != NULL ? c->ttl : c->negative_ttl);
    s->valid_until -= sts_jitter(id != NULL ? c->ttl : c->negative_ttl, digest);
    if (id != NULL) {
        sts_pos_slot *p = (sts_pos_slot *)s;

        p->id = id->id;
        p->expiration_ms = id->expiration_ms;
        p->used = 0;
        size_t off = 0;
        int k;

        p->strings = heap != NULL ? heap : p->inline_strings;
        p->strings_len = total;
        for (k = 0; k < STS_CACHED_STRINGS; k++) {
            p->offsets[k] = off;
            memcpy(p->strings + off, strs[k], lens[k]);
            off += lens[k];
        }
    }
    sts_table_link(t, i);
    if (id != NULL) {
        __atomic_add_fetch(&c->live, 1, __ATOMIC_RELAXED);
        sts_status_cached_add(1);
    }
    apr_thread_mutex_unlock(sh->mutex);
}

/* Forgets every entry of a token id in this process at once. */
void sts_cache_revoke(request_rec *r, int64_t token_id)
{
    sts_cache *c = sts_request_db(r)->cache;
    int s, i, n = 0;

    if (c == NULL) {
        return;
    }
    /* Invalidates tickets first: a lookup in flight cannot re-add it. */
    __atomic_add_fetch(&c->epoch, 1, __ATOMIC_ACQ_REL);
    for (s = 0; s < STS_CACHE_SHARDS; s++) {
        sts_table *t = &c->shards[s].pos;

        apr_thread_mutex_lock(c->shards[s].mutex);
        for (i = 0; i < t->capacity; i++) {
            sts_pos_slot *p = (sts_pos_slot *)sts_slot_at(t, i);

            if (p->slot.epoch != 0 && p->id == token_id) {
                sts_slot_release(t, i);
                n++;
            }
        }
        apr_thread_mutex_unlock(c->shards[s].mutex);
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "token id %" APR_INT64_T_FMT " revoked: %d cache entries "
                  "dropped in this process",
                  token_id, n);
}
