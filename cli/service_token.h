/*
 * service_token.h - the parts of sts service-token that need no server
 * (request body, sorting, the list table), for the command and unit tests.
 */
#ifndef STS_CLI_SERVICE_TOKEN_H
#define STS_CLI_SERVICE_TOKEN_H

#include <stddef.h>

#include <jansson.h>

#include "cli.h"

/* Builds the NewServiceTokenRequest JSON for create from --name, --roles,
 * --expiration, --dedicatedSubject and --description. Returns CLI_OK with
 * *out malloc'd, or CLI_EUSAGE with err set. */
int cli_create_body(const cli_args *a, char **out, char *err, size_t errlen);

/* Builds the rotation request body from --grace-period (seconds) and
 * --expiration: CLI_OK with *out malloc'd ("" when neither is given), or
 * CLI_EUSAGE with err set. */
int cli_rotate_body(const cli_args *a, char **out, char *err, size_t errlen);

/* A new array of list's objects sorted by name then id; NULL when list is
 * not an array of objects. */
json_t *cli_sort_tokens(json_t *list);

/* The list for people: StackState's table (ID | NAME | EXPIRATION | ROLES)
 * or "No service tokens found.", malloc'd; NULL when out of memory. */
char *cli_tokens_table(json_t *sorted);

#endif
