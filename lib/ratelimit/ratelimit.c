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

#include "core/parse.h"
#include "rl.h"

#if SVC__RL_HAVE_TZ
#include "svcinfra/tz.h"
#endif

#define DEFAULT_MAX_KEYS ((size_t)1 << 18)

static _Atomic uint64_t next_rl_id = 1;

/* ---- lifecycle -------------------------------------------------------------- */

void svc_ratelimit_opts_default(svc_ratelimit_opts *opts)
{
    if (!opts)
        return;
    memset(opts, 0, sizeof *opts);
    opts->store_url = "memory:";
    opts->fail_open = 1;
    opts->max_keys = DEFAULT_MAX_KEYS;
    const char *v = svc__getenv("SVC_RATELIMIT_STORE");
    if (v)
        opts->store_url = v;
    int b;
    v = svc__getenv("SVC_RATELIMIT_FAIL_OPEN");
    if (v && svc__parse_bool(v, &b) == SVC_OK)
        opts->fail_open = b;
    int64_t n;
    v = svc__getenv("SVC_RATELIMIT_MAX_KEYS");
    if (v && svc__parse_int(v, &n) == SVC_OK && n >= 64 && (uint64_t)n <= SIZE_MAX / 2)
        opts->max_keys = (size_t)n;
}

svc_status svc_ratelimit_new(svc_ratelimit **out, const svc_ratelimit_opts *opts)
{
    *out = NULL;
    svc_ratelimit_opts def;
    if (!opts) {
        svc_ratelimit_opts_default(&def);
        opts = &def;
    }
    const char *url = opts->store_url ? opts->store_url : "memory:";
    char why[256] = "";
    svc_store_kind kind = SVC_STORE_REDIS;
    svc_status st = SVC_OK;
    if (!opts->redis) {
        svc_store_url u;
        st = svc_store_url_parse(url, &u, why, sizeof why);
        kind = u.kind;
        svc_store_url_clear(&u);
        if (st != SVC_OK) {
            svc_logf(SVC_LOG_ERROR, "rate limit store URL refused: %s", why);
            return st;
        }
    }
    if (opts->store_timeout_ms < 0) {
        svc_logf(SVC_LOG_ERROR, "rate limit store_timeout_ms must not be negative");
        return SVC_EINVAL;
    }
    svc__rl_store *store = NULL;
    if (kind == SVC_STORE_MEMORY) {
        st = svc__rl_store_memory_new(&store, opts->max_keys ? opts->max_keys : DEFAULT_MAX_KEYS);
    } else if (kind == SVC_STORE_REDIS) {
        int64_t to = opts->store_timeout_ms ? opts->store_timeout_ms : 500;
        st = svc__rl_store_redis_new(&store, opts->redis, url, to, opts->metrics, why,
                                     sizeof why);
    } else {
        snprintf(why, sizeof why, "the %s store is not available for rate limits",
                 svc_store_kind_name(kind));
        st = SVC_ENOTSUP;
    }
    if (st != SVC_OK) {
        svc_logf(SVC_LOG_ERROR, "rate limit store not opened: %s",
                 why[0] ? why : svc_strerror(st));
        return st;
    }

    svc_ratelimit *rl = svc__rl_calloc_aligned(sizeof *rl);
    svc__rl_table *t = rl ? svc__calloc(1, sizeof *t) : NULL;
    if (!t || !svc__rl_table_index(t)) {
        svc__rl_table_free(t);
        svc__rl_free_aligned(rl);
        store->ops->destroy(store);
        return SVC_ENOMEM;
    }
    rl->store = store;
    atomic_init(&rl->table, t);
    svc__rl_readers_init(&rl->readers);
    atomic_init(&rl->store_errors, 0);
    atomic_init(&rl->last_log_ns, INT64_MIN);
    atomic_init(&rl->gen, 0);
    rl->id = atomic_fetch_add(&next_rl_id, 1);
    pthread_mutex_init(&rl->wmu, NULL);
    svc__err_init(&rl->err);
    rl->clock = opts->clock;
    rl->fail_open = opts->fail_open ? 1 : 0;
    if (opts->metrics) {
        static const char *const dl[] = {"policy", "result", NULL};
        static const char *const el[] = {"store", NULL};
        if (svc_metrics_counter(opts->metrics, "ratelimit_decisions_total",
                                "Rate limit decisions by policy and result", dl,
                                &rl->m_decisions) != SVC_OK ||
            svc_metrics_counter(opts->metrics, "ratelimit_store_errors_total",
                                "Failed rate limit store calls", el,
                                &rl->m_store_errors) != SVC_OK) {
            svc_logf(SVC_LOG_WARN, "rate limit metrics not registered: %s",
                     svc_metrics_errmsg(opts->metrics));
            rl->m_decisions = NULL;
            rl->m_store_errors = NULL;
        }
    }
    *out = rl;
    return SVC_OK;
}

void svc_ratelimit_free(svc_ratelimit *rl)
{
    if (!rl)
        return;
    svc__rl_table_free(atomic_load(&rl->table));
    rl->store->ops->destroy(rl->store);
#if SVC__RL_HAVE_TZ
    for (size_t i = 0; i < rl->nzones; i++)
        svc_tz_free(rl->zones[i]);
#endif
    svc_free(rl->zones);
    pthread_mutex_destroy(&rl->wmu);
    svc__err_destroy(&rl->err);
    svc__rl_free_aligned(rl);
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
