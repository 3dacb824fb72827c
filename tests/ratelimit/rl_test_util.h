/*
 * rl_test_util.h - helpers shared by the rate limit tests: a store that is
 * down, and reading the decision counter.
 */
#ifndef SVC_TEST_RL_UTIL_H
#define SVC_TEST_RL_UTIL_H

#include "svcinfra/log.h"
#include "svcinfra/metrics.h"
#include "svcinfra/ratelimit.h"

#include "ratelimit/store.h"

/* A store whose every call fails with SVC_EUNAVAILABLE ("connection
 * refused"); new, owned by the limiter it is given to. */
svc__rl_store *rl_test_down_store(void);

/* ratelimit_decisions_total{policy, result} in `m`; 0 when never counted. */
double rl_test_decisions(svc_metrics *m, const char *policy, const char *result);

/* A deterministic generator (xorshift), so failures repeat: 0..n-1. */
uint64_t rl_test_rnd(uint64_t n);

/* A random step of a walk through time for a period of `period_ns`: none,
 * under a ms, a long idle (1-3 periods) or up to a quarter period. */
int64_t rl_test_step_ns(int64_t period_ns);

/* Log lines that contain `needle`, captured from the global log sink
 * between rl_test_log_start() and rl_test_log_stop() (at INFO and above). */
typedef struct rl_test_log {
    const char *needle;
    int lines;      /* how many matched */
    char last[1024]; /* the latest match, cut to fit */
} rl_test_log;

void rl_test_log_start(rl_test_log *log, const char *needle);
/* The number of matches so far (lines of any thread). */
int rl_test_log_count(rl_test_log *log);
void rl_test_log_stop(void);

#endif
