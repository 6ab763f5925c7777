/*
 * credentials.c - reading a service token from request header values.
 */
#include "credentials.h"

#include <string.h>

#include "token.h"

#define STS_SCHEME "ApiKey"
#define STS_SCHEME_LEN 6

/* Space or horizontal tab, the only separators HTTP allows here. */
static int sts_is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* Case-insensitive ASCII comparison of n bytes. */
static int sts_ascii_caseeq(const char *a, const char *b, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        char x = a[i], y = b[i];

        if (x >= 'A' && x <= 'Z') {
            x = (char)(x - 'A' + 'a');
        }
        if (y >= 'A' && y <= 'Z') {
            y = (char)(y - 'A' + 'a');
        }
        if (x != y) {
            return 0;
        }
    }
    return 1;
}

/* Checks that a token is non-empty, bounded and made of visible ASCII. */
static sts_cred_status sts_check_token(const char *tok, size_t len,
                                       const char **reason)
{
    size_t i;

    if (len == 0) {
        *reason = "empty token";
        return STS_CRED_BAD;
    }
    if (len > STS_TOKEN_MAX_LEN) {
        *reason = "token longer than 512 bytes";
        return STS_CRED_BAD;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)tok[i];

        if (c <= 0x20 || c >= 0x7f) {
            *reason = "token contains spaces, control or non-ASCII characters";
            return STS_CRED_BAD;
        }
    }
    return STS_CRED_OK;
}

/* Trims spaces and tabs on both ends of s[0..*len). */
static const char *sts_trim(const char *s, size_t *len)
{
    while (*len > 0 && sts_is_ws(s[0])) {
        s++;
        (*len)--;
    }
    while (*len > 0 && sts_is_ws(s[*len - 1])) {
        (*len)--;
    }
    return s;
}

/* Length of the auth-scheme at the start of value (up to space/tab/end). */
static size_t sts_scheme_len(const char *value)
{
    size_t n = 0;

    while (value[n] != '\0' && !sts_is_ws(value[n])) {
        n++;
    }
    return n;
}

/* True when the Authorization value uses the ApiKey scheme. */
int sts_authorization_is_apikey(const char *value)
{
    while (sts_is_ws(*value)) {
        value++;
    }
    return sts_scheme_len(value) == STS_SCHEME_LEN &&
           sts_ascii_caseeq(value, STS_SCHEME, STS_SCHEME_LEN);
}

/* 1 when a header value looks like httpd merged repeated headers into it
 * ("a, b"): a comma followed by a space or tab. */
static int sts_looks_merged(const char *v, size_t len)
{
    size_t i;

    for (i = 0; i + 1 < len; i++) {
        if (v[i] == ',' && sts_is_ws(v[i + 1])) {
            return 1;
        }
    }
    return 0;
}

/* 1 when a credential after a comma of value uses the ApiKey scheme: httpd
 * joins repeated Authorization headers with ", ", so "Basic x, ApiKey T"
 * carries a second credential the request could be taken for. */
static int sts_list_has_apikey(const char *value)
{
    const char *comma;

    for (comma = strchr(value, ','); comma != NULL;
         comma = strchr(comma + 1, ',')) {
        if (sts_authorization_is_apikey(comma + 1)) {
            return 1;
        }
    }
    return 0;
}

/* True when an Authorization value carries an ApiKey credential anywhere. */
int sts_authorization_has_apikey(const char *value)
{
    return sts_authorization_is_apikey(value) || sts_list_has_apikey(value);
}

/* Extracts the token from "ApiKey <token>"; NONE for other schemes, BAD for
 * any list holding an ApiKey credential but the first alone. */
static sts_cred_status sts_parse_authorization(const char *value,
                                               const char **tok, size_t *len,
                                               const char **reason)
{
    size_t n;

    if (value == NULL) {
        return STS_CRED_NONE;
    }
    if (!sts_authorization_is_apikey(value)) {
        if (sts_list_has_apikey(value)) {
            *reason = "Authorization header repeated (it carries an ApiKey "
                      "credential after another one)";
            return STS_CRED_BAD;
        }
        return STS_CRED_NONE;
    }
    while (sts_is_ws(*value)) {
        value++;
    }
    value += STS_SCHEME_LEN;
    n = strlen(value);
    *tok = sts_trim(value, &n);
    *len = n;
    if (sts_check_token(*tok, *len, reason) == STS_CRED_BAD) {
        /* A merged value fails the check (it holds a space): say why. */
        if (sts_looks_merged(*tok, *len)) {
            *reason = "Authorization header repeated";
        }
        return STS_CRED_BAD;
    }
    return STS_CRED_OK;
}

/* Constant-time equality of two byte strings of possibly different length. */
static int sts_same_token(const char *a, size_t alen, const char *b,
                          size_t blen)
{
    unsigned char diff = 0;
    size_t i;

    if (alen != blen) {
        return 0;
    }
    for (i = 0; i < alen; i++) {
        diff |= (unsigned char)(a[i] ^ b[i]);
    }
    return diff == 0;
}

/* Combines both header forms into one credential (see credentials.h). */
sts_cred_status sts_credentials_parse(const char *authorization,
                                      const char *const *api_keys,
                                      size_t n_api_keys, sts_credential *out)
{
    const char *atok = NULL, *ktok = NULL;
    size_t alen = 0, klen = 0;
    sts_cred_status as, ks = STS_CRED_NONE;

    memset(out, 0, sizeof(*out));
    as = sts_parse_authorization(authorization, &atok, &alen, &out->reason);
    if (as == STS_CRED_BAD) {
        return STS_CRED_BAD;
    }
    if (n_api_keys > 1) {
        out->reason = "X-API-Key header repeated";
        return STS_CRED_BAD;
    }
    if (n_api_keys == 1) {
        klen = strlen(api_keys[0]);
        ktok = sts_trim(api_keys[0], &klen);
        ks = sts_check_token(ktok, klen, &out->reason);
        if (ks == STS_CRED_BAD) {
            if (sts_looks_merged(ktok, klen)) {
                out->reason = "X-API-Key header repeated";
            }
            return STS_CRED_BAD;
        }
    }
    if (as == STS_CRED_OK && ks == STS_CRED_OK &&
        !sts_same_token(atok, alen, ktok, klen)) {
        out->reason = "Authorization and X-API-Key carry different tokens";
        return STS_CRED_BAD;
    }
    if (as == STS_CRED_NONE && ks == STS_CRED_NONE) {
        return STS_CRED_NONE;
    }
    out->from_authorization = as == STS_CRED_OK;
    out->from_api_key = ks == STS_CRED_OK;
    out->token = as == STS_CRED_OK ? atok : ktok;
    out->len = as == STS_CRED_OK ? alen : klen;
    return STS_CRED_OK;
}
