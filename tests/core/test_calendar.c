/* core/calendar.h: days since 1970-01-01 and proleptic Gregorian dates. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <cmocka.h>

#include "core/calendar.h"

static void floor_div_rounds_toward_negative_infinity(void **state)
{
    (void)state;
    assert_int_equal(svc__floor_div(7, 2), 3);
    assert_int_equal(svc__floor_div(-7, 2), -4);
    assert_int_equal(svc__floor_div(-8, 2), -4);
    assert_int_equal(svc__floor_div(7, -2), -4);
    assert_int_equal(svc__floor_div(-1, 86400), -1);
    assert_int_equal(svc__floor_div(0, 86400), 0);
}

static void known_dates_have_their_day_numbers(void **state)
{
    (void)state;
    static const struct {
        int y, m, d;
        int64_t days;
        int wday;
    } k[] = {
        {1970, 1, 1, 0, 4},           {1969, 12, 31, -1, 3},       {2000, 2, 29, 11016, 2},
        {2000, 3, 1, 11017, 3},       {1900, 3, 1, -25508, 4},     {2026, 12, 7, 20794, 1},
        {1, 1, 1, -719162, 1},        {9999, 12, 31, 2932896, 5},  {1600, 2, 29, -135081, 2},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        assert_int_equal(svc__days_from_civil(k[i].y, k[i].m, k[i].d), k[i].days);
        int64_t y;
        int m, d;
        svc__civil_from_days(k[i].days, &y, &m, &d);
        assert_int_equal(y, k[i].y);
        assert_int_equal(m, k[i].m);
        assert_int_equal(d, k[i].d);
        assert_int_equal(svc__weekday_from_days(k[i].days), k[i].wday);
    }
}

/* Every day of the years 1..9999 once: dates follow one another, month
 * lengths and leap years are those of the Gregorian calendar, and the
 * conversion goes back to the day it came from. */
static void every_day_of_years_1_to_9999_round_trips(void **state)
{
    (void)state;
    int64_t day = svc__days_from_civil(1, 1, 1);
    int wday = svc__weekday_from_days(day);
    for (int64_t y = 1; y <= 9999; y++) {
        for (int m = 1; m <= 12; m++) {
            int dim = svc__days_in_month(y, m);
            if (m == 2)
                assert_int_equal(dim, svc__is_leap_year(y) ? 29 : 28);
            for (int d = 1; d <= dim; d++, day++) {
                if (svc__days_from_civil(y, m, d) != day)
                    fail_msg("%lld-%02d-%02d is not day %lld", (long long)y, m, d, (long long)day);
                int64_t yy;
                int mm, dd;
                svc__civil_from_days(day, &yy, &mm, &dd);
                if (yy != y || mm != m || dd != d)
                    fail_msg("day %lld came back as %lld-%02d-%02d", (long long)day, (long long)yy,
                             mm, dd);
                if (svc__weekday_from_days(day) != wday)
                    fail_msg("day %lld: weekday %d, want %d", (long long)day,
                             svc__weekday_from_days(day), wday);
                wday = (wday + 1) % 7;
            }
        }
    }
}

static void seconds_split_into_calendar_fields(void **state)
{
    (void)state;
    svc_tm tm;
    /* 2024-12-31T23:59:58: a leap year's last day is its yday 365 */
    assert_true(svc__civil_fields(INT64_C(1735689598), &tm));
    assert_int_equal(tm.year, 2024);
    assert_int_equal(tm.month, 12);
    assert_int_equal(tm.day, 31);
    assert_int_equal(tm.hour, 23);
    assert_int_equal(tm.minute, 59);
    assert_int_equal(tm.second, 58);
    assert_int_equal(tm.wday, 2);
    assert_int_equal(tm.yday, 365);
    assert_int_equal(tm.utc_offset, 0);
    /* before the epoch: 1969-12-31T23:59:59, a Wednesday */
    assert_true(svc__civil_fields(-1, &tm));
    assert_int_equal(tm.year, 1969);
    assert_int_equal(tm.day, 31);
    assert_int_equal(tm.second, 59);
    assert_int_equal(tm.wday, 3);
    /* the years 1..9999 only */
    assert_true(svc__civil_fields(INT64_C(-62135596800), &tm));
    assert_int_equal(tm.year, 1);
    assert_false(svc__civil_fields(INT64_C(-62135596801), &tm));
    assert_true(svc__civil_fields(INT64_C(253402300799), &tm));
    assert_int_equal(tm.year, 9999);
    assert_false(svc__civil_fields(INT64_C(253402300800), &tm));
}

static void leap_years_follow_the_gregorian_rule(void **state)
{
    (void)state;
    assert_true(svc__is_leap_year(2000));
    assert_true(svc__is_leap_year(2024));
    assert_false(svc__is_leap_year(1900));
    assert_false(svc__is_leap_year(2100));
    assert_false(svc__is_leap_year(2026));
    assert_true(svc__is_leap_year(0));
    assert_true(svc__is_leap_year(-4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(floor_div_rounds_toward_negative_infinity),
        cmocka_unit_test(known_dates_have_their_day_numbers),
        cmocka_unit_test(every_day_of_years_1_to_9999_round_trips),
        cmocka_unit_test(seconds_split_into_calendar_fields),
        cmocka_unit_test(leap_years_follow_the_gregorian_rule),
    };
    return cmocka_run_group_tests_name("calendar", tests, NULL, NULL);
}
