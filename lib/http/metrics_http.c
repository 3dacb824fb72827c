/*
 * lib/http/metrics_http.c - per-request metrics and the /metrics endpoint.
 *
 * An OBSERVE-stage middleware named "metrics" records, in the app's
 * registry (svc_app_metrics()):
 *
 *   http_server_requests_total{method,route,code}            counter
 *   http_server_request_duration_seconds{method,route}       histogram
 *   http_server_inflight_requests                            gauge
 *
 * Labels are bounded so a scan of random URLs cannot grow the registry:
 * `route` is the matched template ("/cars/{id}", never the raw path) or
 * "<unmatched>", `method` is one of the standard methods or "OTHER", and
 * `code` is a three-digit status. The hot path is two lock-free registry
 * updates on series that already exist, with label strings that are either
 * static or live in the request; nothing is allocated. The in-flight gauge
 * costs requests nothing: a collector brings it up to the app's own count
 * (requests from their request line to their completion) when the
 * registry renders.
 */
#include <stdatomic.h>
#include <string.h>

#include "core/opts.h"
#include "http/http_internal.h"
#include "svcinfra/metrics.h"

#define SVC__UNMATCHED "<unmatched>"

static const double duration_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5,   1.0,  2.5,   5.0,  10.0};

typedef struct svc__mhttp {
    uint64_t id; /* unique per svc_add_metrics(), never reused: keys tl_bound */
    svc_app *app;
    svc_counter *requests;
    svc_histogram *duration;
    svc_gauge *inflight;
    bool collecting; /* collect_inflight() is registered */
    long reported;   /* this app's count as collect_inflight() last added it */
    char *path;
} svc__mhttp;

/* Apps that share a registry share the gauge: each collector adds the
 * change of its own app's count since its last run (collectors of a
 * registry run one at a time), so the gauge is the sum over the apps. */
/* The series the thread's last request updated, so a run of requests to
 * the same route, method and status (the common case) skips hashing and
 * comparing its labels. Keyed by the middleware's id, which no later app
 * reuses; series live as long as their registry, which outlives the app. */
static atomic_uint_fast64_t g_mhttp_ids;
static _Thread_local struct {
    uint64_t id;
    const char *route; /* the route's template (the app's), NULL unmatched */
    const char *method;/* a static label */
    int status;
    svc__series *count, *duration;
} tl_bound;

static void collect_inflight(svc_metrics *reg, void *ud)
{
    (void)reg;
    svc__mhttp *m = ud;
    long now = atomic_load(&m->app->inflight);
    svc_gauge_add(m->inflight, NULL, (double)(now - m->reported));
    m->reported = now;
}

static void mhttp_free(void *ud)
{
    svc__mhttp *m = ud;
    if (!m)
        return;
    if (m->collecting) {
        svc_metrics *reg = svc_app_metrics(m->app);
        svc_metrics_remove_collector(reg, collect_inflight, m);
        svc_gauge_add(m->inflight, NULL, (double)-m->reported); /* this app's share leaves */
    }
    svc_free(m->path);
    svc_free(m);
}

/* The method as a label: a standard method (static string) or "OTHER". */
static const char *method_label(const char *m)
{
    static const char *const known[] = {"GET",     "HEAD",    "POST",  "PUT",    "PATCH",
                                        "DELETE",  "OPTIONS", "TRACE", "CONNECT"};
    for (size_t i = 0; i < SVC__ARRAY_LEN(known); i++) {
        if (strcmp(m, known[i]) == 0)
            return known[i];
    }
    return "OTHER";
}

static void code_label(int status, char out[4])
{
    if (status < 100 || status > 999)
        status = 500;
    out[0] = (char)('0' + status / 100);
    out[1] = (char)('0' + (status / 10) % 10);
    out[2] = (char)('0' + status % 10);
    out[3] = '\0';
}

static void metrics_mw(svc_req *req, svc_res *res, svc_chain *next, void *ud)
{
    const svc__mhttp *m = ud;
    const svc_clock *clock = m->app->clock;
    int64_t start = req->start_ns ? req->start_ns : svc_clock_mono_ns(clock);

    svc_next(next);

    const char *route = svc_req_route(req);
    const char *method = method_label(svc_req_method(req));
    int status = svc__res_effective_status(res);
    int64_t elapsed = svc__req_end_ns(req) - start;
    double seconds = elapsed > 0 ? (double)elapsed / 1e9 : 0.0;
    if (tl_bound.id != m->id || tl_bound.route != route || tl_bound.method != method ||
        tl_bound.status != status) {
        char code[4];
        code_label(status, code);
        const char *labels[3] = {method, route ? route : SVC__UNMATCHED, code};
        tl_bound.count = svc__counter_series(m->requests, labels);
        tl_bound.duration = svc__histogram_series(m->duration, labels);
        if (!tl_bound.count || !tl_bound.duration) { /* over the series cap (counted as dropped) */
            if (tl_bound.count)
                svc__series_inc(tl_bound.count);
            if (tl_bound.duration)
                svc__histogram_series_observe(m->duration, tl_bound.duration, seconds);
            tl_bound.id = 0;
            return;
        }
        tl_bound.id = m->id;
        tl_bound.route = route;
        tl_bound.method = method;
        tl_bound.status = status;
    }
    svc__series_inc(tl_bound.count);
    svc__histogram_series_observe(m->duration, tl_bound.duration, seconds);
}

static void metrics_handler(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    char *text = NULL;
    size_t len = 0;
    svc_status st = svc_metrics_render(svc_app_metrics(svc_req_app(req)), &text, &len);
    if (st != SVC_OK) {
        if (svc_res_problem(res, 500, SVC_PROBLEM_INTERNAL, "cannot render the metrics") !=
            SVC_OK)
            svc_res_status(res, 500);
        return;
    }
    svc_res_status(res, 200);
    if (svc_res_header_set(res, "Content-Type", "text/plain; version=0.0.4; charset=utf-8") !=
            SVC_OK ||
        svc_res_body(res, text, len) != SVC_OK) {
        svc__res_reset(res);
        if (svc_res_problem(res, 500, SVC_PROBLEM_INTERNAL, "cannot render the metrics") !=
            SVC_OK)
            svc_res_status(res, 500);
    }
    svc_free(text);
}

static svc_status add_metrics(svc_app *app, const svc_metrics_http_opts *opts)
{
    if (atomic_load(&app->started))
        return svc__err_set(&app->err, SVC_EBUSY, "metrics: the app is already started");
    if (app->ext_metrics)
        return svc__err_set(&app->err, SVC_EEXIST, "metrics: svc_add_metrics() was already called");
    const char *path = (opts && opts->path) ? opts->path : "/metrics";
    if (path[0] != '/')
        return svc__err_set(&app->err, SVC_EINVAL, "metrics: path \"%s\" must start with '/'",
                            path);
    svc_metrics *reg = svc_app_metrics(app);
    if (!reg)
        return svc__err_set(&app->err, SVC_ENOMEM, "metrics: no registry");

    svc__mhttp *m = svc__calloc(1, sizeof(*m));
    if (!m)
        return svc__err_set(&app->err, SVC_ENOMEM, "metrics: out of memory");
    m->id = atomic_fetch_add(&g_mhttp_ids, 1) + 1;
    m->app = app;
    m->path = svc__strdup(path);
    static const char *const req_labels[] = {"method", "route", "code", NULL};
    static const char *const dur_labels[] = {"method", "route", NULL};
    svc_status st = m->path ? SVC_OK : SVC_ENOMEM;
    if (st == SVC_OK)
        st = svc_metrics_counter(reg, "http_server_requests_total",
                                 "HTTP requests answered, by method, route template and status",
                                 req_labels, &m->requests);
    if (st == SVC_OK)
        st = svc_metrics_histogram(reg, "http_server_request_duration_seconds",
                                   "Time from the first byte of a request to its answer",
                                   dur_labels, duration_buckets,
                                   SVC__ARRAY_LEN(duration_buckets), &m->duration);
    if (st == SVC_OK)
        st = svc_metrics_gauge(reg, "http_server_inflight_requests",
                               "Requests received and not yet answered", NULL, &m->inflight);
    if (st != SVC_OK) {
        mhttp_free(m);
        return svc__err_set(&app->err, st, "metrics: cannot register the HTTP metrics: %s",
                            svc_metrics_errmsg(reg));
    }
    st = svc_app_on_free(app, mhttp_free, m);
    if (st != SVC_OK) {
        mhttp_free(m);
        return st;
    }
    st = svc_metrics_add_collector(reg, collect_inflight, m);
    if (st != SVC_OK)
        return svc__err_set(&app->err, st, "metrics: cannot add the in-flight collector: %s",
                            svc_metrics_errmsg(reg));
    m->collecting = true;
    st = svc_app_use_stage(app, SVC_STAGE_OBSERVE, "metrics", metrics_mw, m);
    if (st != SVC_OK)
        return st;
    st = svc_app_route(app, "GET", m->path, metrics_handler, m);
    if (st != SVC_OK)
        return st;
    app->ext_metrics = m;
    return SVC_OK;
}

extern const svc__opt_table svc__metrics_http_opts_table;

static svc_status add_metrics_v(svc_app *app, const void *opts) { return add_metrics(app, opts); }

svc_status svc_add_metrics(svc_app *app, const svc_metrics_http_opts *opts)
{
    svc_metrics_http_opts o;
    return svc__add_configured(app, &svc__metrics_http_opts_table, opts, &o, sizeof o, add_metrics_v);
}
