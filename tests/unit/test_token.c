/*
 * test_token.c - token format, checksum, digest and id parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "token.h"

/* Generated tokens have the documented shape and pass the checksum. */
static void test_generate_wellformed(void **state)
{
    char a[STS_TOKEN_LEN + 1], b[STS_TOKEN_LEN + 1];
    int i;

    (void)state;
    for (i = 0; i < 1000; i++) {
        assert_int_equal(sts_token_generate(a), 0);
        assert_int_equal(strlen(a), 46);
        assert_memory_equal(a, "svctok-", 7);
        assert_true(sts_token_is_wellformed(a, strlen(a)));
        assert_null(strpbrk(a + 7, "ilouABCDEFGHIJKLMNOPQRSTUVWXYZ"));
    }
    assert_int_equal(sts_token_generate(b), 0);
    assert_string_not_equal(a, b);
}

/* Any single-character change breaks the checksum or the alphabet. */
static void test_checksum_detects_one_char(void **state)
{
    static const char alphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
    char t[STS_TOKEN_LEN + 1], m[STS_TOKEN_LEN + 1];
    size_t pos, k;

    (void)state;
    assert_int_equal(sts_token_generate(t), 0);
    for (pos = 7; pos < STS_TOKEN_LEN; pos++) {
        for (k = 0; k < 32; k++) {
            if (alphabet[k] == t[pos]) {
                continue;
            }
            memcpy(m, t, sizeof(t));
            m[pos] = alphabet[k];
            assert_false(sts_token_is_wellformed(m, strlen(m)));
        }
    }
}

/* Case, length and prefix variations are refused. */
static void test_not_wellformed(void **state)
{
    char t[STS_TOKEN_LEN + 1], m[STS_TOKEN_LEN + 2];
    size_t i;

    (void)state;
    assert_int_equal(sts_token_generate(t), 0);
    for (i = 0; i < sizeof(t); i++) {
        m[i] = (t[i] >= 'a' && t[i] <= 'z') ? (char)(t[i] - 32) : t[i];
    }
    assert_false(sts_token_is_wellformed(m, strlen(m)));
    assert_false(sts_token_is_wellformed(t, STS_TOKEN_LEN - 1));
    memcpy(m, t, sizeof(t));
    m[STS_TOKEN_LEN] = 'a';
    m[STS_TOKEN_LEN + 1] = '\0';
    assert_false(sts_token_is_wellformed(m, strlen(m)));
    memcpy(m, t, sizeof(t));
    m[0] = 'S';
    assert_false(sts_token_is_wellformed(m, strlen(m)));
    assert_false(sts_token_is_wellformed("", 0));
    assert_false(sts_token_is_wellformed("svctok-", 7));
    assert_true(sts_token_has_prefix("svctok-x", 8));
    assert_false(sts_token_has_prefix("svctok", 6));
}

/* SHA-256 known answers, in hex. */
static void test_digest_vectors(void **state)
{
    unsigned char d[STS_DIGEST_LEN], e[STS_DIGEST_LEN];
    char hex[STS_DIGEST_HEX_LEN + 1];

    (void)state;
    assert_int_equal(0, sts_token_digest("", 0, d));
    sts_digest_to_hex(d, hex);
    assert_string_equal(
        hex,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_int_equal(0, sts_token_digest("abc", 3, d));
    sts_digest_to_hex(d, hex);
    assert_string_equal(
        hex,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(0, sts_token_digest("abc", 3, e));
    assert_true(sts_digest_equal(d, e));
    e[31] ^= 1;
    assert_false(sts_digest_equal(d, e));
}

/* A reused context gives the same digests as a fresh one, one after the
 * other (nothing of the previous input carries over). */
static void test_digest_reuse(void **state)
{
    static const char *inputs[] = {"abc", "", "svctok-longer input", "abc"};
    unsigned char d[STS_DIGEST_LEN], e[STS_DIGEST_LEN];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t i;

    (void)state;
    assert_non_null(ctx);
    for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        assert_int_equal(0, sts_token_digest(inputs[i], strlen(inputs[i]), d));
        assert_int_equal(
            0, sts_token_digest_reuse(ctx, inputs[i], strlen(inputs[i]), e));
        assert_memory_equal(d, e, STS_DIGEST_LEN);
    }
    assert_int_equal(0, sts_token_digest_reuse(NULL, "abc", 3, e));
    assert_int_equal(0, sts_token_digest("abc", 3, d));
    assert_memory_equal(d, e, STS_DIGEST_LEN);
    EVP_MD_CTX_free(ctx);
}

/* Token ids: digits only, 1..2^53-1, no sign, space or leading zero. */
static void test_parse_id(void **state)
{
    int64_t id = 0;

    (void)state;
    assert_true(sts_parse_token_id("107484341630693", 15, &id));
    assert_int_equal(id, INT64_C(107484341630693));
    assert_true(sts_parse_token_id("1", 1, &id));
    assert_true(sts_parse_token_id("9007199254740991", 16, &id));
    assert_int_equal(id, STS_TOKEN_ID_MAX);
    assert_false(sts_parse_token_id("9007199254740992", 16, &id));
    assert_false(sts_parse_token_id("99999999999999999999", 20, &id));
    assert_false(sts_parse_token_id("0", 1, &id));
    assert_false(sts_parse_token_id("007", 3, &id));
    assert_false(sts_parse_token_id("+7", 2, &id));
    assert_false(sts_parse_token_id("-7", 2, &id));
    assert_false(sts_parse_token_id(" 7", 2, &id));
    assert_false(sts_parse_token_id("7 ", 2, &id));
    assert_false(sts_parse_token_id("1e3", 3, &id));
    assert_false(sts_parse_token_id("", 0, &id));
}

/* Tokens whose checksum was computed independently (Python's zlib.crc32)
 * pin the format: alphabet, digit order and checksum placement. */
static void test_known_tokens(void **state)
{
    static const char *good[] = {
        "svctok-0123456789abcdefghjkmnpqrstvwxyz101yfr7",
        "svctok-zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz0mp4aws",
        "svctok-q1xxzs6jtrx2qbw191pdrzhj8g7yp7tj0y0x8rb",
    };
    unsigned char d[STS_DIGEST_LEN];
    char hex[STS_DIGEST_HEX_LEN + 1];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_true(sts_token_is_wellformed(good[i], strlen(good[i])));
    }
    assert_int_equal(0, sts_token_digest(good[0], strlen(good[0]), d));
    sts_digest_to_hex(d, hex);
    assert_string_equal(
        hex,
        "a962f8f09bb85b0feb3f407a36253563f96eac505d8c225b9d57a5988f1229e0");
    /* Off by one character in the checksum, in the body, swapped digits. */
    assert_false(sts_token_is_wellformed(
        "svctok-0123456789abcdefghjkmnpqrstvwxyz101yfr8", 46));
    assert_false(sts_token_is_wellformed(
        "svctok-1123456789abcdefghjkmnpqrstvwxyz101yfr7", 46));
    assert_false(sts_token_is_wellformed(
        "svctok-1023456789abcdefghjkmnpqrstvwxyz101yfr7", 46));
    /* The right checksum (CRC32 matches) over a letter outside the alphabet
     * (i), over upper case, and over an embedded NUL. */
    assert_false(sts_token_is_wellformed(
        "svctok-0123456789abcdefghikmnpqrstvwxyz0y7w6pw", 46));
    assert_false(sts_token_is_wellformed(
        "svctok-0123456789ABCDEFGHJKMNPQRSTVWXYZ1j0e6rq", 46));
    assert_false(sts_token_is_wellformed(
        "svctok-0123456789abcdefghjkmnpqrs\0vwxyz38arw6g", 46));
    /* Upper case is a different token. */
    assert_false(sts_token_is_wellformed(
        "SVCTOK-0123456789abcdefghjkmnpqrstvwxyz101yfr7", 46));
    assert_false(sts_token_is_wellformed(
        "svctok-0123456789ABCDEFGHJKMNPQRSTVWXYZ101YFR7", 46));
    /* Only len bytes count: a valid token followed by more is not one. */
    assert_false(sts_token_is_wellformed(
        "svctok-0123456789abcdefghjkmnpqrstvwxyz101yfr7x", 47));
    assert_false(sts_token_is_wellformed(
        "svctok-0123456789abcdefghjkmnpqrstvwxyz101yfr7", 45));
}

/* Hex output is lower case and covers every nibble. */
static void test_digest_hex(void **state)
{
    unsigned char d[STS_DIGEST_LEN];
    char hex[STS_DIGEST_HEX_LEN + 1];
    size_t i;

    (void)state;
    for (i = 0; i < STS_DIGEST_LEN; i++) {
        d[i] = (unsigned char)(i * 8 + 7);
    }
    sts_digest_to_hex(d, hex);
    assert_int_equal(strlen(hex), 64);
    assert_string_equal(
        hex,
        "070f171f272f373f474f575f676f777f878f979fa7afb7bfc7cfd7dfe7eff7ff");
    /* Two generated tokens never share a digest. */
    {
        char a[STS_TOKEN_LEN + 1], b[STS_TOKEN_LEN + 1];
        unsigned char da[STS_DIGEST_LEN], db[STS_DIGEST_LEN];

        assert_int_equal(sts_token_generate(a), 0);
        assert_int_equal(sts_token_generate(b), 0);
        assert_int_equal(0, sts_token_digest(a, strlen(a), da));
        assert_int_equal(0, sts_token_digest(b, strlen(b), db));
        assert_false(sts_digest_equal(da, db));
    }
}

/* Only the given length is parsed; odd inputs around the limits. */
static void test_parse_id_bounds(void **state)
{
    int64_t id = 42;

    (void)state;
    assert_true(sts_parse_token_id("123abc", 3, &id));
    assert_int_equal(id, 123);
    id = 42;
    assert_false(sts_parse_token_id("18446744073709551616", 20, &id));
    assert_false(sts_parse_token_id("9223372036854775807", 19, &id));
    assert_false(sts_parse_token_id("9007199254740992", 16, &id));
    assert_false(sts_parse_token_id("00000000000000001", 17, &id));
    assert_false(sts_parse_token_id("1\0", 2, &id));
    assert_false(sts_parse_token_id("1\t", 2, &id));
    assert_false(sts_parse_token_id("\xd9\xa1", 2, &id)); /* Arabic one */
    assert_false(sts_parse_token_id("0x10", 4, &id));
    /* A refused id leaves the output alone. */
    assert_int_equal(id, 42);
    assert_true(sts_parse_token_id("9007199254740990", 16, &id));
    assert_int_equal(id, STS_TOKEN_ID_MAX - 1);
}

/* Random ids stay in range. */
static void test_random_id(void **state)
{
    int64_t id;
    int i;

    (void)state;
    for (i = 0; i < 10000; i++) {
        assert_int_equal(sts_random_id(&id), 0);
        assert_true(id >= 1 && id <= STS_TOKEN_ID_MAX);
    }
}

/* Runs every test with cmocka's runner (its summary line ends the output). */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_wellformed),
        cmocka_unit_test(test_checksum_detects_one_char),
        cmocka_unit_test(test_not_wellformed),
        cmocka_unit_test(test_digest_vectors),
        cmocka_unit_test(test_digest_reuse),
        cmocka_unit_test(test_parse_id),
        cmocka_unit_test(test_random_id),
        cmocka_unit_test(test_known_tokens),
        cmocka_unit_test(test_digest_hex),
        cmocka_unit_test(test_parse_id_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
