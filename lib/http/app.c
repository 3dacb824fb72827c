/*
 * lib/http/app.c - svc_app: options, registration, the libmicrohttpd
 * server, body reading, graceful shutdown.
 *
 * One request through libmicrohttpd (all on one MHD worker thread):
 *
 *   uri_cb         exchange allocated, raw target copied, inflight++, the
 *                  read timeout starts (the request line is in, headers may
 *                  still be arriving)
 *   on_request #1  headers collected; a framing that could be read two ways
 *                  (framing_problem()) → 400 now, headers that took longer
 *                  than read_timeout → 408 now, Content-Length > max_body → 413 now
 *   on_request #k  body bytes appended; over max_body → 413, arriving after
 *                  start + read_timeout → 408
 *   on_request end route match, middleware chain, handler, response queued
 *   completed_cb   exchange freed, inflight--
 *   connection_cb  (closed) an exchange libmicrohttpd never reported
 *                  completed is freed, inflight--
 *
 * Rejections decided before the handler (400 bad target, 408, 413) still
 * pass through the EARLY and OBSERVE middleware (request id, access log,
 * metrics), never through the later stages, and close the connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "http/http_internal.h"
#include "svcinfra/config.h"
#include "core/opts.h"
#include "svcinfra/log.h"
#include "svcinfra/metrics.h"

/* ---- options --------------------------------------------------------------------- */

/* svc_app_opts_default() is in defaults.c (also built without libmicrohttpd). */

extern const svc__opt_table svc__http_opts_table;

/* Applies http.* keys; string results are borrowed from `c`. */
static svc_status apply_config(svc_app_opts *o, const svc_config *c)
{
    svc__opts_hold hold = {0}; /* the table has no lists: nothing is held */
    svc_status st = svc__opts_apply(&svc__http_opts_table, c, o, &hold);
    if (st)
        svc_logf(SVC_LOG_ERROR, "%s", svc_last_errmsg());
    return st;
}

static svc_status validate(const svc_app_opts *o)
{
    const char *bad = NULL;
    if (o->bind_addr == NULL || !*o->bind_addr)
        bad = "bind_addr is empty";
    else if (o->max_body_bytes == 0)
        bad = "max_body_bytes is 0";
    else if (o->read_timeout_ms == 0)
        bad = "read_timeout_ms is 0";
    else if (o->handler_timeout_ms == 0)
        bad = "handler_timeout_ms is 0";
    else if (o->max_connections == 0)
        bad = "max_connections is 0";
    else if (o->threads > 1024)
        bad = "threads > 1024";
    if (bad) {
        svc_logf(SVC_LOG_ERROR, "http: invalid option: %s", bad);
        return svc__fail_new(SVC_EINVAL, "http: invalid option: %s", bad);
    }
    return SVC_OK;
}

/* ---- lifetime -------------------------------------------------------------------- */

/* The configuration an app keeps: the one given (a reference), else the file
 * SVC_CONFIG_FILE names with the environment over it, else the environment. */
static svc_status app_config(const svc_app_opts *opts, svc_config **out)
{
    if (opts && opts->config) {
        *out = svc_config_ref(opts->config);
        return SVC_OK;
    }
    char eb[256] = "";
    const char *file = svc__getenv("SVC_CONFIG_FILE");
    svc_status st = svc_config_load(out, file, eb, sizeof eb);
    if (st) {
        svc_logf(SVC_LOG_ERROR, "http: reading the configuration failed: %s", eb);
        return svc__fail_new(st, "http: reading the configuration failed: %s", eb);
    }
    return SVC_OK;
}

svc_status svc_app_new(svc_app **out, const svc_app_opts *opts)
{
    if (!out)
        return svc__fail_new(SVC_EINVAL, "http: svc_app_new: out is NULL");
    *out = NULL;
    svc__fail_new_clear();
    svc_app_opts o;
    svc_config *cfg = NULL;
    if (opts)
        o = *opts;
    else
        svc_app_opts_default(&o);
    svc_status st = app_config(opts, &cfg);
    if (st)
        return st;
    /* explicit options are used as given, NULL options are read from the
     * configuration; a configuration given in the options overrides them */
    if (o.bind_addr == NULL)
        o.bind_addr = "127.0.0.1";
    if (o.problem_type_base == NULL)
        o.problem_type_base = SVC__PROBLEM_ABOUT_BLANK;
    if (!opts || opts->config)
        st = apply_config(&o, cfg);
    if (st == SVC_OK)
        st = validate(&o);
    if (st != SVC_OK) {
        svc_config_free(cfg);
        return st; /* svc_last_errmsg() says which */
    }
    svc_app *app = svc__calloc(1, sizeof *app);
    if (app == NULL) {
        svc_config_free(cfg);
        return svc__fail_new(SVC_ENOMEM, "http: out of memory");
    }
    app->config = cfg;
    app->bind_addr = svc__strdup(o.bind_addr);
    size_t bl = strlen(o.problem_type_base);
    bool slash = bl && o.problem_type_base[bl - 1] != '/' &&
                 strcmp(o.problem_type_base, SVC__PROBLEM_ABOUT_BLANK) != 0;
    app->problem_type_base = svc__asprintf("%s%s", o.problem_type_base, slash ? "/" : "");
    app->opts = o;
    app->opts.bind_addr = app->bind_addr;
    app->opts.problem_type_base = app->problem_type_base;
    app->opts.config = cfg;
    app->clock = svc__clock_or_system(o.clock);
    app->metrics = svc_metrics_ref(o.metrics);
    app->stop_pipe[0] = app->stop_pipe[1] = -1;
    svc__err_init(&app->err);
    if (app->bind_addr == NULL || app->problem_type_base == NULL) {
        svc_app_free(app);
        return svc__fail_new(SVC_ENOMEM, "http: out of memory");
    }
    if (pipe2(app->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        svc_app_free(app);
        return svc__fail_new(SVC_EIO, "http: pipe2: %s", strerror(errno));
    }
    if (o.default_middleware) {
        st = svc__mw_install_request_id(app);
        if (st == SVC_OK && o.access_log)
            st = svc__mw_install_access_log(app);
#if SVC__HTTP_HAVE_SECURITY
        if (st == SVC_OK)
            st = svc__security_install_default(app);
#endif
        if (st == SVC_OK)
            st = svc__mw_install_maintenance(app);
        if (st != SVC_OK) {
            svc_app_free(app);
            return svc__fail_new(st, "http: installing the default middleware: %s",
                                 svc_strerror(st));
        }
    }
    svc__fail_new_clear();
    *out = app;
    return SVC_OK;
}

void svc_app_free(svc_app *app)
{
    if (app == NULL)
        return;
    (void)svc_app_shutdown(app);
    for (size_t i = app->non_free; i-- > 0;)
        app->on_free[i].fn(app->on_free[i].ud);
    svc_free(app->on_free);
    svc__app_hooks_free(app);
    for (size_t i = 0; i < app->nroutes; i++)
        svc__route_clear(&app->routes[i]);
    svc_free(app->routes);
    for (size_t i = 0; i < app->nmws; i++)
        svc_free(app->mws[i].name);
    svc_free(app->mws);
    for (int i = 0; i < 2; i++)
        if (app->stop_pipe[i] >= 0)
            close(app->stop_pipe[i]);
    svc__err_destroy(&app->err);
    svc_free(app->bind_addr);
    svc_free(app->problem_type_base);
    svc_metrics_free(app->metrics); /* the app's reference (NULL: the default) */
    svc_free(app);
}

const char *svc_app_errmsg(svc_app *app) { return app ? svc__err_get(&app->err) : ""; }

/* ---- registration ---------------------------------------------------------------- */

static bool same_shape(const svc__route *a, const svc__route *b)
{
    if (a->nsegs != b->nsegs || strcmp(a->method, b->method) != 0)
        return false;
    for (size_t i = 0; i < a->nsegs; i++) {
        if (a->segs[i].kind != b->segs[i].kind)
            return false;
        if (a->segs[i].kind == SVC__SEG_LIT && strcmp(a->segs[i].text, b->segs[i].text) != 0)
            return false;
    }
    return true;
}

svc_status svc_app_route(svc_app *app, const char *method, const char *pattern,
                         svc_handler_fn fn, void *ud)
{
    if (atomic_load(&app->started))
        return svc__err_set(&app->err, SVC_EBUSY, "route %s %s: the app is started", method,
                            pattern);
    svc__route r;
    svc_status st = svc__route_compile(&r, method, pattern);
    if (st != SVC_OK)
        return svc__err_set(&app->err, st, "route %s %s: %s", method, pattern,
                            st == SVC_EINVAL ? "malformed method or pattern" : svc_strerror(st));
    for (size_t i = 0; i < app->nroutes; i++)
        if (same_shape(&app->routes[i], &r)) {
            svc__route_clear(&r);
            return svc__err_set(&app->err, SVC_EEXIST, "route %s %s: already registered as %s",
                                method, pattern, app->routes[i].pattern);
        }
    if (app->nroutes == app->routes_cap) {
        size_t cap = app->routes_cap ? app->routes_cap * 2 : 16;
        svc__route *n = svc_realloc(app->routes, cap * sizeof *n);
        if (n == NULL) {
            svc__route_clear(&r);
            return SVC_ENOMEM;
        }
        app->routes = n;
        app->routes_cap = cap;
    }
    r.fn = fn;
    r.ud = ud;
    app->routes[app->nroutes++] = r;
    return SVC_OK;
}

svc_status svc_app_use_stage(svc_app *app, svc_stage stage, const char *name,
                             svc_middleware_fn fn, void *ud)
{
    if (atomic_load(&app->started))
        return svc__err_set(&app->err, SVC_EBUSY, "middleware %s: the app is started", name);
    for (size_t i = 0; i < app->nmws; i++)
        if (strcmp(app->mws[i].name, name) == 0)
            return svc__err_set(&app->err, SVC_EEXIST, "middleware %s: name already used", name);
    if (app->nmws >= SVC__HTTP_MAX_MW)
        return svc__err_set(&app->err, SVC_ERANGE, "middleware %s: more than %d", name,
                            SVC__HTTP_MAX_MW);
    svc__mw *n = svc_realloc(app->mws, (app->nmws + 1) * sizeof *n);
    if (n == NULL)
        return SVC_ENOMEM;
    app->mws = n;
    char *nm = svc__strdup(name);
    if (nm == NULL)
        return SVC_ENOMEM;
    /* keep the array in chain order: after every middleware of a stage <= this one */
    size_t pos = app->nmws;
    while (pos > 0 && app->mws[pos - 1].stage > stage)
        pos--;
    memmove(&app->mws[pos + 1], &app->mws[pos], (app->nmws - pos) * sizeof *n);
    app->mws[pos] = (svc__mw){stage, app->mw_seq++, nm, fn, ud};
    app->nmws++;
    return SVC_OK;
}

svc_status svc_app_use(svc_app *app, const char *name, svc_middleware_fn fn, void *ud)
{
    return svc_app_use_stage(app, SVC_STAGE_APP, name, fn, ud);
}

size_t svc_app_middleware_names(const svc_app *app, char *buf, size_t buflen)
{
    size_t need = 0;
    for (size_t i = 0; i < app->nmws; i++) {
        const char *nm = app->mws[i].name;
        size_t l = strlen(nm);
        if (i) {
            if (need + 1 < buflen)
                buf[need] = ',';
            need++;
        }
        for (size_t k = 0; k < l; k++, need++)
            if (need + 1 < buflen)
                buf[need] = nm[k];
    }
    if (buflen)
        buf[need < buflen ? need : buflen - 1] = '\0';
    return need;
}

svc_status svc_app_on_free(svc_app *app, void (*fn)(void *ud), void *ud)
{
    if (app->non_free == app->on_free_cap) {
        size_t cap = app->on_free_cap ? app->on_free_cap * 2 : 8;
        svc__on_free *n = svc_realloc(app->on_free, cap * sizeof *n);
        if (n == NULL)
            return SVC_ENOMEM;
        app->on_free = n;
        app->on_free_cap = cap;
    }
    app->on_free[app->non_free++] = (svc__on_free){fn, ud};
    return SVC_OK;
}

/* ---- serving ---------------------------------------------------------------------- */

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    (void)value_size;
    return svc__req_add_header(cls, key, key_size, value) == SVC_OK ? MHD_YES : MHD_NO;
}

static void client_addr(svc_req *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ci->client_addr == NULL)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        /* dotted quad by hand: inet_ntop formats IPv4 with sprintf */
        const unsigned char *a =
            (const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
        char *p = req->client;
        for (int i = 0; i < 4; i++) {
            unsigned v = a[i];
            if (v >= 100)
                *p++ = (char)('0' + v / 100);
            if (v >= 10)
                *p++ = (char)('0' + v / 10 % 10);
            *p++ = (char)('0' + v % 10);
            *p++ = i < 3 ? '.' : '\0';
        }
    } else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                  req->client, sizeof req->client);
}

/* The read timeout counts from the request line (uri_cb), so headers sent
 * slowly count against it as a slow body does. */
static bool past_read_deadline(const svc__exchange *ex, int64_t now)
{
    return now - ex->req.start_ns > (int64_t)ex->req.app->opts.read_timeout_ms * SVC__NS_PER_MS;
}

/* NULL unless the request could be read two ways (request smuggling, RFC
 * 9112 6.1 and 6.3); else the problem's detail. Refused: a header name
 * that is not a token ("Transfer-Encoding :" is chunked framing to some
 * proxies, an unknown field to libmicrohttpd), more than one Content-Length
 * field (libmicrohttpd reads the first, a proxy may read the last; RFC 9112
 * lets a recipient merge equal values, refusing them too is simpler and
 * safe), Transfer-Encoding next to Content-Length, more than one
 * Transfer-Encoding field, or a coding other than a lone "chunked".
 * libmicrohttpd 0.9.75 would pick one reading and serve what follows as the
 * next request; a proxy in front may have picked the other. One pass over
 * the headers, no allocation; *cl receives the Content-Length value or NULL. */
static const char *framing_problem(const svc_req *req, const char **cl)
{
    const char *te = NULL;
    size_t ncl = 0, nte = 0;
    *cl = NULL;
    for (size_t i = 0; i < req->nhdrs; i++) {
        const svc__hdr *h = &req->hdrs[i];
        if (!svc__header_name_ok(h->name))
            return "a request header name is not a token";
        if (h->nlen == 14 && strcasecmp(h->name, "Content-Length") == 0) {
            *cl = h->value;
            ncl++;
        } else if (h->nlen == 17 && strcasecmp(h->name, "Transfer-Encoding") == 0) {
            te = h->value;
            nte++;
        }
    }
    if (ncl > 1)
        return "the request has more than one Content-Length";
    if (te == NULL)
        return NULL;
    static const char *const te_bad = "the request has both Transfer-Encoding and "
                                      "Content-Length, or a Transfer-Encoding other than chunked";
    if (ncl || nte > 1)
        return te_bad;
    while (*te == ' ' || *te == '\t')
        te++;
    size_t n = strlen(te);
    while (n && (te[n - 1] == ' ' || te[n - 1] == '\t'))
        n--;
    return n == 7 && strncasecmp(te, "chunked", 7) == 0 ? NULL : te_bad;
}

/* Hands the buffered response to libmicrohttpd. The body is passed as
 * persistent memory: the exchange outlives the response (freed in
 * completed_cb, after the response was sent). */
static enum MHD_Result send_response(struct MHD_Connection *conn, svc__exchange *ex)
{
    svc_res *res = &ex->res;
    struct MHD_Response *r = MHD_create_response_from_buffer(
        res->body.len, res->body.len ? res->body.data : (void *)"", MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        return MHD_NO;
    for (size_t i = 0; i < res->nhdrs; i++) {
        const char *n = res->hdrs[i].name;
        size_t nl = res->hdrs[i].nlen;
        if ((nl == 14 && strcasecmp(n, "Content-Length") == 0) ||
            (nl == 17 && strcasecmp(n, "Transfer-Encoding") == 0))
            continue; /* framing is libmicrohttpd's */
        if (MHD_add_response_header(r, n, res->hdrs[i].value) != MHD_YES)
            svc_logf(SVC_LOG_WARN, "http: response header %s refused", n);
    }
    if (atomic_load(&ex->req.app->draining))
        (void)MHD_add_response_header(r, "Connection", "close");
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)svc__res_effective_status(res), r);
    MHD_destroy_response(r);
    if (ok == MHD_YES)
        ex->state = SVC__EX_ANSWERED;
    return ok;
}

/*
 * What each server thread is running, for the shutdown log: app->running
 * has a slot per server thread, which the thread finds through these
 * thread-locals (registered on its first request of a start; (app, gen)
 * tells a slot of an earlier start or another app apart). A request costs
 * two relaxed stores to the thread's own slot, no lock.
 */
static atomic_uint g_run_gen;
static _Thread_local const svc_app *tl_run_app;
static _Thread_local unsigned tl_run_gen;
static _Thread_local _Atomic(const svc__route *) *tl_run_slot;
/* stands for requests without a route (404, 405, rejections) */
static const svc__route unmatched_route = {.method = "-", .pattern = "<unmatched>"};

static _Atomic(const svc__route *) *running_slot(svc_app *app)
{
    if (tl_run_app != app || tl_run_gen != app->run_gen) {
        unsigned i = atomic_fetch_add(&app->running_next, 1);
        tl_run_app = app;
        tl_run_gen = app->run_gen;
        tl_run_slot = i < app->nrunning ? &app->running[i] : NULL;
    }
    return tl_run_slot;
}

/* "GET /a, POST /b/{id}": the distinct routes server threads are in now. */
static void running_routes(svc_app *app, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < app->nrunning; i++) {
        const svc__route *r = atomic_load_explicit(&app->running[i], memory_order_relaxed);
        bool seen = r == NULL;
        for (unsigned k = 0; k < i && !seen; k++)
            seen = atomic_load_explicit(&app->running[k], memory_order_relaxed) == r;
        if (seen || o + 1 >= len)
            continue;
        int n = snprintf(buf + o, len - o, "%s%s %s", o ? ", " : "", r->method, r->pattern);
        o = n < 0 ? o : (size_t)n >= len - o ? len - 1 : o + (size_t)n;
    }
}

/* Routes and runs the chain; `now` is the monotonic time of the caller's
 * last deadline check, where the handler deadline starts. */
static enum MHD_Result dispatch(struct MHD_Connection *conn, svc__exchange *ex, int64_t now)
{
    svc_req *req = &ex->req;
    if (ex->reject_status == 0)
        ex->match = svc__router_match(req->app, req, ex->allow, sizeof ex->allow);
    else
        ex->match = SVC__MATCH_NOT_FOUND;
    req->deadline_ns = now + (int64_t)req->app->opts.handler_timeout_ms * SVC__NS_PER_MS;
    req->end_ns = 0; /* a chain run again (a rejection answered late) reads its own end */
    _Atomic(const svc__route *) *slot = running_slot(req->app);
    if (slot)
        atomic_store_explicit(slot, req->route ? req->route : &unmatched_route,
                              memory_order_relaxed);
    svc__chain_run(ex);
    if (slot)
        atomic_store_explicit(slot, NULL, memory_order_relaxed);
#if SVC__HTTP_HAVE_SECURITY
    if (ex->reject_status) /* the chain skipped the SECURITY stage */
        svc__security_apply(req->app, &ex->res);
#endif
    return send_response(conn, ex);
}

/* A rejection before the handler. libmicrohttpd 0.9.75 accepts a response
 * only before the body is read or after all of it arrived: a rejection
 * decided on the headers is answered at once; one decided while the body
 * arrives is answered at its end, the rest of the body being discarded (a
 * sender still going after twice the read timeout is disconnected). */
static enum MHD_Result reject(struct MHD_Connection *conn, svc__exchange *ex, int status,
                              bool at_headers, int64_t now)
{
    ex->reject_status = status;
    ex->state = SVC__EX_REJECTED;
    svc__buf_free(&ex->req.body);
    if (at_headers && dispatch(conn, ex, now) == MHD_YES)
        return MHD_YES;
    ex->handler_ran = false;
    svc__res_reset(&ex->res);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    svc_app *app = cls;
    svc__exchange *ex = *con_cls;
    if (ex == NULL) { /* no URI callback ran (should not happen): use the decoded url */
        ex = svc__exchange_new(app, url);
        if (ex == NULL)
            return MHD_NO;
        atomic_fetch_add(&app->inflight, 1);
        ex->req.start_ns = svc_clock_mono_ns(app->clock);
        *con_cls = ex;
    }
    svc_req *req = &ex->req;
    /* Read timeouts are checked against the cheap clock (they are seconds
     * long); the handler deadline, once the whole request is in, starts
     * from the precise one. */
    int64_t now = svc__clock_mono_coarse_ns(app->clock);

    if (ex->state == SVC__EX_NEW) {
        req->conn = conn;
        req->method = method;
        ex->state = SVC__EX_BODY;
        MHD_get_connection_values_n(conn, MHD_HEADER_KIND, collect_header, req);
        client_addr(req);
        if ((ex->reject_detail = svc__req_check(req, url, version)) != NULL) {
            req->path = req->raw_path ? req->raw_path : "/";
            return reject(conn, ex, 400, true, now);
        }
        const char *cl;
        if ((ex->reject_detail = framing_problem(req, &cl)) != NULL)
            return reject(conn, ex, 400, true, now);
        /* headers trickled in past the read timeout (slowloris): answered
         * now, before any body is read */
        if (past_read_deadline(ex, now))
            return reject(conn, ex, 408, true, now);
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno == 0 && end != cl && n > app->opts.max_body_bytes)
                return reject(conn, ex, 413, true, now);
        }
        return MHD_YES;
    }

    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (ex->state == SVC__EX_REJECTED) {
            /* discarding; a sender that keeps going twice the read timeout is cut off */
            if (now - req->start_ns > 2 * (int64_t)app->opts.read_timeout_ms * SVC__NS_PER_MS) {
                ex->cut_off = true; /* counted and logged by completed_cb */
                return MHD_NO;
            }
            return MHD_YES;
        }
        if (ex->state != SVC__EX_BODY)
            return MHD_YES;
        if (past_read_deadline(ex, now))
            return reject(conn, ex, 408, false, now);
        if (req->body.len + n > app->opts.max_body_bytes)
            return reject(conn, ex, 413, false, now);
        svc__buf_append(&req->body, upload_data, n);
        if (!svc__buf_ok(&req->body))
            return reject(conn, ex, 413, false, now);
        return MHD_YES;
    }

    /* the whole request is in */
    if (ex->state == SVC__EX_ANSWERED)
        return MHD_YES;
    now = svc_clock_mono_ns(app->clock);
    if (ex->state == SVC__EX_REJECTED) {
        svc__res_reset(&ex->res);
        return dispatch(conn, ex, now);
    }
    if (past_read_deadline(ex, now)) {
        ex->reject_status = 408;
        ex->state = SVC__EX_REJECTED;
    }
    return dispatch(conn, ex, now);
}

/*
 * Who frees an exchange. libmicrohttpd reports a request completed
 * (completed_cb) only when it got as far as the request; one it gives up on
 * while reading the headers (its per-connection pool exhausted: "Not enough
 * memory in pool", then 431 or nothing) is never reported, although the URI
 * callback already created its exchange and counted it in flight. So each
 * connection holds one pointer (its socket context, allocated when the
 * connection starts) to the exchange in progress:
 *
 *   connection  ──► slot ──► exchange      uri_cb sets the slot
 *   started          │                     completed_cb clears it, frees
 *                    └── closed: an exchange still in the slot is freed
 *
 * Both callbacks run on the connection's thread, so the slot needs no lock.
 */
static void release_exchange(svc_app *app, svc__exchange *ex)
{
    if (ex->conn_slot)
        *ex->conn_slot = NULL;
    svc__exchange_free(ex);
    atomic_fetch_sub(&app->inflight, 1);
}

static void connection_cb(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    svc_app *app = cls;
    (void)conn;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = svc__calloc(1, sizeof(svc__exchange *));
        return;
    }
    svc__exchange **slot = *socket_context;
    if (slot == NULL)
        return;
    if (*slot) /* the request was abandoned without a completion report */
        release_exchange(app, *slot);
    svc_free(slot);
    *socket_context = NULL;
}

static void *uri_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
    svc_app *app = cls;
    svc__exchange *ex = svc__exchange_new(app, uri);
    if (ex == NULL)
        return NULL;
    atomic_fetch_add(&app->inflight, 1);
    /* the request line has arrived; the headers may not have yet */
    ex->req.start_ns = svc_clock_mono_ns(app->clock);
    ex->mhd_uri = uri; /* where libmicrohttpd parsed it: svc__req_check() */
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    svc__exchange **slot = ci ? ci->socket_context : NULL;
    if (slot) {
        if (*slot) /* a previous request of the connection never completed */
            release_exchange(app, *slot);
        *slot = ex;
        ex->conn_slot = slot;
    }
    return ex;
}

static const char *termination_name(enum MHD_RequestTerminationCode toe)
{
    switch (toe) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK: return "completed";
    case MHD_REQUEST_TERMINATED_WITH_ERROR: return "error";
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED: return "timeout";
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN: return "shutdown";
    case MHD_REQUEST_TERMINATED_READ_ERROR: return "read_error";
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT: return "client_abort";
    default: return "other";
    }
}

/* A request that ends without an answer because its sender was too slow:
 * cut off mid-body at twice the read timeout (on_request returned MHD_NO),
 * or silent for libmicrohttpd's connection timeout. Nothing can be sent
 * then, so it is counted and logged instead. */
static void note_dropped(svc_app *app, svc__exchange *ex, enum MHD_RequestTerminationCode toe)
{
    if (ex->state == SVC__EX_ANSWERED || ex->state == SVC__EX_NEW)
        return;
    if (!ex->cut_off && toe != MHD_REQUEST_TERMINATED_TIMEOUT_REACHED)
        return;
    static const char *const reason[] = {"read_timeout"};
    svc_counter_inc(app->dropped, reason);
    svc_req *req = &ex->req;
    /* the line carries the request id as the request's own lines do */
    svc_log_context saved = {0};
    const svc_log_context *cur = svc_log_context_get();
    bool had = cur != NULL;
    if (had)
        saved = *cur;
    svc_log_context ctx = {0};
    ctx.request_id = svc_req_id(req);
    ctx.tenant = req->tenant;
    ctx.trace_id = req->trace_id[0] ? req->trace_id : NULL;
    svc_log_context_set(&ctx);
    svc_log_field f[] = {
        svc_log_field_str("reason", "read_timeout"),
        svc_log_field_str("client", req->client),
        svc_log_field_str("method", req->method ? req->method : ""),
        svc_log_field_str("path", req->path ? req->path : ""),
        svc_log_field_str("termination", termination_name(toe)),
        svc_log_field_int("read_timeout_ms", app->opts.read_timeout_ms),
        svc_log_field_int("elapsed_ms",
                          (svc_clock_mono_ns(app->clock) - req->start_ns) / SVC__NS_PER_MS),
    };
    svc_log_kv(SVC_LOG_WARN, "request dropped without an answer: body too slow", f,
               SVC__ARRAY_LEN(f));
    svc_log_context_set(had ? &saved : NULL);
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    svc_app *app = cls;
    (void)conn;
    svc__exchange *ex = *con_cls;
    if (ex == NULL)
        return;
    *con_cls = NULL;
    note_dropped(app, ex, toe);
    release_exchange(app, ex);
}

SVC_PRINTF(2, 0) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t l = strlen(buf);
    while (l && (buf[l - 1] == '\n' || buf[l - 1] == '\r'))
        buf[--l] = '\0';
    svc_logf(SVC_LOG_WARN, "http server: %s", buf);
}

static void free_running(svc_app *app)
{
    svc_free((void *)app->running);
    app->running = NULL;
    app->nrunning = 0;
}

svc_status svc_app_start(svc_app *app)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&app->started, &expected, 1))
        return svc__err_set(&app->err, SVC_EBUSY, "already started");
    svc_status hst = svc__app_hooks_start(app); /* workers, relays: before the first request */
    if (hst) {
        atomic_store(&app->started, 0);
        return hst;
    }

    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)app->opts.port);
    int gai = getaddrinfo(app->bind_addr, port, &hints, &ai);
    if (gai != 0 || ai == NULL) {
        svc__app_hooks_stop(app);
        atomic_store(&app->started, 0);
        return svc__err_set(&app->err, SVC_EIO, "cannot resolve bind address %s: %s",
                            app->bind_addr, gai_strerror(gai));
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL : MHD_USE_POLL;
    if (ai->ai_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
        if (strcmp(app->bind_addr, "::") == 0)
            flags |= MHD_USE_DUAL_STACK;
    }
    unsigned threads = app->opts.threads;
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (unsigned)n : 1;
    }
    if (app->dropped == NULL) {
        static const char *const labels[] = {"reason", NULL};
        svc_metrics *m = svc_app_metrics(app);
        if (svc_metrics_counter(m, "http_server_requests_dropped_total",
                                "Requests dropped without an answer, by reason", labels,
                                &app->dropped) != SVC_OK)
            svc_logf(SVC_LOG_WARN, "http: cannot register http_server_requests_dropped_total: %s",
                     svc_metrics_errmsg(m));
    }
    unsigned timeout_s = (app->opts.read_timeout_ms + 999) / 1000;
    atomic_store(&app->inflight, 0);
    /* a slot per server thread (a pool of `threads`, or the one internal
     * thread), one spare; without them shutdown names no route */
    app->nrunning = threads + 1;
    app->running = svc__calloc(app->nrunning, sizeof *app->running);
    if (app->running == NULL)
        app->nrunning = 0;
    atomic_store(&app->running_next, 0);
    app->run_gen = atomic_fetch_add(&g_run_gen, 1) + 1;
    app->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, app,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, app, /* first: later options may log */
        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        /* one thread: no pool (MHD warns about a pool of 1); repeat a harmless option */
        threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_CONNECTION_LIMIT,
        threads > 1 ? threads : app->opts.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout_s ? timeout_s : 1u,
        MHD_OPTION_CONNECTION_LIMIT, app->opts.max_connections,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
        MHD_OPTION_URI_LOG_CALLBACK, uri_cb, app,
        MHD_OPTION_NOTIFY_COMPLETED, completed_cb, app,
        MHD_OPTION_NOTIFY_CONNECTION, connection_cb, app,
        MHD_OPTION_END);
    freeaddrinfo(ai);
    if (app->daemon == NULL) {
        free_running(app);
        svc__app_hooks_stop(app);
        atomic_store(&app->started, 0);
        return svc__err_set(&app->err, SVC_EIO, "cannot listen on %s port %u", app->bind_addr,
                            (unsigned)app->opts.port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(app->daemon, MHD_DAEMON_INFO_BIND_PORT);
    unsigned bound = di ? di->port : app->opts.port;
    atomic_store(&app->port, bound);
    svc_log_field f[] = {svc_log_field_str("bind", app->bind_addr),
                         svc_log_field_int("port", bound),
                         svc_log_field_int("threads", threads)};
    svc_log_kv(SVC_LOG_INFO, "http server listening", f, SVC__ARRAY_LEN(f));
    return SVC_OK;
}

/* Any thread: `port` is atomic, and 0 whenever no daemon serves (the
 * daemon pointer itself belongs to the thread that starts and stops). */
uint16_t svc_app_port(const svc_app *app) { return (uint16_t)atomic_load(&app->port); }

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Readiness checks hold the caller's `ud`: the caller may free it once the
 * app is shut down, so wait for them (the server is stopped: none starts). */
static void wait_checks(svc_app *app)
{
#if SVC__HTTP_HAVE_PROBES
    svc__probes_wait(app);
#else
    (void)app;
#endif
}

svc_status svc_app_shutdown(svc_app *app)
{
    if (app->daemon == NULL) {
        wait_checks(app);
        return SVC_OK;
    }
    atomic_store(&app->draining, 1);
    atomic_store(&app->port, 0); /* no longer accepting */
    MHD_socket lfd = MHD_quiesce_daemon(app->daemon);
    if (lfd != MHD_INVALID_SOCKET)
        close(lfd); /* new connections are refused from here on */
    int64_t grace_ns = (int64_t)app->opts.shutdown_grace_ms * SVC__NS_PER_MS;
    int64_t end = svc_clock_mono_ns(app->clock) + grace_ns;
    /* bounded twice: by the (possibly manual) clock and by real sleeps */
    long max_iter = (long)(app->opts.shutdown_grace_ms / 5) + 1;
    for (long i = 0; i < max_iter && atomic_load(&app->inflight) > 0 &&
                     svc_clock_mono_ns(app->clock) < end;
         i++)
        sleep_ms(5);
    long left = atomic_load(&app->inflight);
    char routes[400] = "";
    if (left > 0) {
        /* A handler thread cannot be cancelled safely: stopping the server
         * closes the connections and then waits for each handler to return;
         * what they answer is never sent. Say which ones hold it up. */
        running_routes(app, routes, sizeof routes);
        svc_log_field f[] = {svc_log_field_int("in_flight", left),
                             svc_log_field_str("routes", routes),
                             svc_log_field_int("shutdown_grace_ms", app->opts.shutdown_grace_ms)};
        svc_log_kv(SVC_LOG_WARN,
                   "http: requests still running at the end of the shutdown grace; their "
                   "connections are closed and shutdown waits for their handlers to return "
                   "(their answers are not sent)",
                   f, SVC__ARRAY_LEN(f)); /* a warning is written out at once */
    }
    MHD_stop_daemon(app->daemon);
    app->daemon = NULL;
    free_running(app);
    wait_checks(app);
    svc__app_hooks_stop(app); /* after the last request: workers, relays */
    atomic_store(&app->draining, 0);
    atomic_store(&app->started, 0);
    if (left > 0)
        return svc__err_set(&app->err, SVC_ETIMEDOUT,
                            "%ld request(s) still running after %u ms (handlers in: %s); their "
                            "answers were not sent",
                            left, app->opts.shutdown_grace_ms, routes[0] ? routes : "none");
    svc_logf(SVC_LOG_INFO, "http server stopped");
    svc_log_flush(); /* a stopping service writes out its buffered lines */
    return SVC_OK;
}

/* ---- run / stop ------------------------------------------------------------------- */

static atomic_int g_signal_fd = -1;

static void on_signal(int sig)
{
    (void)sig;
    int fd = atomic_load(&g_signal_fd);
    if (fd >= 0) {
        int saved = errno;
        char c = 's';
        ssize_t w = write(fd, &c, 1);
        (void)w;
        errno = saved;
    }
}

void svc_app_stop(svc_app *app)
{
    atomic_store(&app->stop_requested, 1);
    if (app->stop_pipe[1] >= 0) {
        char c = 'x';
        ssize_t w = write(app->stop_pipe[1], &c, 1);
        (void)w;
    }
}

/* Reads every byte waiting in the stop pipe (non-blocking). */
static void drain_stop_pipe(svc_app *app)
{
    char buf[64];
    while (read(app->stop_pipe[0], buf, sizeof buf) > 0) {
    }
}

svc_status svc_app_run(svc_app *app)
{
    svc_status st;
    if (!atomic_load(&app->started) && (st = svc_app_start(app)) != SVC_OK)
        return st;
    int expected = -1;
    bool signals = atomic_compare_exchange_strong(&g_signal_fd, &expected, app->stop_pipe[1]);
    struct sigaction sa, old_term, old_int;
    if (signals) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, &old_term);
        sigaction(SIGINT, &sa, &old_int);
    } else {
        svc_logf(SVC_LOG_WARN, "http: another app owns SIGTERM/SIGINT; use svc_app_stop()");
    }
    while (!atomic_load(&app->stop_requested)) {
        struct pollfd p = {app->stop_pipe[0], POLLIN, 0};
        int r = poll(&p, 1, 1000);
        if (r > 0)
            break;
    }
    if (signals) {
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGINT, &old_int, NULL);
        atomic_store(&g_signal_fd, -1);
    }
    svc_logf(SVC_LOG_INFO, "http: shutting down");
    st = svc_app_shutdown(app);
    /* Consume this run's stop: the byte of a svc_app_stop() that came before
     * svc_app_run() (the loop above never polled), or of a signal, must not
     * stop the next run at once. */
    drain_stop_pipe(app);
    atomic_store(&app->stop_requested, 0);
    return st;
}

void svc_app_set_maintenance(svc_app *app, int on, unsigned retry_after_s)
{
    atomic_store(&app->retry_after_s, retry_after_s);
    atomic_store(&app->maintenance, on ? 1 : 0);
}

struct svc_metrics *svc_app_metrics(const svc_app *app)
{
    return app->metrics ? app->metrics : svc_metrics_default();
}

const svc_clock *svc_app_clock(const svc_app *app) { return app->clock; }

unsigned svc_app_handler_timeout_ms(const svc_app *app) { return app->opts.handler_timeout_ms; }
