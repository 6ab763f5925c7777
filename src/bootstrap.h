/*
 * bootstrap.h - the bootstrap secret (STSTokenBootstrap FILE ROLE...).
 */
#ifndef STS_BOOTSTRAP_H
#define STS_BOOTSTRAP_H

#include "httpd.h"

#include "sts.h"

/* Minimum length of the bootstrap secret, in characters. */
#define STS_BOOTSTRAP_MIN_LEN 32

/* Reads and checks the bootstrap file of conf (owned by root or the user
 * starting httpd, owner-only permissions, at least 32 visible characters
 * after trimming the trailing newline) and keeps only its SHA-256 digest.
 * Returns an error message, or NULL. */
const char *sts_bootstrap_load(apr_pool_t *p, sts_server_conf *conf);

/* The identity of a request that presented the bootstrap secret. */
sts_identity *sts_bootstrap_identity(apr_pool_t *p,
                                     const sts_server_conf *conf);

#endif
