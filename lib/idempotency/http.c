/*
 * http.c - svc_add_idempotency(): idempotency keys as svc_app middleware
 * (stage IDEMPOTENCY, after tenancy and rate limits, before the app's own
 * middleware and the handler).
 *
 *   covered method? ─no─► next
 *   Idempotency-Key ─absent─► required here? 400 : next
 *        │ parse (sf-string or bare token, min..255) ─bad─► 400
 *        ▼
 *   claim(tenant, principal, method, route, key; fingerprint)
 *        ├─ MISMATCH    ─► 422 problem
 *        ├─ IN_PROGRESS ─► 409 problem + Retry-After
 *        ├─ COMPLETED   ─► stored status, headers, body + Idempotent-Replayed: true
 *        ├─ error       ─► 503 problem
 *        └─ CLAIMED     ─► next; then complete with the final response
 *                          (release instead: 5xx with release_on_5xx, a response
 *                          over max_response_bytes or with more than 64 headers,
 *                          a store full or failing, a transactional handler)
 *
 * A handler that returns past the app's handler deadline has done its work,
 * but the client gets a 503 TIMEOUT in place of its answer. The handler's
 * own answer is what a retry must see, so it is stored from the late-answer
 * hook (svc_req_on_late_answer()), before the 503 replaces it; the 503 is
 * never stored and never releases the key. svc_add_idempotency() refuses a
 * lease not longer than the handler deadline, so a retry cannot take over
 * the claim of a handler still inside its deadline.
 *
 * Middleware of earlier stages adds its headers (request id, traceparent,
 * security headers, RateLimit) after this one returns, so what is stored is
 * the handler's answer; the per-request headers listed in `not_stored` are
 * dropped as well, in case a handler set one.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "svcinfra_config.h"
#include "svcinfra/crypto.h"
#include "svcinfra/idempotency.h"
#include "svcinfra/log.h"

#include "../internal.h"
#include "../core/opts.h"

/* The configuration part of svc_idem_http_opts; it shares the section
 * "idempotency" with the engine's table (svc_idem_opts). */
static const svc__opt idem_http_spec[] = {
    SVC__OPT(svc_idem_http_opts, methods, STRINGS, .s = NULL, 0, 0,
             "covered methods (POST, PATCH, PUT, DELETE); empty: POST and PATCH"),
    SVC__OPT(svc_idem_http_opts, required_routes, STRINGS, .s = NULL, 0, 0,
             "\"METHOD /template\" or \"/template\" entries where a key is required"),
    SVC__OPT(svc_idem_http_opts, require_all, BOOL, .i = 0, 0, 1,
             "every covered request needs a key"),
    SVC__OPT(svc_idem_http_opts, min_key_len, UINT, .i = 8, 1, SVC_IDEM_MAX_KEY,
             "shortest Idempotency-Key accepted"),
    SVC__OPT(svc_idem_http_opts, release_on_5xx, BOOL, .i = 0, 0, 1,
             "a 5xx answer releases the key instead of being stored"),
};
const svc__opt_table svc__idem_http_opts_table =
    SVC__OPT_TABLE("idempotency", idem_http_spec);

void svc_idem_http_opts_default(svc_idem_http_opts *opts)
{
    svc__opts_default(&svc__idem_http_opts_table, opts, sizeof *opts);
}

#if SVC_HAVE_HTTP

#include <jansson.h>

#include "svcinfra/http.h"
#include "svcinfra/pg.h"
#include "svcinfra/redis.h"
#include "store.h"

static inline void discard(svc_status st) { (void)st; }

#define MAX_METHODS 8
#define SLOT "svc.idempotency"

typedef struct req_route {
    char *method; /* NULL: any covered method */
    char *route;
} req_route;

typedef struct idem_http {
    svc_idem *idem; /* a reference of its own */
    char methods[MAX_METHODS][8];
    size_t nmethods;
    req_route *required;
    size_t nrequired;
    int require_all;
    size_t min_len;
    int release_5xx;
    svc_idem_fingerprint_fn fp_fn;
    void *fp_ud;
} idem_http;

/* The claim a request holds, for svc_idem_req_complete_tx(). */
typedef struct idem_ctx {
    idem_http *h;
    char scope_key[65]; /* svc_idem_scope_key() of the request: hashed once, used by every step */
    char key[SVC_IDEM_MAX_KEY + 1];
    char token[SVC_IDEM_TOKEN_LEN + 1];
    bool tx_used;
    bool finished; /* finish() ran (from the late-answer hook, or after the chain) */
} idem_ctx;

/* Hop-by-hop and per-request headers: never stored, never replayed. */
static const char *const not_stored[] = {
    "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "TE", "Trailer",
    "Upgrade", "Content-Length", "Date", "X-Request-Id", "traceparent", "traceresponse",
    "tracestate", "Idempotent-Replayed",
};

static bool is_not_stored(const char *name)
{
    for (size_t i = 0; i < SVC__ARRAY_LEN(not_stored); i++)
        if (strcasecmp(name, not_stored[i]) == 0)
            return true;
    return false;
}

static void problem(svc_res *res, int status, svc_problem_code code, const char *detail)
{
    if (svc_res_problem(res, status, code, detail) != SVC_OK)
        svc_res_status(res, status);
}

/* 503 UNAVAILABLE with Retry-After: 1, for failures a retry may not meet. */
static void unavailable(svc_res *res, const char *detail)
{
    problem(res, 503, SVC_PROBLEM_UNAVAILABLE, detail);
    discard(svc_res_header_set(res, "Retry-After", "1"));
}

/* Reads the header value: an sf-string ("...", with \" and \\ escapes) or
 * a bare token of visible ASCII. Returns false for anything else. */
static bool parse_key(const char *v, char out[SVC_IDEM_MAX_KEY + 1], size_t *len)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    size_t o = 0;
    if (n && v[0] == '"') {
        if (n < 2 || v[n - 1] != '"')
            return false;
        for (size_t i = 1; i < n - 1; i++) {
            char c = v[i];
            if (c == '\\') {
                if (i + 1 >= n - 1 || (v[i + 1] != '"' && v[i + 1] != '\\'))
                    return false;
                c = v[++i];
            } else if (c == '"' || (unsigned char)c < 0x20 || (unsigned char)c > 0x7e) {
                return false;
            }
            if (o >= SVC_IDEM_MAX_KEY)
                return false;
            out[o++] = c;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)v[i];
            if (c <= 0x20 || c > 0x7e || c == '"' || c == ',' || c == ';' || c == '\\')
                return false;
            if (o >= SVC_IDEM_MAX_KEY)
                return false;
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    *len = o;
    return true;
}

static bool covered(const idem_http *h, const char *method)
{
    for (size_t i = 0; i < h->nmethods; i++)
        if (strcmp(h->methods[i], method) == 0)
            return true;
    return false;
}

static bool required(const idem_http *h, const char *method, const char *route)
{
    if (h->require_all)
        return true;
    for (size_t i = 0; i < h->nrequired; i++)
        if (strcmp(h->required[i].route, route) == 0 &&
            (!h->required[i].method || strcmp(h->required[i].method, method) == 0))
            return true;
    return false;
}

/* The fingerprint takes the request target as it came on the wire (raw
 * path '?' raw query): in the raw form a '?' can only start the query, so
 * /a%3Fb and /a?b stay different, as they are different requests. */
static svc_status default_fingerprint(svc_req *req, char out[65])
{
    const char *path = svc_req_raw_path(req), *q = svc_req_query(req);
    char stack[512];
    char *pq = stack;
    size_t need = strlen(path) + strlen(q) + 2;
    if (need > sizeof stack && !(pq = svc_malloc(need)))
        return SVC_ENOMEM;
    size_t pl = strlen(path), ql = strlen(q);
    memcpy(pq, path, pl);
    if (ql) {
        pq[pl++] = '?';
        memcpy(pq + pl, q, ql);
        pl += ql;
    }
    pq[pl] = '\0';
    size_t blen = 0;
    const char *body = svc_req_body(req, &blen);
    svc_status st = svc_idem_fingerprint(svc_req_method(req), pq,
                                         svc_req_header(req, "Content-Type"), body, blen, out);
    if (pq != stack)
        svc_free(pq);
    return st;
}

/* SVC_EINVAL when the application's callback refused the request (its
 * fault: 400); any other failure (memory, hashing) is the server's (503). */
static svc_status fingerprint(idem_http *h, svc_req *req, char out[65])
{
    if (!h->fp_fn)
        return default_fingerprint(req, out);
    svc_sha256_ctx c;
    uint8_t d[32];
    svc_status st = svc_sha256_init(&c);
    if (st == SVC_OK && h->fp_fn(req, &c, h->fp_ud) != SVC_OK)
        return SVC_EINVAL;
    if (st == SVC_OK)
        st = svc_sha256_final(&c, d);
    if (st == SVC_OK)
        svc_hex_encode(d, sizeof d, out, 65);
    return st;
}

static int effective_status(const svc_res *res)
{
    int s = svc_res_get_status(res);
    if (s)
        return s;
    size_t n = 0;
    (void)svc_res_get_body(res, &n);
    return n ? 200 : 204;
}

/* The response as it stands, without the headers that are never stored.
 * names/values point into `res` and live while it does. Returns false when
 * the response has more headers than a record holds: it is then not stored
 * at all (never a replay missing some of its headers). */
#define MAX_STORED_HEADERS 64
static bool capture(const svc_res *res, svc_idem_response *out, const char **names,
                    const char **values)
{
    memset(out, 0, sizeof *out);
    out->status = effective_status(res);
    size_t n = svc_res_header_count(res);
    for (size_t i = 0; i < n; i++) {
        const char *name, *value;
        if (!svc_res_header_nth(res, i, &name, &value) || !name || is_not_stored(name))
            continue;
        if (out->nheaders == MAX_STORED_HEADERS)
            return false;
        names[out->nheaders] = name;
        values[out->nheaders] = value;
        out->nheaders++;
    }
    out->header_names = names;
    out->header_values = values;
    out->body = svc_res_get_body(res, &out->body_len);
    return true;
}

static void replay(svc_res *res, const svc_idem_result *r)
{
    svc_res_status(res, r->status);
    for (size_t i = 0; i < r->nheaders; i++) {
        bool again = false;
        for (size_t j = 0; j < i && !again; j++)
            again = strcasecmp(r->header_names[j], r->header_names[i]) == 0;
        discard(again ? svc_res_header_add(res, r->header_names[i], r->header_values[i])
                      : svc_res_header_set(res, r->header_names[i], r->header_values[i]));
    }
    discard(svc_res_body(res, r->body, r->body_len));
    discard(svc_res_header_set(res, "Idempotent-Replayed", "true"));
}

static void in_progress(svc_res *res, int64_t retry_ms)
{
    char ra[24];
    int64_t s = (retry_ms + 999) / 1000;
    snprintf(ra, sizeof ra, "%lld", (long long)(s > 0 ? s : 1));
    problem(res, 409, SVC_PROBLEM_CONFLICT,
            "a request with this Idempotency-Key is still being processed; retry later");
    discard(svc_res_header_set(res, "Retry-After", ra));
}

static void release_quietly(idem_ctx *c)
{
    svc_status st = svc__idem_release_key(c->h->idem, c->scope_key, c->token);
    if (st != SVC_OK && st != SVC_ECONFLICT && st != SVC_ENOTFOUND)
        svc_logf(SVC_LOG_WARN, "idempotency: cannot release a key: %s",
                 svc_idem_errmsg(c->h->idem));
}

static void finish(idem_ctx *c, const svc_res *res)
{
    if (c->finished)
        return; /* stored from the late-answer hook: `res` is now the 503 TIMEOUT */
    c->finished = true;
    if (c->tx_used) {
        /* committed: the record is COMPLETED and this is a no-op;
         * rolled back: the claim is still ours and goes */
        release_quietly(c);
        return;
    }
    const char *names[MAX_STORED_HEADERS], *values[MAX_STORED_HEADERS];
    svc_idem_response r;
    if (!capture(res, &r, names, values)) {
        svc_logf(SVC_LOG_WARN, "idempotency: response has more than %d headers; not stored, "
                 "key released", MAX_STORED_HEADERS);
        release_quietly(c);
        return;
    }
    if (r.status >= 500 && c->h->release_5xx) {
        release_quietly(c);
        return;
    }
    svc_status st = svc__idem_complete_key(c->h->idem, NULL, c->scope_key, c->token, &r);
    if (st == SVC_OK)
        return;
    if (st == SVC_ETOOBIG)
        svc_logf(SVC_LOG_WARN, "idempotency: response not stored, key released: %s",
                 svc_idem_errmsg(c->h->idem));
    else
        svc_logf(SVC_LOG_ERROR, "idempotency: cannot store the response (%s): %s",
                 svc_strerror(st), svc_idem_errmsg(c->h->idem));
    if (st != SVC_ECONFLICT && st != SVC_ENOTFOUND)
        release_quietly(c);
}

/* The handler returned past its deadline: store its own answer now. */
static void late_answer(svc_req *req, const svc_res *res, void *ud)
{
    (void)req;
    finish(ud, res);
}

static void idem_mw(svc_req *req, svc_res *res, svc_chain *next, void *ud)
{
    idem_http *h = ud;
    const char *method = svc_req_method(req);
    const char *route = svc_req_route(req);
    if (!route || !covered(h, method)) {
        svc_next(next);
        return;
    }
    const char *raw = svc_req_header(req, "Idempotency-Key");
    if (!raw) {
        if (required(h, method, route))
            problem(res, 400, SVC_PROBLEM_VALIDATION,
                    "this operation requires an Idempotency-Key header");
        else
            svc_next(next);
        return;
    }
    idem_ctx *c = svc__calloc(1, sizeof *c);
    if (!c) {
        unavailable(res, "out of memory");
        return;
    }
    size_t klen = 0;
    if (!parse_key(raw, c->key, &klen) || klen < h->min_len) {
        char detail[160];
        snprintf(detail, sizeof detail,
                 "Idempotency-Key must be a string or token of %zu to %d characters",
                 h->min_len, SVC_IDEM_MAX_KEY);
        problem(res, 400, SVC_PROBLEM_VALIDATION, detail);
        svc_free(c);
        return;
    }
    char fp[65];
    svc_status st = fingerprint(h, req, fp);
    if (st != SVC_OK) {
        if (st == SVC_EINVAL)
            problem(res, 400, SVC_PROBLEM_VALIDATION, "the request cannot be fingerprinted");
        else
            unavailable(res, "the request cannot be fingerprinted now");
        svc_free(c);
        return;
    }
    c->h = h;
    svc_idem_scope scope = {.tenant = svc_req_tenant(req), .principal = svc_req_principal(req),
                            .method = method, .route = route, .key = c->key};
    svc_idem_result r;
    st = svc_idem_scope_key(&scope, c->scope_key); /* the key was checked: 1..255 bytes */
    if (st == SVC_OK)
        st = svc__idem_claim_key(h->idem, c->scope_key, fp, &r);
    if (st != SVC_OK) {
        svc_logf(SVC_LOG_ERROR, "idempotency store: %s", svc_idem_errmsg(h->idem));
        unavailable(res, "idempotency store unavailable");
        svc_free(c);
        return;
    }
    switch (r.outcome) {
    case SVC_IDEM_MISMATCH:
        problem(res, 422, SVC_PROBLEM_UNPROCESSABLE,
                "this Idempotency-Key was used with a different request");
        break;
    case SVC_IDEM_IN_PROGRESS:
        in_progress(res, r.retry_after_ms);
        break;
    case SVC_IDEM_COMPLETED:
        replay(res, &r);
        break;
    case SVC_IDEM_CLAIMED:
        memcpy(c->token, r.token, sizeof c->token);
        if (svc_req_set(req, SLOT, c, svc_free) != SVC_OK) {
            release_quietly(c);
            svc_free(c);
            svc_idem_result_clear(&r);
            unavailable(res, "out of memory");
            return;
        }
        svc_idem_result_clear(&r);
        svc_req_on_late_answer(req, late_answer, c);
        svc_next(next);
        finish(c, res);
        return; /* c is freed with the request */
    }
    svc_idem_result_clear(&r);
    svc_free(c);
}

svc_status svc_idem_req_complete_tx(struct svc_req *req, struct svc_pg_tx *tx,
                                    struct svc_res *res)
{
    idem_ctx *c = svc_req_get(req, SLOT);
    if (!c)
        return SVC_ENOTFOUND;
    const char *names[MAX_STORED_HEADERS], *values[MAX_STORED_HEADERS];
    svc_idem_response r;
    if (!capture(res, &r, names, values))
        return svc__err_set(svc__idem_err(c->h->idem), SVC_ETOOBIG,
                            "idempotency: the response has more than %d headers; it cannot be "
                            "stored (the transaction may commit without it)", MAX_STORED_HEADERS);
    c->tx_used = true;
    return svc__idem_complete_key(c->h->idem, tx, c->scope_key, c->token, &r);
}

/* ---- setup ------------------------------------------------------------------------- */

static void idem_http_free(void *p)
{
    idem_http *h = p;
    if (!h)
        return;
    for (size_t i = 0; i < h->nrequired; i++) {
        svc_free(h->required[i].method);
        svc_free(h->required[i].route);
    }
    svc_free(h->required);
    svc_idem_free(h->idem);
    svc_free(h);
}

static bool method_ok(const char *m)
{
    static const char *const known[] = {"POST", "PATCH", "PUT", "DELETE"};
    for (size_t i = 0; i < SVC__ARRAY_LEN(known); i++)
        if (strcmp(m, known[i]) == 0)
            return true;
    return false;
}

static svc_status build(idem_http *h, const svc_idem_http_opts *o)
{
    static const char *const dflt[] = {"POST", "PATCH", NULL};
    const char *const *m = o->methods && o->methods[0] ? o->methods : dflt;
    for (; *m; m++) {
        if (!method_ok(*m) || h->nmethods >= MAX_METHODS)
            return svc__fail_new(SVC_EINVAL, "idempotency: method '%.16s' not covered "
                                             "(POST, PATCH, PUT, DELETE)", *m);
        snprintf(h->methods[h->nmethods++], sizeof h->methods[0], "%s", *m);
    }
    if (o->min_key_len < 1 || o->min_key_len > SVC_IDEM_MAX_KEY)
        return svc__fail_new(SVC_EINVAL, "idempotency: min_key_len %zu is not 1..%d",
                             o->min_key_len, SVC_IDEM_MAX_KEY);
    h->min_len = o->min_key_len;
    h->require_all = o->require_all;
    h->release_5xx = o->release_on_5xx;
    h->fp_fn = o->fingerprint;
    h->fp_ud = o->fingerprint_ud;
    size_t n = 0;
    while (o->required_routes && o->required_routes[n])
        n++;
    if (n && !(h->required = svc__calloc(n, sizeof *h->required)))
        return svc__fail_new(SVC_ENOMEM, "idempotency: out of memory");
    for (size_t i = 0; i < n; i++, h->nrequired++) {
        const char *e = o->required_routes[i];
        const char *sp = strchr(e, ' ');
        const char *route = sp ? sp + 1 : e;
        char meth[8] = "";
        if (sp && (size_t)(sp - e) < sizeof meth)
            memcpy(meth, e, (size_t)(sp - e));
        if (route[0] != '/' || (sp && !method_ok(meth)))
            return svc__fail_new(SVC_EINVAL, "idempotency: required route '%.80s' is not "
                                             "\"METHOD /template\" or \"/template\"", e);
        req_route *d = &h->required[i];
        if (!(d->route = svc__strdup(route)) || (sp && !(d->method = svc__strdup(meth)))) {
            h->nrequired++;
            return svc__fail_new(SVC_ENOMEM, "idempotency: out of memory");
        }
    }
    return SVC_OK;
}

static void release_idem(void *p) { svc_idem_free(p); }

/* /readyz: the store's pool answers (memory stores have no check). */
static svc_status store_check(void *ud, char *detail, size_t len, int64_t timeout_ms)
{
    const idem_http *h = ud;
    svc_pg *pg = svc__idem_pg(h->idem);
    svc_redis *r = svc__idem_redis(h->idem);
    return pg ? svc_pg_check(pg, detail, len, timeout_ms)
              : svc_redis_check(r, detail, len, timeout_ms);
}

#define ATTACH_KEY "idempotency"

/* Builds and installs the middleware for resolved options `o`. */
static svc_status add_idempotency(svc_app *app, const svc_idem_http_opts *o)
{
    if (svc_app_attached(app, ATTACH_KEY))
        return svc__fail_new(SVC_EEXIST, "idempotency: the app already has it");
    idem_http *h = svc__calloc(1, sizeof *h);
    if (!h)
        return svc__fail_new(SVC_ENOMEM, "idempotency: out of memory");
    svc_status st = build(h, o);
    if (st) {
        idem_http_free(h);
        return st;
    }
    svc_idem *idem = o->idem ? svc_idem_ref(o->idem) : NULL;
    if (!idem &&
        (st = svc__idem_new_from(&idem, svc_app_config(app), svc_app_metrics(app),
                                      svc_app_clock(app)))) {
        idem_http_free(h);
        return st;
    }
    if (svc_idem_lease_ms(idem) <= (int64_t)svc_app_handler_timeout_ms(app)) {
        svc__fail_new(SVC_EINVAL,
                      "idempotency: lease_ms (%lld) must be longer than the app's "
                      "handler_timeout_ms (%u), else a retry takes over the claim of a "
                      "handler still running",
                      (long long)svc_idem_lease_ms(idem), svc_app_handler_timeout_ms(app));
        h->idem = idem;
        idem_http_free(h);
        return SVC_EINVAL;
    }
    h->idem = idem; /* h's reference, dropped when the app frees h */
    if ((st = svc_app_on_free(app, idem_http_free, h))) {
        idem_http_free(h);
        return svc__fail_new(st, "idempotency: cannot register with the app: %s",
                             svc_strerror(st));
    }
    /* the app's own reference, for svc_app_idem() */
    if ((st = svc_app_attach(app, ATTACH_KEY, svc_idem_ref(idem), release_idem))) {
        svc_idem_free(idem);
        return svc__fail_new(st, "idempotency: cannot attach the engine to the app: %s",
                             svc_strerror(st));
    }
    if ((st = svc_app_use_stage(app, SVC_STAGE_IDEMPOTENCY, "idempotency", idem_mw, h)))
        return svc__fail_new(st, "idempotency: %s", svc_app_errmsg(app));
    if ((svc__idem_pg(idem) || svc__idem_redis(idem)) &&
        (st = svc_app_add_check(app, ATTACH_KEY, store_check, h, 1000, 1)))
        return svc__fail_new(st, "idempotency: cannot add the readiness check: %s",
                             svc_strerror(st));
    svc__fail_new_clear();
    return SVC_OK;
}

extern const svc__opt_table svc__idem_http_opts_table;

svc_status svc_add_idempotency(struct svc_app *app, const svc_idem_http_opts *opts)
{
    if (!app)
        return svc__fail_new(SVC_EINVAL, "idempotency: svc_add_idempotency: app is NULL");
    svc_idem_http_opts o;
    svc__opts_hold hold;
    svc_status st = svc__opts_resolve(&svc__idem_http_opts_table, opts, svc_app_config(app), &o,
                                      sizeof o, &hold);
    if (!st)
        st = add_idempotency(app, &o);
    svc__opts_release(&hold);
    return st;
}

svc_idem *svc_app_idem(const struct svc_app *app)
{
    return app ? svc_app_attached(app, ATTACH_KEY) : NULL;
}

#else /* !SVC_HAVE_HTTP */

svc_status svc_add_idempotency(struct svc_app *app, const svc_idem_http_opts *opts)
{
    SVC__UNUSED(app);
    SVC__UNUSED(opts);
    return svc__fail_new(SVC_ENOTSUP, "idempotency: this libsvcinfra was built without HTTP");
}

svc_idem *svc_app_idem(const struct svc_app *app)
{
    SVC__UNUSED(app);
    return NULL;
}

svc_status svc_idem_req_complete_tx(struct svc_req *req, struct svc_pg_tx *tx,
                                    struct svc_res *res)
{
    SVC__UNUSED(req);
    SVC__UNUSED(tx);
    SVC__UNUSED(res);
    return SVC_ENOTSUP;
}

#endif
