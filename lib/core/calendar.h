/*
 * lib/core/calendar.h - proleptic Gregorian calendar arithmetic, for the
 * sources that turn instants into dates and back (tz.c, ratelimit quotas,
 * cron). Days count from 1970-01-01 (day 0); months are 1..12. The
 * conversions are H. Hinnant's days_from_civil/civil_from_days, exact for
 * every year an int64_t day count reaches in practice (the callers keep to
 * years 1..9999 or nearby).
 *
 * Internal (svc__ prefix, not installed); pure functions, safe from any
 * thread.
 */
#ifndef SVCINFRA_CORE_CALENDAR_H
#define SVCINFRA_CORE_CALENDAR_H

#include <stdbool.h>
#include <stdint.h>

#include "svcinfra/tz.h"

/* a / b rounded toward negative infinity (b != 0). */
int64_t svc__floor_div(int64_t a, int64_t b);
bool svc__is_leap_year(int64_t y);
/* Days in month m (1..12) of year y. */
int svc__days_in_month(int64_t y, int m);
/* Days since 1970-01-01 of y-m-d (m 1..12, d 1..31). */
int64_t svc__days_from_civil(int64_t y, int m, int d);
/* The date of day `days` since 1970-01-01; m and d may be NULL. */
void svc__civil_from_days(int64_t days, int64_t *y, int *m, int *d);
/* Day of the week of day `days` since 1970-01-01: 0 = Sunday .. 6. */
int svc__weekday_from_days(int64_t days);
/* The calendar fields of `s` seconds since 1970-01-01T00:00:00 (UTC, or
 * local wall time counted as if it were UTC): year to second, wday, yday;
 * utc_offset, is_dst and abbr zeroed. false (out unspecified) outside the
 * years 1..9999. */
bool svc__civil_fields(int64_t s, svc_tm *out);

#endif
