/*
 * lib/http/mw_core.c - the built-in middleware of svc_app_new():
 *
 *   request_id   EARLY     X-Request-Id (echo or new), W3C traceparent in,
 *                          traceresponse out (opt-in), the thread's log
 *                          context for the request
 *   access_log   OBSERVE   one JSON line per request
 *   maintenance  SECURITY  writes → 503 UNAVAILABLE + Retry-After
 */
#include <stdio.h>
#include <string.h>

#include "http/http_internal.h"
#include "svcinfra/crypto.h"
#include "svcinfra/log.h"

/* ---- request id and trace context --------------------------------------------------- */

bool svc__request_id_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= SVC__HTTP_ID_MAX)
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return n > 0;
}

static bool lower_hex(const char *s, size_t n, bool *all_zero)
{
    *all_zero = true;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        if (c != '0')
            *all_zero = false;
    }
    return true;
}

/* version "00": exactly 00-<32 hex>-<16 hex>-<2 hex>, lower case, ids not
 * all zero. Other versions are not understood and start a new trace. */
bool svc__traceparent_parse(const char *s, char trace_id[33])
{
    bool zero;
    if (strlen(s) != 55 || s[2] != '-' || s[35] != '-' || s[52] != '-')
        return false;
    if (memcmp(s, "00", 2) != 0)
        return false;
    if (!lower_hex(s + 3, 32, &zero) || zero)
        return false;
    if (!lower_hex(s + 36, 16, &zero) || zero)
        return false;
    if (!lower_hex(s + 53, 2, &zero))
        return false;
    memcpy(trace_id, s + 3, 32);
    trace_id[32] = '\0';
    return true;
}

void svc__req_refresh_log_context(svc_req *req)
{
    if (!req->log_ctx_active)
        return;
    svc_log_context ctx = {req->id[0] ? req->id : NULL, req->tenant,
                           req->trace_id[0] ? req->trace_id : NULL};
    svc_log_context_set(&ctx);
}

static void mw_request_id(svc_req *req, svc_res *res, svc_chain *next, void *ud)
{
    (void)ud;
    const char *in = svc_req_header(req, "X-Request-Id");
    if (in && svc__request_id_ok(in)) {
        memcpy(req->id, in, strlen(in) + 1);
    } else if (svc__random_id_hex(req->id, 16) != SVC_OK) {
        req->id[0] = '\0';
    }
    char flags[3] = "00";
    const char *tp = svc_req_header(req, "traceparent");
    if (tp && svc__traceparent_parse(tp, req->trace_id))
        memcpy(flags, tp + 53, 2);
    else if (svc__random_id_hex(req->trace_id, 16) != SVC_OK)
        req->trace_id[0] = '\0';
    /* this server's span id is only ever shown in traceresponse */
    bool trace_response = req->app->opts.trace_response;
    if (trace_response && svc__random_id_hex(req->span_id, 8) != SVC_OK)
        req->span_id[0] = '\0';

    req->log_ctx_active = true;
    svc__req_refresh_log_context(req);
    svc_next(next);
    svc_log_context_set(NULL);
    req->log_ctx_active = false;

    /* Both values are ours and valid (checked or generated ids, lower hex):
     * the request id is borrowed from the request, the traceresponse is
     * built in the arena. W3C Trace Context defines traceparent for
     * requests only; the answer names its span in `traceresponse` (Trace
     * Context Level 2), and only when asked: most clients never read it. */
    const unsigned kept = SVC__HDR_REPLACE | SVC__HDR_NAME_KEPT | SVC__HDR_VALUE_KEPT;
    if (req->id[0])
        svc__discard(svc__res_header_put(res, SVC__LIT("X-Request-Id"), req->id, kept));
    if (trace_response && req->trace_id[0] && req->span_id[0]) {
        char *out = svc__ex_alloc(req->ex, 56); /* 00-<32>-<16>-<2> */
        if (out) {
            memcpy(out, "00-", 3);
            memcpy(out + 3, req->trace_id, 32);
            out[35] = '-';
            memcpy(out + 36, req->span_id, 16);
            out[52] = '-';
            memcpy(out + 53, flags, 2);
            out[55] = '\0';
            svc__discard(svc__res_header_put(res, SVC__LIT("traceresponse"), out, kept));
        }
    }
}

svc_status svc__mw_install_request_id(svc_app *app)
{
    return svc_app_use_stage(app, SVC_STAGE_EARLY, "request_id", mw_request_id, NULL);
}

/* ---- access log ------------------------------------------------------------------------ */

/* The keys of an access log line, checked once at installation with
 * svc__log_key_plain(), so each line writes them without re-checking. */
static const char *const access_keys[] = {"method", "path",      "route",  "status",
                                          "duration_ms", "bytes_in", "bytes_out", "client",
                                          "user_agent"};

static void mw_access_log(svc_req *req, svc_res *res, svc_chain *next, void *ud)
{
    (void)ud;
    svc_next(next);
    int status = svc__res_effective_status(res);
    svc_log_level level = status >= 500 ? SVC_LOG_ERROR : SVC_LOG_INFO;
    if (!svc_log_enabled(level))
        return;
    /* milliseconds with microsecond resolution */
    int64_t us = (svc__req_end_ns(req) - req->start_ns + 500) / 1000;
    double ms = (double)us / 1000.0;
    bool head = strcmp(req->method, "HEAD") == 0;
    const char *const *k = access_keys;
    svc_log_field f[] = {
        svc_log_field_str(k[0], req->method),
        svc_log_field_str(k[1], svc_req_path(req)),
        svc_log_field_str(k[2], svc_req_route(req)),
        svc_log_field_int(k[3], status),
        svc_log_field_dbl(k[4], ms),
        svc_log_field_int(k[5], (int64_t)req->body.len),
        svc_log_field_int(k[6], head ? 0 : (int64_t)res->body.len),
        svc_log_field_str(k[7], req->client),
        svc_log_field_str(k[8], svc_req_header(req, "User-Agent")),
    };
    _Static_assert(SVC__ARRAY_LEN(f) == SVC__ARRAY_LEN(access_keys), "one key per field");
    svc__log_kv_plain(level, "request", f, SVC__ARRAY_LEN(f));
}

svc_status svc__mw_install_access_log(svc_app *app)
{
    for (size_t i = 0; i < SVC__ARRAY_LEN(access_keys); i++)
        if (!svc__log_key_plain(access_keys[i]))
            return svc__err_set(&app->err, SVC_EINVAL, "access log: key %s is not plain",
                                access_keys[i]);
    return svc_app_use_stage(app, SVC_STAGE_OBSERVE, "access_log", mw_access_log, NULL);
}

/* ---- maintenance mode ------------------------------------------------------------------ */

static bool is_write(const char *m)
{
    return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0 ||
           strcmp(m, "DELETE") == 0;
}

static void mw_maintenance(svc_req *req, svc_res *res, svc_chain *next, void *ud)
{
    (void)ud;
    svc_app *app = req->app;
    if (!atomic_load_explicit(&app->maintenance, memory_order_relaxed) || !is_write(req->method)) {
        svc_next(next);
        return;
    }
    char ra[16];
    snprintf(ra, sizeof ra, "%u", atomic_load(&app->retry_after_s));
    if (svc_res_problem(res, 503, SVC_PROBLEM_UNAVAILABLE,
                        "the service is in maintenance mode; writes are paused") != SVC_OK)
        svc_res_status(res, 503);
    svc__discard(svc_res_header_set(res, "Retry-After", ra));
}

svc_status svc__mw_install_maintenance(svc_app *app)
{
    return svc_app_use_stage(app, SVC_STAGE_SECURITY, "maintenance", mw_maintenance, NULL);
}
