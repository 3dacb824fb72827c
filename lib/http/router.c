/*
 * lib/http/router.c - route templates and matching.
 *
 * A template is compiled once into segments:
 *
 *   "/cars/{id}/photos/{rest...}"  →  [LIT "cars"] [PARAM id] [LIT "photos"] [REST rest]
 *
 * A request path is split on '/' (raw, so an encoded %2F stays inside its
 * segment) and each segment is percent-decoded once. Every route is tried
 * (services have tens of routes; a linear scan over precompiled segments
 * beats building a tree for that size). Among the routes that match, the
 * most specific wins: compared segment by segment, a literal beats a
 * parameter, a parameter beats a rest, and an exact end beats a rest.
 */
#include <string.h>

#include "http/http_internal.h"

static bool name_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

static bool method_ok(const char *m)
{
    if (strcmp(m, "*") == 0)
        return true;
    size_t n = strlen(m);
    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(m[i] >= 'A' && m[i] <= 'Z'))
            return false;
    return true;
}

void svc__route_clear(svc__route *route)
{
    for (size_t i = 0; i < route->nsegs; i++)
        svc_free(route->segs[i].text);
    svc_free(route->segs);
    svc_free(route->method);
    svc_free(route->pattern);
    memset(route, 0, sizeof *route);
}

svc_status svc__route_compile(svc__route *route, const char *method, const char *pattern)
{
    memset(route, 0, sizeof *route);
    if (!method_ok(method) || pattern[0] != '/' || strlen(pattern) > 2048 ||
        strpbrk(pattern, "?# \t\r\n") != NULL)
        return SVC_EINVAL;
    size_t nsegs = 0;
    if (pattern[1] != '\0')
        for (const char *p = pattern; *p; p++)
            nsegs += *p == '/';
    if (nsegs > SVC__HTTP_MAX_SEGS)
        return SVC_EINVAL;
    route->method = svc__strdup(method);
    route->pattern = svc__strdup(pattern);
    route->segs = nsegs ? svc__calloc(nsegs, sizeof *route->segs) : NULL;
    if (!route->method || !route->pattern || (nsegs && !route->segs)) {
        svc__route_clear(route);
        return SVC_ENOMEM;
    }
    size_t nparams = 0;
    const char *p = pattern + 1;
    for (size_t i = 0; i < nsegs; i++) {
        size_t len = strcspn(p, "/");
        svc__seg *s = &route->segs[i];
        if (len >= 2 && p[0] == '{' && p[len - 1] == '}') {
            const char *name = p + 1;
            size_t nlen = len - 2;
            s->kind = SVC__SEG_PARAM;
            if (nlen > 3 && memcmp(name + nlen - 3, "...", 3) == 0) {
                s->kind = SVC__SEG_REST;
                nlen -= 3;
                if (i != nsegs - 1)
                    goto bad;
            }
            if (!name_ok(name, nlen))
                goto bad;
            for (size_t j = 0; j < i; j++)
                if (route->segs[j].kind != SVC__SEG_LIT && route->segs[j].len == nlen &&
                    memcmp(route->segs[j].text, name, nlen) == 0)
                    goto bad; /* the same name twice */
            if (++nparams > SVC__HTTP_MAX_PARAMS)
                goto bad;
            s->text = svc__strndup(name, nlen);
            s->len = nlen;
        } else {
            if (memchr(p, '{', len) || memchr(p, '}', len))
                goto bad;
            s->kind = SVC__SEG_LIT;
            s->text = svc__strndup(p, len);
            s->len = len;
        }
        route->nsegs = i + 1;
        if (s->text == NULL) {
            svc__route_clear(route);
            return SVC_ENOMEM;
        }
        p += len + (p[len] == '/');
    }
    return SVC_OK;
bad:
    svc__route_clear(route);
    return SVC_EINVAL;
}

typedef struct seg_view {
    const char *raw; /* start in the raw path */
    const char *dec; /* decoded, NUL-terminated */
    size_t dlen;
} seg_view;

/* Does `r` match the path? Fills nothing; matching is cheap enough to run
 * twice (once to choose, once more for the winner's parameters). */
static bool route_matches(const svc__route *r, const seg_view *segs, size_t n)
{
    size_t i;
    for (i = 0; i < r->nsegs; i++) {
        const svc__seg *s = &r->segs[i];
        if (s->kind == SVC__SEG_REST)
            return true;
        if (i >= n)
            return false;
        if (s->kind == SVC__SEG_LIT) {
            if (s->len != segs[i].dlen || memcmp(s->text, segs[i].dec, s->len) != 0)
                return false;
        } else if (segs[i].dlen == 0) {
            return false;
        }
    }
    return i == n;
}

/* <0 when a is more specific than b. */
static int specificity_cmp(const svc__route *a, const svc__route *b)
{
    size_t n = a->nsegs > b->nsegs ? a->nsegs : b->nsegs;
    for (size_t i = 0; i < n; i++) {
        /* a missing segment (exact end) ranks before a rest */
        int ka = i < a->nsegs ? (int)a->segs[i].kind : -1;
        int kb = i < b->nsegs ? (int)b->segs[i].kind : -1;
        if (ka != kb)
            return ka < kb ? -1 : 1;
    }
    return 0;
}

static int method_rank(const svc__route *r, const char *method)
{
    if (strcmp(r->method, method) == 0)
        return 3;
    if (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0)
        return 2;
    if (strcmp(r->method, "*") == 0)
        return 1;
    return 0;
}

static void allow_add(char *allow, size_t allow_len, const char *m)
{
    size_t ml = strlen(m);
    /* already listed? */
    for (const char *p = allow; *p;) {
        size_t l = strcspn(p, ",");
        if (l == ml && memcmp(p, m, ml) == 0)
            return;
        p += l;
        while (*p == ',' || *p == ' ')
            p++;
    }
    size_t cur = strlen(allow);
    if (cur + ml + 3 > allow_len)
        return;
    if (cur)
        memcpy(allow + cur, ", ", 2), cur += 2;
    memcpy(allow + cur, m, ml + 1);
}

svc__match svc__router_match(svc_app *app, svc_req *req, char *allow, size_t allow_len)
{
    seg_view segs[SVC__HTTP_MAX_SEGS];
    size_t n = 0;
    const char *raw = req->raw_path && req->raw_path[0] ? req->raw_path : "/";
    if (allow_len)
        allow[0] = '\0';
    if (raw[0] != '/')
        return SVC__MATCH_NOT_FOUND;
    if (raw[1] != '\0') {
        const char *p = raw + 1;
        for (;;) {
            if (n == SVC__HTTP_MAX_SEGS)
                return SVC__MATCH_NOT_FOUND;
            size_t len = strcspn(p, "/");
            segs[n].raw = p;
            if (memchr(p, '%', len)) {
                char *d = svc__ex_alloc(req->ex, len + 1);
                if (d == NULL)
                    return SVC__MATCH_NOT_FOUND;
                size_t dl = svc__pct_decode(p, len, d, false);
                if (dl == (size_t)-1)
                    return SVC__MATCH_NOT_FOUND;
                segs[n].dec = d;
                segs[n].dlen = dl;
            } else {
                segs[n].dec = p; /* not NUL-terminated at len: compared by length */
                segs[n].dlen = len;
            }
            n++;
            if (p[len] == '\0')
                break;
            p += len + 1;
        }
    }

    const svc__route *best = NULL;
    int best_rank = 0;
    bool path_known = false;
    for (size_t i = 0; i < app->nroutes; i++) {
        const svc__route *r = &app->routes[i];
        if (!route_matches(r, segs, n))
            continue;
        path_known = true;
        int rank = method_rank(r, req->method);
        if (rank == 0)
            continue;
        if (best == NULL) {
            best = r, best_rank = rank;
            continue;
        }
        int c = specificity_cmp(r, best);
        if (c < 0 || (c == 0 && rank > best_rank))
            best = r, best_rank = rank;
    }
    if (best == NULL) {
        if (!path_known)
            return SVC__MATCH_NOT_FOUND;
        for (size_t i = 0; i < app->nroutes; i++) {
            const svc__route *r = &app->routes[i];
            if (!route_matches(r, segs, n))
                continue;
            allow_add(allow, allow_len, r->method);
            if (strcmp(r->method, "GET") == 0)
                allow_add(allow, allow_len, "HEAD");
        }
        return SVC__MATCH_METHOD;
    }

    /* parameters of the winner */
    size_t np = 0;
    for (size_t i = 0; i < best->nsegs; i++)
        np += best->segs[i].kind != SVC__SEG_LIT;
    if (np) {
        req->params = svc__ex_alloc(req->ex, np * sizeof *req->params);
        if (req->params == NULL)
            return SVC__MATCH_NOT_FOUND;
        for (size_t i = 0; i < best->nsegs; i++) {
            const svc__seg *s = &best->segs[i];
            const char *v;
            if (s->kind == SVC__SEG_LIT)
                continue;
            if (s->kind == SVC__SEG_REST) {
                if (i >= n) {
                    v = "";
                } else {
                    size_t rl = strlen(segs[i].raw);
                    char *d = svc__ex_alloc(req->ex, rl + 1);
                    if (d == NULL || svc__pct_decode(segs[i].raw, rl, d, false) == (size_t)-1)
                        return SVC__MATCH_NOT_FOUND;
                    v = d;
                }
            } else {
                v = svc__ex_strndup(req->ex, segs[i].dec, segs[i].dlen);
                if (v == NULL)
                    return SVC__MATCH_NOT_FOUND;
            }
            req->params[req->nparams].name = s->text;
            req->params[req->nparams].value = v;
            req->nparams++;
        }
    }
    req->route = best;
    return SVC__MATCH_FOUND;
}
