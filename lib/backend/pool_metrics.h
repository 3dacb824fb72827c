/* pool_metrics.h - the pool gauges svc_pg and svc_redis export:
 *
 *   <prefix>_connections{state="idle"|"in_use"}   <prefix>_waiting
 *
 * Several pools may share a registry: each collector adds the change since
 * its last reading (and takes its share back when unregistered), so the
 * gauges show the sum over all live pools.
 */
#ifndef SVCINFRA_BACKEND_POOL_METRICS_H
#define SVCINFRA_BACKEND_POOL_METRICS_H

#include "../internal.h"

struct svc_metrics;
struct svc_gauge;

/* Reads a pool's current counts (called at render time, from any thread). */
typedef void (*svc__pool_read_fn)(void *pool, unsigned *idle, unsigned *in_use, unsigned *waiting);

typedef struct svc__pool_metrics {
    struct svc_metrics *registry;   /* NULL when not registered */
    struct svc_gauge *conns;
    struct svc_gauge *waiting;
    svc__pool_read_fn read;
    void *pool;
    pthread_mutex_t mu;             /* guards the last_* values */
    double last_idle, last_in_use, last_waiting;
} svc__pool_metrics;

/* Registers the gauges and a collector in `registry` (NULL: the default
 * registry). `prefix` is "svc_pg_pool" or "svc_redis_pool". */
svc_status svc__pool_metrics_register(svc__pool_metrics *pm, struct svc_metrics *registry,
                                      const char *prefix, svc__pool_read_fn read, void *pool);
/* Removes the collector and this pool's share of the gauges. Safe on a
 * zeroed, never-registered struct. */
void svc__pool_metrics_unregister(svc__pool_metrics *pm);

#endif
