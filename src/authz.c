/*
 * authz.c - "Require sts-role R1 [R2 ...]": granted when the request's
 * service token holds any of the listed roles. Works inside <RequireAll>,
 * <RequireAny> and <RequireNone> like any other provider.
 */
#include "httpd.h"
#include "authz.h"

#include "apr_lib.h"
#include "apr_strings.h"
#include "http_log.h"
#include "http_request.h"
#include "mod_auth.h"

#include "sts.h"

APLOG_USE_MODULE(sts_token);

/* 1 when the comma-separated list contains role (exact, case-sensitive). */
int sts_roles_contain(const char *roles, const char *role)
{
    size_t n = strlen(role);
    const char *p = roles;

    if (n == 0) {
        return 0;
    }
    while (p != NULL && *p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);

        if (len == n && memcmp(p, role, n) == 0) {
            return 1;
        }
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* Checks "Require sts-role ..." against the request's token roles. */
static authz_status sts_role_check(request_rec *r, const char *require_args,
                                   const void *parsed)
{
    const sts_identity *id;
    const char *t = require_args;
    const char *w;

    (void)parsed;
    if (r->user == NULL) {
        return AUTHZ_DENIED_NO_USER;
    }
    id = sts_request_identity(r);
    if (id == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "Require sts-role: user '%s' did not authenticate with "
                      "a service token (AuthType %s), so has no token roles",
                      r->user, r->ap_auth_type ? r->ap_auth_type : "none");
        return AUTHZ_DENIED;
    }
    while (*t != '\0') {
        w = ap_getword_conf(r->pool, &t);
        if (*w != '\0' && sts_roles_contain(id->roles, w)) {
            return AUTHZ_GRANTED;
        }
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "token id %" APR_INT64_T_FMT " name '%s' has roles [%s], "
                  "none of those required (sts-role %s) for %s",
                  id->id, id->name, id->roles, require_args, r->uri);
    return AUTHZ_DENIED;
}

/* Checks the roles of a new token against STSTokenAPIGrantableRoles. */
const char *sts_role_not_grantable(request_rec *r, const char *roles)
{
    sts_dir_conf *dc =
        ap_get_module_config(r->per_dir_config, &sts_token_module);
    const sts_identity *id = sts_request_identity(r);
    const char *p = roles;

    if (dc->grant_set != 1) {
        return NULL;
    }
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        const char *role = comma ? apr_pstrmemdup(r->pool, p, comma - p) : p;
        int ok =
            dc->grant_held && id != NULL && sts_roles_contain(id->roles, role);
        int i;

        for (i = 0; !ok && i < dc->grant_roles->nelts; i++) {
            ok = strcmp(APR_ARRAY_IDX(dc->grant_roles, i, const char *),
                        role) == 0;
        }
        if (!ok) {
            return role;
        }
        p = comma ? comma + 1 : "";
    }
    return NULL;
}

/* Refuses an empty "Require sts-role" at startup. */
static const char *sts_role_parse(cmd_parms *cmd, const char *require_line,
                                  const void **parsed)
{
    const char *p = require_line;

    (void)cmd;
    *parsed = NULL;
    while (p != NULL && apr_isspace(*p)) {
        p++;
    }
    if (p == NULL || *p == '\0') {
        return "Require sts-role needs at least one role name";
    }
    return NULL;
}

static const authz_provider sts_role_provider = {
    &sts_role_check,
    &sts_role_parse,
};

/* Registers the provider under the name sts-role. */
void sts_authz_register(apr_pool_t *p)
{
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "sts-role",
                              AUTHZ_PROVIDER_VERSION, &sts_role_provider,
                              AP_AUTH_INTERNAL_PER_CONF);
}
