/*
 * roles.h - the rule for role names, in one place for the module's
 * directives, the API, the CLI and the tests (no Apache types). The
 * schema's CHECK on sts_tokens.roles states the same rule in SQL; the
 * integration tests hold the two together.
 *
 * A role is 1 to STS_ROLE_MAX_LEN characters of A-Z a-z 0-9 . _ : @ -
 * (case-sensitive); a token holds 1 to STS_ROLES_MAX of them. Commas never
 * occur in a role: the database and the STS_TOKEN_ROLES variable join
 * roles with them.
 */
#ifndef STS_ROLES_H
#define STS_ROLES_H

#include <stddef.h>

#define STS_ROLES_MAX 64
#define STS_ROLE_MAX_LEN 128

/* The characters a role may hold, as messages spell them. */
#define STS_ROLE_CHARS "A-Z a-z 0-9 . _ : @ -"

/* Returns 1 when c may appear in a role. */
int sts_role_char(char c);

/* Returns 1 when the len bytes at s are a valid role. */
int sts_role_valid(const char *s, size_t len);

#endif
