/*
 * status.h - the module's counters and its section of mod_status's
 * server-status page (one row per httpd process; "?auto" as Key: value
 * lines).
 *
 * Each process counts into its own slot of a shared-memory table created
 * by the parent (check_config), so the process that serves server-status
 * shows every process. Counters are APR atomics: safe from any thread.
 */
#ifndef STS_STATUS_H
#define STS_STATUS_H

#include "httpd.h"

#include "sts.h"

typedef enum {
    STS_STAT_CACHE_HITS,    /* verified token found in the cache */
    STS_STAT_CACHE_MISSES,  /* not in the cache (or not trusted yet) */
    STS_STAT_NEGATIVE_HITS, /* digest known not to exist (cached) */
    STS_STAT_DB_LOOKUPS,    /* token lookups sent to PostgreSQL */
    STS_STAT_DB_FAILURES,   /* statements or connections that failed */
    STS_STAT_UNAVAILABLE,   /* requests refused (503; 500 under Basic)
                               for want of the database */
    STS_STAT_COUNT
} sts_stat;

/* Creates the table of process slots (parent, post_config). Returns an
 * error message or NULL; without shared memory each process only shows
 * itself. */
const char *sts_status_post_config(apr_pool_t *pconf, server_rec *s);

/* Claims this process's slot (child_init); released when p goes. */
void sts_status_child_init(apr_pool_t *p, server_rec *s);

/* Adds one to a counter of this process. */
void sts_status_count(sts_stat which);

/* This process read db's changes, and the shared token table is current
 * at revision. server-status shows the main server's database's. */
void sts_status_poll_ok(const sts_db *db, int64_t revision);

/* Registers the mod_status hook. */
void sts_status_register(apr_pool_t *p);

#endif
