/*
 * svcinfra/cron.h - cron expressions evaluated in a time zone.
 *
 * Five fields, as in Vixie cron and crontab(5):
 *
 *   minute  hour  day-of-month  month  day-of-week
 *   0-59    0-23  1-31          1-12   0-7 (0 and 7 are Sunday)
 *                               JAN-DEC SUN-SAT (any case)
 *
 * Each field is a comma-separated list of `*`, `N`, `N-M`, each optionally
 * followed by `/step` (`*`/15, 1-30/5; `N/step` means N to the field's
 * maximum). Macros: @yearly (@annually), @monthly, @weekly, @daily
 * (@midnight), @hourly. When both day fields are restricted, a day matches
 * if EITHER matches ("0 0 1,15 * MON" runs on the 1st, the 15th and every
 * Monday); a day field that starts with `*` (including `*`/2) counts as
 * unrestricted, exactly as in Vixie cron.
 *
 * Daylight saving time (see docs/cron.md for the full table):
 *   - A job whose hour field is restricted ("30 2 * * *") runs once a day:
 *     if its local time is skipped by a spring-forward jump, it runs at the
 *     first instant after the jump (03:00 local for a 02:00->03:00 jump);
 *     if its local time happens twice on a fall-back day, it runs at the
 *     first occurrence only.
 *   - A job whose hour field starts with `*` ("*" /15 * * * *, "0 * * * *")
 *     follows elapsed time: local times skipped by a jump do not happen, and
 *     in a repeated hour it runs in both real hours.
 *
 * Thread safety: a parsed svc_cron is immutable; svc_cron_next() may be
 * called on one svc_cron from many threads at once. The time zone is read
 * when the expression is parsed (see tz.h).
 */
#ifndef SVCINFRA_CRON_H
#define SVCINFRA_CRON_H

#include "common.h"
#include "status.h"

SVC_BEGIN_DECLS

/* A parsed cron expression bound to a time zone (opaque). */
typedef struct svc_cron svc_cron;

/* How far svc_cron_next() looks ahead before it gives up: long enough for
 * any satisfiable day-of-month/month/weekday combination to recur. */
#define SVC_CRON_HORIZON_YEARS 28

/* Parses `expr` for the time zone `tz_name` ("Europe/Berlin"; NULL means
 * UTC) into `*out` (new; release with svc_cron_free()).
 *
 * Returns SVC_OK; SVC_EPARSE for a malformed expression, with a sentence in
 * `errbuf` (when non-NULL, `errlen` bytes) that names the field and the
 * 1-based character column of the bad token, e.g.
 *     "cron: minute field: 60 is out of range 0-59 (column 1)";
 * the statuses of svc_tz_load_opts() (SVC_EINVAL, SVC_ENOTFOUND, ...) for a
 * bad or unknown zone, with its message; SVC_EINVAL for NULL `out`/`expr`;
 * SVC_ENOMEM. On failure `*out` is NULL. */
SVC_EXPORT SVC_NODISCARD svc_status svc_cron_parse(svc_cron **out, const char *expr,
                                                   const char *tz_name, char *errbuf,
                                                   size_t errlen);

/* Frees `cron`. NULL is a no-op. */
SVC_EXPORT void svc_cron_free(svc_cron *cron);

/* The first fire time strictly after `after_utc_s` (UTC seconds) into
 * `*next_utc_s`. Fire times are whole local minutes (second 0), except a
 * job moved to the end of a DST gap, which fires at the jump itself.
 *
 * Returns SVC_OK; SVC_ENOTFOUND when nothing matches within
 * SVC_CRON_HORIZON_YEARS years ("0 0 30 2 *" never does) or before the year
 * 10000; SVC_ERANGE when `after_utc_s` is outside years 1..9999; SVC_EINVAL
 * for NULL arguments. Costs a few steps per month, day and hour skipped,
 * never a minute-by-minute scan. */
SVC_EXPORT SVC_NODISCARD svc_status svc_cron_next(const svc_cron *cron, int64_t after_utc_s,
                                                  int64_t *next_utc_s);

/* The expression as given (borrowed; valid while `cron` lives); "" for NULL. */
SVC_EXPORT const char *svc_cron_expr(const svc_cron *cron);

/* The zone name the expression is evaluated in ("UTC" when none was
 * given; borrowed); "" for NULL. */
SVC_EXPORT const char *svc_cron_tz_name(const svc_cron *cron);

SVC_END_DECLS

#endif /* SVCINFRA_CRON_H */
