/* json.c - the text checks of the outbox: JSON syntax (RFC 8259) for
 * payloads and headers, and UTF-8 (RFC 3629) for failure reasons.
 *
 * The payload is stored and handed on as the text the caller gave, so only
 * its syntax matters: a checker that builds no values accepts every number
 * (18446744073709551615, 1e400) and every \uXXXX escape, as PostgreSQL's
 * json type does, where a parser into C values would refuse some. Nesting
 * is kept on a bit stack (1 = object), so the check allocates nothing.
 */
#include <stdio.h>
#include <string.h>

#include "outbox_internal.h"

/* The length of the valid UTF-8 sequence starting at the lead byte p[0]
 * (>= 0x80), or 0 when it is not one; *cut is set when it stopped at the
 * terminating NUL (a character cut by the end of the text). */
static size_t utf8_seq(const unsigned char *p, bool *cut)
{
    unsigned char c = p[0];
    /* RFC 3629: the continuation bytes after a lead, the first of them in
     * [lo, hi] (no overlong form, no surrogate, <= U+10FFFF). */
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 1;
    else if (c == 0xE0)
        n = 2, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
        n = 2;
    else if (c == 0xED)
        n = 2, hi = 0x9F;
    else if (c == 0xF0)
        n = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
        n = 3;
    else if (c == 0xF4)
        n = 3, hi = 0x8F;
    else
        n = 0; /* a stray continuation byte or a lead that is never valid */
    size_t k = 1;
    while (n && k <= n && p[k] >= (k == 1 ? lo : 0x80) && p[k] <= (k == 1 ? hi : 0xBF))
        k++;
    *cut = n && k <= n && !p[k];
    return n && k > n ? n + 1 : 0;
}

void svc__ob_utf8_clean(char *s)
{
    unsigned char *p = (unsigned char *)s;
    size_t i = 0;
    while (p[i]) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        bool cut;
        size_t n = utf8_seq(p + i, &cut);
        if (n)
            i += n;
        else if (cut)
            p[i] = '\0'; /* a character cut by the end of the text: drop it */
        else
            p[i++] = '?';
    }
}

/* ---- JSON syntax ------------------------------------------------------------ */

typedef struct jscan {
    const unsigned char *s, *p;
    char *why;
    size_t whylen;
} jscan;

static bool jfail(jscan *j, const char *what)
{
    int line = 1, col = 1;
    for (const unsigned char *q = j->s; q < j->p; q++) {
        if (*q == '\n')
            line++, col = 1;
        else
            col++;
    }
    if (*j->p)
        snprintf(j->why, j->whylen, "line %d column %d (byte %zu): %s", line, col,
                 (size_t)(j->p - j->s), what);
    else
        snprintf(j->why, j->whylen, "line %d column %d (byte %zu): %s (at the end of the text)",
                 line, col, (size_t)(j->p - j->s), what);
    return false;
}

static void jspace(jscan *j)
{
    while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')
        j->p++;
}

static bool jhex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A string, from its opening quote. */
static bool jstring(jscan *j)
{
    j->p++;
    for (;;) {
        unsigned char c = *j->p;
        if (c == '"') {
            j->p++;
            return true;
        }
        if (c == '\0')
            return jfail(j, "unterminated string");
        if (c < 0x20)
            return jfail(j, "control character in a string (escape it)");
        if (c == '\\') {
            c = j->p[1];
            if (c == 'u') {
                for (int i = 2; i < 6; i++)
                    if (!jhex(j->p[i])) {
                        j->p += i;
                        return jfail(j, "\\u needs four hex digits");
                    }
                j->p += 6;
            } else if (c && strchr("\"\\/bfnrt", c)) {
                j->p += 2;
            } else {
                j->p++;
                return jfail(j, "invalid escape in a string");
            }
        } else if (c >= 0x80) {
            bool cut;
            size_t n = utf8_seq(j->p, &cut);
            if (!n)
                return jfail(j, "invalid UTF-8");
            j->p += n;
        } else {
            j->p++;
        }
    }
}

static bool jdigits(jscan *j, const char *what)
{
    if (*j->p < '0' || *j->p > '9')
        return jfail(j, what);
    while (*j->p >= '0' && *j->p <= '9')
        j->p++;
    return true;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, of any length. */
static bool jnumber(jscan *j)
{
    if (*j->p == '-')
        j->p++;
    if (*j->p == '0')
        j->p++;
    else if (!jdigits(j, "invalid number"))
        return false;
    if (*j->p == '.') {
        j->p++;
        if (!jdigits(j, "a digit must follow the decimal point"))
            return false;
    }
    if (*j->p == 'e' || *j->p == 'E') {
        j->p++;
        if (*j->p == '+' || *j->p == '-')
            j->p++;
        if (!jdigits(j, "a digit must follow the exponent"))
            return false;
    }
    return true;
}

static bool jliteral(jscan *j)
{
    static const char *const words[] = {"true", "false", "null"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t n = strlen(words[i]);
        if (strncmp((const char *)j->p, words[i], n) == 0) {
            j->p += n;
            return true;
        }
    }
    return jfail(j, "unexpected character");
}

/* A member name and its colon. */
static bool jmember(jscan *j)
{
    jspace(j);
    if (*j->p != '"')
        return jfail(j, "expected a member name (a string)");
    if (!jstring(j))
        return false;
    jspace(j);
    if (*j->p != ':')
        return jfail(j, "expected ':'");
    j->p++;
    return true;
}

bool svc__ob_json_check(const char *text, bool object, char *why, size_t whylen)
{
    jscan j = {(const unsigned char *)text, (const unsigned char *)text, why, whylen};
    unsigned char stack[SVC__OB_JSON_MAX_DEPTH / 8]; /* bit d: level d is an object */
    size_t depth = 0;
    jspace(&j);
    if (object && *j.p != '{')
        return jfail(&j, "not a JSON object");
    for (;;) {
        /* a value */
        jspace(&j);
        unsigned char c = *j.p;
        if (c == '{' || c == '[') {
            if (depth == SVC__OB_JSON_MAX_DEPTH)
                return jfail(&j, "nested too deep");
            if (c == '{')
                stack[depth / 8] |= (unsigned char)(1u << (depth % 8));
            else
                stack[depth / 8] &= (unsigned char)~(1u << (depth % 8));
            depth++;
            j.p++;
            jspace(&j);
            if (*j.p == (c == '{' ? '}' : ']')) {
                j.p++;
                depth--;
            } else {
                if (c == '{' && !jmember(&j))
                    return false;
                continue;
            }
        } else if (c == '"') {
            if (!jstring(&j))
                return false;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            if (!jnumber(&j))
                return false;
        } else if (c == '\0') {
            return jfail(&j, "expected a value");
        } else if (!jliteral(&j)) {
            return false;
        }
        /* after a value: the next member or element, or the end of
         * enclosing containers */
        for (;;) {
            jspace(&j);
            if (depth == 0) {
                if (*j.p)
                    return jfail(&j, "text after the end of the value");
                return true;
            }
            bool in_object = stack[(depth - 1) / 8] & (1u << ((depth - 1) % 8));
            if (*j.p == (in_object ? '}' : ']')) {
                j.p++;
                depth--;
                continue;
            }
            if (*j.p != ',')
                return jfail(&j, in_object ? "expected ',' or '}'" : "expected ',' or ']'");
            j.p++;
            if (in_object && !jmember(&j))
                return false;
            break;
        }
    }
}
