/*
 * api.h - the "sts-token-api" handler: StackState-compatible token CRUD.
 */
#ifndef STS_API_H
#define STS_API_H

#include "apr_pools.h"

/* Registers the handler hook. */
void sts_api_register_hooks(apr_pool_t *p);

#endif
