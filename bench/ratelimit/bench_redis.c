/*
 * bench_redis.c - checks per second of svc_ratelimit_check() on a redis://
 * store, for bench/ratelimit/run_redis.sh, which compares them with
 * redis-benchmark running the same Lua script with the same arguments.
 *
 *   bench_redis script                  prints the store's Lua script
 *   bench_redis args                    prints KEYS[1] and ARGV of a check of
 *                                       the benchmark policy, the key holding
 *                                       __rand_int__ (redis-benchmark -r)
 *   bench_redis run URL THREADS CHECKS  runs CHECKS checks split over THREADS
 *                                       threads sharing one pool of THREADS
 *                                       connections; prints "checks/s N"
 *
 * The policy ("bench", GCRA, 10^9 per second) admits everything, so every
 * check writes its key, as the replayed EVALSHA does. Not a test.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svcinfra/ratelimit.h"
#include "svcinfra/redis.h"

#include "ratelimit/store.h"

#define KEYS_PER_THREAD 1024
#define MAX_THREADS 64

/* every check admitted: one unit per µs (GCRA's finest rate), burst 1e9 */
static const svc_ratelimit_policy policy = {.name = "bench", .algorithm = SVC_RL_GCRA,
                                            .limit = 1000000, .period_ms = 1000,
                                            .burst = 1000000000};

static svc_ratelimit *rl;
static long per_thread;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_args(void)
{
    /* the request the engine builds for one check of `policy` */
    int64_t period_ns = policy.period_ms * 1000000;
    svc__rl_req req = {
        .kind = SVC__RL_GCRA,
        .limit = policy.limit,
        .burst = policy.burst,
        .period_ns = period_ns,
        .interval_ns = svc__rl_gcra_interval_ns(policy.period_ms, policy.limit),
        .cost = 1,
        .commit = true,
        .name = policy.name,
        .ukey = "k__rand_int__",
    };
    char key[128], args[9][32];
    svc__rl_redis_args(&req, key, sizeof key, args);
    printf("%s", key);
    for (int i = 0; i < 9; i++)
        printf(" %s", args[i]);
    printf("\n");
}

static void *worker(void *arg)
{
    long id = (long)(size_t)arg, denied = 0, failed = 0;
    char key[48];
    for (long i = 0; i < per_thread; i++) {
        snprintf(key, sizeof key, "t%ld-%ld", id, i % KEYS_PER_THREAD);
        svc_ratelimit_result r;
        svc_status st = svc_ratelimit_check(rl, "bench", key, 1, &r);
        if (st != SVC_OK || r.store_error)
            failed++;
        else if (!r.allowed)
            denied++;
    }
    return (void *)(size_t)(failed + denied);
}

static int run(const char *url, int threads, long checks)
{
    svc_redis_opts ro;
    svc_redis_opts_default(&ro);
    ro.url = url;
    ro.pool_size = (unsigned)threads;
    ro.no_metrics = 1;
    svc_redis *pool = NULL;
    if (svc_redis_new(&pool, &ro) != SVC_OK) {
        fprintf(stderr, "bench_redis: %s\n", svc_last_errmsg());
        return 1;
    }
    svc_ratelimit_opts o;
    svc_ratelimit_opts_default(&o);
    o.redis = pool;
    o.fail_open = 0;
    o.no_metrics = 1; /* as before: the store round trip alone */
    if (svc_ratelimit_new(&rl, &o) != SVC_OK || svc_ratelimit_policy_add(rl, &policy) != SVC_OK) {
        fprintf(stderr, "bench_redis: cannot set up the limiter\n");
        svc_ratelimit_free(rl);
        svc_redis_free(pool);
        return 1;
    }
    per_thread = checks / threads;
    pthread_t th[MAX_THREADS];
    double t0 = now_s();
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, worker, (void *)(size_t)i);
    size_t bad = 0;
    for (int i = 0; i < threads; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        bad += (size_t)ret;
    }
    double secs = now_s() - t0;
    svc_ratelimit_free(rl);
    svc_redis_free(pool);
    if (bad) {
        fprintf(stderr, "bench_redis: %zu checks failed or were denied\n", bad);
        return 1;
    }
    printf("checks/s %.0f\n", (double)(per_thread * threads) / secs);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "script") == 0) {
        fputs(svc__rl_redis_lua(), stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "args") == 0) {
        print_args();
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "run") == 0) {
        int threads = atoi(argv[3]);
        long checks = atol(argv[4]);
        if (threads < 1 || threads > MAX_THREADS || checks < threads) {
            fprintf(stderr, "bench_redis: THREADS 1..%d, CHECKS >= THREADS\n", MAX_THREADS);
            return 2;
        }
        return run(argv[2], threads, checks);
    }
    fprintf(stderr, "usage: %s script | args | run URL THREADS CHECKS\n", argv[0]);
    return 2;
}
