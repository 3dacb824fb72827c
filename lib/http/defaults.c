/*
 * lib/http/defaults.c - the parts of http.h that need no server: option
 * defaults and the problem code table. Compiled in every build, also
 * without libmicrohttpd (then unsupported.c answers the rest).
 */
#include <string.h>

#include "svcinfra/http.h"

void svc_app_opts_default(svc_app_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->bind_addr = "127.0.0.1";
    opts->port = 8080;
    opts->threads = 0;
    opts->max_body_bytes = 1024 * 1024;
    opts->read_timeout_ms = 30000;
    opts->handler_timeout_ms = 30000;
    opts->shutdown_grace_ms = 10000;
    opts->max_connections = 1024;
    opts->default_middleware = 1;
    opts->access_log = 1;
    opts->problem_type_base = "https://libsvcinfra.org/problems/";
}

void svc_cors_opts_default(svc_cors_opts *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->allow_origins = NULL;
    opts->allow_methods = "GET, POST, PUT, PATCH, DELETE";
    opts->allow_headers = "Content-Type, Authorization, Idempotency-Key, X-Request-Id";
    opts->expose_headers = "";
    opts->allow_credentials = 0;
    opts->max_age_s = 600;
}

void svc_tenancy_opts_default(svc_tenancy_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->api_key_header = "X-API-Key";
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
