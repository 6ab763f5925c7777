/*
 * authn.c - the check_authn hook: find the token in the request, recognise
 * the bootstrap secret or look the token's digest up (cache, then
 * PostgreSQL), and publish the identity to the rest of httpd.
 */
#include "httpd.h"
#include "authn.h"

#include "apr_lib.h"
#include "apr_strings.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "mod_auth.h"

#include <openssl/evp.h>

#include "bootstrap.h"
#include "cache.h"
#include "credentials.h"
#include "names.h"
#include "status.h"
#include "store.h"
#include "sts.h"

APLOG_USE_MODULE(sts_token);

/* At most this many X-API-Key headers are looked at (more is a 400 anyway). */
#define STS_MAX_API_KEY_HEADERS 4

typedef struct {
    const char *values[STS_MAX_API_KEY_HEADERS];
    size_t n;
} sts_api_keys;

/* Frees a connection's digest context (pool cleanup). */
static apr_status_t sts_free_digest_ctx(void *ctx)
{
    EVP_MD_CTX_free(ctx);
    return APR_SUCCESS;
}

/* The connection's reusable SHA-256 context, created with its first token
 * and freed with the connection: on keep-alive connections it spares an
 * allocation per request (a measured 1-2 us under contention). A conn_rec
 * serves one request at a time (HTTP/2 streams have their own). NULL when
 * it cannot be created: the digest then allocates its own. */
static EVP_MD_CTX *sts_conn_digest_ctx(conn_rec *c)
{
    EVP_MD_CTX *ctx = ap_get_module_config(c->conn_config, &sts_token_module);

    if (ctx == NULL) {
        ctx = EVP_MD_CTX_new();
        if (ctx != NULL) {
            ap_set_module_config(c->conn_config, &sts_token_module, ctx);
            apr_pool_cleanup_register(c->pool, ctx, sts_free_digest_ctx,
                                      apr_pool_cleanup_null);
        }
    }
    return ctx;
}

/* Prefix of request header names a client could send to pass for the
 * module's own identity when a backend maps STS_TOKEN_* to headers, compared
 * with case and '-'/'_' ignored (CGI, WSGI, PHP and Rack map both to '_'). */
#define STS_SPOOF_PREFIX "STS-TOKEN-"

/* 1 when a header name looks like the module's identity. */
static int sts_spoofed_name(const char *key)
{
    size_t i, n = sizeof(STS_SPOOF_PREFIX) - 1;

    for (i = 0; i < n; i++) {
        char c = key[i] == '_' ? '-' : (char)apr_toupper(key[i]);

        if (key[i] == '\0' || c != STS_SPOOF_PREFIX[i]) {
            return 0;
        }
    }
    return 1;
}

/* What the module keeps about one request, in r->request_config: who it
 * authenticated as, and its AuthType as the module's hooks see it. AuthType
 * is an expression httpd evaluates on every ap_auth_type() call, and three
 * hooks ask for it, so it is evaluated once per configuration the request
 * has: a fast internal redirect (mod_negotiation's MultiViews, between
 * authentication and the fixups) gives the request another per_dir_config
 * and keeps its request_config. */
typedef enum {
    STS_REQ_AUTH_OURS,  /* AuthType ServiceToken */
    STS_REQ_AUTH_BASIC, /* AuthType Basic */
    STS_REQ_AUTH_OTHER  /* anything else, or none */
} sts_req_auth;

typedef struct {
    sts_identity *id;  /* NULL until the request authenticates */
    sts_req_auth auth; /* valid when auth_of is */
    const struct ap_conf_vector_t *auth_of; /* r->per_dir_config, or NULL */
} sts_request_state;

/* The module's record of r (see sts_request_state), created with its
 * first use. */
static sts_request_state *sts_state(request_rec *r)
{
    sts_request_state *st =
        ap_get_module_config(r->request_config, &sts_token_module);

    if (st == NULL) {
        st = apr_pcalloc(r->pool, sizeof(*st));
        ap_set_module_config(r->request_config, &sts_token_module, st);
    }
    return st;
}

/* The identity of r, or of the request it derives from (internal redirect,
 * sub-request) when those share its authentication. */
const sts_identity *sts_request_identity(request_rec *r)
{
    while (r != NULL) {
        const sts_request_state *st =
            ap_get_module_config(r->request_config, &sts_token_module);

        if (st != NULL && st->id != NULL) {
            return st->id;
        }
        r = r->prev ? r->prev : r->main;
    }
    return NULL;
}

/* r's AuthType as the module's hooks see it, evaluated once per
 * configuration of r (see sts_request_state). */
static sts_req_auth sts_auth_of(request_rec *r)
{
    sts_request_state *st = sts_state(r);

    if (st->auth_of != r->per_dir_config) {
        const char *type = ap_auth_type(r);

        st->auth_of = r->per_dir_config;

        if (type != NULL && ap_cstr_casecmp(type, STS_AUTH_TYPE) == 0) {
            st->auth = STS_REQ_AUTH_OURS;
        } else if (type != NULL && ap_cstr_casecmp(type, "Basic") == 0) {
            st->auth = STS_REQ_AUTH_BASIC;
        } else {
            st->auth = STS_REQ_AUTH_OTHER;
        }
    }
    return st->auth;
}

/* 1 when r is under AuthType ServiceToken. */
static int sts_is_ours(request_rec *r)
{
    return sts_auth_of(r) == STS_REQ_AUTH_OURS;
}

/* Removes from t every entry whose name, after prefix, looks like the
 * module's identity; what names the kind of entry in the log line. The
 * names are only copied when one matches. */
static void sts_strip_table(request_rec *r, apr_table_t *t, const char *prefix,
                            const char *what)
{
    const apr_array_header_t *h;
    const apr_table_entry_t *e;
    apr_array_header_t *names = NULL;
    size_t n = strlen(prefix);
    int i;

    h = apr_table_elts(t);
    e = (const apr_table_entry_t *)h->elts;
    for (i = 0; i < h->nelts; i++) {
        if (e[i].key != NULL && ap_cstr_casecmpn(e[i].key, prefix, n) == 0 &&
            sts_spoofed_name(e[i].key + n)) {
            if (names == NULL) {
                names = apr_array_make(r->pool, 2, sizeof(const char *));
            }
            APR_ARRAY_PUSH(names, const char *) = e[i].key;
        }
    }
    for (i = 0; names != NULL && i < names->nelts; i++) {
        const char *name = APR_ARRAY_IDX(names, i, const char *);

        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "removed %s %s that looks like the module's identity",
                      what, name);
        apr_table_unset(t, name);
    }
}

/* Removes every client header of r that looks like the module's identity
 * and, in a sub-request, the CGI variables (HTTP_STS_TOKEN_*) made from
 * such a header of the main request, which a sub-request inherits (an SSI
 * page adds its request's headers as variables before "#include virtual"
 * of a CGI script). */
static void sts_strip_spoofed(request_rec *r)
{
    sts_strip_table(r, r->headers_in, "", "client header");
    if (r->main != NULL) {
        sts_strip_table(r, r->subprocess_env, "HTTP_",
                        "variable from client header");
    }
}

/* 1 when r is under AuthType Basic (where AuthBasicProvider sts-token may
 * carry a token and publish its identity). */
static int sts_is_basic(request_rec *r)
{
    return sts_auth_of(r) == STS_REQ_AUTH_BASIC;
}

/* 1 when the module guards r's headers: identity look-alikes stripped,
 * credentials hidden under STSTokenHideCredentials. The one rule both the
 * header_parser and the fixups hook apply. */
static int sts_guards_headers(request_rec *r)
{
    return sts_is_ours(r) || sts_is_basic(r);
}

/* header_parser hook: strips the identity look-alikes of a main request
 * before anything reads them, whether or not authentication runs for it
 * (Require all granted skips it). */
static int sts_header_parser(request_rec *r)
{
    if (sts_guards_headers(r)) {
        sts_strip_spoofed(r);
    }
    return DECLINED;
}

/* The header carrying Authorization for this request. */
static const char *sts_authorization_header(const request_rec *r)
{
    return r->proxyreq == PROXYREQ_PROXY ? "Proxy-Authorization"
                                         : "Authorization";
}

/* apr_table_do callback collecting X-API-Key values. */
static int sts_collect_api_key(void *data, const char *key, const char *value)
{
    sts_api_keys *keys = data;

    (void)key;
    if (keys->n < STS_MAX_API_KEY_HEADERS) {
        keys->values[keys->n] = value;
    }
    keys->n++;
    return keys->n < STS_MAX_API_KEY_HEADERS + 1;
}

/* Sets the WWW-Authenticate (Proxy-Authenticate) challenge. error is NULL
 * when no token was presented; description says why a token was refused. */
static void sts_challenge(request_rec *r, const char *error,
                          const char *description)
{
    const char *realm = ap_auth_name(r);
    char *v;

    v = apr_pstrcat(r->pool, "ApiKey realm=\"",
                    ap_escape_quotes(r->pool, realm ? realm : ""), "\"", NULL);
    if (error != NULL) {
        v = apr_pstrcat(r->pool, v, ", error=\"", error, "\"", NULL);
    }
    if (description != NULL) {
        v = apr_pstrcat(r->pool, v, ", error_description=\"", description, "\"",
                        NULL);
        apr_table_setn(r->notes, STS_NOTE_REFUSAL, description);
    }
    apr_table_setn(r->err_headers_out,
                   r->proxyreq == PROXYREQ_PROXY ? "Proxy-Authenticate"
                                                 : "WWW-Authenticate",
                   v);
}

/* Refuses a presented token: 401 with error="invalid_token" and the reason,
 * logged at info with what is known of the token (never the secret). */
static int sts_refuse(request_rec *r, const char *why, const char *who)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "service token refused for %s: %s%s%s", r->uri, why,
                  who ? " " : "", who ? who : "");
    sts_challenge(r, "invalid_token", why);
    return HTTP_UNAUTHORIZED;
}

/* Makes id r's identity: r->user and the STS_TOKEN_* variables (see
 * authn.h). */
void sts_authn_set_identity(request_rec *r, sts_identity *id)
{
    sts_state(r)->id = id;
    r->user = apr_pstrdup(r->pool, id->name);
    apr_table_setn(r->subprocess_env, "STS_TOKEN_ID", id->id_text);
    apr_table_setn(r->subprocess_env, "STS_TOKEN_NAME", id->name);
    apr_table_setn(r->subprocess_env, "STS_TOKEN_ROLES", id->roles);
    apr_table_setn(r->subprocess_env, "STS_TOKEN_EXPIRATION",
                   id->expiration_text);
}

/* "(id N, name 'x')" for the log line of a refused known token, or NULL. */
const char *sts_authn_who(request_rec *r, const sts_identity *id)
{
    return id == NULL
               ? NULL
               : apr_psprintf(r->pool, "(id %" APR_INT64_T_FMT ", name '%s')",
                              id->id, id->name);
}

/* Publishes the identity under AuthType ServiceToken: also AUTH_TYPE.
 * (The credential headers are removed by sts_fixups.) */
static void sts_publish(request_rec *r, sts_identity *id)
{
    sts_authn_set_identity(r, id);
    r->ap_auth_type = (char *)STS_AUTH_TYPE;
}

/* Verifies a presented secret (see authn.h). */
int sts_authn_verify(request_rec *r, const char *token, size_t len,
                     sts_identity **out, const char **why)
{
    sts_server_conf *sc =
        ap_get_module_config(r->server->module_config, &sts_token_module);
    unsigned char digest[STS_DIGEST_LEN];
    sts_identity *id = NULL;
    int64_t now_ms;
    int rc;

    *why = NULL;
    if (sts_token_digest_reuse(sts_conn_digest_ctx(r->connection), token, len,
                               digest) != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "cannot compute a SHA-256 digest (libcrypto failed): "
                      "refusing the request");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (sc->bootstrap_loaded &&
        sts_digest_equal(digest, sc->bootstrap_digest)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "authenticated with the bootstrap secret");
        *out = sts_bootstrap_identity(r->pool, sc);
        return OK;
    }
    if (len != STS_TOKEN_LEN || !sts_token_has_prefix(token, len)) {
        *why = sts_token_has_prefix(token, len)
                   ? "token checksum does not match (mistyped?)"
                   : "not a service token";
        return HTTP_UNAUTHORIZED;
    }
    rc = sts_cache_find(r, token, len, digest, &id, why);
    if (rc != OK) {
        return rc;
    }
    now_ms = (int64_t)(apr_time_now() / 1000);
    if (id->expiration_ms >= 0 && now_ms >= id->expiration_ms) {
        *why = "token expired";
        *out = id;
        return HTTP_UNAUTHORIZED;
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "authenticated service token id %" APR_INT64_T_FMT
                  " name '%s'",
                  id->id, id->name);
    if (id->retire_previous) {
        sts_cache_retire(r, digest, id);
    }
    sts_cache_note_use(r, id);
    *out = id;
    return OK;
}

/* check_authn hook for AuthType ServiceToken. */
static int sts_authenticate(request_rec *r)
{
    sts_api_keys keys = {{NULL}, 0};
    sts_identity *id = NULL;
    sts_credential cred;
    const char *why;
    int rc;

    if (!sts_is_ours(r)) {
        return DECLINED;
    }
    apr_table_do(sts_collect_api_key, &keys, r->headers_in, "X-API-Key", NULL);
    switch (sts_credentials_parse(
        apr_table_get(r->headers_in, sts_authorization_header(r)), keys.values,
        keys.n, &cred)) {
    case STS_CRED_NONE:
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "no service token in the request (neither "
                      "'Authorization: ApiKey' nor 'X-API-Key')");
        sts_challenge(r, NULL, NULL);
        return HTTP_UNAUTHORIZED;
    case STS_CRED_BAD:
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "malformed service token credentials: %s", cred.reason);
        apr_table_setn(r->notes, "error-notes",
                       apr_pstrcat(r->pool, "Malformed service token: ",
                                   cred.reason, NULL));
        return HTTP_BAD_REQUEST;
    case STS_CRED_OK:
        break;
    }
    rc = sts_authn_verify(r, cred.token, cred.len, &id, &why);
    if (rc == HTTP_SERVICE_UNAVAILABLE) {
        apr_table_setn(r->notes, "error-notes",
                       "The token database is unavailable; try again later.");
        sts_store_unavailable(r);
        return rc;
    }
    if (rc == HTTP_UNAUTHORIZED) {
        return sts_refuse(r, why, sts_authn_who(r, id));
    }
    if (rc != OK) {
        return rc;
    }
    sts_publish(r, id);
    return OK;
}

/* fixups hook, under AuthType ServiceToken or Basic (sts_guards_headers):
 * the last point before a handler (proxy, CGI) reads the request's headers,
 * reached by every request whatever path authorization took (a Require ip
 * granting in <RequireAny> skips authentication) and by sub-requests (for
 * which httpd runs no header_parser: an SSI "#include virtual" of a proxied
 * location). It strips the identity look-alikes of sub-requests; under
 * STSTokenHideCredentials On, removes X-API-Key and an Authorization
 * (Proxy-Authorization) carrying an ApiKey credential or, under Basic, a
 * Basic one (its password may be a token); and a forward proxy
 * never passes on an X-API-Key this module consumed: it was addressed to the
 * proxy, not to the destination site (mod_proxy drops
 * Proxy-Authorization itself). Runs first, before mod_rewrite or
 * mod_headers copy any header. */
static int sts_fixups(request_rec *r)
{
    sts_dir_conf *dc;
    const char *authz;

    if (!sts_guards_headers(r)) {
        return DECLINED;
    }
    if (r->main != NULL) {
        sts_strip_spoofed(r);
    }
    dc = ap_get_module_config(r->per_dir_config, &sts_token_module);
    if (dc->hide_credentials == 1 ||
        (r->proxyreq == PROXYREQ_PROXY && sts_request_identity(r) != NULL)) {
        apr_table_unset(r->headers_in, "X-API-Key");
    }
    authz = apr_table_get(r->headers_in, sts_authorization_header(r));
    if (dc->hide_credentials == 1 && authz != NULL &&
        (sts_is_basic(r) ? ap_cstr_casecmpn(authz, "Basic ", 6) == 0
                         : sts_authorization_has_apikey(authz))) {
        apr_table_unset(r->headers_in, sts_authorization_header(r));
    }
    return DECLINED;
}

/* note_auth_failure hook: the challenge when authorization fails with 401. */
static int sts_note_auth_failure(request_rec *r, const char *auth_type)
{
    if (ap_cstr_casecmp(auth_type, STS_AUTH_TYPE) != 0) {
        return DECLINED;
    }
    sts_challenge(r, NULL, NULL);
    return OK;
}

/* Registers the authentication hooks. */
void sts_authn_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_check_authn(sts_authenticate, NULL, NULL, APR_HOOK_MIDDLE,
                        AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_note_auth_failure(sts_note_auth_failure, NULL, NULL,
                              APR_HOOK_MIDDLE);
    ap_hook_header_parser(sts_header_parser, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_fixups(sts_fixups, NULL, NULL, APR_HOOK_REALLY_FIRST);
}
