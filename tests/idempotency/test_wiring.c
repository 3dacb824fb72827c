/*
 * test_wiring.c - the idempotency module's template: options from the
 * SVC_IDEMPOTENCY_* environment for NULL options only, svc_add_idempotency
 * (app, NULL) configured from the app's YAML and environment and working
 * end to end over HTTP, svc_app_idem(), references (free order never
 * matters), stats and metrics, and store-binding errors through
 * svc_last_errmsg().
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../http/http_test_util.h"
#include "svcinfra/alloc.h"
#include "svcinfra/config.h"
#include "svcinfra/http.h"
#include "svcinfra/idempotency.h"
#include "svcinfra/metrics.h"

static void clear_env(void)
{
    static const char *const vars[] = {"SVC_IDEMPOTENCY_URL", "SVC_IDEMPOTENCY_TTL_MS",
                                       "SVC_IDEMPOTENCY_LEASE_MS",
                                       "SVC_IDEMPOTENCY_MIN_KEY_LEN",
                                       "SVC_IDEMPOTENCY_REQUIRE_ALL"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

static int reset(void **state)
{
    (void)state;
    clear_env();
    return 0;
}

/* ---- engine options ------------------------------------------------------ */

static void null_options_read_the_environment(void **state)
{
    (void)state;
    setenv("SVC_IDEMPOTENCY_TTL_MS", "2h", 1);
    setenv("SVC_IDEMPOTENCY_LEASE_MS", "90s", 1);
    setenv("SVC_IDEMPOTENCY_URL", "memory:", 1);
    svc_idem *idem = NULL;
    assert_int_equal(svc_idem_new(&idem, NULL), SVC_OK);
    assert_int_equal(svc_idem_lease_ms(idem), 90000);
    assert_string_equal(svc_idem_backend_name(idem), "memory");
    svc_idem_free(idem);

    /* a bad value is refused, naming the key */
    setenv("SVC_IDEMPOTENCY_LEASE_MS", "soon", 1);
    assert_int_not_equal(svc_idem_new(&idem, NULL), SVC_OK);
    assert_null(idem);
    assert_non_null(strstr(svc_last_errmsg(), "lease_ms"));
    /* a lease not shorter than the TTL, from the environment too */
    setenv("SVC_IDEMPOTENCY_LEASE_MS", "3h", 1);
    assert_int_equal(svc_idem_new(&idem, NULL), SVC_EINVAL);
    assert_non_null(strstr(svc_last_errmsg(), "idempotency: lease_ms"));
}

static void explicit_options_ignore_the_environment(void **state)
{
    (void)state;
    setenv("SVC_IDEMPOTENCY_LEASE_MS", "90s", 1);
    setenv("SVC_IDEMPOTENCY_URL", "ftp://nowhere", 1);
    svc_idem_opts o;
    svc_idem_opts_default(&o);
    assert_string_equal(o.url, "memory:");
    assert_int_equal(o.lease_ms, 60000);
    svc_idem *idem = NULL;
    assert_int_equal(svc_idem_new(&idem, &o), SVC_OK);
    assert_int_equal(svc_idem_lease_ms(idem), 60000);
    svc_idem_free(idem);
}

static void store_binding_errors_name_the_module(void **state)
{
    (void)state;
    svc_idem_opts o;
    svc_idem_opts_default(&o);
    o.url = "ftp://x";
    svc_idem *idem = NULL;
    assert_int_equal(svc_idem_new(&idem, &o), SVC_EINVAL);
    assert_null(idem);
    assert_true(strncmp(svc_last_errmsg(), "idempotency: ", 13) == 0);
    o.url = "memory:";
    o.max_records = 10;
    assert_int_equal(svc_idem_new(&idem, &o), SVC_EINVAL);
    assert_non_null(strstr(svc_last_errmsg(), "max_records"));
    /* a success clears the message */
    o.max_records = 0;
    assert_int_equal(svc_idem_new(&idem, &o), SVC_OK);
    assert_string_equal(svc_last_errmsg(), "");
    svc_idem_free(idem);
}

static void references_and_null_handles(void **state)
{
    (void)state;
    svc_idem *idem = NULL;
    assert_int_equal(svc_idem_new(&idem, NULL), SVC_OK);
    assert_ptr_equal(svc_idem_ref(idem), idem);
    svc_idem_free(idem); /* one reference left */
    assert_string_equal(svc_idem_backend_name(idem), "memory");
    svc_idem_free(idem);
    assert_null(svc_idem_ref(NULL));
    svc_idem_free(NULL);
    assert_string_equal(svc_idem_errmsg(NULL), "");
    assert_string_equal(svc_idem_backend_name(NULL), "");
    svc_idem_stats s;
    assert_int_equal(svc_idem_stats_get(NULL, &s), SVC_EINVAL);
}

static void stats_count_every_outcome(void **state)
{
    (void)state;
    svc_idem_opts o;
    svc_idem_opts_default(&o);
    o.no_metrics = 1;
    svc_idem *idem = NULL;
    assert_int_equal(svc_idem_new(&idem, &o), SVC_OK);
    svc_idem_scope sc = {.method = "POST", .route = "/pay", .key = "key-00000001"};
    svc_idem_result r, r2;
    assert_int_equal(svc_idem_claim(idem, &sc, "fp", &r), SVC_OK);
    assert_int_equal(r.outcome, SVC_IDEM_CLAIMED);
    assert_int_equal(svc_idem_claim(idem, &sc, "fp", &r2), SVC_OK);
    assert_int_equal(r2.outcome, SVC_IDEM_IN_PROGRESS);
    svc_idem_result_clear(&r2);
    assert_int_equal(svc_idem_claim(idem, &sc, "other", &r2), SVC_OK);
    assert_int_equal(r2.outcome, SVC_IDEM_MISMATCH);
    svc_idem_result_clear(&r2);
    svc_idem_response resp = {.status = 201};
    assert_int_equal(svc_idem_complete(idem, &sc, r.token, &resp), SVC_OK);
    assert_int_equal(svc_idem_complete(idem, &sc, r.token, &resp), SVC_ECONFLICT);
    assert_int_equal(svc_idem_claim(idem, &sc, "fp", &r2), SVC_OK);
    assert_int_equal(r2.outcome, SVC_IDEM_COMPLETED);
    svc_idem_result_clear(&r2);
    svc_idem_result_clear(&r);
    svc_idem_scope sc2 = {.method = "POST", .route = "/pay", .key = "key-00000002"};
    assert_int_equal(svc_idem_claim(idem, &sc2, "fp", &r), SVC_OK);
    assert_int_equal(svc_idem_release(idem, &sc2, r.token), SVC_OK);
    svc_idem_result_clear(&r);

    svc_idem_stats s;
    assert_int_equal(svc_idem_stats_get(idem, &s), SVC_OK);
    assert_int_equal(s.claims, 5);
    assert_int_equal(s.claimed, 2);
    assert_int_equal(s.taken_over, 0);
    assert_int_equal(s.in_progress, 1);
    assert_int_equal(s.mismatches, 1);
    assert_int_equal(s.replays, 1);
    assert_int_equal(s.completes, 1);
    assert_int_equal(s.releases, 1);
    assert_int_equal(s.conflicts, 1);
    assert_int_equal(s.store_errors, 0);
    svc_idem_free(idem);
}

static char *render(svc_metrics *m)
{
    char *text = NULL;
    assert_int_equal(svc_metrics_render(m, &text, NULL), SVC_OK);
    return text;
}

static void stats_are_exported_as_metrics(void **state)
{
    (void)state;
    svc_metrics *m = NULL;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_idem_opts o;
    svc_idem_opts_default(&o);
    o.metrics = m;
    svc_idem *idem = NULL;
    assert_int_equal(svc_idem_new(&idem, &o), SVC_OK);
    svc_idem_scope sc = {.method = "POST", .route = "/pay", .key = "key-00000001"};
    svc_idem_result r, r2;
    assert_int_equal(svc_idem_claim(idem, &sc, "fp", &r), SVC_OK);
    svc_idem_response resp = {.status = 201};
    assert_int_equal(svc_idem_complete(idem, &sc, r.token, &resp), SVC_OK);
    assert_int_equal(svc_idem_claim(idem, &sc, "fp", &r2), SVC_OK);
    svc_idem_result_clear(&r);
    svc_idem_result_clear(&r2);
    char *text = render(m);
    assert_non_null(strstr(text, "idempotency_claims_total{outcome=\"claimed\"} 1\n"));
    assert_non_null(strstr(text, "idempotency_claims_total{outcome=\"replayed\"} 1\n"));
    assert_non_null(strstr(text, "idempotency_completes_total 1\n"));
    svc_free(text);
    /* a second render adds nothing new */
    text = render(m);
    assert_non_null(strstr(text, "idempotency_completes_total 1\n"));
    svc_free(text);
    svc_idem_free(idem);
    /* the engine is gone: rendering no longer calls into it */
    text = render(m);
    svc_free(text);
    svc_metrics_free(m);
}

/* ---- wiring -------------------------------------------------------------- */

static svc_app *app_from_yaml(const char *yaml)
{
    svc_config *cfg = NULL;
    char eb[256];
    assert_int_equal(svc_config_parse(&cfg, yaml, eb, sizeof eb), SVC_OK);
    svc_app_opts ao;
    svc_app_opts_default(&ao);
    ao.port = 0;
    ao.threads = 2;
    ao.access_log = 0;
    ao.config = cfg;
    svc_app *app = NULL;
    assert_int_equal(svc_app_new(&app, &ao), SVC_OK);
    svc_config_free(cfg); /* the app keeps its reference */
    return app;
}

static void h_pay(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    int *runs = ud;
    (*runs)++;
    char body[64];
    snprintf(body, sizeof body, "{\"run\":%d}", *runs);
    assert_int_equal(svc_res_body(res, body, strlen(body)), SVC_OK);
    svc_res_status(res, 201);
}

static void add_with_null_options_reads_the_apps_yaml_end_to_end(void **state)
{
    (void)state;
    svc_app *app = app_from_yaml("idempotency:\n"
                                 "  url: \"memory:\"\n"
                                 "  lease_ms: 90s\n"
                                 "  ttl_ms: 24h\n"
                                 "  min_key_len: 12\n"
                                 "  require_all: true\n"
                                 "  methods: [POST, PUT]\n");
    assert_null(svc_app_idem(app));
    assert_int_equal(svc_add_idempotency(app, NULL), SVC_OK);
    svc_idem *idem = svc_app_idem(app);
    assert_non_null(idem);
    assert_int_equal(svc_idem_lease_ms(idem), 90000);
    int runs = 0;
    assert_int_equal(svc_app_route(app, "PUT", "/pay", h_pay, &runs), SVC_OK);
    assert_int_equal(svc_app_start(app), SVC_OK);
    uint16_t port = svc_app_port(app);
    htu_response r;
    /* require_all: PUT (covered by `methods`) without a key */
    assert_int_equal(htu_request(port, "PUT", "/pay", NULL, "{}", &r), 0);
    assert_int_equal(r.status, 400);
    htu_response_free(&r);
    /* min_key_len 12 */
    assert_int_equal(htu_request(port, "PUT", "/pay", "Idempotency-Key: short-key\r\n", "{}", &r),
                     0);
    assert_int_equal(r.status, 400);
    htu_response_free(&r);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(
            htu_request(port, "PUT", "/pay", "Idempotency-Key: a-long-enough-key\r\n", "{}", &r),
            0);
        assert_int_equal(r.status, 201);
        assert_string_equal(r.body, "{\"run\":1}");
        if (i == 1)
            assert_string_equal(htu_header(&r, "Idempotent-Replayed"), "true");
        htu_response_free(&r);
    }
    assert_int_equal(runs, 1);
    svc_idem_stats s;
    assert_int_equal(svc_idem_stats_get(idem, &s), SVC_OK);
    assert_int_equal(s.claimed, 1);
    assert_int_equal(s.replays, 1);
    assert_int_equal(s.completes, 1);
    /* the engine's metrics are in the app's registry */
    char *text = render(svc_app_metrics(app));
    assert_non_null(strstr(text, "idempotency_claims_total{outcome=\"replayed\"} 1\n"));
    svc_free(text);
    /* once is enough */
    assert_int_equal(svc_add_idempotency(app, NULL), SVC_EEXIST);
    svc_app_free(app);
}

static void add_with_null_options_reads_the_environment(void **state)
{
    (void)state;
    setenv("SVC_IDEMPOTENCY_LEASE_MS", "2m", 1);
    setenv("SVC_IDEMPOTENCY_MIN_KEY_LEN", "0", 1); /* below 1: refused */
    svc_app *app = app_from_yaml("http:\n  port: 0\n");
    svc_app_free(app);
    svc_app_opts ao;
    svc_app_opts_default(&ao);
    ao.port = 0;
    ao.threads = 1;
    ao.access_log = 0;
    assert_int_equal(svc_app_new(&app, &ao), SVC_OK); /* config: the environment */
    assert_int_not_equal(svc_add_idempotency(app, NULL), SVC_OK);
    assert_non_null(strstr(svc_last_errmsg(), "min_key_len"));
    assert_null(svc_app_idem(app));
    svc_app_free(app);

    unsetenv("SVC_IDEMPOTENCY_MIN_KEY_LEN");
    assert_int_equal(svc_app_new(&app, &ao), SVC_OK);
    assert_int_equal(svc_add_idempotency(app, NULL), SVC_OK);
    assert_int_equal(svc_idem_lease_ms(svc_app_idem(app)), 120000);
    svc_app_free(app);
}

static void add_with_null_options_reports_a_bad_store(void **state)
{
    (void)state;
    svc_app *app = app_from_yaml("idempotency:\n  url: \"ftp://x\"\n");
    assert_int_equal(svc_add_idempotency(app, NULL), SVC_EINVAL);
    assert_true(strncmp(svc_last_errmsg(), "idempotency: ", 13) == 0);
    assert_null(svc_app_idem(app));
    svc_app_free(app);
    assert_null(svc_app_idem(NULL));
    assert_int_equal(svc_add_idempotency(NULL, NULL), SVC_EINVAL);
}

/* The app takes its own reference on an engine it is given. */
static void given_engine_may_be_freed_before_or_after_the_app(void **state)
{
    (void)state;
    for (int engine_first = 0; engine_first < 2; engine_first++) {
        svc_app *app = app_from_yaml("http:\n  port: 0\n");
        svc_idem *idem = NULL;
        assert_int_equal(svc_idem_new(&idem, NULL), SVC_OK);
        svc_idem_http_opts o;
        svc_idem_http_opts_default(&o);
        o.idem = idem;
        assert_int_equal(svc_add_idempotency(app, &o), SVC_OK);
        assert_ptr_equal(svc_app_idem(app), idem);
        int runs = 0;
        assert_int_equal(svc_app_route(app, "POST", "/pay", h_pay, &runs), SVC_OK);
        assert_int_equal(svc_app_start(app), SVC_OK);
        if (engine_first)
            svc_idem_free(idem); /* the app still holds it */
        htu_response r;
        assert_int_equal(htu_request(svc_app_port(app), "POST", "/pay",
                                     "Idempotency-Key: key-00000001\r\n", "{}", &r),
                         0);
        assert_int_equal(r.status, 201);
        htu_response_free(&r);
        svc_app_free(app);
        if (!engine_first) {
            /* the app is gone; the engine is still the caller's */
            svc_idem_stats s;
            assert_int_equal(svc_idem_stats_get(idem, &s), SVC_OK);
            assert_int_equal(s.completes, 1);
            svc_idem_free(idem);
        }
    }
}

static void explicit_http_options_ignore_the_apps_configuration(void **state)
{
    (void)state;
    svc_app *app = app_from_yaml("idempotency:\n  min_key_len: 200\n");
    svc_idem_http_opts o;
    svc_idem_http_opts_default(&o);
    assert_int_equal(o.min_key_len, 8);
    assert_int_equal(svc_add_idempotency(app, &o), SVC_OK);
    int runs = 0;
    assert_int_equal(svc_app_route(app, "POST", "/pay", h_pay, &runs), SVC_OK);
    assert_int_equal(svc_app_start(app), SVC_OK);
    htu_response r;
    assert_int_equal(htu_request(svc_app_port(app), "POST", "/pay",
                                 "Idempotency-Key: key-00000001\r\n", "{}", &r),
                     0);
    assert_int_equal(r.status, 201); /* min_key_len 8, not 200 */
    htu_response_free(&r);
    svc_app_free(app);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(null_options_read_the_environment, reset),
        cmocka_unit_test_setup(explicit_options_ignore_the_environment, reset),
        cmocka_unit_test_setup(store_binding_errors_name_the_module, reset),
        cmocka_unit_test_setup(references_and_null_handles, reset),
        cmocka_unit_test_setup(stats_count_every_outcome, reset),
        cmocka_unit_test_setup(stats_are_exported_as_metrics, reset),
        cmocka_unit_test_setup(add_with_null_options_reads_the_apps_yaml_end_to_end, reset),
        cmocka_unit_test_setup(add_with_null_options_reads_the_environment, reset),
        cmocka_unit_test_setup(add_with_null_options_reports_a_bad_store, reset),
        cmocka_unit_test_setup(given_engine_may_be_freed_before_or_after_the_app, reset),
        cmocka_unit_test_setup(explicit_http_options_ignore_the_apps_configuration, reset),
    };
    return cmocka_run_group_tests_name("idempotency wiring", tests, NULL, NULL);
}
