/* url.c - the one parser of store URLs (memory:, redis://, postgres://).
 *
 *   postgres://user:pass@host:5432/dbname?sslmode=disable&application_name=x
 *   \______/   \_______/ \__/ \__/ \____/ \_________________________________/
 *    scheme    userinfo  host port  path   query (postgres only, passed through)
 *
 * The URL is split on its delimiters first and each piece is decoded after,
 * so an escaped '@', ':' or '/' inside a password never moves a boundary.
 * The redacted copy is assembled from the same spans.
 */
#include "svcinfra/store.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../internal.h"

#define REDIS_DEFAULT_PORT 6379
#define REDIS_MAX_DB 1000000

typedef struct span {
    const char *p;
    size_t n;
} span;

static svc_status fail(char *errbuf, size_t errlen, svc_status st, const char *fmt, ...)
    SVC_PRINTF(4, 5);

static svc_status fail(char *errbuf, size_t errlen, svc_status st, const char *fmt, ...)
{
    if (errbuf && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes `s` into a new string. Returns NULL with *bad set for a
 * malformed escape or an escaped NUL, NULL with *bad clear on OOM. */
static char *pct_decode(span s, bool *bad)
{
    *bad = false;
    char *out = svc_malloc(s.n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] != '%') {
            out[o++] = s.p[i];
            continue;
        }
        int hi = (i + 1 < s.n) ? hexval((unsigned char)s.p[i + 1]) : -1;
        int lo = (i + 2 < s.n) ? hexval((unsigned char)s.p[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            svc_free(out);
            *bad = true;
            return NULL;
        }
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

static bool span_eq_ci(span s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.n != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)s.p[i]) != lit[i])
            return false;
    return true;
}

static bool all_digits(span s)
{
    if (s.n == 0)
        return false;
    for (size_t i = 0; i < s.n; i++)
        if (!isdigit((unsigned char)s.p[i]))
            return false;
    return true;
}

/* Decodes a span into *dst; on a bad escape reports which part it was. */
static svc_status decode_part(span s, char **dst, const char *what, char *errbuf, size_t errlen)
{
    bool bad;
    *dst = pct_decode(s, &bad);
    if (*dst)
        return SVC_OK;
    if (bad)
        return fail(errbuf, errlen, SVC_EINVAL,
                    "store URL: bad percent-escape in the %s (expected %%XX hex, not %%00)", what);
    return fail(errbuf, errlen, SVC_ENOMEM, "store URL: out of memory");
}

static bool key_is_secret(const char *k)
{
    return strcmp(k, "password") == 0 || strcmp(k, "sslpassword") == 0;
}

void svc_store_url_clear(svc_store_url *u)
{
    if (!u)
        return;
    svc_free(u->host);
    svc_free(u->user);
    svc_free(u->password);
    svc_free(u->database);
    svc_free(u->raw);
    svc_free(u->redacted);
    for (size_t i = 0; i < u->nparams; i++) {
        svc_free(u->param_keys[i]);
        svc_free(u->param_values[i]);
    }
    svc_free(u->param_keys);
    svc_free(u->param_values);
    memset(u, 0, sizeof *u);
}

const char *svc_store_kind_name(svc_store_kind kind)
{
    switch (kind) {
    case SVC_STORE_MEMORY: return "memory";
    case SVC_STORE_REDIS: return "redis";
    case SVC_STORE_POSTGRES: return "postgres";
    }
    return "unknown";
}

/* Parses "k=v&k=v" into the params of `u` and appends the redacted query to
 * `red`. */
static svc_status parse_query(span q, svc_store_url *u, svc__buf *red, char *errbuf, size_t errlen)
{
    size_t count = 1;
    for (size_t i = 0; i < q.n; i++)
        if (q.p[i] == '&')
            count++;
    u->param_keys = svc__calloc(count, sizeof(char *));
    u->param_values = svc__calloc(count, sizeof(char *));
    if (!u->param_keys || !u->param_values)
        return fail(errbuf, errlen, SVC_ENOMEM, "store URL: out of memory");

    const char *p = q.p, *end = q.p + q.n;
    while (p <= end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        span item = {p, (size_t)(stop - p)};
        if (item.n > 0) {
            const char *eq = memchr(item.p, '=', item.n);
            if (!eq)
                return fail(errbuf, errlen, SVC_EINVAL,
                            "store URL: query parameter '%.*s' has no '=value'",
                            (int)(item.n > 64 ? 64 : item.n), item.p);
            span k = {item.p, (size_t)(eq - item.p)};
            span v = {eq + 1, (size_t)(stop - eq - 1)};
            if (k.n == 0)
                return fail(errbuf, errlen, SVC_EINVAL,
                            "store URL: a query parameter has an empty name");
            size_t i = u->nparams;
            svc_status st = decode_part(k, &u->param_keys[i], "query parameter name", errbuf, errlen);
            if (st)
                return st;
            st = decode_part(v, &u->param_values[i], "query parameter value", errbuf, errlen);
            if (st) {
                svc_free(u->param_keys[i]);
                u->param_keys[i] = NULL;
                return st;
            }
            u->nparams++;
            svc__buf_putc(red, i == 0 ? '?' : '&');
            svc__buf_append(red, k.p, k.n);
            svc__buf_putc(red, '=');
            if (key_is_secret(u->param_keys[i]))
                svc__buf_puts(red, "***");
            else
                svc__buf_append(red, v.p, v.n);
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return SVC_OK;
}

static svc_status parse_port(span s, uint16_t *port, char *errbuf, size_t errlen)
{
    unsigned long v = 0;
    bool ok = all_digits(s) && s.n <= 5;
    if (ok) {
        for (size_t i = 0; i < s.n; i++)
            v = v * 10 + (unsigned long)(s.p[i] - '0');
        ok = v >= 1 && v <= 65535;
    }
    if (!ok)
        return fail(errbuf, errlen, SVC_EINVAL,
                    "store URL: bad port '%.*s' (expected a number 1-65535)",
                    (int)(s.n > 32 ? 32 : s.n), s.p);
    *port = (uint16_t)v;
    return SVC_OK;
}

static svc_status parse_network(const char *url, span scheme, svc_store_kind kind,
                                svc_store_url *u, char *errbuf, size_t errlen)
{
    const char *kname = svc_store_kind_name(kind);
    const char *rest = scheme.p + scheme.n + 3; /* after "://" */
    size_t alen = strcspn(rest, "/?#");
    span auth = {rest, alen};
    const char *after = rest + alen;
    /* An '@' after the authority ended means the user info held a raw '/',
     * '?' or '#': whatever follows could be a password, so say what to do
     * without quoting any of it. */
    if (!memchr(auth.p, '@', auth.n) && strchr(after, '@'))
        return fail(errbuf, errlen, SVC_EINVAL,
                    "%s URL: the user info contains '/', '?' or '#'; percent-encode them "
                    "(%%2F, %%3F, %%23)", kname);
    if (strchr(after, '#'))
        return fail(errbuf, errlen, SVC_EINVAL, "%s URL: a '#fragment' is not allowed", kname);

    svc__buf red;
    svc__buf_init(&red);
    svc__buf_append(&red, url, (size_t)(rest - url));
    svc_status st = SVC_OK;

    /* userinfo: everything before the last '@' of the authority */
    span hostport = auth;
    const char *at = NULL;
    for (size_t i = 0; i < auth.n; i++)
        if (auth.p[i] == '@')
            at = auth.p + i;
    if (at) {
        span ui = {auth.p, (size_t)(at - auth.p)};
        const char *colon = memchr(ui.p, ':', ui.n);
        span user = {ui.p, colon ? (size_t)(colon - ui.p) : ui.n};
        if (user.n > 0 && (st = decode_part(user, &u->user, "user name", errbuf, errlen)))
            goto out;
        svc__buf_append(&red, user.p, user.n);
        if (colon) {
            span pass = {colon + 1, (size_t)(ui.p + ui.n - colon - 1)};
            if ((st = decode_part(pass, &u->password, "password", errbuf, errlen)))
                goto out;
            svc__buf_puts(&red, ":***");
        }
        svc__buf_putc(&red, '@');
        hostport.p = at + 1;
        hostport.n = (size_t)(auth.p + auth.n - hostport.p);
    }
    svc__buf_append(&red, hostport.p, hostport.n);

    /* host[:port], host may be "[v6]" */
    span host = hostport, port = {NULL, 0};
    if (hostport.n && hostport.p[0] == '[') {
        const char *rb = memchr(hostport.p, ']', hostport.n);
        if (!rb) {
            st = fail(errbuf, errlen, SVC_EINVAL, "%s URL: '[' of an IPv6 host has no ']'", kname);
            goto out;
        }
        host.p = hostport.p + 1;
        host.n = (size_t)(rb - host.p);
        const char *tail = rb + 1;
        size_t tn = (size_t)(hostport.p + hostport.n - tail);
        if (tn > 0) {
            if (tail[0] != ':') {
                st = fail(errbuf, errlen, SVC_EINVAL,
                          "%s URL: unexpected text after the IPv6 host (expected ':port')", kname);
                goto out;
            }
            port.p = tail + 1;
            port.n = tn - 1;
        }
        if (host.n == 0) {
            st = fail(errbuf, errlen, SVC_EINVAL, "%s URL: empty IPv6 host '[]'", kname);
            goto out;
        }
    } else {
        const char *colon = NULL;
        for (size_t i = 0; i < hostport.n; i++)
            if (hostport.p[i] == ':')
                colon = hostport.p + i;
        if (colon) {
            host.n = (size_t)(colon - hostport.p);
            port.p = colon + 1;
            port.n = (size_t)(hostport.p + hostport.n - port.p);
        }
    }
    if (port.p && (st = parse_port(port, &u->port, errbuf, errlen)))
        goto out;
    if (host.n > 0 && (st = decode_part(host, &u->host, "host", errbuf, errlen)))
        goto out;

    /* path and query */
    span path = {NULL, 0}, query = {NULL, 0};
    if (*after == '/') {
        path.p = after + 1;
        path.n = strcspn(path.p, "?");
        after = path.p + path.n;
    }
    if (*after == '?') {
        query.p = after + 1;
        query.n = strlen(query.p);
    }
    if (path.p) {
        svc__buf_putc(&red, '/');
        svc__buf_append(&red, path.p, path.n);
    }

    if (kind == SVC_STORE_REDIS) {
        if (!u->host) {
            st = fail(errbuf, errlen, SVC_EINVAL, "redis URL: missing host (expected redis://host[:port][/db])");
            goto out;
        }
        if (!u->port)
            u->port = REDIS_DEFAULT_PORT;
        if (path.n > 0) {
            long db = 0;
            bool ok = all_digits(path) && path.n <= 7;
            for (size_t i = 0; ok && i < path.n; i++)
                db = db * 10 + (path.p[i] - '0');
            if (!ok || db > REDIS_MAX_DB) {
                st = fail(errbuf, errlen, SVC_EINVAL,
                          "redis URL: bad database '%.*s' (expected a number such as /0)",
                          (int)(path.n > 32 ? 32 : path.n), path.p);
                goto out;
            }
            u->redis_db = (int)db;
        }
        if (query.p) {
            st = fail(errbuf, errlen, SVC_EINVAL, "redis URL: query parameters are not supported");
            goto out;
        }
    } else {
        if (path.n > 0) {
            if (memchr(path.p, '/', path.n)) {
                st = fail(errbuf, errlen, SVC_EINVAL,
                          "postgres URL: bad database name (a '/' must be written %%2F)");
                goto out;
            }
            if ((st = decode_part(path, &u->database, "database name", errbuf, errlen)))
                goto out;
        }
        if (query.p && (st = parse_query(query, u, &red, errbuf, errlen)))
            goto out;
    }

    if (!svc__buf_ok(&red)) {
        st = fail(errbuf, errlen, SVC_ENOMEM, "store URL: out of memory");
        goto out;
    }
    u->redacted = svc__buf_steal(&red, NULL);
out:
    svc__buf_free(&red);
    return st;
}

svc_status svc_store_url_parse(const char *url, svc_store_url *out, char *errbuf, size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!out)
        return fail(errbuf, errlen, SVC_EINVAL, "store URL: no output given");
    memset(out, 0, sizeof *out);
    if (!url || !*url)
        return fail(errbuf, errlen, SVC_EINVAL,
                    "store URL: empty (expected memory:, redis://host or postgres://host/db)");

    svc_status st = SVC_OK;
    size_t slen = strcspn(url, ":");
    span scheme = {url, slen};
    if (url[slen] != ':')
        return fail(errbuf, errlen, SVC_EINVAL,
                    "store URL: no scheme (expected memory:, redis://host or postgres://host/db)");
    for (size_t i = 0; i < slen; i++) {
        unsigned char c = (unsigned char)url[i];
        if (!(isalnum(c) || c == '+' || c == '-' || c == '.'))
            return fail(errbuf, errlen, SVC_EINVAL,
                        "store URL: no scheme (expected memory:, redis://host or postgres://host/db)");
    }
    if (slen == 0)
        return fail(errbuf, errlen, SVC_EINVAL, "store URL: empty scheme before ':'");

    bool has_slashes = strncmp(url + slen, "://", 3) == 0;
    if (span_eq_ci(scheme, "memory")) {
        const char *rest = url + slen + 1;
        if (!(*rest == '\0' || strcmp(rest, "//") == 0))
            return fail(errbuf, errlen, SVC_EINVAL,
                        "memory URL: unexpected text after 'memory:' (expected exactly \"memory:\")");
        out->kind = SVC_STORE_MEMORY;
        out->raw = svc__strdup(url);
        out->redacted = svc__strdup(url);
        if (!out->raw || !out->redacted)
            st = fail(errbuf, errlen, SVC_ENOMEM, "store URL: out of memory");
    } else if (span_eq_ci(scheme, "rediss")) {
        return fail(errbuf, errlen, SVC_ENOTSUP,
                    "rediss:// (Redis over TLS) is not supported by this build; use redis:// "
                    "through a TLS tunnel");
    } else if (span_eq_ci(scheme, "redis") || span_eq_ci(scheme, "postgres") ||
               span_eq_ci(scheme, "postgresql")) {
        svc_store_kind kind = span_eq_ci(scheme, "redis") ? SVC_STORE_REDIS : SVC_STORE_POSTGRES;
        if (!has_slashes)
            return fail(errbuf, errlen, SVC_EINVAL, "%s URL: expected '//' after '%.*s:'",
                        svc_store_kind_name(kind), (int)slen, url);
        out->kind = kind;
        st = parse_network(url, scheme, kind, out, errbuf, errlen);
        if (!st && !(out->raw = svc__strdup(url)))
            st = fail(errbuf, errlen, SVC_ENOMEM, "store URL: out of memory");
    } else {
        return fail(errbuf, errlen, SVC_EINVAL,
                    "store URL: unknown scheme '%.*s' (expected memory:, redis://, postgres:// "
                    "or postgresql://)",
                    (int)(slen > 32 ? 32 : slen), url);
    }
    if (st)
        svc_store_url_clear(out);
    return st;
}
