/*
 * rl_hello.c - "hello" on svc_app, with or without the rate limiter, for
 * bench/ratelimit/run_http.sh.
 *
 *   rl_hello PORT THREADS ACCESS_LOG_FILE off|on     (PORT 0: a free port)
 *
 * Both modes run the same server: request id, a JSON access log line per
 * request to ACCESS_LOG_FILE, request metrics, GET /hello. "on" adds
 * svc_add_ratelimit() on a memory: store with a policy generous enough that
 * every request is admitted (GCRA, 10^9 per second), so each request pays
 * for a check and the RateLimit headers and nothing else differs. Prints
 * "listening on PORT" once ready; exits on SIGTERM or SIGINT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcinfra/http.h"
#include "svcinfra/log.h"
#include "svcinfra/ratelimit.h"

static void hello(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    (void)ud;
    if (svc_res_json_str(res, 200, "{\"message\":\"hello, world\"}") != SVC_OK)
        svc_res_status(res, 500);
}

static int fail(const char *what, svc_status st)
{
    fprintf(stderr, "rl_hello: %s: %s\n", what, svc_strerror(st));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[4], "on") != 0 && strcmp(argv[4], "off") != 0)) {
        fprintf(stderr, "usage: %s PORT THREADS ACCESS_LOG_FILE off|on\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]), threads = atoi(argv[2]);
    if (port < 0 || port > 65535 || threads <= 0 || threads > 256) {
        fprintf(stderr, "rl_hello: bad port or thread count\n");
        return 2;
    }
    svc_log_set_level(SVC_LOG_INFO);
    svc_status st = svc_log_open_file(argv[3]);
    if (st != SVC_OK)
        return fail("svc_log_open_file", st);

    svc_ratelimit *rl = NULL;
    if (strcmp(argv[4], "on") == 0) {
        svc_ratelimit_opts ro;
        svc_ratelimit_opts_default(&ro);
        ro.url = "memory:";
        ro.no_metrics = 1; /* as before: the middleware without the limiter's counters */
        svc_ratelimit_policy p = {.name = "api", .algorithm = SVC_RL_GCRA,
                                  .limit = 1000000000, .period_ms = 1000};
        if ((st = svc_ratelimit_new(&rl, &ro)) != SVC_OK ||
            (st = svc_ratelimit_policy_add(rl, &p)) != SVC_OK)
            return fail("rate limiter", st);
    }

    svc_app_opts opts;
    svc_app_opts_default(&opts);
    opts.bind_addr = "127.0.0.1";
    opts.port = (uint16_t)port;
    opts.threads = (unsigned)threads;
    svc_app *app = NULL;
    if ((st = svc_app_new(&app, &opts)) != SVC_OK) {
        svc_ratelimit_free(rl);
        return fail("svc_app_new", st);
    }
    svc_ratelimit_http_opts ho;
    svc_ratelimit_http_opts_default(&ho);
    ho.rl = rl;
    ho.policy = "api";
    if ((st = svc_add_metrics(app, NULL)) != SVC_OK ||
        (rl && (st = svc_add_ratelimit(app, &ho)) != SVC_OK) ||
        (st = svc_app_route(app, "GET", "/hello", hello, NULL)) != SVC_OK ||
        (st = svc_app_start(app)) != SVC_OK) {
        svc_app_free(app);
        svc_ratelimit_free(rl);
        return fail("setup", st);
    }
    printf("listening on %u\n", (unsigned)svc_app_port(app));
    fflush(stdout);
    st = svc_app_run(app);
    svc_app_free(app);
    svc_ratelimit_free(rl);
    svc_log_flush();
    return st == SVC_OK ? 0 : 1;
}
