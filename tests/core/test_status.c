#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "svcinfra/status.h"
#include "svcinfra/version.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ok_is_zero_and_has_text),
        cmocka_unit_test(every_status_has_a_name_and_text),
        cmocka_unit_test(values_are_stable),
        cmocka_unit_test(unknown_values_are_reported_as_unknown),
        cmocka_unit_test(version_string_matches_macros),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
