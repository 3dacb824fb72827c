#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "svcinfra/clock.h"

static void system_clock_is_monotonic_and_wall_is_recent(void **state)
{
    (void)state;
    int64_t a = svc_clock_mono_ns(NULL);
    int64_t b = svc_clock_mono_ns(svc_clock_system());
    assert_true(b >= a);
    /* after 2020-01-01 */
    assert_true(svc_clock_wall_ns(NULL) > INT64_C(1577836800) * 1000000000);
}

static void manual_clock_moves_only_when_advanced(void **state)
{
    (void)state;
    svc_manual_clock *mc = NULL;
    assert_int_equal(svc_manual_clock_new(&mc, 100, 5000), SVC_OK);
    const svc_clock *c = svc_manual_clock_get(mc);
    assert_int_equal(svc_clock_mono_ns(c), 100);
    assert_int_equal(svc_clock_wall_ns(c), 5000);
    svc_manual_clock_advance(mc, 50);
    assert_int_equal(svc_clock_mono_ns(c), 150);
    assert_int_equal(svc_clock_wall_ns(c), 5050);
    svc_manual_clock_advance(mc, -1000); /* monotonic never goes back */
    assert_int_equal(svc_clock_mono_ns(c), 150);
    svc_manual_clock_set_wall(mc, 10); /* wall time may jump */
    assert_int_equal(svc_clock_wall_ns(c), 10);
    assert_int_equal(svc_clock_mono_ns(c), 150);
    svc_manual_clock_free(mc);
    svc_manual_clock_free(NULL);
    assert_int_equal(svc_manual_clock_new(NULL, 0, 0), SVC_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(system_clock_is_monotonic_and_wall_is_recent),
        cmocka_unit_test(manual_clock_moves_only_when_advanced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
