/*
 * test_cli_args.c - the sts CLI's argument parsing, flags per command,
 * roles, dates and the checks of URLs, tokens, API paths and names.
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
#include "http.h"

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
    char out[STS_ROLES_MAX][STS_ROLE_MAX_LEN + 1], err[256];
    cli_args a;

    (void)state;
    assert_int_equal(
        parse(&a, err, "--roles", "a,b", "--roles", " c , a", NULL), 0);
    assert_int_equal(cli_collect_roles(&a, out, STS_ROLES_MAX, err, 256), 3);
    assert_string_equal(out[0], "a");
    assert_string_equal(out[2], "c");
    assert_int_equal(parse(&a, err, "--roles", "a,,b", NULL), 0);
    assert_int_equal(cli_collect_roles(&a, out, STS_ROLES_MAX, err, 256), -1);
    assert_int_equal(parse(&a, err, "--roles", "a b", NULL), 0);
    assert_int_equal(cli_collect_roles(&a, out, STS_ROLES_MAX, err, 256), -1);
    assert_int_equal(parse(&a, err, "--roles", "a,b,c", NULL), 0);
    assert_int_equal(cli_collect_roles(&a, out, 2, err, 256), -1);
    assert_non_null(strstr(err, "too many roles"));
    {
        char r[STS_ROLE_MAX_LEN + 2];

        memset(r, 'r', sizeof(r));
        r[STS_ROLE_MAX_LEN] = '\0';
        assert_int_equal(parse(&a, err, "--roles", r, NULL), 0);
        assert_int_equal(cli_collect_roles(&a, out, STS_ROLES_MAX, err, 256),
                         1);
        r[STS_ROLE_MAX_LEN] = 'r';
        r[STS_ROLE_MAX_LEN + 1] = '\0';
        assert_int_equal(parse(&a, err, "--roles", r, NULL), 0);
        assert_int_equal(cli_collect_roles(&a, out, STS_ROLES_MAX, err, 256),
                         -1);
    }
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
    assert_int_equal(cli_parse_date("1969-12-31", &ms), -1);
    assert_int_equal(cli_parse_date("2027-04-31", &ms), -1);
    assert_int_equal(cli_parse_date("2027-00-10", &ms), -1);
    assert_int_equal(cli_parse_date("2027-01-00", &ms), -1);
    assert_int_equal(cli_parse_date("+027-01-15", &ms), -1);
    assert_int_equal(cli_parse_date("2027-01-1 ", &ms), -1);
    assert_int_equal(cli_parse_date("9999-12-31", &ms), 0);
    assert_int_equal(ms, INT64_C(253402214400000));
    assert_int_equal(cli_parse_date("1970-01-01", &ms), 0);
    assert_int_equal(ms, 0);
    cli_format_date(-1, out);
    assert_string_equal(out, "");
}

/* Each command refuses the flags it does not take, naming one. */
static void test_unexpected_flags(void **state)
{
    cli_args a;
    char err[256];

    (void)state;
    assert_int_equal(parse(&a, err, "service-token", "list", "--id", "5",
                           "--roles", "r", NULL),
                     0);
    assert_int_equal(a.seen, CLI_F_ID | CLI_F_ROLES);
    assert_string_equal(cli_unexpected_flag(a.seen, 0), "roles");
    assert_string_equal(cli_unexpected_flag(a.seen, CLI_F_ROLES), "id");
    assert_null(cli_unexpected_flag(a.seen, CLI_F_ID | CLI_F_ROLES));
    assert_int_equal(parse(&a, err, "context", "save", "--skip-validate",
                           "--url", "u", "-n", "x", NULL),
                     0);
    assert_int_equal(a.seen, CLI_F_SKIP_VALIDATE | CLI_F_NAME);
    assert_true(a.skip_validate);
    /* Global flags are never "unexpected". */
    assert_int_equal(parse(&a, err, "x", "--url", "u", "--service-token", "t",
                           "--context", "c", "--api-path", "/a", "--skip-ssl",
                           "--ca-cert-path", "f", NULL),
                     0);
    assert_int_equal(a.seen, 0);
    assert_true(a.skip_ssl);
    /* Boolean flags: bare, =true, =false; anything else is refused. */
    assert_int_equal(
        parse(&a, err, "x", "--no-color=true", "--skip-ssl=false", NULL), 0);
    assert_true(a.no_color);
    assert_false(a.skip_ssl);
    assert_int_equal(parse(&a, err, "x", "--skip-ssl=yes", NULL), CLI_EUSAGE);
    assert_non_null(strstr(err, "=true or =false"));
}

/* Short flags with attached values; an unknown one is named by its letter
 * only (the rest may be a pasted secret). */
static void test_short_flags(void **state)
{
    cli_args a;
    char err[256];

    (void)state;
    assert_int_equal(parse(&a, err, "x", "-ojson", "-nname", "-i7", NULL), 0);
    assert_string_equal(a.output, "json");
    assert_string_equal(a.name, "name");
    assert_string_equal(a.id, "7");
    assert_int_equal(parse(&a, err, "x", "-Zsvctok-secret", NULL), CLI_EUSAGE);
    assert_null(strstr(err, "secret"));
    assert_non_null(strstr(err, "-Z"));
    assert_int_equal(parse(&a, err, "x", "--servce-token=svctok-secret", NULL),
                     CLI_EUSAGE);
    assert_null(strstr(err, "secret"));
    assert_non_null(strstr(err, "--servce-token"));
    assert_int_equal(parse(&a, err, "a", "b", "c", "d", "e", "f", "g", NULL),
                     CLI_EUSAGE);
}

/* URL, token and API path checks; the token is never quoted. */
static void test_checks(void **state)
{
    char err[256], big[CLI_MAX_URL + 2];

    (void)state;
    assert_int_equal(cli_check_url("https://sts.example.com", err, 256), 0);
    assert_int_equal(cli_check_url("HTTP://127.0.0.1:8080/", err, 256), 0);
    assert_int_equal(cli_check_url("ftp://h", err, 256), -1);
    assert_non_null(strstr(err, "must start with"));
    assert_int_equal(cli_check_url("sts.example.com", err, 256), -1);
    assert_int_equal(cli_check_url("https://", err, 256), -1);
    assert_int_equal(cli_check_url("https://a b", err, 256), -1);
    assert_int_equal(cli_check_url("https://h\r\nX: y", err, 256), -1);
    assert_int_equal(cli_check_url("https://u:pw@h", err, 256), -1);
    assert_null(strstr(err, "pw"));
    assert_int_equal(cli_check_url("https://h/?q", err, 256), -1);
    memset(big, 'a', sizeof(big) - 1);
    memcpy(big, "http://", 7);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(cli_check_url(big, err, 256), -1);

    assert_int_equal(cli_check_token("svctok-abc", err, 256), 0);
    assert_int_equal(cli_check_token("", err, 256), -1);
    assert_int_equal(cli_check_token("svctok-abc\r\nX-Evil: 1", err, 256), -1);
    assert_null(strstr(err, "svctok"));
    assert_int_equal(cli_check_token("a b", err, 256), -1);
    assert_int_equal(cli_check_token("caf\xc3\xa9", err, 256), -1);
    {
        char tok[CLI_MAX_TOKEN + 2];

        memset(tok, 'x', sizeof(tok));
        tok[CLI_MAX_TOKEN] = '\0';
        assert_int_equal(cli_check_token(tok, err, 256), 0);
        tok[CLI_MAX_TOKEN] = 'x';
        tok[CLI_MAX_TOKEN + 1] = '\0';
        assert_int_equal(cli_check_token(tok, err, 256), -1);
    }

    assert_int_equal(cli_check_api_path("/api", err, 256), 0);
    assert_int_equal(cli_check_api_path("", err, 256), 0);
    assert_int_equal(cli_check_api_path("api", err, 256), -1);
    assert_int_equal(cli_check_api_path("/api?x=1", err, 256), -1);
    assert_int_equal(cli_check_api_path("/a pi", err, 256), -1);
}

/* Names and descriptions: UTF-8, no control characters, bounded. */
static void test_text(void **state)
{
    char err[256], s[300];

    (void)state;
    assert_int_equal(cli_check_text("--name", "caf\xc3\xa9", 4, 0, err, 256),
                     0);
    assert_int_equal(cli_check_text("--name", "caf\xc3\xa9!", 4, 0, err, 256),
                     -1);
    assert_non_null(strstr(err, "longer than 4"));
    assert_int_equal(cli_check_text("--name", "", 4, 0, err, 256), -1);
    assert_int_equal(cli_check_text("--description", "", 4, 1, err, 256), 0);
    assert_int_equal(cli_check_text("--name", "a\tb", 9, 0, err, 256), -1);
    assert_int_equal(cli_check_text("--name", "a\xc2\x9b", 9, 0, err, 256),
                     -1); /* C1 CSI */
    assert_int_equal(cli_check_text("--name", "\xff", 9, 0, err, 256), -1);
    assert_int_equal(cli_check_text("--name", "\xc0\xaf", 9, 0, err, 256),
                     -1); /* overlong */
    assert_int_equal(cli_check_text("--name", "\xed\xa0\x80", 9, 0, err, 256),
                     -1); /* surrogate */
    memset(s, 'n', 255);
    s[255] = '\0';
    assert_int_equal(cli_check_text("--name", s, 255, 0, err, 256), 0);
    s[255] = 'n';
    s[256] = '\0';
    assert_int_equal(cli_check_text("--name", s, 255, 0, err, 256), -1);
}

/* Request URLs: base URL + API path + route, slashes normalised. */
static void test_urls(void **state)
{
    cli_target t = {"http://h:1/", "secret-x", "/api/", NULL, NULL, 0, 0};
    char out[128];

    (void)state;
    cli_http_url(&t, "/server/info", out, sizeof(out));
    assert_string_equal(out, "http://h:1/api/server/info");
    t.url = "https://h";
    t.api_path = "";
    cli_http_url(&t, "/security/tokens", out, sizeof(out));
    assert_string_equal(out, "https://h/security/tokens");
    t.api_path = "/a/b";
    cli_http_url(&t, "/security/tokens/5", out, sizeof(out));
    assert_string_equal(out, "https://h/a/b/security/tokens/5");
    assert_null(strstr(out, "secret"));
}

/* Runs the tests of this file. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_unexpected_flags),
        cmocka_unit_test(test_short_flags),
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
