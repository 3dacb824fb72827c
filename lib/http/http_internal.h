/*
 * lib/http/http_internal.h - the svc_app internals shared by the files of lib/http.
 *
 * Not installed. Files of lib/http may read every field below; they change
 * app fields only where a comment says so. Layout of one request:
 *
 *   MHD connection ──► svc__exchange (one allocation, reused per thread)
 *                        ├─ svc_req   method, raw uri, decoded path, headers[],
 *                        │            params[], query[], kv[], body (svc__buf)
 *                        ├─ svc_res   status, headers[], body (svc__buf)
 *                        ├─ chain[]   one svc_chain per middleware + handler
 *                        └─ arena     bump allocator for the request's strings
 *
 * Everything in the exchange lives until libmicrohttpd reports the request
 * completed (after the response was sent), or until the connection closes
 * for a request it gave up on without that report; then it is freed at once.
 *
 * Configuration (routes, middleware) is written before svc_app_start() and
 * read-only afterwards, so request threads read it without locks. Runtime
 * state (maintenance flag, in-flight count, stop flag) is atomic.
 *
 * Optional parts (cors.c, security.c, probes.c, metrics_http.c) are compiled
 * when present (lib/http/meson.build checks with fs.exists(); re-run
 * `meson setup --reconfigure` after adding one). svc_app_new() calls
 * svc__security_install_default() when security.c is built
 * (SVC__HTTP_HAVE_SECURITY from http/svc_http_parts.h). Such parts keep
 * their state in the `ext_*` slots of svc_app and release it with
 * svc_app_on_free().
 */
#ifndef SVCINFRA_HTTP_INTERNAL_H
#define SVCINFRA_HTTP_INTERNAL_H

/* The wiring of the modules (lib/<module>/http.c) is compiled once more
 * with this defined (tests/abi/meson.build): it uses the public
 * svcinfra/http.h only, as an application's own middleware would. */
#ifdef SVC__PUBLIC_HTTP_ONLY
#error "lib/http/http_internal.h is internal to lib/http; use svcinfra/http.h"
#endif

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "svcinfra/http.h"
#include "http/svc_http_parts.h"

struct MHD_Daemon;
struct MHD_Connection;

/* Drops a status on purpose (a header that cannot be added to an answer
 * already being an error answer, ...). A (void) cast does not silence
 * warn_unused_result with gcc; this does, and says so. */
static inline void svc__discard(svc_status st) { (void)st; }

/* ---- limits --------------------------------------------------------- */
#define SVC__HTTP_MAX_MW 64        /* middleware per app */
#define SVC__HTTP_MAX_SEGS 32      /* path segments; deeper paths → 404 */
#define SVC__HTTP_MAX_PARAMS 16    /* {params} per pattern */
#define SVC__HTTP_INLINE_HDRS 24   /* request/response headers before the arena */
#define SVC__HTTP_ARENA_INLINE 3072
#define SVC__HTTP_ID_MAX 128       /* X-Request-Id length */

/* ---- routes ---------------------------------------------------------- */
typedef enum svc__seg_kind { SVC__SEG_LIT = 0, SVC__SEG_PARAM = 1, SVC__SEG_REST = 2 } svc__seg_kind;

typedef struct svc__seg {
    svc__seg_kind kind;
    char *text; /* the literal, or the parameter name */
    size_t len;
} svc__seg;

typedef struct svc__route {
    char *method;  /* upper case, or "*" */
    char *pattern; /* the template as registered: svc_req_route() */
    svc__seg *segs;
    size_t nsegs;
    svc_handler_fn fn;
    void *ud;
} svc__route;

/* ---- middleware ------------------------------------------------------ */
typedef struct svc__mw {
    svc_stage stage;
    unsigned seq; /* registration order */
    char *name;
    svc_middleware_fn fn;
    void *ud;
} svc__mw;

typedef struct svc__on_free {
    void (*fn)(void *ud);
    void *ud;
} svc__on_free;

/* Start/stop hooks and attached module handles (hooks.c). */
typedef struct svc__hook {
    svc_status (*start)(void *ud);
    void (*stop)(void *ud);
    void *ud;
    bool running;
} svc__hook;
typedef struct svc__attachment {
    char *key;
    void *ptr;
    void (*release)(void *ptr);
} svc__attachment;
svc_status svc__app_hooks_start(svc_app *app);
/* Every built-in svc_add_X(app, opts): resolves the options (`given`, or
 * the table's defaults under the app's configuration) into `opts` (`size`
 * bytes), runs add(app, opts), and reports a failure through
 * svc_last_errmsg() (the detail add() left on the app, else "<module>:
 * <status text>"); a success clears it. SVC_EINVAL for a NULL app. */
struct svc__opt_table;
svc_status svc__add_configured(svc_app *app, const struct svc__opt_table *t, const void *given,
                               void *opts, size_t size,
                               svc_status (*add)(svc_app *app, const void *opts));
void svc__app_hooks_stop(svc_app *app);
void svc__app_hooks_free(svc_app *app);

/* ---- the app ----------------------------------------------------------- */
struct svc_app {
    svc_app_opts opts;       /* effective options; strings below are owned copies */
    char *bind_addr;
    char *problem_type_base; /* "about:blank", or ends with '/', or is "" */

    svc__route *routes;
    size_t nroutes, routes_cap;
    svc__mw *mws;            /* sorted by (stage, seq) at svc_app_start() */
    size_t nmws;
    unsigned mw_seq;
    svc__on_free *on_free;
    size_t non_free, on_free_cap;
    struct svc_config *config; /* one reference: the caller's, or the environment's */
    svc__hook *hooks;        /* svc_app_on_start(), in registration order */
    size_t nhooks, hooks_cap;
    svc__attachment *atts;   /* svc_app_attach() */
    size_t natts, atts_cap;

    struct MHD_Daemon *daemon;
    atomic_int started;      /* 1 between start and shutdown */
    atomic_int draining;     /* 1 during graceful shutdown: answers get Connection: close */
    atomic_uint port;        /* the bound port while serving, else 0: svc_app_port() reads it from any thread */
    atomic_long inflight;    /* requests between first byte and completion */
    atomic_int maintenance;
    atomic_uint retry_after_s;
    atomic_int stop_requested;
    int stop_pipe[2];        /* svc_app_stop() → svc_app_run() */
    /* One slot per server thread: the route its request is in (NULL: none),
     * read by svc_app_shutdown() to name what still runs after the grace.
     * Owned by app.c (allocated by svc_app_start(); run_gen tells a thread
     * its slot index is from an earlier start). */
    _Atomic(const svc__route *) *running;
    unsigned nrunning;
    atomic_uint running_next;
    unsigned run_gen;

    struct svc_metrics *metrics;
    struct svc_counter *dropped; /* http_server_requests_dropped_total{reason}; NULL if
                                    it could not be registered (set by svc_app_start) */
    const svc_clock *clock;
    svc__err err;

    /* Slots for the optional parts; each is owned by the named file. */
    void *ext_security;
    void *ext_cors;
    void *ext_probes;
    void *ext_metrics;
    void *ext_tenancy;
};

/* ---- one request ------------------------------------------------------- */
typedef struct svc__kv {
    const char *name;
    const char *value;
} svc__kv;

/* A request or response header: the name's length is kept so lookups
 * compare lengths (and, for the library's own constant names, pointers)
 * before any case-insensitive compare. */
typedef struct svc__hdr {
    const char *name;
    const char *value;
    size_t nlen;
} svc__hdr;

typedef struct svc__slot {
    const char *key;
    void *value;
    void (*free_fn)(void *);
} svc__slot;

typedef struct svc__arena_chunk {
    struct svc__arena_chunk *next;
    size_t cap, used;
    char data[];
} svc__arena_chunk;

typedef struct svc__exchange svc__exchange;

struct svc_chain {
    svc__exchange *ex;
    size_t idx;  /* next middleware to run; == nmws: the handler */
    bool called; /* svc_next() ran once already */
};

struct svc_req {
    svc__exchange *ex;
    svc_app *app;
    struct MHD_Connection *conn;
    const char *method;      /* upper case as received */
    const char *uri;         /* raw request target (copy) */
    const char *raw_path;    /* raw path part (arena) */
    const char *path;        /* decoded path (arena) */
    const char *query;       /* raw query without '?', "" when none */
    const svc__route *route; /* matched route, NULL when none */
    svc__kv *params;
    size_t nparams;
    svc__kv *query_kv;       /* decoded, parsed on first use */
    size_t nquery;
    bool query_parsed;
    svc__hdr *hdrs;          /* strings borrowed from libmicrohttpd */
    size_t nhdrs, hdrs_cap;
    svc__buf body;
    char id[SVC__HTTP_ID_MAX + 1];
    char trace_id[33];
    char span_id[17];
    char client[64];
    char *tenant;
    char *principal;
    svc__slot *slots;
    size_t nslots, slots_cap;
    int64_t start_ns;
    int64_t deadline_ns;
    int64_t end_ns; /* svc__req_end_ns(); 0 until read */
    bool log_ctx_active;
};

struct svc_res {
    svc__exchange *ex;
    int status;
    svc__hdr *hdrs; /* copies in the arena, or borrowed strings that outlive the exchange */
    size_t nhdrs, hdrs_cap;
    svc__buf body;
};

typedef enum svc__ex_state {
    SVC__EX_NEW = 0,      /* created by the URI callback */
    SVC__EX_BODY,         /* reading the body */
    SVC__EX_REJECTED,     /* 408/413 decided; discarding the rest of the body */
    SVC__EX_ANSWERED      /* response queued */
} svc__ex_state;

struct svc__exchange {
    svc_req req;
    svc_res res;
    svc__ex_state state;
    int reject_status;        /* 400, 408 or 413 while REJECTED */
    const char *reject_detail;/* the problem's detail for reject_status (a literal) */
    bool handler_ran;
    bool cut_off;             /* the sender was disconnected mid-body (2 × read timeout) */
    int match;                /* svc__match of the router */
    size_t deepest_mw;        /* the last middleware entered (for diagnostics) */
    svc_late_answer_fn late_fn; /* svc_req_on_late_answer(); NULL: none */
    void *late_ud;
    svc__arena_chunk *chunks; /* overflow chunks of the arena */
    size_t arena_used;
    svc__exchange **conn_slot;/* the connection's pointer to this exchange (app.c), or NULL */
    const char *mhd_uri;      /* the target where libmicrohttpd parsed it (uri_cb) */
    /* Not zeroed when an exchange starts (each is written before it is
     * read): from here to the end. */
    char allow[128];          /* Allow header for a 405 */
    svc__buf kept_bodies[2];  /* a spare's body buffers (request, response), emptied */
    svc_chain chains[SVC__HTTP_MAX_MW + 1];
    svc__hdr req_hdr_inline[SVC__HTTP_INLINE_HDRS];
    svc__hdr res_hdr_inline[SVC__HTTP_INLINE_HDRS];
    _Alignas(16) char arena[SVC__HTTP_ARENA_INLINE];
};

/* ---- arena (lib/http/req.c) ---------------------------------------------- */
void *svc__ex_alloc(svc__exchange *ex, size_t n);                 /* NULL on OOM */
char *svc__ex_strndup(svc__exchange *ex, const char *s, size_t n);
char *svc__ex_strdup(svc__exchange *ex, const char *s);

/* The monotonic time the request's answer was complete, as the OBSERVE
 * stage sees it: read once, by the first observer on the way out (the
 * metrics, inner), and reused by the next (the access log), so both report
 * the same duration. */
int64_t svc__req_end_ns(svc_req *req);

/* Creates the exchange for raw request target `uri` (copied). */
svc__exchange *svc__exchange_new(svc_app *app, const char *uri);
/* Runs the slot free functions and frees the exchange. NULL: no-op. */
void svc__exchange_free(svc__exchange *ex);
/* Splits uri into raw path and query and decodes the path. Returns
 * SVC_EINVAL for a target that is not origin- or absolute-form, or a path
 * with a malformed escape or that decodes to a control character or to
 * invalid UTF-8. */
svc_status svc__req_parse_target(svc_req *req);
/* Validates the request line and the header values before routing (RFC
 * 9112 3.2, RFC 3986, RFC 9110 5.5) and parses the target; NULL when they
 * are fine, else the problem's detail for a 400 (a literal). `url` and
 * `version` are libmicrohttpd's, as on_request received them. */
const char *svc__req_check(svc_req *req, const char *url, const char *version);
/* Appends a request header (borrowed strings; nlen = strlen(name)). */
svc_status svc__req_add_header(svc_req *req, const char *name, size_t nlen, const char *value);
/* In-place percent-decoding of s[0..n) into out (may be s); returns the
 * decoded length, or (size_t)-1 for an encoded NUL or a malformed escape
 * ('%' not followed by two hex digits). `plus_space` turns '+' into ' '
 * (query strings). */
size_t svc__pct_decode(const char *s, size_t n, char *out, bool plus_space);

/* ---- router (lib/http/router.c) ------------------------------------------- */
/* Parses `pattern` into *route (segments, pattern copy). */
svc_status svc__route_compile(svc__route *route, const char *method, const char *pattern);
void svc__route_clear(svc__route *route);
typedef enum svc__match {
    SVC__MATCH_FOUND,
    SVC__MATCH_NOT_FOUND,
    SVC__MATCH_METHOD /* path known, method not: `allow` holds the methods */
} svc__match;
/* Matches req->raw_path and req->method against the app's routes; sets
 * req->route and req->params on success. `allow` (allow_len bytes) receives
 * "GET, HEAD, POST" for SVC__MATCH_METHOD. */
svc__match svc__router_match(svc_app *app, svc_req *req, char *allow, size_t allow_len);

/* ---- response (lib/http/res.c) ------------------------------------------- */
/* Drops status, headers and body. */
void svc__res_reset(svc_res *res);
/* The status that will be sent: the set one, else 200 with a body, else 204. */
int svc__res_effective_status(const svc_res *res);
/* True for a valid header name (RFC 9110 token). */
bool svc__header_name_ok(const char *name);
/* True for a header value svc_res_header_set() accepts (no CR, LF, other
 * controls but TAB, nor DEL). */
bool svc__header_value_ok(const char *value);
/* How svc__res_header_put() treats its strings. */
enum {
    SVC__HDR_REPLACE = 1u << 0,  /* drop headers of the same name first (set) */
    SVC__HDR_NAME_KEPT = 1u << 1, /* name is valid and lives as long as the exchange: borrowed */
    SVC__HDR_VALUE_KEPT = 1u << 2 /* value is valid and lives as long as the exchange: borrowed */
};
/* Adds a header for the library itself. Strings without the _KEPT flag
 * are validated and copied into the arena, exactly as svc_res_header_add()
 * and svc_res_header_set() do; a _KEPT string must be one the library
 * validated with svc__header_name_ok()/svc__header_value_ok() (a literal,
 * the app's configuration, or a buffer of the exchange), and is not copied. `nlen` is
 * strlen(name). */
svc_status svc__res_header_put(svc_res *res, const char *name, size_t nlen, const char *value,
                               unsigned flags);
/* Shorthand for a string literal name. */
#define SVC__LIT(s) (s), (sizeof(s) - 1)

/* ---- chain (lib/http/chain.c) ---------------------------------------------- */
/* Runs the middleware and then the handler (or the 404/405 answer) for
 * ex->match / ex->allow; fills in the status when nothing was set. */
void svc__chain_run(svc__exchange *ex);

/* ---- problems (lib/http/problem.c) ------------------------------------------- */
/* The default problem_type_base: every problem's `type` is "about:blank"
 * (RFC 9457 4.2.1) and the `code` member tells the problems apart. */
#define SVC__PROBLEM_ABOUT_BLANK "about:blank"
/* The `type` URI for `code` into buf: "about:blank" for that base, else
 * base + "not-found" (base may be relative: "/problems/not-found"). */
void svc__problem_type(const svc_app *app, svc_problem_code code, char *buf, size_t len);

/* ---- built-in middleware (lib/http/mw_core.c) -------------------------------- */
svc_status svc__mw_install_request_id(svc_app *app);
svc_status svc__mw_install_access_log(svc_app *app);
svc_status svc__mw_install_maintenance(svc_app *app);
/* Re-applies the thread's log context from the request (after the tenant
 * changed). No-op when the request id middleware did not set one. */
void svc__req_refresh_log_context(svc_req *req);
/* True for an X-Request-Id we echo: 1..128 of [A-Za-z0-9._:-]. */
bool svc__request_id_ok(const char *s);
/* Parses a W3C traceparent; on success copies the trace id (32 hex). */
bool svc__traceparent_parse(const char *s, char trace_id[33]);

/* ---- optional parts ----------------------------------------------------------- */
/* security.c: installs the default security headers middleware. Called by
 * svc_app_new() with default_middleware when SVC__HTTP_HAVE_SECURITY. */
svc_status svc__security_install_default(svc_app *app);
/* probes.c: waits until no readiness check runs, at most the longest check
 * timeout plus shutdown_grace_ms, and logs at warn each one still running
 * then. Called by svc_app_shutdown() once no request can start a check. */
void svc__probes_wait(svc_app *app);
/* security.c: adds the app's security headers (those `res` does not carry
 * yet) to an answer that skipped the SECURITY stage: the early rejections
 * (400, 408, 413). No-op when the app has no security headers middleware. */
void svc__security_apply(svc_app *app, svc_res *res);

#endif /* SVCINFRA_HTTP_INTERNAL_H */
