/*
 * test_credentials.c - reading the token from Authorization / X-API-Key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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
    /* An ApiKey credential anywhere in a joined Authorization list: the
     * request could be taken for either token (X-API-Key or not). */
    assert_int_equal(parse("Basic x, ApiKey " TOK, NULL, &c), STS_CRED_BAD);
    assert_int_equal(parse("Basic x, ApiKey b", TOK, &c), STS_CRED_BAD);
    assert_null(strstr(c.reason, "svctok"));
    assert_int_equal(parse("Basic x,apikey\tb", TOK, &c), STS_CRED_BAD);
    assert_int_equal(parse("Bearer a, Basic b, ApiKey", TOK, &c), STS_CRED_BAD);
    /* Other schemes' lists are not ours to judge. */
    assert_tok(parse("Basic x, Bearer y", TOK, &c), &c);
    assert_tok(parse("Digest a=\"1\", apikey=\"2\"", TOK, &c), &c);
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

/* Separators, trimming and what counts as a scheme. */
static void test_separators(void **state)
{
    sts_credential c;

    (void)state;
    /* The scheme needs a separator: "ApiKeysvctok-..." is another scheme. */
    assert_int_equal(parse("ApiKey" TOK, NULL, &c), STS_CRED_NONE);
    assert_tok(parse("\tApiKey\t\t" TOK "\t", NULL, &c), &c);
    assert_tok(parse("ApiKey"
                     "                                " TOK,
                     NULL, &c),
               &c);
    /* The token points into the header value, not a copy. */
    {
        const char *v = "ApiKey " TOK;

        assert_int_equal(parse(v, NULL, &c), STS_CRED_OK);
        assert_ptr_equal(c.token, v + 7);
    }
    /* A comma without a following space is just a token character. */
    assert_int_equal(parse(NULL, "abc,def", &c), STS_CRED_OK);
    assert_int_equal(c.len, 7);
    /* An empty Authorization is no credentials; X-API-Key still counts. */
    assert_tok(parse("", TOK, &c), &c);
    assert_false(c.from_authorization);
}

/* Control, whitespace and non-ASCII bytes inside a token; none of the
 * reasons ever quotes the token. */
static void test_bad_bytes(void **state)
{
    static const char *keys[] = {
        "a\tb",
        "a\r\nb",
        "a\x1b[31mb",
        "a\x80",
        "\xff\xfe",
        "caf\xc3\xa9",
        "a\x7f",
        "a b",
        "\x01",
        "a\x0b"
        "b",
    };
    sts_credential c;
    char authz[64];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        assert_int_equal(parse(NULL, keys[i], &c), STS_CRED_BAD);
        assert_non_null(c.reason);
        assert_null(strstr(c.reason, keys[i]));
        snprintf(authz, sizeof(authz), "ApiKey %s", keys[i]);
        assert_int_equal(parse(authz, NULL, &c), STS_CRED_BAD);
        assert_non_null(c.reason);
    }
}

/* Length limits through both headers. */
static void test_lengths(void **state)
{
    char key[600], authz[620];
    sts_credential c;

    (void)state;
    memset(key, 'k', sizeof(key));
    key[512] = '\0';
    snprintf(authz, sizeof(authz), "ApiKey %s", key);
    assert_int_equal(parse(authz, NULL, &c), STS_CRED_OK);
    assert_int_equal(c.len, 512);
    assert_int_equal(parse(authz, key, &c), STS_CRED_OK);
    key[512] = 'k';
    key[513] = '\0';
    snprintf(authz, sizeof(authz), "ApiKey %s", key);
    assert_int_equal(parse(authz, NULL, &c), STS_CRED_BAD);
    assert_string_equal(c.reason, "token longer than 512 bytes");
    /* 512 bytes of token plus padding are fine: only the token counts. */
    key[512] = '\0';
    snprintf(authz, sizeof(authz), "ApiKey   %s   ", key);
    assert_int_equal(parse(authz, NULL, &c), STS_CRED_OK);
    assert_int_equal(parse(NULL, "x", &c), STS_CRED_OK);
    assert_int_equal(c.len, 1);
}

/* Both headers: same token with different padding is fine; tokens that
 * differ only by case or length are different tokens. */
static void test_both_forms(void **state)
{
    const char *three[3] = {TOK, TOK, TOK};
    const char *two_diff[2] = {TOK, "svctok-other"};
    sts_credential c;

    (void)state;
    assert_tok(parse("ApiKey\t" TOK "  ", "  " TOK, &c), &c);
    assert_int_equal(parse("ApiKey " TOK,
                           "SVCTOK-Q1XXZS6JTRX2QBW191PDRZHJ8G7YP7TJ0Y0X8RB",
                           &c),
                     STS_CRED_BAD);
    assert_int_equal(parse("ApiKey " TOK, TOK "x", &c), STS_CRED_BAD);
    assert_int_equal(parse("ApiKey " TOK "x", TOK, &c), STS_CRED_BAD);
    assert_int_equal(sts_credentials_parse(NULL, three, 3, &c), STS_CRED_BAD);
    assert_string_equal(c.reason, "X-API-Key header repeated");
    assert_int_equal(sts_credentials_parse("ApiKey " TOK, two_diff, 2, &c),
                     STS_CRED_BAD);
    /* Another scheme does not rescue a bad X-API-Key. */
    assert_int_equal(parse("Basic dXNlcjpwYXNz", "", &c), STS_CRED_BAD);
    assert_int_equal(parse("Bearer x", "a b", &c), STS_CRED_BAD);
}

/* Runs every test with cmocka's runner (its summary line ends the output). */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_authorization_forms),
        cmocka_unit_test(test_api_key_and_both),
        cmocka_unit_test(test_none),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_separators),
        cmocka_unit_test(test_bad_bytes),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_both_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
