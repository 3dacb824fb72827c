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
#include <stdlib.h>
#include <string.h>

#include "svcinfra/http.h"
#include "svcinfra/jobs.h"
#include "svcinfra/config.h"
#include "svcinfra/alloc.h"
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

static atomic_int ticks;

static svc_job_result h_tick(svc_job *job, void *ud)
{
    (void)job;
    (void)ud;
    atomic_fetch_add(&ticks, 1);
    return SVC_JOB_OK;
}

/* POST /enqueue on the queue the app owns (ud: the app). */
static void enqueue_app_route(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    int64_t id;
    if (svc_jobs_enqueue(svc_app_jobs(ud), "ping", NULL, NULL, &id) != SVC_OK) {
        svc_res_status(res, 500);
        return;
    }
    svc_res_status(res, 202);
}

static svc_app *app_with_config(const char *yaml, svc_metrics *m)
{
    svc_app_opts ao;
    svc_app_opts_default(&ao);
    ao.port = 0;
    ao.access_log = 0;
    ao.metrics = m;
    svc_config *cfg = NULL;
    char eb[256];
    if (yaml && svc_config_parse(&cfg, yaml, eb, sizeof eb) != SVC_OK)
        fail_msg("config: %s", eb);
    ao.config = cfg;
    svc_app *app;
    assert_int_equal(svc_app_new(&app, &ao), SVC_OK);
    svc_config_free(cfg); /* the app keeps a reference */
    return app;
}

static void wait_for(atomic_int *n, int want)
{
    for (int i = 0; i < 500 && atomic_load(n) < want; i++)
        htu_sleep_ms(10);
}

/* svc_add_jobs(app, NULL): the queue, its worker pool, the cron schedules
 * and the metrics all come from the app's YAML configuration; handlers are
 * registered on svc_app_jobs() after wiring and the pool runs from
 * svc_app_start(). */
static void add_jobs_null_opts_from_the_app_yaml(void **state)
{
    (void)state;
    unsetenv("SVC_JOBS_WORKER_WORKER_ID");
    atomic_store(&ran, 0);
    atomic_store(&ticks, 0);
    svc_metrics *m;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_app *app = app_with_config("jobs:\n"
                                   "  url: 'memory:'\n"
                                   "  default_max_attempts: 3\n"
                                   "  worker:\n"
                                   "    threads: 2\n"
                                   "    queues: [default, cron]\n"
                                   "    poll_interval: 20ms\n"
                                   "    worker_id: yaml-worker\n"
                                   "  schedules: [tick]\n"
                                   "  schedule:\n"
                                   "    tick: {cron: '* * * * *', kind: tick, queue: cron,\n"
                                   "           missed: run_once}\n",
                                   m);
    assert_null(svc_app_jobs(app));
    assert_int_equal(svc_add_probes(app, NULL), SVC_OK);
    assert_int_equal(svc_add_metrics(app, NULL), SVC_OK);
    assert_int_equal(svc_add_jobs(app, NULL), SVC_OK);
    svc_jobs *j = svc_app_jobs(app);
    assert_non_null(j);
    assert_string_equal(svc_jobs_backend_name(j), "memory");
    assert_int_equal(svc_jobs_register(j, "ping", h_ping, NULL, 0), SVC_OK);
    assert_int_equal(svc_jobs_register(j, "tick", h_tick, NULL, 0), SVC_OK);
    assert_int_equal(svc_app_route(app, "POST", "/enqueue", enqueue_app_route, app), SVC_OK);
    /* nothing runs before the app starts */
    int64_t early;
    assert_int_equal(svc_jobs_enqueue(j, "ping", NULL, NULL, &early), SVC_OK);
    htu_sleep_ms(100);
    assert_int_equal(atomic_load(&ran), 0);
    assert_int_equal(svc_app_start(app), SVC_OK);
    uint16_t port = svc_app_port(app);
    htu_response r;
    assert_int_equal(htu_request(port, "POST", "/enqueue", NULL, "", &r), 0);
    assert_int_equal(r.status, 202);
    htu_response_free(&r);
    wait_for(&ran, 2);
    assert_int_equal(atomic_load(&ran), 2);
    wait_for(&ticks, 1); /* the most recent tick, run once at start */
    assert_int_equal(atomic_load(&ticks), 1);
    svc_job_info info;
    assert_int_equal(svc_jobs_get(j, early, &info), SVC_OK);
    assert_int_equal(info.max_attempts, 3);
    assert_string_equal(info.worker, "yaml-worker");
    svc_job_info_clear(&info);

    assert_int_equal(htu_request(port, "GET", "/readyz", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"jobs\""));
    htu_response_free(&r);
    for (int i = 0; i < 100; i++) {
        svc_jobs_counts c;
        assert_int_equal(svc_jobs_stats_get(j, NULL, &c), SVC_OK);
        if (c.counts[SVC_JOB_COMPLETED] == 3)
            break;
        htu_sleep_ms(10);
    }
    /* the job metrics are in the app's registry */
    assert_int_equal(htu_request(port, "GET", "/metrics", NULL, NULL, &r), 0);
    assert_non_null(strstr(
        r.body, "jobs_processed_total{queue=\"default\",kind=\"ping\",result=\"completed\"} 2"));
    htu_response_free(&r);
    /* after the shutdown the worker is stopped: handlers may be added */
    assert_int_equal(svc_app_shutdown(app), SVC_OK);
    assert_int_equal(svc_jobs_register(j, "late", h_ping, NULL, 0), SVC_OK);
    /* a reference outlives the app */
    svc_jobs *kept = svc_jobs_ref(j);
    svc_app_free(app);
    int64_t id;
    assert_int_equal(svc_jobs_enqueue(kept, "ping", NULL, NULL, &id), SVC_OK);
    svc_jobs_free(kept);
    svc_metrics_free(m);
}

/* svc_add_jobs(app, NULL) for an app configured by the environment. */
static void add_jobs_null_opts_from_the_environment(void **state)
{
    (void)state;
    atomic_store(&ran, 0);
    setenv("SVC_JOBS_WORKER_WORKER_ID", "env-worker", 1);
    setenv("SVC_JOBS_WORKER_POLL_INTERVAL", "20ms", 1);
    svc_metrics *m;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_app *app = app_with_config(NULL, m);
    assert_int_equal(svc_add_jobs(app, NULL), SVC_OK);
    svc_jobs *j = svc_app_jobs(app);
    assert_int_equal(svc_jobs_register(j, "ping", h_ping, NULL, 0), SVC_OK);
    int64_t id;
    assert_int_equal(svc_jobs_enqueue(j, "ping", NULL, NULL, &id), SVC_OK);
    assert_int_equal(svc_app_start(app), SVC_OK);
    wait_for(&ran, 1);
    assert_int_equal(atomic_load(&ran), 1);
    svc_job_info info;
    assert_int_equal(svc_jobs_get(j, id, &info), SVC_OK);
    assert_string_equal(info.worker, "env-worker");
    svc_job_info_clear(&info);
    svc_app_free(app);
    svc_metrics_free(m);
    unsetenv("SVC_JOBS_WORKER_WORKER_ID");
    unsetenv("SVC_JOBS_WORKER_POLL_INTERVAL");
}

/* A bad value of the configuration fails the wiring with the key named,
 * and leaves nothing attached; wiring twice is refused. */
static void add_jobs_refuses_bad_configuration_and_twice(void **state)
{
    (void)state;
    svc_metrics *m;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_app *app = app_with_config("jobs:\n  worker:\n    threads: 0\n", m);
    assert_int_equal(svc_add_jobs(app, NULL), SVC_ECONFIG);
    assert_non_null(strstr(svc_last_errmsg(), "jobs.worker.threads"));
    assert_null(svc_app_jobs(app));
    svc_app_free(app);
    app = app_with_config("jobs:\n  url: 'mysql://db'\n", m);
    assert_int_equal(svc_add_jobs(app, NULL), SVC_EINVAL);
    assert_non_null(strstr(svc_last_errmsg(), "jobs: "));
    assert_null(svc_app_jobs(app));
    svc_app_free(app);
    app = app_with_config(NULL, m);
    assert_int_equal(svc_add_jobs(app, NULL), SVC_OK);
    assert_int_equal(svc_add_jobs(app, NULL), SVC_EEXIST);
    svc_app_free(app);
    assert_null(svc_app_jobs(NULL));
    svc_metrics_free(m);
}

/* The wiring takes its own reference on a queue it is given: freeing the
 * queue first, with the worker running, is as safe as the reverse. */
static void add_jobs_given_queue_free_order(void **state)
{
    (void)state;
    atomic_store(&ran, 0);
    svc_jobs_opts jo;
    svc_jobs_opts_default(&jo);
    jo.no_metrics = 1;
    svc_jobs *j;
    assert_int_equal(svc_jobs_new(&j, &jo), SVC_OK);
    assert_int_equal(svc_jobs_register(j, "ping", h_ping, NULL, 0), SVC_OK);
    svc_metrics *m;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_app *app = app_with_config(NULL, m);
    svc_jobs_http_opts ho;
    svc_jobs_http_opts_default(&ho);
    assert_int_equal(ho.start_worker, 1);
    assert_int_equal(ho.check_critical, 1);
    ho.jobs = j;
    assert_int_equal(svc_add_jobs(app, &ho), SVC_OK);
    assert_ptr_equal(svc_app_jobs(app), j);
    assert_int_equal(svc_app_start(app), SVC_OK);
    int64_t id;
    assert_int_equal(svc_jobs_enqueue(j, "ping", NULL, NULL, &id), SVC_OK);
    svc_jobs_free(j); /* the app's reference keeps it */
    wait_for(&ran, 1);
    assert_int_equal(atomic_load(&ran), 1);
    svc_app_free(app);
    svc_metrics_free(m);
}

/* The registry, the queue and the scheduler handed to the wiring may all be
 * freed before the app: each holder keeps its own reference (ASan and
 * valgrind see a use after free otherwise, in the scheduler's stop and in
 * the collector's removal). */
static void add_jobs_given_registry_and_scheduler_freed_first(void **state)
{
    (void)state;
    svc_metrics *m;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_jobs_opts jo;
    svc_jobs_opts_default(&jo);
    jo.metrics = m;
    svc_jobs *j;
    assert_int_equal(svc_jobs_new(&j, &jo), SVC_OK);
    svc_jobs_scheduler *s;
    assert_int_equal(svc_jobs_scheduler_new(&s, j, NULL), SVC_OK);
    svc_app *app = app_with_config(NULL, m);
    svc_jobs_http_opts ho;
    svc_jobs_http_opts_default(&ho);
    ho.jobs = j;
    ho.scheduler = s;
    assert_int_equal(svc_add_jobs(app, &ho), SVC_OK);
    svc_jobs_scheduler_free(s); /* the wiring's reference keeps it */
    svc_metrics_free(m);        /* the app's and the queue's keep it */
    assert_int_equal(svc_app_start(app), SVC_OK);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(svc_metrics_render(svc_app_metrics(app), &text, &len), SVC_OK);
    assert_non_null(strstr(text, "jobs_queue_depth"));
    svc_free(text);
    svc_app_free(app); /* stops the scheduler, drops the registry's last app reference */
    svc_jobs_free(j);  /* the last reference: the collector leaves the registry, then it goes */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(route_enqueues_and_the_app_worker_runs_it),
        cmocka_unit_test(readyz_fails_when_the_redis_backend_is_down),
        cmocka_unit_test(add_jobs_null_opts_from_the_app_yaml),
        cmocka_unit_test(add_jobs_null_opts_from_the_environment),
        cmocka_unit_test(add_jobs_refuses_bad_configuration_and_twice),
        cmocka_unit_test(add_jobs_given_queue_free_order),
        cmocka_unit_test(add_jobs_given_registry_and_scheduler_freed_first),
    };
    return cmocka_run_group_tests_name("jobs_http", tests, NULL, NULL);
}
