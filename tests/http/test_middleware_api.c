/*
 * tests/http/test_middleware_api.c - the public calls middleware is written
 * with: svc_app_handler_timeout_ms(), svc_req_raw_path(),
 * svc_req_on_late_answer(), svc_res_header_add_n() / svc_res_header_set_n().
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http_test_util.h"
#include "svcinfra/config.h"
#include "svcinfra/http.h"

static svc_app *new_app(svc_app_opts *o)
{
    svc_app *app = NULL;
    assert_int_equal(svc_app_new(&app, o), SVC_OK);
    return app;
}

static void base_opts(svc_app_opts *o)
{
    svc_app_opts_default(o);
    o->port = 0;
    o->threads = 2;
    o->access_log = 0;
}

static uint16_t start(svc_app *app)
{
    assert_int_equal(svc_app_start(app), SVC_OK);
    uint16_t port = svc_app_port(app);
    assert_true(port > 0);
    return port;
}

/* ---- handler timeout ---------------------------------------------------------- */

static void handler_timeout_getter_reflects_options_and_configuration(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_handler_timeout_ms(app), 30000);
    svc_app_free(app);

    base_opts(&o);
    o.handler_timeout_ms = 1234;
    app = new_app(&o);
    assert_int_equal(svc_app_handler_timeout_ms(app), 1234);
    svc_app_free(app);

    char eb[256];
    svc_config *cfg = NULL;
    assert_int_equal(svc_config_parse(&cfg, "http:\n  handler_timeout: 2500ms\n", eb, sizeof eb),
                     SVC_OK);
    base_opts(&o);
    o.handler_timeout_ms = 1234;
    o.config = cfg;
    app = new_app(&o);
    assert_int_equal(svc_app_handler_timeout_ms(app), 2500);
    svc_app_free(app);
    svc_config_free(cfg);
}

/* ---- raw path ------------------------------------------------------------------- */

static void h_paths(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    char buf[512];
    snprintf(buf, sizeof buf, "%s|%s", svc_req_raw_path(req), svc_req_path(req));
    assert_int_equal(svc_res_text(res, 200, buf), SVC_OK);
}

static void raw_path_keeps_percent_escapes_and_drops_the_query(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_route(app, "GET", "/files/{name}", h_paths, NULL), SVC_OK);
    uint16_t port = start(app);
    htu_response r;
    assert_int_equal(htu_request(port, "GET", "/files/a%2Fb%20c?x=%41", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "/files/a%2Fb%20c|/files/a/b c");
    htu_response_free(&r);
    assert_int_equal(htu_request(port, "GET", "/files/plain", NULL, NULL, &r), 0);
    assert_string_equal(r.body, "/files/plain|/files/plain");
    htu_response_free(&r);
    svc_app_free(app);
}

/* ---- late-answer hook ----------------------------------------------------------- */

typedef struct late_seen {
    atomic_int calls;
    atomic_int status;          /* the handler's status as the hook saw it */
    atomic_bool body_ok;        /* the handler's body as the hook saw it */
    atomic_bool req_ok;         /* the hook got the request it was registered on */
    atomic_bool ud_ok;
    atomic_int status_after;    /* what the middleware sees once svc_next() returns */
} late_seen;

static late_seen seen;

static void on_late(svc_req *req, const svc_res *res, void *ud)
{
    atomic_fetch_add(&seen.calls, 1);
    atomic_store(&seen.status, svc_res_get_status(res));
    size_t n = 0;
    const char *b = svc_res_get_body(res, &n);
    atomic_store(&seen.body_ok, n == 4 && memcmp(b, "done", 4) == 0);
    atomic_store(&seen.req_ok, strcmp(svc_req_path(req), "/slow") == 0 ||
                                   strcmp(svc_req_path(req), "/fast") == 0);
    atomic_store(&seen.ud_ok, ud == &seen);
}

static void mw_hook(svc_req *req, svc_res *res, svc_chain *next, void *ud)
{
    (void)ud;
    svc_req_on_late_answer(req, on_late, &seen);
    svc_next(next);
    atomic_store(&seen.status_after, svc_res_get_status(res));
}

static void h_slow(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    htu_sleep_ms(150);
    assert_true(svc_req_remaining_ms(req) < 0);
    assert_int_equal(svc_res_text(res, 201, "done"), SVC_OK);
}

static void h_fast(svc_req *req, svc_res *res, void *ud)
{
    (void)req, (void)ud;
    assert_int_equal(svc_res_text(res, 201, "done"), SVC_OK);
}

static void reset_seen(void)
{
    atomic_store(&seen.calls, 0);
    atomic_store(&seen.status, 0);
    atomic_store(&seen.body_ok, false);
    atomic_store(&seen.req_ok, false);
    atomic_store(&seen.ud_ok, false);
    atomic_store(&seen.status_after, 0);
}

static void late_answer_hook_runs_only_for_a_late_handler_with_its_answer(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    o.handler_timeout_ms = 50;
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_use(app, "hook", mw_hook, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/slow", h_slow, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/fast", h_fast, NULL), SVC_OK);
    uint16_t port = start(app);
    htu_response r;

    /* in time: no call, the handler's answer is sent */
    reset_seen();
    assert_int_equal(htu_request(port, "GET", "/fast", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 201);
    htu_response_free(&r);
    assert_int_equal(atomic_load(&seen.calls), 0);
    assert_int_equal(atomic_load(&seen.status_after), 201);

    /* no handler ran (404): no call */
    reset_seen();
    assert_int_equal(htu_request(port, "GET", "/nowhere", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    htu_response_free(&r);
    assert_int_equal(atomic_load(&seen.calls), 0);

    /* late: one call with the handler's own answer, then the 503 */
    reset_seen();
    assert_int_equal(htu_request(port, "GET", "/slow", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "\"code\":\"TIMEOUT\""));
    htu_response_free(&r);
    assert_int_equal(atomic_load(&seen.calls), 1);
    assert_int_equal(atomic_load(&seen.status), 201);
    assert_true(atomic_load(&seen.body_ok));
    assert_true(atomic_load(&seen.req_ok));
    assert_true(atomic_load(&seen.ud_ok));
    assert_int_equal(atomic_load(&seen.status_after), 503);
    svc_app_free(app);
}

static void mw_hook_then_remove(svc_req *req, svc_res *res, svc_chain *next, void *ud)
{
    (void)res, (void)ud;
    svc_req_on_late_answer(req, on_late, &seen);
    svc_req_on_late_answer(req, NULL, NULL);
    svc_next(next);
}

static void late_answer_hook_removed_with_null_does_not_run(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    o.handler_timeout_ms = 50;
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_use(app, "hook", mw_hook_then_remove, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/slow", h_slow, NULL), SVC_OK);
    uint16_t port = start(app);
    reset_seen();
    htu_response r;
    assert_int_equal(htu_request(port, "GET", "/slow", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 503);
    htu_response_free(&r);
    assert_int_equal(atomic_load(&seen.calls), 0);
    svc_app_free(app);
}

/* ---- header setters by length ------------------------------------------------------ */

typedef struct n_results {
    atomic_int bad_cr, bad_lf, bad_nul, bad_name, empty_name, bad_name_nul;
    atomic_int long_del, long_ctl, long_cr_tail, long_bad_name;
    atomic_bool unchanged_after_error;
} n_results;

static n_results nres;

static void h_headers_n(svc_req *req, svc_res *res, void *ud)
{
    (void)req, (void)ud;
    /* bytes past the length are never read: "X-Oneignored" → "X-One" */
    assert_int_equal(svc_res_header_add_n(res, "X-Oneignored", 5, "first\r\nEvil: 1", 5),
                     SVC_OK);
    char buf[] = {'s', 'e', 'c', 'o', 'n', 'd', '!', '!'}; /* no NUL */
    assert_int_equal(svc_res_header_add_n(res, "X-One", 5, buf, 6), SVC_OK);
    memset(buf, 'Z', sizeof buf); /* copied: reusing the buffer changes nothing */
    /* an empty value is valid (removed again: the server does not send one) */
    assert_int_equal(svc_res_header_add_n(res, "X-Empty", 7, "", 0), SVC_OK);
    assert_string_equal(svc_res_header(res, "X-Empty"), "");
    svc_res_header_remove(res, "X-Empty");
    /* set replaces every one of the name, any case */
    assert_int_equal(svc_res_header_add_n(res, "X-Two", 5, "a", 1), SVC_OK);
    assert_int_equal(svc_res_header_add_n(res, "x-two", 5, "b", 1), SVC_OK);
    assert_int_equal(svc_res_header_set_n(res, "X-TWO;junk", 5, "only", 4), SVC_OK);

    size_t before = svc_res_header_count(res);
    atomic_store(&nres.bad_cr, svc_res_header_set_n(res, "X-Bad", 5, "a\rb", 3));
    atomic_store(&nres.bad_lf, svc_res_header_add_n(res, "X-Bad", 5, "a\nb", 3));
    atomic_store(&nres.bad_nul, svc_res_header_add_n(res, "X-Bad", 5, "a\0b", 3));
    atomic_store(&nres.bad_name, svc_res_header_add_n(res, "X Bad", 5, "v", 1));
    atomic_store(&nres.empty_name, svc_res_header_set_n(res, "X-Two", 0, "v", 1));
    atomic_store(&nres.bad_name_nul, svc_res_header_set_n(res, "X-Two\0", 6, "v", 1));
    /* long values are checked a word at a time: a bad byte anywhere counts */
    atomic_store(&nres.long_del, svc_res_header_set_n(res, "X-Long", 6, "abcdefghij\x7fklmnop", 17));
    atomic_store(&nres.long_ctl, svc_res_header_set_n(res, "X-Long", 6, "abcdefgh\x01", 9));
    atomic_store(&nres.long_cr_tail,
                 svc_res_header_set_n(res, "X-Long", 6, "0123456789abcdef\r", 17));
    atomic_store(&nres.long_bad_name,
                 svc_res_header_set_n(res, "X-Long-Header:Name", 18, "v", 1));
    atomic_store(&nres.unchanged_after_error,
                 svc_res_header_count(res) == before &&
                     strcmp(svc_res_header(res, "X-Two"), "only") == 0);
    /* HTAB and obs-text pass, also inside a word */
    static const char tabbed[] = "a\tb c\xc3\xa9 defghijklmnop";
    assert_int_equal(svc_res_header_set_n(res, "X-Tabbed-Header-Name", 20, tabbed,
                                          sizeof tabbed - 1),
                     SVC_OK);
    assert_int_equal(svc_res_header_set_n(res, "X-Short-Tab", 11, "x\tyz", 4), SVC_OK);
    assert_int_equal(svc_res_text(res, 200, "ok"), SVC_OK);
}

static void header_setters_by_length_copy_exactly_len_bytes_and_refuse_bad_text(void **state)
{
    (void)state;
    svc_app_opts o;
    base_opts(&o);
    svc_app *app = new_app(&o);
    assert_int_equal(svc_app_route(app, "GET", "/h", h_headers_n, NULL), SVC_OK);
    uint16_t port = start(app);
    htu_response r;
    assert_int_equal(htu_request(port, "GET", "/h", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(htu_header_count(&r, "X-One"), 2);
    assert_string_equal(htu_header_at(&r, "X-One", 0), "first");
    assert_string_equal(htu_header_at(&r, "X-One", 1), "second");
    assert_null(htu_header(&r, "Evil"));
    assert_null(htu_header(&r, "X-Oneignored"));
    assert_int_equal(htu_header_count(&r, "X-Two"), 1);
    assert_string_equal(htu_header(&r, "X-Two"), "only");
    assert_null(htu_header(&r, "X-Bad"));
    assert_null(htu_header(&r, "X-Long"));
    assert_string_equal(htu_header(&r, "X-Short-Tab"), "x\tyz");
    assert_string_equal(htu_header(&r, "X-Tabbed-Header-Name"), "a\tb c\xc3\xa9 defghijklmnop");
    htu_response_free(&r);

    assert_int_equal(atomic_load(&nres.bad_cr), SVC_EINVAL);
    assert_int_equal(atomic_load(&nres.bad_lf), SVC_EINVAL);
    assert_int_equal(atomic_load(&nres.bad_nul), SVC_EINVAL);
    assert_int_equal(atomic_load(&nres.bad_name), SVC_EINVAL);
    assert_int_equal(atomic_load(&nres.empty_name), SVC_EINVAL);
    assert_int_equal(atomic_load(&nres.bad_name_nul), SVC_EINVAL);
    assert_int_equal(atomic_load(&nres.long_del), SVC_EINVAL);
    assert_int_equal(atomic_load(&nres.long_ctl), SVC_EINVAL);
    assert_int_equal(atomic_load(&nres.long_cr_tail), SVC_EINVAL);
    assert_int_equal(atomic_load(&nres.long_bad_name), SVC_EINVAL);
    assert_true(atomic_load(&nres.unchanged_after_error));
    svc_app_free(app);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(handler_timeout_getter_reflects_options_and_configuration),
        cmocka_unit_test(raw_path_keeps_percent_escapes_and_drops_the_query),
        cmocka_unit_test(late_answer_hook_runs_only_for_a_late_handler_with_its_answer),
        cmocka_unit_test(late_answer_hook_removed_with_null_does_not_run),
        cmocka_unit_test(header_setters_by_length_copy_exactly_len_bytes_and_refuse_bad_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
