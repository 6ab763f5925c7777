/*
 * sts.h - declarations shared by the Apache-facing parts of mod_sts_token:
 * the module record, configuration and the authenticated identity.
 */
#ifndef STS_H
#define STS_H

#include <stdint.h>

#include "apr_tables.h"
#include "httpd.h"
#include "http_config.h"

#include "outage.h"
#include "token.h"
#include "version.h"

extern module AP_MODULE_DECLARE_DATA sts_token_module;

#define STS_AUTH_TYPE "ServiceToken"
/* r->notes key: why authentication refused a presented token, for the
 * token API's JSON error body (never the secret). */
#define STS_NOTE_REFUSAL "sts-token-refusal"

/* Defaults of the server-wide directives. */
#define STS_DEFAULT_CACHE_TTL 300
#define STS_DEFAULT_CACHE_ENTRIES 100000
#define STS_DEFAULT_DB_ACQUIRE_TIMEOUT_MS 1000

/* Defaults and bound of STSTokenRotateGrace / STSTokenRotateGraceMax
 * (seconds). */
#define STS_DEFAULT_ROTATE_GRACE 3600
#define STS_DEFAULT_ROTATE_GRACE_MAX 86400
#define STS_MAX_ROTATE_GRACE 31536000

/* Per-directory configuration. Unset fields are -1 and merge from the parent.
 */
typedef struct {
    int hide_credentials; /* STSTokenHideCredentials */
    /* STSTokenAPIGrantableRoles: grant_set is -1 when unset, 0 for "any"
     * (no bound), 1 when bounded to grant_roles (const char *) and, with
     * grant_held, the roles the caller holds. */
    int grant_set;
    int grant_held;
    apr_array_header_t *grant_roles;
    int basic_user; /* STSTokenBasicUser: STS_BASIC_USER_* */
    /* STSTokenAPIBase (api_base.c): api_base_set is 1 when set, then
     * api_base is a path (without a trailing '/') or api_base_re the
     * section's regex. */
    int api_base_set;
    const char *api_base;
    ap_regex_t *api_base_re;
    /* STSTokenRotateGrace, STSTokenRotateGraceMax: seconds; -1 unset. */
    int rotate_grace;
    int rotate_grace_max;
} sts_dir_conf;

/* STSTokenBasicUser: the Basic user name may be anything (the default), or
 * must be the token's name. */
#define STS_BASIC_USER_ANY 0
#define STS_BASIC_USER_TOKEN_NAME 1

struct sts_cache;
struct sts_cache_shm;
struct sts_gate;
struct sts_last_use;

/* One database, as mod_dbd groups its connection pools: the servers whose
 * DBDriver and DBDParams (their own or inherited) are the same. Every
 * per-process state that stands for the database's contents or its pool
 * belongs here, never to the process alone, so that virtual hosts with
 * different databases share no cached answer. */
typedef struct sts_db {
    const char *key;               /* DBDriver, newline, DBDParams */
    server_rec *server;            /* the first server using it (for logs) */
    struct sts_cache_shm *shm;     /* its shared token table (post_config) */
    struct sts_cache *cache;       /* this process's (child_init); NULL: none */
    struct sts_last_use *last_use; /* this process's uses to record; NULL:
                                      none */
    struct sts_gate *gate;         /* this process's (child_init); NULL: none */
    sts_outage outage;             /* this process's view of its availability */
    struct sts_db *next;
} sts_db;

/* Server configuration. bootstrap_* work per virtual host; the cache and
 * pool settings are server-wide (refused in <VirtualHost>): the main
 * server's values apply to every database. */
typedef struct {
    const char *bootstrap_file;          /* STSTokenBootstrap FILE ... */
    apr_array_header_t *bootstrap_roles; /* const char * */
    int bootstrap_loaded;
    unsigned char bootstrap_digest[STS_DIGEST_LEN];
    int cache_ttl;     /* STSTokenCacheTTL, seconds; 0 = no cache; -1 unset */
    int cache_entries; /* STSTokenCacheEntries; -1 unset */
    int db_acquire_timeout_ms; /* STSTokenDBAcquireTimeout; -1 unset */
    sts_db *db;                /* this server's database (post_config) */
    sts_db *dbs; /* main server only: every database (post_config) */
} sts_server_conf;

/* The database of r's server. */
sts_db *sts_request_db(const request_rec *r);

/* Who a request authenticated as. */
typedef struct {
    int64_t id;
    const char *name;
    const char *roles;     /* comma-separated, in stored order */
    int64_t expiration_ms; /* epoch ms; -1 when the token never expires */
    /* STS_TOKEN_ID and STS_TOKEN_EXPIRATION as published: formatted once
     * when the token is read from the database and kept with its cache
     * entry, so a cache hit formats nothing. */
    const char *id_text;
    const char *expiration_text; /* YYYY-MM-DD (UTC), "" when none */
    /* The secret presented is a rotated token's new one and the previous
     * one is still valid: this use retires it (sts_cache_retire). */
    int retire_previous;
} sts_identity;

/* The identity of r (or of the request it was derived from), or NULL. */
const sts_identity *sts_request_identity(request_rec *r);

/* 1 when the comma-separated role list contains role. */
int sts_roles_contain(const char *roles, const char *role);

#endif
