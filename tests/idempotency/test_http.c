/*
 * test_http.c - svc_add_idempotency() on a live svc_app over loopback:
 * replays byte for byte with Idempotent-Replayed, 422 for another payload,
 * 409 + Retry-After while the first request runs, 400 for bad or missing
 * keys, tenants kept apart, 5xx stored or released, oversized responses not
 * stored, and 1,000 concurrent requests with one key running the handler once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../http/http_test_util.h"
#include "svcinfra/http.h"
#include "svcinfra/idempotency.h"

typedef struct env {
    svc_app *app;
    svc_idem *idem;
    uint16_t port;
    atomic_int runs;
    atomic_int gate_closed; /* /slow waits while 1 */
    atomic_int in_slow;
} env;

static env E;

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

static void h_get(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    (void)ud;
    atomic_fetch_add(&E.runs, 1);
    assert_int_equal(svc_res_text(res, 200, "read"), SVC_OK);
}

static void start(int release_on_5xx)
{
    memset(&E, 0, sizeof E);
    svc_app_opts ao;
    svc_app_opts_default(&ao);
    ao.port = 0;
    ao.threads = 4;
    ao.access_log = 0;
    assert_int_equal(svc_app_new(&E.app, &ao), SVC_OK);
    svc_idem_opts io;
    svc_idem_opts_default(&io);
    io.store_url = "memory:";
    io.max_response_bytes = 4096;
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
    o.release_on_5xx = release_on_5xx;
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
    assert_int_equal(svc_app_start(E.app), SVC_OK);
    E.port = svc_app_port(E.app);
}

static int setup(void **state)
{
    (void)state;
    start(0);
    return 0;
}

static int setup_release(void **state)
{
    (void)state;
    start(1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    svc_app_free(E.app);
    svc_idem_free(E.idem);
    return 0;
}

static void post(const char *path, const char *headers, const char *body, htu_response *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(htu_request(E.port, "POST", path, headers, body, r), 0);
}

#define JSON "Content-Type: application/json\r\n"

/* The response with the per-request headers (Date, X-Request-Id,
 * traceparent, Idempotent-Replayed, Connection) left out. */
static void stable_part(const htu_response *r, char *out, size_t cap)
{
    size_t o = (size_t)snprintf(out, cap, "%d\n", r->status);
    for (size_t i = 0; i < r->nheaders && o < cap; i++) {
        const char *n = r->names[i];
        if (!strcasecmp(n, "Date") || !strcasecmp(n, "X-Request-Id") ||
            !strcasecmp(n, "traceparent") || !strcasecmp(n, "Idempotent-Replayed") ||
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

/* ---- 1,000 concurrent requests, one key ------------------------------------------------ */

#define CLIENTS 8
#define PER_CLIENT 125

typedef struct tally {
    atomic_int created, replayed, conflict, other;
} tally;

static void *hammer(void *p)
{
    tally *t = p;
    for (int i = 0; i < PER_CLIENT; i++) {
        htu_response r;
        memset(&r, 0, sizeof r);
        if (htu_request(E.port, "POST", "/pay", JSON "Idempotency-Key: storm-000001\r\n",
                        "{\"amount\":5}", &r) != 0) {
            atomic_fetch_add(&t->other, 1);
            continue;
        }
        if (r.status == 201 && htu_header(&r, "Idempotent-Replayed"))
            atomic_fetch_add(&t->replayed, 1);
        else if (r.status == 201)
            atomic_fetch_add(&t->created, 1);
        else if (r.status == 409 && htu_header(&r, "Retry-After"))
            atomic_fetch_add(&t->conflict, 1);
        else
            atomic_fetch_add(&t->other, 1);
        htu_response_free(&r);
    }
    return NULL;
}

static void thousand_concurrent_requests_run_the_handler_once(void **state)
{
    (void)state;
    tally t;
    memset(&t, 0, sizeof t);
    pthread_t th[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &t), 0);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&E.runs), 1);
    assert_int_equal(atomic_load(&t.created), 1);
    assert_int_equal(atomic_load(&t.other), 0);
    assert_int_equal(atomic_load(&t.created) + atomic_load(&t.replayed) +
                         atomic_load(&t.conflict),
                     CLIENTS * PER_CLIENT);
}

static void bad_options_are_refused(void **state)
{
    (void)state;
    svc_app *app = NULL;
    svc_app_opts ao;
    svc_app_opts_default(&ao);
    ao.port = 0;
    ao.access_log = 0;
    assert_int_equal(svc_app_new(&app, &ao), SVC_OK);
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

int main(void)
{
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
        cmocka_unit_test_setup_teardown(thousand_concurrent_requests_run_the_handler_once, setup,
                                        teardown),
        cmocka_unit_test(bad_options_are_refused),
    };
    return cmocka_run_group_tests_name("idempotency over HTTP", tests, NULL, NULL);
}
