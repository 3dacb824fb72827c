/*
 * policy.c - the policy table: names, validation, and the copy-and-swap
 * edits that add, replace and remove policies, plans and quotas (rl.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "svcinfra/log.h"

#include "rl.h"

#if SVC__RL_HAVE_TZ
#include "svcinfra/tz.h"
#endif

/* ---- names -------------------------------------------------------------------- */

bool svc__rl_valid_name(const char *s)
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

svc_status svc__rl_check_name(svc_ratelimit *rl, const char *what, const char *name)
{
    if (!name || !svc__rl_valid_name(name))
        return svc__err_set(&rl->err, SVC_EINVAL,
                            "%s name '%.80s' must be 1-%d letters, digits or _-.:", what,
                            name ? name : "(null)", SVC_RATELIMIT_MAX_NAME);
    return SVC_OK;
}

void svc__rl_copy_name(char dst[NAME_CAP], const char *src)
{
    size_t n = strlen(src);
    if (n > SVC_RATELIMIT_MAX_NAME)
        n = SVC_RATELIMIT_MAX_NAME;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ---- the table ------------------------------------------------------------ */

void svc__rl_table_free(svc__rl_table *t)
{
    if (!t)
        return;
    svc_free(t->pol);
    svc_free(t->idx);
    svc_free(t->plans);
    svc_free(t->quotas);
    svc_free(t);
}

svc__rl_table *svc__rl_table_clone(const svc__rl_table *o)
{
    svc__rl_table *t = svc__calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->pol = svc__calloc(o->npol + 1, sizeof *t->pol);
    t->plans = svc__calloc(o->nplans + 1, sizeof *t->plans);
    t->quotas = svc__calloc(o->nquotas + 1, sizeof *t->quotas);
    if (!t->pol || !t->plans || !t->quotas) {
        svc__rl_table_free(t);
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

bool svc__rl_table_index(svc__rl_table *t)
{
    size_t cap = 8;
    while (cap < 2 * t->npol)
        cap *= 2;
    uint32_t *idx = svc__calloc(cap, sizeof *idx);
    if (!idx)
        return false;
    for (size_t i = 0; i < t->npol; i++) {
        size_t j = (size_t)svc__rl_name_hash(t->pol[i].name) & (cap - 1);
        while (idx[j])
            j = (j + 1) & (cap - 1);
        idx[j] = (uint32_t)(i + 1);
    }
    svc_free(t->idx);
    t->idx = idx;
    t->idxcap = cap;
    return true;
}

svc__rl_plan *svc__rl_table_plan(const svc__rl_table *t, const char *name)
{
    for (size_t i = 0; i < t->nplans; i++)
        if (strcmp(t->plans[i].name, name) == 0)
            return &t->plans[i];
    return NULL;
}

svc__rl_quota *svc__rl_table_quota(const svc__rl_table *t, const char *name)
{
    for (size_t i = 0; i < t->nquotas; i++)
        if (strcmp(t->quotas[i].name, name) == 0)
            return &t->quotas[i];
    return NULL;
}

/* ---- the swap ---------------------------------------------------------------- */

/* Publishes `t` (caller holds wmu) and frees the previous table once no
 * reader can hold it. */
static void publish(svc_ratelimit *rl, svc__rl_table *t)
{
    svc__rl_table *old = atomic_exchange(&rl->table, t); /* seq_cst: see svc__rl_readers */
    atomic_fetch_add(&rl->gen, 1); /* before returning: later checks miss their caches */
    svc__rl_readers_wait(&rl->readers);
    svc__rl_table_free(old);
}

/* ---- validation ------------------------------------------------------------ */

svc_status svc__rl_make_policy(svc_ratelimit *rl, const svc_ratelimit_policy *p, svc__rl_pol *out)
{
    svc_status st = svc__rl_check_name(rl, "policy", p->name);
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
    svc__rl_copy_name(out->name, p->name);
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

/* ---- writers ---------------------------------------------------------------- */

svc_status svc__rl_put_policy(svc_ratelimit *rl, svc__rl_table *t, const svc__rl_pol *p)
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

svc_status svc__rl_put_plan(svc_ratelimit *rl, svc__rl_table *t, const svc__rl_plan *p)
{
    svc__rl_plan *old = svc__rl_table_plan(t, p->name);
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

svc_status svc__rl_put_quota(svc_ratelimit *rl, svc__rl_table *t, const svc__rl_quota *q)
{
    svc__rl_quota *old = svc__rl_table_quota(t, q->name);
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

svc_status svc__rl_edit(svc_ratelimit *rl, svc__rl_edit_fn fn, const void *arg)
{
    pthread_mutex_lock(&rl->wmu);
    svc__rl_table *t = svc__rl_table_clone(atomic_load(&rl->table));
    svc_status st = t ? fn(rl, t, arg) : SVC_ENOMEM;
    if (st == SVC_OK && !svc__rl_table_index(t))
        st = SVC_ENOMEM;
    if (st == SVC_OK) {
        publish(rl, t);
        rl->nzones += rl->npending; /* zones the new table uses */
    } else {
        svc__rl_table_free(t);
#if SVC__RL_HAVE_TZ
        for (size_t i = 0; i < rl->npending; i++)
            svc_tz_free(rl->zones[rl->nzones + i]);
#endif
    }
    rl->npending = 0;
    pthread_mutex_unlock(&rl->wmu);
    return st;
}

static svc_status edit_put_policy(svc_ratelimit *rl, svc__rl_table *t, const void *arg)
{
    return svc__rl_put_policy(rl, t, arg);
}

svc_status svc_ratelimit_policy_add(svc_ratelimit *rl, const svc_ratelimit_policy *p)
{
    svc__rl_pol np;
    svc_status st = svc__rl_make_policy(rl, p, &np);
    if (st != SVC_OK)
        return st;
    return svc__rl_edit(rl, edit_put_policy, &np);
}

static svc_status edit_remove_policy(svc_ratelimit *rl, svc__rl_table *t, const void *arg)
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
    svc_status st = svc__rl_check_name(rl, "policy", name);
    return st == SVC_OK ? svc__rl_edit(rl, edit_remove_policy, name) : st;
}

svc_status svc_ratelimit_policy_get(svc_ratelimit *rl, const char *name, svc_ratelimit_policy *out)
{
    svc_status st = svc__rl_check_name(rl, "policy", name);
    if (st != SVC_OK)
        return st;
    unsigned s;
    const svc__rl_table *t = svc__rl_read_begin(rl, &s);
    const svc__rl_pol *p = svc__rl_table_policy(t, name);
    if (p) {
        memset(out, 0, sizeof *out);
        out->name = name;
        out->algorithm = p->alg;
        out->limit = p->limit;
        out->period_ms = p->period_ms;
        out->burst = p->alg == SVC_RL_GCRA ? p->burst : 0;
    }
    svc__rl_read_end(rl, s);
    return p ? SVC_OK : SVC_ENOTFOUND;
}

svc_status svc__rl_make_plan(svc_ratelimit *rl, const char *plan, const char *const *policies,
                            size_t n, svc__rl_plan *out)
{
    svc_status st = svc__rl_check_name(rl, "plan", plan);
    if (st != SVC_OK)
        return st;
    if (n < 1 || n > SVC_RATELIMIT_MAX_PLAN_POLICIES)
        return svc__err_set(&rl->err, SVC_EINVAL, "plan '%s': needs 1..%d policies, got %zu",
                            plan, SVC_RATELIMIT_MAX_PLAN_POLICIES, n);
    memset(out, 0, sizeof *out);
    svc__rl_copy_name(out->name, plan);
    for (size_t i = 0; i < n; i++) {
        if (!policies[i] || !svc__rl_valid_name(policies[i]))
            return svc__err_set(&rl->err, SVC_EINVAL,
                                "plan '%s': policy name '%.80s' is not a valid name", plan,
                                policies[i] ? policies[i] : "(null)");
        svc__rl_copy_name(out->pol[i], policies[i]);
    }
    out->n = n;
    return SVC_OK;
}

static svc_status edit_put_plan(svc_ratelimit *rl, svc__rl_table *t, const void *arg)
{
    return svc__rl_put_plan(rl, t, arg);
}

svc_status svc_ratelimit_plan_add(svc_ratelimit *rl, const char *plan,
                                  const char *const *policies, size_t n)
{
    svc__rl_plan p;
    svc_status st = svc__rl_make_plan(rl, plan, policies, n, &p);
    if (st != SVC_OK)
        return st;
    return svc__rl_edit(rl, edit_put_plan, &p);
}

/* Finds or loads the zone `name` (caller holds wmu, inside svc__rl_edit()). A zone
 * loaded here is pending: svc__rl_edit() keeps it when the edit commits and frees it
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

svc_status svc__rl_make_quota(svc_ratelimit *rl, const svc_quota *q, svc__rl_quota *out)
{
    svc_status st = svc__rl_check_name(rl, "quota", q->name);
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
    svc__rl_copy_name(out->name, q->name);
    out->period = q->period;
    out->limit = q->limit;
    return zone_get(rl, q->tz, &out->tz);
}

static svc_status edit_put_quota(svc_ratelimit *rl, svc__rl_table *t, const void *arg)
{
    const quota_arg *qa = arg;
    svc__rl_quota nq;
    svc_status st = svc__rl_make_quota(rl, qa->q, &nq);
    return st == SVC_OK ? svc__rl_put_quota(rl, t, &nq) : st;
}

svc_status svc_ratelimit_quota_add(svc_ratelimit *rl, const svc_quota *q)
{
    quota_arg qa = {q};
    return svc__rl_edit(rl, edit_put_quota, &qa);
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
