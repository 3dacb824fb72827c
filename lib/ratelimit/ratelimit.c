/*
 * ratelimit.c - the rate limiter: policies, plans and quotas by name, checks
 * against a store, fail-open/closed, metrics.
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
 * structure on the path.
 */
#include <ctype.h>
#include <limits.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "svcinfra/config.h"
#include "svcinfra/log.h"
#include "svcinfra/metrics.h"
#include "svcinfra/store.h"

#include "core/calendar.h"
#include "core/parse.h"
#include "ratelimit/rl_config.h"
#include "store.h"

#if SVC__RL_HAVE_TZ
#include "svcinfra/tz.h"
#endif

__extension__ typedef unsigned __int128 rl_u128;

#define NAME_CAP (SVC_RATELIMIT_MAX_NAME + 1)
#define MAX_LIMIT UINT64_C(1000000000000)
/* quota counters stay exact in the Redis script's doubles, and used + cost
 * (each at most this) cannot wrap */
#define MAX_QUOTA_LIMIT (UINT64_C(1) << 53)
#define MAX_PERIOD_MS (INT64_C(366) * 24 * 3600 * 1000)
#define DEFAULT_MAX_KEYS ((size_t)1 << 18)
#define LOG_EVERY_NS (INT64_C(10) * SVC__NS_PER_SEC)
/* prefix (a quota's carries its window start), name, separator, key */
#define KEYBUF_CAP (32 + NAME_CAP + 1 + SVC_RATELIMIT_MAX_KEY)

typedef struct rl_pol {
    char name[NAME_CAP];
    svc_ratelimit_algorithm alg;
    uint64_t limit;
    uint64_t burst;       /* GCRA capacity (burst or limit) */
    int64_t period_ms;
    int64_t interval_ns;  /* GCRA: svc__rl_gcra_interval_ns() */
    bool cfg;             /* defined by the configuration last loaded */
} rl_pol;

typedef struct rl_plan {
    char name[NAME_CAP];
    size_t n;
    char pol[SVC_RATELIMIT_MAX_PLAN_POLICIES][NAME_CAP];
    bool cfg;
} rl_plan;

typedef struct rl_quota {
    char name[NAME_CAP];
    svc_quota_period period;
    uint64_t limit;
    void *tz; /* svc_tz * owned by the limiter's zone list; NULL = UTC */
    bool cfg;
} rl_quota;

typedef struct rl_table {
    rl_pol *pol;
    size_t npol;
    uint32_t *idx; /* open addressing over pol: i + 1, 0 = empty */
    size_t idxcap; /* power of two >= 2 * npol */
    rl_plan *plans;
    size_t nplans;
    rl_quota *quotas;
    size_t nquotas;
} rl_table;

struct svc_ratelimit {
    svc__rl_readers readers;
    _Atomic(rl_table *) table;
    pthread_mutex_t wmu; /* writers */
    svc__rl_store *store;
    const svc_clock *clock;
    int fail_open;
    svc__err err;
    svc_counter *m_decisions;
    svc_counter *m_store_errors;
    _Atomic uint64_t store_errors;
    _Atomic int64_t last_log_ns;
    void **zones; /* loaded svc_tz, freed with the limiter (under wmu);
                     [nzones, nzones + npending) were loaded by the edit in
                     progress and are kept only when it commits */
    size_t nzones;
    size_t npending;
    /* read by every check; written only by publish: a line of its own, away
     * from the counters above that errors write */
    _Alignas(SVC__RL_LINE) _Atomic uint64_t gen; /* bumped by every publish */
    uint64_t id;          /* unique per limiter, never reused */
};

/* ---- small helpers -------------------------------------------------------- */

static uint64_t name_hash(const char *s)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

static bool valid_name(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char ch = (unsigned char)s[n];
        if (!isalnum(ch) && !strchr("_-.:", ch))
            return false;
        if (n >= SVC_RATELIMIT_MAX_NAME)
            return false;
    }
    return n > 0;
}

/* SVC_OK for a valid name; else SVC_EINVAL with the detail in rl's error. */
static svc_status check_name(svc_ratelimit *rl, const char *what, const char *name)
{
    if (!name || !valid_name(name))
        return svc__err_set(&rl->err, SVC_EINVAL,
                            "%s name '%.80s' must be 1-%d letters, digits or _-.:", what,
                            name ? name : "(null)", SVC_RATELIMIT_MAX_NAME);
    return SVC_OK;
}

static int64_t ns_to_ms_up(int64_t ns)
{
    if (ns <= 0)
        return ns < 0 ? ns : 0;
    return ns / SVC__NS_PER_MS + (ns % SVC__NS_PER_MS != 0);
}

static void copy_name(char dst[NAME_CAP], const char *src)
{
    size_t n = strlen(src);
    if (n > SVC_RATELIMIT_MAX_NAME)
        n = SVC_RATELIMIT_MAX_NAME;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ---- the table ------------------------------------------------------------ */

static void table_free(rl_table *t)
{
    if (!t)
        return;
    svc_free(t->pol);
    svc_free(t->idx);
    svc_free(t->plans);
    svc_free(t->quotas);
    svc_free(t);
}

/* A copy with room for one more of each. */
static rl_table *table_clone(const rl_table *o)
{
    rl_table *t = svc__calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->pol = svc__calloc(o->npol + 1, sizeof *t->pol);
    t->plans = svc__calloc(o->nplans + 1, sizeof *t->plans);
    t->quotas = svc__calloc(o->nquotas + 1, sizeof *t->quotas);
    if (!t->pol || !t->plans || !t->quotas) {
        table_free(t);
        return NULL;
    }
    if (o->npol)
        memcpy(t->pol, o->pol, o->npol * sizeof *t->pol);
    if (o->nplans)
        memcpy(t->plans, o->plans, o->nplans * sizeof *t->plans);
    if (o->nquotas)
        memcpy(t->quotas, o->quotas, o->nquotas * sizeof *t->quotas);
    t->npol = o->npol;
    t->nplans = o->nplans;
    t->nquotas = o->nquotas;
    return t;
}

static bool table_index(rl_table *t)
{
    size_t cap = 8;
    while (cap < 2 * t->npol)
        cap *= 2;
    uint32_t *idx = svc__calloc(cap, sizeof *idx);
    if (!idx)
        return false;
    for (size_t i = 0; i < t->npol; i++) {
        size_t j = (size_t)name_hash(t->pol[i].name) & (cap - 1);
        while (idx[j])
            j = (j + 1) & (cap - 1);
        idx[j] = (uint32_t)(i + 1);
    }
    svc_free(t->idx);
    t->idx = idx;
    t->idxcap = cap;
    return true;
}

static const rl_pol *table_policy(const rl_table *t, const char *name)
{
    if (!t->npol)
        return NULL;
    size_t mask = t->idxcap - 1;
    for (size_t j = (size_t)name_hash(name) & mask;; j = (j + 1) & mask) {
        uint32_t v = t->idx[j];
        if (!v)
            return NULL;
        if (strcmp(t->pol[v - 1].name, name) == 0)
            return &t->pol[v - 1];
    }
}

static rl_plan *table_plan(const rl_table *t, const char *name)
{
    for (size_t i = 0; i < t->nplans; i++)
        if (strcmp(t->plans[i].name, name) == 0)
            return &t->plans[i];
    return NULL;
}

static rl_quota *table_quota(const rl_table *t, const char *name)
{
    for (size_t i = 0; i < t->nquotas; i++)
        if (strcmp(t->quotas[i].name, name) == 0)
            return &t->quotas[i];
    return NULL;
}

/* ---- readers and the swap ------------------------------------------------- */

static _Atomic uint64_t next_rl_id = 1;

static const rl_table *read_begin(svc_ratelimit *rl, unsigned *stripe)
{
    *stripe = svc__rl_read_enter(&rl->readers);
    return atomic_load(&rl->table); /* seq_cst: see svc__rl_readers */
}

static void read_end(svc_ratelimit *rl, unsigned stripe)
{
    svc__rl_read_leave(&rl->readers, stripe);
}

/* Publishes `t` (caller holds wmu) and frees the previous table once no
 * reader can hold it. */
static void publish(svc_ratelimit *rl, rl_table *t)
{
    rl_table *old = atomic_exchange(&rl->table, t); /* seq_cst: see svc__rl_readers */
    atomic_fetch_add(&rl->gen, 1); /* before returning: later checks miss their caches */
    svc__rl_readers_wait(&rl->readers);
    table_free(old);
}

/* ---- validation ------------------------------------------------------------ */

static svc_status make_policy(svc_ratelimit *rl, const svc_ratelimit_policy *p, rl_pol *out)
{
    svc_status st = check_name(rl, "policy", p->name);
    if (st != SVC_OK)
        return st;
    if ((int)p->algorithm < SVC_RL_GCRA || (int)p->algorithm > SVC_RL_SLIDING_WINDOW)
        return svc__err_set(&rl->err, SVC_EINVAL, "policy '%s': unknown algorithm %d", p->name,
                            (int)p->algorithm);
    if (p->limit < 1 || p->limit > MAX_LIMIT)
        return svc__err_set(&rl->err, SVC_EINVAL,
                            "policy '%s': limit must be 1..1000000000000, got %llu", p->name,
                            (unsigned long long)p->limit);
    if (p->period_ms < 1 || p->period_ms > MAX_PERIOD_MS)
        return svc__err_set(&rl->err, SVC_EINVAL,
                            "policy '%s': period must be 1 ms .. 366 days, got %lld ms",
                            p->name, (long long)p->period_ms);
    if (p->burst > MAX_LIMIT)
        return svc__err_set(&rl->err, SVC_EINVAL,
                            "policy '%s': burst must be at most 1000000000000", p->name);
    memset(out, 0, sizeof *out);
    copy_name(out->name, p->name);
    out->alg = p->algorithm;
    out->limit = p->limit;
    out->period_ms = p->period_ms;
    out->burst = p->algorithm == SVC_RL_GCRA ? (p->burst ? p->burst : p->limit) : p->limit;
    out->interval_ns = svc__rl_gcra_interval_ns(p->period_ms, p->limit);
    /* tau = interval * burst, and tat may run that far ahead of now; in µs
     * that stays below 2^53 for the Redis script */
    if ((rl_u128)out->interval_ns * out->burst > (rl_u128)(INT64_MAX / 4))
        return svc__err_set(&rl->err, SVC_EINVAL,
                            "policy '%s': burst too large for its rate (burst / rate > 70 years)",
                            p->name);
    /* the interval is whole µs: say so when that slows the rate noticeably */
    if (p->algorithm == SVC_RL_GCRA &&
        (rl_u128)out->interval_ns * p->limit * 100 >
            (rl_u128)p->period_ms * SVC__NS_PER_MS * 101)
        svc_logf(SVC_LOG_WARN,
                 "rate limit policy '%s': GCRA rounds its interval up to a whole "
                 "microsecond, so %llu per %lld ms admits one unit every %lld us, more than "
                 "1%% below that rate",
                 p->name, (unsigned long long)p->limit, (long long)p->period_ms,
                 (long long)(out->interval_ns / 1000));
    return SVC_OK;
}

/* ---- lifecycle -------------------------------------------------------------- */

void svc_ratelimit_opts_default(svc_ratelimit_opts *opts)
{
    if (!opts)
        return;
    memset(opts, 0, sizeof *opts);
    opts->store_url = "memory:";
    opts->fail_open = 1;
    opts->max_keys = DEFAULT_MAX_KEYS;
    const char *v = svc__getenv("SVC_RATELIMIT_STORE");
    if (v)
        opts->store_url = v;
    int b;
    v = svc__getenv("SVC_RATELIMIT_FAIL_OPEN");
    if (v && svc__parse_bool(v, &b) == SVC_OK)
        opts->fail_open = b;
    int64_t n;
    v = svc__getenv("SVC_RATELIMIT_MAX_KEYS");
    if (v && svc__parse_int(v, &n) == SVC_OK && n >= 64 && (uint64_t)n <= SIZE_MAX / 2)
        opts->max_keys = (size_t)n;
}

svc_status svc_ratelimit_new(svc_ratelimit **out, const svc_ratelimit_opts *opts)
{
    *out = NULL;
    svc_ratelimit_opts def;
    if (!opts) {
        svc_ratelimit_opts_default(&def);
        opts = &def;
    }
    const char *url = opts->store_url ? opts->store_url : "memory:";
    char why[256] = "";
    svc_store_kind kind = SVC_STORE_REDIS;
    svc_status st = SVC_OK;
    if (!opts->redis) {
        svc_store_url u;
        st = svc_store_url_parse(url, &u, why, sizeof why);
        kind = u.kind;
        svc_store_url_clear(&u);
        if (st != SVC_OK) {
            svc_logf(SVC_LOG_ERROR, "rate limit store URL refused: %s", why);
            return st;
        }
    }
    if (opts->store_timeout_ms < 0) {
        svc_logf(SVC_LOG_ERROR, "rate limit store_timeout_ms must not be negative");
        return SVC_EINVAL;
    }
    svc__rl_store *store = NULL;
    if (kind == SVC_STORE_MEMORY) {
        st = svc__rl_store_memory_new(&store, opts->max_keys ? opts->max_keys : DEFAULT_MAX_KEYS);
    } else if (kind == SVC_STORE_REDIS) {
        int64_t to = opts->store_timeout_ms ? opts->store_timeout_ms : 500;
        st = svc__rl_store_redis_new(&store, opts->redis, url, to, opts->metrics, why,
                                     sizeof why);
    } else {
        snprintf(why, sizeof why, "the %s store is not available for rate limits",
                 svc_store_kind_name(kind));
        st = SVC_ENOTSUP;
    }
    if (st != SVC_OK) {
        svc_logf(SVC_LOG_ERROR, "rate limit store not opened: %s",
                 why[0] ? why : svc_strerror(st));
        return st;
    }

    svc_ratelimit *rl = svc__rl_calloc_aligned(sizeof *rl);
    rl_table *t = rl ? svc__calloc(1, sizeof *t) : NULL;
    if (!t || !table_index(t)) {
        table_free(t);
        svc__rl_free_aligned(rl);
        store->ops->destroy(store);
        return SVC_ENOMEM;
    }
    rl->store = store;
    atomic_init(&rl->table, t);
    svc__rl_readers_init(&rl->readers);
    atomic_init(&rl->store_errors, 0);
    atomic_init(&rl->last_log_ns, INT64_MIN);
    atomic_init(&rl->gen, 0);
    rl->id = atomic_fetch_add(&next_rl_id, 1);
    pthread_mutex_init(&rl->wmu, NULL);
    svc__err_init(&rl->err);
    rl->clock = opts->clock;
    rl->fail_open = opts->fail_open ? 1 : 0;
    if (opts->metrics) {
        static const char *const dl[] = {"policy", "result", NULL};
        static const char *const el[] = {"store", NULL};
        if (svc_metrics_counter(opts->metrics, "ratelimit_decisions_total",
                                "Rate limit decisions by policy and result", dl,
                                &rl->m_decisions) != SVC_OK ||
            svc_metrics_counter(opts->metrics, "ratelimit_store_errors_total",
                                "Failed rate limit store calls", el,
                                &rl->m_store_errors) != SVC_OK) {
            svc_logf(SVC_LOG_WARN, "rate limit metrics not registered: %s",
                     svc_metrics_errmsg(opts->metrics));
            rl->m_decisions = NULL;
            rl->m_store_errors = NULL;
        }
    }
    *out = rl;
    return SVC_OK;
}

void svc_ratelimit_free(svc_ratelimit *rl)
{
    if (!rl)
        return;
    table_free(atomic_load(&rl->table));
    rl->store->ops->destroy(rl->store);
#if SVC__RL_HAVE_TZ
    for (size_t i = 0; i < rl->nzones; i++)
        svc_tz_free(rl->zones[i]);
#endif
    svc_free(rl->zones);
    pthread_mutex_destroy(&rl->wmu);
    svc__err_destroy(&rl->err);
    svc__rl_free_aligned(rl);
}

void svc__ratelimit_set_store(svc_ratelimit *rl, svc__rl_store *s)
{
    rl->store->ops->destroy(rl->store);
    rl->store = s;
}

size_t svc__ratelimit_zone_count(svc_ratelimit *rl)
{
    pthread_mutex_lock(&rl->wmu);
    size_t n = rl->nzones;
    pthread_mutex_unlock(&rl->wmu);
    return n;
}

const char *svc_ratelimit_errmsg(svc_ratelimit *rl)
{
    return rl ? svc__err_get(&rl->err) : "";
}

/* ---- writers ---------------------------------------------------------------- */

static svc_status put_policy(svc_ratelimit *rl, rl_table *t, const rl_pol *p)
{
    for (size_t i = 0; i < t->npol; i++) {
        if (strcmp(t->pol[i].name, p->name) == 0) {
            t->pol[i] = *p;
            return SVC_OK;
        }
    }
    if (t->npol >= SVC_RATELIMIT_MAX_POLICIES)
        return svc__err_set(&rl->err, SVC_ERANGE, "more than %d policies",
                            SVC_RATELIMIT_MAX_POLICIES);
    t->pol[t->npol++] = *p;
    return SVC_OK;
}

static svc_status put_plan(svc_ratelimit *rl, rl_table *t, const rl_plan *p)
{
    rl_plan *old = table_plan(t, p->name);
    if (old) {
        *old = *p;
        return SVC_OK;
    }
    if (t->nplans >= SVC_RATELIMIT_MAX_POLICIES)
        return svc__err_set(&rl->err, SVC_ERANGE, "more than %d plans",
                            SVC_RATELIMIT_MAX_POLICIES);
    t->plans[t->nplans++] = *p;
    return SVC_OK;
}

static svc_status put_quota(svc_ratelimit *rl, rl_table *t, const rl_quota *q)
{
    rl_quota *old = table_quota(t, q->name);
    if (old) {
        *old = *q;
        return SVC_OK;
    }
    if (t->nquotas >= SVC_RATELIMIT_MAX_POLICIES)
        return svc__err_set(&rl->err, SVC_ERANGE, "more than %d quotas",
                            SVC_RATELIMIT_MAX_POLICIES);
    t->quotas[t->nquotas++] = *q;
    return SVC_OK;
}

/* Edits go through one of these: clone under wmu, change, index, publish. */
typedef svc_status (*edit_fn)(svc_ratelimit *rl, rl_table *t, const void *arg);

static svc_status edit(svc_ratelimit *rl, edit_fn fn, const void *arg)
{
    pthread_mutex_lock(&rl->wmu);
    rl_table *t = table_clone(atomic_load(&rl->table));
    svc_status st = t ? fn(rl, t, arg) : SVC_ENOMEM;
    if (st == SVC_OK && !table_index(t))
        st = SVC_ENOMEM;
    if (st == SVC_OK) {
        publish(rl, t);
        rl->nzones += rl->npending; /* zones the new table uses */
    } else {
        table_free(t);
#if SVC__RL_HAVE_TZ
        for (size_t i = 0; i < rl->npending; i++)
            svc_tz_free(rl->zones[rl->nzones + i]);
#endif
    }
    rl->npending = 0;
    pthread_mutex_unlock(&rl->wmu);
    return st;
}

static svc_status edit_put_policy(svc_ratelimit *rl, rl_table *t, const void *arg)
{
    return put_policy(rl, t, arg);
}

svc_status svc_ratelimit_policy_add(svc_ratelimit *rl, const svc_ratelimit_policy *p)
{
    rl_pol np;
    svc_status st = make_policy(rl, p, &np);
    if (st != SVC_OK)
        return st;
    return edit(rl, edit_put_policy, &np);
}

static svc_status edit_remove_policy(svc_ratelimit *rl, rl_table *t, const void *arg)
{
    const char *name = arg;
    for (size_t i = 0; i < t->npol; i++) {
        if (strcmp(t->pol[i].name, name) == 0) {
            memmove(&t->pol[i], &t->pol[i + 1], (t->npol - i - 1) * sizeof *t->pol);
            t->npol--;
            return SVC_OK;
        }
    }
    return svc__err_set(&rl->err, SVC_ENOTFOUND, "no policy named '%.80s'", name);
}

svc_status svc_ratelimit_policy_remove(svc_ratelimit *rl, const char *name)
{
    svc_status st = check_name(rl, "policy", name);
    return st == SVC_OK ? edit(rl, edit_remove_policy, name) : st;
}

svc_status svc_ratelimit_policy_get(svc_ratelimit *rl, const char *name, svc_ratelimit_policy *out)
{
    svc_status st = check_name(rl, "policy", name);
    if (st != SVC_OK)
        return st;
    unsigned s;
    const rl_table *t = read_begin(rl, &s);
    const rl_pol *p = table_policy(t, name);
    if (p) {
        memset(out, 0, sizeof *out);
        out->name = name;
        out->algorithm = p->alg;
        out->limit = p->limit;
        out->period_ms = p->period_ms;
        out->burst = p->alg == SVC_RL_GCRA ? p->burst : 0;
    }
    read_end(rl, s);
    return p ? SVC_OK : SVC_ENOTFOUND;
}

static svc_status make_plan(svc_ratelimit *rl, const char *plan, const char *const *policies,
                            size_t n, rl_plan *out)
{
    svc_status st = check_name(rl, "plan", plan);
    if (st != SVC_OK)
        return st;
    if (n < 1 || n > SVC_RATELIMIT_MAX_PLAN_POLICIES)
        return svc__err_set(&rl->err, SVC_EINVAL, "plan '%s': needs 1..%d policies, got %zu",
                            plan, SVC_RATELIMIT_MAX_PLAN_POLICIES, n);
    memset(out, 0, sizeof *out);
    copy_name(out->name, plan);
    for (size_t i = 0; i < n; i++) {
        if (!policies[i] || !valid_name(policies[i]))
            return svc__err_set(&rl->err, SVC_EINVAL,
                                "plan '%s': policy name '%.80s' is not a valid name", plan,
                                policies[i] ? policies[i] : "(null)");
        copy_name(out->pol[i], policies[i]);
    }
    out->n = n;
    return SVC_OK;
}

static svc_status edit_put_plan(svc_ratelimit *rl, rl_table *t, const void *arg)
{
    return put_plan(rl, t, arg);
}

svc_status svc_ratelimit_plan_add(svc_ratelimit *rl, const char *plan,
                                  const char *const *policies, size_t n)
{
    rl_plan p;
    svc_status st = make_plan(rl, plan, policies, n, &p);
    if (st != SVC_OK)
        return st;
    return edit(rl, edit_put_plan, &p);
}

/* Finds or loads the zone `name` (caller holds wmu, inside edit()). A zone
 * loaded here is pending: edit() keeps it when the edit commits and frees it
 * otherwise. */
static svc_status zone_get(svc_ratelimit *rl, const char *name, void **out)
{
    *out = NULL;
    if (!name || !*name || strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0)
        return SVC_OK;
#if SVC__RL_HAVE_TZ
    size_t held = rl->nzones + rl->npending;
    for (size_t i = 0; i < held; i++) {
        if (strcmp(svc_tz_name(rl->zones[i]), name) == 0) {
            *out = rl->zones[i];
            return SVC_OK;
        }
    }
    if (held >= SVC_RATELIMIT_MAX_POLICIES)
        return svc__err_set(&rl->err, SVC_ERANGE, "more than %d time zones",
                            SVC_RATELIMIT_MAX_POLICIES);
    void **nz = svc_realloc(rl->zones, (held + 1) * sizeof *nz);
    if (!nz)
        return SVC_ENOMEM;
    rl->zones = nz;
    svc_tz *tz = NULL;
    char why[256] = "";
    svc_status st = svc_tz_load_opts(&tz, name, NULL, why, sizeof why);
    if (st != SVC_OK)
        return svc__err_set(&rl->err, st, "quota time zone: %s", why);
    rl->zones[held] = tz;
    rl->npending++;
    *out = tz;
    return SVC_OK;
#else
    return svc__err_set(&rl->err, SVC_ENOTSUP,
                        "quota time zone '%.80s': only UTC is available in this build", name);
#endif
}

typedef struct quota_arg {
    const svc_quota *q;
} quota_arg;

static svc_status make_quota(svc_ratelimit *rl, const svc_quota *q, rl_quota *out)
{
    svc_status st = check_name(rl, "quota", q->name);
    if (st != SVC_OK)
        return st;
    if (q->period != SVC_QUOTA_DAY && q->period != SVC_QUOTA_MONTH)
        return svc__err_set(&rl->err, SVC_EINVAL, "quota '%s': period must be day or month",
                            q->name);
    if (q->limit > MAX_QUOTA_LIMIT)
        return svc__err_set(&rl->err, SVC_EINVAL,
                            "quota '%s': limit must be at most 2^53 (9007199254740992), got "
                            "%llu",
                            q->name, (unsigned long long)q->limit);
    memset(out, 0, sizeof *out);
    copy_name(out->name, q->name);
    out->period = q->period;
    out->limit = q->limit;
    return zone_get(rl, q->tz, &out->tz);
}

static svc_status edit_put_quota(svc_ratelimit *rl, rl_table *t, const void *arg)
{
    const quota_arg *qa = arg;
    rl_quota nq;
    svc_status st = make_quota(rl, qa->q, &nq);
    return st == SVC_OK ? put_quota(rl, t, &nq) : st;
}

svc_status svc_ratelimit_quota_add(svc_ratelimit *rl, const svc_quota *q)
{
    quota_arg qa = {q};
    return edit(rl, edit_put_quota, &qa);
}

/* ---- configuration ---------------------------------------------------------- */

/* A period: a duration of core's grammar (core/parse.h: "500ms", "1m",
 * "1h30m", a bare integer = ms), positive and at most MAX_PERIOD_MS. */
static bool parse_period(const char *s, int64_t *out)
{
    int64_t v;
    if (svc__parse_duration_ms(s, &v) != SVC_OK || v <= 0 || v > MAX_PERIOD_MS)
        return false;
    *out = v;
    return true;
}

/* A count: a non-negative integer of core's grammar, written with digits. */
static bool parse_u64(const char *s, uint64_t *out)
{
    int64_t v;
    if (!isdigit((unsigned char)*s) || svc__parse_int(s, &v) != SVC_OK)
        return false;
    *out = (uint64_t)v;
    return true;
}

/* Splits `s` (modified) into at most `max` whitespace-separated words. */
static size_t words(char *s, char **w, size_t max)
{
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(s, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (n == max)
            return max + 1;
        w[n++] = tok;
    }
    return n;
}

static svc_status bad_entry(svc_ratelimit *rl, const char *key, const char *entry,
                            const char *why)
{
    return svc__err_set(&rl->err, SVC_ECONFIG, "config key '%s': entry '%.120s': %s", key,
                        entry, why);
}

static svc_status cfg_policy(svc_ratelimit *rl, rl_table *t, const char *entry)
{
    const char *key = "ratelimit.policies";
    char buf[256];
    if (strlen(entry) >= sizeof buf)
        return bad_entry(rl, key, entry, "too long");
    strcpy(buf, entry);
    char *w[6];
    size_t n = words(buf, w, 5);
    if (n != 3 && n != 5)
        return bad_entry(rl, key, entry,
                         "expected '<name> <algorithm> <limit>/<period> [burst <n>]'");
    svc_ratelimit_policy p = {.name = w[0]};
    if (svc_ratelimit_algorithm_parse(w[1], &p.algorithm) != SVC_OK)
        return bad_entry(rl, key, entry,
                         "algorithm must be gcra, fixed_window or sliding_window");
    char *slash = strchr(w[2], '/');
    if (!slash)
        return bad_entry(rl, key, entry, "rate must be <limit>/<period>, e.g. 100/1m");
    *slash = '\0';
    if (!parse_u64(w[2], &p.limit) || !parse_period(slash + 1, &p.period_ms))
        return bad_entry(rl, key, entry, "rate must be <limit>/<period>, e.g. 100/1m");
    if (n == 5 && (strcmp(w[3], "burst") != 0 || !parse_u64(w[4], &p.burst)))
        return bad_entry(rl, key, entry, "expected 'burst <n>' after the rate");
    rl_pol np;
    svc_status st = make_policy(rl, &p, &np);
    if (st != SVC_OK)
        return bad_entry(rl, key, entry, svc_ratelimit_errmsg(rl));
    np.cfg = true;
    return put_policy(rl, t, &np);
}

static svc_status cfg_plan(svc_ratelimit *rl, rl_table *t, const char *entry)
{
    const char *key = "ratelimit.plans";
    char buf[1280];
    if (strlen(entry) >= sizeof buf)
        return bad_entry(rl, key, entry, "too long");
    strcpy(buf, entry);
    char *colon = strchr(buf, ':');
    if (!colon)
        return bad_entry(rl, key, entry, "expected '<plan>: <policy> [<policy> ...]'");
    *colon = '\0';
    char *name = buf;
    while (*name == ' ' || *name == '\t')
        name++;
    for (char *e = colon - 1; e >= name && (*e == ' ' || *e == '\t'); e--)
        *e = '\0';
    char *w[SVC_RATELIMIT_MAX_PLAN_POLICIES + 1];
    size_t n = words(colon + 1, w, SVC_RATELIMIT_MAX_PLAN_POLICIES);
    rl_plan p;
    svc_status st = make_plan(rl, name, (const char *const *)w,
                              n > SVC_RATELIMIT_MAX_PLAN_POLICIES ? 0 : n, &p);
    if (st != SVC_OK)
        return bad_entry(rl, key, entry, svc_ratelimit_errmsg(rl));
    p.cfg = true;
    return put_plan(rl, t, &p);
}

static svc_status cfg_quota(svc_ratelimit *rl, rl_table *t, const char *entry)
{
    const char *key = "ratelimit.quotas";
    char buf[256];
    if (strlen(entry) >= sizeof buf)
        return bad_entry(rl, key, entry, "too long");
    strcpy(buf, entry);
    char *w[5];
    size_t n = words(buf, w, 4);
    if (n != 3 && n != 4)
        return bad_entry(rl, key, entry, "expected '<name> day|month <limit> [<time zone>]'");
    svc_quota q = {.name = w[0], .tz = n == 4 ? w[3] : NULL};
    if (strcasecmp(w[1], "day") == 0)
        q.period = SVC_QUOTA_DAY;
    else if (strcasecmp(w[1], "month") == 0)
        q.period = SVC_QUOTA_MONTH;
    else
        return bad_entry(rl, key, entry, "period must be day or month");
    if (!parse_u64(w[2], &q.limit))
        return bad_entry(rl, key, entry, "limit must be a non-negative integer");
    rl_quota nq;
    svc_status st = make_quota(rl, &q, &nq);
    if (st != SVC_OK) {
        bad_entry(rl, key, entry, svc_ratelimit_errmsg(rl));
        return st == SVC_ENOMEM ? st : (st == SVC_ENOTSUP ? st : SVC_ECONFIG);
    }
    nq.cfg = true;
    return put_quota(rl, t, &nq);
}

static svc_status cfg_list(svc_ratelimit *rl, rl_table *t, const svc_config *cfg,
                           const char *key,
                           svc_status (*fn)(svc_ratelimit *, rl_table *, const char *))
{
    char **items = NULL;
    size_t n = 0;
    svc_status st = svc_config_get_strings(cfg, key, &items, &n);
    if (st != SVC_OK)
        return svc__err_set(&rl->err, st, "%s", svc_config_errmsg(cfg));
    for (size_t i = 0; i < n && st == SVC_OK; i++)
        st = fn(rl, t, items[i]);
    svc_config_strings_free(items, n);
    return st;
}

/* Removes, keeping the order, the `n` entries of `size` bytes at `v` whose
 * bool at `flag` is set; returns how many are left. */
static size_t drop_cfg(void *v, size_t n, size_t size, size_t flag)
{
    unsigned char *p = v;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        bool cfg;
        memcpy(&cfg, p + i * size + flag, sizeof cfg);
        if (!cfg) {
            if (kept != i)
                memmove(p + kept * size, p + i * size, size);
            kept++;
        }
    }
    return kept;
}

static svc_status edit_config(svc_ratelimit *rl, rl_table *t, const void *arg)
{
    const svc_config *cfg = arg;
    /* room for everything the lists may add */
    rl_table *grown = t;
    svc_status st = SVC_OK;
    size_t room = SVC_RATELIMIT_MAX_POLICIES;
    rl_pol *pol = svc_realloc(grown->pol, (room + 1) * sizeof *pol);
    if (!pol)
        return SVC_ENOMEM;
    grown->pol = pol;
    rl_plan *plans = svc_realloc(grown->plans, (room + 1) * sizeof *plans);
    if (!plans)
        return SVC_ENOMEM;
    grown->plans = plans;
    rl_quota *quotas = svc_realloc(grown->quotas, (room + 1) * sizeof *quotas);
    if (!quotas)
        return SVC_ENOMEM;
    grown->quotas = quotas;
    /* the configuration replaces what the previous load defined; entries
     * added from code stay */
    t->npol = drop_cfg(t->pol, t->npol, sizeof *t->pol, offsetof(rl_pol, cfg));
    t->nplans = drop_cfg(t->plans, t->nplans, sizeof *t->plans, offsetof(rl_plan, cfg));
    t->nquotas = drop_cfg(t->quotas, t->nquotas, sizeof *t->quotas, offsetof(rl_quota, cfg));
    st = cfg_list(rl, t, cfg, "ratelimit.policies", cfg_policy);
    if (st == SVC_OK)
        st = cfg_list(rl, t, cfg, "ratelimit.plans", cfg_plan);
    if (st == SVC_OK)
        st = cfg_list(rl, t, cfg, "ratelimit.quotas", cfg_quota);
    return st;
}

svc_status svc_ratelimit_load_config(svc_ratelimit *rl, const svc_config *cfg)
{
    return edit(rl, edit_config, cfg);
}

/* ---- checks ------------------------------------------------------------------ */

static void store_failed(svc_ratelimit *rl, const char *what, svc_status st)
{
    atomic_fetch_add(&rl->store_errors, 1);
    if (rl->m_store_errors) {
        const char *lv[] = {rl->store->ops->name};
        svc_counter_inc(rl->m_store_errors, lv);
    }
    /* one line per LOG_EVERY_NS at most: a dead store must not flood the log */
    int64_t now = svc_clock_mono_ns(rl->clock);
    int64_t last = atomic_load(&rl->last_log_ns);
    if ((last == INT64_MIN || now - last >= LOG_EVERY_NS) &&
        atomic_compare_exchange_strong(&rl->last_log_ns, &last, now)) {
        svc_log_field f[] = {
            svc_log_field_str("store", rl->store->ops->name),
            svc_log_field_str("for", what),
            svc_log_field_str("error", svc_status_name(st)),
            svc_log_field_str("detail", svc__err_get(&rl->err)),
            svc_log_field_bool("fail_open", rl->fail_open),
        };
        svc_log_kv(SVC_LOG_WARN, "rate limit store failed", f, SVC__ARRAY_LEN(f));
    }
}

/* The wall time of a check, read once per check. The system clock is read
 * directly (no indirect call); an injected clock goes through svc_clock. */
static int64_t wall_now(const svc_ratelimit *rl)
{
    if (rl->clock)
        return svc_clock_wall_ns(rl->clock);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * SVC__NS_PER_SEC + ts.tv_nsec;
}

static void count_decision(svc_ratelimit *rl, const char *policy, const char *result)
{
    if (rl->m_decisions) {
        const char *lv[] = {policy, result};
        svc_counter_inc(rl->m_decisions, lv);
    }
}

static size_t make_key(char *buf, const char *prefix, const char *name, const char *key,
                       size_t klen)
{
    size_t pl = strlen(prefix), nl = strlen(name);
    memcpy(buf, prefix, pl);
    memcpy(buf + pl, name, nl);
    buf[pl + nl] = '\x1f';
    memcpy(buf + pl + nl + 1, key, klen);
    return pl + nl + 1 + klen;
}

/* Decisions are counted as result="allowed", `denied` (the label of a
 * denial: "denied", or "shadow_denied" for a dry run), "fail_open" or
 * "fail_closed"; peeks (!commit) are not counted. */
static svc_status run_policy(svc_ratelimit *rl, const rl_pol *p, const char *key, size_t klen,
                             uint64_t cost, bool commit, int64_t now, const char *denied,
                             svc_ratelimit_result *out)
{
    char kb[KEYBUF_CAP];
    svc__rl_req req = {
        .kind = p->alg == SVC_RL_GCRA          ? SVC__RL_GCRA
                : p->alg == SVC_RL_FIXED_WINDOW ? SVC__RL_FIXED
                                                : SVC__RL_SLIDING,
        .limit = p->limit,
        .burst = p->burst,
        .period_ns = p->period_ms * SVC__NS_PER_MS,
        .interval_ns = p->interval_ns,
        .cost = cost,
        .commit = commit,
        .now = now,
        .key = kb,
    };
    req.klen = make_key(kb, "", p->name, key, klen);
    req.name = p->name;
    req.ukey = key;
    memset(out, 0, sizeof *out);
    memcpy(out->policy, p->name, sizeof out->policy);
    out->limit = p->burst; /* == limit for windows */
    out->period_ms = p->period_ms;
    out->quota = p->limit;
    svc__rl_out o;
    svc_status st = rl->store->ops->apply(rl->store, &req, &o, &rl->err);
    if (st != SVC_OK) {
        store_failed(rl, p->name, st);
        out->store_error = 1;
        out->remaining = out->limit;
        if (rl->fail_open) {
            out->allowed = 1;
            if (commit)
                count_decision(rl, p->name, "fail_open");
            return SVC_OK;
        }
        if (commit)
            count_decision(rl, p->name, "fail_closed");
        return st;
    }
    out->allowed = o.allowed;
    out->remaining = o.remaining;
    out->reset_ms = ns_to_ms_up(o.reset_ns);
    out->retry_after_ms = o.allowed ? 0 : ns_to_ms_up(o.retry_ns);
    if (commit)
        count_decision(rl, p->name, o.allowed ? "allowed" : denied);
    return SVC_OK;
}

static svc_status check_key(svc_ratelimit *rl, const char *key, size_t *klen)
{
    *klen = strlen(key);
    if (*klen == 0 || *klen > SVC_RATELIMIT_MAX_KEY)
        return svc__err_set(&rl->err, SVC_EINVAL, "key must be 1..%d bytes, got %zu",
                            SVC_RATELIMIT_MAX_KEY, *klen);
    return SVC_OK;
}

/* Each thread remembers the last few policies it used, tagged with the
 * limiter's id and table generation; a hit costs one atomic load (of a line
 * that only changes when policies do) instead of two read-modify-writes. A
 * tag is the generation read before the table, so a cached copy is never
 * older than the table of its tag. */
#define TL_CACHE 4
typedef struct tl_pol {
    uint64_t rl_id;
    uint64_t gen;
    rl_pol pol;
} tl_pol;
static _Thread_local tl_pol tl_cache[TL_CACHE];
static _Thread_local unsigned tl_cache_next;
static bool find_policy(svc_ratelimit *rl, const char *name, rl_pol *out)
{
    uint64_t gen = atomic_load(&rl->gen);
    for (unsigned i = 0; i < TL_CACHE; i++) {
        tl_pol *c = &tl_cache[i];
        if (c->rl_id == rl->id && c->gen == gen && strcmp(c->pol.name, name) == 0) {
            *out = c->pol;
            return true;
        }
    }
    unsigned s;
    const rl_table *t = read_begin(rl, &s);
    const rl_pol *p = table_policy(t, name);
    if (p)
        *out = *p;
    read_end(rl, s);
    if (!p)
        return false;
    tl_pol *c = &tl_cache[tl_cache_next++ % TL_CACHE];
    c->rl_id = rl->id;
    c->gen = gen;
    c->pol = *out;
    return true;
}

static svc_status check_or_peek(svc_ratelimit *rl, const char *policy, const char *key,
                                uint64_t cost, svc_ratelimit_result *out, bool commit,
                                const char *denied)
{
    if (!rl || !policy || !key || !out)
        return SVC_EINVAL;
    size_t klen;
    svc_status st = check_key(rl, key, &klen);
    if (st != SVC_OK) {
        memset(out, 0, sizeof *out);
        return st;
    }
    rl_pol p;
    if (!find_policy(rl, policy, &p)) {
        memset(out, 0, sizeof *out);
        return svc__err_set(&rl->err, SVC_ENOTFOUND, "no policy named '%.80s'", policy);
    }
    return run_policy(rl, &p, key, klen, cost, commit, wall_now(rl), denied,
                      out); /* fills *out */
}

svc_status svc_ratelimit_check(svc_ratelimit *rl, const char *policy, const char *key,
                               uint64_t cost, svc_ratelimit_result *out)
{
    return check_or_peek(rl, policy, key, cost, out, true, "denied");
}

svc_status svc_ratelimit_peek(svc_ratelimit *rl, const char *policy, const char *key,
                              uint64_t cost, svc_ratelimit_result *out)
{
    return check_or_peek(rl, policy, key, cost, out, false, "denied");
}

/* Retry a (ms, -1 = never) is later than retry b. */
static bool waits_longer(int64_t a, int64_t b)
{
    return b >= 0 && (a < 0 || a > b);
}

static svc_status check_plan(svc_ratelimit *rl, const char *plan, const char *key,
                             uint64_t cost, const char *denied, svc_ratelimit_result *out)
{
    memset(out, 0, sizeof *out);
    size_t klen;
    svc_status st = check_key(rl, key, &klen);
    if (st != SVC_OK)
        return st;
    rl_pol pols[SVC_RATELIMIT_MAX_PLAN_POLICIES];
    size_t n = 0;
    unsigned s;
    const rl_table *t = read_begin(rl, &s);
    const rl_plan *pl = table_plan(t, plan);
    if (pl) {
        for (size_t i = 0; i < pl->n; i++) {
            const rl_pol *p = table_policy(t, pl->pol[i]);
            if (p)
                pols[n++] = *p;
        }
    }
    read_end(rl, s);
    if (!pl)
        return svc__err_set(&rl->err, SVC_ENOTFOUND, "no plan named '%.80s'", plan);
    if (n == 0)
        return svc__err_set(&rl->err, SVC_ENOTFOUND, "plan '%.80s' names no known policy",
                            plan);
    const int64_t now = wall_now(rl); /* one instant for every policy of the plan */
    /* 1. peek every policy: a request any of them denies spends nothing, and
     *    waits for the longest of their retries (-1, never, is the longest) */
    bool any_denies = false;
    for (size_t i = 0; i < n; i++) {
        svc_ratelimit_result r;
        st = run_policy(rl, &pols[i], key, klen, cost, false, now, denied, &r);
        if (st != SVC_OK) { /* the store failed, and fail_open is off */
            *out = r;
            count_decision(rl, r.policy, "fail_closed");
            return st;
        }
        if (!r.allowed &&
            (!any_denies || waits_longer(r.retry_after_ms, out->retry_after_ms))) {
            *out = r;
            any_denies = true;
        }
    }
    if (any_denies) {
        count_decision(rl, out->policy, denied);
        return SVC_OK;
    }
    /* 2. spend on every policy. Another request on the same key may spend
     *    between the peeks and here; then a policy can deny now, after the
     *    ones before it spent: that denial is reported as it stands (its
     *    own retry), and the units spent before it stay spent. */
    bool have = false;
    for (size_t i = 0; i < n; i++) {
        svc_ratelimit_result r;
        st = run_policy(rl, &pols[i], key, klen, cost, true, now, denied, &r);
        if (st != SVC_OK || !r.allowed) {
            *out = r;
            return st;
        }
        if (!have || r.remaining < out->remaining ||
            (r.store_error && !out->store_error)) {
            *out = r;
            have = true;
        }
    }
    return SVC_OK;
}

svc_status svc_ratelimit_check_plan(svc_ratelimit *rl, const char *plan, const char *key,
                                    uint64_t cost, svc_ratelimit_result *out)
{
    return check_plan(rl, plan, key, cost, "denied", out);
}

svc_status svc__ratelimit_check_named(svc_ratelimit *rl, const char *name, const char *key,
                                      uint64_t cost, bool shadow, svc_ratelimit_result *out)
{
    const char *denied = shadow ? "shadow_denied" : "denied";
    svc_status st = check_or_peek(rl, name, key, cost, out, true, denied);
    return st == SVC_ENOTFOUND ? check_plan(rl, name, key, cost, denied, out) : st;
}

/* ---- quotas ------------------------------------------------------------------ */

static svc_status quota_window(svc_ratelimit *rl, const rl_quota *q, int64_t now_ns,
                               int64_t *ws, int64_t *we)
{
    int64_t s = now_ns / SVC__NS_PER_SEC - (now_ns % SVC__NS_PER_SEC < 0);
    int64_t a = 0, b = 0;
    if (q->tz) {
#if SVC__RL_HAVE_TZ
        svc_status st = q->period == SVC_QUOTA_DAY ? svc_tz_day_range(q->tz, s, &a, &b)
                                                   : svc_tz_month_range(q->tz, s, &a, &b);
        if (st != SVC_OK)
            return svc__err_set(&rl->err, st, "quota '%s': no calendar window for now",
                                q->name);
#else
        return SVC_EINTERNAL;
#endif
    } else {
        int64_t day = s / 86400 - (s % 86400 < 0);
        if (q->period == SVC_QUOTA_DAY) {
            a = day * 86400;
            b = a + 86400;
        } else {
            int64_t y;
            int m;
            svc__civil_from_days(day, &y, &m, NULL);
            a = svc__days_from_civil(y, m, 1) * 86400;
            b = svc__days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) * 86400;
        }
    }
    *ws = a * SVC__NS_PER_SEC;
    *we = b * SVC__NS_PER_SEC;
    return SVC_OK;
}

/* store_error took one of the two reserved words: the struct keeps the
 * size (and every other offset) of the release without it */
typedef struct quota_usage_before_store_error {
    int allowed;
    uint64_t used, limit, remaining;
    int64_t window_start_ms, window_end_ms, reset_ms;
    void *reserved[2];
} quota_usage_before_store_error;
_Static_assert(sizeof(svc_quota_usage_info) == sizeof(quota_usage_before_store_error),
               "svc_quota_usage_info changed size");

static svc_status quota_run(svc_ratelimit *rl, const char *tenant, const char *quota,
                            uint64_t amount, bool commit, svc_quota_usage_info *out)
{
    if (!rl || !tenant || !quota || !out)
        return SVC_EINVAL;
    memset(out, 0, sizeof *out);
    size_t klen;
    svc_status st = check_key(rl, tenant, &klen);
    if (st != SVC_OK)
        return st;
    unsigned s;
    const rl_table *t = read_begin(rl, &s);
    const rl_quota *qp = table_quota(t, quota);
    rl_quota q;
    if (qp)
        q = *qp;
    read_end(rl, s);
    if (!qp)
        return svc__err_set(&rl->err, SVC_ENOTFOUND, "no quota named '%.80s'", quota);
    int64_t now = wall_now(rl);
    int64_t ws = 0, we = 0;
    st = quota_window(rl, &q, now, &ws, &we);
    if (st != SVC_OK)
        return st;
    /* one key per window: instances whose clocks straddle a boundary count
     * in the windows they each see, never in one another's */
    char kb[KEYBUF_CAP], prefix[32];
    snprintf(prefix, sizeof prefix, "\x1eq%lld:", (long long)(ws / SVC__NS_PER_MS));
    svc__rl_req req = {
        .kind = SVC__RL_QUOTA,
        .limit = q.limit,
        .win_start = ws,
        .win_end = we,
        .cost = amount,
        .commit = commit,
        .now = now,
        .key = kb,
    };
    req.klen = make_key(kb, prefix, q.name, tenant, klen);
    req.name = q.name;
    req.ukey = tenant;
    out->limit = q.limit;
    out->window_start_ms = ws / SVC__NS_PER_MS;
    out->window_end_ms = we / SVC__NS_PER_MS;
    out->reset_ms = ns_to_ms_up(we - now);
    svc__rl_out o;
    st = rl->store->ops->apply(rl->store, &req, &o, &rl->err);
    if (st != SVC_OK) {
        store_failed(rl, q.name, st);
        out->store_error = 1;
        out->allowed = commit && rl->fail_open;
        return out->allowed ? SVC_OK : st;
    }
    out->allowed = commit ? o.allowed : 1;
    /* a read reports the window as it stands, not as it would be after */
    out->used = commit ? o.used : (o.allowed ? o.used - amount : o.used);
    out->remaining = q.limit == 0           ? UINT64_MAX
                     : out->used < q.limit ? q.limit - out->used
                                           : 0;
    return SVC_OK;
}

svc_status svc_quota_consume(svc_ratelimit *rl, const char *tenant, const char *quota,
                             uint64_t amount, svc_quota_usage_info *out)
{
    return quota_run(rl, tenant, quota, amount, true, out);
}

svc_status svc_quota_usage(svc_ratelimit *rl, const char *tenant, const char *quota,
                           svc_quota_usage_info *out)
{
    return quota_run(rl, tenant, quota, 0, false, out);
}

/* ---- introspection ------------------------------------------------------------ */

svc_status svc_ratelimit_stats_get(svc_ratelimit *rl, svc_ratelimit_stats *out)
{
    svc__rl_store_stats ss;
    rl->store->ops->stats(rl->store, &ss);
    memset(out, 0, sizeof *out);
    out->keys = ss.keys;
    out->max_keys = ss.max_keys;
    out->evictions = ss.evictions;
    out->expired = ss.expired;
    out->store_errors = atomic_load(&rl->store_errors);
    return SVC_OK;
}

const char *svc_ratelimit_algorithm_name(svc_ratelimit_algorithm a)
{
    switch (a) {
    case SVC_RL_GCRA:
        return "gcra";
    case SVC_RL_FIXED_WINDOW:
        return "fixed_window";
    case SVC_RL_SLIDING_WINDOW:
        return "sliding_window";
    }
    return "unknown";
}

svc_status svc_ratelimit_algorithm_parse(const char *name, svc_ratelimit_algorithm *out)
{
    if (strcasecmp(name, "gcra") == 0)
        *out = SVC_RL_GCRA;
    else if (strcasecmp(name, "fixed_window") == 0 || strcasecmp(name, "fixed") == 0)
        *out = SVC_RL_FIXED_WINDOW;
    else if (strcasecmp(name, "sliding_window") == 0 || strcasecmp(name, "sliding") == 0)
        *out = SVC_RL_SLIDING_WINDOW;
    else
        return SVC_EINVAL;
    return SVC_OK;
}
