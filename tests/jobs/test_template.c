/* test_template.c - the jobs module on the module template (docs/modules.md):
 * NULL options read SVC_JOBS_* (and SVC_JOBS_WORKER_*, SVC_JOBS_SCHEDULER_*),
 * explicit options ignore the environment, constructor failures are told by
 * svc_last_errmsg(), store-binding errors, references (free order), and a
 * worker made before it starts. memory: backend; pools to nowhere (opened
 * lazily) for the binding of given pools. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svcinfra/jobs.h"
#include "svcinfra/pg.h"
#include "svcinfra/redis.h"
#include "svcinfra/version.h"

static const char *const env_vars[] = {
    "SVC_JOBS_URL", "SVC_JOBS_DEFAULT_MAX_ATTEMPTS", "SVC_JOBS_POOL_SIZE", "SVC_JOBS_NO_METRICS",
    "SVC_JOBS_WORKER_QUEUES", "SVC_JOBS_WORKER_WORKER_ID", "SVC_JOBS_WORKER_THREADS",
    "SVC_JOBS_WORKER_POLL_INTERVAL", "SVC_JOBS_SCHEDULER_CHECK_INTERVAL", NULL,
};

static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; env_vars[i]; i++)
        unsetenv(env_vars[i]);
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static svc_job_result h_ok(svc_job *job, void *ud)
{
    (void)job;
    (void)ud;
    return SVC_JOB_OK;
}

/* svc_jobs_new(&j, NULL) takes its options from SVC_JOBS_*. */
static void null_opts_read_the_environment(void **state)
{
    (void)state;
    setenv("SVC_JOBS_URL", "memory:", 1);
    setenv("SVC_JOBS_DEFAULT_MAX_ATTEMPTS", "7", 1);
    setenv("SVC_JOBS_NO_METRICS", "true", 1);
    svc_jobs *j = NULL;
    assert_int_equal(svc_jobs_new(&j, NULL), SVC_OK);
    assert_string_equal(svc_jobs_backend_name(j), "memory");
    int64_t id;
    assert_int_equal(svc_jobs_enqueue(j, "k", NULL, NULL, &id), SVC_OK);
    svc_job_info info;
    assert_int_equal(svc_jobs_get(j, id, &info), SVC_OK);
    assert_int_equal(info.max_attempts, 7);
    svc_job_info_clear(&info);
    svc_jobs_free(j);
}

/* A bad SVC_JOBS_* value fails svc_jobs_new(NULL) and names the key. */
static void null_opts_refuse_a_bad_environment_value(void **state)
{
    (void)state;
    setenv("SVC_JOBS_POOL_SIZE", "many", 1);
    svc_jobs *j = (svc_jobs *)1;
    assert_int_equal(svc_jobs_new(&j, NULL), SVC_ECONFIG);
    assert_null(j);
    assert_non_null(strstr(svc_last_errmsg(), "jobs"));
    assert_non_null(strstr(svc_last_errmsg(), "POOL_SIZE"));
    setenv("SVC_JOBS_POOL_SIZE", "5000", 1); /* above 1024 */
    assert_int_equal(svc_jobs_new(&j, NULL), SVC_ECONFIG);
    assert_non_null(strstr(svc_last_errmsg(), "jobs.pool_size"));
}

/* Explicit options are used as given, whatever the environment says. */
static void explicit_opts_ignore_the_environment(void **state)
{
    (void)state;
    setenv("SVC_JOBS_URL", "redis://127.0.0.1:1/0", 1);
    setenv("SVC_JOBS_DEFAULT_MAX_ATTEMPTS", "7", 1);
    setenv("SVC_JOBS_WORKER_THREADS", "999", 1);
    setenv("SVC_JOBS_SCHEDULER_CHECK_INTERVAL", "1ms", 1);
    svc_jobs_opts o;
    svc_jobs_opts_default(&o);
    o.no_metrics = 1;
    svc_jobs *j;
    assert_int_equal(svc_jobs_new(&j, &o), SVC_OK);
    assert_string_equal(svc_jobs_backend_name(j), "memory");
    int64_t id;
    assert_int_equal(svc_jobs_enqueue(j, "k", NULL, NULL, &id), SVC_OK);
    svc_job_info info;
    assert_int_equal(svc_jobs_get(j, id, &info), SVC_OK);
    assert_int_equal(info.max_attempts, 20);
    svc_job_info_clear(&info);
    svc_jobs_worker_opts wo;
    svc_jobs_worker_opts_default(&wo);
    svc_jobs_worker *w;
    assert_int_equal(svc_jobs_worker_new(&w, j, &wo), SVC_OK);
    svc_jobs_worker_free(w);
    svc_jobs_scheduler_opts so;
    svc_jobs_scheduler_opts_default(&so);
    assert_int_equal(so.check_interval_ms, 1000);
    svc_jobs_scheduler *s;
    assert_int_equal(svc_jobs_scheduler_new(&s, j, &so), SVC_OK);
    svc_jobs_scheduler_free(s);
    /* a NULL queue is refused, not a crash (called through pointers, which
     * carry no nonnull attribute for the compiler or the sanitizer) */
    svc_status (*wnew)(svc_jobs_worker **, svc_jobs *, const svc_jobs_worker_opts *) =
        svc_jobs_worker_new;
    svc_status (*snew)(svc_jobs_scheduler **, svc_jobs *, const svc_jobs_scheduler_opts *) =
        svc_jobs_scheduler_new;
    assert_int_equal(wnew(&w, NULL, &wo), SVC_EINVAL);
    assert_null(w);
    assert_int_equal(snew(&s, NULL, &so), SVC_EINVAL);
    assert_null(s);
    /* the same with NULL options reads those values and refuses them */
    assert_int_equal(svc_jobs_worker_new(&w, j, NULL), SVC_ECONFIG);
    assert_non_null(strstr(svc_last_errmsg(), "jobs.worker.threads"));
    assert_int_equal(svc_jobs_scheduler_new(&s, j, NULL), SVC_EINVAL);
    assert_non_null(strstr(svc_last_errmsg(), "check_interval"));
    svc_jobs_free(j);
}

/* A worker with NULL options serves the queues and carries the id of
 * SVC_JOBS_WORKER_*. */
static void worker_null_opts_read_the_environment(void **state)
{
    (void)state;
    setenv("SVC_JOBS_WORKER_QUEUES", "envq,other", 1);
    setenv("SVC_JOBS_WORKER_WORKER_ID", "env-worker", 1);
    setenv("SVC_JOBS_WORKER_POLL_INTERVAL", "20ms", 1);
    svc_jobs_opts o;
    svc_jobs_opts_default(&o);
    o.no_metrics = 1;
    svc_jobs *j;
    assert_int_equal(svc_jobs_new(&j, &o), SVC_OK);
    svc_jobs_worker *w;
    assert_int_equal(svc_jobs_worker_new(&w, j, NULL), SVC_OK);
    /* made, not started: handlers can still be registered */
    assert_int_equal(svc_jobs_register(j, "k", h_ok, NULL, 0), SVC_OK);
    assert_int_equal(svc_jobs_worker_start(w), SVC_OK);
    assert_int_equal(svc_jobs_register(j, "k2", h_ok, NULL, 0), SVC_EBUSY);
    svc_job_opts jo;
    svc_job_opts_default(&jo);
    jo.queue = "other";
    int64_t id;
    assert_int_equal(svc_jobs_enqueue(j, "k", NULL, &jo, &id), SVC_OK);
    svc_job_info info = {0};
    for (int i = 0; i < 500; i++) {
        svc_job_info_clear(&info);
        assert_int_equal(svc_jobs_get(j, id, &info), SVC_OK);
        if (info.state == SVC_JOB_COMPLETED)
            break;
        sleep_ms(10);
    }
    assert_int_equal(info.state, SVC_JOB_COMPLETED);
    assert_string_equal(info.worker, "env-worker");
    svc_job_info_clear(&info);
    assert_int_equal(svc_jobs_worker_stop(w), SVC_OK);
    svc_jobs_worker_stats ws;
    svc_jobs_worker_stats_get(w, &ws);
    assert_int_equal(ws.completed, 1);
    svc_jobs_worker_free(w);
    svc_jobs_free(j);
}

/* A worker starts once; stopping or freeing one never started is a no-op. */
static void worker_starts_once(void **state)
{
    (void)state;
    svc_jobs_opts o;
    svc_jobs_opts_default(&o);
    o.no_metrics = 1;
    svc_jobs *j;
    assert_int_equal(svc_jobs_new(&j, &o), SVC_OK);
    svc_jobs_worker_opts wo;
    svc_jobs_worker_opts_default(&wo);
    svc_jobs_worker *w;
    assert_int_equal(svc_jobs_worker_new(&w, j, &wo), SVC_OK);
    assert_int_equal(svc_jobs_worker_stop(w), SVC_OK); /* never started */
    assert_int_equal(svc_jobs_worker_start(w), SVC_EBUSY);
    svc_jobs_worker_free(w);
    assert_int_equal(svc_jobs_worker_new(&w, j, &wo), SVC_OK);
    assert_int_equal(svc_jobs_worker_start(w), SVC_OK);
    assert_int_equal(svc_jobs_worker_start(w), SVC_EBUSY);
    assert_non_null(strstr(svc_jobs_errmsg(j), "started before"));
    svc_jobs_worker_free(w);
    /* a worker never started does not count as running */
    assert_int_equal(svc_jobs_worker_new(&w, j, &wo), SVC_OK);
    assert_int_equal(svc_jobs_register(j, "k", h_ok, NULL, 0), SVC_OK);
    svc_jobs_worker_free(w);
    svc_jobs_free(j);
}

/* Workers and schedulers hold a reference on their queue: the handle may be
 * freed first (ASan reports a use after free otherwise). */
static void children_keep_the_queue_alive(void **state)
{
    (void)state;
    svc_jobs_opts o;
    svc_jobs_opts_default(&o);
    o.no_metrics = 1;
    svc_jobs *j;
    assert_int_equal(svc_jobs_new(&j, &o), SVC_OK);
    assert_ptr_equal(svc_jobs_ref(j), j);
    assert_null(svc_jobs_ref(NULL));
    svc_jobs_free(j); /* one reference left */
    assert_int_equal(svc_jobs_register(j, "k", h_ok, NULL, 0), SVC_OK);
    svc_jobs_worker_opts wo;
    svc_jobs_worker_opts_default(&wo);
    wo.poll_interval_ms = 10;
    svc_jobs_worker *w;
    assert_int_equal(svc_jobs_worker_new(&w, j, &wo), SVC_OK);
    assert_int_equal(svc_jobs_worker_start(w), SVC_OK);
    svc_jobs_scheduler *s;
    assert_int_equal(svc_jobs_scheduler_new(&s, j, NULL), SVC_OK);
    svc_jobs_schedule sc = {.name = "every", .cron = "* * * * *", .kind = "k"};
    assert_int_equal(svc_jobs_scheduler_add(s, &sc), SVC_OK);
    assert_int_equal(svc_jobs_scheduler_start(s), SVC_OK);
    svc_jobs_free(j); /* the caller's reference: the children still use it */
    int64_t id;
    assert_int_equal(svc_jobs_enqueue(j, "k", NULL, NULL, &id), SVC_OK);
    size_t fired;
    assert_int_equal(svc_jobs_scheduler_tick(s, 0, &fired), SVC_OK);
    svc_jobs_scheduler_free(s);
    svc_jobs_worker_free(w); /* the last reference */
    svc_jobs_free(NULL);
}

/* Store binding: the common statuses and messages. */
static void store_binding_errors(void **state)
{
    (void)state;
    svc_jobs_opts o;
    svc_jobs_opts_default(&o);
    o.no_metrics = 1;
    svc_jobs *j = (svc_jobs *)1;
    o.url = "mysql://db/app";
    assert_int_equal(svc_jobs_new(&j, &o), SVC_EINVAL);
    assert_null(j);
    assert_non_null(strstr(svc_last_errmsg(), "jobs: "));
    o.url = "rediss://127.0.0.1:1/0";
    assert_int_equal(svc_jobs_new(&j, &o), SVC_ENOTSUP);
    assert_non_null(strstr(svc_last_errmsg(), "jobs: "));
    o.url = "memory:";
    o.default_max_attempts = 0;
    assert_int_equal(svc_jobs_new(&j, &o), SVC_EINVAL);
    assert_non_null(strstr(svc_last_errmsg(), "default_max_attempts"));
    svc_jobs_opts_default(&o);
    o.no_metrics = 1;
    o.migrate = 0;
    if (!svc_feature_supported(SVC_FEATURE_POSTGRES)) {
        o.url = "postgres://u@127.0.0.1:1/x";
        assert_int_equal(svc_jobs_new(&j, &o), SVC_ENOTSUP);
        assert_non_null(strstr(svc_last_errmsg(), "without postgres"));
    }
    if (!svc_feature_supported(SVC_FEATURE_POSTGRES) || !svc_feature_supported(SVC_FEATURE_REDIS))
        return;
    /* given pools (connected lazily: nothing listens there) */
    svc_pg_opts po;
    svc_pg_opts_default(&po);
    po.url = "postgres://u@127.0.0.1:1/x";
    po.no_metrics = 1;
    svc_pg *pg;
    assert_int_equal(svc_pg_new(&pg, &po), SVC_OK);
    svc_redis_opts ro;
    svc_redis_opts_default(&ro);
    ro.url = "redis://127.0.0.1:1/0";
    ro.no_metrics = 1;
    svc_redis *r;
    assert_int_equal(svc_redis_new(&r, &ro), SVC_OK);
    o.pg = pg;
    o.redis = r;
    assert_int_equal(svc_jobs_new(&j, &o), SVC_EINVAL);
    assert_non_null(strstr(svc_last_errmsg(), "not both"));
    /* a given pool is referenced: it may be freed before the handle */
    o.redis = NULL;
    assert_int_equal(svc_jobs_new(&j, &o), SVC_OK);
    assert_string_equal(svc_jobs_backend_name(j), "postgres");
    svc_pg_free(pg);
    o.pg = NULL;
    o.redis = r;
    svc_jobs *jr;
    assert_int_equal(svc_jobs_new(&jr, &o), SVC_OK);
    assert_string_equal(svc_jobs_backend_name(jr), "redis");
    svc_redis_free(r);
    svc_jobs_free(jr);
    svc_jobs_free(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(null_opts_read_the_environment, clear_env),
        cmocka_unit_test_setup(null_opts_refuse_a_bad_environment_value, clear_env),
        cmocka_unit_test_setup(explicit_opts_ignore_the_environment, clear_env),
        cmocka_unit_test_setup(worker_null_opts_read_the_environment, clear_env),
        cmocka_unit_test_setup(worker_starts_once, clear_env),
        cmocka_unit_test_setup(children_keep_the_queue_alive, clear_env),
        cmocka_unit_test_setup(store_binding_errors, clear_env),
    };
    return cmocka_run_group_tests_name("jobs_template", tests, NULL, NULL);
}
