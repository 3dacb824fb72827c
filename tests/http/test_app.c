/*
 * tests/http/test_app.c - svc_app over loopback: request and response API,
 * middleware order, limits, timeouts, request ids, maintenance, shutdown.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "http_test_util.h"
#include "svcinfra/config.h"
#include "svcinfra/http.h"
#include "svcinfra/log.h"
#include "svcinfra/metrics.h"

static svc_app *new_app(svc_app_opts *o)
{
    svc_app *app = NULL;
    assert_int_equal(svc_app_new(&app, o), SVC_OK);
    return app;
}

static void base_opts(svc_app_opts *o)
{
    svc_app_opts_default(o);
    o->port = 0;
    o->threads = 2;
    o->access_log = 0;
}

static uint16_t start(svc_app *app)
{
    assert_int_equal(svc_app_start(app), SVC_OK);
    uint16_t port = svc_app_port(app);
    assert_true(port > 0);
    return port;
}

static void h_hello(svc_req *req, svc_res *res, void *ud)
{
    (void)req, (void)ud;
    assert_int_equal(svc_res_text(res, 200, "hello"), SVC_OK);
}

static void h_nothing(svc_req *req, svc_res *res, void *ud)
{
    (void)req, (void)res, (void)ud;
}

/* ---- basics ------------------------------------------------------------------- */

static void get_is_served_and_head_sends_no_body(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    o.access_log = 1;
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_route(app, "GET", "/hello", h_hello, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/empty", h_nothing, NULL), SVC_OK);
    uint16_t port = start(app);
    htu_response r;
    assert_int_equal(htu_request(port, "GET", "/hello", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello");
    assert_string_equal(htu_header(&r, "Content-Type"), "text/plain; charset=utf-8");
    htu_response_free(&r);
    assert_int_equal(htu_request(port, "HEAD", "/hello", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    htu_response_free(&r);
    assert_int_equal(htu_request(port, "GET", "/empty", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 204);
    htu_response_free(&r);
    svc_app_free(app);
}

/* Access log lines ("msg":"request") captured by a sink, parsed. */
#define ACCESS_MAX 16
static json_t *access_lines[ACCESS_MAX];
static size_t n_access;
static pthread_mutex_t access_mu = PTHREAD_MUTEX_INITIALIZER;

static void access_sink(svc_log_level level, const char *line, size_t len, void *ctx)
{
    (void)level, (void)ctx;
    json_t *j = json_loadb(line, len, 0, NULL);
    assert_non_null(j); /* every line is one JSON object */
    const char *msg = json_string_value(json_object_get(j, "msg"));
    pthread_mutex_lock(&access_mu);
    if (msg && strcmp(msg, "request") == 0 && n_access < ACCESS_MAX)
        access_lines[n_access++] = j;
    else
        json_decref(j);
    pthread_mutex_unlock(&access_mu);
}

static void h_created(svc_req *req, svc_res *res, void *ud)
{
    (void)req, (void)ud;
    assert_int_equal(svc_res_json_str(res, 201, "{\"id\":42}"), SVC_OK);
}

/* One JSON line per request, after it, with the request's facts. */
static void access_log_writes_one_line_per_request(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    o.access_log = 1;
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_route(app, "POST", "/items/{id}", h_created, NULL), SVC_OK);
    uint16_t port = start(app);
    svc_log_level saved = svc_log_get_level();
    svc_log_set_level(SVC_LOG_INFO);
    n_access = 0;
    svc_log_set_sink(access_sink, NULL);
    htu_response r, r404;
    assert_int_equal(htu_request(port, "POST", "/items/42?x=1", "User-Agent: probe/1\r\n",
                                 "hello", &r),
                     0);
    assert_int_equal(htu_request(port, "GET", "/nowhere", NULL, NULL, &r404), 0);
    svc_log_set_sink(NULL, NULL);
    svc_log_set_level(saved);
    svc_app_free(app);

    assert_int_equal(n_access, 2);
    json_t *a = access_lines[0];
    assert_string_equal(json_string_value(json_object_get(a, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(a, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(a, "path")), "/items/42");
    assert_string_equal(json_string_value(json_object_get(a, "route")), "/items/{id}");
    assert_int_equal(json_integer_value(json_object_get(a, "status")), 201);
    assert_true(json_is_number(json_object_get(a, "duration_ms")));
    assert_true(json_number_value(json_object_get(a, "duration_ms")) >= 0);
    assert_int_equal(json_integer_value(json_object_get(a, "bytes_in")), 5);
    assert_int_equal(json_integer_value(json_object_get(a, "bytes_out")), 9);
    assert_string_equal(json_string_value(json_object_get(a, "client")), "127.0.0.1");
    assert_string_equal(json_string_value(json_object_get(a, "user_agent")), "probe/1");
    assert_string_equal(json_string_value(json_object_get(a, "request_id")),
                        htu_header(&r, "X-Request-Id"));
    json_t *b = access_lines[1];
    assert_string_equal(json_string_value(json_object_get(b, "path")), "/nowhere");
    assert_true(json_is_null(json_object_get(b, "route")));
    assert_int_equal(json_integer_value(json_object_get(b, "status")), 404);
    assert_true(json_is_null(json_object_get(b, "user_agent")));
    htu_response_free(&r);
    htu_response_free(&r404);
    for (size_t i = 0; i < n_access; i++)
        json_decref(access_lines[i]);
}

static void unknown_path_404_and_wrong_method_405_with_allow(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_route(app, "GET", "/cars/{id}", h_hello, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "PUT", "/cars/{id}", h_hello, NULL), SVC_OK);
    uint16_t port = start(app);
    htu_response r;
    assert_int_equal(htu_request(port, "GET", "/boats", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(htu_header(&r, "Content-Type"), "application/problem+json");
    assert_non_null(strstr(r.body, "\"code\":\"NOT_FOUND\""));
    htu_response_free(&r);
    assert_int_equal(htu_request(port, "POST", "/cars/1", NULL, "{}", &r), 0);
    assert_int_equal(r.status, 405);
    assert_string_equal(htu_header(&r, "Allow"), "GET, HEAD, PUT");
    assert_non_null(strstr(r.body, "\"code\":\"METHOD_NOT_ALLOWED\""));
    htu_response_free(&r);
    svc_app_free(app);
}

/* ---- middleware --------------------------------------------------------------------- */

static atomic_int handler_runs;

static void mw_trace(svc_req *req, svc_res *res, svc_chain *next, void *ud)
{
    (void)res;
    const char *prev = svc_req_get(req, "trace");
    char *t = malloc(256);
    snprintf(t, 256, "%s%s%s", prev ? prev : "", prev ? "," : "", (const char *)ud);
    assert_int_equal(svc_req_set(req, "trace", t, free), SVC_OK);
    svc_next(next);
}

static void h_trace(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    atomic_fetch_add(&handler_runs, 1);
    const char *t = svc_req_get(req, "trace");
    assert_int_equal(svc_res_text(res, 200, t ? t : ""), SVC_OK);
}

static void mw_deny(svc_req *req, svc_res *res, svc_chain *next, void *ud)
{
    (void)ud, (void)next;
    if (svc_req_header(req, "X-Deny"))
        assert_int_equal(svc_res_problem(res, 403, SVC_PROBLEM_AUTHZ, "denied"), SVC_OK);
    else
        svc_next(next);
}

static void middleware_runs_by_stage_then_registration(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    o.default_middleware = 0;
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_use(app, "app1", mw_trace, "app1"), SVC_OK);
    assert_int_equal(svc_app_use_stage(app, SVC_STAGE_LIMIT, "limit", mw_trace, "limit"), SVC_OK);
    assert_int_equal(svc_app_use_stage(app, SVC_STAGE_EARLY, "early", mw_trace, "early"), SVC_OK);
    assert_int_equal(svc_app_use(app, "app2", mw_trace, "app2"), SVC_OK);
    assert_int_equal(svc_app_use_stage(app, SVC_STAGE_SECURITY, "deny", mw_deny, NULL), SVC_OK);
    assert_int_equal(svc_app_use(app, "app1", mw_trace, "x"), SVC_EEXIST);
    char names[128];
    svc_app_middleware_names(app, names, sizeof names);
    assert_string_equal(names, "early,deny,limit,app1,app2");
    assert_int_equal(svc_app_route(app, "GET", "/t", h_trace, NULL), SVC_OK);
    uint16_t port = start(app);
    assert_int_equal(svc_app_use(app, "late", mw_trace, "late"), SVC_EBUSY);

    atomic_store(&handler_runs, 0);
    htu_response r;
    assert_int_equal(htu_request(port, "GET", "/t", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "early,limit,app1,app2");
    htu_response_free(&r);
    assert_int_equal(atomic_load(&handler_runs), 1);

    /* a middleware that answers stops the chain: the handler does not run */
    assert_int_equal(htu_request(port, "GET", "/t", "X-Deny: 1\r\n", NULL, &r), 0);
    assert_int_equal(r.status, 403);
    assert_non_null(strstr(r.body, "\"code\":\"AUTHZ\""));
    htu_response_free(&r);
    assert_int_equal(atomic_load(&handler_runs), 1);
    svc_app_free(app);
}

/* ---- request API ------------------------------------------------------------------ */

static void h_echo(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    json_t *in = NULL;
    svc_status st = svc_req_json(req, &in);
    if (st != SVC_OK) {
        assert_int_equal(st, SVC_EPARSE);
        assert_int_equal(svc_res_problem(res, 400, SVC_PROBLEM_VALIDATION, "bad json"), SVC_OK);
        return;
    }
    const char *d1 = svc_req_header_at(req, "x-dup", 1);
    json_t *o = json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:o, s:s, s:s?}",
                          "path", svc_req_path(req),
                          "q", svc_req_query_param(req, "q"),
                          "dup0", svc_req_header(req, "X-DUP"),
                          "dup1", d1,
                          "id", svc_req_param(req, "id"),
                          "route", svc_req_route(req),
                          "body", in,
                          "method", svc_req_method(req),
                          "client", svc_req_client_addr(req));
    assert_non_null(o);
    assert_int_equal(svc_res_json(res, 201, o), SVC_OK);
    json_decref(o);
}

static void request_api_exposes_query_headers_params_and_json(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_route(app, "POST", "/items/{id}", h_echo, NULL), SVC_OK);
    uint16_t port = start(app);
    htu_response r;
    assert_int_equal(htu_request(port, "POST", "/items/a%20b?q=x%26y+z&other=1",
                                 "X-Dup: first\r\nx-dup: second\r\nContent-Type: application/json\r\n",
                                 "{\"n\":1}", &r),
                     0);
    assert_int_equal(r.status, 201);
    json_error_t je;
    json_t *j = json_loads(r.body, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/items/a b");
    assert_string_equal(json_string_value(json_object_get(j, "q")), "x&y z");
    assert_string_equal(json_string_value(json_object_get(j, "dup0")), "first");
    assert_string_equal(json_string_value(json_object_get(j, "dup1")), "second");
    assert_string_equal(json_string_value(json_object_get(j, "id")), "a b");
    assert_string_equal(json_string_value(json_object_get(j, "route")), "/items/{id}");
    assert_string_equal(json_string_value(json_object_get(j, "client")), "127.0.0.1");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "body"), "n")), 1);
    json_decref(j);
    htu_response_free(&r);

    assert_int_equal(htu_request(port, "POST", "/items/1", NULL, "{not json", &r), 0);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"code\":\"VALIDATION\""));
    htu_response_free(&r);
    svc_app_free(app);
}

static void h_cookies(svc_req *req, svc_res *res, void *ud)
{
    (void)req, (void)ud;
    assert_int_equal(svc_res_header_add(res, "Set-Cookie", "a=1; Path=/"), SVC_OK);
    assert_int_equal(svc_res_header_add(res, "Set-Cookie", "b=2; Path=/"), SVC_OK);
    assert_int_equal(svc_res_header_add(res, "X-Bad", "v\r\nInjected: 1"), SVC_EINVAL);
    assert_int_equal(svc_res_header_add(res, "Bad Name", "v"), SVC_EINVAL);
    assert_int_equal(svc_res_header_set(res, "X-One", "1"), SVC_OK);
    assert_int_equal(svc_res_header_set(res, "x-one", "2"), SVC_OK);
    assert_string_equal(svc_res_header(res, "X-ONE"), "2");
    assert_int_equal(svc_res_text(res, 200, "ok"), SVC_OK);
}

static void duplicate_response_headers_survive_on_the_wire(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_route(app, "GET", "/c", h_cookies, NULL), SVC_OK);
    uint16_t port = start(app);
    htu_response r;
    assert_int_equal(htu_request(port, "GET", "/c", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(htu_header_count(&r, "Set-Cookie"), 2);
    assert_string_equal(htu_header_at(&r, "Set-Cookie", 0), "a=1; Path=/");
    assert_string_equal(htu_header_at(&r, "Set-Cookie", 1), "b=2; Path=/");
    assert_int_equal(htu_header_count(&r, "X-One"), 1);
    assert_null(htu_header(&r, "Injected"));
    htu_response_free(&r);
    svc_app_free(app);
}

/* ---- limits and timeouts ------------------------------------------------------------ */

static void h_body_len(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    size_t n = 0;
    svc_req_body(req, &n);
    char buf[32];
    snprintf(buf, sizeof buf, "%zu", n);
    assert_int_equal(svc_res_text(res, 200, buf), SVC_OK);
}

static void oversized_bodies_get_413(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    o.max_body_bytes = 1024;
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_route(app, "POST", "/up", h_body_len, NULL), SVC_OK);
    uint16_t port = start(app);
    htu_response r;

    /* declared too large: answered before the body is read */
    const char *big = "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n";
    assert_int_equal(htu_roundtrip(port, big, strlen(big), &r), 0);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body, "\"code\":\"PAYLOAD_TOO_LARGE\""));
    assert_non_null(htu_header(&r, "X-Request-Id"));
    /* early rejections carry the security headers as every answer does */
    assert_string_equal(htu_header(&r, "X-Content-Type-Options"), "nosniff");
    assert_string_equal(htu_header(&r, "X-Frame-Options"), "DENY");
    htu_response_free(&r);

    /* chunked, growing past the limit */
    char req[4096];
    int n = snprintf(req, sizeof req,
                     "POST /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        n += snprintf(req + n, sizeof req - (size_t)n, "200\r\n");
        memset(req + n, 'a', 512);
        n += 512;
        n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
    }
    n += snprintf(req + n, sizeof req - (size_t)n, "0\r\n\r\n");
    assert_int_equal(htu_roundtrip(port, req, (size_t)n, &r), 0);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body, "\"code\":\"PAYLOAD_TOO_LARGE\""));
    htu_response_free(&r);

    /* under the limit, chunked: served */
    n = snprintf(req, sizeof req,
                 "POST /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    assert_int_equal(htu_roundtrip(port, req, (size_t)n, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "5");
    htu_response_free(&r);
    svc_app_free(app);
}

static void slow_body_gets_408(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    o.read_timeout_ms = 100; /* idle cut-off stays at 1 s */
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_route(app, "POST", "/up", h_body_len, NULL), SVC_OK);
    uint16_t port = start(app);
    int fd = htu_connect(port);
    assert_true(fd >= 0);
    const char *head = "POST /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       "Content-Length: 10\r\n\r\nabc";
    assert_int_equal(htu_send(fd, head, strlen(head)), 0);
    htu_sleep_ms(350); /* past the 100 ms whole-request budget */
    assert_int_equal(htu_send(fd, "defghij", 7), 0);
    htu_response r;
    assert_int_equal(htu_read_response(fd, &r), 0);
    close(fd);
    assert_int_equal(r.status, 408);
    assert_non_null(strstr(r.body, "\"code\":\"TIMEOUT\""));
    assert_string_equal(htu_header(&r, "X-Content-Type-Options"), "nosniff");
    htu_response_free(&r);
    svc_app_free(app);
}

/* Headers sent a line at a time (slowloris), each line well within the
 * idle timeout: the read timeout counts from the request line, so the
 * answer is 408 as soon as the headers end, before any body is read. */
static void slowly_sent_headers_get_408(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    o.read_timeout_ms = 300; /* the idle cut-off of libmicrohttpd stays at 1 s */
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_route(app, "POST", "/up", h_body_len, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/hello", h_hello, NULL), SVC_OK);
    uint16_t port = start(app);
    static const char *const first[] = {"POST /up HTTP/1.1\r\n", "GET /hello HTTP/1.1\r\n"};
    static const char *const lines[] = {"Host: x\r\n",      "X-A: 1\r\n", "X-B: 2\r\n",
                                        "Connection: close\r\n", "X-C: 3\r\n", "X-D: 4\r\n"};
    for (size_t k = 0; k < 2; k++) {
        int fd = htu_connect(port);
        assert_true(fd >= 0);
        assert_int_equal(htu_send(fd, first[k], strlen(first[k])), 0);
        for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) { /* 6 x 100 ms */
            htu_sleep_ms(100);
            assert_int_equal(htu_send(fd, lines[i], strlen(lines[i])), 0);
        }
        const char *end = k == 0 ? "Content-Length: 5\r\n\r\n" : "\r\n"; /* no body sent */
        assert_int_equal(htu_send(fd, end, strlen(end)), 0);
        htu_response r;
        assert_int_equal(htu_read_response(fd, &r), 0);
        close(fd);
        assert_int_equal(r.status, 408);
        assert_non_null(strstr(r.body, "\"code\":\"TIMEOUT\""));
        assert_string_equal(htu_header(&r, "Connection"), "close");
        htu_response_free(&r);
    }
    svc_app_free(app);
}

/* Sends `raw` (a request with a keep-alive follow-up pipelined behind it)
 * on one socket; returns the first answer and whether anything else came
 * back before the server closed the socket (*closed: EOF was seen). */
static void pipelined(uint16_t port, const char *raw, htu_response *r, size_t *extra,
                      bool *closed)
{
    int fd = htu_connect(port);
    assert_true(fd >= 0);
    assert_int_equal(htu_send(fd, raw, strlen(raw)), 0);
    assert_int_equal(htu_read_response(fd, r), 0);
    *extra = 0;
    *closed = false;
    char buf[4096];
    for (int i = 0; i < 64; i++) { /* bounded: each recv waits at most the socket timeout */
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            *closed = true;
        if (n <= 0)
            break;
        *extra += (size_t)n;
    }
    close(fd);
}

/* An app with POST /up (answers the body length) and GET /hello. */
static svc_app *framing_app(uint16_t *port)
{
    svc_app_opts o;
    base_opts(&o);
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_route(app, "POST", "/up", h_body_len, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/hello", h_hello, NULL), SVC_OK);
    *port = start(app);
    return app;
}

/* Each of `raw[0..n)` (a request with a pipelined follow-up) gets 400
 * VALIDATION with Connection: close, nothing more, then EOF. */
static void assert_refused_and_closed(uint16_t port, const char *const *raw, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        htu_response r;
        size_t extra;
        bool closed;
        pipelined(port, raw[i], &r, &extra, &closed);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(r.body, "\"code\":\"VALIDATION\""));
        assert_string_equal(htu_header(&r, "Content-Type"), "application/problem+json");
        assert_non_null(htu_header(&r, "Connection"));
        assert_string_equal(htu_header(&r, "Connection"), "close");
        assert_string_equal(htu_header(&r, "X-Content-Type-Options"), "nosniff");
        assert_null(strstr(r.raw + 12, "HTTP/1.1 200")); /* the follow-up was not served */
        htu_response_free(&r);
        assert_int_equal(extra, 0);
        assert_true(closed);
    }
}

/* `raw` (POST /up with a 2-byte body, then GET /hello with Connection:
 * close) is served, keep-alive and all. */
static void assert_served_with_follow_up(uint16_t port, const char *raw)
{
    htu_response r;
    size_t extra;
    bool closed;
    pipelined(port, raw, &r, &extra, &closed);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "2");
    /* the follow-up was answered (it may have come in the same read) */
    assert_true(extra > 0 || strstr(r.raw + 12, "HTTP/1.1 200") != NULL);
    htu_response_free(&r);
}

static void te_with_content_length_is_refused_and_the_connection_closed(void **state)
{
    (void)state;
    uint16_t port;
    svc_app *app = framing_app(&port);
    static const char *const smuggles[] = {
        /* both framings: a front end using Content-Length sees one request */
        "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
        /* a coding other than a lone "chunked" */
        "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        "0\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        "Transfer-Encoding: identity\r\n\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
        /* a malformed target is refused before the handler: closed as well */
        "GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    assert_refused_and_closed(port, smuggles, sizeof smuggles / sizeof *smuggles);
    /* a lone chunked coding is still served */
    assert_served_with_follow_up(port,
        "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n"
        "2\r\nab\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    svc_app_free(app);
}

/* Two Content-Length fields (libmicrohttpd reads the first, a proxy may
 * read the last), even two equal ones, and header names that are not
 * tokens ("Transfer-Encoding :" is chunked framing to some proxies and an
 * unknown field to libmicrohttpd) are refused with 400 and the connection
 * is closed, so the bytes behind them are never served as a request. */
static void conflicting_content_lengths_and_bad_header_names_are_refused(void **state)
{
    (void)state;
    uint16_t port;
    svc_app *app = framing_app(&port);
    static const char *const smuggles[] = {
        "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n"
        "abGET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\ncontent-length: 2\r\n\r\n"
        "abGET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n"
        "abGET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n"
        "Content-Length: 5\r\n\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: x\r\nX-Bad\"Name: 1\r\n\r\n"
        "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    assert_refused_and_closed(port, smuggles, sizeof smuggles / sizeof *smuggles);
    /* one Content-Length is served */
    assert_served_with_follow_up(port,
        "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab"
        "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    svc_app_free(app);
}

static double dropped_read_timeout(svc_metrics *m)
{
    static const char *const names[] = {"reason", NULL};
    static const char *const values[] = {"read_timeout"};
    svc_counter *c = NULL;
    assert_int_equal(svc_metrics_counter(m, "http_server_requests_dropped_total", NULL, names, &c),
                     SVC_OK);
    double v = 0;
    if (svc_counter_get(c, values, &v) != SVC_OK)
        v = 0;
    return v;
}

static void body_still_arriving_after_twice_the_read_timeout_is_dropped_and_counted(void **state)
{
    (void)state;
    svc_metrics *m = NULL;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_app_opts o;
    base_opts(&o);
    o.read_timeout_ms = 100; /* the idle cut-off of libmicrohttpd stays at 1 s */
    o.metrics = m;
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_route(app, "POST", "/up", h_body_len, NULL), SVC_OK);
    uint16_t port = start(app);
    int fd = htu_connect(port);
    assert_true(fd >= 0);
    const char *head = "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc";
    assert_int_equal(htu_send(fd, head, strlen(head)), 0);
    htu_sleep_ms(150); /* past the read timeout: 408 decided, the rest is discarded */
    assert_int_equal(htu_send(fd, "d", 1), 0);
    htu_sleep_ms(150); /* past twice the read timeout: the sender is cut off */
    (void)htu_send(fd, "e", 1);
    htu_response r;
    assert_int_not_equal(htu_read_response(fd, &r), 0); /* no answer, the socket closed */
    htu_response_free(&r);
    close(fd);
    /* completion is reported on the server's thread: wait for it, bounded */
    for (int i = 0; i < 500 && dropped_read_timeout(m) < 1; i++)
        htu_sleep_ms(10);
    assert_true(dropped_read_timeout(m) == 1.0);
    svc_app_free(app);
    svc_metrics_free(m);
}

static void h_slow(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    htu_sleep_ms(150);
    assert_true(svc_req_remaining_ms(req) < 0);
    assert_int_equal(svc_res_text(res, 200, "late"), SVC_OK);
}

static void handler_past_deadline_is_replaced_by_503_timeout(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    o.handler_timeout_ms = 50;
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_route(app, "GET", "/slow", h_slow, NULL), SVC_OK);
    uint16_t port = start(app);
    htu_response r;
    assert_int_equal(htu_request(port, "GET", "/slow", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "\"code\":\"TIMEOUT\""));
    assert_non_null(htu_header(&r, "X-Request-Id"));
    htu_response_free(&r);
    svc_app_free(app);
}

/* ---- request id and trace context ----------------------------------------------------- */

static void h_ids(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    char buf[256];
    snprintf(buf, sizeof buf, "%s %s", svc_req_id(req), svc_req_trace_id(req));
    assert_int_equal(svc_res_text(res, 200, buf), SVC_OK);
}

static bool is_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdef", s[i]))
            return false;
    return true;
}

static void request_id_is_echoed_when_valid_else_generated(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_route(app, "GET", "/id", h_ids, NULL), SVC_OK);
    uint16_t port = start(app);
    htu_response r;
    assert_int_equal(htu_request(port, "GET", "/id", "X-Request-Id: abc.DEF_1:2-3\r\n", NULL, &r), 0);
    assert_string_equal(htu_header(&r, "X-Request-Id"), "abc.DEF_1:2-3");
    assert_true(strncmp(r.body, "abc.DEF_1:2-3 ", 14) == 0);
    htu_response_free(&r);

    assert_int_equal(htu_request(port, "GET", "/id", "X-Request-Id: bad id<script>\r\n", NULL, &r), 0);
    assert_true(is_hex(htu_header(&r, "X-Request-Id"), 32));
    htu_response_free(&r);

    assert_int_equal(htu_request(port, "GET", "/id", NULL, NULL, &r), 0);
    const char *id = htu_header(&r, "X-Request-Id");
    assert_non_null(id);
    assert_true(is_hex(id, 32));
    htu_response_free(&r);
    svc_app_free(app);
}

static void traceparent_continues_the_trace_and_traceresponse_is_opt_in(void **state)
{
    (void)state;
    const char *trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    const char *in = "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n";
    for (int variant = 0; variant <= 2; variant++) {
        /* 0: default, 1: the option, 2: http.trace_response in the configuration */
        int opt_in = variant > 0;
        svc_app_opts o;
        base_opts(&o);
        o.trace_response = variant == 1;
        svc_config *cfg = NULL;
        char eb[128];
        if (variant == 2) {
            assert_int_equal(svc_config_parse(&cfg, "http:\n  trace_response: true\n", eb, sizeof eb),
                             SVC_OK);
            o.config = cfg;
        }
        svc_app *app = new_app(&o);
        svc_config_free(cfg);
        assert_int_equal(svc_app_route(app, "GET", "/id", h_ids, NULL), SVC_OK);
        uint16_t port = start(app);
        htu_response r;
        assert_int_equal(htu_request(port, "GET", "/id", in, NULL, &r), 0);
        assert_non_null(strstr(r.body, trace)); /* the request carries the caller's trace */
        assert_null(htu_header(&r, "traceparent")); /* a request header, never echoed */
        const char *tr = htu_header(&r, "traceresponse");
        if (!opt_in) {
            assert_null(tr);
        } else {
            assert_non_null(tr);
            assert_int_equal(strlen(tr), 55);
            assert_true(strncmp(tr, "00-", 3) == 0);
            assert_true(strncmp(tr + 3, trace, 32) == 0);
            assert_int_equal(strspn(tr + 36, "0123456789abcdef"), 16);
            assert_false(strncmp(tr + 36, "00f067aa0ba902b7", 16) == 0); /* our own span */
            assert_string_equal(tr + 52, "-01");
        }
        htu_response_free(&r);

        /* all-zero trace id: refused, a new trace starts */
        assert_int_equal(htu_request(port, "GET", "/id",
                                     "traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01\r\n",
                                     NULL, &r),
                         0);
        assert_null(strstr(r.body, "00000000000000000000000000000000"));
        tr = htu_header(&r, "traceresponse");
        if (opt_in) {
            assert_non_null(tr);
            assert_false(strncmp(tr + 3, "00000000000000000000000000000000", 32) == 0);
            assert_true(strncmp(tr + 52, "-00", 3) == 0);
        }
        htu_response_free(&r);
        svc_app_free(app);
    }
}

/* ---- reused exchanges ----------------------------------------------------------------- */

static void h_len_of_body(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    size_t n = 0;
    const char *b = svc_req_body(req, &n);
    char out[64];
    snprintf(out, sizeof out, "%zu:%s", n, n ? "" : b);
    assert_int_equal(svc_res_text(res, 200, out), SVC_OK);
}

static void h_sized(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    long n = strtol(svc_req_param(req, "n"), NULL, 10);
    if (n == 0) {
        svc_res_status(res, 204);
        return;
    }
    char *big = malloc((size_t)n);
    assert_non_null(big);
    memset(big, 'x', (size_t)n);
    assert_int_equal(svc_res_body(res, big, (size_t)n), SVC_OK);
    free(big);
    svc_res_status(res, 200);
}

/* One server thread, so every request reuses the exchange (and its body
 * buffers) the one before left: nothing of an earlier body shows through. */
static void reused_exchanges_start_with_empty_bodies(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    o.threads = 1;
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_route(app, "POST", "/len", h_len_of_body, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/len", h_len_of_body, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/sized/{n}", h_sized, NULL), SVC_OK);
    uint16_t port = start(app);
    htu_response r;
    for (int round = 0; round < 3; round++) {
        assert_int_equal(htu_request(port, "POST", "/len", NULL, "secret=hunter2", &r), 0);
        assert_string_equal(r.body, "14:");
        htu_response_free(&r);
        assert_int_equal(htu_request(port, "GET", "/len", NULL, NULL, &r), 0);
        assert_string_equal(r.body, "0:"); /* no body, and nothing of the last one */
        htu_response_free(&r);
        /* answers larger than the kept buffers, then small and empty ones */
        static const char *const sizes[] = {"/sized/40000", "/sized/3", "/sized/0", "/sized/20000",
                                            "/sized/0"};
        static const int lens[] = {40000, 3, 0, 20000, 0};
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            assert_int_equal(htu_request(port, "GET", sizes[i], NULL, NULL, &r), 0);
            assert_int_equal(r.status, lens[i] ? 200 : 204);
            assert_int_equal(r.body_len, (size_t)lens[i]);
            htu_response_free(&r);
        }
    }
    svc_app_free(app);
}

/* ---- maintenance -------------------------------------------------------------------- */

static void maintenance_pauses_writes_but_serves_reads(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_route(app, "GET", "/r", h_hello, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "POST", "/r", h_hello, NULL), SVC_OK);
    uint16_t port = start(app);
    svc_app_set_maintenance(app, 1, 30);
    htu_response r;
    assert_int_equal(htu_request(port, "POST", "/r", NULL, "x", &r), 0);
    assert_int_equal(r.status, 503);
    assert_string_equal(htu_header(&r, "Retry-After"), "30");
    assert_non_null(strstr(r.body, "\"code\":\"UNAVAILABLE\""));
    htu_response_free(&r);
    assert_int_equal(htu_request(port, "GET", "/r", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    htu_response_free(&r);
    svc_app_set_maintenance(app, 0, 0);
    assert_int_equal(htu_request(port, "POST", "/r", NULL, "x", &r), 0);
    assert_int_equal(r.status, 200);
    htu_response_free(&r);
    svc_app_free(app);
}

/* ---- graceful shutdown ---------------------------------------------------------------- */

static atomic_int slow_entered, slow_release;

static void h_block(svc_req *req, svc_res *res, void *ud)
{
    (void)req, (void)ud;
    atomic_store(&slow_entered, 1);
    for (int i = 0; i < 1000 && !atomic_load(&slow_release); i++)
        htu_sleep_ms(5);
    assert_int_equal(svc_res_text(res, 200, "done"), SVC_OK);
}

typedef struct client_arg {
    uint16_t port;
    const char *path;
    htu_response r;
    int rc;
    pthread_t t;
} client_arg;

static void *get_client(void *p)
{
    client_arg *a = p;
    a->rc = htu_request(a->port, "GET", a->path, NULL, NULL, &a->r);
    return NULL;
}

/* An app whose GET `pattern` is `fn`, with the given shutdown grace, and a
 * client thread (ca->t) whose GET `path` is inside `fn` when this returns
 * (`fn` sets *entered, which is waited for, bounded). */
static svc_app *app_with_request_in_handler(unsigned grace_ms, const char *pattern,
                                            svc_handler_fn fn, const char *path,
                                            atomic_int *entered, client_arg *ca)
{
    svc_app_opts o;
    base_opts(&o);
    o.shutdown_grace_ms = grace_ms;
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_route(app, "GET", pattern, fn, NULL), SVC_OK);
    atomic_store(entered, 0);
    *ca = (client_arg){.port = start(app), .path = path};
    assert_int_equal(pthread_create(&ca->t, NULL, get_client, ca), 0);
    for (int i = 0; i < 1000 && !atomic_load(entered); i++)
        htu_sleep_ms(5);
    assert_true(atomic_load(entered));
    return app;
}

typedef struct shut_arg {
    svc_app *app;
    svc_status st;
} shut_arg;

static void *shutdown_thread(void *p)
{
    shut_arg *a = p;
    a->st = svc_app_shutdown(a->app);
    return NULL;
}

static void shutdown_finishes_in_flight_and_refuses_new_connections(void **state)
{
    (void)state;
    atomic_store(&slow_release, 0);
    client_arg ca;
    svc_app *app =
        app_with_request_in_handler(8000, "/block", h_block, "/block", &slow_entered, &ca);
    uint16_t port = ca.port;
    pthread_t st;

    shut_arg sa = {.app = app, .st = SVC_EINTERNAL};
    assert_int_equal(pthread_create(&st, NULL, shutdown_thread, &sa), 0);
    int refused = 0;
    for (int i = 0; i < 400 && !refused; i++) {
        int fd = htu_connect(port);
        if (fd < 0 && errno == ECONNREFUSED)
            refused = 1;
        else {
            if (fd >= 0)
                close(fd);
            htu_sleep_ms(5);
        }
    }
    assert_true(refused);
    atomic_store(&slow_release, 1);
    pthread_join(ca.t, NULL);
    pthread_join(st, NULL);
    assert_int_equal(ca.rc, 0);
    assert_int_equal(ca.r.status, 200);
    assert_string_equal(ca.r.body, "done");
    assert_int_equal(sa.st, SVC_OK);
    htu_response_free(&ca.r);
    assert_int_equal(svc_app_port(app), 0);
    svc_app_free(app);
}

static atomic_int late_entered, late_returned;

static void h_late(svc_req *req, svc_res *res, void *ud)
{
    (void)req, (void)ud;
    atomic_store(&late_entered, 1);
    htu_sleep_ms(800); /* far past the 100 ms grace */
    atomic_store(&late_returned, 1);
    assert_int_equal(svc_res_text(res, 200, "late"), SVC_OK);
}

/* Log lines at warn and above, kept for the test to read. */
static char warn_log[8192];
static size_t warn_log_len;
static pthread_mutex_t warn_log_mu = PTHREAD_MUTEX_INITIALIZER;

static void warn_sink(svc_log_level level, const char *line, size_t len, void *ctx)
{
    (void)ctx;
    if (level < SVC_LOG_WARN)
        return;
    pthread_mutex_lock(&warn_log_mu);
    if (warn_log_len + len < sizeof warn_log) {
        memcpy(warn_log + warn_log_len, line, len);
        warn_log_len += len;
        warn_log[warn_log_len] = '\0';
    }
    pthread_mutex_unlock(&warn_log_mu);
}

/* A handler still running when the grace ends cannot be stopped (C has no
 * safe way to cancel a thread): shutdown logs its route, closes the
 * connections, waits for the handler to return, drops its answer and
 * returns SVC_ETIMEDOUT. */
static void shutdown_names_routes_still_running_and_waits_for_them(void **state)
{
    (void)state;
    atomic_store(&late_returned, 0);
    warn_log_len = 0;
    warn_log[0] = '\0';
    svc_log_level saved = svc_log_get_level();
    svc_log_set_level(SVC_LOG_WARN);
    svc_log_set_sink(warn_sink, NULL);
    client_arg ca;
    svc_app *app =
        app_with_request_in_handler(100, "/late/{id}", h_late, "/late/7", &late_entered, &ca);
    assert_int_equal(svc_app_shutdown(app), SVC_ETIMEDOUT);
    assert_true(atomic_load(&late_returned)); /* it waited for the handler */
    pthread_join(ca.t, NULL);
    svc_log_set_sink(NULL, NULL);
    svc_log_set_level(saved);

    assert_int_not_equal(ca.r.status, 200); /* the late answer was not sent */
    htu_response_free(&ca.r);
    assert_non_null(strstr(warn_log, "still running"));
    assert_non_null(strstr(warn_log, "\"routes\":\"GET /late/{id}\""));
    assert_non_null(strstr(svc_app_errmsg(app), "GET /late/{id}"));
    svc_app_free(app);
}

static void *stopper(void *p)
{
    htu_sleep_ms(50);
    svc_app_stop(p);
    return NULL;
}

static void run_returns_after_stop(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    svc_app *app = new_app(&o);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stopper, app), 0);
    assert_int_equal(svc_app_run(app), SVC_OK);
    pthread_join(t, NULL);
    svc_app_free(app);
}

typedef struct run_ctl {
    svc_app *app;
    atomic_int done;
    svc_status st;
} run_ctl;

static void *run_thread(void *arg)
{
    run_ctl *c = arg;
    c->st = svc_app_run(c->app);
    atomic_store(&c->done, 1);
    return NULL;
}

static void stop_before_run_does_not_stop_the_next_run(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_route(app, "GET", "/hello", h_hello, NULL), SVC_OK);
    svc_app_stop(app);
    assert_int_equal(svc_app_run(app), SVC_OK); /* returns at once: stop came first */

    run_ctl c = {.app = app};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_thread, &c), 0);
    for (int i = 0; i < 1000 && svc_app_port(app) == 0 && !atomic_load(&c.done); i++)
        htu_sleep_ms(10); /* bounded: 10 s */
    uint16_t port = svc_app_port(app);
    assert_true(port > 0);
    htu_response r;
    assert_int_equal(htu_request(port, "GET", "/hello", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    htu_response_free(&r);
    assert_int_equal(atomic_load(&c.done), 0); /* the second run still serves */
    svc_app_stop(app);
    pthread_join(t, NULL);
    assert_int_equal(c.st, SVC_OK);
    svc_app_free(app);
}

typedef struct port_watch {
    svc_app *app;
    atomic_int stop;
    atomic_int nonzero; /* reads that saw a port */
} port_watch;

static void *port_watcher(void *p)
{
    port_watch *w = p;
    for (long i = 0; i < 50000000 && !atomic_load(&w->stop); i++)
        if (svc_app_port(w->app) != 0)
            atomic_fetch_add(&w->nonzero, 1);
    return NULL;
}

/* svc_app_port() may be called from any thread while another starts and
 * shuts the app down (a data race before; ThreadSanitizer builds check it):
 * it gives the port while serving and 0 otherwise. */
static void port_is_read_safely_while_starting_and_stopping(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    o.shutdown_grace_ms = 0;
    svc_app *app = new_app(&o);
    port_watch w = {.app = app};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, port_watcher, &w), 0);
    for (int i = 0; i < 3; i++) {
        uint16_t port = start(app);
        for (int k = 0; k < 200 && atomic_load(&w.nonzero) == 0; k++)
            htu_sleep_ms(5);
        assert_int_equal(svc_app_port(app), port);
        assert_int_equal(svc_app_shutdown(app), SVC_OK);
        assert_int_equal(svc_app_port(app), 0);
    }
    atomic_store(&w.stop, 1);
    pthread_join(t, NULL);
    assert_true(atomic_load(&w.nonzero) > 0);
    svc_app_free(app);
}

static void options_are_validated(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    o.max_body_bytes = 0;
    svc_app *app = NULL;
    assert_int_equal(svc_app_new(&app, &o), SVC_EINVAL);
    assert_null(app);
    base_opts(&o);
    o.bind_addr = "256.1.1.1";
    app = new_app(&o);
    assert_int_equal(svc_app_start(app), SVC_EIO);
    assert_true(strlen(svc_app_errmsg(app)) > 0);
    svc_app_free(app);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_is_served_and_head_sends_no_body),
        cmocka_unit_test(unknown_path_404_and_wrong_method_405_with_allow),
        cmocka_unit_test(access_log_writes_one_line_per_request),
        cmocka_unit_test(middleware_runs_by_stage_then_registration),
        cmocka_unit_test(request_api_exposes_query_headers_params_and_json),
        cmocka_unit_test(duplicate_response_headers_survive_on_the_wire),
        cmocka_unit_test(oversized_bodies_get_413),
        cmocka_unit_test(slow_body_gets_408),
        cmocka_unit_test(slowly_sent_headers_get_408),
        cmocka_unit_test(body_still_arriving_after_twice_the_read_timeout_is_dropped_and_counted),
        cmocka_unit_test(te_with_content_length_is_refused_and_the_connection_closed),
        cmocka_unit_test(conflicting_content_lengths_and_bad_header_names_are_refused),
        cmocka_unit_test(handler_past_deadline_is_replaced_by_503_timeout),
        cmocka_unit_test(request_id_is_echoed_when_valid_else_generated),
        cmocka_unit_test(traceparent_continues_the_trace_and_traceresponse_is_opt_in),
        cmocka_unit_test(reused_exchanges_start_with_empty_bodies),
        cmocka_unit_test(maintenance_pauses_writes_but_serves_reads),
        cmocka_unit_test(shutdown_finishes_in_flight_and_refuses_new_connections),
        cmocka_unit_test(shutdown_names_routes_still_running_and_waits_for_them),
        cmocka_unit_test(run_returns_after_stop),
        cmocka_unit_test(stop_before_run_does_not_stop_the_next_run),
        cmocka_unit_test(port_is_read_safely_while_starting_and_stopping),
        cmocka_unit_test(options_are_validated),
    };
    return cmocka_run_group_tests_name("http_app", tests, NULL, NULL);
}
