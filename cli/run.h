/*
 * run.h - what every sts command shares: the parsed command line, output
 * settings, the config, and the way to the server (flags, environment,
 * context) with errors mapped to exit codes.
 */
#ifndef STS_CLI_RUN_H
#define STS_CLI_RUN_H

#include "cli.h"
#include "http.h"
#include "output.h"

/* Everything one run needs. */
typedef struct {
    cli_args a;
    cli_out out;
    char config_path[4096];
    cli_config cfg; /* loaded on demand by cli_load_config */
    int cfg_loaded, cfg_exists;
    int lock_fd; /* the config's lock while a command changes it, or -1 */
} cli_run;

/* Takes the token out of the command line: a --service-token value is
 * copied and overwritten in argv (other local users read argv in
 * /proc/PID/cmdline); --service-token-file FILE ("-": standard input) is
 * read, its first line being the token. Either way run->a.service_token
 * then points to a private copy. CLI_OK, or a printed error. */
int cli_take_token(cli_run *run);

/* The flag, else the environment variable when set and not empty. */
const char *cli_flag_or_env(const char *flag, const char *env);

/* Loads the config file once; prints the error and returns CLI_ECONFIG. */
int cli_load_config(cli_run *run);

/* Like cli_load_config, for a command that will save the config: first
 * takes an exclusive lock (flock on a ".lock" file beside it, held until
 * exit, waiting at most 10 s), so that concurrent changes are not lost. */
int cli_load_config_for_write(cli_run *run);

/* Refuses (CLI_EUSAGE) positional arguments and command flags outside
 * allowed (CLI_F_*), naming the first one. */
int cli_reject_extra(cli_run *run, const char *cmd, int max_positional,
                     unsigned allowed);

/* Checks --ca-cert-path when given (a readable file); CLI_EUSAGE if not. */
int cli_check_ca_flag(cli_run *run);

/* Works out where to connect: flags, then STS_CLI_*, then the context
 * (--context, STS_CLI_CONTEXT, current-context). Validates the URL, token
 * and API path, never quoting the token. */
int cli_resolve_target(cli_run *run, cli_target *t);

/* Sends a request; maps a missing answer and 401 to CLI_ECONNECT and any
 * other non-2xx to CLI_EREFUSED, printing the URL, the status and the
 * server's messages. The caller frees resp->body in every case. */
int cli_request(cli_run *run, const cli_target *t, const char *method,
                const char *path, const char *body, cli_response *resp);

/* Sets t->timeout from STS_CLI_TIMEOUT; CLI_ECONFIG when it is invalid. */
int cli_timeout(cli_run *run, cli_target *t);

/* GET {api}/server/info: CLI_OK when the server answers as this API;
 * *info (when info is not NULL) receives the ServerInfo (json_decref it). */
int cli_validate_server(cli_run *run, const cli_target *t, json_t **info);

/* What StackState's CLI does before every service-token command: GET
 * server/info, then CLI_EVERSION unless the API version is 5.x and at
 * least 5.0.0 (compared as it does, the commit making a pre-release). */
int cli_connect(cli_run *run, const cli_target *t);

/* The command groups. */
int cli_cmd_service_token(cli_run *run);
int cli_cmd_context(cli_run *run);

#endif
