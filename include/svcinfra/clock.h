/*
 * svcinfra/clock.h - the injectable clock.
 *
 * All time the library measures (TTLs, windows, backoff, timeouts, cron,
 * log timestamps) is read through an svc_clock, so tests move time forward
 * instead of sleeping. Options structs take `const svc_clock *clock`; NULL
 * means svc_clock_system().
 *
 * Thread safety: the system clock is safe from any thread. A manual clock
 * may be read and advanced from any thread (its state is atomic).
 */
#ifndef SVCINFRA_CLOCK_H
#define SVCINFRA_CLOCK_H

#include "common.h"
#include "status.h"

SVC_BEGIN_DECLS

typedef struct svc_clock {
    /* Nanoseconds from an arbitrary fixed origin; never goes backwards. */
    int64_t (*mono_ns)(void *ctx);
    /* Nanoseconds since 1970-01-01T00:00:00Z (may jump when the host's
     * time is set). */
    int64_t (*wall_ns)(void *ctx);
    void *ctx;
} svc_clock;

/* CLOCK_MONOTONIC and CLOCK_REALTIME. Static storage. */
SVC_EXPORT const svc_clock *svc_clock_system(void);

/* Readers that accept NULL for the system clock. */
SVC_EXPORT int64_t svc_clock_mono_ns(const svc_clock *clock);
SVC_EXPORT int64_t svc_clock_wall_ns(const svc_clock *clock);

/* A manual clock for tests: both readings start at the given values and
 * only move when advanced. */
typedef struct svc_manual_clock svc_manual_clock;

/* Creates a manual clock (new; release with svc_manual_clock_free()).
 * Returns SVC_EINVAL for a NULL out, SVC_ENOMEM when allocation fails. */
SVC_EXPORT SVC_NODISCARD svc_status svc_manual_clock_new(svc_manual_clock **out,
                                                         int64_t mono_ns,
                                                         int64_t wall_ns);
SVC_EXPORT void svc_manual_clock_free(svc_manual_clock *mc);
/* The svc_clock view of `mc` (borrowed; valid while `mc` lives). */
SVC_EXPORT const svc_clock *svc_manual_clock_get(svc_manual_clock *mc);
/* Moves both readings forward by `delta_ns` (negative values are ignored:
 * monotonic time never goes back). */
SVC_EXPORT void svc_manual_clock_advance(svc_manual_clock *mc, int64_t delta_ns);
/* Sets the wall reading only (to test a host clock that jumps). */
SVC_EXPORT void svc_manual_clock_set_wall(svc_manual_clock *mc, int64_t wall_ns);

SVC_END_DECLS

#endif /* SVCINFRA_CLOCK_H */
