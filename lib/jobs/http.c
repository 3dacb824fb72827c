/*
 * lib/jobs/http.c - svc_add_jobs(): jobs inside a server process, through
 * the public svcinfra/http.h API only.
 *
 *   svc_add_jobs(app, NULL)
 *     ├─ queue handle from jobs.* (metrics in the app's registry),
 *     │  attached as "jobs" (svc_app_jobs())
 *     ├─ worker pool from jobs.worker.*, made now, started by svc_app_start()
 *     ├─ scheduler of jobs.schedules (when any), started with it
 *     └─ readiness check "jobs": the backend answers a ping
 *
 * Making the worker now and starting it in an svc_app_on_start() hook lets
 * code register handlers on svc_app_jobs(app) between the two; the hook's
 * stop runs after the last request of the shutdown, so no handler sees its
 * jobs' worker gone.
 */
#include <stdio.h>

#include "svcinfra_config.h"
#include "jobs_internal.h"

static const svc__opt http_spec[] = {
    SVC__OPT(svc_jobs_http_opts, start_worker, BOOL, .i = 1, 0, 0,
             "run a worker pool from svc_app_start() to the shutdown"),
    SVC__OPT(svc_jobs_http_opts, check_critical, BOOL, .i = 1, 0, 0,
             "/readyz fails when the backend does not answer"),
};
const svc__opt_table svc__jobs_http_opts_table = SVC__OPT_TABLE("jobs.http", http_spec);

void svc_jobs_http_opts_default(svc_jobs_http_opts *o)
{
    svc__opts_default(&svc__jobs_http_opts_table, o, sizeof *o);
}

#if SVC_HAVE_HTTP
#include "svcinfra/http.h"

typedef struct jobs_http {
    svc_jobs *jobs;             /* a reference */
    svc_jobs_worker *worker;    /* NULL without start_worker */
    svc_jobs_scheduler *sched;  /* NULL when none */
} jobs_http;

static void jobs_http_free(void *ud)
{
    jobs_http *h = ud;
    if (h->sched) {
        svc_jobs_scheduler_stop(h->sched);
        svc_jobs_scheduler_free(h->sched); /* the wiring's reference */
    }
    svc_jobs_worker_free(h->worker); /* stops it when it runs */
    svc_jobs_free(h->jobs);
    svc_free(h);
}

static svc_status jobs_http_start(void *ud)
{
    jobs_http *h = ud;
    svc_status st;
    if (h->worker && (st = svc_jobs_worker_start(h->worker))) {
        char why[400];
        snprintf(why, sizeof why, "%s", svc_jobs_errmsg(h->jobs));
        return svc__fail_new(st, "%s", why);
    }
    if (h->sched && (st = svc_jobs_scheduler_start(h->sched))) {
        char why[400];
        snprintf(why, sizeof why, "%s", svc_jobs_errmsg(h->jobs));
        if (h->worker)
            (void)svc_jobs_worker_stop(h->worker);
        return svc__fail_new(st, "%s", why);
    }
    return SVC_OK;
}

static void jobs_http_stop(void *ud)
{
    jobs_http *h = ud;
    if (h->sched)
        svc_jobs_scheduler_stop(h->sched);
    if (h->worker)
        (void)svc_jobs_worker_stop(h->worker);
}

/* Cheap on purpose (probes run often): a ping of the backend (SELECT 1 on
 * PostgreSQL, PING on Redis, nothing for memory:), no count over the
 * queue; the detail says what this instance's worker holds. */
static svc_status jobs_check(void *ud, char *detail, size_t len, int64_t timeout_ms)
{
    jobs_http *h = ud;
    svc__jobs_store *s = h->jobs->store;
    svc_status st = s->vt->ping(s, detail, len, timeout_ms);
    if (st)
        return st;
    if (h->worker) {
        svc_jobs_worker_stats ws;
        svc_jobs_worker_stats_get(h->worker, &ws);
        snprintf(detail, len, "%s; worker: %u in flight, %llu completed, %llu failed",
                 svc_jobs_backend_name(h->jobs), ws.in_flight,
                 (unsigned long long)ws.completed, (unsigned long long)ws.failed);
    } else {
        snprintf(detail, len, "%s", svc_jobs_backend_name(h->jobs));
    }
    return SVC_OK;
}

static void release_jobs(void *ptr) { svc_jobs_free(ptr); }

/* The queue handle of the app's configuration, with the app's registry and
 * clock (explicit options for svc_jobs_new: the configuration is read here). */
static svc_status jobs_from_config(svc_app *app, const svc_config *cfg, svc_jobs **out)
{
    svc_jobs_opts o;
    svc__opts_hold hold;
    svc_status st = svc__opts_resolve(&svc__jobs_opts_table, NULL, cfg, &o, sizeof o, &hold);
    if (st)
        return st;
    o.metrics = svc_app_metrics(app);
    o.clock = svc_app_clock(app);
    st = svc_jobs_new(out, &o);
    svc__opts_release(&hold);
    return st;
}

/* A scheduler of the configuration's schedules; *out stays NULL when it
 * names none. */
static svc_status sched_from_config(svc_jobs *j, const svc_config *cfg, svc_jobs_scheduler **out)
{
    *out = NULL;
    svc_jobs_scheduler *s;
    svc_status st = svc__jobs_scheduler_new_cfg(&s, j, NULL, cfg);
    if (st)
        return st;
    size_t added = 0;
    if ((st = svc_jobs_scheduler_load(s, cfg, "jobs", &added))) {
        char why[400];
        snprintf(why, sizeof why, "%s", svc_jobs_errmsg(j));
        svc_jobs_scheduler_free(s);
        return svc__fail_new(st, "%s", why);
    }
    if (added == 0)
        svc_jobs_scheduler_free(s);
    else
        *out = s;
    return SVC_OK;
}

/* An app call failed: its detail, as the wiring's failure. */
static svc_status app_failed(svc_app *app, svc_status st)
{
    char why[400];
    snprintf(why, sizeof why, "%s", svc_app_errmsg(app));
    return svc__fail_new(st, "jobs: %s", why[0] ? why : svc_strerror(st));
}

svc_status svc_add_jobs(struct svc_app *app, const svc_jobs_http_opts *opts)
{
    if (!app)
        return svc__fail_new(SVC_EINVAL, "jobs: svc_add_jobs: app is NULL");
    if (svc_app_port(app)) /* serving: nothing built only to be refused */
        return svc__fail_new(SVC_EBUSY, "jobs: svc_add_jobs: the app is started");
    if (svc_app_attached(app, "jobs"))
        return svc__fail_new(SVC_EEXIST, "jobs: svc_add_jobs() was called before on this app");
    const svc_config *cfg = svc_app_config(app);
    svc_jobs_http_opts o;
    svc__opts_hold hold;
    svc_status st = svc__opts_resolve(&svc__jobs_http_opts_table, opts, cfg, &o, sizeof o, &hold);
    svc__opts_release(&hold);
    if (st)
        return st;
    jobs_http *h = svc__calloc(1, sizeof *h);
    if (!h)
        return svc__fail_new(SVC_ENOMEM, "jobs: out of memory");
    if (o.jobs)
        h->jobs = svc_jobs_ref(o.jobs);
    else if ((st = jobs_from_config(app, cfg, &h->jobs)))
        goto fail;
    if (o.start_worker) {
        /* explicit options: their worker options (NULL: the defaults) */
        svc_jobs_worker_opts dflt;
        const svc_jobs_worker_opts *wo = o.worker;
        if (opts && !wo) {
            svc_jobs_worker_opts_default(&dflt);
            wo = &dflt;
        }
        if ((st = svc__jobs_worker_new_cfg(&h->worker, h->jobs, wo, cfg)))
            goto fail;
    }
    if (opts)
        h->sched = svc_jobs_scheduler_ref(o.scheduler);
    else if ((st = sched_from_config(h->jobs, cfg, &h->sched)))
        goto fail;
    if ((st = svc_app_on_free(app, jobs_http_free, h))) {
        st = app_failed(app, st);
        goto fail;
    }
    /* from here on the app frees `h` */
    if ((st = svc_app_on_start(app, jobs_http_start, jobs_http_stop, h)))
        return app_failed(app, st);
    if ((st = svc_app_attach(app, "jobs", svc_jobs_ref(h->jobs), release_jobs))) {
        svc_jobs_free(h->jobs);
        return app_failed(app, st);
    }
    if ((st = svc_app_add_check(app, "jobs", jobs_check, h, 1000, o.check_critical)))
        return app_failed(app, st);
    svc__fail_new_clear();
    return SVC_OK;
fail:
    jobs_http_free(h);
    return st;
}

svc_jobs *svc_app_jobs(const struct svc_app *app)
{
    return app ? svc_app_attached(app, "jobs") : NULL;
}

#else /* !SVC_HAVE_HTTP */

svc_status svc_add_jobs(struct svc_app *app, const svc_jobs_http_opts *opts)
{
    SVC__UNUSED(app);
    SVC__UNUSED(opts);
    return svc__fail_new(SVC_ENOTSUP, "jobs: this libsvcinfra was built without HTTP support");
}

svc_jobs *svc_app_jobs(const struct svc_app *app)
{
    SVC__UNUSED(app);
    return NULL;
}

#endif
