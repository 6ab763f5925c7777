/*
 * roles.c - the rule for role names (see roles.h).
 */
#include "roles.h"

#include <string.h>

int sts_role_char(char c)
{
    /* Not isalnum(): the rule must not follow the process's locale. */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || (c != '\0' && strchr("._:@-", c));
}

int sts_role_valid(const char *s, size_t len)
{
    size_t i;

    if (len < 1 || len > STS_ROLE_MAX_LEN) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!sts_role_char(s[i])) {
            return 0;
        }
    }
    return 1;
}
