/*
 * test_cli_config.c - the sts config file: StackState's format read and
 * written back (unknown keys kept), the older flat format, limits, atomic
 * 0600 writes, symbolic links.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"

/* A fresh temp dir per test (cmocka state). */
static int setup(void **state)
{
    char *dir = strdup("/tmp/sts-cli-test-XXXXXX");

    if (dir == NULL || mkdtemp(dir) == NULL) {
        return -1;
    }
    *state = dir;
    return 0;
}

/* Removes the temp dir and what the tests left in it. */
static int teardown(void **state)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", (char *)*state);
    free(*state);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to path. */
static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Reads path into a static buffer. */
static const char *read_file(const char *path)
{
    static char buf[65536];
    FILE *f = fopen(path, "r");
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Files in dir other than the one named keep. */
static int other_files(const char *dir, const char *keep)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
             strcmp(e->d_name, keep);
    }
    closedir(d);
    return n;
}

/* Save then load: StackState's layout, mode 0600, directories created,
 * values that need quoting stay strings, no temp file left behind. */
static void test_roundtrip(void **state)
{
    char path[600], dir[512], err[512];
    cli_config c, back;
    struct stat st;
    int exists;

    snprintf(dir, sizeof(dir), "%s/a/b", (char *)*state);
    snprintf(path, sizeof(path), "%s/config.yaml", dir);
    assert_int_equal(cli_config_load(path, &c, &exists, err, 512), 0);
    assert_int_equal(exists, 0);
    assert_int_equal(c.ncontexts, 0);
    strcpy(c.contexts[0].name, "prod");
    strcpy(c.contexts[0].url, "https://x: y");
    strcpy(c.contexts[0].service_token, "svctok-\"quoted\"");
    strcpy(c.contexts[1].name, "123");
    strcpy(c.contexts[1].url, "http://h");
    strcpy(c.contexts[1].service_token, "0x10");
    strcpy(c.contexts[1].api_path, "/other");
    c.contexts[1].skip_ssl = 1;
    c.ncontexts = 2;
    strcpy(c.current, "prod");
    assert_int_equal(cli_config_save(path, &c, err, 512), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(other_files(dir, "config.yaml"), 0);
    assert_non_null(strstr(read_file(path), "name: \"123\""));
    assert_non_null(strstr(read_file(path), "service-token: \"0x10\""));
    assert_non_null(strstr(read_file(path), "skip-ssl: true"));
    assert_int_equal(cli_config_load(path, &back, &exists, err, 512), 0);
    assert_int_equal(exists, 1);
    assert_int_equal(back.ncontexts, 2);
    assert_string_equal(back.contexts[0].url, "https://x: y");
    assert_string_equal(back.contexts[0].service_token, "svctok-\"quoted\"");
    assert_string_equal(back.contexts[0].api_path, "/api");
    assert_int_equal(back.contexts[0].skip_ssl, 0);
    assert_string_equal(back.contexts[1].service_token, "0x10");
    assert_string_equal(back.contexts[1].api_path, "/other");
    assert_int_equal(back.contexts[1].skip_ssl, 1);
    assert_string_equal(back.current, "prod");
    /* A world-readable old file is replaced by a 0600 one. */
    chmod(path, 0644);
    assert_int_equal(cli_config_save(path, &back, err, 512), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    cli_config_free(&back);
}

/* A file written by StackState's CLI: its fields are read, and every key
 * this tool does not know survives a save. */
static void test_stackstate_file(void **state)
{
    static const char y[] =
        "contexts:\n"
        "- name: default\n"
        "  context:\n"
        "    url: https://sts.example.com\n"
        "    service-token: abc\n"
        "    api-path: /api\n"
        "    admin-api-path: /admin\n"
        "    skip-ssl: false\n"
        "    ca-cert-base64-data: TUlJ\n"
        "- name: other\n"
        "  context: {url: 'http://o', api-token: z, api-path: /api}\n"
        "  note: kept\n"
        "current-context: default\n"
        "extra: [1, 'two', {three: 3}]\n";
    char path[512], err[512];
    const char *out;
    cli_config c;
    int exists;

    snprintf(path, sizeof(path), "%s/config.yaml", (char *)*state);
    write_file(path, y);
    assert_int_equal(cli_config_load(path, &c, &exists, err, 512), 0);
    assert_int_equal(c.ncontexts, 2);
    assert_string_equal(c.contexts[0].service_token, "abc");
    assert_string_equal(c.contexts[0].ca_cert_base64, "TUlJ");
    assert_int_equal(c.contexts[0].has_api_token, 0);
    assert_string_equal(c.contexts[1].url, "http://o");
    assert_string_equal(c.contexts[1].service_token, "");
    assert_int_equal(c.contexts[1].has_api_token, 1);
    assert_non_null(cli_config_find(&c, "other"));
    assert_null(cli_config_find(&c, "none"));
    /* Change one context and save: the rest is kept. */
    strcpy(c.contexts[0].url, "https://new.example.com");
    strcpy(c.current, "other");
    assert_int_equal(cli_config_save(path, &c, err, 512), 0);
    cli_config_free(&c);
    out = read_file(path);
    assert_non_null(strstr(out, "url: https://new.example.com"));
    assert_non_null(strstr(out, "admin-api-path: /admin"));
    assert_non_null(strstr(out, "ca-cert-base64-data: TUlJ"));
    assert_non_null(strstr(out, "api-token: z"));
    assert_non_null(strstr(out, "note: kept"));
    assert_non_null(strstr(out, "extra:"));
    assert_non_null(strstr(out, "three: 3"));
    assert_non_null(strstr(out, "'two'"));
    assert_non_null(strstr(out, "current-context: other"));
    /* Giving "other" a service token drops its api-token (StackState's
     * CLI refuses a context with both). */
    assert_int_equal(cli_config_load(path, &c, &exists, err, 512), 0);
    strcpy(cli_config_find(&c, "other")->service_token, "svctok-x");
    cli_config_remove(&c, cli_config_find(&c, "default"));
    assert_int_equal(c.ncontexts, 1);
    assert_int_equal(cli_config_save(path, &c, err, 512), 0);
    cli_config_free(&c);
    out = read_file(path);
    assert_null(strstr(out, "api-token"));
    assert_null(strstr(out, "sts.example.com"));
    assert_non_null(strstr(out, "service-token: svctok-x"));
    assert_non_null(strstr(out, "note: kept"));
}

/* StackState's older flat format is one context named "default"; saving
 * writes the current format. */
static void test_flat_format(void **state)
{
    char path[512], err[512];
    cli_config c;
    int exists;

    snprintf(path, sizeof(path), "%s/config.yaml", (char *)*state);
    write_file(path, "url: http://flat\nservice-token: t\napi-path: /x\n"
                     "admin-api-path: /adm\n");
    assert_int_equal(cli_config_load(path, &c, &exists, err, 512), 0);
    assert_int_equal(c.ncontexts, 1);
    assert_string_equal(c.contexts[0].name, "default");
    assert_string_equal(c.contexts[0].url, "http://flat");
    assert_string_equal(c.contexts[0].api_path, "/x");
    assert_string_equal(c.current, "default");
    assert_int_equal(cli_config_save(path, &c, err, 512), 0);
    cli_config_free(&c);
    assert_int_equal(cli_config_load(path, &c, &exists, err, 512), 0);
    assert_int_equal(c.ncontexts, 1);
    assert_string_equal(c.contexts[0].url, "http://flat");
    assert_non_null(strstr(read_file(path), "contexts:"));
    assert_non_null(strstr(read_file(path), "admin-api-path: /adm"));
    cli_config_free(&c);
}

/* Bad documents are refused with a message naming the problem. */
static void test_bad_documents(void **state)
{
    static const struct {
        const char *yaml, *msg;
    } bad[] = {
        {"[1]", "must be a mapping"},
        {"contexts: [1]", "must be a mapping"},
        {"contexts: 5", "must be a list"},
        {"a: [", "invalid YAML"},
        {"contexts:\n- context: {url: x}\n", "no name"},
        {"contexts:\n- {name: a, context: 5}\n", "must be a mapping"},
        {"contexts:\n- {name: a, context: {url: [1]}}\n", "'url'"},
        {"contexts:\n- {name: a, context: {skip-ssl: maybe}}\n", "skip-ssl"},
        {"contexts:\n- {name: a, context: {}}\n- {name: a, context: {}}\n",
         "listed twice"},
        {"current-context: [x]\ncontexts: []\n", "current-context"},
    };
    char err[256];
    cli_config c;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            cli_config_parse(bad[i].yaml, strlen(bad[i].yaml), &c, err, 256),
            -1);
        if (strstr(err, bad[i].msg) == NULL) {
            fail_msg("%s: got '%s'", bad[i].yaml, err);
        }
        cli_config_free(&c);
    }
    assert_int_equal(cli_config_parse("", 0, &c, err, 256), 0);
    assert_int_equal(c.ncontexts, 0);
    {
        static const char y[] = "contexts:\ncurrent-context:\n";

        assert_int_equal(cli_config_parse(y, strlen(y), &c, err, 256), 0);
    }
    assert_int_equal(c.ncontexts, 0);
}

/* Limits: file size, number of contexts, field lengths, non-regular
 * files, and an alias bomb is not expanded when saving. */
static void test_limits(void **state)
{
    char path[512], err[512], *big;
    cli_config c;
    size_t len;
    int exists, i;

    snprintf(path, sizeof(path), "%s/config.yaml", (char *)*state);
    big = malloc(CLI_CONFIG_MAX + 2);
    assert_non_null(big);
    memset(big, '#', CLI_CONFIG_MAX + 1);
    big[CLI_CONFIG_MAX + 1] = '\0';
    write_file(path, big);
    assert_int_equal(cli_config_load(path, &c, &exists, err, 512), -1);
    assert_non_null(strstr(err, "larger than 1 MiB"));
    big[CLI_CONFIG_MAX] = '\0'; /* exactly the limit: a comment */
    write_file(path, big);
    assert_int_equal(cli_config_load(path, &c, &exists, err, 512), 0);
    free(big);

    assert_int_equal(cli_config_load(*state, &c, &exists, err, 512), -1);
    assert_non_null(strstr(err, "not a regular file"));

    {
        static char doc[65536];
        static const char head[] = "contexts:\n- {name: a, context: {url: ";

        len = (size_t)sprintf(doc, "contexts:\n");
        for (i = 0; i <= CLI_MAX_CONTEXTS; i++) {
            len +=
                (size_t)sprintf(doc + len, "- {name: c%d, context: {}}\n", i);
        }
        assert_int_equal(cli_config_parse(doc, len, &c, err, 256), -1);
        assert_non_null(strstr(err, "more than 64 contexts"));
        memcpy(doc, head, sizeof(head) - 1);
        len = sizeof(head) - 1;
        memset(doc + len, 'u', CLI_MAX_URL + 1);
        len += CLI_MAX_URL + 1;
        memcpy(doc + len, "}}\n", 3);
        len += 3;
        assert_int_equal(cli_config_parse(doc, len, &c, err, 256), -1);
        assert_non_null(strstr(err, "at most 2048 bytes"));
    }

    /* Nine levels of ten aliases: 10^9 nodes if expanded. */
    big = malloc(8192);
    assert_non_null(big);
    len = (size_t)sprintf(big, "a0: &a0 [x]\n");
    for (i = 1; i <= 9; i++) {
        len += (size_t)sprintf(big + len,
                               "a%d: &a%d [*a%d,*a%d,*a%d,*a%d,*a%d,*a%d,"
                               "*a%d,*a%d,*a%d,*a%d]\n",
                               i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1,
                               i - 1, i - 1, i - 1, i - 1);
    }
    len += (size_t)sprintf(big + len, "contexts: []\n");
    write_file(path, big);
    free(big);
    assert_int_equal(cli_config_load(path, &c, &exists, err, 512), 0);
    strcpy(c.contexts[0].name, "n");
    strcpy(c.contexts[0].url, "http://h");
    c.ncontexts = 1;
    assert_int_equal(cli_config_save(path, &c, err, 512), -1);
    assert_non_null(strstr(err, "too complex"));
    assert_int_equal(other_files(*state, "config.yaml"), 0);
}

/* Through a symbolic link the target is replaced, the link kept. */
static void test_symlink(void **state)
{
    char path[512], target[512], err[512];
    cli_config c;
    struct stat st;
    int exists;

    snprintf(path, sizeof(path), "%s/config.yaml", (char *)*state);
    snprintf(target, sizeof(target), "%s/real.yaml", (char *)*state);
    write_file(target, "contexts: []\ncurrent-context: ''\n");
    assert_int_equal(symlink(target, path), 0);
    assert_int_equal(cli_config_load(path, &c, &exists, err, 512), 0);
    strcpy(c.contexts[0].name, "n");
    strcpy(c.contexts[0].url, "http://h");
    c.ncontexts = 1;
    assert_int_equal(cli_config_save(path, &c, err, 512), 0);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_non_null(strstr(read_file(target), "url: http://h"));
}

/* Runs the tests of this file. */
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stackstate_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flat_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_documents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
