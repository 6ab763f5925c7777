/*
 * status.c - the module's counters and its server-status section (see
 * status.h).
 *
 * The table: one slot per process the MPM may run at once
 * (AP_MPMQ_HARD_LIMIT_DAEMONS), in anonymous shared memory created by the
 * parent and inherited by its children. A child claims a free slot, or one
 * whose process is gone (a crashed child cannot free its own), with a
 * compare-and-swap of its pid, and frees it when its pool is destroyed.
 * After a graceful restart the new generation uses a new table; children of
 * the old one finishing their requests are not shown.
 */
#include "httpd.h"

#include "status.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

#include "apr_atomic.h"
#include "apr_optional.h"
#include "apr_shm.h"
#include "apr_strings.h"
#include "ap_mpm.h"
#include "http_config.h"
#include "http_log.h"
#include "http_main.h"
#include "http_protocol.h"
#include "mod_status.h"
#include "scoreboard.h"

#include "cache.h"
#include "clock.h"
#include "sts.h"

APLOG_USE_MODULE(sts_token);

/* A process's counters are split over this many cache lines, each thread
 * counting into one (chosen at its first count), so that the threads of a
 * process do not contend for one line on every request; a reader sums
 * them. */
#define STS_STAT_SHARDS 8

typedef struct {
    apr_uint64_t count[STS_STAT_COUNT];
} __attribute__((aligned(64))) sts_counts;

typedef struct {
    apr_uint32_t pid; /* 0: free */
    apr_uint32_t unused;
    sts_counts shard[STS_STAT_SHARDS];
    /* The last good revision poll of the main server's database: */
    apr_uint64_t last_poll;      /* apr_time_t (wall clock, shown), 0: none */
    apr_uint64_t last_poll_mono; /* sts_monotonic_now(), for its age */
    apr_uint64_t revision;
} sts_proc_stats;

/* The table (shared) and this process's slot; set in post_config and
 * child_init, before any request. private_slot is used when the table
 * is missing or full. */
static sts_proc_stats *sts_table;
static int sts_table_len;
static sts_proc_stats sts_private_slot;
static sts_proc_stats *sts_mine = &sts_private_slot;
/* The shard of the calling thread, plus one (0: not chosen yet); threads
 * take the shards in turn. */
static _Thread_local unsigned sts_thread_shard;
static apr_uint32_t sts_next_shard;

/* Names of the counters: ?auto key, HTML column. */
static const char *const sts_stat_key[STS_STAT_COUNT] = {
    "CacheHits", "CacheMisses", "NegativeHits",
    "DBLookups", "DBFailures",  "Unavailable"};
static const char *const sts_stat_title[STS_STAT_COUNT] = {
    "Hits",       "Misses",      "Negative hits",
    "DB lookups", "DB failures", "Refused: DB down"};

const char *sts_status_post_config(apr_pool_t *pconf, server_rec *s)
{
    apr_shm_t *shm;
    apr_status_t rv;
    uintptr_t base;
    int n = 0;

    sts_table = NULL;
    sts_table_len = 0;
    if (ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &n) != APR_SUCCESS || n < 1) {
        n = 1;
    }
    /* APR puts a size header before the base address, so the slots'
     * cache-line alignment is made here, from one spare alignment unit. */
    rv = apr_shm_create(
        &shm, sizeof(sts_proc_stats) * (apr_size_t)n + _Alignof(sts_proc_stats),
        NULL, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                     "cannot create the shared memory of the module's "
                     "server-status counters: each process shows only its "
                     "own");
        return NULL;
    }
    base = (uintptr_t)apr_shm_baseaddr_get(shm);
    sts_table = (sts_proc_stats *)((base + _Alignof(sts_proc_stats) - 1) &
                                   ~(uintptr_t)(_Alignof(sts_proc_stats) - 1));
    memset(sts_table, 0, sizeof(sts_proc_stats) * (apr_size_t)n);
    sts_table_len = n;
    return NULL;
}

/* 1 when process pid is alive (or not ours to signal). */
static int sts_pid_alive(apr_uint32_t pid)
{
    return pid != 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* Frees this process's slot when the child exits. */
static apr_status_t sts_status_release(void *data)
{
    sts_proc_stats *slot = data;

    apr_atomic_cas32(&slot->pid, 0, (apr_uint32_t)getpid());
    sts_mine = &sts_private_slot;
    return APR_SUCCESS;
}

void sts_status_child_init(apr_pool_t *p, server_rec *s)
{
    apr_uint32_t me = (apr_uint32_t)getpid();
    int i;

    memset(&sts_private_slot, 0, sizeof(sts_private_slot));
    sts_private_slot.pid = me;
    sts_mine = &sts_private_slot;
    for (i = 0; i < sts_table_len; i++) {
        sts_proc_stats *slot = &sts_table[i];
        apr_uint32_t old = apr_atomic_read32(&slot->pid);

        if ((old == 0 || !sts_pid_alive(old)) &&
            apr_atomic_cas32(&slot->pid, me, old) == old) {
            memset(slot->shard, 0, sizeof(slot->shard));
            apr_atomic_set64(&slot->last_poll, 0);
            apr_atomic_set64(&slot->last_poll_mono, 0);
            apr_atomic_set64(&slot->revision, 0);
            sts_mine = slot;
            apr_pool_cleanup_register(p, slot, sts_status_release,
                                      apr_pool_cleanup_null);
            return;
        }
    }
    if (sts_table_len > 0) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "no free slot for this process's server-status "
                     "counters (%d in use): it is not shown",
                     sts_table_len);
    }
}

void sts_status_count(sts_stat which)
{
    if (sts_thread_shard == 0) {
        sts_thread_shard =
            apr_atomic_inc32(&sts_next_shard) % STS_STAT_SHARDS + 1;
    }
    apr_atomic_inc64(&sts_mine->shard[sts_thread_shard - 1].count[which]);
}

void sts_status_poll_ok(const sts_db *db, int64_t revision)
{
    sts_server_conf *sc =
        ap_get_module_config(ap_server_conf->module_config, &sts_token_module);

    /* One poll record per process: the main server's database's (each
     * database's cache polls its own revision; one would overwrite
     * another's). */
    if (db != sc->db) {
        return;
    }
    apr_atomic_set64(&sts_mine->last_poll_mono,
                     (apr_uint64_t)sts_monotonic_now());
    apr_atomic_set64(&sts_mine->last_poll, (apr_uint64_t)apr_time_now());
    apr_atomic_set64(&sts_mine->revision, (apr_uint64_t)revision);
}

/* What a reader sees of a process. */
typedef struct {
    apr_uint32_t pid;
    apr_uint64_t count[STS_STAT_COUNT];
    apr_uint64_t last_poll;
    apr_uint64_t last_poll_mono;
    apr_uint64_t revision;
} sts_proc_view;

/* A consistent-enough view of a slot (each field read atomically). */
static void sts_read_slot(sts_proc_stats *slot, sts_proc_view *out)
{
    int k, i;

    out->pid = apr_atomic_read32(&slot->pid);
    for (k = 0; k < STS_STAT_COUNT; k++) {
        out->count[k] = 0;
        for (i = 0; i < STS_STAT_SHARDS; i++) {
            out->count[k] += apr_atomic_read64(&slot->shard[i].count[k]);
        }
    }
    out->last_poll = apr_atomic_read64(&slot->last_poll);
    out->last_poll_mono = apr_atomic_read64(&slot->last_poll_mono);
    out->revision = apr_atomic_read64(&slot->revision);
}

/* The live processes' slots, copied, in table order. */
static apr_array_header_t *sts_snapshot(apr_pool_t *p)
{
    apr_array_header_t *a = apr_array_make(p, 8, sizeof(sts_proc_view));
    int i;

    if (sts_table == NULL || sts_mine == &sts_private_slot) {
        sts_read_slot(&sts_private_slot, apr_array_push(a));
        return a;
    }
    for (i = 0; i < sts_table_len; i++) {
        sts_proc_view view;

        sts_read_slot(&sts_table[i], &view);
        if (sts_pid_alive(view.pid)) {
            *(sts_proc_view *)apr_array_push(a) = view;
        }
    }
    return a;
}

/* Seconds since a poll as "1.234", or "-" when none; at and now on the
 * monotonic clock (a wall clock stepped back or forth would skew it). */
static const char *sts_age(apr_pool_t *p, apr_uint64_t at, apr_time_t now)
{
    apr_time_t d;

    if (at == 0) {
        return "-";
    }
    d = now > (apr_time_t)at ? now - (apr_time_t)at : 0;
    return apr_psprintf(p, "%" APR_TIME_T_FMT ".%03d", apr_time_sec(d),
                        (int)(apr_time_msec(d) % 1000));
}

/* Prints the ?auto lines: the totals, then each process. */
static void sts_status_short(request_rec *r, apr_array_header_t *a,
                             apr_time_t now)
{
    sts_proc_view total;
    apr_uint64_t newest = 0, newest_mono = 0, revision = 0;
    size_t tokens, bytes;
    int i, k;

    memset(&total, 0, sizeof(total));
    for (i = 0; i < a->nelts; i++) {
        sts_proc_view *s = &APR_ARRAY_IDX(a, i, sts_proc_view);

        for (k = 0; k < STS_STAT_COUNT; k++) {
            total.count[k] += s->count[k];
        }
        if (s->last_poll_mono > newest_mono) {
            newest = s->last_poll;
            newest_mono = s->last_poll_mono;
            revision = s->revision;
        }
    }
    ap_rprintf(r, "STSTokenProcesses: %d\n", a->nelts);
    sts_cache_held(&tokens, &bytes);
    ap_rprintf(r, "STSTokenCached: %" APR_SIZE_T_FMT "\n", tokens);
    ap_rprintf(r, "STSTokenCacheBytes: %" APR_SIZE_T_FMT "\n", bytes);
    for (k = 0; k < STS_STAT_COUNT; k++) {
        ap_rprintf(r, "STSToken%s: %" APR_UINT64_T_FMT "\n", sts_stat_key[k],
                   total.count[k]);
    }
    if (newest != 0) {
        ap_rprintf(r, "STSTokenLastPoll: %" APR_TIME_T_FMT "\n",
                   apr_time_sec((apr_time_t)newest));
        ap_rprintf(r, "STSTokenLastPollAge: %s\n",
                   sts_age(r->pool, newest_mono, now));
        ap_rprintf(r, "STSTokenRevision: %" APR_UINT64_T_FMT "\n", revision);
    }
    for (i = 0; i < a->nelts; i++) {
        sts_proc_view *s = &APR_ARRAY_IDX(a, i, sts_proc_view);

        ap_rprintf(r, "STSTokenProcess%dPid: %u\n", i, s->pid);
        for (k = 0; k < STS_STAT_COUNT; k++) {
            ap_rprintf(r, "STSTokenProcess%d%s: %" APR_UINT64_T_FMT "\n", i,
                       sts_stat_key[k], s->count[k]);
        }
        if (s->last_poll != 0) {
            ap_rprintf(r, "STSTokenProcess%dLastPollAge: %s\n", i,
                       sts_age(r->pool, s->last_poll_mono, now));
            ap_rprintf(r, "STSTokenProcess%dRevision: %" APR_UINT64_T_FMT "\n",
                       i, s->revision);
        }
    }
}

/* Prints the HTML section: one table row per process. */
static void sts_status_html(request_rec *r, apr_array_header_t *a,
                            apr_time_t now)
{
    size_t tokens, bytes;
    int i, k;

    sts_cache_held(&tokens, &bytes);
    ap_rprintf(r,
               "<hr />\n<h2>mod_sts_token</h2>\n<p>Tokens cached: "
               "%" APR_SIZE_T_FMT " (%" APR_SIZE_T_FMT " bytes), in the "
               "token tables every process shares</p>\n"
               "<table border=\"0\"><tr><th>PID</th>",
               tokens, bytes);
    for (k = 0; k < STS_STAT_COUNT; k++) {
        ap_rprintf(r, "<th>%s</th>", sts_stat_title[k]);
    }
    ap_rputs("<th>Last poll</th><th>Age (s)</th><th>Revision</th></tr>\n", r);
    for (i = 0; i < a->nelts; i++) {
        sts_proc_view *s = &APR_ARRAY_IDX(a, i, sts_proc_view);
        char when[APR_RFC822_DATE_LEN] = "-";

        if (s->last_poll != 0) {
            apr_rfc822_date(when, (apr_time_t)s->last_poll);
        }
        ap_rprintf(r, "<tr><td>%u</td>", s->pid);
        for (k = 0; k < STS_STAT_COUNT; k++) {
            ap_rprintf(r, "<td>%" APR_UINT64_T_FMT "</td>", s->count[k]);
        }
        ap_rprintf(
            r, "<td>%s</td><td>%s</td><td>%s</td></tr>\n", when,
            sts_age(r->pool, s->last_poll_mono, now),
            s->last_poll != 0
                ? apr_psprintf(r->pool, "%" APR_UINT64_T_FMT, s->revision)
                : "-");
    }
    ap_rputs("</table>\n", r);
}

/* mod_status's hook: the module's section, with ExtendedStatus On. */
static int sts_status_hook(request_rec *r, int flags)
{
    apr_array_header_t *a;
    apr_time_t now = sts_monotonic_now();

    if (!ap_extended_status) {
        return OK;
    }
    a = sts_snapshot(r->pool);
    if (flags & AP_STATUS_SHORT) {
        sts_status_short(r, a, now);
    } else {
        sts_status_html(r, a, now);
    }
    return OK;
}

void sts_status_register(apr_pool_t *p)
{
    (void)p;
    APR_OPTIONAL_HOOK(ap, status_hook, sts_status_hook, NULL, NULL,
                      APR_HOOK_MIDDLE);
}
