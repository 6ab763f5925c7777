/*
 * args.c - command-line parsing for sts (no network, no files: unit-tested).
 */
#include "cli.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Flags that take a value: long name, short name, where it goes. */
typedef struct {
    const char *lng;
    char shrt;
    size_t off;
    unsigned bit; /* CLI_F_* for command flags, 0 for global ones */
} cli_value_flag;

#define OFF(f) offsetof(cli_args, f)

static const cli_value_flag value_flags[] = {
    {"url", 0, OFF(url), 0},
    {"service-token", 0, OFF(service_token), 0},
    {"service-token-file", 0, OFF(service_token_file), 0},
    {"context", 0, OFF(context), 0},
    {"api-path", 0, OFF(api_path), 0},
    {"output", 'o', OFF(output), 0},
    {"config", 0, OFF(config), 0},
    {"ca-cert-path", 0, OFF(ca_cert_path), 0},
    {"name", 'n', OFF(name), CLI_F_NAME},
    {"expiration", 0, OFF(expiration), CLI_F_EXPIRATION},
    {"dedicatedSubject", 0, OFF(dedicated_subject), CLI_F_DEDICATED},
    {"description", 0, OFF(description), CLI_F_DESCRIPTION},
    {"id", 'i', OFF(id), CLI_F_ID},
    {"grace-period", 0, OFF(grace_period), CLI_F_GRACE},
};

#define NFLAGS (sizeof(value_flags) / sizeof(value_flags[0]))

/* Names the first flag in seen that allowed does not list. */
const char *cli_unexpected_flag(unsigned seen, unsigned allowed)
{
    size_t k;

    seen &= ~allowed;
    if (seen & CLI_F_ROLES) {
        return "roles";
    }
    if (seen & CLI_F_SKIP_VALIDATE) {
        return "skip-validate";
    }
    for (k = 0; k < NFLAGS; k++) {
        if (value_flags[k].bit & seen) {
            return value_flags[k].lng;
        }
    }
    return NULL;
}

/* Sets a string flag, refusing a repeated one (except --roles). */
static int cli_set(cli_args *a, const cli_value_flag *f, const char *v,
                   char *err, size_t errlen)
{
    const char **slot = (const char **)((char *)a + f->off);

    if (*slot != NULL) {
        snprintf(err, errlen, "flag --%s given more than once", f->lng);
        return CLI_EUSAGE;
    }
    *slot = v;
    a->seen |= f->bit;
    return 0;
}

/* Parses the whole command line. */
int cli_parse_args(int argc, char **argv, cli_args *a, char *err, size_t errlen)
{
    int i, only_positional = 0;
    size_t k;

    memset(a, 0, sizeof(*a));
    for (i = 0; i < argc; i++) {
        const char *arg = argv[i], *val = NULL, *eq;
        const cli_value_flag *f = NULL;
        char name[64];

        if (only_positional || arg[0] != '-' || arg[1] == '\0') {
            if (a->nwords < 2 && a->npositional == 0) {
                a->words[a->nwords++] = arg;
            } else if (a->npositional < CLI_MAX_POSITIONAL) {
                a->positional[a->npositional++] = arg;
            } else {
                snprintf(err, errlen, "too many arguments");
                return CLI_EUSAGE;
            }
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_positional = 1;
            continue;
        }
        if (arg[1] != '-') {
            /* -o json, -n NAME, -i ID, -h (also -oVALUE) */
            if (arg[1] == 'h' && arg[2] != '\0') {
                snprintf(err, errlen, "unknown flag -%c%s", arg[1],
                         " (use -h alone)");
                return CLI_EUSAGE;
            }
            if (arg[1] == 'h') {
                a->help = 1;
                continue;
            }
            for (k = 0; k < NFLAGS; k++) {
                if (value_flags[k].shrt == arg[1]) {
                    f = &value_flags[k];
                }
            }
            if (f == NULL) {
                /* Only the letter: the rest may be a pasted secret. */
                snprintf(err, errlen, "unknown flag -%c", arg[1]);
                return CLI_EUSAGE;
            }
            if (arg[2] != '\0') {
                val = arg + 2;
            }
        } else {
            eq = strchr(arg + 2, '=');
            snprintf(name, sizeof(name), "%.*s",
                     (int)(eq ? (size_t)(eq - arg - 2) : strlen(arg + 2)),
                     arg + 2);
            val = eq ? eq + 1 : NULL;
            if (strcmp(name, "help") == 0 && !val) {
                a->help = 1;
                continue;
            }
            if (strcmp(name, "no-color") == 0 ||
                strcmp(name, "skip-ssl") == 0 ||
                strcmp(name, "skip-validate") == 0) {
                /* --flag, or --flag=true|false as cobra accepts. */
                int on = !val || strcmp(val, "true") == 0;

                if (val && !on && strcmp(val, "false") != 0) {
                    snprintf(err, errlen,
                             "flag --%s takes no value, or =true or =false",
                             name);
                    return CLI_EUSAGE;
                }
                if (name[1] == 'o') {
                    a->no_color = on;
                } else if (name[5] == 's') {
                    a->skip_ssl = on;
                } else {
                    a->skip_validate = on;
                    a->seen |= CLI_F_SKIP_VALIDATE;
                }
                continue;
            }
            if (strcmp(name, "roles") == 0) {
                if (!val) {
                    if (i + 1 >= argc) {
                        snprintf(err, errlen, "flag --roles needs a value");
                        return CLI_EUSAGE;
                    }
                    val = argv[++i];
                }
                if (a->nroles >= STS_ROLES_MAX) {
                    snprintf(err, errlen, "too many --roles (at most %d)",
                             STS_ROLES_MAX);
                    return CLI_EUSAGE;
                }
                a->roles[a->nroles++] = val;
                a->seen |= CLI_F_ROLES;
                continue;
            }
            for (k = 0; k < NFLAGS; k++) {
                if (strcmp(value_flags[k].lng, name) == 0) {
                    f = &value_flags[k];
                }
            }
            if (f == NULL) {
                snprintf(err, errlen, "unknown flag --%s", name);
                return CLI_EUSAGE;
            }
        }
        if (val == NULL) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "flag --%s needs a value", f->lng);
                return CLI_EUSAGE;
            }
            val = argv[++i];
        }
        if (cli_set(a, f, val, err, errlen) != 0) {
            return CLI_EUSAGE;
        }
    }
    if (a->output && strcmp(a->output, "json") != 0 &&
        strcmp(a->output, "text") != 0) {
        snprintf(err, errlen, "--output must be 'text' or 'json', not '%s'",
                 a->output);
        return CLI_EUSAGE;
    }
    return 0;
}

/* Splits and deduplicates the --roles values. */
int cli_collect_roles(const cli_args *a, char out[][STS_ROLE_MAX_LEN + 1],
                      int max, char *err, size_t errlen)
{
    int n = 0, i, j;

    for (i = 0; i < a->nroles; i++) {
        const char *p = a->roles[i];

        for (;;) {
            const char *c = strchr(p, ',');
            size_t len = c ? (size_t)(c - p) : strlen(p);
            size_t q;
            int dup = 0;

            while (len > 0 && *p == ' ') {
                p++;
                len--;
            }
            while (len > 0 && p[len - 1] == ' ') {
                len--;
            }
            if (len == 0 || len > STS_ROLE_MAX_LEN) {
                snprintf(err, errlen,
                         "invalid role in --roles '%.200s': each role is 1 "
                         "to %d characters",
                         a->roles[i], STS_ROLE_MAX_LEN);
                return -1;
            }
            for (q = 0; q < len; q++) {
                if (!sts_role_char(p[q])) {
                    snprintf(err, errlen,
                             "invalid role '%.*s': use " STS_ROLE_CHARS,
                             (int)(len > 200 ? 200 : len), p);
                    return -1;
                }
            }
            for (j = 0; j < n && !dup; j++) {
                dup = strlen(out[j]) == len && memcmp(out[j], p, len) == 0;
            }
            if (!dup) {
                if (n >= max) {
                    snprintf(err, errlen, "too many roles (at most %d)", max);
                    return -1;
                }
                memcpy(out[n], p, len);
                out[n][len] = '\0';
                n++;
            }
            if (!c) {
                break;
            }
            p = c + 1;
        }
    }
    return n;
}

/* Parses a strict yyyy-MM-dd date into epoch ms at 00:00 UTC. */
int cli_parse_date(const char *s, int64_t *ms)
{
    struct tm tm, back;
    time_t t;
    int i;

    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-') {
        return -1;
    }
    for (i = 0; i < 10; i++) {
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) {
            return -1;
        }
    }
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 +
                 (s[3] - '0') - 1900;
    tm.tm_mon = (s[5] - '0') * 10 + (s[6] - '0') - 1;
    tm.tm_mday = (s[8] - '0') * 10 + (s[9] - '0');
    if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1) {
        return -1;
    }
    back = tm; /* timegm normalises its argument: keep what was asked */
    t = timegm(&tm);
    if (t == (time_t)-1 || gmtime_r(&t, &tm) == NULL ||
        back.tm_mday != tm.tm_mday || back.tm_mon != tm.tm_mon) {
        return -1; /* e.g. 2027-02-30 */
    }
    *ms = (int64_t)t * 1000;
    return 0;
}

/* Formats epoch ms as yyyy-MM-dd in UTC. */
void cli_format_date(int64_t ms, char out[11])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms < 0 || gmtime_r(&t, &tm) == NULL) {
        out[0] = '\0';
        return;
    }
    strftime(out, 11, "%Y-%m-%d", &tm);
}

/* 1 when c is visible ASCII (no space, no control character). */
static int cli_visible(unsigned char c)
{
    return c > 0x20 && c < 0x7f;
}

/* Checks a server URL. */
int cli_check_url(const char *url, char *err, size_t errlen)
{
    size_t i, n = strlen(url), skip;

    if (strncasecmp(url, "https://", 8) == 0) {
        skip = 8;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        skip = 7;
    } else {
        snprintf(err, errlen,
                 "URL '%.200s' must start with \"https://\" or \"http://\"",
                 url);
        return -1;
    }
    if (n > CLI_MAX_URL) {
        snprintf(err, errlen, "the URL is longer than %d bytes", CLI_MAX_URL);
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (!cli_visible((unsigned char)url[i])) {
            snprintf(err, errlen,
                     "the URL contains a space or a control character");
            return -1;
        }
    }
    if (url[skip] == '\0' || url[skip] == '/') {
        snprintf(err, errlen, "URL '%.200s' has no host name", url);
        return -1;
    }
    if (strchr(url + skip, '@') != NULL) {
        /* user:password@ would end up in every error message. */
        snprintf(err, errlen,
                 "the URL must not contain a user name or password (use "
                 "--service-token)");
        return -1;
    }
    if (strpbrk(url + skip, "?#") != NULL) {
        snprintf(err, errlen, "the URL must not contain '?' or '#'");
        return -1;
    }
    return 0;
}

/* Checks a service token; the message never quotes it. */
int cli_check_token(const char *token, char *err, size_t errlen)
{
    size_t i, n = strlen(token);

    if (n == 0) {
        snprintf(err, errlen, "the service token is empty");
        return -1;
    }
    if (n > CLI_MAX_TOKEN) {
        snprintf(err, errlen, "the service token is longer than %d bytes",
                 CLI_MAX_TOKEN);
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (!cli_visible((unsigned char)token[i])) {
            snprintf(err, errlen,
                     "the service token contains a space, a control "
                     "character or a non-ASCII byte (at position %zu)",
                     i + 1);
            return -1;
        }
    }
    return 0;
}

/* Checks an API path. */
int cli_check_api_path(const char *path, char *err, size_t errlen)
{
    size_t i, n = strlen(path);

    if (n > CLI_MAX_API_PATH) {
        snprintf(err, errlen, "the API path is longer than %d bytes",
                 CLI_MAX_API_PATH);
        return -1;
    }
    if (n > 0 && path[0] != '/') {
        snprintf(err, errlen, "API path '%.200s' must start with '/'", path);
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (!cli_visible((unsigned char)path[i]) || path[i] == '?' ||
            path[i] == '#') {
            snprintf(err, errlen,
                     "API path '%.200s' may only hold visible ASCII without "
                     "'?' or '#'",
                     path);
            return -1;
        }
    }
    return 0;
}

/* Decodes one UTF-8 sequence at s; returns its length (0 when invalid)
 * and the code point in *cp. Overlong forms and surrogates are invalid. */
static size_t cli_utf8(const unsigned char *s, unsigned *cp)
{
    size_t n, i;
    unsigned c = s[0], min;

    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        n = 2, c &= 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3, c &= 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4, c &= 0x07, min = 0x10000;
    } else {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        return 0;
    }
    *cp = c;
    return n;
}

/* 1 for control characters: C0, DEL and C1. */
static int cli_control(unsigned cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp < 0xa0);
}

/* Checks a text value: valid UTF-8, no control characters, bounded. */
int cli_check_text(const char *what, const char *s, size_t max,
                   int may_be_empty, char *err, size_t errlen)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t chars = 0, n;
    unsigned cp;

    while (*p) {
        n = cli_utf8(p, &cp);
        if (n == 0) {
            snprintf(err, errlen, "%s is not valid UTF-8", what);
            return -1;
        }
        if (cli_control(cp)) {
            snprintf(err, errlen, "%s contains a control character", what);
            return -1;
        }
        p += n;
        chars++;
    }
    if (chars == 0 && !may_be_empty) {
        snprintf(err, errlen, "%s is empty", what);
        return -1;
    }
    if (chars > max) {
        snprintf(err, errlen, "%s is longer than %zu characters", what, max);
        return -1;
    }
    return 0;
}

/* Terminal columns of one code point (a small East Asian Width table). */
static int cli_cp_width(unsigned cp)
{
    if ((cp >= 0x300 && cp <= 0x36f) || (cp >= 0x200b && cp <= 0x200f) ||
        (cp >= 0xfe00 && cp <= 0xfe0f)) {
        return 0; /* combining marks, zero-width and variation selectors */
    }
    if ((cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) ||
        (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
        (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
        (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1f64f) ||
        (cp >= 0x1f900 && cp <= 0x1f9ff) || (cp >= 0x20000 && cp <= 0x3fffd)) {
        return 2;
    }
    return 1;
}

/* Terminal columns of a UTF-8 string. */
size_t cli_display_width(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t w = 0, n;
    unsigned cp;

    while (*p) {
        n = cli_utf8(p, &cp);
        if (n == 0) {
            w++, p++;
            continue;
        }
        w += (size_t)cli_cp_width(cp);
        p += n;
    }
    return w;
}

/* A copy of s safe for a terminal. */
char *cli_printable(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    char *out = malloc(strlen(s) + 1), *o = out;
    size_t n;
    unsigned cp;

    if (out == NULL) {
        return NULL;
    }
    while (*p) {
        n = cli_utf8(p, &cp);
        if (n == 0 || cli_control(cp)) {
            *o++ = '?';
            p += n ? n : 1;
            continue;
        }
        memcpy(o, p, n);
        o += n, p += n;
    }
    *o = '\0';
    return out;
}
