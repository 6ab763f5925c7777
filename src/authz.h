/*
 * authz.h - the "Require sts-role ROLE..." authorization provider, and
 * what a token API caller may grant (STSTokenAPIGrantableRoles).
 */
#ifndef STS_AUTHZ_H
#define STS_AUTHZ_H

#include "apr_pools.h"

#include "httpd.h"

/* The first of the comma-separated roles that r's caller may not put on a
 * new token under STSTokenAPIGrantableRoles, or NULL when it may grant them
 * all (always when the directive is unset or "any"). */
const char *sts_role_not_grantable(request_rec *r, const char *roles);

/* Registers the sts-role provider. */
void sts_authz_register(apr_pool_t *p);

#endif
