/*
 * authn.h - authentication of requests: AuthType ServiceToken, and the
 * verification it shares with the Basic provider (authn_basic.c).
 */
#ifndef STS_AUTHN_H
#define STS_AUTHN_H

#include "httpd.h"

#include "sts.h"

/* Registers the check_authn and note_auth_failure hooks. */
void sts_authn_register_hooks(apr_pool_t *p);

/* Registers the "sts-token" provider for AuthBasicProvider (authn_basic.c). */
void sts_authn_basic_register(apr_pool_t *p);

/* Verifies a presented secret of len bytes: the bootstrap secret, or a
 * service token looked up in the cache then PostgreSQL, not expired.
 * Returns OK with *out set; HTTP_UNAUTHORIZED with *why set (the reason,
 * for the client and the log; never the secret) and *out set when the
 * token is known but expired (else left alone); HTTP_SERVICE_UNAVAILABLE
 * when the database cannot answer, or HTTP_INTERNAL_SERVER_ERROR (both
 * logged). */
int sts_authn_verify(request_rec *r, const char *token, size_t len,
                     sts_identity **out, const char **why);

/* Makes id the identity of r: r->user (the token's name), what
 * Require sts-role reads, and the STS_TOKEN_* environment variables. */
void sts_authn_set_identity(request_rec *r, sts_identity *id);

/* "(id N, name 'x')" for logging a refused known token; NULL for NULL. */
const char *sts_authn_who(request_rec *r, const sts_identity *id);

#endif
