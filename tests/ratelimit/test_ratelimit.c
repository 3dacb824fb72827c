/*
 * test_ratelimit.c - the rate limiter against reference models, with a
 * manual clock: GCRA, fixed and sliding windows, retry_after and reset,
 * concurrency on one key, the memory cap, quotas at calendar boundaries,
 * policy changes, plans, configuration, fail-open/closed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcinfra/config.h"
#include "svcinfra/metrics.h"
#include "svcinfra/ratelimit.h"
#include "svcinfra/version.h"

#include "ratelimit/store.h"
#include "rl_test_util.h"

#define MS INT64_C(1000000)
/* 2026-03-10T12:34:56.789Z, not aligned to any window */
#define WALL0 (INT64_C(1773146096789) * MS)

typedef struct fixture {
    svc_manual_clock *mc;
    svc_ratelimit *rl;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_int_equal(svc_manual_clock_new(&f->mc, 1, WALL0), SVC_OK);
    svc_ratelimit_opts o;
    svc_ratelimit_opts_default(&o);
    o.url = "memory:";
    o.clock = svc_manual_clock_get(f->mc);
    assert_int_equal(svc_ratelimit_new(&f->rl, &o), SVC_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    svc_ratelimit_free(f->rl);
    svc_manual_clock_free(f->mc);
    free(f);
    return 0;
}

static int64_t now_ns(fixture *f) { return svc_clock_wall_ns(svc_manual_clock_get(f->mc)); }

static void add_policy(svc_ratelimit *rl, const char *name, svc_ratelimit_algorithm alg,
                       uint64_t limit, int64_t period_ms, uint64_t burst)
{
    svc_ratelimit_policy p = {.name = name, .algorithm = alg, .limit = limit,
                              .period_ms = period_ms, .burst = burst};
    assert_int_equal(svc_ratelimit_policy_add(rl, &p), SVC_OK);
}

static int64_t ceil_ms(int64_t ns) { return ns <= 0 ? 0 : (ns + MS - 1) / MS; }

#define rnd rl_test_rnd

/* ---- reference models ------------------------------------------------------
 * Written differently from the library on purpose: GCRA as a bucket of
 * credit (ns) that refills one ns per ns, windows as a history of counts. */

typedef struct ref_decision {
    int allowed;
    uint64_t remaining;
    int64_t reset_ns, retry_ns; /* retry -1: never */
} ref_decision;

typedef struct ref_bucket {
    int64_t T, cap; /* cap = burst * T */
    int64_t credit, last;
    uint64_t burst;
} ref_bucket;

static void bucket_init(ref_bucket *b, uint64_t limit, int64_t period_ms, uint64_t burst,
                        int64_t now)
{
    /* period / limit, rounded up to a whole µs */
    int64_t us = period_ms * 1000;
    b->T = (us / (int64_t)limit + (us % (int64_t)limit != 0)) * 1000;
    b->burst = burst;
    b->cap = b->T * (int64_t)burst;
    b->credit = b->cap;
    b->last = now;
}

static ref_decision bucket_try(ref_bucket *b, int64_t now, uint64_t cost, int commit)
{
    int64_t credit = b->credit + (now - b->last);
    if (credit > b->cap)
        credit = b->cap;
    ref_decision d = {0};
    int64_t need = (int64_t)cost * b->T;
    if (cost > b->burst || credit < need) {
        d.retry_ns = cost > b->burst ? -1 : need - credit;
        d.remaining = (uint64_t)(credit / b->T);
        d.reset_ns = b->cap - credit;
    } else {
        d.allowed = 1;
        credit -= need;
        d.remaining = (uint64_t)(credit / b->T);
        d.reset_ns = b->cap - credit;
    }
    if (commit) {
        b->credit = credit;
        b->last = now;
    }
    return d;
}

#define HIST 4096
typedef struct ref_window {
    int sliding;
    uint64_t limit;
    int64_t P;
    int64_t base; /* window index of counts[0] */
    uint64_t counts[HIST];
} ref_window;

static uint64_t win_count(const ref_window *w, int64_t idx)
{
    int64_t i = idx - w->base;
    return i >= 0 && i < HIST ? w->counts[i] : 0;
}

/* estimate * P at time t (exact, as a long double is enough here: the
 * values stay far below 2^64) */
static long double win_est(const ref_window *w, int64_t t)
{
    int64_t idx = t / w->P;
    if (!w->sliding)
        return (long double)win_count(w, idx) * w->P;
    int64_t e = t - idx * w->P;
    return (long double)win_count(w, idx - 1) * (long double)(w->P - e) +
           (long double)win_count(w, idx) * (long double)w->P;
}

static int win_admits(const ref_window *w, int64_t t, uint64_t cost)
{
    return cost <= w->limit &&
           win_est(w, t) + (long double)cost * w->P <= (long double)w->limit * w->P;
}

static ref_decision win_try(ref_window *w, int64_t now, uint64_t cost, int commit)
{
    ref_decision d = {0};
    int64_t idx = now / w->P;
    d.allowed = win_admits(w, now, cost);
    if (d.allowed && commit)
        w->counts[idx - w->base] += cost;
    long double est = win_est(w, now) + (d.allowed && !commit ? (long double)cost * w->P : 0);
    long double left = (long double)w->limit * w->P - est;
    d.remaining = left <= 0 ? 0 : (uint64_t)(left / w->P);
    uint64_t curr = win_count(w, idx) + (d.allowed && !commit ? cost : 0);
    uint64_t prev = w->sliding ? win_count(w, idx - 1) : 0;
    d.reset_ns = curr ? (idx + (w->sliding ? 2 : 1)) * w->P - now
                      : (prev ? (idx + 1) * w->P - now : 0);
    if (!d.allowed) {
        if (cost > w->limit) {
            d.retry_ns = -1;
        } else {
            /* search: coarse steps of P/64, then ns by bisection */
            int64_t lo = now, hi = now + 1;
            int64_t step = w->P / 64 > 0 ? w->P / 64 : 1;
            while (!win_admits(w, hi, cost)) {
                lo = hi;
                hi += step;
            }
            while (hi - lo > 1) {
                int64_t mid = lo + (hi - lo) / 2;
                if (win_admits(w, mid, cost))
                    hi = mid;
                else
                    lo = mid;
            }
            d.retry_ns = hi - now;
        }
    }
    return d;
}

static void expect_same(const svc_ratelimit_result *r, const ref_decision *d, const char *what,
                        int step)
{
    if (r->allowed != d->allowed || r->remaining != d->remaining ||
        r->reset_ms != ceil_ms(d->reset_ns) ||
        r->retry_after_ms != (d->allowed ? 0 : d->retry_ns < 0 ? -1 : ceil_ms(d->retry_ns)))
        print_error("%s step %d: got allowed=%d remaining=%llu reset=%lld retry=%lld, "
                    "model allowed=%d remaining=%llu reset=%lld retry=%lld(ns %lld)\n",
                    what, step, r->allowed, (unsigned long long)r->remaining,
                    (long long)r->reset_ms, (long long)r->retry_after_ms, d->allowed,
                    (unsigned long long)d->remaining, (long long)ceil_ms(d->reset_ns),
                    (long long)ceil_ms(d->retry_ns), (long long)d->retry_ns);
    assert_int_equal(r->allowed, d->allowed);
    assert_int_equal(r->remaining, d->remaining);
    assert_int_equal(r->reset_ms, ceil_ms(d->reset_ns));
    assert_int_equal(r->retry_after_ms,
                     d->allowed ? 0 : (d->retry_ns < 0 ? -1 : ceil_ms(d->retry_ns)));
}

/* Random walk: small and large steps, idles, costs above 1 and above the
 * limit; every check and peek compared with the model. */
static void walk(fixture *f, const char *policy, int steps, int64_t period_ms,
                 ref_decision (*model)(void *m, int64_t now, uint64_t cost, int commit), void *m,
                 uint64_t max_cost)
{
    for (int i = 0; i < steps; i++) {
        svc_manual_clock_advance(f->mc, rl_test_step_ns(period_ms * MS));
        uint64_t cost = 1 + rnd(max_cost);
        int peek = rnd(5) == 0;
        svc_ratelimit_result r;
        ref_decision d = model(m, now_ns(f), cost, !peek);
        if (peek)
            assert_int_equal(svc_ratelimit_peek(f->rl, policy, "k", cost, &r), SVC_OK);
        else
            assert_int_equal(svc_ratelimit_check(f->rl, policy, "k", cost, &r), SVC_OK);
        expect_same(&r, &d, policy, i);
    }
}

static ref_decision bucket_model(void *m, int64_t now, uint64_t cost, int commit)
{
    return bucket_try(m, now, cost, commit);
}

static ref_decision window_model(void *m, int64_t now, uint64_t cost, int commit)
{
    return win_try(m, now, cost, commit);
}

static void gcra_matches_token_bucket_model(void **state)
{
    fixture *f = *state;
    add_policy(f->rl, "g", SVC_RL_GCRA, 7, 1000, 3);
    ref_bucket b;
    bucket_init(&b, 7, 1000, 3, now_ns(f));
    walk(f, "g", 3000, 1000, bucket_model, &b, 4); /* cost 4 > burst 3: never */
}

static void gcra_default_burst_is_limit_and_rate_not_divisible(void **state)
{
    fixture *f = *state;
    add_policy(f->rl, "g3", SVC_RL_GCRA, 3, 1000, 0); /* T = 333334 µs */
    ref_bucket b;
    bucket_init(&b, 3, 1000, 3, now_ns(f));
    walk(f, "g3", 2000, 1000, bucket_model, &b, 2);
}

static ref_window *window_new(int sliding, uint64_t limit, int64_t period_ms, int64_t now)
{
    ref_window *w = calloc(1, sizeof *w);
    w->sliding = sliding;
    w->limit = limit;
    w->P = period_ms * MS;
    w->base = now / w->P - 1;
    return w;
}

static void fixed_window_matches_model(void **state)
{
    fixture *f = *state;
    add_policy(f->rl, "fw", SVC_RL_FIXED_WINDOW, 10, 1000, 0);
    ref_window *w = window_new(0, 10, 1000, now_ns(f));
    walk(f, "fw", 1500, 1000, window_model, w, 4);
    free(w);
}

static void sliding_window_matches_model(void **state)
{
    fixture *f = *state;
    add_policy(f->rl, "sw", SVC_RL_SLIDING_WINDOW, 10, 1000, 0);
    ref_window *w = window_new(1, 10, 1000, now_ns(f));
    walk(f, "sw", 1500, 1000, window_model, w, 4);
    free(w);
}

/* Waiting retry_after_ms is always enough, and 1 ms less is not. */
static void retry_after_is_never_early_and_tight(void **state)
{
    fixture *f = *state;
    add_policy(f->rl, "rg", SVC_RL_GCRA, 5, 1000, 2);
    add_policy(f->rl, "rf", SVC_RL_FIXED_WINDOW, 5, 1000, 0);
    add_policy(f->rl, "rs", SVC_RL_SLIDING_WINDOW, 5, 1000, 0);
    const char *pols[] = {"rg", "rf", "rs"};
    for (int p = 0; p < 3; p++) {
        for (int round = 0; round < 40; round++) {
            svc_ratelimit_result r;
            int guard = 0;
            do {
                assert_int_equal(svc_ratelimit_check(f->rl, pols[p], "x", 1, &r), SVC_OK);
                assert_true(++guard < 100);
            } while (r.allowed);
            assert_true(r.retry_after_ms > 0);
            assert_true(r.retry_after_ms <= 2000);
            if (r.retry_after_ms > 1) {
                svc_manual_clock_advance(f->mc, (r.retry_after_ms - 1) * MS);
                svc_ratelimit_result early;
                assert_int_equal(svc_ratelimit_peek(f->rl, pols[p], "x", 1, &early), SVC_OK);
                assert_false(early.allowed);
                svc_manual_clock_advance(f->mc, MS);
            } else {
                svc_manual_clock_advance(f->mc, MS);
            }
            assert_int_equal(svc_ratelimit_check(f->rl, pols[p], "x", 1, &r), SVC_OK);
            assert_true(r.allowed);
            svc_manual_clock_advance(f->mc, (int64_t)rnd(700) * MS + (int64_t)rnd(MS));
        }
    }
}

static void burst_then_steady_rate(void **state)
{
    fixture *f = *state;
    add_policy(f->rl, "api", SVC_RL_GCRA, 10, 1000, 5); /* 1 per 100 ms, 5 at once */
    svc_ratelimit_result r;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(svc_ratelimit_check(f->rl, "api", "t1", 1, &r), SVC_OK);
        assert_true(r.allowed);
        assert_int_equal(r.limit, 5);
        assert_int_equal(r.remaining, (uint64_t)(4 - i));
        assert_int_equal(r.reset_ms, (i + 1) * 100);
    }
    assert_int_equal(svc_ratelimit_check(f->rl, "api", "t1", 1, &r), SVC_OK);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_ms, 100);
    assert_int_equal(r.reset_ms, 500);
    assert_int_equal(strcmp(r.policy, "api"), 0);
    /* another key is not affected */
    assert_int_equal(svc_ratelimit_check(f->rl, "api", "t2", 3, &r), SVC_OK);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 2);
    /* cost above burst can never pass */
    assert_int_equal(svc_ratelimit_check(f->rl, "api", "t2", 6, &r), SVC_OK);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_ms, -1);
    /* a long idle fills the bucket but never beyond burst */
    svc_manual_clock_advance(f->mc, INT64_C(3600) * 1000 * MS);
    assert_int_equal(svc_ratelimit_peek(f->rl, "api", "t1", 1, &r), SVC_OK);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 4);
    assert_int_equal(svc_ratelimit_peek(f->rl, "api", "t1", 0, &r), SVC_OK);
    assert_int_equal(r.remaining, 5);
    assert_int_equal(r.reset_ms, 0);
}

static void peek_consumes_nothing(void **state)
{
    fixture *f = *state;
    add_policy(f->rl, "p", SVC_RL_FIXED_WINDOW, 2, 60000, 0);
    svc_ratelimit_result r;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(svc_ratelimit_peek(f->rl, "p", "k", 1, &r), SVC_OK);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, 1);
    }
    assert_int_equal(svc_ratelimit_check(f->rl, "p", "k", 2, &r), SVC_OK);
    assert_true(r.allowed);
    assert_int_equal(svc_ratelimit_peek(f->rl, "p", "k", 1, &r), SVC_OK);
    assert_false(r.allowed);
    assert_int_equal(r.remaining, 0);
}

static void fixed_window_resets_at_the_edge(void **state)
{
    fixture *f = *state;
    add_policy(f->rl, "e", SVC_RL_FIXED_WINDOW, 3, 1000, 0);
    /* move to 1 ms before a window edge */
    int64_t now = now_ns(f);
    int64_t edge = (now / (1000 * MS) + 1) * 1000 * MS;
    svc_manual_clock_advance(f->mc, edge - MS - now);
    svc_ratelimit_result r;
    assert_int_equal(svc_ratelimit_check(f->rl, "e", "k", 3, &r), SVC_OK);
    assert_true(r.allowed);
    assert_int_equal(r.reset_ms, 1);
    assert_int_equal(svc_ratelimit_check(f->rl, "e", "k", 1, &r), SVC_OK);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_ms, 1);
    svc_manual_clock_advance(f->mc, MS);
    assert_int_equal(svc_ratelimit_check(f->rl, "e", "k", 3, &r), SVC_OK);
    assert_true(r.allowed); /* the well-known fixed-window double burst */
}

static void sliding_window_weighs_the_previous_window(void **state)
{
    fixture *f = *state;
    add_policy(f->rl, "s", SVC_RL_SLIDING_WINDOW, 10, 1000, 0);
    int64_t now = now_ns(f);
    int64_t edge = (now / (1000 * MS) + 1) * 1000 * MS;
    svc_manual_clock_advance(f->mc, edge - now); /* at a window start */
    svc_ratelimit_result r;
    assert_int_equal(svc_ratelimit_check(f->rl, "s", "k", 10, &r), SVC_OK);
    assert_true(r.allowed);
    svc_manual_clock_advance(f->mc, 1000 * MS + 250 * MS); /* 25% into the next */
    /* estimate = 10 * 0.75 = 7.5 -> 2 remaining */
    assert_int_equal(svc_ratelimit_peek(f->rl, "s", "k", 0, &r), SVC_OK);
    assert_int_equal(r.remaining, 2);
    assert_int_equal(svc_ratelimit_check(f->rl, "s", "k", 3, &r), SVC_OK);
    assert_false(r.allowed);
    /* 3 fit when 10 * (1 - e) <= 7, e >= 0.3: 50 ms from now */
    assert_int_equal(r.retry_after_ms, 50);
    assert_int_equal(r.reset_ms, 750);
}

/* ---- concurrency ------------------------------------------------------------- */

typedef struct race {
    svc_ratelimit *rl;
    const char *policy;
    _Atomic int admitted;
    int per_thread;
} race;

static void *racer(void *arg)
{
    race *rc = arg;
    for (int i = 0; i < rc->per_thread; i++) {
        svc_ratelimit_result r;
        if (svc_ratelimit_check(rc->rl, rc->policy, "hot", 1, &r) == SVC_OK && r.allowed)
            atomic_fetch_add(&rc->admitted, 1);
    }
    return NULL;
}

static void four_threads_on_one_key_never_exceed_the_limit(void **state)
{
    fixture *f = *state;
    add_policy(f->rl, "cg", SVC_RL_GCRA, 1000, 3600000, 0);
    add_policy(f->rl, "cf", SVC_RL_FIXED_WINDOW, 777, 3600000, 0);
    add_policy(f->rl, "cs", SVC_RL_SLIDING_WINDOW, 555, 3600000, 0);
    const char *pols[] = {"cg", "cf", "cs"};
    const int limits[] = {1000, 777, 555};
    for (int p = 0; p < 3; p++) {
        race rc = {.rl = f->rl, .policy = pols[p], .per_thread = 20000};
        atomic_init(&rc.admitted, 0);
        pthread_t th[4];
        for (int i = 0; i < 4; i++)
            assert_int_equal(pthread_create(&th[i], NULL, racer, &rc), 0);
        for (int i = 0; i < 4; i++)
            pthread_join(th[i], NULL);
        /* the manual clock stands still: exactly the limit, never more */
        assert_int_equal(atomic_load(&rc.admitted), limits[p]);
    }
}

/* Threads on their own keys while tables grow under them: every key still
 * admits exactly its limit (no update lost when a slot moves). */
typedef struct grower {
    svc_ratelimit *rl;
    int id;
    int wrong;
} grower;

static void *grow_worker(void *arg)
{
    grower *g = arg;
    enum { KEYS = 3000, LIMIT = 3 };
    static _Thread_local int admitted[KEYS];
    memset(admitted, 0, sizeof admitted);
    char key[32];
    for (int round = 0; round < LIMIT + 2; round++) {
        for (int k = 0; k < KEYS; k++) {
            snprintf(key, sizeof key, "g%d-%d", g->id, k);
            svc_ratelimit_result r;
            if (svc_ratelimit_check(g->rl, "grow", key, 1, &r) != SVC_OK)
                g->wrong++;
            else if (r.allowed)
                admitted[k]++;
        }
    }
    for (int k = 0; k < KEYS; k++)
        if (admitted[k] != LIMIT)
            g->wrong++;
    return NULL;
}

static void counts_stay_exact_while_tables_grow_under_threads(void **state)
{
    fixture *f = *state;
    add_policy(f->rl, "grow", SVC_RL_FIXED_WINDOW, 3, 3600000, 0);
    grower g[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        g[i] = (grower){.rl = f->rl, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, grow_worker, &g[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(g[i].wrong, 0);
    }
    svc_ratelimit_stats st;
    assert_int_equal(svc_ratelimit_stats_get(f->rl, &st), SVC_OK);
    assert_int_equal(st.keys, 4 * 3000);
}

/* Threads probing fresh keys (the lock-free path misses, then inserts)
 * while every shard's table doubles several times, on limiters that start
 * empty: a reader that still probed a table after the resizer freed it
 * shows up under AddressSanitizer. The window is a few instructions wide,
 * so a pass does not prove its absence. */
typedef struct fresher {
    svc_ratelimit *rl;
    int id;
    int wrong;
} fresher;

static void *fresh_worker(void *arg)
{
    fresher *w = arg;
    char key[32];
    for (int k = 0; k < 4000; k++) {
        snprintf(key, sizeof key, "f%d-%d", w->id, k);
        svc_ratelimit_result r;
        if (svc_ratelimit_check(w->rl, "fresh", key, 1, &r) != SVC_OK || !r.allowed)
            w->wrong++;
    }
    return NULL;
}

static void fresh_keys_while_tables_grow_never_touch_a_freed_table(void **state)
{
    (void)state;
    for (int round = 0; round < 6; round++) {
        svc_ratelimit_opts o;
        svc_ratelimit_opts_default(&o);
        o.url = "memory:";
        svc_ratelimit *rl;
        assert_int_equal(svc_ratelimit_new(&rl, &o), SVC_OK);
        add_policy(rl, "fresh", SVC_RL_FIXED_WINDOW, 1, 3600000, 0);
        fresher w[4];
        pthread_t th[4];
        for (int i = 0; i < 4; i++) {
            w[i] = (fresher){.rl = rl, .id = i};
            assert_int_equal(pthread_create(&th[i], NULL, fresh_worker, &w[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            assert_int_equal(w[i].wrong, 0);
        }
        svc_ratelimit_stats st;
        assert_int_equal(svc_ratelimit_stats_get(rl, &st), SVC_OK);
        assert_int_equal(st.keys, 4 * 4000);
        svc_ratelimit_free(rl);
    }
}

typedef struct swapper {
    svc_ratelimit *rl;
    _Atomic int stop;
    _Atomic int errors;
} swapper;

static void *checker(void *arg)
{
    swapper *sw = arg;
    char key[32];
    int i = 0;
    while (!atomic_load(&sw->stop)) {
        snprintf(key, sizeof key, "k%d", i++ % 100);
        svc_ratelimit_result r;
        svc_status st = svc_ratelimit_check(sw->rl, "live", key, 1, &r);
        if (st != SVC_OK || (r.limit != 5 && r.limit != 50))
            atomic_fetch_add(&sw->errors, 1);
    }
    return NULL;
}

static void policy_change_takes_effect_without_restart(void **state)
{
    fixture *f = *state;
    add_policy(f->rl, "live", SVC_RL_FIXED_WINDOW, 2, 60000, 0);
    svc_ratelimit_result r;
    assert_int_equal(svc_ratelimit_check(f->rl, "live", "u", 2, &r), SVC_OK);
    assert_true(r.allowed);
    assert_int_equal(svc_ratelimit_check(f->rl, "live", "u", 1, &r), SVC_OK);
    assert_false(r.allowed);
    add_policy(f->rl, "live", SVC_RL_FIXED_WINDOW, 5, 60000, 0);
    assert_int_equal(svc_ratelimit_check(f->rl, "live", "u", 1, &r), SVC_OK);
    assert_true(r.allowed); /* the count (2) is kept, the limit is new */
    assert_int_equal(r.remaining, 2);
    svc_ratelimit_policy got;
    assert_int_equal(svc_ratelimit_policy_get(f->rl, "live", &got), SVC_OK);
    assert_int_equal(got.limit, 5);

    /* swaps while other threads check: every check sees one whole policy */
    swapper sw = {.rl = f->rl};
    atomic_init(&sw.stop, 0);
    atomic_init(&sw.errors, 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, checker, &sw), 0);
    for (int i = 0; i < 300; i++)
        add_policy(f->rl, "live", SVC_RL_FIXED_WINDOW, i % 2 ? 5 : 50, 60000, 0);
    atomic_store(&sw.stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&sw.errors), 0);

    assert_int_equal(svc_ratelimit_policy_remove(f->rl, "live"), SVC_OK);
    assert_int_equal(svc_ratelimit_check(f->rl, "live", "u", 1, &r), SVC_ENOTFOUND);
    assert_int_equal(svc_ratelimit_policy_remove(f->rl, "live"), SVC_ENOTFOUND);
}

/* Two limiters with a policy of the same name never see each other's, and a
 * limiter created where a freed one was starts clean. */
static void limiters_do_not_share_policies(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        svc_ratelimit *a, *b;
        assert_int_equal(svc_ratelimit_new(&a, NULL), SVC_OK);
        assert_int_equal(svc_ratelimit_new(&b, NULL), SVC_OK);
        add_policy(a, "same", SVC_RL_FIXED_WINDOW, 1, 3600000, 0);
        add_policy(b, "same", SVC_RL_FIXED_WINDOW, 7 + (uint64_t)round, 3600000, 0);
        for (int i = 0; i < 5; i++) {
            svc_ratelimit_result r;
            assert_int_equal(svc_ratelimit_peek(a, "same", "k", 1, &r), SVC_OK);
            assert_int_equal(r.limit, 1);
            assert_int_equal(svc_ratelimit_peek(b, "same", "k", 1, &r), SVC_OK);
            assert_int_equal(r.limit, 7 + (uint64_t)round);
        }
        svc_ratelimit_free(a);
        svc_ratelimit_free(b);
    }
}

/* ---- memory bounds -------------------------------------------------------------- */

static void memory_cap_holds_under_a_million_unique_keys(void **state)
{
    (void)state;
    svc_manual_clock *mc;
    assert_int_equal(svc_manual_clock_new(&mc, 1, WALL0), SVC_OK);
    svc_ratelimit_opts o;
    svc_ratelimit_opts_default(&o);
    o.url = "memory:";
    o.clock = svc_manual_clock_get(mc);
    o.max_keys = 4096;
    svc_ratelimit *rl;
    assert_int_equal(svc_ratelimit_new(&rl, &o), SVC_OK);
    add_policy(rl, "flood", SVC_RL_GCRA, 10, 3600000, 0);
    char key[32];
    svc_ratelimit_stats st;
    for (int i = 0; i < 1000000; i++) {
        snprintf(key, sizeof key, "ip-%d", i);
        svc_ratelimit_result r;
        assert_int_equal(svc_ratelimit_check(rl, "flood", key, 1, &r), SVC_OK);
        assert_true(r.allowed);
        if (i % 100000 == 0) {
            assert_int_equal(svc_ratelimit_stats_get(rl, &st), SVC_OK);
            assert_true(st.keys <= 4096);
        }
    }
    assert_int_equal(svc_ratelimit_stats_get(rl, &st), SVC_OK);
    assert_true(st.keys <= 4096);
    assert_true(st.keys >= 4096 / 2);
    assert_int_equal(st.max_keys, 4096);
    assert_true(st.evictions >= 1000000 - 4096);
    svc_ratelimit_free(rl);
    svc_manual_clock_free(mc);
}

static void expired_keys_are_reclaimed(void **state)
{
    fixture *f = *state;
    add_policy(f->rl, "short", SVC_RL_GCRA, 10, 1000, 0);
    char key[32];
    svc_ratelimit_result r;
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "a-%d", i);
        assert_int_equal(svc_ratelimit_check(f->rl, "short", key, 1, &r), SVC_OK);
    }
    svc_ratelimit_stats st;
    assert_int_equal(svc_ratelimit_stats_get(f->rl, &st), SVC_OK);
    assert_int_equal(st.keys, 5000);
    svc_manual_clock_advance(f->mc, 2000 * MS); /* every key is full again */
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "b-%d", i);
        assert_int_equal(svc_ratelimit_check(f->rl, "short", key, 1, &r), SVC_OK);
    }
    assert_int_equal(svc_ratelimit_stats_get(f->rl, &st), SVC_OK);
    assert_true(st.expired > 2000);
    assert_true(st.keys < 8000);
    assert_int_equal(st.evictions, 0);
}

/* ---- quotas ----------------------------------------------------------------------- */

static void set_wall(fixture *f, int64_t unix_s) { svc_manual_clock_set_wall(f->mc, unix_s * 1000 * MS); }

static void quota_rolls_over_at_day_and_month_boundaries(void **state)
{
    fixture *f = *state;
    svc_quota day = {.name = "calls-day", .period = SVC_QUOTA_DAY, .limit = 3};
    svc_quota month = {.name = "calls-month", .period = SVC_QUOTA_MONTH, .limit = 0};
    assert_int_equal(svc_ratelimit_quota_add(f->rl, &day), SVC_OK);
    assert_int_equal(svc_ratelimit_quota_add(f->rl, &month), SVC_OK);
    set_wall(f, 1769903998); /* 2026-01-31T23:59:58Z */
    svc_quota_usage_info u;
    assert_int_equal(svc_quota_consume(f->rl, "acme", "calls-day", 2, &u), SVC_OK);
    assert_true(u.allowed);
    assert_int_equal(u.used, 2);
    assert_int_equal(u.remaining, 1);
    assert_int_equal(u.window_start_ms, INT64_C(1769817600) * 1000);
    assert_int_equal(u.window_end_ms, INT64_C(1769904000) * 1000);
    assert_int_equal(u.reset_ms, 2000);
    assert_int_equal(svc_quota_consume(f->rl, "acme", "calls-day", 2, &u), SVC_OK);
    assert_false(u.allowed);
    assert_int_equal(u.used, 2);
    assert_int_equal(svc_quota_consume(f->rl, "acme", "calls-month", 40, &u), SVC_OK);
    assert_true(u.allowed);
    assert_int_equal(u.window_start_ms, INT64_C(1767225600) * 1000); /* 2026-01-01 */
    assert_int_equal(u.window_end_ms, INT64_C(1769904000) * 1000);   /* 2026-02-01 */
    assert_int_equal(svc_quota_usage(f->rl, "acme", "calls-month", &u), SVC_OK);
    assert_int_equal(u.used, 40);
    assert_int_equal(svc_quota_usage(f->rl, "acme", "calls-day", &u), SVC_OK);
    assert_int_equal(u.used, 2);
    assert_int_equal(svc_quota_usage(f->rl, "other", "calls-day", &u), SVC_OK);
    assert_int_equal(u.used, 0);

    set_wall(f, 1769904000); /* 2026-02-01T00:00:00Z: both roll over */
    assert_int_equal(svc_quota_usage(f->rl, "acme", "calls-day", &u), SVC_OK);
    assert_int_equal(u.used, 0);
    assert_int_equal(u.remaining, 3);
    assert_int_equal(svc_quota_usage(f->rl, "acme", "calls-month", &u), SVC_OK);
    assert_int_equal(u.used, 0);
    assert_int_equal(u.window_end_ms, INT64_C(1772323200) * 1000); /* 2026-03-01 */
    assert_int_equal(svc_quota_consume(f->rl, "acme", "calls-day", 3, &u), SVC_OK);
    assert_true(u.allowed);

    set_wall(f, 1772323199); /* 2026-02-28T23:59:59Z: same month, new day */
    assert_int_equal(svc_quota_consume(f->rl, "acme", "calls-month", 1, &u), SVC_OK);
    assert_int_equal(u.used, 1);
    assert_int_equal(svc_quota_usage(f->rl, "acme", "calls-day", &u), SVC_OK);
    assert_int_equal(u.used, 0);

    assert_int_equal(svc_quota_usage(f->rl, "acme", "nope", &u), SVC_ENOTFOUND);
    svc_quota bad = {.name = "x", .period = (svc_quota_period)9};
    assert_int_equal(svc_ratelimit_quota_add(f->rl, &bad), SVC_EINVAL);
}

static void quota_in_a_named_zone_rolls_at_local_midnight(void **state)
{
    fixture *f = *state;
    svc_quota q = {.name = "berlin", .period = SVC_QUOTA_DAY, .limit = 10, .tz = "Europe/Berlin"};
    svc_status st = svc_ratelimit_quota_add(f->rl, &q);
    if (st == SVC_ENOTFOUND || st == SVC_EIO)
        skip(); /* no zone files on this machine */
    assert_int_equal(st, SVC_OK);
    set_wall(f, 1773097200 - 1); /* 2026-03-09T22:59:59Z = 23:59:59 CET */
    svc_quota_usage_info u;
    assert_int_equal(svc_quota_consume(f->rl, "t", "berlin", 4, &u), SVC_OK);
    assert_int_equal(u.window_end_ms, INT64_C(1773097200) * 1000);
    set_wall(f, 1773097200);
    assert_int_equal(svc_quota_usage(f->rl, "t", "berlin", &u), SVC_OK);
    assert_int_equal(u.used, 0);
}

/* ---- plans, config, errors ------------------------------------------------------- */

static void plan_checks_every_policy_and_names_the_one_that_denies(void **state)
{
    fixture *f = *state;
    add_policy(f->rl, "per-sec", SVC_RL_GCRA, 2, 1000, 0);
    add_policy(f->rl, "per-min", SVC_RL_FIXED_WINDOW, 3, 60000, 0);
    const char *pro[] = {"per-sec", "per-min", "later"};
    assert_int_equal(svc_ratelimit_plan_add(f->rl, "pro", pro, 3), SVC_OK);
    svc_ratelimit_result r;
    assert_int_equal(svc_ratelimit_check_plan(f->rl, "pro", "c", 1, &r), SVC_OK);
    assert_true(r.allowed);
    assert_int_equal(svc_ratelimit_check_plan(f->rl, "pro", "c", 1, &r), SVC_OK);
    assert_true(r.allowed);
    assert_int_equal(strcmp(r.policy, "per-sec"), 0); /* 0 left there, 1 per minute */
    assert_int_equal(svc_ratelimit_check_plan(f->rl, "pro", "c", 1, &r), SVC_OK);
    assert_false(r.allowed);
    assert_int_equal(strcmp(r.policy, "per-sec"), 0);
    svc_manual_clock_advance(f->mc, 1000 * MS);
    assert_int_equal(svc_ratelimit_check_plan(f->rl, "pro", "c", 1, &r), SVC_OK);
    assert_true(r.allowed);
    assert_int_equal(svc_ratelimit_check_plan(f->rl, "pro", "c", 1, &r), SVC_OK);
    assert_false(r.allowed);
    assert_int_equal(strcmp(r.policy, "per-min"), 0);
    assert_int_equal(r.period_ms, 60000);
    assert_int_equal(svc_ratelimit_check_plan(f->rl, "gold", "c", 1, &r), SVC_ENOTFOUND);
    assert_int_equal(svc_ratelimit_plan_add(f->rl, "bad plan", pro, 1), SVC_EINVAL);
    assert_int_equal(svc_ratelimit_plan_add(f->rl, "empty", pro, 0), SVC_EINVAL);
}

static void denied_plan_spends_nothing_and_reports_the_longest_wait(void **state)
{
    fixture *f = *state;
    add_policy(f->rl, "sec", SVC_RL_FIXED_WINDOW, 1, 1000, 0);
    add_policy(f->rl, "hour", SVC_RL_FIXED_WINDOW, 2, 3600000, 0);
    const char *pols[] = {"sec", "hour"};
    assert_int_equal(svc_ratelimit_plan_add(f->rl, "p", pols, 2), SVC_OK);
    svc_ratelimit_result r, hour, sec;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(svc_ratelimit_check_plan(f->rl, "p", "k", 1, &r), SVC_OK);
        assert_true(r.allowed);
        svc_manual_clock_advance(f->mc, 1000 * MS);
    }
    /* the hour is spent; the second is not */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(svc_ratelimit_check_plan(f->rl, "p", "k", 1, &r), SVC_OK);
        assert_false(r.allowed);
        assert_string_equal(r.policy, "hour");
        assert_int_equal(r.period_ms, 3600000);
        assert_int_equal(svc_ratelimit_peek(f->rl, "hour", "k", 1, &hour), SVC_OK);
        assert_int_equal(r.retry_after_ms, hour.retry_after_ms);
        assert_true(r.retry_after_ms > 1000);
        /* denied requests left the per-second policy untouched */
        assert_int_equal(svc_ratelimit_peek(f->rl, "sec", "k", 0, &sec), SVC_OK);
        assert_int_equal(sec.remaining, 1);
    }
    /* admitted once the longest wait is over, never before */
    svc_manual_clock_advance(f->mc, (r.retry_after_ms - 1) * MS);
    assert_int_equal(svc_ratelimit_check_plan(f->rl, "p", "k", 1, &r), SVC_OK);
    assert_false(r.allowed);
    svc_manual_clock_advance(f->mc, 1 * MS);
    assert_int_equal(svc_ratelimit_check_plan(f->rl, "p", "k", 1, &r), SVC_OK);
    assert_true(r.allowed);
}

static uint64_t cap_of(svc_ratelimit *rl)
{
    svc_ratelimit_stats s;
    assert_int_equal(svc_ratelimit_stats_get(rl, &s), SVC_OK);
    return s.max_keys;
}

static void clear_rl_env(void)
{
    unsetenv("SVC_RATELIMIT_URL");
    unsetenv("SVC_RATELIMIT_FAIL_OPEN");
    unsetenv("SVC_RATELIMIT_MAX_KEYS");
    unsetenv("SVC_RATELIMIT_NO_METRICS");
}

/* svc_ratelimit_new(&rl, NULL): the defaults overridden by SVC_RATELIMIT_*,
 * in the config getters' grammar (core/parse.h). */
static void null_opts_read_the_environment(void **state)
{
    (void)state;
    clear_rl_env();
    svc_ratelimit *rl = NULL;
    assert_int_equal(svc_ratelimit_new(&rl, NULL), SVC_OK);
    assert_int_equal(cap_of(rl), 262144);
    assert_string_equal(svc_ratelimit_backend_name(rl), "memory");
    svc_ratelimit_free(rl);

    setenv("SVC_RATELIMIT_MAX_KEYS", " 4096 ", 1);
    setenv("SVC_RATELIMIT_FAIL_OPEN", "off", 1);
    assert_int_equal(svc_ratelimit_new(&rl, NULL), SVC_OK);
    assert_int_equal(cap_of(rl), 4096);
    /* fail_open off: a failing store denies and the check returns its status */
    svc__ratelimit_set_store(rl, rl_test_down_store());
    svc_ratelimit_policy p = {.name = "p", .limit = 10, .period_ms = 1000};
    assert_int_equal(svc_ratelimit_policy_add(rl, &p), SVC_OK);
    svc_ratelimit_result r;
    assert_int_equal(svc_ratelimit_check(rl, "p", "k", 1, &r), SVC_EUNAVAILABLE);
    svc_ratelimit_free(rl);

    /* a bad value is an error naming the variable, not silently ignored */
    setenv("SVC_RATELIMIT_MAX_KEYS", "4096x", 1);
    rl = (svc_ratelimit *)&p;
    assert_int_equal(svc_ratelimit_new(&rl, NULL), SVC_ECONFIG);
    assert_null(rl);
    assert_non_null(strstr(svc_last_errmsg(), "SVC_RATELIMIT_MAX_KEYS"));
    setenv("SVC_RATELIMIT_MAX_KEYS", "12", 1); /* below the minimum of 64 */
    assert_int_equal(svc_ratelimit_new(&rl, NULL), SVC_ECONFIG);
    assert_non_null(strstr(svc_last_errmsg(), "ratelimit.max_keys"));
    unsetenv("SVC_RATELIMIT_MAX_KEYS");

    /* SVC_RATELIMIT_URL names the store */
    setenv("SVC_RATELIMIT_URL", "postgres://localhost/db", 1);
    assert_int_equal(svc_ratelimit_new(&rl, NULL), SVC_ENOTSUP);
    assert_string_equal(svc_last_errmsg(),
                        "ratelimit: postgres stores are not supported (use memory: or redis://)");
    clear_rl_env();
}

/* Explicit options are used as given: the environment is not read. */
static void explicit_opts_ignore_the_environment(void **state)
{
    (void)state;
    clear_rl_env();
    setenv("SVC_RATELIMIT_MAX_KEYS", "4096", 1);
    setenv("SVC_RATELIMIT_URL", "postgres://localhost/db", 1);
    svc_ratelimit_opts o;
    svc_ratelimit_opts_default(&o);
    assert_string_equal(o.url, "memory:");
    assert_int_equal(o.max_keys, 262144);
    assert_int_equal(o.fail_open, 1);
    svc_ratelimit *rl = NULL;
    assert_int_equal(svc_ratelimit_new(&rl, &o), SVC_OK);
    assert_int_equal(cap_of(rl), 262144);
    svc_ratelimit_free(rl);
    o.max_keys = 10;
    assert_int_equal(svc_ratelimit_new(&rl, &o), SVC_EINVAL);
    assert_non_null(strstr(svc_last_errmsg(), "max_keys"));
    clear_rl_env();
}

/* Store binding: the standard statuses and messages of every module. */
static void store_binding_errors_are_the_standard_ones(void **state)
{
    (void)state;
    svc_ratelimit_opts o;
    svc_ratelimit_opts_default(&o);
    svc_ratelimit *rl = NULL;
    o.url = "postgres://localhost/db";
    assert_int_equal(svc_ratelimit_new(&rl, &o), SVC_ENOTSUP);
    assert_string_equal(svc_last_errmsg(),
                        "ratelimit: postgres stores are not supported (use memory: or redis://)");
    o.url = "nonsense://";
    assert_int_equal(svc_ratelimit_new(&rl, &o), SVC_EINVAL);
    assert_non_null(strstr(svc_last_errmsg(), "ratelimit: "));
    o.url = "memory:";
    o.store_timeout_ms = -1;
    assert_int_equal(svc_ratelimit_new(&rl, &o), SVC_EINVAL);
    assert_non_null(strstr(svc_last_errmsg(), "store_timeout_ms"));
    /* success clears the message */
    o.store_timeout_ms = 0;
    assert_int_equal(svc_ratelimit_new(&rl, &o), SVC_OK);
    assert_string_equal(svc_last_errmsg(), "");
    svc_ratelimit_free(rl);
}

/* svc_ratelimit_ref(): each reference is dropped by one free; the last one
 * destroys (ASan reports a leak or a use after free otherwise). */
static void references_are_counted(void **state)
{
    (void)state;
    assert_null(svc_ratelimit_ref(NULL));
    assert_string_equal(svc_ratelimit_backend_name(NULL), "");
    svc_ratelimit *rl = NULL;
    svc_ratelimit_opts o;
    svc_ratelimit_opts_default(&o);
    o.no_metrics = 1;
    assert_int_equal(svc_ratelimit_new(&rl, &o), SVC_OK);
    assert_ptr_equal(svc_ratelimit_ref(rl), rl);
    svc_ratelimit_free(rl);
    svc_ratelimit_policy p = {.name = "p", .limit = 10, .period_ms = 1000};
    assert_int_equal(svc_ratelimit_policy_add(rl, &p), SVC_OK); /* still alive */
    svc_ratelimit_free(rl);
}

/* metrics NULL is the default registry; no_metrics = 1 registers none. */
static void metrics_default_to_the_default_registry(void **state)
{
    (void)state;
    svc_ratelimit_opts o;
    svc_ratelimit_opts_default(&o);
    svc_ratelimit *rl = NULL;
    assert_int_equal(svc_ratelimit_new(&rl, &o), SVC_OK);
    svc_ratelimit_policy p = {.name = "default-registry-p", .limit = 10, .period_ms = 1000};
    assert_int_equal(svc_ratelimit_policy_add(rl, &p), SVC_OK);
    svc_ratelimit_result r;
    assert_int_equal(svc_ratelimit_check(rl, "default-registry-p", "k", 1, &r), SVC_OK);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(svc_metrics_render(svc_metrics_default(), &text, &len), SVC_OK);
    assert_non_null(strstr(text, "policy=\"default-registry-p\""));
    svc_free(text);
    svc_ratelimit_free(rl);

    o.no_metrics = 1;
    assert_int_equal(svc_ratelimit_new(&rl, &o), SVC_OK);
    svc_ratelimit_policy q = {.name = "no-metrics-q", .limit = 10, .period_ms = 1000};
    assert_int_equal(svc_ratelimit_policy_add(rl, &q), SVC_OK);
    assert_int_equal(svc_ratelimit_check(rl, "no-metrics-q", "k", 1, &r), SVC_OK);
    assert_int_equal(svc_metrics_render(svc_metrics_default(), &text, &len), SVC_OK);
    assert_null(strstr(text, "no-metrics-q"));
    svc_free(text);
    svc_ratelimit_free(rl);
}

static void policies_plans_quotas_load_from_config(void **state)
{
    fixture *f = *state;
    const char *yaml = "ratelimit:\n"
                       "  policies:\n"
                       "    - api gcra 100/1m burst 20\n"
                       "    - login fixed_window 5/15m\n"
                       "    - search sliding 30/10s\n"
                       "  plans:\n"
                       "    - \"free: api login\"\n"
                       "  quotas:\n"
                       "    - requests-month month 100000\n";
    svc_config *cfg;
    char err[256];
    assert_int_equal(svc_config_parse(&cfg, yaml, err, sizeof err), SVC_OK);
    assert_int_equal(svc_ratelimit_load_config(f->rl, cfg), SVC_OK);
    svc_config_free(cfg);
    svc_ratelimit_policy p;
    assert_int_equal(svc_ratelimit_policy_get(f->rl, "api", &p), SVC_OK);
    assert_int_equal(p.algorithm, SVC_RL_GCRA);
    assert_int_equal(p.limit, 100);
    assert_int_equal(p.period_ms, 60000);
    assert_int_equal(p.burst, 20);
    assert_int_equal(svc_ratelimit_policy_get(f->rl, "login", &p), SVC_OK);
    assert_int_equal(p.algorithm, SVC_RL_FIXED_WINDOW);
    assert_int_equal(p.period_ms, 15 * 60000);
    assert_int_equal(svc_ratelimit_policy_get(f->rl, "search", &p), SVC_OK);
    assert_int_equal(p.algorithm, SVC_RL_SLIDING_WINDOW);
    svc_ratelimit_result r;
    assert_int_equal(svc_ratelimit_check_plan(f->rl, "free", "t", 1, &r), SVC_OK);
    assert_true(r.allowed);
    svc_quota_usage_info u;
    assert_int_equal(svc_quota_consume(f->rl, "t", "requests-month", 7, &u), SVC_OK);
    assert_int_equal(u.remaining, 100000 - 7);

    /* a bad entry changes nothing and names itself */
    const char *bad = "ratelimit:\n"
                      "  policies:\n"
                      "    - api gcra 5/1m\n"
                      "    - broken leaky 5/1m\n";
    assert_int_equal(svc_config_parse(&cfg, bad, err, sizeof err), SVC_OK);
    assert_int_equal(svc_ratelimit_load_config(f->rl, cfg), SVC_ECONFIG);
    assert_non_null(strstr(svc_ratelimit_errmsg(f->rl), "broken leaky"));
    svc_config_free(cfg);
    assert_int_equal(svc_ratelimit_policy_get(f->rl, "api", &p), SVC_OK);
    assert_int_equal(p.limit, 100);

    /* a reload replaces in place */
    const char *re = "ratelimit:\n  policies: [\"api fixed 7/1s\"]\n";
    assert_int_equal(svc_config_parse(&cfg, re, err, sizeof err), SVC_OK);
    assert_int_equal(svc_ratelimit_load_config(f->rl, cfg), SVC_OK);
    svc_config_free(cfg);
    assert_int_equal(svc_ratelimit_policy_get(f->rl, "api", &p), SVC_OK);
    assert_int_equal(p.limit, 7);
    assert_int_equal(p.period_ms, 1000);
}

static void load_yaml(svc_ratelimit *rl, const char *yaml)
{
    svc_config *cfg;
    char err[256];
    assert_int_equal(svc_config_parse(&cfg, yaml, err, sizeof err), SVC_OK);
    assert_int_equal(svc_ratelimit_load_config(rl, cfg), SVC_OK);
    svc_config_free(cfg);
}

/* A reload is the configuration's whole truth: what it no longer lists is
 * gone; what code added stays. */
static void config_reload_removes_what_it_no_longer_lists(void **state)
{
    fixture *f = *state;
    add_policy(f->rl, "from-code", SVC_RL_GCRA, 5, 1000, 0);
    svc_quota cq = {.name = "code-quota", .period = SVC_QUOTA_DAY, .limit = 5};
    assert_int_equal(svc_ratelimit_quota_add(f->rl, &cq), SVC_OK);
    load_yaml(f->rl, "ratelimit:\n"
                     "  policies: [\"a gcra 5/1s\", \"b fixed 5/1s\"]\n"
                     "  plans: [\"both: a b\"]\n"
                     "  quotas: [\"qa day 10\"]\n");
    svc_ratelimit_policy p;
    svc_ratelimit_result r;
    svc_quota_usage_info u;
    assert_int_equal(svc_ratelimit_policy_get(f->rl, "b", &p), SVC_OK);
    assert_int_equal(svc_ratelimit_check_plan(f->rl, "both", "k", 1, &r), SVC_OK);
    assert_int_equal(svc_quota_usage(f->rl, "t", "qa", &u), SVC_OK);

    load_yaml(f->rl, "ratelimit:\n  policies: [\"a gcra 7/1s\"]\n");
    assert_int_equal(svc_ratelimit_policy_get(f->rl, "a", &p), SVC_OK);
    assert_int_equal(p.limit, 7);
    assert_int_equal(svc_ratelimit_policy_get(f->rl, "b", &p), SVC_ENOTFOUND);
    assert_int_equal(svc_ratelimit_check(f->rl, "b", "k", 1, &r), SVC_ENOTFOUND);
    assert_int_equal(svc_ratelimit_check_plan(f->rl, "both", "k", 1, &r), SVC_ENOTFOUND);
    assert_int_equal(svc_quota_usage(f->rl, "t", "qa", &u), SVC_ENOTFOUND);
    /* added from code: untouched by reloads */
    assert_int_equal(svc_ratelimit_policy_get(f->rl, "from-code", &p), SVC_OK);
    assert_int_equal(svc_quota_usage(f->rl, "t", "code-quota", &u), SVC_OK);

    /* a name the configuration defined is its own until code adds it again */
    load_yaml(f->rl, "ratelimit:\n  policies: [\"from-code fixed 9/1s\"]\n");
    assert_int_equal(svc_ratelimit_policy_get(f->rl, "a", &p), SVC_ENOTFOUND);
    assert_int_equal(svc_ratelimit_policy_get(f->rl, "from-code", &p), SVC_OK);
    assert_int_equal(p.limit, 9);
    add_policy(f->rl, "from-code", SVC_RL_GCRA, 5, 1000, 0);
    load_yaml(f->rl, "ratelimit:\n  policies: []\n");
    assert_int_equal(svc_ratelimit_policy_get(f->rl, "from-code", &p), SVC_OK);
    assert_int_equal(p.limit, 5);
}

static void quota_limits_stay_exact_and_names_are_checked(void **state)
{
    fixture *f = *state;
    /* limits above 2^53 are not exact in the Redis script's doubles */
    svc_quota q = {.name = "big", .period = SVC_QUOTA_DAY, .limit = UINT64_C(1) << 53};
    assert_int_equal(svc_ratelimit_quota_add(f->rl, &q), SVC_OK);
    q.limit = (UINT64_C(1) << 53) + 1;
    assert_int_equal(svc_ratelimit_quota_add(f->rl, &q), SVC_EINVAL);
    assert_non_null(strstr(svc_ratelimit_errmsg(f->rl), "limit"));
    q.limit = UINT64_MAX;
    assert_int_equal(svc_ratelimit_quota_add(f->rl, &q), SVC_EINVAL);
    svc_quota_usage_info u;
    assert_int_equal(svc_quota_usage(f->rl, "t", "big", &u), SVC_OK);
    assert_true(u.limit == UINT64_C(1) << 53); /* the refused edits changed nothing */
    svc_config *cfg;
    char err[256];
    assert_int_equal(svc_config_parse(&cfg, "ratelimit:\n  quotas: [\"huge day "
                                            "18446744073709551615\"]\n",
                                      err, sizeof err),
                     SVC_OK);
    assert_int_equal(svc_ratelimit_load_config(f->rl, cfg), SVC_ECONFIG);
    svc_config_free(cfg);

    /* names of removals and reads are validated like those of additions */
    svc_ratelimit_policy p;
    assert_int_equal(svc_ratelimit_policy_remove(f->rl, "no such name!"), SVC_EINVAL);
    assert_non_null(strstr(svc_ratelimit_errmsg(f->rl), "no such name!"));
    assert_int_equal(svc_ratelimit_policy_remove(f->rl, ""), SVC_EINVAL);
    assert_int_equal(svc_ratelimit_policy_get(f->rl, "a b", &p), SVC_EINVAL);
    assert_int_equal(svc_ratelimit_policy_get(f->rl, "", &p), SVC_EINVAL);
    assert_int_equal(svc_ratelimit_policy_remove(f->rl, "absent"), SVC_ENOTFOUND);
    assert_int_equal(svc_ratelimit_policy_get(f->rl, "absent", &p), SVC_ENOTFOUND);
}

static void a_zone_is_kept_only_when_its_edit_commits(void **state)
{
    fixture *f = *state;
    /* the zone loads, then the edit fails on a later entry */
    svc_config *cfg;
    char err[256];
    const char *bad = "ratelimit:\n  quotas:\n    - berlin day 10 Europe/Berlin\n"
                      "    - broken week 10\n";
    assert_int_equal(svc_config_parse(&cfg, bad, err, sizeof err), SVC_OK);
    assert_int_equal(svc_ratelimit_load_config(f->rl, cfg), SVC_ECONFIG);
    svc_config_free(cfg);
    assert_int_equal(svc__ratelimit_zone_count(f->rl), 0);
    svc_quota q = {.name = "berlin", .period = SVC_QUOTA_DAY, .limit = 10, .tz = "Europe/Berlin"};
    svc_status st = svc_ratelimit_quota_add(f->rl, &q);
    if (st == SVC_ENOTFOUND || st == SVC_EIO)
        skip(); /* no zone files on this machine */
    assert_int_equal(st, SVC_OK);
    assert_int_equal(svc__ratelimit_zone_count(f->rl), 1);
    q.name = "berlin-2";
    assert_int_equal(svc_ratelimit_quota_add(f->rl, &q), SVC_OK);
    assert_int_equal(svc__ratelimit_zone_count(f->rl), 1); /* loaded once, shared */
    /* a refused quota in a new zone keeps nothing */
    svc_quota bq = {.name = "tokyo", .period = SVC_QUOTA_DAY, .limit = UINT64_MAX,
                    .tz = "Asia/Tokyo"};
    assert_int_equal(svc_ratelimit_quota_add(f->rl, &bq), SVC_EINVAL);
    assert_int_equal(svc__ratelimit_zone_count(f->rl), 1);
    svc_quota_usage_info u;
    assert_int_equal(svc_quota_consume(f->rl, "t", "berlin-2", 3, &u), SVC_OK);
    assert_int_equal(u.used, 3);
}

static void bad_input_gets_a_status(void **state)
{
    fixture *f = *state;
    svc_ratelimit_policy p = {.name = "ok", .limit = 0, .period_ms = 1000};
    assert_int_equal(svc_ratelimit_policy_add(f->rl, &p), SVC_EINVAL);
    assert_non_null(strstr(svc_ratelimit_errmsg(f->rl), "limit"));
    p.limit = 1;
    p.period_ms = 0;
    assert_int_equal(svc_ratelimit_policy_add(f->rl, &p), SVC_EINVAL);
    p.period_ms = 1000;
    p.name = "has space";
    assert_int_equal(svc_ratelimit_policy_add(f->rl, &p), SVC_EINVAL);
    p.name = "ok";
    p.algorithm = (svc_ratelimit_algorithm)7;
    assert_int_equal(svc_ratelimit_policy_add(f->rl, &p), SVC_EINVAL);
    p.algorithm = SVC_RL_GCRA;
    assert_int_equal(svc_ratelimit_policy_add(f->rl, &p), SVC_OK);
    svc_ratelimit_result r;
    assert_int_equal(svc_ratelimit_check(f->rl, "ok", "", 1, &r), SVC_EINVAL);
    char big[SVC_RATELIMIT_MAX_KEY + 2];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(svc_ratelimit_check(f->rl, "ok", big, 1, &r), SVC_EINVAL);
    big[SVC_RATELIMIT_MAX_KEY] = '\0';
    assert_int_equal(svc_ratelimit_check(f->rl, "ok", big, 1, &r), SVC_OK);
    assert_int_equal(svc_ratelimit_check(f->rl, "missing", "k", 1, &r), SVC_ENOTFOUND);

    svc_ratelimit_opts o;
    svc_ratelimit_opts_default(&o);
    svc_ratelimit *rl = (svc_ratelimit *)&o;
    o.url = "postgres://localhost/db";
    assert_int_equal(svc_ratelimit_new(&rl, &o), SVC_ENOTSUP);
    assert_null(rl);
    svc_ratelimit_free(NULL);

    svc_ratelimit_algorithm a;
    assert_int_equal(svc_ratelimit_algorithm_parse("Sliding_Window", &a), SVC_OK);
    assert_int_equal(a, SVC_RL_SLIDING_WINDOW);
    assert_int_equal(svc_ratelimit_algorithm_parse("leaky", &a), SVC_EINVAL);
    assert_string_equal(svc_ratelimit_algorithm_name(SVC_RL_FIXED_WINDOW), "fixed_window");
}

/* A limiter on a store that is down, failing open or closed. */
static svc_ratelimit *open_down_clock(int fail_open, svc_metrics *m, const svc_clock *clock)
{
    svc_ratelimit_opts o;
    svc_ratelimit_opts_default(&o);
    o.url = "memory:";
    o.fail_open = fail_open;
    o.metrics = m;
    o.clock = clock;
    svc_ratelimit *rl;
    assert_int_equal(svc_ratelimit_new(&rl, &o), SVC_OK);
    svc__ratelimit_set_store(rl, rl_test_down_store());
    return rl;
}

static svc_ratelimit *open_down(int fail_open, svc_metrics *m)
{
    return open_down_clock(fail_open, m, NULL);
}

#define decisions rl_test_decisions

static void failing_store_fails_open_or_closed_as_configured(void **state)
{
    (void)state;
    svc_metrics *m;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    for (int open = 0; open <= 1; open++) {
        svc_ratelimit *rl = open_down(open, m);
        add_policy(rl, "p", SVC_RL_GCRA, 1, 1000, 0);
        svc_ratelimit_result r;
        svc_status st = svc_ratelimit_check(rl, "p", "k", 1, &r);
        assert_int_equal(r.store_error, 1);
        if (open) {
            assert_int_equal(st, SVC_OK);
            assert_true(r.allowed);
        } else {
            assert_int_equal(st, SVC_EUNAVAILABLE);
            assert_false(r.allowed);
        }
        assert_non_null(strstr(svc_ratelimit_errmsg(rl), "connection refused"));
        svc_ratelimit_stats s;
        assert_int_equal(svc_ratelimit_stats_get(rl, &s), SVC_OK);
        assert_int_equal(s.store_errors, 1);
        svc_ratelimit_free(rl);
    }
    assert_true(decisions(m, "p", "fail_open") == 1);
    assert_true(decisions(m, "p", "fail_closed") == 1);
    svc_metrics_free(m);
}

/* A failing store is logged (one line per 10 s at most, whatever the rate
 * of failures) and counted in ratelimit_store_errors_total{store}. */
static void failing_store_is_logged_at_most_every_10s_and_counted(void **state)
{
    (void)state;
    svc_metrics *m;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_manual_clock *mc;
    assert_int_equal(svc_manual_clock_new(&mc, 1, WALL0), SVC_OK);
    svc_ratelimit *rl = open_down_clock(1, m, svc_manual_clock_get(mc));
    add_policy(rl, "p", SVC_RL_GCRA, 1, 1000, 0);
    rl_test_log log;
    rl_test_log_start(&log, "rate limit store failed");
    svc_ratelimit_result r;
    for (int i = 0; i < 50; i++) {
        assert_int_equal(svc_ratelimit_check(rl, "p", "k", 1, &r), SVC_OK);
        assert_int_equal(r.store_error, 1);
        svc_manual_clock_advance(mc, 100 * MS); /* 5 s in all */
    }
    assert_int_equal(rl_test_log_count(&log), 1);
    assert_non_null(strstr(log.last, "\"store\":\"down\""));
    assert_non_null(strstr(log.last, "\"for\":\"p\""));
    assert_non_null(strstr(log.last, "EUNAVAILABLE"));
    assert_non_null(strstr(log.last, "connection refused"));
    assert_non_null(strstr(log.last, "\"fail_open\":true"));
    svc_manual_clock_advance(mc, 5000 * MS); /* 10 s after the first line */
    assert_int_equal(svc_ratelimit_check(rl, "p", "k", 1, &r), SVC_OK);
    assert_int_equal(rl_test_log_count(&log), 2);
    rl_test_log_stop();

    char *text;
    assert_int_equal(svc_metrics_render(m, &text, NULL), SVC_OK);
    assert_non_null(strstr(text, "ratelimit_store_errors_total{store=\"down\"} 51"));
    svc_free(text);
    svc_ratelimit_stats st;
    assert_int_equal(svc_ratelimit_stats_get(rl, &st), SVC_OK);
    assert_int_equal(st.store_errors, 51);
    svc_ratelimit_free(rl);
    svc_manual_clock_free(mc);
    svc_metrics_free(m);
}

/* A quota on a failing store counts nothing, and says so: under fail_open
 * the use is admitted with store_error set, so billing can tell it from a
 * counted one. */
static void quota_on_a_failing_store_reports_store_error(void **state)
{
    (void)state;
    for (int open = 0; open <= 1; open++) {
        svc_ratelimit *rl = open_down(open, NULL);
        svc_quota q = {.name = "calls", .period = SVC_QUOTA_DAY, .limit = 5};
        assert_int_equal(svc_ratelimit_quota_add(rl, &q), SVC_OK);
        svc_quota_usage_info u;
        svc_status st = svc_quota_consume(rl, "t", "calls", 1, &u);
        assert_int_equal(u.store_error, 1);
        assert_int_equal(u.used, 0);
        if (open) {
            assert_int_equal(st, SVC_OK);
            assert_true(u.allowed);
        } else {
            assert_int_equal(st, SVC_EUNAVAILABLE);
            assert_false(u.allowed);
        }
        assert_int_equal(svc_quota_usage(rl, "t", "calls", &u), SVC_EUNAVAILABLE);
        assert_int_equal(u.store_error, 1);
        svc_ratelimit_free(rl);
    }
    /* a working store: 0 */
    svc_ratelimit *rl;
    assert_int_equal(svc_ratelimit_new(&rl, NULL), SVC_OK);
    svc_quota q = {.name = "calls", .period = SVC_QUOTA_DAY, .limit = 5};
    assert_int_equal(svc_ratelimit_quota_add(rl, &q), SVC_OK);
    svc_quota_usage_info u;
    memset(&u, 0xff, sizeof u);
    assert_int_equal(svc_quota_consume(rl, "t", "calls", 1, &u), SVC_OK);
    assert_int_equal(u.store_error, 0);
    assert_true(u.allowed);
    svc_ratelimit_free(rl);
}

/* A plan whose first peek already fails closed is a fail_closed decision
 * too, counted once, for the policy that failed. */
static void plan_failing_closed_counts_a_fail_closed_decision(void **state)
{
    (void)state;
    svc_metrics *m;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_ratelimit *rl = open_down(0, m);
    add_policy(rl, "sec", SVC_RL_GCRA, 1, 1000, 0);
    add_policy(rl, "day", SVC_RL_FIXED_WINDOW, 100, 86400000, 0);
    const char *pols[] = {"sec", "day"};
    assert_int_equal(svc_ratelimit_plan_add(rl, "plan", pols, 2), SVC_OK);
    svc_ratelimit_result r;
    assert_int_equal(svc_ratelimit_check_plan(rl, "plan", "k", 1, &r), SVC_EUNAVAILABLE);
    assert_false(r.allowed);
    assert_int_equal(r.store_error, 1);
    assert_string_equal(r.policy, "sec");
    assert_true(decisions(m, "sec", "fail_closed") == 1);
    assert_true(decisions(m, "day", "fail_closed") == 0);
    svc_ratelimit_free(rl);
    svc_metrics_free(m);
}

/* A Redis server that is not there: the check is decided by fail_open
 * after the connect fails, never hangs and never crashes. */
static void unreachable_redis_store_fails_open_or_closed(void **state)
{
    (void)state;
    if (!svc_feature_supported(SVC_FEATURE_REDIS))
        skip();
    for (int open = 0; open <= 1; open++) {
        svc_ratelimit_opts o;
        svc_ratelimit_opts_default(&o);
        o.url = "redis://127.0.0.1:1/0"; /* nothing listens on port 1 */
        o.store_timeout_ms = 200;
        o.fail_open = open;
        svc_ratelimit *rl;
        assert_int_equal(svc_ratelimit_new(&rl, &o), SVC_OK);
        add_policy(rl, "p", SVC_RL_GCRA, 1, 1000, 0);
        for (int i = 0; i < 3; i++) {
            svc_ratelimit_result r;
            svc_status st = svc_ratelimit_check(rl, "p", "k", 1, &r);
            assert_int_equal(r.store_error, 1);
            if (open) {
                assert_int_equal(st, SVC_OK);
                assert_true(r.allowed);
            } else {
                assert_true(st == SVC_EUNAVAILABLE || st == SVC_ETIMEDOUT);
                assert_false(r.allowed);
            }
        }
        svc_quota_usage_info u;
        svc_quota q = {.name = "q", .period = SVC_QUOTA_DAY, .limit = 5};
        assert_int_equal(svc_ratelimit_quota_add(rl, &q), SVC_OK);
        assert_true(svc_quota_usage(rl, "t", "q", &u) != SVC_OK);
        svc_ratelimit_free(rl);
    }
}

static void decisions_are_counted_by_policy_and_result(void **state)
{
    (void)state;
    svc_metrics *m;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_ratelimit_opts o;
    svc_ratelimit_opts_default(&o);
    o.url = "memory:";
    o.metrics = m;
    svc_ratelimit *rl;
    assert_int_equal(svc_ratelimit_new(&rl, &o), SVC_OK);
    add_policy(rl, "m", SVC_RL_FIXED_WINDOW, 2, 3600000, 0);
    svc_ratelimit_result r;
    for (int i = 0; i < 5; i++)
        assert_int_equal(svc_ratelimit_check(rl, "m", "k", 1, &r), SVC_OK);
    assert_int_equal(svc_ratelimit_peek(rl, "m", "k", 1, &r), SVC_OK); /* not counted */
    char *text;
    assert_int_equal(svc_metrics_render(m, &text, NULL), SVC_OK);
    assert_non_null(strstr(text, "ratelimit_decisions_total{policy=\"m\",result=\"allowed\"} 2"));
    assert_non_null(strstr(text, "ratelimit_decisions_total{policy=\"m\",result=\"denied\"} 3"));
    svc_free(text);
    svc_ratelimit_free(rl);
    svc_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(gcra_matches_token_bucket_model, setup, teardown),
        cmocka_unit_test_setup_teardown(gcra_default_burst_is_limit_and_rate_not_divisible,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(fixed_window_matches_model, setup, teardown),
        cmocka_unit_test_setup_teardown(sliding_window_matches_model, setup, teardown),
        cmocka_unit_test_setup_teardown(retry_after_is_never_early_and_tight, setup, teardown),
        cmocka_unit_test_setup_teardown(burst_then_steady_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(peek_consumes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(fixed_window_resets_at_the_edge, setup, teardown),
        cmocka_unit_test_setup_teardown(sliding_window_weighs_the_previous_window, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(four_threads_on_one_key_never_exceed_the_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(counts_stay_exact_while_tables_grow_under_threads, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(policy_change_takes_effect_without_restart, setup,
                                        teardown),
        cmocka_unit_test(fresh_keys_while_tables_grow_never_touch_a_freed_table),
        cmocka_unit_test(limiters_do_not_share_policies),
        cmocka_unit_test(memory_cap_holds_under_a_million_unique_keys),
        cmocka_unit_test_setup_teardown(expired_keys_are_reclaimed, setup, teardown),
        cmocka_unit_test_setup_teardown(quota_rolls_over_at_day_and_month_boundaries, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(quota_in_a_named_zone_rolls_at_local_midnight, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(plan_checks_every_policy_and_names_the_one_that_denies,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(denied_plan_spends_nothing_and_reports_the_longest_wait,
                                        setup, teardown),
        cmocka_unit_test(null_opts_read_the_environment),
        cmocka_unit_test(explicit_opts_ignore_the_environment),
        cmocka_unit_test(store_binding_errors_are_the_standard_ones),
        cmocka_unit_test(references_are_counted),
        cmocka_unit_test(metrics_default_to_the_default_registry),
        cmocka_unit_test_setup_teardown(policies_plans_quotas_load_from_config, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(config_reload_removes_what_it_no_longer_lists, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(bad_input_gets_a_status, setup, teardown),
        cmocka_unit_test_setup_teardown(quota_limits_stay_exact_and_names_are_checked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_zone_is_kept_only_when_its_edit_commits, setup,
                                        teardown),
        cmocka_unit_test(failing_store_fails_open_or_closed_as_configured),
        cmocka_unit_test(failing_store_is_logged_at_most_every_10s_and_counted),
        cmocka_unit_test(plan_failing_closed_counts_a_fail_closed_decision),
        cmocka_unit_test(quota_on_a_failing_store_reports_store_error),
        cmocka_unit_test(unreachable_redis_store_fails_open_or_closed),
        cmocka_unit_test(decisions_are_counted_by_policy_and_result),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
