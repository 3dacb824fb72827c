/*
 * check.c - checks of one policy, or of every policy of a plan, against the
 * store: fail-open/closed, decision metrics, the per-thread policy cache.
 */
#include <stdio.h>
#include <string.h>

#include "svcinfra/log.h"

#include "rl.h"

void svc__rl_store_failed(svc_ratelimit *rl, const char *what, svc_status st)
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

static void count_decision(svc_ratelimit *rl, const char *policy, const char *result)
{
    if (rl->m_decisions) {
        const char *lv[] = {policy, result};
        svc_counter_inc(rl->m_decisions, lv);
    }
}

/* Decisions are counted as result="allowed", `denied` (the label of a
 * denial: "denied", or "shadow_denied" for a dry run), "fail_open" or
 * "fail_closed"; peeks (!commit) are not counted. */
static svc_status run_policy(svc_ratelimit *rl, const svc__rl_pol *p, const char *key, size_t klen,
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
    req.klen = svc__rl_make_key(kb, "", p->name, key, klen);
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
        svc__rl_store_failed(rl, p->name, st);
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
    out->reset_ms = svc__rl_ms_up(o.reset_ns);
    out->retry_after_ms = o.allowed ? 0 : svc__rl_ms_up(o.retry_ns);
    if (commit)
        count_decision(rl, p->name, o.allowed ? "allowed" : denied);
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
    svc__rl_pol pol;
} tl_pol;
static _Thread_local tl_pol tl_cache[TL_CACHE];
static _Thread_local unsigned tl_cache_next;
static bool find_policy(svc_ratelimit *rl, const char *name, svc__rl_pol *out)
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
    const svc__rl_table *t = svc__rl_read_begin(rl, &s);
    const svc__rl_pol *p = svc__rl_table_policy(t, name);
    if (p)
        *out = *p;
    svc__rl_read_end(rl, s);
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
    svc_status st = svc__rl_check_key(rl, key, &klen);
    if (st != SVC_OK) {
        memset(out, 0, sizeof *out);
        return st;
    }
    svc__rl_pol p;
    if (!find_policy(rl, policy, &p)) {
        memset(out, 0, sizeof *out);
        return svc__err_set(&rl->err, SVC_ENOTFOUND, "no policy named '%.80s'", policy);
    }
    return run_policy(rl, &p, key, klen, cost, commit, svc__rl_wall_now(rl), denied,
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
    svc_status st = svc__rl_check_key(rl, key, &klen);
    if (st != SVC_OK)
        return st;
    svc__rl_pol pols[SVC_RATELIMIT_MAX_PLAN_POLICIES];
    size_t n = 0;
    unsigned s;
    const svc__rl_table *t = svc__rl_read_begin(rl, &s);
    const svc__rl_plan *pl = svc__rl_table_plan(t, plan);
    if (pl) {
        for (size_t i = 0; i < pl->n; i++) {
            const svc__rl_pol *p = svc__rl_table_policy(t, pl->pol[i]);
            if (p)
                pols[n++] = *p;
        }
    }
    svc__rl_read_end(rl, s);
    if (!pl)
        return svc__err_set(&rl->err, SVC_ENOTFOUND, "no plan named '%.80s'", plan);
    if (n == 0)
        return svc__err_set(&rl->err, SVC_ENOTFOUND, "plan '%.80s' names no known policy",
                            plan);
    const int64_t now = svc__rl_wall_now(rl); /* one instant for every policy of the plan */
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
