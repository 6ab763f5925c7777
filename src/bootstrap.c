/*
 * bootstrap.c - the bootstrap secret, authenticated in memory without the
 * database so that the first administrator can create real tokens.
 */
#include "bootstrap.h"

#include "apr_file_io.h"
#include "apr_strings.h"

#include <unistd.h>

#include <openssl/crypto.h>

#include "credentials.h"
#include "names.h"

/* Largest bootstrap file read; a secret is at most STS_TOKEN_MAX_LEN bytes. */
#define STS_BOOTSTRAP_READ_MAX (STS_TOKEN_MAX_LEN + 2)

/* Loads the bootstrap file into conf->bootstrap_digest. */
const char *sts_bootstrap_load(apr_pool_t *p, sts_server_conf *conf)
{
    char buf[STS_BOOTSTRAP_READ_MAX + 1];
    const char *file = conf->bootstrap_file;
    const char *api_key[1];
    sts_credential cred;
    apr_finfo_t finfo;
    apr_file_t *f;
    apr_size_t n = STS_BOOTSTRAP_READ_MAX;
    apr_status_t rv;
    char errbuf[120];

    rv = apr_stat(&finfo, file,
                  APR_FINFO_PROT | APR_FINFO_TYPE | APR_FINFO_USER, p);
    if (rv != APR_SUCCESS) {
        return apr_psprintf(p, "STSTokenBootstrap: cannot read %s: %s", file,
                            apr_strerror(rv, errbuf, sizeof(errbuf)));
    }
    if (finfo.filetype != APR_REG) {
        return apr_psprintf(p, "STSTokenBootstrap: %s is not a regular file",
                            file);
    }
    if (finfo.protection & (APR_GREAD | APR_GWRITE | APR_WREAD | APR_WWRITE)) {
        return apr_psprintf(p,
                            "STSTokenBootstrap: %s is readable or writable by "
                            "group or others; it holds an administrator "
                            "secret: chmod 600 it (owned by the user that "
                            "starts httpd)",
                            file);
    }
    /* Owned by root or whoever starts httpd, never by the user its children
     * run as: code running as that user could read or replace it. */
    if (finfo.user != 0 && finfo.user != geteuid()) {
        return apr_psprintf(p,
                            "STSTokenBootstrap: %s is owned by uid %ld, not "
                            "by root (or uid %ld, which starts httpd); it "
                            "holds an administrator secret that httpd's "
                            "children must not be able to read or replace: "
                            "chown root: it",
                            file, (long)finfo.user, (long)geteuid());
    }
    rv = apr_file_open(&f, file, APR_FOPEN_READ, APR_OS_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        return apr_psprintf(p, "STSTokenBootstrap: cannot open %s: %s", file,
                            apr_strerror(rv, errbuf, sizeof(errbuf)));
    }
    rv = apr_file_read_full(f, buf, n, &n);
    apr_file_close(f);
    if (rv != APR_SUCCESS && rv != APR_EOF) {
        return apr_psprintf(p, "STSTokenBootstrap: cannot read %s: %s", file,
                            apr_strerror(rv, errbuf, sizeof(errbuf)));
    }
    /* Trim the trailing newline (LF or CRLF). */
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
        if (n > 0 && buf[n - 1] == '\r') {
            n--;
        }
    }
    buf[n] = '\0';
    if (n < STS_BOOTSTRAP_MIN_LEN || strlen(buf) != n) {
        OPENSSL_cleanse(buf, sizeof(buf));
        return apr_psprintf(p,
                            "STSTokenBootstrap: the secret in %s is shorter "
                            "than %d characters; write a longer one (e.g. "
                            "openssl rand -hex 32 > %s)",
                            file, STS_BOOTSTRAP_MIN_LEN, file);
    }
    /* The secret must be something a client can send as a token. */
    api_key[0] = buf;
    if (sts_credentials_parse(NULL, api_key, 1, &cred) != STS_CRED_OK ||
        cred.len != n) {
        OPENSSL_cleanse(buf, sizeof(buf));
        return apr_psprintf(p,
                            "STSTokenBootstrap: the secret in %s must be one "
                            "line of at most %d visible ASCII characters (no "
                            "spaces)",
                            file, STS_TOKEN_MAX_LEN);
    }
    if (sts_token_digest(buf, n, conf->bootstrap_digest) != 0) {
        OPENSSL_cleanse(buf, sizeof(buf));
        return "STSTokenBootstrap: cannot compute a SHA-256 digest "
               "(libcrypto failed)";
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    conf->bootstrap_loaded = 1;
    return NULL;
}

/* Builds the bootstrap identity: id 0, name "bootstrap", configured roles. */
sts_identity *sts_bootstrap_identity(apr_pool_t *p, const sts_server_conf *conf)
{
    sts_identity *id = apr_pcalloc(p, sizeof(*id));

    id->id = 0;
    id->name = STS_BOOTSTRAP_NAME;
    id->roles = apr_array_pstrcat(p, conf->bootstrap_roles, ',');
    id->expiration_ms = -1;
    id->id_text = "0";
    id->expiration_text = "";
    return id;
}
