/*
 * credentials.h - reading a service token from request header values
 * (no Apache types, so unit tests and fuzzers call it directly).
 *
 * Two forms are accepted, as StackState accepts them:
 *   Authorization: ApiKey <TOKEN>   (scheme case-insensitive, 1+ spaces/tabs)
 *   X-API-Key: <TOKEN>
 * Both may be present when they carry the same token. An Authorization
 * value holding more than one credential (httpd joins repeated headers with
 * ", ") is refused when any of them is an ApiKey one. A token is 1 to
 * STS_TOKEN_MAX_LEN bytes of visible ASCII (0x21-0x7e).
 */
#ifndef STS_CREDENTIALS_H
#define STS_CREDENTIALS_H

#include <stddef.h>

typedef enum {
    STS_CRED_NONE = 0, /* no ApiKey credentials in the request */
    STS_CRED_OK = 1,   /* one token found */
    STS_CRED_BAD = 2   /* malformed or contradictory: answer 400 */
} sts_cred_status;

typedef struct {
    const char *token; /* points into the header value; not NUL-terminated */
    size_t len;
    /* For STS_CRED_BAD: why, for the client and the log (never the token). */
    const char *reason;
    int from_authorization; /* token came (also) from Authorization */
    int from_api_key;       /* token came (also) from X-API-Key */
} sts_credential;

/* Finds the token in the request's headers.
 * authorization: the Authorization (Proxy-Authorization for proxy requests)
 *   value, or NULL when absent;
 * api_keys/n_api_keys: every X-API-Key value the request carries (n > 1
 *   means the header was repeated).
 * Fills *out and returns its status. */
sts_cred_status sts_credentials_parse(const char *authorization,
                                      const char *const *api_keys,
                                      size_t n_api_keys, sts_credential *out);

/* Returns 1 when an Authorization value uses the ApiKey scheme. */
int sts_authorization_is_apikey(const char *value);

/* Returns 1 when an Authorization value carries an ApiKey credential, first
 * or after a comma (repeated headers joined by httpd). */
int sts_authorization_has_apikey(const char *value);

#endif
