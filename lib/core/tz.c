/* tz.c - IANA time zones from TZif files, with the POSIX TZ footer rule.
 *
 * A zone is a table of transitions plus, for times after the last one, a
 * rule:
 *
 *   trans[0]    trans[1]    ...    trans[n-1]
 *   ---|-----------|---------------------|----------------------------->
 *  types[0] types[idx[0]] ...   types[idx[n-1]] until the rule takes over
 *                                               "CET-1CEST,M3.5.0,M10.5.0/3"
 *
 * Before the first transition, type 0 is in force (RFC 8536). After the
 * last transition the footer rule decides; it agrees with the table at the
 * last transition, so the hand-over is seamless. A zone is immutable once
 * built, so lookups need no lock; only the small load cache takes one.
 */
#include "svcinfra/tz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../internal.h"
#include "core/calendar.h"

#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"
#define TZ_MAX_FILE (1024 * 1024)
#define TZ_MAX_TRANS 100000u
#define TZ_MAX_OFFSET (26 * 3600)
#define TZ_CACHE_SIZE 8
#define TZ_NAME_MAX 255
#define TZ_ABBR_MAX 15

/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z. */
#define TZ_MIN_UTC INT64_C(-62135596800)
#define TZ_MAX_UTC INT64_C(253402300799)

/* ---- civil calendar (core/calendar.h) ---------------------------------- */

static int64_t year_of_utc(int64_t t)
{
    int64_t y;
    int m, d;
    svc__civil_from_days(svc__floor_div(t, 86400), &y, &m, &d);
    return y;
}

/* ---- the zone ----------------------------------------------------------- */

typedef struct tz_type {
    int32_t off;
    bool dst;
    uint8_t abbr; /* index into chars */
} tz_type;

/* One end of the DST period of a POSIX rule: Jn, n or Mm.w.d, plus time. */
typedef struct rule_date {
    char kind;    /* 'J' (1..365, no Feb 29), 'D' (0..365), 'M' */
    int a, b, c;  /* J/D: a = day; M: a = month, b = week (1..5), c = wday */
    int32_t time; /* seconds after local midnight, -167h..167h */
} rule_date;

typedef struct tz_rule {
    int32_t std_off, dst_off; /* seconds east of UTC */
    bool has_dst;
    char std_abbr[TZ_ABBR_MAX + 1], dst_abbr[TZ_ABBR_MAX + 1];
    rule_date start, end;
} tz_rule;

struct svc_tz {
    atomic_long refs;
    char *name;
    char *dir;          /* "" for built-in zones */
    size_t ntrans;
    int64_t *trans;
    uint8_t *tidx;
    size_t ntypes;
    tz_type *types;
    char *chars;
    size_t nchars;
    bool has_rule;
    tz_rule rule;
};

static void tz_destroy(svc_tz *tz)
{
    if (!tz)
        return;
    svc_free(tz->name);
    svc_free(tz->dir);
    svc_free(tz->trans);
    svc_free(tz->tidx);
    svc_free(tz->types);
    svc_free(tz->chars);
    svc_free(tz);
}

static svc_status fail(char *errbuf, size_t errlen, svc_status st, const char *fmt, ...)
    SVC_PRINTF(4, 5);

static svc_status fail(char *errbuf, size_t errlen, svc_status st, const char *fmt, ...)
{
    if (errbuf && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* ---- POSIX TZ rule ("EST5EDT,M3.2.0,M11.1.0") ----------------------------- */

static bool rule_abbr(const char **sp, char out[TZ_ABBR_MAX + 1])
{
    const char *s = *sp;
    size_t n = 0;
    if (*s == '<') {
        s++;
        while (*s && *s != '>') {
            char c = *s;
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '-'))
                return false;
            if (n >= TZ_ABBR_MAX)
                return false;
            out[n++] = c;
            s++;
        }
        if (*s != '>')
            return false;
        s++;
    } else {
        while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')) {
            if (n >= TZ_ABBR_MAX)
                return false;
            out[n++] = *s++;
        }
    }
    if (n < 3)
        return false;
    out[n] = '\0';
    *sp = s;
    return true;
}

static bool rule_num(const char **sp, int maxdigits, int *out)
{
    const char *s = *sp;
    int v = 0, n = 0;
    while (*s >= '0' && *s <= '9' && n < maxdigits) {
        v = v * 10 + (*s++ - '0');
        n++;
    }
    if (n == 0 || (*s >= '0' && *s <= '9'))
        return false;
    *out = v;
    *sp = s;
    return true;
}

/* [+-]hh[:mm[:ss]] into seconds; hours up to `maxh`. */
static bool rule_hms(const char **sp, int maxh, int32_t *out)
{
    const char *s = *sp;
    int sign = 1, h, m = 0, sec = 0;
    if (*s == '+' || *s == '-')
        sign = *s++ == '-' ? -1 : 1;
    if (!rule_num(&s, 3, &h) || h > maxh)
        return false;
    if (*s == ':') {
        s++;
        if (!rule_num(&s, 2, &m) || m > 59)
            return false;
        if (*s == ':') {
            s++;
            if (!rule_num(&s, 2, &sec) || sec > 59)
                return false;
        }
    }
    *out = sign * (h * 3600 + m * 60 + sec);
    *sp = s;
    return true;
}

static bool rule_date_parse(const char **sp, rule_date *d)
{
    const char *s = *sp;
    if (*s == 'J') {
        s++;
        d->kind = 'J';
        if (!rule_num(&s, 3, &d->a) || d->a < 1 || d->a > 365)
            return false;
    } else if (*s == 'M') {
        s++;
        d->kind = 'M';
        if (!rule_num(&s, 2, &d->a) || d->a < 1 || d->a > 12 || *s++ != '.' ||
            !rule_num(&s, 1, &d->b) || d->b < 1 || d->b > 5 || *s++ != '.' ||
            !rule_num(&s, 1, &d->c) || d->c > 6)
            return false;
    } else {
        d->kind = 'D';
        if (!rule_num(&s, 3, &d->a) || d->a > 365)
            return false;
    }
    d->time = 7200;
    if (*s == '/') {
        s++;
        if (!rule_hms(&s, 167, &d->time))
            return false;
    }
    *sp = s;
    return true;
}

static bool rule_parse(const char *s, tz_rule *r)
{
    memset(r, 0, sizeof *r);
    int32_t v;
    if (!rule_abbr(&s, r->std_abbr) || !rule_hms(&s, 24, &v))
        return false;
    r->std_off = -v; /* POSIX offsets count west of Greenwich */
    r->dst_off = r->std_off;
    if (*s == '\0')
        return true;
    if (!rule_abbr(&s, r->dst_abbr))
        return false;
    r->dst_off = r->std_off + 3600;
    if (*s && *s != ',') {
        if (!rule_hms(&s, 24, &v))
            return false;
        r->dst_off = -v;
    }
    if (*s == '\0') {
        /* No dates: the POSIX default, the US rule since 2007. */
        const char *def = "M3.2.0,M11.1.0";
        if (!rule_date_parse(&def, &r->start) || *def++ != ',' || !rule_date_parse(&def, &r->end))
            return false;
    } else {
        if (*s++ != ',' || !rule_date_parse(&s, &r->start) || *s++ != ',' ||
            !rule_date_parse(&s, &r->end) || *s != '\0')
            return false;
    }
    r->has_dst = r->dst_off != r->std_off;
    return true;
}

/* Days since the epoch of the local day `d` names in year `y`. */
static int64_t rule_day(int64_t y, const rule_date *d)
{
    int64_t jan1 = svc__days_from_civil(y, 1, 1);
    switch (d->kind) {
    case 'J':
        return jan1 + d->a - 1 + (svc__is_leap_year(y) && d->a >= 60 ? 1 : 0);
    case 'D':
        return jan1 + d->a;
    default: {
        int64_t first = svc__days_from_civil(y, d->a, 1);
        int wd = svc__weekday_from_days(first);
        int mday = 1 + (d->c - wd + 7) % 7 + (d->b - 1) * 7;
        while (mday > svc__days_in_month(y, d->a))
            mday -= 7;
        return first + mday - 1;
    }
    }
}

/* The UTC instants at which DST starts and ends in year `y`. */
static void rule_year(const tz_rule *r, int64_t y, int64_t *start, int64_t *end)
{
    *start = rule_day(y, &r->start) * 86400 + r->start.time - r->std_off;
    *end = rule_day(y, &r->end) * 86400 + r->end.time - r->dst_off;
}

/* Is DST in force at t? The latest rule change at or before t decides; at
 * a tie (a year-round DST rule "0/0,J365/25" ends and restarts at the same
 * instant) the start wins. */
static bool rule_dst_at(const tz_rule *r, int64_t t)
{
    if (!r->has_dst)
        return false;
    int64_t y = year_of_utc(t), best = INT64_MIN;
    bool dst = false;
    for (int64_t yy = y - 1; yy <= y + 1; yy++) {
        int64_t s, e;
        rule_year(r, yy, &s, &e);
        if (e <= t && e > best) {
            best = e;
            dst = false;
        }
        if (s <= t && s >= best) {
            best = s;
            dst = true;
        }
    }
    return dst;
}

/* Earliest rule change > t, or false when the rule has none. */
static bool rule_next(const tz_rule *r, int64_t t, int64_t *out)
{
    if (!r->has_dst)
        return false;
    int64_t y = year_of_utc(t), best = INT64_MAX;
    for (int64_t yy = y - 1; yy <= y + 2; yy++) {
        int64_t s, e;
        rule_year(r, yy, &s, &e);
        if (s > t && s < best)
            best = s;
        if (e > t && e < best)
            best = e;
    }
    *out = best;
    return best != INT64_MAX;
}

/* Latest rule change <= t. */
static bool rule_prev(const tz_rule *r, int64_t t, int64_t *out)
{
    if (!r->has_dst)
        return false;
    int64_t y = year_of_utc(t), best = INT64_MIN;
    for (int64_t yy = y - 2; yy <= y + 1; yy++) {
        int64_t s, e;
        rule_year(r, yy, &s, &e);
        if (s <= t && s > best)
            best = s;
        if (e <= t && e > best)
            best = e;
    }
    *out = best;
    return best != INT64_MIN;
}

/* ---- lookups -------------------------------------------------------------- */

typedef struct tz_info {
    int32_t off;
    bool dst;
    const char *abbr;
} tz_info;

static tz_info info_at(const svc_tz *tz, int64_t t)
{
    tz_info in;
    const tz_type *ty;
    if (tz->ntrans == 0 || t >= tz->trans[tz->ntrans - 1]) {
        if (tz->has_rule) {
            in.dst = rule_dst_at(&tz->rule, t);
            in.off = in.dst ? tz->rule.dst_off : tz->rule.std_off;
            in.abbr = in.dst ? tz->rule.dst_abbr : tz->rule.std_abbr;
            return in;
        }
        ty = &tz->types[tz->ntrans ? tz->tidx[tz->ntrans - 1] : 0];
    } else if (t < tz->trans[0]) {
        ty = &tz->types[0];
    } else {
        size_t lo = 0, hi = tz->ntrans - 1; /* trans[lo] <= t < trans[hi] */
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (tz->trans[mid] <= t)
                lo = mid;
            else
                hi = mid;
        }
        ty = &tz->types[tz->tidx[lo]];
    }
    in.off = ty->off;
    in.dst = ty->dst;
    in.abbr = tz->chars ? tz->chars + ty->abbr : "";
    return in;
}

static int32_t off_at(const svc_tz *tz, int64_t t)
{
    return info_at(tz, t).off;
}

/* Earliest transition of the data (table or rule) > t, offset change or not. */
static bool raw_next(const svc_tz *tz, int64_t t, int64_t *out)
{
    if (tz->ntrans && t < tz->trans[tz->ntrans - 1]) {
        size_t lo = 0, hi = tz->ntrans - 1; /* first index with trans > t */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (tz->trans[mid] > t)
                hi = mid;
            else
                lo = mid + 1;
        }
        *out = tz->trans[lo];
        return true;
    }
    return tz->has_rule && rule_next(&tz->rule, t, out);
}

/* Latest transition <= t. */
static bool raw_prev(const svc_tz *tz, int64_t t, int64_t *out)
{
    if (tz->ntrans == 0 || t >= tz->trans[tz->ntrans - 1]) {
        int64_t r;
        int64_t last = tz->ntrans ? tz->trans[tz->ntrans - 1] : INT64_MIN;
        if (tz->has_rule && rule_prev(&tz->rule, t, &r) && r > last) {
            *out = r;
            return true;
        }
        if (tz->ntrans) {
            *out = last;
            return true;
        }
        return false;
    }
    if (t < tz->trans[0])
        return false;
    size_t lo = 0, hi = tz->ntrans - 1;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    *out = tz->trans[lo];
    return true;
}

static bool in_range(int64_t t)
{
    return t >= TZ_MIN_UTC && t <= TZ_MAX_UTC;
}

svc_status svc_tz_next_transition(const svc_tz *tz, int64_t utc_s, int64_t *when)
{
    if (!tz || !when)
        return SVC_EINVAL;
    if (!in_range(utc_s))
        return SVC_ERANGE;
    int64_t t = utc_s, T;
    int idle_rule_changes = 0;
    /* Skips changes of name or DST flag only. A footer rule repeats every
     * year, so once four of its changes in a row keep the offset (a
     * year-round DST rule "0/0,J365/25"), none ever will. */
    while (raw_next(tz, t, &T) && T <= TZ_MAX_UTC) {
        if (off_at(tz, T - 1) != off_at(tz, T)) {
            *when = T;
            return SVC_OK;
        }
        if (tz->ntrans == 0 || T > tz->trans[tz->ntrans - 1]) {
            if (++idle_rule_changes >= 4)
                break;
        }
        t = T;
    }
    return SVC_ENOTFOUND;
}

svc_status svc_tz_prev_transition(const svc_tz *tz, int64_t utc_s, int64_t *when)
{
    if (!tz || !when)
        return SVC_EINVAL;
    if (!in_range(utc_s))
        return SVC_ERANGE;
    int64_t t = utc_s, T;
    while (raw_prev(tz, t, &T) && T >= TZ_MIN_UTC) {
        if (off_at(tz, T - 1) != off_at(tz, T)) {
            *when = T;
            return SVC_OK;
        }
        t = T - 1;
    }
    return SVC_ENOTFOUND;
}

svc_status svc_tz_offset_at(const svc_tz *tz, int64_t utc_s, int32_t *offset_s, bool *is_dst)
{
    if (!tz || !offset_s)
        return SVC_EINVAL;
    if (!in_range(utc_s))
        return SVC_ERANGE;
    tz_info in = info_at(tz, utc_s);
    *offset_s = in.off;
    if (is_dst)
        *is_dst = in.dst;
    return SVC_OK;
}

svc_status svc_tz_to_local(const svc_tz *tz, int64_t utc_s, svc_tm *out)
{
    if (!tz || !out)
        return SVC_EINVAL;
    if (!in_range(utc_s))
        return SVC_ERANGE;
    tz_info in = info_at(tz, utc_s);
    if (!svc__civil_fields(utc_s + in.off, out))
        return SVC_ERANGE;
    out->utc_offset = in.off;
    out->is_dst = in.dst;
    snprintf(out->abbr, sizeof out->abbr, "%s", in.abbr);
    return SVC_OK;
}

/* Local seconds `L` (local wall time counted as if it were UTC) to UTC.
 *
 * Every offset in force within two days of L is a candidate: t = L - off is
 * a solution when off is really in force at t. No solution is a gap, two
 * are a fold. Offsets never exceed 26 hours, so the window holds them all. */
static svc_status local_to_utc(const svc_tz *tz, int64_t L, int policy, int64_t *out)
{
    int32_t offs[64];
    size_t noffs = 0;
    int64_t lo = L - 2 * 86400, hi = L + 2 * 86400, t = lo, T;
    offs[noffs++] = off_at(tz, lo);
    while (noffs < SVC__ARRAY_LEN(offs) && raw_next(tz, t, &T) && T <= hi) {
        int32_t o = off_at(tz, T);
        bool seen = false;
        for (size_t i = 0; i < noffs; i++)
            seen |= offs[i] == o;
        if (!seen)
            offs[noffs++] = o;
        t = T;
    }
    /* Distinct offsets give distinct instants, so no deduplication. */
    int64_t first = INT64_MAX, last = INT64_MIN;
    size_t nsol = 0;
    for (size_t i = 0; i < noffs; i++) {
        int64_t c = L - offs[i];
        if (off_at(tz, c) != offs[i])
            continue;
        nsol++;
        if (c < first)
            first = c;
        if (c > last)
            last = c;
    }
    if (nsol == 1) {
        *out = first;
        return SVC_OK;
    }
    if (nsol > 1) {
        switch (policy & 0xf0) {
        case SVC_TZ_FOLD_LATER:
            *out = last;
            return SVC_OK;
        case SVC_TZ_FOLD_REJECT:
            return SVC_ECONFLICT;
        default:
            *out = first;
            return SVC_OK;
        }
    }
    /* A gap: find the jump that skipped L. */
    t = lo;
    while (raw_next(tz, t, &T) && T <= hi) {
        int32_t before = off_at(tz, T - 1), after = off_at(tz, T);
        if (T + before <= L && L < T + after) {
            switch (policy & 0x0f) {
            case SVC_TZ_GAP_NEXT_VALID:
                *out = T;
                return SVC_OK;
            case SVC_TZ_GAP_REJECT:
                return SVC_ENOTFOUND;
            default:
                *out = L - before;
                return SVC_OK;
            }
        }
        t = T;
    }
    return SVC_EINTERNAL;
}

static bool policy_ok(int policy)
{
    int gap = policy & 0x0f, fold = policy & 0xf0;
    return (policy & ~0xff) == 0 && gap <= SVC_TZ_GAP_REJECT && fold <= SVC_TZ_FOLD_REJECT &&
           (fold & 0x0f) == 0 && (fold == 0 || fold == 0x10 || fold == 0x20);
}

svc_status svc_tz_from_local(const svc_tz *tz, int year, int month, int day, int hour, int minute,
                             int second, int policy, int64_t *utc_s)
{
    if (!tz || !utc_s || !policy_ok(policy))
        return SVC_EINVAL;
    if (year < 1 || year > 9999)
        return SVC_ERANGE;
    if (month < 1 || month > 12 || day < 1 || day > svc__days_in_month(year, month) || hour < 0 ||
        hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59)
        return SVC_EINVAL;
    int64_t L = svc__days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
    svc_status st = local_to_utc(tz, L, policy, utc_s);
    if (st == SVC_OK && !in_range(*utc_s))
        return SVC_ERANGE;
    return st;
}

/* First instant of the local day `days` (days since the epoch, local). */
static int64_t day_start(const svc_tz *tz, int64_t days)
{
    int64_t t = 0;
    (void)local_to_utc(tz, days * 86400, SVC_TZ_GAP_NEXT_VALID | SVC_TZ_FOLD_EARLIER, &t);
    return t;
}

svc_status svc_tz_day_range(const svc_tz *tz, int64_t utc_s, int64_t *start, int64_t *end)
{
    if (!tz || !start)
        return SVC_EINVAL;
    if (!in_range(utc_s))
        return SVC_ERANGE;
    int64_t days = svc__floor_div(utc_s + off_at(tz, utc_s), 86400);
    *start = day_start(tz, days);
    if (end)
        *end = day_start(tz, days + 1);
    return SVC_OK;
}

svc_status svc_tz_month_range(const svc_tz *tz, int64_t utc_s, int64_t *start, int64_t *end)
{
    if (!tz || !start)
        return SVC_EINVAL;
    if (!in_range(utc_s))
        return SVC_ERANGE;
    int64_t y;
    int m, d;
    svc__civil_from_days(svc__floor_div(utc_s + off_at(tz, utc_s), 86400), &y, &m, &d);
    *start = day_start(tz, svc__days_from_civil(y, m, 1));
    if (end)
        *end = day_start(tz, m == 12 ? svc__days_from_civil(y + 1, 1, 1) : svc__days_from_civil(y, m + 1, 1));
    return SVC_OK;
}

const char *svc_tz_name(const svc_tz *tz)
{
    return tz ? tz->name : "";
}

void svc_tz_opts_default(svc_tz_opts *opts)
{
    memset(opts, 0, sizeof *opts);
}

/* ---- TZif ------------------------------------------------------------------ */

typedef struct tzif_counts {
    uint32_t isut, isstd, leap, time, type, chars;
} tzif_counts;

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static bool tzif_header(const uint8_t *p, size_t n, tzif_counts *c, char *version)
{
    if (n < 44 || memcmp(p, "TZif", 4) != 0)
        return false;
    *version = (char)p[4];
    c->isut = be32(p + 20);
    c->isstd = be32(p + 24);
    c->leap = be32(p + 28);
    c->time = be32(p + 32);
    c->type = be32(p + 36);
    c->chars = be32(p + 40);
    return true;
}

/* Size of the data block after a header, or 0 when the counts are absurd. */
static size_t tzif_block(const tzif_counts *c, size_t tsize)
{
    if (c->time > TZ_MAX_TRANS || c->type == 0 || c->type > 256 || c->chars > 65536 ||
        c->leap > 10000 || (c->isstd != 0 && c->isstd != c->type) ||
        (c->isut != 0 && c->isut != c->type))
        return 0;
    return (size_t)c->time * tsize + c->time + (size_t)c->type * 6 + c->chars +
           (size_t)c->leap * (tsize + 4) + c->isstd + c->isut;
}

static svc_status tzif_parse(svc_tz *tz, const uint8_t *p, size_t n, char *errbuf, size_t errlen)
{
#define BAD(why) fail(errbuf, errlen, SVC_EPARSE, "time zone '%s': %s", tz->name, why)
    tzif_counts c;
    char version;
    if (!tzif_header(p, n, &c, &version))
        return BAD("not TZif data");
    size_t blk = tzif_block(&c, 4);
    if (blk == 0 || 44 + blk > n)
        return BAD("truncated or inconsistent TZif header");
    size_t tsize = 4;
    const uint8_t *d = p + 44;
    const uint8_t *end = p + n;
    if (version >= '2') {
        const uint8_t *h2 = p + 44 + blk;
        if (!tzif_header(h2, (size_t)(end - h2), &c, &version))
            return BAD("missing 64-bit TZif header");
        blk = tzif_block(&c, 8);
        if (blk == 0 || (size_t)(end - h2) < 44 + blk)
            return BAD("truncated 64-bit TZif data");
        tsize = 8;
        d = h2 + 44;
    }
    if (c.leap)
        return fail(errbuf, errlen, SVC_ENOTSUP,
                    "time zone '%s': leap-second zone data is not supported", tz->name);
    if (c.chars == 0 || d[c.time * tsize + c.time + c.type * 6 + c.chars - 1] != '\0')
        return BAD("abbreviation table is not NUL-terminated");

    tz->ntrans = c.time;
    tz->ntypes = c.type;
    tz->nchars = c.chars;
    tz->trans = svc__calloc(c.time ? c.time : 1, sizeof *tz->trans);
    tz->tidx = svc__calloc(c.time ? c.time : 1, 1);
    tz->types = svc__calloc(c.type, sizeof *tz->types);
    tz->chars = svc__calloc(c.chars, 1);
    if (!tz->trans || !tz->tidx || !tz->types || !tz->chars)
        return fail(errbuf, errlen, SVC_ENOMEM, "time zone '%s': out of memory", tz->name);
    for (size_t i = 0; i < c.time; i++) {
        tz->trans[i] = tsize == 8 ? be64(d + i * 8) : (int32_t)be32(d + i * 4);
        if (i && tz->trans[i] <= tz->trans[i - 1])
            return BAD("transition times are not ascending");
    }
    d += c.time * tsize;
    for (size_t i = 0; i < c.time; i++) {
        if (d[i] >= c.type)
            return BAD("transition names an unknown local time type");
        tz->tidx[i] = d[i];
    }
    d += c.time;
    for (size_t i = 0; i < c.type; i++, d += 6) {
        int32_t off = (int32_t)be32(d);
        if (off < -TZ_MAX_OFFSET || off > TZ_MAX_OFFSET || d[4] > 1 || d[5] >= c.chars)
            return BAD("bad local time type");
        tz->types[i].off = off;
        tz->types[i].dst = d[4] == 1;
        tz->types[i].abbr = d[5];
    }
    memcpy(tz->chars, d, c.chars);
    d += c.chars + (size_t)c.leap * (tsize + 4) + c.isstd + c.isut;

    if (tsize == 8) {
        /* Footer: "\n" TZ-string "\n"; an empty string means no rule. */
        if (d >= end || *d != '\n')
            return BAD("missing footer");
        const uint8_t *nl = memchr(d + 1, '\n', (size_t)(end - d - 1));
        if (!nl || nl - d - 1 > 255)
            return BAD("unterminated footer");
        if (nl > d + 1) {
            char rule[256];
            memcpy(rule, d + 1, (size_t)(nl - d - 1));
            rule[nl - d - 1] = '\0';
            if (!rule_parse(rule, &tz->rule))
                return fail(errbuf, errlen, SVC_EPARSE,
                            "time zone '%s': malformed footer rule '%s'", tz->name, rule);
            tz->has_rule = true;
        }
    }
    return SVC_OK;
#undef BAD
}

static svc_status read_file(const char *path, const char *name, uint8_t **data, size_t *len,
                            char *errbuf, size_t errlen)
{
    char ebuf[128];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            return fail(errbuf, errlen, SVC_ENOTFOUND, "unknown time zone '%s' (no %s)", name,
                        path);
        return fail(errbuf, errlen, SVC_EIO, "time zone '%s': cannot open %s: %s", name, path,
                    strerror_r(e, ebuf, sizeof ebuf));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return fail(errbuf, errlen, SVC_ENOTFOUND, "unknown time zone '%s' (%s is not a zone file)",
                    name, path);
    }
    if (sb.st_size > TZ_MAX_FILE) {
        close(fd);
        return fail(errbuf, errlen, SVC_EPARSE, "time zone '%s': %s is too large", name, path);
    }
    size_t cap = (size_t)sb.st_size + 1, n = 0;
    uint8_t *buf = svc_malloc(cap);
    if (!buf) {
        close(fd);
        return fail(errbuf, errlen, SVC_ENOMEM, "time zone '%s': out of memory", name);
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            svc_free(buf);
            return fail(errbuf, errlen, SVC_EIO, "time zone '%s': cannot read %s: %s", name,
                        path, strerror_r(e, ebuf, sizeof ebuf));
        }
        if (r == 0 || (n += (size_t)r) == cap)
            break;
    }
    close(fd);
    if (n == cap) { /* grew while we read: refuse rather than guess */
        svc_free(buf);
        return fail(errbuf, errlen, SVC_EIO, "time zone '%s': %s changed while read", name, path);
    }
    *data = buf;
    *len = n;
    return SVC_OK;
}

static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > TZ_NAME_MAX || name[0] == '/' || name[n - 1] == '/')
        return false;
    const char *comp = name;
    for (size_t i = 0; i <= n; i++) {
        char ch = name[i];
        if (ch == '/' || ch == '\0') {
            size_t len = (size_t)(name + i - comp);
            if (len == 0 || (len == 1 && comp[0] == '.') ||
                (len == 2 && comp[0] == '.' && comp[1] == '.'))
                return false;
            comp = name + i + 1;
            continue;
        }
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '+' || ch == '-' || ch == '.'))
            return false;
    }
    return strstr(name, "..") == NULL;
}

static bool is_builtin_utc(const char *name)
{
    return strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0;
}

static svc_status tz_build(svc_tz **out, const char *name, const char *dir, char *errbuf,
                           size_t errlen)
{
    svc_tz *tz = svc__calloc(1, sizeof *tz);
    if (!tz)
        return fail(errbuf, errlen, SVC_ENOMEM, "time zone '%s': out of memory", name);
    atomic_init(&tz->refs, 1);
    tz->name = svc__strdup(name);
    tz->dir = svc__strdup(dir);
    if (!tz->name || !tz->dir) {
        tz_destroy(tz);
        return fail(errbuf, errlen, SVC_ENOMEM, "time zone '%s': out of memory", name);
    }
    svc_status st;
    if (dir[0] == '\0') {
        tz->ntypes = 1;
        tz->nchars = 4;
        tz->types = svc__calloc(1, sizeof *tz->types);
        tz->chars = svc__strdup("UTC");
        st = tz->types && tz->chars ? SVC_OK
                                    : fail(errbuf, errlen, SVC_ENOMEM, "time zone: out of memory");
    } else {
        char *path = svc__asprintf("%s/%s", dir, name);
        uint8_t *data = NULL;
        size_t len = 0;
        st = path ? read_file(path, name, &data, &len, errbuf, errlen)
                  : fail(errbuf, errlen, SVC_ENOMEM, "time zone '%s': out of memory", name);
        if (st == SVC_OK)
            st = tzif_parse(tz, data, len, errbuf, errlen);
        svc_free(data);
        svc_free(path);
    }
    if (st != SVC_OK) {
        tz_destroy(tz);
        return st;
    }
    *out = tz;
    return SVC_OK;
}

/* ---- the load cache ---------------------------------------------------------
 *
 * A handful of zones is all a service uses; keeping them saves a file read
 * per cron expression or quota. Each slot owns one reference.
 */
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    svc_tz *tz;
    uint64_t used;
} cache[TZ_CACHE_SIZE];
static uint64_t cache_tick;

/* Under cache_mu: a new reference to the cached zone, or NULL. */
static svc_tz *cache_find(const char *name, const char *dir)
{
    for (size_t i = 0; i < TZ_CACHE_SIZE; i++) {
        svc_tz *tz = cache[i].tz;
        if (tz && strcmp(tz->name, name) == 0 && strcmp(tz->dir, dir) == 0) {
            cache[i].used = ++cache_tick;
            atomic_fetch_add(&tz->refs, 1);
            return tz;
        }
    }
    return NULL;
}

svc_status svc_tz_load_opts(svc_tz **out, const char *name, const svc_tz_opts *opts, char *errbuf,
                            size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!out || !name)
        return fail(errbuf, errlen, SVC_EINVAL, "time zone: NULL argument");
    *out = NULL;
    if (!name_ok(name))
        return fail(errbuf, errlen, SVC_EINVAL,
                    "invalid time zone name '%.64s' (want a relative name such as "
                    "'Europe/Berlin': letters, digits, '_', '+', '-', '.', '/', no '..')",
                    name);
    const char *dir = "";
    if (!is_builtin_utc(name)) {
        dir = opts && opts->tzdir ? opts->tzdir : svc__getenv("TZDIR");
        if (!dir)
            dir = TZ_DEFAULT_DIR;
        if (dir[0] == '\0' || strlen(dir) > 4000)
            return fail(errbuf, errlen, SVC_EINVAL, "time zone directory is empty or too long");
    }

    pthread_mutex_lock(&cache_mu);
    svc_tz *tz = cache_find(name, dir);
    pthread_mutex_unlock(&cache_mu);
    if (tz) {
        *out = tz;
        return SVC_OK;
    }

    svc_tz *fresh = NULL;
    svc_status st = tz_build(&fresh, name, dir, errbuf, errlen);
    if (st != SVC_OK)
        return st;

    svc_tz *evicted = NULL;
    pthread_mutex_lock(&cache_mu);
    tz = cache_find(name, dir); /* another thread may have loaded it meanwhile */
    if (!tz) {
        size_t slot = 0;
        for (size_t i = 0; i < TZ_CACHE_SIZE; i++) {
            if (!cache[i].tz) {
                slot = i;
                break;
            }
            if (cache[i].used < cache[slot].used)
                slot = i;
        }
        evicted = cache[slot].tz;
        atomic_fetch_add(&fresh->refs, 1);
        cache[slot].tz = fresh;
        cache[slot].used = ++cache_tick;
        tz = fresh;
        fresh = NULL;
    }
    pthread_mutex_unlock(&cache_mu);
    svc_tz_free(evicted);
    svc_tz_free(fresh);
    *out = tz;
    return SVC_OK;
}

svc_status svc_tz_load(svc_tz **out, const char *name)
{
    return svc_tz_load_opts(out, name, NULL, NULL, 0);
}

void svc_tz_free(svc_tz *tz)
{
    if (tz && atomic_fetch_sub(&tz->refs, 1) == 1)
        tz_destroy(tz);
}

void svc_tz_cache_clear(void)
{
    svc_tz *drop[TZ_CACHE_SIZE];
    pthread_mutex_lock(&cache_mu);
    for (size_t i = 0; i < TZ_CACHE_SIZE; i++) {
        drop[i] = cache[i].tz;
        cache[i].tz = NULL;
        cache[i].used = 0;
    }
    pthread_mutex_unlock(&cache_mu);
    for (size_t i = 0; i < TZ_CACHE_SIZE; i++)
        svc_tz_free(drop[i]);
}
