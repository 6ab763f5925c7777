/*
 * http.h - the sts HTTP client (libcurl): one request to the token API.
 */
#ifndef STS_CLI_HTTP_H
#define STS_CLI_HTTP_H

#include <stddef.h>

/* Where to send requests and how. */
typedef struct {
    const char *url;            /* e.g. https://sts.example.com */
    const char *token;          /* sent as X-API-Key; never printed */
    const char *api_path;       /* e.g. /api */
    const char *ca_cert_path;   /* PEM file of CAs to trust, or NULL */
    const char *ca_cert_base64; /* the same, base64 (from a context) */
    int skip_ssl;
    long timeout; /* seconds for a whole request; 0: CLI_REQUEST_TIMEOUT */
} cli_target;

typedef struct {
    long status; /* 0 when no HTTP answer arrived */
    char *body;  /* NUL-terminated, malloc'd */
    size_t len;
    char auth_error[256]; /* error_description from WWW-Authenticate */
    char error[512];      /* why no answer arrived */
    int too_large;        /* the answer exceeded CLI_MAX_RESPONSE */
} cli_response;

/* Largest answer accepted (a list of many tokens fits easily). */
#define CLI_MAX_RESPONSE (16 * 1024 * 1024)

/* Connect timeout and default timeout of a whole request (STS_CLI_TIMEOUT
 * overrides it, 1 to CLI_MAX_TIMEOUT), in seconds. */
#define CLI_CONNECT_TIMEOUT 10
#define CLI_REQUEST_TIMEOUT 60
#define CLI_MAX_TIMEOUT 3600

/* Sends method to target's api_path + path with an optional JSON body.
 * Returns 0 when an HTTP answer arrived (any status), -1 otherwise (error
 * set). The caller frees resp->body. */
int cli_http(const cli_target *t, const char *method, const char *path,
             const char *json_body, cli_response *resp);

/* The full URL of path, for messages (never contains the token). */
void cli_http_url(const cli_target *t, const char *path, char *out,
                  size_t outlen);

#endif
