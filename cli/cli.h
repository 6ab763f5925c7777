/*
 * cli.h - the sts command-line tool: shared types and functions.
 */
#ifndef STS_CLI_H
#define STS_CLI_H

#include <stddef.h>
#include <stdint.h>

/* Exit codes a script can rely on. */
#define CLI_OK 0
#define CLI_ECONFIG 1  /* configuration missing or unreadable */
#define CLI_EUSAGE 2   /* bad command line */
#define CLI_EREFUSED 3 /* the server refused the request (400/403/404/5xx) */
#define CLI_ECONNECT 4 /* cannot connect, or authentication failed (401) */

#define CLI_MAX_ROLES 64
#define CLI_MAX_POSITIONAL 4
#define CLI_MAX_CONTEXTS 64
#define CLI_MAX_FIELD 4096
#define CLI_DEFAULT_API_PATH "/api"

/* Everything the command line says. Strings point into argv. */
typedef struct {
    const char *words[3]; /* command path, e.g. "service-token", "create" */
    int nwords;
    const char *positional[CLI_MAX_POSITIONAL];
    int npositional;
    int help;
    /* global flags */
    const char *url, *service_token, *context, *api_path, *output, *config;
    const char *ca_cert_path;
    int no_color, skip_ssl;
    /* command flags */
    const char *name, *expiration, *dedicated_subject, *description, *id;
    const char *roles[CLI_MAX_ROLES];
    int nroles;
    int skip_validate;
} cli_args;

/* Parses argv (without argv[0]). Returns 0, or CLI_EUSAGE with err set. */
int cli_parse_args(int argc, char **argv, cli_args *a, char *err,
                   size_t errlen);

/* Splits comma lists in a->roles into out (deduplicated, order kept).
 * Returns the count, or -1 with err set when a role is empty or too many. */
int cli_collect_roles(const cli_args *a, char out[][129], int max, char *err,
                      size_t errlen);

/* Parses yyyy-MM-dd into epoch ms at 00:00 UTC. Returns 0, or -1. */
int cli_parse_date(const char *s, int64_t *ms);

/* Formats epoch ms as yyyy-MM-dd (UTC) into out[11]. */
void cli_format_date(int64_t ms, char out[11]);

/* One context of StackState's config file. */
typedef struct {
    char name[256];
    char url[CLI_MAX_FIELD];
    char service_token[CLI_MAX_FIELD];
    char api_path[256];
} cli_context;

typedef struct {
    cli_context contexts[CLI_MAX_CONTEXTS];
    int ncontexts;
    char current[256];
} cli_config;

/* The config file path: $XDG_CONFIG_HOME/stackstate-cli/config.yaml, else
 * ~/.config/stackstate-cli/config.yaml. Writes into out. */
int cli_config_path(char *out, size_t outlen);

/* Parses a config from memory. Returns 0, or -1 with err set. */
int cli_config_parse(const char *buf, size_t len, cli_config *cfg, char *err,
                     size_t errlen);

/* Loads the file; a missing file is an empty config (*exists = 0). */
int cli_config_load(const char *path, cli_config *cfg, int *exists, char *err,
                    size_t errlen);

/* Writes the file atomically with mode 0600 (directories 0700). */
int cli_config_save(const char *path, const cli_config *cfg, char *err,
                    size_t errlen);

/* Finds a context by name, or NULL. */
cli_context *cli_config_find(cli_config *cfg, const char *name);

/* Formats a table: headers upper-case as given, columns padded to the
 * widest cell, " | " between columns, no trailing spaces. Returns a
 * malloc'd string ending in a newline per row. */
char *cli_format_table(const char *const *headers, int ncols,
                       const char *const *cells, int nrows);

#endif
