/*
 * parse.c - the one grammar of every configuration value the library reads
 * from text: YAML scalars and SVC_* variables through config.c's getters,
 * and the variables and option strings modules read themselves. See parse.h.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../internal.h"
#include "core/parse.h"

/* Copies `s` without surrounding spaces into out (cap bytes); false if it
 * does not fit (then the value is not a sane number anyway). */
static bool trimmed(const char *s, char *out, size_t cap)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (n >= cap)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

/* Decimal digits at *p into *out: 1 ok, 0 no digit, -1 overflow (the
 * digits are consumed either way). */
static int parse_u64(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    bool over = false;
    if (!isdigit((unsigned char)*s))
        return 0;
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            over = true;
        else
            v = v * 10 + d;
    }
    *p = s;
    *out = v;
    return over ? -1 : 1;
}

svc_status svc__parse_int(const char *text, int64_t *out)
{
    char s[64];
    if (!trimmed(text, s, sizeof s) || !*s)
        return SVC_ECONFIG;
    const char *p = s;
    bool neg = false;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    uint64_t u;
    int r = parse_u64(&p, &u);
    if (r == 0 || *p)
        return SVC_ECONFIG;
    if (r < 0 || u > (uint64_t)INT64_MAX + (neg ? 1u : 0u))
        return SVC_ERANGE;
    *out = neg ? (u == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)u) : (int64_t)u;
    return SVC_OK;
}

svc_status svc__parse_bool(const char *text, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    char s[16];
    if (!trimmed(text, s, sizeof s))
        return SVC_ECONFIG;
    for (size_t i = 0; i < SVC__ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return SVC_OK;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return SVC_OK;
        }
    }
    return SVC_ECONFIG;
}

svc_status svc__parse_double(const char *text, double *out)
{
    char s[128];
    if (!trimmed(text, s, sizeof s) || !*s)
        return SVC_ECONFIG;
    /* decimal notation only: no hex floats, inf or nan */
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p) && !strchr("+-.eE", *p))
            return SVC_ECONFIG;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (end == s || *end)
        return SVC_ECONFIG;
    if (errno == ERANGE && (isinf(d) || fabs(d) >= 1.0))
        return SVC_ERANGE;
    *out = d;
    return SVC_OK;
}

svc_status svc__parse_duration_ms(const char *text, int64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    char s[64];
    if (!trimmed(text, s, sizeof s) || !*s)
        return SVC_ECONFIG;
    const char *p = s;
    if (*p == '+')
        p++;
    if (!*p)
        return SVC_ECONFIG;
    if (strspn(p, "0123456789") == strlen(p)) { /* a bare number: milliseconds */
        uint64_t n;
        if (parse_u64(&p, &n) < 0 || n > (uint64_t)INT64_MAX)
            return SVC_ERANGE;
        *out = (int64_t)n;
        return SVC_OK;
    }
    uint64_t total = 0;
    bool over = false;
    while (*p) {
        uint64_t n;
        int r = parse_u64(&p, &n);
        if (r == 0)
            return SVC_ECONFIG;
        over |= r < 0;
        const char *u = p;
        while (isalpha((unsigned char)*p))
            p++;
        size_t ulen = (size_t)(p - u);
        uint64_t mult = 0;
        for (size_t i = 0; i < SVC__ARRAY_LEN(units) && !mult; i++)
            if (strlen(units[i].unit) == ulen && strncmp(u, units[i].unit, ulen) == 0)
                mult = units[i].ms;
        if (!mult)
            return SVC_ECONFIG;
        if (n > UINT64_MAX / mult || total > UINT64_MAX - n * mult)
            over = true;
        else
            total += n * mult;
    }
    if (over || total > (uint64_t)INT64_MAX)
        return SVC_ERANGE;
    *out = (int64_t)total;
    return SVC_OK;
}

svc_status svc__parse_size(const char *text, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"kb", UINT64_C(1000)},
        {"mb", UINT64_C(1000000)},
        {"gb", UINT64_C(1000000000)},
        {"tb", UINT64_C(1000000000000)},
        {"kib", UINT64_C(1) << 10},
        {"mib", UINT64_C(1) << 20},
        {"gib", UINT64_C(1) << 30},
        {"tib", UINT64_C(1) << 40},
    };
    char s[64];
    if (!trimmed(text, s, sizeof s) || !*s)
        return SVC_ECONFIG;
    const char *p = s;
    if (*p == '+')
        p++;
    uint64_t n;
    int r = parse_u64(&p, &n);
    if (r == 0)
        return SVC_ECONFIG;
    if (*p == ' ')
        p++;
    for (size_t i = 0; i < SVC__ARRAY_LEN(units); i++) {
        if (strcasecmp(p, units[i].unit) != 0)
            continue;
        if (r < 0 || n > UINT64_MAX / units[i].mult)
            return SVC_ERANGE;
        *out = n * units[i].mult;
        return SVC_OK;
    }
    return SVC_ECONFIG;
}
