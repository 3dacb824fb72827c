/* rl_test_util.c - see rl_test_util.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "rl_test_util.h"

static svc_status down_apply(svc__rl_store *s, const svc__rl_req *req, svc__rl_out *out,
                             svc__err *err)
{
    (void)s;
    (void)req;
    (void)out;
    return svc__err_set(err, SVC_EUNAVAILABLE, "connection refused");
}

static void down_stats(svc__rl_store *s, svc__rl_store_stats *out)
{
    (void)s;
    memset(out, 0, sizeof *out);
}

static void down_destroy(svc__rl_store *s) { free(s); }

static const svc__rl_store_ops down_ops = {"down", down_apply, down_stats, down_destroy};

svc__rl_store *rl_test_down_store(void)
{
    svc__rl_store *s = malloc(sizeof *s);
    assert_non_null(s);
    s->ops = &down_ops;
    return s;
}

double rl_test_decisions(svc_metrics *m, const char *policy, const char *result)
{
    svc_counter *c;
    const char *const dl[] = {"policy", "result", NULL};
    assert_int_equal(svc_metrics_counter(m, "ratelimit_decisions_total", NULL, dl, &c), SVC_OK);
    const char *lv[] = {policy, result};
    double v = 0;
    return svc_counter_get(c, lv, &v) == SVC_OK ? v : 0;
}

static uint64_t rng_state = 88172645463325252u;

uint64_t rl_test_rnd(uint64_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state % n;
}

int64_t rl_test_step_ns(int64_t period_ns)
{
    switch (rl_test_rnd(8)) {
    case 0:
        return 0;
    case 1:
        return (int64_t)rl_test_rnd(1000000); /* sub-ms */
    case 2:
        return period_ns * (int64_t)(1 + rl_test_rnd(3)); /* long idle */
    default:
        return (int64_t)rl_test_rnd((uint64_t)(period_ns / 4 + 1));
    }
}

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static svc_log_level log_was;

static void log_sink(svc_log_level level, const char *line, size_t len, void *ctx)
{
    (void)level;
    rl_test_log *log = ctx;
    pthread_mutex_lock(&log_mu);
    if (strstr(line, log->needle)) {
        log->lines++;
        size_t n = len < sizeof log->last - 1 ? len : sizeof log->last - 1;
        memcpy(log->last, line, n);
        log->last[n] = '\0';
    }
    pthread_mutex_unlock(&log_mu);
}

void rl_test_log_start(rl_test_log *log, const char *needle)
{
    memset(log, 0, sizeof *log);
    log->needle = needle;
    log_was = svc_log_get_level();
    svc_log_set_level(SVC_LOG_INFO);
    svc_log_set_sink(log_sink, log);
}

int rl_test_log_count(rl_test_log *log)
{
    pthread_mutex_lock(&log_mu);
    int n = log->lines;
    pthread_mutex_unlock(&log_mu);
    return n;
}

void rl_test_log_stop(void)
{
    svc_log_set_sink(NULL, NULL);
    svc_log_set_level(log_was);
}
