/*
 * test_concurrency.c - strong ETags and HTTP preconditions: If-None-Match
 * → 304 on reads, If-Match → 412 on a mismatch, a required If-Match → 428,
 * malformed list members skipped, the 409 of a lost update.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../http/http_test_util.h"
#include "svcinfra/concurrency.h"
#include "svcinfra/http.h"

static void etags_from_versions_and_content(void **state)
{
    (void)state;
    char a[SVC_ETAG_MAX], b[SVC_ETAG_MAX];
    assert_int_equal(svc_etag_from_version(7, a, sizeof a), SVC_OK);
    assert_string_equal(a, "\"v7\"");
    assert_int_equal(svc_etag_from_version(-1, a, sizeof a), SVC_EINVAL);
    assert_int_equal(svc_etag_from_version(7, a, 3), SVC_ERANGE);
    assert_int_equal(svc_etag_from_content("hello", 5, a, sizeof a), SVC_OK);
    assert_int_equal(svc_etag_from_content("hello", 5, b, sizeof b), SVC_OK);
    assert_string_equal(a, b);
    assert_true(a[0] == '"' && a[strlen(a) - 1] == '"');
    assert_int_equal(svc_etag_from_content("hellO", 5, b, sizeof b), SVC_OK);
    assert_string_not_equal(a, b);
}

static void match_follows_strong_and_weak_comparison(void **state)
{
    (void)state;
    assert_true(svc_etag_match("\"v1\", \"v2\"", "\"v2\"", 0));
    assert_false(svc_etag_match("\"v1\", \"v3\"", "\"v2\"", 0));
    assert_true(svc_etag_match("*", "\"v2\"", 0));
    assert_false(svc_etag_match("*", NULL, 0));
    assert_false(svc_etag_match("W/\"v2\"", "\"v2\"", 0)); /* strong: weak never matches */
    assert_true(svc_etag_match("W/\"v2\"", "\"v2\"", 1));
    assert_false(svc_etag_match("v2", "\"v2\"", 1)); /* malformed */
    assert_false(svc_etag_match(NULL, "\"v2\"", 1));
}

static void malformed_list_member_is_skipped_not_the_rest_of_the_list(void **state)
{
    (void)state;
    assert_true(svc_etag_match("foo, \"v3\"", "\"v3\"", 0));
    assert_true(svc_etag_match("W/, \"v3\"", "\"v3\"", 1));
    assert_true(svc_etag_match("\"v1\"x, \"v3\"", "\"v3\"", 0));
    assert_false(svc_etag_match("\"v3\"x, \"v1\"", "\"v3\"", 0)); /* "v3"x is not "v3" */
    assert_true(svc_etag_match(" \"v1\" , bad , \"v3\" ", "\"v3\"", 0));
    assert_false(svc_etag_match("foo, bar", "\"v3\"", 0));
    assert_false(svc_etag_match("\"v3", "\"v3\"", 0)); /* unterminated */
}

static const char *current = "\"v3\"";

static void h_doc(svc_req *req, svc_res *res, void *ud)
{
    int require = ud != NULL;
    if (svc_etag_precondition(req, res, current, require))
        return;
    if (strcmp(svc_req_method(req), "GET") == 0)
        assert_int_equal(svc_res_text(res, 200, "doc"), SVC_OK);
    else
        assert_int_equal(svc_rowversion_conflict(res, 3), SVC_OK);
}

static svc_app *app;
static uint16_t port;

static int setup(void **state)
{
    (void)state;
    svc_app_opts ao;
    svc_app_opts_default(&ao);
    ao.port = 0;
    ao.threads = 1;
    ao.access_log = 0;
    assert_int_equal(svc_app_new(&app, &ao), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/doc", h_doc, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "PUT", "/doc", h_doc, (void *)1), SVC_OK);
    assert_int_equal(svc_app_route(app, "PATCH", "/doc", h_doc, NULL), SVC_OK);
    assert_int_equal(svc_app_start(app), SVC_OK);
    port = svc_app_port(app);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    svc_app_free(app);
    return 0;
}

static int call(const char *method, const char *headers, htu_response *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(htu_request(port, method, "/doc", headers,
                                 strcmp(method, "GET") ? "{}" : NULL, r),
                     0);
    return r->status;
}

static void preconditions_over_http(void **state)
{
    (void)state;
    htu_response r;
    assert_int_equal(call("GET", NULL, &r), 200);
    assert_string_equal(htu_header(&r, "ETag"), "\"v3\"");
    htu_response_free(&r);
    assert_int_equal(call("GET", "If-None-Match: \"v3\"\r\n", &r), 304);
    assert_string_equal(htu_header(&r, "ETag"), "\"v3\"");
    assert_int_equal(r.body_len, 0);
    htu_response_free(&r);
    assert_int_equal(call("GET", "If-None-Match: \"v2\"\r\n", &r), 200);
    htu_response_free(&r);
    /* PUT requires If-Match */
    assert_int_equal(call("PUT", NULL, &r), 428);
    assert_non_null(strstr(r.body, "\"code\":\"PRECONDITION_REQUIRED\""));
    htu_response_free(&r);
    assert_int_equal(call("PUT", "If-Match: \"v2\"\r\n", &r), 412);
    assert_non_null(strstr(r.body, "\"code\":\"PRECONDITION\""));
    htu_response_free(&r);
    /* a malformed member before the current ETag does not hide it */
    assert_int_equal(call("PUT", "If-Match: foo, \"v3\"\r\n", &r), 409);
    htu_response_free(&r);
    /* matching If-Match proceeds; the handler then reports a lost update */
    assert_int_equal(call("PUT", "If-Match: \"v3\"\r\n", &r), 409);
    assert_non_null(strstr(r.body, "\"current_version\":3"));
    assert_string_equal(htu_header(&r, "ETag"), "\"v3\"");
    htu_response_free(&r);
    /* PATCH does not require it */
    assert_int_equal(call("PATCH", NULL, &r), 409);
    htu_response_free(&r);
    assert_int_equal(call("PATCH", "If-None-Match: *\r\n", &r), 412);
    htu_response_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(etags_from_versions_and_content),
        cmocka_unit_test(match_follows_strong_and_weak_comparison),
        cmocka_unit_test(malformed_list_member_is_skipped_not_the_rest_of_the_list),
        cmocka_unit_test_setup_teardown(preconditions_over_http, setup, teardown),
    };
    return cmocka_run_group_tests_name("optimistic concurrency", tests, NULL, NULL);
}
