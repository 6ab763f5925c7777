/*
 * test_cli_table.c - what sts prints and sends: the table format (aligned
 * in terminal columns), terminal-safe text, the service-token list table
 * built from the API's JSON, and the create request body.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli.h"
#include "service_token.h"

/* The example table, byte for byte; headers only; bad shapes. */
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
    assert_null(cli_format_table(h, 0, NULL, 0));
    assert_null(cli_format_table(h, 17, NULL, 0));
}

/* Columns line up on a terminal with accented and wide characters. */
static void test_table_utf8(void **state)
{
    const char *h[] = {"A", "B"};
    const char *cells[] = {"caf\xc3\xa9", "x",     "\xe6\x97\xa5\xe6\x9c\xac",
                           "y",           "abcde", "z"};
    char *t;

    (void)state;
    assert_int_equal(cli_display_width("caf\xc3\xa9"), 4);
    assert_int_equal(cli_display_width("\xe6\x97\xa5\xe6\x9c\xac"), 4);
    assert_int_equal(cli_display_width("e\xcc\x81"), 1); /* combining */
    assert_int_equal(cli_display_width("\xff"), 1);
    assert_int_equal(cli_display_width(""), 0);
    t = cli_format_table(h, 2, cells, 3);
    assert_string_equal(t, "A     | B\n"
                           "caf\xc3\xa9  | x\n"
                           "\xe6\x97\xa5\xe6\x9c\xac  | y\n"
                           "abcde | z\n");
    free(t);
}

/* Control characters (C0, DEL, C1 such as CSI) and broken UTF-8 cannot
 * reach the terminal. */
static void test_printable(void **state)
{
    char *s;

    (void)state;
    s = cli_printable("ok \xc3\xa9\x1b[31mred\x7f\xc2\x9b\xff\n");
    assert_string_equal(s, "ok \xc3\xa9?[31mred????");
    free(s);
    s = cli_printable("");
    assert_string_equal(s, "");
    free(s);
}

/* The list: sorted by name then id, dates in UTC, roles as Go prints a
 * []string, names made safe, StackState's DEDICATED_SUBJECT column ("-"
 * when none), then LAST USED: "never", or the minute (UTC) and the client
 * address when the server gave one (made safe). */
static void test_tokens_table(void **state)
{
    json_t *list = json_loads(
        "[{\"id\": 9, \"name\": \"b\", \"roles\": [\"r1\", \"r2\"],"
        "  \"dedicatedSubject\": \"svc\", \"lastUpdateTimestamp\": 1,"
        "  \"lastUsedTimestamp\": 1764529199999},"
        " {\"id\": 3, \"name\": \"b\", \"roles\": [\"x\"],"
        "  \"expiration\": 1799971200000, \"lastUpdateTimestamp\": 1,"
        "  \"lastUsedTimestamp\": 1764525600000,"
        "  \"lastUsedFrom\": \"2001:db8::1\\u001b\"},"
        " {\"id\": 107484341630693, \"name\": \"a\\u001b[2J\","
        "  \"roles\": [], \"lastUpdateTimestamp\": 1}]",
        0, NULL);
    json_t *sorted, *empty;
    char *t;

    (void)state;
    assert_non_null(list);
    sorted = cli_sort_tokens(list);
    assert_non_null(sorted);
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(sorted, 1), "id")),
        3);
    t = cli_tokens_table(sorted);
    assert_string_equal(
        t, "ID              | NAME  | EXPIRATION | ROLES   | "
           "DEDICATED_SUBJECT | LAST USED\n"
           "107484341630693 | a?[2J |            | []      | "
           "-                 | never\n"
           "3               | b     | 2027-01-15 | [x]     | "
           "-                 | 2025-11-30 18:00 from 2001:db8::1?\n"
           "9               | b     |            | [r1 r2] | "
           "svc               | 2025-11-30 18:59\n");
    free(t);
    empty = json_array();
    t = cli_tokens_table(empty);
    assert_string_equal(t, "No service tokens found.\n");
    free(t);
    json_decref(empty);
    json_decref(sorted);
    json_decref(list);
    /* Not a list of objects: refused. */
    list = json_loads("{\"a\": 1}", 0, NULL);
    assert_null(cli_sort_tokens(list));
    json_decref(list);
    list = json_loads("[1]", 0, NULL);
    assert_null(cli_sort_tokens(list));
    json_decref(list);
    assert_null(cli_sort_tokens(NULL));
}

/* Parses words into a (NULL-terminated). */
static void parse(cli_args *a, ...)
{
    char *argv[32], err[256];
    int argc = 0;
    va_list ap;

    va_start(ap, a);
    while ((argv[argc] = va_arg(ap, char *)) != NULL) {
        argc++;
    }
    va_end(ap);
    assert_int_equal(cli_parse_args(argc, argv, a, err, sizeof(err)), 0);
}

/* The create body: the API's field names, roles split and deduplicated,
 * the expiration as 00:00 UTC in epoch ms; usage errors before sending. */
static void test_create_body(void **state)
{
    cli_args a;
    char err[256], *body;

    (void)state;
    parse(&a, "service-token", "create", "--name", "n", "--roles", "a,b",
          "--roles", "a", "--expiration", "2027-01-15", "--dedicatedSubject",
          "s", "--description", "d", NULL);
    assert_int_equal(cli_create_body(&a, &body, err, sizeof(err)), CLI_OK);
    assert_string_equal(body, "{\"name\":\"n\",\"roles\":[\"a\",\"b\"],"
                              "\"expiryDate\":1799971200000,"
                              "\"dedicatedSubject\":\"s\",\"description\":"
                              "\"d\"}");
    free(body);
    parse(&a, "service-token", "create", "-n", "n", "--roles", "r", NULL);
    assert_int_equal(cli_create_body(&a, &body, err, sizeof(err)), CLI_OK);
    assert_string_equal(body, "{\"name\":\"n\",\"roles\":[\"r\"]}");
    free(body);

    parse(&a, "service-token", "create", "--roles", "r", NULL);
    assert_int_equal(cli_create_body(&a, &body, err, sizeof(err)), CLI_EUSAGE);
    assert_non_null(strstr(err, "--name is required"));
    assert_null(body);
    parse(&a, "service-token", "create", "--name", "n", NULL);
    assert_int_equal(cli_create_body(&a, &body, err, sizeof(err)), CLI_EUSAGE);
    assert_non_null(strstr(err, "--roles is required"));
    parse(&a, "service-token", "create", "--name", "n", "--roles", "r",
          "--expiration", "2027-02-29", NULL);
    assert_int_equal(cli_create_body(&a, &body, err, sizeof(err)), CLI_EUSAGE);
    assert_non_null(strstr(err, "yyyy-MM-dd"));
    parse(&a, "service-token", "create", "--name", "bad\xff", "--roles", "r",
          NULL);
    assert_int_equal(cli_create_body(&a, &body, err, sizeof(err)), CLI_EUSAGE);
    assert_non_null(strstr(err, "UTF-8"));
    parse(&a, "service-token", "create", "--name", "BootStrap", "--roles", "r",
          NULL);
    assert_int_equal(cli_create_body(&a, &body, err, sizeof(err)), CLI_EUSAGE);
    assert_non_null(strstr(err, "--name 'BootStrap' is reserved"));
    parse(&a, "service-token", "create", "--name",
          "a\xe2\x80\xae"
          "z",
          "--roles", "r", NULL);
    assert_int_equal(cli_create_body(&a, &body, err, sizeof(err)), CLI_EUSAGE);
    assert_non_null(strstr(err, "U+202E"));
    parse(&a, "service-token", "create", "--name", "n", "--roles", "r",
          "--dedicatedSubject", "", NULL);
    assert_int_equal(cli_create_body(&a, &body, err, sizeof(err)), CLI_EUSAGE);
    parse(&a, "service-token", "create", "--name", "n", "--roles", "r",
          "--description", "tab\there", NULL);
    assert_int_equal(cli_create_body(&a, &body, err, sizeof(err)), CLI_EUSAGE);
}

/* Runs the tests of this file. */
/* The rotate body: empty without flags, gracePeriodSeconds and expiryDate
 * otherwise; usage errors before sending. */
static void test_rotate_body(void **state)
{
    cli_args a;
    char err[256], *body;

    (void)state;
    parse(&a, "service-token", "rotate", "--id", "5", NULL);
    assert_int_equal(cli_rotate_body(&a, &body, err, sizeof(err)), CLI_OK);
    assert_string_equal(body, "");
    free(body);
    parse(&a, "service-token", "rotate", "5", "--grace-period", "0",
          "--expiration", "2027-01-15", NULL);
    assert_int_equal(cli_rotate_body(&a, &body, err, sizeof(err)), CLI_OK);
    assert_string_equal(body, "{\"gracePeriodSeconds\":0,"
                              "\"expiryDate\":1799971200000}");
    free(body);
    parse(&a, "service-token", "rotate", "5", "--grace-period", "3600", NULL);
    assert_int_equal(cli_rotate_body(&a, &body, err, sizeof(err)), CLI_OK);
    assert_string_equal(body, "{\"gracePeriodSeconds\":3600}");
    free(body);
    parse(&a, "service-token", "rotate", "5", "--grace-period", "-1", NULL);
    assert_int_equal(cli_rotate_body(&a, &body, err, sizeof(err)), CLI_EUSAGE);
    assert_non_null(strstr(err, "--grace-period '-1'"));
    assert_null(body);
    parse(&a, "service-token", "rotate", "5", "--grace-period", "1h", NULL);
    assert_int_equal(cli_rotate_body(&a, &body, err, sizeof(err)), CLI_EUSAGE);
    parse(&a, "service-token", "rotate", "5", "--expiration", "tomorrow", NULL);
    assert_int_equal(cli_rotate_body(&a, &body, err, sizeof(err)), CLI_EUSAGE);
    assert_non_null(strstr(err, "yyyy-MM-dd"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),       cmocka_unit_test(test_table_utf8),
        cmocka_unit_test(test_printable),   cmocka_unit_test(test_tokens_table),
        cmocka_unit_test(test_create_body), cmocka_unit_test(test_rotate_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
