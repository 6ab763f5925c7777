/*
 * mod_sts_token.c - service tokens for Apache httpd: the module record, its
 * directives and hook registration. The parts live in src/.
 */
#include "httpd.h"
#include "apr_lib.h"
#include "apr_strings.h"
#include "ap_config.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_main.h"

#include "api.h"
#include "api_base.h"
#include "authn.h"
#include "authz.h"
#include "bootstrap.h"
#include "roles.h"
#include "cache.h"
#include "status.h"
#include "store.h"
#include "sts.h"

/* Largest accepted STSTokenCacheTTL (a day) and STSTokenCacheEntries. */
#define STS_MAX_CACHE_TTL 86400
#define STS_MAX_CACHE_ENTRIES 10000000
/* Largest accepted STSTokenDBAcquireTimeout (a minute), milliseconds. */
#define STS_MAX_DB_ACQUIRE_TIMEOUT_MS 60000

/* Creates the per-directory configuration (everything unset). */
static void *sts_create_dir_conf(apr_pool_t *p, char *dir)
{
    sts_dir_conf *c = apr_pcalloc(p, sizeof(*c));

    (void)dir;
    c->hide_credentials = -1;
    c->grant_set = -1;
    c->basic_user = -1;
    c->api_base_set = -1;
    c->rotate_grace = -1;
    c->rotate_grace_max = -1;
    return c;
}

/* Merges per-directory configuration: the child wins where it is set. */
static void *sts_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    sts_dir_conf *base = basev, *add = addv;
    sts_dir_conf *c = apr_pcalloc(p, sizeof(*c));

    c->hide_credentials = add->hide_credentials != -1 ? add->hide_credentials
                                                      : base->hide_credentials;
    if (add->grant_set != -1) {
        c->grant_set = add->grant_set;
        c->grant_held = add->grant_held;
        c->grant_roles = add->grant_roles;
    } else {
        c->grant_set = base->grant_set;
        c->grant_held = base->grant_held;
        c->grant_roles = base->grant_roles;
    }
    c->basic_user = add->basic_user != -1 ? add->basic_user : base->basic_user;
    if (add->api_base_set != -1) {
        c->api_base_set = add->api_base_set;
        c->api_base = add->api_base;
        c->api_base_re = add->api_base_re;
    } else {
        c->api_base_set = base->api_base_set;
        c->api_base = base->api_base;
        c->api_base_re = base->api_base_re;
    }
    c->rotate_grace =
        add->rotate_grace != -1 ? add->rotate_grace : base->rotate_grace;
    c->rotate_grace_max = add->rotate_grace_max != -1 ? add->rotate_grace_max
                                                      : base->rotate_grace_max;
    return c;
}

/* Creates the server configuration (everything unset). */
static void *sts_create_server_conf(apr_pool_t *p, server_rec *s)
{
    sts_server_conf *c = apr_pcalloc(p, sizeof(*c));

    (void)s;
    c->cache_ttl = -1;
    c->cache_entries = -1;
    c->db_acquire_timeout_ms = -1;
    return c;
}

/* Merges a virtual host's configuration over the main server's. */
static void *sts_merge_server_conf(apr_pool_t *p, void *basev, void *addv)
{
    sts_server_conf *base = basev, *add = addv;
    sts_server_conf *c = apr_pcalloc(p, sizeof(*c));

    if (add->bootstrap_file != NULL) {
        c->bootstrap_file = add->bootstrap_file;
        c->bootstrap_roles = add->bootstrap_roles;
    } else {
        c->bootstrap_file = base->bootstrap_file;
        c->bootstrap_roles = base->bootstrap_roles;
    }
    c->cache_ttl = add->cache_ttl != -1 ? add->cache_ttl : base->cache_ttl;
    c->cache_entries =
        add->cache_entries != -1 ? add->cache_entries : base->cache_entries;
    c->db_acquire_timeout_ms = add->db_acquire_timeout_ms != -1
                                   ? add->db_acquire_timeout_ms
                                   : base->db_acquire_timeout_ms;
    return c;
}

/* STSTokenBasicUser Any|TokenName */
static const char *sts_set_basic_user(cmd_parms *cmd, void *dcv,
                                      const char *arg)
{
    sts_dir_conf *dc = dcv;

    if (ap_cstr_casecmp(arg, "Any") == 0) {
        dc->basic_user = STS_BASIC_USER_ANY;
    } else if (ap_cstr_casecmp(arg, "TokenName") == 0) {
        dc->basic_user = STS_BASIC_USER_TOKEN_NAME;
    } else {
        return apr_pstrcat(cmd->pool,
                           "STSTokenBasicUser must be Any or TokenName, not '",
                           arg, "'", NULL);
    }
    return NULL;
}

/* STSTokenBootstrap FILE ROLE [ROLE ...] */
static const char *sts_set_bootstrap(cmd_parms *cmd, void *dc, int argc,
                                     char *const argv[])
{
    sts_server_conf *c =
        ap_get_module_config(cmd->server->module_config, &sts_token_module);
    int i;

    (void)dc;
    if (argc < 2) {
        return "STSTokenBootstrap needs a file and at least one role, e.g. "
               "STSTokenBootstrap /etc/apache2/sts-bootstrap.token "
               "stackstate-admin";
    }
    c->bootstrap_file = ap_server_root_relative(cmd->pool, argv[0]);
    if (c->bootstrap_file == NULL) {
        return apr_pstrcat(cmd->pool, "STSTokenBootstrap: invalid file path ",
                           argv[0], NULL);
    }
    c->bootstrap_roles =
        apr_array_make(cmd->pool, argc - 1, sizeof(const char *));
    for (i = 1; i < argc; i++) {
        if (!sts_role_valid(argv[i], strlen(argv[i]))) {
            return apr_pstrcat(
                cmd->pool, "STSTokenBootstrap: invalid role '", argv[i],
                "' (1-128 characters of A-Z a-z 0-9 . _ : @ -)", NULL);
        }
        APR_ARRAY_PUSH(c->bootstrap_roles, const char *) = argv[i];
    }
    return NULL;
}

/* STSTokenAPIGrantableRoles any | ROLE... [held] */
static const char *sts_set_grantable(cmd_parms *cmd, void *dcv, int argc,
                                     char *const argv[])
{
    sts_dir_conf *dc = dcv;
    int i;

    if (argc == 1 && ap_cstr_casecmp(argv[0], "any") == 0) {
        dc->grant_set = 0;
        return NULL;
    }
    if (argc < 1) {
        return "STSTokenAPIGrantableRoles needs 'any', 'held' or role names";
    }
    dc->grant_set = 1;
    dc->grant_held = 0;
    dc->grant_roles = apr_array_make(cmd->pool, argc, sizeof(const char *));
    for (i = 0; i < argc; i++) {
        if (ap_cstr_casecmp(argv[i], "held") == 0) {
            dc->grant_held = 1;
        } else if (ap_cstr_casecmp(argv[i], "any") == 0) {
            return "STSTokenAPIGrantableRoles: 'any' stands alone (no "
                   "bound); drop it to list what may be granted";
        } else if (!sts_role_valid(argv[i], strlen(argv[i]))) {
            return apr_pstrcat(
                cmd->pool, "STSTokenAPIGrantableRoles: invalid role '", argv[i],
                "' (1-128 characters of A-Z a-z 0-9 . _ : @ -, "
                "or the word held)",
                NULL);
        } else {
            APR_ARRAY_PUSH(dc->grant_roles, const char *) = argv[i];
        }
    }
    return NULL;
}

/* Parses a bounded non-negative integer directive argument. */
static const char *sts_parse_int(cmd_parms *cmd, const char *arg, int min,
                                 int max, int *out)
{
    char *end;
    apr_int64_t v;

    errno = 0;
    v = apr_strtoi64(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || v < min || v > max) {
        return apr_psprintf(cmd->pool,
                            "%s must be a whole number from %d to "
                            "%d, not '%s'",
                            cmd->directive->directive, min, max, arg);
    }
    *out = (int)v;
    return NULL;
}

/* NULL when a server-wide directive is outside <VirtualHost>, else the
 * refusal: the cache and pool settings apply to every database of the
 * process (each gets its own cache and gate, sized alike). */
static const char *sts_server_wide(cmd_parms *cmd)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err == NULL) {
        return NULL;
    }
    return apr_pstrcat(cmd->pool, err,
                       ": it applies to every virtual host (each database "
                       "gets its own cache and pool gate of that size); set "
                       "it once in the main server configuration",
                       NULL);
}

/* STSTokenCacheTTL seconds */
static const char *sts_set_cache_ttl(cmd_parms *cmd, void *dc, const char *arg)
{
    sts_server_conf *c =
        ap_get_module_config(cmd->server->module_config, &sts_token_module);
    const char *err = sts_server_wide(cmd);

    (void)dc;
    return err ? err
               : sts_parse_int(cmd, arg, 0, STS_MAX_CACHE_TTL, &c->cache_ttl);
}

/* STSTokenCacheEntries n */
static const char *sts_set_cache_entries(cmd_parms *cmd, void *dc,
                                         const char *arg)
{
    sts_server_conf *c =
        ap_get_module_config(cmd->server->module_config, &sts_token_module);
    const char *err = sts_server_wide(cmd);

    (void)dc;
    return err ? err
               : sts_parse_int(cmd, arg, 1, STS_MAX_CACHE_ENTRIES,
                               &c->cache_entries);
}

/* STSTokenDBAcquireTimeout milliseconds */
static const char *sts_set_db_acquire_timeout(cmd_parms *cmd, void *dc,
                                              const char *arg)
{
    sts_server_conf *c =
        ap_get_module_config(cmd->server->module_config, &sts_token_module);
    const char *err = sts_server_wide(cmd);

    (void)dc;
    return err ? err
               : sts_parse_int(cmd, arg, 1, STS_MAX_DB_ACQUIRE_TIMEOUT_MS,
                               &c->db_acquire_timeout_ms);
}

/* STSTokenRotateGrace / STSTokenRotateGraceMax seconds (cmd->info: 1 for
 * the maximum). A section setting both is checked here, so configtest
 * refuses a default above the maximum; across sections the token API
 * checks what applies (api.c). */
static const char *sts_set_rotate_grace(cmd_parms *cmd, void *dcv,
                                        const char *arg)
{
    sts_dir_conf *dc = dcv;
    int is_max = cmd->info != NULL;
    const char *err =
        sts_parse_int(cmd, arg, 0, STS_MAX_ROTATE_GRACE,
                      is_max ? &dc->rotate_grace_max : &dc->rotate_grace);

    if (err == NULL && dc->rotate_grace != -1 && dc->rotate_grace_max != -1 &&
        dc->rotate_grace > dc->rotate_grace_max) {
        return apr_psprintf(cmd->pool,
                            "STSTokenRotateGrace %d is more than "
                            "STSTokenRotateGraceMax %d in the same section: "
                            "the default grace period must be allowed",
                            dc->rotate_grace, dc->rotate_grace_max);
    }
    return err;
}

static const command_rec sts_directives[] = {
    AP_INIT_FLAG("STSTokenHideCredentials", ap_set_flag_slot,
                 (void *)APR_OFFSETOF(sts_dir_conf, hide_credentials),
                 OR_AUTHCFG,
                 "On: remove the service token headers from the request "
                 "after authentication (default Off)"),
    AP_INIT_TAKE_ARGV("STSTokenAPIGrantableRoles", sts_set_grantable, NULL,
                      ACCESS_CONF,
                      "Roles the token API's callers here may put on new "
                      "tokens: role names and/or 'held' (the roles the "
                      "caller's token has); 'any' (default) bounds nothing"),
    AP_INIT_TAKE1("STSTokenBasicUser", sts_set_basic_user, NULL, OR_AUTHCFG,
                  "With AuthBasicProvider sts-token: Any (default) accepts "
                  "any user name; TokenName requires the token's name"),
    AP_INIT_RAW_ARGS("STSTokenAPIBase", sts_api_base_set, NULL, ACCESS_CONF,
                     "In the section that sets 'SetHandler sts-token-api': "
                     "the API's routes start at this section's path (or at "
                     "what its regex matches), or at the given path"),
    AP_INIT_TAKE1("STSTokenRotateGrace", sts_set_rotate_grace, NULL,
                  ACCESS_CONF,
                  "Seconds a rotated token's previous secret stays valid "
                  "(unless its new secret is used first) when the rotation "
                  "request names no gracePeriodSeconds (default 3600)"),
    AP_INIT_TAKE1("STSTokenRotateGraceMax", sts_set_rotate_grace, (void *)1,
                  ACCESS_CONF,
                  "Largest gracePeriodSeconds a rotation request may ask "
                  "for, in seconds (default 86400)"),
    AP_INIT_TAKE_ARGV("STSTokenBootstrap", sts_set_bootstrap, NULL, RSRC_CONF,
                      "A file holding the bootstrap secret, then the roles "
                      "it grants"),
    AP_INIT_TAKE1("STSTokenCacheTTL", sts_set_cache_ttl, NULL, RSRC_CONF,
                  "Seconds between two full reads of the tokens into the "
                  "token table, a backstop for changes that "
                  "bypassed the change log (0: no table, every request is "
                  "looked up; default 300)"),
    AP_INIT_TAKE1("STSTokenCacheEntries", sts_set_cache_entries, NULL,
                  RSRC_CONF,
                  "Most tokens the token table of each database holds (in "
                  "shared memory reserved at startup, about 230 bytes "
                  "each); a database with more is looked up token by token "
                  "(default 100000)"),
    AP_INIT_TAKE1("STSTokenDBAcquireTimeout", sts_set_db_acquire_timeout, NULL,
                  RSRC_CONF,
                  "Milliseconds a request waits at mod_dbd's connection "
                  "pool while it hands out no connection before it is "
                  "answered 503 (default 1000)"),
    {NULL},
};

/* Fills defaults and loads the bootstrap secret of every server. */
static const char *sts_finish_server_conf(apr_pool_t *p, server_rec *s)
{
    server_rec *sp;

    for (sp = s; sp; sp = sp->next) {
        sts_server_conf *c =
            ap_get_module_config(sp->module_config, &sts_token_module);
        const char *err;

        if (c->cache_ttl == -1) {
            c->cache_ttl = STS_DEFAULT_CACHE_TTL;
        }
        if (c->cache_entries == -1) {
            c->cache_entries = STS_DEFAULT_CACHE_ENTRIES;
        }
        if (c->db_acquire_timeout_ms == -1) {
            c->db_acquire_timeout_ms = STS_DEFAULT_DB_ACQUIRE_TIMEOUT_MS;
        }
        if (c->bootstrap_file == NULL) {
            continue;
        }
        err = sts_bootstrap_load(p, c);
        if (err != NULL) {
            return err;
        }
    }
    return NULL;
}

/* check_config: everything that could keep httpd from starting is checked
 * here, not in post_config, because `apache2 -t` (apache2ctl configtest,
 * which Debian's graceful and reload run first) stops after this hook: a
 * configuration that passes the test then also starts, and one that fails
 * it never replaces a running server's. */
static int sts_check_config(apr_pool_t *p, apr_pool_t *plog, apr_pool_t *ptemp,
                            server_rec *s)
{
    const char *err;

    (void)plog;
    (void)ptemp;
    err = sts_store_register(p, s);
    if (err == NULL) {
        err = sts_finish_server_conf(p, s);
    }
    if (err == NULL) {
        err = sts_status_post_config(p, s);
    }
    if (err != NULL) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s, "%s", err);
        return !OK;
    }
    return OK;
}

/* post_config: gives every server its database, creates the shared token
 * table of each (the first pass only reads the configuration: none then),
 * and warns at every start
 * while a bootstrap secret is configured (the first pass only reads the
 * configuration, so it stays quiet): once per STSTokenBootstrap line, naming
 * the virtual host that has its own (those inheriting the main server's say
 * nothing new). */
static int sts_post_config(apr_pool_t *p, apr_pool_t *plog, apr_pool_t *ptemp,
                           server_rec *s)
{
    sts_server_conf *main_conf =
        ap_get_module_config(s->module_config, &sts_token_module);
    server_rec *sp;

    (void)plog;
    (void)ptemp;
    sts_store_assign_databases(p, s);
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    sts_cache_post_config(p, s);
    for (sp = s; sp != NULL; sp = sp->next) {
        sts_server_conf *c =
            ap_get_module_config(sp->module_config, &sts_token_module);

        if (c->bootstrap_file == NULL ||
            (sp != s && c->bootstrap_file == main_conf->bootstrap_file)) {
            continue;
        }
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, sp,
                     "STSTokenBootstrap is configured (%s) for %s: anyone "
                     "holding that secret is an administrator. Create real "
                     "service tokens, then remove the directive",
                     c->bootstrap_file,
                     sp == s
                         ? "the main server"
                         : apr_psprintf(p, "virtual host %s:%u", sp->defn_name,
                                        sp->defn_line_number));
    }
    return OK;
}

/* child_init: creates this process's pool gate of every database,
 * attaches it to the database's shared token table and starts its thread. */
static void sts_child_init(apr_pool_t *p, server_rec *s)
{
    sts_server_conf *sc =
        ap_get_module_config(s->module_config, &sts_token_module);
    sts_db *db;

    sts_status_child_init(p, s);
    for (db = sc->dbs; db != NULL; db = db->next) {
        sts_store_child_init(p, s, db);
        sts_cache_child_init(p, s, db);
    }
}

/* pre_config: registers what the configuration may name (the token
 * table's mutex type, for httpd's Mutex directive). */
static int sts_pre_config(apr_pool_t *p, apr_pool_t *plog, apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    sts_cache_pre_config(p);
    return OK;
}

/* Registers every hook and provider of the module. */
static void sts_register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(sts_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(sts_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(sts_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(sts_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    sts_authn_register_hooks(p);
    sts_authn_basic_register(p);
    sts_status_register(p);
    sts_authz_register(p);
    sts_api_register_hooks(p);
}

AP_DECLARE_MODULE(sts_token) = {
    STANDARD20_MODULE_STUFF, sts_create_dir_conf,         sts_merge_dir_conf,
    sts_create_server_conf,  sts_merge_server_conf,       sts_directives,
    sts_register_hooks,      AP_MODULE_FLAG_ALWAYS_MERGE,
};
