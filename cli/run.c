/*
 * run.c - shared by the sts commands: config loading, where to connect
 * (flags > STS_CLI_* > context), requests with failures mapped to exit
 * codes and messages a person can act on (never quoting the token).
 */
#include "run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <jansson.h>

/* Reads the token file (bounded): its first line, without the line end and
 * surrounding blanks. NULL with err set when it cannot. */
static char *read_token_file(const char *path, char *err, size_t errlen)
{
    char buf[CLI_MAX_TOKEN + 3] = "";
    size_t n = 0;
    ssize_t got;
    char *start, *end, *out = NULL;
    int fd = strcmp(path, "-") == 0 ? STDIN_FILENO
                                    : open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        snprintf(err, errlen, "--service-token-file '%s': %s", path,
                 strerror(errno));
        return NULL;
    }
    /* Up to the first line end, at most two bytes past the longest token. */
    while (n < sizeof(buf) - 1 && memchr(buf, '\n', n) == NULL) {
        got = read(fd, buf + n, sizeof(buf) - 1 - n);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            snprintf(err, errlen, "--service-token-file '%s': %s", path,
                     strerror(errno));
            goto done;
        }
        if (got == 0) {
            break;
        }
        n += (size_t)got;
    }
    buf[n] = '\0';
    start = buf + strspn(buf, " \t");
    end = start + strcspn(start, "\r\n");
    while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    *end = '\0';
    if (*start == '\0' || (size_t)(end - start) > CLI_MAX_TOKEN) {
        snprintf(err, errlen,
                 "--service-token-file '%s': the first line must hold the "
                 "token (1 to %d characters)",
                 path, CLI_MAX_TOKEN);
        goto done;
    }
    out = strdup(start);
    if (out == NULL) {
        snprintf(err, errlen, "out of memory");
    }
done:
    if (fd != STDIN_FILENO) {
        close(fd);
    }
    explicit_bzero(buf, sizeof(buf));
    return out;
}

int cli_take_token(cli_run *run)
{
    char err[1024], *copy;

    if (run->a.service_token != NULL) {
        copy = strdup(run->a.service_token);
        /* The value is argv memory: overwrite it in place. What ps and
         * /proc/PID/cmdline show from now on is "x...x" (before this line
         * runs, the kernel shows the original: no program can avoid that). */
        memset((char *)run->a.service_token, 'x', strlen(run->a.service_token));
        if (copy == NULL) {
            return cli_fail(&run->out, CLI_ECONFIG, "out of memory");
        }
        run->a.service_token = copy;
        if (run->a.service_token_file != NULL) {
            return cli_fail(&run->out, CLI_EUSAGE,
                            "give --service-token or --service-token-file, "
                            "not both");
        }
        return CLI_OK;
    }
    if (run->a.service_token_file != NULL) {
        copy = read_token_file(run->a.service_token_file, err, sizeof(err));
        if (copy == NULL) {
            return cli_fail(&run->out, CLI_ECONFIG, "%s", err);
        }
        run->a.service_token = copy;
    }
    return CLI_OK;
}

/* Reads a flag, else an environment variable, else NULL. */
const char *cli_flag_or_env(const char *flag, const char *env)
{
    const char *v = getenv(env);

    return flag ? flag : (v && *v ? v : NULL);
}

/* Loads the config file once. */
int cli_load_config(cli_run *run)
{
    char err[1024];

    if (run->cfg_loaded) {
        return CLI_OK;
    }
    if (cli_config_load(run->config_path, &run->cfg, &run->cfg_exists, err,
                        sizeof(err)) != 0) {
        cli_config_free(&run->cfg);
        return cli_fail(&run->out, CLI_ECONFIG, "%s", err);
    }
    run->cfg_loaded = 1;
    return CLI_OK;
}

/* Locks the config for a change, then loads it. */
int cli_load_config_for_write(cli_run *run)
{
    char lock[sizeof(run->config_path) + 8];
    int i;

    if (run->lock_fd < 0) {
        snprintf(lock, sizeof(lock), "%s.lock", run->config_path);
        (void)cli_config_mkdirs(lock); /* else open says why */
        run->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (run->lock_fd < 0) {
            return cli_fail(&run->out, CLI_ECONFIG, "cannot create %s: %s",
                            lock, strerror(errno));
        }
        for (i = 0; flock(run->lock_fd, LOCK_EX | LOCK_NB) != 0; i++) {
            if (errno != EWOULDBLOCK || i >= 100) {
                return cli_fail(&run->out, CLI_ECONFIG,
                                "%s is locked by another sts for more than "
                                "10 s: try again",
                                run->config_path);
            }
            usleep(100 * 1000);
        }
        run->cfg_loaded = 0; /* read it again under the lock */
        cli_config_free(&run->cfg);
    }
    return cli_load_config(run);
}

/* Refuses arguments a command does not take. */
int cli_reject_extra(cli_run *run, const char *cmd, int max_positional,
                     unsigned allowed)
{
    const char *flag = cli_unexpected_flag(run->a.seen, allowed);

    if (run->a.npositional > max_positional) {
        /* The argument is not quoted: it may be a misplaced secret. */
        return cli_fail(&run->out, CLI_EUSAGE,
                        "too many arguments for '%s' (see sts %s --help)", cmd,
                        cmd);
    }
    if (flag) {
        return cli_fail(&run->out, CLI_EUSAGE,
                        "'%s' does not take --%s (see sts %s --help)", cmd,
                        flag, cmd);
    }
    return CLI_OK;
}

/* Checks --ca-cert-path. */
int cli_check_ca_flag(cli_run *run)
{
    const char *p = run->a.ca_cert_path;

    if (p && (!*p || access(p, R_OK) != 0)) {
        return cli_fail(&run->out, CLI_EUSAGE,
                        "--ca-cert-path '%s': cannot read the file", p);
    }
    return CLI_OK;
}

/* Validates one connection setting; code and where say where it came
 * from (a flag: usage error; environment or config: config error). */
static int check_setting(cli_run *run, int which, const char *v,
                         const char *where, int code)
{
    char err[512];
    int bad = which == 0   ? cli_check_url(v, err, sizeof(err))
              : which == 1 ? cli_check_token(v, err, sizeof(err))
                           : cli_check_api_path(v, err, sizeof(err));

    return bad ? cli_fail(&run->out, code, "%s: %s", where, err) : CLI_OK;
}

/* STS_CLI_TIMEOUT in seconds (0 when unset); -1 when invalid. */
static long request_timeout(void)
{
    const char *v = getenv("STS_CLI_TIMEOUT");
    char *end;
    long n;

    if (v == NULL || *v == '\0') {
        return 0;
    }
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || *end || end == v || n < 1 || n > CLI_MAX_TIMEOUT) {
        return -1;
    }
    return n;
}

/* Sets t->timeout from STS_CLI_TIMEOUT (config error when invalid). */
int cli_timeout(cli_run *run, cli_target *t)
{
    t->timeout = request_timeout();
    if (t->timeout < 0) {
        return cli_fail(&run->out, CLI_ECONFIG,
                        "STS_CLI_TIMEOUT must be a number of seconds from 1 "
                        "to %d",
                        CLI_MAX_TIMEOUT);
    }
    return CLI_OK;
}

/* Works out where to connect. */
int cli_resolve_target(cli_run *run, cli_target *t)
{
    const char *url = cli_flag_or_env(run->a.url, "STS_CLI_URL");
    const char *tok =
        cli_flag_or_env(run->a.service_token, "STS_CLI_SERVICE_TOKEN");
    const char *api = cli_flag_or_env(run->a.api_path, "STS_CLI_API_PATH");
    const char *name = cli_flag_or_env(run->a.context, "STS_CLI_CONTEXT");
    const char *url_from, *tok_from, *api_from;
    int url_code, tok_code, api_code, rc;
    char ctxwhere[1200 + sizeof(run->config_path)];
    cli_context *c = NULL;

    url_from = run->a.url ? "--url" : "STS_CLI_URL";
    url_code = run->a.url ? CLI_EUSAGE : CLI_ECONFIG;
    tok_from =
        run->a.service_token ? "--service-token" : "STS_CLI_SERVICE_TOKEN";
    tok_code = run->a.service_token ? CLI_EUSAGE : CLI_ECONFIG;
    api_from = run->a.api_path ? "--api-path" : "STS_CLI_API_PATH";
    api_code = run->a.api_path ? CLI_EUSAGE : CLI_ECONFIG;
    rc = cli_check_ca_flag(run);
    if (rc != CLI_OK) {
        return rc;
    }
    if (!url || !tok || name) {
        rc = cli_load_config(run);
        if (rc != CLI_OK) {
            return rc;
        }
        if (!name) {
            name = run->cfg.current[0] ? run->cfg.current : NULL;
        }
        if (name) {
            c = cli_config_find(&run->cfg, name);
            if (c == NULL) {
                return cli_fail(&run->out, CLI_ENOTFOUND,
                                "context '%s' not found in %s (see sts "
                                "context list)",
                                name, run->config_path);
            }
        }
    }
    if (c) {
        snprintf(ctxwhere, sizeof(ctxwhere), "context '%s' in %s", c->name,
                 run->config_path);
        if (!url) {
            url = c->url, url_from = ctxwhere, url_code = CLI_ECONFIG;
        }
        if (!tok) {
            tok = c->service_token, tok_from = ctxwhere, tok_code = CLI_ECONFIG;
        }
        if (!api && c->api_path[0]) {
            api = c->api_path, api_from = ctxwhere, api_code = CLI_ECONFIG;
        }
        if (!*tok && c->has_api_token) {
            return cli_fail(&run->out, CLI_ECONFIG,
                            "%s has an api-token but no service-token; this "
                            "server accepts service tokens only: run 'sts "
                            "context save --name %s --url URL "
                            "--service-token TOKEN'",
                            ctxwhere, c->name);
        }
    }
    if (!url || !*url || !tok || !*tok) {
        return cli_fail(
            &run->out, CLI_ECONFIG,
            "no server configured: run 'sts context save --name NAME --url "
            "URL --service-token TOKEN', or set STS_CLI_URL and "
            "STS_CLI_SERVICE_TOKEN (config file: %s)",
            run->config_path);
    }
    api = api ? api : CLI_DEFAULT_API_PATH;
    if ((rc = check_setting(run, 0, url, url_from, url_code)) != CLI_OK ||
        (rc = check_setting(run, 1, tok, tok_from, tok_code)) != CLI_OK ||
        (rc = check_setting(run, 2, api, api_from, api_code)) != CLI_OK) {
        return rc;
    }
    memset(t, 0, sizeof(*t));
    t->url = url;
    t->token = tok;
    t->api_path = api;
    t->skip_ssl = run->a.skip_ssl || (c && c->skip_ssl);
    t->ca_cert_path = run->a.ca_cert_path;
    t->ca_cert_base64 = c ? c->ca_cert_base64 : NULL;
    return cli_timeout(run, t);
}

/* Collects the server's error messages from a JSON error body. */
static void server_messages(const cli_response *r, char *out, size_t outlen)
{
    json_t *j = json_loads(r->body, 0, NULL), *errs, *e;
    size_t i, used = 0;

    out[0] = '\0';
    if (j && (errs = json_object_get(j, "errors")) && json_is_array(errs)) {
        json_array_foreach(errs, i, e)
        {
            const char *m = json_string_value(json_object_get(e, "message"));

            if (m && used + 3 < outlen) {
                int n = snprintf(out + used, outlen - used, "%s%s",
                                 used ? "; " : "", m);

                used = n < 0 ? outlen : used + (size_t)n;
            }
        }
    } else if (j && json_is_string(json_object_get(j, "message"))) {
        snprintf(out, outlen, "%s",
                 json_string_value(json_object_get(j, "message")));
    } else if (!j && r->body[0] && r->body[0] != '<') {
        /* A short plain-text answer (a proxy, say): its first line. */
        snprintf(out, outlen, "%.*s", (int)strcspn(r->body, "\r\n"), r->body);
    }
    json_decref(j);
}

/* The reason phrase of common statuses. */
static const char *reason(long status)
{
    switch (status) {
    case 400:
        return " Bad Request";
    case 403:
        return " Forbidden";
    case 404:
        return " Not Found";
    case 405:
        return " Method Not Allowed";
    case 413:
        return " Payload Too Large";
    case 415:
        return " Unsupported Media Type";
    case 429:
        return " Too Many Requests";
    case 500:
        return " Internal Server Error";
    case 502:
        return " Bad Gateway";
    case 503:
        return " Service Unavailable";
    case 504:
        return " Gateway Timeout";
    default:
        return "";
    }
}

/* Sends a request and maps failures to exit codes. */
int cli_request(cli_run *run, const cli_target *t, const char *method,
                const char *path, const char *body, cli_response *resp)
{
    char url[8192], msgs[1024];
    const char *hint = "";

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
                        "token was refused%s%s (check --service-token, "
                        "STS_CLI_SERVICE_TOKEN or the context's "
                        "service-token)",
                        url, resp->auth_error[0] ? ": " : "", resp->auth_error);
    }
    if (resp->status == 403 && !msgs[0]) {
        hint = " (the service token is valid but lacks a role this API "
               "requires)";
    } else if (resp->status == 404 && !msgs[0]) {
        hint = " (is the API path right? see --api-path)";
    }
    return cli_fail(&run->out, CLI_EREFUSED,
                    "the server refused %s %s: HTTP %ld%s%s%s%s", method, url,
                    resp->status, reason(resp->status), msgs[0] ? ": " : "",
                    msgs, hint);
}

/* GET server/info: 0 when the server answers as a StackState API, else
 * CLI_ECONNECT (or the request's own failure). */
int cli_validate_server(cli_run *run, const cli_target *t, json_t **info_out)
{
    cli_response resp;
    json_t *info = NULL;
    int rc = cli_request(run, t, "GET", "/server/info", NULL, &resp);

    if (rc == CLI_OK) {
        info = json_loads(resp.body, 0, NULL);
        if (!json_is_object(json_object_get(info, "version"))) {
            char url[8192];

            cli_http_url(t, "/server/info", url, sizeof(url));
            rc = cli_fail(&run->out, CLI_ECONNECT,
                          "%s did not answer with server info: is the API "
                          "path right? (--api-path)",
                          url);
        }
    } else if (rc == CLI_EREFUSED) {
        /* As StackState's CLI: no usable server/info (a 403, a 503 of the
         * database behind authentication) is a connection failure. */
        rc = CLI_ECONNECT;
    }
    free(resp.body);
    if (rc == CLI_OK && info_out != NULL) {
        *info_out = info;
    } else {
        json_decref(info);
    }
    return rc;
}

/* The lowest API version StackState's CLI (v3) accepts: its major, and
 * 5.0.0 itself. */
#define CLI_MIN_API_MAJOR 5

int cli_connect(cli_run *run, const cli_target *t)
{
    json_t *info = NULL, *v;
    json_int_t major, minor, patch;
    const char *diff, *commit;
    int rc = cli_validate_server(run, t, &info), pre;

    if (rc != CLI_OK) {
        return rc;
    }
    v = json_object_get(info, "version");
    major = json_integer_value(json_object_get(v, "major"));
    minor = json_integer_value(json_object_get(v, "minor"));
    patch = json_integer_value(json_object_get(v, "patch"));
    diff = json_string_value(json_object_get(v, "diff"));
    commit = json_string_value(json_object_get(v, "commit"));
    /* StackState's CLI reads "M.m.p[+diff][-commit][-dev]" as semver: after
     * a "+diff" the rest is build metadata, else a commit or isDev makes a
     * pre-release, which sorts below M.m.p. */
    pre = !(diff && *diff) &&
          ((commit && *commit) || json_is_true(json_object_get(v, "isDev")));
    if (major != CLI_MIN_API_MAJOR || minor < 0 || patch < 0 ||
        (minor == 0 && patch == 0 && pre)) {
        rc = cli_fail(&run->out, CLI_EVERSION,
                      "incompatible API version: the server implements "
                      "%lld.%lld.%lld%s, sts needs a 5.x version from 5.0.0 "
                      "(as StackState's CLI)",
                      (long long)major, (long long)minor, (long long)patch,
                      pre ? " (a pre-release)" : "");
    }
    json_decref(info);
    return rc;
}
