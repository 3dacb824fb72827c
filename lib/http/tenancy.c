/*
 * lib/http/tenancy.c - tenant resolution (TENANT stage, name "tenancy").
 *
 * Order of sources for one request:
 *   1. an API key (Authorization: Bearer <key>, else the api_key_header)
 *      looked up with opts.lookup: found → tenant + principal; unknown → 401;
 *   2. else, when opts.trusted_header is set, that header's value (1..128
 *      of [A-Za-z0-9._:-]; anything else is ignored);
 *   3. else no tenant: 401 with opts.required, else the request goes on.
 * Paths listed in skip_paths (exact match) bypass all of it.
 */
#include <string.h>
#include <strings.h>

#include "core/opts.h"
#include "http/http_internal.h"
#include "svcinfra/log.h"

typedef struct tenancy {
    svc_tenant_lookup_fn lookup;
    void *lookup_ud;
    char *api_key_header;
    char *trusted_header;
    int required;
    char **skip;
    size_t nskip;
} tenancy;

static const char *const default_skip[] = {"/healthz", "/readyz", "/startupz", "/metrics", NULL};

/* svc_tenancy_opts_default() is in defaults.c. */

static void tenancy_free(void *p)
{
    tenancy *t = p;
    if (t == NULL)
        return;
    svc_free(t->api_key_header);
    svc_free(t->trusted_header);
    for (size_t i = 0; i < t->nskip; i++)
        svc_free(t->skip[i]);
    svc_free(t->skip);
    svc_free(t);
}

static void unauthorized(svc_res *res, const char *detail)
{
    if (svc_res_problem(res, 401, SVC_PROBLEM_AUTHN, detail) != SVC_OK)
        svc_res_status(res, 401);
    svc__discard(svc_res_header_set(res, "WWW-Authenticate", "Bearer"));
}

static const char *api_key_of(const tenancy *t, const svc_req *req)
{
    const char *auth = svc_req_header(req, "Authorization");
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
        const char *k = auth + 7;
        while (*k == ' ')
            k++;
        if (*k)
            return k;
    }
    if (t->api_key_header) {
        const char *k = svc_req_header(req, t->api_key_header);
        if (k && *k)
            return k;
    }
    return NULL;
}

static void mw_tenancy(svc_req *req, svc_res *res, svc_chain *next, void *ud)
{
    const tenancy *t = ud;
    const char *path = svc_req_raw_path(req); /* as the router sees it */
    for (size_t i = 0; i < t->nskip; i++)
        if (strcmp(path, t->skip[i]) == 0) {
            svc_next(next);
            return;
        }
    const char *key = t->lookup ? api_key_of(t, req) : NULL;
    if (key) {
        char tenant[SVC__HTTP_ID_MAX + 1] = "", principal[256] = "";
        if (!t->lookup(key, tenant, sizeof tenant, principal, sizeof principal, t->lookup_ud) ||
            !tenant[0]) {
            unauthorized(res, "unknown API key");
            return;
        }
        tenant[sizeof tenant - 1] = '\0';
        principal[sizeof principal - 1] = '\0';
        if (svc_req_set_tenant(req, tenant) != SVC_OK ||
            svc_req_set_principal(req, principal[0] ? principal : NULL) != SVC_OK) {
            svc__discard(svc_res_problem(res, 500, SVC_PROBLEM_INTERNAL, NULL));
            return;
        }
    } else if (t->trusted_header) {
        const char *v = svc_req_header(req, t->trusted_header);
        if (v && svc__request_id_ok(v) && svc_req_set_tenant(req, v) != SVC_OK) {
            svc__discard(svc_res_problem(res, 500, SVC_PROBLEM_INTERNAL, NULL));
            return;
        }
    }
    if (t->required && svc_req_tenant(req) == NULL) {
        unauthorized(res, "a tenant is required: send an API key");
        return;
    }
    svc_next(next);
}

static svc_status add_tenancy(svc_app *app, const svc_tenancy_opts *opts)
{
    tenancy *t = svc__calloc(1, sizeof *t);
    if (t == NULL)
        return SVC_ENOMEM;
    t->lookup = opts->lookup;
    t->lookup_ud = opts->lookup_ud;
    t->required = opts->required;
    bool oom = false;
    if (opts->api_key_header) {
        if (!svc__header_name_ok(opts->api_key_header)) {
            tenancy_free(t);
            return svc__err_set(&app->err, SVC_EINVAL, "tenancy: bad api_key_header");
        }
        oom |= (t->api_key_header = svc__strdup(opts->api_key_header)) == NULL;
    }
    if (opts->trusted_header) {
        if (!svc__header_name_ok(opts->trusted_header)) {
            tenancy_free(t);
            return svc__err_set(&app->err, SVC_EINVAL, "tenancy: bad trusted_header");
        }
        oom |= (t->trusted_header = svc__strdup(opts->trusted_header)) == NULL;
    }
    const char *const *skip = opts->skip_paths ? opts->skip_paths : default_skip;
    size_t n = 0;
    while (skip[n])
        n++;
    if (n) {
        t->skip = svc__calloc(n, sizeof *t->skip);
        oom |= t->skip == NULL;
        for (size_t i = 0; t->skip && i < n; i++) {
            t->skip[i] = svc__strdup(skip[i]);
            oom |= t->skip[i] == NULL;
            t->nskip = i + 1;
        }
    }
    if (oom) {
        tenancy_free(t);
        return SVC_ENOMEM;
    }
    /* released with the app from here on, whatever happens next */
    svc_status st = svc_app_on_free(app, tenancy_free, t);
    if (st != SVC_OK) {
        tenancy_free(t);
        return st;
    }
    st = svc_app_use_stage(app, SVC_STAGE_TENANT, "tenancy", mw_tenancy, t);
    if (st != SVC_OK)
        return st;
    app->ext_tenancy = t;
    return SVC_OK;
}

extern const svc__opt_table svc__tenancy_opts_table;

static svc_status add_tenancy_v(svc_app *app, const void *opts) { return add_tenancy(app, opts); }

svc_status svc_add_tenancy(svc_app *app, const svc_tenancy_opts *opts)
{
    svc_tenancy_opts o;
    return svc__add_configured(app, &svc__tenancy_opts_table, opts, &o, sizeof o, add_tenancy_v);
}
