/*
 * cache.h - what authentication asks about a token, answered by this
 * process's token table of the request's database when it can be trusted,
 * else by PostgreSQL.
 *
 * Each database (sts_db) gets one token table (token_table.h) per httpd
 * instance, in shared memory, holding every valid token, kept equal to
 * sts_tokens by one process's thread at a time reading the database's
 * change log (sync.h). A known
 * digest is answered from the table, an unknown one refused without the
 * database, as long as the table was current less than a second ago; else
 * the database decides, one lookup per request (fail closed). With
 * STSTokenCacheTTL 0 there is no table: every request is looked up.
 *
 * The same thread writes when each token was last used (last_use.h).
 */
#ifndef STS_CACHE_H
#define STS_CACHE_H

#include "httpd.h"

#include "credentials.h"
#include "store.h"
#include "sts.h"

/* Registers the table's mutex type (pre_config). */
void sts_cache_pre_config(apr_pool_t *pconf);

/* Creates the shared table of every database of the main server s, sized
 * by its STSTokenCacheEntries (post_config); gone with pconf. */
int sts_cache_post_config(apr_pool_t *pconf, server_rec *s);

/* Starts this process's thread for db: attached to db's shared table and
 * taking its turn at its synchronisation, with the main server s's
 * STSTokenCacheTTL and STSTokenCacheEntries (no table with STSTokenCacheTTL
 * 0), and writing last use (child_init); they stop with p, after a last
 * write of the uses noted. */
void sts_cache_child_init(apr_pool_t *p, server_rec *s, sts_db *db);

/* Notes that the token id authenticated r (r->request_time, from
 * r->useragent_ip: the client address mod_remoteip may have set) for the
 * thread to write to sts_token_last_use (last_use.h): no database work in
 * the request. */
void sts_cache_note_use(request_rec *r, const sts_identity *id);

/* Finds the token a request presented (token of len bytes, with the right
 * length and prefix, and its digest): OK with *out set,
 * HTTP_UNAUTHORIZED with *why set, or HTTP_SERVICE_UNAVAILABLE (the
 * database was needed and could not answer; logged). Expiry is the
 * caller's to check. */
int sts_cache_find(request_rec *r, const char *token, size_t len,
                   const unsigned char digest[STS_DIGEST_LEN],
                   sts_identity **out, const char **why);

/* For the token API: a ticket taken before creating a token, then the
 * created token (row with its id), which works at once in this process.
 * Other processes and hosts learn it from the change log. */
uint64_t sts_cache_ticket(request_rec *r);
void sts_cache_created(request_rec *r,
                       const unsigned char digest[STS_DIGEST_LEN],
                       const sts_token_row *row, uint64_t ticket);

/* Tokens in the shared tables of every database, and the bytes they
 * take (server-status). */
void sts_cache_held(size_t *tokens, size_t *bytes);

/* For the token API: a token this process deleted (hex digest; NULL:
 * none) is refused at once on this host. */
void sts_cache_deleted(request_rec *r, const char *digest_hex);

/* For the token API: a token this process rotated (digest: its new one,
 * ticket taken before the statement) works at once on this host with its
 * new secret, and its old secrets as the rotation left them. */
void sts_cache_rotated(request_rec *r,
                       const unsigned char digest[STS_DIGEST_LEN],
                       const sts_rotation *rot, uint64_t ticket);

/* For authentication: id's secret (digest) is the new one of a rotated
 * token whose previous secret is still valid (id->retire_previous), and it
 * just authenticated r. Retires the previous secret: in the database (the
 * change log takes it to every host within a second) and at once in
 * this host's table; one request per host does so. A database
 * failure is logged and leaves r alone (the next use tries again, and the
 * grace period ends the previous secret in any case). */
void sts_cache_retire(request_rec *r,
                      const unsigned char digest[STS_DIGEST_LEN],
                      const sts_identity *id);

#endif
