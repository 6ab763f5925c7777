/*
 * api.c - the "sts-token-api" handler: StackState's service token API
 * (GET/POST .../security/tokens, DELETE .../security/tokens/{id},
 * GET .../server/info) and the rotation this module adds (POST
 * .../security/tokens/{id}/rotate) served below the base that STSTokenAPIBase
 * sets in the section that sets the handler (api_base.c).
 */
#include "httpd.h"

#include "api.h"

#include <stdlib.h>
#include <string.h>

#include "apr_strings.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "api_base.h"
#include "api_json.h"
#include "authz.h"
#include "cache.h"
#include "status.h"
#include "store.h"
#include "sts.h"

APLOG_USE_MODULE(sts_token);

#define STS_HANDLER "sts-token-api"
#define STS_ROUTE_TOKENS "/security/tokens"
#define STS_ROUTE_INFO "/server/info"
#define STS_ROUTE_ROTATE_SUFFIX "/rotate"

typedef enum {
    STS_ROUTE_NONE,
    STS_ROUTE_COLLECTION,
    STS_ROUTE_ITEM,
    STS_ROUTE_ROTATE,
    STS_ROUTE_SERVER_INFO
} sts_route;

/* Current time in epoch milliseconds. */
static int64_t sts_now_ms(void)
{
    return (int64_t)(apr_time_now() / 1000);
}

/* Sends a JSON text (malloc'd; wiped and freed here) with the given status,
 * Content-Length and no-store/nosniff headers. */
static int sts_send_json(request_rec *r, int status, char *json)
{
    if (json == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    r->status = status;
    ap_set_content_type(r, "application/json");
    ap_set_content_length(r, (apr_off_t)strlen(json));
    /* Token data is never cached by browsers or proxies, never sniffed. */
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    if (!r->header_only) {
        ap_rwrite(json, (int)strlen(json), r);
    }
    /* The create answer holds a secret: leave no copy in freed memory. */
    OPENSSL_cleanse(json, strlen(json));
    free(json);
    return OK;
}

/* A random trackingKey (16 hex digits) into key. */
static void sts_tracking_key(char key[17])
{
    unsigned char rnd[8];
    int i;

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        memset(rnd, 0, sizeof(rnd));
    }
    for (i = 0; i < 8; i++) {
        apr_snprintf(key + 2 * i, 3, "%02x", rnd[i]);
    }
}

/* Answers an error as a GenericErrorsResponse and logs it with the same
 * tracking key. level is the log level of the refusal: debug for a 503,
 * whose error-level report comes once per interval from the store
 * (sts_store_unavailable counts it). */
static int sts_send_error(request_rec *r, int status, int level,
                          const char *message)
{
    char key[17];

    sts_tracking_key(key);
    if (status == HTTP_SERVICE_UNAVAILABLE) {
        sts_status_count(STS_STAT_UNAVAILABLE);
    }
    ap_log_rerror(APLOG_MARK, level, 0, r,
                  "token API %s %s -> %d: %s (trackingKey %s)", r->method,
                  r->uri, status, message, key);
    if (status == HTTP_SERVICE_UNAVAILABLE) {
        sts_store_unavailable(r);
    }
    return sts_send_json(r, status,
                         sts_json_errors(key, sts_now_ms(), status, message));
}

/* A rotation's path: rest ends with "/rotate" after a non-empty {id}
 * segment, which goes (pool-allocated) to *item. */
static int sts_rotate_item(apr_pool_t *p, const char *rest, size_t len,
                           const char **item)
{
    size_t nr = strlen(STS_ROUTE_ROTATE_SUFFIX);
    const char *id = rest;
    size_t idlen;

    if (len <= nr || strcmp(rest + len - nr, STS_ROUTE_ROTATE_SUFFIX) != 0) {
        return 0;
    }
    idlen = len - nr;
    if (memchr(id, '/', idlen) != NULL) {
        return 0;
    }
    *item = apr_pstrmemdup(p, id, idlen);
    return 1;
}

/* Parses rest, the part of the path below the API's base ("" or starting
 * with '/'), into a route. *item receives the {id} segment of an item. */
static sts_route sts_parse_route(apr_pool_t *p, const char *rest,
                                 const char **item)
{
    size_t n = strlen(STS_ROUTE_TOKENS);

    *item = NULL;
    if (strcmp(rest, STS_ROUTE_INFO) == 0) {
        return STS_ROUTE_SERVER_INFO;
    }
    if (strcmp(rest, STS_ROUTE_TOKENS) == 0) {
        return STS_ROUTE_COLLECTION;
    }
    if (strncmp(rest, STS_ROUTE_TOKENS "/", n + 1) == 0 &&
        rest[n + 1] != '\0') {
        if (strchr(rest + n + 1, '/') == NULL) {
            *item = rest + n + 1;
            return STS_ROUTE_ITEM;
        }
        if (sts_rotate_item(p, rest + n + 1, strlen(rest + n + 1), item)) {
            return STS_ROUTE_ROTATE;
        }
    }
    return STS_ROUTE_NONE;
}

/* 1 when the section's configuration sets the handler to sts-token-api
 * (SetHandler, evaluated for r as core does it). */
static int sts_section_sets_handler(request_rec *r, core_dir_config *c)
{
    const char *h = c->handler, *err = NULL;

    if (c->expr_handler != NULL) {
        h = ap_expr_str_exec(r, c->expr_handler, &err);
        if (err != NULL) {
            h = NULL;
        }
    }
    return h != NULL && ap_cstr_casecmp(h, STS_HANDLER) == 0;
}

/* Finds the route from the end of the path: the last segments
 * "/server/info", "/security/tokens", "/security/tokens/{id}" or
 * "/security/tokens/{id}/rotate". Used when no STSTokenAPIBase applies. */
static sts_route sts_route_from_end(apr_pool_t *p, const char *uri,
                                    const char **item)
{
    size_t n = strlen(uri), ni = strlen(STS_ROUTE_INFO),
           nt = strlen(STS_ROUTE_TOKENS), nr = strlen(STS_ROUTE_ROTATE_SUFFIX);
    const char *slash;

    *item = NULL;
    if (n > nr && strcmp(uri + n - nr, STS_ROUTE_ROTATE_SUFFIX) == 0) {
        const char *end = uri + n - nr;

        for (slash = end; slash > uri && slash[-1] != '/'; slash--) {
        }
        if (slash > uri && slash < end && (size_t)(slash - 1 - uri) >= nt &&
            strncmp(slash - 1 - nt, STS_ROUTE_TOKENS, nt) == 0) {
            *item = apr_pstrmemdup(p, slash, (apr_size_t)(end - slash));
            return STS_ROUTE_ROTATE;
        }
    }
    if (n >= ni && strcmp(uri + n - ni, STS_ROUTE_INFO) == 0) {
        return STS_ROUTE_SERVER_INFO;
    }
    if (n >= nt && strcmp(uri + n - nt, STS_ROUTE_TOKENS) == 0) {
        return STS_ROUTE_COLLECTION;
    }
    slash = strrchr(uri, '/');
    if (slash != NULL && slash[1] != '\0' && (size_t)(slash - uri) >= nt &&
        strncmp(slash - nt, STS_ROUTE_TOKENS, nt) == 0) {
        *item = slash + 1;
        return STS_ROUTE_ITEM;
    }
    return STS_ROUTE_NONE;
}

/* Splits r->uri into a route below the API's base (STSTokenAPIBase, see
 * api_base.c): a path outside the base, or below it but not a route, is
 * 404 (so /api/x/server/info is unknown under <Location "/api">). Without
 * STSTokenAPIBase the route is read from the end of the path. */
static sts_route sts_find_route(request_rec *r, const char **item)
{
    apr_ssize_t base = sts_api_base_len(r);

    *item = NULL;
    if (base == STS_API_BASE_UNSET) {
        return sts_route_from_end(r->pool, r->uri, item);
    }
    if (base < 0) {
        return STS_ROUTE_NONE;
    }
    return sts_parse_route(r->pool, r->uri + base, item);
}

/* Answers 405 with the Allow header. */
static int sts_method_not_allowed(request_rec *r, const char *allow)
{
    apr_table_setn(r->headers_out, "Allow", allow);
    return sts_send_error(r, HTTP_METHOD_NOT_ALLOWED, APLOG_INFO,
                          apr_psprintf(r->pool,
                                       "method %s is not allowed here; use %s",
                                       r->method, allow));
}

/* Who is calling, for the audit log: user name and token ID when known. */
static const char *sts_caller(request_rec *r)
{
    const sts_identity *id = sts_request_identity(r);

    if (id != NULL) {
        return apr_psprintf(r->pool, "'%s' (token id %" APR_INT64_T_FMT ")",
                            r->user, id->id);
    }
    return apr_psprintf(r->pool, "'%s' (AuthType %s)", r->user,
                        r->ap_auth_type ? r->ap_auth_type : "unknown");
}

/* GET .../security/tokens */
static int sts_list(request_rec *r)
{
    apr_array_header_t *rows;
    sts_token_json *out;
    int i;

    if (sts_store_list(r, &rows) != APR_SUCCESS) {
        return sts_send_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_DEBUG,
                              "the token database is unavailable; try again "
                              "later");
    }
    out = apr_pcalloc(r->pool, sizeof(*out) * (rows->nelts + 1));
    for (i = 0; i < rows->nelts; i++) {
        const sts_token_row *t = &APR_ARRAY_IDX(rows, i, sts_token_row);

        out[i].id = t->id;
        out[i].name = t->name;
        out[i].description = t->description;
        out[i].dedicated_subject = t->dedicated_subject;
        out[i].roles = t->roles;
        out[i].expiration_ms = t->expiration_ms;
        out[i].last_update_ms = t->last_update_ms;
        out[i].last_used_ms = t->last_used_ms;
        out[i].last_used_from = t->last_used_from;
    }
    return sts_send_json(r, HTTP_OK,
                         sts_json_token_list(out, (size_t)rows->nelts));
}

/* 1 when the request's Content-Type is application/json (any parameters). */
static int sts_is_json(request_rec *r)
{
    const char *ct = apr_table_get(r->headers_in, "Content-Type");
    size_t n = strlen("application/json");

    if (ct == NULL) {
        return 0;
    }
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    return ap_cstr_casecmpn(ct, "application/json", n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t');
}

/* The largest request body the API reads: 64 KiB, or less when the
 * administrator's LimitRequestBody is lower. */
static apr_size_t sts_body_limit(request_rec *r)
{
    apr_off_t lim = ap_get_limit_req_body(r);

    if (lim > 0 && lim < STS_API_MAX_BODY) {
        return (apr_size_t)lim;
    }
    return STS_API_MAX_BODY;
}

/* Reads the request body (Content-Length or chunked) into *body,
 * NUL-terminated, at most limit bytes. Returns OK; 413 when it is larger;
 * AP_FILTER_ERROR when httpd's input filter has already answered (e.g. its
 * own LimitRequestBody check on a chunked body); or another HTTP status
 * (400 malformed chunking, 408 timeout). */
static int sts_read_body(request_rec *r, apr_size_t limit, char **body,
                         apr_size_t *len)
{
    apr_bucket_brigade *bb;
    apr_size_t got = 0;
    char *buf;
    int rc, eos = 0;

    rc = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK);
    if (rc != OK) {
        return rc;
    }
    if (r->remaining > (apr_off_t)limit) {
        r->connection->keepalive = AP_CONN_CLOSE;
        return HTTP_REQUEST_ENTITY_TOO_LARGE;
    }
    buf = apr_palloc(r->pool, limit + 1);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    while (!eos) {
        apr_status_t rv;
        apr_bucket *b;

        rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES,
                            APR_BLOCK_READ, HUGE_STRING_LEN);
        if (rv != APR_SUCCESS) {
            apr_brigade_destroy(bb);
            r->connection->keepalive = AP_CONN_CLOSE;
            return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
        }
        for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb) && !eos;
             b = APR_BUCKET_NEXT(b)) {
            const char *data;
            apr_size_t n;

            if (APR_BUCKET_IS_EOS(b)) {
                eos = 1;
                continue;
            }
            if (APR_BUCKET_IS_METADATA(b)) {
                continue;
            }
            rv = apr_bucket_read(b, &data, &n, APR_BLOCK_READ);
            if (rv != APR_SUCCESS) {
                apr_brigade_destroy(bb);
                r->connection->keepalive = AP_CONN_CLOSE;
                return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
            }
            if (n > limit - got) {
                apr_brigade_destroy(bb);
                r->connection->keepalive = AP_CONN_CLOSE;
                return HTTP_REQUEST_ENTITY_TOO_LARGE;
            }
            memcpy(buf + got, data, n);
            got += n;
        }
        apr_brigade_cleanup(bb);
    }
    apr_brigade_destroy(bb);
    buf[got] = '\0';
    *body = buf;
    *len = got;
    return OK;
}

/* Reads the request body for a handler that changes tokens: 1 with *body
 * and *len, else 0 with the answer given and *rc what the handler returns
 * (what names the change, e.g. "created", for "nothing was created"). */
static int sts_take_body(request_rec *r, apr_size_t limit, const char *what,
                         char **body, apr_size_t *len, int *rc)
{
    *rc = sts_read_body(r, limit, body, len);
    if (*rc == OK) {
        return 1;
    }
    if (*rc == AP_FILTER_ERROR) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "token API POST %s: reading the request body failed "
                      "and httpd has answered; nothing was %s",
                      r->uri, what);
    } else if (*rc == HTTP_REQUEST_ENTITY_TOO_LARGE) {
        *rc = sts_send_error(
            r, *rc, APLOG_INFO,
            apr_psprintf(r->pool,
                         "the request body is larger than %" APR_SIZE_T_FMT
                         " bytes; nothing was %s",
                         limit, what));
    } else {
        *rc = sts_send_error(
            r, *rc, APLOG_INFO,
            apr_pstrcat(r->pool,
                        "the request body could not be read (broken chunked "
                        "encoding or the client stopped sending); nothing "
                        "was ",
                        what, NULL));
    }
    return 0;
}

/* POST .../security/tokens */
static int sts_create(request_rec *r)
{
    char tok[STS_TOKEN_LEN + 1], hex[STS_DIGEST_HEX_LEN + 1], err[256];
    unsigned char digest[STS_DIGEST_LEN];
    sts_new_token req;
    sts_token_row row;
    uint64_t ticket;
    sts_req_status st;
    apr_size_t len = 0, limit;
    char *body = NULL, *json;
    const char *denied;
    int rc;

    if (!sts_is_json(r)) {
        return sts_send_error(r, HTTP_UNSUPPORTED_MEDIA_TYPE, APLOG_INFO,
                              "the request body must be sent with "
                              "Content-Type: application/json");
    }
    limit = sts_body_limit(r);
    if (!sts_take_body(r, limit, "created", &body, &len, &rc)) {
        return rc;
    }
    st = sts_new_token_parse(body, len, sts_now_ms(), &req, err, sizeof(err));
    if (st == STS_REQ_BAD_EXPIRY) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "token API: create refused: %s", err);
        return sts_send_json(r, HTTP_BAD_REQUEST, sts_json_expiry_error(err));
    }
    if (st != STS_REQ_OK) {
        return sts_send_error(r, HTTP_BAD_REQUEST, APLOG_INFO, err);
    }
    if ((denied = sts_role_not_grantable(r, req.roles)) != NULL) {
        denied = apr_psprintf(r->pool,
                              "this caller may not grant role '%s' here "
                              "(STSTokenAPIGrantableRoles); nothing was "
                              "created",
                              denied);
        sts_new_token_free(&req);
        return sts_send_error(r, HTTP_FORBIDDEN, APLOG_NOTICE, denied);
    }
    if (sts_token_generate(tok) != 0) {
        sts_new_token_free(&req);
        return sts_send_error(r, HTTP_INTERNAL_SERVER_ERROR, APLOG_ERR,
                              "the random generator failed");
    }
    if (sts_token_digest(tok, strlen(tok), digest) != 0) {
        sts_new_token_free(&req);
        OPENSSL_cleanse(tok, sizeof(tok));
        return sts_send_error(r, HTTP_INTERNAL_SERVER_ERROR, APLOG_ERR,
                              "cannot compute a SHA-256 digest (libcrypto "
                              "failed)");
    }
    sts_digest_to_hex(digest, hex);
    memset(&row, 0, sizeof(row));
    row.name = apr_pstrdup(r->pool, req.name);
    row.description =
        req.description ? apr_pstrdup(r->pool, req.description) : NULL;
    row.dedicated_subject = req.dedicated_subject
                                ? apr_pstrdup(r->pool, req.dedicated_subject)
                                : NULL;
    row.roles = apr_pstrdup(r->pool, req.roles);
    row.expiration_ms = req.expiry_ms;
    row.until_ms = -1;
    sts_new_token_free(&req);
    ticket = sts_cache_ticket(r);
    if (sts_store_create(r, &row, hex) != APR_SUCCESS) {
        OPENSSL_cleanse(tok, sizeof(tok));
        return sts_send_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_DEBUG,
                              "the token could not be stored (database "
                              "unavailable); nothing was created");
    }
    /* Works at once in this process; elsewhere at the next change read. */
    sts_cache_created(r, digest, &row, ticket);
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                  "token API: %s created token id %" APR_INT64_T_FMT
                  " name '%s' roles [%s] expiration %" APR_INT64_T_FMT
                  " dedicatedSubject '%s'",
                  sts_caller(r), row.id, row.name, row.roles, row.expiration_ms,
                  row.dedicated_subject ? row.dedicated_subject : "");
    json = sts_json_token_created(row.name, tok, row.expiration_ms);
    OPENSSL_cleanse(tok, sizeof(tok));
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    return sts_send_json(r, HTTP_OK, json);
}

/* DELETE .../security/tokens/{id} */
static int sts_delete(request_rec *r, const char *item)
{
    sts_token_row *row = NULL;
    int64_t id;

    if (!sts_parse_token_id(item, strlen(item), &id)) {
        return sts_send_error(r, HTTP_BAD_REQUEST, APLOG_INFO,
                              "the token id must be a number from 1 to "
                              "9007199254740991, without sign, spaces or "
                              "leading zeros");
    }
    if (sts_store_delete(r, id, &row) != APR_SUCCESS) {
        return sts_send_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_DEBUG,
                              "the token database is unavailable; nothing "
                              "was deleted");
    }
    if (row == NULL) {
        return sts_send_error(
            r, HTTP_NOT_FOUND, APLOG_INFO,
            apr_psprintf(r->pool, "no service token with id %" APR_INT64_T_FMT,
                         id));
    }
    sts_cache_deleted(r, row->digest);
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                  "token API: %s deleted token id %" APR_INT64_T_FMT
                  " name '%s' roles [%s]",
                  sts_caller(r), id, row->name, row->roles);
    r->status = HTTP_NO_CONTENT;
    return OK;
}

/* The grace period a rotation request gets (seconds): its own, else
 * STSTokenRotateGrace; both bounded by STSTokenRotateGraceMax. */
static int64_t sts_grace_default(const sts_dir_conf *dc)
{
    return dc->rotate_grace >= 0 ? dc->rotate_grace : STS_DEFAULT_ROTATE_GRACE;
}

static int64_t sts_grace_max(const sts_dir_conf *dc)
{
    return dc->rotate_grace_max >= 0 ? dc->rotate_grace_max
                                     : STS_DEFAULT_ROTATE_GRACE_MAX;
}

/* POST .../security/tokens/{id}/rotate: a new secret for the token, shown
 * once (as create answers); the old one stays valid for the grace period
 * or until the new one is first used (cache.h, sts_cache_retire). */
static int sts_rotate(request_rec *r, const char *item)
{
    sts_dir_conf *dc =
        ap_get_module_config(r->per_dir_config, &sts_token_module);
    char tok[STS_TOKEN_LEN + 1], hex[STS_DIGEST_HEX_LEN + 1], err[256];
    unsigned char digest[STS_DIGEST_LEN];
    sts_rotation *rot = NULL;
    sts_rotate_req req;
    sts_req_status st;
    apr_size_t len = 0, limit;
    uint64_t ticket;
    char *body = NULL, *json;
    const char *denied;
    int64_t id, grace;
    int rc;

    if (!sts_parse_token_id(item, strlen(item), &id)) {
        return sts_send_error(r, HTTP_BAD_REQUEST, APLOG_INFO,
                              "the token id must be a number from 1 to "
                              "9007199254740991, without sign, spaces or "
                              "leading zeros");
    }
    if (sts_grace_default(dc) > sts_grace_max(dc)) {
        return sts_send_error(
            r, HTTP_INTERNAL_SERVER_ERROR, APLOG_ERR,
            apr_psprintf(
                r->pool,
                "configuration error: STSTokenRotateGrace %" APR_INT64_T_FMT
                " is more than STSTokenRotateGraceMax %" APR_INT64_T_FMT
                " where this request is served; nothing was rotated",
                sts_grace_default(dc), sts_grace_max(dc)));
    }
    limit = sts_body_limit(r);
    if (limit > STS_API_MAX_ROTATE_BODY) {
        limit = STS_API_MAX_ROTATE_BODY;
    }
    if (!sts_take_body(r, limit, "rotated", &body, &len, &rc)) {
        return rc;
    }
    if (len > 0 && !sts_is_json(r)) {
        return sts_send_error(r, HTTP_UNSUPPORTED_MEDIA_TYPE, APLOG_INFO,
                              "a request body must be sent with "
                              "Content-Type: application/json");
    }
    st = sts_rotate_parse(body, len, sts_now_ms(), sts_grace_max(dc), &req, err,
                          sizeof(err));
    if (st == STS_REQ_BAD_EXPIRY) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "token API: rotation refused: %s", err);
        return sts_send_json(r, HTTP_BAD_REQUEST, sts_json_expiry_error(err));
    }
    if (st != STS_REQ_OK) {
        return sts_send_error(
            r, HTTP_BAD_REQUEST, APLOG_INFO,
            apr_psprintf(r->pool, "%s; nothing was rotated", err));
    }
    grace = req.grace_s >= 0 ? req.grace_s : sts_grace_default(dc);
    /* A new secret for a token is as good as a new token with its roles:
     * the same bound as create. */
    if (dc->grant_set == 1) {
        const char *name, *roles;

        if (sts_store_token_roles(r, id, &name, &roles) != APR_SUCCESS) {
            return sts_send_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_DEBUG,
                                  "the token database is unavailable; "
                                  "nothing was rotated");
        }
        if (roles != NULL &&
            (denied = sts_role_not_grantable(r, roles)) != NULL) {
            return sts_send_error(
                r, HTTP_FORBIDDEN, APLOG_NOTICE,
                apr_psprintf(r->pool,
                             "this caller may not grant role '%s' here "
                             "(STSTokenAPIGrantableRoles), so may not "
                             "rotate token id %" APR_INT64_T_FMT " ('%s'); "
                             "nothing was rotated",
                             denied, id, name));
        }
    }
    if (sts_token_generate(tok) != 0) {
        return sts_send_error(r, HTTP_INTERNAL_SERVER_ERROR, APLOG_ERR,
                              "the random generator failed");
    }
    if (sts_token_digest(tok, strlen(tok), digest) != 0) {
        OPENSSL_cleanse(tok, sizeof(tok));
        return sts_send_error(r, HTTP_INTERNAL_SERVER_ERROR, APLOG_ERR,
                              "cannot compute a SHA-256 digest (libcrypto "
                              "failed)");
    }
    sts_digest_to_hex(digest, hex);
    ticket = sts_cache_ticket(r);
    if (sts_store_rotate(r, id, hex, grace * 1000, req.expiry_ms, &rot) !=
        APR_SUCCESS) {
        OPENSSL_cleanse(tok, sizeof(tok));
        return sts_send_error(r, HTTP_SERVICE_UNAVAILABLE, APLOG_DEBUG,
                              "the token database is unavailable; nothing "
                              "was rotated");
    }
    if (rot == NULL) {
        OPENSSL_cleanse(tok, sizeof(tok));
        return sts_send_error(
            r, HTTP_NOT_FOUND, APLOG_INFO,
            apr_psprintf(r->pool, "no service token with id %" APR_INT64_T_FMT,
                         id));
    }
    /* Works at once in this process; elsewhere at the next change read. */
    sts_cache_rotated(r, digest, rot, ticket);
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                  "token API: %s rotated token id %" APR_INT64_T_FMT
                  " name '%s' roles [%s] expiration %" APR_INT64_T_FMT
                  ": previous secret valid %s%s",
                  sts_caller(r), id, rot->token.name, rot->token.roles,
                  rot->token.expiration_ms,
                  grace > 0 ? apr_psprintf(r->pool,
                                           "for %" APR_INT64_T_FMT
                                           " s or until the new one is "
                                           "first used",
                                           grace)
                            : "no longer",
                  rot->dropped ? "; the secret before it was revoked" : "");
    json =
        sts_json_token_created(rot->token.name, tok, rot->token.expiration_ms);
    OPENSSL_cleanse(tok, sizeof(tok));
    return sts_send_json(r, HTTP_OK, json);
}

/* The handler: dispatches a route and method. */
static int sts_api_handler(request_rec *r)
{
    const char *item;
    sts_route route;

    if (r->handler == NULL || strcmp(r->handler, STS_HANDLER) != 0) {
        return DECLINED;
    }
    if (r->user == NULL) {
        /* No authentication ran: token management is never anonymous. */
        return sts_send_error(
            r, HTTP_FORBIDDEN, APLOG_ERR,
            "the token API requires an authenticated caller: configure "
            "AuthType ServiceToken (or another AuthType) and a Require line "
            "for this location");
    }
    route = sts_find_route(r, &item);
    switch (route) {
    case STS_ROUTE_COLLECTION:
        if (r->method_number == M_GET) {
            return sts_list(r);
        }
        if (r->method_number == M_POST) {
            return sts_create(r);
        }
        return sts_method_not_allowed(r, "GET, HEAD, POST");
    case STS_ROUTE_ITEM:
        if (r->method_number == M_DELETE) {
            return sts_delete(r, item);
        }
        return sts_method_not_allowed(r, "DELETE");
    case STS_ROUTE_ROTATE:
        if (r->method_number == M_POST) {
            return sts_rotate(r, item);
        }
        return sts_method_not_allowed(r, "POST");
    case STS_ROUTE_SERVER_INFO:
        if (r->method_number == M_GET) {
            return sts_send_json(r, HTTP_OK,
                                 sts_json_server_info(STS_API_VERSION_MAJOR,
                                                      STS_API_VERSION_MINOR,
                                                      STS_API_VERSION_PATCH,
                                                      STS_VERSION, STS_COMMIT));
        }
        return sts_method_not_allowed(r, "GET, HEAD");
    case STS_ROUTE_NONE:
        break;
    }
    return sts_send_error(r, HTTP_NOT_FOUND, APLOG_INFO,
                          apr_psprintf(r->pool,
                                       "no such API route: %s (routes: "
                                       "security/tokens, security/tokens/{id}, "
                                       "security/tokens/{id}/rotate, "
                                       "server/info)",
                                       ap_escape_uri(r->pool, r->uri)));
}

/* The message of an error httpd answers under the API (before or instead of
 * the handler), saying what the caller can do about it. */
static const char *sts_error_message(request_rec *r, int status)
{
    const char *why = apr_table_get(r->notes, STS_NOTE_REFUSAL);
    const char *notes = apr_table_get(r->notes, "error-notes");
    const char *uri = ap_escape_uri(r->pool, r->uri);
    const char *type = ap_auth_type(r);

    switch (status) {
    case HTTP_UNAUTHORIZED:
        if (r->user != NULL) {
            break; /* authorization refused: as 403 */
        }
        if (type == NULL || ap_cstr_casecmp(type, STS_AUTH_TYPE) != 0) {
            return apr_psprintf(r->pool,
                                "authentication required (AuthType %s): the "
                                "credentials were missing or refused",
                                type ? type : "none");
        }
        if (why != NULL) {
            return apr_psprintf(r->pool,
                                "the service token was refused: %s. Check "
                                "the token you sent, or ask an administrator "
                                "for a new one",
                                why);
        }
        return "no service token in the request: send it as 'X-API-Key: "
               "<token>' or 'Authorization: ApiKey <token>'";
    case HTTP_BAD_REQUEST:
    case HTTP_SERVICE_UNAVAILABLE:
        /* The module's own reasons (malformed credentials, database down)
         * and core's for a bad request; as httpd's page shows them. */
        if (notes != NULL) {
            return notes;
        }
        break;
    }
    if (status == HTTP_FORBIDDEN || status == HTTP_UNAUTHORIZED) {
        if (r->user != NULL) {
            return apr_psprintf(r->pool,
                                "'%s' is authenticated but not allowed to %s "
                                "%s: it lacks a role this location requires "
                                "(token management needs an administrator "
                                "role)",
                                r->user, r->method, uri);
        }
        return apr_psprintf(r->pool,
                            "access to %s is denied by the server's "
                            "configuration",
                            uri);
    }
    return apr_psprintf(r->pool, "%s (%s %s)", ap_get_status_line(status) + 4,
                        r->method, uri);
}

/* The JSON body of an error answered by httpd, prepared by
 * sts_insert_error_filter. */
typedef struct {
    char *json; /* malloc'd GenericErrorsResponse */
    int sent;
} sts_error_ctx;

static apr_status_t sts_error_ctx_free(void *data)
{
    sts_error_ctx *ctx = data;

    free(ctx->json);
    ctx->json = NULL;
    return APR_SUCCESS;
}

/* Output filter of an error response under the API: replaces httpd's HTML
 * page (or an ErrorDocument text) by the GenericErrorsResponse, as
 * application/json. Headers such as WWW-Authenticate are left as they are. */
static apr_status_t sts_error_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    sts_error_ctx *ctx = f->ctx;
    request_rec *r = f->r;
    apr_bucket *b = APR_BRIGADE_FIRST(bb);

    if (!ctx->sent) {
        ap_set_content_type(r, "application/json");
        apr_table_setn(r->headers_out, "Cache-Control", "no-store");
        apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    }
    while (b != APR_BRIGADE_SENTINEL(bb)) {
        apr_bucket *next = APR_BUCKET_NEXT(b);

        if (APR_BUCKET_IS_EOS(b)) {
            if (!ctx->sent && !r->header_only && ctx->json != NULL) {
                size_t n = strlen(ctx->json);

                APR_BUCKET_INSERT_BEFORE(
                    b, apr_bucket_transient_create(ctx->json, n,
                                                   bb->bucket_alloc));
                ap_set_content_length(r, (apr_off_t)n);
            }
            ctx->sent = 1;
        } else if (!APR_BUCKET_IS_METADATA(b)) {
            apr_bucket_delete(b); /* httpd's HTML page */
        }
        b = next;
    }
    return ap_pass_brigade(f->next, bb);
}

/* insert_error_filter hook: an error under a location served by the token
 * API (an authentication or authorization refusal, a body too large) gets a
 * JSON body like the API's own errors; elsewhere httpd's pages stay. */
static void sts_insert_error_filter(request_rec *r)
{
    core_dir_config *c = ap_get_core_module_config(r->per_dir_config);
    sts_error_ctx *ctx;
    char key[17];

    if (r->status < 400 || c == NULL || !sts_section_sets_handler(r, c)) {
        return;
    }
    ctx = apr_pcalloc(r->pool, sizeof(*ctx));
    sts_tracking_key(key);
    ctx->json = sts_json_errors(key, sts_now_ms(), r->status,
                                sts_error_message(r, r->status));
    apr_pool_cleanup_register(r->pool, ctx, sts_error_ctx_free,
                              apr_pool_cleanup_null);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "token API %s %s -> %d answered by httpd: JSON error body "
                  "(trackingKey %s)",
                  r->method, r->uri, r->status, key);
    ap_add_output_filter("STS_TOKEN_API_ERROR", ctx, r, r->connection);
}

/* Registers the handler and the JSON error bodies. */
void sts_api_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_handler(sts_api_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_insert_error_filter(sts_insert_error_filter, NULL, NULL,
                                APR_HOOK_MIDDLE);
    ap_register_output_filter("STS_TOKEN_API_ERROR", sts_error_filter, NULL,
                              AP_FTYPE_CONTENT_SET);
}
