/*
 * tests/http/test_ops.c - the operations surface of svc_app over loopback:
 * security headers, CORS, probes and readiness checks, request metrics and
 * the /metrics endpoint.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <jansson.h>

#include "http_test_util.h"
#include "svcinfra/http.h"
#include "svcinfra/alloc.h"
#include "svcinfra/metrics.h"

/* ---- helpers ------------------------------------------------------------------- */

typedef struct fixture {
    svc_app *app;
    svc_metrics *metrics;
    uint16_t port;
} fixture;

static void fx_new_grace(fixture *fx, int default_mw, unsigned shutdown_grace_ms)
{
    memset(fx, 0, sizeof(*fx));
    assert_int_equal(svc_metrics_new(&fx->metrics), SVC_OK);
    svc_app_opts o;
    svc_app_opts_default(&o);
    o.port = 0;
    o.threads = 2;
    o.access_log = 0;
    o.default_middleware = default_mw;
    o.shutdown_grace_ms = shutdown_grace_ms;
    o.metrics = fx->metrics;
    assert_int_equal(svc_app_new(&fx->app, &o), SVC_OK);
}

static void fx_new(fixture *fx, int default_mw)
{
    fx_new_grace(fx, default_mw, 10000);
}

static void fx_start(fixture *fx)
{
    assert_int_equal(svc_app_start(fx->app), SVC_OK);
    fx->port = svc_app_port(fx->app);
    assert_true(fx->port > 0);
}

static void fx_free(fixture *fx)
{
    svc_app_free(fx->app);
    svc_metrics_free(fx->metrics);
}

static atomic_int handler_runs;

static void h_hello(svc_req *req, svc_res *res, void *ud)
{
    (void)req, (void)ud;
    atomic_fetch_add(&handler_runs, 1);
    assert_int_equal(svc_res_text(res, 200, "hello"), SVC_OK);
}

static void get(const fixture *fx, const char *path, const char *headers, htu_response *r)
{
    assert_int_equal(htu_request(fx->port, "GET", path, headers, NULL, r), 0);
}

static json_t *body_json(const htu_response *r)
{
    json_error_t err;
    json_t *j = json_loads(r->body, 0, &err);
    assert_non_null(j);
    return j;
}

/* ---- security headers ----------------------------------------------------------- */

static void security_headers_are_added_by_default(void **state)
{
    (void)state;
    fixture fx;
    fx_new(&fx, 1);
    assert_int_equal(svc_app_route(fx.app, "GET", "/hello", h_hello, NULL), SVC_OK);
    fx_start(&fx);
    htu_response r;
    get(&fx, "/hello", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(htu_header(&r, "X-Content-Type-Options"), "nosniff");
    assert_string_equal(htu_header(&r, "X-Frame-Options"), "DENY");
    assert_null(htu_header(&r, "Referrer-Policy")); /* for HTML pages; add it with svc_add_security_headers() */
    assert_string_equal(htu_header(&r, "Content-Security-Policy"),
                        "default-src 'none'; frame-ancestors 'none'");
    assert_null(htu_header(&r, "Strict-Transport-Security"));
    htu_response_free(&r);
    /* problems get them too */
    get(&fx, "/missing", NULL, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(htu_header(&r, "X-Content-Type-Options"), "nosniff");
    htu_response_free(&r);
    fx_free(&fx);
}

static void h_own_headers(svc_req *req, svc_res *res, void *ud)
{
    (void)req, (void)ud;
    assert_int_equal(svc_res_header_set(res, "x-frame-options", "SAMEORIGIN"), SVC_OK);
    assert_int_equal(svc_res_header_add(res, "Content-Security-Policy", "img-src 'self'"), SVC_OK);
    assert_int_equal(svc_res_header_add(res, "Content-Security-Policy", "script-src 'none'"),
                     SVC_OK);
    assert_int_equal(svc_res_text(res, 200, "own"), SVC_OK);
}

static void handler_headers_win_and_duplicates_are_kept(void **state)
{
    (void)state;
    fixture fx;
    fx_new(&fx, 1);
    assert_int_equal(svc_app_route(fx.app, "GET", "/own", h_own_headers, NULL), SVC_OK);
    fx_start(&fx);
    htu_response r;
    get(&fx, "/own", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(htu_header_count(&r, "X-Frame-Options"), 1);
    assert_string_equal(htu_header(&r, "X-Frame-Options"), "SAMEORIGIN");
    assert_int_equal(htu_header_count(&r, "Content-Security-Policy"), 2);
    assert_string_equal(htu_header_at(&r, "Content-Security-Policy", 0), "img-src 'self'");
    assert_string_equal(htu_header_at(&r, "Content-Security-Policy", 1), "script-src 'none'");
    assert_string_equal(htu_header(&r, "X-Content-Type-Options"), "nosniff");
    htu_response_free(&r);
    fx_free(&fx);
}

static void custom_security_headers_replace_the_default_list(void **state)
{
    (void)state;
    fixture fx;
    fx_new(&fx, 1);
    static const char *const mine[] = {"X-Custom", "1", "Permissions-Policy", "camera=()",
                                       NULL};
    svc_security_headers_opts so = {0};
    so.headers = mine;
    so.hsts_max_age_s = 3600;
    assert_int_equal(svc_add_security_headers(fx.app, &so), SVC_OK);
    assert_int_equal(svc_app_route(fx.app, "GET", "/hello", h_hello, NULL), SVC_OK);
    /* still one middleware, not a second one */
    char names[512];
    svc_app_middleware_names(fx.app, names, sizeof names);
    char *first = strstr(names, "security_headers");
    assert_non_null(first);
    assert_null(strstr(first + 1, "security_headers"));
    fx_start(&fx);
    htu_response r;
    get(&fx, "/hello", NULL, &r);
    assert_string_equal(htu_header(&r, "X-Custom"), "1");
    assert_string_equal(htu_header(&r, "Permissions-Policy"), "camera=()");
    assert_string_equal(htu_header(&r, "Strict-Transport-Security"),
                        "max-age=3600; includeSubDomains");
    assert_null(htu_header(&r, "X-Frame-Options"));
    htu_response_free(&r);
    fx_free(&fx);
}

static void security_headers_without_default_middleware_are_installed_once(void **state)
{
    (void)state;
    fixture fx;
    fx_new(&fx, 0);
    assert_int_equal(svc_add_security_headers(fx.app, NULL), SVC_OK);
    assert_int_equal(svc_app_route(fx.app, "GET", "/hello", h_hello, NULL), SVC_OK);
    fx_start(&fx);
    htu_response r;
    get(&fx, "/hello", NULL, &r);
    assert_string_equal(htu_header(&r, "X-Frame-Options"), "DENY");
    htu_response_free(&r);
    fx_free(&fx);
}

static void bad_security_header_lists_are_refused(void **state)
{
    (void)state;
    fixture fx;
    fx_new(&fx, 1);
    svc_security_headers_opts so = {0};
    static const char *const bad_name[] = {"Bad Name", "x", NULL};
    static const char *const crlf[] = {"X-Ok", "a\r\nInjected: 1", NULL};
    static const char *const odd[] = {"X-Ok", NULL};
    so.headers = bad_name;
    assert_int_equal(svc_add_security_headers(fx.app, &so), SVC_EINVAL);
    assert_non_null(strstr(svc_app_errmsg(fx.app), "Bad Name"));
    so.headers = crlf;
    assert_int_equal(svc_add_security_headers(fx.app, &so), SVC_EINVAL);
    so.headers = odd;
    assert_int_equal(svc_add_security_headers(fx.app, &so), SVC_EINVAL);
    /* the default list is still in force */
    assert_int_equal(svc_app_route(fx.app, "GET", "/hello", h_hello, NULL), SVC_OK);
    fx_start(&fx);
    htu_response r;
    get(&fx, "/hello", NULL, &r);
    assert_string_equal(htu_header(&r, "X-Frame-Options"), "DENY");
    htu_response_free(&r);
    assert_int_equal(svc_add_security_headers(fx.app, NULL), SVC_EBUSY);
    fx_free(&fx);
}

static void security_header_values_with_control_bytes_are_refused_at_configuration(void **state)
{
    (void)state;
    fixture fx;
    fx_new(&fx, 1);
    svc_security_headers_opts so = {0};
    static const char *const custom[] = {"X-Custom", "kept", NULL};
    so.headers = custom;
    assert_int_equal(svc_add_security_headers(fx.app, &so), SVC_OK);
    /* the same rule as svc_res_header_set(): every control byte but HTAB, and DEL */
    static const char *const soh[] = {"X-Ok", "fine", "X-Bad", "a\x01" "b", NULL};
    static const char *const del[] = {"X-Bad", "a\x7f", NULL};
    static const char *const tab[] = {"X-Custom", "a\tb", "X-Other", "x", NULL};
    so.headers = soh;
    assert_int_equal(svc_add_security_headers(fx.app, &so), SVC_EINVAL);
    assert_non_null(strstr(svc_app_errmsg(fx.app), "X-Bad"));
    so.headers = del;
    assert_int_equal(svc_add_security_headers(fx.app, &so), SVC_EINVAL);
    assert_int_equal(svc_app_route(fx.app, "GET", "/hello", h_hello, NULL), SVC_OK);
    fx_start(&fx);
    htu_response r;
    get(&fx, "/hello", NULL, &r);
    assert_string_equal(htu_header(&r, "X-Custom"), "kept"); /* the previous list stays */
    assert_null(htu_header(&r, "X-Ok"));
    assert_null(htu_header(&r, "X-Bad"));
    htu_response_free(&r);
    fx_free(&fx);

    /* a tab is fine, and every header of the list is sent */
    fx_new(&fx, 1);
    so.headers = tab;
    assert_int_equal(svc_add_security_headers(fx.app, &so), SVC_OK);
    assert_int_equal(svc_app_route(fx.app, "GET", "/hello", h_hello, NULL), SVC_OK);
    fx_start(&fx);
    get(&fx, "/hello", NULL, &r);
    assert_string_equal(htu_header(&r, "X-Custom"), "a\tb");
    assert_string_equal(htu_header(&r, "X-Other"), "x");
    htu_response_free(&r);
    fx_free(&fx);
}

/* ---- CORS ---------------------------------------------------------------------- */

static const char *const origins[] = {"https://app.example.com", "http://localhost:3000", NULL};

/* expose: NULL for the default (none) */
static void cors_app(fixture *fx, int credentials, const char *expose)
{
    fx_new(fx, 1);
    svc_cors_opts co;
    svc_cors_opts_default(&co);
    co.allow_origins = origins;
    co.allow_credentials = credentials;
    if (expose)
        co.expose_headers = expose;
    assert_int_equal(svc_add_cors(fx->app, &co), SVC_OK);
    assert_int_equal(svc_app_route(fx->app, "GET", "/hello", h_hello, NULL), SVC_OK);
    assert_int_equal(svc_app_route(fx->app, "POST", "/hello", h_hello, NULL), SVC_OK);
    fx_start(fx);
}

static bool vary_has_origin(const htu_response *r)
{
    for (size_t i = 0; i < htu_header_count(r, "Vary"); i++) {
        if (strstr(htu_header_at(r, "Vary", i), "Origin"))
            return true;
    }
    return false;
}

static void cors_allowed_origin_is_echoed_with_vary(void **state)
{
    (void)state;
    fixture fx;
    cors_app(&fx, 0, NULL);
    htu_response r;
    get(&fx, "/hello", "Origin: http://localhost:3000\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(htu_header(&r, "Access-Control-Allow-Origin"), "http://localhost:3000");
    assert_null(htu_header(&r, "Access-Control-Expose-Headers")); /* none by default */
    assert_null(htu_header(&r, "Access-Control-Allow-Credentials"));
    assert_true(vary_has_origin(&r));
    htu_response_free(&r);
    /* no Origin: served, no CORS headers, still Vary */
    get(&fx, "/hello", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_null(htu_header(&r, "Access-Control-Allow-Origin"));
    assert_true(vary_has_origin(&r));
    htu_response_free(&r);
    fx_free(&fx);
}

static void cors_exposes_the_configured_headers_to_allowed_origins(void **state)
{
    (void)state;
    fixture fx;
    cors_app(&fx, 0, "X-Request-Id, RateLimit");
    htu_response r;
    get(&fx, "/hello", "Origin: http://localhost:3000\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(htu_header(&r, "Access-Control-Expose-Headers"), "X-Request-Id, RateLimit");
    htu_response_free(&r);
    get(&fx, "/hello", NULL, &r); /* not a CORS request */
    assert_null(htu_header(&r, "Access-Control-Expose-Headers"));
    htu_response_free(&r);
    fx_free(&fx);
}

static void h_vary(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    const char *v = svc_req_query_param(req, "v");
    assert_int_equal(svc_res_header_add(res, "Vary", v), SVC_OK);
    assert_int_equal(svc_res_text(res, 200, "vary"), SVC_OK);
}

static void cors_vary_is_merged_with_the_handlers_own(void **state)
{
    (void)state;
    fixture fx;
    fx_new(&fx, 1);
    svc_cors_opts co;
    svc_cors_opts_default(&co);
    co.allow_origins = origins;
    assert_int_equal(svc_add_cors(fx.app, &co), SVC_OK);
    assert_int_equal(svc_app_route(fx.app, "GET", "/vary", h_vary, NULL), SVC_OK);
    fx_start(&fx);
    htu_response r;
    /* a token that merely contains "origin" does not count */
    get(&fx, "/vary?v=Accept-Encoding,%20X-Origin-Hint", NULL, &r);
    assert_int_equal(htu_header_count(&r, "Vary"), 2);
    assert_string_equal(htu_header_at(&r, "Vary", 1), "Origin");
    htu_response_free(&r);
    /* the handler already varies on Origin: nothing added */
    get(&fx, "/vary?v=accept-encoding,%20origin", NULL, &r);
    assert_int_equal(htu_header_count(&r, "Vary"), 1);
    htu_response_free(&r);
    fx_free(&fx);
}

static void cors_denied_origin_gets_no_cors_headers(void **state)
{
    (void)state;
    fixture fx;
    cors_app(&fx, 0, "X-Request-Id"); /* listed, still not sent to them */
    htu_response r;
    /* near misses: another scheme, port, a suffix, case */
    const char *denied[] = {"Origin: https://evil.example\r\n",
                            "Origin: http://app.example.com\r\n",
                            "Origin: https://app.example.com:8443\r\n",
                            "Origin: https://app.example.com.evil.example\r\n",
                            "Origin: https://APP.example.com\r\n"};
    for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) {
        get(&fx, "/hello", denied[i], &r);
        assert_int_equal(r.status, 200);
        assert_null(htu_header(&r, "Access-Control-Allow-Origin"));
        assert_null(htu_header(&r, "Access-Control-Expose-Headers"));
        assert_true(vary_has_origin(&r));
        htu_response_free(&r);
    }
    fx_free(&fx);
}

static void cors_preflight_is_204_for_allowed_and_403_for_others(void **state)
{
    (void)state;
    fixture fx;
    cors_app(&fx, 1, NULL);
    int before = atomic_load(&handler_runs);
    htu_response r;
    assert_int_equal(htu_request(fx.port, "OPTIONS", "/hello",
                                 "Origin: https://app.example.com\r\n"
                                 "Access-Control-Request-Method: POST\r\n"
                                 "Access-Control-Request-Headers: content-type\r\n",
                                 NULL, &r),
                     0);
    assert_int_equal(r.status, 204);
    assert_string_equal(htu_header(&r, "Access-Control-Allow-Origin"), "https://app.example.com");
    assert_string_equal(htu_header(&r, "Access-Control-Allow-Credentials"), "true");
    assert_non_null(strstr(htu_header(&r, "Access-Control-Allow-Methods"), "POST"));
    assert_non_null(strstr(htu_header(&r, "Access-Control-Allow-Headers"), "Content-Type"));
    assert_string_equal(htu_header(&r, "Access-Control-Max-Age"), "600");
    assert_true(vary_has_origin(&r));
    htu_response_free(&r);

    assert_int_equal(htu_request(fx.port, "OPTIONS", "/hello",
                                 "Origin: https://evil.example\r\n"
                                 "Access-Control-Request-Method: POST\r\n",
                                 NULL, &r),
                     0);
    assert_int_equal(r.status, 403);
    assert_non_null(strstr(htu_header(&r, "Content-Type"), "application/problem+json"));
    assert_null(htu_header(&r, "Access-Control-Allow-Origin"));
    assert_null(htu_header(&r, "Access-Control-Allow-Methods"));
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "code")), "AUTHZ");
    json_decref(j);
    htu_response_free(&r);
    assert_int_equal(atomic_load(&handler_runs), before); /* preflights never reach handlers */

    /* OPTIONS without Access-Control-Request-Method is not a preflight */
    assert_int_equal(htu_request(fx.port, "OPTIONS", "/hello",
                                 "Origin: https://app.example.com\r\n", NULL, &r),
                     0);
    assert_int_equal(r.status, 405);
    htu_response_free(&r);
    fx_free(&fx);
}

static void cors_wildcard_answers_star_without_credentials(void **state)
{
    (void)state;
    fixture fx;
    fx_new(&fx, 1);
    static const char *const any[] = {"*", NULL};
    svc_cors_opts co;
    svc_cors_opts_default(&co);
    co.allow_origins = any;
    assert_int_equal(svc_add_cors(fx.app, &co), SVC_OK);
    assert_int_equal(svc_app_route(fx.app, "GET", "/hello", h_hello, NULL), SVC_OK);
    fx_start(&fx);
    htu_response r;
    get(&fx, "/hello", "Origin: https://anyone.example\r\n", &r);
    assert_string_equal(htu_header(&r, "Access-Control-Allow-Origin"), "*");
    assert_null(htu_header(&r, "Access-Control-Allow-Credentials"));
    htu_response_free(&r);
    fx_free(&fx);
}

static void cors_configuration_errors_are_refused(void **state)
{
    (void)state;
    fixture fx;
    fx_new(&fx, 1);
    svc_cors_opts co;
    svc_cors_opts_default(&co);
    static const char *const any[] = {"https://ok.example", "*", NULL};
    co.allow_origins = any;
    co.allow_credentials = 1;
    assert_int_equal(svc_add_cors(fx.app, &co), SVC_EINVAL);
    assert_non_null(strstr(svc_app_errmsg(fx.app), "allow_credentials"));
    static const char *const slash[] = {"https://ok.example/", NULL};
    co.allow_origins = slash;
    co.allow_credentials = 0;
    assert_int_equal(svc_add_cors(fx.app, &co), SVC_EINVAL);
    static const char *const bare[] = {"ok.example", NULL};
    co.allow_origins = bare;
    assert_int_equal(svc_add_cors(fx.app, &co), SVC_EINVAL);
    co.allow_origins = origins;
    co.allow_headers = "Content-Type\r\nX-Evil: 1";
    assert_int_equal(svc_add_cors(fx.app, &co), SVC_EINVAL);
    co.allow_headers = "Content-Type\x01";
    assert_int_equal(svc_add_cors(fx.app, &co), SVC_EINVAL);
    co.allow_headers = NULL;
    co.expose_headers = "X-Request-Id\x7f";
    assert_int_equal(svc_add_cors(fx.app, &co), SVC_EINVAL);
    co.expose_headers = NULL;
    static const char *const ctl[] = {"https://ok\x01.example", NULL};
    co.allow_origins = ctl;
    assert_int_equal(svc_add_cors(fx.app, &co), SVC_EINVAL);
    co.allow_origins = origins;
    co.allow_headers = NULL; /* NULL: the default */
    assert_int_equal(svc_add_cors(fx.app, &co), SVC_OK);
    assert_int_equal(svc_add_cors(fx.app, &co), SVC_EEXIST);
    fx_free(&fx);
}

/* ---- probes -------------------------------------------------------------------- */

typedef struct check_ctl {
    svc_status result;
    const char *detail;
    atomic_int calls;
    atomic_int hold;     /* 1: the check waits until it is 0 */
    atomic_int running;  /* 1 while inside the check */
} check_ctl;

/* Runs on a check thread: no cmocka asserts here. */
static svc_status test_check(void *ud, char *detail, size_t len, int64_t timeout_ms)
{
    check_ctl *c = ud;
    atomic_fetch_add(&c->calls, 1);
    atomic_store(&c->running, 1);
    for (int i = 0; i < 3000 && atomic_load(&c->hold); i++) /* at most 30 s */
        htu_sleep_ms(10);
    svc_status st = timeout_ms > 0 ? c->result : SVC_EINTERNAL;
    if (c->detail)
        snprintf(detail, len, "%s", c->detail);
    atomic_store(&c->running, 0); /* last touch of *c: the test may return now */
    return st;
}

static json_t *readyz(const fixture *fx, int want_status)
{
    htu_response r;
    get(fx, "/readyz", NULL, &r);
    assert_int_equal(r.status, want_status);
    assert_non_null(strstr(htu_header(&r, "Content-Type"), "application/json"));
    json_t *j = body_json(&r);
    htu_response_free(&r);
    return j;
}

static const char *check_field(json_t *report, const char *check, const char *field)
{
    json_t *c = json_object_get(json_object_get(report, "checks"), check);
    assert_non_null(c);
    return json_string_value(json_object_get(c, field));
}

static void readyz_reports_every_check_and_is_200_when_they_pass(void **state)
{
    (void)state;
    check_ctl db = {.result = SVC_OK, .detail = "3 connections"};
    check_ctl cache = {.result = SVC_OK};
    fixture fx;
    fx_new(&fx, 1);
    assert_int_equal(svc_add_probes(fx.app, NULL), SVC_OK);
    assert_int_equal(svc_app_add_check(fx.app, "db", test_check, &db, 1000, 1), SVC_OK);
    assert_int_equal(svc_app_add_check(fx.app, "cache", test_check, &cache, 1000, 0), SVC_OK);
    assert_int_equal(svc_app_add_check(fx.app, "db", test_check, &db, 1000, 1), SVC_EEXIST);
    assert_int_equal(svc_app_add_check(fx.app, "zero", test_check, &db, 0, 1), SVC_EINVAL);
    assert_int_equal(svc_app_add_check(fx.app, "bad name", test_check, &db, 100, 1), SVC_EINVAL);
    assert_int_equal(svc_app_add_check(fx.app, "", test_check, &db, 100, 1), SVC_EINVAL);
    fx_start(&fx);
    json_t *j = readyz(&fx, 200);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
    assert_string_equal(check_field(j, "db", "status"), "ok");
    assert_string_equal(check_field(j, "db", "detail"), "3 connections");
    assert_string_equal(check_field(j, "cache", "status"), "ok");
    json_t *dbj = json_object_get(json_object_get(j, "checks"), "db");
    assert_true(json_is_true(json_object_get(dbj, "critical")));
    assert_true(json_is_integer(json_object_get(dbj, "duration_ms")));
    json_t *cj = json_object_get(json_object_get(j, "checks"), "cache");
    assert_true(json_is_false(json_object_get(cj, "critical")));
    json_decref(j);
    assert_int_equal(atomic_load(&db.calls), 1);

    htu_response r;
    get(&fx, "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);
    htu_response_free(&r);
    assert_int_equal(svc_app_add_check(fx.app, "late", test_check, &db, 100, 1), SVC_EBUSY);
    fx_free(&fx);
}

static void failing_critical_check_makes_readyz_503_with_the_report(void **state)
{
    (void)state;
    check_ctl db = {.result = SVC_EUNAVAILABLE, .detail = "connection refused"};
    check_ctl cache = {.result = SVC_OK};
    fixture fx;
    fx_new(&fx, 1);
    assert_int_equal(svc_add_probes(fx.app, NULL), SVC_OK);
    assert_int_equal(svc_app_add_check(fx.app, "db", test_check, &db, 1000, 1), SVC_OK);
    assert_int_equal(svc_app_add_check(fx.app, "cache", test_check, &cache, 1000, 0), SVC_OK);
    fx_start(&fx);
    json_t *j = readyz(&fx, 503);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "fail");
    assert_string_equal(check_field(j, "db", "status"), "fail");
    assert_string_equal(check_field(j, "db", "detail"), "connection refused");
    assert_string_equal(check_field(j, "cache", "status"), "ok");
    json_decref(j);
    /* liveness is not readiness */
    htu_response r;
    get(&fx, "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);
    htu_response_free(&r);
    fx_free(&fx);
}

static void failing_noncritical_check_is_reported_but_readyz_stays_200(void **state)
{
    (void)state;
    check_ctl cache = {.result = SVC_ETIMEDOUT}; /* no detail: the status text is used */
    fixture fx;
    fx_new(&fx, 1);
    assert_int_equal(svc_add_probes(fx.app, NULL), SVC_OK);
    assert_int_equal(svc_app_add_check(fx.app, "cache", test_check, &cache, 1000, 0), SVC_OK);
    fx_start(&fx);
    json_t *j = readyz(&fx, 200);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
    assert_string_equal(check_field(j, "cache", "status"), "fail");
    assert_string_equal(check_field(j, "cache", "detail"), svc_strerror(SVC_ETIMEDOUT));
    json_decref(j);
    fx_free(&fx);
}

static void hanging_check_is_reported_as_timeout_without_blocking_readyz(void **state)
{
    (void)state;
    check_ctl hang = {.result = SVC_OK};
    check_ctl quick = {.result = SVC_OK};
    atomic_store(&hang.hold, 1);
    fixture fx;
    fx_new_grace(&fx, 1, 0); /* svc_app_free() waits for the check 100 ms at most */
    assert_int_equal(svc_add_probes(fx.app, NULL), SVC_OK);
    assert_int_equal(svc_app_add_check(fx.app, "hang", test_check, &hang, 100, 1), SVC_OK);
    assert_int_equal(svc_app_add_check(fx.app, "quick", test_check, &quick, 1000, 1), SVC_OK);
    fx_start(&fx);

    /* The answer arrives while the check is still held: /readyz did not
     * wait for it (a blocked answer would fail the client's read). */
    json_t *j = readyz(&fx, 503);
    assert_int_equal(atomic_load(&hang.running), 1);
    assert_string_equal(check_field(j, "hang", "status"), "timeout");
    assert_string_equal(check_field(j, "quick", "status"), "ok");
    json_decref(j);

    /* A second probe joins the run under way instead of starting another. */
    j = readyz(&fx, 503);
    assert_string_equal(check_field(j, "hang", "status"), "timeout");
    json_decref(j);
    assert_int_equal(atomic_load(&hang.calls), 1);
    assert_int_equal(atomic_load(&quick.calls), 2);

    /* The app goes away while the check still hangs past the wait of
     * svc_app_free() (its timeout + the grace, logged at warn); the check
     * thread then finishes on memory it owns (ASan builds would catch a use
     * after free). */
    fx_free(&fx);
    atomic_store(&hang.hold, 0);
    for (int i = 0; i < 1000 && atomic_load(&hang.running); i++) /* at most 10 s */
        htu_sleep_ms(10);
    assert_int_equal(atomic_load(&hang.running), 0);
    htu_sleep_ms(20); /* let the thread drop its reference */
}

typedef struct free_ctl {
    fixture *fx;
    check_ctl *check;
    atomic_int returned;
    atomic_int check_running_at_return;
} free_ctl;

static void *free_app_thread(void *arg)
{
    free_ctl *f = arg;
    fx_free(f->fx);
    atomic_store(&f->check_running_at_return, atomic_load(&f->check->running));
    atomic_store(&f->returned, 1);
    return NULL;
}

static void app_free_waits_for_a_check_that_outlived_its_timeout(void **state)
{
    (void)state;
    check_ctl slow = {.result = SVC_OK};
    atomic_store(&slow.hold, 1);
    fixture fx;
    fx_new(&fx, 1); /* grace 10 s: the wait is bounded by 50 ms + 10 s */
    assert_int_equal(svc_add_probes(fx.app, NULL), SVC_OK);
    assert_int_equal(svc_app_add_check(fx.app, "slow", test_check, &slow, 50, 1), SVC_OK);
    fx_start(&fx);
    json_t *j = readyz(&fx, 503);
    assert_string_equal(check_field(j, "slow", "status"), "timeout");
    json_decref(j);
    assert_int_equal(atomic_load(&slow.running), 1);

    /* `slow` stands for a pool the caller frees right after svc_app_free() */
    free_ctl f = {.fx = &fx, .check = &slow};
    atomic_store(&f.check_running_at_return, -1);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, free_app_thread, &f), 0);
    htu_sleep_ms(200); /* give svc_app_free() time to get to its wait */
    assert_int_equal(atomic_load(&f.returned), 0); /* still waiting for the check */
    atomic_store(&slow.hold, 0);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&f.returned), 1);
    assert_int_equal(atomic_load(&f.check_running_at_return), 0);
    assert_int_equal(atomic_load(&slow.calls), 1);
}

static void startup_gate_holds_until_set_started(void **state)
{
    (void)state;
    fixture fx;
    fx_new(&fx, 1);
    svc_probes_opts po = {0};
    po.started = 0;
    assert_int_equal(svc_add_probes(fx.app, &po), SVC_OK);
    assert_int_equal(svc_add_probes(fx.app, &po), SVC_EEXIST);
    fx_start(&fx);
    htu_response r;
    get(&fx, "/startupz", NULL, &r);
    assert_int_equal(r.status, 503);
    htu_response_free(&r);
    json_t *j = readyz(&fx, 503);
    assert_true(json_is_false(json_object_get(j, "started")));
    json_decref(j);
    get(&fx, "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);
    htu_response_free(&r);

    svc_app_set_started(fx.app);
    get(&fx, "/startupz", NULL, &r);
    assert_int_equal(r.status, 200);
    htu_response_free(&r);
    j = readyz(&fx, 200);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
    json_decref(j);
    fx_free(&fx);
}

static void probe_paths_can_be_renamed(void **state)
{
    (void)state;
    fixture fx;
    fx_new(&fx, 1);
    svc_probes_opts po = {0};
    po.started = 1;
    po.healthz_path = "/live";
    po.readyz_path = "/ready";
    po.startupz_path = "/started";
    assert_int_equal(svc_add_probes(fx.app, &po), SVC_OK);
    fx_start(&fx);
    htu_response r;
    get(&fx, "/live", NULL, &r);
    assert_int_equal(r.status, 200);
    htu_response_free(&r);
    get(&fx, "/healthz", NULL, &r);
    assert_int_equal(r.status, 404);
    htu_response_free(&r);
    fx_free(&fx);
}

/* ---- metrics ------------------------------------------------------------------- */

static void h_item(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    assert_int_equal(svc_res_text(res, 200, svc_req_param(req, "id")), SVC_OK);
}

static char *get_metrics(const fixture *fx)
{
    htu_response r;
    get(fx, "/metrics", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(htu_header(&r, "Content-Type"),
                        "text/plain; version=0.0.4; charset=utf-8");
    char *text = strdup(r.body);
    htu_response_free(&r);
    return text;
}

/* Every line is a comment (# HELP / # TYPE with a known type) or a sample:
 * name{label="value",...} number. */
static void assert_exposition_format(char *text)
{
    regex_t help, type, sample;
    assert_int_equal(regcomp(&help, "^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$", REG_EXTENDED), 0);
    assert_int_equal(regcomp(&type,
                             "^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* "
                             "(counter|gauge|histogram|summary|untyped)$",
                             REG_EXTENDED),
                     0);
    assert_int_equal(regcomp(&sample,
                             "^[a-zA-Z_:][a-zA-Z0-9_:]*"
                             "(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\""
                             "(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\")*\\})?"
                             " (-?[0-9.eE+-]+|[+-]Inf|NaN)( -?[0-9]+)?$",
                             REG_EXTENDED),
                     0);
    size_t lines = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        bool ok = regexec(&help, line, 0, NULL, 0) == 0 || regexec(&type, line, 0, NULL, 0) == 0 ||
                  regexec(&sample, line, 0, NULL, 0) == 0;
        if (!ok)
            fail_msg("not exposition format: %s", line);
        lines++;
    }
    assert_true(lines > 10);
    regfree(&help);
    regfree(&type);
    regfree(&sample);
}

/* A handler that stays in flight until the test lets it go. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool entered, released;
} gate;

static void h_gated(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    gate *g = ud;
    pthread_mutex_lock(&g->mu);
    g->entered = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->released)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    assert_int_equal(svc_res_text(res, 200, "done"), SVC_OK);
}

typedef struct gated_call {
    uint16_t port;
    int status;
} gated_call;

static void *call_gated(void *arg)
{
    gated_call *c = arg;
    htu_response r;
    c->status = htu_request(c->port, "GET", "/gated", NULL, NULL, &r) == 0 ? r.status : -1;
    if (c->status > 0)
        htu_response_free(&r);
    return NULL;
}

static double inflight_of(const char *text)
{
    const char *p = strstr(text, "\nhttp_server_inflight_requests ");
    assert_non_null(p);
    return strtod(p + strlen("\nhttp_server_inflight_requests "), NULL);
}

/* The gauge as fx's /metrics renders it, once requests answered earlier
 * have completed on the server side too (libmicrohttpd may finish one just
 * after its client read the answer): scrapes until it reads `want`, never
 * less, at most 2 s. */
static void assert_inflight_settles_at(const fixture *fx, double want)
{
    double v = -1;
    for (int i = 0; i < 200; i++) {
        char *text = get_metrics(fx);
        v = inflight_of(text);
        free(text);
        assert_true(v >= want);
        if (v == want)
            return;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fail_msg("http_server_inflight_requests stayed at %g, expected %g", v, want);
}

/* Two apps on one registry (an API port and an admin port) share the gauge:
 * it is the sum of their requests in flight, whichever app renders, and an
 * app that goes away takes its share with it. */
static void inflight_gauge_sums_the_apps_that_share_a_registry(void **state)
{
    (void)state;
    fixture a, b;
    fx_new(&a, 1);
    svc_app_opts o;
    svc_app_opts_default(&o);
    o.port = 0;
    o.threads = 2;
    o.access_log = 0;
    o.metrics = a.metrics; /* b renders the same registry */
    memset(&b, 0, sizeof b);
    assert_int_equal(svc_app_new(&b.app, &o), SVC_OK);
    gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    assert_int_equal(svc_app_route(a.app, "GET", "/gated", h_gated, &g), SVC_OK);
    assert_int_equal(svc_add_metrics(a.app, NULL), SVC_OK);
    assert_int_equal(svc_add_metrics(b.app, NULL), SVC_OK);
    fx_start(&a);
    fx_start(&b);

    gated_call call = {.port = a.port};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, call_gated, &call), 0);
    pthread_mutex_lock(&g.mu);
    while (!g.entered)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);

    assert_inflight_settles_at(&b, 2.0); /* a's gated request + b's scrape */
    assert_inflight_settles_at(&a, 2.0); /* a's gated request + a's scrape */

    pthread_mutex_lock(&g.mu);
    g.released = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(call.status, 200);

    svc_app_free(a.app); /* its share leaves with it */
    a.app = NULL;
    double v = -1;
    for (int i = 0; i < 200 && v != 0.0; i++) { /* b's last scrape may still be completing */
        char *out = NULL;
        assert_int_equal(svc_metrics_render(a.metrics, &out, NULL), SVC_OK);
        v = inflight_of(out);
        svc_free(out);
        assert_true(v >= 0.0);
        if (v != 0.0)
            nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    assert_true(v == 0.0);
    svc_app_free(b.app);
    fx_free(&a);
}

static void metrics_endpoint_renders_valid_exposition_with_route_labels(void **state)
{
    (void)state;
    fixture fx;
    fx_new(&fx, 1);
    assert_int_equal(svc_add_metrics(fx.app, NULL), SVC_OK);
    assert_int_equal(svc_add_metrics(fx.app, NULL), SVC_EEXIST);
    assert_int_equal(svc_add_probes(fx.app, NULL), SVC_OK);
    assert_int_equal(svc_app_route(fx.app, "GET", "/items/{id}", h_item, NULL), SVC_OK);
    fx_start(&fx);
    htu_response r;
    for (int i = 0; i < 3; i++) {
        char path[32];
        snprintf(path, sizeof path, "/items/%d", i);
        get(&fx, path, NULL, &r);
        assert_int_equal(r.status, 200);
        htu_response_free(&r);
    }
    char *text = get_metrics(&fx);
    assert_non_null(strstr(text, "# TYPE http_server_requests_total counter"));
    assert_non_null(strstr(text, "# TYPE http_server_request_duration_seconds histogram"));
    assert_non_null(strstr(text, "# TYPE http_server_inflight_requests gauge"));
    assert_non_null(
        strstr(text, "http_server_requests_total{method=\"GET\",route=\"/items/{id}\",code=\"200\"} 3"));
    assert_non_null(strstr(text, "http_server_request_duration_seconds_bucket{method=\"GET\","
                                 "route=\"/items/{id}\",le=\"0.005\"}"));
    assert_non_null(strstr(text, "http_server_request_duration_seconds_bucket{method=\"GET\","
                                 "route=\"/items/{id}\",le=\"10\"}"));
    assert_null(strstr(text, "/items/1"));
    assert_exposition_format(text);
    free(text);

    /* the registry agrees */
    svc_counter *c = NULL;
    static const char *const names[] = {"method", "route", "code", NULL};
    assert_int_equal(svc_metrics_counter(fx.metrics, "http_server_requests_total", NULL, names, &c),
                     SVC_OK);
    const char *labels[] = {"GET", "/items/{id}", "200"};
    double v = 0;
    assert_int_equal(svc_counter_get(c, labels, &v), SVC_OK);
    assert_true(v == 3.0);
    const char *mlabels[] = {"GET", "/metrics", "200"};
    assert_int_equal(svc_counter_get(c, mlabels, &v), SVC_OK);
    assert_true(v == 1.0);
    assert_inflight_settles_at(&fx, 1.0); /* the scrape itself */
    fx_free(&fx);
}

static void h_status(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    svc_res_status(res, (int)strtol(svc_req_param(req, "code"), NULL, 10));
    assert_int_equal(svc_res_text(res, svc_res_get_status(res), "s"), SVC_OK);
}

static double counter_of(svc_metrics *m, const char *route, const char *code)
{
    svc_counter *c = NULL;
    static const char *const names[] = {"method", "route", "code", NULL};
    assert_int_equal(svc_metrics_counter(m, "http_server_requests_total", NULL, names, &c), SVC_OK);
    const char *labels[] = {"GET", route, code};
    double v = -1;
    if (svc_counter_get(c, labels, &v) != SVC_OK)
        return 0;
    return v;
}

/* Requests switching between routes and statuses on one server thread
 * (each thread remembers the series its last request updated): every
 * request lands in its own series, the counter and the histogram agree,
 * and a second app on another registry never writes into the first's. */
static void request_metrics_follow_route_and_status_changes(void **state)
{
    (void)state;
    fixture fx, other;
    for (int k = 0; k < 2; k++) {
        fixture *f = k ? &other : &fx;
        fx_new(f, 1);
        assert_int_equal(svc_app_route(f->app, "GET", "/a", h_hello, NULL), SVC_OK);
        assert_int_equal(svc_app_route(f->app, "GET", "/s/{code}", h_status, NULL), SVC_OK);
        assert_int_equal(svc_add_metrics(f->app, NULL), SVC_OK);
        fx_start(f);
    }
    static const char *const paths[] = {"/a", "/a", "/s/201", "/a", "/s/202", "/s/201", "/a",
                                        "/missing", "/a"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        htu_response r;
        get(&fx, paths[i], NULL, &r);
        htu_response_free(&r);
        if (i % 3 == 0) { /* interleave the other app's requests */
            get(&other, "/s/201", NULL, &r);
            htu_response_free(&r);
        }
    }
    assert_true(counter_of(fx.metrics, "/a", "200") == 5.0);
    assert_true(counter_of(fx.metrics, "/s/{code}", "201") == 2.0);
    assert_true(counter_of(fx.metrics, "/s/{code}", "202") == 1.0);
    assert_true(counter_of(fx.metrics, "<unmatched>", "404") == 1.0);
    assert_true(counter_of(other.metrics, "/s/{code}", "201") == 3.0);
    assert_true(counter_of(other.metrics, "/a", "200") == 0.0);

    svc_histogram *h = NULL;
    static const char *const hn[] = {"method", "route", NULL};
    assert_int_equal(svc_metrics_histogram(fx.metrics, "http_server_request_duration_seconds", NULL,
                                           hn, NULL, 0, &h),
                     SVC_OK);
    uint64_t n = 0;
    double sum = 0;
    const char *hl[] = {"GET", "/s/{code}"};
    assert_int_equal(svc_histogram_get(h, hl, &n, &sum), SVC_OK);
    assert_int_equal(n, 3);
    fx_free(&fx);
    fx_free(&other);
}

static void unmatched_paths_and_odd_methods_share_bounded_series(void **state)
{
    (void)state;
    fixture fx;
    fx_new(&fx, 1);
    assert_int_equal(svc_add_metrics(fx.app, NULL), SVC_OK);
    assert_int_equal(svc_app_route(fx.app, "GET", "/items/{id}", h_item, NULL), SVC_OK);
    fx_start(&fx);
    htu_response r;
    for (int i = 0; i < 50; i++) {
        char path[48];
        snprintf(path, sizeof path, "/nope-%d/x%d", i, i * 7);
        get(&fx, path, NULL, &r);
        assert_int_equal(r.status, 404);
        htu_response_free(&r);
    }
    assert_int_equal(htu_request(fx.port, "PURGE", "/items/1", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 405);
    htu_response_free(&r);

    char *text = get_metrics(&fx);
    assert_non_null(strstr(
        text, "http_server_requests_total{method=\"GET\",route=\"<unmatched>\",code=\"404\"} 50"));
    assert_null(strstr(text, "nope-"));
    assert_null(strstr(text, "PURGE"));
    assert_non_null(strstr(text, "method=\"OTHER\""));
    /* one series for the 50 paths: a single unmatched 404 counter line */
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, "route=\"<unmatched>\",code=\"404\"")); p++)
        n++;
    assert_int_equal(n, 1);
    assert_exposition_format(text);
    free(text);
    fx_free(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(security_headers_are_added_by_default),
        cmocka_unit_test(handler_headers_win_and_duplicates_are_kept),
        cmocka_unit_test(custom_security_headers_replace_the_default_list),
        cmocka_unit_test(security_headers_without_default_middleware_are_installed_once),
        cmocka_unit_test(bad_security_header_lists_are_refused),
        cmocka_unit_test(security_header_values_with_control_bytes_are_refused_at_configuration),
        cmocka_unit_test(cors_allowed_origin_is_echoed_with_vary),
        cmocka_unit_test(cors_exposes_the_configured_headers_to_allowed_origins),
        cmocka_unit_test(cors_vary_is_merged_with_the_handlers_own),
        cmocka_unit_test(cors_denied_origin_gets_no_cors_headers),
        cmocka_unit_test(cors_preflight_is_204_for_allowed_and_403_for_others),
        cmocka_unit_test(cors_wildcard_answers_star_without_credentials),
        cmocka_unit_test(cors_configuration_errors_are_refused),
        cmocka_unit_test(readyz_reports_every_check_and_is_200_when_they_pass),
        cmocka_unit_test(failing_critical_check_makes_readyz_503_with_the_report),
        cmocka_unit_test(failing_noncritical_check_is_reported_but_readyz_stays_200),
        cmocka_unit_test(hanging_check_is_reported_as_timeout_without_blocking_readyz),
        cmocka_unit_test(app_free_waits_for_a_check_that_outlived_its_timeout),
        cmocka_unit_test(startup_gate_holds_until_set_started),
        cmocka_unit_test(probe_paths_can_be_renamed),
        cmocka_unit_test(metrics_endpoint_renders_valid_exposition_with_route_labels),
        cmocka_unit_test(inflight_gauge_sums_the_apps_that_share_a_registry),
        cmocka_unit_test(request_metrics_follow_route_and_status_changes),
        cmocka_unit_test(unmatched_paths_and_odd_methods_share_bounded_series),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
