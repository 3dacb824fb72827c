/*
 * tests/http/test_tenancy.c - tenant resolution: API key lookup, trusted
 * header, untrusted header ignored, required → 401, skip paths.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "http_test_util.h"
#include "svcinfra/http.h"

static int lookup(const char *key, char *tenant, size_t tl, char *principal, size_t pl, void *ud)
{
    (void)ud;
    if (strcmp(key, "k-acme") != 0)
        return 0;
    snprintf(tenant, tl, "acme");
    snprintf(principal, pl, "key-1");
    return 1;
}

static void h_who(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    char buf[128];
    snprintf(buf, sizeof buf, "%s/%s", svc_req_tenant(req) ? svc_req_tenant(req) : "-",
             svc_req_principal(req) ? svc_req_principal(req) : "-");
    assert_int_equal(svc_res_text(res, 200, buf), SVC_OK);
}

static svc_app *start_app(const svc_tenancy_opts *t, uint16_t *port)
{
    svc_app_opts o;
    svc_app_opts_default(&o);
    o.port = 0;
    o.threads = 1;
    o.access_log = 0;
    svc_app *app = NULL;
    assert_int_equal(svc_app_new(&app, &o), SVC_OK);
    assert_int_equal(svc_add_tenancy(app, t), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/who", h_who, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/healthz", h_who, NULL), SVC_OK);
    assert_int_equal(svc_app_start(app), SVC_OK);
    *port = svc_app_port(app);
    return app;
}

static void expect(uint16_t port, const char *path, const char *headers, int status,
                   const char *body)
{
    htu_response r;
    assert_int_equal(htu_request(port, "GET", path, headers, NULL, &r), 0);
    assert_int_equal(r.status, status);
    if (body)
        assert_string_equal(r.body, body);
    if (status == 401) {
        assert_non_null(strstr(r.body, "\"code\":\"AUTHN\""));
        assert_string_equal(htu_header(&r, "WWW-Authenticate"), "Bearer");
    }
    htu_response_free(&r);
}

static void api_key_lookup_sets_tenant_and_principal(void **state)
{
    (void)state;
    svc_tenancy_opts t;
    svc_tenancy_opts_default(&t);
    t.lookup = lookup;
    uint16_t port;
    svc_app *app = start_app(&t, &port);
    expect(port, "/who", "Authorization: Bearer k-acme\r\n", 200, "acme/key-1");
    expect(port, "/who", "X-API-Key: k-acme\r\n", 200, "acme/key-1");
    expect(port, "/who", "X-API-Key: nope\r\n", 401, NULL);
    expect(port, "/who", NULL, 200, "-/-"); /* not required */
    svc_app_free(app);
}

static void trusted_header_is_used_and_untrusted_ignored(void **state)
{
    (void)state;
    svc_tenancy_opts t;
    svc_tenancy_opts_default(&t);
    t.trusted_header = "X-Tenant-Id";
    uint16_t port;
    svc_app *app = start_app(&t, &port);
    expect(port, "/who", "X-Tenant-Id: globex\r\n", 200, "globex/-");
    expect(port, "/who", "X-Other-Tenant: globex\r\n", 200, "-/-");
    svc_app_free(app);

    svc_tenancy_opts_default(&t); /* no trusted header: a tenant header means nothing */
    app = start_app(&t, &port);
    expect(port, "/who", "X-Tenant-Id: globex\r\n", 200, "-/-");
    svc_app_free(app);
}

static void required_tenant_answers_401_except_on_skip_paths(void **state)
{
    (void)state;
    svc_tenancy_opts t;
    svc_tenancy_opts_default(&t);
    t.lookup = lookup;
    t.required = 1;
    uint16_t port;
    svc_app *app = start_app(&t, &port);
    expect(port, "/who", NULL, 401, NULL);
    expect(port, "/who", "Authorization: Bearer k-acme\r\n", 200, "acme/key-1");
    expect(port, "/healthz", NULL, 200, "-/-");
    svc_app_free(app);
}

static void skip_paths_compare_the_path_the_router_sees(void **state)
{
    (void)state;
    static const char *const skip[] = {"/api/public", NULL};
    svc_tenancy_opts t;
    svc_tenancy_opts_default(&t);
    t.lookup = lookup;
    t.required = 1;
    t.skip_paths = skip;
    svc_app_opts o;
    svc_app_opts_default(&o);
    o.port = 0;
    o.threads = 1;
    o.access_log = 0;
    svc_app *app = NULL;
    assert_int_equal(svc_app_new(&app, &o), SVC_OK);
    assert_int_equal(svc_add_tenancy(app, &t), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/api/public", h_who, NULL), SVC_OK);
    /* a private route that a decoded "/api%2Fpublic" would look like */
    assert_int_equal(svc_app_route(app, "GET", "/{name}", h_who, NULL), SVC_OK);
    assert_int_equal(svc_app_start(app), SVC_OK);
    uint16_t port = svc_app_port(app);
    expect(port, "/api/public", NULL, 200, "-/-");
    expect(port, "/api/public?x=1", NULL, 200, "-/-");
    /* one segment "api/public" for the router: /{name}, which needs a tenant */
    expect(port, "/api%2Fpublic", NULL, 401, NULL);
    expect(port, "/api%2fpublic", NULL, 401, NULL);
    expect(port, "/api%2Fpublic", "Authorization: Bearer k-acme\r\n", 200, "acme/key-1");
    svc_app_free(app);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(api_key_lookup_sets_tenant_and_principal),
        cmocka_unit_test(trusted_header_is_used_and_untrusted_ignored),
        cmocka_unit_test(required_tenant_answers_401_except_on_skip_paths),
        cmocka_unit_test(skip_paths_compare_the_path_the_router_sees),
    };
    return cmocka_run_group_tests_name("http_tenancy", tests, NULL, NULL);
}
