/* core/parse.h: the one grammar of configuration values. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "core/parse.h"

static void durations_take_units_and_bare_milliseconds(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t ms;
    } ok[] = {
        {"250", 250},        {"250ms", 250},     {"30s", 30000},         {"5m", 300000},
        {"24h", 86400000},   {"7d", 604800000},  {"1h30m", 5400000},     {"1m30s500ms", 90500},
        {" 30s ", 30000},    {"+2s", 2000},      {"0", 0},               {"0s", 0},
        {"\t10ms\n", 10},    {"9223372036854775807", INT64_MAX},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = -1;
        if (svc__parse_duration_ms(ok[i].text, &v) != SVC_OK || v != ok[i].ms)
            fail_msg("'%s': got %lld, want %lld", ok[i].text, (long long)v, (long long)ok[i].ms);
    }
}

static void durations_refuse_junk_empty_and_overflow(void **state)
{
    (void)state;
    static const char *const junk[] = {"", "   ", "s", "-5s", "30x", "30 s", "1.5s", "30S",
                                       "h1", "1h 30m", "ms", "30s,", "+", "1w"};
    int64_t v = 42;
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        if (svc__parse_duration_ms(junk[i], &v) != SVC_ECONFIG || v != 42)
            fail_msg("'%s' was not refused as malformed", junk[i]);
    }
    static const char *const huge[] = {"9223372036854775808", "99999999999999999999999",
                                       "106751991168d", "9223372036854775807ms1ms",
                                       "99999999999999999999h"};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        if (svc__parse_duration_ms(huge[i], &v) != SVC_ERANGE || v != 42)
            fail_msg("'%s' was not refused as out of range", huge[i]);
    }
}

static void integers_are_signed_decimal_within_int64(void **state)
{
    (void)state;
    int64_t v = 0;
    assert_int_equal(svc__parse_int("42", &v), SVC_OK);
    assert_int_equal(v, 42);
    assert_int_equal(svc__parse_int(" -17 ", &v), SVC_OK);
    assert_int_equal(v, -17);
    assert_int_equal(svc__parse_int("+8", &v), SVC_OK);
    assert_int_equal(v, 8);
    assert_int_equal(svc__parse_int("9223372036854775807", &v), SVC_OK);
    assert_true(v == INT64_MAX);
    assert_int_equal(svc__parse_int("-9223372036854775808", &v), SVC_OK);
    assert_true(v == INT64_MIN);
    v = 7;
    assert_int_equal(svc__parse_int("9223372036854775808", &v), SVC_ERANGE);
    assert_int_equal(svc__parse_int("-9223372036854775809", &v), SVC_ERANGE);
    assert_int_equal(svc__parse_int("184467440737095516160", &v), SVC_ERANGE);
    assert_int_equal(svc__parse_int("", &v), SVC_ECONFIG);
    assert_int_equal(svc__parse_int(" ", &v), SVC_ECONFIG);
    assert_int_equal(svc__parse_int("-", &v), SVC_ECONFIG);
    assert_int_equal(svc__parse_int("12x", &v), SVC_ECONFIG);
    assert_int_equal(svc__parse_int("0x10", &v), SVC_ECONFIG);
    assert_int_equal(svc__parse_int("1e3", &v), SVC_ECONFIG);
    assert_int_equal(svc__parse_int("1 2", &v), SVC_ECONFIG);
    assert_int_equal(v, 7);
}

static void booleans_take_the_six_words_and_digits(void **state)
{
    (void)state;
    static const char *const yes[] = {"true", "TRUE", "yes", "On", "1", " true "};
    static const char *const no[] = {"false", "No", "off", "OFF", "0", "\tno"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        int b = -1;
        assert_int_equal(svc__parse_bool(yes[i], &b), SVC_OK);
        assert_int_equal(b, 1);
        assert_int_equal(svc__parse_bool(no[i], &b), SVC_OK);
        assert_int_equal(b, 0);
    }
    static const char *const junk[] = {"", "y", "2", "truee", "enabled", "t rue"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        int b = -1;
        assert_int_equal(svc__parse_bool(junk[i], &b), SVC_ECONFIG);
        assert_int_equal(b, -1);
    }
}

static void sizes_take_decimal_and_binary_units(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t bytes;
    } ok[] = {
        {"512", 512},         {"512b", 512},          {"10kB", 10000},      {"10 kb", 10000},
        {"64KiB", 65536},     {"1MiB", 1048576},      {"2MB", 2000000},     {"1GiB", 1073741824},
        {"1tib", UINT64_C(1) << 40}, {" 3 GB ", UINT64_C(3000000000)},
        {"18446744073709551615", UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 0;
        if (svc__parse_size(ok[i].text, &v) != SVC_OK || v != ok[i].bytes)
            fail_msg("'%s': got %llu", ok[i].text, (unsigned long long)v);
    }
    uint64_t v = 9;
    assert_int_equal(svc__parse_size("", &v), SVC_ECONFIG);
    assert_int_equal(svc__parse_size("MiB", &v), SVC_ECONFIG);
    assert_int_equal(svc__parse_size("-1", &v), SVC_ECONFIG);
    assert_int_equal(svc__parse_size("10 XB", &v), SVC_ECONFIG);
    assert_int_equal(svc__parse_size("1.5MiB", &v), SVC_ECONFIG);
    assert_int_equal(svc__parse_size("18446744073709551616", &v), SVC_ERANGE);
    assert_int_equal(svc__parse_size("16777216TiB", &v), SVC_ERANGE);
    assert_int_equal(v, 9);
}

static void doubles_are_decimal_only(void **state)
{
    (void)state;
    double d = 0;
    assert_int_equal(svc__parse_double("0.25", &d), SVC_OK);
    assert_true(d == 0.25);
    assert_int_equal(svc__parse_double(" -1e3 ", &d), SVC_OK);
    assert_true(d == -1000.0);
    d = 5;
    assert_int_equal(svc__parse_double("", &d), SVC_ECONFIG);
    assert_int_equal(svc__parse_double("nan", &d), SVC_ECONFIG);
    assert_int_equal(svc__parse_double("inf", &d), SVC_ECONFIG);
    assert_int_equal(svc__parse_double("0x1p3", &d), SVC_ECONFIG);
    assert_int_equal(svc__parse_double("1.5.2", &d), SVC_ECONFIG);
    assert_int_equal(svc__parse_double("1e999", &d), SVC_ERANGE);
    assert_true(d == 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(durations_take_units_and_bare_milliseconds),
        cmocka_unit_test(durations_refuse_junk_empty_and_overflow),
        cmocka_unit_test(integers_are_signed_decimal_within_int64),
        cmocka_unit_test(booleans_take_the_six_words_and_digits),
        cmocka_unit_test(sizes_take_decimal_and_binary_units),
        cmocka_unit_test(doubles_are_decimal_only),
    };
    return cmocka_run_group_tests_name("value parsers", tests, NULL, NULL);
}
