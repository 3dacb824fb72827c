/*
 * test_fleet.c - rate limits shared by a fleet, and a Redis that dies.
 *
 *   test_ratelimit_fleet RL_SERVER_BINARY
 *
 * Fleet: two rl_server processes on one Redis (SVC_TEST_REDIS_URL; skipped
 * when unset) are hammered at once over loopback by four client threads
 * with a bounded number of requests; together they admit exactly the limit
 * (fixed window and GCRA, periods long enough that nothing refills during
 * the test) and answer the rest 429.
 *
 * Failure: the test runs its own redis-server (skipped when the binary is
 * missing) on a free loopback port, then stops it (SIGSTOP: the port still
 * accepts, nothing answers), kills it (SIGKILL) and starts it again on the
 * same port: checks return (bounded by store_timeout_ms) and fail open
 * (store_error, a log line, ratelimit_store_errors_total) or closed (an
 * error status, 503 UNAVAILABLE over HTTP), and are enforced again once the
 * server is back.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../http/http_test_util.h"
#include "svcinfra/alloc.h"
#include "svcinfra/crypto.h"
#include "svcinfra/http.h"
#include "svcinfra/log.h"
#include "svcinfra/metrics.h"
#include "svcinfra/ratelimit.h"

static const char *server_bin;

/* ---- child processes ------------------------------------------------------------ */

/* Starts argv[0] with stdout on a pipe (stderr inherited); *out_fd reads it. */
static pid_t spawn(char *const argv[], int *out_fd)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    *out_fd = p[0];
    return pid;
}

/* Reads "listening on PORT" from fd within 10 s; 0 when it did not come. */
static uint16_t read_port(int fd)
{
    char buf[256];
    size_t n = 0;
    for (int waited = 0; waited < 10000 && n < sizeof buf - 1; waited += 100) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        buf[n] = '\0';
        unsigned port;
        if (strchr(buf, '\n') && sscanf(buf, "listening on %u", &port) == 1 && port < 65536)
            return (uint16_t)port;
    }
    return 0;
}

/* SIGTERM (or SIGKILL when `kill_it`), then reaps it within 10 s, else
 * SIGKILL. */
static void stop_child(pid_t pid, bool kill_it)
{
    kill(pid, kill_it ? SIGKILL : SIGTERM);
    for (int waited = 0; waited < 10000; waited += 20) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        htu_sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* ---- the fleet --------------------------------------------------------------------- */

#define CLIENTS 4
#define PER_CLIENT 40
#define FLEET_LIMIT 50

typedef struct hammer {
    uint16_t ports[2];
    atomic_int ok, limited, other;
} hammer;

typedef struct hammer_arg {
    hammer *h;
    int id;
} hammer_arg;

static void *hammer_run(void *p)
{
    hammer_arg *a = p;
    for (int i = 0; i < PER_CLIENT; i++) {
        htu_response r;
        uint16_t port = a->h->ports[(i + a->id) % 2];
        int rc = htu_request(port, "GET", "/x", NULL, NULL, &r);
        int status = rc == 0 ? r.status : 0;
        if (rc == 0)
            htu_response_free(&r);
        if (status == 200)
            atomic_fetch_add(&a->h->ok, 1);
        else if (status == 429)
            atomic_fetch_add(&a->h->limited, 1);
        else
            atomic_fetch_add(&a->h->other, 1);
    }
    return NULL;
}

static void fleet_admits_exactly(const char *alg, const char *period_ms)
{
    const char *url = getenv("SVC_TEST_REDIS_URL");
    if (!url || !*url)
        skip();
    char hex[17], key[40], limit[16];
    assert_int_equal(svc_random_hex(hex, 8), SVC_OK);
    snprintf(key, sizeof key, "fleet-%s", hex);
    snprintf(limit, sizeof limit, "%d", FLEET_LIMIT);
    char *argv[] = {(char *)server_bin, (char *)url, (char *)alg, limit, (char *)period_ms,
                    key, NULL};
    pid_t pids[2];
    int fds[2];
    hammer h = {0};
    for (int i = 0; i < 2; i++) {
        pids[i] = spawn(argv, &fds[i]);
        h.ports[i] = read_port(fds[i]);
    }
    assert_true(h.ports[0] != 0 && h.ports[1] != 0);
    assert_true(h.ports[0] != h.ports[1]);

    pthread_t th[CLIENTS];
    hammer_arg args[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        args[i] = (hammer_arg){&h, i};
        assert_int_equal(pthread_create(&th[i], NULL, hammer_run, &args[i]), 0);
    }
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        stop_child(pids[i], false);
        close(fds[i]);
    }
    printf("fleet %s: %d admitted, %d limited, %d other\n", alg, atomic_load(&h.ok),
           atomic_load(&h.limited), atomic_load(&h.other));
    assert_int_equal(atomic_load(&h.other), 0);
    assert_int_equal(atomic_load(&h.ok), FLEET_LIMIT);
    assert_int_equal(atomic_load(&h.limited), CLIENTS * PER_CLIENT - FLEET_LIMIT);
}

/* Fixed window of 366 days: the window cannot roll over during the test
 * (short of crossing one of its epoch-aligned boundaries). */
static void two_servers_on_one_redis_admit_exactly_the_fixed_window_limit(void **state)
{
    (void)state;
    fleet_admits_exactly("fixed_window", "31622400000");
}

/* GCRA of 50 per hour: one unit refills every 72 s, none during the test. */
static void two_servers_on_one_redis_admit_exactly_the_gcra_burst(void **state)
{
    (void)state;
    fleet_admits_exactly("gcra", "3600000");
}

/* ---- a Redis of our own ------------------------------------------------------------ */

typedef struct own_redis {
    char dir[64];
    uint16_t port;
    pid_t pid;
    char url[64];
} own_redis;

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* 1 when a PING on port answers +PONG within a short wait. */
static bool redis_pings(uint16_t port)
{
    int fd = htu_connect(port);
    if (fd < 0)
        return false;
    char buf[16] = "";
    bool ok = htu_send(fd, "PING\r\n", 6) == 0;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    ok = ok && poll(&pfd, 1, 500) == 1 && read(fd, buf, sizeof buf - 1) > 0 &&
         strncmp(buf, "+PONG", 5) == 0;
    close(fd);
    return ok;
}

static bool redis_start(own_redis *r)
{
    char port[8], log[128];
    snprintf(port, sizeof port, "%u", (unsigned)r->port);
    snprintf(log, sizeof log, "%s/redis.log", r->dir);
    char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", r->dir,
                    "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", log,
                    NULL};
    int fd;
    r->pid = spawn(argv, &fd);
    close(fd);
    for (int waited = 0; waited < 10000; waited += 50) {
        if (redis_pings(r->port))
            return true;
        if (waitpid(r->pid, NULL, WNOHANG) == r->pid)
            break; /* exited: not installed, or the port was taken */
        htu_sleep_ms(50);
    }
    return false;
}

static bool have_redis_server(void)
{
    return system("command -v redis-server >/dev/null 2>&1") == 0;
}

/* ---- store failure and recovery ----------------------------------------------------- */

typedef struct captured {
    pthread_mutex_t mu;
    int store_failed_lines;
} captured;

static void capture_sink(svc_log_level level, const char *line, size_t len, void *ctx)
{
    (void)level;
    (void)len;
    captured *c = ctx;
    if (strstr(line, "rate limit store failed")) {
        pthread_mutex_lock(&c->mu);
        c->store_failed_lines++;
        pthread_mutex_unlock(&c->mu);
    }
}

static double store_errors_metric(svc_metrics *m)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(svc_metrics_render(m, &text, &len), SVC_OK);
    const char *p = strstr(text, "ratelimit_store_errors_total{store=\"redis\"} ");
    double v = p ? strtod(strchr(p, ' ') + 1, NULL) : 0;
    svc_free(text);
    return v;
}

#define STORE_TIMEOUT_MS 300
/* Longest a call may take while the store hangs or is gone: a bound on a
 * hang (connect, checkout and command are each bounded by the timeout),
 * generous so a loaded machine does not trip it. */
#define HANG_BOUND_MS (3 * STORE_TIMEOUT_MS)

static int64_t mono_ms(void) { return svc_clock_mono_ns(NULL) / 1000000; }

static svc_ratelimit *open_limiter(const char *url, int fail_open, svc_metrics *m)
{
    svc_ratelimit_opts o;
    svc_ratelimit_opts_default(&o);
    o.url = url;
    o.store_timeout_ms = STORE_TIMEOUT_MS;
    o.fail_open = fail_open;
    o.metrics = m;
    svc_ratelimit *rl = NULL;
    assert_int_equal(svc_ratelimit_new(&rl, &o), SVC_OK);
    svc_ratelimit_policy p = {.name = "down", .algorithm = SVC_RL_FIXED_WINDOW, .limit = 3,
                              .period_ms = INT64_C(31622400000)};
    assert_int_equal(svc_ratelimit_policy_add(rl, &p), SVC_OK);
    return rl;
}

/* Spends the limit of 3 on `key` and sees the 4th denied: enforced. */
static void assert_enforced(svc_ratelimit *rl, const char *key)
{
    svc_ratelimit_result r;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(svc_ratelimit_check(rl, "down", key, 1, &r), SVC_OK);
        assert_true(r.allowed);
        assert_false(r.store_error);
    }
    assert_int_equal(svc_ratelimit_check(rl, "down", key, 1, &r), SVC_OK);
    assert_false(r.allowed);
    assert_false(r.store_error);
}

/* Fails the test when the call that started at `t0` took past the bound. */
static void within_hang_bound(int64_t t0, const char *what)
{
    int64_t took = mono_ms() - t0;
    if (took >= HANG_BOUND_MS)
        fail_msg("%s took %lld ms with store_timeout_ms = %d", what, (long long)took,
                 STORE_TIMEOUT_MS);
}

/* While the store is down: the open limiter admits with store_error, the
 * closed one returns an error status and denies, HTTP answers 503. None
 * may hang: each returns within HANG_BOUND_MS. */
static void assert_failing(svc_ratelimit *open_rl, svc_ratelimit *closed_rl, uint16_t http_port,
                           const char *key)
{
    svc_ratelimit_result r;
    for (int i = 0; i < 5; i++) {
        int64_t t0 = mono_ms();
        assert_int_equal(svc_ratelimit_check(open_rl, "down", key, 1, &r), SVC_OK);
        within_hang_bound(t0, "a fail-open check");
        assert_true(r.allowed);
        assert_true(r.store_error);
    }
    int64_t t0 = mono_ms();
    svc_status st = svc_ratelimit_check(closed_rl, "down", key, 1, &r);
    within_hang_bound(t0, "a fail-closed check");
    assert_int_not_equal(st, SVC_OK);
    assert_true(st == SVC_EUNAVAILABLE || st == SVC_ETIMEDOUT);
    assert_false(r.allowed);
    htu_response hr;
    t0 = mono_ms();
    assert_int_equal(htu_request(http_port, "GET", "/x", NULL, NULL, &hr), 0);
    within_hang_bound(t0, "an HTTP request");
    assert_int_equal(hr.status, 503);
    assert_non_null(strstr(htu_header(&hr, "Content-Type"), "application/problem+json"));
    assert_non_null(strstr(hr.body, "\"code\":\"UNAVAILABLE\""));
    htu_response_free(&hr);
}

static void h_ok(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    (void)ud;
    assert_int_equal(svc_res_text(res, 200, "ok"), SVC_OK);
}

static void redis_stopped_killed_and_restarted_fails_open_or_closed_then_recovers(void **state)
{
    (void)state;
    if (!have_redis_server())
        skip();
    own_redis rs = {0};
    snprintf(rs.dir, sizeof rs.dir, "/tmp/svc-rl-redis-XXXXXX");
    assert_non_null(mkdtemp(rs.dir));
    rs.port = free_port();
    snprintf(rs.url, sizeof rs.url, "redis://127.0.0.1:%u/0", (unsigned)rs.port);
    assert_true(redis_start(&rs));

    captured cap = {.mu = PTHREAD_MUTEX_INITIALIZER};
    svc_log_level old_level = svc_log_get_level();
    svc_log_set_level(SVC_LOG_WARN);
    svc_log_set_sink(capture_sink, &cap);

    svc_metrics *m;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_ratelimit *open_rl = open_limiter(rs.url, 1, m);
    svc_ratelimit *closed_rl = open_limiter(rs.url, 0, NULL);

    svc_app_opts ao;
    svc_app_opts_default(&ao);
    ao.port = 0;
    ao.threads = 1;
    ao.access_log = 0;
    svc_app *app;
    assert_int_equal(svc_app_new(&app, &ao), SVC_OK);
    assert_int_equal(svc_app_route(app, "GET", "/x", h_ok, NULL), SVC_OK);
    svc_ratelimit_http_opts ho;
    svc_ratelimit_http_opts_default(&ho);
    ho.rl = closed_rl;
    ho.policy = "down";
    assert_int_equal(svc_add_ratelimit(app, &ho), SVC_OK);
    assert_int_equal(svc_app_start(app), SVC_OK);
    uint16_t http_port = svc_app_port(app);

    /* up: enforced on both limiters */
    assert_enforced(open_rl, "before");
    assert_enforced(closed_rl, "before-closed");
    assert_int_equal(store_errors_metric(m), 0);

    /* stopped: connections open but nothing answers; every call ends by
     * store_timeout_ms instead of hanging */
    assert_int_equal(kill(rs.pid, SIGSTOP), 0);
    assert_failing(open_rl, closed_rl, http_port, "stopped");

    /* killed: connections refused */
    stop_child(rs.pid, true);
    assert_failing(open_rl, closed_rl, http_port, "killed");

    svc_ratelimit_stats stats;
    assert_int_equal(svc_ratelimit_stats_get(open_rl, &stats), SVC_OK);
    assert_true(stats.store_errors >= 10);
    assert_true(store_errors_metric(m) >= 10);
    pthread_mutex_lock(&cap.mu);
    assert_true(cap.store_failed_lines >= 1);
    pthread_mutex_unlock(&cap.mu);

    /* restarted on the same port (empty: no persistence): once the pools'
     * reconnect backoff lets a connection through, limits hold again */
    assert_true(redis_start(&rs));
    bool back = false;
    for (int i = 0; i < 200 && !back; i++) { /* at most ~20 s of 100 ms waits */
        svc_ratelimit_result r;
        back = svc_ratelimit_peek(open_rl, "down", "probe", 1, &r) == SVC_OK && !r.store_error &&
               svc_ratelimit_peek(closed_rl, "down", "probe", 1, &r) == SVC_OK;
        if (!back)
            htu_sleep_ms(100);
    }
    assert_true(back);
    assert_enforced(open_rl, "after");
    assert_enforced(closed_rl, "after-closed");
    htu_response hr;
    assert_int_equal(htu_request(http_port, "GET", "/x", NULL, NULL, &hr), 0);
    assert_int_equal(hr.status, 200);
    assert_non_null(htu_header(&hr, "RateLimit"));
    htu_response_free(&hr);

    svc_app_free(app);
    svc_ratelimit_free(open_rl);
    svc_ratelimit_free(closed_rl);
    svc_metrics_free(m);
    svc_log_set_sink(NULL, NULL);
    svc_log_set_level(old_level);
    stop_child(rs.pid, true);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", rs.dir);
    assert_int_equal(system(cmd), 0);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s RL_SERVER_BINARY\n", argv[0]);
        return 2;
    }
    server_bin = argv[1];
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(two_servers_on_one_redis_admit_exactly_the_fixed_window_limit),
        cmocka_unit_test(two_servers_on_one_redis_admit_exactly_the_gcra_burst),
        cmocka_unit_test(redis_stopped_killed_and_restarted_fails_open_or_closed_then_recovers),
    };
    return cmocka_run_group_tests_name("ratelimit fleet and store failure", tests, NULL, NULL);
}
