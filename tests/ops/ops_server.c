/* ops_server.c - a service wired with every module that exports metrics, so
 * tests/ops/check_metric_names.py can scrape the names the library really
 * exports and compare them with the ones ops/ dashboards and rules query.
 *
 * One registry (the app's) holds everything: probes, /metrics with the
 * request metrics, a rate limit on GET /limited (with metrics), idempotency
 * on POST /pay, a memory jobs queue behind POST /job, a memory outbox whose
 * relay publishes the events POST /event puts (through a callback that
 * fails each event's first attempt, so the failure counter moves too), and
 * a PostgreSQL and a Redis pool (their gauges). The pools connect lazily,
 * so their URLs (SVC_TEST_PG_URL, SVC_TEST_REDIS_URL, else loopback
 * defaults) need no server unless the pools are used; GET /pools pings both
 * when the URLs are set, to give the gauges a connection to count.
 *
 * Listens on SVC_HTTP_BIND / SVC_HTTP_PORT (the test sets 127.0.0.1 and 0),
 * prints "ops_server: listening on http://127.0.0.1:PORT" and serves until
 * SIGTERM or SIGINT.
 */
#include <stdio.h>
#include <stdlib.h>

#include "svcinfra/svcinfra.h"

static svc_ratelimit *limiter;
static svc_jobs *jobs;
static svc_pg *pg;
static svc_redis *redis;

static void ok(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    (void)ud;
    if (svc_res_text(res, 200, "ok\n") != SVC_OK)
        svc_res_status(res, 500);
}

static void fail(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    (void)ud;
    if (svc_res_text(res, 500, "failed on purpose\n") != SVC_OK)
        svc_res_status(res, 500);
}

static svc_job_result noop_job(svc_job *job, void *ud)
{
    (void)job;
    (void)ud;
    return SVC_JOB_OK;
}

static void enqueue(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    (void)ud;
    int64_t id = 0;
    svc_status st = svc_jobs_enqueue(jobs, "ops.noop", "{}", NULL, &id);
    if (svc_res_text(res, st == SVC_OK ? 202 : 503, "queued\n") != SVC_OK)
        svc_res_status(res, 500);
}

/* The relay's publisher: the first attempt of each event fails, the retry
 * (after backoff_initial, 1 s by default) succeeds. */
static svc_status publish(void *ctx, const svc_outbox_message *msg, char *err, size_t errlen)
{
    (void)ctx;
    if (msg->attempts == 0) {
        snprintf(err, errlen, "first attempt fails on purpose");
        return SVC_EUNAVAILABLE;
    }
    return SVC_OK;
}

static void put_event(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    svc_outbox *ob = svc_app_outbox(svc_req_app(req));
    svc_status st = svc_outbox_put(ob, "ops.event", "ops-1", "{}", NULL, NULL);
    if (svc_res_text(res, st == SVC_OK ? 202 : 503, st == SVC_OK ? "put\n" : "failed\n") !=
        SVC_OK)
        svc_res_status(res, 500);
}

static void pools(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    (void)ud;
    int bad = 0;
    if (pg && getenv("SVC_TEST_PG_URL") && svc_pg_ping(pg, 2000) != SVC_OK)
        bad = 1;
    if (redis && getenv("SVC_TEST_REDIS_URL") && svc_redis_ping(redis, 2000) != SVC_OK)
        bad = 1;
    if (svc_res_text(res, bad ? 503 : 200, bad ? "ping failed\n" : "ok\n") != SVC_OK)
        svc_res_status(res, 500);
}

static svc_status add_ratelimit(svc_app *app)
{
    static const svc_ratelimit_policy policy = {.name = "ops", .algorithm = SVC_RL_GCRA,
                                                .limit = 2, .period_ms = 60000};
    static const svc_ratelimit_route routes[] = {{"GET", "/limited", "ops", 1}};
    svc_ratelimit_opts o;
    svc_ratelimit_opts_default(&o);
    o.metrics = svc_app_metrics(app);
    svc_status st = svc_ratelimit_new(&limiter, &o);
    if (st == SVC_OK)
        st = svc_ratelimit_policy_add(limiter, &policy);
    if (st != SVC_OK)
        return st;
    svc_ratelimit_http_opts ho;
    svc_ratelimit_http_opts_default(&ho);
    ho.rl = limiter;
    ho.routes = routes;
    ho.nroutes = 1;
    return svc_add_ratelimit(app, &ho);
}

static svc_status add_jobs(svc_app *app)
{
    svc_jobs_opts o;
    svc_jobs_opts_default(&o);
    o.url = "memory:";
    o.metrics = svc_app_metrics(app);
    svc_status st = svc_jobs_new(&jobs, &o);
    if (st == SVC_OK)
        st = svc_jobs_register(jobs, "ops.noop", noop_job, NULL, 0);
    if (st != SVC_OK)
        return st;
    svc_jobs_http_opts jo = {.jobs = jobs, .start_worker = 1, .check_critical = 1};
    return svc_add_jobs(app, &jo);
}

/* A memory outbox (the default url) with the app's registry; the relay
 * starts with the app. */
static svc_status add_outbox(svc_app *app)
{
    svc_status st = svc_add_outbox(app, NULL);
    if (st != SVC_OK)
        return st;
    svc_outbox_publisher pub;
    svc_outbox_publisher_callback(&pub, publish, NULL);
    return svc_outbox_http_set_publisher(app, &pub);
}

/* A build without PostgreSQL or Redis support says so on stdout ("not built
 * in: PREFIX"), so the check knows which names it cannot verify. */
static svc_status add_pools(svc_app *app)
{
    const char *pg_url = getenv("SVC_TEST_PG_URL");
    const char *redis_url = getenv("SVC_TEST_REDIS_URL");
    svc_status st = SVC_OK;
    if (svc_feature_supported(SVC_FEATURE_POSTGRES)) {
        svc_pg_opts po;
        svc_pg_opts_default(&po);
        po.url = pg_url ? pg_url : "postgres://127.0.0.1:5432/postgres";
        po.metrics = svc_app_metrics(app);
        st = svc_pg_new(&pg, &po);
    } else {
        printf("ops_server: not built in: svc_pg_pool\n");
    }
    if (st == SVC_OK && svc_feature_supported(SVC_FEATURE_REDIS)) {
        svc_redis_opts ro;
        svc_redis_opts_default(&ro);
        ro.url = redis_url ? redis_url : "redis://127.0.0.1:6379/0";
        ro.metrics = svc_app_metrics(app);
        st = svc_redis_new(&redis, &ro);
    } else if (st == SVC_OK) {
        printf("ops_server: not built in: svc_redis_pool\n");
    }
    return st;
}

int main(void)
{
    svc_app *app = NULL;
    svc_status st = svc_app_new(&app, NULL);
    if (st == SVC_OK) st = svc_add_probes(app, NULL);
    if (st == SVC_OK) st = svc_add_metrics(app, NULL);
    if (st == SVC_OK) st = svc_app_route(app, "GET", "/ok", ok, NULL);
    if (st == SVC_OK) st = svc_app_route(app, "GET", "/fail", fail, NULL);
    if (st == SVC_OK) st = svc_app_route(app, "GET", "/limited", ok, NULL);
    if (st == SVC_OK) st = svc_app_route(app, "POST", "/pay", ok, NULL);
    if (st == SVC_OK) st = svc_app_route(app, "POST", "/job", enqueue, NULL);
    if (st == SVC_OK) st = svc_app_route(app, "POST", "/event", put_event, NULL);
    if (st == SVC_OK) st = svc_app_route(app, "GET", "/pools", pools, NULL);
    if (st == SVC_OK) st = add_ratelimit(app);
    if (st == SVC_OK) st = svc_add_idempotency(app, NULL);
    if (st == SVC_OK) st = add_jobs(app);
    if (st == SVC_OK) st = add_outbox(app);
    if (st == SVC_OK) st = add_pools(app);
    if (st == SVC_OK) st = svc_app_start(app);
    if (st != SVC_OK) {
        fprintf(stderr, "ops_server: %s: %s\n", svc_strerror(st), app ? svc_app_errmsg(app) : "");
        svc_app_free(app);
        return 1;
    }
    printf("ops_server: listening on http://127.0.0.1:%u\n", (unsigned)svc_app_port(app));
    fflush(stdout);
    st = svc_app_run(app);
    svc_app_free(app);
    svc_ratelimit_free(limiter);
    svc_jobs_free(jobs);
    svc_pg_free(pg);
    svc_redis_free(redis);
    return st == SVC_OK ? 0 : 1;
}
