/*
 * api_json.c - the token API's JSON mapping and validation (see api_json.h).
 */
#include "api_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "names.h"

/* Number of Unicode code points in a valid UTF-8 string. */
static size_t sts_utf8_len(const char *s)
{
    size_t n = 0;

    for (; *s; s++) {
        n += ((unsigned char)*s & 0xC0) != 0x80;
    }
    return n;
}

/* 1 when s has a C0/C1 control character or DEL. */
static int sts_has_control(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    for (; *p; p++) {
        if (*p < 0x20 || *p == 0x7F) {
            return 1;
        }
        /* U+0080..U+009F are C2 80..C2 9F in UTF-8. */
        if (*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F) {
            return 1;
        }
    }
    return 0;
}

/* Reads an optional string member: absent or null leaves *out NULL. */
static int sts_opt_string(json_t *obj, const char *key, size_t max,
                          int allow_control, char **out, char *err,
                          size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    const char *s;
    size_t n;

    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        return 1;
    }
    if (!json_is_string(v)) {
        snprintf(err, errlen, "'%s' must be a string", key);
        return 0;
    }
    s = json_string_value(v);
    n = sts_utf8_len(s);
    if (n > max) {
        snprintf(err, errlen, "'%s' is longer than %zu characters", key, max);
        return 0;
    }
    if (!allow_control && sts_has_control(s)) {
        snprintf(err, errlen, "'%s' must not contain control characters", key);
        return 0;
    }
    *out = strdup(s);
    if (*out == NULL) {
        snprintf(err, errlen, "out of memory");
        return 0;
    }
    return 1;
}

/* Validates 'roles' and joins them with commas, dropping duplicates. */
static char *sts_roles_join(json_t *roles, char *err, size_t errlen)
{
    size_t i, j, n, total = 0;
    char *out, *p;

    if (roles == NULL) {
        snprintf(err, errlen,
                 "'roles' is required: a list of 1 to %d role "
                 "names",
                 STS_ROLES_MAX);
        return NULL;
    }
    if (!json_is_array(roles)) {
        snprintf(err, errlen, "'roles' must be an array of strings");
        return NULL;
    }
    n = json_array_size(roles);
    if (n < 1 || n > STS_ROLES_MAX) {
        snprintf(err, errlen, "'roles' must have 1 to %d entries, not %zu",
                 STS_ROLES_MAX, n);
        return NULL;
    }
    for (i = 0; i < n; i++) {
        json_t *r = json_array_get(roles, i);

        if (!json_is_string(r)) {
            snprintf(err, errlen, "'roles[%zu]' must be a string", i);
            return NULL;
        }
        if (!sts_role_valid(json_string_value(r), json_string_length(r))) {
            snprintf(
                err, errlen,
                "'roles[%zu]' must be 1 to %d characters of " STS_ROLE_CHARS, i,
                STS_ROLE_MAX_LEN);
            return NULL;
        }
        total += json_string_length(r) + 1;
    }
    out = p = malloc(total + 1);
    if (out == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    *p = '\0';
    for (i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(roles, i));
        int dup = 0;

        for (j = 0; j < i && !dup; j++) {
            dup = strcmp(s, json_string_value(json_array_get(roles, j))) == 0;
        }
        if (!dup) {
            p += sprintf(p, "%s%s", p == out ? "" : ",", s);
        }
    }
    return out;
}

/* The optional 'expiryDate' of a request: epoch ms in the future, at most
 * STS_API_MAX_EXPIRY_MS; *out stays as it is when absent. */
static sts_req_status sts_expiry_field(json_t *root, int64_t now_ms,
                                       int64_t *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(root, "expiryDate");
    json_int_t e;

    if (v == NULL || json_is_null(v)) {
        return STS_REQ_OK;
    }
    if (!json_is_integer(v)) {
        snprintf(err, errlen,
                 "'expiryDate' must be an integer (epoch milliseconds)");
        return STS_REQ_BAD;
    }
    e = json_integer_value(v);
    if (e <= now_ms) {
        snprintf(err, errlen,
                 "'expiryDate' %lld is not in the future (now is %lld "
                 "epoch ms)",
                 (long long)e, (long long)now_ms);
        return STS_REQ_BAD_EXPIRY;
    }
    if (e > STS_API_MAX_EXPIRY_MS) {
        snprintf(err, errlen, "'expiryDate' is after the year 9999");
        return STS_REQ_BAD;
    }
    *out = (int64_t)e;
    return STS_REQ_OK;
}

/* Decodes and validates a NewServiceTokenRequest. */
/* The JSON object a request body of at most max bytes holds, or NULL with
 * the reason in err. */
static json_t *sts_body_object(const char *body, size_t len, size_t max,
                               char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root;

    if (len > max) {
        snprintf(err, errlen, "request body larger than %zu bytes", max);
        return NULL;
    }
    root =
        json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        snprintf(err, errlen, "invalid JSON at line %d column %d: %s",
                 jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "the request body must be a JSON object");
        json_decref(root);
        return NULL;
    }
    return root;
}

sts_req_status sts_new_token_parse(const char *body, size_t len, int64_t now_ms,
                                   sts_new_token *out, char *err, size_t errlen)
{
    json_t *root, *v;
    sts_req_status st = STS_REQ_BAD;

    memset(out, 0, sizeof(*out));
    out->expiry_ms = -1;
    root = sts_body_object(body, len, STS_API_MAX_BODY, err, errlen);
    if (root == NULL) {
        return STS_REQ_BAD;
    }
    v = json_object_get(root, "name");
    if (v == NULL || json_is_null(v)) {
        snprintf(err, errlen, "'name' is required");
        goto done;
    }
    if (!sts_opt_string(root, "name", STS_API_MAX_NAME, 0, &out->name, err,
                        errlen)) {
        goto done;
    }
    if (out->name == NULL || out->name[0] == '\0') {
        snprintf(err, errlen, "'name' must not be empty");
        goto done;
    }
    if (sts_token_name_check("'name'", out->name, err, errlen) != 0) {
        goto done;
    }
    if (!sts_opt_string(root, "description", STS_API_MAX_DESCRIPTION, 1,
                        &out->description, err, errlen) ||
        !sts_opt_string(root, "dedicatedSubject", STS_API_MAX_SUBJECT, 0,
                        &out->dedicated_subject, err, errlen)) {
        goto done;
    }
    /* StackState's CLI always sends it, "" when no subject was asked for. */
    if (out->dedicated_subject && out->dedicated_subject[0] == '\0') {
        free(out->dedicated_subject);
        out->dedicated_subject = NULL;
    }
    out->roles = sts_roles_join(json_object_get(root, "roles"), err, errlen);
    if (out->roles == NULL) {
        goto done;
    }
    st = sts_expiry_field(root, now_ms, &out->expiry_ms, err, errlen);
done:
    json_decref(root);
    if (st != STS_REQ_OK) {
        sts_new_token_free(out);
    }
    return st;
}

/* Decodes and validates a rotation request. */
sts_req_status sts_rotate_parse(const char *body, size_t len, int64_t now_ms,
                                int64_t max_grace_s, sts_rotate_req *out,
                                char *err, size_t errlen)
{
    json_t *root, *v;
    const char *key;
    sts_req_status st = STS_REQ_BAD;
    size_t i;

    out->grace_s = -1;
    out->expiry_ms = -1;
    for (i = 0; i < len && strchr(" \t\r\n", body[i]) != NULL; i++) {
    }
    if (i == len) {
        return STS_REQ_OK; /* no body: every default */
    }
    root = sts_body_object(body, len, STS_API_MAX_ROTATE_BODY, err, errlen);
    if (root == NULL) {
        return STS_REQ_BAD;
    }
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "gracePeriodSeconds") != 0 &&
            strcmp(key, "expiryDate") != 0) {
            snprintf(err, errlen,
                     "unknown field '%.64s' (a rotation takes "
                     "'gracePeriodSeconds' and 'expiryDate')",
                     key);
            goto done;
        }
    }
    v = json_object_get(root, "gracePeriodSeconds");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            snprintf(err, errlen,
                     "'gracePeriodSeconds' must be a whole number of seconds "
                     "from 0 to %lld",
                     (long long)max_grace_s);
            goto done;
        }
        if (json_integer_value(v) > max_grace_s) {
            snprintf(err, errlen,
                     "'gracePeriodSeconds' %lld is more than this server "
                     "allows here: at most %lld (STSTokenRotateGraceMax)",
                     (long long)json_integer_value(v), (long long)max_grace_s);
            goto done;
        }
        out->grace_s = (int64_t)json_integer_value(v);
    }
    st = sts_expiry_field(root, now_ms, &out->expiry_ms, err, errlen);
done:
    json_decref(root);
    return st;
}

/* Frees a parsed request. */
void sts_new_token_free(sts_new_token *t)
{
    free(t->name);
    free(t->description);
    free(t->dedicated_subject);
    free(t->roles);
    memset(t, 0, sizeof(*t));
    t->expiry_ms = -1;
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0 when p does not start
 * one (overlong forms, surrogates and code points above U+10FFFF are
 * invalid). */
static size_t sts_utf8_seq(const unsigned char *p)
{
    unsigned int c = p[0];
    size_t n, i;
    unsigned int cp;

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, cp = c & 0x07;
    } else {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
        return 0;
    }
    return n;
}

/* A JSON string of s; bytes that are not valid UTF-8 (e.g. from a decoded
 * request path) become '?' so that every message can be encoded. */
static json_t *sts_json_text(const char *s)
{
    json_t *v = json_string(s ? s : "");
    size_t i = 0, n;
    char *copy;

    if (v != NULL || s == NULL) {
        return v;
    }
    copy = strdup(s);
    if (copy == NULL) {
        return NULL;
    }
    while (copy[i] != '\0') {
        n = sts_utf8_seq((const unsigned char *)copy + i);
        if (n == 0) {
            copy[i++] = '?';
        } else {
            i += n;
        }
    }
    v = json_string(copy);
    free(copy);
    return v;
}

/* Serialises and releases a JSON value. */
static char *sts_dump(json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;

    json_decref(v);
    return s;
}

/* A JSON array of the comma-separated roles. */
static json_t *sts_roles_array(const char *roles)
{
    json_t *a = json_array();
    const char *p = roles;

    while (a && p && *p) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);

        json_array_append_new(a, json_stringn(p, n));
        p = c ? c + 1 : NULL;
    }
    return a;
}

/* Encodes a list of ServiceToken objects. */
char *sts_json_token_list(const sts_token_json *tokens, size_t n)
{
    json_t *a = json_array();
    size_t i;

    for (i = 0; a && i < n; i++) {
        const sts_token_json *t = &tokens[i];
        json_t *o = json_object();

        json_object_set_new(o, "id", json_integer(t->id));
        json_object_set_new(o, "name", sts_json_text(t->name));
        if (t->description) {
            json_object_set_new(o, "description",
                                sts_json_text(t->description));
        }
        if (t->expiration_ms >= 0) {
            json_object_set_new(o, "expiration",
                                json_integer(t->expiration_ms));
        }
        json_object_set_new(o, "roles", sts_roles_array(t->roles));
        if (t->dedicated_subject) {
            json_object_set_new(o, "dedicatedSubject",
                                sts_json_text(t->dedicated_subject));
        }
        json_object_set_new(o, "lastUpdateTimestamp",
                            json_integer(t->last_update_ms));
        /* Not StackState's: its clients ignore fields they do not know. */
        if (t->last_used_ms >= 0) {
            json_object_set_new(o, "lastUsedTimestamp",
                                json_integer(t->last_used_ms));
            if (t->last_used_from && *t->last_used_from) {
                json_object_set_new(o, "lastUsedFrom",
                                    sts_json_text(t->last_used_from));
            }
        }
        json_array_append_new(a, o);
    }
    return sts_dump(a);
}

/* Encodes a ServiceTokenCreatedResponse. */
char *sts_json_token_created(const char *name, const char *token,
                             int64_t expiration_ms)
{
    json_t *o = json_object();

    json_object_set_new(o, "name", sts_json_text(name));
    json_object_set_new(o, "token", json_string(token));
    if (expiration_ms >= 0) {
        json_object_set_new(o, "expiration", json_integer(expiration_ms));
    }
    return sts_dump(o);
}

/* Encodes a GenericErrorsResponse with one error. */
char *sts_json_errors(const char *tracking_key, int64_t now_ms, int status,
                      const char *message)
{
    json_t *o = json_object(), *e = json_object(), *a = json_array();

    json_object_set_new(e, "_type", json_string("InternalError"));
    json_object_set_new(e, "message", sts_json_text(message));
    json_object_set_new(e, "errorCode", json_integer(status));
    json_array_append_new(a, e);
    json_object_set_new(o, "_type", json_string("ErrorsResponse"));
    json_object_set_new(o, "trackingKey", json_string(tracking_key));
    json_object_set_new(o, "serverTimestamp", json_integer(now_ms));
    json_object_set_new(o, "errors", a);
    return sts_dump(o);
}

/* Encodes a ServiceTokenInvalidExpiryError. */
char *sts_json_expiry_error(const char *message)
{
    json_t *o = json_object();

    json_object_set_new(o, "_type",
                        json_string("ServiceTokenInvalidExpiryError"));
    json_object_set_new(o, "message", sts_json_text(message));
    return sts_dump(o);
}

/* Encodes ServerInfo: version is the StackState API version implemented,
 * platform_version the module's own, commit the revision it was built from. */
char *sts_json_server_info(int major, int minor, int patch,
                           const char *platform_version, const char *commit)
{
    json_t *o = json_object(), *v = json_object(), *d = json_array();

    json_object_set_new(v, "major", json_integer(major));
    json_object_set_new(v, "minor", json_integer(minor));
    json_object_set_new(v, "patch", json_integer(patch));
    json_object_set_new(v, "diff", json_string(""));
    json_object_set_new(v, "commit", sts_json_text(commit ? commit : ""));
    json_object_set_new(v, "isDev", json_false());
    json_array_append_new(d, json_string("Observability"));
    json_object_set_new(o, "version", v);
    json_object_set_new(o, "deploymentMode", json_string("SelfHosted"));
    json_object_set_new(o, "platformVersion", json_string(platform_version));
    json_object_set_new(o, "applicationDomains", d);
    return sts_dump(o);
}
