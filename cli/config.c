/*
 * config.c - StackState CLI's config file (contexts), read with libyaml's
 * document API and written with its emitter, atomically, mode 0600.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

/* Largest config file read. */
#define CLI_CONFIG_MAX (1024 * 1024)

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

/* Copies a scalar node's value into dst (bounded); -1 when too long. */
static int cli_scalar(yaml_node_t *n, char *dst, size_t dstlen)
{
    if (n == NULL || n->type != YAML_SCALAR_NODE ||
        n->data.scalar.length >= dstlen) {
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

/* Reads one "context:" mapping into c. */
static int cli_read_context(yaml_document_t *doc, yaml_node_t *m,
                            cli_context *c, char *err, size_t errlen)
{
    yaml_node_pair_t *p;

    if (m->type != YAML_MAPPING_NODE) {
        snprintf(err, errlen, "'context' of '%s' must be a mapping", c->name);
        return -1;
    }
    for (p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        char *dst = NULL;
        size_t len = 0;

        if (cli_is(k, "url")) {
            dst = c->url, len = sizeof(c->url);
        } else if (cli_is(k, "service-token")) {
            dst = c->service_token, len = sizeof(c->service_token);
        } else if (cli_is(k, "api-path")) {
            dst = c->api_path, len = sizeof(c->api_path);
        }
        if (dst && v && v->type == YAML_SCALAR_NODE &&
            cli_scalar(v, dst, len) != 0) {
            snprintf(err, errlen, "a value of context '%s' is too long",
                     c->name);
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
    yaml_node_t *root;
    yaml_node_pair_t *p;
    int rc = -1;

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
    root = yaml_document_get_root_node(&doc);
    if (root == NULL) {
        rc = 0; /* empty file */
        goto done;
    }
    if (root->type != YAML_MAPPING_NODE) {
        snprintf(err, errlen, "the config must be a mapping");
        goto done;
    }
    for (p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(&doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&doc, p->value);
        yaml_node_item_t *it;

        if (cli_is(k, "current-context") && v && v->type == YAML_SCALAR_NODE) {
            if (cli_scalar(v, cfg->current, sizeof(cfg->current)) != 0) {
                snprintf(err, errlen, "current-context is too long");
                goto done;
            }
        }
        if (!cli_is(k, "contexts") || v == NULL ||
            v->type != YAML_SEQUENCE_NODE) {
            continue;
        }
        for (it = v->data.sequence.items.start; it < v->data.sequence.items.top;
             it++) {
            yaml_node_t *e = yaml_document_get_node(&doc, *it);
            yaml_node_pair_t *q;
            cli_context *c;

            if (e == NULL || e->type != YAML_MAPPING_NODE) {
                snprintf(err, errlen,
                         "each entry of 'contexts' must be a "
                         "mapping with name and context");
                goto done;
            }
            if (cfg->ncontexts >= CLI_MAX_CONTEXTS) {
                snprintf(err, errlen, "more than %d contexts",
                         CLI_MAX_CONTEXTS);
                goto done;
            }
            c = &cfg->contexts[cfg->ncontexts];
            for (q = e->data.mapping.pairs.start; q < e->data.mapping.pairs.top;
                 q++) {
                yaml_node_t *qk = yaml_document_get_node(&doc, q->key);
                yaml_node_t *qv = yaml_document_get_node(&doc, q->value);

                if (cli_is(qk, "name") &&
                    cli_scalar(qv, c->name, sizeof(c->name)) != 0) {
                    snprintf(err, errlen, "a context name is invalid");
                    goto done;
                }
            }
            for (q = e->data.mapping.pairs.start; q < e->data.mapping.pairs.top;
                 q++) {
                yaml_node_t *qk = yaml_document_get_node(&doc, q->key);
                yaml_node_t *qv = yaml_document_get_node(&doc, q->value);

                if (cli_is(qk, "context") && qv &&
                    cli_read_context(&doc, qv, c, err, errlen) != 0) {
                    goto done;
                }
            }
            if (c->name[0] == '\0') {
                snprintf(err, errlen, "a context has no name");
                goto done;
            }
            cfg->ncontexts++;
        }
    }
    rc = 0;
done:
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

/* Loads the config file (missing: empty config). */
int cli_config_load(const char *path, cli_config *cfg, int *exists, char *err,
                    size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;
    int rc;

    *exists = 0;
    memset(cfg, 0, sizeof(*cfg));
    if (f == NULL) {
        if (errno == ENOENT) {
            return 0;
        }
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    *exists = 1;
    buf = malloc(CLI_CONFIG_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    n = fread(buf, 1, CLI_CONFIG_MAX + 1, f);
    fclose(f);
    if (n > CLI_CONFIG_MAX) {
        free(buf);
        snprintf(err, errlen, "%s is larger than 1 MiB", path);
        return -1;
    }
    rc = cli_config_parse(buf, n, cfg, err, errlen);
    free(buf);
    if (rc != 0) {
        char inner[512];

        snprintf(inner, sizeof(inner), "%s", err);
        snprintf(err, errlen, "%s: %s", path, inner);
    }
    return rc;
}

/* Emits a plain scalar (the emitter quotes when needed). */
static int cli_emit_scalar(yaml_emitter_t *em, const char *s)
{
    yaml_event_t ev;

    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s,
                                 (int)strlen(s), 1, 1, YAML_ANY_SCALAR_STYLE);
    return yaml_emitter_emit(em, &ev);
}

/* Emits "key: value". */
static int cli_emit_pair(yaml_emitter_t *em, const char *k, const char *v)
{
    return cli_emit_scalar(em, k) && cli_emit_scalar(em, v);
}

/* libyaml write handler appending to a FILE. */
static int cli_write_handler(void *data, unsigned char *buf, size_t size)
{
    return fwrite(buf, 1, size, (FILE *)data) == size;
}

/* Emits the whole document; returns 1 on success. */
static int cli_emit_config(yaml_emitter_t *em, const cli_config *cfg)
{
    yaml_event_t ev;
    int i, ok;

    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    ok = yaml_emitter_emit(em, &ev);
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    ok = ok && yaml_emitter_emit(em, &ev);
    yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                        YAML_BLOCK_MAPPING_STYLE);
    ok = ok && yaml_emitter_emit(em, &ev);
    ok = ok && cli_emit_scalar(em, "contexts");
    yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                         YAML_BLOCK_SEQUENCE_STYLE);
    ok = ok && yaml_emitter_emit(em, &ev);
    for (i = 0; ok && i < cfg->ncontexts; i++) {
        const cli_context *c = &cfg->contexts[i];

        yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                            YAML_BLOCK_MAPPING_STYLE);
        ok = yaml_emitter_emit(em, &ev) && cli_emit_pair(em, "name", c->name);
        ok = ok && cli_emit_scalar(em, "context");
        yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                            YAML_BLOCK_MAPPING_STYLE);
        ok = ok && yaml_emitter_emit(em, &ev);
        ok = ok && cli_emit_pair(em, "url", c->url);
        ok = ok && cli_emit_pair(em, "service-token", c->service_token);
        ok = ok &&
             cli_emit_pair(em, "api-path",
                           c->api_path[0] ? c->api_path : CLI_DEFAULT_API_PATH);
        yaml_mapping_end_event_initialize(&ev);
        ok = ok && yaml_emitter_emit(em, &ev);
        yaml_mapping_end_event_initialize(&ev);
        ok = ok && yaml_emitter_emit(em, &ev);
    }
    yaml_sequence_end_event_initialize(&ev);
    ok = ok && yaml_emitter_emit(em, &ev);
    ok = ok && cli_emit_pair(em, "current-context", cfg->current);
    yaml_mapping_end_event_initialize(&ev);
    ok = ok && yaml_emitter_emit(em, &ev);
    yaml_document_end_event_initialize(&ev, 1);
    ok = ok && yaml_emitter_emit(em, &ev);
    yaml_stream_end_event_initialize(&ev);
    ok = ok && yaml_emitter_emit(em, &ev);
    return ok;
}

/* Creates the directories above path (mode 0700). */
static int cli_mkdirs(const char *path)
{
    char dir[4096];
    char *p;

    if (strlen(path) >= sizeof(dir)) {
        return -1;
    }
    strcpy(dir, path);
    p = strrchr(dir, '/');
    if (p == NULL) {
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

/* Writes the config to a temp file beside it, then renames it in place. */
int cli_config_save(const char *path, const cli_config *cfg, char *err,
                    size_t errlen)
{
    char tmp[4200];
    yaml_emitter_t em;
    FILE *f;
    int fd, ok;

    if (cli_mkdirs(path) != 0) {
        snprintf(err, errlen, "cannot create the directory of %s: %s", path,
                 strerror(errno));
        return -1;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_TRUNC, 0600);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    yaml_emitter_initialize(&em);
    yaml_emitter_set_output(&em, cli_write_handler, f);
    yaml_emitter_set_unicode(&em, 1);
    ok = cli_emit_config(&em, cfg);
    yaml_emitter_delete(&em);
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
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
