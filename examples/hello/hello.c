/*
 * examples/hello/hello.c - a small service on svc_app, one line per feature.
 *
 *   SVC_HTTP_PORT=8080 ./hello          (SVC_HTTP_PORT=0: any free port)
 *
 * Everything runs in this one process: no database, no Redis. It listens on
 * 127.0.0.1 and serves
 *
 *   GET  /hello/{name}       JSON greeting
 *   POST /echo               JSON in, JSON out; bad JSON → 400 problem+json
 *   GET  /orders/{id}        an order, or 404 problem+json for unknown ids
 *   POST /payments           a payment and its "payment.created" event (outbox); with
 *                            Idempotency-Key a retry replays the first answer
 *   GET  /limited            rate limited: a burst of 3, then 429 + Retry-After
 *   POST /signup             enqueues a background job (202 + job id); GET /jobs/{id} its state
 *   GET  /healthz /readyz /startupz /metrics
 *   POST /admin/maintenance  only when HELLO_ADMIN_TOKEN is set (see below)
 *
 * with request ids, W3C trace context, a JSON access log on stderr, security
 * headers, a CORS allowlist (http://localhost:3000) and a readiness check.
 * Every feature is one line, configured from hello.yaml beside this file
 * (SVC_CONFIG_FILE names another) with SVC_* environment variables over it.
 * SIGTERM or Ctrl-C stops it gracefully: in-flight requests finish first.
 *
 * Maintenance mode pauses writes (POST/PUT/PATCH/DELETE → 503 with
 * Retry-After). Its switch is an admin endpoint that exists only when the
 * environment variable HELLO_ADMIN_TOKEN is set, and wants that token as
 * `Authorization: Bearer <token>`:
 *
 *   curl -X POST -H "Authorization: Bearer $HELLO_ADMIN_TOKEN" \
 *        -d '{"on": true, "retry_after_s": 30}' localhost:8080/admin/maintenance
 *
 * It is middleware in the OBSERVE stage, ahead of the maintenance check,
 * so the switch still works while writes are paused.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* nanosleep under -std=c11 */
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <svcinfra/svcinfra.h>

/* ---- a tiny in-memory "store" the handlers and the check share ----------- */

typedef struct store {
    pthread_mutex_t mu;
    unsigned long orders_served;
    unsigned long payments;
} store;

static store the_store = {PTHREAD_MUTEX_INITIALIZER, 0};

/* Readiness: the store answers when its lock can be taken within the
 * check's timeout (a stuck writer would make this instance unready). */
static svc_status store_check(void *ud, char *detail, size_t detail_len, int64_t timeout_ms)
{
    store *s = ud;
    for (int64_t waited = 0; waited <= timeout_ms; waited += 5) {
        if (pthread_mutex_trylock(&s->mu) == 0) {
            snprintf(detail, detail_len, "%lu orders served", s->orders_served);
            pthread_mutex_unlock(&s->mu);
            return SVC_OK;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    snprintf(detail, detail_len, "store lock busy");
    return SVC_EBUSY;
}

/* ---- handlers ---------------------------------------------------------------- */

/* Answers with a problem; if even that fails (out of memory), a bare status. */
static void problem(svc_res *res, int status, svc_problem_code code, const char *detail)
{
    if (svc_res_problem(res, status, code, detail) != SVC_OK)
        svc_res_status(res, status);
}

static void answer(svc_res *res, int status, json_t *body)
{
    if (!body || svc_res_json(res, status, body) != SVC_OK)
        problem(res, 500, SVC_PROBLEM_INTERNAL, NULL);
    json_decref(body);
}

static void hello_name(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    char msg[256];
    snprintf(msg, sizeof msg, "hello, %s", svc_req_param(req, "name"));
    answer(res, 200, json_pack("{s:s, s:s}", "message", msg, "request_id", svc_req_id(req)));
}

static void echo(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    json_t *in = NULL;
    if (svc_req_json(req, &in) != SVC_OK) {
        problem(res, 400, SVC_PROBLEM_VALIDATION, "the body is not valid JSON");
        return;
    }
    answer(res, 200, json_pack("{s:o}", "echo", in)); /* "o" takes the reference */
}

static void order(svc_req *req, svc_res *res, void *ud)
{
    store *s = ud;
    const char *id = svc_req_param(req, "id");
    if (strcmp(id, "42") != 0) {
        /* problem+json with an extension member */
        json_t *ext = json_pack("{s:s}", "order_id", id);
        if (svc_res_problem_ext(res, 404, SVC_PROBLEM_NOT_FOUND, "no order with this id", ext) !=
            SVC_OK)
            svc_res_status(res, 404);
        json_decref(ext);
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->orders_served++;
    pthread_mutex_unlock(&s->mu);
    answer(res, 200, json_pack("{s:s, s:s, s:i}", "id", id, "item", "towel", "quantity", 1));
}

/* GET /limited: a route behind a rate limit. hello.yaml gives it the policy
 * "limited" (GCRA, 3 a minute, a burst of 3): its answers carry
 * RateLimit-Policy and RateLimit headers, and the 4th quick request gets 429
 * problem+json with Retry-After. */
static void limited(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    (void)ud;
    answer(res, 200, json_pack("{s:s}", "message", "within the limit"));
}

/* POST /payments {"amount": n}: creates a payment with a new id and puts a
 * "payment.created" event in the outbox. A client that sends
 * Idempotency-Key and retries gets the first answer again
 * (Idempotent-Replayed: true), never a second payment or event. */
static void payment(svc_req *req, svc_res *res, void *ud)
{
    store *s = ud;
    json_t *in = NULL;
    json_int_t amount = 0;
    if (svc_req_json(req, &in) != SVC_OK || json_unpack(in, "{s:I}", "amount", &amount) != 0) {
        json_decref(in);
        problem(res, 400, SVC_PROBLEM_VALIDATION, "expected {\"amount\": n}");
        return;
    }
    json_decref(in);
    pthread_mutex_lock(&s->mu);
    unsigned long id = ++s->payments;
    pthread_mutex_unlock(&s->mu);
    char pid[32], event[96];
    snprintf(pid, sizeof pid, "pay_%lu", id);
    snprintf(event, sizeof event, "{\"id\":\"%s\",\"amount\":%" JSON_INTEGER_FORMAT "}", pid,
             amount);
    /* the event leaves through the app's outbox relay (publish_event below) */
    svc_outbox *ob = svc_app_outbox(svc_req_app(req));
    if (svc_outbox_put(ob, "payment.created", pid, event, NULL, NULL) != SVC_OK) {
        problem(res, 503, SVC_PROBLEM_UNAVAILABLE, svc_outbox_errmsg(ob));
        return;
    }
    answer(res, 201, json_pack("{s:s, s:I}", "id", pid, "amount", amount));
}

/* Background jobs (memory: backend, in this process): POST /signup
 * {"email": s} enqueues a "welcome.email" job and answers 202 with its id
 * at once; the worker pool svc_add_jobs() starts with the app runs it;
 * GET /jobs/{id} shows its state. The queue belongs to the app
 * (svc_app_jobs()). */
static svc_job_result send_welcome(svc_job *job, void *ud)
{
    (void)ud;
    svc_logf(SVC_LOG_INFO, "job %lld: welcome email sent (%s)", (long long)svc_job_id(job),
             svc_job_payload(job));
    return SVC_JOB_OK;
}

static void signup(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    json_t *in = NULL;
    const char *email = NULL;
    if (svc_req_json(req, &in) != SVC_OK || json_unpack(in, "{s:s}", "email", &email) != 0) {
        json_decref(in);
        problem(res, 400, SVC_PROBLEM_VALIDATION, "expected {\"email\": \"...\"}");
        return;
    }
    char *payload = json_dumps(in, JSON_COMPACT);
    json_decref(in);
    int64_t id = 0;
    svc_jobs *jobs = svc_app_jobs(svc_req_app(req));
    svc_status st = payload ? svc_jobs_enqueue(jobs, "welcome.email", payload, NULL, &id)
                            : SVC_ENOMEM;
    free(payload);
    if (st != SVC_OK) {
        problem(res, 503, SVC_PROBLEM_UNAVAILABLE, svc_jobs_errmsg(jobs));
        return;
    }
    answer(res, 202, json_pack("{s:I}", "job_id", (json_int_t)id));
}

static void job_status(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    svc_job_info info;
    int64_t id = strtoll(svc_req_param(req, "id"), NULL, 10);
    if (svc_jobs_get(svc_app_jobs(svc_req_app(req)), id, &info) != SVC_OK) {
        problem(res, 404, SVC_PROBLEM_NOT_FOUND, "no such job");
        return;
    }
    answer(res, 200, json_pack("{s:I, s:s, s:s, s:i}", "id", (json_int_t)info.id, "kind",
                               info.kind, "state", svc_job_state_name(info.state), "attempt",
                               info.attempt));
    svc_job_info_clear(&info);
}

/* The outbox relay's publisher: where events go (a message broker, a
 * webhook, another service). Here a log line; a failure would be retried
 * with backoff. */
static svc_status publish_event(void *ctx, const svc_outbox_message *msg, char *err,
                                size_t errlen)
{
    (void)ctx;
    (void)err;
    (void)errlen;
    svc_log_field f[] = {svc_log_field_str("topic", msg->topic),
                         svc_log_field_str("key", msg->aggregate_key),
                         svc_log_field_str("payload", msg->payload)};
    svc_log_kv(SVC_LOG_INFO, "outbox: event published", f, 3);
    return SVC_OK;
}

/* POST /admin/maintenance {"on": bool, "retry_after_s": n}, Bearer token. */
static void admin_mw(svc_req *req, svc_res *res, svc_chain *next, void *ud)
{
    const char *token = ud;
    if (strcmp(svc_req_path(req), "/admin/maintenance") != 0 ||
        strcmp(svc_req_method(req), "POST") != 0) {
        svc_next(next);
        return;
    }
    const char *auth = svc_req_header(req, "Authorization");
    size_t tlen = strlen(token);
    if (!auth || strncmp(auth, "Bearer ", 7) != 0 || strlen(auth + 7) != tlen ||
        !svc_ct_equal(auth + 7, token, tlen)) {
        problem(res, 401, SVC_PROBLEM_AUTHN, "admin token required");
        return;
    }
    json_t *in = NULL;
    int on = 0;
    json_int_t retry = 30;
    if (svc_req_json(req, &in) != SVC_OK ||
        json_unpack(in, "{s:b, s?I}", "on", &on, "retry_after_s", &retry) != 0 || retry < 0 ||
        retry > 86400) {
        json_decref(in);
        problem(res, 400, SVC_PROBLEM_VALIDATION,
                              "expected {\"on\": true|false, \"retry_after_s\": 0..86400}");
        return;
    }
    json_decref(in);
    svc_app_set_maintenance(svc_req_app(req), on, (unsigned)retry);
    svc_logf(SVC_LOG_WARN, "maintenance mode %s", on ? "on" : "off");
    answer(res, 200, json_pack("{s:b, s:I}", "maintenance", on, "retry_after_s", retry));
}

/* ---- wiring --------------------------------------------------------------------- */

#define TRY(call)                                                                       \
    do {                                                                                \
        svc_status st_ = (call);                                                        \
        if (st_ != SVC_OK) {                                                            \
            fprintf(stderr, "hello: %s: %s: %s\n", #call, svc_strerror(st_),            \
                    svc_last_errmsg()[0] || !app ? svc_last_errmsg() : svc_app_errmsg(app)); \
            svc_app_free(app);                                                          \
            return 1;                                                                   \
        }                                                                               \
    } while (0)

/* Where the configuration is: SVC_CONFIG_FILE when set, else hello.yaml
 * (the build passes the path of the one beside this file). */
#ifndef HELLO_CONFIG
#define HELLO_CONFIG "hello.yaml"
#endif

int main(void)
{
    svc_app *app = NULL;
    setenv("SVC_CONFIG_FILE", HELLO_CONFIG, 0); /* 0: an SVC_CONFIG_FILE given wins */

    /* NULL options everywhere: each feature reads its section of hello.yaml,
     * with SVC_* environment variables over it (http.port ↔ SVC_HTTP_PORT). */
    TRY(svc_app_new(&app, NULL));        /* 127.0.0.1:8080, request id, access log,
                                            security headers, maintenance mode */
    TRY(svc_add_probes(app, NULL));      /* /healthz /readyz /startupz */
    TRY(svc_add_metrics(app, NULL));     /* /metrics + request metrics */
    TRY(svc_add_cors(app, NULL));        /* cors: the allowlist */
    TRY(svc_add_ratelimit(app, NULL));   /* ratelimit: policies and routes */
    TRY(svc_add_idempotency(app, NULL)); /* idempotency: Idempotency-Key replays */
    TRY(svc_add_jobs(app, NULL));        /* jobs: queue, workers started with the app */
    TRY(svc_add_outbox(app, NULL));      /* outbox: relay started with the app, /readyz */

    /* What only code can add: routes, a job handler, a publisher, a check. */
    TRY(svc_jobs_register(svc_app_jobs(app), "welcome.email", send_welcome, NULL, 0));
    svc_outbox_publisher pub;
    svc_outbox_publisher_callback(&pub, publish_event, NULL);
    TRY(svc_outbox_http_set_publisher(app, &pub));
    TRY(svc_app_add_check(app, "store", store_check, &the_store, 500, 1));
    TRY(svc_app_route(app, "GET", "/hello/{name}", hello_name, NULL));
    TRY(svc_app_route(app, "POST", "/echo", echo, NULL));
    TRY(svc_app_route(app, "GET", "/orders/{id}", order, &the_store));
    TRY(svc_app_route(app, "GET", "/limited", limited, NULL));
    TRY(svc_app_route(app, "POST", "/payments", payment, &the_store));
    TRY(svc_app_route(app, "POST", "/signup", signup, NULL));
    TRY(svc_app_route(app, "GET", "/jobs/{id}", job_status, NULL));
    const char *admin_token = getenv("HELLO_ADMIN_TOKEN");
    if (admin_token && admin_token[0])   /* opt-in admin switch */
        TRY(svc_app_use_stage(app, SVC_STAGE_OBSERVE, "admin", admin_mw, (void *)admin_token));

    TRY(svc_app_start(app));
    printf("hello: listening on http://127.0.0.1:%u\n", (unsigned)svc_app_port(app));
    fflush(stdout);

    TRY(svc_app_run(app)); /* until SIGTERM / SIGINT, then a graceful shutdown */
    printf("hello: stopped gracefully\n");
    svc_app_free(app);     /* the queue, the limiter and the store go with it */
    return 0;
}
