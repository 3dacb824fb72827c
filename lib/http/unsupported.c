/*
 * lib/http/unsupported.c - svc_app and friends in a build without
 * libmicrohttpd (-Dhttp=disabled, or the library not found): the same
 * exported symbols, so a program links against any build and asks
 * svc_feature_supported(SVC_FEATURE_HTTP) at run time.
 *
 * svc_app_new() returns SVC_ENOTSUP, so no svc_app, svc_req or svc_res can
 * exist; every other call on them answers as for a handle that does not
 * serve (SVC_ENOTSUP, NULL, 0, or nothing). The option defaults and the
 * problem table are real (defaults.c).
 */
#include "../internal.h"
#include "svcinfra/http.h"
#include "svcinfra/metrics.h"

static const char http_missing[] =
    "HTTP server support (libmicrohttpd) was not built into this libsvcinfra";

/* ---- application ---------------------------------------------------------- */

svc_status svc_app_new(svc_app **out, const svc_app_opts *opts)
{
    if (out)
        *out = NULL;
    return svc__fail_new(SVC_ENOTSUP, "%s", http_missing);
}
void svc_app_free(svc_app *app) {}
const char *svc_app_errmsg(svc_app *app) { return http_missing; }
svc_status svc_app_route(svc_app *app, const char *method, const char *pattern, svc_handler_fn fn,
                         void *ud)
{
    return SVC_ENOTSUP;
}
void svc_next(svc_chain *next) {}
svc_status svc_app_use_stage(svc_app *app, svc_stage stage, const char *name, svc_middleware_fn fn,
                             void *ud)
{
    return SVC_ENOTSUP;
}
svc_status svc_app_use(svc_app *app, const char *name, svc_middleware_fn fn, void *ud)
{
    return SVC_ENOTSUP;
}
size_t svc_app_middleware_names(const svc_app *app, char *buf, size_t buflen)
{
    if (buflen)
        buf[0] = '\0';
    return 0;
}
svc_status svc_app_on_free(svc_app *app, void (*fn)(void *ud), void *ud) { return SVC_ENOTSUP; }
svc_status svc_app_start(svc_app *app) { return SVC_ENOTSUP; }
uint16_t svc_app_port(const svc_app *app) { return 0; }
svc_status svc_app_run(svc_app *app) { return SVC_ENOTSUP; }
void svc_app_stop(svc_app *app) {}
svc_status svc_app_shutdown(svc_app *app) { return SVC_ENOTSUP; }
void svc_app_set_maintenance(svc_app *app, int on, unsigned retry_after_s) {}
struct svc_metrics *svc_app_metrics(const svc_app *app) { return svc_metrics_default(); }
const svc_clock *svc_app_clock(const svc_app *app) { return svc_clock_system(); }
const struct svc_config *svc_app_config(const svc_app *app) { return NULL; }
svc_status svc_app_on_start(svc_app *app, svc_status (*start)(void *ud), void (*stop)(void *ud),
                            void *ud)
{
    return SVC_ENOTSUP;
}
svc_status svc_app_attach(svc_app *app, const char *key, void *ptr, void (*release)(void *ptr))
{
    return SVC_ENOTSUP;
}
void *svc_app_attached(const svc_app *app, const char *key) { return NULL; }
unsigned svc_app_handler_timeout_ms(const svc_app *app) { return 0; }

/* ---- request ---------------------------------------------------------------- */

const char *svc_req_method(const svc_req *req) { return ""; }
const char *svc_req_path(const svc_req *req) { return "/"; }
const char *svc_req_raw_path(const svc_req *req) { return "/"; }
const char *svc_req_query(const svc_req *req) { return ""; }
const char *svc_req_query_param(const svc_req *req, const char *name) { return NULL; }
const char *svc_req_param(const svc_req *req, const char *name) { return NULL; }
const char *svc_req_route(const svc_req *req) { return NULL; }
const char *svc_req_header(const svc_req *req, const char *name) { return NULL; }
const char *svc_req_header_at(const svc_req *req, const char *name, size_t index) { return NULL; }
size_t svc_req_header_count(const svc_req *req) { return 0; }
int svc_req_header_nth(const svc_req *req, size_t i, const char **name, const char **value)
{
    return 0;
}
const char *svc_req_body(const svc_req *req, size_t *len)
{
    if (len)
        *len = 0;
    return "";
}
svc_status svc_req_json(const svc_req *req, json_t **out)
{
    *out = NULL;
    return SVC_ENOTSUP;
}
const char *svc_req_id(const svc_req *req) { return ""; }
const char *svc_req_trace_id(const svc_req *req) { return ""; }
const char *svc_req_client_addr(const svc_req *req) { return ""; }
const char *svc_req_tenant(const svc_req *req) { return NULL; }
svc_status svc_req_set_tenant(svc_req *req, const char *tenant) { return SVC_ENOTSUP; }
const char *svc_req_principal(const svc_req *req) { return NULL; }
svc_status svc_req_set_principal(svc_req *req, const char *principal) { return SVC_ENOTSUP; }
svc_status svc_req_set(svc_req *req, const char *key, void *value, void (*free_fn)(void *))
{
    return SVC_ENOTSUP;
}
void *svc_req_get(const svc_req *req, const char *key) { return NULL; }
int64_t svc_req_remaining_ms(const svc_req *req) { return 0; }
svc_app *svc_req_app(const svc_req *req) { return NULL; }
void svc_req_on_late_answer(svc_req *req, svc_late_answer_fn fn, void *ud) {}

/* ---- response ---------------------------------------------------------------- */

void svc_res_status(svc_res *res, int status) {}
int svc_res_get_status(const svc_res *res) { return 0; }
svc_status svc_res_header_add(svc_res *res, const char *name, const char *value)
{
    return SVC_ENOTSUP;
}
svc_status svc_res_header_set(svc_res *res, const char *name, const char *value)
{
    return SVC_ENOTSUP;
}
svc_status svc_res_header_add_n(svc_res *res, const char *name, size_t name_len,
                                const char *value, size_t value_len)
{
    return SVC_ENOTSUP;
}
svc_status svc_res_header_set_n(svc_res *res, const char *name, size_t name_len,
                                const char *value, size_t value_len)
{
    return SVC_ENOTSUP;
}
void svc_res_header_remove(svc_res *res, const char *name) {}
const char *svc_res_header(const svc_res *res, const char *name) { return NULL; }
size_t svc_res_header_count(const svc_res *res) { return 0; }
int svc_res_header_nth(const svc_res *res, size_t i, const char **name, const char **value)
{
    return 0;
}
svc_status svc_res_body(svc_res *res, const void *data, size_t len) { return SVC_ENOTSUP; }
const char *svc_res_get_body(const svc_res *res, size_t *len)
{
    if (len)
        *len = 0;
    return "";
}
svc_status svc_res_text(svc_res *res, int status, const char *text) { return SVC_ENOTSUP; }
svc_status svc_res_json(svc_res *res, int status, const json_t *json) { return SVC_ENOTSUP; }
svc_status svc_res_json_str(svc_res *res, int status, const char *json) { return SVC_ENOTSUP; }
svc_status svc_res_problem(svc_res *res, int status, svc_problem_code code, const char *detail)
{
    return SVC_ENOTSUP;
}
svc_status svc_res_problem_ext(svc_res *res, int status, svc_problem_code code, const char *detail,
                               const json_t *extensions)
{
    return SVC_ENOTSUP;
}

/* ---- built-in middleware and ops routes ---------------------------------------- */

svc_status svc_add_cors(svc_app *app, const svc_cors_opts *opts)
{
    return svc__fail_new(SVC_ENOTSUP, "cors: %s", http_missing);
}
svc_status svc_add_security_headers(svc_app *app, const svc_security_headers_opts *opts)
{
    return svc__fail_new(SVC_ENOTSUP, "security_headers: %s", http_missing);
}
svc_status svc_add_tenancy(svc_app *app, const svc_tenancy_opts *opts)
{
    return svc__fail_new(SVC_ENOTSUP, "tenancy: %s", http_missing);
}
svc_status svc_add_probes(svc_app *app, const svc_probes_opts *opts)
{
    return svc__fail_new(SVC_ENOTSUP, "probes: %s", http_missing);
}
svc_status svc_app_add_check(svc_app *app, const char *name, svc_check_fn fn, void *ud,
                             unsigned timeout_ms, int critical)
{
    return SVC_ENOTSUP;
}
void svc_app_set_started(svc_app *app) {}
svc_status svc_add_metrics(svc_app *app, const svc_metrics_http_opts *opts)
{
    return svc__fail_new(SVC_ENOTSUP, "metrics: %s", http_missing);
}
