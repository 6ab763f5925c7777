/*
 * test_cli.c - the sts CLI's argument parsing, dates, roles, table format
 * and config file read/write.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"

/* Parses a NULL-terminated list of words. */
static int parse(cli_args *a, char *err, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;

    va_start(ap, err);
    while ((argv[argc] = va_arg(ap, char *)) != NULL) {
        argc++;
    }
    va_end(ap);
    return cli_parse_args(argc, argv, a, err, 256);
}

/* Commands, flags in both spellings, repeated roles, positionals. */
static void test_args(void **state)
{
    cli_args a;
    char err[256];

    (void)state;
    assert_int_equal(parse(&a, err, "service-token", "create", "-n", "x",
                           "--roles", "a,b", "--roles=c", "--expiration",
                           "2027-01-15", "-o", "json", "--no-color",
                           "--url=http://h", NULL),
                     0);
    assert_int_equal(a.nwords, 2);
    assert_string_equal(a.words[1], "create");
    assert_string_equal(a.name, "x");
    assert_int_equal(a.nroles, 2);
    assert_string_equal(a.roles[1], "c");
    assert_string_equal(a.output, "json");
    assert_true(a.no_color);
    assert_string_equal(a.url, "http://h");
    assert_int_equal(parse(&a, err, "service-token", "delete", "123", NULL), 0);
    assert_int_equal(a.npositional, 1);
    assert_string_equal(a.positional[0], "123");
    assert_int_equal(
        parse(&a, err, "service-token", "delete", "--", "-5", NULL), 0);
    assert_string_equal(a.positional[0], "-5");
    assert_int_equal(parse(&a, err, "context", "--help", NULL), 0);
    assert_true(a.help);
    assert_int_equal(parse(&a, err, "x", "--bogus", NULL), CLI_EUSAGE);
    assert_non_null(strstr(err, "unknown flag --bogus"));
    assert_int_equal(parse(&a, err, "x", "--name", NULL), CLI_EUSAGE);
    assert_non_null(strstr(err, "needs a value"));
    assert_int_equal(parse(&a, err, "x", "-n", "a", "--name", "b", NULL),
                     CLI_EUSAGE);
    assert_int_equal(parse(&a, err, "x", "-o", "yaml", NULL), CLI_EUSAGE);
    assert_int_equal(parse(&a, err, "x", "-z", NULL), CLI_EUSAGE);
}

/* Roles: comma lists, repeats, dedupe, validation. */
static void test_roles(void **state)
{
    char out[CLI_MAX_ROLES][129], err[256];
    cli_args a;

    (void)state;
    assert_int_equal(
        parse(&a, err, "--roles", "a,b", "--roles", " c , a", NULL), 0);
    assert_int_equal(cli_collect_roles(&a, out, CLI_MAX_ROLES, err, 256), 3);
    assert_string_equal(out[0], "a");
    assert_string_equal(out[2], "c");
    assert_int_equal(parse(&a, err, "--roles", "a,,b", NULL), 0);
    assert_int_equal(cli_collect_roles(&a, out, CLI_MAX_ROLES, err, 256), -1);
    assert_int_equal(parse(&a, err, "--roles", "a b", NULL), 0);
    assert_int_equal(cli_collect_roles(&a, out, CLI_MAX_ROLES, err, 256), -1);
}

/* Dates: strict yyyy-MM-dd, real days, 00:00 UTC. */
static void test_dates(void **state)
{
    int64_t ms;
    char out[11];

    (void)state;
    assert_int_equal(cli_parse_date("2027-01-15", &ms), 0);
    assert_int_equal(ms, INT64_C(1799971200000));
    cli_format_date(ms, out);
    assert_string_equal(out, "2027-01-15");
    assert_int_equal(cli_parse_date("2028-02-29", &ms), 0);
    assert_int_equal(cli_parse_date("2027-02-29", &ms), -1);
    assert_int_equal(cli_parse_date("2027-13-01", &ms), -1);
    assert_int_equal(cli_parse_date("2027-1-15", &ms), -1);
    assert_int_equal(cli_parse_date("2027/01/15", &ms), -1);
    assert_int_equal(cli_parse_date("2027-01-15T00", &ms), -1);
    assert_int_equal(cli_parse_date("", &ms), -1);
}

/* The list table: aligned, " | ", no trailing spaces. */
static void test_table(void **state)
{
    const char *h[] = {"ID", "NAME", "EXPIRATION", "ROLES"};
    const char *cells[] = {"107484341630693", "my-service-token", "",
                           "[stackstate-k8s-troubleshooter]"};
    char *t;

    (void)state;
    t = cli_format_table(h, 4, cells, 1);
    assert_string_equal(t, "ID              | NAME             | EXPIRATION | "
                           "ROLES\n"
                           "107484341630693 | my-service-token |            | "
                           "[stackstate-k8s-troubleshooter]\n");
    free(t);
    t = cli_format_table(h, 2, NULL, 0);
    assert_string_equal(t, "ID | NAME\n");
    free(t);
}

/* Config: StackState's format round-trips, file mode 0600. */
static void test_config_roundtrip(void **state)
{
    char dir[] = "/tmp/sts-cli-test-XXXXXX", path[512], err[512];
    cli_config c, back;
    struct stat st;
    int exists;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/a/b/config.yaml", dir);
    assert_int_equal(cli_config_load(path, &c, &exists, err, 512), 0);
    assert_int_equal(exists, 0);
    assert_int_equal(c.ncontexts, 0);
    strcpy(c.contexts[0].name, "prod");
    strcpy(c.contexts[0].url, "https://x: y");
    strcpy(c.contexts[0].service_token, "svctok-\"quoted\"");
    c.ncontexts = 1;
    strcpy(c.current, "prod");
    assert_int_equal(cli_config_save(path, &c, err, 512), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(cli_config_load(path, &back, &exists, err, 512), 0);
    assert_int_equal(exists, 1);
    assert_int_equal(back.ncontexts, 1);
    assert_string_equal(back.contexts[0].url, "https://x: y");
    assert_string_equal(back.contexts[0].service_token, "svctok-\"quoted\"");
    assert_string_equal(back.contexts[0].api_path, "/api");
    assert_string_equal(back.current, "prod");
    unlink(path);
}

/* Config written by StackState's CLI (extra keys are ignored). */
static void test_config_stackstate(void **state)
{
    static const char y[] = "contexts:\n"
                            "- name: default\n"
                            "  context:\n"
                            "    url: https://sts.example.com\n"
                            "    service-token: abc\n"
                            "    api-path: /api\n"
                            "    admin-api-path: /admin\n"
                            "- name: other\n"
                            "  context: {url: 'http://o', api-token: z}\n"
                            "current-context: default\n"
                            "extra: [1, 2]\n";
    cli_config c;
    char err[256];

    (void)state;
    assert_int_equal(cli_config_parse(y, strlen(y), &c, err, 256), 0);
    assert_int_equal(c.ncontexts, 2);
    assert_string_equal(c.contexts[0].service_token, "abc");
    assert_string_equal(c.contexts[1].url, "http://o");
    assert_string_equal(c.contexts[1].service_token, "");
    assert_non_null(cli_config_find(&c, "other"));
    assert_null(cli_config_find(&c, "none"));
    assert_int_equal(cli_config_parse("", 0, &c, err, 256), 0);
    assert_int_equal(cli_config_parse("[1]", 3, &c, err, 256), -1);
    assert_int_equal(cli_config_parse("contexts: [1]", 13, &c, err, 256), -1);
    assert_int_equal(cli_config_parse("a: [", 4, &c, err, 256), -1);
    assert_non_null(strstr(err, "invalid YAML"));
    assert_int_equal(
        cli_config_parse("contexts:\n- context: {url: x}\n", 29, &c, err, 256),
        -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_config_roundtrip),
        cmocka_unit_test(test_config_stackstate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
