/*
 * cache.c - per-process cache of verified tokens and of unknown digests.
 *
 * Why per process and not shared memory: a hit must cost almost nothing, and
 * httpd's event MPM runs few processes with many threads each, so a
 * per-process table is hit as often as a shared one while avoiding socache's
 * serialisation and shmcb's collapse with many keys. Revocation does not
 * depend on sharing: every process reads the database's revision counter at
 * most every STS_REVISION_POLL_MS and flushes when it moved.
 *
 * Layout: STS_CACHE_SHARDS shards chosen by the first digest byte (digests are
 * uniform), each with its own mutex, a chained hash table over a fixed array
 * of entries (STSTokenCacheEntries split between shards) and CLOCK eviction.
 * Entry strings are one malloc'd block, freed on eviction.
 */
#include "httpd.h"

#include "cache.h"

#include <stdlib.h>
#include <string.h>

#include "apr_atomic.h"
#include "apr_strings.h"
#include "apr_thread_mutex.h"
#include "http_config.h"
#include "http_log.h"

#include "store.h"

APLOG_USE_MODULE(sts_token);

#define STS_CACHE_SHARDS 16
/* Unknown digests are remembered at most this long (seconds). */
#define STS_NEGATIVE_TTL_MAX 60

typedef struct {
    unsigned char digest[STS_DIGEST_LEN];
    int in_use;
    int negative;
    int referenced; /* CLOCK bit */
    int next;       /* next entry in the bucket chain, -1 at the end */
    apr_time_t valid_until;
    int64_t id;
    int64_t expiration_ms;
    char *strings; /* "name\0roles\0" */
} sts_entry;

typedef struct {
    apr_thread_mutex_t *mutex;
    sts_entry *entries;
    int *buckets; /* index of the first entry, -1 when empty */
    int capacity;
    int nbuckets; /* power of two */
    int used;
    int hand; /* CLOCK hand */
} sts_shard;

typedef struct {
    sts_shard shards[STS_CACHE_SHARDS];
    apr_interval_time_t ttl;
    apr_interval_time_t negative_ttl;
    volatile apr_uint32_t generation; /* bumped by every flush */
    volatile apr_uint32_t polling;    /* 1 while one thread polls */
    apr_time_t next_poll;             /* written by the polling thread */
    int64_t revision;
    int have_revision;
} sts_cache;

/* The process's cache; NULL when STSTokenCacheTTL is 0. Process-wide, set
 * once in child_init before any request; holds no per-request state. */
static sts_cache *sts_proc_cache;

/* Bucket of a digest inside a shard (bytes 1..4; byte 0 picks the shard). */
static int sts_bucket(const sts_shard *sh, const unsigned char *d)
{
    apr_uint32_t h = ((apr_uint32_t)d[1] << 24) | ((apr_uint32_t)d[2] << 16) |
                     ((apr_uint32_t)d[3] << 8) | d[4];

    return (int)(h & (apr_uint32_t)(sh->nbuckets - 1));
}

/* Unlinks entry i from its bucket chain and frees it (shard locked). */
static void sts_entry_remove(sts_shard *sh, int i)
{
    sts_entry *e = &sh->entries[i];
    int *link = &sh->buckets[sts_bucket(sh, e->digest)];

    while (*link != -1 && *link != i) {
        link = &sh->entries[*link].next;
    }
    if (*link == i) {
        *link = e->next;
    }
    free(e->strings);
    e->strings = NULL;
    e->in_use = 0;
    e->next = -1;
    sh->used--;
}

/* Finds a digest in a shard (shard locked); -1 when absent. */
static int sts_entry_find(const sts_shard *sh, const unsigned char *d)
{
    int i = sh->buckets[sts_bucket(sh, d)];

    while (i != -1 && memcmp(sh->entries[i].digest, d, STS_DIGEST_LEN) != 0) {
        i = sh->entries[i].next;
    }
    return i;
}

/* Picks a free entry, evicting with CLOCK when the shard is full. */
static int sts_entry_alloc(sts_shard *sh)
{
    for (;;) {
        sts_entry *e = &sh->entries[sh->hand];
        int i = sh->hand;

        sh->hand = (sh->hand + 1) % sh->capacity;
        if (!e->in_use) {
            return i;
        }
        if (sh->used == sh->capacity && !e->referenced) {
            sts_entry_remove(sh, i);
            return i;
        }
        e->referenced = 0;
    }
}

/* Empties every shard and bumps the generation. */
static void sts_cache_flush(sts_cache *c)
{
    int s, i;

    apr_atomic_inc32(&c->generation);
    for (s = 0; s < STS_CACHE_SHARDS; s++) {
        sts_shard *sh = &c->shards[s];

        apr_thread_mutex_lock(sh->mutex);
        for (i = 0; i < sh->capacity; i++) {
            if (sh->entries[i].in_use) {
                sts_entry_remove(sh, i);
            }
        }
        apr_thread_mutex_unlock(sh->mutex);
    }
}

/* Frees the entries' strings when the process pool goes away. */
static apr_status_t sts_cache_cleanup(void *data)
{
    sts_cache *c = data;
    int s, i;

    for (s = 0; s < STS_CACHE_SHARDS; s++) {
        for (i = 0; i < c->shards[s].capacity; i++) {
            free(c->shards[s].entries[i].strings);
        }
    }
    sts_proc_cache = NULL;
    return APR_SUCCESS;
}

/* Creates the cache for this process from the main server's settings. */
void sts_cache_child_init(apr_pool_t *p, server_rec *s)
{
    sts_server_conf *sc =
        ap_get_module_config(s->module_config, &sts_token_module);
    sts_cache *c;
    int per_shard, i, k;

    if (sc->cache_ttl <= 0) {
        return;
    }
    c = apr_pcalloc(p, sizeof(*c));
    c->ttl = apr_time_from_sec(sc->cache_ttl);
    c->negative_ttl = apr_time_from_sec(sc->cache_ttl < STS_NEGATIVE_TTL_MAX
                                            ? sc->cache_ttl
                                            : STS_NEGATIVE_TTL_MAX);
    per_shard = (sc->cache_entries + STS_CACHE_SHARDS - 1) / STS_CACHE_SHARDS;
    for (i = 0; i < STS_CACHE_SHARDS; i++) {
        sts_shard *sh = &c->shards[i];

        if (apr_thread_mutex_create(&sh->mutex, APR_THREAD_MUTEX_DEFAULT, p) !=
            APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                         "cannot create the token cache's mutex; running "
                         "without a cache in this process");
            return;
        }
        sh->capacity = per_shard;
        sh->nbuckets = 1;
        while (sh->nbuckets < per_shard) {
            sh->nbuckets <<= 1;
        }
        sh->entries = apr_pcalloc(p, sizeof(sts_entry) * per_shard);
        sh->buckets = apr_palloc(p, sizeof(int) * sh->nbuckets);
        for (k = 0; k < sh->nbuckets; k++) {
            sh->buckets[k] = -1;
        }
        for (k = 0; k < per_shard; k++) {
            sh->entries[k].next = -1;
        }
    }
    apr_pool_cleanup_register(p, c, sts_cache_cleanup, apr_pool_cleanup_null);
    sts_proc_cache = c;
}

/* Reads the revision counter when due (one thread at a time; the others go
 * on with the cache as it is) and flushes the cache when it moved. */
static void sts_cache_poll(request_rec *r, sts_cache *c, apr_time_t now)
{
    int64_t rev;

    if (now < c->next_poll || apr_atomic_cas32(&c->polling, 1, 0) != 0) {
        return;
    }
    if (now >= c->next_poll) {
        c->next_poll = now + apr_time_from_msec(STS_REVISION_POLL_MS);
        if (sts_store_revision(r, &rev) == APR_SUCCESS) {
            if (!c->have_revision || rev != c->revision) {
                if (c->have_revision) {
                    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                                  "tokens changed (revision %" APR_INT64_T_FMT
                                  " -> %" APR_INT64_T_FMT "): cache flushed",
                                  c->revision, rev);
                }
                sts_cache_flush(c);
                c->revision = rev;
                c->have_revision = 1;
            }
        } else {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          "cannot read the token revision; cached tokens "
                          "stay valid until their cache TTL ends");
        }
    }
    apr_atomic_set32(&c->polling, 0);
}

/* Looks a digest up (see cache.h). */
sts_cache_result sts_cache_get(request_rec *r,
                               const unsigned char digest[STS_DIGEST_LEN],
                               sts_identity *out, apr_uint32_t *ticket)
{
    sts_cache *c = sts_proc_cache;
    sts_cache_result res = STS_CACHE_MISS;
    apr_time_t now;
    sts_shard *sh;
    int i;

    if (c == NULL) {
        return STS_CACHE_MISS;
    }
    now = apr_time_now();
    sts_cache_poll(r, c, now);
    *ticket = apr_atomic_read32(&c->generation);
    sh = &c->shards[digest[0] % STS_CACHE_SHARDS];
    apr_thread_mutex_lock(sh->mutex);
    i = sts_entry_find(sh, digest);
    if (i != -1) {
        sts_entry *e = &sh->entries[i];

        if (now >= e->valid_until) {
            sts_entry_remove(sh, i);
        } else if (e->negative) {
            res = STS_CACHE_UNKNOWN;
        } else {
            e->referenced = 1;
            out->id = e->id;
            out->expiration_ms = e->expiration_ms;
            out->name = apr_pstrdup(r->pool, e->strings);
            out->roles =
                apr_pstrdup(r->pool, e->strings + strlen(e->strings) + 1);
            res = STS_CACHE_HIT;
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
    sts_cache *c = sts_proc_cache;
    char *strings = NULL;
    sts_shard *sh;
    sts_entry *e;
    int i;

    if (c == NULL) {
        return;
    }
    if (id != NULL) {
        size_t nl = strlen(id->name) + 1, rl = strlen(id->roles) + 1;

        strings = malloc(nl + rl);
        if (strings == NULL) {
            return;
        }
        memcpy(strings, id->name, nl);
        memcpy(strings + nl, id->roles, rl);
    }
    sh = &c->shards[digest[0] % STS_CACHE_SHARDS];
    apr_thread_mutex_lock(sh->mutex);
    if (apr_atomic_read32(&c->generation) != ticket) {
        /* Flushed since the lookup began: the answer may be stale. */
        apr_thread_mutex_unlock(sh->mutex);
        free(strings);
        return;
    }
    i = sts_entry_find(sh, digest);
    if (i != -1) {
        sts_entry_remove(sh, i);
    }
    i = sts_entry_alloc(sh);
    e = &sh->entries[i];
    memcpy(e->digest, digest, STS_DIGEST_LEN);
    e->in_use = 1;
    e->referenced = 0;
    e->negative = id == NULL;
    e->valid_until = apr_time_now() + (id ? c->ttl : c->negative_ttl);
    e->id = id ? id->id : 0;
    e->expiration_ms = id ? id->expiration_ms : -1;
    e->strings = strings;
    i = sts_bucket(sh, digest);
    e->next = sh->buckets[i];
    sh->buckets[i] = (int)(e - sh->entries);
    sh->used++;
    apr_thread_mutex_unlock(sh->mutex);
    (void)r;
}

/* Forgets every entry of a token id in this process. */
void sts_cache_revoke(request_rec *r, int64_t token_id)
{
    sts_cache *c = sts_proc_cache;
    int s, i, n = 0;

    if (c == NULL) {
        return;
    }
    apr_atomic_inc32(&c->generation);
    for (s = 0; s < STS_CACHE_SHARDS; s++) {
        sts_shard *sh = &c->shards[s];

        apr_thread_mutex_lock(sh->mutex);
        for (i = 0; i < sh->capacity; i++) {
            if (sh->entries[i].in_use && !sh->entries[i].negative &&
                sh->entries[i].id == token_id) {
                sts_entry_remove(sh, i);
                n++;
            }
        }
        apr_thread_mutex_unlock(sh->mutex);
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "token id %" APR_INT64_T_FMT " revoked: %d cache entries "
                  "dropped in this process",
                  token_id, n);
}
