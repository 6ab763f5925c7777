/*
 * outage.h - the database's availability as one httpd process sees it (no
 * Apache types; times are microseconds from the caller's clock).
 *
 * While the database cannot be reached, trying it for every request costs
 * a connection attempt each (and mod_dbd logs two lines per attempt), so
 * the error log grew by ~750 bytes per refused request. Instead, after a
 * failed attempt one request per retry interval goes through and every
 * other request is answered 503 at once, with Retry-After. The module's
 * background work (the revision poll, last-use writes) has its own attempt
 * per retry interval: a request is never refused because that thread's
 * attempt is still connecting, which after the database came back would
 * refuse requests until it finished. Why requests are refused is
 * reported once per report interval with the number refused meanwhile,
 * and the end of an outage once, with its length and count.
 *
 * Every function is safe to call from any number of threads at once.
 */
#ifndef STS_OUTAGE_H
#define STS_OUTAGE_H

#include <stdint.h>

/* One attempt per half second while down (service resumes that soon after
 * the database does); one report per 10 s. */
#define STS_OUTAGE_RETRY_US 500000
#define STS_OUTAGE_REPORT_US 10000000

typedef struct {
    int64_t down_since;     /* 0 while the database is reachable */
    int64_t next_try;       /* while down: when the next request may try */
    int64_t next_bg_try;    /* while down: when background work may try */
    int64_t next_report;    /* when the next report may be logged */
    uint32_t refused;       /* requests refused since the last report */
    uint32_t refused_total; /* requests refused since down_since */
} sts_outage;

/* 1 when a request may try to reach the database now: it is up, or it is
 * down and this caller is the one attempt of the current retry interval. */
int sts_outage_may_try(sts_outage *o, int64_t now);

/* The same for the background's attempt of the current retry interval
 * (independent of the requests'). */
int sts_outage_may_try_background(sts_outage *o, int64_t now);

/* An attempt to reach the database failed (the next of either kind goes
 * one retry interval later). Returns 1 when this starts an
 * outage. */
int sts_outage_failed(sts_outage *o, int64_t now);

/* An attempt reached the database. Returns 1, with how long it was down and
 * how many requests were refused meanwhile, when this ends an outage. */
int sts_outage_reached(sts_outage *o, int64_t now, int64_t *down_us,
                       uint32_t *refused);

/* A request was answered 503 for want of the database: counted. */
void sts_outage_refused(sts_outage *o);

/* 1 when a refusal should be reported now (once per report interval), with
 * *refused the requests refused since the last report (then reset). */
int sts_outage_report_due(sts_outage *o, int64_t now, uint32_t *refused);

/* Seconds a client should wait before retrying: until the next attempt
 * while down (at least 1), else 1. */
int sts_outage_retry_after(const sts_outage *o, int64_t now);

#endif
