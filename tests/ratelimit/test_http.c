/*
 * test_http.c - svc_add_ratelimit() on a live svc_app over loopback: the
 * RateLimit headers, 429 problems with Retry-After, skip paths, per-route
 * policies and costs, keys from tenants, custom callbacks and trusted
 * proxies, shadow mode, a failing store.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../http/http_test_util.h"
#include "svcinfra/config.h"
#include "svcinfra/http.h"
#include "svcinfra/metrics.h"
#include "svcinfra/ratelimit.h"
#include "svcinfra/version.h"

#include "ratelimit/store.h"
#include "rl_test_util.h"

#define MS INT64_C(1000000)
/* 2026-03-10T12:00:00Z: a minute boundary, so window resets are whole */
#define WALL0 (INT64_C(1773144000) * 1000 * MS)

typedef struct env {
    svc_manual_clock *mc;
    svc_ratelimit *rl;
    svc_app *app;
    uint16_t port;
} env;

static void h_ok(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    (void)ud;
    assert_int_equal(svc_res_text(res, 200, "ok"), SVC_OK);
}

static void add_policy(svc_ratelimit *rl, const char *name, svc_ratelimit_algorithm alg,
                       uint64_t limit, int64_t period_ms)
{
    svc_ratelimit_policy p = {.name = name, .algorithm = alg, .limit = limit,
                              .period_ms = period_ms};
    assert_int_equal(svc_ratelimit_policy_add(rl, &p), SVC_OK);
}

static void env_open_metrics(env *e, int fail_open, svc_metrics *m)
{
    memset(e, 0, sizeof *e);
    assert_int_equal(svc_manual_clock_new(&e->mc, 1, WALL0), SVC_OK);
    svc_ratelimit_opts o;
    svc_ratelimit_opts_default(&o);
    o.url = "memory:";
    o.clock = svc_manual_clock_get(e->mc);
    o.fail_open = fail_open;
    o.metrics = m;
    assert_int_equal(svc_ratelimit_new(&e->rl, &o), SVC_OK);
    add_policy(e->rl, "api", SVC_RL_FIXED_WINDOW, 3, 60000);
    add_policy(e->rl, "up", SVC_RL_FIXED_WINDOW, 4, 60000);
    svc_app_opts ao;
    svc_app_opts_default(&ao);
    ao.port = 0;
    ao.threads = 1;
    ao.access_log = 0;
    assert_int_equal(svc_app_new(&e->app, &ao), SVC_OK);
    assert_int_equal(svc_app_route(e->app, "GET", "/x", h_ok, NULL), SVC_OK);
    assert_int_equal(svc_app_route(e->app, "POST", "/upload", h_ok, NULL), SVC_OK);
    assert_int_equal(svc_app_route(e->app, "GET", "/free", h_ok, NULL), SVC_OK);
    assert_int_equal(svc_app_route(e->app, "GET", "/healthz", h_ok, NULL), SVC_OK);
}

static void env_open(env *e, int fail_open) { env_open_metrics(e, fail_open, NULL); }

/* Options for "api" (or `policy`) on e's limiter, the rest default. */
static void opts_for(env *e, svc_ratelimit_http_opts *o, const char *policy)
{
    svc_ratelimit_http_opts_default(o);
    o->rl = e->rl;
    o->policy = policy;
}

#define decisions rl_test_decisions

static void env_start(env *e)
{
    assert_int_equal(svc_app_start(e->app), SVC_OK);
    e->port = svc_app_port(e->app);
}

static void env_close(env *e)
{
    svc_app_free(e->app);
    svc_ratelimit_free(e->rl);
    svc_manual_clock_free(e->mc);
}

static int get(env *e, const char *method, const char *path, const char *headers,
               htu_response *r)
{
    assert_int_equal(htu_request(e->port, method, path, headers, method[0] == 'P' ? "" : NULL, r),
                     0);
    return r->status;
}

static void status_of(env *e, const char *method, const char *path, const char *headers,
                      int want)
{
    htu_response r;
    assert_int_equal(get(e, method, path, headers, &r), want);
    htu_response_free(&r);
}

static void limited_routes_carry_ratelimit_headers_and_429_problem(void **state)
{
    (void)state;
    env e;
    env_open(&e, 1);
    svc_ratelimit_http_opts o;
    svc_ratelimit_http_opts_default(&o);
    o.rl = e.rl;
    o.policy = "api";
    assert_int_equal(svc_add_ratelimit(e.app, &o), SVC_OK);
    assert_int_equal(svc_add_ratelimit(e.app, &o), SVC_EEXIST);
    env_start(&e);
    svc_manual_clock_advance(e.mc, 500 * MS); /* t rounds 59.5 s up to 60 */

    htu_response r;
    assert_int_equal(get(&e, "GET", "/x", NULL, &r), 200);
    assert_string_equal(htu_header(&r, "RateLimit-Policy"), "\"api\";q=3;w=60");
    assert_string_equal(htu_header(&r, "RateLimit"), "\"api\";r=2;t=60");
    assert_string_equal(htu_header(&r, "X-RateLimit-Limit"), "3");
    assert_string_equal(htu_header(&r, "X-RateLimit-Remaining"), "2");
    assert_string_equal(htu_header(&r, "X-RateLimit-Reset"), "60");
    htu_response_free(&r);
    status_of(&e, "GET", "/x", NULL, 200);
    status_of(&e, "GET", "/x", NULL, 200);

    assert_int_equal(get(&e, "GET", "/x", NULL, &r), 429);
    assert_non_null(strstr(htu_header(&r, "Content-Type"), "application/problem+json"));
    assert_string_equal(htu_header(&r, "Retry-After"), "60"); /* 59.5 s, rounded up */
    assert_string_equal(htu_header(&r, "RateLimit"), "\"api\";r=0;t=60");
    assert_non_null(strstr(r.body, "\"code\":\"RATE_LIMIT\""));
    assert_non_null(strstr(r.body, "\"policy\":\"api\""));
    assert_non_null(strstr(r.body, "\"status\":429"));
    htu_response_free(&r);

    /* probes are skipped: no limit, no headers */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(get(&e, "GET", "/healthz", NULL, &r), 200);
        assert_null(htu_header(&r, "RateLimit"));
        htu_response_free(&r);
    }
    /* a new window admits again */
    svc_manual_clock_advance(e.mc, 60000 * MS);
    status_of(&e, "GET", "/x", NULL, 200);
    env_close(&e);
}

static void per_route_policies_and_costs(void **state)
{
    (void)state;
    env e;
    env_open(&e, 1);
    const svc_ratelimit_route routes[] = {
        {.method = "POST", .route = "/upload", .policy = "up", .cost = 2},
        {.method = "*", .route = "/free", .policy = NULL},
    };
    svc_ratelimit_http_opts o;
    svc_ratelimit_http_opts_default(&o);
    o.rl = e.rl;
    o.policy = "api";
    o.routes = routes;
    o.nroutes = 2;
    o.legacy_headers = 0;
    assert_int_equal(svc_add_ratelimit(e.app, &o), SVC_OK);
    env_start(&e);
    htu_response r;
    assert_int_equal(get(&e, "POST", "/upload", NULL, &r), 200);
    assert_string_equal(htu_header(&r, "RateLimit"), "\"up\";r=2;t=60");
    assert_null(htu_header(&r, "X-RateLimit-Limit"));
    htu_response_free(&r);
    status_of(&e, "POST", "/upload", NULL, 200);
    status_of(&e, "POST", "/upload", NULL, 429);
    for (int i = 0; i < 5; i++)
        status_of(&e, "GET", "/free", NULL, 200);
    status_of(&e, "GET", "/x", NULL, 200); /* "api" is untouched by the uploads */
    env_close(&e);
}

static void forwarded_for_is_trusted_only_from_listed_proxies(void **state)
{
    (void)state;
    for (int trusted = 0; trusted <= 1; trusted++) {
        env e;
        env_open(&e, 1);
        const char *const proxies[] = {"127.0.0.0/8", "::1", NULL};
        svc_ratelimit_http_opts o;
        svc_ratelimit_http_opts_default(&o);
        o.rl = e.rl;
        o.policy = "api";
        o.trusted_proxies = trusted ? proxies : NULL;
        assert_int_equal(svc_add_ratelimit(e.app, &o), SVC_OK);
        env_start(&e);
        const char *a = "X-Forwarded-For: 203.0.113.7, 10.9.9.9\r\n";
        const char *b = "Forwarded: for=\"[2001:db8::5]:4711\";proto=https\r\n";
        for (int i = 0; i < 3; i++)
            status_of(&e, "GET", "/x", a, 200);
        status_of(&e, "GET", "/x", a, 429);
        /* trusted: b is another client; untrusted: both are 127.0.0.1 */
        status_of(&e, "GET", "/x", b, trusted ? 200 : 429);
        env_close(&e);
    }
    env e;
    env_open(&e, 1);
    const char *const bad[] = {"10.0.0.0/33", NULL};
    svc_ratelimit_http_opts o;
    svc_ratelimit_http_opts_default(&o);
    o.rl = e.rl;
    o.trusted_proxies = bad;
    assert_int_equal(svc_add_ratelimit(e.app, &o), SVC_EINVAL);
    env_close(&e);
}

/* `fake` client-chosen hops (rotated by `round`), then `tail`. */
static void fake_hops(char *buf, size_t cap, int round, int fake, const char *tail)
{
    size_t n = (size_t)snprintf(buf, cap, "X-Forwarded-For: ");
    for (int k = 0; k < fake; k++)
        n += (size_t)snprintf(buf + n, cap - n, "10.%d.%d.%d, ", round, k / 250, k % 250 + 1);
    snprintf(buf + n, cap - n, "%s\r\n", tail);
}

static void client_is_the_rightmost_untrusted_hop_however_many_hops_precede_it(void **state)
{
    (void)state;
    env e;
    env_open(&e, 1);
    add_policy(e.rl, "hour", SVC_RL_FIXED_WINDOW, 1, 3600000);
    const char *const proxies[] = {"127.0.0.1/32", NULL};
    svc_ratelimit_http_opts o;
    svc_ratelimit_http_opts_default(&o);
    o.rl = e.rl;
    o.policy = "hour";
    o.trusted_proxies = proxies;
    assert_int_equal(svc_add_ratelimit(e.app, &o), SVC_OK);
    env_start(&e);
    char h[2048];
    /* the client rotates 40 fake hops; the proxy appended the real address */
    fake_hops(h, sizeof h, 1, 40, "198.51.100.1");
    status_of(&e, "GET", "/x", h, 200);
    fake_hops(h, sizeof h, 2, 40, "198.51.100.1");
    status_of(&e, "GET", "/x", h, 429);
    /* the same through Forwarded */
    size_t n = (size_t)snprintf(h, sizeof h, "Forwarded: ");
    for (int k = 0; k < 40; k++)
        n += (size_t)snprintf(h + n, sizeof h - n, "for=10.3.0.%d, ", k + 1);
    snprintf(h + n, sizeof h - n, "for=198.51.100.2;proto=https\r\n");
    status_of(&e, "GET", "/x", h, 200);
    h[strlen("Forwarded: for=10.")] = '4';
    status_of(&e, "GET", "/x", h, 429);
    env_close(&e);
}

static void more_trusted_hops_than_examined_fall_back_to_the_peer(void **state)
{
    (void)state;
    env e;
    env_open(&e, 1);
    add_policy(e.rl, "hour", SVC_RL_FIXED_WINDOW, 1, 3600000);
    const char *const proxies[] = {"127.0.0.1/32", "10.0.0.0/8", NULL};
    svc_ratelimit_http_opts o;
    svc_ratelimit_http_opts_default(&o);
    o.rl = e.rl;
    o.policy = "hour";
    o.trusted_proxies = proxies;
    assert_int_equal(svc_add_ratelimit(e.app, &o), SVC_OK);
    env_start(&e);
    char h[2048];
    /* 40 hops of trusted proxies hide the client: the key is the peer's */
    fake_hops(h, sizeof h, 0, 0, "203.0.113.9");
    char many[2048];
    snprintf(many, sizeof many, "X-Forwarded-For: 203.0.113.9");
    for (int k = 0; k < 40; k++)
        snprintf(many + strlen(many), sizeof many - strlen(many), ", 10.0.0.%d", k + 1);
    strcat(many, "\r\n");
    status_of(&e, "GET", "/x", many, 200);
    status_of(&e, "GET", "/x", NULL, 429);  /* the peer, 127.0.0.1, has spent */
    status_of(&e, "GET", "/x", h, 200);     /* 203.0.113.9 has not */
    /* a hop that is not an address ends the trust there */
    status_of(&e, "GET", "/x", "X-Forwarded-For: 203.0.113.10, bogus, 10.0.0.1\r\n", 429);
    env_close(&e);
}

static void ratelimit_policy_header_follows_a_replaced_policy(void **state)
{
    (void)state;
    env e;
    env_open(&e, 1);
    svc_ratelimit_http_opts o;
    svc_ratelimit_http_opts_default(&o);
    o.rl = e.rl;
    o.policy = "api";
    assert_int_equal(svc_add_ratelimit(e.app, &o), SVC_OK);
    env_start(&e);
    htu_response r;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(get(&e, "GET", "/x", NULL, &r), 200);
        assert_string_equal(htu_header(&r, "RateLimit-Policy"), "\"api\";q=3;w=60");
        htu_response_free(&r);
    }
    add_policy(e.rl, "api", SVC_RL_FIXED_WINDOW, 50, 3600000);
    assert_int_equal(get(&e, "GET", "/x", NULL, &r), 200);
    assert_string_equal(htu_header(&r, "RateLimit-Policy"), "\"api\";q=50;w=3600");
    htu_response_free(&r);
    /* more distinct values than are kept pre-rendered still come out right */
    for (uint64_t q = 1; q <= 40; q++) {
        add_policy(e.rl, "api", SVC_RL_FIXED_WINDOW, 1000 + q, 60000);
        assert_int_equal(get(&e, "GET", "/x", NULL, &r), 200);
        char want[64];
        snprintf(want, sizeof want, "\"api\";q=%llu;w=60", (unsigned long long)(1000 + q));
        assert_string_equal(htu_header(&r, "RateLimit-Policy"), want);
        htu_response_free(&r);
    }
    env_close(&e);
}

static int user_key(struct svc_req *req, char *buf, size_t len, void *ud)
{
    (void)ud;
    const char *u = svc_req_header(req, "X-User");
    if (!u)
        return 0;
    if (strcmp(u, "admin") == 0)
        return -1; /* never limited */
    snprintf(buf, len, "user:%s", u);
    return 1;
}

static const char *pick(struct svc_req *req, void *ud)
{
    (void)ud;
    const char *t = svc_req_tenant(req);
    return t && strcmp(t, "big") == 0 ? "up" : NULL;
}

static void keys_from_callback_and_tenant_and_selected_policy(void **state)
{
    (void)state;
    env e;
    env_open(&e, 1);
    svc_tenancy_opts t;
    svc_tenancy_opts_default(&t);
    t.trusted_header = "X-Tenant-Id";
    assert_int_equal(svc_add_tenancy(e.app, &t), SVC_OK);
    svc_ratelimit_http_opts o;
    svc_ratelimit_http_opts_default(&o);
    o.rl = e.rl;
    o.policy = "api";
    o.key_fn = user_key;
    o.select = pick;
    assert_int_equal(svc_add_ratelimit(e.app, &o), SVC_OK);
    env_start(&e);
    for (int i = 0; i < 3; i++)
        status_of(&e, "GET", "/x", "X-User: ann\r\n", 200);
    status_of(&e, "GET", "/x", "X-User: ann\r\n", 429);
    status_of(&e, "GET", "/x", "X-User: bob\r\n", 200);
    for (int i = 0; i < 6; i++)
        status_of(&e, "GET", "/x", "X-User: admin\r\n", 200);
    /* tenants: own buckets; tenant "big" gets policy "up" (4) */
    for (int i = 0; i < 3; i++)
        status_of(&e, "GET", "/x", "X-Tenant-Id: small\r\n", 200);
    status_of(&e, "GET", "/x", "X-Tenant-Id: small\r\n", 429);
    for (int i = 0; i < 4; i++)
        status_of(&e, "GET", "/x", "X-Tenant-Id: big\r\n", 200);
    htu_response r;
    assert_int_equal(get(&e, "GET", "/x", "X-Tenant-Id: big\r\n", &r), 429);
    assert_non_null(strstr(r.body, "\"policy\":\"up\""));
    htu_response_free(&r);
    env_close(&e);
}

/* Tenant and principal from X-T and X-P, as an authentication middleware
 * would set them. */
static void who_from_headers(svc_req *req, svc_res *res, svc_chain *next, void *ud)
{
    (void)res;
    (void)ud;
    const char *t = svc_req_header(req, "X-T"), *p = svc_req_header(req, "X-P");
    if (t)
        assert_int_equal(svc_req_set_tenant(req, t), SVC_OK);
    if (p)
        assert_int_equal(svc_req_set_principal(req, p), SVC_OK);
    svc_next(next);
}

static void who(char *buf, size_t cap, const char *tenant, const char *principal)
{
    snprintf(buf, cap, "X-T: %s\r\n%s%s%s", tenant, principal ? "X-P: " : "",
             principal ? principal : "", principal ? "\r\n" : "");
}

/* Spends the limit of "api" (3) as `tenant`/`principal` and sees the 4th
 * request refused. */
static void spend_api(env *e, const char *tenant, const char *principal)
{
    char h[2048];
    who(h, sizeof h, tenant, principal);
    for (int i = 0; i < 3; i++)
        status_of(e, "GET", "/x", h, 200);
    status_of(e, "GET", "/x", h, 429);
}

static void tenant_and_principal_keys_never_collide(void **state)
{
    (void)state;
    env e;
    env_open(&e, 1);
    assert_int_equal(svc_app_use_stage(e.app, SVC_STAGE_TENANT, "who", who_from_headers, NULL),
                     SVC_OK);
    svc_ratelimit_http_opts o;
    opts_for(&e, &o, "api");
    assert_int_equal(svc_add_ratelimit(e.app, &o), SVC_OK);
    env_start(&e);
    char h[2048];
    /* tenant "a:b", principal "c" against tenant "a", principal "b:c" */
    spend_api(&e, "a:b", "c");
    who(h, sizeof h, "a", "b:c");
    status_of(&e, "GET", "/x", h, 200);
    /* tenant "a:b" alone against tenant "a", principal "b" */
    who(h, sizeof h, "a:b", NULL);
    status_of(&e, "GET", "/x", h, 200);
    who(h, sizeof h, "a", "b");
    status_of(&e, "GET", "/x", h, 200);
    /* the key is "t:<tenant length>:<tenant>[:<principal>]" */
    svc_ratelimit_result r;
    assert_int_equal(svc_ratelimit_peek(e.rl, "api", "t:3:a:b:c", 1, &r), SVC_OK);
    assert_false(r.allowed);
    assert_int_equal(svc_ratelimit_peek(e.rl, "api", "t:1:a:b:c", 0, &r), SVC_OK);
    assert_int_equal(r.remaining, 2);
    assert_int_equal(svc_ratelimit_peek(e.rl, "api", "t:3:a:b", 0, &r), SVC_OK);
    assert_int_equal(r.remaining, 2);

    /* pairs too long for a key are hashed whole, never cut short: two that
     * differ only in their last byte stay apart */
    char tenant[301], principal[301];
    memset(tenant, 't', 300);
    tenant[300] = '\0';
    memset(principal, 'p', 300);
    principal[300] = '\0';
    spend_api(&e, tenant, principal);
    principal[299] = 'q';
    who(h, sizeof h, tenant, principal);
    status_of(&e, "GET", "/x", h, 200);
    env_close(&e);
}

static void shadow_mode_never_denies(void **state)
{
    (void)state;
    svc_metrics *m;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    env e;
    env_open_metrics(&e, 1, m);
    svc_ratelimit_http_opts o;
    opts_for(&e, &o, "api");
    o.shadow = 1;
    assert_int_equal(svc_add_ratelimit(e.app, &o), SVC_OK);
    env_start(&e);
    rl_test_log log;
    rl_test_log_start(&log, "rate limit would deny (shadow mode)");
    for (int i = 0; i < 6; i++) {
        htu_response r;
        assert_int_equal(get(&e, "GET", "/x", NULL, &r), 200);
        assert_null(htu_header(&r, "RateLimit"));
        htu_response_free(&r);
    }
    /* one line per would-be denial, naming the policy, the key, the wait */
    assert_int_equal(rl_test_log_count(&log), 3);
    rl_test_log_stop();
    assert_non_null(strstr(log.last, "\"policy\":\"api\""));
    assert_non_null(strstr(log.last, "\"key\":\"ip:127.0.0.1\""));
    assert_non_null(strstr(log.last, "\"retry_after_ms\":60000"));
    svc_ratelimit_result res;
    assert_int_equal(svc_ratelimit_peek(e.rl, "api", "ip:127.0.0.1", 1, &res), SVC_OK);
    assert_false(res.allowed); /* the would-be denials were counted */
    /* ... as what they were: not denials */
    assert_true(decisions(m, "api", "allowed") == 3);
    assert_true(decisions(m, "api", "shadow_denied") == 3);
    assert_true(decisions(m, "api", "denied") == 0);
    env_close(&e);
    svc_metrics_free(m);
}

/* A name that is no policy is checked as a plan: every policy of it, the
 * denying one named in the 429 and the headers. */
static void a_plan_name_checks_the_plan(void **state)
{
    (void)state;
    env e;
    env_open(&e, 1);
    add_policy(e.rl, "hour", SVC_RL_FIXED_WINDOW, 2, 3600000);
    const char *pols[] = {"api", "hour"};
    assert_int_equal(svc_ratelimit_plan_add(e.rl, "basic", pols, 2), SVC_OK);
    svc_ratelimit_http_opts o;
    opts_for(&e, &o, "basic");
    assert_int_equal(svc_add_ratelimit(e.app, &o), SVC_OK);
    env_start(&e);
    htu_response r;
    assert_int_equal(get(&e, "GET", "/x", NULL, &r), 200);
    assert_string_equal(htu_header(&r, "RateLimit"), "\"hour\";r=1;t=3600");
    htu_response_free(&r);
    status_of(&e, "GET", "/x", NULL, 200);
    assert_int_equal(get(&e, "GET", "/x", NULL, &r), 429);
    assert_non_null(strstr(r.body, "\"policy\":\"hour\""));
    assert_string_equal(htu_header(&r, "RateLimit-Policy"), "\"hour\";q=2;w=3600");
    htu_response_free(&r);
    /* both policies were spent on the same key */
    svc_ratelimit_result res;
    assert_int_equal(svc_ratelimit_peek(e.rl, "api", "ip:127.0.0.1", 0, &res), SVC_OK);
    assert_int_equal(res.remaining, 1);
    env_close(&e);
}

/* skip_paths replaces the default list: exact paths and prefixes ending in
 * '*' pass unlimited and without headers; the probes are limited then. */
static void custom_skip_paths_exact_and_prefix(void **state)
{
    (void)state;
    env e;
    env_open(&e, 1);
    assert_int_equal(svc_app_route(e.app, "GET", "/pub/a", h_ok, NULL), SVC_OK);
    assert_int_equal(svc_app_route(e.app, "GET", "/pub/b/c", h_ok, NULL), SVC_OK);
    assert_int_equal(svc_app_route(e.app, "GET", "/public", h_ok, NULL), SVC_OK);
    const char *const skip[] = {"/free", "/pub/*", NULL};
    svc_ratelimit_http_opts o;
    opts_for(&e, &o, "api");
    o.skip_paths = skip;
    assert_int_equal(svc_add_ratelimit(e.app, &o), SVC_OK);
    env_start(&e);
    const char *unlimited[] = {"/free", "/pub/a", "/pub/b/c"};
    for (int i = 0; i < 5; i++) {
        htu_response r;
        assert_int_equal(get(&e, "GET", unlimited[i % 3], NULL, &r), 200);
        assert_null(htu_header(&r, "RateLimit"));
        htu_response_free(&r);
    }
    /* the prefix is "/pub/", which "/public" does not start with;
     * "/healthz" is no longer skipped */
    htu_response r;
    assert_int_equal(get(&e, "GET", "/public", NULL, &r), 200);
    assert_string_equal(htu_header(&r, "RateLimit"), "\"api\";r=2;t=60");
    htu_response_free(&r);
    assert_int_equal(get(&e, "GET", "/healthz", NULL, &r), 200);
    assert_string_equal(htu_header(&r, "RateLimit"), "\"api\";r=1;t=60");
    htu_response_free(&r);
    status_of(&e, "GET", "/x", NULL, 200);
    status_of(&e, "GET", "/x", NULL, 429);
    status_of(&e, "GET", "/pub/a", NULL, 200);
    env_close(&e);
}

static void store_down_fails_closed_with_503_or_open(void **state)
{
    (void)state;
    for (int open = 0; open <= 1; open++) {
        env e;
        env_open(&e, open);
        svc__ratelimit_set_store(e.rl, rl_test_down_store());
        svc_ratelimit_http_opts o;
        svc_ratelimit_http_opts_default(&o);
        o.rl = e.rl;
        o.policy = "api";
        assert_int_equal(svc_add_ratelimit(e.app, &o), SVC_OK);
        env_start(&e);
        htu_response r;
        assert_int_equal(get(&e, "GET", "/x", NULL, &r), open ? 200 : 503);
        if (!open)
            assert_non_null(strstr(r.body, "\"code\":\"UNAVAILABLE\""));
        htu_response_free(&r);
        env_close(&e);
    }
}

/* An app with routes /x, /login, /search and /healthz on `cfg` (NULL: the
 * environment's configuration). */
static svc_app *config_app(const svc_config *cfg)
{
    svc_app_opts ao;
    svc_app_opts_default(&ao);
    ao.port = 0;
    ao.threads = 1;
    ao.access_log = 0;
    ao.config = cfg;
    svc_app *app = NULL;
    assert_int_equal(svc_app_new(&app, &ao), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/x", h_ok, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "POST", "/login", h_ok, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/search", h_ok, NULL), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/healthz", h_ok, NULL), SVC_OK);
    return app;
}

static int status_at(uint16_t port, const char *method, const char *path)
{
    htu_response r;
    assert_int_equal(htu_request(port, method, path, NULL, method[0] == 'P' ? "" : NULL, &r), 0);
    int st = r.status;
    htu_response_free(&r);
    return st;
}

/* svc_add_ratelimit(app, NULL): limiter, policies, routes and middleware
 * options from the app's YAML; svc_app_ratelimit() returns the limiter so
 * code can add a policy after wiring. */
static void add_null_is_configured_from_the_app_yaml(void **state)
{
    (void)state;
    svc_config *cfg = NULL;
    char eb[256];
    assert_int_equal(svc_config_parse(&cfg,
                                      "ratelimit:\n"
                                      "  max_keys: 1024\n"
                                      "  policies: [\"api fixed_window 2/1h\",\n"
                                      "             \"login fixed_window 1/1h\"]\n"
                                      "  http:\n"
                                      "    policy: api\n"
                                      "    legacy_headers: false\n"
                                      "    routes:\n"
                                      "      - POST /login login\n"
                                      "      - GET /search search 3\n",
                                      eb, sizeof eb),
                     SVC_OK);
    svc_app *app = config_app(cfg);
    svc_config_free(cfg);
    assert_null(svc_app_ratelimit(app));
    assert_int_equal(svc_add_ratelimit(app, NULL), SVC_OK);
    svc_ratelimit *rl = svc_app_ratelimit(app);
    assert_non_null(rl);
    assert_string_equal(svc_ratelimit_backend_name(rl), "memory");
    svc_ratelimit_stats s;
    assert_int_equal(svc_ratelimit_stats_get(rl, &s), SVC_OK);
    assert_int_equal(s.max_keys, 1024);
    /* a policy only code knows, added after wiring, used by a configured route */
    svc_ratelimit_policy p = {.name = "search", .algorithm = SVC_RL_FIXED_WINDOW, .limit = 4,
                              .period_ms = 3600000};
    assert_int_equal(svc_ratelimit_policy_add(rl, &p), SVC_OK);
    assert_int_equal(svc_app_start(app), SVC_OK);
    uint16_t port = svc_app_port(app);

    htu_response r;
    assert_int_equal(htu_request(port, "GET", "/x", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(htu_header(&r, "RateLimit"));
    assert_null(htu_header(&r, "X-RateLimit-Limit")); /* legacy_headers: false */
    htu_response_free(&r);
    assert_int_equal(status_at(port, "GET", "/x"), 200);
    assert_int_equal(status_at(port, "GET", "/x"), 429); /* api: 2 per hour */
    assert_int_equal(status_at(port, "POST", "/login"), 200);
    assert_int_equal(status_at(port, "POST", "/login"), 429); /* login: 1 per hour */
    assert_int_equal(status_at(port, "GET", "/search"), 200); /* cost 3 of 4 */
    assert_int_equal(status_at(port, "GET", "/search"), 429);
    assert_int_equal(status_at(port, "GET", "/healthz"), 200); /* skipped */
    svc_app_free(app);
}

/* The same from SVC_RATELIMIT_* variables alone. */
static void add_null_is_configured_from_the_environment(void **state)
{
    (void)state;
    setenv("SVC_RATELIMIT_POLICIES", "api fixed_window 1/1h", 1);
    setenv("SVC_RATELIMIT_HTTP_POLICY", "api", 1);
    setenv("SVC_RATELIMIT_HTTP_SKIP_PATHS", "/search", 1);
    setenv("SVC_RATELIMIT_HTTP_ROUTES", "POST /login none, GET /x api", 1);
    svc_app *app = config_app(NULL);
    unsetenv("SVC_RATELIMIT_HTTP_ROUTES");
    unsetenv("SVC_RATELIMIT_POLICIES");
    unsetenv("SVC_RATELIMIT_HTTP_POLICY");
    unsetenv("SVC_RATELIMIT_HTTP_SKIP_PATHS");
    assert_int_equal(svc_add_ratelimit(app, NULL), SVC_OK);
    assert_int_equal(svc_app_start(app), SVC_OK);
    uint16_t port = svc_app_port(app);
    assert_int_equal(status_at(port, "GET", "/x"), 200);
    assert_int_equal(status_at(port, "GET", "/x"), 429);
    assert_int_equal(status_at(port, "GET", "/search"), 200);
    assert_int_equal(status_at(port, "GET", "/search"), 200);
    assert_int_equal(status_at(port, "POST", "/login"), 200); /* route: none */
    assert_int_equal(status_at(port, "POST", "/login"), 200);
    svc_app_free(app);
}

/* A bad route entry or middleware option fails with the key named, and
 * installs nothing. */
static void add_null_refuses_a_bad_configuration(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "ratelimit:\n  http:\n    routes: [\"GET login\"]\n",
        "ratelimit:\n  http:\n    routes: [\"GET /x api zero\"]\n",
        "ratelimit:\n  http:\n    shadow: maybe\n",
        "ratelimit:\n  policies: [\"api gcra fast\"]\n",
        "ratelimit:\n  url: postgres://localhost/db\n",
    };
    static const char *const why[] = {
        "ratelimit.http.routes", "ratelimit.http.routes", "ratelimit.http.shadow",
        "ratelimit.policies", "postgres stores are not supported",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        svc_config *cfg = NULL;
        char eb[256];
        assert_int_equal(svc_config_parse(&cfg, bad[i], eb, sizeof eb), SVC_OK);
        svc_app *app = config_app(cfg);
        svc_config_free(cfg);
        assert_int_not_equal(svc_add_ratelimit(app, NULL), SVC_OK);
        if (!strstr(svc_last_errmsg(), why[i]))
            fail_msg("case %zu: '%s' does not name '%s'", i, svc_last_errmsg(), why[i]);
        assert_null(svc_app_ratelimit(app));
        svc_app_free(app);
    }
}

/* Explicit options carrying a limiter: the app takes its own reference, so
 * the limiter may be freed before the app (or after: env_close()). */
static void limiter_freed_before_the_app_stays_usable(void **state)
{
    (void)state;
    env e;
    env_open(&e, 1);
    svc_ratelimit_http_opts o;
    opts_for(&e, &o, "api");
    assert_int_equal(svc_add_ratelimit(e.app, &o), SVC_OK);
    assert_ptr_equal(svc_app_ratelimit(e.app), e.rl);
    svc_ratelimit_free(e.rl); /* the caller's reference */
    e.rl = NULL;
    env_start(&e);
    status_of(&e, "GET", "/x", NULL, 200);
    status_of(&e, "GET", "/x", NULL, 200);
    status_of(&e, "GET", "/x", NULL, 200);
    status_of(&e, "GET", "/x", NULL, 429);
    env_close(&e);
}

/* A Redis store is checked by /readyz: critical when a failing store
 * denies (fail_open 0), reported only otherwise. */
static void redis_store_has_a_readiness_check(void **state)
{
    (void)state;
    if (!svc_feature_supported(SVC_FEATURE_REDIS))
        skip();
    for (int fail_open = 0; fail_open <= 1; fail_open++) {
        svc_config *cfg = NULL;
        char yaml[256], eb[256];
        snprintf(yaml, sizeof yaml,
                 "ratelimit:\n  url: redis://127.0.0.1:1/0\n  store_timeout: 200ms\n"
                 "  fail_open: %s\n",
                 fail_open ? "true" : "false");
        assert_int_equal(svc_config_parse(&cfg, yaml, eb, sizeof eb), SVC_OK);
        svc_app *app = config_app(cfg);
        svc_config_free(cfg);
        svc_probes_opts po;
        svc_probes_opts_default(&po);
        po.healthz_path = "/livez"; /* config_app() routes /healthz itself */
        assert_int_equal(svc_add_probes(app, &po), SVC_OK);
        assert_int_equal(svc_add_ratelimit(app, NULL), SVC_OK);
        assert_string_equal(svc_ratelimit_backend_name(svc_app_ratelimit(app)), "redis");
        assert_int_equal(svc_app_start(app), SVC_OK);
        htu_response r;
        assert_int_equal(htu_request(svc_app_port(app), "GET", "/readyz", NULL, NULL, &r), 0);
        assert_int_equal(r.status, fail_open ? 200 : 503);
        assert_non_null(strstr(r.body, "ratelimit"));
        htu_response_free(&r);
        svc_app_free(app);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(limited_routes_carry_ratelimit_headers_and_429_problem),
        cmocka_unit_test(per_route_policies_and_costs),
        cmocka_unit_test(forwarded_for_is_trusted_only_from_listed_proxies),
        cmocka_unit_test(client_is_the_rightmost_untrusted_hop_however_many_hops_precede_it),
        cmocka_unit_test(more_trusted_hops_than_examined_fall_back_to_the_peer),
        cmocka_unit_test(ratelimit_policy_header_follows_a_replaced_policy),
        cmocka_unit_test(keys_from_callback_and_tenant_and_selected_policy),
        cmocka_unit_test(tenant_and_principal_keys_never_collide),
        cmocka_unit_test(shadow_mode_never_denies),
        cmocka_unit_test(a_plan_name_checks_the_plan),
        cmocka_unit_test(custom_skip_paths_exact_and_prefix),
        cmocka_unit_test(store_down_fails_closed_with_503_or_open),
        cmocka_unit_test(add_null_is_configured_from_the_app_yaml),
        cmocka_unit_test(add_null_is_configured_from_the_environment),
        cmocka_unit_test(add_null_refuses_a_bad_configuration),
        cmocka_unit_test(limiter_freed_before_the_app_stays_usable),
        cmocka_unit_test(redis_store_has_a_readiness_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
