/*
 * mint.c - prints fresh service tokens with their SHA-256 digests (hex),
 * "<token> <digest>" per line, so tests, scripts and the benchmark can
 * insert tokens with SQL (the secrets only live in their private temp dirs).
 *
 *   mint            one token and its digest
 *   mint -n N       N tokens (1 <= N <= 1000000), one per line
 *   mint STRING     the digest of STRING
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

/* Prints n fresh "<token> <digest>" lines; 0, or 1 on a libcrypto failure. */
static int mint(long n)
{
    char tok[STS_TOKEN_LEN + 1];
    unsigned char digest[STS_DIGEST_LEN];
    char hex[STS_DIGEST_HEX_LEN + 1];
    long i;

    for (i = 0; i < n; i++) {
        if (sts_token_generate(tok) != 0) {
            fprintf(stderr, "mint: random generator failed\n");
            return 1;
        }
        if (sts_token_digest(tok, strlen(tok), digest) != 0) {
            fprintf(stderr, "mint: SHA-256 failed\n");
            return 1;
        }
        sts_digest_to_hex(digest, hex);
        printf("%s %s\n", tok, hex);
    }
    return 0;
}

/* Dispatches on the arguments (see the top of the file). */
int main(int argc, char **argv)
{
    unsigned char digest[STS_DIGEST_LEN];
    char hex[STS_DIGEST_HEX_LEN + 1];
    char *end = NULL;
    long n;

    if (argc == 1) {
        return mint(1);
    }
    if (strcmp(argv[1], "-n") == 0) {
        n = argc == 3 ? strtol(argv[2], &end, 10) : -1;
        if (end == NULL || end == argv[2] || *end != '\0' || n < 1 ||
            n > 1000000) {
            fprintf(stderr, "usage: mint -n N   (1 <= N <= 1000000)\n");
            return 2;
        }
        return mint(n);
    }
    if (argc != 2) {
        fprintf(stderr, "usage: mint [-n N | STRING]\n");
        return 2;
    }
    if (sts_token_digest(argv[1], strlen(argv[1]), digest) != 0) {
        fprintf(stderr, "mint: SHA-256 failed\n");
        return 1;
    }
    sts_digest_to_hex(digest, hex);
    printf("%s\n", hex);
    return 0;
}
