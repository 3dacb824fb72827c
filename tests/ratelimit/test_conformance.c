/* test_conformance.c - runs the store conformance table on one store:
 *   test_ratelimit_conformance memory   the memory: store
 *   test_ratelimit_conformance redis    the server in SVC_TEST_REDIS_URL
 *                                       (exit 77, skipped, when unset),
 *                                       plus what only a shared store shows */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcinfra/crypto.h"
#include "svcinfra/ratelimit.h"
#include "svcinfra/redis.h"

#include "conformance.h"

static const char *redis_url;

static svc_ratelimit *open_with_clock(const svc_clock *clock)
{
    svc_ratelimit *rl = rl_conformance_open(redis_url, clock);
    svc_ratelimit_policy p = {.name = "conf-skew", .algorithm = SVC_RL_GCRA, .limit = 3,
                              .period_ms = 3600000};
    assert_int_equal(svc_ratelimit_policy_add(rl, &p), SVC_OK);
    return rl;
}

/* Two instances whose clocks are an hour apart share one limit: time comes
 * from the server. */
static void instances_with_skewed_clocks_share_one_limit(void **state)
{
    (void)state;
    svc_manual_clock *late;
    assert_int_equal(svc_manual_clock_new(&late, 0,
                                          svc_clock_wall_ns(NULL) + INT64_C(3600) * 1000000000),
                     SVC_OK);
    svc_ratelimit *a = open_with_clock(NULL);
    svc_ratelimit *b = open_with_clock(svc_manual_clock_get(late));
    char hex[17], key[40];
    assert_int_equal(svc_random_hex(hex, 8), SVC_OK);
    snprintf(key, sizeof key, "skew-%s", hex);
    svc_ratelimit_result r;
    assert_int_equal(svc_ratelimit_check(a, "conf-skew", key, 2, &r), SVC_OK);
    assert_true(r.allowed);
    assert_int_equal(svc_ratelimit_check(b, "conf-skew", key, 1, &r), SVC_OK);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(svc_ratelimit_check(b, "conf-skew", key, 1, &r), SVC_OK);
    assert_false(r.allowed);
    assert_int_equal(svc_ratelimit_check(a, "conf-skew", key, 1, &r), SVC_OK);
    assert_false(r.allowed);
    assert_true(r.retry_after_ms > 0 && r.retry_after_ms <= 1200000);
    svc_ratelimit_free(a);
    svc_ratelimit_free(b);
    svc_manual_clock_free(late);
}

static svc_ratelimit *open_quota_limiter(const svc_clock *clock)
{
    svc_ratelimit *rl = rl_conformance_open(redis_url, clock);
    svc_quota q = {.name = "conf-calls", .period = SVC_QUOTA_DAY, .limit = 5};
    assert_int_equal(svc_ratelimit_quota_add(rl, &q), SVC_OK);
    return rl;
}

/* Instance A 10 s before midnight UTC, B 5 s after (15 s of skew): B's use
 * counts in B's day and leaves A's spent day spent. */
static void instances_straddling_midnight_keep_separate_quota_windows(void **state)
{
    (void)state;
    const int64_t s = INT64_C(1000000000);
    int64_t midnight = (svc_clock_wall_ns(NULL) / (86400 * s) + 1) * 86400 * s;
    svc_manual_clock *ca, *cb;
    assert_int_equal(svc_manual_clock_new(&ca, 0, midnight - 10 * s), SVC_OK);
    assert_int_equal(svc_manual_clock_new(&cb, 0, midnight + 5 * s), SVC_OK);
    svc_ratelimit *a = open_quota_limiter(svc_manual_clock_get(ca));
    svc_ratelimit *b = open_quota_limiter(svc_manual_clock_get(cb));
    char tenant[64];
    rl_conformance_key(tenant, sizeof tenant, "straddle");
    rl_conformance_consume(a, tenant, "conf-calls", 5, 1);
    svc_quota_usage_info u;
    assert_int_equal(svc_quota_consume(b, tenant, "conf-calls", 1, &u), SVC_OK);
    assert_true(u.allowed);
    assert_int_equal(u.used, 1);
    assert_int_equal(svc_quota_usage(a, tenant, "conf-calls", &u), SVC_OK);
    assert_int_equal(u.used, 5);
    rl_conformance_consume(a, tenant, "conf-calls", 5, 0);
    assert_int_equal(svc_quota_usage(b, tenant, "conf-calls", &u), SVC_OK);
    assert_int_equal(u.used, 1);
    svc_ratelimit_free(a);
    svc_ratelimit_free(b);
    svc_manual_clock_free(ca);
    svc_manual_clock_free(cb);
}

/* PTTL of `key` on the test server: ms, -1 no expiry, -2 no such key. */
static int64_t pttl(const char *key)
{
    svc_redis_opts o;
    svc_redis_opts_default(&o);
    o.url = redis_url;
    o.pool_size = 1;
    o.no_metrics = 1;
    svc_redis *r = NULL;
    assert_int_equal(svc_redis_new(&r, &o), SVC_OK);
    const char *argv[] = {"PTTL", key};
    svc_redis_reply *rep = NULL;
    assert_int_equal(svc_redis_command_argv(r, 2, argv, NULL, &rep), SVC_OK);
    assert_int_equal(svc_redis_reply_type(rep), SVC_REDIS_INTEGER);
    int64_t ms = svc_redis_reply_integer(rep);
    svc_redis_reply_free(rep);
    svc_redis_free(r);
    return ms;
}

/* A caller whose clock runs two days behind the server: its window ended
 * (by the server's clock) long ago, yet the counter it writes must live
 * the window's length plus a day from now, not expire at once. */
static void a_caller_behind_the_server_keeps_its_quota_counter(void **state)
{
    (void)state;
    const int64_t day_ns = INT64_C(86400) * 1000000000;
    svc_manual_clock *behind;
    assert_int_equal(svc_manual_clock_new(&behind, 0, svc_clock_wall_ns(NULL) - 2 * day_ns),
                     SVC_OK);
    svc_ratelimit *rl = open_quota_limiter(svc_manual_clock_get(behind));
    char tenant[64];
    rl_conformance_key(tenant, sizeof tenant, "behind");
    rl_conformance_consume(rl, tenant, "conf-calls", 3, 1);
    svc_quota_usage_info u;
    assert_int_equal(svc_quota_usage(rl, tenant, "conf-calls", &u), SVC_OK);
    assert_int_equal(u.used, 3);
    char key[128];
    snprintf(key, sizeof key, "{rl:q|conf-calls|%s}:%lld", tenant, (long long)u.window_start_ms);
    int64_t ttl = pttl(key);
    const int64_t day_ms = 86400000;
    assert_true(ttl > 2 * day_ms - 60000 && ttl <= 2 * day_ms);
    svc_ratelimit_free(rl);
    svc_manual_clock_free(behind);
}

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "memory";
    if (strcmp(which, "memory") == 0)
        return rl_conformance_run("ratelimit store conformance (memory:)", "memory:");
    if (strcmp(which, "redis") == 0) {
        redis_url = getenv("SVC_TEST_REDIS_URL");
        if (!redis_url || !*redis_url) {
            printf("SVC_TEST_REDIS_URL is not set: skipped\n");
            return 77;
        }
        int failed = rl_conformance_run("ratelimit store conformance (redis)", redis_url);
        const struct CMUnitTest shared[] = {
            cmocka_unit_test(instances_with_skewed_clocks_share_one_limit),
            cmocka_unit_test(instances_straddling_midnight_keep_separate_quota_windows),
            cmocka_unit_test(a_caller_behind_the_server_keeps_its_quota_counter),
        };
        return failed + cmocka_run_group_tests_name("ratelimit redis store", shared, NULL, NULL);
    }
    fprintf(stderr, "usage: %s memory|redis\n", argv[0]);
    return 2;
}
