/*
 * store.c - every SQL statement of the module, run through mod_dbd's pool.
 *
 * Every statement is a server-side prepared statement, prepared on each
 * pooled session the first time the module uses it (kept in the session's
 * ap_dbd_t->prepared hash, as mod_dbd keeps its own). They are deliberately
 * not registered with ap_dbd_prepare: mod_dbd would then PREPARE inside its
 * connection constructor, which APR's reslist runs holding its lock, so on a
 * locked table every new session waits statement_timeout in turn and
 * requests pile up; preparing on first use happens in parallel and fails
 * fast into a 503 instead.
 *
 * mod_dbd re-establishes a broken connection silently (PQreset) and the new
 * session has no prepared statements; sts_store_exec notices the failure,
 * re-prepares every statement on that connection and retries once.
 *
 * In a threaded MPM the threads of a process go to mod_dbd's pool through a
 * gate: a mutex held while ap_dbd_open runs. APR's reslist opens a new
 * connection under its own lock, so against a database host that accepts
 * TCP but never answers every thread used to queue there and wait
 * connect_timeout in turn (32 concurrent requests: 9 answered at 2/4/6 s,
 * the rest still waiting after 10 s). Behind the gate a thread waits as long
 * as the pool makes progress (some thread got a connection within the last
 * STSTokenDBAcquireTimeout), so a burst on a cold pool, opening its
 * connections one after the other, is served; it is answered 503 when no
 * connection was handed out for a whole STSTokenDBAcquireTimeout, or at once
 * when the attempt it waited for failed.
 *
 * While mod_dbd cannot open a session at all (PostgreSQL down or
 * unreachable), one request per half second tries it (the background's
 * work has its own attempt) and every other request is refused at once
 * (outage.h): no connection storm, no two mod_dbd lines
 * per request, and the error log says why once per report interval with
 * the number of requests refused.
 */
#include "httpd.h"
#include "store.h"

#include "apr_dbd.h"
#include "apr_hash.h"
#include "apr_optional.h"
#include "apr_strings.h"
#include "ap_mpm.h"
#include "apr_thread_mutex.h"
#include "http_config.h"
#include "http_log.h"
#include "mod_dbd.h"

#include "clock.h"
#include "outage.h"
#include "status.h"

#include <libpq-fe.h>

APLOG_USE_MODULE(sts_token);

/* Key under which a connection's pool of re-prepared statements is kept in
 * its ap_dbd_t->prepared hash (a name no mod_dbd label can take). */
#define STS_REPREPARED_POOL_KEY "sts_token:reprepared-pool"

typedef enum {
    STS_Q_LOOKUP,
    STS_Q_LOOKUP_PREVIOUS,
    STS_Q_LIST,
    STS_Q_INSERT,
    STS_Q_DELETE,
    STS_Q_CHANGES,
    STS_Q_PAGE,
    STS_Q_ROLES,
    STS_Q_ROTATE,
    STS_Q_RETIRE,
    STS_Q_NOTE_USE,
    STS_Q_COUNT
} sts_query_id;

/* The schema version (sql/migrations/) the statements below need. */
#define STS_SCHEMA_VERSION "7"

/* optional: a statement of a feature that needs a newer schema than
 * authentication does (last use: schema version 5). While the database
 * lacks it, it is not prepared and fails alone: tokens keep working with a
 * module installed before the schema was applied. */
typedef struct {
    const char *label;
    const char *sql;
    int optional;
} sts_statement;

/* What authentication needs of a digest, in the order sts_token_at reads,
 * from the view sts_token_digests (sql/schema.sql: every digest that
 * authenticates, a rotated token's previous one included): the token's
 * authn column (one text value computed when the token is written, see
 * sts_token_authn() there) and the digest's end (-1: a current digest).
 * The change read, the page read and the lookup of a previous digest
 * select it, so the token table holds exactly what a lookup returns. */
#define STS_TOKEN_COLUMNS "authn, until"

/* The revision row, as one row the planner knows is one: estimating the
 * never-analysed singleton table at ~1800 rows made the page read's plan
 * cost millions, and PostgreSQL then JIT-compiled it on every execution
 * (a page of 10,000 tokens took 0.7 s instead of tens of ms). */
#define STS_REVISION_ROW                                                       \
    "(SELECT revision, horizon FROM sts_token_revision LIMIT 1)"

static const sts_statement sts_statements[STS_Q_COUNT] = {
    /* A current digest: one index probe returning one column, as cheap as
     * mod_authn_dbd's password query (bench/RESULTS.md); the view's union
     * with the previous digests cost twice that on every request. */
    {"sts_token_lookup", "SELECT authn FROM sts_tokens WHERE digest = %s", 0},
    /* A digest that is no token's current one: a previous digest a rotation
     * left alive, if it is one. */
    {"sts_token_lookup_previous",
     "SELECT " STS_TOKEN_COLUMNS " FROM sts_token_digests "
     "WHERE digest = %s AND until >= 0",
     0},
    {"sts_token_list",
     "SELECT id, name, description IS NOT NULL, COALESCE(description, ''), "
     "dedicated_subject IS NOT NULL, COALESCE(dedicated_subject, ''), "
     "array_to_string(roles, ','), COALESCE(expiration, -1), "
     "(extract(epoch FROM t.updated_at) * 1000)::bigint, "
     "COALESCE((extract(epoch FROM l.used_at) * 1000)::bigint, -1), "
     "COALESCE(host(l.client_address), '') "
     "FROM sts_tokens t LEFT JOIN sts_token_last_use l ON l.token_id = t.id "
     "ORDER BY name, id",
     1},
    {"sts_token_insert",
     "INSERT INTO sts_tokens (id, name, description, digest, roles, "
     "expiration, dedicated_subject) VALUES (%s::bigint, %s, NULLIF(%s, ''), "
     "%s, string_to_array(%s, ','), NULLIF(%s, '')::bigint, NULLIF(%s, '')) "
     "ON CONFLICT (id) DO NOTHING "
     "RETURNING (extract(epoch FROM updated_at) * 1000)::bigint",
     0},
    {"sts_token_delete",
     "DELETE FROM sts_tokens WHERE id = %s::bigint "
     "RETURNING name, array_to_string(roles, ','), digest",
     0},
    /* The revision, the horizon and, when the changes after $2 are all
     * kept, the digests changed after it with their tokens' current rows
     * (NULL columns: gone), all in one snapshot. */
    {"sts_token_changes",
     "SELECT v.revision, v.horizon, c.digest, " STS_TOKEN_COLUMNS " "
     "FROM " STS_REVISION_ROW " v "
     "LEFT JOIN (SELECT DISTINCT digest FROM sts_token_changes "
     "WHERE revision > %s::bigint) c ON %s::bigint >= v.horizon "
     "LEFT JOIN sts_token_digests t ON t.digest = c.digest",
     0},
    /* The revision and, in the same snapshot, a page of tokens in digest
     * order after $1 ('' for the first). */
    {"sts_token_page",
     "SELECT v.revision, t.* FROM " STS_REVISION_ROW " v LEFT JOIN "
     "(SELECT digest, " STS_TOKEN_COLUMNS " FROM sts_token_digests "
     "WHERE digest > %s ORDER BY digest LIMIT %s::int) t ON true "
     "ORDER BY t.digest",
     0},
    {"sts_token_roles",
     "SELECT name, array_to_string(roles, ',') "
     "FROM sts_tokens WHERE id = %s::bigint",
     0},
    /* See sql/schema.sql: ($1 id, $2 new digest, $3 grace ms, $4 expiration
     * or ''). */
    {"sts_token_rotation",
     "SELECT name, roles, expiration, updated_ms, replaced, "
     "COALESCE(replaced_until, -1), COALESCE(dropped, '') "
     "FROM sts_token_rotate(%s::bigint, %s, %s::bigint, "
     "NULLIF(%s, '')::bigint)",
     0},
    {"sts_token_retire_old",
     "SELECT COALESCE(sts_token_retire_previous(%s::bigint, %s), '')", 0},
    /* Uses noted by this process (array literals: ids, epoch ms,
     * addresses); the rows written. */
    {"sts_token_note_use",
     "SELECT sts_token_note_use(%s::bigint[], %s::bigint[], %s::text[])", 1},
};

/* Where a statement runs: a request, or the synchronisation's thread (r
 * NULL). Logs go to the request's log when there is one; quiet drops them
 * (the synchronisation's thread while its reads keep failing: it logs the
 * first failure's details, then only when they succeed again, instead of
 * four errors a second). */
typedef struct {
    apr_pool_t *pool;
    server_rec *s;
    request_rec *r;
    int quiet;
} sts_dbcx;

#define STS_CX_LOG(cx, level, status, ...)                                     \
    do {                                                                       \
        if ((cx)->quiet) {                                                     \
        } else if ((cx)->r != NULL) {                                          \
            ap_log_rerror(APLOG_MARK, level, status, (cx)->r, __VA_ARGS__);    \
        } else {                                                               \
            ap_log_error(APLOG_MARK, level, status, (cx)->s, __VA_ARGS__);     \
        }                                                                      \
    } while (0)

/* mod_dbd's exported functions, looked up once at startup. */
static APR_OPTIONAL_FN_TYPE(ap_dbd_open) * sts_dbd_open_fn;
static APR_OPTIONAL_FN_TYPE(ap_dbd_close) * sts_dbd_close_fn;

/* A process's gate in front of one database's mod_dbd pool (see the top of
 * the file). Created in child_init, before any request; absent under
 * prefork, where a process serves one request at a time. */
struct sts_gate {
    apr_thread_mutex_t *mutex;
    apr_interval_time_t wait; /* STSTokenDBAcquireTimeout */
    int wait_ms;
    /* Failed and successful ap_dbd_open calls, bumped under the mutex, read
     * atomically by waiting threads: a failure while they waited means the
     * attempt they queued behind failed; a success means the pool makes
     * progress and their turn will come. */
    apr_uint32_t failures;
    apr_uint32_t opened;
};

/* Logs why the database could not serve r: at error level when a report is
 * due (the first failure, then once per report interval, with the number of
 * requests refused since the last report), else at debug level. */
static void sts_store_report(request_rec *r, apr_status_t rv, const char *fmt,
                             ...)
{
    sts_outage *o = &sts_request_db(r)->outage;
    const char *msg;
    uint32_t refused;
    va_list ap;

    va_start(ap, fmt);
    msg = apr_pvsprintf(r->pool, fmt, ap);
    va_end(ap);
    if (sts_outage_report_due(o, sts_monotonic_now(), &refused)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      "%s (%u requests refused with 503 since the last such "
                      "report; reported at most once per %d s per process)",
                      msg, refused, STS_OUTAGE_REPORT_US / 1000000);
    } else {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, "%s", msg);
    }
}

void sts_store_unavailable(request_rec *r)
{
    sts_outage *o = &sts_request_db(r)->outage;

    sts_outage_refused(o);
    apr_table_setn(
        r->err_headers_out, "Retry-After",
        apr_itoa(r->pool, sts_outage_retry_after(o, sts_monotonic_now())));
}

/* Creates db's gate (threaded MPMs only) with the main server's
 * STSTokenDBAcquireTimeout. */
void sts_store_child_init(apr_pool_t *p, server_rec *s, sts_db *db)
{
    sts_server_conf *sc =
        ap_get_module_config(s->module_config, &sts_token_module);
    int threaded = AP_MPMQ_NOT_SUPPORTED;
    struct sts_gate *g;
    apr_status_t rv;

    memset(&db->outage, 0, sizeof(db->outage));
    db->gate = NULL;
    if (ap_mpm_query(AP_MPMQ_IS_THREADED, &threaded) != APR_SUCCESS ||
        threaded == AP_MPMQ_NOT_SUPPORTED) {
        return;
    }
    g = apr_pcalloc(p, sizeof(*g));
    /* post_config set the default when the directive is absent. */
    g->wait_ms = sc->db_acquire_timeout_ms;
    g->wait = apr_time_from_msec(g->wait_ms);
    rv = apr_thread_mutex_create(&g->mutex, APR_THREAD_MUTEX_TIMED, p);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, db->server,
                     "cannot create the database gate's mutex: requests of "
                     "this process wait for mod_dbd's pool without the "
                     "STSTokenDBAcquireTimeout bound");
        return;
    }
    db->gate = g;
}

/* Looks up mod_dbd's functions; an error when mod_dbd is not loaded. */
const char *sts_store_register(apr_pool_t *p, server_rec *s)
{
    (void)p;
    (void)s;
    sts_dbd_open_fn = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
    sts_dbd_close_fn = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);
    if (!sts_dbd_open_fn || !sts_dbd_close_fn) {
        return "mod_sts_token needs mod_dbd: add 'LoadModule dbd_module "
               "modules/mod_dbd.so' before it, with DBDriver pgsql and "
               "DBDParams";
    }
    return NULL;
}

/* The last DBDriver and DBDParams among the directives d and its siblings
 * (unquoted, as mod_dbd reads them); NULL for those absent. Both are
 * RSRC_CONF, so they occur only at the top level or in <VirtualHost>
 * (<IfModule>, <IfDefine> and Include are already spliced in). */
static void sts_dbd_settings(apr_pool_t *p, const ap_directive_t *d,
                             const char **driver, const char **params)
{
    for (; d != NULL; d = d->next) {
        const char *args = d->args;

        if (ap_cstr_casecmp(d->directive, "DBDriver") == 0) {
            *driver = ap_getword_conf(p, &args);
        } else if (ap_cstr_casecmp(d->directive, "DBDParams") == 0) {
            *params = ap_getword_conf(p, &args);
        }
    }
}

/* The <VirtualHost> section that defined s, or NULL. */
static const ap_directive_t *sts_vhost_section(const server_rec *s)
{
    const ap_directive_t *d;

    for (d = ap_conftree; d != NULL; d = d->next) {
        if (ap_cstr_casecmp(d->directive, "<VirtualHost") == 0 &&
            (unsigned)d->line_num == s->defn_line_number &&
            s->defn_name != NULL && d->filename != NULL &&
            strcmp(d->filename, s->defn_name) == 0) {
            return d;
        }
    }
    return NULL;
}

/* Gives every server its database (see sts_db): the DBDriver and DBDParams
 * it sets, else the main server's, which is how mod_dbd merges them and
 * groups its pools. A virtual host whose section cannot be found gets a
 * database of its own: never one shared by mistake. */
void sts_store_assign_databases(apr_pool_t *p, server_rec *s)
{
    sts_server_conf *main_conf =
        ap_get_module_config(s->module_config, &sts_token_module);
    const char *main_driver = "", *main_params = "";
    server_rec *sp;
    int unknown = 0;

    sts_dbd_settings(p, ap_conftree, &main_driver, &main_params);
    main_conf->dbs = NULL;
    for (sp = s; sp != NULL; sp = sp->next) {
        sts_server_conf *c =
            ap_get_module_config(sp->module_config, &sts_token_module);
        const char *driver = NULL, *params = NULL, *key;
        const ap_directive_t *vh = NULL;
        sts_db *db;

        if (sp != s && (vh = sts_vhost_section(sp)) == NULL) {
            /* Two newlines: no configuration line holds one. */
            key = apr_psprintf(p, "\n\n%d", ++unknown);
        } else {
            if (vh != NULL) {
                sts_dbd_settings(p, vh->first_child, &driver, &params);
            }
            /* mod_dbd: an empty DBDParams inherits too. */
            key = apr_pstrcat(p, driver ? driver : main_driver, "\n",
                              params && *params ? params : main_params, NULL);
        }
        for (db = main_conf->dbs; db != NULL; db = db->next) {
            if (strcmp(db->key, key) == 0) {
                break;
            }
        }
        if (db == NULL) {
            db = apr_pcalloc(p, sizeof(*db));
            db->key = key;
            db->server = sp;
            db->next = main_conf->dbs;
            main_conf->dbs = db;
        }
        c->db = db;
    }
}

/* The database of r's server. */
sts_db *sts_request_db(const request_rec *r)
{
    sts_server_conf *sc =
        ap_get_module_config(r->server->module_config, &sts_token_module);

    return sc->db;
}

/* The database's message without its trailing newline (copied into p). */
static const char *sts_db_message(apr_pool_t *p, const char *msg)
{
    size_t n;

    if (msg == NULL) {
        return "(no message)";
    }
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) {
        n--;
    }
    return apr_pstrmemdup(p, msg, n);
}

/* Waits for the gate (see the top of the file): APR_SUCCESS with the mutex
 * held, else NULL-worthy and logged. */
static apr_status_t sts_gate_enter(request_rec *r, struct sts_gate *g)
{
    apr_uint32_t failures = __atomic_load_n(&g->failures, __ATOMIC_ACQUIRE);
    apr_status_t rv;

    for (;;) {
        apr_uint32_t opened = __atomic_load_n(&g->opened, __ATOMIC_ACQUIRE);

        rv = apr_thread_mutex_timedlock(g->mutex, g->wait);
        if (__atomic_load_n(&g->failures, __ATOMIC_ACQUIRE) != failures) {
            if (rv == APR_SUCCESS) {
                apr_thread_mutex_unlock(g->mutex);
            }
            sts_store_report(r, 0,
                             "no database connection: the attempt this "
                             "request waited for failed (see mod_dbd's "
                             "message above; check DBDParams and that "
                             "PostgreSQL is up)");
            return APR_EGENERAL;
        }
        if (rv == APR_SUCCESS) {
            return APR_SUCCESS;
        }
        if (!APR_STATUS_IS_TIMEUP(rv) ||
            __atomic_load_n(&g->opened, __ATOMIC_ACQUIRE) == opened) {
            break;
        }
        /* Connections were handed out meanwhile: the pool is moving. */
    }
    sts_store_report(r, rv,
                     "no database connection within STSTokenDBAcquireTimeout "
                     "(%d ms): mod_dbd handed out no connection in that time "
                     "(another request of this process is still waiting for "
                     "it to open one, which an unreachable host makes last "
                     "connect_timeout, or for one of the DBDMax busy ones to "
                     "come back)",
                     g->wait_ms);
    return rv;
}

/* Takes a connection from mod_dbd's pool through the gate (NULL, logged,
 * when none). While mod_dbd cannot open sessions, only one attempt per
 * retry interval reaches it. */
static ap_dbd_t *sts_store_open(request_rec *r)
{
    sts_db *db = sts_request_db(r);
    struct sts_gate *g = db->gate;
    int64_t now = sts_monotonic_now();
    int64_t down_us;
    uint32_t refused;
    ap_dbd_t *dbd;

    if (!sts_outage_may_try(&db->outage, now)) {
        sts_store_report(r, 0,
                         "database unavailable: mod_dbd could not open a "
                         "session at the last attempt (one attempt per "
                         "%d ms until it can)",
                         STS_OUTAGE_RETRY_US / 1000);
        return NULL;
    }
    if (g == NULL) {
        dbd = sts_dbd_open_fn(r->pool, r->server);
    } else {
        if (sts_gate_enter(r, g) != APR_SUCCESS) {
            return NULL;
        }
        dbd = sts_dbd_open_fn(r->pool, r->server);
        __atomic_add_fetch(dbd == NULL ? &g->failures : &g->opened, 1,
                           __ATOMIC_RELEASE);
        apr_thread_mutex_unlock(g->mutex);
    }
    now = sts_monotonic_now();
    if (dbd == NULL) {
        sts_status_count(STS_STAT_DB_FAILURES);
        if (sts_outage_failed(&db->outage, now)) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "database unavailable: mod_dbd could not open or "
                          "check a pooled session (see its message above; "
                          "check DBDParams and that PostgreSQL is up). Until "
                          "it can, requests that need the database get 503 "
                          "with Retry-After, one attempt per %d ms goes to "
                          "it, and this process reports the number of "
                          "requests refused at most once per %d s",
                          STS_OUTAGE_RETRY_US / 1000,
                          STS_OUTAGE_REPORT_US / 1000000);
        } else {
            sts_store_report(r, 0,
                             "database still unavailable: mod_dbd could not "
                             "open or check a pooled session (see its message "
                             "above)");
        }
    } else if (sts_outage_reached(&db->outage, now, &down_us, &refused)) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      "the database is available again after %.1f s; %u "
                      "requests of this process were refused with 503 "
                      "meanwhile",
                      (double)down_us / 1e6, refused);
    }
    return dbd;
}

/* Logs a failed statement: through the request's outage report, or (the
 * synchronisation's thread) plainly unless quiet. */
static void sts_store_fail(const sts_dbcx *cx, apr_status_t rv, const char *fmt,
                           const char *label, const char *msg)
{
    if (cx->r != NULL) {
        sts_store_report(cx->r, rv, fmt, label, msg);
    } else {
        STS_CX_LOG(cx, APLOG_ERR, rv, fmt, label, msg);
    }
}

/* Takes a connection for the synchronisation's thread: straight from
 * mod_dbd, not through the gate (while the token table cannot answer,
 * every request looks its token up, and the one thread that can make it
 * answer again must not wait behind them). */
static ap_dbd_t *sts_store_open_bg(const sts_dbcx *cx)
{
    sts_server_conf *sc =
        ap_get_module_config(cx->s->module_config, &sts_token_module);
    sts_outage *o = &sc->db->outage;
    int64_t down_us;
    uint32_t refused;
    ap_dbd_t *dbd;

    /* While the database is down, one attempt per retry interval, apart
     * from the requests' (outage.h). */
    if (!sts_outage_may_try_background(o, sts_monotonic_now())) {
        return NULL;
    }
    dbd = sts_dbd_open_fn(cx->pool, cx->s);
    if (dbd == NULL) {
        sts_status_count(STS_STAT_DB_FAILURES);
        sts_outage_failed(o, sts_monotonic_now());
        STS_CX_LOG(cx, APLOG_ERR, 0,
                   "no database connection: mod_dbd could not open or "
                   "check a pooled session (see its message above; check "
                   "DBDParams and that PostgreSQL is up)");
    } else if (sts_outage_reached(o, sts_monotonic_now(), &down_us, &refused)) {
        /* Not quiet: the end of an outage is said once, by whoever
         * reached the database first. */
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, cx->s,
                     "the database is available again after %.1f s; %u "
                     "requests of this process were refused with 503 "
                     "meanwhile",
                     (double)down_us / 1e6, refused);
    }
    return dbd;
}

/* Gives a connection back to mod_dbd's pool. */
static void sts_store_close(const sts_dbcx *cx, ap_dbd_t *dbd)
{
    sts_dbd_close_fn(cx->s, dbd);
}

/* Logs that an optional statement cannot be prepared (see sts_statement). */
static void sts_store_optional_failed(const sts_dbcx *cx, sts_query_id q,
                                      const char *msg)
{
    STS_CX_LOG(cx, APLOG_WARNING, APR_EGENERAL,
               "cannot prepare statement %s: %s. Apply sql/schema.sql "
               "(schema version 5): until then last use is not recorded and "
               "the token API cannot list tokens; authentication works",
               sts_statements[q].label, msg);
}

/* Prepares an optional statement missing from a session that has the
 * others (the schema lacked it then), into the session's statement pool;
 * NULL (logged) when the schema still lacks it. */
static apr_dbd_prepared_t *sts_store_prepare_missing(const sts_dbcx *cx,
                                                     ap_dbd_t *dbd,
                                                     sts_query_id q,
                                                     apr_pool_t *np)
{
    apr_dbd_prepared_t *stmt = NULL;

    if (apr_dbd_prepare(dbd->driver, np, dbd->handle, sts_statements[q].sql,
                        sts_statements[q].label, &stmt) != 0) {
        sts_store_optional_failed(
            cx, q,
            sts_db_message(cx->pool,
                           apr_dbd_error(dbd->driver, dbd->handle, -1)));
        return NULL;
    }
    apr_hash_set(dbd->prepared, sts_statements[q].label, APR_HASH_KEY_STRING,
                 stmt);
    return stmt;
}

/* Prepares every statement on dbd: on a new session, or again on one that
 * lost them (fresh is 0 then, and the recovery is logged). The
 * statements live in a sub-pool of the connection, replaced on each success,
 * so repeated reconnects do not grow memory. */
static apr_status_t sts_store_reprepare(const sts_dbcx *cx, ap_dbd_t *dbd,
                                        int fresh)
{
    apr_dbd_prepared_t *stmts[STS_Q_COUNT];
    apr_pool_t *np, *old;
    apr_status_t rv;
    int i;

    rv = apr_dbd_check_conn(dbd->driver, cx->pool, dbd->handle);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = apr_pool_create(&np, dbd->pool);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!fresh) {
        /* A session that kept its statements (a schema change made one
         * unusable as prepared) would refuse them under the same names.
         * Ours only: other modules' statements share the session. A
         * session that lost them answers each with an error, ignored. */
        for (i = 0; i < STS_Q_COUNT; i++) {
            int nrows = 0;

            apr_dbd_query(
                dbd->driver, dbd->handle, &nrows,
                apr_pstrcat(np, "DEALLOCATE ", sts_statements[i].label, NULL));
        }
    }
    for (i = 0; i < STS_Q_COUNT; i++) {
        stmts[i] = NULL;
        if (apr_dbd_prepare(dbd->driver, np, dbd->handle, sts_statements[i].sql,
                            sts_statements[i].label, &stmts[i]) != 0) {
            const char *msg = sts_db_message(
                cx->pool, apr_dbd_error(dbd->driver, dbd->handle, -1));

            stmts[i] = NULL;
            if (sts_statements[i].optional) {
                sts_store_optional_failed(cx, (sts_query_id)i, msg);
                continue;
            }
            /* A request's failure goes through the outage report, at most
             * once per report interval: a module installed before its
             * schema meets this on every request. */
            sts_store_fail(cx, APR_EGENERAL, "cannot prepare statement %s: %s",
                           sts_statements[i].label,
                           strstr(msg, "does not exist") != NULL
                               ? apr_pstrcat(cx->pool, msg,
                                             ". This module needs schema "
                                             "version " STS_SCHEMA_VERSION
                                             ": apply sql/schema.sql",
                                             NULL)
                               : msg);
            apr_pool_destroy(np);
            return APR_EGENERAL;
        }
    }
    for (i = 0; i < STS_Q_COUNT; i++) {
        apr_hash_set(dbd->prepared, sts_statements[i].label,
                     APR_HASH_KEY_STRING, stmts[i]);
    }
    old = apr_hash_get(dbd->prepared, STS_REPREPARED_POOL_KEY,
                       APR_HASH_KEY_STRING);
    apr_hash_set(dbd->prepared, STS_REPREPARED_POOL_KEY, APR_HASH_KEY_STRING,
                 np);
    if (old != NULL) {
        apr_pool_destroy(old);
    }
    if (fresh) {
        STS_CX_LOG(cx, APLOG_DEBUG, 0,
                   "prepared the module's statements on a new database "
                   "session");
    } else {
        STS_CX_LOG(cx, APLOG_NOTICE, 0,
                   "database session was re-established; re-prepared the "
                   "module's statements");
    }
    return APR_SUCCESS;
}

/* True when a failed statement calls for re-preparing: the connection broke
 * (mod_dbd will reconnect it and the new session has no statements), the
 * statement is missing on this connection, the database says so (its
 * message names the statement: 'prepared statement "label" does not
 * exist'), or an upgrade of the schema changed the type or collation of a
 * column it returns (PostgreSQL then refuses to run it as prepared).
 * Not after other errors such as a statement timeout: re-preparing then
 * would only wait on the same lock again. */
static int sts_store_lost_statements(ap_dbd_t *dbd, const char *label,
                                     apr_dbd_prepared_t *stmt, const char *msg)
{
    PGconn *conn = apr_dbd_native_handle(dbd->driver, dbd->handle);

    if (stmt == NULL || conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        return 1;
    }
    return msg != NULL && (strstr(msg, label) != NULL ||
                           strstr(msg, "cached plan must not change result "
                                       "type") != NULL);
}

/* Runs one statement (a select when res != NULL, else a command counting
 * rows into *nrows), re-preparing and retrying once if it fails. */
static apr_status_t sts_store_exec(const sts_dbcx *cx, ap_dbd_t *dbd,
                                   sts_query_id q, apr_dbd_results_t **res,
                                   int *nrows, int nargs, const char **args)
{
    const char *label = sts_statements[q].label;
    int attempt;

    for (attempt = 0; attempt < 2; attempt++) {
        apr_dbd_prepared_t *stmt =
            apr_hash_get(dbd->prepared, label, APR_HASH_KEY_STRING);
        apr_pool_t *np = apr_hash_get(dbd->prepared, STS_REPREPARED_POOL_KEY,
                                      APR_HASH_KEY_STRING);
        const char *msg = "statement is not prepared on this connection";
        int rv = -1;

        if (stmt == NULL && np != NULL && sts_statements[q].optional &&
            (stmt = sts_store_prepare_missing(cx, dbd, q, np)) == NULL) {
            /* The session has every other statement: re-preparing them
             * would not help. */
            sts_status_count(STS_STAT_DB_FAILURES);
            return APR_EGENERAL;
        }

        if (stmt != NULL) {
            if (res != NULL) {
                *res = NULL;
                rv = apr_dbd_pselect(dbd->driver, cx->pool, dbd->handle, res,
                                     stmt, 1, nargs, args);
            } else {
                rv = apr_dbd_pquery(dbd->driver, cx->pool, dbd->handle, nrows,
                                    stmt, nargs, args);
            }
            if (rv == 0) {
                return APR_SUCCESS;
            }
            /* Copied at once: the driver returns libpq's error buffer,
             * which the reconnect below rewrites and may reallocate. */
            msg = sts_db_message(cx->pool,
                                 apr_dbd_error(dbd->driver, dbd->handle, rv));
        }
        if (attempt == 0 && sts_store_lost_statements(dbd, label, stmt, msg) &&
            sts_store_reprepare(cx, dbd, stmt == NULL) == APR_SUCCESS) {
            continue;
        }
        sts_status_count(STS_STAT_DB_FAILURES);
        sts_store_fail(cx, APR_EGENERAL, "database statement %s failed: %s",
                       label, msg);
        return APR_EGENERAL;
    }
    return APR_EGENERAL;
}

/* Parses a bigint column. */
static int64_t sts_col_int64(const apr_dbd_driver_t *d, apr_dbd_row_t *row,
                             int col)
{
    const char *v = apr_dbd_get_entry(d, row, col);

    return v ? (int64_t)apr_strtoi64(v, NULL, 10) : -1;
}

/* A text column copied into p ("" for NULL). */
static const char *sts_col_str(apr_pool_t *p, const apr_dbd_driver_t *d,
                               apr_dbd_row_t *row, int col)
{
    const char *v = apr_dbd_get_entry(d, row, col);

    return apr_pstrdup(p, v ? v : "");
}

/* A boolean column: 1 when true ("t"). */
static int sts_col_bool(const apr_dbd_driver_t *d, apr_dbd_row_t *row, int col)
{
    const char *v = apr_dbd_get_entry(d, row, col);

    return v != NULL && v[0] == 't';
}

/* The next tab-ended field of *s, cut off in place (*s moved past it);
 * the rest of *s when last. NULL when a field is empty or missing. */
static char *sts_authn_field(char **s, int last)
{
    char *v = *s;
    char *tab = last ? NULL : strchr(v, '\t');

    if (!last && tab == NULL) {
        return NULL;
    }
    if (tab != NULL) {
        *tab = '\0';
        *s = tab + 1;
    }
    return *v != '\0' ? v : NULL;
}

/* A number field of authn, at least min. */
static int sts_authn_number(char *v, int64_t min, int64_t *out)
{
    char *end = NULL;

    if (v == NULL) {
        return 0;
    }
    *out = (int64_t)apr_strtoi64(v, &end, 10);
    return *end == '\0' && *out >= min;
}

/* A token from its authn text (sql/schema.sql, sts_token_authn():
 * "id<TAB>expiration<TAB>previous until<TAB>roles<TAB>name", -1 for none),
 * read for a digest that ends at until_ms (-1: the token's current digest;
 * its first use then retires a previous digest still alive, by this host's
 * clock, the one that also ends that digest). NULL when authn has not
 * that form (sts_token_authn() changed by hand): the caller fails closed. */
static sts_token_row *sts_token_of_authn(apr_pool_t *p, const char *authn,
                                         int64_t until_ms)
{
    sts_token_row *t = apr_pcalloc(p, sizeof(*t));
    char *s = apr_pstrdup(p, authn);
    int64_t previous_until;

    if (!sts_authn_number(sts_authn_field(&s, 0), 1, &t->id) ||
        !sts_authn_number(sts_authn_field(&s, 0), -1, &t->expiration_ms) ||
        !sts_authn_number(sts_authn_field(&s, 0), INT64_MIN, &previous_until) ||
        (t->roles = sts_authn_field(&s, 0)) == NULL ||
        (t->name = sts_authn_field(&s, 1)) == NULL) {
        return NULL;
    }
    t->until_ms = until_ms;
    /* The clock is read only for a token with a previous digest. */
    t->retire = until_ms < 0 && previous_until >= 0 &&
                previous_until > (int64_t)(apr_time_now() / 1000);
    return t;
}

/* A token from the STS_TOKEN_COLUMNS of a row, starting at column col;
 * NULL for a NULL or malformed authn. */
static sts_token_row *sts_token_at(apr_pool_t *p, const apr_dbd_driver_t *d,
                                   apr_dbd_row_t *row, int col)
{
    const char *authn = apr_dbd_get_entry(d, row, col);

    return authn != NULL
               ? sts_token_of_authn(p, authn, sts_col_int64(d, row, col + 1))
               : NULL;
}

/* What a request's select hands each row of its result to. */
typedef void (*sts_row_fn)(void *ctx, apr_pool_t *p, const apr_dbd_driver_t *d,
                           apr_dbd_row_t *row);

/* Runs one select on the open session dbd and hands each row to each:
 * APR_SUCCESS, or the failure (logged). */
static apr_status_t sts_store_select_on(const sts_dbcx *cx, ap_dbd_t *dbd,
                                        sts_query_id q, int nargs,
                                        const char **args, sts_row_fn each,
                                        void *ctx)
{
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    apr_status_t rv = sts_store_exec(cx, dbd, q, &res, NULL, nargs, args);

    if (rv == APR_SUCCESS) {
        while (apr_dbd_get_row(dbd->driver, cx->pool, res, &row, -1) == 0) {
            each(ctx, cx->pool, dbd->driver, row);
        }
    }
    return rv;
}

/* Runs one select for r on a connection from the pool and hands each row
 * to each: APR_SUCCESS, or the failure (logged, the connection given back
 * either way). */
static apr_status_t sts_store_select(request_rec *r, sts_query_id q, int nargs,
                                     const char **args, sts_row_fn each,
                                     void *ctx)
{
    sts_dbcx cx = {r->pool, r->server, r, 0};
    ap_dbd_t *dbd = sts_store_open(r);
    apr_status_t rv;

    if (dbd == NULL) {
        return APR_EGENERAL;
    }
    rv = sts_store_select_on(&cx, dbd, q, nargs, args, each, ctx);
    sts_store_close(&cx, dbd);
    return rv;
}

/* A number as a statement argument. */
static const char *sts_int_arg(apr_pool_t *p, int64_t id)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT, id);
}

/* What a lookup read: the token, or malformed (see sts_token_of_authn). */
typedef struct {
    sts_token_row *token;
    int malformed;
} sts_lookup_result;

static void sts_lookup_row(void *ctx, apr_pool_t *p, const apr_dbd_driver_t *d,
                           apr_dbd_row_t *row)
{
    sts_lookup_result *res = ctx;
    const char *authn = apr_dbd_get_entry(d, row, 0);

    res->token = authn != NULL ? sts_token_of_authn(p, authn, -1) : NULL;
    res->malformed = res->token == NULL;
}

static void sts_lookup_previous_row(void *ctx, apr_pool_t *p,
                                    const apr_dbd_driver_t *d,
                                    apr_dbd_row_t *row)
{
    sts_lookup_result *res = ctx;

    res->token = sts_token_at(p, d, row, 0);
    res->malformed = res->token == NULL;
}

/* Looks one digest up. */
apr_status_t sts_store_lookup(request_rec *r, const char *digest_hex,
                              sts_token_row **out)
{
    sts_dbcx cx = {r->pool, r->server, r, 0};
    sts_lookup_result found = {NULL, 0};
    const char *args[1] = {digest_hex};
    apr_status_t rv;
    ap_dbd_t *dbd;

    *out = NULL;
    dbd = sts_store_open(r);
    if (dbd == NULL) {
        return APR_EGENERAL;
    }
    /* The current digests first, on the same session: a previous digest
     * is only read for a digest that is no token's current one. */
    rv = sts_store_select_on(&cx, dbd, STS_Q_LOOKUP, 1, args, sts_lookup_row,
                             &found);
    if (rv == APR_SUCCESS && found.token == NULL && !found.malformed) {
        rv = sts_store_select_on(&cx, dbd, STS_Q_LOOKUP_PREVIOUS, 1, args,
                                 sts_lookup_previous_row, &found);
    }
    sts_store_close(&cx, dbd);
    if (rv == APR_SUCCESS && found.malformed) {
        rv = APR_EGENERAL;
        sts_store_fail(&cx, rv, "%s of the token looked up is not what %s",
                       "sts_tokens.authn",
                       "sts_token_authn() of sql/schema.sql makes: apply "
                       "sql/schema.sql again and rewrite the row");
    }
    *out = found.token;
    return rv;
}

static void sts_list_row(void *ctx, apr_pool_t *p, const apr_dbd_driver_t *d,
                         apr_dbd_row_t *row)
{
    sts_token_row *t = apr_array_push(ctx);

    t->id = sts_col_int64(d, row, 0);
    t->name = sts_col_str(p, d, row, 1);
    t->description = sts_col_bool(d, row, 2) ? sts_col_str(p, d, row, 3) : NULL;
    t->dedicated_subject =
        sts_col_bool(d, row, 4) ? sts_col_str(p, d, row, 5) : NULL;
    t->roles = sts_col_str(p, d, row, 6);
    t->expiration_ms = sts_col_int64(d, row, 7);
    t->last_update_ms = sts_col_int64(d, row, 8);
    t->last_used_ms = sts_col_int64(d, row, 9);
    t->last_used_from = sts_col_str(p, d, row, 10);
}

/* Lists every token, sorted by name then id. */
apr_status_t sts_store_list(request_rec *r, apr_array_header_t **out)
{
    *out = apr_array_make(r->pool, 16, sizeof(sts_token_row));
    return sts_store_select(r, STS_Q_LIST, 0, NULL, sts_list_row, *out);
}

/* Inserts a token under a fresh random id. */
apr_status_t sts_store_create(request_rec *r, sts_token_row *t,
                              const char *digest_hex)
{
    sts_dbcx cx = {r->pool, r->server, r, 0};
    ap_dbd_t *dbd;
    apr_status_t rv = APR_EGENERAL;
    int attempt;

    dbd = sts_store_open(r);
    if (dbd == NULL) {
        return APR_EGENERAL;
    }
    /* An id collision (2^-53 per pair) inserts nothing: draw again. */
    for (attempt = 0; attempt < 5; attempt++) {
        apr_dbd_results_t *res = NULL;
        apr_dbd_row_t *row = NULL;
        const char *args[7];
        int inserted = 0;

        if (sts_random_id(&t->id) != 0) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "random generator failed while drawing a token id");
            rv = APR_EGENERAL;
            break;
        }
        args[0] = sts_int_arg(r->pool, t->id);
        args[1] = t->name;
        args[2] = t->description ? t->description : "";
        args[3] = digest_hex;
        args[4] = t->roles;
        args[5] =
            t->expiration_ms >= 0 ? sts_int_arg(r->pool, t->expiration_ms) : "";
        args[6] = t->dedicated_subject ? t->dedicated_subject : "";
        rv = sts_store_exec(&cx, dbd, STS_Q_INSERT, &res, NULL, 7, args);
        if (rv != APR_SUCCESS) {
            break;
        }
        while (apr_dbd_get_row(dbd->driver, r->pool, res, &row, -1) == 0) {
            t->last_update_ms = sts_col_int64(dbd->driver, row, 0);
            inserted = 1;
        }
        if (inserted) {
            break;
        }
        rv = APR_EGENERAL;
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "token id %" APR_INT64_T_FMT " already taken; drawing "
                      "another",
                      t->id);
    }
    sts_store_close(&cx, dbd);
    return rv;
}

typedef struct {
    int64_t id;
    sts_token_row **out;
} sts_deleted_ctx;

static void sts_deleted_row(void *ctx, apr_pool_t *p, const apr_dbd_driver_t *d,
                            apr_dbd_row_t *row)
{
    sts_deleted_ctx *c = ctx;
    sts_token_row *t = apr_pcalloc(p, sizeof(*t));

    t->id = c->id;
    t->name = sts_col_str(p, d, row, 0);
    t->roles = sts_col_str(p, d, row, 1);
    t->digest = sts_col_str(p, d, row, 2);
    t->expiration_ms = -1;
    *c->out = t;
}

/* Deletes a token by id, returning what was deleted. */
apr_status_t sts_store_delete(request_rec *r, int64_t id, sts_token_row **out)
{
    const char *args[1] = {sts_int_arg(r->pool, id)};
    sts_deleted_ctx c = {id, out};

    *out = NULL;
    return sts_store_select(r, STS_Q_DELETE, 1, args, sts_deleted_row, &c);
}

/* 1 when a column is SQL NULL: apr_dbd's pgsql driver returns "" for it
 * (PQgetvalue), and no column read here can be "" otherwise. */
static int sts_col_null(const apr_dbd_driver_t *d, apr_dbd_row_t *row, int col)
{
    const char *v = apr_dbd_get_entry(d, row, col);

    return v == NULL || *v == '\0';
}

typedef struct {
    const char **name, **roles;
} sts_roles_ctx;

static void sts_roles_row(void *ctx, apr_pool_t *p, const apr_dbd_driver_t *d,
                          apr_dbd_row_t *row)
{
    sts_roles_ctx *c = ctx;

    *c->name = sts_col_str(p, d, row, 0);
    *c->roles = sts_col_str(p, d, row, 1);
}

/* The name and roles of one token. */
apr_status_t sts_store_token_roles(request_rec *r, int64_t id,
                                   const char **name, const char **roles)
{
    const char *args[1] = {sts_int_arg(r->pool, id)};
    sts_roles_ctx c = {name, roles};

    *name = *roles = NULL;
    return sts_store_select(r, STS_Q_ROLES, 1, args, sts_roles_row, &c);
}

typedef struct {
    int64_t id, grace_ms;
    sts_rotation **out;
} sts_rotated_ctx;

static void sts_rotated_row(void *ctx, apr_pool_t *p, const apr_dbd_driver_t *d,
                            apr_dbd_row_t *row)
{
    sts_rotated_ctx *c = ctx;
    sts_rotation *o = apr_pcalloc(p, sizeof(*o));

    o->token.id = c->id;
    o->token.name = sts_col_str(p, d, row, 0);
    o->token.roles = sts_col_str(p, d, row, 1);
    o->token.expiration_ms = sts_col_int64(d, row, 2);
    o->token.last_update_ms = sts_col_int64(d, row, 3);
    o->token.until_ms = -1;
    o->token.retire = c->grace_ms > 0;
    o->replaced = sts_col_str(p, d, row, 4);
    o->replaced_until = sts_col_int64(d, row, 5);
    o->dropped = sts_col_null(d, row, 6) ? NULL : sts_col_str(p, d, row, 6);
    *c->out = o;
}

/* Rotates one token's secret. */
apr_status_t sts_store_rotate(request_rec *r, int64_t id,
                              const char *digest_hex, int64_t grace_ms,
                              int64_t expiration_ms, sts_rotation **out)
{
    const char *args[4] = {
        sts_int_arg(r->pool, id), digest_hex, sts_int_arg(r->pool, grace_ms),
        expiration_ms >= 0 ? sts_int_arg(r->pool, expiration_ms) : ""};
    sts_rotated_ctx c = {id, grace_ms, out};

    *out = NULL;
    return sts_store_select(r, STS_Q_ROTATE, 4, args, sts_rotated_row, &c);
}

static void sts_retired_row(void *ctx, apr_pool_t *p, const apr_dbd_driver_t *d,
                            apr_dbd_row_t *row)
{
    if (!sts_col_null(d, row, 0)) {
        *(const char **)ctx = sts_col_str(p, d, row, 0);
    }
}

/* Retires a rotated token's previous digest. */
apr_status_t sts_store_retire(request_rec *r, int64_t id,
                              const char *digest_hex, const char **retired)
{
    const char *args[2] = {sts_int_arg(r->pool, id), digest_hex};

    *retired = NULL;
    return sts_store_select(r, STS_Q_RETIRE, 2, args, sts_retired_row, retired);
}

/* Hands the token of a row (columns from col on, STS_TOKEN_COLUMNS after
 * the digest) to fn; NULL means no token has that digest any more (or its
 * authn is malformed: the table refuses it then, a lookup says why).
 * Returns 1 when the row named a digest (0: no change, an empty page). */
static int sts_store_emit(apr_pool_t *p, const apr_dbd_driver_t *d,
                          apr_dbd_row_t *row, int col, sts_store_row_fn fn,
                          void *ctx)
{
    const char *digest = apr_dbd_get_entry(d, row, col);

    if (digest == NULL || strlen(digest) != STS_DIGEST_HEX_LEN) {
        return 0;
    }
    fn(ctx, digest,
       sts_col_null(d, row, col + 1) ? NULL : sts_token_at(p, d, row, col + 1));
    return 1;
}

/* Reads the changes after since (see store.h). */
apr_status_t sts_store_changes(apr_pool_t *p, server_rec *s, int quiet,
                               int64_t since, sts_store_row_fn fn, void *ctx,
                               int64_t *revision, int64_t *horizon)
{
    sts_dbcx cx = {p, s, NULL, quiet};
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *args[2];
    ap_dbd_t *dbd;
    apr_status_t rv;
    int found = 0;

    dbd = sts_store_open_bg(&cx);
    if (dbd == NULL) {
        return APR_EGENERAL;
    }
    args[0] = args[1] = apr_psprintf(p, "%" APR_INT64_T_FMT, since);
    rv = sts_store_exec(&cx, dbd, STS_Q_CHANGES, &res, NULL, 2, args);
    if (rv == APR_SUCCESS) {
        const apr_dbd_driver_t *d = dbd->driver;

        while (apr_dbd_get_row(d, p, res, &row, -1) == 0) {
            *revision = sts_col_int64(d, row, 0);
            *horizon = sts_col_int64(d, row, 1);
            found = 1;
            sts_store_emit(p, d, row, 2, fn, ctx);
        }
        if (!found) {
            rv = APR_ENOENT; /* no revision row: the caller says so */
        }
    }
    sts_store_close(&cx, dbd);
    return rv;
}

/* Reads a page of tokens (see store.h). */
apr_status_t sts_store_page(apr_pool_t *p, server_rec *s, int quiet,
                            const char *after, int limit, sts_store_row_fn fn,
                            void *ctx, int64_t *revision, int *n)
{
    sts_dbcx cx = {p, s, NULL, quiet};
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *args[2];
    ap_dbd_t *dbd;
    apr_status_t rv;
    int found = 0;

    *n = 0;
    dbd = sts_store_open_bg(&cx);
    if (dbd == NULL) {
        return APR_EGENERAL;
    }
    args[0] = after;
    args[1] = apr_itoa(p, limit);
    rv = sts_store_exec(&cx, dbd, STS_Q_PAGE, &res, NULL, 2, args);
    if (rv == APR_SUCCESS) {
        const apr_dbd_driver_t *d = dbd->driver;

        while (apr_dbd_get_row(d, p, res, &row, -1) == 0) {
            *revision = sts_col_int64(d, row, 0);
            found = 1;
            *n += sts_store_emit(p, d, row, 1, fn, ctx);
        }
        if (!found) {
            rv = APR_ENOENT; /* no revision row: the caller says so */
        }
    }
    sts_store_close(&cx, dbd);
    return rv;
}

/* Writes uses noted by this process (see store.h). */
apr_status_t sts_store_note_uses(apr_pool_t *p, server_rec *s, int quiet,
                                 const char *ids, const char *used_ms,
                                 const char *addresses, int *written)
{
    sts_dbcx cx = {p, s, NULL, quiet};
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    const char *args[3];
    ap_dbd_t *dbd;
    apr_status_t rv;

    *written = 0;
    dbd = sts_store_open_bg(&cx);
    if (dbd == NULL) {
        return APR_EGENERAL;
    }
    args[0] = ids;
    args[1] = used_ms;
    args[2] = addresses;
    rv = sts_store_exec(&cx, dbd, STS_Q_NOTE_USE, &res, NULL, 3, args);
    if (rv == APR_SUCCESS) {
        while (apr_dbd_get_row(dbd->driver, p, res, &row, -1) == 0) {
            *written = (int)sts_col_int64(dbd->driver, row, 0);
        }
    }
    sts_store_close(&cx, dbd);
    return rv;
}
