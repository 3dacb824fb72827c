/* test_hooks.c - what wiring hangs on an app: start/stop hooks, attached
 * handles, the configuration the app keeps, and svc_add_*(app, NULL). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <cmocka.h>

#include "http_test_util.h"
#include "svcinfra/config.h"
#include "svcinfra/http.h"

static char order[64];
static void note(char c)
{
    size_t n = strlen(order);
    if (n + 1 < sizeof order) {
        order[n] = c;
        order[n + 1] = '\0';
    }
}

static svc_status start_a(void *ud) { (void)ud; note('A'); return SVC_OK; }
static void stop_a(void *ud) { (void)ud; note('a'); }
static svc_status start_b(void *ud) { (void)ud; note('B'); return SVC_OK; }
static void stop_b(void *ud) { (void)ud; note('b'); }
static svc_status start_fail(void *ud) { (void)ud; note('F'); return SVC_EUNAVAILABLE; }

static svc_app *new_app(const svc_config *cfg)
{
    svc_app_opts o;
    svc_app_opts_default(&o);
    o.port = 0;
    o.access_log = 0;
    o.config = cfg;
    o.shutdown_grace_ms = 3000;
    svc_app *app = NULL;
    if (svc_app_new(&app, &o) != SVC_OK)
        fail_msg("svc_app_new: %s", svc_last_errmsg());
    return app;
}

static void test_start_hooks_in_order_stop_hooks_reversed(void **state)
{
    (void)state;
    order[0] = '\0';
    svc_app *app = new_app(NULL);
    assert_int_equal(svc_app_on_start(app, start_a, stop_a, NULL), SVC_OK);
    assert_int_equal(svc_app_on_start(app, start_b, stop_b, NULL), SVC_OK);
    assert_int_equal(svc_app_on_start(app, NULL, NULL, NULL), SVC_EINVAL);
    assert_int_equal(svc_app_start(app), SVC_OK);
    assert_string_equal(order, "AB");
    assert_int_equal(svc_app_on_start(app, start_a, stop_a, NULL), SVC_EBUSY);
    static int late;
    assert_int_equal(svc_app_attach(app, "late", &late, NULL), SVC_EBUSY);
    assert_int_equal(svc_app_shutdown(app), SVC_OK);
    assert_string_equal(order, "ABba");
    svc_app_free(app); /* stopped hooks are not stopped twice */
    assert_string_equal(order, "ABba");
}

static void test_failing_start_hook_unwinds_and_fails_start(void **state)
{
    (void)state;
    order[0] = '\0';
    svc_app *app = new_app(NULL);
    assert_int_equal(svc_app_on_start(app, start_a, stop_a, NULL), SVC_OK);
    assert_int_equal(svc_app_on_start(app, start_fail, stop_b, NULL), SVC_OK);
    assert_int_equal(svc_app_start(app), SVC_EUNAVAILABLE);
    assert_string_equal(order, "AFa"); /* the failed one is not stopped */
    assert_int_equal(svc_app_port(app), 0);
    svc_app_free(app);
    assert_string_equal(order, "AFa");
}

/* A stop hook runs after the last request has been answered. */
static int handler_done;
static void slow(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    (void)ud;
    htu_sleep_ms(300);
    __atomic_store_n(&handler_done, 1, __ATOMIC_SEQ_CST);
    svc_res_status(res, 204);
}
static int done_at_stop = -1;
static void stop_check(void *ud)
{
    (void)ud;
    done_at_stop = __atomic_load_n(&handler_done, __ATOMIC_SEQ_CST);
}
static void *client(void *arg)
{
    htu_response r;
    htu_request(*(uint16_t *)arg, "GET", "/slow", NULL, NULL, &r);
    htu_response_free(&r);
    return NULL;
}

static void test_stop_hook_after_last_request(void **state)
{
    (void)state;
    svc_app *app = new_app(NULL);
    assert_int_equal(svc_app_route(app, "GET", "/slow", slow, NULL), SVC_OK);
    assert_int_equal(svc_app_on_start(app, NULL, stop_check, NULL), SVC_OK);
    assert_int_equal(svc_app_start(app), SVC_OK);
    uint16_t port = svc_app_port(app);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, client, &port), 0);
    htu_sleep_ms(100); /* the request is in its handler */
    assert_int_equal(svc_app_shutdown(app), SVC_OK);
    assert_int_equal(done_at_stop, 1);
    pthread_join(t, NULL);
    svc_app_free(app);
}

static int released[3];
static int release_seq;
static void release(void *p) { *(int *)p = ++release_seq; }

static void test_attachments_found_and_released_in_reverse(void **state)
{
    (void)state;
    svc_app *app = new_app(NULL);
    assert_int_equal(svc_app_attach(app, "one", &released[0], release), SVC_OK);
    assert_int_equal(svc_app_attach(app, "two", &released[1], release), SVC_OK);
    assert_int_equal(svc_app_attach(app, "two", &released[2], release), SVC_EEXIST);
    assert_int_equal(svc_app_attach(app, "", &released[2], release), SVC_EINVAL);
    assert_ptr_equal(svc_app_attached(app, "one"), &released[0]);
    assert_ptr_equal(svc_app_attached(app, "two"), &released[1]);
    assert_null(svc_app_attached(app, "three"));
    svc_app_free(app);
    assert_int_equal(released[1], 1);
    assert_int_equal(released[0], 2);
    assert_int_equal(released[2], 0);
}

/* The app keeps a reference on its configuration, and svc_add_cors(app,
 * NULL) reads the cors section from it. */
static void test_app_keeps_configuration_for_add_null(void **state)
{
    (void)state;
    svc_config *cfg = NULL;
    char eb[256];
    assert_int_equal(svc_config_parse(&cfg,
                                      "cors:\n  allow_origins: [\"https://a.example\"]\n"
                                      "  max_age_s: 42\n",
                                      eb, sizeof eb),
                     SVC_OK);
    svc_app *app = new_app(cfg);
    svc_config_free(cfg); /* the app holds its own reference */
    const char *v = NULL;
    assert_int_equal(svc_config_get_string(svc_app_config(app), "cors.max_age_s", NULL, &v),
                     SVC_OK);
    assert_string_equal(v, "42");
    assert_int_equal(svc_add_cors(app, NULL), SVC_OK);
    assert_int_equal(svc_app_start(app), SVC_OK);
    htu_response r;
    assert_int_equal(htu_request(svc_app_port(app), "OPTIONS", "/x",
                                 "Origin: https://a.example\r\n"
                                 "Access-Control-Request-Method: POST\r\n",
                                 NULL, &r),
                     0);
    assert_int_equal(r.status, 204);
    assert_string_equal(htu_header(&r, "Access-Control-Allow-Origin"), "https://a.example");
    assert_string_equal(htu_header(&r, "Access-Control-Max-Age"), "42");
    htu_response_free(&r);
    svc_app_free(app);
}

static void test_add_null_bad_configuration_says_why(void **state)
{
    (void)state;
    svc_config *cfg = NULL;
    char eb[256];
    assert_int_equal(svc_config_parse(&cfg, "cors:\n  allow_origins: [\"ftp//nope\"]\n", eb,
                                      sizeof eb),
                     SVC_OK);
    svc_app *app = new_app(cfg);
    svc_config_free(cfg);
    assert_int_equal(svc_add_cors(app, NULL), SVC_EINVAL);
    assert_non_null(strstr(svc_last_errmsg(), "cors: \"ftp//nope\" is not an origin"));
    svc_app_free(app);

    assert_int_equal(svc_config_parse(&cfg, "probes:\n  started: perhaps\n", eb, sizeof eb),
                     SVC_OK);
    app = new_app(cfg);
    svc_config_free(cfg);
    assert_int_equal(svc_add_probes(app, NULL), SVC_ECONFIG);
    assert_non_null(strstr(svc_last_errmsg(), "probes.started"));
    svc_app_free(app);
}

/* NULL options with no configuration given: the file SVC_CONFIG_FILE names,
 * with the environment over it. */
static void test_config_file_from_environment(void **state)
{
    (void)state;
    char path[] = "/tmp/svc_test_hooks_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "http:\n  port: 0\n  access_log: false\nmetrics:\n  path: /m\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    setenv("SVC_CONFIG_FILE", path, 1);
    setenv("SVC_METRICS_PATH", "/stats", 1); /* the environment wins over the file */
    svc_app *app = NULL;
    svc_status st = svc_app_new(&app, NULL);
    unsetenv("SVC_CONFIG_FILE");
    unsetenv("SVC_METRICS_PATH");
    unlink(path);
    assert_int_equal(st, SVC_OK);
    assert_int_equal(svc_add_metrics(app, NULL), SVC_OK);
    assert_int_equal(svc_app_start(app), SVC_OK);
    htu_response r;
    assert_int_equal(htu_request(svc_app_port(app), "GET", "/stats", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    htu_response_free(&r);
    svc_app_free(app);

    setenv("SVC_CONFIG_FILE", "/nonexistent/svc.yaml", 1);
    st = svc_app_new(&app, NULL);
    unsetenv("SVC_CONFIG_FILE");
    assert_int_equal(st, SVC_EIO);
    assert_null(app);
    assert_non_null(strstr(svc_last_errmsg(), "/nonexistent/svc.yaml"));
}

/* Tenancy from YAML, security headers and CORS from the environment: every
 * built-in reads its section the same way. */
static void test_builtins_from_yaml_and_environment(void **state)
{
    (void)state;
    svc_config *cfg = NULL;
    char eb[256];
    setenv("SVC_SECURITY_HEADERS_HSTS_MAX_AGE_S", "600", 1);
    setenv("SVC_CORS_ALLOW_ORIGINS", "https://b.example, https://c.example", 1);
    assert_int_equal(svc_config_parse(&cfg,
                                      "tenancy:\n  trusted_header: X-Tenant-Id\n"
                                      "  required: true\n",
                                      eb, sizeof eb),
                     SVC_OK);
    unsetenv("SVC_SECURITY_HEADERS_HSTS_MAX_AGE_S");
    unsetenv("SVC_CORS_ALLOW_ORIGINS");
    svc_app *app = new_app(cfg);
    svc_config_free(cfg);
    assert_int_equal(svc_add_tenancy(app, NULL), SVC_OK);
    assert_int_equal(svc_add_security_headers(app, NULL), SVC_OK);
    assert_int_equal(svc_add_cors(app, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/who", slow, NULL), SVC_OK);
    assert_int_equal(svc_app_start(app), SVC_OK);
    htu_response r;
    assert_int_equal(htu_request(svc_app_port(app), "GET", "/nope", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 401); /* tenancy.required, no tenant */
    htu_response_free(&r);
    assert_int_equal(htu_request(svc_app_port(app), "GET", "/nope",
                                 "X-Tenant-Id: t1\r\nOrigin: https://c.example\r\n", NULL, &r),
                     0);
    assert_int_equal(r.status, 404); /* the trusted header gave a tenant */
    assert_string_equal(htu_header(&r, "Strict-Transport-Security"), "max-age=600; includeSubDomains");
    assert_string_equal(htu_header(&r, "Access-Control-Allow-Origin"), "https://c.example");
    htu_response_free(&r);
    svc_app_free(app);
}

/* svc_config_load() says why it failed through svc_last_errmsg() too. */
static void test_config_load_failure_in_last_errmsg(void **state)
{
    (void)state;
    svc_config *cfg = NULL;
    assert_int_equal(svc_config_load(&cfg, "/nonexistent/dir/x.yaml", NULL, 0), SVC_EIO);
    assert_non_null(strstr(svc_last_errmsg(), "config: cannot open config file"));
    assert_int_equal(svc_config_parse(&cfg, "a: [1", NULL, 0), SVC_EPARSE);
    assert_non_null(strstr(svc_last_errmsg(), "config: <string>"));
    assert_int_equal(svc_config_parse(&cfg, "a: 1\n", NULL, 0), SVC_OK);
    assert_string_equal(svc_last_errmsg(), "");
    svc_config_free(cfg);
}

/* The NULLs the header documents are honoured (the library is built
 * without the nonnull attribute, so its checks stay). */
static void test_documented_nulls(void **state)
{
    (void)state;
    svc_status (*volatile add_cors)(svc_app *, const svc_cors_opts *) = svc_add_cors;
    svc_status (*volatile attach)(svc_app *, const char *, void *, void (*)(void *)) =
        svc_app_attach;
    svc_status (*volatile app_new)(svc_app **, const svc_app_opts *) = svc_app_new;
    assert_int_equal(add_cors(NULL, NULL), SVC_EINVAL);
    assert_int_equal(attach(NULL, "k", &released[0], NULL), SVC_EINVAL);
    assert_int_equal(app_new(NULL, NULL), SVC_EINVAL);
    assert_null(svc_app_config(NULL));
}

int main(void)
{
    setenv("SVC_LOG_LEVEL", "error", 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_hooks_in_order_stop_hooks_reversed),
        cmocka_unit_test(test_failing_start_hook_unwinds_and_fails_start),
        cmocka_unit_test(test_stop_hook_after_last_request),
        cmocka_unit_test(test_attachments_found_and_released_in_reverse),
        cmocka_unit_test(test_app_keeps_configuration_for_add_null),
        cmocka_unit_test(test_add_null_bad_configuration_says_why),
        cmocka_unit_test(test_config_file_from_environment),
        cmocka_unit_test(test_builtins_from_yaml_and_environment),
        cmocka_unit_test(test_config_load_failure_in_last_errmsg),
        cmocka_unit_test(test_documented_nulls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
