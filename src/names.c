/*
 * names.c - the rule for token names (see names.h).
 */
#include "names.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api_json.h"

/* Code point ranges of Unicode's format characters (category Cf, Unicode
 * 15.1) and the line and paragraph separators (Zl, Zp). */
static const uint32_t sts_invisible[][2] = {
    {0x00AD, 0x00AD},   {0x0600, 0x0605},   {0x061C, 0x061C},
    {0x06DD, 0x06DD},   {0x070F, 0x070F},   {0x0890, 0x0891},
    {0x08E2, 0x08E2},   {0x180E, 0x180E},   {0x200B, 0x200F},
    {0x2028, 0x202E},   {0x2060, 0x2064},   {0x2066, 0x206F},
    {0xFEFF, 0xFEFF},   {0xFFF9, 0xFFFB},   {0x110BD, 0x110BD},
    {0x110CD, 0x110CD}, {0x13430, 0x1343F}, {0x1BCA0, 0x1BCA3},
    {0x1D173, 0x1D17A}, {0xE0001, 0xE0001}, {0xE0020, 0xE007F},
};

/* Decodes one UTF-8 sequence at s into *cp: its length, or 0 when it is
 * not valid UTF-8 (overlong, surrogate, beyond U+10FFFF, truncated). */
static size_t sts_utf8_decode(const unsigned char *s, uint32_t *cp)
{
    size_t n, i;
    uint32_t min;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xE0) == 0xC0) {
        n = 2, min = 0x80, *cp = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        n = 3, min = 0x800, *cp = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        n = 4, min = 0x10000, *cp = s[0] & 0x07;
    } else {
        return 0;
    }
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        *cp = (*cp << 6) | (s[i] & 0x3F);
    }
    if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF)) {
        return 0;
    }
    return n;
}

/* 1 when a code point must not appear in a name. */
static int sts_name_forbidden(uint32_t cp)
{
    size_t i;

    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
        return 1;
    }
    for (i = 0; i < sizeof(sts_invisible) / sizeof(sts_invisible[0]); i++) {
        if (cp >= sts_invisible[i][0] && cp <= sts_invisible[i][1]) {
            return 1;
        }
    }
    return 0;
}

/* 1 for the bootstrap identity's name (see names.h). */
int sts_token_name_reserved(const char *name)
{
    return strcasecmp(name, STS_BOOTSTRAP_NAME) == 0;
}

/* Checks a token name (see names.h). */
int sts_token_name_check(const char *what, const char *name, char *err,
                         size_t errlen)
{
    const unsigned char *p = (const unsigned char *)name;
    size_t chars = 0;

    while (*p != '\0') {
        uint32_t cp;
        size_t n = sts_utf8_decode(p, &cp);

        if (n == 0) {
            snprintf(err, errlen, "%s is not valid UTF-8", what);
            return -1;
        }
        if (sts_name_forbidden(cp)) {
            snprintf(err, errlen,
                     "%s contains a control character, an invisible "
                     "formatting character or a line separator (U+%04X)",
                     what, (unsigned)cp);
            return -1;
        }
        p += n;
        chars++;
    }
    if (chars == 0) {
        snprintf(err, errlen, "%s must not be empty", what);
        return -1;
    }
    if (chars > STS_API_MAX_NAME) {
        snprintf(err, errlen, "%s is longer than %d characters", what,
                 STS_API_MAX_NAME);
        return -1;
    }
    if (sts_token_name_reserved(name)) {
        snprintf(err, errlen,
                 "%s '%s' is reserved for the bootstrap secret: choose "
                 "another name",
                 what, name);
        return -1;
    }
    return 0;
}
