/*
 * api_json.h - the token API's JSON: decoding and validating
 * NewServiceTokenRequest and rotation requests, encoding StackState's
 * response shapes. No Apache types: the module, the CLI, unit tests and
 * fuzzers share it.
 */
#ifndef STS_API_JSON_H
#define STS_API_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "roles.h"

/* Limits of the API (see README "Token API"). */
#define STS_API_MAX_BODY 65536
#define STS_API_MAX_ROTATE_BODY 1024
#define STS_API_MAX_NAME 255
#define STS_API_MAX_DESCRIPTION 1024
#define STS_API_MAX_SUBJECT 255
/* 9999-12-31T23:59:59.999Z: later expiry dates are refused. */
#define STS_API_MAX_EXPIRY_MS INT64_C(253402300799999)

/* A validated NewServiceTokenRequest. Strings are owned by the structure. */
typedef struct {
    char *name;
    char *description;       /* NULL when absent */
    char *dedicated_subject; /* NULL when absent or "" */
    char *roles;             /* comma-separated, duplicates removed */
    int64_t expiry_ms;       /* -1 when absent */
} sts_new_token;

typedef enum {
    STS_REQ_OK = 0,
    STS_REQ_BAD = 1,       /* 400 with a GenericErrorsResponse */
    STS_REQ_BAD_EXPIRY = 2 /* 400 ServiceTokenInvalidExpiryError */
} sts_req_status;

/* Decodes and validates a request body. now_ms is the current time (expiry
 * must be later). On failure writes a message naming the field into err. */
sts_req_status sts_new_token_parse(const char *body, size_t len, int64_t now_ms,
                                   sts_new_token *out, char *err,
                                   size_t errlen);

/* A validated rotation request: POST .../security/tokens/{id}/rotate with
 * an optional body {"gracePeriodSeconds": N, "expiryDate": ms}. */
typedef struct {
    int64_t grace_s;   /* -1 when absent (the default applies) */
    int64_t expiry_ms; /* -1 when absent (the expiration stays) */
} sts_rotate_req;

/* Decodes and validates a rotation request body (len 0 or blank: every
 * default). gracePeriodSeconds must be 0 to max_grace_s; expiryDate
 * follows sts_new_token_parse's rule. Unknown fields are refused. On
 * failure writes a message naming the field into err. */
sts_req_status sts_rotate_parse(const char *body, size_t len, int64_t now_ms,
                                int64_t max_grace_s, sts_rotate_req *out,
                                char *err, size_t errlen);

/* Frees what sts_new_token_parse allocated. */
void sts_new_token_free(sts_new_token *t);

/* One token as the API lists it. */
typedef struct {
    int64_t id;
    const char *name;
    const char *description;       /* NULL when unset */
    const char *dedicated_subject; /* NULL when unset */
    const char *roles;             /* comma-separated */
    int64_t expiration_ms;         /* -1 when none */
    int64_t last_update_ms;
    int64_t last_used_ms;       /* -1 when never used (field left out) */
    const char *last_used_from; /* NULL or "" when unknown (left out) */
} sts_token_json;

/* Encoders: each returns a malloc'd NUL-terminated JSON text (free() it), or
 * NULL when out of memory. */
char *sts_json_token_list(const sts_token_json *tokens, size_t n);
char *sts_json_token_created(const char *name, const char *token,
                             int64_t expiration_ms);
char *sts_json_errors(const char *tracking_key, int64_t now_ms, int status,
                      const char *message);
char *sts_json_expiry_error(const char *message);
char *sts_json_server_info(int major, int minor, int patch,
                           const char *platform_version, const char *commit);

#endif
