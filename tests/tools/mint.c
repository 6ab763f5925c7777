/*
 * mint.c - prints a fresh service token and its SHA-256 digest (hex),
 * separated by a space, so tests and scripts can insert tokens with SQL.
 * With an argument, prints the digest of that string instead.
 */
#include <stdio.h>
#include <string.h>

#include "token.h"

/* Prints "<token> <digest>" or the digest of argv[1]. */
int main(int argc, char **argv)
{
    char tok[STS_TOKEN_LEN + 1];
    unsigned char digest[STS_DIGEST_LEN];
    char hex[STS_DIGEST_HEX_LEN + 1];

    if (argc > 1) {
        if (sts_token_digest(argv[1], strlen(argv[1]), digest) != 0) {
            fprintf(stderr, "mint: SHA-256 failed\n");
            return 1;
        }
        sts_digest_to_hex(digest, hex);
        printf("%s\n", hex);
        return 0;
    }
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
    return 0;
}
