/*
 * main.c - the sts command: dispatch, contexts and service-token commands.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cli.h"
#include "http.h"
#include "output.h"
#include "version.h"
#include "token.h"

static const char help_root[] =
    "sts: manage service tokens of a StackState-compatible API (such as "
    "Apache httpd with mod_sts_token).\n"
    "\n"
    "Usage:\n"
    "  sts [command]\n"
    "\n"
    "Available Commands:\n"
    "  context       Manage connections to servers\n"
    "  service-token Manage service tokens\n"
    "  version       Print the version\n"
    "\n"
    "Flags (on any command):\n"
    "      --url URL              server URL (env STS_CLI_URL)\n"
    "      --service-token TOKEN  token to authenticate with (env "
    "STS_CLI_SERVICE_TOKEN)\n"
    "      --api-path PATH        API path on the server, default /api (env "
    "STS_CLI_API_PATH)\n"
    "      --context NAME         context from the config file (env "
    "STS_CLI_CONTEXT)\n"
    "      --config FILE          config file (default "
    "$XDG_CONFIG_HOME/stackstate-cli/config.yaml)\n"
    "  -o, --output text|json     output format\n"
    "      --no-color             no colour or emoji\n"
    "      --skip-ssl             do not verify the server's certificate\n"
    "      --ca-cert-path FILE    CA certificate to verify the server with\n"
    "  -h, --help                 help for a command\n"
    "\n"
    "Exit codes: 0 success, 1 configuration error, 2 bad usage, 3 the server "
    "refused the request, 4 cannot connect or authentication failed.\n"
    "\n"
    "Use \"sts [command] --help\" for more information about a command.\n";

static const char help_service_token[] =
    "Manage service tokens.\n"
    "\n"
    "Usage:\n"
    "  sts service-token [command]\n"
    "\n"
    "Available Commands:\n"
    "  create      Create a service token\n"
    "  delete      Delete a service token\n"
    "  list        List service tokens\n"
    "\n"
    "Use \"sts service-token [command] --help\" for more information about a "
    "command.\n";

static const char help_create[] =
    "Create a service token. Its secret is printed once and can never be "
    "seen again.\n"
    "\n"
    "Usage:\n"
    "  sts service-token create --name NAME --roles ROLE[,ROLE...] [flags]\n"
    "\n"
    "Flags:\n"
    "  -n, --name NAME               name of the token (required)\n"
    "      --roles ROLES             comma-separated roles; may be repeated "
    "(required)\n"
    "      --expiration yyyy-MM-dd   expires at 00:00 UTC of that day "
    "(optional)\n"
    "      --dedicatedSubject NAME   subject the token acts as (optional)\n"
    "      --description TEXT        description (optional)\n"
    "\n"
    "Scripts read the secret from -o json: .[\"service-token\"].token\n";

static const char help_list[] = "List service tokens.\n"
                                "\n"
                                "Usage:\n"
                                "  sts service-token list [flags]\n";

static const char help_delete[] = "Delete a service token.\n"
                                  "\n"
                                  "Usage:\n"
                                  "  sts service-token delete ID [flags]\n"
                                  "  sts service-token delete --id ID\n"
                                  "\n"
                                  "Flags:\n"
                                  "  -i, --id ID   the token's ID\n";

static const char help_context[] =
    "Manage connections to servers (contexts), shared with StackState's CLI.\n"
    "\n"
    "Usage:\n"
    "  sts context [command]\n"
    "\n"
    "Available Commands:\n"
    "  save        Save a context: --name N --url URL --service-token T "
    "[--api-path /api] [--skip-validate]\n"
    "  list        List contexts\n"
    "  show        Show a context (the current one without --name)\n"
    "  set         Make a context current: --name N\n"
    "  delete      Delete a context: --name N\n"
    "  validate    Check the connection of a context (the current one "
    "without --name)\n"
    "\n"
    "\"sts context --name N --url URL --service-token T\" is the same as "
    "\"sts context save\".\n";

/* Everything one run needs. */
typedef struct {
    cli_args a;
    cli_out out;
    char config_path[4096];
} cli_run;

/* Reads a flag, else an environment variable, else NULL. */
static const char *flag_or_env(const char *flag, const char *env)
{
    const char *v = getenv(env);

    return flag ? flag : (v && *v ? v : NULL);
}

/* Loads the config file; prints the error and returns CLI_ECONFIG. */
static int load_config(cli_run *run, cli_config *cfg, int *exists)
{
    char err[1024];

    if (cli_config_load(run->config_path, cfg, exists, err, sizeof(err)) != 0) {
        return cli_fail(&run->out, CLI_ECONFIG, "%s", err);
    }
    return CLI_OK;
}

/* Works out where to connect: flags, then STS_CLI_*, then the context. */
static int resolve_target(cli_run *run, cli_config *cfg, cli_target *t)
{
    const char *url = flag_or_env(run->a.url, "STS_CLI_URL");
    const char *tok =
        flag_or_env(run->a.service_token, "STS_CLI_SERVICE_TOKEN");
    const char *api = flag_or_env(run->a.api_path, "STS_CLI_API_PATH");
    const char *name = flag_or_env(run->a.context, "STS_CLI_CONTEXT");
    cli_context *c = NULL;
    int exists = 0, rc;

    if (!url || !tok || name) {
        rc = load_config(run, cfg, &exists);
        if (rc != CLI_OK) {
            return rc;
        }
        if (!name) {
            name = cfg->current[0] ? cfg->current : NULL;
        }
        if (name) {
            c = cli_config_find(cfg, name);
            if (c == NULL) {
                return cli_fail(&run->out, CLI_ECONFIG,
                                "context '%s' not found in %s", name,
                                run->config_path);
            }
        }
    }
    url = url ? url : (c ? c->url : NULL);
    tok = tok ? tok : (c ? c->service_token : NULL);
    api =
        api ? api : (c && c->api_path[0] ? c->api_path : CLI_DEFAULT_API_PATH);
    if (!url || !*url || !tok || !*tok) {
        return cli_fail(
            &run->out, CLI_ECONFIG,
            "no server configured: run 'sts context save --name NAME --url "
            "URL --service-token TOKEN', or set STS_CLI_URL and "
            "STS_CLI_SERVICE_TOKEN (config file: %s)",
            run->config_path);
    }
    t->url = url;
    t->token = tok;
    t->api_path = api;
    t->skip_ssl = run->a.skip_ssl;
    t->ca_cert_path = run->a.ca_cert_path;
    return CLI_OK;
}

/* Collects the server's error messages from an error body. */
static void server_messages(const cli_response *r, char *out, size_t outlen)
{
    json_t *j = json_loads(r->body, 0, NULL), *errs, *e;
    size_t i, used = 0;

    out[0] = '\0';
    if (j && (errs = json_object_get(j, "errors")) && json_is_array(errs)) {
        json_array_foreach(errs, i, e)
        {
            const char *m = json_string_value(json_object_get(e, "message"));

            if (m && used < outlen) {
                used += (size_t)snprintf(out + used, outlen - used, "%s%s",
                                         used ? "; " : "", m);
            }
        }
    } else if (j && json_is_string(json_object_get(j, "message"))) {
        snprintf(out, outlen, "%s",
                 json_string_value(json_object_get(j, "message")));
    }
    json_decref(j);
}

/* Sends a request and maps failures to exit codes. *ok is 1 on 2xx. */
static int request(cli_run *run, const cli_target *t, const char *method,
                   const char *path, const char *body, cli_response *resp)
{
    char url[8192], msgs[1024];

    cli_http_url(t, path, url, sizeof(url));
    if (cli_http(t, method, path, body, resp) != 0) {
        return cli_fail(&run->out, CLI_ECONNECT, "cannot connect to %s: %s",
                        url, resp->error);
    }
    if (resp->status >= 200 && resp->status < 300) {
        return CLI_OK;
    }
    server_messages(resp, msgs, sizeof(msgs));
    if (resp->status == 401) {
        return cli_fail(&run->out, CLI_ECONNECT,
                        "authentication failed (401) at %s: the service "
                        "token was refused%s%s",
                        url, resp->auth_error[0] ? ": " : "", resp->auth_error);
    }
    return cli_fail(&run->out, CLI_EREFUSED,
                    "the server refused %s %s: HTTP %ld%s%s", method, url,
                    resp->status, msgs[0] ? ": " : "", msgs);
}

/* sts service-token create */
static int cmd_create(cli_run *run)
{
    char roles[CLI_MAX_ROLES][129], err[512];
    cli_config cfg;
    cli_target t;
    cli_response resp;
    json_t *body, *arr, *created;
    int64_t exp = -1;
    char *text;
    int n, i, rc;

    if (!run->a.name || !*run->a.name) {
        return cli_fail(&run->out, CLI_EUSAGE,
                        "--name is required (see sts service-token create "
                        "--help)");
    }
    if (run->a.nroles == 0) {
        return cli_fail(&run->out, CLI_EUSAGE,
                        "--roles is required (see sts service-token create "
                        "--help)");
    }
    n = cli_collect_roles(&run->a, roles, CLI_MAX_ROLES, err, sizeof(err));
    if (n < 0) {
        return cli_fail(&run->out, CLI_EUSAGE, "%s", err);
    }
    if (run->a.expiration && cli_parse_date(run->a.expiration, &exp) != 0) {
        return cli_fail(&run->out, CLI_EUSAGE,
                        "--expiration '%s' is not a date: use yyyy-MM-dd, "
                        "e.g. 2027-01-15",
                        run->a.expiration);
    }
    if (run->a.npositional > 0) {
        return cli_fail(&run->out, CLI_EUSAGE, "unexpected argument '%s'",
                        run->a.positional[0]);
    }
    rc = resolve_target(run, &cfg, &t);
    if (rc != CLI_OK) {
        return rc;
    }
    body = json_object();
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, json_string(roles[i]));
    }
    json_object_set_new(body, "name", json_string(run->a.name));
    json_object_set_new(body, "roles", arr);
    if (exp >= 0) {
        json_object_set_new(body, "expiryDate", json_integer(exp));
    }
    if (run->a.dedicated_subject) {
        json_object_set_new(body, "dedicatedSubject",
                            json_string(run->a.dedicated_subject));
    }
    if (run->a.description) {
        json_object_set_new(body, "description",
                            json_string(run->a.description));
    }
    if (!json_is_string(json_object_get(body, "name"))) {
        json_decref(body);
        return cli_fail(&run->out, CLI_EUSAGE, "--name must be valid UTF-8");
    }
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    rc = request(run, &t, "POST", "/security/tokens", text, &resp);
    free(text);
    if (rc == CLI_OK) {
        created = json_loads(resp.body, 0, NULL);
        if (!json_is_string(json_object_get(created, "token"))) {
            rc = cli_fail(&run->out, CLI_EREFUSED,
                          "the server answered without a token");
        } else if (run->out.json) {
            cli_print_json(json_pack("{sO}", "service-token", created));
        } else {
            cli_success(&run->out, "Service token created: %s",
                        json_string_value(json_object_get(created, "token")));
        }
        json_decref(created);
    }
    free(resp.body);
    return rc;
}

/* Orders tokens by name, then id. */
static int by_name_then_id(const void *x, const void *y)
{
    json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
    const char *na = json_string_value(json_object_get(a, "name"));
    const char *nb = json_string_value(json_object_get(b, "name"));
    int c = strcmp(na ? na : "", nb ? nb : "");
    json_int_t ia = json_integer_value(json_object_get(a, "id"));
    json_int_t ib = json_integer_value(json_object_get(b, "id"));

    return c ? c : (ia > ib) - (ia < ib);
}

/* sts service-token list */
static int cmd_list(cli_run *run)
{
    cli_config cfg;
    cli_target t;
    cli_response resp;
    json_t *list, **items;
    const char *headers[] = {"ID", "NAME", "EXPIRATION", "ROLES"};
    const char **cells;
    size_t i, n;
    int rc;

    if (run->a.npositional > 0) {
        return cli_fail(&run->out, CLI_EUSAGE, "unexpected argument '%s'",
                        run->a.positional[0]);
    }
    rc = resolve_target(run, &cfg, &t);
    if (rc != CLI_OK) {
        return rc;
    }
    rc = request(run, &t, "GET", "/security/tokens", NULL, &resp);
    if (rc != CLI_OK) {
        free(resp.body);
        return rc;
    }
    list = json_loads(resp.body, 0, NULL);
    free(resp.body);
    if (!json_is_array(list)) {
        json_decref(list);
        return cli_fail(&run->out, CLI_EREFUSED,
                        "the server's answer is not a list of tokens");
    }
    n = json_array_size(list);
    items = calloc(n + 1, sizeof(*items));
    cells = calloc(n * 4 + 1, sizeof(*cells));
    for (i = 0; i < n; i++) {
        items[i] = json_array_get(list, i);
    }
    qsort(items, n, sizeof(*items), by_name_then_id);
    if (run->out.json) {
        json_t *sorted = json_array();

        for (i = 0; i < n; i++) {
            json_array_append(sorted, items[i]);
        }
        cli_print_json(json_pack("{so}", "service-tokens", sorted));
    } else if (n == 0) {
        printf("No service tokens found.\n");
    } else {
        char *table;

        for (i = 0; i < n; i++) {
            json_t *e = json_object_get(items[i], "expiration"), *r, *roles;
            char date[11] = "", idbuf[32], *buf;
            size_t k, len = 3;

            if (json_is_integer(e)) {
                cli_format_date(json_integer_value(e), date);
            }
            roles = json_object_get(items[i], "roles");
            json_array_foreach(roles, k, r)
            {
                len +=
                    strlen(json_string_value(r) ? json_string_value(r) : "") +
                    1;
            }
            buf = malloc(len);
            strcpy(buf, "[");
            json_array_foreach(roles, k, r)
            {
                if (json_string_value(r)) {
                    strcat(buf, k ? " " : "");
                    strcat(buf, json_string_value(r));
                }
            }
            strcat(buf, "]");
            snprintf(
                idbuf, sizeof(idbuf), "%lld",
                (long long)json_integer_value(json_object_get(items[i], "id")));
            cells[i * 4] = strdup(idbuf);
            cells[i * 4 + 1] =
                json_string_value(json_object_get(items[i], "name"))
                    ? json_string_value(json_object_get(items[i], "name"))
                    : "";
            cells[i * 4 + 2] = strdup(date);
            cells[i * 4 + 3] = buf;
        }
        table = cli_format_table(headers, 4, cells, (int)n);
        fputs(table ? table : "", stdout);
        free(table);
        for (i = 0; i < n; i++) {
            free((char *)cells[i * 4]);
            free((char *)cells[i * 4 + 2]);
            free((char *)cells[i * 4 + 3]);
        }
    }
    free(cells);
    free(items);
    json_decref(list);
    return CLI_OK;
}

/* sts service-token delete ID | --id ID */
static int cmd_delete(cli_run *run)
{
    const char *id = run->a.id;
    cli_config cfg;
    cli_target t;
    cli_response resp;
    char path[64];
    int64_t v;
    int rc;

    if (run->a.npositional > 1 || (id && run->a.npositional == 1)) {
        return cli_fail(&run->out, CLI_EUSAGE,
                        "give the token ID once: sts service-token delete ID");
    }
    id = id ? id : (run->a.npositional ? run->a.positional[0] : NULL);
    if (id == NULL) {
        return cli_fail(&run->out, CLI_EUSAGE,
                        "the token ID is required: sts service-token delete "
                        "ID (see sts service-token list)");
    }
    if (!sts_parse_token_id(id, strlen(id), &v)) {
        return cli_fail(&run->out, CLI_EUSAGE,
                        "invalid token ID '%s': a number from 1 to "
                        "9007199254740991",
                        id);
    }
    rc = resolve_target(run, &cfg, &t);
    if (rc != CLI_OK) {
        return rc;
    }
    snprintf(path, sizeof(path), "/security/tokens/%lld", (long long)v);
    rc = request(run, &t, "DELETE", path, NULL, &resp);
    free(resp.body);
    if (rc != CLI_OK) {
        return rc;
    }
    if (run->out.json) {
        cli_print_json(
            json_pack("{sI}", "deleted-service-token", (json_int_t)v));
    } else {
        cli_success(&run->out, "Service token deleted: %lld", (long long)v);
    }
    return CLI_OK;
}

/* GET server/info: 0 when the server answers as a StackState API. */
static int validate(cli_run *run, const cli_target *t)
{
    cli_response resp;
    json_t *info;
    int rc = request(run, t, "GET", "/server/info", NULL, &resp);

    if (rc == CLI_OK) {
        info = json_loads(resp.body, 0, NULL);
        if (!json_is_object(json_object_get(info, "version"))) {
            char url[8192];

            cli_http_url(t, "/server/info", url, sizeof(url));
            rc = cli_fail(&run->out, CLI_ECONNECT,
                          "%s did not answer with server info: is "
                          "--api-path right?",
                          url);
        }
        json_decref(info);
    }
    free(resp.body);
    return rc;
}

/* The context named by --name, else the current one. */
static cli_context *pick_context(cli_run *run, cli_config *cfg, int *rc)
{
    const char *name = run->a.name
                           ? run->a.name
                           : flag_or_env(run->a.context, "STS_CLI_CONTEXT");
    cli_context *c;

    name = name ? name : (cfg->current[0] ? cfg->current : NULL);
    if (name == NULL) {
        *rc = cli_fail(&run->out, CLI_ECONFIG,
                       "no current context: give --name or run sts context "
                       "save");
        return NULL;
    }
    c = cli_config_find(cfg, name);
    if (c == NULL) {
        *rc = cli_fail(&run->out, CLI_ECONFIG, "context '%s' not found in %s",
                       name, run->config_path);
    }
    return c;
}

/* sts context save (and the older "sts context --name ..."). */
static int ctx_save(cli_run *run, cli_config *cfg)
{
    const char *api = run->a.api_path ? run->a.api_path : CLI_DEFAULT_API_PATH;
    cli_context *c;
    cli_target t;
    char err[1024];
    int rc;

    if (!run->a.name || !run->a.url || !run->a.service_token || !*run->a.name ||
        !*run->a.url || !*run->a.service_token) {
        return cli_fail(&run->out, CLI_EUSAGE,
                        "context save needs --name, --url and "
                        "--service-token");
    }
    if (strlen(run->a.name) >= sizeof(c->name) ||
        strlen(run->a.url) >= sizeof(c->url) ||
        strlen(run->a.service_token) >= sizeof(c->service_token) ||
        strlen(api) >= sizeof(c->api_path)) {
        return cli_fail(&run->out, CLI_EUSAGE, "a value is too long");
    }
    if (!run->a.skip_validate) {
        t.url = run->a.url;
        t.token = run->a.service_token;
        t.api_path = api;
        t.skip_ssl = run->a.skip_ssl;
        t.ca_cert_path = run->a.ca_cert_path;
        rc = validate(run, &t);
        if (rc != CLI_OK) {
            return rc;
        }
    }
    c = cli_config_find(cfg, run->a.name);
    if (c == NULL) {
        if (cfg->ncontexts >= CLI_MAX_CONTEXTS) {
            return cli_fail(&run->out, CLI_ECONFIG, "too many contexts");
        }
        c = &cfg->contexts[cfg->ncontexts++];
    }
    snprintf(c->name, sizeof(c->name), "%s", run->a.name);
    snprintf(c->url, sizeof(c->url), "%s", run->a.url);
    snprintf(c->service_token, sizeof(c->service_token), "%s",
             run->a.service_token);
    snprintf(c->api_path, sizeof(c->api_path), "%s", api);
    snprintf(cfg->current, sizeof(cfg->current), "%s", run->a.name);
    if (cli_config_save(run->config_path, cfg, err, sizeof(err)) != 0) {
        return cli_fail(&run->out, CLI_ECONFIG, "%s", err);
    }
    if (run->out.json) {
        cli_print_json(json_pack("{s{ssssss}}", "context", "name", c->name,
                                 "url", c->url, "api-path", c->api_path));
    } else {
        cli_success(&run->out, "Context saved: %s (%s%s)", c->name, c->url,
                    run->a.skip_validate ? ", not validated" : ", validated");
    }
    return CLI_OK;
}

/* sts context list|show|set|delete|validate|save */
static int cmd_context(cli_run *run)
{
    const char *sub = run->a.nwords > 1 ? run->a.words[1] : NULL;
    cli_config cfg;
    cli_context *c;
    char err[1024];
    int exists = 0, rc, i;

    if (sub == NULL && run->a.name) {
        sub = "save"; /* sts context --name N --service-token T --url U */
    }
    if (sub == NULL || run->a.help) {
        fputs(help_context, stdout);
        return sub == NULL && !run->a.help ? CLI_EUSAGE : CLI_OK;
    }
    rc = load_config(run, &cfg, &exists);
    if (rc != CLI_OK) {
        return rc;
    }
    if (strcmp(sub, "save") == 0) {
        return ctx_save(run, &cfg);
    }
    if (strcmp(sub, "list") == 0) {
        if (run->out.json) {
            json_t *a = json_array();

            for (i = 0; i < cfg.ncontexts; i++) {
                c = &cfg.contexts[i];
                json_array_append_new(
                    a, json_pack("{sssssssb}", "name", c->name, "url", c->url,
                                 "api-path",
                                 c->api_path[0] ? c->api_path
                                                : CLI_DEFAULT_API_PATH,
                                 "current", strcmp(c->name, cfg.current) == 0));
            }
            cli_print_json(json_pack("{so}", "contexts", a));
        } else if (cfg.ncontexts == 0) {
            printf("No contexts found.\n");
        } else {
            const char *headers[] = {"CURRENT", "NAME", "URL", "API-PATH"};
            const char *cells[CLI_MAX_CONTEXTS * 4];
            char *table;

            for (i = 0; i < cfg.ncontexts; i++) {
                c = &cfg.contexts[i];
                cells[i * 4] = strcmp(c->name, cfg.current) == 0 ? "*" : "";
                cells[i * 4 + 1] = c->name;
                cells[i * 4 + 2] = c->url;
                cells[i * 4 + 3] =
                    c->api_path[0] ? c->api_path : CLI_DEFAULT_API_PATH;
            }
            table = cli_format_table(headers, 4, cells, cfg.ncontexts);
            fputs(table ? table : "", stdout);
            free(table);
        }
        return CLI_OK;
    }
    if (strcmp(sub, "show") == 0 || strcmp(sub, "validate") == 0) {
        c = pick_context(run, &cfg, &rc);
        if (c == NULL) {
            return rc;
        }
        if (strcmp(sub, "validate") == 0) {
            cli_target t = {c->url, c->service_token,
                            c->api_path[0] ? c->api_path : CLI_DEFAULT_API_PATH,
                            run->a.ca_cert_path, run->a.skip_ssl};

            rc = validate(run, &t);
            if (rc == CLI_OK && !run->out.json) {
                cli_success(&run->out, "Context %s is valid: %s answers",
                            c->name, c->url);
            } else if (rc == CLI_OK) {
                cli_print_json(json_pack("{ssss}", "validated-context", c->name,
                                         "url", c->url));
            }
            return rc;
        }
        if (run->out.json) {
            cli_print_json(json_pack(
                "{s{sssssssb}}", "context", "name", c->name, "url", c->url,
                "api-path", c->api_path[0] ? c->api_path : CLI_DEFAULT_API_PATH,
                "current", strcmp(c->name, cfg.current) == 0));
        } else {
            printf("name: %s\nurl: %s\napi-path: %s\nservice-token: "
                   "(hidden)\ncurrent: %s\n",
                   c->name, c->url,
                   c->api_path[0] ? c->api_path : CLI_DEFAULT_API_PATH,
                   strcmp(c->name, cfg.current) == 0 ? "yes" : "no");
        }
        return CLI_OK;
    }
    if (strcmp(sub, "set") == 0 || strcmp(sub, "delete") == 0) {
        if (!run->a.name) {
            return cli_fail(&run->out, CLI_EUSAGE, "context %s needs --name",
                            sub);
        }
        c = cli_config_find(&cfg, run->a.name);
        if (c == NULL) {
            return cli_fail(&run->out, CLI_ECONFIG,
                            "context '%s' not found in %s", run->a.name,
                            run->config_path);
        }
        if (strcmp(sub, "set") == 0) {
            snprintf(cfg.current, sizeof(cfg.current), "%s", c->name);
        } else {
            if (strcmp(cfg.current, c->name) == 0) {
                cfg.current[0] = '\0';
            }
            memmove(c, c + 1,
                    (size_t)(cfg.contexts + cfg.ncontexts - (c + 1)) *
                        sizeof(*c));
            cfg.ncontexts--;
        }
        if (cli_config_save(run->config_path, &cfg, err, sizeof(err)) != 0) {
            return cli_fail(&run->out, CLI_ECONFIG, "%s", err);
        }
        if (run->out.json) {
            cli_print_json(json_pack(
                "{ss}",
                strcmp(sub, "set") == 0 ? "current-context" : "deleted-context",
                run->a.name));
        } else {
            cli_success(&run->out, "Context %s: %s",
                        strcmp(sub, "set") == 0 ? "set" : "deleted",
                        run->a.name);
        }
        return CLI_OK;
    }
    return cli_fail(&run->out, CLI_EUSAGE,
                    "unknown command 'context %s' (see sts context --help)",
                    sub);
}

/* sts service-token ... */
static int cmd_service_token(cli_run *run)
{
    const char *sub = run->a.nwords > 1 ? run->a.words[1] : NULL;

    if (sub == NULL) {
        fputs(help_service_token, stdout);
        return CLI_OK;
    }
    if (strcmp(sub, "create") == 0) {
        return run->a.help ? (fputs(help_create, stdout), CLI_OK)
                           : cmd_create(run);
    }
    if (strcmp(sub, "list") == 0) {
        return run->a.help ? (fputs(help_list, stdout), CLI_OK) : cmd_list(run);
    }
    if (strcmp(sub, "delete") == 0) {
        return run->a.help ? (fputs(help_delete, stdout), CLI_OK)
                           : cmd_delete(run);
    }
    return cli_fail(&run->out, CLI_EUSAGE,
                    "unknown command 'service-token %s' (see sts "
                    "service-token --help)",
                    sub);
}

int main(int argc, char **argv)
{
    static cli_run run;
    char err[512];
    int rc;

    if (cli_parse_args(argc - 1, argv + 1, &run.a, err, sizeof(err)) != 0) {
        cli_out_init(&run.out, 0, 1);
        for (rc = 1; rc < argc; rc++) {
            if (strcmp(argv[rc], "json") == 0 && rc > 1 &&
                (strcmp(argv[rc - 1], "-o") == 0 ||
                 strcmp(argv[rc - 1], "--output") == 0)) {
                run.out.json = 1;
            }
        }
        return cli_fail(&run.out, CLI_EUSAGE, "%s (see sts --help)", err);
    }
    cli_out_init(&run.out, run.a.output && strcmp(run.a.output, "json") == 0,
                 run.a.no_color);
    if (run.a.config) {
        snprintf(run.config_path, sizeof(run.config_path), "%s", run.a.config);
    } else if (cli_config_path(run.config_path, sizeof(run.config_path)) != 0) {
        return cli_fail(&run.out, CLI_ECONFIG,
                        "cannot find the config directory: set HOME or "
                        "XDG_CONFIG_HOME");
    }
    if (run.a.nwords == 0) {
        fputs(help_root, stdout);
        return run.a.help ? CLI_OK : CLI_EUSAGE;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (strcmp(run.a.words[0], "service-token") == 0) {
        rc = run.a.help && run.a.nwords == 1
                 ? (fputs(help_service_token, stdout), CLI_OK)
                 : cmd_service_token(&run);
    } else if (strcmp(run.a.words[0], "context") == 0) {
        rc = cmd_context(&run);
    } else if (strcmp(run.a.words[0], "version") == 0) {
        if (run.out.json) {
            cli_print_json(json_pack("{ss}", "version", STS_VERSION));
        } else {
            printf("sts %s\n", STS_VERSION);
        }
        rc = CLI_OK;
    } else if (strcmp(run.a.words[0], "help") == 0) {
        fputs(help_root, stdout);
        rc = CLI_OK;
    } else {
        rc = cli_fail(&run.out, CLI_EUSAGE,
                      "unknown command '%s' (see sts "
                      "--help)",
                      run.a.words[0]);
    }
    curl_global_cleanup();
    return rc;
}
