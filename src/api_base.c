/*
 * api_base.c - the token API's base path (see api_base.h).
 *
 * httpd creates a module's per-directory configuration for a section, with
 * the section's path, only when one of the module's directives is used in
 * it; SetHandler is core's. So, as mod_dav has "Dav On" next to its
 * handler, the section that serves the API says STSTokenAPIBase, and the
 * base comes from the path httpd passes for that section: a <Location>'s
 * path, or for <LocationMatch> (and <Location ~>) the text its regex matches
 * in the request. "STSTokenAPIBase /path" fixes the base wherever the
 * handler is set (<If>, <Directory>, .htaccess), as mod_dav's DAVBasePath.
 * A section merged later without the directive (a nested <Location>, a
 * catch-all <Location "/">) does not move the base.
 */
#include "httpd.h"

#include "api_base.h"

#include <string.h>

#include "apr_strings.h"
#include "http_config.h"

#include "sts.h"

/* 1 when the directive's enclosing section is a <Location> or
 * <LocationMatch>; *regex is 1 for <LocationMatch> and <Location ~>. */
static int sts_in_location(cmd_parms *cmd, int *regex)
{
    const ap_directive_t *sec = cmd->directive ? cmd->directive->parent : NULL;

    *regex = 0;
    if (sec == NULL || cmd->path == NULL) {
        return 0;
    }
    if (ap_cstr_casecmp(sec->directive, "<LocationMatch") == 0) {
        *regex = 1;
        return 1;
    }
    if (ap_cstr_casecmp(sec->directive, "<Location") == 0) {
        *regex = sec->args != NULL && sec->args[0] == '~';
        return 1;
    }
    return 0;
}

/* STSTokenAPIBase [PATH] */
const char *sts_api_base_set(cmd_parms *cmd, void *dcv, const char *args)
{
    sts_dir_conf *dc = dcv;
    const char *arg = ap_getword_conf(cmd->temp_pool, &args);
    size_t n;
    int regex;

    if (*args != '\0') {
        return "STSTokenAPIBase takes at most one path";
    }
    if (*arg != '\0') {
        if (arg[0] != '/' || strchr(arg, '?') != NULL ||
            strchr(arg, '#') != NULL) {
            return apr_pstrcat(cmd->pool,
                               "STSTokenAPIBase: the base must be a URL "
                               "path starting with '/', not '",
                               arg, "'", NULL);
        }
        n = strlen(arg);
        while (n > 0 && arg[n - 1] == '/') {
            n--;
        }
        dc->api_base = apr_pstrmemdup(cmd->pool, arg, n);
        dc->api_base_re = NULL;
        dc->api_base_set = 1;
        return NULL;
    }
    if (!sts_in_location(cmd, &regex)) {
        return "STSTokenAPIBase without a path belongs in the <Location> or "
               "<LocationMatch> that sets 'SetHandler sts-token-api'; "
               "elsewhere (<If>, <Directory>, .htaccess) give the base, "
               "e.g. STSTokenAPIBase /api";
    }
    if (regex) {
        dc->api_base_re = ap_pregcomp(cmd->pool, cmd->path, AP_REG_EXTENDED);
        if (dc->api_base_re == NULL) {
            return apr_pstrcat(cmd->pool,
                               "STSTokenAPIBase: cannot compile the "
                               "section's regex '",
                               cmd->path, "'", NULL);
        }
        dc->api_base = NULL;
    } else {
        n = strlen(cmd->path);
        while (n > 0 && cmd->path[n - 1] == '/') {
            n--;
        }
        dc->api_base = apr_pstrmemdup(cmd->pool, cmd->path, n);
        dc->api_base_re = NULL;
    }
    dc->api_base_set = 1;
    return NULL;
}

apr_ssize_t sts_api_base_len(request_rec *r)
{
    sts_dir_conf *dc =
        ap_get_module_config(r->per_dir_config, &sts_token_module);
    size_t n;

    if (dc == NULL || dc->api_base_set != 1) {
        return STS_API_BASE_UNSET;
    }
    if (dc->api_base_re != NULL) {
        ap_regmatch_t m[1];

        if (ap_regexec(dc->api_base_re, r->uri, 1, m, 0) != 0 ||
            m[0].rm_so < 0) {
            return STS_API_BASE_OUTSIDE;
        }
        n = (size_t)m[0].rm_eo;
        if (n > 0 && r->uri[n - 1] == '/') {
            n--;
        }
    } else {
        n = strlen(dc->api_base);
        if (strncmp(r->uri, dc->api_base, n) != 0) {
            return STS_API_BASE_OUTSIDE;
        }
    }
    /* e.g. "^/v[0-9]+/api" matching "/v1/apix/...": no route below it. */
    if (r->uri[n] != '/' && r->uri[n] != '\0') {
        return STS_API_BASE_OUTSIDE;
    }
    return (apr_ssize_t)n;
}
