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
    /* sts_store_list only: the last use recorded (epoch ms, -1 never) and
     * its client address ("" unknown). */
    int64_t last_used_ms;
    const char *last_used_from;
    const char *digest; /* hex; set by sts_store_delete only */
    /* A digest authentication reads (lookup, changes, pages): */
    int64_t until_ms; /* a rotated-away secret's end; -1: current secret */
    int retire;       /* current secret of a token with a live previous one */
} sts_token_row;

/* What sts_store_rotate did. */
typedef struct {
    sts_token_row token;    /* name, roles, expiration, last update */
    const char *replaced;   /* hex digest the rotation replaced */
    int64_t replaced_until; /* epoch ms it stays valid; -1: not at all */
    const char *dropped;    /* hex previous digest that died, or NULL */
} sts_rotation;

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

/* Deletes by id; *deleted is the row that went away (id, name, roles,
 * digest), or
 * NULL when none had that id. */
apr_status_t sts_store_delete(request_rec *r, int64_t id,
                              sts_token_row **deleted);

/* The name and roles (comma-separated) of token id; *roles NULL when no
 * token has that id. */
apr_status_t sts_store_token_roles(request_rec *r, int64_t id,
                                   const char **name, const char **roles);

/* Rotates token id (sql/schema.sql, sts_token_rotate): digest_hex becomes
 * its digest, the one it replaces stays valid for grace_ms (0: not at
 * all), its expiration becomes expiration_ms unless that is -1. *out is
 * NULL when no token has that id. */
apr_status_t sts_store_rotate(request_rec *r, int64_t id,
                              const char *digest_hex, int64_t grace_ms,
                              int64_t expiration_ms, sts_rotation **out);

/* The first use of token id's new secret (digest_hex) retires its previous
 * one (sts_token_retire_previous). *retired is the hex digest retired, or
 * NULL when there was none (already retired, or rotated again). */
apr_status_t sts_store_retire(request_rec *r, int64_t id,
                              const char *digest_hex, const char **retired);

/* Receives one token read by the synchronisation: digest_hex is
 * STS_DIGEST_HEX_LEN characters; row is NULL when no token has that digest
 * any more. */
typedef void (*sts_store_row_fn)(void *ctx, const char *digest_hex,
                                 const sts_token_row *row);

/* One statement, for the synchronisation's thread (p: its pool, s: a server
 * of the database; quiet: log nothing): the revision, the horizon (changes
 * at or below it may be pruned) and, in the same snapshot when since >=
 * horizon, every token changed after revision since, each handed to fn with
 * its current row. APR_ENOENT when sts_token_revision has no row. */
apr_status_t sts_store_changes(apr_pool_t *p, server_rec *s, int quiet,
                               int64_t since, sts_store_row_fn fn, void *ctx,
                               int64_t *revision, int64_t *horizon);

/* One statement: up to limit tokens with digests after the hex digest after
 * ("" for the first page), in digest order, handed to fn; *revision is the
 * revision of the same snapshot; *n how many tokens. APR_ENOENT when
 * sts_token_revision has no row. */
apr_status_t sts_store_page(apr_pool_t *p, server_rec *s, int quiet,
                            const char *after, int limit, sts_store_row_fn fn,
                            void *ctx, int64_t *revision, int *n);

/* One statement, for the synchronisation's thread: records the uses this
 * process noted (PostgreSQL array literals of the same length: token ids,
 * epoch ms, client addresses or ""), through sts_token_note_use; *written
 * is the number of rows it wrote (at most one per token per minute). */
apr_status_t sts_store_note_uses(apr_pool_t *p, server_rec *s, int quiet,
                                 const char *ids, const char *used_ms,
                                 const char *addresses, int *written);

#endif
