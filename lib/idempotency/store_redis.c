/*
 * store_redis.c - the idempotency store on Redis.
 *
 * One key per record, {idem:<64 hex>} (the braces make the whole name the
 * Redis Cluster hash tag), a hash of
 *   f fingerprint, s state (1 in progress, 2 completed), t lease token,
 *   l lease end (Unix ms), e expiry (Unix ms), c status, h header blob, b body
 * with PEXPIRE set to the record's life plus a second, so the server drops
 * records by itself. Claim, complete and release are each one Lua script,
 * so every step is atomic on the server. Times come from the engine (the
 * `now` argument), as in the other stores.
 *
 * Scripts go out as EVALSHA with binary-safe arguments (bodies and header
 * blobs hold NUL bytes); after NOSCRIPT (a restarted or flushed server) the
 * pool loads the script again and repeats the call on the same connection.
 */
#include <stdio.h>
#include <string.h>

#include "svcinfra/redis.h"
#include "svcinfra/version.h"

#include "store.h"

/* CLAIM_LUA, COMPLETE_LUA and RELEASE_LUA: redis_claim.lua, and
 * redis_own.lua followed by redis_complete.lua or redis_release.lua,
 * embedded by the build. redis_own.lua checks the lease (ARGV[1] token,
 * ARGV[2] now) and returns -1 when the record is absent or expired, 0 when
 * it is not the caller's. */
#include "idempotency/idem_lua.h"

enum { S_CLAIM, S_COMPLETE, S_RELEASE, S_N };
static const char *const SOURCES[S_N] = {CLAIM_LUA, COMPLETE_LUA, RELEASE_LUA};

const char *svc__idem_redis_lua(const char *which)
{
    return strcmp(which, "claim") == 0      ? CLAIM_LUA
         : strcmp(which, "complete") == 0 ? COMPLETE_LUA
         : strcmp(which, "release") == 0  ? RELEASE_LUA : NULL;
}

typedef struct redis_store {
    svc__idem_store base;
    svc_redis *pool;
    svc_redis_script *scripts[S_N];
} redis_store;

#define MAX_ARGS 8

/* Runs script `which` on `key` with `n` binary-safe arguments (EVALSHA,
 * reloaded on NOSCRIPT by the pool on the same connection). */
static svc_status eval(redis_store *rs, int which, const char *key, int n,
                       const char *const *args, const size_t *lens, svc_redis_reply **rep,
                       svc__err *err)
{
    if (n > MAX_ARGS)
        return svc__err_set(err, SVC_EINVAL, "redis store: too many script arguments");
    const char *keys[1] = {key};
    svc_status st = svc_redis_script_evalv(rs->pool, rs->scripts[which], 1, keys, NULL, n, args,
                                           lens, rep);
    if (st != SVC_OK)
        return svc__err_set(err, st, "redis store: %s", svc_redis_errmsg(rs->pool));
    return SVC_OK;
}

static void rkey(char out[80], const char *key) { snprintf(out, 80, "{idem:%.64s}", key); }

static svc_status redis_claim(svc__idem_store *base, const svc__idem_claim_req *req,
                              svc_idem_result *out, svc__err *err)
{
    redis_store *rs = (redis_store *)base;
    char key[80], now[24], lu[24], ex[24], px[24];
    rkey(key, req->key);
    snprintf(now, sizeof now, "%lld", (long long)req->now_ms);
    snprintf(lu, sizeof lu, "%lld", (long long)req->lease_until_ms);
    snprintf(ex, sizeof ex, "%lld", (long long)req->expires_ms);
    snprintf(px, sizeof px, "%lld", (long long)(req->expires_ms - req->now_ms + 1000));
    const char *args[] = {req->fp, req->token, now, lu, ex, px};
    svc_redis_reply *rep = NULL;
    svc_status st = eval(rs, S_CLAIM, key, 6, args, NULL, &rep, err);
    if (st != SVC_OK)
        return st;
    size_t n = svc_redis_reply_len(rep);
    int64_t code = n ? svc_redis_reply_integer(svc_redis_reply_element(rep, 0)) : -1;
    st = SVC_OK;
    switch (code) {
    case 0:
    case 4:
        out->outcome = SVC_IDEM_CLAIMED;
        out->taken_over = code == 4;
        break;
    case 1:
        out->outcome = SVC_IDEM_IN_PROGRESS;
        out->retry_after_ms = n > 1 ? svc_redis_reply_integer(svc_redis_reply_element(rep, 1)) : 1;
        break;
    case 3:
        out->outcome = SVC_IDEM_MISMATCH;
        break;
    case 2:
        if (n == 5) {
            size_t hl = 0, bl = 0;
            const char *h = svc_redis_reply_string(svc_redis_reply_element(rep, 3), &hl);
            const char *b = svc_redis_reply_string(svc_redis_reply_element(rep, 4), &bl);
            int status = (int)svc_redis_reply_integer(svc_redis_reply_element(rep, 2));
            if (h && b) {
                out->outcome = SVC_IDEM_COMPLETED;
                st = svc__idem_result_fill(out, status, h, hl, b, bl);
                break;
            }
        }
        /* fall through */
    default:
        st = svc__err_set(err, SVC_EBACKEND, "redis store: unexpected claim reply");
    }
    svc_redis_reply_free(rep);
    return st;
}

static svc_status own_result(svc_redis_reply *rep, svc__err *err)
{
    int64_t v = svc_redis_reply_integer(rep);
    svc_redis_reply_free(rep);
    if (v == 1)
        return SVC_OK;
    if (v == 0)
        return svc__err_set(err, SVC_ECONFLICT, "the claim is no longer the caller's");
    return svc__err_set(err, SVC_ENOTFOUND, "no live record for this key");
}

static svc_status redis_complete(svc__idem_store *base, const svc__idem_done *d, svc__err *err)
{
    redis_store *rs = (redis_store *)base;
    char key[80], now[24], status[16];
    rkey(key, d->key);
    snprintf(now, sizeof now, "%lld", (long long)d->now_ms);
    snprintf(status, sizeof status, "%d", d->status);
    const char *args[] = {d->token, now, status, d->hdrs, d->body};
    size_t lens[] = {strlen(d->token), strlen(now), strlen(status), d->hdrs_len, d->body_len};
    svc_redis_reply *rep = NULL;
    svc_status st = eval(rs, S_COMPLETE, key, 5, args, lens, &rep, err);
    return st != SVC_OK ? st : own_result(rep, err);
}

static svc_status redis_release(svc__idem_store *base, const char *k, const char *token,
                                int64_t now_ms, svc__err *err)
{
    redis_store *rs = (redis_store *)base;
    char key[80], now[24];
    rkey(key, k);
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    const char *args[] = {token, now};
    svc_redis_reply *rep = NULL;
    svc_status st = eval(rs, S_RELEASE, key, 2, args, NULL, &rep, err);
    return st != SVC_OK ? st : own_result(rep, err);
}

static svc_status redis_purge(svc__idem_store *base, int64_t now, int64_t *removed, svc__err *err)
{
    (void)base, (void)now, (void)err;
    *removed = 0; /* keys carry PEXPIRE: the server removes them */
    return SVC_OK;
}

static void redis_destroy(svc__idem_store *base)
{
    redis_store *rs = (redis_store *)base;
    if (!rs)
        return;
    for (int i = 0; i < S_N; i++)
        svc_redis_script_free(rs->scripts[i]);
    svc_free(rs);
}

static const svc__idem_store_ops redis_ops = {
    .name = "redis",
    .claim = redis_claim,
    .complete = redis_complete,
    .complete_tx = NULL,
    .release = redis_release,
    .purge = redis_purge,
    .destroy = redis_destroy,
};

svc_status svc__idem_store_redis_new(svc__idem_store **out, struct svc_redis *pool)
{
    redis_store *rs = svc__calloc(1, sizeof *rs);
    if (!rs)
        return SVC_ENOMEM;
    rs->base.ops = &redis_ops;
    rs->pool = pool;
    svc_status st = SVC_OK;
    for (int i = 0; i < S_N && st == SVC_OK; i++)
        st = svc_redis_script_new(&rs->scripts[i], rs->pool, SOURCES[i]);
    if (st != SVC_OK) {
        redis_destroy(&rs->base);
        return svc__fail_new(st, "idempotency: redis store: cannot prepare the scripts");
    }
    *out = &rs->base;
    return SVC_OK;
}
