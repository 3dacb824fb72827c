/* clock.c - the system clock and the manual clock for tests. */
#include <stdatomic.h>
#include <time.h>

#include "../internal.h"

static int64_t read_clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * SVC__NS_PER_SEC + ts.tv_nsec;
}

static int64_t sys_mono(void *ctx) { SVC__UNUSED(ctx); return read_clock(CLOCK_MONOTONIC); }
static int64_t sys_wall(void *ctx) { SVC__UNUSED(ctx); return read_clock(CLOCK_REALTIME); }

static const svc_clock system_clock = {sys_mono, sys_wall, NULL};

const svc_clock *svc_clock_system(void) { return &system_clock; }

int64_t svc_clock_mono_ns(const svc_clock *c)
{
    c = svc__clock_or_system(c);
    return c->mono_ns(c->ctx);
}

int64_t svc__clock_mono_coarse_ns(const svc_clock *c)
{
    c = svc__clock_or_system(c);
    return c == &system_clock ? read_clock(CLOCK_MONOTONIC_COARSE) : c->mono_ns(c->ctx);
}

int64_t svc_clock_wall_ns(const svc_clock *c)
{
    c = svc__clock_or_system(c);
    return c->wall_ns(c->ctx);
}

struct svc_manual_clock {
    svc_clock view;
    _Atomic int64_t mono;
    _Atomic int64_t wall;
};

static int64_t manual_mono(void *ctx) { return atomic_load(&((svc_manual_clock *)ctx)->mono); }
static int64_t manual_wall(void *ctx) { return atomic_load(&((svc_manual_clock *)ctx)->wall); }

svc_status svc_manual_clock_new(svc_manual_clock **out, int64_t mono_ns, int64_t wall_ns)
{
    if (!out)
        return SVC_EINVAL;
    svc_manual_clock *mc = svc__calloc(1, sizeof *mc);
    if (!mc)
        return SVC_ENOMEM;
    mc->view = (svc_clock){manual_mono, manual_wall, mc};
    atomic_init(&mc->mono, mono_ns);
    atomic_init(&mc->wall, wall_ns);
    *out = mc;
    return SVC_OK;
}

void svc_manual_clock_free(svc_manual_clock *mc) { svc_free(mc); }

const svc_clock *svc_manual_clock_get(svc_manual_clock *mc) { return mc ? &mc->view : NULL; }

void svc_manual_clock_advance(svc_manual_clock *mc, int64_t delta_ns)
{
    if (!mc || delta_ns <= 0)
        return;
    atomic_fetch_add(&mc->mono, delta_ns);
    atomic_fetch_add(&mc->wall, delta_ns);
}

void svc_manual_clock_set_wall(svc_manual_clock *mc, int64_t wall_ns)
{
    if (mc)
        atomic_store(&mc->wall, wall_ns);
}
