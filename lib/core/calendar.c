/* calendar.c - proleptic Gregorian calendar arithmetic (see calendar.h). */
#include <string.h>

#include "core/calendar.h"

int64_t svc__floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

bool svc__is_leap_year(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int svc__days_in_month(int64_t y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && svc__is_leap_year(y) ? 29 : dim[m - 1];
}

/* Years run March to February inside a 400-year era of 146097 days, so the
 * leap day is the last day of its year and the month lengths repeat in a
 * 153-day pattern of five months. */
int64_t svc__days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = svc__floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void svc__civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
    int64_t z = days + 719468;
    int64_t era = svc__floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int mon = (int)(mp < 10 ? mp + 3 : mp - 9);
    if (d)
        *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    if (m)
        *m = mon;
    *y = yoe + era * 400 + (mon <= 2);
}

int svc__weekday_from_days(int64_t days)
{
    return (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday (4) */
}

bool svc__civil_fields(int64_t s, svc_tm *out)
{
    int64_t days = svc__floor_div(s, 86400), secs = s - days * 86400, y;
    int m, d;
    svc__civil_from_days(days, &y, &m, &d);
    if (y < 1 || y > 9999)
        return false;
    memset(out, 0, sizeof *out);
    out->year = (int)y;
    out->month = m;
    out->day = d;
    out->hour = (int)(secs / 3600);
    out->minute = (int)(secs / 60 % 60);
    out->second = (int)(secs % 60);
    out->wday = svc__weekday_from_days(days);
    out->yday = (int)(days - svc__days_from_civil(y, 1, 1));
    return true;
}
