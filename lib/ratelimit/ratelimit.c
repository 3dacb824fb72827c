/*
 * ratelimit.c - the rate limiter: options, constructor, references, store,
 * statistics. The policy table, its configuration grammar, checks and
 * quotas live beside it (rl.h lists them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcinfra/log.h"
#include "svcinfra/metrics.h"
#include "svcinfra/store.h"

#include "core/opts.h"
#include "rl.h"

#if SVC__RL_HAVE_TZ
#include "svcinfra/tz.h"
#endif

#define DEFAULT_MAX_KEYS ((size_t)1 << 18)
#define MAX_MAX_KEYS (INT64_C(1) << 40)

static _Atomic uint64_t next_rl_id = 1;

/* ---- options -------------------------------------------------------------------- */

static const svc__opt ratelimit_spec[] = {
    SVC__OPT(svc_ratelimit_opts, url, STRING, .s = "memory:", 0, 0,
             "where counters live: memory: or redis://"),
    SVC__OPT(svc_ratelimit_opts, pool_size, UINT, .i = 0, 0, 1024,
             "connections of a Redis pool made from url; 0: the pool's default"),
    SVC__OPT_K(svc_ratelimit_opts, store_timeout_ms, "store_timeout", MS, .i = 500, 0, 3600000,
               "connect, checkout and per-check timeout of a Redis pool made from url"),
    SVC__OPT(svc_ratelimit_opts, fail_open, BOOL, .i = 1, 0, 0,
             "a failing store admits (0: denies, 503 over HTTP)"),
    SVC__OPT(svc_ratelimit_opts, max_keys, UINT, .i = DEFAULT_MAX_KEYS, 64, MAX_MAX_KEYS,
             "memory store: most keys held (then the soonest to expire is evicted)"),
    SVC__OPT(svc_ratelimit_opts, no_metrics, BOOL, .i = 0, 0, 0, "register no metrics"),
};
const svc__opt_table svc__ratelimit_opts_table = SVC__OPT_TABLE("ratelimit", ratelimit_spec);

void svc_ratelimit_opts_default(svc_ratelimit_opts *opts)
{
    if (opts)
        svc__opts_default(&svc__ratelimit_opts_table, opts, sizeof *opts);
}

/* ---- lifecycle -------------------------------------------------------------- */

static svc_status open_store(const svc_ratelimit_opts *o, svc__store *bound,
                             svc__rl_store **store)
{
    svc_status st = svc__store_bind(bound, &(svc__store_spec){
                                               .module = "ratelimit",
                                               .kinds = SVC__STORE_MEMORY | SVC__STORE_REDIS,
                                               .url = o->url,
                                               .redis = o->redis,
                                               .pool_size = o->pool_size,
                                               .clock = o->clock,
                                               .metrics = o->metrics,
                                               .no_metrics = o->no_metrics,
                                               .timeout_ms = o->store_timeout_ms,
                                           });
    if (st != SVC_OK)
        return st;
    char why[256] = "";
    if (bound->kind == SVC_STORE_MEMORY)
        st = svc__rl_store_memory_new(store, o->max_keys ? o->max_keys : DEFAULT_MAX_KEYS);
    else
        st = svc__rl_store_redis_new(store, bound->redis, why, sizeof why);
    if (st != SVC_OK) {
        svc__store_unbind(bound);
        return svc__fail_new(st, "ratelimit: store not opened: %s",
                             why[0] ? why : svc_strerror(st));
    }
    return SVC_OK;
}

static void register_metrics(svc_ratelimit *rl, const svc_ratelimit_opts *o)
{
    if (o->no_metrics)
        return;
    svc_metrics *m = o->metrics ? o->metrics : svc_metrics_default();
    static const char *const dl[] = {"policy", "result", NULL};
    static const char *const el[] = {"store", NULL};
    if (svc_metrics_counter(m, "ratelimit_decisions_total",
                            "Rate limit decisions by policy and result", dl,
                            &rl->m_decisions) != SVC_OK ||
        svc_metrics_counter(m, "ratelimit_store_errors_total", "Failed rate limit store calls",
                            el, &rl->m_store_errors) != SVC_OK) {
        svc_logf(SVC_LOG_WARN, "rate limit metrics not registered: %s", svc_metrics_errmsg(m));
        rl->m_decisions = NULL;
        rl->m_store_errors = NULL;
        return;
    }
    rl->metrics = svc_metrics_ref(m); /* the counters live as long as it */
}

svc_status svc_ratelimit_new(svc_ratelimit **out, const svc_ratelimit_opts *opts)
{
    if (!out)
        return svc__fail_new(SVC_EINVAL, "ratelimit: out is NULL");
    *out = NULL;
    svc_ratelimit_opts o;
    svc__opts_hold hold;
    svc_status st =
        svc__opts_resolve(&svc__ratelimit_opts_table, opts, NULL, &o, sizeof o, &hold);
    if (st != SVC_OK)
        return st;
    if (o.store_timeout_ms < 0)
        st = svc__fail_new(SVC_EINVAL, "ratelimit: store_timeout_ms must not be negative");
    else if (o.max_keys && o.max_keys < 64)
        st = svc__fail_new(SVC_EINVAL, "ratelimit: max_keys must be at least 64, got %zu",
                           o.max_keys);
    if (st != SVC_OK) {
        svc__opts_release(&hold);
        return st;
    }
    if (!o.store_timeout_ms)
        o.store_timeout_ms = 500;
    svc__store bound;
    svc__rl_store *store = NULL;
    st = open_store(&o, &bound, &store);
    svc__opts_release(&hold); /* url is no longer needed */
    if (st != SVC_OK)
        return st;

    svc_ratelimit *rl = svc__rl_calloc_aligned(sizeof *rl);
    svc__rl_table *t = rl ? svc__calloc(1, sizeof *t) : NULL;
    if (!t || !svc__rl_table_index(t)) {
        svc__rl_table_free(t);
        svc__rl_free_aligned(rl);
        store->ops->destroy(store);
        svc__store_unbind(&bound);
        return svc__fail_new(SVC_ENOMEM, "ratelimit: out of memory");
    }
    rl->store = store;
    rl->bound = bound;
    svc__ref_init(&rl->ref);
    atomic_init(&rl->table, t);
    svc__rl_readers_init(&rl->readers);
    atomic_init(&rl->store_errors, 0);
    atomic_init(&rl->last_log_ns, INT64_MIN);
    atomic_init(&rl->gen, 0);
    rl->id = atomic_fetch_add(&next_rl_id, 1);
    pthread_mutex_init(&rl->wmu, NULL);
    svc__err_init(&rl->err);
    rl->clock = o.clock;
    rl->fail_open = o.fail_open ? 1 : 0;
    register_metrics(rl, &o);
    svc__fail_new_clear();
    *out = rl;
    return SVC_OK;
}

svc_ratelimit *svc_ratelimit_ref(svc_ratelimit *rl)
{
    if (rl)
        svc__ref_take(&rl->ref);
    return rl;
}

void svc_ratelimit_free(svc_ratelimit *rl)
{
    if (!rl || !svc__ref_drop(&rl->ref))
        return;
    svc__rl_table_free(atomic_load(&rl->table));
    rl->store->ops->destroy(rl->store);
    svc__store_unbind(&rl->bound);
#if SVC__RL_HAVE_TZ
    for (size_t i = 0; i < rl->nzones; i++)
        svc_tz_free(rl->zones[i]);
#endif
    svc_free(rl->zones);
    pthread_mutex_destroy(&rl->wmu);
    svc__err_destroy(&rl->err);
    svc_metrics_free(rl->metrics);
    svc__rl_free_aligned(rl);
}

struct svc_redis *svc__ratelimit_redis(const svc_ratelimit *rl)
{
    return rl->bound.redis;
}

int svc__ratelimit_fail_open(const svc_ratelimit *rl)
{
    return rl->fail_open;
}

const char *svc_ratelimit_backend_name(const svc_ratelimit *rl)
{
    return rl ? svc_store_kind_name(rl->bound.kind) : "";
}

void svc__ratelimit_set_store(svc_ratelimit *rl, svc__rl_store *s)
{
    rl->store->ops->destroy(rl->store);
    rl->store = s;
}

size_t svc__ratelimit_zone_count(svc_ratelimit *rl)
{
    pthread_mutex_lock(&rl->wmu);
    size_t n = rl->nzones;
    pthread_mutex_unlock(&rl->wmu);
    return n;
}

const char *svc_ratelimit_errmsg(svc_ratelimit *rl)
{
    return rl ? svc__err_get(&rl->err) : "";
}

/* ---- introspection ------------------------------------------------------------ */

svc_status svc_ratelimit_stats_get(svc_ratelimit *rl, svc_ratelimit_stats *out)
{
    svc__rl_store_stats ss;
    rl->store->ops->stats(rl->store, &ss);
    memset(out, 0, sizeof *out);
    out->keys = ss.keys;
    out->max_keys = ss.max_keys;
    out->evictions = ss.evictions;
    out->expired = ss.expired;
    out->store_errors = atomic_load(&rl->store_errors);
    return SVC_OK;
}
