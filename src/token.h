/*
 * token.h - service token format, checksum and digest (no Apache types).
 *
 * A token this project issues looks like
 *
 *     svctok-<32 random chars><7 checksum chars>
 *
 * in the lower-case Crockford base32 alphabet
 * "0123456789abcdefghjkmnpqrstvwxyz" (no i, l, o, u: nothing to confuse when
 * read aloud or retyped). The 32 random characters carry 160 bits from
 * OpenSSL's CSPRNG; the checksum is the CRC32 (zlib) of everything before it,
 * written as 7 base32 digits, most significant first. A mistyped or made-up
 * svctok- string fails the checksum and is refused before any database work.
 * (The module looks a token of the right length and prefix up in its cache
 * first: a hit means the digest is one the database issued, so alphabet and
 * checksum can only be right, and the hot path is spared checking them.) The
 * database stores only the SHA-256 digest of a token, as 64 lower-case hex
 * characters.
 */
#ifndef STS_TOKEN_H
#define STS_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define STS_TOKEN_PREFIX "svctok-"
#define STS_TOKEN_PREFIX_LEN 7
#define STS_TOKEN_RANDOM_CHARS 32
#define STS_TOKEN_CHECKSUM_CHARS 7
#define STS_TOKEN_LEN                                                          \
    (STS_TOKEN_PREFIX_LEN + STS_TOKEN_RANDOM_CHARS + STS_TOKEN_CHECKSUM_CHARS)
/* Longest credential accepted from a client, in bytes. */
#define STS_TOKEN_MAX_LEN 512
#define STS_DIGEST_LEN 32
#define STS_DIGEST_HEX_LEN 64
/* Token IDs are positive and at most 2^53 - 1 so JSON clients keep them exact.
 */
#define STS_TOKEN_ID_MAX INT64_C(9007199254740991)

/* Writes a new token and its terminating NUL into out. Returns 0, or -1 when
 * the random generator fails (nothing usable is written then). */
int sts_token_generate(char out[STS_TOKEN_LEN + 1]);

/* Returns 1 when tok[0..len) starts with the svctok- prefix. */
int sts_token_has_prefix(const char *tok, size_t len);

/* Returns 1 when tok[0..len) is a complete token of our format whose checksum
 * matches, 0 otherwise. Runs in time independent of where a mismatch is. */
int sts_token_is_wellformed(const char *tok, size_t len);

/* SHA-256 of tok[0..len), raw and as lower-case hex (NUL-terminated).
 * sts_token_digest returns 0, or -1 (out zeroed) when libcrypto fails: the
 * caller must refuse, never go on with the zeroed digest. */
int sts_token_digest(const char *tok, size_t len,
                     unsigned char out[STS_DIGEST_LEN]);
/* The same, computed in ctx (an EVP_MD_CTX the caller keeps, e.g. one per
 * connection) instead of a context allocated per call; NULL ctx is
 * sts_token_digest. The finished context holds no token bytes (OpenSSL
 * cleanses its block buffer at the end of a digest). */
int sts_token_digest_reuse(EVP_MD_CTX *ctx, const char *tok, size_t len,
                           unsigned char out[STS_DIGEST_LEN]);
void sts_digest_to_hex(const unsigned char digest[STS_DIGEST_LEN],
                       char out[STS_DIGEST_HEX_LEN + 1]);

/* Constant-time comparison of two digests: 1 when equal. */
int sts_digest_equal(const unsigned char a[STS_DIGEST_LEN],
                     const unsigned char b[STS_DIGEST_LEN]);

/* A random token ID in [1, STS_TOKEN_ID_MAX]. Returns 0, or -1 on RNG failure.
 */
int sts_random_id(int64_t *id);

/* Parses a decimal token ID as found in a URL or on a command line: digits
 * only (no sign, space or leading zero), value in [1, STS_TOKEN_ID_MAX].
 * Returns 1 and sets *id when valid, 0 otherwise. */
int sts_parse_token_id(const char *s, size_t len, int64_t *id);

#endif
