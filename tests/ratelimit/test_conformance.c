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

#include "ratelimit/store.h"

#include "conformance.h"
#include "rl_test_util.h"

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

/* A one-connection pool on the test server. */
static svc_redis *test_pool(void)
{
    svc_redis_opts o;
    svc_redis_opts_default(&o);
    o.url = redis_url;
    o.pool_size = 1;
    o.no_metrics = 1;
    svc_redis *r = NULL;
    assert_int_equal(svc_redis_new(&r, &o), SVC_OK);
    return r;
}

/* PTTL of `key` on the test server: ms, -1 no expiry, -2 no such key. */
static int64_t pttl(const char *key)
{
    svc_redis *r = test_pool();
    const char *argv[] = {"PTTL", key};
    svc_redis_reply *rep = NULL;
    assert_int_equal(svc_redis_command_argv(r, 2, argv, NULL, &rep), SVC_OK);
    assert_int_equal(svc_redis_reply_type(rep), SVC_REDIS_INTEGER);
    int64_t ms = svc_redis_reply_integer(rep);
    svc_redis_reply_free(rep);
    svc_redis_free(r);
    return ms;
}

/* HGET `key` `field` on the test server: its integer, or -1 when absent. */
static long long hget(const char *key, const char *field)
{
    svc_redis *r = test_pool();
    const char *argv[] = {"HGET", key, field};
    svc_redis_reply *rep = NULL;
    assert_int_equal(svc_redis_command_argv(r, 3, argv, NULL, &rep), SVC_OK);
    const char *v = svc_redis_reply_string(rep, NULL);
    long long n = v ? strtoll(v, NULL, 10) : -1;
    svc_redis_reply_free(rep);
    svc_redis_free(r);
    return n;
}

/* The names the store gives its keys, their hash tags and their expiry:
 * a policy's key lives while its state matters, plus a second. */
static void redis_keys_are_named_tagged_and_expire(void **state)
{
    (void)state;
    svc_ratelimit *rl = rl_conformance_open(redis_url, NULL);
    svc_ratelimit_policy g = {.name = "conf-ttl-g", .algorithm = SVC_RL_GCRA, .limit = 5,
                              .period_ms = 3600000}; /* T = 720 s */
    svc_ratelimit_policy fw = {.name = "conf-ttl-f", .algorithm = SVC_RL_FIXED_WINDOW,
                               .limit = 5, .period_ms = 86400000};
    assert_int_equal(svc_ratelimit_policy_add(rl, &g), SVC_OK);
    assert_int_equal(svc_ratelimit_policy_add(rl, &fw), SVC_OK);
    char ukey[64], key[160];
    rl_conformance_key(ukey, sizeof ukey, "ttl");
    svc_ratelimit_result r;

    /* GCRA: the whole name is the hash tag; state kind 1; lives until the
     * bucket is full again (one interval) plus a second */
    assert_int_equal(svc_ratelimit_check(rl, "conf-ttl-g", ukey, 1, &r), SVC_OK);
    snprintf(key, sizeof key, "{rl:p|conf-ttl-g|%s}", ukey);
    assert_int_equal(hget(key, "k"), 1);
    int64_t ttl = pttl(key);
    assert_true(ttl > 721000 - 5000 && ttl <= 721000);

    /* fixed window: until the window's end plus a second */
    assert_int_equal(svc_ratelimit_check(rl, "conf-ttl-f", ukey, 1, &r), SVC_OK);
    snprintf(key, sizeof key, "{rl:p|conf-ttl-f|%s}", ukey);
    assert_int_equal(hget(key, "k"), 2);
    assert_int_equal(hget(key, "c"), 1);
    ttl = pttl(key);
    assert_true(ttl <= r.reset_ms + 1000 && ttl > r.reset_ms + 1000 - 5000);

    /* a quota: {rl:q|<quota>|<tenant>} is the tag, the window start follows;
     * it lives the window's length plus a day */
    svc_quota q = {.name = "conf-ttl-q", .period = SVC_QUOTA_MONTH, .limit = 10};
    assert_int_equal(svc_ratelimit_quota_add(rl, &q), SVC_OK);
    svc_quota_usage_info u;
    assert_int_equal(svc_quota_consume(rl, ukey, "conf-ttl-q", 2, &u), SVC_OK);
    snprintf(key, sizeof key, "{rl:q|conf-ttl-q|%s}:%lld", ukey, (long long)u.window_start_ms);
    assert_int_equal(hget(key, "k"), 4);
    assert_int_equal(hget(key, "c"), 2);
    ttl = pttl(key);
    int64_t want = u.window_end_ms - u.window_start_ms + 86400000;
    assert_true(ttl > want - 5000 && ttl <= want);
    /* a peek writes nothing */
    rl_conformance_key(ukey, sizeof ukey, "peek");
    assert_int_equal(svc_ratelimit_peek(rl, "conf-ttl-g", ukey, 1, &r), SVC_OK);
    snprintf(key, sizeof key, "{rl:p|conf-ttl-g|%s}", ukey);
    assert_int_equal(pttl(key), -2);
    svc_ratelimit_free(rl);
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

/* ---- the script against the engine ------------------------------------------------
 * The Redis store's Lua script and svc__rl_apply() (the memory store's
 * arithmetic) driven with one injected clock (the script's ARGV[10]) over
 * random walks, at whole-µs instants: rates that do not divide evenly,
 * sub-ms steps, long idles, costs above the burst, peeks. Every figure
 * must agree exactly; only a sliding-window retry may be later by less
 * than 1 µs (the script works in whole µs, the engine in ns). */

typedef struct diff_policy {
    svc__rl_kind kind;
    uint64_t limit, burst;
    int64_t period_ms;
    uint64_t max_cost;
    int steps; /* the walk stays below 2^53 µs (the year 2255) */
} diff_policy;

static void script_apply(svc_redis *pool, const svc_redis_script *script, const svc__rl_req *req,
                         svc__rl_out *o)
{
    char key[SVC__RL_REDIS_KEY_CAP], a[10][32];
    svc__rl_redis_args(req, key, sizeof key, a);
    snprintf(a[9], sizeof a[9], "%lld", (long long)(req->now / 1000));
    const char *keys[] = {key};
    const char *args[10];
    for (int i = 0; i < 10; i++)
        args[i] = a[i];
    svc_redis_reply *rep = NULL;
    assert_int_equal(svc_redis_script_eval(pool, script, 1, keys, 10, args, &rep), SVC_OK);
    assert_int_equal(svc_redis_reply_len(rep), 6);
    int64_t v[6];
    for (size_t i = 0; i < 6; i++)
        v[i] = svc_redis_reply_integer(svc_redis_reply_element(rep, i));
    svc_redis_reply_free(rep);
    assert_int_equal(v[5], req->now / 1000); /* the injected time was used */
    *o = (svc__rl_out){.allowed = v[0] == 1, .remaining = (uint64_t)v[1],
                       .reset_ns = v[2] * 1000, .retry_ns = v[3] < 0 ? -1 : v[3] * 1000};
}

static void diff_walk(svc_redis *pool, const svc_redis_script *script, const diff_policy *dp,
                      int steps)
{
    char ukey[64];
    rl_conformance_key(ukey, sizeof ukey, "diff");
    const int64_t P = dp->period_ms * INT64_C(1000000);
    svc__rl_req req = {.kind = dp->kind, .limit = dp->limit, .burst = dp->burst, .period_ns = P,
                       .interval_ns = svc__rl_gcra_interval_ns(dp->period_ms, dp->limit),
                       .name = "diff", .ukey = ukey};
    svc__rl_state st = {0};
    bool present = false;
    int64_t now = (svc_clock_wall_ns(NULL) / 1000 + (int64_t)rl_test_rnd(1000000)) * 1000;
    for (int i = 0; i < steps; i++) {
        int64_t adv = rl_test_step_ns(P);
        now += adv - adv % 1000;
        req.now = now;
        req.cost = 1 + rl_test_rnd(dp->max_cost);
        req.commit = rl_test_rnd(5) != 0;
        svc__rl_state next = st;
        svc__rl_out e, l;
        int64_t expire_at;
        svc__rl_apply(&req, &next, present, now, &e, &expire_at);
        if (req.commit && e.allowed) {
            st = next;
            present = true;
        }
        script_apply(pool, script, &req, &l);
        if (e.allowed != l.allowed || e.remaining != l.remaining || e.reset_ns != l.reset_ns)
            print_error("kind %d limit %llu step %d cost %llu: engine %d/%llu/%lld, script "
                        "%d/%llu/%lld (allowed/remaining/reset ns)\n",
                        (int)dp->kind, (unsigned long long)dp->limit, i,
                        (unsigned long long)req.cost, e.allowed, (unsigned long long)e.remaining,
                        (long long)e.reset_ns, l.allowed, (unsigned long long)l.remaining,
                        (long long)l.reset_ns);
        assert_int_equal(e.allowed, l.allowed);
        assert_int_equal(e.remaining, l.remaining);
        assert_int_equal(e.reset_ns, l.reset_ns);
        if (dp->kind == SVC__RL_SLIDING && e.retry_ns > 0) {
            assert_true(l.retry_ns >= e.retry_ns && l.retry_ns < e.retry_ns + 1000);
        } else {
            assert_int_equal(e.retry_ns, l.retry_ns);
        }
    }
}

static void redis_script_matches_the_engine_exactly(void **state)
{
    (void)state;
    static const diff_policy pols[] = {
        {SVC__RL_GCRA, 7, 3, 1000, 4, 2000},     /* T = 142 857.1 µs */
        {SVC__RL_GCRA, 3, 3, 1000, 4, 2000},     /* T = 333 333.3 µs */
        {SVC__RL_GCRA, 100, 20, 60000, 25, 2000},
        {SVC__RL_GCRA, 999, 50, 997, 60, 2000},
        {SVC__RL_FIXED, 10, 10, 1000, 4, 2000},
        {SVC__RL_FIXED, 7, 7, 3001, 4, 2000},
        {SVC__RL_SLIDING, 10, 10, 1000, 4, 2000},
        {SVC__RL_SLIDING, 7, 7, 3000, 4, 2000},
        /* counts x times far past 2^53 */
        {SVC__RL_SLIDING, 1000000, 1000000, 86400000, 400000, 2000},
        {SVC__RL_SLIDING, 999999999999, 999999999999, 31622400000, 400000000000, 150},
    };
    svc_redis *pool = test_pool();
    svc_redis_script *script = NULL;
    assert_int_equal(svc_redis_script_new(&script, pool, svc__rl_redis_lua()), SVC_OK);
    for (size_t i = 0; i < sizeof pols / sizeof pols[0]; i++)
        diff_walk(pool, script, &pols[i], pols[i].steps);
    svc_redis_script_free(script);
    svc_redis_free(pool);
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
            cmocka_unit_test(redis_script_matches_the_engine_exactly),
            cmocka_unit_test(redis_keys_are_named_tagged_and_expire),
        };
        return failed + cmocka_run_group_tests_name("ratelimit redis store", shared, NULL, NULL);
    }
    fprintf(stderr, "usage: %s memory|redis\n", argv[0]);
    return 2;
}
