/*
 * quota.c - calendar quotas: the window of now (UTC or a zone), one counter
 * per quota, tenant and window.
 */
#include <stdio.h>
#include <string.h>

#include "core/calendar.h"
#include "rl.h"

#if SVC__RL_HAVE_TZ
#include "svcinfra/tz.h"
#endif

static svc_status quota_window(svc_ratelimit *rl, const svc__rl_quota *q, int64_t now_ns,
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
    svc_status st = svc__rl_check_key(rl, tenant, &klen);
    if (st != SVC_OK)
        return st;
    unsigned s;
    const svc__rl_table *t = svc__rl_read_begin(rl, &s);
    const svc__rl_quota *qp = svc__rl_table_quota(t, quota);
    svc__rl_quota q;
    if (qp)
        q = *qp;
    svc__rl_read_end(rl, s);
    if (!qp)
        return svc__err_set(&rl->err, SVC_ENOTFOUND, "no quota named '%.80s'", quota);
    int64_t now = svc__rl_wall_now(rl);
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
    req.klen = svc__rl_make_key(kb, prefix, q.name, tenant, klen);
    req.name = q.name;
    req.ukey = tenant;
    out->limit = q.limit;
    out->window_start_ms = ws / SVC__NS_PER_MS;
    out->window_end_ms = we / SVC__NS_PER_MS;
    out->reset_ms = svc__rl_ms_up(we - now);
    svc__rl_out o;
    st = rl->store->ops->apply(rl->store, &req, &o, &rl->err);
    if (st != SVC_OK) {
        svc__rl_store_failed(rl, q.name, st);
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
