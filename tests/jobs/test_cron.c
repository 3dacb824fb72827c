#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "svcinfra/cron.h"
#include "svcinfra/tz.h"
#include "internal.h"

/* "2026-03-29T01:00:00Z" -> UTC seconds. */
static int64_t utc(const char *iso)
{
    int y, mo, d, h, mi, s;
    if (sscanf(iso, "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &s) != 6)
        fail_msg("bad time literal %s", iso);
    svc_tz *tz = NULL;
    assert_int_equal(svc_tz_load(&tz, "UTC"), SVC_OK);
    int64_t t = 0;
    assert_int_equal(svc_tz_from_local(tz, y, mo, d, h, mi, s, 0, &t), SVC_OK);
    svc_tz_free(tz);
    return t;
}

static void iso(int64_t t, char out[32])
{
    svc_tz *tz = NULL;
    svc_tm tm;
    assert_int_equal(svc_tz_load(&tz, "UTC"), SVC_OK);
    assert_int_equal(svc_tz_to_local(tz, t, &tm), SVC_OK);
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.year, tm.month, tm.day, tm.hour,
             tm.minute, tm.second);
    svc_tz_free(tz);
}

static svc_cron *parse(const char *expr, const char *zone)
{
    svc_cron *c = NULL;
    char err[256];
    svc_status st = svc_cron_parse(&c, expr, zone, err, sizeof err);
    if (st != SVC_OK)
        fail_msg("parsing '%s': %s", expr, err);
    return c;
}

typedef struct next_case {
    const char *expr;
    const char *zone;     /* NULL: UTC */
    const char *after;    /* UTC */
    const char *expected; /* UTC; NULL: SVC_ENOTFOUND */
    const char *why;
} next_case;

static void check_cases(const next_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const next_case *k = &cases[i];
        svc_cron *c = parse(k->expr, k->zone);
        int64_t got = 0;
        svc_status st = svc_cron_next(c, utc(k->after), &got);
        char g[32] = "";
        if (st == SVC_OK)
            iso(got, g);
        if (!k->expected) {
            if (st != SVC_ENOTFOUND)
                fail_msg("'%s' %s after %s: expected no fire time, got %s (%s)", k->expr,
                         k->zone ? k->zone : "UTC", k->after, g, svc_status_name(st));
        } else if (st != SVC_OK || strcmp(g, k->expected) != 0) {
            fail_msg("'%s' %s after %s (%s): expected %s, got %s (%s)", k->expr,
                     k->zone ? k->zone : "UTC", k->after, k->why, k->expected, g,
                     svc_status_name(st));
        }
        svc_cron_free(c);
    }
}

static void fields_steps_ranges_lists_and_names_match_in_utc(void **state)
{
    (void)state;
    static const next_case cases[] = {
        {"*/15 * * * *", NULL, "2026-01-01T00:00:00Z", "2026-01-01T00:15:00Z", "strictly after"},
        {"*/15 * * * *", NULL, "2026-01-01T00:07:30Z", "2026-01-01T00:15:00Z", "mid-interval"},
        {"* * * * *", NULL, "2026-01-01T00:00:59Z", "2026-01-01T00:01:00Z", "every minute"},
        {"0 0 * * *", NULL, "2026-12-31T12:00:00Z", "2027-01-01T00:00:00Z", "year wrap"},
        {"1-30/5 * * * *", NULL, "2026-01-01T00:26:00Z", "2026-01-01T01:01:00Z", "range step"},
        {"5/15 * * * *", NULL, "2026-01-01T00:50:00Z", "2026-01-01T01:05:00Z", "N/step"},
        {"0,30 9-17 * * MON-FRI", NULL, "2026-01-02T17:30:00Z", "2026-01-05T09:00:00Z",
         "Friday evening to Monday"},
        {"0 12 * JAN,jul *", NULL, "2026-01-31T12:00:00Z", "2026-07-01T12:00:00Z", "month names"},
        {"0 0 31 * *", NULL, "2026-01-31T00:00:00Z", "2026-03-31T00:00:00Z", "skip short months"},
        {"59 23 31 12 *", NULL, "2026-06-01T00:00:00Z", "2026-12-31T23:59:00Z", "last minute"},
        {"0 0 * * 7", NULL, "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z", "7 is Sunday"},
        {"0 0 * * sun", NULL, "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z", "lower-case name"},
        {"0 0 * * 5-7", NULL, "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", "range to 7"},
        {"@yearly", NULL, "2026-03-01T00:00:00Z", "2027-01-01T00:00:00Z", "@yearly"},
        {"@annually", NULL, "2026-03-01T00:00:00Z", "2027-01-01T00:00:00Z", "@annually"},
        {"@monthly", NULL, "2026-01-31T23:59:59Z", "2026-02-01T00:00:00Z", "@monthly"},
        {"@weekly", NULL, "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z", "@weekly (Sunday)"},
        {"@daily", NULL, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "@daily"},
        {"@midnight", NULL, "2026-01-01T23:59:59Z", "2026-01-02T00:00:00Z", "@midnight"},
        {"@HOURLY", NULL, "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", "@hourly any case"},
        {"  0   0\t* *  * ", NULL, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "blanks"},
    };
    check_cases(cases, SVC__ARRAY_LEN(cases));
}

static void day_of_month_or_day_of_week_when_both_are_restricted(void **state)
{
    (void)state;
    static const next_case cases[] = {
        /* 2026-01-01 is a Thursday. */
        {"0 0 13 * FRI", NULL, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "a Friday"},
        {"0 0 13 * FRI", NULL, "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z", "the 13th"},
        {"0 0 1,15 * MON", NULL, "2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z", "a Monday"},
        {"0 0 1,15 * MON", NULL, "2026-01-12T00:00:00Z", "2026-01-15T00:00:00Z", "the 15th"},
        /* A day field starting with '*' is unrestricted: both must match. */
        {"0 0 */2 * MON", NULL, "2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z", "odd Monday"},
        {"0 0 */2 * MON", NULL, "2026-01-05T00:00:00Z", "2026-01-19T00:00:00Z", "next odd Monday"},
        {"0 0 1 * *", NULL, "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "dow unrestricted"},
        {"0 0 * * TUE", NULL, "2026-01-01T00:00:00Z", "2026-01-06T00:00:00Z", "dom unrestricted"},
    };
    check_cases(cases, SVC__ARRAY_LEN(cases));
}

static void leap_days_and_impossible_dates(void **state)
{
    (void)state;
    static const next_case cases[] = {
        {"0 0 29 2 *", NULL, "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z", "leap year 2028"},
        {"0 0 29 2 *", NULL, "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z", "next leap year"},
        {"0 0 29 2 *", "Europe/Berlin", "2026-03-01T00:00:00Z", "2028-02-28T23:00:00Z",
         "leap day in Berlin"},
        {"30 12 29 FEB *", NULL, "2096-03-01T00:00:00Z", "2104-02-29T12:30:00Z",
         "2100 is not a leap year"},
        {"0 0 30 2 *", NULL, "2026-01-01T00:00:00Z", NULL, "February 30th"},
        {"0 0 31 4,6,9,11 *", NULL, "2026-01-01T00:00:00Z", NULL, "31st of a 30-day month"},
        {"0 0 30 2 *", "America/New_York", "2026-01-01T00:00:00Z", NULL, "impossible in a zone"},
        {"0 0 1 1 *", NULL, "9999-06-01T00:00:00Z", NULL, "past the year 9999"},
    };
    check_cases(cases, SVC__ARRAY_LEN(cases));
}

static void europe_berlin_dst_transitions_2026(void **state)
{
    (void)state;
    /* CET is UTC+1, CEST UTC+2. Spring forward 2026-03-29 02:00 -> 03:00;
     * fall back 2026-10-25 03:00 -> 02:00. */
    static const next_case cases[] = {
        {"30 2 * * *", "Europe/Berlin", "2026-03-28T02:00:00Z", "2026-03-29T01:00:00Z",
         "02:30 skipped: runs at 03:00 CEST"},
        {"30 2 * * *", "Europe/Berlin", "2026-03-29T00:59:59Z", "2026-03-29T01:00:00Z",
         "just before the jump"},
        {"30 2 * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z",
         "once only, then 02:30 CEST"},
        {"0 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z",
         "02:00 skipped"},
        {"15 * * * *", "Europe/Berlin", "2026-03-29T00:15:00Z", "2026-03-29T01:15:00Z",
         "wildcard hour: 01:15 CET then 03:15 CEST"},
        {"*/30 * * * *", "Europe/Berlin", "2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z",
         "wildcard hour: 01:30 CET then 03:00 CEST"},
        {"0 0 * * *", "Europe/Berlin", "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z",
         "midnight across the short day"},
        {"0 9 * * MON-FRI", "Europe/Berlin", "2026-03-27T08:00:00Z", "2026-03-30T07:00:00Z",
         "09:00 CET Friday to 09:00 CEST Monday"},
        {"30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z",
         "fall back: first 02:30 (CEST)"},
        {"30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z",
         "not again at 02:30 CET"},
        {"30 2 * * *", "Europe/Berlin", "2026-10-25T01:10:00Z", "2026-10-26T01:30:00Z",
         "inside the second pass"},
        {"*/30 * * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z",
         "wildcard hour: 02:30 CEST then 02:00 CET"},
        {"*/30 * * * *", "Europe/Berlin", "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z",
         "wildcard hour: second pass continues"},
        {"0 0 1 * *", "Europe/Berlin", "2026-10-15T00:00:00Z", "2026-10-31T23:00:00Z",
         "November 1st midnight CET"},
    };
    check_cases(cases, SVC__ARRAY_LEN(cases));
}

static void america_new_york_dst_transitions_2026(void **state)
{
    (void)state;
    /* EST is UTC-5, EDT UTC-4. Spring forward 2026-03-08 02:00 -> 03:00;
     * fall back 2026-11-01 02:00 -> 01:00. */
    static const next_case cases[] = {
        {"30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z",
         "02:30 skipped: runs at 03:00 EDT"},
        {"30 2 * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z",
         "then 02:30 EDT"},
        {"0 3 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z",
         "03:00 exists"},
        {"30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T05:30:00Z",
         "fall back: first 01:30 (EDT)"},
        {"30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z",
         "not again at 01:30 EST"},
        {"*/20 * * * *", "America/New_York", "2026-11-01T05:40:00Z", "2026-11-01T06:00:00Z",
         "wildcard hour: 01:40 EDT then 01:00 EST"},
        {"0 * * * *", "America/New_York", "2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z",
         "hourly: 01:00 EDT then 01:00 EST"},
        {"0 * * * *", "America/New_York", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z",
         "hourly: then 02:00 EST"},
        {"0 0 1 * *", "America/New_York", "2026-10-15T00:00:00Z", "2026-11-01T04:00:00Z",
         "November 1st midnight EDT"},
        {"0 2 * * *", "Australia/Lord_Howe", "2026-10-03T00:00:00Z", "2026-10-03T15:30:00Z",
         "30-minute gap: runs at 02:30 +11"},
    };
    check_cases(cases, SVC__ARRAY_LEN(cases));
}

/* Counts the fire times in [from, to). */
static int count_fires(const svc_cron *c, int64_t from, int64_t to)
{
    int n = 0;
    int64_t t = from - 1;
    while (n < 100000) {
        int64_t next;
        if (svc_cron_next(c, t, &next) != SVC_OK || next >= to)
            break;
        assert_true(next > t);
        t = next;
        n++;
    }
    return n;
}

static void fixed_time_jobs_run_once_every_day_of_the_year(void **state)
{
    (void)state;
    const char *zones[] = {"Europe/Berlin", "America/New_York"};
    for (size_t z = 0; z < SVC__ARRAY_LEN(zones); z++) {
        svc_tz *tz = NULL;
        assert_int_equal(svc_tz_load(&tz, zones[z]), SVC_OK);
        int64_t from, to;
        assert_int_equal(svc_tz_from_local(tz, 2026, 1, 1, 0, 0, 0, 0, &from), SVC_OK);
        assert_int_equal(svc_tz_from_local(tz, 2027, 1, 1, 0, 0, 0, 0, &to), SVC_OK);
        const char *exprs[] = {"30 2 * * *", "30 1 * * *", "0 2 * * *", "59 23 * * *"};
        for (size_t e = 0; e < SVC__ARRAY_LEN(exprs); e++) {
            svc_cron *c = parse(exprs[e], zones[z]);
            assert_int_equal(count_fires(c, from, to), 365);
            svc_cron_free(c);
        }
        svc_tz_free(tz);
    }
}

static void wildcard_hour_jobs_follow_elapsed_time_on_dst_days(void **state)
{
    (void)state;
    svc_cron *c = parse("*/15 * * * *", "Europe/Berlin");
    /* The local day of 2026-03-29 has 23 hours, that of 2026-10-25 25. */
    assert_int_equal(count_fires(c, utc("2026-03-28T23:00:00Z"), utc("2026-03-29T22:00:00Z")),
                     23 * 4);
    assert_int_equal(count_fires(c, utc("2026-10-24T22:00:00Z"), utc("2026-10-25T23:00:00Z")),
                     25 * 4);
    svc_cron_free(c);
    c = parse("0 * * * *", "America/New_York");
    assert_int_equal(count_fires(c, utc("2026-11-01T04:00:00Z"), utc("2026-11-02T05:00:00Z")),
                     25);
    svc_cron_free(c);
}

typedef struct bad_case {
    const char *expr;
    const char *field; /* NULL: the message names no field */
    int column;
    const char *detail;
} bad_case;

static void invalid_expressions_name_the_field_and_column(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"60 * * * *", "minute", 1, "out of range 0-59"},
        {"* 24 * * *", "hour", 3, "out of range 0-23"},
        {"* * 0 * *", "day-of-month", 5, "out of range 1-31"},
        {"* * * 13 *", "month", 7, "out of range 1-12"},
        {"* * * * 8", "day-of-week", 9, "out of range 0-7"},
        {"* * * FOO *", "month", 7, "unknown month name 'FOO'"},
        {"* * * * MON-FUN", "day-of-week", 13, "unknown day name 'FUN'"},
        {"  0 0 * * x", "day-of-week", 11, "unknown day name 'x'"},
        {"*/0 * * * *", "minute", 3, "step 0"},
        {"*/61 * * * *", "minute", 3, "step 61"},
        {"5-1 * * * *", "minute", 3, "ends before it starts"},
        {"0 0 * * 7-1", "day-of-week", 11, "ends before it starts"},
        {"1,,2 * * * *", "minute", 3, "empty list element"},
        {"1, * * * *", "minute", 3, "empty list element"},
        {"*x * * * *", "minute", 2, "unexpected character 'x'"},
        {"* * * * 1-2-3", "day-of-week", 12, "unexpected character '-'"},
        {"* MON * * *", "hour", 3, "names are not allowed"},
        {"* * * JAN/x *", "month", 11, "step must be a number"},
        {"* * * *", NULL, 8, "missing day-of-week field"},
        {"0 0", NULL, 4, "missing day-of-month field"},
        {"* * * * * *", NULL, 11, "unexpected text after the day-of-week field"},
        {"", NULL, 1, "empty expression"},
        {"   ", NULL, 4, "empty expression"},
        {"@reboot", NULL, 1, "unknown macro '@reboot'"},
        {"@daily 5", NULL, 8, "unexpected text after @daily"},
    };
    for (size_t i = 0; i < SVC__ARRAY_LEN(cases); i++) {
        const bad_case *k = &cases[i];
        svc_cron *c = (svc_cron *)&c;
        char err[256] = "";
        assert_int_equal(svc_cron_parse(&c, k->expr, NULL, err, sizeof err), SVC_EPARSE);
        assert_null(c);
        char want[64];
        snprintf(want, sizeof want, "(column %d)", k->column);
        if (!strstr(err, want) || !strstr(err, k->detail))
            fail_msg("'%s': message '%s' lacks '%s' / '%s'", k->expr, err, want, k->detail);
        if (k->field) {
            char f[64];
            snprintf(f, sizeof f, "%s field:", k->field);
            if (!strstr(err, f))
                fail_msg("'%s': message '%s' does not name the %s field", k->expr, err, k->field);
        }
    }
}

static void bad_and_unknown_zones_are_reported(void **state)
{
    (void)state;
    svc_cron *c = NULL;
    char err[256] = "";
    assert_int_equal(svc_cron_parse(&c, "* * * * *", "../etc/passwd", err, sizeof err),
                     SVC_EINVAL);
    assert_null(c);
    assert_non_null(strstr(err, "invalid time zone name"));
    assert_int_equal(svc_cron_parse(&c, "* * * * *", "Mars/Base", err, sizeof err), SVC_ENOTFOUND);
    assert_non_null(strstr(err, "Mars/Base"));
    assert_int_equal(svc_cron_parse(&c, "* * * * *", NULL, NULL, 0), SVC_OK);
    assert_string_equal(svc_cron_tz_name(c), "UTC");
    assert_string_equal(svc_cron_expr(c), "* * * * *");
    int64_t t;
    assert_int_equal(svc_cron_next(c, INT64_C(253402300800), &t), SVC_ERANGE);
    svc_cron_free(c);
    svc_cron_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fields_steps_ranges_lists_and_names_match_in_utc),
        cmocka_unit_test(day_of_month_or_day_of_week_when_both_are_restricted),
        cmocka_unit_test(leap_days_and_impossible_dates),
        cmocka_unit_test(europe_berlin_dst_transitions_2026),
        cmocka_unit_test(america_new_york_dst_transitions_2026),
        cmocka_unit_test(fixed_time_jobs_run_once_every_day_of_the_year),
        cmocka_unit_test(wildcard_hour_jobs_follow_elapsed_time_on_dst_days),
        cmocka_unit_test(invalid_expressions_name_the_field_and_column),
        cmocka_unit_test(bad_and_unknown_zones_are_reported),
    };
    return cmocka_run_group_tests_name("cron", tests, NULL, NULL);
}
