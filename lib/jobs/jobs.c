/*
 * lib/jobs/jobs.c - the queue handle: options, validation, enqueue, the
 * handler registry, backoff, metrics and the administrative calls, which
 * forward to the store of the handle's URL.
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

#include "jobs_internal.h"

static const char *const state_names[SVC_JOB_STATE_COUNT] = {
    NULL, "available", "scheduled", "running", "retryable", "completed", "discarded", "cancelled",
};

const char *svc_job_state_name(svc_job_state s)
{
    if ((int)s <= 0 || (int)s >= SVC_JOB_STATE_COUNT)
        return "unknown";
    return state_names[s];
}

svc_status svc_job_state_parse(const char *name, svc_job_state *out)
{
    for (int i = 1; i < SVC_JOB_STATE_COUNT; i++)
        if (strcasecmp(name, state_names[i]) == 0) {
            *out = (svc_job_state)i;
            return SVC_OK;
        }
    if (strcasecmp(name, "dead") == 0) {
        *out = SVC_JOB_DISCARDED;
        return SVC_OK;
    }
    return SVC_EINVAL;
}

static const svc__opt jobs_spec[] = {
    SVC__OPT(svc_jobs_opts, url, STRING, .s = "memory:", 0, 0,
             "store: memory:, redis://... or postgres://..."),
    SVC__OPT(svc_jobs_opts, pool_size, UINT, .i = 4, 0, 1024,
             "connections of the pool made from url; 0: the pool's default"),
    SVC__OPT(svc_jobs_opts, migrate, BOOL, .i = 1, 0, 0,
             "apply the jobs migrations (postgres) or ping (redis) in svc_jobs_new"),
    SVC__OPT(svc_jobs_opts, default_max_attempts, INT, .i = 20, 1, 1000,
             "attempts of a job that sets none"),
    SVC__OPT_K(svc_jobs_opts, backoff_base_ms, "backoff_base", MS, .i = 1000, 0, 0,
               "retry delay base: delay(n) = base * n^4"),
    SVC__OPT_K(svc_jobs_opts, backoff_max_ms, "backoff_max", MS, .i = INT64_C(86400000), 0, 0,
               "cap of one retry delay"),
    SVC__OPT(svc_jobs_opts, backoff_jitter, DOUBLE, .d = 0.10, 0, 0,
             "+/- fraction of a retry delay (0 .. 0.5)"),
    SVC__OPT_K(svc_jobs_opts, retention_completed_ms, "retention_completed", MS,
               .i = INT64_C(86400000), 0, 0, "completed jobs are pruned after; 0 keeps them"),
    SVC__OPT_K(svc_jobs_opts, retention_discarded_ms, "retention_discarded", MS,
               .i = INT64_C(604800000), 0, 0,
               "discarded and cancelled jobs are pruned after; 0 keeps them"),
    SVC__OPT(svc_jobs_opts, memory_max_jobs, UINT, .i = 1000000, 1, INT64_C(1000000000),
             "most jobs the memory: store holds"),
    SVC__OPT(svc_jobs_opts, no_metrics, BOOL, .i = 0, 0, 0, "register no metrics"),
};
const svc__opt_table svc__jobs_opts_table = SVC__OPT_TABLE("jobs", jobs_spec);

void svc_jobs_opts_default(svc_jobs_opts *o)
{
    svc__opts_default(&svc__jobs_opts_table, o, sizeof *o);
}

void svc_job_opts_default(svc_job_opts *o) { memset(o, 0, sizeof *o); }

__attribute__((noinline)) bool svc__jobs_name_ok(const char *s)
{
    if (!s || !*s)
        return false;
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (!(isalnum(c) || c == '_' || c == '-' || c == '.' || c == ':'))
            return false;
        if (n >= SVC_JOBS_MAX_NAME)
            return false;
    }
    return true;
}

static svc_status check_opts(const svc_jobs_opts *o)
{
    if (o->default_max_attempts < 1 || o->default_max_attempts > 1000)
        return svc__fail_new(SVC_EINVAL, "jobs: default_max_attempts %d is outside 1..1000",
                             o->default_max_attempts);
    if (o->backoff_base_ms < 0 || o->backoff_max_ms < 0 || !(o->backoff_jitter >= 0.0) ||
        o->backoff_jitter > 0.5)
        return svc__fail_new(SVC_EINVAL, "jobs: backoff_base_ms and backoff_max_ms must be >= 0, "
                                         "backoff_jitter 0..0.5");
    if (o->retention_completed_ms < 0 || o->retention_discarded_ms < 0)
        return svc__fail_new(SVC_EINVAL, "jobs: retention ages must be >= 0");
    if (o->memory_max_jobs == 0)
        return svc__fail_new(SVC_EINVAL, "jobs: memory_max_jobs must be > 0");
    if (o->pool_size > 1024)
        return svc__fail_new(SVC_EINVAL, "jobs: pool_size %u is outside 0..1024", o->pool_size);
    return SVC_OK;
}

static void jobs_collect(svc_metrics *m, void *ctx);
static void jobs_destroy(svc_jobs *j);

static svc_status setup_metrics(svc_jobs *j, svc_metrics *m)
{
    static const char *const l_proc[] = {"queue", "kind", "result", NULL};
    static const char *const l_dur[] = {"queue", "kind", NULL};
    static const char *const l_q[] = {"queue", NULL};
    svc_status st;
    if ((st = svc_metrics_counter(m, "jobs_processed_total", "Jobs finished by workers, by result",
                                  l_proc, &j->m_processed)) ||
        (st = svc_metrics_histogram(m, "jobs_duration_seconds", "Handler run time of jobs",
                                    l_dur, NULL, 0, &j->m_duration)) ||
        (st = svc_metrics_gauge(m, "jobs_queue_depth", "Jobs due to run and not yet claimed",
                                l_q, &j->m_depth)) ||
        (st = svc_metrics_gauge(m, "jobs_dead_letters", "Discarded jobs kept as dead letters",
                                l_q, &j->m_dead)))
        return st;
    st = svc_metrics_add_collector(m, jobs_collect, j);
    if (st)
        return st;
    j->metrics = svc_metrics_ref(m);
    return SVC_OK;
}

svc_status svc__jobs_new_cfg(svc_jobs **out, const svc_jobs_opts *opts, const svc_config *cfg)
{
    if (!out)
        return svc__fail_new(SVC_EINVAL, "jobs: svc_jobs_new() needs an out pointer");
    *out = NULL;
    svc_jobs_opts o;
    svc__opts_hold hold;
    svc_status st = svc__opts_resolve(&svc__jobs_opts_table, opts, cfg, &o, sizeof o, &hold);
    if (st)
        return st;
    if ((st = check_opts(&o))) {
        svc__opts_release(&hold);
        return st;
    }
    svc_jobs *j = svc__calloc(1, sizeof *j);
    if (!j) {
        svc__opts_release(&hold);
        return svc__fail_new(SVC_ENOMEM, "jobs: out of memory");
    }
    svc__ref_init(&j->ref);
    svc__err_init(&j->err);
    pthread_mutex_init(&j->mu, NULL);
    pthread_mutex_init(&j->subs.mu, NULL);
    pthread_mutex_init(&j->gauge_mu, NULL);
    j->opts = o;
    j->opts.url = NULL;
    j->opts.pg = NULL;
    j->opts.redis = NULL;
    j->opts.clock = NULL;
    j->opts.metrics = NULL;
    j->clock = svc__clock_or_system(o.clock);
    j->rng = (uint64_t)svc_clock_mono_ns(NULL) ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)j;
    st = svc__store_bind(&j->bind, &(svc__store_spec){
                                       .module = "jobs",
                                       .kinds = SVC__STORE_MEMORY | SVC__STORE_REDIS |
                                                SVC__STORE_POSTGRES,
                                       .url = o.url,
                                       .pg = o.pg,
                                       .redis = o.redis,
                                       .pool_size = o.pool_size,
                                       .clock = o.clock,
                                       .metrics = o.metrics,
                                       .no_metrics = o.no_metrics,
                                       .migrate = o.migrate ? "jobs" : NULL,
                                   });
    if (st)
        goto fail;
    j->kind = j->bind.kind;
    j->pg = j->bind.pg;
    /* the LISTEN connection of workers needs a URL: the one given, when it
     * names the database of the pool (not with a pool given alone) */
    if (j->kind == SVC_STORE_POSTGRES && o.url && strncmp(o.url, "postgres", 8) == 0 &&
        !(j->url = svc__strdup(o.url))) {
        st = svc__fail_new(SVC_ENOMEM, "jobs: out of memory");
        goto fail;
    }
    if (j->kind == SVC_STORE_MEMORY) {
        st = svc__jobs_store_memory_new(j, &j->store);
    } else if (j->kind == SVC_STORE_REDIS) {
#if SVC_HAVE_REDIS
        st = svc__jobs_store_redis_new(j, j->bind.redis, o.migrate, &j->store);
#else
        st = svc__fail_new(SVC_ENOTSUP, "jobs: this libsvcinfra was built without redis support");
#endif
    } else {
#if SVC_HAVE_POSTGRES
        st = svc__jobs_store_pg_new(j, &j->store);
#else
        st = svc__fail_new(SVC_ENOTSUP,
                           "jobs: this libsvcinfra was built without postgres support");
#endif
    }
    if (st) {
        if (st == SVC_ENOMEM)
            svc__fail_new(st, "jobs: out of memory");
        goto fail;
    }
    if (!o.no_metrics) {
        svc_metrics *m = o.metrics ? o.metrics : svc_metrics_default();
        if (m && (st = setup_metrics(j, m))) {
            svc__fail_new(st, "jobs: metrics: %s", svc_metrics_errmsg(m));
            goto fail;
        }
    }
    svc__opts_release(&hold);
    svc__fail_new_clear();
    *out = j;
    return SVC_OK;
fail:
    svc__opts_release(&hold);
    jobs_destroy(j);
    return st;
}

svc_status svc_jobs_new(svc_jobs **out, const svc_jobs_opts *opts)
{
    return svc__jobs_new_cfg(out, opts, NULL);
}

static void jobs_destroy(svc_jobs *j)
{
    if (j->metrics)
        svc_metrics_remove_collector(j->metrics, jobs_collect, j);
    if (j->store)
        j->store->vt->free(j->store);
    svc__store_unbind(&j->bind);
    for (size_t i = 0; i < j->nhandlers; i++)
        svc_free(j->handlers[i].kind);
    svc_free(j->handlers);
    svc_free(j->url);
    for (size_t i = 0; i < j->gauge_nq; i++)
        svc_free(j->gauge_q[i]);
    svc_free(j->gauge_q);
    pthread_mutex_destroy(&j->gauge_mu);
    pthread_mutex_destroy(&j->subs.mu);
    pthread_mutex_destroy(&j->mu);
    svc__err_destroy(&j->err);
    svc_metrics_free(j->metrics); /* the queue's reference */
    svc_free(j);
}

svc_jobs *svc_jobs_ref(svc_jobs *j)
{
    if (j)
        svc__ref_take(&j->ref);
    return j;
}

void svc_jobs_free(svc_jobs *j)
{
    if (j && svc__ref_drop(&j->ref))
        jobs_destroy(j);
}

const char *svc_jobs_errmsg(svc_jobs *j) { return j ? svc__err_get(&j->err) : ""; }

const char *svc_jobs_backend_name(const svc_jobs *j) { return j->store->vt->name; }

/* ---- enqueue ------------------------------------------------------------------- */

static bool json_ok(const char *s)
{
    json_error_t e;
    json_t *v = json_loads(s, JSON_DECODE_ANY, &e);
    if (!v)
        return false;
    json_decref(v);
    return true;
}

svc_status svc__jobs_resolve(const svc_jobs_opts *defaults, svc__err *err, const char *kind,
                             const char *payload, const svc_job_opts *o, svc__jobs_enq *out)
{
    svc_jobs_opts dflt;
    if (!defaults) {
        svc_jobs_opts_default(&dflt);
        defaults = &dflt;
    }
    static const svc_job_opts zero;
    if (!o)
        o = &zero;
    memset(out, 0, sizeof *out);
    if (!svc__jobs_name_ok(kind))
        return svc__err_set(err, SVC_EINVAL,
                            "jobs: kind '%.64s' must be 1-%d of [A-Za-z0-9_.:-]",
                            kind ? kind : "(null)", SVC_JOBS_MAX_NAME);
    const char *queue = o->queue ? o->queue : "default";
    if (!svc__jobs_name_ok(queue))
        return svc__err_set(err, SVC_EINVAL, "jobs: queue '%.64s' must be 1-%d of [A-Za-z0-9_.:-]",
                            queue, SVC_JOBS_MAX_NAME);
    if (!payload)
        payload = "{}";
    if (!json_ok(payload))
        return svc__err_set(err, SVC_EINVAL, "jobs: payload of kind '%s' is not valid JSON", kind);
    if (o->priority < -1000 || o->priority > 1000)
        return svc__err_set(err, SVC_EINVAL, "jobs: priority %d is outside -1000..1000",
                            o->priority);
    int max_attempts = o->max_attempts ? o->max_attempts : defaults->default_max_attempts;
    if (max_attempts < 1 || max_attempts > 1000)
        return svc__err_set(err, SVC_EINVAL, "jobs: max_attempts %d is outside 1..1000",
                            o->max_attempts);
    if (o->run_at_ms < 0 || o->delay_ms < 0 || o->unique_window_ms < 0 ||
        o->delay_ms > INT64_C(315360000000) || o->run_at_ms > INT64_C(253402300799000))
        return svc__err_set(err, SVC_EINVAL,
                            "jobs: run_at_ms, delay_ms and unique_window_ms must be >= 0 "
                            "(and before year 10000)");
    if (o->unique_key && (!*o->unique_key || strlen(o->unique_key) > SVC_JOBS_MAX_UNIQUE_KEY))
        return svc__err_set(err, SVC_EINVAL, "jobs: unique_key must be 1-%d bytes",
                            SVC_JOBS_MAX_UNIQUE_KEY);
    out->queue = queue;
    out->kind = kind;
    out->payload = payload;
    out->priority = o->priority;
    out->run_at_ms = o->run_at_ms;
    out->delay_ms = o->run_at_ms ? 0 : o->delay_ms;
    out->max_attempts = max_attempts;
    out->unique_key = o->unique_key;
    out->unique_window_ms = o->unique_window_ms;
    return SVC_OK;
}

/* `cron_name` (NULL: none) guards every item with the tick `cron_tick`. */
static svc_status enqueue_specs(svc_jobs *j, svc_pg_tx *tx, svc__err *err,
                                const svc_jobs_opts *dflt, svc_job_spec *specs, size_t n,
                                const char *cron_name, int64_t cron_tick)
{
    if (n == 0 || n > SVC_JOBS_MAX_BATCH)
        return svc__err_set(err, SVC_EINVAL, "jobs: a batch holds 1..%d jobs", SVC_JOBS_MAX_BATCH);
    svc__jobs_enq *items = svc__calloc(n, sizeof *items);
    if (!items)
        return SVC_ENOMEM;
    svc_status st = SVC_OK;
    for (size_t i = 0; i < n && !st; i++) {
        st = svc__jobs_resolve(dflt, err, specs[i].kind, specs[i].payload, &specs[i].opts,
                               &items[i]);
        if (st && n > 1) {
            char m[512];
            snprintf(m, sizeof m, "%s", svc__err_get(err));
            svc__err_set(err, st, "%s (job %zu of the batch)", m, i);
        }
        items[i].cron_name = cron_name;
        items[i].cron_tick = cron_tick;
    }
    if (!st) {
        if (j) {
            st = j->store->vt->enqueue(j->store, tx, items, n);
        } else {
#if SVC_HAVE_POSTGRES
            st = svc__jobs_pg_insert(svc_pg_tx_conn(tx), err, items, n);
#else
            st = SVC_ENOTSUP;
#endif
        }
    }
    if (!st && j && !tx)
        svc__jobs_wake_local(j);
    if (!st)
        for (size_t i = 0; i < n; i++) {
            specs[i].id = items[i].id;
            specs[i].duplicate = items[i].duplicate;
        }
    svc_free(items);
    return st;
}

svc_status svc_jobs_enqueue_batch(svc_jobs *j, svc_job_spec *specs, size_t n)
{
    return enqueue_specs(j, NULL, &j->err, &j->opts, specs, n, NULL, 0);
}

svc_status svc__jobs_enqueue_cron(svc_jobs *j, svc_job_spec *spec, const char *name,
                                  int64_t tick_s)
{
    return enqueue_specs(j, NULL, &j->err, &j->opts, spec, 1, name, tick_s);
}

svc_status svc_jobs_enqueue(svc_jobs *j, const char *kind, const char *payload,
                            const svc_job_opts *opts, int64_t *id)
{
    svc_job_spec s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    s.payload = payload;
    if (opts)
        s.opts = *opts;
    svc_status st = enqueue_specs(j, NULL, &j->err, &j->opts, &s, 1, NULL, 0);
    if (!st && id)
        *id = s.id;
    return st;
}

#if SVC_HAVE_POSTGRES
/* A caller without a handle still gets a detail for its failure: it is
 * logged at error level since there is no handle to read it from. */
static svc__err tx_err = {PTHREAD_MUTEX_INITIALIZER, {0}};
#endif

svc_status svc_jobs_enqueue_batch_tx(svc_jobs *j, svc_pg_tx *tx, svc_job_spec *specs, size_t n)
{
#if SVC_HAVE_POSTGRES
    if (j && j->kind != SVC_STORE_POSTGRES)
        return svc__err_set(&j->err, SVC_EINVAL,
                            "jobs: enqueue in a PostgreSQL transaction needs a postgres:// handle");
    if (!svc_pg_tx_conn(tx))
        return SVC_ECLOSED;
    return enqueue_specs(j, tx, j ? &j->err : &tx_err, j ? &j->opts : NULL, specs, n, NULL, 0);
#else
    SVC__UNUSED(j);
    SVC__UNUSED(n);
    return SVC_ENOTSUP;
#endif
}

svc_status svc_jobs_enqueue_tx(svc_jobs *j, svc_pg_tx *tx, const char *kind, const char *payload,
                               const svc_job_opts *opts, int64_t *id)
{
    svc_job_spec s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    s.payload = payload;
    if (opts)
        s.opts = *opts;
    svc_status st = svc_jobs_enqueue_batch_tx(j, tx, &s, 1);
    if (!st && id)
        *id = s.id;
    return st;
}

/* ---- handlers -------------------------------------------------------------------- */

svc_status svc_jobs_register(svc_jobs *j, const char *kind, svc_job_handler_fn fn, void *ud,
                             int64_t timeout_ms)
{
    if (strcmp(kind, "*") != 0 && !svc__jobs_name_ok(kind))
        return svc__err_set(&j->err, SVC_EINVAL, "jobs: bad handler kind '%.64s'", kind);
    if (timeout_ms < 0 || timeout_ms > SVC_JOBS_MAX_DURATION_MS)
        return svc__err_set(&j->err, SVC_EINVAL,
                            "jobs: handler timeout must be 0..%lld ms (30 days)",
                            (long long)SVC_JOBS_MAX_DURATION_MS);
    pthread_mutex_lock(&j->mu);
    svc_status st = SVC_OK;
    if (j->workers > 0) {
        st = SVC_EBUSY;
        goto out;
    }
    for (size_t i = 0; i < j->nhandlers; i++)
        if (strcmp(j->handlers[i].kind, kind) == 0) {
            j->handlers[i].fn = fn;
            j->handlers[i].ud = ud;
            j->handlers[i].timeout_ms = timeout_ms;
            goto out;
        }
    svc__jobs_handler *h = svc_realloc(j->handlers, (j->nhandlers + 1) * sizeof *h);
    if (!h) {
        st = SVC_ENOMEM;
        goto out;
    }
    j->handlers = h;
    h[j->nhandlers].kind = svc__strdup(kind);
    if (!h[j->nhandlers].kind) {
        st = SVC_ENOMEM;
        goto out;
    }
    h[j->nhandlers].fn = fn;
    h[j->nhandlers].ud = ud;
    h[j->nhandlers].timeout_ms = timeout_ms;
    j->nhandlers++;
out:
    pthread_mutex_unlock(&j->mu);
    if (st == SVC_EBUSY)
        return svc__err_set(&j->err, st, "jobs: register handlers before starting workers");
    return st;
}

bool svc__jobs_find_handler(svc_jobs *j, const char *kind, svc__jobs_handler *out)
{
    /* Handlers only change while no worker runs, so workers read without
     * the lock. */
    const svc__jobs_handler *any = NULL;
    for (size_t i = 0; i < j->nhandlers; i++) {
        if (strcmp(j->handlers[i].kind, kind) == 0) {
            *out = j->handlers[i];
            return true;
        }
        if (strcmp(j->handlers[i].kind, "*") == 0)
            any = &j->handlers[i];
    }
    if (any)
        *out = *any;
    return any != NULL;
}

void svc__jobs_workers_add(svc_jobs *j, int delta)
{
    pthread_mutex_lock(&j->mu);
    j->workers += delta;
    pthread_mutex_unlock(&j->mu);
}

/* ---- backoff ----------------------------------------------------------------------- */

int64_t svc__jobs_backoff_ms(svc_jobs *j, int attempt)
{
    if (attempt < 1)
        attempt = 1;
    double a = (double)attempt;
    double d = (double)j->opts.backoff_base_ms * a * a * a * a;
    pthread_mutex_lock(&j->mu);
    /* xorshift64*: jitter needs spread, not secrecy */
    uint64_t x = j->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    j->rng = x;
    pthread_mutex_unlock(&j->mu);
    double u = (double)((x * UINT64_C(2685821657736338717)) >> 11) / 9007199254740992.0; /* [0,1) */
    d *= 1.0 + j->opts.backoff_jitter * (2.0 * u - 1.0);
    /* the cap after the jitter: backoff_max_ms is the longest delay; and
     * no delay beyond SVC_JOBS_MAX_DURATION_MS, whatever the cap */
    if (d > (double)j->opts.backoff_max_ms)
        d = (double)j->opts.backoff_max_ms;
    if (d > (double)SVC_JOBS_MAX_DURATION_MS)
        d = (double)SVC_JOBS_MAX_DURATION_MS;
    if (d < 0)
        d = 0;
    return (int64_t)llround(d);
}

/* ---- wake-ups ------------------------------------------------------------------------ */

int svc__jobs_subscribe(svc_jobs *j, int fd)
{
    pthread_mutex_lock(&j->subs.mu);
    int ok = j->subs.n < SVC__ARRAY_LEN(j->subs.fds);
    if (ok)
        j->subs.fds[j->subs.n++] = fd;
    pthread_mutex_unlock(&j->subs.mu);
    return ok;
}

void svc__jobs_unsubscribe(svc_jobs *j, int fd)
{
    pthread_mutex_lock(&j->subs.mu);
    for (size_t i = 0; i < j->subs.n; i++)
        if (j->subs.fds[i] == fd) {
            j->subs.fds[i] = j->subs.fds[--j->subs.n];
            break;
        }
    pthread_mutex_unlock(&j->subs.mu);
}

void svc__jobs_wake_local(svc_jobs *j)
{
    pthread_mutex_lock(&j->subs.mu);
    for (size_t i = 0; i < j->subs.n; i++) {
        uint64_t one = 1;
        ssize_t r = write(j->subs.fds[i], &one, sizeof one);
        SVC__UNUSED(r); /* a full counter already means "wake up" */
    }
    pthread_mutex_unlock(&j->subs.mu);
}

/* ---- metrics ------------------------------------------------------------------------- */

void svc__jobs_observe(svc_jobs *j, const char *queue, const char *kind, const char *result,
                       double seconds)
{
    if (!j->metrics)
        return;
    const char *lp[] = {queue, kind, result};
    svc_counter_inc(j->m_processed, lp);
    if (seconds >= 0) {
        const char *ld[] = {queue, kind};
        svc_histogram_observe(j->m_duration, ld, seconds);
    }
}

/* One reading of the gauges: the queues the store reported, sorted. */
typedef struct gauge_round {
    svc_jobs *j;
    char **q;
    size_t n;
} gauge_round;

static void gauge_set(svc_jobs *j, const char *queue, double due, double dead)
{
    const char *l[] = {queue};
    svc_gauge_set(j->m_depth, l, due);
    svc_gauge_set(j->m_dead, l, dead);
}

/* Remembers `queue` in the round (bounded; a failed copy is not kept). */
static void round_add(gauge_round *g, const char *queue)
{
    if (g->n >= SVC__JOBS_GAUGE_QUEUES)
        return;
    char *c = svc__strdup(queue);
    if (c)
        g->q[g->n++] = c;
}

static void gauge_cb(void *ud, const char *queue, uint64_t due, uint64_t dead)
{
    gauge_round *g = ud;
    gauge_set(g->j, queue, (double)due, (double)dead);
    round_add(g, queue);
}

static int qname_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void jobs_collect(svc_metrics *m, void *ctx)
{
    SVC__UNUSED(m);
    svc_jobs *j = ctx;
    gauge_round g = {j, svc__calloc(SVC__JOBS_GAUGE_QUEUES, sizeof(char *)), 0};
    if (!g.q)
        return; /* the gauges keep their last values */
    pthread_mutex_lock(&j->gauge_mu);
    svc_status st = j->store->vt->gauges(j->store, gauge_cb, &g);
    qsort(g.q, g.n, sizeof *g.q, qname_cmp);
    /* Stores report only queues that have due jobs or dead letters, so a
     * queue reported last time and not now has none: its gauges go to 0.
     * After a failed read the queues not seen are kept for the next one,
     * at their last values. */
    size_t seen = g.n;
    for (size_t i = 0; i < j->gauge_nq; i++) {
        if (bsearch(&j->gauge_q[i], g.q, seen, sizeof *g.q, qname_cmp))
            continue;
        if (st == SVC_OK)
            gauge_set(j, j->gauge_q[i], 0, 0);
        else
            round_add(&g, j->gauge_q[i]);
    }
    qsort(g.q, g.n, sizeof *g.q, qname_cmp);
    for (size_t i = 0; i < j->gauge_nq; i++)
        svc_free(j->gauge_q[i]);
    svc_free(j->gauge_q);
    j->gauge_q = g.q;
    j->gauge_nq = g.n;
    pthread_mutex_unlock(&j->gauge_mu);
}

/* ---- administration ------------------------------------------------------------------- */

void svc__jobs_info_clear(svc_job_info *info)
{
    if (!info)
        return;
    svc_free(info->queue);
    svc_free(info->kind);
    svc_free(info->payload);
    svc_free(info->unique_key);
    svc_free(info->worker);
    for (size_t i = 0; i < info->nerrors; i++)
        svc_free(info->errors[i].message);
    svc_free(info->errors);
    memset(info, 0, sizeof *info);
}

void svc_job_info_clear(svc_job_info *info) { svc__jobs_info_clear(info); }

void svc_job_info_list_free(svc_job_info *list, size_t n)
{
    if (!list)
        return;
    for (size_t i = 0; i < n; i++)
        svc__jobs_info_clear(&list[i]);
    svc_free(list);
}

svc_status svc_jobs_get(svc_jobs *j, int64_t id, svc_job_info *out)
{
    memset(out, 0, sizeof *out);
    if (id <= 0)
        return svc__err_set(&j->err, SVC_ENOTFOUND, "jobs: no job %lld", (long long)id);
    return j->store->vt->get(j->store, id, out);
}

svc_status svc_jobs_list(svc_jobs *j, const svc_jobs_filter *f, svc_job_info **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    static const svc_jobs_filter none;
    if (!f)
        f = &none;
    if (f->limit > 10000 || f->after_id < 0 || (int)f->state < 0 ||
        (int)f->state >= SVC_JOB_STATE_COUNT)
        return svc__err_set(&j->err, SVC_EINVAL,
                            "jobs: list limit is at most 10000, after_id >= 0, state valid");
    return j->store->vt->list(j->store, f, f->limit ? f->limit : 100, out, n);
}

svc_status svc_jobs_cancel(svc_jobs *j, int64_t id)
{
    return j->store->vt->cancel(j->store, id);
}

svc_status svc_jobs_dlq_retry(svc_jobs *j, const char *queue, int64_t id, size_t *count)
{
    size_t c;
    if (id < 0)
        return SVC_EINVAL;
    svc_status st = j->store->vt->dlq_retry(j->store, queue, id, count ? count : &c);
    if (!st)
        svc__jobs_wake_local(j);
    return st;
}

svc_status svc_jobs_dlq_purge(svc_jobs *j, const char *queue, int64_t older_than_ms,
                              size_t *count)
{
    size_t c;
    if (older_than_ms < 0)
        return SVC_EINVAL;
    return j->store->vt->dlq_purge(j->store, queue, older_than_ms, count ? count : &c);
}

svc_status svc_jobs_prune(svc_jobs *j, size_t *count)
{
    size_t c;
    return j->store->vt->prune(j->store, j->opts.retention_completed_ms,
                               j->opts.retention_discarded_ms, count ? count : &c);
}

svc_status svc_jobs_rescue(svc_jobs *j, size_t *count)
{
    size_t c;
    return j->store->vt->rescue(j->store, count ? count : &c);
}

svc_status svc_jobs_stats_get(svc_jobs *j, const char *queue, svc_jobs_counts *out)
{
    memset(out, 0, sizeof *out);
    return j->store->vt->stats(j->store, queue, out);
}

void svc__jobs_row_clear(svc__jobs_row *r)
{
    svc_free(r->queue);
    svc_free(r->kind);
    svc_free(r->payload);
    memset(r, 0, sizeof *r);
}
