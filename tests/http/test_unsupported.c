/*
 * tests/http/test_unsupported.c - a build without libmicrohttpd
 * (-Dhttp=disabled): http.h's calls exist and say so instead of serving.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "svcinfra/http.h"
#include "svcinfra/version.h"

static void app_new_is_enotsup_and_free_null_is_a_noop(void **state)
{
    (void)state;
    assert_int_equal(svc_feature_supported(SVC_FEATURE_HTTP), 0);
    svc_app *app = (svc_app *)&app; /* any non-NULL value: it must be cleared */
    assert_int_equal(svc_app_new(&app, NULL), SVC_ENOTSUP);
    assert_null(app);
    svc_app_opts o;
    svc_app_opts_default(&o);
    assert_int_equal(svc_app_new(&app, &o), SVC_ENOTSUP);
    assert_null(app);
    svc_app_free(NULL);
}

static void defaults_and_the_problem_table_are_real(void **state)
{
    (void)state;
    svc_app_opts o;
    svc_app_opts_default(&o);
    assert_int_equal(o.port, 8080);
    assert_int_equal(o.max_body_bytes, 1024 * 1024);
    svc_cors_opts c;
    svc_cors_opts_default(&c);
    assert_int_equal(c.max_age_s, 600);
    svc_tenancy_opts t;
    svc_tenancy_opts_default(&t);
    assert_string_equal(t.api_key_header, "X-API-Key");
    assert_int_equal(svc_problem_code_status(SVC_PROBLEM_NOT_FOUND), 404);
    assert_string_equal(svc_problem_code_name(SVC_PROBLEM_RATE_LIMIT), "RATE_LIMIT");
    assert_string_equal(svc_problem_code_title(SVC_PROBLEM_CONFLICT), "Conflict");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(app_new_is_enotsup_and_free_null_is_a_noop),
        cmocka_unit_test(defaults_and_the_problem_table_are_real),
    };
    return cmocka_run_group_tests_name("http_unsupported", tests, NULL, NULL);
}
