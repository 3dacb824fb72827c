/*
 * svcinfra/http.h - svc_app: the HTTP server core (on libmicrohttpd) and its
 * operations surface.
 *
 *   libmicrohttpd thread
 *     ─► read body (max_body_bytes → 413, read_timeout_ms → 408)
 *     ─► router match (the route template is kept for logs and metric labels)
 *     ─► middleware chain, onion style, ordered by stage then registration:
 *          EARLY     request id / traceparent
 *          OBSERVE   access log, metrics
 *          SECURITY  security headers, CORS, maintenance mode
 *          TENANT    tenant resolution
 *          LIMIT     rate limiting
 *          IDEMPOTENCY
 *          APP       the application's own middleware (svc_app_use)
 *     ─► handler (or the 404 / 405 problem)
 *     ─► response buffered, headers kept as a list, sent
 *
 * Errors leave as RFC 9457 application/problem+json bodies with a stable
 * `code` from svc_problem_code.
 *
 * Thread safety: configure an app (routes, middleware, add_* calls) from
 * one thread before svc_app_start(); after that the configuration is
 * read-only. Handlers and middleware run concurrently on the server's worker
 * threads, each request on one thread from start to end; an svc_req and
 * its svc_res belong to that thread and must not be used after the handler
 * returns. svc_app_stop() may be called from any thread or signal handler.
 *
 * When the library was built without libmicrohttpd (see
 * svc_feature_supported(SVC_FEATURE_HTTP)), svc_app_new() returns
 * SVC_ENOTSUP.
 */
#ifndef SVCINFRA_HTTP_H
#define SVCINFRA_HTTP_H

#include <jansson.h>

#include "common.h"
#include "status.h"
#include "clock.h"

SVC_BEGIN_DECLS

typedef struct svc_app svc_app;
typedef struct svc_req svc_req;
typedef struct svc_res svc_res;
typedef struct svc_chain svc_chain;
struct svc_metrics;
struct svc_config;

/* ------------------------------------------------------------------------
 * Application
 * ---------------------------------------------------------------------- */

typedef struct svc_app_opts {
    const char *bind_addr;          /* "127.0.0.1"; "0.0.0.0" or "::" for all */
    uint16_t port;                  /* 8080; 0 picks a free port (svc_app_port) */
    unsigned threads;               /* 0: one per CPU */
    size_t max_body_bytes;          /* 1 MiB; larger bodies (also chunked) → 413 */
    unsigned read_timeout_ms;       /* 30000: the whole request, headers and body, counted
                                       from its request line, must arrive in time → 408;
                                       also the idle keep-alive timeout */
    unsigned handler_timeout_ms;    /* 30000: handler deadline (see svc_req_remaining_ms) */
    unsigned shutdown_grace_ms;     /* 10000: in-flight requests get this long on shutdown */
    unsigned max_connections;       /* 1024 */
    int default_middleware;         /* 1: request id, access log, security headers and
                                       maintenance mode are installed by svc_app_new() */
    int access_log;                 /* 1: one JSON line per request (with default_middleware) */
    const char *problem_type_base;  /* "about:blank": every `type` is about:blank and
                                       `code` tells problems apart (RFC 9457 4.2.1);
                                       else `type` is this base (absolute or relative,
                                       a '/' added when missing) + lower-case code */
    struct svc_metrics *metrics;    /* NULL: svc_metrics_default(); else the app keeps a
                                       reference (svc_metrics_ref()) until it is freed */
    const struct svc_config *config;/* NULL: the app keeps the YAML file named by
                                       SVC_CONFIG_FILE (if set) under the SVC_*
                                       environment, for svc_add_*(app, NULL), and these
                                       explicit fields are used as given; non-NULL:
                                       http.* keys override these fields
                                       (docs/configuration.md lists them). The app keeps a
                                       reference (svc_app_config()) */
    const svc_clock *clock;         /* NULL: svc_clock_system() */
    int trace_response;             /* 0: 1 adds the W3C `traceresponse` header
                                       (00-<trace id>-<this server's span id>-<flags>)
                                       to every answer (with default_middleware) */
    void *reserved[7];              /* zero; room to grow */
} svc_app_opts;

/* Fills `opts` with the defaults written beside each field. */
SVC_EXPORT void svc_app_opts_default(svc_app_opts *opts) SVC_NONNULL(1);

/* Creates an app (new; release with svc_app_free()). `opts` NULL means all
 * defaults, overridden by the configuration: the YAML file SVC_CONFIG_FILE
 * names (when set) and the SVC_* environment over it (SVC_HTTP_PORT,
 * SVC_HTTP_BIND, SVC_HTTP_THREADS, SVC_HTTP_MAX_BODY, ...).
 * Returns SVC_EINVAL for a bad option or NULL `out`; SVC_ECONFIG/SVC_ERANGE
 * for a bad configuration value (SVC_EIO/SVC_EPARSE for a file that cannot
 * be read or parsed); SVC_ENOMEM;
 * SVC_ENOTSUP when built without libmicrohttpd; svc_last_errmsg() says why
 * (also logged at error level). */
SVC_EXPORT SVC_NODISCARD svc_status svc_app_new(svc_app **out, const svc_app_opts *opts);

/* Stops the server if it runs (graceful, see svc_app_shutdown()), waits for
 * readiness checks still running (see svc_app_add_check()) and frees
 * everything. svc_app_free(NULL) is a no-op. */
SVC_EXPORT void svc_app_free(svc_app *app);

/* Detail of the app's most recent failure ("" when none). Borrowed, valid
 * on the calling thread until its next call. */
SVC_EXPORT const char *svc_app_errmsg(svc_app *app) SVC_NONNULL(1);

/* A request handler. It answers through `res` (svc_res_json(), ...). A
 * handler that sets nothing answers 204. */
typedef void (*svc_handler_fn)(svc_req *req, svc_res *res, void *ud);

/* Registers `fn` for `method` ("GET", "POST", ...; "*" for any) and
 * `pattern`: literal segments and `{name}` parameters, e.g. "/cars/{id}";
 * a last segment `{name...}` takes the rest of the path. Literal segments
 * win over parameters. GET routes also answer HEAD. Returns SVC_EINVAL for
 * a malformed pattern or method, SVC_EEXIST for a duplicate method+pattern,
 * SVC_EBUSY once the app is started. */
SVC_EXPORT SVC_NODISCARD svc_status svc_app_route(svc_app *app, const char *method,
                                                  const char *pattern, svc_handler_fn fn,
                                                  void *ud) SVC_NONNULL(1, 2, 3, 4);

/* Middleware: called with the request, the response and the rest of the
 * chain. It either answers (sets a status/body on `res`) and returns, or
 * calls svc_next(next) to run the rest of the chain and the handler, and
 * may then look at or change the response. */
typedef void (*svc_middleware_fn)(svc_req *req, svc_res *res, svc_chain *next, void *ud);

/* Runs the rest of the chain (the next middleware, finally the handler). */
SVC_EXPORT void svc_next(svc_chain *next) SVC_NONNULL(1);

typedef enum svc_stage {
    SVC_STAGE_EARLY = 100,
    SVC_STAGE_OBSERVE = 200,
    SVC_STAGE_SECURITY = 300,
    SVC_STAGE_TENANT = 400,
    SVC_STAGE_LIMIT = 500,
    SVC_STAGE_IDEMPOTENCY = 600,
    SVC_STAGE_APP = 700
} svc_stage;

/* Appends middleware `fn` to `stage` (within a stage, registration order).
 * `name` (copied) names it in logs and svc_app_middleware_names(). Returns
 * SVC_EEXIST for a name already used, SVC_EBUSY once started. */
SVC_EXPORT SVC_NODISCARD svc_status svc_app_use_stage(svc_app *app, svc_stage stage,
                                                      const char *name, svc_middleware_fn fn,
                                                      void *ud) SVC_NONNULL(1, 3, 4);
/* svc_app_use_stage(app, SVC_STAGE_APP, name, fn, ud). */
SVC_EXPORT SVC_NODISCARD svc_status svc_app_use(svc_app *app, const char *name,
                                                svc_middleware_fn fn, void *ud)
    SVC_NONNULL(1, 2, 3);

/* Writes the middleware names in chain order, comma-separated, into buf
 * (truncated to buflen). Returns the length it needed. */
SVC_EXPORT size_t svc_app_middleware_names(const svc_app *app, char *buf, size_t buflen)
    SVC_NONNULL(1);

/* Registers `fn(ud)` to run when the app is freed (for add_* modules that
 * own state). Runs in reverse order of registration. */
SVC_EXPORT SVC_NODISCARD svc_status svc_app_on_free(svc_app *app, void (*fn)(void *ud),
                                                    void *ud) SVC_NONNULL(1, 2);

/* Starts serving in background threads and returns. Returns SVC_EIO when
 * the address cannot be bound (detail in svc_app_errmsg()), SVC_EBUSY when
 * already started. */
SVC_EXPORT SVC_NODISCARD svc_status svc_app_start(svc_app *app) SVC_NONNULL(1);

/* The port the server listens on (useful with port 0); 0 before start and
 * once svc_app_shutdown() has begun. Any thread, also while another starts
 * or shuts the app down. */
SVC_EXPORT uint16_t svc_app_port(const svc_app *app) SVC_NONNULL(1);

/* Starts (when not started) and blocks until SIGTERM or SIGINT arrives or
 * svc_app_stop() is called, then shuts down gracefully. Installs handlers
 * for SIGTERM and SIGINT for its duration and restores the old ones. */
SVC_EXPORT SVC_NODISCARD svc_status svc_app_run(svc_app *app) SVC_NONNULL(1);

/* Asks svc_app_run() to return. Async-signal-safe; any thread. Called
 * before svc_app_run(), that run returns at once; the stop is consumed
 * when the run returns, so a later svc_app_run() is not affected. */
SVC_EXPORT void svc_app_stop(svc_app *app) SVC_NONNULL(1);

/* Graceful shutdown: stop accepting (new connections are refused, answers
 * carry Connection: close), let in-flight requests finish for up to
 * shutdown_grace_ms, then stop the server; then wait for readiness checks
 * still running (see svc_app_add_check()). A handler still running when
 * the grace ends cannot be cut off (a C thread cannot be cancelled
 * safely): the routes still running are logged at warn, their connections
 * are closed, and this call waits until those handlers return; their
 * answers are not sent. Handlers that honour svc_req_remaining_ms() bound
 * that wait. Returns SVC_ETIMEDOUT when requests were still in flight at
 * the end of the grace period (svc_app_errmsg() names the routes), else
 * SVC_OK. */
SVC_EXPORT svc_status svc_app_shutdown(svc_app *app) SVC_NONNULL(1);

/* Maintenance mode: while on, writes (POST, PUT, PATCH, DELETE) get 503
 * problem+json (code UNAVAILABLE) with Retry-After: retry_after_s; reads
 * and probes are served. Any thread, any time. */
SVC_EXPORT void svc_app_set_maintenance(svc_app *app, int on, unsigned retry_after_s)
    SVC_NONNULL(1);

SVC_EXPORT struct svc_metrics *svc_app_metrics(const svc_app *app) SVC_NONNULL(1);

/* The configuration the app keeps (see svc_app_opts.config): never NULL
 * for an app; NULL for a NULL app. Borrowed, valid while the app lives.
 * svc_add_<module>(app, NULL) reads the module's options from it. */
SVC_EXPORT const struct svc_config *svc_app_config(const svc_app *app);

/* Work that runs with the server, for modules and applications (a job
 * worker pool, an outbox relay). svc_app_start() calls each `start(ud)` in
 * registration order before it listens; a start that fails stops those
 * already started (their `stop`, in reverse) and svc_app_start() returns
 * its status. svc_app_shutdown() calls each started hook's `stop(ud)` in
 * reverse order once the last request has finished, so a handler never
 * sees its worker gone. Either function may be NULL (not both: SVC_EINVAL,
 * as for a NULL app). SVC_EBUSY once the app is started, SVC_ENOMEM. */
SVC_EXPORT SVC_NODISCARD svc_status svc_app_on_start(svc_app *app, svc_status (*start)(void *ud),
                                                     void (*stop)(void *ud), void *ud)
    SVC_NONNULL(1);

/* Hangs a handle on the app under `key` (copied), so wiring can leave what
 * it made where code finds it again (svc_app_jobs(app) reads "jobs"). On
 * success the app owns `ptr` (through `release`); on failure the caller
 * still does. SVC_EBUSY once the app is started.
 * When the app is freed, after the svc_app_on_free() callbacks, each
 * `release(ptr)` runs (reverse order; `release` may be NULL). SVC_EINVAL
 * for a NULL app, key or ptr or an empty key; SVC_EEXIST for a key in use;
 * SVC_ENOMEM. */
SVC_EXPORT SVC_NODISCARD svc_status svc_app_attach(svc_app *app, const char *key, void *ptr,
                                                   void (*release)(void *ptr))
    SVC_NONNULL(1, 2, 3);
/* The handle attached under `key`, NULL when none (or NULL app/key). */
SVC_EXPORT void *svc_app_attached(const svc_app *app, const char *key) SVC_NONNULL(1, 2);
SVC_EXPORT const svc_clock *svc_app_clock(const svc_app *app) SVC_NONNULL(1);

/* The handler deadline in milliseconds: the effective handler_timeout_ms,
 * after the `http.handler_timeout` key of opts->config (or, with NULL opts,
 * SVC_HTTP_HANDLER_TIMEOUT) was applied. Middleware that holds something
 * for the length of a request (a lease, a lock) sizes it from this. Never
 * changes after svc_app_new(); any thread. */
SVC_EXPORT unsigned svc_app_handler_timeout_ms(const svc_app *app) SVC_NONNULL(1);

/* ------------------------------------------------------------------------
 * Request (borrowed by handlers and middleware; strings valid until the
 * handler returns). Header names are case-insensitive; duplicates are kept.
 * ---------------------------------------------------------------------- */

SVC_EXPORT const char *svc_req_method(const svc_req *req) SVC_NONNULL(1);
/* The decoded path, without the query. */
SVC_EXPORT const char *svc_req_path(const svc_req *req) SVC_NONNULL(1);
/* The raw path as it arrived, percent-escapes kept, without the query: what
 * the router splits into segments before decoding each. Middleware that
 * matches paths (skip lists, scopes of keys) compares against this, never
 * svc_req_path(): "/api%2Fpublic" decodes to "/api/public" yet routes
 * elsewhere. Never NULL. */
SVC_EXPORT const char *svc_req_raw_path(const svc_req *req) SVC_NONNULL(1);
/* The raw query string without '?', "" when none. */
SVC_EXPORT const char *svc_req_query(const svc_req *req) SVC_NONNULL(1);
/* The first value of query parameter `name`, decoded; NULL when absent. */
SVC_EXPORT const char *svc_req_query_param(const svc_req *req, const char *name)
    SVC_NONNULL(1, 2);
/* Path parameter `name` of the matched route; NULL when absent. */
SVC_EXPORT const char *svc_req_param(const svc_req *req, const char *name) SVC_NONNULL(1, 2);
/* The matched route's template ("/cars/{id}"); NULL when no route matched. */
SVC_EXPORT const char *svc_req_route(const svc_req *req) SVC_NONNULL(1);
/* The first header `name`; NULL when absent. */
SVC_EXPORT const char *svc_req_header(const svc_req *req, const char *name) SVC_NONNULL(1, 2);
/* The `index`-th header called `name` (0-based); NULL past the end. */
SVC_EXPORT const char *svc_req_header_at(const svc_req *req, const char *name, size_t index)
    SVC_NONNULL(1, 2);
/* All headers in arrival order: count, and the i-th name/value. */
SVC_EXPORT size_t svc_req_header_count(const svc_req *req) SVC_NONNULL(1);
SVC_EXPORT int svc_req_header_nth(const svc_req *req, size_t i, const char **name,
                                  const char **value) SVC_NONNULL(1, 3, 4);
/* The body (NUL-terminated for convenience; `len` excludes the NUL). */
SVC_EXPORT const char *svc_req_body(const svc_req *req, size_t *len) SVC_NONNULL(1);
/* Parses the body as JSON into *out (new reference, json_decref()).
 * Returns SVC_EPARSE when the body is not JSON (and answers nothing). */
SVC_EXPORT SVC_NODISCARD svc_status svc_req_json(const svc_req *req, json_t **out)
    SVC_NONNULL(1, 2);
/* The request id (X-Request-Id echoed when valid, else generated). */
SVC_EXPORT const char *svc_req_id(const svc_req *req) SVC_NONNULL(1);
/* W3C trace context: the trace id (32 hex) from `traceparent` or new. */
SVC_EXPORT const char *svc_req_trace_id(const svc_req *req) SVC_NONNULL(1);
/* The peer address ("127.0.0.1", "::1"), without port. */
SVC_EXPORT const char *svc_req_client_addr(const svc_req *req) SVC_NONNULL(1);
/* The tenant of the request, NULL when none was resolved. */
SVC_EXPORT const char *svc_req_tenant(const svc_req *req) SVC_NONNULL(1);
/* Sets the tenant (copied). For tenant resolvers. */
SVC_EXPORT SVC_NODISCARD svc_status svc_req_set_tenant(svc_req *req, const char *tenant)
    SVC_NONNULL(1);
/* The authenticated principal (e.g. API key id), NULL when none. */
SVC_EXPORT const char *svc_req_principal(const svc_req *req) SVC_NONNULL(1);
SVC_EXPORT SVC_NODISCARD svc_status svc_req_set_principal(svc_req *req, const char *principal)
    SVC_NONNULL(1);
/* Per-request values for middleware: `free_fn` (may be NULL) runs on the
 * value when the request ends or the key is set again. */
SVC_EXPORT SVC_NODISCARD svc_status svc_req_set(svc_req *req, const char *key, void *value,
                                                void (*free_fn)(void *)) SVC_NONNULL(1, 2);
SVC_EXPORT void *svc_req_get(const svc_req *req, const char *key) SVC_NONNULL(1, 2);
/* Milliseconds left before the handler deadline (negative once past).
 * C cannot preempt a thread: handlers that wait on I/O should pass this to
 * their backend calls. A handler that returns past its deadline has its
 * answer replaced with 503 problem+json, code TIMEOUT. */
SVC_EXPORT int64_t svc_req_remaining_ms(const svc_req *req) SVC_NONNULL(1);
SVC_EXPORT svc_app *svc_req_app(const svc_req *req) SVC_NONNULL(1);

/* A late-answer hook: see svc_req_on_late_answer(). `res` holds the
 * handler's own answer (status 0 when it set none: 200 with a body, else
 * 204 would have been sent); read it, never change it. */
typedef void (*svc_late_answer_fn)(svc_req *req, const svc_res *res, void *ud);

/* Registers the request's late-answer hook; a second call replaces the
 * first, `fn` NULL removes it. When the handler returns past its deadline
 * (svc_req_remaining_ms() < 0), `fn(req, res, ud)` runs once, on the
 * request's thread, just before the handler's answer is replaced with 503
 * problem+json, code TIMEOUT; it does not run when the handler returned in
 * time, nor when no handler ran (404, 405, an answer from middleware). Use
 * it to act on the answer whose side effects happened (the idempotency
 * middleware stores it, so a retry gets that answer and not a second run).
 * The middleware that called this sees the 503 once svc_next() returns.
 * `ud` is borrowed and must live until the request ends (svc_req_set()
 * with a free function ties it to the request). Request thread only. */
SVC_EXPORT void svc_req_on_late_answer(svc_req *req, svc_late_answer_fn fn, void *ud)
    SVC_NONNULL(1);

/* ------------------------------------------------------------------------
 * Response (buffered until the chain returns)
 * ---------------------------------------------------------------------- */

SVC_EXPORT void svc_res_status(svc_res *res, int status) SVC_NONNULL(1);
/* The status set so far, 0 when none. */
SVC_EXPORT int svc_res_get_status(const svc_res *res) SVC_NONNULL(1);
/* Adds a header, keeping others of the same name (Set-Cookie). Returns
 * SVC_EINVAL for a name or value with CR/LF or a bad name. */
SVC_EXPORT SVC_NODISCARD svc_status svc_res_header_add(svc_res *res, const char *name,
                                                       const char *value) SVC_NONNULL(1, 2, 3);
/* Replaces every header `name` with one. */
SVC_EXPORT SVC_NODISCARD svc_status svc_res_header_set(svc_res *res, const char *name,
                                                       const char *value) SVC_NONNULL(1, 2, 3);
/* svc_res_header_add() and svc_res_header_set() for strings given by
 * length: exactly name[0..name_len) and value[0..value_len) are read (no
 * NUL needed, bytes past the length are ignored) and copied, so the caller
 * may reuse its buffers at once. The same checks: SVC_EINVAL for an empty
 * name, a name byte that is not an RFC 9110 token character, a value byte
 * CR, LF, NUL, another control character but HTAB, or DEL; SVC_ENOMEM.
 * On an error `res` is unchanged. Request thread only, like every svc_res
 * call. */
SVC_EXPORT SVC_NODISCARD svc_status svc_res_header_add_n(svc_res *res, const char *name,
                                                         size_t name_len, const char *value,
                                                         size_t value_len) SVC_NONNULL(1, 2, 4);
SVC_EXPORT SVC_NODISCARD svc_status svc_res_header_set_n(svc_res *res, const char *name,
                                                         size_t name_len, const char *value,
                                                         size_t value_len) SVC_NONNULL(1, 2, 4);
SVC_EXPORT void svc_res_header_remove(svc_res *res, const char *name) SVC_NONNULL(1, 2);
/* The first response header `name`, NULL when absent. */
SVC_EXPORT const char *svc_res_header(const svc_res *res, const char *name) SVC_NONNULL(1, 2);
SVC_EXPORT size_t svc_res_header_count(const svc_res *res) SVC_NONNULL(1);
SVC_EXPORT int svc_res_header_nth(const svc_res *res, size_t i, const char **name,
                                  const char **value) SVC_NONNULL(1, 3, 4);
/* Sets the body (copied), replacing any earlier one. */
SVC_EXPORT SVC_NODISCARD svc_status svc_res_body(svc_res *res, const void *data, size_t len)
    SVC_NONNULL(1);
SVC_EXPORT const char *svc_res_get_body(const svc_res *res, size_t *len) SVC_NONNULL(1);
/* status + "text/plain; charset=utf-8" + text. */
SVC_EXPORT SVC_NODISCARD svc_status svc_res_text(svc_res *res, int status, const char *text)
    SVC_NONNULL(1, 3);
/* status + "application/json" + the serialised value (compact). */
SVC_EXPORT SVC_NODISCARD svc_status svc_res_json(svc_res *res, int status, const json_t *json)
    SVC_NONNULL(1, 3);
/* Same with a JSON text the caller already has. */
SVC_EXPORT SVC_NODISCARD svc_status svc_res_json_str(svc_res *res, int status,
                                                     const char *json) SVC_NONNULL(1, 3);

/* ------------------------------------------------------------------------
 * Problems (RFC 9457)
 * ---------------------------------------------------------------------- */

/*       name                 status  title */
#define SVC_PROBLEM_MAP(X)                                                  \
    X(VALIDATION,          400, "Validation failed")                         \
    X(AUTHN,               401, "Authentication required")                   \
    X(AUTHZ,               403, "Forbidden")                                 \
    X(NOT_FOUND,           404, "Not found")                                 \
    X(METHOD_NOT_ALLOWED,  405, "Method not allowed")                        \
    X(CONFLICT,            409, "Conflict")                                  \
    X(PRECONDITION,        412, "Precondition failed")                       \
    X(PAYLOAD_TOO_LARGE,   413, "Payload too large")                         \
    X(RATE_LIMIT,          429, "Too many requests")                         \
    X(UNAVAILABLE,         503, "Service unavailable")                       \
    X(TIMEOUT,             408, "Timeout")                                   \
    X(INTERNAL,            500, "Internal error")                            \
    X(UNPROCESSABLE,       422, "Unprocessable content")                     \
    X(PRECONDITION_REQUIRED, 428, "Precondition required")

typedef enum svc_problem_code {
#define SVC__PROBLEM_ENUM(name, status, title) SVC_PROBLEM_##name,
    SVC_PROBLEM_MAP(SVC__PROBLEM_ENUM)
#undef SVC__PROBLEM_ENUM
    SVC__PROBLEM_LAST
} svc_problem_code;

/* "VALIDATION", ...; "INTERNAL" for an unknown value. */
SVC_EXPORT const char *svc_problem_code_name(svc_problem_code code);
/* The default HTTP status and title of `code`. */
SVC_EXPORT int svc_problem_code_status(svc_problem_code code);
SVC_EXPORT const char *svc_problem_code_title(svc_problem_code code);

/* Answers with application/problem+json: {type, title, status, detail,
 * instance (the request path), code, request_id} plus the members of
 * `extensions` (an object, may be NULL; borrowed). `status` 0 means the
 * code's default. `detail` may be NULL. */
SVC_EXPORT SVC_NODISCARD svc_status svc_res_problem(svc_res *res, int status,
                                                    svc_problem_code code,
                                                    const char *detail) SVC_NONNULL(1);
SVC_EXPORT SVC_NODISCARD svc_status svc_res_problem_ext(svc_res *res, int status,
                                                        svc_problem_code code,
                                                        const char *detail,
                                                        const json_t *extensions)
    SVC_NONNULL(1);

/* ------------------------------------------------------------------------
 * Built-in middleware and ops routes (one line each)
 * ---------------------------------------------------------------------- */

/* CORS with an allowlist; deny by default (no CORS headers for origins not
 * listed). "*" is refused together with allow_credentials (SVC_EINVAL).
 * Preflights (OPTIONS with Access-Control-Request-Method) are answered 204. */
typedef struct svc_cors_opts {
    const char *const *allow_origins;  /* NULL-terminated; exact origins or "*" */
    const char *allow_methods;         /* "GET, POST, PUT, PATCH, DELETE" */
    const char *allow_headers;         /* "Content-Type, Authorization, Idempotency-Key, X-Request-Id" */
    const char *expose_headers;        /* "": none; e.g. "X-Request-Id, RateLimit, RateLimit-Policy,
                                          Retry-After" lets browser code read them */
    int allow_credentials;             /* 0 */
    unsigned max_age_s;                /* 600 */
    void *reserved[4];
} svc_cors_opts;
SVC_EXPORT void svc_cors_opts_default(svc_cors_opts *opts) SVC_NONNULL(1);
/* `opts` NULL: from the app's configuration (cors.allow_origins, ...,
 * docs/configuration.md). SVC_EINVAL for a NULL app, a malformed origin,
 * "*" with credentials or a value with control characters; SVC_EEXIST when
 * called twice; SVC_EBUSY once started; a bad configuration value:
 * SVC_ECONFIG. svc_last_errmsg() says why. */
SVC_EXPORT SVC_NODISCARD svc_status svc_add_cors(svc_app *app, const svc_cors_opts *opts)
    SVC_NONNULL(1);

/* Security headers added to every response unless the handler set the same
 * name itself. NULL opts: the defaults for a JSON API
 * (X-Content-Type-Options: nosniff, X-Frame-Options: DENY,
 * Content-Security-Policy: default-src 'none'; frame-ancestors 'none',
 * Strict-Transport-Security only when hsts_max_age_s > 0). `headers`
 * replaces the list: pairs name, value, ..., NULL. Installed by default with
 * default_middleware; calling this replaces that list. Returns SVC_EINVAL
 * (the previous list stays) for a name that is not a token or a value that
 * svc_res_header_set() would refuse (a control character other than HTAB,
 * or DEL), SVC_ERANGE for more than 31 pairs, SVC_EBUSY once started. */
typedef struct svc_security_headers_opts {
    const char *const *headers;   /* NULL: the defaults above */
    unsigned hsts_max_age_s;      /* 0: no HSTS */
    void *reserved[4];
} svc_security_headers_opts;
/* Fills `opts` with the defaults written beside each field. NULL options
 * of svc_add_security_headers() are these, read from the app's
 * configuration (security_headers.hsts_max_age_s). */
SVC_EXPORT void svc_security_headers_opts_default(svc_security_headers_opts *opts)
    SVC_NONNULL(1);
SVC_EXPORT SVC_NODISCARD svc_status svc_add_security_headers(
    svc_app *app, const svc_security_headers_opts *opts) SVC_NONNULL(1);

/* Tenant resolution. An API key (from `Authorization: Bearer <key>` or
 * the `api_key_header`) is looked up with `lookup`, which writes the tenant
 * and principal; a tenant header is used only when `trusted_header` names
 * it. With `required`, a request without a tenant gets 401 problem+json
 * (code AUTHN). Unknown API key → 401. */
typedef int (*svc_tenant_lookup_fn)(const char *api_key, char *tenant, size_t tenant_len,
                                    char *principal, size_t principal_len, void *ud);
typedef struct svc_tenancy_opts {
    svc_tenant_lookup_fn lookup;     /* NULL: no API keys; returns 1 found, 0 unknown */
    void *lookup_ud;
    const char *api_key_header;      /* "X-API-Key" (Authorization: Bearer also read) */
    const char *trusted_header;      /* NULL: never trust a header (e.g. "X-Tenant-Id") */
    int required;                    /* 0 */
    const char *const *skip_paths;   /* NULL-terminated exact raw paths (compared
                                        before percent-decoding, as the router
                                        sees them); default: /healthz, /readyz,
                                        /startupz and /metrics (the default paths:
                                        list moved probe paths here) */
    void *reserved[4];
} svc_tenancy_opts;
SVC_EXPORT void svc_tenancy_opts_default(svc_tenancy_opts *opts) SVC_NONNULL(1);
/* `opts` NULL: from the app's configuration (tenancy.trusted_header, ...;
 * no lookup callback). */
SVC_EXPORT SVC_NODISCARD svc_status svc_add_tenancy(svc_app *app, const svc_tenancy_opts *opts)
    SVC_NONNULL(1);

/* Probes: /healthz (liveness: 200 while the process serves), /startupz
 * (200 once svc_app_set_started() was called, else 503), /readyz (runs
 * every registered check, each with its timeout, concurrently; 503 with
 * a JSON report when a critical check fails or times out). */
typedef svc_status (*svc_check_fn)(void *ud, char *detail, size_t detail_len,
                                   int64_t timeout_ms);
typedef struct svc_probes_opts {
    const char *healthz_path;   /* "/healthz" */
    const char *readyz_path;    /* "/readyz" */
    const char *startupz_path;  /* "/startupz" */
    int started;                /* 1: started at once; 0: /startupz answers 503
                                   until svc_app_set_started() */
    void *reserved[4];
} svc_probes_opts;
/* Fills `opts` with the defaults written beside each field; NULL options of
 * svc_add_probes() are these, read from the app's configuration (probes.*). */
SVC_EXPORT void svc_probes_opts_default(svc_probes_opts *opts) SVC_NONNULL(1);
SVC_EXPORT SVC_NODISCARD svc_status svc_add_probes(svc_app *app, const svc_probes_opts *opts)
    SVC_NONNULL(1);
/* Registers a readiness check (name copied). `critical`: failure makes
 * /readyz answer 503; otherwise it is reported but the answer stays 200.
 * `fn(ud, ...)` runs on a thread of its own; one that overruns timeout_ms
 * (1..60000) is reported "timeout" and left running (a thread cannot be
 * cancelled safely).
 * When `ud` may be freed: once svc_app_shutdown() or svc_app_free() has
 * returned, provided no warning "readiness check still running after
 * shutdown" was logged. Both wait for running checks, at most the longest
 * check timeout plus shutdown_grace_ms (no new run starts: the server is
 * stopped first); a check still running after that is named in that
 * warning and may use `ud` until its `fn` returns. So
 * `svc_app_free(app); svc_pg_free(pg);` is safe for a check on `pg` that
 * honours its `timeout_ms`. */
SVC_EXPORT SVC_NODISCARD svc_status svc_app_add_check(svc_app *app, const char *name,
                                                      svc_check_fn fn, void *ud,
                                                      unsigned timeout_ms, int critical)
    SVC_NONNULL(1, 2, 3);
SVC_EXPORT void svc_app_set_started(svc_app *app) SVC_NONNULL(1);

/* /metrics in Prometheus text format, and per-request metrics:
 * http_server_requests_total{method,route,code},
 * http_server_request_duration_seconds{method,route} (histogram),
 * http_server_inflight_requests. Unmatched paths share route="<unmatched>".
 * (svc_app_start() itself registers http_server_requests_dropped_total{reason}
 * in svc_app_metrics(): requests ended without an answer, docs/http.md.) */
typedef struct svc_metrics_http_opts {
    const char *path;           /* "/metrics" */
    void *reserved[4];
} svc_metrics_http_opts;
/* Fills `opts` with the defaults; NULL options of svc_add_metrics() are
 * these, read from the app's configuration (metrics.path). */
SVC_EXPORT void svc_metrics_http_opts_default(svc_metrics_http_opts *opts) SVC_NONNULL(1);
SVC_EXPORT SVC_NODISCARD svc_status svc_add_metrics(svc_app *app,
                                                    const svc_metrics_http_opts *opts)
    SVC_NONNULL(1);

SVC_END_DECLS

#endif /* SVCINFRA_HTTP_H */
