/*
 * output.c - tables and messages for sts: emoji and colour on a terminal,
 * [SUCCESS]/[ERROR] markers otherwise, JSON with -o json.
 */
#include "output.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Decides colour for a stream: a terminal, no --no-color, no NO_COLOR. */
void cli_out_init(cli_out *o, int json, int no_color)
{
    const char *nc = getenv("NO_COLOR");

    o->json = json;
    o->color_out = !no_color && !(nc && *nc) && isatty(STDOUT_FILENO);
    o->color_err = !no_color && !(nc && *nc) && isatty(STDERR_FILENO);
}

/* Formats a table (see cli.h). */
char *cli_format_table(const char *const *headers, int ncols,
                       const char *const *cells, int nrows)
{
    size_t width[16] = {0}, total = 1;
    char *out, *p;
    int r, c;

    if (ncols < 1 || ncols > 16 || nrows < 0) {
        return NULL;
    }
    for (c = 0; c < ncols; c++) {
        width[c] = cli_display_width(headers[c]);
        total += strlen(headers[c]);
        for (r = 0; r < nrows; r++) {
            const char *v = cells[(size_t)r * (size_t)ncols + (size_t)c];
            size_t n = cli_display_width(v);

            width[c] = n > width[c] ? n : width[c];
            total += strlen(v);
        }
    }
    for (c = 0; c < ncols; c++) {
        total += (width[c] + 3) * (size_t)(nrows + 1); /* padding, " | " */
    }
    total += (size_t)(nrows + 1); /* newlines */
    out = p = malloc(total);
    if (out == NULL) {
        return NULL;
    }
    for (r = -1; r < nrows; r++) {
        char *line = p;

        for (c = 0; c < ncols; c++) {
            const char *v = r < 0
                                ? headers[c]
                                : cells[(size_t)r * (size_t)ncols + (size_t)c];
            size_t len = strlen(v), w = cli_display_width(v);

            if (c > 0) {
                memcpy(p, " | ", 3);
                p += 3;
            }
            memcpy(p, v, len);
            p += len;
            memset(p, ' ', width[c] - w);
            p += width[c] - w;
        }
        while (p > line && p[-1] == ' ') {
            p--;
        }
        *p++ = '\n';
    }
    *p = '\0';
    return out;
}

/* Prints a success message on stdout. */
void cli_success(const cli_out *o, const char *fmt, ...)
{
    char msg[2048], *safe;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    safe = cli_printable(msg);
    fprintf(stdout, "%s%s\n", o->color_out ? "\xE2\x9C\x85 " : "[SUCCESS] ",
            safe ? safe : msg);
    free(safe);
}

/* Prints an error on stderr (text or JSON) and returns code. */
int cli_fail(const cli_out *o, int code, const char *fmt, ...)
{
    char msg[2048], *safe;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    safe = cli_printable(msg);
    if (safe == NULL) {
        fputs("[ERROR] out of memory\n", stderr);
        return code;
    }
    if (o->json) {
        /* As StackState's CLI: indented, on stderr. */
        json_t *j = json_pack("{sbss}", "error", 1, "error-message", safe);
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

        fprintf(stderr, "%s\n", s ? s : "{\"error\": true}");
        free(s);
        json_decref(j);
    } else if (o->color_err) {
        fprintf(stderr, "\xE2\x9D\x8C \x1b[31m%s\x1b[0m\n", safe);
    } else {
        fprintf(stderr, "[ERROR] %s\n", safe);
    }
    free(safe);
    return code;
}

/* Prints a JSON value on stdout and releases it. */
void cli_print_json(json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

    if (s) {
        printf("%s\n", s);
    }
    free(s);
    json_decref(v);
}
