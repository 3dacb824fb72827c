#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "internal.h"

static void appends_grow_and_stay_terminated(void **state)
{
    (void)state;
    svc__buf b;
    svc__buf_init(&b);
    for (int i = 0; i < 1000; i++)
        svc__buf_printf(&b, "%d,", i % 10);
    assert_true(svc__buf_ok(&b));
    assert_int_equal(b.len, 2000);
    assert_int_equal(strlen(b.data), 2000);
    svc__buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    svc__buf_putc(&b, 'x');
    size_t n = 0;
    char *s = svc__buf_steal(&b, &n);
    assert_string_equal(s, "x");
    assert_int_equal(n, 1);
    assert_null(b.data);
    svc_free(s);
}

static void json_escape_handles_quotes_controls_and_utf8(void **state)
{
    (void)state;
    svc__buf b;
    svc__buf_init(&b);
    const char in[] = "a\"b\\c\nd\x01\xc3\xa9";
    svc__buf_json_escape(&b, in, sizeof in - 1);
    assert_string_equal(b.data, "a\\\"b\\\\c\\nd\\u0001\xc3\xa9");
    svc__buf_free(&b);
}

static void err_keeps_latest_detail(void **state)
{
    (void)state;
    svc__err e;
    svc__err_init(&e);
    assert_string_equal(svc__err_get(&e), "");
    assert_int_equal(svc__err_set(&e, SVC_EBACKEND, "query %s failed: %d", "q1", 7), SVC_EBACKEND);
    assert_string_equal(svc__err_get(&e), "query q1 failed: 7");
    svc__err_clear(&e);
    assert_string_equal(svc__err_get(&e), "");
    svc__err_destroy(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(appends_grow_and_stay_terminated),
        cmocka_unit_test(json_escape_handles_quotes_controls_and_utf8),
        cmocka_unit_test(err_keeps_latest_detail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
