/*
 * authn_basic.c - the "sts-token" authn provider: a service token as the
 * password of HTTP Basic authentication (AuthBasicProvider sts-token), for
 * clients that speak only Basic (git, Subversion, Maven, pip, curl -u).
 *
 * The token is verified exactly as under AuthType ServiceToken (same cache,
 * expiry, revocation bound, identity, Require sts-role). The user name is
 * not a credential: by default any is accepted; "STSTokenBasicUser
 * TokenName" requires it to equal the token's name. Either way r->user
 * becomes the token's name, so logs and REMOTE_USER name the token. A user
 * name with the token prefix is a token in the wrong field (curl -u
 * "$TOKEN:"): the credential when the password is empty, refused
 * otherwise, and never logged. STSTokenHideCredentials is applied in the
 * fixups hook (authn.c), whatever path authorization took.
 *
 * Provider answers, as mod_auth_basic reads them: a password that is no
 * service token (wrong prefix) and not the bootstrap secret is
 * AUTH_USER_NOT_FOUND, so that a following provider ("AuthBasicProvider
 * sts-token file") may try it; a token refused (unknown, deleted, expired,
 * mistyped, wrong user name) is AUTH_DENIED; a database that cannot answer
 * is AUTH_GENERAL_ERROR, which mod_auth_basic answers 500 (httpd 2.4's
 * provider contract has no 503), never 200.
 */
#include "httpd.h"

#include "apr_strings.h"
#include "http_log.h"
#include "http_request.h"
#include "mod_auth.h"

#include "authn.h"
#include "store.h"
#include "sts.h"
#include "token.h"

APLOG_USE_MODULE(sts_token);

#define STS_BASIC_PROVIDER "sts-token"

/* What the log lines call the Basic user: never a user name that looks
 * like a token (clients used to API keys send one as the user name). */
static const char *sts_basic_who(const char *user, int user_is_token)
{
    return user_is_token ? "(a service token)" : user;
}

/* check_password of the provider. */
static authn_status sts_basic_check_password(request_rec *r, const char *user,
                                             const char *password)
{
    sts_dir_conf *dc =
        ap_get_module_config(r->per_dir_config, &sts_token_module);
    int user_is_token = sts_token_has_prefix(user, strlen(user));
    const char *secret = password;
    const char *who = sts_basic_who(user, user_is_token);
    size_t len;
    int shaped;
    sts_identity *id = NULL;
    const char *why = NULL;
    int rc;

    if (user_is_token) {
        /* mod_auth_basic hands us the user name it keeps in r->user (the
         * access log's %u) and names in its own refusal lines (AH01617,
         * AH01618): overwrite that copy, so the secret is in neither. It is
         * a string of r's pool, ours to change for r. */
        if (password[0] == '\0') {
            secret = apr_pstrdup(r->pool, user);
        }
        ((char *)user)[0] = '-';
        ((char *)user)[1] = '\0';
        if (password[0] != '\0') {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          "Basic credentials refused for %s: the user name "
                          "is a service token and the password is not empty",
                          r->uri);
            return AUTH_DENIED;
        }
    }
    len = strlen(secret);
    shaped = sts_token_has_prefix(secret, len);
    rc = sts_authn_verify(r, secret, len, &id, &why);
    switch (rc) {
    case OK:
        break;
    case HTTP_UNAUTHORIZED:
        if (!shaped) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                          "Basic password of user '%s' is not a service "
                          "token",
                          who);
            return AUTH_USER_NOT_FOUND;
        }
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "service token refused as the Basic %s of user "
                      "'%s' for %s: %s%s%s",
                      user_is_token ? "user name" : "password", who, r->uri,
                      why, id ? " " : "", id ? sts_authn_who(r, id) : "");
        return AUTH_DENIED;
    case HTTP_SERVICE_UNAVAILABLE:
        /* Counted and reported once per interval (sts_store_unavailable):
         * this line is per request. mod_auth_basic answers a provider
         * error with 500; the Retry-After set here still goes out with it
         * (err_headers_out). */
        sts_store_unavailable(r);
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "token database unavailable: Basic authentication of "
                      "user '%s' fails with 500 (mod_auth_basic's answer to "
                      "a provider error)",
                      who);
        apr_table_setn(r->notes, "error-notes",
                       "The token database is unavailable; try again later.");
        return AUTH_GENERAL_ERROR;
    default:
        return AUTH_GENERAL_ERROR;
    }
    if (dc->basic_user == STS_BASIC_USER_TOKEN_NAME && !user_is_token &&
        strcmp(user, id->name) != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "service token refused as the Basic password of user "
                      "'%s' for %s: STSTokenBasicUser TokenName requires the "
                      "token's name as the user name %s",
                      user, r->uri, sts_authn_who(r, id));
        return AUTH_DENIED;
    }
    sts_authn_set_identity(r, id);
    return AUTH_GRANTED;
}

static const authn_provider sts_basic_provider = {
    &sts_basic_check_password,
    NULL, /* no Digest: the secret is not known, only its digest */
};

/* Registers the "sts-token" authn provider. */
void sts_authn_basic_register(apr_pool_t *p)
{
    ap_register_auth_provider(p, AUTHN_PROVIDER_GROUP, STS_BASIC_PROVIDER,
                              AUTHN_PROVIDER_VERSION, &sts_basic_provider,
                              AP_AUTH_INTERNAL_PER_CONF);
}
