/*
 * lib/ratelimit/store.h - the rate limiter's store interface and the
 * algorithms' arithmetic.
 *
 * A store owns the per-key state and applies one algorithm step to it
 * atomically: the memory store under a shard mutex, the Redis store (when
 * built) in one Lua script that does the same arithmetic with the server's
 * TIME. So the interface is "apply this request to this key", never
 * "get, then set":
 *
 *   engine ──► svc__rl_req {alg, params, key, cost, commit, now}
 *                 │
 *                 ▼
 *   store ─── find key ─► svc__rl_apply(req, &state) ─► keep state, expiry
 *                 │
 *                 ▼
 *             svc__rl_out {allowed, remaining, reset, retry_after} (ns)
 *
 * All times here are nanoseconds of wall time (UNIX epoch); the engine
 * turns them into milliseconds, rounding up.
 */
#ifndef SVCINFRA_RATELIMIT_STORE_H
#define SVCINFRA_RATELIMIT_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "svcinfra/ratelimit.h"

#include "../internal.h"

/* Kinds of state; a key holds one. SVC__RL_QUOTA counts units in an
 * explicit window given by the engine (calendar windows). */
typedef enum svc__rl_kind {
    SVC__RL_GCRA = 1,
    SVC__RL_FIXED = 2,
    SVC__RL_SLIDING = 3,
    SVC__RL_QUOTA = 4
} svc__rl_kind;

/* The state of one key.
 *   GCRA:    a = theoretical arrival time (TAT)
 *   FIXED:   a = window start, c = count
 *   SLIDING: a = current window start, b = previous window's count,
 *            c = current window's count
 *   QUOTA:   a = window start, c = used */
typedef struct svc__rl_state {
    int64_t a;
    uint64_t b;
    uint64_t c;
} svc__rl_state;

typedef struct svc__rl_req {
    svc__rl_kind kind;
    uint64_t limit;      /* windows, quota (0 = unlimited quota) */
    uint64_t burst;      /* GCRA capacity */
    int64_t period_ns;   /* windows, GCRA */
    int64_t interval_ns; /* GCRA emission interval: svc__rl_gcra_interval_ns() */
    int64_t win_start;   /* QUOTA window [win_start, win_end) */
    int64_t win_end;
    uint64_t cost;
    bool commit;         /* false: peek */
    int64_t now;         /* the engine's wall time; a store may use its own */
    const char *key;     /* composite key, not NUL-terminated */
    size_t klen;
    /* the parts of the composite key, for stores that name keys their way */
    const char *name;    /* policy or quota name */
    const char *ukey;    /* the caller's key or tenant, NUL-terminated */
} svc__rl_req;

typedef struct svc__rl_out {
    bool allowed;
    uint64_t remaining;
    int64_t reset_ns;
    int64_t retry_ns;    /* -1 never; 0 when allowed */
    uint64_t used;       /* QUOTA: units counted in the window */
} svc__rl_out;

typedef struct svc__rl_store_stats {
    uint64_t keys, max_keys, evictions, expired;
} svc__rl_store_stats;

typedef struct svc__rl_store svc__rl_store;

typedef struct svc__rl_store_ops {
    const char *name;
    /* Applies `req` to its key atomically. SVC_OK, or a backend status
     * (SVC_EUNAVAILABLE, SVC_ETIMEDOUT, SVC_EBACKEND) with detail in err. */
    svc_status (*apply)(svc__rl_store *s, const svc__rl_req *req, svc__rl_out *out,
                        svc__err *err);
    void (*stats)(svc__rl_store *s, svc__rl_store_stats *out);
    void (*destroy)(svc__rl_store *s);
} svc__rl_store_ops;

struct svc__rl_store {
    const svc__rl_store_ops *ops;
};

/* The memory store (store_memory.c). max_keys >= 64. */
svc_status svc__rl_store_memory_new(svc__rl_store **out, size_t max_keys);

struct svc_redis;
/* The Redis store (store_redis.c) on `pool` (borrowed: the limiter's
 * store binding holds the reference and outlives the store). SVC_ENOTSUP
 * when hiredis was not built. `err` receives the detail of a failure. */
svc_status svc__rl_store_redis_new(svc__rl_store **out, struct svc_redis *pool, char *err,
                                   size_t errlen);

/* The Redis store's Lua script (static text), and the KEYS[1] (at most
 * SVC__RL_REDIS_KEY_CAP bytes with its NUL) and ARGV it sends for `req`;
 * for the benchmark that runs the same script through redis-benchmark. */
#define SVC__RL_REDIS_KEY_CAP (8 + SVC_RATELIMIT_MAX_NAME + 1 + SVC_RATELIMIT_MAX_KEY + 24)
const char *svc__rl_redis_lua(void);
void svc__rl_redis_args(const svc__rl_req *req, char *key, size_t keylen, char args[9][32]);

/* Replaces the limiter's store with `s` (taking ownership; the previous one
 * is destroyed). For tests that need a store which fails; must not race
 * with any other call on `rl`. */
void svc__ratelimit_set_store(svc_ratelimit *rl, svc__rl_store *s);

/* svc_ratelimit_check() of `name`, or svc_ratelimit_check_plan() when no
 * policy has that name: the HTTP middleware's check. With `shadow` (a dry
 * run that never denies) a denial is counted as result="shadow_denied". */
svc_status svc__ratelimit_check_named(svc_ratelimit *rl, const char *name, const char *key,
                                      uint64_t cost, bool shadow, svc_ratelimit_result *out);

/* The Redis pool of a limiter on a redis store (borrowed: lives as long as
 * the limiter), else NULL; and its fail_open. For the readiness check of
 * svc_add_ratelimit(). */
struct svc_redis *svc__ratelimit_redis(const svc_ratelimit *rl);
int svc__ratelimit_fail_open(const svc_ratelimit *rl);

/* The option tables of section "ratelimit" (ratelimit.c) and
 * "ratelimit.http" (http.c). */
struct svc__opt_table;
extern const struct svc__opt_table svc__ratelimit_opts_table;
extern const struct svc__opt_table svc__ratelimit_http_opts_table;

/* Time zones the limiter holds for its quotas (for tests). */
size_t svc__ratelimit_zone_count(svc_ratelimit *rl);

/* Cache-line aligned blocks for structures that threads write side by side
 * (shards, slots, reader stripes): `size` bytes, zeroed, starting on a
 * multiple of SVC__RL_LINE, through the library's allocator. NULL on
 * failure; svc__rl_free_aligned(NULL) is a no-op. */
#define SVC__RL_LINE 64
void *svc__rl_calloc_aligned(size_t size);
void svc__rl_free_aligned(void *p);

/* Readers of a pointer that writers replace (readers.c explains the
 * handshake): a reader calls svc__rl_read_enter(), loads the pointer with a
 * sequentially consistent load (atomic_load()), uses it and calls
 * svc__rl_read_leave(); a writer stores the new pointer with a sequentially
 * consistent store or exchange (atomic_store() / atomic_exchange()), then
 * svc__rl_readers_wait(), then frees the old one. Weaker orders on either
 * pointer access break the handshake. Readers never wait; each thread uses
 * one of SVC__RL_NSTRIPES padded counters. */
#define SVC__RL_NSTRIPES 64
typedef struct svc__rl_stripe {
    _Alignas(SVC__RL_LINE) _Atomic unsigned long n;
} svc__rl_stripe;
typedef struct svc__rl_readers {
    svc__rl_stripe s[SVC__RL_NSTRIPES];
} svc__rl_readers;
void svc__rl_readers_init(svc__rl_readers *r);
unsigned svc__rl_read_enter(svc__rl_readers *r);
void svc__rl_read_leave(svc__rl_readers *r, unsigned stripe);
void svc__rl_readers_wait(svc__rl_readers *r);

/* GCRA's emission interval for `limit` units per `period_ms`, in ns:
 * period / limit rounded up to a whole microsecond (at least 1 µs). Whole
 * µs keep the Redis script's arithmetic exact (store_redis.c), so both
 * stores compute the same figures; rounding up never admits faster than
 * the policy says. */
int64_t svc__rl_gcra_interval_ns(int64_t period_ms, uint64_t limit);

/* One algorithm step on `st` (a fresh key when !present). Writes the new
 * state to *st when req->commit and the request is admitted, and the time
 * from which the key is as good as absent to *expire_at. Pure function. */
void svc__rl_apply(const svc__rl_req *req, svc__rl_state *st, bool present, int64_t now,
                   svc__rl_out *out, int64_t *expire_at);

#endif /* SVCINFRA_RATELIMIT_STORE_H */
