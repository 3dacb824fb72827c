/* pool_metrics.c - pool gauges shared by svc_pg and svc_redis. */
#include "pool_metrics.h"

#include <stdio.h>
#include <string.h>

#include "svcinfra/metrics.h"

static const char *const state_label[] = {"state", NULL};
static const char *const idle_v[] = {"idle"};
static const char *const in_use_v[] = {"in_use"};

/* Publishes the change since the last reading, so the gauge is the sum over
 * the pools registered in one registry. */
static void publish(svc__pool_metrics *pm, double idle, double in_use, double waiting)
{
    pthread_mutex_lock(&pm->mu);
    svc_gauge_add(pm->conns, idle_v, idle - pm->last_idle);
    svc_gauge_add(pm->conns, in_use_v, in_use - pm->last_in_use);
    svc_gauge_add(pm->waiting, NULL, waiting - pm->last_waiting);
    pm->last_idle = idle;
    pm->last_in_use = in_use;
    pm->last_waiting = waiting;
    pthread_mutex_unlock(&pm->mu);
}

static void collect(svc_metrics *m, void *ctx)
{
    (void)m;
    svc__pool_metrics *pm = ctx;
    unsigned idle = 0, in_use = 0, waiting = 0;
    pm->read(pm->pool, &idle, &in_use, &waiting);
    publish(pm, idle, in_use, waiting);
}

svc_status svc__pool_metrics_register(svc__pool_metrics *pm, struct svc_metrics *registry,
                                      const char *prefix, svc__pool_read_fn read, void *pool)
{
    memset(pm, 0, sizeof *pm);
    svc_metrics *m = registry ? registry : svc_metrics_default();
    if (!m)
        return SVC_ENOMEM;
    char name[64], help[128];
    snprintf(name, sizeof name, "%s_connections", prefix);
    snprintf(help, sizeof help, "Connections of %s pools by state.", prefix);
    svc_status st = svc_metrics_gauge(m, name, help, state_label, &pm->conns);
    if (st)
        return st;
    snprintf(name, sizeof name, "%s_waiting", prefix);
    snprintf(help, sizeof help, "Threads waiting for a free connection of %s pools.", prefix);
    if ((st = svc_metrics_gauge(m, name, help, NULL, &pm->waiting)))
        return st;
    pthread_mutex_init(&pm->mu, NULL);
    pm->read = read;
    pm->pool = pool;
    if ((st = svc_metrics_add_collector(m, collect, pm))) {
        pthread_mutex_destroy(&pm->mu);
        return st;
    }
    pm->registry = svc_metrics_ref(m);
    return SVC_OK;
}

void svc__pool_metrics_unregister(svc__pool_metrics *pm)
{
    if (!pm->registry)
        return;
    svc_metrics_remove_collector(pm->registry, collect, pm);
    publish(pm, 0, 0, 0);
    pthread_mutex_destroy(&pm->mu);
    svc_metrics_free(pm->registry);
    pm->registry = NULL;
}
