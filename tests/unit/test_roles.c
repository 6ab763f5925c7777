/*
 * test_roles.c - the rule for role names (src/roles.h), which the module's
 * directives, the API and the CLI all call.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "roles.h"

static int valid(const char *s)
{
    return sts_role_valid(s, strlen(s));
}

static void test_accepts_the_documented_characters(void **state)
{
    (void)state;
    assert_true(valid("ops"));
    assert_true(valid("a"));
    assert_true(valid("Team.Dev_01:read@eu-west"));
    assert_true(valid("0123456789"));
}

static void test_refuses_everything_else(void **state)
{
    static const char *bad[] = {"",          "a,b", "a b",  "a/b", "a\tb",
                                "r\xc3\xa9", "a;b", "a*",   "a+b", "(a)",
                                "a\"b",      "a'b", "a\\b", "a=b", "~a"};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(valid(bad[i]));
    }
}

static void test_length_bounds(void **state)
{
    char s[STS_ROLE_MAX_LEN + 2];

    (void)state;
    memset(s, 'x', sizeof(s));
    assert_true(sts_role_valid(s, STS_ROLE_MAX_LEN));
    assert_false(sts_role_valid(s, STS_ROLE_MAX_LEN + 1));
    assert_false(sts_role_valid(s, 0));
}

static void test_len_is_honoured_not_nul(void **state)
{
    (void)state;
    /* An embedded NUL (JSON allows "\u0000") is not a role character. */
    assert_false(sts_role_valid("ab\0cd", 5));
    assert_true(sts_role_valid("ab,cd", 2));
}

static void test_char_matches_valid(void **state)
{
    int c;

    (void)state;
    for (c = 0; c < 256; c++) {
        char s[1] = {(char)c};

        assert_int_equal(sts_role_char((char)c), sts_role_valid(s, 1));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_the_documented_characters),
        cmocka_unit_test(test_refuses_everything_else),
        cmocka_unit_test(test_length_bounds),
        cmocka_unit_test(test_len_is_honoured_not_nul),
        cmocka_unit_test(test_char_matches_valid),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
