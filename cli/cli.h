/*
 * cli.h - the sts command-line tool: shared types and the functions that
 * need no network (argument parsing, validation, dates, tables, config).
 */
#ifndef STS_CLI_H
#define STS_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "roles.h"

/* Exit codes a script can rely on: StackState's CLI's (checked by running
 * it on the same command lines, tests/integration/test_stackstate_cli.py). */
#define CLI_OK 0
#define CLI_ECONFIG 1   /* configuration missing or unreadable */
#define CLI_EUSAGE 3    /* bad command line (StackState uses 3, as refusals) */
#define CLI_EREFUSED 3  /* the server refused the request (400/403/404/5xx) */
#define CLI_ECONNECT 4  /* cannot connect, or authentication failed (401) */
#define CLI_ENOTFOUND 8 /* no context with that name */
#define CLI_EVERSION 10 /* the server's API version is not 5.x, >= 5.0.0 */

#define CLI_MAX_POSITIONAL 4
#define CLI_MAX_CONTEXTS 64
#define CLI_MAX_URL 2048
#define CLI_MAX_TOKEN 512 /* the module refuses longer credentials */
#define CLI_MAX_NAME 255  /* token and context names, in characters */
#define CLI_MAX_DESCRIPTION 1024
#define CLI_MAX_API_PATH 255
#define CLI_DEFAULT_API_PATH "/api"

/* Command flags seen on the command line (cli_args.seen), so that each
 * command can refuse the ones it does not take. */
enum {
    CLI_F_NAME = 1 << 0,
    CLI_F_ROLES = 1 << 1,
    CLI_F_EXPIRATION = 1 << 2,
    CLI_F_DEDICATED = 1 << 3,
    CLI_F_DESCRIPTION = 1 << 4,
    CLI_F_ID = 1 << 5,
    CLI_F_SKIP_VALIDATE = 1 << 6,
    CLI_F_GRACE = 1 << 7
};

/* Everything the command line says. Strings point into argv. */
typedef struct {
    const char *words[2]; /* command path, e.g. "service-token", "create" */
    int nwords;
    const char *positional[CLI_MAX_POSITIONAL];
    int npositional;
    int help;
    /* global flags */
    const char *url, *service_token, *context, *api_path, *output, *config;
    const char *service_token_file; /* a file holding the token, "-" stdin */
    const char *ca_cert_path;
    int no_color, skip_ssl;
    /* command flags */
    const char *name, *expiration, *dedicated_subject, *description, *id;
    const char *grace_period;
    const char *roles[STS_ROLES_MAX];
    int nroles;
    int skip_validate;
    unsigned seen; /* CLI_F_* of the command flags given */
} cli_args;

/* Parses argv (without argv[0]). Returns 0, or CLI_EUSAGE with err set. */
int cli_parse_args(int argc, char **argv, cli_args *a, char *err,
                   size_t errlen);

/* The long name (without "--") of the first flag in seen that is not in
 * allowed, or NULL when every flag given is allowed. */
const char *cli_unexpected_flag(unsigned seen, unsigned allowed);

/* Splits comma lists in a->roles into out (deduplicated, order kept).
 * Returns the count, or -1 with err set when a role is empty, too long,
 * has a character outside [A-Za-z0-9._:@-], or there are too many. */
int cli_collect_roles(const cli_args *a, char out[][STS_ROLE_MAX_LEN + 1],
                      int max, char *err, size_t errlen);

/* Parses yyyy-MM-dd into epoch ms at 00:00 UTC. Returns 0, or -1. */
int cli_parse_date(const char *s, int64_t *ms);

/* Formats epoch ms as yyyy-MM-dd (UTC) into out[11] ("" when negative). */
void cli_format_date(int64_t ms, char out[11]);

/* Checks a server URL: http:// or https:// and a host, at most
 * CLI_MAX_URL bytes, no spaces or control characters. 0, or -1 + err. */
int cli_check_url(const char *url, char *err, size_t errlen);

/* Checks a service token without ever quoting it: 1 to CLI_MAX_TOKEN
 * bytes of visible ASCII. 0, or -1 with err set. */
int cli_check_token(const char *token, char *err, size_t errlen);

/* Checks an API path: empty or starting with '/', at most
 * CLI_MAX_API_PATH bytes of visible ASCII without '?' or '#'. */
int cli_check_api_path(const char *path, char *err, size_t errlen);

/* Checks a text value (token name, description): valid UTF-8 without
 * control characters, 1 (or 0 when may_be_empty) to max characters. */
int cli_check_text(const char *what, const char *s, size_t max,
                   int may_be_empty, char *err, size_t errlen);

/* Number of terminal columns s takes (UTF-8; wide East Asian and emoji
 * characters count 2, combining marks 0, invalid bytes 1). */
size_t cli_display_width(const char *s);

/* A malloc'd copy of s that is safe to print on a terminal: control
 * characters (C0, DEL, C1) and invalid UTF-8 bytes become '?'. */
char *cli_printable(const char *s);

/* One context of StackState's config file. */
typedef struct {
    char name[CLI_MAX_NAME * 4 + 1];
    char url[CLI_MAX_URL + 1];
    char service_token[CLI_MAX_TOKEN + 1];
    char api_path[CLI_MAX_API_PATH + 1];
    char admin_api_path[CLI_MAX_API_PATH + 1]; /* shown only */
    int skip_ssl;                              /* skip-ssl: true */
    int has_api_token;    /* api-token or service-bearer set (not ours) */
    char *ca_cert_base64; /* ca-cert-base64-data (malloc'd) or NULL */
} cli_context;

typedef struct {
    cli_context contexts[CLI_MAX_CONTEXTS];
    int ncontexts;
    char current[CLI_MAX_NAME * 4 + 1];
} cli_config;

/* Largest config file read (bytes). */
#define CLI_CONFIG_MAX (1024 * 1024)

/* The config file path: $XDG_CONFIG_HOME/stackstate-cli/config.yaml, else
 * ~/.config/stackstate-cli/config.yaml. Writes into out. */
int cli_config_path(char *out, size_t outlen);

/* Parses a config from memory (StackState's format, or its older flat
 * format, read as one context named "default"). Returns 0, or -1 with err
 * set. Call cli_config_free afterwards either way. */
int cli_config_parse(const char *buf, size_t len, cli_config *cfg, char *err,
                     size_t errlen);

/* Loads the file; a missing file is an empty config (*exists = 0). */
int cli_config_load(const char *path, cli_config *cfg, int *exists, char *err,
                    size_t errlen);

/* Writes the file atomically (temp file + rename) with mode 0600
 * (directories 0700). Keys this tool does not know, in the file as it is
 * on disk now, are kept. */
int cli_config_save(const char *path, const cli_config *cfg, char *err,
                    size_t errlen);

/* Creates the directories above path (mode 0700); 0, or -1 with errno. */
int cli_config_mkdirs(const char *path);

/* Releases what a config holds (safe on a zeroed or freed config). */
void cli_config_free(cli_config *cfg);

/* Finds a context by name, or NULL. */
cli_context *cli_config_find(cli_config *cfg, const char *name);

/* Removes the context c from cfg (releasing what it holds). */
void cli_config_remove(cli_config *cfg, cli_context *c);

/* Formats a table: headers as given, columns padded to the widest cell (in
 * terminal columns), " | " between columns, no trailing spaces. Returns a
 * malloc'd string with a newline after each row, or NULL. */
char *cli_format_table(const char *const *headers, int ncols,
                       const char *const *cells, int nrows);

#endif
