/*
 * authz.h - the "Require sts-role ROLE..." authorization provider.
 */
#ifndef STS_AUTHZ_H
#define STS_AUTHZ_H

#include "apr_pools.h"

/* Registers the sts-role provider. */
void sts_authz_register(apr_pool_t *p);

#endif
