/*
 * rl_test_util.h - helpers shared by the rate limit tests: a store that is
 * down, and reading the decision counter.
 */
#ifndef SVC_TEST_RL_UTIL_H
#define SVC_TEST_RL_UTIL_H

#include "svcinfra/metrics.h"
#include "svcinfra/ratelimit.h"

#include "ratelimit/store.h"

/* A store whose every call fails with SVC_EUNAVAILABLE ("connection
 * refused"); new, owned by the limiter it is given to. */
svc__rl_store *rl_test_down_store(void);

/* ratelimit_decisions_total{policy, result} in `m`; 0 when never counted. */
double rl_test_decisions(svc_metrics *m, const char *policy, const char *result);

#endif
