/*
 * test_api_json.c - NewServiceTokenRequest validation and response encoding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api_json.h"

#define NOW INT64_C(1800000000000)

/* Parses body; returns the status and leaves the message in err. */
static sts_req_status parse(const char *body, sts_new_token *t, char *err)
{
    return sts_new_token_parse(body, strlen(body), NOW, t, err, 256);
}

/* Asserts body is refused (STS_REQ_BAD) with a message containing what. */
static void assert_bad(const char *body, const char *what)
{
    sts_new_token t;
    char err[256] = "";

    assert_int_equal(parse(body, &t, err), STS_REQ_BAD);
    if (strstr(err, what) == NULL) {
        fail_msg("error '%s' does not mention '%s' for %s", err, what, body);
    }
    assert_null(t.name);
    assert_null(t.roles);
}

/* A full valid request. */
static void test_valid(void **state)
{
    sts_new_token t;
    char err[256];

    (void)state;
    assert_int_equal(
        parse("{\"name\":\"my-service-token\",\"roles\":[\"a\",\"b:c\",\"a\","
              "\"x@y.z_-\"],\"expiryDate\":1800000000001,"
              "\"dedicatedSubject\":\"svc\",\"description\":\"line1\\nline2\","
              "\"unknown\":{\"ignored\":[1,2]}}",
              &t, err),
        STS_REQ_OK);
    assert_string_equal(t.name, "my-service-token");
    assert_string_equal(t.roles, "a,b:c,x@y.z_-");
    assert_int_equal(t.expiry_ms, NOW + 1);
    assert_string_equal(t.dedicated_subject, "svc");
    assert_string_equal(t.description, "line1\nline2");
    sts_new_token_free(&t);
    assert_int_equal(parse("{\"name\":\"n\",\"roles\":[\"r\"],\"expiryDate\":"
                           "null,\"description\":null}",
                           &t, err),
                     STS_REQ_OK);
    assert_int_equal(t.expiry_ms, -1);
    assert_null(t.description);
    sts_new_token_free(&t);
}

/* Bad input names the field. */
static void test_invalid(void **state)
{
    char name256[300], roles65[1024], role129[200];
    int i;

    (void)state;
    assert_bad("", "invalid JSON");
    assert_bad("{\"name\":\"a\",\"roles\":[\"r\"]", "invalid JSON");
    assert_bad("[]", "JSON object");
    assert_bad("\"x\"", "JSON object");
    assert_bad("{\"roles\":[\"r\"]}", "'name' is required");
    assert_bad("{\"name\":\"\",\"roles\":[\"r\"]}", "'name'");
    assert_bad("{\"name\":5,\"roles\":[\"r\"]}", "'name' must be a string");
    assert_bad("{\"name\":\"a\\u0001b\",\"roles\":[\"r\"]}",
               "control characters");
    assert_bad("{\"name\":\"a\\u0085b\",\"roles\":[\"r\"]}",
               "control characters");
    assert_bad("{\"name\":\"a\\u0000b\",\"roles\":[\"r\"]}", "invalid JSON");
    /* The name rule (src/names.c): reserved, invisible characters. */
    assert_bad("{\"name\":\"bootstrap\",\"roles\":[\"r\"]}", "reserved");
    assert_bad("{\"name\":\"a\\u202eb\",\"roles\":[\"r\"]}", "U+202E");
    assert_bad("{\"name\":\"a\\u200bb\",\"roles\":[\"r\"]}", "U+200B");
    assert_bad("{\"name\":\"a\\u2028b\",\"roles\":[\"r\"]}", "U+2028");
    assert_bad("{\"name\":\"a\",\"name\":\"b\",\"roles\":[\"r\"]}",
               "invalid JSON");
    assert_bad("{\"name\":\"a\"}", "'roles' is required");
    assert_bad("{\"name\":\"a\",\"roles\":\"r\"}", "'roles' must be an array");
    assert_bad("{\"name\":\"a\",\"roles\":[]}", "'roles' must have 1 to 64");
    assert_bad("{\"name\":\"a\",\"roles\":[1]}", "'roles[0]' must be a string");
    assert_bad("{\"name\":\"a\",\"roles\":[\"ok\",\"bad role\"]}",
               "'roles[1]'");
    assert_bad("{\"name\":\"a\",\"roles\":[\"\"]}", "'roles[0]'");
    assert_bad("{\"name\":\"a\",\"roles\":[\"r,s\"]}", "'roles[0]'");
    assert_bad("{\"name\":\"a\",\"roles\":[\"r\"],\"expiryDate\":\"2027\"}",
               "'expiryDate' must be an integer");
    assert_bad("{\"name\":\"a\",\"roles\":[\"r\"],\"expiryDate\":1.5e12}",
               "'expiryDate' must be an integer");
    assert_bad("{\"name\":\"a\",\"roles\":[\"r\"],\"expiryDate\":"
               "253402300800000}",
               "year 9999");
    assert_bad("{\"name\":\"a\",\"roles\":[\"r\"],\"expiryDate\":"
               "99999999999999999999999}",
               "invalid JSON");
    assert_bad("{\"name\":\"a\",\"roles\":[\"r\"],\"dedicatedSubject\":7}",
               "'dedicatedSubject' must be a string");
    assert_bad("{\"name\":\"a\",\"roles\":[\"r\"],\"description\":[]}",
               "'description' must be a string");

    memset(name256, 'n', 256);
    name256[256] = '\0';
    {
        char body[400];

        snprintf(body, sizeof(body), "{\"name\":\"%s\",\"roles\":[\"r\"]}",
                 name256);
        assert_bad(body, "longer than 255");
        memset(role129, 'r', 129);
        role129[129] = '\0';
        snprintf(body, sizeof(body), "{\"name\":\"a\",\"roles\":[\"%s\"]}",
                 role129);
        assert_bad(body, "'roles[0]'");
    }
    strcpy(roles65, "{\"name\":\"a\",\"roles\":[");
    for (i = 0; i < 65; i++) {
        strcat(roles65, i ? ",\"r\"" : "\"r\"");
    }
    strcat(roles65, "]}");
    assert_bad(roles65, "1 to 64 entries, not 65");
}

/* 255 characters of multi-byte UTF-8 are fine (characters, not bytes). */
static void test_utf8_length(void **state)
{
    char body[2048], *p;
    sts_new_token t;
    char err[256];
    int i;

    (void)state;
    p = body + sprintf(body, "{\"name\":\"");
    for (i = 0; i < 255; i++) {
        p += sprintf(p, "\xc3\xa9");
    }
    sprintf(p, "\",\"roles\":[\"r\"]}");
    assert_int_equal(parse(body, &t, err), STS_REQ_OK);
    sts_new_token_free(&t);
}

/* An expiry not in the future is the dedicated error. */
static void test_expiry_in_past(void **state)
{
    sts_new_token t;
    char err[256];

    (void)state;
    assert_int_equal(parse("{\"name\":\"a\",\"roles\":[\"r\"],\"expiryDate\":"
                           "1800000000000}",
                           &t, err),
                     STS_REQ_BAD_EXPIRY);
    assert_non_null(strstr(err, "not in the future"));
    assert_int_equal(parse("{\"name\":\"a\",\"roles\":[\"r\"],\"expiryDate\":"
                           "-5}",
                           &t, err),
                     STS_REQ_BAD_EXPIRY);
}

/* Bodies over 64 KiB are refused before parsing. */
static void test_too_large(void **state)
{
    size_t n = STS_API_MAX_BODY + 1;
    char *big = malloc(n);
    sts_new_token t;
    char err[256];

    (void)state;
    memset(big, ' ', n);
    assert_int_equal(sts_new_token_parse(big, n, NOW, &t, err, sizeof(err)),
                     STS_REQ_BAD);
    assert_non_null(strstr(err, "larger than 65536"));
    free(big);
}

/* Encoders produce StackState's shapes. */
static void test_encoders(void **state)
{
    sts_token_json toks[2] = {
        {1, "a", NULL, NULL, "r1,r2", -1, 5, -1, NULL},
        {2, "b\"q", "d", "s", "x", 7, 6, 1700000000123, "2001:db8::1"},
    };
    char *s;

    (void)state;
    s = sts_json_token_list(toks, 2);
    assert_string_equal(
        s, "[{\"id\":1,\"name\":\"a\",\"roles\":[\"r1\",\"r2\"],"
           "\"lastUpdateTimestamp\":5},{\"id\":2,\"name\":\"b\\\"q\","
           "\"description\":\"d\",\"expiration\":7,\"roles\":[\"x\"],"
           "\"dedicatedSubject\":\"s\",\"lastUpdateTimestamp\":6,"
           "\"lastUsedTimestamp\":1700000000123,"
           "\"lastUsedFrom\":\"2001:db8::1\"}]");
    free(s);
    /* A use without a known address: the time only. */
    toks[1].last_used_from = "";
    s = sts_json_token_list(&toks[1], 1);
    assert_non_null(strstr(s, "\"lastUsedTimestamp\":1700000000123}"));
    assert_null(strstr(s, "lastUsedFrom"));
    free(s);
    s = sts_json_token_list(NULL, 0);
    assert_string_equal(s, "[]");
    free(s);
    s = sts_json_token_created("n", "svctok-x", -1);
    assert_string_equal(s, "{\"name\":\"n\",\"token\":\"svctok-x\"}");
    free(s);
    s = sts_json_errors("k", 9, 404, "no such token");
    assert_string_equal(s, "{\"_type\":\"ErrorsResponse\",\"trackingKey\":"
                           "\"k\",\"serverTimestamp\":9,\"errors\":[{\"_type\":"
                           "\"InternalError\",\"message\":\"no such token\","
                           "\"errorCode\":404}]}");
    free(s);
    s = sts_json_expiry_error("m");
    assert_string_equal(
        s, "{\"_type\":\"ServiceTokenInvalidExpiryError\",\"message\":\"m\"}");
    free(s);
    s = sts_json_server_info(5, 2, 3, "0.1.0", "abc");
    assert_non_null(strstr(s, "\"major\":5,\"minor\":2,\"patch\":3"));
    assert_non_null(strstr(s, "\"commit\":\"abc\""));
    assert_non_null(strstr(s, "\"platformVersion\":\"0.1.0\""));
    assert_non_null(strstr(s, "\"deploymentMode\":\"SelfHosted\""));
    assert_non_null(strstr(s, "\"applicationDomains\":[\"Observability\"]"));
    free(s);
}

/* Parses body and asserts it is accepted; the caller frees t. */
static void assert_ok(const char *body, sts_new_token *t)
{
    char err[256] = "";

    if (parse(body, t, err) != STS_REQ_OK) {
        fail_msg("refused (%s): %.120s", err, body);
    }
}

/* Builds {"name":"a","roles":[...]} with n copies of role (or "rK" for a
 * distinct role each when role is NULL), plus extra members. */
static char *roles_body(int n, const char *role, const char *extra)
{
    size_t cap = 64 + (size_t)n * 160 + strlen(extra);
    char *b = malloc(cap), *p = b;
    int i;

    p += sprintf(p, "{\"name\":\"a\",\"roles\":[");
    for (i = 0; i < n; i++) {
        if (role) {
            p += sprintf(p, "%s\"%s\"", i ? "," : "", role);
        } else {
            p += sprintf(p, "%s\"r%d\"", i ? "," : "", i);
        }
    }
    sprintf(p, "]%s}", extra);
    return b;
}

/* Limits are inclusive: 64 roles, 128-character roles, 1024-character
 * descriptions, 255-character subjects, expiry up to year 9999. */
static void test_boundaries(void **state)
{
    char *body, big[2200], text[1100];
    sts_new_token t;
    char err[256];

    (void)state;
    body = roles_body(64, NULL, "");
    assert_ok(body, &t);
    assert_non_null(strstr(t.roles, "r63"));
    sts_new_token_free(&t);
    free(body);

    memset(text, 'r', 128);
    text[128] = '\0';
    body = roles_body(1, text, "");
    assert_ok(body, &t);
    assert_int_equal(strlen(t.roles), 128);
    sts_new_token_free(&t);
    free(body);

    memset(text, 'd', 1024);
    text[1024] = '\0';
    snprintf(big, sizeof(big),
             "{\"name\":\"a\",\"roles\":[\"r\"],\"description\":\"%s\"}", text);
    assert_ok(big, &t);
    sts_new_token_free(&t);
    snprintf(big, sizeof(big),
             "{\"name\":\"a\",\"roles\":[\"r\"],\"description\":\"%sd\"}",
             text);
    assert_bad(big, "'description' is longer than 1024");

    memset(text, 's', 255);
    text[255] = '\0';
    snprintf(big, sizeof(big),
             "{\"name\":\"a\",\"roles\":[\"r\"],\"dedicatedSubject\":"
             "\"%s\"}",
             text);
    assert_ok(big, &t);
    sts_new_token_free(&t);
    snprintf(big, sizeof(big),
             "{\"name\":\"a\",\"roles\":[\"r\"],\"dedicatedSubject\":"
             "\"%ss\"}",
             text);
    assert_bad(big, "'dedicatedSubject' is longer than 255");
    /* StackState's CLI sends "" for "no dedicated subject". */
    assert_ok("{\"name\":\"a\",\"roles\":[\"r\"],\"dedicatedSubject\":\"\"}",
              &t);
    assert_null(t.dedicated_subject);
    sts_new_token_free(&t);
    assert_bad("{\"name\":\"a\",\"roles\":[\"r\"],\"dedicatedSubject\":"
               "\"a\\tb\"}",
               "control characters");

    assert_ok("{\"name\":\"a\",\"roles\":[\"r\"],\"expiryDate\":"
              "253402300799999}",
              &t);
    assert_int_equal(t.expiry_ms, STS_API_MAX_EXPIRY_MS);
    sts_new_token_free(&t);
    /* Exactly now is not in the future. */
    snprintf(big, sizeof(big),
             "{\"name\":\"a\",\"roles\":[\"r\"],\"expiryDate\":%lld}",
             (long long)NOW);
    assert_int_equal(parse(big, &t, err), STS_REQ_BAD_EXPIRY);
    assert_null(t.name);
}

/* Duplicate roles are dropped, keeping the order of first occurrences; 64
 * copies of one role are one role. */
static void test_roles_dedupe(void **state)
{
    sts_new_token t;
    char *body;

    (void)state;
    assert_ok("{\"name\":\"a\",\"roles\":[\"b\",\"a\",\"b\",\"c\",\"a\","
              "\"A\"]}",
              &t);
    assert_string_equal(t.roles, "b,a,c,A");
    sts_new_token_free(&t);
    body = roles_body(64, "same", "");
    assert_ok(body, &t);
    assert_string_equal(t.roles, "same");
    sts_new_token_free(&t);
    free(body);
    /* 65 entries are refused even when they are all the same. */
    body = roles_body(65, "same", "");
    assert_bad(body, "not 65");
    free(body);
}

/* Bytes that are not UTF-8, in the body or in names, never get through. */
static void test_invalid_utf8(void **state)
{
    (void)state;
    assert_bad("{\"name\":\"\xff\",\"roles\":[\"r\"]}", "invalid JSON");
    assert_bad("{\"name\":\"\xc3\x28\",\"roles\":[\"r\"]}", "invalid JSON");
    /* An overlong '/' and a UTF-16 surrogate. */
    assert_bad("{\"name\":\"\xc0\xaf\",\"roles\":[\"r\"]}", "invalid JSON");
    assert_bad("{\"name\":\"\xed\xa0\x80\",\"roles\":[\"r\"]}", "invalid JSON");
    assert_bad("{\"name\":\"\\ud800\",\"roles\":[\"r\"]}", "invalid JSON");
    /* A role outside ASCII. */
    assert_bad("{\"name\":\"a\",\"roles\":[\"r\xc3\xa9\"]}", "'roles[0]'");
}

/* A small error buffer truncates the message; nothing overflows. */
static void test_small_error_buffer(void **state)
{
    sts_new_token t;
    char err[12];

    (void)state;
    memset(err, 'X', sizeof(err));
    assert_int_equal(sts_new_token_parse("{\"name\":5}", 11, NOW, &t, err, 8),
                     STS_REQ_BAD);
    assert_int_equal(strlen(err), 7);
    assert_int_equal(err[8], 'X');
}

/* Encoded text is ASCII JSON (escapes for control characters and non-ASCII);
 * a message with bytes that are not UTF-8 keeps every field. */
static void test_encoder_text(void **state)
{
    sts_token_json tok = {9007199254740991,
                          "caf\xc3\xa9\n",
                          "tab\there",
                          NULL,
                          "r",
                          253402300799999,
                          1,
                          -1,
                          NULL};
    char *s;

    (void)state;
    s = sts_json_token_list(&tok, 1);
    assert_string_equal(s,
                        "[{\"id\":9007199254740991,\"name\":\"caf\\u00E9\\n\","
                        "\"description\":\"tab\\there\",\"expiration\":"
                        "253402300799999,\"roles\":[\"r\"],"
                        "\"lastUpdateTimestamp\":1}]");
    free(s);
    s = sts_json_errors("k", 1, 404, "no such API route: /x\xff\xfe\xc3\xa9");
    assert_string_equal(s, "{\"_type\":\"ErrorsResponse\",\"trackingKey\":"
                           "\"k\",\"serverTimestamp\":1,\"errors\":[{\"_type\":"
                           "\"InternalError\",\"message\":\"no such API route: "
                           "/x??\\u00E9\",\"errorCode\":404}]}");
    free(s);
    s = sts_json_expiry_error("bad \xc0\xaf");
    assert_string_equal(s, "{\"_type\":\"ServiceTokenInvalidExpiryError\","
                           "\"message\":\"bad ??\"}");
    free(s);
    s = sts_json_token_created("n", "svctok-x", 5);
    assert_string_equal(s, "{\"name\":\"n\",\"token\":\"svctok-x\","
                           "\"expiration\":5}");
    free(s);
}

/* Rotation requests: no body or {} take every default; the grace period
 * within 0..max; expiryDate as for create; anything else refused. */
static void test_rotate_parse(void **state)
{
    sts_rotate_req q;
    char err[256];
    static const struct {
        const char *body;
        const char *msg;
    } bad[] = {
        {"{\"gracePeriodSeconds\": 601}",
         "'gracePeriodSeconds' 601 is more than this server allows here: at "
         "most 600 (STSTokenRotateGraceMax)"},
        {"{\"gracePeriodSeconds\": -1}", "from 0 to 600"},
        {"{\"gracePeriodSeconds\": 1.5}", "from 0 to 600"},
        {"{\"gracePeriodSeconds\": \"60\"}", "from 0 to 600"},
        {"{\"gracePeriodSeconds\": 1, \"gracePeriodSeconds\": 2}",
         "invalid JSON"},
        {"{\"name\": \"x\"}", "unknown field 'name'"},
        {"[]", "must be a JSON object"},
        {"{", "invalid JSON"},
        {"{\"expiryDate\": \"soon\"}", "'expiryDate' must be an integer"},
    };
    size_t i;

    (void)state;
    assert_int_equal(sts_rotate_parse("", 0, NOW, 600, &q, err, sizeof(err)),
                     STS_REQ_OK);
    assert_true(q.grace_s == -1 && q.expiry_ms == -1);
    assert_int_equal(
        sts_rotate_parse(" \r\n", 3, NOW, 600, &q, err, sizeof(err)),
        STS_REQ_OK);
    assert_int_equal(sts_rotate_parse("{}", 2, NOW, 600, &q, err, sizeof(err)),
                     STS_REQ_OK);
    assert_true(q.grace_s == -1 && q.expiry_ms == -1);
    {
        const char *b = "{\"gracePeriodSeconds\": 600, \"expiryDate\": "
                        "1800000000001}";

        assert_int_equal(
            sts_rotate_parse(b, strlen(b), NOW, 600, &q, err, sizeof(err)),
            STS_REQ_OK);
        assert_true(q.grace_s == 600 && q.expiry_ms == 1800000000001);
    }
    assert_int_equal(sts_rotate_parse("{\"gracePeriodSeconds\": 0}", 25, NOW,
                                      600, &q, err, sizeof(err)),
                     STS_REQ_OK);
    assert_true(q.grace_s == 0);
    assert_int_equal(sts_rotate_parse("{\"expiryDate\": 1800000000000}", 29,
                                      NOW, 600, &q, err, sizeof(err)),
                     STS_REQ_BAD_EXPIRY);
    assert_non_null(strstr(err, "not in the future"));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(sts_rotate_parse(bad[i].body, strlen(bad[i].body), NOW,
                                          600, &q, err, sizeof(err)),
                         STS_REQ_BAD);
        if (strstr(err, bad[i].msg) == NULL) {
            fail_msg("%s: %s", bad[i].body, err);
        }
    }
    {
        char big[STS_API_MAX_ROTATE_BODY + 2];

        memset(big, ' ', sizeof(big));
        big[0] = '{';
        big[sizeof(big) - 1] = '}';
        assert_int_equal(
            sts_rotate_parse(big, sizeof(big), NOW, 600, &q, err, sizeof(err)),
            STS_REQ_BAD);
        assert_non_null(strstr(err, "larger than 1024 bytes"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_utf8_length),
        cmocka_unit_test(test_expiry_in_past),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_encoders),
        cmocka_unit_test(test_boundaries),
        cmocka_unit_test(test_roles_dedupe),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_small_error_buffer),
        cmocka_unit_test(test_encoder_text),
        cmocka_unit_test(test_rotate_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
