/*
 * cache.c - the token table of each database, shared by the processes of
 * the httpd instance, its synchronisation, and the one lookup
 * authentication calls (see cache.h). The table is token_table.c, the
 * synchronisation sync.c (both Apache-free); this file puts them in
 * shared memory and connects them to httpd, mod_dbd (store.c), APR's
 * global mutexes and a monotonic clock.
 *
 * The parent creates, per database, one anonymous shared memory segment
 * (the synchronisation's shared state, then the table, sized by
 * STSTokenCacheEntries) and two global mutexes (type "sts-token-table",
 * set with httpd's Mutex directive): the writers' lock, held for in-memory
 * writes only, and the synchroniser's, held across a step of the
 * synchronisation (its statements included). Both go with the
 * configuration pool, so a restart makes new ones and the old generation's
 * children keep theirs until they exit; anonymous memory leaves no file.
 * APR's mutexes are released by the kernel when their holder dies (fcntl,
 * flock, SysV semaphores with undo, robust pthread mutexes), and a table a
 * writer died in is emptied by the next one (token_table.h).
 *
 * Why a thread per process and database: the table must follow the
 * database whether or not requests arrive, and any process may die (a
 * crash, MaxConnectionsPerChild, a restart). Every process's thread tries
 * the synchroniser's lock every STS_CACHE_TRY_MS; the one that gets it
 * does what is due (the shared state says what), so the host makes one
 * read of the changes per STS_SYNC_POLL_MS whatever its number of
 * processes, and another process takes over within STS_CACHE_TRY_MS of
 * one going.
 */
#include "httpd.h"

#include "cache.h"

#include <errno.h>
#include <string.h>

#include "apr_global_mutex.h"
#include "apr_shm.h"
#include "apr_strings.h"
#include "apr_thread_cond.h"
#include "apr_thread_mutex.h"
#include "apr_thread_proc.h"
#include "ap_mpm.h"
#include "http_config.h"
#include "http_log.h"
#include "http_main.h"
#include "util_mutex.h"

#include "clock.h"
#include "last_use.h"
#include "names.h"
#include "status.h"
#include "sync.h"
#include "token_table.h"

APLOG_USE_MODULE(sts_token);

#define STS_CACHE_MUTEX "sts-token-table"
/* How often a process that is not synchronising tries to. */
#define STS_CACHE_TRY_MS 100

/* A database's shared table, as the parent made it (post_config). */
struct sts_cache_shm {
    void *table_mem;
    sts_sync_shared *sync_shared;
    apr_size_t bytes;
    apr_global_mutex_t *write_mutex, *step_mutex;
    const char *write_lockfile, *step_lockfile;
};

struct sts_cache {
    sts_db *db;
    sts_token_table *table; /* NULL with STSTokenCacheTTL 0 */
    sts_sync *sync;         /* NULL with STSTokenCacheTTL 0 */
    apr_global_mutex_t *write_mutex, *step_mutex; /* this process's */
    apr_pool_t *iter; /* the thread's, cleared after each step */
    apr_thread_t *thread;
    apr_thread_mutex_t *mutex;
    apr_thread_cond_t *wake;
    int stop;       /* under mutex */
    int failing;    /* the thread's last statement failed (then quiet) */
    int lock_error; /* a global mutex failed (logged once; atomic) */
    /* Last use (the thread's): */
    sts_last_use *lu;
    sts_lu_entry *batch; /* STS_LU_CAPACITY entries */
    int64_t next_flush;
    int lu_failing;            /* the last write failed (then quiet) */
    uint64_t dropped_reported; /* dropped uses already logged */
    int64_t next_drop_report;
};

/* Monotonic milliseconds (clock.h): every interval (poll schedule, trust
 * window) is measured with it, never with the wall clock, which can jump. */
static int64_t sts_mono_ms(void)
{
    return sts_monotonic_now() / 1000;
}

/* Formats an epoch-ms instant as YYYY-MM-DD in UTC ("" when none). */
static const char *sts_format_date(apr_pool_t *p, int64_t ms)
{
    apr_time_exp_t tm;

    if (ms < 0 || apr_time_exp_gmt(&tm, (apr_time_t)ms * 1000) != APR_SUCCESS) {
        return "";
    }
    return apr_psprintf(p, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                        tm.tm_mday);
}

/* A token as the table keeps it, from a database row (strings in p):
 * STS_TOKEN_ID and STS_TOKEN_EXPIRATION formatted once, here. */
static void sts_tt_of_row(apr_pool_t *p, const sts_token_row *row,
                          sts_tt_token *tok)
{
    tok->id = row->id;
    tok->expiration_ms = row->expiration_ms;
    tok->until_ms = row->until_ms;
    tok->retire = row->retire;
    tok->str[STS_TT_NAME] = row->name;
    tok->str[STS_TT_ROLES] = row->roles;
    tok->str[STS_TT_ID_TEXT] = apr_psprintf(p, "%" APR_INT64_T_FMT, row->id);
    tok->str[STS_TT_EXPIRATION_TEXT] = sts_format_date(p, row->expiration_ms);
}

/* The identity of a token as read from the table or built from a row. */
static sts_identity *sts_identity_of(apr_pool_t *p, const sts_tt_token *tok)
{
    sts_identity *id = apr_palloc(p, sizeof(*id));

    id->id = tok->id;
    id->expiration_ms = tok->expiration_ms;
    id->name = tok->str[STS_TT_NAME];
    id->roles = tok->str[STS_TT_ROLES];
    id->id_text = tok->str[STS_TT_ID_TEXT];
    id->expiration_text = tok->str[STS_TT_EXPIRATION_TEXT];
    id->retire_previous = tok->retire;
    return id;
}

/* 64 lower-case hex characters to a digest; -1 when not. */
static int sts_digest_from_hex(const char *hex, unsigned char *out)
{
    int i;

    for (i = 0; i < STS_DIGEST_LEN * 2; i++) {
        char c = hex[i];
        int v = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;

        if (v < 0) {
            return -1;
        }
        if (i % 2 == 0) {
            out[i / 2] = (unsigned char)(v << 4);
        } else {
            out[i / 2] |= (unsigned char)v;
        }
    }
    return hex[STS_DIGEST_LEN * 2] == '\0' ? 0 : -1;
}

/* ---- the synchronisation's source: store.c through the thread's pool ---- */

typedef struct {
    struct sts_cache *c;
    sts_sync_row_fn fn;
    void *fnctx;
} sts_adapter;

/* A row from store.c, converted for the synchronisation. */
static void sts_adapt_row(void *ctx, const char *digest_hex,
                          const sts_token_row *row)
{
    sts_adapter *a = ctx;
    unsigned char digest[STS_DIGEST_LEN];
    sts_tt_token tok;

    if (sts_digest_from_hex(digest_hex, digest) != 0) {
        return; /* the schema's CHECK rules this out */
    }
    if (row == NULL) {
        a->fn(a->fnctx, digest, NULL);
        return;
    }
    sts_tt_of_row(a->c->iter, row, &tok);
    a->fn(a->fnctx, digest, &tok);
}

/* The synchronisation's result code for a statement's status; the next
 * statement is quiet while they fail. */
static int sts_src_result(struct sts_cache *c, apr_status_t rv)
{
    c->failing = rv != APR_SUCCESS;
    return rv == APR_SUCCESS          ? 0
           : APR_STATUS_IS_ENOENT(rv) ? STS_SYNC_NO_REVISION
                                      : -1;
}

static int sts_src_changes(void *ctx, int64_t since, sts_sync_row_fn fn,
                           void *fnctx, int64_t *revision, int64_t *horizon)
{
    struct sts_cache *c = ctx;
    sts_adapter a = {c, fn, fnctx};

    return sts_src_result(c, sts_store_changes(c->iter, c->db->server,
                                               c->failing, since, sts_adapt_row,
                                               &a, revision, horizon));
}

static int sts_src_page(void *ctx, const unsigned char after[STS_DIGEST_LEN],
                        int first, int limit, sts_sync_row_fn fn, void *fnctx,
                        int64_t *revision, int *n)
{
    struct sts_cache *c = ctx;
    sts_adapter a = {c, fn, fnctx};
    char hex[STS_DIGEST_HEX_LEN + 1] = "";

    if (!first) {
        sts_digest_to_hex(after, hex);
    }
    return sts_src_result(c, sts_store_page(c->iter, c->db->server, c->failing,
                                            hex, limit, sts_adapt_row, &a,
                                            revision, n));
}

static void sts_src_log(void *ctx, int level, const char *msg)
{
    struct sts_cache *c = ctx;
    static const int levels[] = {APLOG_ERR, APLOG_WARNING, APLOG_NOTICE,
                                 APLOG_DEBUG};

    ap_log_error(APLOG_MARK, levels[level], 0, c->db->server, "%s", msg);
}

/* ---- the thread ---- */

/* Logs the first failure of a global mutex (then quiet). A restart
 * destroys the old generation's mutexes in the parent before its children
 * finish their requests: a SysV semaphore is removed then and fails in them
 * with EINVAL or EIDRM, which is no fault. (pthread mutexes, which APR
 * reference-counts, and fcntl, flock and POSIX semaphores keep working in
 * them until they exit.) */
static void sts_cache_lock_failed(struct sts_cache *c, apr_status_t rv)
{
    int state = AP_MPMQ_RUNNING;

    /* Request threads and the thread may fail at once: one reports. */
    if (__atomic_exchange_n(&c->lock_error, 1, __ATOMIC_ACQ_REL)) {
        return;
    }
    if (rv == APR_FROM_OS_ERROR(EIDRM) || APR_STATUS_IS_EINVAL(rv) ||
        (ap_mpm_query(AP_MPMQ_MPM_STATE, &state) == APR_SUCCESS &&
         state == AP_MPMQ_STOPPING)) {
        ap_log_error(APLOG_MARK, APLOG_INFO, rv, c->db->server,
                     "the token table's lock is gone (a restart): this "
                     "process of the previous generation stops updating "
                     "the table and looks tokens up once it is no longer "
                     "current");
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_ERR, rv, c->db->server,
                 "cannot take the token table's lock: this process "
                 "neither updates nor adds to the shared token table (it "
                 "still answers from it while another process keeps it "
                 "current)");
}

static int sts_cache_lock(void *ctx)
{
    struct sts_cache *c = ctx;
    apr_status_t rv = apr_global_mutex_lock(c->write_mutex);

    if (rv != APR_SUCCESS) {
        sts_cache_lock_failed(c, rv);
        return -1;
    }
    return 0;
}

static void sts_cache_unlock(void *ctx)
{
    struct sts_cache *c = ctx;

    apr_global_mutex_unlock(c->write_mutex);
}

/* One turn of the thread: a step of the synchronisation when no other
 * process is making one; the delay until the next turn. */
static int64_t sts_cache_turn(struct sts_cache *c)
{
    apr_status_t rv = apr_global_mutex_trylock(c->step_mutex);
    sts_sync_stats before, after;
    int64_t delay;

    if (rv != APR_SUCCESS) {
        if (!APR_STATUS_IS_EBUSY(rv)) {
            sts_cache_lock_failed(c, rv);
        }
        return STS_CACHE_TRY_MS;
    }
    sts_sync_get_stats(c->sync, &before);
    delay = sts_sync_step(c->sync, sts_mono_ms());
    sts_sync_get_stats(c->sync, &after);
    apr_global_mutex_unlock(c->step_mutex);
    /* server-status: the last read of the changes this process made. */
    if (after.statements != before.statements &&
        sts_sync_trusted(c->sync, sts_mono_ms())) {
        sts_status_poll_ok(c->db, after.revision);
    }
    return delay < STS_CACHE_TRY_MS ? delay : STS_CACHE_TRY_MS;
}

/* Logs, at most once per 10 minutes, uses dropped since the last report
 * (more distinct tokens than slots between two writes). */
static void sts_cache_report_drops(struct sts_cache *c, int64_t now)
{
    sts_lu_stats st;

    sts_lu_get_stats(c->lu, &st);
    if (st.dropped == c->dropped_reported || now < c->next_drop_report) {
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, c->db->server,
                 "last use: %" APR_UINT64_T_FMT " uses of tokens were not "
                 "noted by this process (more than %d distinct tokens used "
                 "within %d s): their last use may show older than it is "
                 "(reported at most every 10 minutes)",
                 st.dropped - c->dropped_reported, STS_LU_CAPACITY,
                 STS_LU_FLUSH_MS / 1000);
    c->dropped_reported = st.dropped;
    c->next_drop_report = now + 600000;
}

/* Formats the uses as three PostgreSQL array literals (ids, epoch ms,
 * addresses: validated IP addresses or "", never quoted otherwise). */
static void sts_cache_arrays(apr_pool_t *p, const sts_lu_entry *e, size_t n,
                             const char **ids, const char **ms,
                             const char **addrs)
{
    char *bi = apr_palloc(p, n * 22 + 3), *bm = apr_palloc(p, n * 22 + 3);
    char *ba = apr_palloc(p, n * (STS_LU_ADDR_LEN + 3) + 3);
    size_t i, ni = 0, nm = 0, na = 0;

    bi[ni++] = bm[nm++] = ba[na++] = '{';
    for (i = 0; i < n; i++) {
        const char *sep = i + 1 < n ? "," : "";

        ni += (size_t)apr_snprintf(bi + ni, 22, "%" APR_INT64_T_FMT "%s",
                                   e[i].id, sep);
        nm += (size_t)apr_snprintf(bm + nm, 22, "%" APR_INT64_T_FMT "%s",
                                   e[i].used_ms, sep);
        na += (size_t)apr_snprintf(ba + na, STS_LU_ADDR_LEN + 3, "\"%s\"%s",
                                   e[i].addr, sep);
    }
    memcpy(bi + ni, "}", 2);
    memcpy(bm + nm, "}", 2);
    memcpy(ba + na, "}", 2);
    *ids = bi;
    *ms = bm;
    *addrs = ba;
}

/* Writes the uses due (all of them when the process stops) in one
 * statement. A failure is logged once, until a write succeeds; the uses
 * stay due and are tried again at the next flush. Requests never wait for
 * this. */
static void sts_cache_flush(struct sts_cache *c, int64_t now, int all)
{
    const char *ids, *ms, *addrs;
    int written = 0;
    size_t n;

    sts_cache_report_drops(c, now);
    n = sts_lu_due(c->lu, now, all, c->batch, STS_LU_CAPACITY);
    if (n == 0) {
        return;
    }
    sts_cache_arrays(c->iter, c->batch, n, &ids, &ms, &addrs);
    if (sts_store_note_uses(c->iter, c->db->server, c->lu_failing, ids, ms,
                            addrs, &written) != APR_SUCCESS) {
        if (!c->lu_failing) {
            ap_log_error(
                APLOG_MARK, APLOG_WARNING, 0, c->db->server,
                "cannot record when tokens were last used (%" APR_SIZE_T_FMT " "
                "uses kept in memory and tried again every %d s; "
                "requests are not affected)",
                n, STS_LU_FLUSH_MS / 1000);
            c->lu_failing = 1;
        }
        return;
    }
    if (c->lu_failing) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, c->db->server,
                     "last use of tokens recorded again");
        c->lu_failing = 0;
    }
    sts_lu_written(c->lu, c->batch, n, now);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, c->db->server,
                 "last use: sent %" APR_SIZE_T_FMT " uses, %d rows written", n,
                 written);
}

static void *APR_THREAD_FUNC sts_cache_thread(apr_thread_t *t, void *data)
{
    struct sts_cache *c = data;

    (void)t;
    apr_thread_mutex_lock(c->mutex);
    while (!c->stop) {
        int64_t delay = STS_LU_FLUSH_MS, now;

        apr_thread_mutex_unlock(c->mutex);
        if (c->sync != NULL) {
            delay = sts_cache_turn(c);
        }
        now = sts_mono_ms();
        if (now >= c->next_flush) {
            sts_cache_flush(c, now, 0);
            c->next_flush = now + STS_LU_FLUSH_MS;
        }
        if (c->next_flush - now < delay) {
            delay = c->next_flush - now;
        }
        apr_pool_clear(c->iter);
        apr_thread_mutex_lock(c->mutex);
        if (!c->stop && delay > 0) {
            apr_thread_cond_timedwait(c->wake, c->mutex,
                                      apr_time_from_msec(delay));
        }
    }
    apr_thread_mutex_unlock(c->mutex);
    /* The uses not written yet, unless the database failed: a stopping
     * process does not wait for it. */
    if (!c->lu_failing) {
        sts_cache_flush(c, sts_mono_ms(), 1);
        apr_pool_clear(c->iter);
    }
    return NULL;
}

/* Stops the thread before the child's pools (mod_dbd's among them) go. */
static apr_status_t sts_cache_stop(void *data)
{
    struct sts_cache *c = data;
    apr_status_t rv;

    apr_thread_mutex_lock(c->mutex);
    c->stop = 1;
    apr_thread_cond_signal(c->wake);
    apr_thread_mutex_unlock(c->mutex);
    apr_thread_join(&rv, c->thread);
    c->db->cache = NULL;
    c->db->last_use = NULL;
    sts_sync_destroy(c->sync);
    sts_table_detach(c->table);
    sts_lu_destroy(c->lu);
    return APR_SUCCESS;
}

/* Attaches this process to the shared table of one database unless
 * reload_s is 0 (STSTokenCacheTTL 0) or the parent could not make it, and
 * starts its thread (which then only records last use). */
static void sts_cache_start(apr_pool_t *p, sts_db *db, int reload_s,
                            int max_entries)
{
    static const sts_sync_source src_template = {sts_src_changes, sts_src_page,
                                                 sts_src_log, NULL};
    struct sts_cache *c = apr_pcalloc(p, sizeof(*c));
    struct sts_cache_shm *shm = db->shm;
    sts_sync_source src = src_template;
    sts_tt_lock lock = {sts_cache_lock, sts_cache_unlock, NULL};
    int ok = 1;
    apr_status_t rv;

    c->db = db;
    src.ctx = c;
    lock.ctx = c;
    if (reload_s > 0 && shm != NULL) {
        c->write_mutex = shm->write_mutex;
        c->step_mutex = shm->step_mutex;
        rv = apr_global_mutex_child_init(&c->write_mutex, shm->write_lockfile,
                                         p);
        if (rv == APR_SUCCESS) {
            rv = apr_global_mutex_child_init(&c->step_mutex, shm->step_lockfile,
                                             p);
        }
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_ERR, rv, db->server,
                         "cannot open the token table's lock in this "
                         "process: every token of this process is looked up "
                         "in the database");
        } else {
            c->table = sts_table_attach(shm->table_mem, &lock);
            c->sync = c->table ? sts_sync_create(c->table, shm->sync_shared,
                                                 &src, (int64_t)reload_s * 1000,
                                                 (size_t)max_entries)
                               : NULL;
            ok = c->sync != NULL;
        }
    }
    c->lu = sts_lu_create();
    c->batch = apr_palloc(p, sizeof(*c->batch) * STS_LU_CAPACITY);
    if (!ok || c->lu == NULL || apr_pool_create(&c->iter, p) != APR_SUCCESS ||
        apr_thread_mutex_create(&c->mutex, APR_THREAD_MUTEX_DEFAULT, p) !=
            APR_SUCCESS ||
        apr_thread_cond_create(&c->wake, p) != APR_SUCCESS) {
        rv = APR_ENOMEM;
    } else {
        rv = apr_thread_create(&c->thread, NULL, sts_cache_thread, c, p);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, db->server,
                     "cannot start the token table's thread: every token of "
                     "this process is looked up in the database, and its "
                     "uses are not recorded");
        sts_sync_destroy(c->sync);
        sts_table_detach(c->table);
        sts_lu_destroy(c->lu);
        return;
    }
    db->cache = c->sync != NULL ? c : NULL;
    db->last_use = c->lu;
    apr_pool_pre_cleanup_register(p, c, sts_cache_stop);
}

void sts_cache_child_init(apr_pool_t *p, server_rec *s, sts_db *db)
{
    sts_server_conf *sc =
        ap_get_module_config(s->module_config, &sts_token_module);

    db->cache = NULL;
    db->last_use = NULL;
    sts_cache_start(p, db, sc->cache_ttl, sc->cache_entries);
}

void sts_cache_note_use(request_rec *r, const sts_identity *id)
{
    sts_last_use *lu = sts_request_db(r)->last_use;

    if (lu != NULL) {
        sts_lu_note(lu, id->id, apr_time_as_msec(r->request_time),
                    r->useragent_ip);
    }
}

void sts_cache_pre_config(apr_pool_t *pconf)
{
    ap_mutex_register(pconf, STS_CACHE_MUTEX, NULL, APR_LOCK_DEFAULT, 0);
}

/* The shared table of database number i (see the top). */
static struct sts_cache_shm *sts_cache_shm_create(apr_pool_t *pconf, sts_db *db,
                                                  int i, size_t entries)
{
    struct sts_cache_shm *sh = apr_pcalloc(pconf, sizeof(*sh));
    size_t sync_size = (sts_sync_shared_size() + 63) & ~(size_t)63;
    apr_shm_t *shm;
    apr_status_t rv;
    uintptr_t base;

    sh->bytes = sync_size + sts_table_mem_size(entries);
    /* APR puts a size header before the base address: one spare cache
     * line aligns what follows it. */
    rv = apr_shm_create(&shm, sh->bytes + 64, NULL, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, db->server,
                     "cannot create the shared memory of the token table "
                     "(%" APR_SIZE_T_FMT " bytes for STSTokenCacheEntries "
                     "%zu): every token is looked up in the database",
                     sh->bytes, entries);
        return NULL;
    }
    base = ((uintptr_t)apr_shm_baseaddr_get(shm) + 63) & ~(uintptr_t)63;
    sh->sync_shared = (sts_sync_shared *)base;
    sh->table_mem = (void *)(base + sync_size);
    sts_sync_shared_init(sh->sync_shared);
    sts_table_format(sh->table_mem, entries);
    rv = ap_global_mutex_create(&sh->write_mutex, &sh->write_lockfile,
                                STS_CACHE_MUTEX, apr_psprintf(pconf, "%dw", i),
                                db->server, pconf, 0);
    if (rv == APR_SUCCESS) {
        rv = ap_global_mutex_create(
            &sh->step_mutex, &sh->step_lockfile, STS_CACHE_MUTEX,
            apr_psprintf(pconf, "%ds", i), db->server, pconf, 0);
    }
    if (rv != APR_SUCCESS) {
        /* ap_global_mutex_create logged why. */
        return NULL;
    }
    return sh;
}

int sts_cache_post_config(apr_pool_t *pconf, server_rec *s)
{
    sts_server_conf *sc =
        ap_get_module_config(s->module_config, &sts_token_module);
    sts_db *db;
    int i = 0;

    for (db = sc->dbs; db != NULL; db = db->next) {
        db->shm = NULL;
        if (sc->cache_ttl > 0) {
            db->shm =
                sts_cache_shm_create(pconf, db, i++, (size_t)sc->cache_entries);
        }
    }
    return OK;
}

void sts_cache_held(size_t *tokens, size_t *bytes)
{
    sts_server_conf *sc =
        ap_get_module_config(ap_server_conf->module_config, &sts_token_module);
    sts_db *db;

    *tokens = *bytes = 0;
    for (db = sc->dbs; db != NULL; db = db->next) {
        struct sts_cache *c = db->cache;

        if (c != NULL) {
            *tokens += sts_table_count(c->table);
            *bytes += sts_table_bytes(c->table);
        }
    }
}

/* ---- requests ---- */

static void *sts_pool_alloc(void *ctx, size_t n)
{
    return apr_palloc(ctx, n);
}

/* OK with *out, or 401 for a rotated-away secret past its end or for a
 * token stored under the bootstrap secret's name past the API's name rule
 * (SQL, an older version): it would pass for the bootstrap secret in
 * REMOTE_USER and the logs. */
static int sts_cache_found(request_rec *r, const sts_tt_token *tok,
                           sts_identity **out, const char **why)
{
    /* A secret a rotation replaced, past its grace period: refused like a
     * deleted token (the database no longer returns it either). */
    if (tok->until_ms >= 0 &&
        (int64_t)(apr_time_now() / 1000) >= tok->until_ms) {
        *why = "token secret replaced by a rotation (its grace period is "
               "over): use the new secret";
        return HTTP_UNAUTHORIZED;
    }
    if (sts_token_name_reserved(tok->str[STS_TT_NAME])) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "token id %" APR_INT64_T_FMT " is named '%s', the "
                      "bootstrap secret's name: rename it (UPDATE sts_tokens "
                      "SET name = ...) or delete it",
                      tok->id, tok->str[STS_TT_NAME]);
        *why = "token name reserved for the bootstrap secret";
        return HTTP_UNAUTHORIZED;
    }
    *out = sts_identity_of(r->pool, tok);
    return OK;
}

int sts_cache_find(request_rec *r, const char *token, size_t len,
                   const unsigned char digest[STS_DIGEST_LEN],
                   sts_identity **out, const char **why)
{
    struct sts_cache *c = sts_request_db(r)->cache;
    char hex[STS_DIGEST_HEX_LEN + 1];
    sts_token_row *row = NULL;
    uint64_t ticket = 0;
    sts_tt_token tok;

    if (c != NULL) {
        switch (sts_sync_lookup(c->sync, digest, sts_mono_ms(), &tok,
                                sts_pool_alloc, r->pool, &ticket)) {
        case STS_SYNC_HIT:
            /* No checksum check: the digest is one the database issued. */
            sts_status_count(STS_STAT_CACHE_HITS);
            ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, "token table hit");
            return sts_cache_found(r, &tok, out, why);
        case STS_SYNC_UNKNOWN:
            sts_status_count(STS_STAT_NEGATIVE_HITS);
            *why = sts_token_is_wellformed(token, len)
                       ? "unknown or deleted token"
                       : "token checksum does not match (mistyped?)";
            ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                          "token table: unknown digest");
            return HTTP_UNAUTHORIZED;
        case STS_SYNC_ASK:
            sts_status_count(STS_STAT_CACHE_MISSES);
            break;
        }
    }
    if (!sts_token_is_wellformed(token, len)) {
        *why = "token checksum does not match (mistyped?)";
        return HTTP_UNAUTHORIZED;
    }
    sts_digest_to_hex(digest, hex);
    sts_status_count(STS_STAT_DB_LOOKUPS);
    if (sts_store_lookup(r, hex, &row) != APR_SUCCESS) {
        sts_status_count(STS_STAT_UNAVAILABLE);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (row == NULL) {
        *why = "unknown or deleted token";
        return HTTP_UNAUTHORIZED;
    }
    sts_tt_of_row(r->pool, row, &tok);
    if (c != NULL) {
        sts_sync_learned(c->sync, digest, &tok, ticket);
    }
    return sts_cache_found(r, &tok, out, why);
}

uint64_t sts_cache_ticket(request_rec *r)
{
    struct sts_cache *c = sts_request_db(r)->cache;

    return c != NULL ? sts_sync_ticket(c->sync) : 0;
}

void sts_cache_created(request_rec *r,
                       const unsigned char digest[STS_DIGEST_LEN],
                       const sts_token_row *row, uint64_t ticket)
{
    struct sts_cache *c = sts_request_db(r)->cache;
    sts_tt_token tok;

    if (c != NULL) {
        sts_tt_of_row(r->pool, row, &tok);
        sts_sync_learned(c->sync, digest, &tok, ticket);
    }
}

void sts_cache_deleted(request_rec *r, const char *digest_hex)
{
    struct sts_cache *c = sts_request_db(r)->cache;
    unsigned char digest[STS_DIGEST_LEN];

    if (c != NULL && digest_hex != NULL &&
        sts_digest_from_hex(digest_hex, digest) == 0) {
        sts_sync_forget(c->sync, digest);
    }
}

/* Stores a rotation's outcome in the host's table: the new digest at once;
 * the replaced one with its end, or gone when it has none; the previous
 * one that died, gone. Other hosts learn it from the change log. */
void sts_cache_rotated(request_rec *r,
                       const unsigned char digest[STS_DIGEST_LEN],
                       const sts_rotation *rot, uint64_t ticket)
{
    struct sts_cache *c = sts_request_db(r)->cache;
    unsigned char old[STS_DIGEST_LEN];
    sts_token_row prev;

    if (c == NULL) {
        return;
    }
    sts_cache_deleted(r, rot->dropped);
    if (rot->replaced_until < 0) {
        sts_cache_deleted(r, rot->replaced);
    } else if (sts_digest_from_hex(rot->replaced, old) == 0) {
        prev = rot->token;
        prev.until_ms = rot->replaced_until;
        prev.retire = 0;
        sts_cache_created(r, old, &prev, ticket);
    }
    sts_cache_created(r, digest, &rot->token, ticket);
}

/* Retires the previous secret of a rotated token whose new secret (digest)
 * authenticated r (see cache.h). */
void sts_cache_retire(request_rec *r,
                      const unsigned char digest[STS_DIGEST_LEN],
                      const sts_identity *id)
{
    struct sts_cache *c = sts_request_db(r)->cache;
    char hex[STS_DIGEST_HEX_LEN + 1];
    const char *retired = NULL;

    /* Once per host: the request that takes the shared table's flag
     * retires, whichever process serves it; a digest the table does not
     * hold (no table, or looked up in the database) retires on every use
     * until the database says it is done (sts_token_retire_previous does
     * nothing the second time). */
    if (c != NULL && sts_table_take_retire(c->table, digest) == 0) {
        return;
    }
    sts_digest_to_hex(digest, hex);
    if (sts_store_retire(r, id->id, hex, &retired) != APR_SUCCESS) {
        /* The next use tries again; the previous secret's grace period
         * ends it meanwhile in any case. This request goes on. */
        if (c != NULL) {
            sts_table_return_retire(c->table, digest);
        }
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "could not retire the previous secret of token id "
                      "%" APR_INT64_T_FMT " name '%s' on the first use of "
                      "its new one (the database failed: see its message): "
                      "it stays valid until a later use retires it or its "
                      "grace period ends",
                      id->id, id->name);
        return;
    }
    if (retired != NULL) {
        sts_cache_deleted(r, retired);
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      "token id %" APR_INT64_T_FMT " name '%s': its new "
                      "secret was used, its previous secret is retired",
                      id->id, id->name);
    }
}
