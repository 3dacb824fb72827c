/*
 * tests/http/test_problem.c - RFC 9457 bodies: every member, the type URI,
 * extensions, the code table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "http/http_internal.h"
#include "http_test_util.h"

static void code_table_has_names_statuses_and_titles(void **state)
{
    (void)state;
    assert_string_equal(svc_problem_code_name(SVC_PROBLEM_NOT_FOUND), "NOT_FOUND");
    assert_int_equal(svc_problem_code_status(SVC_PROBLEM_RATE_LIMIT), 429);
    assert_string_equal(svc_problem_code_title(SVC_PROBLEM_CONFLICT), "Conflict");
    assert_string_equal(svc_problem_code_name((svc_problem_code)999), "INTERNAL");
    assert_int_equal(svc_problem_code_status((svc_problem_code)-1), 500);
}

static void h_problem(svc_req *req, svc_res *res, void *ud)
{
    (void)req, (void)ud;
    json_t *ext = json_pack("{s:i, s:[s], s:s}", "retry_in", 5, "fields", "name", "code", "X");
    assert_int_equal(svc_res_problem_ext(res, 0, SVC_PROBLEM_PRECONDITION_REQUIRED,
                                         "need \"If-Match\"", ext),
                     SVC_OK);
    json_decref(ext);
}

static void problem_body_carries_every_member(void **state)
{
    (void)state;
    svc_app_opts o;
    svc_app_opts_default(&o);
    o.port = 0;
    o.threads = 1;
    o.access_log = 0;
    o.problem_type_base = "https://example.test/p"; /* no trailing slash: one is added */
    svc_app *app = NULL;
    assert_int_equal(svc_app_new(&app, &o), SVC_OK);
    assert_int_equal(svc_app_route(app, "PUT", "/docs/{id}", h_problem, NULL), SVC_OK);
    assert_int_equal(svc_app_start(app), SVC_OK);
    htu_response r;
    assert_int_equal(htu_request(svc_app_port(app), "PUT", "/docs/7", "X-Request-Id: rid-1\r\n",
                                 "{}", &r),
                     0);
    assert_int_equal(r.status, 428);
    assert_string_equal(htu_header(&r, "Content-Type"), "application/problem+json");
    json_error_t je;
    json_t *j = json_loads(r.body, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "type")),
                        "https://example.test/p/precondition-required");
    assert_string_equal(json_string_value(json_object_get(j, "title")), "Precondition required");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 428);
    assert_string_equal(json_string_value(json_object_get(j, "detail")), "need \"If-Match\"");
    assert_string_equal(json_string_value(json_object_get(j, "instance")), "/docs/7");
    /* an extension cannot shadow a standard member */
    assert_string_equal(json_string_value(json_object_get(j, "code")), "PRECONDITION_REQUIRED");
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), "rid-1");
    assert_int_equal(json_integer_value(json_object_get(j, "retry_in")), 5);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "fields"), 0)), "name");
    json_decref(j);
    htu_response_free(&r);
    svc_app_free(app);
}

static void explicit_status_and_null_detail(void **state)
{
    (void)state;
    svc_app_opts o;
    svc_app_opts_default(&o);
    o.default_middleware = 0;
    svc_app *app = NULL;
    assert_int_equal(svc_app_new(&app, &o), SVC_OK);
    svc__exchange *ex = svc__exchange_new(app, "/x?y");
    assert_non_null(ex);
    ex->req.method = "GET";
    assert_int_equal(svc__req_parse_target(&ex->req), SVC_OK);
    assert_int_equal(svc_res_problem(&ex->res, 503, SVC_PROBLEM_TIMEOUT, NULL), SVC_OK);
    assert_int_equal(svc_res_get_status(&ex->res), 503);
    size_t n = 0;
    const char *body = svc_res_get_body(&ex->res, &n);
    json_error_t je;
    json_t *j = json_loadb(body, n, 0, &je);
    assert_non_null(j);
    assert_null(json_object_get(j, "detail"));
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 503);
    assert_string_equal(json_string_value(json_object_get(j, "code")), "TIMEOUT");
    assert_string_equal(json_string_value(json_object_get(j, "type")),
                        "about:blank"); /* the default */
    assert_string_equal(json_string_value(json_object_get(j, "instance")), "/x");
    assert_int_equal(strlen(json_string_value(json_object_get(j, "request_id"))), 32);
    json_decref(j);
    json_t *notobj = json_integer(1);
    assert_int_equal(svc_res_problem_ext(&ex->res, 0, SVC_PROBLEM_INTERNAL, NULL, notobj),
                     SVC_EINVAL);
    json_decref(notobj);
    svc__exchange_free(ex);
    svc_app_free(app);
}

/* The default type is about:blank (RFC 9457 4.2.1: the `code` member tells
 * problems apart), for no domain the service owns; a relative base gives
 * relative type URIs. */
static void type_is_about_blank_by_default_and_a_base_may_be_relative(void **state)
{
    (void)state;
    static const char *const bases[] = {NULL, "/problems", "about:blank"};
    static const char *const want[] = {"about:blank", "/problems/not-found", "about:blank"};
    for (size_t i = 0; i < 3; i++) {
        svc_app_opts o;
        svc_app_opts_default(&o);
        o.port = 0;
        o.threads = 1;
        o.access_log = 0;
        if (bases[i])
            o.problem_type_base = bases[i];
        svc_app *app = NULL;
        assert_int_equal(svc_app_new(&app, &o), SVC_OK);
        assert_int_equal(svc_app_start(app), SVC_OK);
        htu_response r;
        assert_int_equal(htu_request(svc_app_port(app), "GET", "/nope", NULL, NULL, &r), 0);
        assert_int_equal(r.status, 404);
        json_t *j = json_loads(r.body, 0, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "type")), want[i]);
        assert_string_equal(json_string_value(json_object_get(j, "code")), "NOT_FOUND");
        json_decref(j);
        htu_response_free(&r);
        svc_app_free(app);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(code_table_has_names_statuses_and_titles),
        cmocka_unit_test(problem_body_carries_every_member),
        cmocka_unit_test(explicit_status_and_null_detail),
        cmocka_unit_test(type_is_about_blank_by_default_and_a_base_may_be_relative),
    };
    return cmocka_run_group_tests_name("http_problem", tests, NULL, NULL);
}
