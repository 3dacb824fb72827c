/*
 * lib/http/cors.c - CORS with an exact-origin allowlist, deny by default.
 *
 * A SECURITY-stage middleware named "cors". Per request:
 *
 *   no Origin header ───────────────► chain, + Vary: Origin
 *   Origin allowed, preflight ──────► 204 with Allow-Origin/-Methods/-Headers,
 *                                     Max-Age (the chain does not run)
 *   Origin allowed ─────────────────► chain, + Allow-Origin, Expose-Headers
 *                                     (+ Allow-Credentials), Vary: Origin
 *   Origin not allowed, preflight ──► 403 problem+json, code AUTHZ
 *   Origin not allowed ─────────────► chain, no CORS headers, Vary: Origin
 *
 * A preflight is OPTIONS with Access-Control-Request-Method. The origin
 * check runs on every request that carries an Origin, so it is a scan of a
 * short array comparing the length first and the bytes only on a length
 * match; no allocation, no lower-casing (origins are compared exactly, as
 * browsers send them: scheme://host[:port]).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/opts.h"
#include "http/http_internal.h"

#define SVC__CORS_MAX_ORIGINS 256

typedef struct svc__cors_origin {
    char *text;
    size_t len;
} svc__cors_origin;

typedef struct svc__cors {
    svc__cors_origin *origins;
    size_t norigins;
    bool any;          /* "*" listed */
    bool credentials;
    char *allow_methods;
    char *allow_headers;
    char *expose_headers; /* NULL when empty */
    char max_age[16];
} svc__cors;

static void cors_free(void *ud)
{
    svc__cors *c = ud;
    if (!c)
        return;
    for (size_t i = 0; i < c->norigins; i++)
        svc_free(c->origins[i].text);
    svc_free(c->origins);
    svc_free(c->allow_methods);
    svc_free(c->allow_headers);
    svc_free(c->expose_headers);
    svc_free(c);
}

/* Sets a header whose name is a literal (`nlen` bytes) and whose value
 * lives as long as the app (a literal, or the configuration, validated by
 * svc_add_cors() with svc__header_value_ok()): both are borrowed. Only
 * running out of memory fails; the answer then leaves without it. */
static void hdr_put(svc_res *res, const char *name, size_t nlen, const char *value,
                    unsigned flags)
{
    svc__discard(svc__res_header_put(res, name, nlen, value,
                                     flags | SVC__HDR_NAME_KEPT | SVC__HDR_VALUE_KEPT));
}

#define hdr_set_kept(res, lit, value) hdr_put(res, SVC__LIT(lit), value, SVC__HDR_REPLACE)

/* The allowlist entry equal to `origin`, or NULL. */
static const svc__cors_origin *cors_origin_find(const svc__cors *c, const char *origin)
{
    size_t len = strlen(origin);
    for (size_t i = 0; i < c->norigins; i++) {
        if (c->origins[i].len == len && memcmp(c->origins[i].text, origin, len) == 0)
            return &c->origins[i];
    }
    return NULL;
}

/* True when the comma-separated list `value` has the token `tok`
 * (case-insensitive, spaces around items ignored). */
static bool vary_lists(const char *value, const char *tok)
{
    size_t tl = strlen(tok);
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *last = end;
        while (last > p && (last[-1] == ' ' || last[-1] == '\t'))
            last--;
        if ((size_t)(last - p) == tl && strncasecmp(p, tok, tl) == 0)
            return true;
        p = end;
    }
    return false;
}

/* Adds "Origin" to Vary unless a Vary header already names it (or is "*"). */
static void cors_vary(svc_res *res)
{
    for (size_t i = 0; i < res->nhdrs; i++) {
        const svc__hdr *h = &res->hdrs[i];
        if (h->nlen != 4 || strcasecmp(h->name, "Vary") != 0)
            continue;
        if (vary_lists(h->value, "Origin") || vary_lists(h->value, "*"))
            return;
    }
    hdr_put(res, SVC__LIT("Vary"), "Origin", 0);
}

/* `match` is the allowlist entry of the origin (NULL when "*" allowed it). */
static void cors_allow_origin(const svc__cors *c, svc_res *res,
                              const svc__cors_origin *match)
{
    /* With "*" and no credentials the answer does not depend on the origin;
     * otherwise echo the one origin that asked: its allowlist entry holds
     * the same bytes. ("*" with credentials is refused at configuration.) */
    if (c->any && !c->credentials)
        hdr_set_kept(res, "Access-Control-Allow-Origin", "*");
    else if (match)
        hdr_set_kept(res, "Access-Control-Allow-Origin", match->text);
    if (c->credentials)
        hdr_set_kept(res, "Access-Control-Allow-Credentials", "true");
}

static void cors_mw(svc_req *req, svc_res *res, svc_chain *next, void *ud)
{
    const svc__cors *c = ud;
    const char *origin = svc_req_header(req, "Origin");
    if (!origin) {
        svc_next(next);
        cors_vary(res);
        return;
    }
    const svc__cors_origin *match = c->any && !c->credentials ? NULL : cors_origin_find(c, origin);
    bool allowed = c->any || match != NULL;
    bool preflight = strcmp(svc_req_method(req), "OPTIONS") == 0 &&
                     svc_req_header(req, "Access-Control-Request-Method") != NULL;
    if (preflight) {
        if (!allowed) {
            if (svc_res_problem(res, 403, SVC_PROBLEM_AUTHZ,
                                "the origin is not allowed by the CORS policy") != SVC_OK)
                svc_res_status(res, 403);
            cors_vary(res);
            return;
        }
        svc_res_status(res, 204);
        cors_allow_origin(c, res, match);
        hdr_set_kept(res, "Access-Control-Allow-Methods", c->allow_methods);
        hdr_set_kept(res, "Access-Control-Allow-Headers", c->allow_headers);
        hdr_set_kept(res, "Access-Control-Max-Age", c->max_age);
        cors_vary(res);
        return;
    }
    svc_next(next);
    if (allowed) {
        cors_allow_origin(c, res, match);
        if (c->expose_headers)
            hdr_set_kept(res, "Access-Control-Expose-Headers", c->expose_headers);
    }
    cors_vary(res);
}

/* svc_cors_opts_default() is in defaults.c. */

/* An origin as browsers send it: scheme "://" host [":" port], nothing
 * after (no path, no trailing slash), no spaces, and a valid header value
 * (it is echoed in Access-Control-Allow-Origin). */
static bool origin_ok(const char *o)
{
    if (!svc__header_value_ok(o))
        return false;
    const char *sep = strstr(o, "://");
    if (!sep || sep == o || sep[3] == '\0')
        return false;
    for (const char *p = o; p < sep; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '+' ||
              *p == '-' || *p == '.'))
            return false;
    }
    for (const char *p = sep + 3; *p; p++) {
        if (*p == '/' || *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == ',' ||
            *p == '?' || *p == '#')
            return false;
    }
    return true;
}

static svc_status add_cors(svc_app *app, const svc_cors_opts *opts)
{
    if (atomic_load(&app->started))
        return svc__err_set(&app->err, SVC_EBUSY, "cors: the app is already started");
    if (app->ext_cors)
        return svc__err_set(&app->err, SVC_EEXIST, "cors: svc_add_cors() was already called");

    svc_cors_opts d;
    svc_cors_opts_default(&d);
    const char *methods = opts->allow_methods ? opts->allow_methods : d.allow_methods;
    const char *headers = opts->allow_headers ? opts->allow_headers : d.allow_headers;
    const char *expose = opts->expose_headers ? opts->expose_headers : d.expose_headers;
    /* the rule of svc_res_header_set(), so every configured value is sendable */
    if (!svc__header_value_ok(methods) || !svc__header_value_ok(headers) ||
        !svc__header_value_ok(expose))
        return svc__err_set(&app->err, SVC_EINVAL,
                            "cors: allow_methods, allow_headers and expose_headers may not "
                            "contain control characters (only HTAB is allowed)");

    size_t n = 0;
    bool any = false;
    if (opts->allow_origins) {
        for (; opts->allow_origins[n]; n++) {
            const char *o = opts->allow_origins[n];
            if (n >= SVC__CORS_MAX_ORIGINS)
                return svc__err_set(&app->err, SVC_ERANGE, "cors: more than %d origins",
                                    SVC__CORS_MAX_ORIGINS);
            if (strcmp(o, "*") == 0) {
                any = true;
                continue;
            }
            if (!origin_ok(o))
                return svc__err_set(&app->err, SVC_EINVAL,
                                    "cors: \"%s\" is not an origin (scheme://host[:port], "
                                    "lower-case scheme, no path or trailing slash) nor \"*\"",
                                    o);
        }
    }
    if (any && opts->allow_credentials)
        return svc__err_set(&app->err, SVC_EINVAL,
                            "cors: \"*\" cannot be combined with allow_credentials; list the "
                            "origins instead");

    svc__cors *c = svc__calloc(1, sizeof(*c));
    if (!c)
        return svc__err_set(&app->err, SVC_ENOMEM, "cors: out of memory");
    c->any = any;
    c->credentials = opts->allow_credentials != 0;
    c->allow_methods = svc__strdup(methods);
    c->allow_headers = svc__strdup(headers);
    c->expose_headers = expose[0] ? svc__strdup(expose) : NULL;
    c->origins = n ? svc__calloc(n, sizeof(*c->origins)) : NULL;
    bool oom = !c->allow_methods || !c->allow_headers || (expose[0] && !c->expose_headers) ||
               (n && !c->origins);
    for (size_t i = 0; !oom && i < n; i++) {
        const char *o = opts->allow_origins[i];
        if (strcmp(o, "*") == 0)
            continue;
        svc__cors_origin *slot = &c->origins[c->norigins];
        slot->text = svc__strdup(o);
        if (!slot->text) {
            oom = true;
            break;
        }
        slot->len = strlen(o);
        c->norigins++;
    }
    if (oom) {
        cors_free(c);
        return svc__err_set(&app->err, SVC_ENOMEM, "cors: out of memory");
    }
    snprintf(c->max_age, sizeof(c->max_age), "%u", opts->max_age_s);

    svc_status st = svc_app_on_free(app, cors_free, c);
    if (st != SVC_OK) {
        cors_free(c);
        return st;
    }
    st = svc_app_use_stage(app, SVC_STAGE_SECURITY, "cors", cors_mw, c);
    if (st != SVC_OK)
        return st; /* c is released by the on_free hook */
    app->ext_cors = c;
    return SVC_OK;
}

extern const svc__opt_table svc__cors_opts_table;

static svc_status add_cors_v(svc_app *app, const void *opts) { return add_cors(app, opts); }

svc_status svc_add_cors(svc_app *app, const svc_cors_opts *opts)
{
    svc_cors_opts o;
    return svc__add_configured(app, &svc__cors_opts_table, opts, &o, sizeof o, add_cors_v);
}
