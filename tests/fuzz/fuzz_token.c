/*
 * fuzz_token.c - libFuzzer harness for the token format, checksum and id
 * parser. Properties: a well-formed token has the prefix and the exact
 * length; changing any one character of it breaks the checksum or alphabet;
 * an id that parses prints back to the same string; a generated token is
 * always well-formed and a random id always parses back; equal digests are
 * equal exactly when the inputs are.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

/* Every 64th run: generated tokens and ids must satisfy their own checks. */
static void check_generated(void)
{
    static unsigned runs;
    char tok[STS_TOKEN_LEN + 1], back[32];
    int64_t id, again;

    if (runs++ % 64 != 0) {
        return;
    }
    if (sts_token_generate(tok) != 0 || strlen(tok) != STS_TOKEN_LEN ||
        !sts_token_is_wellformed(tok, STS_TOKEN_LEN)) {
        abort();
    }
    if (sts_random_id(&id) != 0 || id < 1 || id > STS_TOKEN_ID_MAX) {
        abort();
    }
    snprintf(back, sizeof(back), "%lld", (long long)id);
    if (!sts_parse_token_id(back, strlen(back), &again) || again != id) {
        abort();
    }
}

/* Checks the token and id functions on one input. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    char back[32], mut[STS_TOKEN_LEN];
    unsigned char d1[STS_DIGEST_LEN], d2[STS_DIGEST_LEN];
    int64_t id;
    size_t half = size / 2;

    check_generated();
    /* Digest of each half: equal digests exactly when the halves are equal. */
    if (sts_token_digest(s, half, d1) != 0 ||
        sts_token_digest(s + half, size - half, d2) != 0) {
        abort();
    }
    if (sts_digest_equal(d1, d2) !=
        (half == size - half && memcmp(s, s + half, half) == 0)) {
        abort();
    }
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
