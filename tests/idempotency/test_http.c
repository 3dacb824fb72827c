/*
 * test_http.c - svc_add_idempotency() on a live svc_app over loopback:
 * replays byte for byte with Idempotent-Replayed, 422 for another payload,
 * 409 + Retry-After while the first request runs, 400 for bad or missing
 * keys, tenants kept apart, 5xx stored or released, oversized responses not
 * stored, a fingerprint callback, out of memory while fingerprinting (503),
 * a handler past its deadline (its own answer stored, never run twice), the
 * lease checked against the handler deadline, and bursts of connections
 * released together on one key running the handler once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../http/http_test_util.h"
#include "svcinfra/alloc.h"
#include "svcinfra/crypto.h"
#include "svcinfra/http.h"
#include "svcinfra/idempotency.h"

#define MS INT64_C(1000000)

typedef struct env {
    svc_app *app;
    svc_idem *idem;
    svc_manual_clock *mc;   /* app and engine clock of the "late" setups */
    uint16_t port;
    atomic_int runs;
    atomic_int gate_closed; /* /slow and /gated wait while 1 */
    atomic_int in_slow;
} env;

static env E;

/* ---- allocator: one malloc of a chosen size fails --------------------------------------- */

static atomic_size_t fail_size; /* 0: none; consumed by the failure */

static void *t_malloc(size_t n, void *ctx)
{
    (void)ctx;
    size_t want = atomic_load(&fail_size);
    if (want && n == want && atomic_compare_exchange_strong(&fail_size, &want, 0))
        return NULL;
    return malloc(n);
}

static void *t_realloc(void *p, size_t n, void *ctx)
{
    (void)ctx;
    return realloc(p, n);
}

static void t_free(void *p, void *ctx)
{
    (void)ctx;
    free(p);
}

static void h_pay(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    int n = atomic_fetch_add(&E.runs, 1) + 1;
    size_t blen = 0;
    const char *body = svc_req_body(req, &blen);
    char out[256];
    snprintf(out, sizeof out, "{\"run\":%d,\"echo\":%.*s}", n, (int)blen, body);
    assert_int_equal(svc_res_header_add(res, "Location", "/payments/1"), SVC_OK);
    assert_int_equal(svc_res_header_add(res, "Set-Cookie", "a=1"), SVC_OK);
    assert_int_equal(svc_res_header_add(res, "Set-Cookie", "b=2"), SVC_OK);
    assert_int_equal(svc_res_header_set(res, "Date", "Thu, 01 Jan 1970 00:00:00 GMT"), SVC_OK);
    assert_int_equal(svc_res_json_str(res, 201, out), SVC_OK);
}

static void h_slow(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    (void)ud;
    atomic_fetch_add(&E.runs, 1);
    atomic_store(&E.in_slow, 1);
    for (int i = 0; i < 1000 && atomic_load(&E.gate_closed); i++)
        htu_sleep_ms(10);
    assert_int_equal(svc_res_text(res, 200, "done"), SVC_OK);
}

static void h_fail(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    (void)ud;
    atomic_fetch_add(&E.runs, 1);
    assert_int_equal(svc_res_problem(res, 500, SVC_PROBLEM_INTERNAL, "boom"), SVC_OK);
}

static void h_big(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    (void)ud;
    atomic_fetch_add(&E.runs, 1);
    static char big[8192];
    memset(big, 'x', sizeof big);
    assert_int_equal(svc_res_body(res, big, sizeof big), SVC_OK);
}

/* More headers than a stored record holds (64). */
static void h_many_headers(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    (void)ud;
    atomic_fetch_add(&E.runs, 1);
    for (int i = 0; i < 70; i++) {
        char name[32];
        snprintf(name, sizeof name, "X-Part-%d", i);
        assert_int_equal(svc_res_header_add(res, name, "v"), SVC_OK);
    }
    assert_int_equal(svc_res_json_str(res, 200, "{}"), SVC_OK);
}

/* Does its work, then returns past the handler deadline (1 s) by moving
 * the manual clock 2 s: the app answers 503 TIMEOUT instead. */
static void h_late(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    (void)ud;
    atomic_fetch_add(&E.runs, 1);
    assert_int_equal(svc_res_header_set(res, "Location", "/late/1"), SVC_OK);
    assert_int_equal(svc_res_json_str(res, 201, "{\"effect\":\"done\"}"), SVC_OK);
    svc_manual_clock_advance(E.mc, 2000 * MS);
}

/* Holds its request until the gate opens (bounded), then answers 201. */
static void h_gated(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    (void)ud;
    int n = atomic_fetch_add(&E.runs, 1) + 1;
    atomic_store(&E.in_slow, 1);
    for (int i = 0; i < 1000 && atomic_load(&E.gate_closed); i++)
        htu_sleep_ms(10);
    char out[64];
    snprintf(out, sizeof out, "{\"run\":%d}", n);
    assert_int_equal(svc_res_header_add(res, "Set-Cookie", "s=1"), SVC_OK);
    assert_int_equal(svc_res_json_str(res, 201, out), SVC_OK);
}

/* Fingerprints the body only; refuses (400) an empty body. */
static svc_status body_only(svc_req *req, svc_sha256_ctx *ctx, void *ud)
{
    (void)ud;
    size_t n = 0;
    const char *body = svc_req_body(req, &n);
    return n ? svc_sha256_update(ctx, body, n) : SVC_EINVAL;
}

static void h_get(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    (void)ud;
    atomic_fetch_add(&E.runs, 1);
    assert_int_equal(svc_res_text(res, 200, "read"), SVC_OK);
}

typedef struct cfg {
    int release_on_5xx;
    svc_idem_fingerprint_fn fingerprint;
    bool late;  /* app and engine on the manual clock E.mc, handler deadline 1 s */
} cfg;

static void start_cfg(const cfg *c)
{
    memset(&E, 0, sizeof E);
    svc_app_opts ao;
    svc_app_opts_default(&ao);
    ao.port = 0;
    ao.threads = 4;
    ao.access_log = 0;
    if (c->late) {
        assert_int_equal(svc_manual_clock_new(&E.mc, 1, svc_clock_wall_ns(NULL)), SVC_OK);
        ao.clock = svc_manual_clock_get(E.mc);
        ao.handler_timeout_ms = 1000;
    }
    assert_int_equal(svc_app_new(&E.app, &ao), SVC_OK);
    svc_idem_opts io;
    svc_idem_opts_default(&io);
    io.url = "memory:";
    io.max_response_bytes = 4096;
    io.clock = ao.clock;
    assert_int_equal(svc_idem_new(&E.idem, &io), SVC_OK);
    svc_tenancy_opts to;
    svc_tenancy_opts_default(&to);
    to.trusted_header = "X-Tenant-Id";
    assert_int_equal(svc_add_tenancy(E.app, &to), SVC_OK);
    static const char *const required[] = {"POST /pay", NULL};
    static const char *const methods[] = {"POST", "PATCH", "PUT", NULL};
    svc_idem_http_opts o;
    svc_idem_http_opts_default(&o);
    o.idem = E.idem;
    o.required_routes = required;
    o.methods = methods;
    o.release_on_5xx = c->release_on_5xx;
    o.fingerprint = c->fingerprint;
    assert_int_equal(svc_add_idempotency(E.app, &o), SVC_OK);
    assert_int_equal(svc_app_route(E.app, "POST", "/pay", h_pay, NULL), SVC_OK);
    assert_int_equal(svc_app_route(E.app, "PUT", "/pay-put", h_pay, NULL), SVC_OK);
    assert_int_equal(svc_app_route(E.app, "POST", "/free", h_pay, NULL), SVC_OK);
    assert_int_equal(svc_app_route(E.app, "POST", "/slow", h_slow, NULL), SVC_OK);
    assert_int_equal(svc_app_route(E.app, "POST", "/fail", h_fail, NULL), SVC_OK);
    assert_int_equal(svc_app_route(E.app, "POST", "/big", h_big, NULL), SVC_OK);
    assert_int_equal(svc_app_route(E.app, "POST", "/many", h_many_headers, NULL), SVC_OK);
    assert_int_equal(svc_app_route(E.app, "POST", "/items/{id}", h_pay, NULL), SVC_OK);
    assert_int_equal(svc_app_route(E.app, "GET", "/read", h_get, NULL), SVC_OK);
    assert_int_equal(svc_app_route(E.app, "POST", "/gated", h_gated, NULL), SVC_OK);
    if (c->late)
        assert_int_equal(svc_app_route(E.app, "POST", "/late", h_late, NULL), SVC_OK);
    assert_int_equal(svc_app_start(E.app), SVC_OK);
    E.port = svc_app_port(E.app);
}

static int setup(void **state)
{
    (void)state;
    start_cfg(&(cfg){0});
    return 0;
}

static int setup_release(void **state)
{
    (void)state;
    start_cfg(&(cfg){.release_on_5xx = 1});
    return 0;
}

static int setup_body_fingerprint(void **state)
{
    (void)state;
    start_cfg(&(cfg){.fingerprint = body_only});
    return 0;
}

static int setup_late(void **state)
{
    (void)state;
    start_cfg(&(cfg){.late = true});
    return 0;
}

static int setup_late_release(void **state)
{
    (void)state;
    start_cfg(&(cfg){.late = true, .release_on_5xx = 1});
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    svc_app_free(E.app);
    svc_idem_free(E.idem);
    svc_manual_clock_free(E.mc);
    return 0;
}

static void post(const char *path, const char *headers, const char *body, htu_response *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(htu_request(E.port, "POST", path, headers, body, r), 0);
}

#define JSON "Content-Type: application/json\r\n"

/* The response with the per-request headers (Date, X-Request-Id,
 * traceresponse, Idempotent-Replayed, Connection) left out. */
static void stable_part(const htu_response *r, char *out, size_t cap)
{
    size_t o = (size_t)snprintf(out, cap, "%d\n", r->status);
    for (size_t i = 0; i < r->nheaders && o < cap; i++) {
        const char *n = r->names[i];
        if (!strcasecmp(n, "Date") || !strcasecmp(n, "X-Request-Id") ||
            !strcasecmp(n, "traceresponse") || !strcasecmp(n, "Idempotent-Replayed") ||
            !strcasecmp(n, "Connection"))
            continue;
        o += (size_t)snprintf(out + o, cap - o, "%s: %s\n", n, r->values[i]);
    }
    if (o < cap)
        snprintf(out + o, cap - o, "\n%s", r->body);
}

static void replay_is_byte_identical_and_marked(void **state)
{
    (void)state;
    htu_response a, b;
    post("/pay", JSON "Idempotency-Key: pay-0001\r\n", "{\"amount\":100}", &a);
    assert_int_equal(a.status, 201);
    assert_null(htu_header(&a, "Idempotent-Replayed"));
    post("/pay", JSON "Idempotency-Key: pay-0001\r\n", "{\"amount\":100}", &b);
    assert_int_equal(b.status, 201);
    assert_string_equal(htu_header(&b, "Idempotent-Replayed"), "true");
    assert_int_equal(atomic_load(&E.runs), 1);
    assert_int_equal(a.body_len, b.body_len);
    assert_memory_equal(a.body, b.body, a.body_len);
    assert_int_equal(htu_header_count(&b, "Set-Cookie"), 2);
    char sa[4096], sb[4096];
    stable_part(&a, sa, sizeof sa);
    stable_part(&b, sb, sizeof sb);
    assert_string_equal(sa, sb);
    /* per-request headers are fresh, not replayed */
    assert_string_not_equal(htu_header(&a, "X-Request-Id"), htu_header(&b, "X-Request-Id"));
    assert_string_not_equal(htu_header(&b, "Date"), "Thu, 01 Jan 1970 00:00:00 GMT");
    htu_response_free(&a);
    htu_response_free(&b);
}

static void sf_string_and_bare_token_name_the_same_key(void **state)
{
    (void)state;
    htu_response a, b;
    post("/pay", JSON "Idempotency-Key: \"key-sf-0001\"\r\n", "{}", &a);
    post("/pay", JSON "Idempotency-Key: key-sf-0001\r\n", "{}", &b);
    assert_int_equal(a.status, 201);
    assert_int_equal(b.status, 201);
    assert_non_null(htu_header(&b, "Idempotent-Replayed"));
    assert_int_equal(atomic_load(&E.runs), 1);
    htu_response_free(&a);
    htu_response_free(&b);
}

static void another_payload_with_the_key_is_422(void **state)
{
    (void)state;
    htu_response a, b;
    post("/pay", JSON "Idempotency-Key: pay-0002\r\n", "{\"amount\":100}", &a);
    post("/pay", JSON "Idempotency-Key: pay-0002\r\n", "{\"amount\":999}", &b);
    assert_int_equal(b.status, 422);
    assert_string_equal(htu_header(&b, "Content-Type"), "application/problem+json");
    assert_non_null(strstr(b.body, "\"code\":\"UNPROCESSABLE\""));
    assert_int_equal(atomic_load(&E.runs), 1);
    htu_response_free(&a);
    htu_response_free(&b);
}

static void bad_keys_are_400(void **state)
{
    (void)state;
    char hdr[400], longkey[300];
    memset(longkey, 'k', 256);
    longkey[256] = '\0';
    const char *bad[] = {"short", "\"unterminated", "has space inside", "\"bad\\q escape\"",
                         longkey};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        htu_response r;
        snprintf(hdr, sizeof hdr, JSON "Idempotency-Key: %s\r\n", bad[i]);
        post("/pay", hdr, "{}", &r);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(r.body, "\"code\":\"VALIDATION\""));
        htu_response_free(&r);
    }
    memset(longkey, 'k', 255);
    longkey[255] = '\0';
    htu_response r;
    snprintf(hdr, sizeof hdr, JSON "Idempotency-Key: %s\r\n", longkey);
    post("/pay", hdr, "{}", &r);
    assert_int_equal(r.status, 201); /* 255 is the longest accepted */
    htu_response_free(&r);
    assert_int_equal(atomic_load(&E.runs), 1);
}

static void missing_key_is_400_only_where_required(void **state)
{
    (void)state;
    htu_response r;
    post("/pay", JSON, "{}", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "Idempotency-Key"));
    htu_response_free(&r);
    post("/free", JSON, "{}", &r);
    assert_int_equal(r.status, 201);
    htu_response_free(&r);
    post("/free", JSON, "{}", &r);
    assert_int_equal(r.status, 201);
    htu_response_free(&r);
    assert_int_equal(atomic_load(&E.runs), 2);
}

static void uncovered_methods_pass_through(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        htu_response r;
        memset(&r, 0, sizeof r);
        assert_int_equal(htu_request(E.port, "GET", "/read", "Idempotency-Key: get-00001\r\n",
                                     NULL, &r), 0);
        assert_int_equal(r.status, 200);
        assert_null(htu_header(&r, "Idempotent-Replayed"));
        htu_response_free(&r);
    }
    assert_int_equal(atomic_load(&E.runs), 2);
    htu_response r;
    memset(&r, 0, sizeof r);
    assert_int_equal(htu_request(E.port, "PUT", "/pay-put", JSON "Idempotency-Key: put-00001\r\n",
                                 "{}", &r), 0);
    htu_response_free(&r);
    memset(&r, 0, sizeof r);
    assert_int_equal(htu_request(E.port, "PUT", "/pay-put", JSON "Idempotency-Key: put-00001\r\n",
                                 "{}", &r), 0);
    assert_non_null(htu_header(&r, "Idempotent-Replayed")); /* PUT configured */
    htu_response_free(&r);
    assert_int_equal(atomic_load(&E.runs), 3);
}

static void *post_slow(void *p)
{
    htu_response *r = p;
    post("/slow", JSON "Idempotency-Key: slow-0001\r\n", "{}", r);
    return NULL;
}

static void retry_while_in_flight_is_409_with_retry_after(void **state)
{
    (void)state;
    atomic_store(&E.gate_closed, 1);
    htu_response first, second;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, post_slow, &first), 0);
    for (int i = 0; i < 500 && !atomic_load(&E.in_slow); i++)
        htu_sleep_ms(10);
    assert_int_equal(atomic_load(&E.in_slow), 1);
    post("/slow", JSON "Idempotency-Key: slow-0001\r\n", "{}", &second);
    assert_int_equal(second.status, 409);
    assert_non_null(strstr(second.body, "\"code\":\"CONFLICT\""));
    const char *ra = htu_header(&second, "Retry-After");
    assert_non_null(ra);
    assert_true(atoi(ra) >= 1 && atoi(ra) <= 60);
    atomic_store(&E.gate_closed, 0);
    pthread_join(t, NULL);
    assert_int_equal(first.status, 200);
    assert_int_equal(atomic_load(&E.runs), 1);
    htu_response_free(&first);
    htu_response_free(&second);
}

static void tenants_with_the_same_key_do_not_collide(void **state)
{
    (void)state;
    htu_response a, b;
    post("/pay", JSON "X-Tenant-Id: acme\r\nIdempotency-Key: shared-01\r\n", "{\"t\":1}", &a);
    post("/pay", JSON "X-Tenant-Id: globex\r\nIdempotency-Key: shared-01\r\n", "{\"t\":2}", &b);
    assert_int_equal(a.status, 201);
    assert_int_equal(b.status, 201); /* not a 422: another tenant's key space */
    assert_null(htu_header(&b, "Idempotent-Replayed"));
    assert_int_equal(atomic_load(&E.runs), 2);
    htu_response_free(&a);
    htu_response_free(&b);
}

static void server_errors_are_stored_by_default(void **state)
{
    (void)state;
    htu_response a, b;
    post("/fail", JSON "Idempotency-Key: fail-0001\r\n", "{}", &a);
    post("/fail", JSON "Idempotency-Key: fail-0001\r\n", "{}", &b);
    assert_int_equal(a.status, 500);
    assert_int_equal(b.status, 500);
    assert_non_null(htu_header(&b, "Idempotent-Replayed"));
    assert_int_equal(atomic_load(&E.runs), 1);
    htu_response_free(&a);
    htu_response_free(&b);
}

static void release_on_5xx_lets_the_retry_run(void **state)
{
    (void)state;
    htu_response a, b;
    post("/fail", JSON "Idempotency-Key: fail-0002\r\n", "{}", &a);
    post("/fail", JSON "Idempotency-Key: fail-0002\r\n", "{}", &b);
    assert_int_equal(b.status, 500);
    assert_null(htu_header(&b, "Idempotent-Replayed"));
    assert_int_equal(atomic_load(&E.runs), 2);
    htu_response_free(&a);
    htu_response_free(&b);
}

static void oversized_response_is_sent_whole_but_not_stored(void **state)
{
    (void)state;
    htu_response a, b;
    post("/big", JSON "Idempotency-Key: big-00001\r\n", "{}", &a);
    assert_int_equal(a.status, 200);
    assert_int_equal(a.body_len, 8192); /* never truncated */
    post("/big", JSON "Idempotency-Key: big-00001\r\n", "{}", &b);
    assert_int_equal(b.body_len, 8192);
    assert_null(htu_header(&b, "Idempotent-Replayed")); /* released: ran again */
    assert_int_equal(atomic_load(&E.runs), 2);
    htu_response_free(&a);
    htu_response_free(&b);
}

static void response_with_too_many_headers_is_not_stored_partially(void **state)
{
    (void)state;
    htu_response a, b;
    post("/many", JSON "Idempotency-Key: many-0001\r\n", "{}", &a);
    assert_int_equal(a.status, 200);
    assert_non_null(htu_header(&a, "X-Part-40")); /* (the test client keeps 64 headers) */
    post("/many", JSON "Idempotency-Key: many-0001\r\n", "{}", &b);
    assert_int_equal(b.status, 200);
    assert_non_null(htu_header(&b, "X-Part-40"));
    /* not stored, key released: the retry ran the handler again rather than
     * replaying a record with some headers missing */
    assert_int_equal(atomic_load(&E.runs), 2);
    htu_response_free(&a);
    htu_response_free(&b);
}

/* /items/a%3Fb (one segment "a?b") and /items/a?b (segment "a", query "b")
 * are different requests: the same key on both must not replay. */
static void encoded_question_mark_and_query_do_not_share_a_fingerprint(void **state)
{
    (void)state;
    htu_response a, b;
    post("/items/a%3Fb", JSON "Idempotency-Key: items-0001\r\n", "{}", &a);
    assert_int_equal(a.status, 201);
    post("/items/a?b", JSON "Idempotency-Key: items-0001\r\n", "{}", &b);
    assert_int_equal(b.status, 422);
    htu_response_free(&a);
    htu_response_free(&b);
}

/* ---- the handler deadline --------------------------------------------------------------- */

/* The handler ran and did its work, but returned past its deadline: the
 * client got 503 TIMEOUT. A retry must replay what the handler did, not
 * the 503 and not a second run. */
static void late_answer_is_replayed_and_the_handler_runs_once(const char *key)
{
    char hdr[128];
    snprintf(hdr, sizeof hdr, JSON "Idempotency-Key: %s\r\n", key);
    htu_response a, b;
    post("/late", hdr, "{}", &a);
    assert_int_equal(a.status, 503);
    assert_non_null(strstr(a.body, "\"code\":\"TIMEOUT\""));
    post("/late", hdr, "{}", &b);
    assert_int_equal(b.status, 201);
    assert_string_equal(htu_header(&b, "Idempotent-Replayed"), "true");
    assert_string_equal(htu_header(&b, "Location"), "/late/1");
    assert_string_equal(b.body, "{\"effect\":\"done\"}");
    assert_int_equal(atomic_load(&E.runs), 1);
    htu_response_free(&a);
    htu_response_free(&b);
}

static void handler_past_its_deadline_has_its_own_answer_stored(void **state)
{
    (void)state;
    late_answer_is_replayed_and_the_handler_runs_once("late-0001");
}

static void handler_past_its_deadline_is_not_released_by_release_on_5xx(void **state)
{
    (void)state;
    late_answer_is_replayed_and_the_handler_runs_once("late-0002");
}

/* ---- fingerprints --------------------------------------------------------------------- */

static void fingerprint_callback_replaces_the_default(void **state)
{
    (void)state;
    htu_response r;
    post("/pay?x=1", JSON "Idempotency-Key: fpcb-0001\r\n", "{\"a\":1}", &r);
    assert_int_equal(r.status, 201);
    htu_response_free(&r);
    /* another query string, same body: the callback hashes the body only */
    post("/pay?x=2", JSON "Idempotency-Key: fpcb-0001\r\n", "{\"a\":1}", &r);
    assert_int_equal(r.status, 201);
    assert_string_equal(htu_header(&r, "Idempotent-Replayed"), "true");
    htu_response_free(&r);
    post("/pay?x=1", JSON "Idempotency-Key: fpcb-0001\r\n", "{\"a\":2}", &r);
    assert_int_equal(r.status, 422);
    htu_response_free(&r);
    /* the callback's error is the client's: 400 */
    post("/pay", JSON "Idempotency-Key: fpcb-0002\r\n", "", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"code\":\"VALIDATION\""));
    htu_response_free(&r);
    assert_int_equal(atomic_load(&E.runs), 1);
}

/* The default fingerprint copies "path?query" to the heap above 512 bytes
 * (path + query + 2): that allocation fails once. */
static void out_of_memory_while_fingerprinting_is_503_not_400(void **state)
{
    (void)state;
    char path[800];
    size_t pl = 777;
    memcpy(path, "/items/", 7);
    memset(path + 7, 'p', pl - 7);
    path[pl] = '\0';
    atomic_store(&fail_size, pl + 2);
    htu_response r;
    post(path, JSON "Idempotency-Key: oom-00001\r\n", "{}", &r);
    assert_int_equal(atomic_load(&fail_size), 0); /* the failure happened */
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "\"code\":\"UNAVAILABLE\""));
    assert_string_equal(htu_header(&r, "Retry-After"), "1");
    htu_response_free(&r);
    assert_int_equal(atomic_load(&E.runs), 0);
    /* nothing was claimed: the retry runs */
    post(path, JSON "Idempotency-Key: oom-00001\r\n", "{}", &r);
    assert_int_equal(r.status, 201);
    htu_response_free(&r);
    assert_int_equal(atomic_load(&E.runs), 1);
}

/* ---- bursts of connections, one key ------------------------------------------------------ */

/* Two bursts, each released together behind a barrier (clients connect
 * after it):
 *   1. FIRST clients race for the key; one claim wins and its handler is
 *      held at the gate. The others get 409, or (when the server thread
 *      holding the handler had accepted their connection) wait for it.
 *   2. Once the handler is held, SECOND more clients: the held thread cannot
 *      accept, so the other server threads answer every one of them, and
 *      with the claim in progress that answer is 409. The gate opens when
 *      all of them answered (a condition, not a time).
 * Then the handler answers and the waiting clients of burst 1 get replays. */
#define FIRST 48
#define SECOND 16

typedef struct burst {
    pthread_barrier_t go[2];
    const char *request;
    atomic_int answered[2];
    htu_response r[FIRST + SECOND];
} burst;

typedef struct client {
    burst *b;
    int i, phase;
} client;

static void *burst_client(void *p)
{
    client *c = p;
    htu_response *r = &c->b->r[c->i];
    memset(r, 0, sizeof *r);
    pthread_barrier_wait(&c->b->go[c->phase]);
    int fd = htu_connect(E.port);
    if (fd >= 0) {
        if (htu_send(fd, c->b->request, strlen(c->b->request)) == 0)
            (void)htu_read_response(fd, r);
        close(fd);
    }
    atomic_fetch_add(&c->b->answered[c->phase], 1);
    return NULL;
}

static void release_burst(burst *b, int phase, pthread_t *th, client *cl, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        cl[i] = (client){.b = b, .i = i, .phase = phase};
        assert_int_equal(pthread_create(&th[i], NULL, burst_client, &cl[i]), 0);
    }
    pthread_barrier_wait(&b->go[phase]);
}

/* Waits (bounded) until *v reaches want. */
static void await_int(atomic_int *v, int want)
{
    for (int i = 0; i < 1000 && atomic_load(v) < want; i++)
        htu_sleep_ms(10);
    assert_int_equal(atomic_load(v), want);
}

static void bursts_on_one_key_run_the_handler_once_and_replay_byte_for_byte(void **state)
{
    (void)state;
    static burst b;
    memset(&b, 0, sizeof b);
    b.request = "POST /gated HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" JSON
                "Idempotency-Key: burst-000001\r\nContent-Length: 12\r\n\r\n{\"amount\":5}";
    assert_int_equal(pthread_barrier_init(&b.go[0], NULL, FIRST + 1), 0);
    assert_int_equal(pthread_barrier_init(&b.go[1], NULL, SECOND + 1), 0);
    atomic_store(&E.gate_closed, 1);
    pthread_t th[FIRST + SECOND];
    client cl[FIRST + SECOND];
    release_burst(&b, 0, th, cl, 0, FIRST);
    await_int(&E.in_slow, 1);
    release_burst(&b, 1, th, cl, FIRST, SECOND);
    await_int(&b.answered[1], SECOND);
    atomic_store(&E.gate_closed, 0);
    for (int i = 0; i < FIRST + SECOND; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&b.go[0]);
    pthread_barrier_destroy(&b.go[1]);
    assert_int_equal(atomic_load(&E.runs), 1);
    int created = -1, replayed = 0, conflict = 0;
    for (int i = 0; i < FIRST + SECOND; i++) {
        const htu_response *r = &b.r[i];
        if (r->status == 201 && !htu_header(r, "Idempotent-Replayed")) {
            assert_int_equal(created, -1); /* exactly one first answer */
            created = i;
        } else if (r->status == 409) {
            assert_non_null(htu_header(r, "Retry-After"));
            conflict++;
        } else {
            assert_int_equal(r->status, 201);
            replayed++;
        }
        if (i >= FIRST)
            assert_int_equal(r->status, 409); /* burst 2 came while the handler was held */
    }
    assert_true(created >= 0 && created < FIRST);
    assert_true(conflict >= SECOND);
    assert_int_equal(1 + replayed + conflict, FIRST + SECOND);
    char first[4096], other[4096];
    stable_part(&b.r[created], first, sizeof first);
    for (int i = 0; i < FIRST + SECOND; i++) {
        if (b.r[i].status == 201 && i != created) {
            assert_int_equal(b.r[i].body_len, b.r[created].body_len);
            assert_memory_equal(b.r[i].body, b.r[created].body, b.r[created].body_len);
            stable_part(&b.r[i], other, sizeof other);
            assert_string_equal(first, other);
        }
    }
    for (int i = 0; i < FIRST + SECOND; i++)
        htu_response_free(&b.r[i]);
    /* and once done, a third burst replays */
    memset(&b.answered, 0, sizeof b.answered);
    assert_int_equal(pthread_barrier_init(&b.go[0], NULL, FIRST + 1), 0);
    release_burst(&b, 0, th, cl, 0, FIRST);
    for (int i = 0; i < FIRST; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&b.go[0]);
    for (int i = 0; i < FIRST; i++) {
        assert_int_equal(b.r[i].status, 201);
        assert_non_null(htu_header(&b.r[i], "Idempotent-Replayed"));
        stable_part(&b.r[i], other, sizeof other);
        assert_string_equal(first, other);
        htu_response_free(&b.r[i]);
    }
    assert_int_equal(atomic_load(&E.runs), 1);
}

/* An app not started, with the given handler deadline. */
static svc_app *idle_app(unsigned handler_timeout_ms)
{
    svc_app *app = NULL;
    svc_app_opts ao;
    svc_app_opts_default(&ao);
    ao.port = 0;
    ao.access_log = 0;
    ao.handler_timeout_ms = handler_timeout_ms;
    assert_int_equal(svc_app_new(&app, &ao), SVC_OK);
    return app;
}

static void bad_options_are_refused(void **state)
{
    (void)state;
    svc_app *app = idle_app(30000);
    svc_idem_http_opts o;
    svc_idem_http_opts_default(&o);
    o.min_key_len = 0;
    assert_int_equal(svc_add_idempotency(app, &o), SVC_EINVAL);
    svc_idem_http_opts_default(&o);
    static const char *const get[] = {"GET", NULL};
    o.methods = get;
    assert_int_equal(svc_add_idempotency(app, &o), SVC_EINVAL);
    svc_idem_http_opts_default(&o);
    static const char *const bad_route[] = {"POST pay", NULL};
    o.required_routes = bad_route;
    assert_int_equal(svc_add_idempotency(app, &o), SVC_EINVAL);
    assert_int_equal(svc_add_idempotency(app, NULL), SVC_OK); /* defaults: own memory engine */
    svc_app_free(app);
}

/* A lease not longer than the handler deadline would let a retry take over
 * the claim of a handler still inside its deadline. */
static void lease_not_longer_than_the_handler_deadline_is_refused(void **state)
{
    (void)state;
    svc_app *app = idle_app(60000);
    assert_int_equal(svc_add_idempotency(app, NULL), SVC_EINVAL); /* lease 60000 */
    svc_idem_opts io;
    svc_idem_opts_default(&io);
    io.url = "memory:";
    io.lease_ms = 60001;
    svc_idem *idem = NULL;
    assert_int_equal(svc_idem_new(&idem, &io), SVC_OK);
    svc_idem_http_opts o;
    svc_idem_http_opts_default(&o);
    o.idem = idem;
    assert_int_equal(svc_add_idempotency(app, &o), SVC_OK);
    svc_app_free(app);
    svc_idem_free(idem);
}

int main(void)
{
    /* first, before any other svc_ call */
    const svc_allocator a = {.malloc_fn = t_malloc, .realloc_fn = t_realloc, .free_fn = t_free};
    if (svc_set_allocator(&a) != SVC_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(replay_is_byte_identical_and_marked, setup, teardown),
        cmocka_unit_test_setup_teardown(sf_string_and_bare_token_name_the_same_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(another_payload_with_the_key_is_422, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_keys_are_400, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_key_is_400_only_where_required, setup, teardown),
        cmocka_unit_test_setup_teardown(uncovered_methods_pass_through, setup, teardown),
        cmocka_unit_test_setup_teardown(retry_while_in_flight_is_409_with_retry_after, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(tenants_with_the_same_key_do_not_collide, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(server_errors_are_stored_by_default, setup, teardown),
        cmocka_unit_test_setup_teardown(release_on_5xx_lets_the_retry_run, setup_release,
                                        teardown),
        cmocka_unit_test_setup_teardown(response_with_too_many_headers_is_not_stored_partially,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(encoded_question_mark_and_query_do_not_share_a_fingerprint,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(oversized_response_is_sent_whole_but_not_stored, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            bursts_on_one_key_run_the_handler_once_and_replay_byte_for_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(fingerprint_callback_replaces_the_default,
                                        setup_body_fingerprint, teardown),
        cmocka_unit_test_setup_teardown(out_of_memory_while_fingerprinting_is_503_not_400, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(handler_past_its_deadline_has_its_own_answer_stored,
                                        setup_late, teardown),
        cmocka_unit_test_setup_teardown(
            handler_past_its_deadline_is_not_released_by_release_on_5xx, setup_late_release,
            teardown),
        cmocka_unit_test(bad_options_are_refused),
        cmocka_unit_test(lease_not_longer_than_the_handler_deadline_is_refused),
    };
    return cmocka_run_group_tests_name("idempotency over HTTP", tests, NULL, NULL);
}
