/*
 * api_base.h - where the token API's routes start: STSTokenAPIBase, set in
 * the section that sets the handler (as mod_dav's Dav/DAVBasePath).
 */
#ifndef STS_API_BASE_H
#define STS_API_BASE_H

#include "httpd.h"
#include "http_config.h"

/* STSTokenAPIBase [PATH] (a per-directory directive; args raw). */
const char *sts_api_base_set(cmd_parms *cmd, void *dc, const char *args);

/* No STSTokenAPIBase applies to r: the caller reads the route from the end
 * of the path. */
#define STS_API_BASE_UNSET (-1)
/* r->uri is not below the base (or not at a path segment boundary). */
#define STS_API_BASE_OUTSIDE (-2)

/* Length of the prefix of r->uri that is the API's base (without a
 * trailing '/'), or STS_API_BASE_UNSET / STS_API_BASE_OUTSIDE. */
apr_ssize_t sts_api_base_len(request_rec *r);

#endif
