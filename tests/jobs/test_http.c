/* test_http.c - svc_add_jobs(): a worker pool started with an svc_app runs
 * jobs enqueued by a route, /readyz reports the "jobs" check, /metrics
 * shows the job metrics, and freeing the app stops the workers (memory:
 * backend, loopback HTTP); /readyz fails for a Redis backend that is down. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "svcinfra/http.h"
#include "svcinfra/jobs.h"
#include "svcinfra/metrics.h"

#include "../http/http_test_util.h"

static atomic_int ran;
static svc_jobs *jobs;

static svc_job_result h_ping(svc_job *job, void *ud)
{
    (void)job;
    (void)ud;
    atomic_fetch_add(&ran, 1);
    return SVC_JOB_OK;
}

static void enqueue_route(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    (void)ud;
    int64_t id;
    if (svc_jobs_enqueue(jobs, "ping", NULL, NULL, &id) != SVC_OK) {
        svc_res_status(res, 500);
        return;
    }
    char body[64];
    snprintf(body, sizeof body, "{\"job_id\":%lld}", (long long)id);
    if (svc_res_json_str(res, 202, body) != SVC_OK)
        svc_res_status(res, 500);
}

static void route_enqueues_and_the_app_worker_runs_it(void **state)
{
    (void)state;
    svc_metrics *m;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_jobs_opts jo;
    svc_jobs_opts_default(&jo);
    jo.url = "memory:";
    jo.metrics = m;
    assert_int_equal(svc_jobs_new(&jobs, &jo), SVC_OK);
    assert_int_equal(svc_jobs_register(jobs, "ping", h_ping, NULL, 0), SVC_OK);

    svc_app_opts ao;
    svc_app_opts_default(&ao);
    ao.port = 0;
    ao.access_log = 0;
    ao.metrics = m;
    svc_app *app;
    assert_int_equal(svc_app_new(&app, &ao), SVC_OK);
    assert_int_equal(svc_add_probes(app, NULL), SVC_OK);
    assert_int_equal(svc_add_metrics(app, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "POST", "/enqueue", enqueue_route, NULL), SVC_OK);
    svc_jobs_worker_opts wo;
    svc_jobs_worker_opts_default(&wo);
    wo.threads = 2;
    svc_jobs_http_opts ho = {.jobs = jobs, .worker = &wo, .start_worker = 1,
                             .check_critical = 1};
    assert_int_equal(svc_add_jobs(app, &ho), SVC_OK);
    assert_ptr_equal(svc_app_jobs(app), jobs);
    /* the worker starts with the app: until then handlers can be added */
    assert_int_equal(svc_jobs_register(jobs, "early", h_ping, NULL, 0), SVC_OK);
    assert_int_equal(svc_app_start(app), SVC_OK);
    assert_int_equal(svc_jobs_register(jobs, "late", h_ping, NULL, 0), SVC_EBUSY);
    uint16_t port = svc_app_port(app);

    htu_response r;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(htu_request(port, "POST", "/enqueue", NULL, "", &r), 0);
        assert_int_equal(r.status, 202);
        htu_response_free(&r);
    }
    for (int i = 0; i < 500 && atomic_load(&ran) < 3; i++)
        htu_sleep_ms(10);
    assert_int_equal(atomic_load(&ran), 3);

    assert_int_equal(htu_request(port, "GET", "/readyz", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"jobs\""));
    htu_response_free(&r);

    for (int i = 0; i < 100; i++) { /* the result thread records after the handler */
        svc_jobs_counts c;
        assert_int_equal(svc_jobs_stats_get(jobs, NULL, &c), SVC_OK);
        if (c.counts[SVC_JOB_COMPLETED] == 3)
            break;
        htu_sleep_ms(10);
    }
    assert_int_equal(htu_request(port, "GET", "/metrics", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(
        strstr(r.body, "jobs_processed_total{queue=\"default\",kind=\"ping\",result=\"completed\"} 3"));
    assert_non_null(strstr(r.body, "jobs_queue_depth{queue=\"default\"} 0"));
    htu_response_free(&r);

    svc_app_free(app); /* stops the worker */
    assert_int_equal(svc_jobs_register(jobs, "late", h_ping, NULL, 0), SVC_OK);
    svc_jobs_free(jobs);
    svc_metrics_free(m);
}

/* /readyz asks the backend itself: a Redis that does not answer fails a
 * critical "jobs" check (503), as a PostgreSQL that does not would. */
static void readyz_fails_when_the_redis_backend_is_down(void **state)
{
    (void)state;
    svc_jobs_opts jo;
    svc_jobs_opts_default(&jo);
    jo.url = "redis://127.0.0.1:1/0"; /* nothing listens on port 1 */
    jo.migrate = 0;                   /* so the handle opens without the server */
    jo.no_metrics = 1;
    svc_jobs *down;
    assert_int_equal(svc_jobs_new(&down, &jo), SVC_OK);
    svc_app_opts ao;
    svc_app_opts_default(&ao);
    ao.port = 0;
    ao.access_log = 0;
    svc_metrics *m;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    ao.metrics = m;
    svc_app *app;
    assert_int_equal(svc_app_new(&app, &ao), SVC_OK);
    assert_int_equal(svc_add_probes(app, NULL), SVC_OK);
    svc_jobs_http_opts ho = {.jobs = down, .check_critical = 1};
    assert_int_equal(svc_add_jobs(app, &ho), SVC_OK);
    assert_int_equal(svc_app_start(app), SVC_OK);
    htu_response r;
    assert_int_equal(htu_request(svc_app_port(app), "GET", "/readyz", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "\"jobs\""));
    htu_response_free(&r);
    svc_app_free(app);
    svc_jobs_free(down);
    svc_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(route_enqueues_and_the_app_worker_runs_it),
        cmocka_unit_test(readyz_fails_when_the_redis_backend_is_down),
    };
    return cmocka_run_group_tests_name("jobs_http", tests, NULL, NULL);
}
