/*
 * fuzz_token.c - libFuzzer harness for the token format, checksum and id
 * parser. Properties: a well-formed token has the prefix and the exact
 * length; changing any one character of it breaks the checksum or alphabet;
 * an id that parses prints back to the same string.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

/* Checks the token and id functions on one input. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    char back[32], mut[STS_TOKEN_LEN];
    int64_t id;

    if (sts_token_is_wellformed(s, size)) {
        if (size != STS_TOKEN_LEN || !sts_token_has_prefix(s, size)) {
            abort();
        }
        memcpy(mut, s, STS_TOKEN_LEN);
        mut[size - 1 - (data[0] % 39)] ^= 0x01;
        if (sts_token_is_wellformed(mut, STS_TOKEN_LEN)) {
            abort();
        }
    }
    if (sts_parse_token_id(s, size, &id)) {
        if (id < 1 || id > STS_TOKEN_ID_MAX) {
            abort();
        }
        snprintf(back, sizeof(back), "%lld", (long long)id);
        if (strlen(back) != size || memcmp(back, s, size) != 0) {
            abort();
        }
    }
    return 0;
}
