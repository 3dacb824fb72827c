/* conformance.c - the store conformance cases (see conformance.h). */
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

#include "conformance.h"

#define HOUR_MS INT64_C(3600000)
#define DAY_MS (24 * HOUR_MS)

svc_ratelimit *rl_conformance_open(const char *url, const svc_clock *clock)
{
    svc_ratelimit_opts o;
    svc_ratelimit_opts_default(&o);
    o.url = url;
    o.clock = clock;
    o.fail_open = 0;
    svc_ratelimit *rl = NULL;
    svc_status st = svc_ratelimit_new(&rl, &o);
    if (st != SVC_OK)
        fail_msg("cannot open store %s: %s", url, svc_strerror(st));
    return rl;
}

static svc_ratelimit *open_rl(const char *url) { return rl_conformance_open(url, NULL); }

void rl_conformance_key(char *buf, size_t cap, const char *what)
{
    char hex[17];
    assert_int_equal(svc_random_hex(hex, 8), SVC_OK);
    snprintf(buf, cap, "conf-%s-%s", hex, what);
}

#define fresh_key rl_conformance_key

void rl_conformance_consume(svc_ratelimit *rl, const char *tenant, const char *quota, int times,
                            int want_allowed)
{
    for (int i = 0; i < times; i++) {
        svc_quota_usage_info u;
        assert_int_equal(svc_quota_consume(rl, tenant, quota, 1, &u), SVC_OK);
        assert_int_equal(u.allowed, want_allowed);
    }
}

static void add(svc_ratelimit *rl, const char *name, svc_ratelimit_algorithm a, uint64_t limit,
                int64_t period_ms, uint64_t burst)
{
    svc_ratelimit_policy p = {.name = name, .algorithm = a, .limit = limit,
                              .period_ms = period_ms, .burst = burst};
    assert_int_equal(svc_ratelimit_policy_add(rl, &p), SVC_OK);
}

/* Checks `cost` until denied (at most `max` times); returns units admitted. */
static uint64_t drain(svc_ratelimit *rl, const char *pol, const char *key, uint64_t cost,
                      int max, svc_ratelimit_result *last)
{
    uint64_t admitted = 0;
    for (int i = 0; i < max; i++) {
        assert_int_equal(svc_ratelimit_check(rl, pol, key, cost, last), SVC_OK);
        assert_int_equal(last->store_error, 0);
        if (!last->allowed)
            break;
        admitted += cost;
    }
    return admitted;
}

static int64_t window_of(int64_t period_ms)
{
    return svc_clock_wall_ns(NULL) / (period_ms * INT64_C(1000000));
}

static void gcra_admits_the_burst_then_denies(const char *url)
{
    svc_ratelimit *rl = open_rl(url);
    add(rl, "conf-gcra", SVC_RL_GCRA, 5, HOUR_MS, 0);
    char key[64];
    fresh_key(key, sizeof key, "gcra");
    svc_ratelimit_result r;
    assert_int_equal(drain(rl, "conf-gcra", key, 1, 10, &r), 5);
    assert_false(r.allowed);
    assert_int_equal(r.limit, 5);
    assert_int_equal(r.remaining, 0);
    /* one unit every 12 minutes */
    assert_true(r.retry_after_ms > 0 && r.retry_after_ms <= HOUR_MS / 5);
    assert_true(r.reset_ms > HOUR_MS - HOUR_MS / 5 && r.reset_ms <= HOUR_MS);
    svc_ratelimit_free(rl);
}

static void windows_admit_the_limit_then_deny(const char *url)
{
    svc_ratelimit *rl = open_rl(url);
    add(rl, "conf-fixed", SVC_RL_FIXED_WINDOW, 4, DAY_MS, 0);
    add(rl, "conf-sliding", SVC_RL_SLIDING_WINDOW, 4, DAY_MS, 0);
    const char *pols[] = {"conf-fixed", "conf-sliding"};
    for (int p = 0; p < 2; p++) {
        for (int attempt = 0;; attempt++) {
            char key[64];
            fresh_key(key, sizeof key, pols[p]);
            int64_t w0 = window_of(DAY_MS);
            svc_ratelimit_result r;
            uint64_t n = drain(rl, pols[p], key, 1, 10, &r);
            if (window_of(DAY_MS) != w0 && attempt < 2)
                continue; /* crossed midnight UTC while counting: once more */
            /* sliding: the previous window is empty for a fresh key */
            assert_int_equal(n, 4);
            assert_false(r.allowed);
            assert_true(r.retry_after_ms > 0 && r.retry_after_ms <= 2 * DAY_MS);
            break;
        }
    }
    svc_ratelimit_free(rl);
}

static void peek_spends_nothing(const char *url)
{
    svc_ratelimit *rl = open_rl(url);
    add(rl, "conf-peek", SVC_RL_GCRA, 3, HOUR_MS, 0);
    char key[64];
    fresh_key(key, sizeof key, "peek");
    svc_ratelimit_result r;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(svc_ratelimit_peek(rl, "conf-peek", key, 1, &r), SVC_OK);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, 2);
    }
    assert_int_equal(drain(rl, "conf-peek", key, 1, 10, &r), 3);
    assert_int_equal(svc_ratelimit_peek(rl, "conf-peek", key, 1, &r), SVC_OK);
    assert_false(r.allowed);
    svc_ratelimit_free(rl);
}

static void keys_and_policies_are_independent(const char *url)
{
    svc_ratelimit *rl = open_rl(url);
    add(rl, "conf-a", SVC_RL_GCRA, 2, HOUR_MS, 0);
    add(rl, "conf-b", SVC_RL_GCRA, 2, HOUR_MS, 0);
    char k1[64], k2[64];
    fresh_key(k1, sizeof k1, "one");
    fresh_key(k2, sizeof k2, "two");
    svc_ratelimit_result r;
    assert_int_equal(drain(rl, "conf-a", k1, 1, 5, &r), 2);
    assert_int_equal(drain(rl, "conf-a", k2, 1, 5, &r), 2);
    assert_int_equal(drain(rl, "conf-b", k1, 1, 5, &r), 2);
    svc_ratelimit_free(rl);
}

static void cost_counts_and_above_limit_never_passes(const char *url)
{
    svc_ratelimit *rl = open_rl(url);
    add(rl, "conf-cost", SVC_RL_GCRA, 10, HOUR_MS, 0);
    char key[64];
    fresh_key(key, sizeof key, "cost");
    svc_ratelimit_result r;
    assert_int_equal(svc_ratelimit_check(rl, "conf-cost", key, 11, &r), SVC_OK);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_ms, -1);
    assert_int_equal(r.remaining, 10); /* a denial spends nothing */
    assert_int_equal(svc_ratelimit_check(rl, "conf-cost", key, 4, &r), SVC_OK);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 6);
    assert_int_equal(svc_ratelimit_check(rl, "conf-cost", key, 7, &r), SVC_OK);
    assert_false(r.allowed);
    assert_int_equal(r.remaining, 6);
    assert_int_equal(svc_ratelimit_check(rl, "conf-cost", key, 6, &r), SVC_OK);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 0);
    svc_ratelimit_free(rl);
}

static void changing_the_algorithm_starts_afresh(const char *url)
{
    svc_ratelimit *rl = open_rl(url);
    add(rl, "conf-alg", SVC_RL_GCRA, 2, HOUR_MS, 0);
    char key[64];
    fresh_key(key, sizeof key, "alg");
    svc_ratelimit_result r;
    assert_int_equal(drain(rl, "conf-alg", key, 1, 5, &r), 2);
    add(rl, "conf-alg", SVC_RL_FIXED_WINDOW, 3, DAY_MS, 0);
    int64_t w0 = window_of(DAY_MS);
    uint64_t n = drain(rl, "conf-alg", key, 1, 5, &r);
    if (window_of(DAY_MS) == w0)
        assert_int_equal(n, 3);
    svc_ratelimit_free(rl);
}

static void quotas_count_and_read_back(const char *url)
{
    svc_ratelimit *rl = open_rl(url);
    svc_quota q = {.name = "conf-quota", .period = SVC_QUOTA_MONTH, .limit = 100};
    assert_int_equal(svc_ratelimit_quota_add(rl, &q), SVC_OK);
    char tenant[64];
    fresh_key(tenant, sizeof tenant, "tenant");
    svc_quota_usage_info u;
    assert_int_equal(svc_quota_usage(rl, tenant, "conf-quota", &u), SVC_OK);
    assert_int_equal(u.used, 0);
    assert_int_equal(svc_quota_consume(rl, tenant, "conf-quota", 60, &u), SVC_OK);
    assert_true(u.allowed);
    assert_int_equal(svc_quota_consume(rl, tenant, "conf-quota", 50, &u), SVC_OK);
    assert_false(u.allowed);
    assert_int_equal(svc_quota_usage(rl, tenant, "conf-quota", &u), SVC_OK);
    if (u.window_end_ms - u.reset_ms >= u.window_start_ms) { /* same month */
        assert_int_equal(u.used, 60);
        assert_int_equal(u.remaining, 40);
    }
    assert_true(u.window_start_ms < u.window_end_ms);
    svc_ratelimit_free(rl);
}

/* A rate that does not divide evenly (3 per second: T = 333 333.3 µs) is
 * rounded up to a whole µs by every store, and the figures are exact:
 * 3000 units at once take 3000 x 333 334 µs = 1 000 002 ms to refill. */
static void gcra_with_an_uneven_rate_is_exact_in_whole_microseconds(const char *url)
{
    svc_ratelimit *rl = open_rl(url);
    add(rl, "conf-uneven", SVC_RL_GCRA, 3, 1000, 3000);
    char key[64];
    fresh_key(key, sizeof key, "uneven");
    svc_ratelimit_result r;
    assert_int_equal(svc_ratelimit_check(rl, "conf-uneven", key, 3000, &r), SVC_OK);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.reset_ms, 1000002);
    assert_int_equal(svc_ratelimit_check(rl, "conf-uneven", key, 1, &r), SVC_OK);
    assert_false(r.allowed);
    /* one unit comes back after 333.334 ms, less the time since the check */
    assert_true(r.retry_after_ms >= 1 && r.retry_after_ms <= 334);
    svc_ratelimit_free(rl);
}

/* Quota windows come from the caller's clock. A clock that steps back over
 * midnight (or, across a fleet, instances on either side of it) must find
 * the earlier window's count where it left it, not reset by the later
 * window's first use. */
static void quota_windows_keep_their_counts_when_the_clock_steps_back(const char *url)
{
    const int64_t s = INT64_C(1000000000);
    int64_t midnight = (svc_clock_wall_ns(NULL) / (86400 * s) + 1) * 86400 * s;
    svc_manual_clock *mc;
    assert_int_equal(svc_manual_clock_new(&mc, 0, midnight - 10 * s), SVC_OK);
    svc_ratelimit *rl = rl_conformance_open(url, svc_manual_clock_get(mc));
    svc_quota q = {.name = "conf-quota-day", .period = SVC_QUOTA_DAY, .limit = 5};
    assert_int_equal(svc_ratelimit_quota_add(rl, &q), SVC_OK);
    char tenant[64];
    fresh_key(tenant, sizeof tenant, "straddle");
    rl_conformance_consume(rl, tenant, "conf-quota-day", 5, 1);
    svc_quota_usage_info u;
    svc_manual_clock_set_wall(mc, midnight + 5 * s); /* the next day */
    assert_int_equal(svc_quota_consume(rl, tenant, "conf-quota-day", 1, &u), SVC_OK);
    assert_true(u.allowed);
    assert_int_equal(u.used, 1);
    assert_int_equal(u.window_start_ms, midnight / 1000000);
    svc_manual_clock_set_wall(mc, midnight - 9 * s); /* back before midnight */
    assert_int_equal(svc_quota_usage(rl, tenant, "conf-quota-day", &u), SVC_OK);
    assert_int_equal(u.used, 5);
    assert_int_equal(svc_quota_consume(rl, tenant, "conf-quota-day", 1, &u), SVC_OK);
    assert_false(u.allowed);
    assert_int_equal(u.used, 5);
    svc_manual_clock_set_wall(mc, midnight + 6 * s);
    assert_int_equal(svc_quota_usage(rl, tenant, "conf-quota-day", &u), SVC_OK);
    assert_int_equal(u.used, 1);
    svc_ratelimit_free(rl);
    svc_manual_clock_free(mc);
}

const rl_conformance_case rl_conformance_cases[] = {
    {"gcra_admits_the_burst_then_denies", gcra_admits_the_burst_then_denies},
    {"windows_admit_the_limit_then_deny", windows_admit_the_limit_then_deny},
    {"peek_spends_nothing", peek_spends_nothing},
    {"keys_and_policies_are_independent", keys_and_policies_are_independent},
    {"cost_counts_and_above_limit_never_passes", cost_counts_and_above_limit_never_passes},
    {"changing_the_algorithm_starts_afresh", changing_the_algorithm_starts_afresh},
    {"quotas_count_and_read_back", quotas_count_and_read_back},
    {"gcra_with_an_uneven_rate_is_exact_in_whole_microseconds",
     gcra_with_an_uneven_rate_is_exact_in_whole_microseconds},
    {"quota_windows_keep_their_counts_when_the_clock_steps_back",
     quota_windows_keep_their_counts_when_the_clock_steps_back},
};
const size_t rl_conformance_ncases = sizeof rl_conformance_cases / sizeof rl_conformance_cases[0];

static void run_case(void **state)
{
    const rl_conformance_case *c = ((const rl_conformance_case **)*state)[0];
    const char *url = ((const char **)*state)[1];
    c->fn(url);
}

int rl_conformance_run(const char *group, const char *store_url)
{
    enum { MAXC = 32 };
    struct CMUnitTest tests[MAXC];
    const void *states[MAXC][2];
    size_t n = rl_conformance_ncases < MAXC ? rl_conformance_ncases : MAXC;
    for (size_t i = 0; i < n; i++) {
        states[i][0] = &rl_conformance_cases[i];
        states[i][1] = store_url;
        tests[i] = (struct CMUnitTest){
            .name = rl_conformance_cases[i].name,
            .test_func = run_case,
            .initial_state = (void *)states[i],
        };
    }
    return _cmocka_run_group_tests(group, tests, n, NULL, NULL);
}
