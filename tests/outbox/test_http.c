/* test_http.c - svc_add_outbox(): an outbox made from the app's YAML, a
 * relay started with the app that publishes what a handler put, stopped
 * only after the last request on shutdown; /readyz failing on an old
 * backlog; the relay's metrics in the app's registry; svc_app_outbox() and
 * free order (memory: backend, loopback HTTP). */
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

#include "svcinfra/config.h"
#include "svcinfra/http.h"
#include "svcinfra/outbox.h"

#include "../http/http_test_util.h"

static atomic_int published;
static atomic_int destroyed;

static svc_status count_publish(void *ctx, const svc_outbox_message *m, char *err, size_t errlen)
{
    (void)ctx, (void)m, (void)err, (void)errlen;
    atomic_fetch_add(&published, 1);
    return SVC_OK;
}

static void count_destroy(void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&destroyed, 1);
}

static svc_outbox_publisher counting_publisher(void)
{
    svc_outbox_publisher p;
    svc_outbox_publisher_callback(&p, count_publish, NULL);
    p.destroy = count_destroy;
    return p;
}

/* true once `published` reached n (within 5 s). */
static int wait_published(int n)
{
    for (int i = 0; i < 500 && atomic_load(&published) < n; i++)
        htu_sleep_ms(10);
    return atomic_load(&published) >= n;
}

static svc_app *app_with_yaml(const char *yaml)
{
    svc_config *cfg = NULL;
    char eb[256];
    assert_int_equal(svc_config_parse(&cfg, yaml, eb, sizeof eb), SVC_OK);
    svc_app_opts ao;
    svc_app_opts_default(&ao);
    ao.port = 0;
    ao.access_log = 0;
    ao.config = cfg;
    svc_app *app = NULL;
    assert_int_equal(svc_app_new(&app, &ao), SVC_OK);
    svc_config_free(cfg); /* the app keeps its own reference */
    return app;
}

/* POST /orders: an event put by a handler. */
static void put_route(svc_req *req, svc_res *res, void *ud)
{
    (void)req, (void)ud;
    svc_outbox *ob = ud;
    if (svc_outbox_put(ob, "order.paid", "order-1", "{\"id\":1}", NULL, NULL) != SVC_OK) {
        svc_res_status(res, 500);
        return;
    }
    svc_res_status(res, 202);
}

static void event_put_in_a_handler_is_published_by_the_apps_relay(void **state)
{
    (void)state;
    atomic_store(&published, 0);
    atomic_store(&destroyed, 0);
    svc_app *app = app_with_yaml("outbox:\n  url: \"memory:\"\n  poll_interval: 20ms\n"
                                 "  batch_size: 10\n");
    assert_null(svc_app_outbox(app));
    assert_int_equal(svc_add_outbox(app, NULL), SVC_OK);
    svc_outbox *ob = svc_app_outbox(app);
    assert_non_null(ob);
    assert_string_equal(svc_outbox_backend_name(ob), "memory");
    assert_int_equal(svc_add_metrics(app, NULL), SVC_OK);
    svc_outbox_publisher pub = counting_publisher();
    assert_int_equal(svc_outbox_http_set_publisher(app, &pub), SVC_OK);
    assert_int_equal(svc_app_route(app, "POST", "/orders", put_route, ob), SVC_OK);
    assert_int_equal(atomic_load(&published), 0);
    assert_int_equal(svc_app_start(app), SVC_OK);
    /* started: the publisher can no longer change (and the one given is destroyed) */
    svc_outbox_publisher late = counting_publisher();
    assert_int_equal(svc_outbox_http_set_publisher(app, &late), SVC_EBUSY);
    assert_int_equal(atomic_load(&destroyed), 1);

    htu_response r;
    assert_int_equal(htu_request(svc_app_port(app), "POST", "/orders", NULL, "", &r), 0);
    assert_int_equal(r.status, 202);
    htu_response_free(&r);
    assert_true(wait_published(1));

    assert_int_equal(htu_request(svc_app_port(app), "GET", "/metrics", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "outbox_published_total 1"));
    htu_response_free(&r);

    assert_int_equal(svc_app_shutdown(app), SVC_OK);
    svc_app_free(app);
    assert_int_equal(atomic_load(&destroyed), 2); /* the relay's publisher too */
}

/* A handler still running when shutdown begins puts an event and waits for
 * it to be published: the relay stops only after that request. */
static atomic_int slow_saw_publish;

static void slow_route(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    svc_outbox *ob = ud;
    htu_sleep_ms(300); /* shutdown has begun meanwhile */
    int before = atomic_load(&published);
    if (svc_outbox_put(ob, "order.paid", "order-2", "{}", NULL, NULL) != SVC_OK) {
        svc_res_status(res, 500);
        return;
    }
    atomic_store(&slow_saw_publish, wait_published(before + 1));
    svc_res_status(res, 204);
}

typedef struct request_arg {
    uint16_t port;
    int status;
} request_arg;

static void *slow_request(void *arg)
{
    request_arg *a = arg;
    htu_response r;
    a->status = htu_request(a->port, "POST", "/slow", NULL, "", &r) == 0 ? r.status : -1;
    if (a->status > 0)
        htu_response_free(&r);
    return NULL;
}

static void shutdown_stops_the_relay_after_the_last_request(void **state)
{
    (void)state;
    atomic_store(&published, 0);
    atomic_store(&slow_saw_publish, 0);
    svc_app *app = app_with_yaml("outbox:\n  poll_interval: 20ms\n");
    assert_int_equal(svc_add_outbox(app, NULL), SVC_OK);
    svc_outbox *ob = svc_outbox_ref(svc_app_outbox(app));
    svc_outbox_publisher pub = counting_publisher();
    assert_int_equal(svc_outbox_http_set_publisher(app, &pub), SVC_OK);
    assert_int_equal(svc_app_route(app, "POST", "/slow", slow_route, ob), SVC_OK);
    assert_int_equal(svc_app_start(app), SVC_OK);

    request_arg a = {.port = svc_app_port(app)};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, slow_request, &a), 0);
    htu_sleep_ms(100); /* the request is in the handler */
    assert_int_equal(svc_app_shutdown(app), SVC_OK);
    pthread_join(t, NULL);
    assert_int_equal(a.status, 204);
    assert_int_equal(atomic_load(&slow_saw_publish), 1);

    /* after shutdown the relay is stopped: a put stays unpublished */
    int n = atomic_load(&published);
    assert_int_equal(svc_outbox_put(ob, "order.paid", "order-3", "{}", NULL, NULL), SVC_OK);
    htu_sleep_ms(200);
    assert_int_equal(atomic_load(&published), n);
    svc_app_free(app);
    /* the outbox outlives the app: it holds its own reference */
    svc_outbox_stats st;
    assert_int_equal(svc_outbox_stats_get(ob, &st), SVC_OK);
    assert_int_equal(st.pending, 1);
    svc_outbox_free(ob);
}

static void readiness_fails_while_the_backlog_is_older_than_max_backlog_age(void **state)
{
    (void)state;
    /* no publisher: this process runs no relay, the backlog grows */
    svc_app *app = app_with_yaml("outbox:\n  max_backlog_age: 100ms\n");
    assert_int_equal(svc_add_probes(app, NULL), SVC_OK);
    assert_int_equal(svc_add_outbox(app, NULL), SVC_OK);
    assert_int_equal(svc_app_start(app), SVC_OK);
    uint16_t port = svc_app_port(app);
    htu_response r;
    assert_int_equal(htu_request(port, "GET", "/readyz", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200); /* nothing waits */
    htu_response_free(&r);

    assert_int_equal(svc_outbox_put(svc_app_outbox(app), "t", "k", "{}", NULL, NULL), SVC_OK);
    htu_sleep_ms(250);
    assert_int_equal(htu_request(port, "GET", "/readyz", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "outbox"));
    assert_non_null(strstr(r.body, "over max_backlog_age 100 ms"));
    htu_response_free(&r);

    /* once it is published, ready again */
    uint64_t del;
    svc_outbox_relay_opts ro;
    svc_outbox_relay_opts_default(&ro);
    svc_outbox_publisher_callback(&ro.publisher, count_publish, NULL);
    svc_outbox_relay *relay;
    assert_int_equal(svc_outbox_relay_new(&relay, svc_app_outbox(app), &ro), SVC_OK);
    size_t n = 0;
    assert_int_equal(svc_outbox_relay_run_once(relay, &n, NULL), SVC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(svc_outbox_prune(svc_app_outbox(app), 0, &del), SVC_OK);
    assert_int_equal(htu_request(port, "GET", "/readyz", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    htu_response_free(&r);
    assert_int_equal(svc_app_shutdown(app), SVC_OK);
    svc_app_free(app);
    svc_outbox_relay_free(relay); /* after the app: the relay holds the outbox */
}

static void wiring_errors_are_reported(void **state)
{
    (void)state;
    atomic_store(&destroyed, 0);
    assert_null(svc_app_outbox(NULL));
    /* a store kind the outbox has not: the standard message */
    svc_app *app = app_with_yaml("outbox:\n  url: redis://127.0.0.1:1/0\n");
    assert_int_equal(svc_add_outbox(app, NULL), SVC_ENOTSUP);
    assert_string_equal(svc_last_errmsg(),
                        "outbox: redis stores are not supported (use memory: or postgres://)");
    assert_null(svc_app_outbox(app));
    svc_outbox_publisher pub = counting_publisher();
    assert_int_equal(svc_outbox_http_set_publisher(app, &pub), SVC_EINVAL); /* nothing wired */
    assert_int_equal(atomic_load(&destroyed), 1);
    svc_app_free(app);

    /* a bad value of the section names its key */
    app = app_with_yaml("outbox:\n  batch_size: 0\n");
    assert_int_equal(svc_add_outbox(app, NULL), SVC_ECONFIG);
    assert_non_null(strstr(svc_last_errmsg(), "outbox.batch_size"));
    svc_app_free(app);

    /* explicit options: a given outbox gets a reference of the app's; the
     * publisher is owned by the wiring, also when it fails */
    app = app_with_yaml("outbox:\n  url: redis://127.0.0.1:1/0\n"); /* not read: explicit */
    svc_outbox *ob;
    assert_int_equal(svc_outbox_new(&ob, NULL), SVC_OK);
    svc_outbox_http_opts ho;
    svc_outbox_http_opts_default(&ho);
    ho.outbox = ob;
    ho.relay.publisher = counting_publisher();
    assert_int_equal(svc_add_outbox(app, &ho), SVC_OK);
    assert_ptr_equal(svc_app_outbox(app), ob);
    svc_outbox_free(ob); /* the app's reference keeps it */
    assert_string_equal(svc_outbox_backend_name(svc_app_outbox(app)), "memory");
    ho.outbox = NULL;
    ho.relay.publisher = counting_publisher();
    assert_int_equal(svc_add_outbox(app, &ho), SVC_EEXIST);
    assert_int_equal(atomic_load(&destroyed), 2);
    svc_app_free(app);
    assert_int_equal(atomic_load(&destroyed), 3);
}

/* The app's configuration is its YAML with the environment over it: the
 * section's keys come from SVC_OUTBOX_* too. */
static void wiring_reads_the_environment_over_the_yaml(void **state)
{
    (void)state;
    setenv("SVC_OUTBOX_MAX_BACKLOG_AGE", "100ms", 1);
    svc_app *app = app_with_yaml("outbox:\n  max_backlog_age: 1h\n");
    assert_int_equal(svc_add_probes(app, NULL), SVC_OK);
    assert_int_equal(svc_add_outbox(app, NULL), SVC_OK);
    unsetenv("SVC_OUTBOX_MAX_BACKLOG_AGE");
    assert_int_equal(svc_app_start(app), SVC_OK);
    assert_int_equal(svc_outbox_put(svc_app_outbox(app), "t", "k", "{}", NULL, NULL), SVC_OK);
    htu_sleep_ms(250);
    htu_response r;
    assert_int_equal(htu_request(svc_app_port(app), "GET", "/readyz", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "over max_backlog_age 100 ms"));
    htu_response_free(&r);
    /* the outbox may be freed after its app, or (here) before: references */
    svc_outbox *ob = svc_outbox_ref(svc_app_outbox(app));
    svc_outbox_free(ob);
    assert_int_equal(svc_app_shutdown(app), SVC_OK);
    svc_app_free(app);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wiring_reads_the_environment_over_the_yaml),
        cmocka_unit_test(event_put_in_a_handler_is_published_by_the_apps_relay),
        cmocka_unit_test(shutdown_stops_the_relay_after_the_last_request),
        cmocka_unit_test(readiness_fails_while_the_backlog_is_older_than_max_backlog_age),
        cmocka_unit_test(wiring_errors_are_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
