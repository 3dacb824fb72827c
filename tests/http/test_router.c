/*
 * tests/http/test_router.c - route patterns and matching, on the internal
 * matcher (no sockets).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "http/http_internal.h"

static void h(svc_req *req, svc_res *res, void *ud)
{
    (void)req, (void)res, (void)ud;
}

static svc_app *app_with_routes(void)
{
    svc_app_opts o;
    svc_app_opts_default(&o);
    o.default_middleware = 0;
    svc_app *app = NULL;
    assert_int_equal(svc_app_new(&app, &o), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/", h, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/cars", h, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "POST", "/cars", h, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/cars/{id}", h, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/cars/new", h, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "DELETE", "/cars/{id}", h, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/cars/{id}/photos/{photo}", h, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/files/{path...}", h, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/files/readme", h, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "*", "/any", h, NULL), SVC_OK);
    return app;
}

typedef struct match_result {
    svc__match m;
    char route[64];
    char allow[128];
    char p1[64];
} match_result;

static match_result match(svc_app *app, const char *method, const char *target,
                          const char *param)
{
    match_result r;
    memset(&r, 0, sizeof r);
    svc__exchange *ex = svc__exchange_new(app, target);
    assert_non_null(ex);
    ex->req.method = method;
    assert_int_equal(svc__req_parse_target(&ex->req), SVC_OK);
    r.m = svc__router_match(app, &ex->req, r.allow, sizeof r.allow);
    if (svc_req_route(&ex->req))
        strcpy(r.route, svc_req_route(&ex->req));
    if (param && svc_req_param(&ex->req, param))
        strcpy(r.p1, svc_req_param(&ex->req, param));
    svc__exchange_free(ex);
    return r;
}

static void literal_beats_parameter(void **state)
{
    (void)state;
    svc_app *app = app_with_routes();
    match_result r = match(app, "GET", "/cars/new", "id");
    assert_int_equal(r.m, SVC__MATCH_FOUND);
    assert_string_equal(r.route, "/cars/new");
    r = match(app, "GET", "/cars/42", "id");
    assert_string_equal(r.route, "/cars/{id}");
    assert_string_equal(r.p1, "42");
    svc_app_free(app);
}

static void parameters_are_percent_decoded(void **state)
{
    (void)state;
    svc_app *app = app_with_routes();
    match_result r = match(app, "GET", "/cars/a%20b%2Fc/photos/x?y=1", "id");
    assert_int_equal(r.m, SVC__MATCH_FOUND);
    assert_string_equal(r.route, "/cars/{id}/photos/{photo}");
    assert_string_equal(r.p1, "a b/c");
    svc_app_free(app);
}

static void rest_parameter_takes_the_remaining_path(void **state)
{
    (void)state;
    svc_app *app = app_with_routes();
    match_result r = match(app, "GET", "/files/a/b/c%2Ed", "path");
    assert_int_equal(r.m, SVC__MATCH_FOUND);
    assert_string_equal(r.route, "/files/{path...}");
    assert_string_equal(r.p1, "a/b/c.d");
    r = match(app, "GET", "/files/readme", "path");
    assert_string_equal(r.route, "/files/readme");
    svc_app_free(app);
}

static void unknown_path_is_not_found(void **state)
{
    (void)state;
    svc_app *app = app_with_routes();
    assert_int_equal(match(app, "GET", "/boats", NULL).m, SVC__MATCH_NOT_FOUND);
    assert_int_equal(match(app, "GET", "/cars/1/2", NULL).m, SVC__MATCH_NOT_FOUND);
    assert_int_equal(match(app, "GET", "/cars/", NULL).m, SVC__MATCH_NOT_FOUND);
    assert_int_equal(match(app, "GET", "/", NULL).m, SVC__MATCH_FOUND);
    svc_app_free(app);
}

static void wrong_method_lists_allowed_methods(void **state)
{
    (void)state;
    svc_app *app = app_with_routes();
    match_result r = match(app, "PUT", "/cars", NULL);
    assert_int_equal(r.m, SVC__MATCH_METHOD);
    assert_string_equal(r.allow, "GET, HEAD, POST");
    r = match(app, "POST", "/cars/7", NULL);
    assert_int_equal(r.m, SVC__MATCH_METHOD);
    assert_string_equal(r.allow, "GET, HEAD, DELETE");
    svc_app_free(app);
}

static void head_is_served_by_get_and_star_takes_any_method(void **state)
{
    (void)state;
    svc_app *app = app_with_routes();
    match_result r = match(app, "HEAD", "/cars/7", NULL);
    assert_int_equal(r.m, SVC__MATCH_FOUND);
    assert_string_equal(r.route, "/cars/{id}");
    assert_int_equal(match(app, "PATCH", "/any", NULL).m, SVC__MATCH_FOUND);
    svc_app_free(app);
}

static void bad_patterns_and_duplicates_are_refused(void **state)
{
    (void)state;
    svc_app *app = app_with_routes();
    assert_int_equal(svc_app_route(app, "GET", "cars", h, NULL), SVC_EINVAL);
    assert_int_equal(svc_app_route(app, "GET", "/a/{}", h, NULL), SVC_EINVAL);
    assert_int_equal(svc_app_route(app, "GET", "/a/{x...}/b", h, NULL), SVC_EINVAL);
    assert_int_equal(svc_app_route(app, "GET", "/a/{x}/{x}", h, NULL), SVC_EINVAL);
    assert_int_equal(svc_app_route(app, "GET", "/a/b{x}", h, NULL), SVC_EINVAL);
    assert_int_equal(svc_app_route(app, "get", "/a", h, NULL), SVC_EINVAL);
    assert_int_equal(svc_app_route(app, "GET", "/cars/{other}", h, NULL), SVC_EEXIST);
    assert_int_equal(svc_app_route(app, "GET", "/cars", h, NULL), SVC_EEXIST);
    svc_app_free(app);
}

static void encoded_nul_in_path_is_rejected(void **state)
{
    (void)state;
    svc_app *app = app_with_routes();
    svc__exchange *ex = svc__exchange_new(app, "/cars/a%00b");
    assert_non_null(ex);
    assert_int_equal(svc__req_parse_target(&ex->req), SVC_EINVAL);
    svc__exchange_free(ex);
    svc_app_free(app);
}

static void query_is_split_from_path(void **state)
{
    (void)state;
    svc_app *app = app_with_routes();
    svc__exchange *ex = svc__exchange_new(app, "/x%41y?a=1&b=%20+2&a=3&flag#frag");
    assert_non_null(ex);
    assert_int_equal(svc__req_parse_target(&ex->req), SVC_OK);
    assert_string_equal(svc_req_path(&ex->req), "/xAy");
    assert_string_equal(svc_req_query(&ex->req), "a=1&b=%20+2&a=3&flag");
    assert_string_equal(svc_req_query_param(&ex->req, "a"), "1");
    assert_string_equal(svc_req_query_param(&ex->req, "b"), "  2");
    assert_string_equal(svc_req_query_param(&ex->req, "flag"), "");
    assert_null(svc_req_query_param(&ex->req, "c"));
    svc__exchange_free(ex);
    svc_app_free(app);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(literal_beats_parameter),
        cmocka_unit_test(parameters_are_percent_decoded),
        cmocka_unit_test(rest_parameter_takes_the_remaining_path),
        cmocka_unit_test(unknown_path_is_not_found),
        cmocka_unit_test(wrong_method_lists_allowed_methods),
        cmocka_unit_test(head_is_served_by_get_and_star_takes_any_method),
        cmocka_unit_test(bad_patterns_and_duplicates_are_refused),
        cmocka_unit_test(encoded_nul_in_path_is_rejected),
        cmocka_unit_test(query_is_split_from_path),
    };
    return cmocka_run_group_tests_name("http_router", tests, NULL, NULL);
}
