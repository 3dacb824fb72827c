/*
 * lib/http/security.c - security response headers.
 *
 * One SECURITY-stage middleware per app, named "security_headers". It runs
 * the rest of the chain first, then adds each configured header the
 * response does not already carry, so a handler that sets its own
 * Content-Security-Policy (or two Link headers, ...) keeps exactly what it
 * set. The list lives in app->ext_security:
 *
 *   svc__sec ──► names[i], values[i]   owned copies, n entries
 *
 * Early rejections (400, 408, 413) skip the SECURITY stage; app.c adds
 * the same headers to them with svc__security_apply().
 *
 * svc_app_new() installs the defaults (svc__security_install_default());
 * svc_add_security_headers() swaps the list of that same middleware, or
 * installs the middleware when the defaults were not. Both happen before
 * svc_app_start(), while the configuration is single-threaded, so request
 * threads read the list without a lock.
 */
#include <string.h>
#include <strings.h>

#include "core/opts.h"
#include "http/http_internal.h"

#define SVC__SEC_MAX 32 /* headers in one list (a bit each in a uint32_t) */

typedef struct svc__sec {
    size_t n;
    char *names[SVC__SEC_MAX];
    char *values[SVC__SEC_MAX];
    size_t lens[SVC__SEC_MAX]; /* strlen(names[i]) */
} svc__sec;

static const char *const default_headers[] = {
    "X-Content-Type-Options", "nosniff",
    "X-Frame-Options", "DENY",
    "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'",
    NULL,
};

static void sec_clear(svc__sec *s)
{
    for (size_t i = 0; i < s->n; i++) {
        svc_free(s->names[i]);
        svc_free(s->values[i]);
    }
    s->n = 0;
}

static void sec_free(void *ud)
{
    svc__sec *s = ud;
    if (!s)
        return;
    sec_clear(s);
    svc_free(s);
}

static void sec_apply(const svc__sec *s, svc_res *res)
{
    /* One pass over the response headers marks the configured names that
     * are already there (same pointer, or length first and then a
     * case-insensitive compare). */
    uint32_t present = 0;
    for (size_t i = 0; i < res->nhdrs; i++) {
        const svc__hdr *h = &res->hdrs[i];
        for (size_t j = 0; j < s->n; j++) {
            if (h->name == s->names[j] ||
                (s->lens[j] == h->nlen && strcasecmp(s->names[j], h->name) == 0))
                present |= UINT32_C(1) << j;
        }
    }
    /* Names and values were validated when configured (with the checks of
     * svc_res_header_set()) and live as long as the app: they are
     * borrowed, not copied. Only running out of memory fails here; that
     * header is left out and the others are still added. */
    for (size_t j = 0; j < s->n; j++) {
        if (!(present & (UINT32_C(1) << j)))
            svc__discard(svc__res_header_put(res, s->names[j], s->lens[j], s->values[j],
                                             SVC__HDR_NAME_KEPT | SVC__HDR_VALUE_KEPT));
    }
}

static void security_mw(svc_req *req, svc_res *res, svc_chain *next, void *ud)
{
    (void)req;
    svc_next(next);
    sec_apply(ud, res);
}

void svc__security_apply(svc_app *app, svc_res *res)
{
    if (app->ext_security)
        sec_apply(app->ext_security, res);
}

/* Builds the list into `out` (empty on entry). On failure `out` holds what
 * was copied so far; the caller clears it. */
static svc_status sec_build(svc_app *app, svc__sec *out, const char *const *pairs,
                            unsigned hsts_max_age_s)
{
    for (size_t i = 0; pairs[i]; i += 2) {
        const char *name = pairs[i];
        const char *value = pairs[i + 1];
        if (!value)
            return svc__err_set(&app->err, SVC_EINVAL,
                                "security headers: \"%s\" has no value (pairs name, value, ..., NULL)",
                                name);
        if (!svc__header_name_ok(name))
            return svc__err_set(&app->err, SVC_EINVAL,
                                "security headers: \"%s\" is not a valid header name", name);
        if (!svc__header_value_ok(value))
            return svc__err_set(&app->err, SVC_EINVAL,
                                "security headers: the value of %s contains a control "
                                "character (only HTAB is allowed)",
                                name);
        if (out->n + 1 >= SVC__SEC_MAX) /* one slot kept for HSTS */
            return svc__err_set(&app->err, SVC_ERANGE,
                                "security headers: more than %d headers", SVC__SEC_MAX - 1);
        out->names[out->n] = svc__strdup(name);
        out->values[out->n] = svc__strdup(value);
        if (!out->names[out->n] || !out->values[out->n]) {
            svc_free(out->names[out->n]);
            svc_free(out->values[out->n]);
            return svc__err_set(&app->err, SVC_ENOMEM, "security headers: out of memory");
        }
        out->lens[out->n] = strlen(name);
        out->n++;
    }
    if (hsts_max_age_s > 0) {
        char *v = svc__asprintf("max-age=%u; includeSubDomains", hsts_max_age_s);
        char *n = svc__strdup("Strict-Transport-Security");
        if (!v || !n) {
            svc_free(v);
            svc_free(n);
            return svc__err_set(&app->err, SVC_ENOMEM, "security headers: out of memory");
        }
        out->names[out->n] = n;
        out->values[out->n] = v;
        out->lens[out->n] = strlen(n);
        out->n++;
    }
    return SVC_OK;
}

/* Creates the app's list and middleware once; later calls reuse them. */
static svc_status sec_install(svc_app *app, svc__sec **out)
{
    if (app->ext_security) {
        *out = app->ext_security;
        return SVC_OK;
    }
    svc__sec *s = svc__calloc(1, sizeof(*s));
    if (!s)
        return svc__err_set(&app->err, SVC_ENOMEM, "security headers: out of memory");
    svc_status st = svc_app_on_free(app, sec_free, s);
    if (st != SVC_OK) {
        svc_free(s);
        return st;
    }
    st = svc_app_use_stage(app, SVC_STAGE_SECURITY, "security_headers", security_mw, s);
    if (st != SVC_OK)
        return st; /* s is released by the on_free hook */
    app->ext_security = s;
    *out = s;
    return SVC_OK;
}

static svc_status sec_configure(svc_app *app, const char *const *pairs, unsigned hsts)
{
    if (atomic_load(&app->started))
        return svc__err_set(&app->err, SVC_EBUSY,
                            "security headers: the app is already started");
    /* Build the new list aside first, so a bad list leaves the old one. */
    svc__sec fresh;
    memset(&fresh, 0, sizeof(fresh));
    svc_status st = sec_build(app, &fresh, pairs, hsts);
    if (st != SVC_OK) {
        sec_clear(&fresh);
        return st;
    }
    svc__sec *s = NULL;
    st = sec_install(app, &s);
    if (st != SVC_OK) {
        sec_clear(&fresh);
        return st;
    }
    sec_clear(s);
    *s = fresh;
    return SVC_OK;
}

svc_status svc__security_install_default(svc_app *app)
{
    return sec_configure(app, default_headers, 0);
}

extern const svc__opt_table svc__security_opts_table;

static svc_status add_security_v(svc_app *app, const void *opts)
{
    const svc_security_headers_opts *o = opts;
    return sec_configure(app, o->headers ? o->headers : default_headers, o->hsts_max_age_s);
}

svc_status svc_add_security_headers(svc_app *app, const svc_security_headers_opts *opts)
{
    svc_security_headers_opts o;
    return svc__add_configured(app, &svc__security_opts_table, opts, &o, sizeof o, add_security_v);
}
