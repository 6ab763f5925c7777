/*
 * test_credentials.c - reading the token from Authorization / X-API-Key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "credentials.h"

#define TOK "svctok-q1xxzs6jtrx2qbw191pdrzhj8g7yp7tj0y0x8rb"

/* Parses with an optional single X-API-Key value. */
static sts_cred_status parse(const char *authz, const char *key,
                             sts_credential *c)
{
    const char *keys[1] = {key};

    return sts_credentials_parse(authz, keys, key ? 1 : 0, c);
}

/* Asserts an OK parse yielding TOK. */
static void assert_tok(sts_cred_status st, const sts_credential *c)
{
    assert_int_equal(st, STS_CRED_OK);
    assert_int_equal(c->len, strlen(TOK));
    assert_memory_equal(c->token, TOK, strlen(TOK));
}

/* The Authorization forms StackState accepts. */
static void test_authorization_forms(void **state)
{
    static const char *forms[] = {
        "ApiKey " TOK,  "apikey " TOK,      "APIKEY " TOK,
        "ApiKey\t" TOK, "ApiKey  \t  " TOK, "  ApiKey " TOK "  ",
    };
    sts_credential c;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        assert_tok(parse(forms[i], NULL, &c), &c);
        assert_true(c.from_authorization);
        assert_false(c.from_api_key);
    }
    assert_true(sts_authorization_is_apikey("apiKEY x"));
    assert_false(sts_authorization_is_apikey("Basic x"));
}

/* X-API-Key alone, and both forms carrying the same token. */
static void test_api_key_and_both(void **state)
{
    sts_credential c;

    (void)state;
    assert_tok(parse(NULL, TOK, &c), &c);
    assert_true(c.from_api_key);
    assert_tok(parse(NULL, " " TOK "\t", &c), &c);
    assert_tok(parse("ApiKey " TOK, TOK, &c), &c);
    assert_true(c.from_api_key && c.from_authorization);
}

/* Other schemes and no headers are "no credentials". */
static void test_none(void **state)
{
    sts_credential c;

    (void)state;
    assert_int_equal(parse(NULL, NULL, &c), STS_CRED_NONE);
    assert_int_equal(parse("Basic dXNlcjpwYXNz", NULL, &c), STS_CRED_NONE);
    assert_int_equal(parse("Bearer abc", NULL, &c), STS_CRED_NONE);
    assert_int_equal(parse("ApiKeyX abc", NULL, &c), STS_CRED_NONE);
    assert_int_equal(parse("", NULL, &c), STS_CRED_NONE);
    /* Another scheme plus X-API-Key: the key counts. */
    assert_tok(parse("Bearer abc", TOK, &c), &c);
}

/* Every malformed case is BAD with a reason that never quotes the token. */
static void test_bad(void **state)
{
    char big[600];
    const char *keys[2] = {TOK, TOK};
    sts_credential c;

    (void)state;
    assert_int_equal(parse("ApiKey", NULL, &c), STS_CRED_BAD);
    assert_string_equal(c.reason, "empty token");
    assert_int_equal(parse("ApiKey   ", NULL, &c), STS_CRED_BAD);
    assert_int_equal(parse(NULL, "", &c), STS_CRED_BAD);
    assert_int_equal(parse(NULL, "  ", &c), STS_CRED_BAD);
    assert_int_equal(parse("ApiKey a b", NULL, &c), STS_CRED_BAD);
    assert_int_equal(parse(NULL,
                           "a\x01"
                           "b",
                           &c),
                     STS_CRED_BAD);
    assert_int_equal(parse(NULL,
                           "a\x7f"
                           "b",
                           &c),
                     STS_CRED_BAD);
    assert_int_equal(parse(NULL, "caf\xc3\xa9", &c), STS_CRED_BAD);
    assert_int_equal(parse("ApiKey " TOK, "svctok-other", &c), STS_CRED_BAD);
    assert_string_equal(c.reason,
                        "Authorization and X-API-Key carry different tokens");
    assert_null(strstr(c.reason, "svctok"));
    assert_int_equal(sts_credentials_parse(NULL, keys, 2, &c), STS_CRED_BAD);
    assert_string_equal(c.reason, "X-API-Key header repeated");
    assert_int_equal(parse(NULL, TOK ", " TOK, &c), STS_CRED_BAD);
    assert_string_equal(c.reason, "X-API-Key header repeated");
    assert_int_equal(parse("ApiKey a, ApiKey b", NULL, &c), STS_CRED_BAD);
    assert_string_equal(c.reason, "Authorization header repeated");
    /* A bad Authorization wins even when X-API-Key is fine. */
    assert_int_equal(parse("ApiKey ", TOK, &c), STS_CRED_BAD);
    memset(big, 'a', sizeof(big));
    big[512] = '\0';
    assert_int_equal(parse(NULL, big, &c), STS_CRED_OK);
    big[512] = 'a';
    big[513] = '\0';
    assert_int_equal(parse(NULL, big, &c), STS_CRED_BAD);
    assert_string_equal(c.reason, "token longer than 512 bytes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_authorization_forms),
        cmocka_unit_test(test_api_key_and_both),
        cmocka_unit_test(test_none),
        cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
