/*
 * store_redis.c - the rate limit store on Redis.
 *
 * One Lua script per check, so the read-decide-write of a key is atomic on
 * the server. The script reads the time from the server (TIME), so
 * instances whose clocks disagree still share one notion of "now"; only
 * quota windows (calendar days and months) are computed by the caller.
 *
 * Keys: {rl:p|<policy>|<key>} for policies, {rl:q|<quota>|<tenant>}:<ms>
 * for quotas, one per calendar window (<ms>: its first instant, UNIX ms), so
 * instances whose clocks straddle a window boundary each count in the
 * window they see and never reset one another's counter. The braces make
 * the name (all windows of a quota and tenant alike) one Redis Cluster hash
 * tag; each script touches one key. Policy and quota names cannot contain
 * '|', so the first two bars split a name unambiguously, and the window
 * after the last "}:" is digits only. Each key is a hash
 *   k = kind, a, b, c = the state of store.h
 * with PEXPIRE set to when its state is as good as absent (plus a second),
 * so idle keys vanish from the server by themselves. A quota key lives its
 * window's length plus a day after its last use, counted by the server
 * from now (PEXPIRE, not PEXPIREAT of the caller's window end): a caller
 * whose clock is behind the server's must not see its counter expire.
 *
 * Arithmetic in the script is on whole microseconds and whole units held
 * in Lua numbers (doubles), every value below 2^53, so it is exact integer
 * arithmetic: UNIX time in µs, periods (at most 366 days) and the GCRA
 * interval are whole µs (svc__rl_gcra_interval_ns() rounds it up to one),
 * tau = T x burst is bounded by policy validation, and a quotient of two
 * such integers floors exactly. The sliding window's weighted estimate
 * (a count times a time, up to 2^85) goes through muldiv(), a long division
 * 7 bits at a time. So at a whole-µs instant the script and svc__rl_apply()
 * give the same figures; only a sliding-window retry may come out up to
 * 1 µs later (µs here, ns there). Stored numbers are integers written with
 * 17 significant digits, so they read back unchanged.
 *
 * ARGV[10], when present, is "now" in µs instead of TIME: the test that
 * compares the script with svc__rl_apply() drives both with one clock.
 */
#include <stdio.h>
#include <string.h>

#include "svcinfra/redis.h"
#include "svcinfra/version.h"

#include "store.h"

/* RL_LUA: redis_check.lua, embedded by the build. Its branches by kind:
 * 1 GCRA, 2 fixed window, 3 sliding window (the previous window's weight
 * rounded up, ceil(prev * (P - e) / P)), else a quota in the caller's window
 * [ws, we). muldiv(x, y, z) is floor(x * y / z) for whole x < 2^40 and y,
 * z < 2^45: x is taken 7 bits at a time (long division), so nothing passes
 * 2^53. */
#include "ratelimit/rl_lua.h"

const char *svc__rl_redis_lua(void) { return RL_LUA; }

/* Writes the script's KEYS[1] and ARGV (9 strings of up to 31 bytes) for
 * `req`: the one encoding, used by the store and by the benchmark that
 * replays it through redis-benchmark. */
void svc__rl_redis_args(const svc__rl_req *req, char *key, size_t keylen, char args[9][32])
{
    if (req->kind == SVC__RL_QUOTA)
        snprintf(key, keylen, "{rl:q|%s|%s}:%lld", req->name, req->ukey,
                 (long long)(req->win_start / SVC__NS_PER_MS));
    else
        snprintf(key, keylen, "{rl:p|%s|%s}", req->name, req->ukey);
    snprintf(args[0], 32, "%d", (int)req->kind);
    snprintf(args[1], 32, "%llu", (unsigned long long)req->limit);
    snprintf(args[2], 32, "%llu", (unsigned long long)req->burst);
    snprintf(args[3], 32, "%lld", (long long)(req->period_ns / 1000));
    snprintf(args[4], 32, "%lld", (long long)(req->interval_ns / 1000));
    snprintf(args[5], 32, "%llu", (unsigned long long)req->cost);
    snprintf(args[6], 32, "%d", req->commit ? 1 : 0);
    snprintf(args[7], 32, "%lld", (long long)(req->win_start / 1000));
    snprintf(args[8], 32, "%lld", (long long)(req->win_end / 1000));
}

typedef struct redis_store {
    svc__rl_store base;
    svc_redis *pool;
    svc_redis_script *script;
} redis_store;

static svc_status redis_apply(svc__rl_store *base, const svc__rl_req *req, svc__rl_out *out,
                              svc__err *err)
{
    redis_store *rs = (redis_store *)base;
    char key[SVC__RL_REDIS_KEY_CAP];
    char a[9][32];
    svc__rl_redis_args(req, key, sizeof key, a);
    const char *keys[] = {key};
    const char *args[] = {a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]};
    svc_redis_reply *rep = NULL;
    svc_status st = svc_redis_script_eval(rs->pool, rs->script, 1, keys, 9, args, &rep);
    if (st != SVC_OK)
        return svc__err_set(err, st, "redis store: %s", svc_redis_errmsg(rs->pool));
    if (svc_redis_reply_type(rep) != SVC_REDIS_ARRAY || svc_redis_reply_len(rep) != 6) {
        svc_redis_reply_free(rep);
        return svc__err_set(err, SVC_EBACKEND, "redis store: unexpected script reply");
    }
    int64_t v[6];
    for (size_t i = 0; i < 6; i++)
        v[i] = svc_redis_reply_integer(svc_redis_reply_element(rep, i));
    svc_redis_reply_free(rep);
    out->allowed = v[0] == 1;
    out->remaining = v[1] > 0 ? (uint64_t)v[1] : 0;
    out->reset_ns = v[2] * 1000;
    out->retry_ns = v[3] < 0 ? -1 : v[3] * 1000;
    out->used = v[4] > 0 ? (uint64_t)v[4] : 0;
    return SVC_OK;
}

static void redis_stats(svc__rl_store *base, svc__rl_store_stats *out)
{
    (void)base;
    memset(out, 0, sizeof *out); /* the server holds and expires the keys */
}

static void redis_destroy(svc__rl_store *base)
{
    redis_store *rs = (redis_store *)base;
    if (!rs)
        return;
    svc_redis_script_free(rs->script);
    svc_free(rs);
}

static const svc__rl_store_ops redis_ops = {
    .name = "redis",
    .apply = redis_apply,
    .stats = redis_stats,
    .destroy = redis_destroy,
};

svc_status svc__rl_store_redis_new(svc__rl_store **out, struct svc_redis *pool, char *err,
                                   size_t errlen)
{
    if (!svc_feature_supported(SVC_FEATURE_REDIS)) {
        snprintf(err, errlen, "redis:// needs a library built with hiredis");
        return SVC_ENOTSUP;
    }
    redis_store *rs = svc__calloc(1, sizeof *rs);
    if (!rs)
        return SVC_ENOMEM;
    rs->base.ops = &redis_ops;
    rs->pool = pool;
    svc_status st = svc_redis_script_new(&rs->script, rs->pool, RL_LUA);
    if (st != SVC_OK) {
        snprintf(err, errlen, "redis store: cannot prepare the script");
        redis_destroy(&rs->base);
        return st;
    }
    *out = &rs->base;
    return SVC_OK;
}
