/*
 * tokens.c - prints N fresh service tokens with their SHA-256 digests, one
 * "<token> <digest>" line each, for the benchmark's bulk insert (the secrets
 * only ever exist in the benchmark's private temp dir).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

/* Prints argv[1] (at most 1,000,000) tokens and digests. */
int main(int argc, char **argv)
{
    char tok[STS_TOKEN_LEN + 1];
    unsigned char digest[STS_DIGEST_LEN];
    char hex[STS_DIGEST_HEX_LEN + 1];
    char *end = NULL;
    long n, i;

    n = argc == 2 ? strtol(argv[1], &end, 10) : -1;
    if (end == NULL || *end != '\0' || n < 1 || n > 1000000) {
        fprintf(stderr, "usage: tokens N   (1 <= N <= 1000000)\n");
        return 2;
    }
    for (i = 0; i < n; i++) {
        if (sts_token_generate(tok) != 0) {
            fprintf(stderr, "tokens: random generator failed\n");
            return 1;
        }
        if (sts_token_digest(tok, strlen(tok), digest) != 0) {
            fprintf(stderr, "tokens: SHA-256 failed\n");
            return 1;
        }
        sts_digest_to_hex(digest, hex);
        printf("%s %s\n", tok, hex);
    }
    return 0;
}
