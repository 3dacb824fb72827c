/*
 * bench/http/svc_hello.c - "hello" on svc_app with the production stack.
 *
 *   svc_hello PORT THREADS ACCESS_LOG_FILE     (PORT 0: a free port, printed)
 *
 * The middleware a real service runs on every request: request id and
 * traceparent, a JSON access log line per request written to
 * ACCESS_LOG_FILE (a file sink, as in production; not a terminal), request
 * metrics, security headers and a CORS allowlist check. It answers GET
 * /hello with the same body as raw_mhd. Prints "listening on PORT" once
 * ready; exits on SIGTERM or SIGINT through svc_app_run().
 */
#include <stdio.h>
#include <stdlib.h>

#include "svcinfra/http.h"
#include "svcinfra/log.h"

static void hello(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    (void)ud;
    if (svc_res_json_str(res, 200, "{\"message\":\"hello, world\"}") != SVC_OK)
        svc_res_status(res, 500);
}

static int fail(svc_app *app, const char *what, svc_status st)
{
    fprintf(stderr, "svc_hello: %s: %s (%s)\n", what, svc_strerror(st),
            app ? svc_app_errmsg(app) : "");
    svc_app_free(app);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s PORT THREADS ACCESS_LOG_FILE\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    int threads = atoi(argv[2]);
    if (port < 0 || port > 65535 || threads <= 0 || threads > 256) {
        fprintf(stderr, "svc_hello: bad port or thread count\n");
        return 2;
    }
    svc_log_set_level(SVC_LOG_INFO);
    svc_status st = svc_log_open_file(argv[3]);
    if (st != SVC_OK) {
        fprintf(stderr, "svc_hello: cannot open %s: %s\n", argv[3], svc_strerror(st));
        return 1;
    }

    svc_app_opts opts;
    svc_app_opts_default(&opts);
    opts.bind_addr = "127.0.0.1";
    opts.port = (uint16_t)port;
    opts.threads = (unsigned)threads;

    svc_app *app = NULL;
    if ((st = svc_app_new(&app, &opts)) != SVC_OK)
        return fail(NULL, "svc_app_new", st);

    static const char *const origins[] = {"https://app.example.com", NULL};
    svc_cors_opts cors;
    svc_cors_opts_default(&cors);
    cors.allow_origins = origins;

    if ((st = svc_add_metrics(app, NULL)) != SVC_OK)
        return fail(app, "svc_add_metrics", st);
    if ((st = svc_add_cors(app, &cors)) != SVC_OK)
        return fail(app, "svc_add_cors", st);
    if ((st = svc_app_route(app, "GET", "/hello", hello, NULL)) != SVC_OK)
        return fail(app, "svc_app_route", st);
    if ((st = svc_app_start(app)) != SVC_OK)
        return fail(app, "svc_app_start", st);

    printf("listening on %u\n", (unsigned)svc_app_port(app));
    fflush(stdout);
    st = svc_app_run(app);
    svc_app_free(app);
    svc_log_flush();
    return st == SVC_OK ? 0 : 1;
}
