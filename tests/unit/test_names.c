/*
 * test_names.c - the token name rule (src/names.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api_json.h"
#include "names.h"

/* Asserts that name is refused with a message containing want. */
static void assert_refused(const char *name, const char *want)
{
    char err[256];

    assert_int_equal(sts_token_name_check("'name'", name, err, sizeof(err)),
                     -1);
    if (strstr(err, want) == NULL) {
        fail_msg("'%s' not in '%s'", want, err);
    }
    assert_non_null(strstr(err, "'name'"));
}

/* Ordinary names, any script, emoji, up to the limit. */
static void test_accepted(void **state)
{
    static const char *ok[] = {
        "ci-pipeline",
        "Ops bot 2",
        "bootstrap-ci",
        "my bootstrap",
        "caf\xc3\xa9",                      /* café */
        "\xe6\x97\xa5\xe6\x9c\xac",         /* 日本 */
        "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d", /* Hebrew (right-to-left) */
        "\xf0\x9f\x9a\x80",                 /* U+1F680 */
    };
    char big[STS_API_MAX_NAME + 1], err[256];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(
            sts_token_name_check("'name'", ok[i], err, sizeof(err)), 0);
    }
    memset(big, 'n', STS_API_MAX_NAME);
    big[STS_API_MAX_NAME] = '\0';
    assert_int_equal(sts_token_name_check("'name'", big, err, sizeof(err)), 0);
}

/* The bootstrap identity's name, in any letter case. */
static void test_bootstrap_reserved(void **state)
{
    (void)state;
    assert_refused("bootstrap", "reserved");
    assert_refused("Bootstrap", "reserved");
    assert_refused("BOOTSTRAP", "reserved");
}

/* Controls, format characters (Cf) and line/paragraph separators. */
static void test_invisible_refused(void **state)
{
    (void)state;
    assert_refused("a\x01z", "U+0001");
    assert_refused("a\x7fz", "U+007F");
    assert_refused("a\xc2\x85z", "U+0085");
    assert_refused("admin\xe2\x80\xaeslm",
                   "U+202E");                      /* RIGHT-TO-LEFT OVERRIDE */
    assert_refused("ad\xe2\x80\x8bmin", "U+200B"); /* ZERO WIDTH SPACE */
    assert_refused("a\xe2\x80\xa8z", "U+2028");    /* LINE SEPARATOR */
    assert_refused("a\xe2\x80\xa9z", "U+2029");    /* PARAGRAPH SEPARATOR */
    assert_refused("\xef\xbb\xbf"
                   "bootstrap",
                   "U+FEFF");
    assert_refused("a\xc2\xadz", "U+00AD");          /* SOFT HYPHEN */
    assert_refused("a\xe2\x81\xa6z", "U+2066");      /* LRI */
    assert_refused("a\xf3\xa0\x80\x81z", "U+E0001"); /* LANGUAGE TAG */
    assert_refused("a\xf0\x93\x90\xbfz", "U+1343F"); /* Unicode 15 Cf */
}

/* Not UTF-8, empty, too long. */
static void test_malformed(void **state)
{
    char big[STS_API_MAX_NAME + 2];

    (void)state;
    assert_refused("bad\xff", "UTF-8");
    assert_refused("\xc0\xaf", "UTF-8");         /* overlong '/' */
    assert_refused("\xed\xa0\x80", "UTF-8");     /* surrogate */
    assert_refused("\xf4\x90\x80\x80", "UTF-8"); /* beyond U+10FFFF */
    assert_refused("\xe2\x80", "UTF-8");         /* truncated */
    assert_refused("", "empty");
    memset(big, 'n', STS_API_MAX_NAME + 1);
    big[STS_API_MAX_NAME + 1] = '\0';
    assert_refused(big, "longer than 255");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_bootstrap_reserved),
        cmocka_unit_test(test_invisible_refused),
        cmocka_unit_test(test_malformed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
