/*
 * lib/http/defaults.c - the parts of http.h that need no server: option
 * defaults and the problem code table. Compiled in every build, also
 * without libmicrohttpd (then unsupported.c answers the rest).
 */
#include <string.h>

#include "core/opts.h"
#include "svcinfra/http.h"

/* The app's options ("http" section). Keys predate the table and keep
 * their names (http.max_body for max_body_bytes, ...). */
static const svc__opt http_spec[] = {
    SVC__OPT_K(svc_app_opts, bind_addr, "bind", STRING, .s = "127.0.0.1", 0, 0,
               "address to listen on (\"0.0.0.0\" or \"::\" for all)"),
    SVC__OPT(svc_app_opts, port, UINT, .i = 8080, 0, 65535, "port; 0 picks a free one"),
    SVC__OPT(svc_app_opts, threads, UINT, .i = 0, 0, 1024, "server threads; 0: one per CPU"),
    SVC__OPT_K(svc_app_opts, max_body_bytes, "max_body", SIZE, .i = 1024 * 1024, 1,
               INT64_MAX / 2, "largest request body (413 beyond)"),
    SVC__OPT_K(svc_app_opts, read_timeout_ms, "read_timeout", MS, .i = 30000, 1, 86400000,
               "whole request must arrive within (408), and keep-alive idle time"),
    SVC__OPT_K(svc_app_opts, handler_timeout_ms, "handler_timeout", MS, .i = 30000, 1, 86400000,
               "handler deadline (503 TIMEOUT past it)"),
    SVC__OPT_K(svc_app_opts, shutdown_grace_ms, "shutdown_grace", MS, .i = 10000, 0, 3600000,
               "time in-flight requests get on shutdown"),
    SVC__OPT(svc_app_opts, max_connections, UINT, .i = 1024, 1, 1000000,
             "connections open at once"),
    SVC__OPT(svc_app_opts, default_middleware, BOOL, .i = 1, 0, 0,
             "request id, access log, security headers, maintenance mode"),
    SVC__OPT(svc_app_opts, access_log, BOOL, .i = 1, 0, 0, "one JSON line per request"),
    SVC__OPT(svc_app_opts, problem_type_base, STRING, .s = "about:blank", 0, 0,
             "base of the problem `type` member; `about:blank`: every type is about:blank"),
    SVC__OPT(svc_app_opts, trace_response, BOOL, .i = 0, 0, 0,
             "add the W3C traceresponse header"),
};
const svc__opt_table svc__http_opts_table = SVC__OPT_TABLE("http", http_spec);

void svc_app_opts_default(svc_app_opts *opts)
{
    svc__opts_default(&svc__http_opts_table, opts, sizeof *opts);
}

static const svc__opt cors_spec[] = {
    SVC__OPT(svc_cors_opts, allow_origins, STRINGS, .s = NULL, 0, 0,
             "exact origins allowed, or \"*\"; none: CORS headers for no origin"),
    SVC__OPT(svc_cors_opts, allow_methods, STRING, .s = "GET, POST, PUT, PATCH, DELETE", 0, 0,
             "Access-Control-Allow-Methods of preflights"),
    SVC__OPT(svc_cors_opts, allow_headers, STRING,
             .s = "Content-Type, Authorization, Idempotency-Key, X-Request-Id", 0, 0,
             "Access-Control-Allow-Headers of preflights"),
    SVC__OPT(svc_cors_opts, expose_headers, STRING, .s = "", 0, 0,
             "Access-Control-Expose-Headers; empty: none"),
    SVC__OPT(svc_cors_opts, allow_credentials, BOOL, .i = 0, 0, 0,
             "Access-Control-Allow-Credentials: true"),
    SVC__OPT(svc_cors_opts, max_age_s, UINT, .i = 600, 0, 86400, "preflight cache time, seconds"),
};
const svc__opt_table svc__cors_opts_table = SVC__OPT_TABLE("cors", cors_spec);

void svc_cors_opts_default(svc_cors_opts *opts)
{
    svc__opts_default(&svc__cors_opts_table, opts, sizeof *opts);
}

static const svc__opt tenancy_spec[] = {
    SVC__OPT(svc_tenancy_opts, api_key_header, STRING, .s = "X-API-Key", 0, 0,
             "header holding an API key (Authorization: Bearer is read too)"),
    SVC__OPT(svc_tenancy_opts, trusted_header, STRING, .s = NULL, 0, 0,
             "a tenant header to trust (e.g. X-Tenant-Id); unset: none"),
    SVC__OPT(svc_tenancy_opts, required, BOOL, .i = 0, 0, 0,
             "401 for a request without a tenant"),
    SVC__OPT(svc_tenancy_opts, skip_paths, STRINGS, .s = NULL, 0, 0,
             "raw paths that need no tenant; unset: the probes and /metrics"),
};
const svc__opt_table svc__tenancy_opts_table = SVC__OPT_TABLE("tenancy", tenancy_spec);

void svc_tenancy_opts_default(svc_tenancy_opts *opts)
{
    svc__opts_default(&svc__tenancy_opts_table, opts, sizeof *opts);
}

static const svc__opt probes_spec[] = {
    SVC__OPT(svc_probes_opts, healthz_path, STRING, .s = "/healthz", 0, 0, "liveness probe"),
    SVC__OPT(svc_probes_opts, readyz_path, STRING, .s = "/readyz", 0, 0, "readiness probe"),
    SVC__OPT(svc_probes_opts, startupz_path, STRING, .s = "/startupz", 0, 0, "startup probe"),
    SVC__OPT(svc_probes_opts, started, BOOL, .i = 1, 0, 0,
             "started at once; 0: /startupz answers 503 until svc_app_set_started()"),
};
const svc__opt_table svc__probes_opts_table = SVC__OPT_TABLE("probes", probes_spec);

void svc_probes_opts_default(svc_probes_opts *opts)
{
    svc__opts_default(&svc__probes_opts_table, opts, sizeof *opts);
}

static const svc__opt metrics_spec[] = {
    SVC__OPT(svc_metrics_http_opts, path, STRING, .s = "/metrics", 0, 0,
             "where the Prometheus text is served"),
};
const svc__opt_table svc__metrics_http_opts_table = SVC__OPT_TABLE("metrics", metrics_spec);

void svc_metrics_http_opts_default(svc_metrics_http_opts *opts)
{
    svc__opts_default(&svc__metrics_http_opts_table, opts, sizeof *opts);
}

static const svc__opt security_spec[] = {
    SVC__OPT(svc_security_headers_opts, hsts_max_age_s, UINT, .i = 0, 0, 0,
             "Strict-Transport-Security max-age in seconds; 0: no HSTS"),
};
const svc__opt_table svc__security_opts_table = SVC__OPT_TABLE("security_headers", security_spec);

void svc_security_headers_opts_default(svc_security_headers_opts *opts)
{
    svc__opts_default(&svc__security_opts_table, opts, sizeof *opts);
}

static const struct {
    const char *name;
    int status;
    const char *title;
} problems[] = {
#define SVC__PROBLEM_ROW(n, s, t) {#n, s, t},
    SVC_PROBLEM_MAP(SVC__PROBLEM_ROW)
#undef SVC__PROBLEM_ROW
};

static size_t index_of(svc_problem_code code)
{
    return ((int)code >= 0 && (int)code < (int)SVC__PROBLEM_LAST) ? (size_t)code
                                                                  : (size_t)SVC_PROBLEM_INTERNAL;
}

const char *svc_problem_code_name(svc_problem_code code) { return problems[index_of(code)].name; }
int svc_problem_code_status(svc_problem_code code) { return problems[index_of(code)].status; }
const char *svc_problem_code_title(svc_problem_code code) { return problems[index_of(code)].title; }
