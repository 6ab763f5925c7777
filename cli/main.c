/*
 * main.c - the sts command: global help, version, and dispatch to the
 * service-token and context command groups.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "run.h"
#include "version.h"

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
    "      --service-token-file FILE  read the token from FILE's first line "
    "(- for standard input): other local users can see command lines\n"
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
    "Environment: STS_CLI_TIMEOUT seconds for a whole request (default 60), "
    "NO_COLOR.\n"
    "\n"
    "Exit codes (StackState's CLI's): 0 success, 1 configuration error, 3 "
    "bad usage or the server refused the request, 4 cannot connect or "
    "authentication failed, 8 context not found, 10 incompatible server "
    "version.\n"
    "\n"
    "Use \"sts [command] --help\" for more information about a command.\n";

/* Parses the command line and runs one command; the exit code says how it
 * went (see cli.h). */
int main(int argc, char **argv)
{
    static cli_run run;
    char err[512];
    int rc;

    run.lock_fd = -1;
    rc = cli_parse_args(argc - 1, argv + 1, &run.a, err, sizeof(err));
    if (rc == 0) {
        cli_out_init(&run.out,
                     run.a.output && strcmp(run.a.output, "json") == 0,
                     run.a.no_color);
        rc = cli_take_token(&run);
        if (rc != CLI_OK) {
            return rc;
        }
    } else {
        cli_out_init(&run.out, 0, 1);
        for (rc = 1; rc < argc; rc++) {
            if ((strcmp(argv[rc], "json") == 0 && rc > 1 &&
                 (strcmp(argv[rc - 1], "-o") == 0 ||
                  strcmp(argv[rc - 1], "--output") == 0)) ||
                strcmp(argv[rc], "-ojson") == 0 ||
                strcmp(argv[rc], "--output=json") == 0) {
                run.out.json = 1;
            }
        }
        return cli_fail(&run.out, CLI_EUSAGE, "%s (see sts --help)", err);
    }
    if (run.a.config) {
        snprintf(run.config_path, sizeof(run.config_path), "%s", run.a.config);
    } else if (cli_config_path(run.config_path, sizeof(run.config_path)) != 0) {
        return cli_fail(&run.out, CLI_ECONFIG,
                        "cannot find the config directory: set HOME or "
                        "XDG_CONFIG_HOME");
    }
    if (run.a.nwords == 0) {
        fputs(help_root, stdout);
        return CLI_OK;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (strcmp(run.a.words[0], "service-token") == 0) {
        rc = cli_cmd_service_token(&run);
    } else if (strcmp(run.a.words[0], "context") == 0) {
        rc = cli_cmd_context(&run);
    } else if (strcmp(run.a.words[0], "version") == 0 && run.a.help) {
        fputs("Print the version of sts.\n\nUsage:\n  sts version [-o "
              "json]\n",
              stdout);
        rc = CLI_OK;
    } else if (strcmp(run.a.words[0], "version") == 0 &&
               (run.a.nwords > 1 || run.a.npositional > 0 || run.a.seen)) {
        rc = cli_fail(&run.out, CLI_EUSAGE,
                      "'version' takes no arguments (see sts --help)");
    } else if (strcmp(run.a.words[0], "version") == 0) {
        if (run.out.json) {
            cli_print_json(json_pack("{ssss}", "version", STS_VERSION, "commit",
                                     STS_COMMIT));
        } else {
            printf("sts %s\n", STS_VERSION);
        }
        rc = CLI_OK;
    } else if (strcmp(run.a.words[0], "help") == 0) {
        fputs(help_root, stdout);
        rc = CLI_OK;
    } else {
        rc = cli_fail(&run.out, CLI_EUSAGE,
                      "unknown command '%.64s' (see sts --help)",
                      run.a.words[0]);
    }
    cli_config_free(&run.cfg);
    curl_global_cleanup();
    return rc;
}
