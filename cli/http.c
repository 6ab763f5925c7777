/*
 * http.c - one request to the token API with libcurl: bounded answer size,
 * timeouts, certificate verification on by default, no redirects.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "version.h"

/* Builds base URL + api path + path without doubled slashes. */
void cli_http_url(const cli_target *t, const char *path, char *out,
                  size_t outlen)
{
    size_t ul = strlen(t->url), al = strlen(t->api_path);
    const char *api = t->api_path;

    while (ul > 0 && t->url[ul - 1] == '/') {
        ul--;
    }
    while (al > 0 && api[al - 1] == '/') {
        al--;
    }
    while (al > 0 && api[0] == '/') {
        api++;
        al--;
    }
    snprintf(out, outlen, "%.*s%s%.*s%s", (int)ul, t->url, al ? "/" : "",
             (int)al, api, path);
}

/* libcurl write callback: appends to the response, refusing huge ones. */
static size_t cli_on_body(char *data, size_t size, size_t n, void *user)
{
    cli_response *r = user;
    size_t add = size * n;
    char *nb;

    if (add > CLI_MAX_RESPONSE - r->len) {
        r->too_large = 1;
        return 0;
    }
    nb = realloc(r->body, r->len + add + 1);
    if (nb == NULL) {
        return 0;
    }
    memcpy(nb + r->len, data, add);
    r->body = nb;
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

/* libcurl header callback: keeps WWW-Authenticate's error_description. */
static size_t cli_on_header(char *data, size_t size, size_t n, void *user)
{
    cli_response *r = user;
    size_t len = size * n;
    static const char key[] = "error_description=\"";
    char line[1024];
    char *p, *q;

    if (len >= sizeof(line) || len < 17 ||
        strncasecmp(data, "WWW-Authenticate:", 17) != 0) {
        return len;
    }
    memcpy(line, data, len);
    line[len] = '\0';
    p = strstr(line, key);
    if (p && (q = strchr(p + sizeof(key) - 1, '"')) != NULL) {
        *q = '\0';
        snprintf(r->auth_error, sizeof(r->auth_error), "%s",
                 p + sizeof(key) - 1);
    }
    return len;
}

/* Decodes base64 (StackState's ca-cert-base64-data) into a malloc'd
 * buffer; NULL when it is not base64. */
static unsigned char *cli_unbase64(const char *in, size_t *outlen)
{
    size_t n = strlen(in);
    unsigned char *out;
    int len;

    if (n == 0 || n % 4 != 0 || n > 8 * 1024 * 1024) {
        return NULL;
    }
    out = malloc(n / 4 * 3 + 1);
    if (out == NULL) {
        return NULL;
    }
    len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    if (len < 0) {
        free(out);
        return NULL;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    len -= (in[n - 1] == '=') + (in[n - 2] == '=');
    *outlen = (size_t)len;
    return out;
}

/* Sends one request. */
int cli_http(const cli_target *t, const char *method, const char *path,
             const char *json_body, cli_response *resp)
{
    char url[8192], auth[4200], cerr[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL;
    struct curl_blob blob;
    unsigned char *ca = NULL;
    long timeout;
    CURL *c;
    CURLcode rc;

    memset(resp, 0, sizeof(*resp));
    cli_http_url(t, path, url, sizeof(url));
    c = curl_easy_init();
    if (c == NULL) {
        snprintf(resp->error, sizeof(resp->error), "libcurl failed to start");
        return -1;
    }
    snprintf(auth, sizeof(auth), "X-API-Key: %s", t->token ? t->token : "");
    hdrs = curl_slist_append(hdrs, auth);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (json_body) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json_body);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "sts-cli/" STS_VERSION);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    timeout = t->timeout > 0 ? t->timeout : CLI_REQUEST_TIMEOUT;
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT,
                     timeout < CLI_CONNECT_TIMEOUT ? timeout
                                                   : (long)CLI_CONNECT_TIMEOUT);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
                     (curl_off_t)CLI_MAX_RESPONSE);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, cli_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, cli_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
    if (t->skip_ssl) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (t->ca_cert_path) {
        curl_easy_setopt(c, CURLOPT_CAINFO, t->ca_cert_path);
    } else if (t->ca_cert_base64 && !t->skip_ssl) {
        ca = cli_unbase64(t->ca_cert_base64, &blob.len);
        if (ca == NULL) {
            snprintf(resp->error, sizeof(resp->error),
                     "the context's ca-cert-base64-data is not base64");
            curl_slist_free_all(hdrs);
            curl_easy_cleanup(c);
            memset(auth, 0, sizeof(auth));
            resp->body = calloc(1, 1);
            return -1;
        }
        blob.data = ca;
        blob.flags = CURL_BLOB_COPY;
        curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
    }
    rc = curl_easy_perform(c);
    free(ca);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    } else if (resp->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        resp->too_large = 1;
        snprintf(resp->error, sizeof(resp->error),
                 "the answer is larger than %d MiB; refusing it",
                 CLI_MAX_RESPONSE / (1024 * 1024));
    } else {
        snprintf(resp->error, sizeof(resp->error), "%s",
                 cerr[0] ? cerr : curl_easy_strerror(rc));
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    memset(auth, 0, sizeof(auth));
    if (resp->body == NULL) {
        resp->body = calloc(1, 1);
    }
    return rc == CURLE_OK ? 0 : -1;
}
