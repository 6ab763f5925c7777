/*
 * args.c - command-line parsing for sts (no network, no files: unit-tested).
 */
#include "cli.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Flags that take a value: long name, short name, where it goes. */
typedef struct {
    const char *lng;
    char shrt;
    size_t off;
} cli_value_flag;

#define OFF(f) offsetof(cli_args, f)

static const cli_value_flag value_flags[] = {
    {"url", 0, OFF(url)},
    {"service-token", 0, OFF(service_token)},
    {"context", 0, OFF(context)},
    {"api-path", 0, OFF(api_path)},
    {"output", 'o', OFF(output)},
    {"config", 0, OFF(config)},
    {"ca-cert-path", 0, OFF(ca_cert_path)},
    {"name", 'n', OFF(name)},
    {"expiration", 0, OFF(expiration)},
    {"dedicatedSubject", 0, OFF(dedicated_subject)},
    {"description", 0, OFF(description)},
    {"id", 'i', OFF(id)},
};

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
            /* -o json, -n NAME, -i ID, -h */
            if (arg[2] != '\0') {
                snprintf(err, errlen, "unknown flag %s", arg);
                return CLI_EUSAGE;
            }
            if (arg[1] == 'h') {
                a->help = 1;
                continue;
            }
            for (k = 0; k < sizeof(value_flags) / sizeof(value_flags[0]); k++) {
                if (value_flags[k].shrt == arg[1]) {
                    f = &value_flags[k];
                }
            }
            if (f == NULL) {
                snprintf(err, errlen, "unknown flag %s", arg);
                return CLI_EUSAGE;
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
            if ((strcmp(name, "no-color") == 0 ||
                 strcmp(name, "skip-ssl") == 0 ||
                 strcmp(name, "skip-validate") == 0) &&
                !val) {
                int *b = name[1] == 'o'   ? &a->no_color
                         : name[5] == 's' ? &a->skip_ssl
                                          : &a->skip_validate;
                *b = 1;
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
                if (a->nroles >= CLI_MAX_ROLES) {
                    snprintf(err, errlen, "too many --roles (at most %d)",
                             CLI_MAX_ROLES);
                    return CLI_EUSAGE;
                }
                a->roles[a->nroles++] = val;
                continue;
            }
            for (k = 0; k < sizeof(value_flags) / sizeof(value_flags[0]); k++) {
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

/* 1 when c may appear in a role name. */
static int cli_role_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || (c && strchr("._:@-", c));
}

/* Splits and deduplicates the --roles values. */
int cli_collect_roles(const cli_args *a, char out[][129], int max, char *err,
                      size_t errlen)
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
            if (len == 0 || len > 128) {
                snprintf(err, errlen,
                         "invalid role in --roles '%s': each role is 1 to "
                         "128 characters",
                         a->roles[i]);
                return -1;
            }
            for (q = 0; q < len; q++) {
                if (!cli_role_char(p[q])) {
                    snprintf(err, errlen,
                             "invalid role '%.*s': use A-Z a-z 0-9 . _ : @ -",
                             (int)len, p);
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
