/*
 * context.c - sts context save | list | show | set | delete | validate:
 * named connections in StackState's config file (shared with its CLI).
 */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include "run.h"

/* Largest CA certificate file stored into a context. */
#define CLI_MAX_CA_FILE (256 * 1024)

static const char help_context[] =
    "Manage connections to servers (contexts), shared with StackState's CLI.\n"
    "\n"
    "Usage:\n"
    "  sts context [command]\n"
    "\n"
    "Available Commands:\n"
    "  save        Save a context and make it current (validated with GET "
    "{url}{api-path}/server/info)\n"
    "  list        List contexts\n"
    "  show        Show a context (the current one without --name)\n"
    "  set         Make a context current: --name NAME\n"
    "  delete      Delete a context: --name NAME\n"
    "  validate    Check a context's connection (the current one without "
    "--name)\n"
    "\n"
    "sts context save flags:\n"
    "  -n, --name NAME            context name (default \"default\")\n"
    "      --url URL              server URL, http:// or https:// "
    "(required)\n"
    "      --service-token-file FILE  read the service token from FILE's "
    "first line (- for standard input)\n"
    "      --service-token TOKEN  the service token as an argument (other "
    "local users see command lines: prefer the file)\n"
    "      --api-path PATH        API path (default /api)\n"
    "      --skip-validate        save without contacting the server\n"
    "      --skip-ssl             store skip-ssl: do not verify "
    "certificates\n"
    "      --ca-cert-path FILE    store this CA certificate (PEM) in the "
    "context\n"
    "\n"
    "\"sts context --name N --url URL --service-token T\" is the same as "
    "\"sts context save\".\n"
    "The file is $XDG_CONFIG_HOME/stackstate-cli/config.yaml (else "
    "~/.config/stackstate-cli/config.yaml), or --config FILE.\n";

/* The API path shown for a context. */
static const char *api_of(const cli_context *c)
{
    return c->api_path[0] ? c->api_path : CLI_DEFAULT_API_PATH;
}

/* A context's settings as StackState's CLI prints them in JSON, without
 * the token: no command ever prints a secret it was given. */
static json_t *context_json(const cli_context *c)
{
    json_t *o =
        json_pack("{sssssssb}", "url", c->url, "api-path", api_of(c),
                  "admin-api-path", c->admin_api_path, "skip-ssl", c->skip_ssl);

    if (o != NULL && c->ca_cert_base64 != NULL) {
        json_object_set_new(o, "ca-cert-base64-data",
                            json_string(c->ca_cert_base64));
    }
    return o;
}

/* The context named by --name (or --context, STS_CLI_CONTEXT), else the
 * current one. */
static cli_context *pick_context(cli_run *run, int *rc)
{
    const char *name = run->a.name
                           ? run->a.name
                           : cli_flag_or_env(run->a.context, "STS_CLI_CONTEXT");
    cli_context *c;

    name = name ? name : (run->cfg.current[0] ? run->cfg.current : NULL);
    if (name == NULL) {
        *rc = cli_fail(&run->out, CLI_ECONFIG,
                       "no current context in %s: give --name or run sts "
                       "context save",
                       run->config_path);
        return NULL;
    }
    c = cli_config_find(&run->cfg, name);
    if (c == NULL) {
        *rc = cli_fail(&run->out, CLI_ENOTFOUND,
                       "context '%s' not found in %s (see sts context list)",
                       name, run->config_path);
    }
    return c;
}

/* Reads a CA certificate file (bounded) as base64, as StackState's CLI
 * stores it; NULL with err set on failure. */
static char *read_ca_base64(const char *path, char *err, size_t errlen)
{
    unsigned char *buf;
    char *out = NULL;
    struct stat st;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size <= 0 || st.st_size > CLI_MAX_CA_FILE) {
        snprintf(err, errlen,
                 "--ca-cert-path '%s': not a readable file of 1 byte to %d "
                 "KiB",
                 path, CLI_MAX_CA_FILE / 1024);
        if (fd >= 0) {
            close(fd);
        }
        return NULL;
    }
    buf = malloc((size_t)st.st_size);
    n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
    close(fd);
    if (n != st.st_size || memmem(buf, (size_t)n, "-----BEGIN", 10) == NULL) {
        snprintf(err, errlen,
                 "--ca-cert-path '%s': cannot read a PEM certificate", path);
        free(buf);
        return NULL;
    }
    out = malloc(((size_t)n + 2) / 3 * 4 + 1);
    if (out) {
        EVP_EncodeBlock((unsigned char *)out, buf, (int)n);
    }
    free(buf);
    return out;
}

/* Validates the save flags; CLI_OK or a printed usage error. */
static int check_save_flags(cli_run *run, const char *name, const char *api)
{
    char err[512];

    if (!run->a.url || !run->a.service_token) {
        return cli_fail(&run->out, CLI_EUSAGE,
                        "context save needs --url and --service-token-file "
                        "(or --service-token) (see sts context --help)");
    }
    if (cli_check_text("--name", name, CLI_MAX_NAME, 0, err, sizeof(err)) ||
        cli_check_url(run->a.url, err, sizeof(err)) ||
        cli_check_token(run->a.service_token, err, sizeof(err)) ||
        cli_check_api_path(api, err, sizeof(err))) {
        return cli_fail(&run->out, CLI_EUSAGE, "%s", err);
    }
    return cli_check_ca_flag(run);
}

/* sts context save (and the older "sts context --name ..."). */
static int ctx_save(cli_run *run)
{
    const char *api = run->a.api_path ? run->a.api_path : CLI_DEFAULT_API_PATH;
    const char *name = run->a.name ? run->a.name : "default";
    cli_config *cfg = &run->cfg;
    char err[1024], *ca = NULL;
    cli_context *c;
    cli_target t;
    int rc;

    rc = cli_reject_extra(run, "context save", 0,
                          CLI_F_NAME | CLI_F_SKIP_VALIDATE);
    if (rc != CLI_OK || (rc = check_save_flags(run, name, api)) != CLI_OK) {
        return rc;
    }
    if (run->a.ca_cert_path && !run->a.skip_ssl) {
        ca = read_ca_base64(run->a.ca_cert_path, err, sizeof(err));
        if (ca == NULL) {
            return cli_fail(&run->out, CLI_EUSAGE, "%s", err);
        }
    }
    if (!run->a.skip_validate) {
        memset(&t, 0, sizeof(t));
        t.url = run->a.url;
        t.token = run->a.service_token;
        t.api_path = api;
        t.skip_ssl = run->a.skip_ssl;
        t.ca_cert_path = run->a.ca_cert_path;
        rc = cli_timeout(run, &t);
        rc = rc == CLI_OK ? cli_validate_server(run, &t, NULL) : rc;
        if (rc != CLI_OK) {
            free(ca);
            return rc;
        }
    }
    rc = cli_load_config_for_write(run);
    if (rc != CLI_OK) {
        free(ca);
        return rc;
    }
    c = cli_config_find(cfg, name);
    if (c == NULL) {
        if (cfg->ncontexts >= CLI_MAX_CONTEXTS) {
            free(ca);
            return cli_fail(&run->out, CLI_ECONFIG,
                            "%s already has %d contexts: delete one first",
                            run->config_path, CLI_MAX_CONTEXTS);
        }
        c = &cfg->contexts[cfg->ncontexts++];
    }
    free(c->ca_cert_base64);
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    snprintf(c->url, sizeof(c->url), "%s", run->a.url);
    snprintf(c->service_token, sizeof(c->service_token), "%s",
             run->a.service_token);
    snprintf(c->api_path, sizeof(c->api_path), "%s", api);
    c->skip_ssl = run->a.skip_ssl;
    c->ca_cert_base64 = ca;
    snprintf(cfg->current, sizeof(cfg->current), "%s", name);
    if (cli_config_save(run->config_path, cfg, err, sizeof(err)) != 0) {
        return cli_fail(&run->out, CLI_ECONFIG, "%s", err);
    }
    if (run->out.json) {
        cli_print_json(json_pack("{ssso}", "current-context", c->name,
                                 "context", context_json(c)));
    } else {
        cli_success(&run->out, "Context saved: %s (%s, %s)", c->name, c->url,
                    run->a.skip_validate ? "not validated" : "validated");
    }
    return CLI_OK;
}

/* sts context list */
static int ctx_list(cli_run *run)
{
    const cli_config *cfg = &run->cfg;
    const cli_context *c;
    int i;

    if (run->out.json) {
        json_t *a = json_array();

        for (i = 0; i < cfg->ncontexts; i++) {
            c = &cfg->contexts[i];
            json_array_append_new(a, json_pack("{ssso}", "name", c->name,
                                               "context", context_json(c)));
        }
        cli_print_json(json_pack("{so}", "contexts", a));
    } else if (cfg->ncontexts == 0) {
        printf("No contexts found.\n");
    } else {
        const char *headers[] = {"CURRENT", "NAME", "URL", "API-PATH"};
        char *cells[CLI_MAX_CONTEXTS * 4] = {0}, *table = NULL;
        int ok = 1;

        for (i = 0; i < cfg->ncontexts; i++) {
            c = &cfg->contexts[i];
            cells[i * 4] = strdup(strcmp(c->name, cfg->current) ? "" : "*");
            cells[i * 4 + 1] = cli_printable(c->name);
            cells[i * 4 + 2] = cli_printable(c->url);
            cells[i * 4 + 3] = cli_printable(api_of(c));
            ok = ok && cells[i * 4] && cells[i * 4 + 1] && cells[i * 4 + 2] &&
                 cells[i * 4 + 3];
        }
        if (ok) {
            table = cli_format_table(headers, 4, (const char *const *)cells,
                                     cfg->ncontexts);
        }
        for (i = 0; i < cfg->ncontexts * 4; i++) {
            free(cells[i]);
        }
        if (table == NULL) {
            return cli_fail(&run->out, CLI_ECONFIG, "out of memory");
        }
        fputs(table, stdout);
        free(table);
    }
    return CLI_OK;
}

/* sts context show | validate */
static int ctx_show_validate(cli_run *run, int validate)
{
    cli_context *c;
    char *name, *url;
    int rc = CLI_OK;

    c = pick_context(run, &rc);
    if (c == NULL) {
        return rc;
    }
    if (validate) {
        cli_target t;
        char err[512];
        json_t *info = NULL;

        /* This context's own settings (not flags or STS_CLI_*). */
        memset(&t, 0, sizeof(t));
        t.url = c->url;
        t.token = c->service_token;
        t.api_path = api_of(c);
        t.skip_ssl = run->a.skip_ssl || c->skip_ssl;
        t.ca_cert_path = run->a.ca_cert_path;
        t.ca_cert_base64 = c->ca_cert_base64;
        if (cli_check_url(t.url, err, sizeof(err)) != 0 ||
            cli_check_token(t.token, err, sizeof(err)) != 0 ||
            cli_check_api_path(t.api_path, err, sizeof(err)) != 0) {
            return cli_fail(&run->out, CLI_ECONFIG, "context '%s' in %s: %s",
                            c->name, run->config_path, err);
        }
        rc = cli_check_ca_flag(run);
        rc = rc == CLI_OK ? cli_timeout(run, &t) : rc;
        if (rc == CLI_OK) {
            rc = cli_validate_server(run, &t, &info);
        }
        if (rc == CLI_OK && run->out.json) {
            cli_print_json(json_pack("{sssosb}", "context", c->name,
                                     "server-info", info, "connected", 1));
        } else if (rc == CLI_OK) {
            json_decref(info);
            cli_success(&run->out, "Context %s is valid: %s answers", c->name,
                        t.url);
        }
        return rc;
    }
    if (run->out.json) {
        cli_print_json(json_pack("{soss}", "current-context", context_json(c),
                                 "name", c->name));
        return CLI_OK;
    }
    name = cli_printable(c->name);
    url = cli_printable(c->url);
    printf("name: %s\nurl: %s\napi-path: %s\nservice-token: %s\n"
           "skip-ssl: %s\ncurrent: %s\n",
           name ? name : "", url ? url : "", api_of(c),
           c->service_token[0] ? "(set, hidden)" : "(none)",
           c->skip_ssl ? "true" : "false",
           strcmp(c->name, run->cfg.current) == 0 ? "yes" : "no");
    free(name);
    free(url);
    return CLI_OK;
}

/* sts context set | delete --name NAME */
static int ctx_set_delete(cli_run *run, int set)
{
    cli_config *cfg = &run->cfg;
    cli_context *c;
    char err[1024];

    if (!run->a.name) {
        return cli_fail(&run->out, CLI_EUSAGE,
                        "context %s needs --name NAME (see sts context list)",
                        set ? "set" : "delete");
    }
    c = cli_config_find(cfg, run->a.name);
    if (c == NULL) {
        return cli_fail(&run->out, CLI_ENOTFOUND,
                        "context '%s' not found in %s (see sts context list)",
                        run->a.name, run->config_path);
    }
    if (!set && strcmp(cfg->current, c->name) == 0) {
        /* As StackState's CLI: the current context is never left dangling. */
        return cli_fail(&run->out, CLI_EUSAGE,
                        "cannot delete the current context (%s): make "
                        "another one current first (sts context set --name "
                        "NAME)",
                        c->name);
    }
    if (set) {
        snprintf(cfg->current, sizeof(cfg->current), "%s", c->name);
    } else {
        cli_config_remove(cfg, c);
    }
    if (cli_config_save(run->config_path, cfg, err, sizeof(err)) != 0) {
        return cli_fail(&run->out, CLI_ECONFIG, "%s", err);
    }
    if (run->out.json) {
        /* StackState's keys, its space included. */
        cli_print_json(json_pack(
            "{ss}", set ? "current-context" : "deleted context", run->a.name));
    } else {
        cli_success(&run->out, "Context %s: %s", set ? "set" : "deleted",
                    run->a.name);
    }
    return CLI_OK;
}

/* sts context list|show|set|delete|validate|save */
int cli_cmd_context(cli_run *run)
{
    const char *sub = run->a.nwords > 1 ? run->a.words[1] : NULL;
    int rc;

    if (sub == NULL && !run->a.help &&
        (run->a.name || run->a.url || run->a.service_token)) {
        sub = "save"; /* sts context --name N --service-token T --url U */
    }
    if (run->a.help || sub == NULL) {
        fputs(help_context, stdout);
        return CLI_OK;
    }
    if (strcmp(sub, "save") == 0) {
        return ctx_save(run);
    }
    if (strcmp(sub, "list") == 0) {
        rc = cli_reject_extra(run, "context list", 0, 0);
    } else if (strcmp(sub, "show") == 0 || strcmp(sub, "validate") == 0 ||
               strcmp(sub, "set") == 0 || strcmp(sub, "delete") == 0) {
        rc = cli_reject_extra(run,
                              strcmp(sub, "show") == 0     ? "context show"
                              : strcmp(sub, "set") == 0    ? "context set"
                              : strcmp(sub, "delete") == 0 ? "context delete"
                                                           : "context validate",
                              0, CLI_F_NAME);
    } else {
        return cli_fail(&run->out, CLI_EUSAGE,
                        "unknown command 'context %.64s' (see sts context "
                        "--help)",
                        sub);
    }
    if (rc != CLI_OK ||
        (rc = strcmp(sub, "set") == 0 || strcmp(sub, "delete") == 0
                  ? cli_load_config_for_write(run)
                  : cli_load_config(run)) != CLI_OK) {
        return rc;
    }
    if (strcmp(sub, "list") == 0 && !run->cfg_exists) {
        /* As StackState's CLI: no file is an error, not an empty list. */
        return cli_fail(&run->out, CLI_ECONFIG,
                        "no config file %s: create it with sts context save "
                        "--name NAME --url URL --service-token-file FILE",
                        run->config_path);
    }
    if (strcmp(sub, "list") == 0) {
        return ctx_list(run);
    }
    if (strcmp(sub, "show") == 0 || strcmp(sub, "validate") == 0) {
        return ctx_show_validate(run, strcmp(sub, "validate") == 0);
    }
    return ctx_set_delete(run, strcmp(sub, "set") == 0);
}
