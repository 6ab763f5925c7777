/*
 * fuzz_credentials.c - libFuzzer harness for the credential parser: the input
 * is split on NUL bytes into an Authorization value and 0-3 X-API-Key values.
 * Properties: an accepted token is 1-512 visible ASCII bytes inside one of
 * the inputs; a refusal always has a reason that never contains the token.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "credentials.h"
#include "token.h"

/* Checks the parser's promises on one input. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1), *parts[4] = {NULL, NULL, NULL, NULL};
    const char *keys[3];
    sts_credential c;
    sts_cred_status st;
    size_t i, n = 0, k;

    if (buf == NULL) {
        return 0;
    }
    memcpy(buf, data, size);
    buf[size] = '\0';
    parts[n++] = buf;
    for (i = 0; i < size && n < 4; i++) {
        if (buf[i] == '\0') {
            parts[n++] = buf + i + 1;
        }
    }
    for (k = 1; k < n; k++) {
        keys[k - 1] = parts[k];
    }
    st = sts_credentials_parse(parts[0][0] ? parts[0] : NULL, keys, n - 1, &c);
    if (st == STS_CRED_OK) {
        if (c.len < 1 || c.len > STS_TOKEN_MAX_LEN) {
            abort();
        }
        for (i = 0; i < c.len; i++) {
            if ((unsigned char)c.token[i] <= 0x20 ||
                (unsigned char)c.token[i] >= 0x7f) {
                abort();
            }
        }
        if (c.token < buf || c.token + c.len > buf + size + 1) {
            abort();
        }
        if (!c.from_api_key && !c.from_authorization) {
            abort();
        }
    } else if (st == STS_CRED_BAD) {
        if (c.reason == NULL || strstr(c.reason, "svctok-") != NULL) {
            abort();
        }
    }
    (void)sts_authorization_is_apikey(parts[0]);
    free(buf);
    return 0;
}
