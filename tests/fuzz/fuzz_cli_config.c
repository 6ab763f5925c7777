/*
 * fuzz_cli_config.c - libFuzzer harness for the CLI's config-file reader.
 * Properties: a parsed config has a bounded number of contexts, each named,
 * with NUL-terminated fields; free is safe after success and failure.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Parses one config document and checks the result. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cli_config cfg;
    char err[512];
    int i;

    memset(&cfg, 0, sizeof(cfg));
    err[0] = '\0';
    if (cli_config_parse((const char *)data, size, &cfg, err, sizeof(err)) ==
        0) {
        if (cfg.ncontexts < 0 || cfg.ncontexts > CLI_MAX_CONTEXTS) {
            abort();
        }
        for (i = 0; i < cfg.ncontexts; i++) {
            if (cfg.contexts[i].name[0] == '\0' ||
                strlen(cfg.contexts[i].url) > CLI_MAX_URL) {
                abort();
            }
        }
    } else if (err[0] == '\0') {
        abort();
    }
    cli_config_free(&cfg);
    return 0;
}
