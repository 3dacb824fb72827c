/*
 * lib/ratelimit/rl.h - the limiter's private shape, shared by its files:
 *
 *   ratelimit.c  options, constructor, references, store binding, stats
 *   policy.c     the policy table: names, validation, copy-and-swap edits
 *   config.c     the configuration grammar (policies, plans, quotas)
 *   check.c      checks of policies and plans against the store
 *   quota.c      calendar quotas
 *
 * The policy table is immutable once published. Writers (policy_add,
 * plan_add, load_config ...) serialise on a mutex, build a new table, swap
 * the pointer and wait until no reader can still hold the old one, then
 * free it. Readers take no lock: they announce themselves on one of 64
 * padded counters (their thread's stripe), load the pointer, copy what they
 * need and leave:
 *
 *   reader:  stripe[t]++ ; tab = table ; copy policy ; stripe[t]--
 *   writer:  old = swap(table, new) ; wait each stripe == 0 once ; free(old)
 *
 * With sequentially consistent atomics a reader that loaded `old` is counted
 * on its stripe until it leaves, so seeing a stripe at zero after the swap
 * means every reader of that stripe that could hold `old` is gone
 * (svc__rl_readers in readers.c; the memory store's tables use the same). Readers
 * on different threads touch different cache lines, so checks on different
 * keys scale across cores; the store (sharded) is the only other shared
 * structure on the path. Helpers of the check path are inline here so that
 * splitting the files costs the checks nothing.
 */
#ifndef SVCINFRA_RATELIMIT_RL_H
#define SVCINFRA_RATELIMIT_RL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "svcinfra/metrics.h"

#include "backend/bind.h"
#include "ratelimit/rl_config.h"
#include "store.h"

__extension__ typedef unsigned __int128 rl_u128;

#define NAME_CAP (SVC_RATELIMIT_MAX_NAME + 1)
#define MAX_LIMIT UINT64_C(1000000000000)
/* quota counters stay exact in the Redis script's doubles, and used + cost
 * (each at most this) cannot wrap */
#define MAX_QUOTA_LIMIT (UINT64_C(1) << 53)
#define MAX_PERIOD_MS (INT64_C(366) * 24 * 3600 * 1000)
#define LOG_EVERY_NS (INT64_C(10) * SVC__NS_PER_SEC)
/* prefix (a quota's carries its window start), name, separator, key */
#define KEYBUF_CAP (32 + NAME_CAP + 1 + SVC_RATELIMIT_MAX_KEY)

typedef struct svc__rl_pol {
    char name[NAME_CAP];
    svc_ratelimit_algorithm alg;
    uint64_t limit;
    uint64_t burst;       /* GCRA capacity (burst or limit) */
    int64_t period_ms;
    int64_t interval_ns;  /* GCRA: svc__rl_gcra_interval_ns() */
    bool cfg;             /* defined by the configuration last loaded */
} svc__rl_pol;

typedef struct svc__rl_plan {
    char name[NAME_CAP];
    size_t n;
    char pol[SVC_RATELIMIT_MAX_PLAN_POLICIES][NAME_CAP];
    bool cfg;
} svc__rl_plan;

typedef struct svc__rl_quota {
    char name[NAME_CAP];
    svc_quota_period period;
    uint64_t limit;
    void *tz; /* svc_tz * owned by the limiter's zone list; NULL = UTC */
    bool cfg;
} svc__rl_quota;

typedef struct svc__rl_table {
    svc__rl_pol *pol;
    size_t npol;
    uint32_t *idx; /* open addressing over pol: i + 1, 0 = empty */
    size_t idxcap; /* power of two >= 2 * npol */
    svc__rl_plan *plans;
    size_t nplans;
    svc__rl_quota *quotas;
    size_t nquotas;
} svc__rl_table;

struct svc_ratelimit {
    svc__rl_readers readers;
    _Atomic(svc__rl_table *) table;
    pthread_mutex_t wmu; /* writers */
    svc__rl_store *store;
    const svc_clock *clock;
    int fail_open;
    svc__err err;
    svc_counter *m_decisions;
    svc_counter *m_store_errors;
    svc_metrics *metrics;       /* a reference: the registry of the counters */
    _Atomic uint64_t store_errors;
    _Atomic int64_t last_log_ns;
    void **zones; /* loaded svc_tz, freed with the limiter (under wmu);
                     [nzones, nzones + npending) were loaded by the edit in
                     progress and are kept only when it commits */
    size_t nzones;
    size_t npending;
    svc__store bound;     /* the store binding: its reference on a pool */
    svc__ref ref;
    /* read by every check; written only by publish: a line of its own, away
     * from the counters above that errors write */
    _Alignas(SVC__RL_LINE) _Atomic uint64_t gen; /* bumped by every publish */
    uint64_t id;          /* unique per limiter, never reused */
};

/* ---- check-path helpers (inline) ------------------------------------------- */

static inline uint64_t svc__rl_name_hash(const char *s)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

static inline int64_t svc__rl_ms_up(int64_t ns)
{
    if (ns <= 0)
        return ns < 0 ? ns : 0;
    return ns / SVC__NS_PER_MS + (ns % SVC__NS_PER_MS != 0);
}

static inline const svc__rl_pol *svc__rl_table_policy(const svc__rl_table *t, const char *name)
{
    if (!t->npol)
        return NULL;
    size_t mask = t->idxcap - 1;
    for (size_t j = (size_t)svc__rl_name_hash(name) & mask;; j = (j + 1) & mask) {
        uint32_t v = t->idx[j];
        if (!v)
            return NULL;
        if (strcmp(t->pol[v - 1].name, name) == 0)
            return &t->pol[v - 1];
    }
}

static inline const svc__rl_table *svc__rl_read_begin(svc_ratelimit *rl, unsigned *stripe)
{
    *stripe = svc__rl_read_enter(&rl->readers);
    return atomic_load(&rl->table); /* seq_cst: see svc__rl_readers */
}

static inline void svc__rl_read_end(svc_ratelimit *rl, unsigned stripe)
{
    svc__rl_read_leave(&rl->readers, stripe);
}

/* The wall time of a check, read once per check. The system clock is read
 * directly (no indirect call); an injected clock goes through svc_clock. */
static inline int64_t svc__rl_wall_now(const svc_ratelimit *rl)
{
    if (rl->clock)
        return svc_clock_wall_ns(rl->clock);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * SVC__NS_PER_SEC + ts.tv_nsec;
}

static inline size_t svc__rl_make_key(char *buf, const char *prefix, const char *name, const char *key,
                       size_t klen)
{
    size_t pl = strlen(prefix), nl = strlen(name);
    memcpy(buf, prefix, pl);
    memcpy(buf + pl, name, nl);
    buf[pl + nl] = '\x1f';
    memcpy(buf + pl + nl + 1, key, klen);
    return pl + nl + 1 + klen;
}

static inline svc_status svc__rl_check_key(svc_ratelimit *rl, const char *key, size_t *klen)
{
    *klen = strlen(key);
    if (*klen == 0 || *klen > SVC_RATELIMIT_MAX_KEY)
        return svc__err_set(&rl->err, SVC_EINVAL, "key must be 1..%d bytes, got %zu",
                            SVC_RATELIMIT_MAX_KEY, *klen);
    return SVC_OK;
}

/* ---- policy.c ------------------------------------------------------------- */

bool svc__rl_valid_name(const char *s);
/* SVC_OK for a valid name; else SVC_EINVAL with the detail in rl's error. */
svc_status svc__rl_check_name(svc_ratelimit *rl, const char *what, const char *name);
void svc__rl_copy_name(char dst[NAME_CAP], const char *src);
void svc__rl_table_free(svc__rl_table *t);
/* A copy with room for one more of each. */
svc__rl_table *svc__rl_table_clone(const svc__rl_table *o);
bool svc__rl_table_index(svc__rl_table *t);
svc__rl_plan *svc__rl_table_plan(const svc__rl_table *t, const char *name);
svc__rl_quota *svc__rl_table_quota(const svc__rl_table *t, const char *name);
svc_status svc__rl_make_policy(svc_ratelimit *rl, const svc_ratelimit_policy *p, svc__rl_pol *out);
svc_status svc__rl_make_plan(svc_ratelimit *rl, const char *plan, const char *const *policies, size_t n,
                     svc__rl_plan *out);
/* A quota's zone is loaded here, pending until the edit commits (svc__rl_edit()). */
svc_status svc__rl_make_quota(svc_ratelimit *rl, const svc_quota *q, svc__rl_quota *out);
svc_status svc__rl_put_policy(svc_ratelimit *rl, svc__rl_table *t, const svc__rl_pol *p);
svc_status svc__rl_put_plan(svc_ratelimit *rl, svc__rl_table *t, const svc__rl_plan *p);
svc_status svc__rl_put_quota(svc_ratelimit *rl, svc__rl_table *t, const svc__rl_quota *q);
/* Edits go through this: clone under wmu, fn changes the clone, index,
 * publish (or discard the clone and the zones it loaded when fn fails). */
typedef svc_status (*svc__rl_edit_fn)(svc_ratelimit *rl, svc__rl_table *t, const void *arg);
svc_status svc__rl_edit(svc_ratelimit *rl, svc__rl_edit_fn fn, const void *arg);

/* ---- check.c ---------------------------------------------------------------- */

/* Counts a store failure and logs it (at most once per LOG_EVERY_NS). */
void svc__rl_store_failed(svc_ratelimit *rl, const char *what, svc_status st);

#endif /* SVCINFRA_RATELIMIT_RL_H */
