/*
 * rl_server.c - one instance of a rate-limited service, for the fleet test.
 *
 *   rl_server REDIS_URL ALGORITHM LIMIT PERIOD_MS KEY
 *
 * An svc_app on 127.0.0.1 (a free port, printed as "listening on PORT")
 * answering GET /x with 200 "ok", behind svc_add_ratelimit() with the policy
 * "fleet" (ALGORITHM LIMIT per PERIOD_MS) on a redis:// store, every
 * request counted under KEY, so several instances share one limit. Exits on
 * SIGTERM or SIGINT through svc_app_run().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcinfra/http.h"
#include "svcinfra/log.h"
#include "svcinfra/ratelimit.h"

static void ok(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    (void)ud;
    if (svc_res_text(res, 200, "ok") != SVC_OK)
        svc_res_status(res, 500);
}

static int fixed_key(svc_req *req, char *buf, size_t buflen, void *ud)
{
    (void)req;
    snprintf(buf, buflen, "%s", (const char *)ud);
    return 1;
}

static int fail(const char *what, svc_status st)
{
    fprintf(stderr, "rl_server: %s: %s\n", what, svc_strerror(st));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s REDIS_URL ALGORITHM LIMIT PERIOD_MS KEY\n", argv[0]);
        return 2;
    }
    svc_ratelimit_policy p = {.name = "fleet"};
    if (svc_ratelimit_algorithm_parse(argv[2], &p.algorithm) != SVC_OK) {
        fprintf(stderr, "rl_server: unknown algorithm %s\n", argv[2]);
        return 2;
    }
    p.limit = strtoull(argv[3], NULL, 10);
    p.period_ms = strtoll(argv[4], NULL, 10);

    svc_ratelimit_opts ro;
    svc_ratelimit_opts_default(&ro);
    ro.url = argv[1];
    ro.fail_open = 0; /* a store failure must show as 503, never as extra 200s */
    svc_ratelimit *rl = NULL;
    svc_status st = svc_ratelimit_new(&rl, &ro);
    if (st != SVC_OK)
        return fail("svc_ratelimit_new", st);
    if ((st = svc_ratelimit_policy_add(rl, &p)) != SVC_OK) {
        fprintf(stderr, "rl_server: %s\n", svc_ratelimit_errmsg(rl));
        svc_ratelimit_free(rl);
        return 1;
    }

    svc_app_opts ao;
    svc_app_opts_default(&ao);
    ao.bind_addr = "127.0.0.1";
    ao.port = 0;
    ao.threads = 2;
    ao.access_log = 0;
    svc_app *app = NULL;
    if ((st = svc_app_new(&app, &ao)) != SVC_OK) {
        svc_ratelimit_free(rl);
        return fail("svc_app_new", st);
    }
    svc_ratelimit_http_opts ho;
    svc_ratelimit_http_opts_default(&ho);
    ho.rl = rl;
    ho.policy = "fleet";
    ho.key_fn = fixed_key;
    ho.key_ud = argv[5];
    if ((st = svc_app_route(app, "GET", "/x", ok, NULL)) != SVC_OK ||
        (st = svc_add_ratelimit(app, &ho)) != SVC_OK || (st = svc_app_start(app)) != SVC_OK) {
        svc_app_free(app);
        svc_ratelimit_free(rl);
        return fail("setup", st);
    }
    printf("listening on %u\n", (unsigned)svc_app_port(app));
    fflush(stdout);
    st = svc_app_run(app);
    svc_app_free(app);
    svc_ratelimit_free(rl);
    return st == SVC_OK ? 0 : 1;
}
