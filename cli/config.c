/*
 * config.c - StackState CLI's config file (contexts), read with libyaml's
 * document API and written with its emitter: atomically, mode 0600, and
 * keeping every key this tool does not know, so that the file stays shared
 * with StackState's own CLI.
 *
 *   contexts:
 *   - name: default
 *     context:
 *       url: https://sts.example.com
 *       service-token: svctok-...
 *       api-path: /api
 *   current-context: default
 */
#define _GNU_SOURCE /* mkostemp */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

/* Deepest nesting and most nodes copied from the old file when saving (a
 * few aliases can make a small file expand enormously). */
#define CLI_COPY_DEPTH 64
#define CLI_COPY_NODES 100000

/* Builds the config path from XDG_CONFIG_HOME or HOME. */
int cli_config_path(char *out, size_t outlen)
{
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    int n;

    if (xdg && *xdg) {
        n = snprintf(out, outlen, "%s/stackstate-cli/config.yaml", xdg);
    } else if (home && *home) {
        n = snprintf(out, outlen, "%s/.config/stackstate-cli/config.yaml",
                     home);
    } else {
        return -1;
    }
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* Copies a scalar node's value into dst (bounded); -1 when too long or not
 * a scalar, or when it holds a NUL byte. */
static int cli_scalar(yaml_node_t *n, char *dst, size_t dstlen)
{
    if (n == NULL || n->type != YAML_SCALAR_NODE ||
        n->data.scalar.length >= dstlen ||
        memchr(n->data.scalar.value, '\0', n->data.scalar.length) != NULL) {
        return -1;
    }
    memcpy(dst, n->data.scalar.value, n->data.scalar.length);
    dst[n->data.scalar.length] = '\0';
    return 0;
}

/* True when scalar node n equals s. */
static int cli_is(yaml_node_t *n, const char *s)
{
    return n && n->type == YAML_SCALAR_NODE &&
           n->data.scalar.length == strlen(s) &&
           memcmp(n->data.scalar.value, s, n->data.scalar.length) == 0;
}

/* The value of key in mapping m, or NULL. */
static yaml_node_t *cli_get(yaml_document_t *doc, yaml_node_t *m,
                            const char *key)
{
    yaml_node_pair_t *p;

    if (m == NULL || m->type != YAML_MAPPING_NODE) {
        return NULL;
    }
    for (p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        if (cli_is(yaml_document_get_node(doc, p->key), key)) {
            return yaml_document_get_node(doc, p->value);
        }
    }
    return NULL;
}

/* Reads a YAML boolean (true/false, yes/no, on/off, any case). */
static int cli_bool(yaml_node_t *n, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "y"};
    static const char *const no[] = {"false", "no", "off", "n"};
    char v[8];
    size_t i;

    if (cli_scalar(n, v, sizeof(v)) != 0) {
        return -1;
    }
    for (i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
            *out = strcasecmp(v, yes[i]) == 0;
            return 0;
        }
    }
    return -1;
}

/* Reads one "context:" mapping into c. */
static int cli_read_context(yaml_document_t *doc, yaml_node_t *m,
                            cli_context *c, char *err, size_t errlen)
{
    struct {
        const char *key;
        char *dst;
        size_t len;
    } fields[] = {
        {"url", c->url, sizeof(c->url)},
        {"service-token", c->service_token, sizeof(c->service_token)},
        {"api-path", c->api_path, sizeof(c->api_path)},
        {"admin-api-path", c->admin_api_path, sizeof(c->admin_api_path)},
    };
    yaml_node_t *v;
    size_t i;

    if (m == NULL || m->type != YAML_MAPPING_NODE) {
        snprintf(err, errlen, "'context' of '%s' must be a mapping", c->name);
        return -1;
    }
    for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        v = cli_get(doc, m, fields[i].key);
        if (v && !(v->type == YAML_SCALAR_NODE && v->data.scalar.length == 0) &&
            cli_scalar(v, fields[i].dst, fields[i].len) != 0) {
            snprintf(err, errlen,
                     "'%s' of context '%s' is not a string of at most %zu "
                     "bytes",
                     fields[i].key, c->name, fields[i].len - 1);
            return -1;
        }
    }
    v = cli_get(doc, m, "skip-ssl");
    if (v && cli_bool(v, &c->skip_ssl) != 0) {
        snprintf(err, errlen,
                 "'skip-ssl' of context '%s' must be true or false", c->name);
        return -1;
    }
    c->has_api_token = cli_get(doc, m, "api-token") != NULL ||
                       cli_get(doc, m, "service-bearer") != NULL;
    v = cli_get(doc, m, "ca-cert-base64-data");
    if (v && v->type == YAML_SCALAR_NODE && v->data.scalar.length > 0) {
        c->ca_cert_base64 = malloc(v->data.scalar.length + 1);
        if (c->ca_cert_base64 == NULL ||
            cli_scalar(v, c->ca_cert_base64, v->data.scalar.length + 1) != 0) {
            snprintf(err, errlen,
                     "'ca-cert-base64-data' of context '%s' is invalid",
                     c->name);
            return -1;
        }
    }
    return 0;
}

/* 1 when a context before c has c's name. */
static int cli_find_dup(const cli_config *cfg, const cli_context *c)
{
    const cli_context *o;

    for (o = cfg->contexts; o < c; o++) {
        if (strcmp(o->name, c->name) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Reads the contexts sequence (or the old flat format) of a document. */
static int cli_read_doc(yaml_document_t *doc, cli_config *cfg, char *err,
                        size_t errlen)
{
    yaml_node_t *root = yaml_document_get_root_node(doc), *seq, *cur;
    yaml_node_item_t *it;

    if (root == NULL) {
        return 0; /* empty file */
    }
    if (root->type != YAML_MAPPING_NODE) {
        snprintf(err, errlen, "the config must be a mapping");
        return -1;
    }
    seq = cli_get(doc, root, "contexts");
    if (seq == NULL) {
        /* StackState's older format: one context at the top level. */
        if (cli_get(doc, root, "url") == NULL) {
            return 0;
        }
        strcpy(cfg->contexts[0].name, "default");
        strcpy(cfg->current, "default");
        cfg->ncontexts = 1;
        return cli_read_context(doc, root, &cfg->contexts[0], err, errlen);
    }
    cur = cli_get(doc, root, "current-context");
    if (cur &&
        !(cur->type == YAML_SCALAR_NODE && cur->data.scalar.length == 0) &&
        cli_scalar(cur, cfg->current, sizeof(cfg->current)) != 0) {
        snprintf(err, errlen, "current-context is not a short string");
        return -1;
    }
    if (seq->type == YAML_SCALAR_NODE && seq->data.scalar.length == 0) {
        return 0; /* "contexts:" with nothing */
    }
    if (seq->type != YAML_SEQUENCE_NODE) {
        snprintf(err, errlen, "'contexts' must be a list");
        return -1;
    }
    for (it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++) {
        yaml_node_t *e = yaml_document_get_node(doc, *it);
        cli_context *c;

        if (e == NULL || e->type != YAML_MAPPING_NODE) {
            snprintf(err, errlen,
                     "each entry of 'contexts' must be a mapping with name "
                     "and context");
            return -1;
        }
        if (cfg->ncontexts >= CLI_MAX_CONTEXTS) {
            snprintf(err, errlen, "more than %d contexts", CLI_MAX_CONTEXTS);
            return -1;
        }
        c = &cfg->contexts[cfg->ncontexts++];
        if (cli_scalar(cli_get(doc, e, "name"), c->name, sizeof(c->name)) !=
                0 ||
            c->name[0] == '\0') {
            snprintf(err, errlen,
                     "context number %d has no name (or a name longer than "
                     "%d characters)",
                     cfg->ncontexts, CLI_MAX_NAME);
            return -1;
        }
        if (cli_find_dup(cfg, c)) {
            snprintf(err, errlen, "context '%s' is listed twice", c->name);
            return -1;
        }
        if (cli_read_context(doc, cli_get(doc, e, "context"), c, err, errlen) !=
            0) {
            return -1;
        }
    }
    return 0;
}

/* Parses the config document. */
int cli_config_parse(const char *buf, size_t len, cli_config *cfg, char *err,
                     size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    int rc;

    memset(cfg, 0, sizeof(*cfg));
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "invalid YAML at line %lu: %s",
                 (unsigned long)parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "parse error");
        yaml_parser_delete(&parser);
        return -1;
    }
    rc = cli_read_doc(&doc, cfg, err, errlen);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

/* Reads a whole regular file of at most CLI_CONFIG_MAX bytes. Returns a
 * malloc'd buffer, or NULL with errno set (EFBIG when too large). */
static char *cli_read_file(const char *path, size_t *len)
{
    struct stat st;
    char *buf;
    size_t n = 0;
    ssize_t r;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

    if (fd < 0) {
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        errno = EINVAL;
        return NULL;
    }
    buf = malloc(CLI_CONFIG_MAX + 1);
    if (buf == NULL) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    while (n <= CLI_CONFIG_MAX &&
           (r = read(fd, buf + n, CLI_CONFIG_MAX + 1 - n)) != 0) {
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            free(buf);
            close(fd);
            return NULL;
        }
        n += (size_t)r;
    }
    close(fd);
    if (n > CLI_CONFIG_MAX) {
        free(buf);
        errno = EFBIG;
        return NULL;
    }
    *len = n;
    return buf;
}

/* Loads the config file (missing: empty config). */
int cli_config_load(const char *path, cli_config *cfg, int *exists, char *err,
                    size_t errlen)
{
    size_t n = 0;
    char *buf;
    int rc;

    *exists = 0;
    memset(cfg, 0, sizeof(*cfg));
    buf = cli_read_file(path, &n);
    if (buf == NULL) {
        if (errno == ENOENT) {
            return 0;
        }
        snprintf(err, errlen, "cannot read %s: %s", path,
                 errno == EFBIG    ? "larger than 1 MiB"
                 : errno == EINVAL ? "not a regular file"
                                   : strerror(errno));
        return -1;
    }
    *exists = 1;
    rc = cli_config_parse(buf, n, cfg, err, errlen);
    free(buf);
    if (rc != 0) {
        char inner[512];

        snprintf(inner, sizeof(inner), "%s", err);
        snprintf(err, errlen, "%s: %s", path, inner);
    }
    return rc;
}

/* Releases the CA data each context holds. */
void cli_config_free(cli_config *cfg)
{
    int i;

    for (i = 0; i < cfg->ncontexts; i++) {
        free(cfg->contexts[i].ca_cert_base64);
        cfg->contexts[i].ca_cert_base64 = NULL;
    }
}

/* Removes one context, keeping the order of the others. */
void cli_config_remove(cli_config *cfg, cli_context *c)
{
    free(c->ca_cert_base64);
    memmove(c, c + 1,
            (size_t)(cfg->contexts + cfg->ncontexts - (c + 1)) * sizeof(*c));
    cfg->ncontexts--;
    memset(&cfg->contexts[cfg->ncontexts], 0, sizeof(*c));
}

/* 1 when a string would read back as something else than a string when
 * written plain (a number, a boolean, null), so it must be quoted. */
static int cli_needs_quotes(const char *s)
{
    static const char *const words[] = {"true", "false", "yes", "no",   "on",
                                        "off",  "y",     "n",   "null", "~"};
    size_t i;

    if (*s == '\0') {
        return 1;
    }
    for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strcasecmp(s, words[i]) == 0) {
            return 1;
        }
    }
    return strspn(s, "0123456789+-.eExXoObB_:abcdefABCDEF") == strlen(s) &&
           strpbrk(s, "0123456789") != NULL;
}

/* Emits a string scalar, quoted when it could be read as another type. */
static int cli_emit_scalar(yaml_emitter_t *em, const char *s)
{
    yaml_event_t ev;

    yaml_scalar_event_initialize(
        &ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1,
        cli_needs_quotes(s) ? YAML_DOUBLE_QUOTED_SCALAR_STYLE
                            : YAML_ANY_SCALAR_STYLE);
    return yaml_emitter_emit(em, &ev);
}

/* Emits "key: value". */
static int cli_emit_pair(yaml_emitter_t *em, const char *k, const char *v)
{
    return cli_emit_scalar(em, k) && cli_emit_scalar(em, v);
}

/* Emits a plain scalar as is (booleans). */
static int cli_emit_plain(yaml_emitter_t *em, const char *s)
{
    yaml_event_t ev;

    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s,
                                 (int)strlen(s), 1, 0, YAML_PLAIN_SCALAR_STYLE);
    return yaml_emitter_emit(em, &ev);
}

/* Emits the start of a block mapping. */
static int cli_emit_map_start(yaml_emitter_t *em)
{
    yaml_event_t ev;

    yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                        YAML_BLOCK_MAPPING_STYLE);
    return yaml_emitter_emit(em, &ev);
}

/* Emits the end of a mapping. */
static int cli_emit_map_end(yaml_emitter_t *em)
{
    yaml_event_t ev;

    yaml_mapping_end_event_initialize(&ev);
    return yaml_emitter_emit(em, &ev);
}

/* Copies a node of the old file (a key or value this tool does not know),
 * bounded in depth and in the number of nodes. */
static int cli_emit_node(yaml_emitter_t *em, yaml_document_t *doc,
                         yaml_node_t *n, int depth, long *budget)
{
    yaml_event_t ev;
    int ok = 1;

    if (n == NULL || depth > CLI_COPY_DEPTH || --*budget < 0) {
        return 0;
    }
    if (n->type == YAML_SCALAR_NODE) {
        int plain = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ||
                    n->data.scalar.style == YAML_ANY_SCALAR_STYLE;

        yaml_scalar_event_initialize(&ev, NULL, NULL, n->data.scalar.value,
                                     (int)n->data.scalar.length, plain, !plain,
                                     plain ? YAML_PLAIN_SCALAR_STYLE
                                           : n->data.scalar.style);
        return yaml_emitter_emit(em, &ev);
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        yaml_node_item_t *it;

        yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                             n->data.sequence.style);
        ok = yaml_emitter_emit(em, &ev);
        for (it = n->data.sequence.items.start;
             ok && it < n->data.sequence.items.top; it++) {
            ok = cli_emit_node(em, doc, yaml_document_get_node(doc, *it),
                               depth + 1, budget);
        }
        yaml_sequence_end_event_initialize(&ev);
        return ok && yaml_emitter_emit(em, &ev);
    }
    if (n->type == YAML_MAPPING_NODE) {
        yaml_node_pair_t *p;

        yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                            n->data.mapping.style);
        ok = yaml_emitter_emit(em, &ev);
        for (p = n->data.mapping.pairs.start;
             ok && p < n->data.mapping.pairs.top; p++) {
            ok = cli_emit_node(em, doc, yaml_document_get_node(doc, p->key),
                               depth + 1, budget) &&
                 cli_emit_node(em, doc, yaml_document_get_node(doc, p->value),
                               depth + 1, budget);
        }
        return ok && cli_emit_map_end(em);
    }
    return 0;
}

/* Copies the pairs of mapping m whose key is not one of skip[]. */
static int cli_emit_other_pairs(yaml_emitter_t *em, yaml_document_t *doc,
                                yaml_node_t *m, const char *const *skip,
                                long *budget)
{
    yaml_node_pair_t *p;
    int ok = 1;

    if (m == NULL || m->type != YAML_MAPPING_NODE) {
        return 1;
    }
    for (p = m->data.mapping.pairs.start; ok && p < m->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        const char *const *s;
        int known = 0;

        for (s = skip; *s && !known; s++) {
            known = cli_is(k, *s);
        }
        if (!known) {
            ok = cli_emit_node(em, doc, k, 1, budget) &&
                 cli_emit_node(em, doc, yaml_document_get_node(doc, p->value),
                               1, budget);
        }
    }
    return ok;
}

/* The entry for context name in the old document (its whole list item), or
 * NULL; *ctx gets its "context" mapping. The older flat format is one
 * context named "default" whose mapping is the root. */
static yaml_node_t *cli_old_entry(yaml_document_t *doc, const char *name,
                                  yaml_node_t **ctx)
{
    yaml_node_t *root = doc ? yaml_document_get_root_node(doc) : NULL, *seq;
    yaml_node_item_t *it;

    *ctx = NULL;
    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        return NULL;
    }
    seq = cli_get(doc, root, "contexts");
    if (seq == NULL) {
        if (strcmp(name, "default") == 0 && cli_get(doc, root, "url")) {
            *ctx = root;
        }
        return NULL;
    }
    if (seq->type != YAML_SEQUENCE_NODE) {
        return NULL;
    }
    for (it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++) {
        yaml_node_t *e = yaml_document_get_node(doc, *it);

        if (cli_is(cli_get(doc, e, "name"), name)) {
            *ctx = cli_get(doc, e, "context");
            return e;
        }
    }
    return NULL;
}

/* Emits one context: the fields this tool knows, then the old ones it
 * does not. */
static int cli_emit_context(yaml_emitter_t *em, yaml_document_t *old,
                            const cli_context *c, long *budget)
{
    static const char *const entry_keys[] = {"name", "context", NULL};
    static const char *const ctx_keys[] = {"url",
                                           "service-token",
                                           "api-path",
                                           "skip-ssl",
                                           "ca-cert-base64-data",
                                           "api-token",
                                           "service-bearer",
                                           NULL};
    /* With a service token, StackState's CLI refuses a second credential:
     * api-token and service-bearer are dropped (skipped above); without
     * one, they are kept. */
    static const char *const ctx_keys_no_token[] = {
        "url",      "service-token",       "api-path",
        "skip-ssl", "ca-cert-base64-data", NULL};
    yaml_node_t *oldctx = NULL, *entry = cli_old_entry(old, c->name, &oldctx);
    int ok;

    ok = cli_emit_map_start(em) && cli_emit_pair(em, "name", c->name) &&
         cli_emit_scalar(em, "context") && cli_emit_map_start(em) &&
         cli_emit_pair(em, "url", c->url);
    if (ok && c->service_token[0]) {
        ok = cli_emit_pair(em, "service-token", c->service_token);
    }
    ok = ok &&
         cli_emit_pair(em, "api-path",
                       c->api_path[0] ? c->api_path : CLI_DEFAULT_API_PATH);
    if (ok && (c->skip_ssl || cli_get(old, oldctx, "skip-ssl"))) {
        ok = cli_emit_scalar(em, "skip-ssl") &&
             cli_emit_plain(em, c->skip_ssl ? "true" : "false");
    }
    if (ok && c->ca_cert_base64) {
        ok = cli_emit_pair(em, "ca-cert-base64-data", c->ca_cert_base64);
    }
    ok = ok && cli_emit_other_pairs(
                   em, old, oldctx,
                   c->service_token[0] ? ctx_keys : ctx_keys_no_token, budget);
    ok = ok && cli_emit_map_end(em);
    ok = ok && cli_emit_other_pairs(em, old, entry, entry_keys, budget);
    return ok && cli_emit_map_end(em);
}

/* Emits the whole document over the old one (old may be NULL). */
static int cli_emit_config(yaml_emitter_t *em, const cli_config *cfg,
                           yaml_document_t *old)
{
    yaml_node_t *root = old ? yaml_document_get_root_node(old) : NULL;
    yaml_event_t ev;
    long budget = CLI_COPY_NODES;
    int i, ok;

    if (root && (root->type != YAML_MAPPING_NODE ||
                 cli_get(old, root, "contexts") == NULL)) {
        root = NULL; /* the flat format becomes the current one */
    }
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    ok = yaml_emitter_emit(em, &ev);
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    ok = ok && yaml_emitter_emit(em, &ev);
    ok = ok && cli_emit_map_start(em) && cli_emit_scalar(em, "contexts");
    yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                         YAML_BLOCK_SEQUENCE_STYLE);
    ok = ok && yaml_emitter_emit(em, &ev);
    for (i = 0; ok && i < cfg->ncontexts; i++) {
        ok = cli_emit_context(em, old, &cfg->contexts[i], &budget);
    }
    yaml_sequence_end_event_initialize(&ev);
    ok = ok && yaml_emitter_emit(em, &ev);
    ok = ok && cli_emit_pair(em, "current-context", cfg->current);
    if (ok && root) {
        static const char *const top_keys[] = {"contexts", "current-context",
                                               NULL};

        ok = cli_emit_other_pairs(em, old, root, top_keys, &budget);
    }
    ok = ok && cli_emit_map_end(em);
    yaml_document_end_event_initialize(&ev, 1);
    ok = ok && yaml_emitter_emit(em, &ev);
    yaml_stream_end_event_initialize(&ev);
    ok = ok && yaml_emitter_emit(em, &ev);
    return ok;
}

/* Creates the directories above path (mode 0700). */
int cli_config_mkdirs(const char *path)
{
    char dir[PATH_MAX];
    char *p;

    if (strlen(path) >= sizeof(dir)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(dir, path, strlen(path) + 1);
    p = strrchr(dir, '/');
    if (p == NULL || p == dir) {
        return 0;
    }
    *p = '\0';
    for (p = dir + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    return mkdir(dir, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

/* libyaml write handler appending to a file descriptor. */
static int cli_write_handler(void *data, unsigned char *buf, size_t size)
{
    int fd = *(int *)data;

    while (size > 0) {
        ssize_t w = write(fd, buf, size);

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return 0;
        }
        buf += w;
        size -= (size_t)w;
    }
    return 1;
}

/* Writes the config to a temp file beside it, then renames it in place. */
int cli_config_save(const char *path, const cli_config *cfg, char *err,
                    size_t errlen)
{
    char real[PATH_MAX], tmp[PATH_MAX + 32], *slash, *oldbuf;
    const char *target = path;
    yaml_parser_t parser;
    yaml_document_t olddoc, *old = NULL;
    yaml_emitter_t em;
    struct stat st;
    size_t oldlen = 0;
    int fd, ok, dfd;

    /* Through a symbolic link (dotfile managers): replace its target. */
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) &&
        realpath(path, real) != NULL) {
        target = real;
    }
    if (cli_config_mkdirs(target) != 0) {
        snprintf(err, errlen, "cannot create the directory of %s: %s", target,
                 strerror(errno));
        return -1;
    }
    /* The file as it is now: keep what this tool does not know. */
    oldbuf = cli_read_file(target, &oldlen);
    if (oldbuf == NULL && errno != ENOENT) {
        snprintf(err, errlen, "cannot read %s: %s", target, strerror(errno));
        return -1;
    }
    if (oldbuf) {
        if (!yaml_parser_initialize(&parser)) {
            free(oldbuf);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        yaml_parser_set_input_string(&parser, (unsigned char *)oldbuf, oldlen);
        ok = yaml_parser_load(&parser, &olddoc);
        yaml_parser_delete(&parser);
        free(oldbuf);
        if (!ok) {
            snprintf(err, errlen,
                     "%s changed and is no longer valid YAML; not "
                     "overwriting it",
                     target);
            return -1;
        }
        old = &olddoc;
    }
    snprintf(tmp, sizeof(tmp), "%s", target);
    slash = strrchr(tmp, '/');
    snprintf(slash ? slash + 1 : tmp,
             sizeof(tmp) - (size_t)(slash ? slash + 1 - tmp : 0),
             ".config.yaml.XXXXXX");
    fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
    if (fd < 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        if (old) {
            yaml_document_delete(old);
        }
        return -1;
    }
    yaml_emitter_initialize(&em);
    yaml_emitter_set_output(&em, cli_write_handler, &fd);
    yaml_emitter_set_unicode(&em, 1);
    yaml_emitter_set_width(&em, -1);
    ok = cli_emit_config(&em, cfg, old);
    ok = ok && yaml_emitter_flush(&em);
    yaml_emitter_delete(&em);
    if (old) {
        yaml_document_delete(old);
    }
    ok = ok && fchmod(fd, 0600) == 0 && fsync(fd) == 0;
    ok = (close(fd) == 0) && ok;
    if (!ok || rename(tmp, target) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", target,
                 ok ? strerror(errno)
                    : "the configuration could not be written (file "
                      "system full, or the old file is too complex)");
        unlink(tmp);
        return -1;
    }
    /* Make the rename itself durable. */
    if (slash) {
        *slash = '\0';
        dfd = open(tmp[0] ? tmp : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
    }
    return 0;
}

/* Finds a context by name. */
cli_context *cli_config_find(cli_config *cfg, const char *name)
{
    int i;

    for (i = 0; i < cfg->ncontexts; i++) {
        if (strcmp(cfg->contexts[i].name, name) == 0) {
            return &cfg->contexts[i];
        }
    }
    return NULL;
}
