#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "svcinfra/http.h"
#include "svcinfra/pg.h"
#include "svcinfra/redis.h"
#include "svcinfra/status.h"
#include "svcinfra/version.h"
#include "svcinfra_config.h"

static void ok_is_zero_and_has_text(void **state)
{
    (void)state;
    assert_int_equal(SVC_OK, 0);
    assert_string_equal(svc_strerror(SVC_OK), "success");
    assert_string_equal(svc_status_name(SVC_OK), "OK");
}

static void every_status_has_a_name_and_text(void **state)
{
    (void)state;
    for (int s = 0; s < SVC__STATUS_LAST; s++) {
        assert_string_not_equal(svc_strerror((svc_status)s), "unknown status");
        assert_string_not_equal(svc_status_name((svc_status)s), "UNKNOWN");
    }
}

static void values_are_stable(void **state)
{
    (void)state;
    /* Renumbering breaks every program built against an older header. */
    assert_int_equal(SVC_EINVAL, 1);
    assert_int_equal(SVC_ENOMEM, 2);
    assert_int_equal(SVC_ETIMEDOUT, 6);
    assert_int_equal(SVC_EUNAVAILABLE, 7);
    assert_int_equal(SVC_EINTERNAL, 19);
    assert_string_equal(svc_status_name(SVC_ETIMEDOUT), "ETIMEDOUT");
    assert_string_equal(svc_strerror(SVC_EUNAVAILABLE), "backend unavailable");
}

static void unknown_values_are_reported_as_unknown(void **state)
{
    (void)state;
    assert_string_equal(svc_strerror((svc_status)-1), "unknown status");
    assert_string_equal(svc_strerror((svc_status)100000), "unknown status");
    assert_string_equal(svc_status_name((svc_status)SVC__STATUS_LAST), "UNKNOWN");
}

static void version_string_matches_macros(void **state)
{
    (void)state;
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", SVC_VERSION_MAJOR, SVC_VERSION_MINOR, SVC_VERSION_PATCH);
    assert_string_equal(svc_version_string(), want);
    assert_int_equal(svc_version_hex(), SVC_VERSION_HEX);
    assert_int_equal(svc_feature_supported((svc_feature)0), 0);
    assert_int_equal(svc_feature_supported((svc_feature)999), 0);
}

/* `st` (of creating a handle that needs `f`) is SVC_ENOTSUP exactly when
 * `f` is not supported, SVC_OK otherwise. */
static void assert_enotsup_iff_missing(svc_status st, svc_feature f)
{
    assert_int_equal(st == SVC_ENOTSUP, !svc_feature_supported(f));
    assert_int_equal(st == SVC_OK, svc_feature_supported(f));
}

/* Each feature is reported as the build configured it, and as its calls
 * behave: SVC_ENOTSUP exactly when it is not compiled in. */
static void features_match_the_build_and_what_the_calls_do(void **state)
{
    (void)state;
    assert_int_equal(svc_feature_supported(SVC_FEATURE_POSTGRES), SVC_HAVE_POSTGRES);
    assert_int_equal(svc_feature_supported(SVC_FEATURE_REDIS), SVC_HAVE_REDIS);
    assert_int_equal(svc_feature_supported(SVC_FEATURE_HTTP), SVC_HAVE_HTTP);
    assert_int_equal(svc_feature_supported(SVC_FEATURE_CURL), SVC_HAVE_CURL);

    svc_pg_opts po;
    svc_pg_opts_default(&po);
    po.url = "postgres://127.0.0.1:1/none"; /* not eager: nothing is contacted */
    po.no_metrics = 1;
    svc_pg *pg = NULL;
    assert_enotsup_iff_missing(svc_pg_new(&pg, &po), SVC_FEATURE_POSTGRES);
    svc_pg_free(pg);

    svc_redis_opts ro;
    svc_redis_opts_default(&ro);
    ro.url = "redis://127.0.0.1:1/0";
    ro.no_metrics = 1;
    svc_redis *r = NULL;
    assert_enotsup_iff_missing(svc_redis_new(&r, &ro), SVC_FEATURE_REDIS);
    svc_redis_free(r);

    svc_app_opts ao;
    svc_app_opts_default(&ao);
    ao.port = 0;
    svc_app *app = NULL;
    assert_enotsup_iff_missing(svc_app_new(&app, &ao), SVC_FEATURE_HTTP);
    svc_app_free(app);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ok_is_zero_and_has_text),
        cmocka_unit_test(every_status_has_a_name_and_text),
        cmocka_unit_test(values_are_stable),
        cmocka_unit_test(unknown_values_are_reported_as_unknown),
        cmocka_unit_test(version_string_matches_macros),
        cmocka_unit_test(features_match_the_build_and_what_the_calls_do),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
