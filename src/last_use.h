/*
 * last_use.h - when and from where each token was last used, noted in
 * memory by the requests of one process and written to the database in
 * batches by its synchronisation thread (cache.c). Apache-free; times are
 * the caller's (epoch milliseconds for the use, monotonic milliseconds for
 * the throttle).
 *
 * Bounded: a fixed number of slots (STS_LU_SHARDS sets of STS_LU_WAYS, a
 * token's set chosen by its id), allocated once. A token is written at
 * most once per STS_LU_EVERY_MS by a process: its first use is due at the
 * next flush, later uses only update the slot until that interval has
 * passed since the last successful write. A token not yet noted takes a
 * free slot, else the clean slot written longest ago (that token may then
 * be sent again before its interval: the database function applies the
 * same interval per token for every process and host); when every slot of
 * its set holds a use not yet written, the use is dropped and counted.
 *
 * Every function is safe from any number of threads at once.
 */
#ifndef STS_LAST_USE_H
#define STS_LAST_USE_H

#include <stddef.h>
#include <stdint.h>

#define STS_LU_SHARDS 512
#define STS_LU_WAYS 32
#define STS_LU_CAPACITY (STS_LU_SHARDS * STS_LU_WAYS)
/* A token is written at most once a minute per process. */
#define STS_LU_EVERY_MS 60000
/* How often the thread writes what is due. */
#define STS_LU_FLUSH_MS 5000
/* An IPv4 or IPv6 address as text, with its NUL (INET6_ADDRSTRLEN). */
#define STS_LU_ADDR_LEN 46

typedef struct sts_last_use sts_last_use;

/* One use to write: the token, when (epoch ms), from where ("" unknown). */
typedef struct {
    int64_t id;
    int64_t used_ms;
    char addr[STS_LU_ADDR_LEN];
} sts_lu_entry;

typedef struct {
    uint64_t noted;   /* uses noted */
    uint64_t dropped; /* uses dropped: their set was full of unwritten ones */
} sts_lu_stats;

/* NULL when out of memory. */
sts_last_use *sts_lu_create(void);
void sts_lu_destroy(sts_last_use *lu);

/* Notes a use of token id (> 0) at used_ms from addr (a client address as
 * httpd prints it: an IPv4 or IPv6 address, an IPv6 zone is left out;
 * anything else is recorded as unknown). Returns 0, or -1 when the use was
 * dropped. */
int sts_lu_note(sts_last_use *lu, int64_t id, int64_t used_ms,
                const char *addr);

/* Copies into out (room for max) the uses due at now: noted and not
 * written, and (unless all is set: the process is stopping) never written
 * or written STS_LU_EVERY_MS ago or more. Returns how many. */
size_t sts_lu_due(sts_last_use *lu, int64_t now, int all, sts_lu_entry *out,
                  size_t max);

/* The uses sts_lu_due returned were written at now: their slots are clean
 * unless a later use was noted meanwhile. (After a failed write nothing is
 * called: they stay due.) */
void sts_lu_written(sts_last_use *lu, const sts_lu_entry *e, size_t n,
                    int64_t now);

void sts_lu_get_stats(sts_last_use *lu, sts_lu_stats *out);

/* The set (0 .. STS_LU_SHARDS - 1) a token's slot is in. */
int sts_lu_set_of(int64_t id);

#endif
