/*
 * cache.h - per-process cache of verified tokens (and of unknown digests),
 * with revocation driven by the database's revision counter.
 *
 * One cache per database (sts_db: virtual hosts with different DBDParams
 * never share an answer), keyed by the token's SHA-256 digest; every
 * function works on the cache of the request's database. A positive entry holds
 * what authentication needs (sts_identity); a negative entry remembers briefly
 * that a digest is unknown so a flood of garbage cannot flood PostgreSQL. Every
 * function is safe to call from many threads at once.
 */
#ifndef STS_CACHE_H
#define STS_CACHE_H

#include "httpd.h"

#include "sts.h"

typedef enum {
    STS_CACHE_MISS = 0,   /* ask the database */
    STS_CACHE_HIT = 1,    /* *out filled (strings allocated from r->pool) */
    STS_CACHE_UNKNOWN = 2 /* the digest is known not to exist */
} sts_cache_result;

/* Creates this process's cache of db from the main server s's
 * STSTokenCacheTTL and STSTokenCacheEntries (child_init). */
void sts_cache_child_init(apr_pool_t *p, server_rec *s, sts_db *db);

/* How often each process reads each database's revision counter, at most. */
#define STS_REVISION_POLL_MS 500

/* Looks a digest up. At most every STS_REVISION_POLL_MS per process this
 * first reads the revision counter from the database and flushes the cache
 * when it moved (one thread polls; the others never wait); the same query
 * confirms the tokens in use whose TTL is running out, which then get a new
 * TTL (gone or changed ones are dropped). An entry is only
 * trusted for 1 s after the start of the last successful poll, or while the
 * database cannot be read (then until the entry's TTL ends); otherwise the
 * answer is STS_CACHE_MISS and the database decides. *ticket receives the
 * cache generation seen, to pass to sts_cache_put after a database lookup.
 * With STSTokenCacheTTL 0 this always answers STS_CACHE_MISS. */
sts_cache_result sts_cache_get(request_rec *r,
                               const unsigned char digest[STS_DIGEST_LEN],
                               sts_identity *out, apr_uint32_t *ticket);

/* Remembers a verified identity, or (id == NULL) that the digest is unknown.
 * Nothing is stored when the cache was flushed since ticket was issued (the
 * database answer may predate a revocation). */
void sts_cache_put(request_rec *r, const unsigned char digest[STS_DIGEST_LEN],
                   const sts_identity *id, apr_uint32_t ticket);

/* Forgets every entry of a token at once in the cache of r's database
 * (called after an API delete). */
void sts_cache_revoke(request_rec *r, int64_t token_id);

#endif
