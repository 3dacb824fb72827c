#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "svcinfra/tz.h"
#include "internal.h"

/* Instants below were cross-checked against the system zoneinfo with an
 * independent implementation (Python's zoneinfo). */
#define BERLIN_SPRING_2026 INT64_C(1774746000) /* 2026-03-29T01:00:00Z */
#define BERLIN_FALL_2026 INT64_C(1792890000)   /* 2026-10-25T01:00:00Z */
#define NY_SPRING_2026 INT64_C(1772953200)     /* 2026-03-08T07:00:00Z */
#define NY_FALL_2026 INT64_C(1793512800)       /* 2026-11-01T06:00:00Z */

static svc_tz *load(const char *name)
{
    svc_tz *tz = NULL;
    char err[256];
    svc_status st = svc_tz_load_opts(&tz, name, NULL, err, sizeof err);
    if (st != SVC_OK)
        fail_msg("loading %s: %s", name, err);
    return tz;
}

static int32_t offset(const svc_tz *tz, int64_t t, bool *dst)
{
    int32_t off = -1;
    assert_int_equal(svc_tz_offset_at(tz, t, &off, dst), SVC_OK);
    return off;
}

static void utc_is_built_in_and_has_zero_offset(void **state)
{
    (void)state;
    svc_tz_opts o;
    svc_tz_opts_default(&o);
    o.tzdir = "/nonexistent/zoneinfo";
    svc_tz *tz = NULL;
    assert_int_equal(svc_tz_load_opts(&tz, "UTC", &o, NULL, 0), SVC_OK);
    assert_string_equal(svc_tz_name(tz), "UTC");
    bool dst = true;
    assert_int_equal(offset(tz, 0, &dst), 0);
    assert_false(dst);
    svc_tm tm;
    assert_int_equal(svc_tz_to_local(tz, INT64_C(951782400), &tm), SVC_OK); /* 2000-02-29 */
    assert_int_equal(tm.year, 2000);
    assert_int_equal(tm.month, 2);
    assert_int_equal(tm.day, 29);
    assert_int_equal(tm.wday, 2); /* Tuesday */
    assert_int_equal(tm.yday, 59);
    assert_string_equal(tm.abbr, "UTC");
    int64_t t = 0;
    assert_int_equal(svc_tz_from_local(tz, 1969, 12, 31, 23, 59, 59, 0, &t), SVC_OK);
    assert_int_equal(t, -1);
    assert_int_equal(svc_tz_next_transition(tz, 0, &t), SVC_ENOTFOUND);
    svc_tz_free(tz);
}

static void berlin_offsets_change_at_the_2026_transitions(void **state)
{
    (void)state;
    svc_tz *tz = load("Europe/Berlin");
    bool dst = true;
    assert_int_equal(offset(tz, BERLIN_SPRING_2026 - 1, &dst), 3600);
    assert_false(dst);
    assert_int_equal(offset(tz, BERLIN_SPRING_2026, &dst), 7200);
    assert_true(dst);
    assert_int_equal(offset(tz, BERLIN_FALL_2026 - 1, &dst), 7200);
    assert_true(dst);
    assert_int_equal(offset(tz, BERLIN_FALL_2026, &dst), 3600);
    assert_false(dst);
    int64_t when = 0;
    assert_int_equal(svc_tz_next_transition(tz, BERLIN_SPRING_2026 - 86400, &when), SVC_OK);
    assert_int_equal(when, BERLIN_SPRING_2026);
    assert_int_equal(svc_tz_next_transition(tz, BERLIN_SPRING_2026, &when), SVC_OK);
    assert_int_equal(when, BERLIN_FALL_2026);
    assert_int_equal(svc_tz_prev_transition(tz, BERLIN_FALL_2026 - 1, &when), SVC_OK);
    assert_int_equal(when, BERLIN_SPRING_2026);
    assert_int_equal(svc_tz_prev_transition(tz, BERLIN_FALL_2026, &when), SVC_OK);
    assert_int_equal(when, BERLIN_FALL_2026);

    svc_tm tm;
    assert_int_equal(svc_tz_to_local(tz, BERLIN_SPRING_2026, &tm), SVC_OK);
    assert_int_equal(tm.hour, 3);
    assert_int_equal(tm.minute, 0);
    assert_string_equal(tm.abbr, "CEST");
    assert_int_equal(svc_tz_to_local(tz, BERLIN_SPRING_2026 - 1, &tm), SVC_OK);
    assert_int_equal(tm.hour, 1);
    assert_int_equal(tm.minute, 59);
    assert_string_equal(tm.abbr, "CET");
    svc_tz_free(tz);
}

static void new_york_offsets_change_at_the_2026_transitions(void **state)
{
    (void)state;
    svc_tz *tz = load("America/New_York");
    bool dst;
    assert_int_equal(offset(tz, NY_SPRING_2026 - 1, &dst), -18000);
    assert_int_equal(offset(tz, NY_SPRING_2026, &dst), -14400);
    assert_true(dst);
    assert_int_equal(offset(tz, NY_FALL_2026 - 1, &dst), -14400);
    assert_int_equal(offset(tz, NY_FALL_2026, &dst), -18000);
    assert_false(dst);
    svc_tm tm;
    assert_int_equal(svc_tz_to_local(tz, NY_FALL_2026, &tm), SVC_OK);
    assert_int_equal(tm.hour, 1);
    assert_string_equal(tm.abbr, "EST");
    svc_tz_free(tz);
}

static void dates_past_the_last_transition_follow_the_footer_rule(void **state)
{
    (void)state;
    svc_tz *tz = load("Europe/Berlin");
    /* 2100: last Sunday of March is the 28th, of October the 31st. */
    int64_t when = 0;
    assert_int_equal(svc_tz_next_transition(tz, INT64_C(4102444800), &when), SVC_OK);
    assert_int_equal(when, INT64_C(4109878800));
    assert_int_equal(svc_tz_next_transition(tz, when, &when), SVC_OK);
    assert_int_equal(when, INT64_C(4128627600));
    bool dst;
    assert_int_equal(offset(tz, INT64_C(4118000000), &dst), 7200); /* mid-2100 */
    assert_true(dst);
    svc_tz_free(tz);

    tz = load("America/New_York");
    assert_int_equal(svc_tz_next_transition(tz, INT64_C(4102444800), &when), SVC_OK);
    assert_int_equal(when, INT64_C(4108690800)); /* 2100-03-14T07:00Z */
    assert_int_equal(svc_tz_next_transition(tz, when, &when), SVC_OK);
    assert_int_equal(when, INT64_C(4129250400)); /* 2100-11-07T06:00Z */
    svc_tz_free(tz);
}

static void half_hour_zones_have_their_offsets(void **state)
{
    (void)state;
    svc_tz *tz = load("Asia/Kolkata");
    assert_int_equal(offset(tz, INT64_C(1775000000), NULL), 19800);
    svc_tm tm;
    assert_int_equal(svc_tz_to_local(tz, 0, &tm), SVC_OK);
    assert_int_equal(tm.hour, 5);
    assert_int_equal(tm.minute, 30);
    svc_tz_free(tz);

    /* Lord Howe moves by 30 minutes: +11:00 -> +10:30 on 2026-04-05 02:00. */
    tz = load("Australia/Lord_Howe");
    bool dst;
    assert_int_equal(offset(tz, INT64_C(1775314800) - 1, &dst), 39600);
    assert_true(dst);
    assert_int_equal(offset(tz, INT64_C(1775314800), &dst), 37800);
    assert_false(dst);
    assert_int_equal(offset(tz, INT64_C(1791041400), &dst), 39600);
    /* 02:15 on 2026-10-04 is in the 30-minute gap. */
    int64_t t;
    assert_int_equal(svc_tz_from_local(tz, 2026, 10, 4, 2, 15, 0, SVC_TZ_GAP_REJECT, &t),
                     SVC_ENOTFOUND);
    assert_int_equal(svc_tz_from_local(tz, 2026, 10, 4, 2, 15, 0, SVC_TZ_GAP_NEXT_VALID, &t),
                     SVC_OK);
    assert_int_equal(t, INT64_C(1791041400));
    svc_tz_free(tz);
}

static void local_times_in_a_gap_follow_the_policy(void **state)
{
    (void)state;
    svc_tz *tz = load("Europe/Berlin");
    int64_t t = 0;
    /* 02:30 on 2026-03-29 does not exist in Berlin. */
    assert_int_equal(svc_tz_from_local(tz, 2026, 3, 29, 2, 30, 0, SVC_TZ_GAP_SHIFT, &t), SVC_OK);
    assert_int_equal(t, BERLIN_SPRING_2026 + 1800); /* 03:30 CEST */
    assert_int_equal(svc_tz_from_local(tz, 2026, 3, 29, 2, 30, 0, SVC_TZ_GAP_NEXT_VALID, &t),
                     SVC_OK);
    assert_int_equal(t, BERLIN_SPRING_2026); /* 03:00 CEST */
    assert_int_equal(svc_tz_from_local(tz, 2026, 3, 29, 2, 30, 0, SVC_TZ_GAP_REJECT, &t),
                     SVC_ENOTFOUND);
    /* Either side of the gap is unambiguous whatever the policy. */
    assert_int_equal(svc_tz_from_local(tz, 2026, 3, 29, 1, 59, 59, SVC_TZ_GAP_REJECT, &t), SVC_OK);
    assert_int_equal(t, BERLIN_SPRING_2026 - 1);
    assert_int_equal(svc_tz_from_local(tz, 2026, 3, 29, 3, 0, 0, SVC_TZ_GAP_REJECT, &t), SVC_OK);
    assert_int_equal(t, BERLIN_SPRING_2026);
    svc_tz_free(tz);

    tz = load("America/New_York");
    assert_int_equal(svc_tz_from_local(tz, 2026, 3, 8, 2, 30, 0, SVC_TZ_GAP_NEXT_VALID, &t),
                     SVC_OK);
    assert_int_equal(t, NY_SPRING_2026);
    svc_tz_free(tz);
}

static void local_times_in_a_fold_follow_the_policy(void **state)
{
    (void)state;
    svc_tz *tz = load("Europe/Berlin");
    int64_t t = 0;
    /* 02:30 on 2026-10-25 happens twice: 00:30Z (CEST) and 01:30Z (CET). */
    assert_int_equal(svc_tz_from_local(tz, 2026, 10, 25, 2, 30, 0, SVC_TZ_FOLD_EARLIER, &t),
                     SVC_OK);
    assert_int_equal(t, BERLIN_FALL_2026 - 1800);
    assert_int_equal(svc_tz_from_local(tz, 2026, 10, 25, 2, 30, 0, SVC_TZ_FOLD_LATER, &t), SVC_OK);
    assert_int_equal(t, BERLIN_FALL_2026 + 1800);
    assert_int_equal(svc_tz_from_local(tz, 2026, 10, 25, 2, 30, 0, SVC_TZ_FOLD_REJECT, &t),
                     SVC_ECONFLICT);
    svc_tz_free(tz);

    tz = load("America/New_York");
    assert_int_equal(svc_tz_from_local(tz, 2026, 11, 1, 1, 30, 0, SVC_TZ_FOLD_LATER, &t), SVC_OK);
    assert_int_equal(t, NY_FALL_2026 + 1800);
    assert_int_equal(svc_tz_from_local(tz, 2026, 11, 1, 1, 30, 0, 0, &t), SVC_OK);
    assert_int_equal(t, NY_FALL_2026 - 1800);
    svc_tz_free(tz);
}

static void from_local_rejects_impossible_fields(void **state)
{
    (void)state;
    svc_tz *tz = load("UTC");
    int64_t t;
    assert_int_equal(svc_tz_from_local(tz, 2027, 2, 29, 0, 0, 0, 0, &t), SVC_EINVAL);
    assert_int_equal(svc_tz_from_local(tz, 2028, 2, 29, 0, 0, 0, 0, &t), SVC_OK);
    assert_int_equal(svc_tz_from_local(tz, 2026, 4, 31, 0, 0, 0, 0, &t), SVC_EINVAL);
    assert_int_equal(svc_tz_from_local(tz, 2026, 13, 1, 0, 0, 0, 0, &t), SVC_EINVAL);
    assert_int_equal(svc_tz_from_local(tz, 2026, 1, 1, 24, 0, 0, 0, &t), SVC_EINVAL);
    assert_int_equal(svc_tz_from_local(tz, 2026, 1, 1, 0, 0, 60, 0, &t), SVC_EINVAL);
    assert_int_equal(svc_tz_from_local(tz, 2026, 1, 1, 0, 0, 0, 0x03, &t), SVC_EINVAL);
    assert_int_equal(svc_tz_from_local(tz, 10000, 1, 1, 0, 0, 0, 0, &t), SVC_ERANGE);
    svc_tm tm;
    assert_int_equal(svc_tz_to_local(tz, INT64_C(253402300800), &tm), SVC_ERANGE);
    assert_int_equal(svc_tz_to_local(tz, INT64_C(253402300799), &tm), SVC_OK);
    assert_int_equal(tm.year, 9999);
    svc_tz_free(tz);
}

static void to_local_and_from_local_round_trip(void **state)
{
    (void)state;
    const char *zones[] = {"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"};
    for (size_t z = 0; z < SVC__ARRAY_LEN(zones); z++) {
        svc_tz *tz = load(zones[z]);
        /* Every 7h13m through 2026: each instant maps back to itself
         * (LATER resolves the second pass through a fold). */
        for (int64_t t = INT64_C(1767225600); t < INT64_C(1798761600); t += 7 * 3600 + 13 * 60) {
            svc_tm tm;
            assert_int_equal(svc_tz_to_local(tz, t, &tm), SVC_OK);
            int64_t back = 0, later = 0;
            assert_int_equal(svc_tz_from_local(tz, tm.year, tm.month, tm.day, tm.hour, tm.minute,
                                               tm.second, SVC_TZ_FOLD_EARLIER, &back),
                             SVC_OK);
            assert_int_equal(svc_tz_from_local(tz, tm.year, tm.month, tm.day, tm.hour, tm.minute,
                                               tm.second, SVC_TZ_FOLD_LATER, &later),
                             SVC_OK);
            assert_true(back == t || later == t);
        }
        svc_tz_free(tz);
    }
}

static void day_and_month_ranges_follow_local_midnight(void **state)
{
    (void)state;
    svc_tz *tz = load("Europe/Berlin");
    int64_t s = 0, e = 0;
    /* The spring-forward day is 23 hours long. */
    assert_int_equal(svc_tz_day_range(tz, BERLIN_SPRING_2026 + 3600, &s, &e), SVC_OK);
    assert_int_equal(s, INT64_C(1774738800)); /* 2026-03-28T23:00:00Z */
    assert_int_equal(e - s, 23 * 3600);
    /* The fall-back day is 25 hours long. */
    assert_int_equal(svc_tz_day_range(tz, BERLIN_FALL_2026, &s, &e), SVC_OK);
    assert_int_equal(e - s, 25 * 3600);
    /* 2026-03-31T22:30Z is already April 1st in Berlin. */
    assert_int_equal(svc_tz_month_range(tz, INT64_C(1775000000) - 400, &s, &e), SVC_OK);
    assert_int_equal(s, INT64_C(1774994400)); /* 2026-03-31T22:00:00Z */
    assert_int_equal(e, INT64_C(1777586400)); /* 2026-04-30T22:00:00Z */
    assert_int_equal(svc_tz_month_range(tz, INT64_C(1774994400) - 1, &s, NULL), SVC_OK);
    assert_int_equal(s, INT64_C(1772319600)); /* 2026-02-28T23:00:00Z: March 1st CET */
    svc_tz_free(tz);
}

static void bad_names_are_rejected_before_touching_files(void **state)
{
    (void)state;
    const char *bad[] = {"", "/etc/passwd", "../etc/passwd", "Europe/../../etc/passwd",
                         "Europe//Berlin", "Europe/", "./UTC", "Europe/Ber lin",
                         "Europe/Berlin;rm", "Europe\\Berlin", "a..b"};
    for (size_t i = 0; i < SVC__ARRAY_LEN(bad); i++) {
        svc_tz *tz = (svc_tz *)&tz;
        char err[256] = "";
        assert_int_equal(svc_tz_load_opts(&tz, bad[i], NULL, err, sizeof err), SVC_EINVAL);
        assert_null(tz);
        assert_non_null(strstr(err, "invalid time zone name"));
    }
}

static void unknown_zones_are_not_found_with_a_message(void **state)
{
    (void)state;
    svc_tz *tz = NULL;
    char err[256] = "";
    assert_int_equal(svc_tz_load_opts(&tz, "Mars/Olympus_Mons", NULL, err, sizeof err),
                     SVC_ENOTFOUND);
    assert_null(tz);
    assert_non_null(strstr(err, "Mars/Olympus_Mons"));
    /* A directory is not a zone. */
    assert_int_equal(svc_tz_load_opts(&tz, "Europe", NULL, err, sizeof err), SVC_ENOTFOUND);
}

/* ---- zone files written by the test into a private TZDIR ---------------- */

static char tmpdir[64];

static void put32(FILE *f, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    fwrite(b, 1, 4, f);
}

/* A v2 file with no transitions, one type and the given footer. */
static void write_zone(const char *name, int32_t utoff, const char *abbr, const char *footer)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint32_t nchars = (uint32_t)strlen(abbr) + 1;
    for (int pass = 0; pass < 2; pass++) {
        fwrite("TZif2", 1, 5, f);
        static const uint8_t zero[15];
        fwrite(zero, 1, 15, f);
        put32(f, 0); /* isut */
        put32(f, 0); /* isstd */
        put32(f, 0); /* leap */
        put32(f, 0); /* time */
        put32(f, 1); /* type */
        put32(f, nchars);
        put32(f, (uint32_t)utoff);
        fputc(0, f);
        fputc(0, f);
        fwrite(abbr, 1, nchars, f);
    }
    fprintf(f, "\n%s\n", footer);
    fclose(f);
}

static int make_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/svc_tz_test_XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    return 0;
}

static int remove_tmpdir(void **state)
{
    (void)state;
    const char *files[] = {"Julian", "Garbage", "BadRule", "Plain", "Version1", "AllYear"};
    char path[128];
    for (size_t i = 0; i < SVC__ARRAY_LEN(files); i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, files[i]);
        unlink(path);
    }
    rmdir(tmpdir);
    return 0;
}

static svc_status load_tmp(svc_tz **tz, const char *name, char *err, size_t errlen)
{
    svc_tz_opts o;
    svc_tz_opts_default(&o);
    o.tzdir = tmpdir;
    return svc_tz_load_opts(tz, name, &o, err, errlen);
}

static void footer_rules_with_julian_and_zero_based_days_work(void **state)
{
    (void)state;
    /* UTC-3, DST UTC-2 from J60 (March 1st, Feb 29 never counted) 02:00
     * to day 300 (zero-based, Feb 29 counted) 02:00. */
    write_zone("Julian", -10800, "XXX", "XXX3YYY,J60,300");
    svc_tz *tz = NULL;
    char err[256];
    assert_int_equal(load_tmp(&tz, "Julian", err, sizeof err), SVC_OK);
    int64_t when = 0;
    /* 2028 is a leap year: J60 is still March 1st, day 300 is October 27. */
    assert_int_equal(svc_tz_next_transition(tz, INT64_C(1830297600), &when), SVC_OK);
    assert_int_equal(when, INT64_C(1835499600)); /* 2028-03-01T05:00:00Z */
    assert_int_equal(svc_tz_next_transition(tz, when, &when), SVC_OK);
    assert_int_equal(when, INT64_C(1856232000)); /* 2028-10-27T04:00:00Z */
    bool dst;
    assert_int_equal(offset(tz, INT64_C(1840000000), &dst), -7200);
    assert_true(dst);
    svc_tz_free(tz);
}

static void the_directory_option_and_bad_files_are_honoured(void **state)
{
    (void)state;
    write_zone("Plain", 19800, "IST", "IST-5:30");
    /* Year-round DST written as a rule: the offset never changes. */
    write_zone("AllYear", -10800, "XXX", "XXX3YYY,0/0,J365/25");
    write_zone("BadRule", 3600, "CET", "CET-1CEST,M13.5.0,M10.5.0/3");
    char path[128];
    snprintf(path, sizeof path, "%s/Garbage", tmpdir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("not a zone file at all, just text", f);
    fclose(f);

    svc_tz *tz = NULL;
    char err[256];
    assert_int_equal(load_tmp(&tz, "Plain", err, sizeof err), SVC_OK);
    assert_int_equal(offset(tz, INT64_C(4102444800), NULL), 19800);
    svc_tz_free(tz);
    assert_int_equal(load_tmp(&tz, "AllYear", err, sizeof err), SVC_OK);
    bool dst = false;
    assert_int_equal(offset(tz, INT64_C(1798761600), &dst), -7200); /* 2027-01-01 */
    assert_true(dst);
    assert_int_equal(offset(tz, INT64_C(1798761600) - 1, &dst), -7200);
    int64_t when;
    assert_int_equal(svc_tz_next_transition(tz, 0, &when), SVC_ENOTFOUND);
    svc_tz_free(tz);
    assert_int_equal(load_tmp(&tz, "Garbage", err, sizeof err), SVC_EPARSE);
    assert_non_null(strstr(err, "not TZif"));
    assert_int_equal(load_tmp(&tz, "BadRule", err, sizeof err), SVC_EPARSE);
    assert_non_null(strstr(err, "footer rule"));
    /* The system zones are not in this directory. */
    assert_int_equal(load_tmp(&tz, "Europe/Berlin", err, sizeof err), SVC_ENOTFOUND);
}

/* A version-1 file (32-bit times, no footer) with two transitions. */
static void version_1_files_use_their_table_and_keep_the_last_type(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/Version1", tmpdir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite("TZif", 1, 4, f);
    static const uint8_t zero[16];
    fwrite(zero, 1, 16, f);
    put32(f, 0); /* isut */
    put32(f, 0); /* isstd */
    put32(f, 0); /* leap */
    put32(f, 2); /* time */
    put32(f, 2); /* type */
    put32(f, 8); /* chars */
    put32(f, 1000000000u);
    put32(f, 1100000000u);
    fputc(1, f);
    fputc(0, f);
    put32(f, 0); fputc(0, f); fputc(0, f);    /* AAA, UTC+0 */
    put32(f, 3600); fputc(1, f); fputc(4, f); /* BBB, UTC+1, DST */
    fwrite("AAA\0BBB\0", 1, 8, f);
    fclose(f);

    svc_tz *tz = NULL;
    char err[256];
    if (load_tmp(&tz, "Version1", err, sizeof err) != SVC_OK)
        fail_msg("%s", err);
    bool dst = true;
    assert_int_equal(offset(tz, 999999999, &dst), 0);
    assert_false(dst);
    assert_int_equal(offset(tz, 1000000000, &dst), 3600);
    assert_true(dst);
    assert_int_equal(offset(tz, 1100000000, &dst), 0);
    assert_int_equal(offset(tz, INT64_C(4000000000), &dst), 0);
    svc_tm tm;
    assert_int_equal(svc_tz_to_local(tz, 1000000000, &tm), SVC_OK);
    assert_string_equal(tm.abbr, "BBB");
    int64_t when = 0;
    assert_int_equal(svc_tz_next_transition(tz, 0, &when), SVC_OK);
    assert_int_equal(when, 1000000000);
    assert_int_equal(svc_tz_next_transition(tz, 1100000000, &when), SVC_ENOTFOUND);
    assert_int_equal(svc_tz_prev_transition(tz, 999999999, &when), SVC_ENOTFOUND);
    svc_tz_free(tz);
}

static void *load_many(void *arg)
{
    const char *zones[] = {"Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC",
                           "Europe/Paris", "Asia/Tokyo", "America/Chicago", "Europe/London",
                           "Australia/Sydney", "Africa/Nairobi", "America/Denver", "Asia/Dubai"};
    size_t k = (size_t)(uintptr_t)arg;
    int bad = 0;
    for (size_t i = 0; i < 300; i++) {
        svc_tz *tz = NULL;
        const char *name = zones[(i * 7 + k) % SVC__ARRAY_LEN(zones)];
        if (svc_tz_load(&tz, name) != SVC_OK || strcmp(svc_tz_name(tz), name) != 0) {
            bad++;
        } else {
            int32_t off;
            if (svc_tz_offset_at(tz, INT64_C(1775000000), &off, NULL) != SVC_OK)
                bad++;
        }
        svc_tz_free(tz);
        if (k == 0 && i % 50 == 0)
            svc_tz_cache_clear();
    }
    return (void *)(uintptr_t)bad;
}

static void concurrent_loads_share_the_cache_safely(void **state)
{
    (void)state;
    pthread_t th[4];
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, load_many, (void *)(uintptr_t)i), 0);
    for (size_t i = 0; i < 4; i++) {
        void *bad = NULL;
        assert_int_equal(pthread_join(th[i], &bad), 0);
        assert_int_equal((uintptr_t)bad, 0);
    }
}

static void loads_are_cached_and_reference_counted(void **state)
{
    (void)state;
    svc_tz *a = load("Asia/Kolkata");
    svc_tz *b = load("Asia/Kolkata");
    assert_ptr_equal(a, b);
    svc_tz_cache_clear();
    svc_tz_free(a);
    /* b still holds the zone after the cache and a let go. */
    assert_int_equal(offset(b, 0, NULL), 19800);
    svc_tz *c = load("Asia/Kolkata");
    assert_ptr_not_equal(c, NULL);
    svc_tz_free(b);
    svc_tz_free(c);
    /* More zones than the cache holds: each load still works. */
    const char *many[] = {"Europe/Paris", "Europe/London", "Asia/Tokyo", "America/Chicago",
                          "America/Denver", "Europe/Rome", "Europe/Madrid", "Asia/Dubai",
                          "Africa/Cairo", "America/Sao_Paulo"};
    for (size_t i = 0; i < SVC__ARRAY_LEN(many); i++) {
        svc_tz *tz = load(many[i]);
        assert_string_equal(svc_tz_name(tz), many[i]);
        svc_tz_free(tz);
    }
    svc_tz_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(utc_is_built_in_and_has_zero_offset),
        cmocka_unit_test(berlin_offsets_change_at_the_2026_transitions),
        cmocka_unit_test(new_york_offsets_change_at_the_2026_transitions),
        cmocka_unit_test(dates_past_the_last_transition_follow_the_footer_rule),
        cmocka_unit_test(half_hour_zones_have_their_offsets),
        cmocka_unit_test(local_times_in_a_gap_follow_the_policy),
        cmocka_unit_test(local_times_in_a_fold_follow_the_policy),
        cmocka_unit_test(from_local_rejects_impossible_fields),
        cmocka_unit_test(to_local_and_from_local_round_trip),
        cmocka_unit_test(day_and_month_ranges_follow_local_midnight),
        cmocka_unit_test(bad_names_are_rejected_before_touching_files),
        cmocka_unit_test(unknown_zones_are_not_found_with_a_message),
        cmocka_unit_test(footer_rules_with_julian_and_zero_based_days_work),
        cmocka_unit_test(the_directory_option_and_bad_files_are_honoured),
        cmocka_unit_test(version_1_files_use_their_table_and_keep_the_last_type),
        cmocka_unit_test(loads_are_cached_and_reference_counted),
        cmocka_unit_test(concurrent_loads_share_the_cache_safely),
    };
    return cmocka_run_group_tests_name("tz", tests, make_tmpdir, remove_tmpdir);
}
