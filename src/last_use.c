/*
 * last_use.c - the uses of tokens noted in one process until they are
 * written (see last_use.h).
 */
#include "last_use.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* sent_ms of a slot never written. */
#define STS_LU_NEVER INT64_MIN

typedef struct {
    int64_t used_ms; /* the latest use noted */
    int64_t sent_ms; /* monotonic time of the last write, or STS_LU_NEVER */
    int dirty;       /* used_ms/addr not written yet */
    char addr[STS_LU_ADDR_LEN];
} sts_lu_slot;

/* One set: the ids apart, so that finding one reads 256 bytes. id 0 marks
 * a free slot. */
typedef struct {
    int64_t ids[STS_LU_WAYS];
    sts_lu_slot slots[STS_LU_WAYS];
} sts_lu_shard;

/* The locks apart from the sets: calloc's pages of sets no token reached
 * are never touched (a process that sees few tokens keeps little of the
 * 1.2 MB resident). */
struct sts_last_use {
    pthread_mutex_t locks[STS_LU_SHARDS];
    uint64_t noted;   /* atomics */
    uint64_t dropped; /* atomics */
    sts_lu_shard shards[STS_LU_SHARDS];
};

sts_last_use *sts_lu_create(void)
{
    sts_last_use *lu = calloc(1, sizeof(*lu));
    int i;

    if (lu == NULL) {
        return NULL;
    }
    for (i = 0; i < STS_LU_SHARDS; i++) {
        if (pthread_mutex_init(&lu->locks[i], NULL) != 0) {
            while (i-- > 0) {
                pthread_mutex_destroy(&lu->locks[i]);
            }
            free(lu);
            return NULL;
        }
    }
    return lu;
}

void sts_lu_destroy(sts_last_use *lu)
{
    int i;

    if (lu == NULL) {
        return;
    }
    for (i = 0; i < STS_LU_SHARDS; i++) {
        pthread_mutex_destroy(&lu->locks[i]);
    }
    free(lu);
}

/* The set of an id: token ids are random, but a mix keeps sequential ids
 * (SQL inserts, the benchmark's) spread as well. */
int sts_lu_set_of(int64_t id)
{
    uint64_t h = (uint64_t)id * UINT64_C(0x9e3779b97f4a7c15);

    return (int)((h >> 32) % STS_LU_SHARDS);
}

/* addr up to an IPv6 zone ("%eth0": PostgreSQL's inet has none) copied
 * into out, or "" when it does not fit. Whether it is an address is checked
 * when it is written (sts_lu_valid_addr), once per write rather than once
 * per request. */
static void sts_lu_keep_addr(const char *addr, char out[STS_LU_ADDR_LEN])
{
    size_t n = 0;

    if (addr != NULL) {
        while (n < STS_LU_ADDR_LEN && addr[n] != '\0' && addr[n] != '%') {
            n++;
        }
        if (n < STS_LU_ADDR_LEN) {
            memcpy(out, addr, n);
        } else {
            n = 0;
        }
    }
    out[n] = '\0';
}

/* Empties addr unless it is an IPv4 or IPv6 address. */
static void sts_lu_valid_addr(char addr[STS_LU_ADDR_LEN])
{
    unsigned char bin[16];

    if (addr[0] != '\0' && inet_pton(AF_INET, addr, bin) != 1 &&
        inet_pton(AF_INET6, addr, bin) != 1) {
        addr[0] = '\0';
    }
}

int sts_lu_note(sts_last_use *lu, int64_t id, int64_t used_ms, const char *addr)
{
    sts_lu_shard *s;
    char a[STS_LU_ADDR_LEN];
    int i, k, at = -1, free_at = -1, oldest = -1;

    if (id <= 0) {
        return -1;
    }
    sts_lu_keep_addr(addr, a);
    k = sts_lu_set_of(id);
    s = &lu->shards[k];
    pthread_mutex_lock(&lu->locks[k]);
    for (i = 0; i < STS_LU_WAYS; i++) {
        if (s->ids[i] == id) {
            at = i;
            break;
        }
        if (s->ids[i] == 0) {
            if (free_at < 0) {
                free_at = i;
            }
        } else if (!s->slots[i].dirty &&
                   (oldest < 0 ||
                    s->slots[i].sent_ms < s->slots[oldest].sent_ms)) {
            oldest = i;
        }
    }
    if (at < 0) {
        at = free_at >= 0 ? free_at : oldest;
        if (at < 0) {
            pthread_mutex_unlock(&lu->locks[k]);
            __atomic_add_fetch(&lu->dropped, 1, __ATOMIC_RELAXED);
            return -1;
        }
        s->ids[at] = id;
        s->slots[at].sent_ms = STS_LU_NEVER;
        s->slots[at].used_ms = INT64_MIN;
    }
    /* The latest use wins; threads may note out of order. */
    if (used_ms >= s->slots[at].used_ms) {
        s->slots[at].used_ms = used_ms;
        memcpy(s->slots[at].addr, a, sizeof(a));
    }
    s->slots[at].dirty = 1;
    pthread_mutex_unlock(&lu->locks[k]);
    __atomic_add_fetch(&lu->noted, 1, __ATOMIC_RELAXED);
    return 0;
}

size_t sts_lu_due(sts_last_use *lu, int64_t now, int all, sts_lu_entry *out,
                  size_t max)
{
    size_t n = 0, j;
    int k, i;

    for (k = 0; k < STS_LU_SHARDS && n < max; k++) {
        sts_lu_shard *s = &lu->shards[k];

        pthread_mutex_lock(&lu->locks[k]);
        for (i = 0; i < STS_LU_WAYS && n < max; i++) {
            const sts_lu_slot *sl = &s->slots[i];

            if (s->ids[i] == 0 || !sl->dirty ||
                (!all && sl->sent_ms != STS_LU_NEVER &&
                 now - sl->sent_ms < STS_LU_EVERY_MS)) {
                continue;
            }
            out[n].id = s->ids[i];
            out[n].used_ms = sl->used_ms;
            memcpy(out[n].addr, sl->addr, sizeof(out[n].addr));
            n++;
        }
        pthread_mutex_unlock(&lu->locks[k]);
    }
    /* Outside the locks: a request noting a use never waits for it. */
    for (j = 0; j < n; j++) {
        sts_lu_valid_addr(out[j].addr);
    }
    return n;
}

void sts_lu_written(sts_last_use *lu, const sts_lu_entry *e, size_t n,
                    int64_t now)
{
    size_t j;
    int i;

    for (j = 0; j < n; j++) {
        int k = sts_lu_set_of(e[j].id);
        sts_lu_shard *s = &lu->shards[k];

        pthread_mutex_lock(&lu->locks[k]);
        for (i = 0; i < STS_LU_WAYS; i++) {
            if (s->ids[i] == e[j].id) {
                s->slots[i].sent_ms = now;
                if (s->slots[i].used_ms == e[j].used_ms) {
                    s->slots[i].dirty = 0;
                }
                break;
            }
        }
        pthread_mutex_unlock(&lu->locks[k]);
    }
}

void sts_lu_get_stats(sts_last_use *lu, sts_lu_stats *out)
{
    out->noted = __atomic_load_n(&lu->noted, __ATOMIC_RELAXED);
    out->dropped = __atomic_load_n(&lu->dropped, __ATOMIC_RELAXED);
}
