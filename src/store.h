/*
 * store.h - the PostgreSQL side, through mod_dbd's pooled connections.
 *
 * Every statement is prepared on each pooled session the first time it is
 * used (labels "sts_token_*"). When PostgreSQL restarts, mod_dbd silently
 * reconnects and the new session lacks those statements: every call here
 * notices a failed statement, re-prepares on that connection and retries
 * once, so the module recovers without an httpd restart.
 *
 * Each call takes a connection from the pool and gives it back before it
 * returns (never held for the rest of the request). In a threaded MPM the
 * threads of a process take their turn at each database's pool through a
 * gate bounded by
 * STSTokenDBAcquireTimeout (see store.c). Every function returns APR_SUCCESS
 * or an error status after logging the database's message (at error level
 * at most once per report interval, with the number of requests refused;
 * see outage.h); the caller answers 503 (fail closed) through
 * sts_store_unavailable.
 */
#ifndef STS_STORE_H
#define STS_STORE_H

#include "apr_tables.h"
#include "httpd.h"

#include "sts.h"

/* One row of sts_tokens, as the API and authentication need it. */
typedef struct {
    int64_t id;
    const char *name;
    const char *description;       /* NULL when unset */
    const char *dedicated_subject; /* NULL when unset */
    const char *roles;             /* comma-separated, stored order */
    int64_t expiration_ms;         /* -1 when none */
    int64_t last_update_ms;
} sts_token_row;

/* Looks up mod_dbd's exported functions (post_config). Returns an error
 * string (mod_dbd is not loaded) or NULL. */
const char *sts_store_register(apr_pool_t *p, server_rec *s);

/* Gives every server its sts_db: one per distinct DBDriver and DBDParams
 * (own or inherited), as mod_dbd groups its pools (post_config; the list
 * goes to the main server's sts_server_conf.dbs). */
void sts_store_assign_databases(apr_pool_t *p, server_rec *s);

/* Creates this process's gate in front of db's mod_dbd pool, with the main
 * server s's STSTokenDBAcquireTimeout (child_init; threaded MPMs only). */
void sts_store_child_init(apr_pool_t *p, server_rec *s, sts_db *db);

/* Counts r as refused for want of the database and sets its Retry-After;
 * the caller answers 503. */
void sts_store_unavailable(request_rec *r);

/* Looks a digest up. *out is NULL when no token has that digest. */
apr_status_t sts_store_lookup(request_rec *r, const char *digest_hex,
                              sts_token_row **out);

/* All tokens, sorted by name then id (array of sts_token_row). */
apr_status_t sts_store_list(request_rec *r, apr_array_header_t **out);

/* Inserts a token with a fresh random id (retrying on an id collision) and
 * sets row->id and row->last_update_ms. row->roles is comma-separated and
 * already validated. A digest collision is an error (never happens with
 * 160-bit secrets). */
apr_status_t sts_store_create(request_rec *r, sts_token_row *row,
                              const char *digest_hex);

/* Deletes by id; *deleted is the row that went away (id, name, roles), or
 * NULL when none had that id. */
apr_status_t sts_store_delete(request_rec *r, int64_t id,
                              sts_token_row **deleted);

/* One poll of the token cache, one statement: the revision counter (bumped
 * by a trigger on every change to sts_tokens) and, read in the same
 * snapshot, the rows of n digests (STS_DIGEST_HEX_LEN hex characters each;
 * n may be 0): rows[i] is the token with digest_hex[i], or NULL when none
 * has it. APR_NOTFOUND (not logged) when sts_token_revision has no row. */
apr_status_t sts_store_poll(request_rec *r, const char *const *digest_hex,
                            int n, sts_token_row **rows, int64_t *revision);

#endif
