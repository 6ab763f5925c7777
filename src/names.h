/*
 * names.h - the rule for token names, in one place for the module's API,
 * the CLI and the tests (no Apache types).
 *
 * A token's name is what logs, REMOTE_USER and STS_TOKEN_NAME show of it,
 * so it must read as what it is: 1 to STS_API_MAX_NAME characters of valid
 * UTF-8 without control characters (C0, DEL, C1), Unicode format characters
 * (category Cf: bidirectional overrides such as U+202E, zero-width U+200B,
 * U+FEFF, tags...) or line and paragraph separators (U+2028, U+2029), and
 * not the name of the bootstrap identity in any letter case.
 */
#ifndef STS_NAMES_H
#define STS_NAMES_H

#include <stddef.h>

/* The name the bootstrap secret authenticates as (REMOTE_USER,
 * STS_TOKEN_NAME); no token may take it. */
#define STS_BOOTSTRAP_NAME "bootstrap"

/* Returns 1 when name is the bootstrap identity's (any letter case). */
int sts_token_name_reserved(const char *name);

/* Returns 0 when name is a valid token name, else -1 with a message
 * starting with what (e.g. "'name'" or "--name") in err. */
int sts_token_name_check(const char *what, const char *name, char *err,
                         size_t errlen);

#endif
