/*
 * tests/http/test_validate.c - hostile requests over raw sockets: a request
 * libmicrohttpd gives up on mid-headers releases what it holds; bytes that
 * RFC 9110 / 9112 / 3986 do not allow in the request line or the header
 * values get 400 problem+json with Connection: close, before routing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "http/http_internal.h"
#include "http_test_util.h"
#include "svcinfra/http.h"
#include "svcinfra/log.h"
#include "svcinfra/metrics.h"

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void h_echo(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    const char *probe = svc_req_header(req, "X-Probe");
    const char *name = svc_req_param(req, "name");
    char body[512];
    snprintf(body, sizeof body, "%s|%s|%s", svc_req_path(req), name ? name : "",
             probe ? probe : "");
    assert_int_equal(svc_res_text(res, 200, body), SVC_OK);
}

typedef struct fixture {
    svc_app *app;
    svc_metrics *metrics;
    uint16_t port;
} fixture;

static void fx_start(fixture *fx, unsigned grace_ms)
{
    memset(fx, 0, sizeof *fx);
    assert_int_equal(svc_metrics_new(&fx->metrics), SVC_OK);
    svc_app_opts o;
    svc_app_opts_default(&o);
    o.port = 0;
    o.threads = 2;
    o.access_log = 0;
    o.shutdown_grace_ms = grace_ms;
    o.metrics = fx->metrics;
    assert_int_equal(svc_app_new(&fx->app, &o), SVC_OK);
    assert_int_equal(svc_add_metrics(fx->app, NULL), SVC_OK);
    assert_int_equal(svc_app_route(fx->app, "GET", "/healthz", h_echo, NULL), SVC_OK);
    assert_int_equal(svc_app_route(fx->app, "GET", "/a", h_echo, NULL), SVC_OK);
    assert_int_equal(svc_app_route(fx->app, "GET", "/hello/{name}", h_echo, NULL), SVC_OK);
    assert_int_equal(svc_app_route(fx->app, "GET", "/admin", h_echo, NULL), SVC_OK);
    assert_int_equal(svc_app_start(fx->app), SVC_OK);
    fx->port = svc_app_port(fx->app);
    assert_true(fx->port > 0);
}

static double inflight(const fixture *fx)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(svc_metrics_render(fx->metrics, &text, &len), SVC_OK);
    const char *p = strstr(text, "\nhttp_server_inflight_requests ");
    assert_non_null(p);
    double v = strtod(p + strlen("\nhttp_server_inflight_requests "), NULL);
    free(text);
    return v;
}

/* ---- a request libmicrohttpd gives up on --------------------------------------- */

/* Sends `GET /a?&&&...` (290 empty arguments) and ~15 KB of header lines:
 * libmicrohttpd 0.9.75 runs out of its per-connection pool ("Not enough
 * memory in pool"), answers 431 or nothing, and never reports the request
 * completed. */
static void send_pool_exhausting_request(uint16_t port)
{
    size_t cap = 32 * 1024, n = 0;
    char *req = malloc(cap);
    assert_non_null(req);
    n += (size_t)snprintf(req + n, cap - n, "GET /a?");
    memset(req + n, '&', 290);
    n += 290;
    n += (size_t)snprintf(req + n, cap - n, " HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 150; i++)
        n += (size_t)snprintf(req + n, cap - n, "X-Fill-%03d: %090d\r\n", i, i);
    n += (size_t)snprintf(req + n, cap - n, "\r\n");
    int fd = htu_connect(port);
    assert_true(fd >= 0);
    assert_int_equal(htu_send(fd, req, n), 0);
    /* libmicrohttpd may keep the socket open until its timeout after
     * answering: the client goes away instead of waiting */
    htu_sleep_ms(50);
    close(fd);
    free(req);
}

static void request_that_exhausts_the_connection_pool_releases_its_exchange(void **state)
{
    (void)state;
    fixture fx;
    fx_start(&fx, 3000);
    for (int i = 0; i < 8; i++)
        send_pool_exhausting_request(fx.port);
    double v = -1;
    for (int i = 0; i < 200 && (v = inflight(&fx)) != 0; i++)
        htu_sleep_ms(10);
    assert_true(v == 0);
    /* still serving */
    htu_response r;
    assert_int_equal(htu_request(fx.port, "GET", "/healthz", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    htu_response_free(&r);
    int64_t t0 = mono_ms();
    assert_int_equal(svc_app_shutdown(fx.app), SVC_OK);
    assert_true(mono_ms() - t0 < 1500); /* not the 3 s grace */
    svc_app_free(fx.app);
    svc_metrics_free(fx.metrics);
}


/* ---- hostile request lines and headers -------------------------------------- */

/* One raw request (the part after the method, up to the end of the headers
 * but for Host and Connection) and what it must get: 400 problem+json with
 * Connection: close, or 200 with `want` as "path|name|X-Probe". */
typedef struct hostile {
    const char *name;
    const char *line; /* target, may hold NULs: `len` bytes */
    size_t len;
    const char *headers; /* extra header lines, may hold NULs: `hlen` bytes */
    size_t hlen;
    int status;
    const char *want;
} hostile;

#define S(lit) lit, sizeof(lit) - 1
static const hostile hostile_rows[] = {
    {"NUL in the target cuts the path short", S("/healthz\0/../admin"), S(""), 400, NULL},
    {"NUL in a path parameter", S("/hello/x\0y"), S(""), 400, NULL},
    {"NUL in the query", S("/a?q=1\0&admin=1"), S(""), 400, NULL},
    {"NUL in a header value, not the last", S("/a"), S("X-Probe: left\0right\r\nX-B: 1\r\n"), 400,
     NULL},
    {"NUL in the last header value", S("/a"), S("X-Probe: left\0right\r\n"), 400, NULL},
    {"space in the target", S("/hello/a b"), S(""), 400, NULL},
    {"tab in the target", S("/hello/a\tb"), S(""), 400, NULL},
    {"C0 control in the target", S("/hello/a\x01" "b"), S(""), 400, NULL},
    {"ESC in the target", S("/hello/a\x1b[0m"), S(""), 400, NULL},
    {"DEL in the target", S("/hello/a\x7f"), S(""), 400, NULL},
    {"malformed escape %zz", S("/hello/%zz"), S(""), 400, NULL},
    {"escape cut short %2", S("/hello/%2"), S(""), 400, NULL},
    {"lone % at the end", S("/hello/%"), S(""), 400, NULL},
    {"malformed escape in the query", S("/a?x=%zz"), S(""), 400, NULL},
    {"escaped NUL", S("/hello/a%00b"), S(""), 400, NULL},
    {"escaped LF", S("/hello/a%0ab"), S(""), 400, NULL},
    {"escaped DEL", S("/hello/a%7F"), S(""), 400, NULL},
    {"overlong '/' %C0%AF", S("/nope/%C0%AF"), S(""), 400, NULL},
    {"overlong 3-byte NUL", S("/hello/%E0%80%80"), S(""), 400, NULL},
    {"escaped lone 0xFF", S("/hello/%ff"), S(""), 400, NULL},
    {"escaped surrogate", S("/hello/%ED%A0%80"), S(""), 400, NULL},
    {"truncated sequence", S("/hello/%C3"), S(""), 400, NULL},
    {"raw 0xFF in the path", S("/nope/\xff"), S(""), 400, NULL},
    {"raw overlong in the path", S("/nope/\xc0\xaf"), S(""), 400, NULL},
    {"C0 control in a header value", S("/a"), S("X-Probe: a\x01" "b\r\n"), 400, NULL},
    {"ESC in a header value", S("/a"), S("X-Probe: \x1b[2J\r\n"), 400, NULL},
    {"DEL in a header value", S("/a"), S("X-Probe: a\x7f\r\nX-B: 1\r\n"), 400, NULL},
    /* what must still pass */
    {"escaped percent stays data", S("/hello/%25zz"), S(""), 200, "/hello/%zz|%zz|"},
    {"escaped UTF-8", S("/hello/caf%C3%A9"), S(""), 200, "/hello/caf\xc3\xa9|caf\xc3\xa9|"},
    {"raw UTF-8", S("/hello/caf\xc3\xa9"), S(""), 200, "/hello/caf\xc3\xa9|caf\xc3\xa9|"},
    {"HTAB in a header value", S("/a"), S("X-Probe: a\tb\r\n"), 200, "/a||a\tb"},
    {"obs-text in a header value", S("/a"), S("X-Probe: \xe9t\xe9\r\n"), 200, "/a||\xe9t\xe9"},
    {"trailing whitespace before the next line", S("/a"), S("X-Probe: v \t \r\nX-B: 1\r\n"), 200,
     "/a||v \t "},
    {"empty header value", S("/a"), S("X-Probe:\r\nX-B: 1\r\n"), 200, "/a||"},
    {"empty last header value", S("/a"), S("X-B: 1\r\nX-Probe:\r\n"), 200, "/a||"},
    {"LF-only line ends", S("/a"), S("X-Probe: v\nX-B: 1\n"), 200, "/a||v"},
    {"query with escapes", S("/a?x=%41+b&y"), S(""), 200, "/a||"},
};
#undef S

static void send_hostile(uint16_t port, const hostile *h, htu_response *r)
{
    char req[1024];
    size_t n = 0;
    memcpy(req + n, "GET ", 4), n += 4;
    memcpy(req + n, h->line, h->len), n += h->len;
    static const char mid[] = " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
    memcpy(req + n, mid, sizeof mid - 1), n += sizeof mid - 1;
    memcpy(req + n, h->headers, h->hlen), n += h->hlen;
    memcpy(req + n, "\r\n", 2), n += 2;
    assert_int_equal(htu_roundtrip(port, req, n, r), 0);
}

static void hostile_request_lines_and_headers_get_400_before_routing(void **state)
{
    (void)state;
    fixture fx;
    fx_start(&fx, 3000);
    for (size_t i = 0; i < sizeof hostile_rows / sizeof hostile_rows[0]; i++) {
        const hostile *h = &hostile_rows[i];
        htu_response r;
        send_hostile(fx.port, h, &r);
        if (r.status != h->status)
            fail_msg("%s: status %d, expected %d (%s)", h->name, r.status, h->status, r.body);
        if (h->status == 200) {
            if (strcmp(r.body, h->want) != 0)
                fail_msg("%s: handler saw \"%s\", expected \"%s\"", h->name, r.body, h->want);
        } else {
            const char *ct = htu_header(&r, "Content-Type");
            const char *conn = htu_header(&r, "Connection");
            if (!ct || strcmp(ct, "application/problem+json") != 0 || !conn ||
                strcmp(conn, "close") != 0)
                fail_msg("%s: Content-Type %s, Connection %s", h->name, ct ? ct : "-",
                         conn ? conn : "-");
            json_error_t je;
            json_t *j = json_loadb(r.body, r.body_len, 0, &je);
            if (j == NULL)
                fail_msg("%s: body is not JSON (%s): %s", h->name, je.text, r.body);
            assert_string_equal(json_string_value(json_object_get(j, "code")), "VALIDATION");
            assert_non_null(json_string_value(json_object_get(j, "instance")));
            assert_non_null(json_string_value(json_object_get(j, "detail")));
            json_decref(j);
        }
        htu_response_free(&r);
    }
    assert_int_equal(svc_app_shutdown(fx.app), SVC_OK);
    svc_app_free(fx.app);
    svc_metrics_free(fx.metrics);
}

/* ---- every JSON written is valid UTF-8 JSON ------------------------------------ */

typedef struct lines {
    char *last;
    size_t len, count;
} lines;

static void keep_line(svc_log_level level, const char *line, size_t len, void *ctx)
{
    (void)level;
    lines *l = ctx;
    free(l->last);
    l->last = malloc(len + 1);
    assert_non_null(l->last);
    memcpy(l->last, line, len);
    l->last[len] = '\0';
    l->len = len;
    l->count++;
}

/* xorshift64*: the same bytes on every run */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

/* Random bytes, biased towards what breaks JSON: controls, quotes,
 * backslashes, lead and continuation bytes, "://" and '@'. */
static void random_bytes(uint64_t *seed, char *out, size_t n)
{
    static const char pick[] = "\"\\\x01\x1f\x7f\xc0\xaf\xe0\x80\xed\xa0\xf4\x90\xff\xc3\xa9:/@a";
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rnd(seed);
        out[i] = (r & 1) ? (char)(r >> 8) : pick[(r >> 8) % (sizeof pick - 1)];
        if (out[i] == '\0')
            out[i] = 'x';
    }
    out[n] = '\0';
}

static void random_bytes_through_the_log_and_problem_writers_give_valid_json(void **state)
{
    (void)state;
    lines got = {0};
    svc_log_set_sink(keep_line, &got);
    svc_log_set_level(SVC_LOG_INFO);
    svc_app_opts o;
    svc_app_opts_default(&o);
    o.default_middleware = 0;
    svc_app *app = NULL;
    assert_int_equal(svc_app_new(&app, &o), SVC_OK);
    uint64_t seed = UINT64_C(0x9E3779B97F4A7C15);
    char *buf = malloc(40000);
    assert_non_null(buf);
    for (int round = 0; round < 3000; round++) {
        /* now and then longer than the log's 16 KiB cut */
        size_t n = round % 100 == 0 ? 17000 + rnd(&seed) % 20000 : rnd(&seed) % 200;
        random_bytes(&seed, buf, n);
        json_error_t je;

        svc_log_field f[] = {svc_log_field_str("v", buf)};
        size_t before = got.count;
        svc_log_kv(SVC_LOG_INFO, buf, f, 1);
        assert_int_equal(got.count, before + 1);
        json_t *j = json_loadb(got.last, got.len, 0, &je);
        if (j == NULL)
            fail_msg("log line %d is not valid JSON: %s", round, je.text);
        json_decref(j);

        svc__exchange *ex = svc__exchange_new(app, "/x");
        assert_non_null(ex);
        ex->req.method = "GET";
        ex->req.path = buf; /* whatever the path held */
        assert_int_equal(svc_res_problem(&ex->res, 400, SVC_PROBLEM_VALIDATION, buf), SVC_OK);
        size_t bl = 0;
        const char *body = svc_res_get_body(&ex->res, &bl);
        j = json_loadb(body, bl, 0, &je);
        if (j == NULL)
            fail_msg("problem body %d is not valid JSON: %s", round, je.text);
        json_decref(j);
        svc__exchange_free(ex);
    }
    free(buf);
    svc_app_free(app);
    svc_log_set_sink(NULL, NULL);
    free(got.last);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_that_exhausts_the_connection_pool_releases_its_exchange),
        cmocka_unit_test(hostile_request_lines_and_headers_get_400_before_routing),
        cmocka_unit_test(random_bytes_through_the_log_and_problem_writers_give_valid_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
