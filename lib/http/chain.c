/*
 * lib/http/chain.c - the onion: middleware by stage then registration, then
 * the handler.
 *
 *   chains[0] ─► mw[0](req, res, &chains[1]) ─► svc_next ─► mw[1](..., &chains[2])
 *                 ...                                         ─► handler / 404 / 405
 *
 * Each svc_chain is one slot of the exchange (no allocation); svc_next() on
 * a slot runs only once, so a middleware calling it twice cannot run the
 * handler twice.
 */
#include <string.h>

#include "http/http_internal.h"
#include "svcinfra/log.h"

static void run_handler(svc__exchange *ex)
{
    svc_req *req = &ex->req;
    svc_res *res = &ex->res;
    ex->handler_ran = true;
    if (ex->reject_status) {
        svc_problem_code code = ex->reject_status == 413   ? SVC_PROBLEM_PAYLOAD_TOO_LARGE
                                : ex->reject_status == 408 ? SVC_PROBLEM_TIMEOUT
                                                           : SVC_PROBLEM_VALIDATION;
        const char *detail = ex->reject_detail                 ? ex->reject_detail
                             : ex->reject_status == 413 ? "the request body is larger than allowed"
                             : ex->reject_status == 408 ? "the request did not arrive in time"
                                                        : "the request target is malformed";
        if (svc_res_problem(res, ex->reject_status, code, detail) != SVC_OK)
            res->status = ex->reject_status;
        /* Whatever follows on this connection cannot be trusted to start
         * where this request ends (a body not read, a framing refused). */
        svc__discard(svc_res_header_set(res, "Connection", "close"));
        return;
    }
    switch ((svc__match)ex->match) {
    case SVC__MATCH_FOUND:
        req->route->fn(req, res, req->route->ud);
        if (svc_req_remaining_ms(req) < 0) {
            int64_t took = (svc_clock_mono_ns(req->app->clock) - req->start_ns) / SVC__NS_PER_MS;
            svc_log_field f[] = {
                svc_log_field_str("route", req->route->pattern),
                svc_log_field_int("handler_timeout_ms", req->app->opts.handler_timeout_ms),
                svc_log_field_int("elapsed_ms", took),
            };
            svc_log_kv(SVC_LOG_WARN, "handler exceeded its deadline; answer replaced with 503",
                       f, SVC__ARRAY_LEN(f));
            if (ex->late_fn)
                ex->late_fn(req, res, ex->late_ud);
            svc__res_reset(res);
            if (svc_res_problem(res, 503, SVC_PROBLEM_TIMEOUT,
                                "the request took longer than the handler deadline") != SVC_OK)
                res->status = 503;
        } else if (res->status == 0) {
            res->status = svc__res_effective_status(res);
        }
        break;
    case SVC__MATCH_METHOD:
        if (svc_res_problem(res, 405, SVC_PROBLEM_METHOD_NOT_ALLOWED, NULL) != SVC_OK ||
            svc_res_header_set(res, "Allow", ex->allow) != SVC_OK)
            res->status = 405;
        break;
    case SVC__MATCH_NOT_FOUND:
    default:
        if (svc_res_problem(res, 404, SVC_PROBLEM_NOT_FOUND, NULL) != SVC_OK)
            res->status = 404;
        break;
    }
}

void svc_next(svc_chain *next)
{
    if (next->called)
        return;
    next->called = true;
    svc__exchange *ex = next->ex;
    const svc_app *app = ex->req.app;
    size_t idx = next->idx;
    /* requests rejected before the handler see only EARLY and OBSERVE */
    if (ex->reject_status)
        while (idx < app->nmws && app->mws[idx].stage > SVC_STAGE_OBSERVE)
            idx++;
    if (idx < app->nmws) {
        const svc__mw *mw = &app->mws[idx];
        svc_chain *inner = &ex->chains[idx + 1];
        inner->ex = ex;
        inner->idx = idx + 1;
        inner->called = false;
        ex->deepest_mw = idx;
        mw->fn(&ex->req, &ex->res, inner, mw->ud);
    } else {
        run_handler(ex);
    }
}

void svc_req_on_late_answer(svc_req *req, svc_late_answer_fn fn, void *ud)
{
    req->ex->late_fn = fn;
    req->ex->late_ud = ud;
}

void svc__chain_run(svc__exchange *ex)
{
    svc_chain *first = &ex->chains[0];
    first->ex = ex;
    first->idx = 0;
    first->called = false;
    svc_next(first);
    svc_res *res = &ex->res;
    if (!ex->handler_ran && res->status == 0 && res->body.len == 0) {
        /* A middleware returned without answering and without svc_next():
         * that is a bug in the middleware; say so instead of a blank 204. */
        const char *name = ex->req.app->mws[ex->deepest_mw].name;
        svc_log_field f[] = {svc_log_field_str("middleware", name)};
        svc_log_kv(SVC_LOG_ERROR, "middleware ended the request without an answer", f, 1);
        if (svc_res_problem(res, 500, SVC_PROBLEM_INTERNAL, NULL) != SVC_OK)
            res->status = 500;
    } else if (res->status == 0) {
        res->status = svc__res_effective_status(res);
    }
}
