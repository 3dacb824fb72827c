/*
 * http.c - svc_add_ratelimit(): the rate limiter as svc_app middleware.
 *
 *   request ─► skip path? ─► policy: select_fn, else route table, else default
 *           ─► key: key_fn, else tenant (+ principal), else client address
 *               (X-Forwarded-For / Forwarded only from trusted proxies)
 *           ─► svc_ratelimit_check (a plan when no policy has the name)
 *           ─► denied: 429 problem+json + Retry-After (whole s, rounded up)
 *              allowed: next; then RateLimit-Policy, RateLimit, X-RateLimit-*
 *
 * Header syntax follows draft-ietf-httpapi-ratelimit-headers-10 (structured
 * field lists): RateLimit-Policy: "name";q=100;w=60 and
 * RateLimit: "name";r=42;t=18. Policy names are restricted to
 * [A-Za-z0-9_.:-], so they never need escaping inside the sf-string.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "svcinfra_config.h"
#include "svcinfra/config.h"
#include "svcinfra/crypto.h"
#include "svcinfra/log.h"
#include "svcinfra/ratelimit.h"
#include "svcinfra/redis.h"

#include "../core/opts.h"
#include "../core/parse.h"
#include "../internal.h"
#include "store.h"

static inline void discard(svc_status st) { (void)st; }

/* The middleware's options (section "ratelimit.http"); rl, routes and the
 * callbacks are not configuration (routes have a grammar of their own, read
 * by routes_from_config()). */
static const svc__opt ratelimit_http_spec[] = {
    SVC__OPT(svc_ratelimit_http_opts, policy, STRING, .s = NULL, 0, 0,
             "policy or plan for routes not listed; unset: only listed routes are limited"),
    SVC__OPT(svc_ratelimit_http_opts, shadow, BOOL, .i = 0, 0, 0,
             "dry run: count and log denials, never deny, no headers"),
    SVC__OPT(svc_ratelimit_http_opts, legacy_headers, BOOL, .i = 1, 0, 0,
             "X-RateLimit-Limit/-Remaining/-Reset besides RateLimit"),
    SVC__OPT(svc_ratelimit_http_opts, trusted_proxies, STRINGS, .s = NULL, 0, 0,
             "CIDRs whose X-Forwarded-For / Forwarded is believed; unset: none"),
    SVC__OPT(svc_ratelimit_http_opts, skip_paths, STRINGS, .s = NULL, 0, 0,
             "paths not limited (a trailing * is a prefix); unset: the probes and /metrics"),
};
const svc__opt_table svc__ratelimit_http_opts_table =
    SVC__OPT_TABLE("ratelimit.http", ratelimit_http_spec);

void svc_ratelimit_http_opts_default(svc_ratelimit_http_opts *opts)
{
    if (opts)
        svc__opts_default(&svc__ratelimit_http_opts_table, opts, sizeof *opts);
}

#if SVC_HAVE_HTTP

#include <jansson.h>

#include "svcinfra/http.h"

typedef struct cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int bits;
} cidr;

typedef struct rroute {
    char *method; /* NULL: any */
    char *route;
    char *policy; /* NULL: unlimited */
    uint64_t cost;
} rroute;

/* A RateLimit-Policy value rendered once: it changes only with the policy
 * (name, quota, window), not per request. Immutable once listed (readers
 * need no lock), freed with the middleware. */
#define POLICY_VALUES 32
typedef struct policy_value {
    uint64_t q, w;
    char policy[SVC_RATELIMIT_MAX_NAME + 1];
    char v[SVC_RATELIMIT_MAX_NAME + 64]; /* item() writes at most 111 bytes */
    size_t vlen;
} policy_value;

typedef struct rl_http {
    svc_ratelimit *rl;
    char *policy;
    rroute *routes;
    size_t nroutes;
    svc_ratelimit_select_fn select;
    void *select_ud;
    svc_ratelimit_key_fn key_fn;
    void *key_ud;
    cidr *proxies;
    size_t nproxies;
    int shadow;
    int legacy;
    char **skip;
    size_t nskip;
    atomic_bool warned_unknown;
    pthread_mutex_t pv_mu; /* adds to pv */
    _Atomic size_t npv;    /* pv[0, npv) are complete */
    policy_value *pv[POLICY_VALUES];
} rl_http;

static const char *const default_skip[] = {"/healthz", "/readyz", "/startupz", "/metrics", NULL};

/* ---- addresses ------------------------------------------------------------------ */

/* Parses an address (IPv4, IPv6, IPv4-mapped IPv6 read as IPv4). */
static bool parse_addr(const char *s, int *family, uint8_t out[16])
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, s, &a4) == 1) {
        *family = AF_INET;
        memcpy(out, &a4, 4);
        return true;
    }
    if (inet_pton(AF_INET6, s, &a6) == 1) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a6.s6_addr, mapped, 12) == 0) {
            *family = AF_INET;
            memcpy(out, a6.s6_addr + 12, 4);
        } else {
            *family = AF_INET6;
            memcpy(out, a6.s6_addr, 16);
        }
        return true;
    }
    return false;
}

static bool parse_cidr(const char *s, cidr *out)
{
    char buf[64];
    if (strlen(s) >= sizeof buf)
        return false;
    strcpy(buf, s);
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    if (!parse_addr(buf, &out->family, out->addr))
        return false;
    int max = out->family == AF_INET ? 32 : 128;
    out->bits = max;
    if (slash) {
        char *end;
        long b = strtol(slash + 1, &end, 10);
        if (!slash[1] || *end || b < 0 || b > max)
            return false;
        out->bits = (int)b;
    }
    return true;
}

static bool in_ranges(const rl_http *h, const char *addr)
{
    int fam;
    uint8_t a[16];
    if (!parse_addr(addr, &fam, a))
        return false;
    for (size_t i = 0; i < h->nproxies; i++) {
        const cidr *c = &h->proxies[i];
        if (c->family != fam)
            continue;
        int full = c->bits / 8, rest = c->bits % 8;
        if (memcmp(a, c->addr, (size_t)full) != 0)
            continue;
        if (rest && ((a[full] ^ c->addr[full]) & (uint8_t)(0xff << (8 - rest))))
            continue;
        return true;
    }
    return false;
}

/* Copies one hop of a forwarding header into out: trims spaces and quotes,
 * strips [brackets] and a :port. */
static void clean_hop(const char *s, size_t n, char *out, size_t cap)
{
    while (n && (*s == ' ' || *s == '\t' || *s == '"'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '"'))
        n--;
    if (n && *s == '[') {
        const char *close = memchr(s, ']', n);
        if (close) {
            n = (size_t)(close - s - 1);
            s++;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        if (colon && !memchr(colon + 1, ':', n - (size_t)(colon - s) - 1))
            n = (size_t)(colon - s); /* IPv4:port (one colon only) */
    }
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

/* Most hops examined, from the right. A client writes the left part of a
 * forwarding header at will; only the hops appended by trusted proxies, at
 * the right end, say anything. */
#define MAX_HOPS 32

typedef struct hops {
    char v[MAX_HOPS][64]; /* v[0] is the rightmost hop */
    size_t n;
    bool more; /* there are hops to the left of v[n - 1] */
} hops;

/* Adds the element [s, s + len) of a forwarding header: for X-Forwarded-For
 * the element is the hop, for Forwarded its for= parameter is. */
static void add_hop(hops *h, const char *s, size_t len, bool fwd)
{
    if (fwd) {
        const char *end = s + len, *p = s;
        for (;;) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ';'))
                p++;
            const char *semi = memchr(p, ';', (size_t)(end - p));
            size_t plen = semi ? (size_t)(semi - p) : (size_t)(end - p);
            if (plen > 4 && strncasecmp(p, "for=", 4) == 0) {
                s = p + 4;
                len = plen - 4;
                break;
            }
            if (!semi)
                return; /* an element without for= names no hop */
            p = semi + 1;
        }
    }
    char hop[64];
    clean_hop(s, len, hop, sizeof hop);
    if (!hop[0])
        return;
    if (h->n == MAX_HOPS) {
        h->more = true;
        return;
    }
    memcpy(h->v[h->n++], hop, sizeof hop);
}

/* Collects the rightmost MAX_HOPS hops of header `name`, right to left
 * (later header lines were appended later, so they come first). */
static void hops_of(svc_req *req, const char *name, bool fwd, hops *h)
{
    size_t lines = 0;
    while (svc_req_header_at(req, name, lines))
        lines++;
    for (size_t k = lines; k-- > 0 && !h->more;) {
        const char *v = svc_req_header_at(req, name, k);
        size_t end = strlen(v);
        while (!h->more) {
            size_t start = end;
            while (start && v[start - 1] != ',')
                start--;
            add_hop(h, v + start, end - start, fwd);
            if (!start)
                break;
            end = start - 1;
        }
    }
}

/* The client address: the peer, or, when the peer is a trusted proxy, the
 * rightmost hop of X-Forwarded-For (else of Forwarded) that is not a
 * trusted proxy. Whatever stands left of that hop was written by the
 * client and is never believed. When the hops cannot be read, or more
 * trusted hops follow one another than are examined, the answer is the
 * peer: never an address the client could have chosen. */
static const char *client_addr(const rl_http *h, svc_req *req, char *buf, size_t cap)
{
    const char *peer = svc_req_client_addr(req);
    if (!h->nproxies || !peer || !in_ranges(h, peer))
        return peer;
    hops hp;
    hp.n = 0;
    hp.more = false;
    hops_of(req, "X-Forwarded-For", false, &hp);
    if (!hp.n && !hp.more)
        hops_of(req, "Forwarded", true, &hp);
    for (size_t i = 0; i < hp.n; i++) {
        int fam;
        uint8_t a[16];
        if (!parse_addr(hp.v[i], &fam, a))
            return peer; /* a hop we cannot read: trust nothing beyond it */
        if (!in_ranges(h, hp.v[i])) {
            snprintf(buf, cap, "%s", hp.v[i]);
            return buf;
        }
    }
    if (hp.n && !hp.more) {
        /* every hop is a trusted proxy: the first one is the client */
        snprintf(buf, cap, "%s", hp.v[hp.n - 1]);
        return buf;
    }
    return peer;
}

/* ---- the middleware ---------------------------------------------------------------- */

static bool skipped(const rl_http *h, const char *path)
{
    for (size_t i = 0; i < h->nskip; i++) {
        const char *s = h->skip[i];
        size_t n = strlen(s);
        if (n && s[n - 1] == '*') {
            if (strncmp(path, s, n - 1) == 0)
                return true;
        } else if (strcmp(path, s) == 0) {
            return true;
        }
    }
    return false;
}

/* The policy (or plan) name and cost for `req`; NULL: not limited. */
static const char *choose(rl_http *h, svc_req *req, uint64_t *cost)
{
    *cost = 1;
    if (h->select) {
        const char *name = h->select(req, h->select_ud);
        if (name)
            return name;
    }
    const char *route = svc_req_route(req);
    const char *method = svc_req_method(req);
    if (route) {
        for (size_t i = 0; i < h->nroutes; i++) {
            const rroute *r = &h->routes[i];
            if (strcmp(r->route, route) != 0 || (r->method && strcmp(r->method, method) != 0))
                continue;
            *cost = r->cost;
            return r->policy;
        }
    }
    return h->policy;
}

/* Header values are built by hand (no printf: this runs on every limited
 * request). Names are literals, so they are passed as kept. */
static char *put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* Value bytes [v, end) are rendered without a NUL; the response copies them. */
static void set_header(svc_res *res, const char *name, size_t nlen, const char *v,
                       const char *end)
{
    discard(svc_res_header_set_n(res, name, nlen, v, (size_t)(end - v)));
}

#define SET_HEADER(res, lit, v, end) set_header(res, lit, sizeof lit - 1, v, end)

/* `"name";X=a;Y=b` */
static char *item(char *p, const char *policy, const char *x, uint64_t a, const char *y,
                  uint64_t b)
{
    *p++ = '"';
    p = put_str(p, policy);
    p = put_str(p, x);
    p = put_u64(p, a);
    p = put_str(p, y);
    return put_u64(p, b);
}

/* The pre-rendered RateLimit-Policy value for r's policy and window `w`;
 * NULL when POLICY_VALUES different ones are listed already (the caller
 * renders it then) or memory runs out. */
static const policy_value *policy_header(rl_http *h, const svc_ratelimit_result *r, uint64_t w)
{
    size_t n = atomic_load_explicit(&h->npv, memory_order_acquire);
    for (size_t i = 0;; i++) {
        if (i == n) {
            pthread_mutex_lock(&h->pv_mu);
            size_t now = atomic_load_explicit(&h->npv, memory_order_relaxed);
            if (now == n)
                break; /* nobody added one meanwhile: add it */
            pthread_mutex_unlock(&h->pv_mu);
            n = now;
        }
        const policy_value *p = h->pv[i];
        if (p->q == r->quota && p->w == w && strcmp(p->policy, r->policy) == 0)
            return p;
    }
    policy_value *p = n < POLICY_VALUES ? svc_malloc(sizeof *p) : NULL;
    if (p) {
        p->q = r->quota;
        p->w = w;
        memcpy(p->policy, r->policy, sizeof p->policy);
        p->vlen = (size_t)(item(p->v, r->policy, "\";q=", r->quota, ";w=", w) - p->v);
        h->pv[n] = p;
        atomic_store_explicit(&h->npv, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&h->pv_mu);
    return p;
}

static void put_headers(rl_http *h, svc_res *res, const svc_ratelimit_result *r)
{
    uint64_t w = (uint64_t)(r->period_ms + 999) / 1000;
    uint64_t t = r->reset_ms > 0 ? (uint64_t)(r->reset_ms + 999) / 1000 : 0;
    char v[SVC_RATELIMIT_MAX_NAME + 64];
    const policy_value *pv = policy_header(h, r, w);
    if (pv)
        SET_HEADER(res, "RateLimit-Policy", pv->v, pv->v + pv->vlen);
    else
        SET_HEADER(res, "RateLimit-Policy", v,
                   item(v, r->policy, "\";q=", r->quota, ";w=", w));
    SET_HEADER(res, "RateLimit", v, item(v, r->policy, "\";r=", r->remaining, ";t=", t));
    if (h->legacy) {
        SET_HEADER(res, "X-RateLimit-Limit", v, put_u64(v, r->limit));
        SET_HEADER(res, "X-RateLimit-Remaining", v, put_u64(v, r->remaining));
        SET_HEADER(res, "X-RateLimit-Reset", v, put_u64(v, t));
    }
}

static void deny(svc_res *res, const svc_ratelimit_result *r)
{
    char detail[160];
    json_t *ext = json_object();
    if (ext)
        json_object_set_new(ext, "policy", json_string(r->policy));
    if (r->retry_after_ms >= 0) {
        char ra[32];
        int64_t secs = (r->retry_after_ms + 999) / 1000;
        snprintf(ra, sizeof ra, "%lld", (long long)(secs > 0 ? secs : 1));
        discard(svc_res_header_set(res, "Retry-After", ra));
        snprintf(detail, sizeof detail, "rate limit '%s' exceeded; retry in %s s", r->policy,
                 ra);
    } else {
        snprintf(detail, sizeof detail,
                 "the request costs more than rate limit '%s' ever admits at once", r->policy);
    }
    discard(svc_res_problem_ext(res, 429, SVC_PROBLEM_RATE_LIMIT, detail, ext));
    json_decref(ext);
}

/* The default key of a request with a tenant: "t:<n>:<tenant>" or
 * "t:<n>:<tenant>:<principal>", n being the tenant's length in bytes, so no
 * pair of tenant and principal (either may contain ':') reads as another.
 * One that would pass SVC_RATELIMIT_MAX_KEY becomes "t#" and the SHA-256
 * (hex) of that whole form: still one key per pair, never a truncation
 * that two pairs could share. False when hashing fails. */
static bool tenant_key(char *key, size_t cap, const char *tenant, const char *principal)
{
    char len[24];
    int ln = snprintf(len, sizeof len, "t:%zu:", strlen(tenant));
    size_t tl = strlen(tenant), pl = principal ? strlen(principal) : 0;
    size_t need = (size_t)ln + tl + (principal ? 1 + pl : 0);
    if (need <= SVC_RATELIMIT_MAX_KEY && need < cap) {
        snprintf(key, cap, "%s%s%s%s", len, tenant, principal ? ":" : "",
                 principal ? principal : "");
        return true;
    }
    svc_sha256_ctx c;
    uint8_t d[SVC_SHA256_LEN];
    if (svc_sha256_init(&c) != SVC_OK || svc_sha256_update(&c, len, (size_t)ln) != SVC_OK ||
        svc_sha256_update(&c, tenant, tl) != SVC_OK ||
        (principal && (svc_sha256_update(&c, ":", 1) != SVC_OK ||
                       svc_sha256_update(&c, principal, pl) != SVC_OK)) ||
        svc_sha256_final(&c, d) != SVC_OK)
        return false;
    memcpy(key, "t#", 2);
    svc_hex_encode(d, sizeof d, key + 2, cap - 2);
    return true;
}

static void limit_mw(svc_req *req, svc_res *res, svc_chain *next, void *ud)
{
    rl_http *h = ud;
    uint64_t cost;
    const char *name = skipped(h, svc_req_raw_path(req)) ? NULL : choose(h, req, &cost);
    if (!name) {
        svc_next(next);
        return;
    }
    char key[SVC_RATELIMIT_MAX_KEY + 1];
    int k = h->key_fn ? h->key_fn(req, key, sizeof key, h->key_ud) : 0;
    if (k < 0) {
        svc_next(next);
        return;
    }
    if (k == 0) {
        const char *tenant = svc_req_tenant(req);
        char abuf[64];
        if (tenant) {
            if (!tenant_key(key, sizeof key, tenant, svc_req_principal(req))) {
                svc_logf(SVC_LOG_ERROR, "rate limit: cannot hash an over-long tenant key "
                                        "(request passes unlimited)");
                svc_next(next);
                return;
            }
        } else {
            /* the common case, on every request: no printf */
            const char *addr = client_addr(h, req, abuf, sizeof abuf);
            size_t n = strnlen(addr ? addr : "unknown", sizeof key - 4);
            memcpy(key, "ip:", 3);
            memcpy(key + 3, addr ? addr : "unknown", n);
            key[3 + n] = '\0';
        }
    }
    svc_ratelimit_result r;
    svc_status st = svc__ratelimit_check_named(h->rl, name, key, cost, h->shadow, &r);
    if (st == SVC_ENOTFOUND || st == SVC_EINVAL) {
        /* a configuration mistake must not take the service down */
        if (!atomic_exchange(&h->warned_unknown, true))
            svc_logf(SVC_LOG_ERROR, "rate limit: %s (requests pass unlimited)",
                     svc_ratelimit_errmsg(h->rl));
        svc_next(next);
        return;
    }
    if (st != SVC_OK) { /* the store failed and fail_open is off */
        if (h->shadow) {
            svc_next(next);
            return;
        }
        discard(svc_res_problem(res, 503, SVC_PROBLEM_UNAVAILABLE,
                                            "rate limit store unavailable"));
        return;
    }
    if (!r.allowed && h->shadow) {
        svc_log_field f[] = {
            svc_log_field_str("policy", r.policy),
            svc_log_field_str("key", key),
            svc_log_field_int("retry_after_ms", r.retry_after_ms),
        };
        svc_log_kv(SVC_LOG_INFO, "rate limit would deny (shadow mode)", f, SVC__ARRAY_LEN(f));
        svc_next(next);
        return;
    }
    if (!r.allowed) {
        deny(res, &r);
        put_headers(h, res, &r);
        return;
    }
    svc_next(next);
    if (!h->shadow)
        put_headers(h, res, &r);
}

/* ---- setup ---------------------------------------------------------------------------- */

static void rl_http_free(void *p)
{
    rl_http *h = p;
    if (!h)
        return;
    svc_ratelimit_free(h->rl);
    svc_free(h->policy);
    for (size_t i = 0; i < h->nroutes; i++) {
        svc_free(h->routes[i].method);
        svc_free(h->routes[i].route);
        svc_free(h->routes[i].policy);
    }
    svc_free(h->routes);
    svc_free(h->proxies);
    for (size_t i = 0; i < h->nskip; i++)
        svc_free(h->skip[i]);
    svc_free(h->skip);
    for (size_t i = 0; i < atomic_load(&h->npv); i++)
        svc_free(h->pv[i]);
    pthread_mutex_destroy(&h->pv_mu);
    svc_free(h);
}

static svc_status build(rl_http *h, const svc_ratelimit_http_opts *o)
{
    h->select = o->select;
    h->select_ud = o->select_ud;
    h->key_fn = o->key_fn;
    h->key_ud = o->key_ud;
    h->shadow = o->shadow;
    h->legacy = o->legacy_headers;
    atomic_init(&h->warned_unknown, false);
    if (o->policy && !(h->policy = svc__strdup(o->policy)))
        return SVC_ENOMEM;
    if (o->nroutes) {
        if (!o->routes)
            return svc__fail_new(SVC_EINVAL, "ratelimit: nroutes is %zu but routes is NULL",
                                 o->nroutes);
        h->routes = svc__calloc(o->nroutes, sizeof *h->routes);
        if (!h->routes)
            return SVC_ENOMEM;
        for (size_t i = 0; i < o->nroutes; i++, h->nroutes++) {
            const svc_ratelimit_route *r = &o->routes[i];
            if (!r->route)
                return svc__fail_new(SVC_EINVAL, "ratelimit: route entry %zu has no route", i);
            rroute *d = &h->routes[i];
            bool any = !r->method || strcmp(r->method, "*") == 0;
            d->method = any ? NULL : svc__strdup(r->method);
            d->route = svc__strdup(r->route);
            d->policy = r->policy ? svc__strdup(r->policy) : NULL;
            d->cost = r->cost ? r->cost : 1;
            if ((!any && !d->method) || !d->route || (r->policy && !d->policy)) {
                h->nroutes++;
                return SVC_ENOMEM;
            }
        }
    }
    size_t n = 0;
    if (o->trusted_proxies)
        while (o->trusted_proxies[n])
            n++;
    if (n) {
        h->proxies = svc__calloc(n, sizeof *h->proxies);
        if (!h->proxies)
            return SVC_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            if (!parse_cidr(o->trusted_proxies[i], &h->proxies[i]))
                return svc__fail_new(SVC_EINVAL,
                                     "ratelimit: trusted proxy range '%.80s' is not an "
                                     "address or CIDR",
                                     o->trusted_proxies[i]);
        }
        h->nproxies = n;
    }
    const char *const *skip = o->skip_paths ? o->skip_paths : default_skip;
    n = 0;
    while (skip[n])
        n++;
    h->skip = svc__calloc(n + 1, sizeof *h->skip);
    if (!h->skip)
        return SVC_ENOMEM;
    for (size_t i = 0; i < n; i++, h->nskip++)
        if (!(h->skip[i] = svc__strdup(skip[i])))
            return SVC_ENOMEM;
    return SVC_OK;
}

/* Routes from `key` of `cfg`: "<METHOD> <route> <policy> [<cost>]" each.
 * *out (svc_free) holds the entries; their strings point into *items
 * (svc_config_strings_free(*items, *nitems)). */
static svc_status routes_from_config(const svc_config *cfg, const char *key,
                                     svc_ratelimit_route **out, size_t *n, char ***items,
                                     size_t *nitems)
{
    *out = NULL;
    *n = 0;
    svc_status st = svc_config_get_strings(cfg, key, items, nitems);
    if (st != SVC_OK)
        return svc__fail_new(st, "ratelimit: %s", svc_config_errmsg(cfg));
    if (!*nitems)
        return SVC_OK;
    svc_ratelimit_route *r = svc__calloc(*nitems, sizeof *r);
    if (!r)
        return svc__fail_new(SVC_ENOMEM, "ratelimit: out of memory");
    for (size_t i = 0; i < *nitems; i++) {
        char *w[5];
        size_t nw = 0;
        char *save = NULL;
        /* svc_config_get_strings() gives copies of our own: split in place,
         * keeping the entry's text for the message in a copy */
        char shown[128];
        snprintf(shown, sizeof shown, "%s", (*items)[i]);
        for (char *tok = strtok_r((*items)[i], " \t", &save); tok && nw < 5;
             tok = strtok_r(NULL, " \t", &save))
            w[nw++] = tok;
        int64_t cost = 1;
        bool ok = (nw == 3 || nw == 4) && w[1][0] == '/';
        if (ok && nw == 4)
            ok = isdigit((unsigned char)w[3][0]) && svc__parse_int(w[3], &cost) == SVC_OK &&
                 cost >= 1;
        if (!ok) {
            svc_free(r);
            return svc__fail_new(SVC_ECONFIG,
                                 "ratelimit: config key '%s': entry '%s': expected "
                                 "'<METHOD> </route> <policy> [<cost>]'",
                                 key, shown);
        }
        r[i].method = w[0];
        r[i].route = w[1];
        r[i].policy = strcmp(w[2], "none") == 0 ? NULL : w[2];
        r[i].cost = (uint64_t)cost;
    }
    *out = r;
    *n = *nitems;
    return SVC_OK;
}

static void release_rl(void *p)
{
    svc_ratelimit_free(p);
}

/* The limiter the wiring makes: options of section "ratelimit", metrics in
 * the app's registry, policies/plans/quotas loaded from the configuration. */
static svc_status limiter_from_config(svc_app *app, const svc_config *cfg, svc_ratelimit **out)
{
    svc_ratelimit_opts o;
    svc__opts_hold hold;
    svc_status st =
        svc__opts_resolve(&svc__ratelimit_opts_table, NULL, cfg, &o, sizeof o, &hold);
    if (st != SVC_OK)
        return st;
    if (!o.no_metrics)
        o.metrics = svc_app_metrics(app);
    st = svc_ratelimit_new(out, &o);
    svc__opts_release(&hold);
    if (st != SVC_OK)
        return st;
    if ((st = svc_ratelimit_load_config(*out, cfg)) != SVC_OK) {
        svc__fail_new(st, "ratelimit: %s", svc_ratelimit_errmsg(*out));
        svc_ratelimit_free(*out);
        *out = NULL;
    }
    return st;
}

static svc_status add_ratelimit(svc_app *app, const svc_ratelimit_http_opts *o,
                                svc_ratelimit *rl)
{
    if (svc_app_attached(app, "ratelimit"))
        return svc__fail_new(SVC_EEXIST, "ratelimit: svc_add_ratelimit: already installed");
    rl_http *h = svc__calloc(1, sizeof *h);
    if (!h)
        return svc__fail_new(SVC_ENOMEM, "ratelimit: out of memory");
    pthread_mutex_init(&h->pv_mu, NULL);
    atomic_init(&h->npv, 0);
    h->rl = svc_ratelimit_ref(rl);
    svc_status st = build(h, o);
    if (st != SVC_OK) {
        rl_http_free(h);
        return svc__fail_new(st, "ratelimit: %s", st == SVC_ENOMEM ? "out of memory"
                                                                     : svc_strerror(st));
    }
    /* the app owns h from here, whatever fails below */
    if ((st = svc_app_on_free(app, rl_http_free, h)) != SVC_OK) {
        rl_http_free(h);
        return svc__fail_new(st, "ratelimit: cannot register the cleanup: %s", svc_strerror(st));
    }
    if ((st = svc_app_use_stage(app, SVC_STAGE_LIMIT, "ratelimit", limit_mw, h)) != SVC_OK)
        return svc__fail_new(st, "ratelimit: cannot install the middleware: %s%s",
                             svc_strerror(st), st == SVC_EBUSY ? " (the app is started)" : "");
    if ((st = svc_app_attach(app, "ratelimit", svc_ratelimit_ref(rl), release_rl)) != SVC_OK) {
        svc_ratelimit_free(rl);
        return svc__fail_new(st, "ratelimit: cannot attach the limiter: %s", svc_strerror(st));
    }
    /* a Redis store is a backend /readyz reports; it fails readiness only
     * when a failing store denies (fail_open = 0) */
    struct svc_redis *pool = svc__ratelimit_redis(rl);
    if (pool && (st = svc_app_add_check(app, "ratelimit", svc_redis_check, pool, 1000,
                                        !svc__ratelimit_fail_open(rl))) != SVC_OK)
        return svc__fail_new(st, "ratelimit: cannot add the readiness check: %s",
                             svc_strerror(st));
    return SVC_OK;
}

svc_status svc_add_ratelimit(struct svc_app *app, const svc_ratelimit_http_opts *opts)
{
    if (!app)
        return svc__fail_new(SVC_EINVAL, "ratelimit: svc_add_ratelimit: app is NULL");
    const svc_config *cfg = svc_app_config(app);
    svc_ratelimit_http_opts o;
    svc__opts_hold hold;
    svc_status st = svc__opts_resolve(&svc__ratelimit_http_opts_table, opts, cfg, &o, sizeof o,
                                      &hold);
    if (st != SVC_OK)
        return st;
    svc_ratelimit_route *routes = NULL;
    char **items = NULL;
    size_t nitems = 0;
    if (!opts)
        st = routes_from_config(cfg, "ratelimit.http.routes", &routes, &o.nroutes, &items,
                                &nitems);
    if (routes)
        o.routes = routes;
    svc_ratelimit *made = NULL;
    if (st == SVC_OK && !o.rl)
        st = limiter_from_config(app, cfg, &made);
    if (st == SVC_OK)
        st = add_ratelimit(app, &o, o.rl ? o.rl : made);
    svc_ratelimit_free(made); /* the app holds its own references */
    svc_free(routes);
    svc_config_strings_free(items, nitems);
    svc__opts_release(&hold);
    if (st == SVC_OK)
        svc__fail_new_clear();
    return st;
}

svc_ratelimit *svc_app_ratelimit(const struct svc_app *app)
{
    return app ? svc_app_attached(app, "ratelimit") : NULL;
}

#else /* !SVC_HAVE_HTTP */

svc_status svc_add_ratelimit(struct svc_app *app, const svc_ratelimit_http_opts *opts)
{
    SVC__UNUSED(app);
    SVC__UNUSED(opts);
    return svc__fail_new(SVC_ENOTSUP, "ratelimit: this libsvcinfra was built without HTTP");
}

svc_ratelimit *svc_app_ratelimit(const struct svc_app *app)
{
    SVC__UNUSED(app);
    return NULL;
}

#endif
