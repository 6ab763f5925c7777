/*
 * outage.c - the database's availability as one process sees it (see
 * outage.h). Lock-free: plain loads and compare-and-swaps on the fields.
 */
#include "outage.h"

static int64_t load64(const int64_t *v)
{
    return __atomic_load_n(v, __ATOMIC_ACQUIRE);
}

static int cas64(int64_t *v, int64_t expected, int64_t desired)
{
    return __atomic_compare_exchange_n(v, &expected, desired, 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* 1 when up, or when *next_try is due and this caller claimed it. */
static int may_try(sts_outage *o, int64_t *next_try, int64_t now)
{
    int64_t next;

    if (load64(&o->down_since) == 0) {
        return 1;
    }
    next = load64(next_try);
    return now >= next && cas64(next_try, next, now + STS_OUTAGE_RETRY_US);
}

int sts_outage_may_try(sts_outage *o, int64_t now)
{
    return may_try(o, &o->next_try, now);
}

int sts_outage_may_try_background(sts_outage *o, int64_t now)
{
    return may_try(o, &o->next_bg_try, now);
}

int sts_outage_failed(sts_outage *o, int64_t now)
{
    __atomic_store_n(&o->next_try, now + STS_OUTAGE_RETRY_US, __ATOMIC_RELEASE);
    __atomic_store_n(&o->next_bg_try, now + STS_OUTAGE_RETRY_US,
                     __ATOMIC_RELEASE);
    if (!cas64(&o->down_since, 0, now)) {
        return 0;
    }
    /* The start is reported by the caller: the next report in a while. */
    __atomic_store_n(&o->next_report, now + STS_OUTAGE_REPORT_US,
                     __ATOMIC_RELEASE);
    return 1;
}

int sts_outage_reached(sts_outage *o, int64_t now, int64_t *down_us,
                       uint32_t *refused)
{
    int64_t since = load64(&o->down_since);

    if (since == 0 || !cas64(&o->down_since, since, 0)) {
        return 0;
    }
    *down_us = now - since;
    *refused = __atomic_exchange_n(&o->refused_total, 0, __ATOMIC_ACQ_REL);
    __atomic_store_n(&o->refused, 0, __ATOMIC_RELEASE);
    /* The next failure is reported at once. */
    __atomic_store_n(&o->next_report, 0, __ATOMIC_RELEASE);
    return 1;
}

void sts_outage_refused(sts_outage *o)
{
    __atomic_add_fetch(&o->refused, 1, __ATOMIC_ACQ_REL);
    __atomic_add_fetch(&o->refused_total, 1, __ATOMIC_ACQ_REL);
}

int sts_outage_report_due(sts_outage *o, int64_t now, uint32_t *refused)
{
    int64_t next = load64(&o->next_report);

    if (now < next ||
        !cas64(&o->next_report, next, now + STS_OUTAGE_REPORT_US)) {
        return 0;
    }
    *refused = __atomic_exchange_n(&o->refused, 0, __ATOMIC_ACQ_REL);
    return 1;
}

int sts_outage_retry_after(const sts_outage *o, int64_t now)
{
    int64_t wait;

    if (load64(&o->down_since) == 0) {
        return 1;
    }
    wait = load64(&o->next_try) - now;
    return wait <= 1000000 ? 1 : (int)((wait + 999999) / 1000000);
}
