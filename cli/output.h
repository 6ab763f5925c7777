/*
 * output.h - how sts prints: text or JSON, colour or markers.
 */
#ifndef STS_CLI_OUTPUT_H
#define STS_CLI_OUTPUT_H

#include <jansson.h>

#include "cli.h"

typedef struct {
    int json;      /* -o json */
    int color_out; /* emoji/colour on stdout */
    int color_err; /* emoji/colour on stderr */
} cli_out;

/* Sets up output from the flags and whether stdout/stderr are terminals. */
void cli_out_init(cli_out *o, int json, int no_color);

/* "✅ msg" (terminal) or "[SUCCESS] msg" on stdout. */
void cli_success(const cli_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints an error and returns code: "❌ msg" / "[ERROR] msg" on stderr, or
 * {"error": true, "error-message": msg} with -o json. */
int cli_fail(const cli_out *o, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prints a JSON value (indented) on stdout and releases it. */
void cli_print_json(json_t *v);

#endif
