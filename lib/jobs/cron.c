/* cron.c - cron expressions: parsing, and the next fire time in a zone.
 *
 * Fields become bit sets. The search for the next fire time walks the UTC
 * time line one constant-offset segment at a time (the stretch between two
 * offset changes of the zone); inside a segment local time is UTC plus a
 * constant, so the classic field-skipping search on the civil calendar
 * applies (month, then day, then hour, then minute):
 *
 *   UTC   ----[ seg: off +1 )[ seg: off +2 ..................)[ seg: +1 ...
 *                            ^ spring forward: local 02:00-03:00 skipped
 *
 * At a segment's start, a jump forward leaves a gap of local times and a
 * jump back repeats a fold of local times; restricted-hour jobs catch up a
 * gap at the jump and skip the second pass through a fold (cron.h).
 */
#include "svcinfra/cron.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "svcinfra/tz.h"
#include "../internal.h"
#include "core/calendar.h"

#define CRON_MAX_EXPR 256
#define CRON_MAX_STEPS 1000000 /* safety net; real searches take far fewer */

struct svc_cron {
    uint64_t minutes; /* bit n: minute n */
    uint32_t hours;   /* bit n: hour n */
    uint32_t doms;    /* bit n: day n (1..31) */
    uint16_t months;  /* bit n: month n (1..12) */
    uint8_t dows;     /* bit n: weekday n (0 = Sunday) */
    bool dom_star, dow_star, hour_star;
    svc_tz *tz;
    char *expr;
};

/* ---- parsing ---------------------------------------------------------------- */

typedef struct field_spec {
    const char *name;
    int min, max;
    const char *const *names; /* names[i] is value min + i... see lookup */
    int names_base;
} field_spec;

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const dow_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

static const field_spec fields[5] = {
    {"minute", 0, 59, NULL, 0},
    {"hour", 0, 23, NULL, 0},
    {"day-of-month", 1, 31, NULL, 0},
    {"month", 1, 12, month_names, 1},
    {"day-of-week", 0, 7, dow_names, 0},
};

static const struct {
    const char *name;
    const char *expr;
} macros[] = {
    {"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"},  {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

typedef struct parser {
    const char *expr;  /* the text as given, for columns */
    const char *p;     /* cursor */
    const char *end;   /* end of the current field */
    const field_spec *f;
    char *errbuf;
    size_t errlen;
} parser;

static svc_status perr(parser *ps, const char *at, const char *fmt, ...) SVC_PRINTF(3, 4);

/* "cron: <field> field: <what> (column N)" */
static svc_status perr(parser *ps, const char *at, const char *fmt, ...)
{
    if (ps->errbuf && ps->errlen) {
        char what[160];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        int col = (int)(at - ps->expr) + 1;
        if (ps->f)
            snprintf(ps->errbuf, ps->errlen, "cron: %s field: %s (column %d)", ps->f->name, what,
                     col);
        else
            snprintf(ps->errbuf, ps->errlen, "cron: %s (column %d)", what, col);
    }
    return SVC_EPARSE;
}

static bool is_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* One number or name of the current field at the cursor. */
static svc_status parse_value(parser *ps, int *out)
{
    const char *start = ps->p;
    const field_spec *f = ps->f;
    if (is_digit(*ps->p)) {
        long v = 0;
        while (ps->p < ps->end && is_digit(*ps->p)) {
            if (v < 1000)
                v = v * 10 + (*ps->p - '0');
            ps->p++;
        }
        if (v < f->min || v > f->max)
            return perr(ps, start, "%.*s is out of range %d-%d", (int)(ps->p - start), start,
                        f->min, f->max);
        *out = (int)v;
        return SVC_OK;
    }
    if (is_alpha(*ps->p)) {
        while (ps->p < ps->end && is_alpha(*ps->p))
            ps->p++;
        size_t n = (size_t)(ps->p - start);
        if (f->names) {
            size_t count = f == &fields[3] ? 12 : 7;
            for (size_t i = 0; i < count && n == 3; i++) {
                if (strncasecmp(start, f->names[i], 3) == 0) {
                    *out = (int)i + f->names_base;
                    return SVC_OK;
                }
            }
            return perr(ps, start, "unknown %s name '%.*s'", f == &fields[3] ? "month" : "day",
                        (int)n, start);
        }
        return perr(ps, start, "names are not allowed here ('%.*s')", (int)n, start);
    }
    if (ps->p >= ps->end)
        return perr(ps, start, "a value is missing");
    return perr(ps, start, "unexpected character '%c'", *ps->p);
}

/* One field (the text from ps->p to ps->end) into a bit set. */
static svc_status parse_field(parser *ps, uint64_t *bits, bool *star)
{
    const field_spec *f = ps->f;
    *bits = 0;
    *star = *ps->p == '*';
    for (;;) {
        const char *item = ps->p;
        int lo, hi;
        bool ranged = false;
        if (ps->p >= ps->end || *ps->p == ',')
            return perr(ps, item, "empty list element");
        if (*ps->p == '*') {
            ps->p++;
            lo = f->min;
            hi = f->max;
            ranged = true;
        } else {
            svc_status st = parse_value(ps, &lo);
            if (st != SVC_OK)
                return st;
            hi = lo;
            if (ps->p < ps->end && *ps->p == '-') {
                ps->p++;
                const char *hs = ps->p;
                st = parse_value(ps, &hi);
                if (st != SVC_OK)
                    return st;
                if (hi < lo)
                    return perr(ps, hs, "range %.*s ends before it starts", (int)(ps->p - item),
                                item);
                ranged = true;
            }
        }
        int step = 1;
        if (ps->p < ps->end && *ps->p == '/') {
            ps->p++;
            const char *ss = ps->p;
            long v = 0;
            if (!is_digit(*ss) || ss >= ps->end)
                return perr(ps, ss, "a step must be a number");
            while (ps->p < ps->end && is_digit(*ps->p)) {
                if (v < 1000)
                    v = v * 10 + (*ps->p - '0');
                ps->p++;
            }
            if (v < 1 || v > f->max - f->min + 1)
                return perr(ps, ss, "step %.*s is out of range 1-%d", (int)(ps->p - ss), ss,
                            f->max - f->min + 1);
            step = (int)v;
            if (!ranged)
                hi = f->max; /* "N/step": from N to the maximum */
        }
        if (ps->p < ps->end && *ps->p != ',')
            return perr(ps, ps->p, "unexpected character '%c'", *ps->p);
        for (int v = lo; v <= hi; v += step)
            *bits |= UINT64_C(1) << (f == &fields[4] && v == 7 ? 0 : v);
        if (ps->p >= ps->end)
            return SVC_OK;
        ps->p++; /* ',' */
    }
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static svc_status parse_fields(svc_cron *c, parser *ps)
{
    uint64_t bits[5];
    bool stars[5];
    for (size_t i = 0; i < 5; i++) {
        while (*ps->p && is_space(*ps->p))
            ps->p++;
        ps->f = NULL;
        if (*ps->p == '\0')
            return perr(ps, ps->p, "missing %s field", fields[i].name);
        ps->end = ps->p;
        while (*ps->end && !is_space(*ps->end))
            ps->end++;
        ps->f = &fields[i];
        svc_status st = parse_field(ps, &bits[i], &stars[i]);
        if (st != SVC_OK)
            return st;
        ps->p = ps->end;
    }
    while (*ps->p && is_space(*ps->p))
        ps->p++;
    ps->f = NULL;
    if (*ps->p)
        return perr(ps, ps->p, "unexpected text after the day-of-week field");
    c->minutes = bits[0];
    c->hours = (uint32_t)bits[1];
    c->doms = (uint32_t)bits[2];
    c->months = (uint16_t)bits[3];
    c->dows = (uint8_t)bits[4];
    c->hour_star = stars[1];
    c->dom_star = stars[2];
    c->dow_star = stars[4];
    return SVC_OK;
}

void svc_cron_free(svc_cron *c)
{
    if (!c)
        return;
    svc_tz_free(c->tz);
    svc_free(c->expr);
    svc_free(c);
}

svc_status svc_cron_parse(svc_cron **out, const char *expr, const char *tz_name, char *errbuf,
                          size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!out || !expr) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "cron: NULL argument");
        return SVC_EINVAL;
    }
    *out = NULL;
    parser ps = {expr, expr, expr, NULL, errbuf, errlen};
    if (strlen(expr) > CRON_MAX_EXPR)
        return perr(&ps, expr + CRON_MAX_EXPR, "expression longer than %d characters",
                    CRON_MAX_EXPR);
    svc_cron *c = svc__calloc(1, sizeof *c);
    if (!c || !(c->expr = svc__strdup(expr))) {
        svc_free(c);
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "cron: out of memory");
        return SVC_ENOMEM;
    }

    const char *s = expr;
    while (is_space(*s))
        s++;
    svc_status st;
    if (*s == '\0') {
        st = perr(&ps, s, "empty expression");
    } else if (*s == '@') {
        const char *e = s;
        while (*e && !is_space(*e))
            e++;
        const char *body = NULL;
        for (size_t i = 0; i < SVC__ARRAY_LEN(macros) && !body; i++) {
            if (strlen(macros[i].name) == (size_t)(e - s) &&
                strncasecmp(s, macros[i].name, (size_t)(e - s)) == 0)
                body = macros[i].expr;
        }
        const char *rest = e;
        while (is_space(*rest))
            rest++;
        if (!body) {
            st = perr(&ps, s, "unknown macro '%.*s'", (int)(e - s), s);
        } else if (*rest) {
            st = perr(&ps, rest, "unexpected text after %.*s", (int)(e - s), s);
        } else {
            parser mp = {body, body, body, NULL, errbuf, errlen};
            st = parse_fields(c, &mp);
        }
    } else {
        st = parse_fields(c, &ps);
    }
    if (st == SVC_OK) {
        char tzerr[256];
        st = svc_tz_load_opts(&c->tz, tz_name ? tz_name : "UTC", NULL, tzerr, sizeof tzerr);
        if (st != SVC_OK && errbuf && errlen)
            snprintf(errbuf, errlen, "cron: %s", tzerr);
    }
    if (st != SVC_OK) {
        svc_cron_free(c);
        return st;
    }
    *out = c;
    return SVC_OK;
}

const char *svc_cron_expr(const svc_cron *c)
{
    return c ? c->expr : "";
}

const char *svc_cron_tz_name(const svc_cron *c)
{
    return c ? svc_tz_name(c->tz) : "";
}

/* ---- the next fire time ----------------------------------------------------- */

static bool day_matches(const svc_cron *c, const svc_tm *tm)
{
    bool dom = c->doms >> tm->day & 1u, dow = c->dows >> tm->wday & 1u;
    return (c->dom_star || c->dow_star) ? dom && dow : dom || dow;
}

/* Local seconds of y-m-d h:mi; false past the year 9999. Months past 12
 * roll into the next year. Local seconds count local wall time as if it
 * were UTC, so this is calendar arithmetic only. */
static bool civil(int y, int m, int d, int h, int mi, int64_t *out)
{
    if (m > 12) {
        y++;
        m = 1;
    }
    if (y > 9999)
        return false;
    *out = svc__days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60;
    return true;
}

/* The smallest whole local minute L with lmin <= L < lmax whose fields
 * match. Local seconds count local wall time as if it were UTC. */
static bool search_local(const svc_cron *c, int64_t lmin, int64_t lmax, int64_t *out)
{
    int64_t L = lmin % 60 == 0 ? lmin : lmin + (60 - ((lmin % 60) + 60) % 60);
    for (int steps = 0; steps < CRON_MAX_STEPS; steps++) {
        svc_tm tm;
        if (L >= lmax || !svc__civil_fields(L, &tm))
            return false;
        int64_t day0 = L - tm.hour * 3600 - tm.minute * 60 - tm.second;
        if (!(c->months >> tm.month & 1u)) {
            if (!civil(tm.year, tm.month + 1, 1, 0, 0, &L))
                return false;
            continue;
        }
        if (!day_matches(c, &tm)) {
            L = day0 + 86400;
            continue;
        }
        if (!(c->hours >> tm.hour & 1u)) {
            int h = tm.hour + 1;
            while (h < 24 && !(c->hours >> h & 1u))
                h++;
            L = day0 + (int64_t)h * 3600; /* h == 24: the next day */
            continue;
        }
        if (!(c->minutes >> tm.minute & 1u)) {
            int mi = tm.minute + 1;
            while (mi < 60 && !(c->minutes >> mi & 1u))
                mi++;
            L = day0 + tm.hour * 3600 + (int64_t)mi * 60; /* mi == 60: the next hour */
            continue;
        }
        *out = L;
        return true;
    }
    return false;
}

svc_status svc_cron_next(const svc_cron *c, int64_t after, int64_t *next)
{
    if (!c || !next)
        return SVC_EINVAL;
    int32_t o;
    svc_status st = svc_tz_offset_at(c->tz, after, &o, NULL);
    if (st != SVC_OK)
        return st;
    if (after == INT64_C(253402300799))
        return SVC_ENOTFOUND;
    int64_t horizon = after + (int64_t)SVC_CRON_HORIZON_YEARS * 366 * 86400;
    int64_t seg = after + 1;
    for (int segs = 0; segs < SVC_CRON_HORIZON_YEARS * 400 && seg < horizon; segs++) {
        if (svc_tz_offset_at(c->tz, seg, &o, NULL) != SVC_OK)
            return SVC_ENOTFOUND; /* ran past the year 9999 */
        int64_t seg_end, t0;
        if (svc_tz_next_transition(c->tz, seg, &seg_end) != SVC_OK || seg_end > horizon)
            seg_end = horizon;
        /* The offset change this segment starts with, when there is one. */
        int32_t p = o;
        bool has_t0 = svc_tz_prev_transition(c->tz, seg, &t0) == SVC_OK &&
                      svc_tz_offset_at(c->tz, t0 - 1, &p, NULL) == SVC_OK;
        int64_t fold_lo = 0, fold_hi = 0;
        if (has_t0 && !c->hour_star) {
            int64_t L;
            if (t0 == seg && p < o && search_local(c, t0 + p, t0 + o, &L)) {
                *next = t0; /* a skipped local time runs right after the jump */
                return SVC_OK;
            }
            if (p > o) { /* these local times already ran before the jump */
                fold_lo = t0 + o;
                fold_hi = t0 + p;
            }
        }
        int64_t lmin = seg + o, L;
        while (search_local(c, lmin, seg_end + o, &L)) {
            if (L >= fold_lo && L < fold_hi) {
                lmin = fold_hi;
                continue;
            }
            *next = L - o;
            return SVC_OK;
        }
        seg = seg_end;
    }
    return SVC_ENOTFOUND;
}
