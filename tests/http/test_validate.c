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
        cmocka_unit_test(random_bytes_through_the_log_and_problem_writers_give_valid_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
