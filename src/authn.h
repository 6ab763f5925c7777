/*
 * authn.h - authentication of requests under AuthType ServiceToken.
 */
#ifndef STS_AUTHN_H
#define STS_AUTHN_H

#include "apr_pools.h"

/* Registers the check_authn and note_auth_failure hooks. */
void sts_authn_register_hooks(apr_pool_t *p);

#endif
