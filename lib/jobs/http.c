/*
 * lib/jobs/http.c - svc_add_jobs(): jobs inside a server process.
 *
 * Starts the worker pool (and a scheduler) with the app, stops them
 * gracefully when the app is freed, and adds the readiness check "jobs":
 * the backend answers a ping. The queue gauges
 * and job counters live in the registry of the jobs handle (opts.metrics
 * of svc_jobs_new, the default registry unless told otherwise), which is
 * the registry /metrics renders when both use the default.
 */
#include <stdio.h>

#include "svcinfra_config.h"
#include "jobs_internal.h"

#if SVC_HAVE_HTTP
#include "svcinfra/http.h"

typedef struct jobs_http {
    svc_jobs *jobs;
    svc_jobs_worker *worker;
    svc_jobs_scheduler *sched;
} jobs_http;

static void jobs_http_free(void *ud)
{
    jobs_http *h = ud;
    if (h->sched)
        svc_jobs_scheduler_stop(h->sched);
    if (h->worker) {
        (void)svc_jobs_worker_stop(h->worker);
        svc_jobs_worker_free(h->worker);
    }
    svc_free(h);
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
        svc_jobs_worker_get_stats(h->worker, &ws);
        snprintf(detail, len, "%s; worker: %u in flight, %llu completed, %llu failed",
                 svc_jobs_backend_name(h->jobs), ws.in_flight,
                 (unsigned long long)ws.completed, (unsigned long long)ws.failed);
    } else {
        snprintf(detail, len, "%s", svc_jobs_backend_name(h->jobs));
    }
    return SVC_OK;
}

svc_status svc_add_jobs(struct svc_app *app, const svc_jobs_http_opts *opts)
{
    if (!opts->jobs)
        return SVC_EINVAL;
    jobs_http *h = svc__calloc(1, sizeof *h);
    if (!h)
        return SVC_ENOMEM;
    h->jobs = opts->jobs;
    svc_status st = svc_app_on_free(app, jobs_http_free, h);
    if (st) {
        svc_free(h);
        return st;
    }
    if (opts->start_worker && (st = svc_jobs_worker_start(opts->jobs, opts->worker, &h->worker)))
        return st;
    if (opts->scheduler) {
        if ((st = svc_jobs_scheduler_start(opts->scheduler)))
            return st;
        h->sched = opts->scheduler;
    }
    return svc_app_add_check(app, "jobs", jobs_check, h, 1000, opts->check_critical);
}

#else /* !SVC_HAVE_HTTP */

svc_status svc_add_jobs(struct svc_app *app, const svc_jobs_http_opts *opts)
{
    SVC__UNUSED(app);
    SVC__UNUSED(opts);
    return SVC_ENOTSUP;
}

#endif
