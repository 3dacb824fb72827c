/*
 * svcinfra/tz.h - IANA time zones without the process-global TZ.
 *
 * A zone is read from the system's compiled zone files (TZif, versions 1, 2
 * and 3) under /usr/share/zoneinfo, or under the directory named by the
 * TZDIR environment variable or svc_tz_opts.tzdir. The 64-bit section of a
 * v2+ file is used when present, and the POSIX TZ rule stored in its footer
 * ("CET-1CEST,M3.5.0,M10.5.0/3") gives the offsets after the file's last
 * transition, so any date up to the year 9999 has an answer. "UTC" (and
 * "Etc/UTC") are built in and need no files.
 *
 *   svc_tz *tz;
 *   if (svc_tz_load(&tz, "Europe/Berlin") == SVC_OK) {
 *       svc_tm tm;
 *       if (svc_tz_to_local(tz, time(NULL), &tm) == SVC_OK)
 *           printf("%02d:%02d %s\n", tm.hour, tm.minute, tm.abbr);
 *       svc_tz_free(tz);
 *   }
 *
 * Zone data is read when a zone is loaded, never afterwards: a loaded svc_tz
 * does not see a later tzdata update. Loaded zones are kept in a small
 * process-wide cache (at most 8 zones, least recently used dropped first);
 * svc_tz_cache_clear() empties it so the next load reads the files again.
 *
 * Times are UTC seconds since 1970-01-01T00:00:00Z (leap seconds not
 * counted, as in time_t); supported dates run from year 1 to year 9999,
 * outside that the calls return SVC_ERANGE. Zone files with leap-second
 * records (the "right/" zones) are refused with SVC_ENOTSUP.
 *
 * Thread safety: every function here may be called from any thread. An
 * svc_tz is immutable once loaded and may be shared by many threads; it is
 * reference counted, so each svc_tz_load() is paired with one svc_tz_free().
 * Nothing here reads or changes the TZ environment variable or calls
 * localtime()/tzset().
 */
#ifndef SVCINFRA_TZ_H
#define SVCINFRA_TZ_H

#include <stdbool.h>

#include "common.h"
#include "status.h"

SVC_BEGIN_DECLS

/* A loaded time zone (opaque, immutable, reference counted). */
typedef struct svc_tz svc_tz;

typedef struct svc_tz_opts {
    const char *tzdir;   /* zone file directory; NULL: $TZDIR, else
                            "/usr/share/zoneinfo" (copied when used) */
    void *reserved[4];   /* zero */
} svc_tz_opts;

/* Broken-down local time of one instant in one zone. */
typedef struct svc_tm {
    int year;            /* 1..9999 */
    int month;           /* 1..12 */
    int day;             /* 1..31 */
    int hour;            /* 0..23 */
    int minute;          /* 0..59 */
    int second;          /* 0..59 */
    int wday;            /* day of week, 0 = Sunday .. 6 = Saturday */
    int yday;            /* day of year, 0 = January 1st */
    int32_t utc_offset;  /* seconds east of UTC: local = utc + utc_offset */
    bool is_dst;         /* daylight saving (or other "summer") time */
    char abbr[16];       /* "CEST", "EST", "+0530"; "" when unknown */
} svc_tm;

/* What svc_tz_from_local() does with a local time that does not exist (a
 * gap: the clocks jumped over it) or exists twice (a fold: the clocks were
 * set back). Combine one SVC_TZ_GAP_* with one SVC_TZ_FOLD_* by `|`;
 * 0 is SVC_TZ_GAP_SHIFT | SVC_TZ_FOLD_EARLIER, what mktime() commonly does. */
typedef enum svc_tz_policy {
    /* Gap: read the time with the offset in force before the jump, which
     * moves it forward by the jump: 02:30 on a 02:00->03:00 day is 03:30. */
    SVC_TZ_GAP_SHIFT = 0x00,
    /* Gap: the first instant after the jump: 02:30 becomes 03:00. */
    SVC_TZ_GAP_NEXT_VALID = 0x01,
    /* Gap: fail with SVC_ENOTFOUND. */
    SVC_TZ_GAP_REJECT = 0x02,
    /* Fold: the earlier of the two instants (the one before the clocks
     * were set back). */
    SVC_TZ_FOLD_EARLIER = 0x00,
    /* Fold: the later of the two instants. */
    SVC_TZ_FOLD_LATER = 0x10,
    /* Fold: fail with SVC_ECONFLICT. */
    SVC_TZ_FOLD_REJECT = 0x20
} svc_tz_policy;

/* Sets every field of `opts` to its default (written beside each field). */
SVC_EXPORT void svc_tz_opts_default(svc_tz_opts *opts) SVC_NONNULL(1);

/* Loads the zone `name` ("Europe/Berlin", "America/New_York", "UTC") with
 * default options; see svc_tz_load_opts(). */
SVC_EXPORT SVC_NODISCARD svc_status svc_tz_load(svc_tz **out, const char *name);

/* Loads the zone `name` into `*out` (new; release with svc_tz_free()).
 * `opts` may be NULL for defaults. The zone file is read now (or taken from
 * the cache when this directory and name were loaded before).
 *
 * Names are relative paths of letters, digits and "_+-./"; an empty name,
 * an absolute path, a "." or ".." component, "//", or any other character
 * is refused with SVC_EINVAL before any file is touched.
 *
 * Returns SVC_OK; SVC_EINVAL for a bad name or NULL argument; SVC_ENOTFOUND
 * for an unknown zone (no such file); SVC_EPARSE for a file that is not
 * valid TZif data or whose footer rule is malformed; SVC_ENOTSUP for a
 * leap-second zone; SVC_EIO when the file cannot be read; SVC_ENOMEM.
 * On failure `*out` is NULL and `errbuf` (when non-NULL, `errlen` bytes)
 * receives a sentence naming the zone and the problem. */
SVC_EXPORT SVC_NODISCARD svc_status svc_tz_load_opts(svc_tz **out, const char *name,
                                                     const svc_tz_opts *opts,
                                                     char *errbuf, size_t errlen);

/* Releases one reference to `tz`; the zone is freed with its last
 * reference (the cache holds one of its own). NULL is a no-op. */
SVC_EXPORT void svc_tz_free(svc_tz *tz);

/* Drops every zone from the process-wide cache (zones still held by
 * callers stay valid). The next load of any zone reads its file again. */
SVC_EXPORT void svc_tz_cache_clear(void);

/* The name `tz` was loaded under (borrowed; valid while `tz` lives);
 * "" for NULL. */
SVC_EXPORT const char *svc_tz_name(const svc_tz *tz);

/* The offset from UTC in force at `utc_s` (seconds east: local = utc +
 * offset) into `*offset_s`, and whether it is daylight saving time into
 * `*is_dst` (may be NULL). Returns SVC_OK, SVC_ERANGE outside years
 * 1..9999, SVC_EINVAL for a NULL argument. */
SVC_EXPORT SVC_NODISCARD svc_status svc_tz_offset_at(const svc_tz *tz, int64_t utc_s,
                                                     int32_t *offset_s, bool *is_dst);

/* The local time of `utc_s` in `tz`, broken down into `*out`.
 * Returns SVC_OK, SVC_ERANGE outside years 1..9999, SVC_EINVAL for NULL. */
SVC_EXPORT SVC_NODISCARD svc_status svc_tz_to_local(const svc_tz *tz, int64_t utc_s,
                                                    svc_tm *out);

/* The UTC instant of the local time year-month-day hour:minute:second in
 * `tz` into `*utc_s`. Gaps and folds are resolved by `policy` (see
 * svc_tz_policy; 0 shifts gaps forward and takes the earlier instant of a
 * fold).
 *
 * Returns SVC_OK; SVC_EINVAL for a field out of range (month 13, April 31,
 * February 29 of a common year, hour 24, second 60) or a bad policy;
 * SVC_ENOTFOUND for a gap under SVC_TZ_GAP_REJECT; SVC_ECONFLICT for a fold
 * under SVC_TZ_FOLD_REJECT; SVC_ERANGE outside years 1..9999. */
SVC_EXPORT SVC_NODISCARD svc_status svc_tz_from_local(const svc_tz *tz, int year, int month,
                                                      int day, int hour, int minute,
                                                      int second, int policy,
                                                      int64_t *utc_s);

/* The local calendar day that contains `utc_s`: `*start_utc_s` is its first
 * instant (local midnight, or the end of a gap when midnight was skipped)
 * and `*end_utc_s` (may be NULL) the first instant of the next local day.
 * A day is 23, 24 or 25 hours long around DST changes. For daily quotas.
 * Returns SVC_OK, SVC_ERANGE outside years 1..9999, SVC_EINVAL for NULL. */
SVC_EXPORT SVC_NODISCARD svc_status svc_tz_day_range(const svc_tz *tz, int64_t utc_s,
                                                     int64_t *start_utc_s,
                                                     int64_t *end_utc_s);

/* As svc_tz_day_range() for the local calendar month that contains
 * `utc_s`: its first instant and the first instant of the next month. */
SVC_EXPORT SVC_NODISCARD svc_status svc_tz_month_range(const svc_tz *tz, int64_t utc_s,
                                                       int64_t *start_utc_s,
                                                       int64_t *end_utc_s);

/* The earliest instant strictly after `utc_s` at which the UTC offset of
 * `tz` changes, into `*when_utc_s` (the first instant with the new offset).
 * Changes of name or DST flag alone are not reported. Returns SVC_OK,
 * SVC_ENOTFOUND when the offset never changes again before year 10000,
 * SVC_ERANGE for `utc_s` outside years 1..9999, SVC_EINVAL for NULL. */
SVC_EXPORT SVC_NODISCARD svc_status svc_tz_next_transition(const svc_tz *tz, int64_t utc_s,
                                                           int64_t *when_utc_s);

/* The latest instant at or before `utc_s` at which the UTC offset of `tz`
 * changed (the first instant of the offset in force at `utc_s`).
 * Returns SVC_OK, SVC_ENOTFOUND when the zone's data holds no earlier
 * change, SVC_ERANGE, SVC_EINVAL as svc_tz_next_transition(). */
SVC_EXPORT SVC_NODISCARD svc_status svc_tz_prev_transition(const svc_tz *tz, int64_t utc_s,
                                                           int64_t *when_utc_s);

SVC_END_DECLS

#endif /* SVCINFRA_TZ_H */
