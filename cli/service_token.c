/*
 * service_token.c - sts service-token create | list | delete | rotate, with
 * StackState's output (text, table, -o json).
 */
#include "service_token.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_json.h"
#include "names.h"
#include "run.h"
#include "token.h"

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
    "  rotate      Issue a new secret for a service token\n"
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
    "Scripts read the secret from -o json: .[\"service-token\"].token\n"
    "Global flags: see sts --help.\n";

static const char help_list[] =
    "List service tokens, sorted by name: ID, name, expiration (UTC), "
    "roles,\n"
    "dedicated subject, and when (UTC, to within about two minutes) and "
    "from\n"
    "which client address each was last used (\"never\": no use recorded).\n"
    "\n"
    "Usage:\n"
    "  sts service-token list [flags]\n"
    "\n"
    "Global flags: see sts --help.\n";

static const char help_delete[] =
    "Delete a service token. It stops authenticating at once.\n"
    "\n"
    "Usage:\n"
    "  sts service-token delete --id ID [flags]\n"
    "  sts service-token delete ID [flags]\n"
    "\n"
    "Flags:\n"
    "  -i, --id ID   the token's ID (see sts service-token list)\n"
    "\n"
    "Global flags: see sts --help.\n";

static const char help_rotate[] =
    "Issue a new secret for a service token: same ID, name and roles. The\n"
    "new secret is printed once and can never be seen again. The old secret\n"
    "keeps working until the new one is first used or the grace period\n"
    "ends, whichever comes first.\n"
    "\n"
    "Usage:\n"
    "  sts service-token rotate --id ID [flags]\n"
    "  sts service-token rotate ID [flags]\n"
    "\n"
    "Flags:\n"
    "  -i, --id ID                   the token's ID (see sts service-token "
    "list)\n"
    "      --grace-period SECONDS    how long the old secret stays valid at "
    "most\n"
    "                                (0: not at all; default and maximum "
    "set by\n"
    "                                the server)\n"
    "      --expiration yyyy-MM-dd   expires at 00:00 UTC of that day "
    "(default:\n"
    "                                unchanged)\n"
    "\n"
    "Scripts read the secret from -o json: .[\"service-token\"].token\n"
    "Global flags: see sts --help.\n";

/* Builds the rotation request body from the command line. */
int cli_rotate_body(const cli_args *a, char **out, char *err, size_t errlen)
{
    json_t *body;
    int64_t exp = -1;
    long long grace = -1;

    *out = NULL;
    if (a->grace_period) {
        char *end;

        errno = 0;
        grace = strtoll(a->grace_period, &end, 10);
        if (errno != 0 || end == a->grace_period || *end != '\0' ||
            a->grace_period[0] == '-' || a->grace_period[0] == '+' ||
            grace < 0 || grace > 999999999) {
            snprintf(err, errlen,
                     "--grace-period '%.64s' is not a number of seconds "
                     "(0 or more, e.g. 3600)",
                     a->grace_period);
            return CLI_EUSAGE;
        }
    }
    if (a->expiration && cli_parse_date(a->expiration, &exp) != 0) {
        snprintf(err, errlen,
                 "--expiration '%.64s' is not a date: use yyyy-MM-dd, e.g. "
                 "2027-01-15",
                 a->expiration);
        return CLI_EUSAGE;
    }
    if (grace < 0 && exp < 0) {
        *out = strdup("");
    } else {
        body = json_object();
        if (grace >= 0) {
            json_object_set_new(body, "gracePeriodSeconds",
                                json_integer((json_int_t)grace));
        }
        if (exp >= 0) {
            json_object_set_new(body, "expiryDate", json_integer(exp));
        }
        *out = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(body);
    }
    if (*out == NULL) {
        snprintf(err, errlen, "out of memory");
        return CLI_EUSAGE;
    }
    return CLI_OK;
}

/* Builds the NewServiceTokenRequest body from the command line. */
int cli_create_body(const cli_args *a, char **out, char *err, size_t errlen)
{
    char roles[STS_ROLES_MAX][STS_ROLE_MAX_LEN + 1];
    json_t *body, *arr;
    int64_t exp = -1;
    int n, i;

    *out = NULL;
    if (!a->name) {
        snprintf(err, errlen, "--name is required");
        return CLI_EUSAGE;
    }
    if (sts_token_name_check("--name", a->name, err, errlen) != 0) {
        return CLI_EUSAGE;
    }
    if (a->nroles == 0) {
        snprintf(err, errlen,
                 "--roles is required, e.g. --roles stackstate-admin");
        return CLI_EUSAGE;
    }
    n = cli_collect_roles(a, roles, STS_ROLES_MAX, err, errlen);
    if (n < 0) {
        return CLI_EUSAGE;
    }
    if (a->expiration && cli_parse_date(a->expiration, &exp) != 0) {
        snprintf(err, errlen,
                 "--expiration '%.64s' is not a date: use yyyy-MM-dd, e.g. "
                 "2027-01-15",
                 a->expiration);
        return CLI_EUSAGE;
    }
    if (a->dedicated_subject &&
        cli_check_text("--dedicatedSubject", a->dedicated_subject,
                       STS_API_MAX_SUBJECT, 0, err, errlen) != 0) {
        return CLI_EUSAGE;
    }
    if (a->description &&
        cli_check_text("--description", a->description, STS_API_MAX_DESCRIPTION,
                       1, err, errlen) != 0) {
        return CLI_EUSAGE;
    }
    body = json_object();
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, json_string(roles[i]));
    }
    json_object_set_new(body, "name", json_string(a->name));
    json_object_set_new(body, "roles", arr);
    if (exp >= 0) {
        json_object_set_new(body, "expiryDate", json_integer(exp));
    }
    if (a->dedicated_subject) {
        json_object_set_new(body, "dedicatedSubject",
                            json_string(a->dedicated_subject));
    }
    if (a->description) {
        json_object_set_new(body, "description", json_string(a->description));
    }
    *out = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (*out == NULL) {
        snprintf(err, errlen, "out of memory");
        return CLI_EUSAGE;
    }
    return CLI_OK;
}

/* Orders tokens by name (bytewise), then id. */
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

/* A new array with list's objects sorted by name then id, or NULL when
 * list is not an array of objects. */
json_t *cli_sort_tokens(json_t *list)
{
    size_t i, n;
    json_t **items, *out;

    if (!json_is_array(list)) {
        return NULL;
    }
    n = json_array_size(list);
    items = calloc(n + 1, sizeof(*items));
    if (items == NULL) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        items[i] = json_array_get(list, i);
        if (!json_is_object(items[i])) {
            free(items);
            return NULL;
        }
    }
    qsort(items, n, sizeof(*items), by_name_then_id);
    out = json_array();
    for (i = 0; out && i < n; i++) {
        json_array_append(out, items[i]);
    }
    free(items);
    return out;
}

/* "[a b c]" as Go prints a []string, terminal-safe; malloc'd. */
static char *roles_cell(json_t *roles)
{
    size_t k, len = 3;
    json_t *r;
    char *buf, *safe;

    json_array_foreach(roles, k, r)
    {
        len += strlen(json_string_value(r) ? json_string_value(r) : "") + 1;
    }
    buf = malloc(len);
    if (buf == NULL) {
        return NULL;
    }
    {
        size_t used = 1;

        buf[0] = '[';
        json_array_foreach(roles, k, r)
        {
            const char *v = json_string_value(r);

            if (v) {
                size_t vl = strlen(v);

                if (used > 1) {
                    buf[used++] = ' ';
                }
                memcpy(buf + used, v, vl);
                used += vl;
            }
        }
        buf[used++] = ']';
        buf[used] = '\0';
    }
    safe = cli_printable(buf);
    free(buf);
    return safe;
}

/* The LAST USED cell: "yyyy-MM-dd HH:mm" (UTC) and " from ADDRESS" when
 * the server said it, or "never" (no lastUsedTimestamp); malloc'd. */
static char *last_used_cell(json_t *t)
{
    json_t *at = json_object_get(t, "lastUsedTimestamp");
    const char *from = json_string_value(json_object_get(t, "lastUsedFrom"));
    char when[32] = "", buf[160];
    struct tm tm;
    time_t secs;

    if (!json_is_integer(at) || json_integer_value(at) < 0) {
        return strdup("never");
    }
    secs = (time_t)(json_integer_value(at) / 1000);
    if (gmtime_r(&secs, &tm) != NULL) {
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
    }
    snprintf(buf, sizeof(buf), "%s%s%.64s", when, from && *from ? " from " : "",
             from && *from ? from : "");
    return cli_printable(buf);
}

/* The list as text: StackState's table, or "No service tokens found.". */
char *cli_tokens_table(json_t *sorted)
{
    /* StackState's columns ("-" for no dedicated subject, as it shows), then
     * ours: when and from where the token was last used. */
    const char *headers[] = {
        "ID", "NAME", "EXPIRATION", "ROLES", "DEDICATED_SUBJECT", "LAST USED"};
    const size_t nc = sizeof(headers) / sizeof(headers[0]);
    size_t i, k, n = json_array_size(sorted);
    char **cells;
    char *table;
    int ok = 1;

    if (n == 0) {
        return strdup("No service tokens found.\n");
    }
    cells = calloc(n * nc, sizeof(*cells));
    if (cells == NULL) {
        return NULL;
    }
    for (i = 0; i < n && ok; i++) {
        json_t *t = json_array_get(sorted, i);
        json_t *e = json_object_get(t, "expiration");
        const char *name = json_string_value(json_object_get(t, "name"));
        const char *subject =
            json_string_value(json_object_get(t, "dedicatedSubject"));
        char date[11] = "", idbuf[32];
        char **row = cells + i * nc;

        if (json_is_integer(e)) {
            cli_format_date(json_integer_value(e), date);
        }
        snprintf(idbuf, sizeof(idbuf), "%lld",
                 (long long)json_integer_value(json_object_get(t, "id")));
        row[0] = strdup(idbuf);
        row[1] = cli_printable(name ? name : "");
        row[2] = strdup(date);
        row[3] = roles_cell(json_object_get(t, "roles"));
        row[4] = cli_printable(subject && *subject ? subject : "-");
        row[5] = last_used_cell(t);
        for (k = 0; k < nc; k++) {
            ok = ok && row[k] != NULL;
        }
    }
    table = ok ? cli_format_table(headers, (int)nc, (const char *const *)cells,
                                  (int)n)
               : NULL;
    for (i = 0; i < n * nc; i++) {
        free(cells[i]);
    }
    free(cells);
    return table;
}

/* Prints the secret of a create or rotate answer (ServiceTokenCreatedResponse)
 * as StackState's CLI does ("Service token <verb>: ..." or -o json).
 * CLI_ECONFIG when standard output could not take it (errno set). */
static int print_secret(cli_run *run, const cli_response *resp,
                        const char *verb)
{
    json_t *created = json_loads(resp->body, 0, NULL);
    int rc = CLI_OK;

    if (!json_is_string(json_object_get(created, "token"))) {
        rc = cli_fail(&run->out, CLI_EREFUSED,
                      "the server answered 200 without a token: is this "
                      "a StackState-compatible token API?");
    } else if (run->out.json) {
        cli_print_json(json_pack("{sO}", "service-token", created));
    } else {
        cli_success(&run->out, "Service token %s: %s", verb,
                    json_string_value(json_object_get(created, "token")));
    }
    json_decref(created);
    if (rc == CLI_OK && (fflush(stdout) != 0 || ferror(stdout))) {
        return CLI_ECONFIG;
    }
    return rc;
}

/* Sends a POST whose answer carries a secret (create, rotate) and prints
 * it; text, the body, is freed, and the answer wiped. CLI_ECONFIG when the
 * secret could not be written out (the caller says what to do then). */
static int post_for_secret(cli_run *run, const char *path, char *text,
                           const char *what)
{
    cli_target t;
    cli_response resp;
    int rc;

    memset(&resp, 0, sizeof(resp));
    rc = cli_resolve_target(run, &t);
    rc = rc == CLI_OK ? cli_connect(run, &t) : rc;
    if (rc == CLI_OK) {
        rc = cli_request(run, &t, "POST", path, text, &resp);
    }
    free(text);
    if (rc == CLI_OK) {
        rc = print_secret(run, &resp, what);
    }
    if (resp.body) {
        memset(resp.body, 0, resp.len); /* held the secret */
    }
    free(resp.body);
    return rc;
}

/* sts service-token create */
static int cmd_create(cli_run *run)
{
    char err[512], *text;
    int rc;

    rc = cli_reject_extra(run, "service-token create", 0,
                          CLI_F_NAME | CLI_F_ROLES | CLI_F_EXPIRATION |
                              CLI_F_DEDICATED | CLI_F_DESCRIPTION);
    if (rc != CLI_OK) {
        return rc;
    }
    if (cli_create_body(&run->a, &text, err, sizeof(err)) != CLI_OK) {
        return cli_fail(&run->out, CLI_EUSAGE,
                        "%s (see sts service-token create --help)", err);
    }
    rc = post_for_secret(run, "/security/tokens", text, "created");
    if (rc == CLI_ECONFIG) {
        /* The one chance to see the secret is gone: say so. */
        rc = cli_fail(&run->out, CLI_ECONFIG,
                      "service token '%s' was created but its secret "
                      "could not be written to standard output (%s): "
                      "delete it (sts service-token list, then delete "
                      "ID) and create it again",
                      run->a.name, strerror(errno));
    }
    return rc;
}

/* sts service-token list */
static int cmd_list(cli_run *run)
{
    cli_target t;
    cli_response resp;
    json_t *list, *sorted;
    char *table;
    int rc;

    rc = cli_reject_extra(run, "service-token list", 0, 0);
    if (rc != CLI_OK || (rc = cli_resolve_target(run, &t)) != CLI_OK ||
        (rc = cli_connect(run, &t)) != CLI_OK) {
        return rc;
    }
    rc = cli_request(run, &t, "GET", "/security/tokens", NULL, &resp);
    if (rc != CLI_OK) {
        free(resp.body);
        return rc;
    }
    list = json_loads(resp.body, 0, NULL);
    free(resp.body);
    sorted = cli_sort_tokens(list);
    json_decref(list);
    if (sorted == NULL) {
        return cli_fail(&run->out, CLI_EREFUSED,
                        "the server's answer is not a list of tokens: is "
                        "this a StackState-compatible token API?");
    }
    if (run->out.json) {
        cli_print_json(json_pack("{so}", "service-tokens", sorted));
        return CLI_OK;
    }
    table = cli_tokens_table(sorted);
    json_decref(sorted);
    if (table == NULL) {
        return cli_fail(&run->out, CLI_EREFUSED, "out of memory");
    }
    fputs(table, stdout);
    free(table);
    return CLI_OK;
}

/* The token ID of delete or rotate (--id or the one positional
 * argument), checked: CLI_OK with *v, else the usage error printed. */
static int token_id_arg(cli_run *run, const char *cmd, int64_t *v)
{
    const char *id = run->a.id            ? run->a.id
                     : run->a.npositional ? run->a.positional[0]
                                          : NULL;

    if (id == NULL) {
        return cli_fail(&run->out, CLI_EUSAGE,
                        "the token ID is required: sts service-token %s "
                        "--id ID (see sts service-token list)",
                        cmd);
    }
    if (!sts_parse_token_id(id, strlen(id), v)) {
        return cli_fail(&run->out, CLI_EUSAGE,
                        "invalid token ID '%.64s': a number from 1 to %lld "
                        "without sign or leading zeros (see sts "
                        "service-token list)",
                        id, (long long)STS_TOKEN_ID_MAX);
    }
    return CLI_OK;
}

/* sts service-token delete ID | --id ID */
static int cmd_delete(cli_run *run)
{
    cli_target t;
    cli_response resp;
    char path[64];
    int64_t v = 0;
    int rc;

    rc = cli_reject_extra(run, "service-token delete", run->a.id ? 0 : 1,
                          CLI_F_ID);
    if (rc != CLI_OK || (rc = token_id_arg(run, "delete", &v)) != CLI_OK) {
        return rc;
    }
    rc = cli_resolve_target(run, &t);
    rc = rc == CLI_OK ? cli_connect(run, &t) : rc;
    if (rc != CLI_OK) {
        return rc;
    }
    snprintf(path, sizeof(path), "/security/tokens/%lld", (long long)v);
    rc = cli_request(run, &t, "DELETE", path, NULL, &resp);
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

/* sts service-token rotate ID | --id ID */
static int cmd_rotate(cli_run *run)
{
    char err[512], path[80], *text;
    int64_t v = 0;
    int rc;

    rc = cli_reject_extra(run, "service-token rotate", run->a.id ? 0 : 1,
                          CLI_F_ID | CLI_F_GRACE | CLI_F_EXPIRATION);
    if (rc != CLI_OK || (rc = token_id_arg(run, "rotate", &v)) != CLI_OK) {
        return rc;
    }
    if (cli_rotate_body(&run->a, &text, err, sizeof(err)) != CLI_OK) {
        return cli_fail(&run->out, CLI_EUSAGE,
                        "%s (see sts service-token rotate --help)", err);
    }
    snprintf(path, sizeof(path), "/security/tokens/%lld/rotate", (long long)v);
    rc = post_for_secret(run, path, text, "rotated");
    if (rc == CLI_ECONFIG) {
        rc = cli_fail(&run->out, CLI_ECONFIG,
                      "service token %lld was rotated but its new secret "
                      "could not be written to standard output (%s): "
                      "rotate it again",
                      (long long)v, strerror(errno));
    }
    return rc;
}

/* sts service-token ... */
int cli_cmd_service_token(cli_run *run)
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
    if (strcmp(sub, "rotate") == 0) {
        return run->a.help ? (fputs(help_rotate, stdout), CLI_OK)
                           : cmd_rotate(run);
    }
    if (strcmp(sub, "delete") == 0) {
        return run->a.help ? (fputs(help_delete, stdout), CLI_OK)
                           : cmd_delete(run);
    }
    if (run->a.help) {
        fputs(help_service_token, stdout);
        return CLI_OK;
    }
    return cli_fail(&run->out, CLI_EUSAGE,
                    "unknown command 'service-token %.64s' (see sts "
                    "service-token --help)",
                    sub);
}
